//! One segment: where its batches are, its index state while active, and
//! its small summary once sealed.
//!
//! The active segment (and a sealed one until its files are mapped) keeps a
//! list with one entry per batch, so reads find exact positions without
//! touching a file. Once sealed and mapped, the list is dropped and lookups
//! go through the mapped `.index` (binary search) and `.log` (header scan
//! from the indexed position): the heap then holds only the summary.

use bytes::{Bytes, BytesMut};

use crate::config::TopicConfig;
use crate::io::{IoId, SegId, SegmentViews};

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::index;
use super::records;

/// One batch of the active segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BatchEntry {
    /// Offset of its last record minus the segment base.
    pub last_rel: u32,
    /// Its length in bytes.
    pub len: u32,
    /// Where it starts in the `.log` file.
    pub pos: u64,
    /// The largest timestamp in the segment up to and including it, so a
    /// time lookup is a binary search.
    pub max_ts_so_far: i64,
}

/// Index bookkeeping of the active segment (Kafka's `LogSegment` fields).
#[derive(Debug, Clone, Default)]
pub(super) struct IndexState {
    /// Offset-index entries written.
    pub offset_entries: u64,
    /// Time-index entries written.
    pub time_entries: u64,
    /// Timestamp of the last time-index entry (entries only grow).
    pub last_time_ts: i64,
    /// Log bytes appended since the last index entry.
    pub bytes_since: u64,
}

/// A segment of a partition log.
#[derive(Debug)]
pub(super) struct Segment {
    pub id: SegId,
    pub base: u64,
    /// Bytes of the `.log` file, counting appends not yet answered.
    pub size: u64,
    /// One past the last offset in the segment (`base` when empty).
    pub end: u64,
    /// Largest timestamp in the segment (-1: none).
    pub max_ts: i64,
    /// Relative offset of the batch holding `max_ts`.
    pub max_ts_rel: u32,
    batches: Vec<BatchEntry>,
    /// The mapped files of a sealed segment; reads use them once present.
    pub views: Option<SegmentViews>,
    pub pins: u32,
    pub index: IndexState,
    /// Wall-clock time of the first append (drives `segment.ms`).
    pub first_append_wall: Option<i64>,
    /// Offsets below this in the segment are synced.
    pub synced_end: u64,
    /// The `Sync` in flight and the end offset it covers.
    pub sync_inflight: Option<(IoId, u64)>,
    /// Another `Sync` is due when the one in flight is answered.
    pub sync_wanted: bool,
    pub sealed: bool,
}

impl Segment {
    /// An empty active segment.
    pub fn new(id: SegId, base: u64) -> Self {
        Self {
            id,
            base,
            size: 0,
            end: base,
            max_ts: -1,
            max_ts_rel: 0,
            batches: Vec::new(),
            views: None,
            pins: 0,
            index: IndexState {
                last_time_ts: -1,
                ..IndexState::default()
            },
            first_append_wall: None,
            synced_end: base,
            sync_inflight: None,
            sync_wanted: false,
            sealed: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The in-memory batch list (empty once mapped).
    pub fn batches(&self) -> &[BatchEntry] {
        &self.batches
    }

    /// Whether appending `len` bytes ending at `last_offset` must go to a new
    /// segment (Kafka's `shouldRoll`, minus time, which the caller checks):
    /// the log would pass `segment.bytes`, an index is full, or the offset
    /// no longer fits the index's relative form. An empty segment never
    /// rolls: the batch would be just as big in the next one.
    pub fn is_full_for(&self, len: u64, last_offset: u64, config: &TopicConfig) -> bool {
        if self.is_empty() {
            return false;
        }
        let max_offset_entries = config.segment_index_bytes / index::OFFSET_ENTRY as u64;
        let max_time_entries = config.segment_index_bytes / index::TIME_ENTRY as u64;
        self.size.saturating_add(len) > config.segment_bytes
            || self.index.offset_entries >= max_offset_entries
            || self.index.time_entries >= max_time_entries
            || last_offset.saturating_sub(self.base) > i32::MAX as u64
    }

    /// Record a batch appended at the end of the log: `len` bytes holding
    /// offsets up to `last_offset`, largest timestamp `max_ts`. Returns the
    /// index entries to write, if one is due (Kafka: when more than
    /// `index.interval.bytes` were appended since the last entry, counted
    /// before this batch; the entry names this batch).
    pub fn push(
        &mut self,
        len: u32,
        last_offset: u64,
        max_ts: i64,
        interval: u64,
        wall_ms: i64,
    ) -> Option<(Bytes, Bytes)> {
        let pos = self.size;
        // `is_full_for` keeps relative offsets within i32.
        let last_rel = u32::try_from(last_offset.saturating_sub(self.base)).unwrap_or(u32::MAX);
        if max_ts > self.max_ts {
            self.max_ts = max_ts;
            self.max_ts_rel = last_rel;
        }
        self.batches.push(BatchEntry {
            last_rel,
            len,
            pos,
            max_ts_so_far: self.max_ts,
        });
        self.size = pos + u64::from(len);
        self.end = last_offset + 1;
        self.first_append_wall.get_or_insert(wall_ms);
        let entry = self.index_entry_due(last_rel, pos, interval);
        self.index.bytes_since += u64::from(len);
        entry
    }

    fn index_entry_due(
        &mut self,
        last_rel: u32,
        pos: u64,
        interval: u64,
    ) -> Option<(Bytes, Bytes)> {
        if self.index.bytes_since <= interval {
            return None;
        }
        self.index.bytes_since = 0;
        let mut offsets = BytesMut::with_capacity(index::OFFSET_ENTRY);
        // Positions stay below segment.bytes (at most i32::MAX).
        index::put_offset_entry(
            &mut offsets,
            last_rel,
            u32::try_from(pos).unwrap_or(u32::MAX),
        );
        self.index.offset_entries += 1;
        Some((offsets.freeze(), self.time_entry_due().unwrap_or_default()))
    }

    /// A time-index entry for the largest timestamp so far, when it is
    /// larger than the last entry's (Kafka's `maybeAppend`).
    pub fn time_entry_due(&mut self) -> Option<Bytes> {
        if self.max_ts <= self.index.last_time_ts {
            return None;
        }
        let mut t = BytesMut::with_capacity(index::TIME_ENTRY);
        index::put_time_entry(&mut t, self.max_ts, self.max_ts_rel);
        self.index.last_time_ts = self.max_ts;
        self.index.time_entries += 1;
        Some(t.freeze())
    }

    /// The files are mapped: read through them and drop the batch list.
    pub fn mapped(&mut self, views: SegmentViews) {
        self.views = Some(views);
        self.batches = Vec::new();
    }

    /// Rebuild the batch list from the segment's log bytes (recovery of the
    /// active segment). `bytes` holds whole, checked batches.
    pub fn rebuild_batches(&mut self, bytes: &[u8]) {
        self.batches.clear();
        let mut so_far = -1;
        for (pos, h) in batch::scan(bytes, 0) {
            so_far = so_far.max(h.max_timestamp);
            self.batches.push(BatchEntry {
                last_rel: rel(h.last_offset(), self.base),
                // `scan` yields only batches inside `bytes`; their length
                // came from an i32.
                len: u32::try_from(h.total_len()).unwrap_or(u32::MAX),
                pos: pos as u64,
                max_ts_so_far: so_far,
            });
        }
    }

    pub(super) fn log(&self) -> &[u8] {
        match &self.views {
            Some(v) => {
                let log = (*v.log).as_ref();
                log.get(..usize::try_from(self.size).unwrap_or(usize::MAX))
                    .unwrap_or(log)
            }
            None => &[],
        }
    }

    /// The batches from the one holding `offset` on, as (position, length,
    /// last offset, max timestamp), from the batch list or the mapped files.
    fn batches_from(&self, offset: u64) -> Box<dyn Iterator<Item = Found> + '_> {
        if let Some(v) = &self.views {
            let target = u32::try_from(offset.saturating_sub(self.base)).unwrap_or(u32::MAX);
            let log = self.log();
            let mut pos = index::lookup_position((*v.index).as_ref(), target) as usize;
            if pos >= log.len() {
                pos = 0; // an index that disagrees with the log: scan it all
            }
            Box::new(
                batch::scan(log, pos)
                    .map(|(pos, h)| Found {
                        pos: pos as u64,
                        len: h.total_len(),
                        base: u64::try_from(h.base_offset).unwrap_or(0),
                        last: u64::try_from(h.last_offset()).unwrap_or(0),
                        max_ts: h.max_timestamp,
                    })
                    .skip_while(move |f| f.last < offset),
            )
        } else {
            let rel = offset.saturating_sub(self.base);
            let i = self
                .batches
                .partition_point(|b| u64::from(b.last_rel) < rel);
            let prev_last = i
                .checked_sub(1)
                .and_then(|j| self.batches.get(j))
                .map(|b| b.last_rel);
            let base = self.base;
            Box::new(self.batches.get(i..).unwrap_or_default().iter().scan(
                prev_last,
                move |prev, b| {
                    let first = prev.map_or(base, |p| base + u64::from(p) + 1);
                    *prev = Some(b.last_rel);
                    Some(Found {
                        pos: b.pos,
                        len: u64::from(b.len),
                        base: first,
                        last: base + u64::from(b.last_rel),
                        max_ts: b.max_ts_so_far,
                    })
                },
            ))
        }
    }

    /// Whole batches from the one holding `offset`, all below `hwm`, while
    /// they total at most `max_bytes` — the first always (KIP-74). `None`
    /// when no visible batch holds `offset` or follows it here.
    pub fn read(&self, offset: u64, hwm: u64, max_bytes: u64) -> Option<(u64, u64)> {
        let mut start = None;
        let mut len: u64 = 0;
        for f in self.batches_from(offset) {
            if f.last >= hwm {
                break;
            }
            match start {
                None => start = Some(f.pos),
                Some(_) if len.saturating_add(f.len) > max_bytes => break,
                Some(_) => {}
            }
            len = len.saturating_add(f.len);
        }
        start.map(|pos| (pos, len))
    }

    /// Where the batch holding `offset` (or the first after it) starts; the
    /// segment's size when none does. An index lookup and a short scan.
    pub fn position_of(&self, offset: u64) -> u64 {
        self.batches_from(offset)
            .next()
            .map_or(self.size, |f| f.pos)
    }

    /// Bytes of visible batches (all below `hwm`) from the one holding
    /// `offset` to the end of the segment: two lookups, no scan of the
    /// batches in between.
    pub fn visible_bytes(&self, offset: u64, hwm: u64) -> u64 {
        let to = if self.end <= hwm {
            self.size
        } else {
            self.position_of(hwm)
        };
        to.saturating_sub(self.position_of(offset))
    }

    /// The first visible record with a timestamp at least `timestamp`: the
    /// exact record for an uncompressed batch in a mapped segment, else the
    /// first offset of the batch (with the batch's max timestamp).
    pub fn offset_for_timestamp(&self, timestamp: i64, hwm: u64) -> Option<(u64, i64)> {
        let f = self.batch_for_timestamp(timestamp, hwm)?;
        let exact = self
            .views
            .as_ref()
            .and_then(|_| exact_record(self.log(), &f, timestamp));
        Some(exact.unwrap_or((f.base, f.max_ts)))
    }

    /// The first visible batch whose largest timestamp is at least
    /// `timestamp`: through the time index and a header scan in a mapped
    /// segment, a binary search of the batch list in the active one.
    pub fn batch_for_timestamp(&self, timestamp: i64, hwm: u64) -> Option<Found> {
        if self.max_ts < timestamp {
            return None;
        }
        if let Some(v) = &self.views {
            let start = index::lookup_time((*v.timeindex).as_ref(), timestamp)
                .map_or(self.base, |rel| self.base + u64::from(rel));
            self.batches_from(start)
                .take_while(|f| f.last < hwm)
                .find(|f| f.max_ts >= timestamp)
        } else {
            // `max_ts_so_far` grows along the list, so the first batch whose
            // own maximum reaches `timestamp` is where the running one does.
            let i = self
                .batches
                .partition_point(|b| b.max_ts_so_far < timestamp);
            let b = self.batches.get(i)?;
            let last = self.base + u64::from(b.last_rel);
            if last >= hwm {
                return None;
            }
            let first = i
                .checked_sub(1)
                .and_then(|j| self.batches.get(j))
                .map_or(self.base, |p| self.base + u64::from(p.last_rel) + 1);
            Some(Found {
                pos: b.pos,
                len: u64::from(b.len),
                base: first,
                last,
                max_ts: b.max_ts_so_far,
            })
        }
    }

    /// Cut the segment before the first batch holding an offset at or past
    /// `at`, and make it the active segment again: the batch list rebuilt
    /// from the batches kept (read through the mapped files of a sealed
    /// segment, which are let go), the index entries rebuilt by the rule
    /// appends follow. The caller has no command in flight on it. Returns
    /// what the files must become.
    pub fn cut(&mut self, at: u64, interval: u64) -> Cut {
        let kept: Vec<Found> = self
            .batches_from(self.base)
            .take_while(|f| f.last < at)
            .collect();
        let mut s = Segment::new(self.id, self.base);
        let mut offsets = BytesMut::new();
        let mut times = BytesMut::new();
        for f in &kept {
            // Lengths came from an i32; batches are contiguous from 0, so
            // the rebuilt positions are the old ones.
            let len = u32::try_from(f.len).unwrap_or(u32::MAX);
            if let Some((o, t)) = s.push(len, f.last, f.max_ts, interval, 0) {
                offsets.extend_from_slice(&o);
                times.extend_from_slice(&t);
            }
        }
        s.first_append_wall = self.first_append_wall.filter(|_| !kept.is_empty());
        s.synced_end = self.synced_end.min(s.end).max(s.base);
        *self = s;
        Cut {
            log_len: self.size,
            offset_index: offsets.freeze(),
            time_index: times.freeze(),
        }
    }

    /// The index entries a full rebuild writes for `bytes` (whole batches),
    /// by the same rule appends follow, with what the rebuild learned.
    pub fn rebuild_index(&self, bytes: &[u8], interval: u64) -> Rebuilt {
        let mut s = Segment::new(self.id, self.base);
        let mut offsets = BytesMut::new();
        let mut times = BytesMut::new();
        for (_, h) in batch::scan(bytes, 0) {
            let len = u32::try_from(h.total_len()).unwrap_or(u32::MAX);
            let last = u64::try_from(h.last_offset()).unwrap_or(0);
            if let Some((o, t)) = s.push(len, last, h.max_timestamp, interval, 0) {
                offsets.extend_from_slice(&o);
                times.extend_from_slice(&t);
            }
        }
        Rebuilt {
            offset_index: offsets.freeze(),
            time_index: times.freeze(),
            index: s.index,
            max_ts: s.max_ts,
            max_ts_rel: s.max_ts_rel,
        }
    }
}

/// The result of [`Segment::rebuild_index`].
#[derive(Debug)]
pub(super) struct Rebuilt {
    pub offset_index: Bytes,
    pub time_index: Bytes,
    pub index: IndexState,
    pub max_ts: i64,
    pub max_ts_rel: u32,
}

/// The result of [`Segment::cut`]: the `.log` file's new length and the
/// index files' whole new contents.
#[derive(Debug)]
pub(super) struct Cut {
    pub log_len: u64,
    pub offset_index: Bytes,
    pub time_index: Bytes,
}

/// A batch found by a lookup.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    /// Where it starts in the `.log` file.
    pub pos: u64,
    /// Its length in bytes.
    pub len: u64,
    /// Its first offset.
    pub base: u64,
    /// Its last offset.
    pub last: u64,
    /// Its largest timestamp.
    pub max_ts: i64,
}

/// Relative offset of `offset` in a segment based at `base`.
pub(super) fn rel(offset: i64, base: u64) -> u32 {
    u32::try_from(u64::try_from(offset).unwrap_or(0).saturating_sub(base)).unwrap_or(u32::MAX)
}

/// Walk an uncompressed `CreateTime` batch's records for the first one
/// with a timestamp at least `timestamp`.
fn exact_record(log: &[u8], f: &Found, timestamp: i64) -> Option<(u64, i64)> {
    let bytes = log.get(usize::try_from(f.pos).ok()?..usize::try_from(f.pos + f.len).ok()?)?;
    let h = BatchHeader::parse(bytes)?;
    if h.codec() != 0 || h.is_log_append_time() {
        return None;
    }
    for r in records::records(bytes.get(HEADER_LEN..)?) {
        let r = r.ok()?;
        let ts = h.base_timestamp.checked_add(r.timestamp_delta)?;
        if ts >= timestamp {
            let off = u64::try_from(h.base_offset.checked_add(i64::from(r.offset_delta))?).ok()?;
            return Some((off, ts));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_follow_kafkas_rule() {
        let mut s = Segment::new(SegId(1), 100);
        // Counted before the batch: the first batch never gets an entry.
        assert!(s.push(80, 101, 5, 0, 0).is_none());
        let (o, t) = s
            .push(80, 103, 9, 0, 0)
            .expect("more than 0 bytes since the last entry");
        assert_eq!(index::offset_entry(&o, 0), Some((3, 80)));
        assert_eq!(index::time_entry(&t, 0), Some((9, 3)));
        // A smaller timestamp adds no time entry.
        let (_, t) = s.push(80, 104, 1, 0, 0).unwrap();
        assert!(t.is_empty());
        assert_eq!(s.end, 105);
        assert_eq!(s.size, 240);
        let mut big = Segment::new(SegId(2), 0);
        assert!(big.push(10, 0, 0, 4096, 0).is_none());
        assert!(big.push(10, 1, 0, 4096, 0).is_none());
    }

    #[test]
    fn rolls_when_full_but_never_when_empty() {
        let config = TopicConfig {
            segment_bytes: 100,
            segment_index_bytes: 16,
            ..TopicConfig::default()
        };
        let mut s = Segment::new(SegId(1), 0);
        assert!(!s.is_full_for(1000, 0, &config));
        s.push(60, 0, 0, 4096, 0);
        assert!(!s.is_full_for(40, 1, &config));
        assert!(s.is_full_for(41, 1, &config));
        assert!(s.is_full_for(1, u64::from(u32::MAX), &config));
        s.index.offset_entries = 2;
        assert!(s.is_full_for(1, 1, &config));
    }

    #[test]
    fn list_lookups_find_the_batch_holding_an_offset() {
        let mut s = Segment::new(SegId(1), 10);
        s.push(50, 12, 7, 4096, 0); // offsets 10..=12
        s.push(30, 13, 3, 4096, 0); // 13
        s.push(40, 17, 20, 4096, 0); // 14..=17
        assert_eq!(s.read(11, 18, 1), Some((0, 50)));
        assert_eq!(s.read(13, 18, 1000), Some((50, 70)));
        assert_eq!(
            s.read(13, 14, 1000),
            Some((50, 30)),
            "stops at the high watermark"
        );
        assert_eq!(s.read(14, 14, 1000), None);
        assert_eq!(s.visible_bytes(11, 18), 120);
        assert_eq!(s.offset_for_timestamp(8, 18), Some((14, 20)));
        assert_eq!(s.offset_for_timestamp(7, 18), Some((10, 7)));
        assert_eq!(s.offset_for_timestamp(21, 18), None);
    }
}
