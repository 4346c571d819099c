//! The sequential segment writer's system calls: executes the core's file
//! commands on the data directory, one at a time. The open segments' file
//! handles live in a [`SegTable`] that the socket writers share for
//! `sendfile`. A `Sync` does not wait in line: the writer hands it to the
//! fsync worker ([`GroupCommit`]) and goes on with later commands.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use bytes::Bytes;
use conveyor_core::sync::{Pin, PinTable, Removed, SyncHandoff};
use conveyor_core::{Command, Completion, Done, IoError, IoId, SegId, SegmentViews};

use crate::storage::disk::{map, resolve, segment_file_name};
use crate::storage::workers::Workers;
use prometheus_client::metrics::histogram::Histogram;

mod cleaned;

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

/// A `Sync` waiting for the fsync worker, with a pin on its segment's files
/// taken in issue order: a later `RemoveSegment` waits for the sync.
struct SyncRequest {
    io: IoId,
    files: Pin<SegmentFiles>,
}

/// The fsync workers (`log.flush.threads` of them) and their
/// [`SyncHandoff`]. The segment writer hands each `Sync` over once the
/// commands before it are written; a worker takes the oldest, runs one
/// `fdatasync` of its segment's files and answers it. Group commit itself
/// is the core's: its one `Sync` in flight per segment covers every append
/// before it. Appends queued behind a `Sync` never wait for the disk, and
/// syncs of different partitions run side by side. Dropping it answers what
/// is pending and joins the workers.
pub(crate) struct GroupCommit {
    handoff: Arc<SyncHandoff<SegId, SyncRequest>>,
    workers: Vec<JoinHandle<()>>,
}

/// The nice value of the cleaner's workers: background work, which yields
/// the CPU to the threads that answer requests.
const CLEANER_NICE: i32 = 10;

/// Fsync workers when none are configured (`log.flush.threads`).
pub(crate) const DEFAULT_FLUSH_THREADS: usize = 4;

impl GroupCommit {
    fn start(
        report: impl FnMut(Vec<Done>) + Clone + Send + 'static,
        threads: usize,
        fsync_seconds: Option<Histogram>,
    ) -> io::Result<GroupCommit> {
        let handoff = Arc::new(SyncHandoff::<SegId, SyncRequest>::new());
        let mut commit = GroupCommit {
            handoff,
            workers: Vec::new(),
        };
        for n in 0..threads.max(1) {
            let h = Arc::clone(&commit.handoff);
            let mut report = report.clone();
            let fsync_seconds = fsync_seconds.clone();
            // On an error, dropping `commit` stops the workers started.
            let worker = crate::spawn(&format!("conveyor-fsync-{n}"), move || {
                h.serve(
                    |_seg, req| {
                        let started = std::time::Instant::now();
                        let r = req.files.sync().map_err(IoError::from);
                        if let Some(h) = &fsync_seconds {
                            h.observe(started.elapsed().as_secs_f64());
                        }
                        r
                    },
                    |_seg, req, result| {
                        if let Err(e) = &result {
                            tracing::warn!(error = %e, "file command failed");
                        }
                        // The request's pin goes as it is answered.
                        let io = req.io;
                        drop(req);
                        report(vec![Done {
                            io,
                            result: result.map(|()| Completion::Unit),
                        }]);
                    },
                );
            })?;
            commit.workers.push(worker);
        }
        Ok(commit)
    }

    /// Hand a `Sync` of `seg` to the worker; answer it now if the segment
    /// is not open or the worker is gone.
    fn hand(&self, io: IoId, seg: SegId, segs: &SegTable) -> Option<Done> {
        let files = match segs.get(seg) {
            Ok(f) => f,
            Err(e) => {
                return Some(Done {
                    io,
                    result: Err(e.into()),
                });
            }
        };
        match self.handoff.hand(seg, SyncRequest { io, files }) {
            Ok(()) => None,
            Err(req) => Some(Done {
                io: req.io,
                result: req
                    .files
                    .sync()
                    .map(|()| Completion::Unit)
                    .map_err(Into::into),
            }),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.handoff.close();
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                tracing::error!("an fsync worker panicked");
            }
        }
    }
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("handoff", &self.handoff)
            .finish_non_exhaustive()
    }
}

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
mod tests {
    use super::*;
    use conveyor_core::IoId;

    struct Fixture {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        exec: DiskExec,
        next: u64,
    }

    impl Fixture {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().to_owned();
            let exec = DiskExec::new(root.clone(), Arc::default());
            Self {
                _tmp: tmp,
                root,
                exec,
                next: 0,
            }
        }

        fn io(&mut self) -> IoId {
            self.next += 1;
            IoId(self.next)
        }

        fn run(
            &mut self,
            make: impl FnOnce(IoId) -> Command,
        ) -> Result<Completion, conveyor_core::IoError> {
            let io = self.io();
            let done = self.exec.execute(make(io));
            assert_eq!(done.io, io);
            done.result
        }

        fn ok(&mut self, make: impl FnOnce(IoId) -> Command) -> Completion {
            self.run(make).unwrap()
        }

        fn read(&self, rel: &str) -> Vec<u8> {
            fs::read(self.root.join(rel)).unwrap()
        }
    }

    const SEG: SegId = SegId(1);
    const LOG: &str = "t-0/00000000000000000100.log";
    const INDEX: &str = "t-0/00000000000000000100.index";
    const TIMEINDEX: &str = "t-0/00000000000000000100.timeindex";

    fn open(create: bool) -> impl FnOnce(IoId) -> Command {
        move |io| Command::OpenSegment {
            io,
            seg: SEG,
            dir: "t-0".into(),
            base_offset: 100,
            create,
        }
    }

    #[test]
    fn a_cleaned_segment_swaps_in_under_the_old_names() {
        let mut f = Fixture::new();
        f.ok(open(true));
        f.ok(|io| Command::Append {
            io,
            seg: SEG,
            parts: vec![Bytes::from_static(b"old old old")],
        });
        let new = SegId(2);
        let create = |io| Command::CreateCleaned {
            io,
            seg: new,
            dir: "t-0".into(),
            base_offset: 100,
        };
        f.ok(create);
        // Leftovers of an earlier attempt are emptied.
        f.ok(|io| Command::Append {
            io,
            seg: new,
            parts: vec![Bytes::from_static(b"junk")],
        });
        f.ok(create);
        f.ok(|io| Command::Append {
            io,
            seg: new,
            parts: vec![Bytes::from_static(b"new")],
        });
        f.ok(|io| Command::WriteIndex {
            io,
            seg: new,
            offset_index: Bytes::from_static(&[7; 8]),
            time_index: Bytes::new(),
        });
        f.ok(|io| Command::Sync { io, seg: new });
        assert_eq!(f.read(&format!("{LOG}.cleaned")), b"new");
        assert_eq!(f.read(LOG), b"old old old", "nothing swapped yet");
        f.ok(|io| Command::SwapCleaned {
            io,
            seg: new,
            replaces: vec![SEG],
        });
        assert_eq!(f.read(LOG), b"new");
        assert_eq!(f.read(INDEX), [7u8; 8]);
        assert!(!f.root.join(format!("{LOG}.cleaned")).exists());
        assert!(!f.root.join(format!("{TIMEINDEX}.cleaned")).exists());
        // The new segment goes on under its final names; the old is closed.
        f.ok(|io| Command::Append {
            io,
            seg: new,
            parts: vec![Bytes::from_static(b"!")],
        });
        assert_eq!(f.read(LOG), b"new!");
        assert!(f.run(|io| Command::Sync { io, seg: SEG }).is_err());
        assert!(
            f.run(|io| Command::SwapCleaned {
                io,
                seg: new,
                replaces: vec![SEG]
            })
            .is_err(),
            "a segment swaps once"
        );
        f.ok(|io| Command::RemoveSegment { io, seg: new });
        assert!(!f.root.join(LOG).exists());
    }

    #[test]
    fn segment_lifecycle() {
        let mut f = Fixture::new();
        f.ok(open(true));
        assert!(f.read(LOG).is_empty() && f.read(INDEX).is_empty() && f.read(TIMEINDEX).is_empty());

        let parts = vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"defg"),
        ];
        f.ok(|io| Command::Append {
            io,
            seg: SEG,
            parts,
        });
        f.ok(|io| Command::Append {
            io,
            seg: SEG,
            parts: vec![Bytes::from_static(b"hi")],
        });
        assert_eq!(f.read(LOG), b"abcdefghi");

        f.ok(|io| Command::WriteIndex {
            io,
            seg: SEG,
            offset_index: Bytes::from_static(&[1; 8]),
            time_index: Bytes::new(),
        });
        f.ok(|io| Command::WriteIndex {
            io,
            seg: SEG,
            offset_index: Bytes::from_static(&[2; 8]),
            time_index: Bytes::from_static(&[3; 12]),
        });
        assert_eq!(f.read(INDEX), [[1u8; 8], [2; 8]].concat());
        assert_eq!(f.read(TIMEINDEX), [3u8; 12]);
        f.ok(|io| Command::Sync { io, seg: SEG });

        f.ok(|io| Command::Truncate {
            io,
            seg: SEG,
            log_len: 4,
            index_len: 8,
            timeindex_len: 0,
        });
        assert_eq!(f.read(LOG), b"abcd");
        assert_eq!(f.read(INDEX), [1u8; 8]);
        assert!(f.read(TIMEINDEX).is_empty());
        // Appends after a truncation continue at the new end.
        f.ok(|io| Command::Append {
            io,
            seg: SEG,
            parts: vec![Bytes::from_static(b"X")],
        });
        assert_eq!(f.read(LOG), b"abcdX");

        let Completion::Mapped(views) = f.ok(|io| Command::MapSegment { io, seg: SEG }) else {
            panic!("MapSegment answers with Mapped");
        };
        assert_eq!((*views.log).as_ref(), b"abcdX");
        assert_eq!((*views.index).as_ref(), [1u8; 8]);
        assert!((*views.timeindex).as_ref().is_empty());

        f.ok(|io| Command::RemoveSegment { io, seg: SEG });
        assert!(!f.root.join(LOG).exists() && !f.root.join(INDEX).exists());
        // The mapping outlives the file's name.
        assert_eq!((*views.log).as_ref(), b"abcdX");
        // The segment is gone: commands naming it fail, without panicking.
        let e = f.run(|io| Command::Sync { io, seg: SEG }).unwrap_err();
        assert_eq!(e.kind, io::ErrorKind::NotFound);
    }

    #[test]
    fn open_existing() {
        let mut f = Fixture::new();
        // Startup: the log must exist.
        let e = f.run(open(false)).unwrap_err();
        assert_eq!(e.kind, io::ErrorKind::NotFound);
        fs::create_dir(f.root.join("t-0")).unwrap();
        fs::write(f.root.join(LOG), b"old").unwrap();
        f.ok(open(false));
        // Missing indexes were created empty; the log is appended to, not replaced.
        assert!(f.read(INDEX).is_empty());
        f.ok(|io| Command::Append {
            io,
            seg: SEG,
            parts: vec![Bytes::from_static(b"new")],
        });
        assert_eq!(f.read(LOG), b"oldnew");
        // Creating over existing files truncates nothing.
        f.ok(open(true));
        assert_eq!(f.read(LOG), b"oldnew");
    }

    #[test]
    fn files_and_dirs() {
        let mut f = Fixture::new();
        let write = |path: &str, b: &'static [u8]| {
            let path = path.to_owned();
            move |io| Command::WriteFile {
                io,
                path,
                bytes: Bytes::from_static(b),
            }
        };
        f.ok(write("checkpoint", b"one"));
        f.ok(write("checkpoint", b"two"));
        assert_eq!(f.read("checkpoint"), b"two");
        assert!(!f.root.join("checkpoint.tmp").exists());
        f.ok(write("new-dir/partition.metadata", b"m"));
        assert_eq!(f.read("new-dir/partition.metadata"), b"m");

        f.ok(|io| Command::RemoveFile {
            io,
            path: "checkpoint".into(),
        });
        assert!(!f.root.join("checkpoint").exists());
        // Removing what is not there is success.
        f.ok(|io| Command::RemoveFile {
            io,
            path: "checkpoint".into(),
        });
        f.ok(|io| Command::RemoveDir {
            io,
            dir: "new-dir".into(),
        });
        assert!(!f.root.join("new-dir").exists());
        f.ok(|io| Command::RemoveDir {
            io,
            dir: "new-dir".into(),
        });

        // Paths outside the data directory are refused.
        let e = f.run(write("../escape", b"x")).unwrap_err();
        assert_eq!(e.kind, io::ErrorKind::InvalidInput);
        let e = f
            .run(|io| Command::RemoveDir {
                io,
                dir: "/".into(),
            })
            .unwrap_err();
        assert_eq!(e.kind, io::ErrorKind::InvalidInput);
        // A socket command is an error, not a panic.
        let e = f
            .run(|io| Command::Close {
                io,
                conn: conveyor_core::ConnId(1),
            })
            .unwrap_err();
        assert_eq!(e.kind, io::ErrorKind::Unsupported);
    }

    #[test]
    fn group_commit_answers_syncs_from_the_fsync_worker() {
        let mut f = Fixture::new();
        f.ok(open(true));
        let segs = Arc::clone(&f.exec.segs);
        let (tx, rx) = mpsc::channel();
        let writer = SegmentWriter::start(DiskExec::new(f.root.clone(), Arc::clone(&segs)), {
            let tx = tx.clone();
            move |dones| {
                for d in dones {
                    let _ = tx.send(d);
                }
            }
        })
        .unwrap();
        let append = |io| Command::Append {
            io,
            seg: SEG,
            parts: vec![Bytes::from_static(b"abc")],
        };
        let (a1, s1, a2) = (f.io(), f.io(), f.io());
        assert!(writer.execute(append(a1)).unwrap().result.is_ok());
        // Handed over: the writer answers nothing and goes on.
        assert!(writer.execute(Command::Sync { io: s1, seg: SEG }).is_none());
        assert!(writer.execute(append(a2)).unwrap().result.is_ok());
        let done = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(done.io, s1);
        assert!(done.result.is_ok());

        // A removal waits for a sync handed over before it, and a sync of
        // a segment that is not open is answered at once, with an error.
        let (s2, rm, s3) = (f.io(), f.io(), f.io());
        assert!(writer.execute(Command::Sync { io: s2, seg: SEG }).is_none());
        let removed = writer.execute(Command::RemoveSegment { io: rm, seg: SEG });
        assert!(removed.unwrap().result.is_ok());
        assert!(!f.root.join(LOG).exists());
        let done = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(done.io, s2);
        let e = writer.execute(Command::Sync { io: s3, seg: SEG }).unwrap();
        assert_eq!(e.result.unwrap_err().kind, io::ErrorKind::NotFound);

        // Dropping the writer stops its worker; nothing is left unanswered.
        drop(writer);
        drop(tx);
        assert!(rx.recv().is_err());
    }

    #[test]
    fn vectored_writes_survive_partial_writes() {
        /// Takes at most 3 bytes per call.
        struct Dribble(Vec<u8>);
        impl Write for Dribble {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(3);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let bufs: Vec<Bytes> = (0..2000u32).map(|i| Bytes::from(i.to_string())).collect();
        let mut out = Dribble(Vec::new());
        write_all_vectored(&mut out, &bufs).unwrap();
        assert_eq!(out.0, bufs.concat());
    }
}
