//! Cutting a log's tail: a follower whose log diverged from its leader's
//! (an old leader's batches that no in-sync replica took, KIP-101) drops
//! everything from the point the leader names, then fetches the leader's
//! batches in their place (Kafka's `UnifiedLog.truncateTo`).
//!
//! The segment holding the cut point is cut in place and becomes the
//! active segment again (a sealed one lets go of its mapped files first,
//! so no map outlives the bytes it showed); every later segment is
//! removed. The leader epochs, the producer state, the producer-state
//! snapshots past the point, the high watermark and the recovery point
//! follow.
//!
//! The cut waits for a quiet log: no command of it in flight, no segment
//! pinned by a send, no cleaning pass. A follower appends only what it
//! fetches, so it stops fetching the partition until the cut is made and
//! its commands are answered ([`PartitionLog::is_quiet`]).

use crate::io::{Command, Ids};

use super::epochs::LEADER_EPOCH_CHECKPOINT;
use super::partition::{PartitionLog, Pending, snapshot_path};

/// Why a cut cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncateError {
    /// Commands are in flight, a segment is pinned or a cleaning pass runs:
    /// try again once the log is quiet.
    Busy,
    /// The point is below the log start: nothing this log holds is the
    /// leader's, and its start cannot move back.
    BelowLogStart,
    /// The log is offline or deleted.
    Unavailable,
}

/// What a cut did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Truncated {
    /// The new log end: the cut point, or the start of the batch that
    /// straddled it (batches are never split).
    pub log_end: u64,
    /// Bytes dropped from the log files.
    pub bytes: u64,
    /// Segments removed whole.
    pub segments_removed: usize,
}

impl PartitionLog {
    /// Whether no command of this log is in flight, no segment is pinned
    /// and no cleaning pass runs.
    pub fn is_quiet(&self) -> bool {
        self.pending.is_empty()
            && self.appends.is_empty()
            && self.cleaning.is_none()
            && self.segments.iter().all(|s| s.pins == 0)
    }

    /// Drop every batch holding an offset at or past `at`. Nothing changes
    /// when the log already ends at or before it.
    pub fn truncate_to(
        &mut self,
        at: u64,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Result<Truncated, TruncateError> {
        if self.offline.is_some() || self.deleted || self.segments.is_empty() {
            return Err(TruncateError::Unavailable);
        }
        if at >= self.log_end {
            return Ok(Truncated {
                log_end: self.log_end,
                ..Truncated::default()
            });
        }
        if at < self.log_start {
            return Err(TruncateError::BelowLogStart);
        }
        if !self.is_quiet() {
            return Err(TruncateError::Busy);
        }
        let size_before = self.size_bytes();
        // The segment holding `at`: the last one based at or below it (the
        // first is, as `at` is not below the log start).
        let i = self
            .segments
            .partition_point(|s| s.base <= at)
            .saturating_sub(1);
        let removed: Vec<_> = self.segments.drain(i + 1..).collect();
        for s in &removed {
            tracing::info!(dir = %self.dir, base = s.base, "truncation: deleting segment");
            let cmd = Command::RemoveSegment {
                io: ids.io(),
                seg: s.id,
            };
            self.emit(cmd, Pending::Remove, out);
        }
        let interval = self.config.index_interval_bytes;
        let s = &mut self.segments[i];
        let cut = s.cut(at, interval);
        let (seg, end) = (s.id, s.end);
        let cmd = Command::Truncate {
            io: ids.io(),
            seg,
            log_len: cut.log_len,
            index_len: 0,
            timeindex_len: 0,
        };
        self.emit(cmd, Pending::Truncate, out);
        if !cut.offset_index.is_empty() || !cut.time_index.is_empty() {
            let cmd = Command::WriteIndex {
                io: ids.io(),
                seg,
                offset_index: cut.offset_index,
                time_index: cut.time_index,
            };
            self.emit(cmd, Pending::Index, out);
        }

        self.log_end = end;
        self.written = end;
        self.hwm = self.hwm.min(end);
        self.recovery_point = self.recovery_point.min(end);
        self.first_dirty = self.first_dirty.min(end);
        self.unflushed_messages = 0;
        self.unflushed_since = None;
        if self.epochs.truncate_from(end) {
            let cmd = Command::WriteFile {
                io: ids.io(),
                path: format!("{}/{LEADER_EPOCH_CHECKPOINT}", self.dir),
                bytes: self.epochs.encode(),
            };
            self.emit(cmd, Pending::Snapshot, out);
        }
        self.producers.truncate_from(end);
        // A snapshot past the cut holds producer state of dropped batches;
        // a restart would load it once the log grows past its offset again.
        let (keep, drop): (Vec<u64>, Vec<u64>) =
            self.snapshot_offsets.iter().partition(|&&o| o <= end);
        self.snapshot_offsets = keep;
        for offset in drop {
            let cmd = Command::RemoveFile {
                io: ids.io(),
                path: snapshot_path(&self.dir, offset),
            };
            self.emit(cmd, Pending::Snapshot, out);
        }
        Ok(Truncated {
            log_end: end,
            bytes: size_before.saturating_sub(self.size_bytes()),
            segments_removed: removed.len(),
        })
    }
}

impl PartitionLog {
    /// Drop the whole log and start it again, empty, at `start` (Kafka's
    /// `truncateFullyAndStartAt`): a follower whose log ends below its
    /// leader's log start holds nothing the leader still has to give, and
    /// copies the leader's log from its start instead. Every segment is
    /// removed and a new one opened at `start`; the log start, high
    /// watermark and recovery point move there; the leader epochs, the
    /// producer state and its snapshots go. Waits for a quiet log, as
    /// [`PartitionLog::truncate_to`] does.
    pub fn truncate_fully_and_start_at(
        &mut self,
        start: u64,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Result<Truncated, TruncateError> {
        if self.offline.is_some() || self.deleted || self.segments.is_empty() {
            return Err(TruncateError::Unavailable);
        }
        if !self.is_quiet() {
            return Err(TruncateError::Busy);
        }
        let bytes = self.size_bytes();
        let removed: Vec<_> = self.segments.drain(..).collect();
        for s in &removed {
            tracing::info!(dir = %self.dir, base = s.base, "full truncation: deleting segment");
            let cmd = Command::RemoveSegment {
                io: ids.io(),
                seg: s.id,
            };
            self.emit(cmd, Pending::Remove, out);
        }
        self.log_start = start;
        self.log_end = start;
        self.written = start;
        self.hwm = start;
        self.recovery_point = start;
        self.first_dirty = start;
        self.unflushed_messages = 0;
        self.unflushed_since = None;
        if self.epochs.truncate_from(0) {
            let cmd = Command::WriteFile {
                io: ids.io(),
                path: format!("{}/{LEADER_EPOCH_CHECKPOINT}", self.dir),
                bytes: self.epochs.encode(),
            };
            self.emit(cmd, Pending::Snapshot, out);
        }
        self.producers.truncate_from(0);
        for offset in std::mem::take(&mut self.snapshot_offsets) {
            let cmd = Command::RemoveFile {
                io: ids.io(),
                path: snapshot_path(&self.dir, offset),
            };
            self.emit(cmd, Pending::Snapshot, out);
        }
        self.open_new_segment(start, ids, out);
        Ok(Truncated {
            log_end: start,
            bytes,
            segments_removed: removed.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::TopicConfig;
    use crate::io::{Command, Ids};
    use crate::log::PartitionLog;
    use crate::log::batch::{self, tests::batch, validate_client_batch};
    use crate::sim::SimDisk;
    use crate::time::Now;

    use super::TruncateError;

    fn run(log: &mut PartitionLog, disk: &mut SimDisk, ids: &mut Ids, mut out: Vec<Command>) {
        while !out.is_empty() {
            let mut next = Vec::new();
            for cmd in out {
                let done = disk.execute(&cmd);
                let _ = log.handle_done(done.io, done.result, ids, &mut next);
            }
            out = next;
        }
    }

    /// A log of `n` one-record batches of producer 7 (sequences 0, 1, …),
    /// batch `i` appended in leader epoch `epoch_of(i)`, in segments of
    /// `segment_bytes`, with an index entry for every batch but the first
    /// of a segment.
    fn log_with(
        n: i32,
        segment_bytes: u64,
        epoch_of: impl Fn(i32) -> i32,
    ) -> (PartitionLog, SimDisk, Ids) {
        let config = TopicConfig {
            segment_bytes,
            index_interval_bytes: 1,
            ..TopicConfig::default()
        };
        let (mut disk, mut ids) = (SimDisk::default(), Ids::default());
        let mut out = Vec::new();
        let mut log = PartitionLog::create("t-0".into(), config, 0, &mut ids, &mut out);
        run(&mut log, &mut disk, &mut ids, out);
        for i in 0..n {
            let mut b = batch(1, 1_000 + i64::from(i)).to_vec();
            b[43..51].copy_from_slice(&7i64.to_be_bytes());
            b[51..53].copy_from_slice(&0i16.to_be_bytes());
            b[53..57].copy_from_slice(&i.to_be_bytes());
            let crc = crc32c::crc32c(&b[21..]);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
            let b = bytes::Bytes::from(b);
            let h = validate_client_batch(&b, 1 << 20).unwrap();
            log.set_leader_epoch(epoch_of(i));
            let mut out = Vec::new();
            log.append(Now::default(), b, &h, &mut ids, &mut out)
                .unwrap();
            run(&mut log, &mut disk, &mut ids, out);
        }
        (log, disk, ids)
    }

    fn batches_in(disk: &SimDisk, base: u64) -> Vec<i64> {
        let path = crate::layout::offset_file_path("t-0", base, crate::layout::LOG);
        batch::scan(disk.file(&path).unwrap_or_default(), 0)
            .map(|(_, h)| h.base_offset)
            .collect()
    }

    #[test]
    fn a_cut_in_the_active_segment_drops_the_tail_and_appends_go_on_after_it() {
        let (mut log, mut disk, mut ids) = log_with(6, 1 << 20, |i| if i < 4 { 1 } else { 2 });
        assert_eq!(log.latest_epoch(), Some(2));
        let mut out = Vec::new();
        let t = log.truncate_to(4, &mut ids, &mut out).unwrap();
        assert_eq!((t.log_end, t.segments_removed), (4, 0));
        assert!(t.bytes > 0);
        run(&mut log, &mut disk, &mut ids, out);
        assert!(log.is_quiet());
        assert_eq!(log.log_end_offset(), 4);
        assert_eq!(log.high_watermark(), 4);
        assert_eq!(log.latest_epoch(), Some(1), "epoch 2 went with its batches");
        assert_eq!(log.end_offset_for_epoch(1, None), Some((1, 4)));
        assert_eq!(log.end_offset_for_epoch(2, None), None, "unknown here now");
        let p = log
            .producers()
            .get(7)
            .expect("the producer's earlier batches");
        assert_eq!(p.batches().last().map(|b| b.last_offset), Some(3));
        assert_eq!(batches_in(&disk, 0), vec![0, 1, 2, 3]);
        // The rebuilt index names only kept batches: one entry per batch
        // after the first.
        let index = disk.file("t-0/00000000000000000000.index").unwrap();
        assert_eq!(crate::log::index::offset_entries(index), 3);
        assert!(log.read(3, 1 << 20).unwrap().is_some());
        assert!(log.read(4, 1 << 20).unwrap().is_none());
        // Nothing to cut at or past the end.
        let mut out = Vec::new();
        assert_eq!(log.truncate_to(9, &mut ids, &mut out).unwrap().log_end, 4);
        assert!(out.is_empty());

        // The leader's batches take the dropped ones' place.
        let b = batch(1, 5_000);
        let h = validate_client_batch(&b, 1 << 20).unwrap();
        log.set_leader_epoch(3);
        let mut out = Vec::new();
        log.append(Now::default(), b, &h, &mut ids, &mut out)
            .unwrap();
        run(&mut log, &mut disk, &mut ids, out);
        assert_eq!(batches_in(&disk, 0), vec![0, 1, 2, 3, 4]);
        assert_eq!(log.end_offset_for_epoch(2, None), Some((1, 4)));
        assert_eq!(log.latest_epoch(), Some(3));
    }

    #[test]
    fn a_cut_in_a_sealed_segment_removes_later_segments_and_reopens_it() {
        // Two batches fill a segment.
        let (mut log, mut disk, mut ids) = log_with(7, 150, |_| 3);
        assert!(log.segment_count() >= 3, "{} segments", log.segment_count());
        let bases: Vec<u64> = log.segments.iter().map(|s| s.base).collect();
        let i = bases.iter().position(|&b| b > 0).unwrap();
        // Inside the first sealed segment: its second batch and all after go.
        let at = bases[i] - 1;
        let mut out = Vec::new();
        let t = log.truncate_to(at, &mut ids, &mut out).unwrap();
        assert_eq!(t.log_end, at);
        assert_eq!(t.segments_removed, bases.len() - 1);
        run(&mut log, &mut disk, &mut ids, out);
        assert!(log.is_quiet());
        assert_eq!(log.segment_count(), 1);
        assert!(log.segments[0].views.is_none(), "the active segment again");
        let kept: Vec<i64> = (0..i64::try_from(at).unwrap()).collect();
        assert_eq!(batches_in(&disk, 0), kept);
        for &b in &bases[1..] {
            assert!(batches_in(&disk, b).is_empty(), "segment {b} removed");
        }
        let snapshots: Vec<String> = disk
            .paths()
            .into_iter()
            .filter(|p| p.ends_with(".snapshot"))
            .collect();
        assert!(
            snapshots
                .iter()
                .all(
                    |p| crate::layout::parse_offset_file_name(&p[4..], crate::layout::SNAPSHOT)
                        .is_some_and(|o| o <= at)
                ),
            "no snapshot past the cut: {snapshots:?}"
        );
        // Appends go on in the reopened segment, and it rolls again.
        for ts in 0..4 {
            let b = batch(1, ts);
            let h = validate_client_batch(&b, 1 << 20).unwrap();
            let mut out = Vec::new();
            log.append(Now::default(), b, &h, &mut ids, &mut out)
                .unwrap();
            run(&mut log, &mut disk, &mut ids, out);
        }
        assert_eq!(log.log_end_offset(), at + 4);
        assert!(log.segment_count() >= 2);
        assert!(log.read(at, 1 << 20).unwrap().is_some());
    }

    #[test]
    fn a_full_truncation_leaves_an_empty_log_at_the_new_start() {
        let (mut log, mut disk, mut ids) = log_with(7, 150, |i| if i < 3 { 1 } else { 2 });
        assert!(log.segment_count() >= 3);
        let mut out = Vec::new();
        let t = log
            .truncate_fully_and_start_at(40, &mut ids, &mut out)
            .unwrap();
        assert_eq!((t.log_end, t.segments_removed), (40, 4));
        run(&mut log, &mut disk, &mut ids, out);
        assert!(log.is_quiet());
        assert_eq!(log.segment_count(), 1);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
        assert_eq!(log.high_watermark(), 40);
        assert_eq!(log.latest_epoch(), None);
        assert!(log.producers().get(7).is_none());
        let left: Vec<String> = disk
            .paths()
            .into_iter()
            .filter(|p| p.ends_with(".log") || p.ends_with(".snapshot"))
            .collect();
        assert_eq!(left, ["t-0/00000000000000000040.log"]);
        assert!(log.read(39, 1 << 20).is_err(), "below the start");
        // The leader's batches follow at the new start.
        let mut b = batch(1, 9_000).to_vec();
        b[..8].copy_from_slice(&40i64.to_be_bytes());
        let b = bytes::Bytes::from(b);
        let (_, h) = batch::scan(&b, 0).next().unwrap();
        let mut out = Vec::new();
        log.append_replica(Now::default(), b, &h, &mut ids, &mut out)
            .unwrap();
        run(&mut log, &mut disk, &mut ids, out);
        assert_eq!(log.log_end_offset(), 41);
        assert_eq!(batches_in(&disk, 40), vec![40]);
    }

    #[test]
    fn a_log_with_commands_in_flight_waits_and_a_point_below_the_start_is_refused() {
        let (mut log, _disk, mut ids) = log_with(3, 1 << 20, |_| 0);
        let mut out = Vec::new();
        log.write_producer_snapshot(&mut ids, &mut out);
        assert!(!log.is_quiet());
        assert_eq!(
            log.truncate_to(1, &mut ids, &mut Vec::new()),
            Err(TruncateError::Busy)
        );
        let (mut log, mut disk, mut ids) = log_with(3, 1 << 20, |_| 0);
        let mut out = Vec::new();
        log.delete_records_before(2, &mut ids, &mut out).unwrap();
        run(&mut log, &mut disk, &mut ids, out);
        assert_eq!(
            log.truncate_to(1, &mut ids, &mut Vec::new()),
            Err(TruncateError::BelowLogStart)
        );
    }
}
