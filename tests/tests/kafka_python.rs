//! kafka-python against the in-process broker: tests/python/compat.py
//! (metadata, and a 1,000-record round trip uncompressed and with gzip) and
//! tests/python/admin.py (DescribeConfigs of a topic and of the broker,
//! AlterConfigs and IncrementalAlterConfigs of a topic, CreatePartitions).
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

/// Run `tests/python/<script>` with `args`; it must exit 0 and print OK.
fn run_script(script: &str, args: &[&str]) {
    require_kafka_python();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let logs = tempfile::tempdir().expect("temporary directory");
    let out_path = logs.path().join("script.out");
    let out = File::create(&out_path).expect("create output file");
    let mut child = Command::new("python3")
        .arg(&path)
        .args(args)
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
                "{script} exited 0 without OK:\n{output}"
            );
        }
        Some(s) => panic!("{script} failed ({s}):\n{output}"),
        None => panic!("{script} did not finish in {SCRIPT_TIMEOUT:?}:\n{output}"),
    }
}

each_runtime! {
    fn kafka_python_round_trip(rt) {
        let broker = TestBroker::start_with(rt, &[("num.partitions", "3")]);
        run_script("compat.py", &["--bootstrap", &broker.bootstrap(), "--partitions", "3"]);
    }
}

each_runtime! {
    fn kafka_python_describes_and_alters_configs(rt) {
        let broker = TestBroker::start_with(
            rt,
            &[("num.partitions", "3"), ("log.segment.bytes", "104857600")],
        );
        run_script("admin.py", &["--bootstrap", &broker.bootstrap(), "--node-id", "0"]);
    }
}
