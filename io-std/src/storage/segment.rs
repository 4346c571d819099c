//! The sequential segment writer's system calls: executes the core's file
//! commands on the data directory, one at a time. The open segments' file
//! handles live in a [`SegTable`] that the socket writers share for
//! `sendfile`. A `Sync` does not wait in line: the writer hands it to the
//! fsync worker ([`GroupCommit`], in `commit.rs`) and goes on with later
//! commands.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use bytes::Bytes;
use conveyor_core::sync::{Pin, PinTable, Removed};
use conveyor_core::{Command, Completion, Done, SegId, SegmentViews};

use crate::storage::disk::{map, resolve, segment_file_name};
use crate::storage::workers::Workers;
use prometheus_client::metrics::histogram::Histogram;

mod cleaned;
mod commit;

pub(crate) use commit::{DEFAULT_FLUSH_THREADS, GroupCommit};

/// The most buffers handed to one `writev` (Linux's `IOV_MAX`).
pub(crate) const IOV_MAX: usize = 1024;

/// The three open files of a segment.
#[derive(Debug)]
pub(crate) struct SegmentFiles {
    pub(crate) log: File,
    pub(crate) index: File,
    pub(crate) timeindex: File,
    /// The directory and base offset, to delete the files by name.
    dir: PathBuf,
    base_offset: u64,
    /// Still under the cleaner's `.cleaned` names (before its swap).
    cleaned: AtomicBool,
}

impl SegmentFiles {
    fn paths(&self) -> [PathBuf; 3] {
        let cleaned = self.cleaned.load(Ordering::Acquire);
        conveyor_core::layout::SEGMENT_FILES.map(|ext| {
            let name = segment_file_name(self.base_offset, ext);
            if cleaned {
                self.dir
                    .join(format!("{name}.{}", conveyor_core::layout::CLEANED))
            } else {
                self.dir.join(name)
            }
        })
    }

    fn final_paths(&self) -> [PathBuf; 3] {
        conveyor_core::layout::SEGMENT_FILES
            .map(|ext| self.dir.join(segment_file_name(self.base_offset, ext)))
    }

    fn each(&self) -> [&File; 3] {
        [&self.log, &self.index, &self.timeindex]
    }

    /// `fdatasync` the three files.
    fn sync(&self) -> io::Result<()> {
        for file in self.each() {
            file.sync_data()?;
        }
        Ok(())
    }
}

/// Open segments by id, in a [`PinTable`]: written only by the segment
/// writer; pinned by the socket writers while they `sendfile` from a
/// segment and by the fsync worker while it syncs one, so a segment's files
/// are deleted (`RemoveSegment`) only once no one uses them.
#[derive(Debug, Default)]
pub(crate) struct SegTable(PinTable<SegId, SegmentFiles>);

impl SegTable {
    /// Pin the segment's files for as long as the result lives.
    pub(crate) fn get(&self, seg: SegId) -> io::Result<Pin<SegmentFiles>> {
        self.0.pin(&seg).ok_or_else(|| not_open(seg))
    }

    fn insert(&self, seg: SegId, files: SegmentFiles) {
        self.0.insert(seg, files);
    }

    /// A segment whose log is `log` and whose index files are scratch files.
    #[cfg(test)]
    pub(crate) fn insert_file(&self, seg: SegId, log: File) {
        let scratch = || tempfile::tempfile().expect("a scratch file");
        let files = SegmentFiles {
            log,
            index: scratch(),
            timeindex: scratch(),
            dir: PathBuf::new(),
            base_offset: 0,
            cleaned: AtomicBool::new(false),
        };
        self.insert(seg, files);
    }

    /// Take the segment out of the table once no one pins it (a `sendfile`
    /// in flight, a `Sync` handed to the fsync worker).
    fn remove(&self, seg: SegId) -> io::Result<Removed<SegmentFiles>> {
        self.0.remove(&seg).ok_or_else(|| not_open(seg))
    }
}

fn not_open(seg: SegId) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{seg:?} is not open"))
}

/// Write every byte of `bufs`, in order, with as few vectored writes as the
/// writer allows, carrying on after partial writes.
pub(crate) fn write_all_vectored(mut w: impl Write, bufs: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = bufs
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| IoSlice::new(b))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let window = rest.len().min(IOV_MAX);
        match w.write_vectored(&rest[..window]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `cmd` waits on the disk (an fsync): completions gathered before
/// it are reported first, so they do not wait behind it.
pub(crate) fn is_slow(cmd: &Command) -> bool {
    // A `Sync` is handed to the fsync worker, so it is not slow here.
    matches!(
        cmd,
        Command::Truncate { .. }
            | Command::WriteFile { .. }
            | Command::RemoveFile { .. }
            | Command::RemoveDir { .. }
            | Command::OpenSegment { create: true, .. }
    )
}

/// The most completions a worker gathers before handing them on.
pub(crate) const DONE_BATCH: usize = 64;

/// Run commands from `rx` with `exec` until every sender is gone, handing
/// completions on as [`run_all`] does.
pub(crate) fn work_loop(
    rx: &Receiver<Command>,
    mut exec: impl FnMut(Command) -> Option<Done>,
    mut report: impl FnMut(&mut Vec<Done>),
) {
    while let Ok(cmd) = rx.recv() {
        run_all(
            std::iter::once(cmd).chain(rx.try_iter()),
            &mut exec,
            &mut report,
        );
    }
}

/// Run `cmds` in order with `exec`, handing completions to `report` in
/// batches: at most [`DONE_BATCH`] at a time, and before any command that
/// waits on the disk, so quick completions do not wait behind an fsync.
/// `report` is given each batch to empty. `exec` answers `None` for a
/// command answered elsewhere (a `Sync` handed to the fsync worker).
pub(crate) fn run_all(
    cmds: impl IntoIterator<Item = Command>,
    mut exec: impl FnMut(Command) -> Option<Done>,
    mut report: impl FnMut(&mut Vec<Done>),
) {
    let mut dones = Vec::new();
    let mut flush = |dones: &mut Vec<Done>| {
        if !dones.is_empty() {
            report(dones);
            dones.clear();
        }
    };
    for cmd in cmds {
        if is_slow(&cmd) {
            flush(&mut dones);
        }
        dones.extend(exec(cmd));
        if dones.len() >= DONE_BATCH {
            flush(&mut dones);
        }
    }
    flush(&mut dones);
}

/// Start the segment writer thread: file commands sent to the returned
/// queue run with `exec` one at a time, in issue order, with its group
/// commit; completions go to `report` in batches (see [`work_loop`]), from
/// the writer and from the fsync worker. The thread ends once the queue's
/// sender is dropped and what it holds is done; it stops the fsync worker
/// as it ends.
pub(crate) fn spawn_segment_writer(
    exec: DiskExec,
    report: impl FnMut(Vec<Done>) + Clone + Send + 'static,
) -> io::Result<(Sender<Command>, JoinHandle<()>)> {
    let writer = SegmentWriter::start(exec, report.clone())?;
    let (tx, rx) = mpsc::channel();
    let mut report = report;
    let handle = crate::spawn("conveyor-segments", move || {
        work_loop(
            &rx,
            |cmd| writer.execute(cmd),
            |d| report(std::mem::take(d)),
        );
    })?;
    Ok((tx, handle))
}

/// The sequential segment writer's executor: every file command in issue
/// order, except that a `Sync` is handed to the fsync worker once the
/// commands before it are done, a `SwapCleaned` (its renames, deletions
/// and directory fsyncs) to the swap worker, and a `Compute` (the
/// cleaner's CPU work) to the cleaner workers, each answered from there, so
/// appends never wait behind them. The core issues nothing for a swap's
/// segments until it is answered.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    exec: DiskExec,
    commit: GroupCommit,
    swaps: Workers,
    jobs: Workers,
}

impl SegmentWriter {
    /// An executor with its fsync and swap workers, which answer to
    /// `report`.
    pub(crate) fn start(
        exec: DiskExec,
        report: impl FnMut(Vec<Done>) + Clone + Send + 'static,
    ) -> io::Result<SegmentWriter> {
        let commit = GroupCommit::start(
            report.clone(),
            exec.flush_threads,
            exec.fsync_seconds.clone(),
        )?;
        let run = |exec: DiskExec| move |cmd| exec.execute(cmd);
        let swaps = Workers::start("swaps", 1, 0, run(exec.clone()), report.clone())?;
        let (n, nice) = (exec.cleaner_threads, CLEANER_NICE);
        let jobs = Workers::start("cleaner", n, nice, run(exec.clone()), report)?;
        Ok(SegmentWriter {
            exec,
            commit,
            swaps,
            jobs,
        })
    }

    /// Execute `cmd`, or hand it over (`None`: answered by a worker).
    pub(crate) fn execute(&self, cmd: Command) -> Option<Done> {
        match cmd {
            Command::Sync { io, seg } => self.commit.hand(io, seg, &self.exec.segs),
            cmd @ Command::SwapCleaned { .. } => self.swaps.hand(cmd),
            cmd @ Command::Compute { .. } => self.jobs.hand(cmd),
            cmd => Some(self.exec.execute(cmd)),
        }
    }
}

/// The nice value of the cleaner's workers: background work, which yields
/// the CPU to the threads that answer requests.
const CLEANER_NICE: i32 = 10;

/// Executes file commands under one data directory.
#[derive(Debug, Clone)]
pub(crate) struct DiskExec {
    root: PathBuf,
    segs: Arc<SegTable>,
    /// Fsync workers of the segment writer built on it.
    flush_threads: usize,
    /// Cleaner workers of the segment writer built on it.
    cleaner_threads: usize,
    /// Where its fsync workers record each `fdatasync`'s time.
    fsync_seconds: Option<Histogram>,
}

impl DiskExec {
    pub(crate) fn new(root: PathBuf, segs: Arc<SegTable>) -> Self {
        Self {
            root,
            segs,
            flush_threads: DEFAULT_FLUSH_THREADS,
            cleaner_threads: 1,
            fsync_seconds: None,
        }
    }

    /// Record each fsync's time in `h` (the metrics' `fsync_seconds`).
    pub(crate) fn with_fsync_histogram(mut self, h: Histogram) -> Self {
        self.fsync_seconds = Some(h);
        self
    }

    /// How many fsync and cleaner workers a segment writer on it runs
    /// (`log.flush.threads`, `log.cleaner.threads`).
    pub(crate) fn with_threads(mut self, config: &conveyor_core::Config) -> Self {
        self.flush_threads = config.flush_threads.max(1);
        self.cleaner_threads = config.cleaner_threads.max(1);
        self
    }

    /// Execute one file command and say how it went. Never panics: every
    /// failure becomes an error in the `Done`.
    pub(crate) fn execute(&self, cmd: Command) -> Done {
        let io = cmd.io();
        let result = self.run(cmd).map_err(|e| {
            tracing::warn!(error = %e, "file command failed");
            e.into()
        });
        Done { io, result }
    }

    fn run(&self, cmd: Command) -> io::Result<Completion> {
        match cmd {
            Command::OpenSegment {
                seg,
                dir,
                base_offset,
                create,
                ..
            } => self.open_segment(seg, &dir, base_offset, create)?,
            Command::CreateCleaned {
                seg,
                dir,
                base_offset,
                ..
            } => self.create_cleaned(seg, &dir, base_offset)?,
            Command::SwapCleaned { seg, replaces, .. } => self.swap_cleaned(seg, &replaces)?,
            Command::Append { seg, parts, .. } => {
                // The log is opened with O_APPEND: every write lands at the end.
                write_all_vectored(&self.segs.get(seg)?.log, &parts)?
            }
            Command::WriteIndex {
                seg,
                offset_index,
                time_index,
                ..
            } => {
                let f = self.segs.get(seg)?;
                (&f.index).write_all(&offset_index)?;
                (&f.timeindex).write_all(&time_index)?;
            }
            Command::Truncate {
                seg,
                log_len,
                index_len,
                timeindex_len,
                ..
            } => {
                let f = self.segs.get(seg)?;
                for (file, len) in f
                    .each()
                    .into_iter()
                    .zip([log_len, index_len, timeindex_len])
                {
                    file.set_len(len)?;
                }
                for file in f.each() {
                    file.sync_data()?;
                }
            }
            // Inline for a caller without a fsync worker (`embed::Files`);
            // the segment writer hands it to its `GroupCommit` instead.
            Command::Sync { seg, .. } => self.segs.get(seg)?.sync()?,
            Command::MapSegment { seg, .. } => {
                let f = self.segs.get(seg)?;
                return Ok(Completion::Mapped(SegmentViews {
                    log: map(&f.log)?,
                    index: map(&f.index)?,
                    timeindex: map(&f.timeindex)?,
                }));
            }
            Command::Read { seg, pos, len, .. } => {
                let f = self.segs.get(seg)?;
                let len = usize::try_from(len)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "read too long"))?;
                let mut buf = vec![0; len];
                std::os::unix::fs::FileExt::read_exact_at(&f.log, &mut buf, pos)?;
                return Ok(Completion::Read(bytes::Bytes::from(buf)));
            }
            Command::RemoveSegment { seg, .. } => {
                // Waits for every pin: a `sendfile` in flight (the core
                // sends nothing from a segment it removes, so none should
                // be) and a `Sync` handed to the fsync worker before this.
                let f = self.segs.remove(seg)?;
                for path in f.paths() {
                    remove_file_if_present(&path)?;
                }
            }
            Command::WriteFile { path, bytes, .. } => {
                self.write_file(&resolve(&self.root, &path)?, &bytes)?
            }
            Command::RemoveFile { path, .. } => {
                let path = resolve(&self.root, &path)?;
                remove_file_if_present(&path)?;
                // A removal that a crash undoes (say, of the clean-shutdown
                // marker) would mislead the next recovery.
                sync_parent(&path)?;
            }
            Command::RemoveDir { dir, .. } => {
                let path = resolve(&self.root, &dir)?;
                match fs::remove_dir_all(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => sync_parent(&path)?,
                }
            }
            // CPU work (a cleaner worker runs it), not a file command.
            Command::Compute { job, .. } => return Ok(Completion::Computed(job.run())),
            Command::Send { .. } | Command::Close { .. } | Command::Connect { .. } => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "a socket command reached the segment writer",
                ));
            }
        }
        Ok(Completion::Unit)
    }

    fn open_segment(
        &self,
        seg: SegId,
        dir: &str,
        base_offset: u64,
        create: bool,
    ) -> io::Result<()> {
        let dir = resolve(&self.root, dir)?;
        let new_dir = create && !dir.is_dir();
        if create {
            fs::create_dir_all(&dir)?;
        }
        let open = |ext: &str, must_exist: bool| {
            let path = dir.join(segment_file_name(base_offset, ext));
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(!must_exist)
                .open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        // At startup the log must be there; a missing index is created
        // empty, since recovery rebuilds it.
        let files = SegmentFiles {
            log: open(conveyor_core::layout::LOG, !create)?,
            index: open(conveyor_core::layout::INDEX, false)?,
            timeindex: open(conveyor_core::layout::TIME_INDEX, false)?,
            dir: dir.clone(),
            base_offset,
            cleaned: AtomicBool::new(false),
        };
        if create {
            // Make the new names durable, as a later Sync covers only the
            // files' contents.
            sync_dir(&dir)?;
            if new_dir {
                sync_parent(&dir)?;
            }
        }
        self.segs.insert(seg, files);
        Ok(())
    }

    pub(super) fn write_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_parent(path)
    }
}

fn remove_file_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) => sync_dir(p),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
