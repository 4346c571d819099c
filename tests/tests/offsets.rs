//! ListOffsets and Fetch positioning through librdkafka: earliest and latest
//! (watermarks), offsets by timestamp, a fetch starting inside a compressed
//! batch, and a long-poll fetch woken by a produce.
//!
//! Run: `cargo test -p conveyor-tests --test offsets`.

use std::thread;
use std::time::{Duration, Instant};

use conveyor_tests::client::{
    self, assign, consume, consumer, consumer_config, expect_nothing_more, owned_headers,
    produce_test_records, producer, producer_config, send, wait_acked, watermarks,
};
use conveyor_tests::{Runtime, TestBroker, TestRecord, each_runtime, unique_topic};
use rdkafka::consumer::Consumer;
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

/// One-partition topics keep the offset arithmetic obvious.
fn broker(rt: Runtime) -> TestBroker {
    TestBroker::start_with(rt, &[("num.partitions", "1")])
}

fn offset_for_time(c: &rdkafka::consumer::BaseConsumer, topic: &str, ts: i64) -> Offset {
    let mut tpl = TopicPartitionList::new();
    // librdkafka passes the timestamp in the offset field.
    tpl.add_partition_offset(topic, 0, Offset::Offset(ts))
        .expect("add partition");
    let answer = c
        .offsets_for_times(tpl, TIMEOUT)
        .unwrap_or_else(|e| panic!("offsets_for_times({ts}): {e}"));
    let elems = answer.elements();
    assert_eq!(elems.len(), 1, "one partition asked, one answered");
    assert!(
        elems[0].error().is_ok(),
        "offsets_for_times({ts}) partition error: {:?}",
        elems[0].error()
    );
    elems[0].offset()
}

each_runtime! {
    /// Earliest and latest offsets follow produces; a timestamp maps to the
    /// first record at or after it, inside a batch as well as at its start.
    fn list_offsets_earliest_latest_and_by_timestamp(rt) {
        let broker = broker(rt);
        let topic = unique_topic("list-offsets");
        let producer = producer(&producer_config(&broker.bootstrap(), "none"));
        // An hour ago, whole seconds: far from "now", so a broker that stamps
        // its own time instead of keeping CreateTime is caught.
        let t0 = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64
            - 3_600_000)
            / 1000
            * 1000;
        // Two batches of five (a flush between), record i stamped t0 + i s.
        for half in 0..2usize {
            for i in half * 5..half * 5 + 5 {
                let r = TestRecord::new(i);
                let record = BaseRecord::with_opaque_to(&topic, i)
                    .partition(0)
                    .key(&r.key[..])
                    .payload(&r.value[..])
                    .headers(owned_headers(&r.headers))
                    .timestamp(t0 + i as i64 * 1000);
                send(&producer, record, TIMEOUT);
            }
            wait_acked(&producer, half * 5 + 5, TIMEOUT);
        }

        let c = consumer(&consumer_config(&broker.bootstrap()));
        assert_eq!(
            watermarks(&c, &topic, 1),
            vec![(0, 10)],
            "earliest and latest after 10 records"
        );

        let cases = [
            (t0 - 5_000, Offset::Offset(0)), // before everything: the first record
            (t0, Offset::Offset(0)),
            (t0 + 1, Offset::Offset(1)), // just after record 0: the next record
            (t0 + 3_000, Offset::Offset(3)), // inside the first batch
            (t0 + 3_500, Offset::Offset(4)),
            (t0 + 5_000, Offset::Offset(5)), // first record of the second batch
            (t0 + 7_200, Offset::Offset(8)), // inside the second batch
            (t0 + 9_000, Offset::Offset(9)), // the last record
            (t0 + 9_001, Offset::End),       // after everything: -1
        ];
        // Collect every mismatch so one run shows the whole picture.
        let wrong: Vec<String> = cases
            .iter()
            .filter_map(|&(ts, want)| {
                let got = offset_for_time(&c, &topic, ts);
                (got != want).then(|| format!("t0{:+} ms: got {got:?}, want {want:?}", ts - t0))
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "offsets_for_times must give the first record at or after the timestamp (Kafka \
             looks inside the batch):\n{}",
            wrong.join("\n")
        );

        // Consumed timestamps are the producer's CreateTime.
        assign(&c, &topic, &[(0, Offset::Beginning)]);
        let got = consume(&c, 10, TIMEOUT);
        for r in &got {
            assert_eq!(
                r.timestamp,
                Some(t0 + r.offset * 1000),
                "timestamp of offset {}",
                r.offset
            );
        }

        // Latest moves with new records; earliest stays.
        produce_test_records(&producer, &topic, Some(0), 10..13, TIMEOUT);
        assert_eq!(
            watermarks(&c, &topic, 1),
            vec![(0, 13)],
            "after 3 more records"
        );
    }
}

each_runtime! {
    /// A fetch from an offset inside a compressed batch yields records from
    /// exactly that offset (the broker may send the whole batch; the client
    /// skips, but it must get the batch that holds the offset).
    fn fetch_from_the_middle_of_a_compressed_batch(rt) {
        let broker = broker(rt);
        for codec in ["gzip", "snappy", "lz4", "zstd"] {
            let topic = unique_topic(&format!("mid-{codec}"));
            let mut config = producer_config(&broker.bootstrap(), codec);
            // A long linger puts all 100 records in one batch.
            config.set("linger.ms", "500");
            let producer = producer(&config);
            let acked = produce_test_records(&producer, &topic, Some(0), 0..100, TIMEOUT);
            for (i, d) in &acked {
                assert_eq!(
                    (d.partition, d.offset),
                    (0, *i as i64),
                    "{codec}: record {i}"
                );
            }

            let c = consumer(&consumer_config(&broker.bootstrap()));
            assign(&c, &topic, &[(0, Offset::Offset(37))]);
            let got = consume(&c, 63, TIMEOUT);
            for (n, r) in got.iter().enumerate() {
                let i = 37 + n;
                assert_eq!(r.offset, i as i64, "{codec}: offsets from 37 in order");
                let want = TestRecord::new(i);
                assert_eq!(r.key.as_deref(), Some(&want.key[..]), "{codec}: key at {i}");
                assert_eq!(
                    r.value.as_deref(),
                    Some(&want.value[..]),
                    "{codec}: value at {i}"
                );
            }
            expect_nothing_more(&c, Duration::from_millis(300));
        }
    }
}

each_runtime! {
    /// A consumer waiting at the end of the log (long-poll Fetch with a long
    /// max wait) gets a record produced ~500 ms later promptly: the broker
    /// answers the parked fetch when data arrives, not when max wait runs out.
    fn long_poll_fetch_returns_when_a_record_arrives(rt) {
        const MAX_WAIT_MS: u64 = 8_000;
        let broker = broker(rt);
        let topic = unique_topic("long-poll");
        let producer = producer(&producer_config(&broker.bootstrap(), "none"));
        produce_test_records(&producer, &topic, Some(0), 0..1, TIMEOUT);

        let mut config = consumer_config(&broker.bootstrap());
        config
            .set("fetch.wait.max.ms", MAX_WAIT_MS.to_string())
            .set("socket.timeout.ms", (MAX_WAIT_MS + 5_000).to_string());
        let c = consumer(&config);
        assign(&c, &topic, &[(0, Offset::Offset(1))]);
        // Let the consumer reach the end and park a fetch there.
        expect_nothing_more(&c, Duration::from_millis(1_000));

        let bootstrap = broker.bootstrap();
        let topic2 = topic.clone();
        let sent_at = thread::spawn(move || {
            thread::sleep(Duration::from_millis(500));
            let p = client::producer(&producer_config(&bootstrap, "none"));
            let at = Instant::now();
            produce_test_records(&p, &topic2, Some(0), 1..2, TIMEOUT);
            at
        });
        let got = consume(&c, 1, Duration::from_secs(15));
        let arrived = Instant::now();
        let sent_at = sent_at.join().expect("producer thread");
        assert_eq!((got[0].offset, got[0].index()), (1, 1), "the new record");
        let latency = arrived.saturating_duration_since(sent_at);
        assert!(
            latency < Duration::from_millis(2_500),
            "the parked fetch returned {latency:?} after the produce; it should wake on new data, \
             not wait out fetch.wait.max.ms={MAX_WAIT_MS}"
        );
        drop(producer);
    }
}
