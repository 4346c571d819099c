//! Running the log cleaner on one partition: a pass plans what to clean
//! ([`super::clean::plan`]), maps the dirty part's keys, then cleans the
//! sealed segments a group at a time, oldest first: consecutive segments
//! whose bytes fit one segment are rewritten as one replacement under the
//! cleaner's names (`CreateCleaned`, then `Append` and `WriteIndex` a piece
//! at a time, then `Sync` and `MapSegment`); once all of that is answered,
//! reads move to the new segment at once and the files are swapped
//! (`SwapCleaned`, crash-safe: see [`Command::SwapCleaned`]). A group's
//! first base offset and its end never change, so the log's offsets, high
//! watermark and recovery point stay as they were, and small cleaned
//! segments merge over passes.
//!
//! Off the request path: a piece is at most [`PIECE_BYTES`](super::PIECE_BYTES) of input, read
//! by a [`Job`] the driver runs on a thread of its own
//! ([`Command::Compute`]), never by the thread that runs the core. One job
//! is in flight per pass; a cleaning piece's job follows the previous
//! piece's `Append`, so memory holds one piece;
//! `log.cleaner.io.max.bytes.per.second` spaces the pieces out.
//!
//! A failure before the swap only abandons the pass (the old segments are
//! whole); a failed swap leaves the files in an unknown state, so the
//! partition goes offline and the next start finishes or undoes the swap.
//!
//! A swap waits while a replaced segment is pinned: a response built from
//! it may still be queued in the broker behind an earlier one on its
//! connection, its `Send` not yet issued, and the swap deletes the files
//! it names. The last unpin of a replaced segment wakes the pass
//! ([`PartitionLog::swap_held`], which the broker's unpin asks).

use std::sync::Arc;

use bytes::Bytes;

use crate::config::CleanupPolicy;
use crate::io::{Command, Completion, Ids, IoError, IoId, SegId, SegmentViews};
use crate::time::Now;

use super::clean::{self, Cleaned, KeyMap, Policy, Rules, SegmentInfo};
use super::job::{
    CleanJob, CleanOutput, Input, Job, JobOutput, MapJob, MapOutcome, MapOutput, Output, Work,
};
use super::partition::{PartitionLog, Pending};
use super::segment::Segment;

/// The broker's cleaner settings, for one pass.
#[derive(Debug, Clone, Copy)]
pub struct CleanerLimits {
    /// `log.cleaner.dedupe.buffer.size`: bytes the key map may hold.
    pub dedupe_buffer_bytes: usize,
    /// `log.decompression.max.bytes`.
    pub decompression_max_bytes: usize,
    /// `log.cleaner.io.max.bytes.per.second` (`u64::MAX`: no limit).
    pub io_max_bytes_per_second: u64,
}

/// A cleaning pass over one log.
#[derive(Debug)]
pub(super) struct Cleaning {
    /// Shared with the job in flight; a mapping job takes it along and
    /// gives it back with its output.
    map: Arc<KeyMap>,
    rules: Arc<Rules>,
    limits: CleanerLimits,
    /// Segments with a base offset below this are done.
    next: u64,
    /// The pass cleans segments ending at or below this; the first dirty
    /// offset when it is done.
    end: u64,
    /// Where the dirty part (mapped into `map`) starts.
    first_dirty: u64,
    /// While the keys are being mapped: the segment (by base offset) and
    /// byte position the next piece starts at.
    mapping: Option<(u64, usize)>,
    step: Option<Step>,
    /// When the pass started (wall clock), and the input bytes read since:
    /// the throttle's account.
    started_ms: i64,
    read: u64,
    /// The next piece waits for this wall-clock time (the throttle).
    resume_at: Option<i64>,
    /// The job in flight, whose answer the next piece waits for.
    computing: Option<IoId>,
    /// What the pass did so far.
    pub(super) stats: Cleaned,
}

impl Cleaning {
    /// When the bytes read so far allow the next piece under
    /// `log.cleaner.io.max.bytes.per.second`; `None` without a limit.
    fn throttled_until(&self) -> Option<i64> {
        let rate = self.limits.io_max_bytes_per_second;
        if rate == u64::MAX || rate == 0 {
            return None;
        }
        let wait = i64::try_from(self.read.saturating_mul(1000) / rate).unwrap_or(i64::MAX);
        Some(self.started_ms.saturating_add(wait))
    }
}

/// A replacement for consecutive segments on its way in.
#[derive(Debug)]
struct Step {
    new: SegId,
    /// The segments it replaces, oldest first.
    old: Vec<SegId>,
    base: u64,
    end: u64,
    /// The replacement as written so far: its batches and index state.
    building: Segment,
    /// Where the next piece starts: which replaced segment, which byte.
    at: (usize, usize),
    /// What this group's cleaning did.
    stats: Cleaned,
    views: Option<SegmentViews>,
    /// Writes not yet answered: while any is, the next piece waits (its
    /// answer calls for it).
    outstanding: u32,
    /// Every piece is written; `Sync` and `MapSegment` are issued.
    written: bool,
    failed: bool,
    /// Written, but a replaced segment is pinned: the swap waits.
    held: bool,
    swapping: bool,
}

/// Which cleaner command a `Done` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CleanIo {
    /// A piece's [`Job`].
    Compute,
    Write,
    Map,
    Swap,
    Discard,
}

impl PartitionLog {
    /// Start a cleaning pass if the log is compacted, idle and due.
    /// Whether one started.
    pub fn start_cleaning(
        &mut self,
        now: Now,
        limits: CleanerLimits,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> bool {
        // Nor while a discarded cleaned segment's removal is in flight: it
        // deletes its `.cleaned` files by name, and this pass may create
        // the same names again (the same group) before that runs.
        let discarding = self
            .pending
            .values()
            .any(|p| matches!(p, Pending::Clean(CleanIo::Discard)));
        if self.config.cleanup_policy == CleanupPolicy::Delete
            || self.cleaning.is_some()
            || discarding
            || self.offline().is_some()
            || self.segments.is_empty()
        {
            return false;
        }
        let first_dirty = self.first_dirty.max(self.log_start);
        // Only what every append has reached (below the high watermark)
        // and what is synced: the swap makes a record's removal durable,
        // so the later record of its key that allows it must be durable
        // first, or a power loss takes both. The segment after them counts
        // as the active one.
        let visible = self
            .segments
            .iter()
            .take_while(|s| s.end <= self.hwm && s.synced_end >= s.end)
            .count();
        let infos: Vec<SegmentInfo> = self.segments[..(visible + 1).min(self.segments.len())]
            .iter()
            .map(|s| SegmentInfo {
                base: s.base,
                end: s.end,
                size: s.size,
                max_ts: s.max_ts,
                // The first record's time is not kept per segment; the
                // newest is a later stand-in, so a log becomes overdue
                // no earlier than Kafka's would.
                first_ts: s.max_ts,
            })
            .collect();
        let policy = Policy {
            min_dirty_ratio: self.config.min_cleanable_dirty_ratio.0,
            min_lag_ms: self.config.min_compaction_lag_ms,
            max_lag_ms: self.config.max_compaction_lag_ms,
        };
        let Some(plan) = clean::plan(&infos, first_dirty, policy, now.wall_ms) else {
            return false;
        };
        let sealed = &self.segments[..plan.upto];
        if sealed.iter().any(|s| s.views.is_none()) {
            // A segment sealed a moment ago is not mapped yet.
            return false;
        }
        let producer_last = self
            .producers
            .iter()
            .filter_map(|(pid, e)| e.batches().last().map(|b| (pid, b.last_offset)))
            .collect();
        let rules = Rules {
            now_ms: now.wall_ms,
            delete_retention_ms: self.config.delete_retention_ms,
            producer_last,
            decompression_limit: limits.decompression_max_bytes,
            levels: self.config.compression_levels,
        };
        tracing::debug!(dir = %self.dir, first_dirty, end = plan.end, "cleaning");
        self.cleaning = Some(Cleaning {
            map: Arc::new(KeyMap::new(limits.dedupe_buffer_bytes)),
            rules: Arc::new(rules),
            limits,
            next: self.segments[0].base,
            end: plan.end,
            first_dirty,
            mapping: Some((0, 0)),
            step: None,
            started_ms: now.wall_ms,
            read: 0,
            resume_at: None,
            computing: None,
            stats: Cleaned::default(),
        });
        self.map_piece(ids, out);
        true
    }

    /// Hand the next piece of the dirty part's keys to a job.
    fn map_piece(&mut self, ids: &mut Ids, out: &mut Vec<Command>) {
        let Some(c) = self.cleaning.as_mut() else {
            return;
        };
        let Some(cursor) = c.mapping else {
            return;
        };
        let sealed = self.segments.len().saturating_sub(1);
        // The dirty segments from the cursor on (retention may have taken
        // the one it named).
        let segments = self.segments[..sealed]
            .iter()
            .filter(|s| s.base >= cursor.0 && s.end > c.first_dirty && s.end <= c.end)
            .filter_map(job_input)
            .collect();
        let job = Job::new(Work::Map(MapJob {
            map: std::mem::take(&mut c.map),
            segments,
            cursor,
            limit: c.limits.decompression_max_bytes,
        }));
        let io = ids.io();
        c.computing = Some(io);
        self.pending.insert(io, Pending::Clean(CleanIo::Compute));
        out.push(Command::Compute { io, job });
    }

    /// A mapping piece is back: go on mapping, or, once all of the dirty
    /// part is mapped, start cleaning.
    fn mapped(&mut self, o: MapOutput, ids: &mut Ids, out: &mut Vec<Command>) {
        let Some(c) = self.cleaning.as_mut() else {
            return;
        };
        c.map = o.map;
        c.read += o.read as u64;
        match o.outcome {
            MapOutcome::More(cursor) => {
                c.mapping = Some(cursor);
                // The throttle covers reading for the map too.
                c.resume_at = c.throttled_until();
                return;
            }
            MapOutcome::Done => {}
            // Clean only what was mapped whole.
            MapOutcome::Full(base) => c.end = c.end.min(base),
            MapOutcome::Failed(base, error) => {
                tracing::warn!(dir = %self.dir, base, error, "cleaner cannot read a segment; not cleaning");
                self.cleaning = None;
                return;
            }
        }
        c.mapping = None;
        if c.end <= c.first_dirty {
            tracing::warn!(
                dir = %self.dir,
                bytes = c.limits.dedupe_buffer_bytes,
                "log.cleaner.dedupe.buffer.size holds less than one segment's keys; not cleaning"
            );
            self.cleaning = None;
            return;
        }
        tracing::debug!(dir = %self.dir, keys = c.map.len(), end = c.end, "cleaner mapped the dirty part");
        self.clean_next(ids, out);
    }

    /// The offsets of the segments being replaced, which retention must
    /// leave alone until the swap.
    pub(super) fn cleaning_range(&self) -> Option<std::ops::Range<u64>> {
        let step = self.cleaning.as_ref()?.step.as_ref()?;
        Some(step.base..step.end)
    }

    /// Start the next group of segments from `next` on (its first piece
    /// is emitted), or finish the pass. A group is consecutive sealed
    /// segments whose bytes fit one segment (`segment.bytes`), so small
    /// cleaned segments merge over passes, as Kafka's
    /// `groupSegmentsBySize` does.
    fn clean_next(&mut self, ids: &mut Ids, out: &mut Vec<Command>) {
        let Some(c) = self.cleaning.as_mut() else {
            return;
        };
        let sealed = self.segments.len().saturating_sub(1);
        let segs = &self.segments[..sealed];
        // Never from an empty segment (a crash's hole can leave one): it
        // ends where it starts, so `next` would not move past it and the
        // pass would clean it again and again.
        if let Some(first) = segs
            .iter()
            .position(|s| s.base >= c.next && s.end <= c.end && s.end > s.base)
        {
            let mut last = first;
            let mut size = segs[first].size;
            while let Some(n) = segs.get(last + 1) {
                let fits = n.end <= c.end
                    && size + n.size <= self.config.segment_bytes
                    && n.end - segs[first].base <= i32::MAX as u64;
                if !fits {
                    break;
                }
                size += n.size;
                last += 1;
            }
            c.next = segs[last].end;
            let new = ids.seg();
            c.step = Some(Step {
                new,
                old: segs[first..=last].iter().map(|s| s.id).collect(),
                base: segs[first].base,
                end: segs[last].end,
                building: Segment::new(new, segs[first].base),
                at: (0, 0),
                stats: Cleaned::default(),
                views: None,
                outstanding: 1,
                written: false,
                failed: false,
                held: false,
                swapping: false,
            });
            let io = ids.io();
            self.pending.insert(io, Pending::Clean(CleanIo::Write));
            out.push(Command::CreateCleaned {
                io,
                seg: new,
                dir: self.dir.clone(),
                base_offset: segs[first].base,
            });
            self.clean_piece(ids, out);
            return;
        }
        // Done: everything below `end` is clean.
        let Some(c) = self.cleaning.take() else {
            return;
        };
        self.first_dirty = self.first_dirty.max(c.end);
        self.cleaner_advanced = Some(c.stats);
        tracing::info!(
            dir = %self.dir,
            records_in = c.stats.records_in,
            records_out = c.stats.records_out,
            bytes_in = c.stats.bytes_in,
            bytes_out = c.stats.bytes_out,
            "cleaned"
        );
    }

    /// Hand the group's next piece to a job.
    fn clean_piece(&mut self, ids: &mut Ids, out: &mut Vec<Command>) {
        let Some(c) = self.cleaning.as_mut() else {
            return;
        };
        let Some(step) = c.step.as_ref() else {
            return;
        };
        let segments = step
            .old
            .iter()
            .map(|id| {
                self.segments
                    .iter()
                    .find(|s| s.id == *id)
                    .and_then(job_input)
            })
            .collect();
        let job = Job::new(Work::Clean(CleanJob {
            map: Arc::clone(&c.map),
            rules: Arc::clone(&c.rules),
            segments,
            at: step.at,
        }));
        let io = ids.io();
        c.computing = Some(io);
        self.pending.insert(io, Pending::Clean(CleanIo::Compute));
        out.push(Command::Compute { io, job });
    }

    /// A cleaning piece is back: index its batches and emit its writes;
    /// once the group is all read, emit its `Sync` and `MapSegment`.
    fn cleaned(&mut self, o: CleanOutput, ids: &mut Ids, out: &mut Vec<Command>) {
        let Some(c) = self.cleaning.as_mut() else {
            return;
        };
        let Some(step) = c.step.as_mut() else {
            return;
        };
        let interval = self.config.index_interval_bytes;
        let read = o.stats.bytes_in;
        c.read += read;
        c.stats.bytes_in += read;
        step.stats.records_in += o.stats.records_in;
        step.stats.records_out += o.stats.records_out;
        step.stats.bytes_in += o.stats.bytes_in;
        step.stats.bytes_out += o.stats.bytes_out;
        if let Some(error) = &o.failed {
            tracing::warn!(dir = %self.dir, error, "cleaner cannot clean a group; pass abandoned");
            step.failed = true;
        }
        let mut offset_index = Vec::new();
        let mut time_index = Vec::new();
        for b in &o.batches {
            let h = super::batch::BatchHeader::parse(b);
            let (Some(h), Ok(len)) = (h, u32::try_from(b.len())) else {
                step.failed = true;
                break;
            };
            let last = u64::try_from(h.last_offset()).unwrap_or(0);
            if let Some((o, t)) = step.building.push(len, last, h.max_timestamp, interval, 0) {
                offset_index.extend_from_slice(&o);
                time_index.extend_from_slice(&t);
            }
        }
        if step.failed {
            if step.outstanding == 0 {
                self.settle_step(ids, out);
            }
            return;
        }
        step.at = o.at;
        step.written = step.at.0 >= step.old.len();
        let mut emit = |cmd: Command, kind: CleanIo, step: &mut Step| {
            step.outstanding += 1;
            self.pending.insert(cmd.io(), Pending::Clean(kind));
            out.push(cmd);
        };
        let parts: Vec<Bytes> = o.batches;
        if !parts.is_empty() {
            emit(
                Command::Append {
                    io: ids.io(),
                    seg: step.new,
                    parts,
                },
                CleanIo::Write,
                step,
            );
        }
        if !offset_index.is_empty() || !time_index.is_empty() {
            emit(
                Command::WriteIndex {
                    io: ids.io(),
                    seg: step.new,
                    offset_index: offset_index.into(),
                    time_index: time_index.into(),
                },
                CleanIo::Write,
                step,
            );
        }
        if step.written {
            emit(
                Command::Sync {
                    io: ids.io(),
                    seg: step.new,
                },
                CleanIo::Write,
                step,
            );
            emit(
                Command::MapSegment {
                    io: ids.io(),
                    seg: step.new,
                },
                CleanIo::Map,
                step,
            );
        }
        // The throttle: the next piece no sooner than the rate allows. A
        // piece whose records all went wrote nothing, so no answer will
        // call for the next; `continue_cleaning`, right after this answer,
        // does.
        c.resume_at = c.throttled_until();
    }

    /// Called after a command of this log was answered, with the time: go
    /// on with the group's next piece if its last one is written and the
    /// throttle allows.
    pub fn continue_cleaning(&mut self, now: Now, ids: &mut Ids, out: &mut Vec<Command>) {
        let Some(c) = self.cleaning.as_mut() else {
            return;
        };
        if c.step.as_ref().is_some_and(|s| s.held) {
            // Swap now if the pins are gone; still held otherwise, until
            // the next unpin asks again.
            self.settle_step(ids, out);
            return;
        }
        if c.computing.is_some() || c.resume_at.is_some_and(|t| t > now.wall_ms) {
            return;
        }
        c.resume_at = None;
        if c.mapping.is_some() {
            self.map_piece(ids, out);
            return;
        }
        let ready = c
            .step
            .as_ref()
            .is_some_and(|s| s.outstanding == 0 && !s.written && !s.failed);
        if ready {
            self.clean_piece(ids, out);
        }
    }

    /// When the throttle lets the next piece go (for the broker's timer).
    pub(super) fn cleaner_deadline_ms(&self) -> Option<i64> {
        let c = self.cleaning.as_ref()?;
        let waiting = c.computing.is_none()
            && (c.mapping.is_some()
                || c.step
                    .as_ref()
                    .is_some_and(|s| !s.held && s.outstanding == 0 && !s.written));
        c.resume_at.filter(|_| waiting)
    }

    /// A cleaner command answered. Returns the error that took the
    /// partition offline, if this did.
    pub(super) fn clean_done(
        &mut self,
        io: IoId,
        kind: CleanIo,
        result: Result<Completion, IoError>,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Option<IoError> {
        match kind {
            CleanIo::Discard => return None,
            CleanIo::Compute => {
                self.computed(io, result, ids, out);
                return None;
            }
            CleanIo::Write | CleanIo::Map | CleanIo::Swap => {}
        }
        let step = self.cleaning.as_mut().and_then(|c| c.step.as_mut())?;
        match (kind, result) {
            (CleanIo::Swap, Ok(_)) => {
                self.cleaning.as_mut().map(|c| c.step.take());
                self.clean_next(ids, out);
                return None;
            }
            (CleanIo::Swap, Err(e)) => {
                // The files may be half swapped: only a restart (which
                // finishes or undoes the swap) knows the log again.
                tracing::error!(dir = %self.dir, error = %e, "cleaned segment swap failed; partition offline");
                self.cleaning = None;
                self.set_offline(e.clone());
                return Some(e);
            }
            (_, Err(e)) => {
                tracing::warn!(dir = %self.dir, error = %e, "cleaner write failed; pass abandoned");
                step.failed = true;
            }
            (CleanIo::Map, Ok(Completion::Mapped(views))) => step.views = Some(views),
            (_, Ok(_)) => {}
        }
        step.outstanding = step.outstanding.saturating_sub(1);
        if step.outstanding == 0 && !step.swapping && (step.written || step.failed) {
            self.settle_step(ids, out);
        }
        None
    }

    /// A job is back. An answer to a pass that has since stopped is
    /// dropped; a job the driver could not run abandons the pass.
    fn computed(
        &mut self,
        io: IoId,
        result: Result<Completion, IoError>,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) {
        let Some(c) = self.cleaning.as_mut().filter(|c| c.computing == Some(io)) else {
            return;
        };
        c.computing = None;
        match result {
            Ok(Completion::Computed(JobOutput(Output::Map(o)))) => self.mapped(o, ids, out),
            Ok(Completion::Computed(JobOutput(Output::Clean(o)))) => self.cleaned(o, ids, out),
            other => {
                let error = match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "a job answered with something else".to_owned(),
                };
                tracing::warn!(dir = %self.dir, error, "cleaner job failed; pass abandoned");
                match c.step.as_mut() {
                    Some(step) => {
                        step.failed = true;
                        if step.outstanding == 0 {
                            self.settle_step(ids, out);
                        }
                    }
                    None => self.cleaning = None,
                }
            }
        }
    }

    /// The group is written (or failed): swap it in, or throw it away.
    fn settle_step(&mut self, ids: &mut Ids, out: &mut Vec<Command>) {
        let Some(step) = self.cleaning.as_mut().and_then(|c| c.step.as_mut()) else {
            return;
        };
        let unchanged = step.old.len() == 1 && step.stats.bytes_out == step.stats.bytes_in;
        let installed = if step.failed || unchanged {
            None
        } else {
            // The replaced segments, still in place and all sealed.
            let n = step.old.len();
            let active = self.segments.len().saturating_sub(1);
            self.segments[..active]
                .iter()
                .position(|s| s.id == step.old[0])
                .filter(|&i| {
                    i + n <= active
                        && self.segments[i..i + n]
                            .iter()
                            .map(|s| s.id)
                            .eq(step.old.iter().copied())
                })
        };
        // A response built from a replaced segment and not yet sent (its
        // `Send` not even issued) pins it: swapping now would delete the
        // files that `Send` will name. Wait; `continue_cleaning` comes back.
        let pinned = installed.is_some_and(|i| {
            self.segments[i..i + step.old.len()]
                .iter()
                .any(|s| s.pins > 0)
        });
        step.held = pinned;
        if pinned {
            return;
        }
        if let Some(c) = self.cleaning.as_mut() {
            if let Some(step) = c.step.as_ref() {
                c.stats.records_in += step.stats.records_in;
                c.stats.records_out += step.stats.records_out;
                c.stats.bytes_out += step.stats.bytes_out;
            }
        }
        let Some(step) = self.cleaning.as_mut().and_then(|c| c.step.as_mut()) else {
            return;
        };
        match installed {
            Some(i) => {
                let n = step.old.len();
                let mut s =
                    std::mem::replace(&mut step.building, Segment::new(step.new, step.base));
                s.end = step.end;
                if let Some(views) = step.views.take() {
                    s.mapped(views);
                }
                s.first_append_wall = self.segments[i].first_append_wall;
                s.synced_end = step.end;
                s.sealed = true;
                // Reads go to the new files from now on; the old ones stay
                // open for sends already reading them.
                self.segments.splice(i..i + n, [s]);
                step.swapping = true;
                let io = ids.io();
                self.pending.insert(io, Pending::Clean(CleanIo::Swap));
                out.push(Command::SwapCleaned {
                    io,
                    seg: step.new,
                    replaces: step.old.clone(),
                });
            }
            None => {
                // Failed, unchanged, or retention took an old segment.
                let (new, failed) = (step.new, step.failed);
                self.discard(new, ids, out);
                if failed {
                    self.cleaning = None;
                } else {
                    self.cleaning.as_mut().map(|c| c.step.take());
                    self.clean_next(ids, out);
                }
            }
        }
    }

    /// Delete a cleaned segment that will not be swapped in.
    fn discard(&mut self, seg: SegId, ids: &mut Ids, out: &mut Vec<Command>) {
        let io = ids.io();
        self.pending.insert(io, Pending::Clean(CleanIo::Discard));
        out.push(Command::RemoveSegment { io, seg });
    }

    /// Stop a pass (the partition is being deleted): a replacement not yet
    /// swapped in goes.
    pub(super) fn abandon_cleaning(&mut self, ids: &mut Ids, out: &mut Vec<Command>) {
        if let Some(step) = self.cleaning.take().and_then(|c| c.step)
            && !step.swapping
        {
            self.discard(step.new, ids, out);
        }
    }

    /// Stop the pass at a clean shutdown, unless a swap is in flight (it
    /// finishes, and the pass with it).
    pub fn stop_cleaning(&mut self, ids: &mut Ids, out: &mut Vec<Command>) {
        if !self.cleaning_swaps() {
            self.abandon_cleaning(ids, out);
            return;
        }
        // No group after the one swapping: the pass ends with it (all
        // below its end is clean, groups going oldest first).
        if let Some(c) = self.cleaning.as_mut()
            && let Some(step) = c.step.as_ref()
        {
            c.end = step.end;
        }
    }

    /// Whether a swap waits for a replaced segment's pins to go (the
    /// broker then calls [`PartitionLog::continue_cleaning`] as it unpins).
    pub fn swap_held(&self) -> bool {
        self.cleaning
            .as_ref()
            .and_then(|c| c.step.as_ref())
            .is_some_and(|s| s.held)
    }

    /// Whether a cleaned segment's swap is in flight.
    pub(super) fn cleaning_swaps(&self) -> bool {
        self.cleaning
            .as_ref()
            .and_then(|c| c.step.as_ref())
            .is_some_and(|s| s.swapping)
    }

    /// Offsets below this have been cleaned (`cleaner-offset-checkpoint`).
    pub fn first_dirty_offset(&self) -> u64 {
        self.first_dirty.max(self.log_start)
    }

    /// Set at recovery from the checkpoint.
    pub fn set_first_dirty_offset(&mut self, offset: u64) {
        self.first_dirty = offset;
    }

    /// What the pass that finished since the last call did, if one did
    /// (the checkpoint is due).
    pub fn take_cleaner_advanced(&mut self) -> Option<Cleaned> {
        std::mem::take(&mut self.cleaner_advanced)
    }

    /// Whether a cleaning pass is under way.
    pub fn is_cleaning(&self) -> bool {
        self.cleaning.is_some()
    }
}

/// What a job reads of a segment: its mapped log, if it is mapped.
fn job_input(s: &Segment) -> Option<Input> {
    let views = s.views.as_ref()?;
    Some(Input {
        base: s.base,
        end: s.end,
        log: Arc::clone(&views.log),
        size: usize::try_from(s.size).unwrap_or(usize::MAX),
    })
}
