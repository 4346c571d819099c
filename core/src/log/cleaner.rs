//! Running the log cleaner on one partition: a pass plans what to clean
//! ([`super::clean::plan`]), maps the dirty part's keys, then cleans the
//! sealed segments a group at a time, oldest first: consecutive segments
//! whose bytes fit one segment are rewritten as one replacement under the
//! cleaner's names (`CreateCleaned`, `Append`, `WriteIndex`, `Sync`,
//! `MapSegment`); once all of that is answered, reads move to the new
//! segment at once and the files are swapped (`SwapCleaned`, crash-safe:
//! see [`Command::SwapCleaned`]). A group's first base offset and its end
//! never change, so the log's offsets, high watermark and recovery point
//! stay as they were, and small cleaned segments merge over passes.
//!
//! A failure before the swap only abandons the pass (the old segment is
//! whole); a failed swap leaves the files in an unknown state, so the
//! partition goes offline and the next start finishes or undoes the swap.
//!
//! Limits, for now: the cleaning of one group runs in one go on the
//! broker's thread and holds the cleaned copy in memory until it is
//! written (at most `segment.bytes`).

use bytes::Bytes;

use crate::config::CleanupPolicy;
use crate::io::{Command, Completion, Ids, IoError, SegId, SegmentViews};
use crate::time::Now;

use super::clean::{self, Cleaned, KeyMap, Policy, Rules, SegmentInfo};
use super::partition::{PartitionLog, Pending};
use super::segment::{Rebuilt, Segment};

/// The broker's cleaner settings, for one pass.
#[derive(Debug, Clone, Copy)]
pub struct CleanerLimits {
    /// `log.cleaner.dedupe.buffer.size`: bytes the key map may hold.
    pub dedupe_buffer_bytes: usize,
    /// `log.decompression.max.bytes`.
    pub decompression_max_bytes: usize,
}

/// A cleaning pass over one log.
#[derive(Debug)]
pub(super) struct Cleaning {
    map: KeyMap,
    rules: Rules,
    /// Segments with a base offset below this are done.
    next: u64,
    /// The pass cleans segments ending at or below this; the first dirty
    /// offset when it is done.
    end: u64,
    step: Option<Step>,
    /// What the pass did so far.
    pub(super) stats: Cleaned,
}

/// A replacement for consecutive segments on its way in.
#[derive(Debug)]
struct Step {
    new: SegId,
    /// The segments it replaces, oldest first.
    old: Vec<SegId>,
    base: u64,
    end: u64,
    size: u64,
    rebuilt: Rebuilt,
    views: Option<SegmentViews>,
    /// Commands not yet answered.
    outstanding: u32,
    failed: bool,
    swapping: bool,
}

/// Which cleaner command a `Done` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CleanIo {
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
        if self.config.cleanup_policy == CleanupPolicy::Delete
            || self.cleaning.is_some()
            || self.offline().is_some()
            || self.segments.is_empty()
        {
            return false;
        }
        let first_dirty = self.first_dirty.max(self.log_start);
        let infos: Vec<SegmentInfo> = self
            .segments
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
        let mut map = KeyMap::new(limits.dedupe_buffer_bytes);
        let mut end = plan.end;
        for s in sealed.iter().filter(|s| s.end > first_dirty) {
            match clean::map_segment(&mut map, s.log(), limits.decompression_max_bytes) {
                Ok(true) => {}
                Ok(false) => {
                    end = s.base;
                    break;
                }
                Err(e) => {
                    tracing::warn!(dir = %self.dir, base = s.base, error = e, "cleaner cannot read a segment; not cleaning");
                    return false;
                }
            }
        }
        if end <= first_dirty {
            tracing::warn!(
                dir = %self.dir,
                bytes = limits.dedupe_buffer_bytes,
                "log.cleaner.dedupe.buffer.size holds less than one segment's keys; not cleaning"
            );
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
        tracing::debug!(dir = %self.dir, first_dirty, end, keys = map.len(), "cleaning");
        self.cleaning = Some(Cleaning {
            map,
            rules,
            next: self.segments[0].base,
            end,
            step: None,
            stats: Cleaned::default(),
        });
        self.clean_next(ids, out);
        true
    }

    /// The offsets of the segments being replaced, which retention must
    /// leave alone until the swap.
    pub(super) fn cleaning_range(&self) -> Option<std::ops::Range<u64>> {
        let step = self.cleaning.as_ref()?.step.as_ref()?;
        Some(step.base..step.end)
    }

    /// Clean groups of segments from `next` on until one needs rewriting
    /// (its commands are emitted) or the pass is done. A group is
    /// consecutive sealed segments whose bytes fit one segment
    /// (`segment.bytes`), so small cleaned segments merge over passes, as
    /// Kafka's `groupSegmentsBySize` does.
    fn clean_next(&mut self, ids: &mut Ids, out: &mut Vec<Command>) {
        let Some(c) = self.cleaning.as_mut() else {
            return;
        };
        let sealed = self.segments.len().saturating_sub(1);
        let segs = &self.segments[..sealed];
        while let Some(first) = segs.iter().position(|s| s.base >= c.next && s.end <= c.end) {
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
            let mut batches: Vec<Bytes> = Vec::new();
            let mut group = Cleaned::default();
            let mut unreadable = None;
            for (k, s) in segs.iter().enumerate().take(last + 1).skip(first) {
                match clean::clean_segment(s.log(), &c.map, &c.rules, k == last, &mut batches) {
                    Ok(stats) => {
                        group.records_in += stats.records_in;
                        group.records_out += stats.records_out;
                        group.bytes_in += stats.bytes_in;
                        group.bytes_out += stats.bytes_out;
                    }
                    Err(e) => {
                        unreadable = Some((s.base, e));
                        break;
                    }
                }
            }
            if let Some((base, e)) = unreadable {
                tracing::warn!(dir = %self.dir, base, error = e, "cleaner skips segments it cannot read");
                continue;
            }
            c.stats.records_in += group.records_in;
            c.stats.records_out += group.records_out;
            c.stats.bytes_in += group.bytes_in;
            c.stats.bytes_out += group.bytes_out;
            if first == last && group.bytes_out == group.bytes_in {
                continue;
            }
            let data: Bytes = batches.concat().into();
            let head = &segs[first];
            let rebuilt = head.rebuild_index(&data, self.config.index_interval_bytes);
            let new = ids.seg();
            let step = Step {
                new,
                old: segs[first..=last].iter().map(|s| s.id).collect(),
                base: head.base,
                end: segs[last].end,
                size: data.len() as u64,
                views: None,
                outstanding: 5,
                failed: false,
                swapping: false,
                rebuilt,
            };
            let cmds = [
                Command::CreateCleaned {
                    io: ids.io(),
                    seg: new,
                    dir: self.dir.clone(),
                    base_offset: head.base,
                },
                Command::Append {
                    io: ids.io(),
                    seg: new,
                    parts: vec![data],
                },
                Command::WriteIndex {
                    io: ids.io(),
                    seg: new,
                    offset_index: step.rebuilt.offset_index.clone(),
                    time_index: step.rebuilt.time_index.clone(),
                },
                Command::Sync {
                    io: ids.io(),
                    seg: new,
                },
            ];
            c.step = Some(step);
            for cmd in cmds {
                self.pending
                    .insert(cmd.io(), Pending::Clean(CleanIo::Write));
                out.push(cmd);
            }
            let io = ids.io();
            self.pending.insert(io, Pending::Clean(CleanIo::Map));
            out.push(Command::MapSegment { io, seg: new });
            return;
        }
        // Done: everything below `end` is clean.
        let Some(c) = self.cleaning.take() else {
            return;
        };
        self.first_dirty = self.first_dirty.max(c.end);
        self.cleaner_advanced = true;
        tracing::info!(
            dir = %self.dir,
            records_in = c.stats.records_in,
            records_out = c.stats.records_out,
            bytes_in = c.stats.bytes_in,
            bytes_out = c.stats.bytes_out,
            "cleaned"
        );
    }

    /// A cleaner command answered. Returns the error that took the
    /// partition offline, if this did.
    pub(super) fn clean_done(
        &mut self,
        kind: CleanIo,
        result: Result<Completion, IoError>,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Option<IoError> {
        let step = self.cleaning.as_mut().and_then(|c| c.step.as_mut())?;
        match (kind, result) {
            (CleanIo::Discard, _) => return None,
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
        if step.outstanding > 0 || step.swapping {
            return None;
        }
        let installed = if step.failed {
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
        match installed {
            Some(i) => {
                let step = self.cleaning.as_mut()?.step.as_mut()?;
                let n = step.old.len();
                let mut s = Segment::new(step.new, step.base);
                s.size = step.size;
                s.end = step.end;
                s.max_ts = step.rebuilt.max_ts;
                s.max_ts_rel = step.rebuilt.max_ts_rel;
                s.index = step.rebuilt.index.clone();
                s.views = step.views.take();
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
                // Failed, or retention took an old segment meanwhile.
                let new = step.new;
                let failed = step.failed;
                self.discard(new, ids, out);
                if failed {
                    self.cleaning = None;
                } else {
                    self.cleaning.as_mut().map(|c| c.step.take());
                    self.clean_next(ids, out);
                }
            }
        }
        None
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
        if let Some(step) = self.cleaning.take().and_then(|c| c.step) {
            if !step.swapping {
                self.discard(step.new, ids, out);
            }
        }
    }

    /// Offsets below this have been cleaned (`cleaner-offset-checkpoint`).
    pub fn first_dirty_offset(&self) -> u64 {
        self.first_dirty.max(self.log_start)
    }

    /// Set at recovery from the checkpoint.
    pub fn set_first_dirty_offset(&mut self, offset: u64) {
        self.first_dirty = offset;
    }

    /// Whether a pass finished since the last call (the checkpoint is due).
    pub fn take_cleaner_advanced(&mut self) -> bool {
        std::mem::take(&mut self.cleaner_advanced)
    }

    /// Whether a cleaning pass is under way.
    pub fn is_cleaning(&self) -> bool {
        self.cleaning.is_some()
    }
}
