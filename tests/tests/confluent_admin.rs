//! confluent-kafka's AdminClient (librdkafka underneath) against the
//! in-process broker on every runtime: tests/python/confluent_admin.py.
//!
//! The script checks the values each admin API answers, not only that it
//! answered: CreateTopics and DescribeTopics; DescribeConfigs of a topic
//! (values and sources: a topic override, the broker's setting, Kafka's
//! default; synonyms) and of the broker; IncrementalAlterConfigs (SET,
//! DELETE, APPEND and SUBTRACT on `cleanup.policy`) and AlterConfigs,
//! described back; a dynamic broker setting (`log.retention.ms` on this
//! broker) followed by a topic without its own and deleted again, and a
//! startup-only one refused; INVALID_CONFIG for an unknown key, a bad value, or
//! APPEND or SUBTRACT on a setting that is not a list; `validate_only`
//! changing nothing; CreatePartitions growing a topic and
//! INVALID_PARTITIONS for a shrink; DeleteRecords after a `Producer` wrote,
//! the low watermark (`Consumer.get_watermark_offsets`, ListOffsets)
//! following, and consumers assigned below it reset or told
//! OFFSET_OUT_OF_RANGE; ListGroups, DescribeGroups and DeleteGroups of a
//! group a `Consumer` joined; DescribeCluster; DeleteTopics; and
//! UNKNOWN_TOPIC_OR_PARTITION for every request naming a topic that does
//! not exist.
//!
//! Needs python3 with confluent-kafka (`python3 -m pip install
//! confluent-kafka`; scripts/test installs it). A missing interpreter or
//! module FAILS this test with that instruction; nothing is skipped.
//!
//! Run: `cargo test -p conveyor-tests --test confluent_admin`.

use conveyor_tests::groups::GROUP_SETTINGS;
use conveyor_tests::python::{CONFLUENT_KAFKA, run_script};
use conveyor_tests::{TestBroker, each_runtime};

each_runtime! {
    fn confluent_kafka_admin(rt) {
        // The script checks these back through DescribeConfigs; the group
        // settings let its consumer join without the initial rebalance delay.
        let mut settings = vec![("num.partitions", "3"), ("log.segment.bytes", "104857600")];
        settings.extend_from_slice(GROUP_SETTINGS);
        let broker = TestBroker::start_with(rt, &settings);
        run_script(
            CONFLUENT_KAFKA,
            "confluent_admin.py",
            &["--bootstrap", &broker.bootstrap(), "--node-id", "0"],
        );
    }
}
