//! kafka-python against the in-process broker: tests/python/compat.py
//! (metadata, and a 1,000-record round trip uncompressed and with gzip) and
//! tests/python/admin.py (DescribeConfigs of a topic and of the broker,
//! AlterConfigs and IncrementalAlterConfigs of a topic, CreatePartitions,
//! DescribeProducers, DescribeLogDirs, OffsetDelete).
//!
//! Needs python3 with kafka-python (`python3 -m pip install kafka-python`;
//! scripts/test installs it). A missing interpreter or module FAILS this
//! test with that instruction; nothing is skipped.
//!
//! Run: `cargo test -p conveyor-tests --test kafka_python`.

use conveyor_tests::python::{KAFKA_PYTHON, run_script};
use conveyor_tests::{TestBroker, each_runtime};

each_runtime! {
    fn kafka_python_round_trip(rt) {
        let broker = TestBroker::start_with(rt, &[("num.partitions", "3")]);
        run_script(KAFKA_PYTHON, "compat.py", &["--bootstrap", &broker.bootstrap(), "--partitions", "3"]);
    }
}

each_runtime! {
    fn kafka_python_describes_and_alters_configs(rt) {
        let broker = TestBroker::start_with(
            rt,
            &[("num.partitions", "3"), ("log.segment.bytes", "104857600")],
        );
        let data_dir = broker.data_dir();
        let data_dir = data_dir.to_str().expect("a UTF-8 data directory");
        run_script(
            KAFKA_PYTHON,
            "admin.py",
            &["--bootstrap", &broker.bootstrap(), "--node-id", "0", "--data-dir", data_dir],
        );
    }
}
