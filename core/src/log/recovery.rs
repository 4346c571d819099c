//! Startup recovery: rebuild a [`PartitionLog`] from the segment files the
//! driver found, trusting what was synced and checking the rest.
//!
//! Segments wholly below the recovery point (all of them after a clean
//! shutdown) are trusted: their size is the file's, their end offset comes
//! from the last index entry and a header scan to the end, with no CRC
//! work. Every other segment is scanned batch by batch with CRC-32C; the
//! first torn or corrupt batch ends the log there, and its indexes are
//! rebuilt from the scan. A trusted segment whose
//! header scan does not end exactly at the end of its file is scanned fully
//! too, so a damaged file is never trusted on the checkpoint's word alone.

use std::sync::Arc;

use bytes::Bytes;

use crate::io::{Command, DiskSegment, Ids, SegmentViews};

use super::batch::{self, BatchHeader};
use super::index;
use super::partition::{PartitionLog, Pending, snapshot_path};
use super::producers::ProducerStates;
use super::segment::{IndexState, Segment, rel};
use crate::layout;

/// What a scan learned about a segment's log file.
#[derive(Debug, Clone, Copy)]
struct Summary {
    /// Bytes of whole, valid batches from the start.
    valid_len: usize,
    /// One past the last offset in them (the base when none).
    end: u64,
    max_ts: i64,
    max_ts_rel: u32,
    /// Whether the bytes were checked (and are maybe not synced yet).
    checked: bool,
}

impl PartitionLog {
    /// Fill an empty log from `segments` (not empty, sorted by base offset,
    /// no base twice); returns the bytes cut.
    pub(super) fn recover_segments(
        &mut self,
        segments: &[DiskSegment],
        recovery_point: Option<u64>,
        log_start: Option<u64>,
        clean_shutdown: bool,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> (u64, u64) {
        let bases: Vec<u64> = segments.iter().map(|s| s.base_offset).collect();
        let mut truncated: u64 = 0;
        let mut scanned: u64 = 0;
        for (i, ds) in segments.iter().enumerate() {
            let base = ds.base_offset;
            let log = (*ds.views.log).as_ref();
            let trusted = clean_shutdown
                || matches!((recovery_point, bases.get(i + 1)), (Some(rp), Some(&next)) if next <= rp);
            let summary = trusted
                .then(|| cheap_summary(&ds.views, base))
                .flatten()
                .unwrap_or_else(|| {
                    scanned += log.len() as u64;
                    full_scan(log, base)
                });
            let torn = summary.valid_len < log.len();
            let active = torn || i + 1 == segments.len();
            self.recover_one(ds, summary, active, ids, out);
            truncated += (log.len() - summary.valid_len) as u64;
            if torn {
                for later in segments.get(i + 1..).unwrap_or_default() {
                    truncated += (*later.views.log).as_ref().len() as u64;
                    for ext in layout::SEGMENT_FILES {
                        let path = layout::offset_file_path(&self.dir, later.base_offset, ext);
                        self.emit(
                            Command::RemoveFile { io: ids.io(), path },
                            Pending::RemoveFile,
                            out,
                        );
                    }
                }
                break;
            }
        }
        let first_base = bases.first().copied().unwrap_or(0);
        self.log_end = self.segments.last().map_or(first_base, |s| s.end);
        self.hwm = self.log_end;
        self.written = self.log_end;
        self.log_start = log_start
            .unwrap_or(first_base)
            .max(first_base)
            .min(self.log_end);
        self.recovery_point = first_base;
        self.advance_recovery_point();
        (truncated, scanned)
    }

    /// Rebuild the producer state after the segments are recovered: load
    /// the newest valid snapshot at or below the log end, then replay every
    /// producer batch from it (or from the log start when there is none,
    /// unless the shutdown was clean) to the log end, reading headers only.
    /// Every other snapshot file is removed.
    pub(super) fn load_producers(
        &mut self,
        segments: &[DiskSegment],
        mut snapshots: Vec<(u64, Bytes)>,
        clean_shutdown: bool,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) {
        snapshots.sort_by_key(|s| s.0);
        let end = self.log_end;
        let mut chosen: Option<(u64, ProducerStates)> = None;
        for (offset, bytes) in snapshots.iter().rev() {
            if *offset > end {
                continue;
            }
            match ProducerStates::decode(bytes) {
                Some(states) => {
                    chosen = Some((*offset, states));
                    break;
                }
                None => {
                    tracing::warn!(dir = %self.dir, offset, "ignoring a damaged producer snapshot")
                }
            }
        }
        let keep = chosen.as_ref().map(|c| c.0);
        for (offset, _) in &snapshots {
            if Some(*offset) != keep {
                let path = snapshot_path(&self.dir, *offset);
                self.emit(
                    Command::RemoveFile { io: ids.io(), path },
                    Pending::Snapshot,
                    out,
                );
            }
        }
        let from = match chosen {
            Some((offset, states)) => {
                self.producers = states;
                self.snapshot_offsets = vec![offset];
                offset
            }
            None if clean_shutdown => return,
            None => self.log_start,
        };
        let from = from.max(self.log_start);
        for s in &self.segments {
            if s.end <= from {
                continue;
            }
            let Some(ds) = segments.iter().find(|d| d.base_offset == s.base) else {
                continue;
            };
            // Only the bytes recovery kept: a cut tail may still be in the view.
            let kept = usize::try_from(s.size).unwrap_or(usize::MAX);
            let log = (*ds.views.log).as_ref();
            let log = log.get(..kept).unwrap_or(log);
            for (_, h) in batch::scan(log, 0) {
                let (Ok(first), Ok(last)) =
                    (u64::try_from(h.base_offset), u64::try_from(h.last_offset()))
                else {
                    break;
                };
                if last >= end {
                    break;
                }
                if first >= from {
                    self.producers.record(&h, first, last, h.max_timestamp);
                }
            }
        }
    }

    /// Keep one segment: open it, cut and re-index it if needed, and sync
    /// what was checked but may not be on disk yet.
    fn recover_one(
        &mut self,
        ds: &DiskSegment,
        summary: Summary,
        active: bool,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) {
        let base = ds.base_offset;
        let log = (*ds.views.log).as_ref();
        let index_file = (*ds.views.index).as_ref();
        let time_file = (*ds.views.timeindex).as_ref();
        // `valid_len` never exceeds the file: it is where a scan of it ended.
        let valid = log.get(..summary.valid_len).unwrap_or_default();
        let torn = summary.valid_len < log.len();
        let seg = ids.seg();
        let open = Command::OpenSegment {
            io: ids.io(),
            seg,
            dir: self.dir.clone(),
            base_offset: base,
            create: false,
        };
        self.emit(open, Pending::Open, out);

        let mut s = Segment::new(seg, base);
        s.size = summary.valid_len as u64;
        s.end = summary.end;
        s.max_ts = summary.max_ts;
        s.max_ts_rel = summary.max_ts_rel;
        let offsets = summary.end - base;
        // A scanned segment's indexes are rebuilt from the scan, as Kafka's
        // recovery does: an entry written for an append that failed (or
        // that a failed append displaced) passes every check of the file
        // alone and still points into the middle of a batch. Only a
        // trusted segment, synced whole, keeps its index files.
        let indexes_ok = !torn
            && !summary.checked
            && index::offset_index_is_sane(index_file, s.size, offsets)
            && index::time_index_is_sane(time_file, offsets);
        let mut views = ds.views.clone();
        if indexes_ok {
            s.index = state_from_files(index_file, time_file, s.size);
        } else {
            let rebuilt = s.rebuild_index(valid, self.config.index_interval_bytes);
            let cut = Command::Truncate {
                io: ids.io(),
                seg,
                log_len: s.size,
                index_len: 0,
                timeindex_len: 0,
            };
            self.emit(cut, Pending::Truncate, out);
            if !rebuilt.offset_index.is_empty() || !rebuilt.time_index.is_empty() {
                let write = Command::WriteIndex {
                    io: ids.io(),
                    seg,
                    offset_index: rebuilt.offset_index.clone(),
                    time_index: rebuilt.time_index.clone(),
                };
                self.emit(write, Pending::Index, out);
            }
            // The mapped index files are stale now; the rebuilt entries are
            // small (sparse), so the heap holds them instead.
            views.index = Arc::new(rebuilt.offset_index);
            views.timeindex = Arc::new(rebuilt.time_index);
            s.index = rebuilt.index;
            s.max_ts = rebuilt.max_ts;
            s.max_ts_rel = rebuilt.max_ts_rel;
        }
        if active {
            s.rebuild_batches(valid);
            // Kafka's `segment.ms` counts from the first batch's timestamp
            // when the append time is unknown.
            s.first_append_wall = s
                .batches()
                .first()
                .map(|b| b.max_ts_so_far)
                .filter(|&t| t >= 0);
        } else {
            s.sealed = true;
            s.views = Some(views);
        }
        s.synced_end = if summary.checked { base } else { s.end };
        self.segments.push(s);
        if summary.checked {
            let i = self.segments.len() - 1;
            self.request_sync(i, ids, out);
        }
    }
}

/// Index bookkeeping for a segment whose index files are kept as they are.
fn state_from_files(index_file: &[u8], time_file: &[u8], log_len: u64) -> IndexState {
    let offsets = index::offset_entries(index_file);
    let times = index::time_entries(time_file);
    let last_pos = offsets
        .checked_sub(1)
        .and_then(|i| index::offset_entry(index_file, i))
        .map(|(_, pos)| u64::from(pos));
    IndexState {
        offset_entries: offsets as u64,
        time_entries: times as u64,
        last_time_ts: times
            .checked_sub(1)
            .and_then(|i| index::time_entry(time_file, i))
            .map_or(-1, |(ts, _)| ts),
        // Kafka counts from the start of the batch the last entry names.
        bytes_since: last_pos.map_or(log_len, |p| log_len.saturating_sub(p)),
    }
}

/// A trusted segment's summary from its last index entries and a header
/// scan from the last indexed position. `None` when that scan does not end
/// exactly at the end of the file (the file is not what was synced).
fn cheap_summary(views: &SegmentViews, base: u64) -> Option<Summary> {
    let log = (*views.log).as_ref();
    let index_file = (*views.index).as_ref();
    let time_file = (*views.timeindex).as_ref();
    let n = index::offset_entries(index_file);
    let pos = if index::offset_index_is_sane(index_file, log.len() as u64, u64::MAX) {
        n.checked_sub(1)
            .and_then(|i| index::offset_entry(index_file, i))
            .map_or(0, |(_, pos)| pos as usize)
    } else {
        0
    };
    let (mut max_ts, mut max_ts_rel) = (-1, 0);
    if index::time_index_is_sane(time_file, u64::from(u32::MAX)) {
        if let Some((ts, off)) = index::time_entries(time_file)
            .checked_sub(1)
            .and_then(|i| index::time_entry(time_file, i))
        {
            (max_ts, max_ts_rel) = (ts, off);
        }
    }
    let mut scan = batch::scan(log, pos);
    let mut last: Option<BatchHeader> = None;
    for (_, h) in scan.by_ref() {
        if h.max_timestamp > max_ts {
            (max_ts, max_ts_rel) = (h.max_timestamp, rel(h.last_offset(), base));
        }
        last = Some(h);
    }
    if scan.position() != log.len() {
        return None;
    }
    let end = match last {
        Some(h) => u64::try_from(h.last_offset()).ok()?.checked_add(1)?,
        None if pos == 0 => base,
        None => return None,
    };
    (end >= base && end - base <= u64::from(u32::MAX)).then_some(Summary {
        valid_len: log.len(),
        end,
        max_ts,
        max_ts_rel,
        checked: false,
    })
}

/// Check every batch from the start: a plausible header, whole, CRC-32C
/// valid, offsets increasing from the segment base and relative offsets
/// that fit the index. Stops at the first batch that fails.
fn full_scan(log: &[u8], base: u64) -> Summary {
    let mut s = Summary {
        valid_len: 0,
        end: base,
        max_ts: -1,
        max_ts_rel: 0,
        checked: true,
    };
    for (pos, h) in batch::scan(log, 0) {
        let Some(bytes) = usize::try_from(h.total_len())
            .ok()
            .and_then(|len| log.get(pos..pos.checked_add(len)?))
        else {
            break;
        };
        if batch::crc_of(bytes) != Some(h.crc) {
            break;
        }
        let Ok(first) = u64::try_from(h.base_offset) else {
            break;
        };
        let last = first.saturating_add(u64::try_from(h.last_offset_delta).unwrap_or(0));
        if first < s.end || last - base > i32::MAX as u64 {
            break;
        }
        if h.max_timestamp > s.max_ts {
            (s.max_ts, s.max_ts_rel) = (h.max_timestamp, rel(h.last_offset(), base));
        }
        s.end = last + 1;
        s.valid_len = pos + bytes.len();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::batch;

    fn at(offset: i64, b: &[u8]) -> Vec<u8> {
        let mut v = b.to_vec();
        v[..8].copy_from_slice(&offset.to_be_bytes());
        v
    }

    fn views(log: Vec<u8>) -> SegmentViews {
        SegmentViews {
            log: Arc::new(log),
            index: crate::io::empty_view(),
            timeindex: crate::io::empty_view(),
        }
    }

    #[test]
    fn full_scan_stops_at_the_first_bad_batch() {
        let b = batch(2, 50);
        let mut log = at(10, &b);
        log.extend(at(12, &b));
        let good = log.len();
        let mut bad = at(14, &b);
        bad[70] ^= 1;
        log.extend(bad);
        log.extend(at(16, &b));
        let s = full_scan(&log, 10);
        assert_eq!((s.valid_len, s.end, s.max_ts), (good, 14, 51));
        // Offsets going backwards end the log too.
        let mut back = at(10, &b);
        back.extend(at(10, &b));
        assert_eq!(full_scan(&back, 10).end, 12);
        assert_eq!(full_scan(&[1, 2, 3], 0).valid_len, 0);
    }

    #[test]
    fn cheap_summary_refuses_a_file_that_does_not_end_on_a_batch() {
        let b = batch(3, 7);
        let mut log = at(0, &b);
        log.extend(at(3, &b));
        let s = cheap_summary(&views(log.clone()), 0).unwrap();
        assert_eq!((s.end, s.max_ts, s.checked), (6, 9, false));
        log.extend_from_slice(&b[..30]);
        assert!(cheap_summary(&views(log), 0).is_none());
        assert_eq!(cheap_summary(&views(Vec::new()), 5).unwrap().end, 5);
    }
}
