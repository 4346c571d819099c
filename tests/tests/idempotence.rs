//! librdkafka's idempotent producer (`enable.idempotence=true`: InitProducerId,
//! then producer ids and sequences in every batch) against the in-process
//! broker on every runtime: 50,000 records land exactly once, where their
//! delivery reports say; a restart keeps producer ids unique and the
//! producer state on disk.
//!
//! Run: `cargo test -p conveyor-tests --test idempotence` (add `--release`
//! for speed).

use std::collections::HashMap;
use std::time::Duration;

use conveyor_tests::client::{consume_all, produce_test_records, producer, producer_config};
use conveyor_tests::{TestBroker, TestRecord, each_runtime, unique_topic};

const RECORDS: usize = 50_000;
const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(180);

fn idempotent_producer(bootstrap: &str) -> conveyor_tests::client::TestProducer {
    let mut config = producer_config(bootstrap, "lz4");
    config
        .set("enable.idempotence", "true")
        // Small batches so each partition sees many sequences in flight.
        .set("batch.num.messages", "500")
        .set("max.in.flight.requests.per.connection", "5");
    producer(&config)
}

/// The first unreserved producer id in the broker's block file.
fn reserved_end(broker: &TestBroker) -> i64 {
    let text = std::fs::read_to_string(broker.data_dir().join("producer-id-block"))
        .expect("the producer id block file exists once ids were handed out");
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("the block file holds the next block's start")
}

each_runtime! {
    fn librdkafka_idempotent_records_land_exactly_once(rt) {
        let mut broker = TestBroker::start_with(rt, &[("num.partitions", "3")]);
        let topic = unique_topic("idempotent");
        let p = idempotent_producer(&broker.bootstrap());
        let acked = produce_test_records(&p, &topic, None, 0..RECORDS, TIMEOUT);
        drop(p);
        assert_eq!(acked.len(), RECORDS);
        let first_block = reserved_end(&broker);
        assert!(first_block > 0);

        let records = consume_all(&broker.bootstrap(), &topic, PARTITIONS, TIMEOUT);
        assert_eq!(records.len(), RECORDS, "every record exactly once");
        let mut seen = vec![false; RECORDS];
        let mut next: HashMap<i32, i64> = HashMap::new();
        for c in &records {
            let i = c.index();
            assert!(!seen[i], "record {i} stored twice");
            seen[i] = true;
            assert_eq!(c.value.as_deref(), Some(&TestRecord::new(i).value[..]));
            assert_eq!((acked[&i].partition, acked[&i].offset), (c.partition, c.offset));
            let want = next.entry(c.partition).or_insert(0);
            assert_eq!(c.offset, *want, "offset gap in partition {}", c.partition);
            *want += 1;
        }

        // A clean restart writes producer snapshots and keeps the block
        // file; a new producer after it gets an id from a new block.
        broker.stop();
        let snapshots = (0..PARTITIONS)
            .filter(|p| {
                std::fs::read_dir(broker.data_dir().join(format!("{topic}-{p}")))
                    .expect("partition directory")
                    .any(|e| e.expect("entry").file_name().to_string_lossy().ends_with(".snapshot"))
            })
            .count();
        assert_eq!(snapshots, PARTITIONS as usize, "a snapshot per partition");
        broker.start_again();
        let p = idempotent_producer(&broker.bootstrap());
        let more = produce_test_records(&p, &topic, None, RECORDS..RECORDS + 1000, TIMEOUT);
        drop(p);
        assert_eq!(more.len(), 1000);
        assert!(reserved_end(&broker) > first_block, "ids continue after the old block");
        let records = consume_all(&broker.bootstrap(), &topic, PARTITIONS, TIMEOUT);
        assert_eq!(records.len(), RECORDS + 1000);
    }
}
