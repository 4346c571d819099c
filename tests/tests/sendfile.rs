//! The read path is zero copy: record bytes go from the segment file to the
//! socket with sendfile(2), counted in the runtime's `Stats`.
//!
//! Run: `cargo test -p conveyor-tests --test sendfile`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use conveyor_tests::client::{consume_all, produce_test_records, producer, producer_config};
use conveyor_tests::{TestBroker, each_runtime, unique_topic};

const RECORDS: usize = 20_000;
const TIMEOUT: Duration = Duration::from_secs(60);

each_runtime! {
    fn consumed_record_bytes_go_through_sendfile(rt) {
        let broker = TestBroker::start_with(rt, &[("num.partitions", "1")]);
        let topic = unique_topic("sendfile");
        let producer = producer(&producer_config(&broker.bootstrap(), "none"));
        produce_test_records(&producer, &topic, Some(0), 0..RECORDS, TIMEOUT);
        drop(producer);

        let stats = broker.stats();
        let before = stats.sendfile_bytes.load(Ordering::SeqCst);
        let calls_before = stats.send_calls.load(Ordering::SeqCst);
        let records = consume_all(&broker.bootstrap(), &topic, 1, TIMEOUT);
        assert_eq!(records.len(), RECORDS);
        // Keys, values and header bytes alone; the batches on the wire are
        // larger still (framing, varints), so this is a lower bound.
        let payload: u64 = records
            .iter()
            .map(|r| {
                let headers: usize = r
                    .headers
                    .iter()
                    .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                    .sum();
                (r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len) + headers)
                    as u64
            })
            .sum();
        let after = stats.sendfile_bytes.load(Ordering::SeqCst);
        let calls_after = stats.send_calls.load(Ordering::SeqCst);
        assert!(
            after.saturating_sub(before) >= payload,
            "consumed {payload} record bytes but sendfile_bytes grew by only {} ({before} -> {after})",
            after.saturating_sub(before)
        );
        assert!(
            calls_after > calls_before,
            "send_calls did not grow while serving fetches"
        );
    }
}
