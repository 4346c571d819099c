//! librdkafka (through the `rdkafka` crate) against the in-process broker:
//! topic creation through the admin API, and a 100,000-record keyed round
//! trip with headers for every compression codec.
//!
//! Run: `cargo test -p conveyor-tests --test compat_rdkafka` (add `--release`
//! for speed; each codec is its own test and its own broker).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use conveyor_tests::client::{
    self, Delivered, assign, consume, consume_all, consumer, consumer_config, create_topic,
    partition_count, produce_test_records, producer, producer_config, try_create_topic,
};
use conveyor_tests::{Runtime, TestBroker, TestRecord, each_runtime, unique_topic};
use rdkafka::Offset;
use rdkafka::error::RDKafkaErrorCode;

const RECORDS: usize = 100_000;
const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(180);

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms fit i64")
}

/// Produces [`RECORDS`] keyed records with headers using `codec`, then reads
/// every partition from the beginning and checks each record byte for byte,
/// where the delivery report said it went, in producer order per partition.
fn round_trip(rt: Runtime, codec: &str) {
    let broker = TestBroker::start_with(rt, &[("num.partitions", "3")]);
    let topic = unique_topic(&format!("compat-{codec}"));
    let started_ms = now_ms();

    let producer = producer(&producer_config(&broker.bootstrap(), codec));
    let acked = produce_test_records(&producer, &topic, None, 0..RECORDS, TIMEOUT);
    drop(producer);
    assert_eq!(acked.len(), RECORDS);

    let probe = consumer(&consumer_config(&broker.bootstrap()));
    assert_eq!(
        partition_count(&probe, &topic),
        PARTITIONS as usize,
        "auto-created topic should have num.partitions=3 partitions"
    );
    let records = consume_all(&broker.bootstrap(), &topic, PARTITIONS, TIMEOUT);
    let finished_ms = now_ms();
    check_round_trip(codec, &acked, &records, started_ms..=finished_ms);
}

fn check_round_trip(
    codec: &str,
    acked: &HashMap<usize, Delivered>,
    records: &[client::Consumed],
    time_window: std::ops::RangeInclusive<i64>,
) {
    assert_eq!(records.len(), RECORDS, "{codec}: record count");
    let mut seen = vec![false; RECORDS];
    // Per partition: (last offset, last index) to check order and gaps.
    let mut last: HashMap<i32, (i64, usize)> = HashMap::new();
    let mut per_partition: HashMap<i32, usize> = HashMap::new();
    for c in records {
        let i = c.index();
        assert!(i < RECORDS, "{codec}: key {i} was never produced");
        assert!(
            !seen[i],
            "{codec}: record {i} delivered twice (at {}:{})",
            c.partition, c.offset
        );
        seen[i] = true;
        let want = TestRecord::new(i);
        assert_eq!(
            acked[&i],
            Delivered {
                partition: c.partition,
                offset: c.offset
            },
            "{codec}: record {i} read back at a different place than its delivery report"
        );
        assert!(
            c.key.as_deref() == Some(&want.key[..]),
            "{codec}: key of record {i} differs"
        );
        assert!(
            c.value.as_deref() == Some(&want.value[..]),
            "{codec}: value of record {i} differs ({} bytes read, {} sent)",
            c.value.as_ref().map_or(0, Vec::len),
            want.value.len()
        );
        assert_eq!(
            c.headers, want.headers,
            "{codec}: headers of record {i} differ"
        );
        let ts = c.timestamp.unwrap_or(-1);
        assert!(
            time_window.contains(&ts),
            "{codec}: record {i} timestamp {ts} outside the test's run {time_window:?}"
        );
        match last.get(&c.partition) {
            None => assert_eq!(
                c.offset, 0,
                "{codec}: partition {} starts at {}",
                c.partition, c.offset
            ),
            Some(&(offset, index)) => {
                assert_eq!(
                    c.offset,
                    offset + 1,
                    "{codec}: gap or reorder in partition {}",
                    c.partition
                );
                assert!(
                    index < i,
                    "{codec}: partition {} out of producer order: {index} then {i}",
                    c.partition
                );
            }
        }
        last.insert(c.partition, (c.offset, i));
        *per_partition.entry(c.partition).or_default() += 1;
    }
    assert!(
        seen.iter().all(|s| *s),
        "{codec}: some records never came back"
    );
    assert_eq!(
        per_partition.len(),
        PARTITIONS as usize,
        "{codec}: keys should spread over all partitions: {per_partition:?}"
    );
}

each_runtime! {
    fn round_trip_uncompressed(rt) {
        round_trip(rt, "none");
    }
}

each_runtime! {
    fn round_trip_gzip(rt) {
        round_trip(rt, "gzip");
    }
}

each_runtime! {
    fn round_trip_snappy(rt) {
        round_trip(rt, "snappy");
    }
}

each_runtime! {
    fn round_trip_lz4(rt) {
        round_trip(rt, "lz4");
    }
}

each_runtime! {
    fn round_trip_zstd(rt) {
        round_trip(rt, "zstd");
    }
}

each_runtime! {
    /// CreateTopics through librdkafka's admin client makes a topic with the
    /// asked partition count (not `num.partitions`), and every partition works.
    fn admin_create_topics(rt) {
        let broker = TestBroker::start_with(rt, &[("num.partitions", "1")]);
        let topic = unique_topic("admin");
        create_topic(&broker.bootstrap(), &topic, 3, Duration::from_secs(10));

        let probe = consumer(&consumer_config(&broker.bootstrap()));
        assert_eq!(
            partition_count(&probe, &topic),
            3,
            "CreateTopics asked for 3 partitions"
        );

        let producer = producer(&producer_config(&broker.bootstrap(), "none"));
        let mut acked = HashMap::new();
        for p in 0..3 {
            let start = (p * 10) as usize;
            acked = produce_test_records(
                &producer,
                &topic,
                Some(p),
                start..start + 10,
                Duration::from_secs(30),
            );
        }
        for (i, d) in &acked {
            assert_eq!(
                d.partition,
                (*i / 10) as i32,
                "record {i} went to the wrong partition"
            );
            assert_eq!(
                d.offset,
                (*i % 10) as i64,
                "record {i} got the wrong offset"
            );
        }

        let c = consumer(&consumer_config(&broker.bootstrap()));
        assign(&c, &topic, &[(2, Offset::Beginning)]);
        let got = consume(&c, 10, Duration::from_secs(30));
        let indexes: Vec<usize> = got.iter().map(client::Consumed::index).collect();
        assert_eq!(indexes, (20..30).collect::<Vec<_>>());

        // Creating it again must fail with TOPIC_ALREADY_EXISTS, not succeed.
        let again = try_create_topic(&broker.bootstrap(), &topic, 3, Duration::from_secs(10));
        assert_eq!(again, Err(RDKafkaErrorCode::TopicAlreadyExists));
    }
}
