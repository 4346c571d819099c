//! The cleaner's CPU work as jobs the driver runs away from the thread that
//! runs the core ([`Command::Compute`](crate::Command::Compute)).
//!
//! Mapping a piece of a log's keys and cleaning a piece of a group of
//! segments decompress, parse and recompress up to [`PIECE_BYTES`] of
//! records: milliseconds of CPU that, run by the core itself, every request
//! behind them would wait for. A [`Job`] carries what the piece reads (the
//! segments' mapped views, the key map, the rules) and [`Job::run`] is a
//! pure function of it, so a driver runs it on a worker thread
//! (`log.cleaner.threads` of them in io-std) and a simulation runs it at
//! once, deterministically. The core keeps at most one job in flight per
//! pass and does nothing with the job's input until its [`JobOutput`] is
//! back: the key map travels with a mapping job and returns with its
//! output.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::io::View;

use super::clean::{self, CleanError, Cleaned, KeyMap, Mapped, Rules};

/// Input bytes one job reads: requests are served between jobs, and memory
/// holds one piece's output.
pub const PIECE_BYTES: usize = 256 << 10;

/// CPU work for the driver to run with [`Job::run`] and answer with
/// [`Completion::Computed`](crate::Completion::Computed). Cloning shares
/// the job; two jobs are equal when they are the same one.
#[derive(Clone)]
pub struct Job(Arc<Work>);

/// What a job produced, for the core (drivers only pass it back).
#[derive(Clone)]
pub struct JobOutput(pub(super) Output);

#[derive(Clone)]
pub(super) enum Work {
    Map(MapJob),
    Clean(CleanJob),
}

/// One segment a job reads: its `.log` view, of which the first `size`
/// bytes are the segment.
#[derive(Clone)]
pub(super) struct Input {
    pub(super) base: u64,
    pub(super) end: u64,
    pub(super) log: View,
    pub(super) size: usize,
}

impl Input {
    fn bytes(&self) -> &[u8] {
        let log = (*self.log).as_ref();
        log.get(..self.size).unwrap_or(log)
    }
}

/// Map the keys of the dirty segments from a cursor on.
#[derive(Clone)]
pub(super) struct MapJob {
    pub(super) map: Arc<KeyMap>,
    /// The dirty segments from the cursor's on, oldest first.
    pub(super) segments: Vec<Input>,
    /// Base offset and byte position to start at (a position applies only
    /// to the segment with that base).
    pub(super) cursor: (u64, usize),
    /// `log.decompression.max.bytes`.
    pub(super) limit: usize,
}

/// Clean the next piece of a group of segments.
#[derive(Clone)]
pub(super) struct CleanJob {
    pub(super) map: Arc<KeyMap>,
    pub(super) rules: Arc<Rules>,
    /// The group's segments, oldest first; `None` for one retention took.
    pub(super) segments: Vec<Option<Input>>,
    /// Which segment and byte the piece starts at.
    pub(super) at: (usize, usize),
}

#[derive(Clone)]
pub(super) enum Output {
    Map(MapOutput),
    Clean(CleanOutput),
}

/// What a mapping piece did.
#[derive(Clone)]
pub(super) struct MapOutput {
    /// The key map, with the piece's keys.
    pub(super) map: Arc<KeyMap>,
    /// Input bytes read.
    pub(super) read: usize,
    pub(super) outcome: MapOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MapOutcome {
    /// More to map from this cursor on.
    More((u64, usize)),
    /// The dirty part is mapped.
    Done,
    /// The map filled in the segment with this base offset: clean only
    /// what was mapped whole.
    Full(u64),
    /// The segment with this base offset cannot be read.
    Failed(u64, CleanError),
}

/// What a cleaning piece did.
#[derive(Clone)]
pub(super) struct CleanOutput {
    /// The surviving batches, in order.
    pub(super) batches: Vec<Bytes>,
    /// Where the next piece starts; `.0` is the group's length once it is
    /// all read.
    pub(super) at: (usize, usize),
    pub(super) stats: Cleaned,
    /// Why the group cannot be cleaned (a segment gone or unreadable).
    pub(super) failed: Option<String>,
}

impl Job {
    pub(super) fn new(work: Work) -> Job {
        Job(Arc::new(work))
    }

    /// Do the work. Pure: the same job gives the same output on any thread.
    pub fn run(self) -> JobOutput {
        let work = Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone());
        JobOutput(match work {
            Work::Map(job) => Output::Map(job.run()),
            Work::Clean(job) => Output::Clean(job.run()),
        })
    }
}

impl MapJob {
    fn run(self) -> MapOutput {
        let MapJob {
            map,
            segments,
            mut cursor,
            limit,
        } = self;
        // The core gave its reference up with the job, so this is the only
        // one unless the command was cloned.
        let mut map = Arc::try_unwrap(map).unwrap_or_else(|shared| (*shared).clone());
        let mut read = 0usize;
        let mut outcome = MapOutcome::Done;
        for s in &segments {
            if read >= PIECE_BYTES {
                outcome = MapOutcome::More(cursor);
                break;
            }
            let pos = if s.base == cursor.0 { cursor.1 } else { 0 };
            let log = s.bytes();
            match clean::map_batches(&mut map, log, pos, PIECE_BYTES - read, limit) {
                Ok(Mapped::To(next)) => {
                    read += next.saturating_sub(pos);
                    cursor = if next >= log.len() {
                        (s.end, 0)
                    } else {
                        (s.base, next)
                    };
                }
                Ok(Mapped::Full) => {
                    outcome = MapOutcome::Full(s.base);
                    break;
                }
                Err(e) => {
                    outcome = MapOutcome::Failed(s.base, e);
                    break;
                }
            }
        }
        if outcome == MapOutcome::Done && cursor.1 != 0 {
            // Stopped inside a segment (the budget): more to map.
            outcome = MapOutcome::More(cursor);
        }
        MapOutput {
            map: Arc::new(map),
            read,
            outcome,
        }
    }
}

impl CleanJob {
    fn run(self) -> CleanOutput {
        let mut out = CleanOutput {
            batches: Vec::new(),
            at: self.at,
            stats: Cleaned::default(),
            failed: None,
        };
        let n = self.segments.len();
        let mut read = 0usize;
        while out.at.0 < n && read < PIECE_BYTES {
            let (k, pos) = out.at;
            let Some(s) = &self.segments[k] else {
                out.failed = Some("retention took a segment being cleaned".into());
                break;
            };
            let log = s.bytes();
            let budget = PIECE_BYTES - read.min(PIECE_BYTES - 1);
            let keep_last = k + 1 == n;
            let r = clean::clean_batches(
                log,
                pos,
                budget,
                &self.map,
                &self.rules,
                keep_last,
                &mut out.batches,
            );
            let (next, stats) = match r {
                Ok(r) => r,
                Err(e) => {
                    out.failed = Some(format!("segment {} cannot be read: {e}", s.base));
                    break;
                }
            };
            read += stats.bytes_in as usize;
            out.stats.records_in += stats.records_in;
            out.stats.records_out += stats.records_out;
            out.stats.bytes_in += stats.bytes_in;
            out.stats.bytes_out += stats.bytes_out;
            out.at = if next >= log.len() {
                (k + 1, 0)
            } else {
                (k, next)
            };
        }
        out
    }
}

impl PartialEq for Job {
    fn eq(&self, other: &Job) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Job {}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Work::Map(j) => write!(
                f,
                "MapKeys({} segments from {:?})",
                j.segments.len(),
                j.cursor
            ),
            Work::Clean(j) => write!(f, "Clean({} segments from {:?})", j.segments.len(), j.at),
        }
    }
}

impl fmt::Debug for JobOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Output::Map(o) => write!(
                f,
                "Mapped({} keys, {} bytes read, {:?})",
                o.map.len(),
                o.read,
                o.outcome
            ),
            Output::Clean(o) => write!(
                f,
                "Cleaned({} batches, to {:?}, failed: {:?})",
                o.batches.len(),
                o.at,
                o.failed
            ),
        }
    }
}
