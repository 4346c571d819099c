//! The simulated world: one broker, its disk, its clients and the clock,
//! every choice drawn from the seed. A step is one event: a command
//! completes, a client sends or disconnects, time passes, the machine loses
//! power, the process is killed, or the broker shuts down cleanly and
//! starts again. After every event the model checks what came back.
//!
//! With `Options::compacted`, a third topic is compacted, with small
//! segments and a cleaner that looks for work every few ms: its jobs,
//! cleaned segments and swaps are commands like any other, its writes and
//! swaps fail now and then (a failed write abandons the pass only; a
//! failed swap takes the partition offline), and a life may end in the
//! middle of a swap, after its commit point.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use conveyor_core::sim::SimDisk;
use conveyor_core::{
    Broker, Command, Config, ConnId, Done, Instant, IoError, IoId, Now, Part, Poll,
};

use super::client::{self, Client};
use super::model::{Compact, Model, TopicSpec};
use super::rng::Rng;
use super::sched::Sched;
use super::wire;

mod lives;

/// A bug planted in the simulated environment, to prove the checks can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planted {
    None,
    /// The disk answers `Sync` without making anything durable.
    LostSyncs,
    /// Two appends to one segment may take effect in swapped order.
    SwappedAppends,
    /// A cleaned segment's swap deletes the segments it replaces durably,
    /// but a power loss undoes its renames (`SimDisk::volatile_swaps`).
    VolatileSwaps,
    /// The disk answers a cleaned segment's `Sync` without making it
    /// durable (`SimDisk::lose_cleaned_syncs`).
    LostCleanedSyncs,
}

/// How the environment behaves beyond what the seed decides.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub planted: Planted,
    /// Never leave a hole between segments (see the known bug in
    /// `seeded_sim.rs`): one writer per partition, durable in order (see
    /// `sched`), and once a file command of a partition fails every later
    /// one does too, as on a dead disk.
    pub no_holes: bool,
    /// Shut down cleanly even while a storage error holds a partition
    /// offline, or with faults during the shutdown (see the known bug in
    /// `seeded_sim.rs`).
    pub clean_shutdown_when_offline: bool,
    /// Add a compacted topic (`table`), so the log cleaner runs under
    /// everything above. Without it a seed runs the schedule it ran before
    /// the topic existed (the regression seeds of `seeded_sim.rs`).
    pub compacted: bool,
}

/// What one seed's run did, for the summary line.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub seeds: u64,
    pub commands: u64,
    pub requests: u64,
    pub power_losses: u64,
    pub kills: u64,
    pub clean_restarts: u64,
    pub faults: u64,
    /// The cleaner's `Compute` jobs run.
    pub cleaner_jobs: u64,
    /// Cleaned segments created (`CreateCleaned` done).
    pub cleaned_segments: u64,
    /// Cleaned segments swapped in, and of those, swaps that replaced more
    /// than one segment.
    pub swaps: u64,
    pub merging_swaps: u64,
    /// Cleaning passes started (a key-mapping job from the log's start).
    pub cleaner_passes: u64,
    /// Injected failures of a cleaner write (the pass abandoned) and of a
    /// swap (the partition offline).
    pub cleaner_write_faults: u64,
    pub swap_faults: u64,
    /// Lives ended in the middle of a swap, right after its log rename
    /// (its commit point).
    pub mid_swap_crashes: u64,
    /// `Compute` jobs answered with an error (the pass abandoned).
    pub job_faults: u64,
    /// Times a known record was found gone where compaction allows it.
    pub compacted_away: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.seeds += o.seeds;
        self.commands += o.commands;
        self.requests += o.requests;
        self.power_losses += o.power_losses;
        self.kills += o.kills;
        self.clean_restarts += o.clean_restarts;
        self.faults += o.faults;
        self.cleaner_jobs += o.cleaner_jobs;
        self.cleaned_segments += o.cleaned_segments;
        self.swaps += o.swaps;
        self.merging_swaps += o.merging_swaps;
        self.cleaner_passes += o.cleaner_passes;
        self.cleaner_write_faults += o.cleaner_write_faults;
        self.swap_faults += o.swap_faults;
        self.mid_swap_crashes += o.mid_swap_crashes;
        self.job_faults += o.job_faults;
        self.compacted_away += o.compacted_away;
    }
}

type Check = Result<(), String>;

/// The wall clock when a seed starts (Unix ms).
const START_MS: i64 = 1_700_000_000_000;

/// Bounds on loops that must end, so a broker that never goes idle fails
/// the seed instead of hanging the test.
const MAX_POLLS: usize = 100_000;
const MAX_SETTLE: usize = 50_000;

/// How the broker's life ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Power loss: every file cut to what was synced.
    PowerLoss,
    /// The process dies; the page cache keeps every written byte.
    Kill,
}

pub struct World {
    rng: Rng,
    /// Separate streams, so how many numbers one part draws does not shift
    /// the others' choices.
    sched_rng: Rng,
    fault_rng: Rng,
    /// Failed `Compute` jobs, from a stream of their own (seeded apart
    /// from the rest, so adding it moved no other choice).
    job_rng: Rng,
    opts: Options,
    config: Config,
    broker: Broker,
    disk: SimDisk,
    sched: Sched,
    now: Now,
    deadline: Option<Instant>,
    clients: BTreeMap<ConnId, Client>,
    /// Connections whose bytes the simulator reads itself (setup, checks).
    raw: Vec<ConnId>,
    next_conn: u64,
    next_corr: i32,
    /// Requests in flight per connection, at most.
    pipeline: usize,
    model: Model,
    /// Counts broker inputs: the clock of "handled before / after".
    event: u64,
    /// One injectable file command in this many fails (none: no faults).
    fault_rate: Option<u64>,
    inject: bool,
    shutting_down: bool,
    /// Print every event (`CONVEYOR_SIM_TRACE=1`), to follow a failing seed.
    trace: bool,
    /// Cleaned segments whose creation or a write failed (injected): their
    /// later commands may fail in turn, the discarding `RemoveSegment`
    /// included.
    failed_cleaned: std::collections::HashSet<conveyor_core::SegId>,
    /// The command being run is a random step's (not recovery's, a
    /// shutdown's or a check's): the life may end in the middle of it.
    may_crash: bool,
    pub stats: Stats,
}

fn eio() -> IoError {
    IoError::from(std::io::Error::from_raw_os_error(5))
}

fn enospc() -> IoError {
    IoError::from(std::io::Error::from_raw_os_error(28))
}

/// A command in a line, without its bytes.
fn describe(cmd: &Command) -> String {
    match cmd {
        Command::Append { seg, parts, .. } => format!(
            "Append {seg:?} ({} bytes)",
            parts.iter().map(Bytes::len).sum::<usize>()
        ),
        // Checkpoints are short text worth reading in a trace.
        Command::WriteFile { path, bytes, .. } if path.ends_with("checkpoint") => {
            format!("WriteFile {path} {:?}", String::from_utf8_lossy(bytes))
        }
        Command::WriteFile { path, .. } => format!("WriteFile {path}"),
        Command::Send { conn, parts, .. } => format!("Send {conn:?} {parts:?}"),
        other => {
            let s = format!("{other:?}");
            s.chars().take(120).collect()
        }
    }
}

impl World {
    pub fn new(seed: u64, opts: Options) -> Result<Self, String> {
        let mut rng = Rng::new(seed);
        let sched_rng = rng.fork();
        let fault_rng = rng.fork();
        let mut topics = vec![
            TopicSpec {
                name: "plain".into(),
                partitions: rng.range(1, 3) as i32,
                durable: false,
                compact: None,
            },
            TopicSpec {
                name: "durable".into(),
                partitions: rng.range(1, 2) as i32,
                durable: true,
                compact: None,
            },
        ];
        let mut config = Config::default();
        let inflight = rng.range(1, 8).to_string();
        config
            .set("queued.max.requests", &inflight)
            .map_err(|e| e.to_string())?;
        if opts.compacted {
            topics.push(TopicSpec {
                name: "table".into(),
                partitions: rng.range(1, 2) as i32,
                durable: rng.chance(1, 2),
                compact: Some(Compact {
                    keys: rng.range(2, 24) as u32,
                    tombstone_one_in: rng.range(4, 12),
                    // Tombstones that go within a seed's time, or stay.
                    delete_retention_ms: if rng.chance(1, 2) {
                        rng.range(0, 40) as i64
                    } else {
                        3_600_000
                    },
                }),
            });
            // A cleaner that looks for work every few simulated ms, where
            // a seed's clock moves some tens of ms (and a minute now and
            // then).
            let backoff = rng.range(1, 15).to_string();
            config
                .set("log.cleaner.backoff.ms", &backoff)
                .map_err(|e| e.to_string())?;
        }
        let mut disk = SimDisk::default();
        disk.lose_syncs(opts.planted == Planted::LostSyncs);
        disk.volatile_swaps(opts.planted == Planted::VolatileSwaps);
        disk.lose_cleaned_syncs(opts.planted == Planted::LostCleanedSyncs);
        let now = Now::new(Instant::from_nanos(1), START_MS);
        let broker = Broker::new(config.clone(), now, disk.disk_state());
        let fault_rate = rng.chance(1, 2).then(|| rng.range(20, 200));
        let pipeline = rng.range(1, 6) as usize;
        let mut world = Self {
            rng,
            sched_rng,
            fault_rng,
            job_rng: Rng::new(seed ^ 0x6a09_e667_f3bc_c908),
            opts,
            config,
            broker,
            disk,
            sched: Sched::new(opts.no_holes, opts.planted == Planted::SwappedAppends),
            now,
            deadline: None,
            clients: BTreeMap::new(),
            raw: Vec::new(),
            next_conn: 1,
            next_corr: 1,
            pipeline,
            model: Model::new(topics, START_MS),
            event: 0,
            fault_rate,
            inject: false,
            shutting_down: false,
            trace: std::env::var_os("CONVEYOR_SIM_TRACE").is_some(),
            failed_cleaned: Default::default(),
            may_crash: false,
            stats: Stats::default(),
        };
        world.drain()?;
        world.create_topics()?;
        world.inject = true;
        Ok(world)
    }

    /// What the run did so far.
    pub fn stats(&self) -> Stats {
        Stats {
            seeds: 1,
            compacted_away: self.model.compacted_away,
            ..self.stats.clone()
        }
    }

    /// One random event.
    pub fn step(&mut self) -> Check {
        let busy = !self.sched.is_empty();
        let queued = self.clients.values().any(|c| !c.closed && !c.tx.is_empty());
        // Where clean shutdowns with a partition offline are wanted, make
        // them likely once one is.
        let offline = self
            .model
            .pks()
            .into_iter()
            .any(|pk| self.model.is_failed(pk));
        let clean = if offline && self.opts.clean_shutdown_when_offline {
            40
        } else {
            1
        };
        let weights = [
            if busy { 600 } else { 0 },  // a command completes
            140,                         // a client sends a request
            if queued { 80 } else { 0 }, // bytes cross the network
            80,                          // time passes
            15,                          // a client connects
            8,                           // a client disconnects
            8,                           // a client dies mid-request
            5,                           // a spurious timeout
            3,                           // a minute passes (checkpoints)
            2,                           // power loss
            2,                           // the process is killed
            clean,                       // clean shutdown and restart
        ];
        match self.rng.weighted(&weights) {
            0 => {
                self.may_crash = true;
                let r = self.exec_one();
                self.may_crash = false;
                r?;
            }
            1 => self.send_request()?,
            2 => {
                let conns: Vec<ConnId> = self
                    .clients
                    .iter()
                    .filter(|(_, c)| !c.closed && !c.tx.is_empty())
                    .map(|(&id, _)| id)
                    .collect();
                let conn = conns[self.rng.index(conns.len())];
                let all = self.rng.chance(1, 2);
                self.deliver(conn, all)?;
            }
            3 => {
                let ms = self.rng.below(6);
                self.advance(Duration::from_millis(ms))?;
            }
            4 => {
                self.open()?;
            }
            5 => {
                if let Some(conn) = self.some_client() {
                    self.disconnect(conn)?;
                }
            }
            6 => self.die_mid_request()?,
            7 => self.input(|b, now| b.handle_timeout(now))?,
            8 => self.advance(Duration::from_secs(61))?,
            9 => self.end_life(End::PowerLoss)?,
            10 => self.end_life(End::Kill)?,
            _ if offline && !self.opts.clean_shutdown_when_offline => self.end_life(End::Kill)?,
            _ => self.clean_restart()?,
        }
        self.pump()
    }

    /// The end of a seed: every request answered, then a power loss and
    /// its checks.
    pub fn finish(&mut self) -> Check {
        for _ in 0..200 {
            let conns: Vec<ConnId> = self.clients.keys().copied().collect();
            for conn in conns {
                self.deliver(conn, true)?;
            }
            self.settle()?;
            let waiting = self.clients.values().any(|c| {
                !c.closed && (!c.outstanding.is_empty() || !c.tx.is_empty() || !c.rx.is_empty())
            });
            if !waiting {
                return self.end_life(End::PowerLoss);
            }
            let to = self
                .deadline
                .map_or(self.now.mono, |d| d.max(self.now.mono));
            let wait = to
                .saturating_since(self.now.mono)
                .max(Duration::from_millis(1));
            self.advance(wait)?;
        }
        let stuck: Vec<String> = self
            .clients
            .iter()
            .filter(|(_, c)| !c.closed)
            .flat_map(|(id, c)| {
                c.outstanding
                    .iter()
                    .map(move |r| format!("{id:?} {:?} corr {}", r.key, r.corr))
            })
            .collect();
        Err(format!("requests never answered: {}", stuck.join(", ")))
    }

    // ---- the broker's inputs and outputs -----------------------------

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!(
                "[{} {}ms] {}",
                self.event,
                self.now.wall_ms - START_MS,
                what()
            );
        }
    }

    /// Give the broker one input, then take every command it issues.
    fn input(&mut self, f: impl FnOnce(&mut Broker, Now)) -> Check {
        self.event += 1;
        f(&mut self.broker, self.now);
        self.drain()
    }

    fn drain(&mut self) -> Check {
        for _ in 0..MAX_POLLS {
            match self.broker.poll() {
                Poll::Wait(deadline) => {
                    self.deadline = deadline;
                    return Ok(());
                }
                Poll::ReadInterest { conn, read } => {
                    self.log(|| format!("  read interest {conn:?} {read}"));
                    if let Some(c) = self.clients.get_mut(&conn) {
                        c.paused = !read;
                    }
                }
                Poll::Command(cmd) => {
                    self.log(|| format!("  issued {}", describe(&cmd)));
                    self.sched.push(cmd)?
                }
            }
        }
        Err("the broker never stopped issuing commands".into())
    }

    /// Carry out one command the contract lets complete now.
    fn exec_one(&mut self) -> Result<bool, String> {
        let Some(cmd) = self.sched.next(&mut self.sched_rng) else {
            return Ok(false);
        };
        self.stats.commands += 1;
        self.log(|| format!("run {}", describe(&cmd)));
        match cmd {
            Command::Send { io, conn, parts } => {
                let done = self.send(io, conn, &parts)?;
                self.input(|b, now| b.handle_done(now, done))?;
                if let Some(c) = self.clients.get_mut(&conn) {
                    if !self.raw.contains(&conn) {
                        c.read_answers(&mut self.model)?;
                    }
                }
            }
            // A single broker with no peers configured has no one to call.
            Command::Connect { conn, addr, .. } => {
                return Err(format!("a single broker connected out: {conn:?} to {addr}"));
            }
            Command::Close { io, conn } => {
                let open = self.clients.get(&conn).is_some_and(|c| !c.closed);
                if open && !self.shutting_down {
                    return Err(format!("the broker closed {conn:?} unprovoked"));
                }
                self.input(|b, now| b.handle_done(now, Done::ok(io)))?;
                if open {
                    if let Some(c) = self.clients.get_mut(&conn) {
                        c.closed = true;
                    }
                    self.input(|b, now| b.handle_close(now, conn))?;
                }
            }
            // A worker that cannot run the job (gone, out of memory): the
            // pass is abandoned, nothing else changes.
            Command::Compute { io, .. }
                if self.inject && self.fault_rate.is_some() && self.job_rng.chance(1, 40) =>
            {
                self.stats.cleaner_jobs += 1;
                self.stats.job_faults += 1;
                self.log(|| "  the job fails".into());
                let done = Done {
                    io,
                    result: Err(eio()),
                };
                self.input(|b, now| b.handle_done(now, done))?;
            }
            cmd => self.file(&cmd)?,
        }
        Ok(true)
    }

    /// A `Send`: the bytes, file regions read from the disk, go to the
    /// client, or fail if it has gone.
    fn send(&mut self, io: IoId, conn: ConnId, parts: &[Part]) -> Result<Done, String> {
        let mut bytes = Vec::new();
        for part in parts {
            match part {
                Part::Bytes(b) => bytes.extend_from_slice(b),
                Part::File { seg, pos, len } => {
                    // The disk knows a cleaned segment's file by its
                    // `.cleaned` name until the swap.
                    let path = self
                        .disk
                        .log_path(*seg)
                        .or_else(|| self.sched.log_path(*seg))
                        .ok_or_else(|| format!("Send names {seg:?}, never opened"))?;
                    let file = self.disk.file(&path).unwrap_or_default();
                    let range = usize::try_from(*pos)
                        .ok()
                        .zip(usize::try_from(pos + len).ok())
                        .filter(|&(_, end)| end <= file.len())
                        .ok_or_else(|| {
                            format!(
                                "Send of {path} @{pos} +{len}: the file holds {} bytes",
                                file.len()
                            )
                        })?;
                    bytes.extend_from_slice(&file[range.0..range.1]);
                }
            }
        }
        match self.clients.get_mut(&conn) {
            Some(c) if !c.closed => {
                c.wire.extend_from_slice(&bytes);
                Ok(Done::ok(io))
            }
            _ => Ok(Done {
                io,
                result: Err(IoError::from(std::io::Error::from(
                    std::io::ErrorKind::BrokenPipe,
                ))),
            }),
        }
    }

    /// A file command on the disk, failing now and then with an EIO or
    /// ENOSPC when faults are on.
    fn file(&mut self, cmd: &Command) -> Check {
        let seg = match cmd {
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
        };
        let pk = seg
            .and_then(|s| self.sched.dir_of(s))
            .and_then(|d| self.model.pk_of_dir(d));
        // The commands whose failure takes a partition offline (a failed
        // Read only fails its ListOffsets; snapshot and checkpoint writes
        // only slow the next start), and the cleaner's: a failed write of
        // a cleaned segment abandons only the pass, a failed swap takes
        // the partition offline.
        let injectable = matches!(
            cmd,
            Command::OpenSegment { .. }
                | Command::Append { .. }
                | Command::WriteIndex { .. }
                | Command::Sync { .. }
                | Command::MapSegment { .. }
                | Command::Truncate { .. }
                | Command::CreateCleaned { .. }
                | Command::SwapCleaned { .. }
        );
        if matches!(cmd, Command::SwapCleaned { .. })
            && std::mem::take(&mut self.may_crash)
            && self.inject
            && self.fault_rng.chance(1, 6)
        {
            // The power goes, or the process dies, in the middle of the
            // swap: after its commit point (the log rename), before the
            // rest. The next start finishes it.
            self.log(|| "  the life ends in the middle of the swap".into());
            self.stats.mid_swap_crashes += 1;
            self.disk.break_next_swap();
            let _ = self.disk.execute(cmd);
            let end = if self.fault_rng.chance(1, 2) {
                End::PowerLoss
            } else {
                End::Kill
            };
            return self.end_life(end);
        }
        let cleaner_write = self.sched.is_cleaner_write(cmd);
        let after_cleaner_failure = seg.is_some_and(|s| self.failed_cleaned.contains(&s));
        // Swaps are few (some a seed): fail them more often, so both ways a
        // cleaner command fails are seen many times over the seeds.
        let rate = |n: u64| match cmd {
            Command::SwapCleaned { .. } => n.min(8),
            _ if cleaner_write => n.min(30),
            _ => n,
        };
        let injected = self.inject
            && injectable
            && pk.is_some()
            && self
                .fault_rate
                .is_some_and(|n| self.fault_rng.chance(1, rate(n)));
        let dead = self.opts.no_holes
            && self.inject
            && seg.is_some()
            && pk.is_some_and(|pk| self.model.is_failed(pk));
        if self.opts.no_holes {
            self.durable_prefix(cmd);
        }
        if injected {
            let error = if self.fault_rng.chance(1, 2) {
                eio()
            } else {
                enospc()
            };
            self.disk.fail_after_with(0, error);
        } else if dead {
            self.disk.fail_after_with(0, eio());
        }
        let done = self.disk.execute(cmd);
        let failed = done.result.as_ref().err().cloned();
        if let Some(e) = &failed {
            self.log(|| format!("  failed: {e} (injected: {injected})"));
        }
        self.count_cleaner(cmd, failed.is_none());
        self.input(|b, now| b.handle_done(now, done))?;
        match (failed, pk) {
            (Some(_), Some(_)) if injected && cleaner_write => {
                self.stats.faults += 1;
                self.stats.cleaner_write_faults += 1;
                self.failed_cleaned.extend(seg);
            }
            (Some(_), Some(pk)) if injected => {
                self.stats.faults += 1;
                if matches!(cmd, Command::SwapCleaned { .. }) {
                    self.stats.swap_faults += 1;
                }
                self.model.storage_failed(pk, self.event);
            }
            // Once a cleaned segment's creation or a write failed, its
            // later commands may fail too (its files are not there).
            (Some(_), Some(_)) if after_cleaner_failure => {}
            // A later command of a partition already failed may fail in
            // turn (an append to a segment whose creation failed).
            (Some(_), Some(pk)) if self.model.is_failed(pk) => {}
            (Some(e), _) => {
                return Err(format!(
                    "{} failed though nothing was injected: {e}",
                    describe(cmd)
                ));
            }
            (None, _) => {}
        }
        Ok(())
    }

    /// Count what the cleaner did.
    fn count_cleaner(&mut self, cmd: &Command, ok: bool) {
        match cmd {
            Command::CreateCleaned { .. } if ok => self.stats.cleaned_segments += 1,
            Command::SwapCleaned { replaces, .. } if ok => {
                self.stats.swaps += 1;
                if replaces.len() > 1 {
                    self.stats.merging_swaps += 1;
                }
            }
            Command::Compute { job, .. } => {
                self.stats.cleaner_jobs += 1;
                // Jobs are opaque but say what they are: a pass maps the
                // dirty part's keys from the start first.
                let what = format!("{job:?}");
                if what.starts_with("MapKeys") && what.ends_with("from (0, 0))") {
                    self.stats.cleaner_passes += 1;
                }
            }
            _ => {}
        }
    }

    /// Before a segment's bytes or its new file become durable, make every
    /// earlier segment of its partition durable: a disk whose durable state
    /// is always a prefix of the partition's writes, as with one writer
    /// that syncs the old segment before it starts the next.
    fn durable_prefix(&mut self, cmd: &Command) {
        let seg = match cmd {
            Command::Sync { seg, .. }
            | Command::OpenSegment {
                seg, create: true, ..
            } => *seg,
            _ => return,
        };
        let (Some(dir), Some(path)) = (self.sched.dir_of(seg), self.sched.log_path(seg)) else {
            return;
        };
        let base = path
            .rsplit_once('/')
            .and_then(|(_, f)| f.strip_suffix(".log"))
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        for earlier in self.sched.segments_below(dir, base) {
            // Not the broker's command: its answer is nobody's, and a
            // segment already removed has nothing left to sync.
            let _ = self.disk.execute(&Command::Sync {
                io: IoId(u64::MAX),
                seg: earlier,
            });
        }
    }

    /// Execute commands until none is left.
    fn settle(&mut self) -> Check {
        for _ in 0..MAX_SETTLE {
            self.pump()?;
            if !self.exec_one()? {
                return Ok(());
            }
        }
        Err("the broker never went idle".into())
    }

    fn advance(&mut self, d: Duration) -> Check {
        self.now = self.now.advance(d);
        self.model.now_ms = self.now.wall_ms;
        if self.deadline.is_some_and(|t| t <= self.now.mono) {
            self.input(|b, now| b.handle_timeout(now))?;
        }
        Ok(())
    }

    // ---- clients ---------------------------------------------------------

    fn open(&mut self) -> Result<ConnId, String> {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.clients.insert(conn, Client::default());
        self.input(|b, now| b.handle_open(now, conn))?;
        Ok(conn)
    }

    fn some_client(&mut self) -> Option<ConnId> {
        let open: Vec<ConnId> = self
            .clients
            .iter()
            .filter(|(id, c)| !c.closed && !self.raw.contains(id))
            .map(|(&id, _)| id)
            .collect();
        (!open.is_empty()).then(|| open[self.rng.index(open.len())])
    }

    fn send_request(&mut self) -> Check {
        let free: Vec<ConnId> = self
            .clients
            .iter()
            .filter(|(id, c)| {
                !c.closed && !self.raw.contains(id) && c.outstanding.len() < self.pipeline
            })
            .map(|(&id, _)| id)
            .collect();
        let conn = if free.is_empty() || (free.len() < 4 && self.rng.chance(1, 8)) {
            self.open()?
        } else {
            free[self.rng.index(free.len())]
        };
        let corr = self.next_corr;
        self.next_corr += 1;
        let (bytes, req) =
            client::random_request(&mut self.rng, &mut self.model, corr, self.now.wall_ms);
        self.stats.requests += 1;
        self.log(|| format!("{conn:?} sends corr {corr}: {:?}", req.kind));
        if let Some(c) = self.clients.get_mut(&conn) {
            c.write(&bytes, Some(req));
        }
        match self.rng.below(4) {
            0 => Ok(()), // still on the network
            1 => self.deliver(conn, false),
            _ => self.deliver(conn, true),
        }
    }

    /// Bytes the client sent reach the driver, which hands them to the
    /// broker: all of them, or a random prefix (a frame split across reads).
    /// A driver reads only while the broker wants to (`Poll::ReadInterest`).
    fn deliver(&mut self, conn: ConnId, all: bool) -> Check {
        let Some(c) = self.clients.get_mut(&conn) else {
            return Ok(());
        };
        if c.closed || c.paused || c.tx.is_empty() {
            return Ok(());
        }
        let n = if all {
            c.tx.len()
        } else {
            self.rng.range(1, c.tx.len() as u64) as usize
        };
        let chunk = c.tx.split_to(n);
        c.rx.extend_from_slice(&chunk);
        self.read_into_broker(conn)
    }

    fn read_into_broker(&mut self, conn: ConnId) -> Check {
        self.event += 1;
        let Some(c) = self.clients.get_mut(&conn) else {
            return Ok(());
        };
        let before = c.rx.len();
        self.broker.handle_read(self.now, conn, &mut c.rx);
        let taken = before - c.rx.len();
        c.taken += taken as u64;
        self.log(|| format!("{conn:?} broker took {taken} of {before} bytes"));
        let Some(c) = self.clients.get_mut(&conn) else {
            return Ok(());
        };
        let mut records = Vec::new();
        c.mark_handled(&self.model, self.event, &mut records);
        for (pk, n) in records {
            self.model.produce_handled(pk, &n);
        }
        self.drain()
    }

    /// Hand the broker whole frames it left in the driver's buffer once it
    /// wants them again (read interest came back).
    fn pump(&mut self) -> Check {
        loop {
            let ready: Vec<ConnId> = self
                .clients
                .iter()
                .filter(|(_, c)| !c.closed && !c.paused && wire::has_whole_frame(&c.rx))
                .map(|(&id, _)| id)
                .collect();
            if ready.is_empty() {
                return Ok(());
            }
            for conn in ready {
                self.read_into_broker(conn)?;
            }
        }
    }

    fn disconnect(&mut self, conn: ConnId) -> Check {
        self.log(|| format!("{conn:?} disconnects"));
        if let Some(c) = self.clients.get_mut(&conn) {
            c.closed = true;
        }
        self.input(|b, now| b.handle_close(now, conn))
    }

    /// Send the first bytes of a request, then vanish.
    fn die_mid_request(&mut self) -> Check {
        let conn = match self.some_client() {
            Some(c) if self.rng.chance(1, 2) => c,
            _ => self.open()?,
        };
        let corr = self.next_corr;
        self.next_corr += 1;
        let (bytes, _) =
            client::random_request(&mut self.rng, &mut self.model, corr, self.now.wall_ms);
        let cut = self.rng.range(1, bytes.len() as u64 - 1) as usize;
        if let Some(c) = self.clients.get_mut(&conn) {
            c.write(&bytes[..cut], None);
        }
        self.deliver(conn, true)?;
        self.disconnect(conn)
    }
}
