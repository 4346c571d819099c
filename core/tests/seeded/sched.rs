//! The commands a broker has issued and not yet seen answered, and which of
//! them may complete next. Completions come in a seeded random order, but
//! only in orders the contract (core/src/io.rs) allows a real driver:
//!
//! - file commands for one segment take effect in issue order (the
//!   sequential segment writer);
//! - a `Sync` may be handed to an fsync worker: it is started in order,
//!   later `Append`s and `WriteIndex`es may complete before it, and it
//!   makes durable what its segment holds when it finishes (everything
//!   issued before it, maybe more);
//! - commands on one path (`WriteFile`, `RemoveFile`) keep their order, and
//!   a `RemoveDir` waits for every earlier command in its directory;
//! - `Send`s and the `Close` of one connection keep their order;
//! - the log cleaner's `CreateCleaned` opens a segment like `OpenSegment`
//!   (its writes, sync and map follow in its order), and its `SwapCleaned`
//!   comes after them and after every earlier command that touches a
//!   segment it replaces: their writes and syncs, and `Send`s still
//!   reading their files (the driver deletes those only once no `Send`
//!   reads them);
//! - a `Compute` job waits for nothing: it may finish at any time.
//!
//! Everything else may be overtaken: other segments, other partitions,
//! other connections.
//!
//! In `partition_fifo` mode the environment is stricter than the contract:
//! one writer per partition rather than per segment, so a killed process
//! leaves a prefix of each partition's writes (with the world's durable
//! prefix rule, a power loss does too), never a hole between segments,
//! which a known broker bug cannot recover from (see `seeded_sim.rs`).

use std::collections::{BTreeMap, HashSet, VecDeque};

use conveyor_core::{Command, ConnId, IoId, Part, SegId};

use super::rng::Rng;

/// A stream of commands that complete in issue order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Lane {
    Seg(SegId),
    /// Every segment of one partition directory (`partition_fifo`).
    Part(String),
    Path(String),
    Dir(String),
    Conn(ConnId),
    /// A `Compute` job, alone in its lane.
    Job(IoId),
}

fn seg_of(cmd: &Command) -> Option<SegId> {
    match cmd {
        Command::OpenSegment { seg, .. }
        | Command::Append { seg, .. }
        | Command::WriteIndex { seg, .. }
        | Command::Truncate { seg, .. }
        | Command::Sync { seg, .. }
        | Command::MapSegment { seg, .. }
        | Command::Read { seg, .. }
        | Command::RemoveSegment { seg, .. }
        | Command::CreateCleaned { seg, .. }
        | Command::SwapCleaned { seg, .. } => Some(*seg),
        _ => None,
    }
}

/// Whether `cmd` names `seg`: a command of the segment, or a `Send` that
/// reads its file.
fn touches(cmd: &Command, seg: SegId) -> bool {
    match cmd {
        Command::Send { parts, .. } => parts
            .iter()
            .any(|p| matches!(p, Part::File { seg: s, .. } if *s == seg)),
        cmd => seg_of(cmd) == Some(seg),
    }
}

/// Writes go ahead while a Sync of their segment runs; anything else that
/// touches the segment waits for it, as a writer that hands off only the
/// fsync would.
fn is_write(cmd: &Command) -> bool {
    matches!(cmd, Command::Append { .. } | Command::WriteIndex { .. })
}

#[derive(Debug)]
struct Issued {
    /// Position in the broker's issue order.
    order: u64,
    cmd: Command,
}

/// What may come next: the head of a lane, or a started fsync finishing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ready {
    Head(Lane),
    Fsync(SegId),
}

/// The outstanding commands of one broker's life.
#[derive(Debug, Default)]
pub struct Sched {
    lanes: BTreeMap<Lane, VecDeque<Issued>>,
    /// Syncs started (handed to an fsync worker) and not finished.
    syncing: BTreeMap<SegId, Issued>,
    /// Each segment's partition directory and base offset, from its
    /// `OpenSegment` or `CreateCleaned`.
    seg_dir: BTreeMap<SegId, (String, u64)>,
    /// Segments the cleaner created and has not swapped in yet.
    cleaning: HashSet<SegId>,
    /// Ids issued and not yet answered.
    pending: HashSet<IoId>,
    next_order: u64,
    partition_fifo: bool,
    /// A planted bug: two appends to one segment may take effect swapped.
    swap_appends: bool,
}

impl Sched {
    pub fn new(partition_fifo: bool, swap_appends: bool) -> Self {
        Self {
            partition_fifo,
            swap_appends,
            ..Self::default()
        }
    }

    /// Take a command the broker issued; an error names a broken promise.
    pub fn push(&mut self, cmd: Command) -> Result<(), String> {
        if !self.pending.insert(cmd.io()) {
            return Err(format!("{:?} issued twice while in flight", cmd.io()));
        }
        if let Command::OpenSegment {
            seg,
            dir,
            base_offset,
            ..
        } = &cmd
        {
            self.seg_dir.insert(*seg, (dir.clone(), *base_offset));
        }
        if let Command::CreateCleaned {
            seg,
            dir,
            base_offset,
            ..
        } = &cmd
        {
            self.seg_dir.insert(*seg, (dir.clone(), *base_offset));
            self.cleaning.insert(*seg);
        }
        if let Command::Sync { seg, .. } = &cmd {
            let queued = self
                .lanes
                .values()
                .flatten()
                .any(|i| matches!(i.cmd, Command::Sync { seg: s, .. } if s == *seg));
            if queued || self.syncing.contains_key(seg) {
                return Err(format!("a second Sync in flight for {seg:?}"));
            }
        }
        let lane = self.lane_of(&cmd);
        let order = self.next_order;
        self.next_order += 1;
        self.lanes
            .entry(lane)
            .or_default()
            .push_back(Issued { order, cmd });
        Ok(())
    }

    fn lane_of(&self, cmd: &Command) -> Lane {
        if let Some(seg) = seg_of(cmd) {
            return match self.dir_of(seg) {
                Some(dir) if self.partition_fifo => Lane::Part(dir.to_owned()),
                _ => Lane::Seg(seg),
            };
        }
        match cmd {
            Command::WriteFile { path, .. } | Command::RemoveFile { path, .. } => {
                Lane::Path(path.clone())
            }
            Command::RemoveDir { dir, .. } => Lane::Dir(dir.clone()),
            Command::Send { conn, .. }
            | Command::Close { conn, .. }
            | Command::Connect { conn, .. } => Lane::Conn(*conn),
            Command::Compute { io, .. } => Lane::Job(*io),
            _ => unreachable!("every segment command has a segment"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The partition directory of a segment this broker opened.
    pub fn dir_of(&self, seg: SegId) -> Option<&str> {
        self.seg_dir.get(&seg).map(|(d, _)| d.as_str())
    }

    /// Whether `cmd` is one of the cleaner's writes before its swap: the
    /// `CreateCleaned`, and the writes, sync and map of a segment it
    /// created and has not swapped in (a failure only abandons the pass).
    pub fn is_cleaner_write(&self, cmd: &Command) -> bool {
        matches!(
            cmd,
            Command::CreateCleaned { .. }
                | Command::Append { .. }
                | Command::WriteIndex { .. }
                | Command::Sync { .. }
                | Command::MapSegment { .. }
        ) && seg_of(cmd).is_some_and(|s| self.cleaning.contains(&s))
    }

    /// The segments of `dir` this broker opened below base offset `base`.
    pub fn segments_below(&self, dir: &str, base: u64) -> Vec<SegId> {
        self.seg_dir
            .iter()
            .filter(|(_, (d, b))| d == dir && *b < base)
            .map(|(&s, _)| s)
            .collect()
    }

    /// The path of a segment's `.log` file.
    pub fn log_path(&self, seg: SegId) -> Option<String> {
        let (dir, base) = self.seg_dir.get(&seg)?;
        Some(format!("{dir}/{base:020}.log"))
    }

    /// The next command to carry out and answer, chosen at random among
    /// those the contract lets complete now. Starting an fsync happens here
    /// too (it has no effect until the Sync finishes).
    pub fn next(&mut self, rng: &mut Rng) -> Option<Command> {
        loop {
            let ready = self.ready();
            if ready.is_empty() {
                return None;
            }
            match ready[rng.index(ready.len())].clone() {
                Ready::Fsync(seg) => {
                    let issued = self.syncing.remove(&seg)?;
                    return Some(self.answered(issued.cmd));
                }
                Ready::Head(lane) => {
                    let q = self.lanes.get_mut(&lane)?;
                    if let Command::Sync { seg, .. } = q.front()?.cmd {
                        if rng.chance(1, 2) {
                            // Handed to the fsync worker: later writes may
                            // overtake it; it finishes at a later pick.
                            let issued = q.pop_front()?;
                            self.syncing.insert(seg, issued);
                            self.drop_empty(&lane);
                            continue;
                        }
                    }
                    let swap = self.swap_appends
                        && q.len() >= 2
                        && matches!((&q[0].cmd, &q[1].cmd),
                            (Command::Append { seg: a, .. }, Command::Append { seg: b, .. }) if a == b)
                        && rng.chance(1, 2);
                    let issued = if swap { q.remove(1)? } else { q.pop_front()? };
                    self.drop_empty(&lane);
                    return Some(self.answered(issued.cmd));
                }
            }
        }
    }

    fn answered(&mut self, cmd: Command) -> Command {
        self.pending.remove(&cmd.io());
        if let Command::SwapCleaned { seg, .. } = &cmd {
            // From now on (done or failed) an ordinary segment.
            self.cleaning.remove(seg);
        }
        cmd
    }

    fn drop_empty(&mut self, lane: &Lane) {
        if self.lanes.get(lane).is_some_and(VecDeque::is_empty) {
            self.lanes.remove(lane);
        }
    }

    fn ready(&self) -> Vec<Ready> {
        let mut ready: Vec<Ready> = self.syncing.keys().map(|&s| Ready::Fsync(s)).collect();
        for (lane, q) in &self.lanes {
            let Some(head) = q.front() else { continue };
            let ok = match seg_of(&head.cmd) {
                Some(_) if is_write(&head.cmd) => true,
                Some(seg) if matches!(head.cmd, Command::SwapCleaned { .. }) => {
                    !self.sync_running(lane, seg) && !self.replaced_busy(&head.cmd, head.order)
                }
                Some(_) if matches!(head.cmd, Command::Sync { .. }) => true,
                Some(seg) => !self.sync_running(lane, seg),
                None => match lane {
                    Lane::Dir(dir) => !self.earlier_in_dir(dir, head.order),
                    _ => true,
                },
            };
            if ok {
                ready.push(Ready::Head(lane.clone()));
            }
        }
        ready
    }

    /// Whether a Sync runs that a non-write command of `seg` in `lane`
    /// must wait for: its segment's, or in `partition_fifo` mode its
    /// partition's.
    fn sync_running(&self, lane: &Lane, seg: SegId) -> bool {
        match lane {
            Lane::Part(dir) => self
                .syncing
                .keys()
                .any(|s| self.dir_of(*s) == Some(dir.as_str())),
            _ => self.syncing.contains_key(&seg),
        }
    }

    /// Whether a command issued before the swap `cmd` (at `order`) still
    /// touches a segment it replaces.
    fn replaced_busy(&self, cmd: &Command, order: u64) -> bool {
        let Command::SwapCleaned { replaces, .. } = cmd else {
            return false;
        };
        let busy = |i: &Issued| i.order < order && replaces.iter().any(|&r| touches(&i.cmd, r));
        self.lanes.values().flatten().any(busy) || self.syncing.values().any(busy)
    }

    /// Whether a command issued before `order` still touches `dir`.
    fn earlier_in_dir(&self, dir: &str, order: u64) -> bool {
        let prefix = format!("{dir}/");
        let in_dir = |lane: &Lane| match lane {
            Lane::Seg(seg) => self.dir_of(*seg) == Some(dir),
            Lane::Part(d) | Lane::Dir(d) => d == dir,
            Lane::Path(p) => p.starts_with(&prefix),
            Lane::Conn(_) | Lane::Job(_) => false,
        };
        self.lanes
            .iter()
            .any(|(lane, q)| in_dir(lane) && q.iter().any(|i| i.order < order))
            || self
                .syncing
                .iter()
                .any(|(seg, i)| i.order < order && self.dir_of(*seg) == Some(dir))
    }
}
