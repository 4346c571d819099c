//! Retention: the oldest segments go when they are older than
//! `retention.ms` or the log is larger than `retention.bytes`, as Kafka's
//! `deleteOldSegments` decides, and the log start offset moves past them.
//!
//! Only whole segments go, oldest first, and only ones every byte of which
//! is below the high watermark; a segment wholly below the log start (moved
//! by DeleteRecords) goes too. A segment pinned by a `Send` in flight
//! stops the sweep there; the next sweep takes it. An active segment that is
//! itself past `retention.ms` is rolled first, as Kafka does, so an idle
//! topic's data does expire. Segments the cleaner is replacing stay until
//! their swap. Deleting a partition removes every segment here too.

use crate::config::CleanupPolicy;
use crate::io::{Command, Ids};
use crate::time::Now;

use super::ReadError;
use super::partition::{PartitionLog, Pending};

impl PartitionLog {
    /// Remove every segment and the directory (topic deletion), once no
    /// segment is pinned and no cleaned segment is being swapped in.
    /// Returns false while either holds; call again after an `unpin` or
    /// the swap's answer.
    pub fn delete(&mut self, ids: &mut Ids, out: &mut Vec<Command>) -> bool {
        if self.deleted {
            return true;
        }
        // A swap in flight renames files under the segments: wait for it.
        if self.segments.iter().any(|s| s.pins > 0) || self.cleaning_swaps() {
            return false;
        }
        self.abandon_cleaning(ids, out);
        for seg in std::mem::take(&mut self.segments).into_iter().map(|s| s.id) {
            self.emit(
                Command::RemoveSegment { io: ids.io(), seg },
                Pending::Remove,
                out,
            );
        }
        let dir = self.dir.clone();
        self.emit(
            Command::RemoveDir { io: ids.io(), dir },
            Pending::RemoveDir,
            out,
        );
        self.deleted = true;
        true
    }

    /// DeleteRecords: move the log start up to `offset` (the high
    /// watermark at most); the segments wholly below it go with the next
    /// retention sweep. The new log start, or `OffsetOutOfRange` past the
    /// high watermark.
    pub fn delete_records_before(
        &mut self,
        offset: u64,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Result<u64, ReadError> {
        if offset > self.hwm {
            return Err(ReadError::OffsetOutOfRange);
        }
        self.log_start = self.log_start.max(offset);
        self.trim_epochs_to_start(ids, out);
        Ok(self.log_start)
    }

    /// Delete what retention says must go. Returns whether the log start
    /// offset moved (the broker then checkpoints it).
    pub fn enforce_retention(&mut self, now: Now, ids: &mut Ids, out: &mut Vec<Command>) -> bool {
        if self.offline().is_some() || self.segments.is_empty() {
            return false;
        }
        if self.config.cleanup_policy == CleanupPolicy::Compact {
            // Compact-only topics are not trimmed by time or size: the
            // cleaner bounds them.
            return false;
        }
        let retention_ms = self.config.retention_ms;
        let expired =
            |max_ts: i64| retention_ms >= 0 && max_ts >= 0 && now.wall_ms - max_ts > retention_ms;
        let active_expired = self
            .segments
            .last()
            .is_some_and(|s| !s.is_empty() && expired(s.max_ts) && s.end <= self.hwm);
        if active_expired
            && self.segments[..self.segments.len() - 1]
                .iter()
                .all(|s| expired(s.max_ts))
        {
            self.roll(ids, out);
        }
        let mut excess = if self.config.retention_bytes >= 0 {
            self.size_bytes() as i64 - self.config.retention_bytes
        } else {
            i64::MIN
        };
        let mut removed = 0;
        // Never the active (last) segment.
        for s in &self.segments[..self.segments.len() - 1] {
            let by_time = expired(s.max_ts);
            let by_size = excess != i64::MIN && excess - s.size as i64 >= 0;
            // Wholly below a log start that DeleteRecords moved.
            let by_start = s.end <= self.log_start;
            let cleaning = self.cleaning_range().is_some_and(|r| r.contains(&s.base));
            if !(by_time || by_size || by_start) || s.pins > 0 || s.end > self.hwm || cleaning {
                break;
            }
            if excess != i64::MIN {
                excess -= s.size as i64;
            }
            removed += 1;
        }
        if removed == 0 {
            return false;
        }
        for s in self.segments.drain(..removed) {
            tracing::info!(dir = %self.dir, base = s.base, "retention: deleting segment");
            let cmd = Command::RemoveSegment {
                io: ids.io(),
                seg: s.id,
            };
            let io = cmd.io();
            self.pending.insert(io, Pending::Remove);
            out.push(cmd);
        }
        let start = self.segments.first().map_or(self.log_end, |s| s.base);
        self.log_start = self.log_start.max(start);
        self.recovery_point = self.recovery_point.max(self.log_start);
        self.trim_epochs_to_start(ids, out);
        true
    }
}

#[cfg(test)]
mod tests {
    use crate::config::TopicConfig;
    use crate::io::{Command, Ids};
    use crate::log::batch::{tests::batch, validate_client_batch};
    use crate::log::{PartitionLog, ReadError};
    use crate::sim::SimDisk;
    use crate::time::{Instant, Now};

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

    /// A log with `n` one-record batches stamped 1000, 2000, …, in segments
    /// of about two batches each.
    fn log_with(n: i64, config: TopicConfig) -> (PartitionLog, SimDisk, Ids) {
        let (mut disk, mut ids) = (SimDisk::default(), Ids::default());
        let mut out = Vec::new();
        let mut log = PartitionLog::create("t-0".into(), config, 0, &mut ids, &mut out);
        run(&mut log, &mut disk, &mut ids, out);
        for i in 1..=n {
            let b = batch(1, i * 1000);
            let h = validate_client_batch(&b, 1 << 20).unwrap();
            let mut out = Vec::new();
            let now = Now::new(Instant::from_nanos(1), i * 1000);
            log.append(now, b, &h, &mut ids, &mut out).unwrap();
            run(&mut log, &mut disk, &mut ids, out);
        }
        (log, disk, ids)
    }

    fn small(retention_ms: i64, retention_bytes: i64) -> TopicConfig {
        TopicConfig {
            segment_bytes: 180,
            retention_ms,
            retention_bytes,
            ..TopicConfig::default()
        }
    }

    #[test]
    fn time_retention_deletes_old_segments_and_moves_the_start() {
        let (mut log, mut disk, mut ids) = log_with(10, small(3500, -1));
        let before = log.segment_count();
        assert!(before >= 4, "{before} segments");
        let mut out = Vec::new();
        // At t=10s, records older than 6.5s (stamped 1s..6s) may go.
        let now = Now::new(Instant::from_nanos(2), 10_000);
        assert!(log.enforce_retention(now, &mut ids, &mut out));
        run(&mut log, &mut disk, &mut ids, out);
        assert!(log.segment_count() < before);
        let start = log.log_start_offset();
        assert!((1..=6).contains(&start), "log start {start}");
        assert_eq!(
            log.read(start - 1, 1 << 20),
            Err(ReadError::OffsetOutOfRange)
        );
        assert!(log.read(start, 1 << 20).unwrap().is_some());
        assert_eq!(log.high_watermark(), 10);
    }

    #[test]
    fn size_retention_keeps_the_log_at_or_above_the_limit() {
        let (mut log, mut disk, mut ids) = log_with(10, small(-1, 300));
        let mut out = Vec::new();
        assert!(log.enforce_retention(Now::default(), &mut ids, &mut out));
        run(&mut log, &mut disk, &mut ids, out);
        assert!(log.size_bytes() >= 300 || log.segment_count() == 1);
        assert!(
            log.size_bytes() < 300 + 180 * 2,
            "{} bytes left",
            log.size_bytes()
        );
    }

    #[test]
    fn pinned_segments_stop_the_sweep_and_compact_topics_keep_all() {
        let (mut log, mut disk, mut ids) = log_with(10, small(1, -1));
        let first = log.read(0, 1).unwrap().unwrap().seg;
        log.pin(first);
        let now = Now::new(Instant::from_nanos(2), 100_000);
        let mut out = Vec::new();
        assert!(!log.enforce_retention(now, &mut ids, &mut out));
        assert_eq!(log.log_start_offset(), 0);
        log.unpin(first);
        assert!(log.enforce_retention(now, &mut ids, &mut out));
        run(&mut log, &mut disk, &mut ids, out);
        // Everything expired: the active segment was rolled and went too.
        assert_eq!(log.log_start_offset(), 10);
        assert_eq!(log.read(10, 100).unwrap(), None);

        let mut config = small(1, -1);
        config.cleanup_policy = crate::config::CleanupPolicy::Compact;
        let (mut log, _, mut ids) = log_with(5, config);
        assert!(!log.enforce_retention(now, &mut ids, &mut Vec::new()));
    }
}
