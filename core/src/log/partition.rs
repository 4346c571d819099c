//! One partition's log: its segments, the active segment's appends, reads,
//! rolls and recovery. (API fixed; bodies filled in by the log work.)

use bytes::Bytes;

use crate::config::TopicConfig;
use crate::io::{Command, Completion, DiskSegment, IoError, IoId, Ids, SegId};
use crate::time::Now;

use super::batch::BatchHeader;

/// What an accepted append was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// The offset of the batch's first record.
    pub base_offset: u64,
    /// The offset of the batch's last record.
    pub last_offset: u64,
    /// The append time stamped on the batch when the topic uses
    /// `LogAppendTime`, else -1.
    pub log_append_time: i64,
}

/// A region of one segment's `.log` file to send for a fetch: whole batches,
/// starting at the batch that holds the requested offset, ending at or below
/// the high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSlice {
    /// The segment; pin it ([`PartitionLog::pin`]) while the send is in flight.
    pub seg: SegId,
    /// Byte position of the first batch.
    pub pos: u64,
    /// Length in bytes (whole batches).
    pub len: u64,
}

/// Why a read has no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The offset is below the log start or above the log end offset.
    OffsetOutOfRange,
}

/// What a completed command changed, for the broker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogEvent {
    /// The high watermark moved forward (wake fetches, answer produces).
    pub high_watermark_advanced: bool,
    /// The recovery point moved forward (data up to it is synced).
    pub recovery_point_advanced: bool,
    /// The command failed: the partition is now offline (sticky).
    pub failed: Option<IoError>,
}

/// A partition rebuilt from disk at startup.
#[derive(Debug)]
pub struct Recovered {
    /// The log.
    pub log: PartitionLog,
    /// Bytes cut off a torn or corrupt tail (0 when the log was whole).
    pub truncated_bytes: u64,
}

/// One partition's log.
#[derive(Debug)]
pub struct PartitionLog {
    dir: String,
    config: TopicConfig,
}

impl PartitionLog {
    /// A new, empty partition in `dir` whose first segment has base offset
    /// `start_offset` (0 for a new topic). Emits the `OpenSegment { create:
    /// true }` for it.
    pub fn create(
        dir: String,
        config: TopicConfig,
        start_offset: u64,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Self {
        let _ = (start_offset, ids, out);
        Self { dir, config }
    }

    /// Rebuild a partition from the segments found on disk (any order).
    ///
    /// `recovery_point` is the checkpointed offset below which data is known
    /// synced (`None`: nothing known, scan everything); `clean_shutdown` says
    /// the broker stopped cleanly, so nothing needs scanning. Segments past
    /// the recovery point are scanned batch by batch (lengths, CRC-32C); at
    /// the first torn or corrupt batch the segment is truncated and every
    /// later segment removed. Missing or inconsistent indexes are rebuilt.
    /// Emits `OpenSegment { create: false }` for every kept segment (and any
    /// `Truncate`, `WriteIndex`, `RemoveFile` recovery needs). With no
    /// segments at all, acts like [`PartitionLog::create`] at `log_start`.
    #[allow(clippy::too_many_arguments)]
    pub fn recover(
        dir: String,
        config: TopicConfig,
        segments: Vec<DiskSegment>,
        recovery_point: Option<u64>,
        log_start: Option<u64>,
        clean_shutdown: bool,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Recovered {
        let _ = (segments, recovery_point, log_start, clean_shutdown, ids, out);
        Recovered {
            log: Self { dir, config },
            truncated_bytes: 0,
        }
    }

    /// The partition directory, relative to the data directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The topic settings this log runs with.
    pub fn config(&self) -> &TopicConfig {
        &self.config
    }

    /// Append one client batch that passed [`super::batch::validate_client_batch`]
    /// (`header` is its parsed header). Assigns its offsets from the log end
    /// offset, patches the base offset (and partition leader epoch 0) in a
    /// new 16-byte prefix, restamps and re-checksums the header only for
    /// `LogAppendTime`, rolls first when the batch would overflow
    /// `segment.bytes`, the offset index is full or `segment.ms` passed, and
    /// emits the `Append` (and `WriteIndex` when an index entry is due).
    /// The record bytes are never copied. Fails with the partition's storage
    /// error when it is offline.
    pub fn append(
        &mut self,
        now: Now,
        batch: Bytes,
        header: &BatchHeader,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Result<AppendInfo, IoError> {
        let _ = (now, batch, header, ids, out);
        todo!("log: append")
    }

    /// Route the completion of a command this log emitted.
    pub fn handle_done(
        &mut self,
        io: IoId,
        result: Result<Completion, IoError>,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> LogEvent {
        let _ = (io, result, ids, out);
        todo!("log: handle_done")
    }

    /// Whether `io` is a command this log emitted and has not seen answered.
    pub fn owns(&self, io: IoId) -> bool {
        let _ = io;
        todo!("log: owns")
    }

    /// The first offset in the log.
    pub fn log_start_offset(&self) -> u64 {
        todo!("log: log_start_offset")
    }

    /// The offset the next append gets.
    pub fn log_end_offset(&self) -> u64 {
        todo!("log: log_end_offset")
    }

    /// One past the last offset whose bytes are all written: readers see
    /// everything below it and nothing at or above it.
    pub fn high_watermark(&self) -> u64 {
        todo!("log: high_watermark")
    }

    /// Offsets below this are synced to disk.
    pub fn recovery_point(&self) -> u64 {
        todo!("log: recovery_point")
    }

    /// Bytes readable from `offset`: whole batches from the one holding
    /// `offset`, within one segment, adding batches while the total stays
    /// within `max_bytes` — but the first batch always, even when larger
    /// (Kafka's KIP-74 rule, so a consumer always progresses). `Ok(None)`
    /// when `offset` is at or past the high watermark (and not past the log
    /// end); `OffsetOutOfRange` below the log start or past the log end.
    pub fn read(&self, offset: u64, max_bytes: u64) -> Result<Option<ReadSlice>, ReadError> {
        let _ = (offset, max_bytes);
        todo!("log: read")
    }

    /// Bytes visible from `offset` to the high watermark (for `min_bytes`):
    /// an estimate that is exact at batch boundaries.
    pub fn visible_bytes_from(&self, offset: u64) -> u64 {
        let _ = offset;
        todo!("log: visible_bytes_from")
    }

    /// The first offset whose batch's max timestamp is at least `timestamp`,
    /// with that timestamp, searched through the time indexes (ListOffsets
    /// by time). `None` when every record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Option<(u64, i64)> {
        let _ = timestamp;
        todo!("log: offset_for_timestamp")
    }

    /// Keep `seg`'s files while a `Send` naming it is in flight.
    pub fn pin(&mut self, seg: SegId) {
        let _ = seg;
        todo!("log: pin")
    }

    /// Release one [`PartitionLog::pin`].
    pub fn unpin(&mut self, seg: SegId) {
        let _ = seg;
        todo!("log: unpin")
    }

    /// The earliest deadline this log wants a `handle_timeout` at (a
    /// `segment.ms` roll), as a wall-clock time in ms.
    pub fn next_deadline_wall_ms(&self) -> Option<i64> {
        todo!("log: next_deadline_wall_ms")
    }

    /// Time passed: roll an expired active segment.
    pub fn handle_timeout(&mut self, now: Now, ids: &mut Ids, out: &mut Vec<Command>) {
        let _ = (now, ids, out);
        todo!("log: handle_timeout")
    }

    /// Sync everything (clean shutdown): emits a `Sync` for every segment with
    /// unsynced appends. `recovery_point` reaches the log end once all are
    /// answered.
    pub fn flush(&mut self, ids: &mut Ids, out: &mut Vec<Command>) {
        let _ = (ids, out);
        todo!("log: flush")
    }

    /// Remove every segment and the directory (topic deletion), once no
    /// segment is pinned. Returns false while pins remain; call again after
    /// an `unpin`.
    pub fn delete(&mut self, ids: &mut Ids, out: &mut Vec<Command>) -> bool {
        let _ = (ids, out);
        todo!("log: delete")
    }

    /// The partition is offline after a storage error (sticky).
    pub fn offline(&self) -> Option<&IoError> {
        todo!("log: offline")
    }
}
