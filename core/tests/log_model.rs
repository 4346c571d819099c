//! The partition log driven through the simulated disk: scenario tests for
//! each rule, and a proptest model that checks random appends, completions,
//! reads, time lookups, reopening, crashes and corrupted tails against a
//! plain `Vec` of records.
//!
//! The batch encoder and decoder here are written from the format, not from
//! the core's code, so the core's parser is checked against something else.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use conveyor_core::config::{TimestampType, TopicConfig};
use conveyor_core::io::{Command, Done, Ids, IoId, SegId};
use conveyor_core::log::batch::validate_client_batch;
use conveyor_core::log::{PartitionLog, ReadError};
use conveyor_core::sim::SimDisk;
use conveyor_core::time::{Instant, Now};
use proptest::prelude::*;

const DIR: &str = "t-0";

// ---- RecordBatch v2 by the book --------------------------------------------

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> i64 {
    let mut z: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = b[*at];
        *at += 1;
        z |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

/// A client batch (base offset 0) of records with these timestamps and values.
fn encode(records: &[(i64, Vec<u8>)]) -> Bytes {
    let base_ts = records[0].0;
    let mut body = Vec::new();
    for (i, (ts, value)) in records.iter().enumerate() {
        let mut r = vec![0u8];
        put_varint(&mut r, ts - base_ts);
        put_varint(&mut r, i as i64);
        put_varint(&mut r, -1);
        put_varint(&mut r, value.len() as i64);
        r.extend_from_slice(value);
        put_varint(&mut r, 0);
        put_varint(&mut body, r.len() as i64);
        body.extend_from_slice(&r);
    }
    let n = records.len() as i32;
    let max_ts = records.iter().map(|r| r.0).max().unwrap();
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&(49 + body.len() as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(n - 1).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&body);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    ts: i64,
    value: Vec<u8>,
}

#[derive(Debug, PartialEq)]
struct Decoded {
    base: u64,
    last: u64,
    attributes: i16,
    max_ts: i64,
    records: Vec<Rec>,
}

/// Decode whole batches back to back; panics (fails the test) on anything
/// that is not exactly whole, CRC-valid batches.
fn decode(bytes: &[u8]) -> Vec<Decoded> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let b = &bytes[pos..];
        let len = 12 + i32::from_be_bytes(b[8..12].try_into().unwrap()) as usize;
        let b = &b[..len];
        assert_eq!(b[16], 2, "magic");
        let crc = u32::from_be_bytes(b[17..21].try_into().unwrap());
        assert_eq!(crc, crc32c::crc32c(&b[21..]), "CRC at {pos}");
        let base = i64::from_be_bytes(b[0..8].try_into().unwrap()) as u64;
        let attributes = i16::from_be_bytes(b[21..23].try_into().unwrap());
        let delta = i32::from_be_bytes(b[23..27].try_into().unwrap()) as u64;
        let base_ts = i64::from_be_bytes(b[27..35].try_into().unwrap());
        let max_ts = i64::from_be_bytes(b[35..43].try_into().unwrap());
        let count = i32::from_be_bytes(b[57..61].try_into().unwrap());
        let mut at = 61;
        let mut records = Vec::new();
        for _ in 0..count {
            let _len = get_varint(b, &mut at);
            at += 1;
            let ts = base_ts + get_varint(b, &mut at);
            let od = get_varint(b, &mut at) as u64;
            assert_eq!(get_varint(b, &mut at), -1, "null key");
            let vlen = get_varint(b, &mut at) as usize;
            let value = b[at..at + vlen].to_vec();
            at += vlen;
            assert_eq!(get_varint(b, &mut at), 0, "no headers");
            records.push(Rec {
                offset: base + od,
                ts,
                value,
            });
        }
        assert_eq!(at, len, "records fill the batch");
        out.push(Decoded {
            base,
            last: base + delta,
            attributes,
            max_ts,
            records,
        });
        pos += len;
    }
    out
}

// ---- A log on a simulated disk -----------------------------------------------

struct Harness {
    log: PartitionLog,
    disk: SimDisk,
    ids: Ids,
    config: TopicConfig,
    now: Now,
    /// Commands issued, not yet executed (executed in order: FIFO per segment).
    queue: VecDeque<Command>,
    /// Executed, answer not yet given to the log.
    dones: Vec<Done>,
    /// Where each segment's log file is.
    paths: HashMap<SegId, String>,
    /// Appends in issue order: (command, end offset, answered), and the
    /// high watermark the answered prefix gives.
    appends: VecDeque<(IoId, u64, bool)>,
    expected_hwm: u64,
}

impl Harness {
    fn new(config: TopicConfig) -> Self {
        let mut ids = Ids::default();
        let mut out = Vec::new();
        let log = PartitionLog::create(DIR.into(), config.clone(), 0, &mut ids, &mut out);
        let mut h = Self {
            log,
            disk: SimDisk::default(),
            ids,
            config,
            now: Now::new(Instant::from_nanos(0), 1_000_000),
            queue: VecDeque::new(),
            dones: Vec::new(),
            paths: HashMap::new(),
            appends: VecDeque::new(),
            expected_hwm: 0,
        };
        h.queue.extend(out);
        h.settle();
        h
    }

    /// Execute up to `n` queued commands; keep their answers.
    fn execute(&mut self, n: usize) {
        for _ in 0..n {
            let Some(cmd) = self.queue.pop_front() else {
                return;
            };
            if let Command::OpenSegment {
                seg,
                dir,
                base_offset,
                ..
            } = &cmd
            {
                self.paths
                    .insert(*seg, format!("{dir}/{base_offset:020}.log"));
            }
            self.dones.push(self.disk.execute(&cmd));
        }
    }

    /// Give the log the kept answers, in reverse order when asked.
    fn deliver(&mut self, reverse: bool) {
        self.deliver_holding(reverse, false);
    }

    /// Give the log the kept answers, in reverse order when asked, holding
    /// the oldest back for later when asked.
    fn deliver_holding(&mut self, reverse: bool, hold: bool) {
        let mut dones = std::mem::take(&mut self.dones);
        if hold && !dones.is_empty() {
            self.dones.push(dones.remove(0));
        }
        if reverse {
            dones.reverse();
        }
        for d in dones {
            assert!(self.log.owns(d.io));
            if let Some(a) = self.appends.iter_mut().find(|a| a.0 == d.io) {
                a.2 = d.result.is_ok();
            }
            while let Some(&(_, end, true)) = self.appends.front() {
                self.expected_hwm = end;
                self.appends.pop_front();
            }
            let mut out = Vec::new();
            let ev = self
                .log
                .handle_done(d.io, d.result, &mut self.ids, &mut out);
            assert!(ev.failed.is_none() || self.log.offline().is_some());
            self.queue.extend(out);
        }
    }

    /// Run every command to completion.
    fn settle(&mut self) {
        while !self.queue.is_empty() || !self.dones.is_empty() {
            self.execute(usize::MAX);
            self.deliver(false);
        }
    }

    fn append(&mut self, records: &[(i64, Vec<u8>)]) -> (u64, u64) {
        let batch = encode(records);
        let header =
            validate_client_batch(&batch, self.config.max_message_bytes).expect("valid batch");
        let mut out = Vec::new();
        let info = self
            .log
            .append(self.now, batch, &header, &mut self.ids, &mut out)
            .expect("append");
        let io = out
            .iter()
            .find_map(|c| match c {
                Command::Append { io, .. } => Some(*io),
                _ => None,
            })
            .expect("an Append");
        self.appends.push_back((io, info.last_offset + 1, false));
        self.queue.extend(out);
        (info.base_offset, info.last_offset)
    }

    /// The decoded batches a read from `offset` returns.
    fn read(&self, offset: u64, max_bytes: u64) -> Result<Option<Vec<Decoded>>, ReadError> {
        Ok(self.log.read(offset, max_bytes)?.map(|s| {
            let file = self.disk.file(&self.paths[&s.seg]).expect("segment file");
            decode(&file[s.pos as usize..(s.pos + s.len) as usize])
        }))
    }

    /// Reopen from what the disk holds (after `crash()` when asked).
    fn reopen(&mut self, crash: bool, recovery_point: Option<u64>) -> u64 {
        if crash {
            self.disk.crash();
        }
        self.queue.clear();
        self.dones.clear();
        let state = self.disk.disk_state();
        let part = state
            .partitions
            .into_iter()
            .find(|p| p.dir == DIR)
            .expect("partition dir");
        let mut out = Vec::new();
        let r = PartitionLog::recover(
            DIR.into(),
            self.config.clone(),
            part.segments,
            recovery_point,
            Some(self.log.log_start_offset()),
            !crash,
            &mut self.ids,
            &mut out,
        );
        self.log = r.log;
        self.appends.clear();
        self.expected_hwm = self.log.log_end_offset();
        self.queue.extend(out);
        self.settle();
        r.truncated_bytes
    }

    fn flush(&mut self) {
        let mut out = Vec::new();
        self.log.flush(&mut self.ids, &mut out);
        self.queue.extend(out);
        self.settle();
    }

    fn last_log_path(&self) -> String {
        self.disk
            .paths()
            .into_iter()
            .filter(|p| p.ends_with(".log"))
            .max()
            .expect("a segment")
    }
}

fn small_config() -> TopicConfig {
    TopicConfig {
        segment_bytes: 600,
        index_interval_bytes: 100,
        ..TopicConfig::default()
    }
}

fn recs(ts: i64, n: usize) -> Vec<(i64, Vec<u8>)> {
    (0..n)
        .map(|i| (ts + i as i64, vec![b'a' + i as u8; 20]))
        .collect()
}

// ---- Scenarios ------------------------------------------------------------------

#[test]
fn append_patches_offsets_and_reads_whole_batches() {
    let mut h = Harness::new(TopicConfig::default());
    assert_eq!(h.append(&recs(10, 3)), (0, 2));
    assert_eq!(h.append(&recs(20, 2)), (3, 4));
    assert_eq!(
        h.read(0, 1 << 20),
        Ok(None),
        "nothing visible before the Dones"
    );
    h.settle();
    assert_eq!(h.log.high_watermark(), 5);
    let batches = h.read(4, 1 << 20).unwrap().unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!((batches[0].base, batches[0].last), (3, 4));
    let all = h.read(1, 1 << 20).unwrap().unwrap();
    assert_eq!(all.iter().map(|b| b.base).collect::<Vec<_>>(), vec![0, 3]);
    // KIP-74: the first batch even when larger than max_bytes.
    assert_eq!(h.read(0, 1).unwrap().unwrap().len(), 1);
    assert_eq!(h.read(5, 100).map(|r| r.is_none()), Ok(true));
    assert_eq!(h.read(6, 100).err(), Some(ReadError::OffsetOutOfRange));
    assert_eq!(
        h.log.visible_bytes_from(0),
        h.disk.file(&h.last_log_path()).unwrap().len() as u64
    );
}

#[test]
fn high_watermark_moves_only_over_answered_prefix() {
    let mut h = Harness::new(TopicConfig::default());
    h.append(&recs(0, 1));
    h.append(&recs(0, 1));
    h.execute(usize::MAX);
    h.deliver(true);
    // Delivered in reverse: the second Done came first and moved nothing;
    // the first then moved it over both.
    assert_eq!(h.log.high_watermark(), 2);

    let mut h = Harness::new(TopicConfig::default());
    h.append(&recs(0, 1));
    h.append(&recs(0, 1));
    h.execute(usize::MAX);
    let first = h.dones.remove(0);
    h.deliver(false);
    assert_eq!(h.log.high_watermark(), 0);
    h.dones.push(first);
    h.deliver(false);
    assert_eq!(h.log.high_watermark(), 2);
}

#[test]
fn a_failed_append_takes_the_partition_offline() {
    let mut h = Harness::new(TopicConfig::default());
    h.append(&recs(0, 1));
    h.disk.fail_after(0);
    h.execute(1);
    let d = h.dones.pop().unwrap();
    let mut out = Vec::new();
    let ev = h.log.handle_done(d.io, d.result, &mut h.ids, &mut out);
    assert!(ev.failed.is_some());
    assert!(h.log.offline().is_some());
    assert_eq!(h.log.high_watermark(), 0);
    let batch = encode(&recs(0, 1));
    let header = validate_client_batch(&batch, 1 << 20).unwrap();
    assert!(
        h.log
            .append(h.now, batch, &header, &mut h.ids, &mut out)
            .is_err()
    );
}

#[test]
fn log_append_time_restamps_the_header() {
    let config = TopicConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..TopicConfig::default()
    };
    let mut h = Harness::new(config);
    h.append(&recs(5, 2));
    h.settle();
    let b = h.read(0, 1 << 20).unwrap().unwrap();
    assert_eq!(b[0].max_ts, h.now.wall_ms);
    assert_ne!(b[0].attributes & 8, 0);
    assert_eq!(
        h.log.offset_for_timestamp(h.now.wall_ms),
        Some((0, h.now.wall_ms))
    );
}

#[test]
fn rolls_write_indexes_and_reads_cross_segments() {
    let mut h = Harness::new(small_config());
    for i in 0..20 {
        h.append(&recs(100 + i, 2));
    }
    h.settle();
    assert!(h.log.segment_count() > 3, "{}", h.log.segment_count());
    let indexes: usize = h
        .disk
        .paths()
        .iter()
        .filter(|p| p.ends_with(".index"))
        .map(|p| h.disk.file(p).unwrap().len())
        .sum();
    assert!(indexes > 0 && indexes % 8 == 0);
    for offset in 0..40 {
        let b = h.read(offset, 1).unwrap().unwrap();
        assert!(
            b[0].base <= offset && offset <= b[0].last,
            "offset {offset}"
        );
    }
    // Sealed segments were synced on roll.
    assert!(h.log.recovery_point() > 0);
    h.flush();
    assert_eq!(h.log.recovery_point(), 40);
    // Batch 9 holds timestamps 109 and 110: the exact record is offset 19.
    assert_eq!(h.log.offset_for_timestamp(110), Some((19, 110)));
    assert_eq!(h.log.offset_for_timestamp(1000), None);
}

#[test]
fn segment_ms_rolls_on_timeout() {
    let config = TopicConfig {
        segment_ms: 1000,
        ..TopicConfig::default()
    };
    let mut h = Harness::new(config);
    assert_eq!(h.log.next_deadline_wall_ms(), None);
    h.append(&recs(0, 1));
    let deadline = h.log.next_deadline_wall_ms().unwrap();
    assert_eq!(deadline, h.now.wall_ms + 1000);
    h.now = h.now.advance(std::time::Duration::from_millis(1000));
    let mut out = Vec::new();
    h.log.handle_timeout(h.now, &mut h.ids, &mut out);
    assert!(out.iter().any(|c| matches!(c, Command::MapSegment { .. })));
    h.queue.extend(out);
    h.settle();
    assert_eq!(h.log.segment_count(), 2);
    assert_eq!(h.log.next_deadline_wall_ms(), None);
}

#[test]
fn delete_waits_for_pins() {
    let mut h = Harness::new(TopicConfig::default());
    h.append(&recs(0, 1));
    h.settle();
    let s = h.log.read(0, 100).unwrap().unwrap();
    h.log.pin(s.seg);
    let mut out = Vec::new();
    assert!(!h.log.delete(&mut h.ids, &mut out));
    assert!(out.is_empty());
    h.log.unpin(s.seg);
    assert!(h.log.delete(&mut h.ids, &mut out));
    assert!(matches!(out.last(), Some(Command::RemoveDir { .. })));
    h.queue.extend(out);
    h.settle();
    assert!(h.disk.paths().is_empty());
}

#[test]
fn recovery_cuts_a_torn_tail_and_removes_later_segments() {
    let mut h = Harness::new(small_config());
    for i in 0..20 {
        h.append(&recs(i, 2));
    }
    h.flush();
    assert_eq!(h.log.recovery_point(), 40);
    // Tear the last segment's tail: the whole last batch goes.
    let last = h.last_log_path();
    let len = h.disk.file(&last).unwrap().len();
    h.disk.cut(&last, len - 3);
    let truncated = h.reopen(true, Some(40));
    assert_eq!(
        truncated,
        (len - 3 - h.disk.file(&last).unwrap().len()) as u64
    );
    assert_eq!(h.log.log_end_offset(), 38);
    assert_eq!(h.read(37, 1 << 20).unwrap().unwrap()[0].last, 37);

    // Corrupt a byte in the middle of the first segment: it and everything
    // after it goes when nothing is trusted.
    let first = h
        .disk
        .paths()
        .into_iter()
        .find(|p| p.ends_with(".log"))
        .unwrap();
    let segments_before = h.log.segment_count();
    h.disk.corrupt(&first, 200, 0xff);
    h.reopen(true, None);
    assert_eq!(h.log.segment_count(), 1);
    assert!(segments_before > 1);
    assert!(h.log.log_end_offset() < 38);
    assert_eq!(
        h.disk
            .paths()
            .iter()
            .filter(|p| p.ends_with(".log"))
            .count(),
        1
    );
    // And the log goes on from there.
    let end = h.log.log_end_offset();
    assert_eq!(h.append(&recs(0, 1)), (end, end));
    h.settle();
    assert_eq!(h.read(end, 100).unwrap().unwrap()[0].base, end);
}

#[test]
fn recovery_rebuilds_a_bad_index() {
    let mut h = Harness::new(small_config());
    for i in 0..20 {
        h.append(&recs(i, 2));
    }
    h.flush();
    let index = h
        .disk
        .paths()
        .into_iter()
        .find(|p| p.ends_with(".index"))
        .unwrap();
    let good = h.disk.file(&index).unwrap().to_vec();
    assert!(!good.is_empty());
    h.disk.corrupt(&index, 3, 0x7f);
    // Clean shutdown: data is trusted, the index is still checked.
    h.reopen(false, Some(40));
    assert_eq!(h.disk.file(&index).unwrap(), &good[..]);
    for offset in 0..40 {
        let b = h.read(offset, 1).unwrap().unwrap();
        assert!(b[0].base <= offset && offset <= b[0].last);
    }
}

// ---- The model --------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Append { n: usize, ts: i64, len: usize },
    Execute { n: usize, reverse: bool, hold: bool },
    Settle,
    Read { at: u16, max_bytes: u64 },
    Time { ts: i64 },
    Reopen { crash: bool },
    Tear { cut: bool, back: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..4, 0i64..500, 12usize..60).prop_map(|(n, ts, len)| Op::Append { n, ts, len }),
        3 => (1usize..8, any::<bool>(), any::<bool>())
            .prop_map(|(n, reverse, hold)| Op::Execute { n, reverse, hold }),
        2 => Just(Op::Settle),
        4 => (any::<u16>(), prop_oneof![Just(1u64), 1u64..400, Just(1 << 20)])
            .prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        2 => (0i64..520).prop_map(|ts| Op::Time { ts }),
        1 => any::<bool>().prop_map(|crash| Op::Reopen { crash }),
        1 => (any::<bool>(), 0usize..12).prop_map(|(cut, back)| Op::Tear { cut, back }),
    ]
}

fn check_read(h: &Harness, model: &[Rec], at: u64, max_bytes: u64) {
    let hwm = h.log.high_watermark();
    let start = h.log.log_start_offset();
    let end = h.log.log_end_offset();
    let got = h.read(at, max_bytes);
    if at < start || at > end {
        assert_eq!(got.err(), Some(ReadError::OffsetOutOfRange));
        return;
    }
    let got = got.expect("in range");
    if at >= hwm {
        assert!(got.is_none());
        return;
    }
    // visible_bytes_from is every whole visible batch from the one holding
    // `at`: what reads segment after segment return.
    let (mut next, mut bytes) = (at, 0);
    while next < hwm {
        let s = h.log.read(next, u64::MAX).unwrap().unwrap();
        bytes += s.len;
        next = h
            .read(next, u64::MAX)
            .unwrap()
            .unwrap()
            .last()
            .unwrap()
            .last
            + 1;
    }
    assert_eq!(
        h.log.visible_bytes_from(at),
        bytes,
        "visible bytes from {at}"
    );
    let batches = got.expect("a visible offset reads something");
    assert!(
        batches[0].base <= at && at <= batches[0].last,
        "first batch holds {at}"
    );
    for b in &batches {
        assert!(b.last < hwm, "nothing past the high watermark");
        for r in &b.records {
            assert_eq!(&model[r.offset as usize], r, "record {}", r.offset);
        }
    }
}

fn check_time(h: &Harness, model: &[Rec], bases: &[u64], ts: i64) {
    let hwm = h.log.high_watermark() as usize;
    let visible = &model[..hwm];
    let expected = visible.iter().find(|r| r.ts >= ts);
    match (h.log.offset_for_timestamp(ts), expected) {
        (None, None) => {}
        (Some((off, got_ts)), Some(e)) => {
            // Batch granularity: at or before the exact record, within its batch.
            let batch = bases
                .iter()
                .copied()
                .filter(|&b| b <= e.offset)
                .max()
                .unwrap_or(0);
            assert!(
                batch <= off && off <= e.offset,
                "{off} outside the batch of the first record at {ts} ({})",
                e.offset
            );
            assert!(got_ts >= ts);
        }
        (got, e) => panic!("time {ts}: got {got:?}, expected {e:?}"),
    }
}

fn run(ops: Vec<Op>) {
    let mut h = Harness::new(small_config());
    let mut model: Vec<Rec> = Vec::new();
    let mut last_batch_base: Vec<u64> = Vec::new();
    for op in ops {
        match op {
            Op::Append { n, ts, len } => {
                let rs: Vec<(i64, Vec<u8>)> = (0..n)
                    .map(|i| (ts + i as i64, vec![(model.len() + i) as u8; len]))
                    .collect();
                let (base, last) = h.append(&rs);
                assert_eq!(base, model.len() as u64, "offsets have no gaps");
                assert_eq!(last, base + n as u64 - 1);
                last_batch_base.push(base);
                for (i, (ts, value)) in rs.into_iter().enumerate() {
                    model.push(Rec {
                        offset: base + i as u64,
                        ts,
                        value,
                    });
                }
            }
            Op::Execute { n, reverse, hold } => {
                h.execute(n);
                h.deliver_holding(reverse, hold);
            }
            Op::Settle => h.settle(),
            Op::Read { at, max_bytes } => {
                let at = u64::from(at) % (model.len() as u64 + 2);
                check_read(&h, &model, at, max_bytes);
            }
            Op::Time { ts } => check_time(&h, &model, &last_batch_base, ts),
            Op::Reopen { crash } => {
                let synced = h.log.recovery_point();
                if !crash {
                    h.flush();
                    assert_eq!(h.log.recovery_point(), model.len() as u64);
                }
                let before = model.len() as u64;
                h.reopen(crash, Some(synced));
                let end = h.log.log_end_offset();
                assert!(
                    end >= synced,
                    "synced data survives a crash: {end} < {synced}"
                );
                assert!(end <= before);
                if !crash {
                    assert_eq!(end, before);
                }
                model.truncate(end as usize);
            }
            Op::Tear { cut, back } => {
                h.settle();
                h.flush();
                let path = h.last_log_path();
                let len = h.disk.file(&path).unwrap().len();
                if len == 0 {
                    continue;
                }
                // Damage lands in the last batch's records (values are at
                // least 12 bytes), which the CRC covers.
                if cut {
                    h.disk.cut(&path, len - 1 - back.min(len - 1));
                } else {
                    h.disk.corrupt(&path, len - 1 - back, 0x10);
                }
                let truncated = h.reopen(true, None);
                assert!(truncated > 0);
                let end = h.log.log_end_offset();
                let last_base = *last_batch_base
                    .iter()
                    .filter(|&&b| b < model.len() as u64)
                    .max()
                    .unwrap();
                assert_eq!(end, last_base, "exactly the damaged batch goes");
                model.truncate(end as usize);
            }
        }
        let (hwm, end) = (h.log.high_watermark(), h.log.log_end_offset());
        assert_eq!(
            hwm, h.expected_hwm,
            "the high watermark is the answered prefix"
        );
        assert!(hwm <= end && h.log.recovery_point() <= end);
        assert_eq!(end, model.len() as u64);
        last_batch_base.retain(|&b| b < end);
    }
    h.settle();
    for at in 0..model.len() as u64 {
        check_read(&h, &model, at, 1);
    }
    for ts in (0..520).step_by(37) {
        check_time(&h, &model, &last_batch_base, ts);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn partition_log_matches_a_vec(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops);
    }
}
