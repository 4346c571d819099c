//! One partition's log: its segments, the completion of its writes, reads,
//! rolls, syncs and deletion. Appends are in `append.rs`, recovery from
//! disk in `recovery.rs`.
//!
//! Invariants: `segments` is sorted by base offset and contiguous (each base
//! is the previous segment's end); the last one is active; [`SegId`]s grow
//! with base offsets (both are handed out in order), so a segment is found
//! by id with a binary search. Every command emitted is in `pending` until
//! its `Done` arrives.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::config::TopicConfig;
use crate::io::{
    Command, Completion, DiskPartition, DiskSegment, IdMap, Ids, IoError, IoId, SegId,
};
use crate::time::Now;

use super::epochs::{LEADER_EPOCH_CHECKPOINT, LeaderEpochs};
use super::producers::ProducerStates;
use super::segment::Segment;

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

/// The batch a time lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeHit {
    /// Where the batch is; pin the segment while reading it.
    pub slice: ReadSlice,
    /// The batch's first offset (at least the log start).
    pub base_offset: u64,
    /// The batch's largest timestamp.
    pub max_timestamp: i64,
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
    /// The written end moved forward (wake followers' fetches, answer
    /// `acks=1` produces of a replicated partition).
    pub written_advanced: bool,
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
    /// Bytes read batch by batch to find where the log ends (segments not
    /// covered by the recovery point or a clean shutdown).
    pub scanned_bytes: u64,
}

/// What an emitted command was, so its `Done` can be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pending {
    Open,
    Append,
    Index,
    Truncate,
    Sync(SegId),
    Map(SegId),
    Remove,
    RemoveFile,
    RemoveDir,
    /// A producer-state snapshot write (or an old one's removal): a failure
    /// costs a longer replay at the next start, never data.
    Snapshot,
    /// A log cleaner command (`cleaner.rs` handles its answer).
    Clean(super::cleaner::CleanIo),
}

/// One partition's log.
#[derive(Debug)]
pub struct PartitionLog {
    pub(super) dir: String,
    pub(super) config: TopicConfig,
    /// By base offset; the last is the active segment. Empty only once the
    /// partition is deleted.
    pub(super) segments: Vec<Segment>,
    pub(super) log_start: u64,
    pub(super) log_end: u64,
    /// What readers see: everything below it. Alone it follows `written`;
    /// replicated, it is also held at `hw_bound`.
    pub(super) hwm: u64,
    /// One past the last offset whose bytes are all written here.
    pub(super) written: u64,
    /// Replicated, the most the high watermark may be: on a leader the
    /// least log end of the in-sync followers, on a follower the leader's
    /// high watermark. `None` alone (or with no followers).
    hw_bound: Option<u64>,
    pub(super) recovery_point: u64,
    pub(super) pending: IdMap<IoId, Pending>,
    /// `Append`s in issue order: (id, end offset it makes visible, answered).
    /// The high watermark is the end of the answered prefix.
    pub(super) appends: VecDeque<(IoId, u64, bool)>,
    pub(super) offline: Option<IoError>,
    pub(super) deleted: bool,
    /// Records appended since the last flush (`flush.messages`).
    pub(super) unflushed_messages: u64,
    /// Wall time of the first append since the last flush (`flush.ms`).
    pub(super) unflushed_since: Option<i64>,
    /// Idempotent producers' state (`producers.rs`).
    pub(super) producers: ProducerStates,
    /// Offsets of the producer-state snapshot files on disk, ascending.
    pub(super) snapshot_offsets: Vec<u64>,
    /// The cleaning pass under way (`cleaner.rs`).
    pub(super) cleaning: Option<super::cleaner::Cleaning>,
    /// Offsets below this are cleaned (compacted topics).
    pub(super) first_dirty: u64,
    /// What the cleaning pass that finished since the broker last asked
    /// did.
    pub(super) cleaner_advanced: Option<super::clean::Cleaned>,
    /// Where each leader epoch's batches start (`epochs.rs`).
    pub(super) epochs: LeaderEpochs,
    /// The epoch client appends are stamped with: this broker's leader
    /// epoch of the partition (0 alone).
    pub(super) stamp_epoch: i32,
}

impl PartitionLog {
    /// A log with no segments yet, for `create` and recovery to fill.
    pub(super) fn empty(dir: String, config: TopicConfig, start: u64) -> Self {
        Self {
            dir,
            config,
            segments: Vec::new(),
            log_start: start,
            log_end: start,
            hwm: start,
            written: start,
            hw_bound: None,
            recovery_point: start,
            pending: IdMap::default(),
            appends: VecDeque::new(),
            offline: None,
            deleted: false,
            unflushed_messages: 0,
            unflushed_since: None,
            producers: ProducerStates::default(),
            snapshot_offsets: Vec::new(),
            cleaning: None,
            first_dirty: start,
            cleaner_advanced: None,
            epochs: LeaderEpochs::default(),
            stamp_epoch: 0,
        }
    }

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
        let mut log = Self::empty(dir, config, start_offset);
        log.open_new_segment(start_offset, ids, out);
        log
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
    ///
    /// Producer state is rebuilt as [`PartitionLog::recover_partition`]
    /// does with no snapshot files.
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
        let found = DiskPartition {
            dir,
            metadata: None,
            segments,
            snapshots: Vec::new(),
            leader_epochs: None,
        };
        Self::recover_partition(
            config,
            found,
            recovery_point,
            log_start,
            clean_shutdown,
            ids,
            out,
        )
    }

    /// [`PartitionLog::recover`] from everything found in the partition's
    /// directory, producer-state snapshots included: the newest valid
    /// snapshot at or below the recovered log end is loaded and the batches
    /// after it are replayed from the segments; with none, the state is
    /// replayed from the log start after an unclean shutdown and starts
    /// empty after a clean one (Kafka's rule: a clean log without snapshots
    /// comes from a broker that kept none). Other snapshot files are removed.
    pub fn recover_partition(
        config: TopicConfig,
        found: DiskPartition,
        recovery_point: Option<u64>,
        log_start: Option<u64>,
        clean_shutdown: bool,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Recovered {
        let DiskPartition {
            dir,
            mut segments,
            snapshots,
            leader_epochs,
            ..
        } = found;
        segments.sort_by_key(|s| s.base_offset);
        segments.dedup_by_key(|s| s.base_offset);
        let (mut log, (truncated_bytes, scanned_bytes)) = if segments.is_empty() {
            let log = Self::create(dir, config, log_start.unwrap_or(0), ids, out);
            (log, (0, 0))
        } else {
            let mut log = Self::empty(dir, config, 0);
            let cut = log.recover_segments(
                &segments,
                recovery_point,
                log_start,
                clean_shutdown,
                ids,
                out,
            );
            (log, cut)
        };
        log.load_producers(&segments, snapshots, clean_shutdown, ids, out);
        if let Some(file) = leader_epochs {
            match LeaderEpochs::decode(&file) {
                Some(mut epochs) => {
                    // Epochs past what recovery kept are gone with their
                    // batches.
                    epochs.truncate_from(log.log_end);
                    // A log start checkpointed after the file was written.
                    epochs.truncate_to_start(log.log_start);
                    log.epochs = epochs;
                }
                None => tracing::warn!(
                    dir = %log.dir,
                    "unreadable {LEADER_EPOCH_CHECKPOINT}; leader epochs start afresh"
                ),
            }
        }
        Recovered {
            log,
            truncated_bytes,
            scanned_bytes,
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

    /// Emit `cmd`, remembering what it was.
    pub(super) fn emit(&mut self, cmd: Command, kind: Pending, out: &mut Vec<Command>) {
        self.pending.insert(cmd.io(), kind);
        out.push(cmd);
    }

    pub(super) fn open_new_segment(
        &mut self,
        base_offset: u64,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) {
        let seg = ids.seg();
        let cmd = Command::OpenSegment {
            io: ids.io(),
            seg,
            dir: self.dir.clone(),
            base_offset,
            create: true,
        };
        self.emit(cmd, Pending::Open, out);
        self.segments.push(Segment::new(seg, base_offset));
    }

    pub(super) fn segment_index(&self, seg: SegId) -> Option<usize> {
        // Ids grow with base offsets, except for a segment the cleaner
        // put in place of an older one.
        self.segments
            .binary_search_by_key(&seg, |s| s.id)
            .ok()
            .or_else(|| self.segments.iter().position(|s| s.id == seg))
    }

    /// Whether the active segment is older than `segment.ms`.
    pub(super) fn active_expired(&self, wall_ms: i64) -> bool {
        self.segments
            .last()
            .and_then(|s| s.first_append_wall.filter(|_| !s.is_empty()))
            .is_some_and(|t| wall_ms.saturating_sub(t) >= self.config.segment_ms)
    }

    /// Seal the active segment (final time-index entry, sync, map) and open
    /// a new one at the log end.
    pub(super) fn roll(&mut self, ids: &mut Ids, out: &mut Vec<Command>) {
        let Some(i) = self.segments.len().checked_sub(1) else {
            return;
        };
        let (seg, final_entry) = {
            let s = &mut self.segments[i];
            s.sealed = true;
            (s.id, s.time_entry_due())
        };
        if let Some(time_index) = final_entry {
            let cmd = Command::WriteIndex {
                io: ids.io(),
                seg,
                offset_index: Bytes::new(),
                time_index,
            };
            self.emit(cmd, Pending::Index, out);
        }
        self.request_sync(i, ids, out);
        self.emit(
            Command::MapSegment { io: ids.io(), seg },
            Pending::Map(seg),
            out,
        );
        self.open_new_segment(self.log_end, ids, out);
        self.write_producer_snapshot(ids, out);
    }

    /// Sync segment `i` if it has unsynced appends; with one `Sync` already
    /// in flight, ask for another when it is answered (group commit).
    pub(super) fn request_sync(&mut self, i: usize, ids: &mut Ids, out: &mut Vec<Command>) {
        let Some(s) = self.segments.get_mut(i) else {
            return;
        };
        let covered = s.sync_inflight.map_or(s.synced_end, |(_, end)| end);
        if s.end <= covered {
            return;
        }
        if s.sync_inflight.is_some() {
            s.sync_wanted = true;
            return;
        }
        let io = ids.io();
        s.sync_inflight = Some((io, s.end));
        let seg = s.id;
        self.emit(Command::Sync { io, seg }, Pending::Sync(seg), out);
    }

    /// Route the completion of a command this log emitted.
    pub fn handle_done(
        &mut self,
        io: IoId,
        result: Result<Completion, IoError>,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> LogEvent {
        let mut event = LogEvent::default();
        let Some(kind) = self.pending.remove(&io) else {
            return event;
        };
        if let Pending::Clean(k) = kind {
            event.failed = self.clean_done(io, k, result, ids, out);
            return event;
        }
        let completion = match result {
            Ok(c) => c,
            Err(e) if kind == Pending::Snapshot => {
                tracing::warn!(dir = %self.dir, error = %e, "producer snapshot file command failed");
                return event;
            }
            Err(e) => {
                if let Pending::Sync(seg) = kind {
                    if let Some(s) = self
                        .segment_index(seg)
                        .and_then(|i| self.segments.get_mut(i))
                    {
                        s.sync_inflight = None;
                    }
                }
                // Sticky: a failed append leaves a hole the high watermark
                // never passes, and later appends are refused.
                self.offline.get_or_insert_with(|| e.clone());
                event.failed = Some(e);
                return event;
            }
        };
        match kind {
            Pending::Append => {
                event.written_advanced = self.append_done(io);
                event.high_watermark_advanced = self.advance_high_watermark();
            }
            Pending::Sync(seg) => {
                if let Some(i) = self.segment_index(seg) {
                    let s = &mut self.segments[i];
                    if let Some((_, end)) = s.sync_inflight.take() {
                        s.synced_end = s.synced_end.max(end);
                    }
                    if std::mem::take(&mut s.sync_wanted) {
                        self.request_sync(i, ids, out);
                    }
                }
                event.recovery_point_advanced = self.advance_recovery_point();
            }
            Pending::Map(seg) => {
                if let (Completion::Mapped(views), Some(i)) = (completion, self.segment_index(seg))
                {
                    self.segments[i].mapped(views);
                }
            }
            Pending::Open
            | Pending::Index
            | Pending::Truncate
            | Pending::Remove
            | Pending::RemoveFile
            | Pending::RemoveDir
            | Pending::Snapshot
            | Pending::Clean(_) => {}
        }
        event
    }

    /// Mark an `Append` answered; move the written end over the answered
    /// prefix. Returns whether it moved.
    fn append_done(&mut self, io: IoId) -> bool {
        if let Some(a) = self.appends.iter_mut().find(|a| a.0 == io) {
            a.2 = true;
        }
        let before = self.written;
        while let Some(&(_, end, true)) = self.appends.front() {
            self.written = self.written.max(end);
            self.appends.pop_front();
        }
        self.written > before
    }

    /// Move the high watermark to the written end, held at the bound when
    /// replicated. It never goes back. Returns whether it moved.
    fn advance_high_watermark(&mut self) -> bool {
        let before = self.hwm;
        let to = self.hw_bound.map_or(self.written, |b| b.min(self.written));
        self.hwm = self.hwm.max(to);
        self.hwm > before
    }

    /// Stamp client appends with leader epoch `epoch` from now on (this
    /// broker leads the partition in it).
    pub fn set_leader_epoch(&mut self, epoch: i32) {
        self.stamp_epoch = epoch;
    }

    /// The leader epoch of the last batch, if any carried one.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest()
    }

    /// Where leader epoch `epoch` ends on this log: the largest epoch at
    /// or below it and the first offset past it, Kafka's answer; `leading`
    /// is the epoch this broker leads the log in, if it does (see
    /// `epochs.rs`).
    pub fn end_offset_for_epoch(&self, epoch: i32, leading: Option<i32>) -> Option<(i32, u64)> {
        self.epochs.end_offset_for(epoch, self.log_end, leading)
    }

    /// Where leader epoch `epoch` begins here, if a batch of it is here.
    pub fn epoch_start(&self, epoch: i32) -> Option<u64> {
        self.epochs.start_of(epoch)
    }

    /// The epoch of the first batch, when it starts at or before the log
    /// start (Kafka's answer to ListOffsets' earliest).
    pub fn earliest_epoch(&self) -> Option<i32> {
        self.epochs.epoch_at(self.log_start)
    }

    /// The log start moved: forget the epochs wholly below it, on disk too
    /// (`LeaderEpochs::truncate_to_start`).
    pub(super) fn trim_epochs_to_start(&mut self, ids: &mut Ids, out: &mut Vec<Command>) {
        if self.epochs.truncate_to_start(self.log_start) {
            let cmd = Command::WriteFile {
                io: ids.io(),
                path: format!("{}/{LEADER_EPOCH_CHECKPOINT}", self.dir),
                bytes: self.epochs.encode(),
            };
            self.emit(cmd, Pending::Snapshot, out);
        }
    }

    /// Where this log's batches of epochs above `epoch` begin (its log end
    /// when it has none): a follower told its leader's `epoch` ends
    /// somewhere keeps nothing of a later epoch (KIP-101).
    pub fn start_after_epoch(&self, epoch: i32) -> u64 {
        self.epochs
            .start_after(epoch)
            .map_or(self.log_end, |s| s.min(self.log_end))
    }

    /// Replicated: hold the high watermark at `bound` (the least log end of
    /// the in-sync replicas on a leader, the leader's high watermark on a
    /// follower); `None` lets it follow the written end. Returns whether
    /// the high watermark moved.
    pub fn set_high_watermark_bound(&mut self, bound: Option<u64>) -> bool {
        self.hw_bound = bound;
        self.advance_high_watermark()
    }

    /// Move the recovery point over every segment synced from it on.
    pub(super) fn advance_recovery_point(&mut self) -> bool {
        let before = self.recovery_point;
        let mut rp = before;
        let first = self.segments.partition_point(|s| s.end <= rp);
        for s in self.segments.get(first..).unwrap_or_default() {
            // A gap before this segment holds no offsets at all (a power
            // loss kept a later segment's synced bytes and not an earlier
            // one's unsynced tail; Kafka's logs have gaps too). Every
            // offset that exists below `s.base` is synced, so the point
            // steps over it: stopping there would leave every later
            // acks=-1 produce on a `flush.messages=1` topic waiting forever.
            // At run time segments are contiguous and an unsynced segment
            // stops the walk before the next one.
            rp = rp.max(s.base);
            rp = rp.max(s.synced_end);
            if rp < s.end {
                break;
            }
        }
        self.recovery_point = rp;
        rp > before
    }

    /// Whether `io` is a command this log emitted and has not seen answered.
    pub fn owns(&self, io: IoId) -> bool {
        self.pending.contains_key(&io)
    }

    /// The first offset in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.log_start
    }

    /// The offset the next append gets.
    pub fn log_end_offset(&self) -> u64 {
        self.log_end
    }

    /// Readers see everything below it and nothing at or above it: the
    /// written end alone, and replicated, no further than every in-sync
    /// replica has written.
    pub fn high_watermark(&self) -> u64 {
        self.hwm
    }

    /// One past the last offset whose bytes are all written here (what a
    /// follower is served up to, and what `acks=1` waits for).
    pub fn written_end(&self) -> u64 {
        self.written
    }

    /// Offsets below this are synced to disk.
    pub fn recovery_point(&self) -> u64 {
        self.recovery_point
    }

    /// The earliest deadline this log wants a `handle_timeout` at (a
    /// `segment.ms` roll, or a `flush.ms` sync), as a wall-clock time in ms.
    pub fn next_deadline_wall_ms(&self) -> Option<i64> {
        if self.offline.is_some() || self.deleted {
            return None;
        }
        let roll = self
            .segments
            .last()
            .and_then(|s| s.first_append_wall.filter(|_| !s.is_empty()))
            .map(|t| t.saturating_add(self.config.segment_ms));
        let flush = self
            .unflushed_since
            .filter(|_| self.config.flush_ms != i64::MAX)
            .map(|t| t.saturating_add(self.config.flush_ms));
        [roll, flush, self.cleaner_deadline_ms()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time passed: roll an expired active segment; sync when `flush.ms`
    /// says data has waited long enough.
    pub fn handle_timeout(&mut self, now: Now, ids: &mut Ids, out: &mut Vec<Command>) {
        if self.offline.is_some() || self.deleted {
            return;
        }
        if self.active_expired(now.wall_ms) {
            self.roll(ids, out);
        }
        let flush_due = self.unflushed_since.is_some_and(|t| {
            self.config.flush_ms != i64::MAX
                && now.wall_ms.saturating_sub(t) >= self.config.flush_ms
        });
        if flush_due {
            self.flush(ids, out);
        }
        self.continue_cleaning(now, ids, out);
    }

    /// Sync everything (clean shutdown): emits a `Sync` for every segment with
    /// unsynced appends. `recovery_point` reaches the log end once all are
    /// answered.
    pub fn flush(&mut self, ids: &mut Ids, out: &mut Vec<Command>) {
        self.unflushed_messages = 0;
        self.unflushed_since = None;
        let first = self
            .segments
            .partition_point(|s| s.end <= self.recovery_point);
        for i in first..self.segments.len() {
            self.request_sync(i, ids, out);
        }
    }

    /// The partition is offline after a storage error (sticky).
    pub fn offline(&self) -> Option<&IoError> {
        self.offline.as_ref()
    }

    /// Take the partition offline (sticky).
    pub(super) fn set_offline(&mut self, e: IoError) {
        self.offline.get_or_insert(e);
    }

    /// Number of segments (sealed and active).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Bytes in all segments' log files (`retention.bytes` compares this).
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }
}

pub(super) fn io_error(kind: std::io::ErrorKind, message: &str) -> IoError {
    IoError {
        kind,
        message: message.to_owned(),
    }
}

/// The path of a producer-state snapshot, `<dir>/<offset, 20 digits>.snapshot`.
pub(super) fn snapshot_path(dir: &str, offset: u64) -> String {
    crate::layout::offset_file_path(dir, offset, crate::layout::SNAPSHOT)
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
