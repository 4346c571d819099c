//! A simulated disk for tests and simulations: executes the core's file
//! commands on in-memory files that remember how much of them is synced, so
//! a crash (every file cut to its synced length) can be replayed.
//!
//! Simplifications, on purpose: creating or removing a file or directory is
//! durable at once (a real driver syncs the directory); only file contents
//! can be lost. Commands run the moment they are executed, so a test decides
//! the order of completions by when it executes them.
//!
//! Faults, for tests that must see the core cope with a bad disk: a chosen
//! file command fails with a given error ([`SimDisk::fail_after_with`]), and
//! a disk can lie about `Sync` ([`SimDisk::lose_syncs`], or only a cleaned
//! segment's: [`SimDisk::lose_cleaned_syncs`]) or about a cleaned segment's
//! swap ([`SimDisk::volatile_swaps`]) or a whole-file write
//! ([`SimDisk::volatile_writes`]), which a simulation must notice as
//! lost acknowledged data.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::ErrorKind;
use std::sync::Arc;

use bytes::Bytes;

use crate::layout::{self, INDEX, LOG, SEGMENT_FILES as EXTS, SNAPSHOT, TIME_INDEX};

use crate::io::{
    Command, Completion, DiskPartition, DiskSegment, DiskState, Done, IoError, SegId, SegmentViews,
    View,
};

/// One in-memory file.
#[derive(Debug, Default, Clone)]
struct SimFile {
    data: Vec<u8>,
    /// Bytes that survive a crash.
    synced: usize,
}

/// In-memory files keyed by path relative to the data directory.
#[derive(Debug, Default)]
pub struct SimDisk {
    files: BTreeMap<String, SimFile>,
    dirs: BTreeSet<String>,
    /// Open segments: their directory and base offset.
    segments: HashMap<SegId, (String, u64)>,
    /// Open segments still under the cleaner's `.cleaned` names.
    cleaned: HashSet<SegId>,
    /// Fail the next `SwapCleaned` right after its log rename, as a crash
    /// at that moment would leave it (fault injection).
    break_next_swap: bool,
    /// File commands still to succeed before one fails, and the error it
    /// fails with (fault injection).
    fail_countdown: Option<(u64, IoError)>,
    /// Answer `Sync` without making anything durable (a planted bug).
    lose_syncs: bool,
    /// The same, only for segments still under the cleaner's names.
    lose_cleaned_syncs: bool,
    /// Let a crash undo the renames of `SwapCleaned` but not its deletions
    /// (a planted bug); the renames done since the last crash, in order:
    /// final path, the `.cleaned` path it came from, the file it replaced.
    volatile_swaps: Option<Vec<(String, String, Option<SimFile>)>>,
    /// Let a crash undo every `WriteFile` since the last one (a planted
    /// bug: a driver that answers before the rename is synced); the files
    /// they replaced, oldest first.
    volatile_writes: Option<Vec<(String, Option<SimFile>)>>,
    /// File commands executed so far.
    executed: u64,
    /// `Compute` jobs run so far.
    jobs_run: u64,
}

fn err(kind: ErrorKind, message: impl Into<String>) -> IoError {
    IoError {
        kind,
        message: message.into(),
    }
}

impl SimDisk {
    /// Execute one command. File commands change the files; `Send` and
    /// `Close` are answered `Ok` untouched (the caller handles sockets).
    pub fn execute(&mut self, cmd: &Command) -> Done {
        let io = cmd.io();
        if matches!(cmd, Command::Send { .. } | Command::Close { .. }) {
            return Done::ok(io);
        }
        if let Command::Compute { job, .. } = cmd {
            // CPU work, not a file command: run at once, never failed.
            self.jobs_run += 1;
            return Done {
                io,
                result: Ok(Completion::Computed(job.clone().run())),
            };
        }
        self.executed += 1;
        if let Some((n, error)) = self.fail_countdown.take() {
            if n == 0 {
                return Done {
                    io,
                    result: Err(error),
                };
            }
            self.fail_countdown = Some((n - 1, error));
        }
        Done {
            io,
            result: self.run(cmd),
        }
    }

    /// Make the file command after the next `n` fail (`fail_after(0)`: the
    /// very next one) with an injected error, without changing any file.
    /// `Send` and `Close` do not count.
    pub fn fail_after(&mut self, n: u64) {
        self.fail_after_with(n, err(ErrorKind::Other, "injected failure"));
    }

    /// [`SimDisk::fail_after`] with the error to fail with: an `EIO` or an
    /// `ENOSPC` as a real driver would report it, say.
    pub fn fail_after_with(&mut self, n: u64, error: IoError) {
        self.fail_countdown = Some((n, error));
    }

    /// From now on (while `lose` holds), answer every `Sync` with success
    /// without making anything durable: a disk whose write cache lies. A
    /// planted bug, so a simulation can prove it notices acknowledged data
    /// lost in a crash.
    pub fn lose_syncs(&mut self, lose: bool) {
        self.lose_syncs = lose;
    }

    /// [`SimDisk::lose_syncs`] for cleaned segments only (before their
    /// swap): a swap then commits a segment a crash empties. A planted bug,
    /// as for `lose_syncs`.
    pub fn lose_cleaned_syncs(&mut self, lose: bool) {
        self.lose_cleaned_syncs = lose;
    }

    /// From now on (while `volatile` holds), make a `SwapCleaned`'s
    /// deletion of the segments it replaces durable at once, but let a
    /// crash undo its renames: the replaced first segment comes back, the
    /// cleaned one goes back to its `.cleaned` name (which startup then
    /// deletes), and the other replaced segments' records are gone. A
    /// planted bug (a driver that deletes before the rename is synced), so
    /// a simulation can prove it notices.
    pub fn volatile_swaps(&mut self, volatile: bool) {
        self.volatile_swaps = volatile.then(Vec::new);
    }

    /// Answer `WriteFile` at once but let a crash undo it: the file it
    /// replaced comes back. A planted bug, so a simulation can prove it
    /// notices state lost that the broker relied on (a vote, a log).
    pub fn volatile_writes(&mut self, volatile: bool) {
        self.volatile_writes = volatile.then(Vec::new);
    }

    /// `Compute` jobs run so far.
    pub fn jobs_run(&self) -> u64 {
        self.jobs_run
    }

    /// File commands executed so far (to pick a point for [`SimDisk::fail_after`]).
    pub fn executed(&self) -> u64 {
        self.executed
    }

    fn run(&mut self, cmd: &Command) -> Result<Completion, IoError> {
        match cmd {
            Command::OpenSegment {
                seg,
                dir,
                base_offset,
                create,
                ..
            } => {
                let paths = EXTS.map(|e| layout::offset_file_path(dir, *base_offset, e));
                if *create {
                    self.dirs.insert(dir.clone());
                } else if !self.files.contains_key(&paths[0]) {
                    return Err(err(ErrorKind::NotFound, format!("{} not found", paths[0])));
                }
                for p in paths {
                    self.files.entry(p).or_default();
                }
                self.segments.insert(*seg, (dir.clone(), *base_offset));
            }
            Command::Append { seg, parts, .. } => {
                let f = self.seg_file(*seg, LOG)?;
                for p in parts {
                    f.data.extend_from_slice(p);
                }
            }
            Command::WriteIndex {
                seg,
                offset_index,
                time_index,
                ..
            } => {
                self.seg_file(*seg, INDEX)?
                    .data
                    .extend_from_slice(offset_index);
                self.seg_file(*seg, TIME_INDEX)?
                    .data
                    .extend_from_slice(time_index);
            }
            Command::Truncate {
                seg,
                log_len,
                index_len,
                timeindex_len,
                ..
            } => {
                for (ext, len) in EXTS.into_iter().zip([log_len, index_len, timeindex_len]) {
                    let f = self.seg_file(*seg, ext)?;
                    let len = usize::try_from(*len)
                        .unwrap_or(usize::MAX)
                        .min(f.data.len());
                    f.data.truncate(len);
                    f.synced = len;
                }
            }
            Command::Sync { seg, .. } => {
                let lose =
                    self.lose_syncs || (self.lose_cleaned_syncs && self.cleaned.contains(seg));
                for ext in EXTS {
                    let f = self.seg_file(*seg, ext)?;
                    if !lose {
                        f.synced = f.data.len();
                    }
                }
            }
            Command::MapSegment { seg, .. } => {
                let mut view = |ext| -> Result<View, IoError> {
                    Ok(Arc::new(self.seg_file(*seg, ext)?.data.clone()))
                };
                let views = SegmentViews {
                    log: view(LOG)?,
                    index: view(INDEX)?,
                    timeindex: view(TIME_INDEX)?,
                };
                return Ok(Completion::Mapped(views));
            }
            Command::Read { seg, pos, len, .. } => {
                let data = &self.seg_file(*seg, LOG)?.data;
                let range = usize::try_from(*pos)
                    .ok()
                    .zip(usize::try_from(pos.saturating_add(*len)).ok())
                    .filter(|&(_, end)| end <= data.len())
                    .ok_or_else(|| err(ErrorKind::UnexpectedEof, "read past the end"))?;
                return Ok(Completion::Read(bytes::Bytes::copy_from_slice(
                    &data[range.0..range.1],
                )));
            }
            Command::RemoveSegment { seg, .. } => {
                let paths = EXTS.map(|ext| self.seg_path(*seg, ext));
                for p in paths {
                    self.files.remove(&p?);
                }
                self.segments.remove(seg);
                self.cleaned.remove(seg);
            }
            Command::CreateCleaned {
                seg,
                dir,
                base_offset,
                ..
            } => {
                self.dirs.insert(dir.clone());
                for ext in EXTS {
                    let path = layout::cleaned_file_path(dir, *base_offset, ext);
                    self.files.insert(path, SimFile::default());
                }
                self.segments.insert(*seg, (dir.clone(), *base_offset));
                self.cleaned.insert(*seg);
            }
            Command::SwapCleaned { seg, replaces, .. } => {
                if !self.cleaned.contains(seg) {
                    return Err(err(ErrorKind::NotFound, format!("{seg:?} is not cleaned")));
                }
                let (dir, base) = self.segments[seg].clone();
                let others: Vec<(SegId, u64)> = replaces
                    .iter()
                    .filter_map(|r| Some((*r, self.segments.get(r)?.1)))
                    .filter(|(_, b)| *b != base)
                    .collect();
                let manifest = layout::offset_file_path(&dir, base, layout::SWAP);
                if !others.is_empty() {
                    let bases: Vec<u64> = others.iter().map(|(_, b)| *b).collect();
                    let data = layout::encode_swap_manifest(&bases).into_bytes();
                    let synced = data.len();
                    self.files
                        .insert(manifest.clone(), SimFile { data, synced });
                }
                for ext in EXTS {
                    let from = layout::cleaned_file_path(&dir, base, ext);
                    let f = self
                        .files
                        .remove(&from)
                        .ok_or_else(|| err(ErrorKind::NotFound, format!("{from} not found")))?;
                    let to = layout::offset_file_path(&dir, base, ext);
                    let replaced = self.files.insert(to.clone(), f);
                    if let Some(undo) = self.volatile_swaps.as_mut() {
                        undo.push((to, from, replaced));
                    }
                    if ext == LOG && std::mem::take(&mut self.break_next_swap) {
                        return Err(err(ErrorKind::Other, "stopped after the log rename"));
                    }
                }
                for (_, b) in &others {
                    for ext in EXTS {
                        self.files.remove(&layout::offset_file_path(&dir, *b, ext));
                    }
                }
                self.files.remove(&manifest);
                self.cleaned.remove(seg);
                for r in replaces {
                    self.segments.remove(r);
                }
            }
            Command::WriteFile { path, bytes, .. } => {
                if let Some((dir, _)) = path.rsplit_once('/') {
                    self.dirs.insert(dir.to_owned());
                }
                let data = bytes.to_vec();
                let synced = data.len();
                let old = self.files.insert(path.clone(), SimFile { data, synced });
                if let Some(undo) = self.volatile_writes.as_mut() {
                    undo.push((path.clone(), old));
                }
            }
            Command::RemoveFile { path, .. } => {
                self.files.remove(path);
            }
            Command::RemoveDir { dir, .. } => {
                let prefix = format!("{dir}/");
                self.files.retain(|p, _| !p.starts_with(&prefix));
                self.dirs.remove(dir);
                self.segments.retain(|_, (d, _)| d != dir);
            }
            Command::Send { .. } | Command::Close { .. } | Command::Compute { .. } => {}
            Command::Connect { addr, .. } => {
                // The network is the harness's (core/tests/peers_sim.rs).
                let message = format!("a simulated disk connects nowhere ({addr})");
                return Err(err(ErrorKind::ConnectionRefused, message));
            }
        }
        Ok(Completion::Unit)
    }

    fn seg_path(&self, seg: SegId, ext: &str) -> Result<String, IoError> {
        let (dir, base) = self
            .segments
            .get(&seg)
            .ok_or_else(|| err(ErrorKind::NotFound, format!("{seg:?} not open")))?;
        Ok(if self.cleaned.contains(&seg) {
            layout::cleaned_file_path(dir, *base, ext)
        } else {
            layout::offset_file_path(dir, *base, ext)
        })
    }

    fn seg_file(&mut self, seg: SegId, ext: &str) -> Result<&mut SimFile, IoError> {
        let path = self.seg_path(seg, ext)?;
        self.files
            .get_mut(&path)
            .ok_or_else(|| err(ErrorKind::NotFound, format!("{path} not found")))
    }

    /// The path of an open segment's log file, under the cleaner's name
    /// until its swap.
    pub fn log_path(&self, seg: SegId) -> Option<String> {
        self.seg_path(seg, LOG).ok()
    }

    /// Make the next `SwapCleaned` stop, failed, right after it renamed the
    /// log (a crash at the swap's commit point, once followed by
    /// [`SimDisk::crash`]).
    pub fn break_next_swap(&mut self) {
        self.break_next_swap = true;
    }

    /// Lose everything not synced: each file is cut to its synced length.
    /// Open segments are forgotten, as a restarted process would.
    pub fn crash(&mut self) {
        if let Some(undo) = self.volatile_swaps.as_mut() {
            for (to, from, replaced) in std::mem::take(undo).into_iter().rev() {
                if let Some(f) = self.files.remove(&to) {
                    self.files.insert(from, f);
                }
                if let Some(f) = replaced {
                    self.files.insert(to, f);
                }
            }
        }
        if let Some(undo) = self.volatile_writes.as_mut() {
            for (path, old) in std::mem::take(undo).into_iter().rev() {
                match old {
                    Some(f) => self.files.insert(path, f),
                    None => self.files.remove(&path),
                };
            }
        }
        for f in self.files.values_mut() {
            f.data.truncate(f.synced);
        }
        self.restart();
    }

    /// Forget open segments, as a restarted process would, and keep every
    /// byte: a clean restart, or a process killed while the machine (and
    /// its page cache) stays up.
    pub fn restart(&mut self) {
        self.segments.clear();
        self.cleaned.clear();
        // What a driver does first at startup: finish or undo swaps.
        let dirs: Vec<String> = self.dirs.iter().cloned().collect();
        for dir in dirs {
            let prefix = format!("{dir}/");
            let names: Vec<String> = self
                .files
                .keys()
                .filter_map(|p| p.strip_prefix(&prefix).map(str::to_owned))
                .collect();
            let manifest = |o: u64| {
                self.file(&layout::offset_file_path(&dir, o, layout::SWAP))
                    .map(<[u8]>::to_vec)
            };
            let ops = layout::finish_swaps(names.iter().map(String::as_str), manifest);
            for op in ops {
                match op {
                    layout::FileOp::Remove(name) => {
                        self.files.remove(&format!("{prefix}{name}"));
                    }
                    layout::FileOp::Rename(from, to) => {
                        if let Some(f) = self.files.remove(&format!("{prefix}{from}")) {
                            self.files.insert(format!("{prefix}{to}"), f);
                        }
                    }
                }
            }
        }
    }

    /// What a driver would read off this disk at startup.
    pub fn disk_state(&self) -> DiskState {
        let root_files = crate::ROOT_FILES
            .iter()
            .filter_map(|name| {
                let f = self.files.get(*name)?;
                Some(((*name).to_owned(), Bytes::copy_from_slice(&f.data)))
            })
            .collect();
        let mut dirs = self.dirs.clone();
        dirs.extend(
            self.files
                .keys()
                .filter_map(|p| p.split_once('/').map(|(d, _)| d.to_owned())),
        );
        let partitions = dirs
            .into_iter()
            .map(|dir| {
                let view = |base: u64, ext: &str| -> View {
                    let data = self
                        .file(&layout::offset_file_path(&dir, base, ext))
                        .unwrap_or_default();
                    Arc::new(data.to_vec())
                };
                let prefix = format!("{dir}/");
                let segments = self
                    .files
                    .range(prefix.clone()..)
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .filter_map(|(p, _)| {
                        layout::parse_offset_file_name(p.strip_prefix(&prefix)?, LOG)
                    })
                    .map(|base| DiskSegment {
                        base_offset: base,
                        views: SegmentViews {
                            log: view(base, LOG),
                            index: view(base, INDEX),
                            timeindex: view(base, TIME_INDEX),
                        },
                    })
                    .collect();
                let snapshots = self
                    .files
                    .range(prefix.clone()..)
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .filter_map(|(p, f)| {
                        let offset =
                            layout::parse_offset_file_name(p.strip_prefix(&prefix)?, SNAPSHOT)?;
                        Some((offset, Bytes::copy_from_slice(&f.data)))
                    })
                    .collect();
                DiskPartition {
                    snapshots,
                    leader_epochs: self
                        .file(&format!(
                            "{dir}/{}",
                            crate::log::epochs::LEADER_EPOCH_CHECKPOINT
                        ))
                        .map(Bytes::copy_from_slice),
                    metadata: self
                        .file(&format!("{dir}/partition.metadata"))
                        .map(Bytes::copy_from_slice),
                    dir,
                    segments,
                }
            })
            .collect();
        DiskState {
            root_files,
            partitions,
        }
    }

    /// The bytes of a file, if it exists.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(|f| f.data.as_slice())
    }

    /// Every file's path, in order.
    pub fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// How many of a file's bytes survive a crash.
    pub fn synced_len(&self, path: &str) -> Option<usize> {
        self.files.get(path).map(|f| f.synced)
    }

    /// Flip the bits of `mask` in the byte at `pos` of a file (durably: a
    /// test's picture of a bad disk). False when there is no such byte.
    pub fn corrupt(&mut self, path: &str, pos: usize, mask: u8) -> bool {
        match self.files.get_mut(path).and_then(|f| f.data.get_mut(pos)) {
            Some(b) => {
                *b ^= mask;
                true
            }
            None => false,
        }
    }

    /// Cut a file to `len` bytes (a torn write that reached the disk).
    /// False when there is no such file.
    pub fn cut(&mut self, path: &str, len: usize) -> bool {
        match self.files.get_mut(path) {
            Some(f) => {
                f.data.truncate(len);
                f.synced = f.synced.min(f.data.len());
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::IoId;

    fn open(seg: u64, create: bool) -> Command {
        Command::OpenSegment {
            io: IoId(seg),
            seg: SegId(seg),
            dir: "t-0".into(),
            base_offset: 0,
            create,
        }
    }

    #[test]
    fn crash_keeps_only_synced_bytes() {
        let mut d = SimDisk::default();
        assert!(d.execute(&open(1, true)).result.is_ok());
        let append = |b: &'static [u8]| Command::Append {
            io: IoId(2),
            seg: SegId(1),
            parts: vec![Bytes::from_static(b)],
        };
        assert!(d.execute(&append(b"abc")).result.is_ok());
        assert!(
            d.execute(&Command::Sync {
                io: IoId(3),
                seg: SegId(1)
            })
            .result
            .is_ok()
        );
        assert!(d.execute(&append(b"def")).result.is_ok());
        assert_eq!(d.file("t-0/00000000000000000000.log"), Some(&b"abcdef"[..]));
        d.crash();
        assert_eq!(d.file("t-0/00000000000000000000.log"), Some(&b"abc"[..]));
        let state = d.disk_state();
        assert_eq!(state.partitions.len(), 1);
        assert_eq!(state.partitions[0].segments.len(), 1);
        // After a crash the segment must be opened again.
        assert!(d.execute(&append(b"x")).result.is_err());
        assert!(d.execute(&open(4, false)).result.is_ok());
    }

    #[test]
    fn fault_injection_fails_the_nth_file_command() {
        let mut d = SimDisk::default();
        d.fail_after(1);
        assert!(d.execute(&open(1, true)).result.is_ok());
        assert!(
            d.execute(&Command::Close {
                io: IoId(9),
                conn: crate::ConnId(1)
            })
            .result
            .is_ok()
        );
        assert!(
            d.execute(&Command::Sync {
                io: IoId(2),
                seg: SegId(1)
            })
            .result
            .is_err()
        );
        assert!(
            d.execute(&Command::Sync {
                io: IoId(3),
                seg: SegId(1)
            })
            .result
            .is_ok()
        );
    }

    #[test]
    fn an_injected_error_is_the_one_given_and_changes_nothing() {
        let mut d = SimDisk::default();
        assert!(d.execute(&open(1, true)).result.is_ok());
        let enospc = IoError::from(std::io::Error::from_raw_os_error(28));
        d.fail_after_with(0, enospc.clone());
        let append = Command::Append {
            io: IoId(2),
            seg: SegId(1),
            parts: vec![Bytes::from_static(b"abc")],
        };
        assert_eq!(d.execute(&append).result.unwrap_err(), enospc);
        assert_eq!(d.file("t-0/00000000000000000000.log"), Some(&b""[..]));
        assert!(d.execute(&append).result.is_ok(), "only one command fails");
    }

    #[test]
    fn a_disk_that_loses_syncs_keeps_nothing_in_a_crash() {
        let mut d = SimDisk::default();
        d.lose_syncs(true);
        assert!(d.execute(&open(1, true)).result.is_ok());
        let append = Command::Append {
            io: IoId(2),
            seg: SegId(1),
            parts: vec![Bytes::from_static(b"abc")],
        };
        assert!(d.execute(&append).result.is_ok());
        let sync = Command::Sync {
            io: IoId(3),
            seg: SegId(1),
        };
        assert!(d.execute(&sync).result.is_ok(), "the lie: Sync succeeds");
        d.crash();
        assert_eq!(d.file("t-0/00000000000000000000.log"), Some(&b""[..]));
    }

    #[test]
    fn a_restart_keeps_unsynced_bytes_and_closes_segments() {
        let mut d = SimDisk::default();
        assert!(d.execute(&open(1, true)).result.is_ok());
        let append = Command::Append {
            io: IoId(2),
            seg: SegId(1),
            parts: vec![Bytes::from_static(b"abc")],
        };
        assert!(d.execute(&append).result.is_ok());
        d.restart();
        assert_eq!(d.file("t-0/00000000000000000000.log"), Some(&b"abc"[..]));
        assert!(d.execute(&append).result.is_err(), "opened again first");
    }

    #[test]
    fn root_files_and_metadata_are_found() {
        let mut d = SimDisk::default();
        let write = |path: &str| Command::WriteFile {
            io: IoId(1),
            path: path.into(),
            bytes: Bytes::from_static(b"x"),
        };
        let _ = d.execute(&write(".kafka_cleanshutdown"));
        let _ = d.execute(&write("t-1/partition.metadata"));
        let s = d.disk_state();
        assert_eq!(s.root_files.len(), 1);
        assert_eq!(s.partitions[0].dir, "t-1");
        assert!(s.partitions[0].metadata.is_some());
        assert!(s.partitions[0].segments.is_empty());
    }
}
