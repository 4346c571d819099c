//! Running another program against a broker: a client's test script or
//! harness (Python, Java, Go, JavaScript, librdkafka's suite).
//!
//! One rule for all of them, so every client family passes or fails the same
//! way: the program runs with stdin closed and a time limit, its stdout and
//! stderr kept together in one file, and it passes only if it exits 0 and
//! prints a line `OK`. Anything else panics with everything it printed.

use std::fs::File;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `command` (named `what` in a failure) until it exits or `timeout`
/// passes, then kills it. Returns everything it printed when it exited 0
/// and printed a line `OK`; panics with that output otherwise.
pub fn run_until_ok(mut command: Command, what: &str, timeout: Duration) -> String {
    let logs = tempfile::tempdir().expect("temporary directory");
    let out_path = logs.path().join("output");
    let out = File::create(&out_path).expect("create output file");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().expect("clone file")))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({command:?}): {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => {
            assert!(
                output.starts_with("OK\n") || output.contains("\nOK"),
                "{what} exited 0 without OK:\n{output}"
            );
            output
        }
        Some(s) => panic!("{what} failed ({s}):\n{output}"),
        None => panic!("{what} did not finish in {timeout:?}:\n{output}"),
    }
}
