//! The log cleaner's decisions, as pure functions over segment bytes:
//! whether a compacted log is due, which offsets may be cleaned, the key
//! map (the latest offset of every key in the dirty part), and which
//! records and batches survive. Kafka's semantics (`LogCleaner`,
//! `LogCleanerManager`):
//!
//! - Only sealed segments below the first uncleanable offset are cleaned:
//!   never the active segment, nor a segment with a record younger than
//!   `min.compaction.lag.ms`.
//! - A log is due when its dirty share (bytes not yet cleaned over all
//!   cleanable bytes) reaches `min.cleanable.dirty.ratio`, or when a dirty
//!   record is older than `max.compaction.lag.ms`.
//! - A record survives when it is its key's latest; a keyless record never
//!   does. A tombstone (null value) that is its key's latest survives until
//!   its batch is older than `delete.retention.ms`.
//! - Offsets never change. A batch keeps its base offset, last offset
//!   delta, producer fields and codec; a batch whose records all go is
//!   dropped, except that an empty header stays for the last batch of an
//!   idempotent producer (its sequence must survive) and for the last batch
//!   of a cleaned group of segments (the group's offset range must survive,
//!   which is how a crash in the middle of a swap is recovered). Control
//!   batches are kept as they are.
//!
//! The key map holds keys exactly (no hashes, so no collision can drop a
//! live record) and counts their bytes against
//! `log.cleaner.dedupe.buffer.size`; when it fills, cleaning covers only
//! the segments mapped whole, and the rest waits for the next pass.

use std::collections::HashMap;

use bytes::Bytes;

use super::batch::{self, BatchHeader};
use super::codec::{Codec, Levels};
use super::records::{self, Rebuild};

/// Bytes a key map entry costs beyond its key: the map's slot, the boxed
/// key's pointer and length, the offset.
const ENTRY_OVERHEAD: usize = 48;

/// The latest offset of each key in a range of the log.
#[derive(Debug, Default, Clone)]
pub struct KeyMap {
    latest: HashMap<Box<[u8]>, u64>,
    bytes: usize,
    limit: usize,
}

impl KeyMap {
    /// An empty map that holds at most `limit` bytes of keys and entries.
    pub fn new(limit: usize) -> Self {
        Self {
            latest: HashMap::new(),
            bytes: 0,
            limit,
        }
    }

    /// Record `key` at `offset` (offsets arrive in increasing order).
    /// `false`, changing nothing, when a new key would not fit.
    pub fn insert(&mut self, key: &[u8], offset: u64) -> bool {
        if let Some(o) = self.latest.get_mut(key) {
            *o = offset;
            return true;
        }
        let cost = key.len() + ENTRY_OVERHEAD;
        if self.bytes + cost > self.limit {
            return false;
        }
        self.bytes += cost;
        self.latest.insert(key.into(), offset);
        true
    }

    /// The latest offset of `key`, if the map saw it.
    pub fn latest(&self, key: &[u8]) -> Option<u64> {
        self.latest.get(key).copied()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

/// Why a segment could not be read for cleaning. The cleaner leaves such a
/// segment as it is.
pub type CleanError = &'static str;

/// Add every keyed record of one segment's bytes to `map`. `Ok(false)`
/// when the map filled part-way: the segment is not mapped whole, and
/// cleaning must stop before it.
pub fn map_segment(map: &mut KeyMap, log: &[u8], limit: usize) -> Result<bool, CleanError> {
    let mut pos = 0;
    while pos < log.len() {
        match map_batches(map, log, pos, usize::MAX, limit)? {
            Mapped::Full => return Ok(false),
            Mapped::To(next) => pos = next,
        }
    }
    Ok(true)
}

/// How far [`map_batches`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapped {
    /// Every batch before this byte position is mapped.
    To(usize),
    /// The map filled in the middle of the piece.
    Full,
}

/// [`map_segment`] a piece at a time: the batches from byte `pos` on,
/// stopping after the batch that takes the input read past `budget`.
pub fn map_batches(
    map: &mut KeyMap,
    log: &[u8],
    pos: usize,
    budget: usize,
    limit: usize,
) -> Result<Mapped, CleanError> {
    let mut read = 0usize;
    let mut at = pos;
    for (p, h) in batch::scan(log, pos) {
        at = p + h.total_len() as usize;
        read += h.total_len() as usize;
        if !h.is_control() {
            let body = records::body(&log[p..], &h, limit)?;
            for r in records::records(&body) {
                let r = r?;
                let Some(key) = r.key else { continue };
                let offset = offset_of(&h, r.offset_delta)?;
                if !map.insert(key, offset) {
                    return Ok(Mapped::Full);
                }
            }
        }
        if read >= budget {
            return Ok(Mapped::To(at));
        }
    }
    if at < log.len() {
        return Err("segment holds bytes that are not whole batches");
    }
    Ok(Mapped::To(at))
}

fn offset_of(h: &BatchHeader, delta: i32) -> Result<u64, CleanError> {
    u64::try_from(h.base_offset.saturating_add(i64::from(delta))).map_err(|_| "negative offset")
}

/// What decides a record's fate beyond the key map.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The broker's wall clock, Unix milliseconds.
    pub now_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// Per idempotent producer, the last offset of its last batch in the
    /// log: that batch keeps at least its header.
    pub producer_last: HashMap<i64, u64>,
    /// `log.decompression.max.bytes`.
    pub decompression_limit: usize,
    /// Levels for recompressing a partly kept batch (the topic's).
    pub levels: Levels,
}

/// What a segment's cleaning did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cleaned {
    /// Records read.
    pub records_in: u64,
    /// Records kept.
    pub records_out: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
}

/// Clean one segment's bytes against `map`, pushing the batches that
/// survive, in order, to `out`. With `keep_last`, the segment's last batch
/// keeps at least its header (the last segment of a cleaned group).
pub fn clean_segment(
    log: &[u8],
    map: &KeyMap,
    rules: &Rules,
    keep_last: bool,
    out: &mut Vec<Bytes>,
) -> Result<Cleaned, CleanError> {
    clean_batches(log, 0, usize::MAX, map, rules, keep_last, out).map(|(_, stats)| stats)
}

/// [`clean_segment`] a piece at a time: the batches from byte `pos` on,
/// stopping after the batch that takes the input read past `budget` bytes
/// (or at the end). Returns the position to go on from (the segment's
/// length once done) and what this piece did.
pub fn clean_batches(
    log: &[u8],
    pos: usize,
    budget: usize,
    map: &KeyMap,
    rules: &Rules,
    keep_last: bool,
    out: &mut Vec<Bytes>,
) -> Result<(usize, Cleaned), CleanError> {
    let mut stats = Cleaned::default();
    let mut kept = Vec::new();
    let mut at = pos;
    for (p, h) in batch::scan(log, pos) {
        let end = p + h.total_len() as usize;
        let whole = &log[p..end];
        at = end;
        stats.bytes_in += whole.len() as u64;
        let last = keep_last && end == log.len();
        if let Some(b) = clean_batch(whole, &h, map, rules, last, &mut kept, &mut stats)? {
            stats.bytes_out += b.len() as u64;
            out.push(b);
        }
        if stats.bytes_in >= budget as u64 {
            break;
        }
    }
    if at < log.len() && stats.bytes_in < budget as u64 {
        return Err("segment holds bytes that are not whole batches");
    }
    Ok((at, stats))
}

/// One batch's survivors: the batch as it was, rebuilt with fewer records,
/// an empty header (`keep` or a producer's last batch), or nothing.
fn clean_batch(
    whole: &[u8],
    h: &BatchHeader,
    map: &KeyMap,
    rules: &Rules,
    keep: bool,
    kept: &mut Vec<u8>,
    stats: &mut Cleaned,
) -> Result<Option<Bytes>, CleanError> {
    if h.is_control() {
        return Ok(Some(Bytes::copy_from_slice(whole)));
    }
    let body = records::body(whole, h, rules.decompression_limit)?;
    kept.clear();
    let mut count: i32 = 0;
    let mut total: u64 = 0;
    let mut max_ts = i64::MIN;
    let expired = h.max_timestamp.saturating_add(rules.delete_retention_ms) < rules.now_ms;
    for r in records::records(&body) {
        let r = r?;
        total += 1;
        let offset = offset_of(h, r.offset_delta)?;
        let Some(key) = r.key else { continue };
        if map.latest(key).is_some_and(|latest| latest > offset) {
            continue;
        }
        if r.tombstone && expired {
            continue;
        }
        kept.extend_from_slice(r.raw);
        count += 1;
        max_ts = max_ts.max(h.base_timestamp.saturating_add(r.timestamp_delta));
    }
    stats.records_in += total;
    stats.records_out += count as u64;
    let producer_keeps = h.producer_id >= 0
        && rules
            .producer_last
            .get(&h.producer_id)
            .is_some_and(|&o| i64::try_from(o).is_ok_and(|o| o == h.last_offset()));
    if count == 0 && !(keep || producer_keeps) {
        // Nothing survives (an empty batch a pass kept before included).
        return Ok(None);
    }
    if u64::try_from(count).is_ok_and(|c| c == total) {
        return Ok(Some(Bytes::copy_from_slice(whole)));
    }
    let how = Rebuild {
        codec: Codec::from_attributes(h.attributes).ok_or("unknown compression codec")?,
        levels: rules.levels,
        count,
        max_timestamp: max_ts,
    };
    records::rebuild(h, kept, how).map(Some)
}

/// One segment as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its base offset.
    pub base: u64,
    /// The offset after its last record.
    pub end: u64,
    /// Its bytes.
    pub size: u64,
    /// Its largest record timestamp (-1 or less: none).
    pub max_ts: i64,
    /// The timestamp of its first record (-1 or less: none), for
    /// `max.compaction.lag.ms`.
    pub first_ts: i64,
}

/// The part of a log one cleaning pass covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Segments `[0, upto)` of those given are cleaned.
    pub upto: usize,
    /// Offsets from here on are dirty: the key map is built from them.
    pub first_dirty: u64,
    /// The first offset not cleaned.
    pub end: u64,
}

/// What the planner needs of a topic's settings.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// `min.cleanable.dirty.ratio`.
    pub min_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_lag_ms: i64,
}

/// Whether a compacted log is due, and what to clean. `segments` are the
/// log's, oldest first, the active one last; `first_dirty` is where the
/// last pass ended (the log start before any).
pub fn plan(
    segments: &[SegmentInfo],
    first_dirty: u64,
    policy: Policy,
    now_ms: i64,
) -> Option<Plan> {
    // Never the active segment; never a segment holding a record younger
    // than the minimum lag.
    let sealed = segments.len().saturating_sub(1);
    let upto = segments[..sealed]
        .iter()
        .position(|s| s.max_ts >= 0 && now_ms.saturating_sub(s.max_ts) < policy.min_lag_ms)
        .unwrap_or(sealed);
    let cleanable = &segments[..upto];
    let end = cleanable.last()?.end;
    if end <= first_dirty {
        return None;
    }
    let total: u64 = cleanable.iter().map(|s| s.size).sum();
    let dirty: u64 = cleanable
        .iter()
        .filter(|s| s.end > first_dirty)
        .map(|s| s.size)
        .sum();
    let ratio = if total == 0 {
        0.0
    } else {
        dirty as f64 / total as f64
    };
    let overdue = cleanable
        .iter()
        .filter(|s| s.end > first_dirty)
        .any(|s| s.first_ts >= 0 && now_ms.saturating_sub(s.first_ts) > policy.max_lag_ms);
    (ratio >= policy.min_dirty_ratio || overdue).then_some(Plan {
        upto,
        first_dirty,
        end,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::log::records::tests::{Kv, batch_of};

    /// One produced record: key (`None`: keyless), tombstone.
    type Op = (Option<u8>, bool);

    /// Segments of batches holding `ops` in order: batch sizes from
    /// `cuts`, codecs by batch, a new segment every `per_segment` batches.
    /// Record `i` has offset `i` and timestamp `i`.
    fn log_of(ops: &[Op], cuts: &[usize], per_segment: usize) -> Vec<Vec<u8>> {
        const CODECS: [Codec; 5] = [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ];
        let mut segments = vec![Vec::new()];
        let (mut at, mut n) = (0usize, 0usize);
        let keys: Vec<Option<[u8; 1]>> = ops.iter().map(|(k, _)| k.map(|k| [k])).collect();
        while at < ops.len() {
            let len = cuts[n % cuts.len()].clamp(1, ops.len() - at);
            let recs: Vec<Kv<'_>> = (at..at + len)
                .map(|i| {
                    (
                        keys[i].as_ref().map(|k| &k[..]),
                        (!ops[i].1).then_some(&b"v"[..]),
                    )
                })
                .collect();
            if n > 0 && n % per_segment == 0 {
                segments.push(Vec::new());
            }
            let b = batch_of(at as i64, &recs, at as i64, CODECS[n % CODECS.len()]);
            segments.last_mut().unwrap().extend_from_slice(&b);
            at += len;
            n += 1;
        }
        segments
    }

    /// (offset, key, tombstone) of every record in `batches`, checking
    /// each batch's framing and CRC.
    fn contents(batches: &[Bytes]) -> Vec<(u64, Option<Vec<u8>>, bool)> {
        let mut out = Vec::new();
        for b in batches {
            let h = BatchHeader::parse(b).unwrap();
            assert_eq!(h.total_len(), b.len() as u64);
            assert_eq!(batch::crc_of(b), Some(h.crc));
            let body = records::body(b, &h, 1 << 20).unwrap();
            let mut n = 0;
            for r in records::records(&body) {
                let r = r.unwrap();
                assert!(r.offset_delta <= h.last_offset_delta);
                out.push((
                    offset_of(&h, r.offset_delta).unwrap(),
                    r.key.map(<[u8]>::to_vec),
                    r.tombstone,
                ));
                n += 1;
            }
            assert_eq!(n, h.record_count);
        }
        out
    }

    fn rules(delete_retention_ms: i64) -> Rules {
        Rules {
            now_ms: 1_000_000,
            delete_retention_ms,
            producer_last: HashMap::new(),
            decompression_limit: 1 << 20,
            levels: Levels::default(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Cleaning every segment against a map of all of them leaves
        /// exactly each key's latest record (a tombstone only while it is
        /// young enough), at its original offset, in offset order, in valid
        /// batches; the last batch still ends where the log did.
        #[test]
        fn cleaning_keeps_exactly_the_latest_per_key(
            ops in proptest::collection::vec((proptest::option::weighted(0.95, 0u8..12), proptest::bool::weighted(0.2)), 1..300),
            cuts in proptest::collection::vec(1usize..20, 1..8),
            per_segment in 1usize..6,
            tombstones_expired in any::<bool>(),
        ) {
            let segments = log_of(&ops, &cuts, per_segment);
            let mut map = KeyMap::new(1 << 20);
            for s in &segments {
                prop_assert!(map_segment(&mut map, s, 1 << 20).unwrap());
            }
            let rules = rules(if tombstones_expired { 0 } else { i64::MAX / 2 });
            let mut out = Vec::new();
            let last = segments.len() - 1;
            for (i, s) in segments.iter().enumerate() {
                clean_segment(s, &map, &rules, i == last, &mut out).unwrap();
            }
            // A piece at a time gives the same batches.
            let mut pieces = Vec::new();
            for (i, s) in segments.iter().enumerate() {
                let mut pos = 0;
                while pos < s.len() {
                    pos = clean_batches(s, pos, cuts[0] * 40, &map, &rules, i == last, &mut pieces).unwrap().0;
                }
            }
            prop_assert_eq!(&pieces, &out);
            let mut expected: BTreeMap<u8, (u64, bool)> = BTreeMap::new();
            for (i, (k, t)) in ops.iter().enumerate() {
                if let Some(k) = k {
                    expected.insert(*k, (i as u64, *t));
                }
            }
            let mut want: Vec<(u64, Option<Vec<u8>>, bool)> = expected
                .into_iter()
                .filter(|(_, (_, t))| !(*t && tombstones_expired))
                .map(|(k, (o, t))| (o, Some(vec![k]), t))
                .collect();
            want.sort();
            let got = contents(&out);
            prop_assert_eq!(&got, &want);
            let end = BatchHeader::parse(out.last().unwrap()).unwrap().last_offset();
            prop_assert_eq!(end, ops.len() as i64 - 1);
            let bases: Vec<i64> = out.iter().map(|b| BatchHeader::parse(b).unwrap().base_offset).collect();
            prop_assert!(bases.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn a_full_map_stops_at_the_segment_it_could_not_hold() {
        let ops: Vec<Op> = (0..40u8).map(|k| (Some(k), false)).collect();
        let segments = log_of(&ops, &[5], 2);
        let mut map = KeyMap::new(15 * (1 + ENTRY_OVERHEAD));
        assert!(map_segment(&mut map, &segments[0], 1 << 20).unwrap());
        assert!(!map_segment(&mut map, &segments[1], 1 << 20).unwrap());
    }

    #[test]
    fn a_producers_last_batch_keeps_its_header() {
        let b = batch_of(0, &[(Some(b"k"), Some(b"old"))], 0, Codec::Lz4);
        let mut h = BatchHeader::parse(&b).unwrap();
        h.producer_id = 7;
        h.producer_epoch = 0;
        h.base_sequence = 0;
        let plain = records::body(&b, &h, 1 << 10).unwrap();
        let how = Rebuild {
            codec: Codec::Lz4,
            levels: Levels::default(),
            count: 1,
            max_timestamp: 0,
        };
        let first = records::rebuild(&h, &plain, how).unwrap();
        let mut log = first.to_vec();
        log.extend_from_slice(&batch_of(1, &[(Some(b"k"), Some(b"new"))], 1, Codec::None));
        let mut map = KeyMap::new(1 << 10);
        map_segment(&mut map, &log, 1 << 10).unwrap();
        let mut r = rules(0);
        let mut out = Vec::new();
        clean_segment(&log, &map, &r, false, &mut out).unwrap();
        assert_eq!(out.len(), 1, "the superseded batch goes");
        r.producer_last.insert(7, 0);
        out.clear();
        clean_segment(&log, &map, &r, false, &mut out).unwrap();
        let h0 = BatchHeader::parse(&out[0]).unwrap();
        assert_eq!(
            (out.len(), h0.record_count, h0.producer_id, h0.base_sequence),
            (2, 0, 7, 0)
        );
    }

    fn seg(base: u64, end: u64, size: u64, ts: i64) -> SegmentInfo {
        SegmentInfo {
            base,
            end,
            size,
            max_ts: ts,
            first_ts: ts,
        }
    }

    const POLICY: Policy = Policy {
        min_dirty_ratio: 0.5,
        min_lag_ms: 0,
        max_lag_ms: i64::MAX,
    };

    #[test]
    fn the_active_segment_is_never_planned() {
        assert_eq!(plan(&[seg(0, 10, 100, 5)], 0, POLICY, 10), None);
        let p = plan(&[seg(0, 10, 100, 5), seg(10, 20, 100, 6)], 0, POLICY, 10).unwrap();
        assert_eq!((p.upto, p.end), (1, 10));
    }

    #[test]
    fn the_dirty_ratio_and_the_lags_decide() {
        let segs = [
            seg(0, 10, 100, 5),
            seg(10, 20, 100, 6),
            seg(20, 30, 100, 7),
            seg(30, 31, 1, 8),
        ];
        // Two of three cleanable segments clean: ratio 1/3.
        assert_eq!(plan(&segs, 20, POLICY, 10), None);
        assert!(plan(&segs, 10, POLICY, 10).is_some(), "2/3 dirty");
        let overdue = Policy {
            max_lag_ms: 2,
            ..POLICY
        };
        assert!(plan(&segs, 20, overdue, 10).is_some());
        let young = Policy {
            min_lag_ms: 4,
            ..POLICY
        };
        let p = plan(&segs, 0, young, 10).unwrap();
        assert_eq!((p.upto, p.end), (2, 20), "the segment at 7 ms is too young");
        assert_eq!(plan(&segs, 30, POLICY, 10), None, "nothing dirty");
    }

    #[test]
    fn the_key_map_counts_its_bytes() {
        let mut m = KeyMap::new(2 * (3 + ENTRY_OVERHEAD));
        assert!(m.insert(b"abc", 1));
        assert!(m.insert(b"def", 2));
        assert!(m.insert(b"abc", 3), "an update costs nothing");
        assert!(!m.insert(b"ghi", 4));
        assert_eq!(
            (m.latest(b"abc"), m.latest(b"ghi"), m.len()),
            (Some(3), None, 2)
        );
    }
}
