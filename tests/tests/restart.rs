//! Durability across restarts: clean shutdown (in-process and SIGTERM),
//! SIGKILL, and recovery of a torn or corrupt segment tail.
//!
//! The binary tests need `conveyor` built first: `cargo build -p
//! conveyor-server && cargo test -p conveyor-tests --test restart` (the same
//! profile for both; scripts/test does this).

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use conveyor_tests::client::{
    Consumed, Delivered, consume_all, produce_test_records, producer, producer_config, watermarks,
};
use conveyor_tests::{
    BatchOnDisk, ChildBroker, Runtime, TestBroker, TestRecord, batches_in, each_runtime,
    segment_files, unique_topic,
};
use tempfile::TempDir;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Checks `records` are exactly the `acked` ones, each where its delivery
/// report put it, byte for byte.
fn assert_exactly(records: &[Consumed], acked: &HashMap<usize, Delivered>, what: &str) {
    assert_eq!(records.len(), acked.len(), "{what}: record count");
    let mut seen = HashMap::new();
    for r in records {
        let i = r.index();
        let Some(d) = acked.get(&i) else {
            panic!(
                "{what}: record {i} at {}:{} was never acknowledged",
                r.partition, r.offset
            );
        };
        assert_eq!(
            (d.partition, d.offset),
            (r.partition, r.offset),
            "{what}: record {i} moved"
        );
        let want = TestRecord::new(i);
        assert_eq!(r.key.as_deref(), Some(&want.key[..]), "{what}: key of {i}");
        assert_eq!(
            r.value.as_deref(),
            Some(&want.value[..]),
            "{what}: value of {i}"
        );
        assert_eq!(r.headers, want.headers, "{what}: headers of {i}");
        assert!(seen.insert(i, ()).is_none(), "{what}: record {i} twice");
    }
}

fn data_dir() -> (TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("conveyor-restart-")
        .tempdir()
        .expect("temporary directory");
    let data = dir.path().join("data");
    fs::create_dir_all(&data).expect("create data dir");
    (dir, data)
}

each_runtime! {
    fn clean_shutdown_and_restart_in_process(rt) {
        let mut broker = TestBroker::start(rt);
        let topic = unique_topic("restart-clean");
        let p = producer(&producer_config(&broker.bootstrap(), "lz4"));
        let mut acked = produce_test_records(&p, &topic, None, 0..3_000, TIMEOUT);
        drop(p);
        assert_exactly(
            &consume_all(&broker.bootstrap(), &topic, 3, TIMEOUT),
            &acked,
            "before restart",
        );

        broker.restart();
        assert_exactly(
            &consume_all(&broker.bootstrap(), &topic, 3, TIMEOUT),
            &acked,
            "after restart",
        );

        // New records continue each partition's offsets; nothing is overwritten.
        let p = producer(&producer_config(&broker.bootstrap(), "none"));
        let more = produce_test_records(&p, &topic, None, 3_000..3_300, TIMEOUT);
        drop(p);
        acked.extend(more);
        assert_exactly(
            &consume_all(&broker.bootstrap(), &topic, 3, TIMEOUT),
            &acked,
            "after more produces",
        );
    }
}

each_runtime! {
    fn sigterm_is_a_clean_shutdown(rt) {
        let (_dir, data) = data_dir();
        let child = ChildBroker::spawn(rt, &data, &[]);
        let topic = unique_topic("restart-sigterm");
        let p = producer(&producer_config(&child.bootstrap(), "zstd"));
        let acked = produce_test_records(&p, &topic, None, 0..2_000, TIMEOUT);
        drop(p);
        let log = child.log();
        let status = child.terminate();
        assert!(
            status.success(),
            "conveyor exited with {status} after SIGTERM\nlog:\n{log}"
        );

        let child = ChildBroker::spawn(rt, &data, &[]);
        assert_exactly(
            &consume_all(&child.bootstrap(), &topic, 3, TIMEOUT),
            &acked,
            "after SIGTERM",
        );
    }
}

each_runtime! {
    fn sigkill_keeps_acknowledged_records(rt) {
        let (_dir, data) = data_dir();
        let child = ChildBroker::spawn(rt, &data, &[]);
        let topic = unique_topic("restart-kill");
        let p = producer(&producer_config(&child.bootstrap(), "none"));
        let mut acked = produce_test_records(&p, &topic, None, 0..5_000, TIMEOUT);
        drop(p);
        child.kill9();

        let child = ChildBroker::spawn(rt, &data, &[]);
        assert_exactly(
            &consume_all(&child.bootstrap(), &topic, 3, TIMEOUT),
            &acked,
            "after SIGKILL",
        );
        // Recovery reported each partition as it went: which of how many,
        // and the bytes it had to scan after the kill.
        let log = child.log();
        for p in 0..3 {
            let line = log
                .lines()
                .find(|l| l.contains("recovered a partition") && l.contains(&format!("dir={topic}-{p} ")))
                .unwrap_or_else(|| panic!("no recovery line for partition {p}:\n{log}"));
            assert!(line.contains("/3 "), "progress out of 3: {line}");
            assert!(!line.contains("scanned_bytes=0 "), "the active segment was scanned: {line}");
        }
        let p = producer(&producer_config(&child.bootstrap(), "none"));
        acked.extend(produce_test_records(
            &p,
            &topic,
            None,
            5_000..5_100,
            TIMEOUT,
        ));
        drop(p);
        assert_exactly(
            &consume_all(&child.bootstrap(), &topic, 3, TIMEOUT),
            &acked,
            "after new produces",
        );
    }
}

const BATCHES: usize = 4;
const PER_BATCH: usize = 50;

/// Produces `BATCHES` separately acknowledged batches to partition 0 of a
/// one-partition topic on the binary, SIGKILLs it, and returns the data dir,
/// topic, acknowledgements and the last segment file's batches.
fn crashed_with_batches(
    rt: Runtime,
) -> (
    TempDir,
    std::path::PathBuf,
    String,
    HashMap<usize, Delivered>,
) {
    let (dir, data) = data_dir();
    let child = ChildBroker::spawn(rt, &data, &[("num.partitions", "1")]);
    let topic = unique_topic("corrupt");
    let p = producer(&producer_config(&child.bootstrap(), "none"));
    let mut acked = HashMap::new();
    for b in 0..BATCHES {
        // Waiting for each acknowledgement makes each round its own batch.
        acked = produce_test_records(
            &p,
            &topic,
            Some(0),
            b * PER_BATCH..(b + 1) * PER_BATCH,
            TIMEOUT,
        );
    }
    drop(p);
    child.kill9();
    (dir, data, topic, acked)
}

fn last_segment(data: &Path, topic: &str) -> (std::path::PathBuf, Vec<u8>, Vec<BatchOnDisk>) {
    let segments = segment_files(data, topic, 0);
    let last = segments
        .last()
        .unwrap_or_else(|| panic!("no .log file under {}/{topic}-0", data.display()))
        .clone();
    let bytes = fs::read(&last).expect("read the last segment");
    let batches = batches_in(&bytes);
    let end = batches.last().map_or(0, |b| b.pos + b.len);
    assert_eq!(
        end,
        bytes.len(),
        "the segment should hold whole batches before we corrupt it"
    );
    (last, bytes, batches)
}

/// After recovery: exactly `survivors` (offsets below `good_end`), no
/// consumer error, and a new produce continues at `good_end`.
fn assert_recovered(
    rt: Runtime,
    data: &Path,
    topic: &str,
    acked: &HashMap<usize, Delivered>,
    good_end: i64,
) {
    let child = ChildBroker::spawn(rt, data, &[("num.partitions", "1")]);
    let mut survivors: HashMap<usize, Delivered> = acked
        .iter()
        .filter(|(_, d)| d.offset < good_end)
        .map(|(i, d)| (*i, *d))
        .collect();
    let consumer = conveyor_tests::client::consumer(&conveyor_tests::client::consumer_config(
        &child.bootstrap(),
    ));
    assert_eq!(
        watermarks(&consumer, topic, 1),
        vec![(0, good_end)],
        "log end after recovery\nlog:\n{}",
        child.log()
    );
    assert_exactly(
        &consume_all(&child.bootstrap(), topic, 1, TIMEOUT),
        &survivors,
        "recovered",
    );

    let p = producer(&producer_config(&child.bootstrap(), "none"));
    let new = produce_test_records(&p, topic, Some(0), 10_000..10_010, TIMEOUT);
    drop(p);
    for n in 0..10 {
        assert_eq!(
            new[&(10_000 + n)].offset,
            good_end + n as i64,
            "new records follow the good ones"
        );
    }
    survivors.extend(new);
    assert_exactly(
        &consume_all(&child.bootstrap(), topic, 1, TIMEOUT),
        &survivors,
        "after new produces",
    );
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open segment for append");
    f.write_all(bytes).expect("append");
    f.sync_all().expect("sync");
}

each_runtime! {
    fn garbage_after_the_last_batch_is_truncated(rt) {
        let (_dir, data, topic, acked) = crashed_with_batches(rt);
        let (last, _, _) = last_segment(&data, &topic);
        append(&last, &[0xAB; 333]);
        assert_recovered(rt, &data, &topic, &acked, (BATCHES * PER_BATCH) as i64);
    }
}

each_runtime! {
    fn a_torn_batch_at_the_tail_is_truncated(rt) {
        let (_dir, data, topic, acked) = crashed_with_batches(rt);
        let (last, bytes, batches) = last_segment(&data, &topic);
        // The first half of a copy of the last batch, renumbered as the next
        // one: what a crash in the middle of an append leaves.
        let b = *batches.last().expect("at least one batch");
        let mut torn = bytes[b.pos..b.pos + b.len / 2].to_vec();
        torn[..8].copy_from_slice(&(b.base_offset + b.records).to_be_bytes());
        append(&last, &torn);
        assert_recovered(rt, &data, &topic, &acked, (BATCHES * PER_BATCH) as i64);
    }
}

each_runtime! {
    fn a_corrupt_last_batch_is_truncated(rt) {
        let (_dir, data, topic, acked) = crashed_with_batches(rt);
        let (last, mut bytes, batches) = last_segment(&data, &topic);
        let b = *batches.last().expect("at least one batch");
        assert!(
            b.base_offset > 0,
            "need a good batch before the corrupt one: {batches:?}"
        );
        // Flip the last bytes (inside the last record): the CRC no longer matches.
        let n = bytes.len();
        for byte in &mut bytes[n - 4..] {
            *byte ^= 0xFF;
        }
        fs::write(&last, &bytes).expect("write the corrupted segment");
        assert_recovered(rt, &data, &topic, &acked, b.base_offset);
    }
}
