//! Log compaction against librdkafka on every runtime: records over a
//! small key space on a `cleanup.policy=compact` topic are cleaned on disk
//! to each key's latest value, which a consumer reading from the beginning
//! sees at its original offset (offsets only increase; the gaps are
//! skipped); the cleaned log survives a restart. One run, on the default
//! runtime, cleans 1,000,000 records over 1,000 keys; another SIGKILLs the
//! `conveyor` binary three times while it cleans.
//!
//! The binary test needs `conveyor` built first (`cargo build -p
//! conveyor-server`; scripts/test does this).
//!
//! Run: `cargo test -p conveyor-tests --test compaction`.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use conveyor_tests::client::{
    assign, block_on, client_config, consumer, consumer_config, producer, producer_config, send,
    wait_acked,
};
use conveyor_tests::{ChildBroker, Runtime, TestBroker, each_runtime, segment_files, unique_topic};
use rdkafka::Offset;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;

const TIMEOUT: Duration = Duration::from_secs(120);

fn create_compacted(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap).create().expect("admin client");
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "262144")
        .set("min.cleanable.dirty.ratio", "0.01");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let r = block_on(admin.create_topics([&new], &opts), Duration::from_secs(15))
        .expect("CreateTopics answered")
        .expect("CreateTopics");
    assert!(r[0].is_ok(), "{r:?}");
}

/// Records `0..n`, record `i` keyed `k{i % keys}` with value `v{i}`.
fn produce(bootstrap: &str, topic: &str, n: usize, keys: usize) {
    let mut config = producer_config(bootstrap, "lz4");
    config
        .set("linger.ms", "5")
        .set("batch.num.messages", "2000");
    let p = producer(&config);
    for i in 0..n {
        let (key, value) = (format!("k{}", i % keys), format!("v{i}"));
        let record = BaseRecord::with_opaque_to(topic, i)
            .partition(0)
            .key(key.as_bytes())
            .payload(value.as_bytes());
        send(&p, record, TIMEOUT);
        if i % 10_000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    wait_acked(&p, n, TIMEOUT);
}

/// Everything from the beginning up to the high watermark: (offset, key,
/// value), offsets strictly increasing.
fn read_all(bootstrap: &str, topic: &str) -> Vec<(i64, String, String)> {
    let c = consumer(&consumer_config(bootstrap));
    let (_, high) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    assign(&c, topic, &[(0, Offset::Beginning)]);
    let deadline = Instant::now() + TIMEOUT;
    let mut out: Vec<(i64, String, String)> = Vec::new();
    while out.last().is_none_or(|r| r.0 < high - 1) {
        assert!(
            Instant::now() < deadline,
            "read only to {:?} of {high}",
            out.last()
        );
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => panic!("consumer error: {e}"),
            Some(Ok(m)) => {
                let s =
                    |b: Option<&[u8]>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
                if let Some(last) = out.last() {
                    assert!(m.offset() > last.0, "offsets only increase");
                }
                out.push((m.offset(), s(m.key()), s(m.payload())));
            }
        }
    }
    out
}

/// The base offset of the partition's active (last) segment.
fn active_base(data: &Path, topic: &str) -> i64 {
    let last = segment_files(data, topic, 0).pop().expect("a segment");
    let stem = last
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("a segment name");
    stem.parse().expect("a 20-digit base offset")
}

/// Produce, wait for the cleaner, and check what a consumer reads.
fn compact(rt: Runtime, n: usize, keys: usize) {
    let mut broker = TestBroker::start_with(rt, &[("log.cleaner.backoff.ms", "200")]);
    let topic = unique_topic("compacted");
    create_compacted(&broker.bootstrap(), &topic);
    produce(&broker.bootstrap(), &topic, n, keys);
    let mut latest: HashMap<String, String> = HashMap::new();
    for i in 0..n {
        latest.insert(format!("k{}", i % keys), format!("v{i}"));
    }

    // Cleaned when every key appears once below the active segment.
    let deadline = Instant::now() + TIMEOUT;
    let rows = loop {
        let rows = read_all(&broker.bootstrap(), &topic);
        let end = active_base(&broker.data_dir(), &topic);
        let mut seen = HashMap::new();
        let once = rows
            .iter()
            .filter(|r| r.0 < end)
            .all(|r| seen.insert(r.1.clone(), ()).is_none());
        if once && end > 0 {
            break rows;
        }
        assert!(Instant::now() < deadline, "not cleaned within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(rows.len() < n / 2, "{} of {n} records left", rows.len());
    let mut last: HashMap<&str, &str> = HashMap::new();
    for r in &rows {
        last.insert(&r.1, &r.2);
    }
    assert_eq!(last.len(), keys, "every key survives");
    for (k, v) in &latest {
        assert_eq!(
            last.get(k.as_str()),
            Some(&v.as_str()),
            "the latest value of {k}"
        );
    }

    broker.restart();
    assert_eq!(
        read_all(&broker.bootstrap(), &topic),
        rows,
        "the same after a restart"
    );
}

each_runtime! {
    fn cleans_to_the_latest_per_key(rt) {
        compact(rt, 100_000, 500);
    }
}

#[test]
fn a_million_records_over_a_thousand_keys() {
    compact(Runtime::Mio, 1_000_000, 1_000);
}

/// SIGKILL the broker at several points while it cleans (pieces throttled
/// so each kill lands mid-pass), restarting on the same data each time:
/// every restart reads a whole log — each key's latest value, offsets only
/// increasing, nothing that was not written — and the cleaning finishes.
#[test]
fn sigkill_while_cleaning_restarts_into_a_whole_log() {
    let dir = tempfile::Builder::new()
        .prefix("conveyor-compaction-")
        .tempdir()
        .expect("temporary directory");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data directory");
    let settings = [
        ("log.cleaner.backoff.ms", "100"),
        ("log.cleaner.io.max.bytes.per.second", "2000000"),
    ];
    let (n, keys) = (300_000, 1_000);
    let topic = unique_topic("killed");
    let mut broker = ChildBroker::spawn(Runtime::Mio, &data, &settings);
    create_compacted(&broker.bootstrap(), &topic);
    produce(&broker.bootstrap(), &topic, n, keys);
    let mut latest: HashMap<String, String> = HashMap::new();
    for i in 0..n {
        latest.insert(format!("k{}", i % keys), format!("v{i}"));
    }
    let check = |rows: &[(i64, String, String)], what: &str| {
        let mut last: HashMap<&str, &str> = HashMap::new();
        for (_, k, v) in rows {
            let i: usize = v[1..].parse().expect("a value written here");
            assert_eq!(
                k,
                &format!("k{}", i % keys),
                "{what}: {k}={v} was never written"
            );
            last.insert(k, v);
        }
        assert_eq!(last.len(), keys, "{what}: every key survives");
        for (k, v) in &latest {
            assert_eq!(
                last.get(k.as_str()),
                Some(&v.as_str()),
                "{what}: the latest value of {k}"
            );
        }
    };
    for (round, wait_ms) in [300u64, 700, 1100].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(wait_ms));
        let status = broker.kill9();
        assert!(!status.success(), "killed, not exited");
        broker = ChildBroker::spawn(Runtime::Mio, &data, &settings);
        let rows = read_all(&broker.bootstrap(), &topic);
        check(&rows, &format!("after kill {}", round + 1));
    }
    // Left alone, the cleaning finishes.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let rows = read_all(&broker.bootstrap(), &topic);
        let end = active_base(&data, &topic);
        let mut seen = HashMap::new();
        if rows
            .iter()
            .filter(|r| r.0 < end)
            .all(|r| seen.insert(r.1.clone(), ()).is_none())
        {
            check(&rows, "cleaned");
            break;
        }
        assert!(Instant::now() < deadline, "not cleaned within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    broker.terminate();
}
