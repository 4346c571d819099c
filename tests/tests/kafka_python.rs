//! kafka-python against the in-process broker: runs tests/python/compat.py
//! (metadata, and a 1,000-record round trip uncompressed and with gzip).
//!
//! Needs python3 with kafka-python (`python3 -m pip install kafka-python`;
//! scripts/test installs it). A missing interpreter or module FAILS this
//! test with that instruction; nothing is skipped.
//!
//! Run: `cargo test -p conveyor-tests --test kafka_python`.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use conveyor_tests::groups::require_kafka_python;
use conveyor_tests::{TestBroker, each_runtime};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

each_runtime! {
    fn kafka_python_round_trip(rt) {
        require_kafka_python();
        let broker = TestBroker::start_with(rt, &[("num.partitions", "3")]);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/compat.py");
        let logs = tempfile::tempdir().expect("temporary directory");
        let out_path = logs.path().join("compat.out");
        let out = File::create(&out_path).expect("create output file");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--bootstrap", &broker.bootstrap(), "--partitions", "3"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("clone file")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn python3");
        let deadline = Instant::now() + SCRIPT_TIMEOUT;
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
                    output.contains("\nOK"),
                    "compat.py exited 0 without OK:\n{output}"
                );
            }
            Some(s) => panic!("compat.py failed ({s}):\n{output}"),
            None => panic!("compat.py did not finish in {SCRIPT_TIMEOUT:?}:\n{output}"),
        }
    }
}
