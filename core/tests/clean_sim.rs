//! The log cleaner on a live broker: a compacted topic's sealed segments
//! are cleaned to each key's latest record at its original offset,
//! tombstones go after `delete.retention.ms`, reads during and after see
//! offsets that only increase, and a crash before, at or after a swap's
//! commit point restarts into a whole log (the old segment or the new).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::{Sim, create_topic, keyed_batch};
use conveyor_core::log::batch::{self, BatchHeader};
use conveyor_core::sim::SimDisk;
use conveyor_core::{Command, Config, ConnId};
use kafka_protocol::messages::*;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

const TOPIC: &str = "table";
const KEYS: usize = 20;
const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// A record as read back: offset, key, value (`None`: tombstone).
type Row = (i64, String, Option<String>);

fn config() -> Config {
    let mut c = Config::default();
    c.set("log.cleaner.backoff.ms", "1000").unwrap();
    c
}

fn start(disk: SimDisk) -> (Sim, ConnId) {
    let mut sim = Sim::with_disk(config(), disk);
    let c = sim.open(1);
    (sim, c)
}

/// The compacted topic; every produce synced (`flush.messages=1`), so a
/// crash keeps every acknowledged record and only the cleaner's own
/// ordering of writes, syncs and renames is on trial.
fn new_topic(sim: &mut Sim, c: ConnId) {
    create_topic(
        sim,
        c,
        TOPIC,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "4096"),
            ("delete.retention.ms", "60000"),
            ("flush.messages", "1"),
        ],
    );
}

/// Produce `n` batches of ten records, record `i` with key `k{i % KEYS}`
/// and value `v{i}`, except that keys in `tombstone` get a null value at
/// their last record; returns what was written.
fn produce(sim: &mut Sim, c: ConnId, from: usize, n: usize, tombstone: &[usize]) -> Vec<Row> {
    let mut rows = Vec::new();
    let last = from + n * 10;
    for b in 0..n {
        let recs: Vec<(String, Option<String>)> = (0..10)
            .map(|j| {
                let i = from + b * 10 + j;
                let k = i % KEYS;
                let dead = tombstone.contains(&k) && i + KEYS >= last;
                (format!("k{k}"), (!dead).then(|| format!("v{i}")))
            })
            .collect();
        let refs: Vec<(Option<&str>, Option<&str>)> = recs
            .iter()
            .map(|(k, v)| (Some(k.as_str()), v.as_deref()))
            .collect();
        let now = sim.now.wall_ms;
        let codec = CODECS[(from / 10 + b) % CODECS.len()];
        let corr = sim.produce(c, TOPIC, 0, keyed_batch(&refs, now, codec));
        let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        for (j, (k, v)) in recs.into_iter().enumerate() {
            rows.push((p.base_offset + j as i64, k, v));
        }
    }
    rows
}

/// Every record from offset 0 on, fetched batch by batch; batch offsets
/// must only increase and every batch must be whole.
fn read_all(sim: &mut Sim, c: ConnId) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut offset = 0i64;
    for _ in 0..10_000 {
        let corr = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req(TOPIC, offset, 0));
        let f: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, corr);
        let p = &f.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch at {offset}");
        let bytes = p.records.clone().unwrap_or_default();
        if bytes.is_empty() {
            return rows;
        }
        for (pos, h) in batch::scan(&bytes, 0) {
            let whole = bytes.slice(pos..pos + h.total_len() as usize);
            assert_eq!(batch::crc_of(&whole), Some(h.crc), "a whole batch");
            assert!(h.last_offset() >= offset, "offsets only increase");
            let mut buf = whole.clone();
            for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
                for r in set.records {
                    if r.offset < offset {
                        continue;
                    }
                    let s = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                    rows.push((r.offset, s(r.key).unwrap(), s(r.value)));
                }
            }
            offset = h.last_offset() + 1;
        }
    }
    panic!("the log never ended");
}

/// The base offset of the active (last) segment, from the files.
fn active_base(sim: &Sim) -> i64 {
    sim.disk
        .paths()
        .iter()
        .filter_map(|p| {
            p.strip_prefix(&format!("{TOPIC}-0/"))?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .max()
        .unwrap()
}

/// What cleaning everything below `end` leaves of `rows`: each key's last
/// record below `end` (a tombstone only while `tombstones` keep), and
/// everything from `end` on.
fn cleaned(rows: &[Row], end: i64, tombstones: bool) -> Vec<Row> {
    let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
    for (o, k, _) in rows.iter().filter(|r| r.0 < end) {
        latest.insert(k, *o);
    }
    rows.iter()
        .filter(|(o, k, v)| *o >= end || (latest[k.as_str()] == *o && (v.is_some() || tombstones)))
        .cloned()
        .collect()
}

fn is_swap(cmd: &Command) -> bool {
    matches!(cmd, Command::SwapCleaned { .. })
}

/// Move time past `log.cleaner.backoff.ms` and run the broker to the first
/// command `stop` picks (returned unexecuted): a pass under way.
fn run_pass_until(sim: &mut Sim, what: &str, stop: impl Fn(&Command) -> bool) -> Command {
    sim.now = sim.now.advance(Duration::from_millis(1500));
    sim.broker.handle_timeout(sim.now);
    sim.run_until(stop)
        .unwrap_or_else(|| panic!("no pass reached {what}"))
}

#[test]
fn compaction_keeps_the_latest_per_key_and_drops_old_tombstones() {
    let (mut sim, c) = start(SimDisk::default());
    new_topic(&mut sim, c);
    let rows = produce(&mut sim, c, 0, 40, &[3]);
    assert_eq!(read_all(&mut sim, c), rows, "nothing cleaned yet");
    let end = active_base(&sim);
    assert!(end > 100, "several sealed segments");

    sim.advance(Duration::from_millis(1500));
    let after = read_all(&mut sim, c);
    assert_eq!(after, cleaned(&rows, end, true));
    assert!(
        after.len() < rows.len(),
        "{} of {}",
        after.len(),
        rows.len()
    );
    assert!(
        sim.disk.paths().iter().all(|p| !p.ends_with(".cleaned")),
        "every swap finished"
    );

    // Past delete.retention.ms, with new dirty segments, the next pass
    // drops the tombstone of k3 too.
    sim.now = sim.now.advance(Duration::from_secs(120));
    let more = produce(&mut sim, c, 400, 40, &[]);
    let mut all = after.clone();
    all.extend(more);
    let end2 = active_base(&sim);
    sim.advance(Duration::from_millis(1500));
    let twice = read_all(&mut sim, c);
    assert_eq!(twice, cleaned(&all, end2, false));
    let tombstone = rows
        .iter()
        .find(|r| r.2.is_none())
        .expect("k3's tombstone")
        .0;
    assert!(after.iter().any(|r| r.0 == tombstone), "kept while young");
    assert!(twice.iter().all(|r| r.0 != tombstone), "gone once old");

    // A clean restart keeps it all, and the cleaner's checkpoint.
    sim.broker.shutdown(sim.now);
    sim.run();
    assert!(sim.disk.file("cleaner-offset-checkpoint").is_some());
    let (mut sim, c) = start(std::mem::take(&mut sim.disk));
    assert_eq!(read_all(&mut sim, c), twice);
}

#[test]
fn a_crash_before_the_swap_keeps_the_old_segment() {
    let (mut sim, c) = start(SimDisk::default());
    new_topic(&mut sim, c);
    let rows = produce(&mut sim, c, 0, 40, &[]);
    // A crash just before the swap: it is never executed.
    let _swap = run_pass_until(&mut sim, "a swap", is_swap);
    assert!(sim.disk.paths().iter().any(|p| p.ends_with(".log.cleaned")));
    sim.disk.crash();
    let (mut sim, c) = start(std::mem::take(&mut sim.disk));
    assert_eq!(read_all(&mut sim, c), rows, "the old segments, whole");
    assert!(sim.disk.paths().iter().all(|p| !p.ends_with(".cleaned")));
    // The next pass cleans after all.
    let end = active_base(&sim);
    sim.advance(Duration::from_millis(1500));
    assert_eq!(read_all(&mut sim, c), cleaned(&rows, end, true));
}

#[test]
fn a_crash_at_the_commit_point_finishes_the_swap() {
    let (mut sim, c) = start(SimDisk::default());
    new_topic(&mut sim, c);
    let rows = produce(&mut sim, c, 0, 40, &[]);
    let end = active_base(&sim);
    sim.disk.break_next_swap();
    sim.advance(Duration::from_millis(1500));
    // The swap stopped after the log's rename: the partition is offline
    // until a restart finishes it.
    assert!(
        sim.disk
            .paths()
            .iter()
            .any(|p| p.ends_with(".index.cleaned"))
    );
    let now = sim.now.wall_ms;
    let corr = sim.produce(
        c,
        TOPIC,
        0,
        keyed_batch(&[(Some("k"), Some("v"))], now, Compression::None),
    );
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 56,
        "KAFKA_STORAGE_ERROR"
    );
    sim.disk.crash();
    let (mut sim, c) = start(std::mem::take(&mut sim.disk));
    assert!(sim.disk.paths().iter().all(|p| !p.ends_with(".cleaned")));
    // The first segment is the cleaned one; later ones were not reached.
    let got = read_all(&mut sim, c);
    let want = cleaned(&rows, end, true);
    assert!(got.len() < rows.len(), "one segment lost its old records");
    assert!(
        want.iter().all(|r| got.contains(r)),
        "every key's latest survives"
    );
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    // And a later pass completes the cleaning.
    sim.advance(Duration::from_millis(1500));
    assert_eq!(read_all(&mut sim, c), want);
}

#[test]
fn headers_and_indexes_of_a_cleaned_segment_line_up() {
    let (mut sim, c) = start(SimDisk::default());
    new_topic(&mut sim, c);
    produce(&mut sim, c, 0, 40, &[]);
    sim.advance(Duration::from_millis(1500));
    for path in sim.disk.paths() {
        let Some(stem) = path.strip_suffix(".log") else {
            continue;
        };
        let log = sim.disk.file(&path).unwrap();
        let mut end = 0;
        let mut last = -1;
        for (pos, h) in batch::scan(log, 0) {
            let b = BatchHeader::parse(&log[pos..]).unwrap();
            assert_eq!(
                batch::crc_of(&log[pos..pos + h.total_len() as usize]),
                Some(b.crc)
            );
            assert!(h.base_offset > last);
            last = h.last_offset();
            end = pos + h.total_len() as usize;
        }
        assert_eq!(end, log.len(), "{path} holds whole batches only");
        let index = sim.disk.file(&format!("{stem}.index")).unwrap();
        assert_eq!(index.len() % 8, 0);
        for e in index.chunks(8) {
            let pos = u32::from_be_bytes(e[4..8].try_into().unwrap()) as usize;
            assert!(
                BatchHeader::parse(&log[pos..]).is_some(),
                "{path}: index entry at a batch"
            );
        }
    }
}

fn log_files(sim: &Sim, dir: &str) -> usize {
    sim.disk
        .paths()
        .iter()
        .filter(|p| p.starts_with(&format!("{dir}/")) && p.ends_with(".log"))
        .count()
}

#[test]
fn small_cleaned_segments_merge_and_a_crash_at_the_merge_commit_recovers() {
    let (mut sim, c) = start(SimDisk::default());
    new_topic(&mut sim, c);
    // Several sealed segments, each cleaned on its own by the first pass.
    let written = produce(&mut sim, c, 0, 120, &[]);
    sim.advance(Duration::from_millis(1500));
    let mut rows = read_all(&mut sim, c);
    assert!(rows.len() < written.len());
    let before = log_files(&sim, "table-0");
    assert!(before > 4, "{before} segments");
    rows.extend(produce(&mut sim, c, 1200, 40, &[]));
    let end = active_base(&sim);
    let want = cleaned(&rows, end, true);

    // The second pass merges the small cleaned segments; stop its first
    // swap right at the commit point, then lose power.
    sim.disk.break_next_swap();
    sim.advance(Duration::from_millis(1500));
    let listing: Vec<(String, usize)> = sim
        .disk
        .paths()
        .into_iter()
        .map(|p| {
            let n = sim.disk.file(&p).map_or(0, <[u8]>::len);
            (p, n)
        })
        .collect();
    assert!(
        sim.disk.paths().iter().any(|p| p.ends_with(".swap")),
        "a manifest for the merge: {listing:?}"
    );
    sim.disk.crash();
    let (mut sim, c) = start(std::mem::take(&mut sim.disk));
    assert!(
        sim.disk
            .paths()
            .iter()
            .all(|p| !p.ends_with(".cleaned") && !p.ends_with(".swap"))
    );
    let got = read_all(&mut sim, c);
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "no segment overlaps another"
    );
    assert!(
        want.iter().all(|r| got.contains(r)),
        "every key's latest survives"
    );
    assert!(
        got.iter().all(|r| rows.contains(r)),
        "nothing appears that was not written"
    );
    sim.advance(Duration::from_millis(1500));
    assert_eq!(read_all(&mut sim, c), want);
    assert!(log_files(&sim, "table-0") < before, "segments merged");
}

#[test]
fn consumer_offsets_stay_small_under_frequent_commits() {
    let mut config = config();
    config.set("offsets.topic.num.partitions", "1").unwrap();
    config.set("offsets.topic.segment.bytes", "4096").unwrap();
    let mut sim = Sim::with_disk(config.clone(), SimDisk::default());
    let c = sim.open(1);
    create_topic(&mut sim, c, "t", 1, &[]);
    let commit = |offset: i64| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(
                kafka_protocol::protocol::StrBytes::from_static_str("g"),
            ))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(
                        kafka_protocol::protocol::StrBytes::from_static_str("t"),
                    ))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ]),
            ])
    };
    let size = |sim: &Sim| -> usize {
        sim.disk
            .paths()
            .iter()
            .filter(|p| p.starts_with("__consumer_offsets-0/"))
            .map(|p| sim.disk.file(p).map_or(0, <[u8]>::len))
            .sum()
    };
    let mut largest = 0;
    for i in 0..100_000i64 {
        let corr = sim.send(c, ApiKey::OffsetCommit, 8, &commit(i));
        let r: OffsetCommitResponse = sim.recv(c, ApiKey::OffsetCommit, 8, corr);
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
        if i % 2_500 == 2_499 {
            sim.advance(Duration::from_millis(1500));
            largest = largest.max(size(&sim));
        }
    }
    let written = 100_000 * 80;
    assert!(
        largest < 32 * 1024,
        "__consumer_offsets reached {largest} bytes for {written} written"
    );
    // The latest commit survives cleaning and a restart.
    sim.broker.shutdown(sim.now);
    sim.run();
    let mut sim = Sim::with_disk(config, std::mem::take(&mut sim.disk));
    let c = sim.open(1);
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(
            kafka_protocol::protocol::StrBytes::from_static_str("g"),
        ))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(
                    kafka_protocol::protocol::StrBytes::from_static_str("t"),
                ))
                .with_partition_indexes(vec![0]),
        ]));
    let corr = sim.send(c, ApiKey::OffsetFetch, 7, &req);
    let r: OffsetFetchResponse = sim.recv(c, ApiKey::OffsetFetch, 7, corr);
    assert_eq!(r.topics[0].partitions[0].committed_offset, 99_999);
}

#[test]
fn an_io_error_while_cleaning_abandons_only_the_pass() {
    let (mut sim, c) = start(SimDisk::default());
    new_topic(&mut sim, c);
    let rows = produce(&mut sim, c, 0, 40, &[]);
    let end = active_base(&sim);
    // The cleaned segment's Append fails (its creation is the first
    // file command of the pass).
    sim.disk.fail_after(1);
    sim.advance(Duration::from_millis(1500));
    assert_eq!(read_all(&mut sim, c), rows, "the log as it was");
    assert!(
        sim.disk.paths().iter().all(|p| !p.ends_with(".cleaned")),
        "the attempt's files went"
    );
    // Still online, and the next pass cleans.
    let now = sim.now.wall_ms;
    let corr = sim.produce(
        c,
        TOPIC,
        0,
        keyed_batch(&[(Some("k0"), Some("late"))], now, Compression::None),
    );
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    let mut all = rows.clone();
    all.push((rows.len() as i64, "k0".into(), Some("late".into())));
    sim.advance(Duration::from_millis(1500));
    assert_eq!(read_all(&mut sim, c), cleaned(&all, end, true));
}

#[test]
fn a_large_segment_is_cleaned_in_throttled_pieces() {
    let mut config = config();
    config
        .set("log.cleaner.io.max.bytes.per.second", "1048576")
        .unwrap();
    let mut sim = Sim::with_disk(config, SimDisk::default());
    let c = sim.open(1);
    create_topic(
        &mut sim,
        c,
        TOPIC,
        1,
        &[("cleanup.policy", "compact"), ("segment.bytes", "4194304")],
    );
    // About 5 MiB: a 4 MiB sealed segment of 1 KiB values over 50 keys.
    let pad = "x".repeat(1000);
    let mut rows = Vec::new();
    for b in 0..100 {
        let recs: Vec<(String, String)> = (0..50)
            .map(|j| (format!("k{j}"), format!("{}-{pad}", b * 50 + j)))
            .collect();
        let refs: Vec<(Option<&str>, Option<&str>)> = recs
            .iter()
            .map(|(k, v)| (Some(k.as_str()), Some(v.as_str())))
            .collect();
        let now = sim.now.wall_ms;
        let corr = sim.produce(c, TOPIC, 0, keyed_batch(&refs, now, Compression::None));
        let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
        let base = r.responses[0].partition_responses[0].base_offset;
        for (j, (k, v)) in recs.into_iter().enumerate() {
            rows.push((base + j as i64, k, Some(v)));
        }
    }
    let end = active_base(&sim);
    assert!(end > 3000, "one large sealed segment, up to {end}");
    let want = cleaned(&rows, end, true);
    let mut waited = Duration::ZERO;
    sim.advance(Duration::from_millis(1000));
    while read_all(&mut sim, c) != want {
        assert!(
            waited < Duration::from_secs(20),
            "not cleaned after {waited:?}"
        );
        sim.advance(Duration::from_millis(250));
        waited += Duration::from_millis(250);
    }
    // 4 MiB at 1 MiB/s: at least three more seconds after the first piece.
    assert!(
        waited >= Duration::from_secs(3),
        "cleaned in {waited:?}: not throttled"
    );
}

#[test]
fn a_clean_shutdown_mid_pass_leaves_a_whole_log() {
    let (mut sim, c) = start(SimDisk::default());
    new_topic(&mut sim, c);
    let rows = produce(&mut sim, c, 0, 40, &[]);
    let end = active_base(&sim);
    let create = run_pass_until(&mut sim, "CreateCleaned", |cmd| {
        matches!(cmd, Command::CreateCleaned { .. })
    });
    let done = sim.disk.execute(&create);
    sim.broker.handle_done(sim.now, done);
    // Shut down with the group's writes in flight: the pass stops, its
    // files go, the broker stops.
    sim.broker.shutdown(sim.now);
    sim.run();
    assert!(sim.broker.is_stopped());
    assert!(sim.disk.paths().iter().all(|p| !p.ends_with(".cleaned")));
    let (mut sim, c) = start(std::mem::take(&mut sim.disk));
    assert_eq!(read_all(&mut sim, c), rows, "the log as written");
    sim.advance(Duration::from_millis(1500));
    assert_eq!(read_all(&mut sim, c), cleaned(&rows, end, true));
}

fn is_job(cmd: &Command) -> bool {
    matches!(cmd, Command::Compute { .. })
}

/// The cleaner reads segments only in jobs the driver runs
/// (`Command::Compute`), one at a time per pass: while one is held, the
/// broker answers produces and fetches and asks for no other; once it is
/// answered the pass goes on.
#[test]
fn cleaning_runs_as_jobs_and_requests_are_answered_while_one_is_out() {
    let (mut sim, c) = start(SimDisk::default());
    new_topic(&mut sim, c);
    let mut rows = produce(&mut sim, c, 0, 40, &[]);
    let end = active_base(&sim);
    let job = run_pass_until(&mut sim, "a job", is_job);
    let before = sim.disk.jobs_run();

    rows.extend(produce(&mut sim, c, 400, 3, &[]));
    assert_eq!(read_all(&mut sim, c), rows, "served, uncleaned, meanwhile");
    sim.advance(Duration::from_millis(100));
    assert_eq!(
        sim.disk.jobs_run(),
        before,
        "no second job while one is out"
    );

    let done = sim.disk.execute(&job);
    sim.broker.handle_done(sim.now, done);
    sim.advance(Duration::from_millis(1500));
    assert!(sim.disk.jobs_run() > before + 1, "the pass went on in jobs");
    assert_eq!(read_all(&mut sim, c), cleaned(&rows, end, true));
}

/// A job the driver fails abandons only the pass; an answer that comes
/// after the pass stopped (a clean shutdown) is dropped, and shutdown waits
/// for it.
#[test]
fn a_failed_job_abandons_the_pass_and_a_late_answer_is_dropped() {
    let (mut sim, c) = start(SimDisk::default());
    new_topic(&mut sim, c);
    let rows = produce(&mut sim, c, 0, 40, &[]);
    let end = active_base(&sim);
    let job = run_pass_until(&mut sim, "a job", is_job);
    let error = conveyor_core::IoError {
        kind: std::io::ErrorKind::Other,
        message: "worker gone".into(),
    };
    sim.broker.handle_done(
        sim.now,
        conveyor_core::Done {
            io: job.io(),
            result: Err(error),
        },
    );
    sim.run();
    assert_eq!(read_all(&mut sim, c), rows, "the log as written");
    assert!(sim.disk.paths().iter().all(|p| !p.ends_with(".cleaned")));

    // The next pass: shut down while its first job is out.
    let job = run_pass_until(&mut sim, "a job", is_job);
    sim.broker.shutdown(sim.now);
    sim.run();
    assert!(!sim.broker.is_stopped(), "shutdown waits for the job");
    let done = sim.disk.execute(&job);
    sim.broker.handle_done(sim.now, done);
    sim.run();
    assert!(sim.broker.is_stopped());
    assert!(sim.disk.paths().iter().all(|p| !p.ends_with(".cleaned")));
    let (mut sim, c) = start(std::mem::take(&mut sim.disk));
    assert_eq!(read_all(&mut sim, c), rows, "the log as written");
    sim.advance(Duration::from_millis(1500));
    assert_eq!(read_all(&mut sim, c), cleaned(&rows, end, true));
}

/// A response queued behind a long-polling fetch on its connection pins
/// the segments it was read from before its `Send` is issued; the swap
/// that replaces them waits until it is sent (seeded simulation, seed 34:
/// the `Send` named a segment the swap had deleted).
#[test]
fn a_swap_waits_for_a_response_queued_behind_a_long_poll() {
    let (mut sim, c) = start(SimDisk::default());
    new_topic(&mut sim, c);
    create_topic(&mut sim, c, "idle", 1, &[]);
    let rows = produce(&mut sim, c, 0, 40, &[]);
    let end = active_base(&sim);

    // A consumer's long poll on an empty partition, then a read of the
    // compacted log pipelined behind it: that answer is built, and waits.
    let r = sim.open(2);
    let poll = sim.send(r, ApiKey::Fetch, 12, &Sim::fetch_req("idle", 0, 5000));
    let read = sim.send(r, ApiKey::Fetch, 12, &Sim::fetch_req(TOPIC, 0, 0));

    // The cleaner runs meanwhile; its swap must not delete what the
    // queued answer names.
    sim.advance(Duration::from_millis(1500));
    sim.advance(Duration::from_millis(4000));
    let f: FetchResponse = sim.recv(r, ApiKey::Fetch, 12, poll);
    assert_eq!(f.responses[0].partitions[0].error_code, 0);
    let f: FetchResponse = sim.recv(r, ApiKey::Fetch, 12, read);
    let p = &f.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let got = p.records.clone().unwrap_or_default();
    assert!(!got.is_empty(), "the queued answer holds the log as read");

    // Sent: the swap goes ahead.
    sim.advance(Duration::from_millis(100));
    assert!(sim.disk.paths().iter().all(|p| !p.ends_with(".cleaned")));
    assert_eq!(read_all(&mut sim, c), cleaned(&rows, end, true));
}

/// A cleaned segment that changed nothing is discarded (`RemoveSegment`,
/// which deletes its `.cleaned` files by name); no pass may create those
/// names again before that removal is done, or it deletes the new pass's
/// files (seeded simulation, seed 335).
#[test]
fn no_pass_reuses_a_cleaned_name_while_its_removal_is_in_flight() {
    let (mut sim, c) = start(SimDisk::default());
    new_topic(&mut sim, c);
    // Every key once: cleaning changes nothing, every group is discarded.
    let mut rows = Vec::new();
    let mut unique = |sim: &mut Sim, from: usize, n: usize| {
        for b in from..from + n {
            let recs: Vec<(String, String)> = (0..10)
                .map(|j| (format!("u{}", b * 10 + j), format!("v{}", b * 10 + j)))
                .collect();
            let refs: Vec<(Option<&str>, Option<&str>)> = recs
                .iter()
                .map(|(k, v)| (Some(k.as_str()), Some(v.as_str())))
                .collect();
            let now = sim.now.wall_ms;
            let corr = sim.produce(c, TOPIC, 0, keyed_batch(&refs, now, Compression::None));
            let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
            let p = &r.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0);
            for (j, (k, v)) in recs.into_iter().enumerate() {
                rows.push((p.base_offset + j as i64, k, Some(v)));
            }
        }
    };
    unique(&mut sim, 0, 60);
    assert!(active_base(&sim) > 0, "a sealed segment");

    // The first group's discard is held back by the disk.
    sim.now = sim.now.advance(Duration::from_millis(1500));
    sim.broker.handle_timeout(sim.now);
    let held = sim
        .run_until(|cmd| matches!(cmd, Command::RemoveSegment { .. }))
        .expect("an unchanged group is discarded");
    sim.run();

    // New dirty segments: the next pass, which starts from the first
    // group again, waits for it.
    unique(&mut sim, 60, 60);
    sim.now = sim.now.advance(Duration::from_millis(1500));
    sim.broker.handle_timeout(sim.now);
    let again = sim.run_until(|cmd| matches!(cmd, Command::CreateCleaned { base_offset: 0, .. }));
    assert!(again.is_none(), "{again:?} while the discard is in flight");

    let done = sim.disk.execute(&held);
    sim.broker.handle_done(sim.now, done);
    sim.run();
    sim.advance(Duration::from_millis(1500));
    assert!(sim.disk.paths().iter().all(|p| !p.ends_with(".cleaned")));
    assert!(read_all(&mut sim, c) == rows, "every record kept, once");
}

/// A record may be cleaned away only for a later record of its key that
/// is synced: here the later one sits in a sealed, mapped segment whose
/// last appends wait for a second fsync (the first was in flight when
/// they came), and a power loss right after the pass must leave the
/// synced earlier record (with `flush.messages=1`, acks=1 answers before
/// the sync).
#[test]
fn a_record_is_cleaned_away_only_for_a_synced_later_one() {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let (mut sim, c) = start(SimDisk::default());
    create_topic(
        &mut sim,
        c,
        TOPIC,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1024"),
            ("flush.messages", "1"),
        ],
    );
    let p = sim.open(7);
    let mut corr = 5000;
    // A produce (acks=1) handed to the broker; nothing run.
    let mut raw = |sim: &mut Sim, k: &str, v: &str| {
        corr += 1;
        let now = sim.now.wall_ms;
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(TOPIC.into())))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(keyed_batch(
                                &[(Some(k), Some(v))],
                                now,
                                Compression::None,
                            ))),
                    ]),
            ]);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(9)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("sim")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, ApiKey::Produce.request_header_version(9))
            .unwrap();
        req.encode(&mut buf, 9).unwrap();
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        sim.broker.handle_read(sim.now, p, &mut buf);
        assert!(buf.is_empty());
    };
    let files = |sim: &Sim| -> Vec<(String, usize, usize)> {
        sim.disk
            .paths()
            .into_iter()
            .filter(|p| p.starts_with("table-0/") && p.ends_with(".log"))
            .map(|p| {
                (
                    p.clone(),
                    sim.disk.file(&p).unwrap().len(),
                    sim.disk.synced_len(&p).unwrap(),
                )
            })
            .collect()
    };
    // Segment 0: A, synced, then filler until it rolls.
    raw(&mut sim, "a", "A");
    sim.run();
    let mut i = 0;
    while files(&sim).len() < 2 {
        raw(&mut sim, &format!("f{i}"), &"x".repeat(100));
        sim.run();
        i += 1;
    }
    // Segment 1: a filler whose Sync takes effect now and is answered later.
    raw(&mut sim, &format!("f{i}"), &"x".repeat(100));
    i += 1;
    let held = sim
        .run_until(|c| matches!(c, Command::Sync { .. }))
        .expect("a sync");
    let done = sim.disk.execute(&held);
    // B and filler until segment 1 rolls: their syncs wait for the first.
    raw(&mut sim, "a", "B");
    sim.run();
    while files(&sim).len() < 3 {
        raw(&mut sim, &format!("f{i}"), &"x".repeat(100));
        sim.run();
        i += 1;
    }
    sim.broker.handle_done(sim.now, done);
    let held2 = sim.run_until(|c| matches!(c, Command::Sync { .. }));
    assert!(held2.is_some(), "the second fsync is held back");
    sim.now = sim.now.advance(Duration::from_millis(1500));
    sim.broker.handle_timeout(sim.now);
    sim.run();
    sim.disk.crash();
    let (mut sim, c) = start(std::mem::take(&mut sim.disk));
    let rows = read_all(&mut sim, c);
    assert!(
        rows.iter().any(|r| r.1 == "a"),
        "key a lost: its synced record cleaned away for an unsynced one"
    );
}
