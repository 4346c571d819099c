//! The data directory: preparing it at startup, reading what recovery needs
//! ([`DiskState`]), and mapping files read-only.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;
use conveyor_core::io::empty_view;
use conveyor_core::layout;
use conveyor_core::{DiskPartition, DiskSegment, DiskState, ROOT_FILES, SegmentViews, View};
use memmap2::{Mmap, UncheckedAdvice};

/// The lock file that keeps two brokers off one data directory (Kafka's name).
const LOCK_FILE: &str = ".lock";

/// The per-partition file the core reads at startup.
const PARTITION_METADATA: &str = "partition.metadata";

/// The name of a segment file: the base offset in 20 digits, then `ext`.
pub(crate) fn segment_file_name(base_offset: u64, ext: &str) -> String {
    layout::offset_file_name(base_offset, ext)
}

/// Create the data directory if needed, check it is writable and take its
/// lock. The returned file holds the lock until it is dropped.
pub(crate) fn prepare(root: &Path) -> io::Result<File> {
    let ctx = |what: &str, e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("data directory {}: {what}: {e}", root.display()),
        )
    };
    fs::create_dir_all(root).map_err(|e| ctx("cannot create it", e))?;
    // Opening the lock file for writing is the writability check: it fails
    // on a read-only or foreign directory before recovery begins.
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join(LOCK_FILE))
        .map_err(|e| ctx("not writable", e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |e| {
            ctx(
                "in use by another process (its .lock is held)",
                io::Error::from(e),
            )
        },
    )?;
    Ok(lock)
}

/// Resolve a path the core gave, relative to the data directory. The core
/// builds these from topic names; refusing anything but plain components
/// keeps every file operation inside the data directory whatever it is fed.
pub(crate) fn resolve(root: &Path, rel: &str) -> io::Result<PathBuf> {
    let p = Path::new(rel);
    let plain = !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path `{rel}` is not relative to the data directory"),
        ));
    }
    Ok(root.join(p))
}

/// Map `file` read-only. An empty file gets an empty view, since mapping
/// zero bytes fails.
#[allow(unsafe_code)]
pub(crate) fn map(file: &File) -> io::Result<View> {
    if file.metadata()?.len() == 0 {
        return Ok(empty_view());
    }
    // SAFETY: a mapping is only sound while nobody changes the bytes under
    // it. The core maps a segment's files only when they no longer change
    // (at startup, before any command, and when a segment is sealed), and
    // it never reads past a length it later truncates to. Appends past the
    // mapped length do not touch the mapped range.
    let map = Arc::new(unsafe { Mmap::map(file)? });
    let mut maps = MAPS.lock().unwrap_or_else(PoisonError::into_inner);
    if maps.len() % 1024 == 1023 {
        maps.retain(|w| w.strong_count() > 0);
    }
    maps.push(Arc::downgrade(&map));
    Ok(map)
}

/// Every mapping [`map`] made, while it lives.
static MAPS: Mutex<Vec<Weak<Mmap>>> = Mutex::new(Vec::new());

/// Bytes sent from segment files between two [`release_mapped_pages`].
pub(crate) const RELEASE_MAPPED_EVERY: u64 = 64 << 20;

/// Drop the pages of every live mapping from the process's page tables;
/// they stay in the page cache, and a later read maps them again (a minor
/// fault). The core reads a sealed segment's batch headers through its
/// mapped `.log`, and each such read maps the 64 KiB around it
/// (the kernel's fault-around): consuming a log left about 6% of it
/// resident in the broker (`RssFile`), growing with the log read (207 MiB
/// peak over the bench matrix). Called after every
/// [`RELEASE_MAPPED_EVERY`] bytes sent from files, which bounds it.
#[allow(unsafe_code)]
pub(crate) fn release_mapped_pages() {
    let mut maps = MAPS.lock().unwrap_or_else(PoisonError::into_inner);
    maps.retain(|w| {
        let Some(m) = w.upgrade() else {
            return false;
        };
        // SAFETY: MADV_DONTNEED discards private changes of a private
        // mapping; these are shared, read-only file mappings, so it only
        // unmaps pages that a later access maps again from the page cache,
        // with the same bytes. A failure leaves the pages mapped.
        let _ = unsafe { m.unchecked_advise(UncheckedAdvice::DontNeed) };
        true
    });
}

fn map_path(path: &Path, optional: bool) -> io::Result<View> {
    match File::open(path) {
        Ok(f) => map(&f),
        Err(e) if optional && e.kind() == io::ErrorKind::NotFound => Ok(empty_view()),
        Err(e) => Err(e),
    }
}

/// Read a file that may be missing.
fn read_optional(path: &Path) -> io::Result<Option<Bytes>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(Bytes::from(b))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Everything recovery needs from the data directory: the root files the
/// core names, and every subdirectory with its metadata and segments (their
/// files mapped). Sorted, so the same directory gives the same input.
pub fn read_disk_state(root: &Path) -> io::Result<DiskState> {
    let mut state = DiskState::default();
    for name in ROOT_FILES {
        let path = root.join(name);
        if let Some(bytes) = read_optional(&path).map_err(|e| with_path(&path, e))? {
            state.root_files.push(((*name).to_owned(), bytes));
        }
    }
    for entry in fs::read_dir(root).map_err(|e| with_path(root, e))? {
        let entry = entry.map_err(|e| with_path(root, e))?;
        let path = entry.path();
        // `fs::metadata` follows symlinks: a partition directory may be one.
        if !fs::metadata(&path)
            .map_err(|e| with_path(&path, e))?
            .is_dir()
        {
            continue;
        }
        let Some(dir) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(path = %path.display(), "skipping a directory whose name is not UTF-8");
            continue;
        };
        state.partitions.push(read_partition(&path, dir)?);
    }
    state.partitions.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(state)
}

/// Finish or undo the log cleaner's swaps in one partition directory
/// ([`layout::finish_swaps`]) before its segments are read.
fn finish_swaps(path: &Path) -> io::Result<()> {
    let mut names = Vec::new();
    for entry in fs::read_dir(path).map_err(|e| with_path(path, e))? {
        let entry = entry.map_err(|e| with_path(path, e))?;
        if let Some(n) = entry.file_name().to_str() {
            names.push(n.to_owned());
        }
    }
    let manifest = |o: u64| fs::read(path.join(segment_file_name(o, layout::SWAP))).ok();
    let ops = layout::finish_swaps(names.iter().map(String::as_str), manifest);
    if ops.is_empty() {
        return Ok(());
    }
    for op in ops {
        match op {
            layout::FileOp::Remove(name) => {
                tracing::info!(dir = %path.display(), file = %name, "removing an unfinished cleaned segment");
                let p = path.join(name);
                fs::remove_file(&p).map_err(|e| with_path(&p, e))?;
            }
            layout::FileOp::Rename(from, to) => {
                tracing::info!(dir = %path.display(), file = %to, "finishing a cleaned segment's swap");
                let (f, t) = (path.join(from), path.join(to));
                fs::rename(&f, &t).map_err(|e| with_path(&f, e))?;
            }
        }
    }
    File::open(path)?.sync_all()
}

fn read_partition(path: &Path, dir: String) -> io::Result<DiskPartition> {
    finish_swaps(path)?;
    let meta_path = path.join(PARTITION_METADATA);
    let metadata = read_optional(&meta_path).map_err(|e| with_path(&meta_path, e))?;
    let epochs_path = path.join(conveyor_core::log::epochs::LEADER_EPOCH_CHECKPOINT);
    let leader_epochs = read_optional(&epochs_path).map_err(|e| with_path(&epochs_path, e))?;
    let mut segments = Vec::new();
    let mut snapshots = Vec::new();
    for entry in fs::read_dir(path).map_err(|e| with_path(path, e))? {
        let entry = entry.map_err(|e| with_path(path, e))?;
        let name = entry.file_name();
        if let Some(offset) = name
            .to_str()
            .and_then(|n| layout::parse_offset_file_name(n, layout::SNAPSHOT))
        {
            // Producer-state snapshots are small; a bad one is the core's call.
            let snap = entry.path();
            if let Some(bytes) = read_optional(&snap).map_err(|e| with_path(&snap, e))? {
                snapshots.push((offset, bytes));
            }
            continue;
        }
        let Some(base_offset) = name
            .to_str()
            .and_then(|n| layout::parse_offset_file_name(n, layout::LOG))
        else {
            continue;
        };
        let file = |ext: &str| path.join(segment_file_name(base_offset, ext));
        let (log, index, timeindex) = (
            file(layout::LOG),
            file(layout::INDEX),
            file(layout::TIME_INDEX),
        );
        let views = SegmentViews {
            log: map_path(&log, false).map_err(|e| with_path(&log, e))?,
            index: map_path(&index, true).map_err(|e| with_path(&index, e))?,
            timeindex: map_path(&timeindex, true).map_err(|e| with_path(&timeindex, e))?,
        };
        segments.push(DiskSegment { base_offset, views });
    }
    segments.sort_by_key(|s| s.base_offset);
    snapshots.sort_by_key(|s| s.0);
    Ok(DiskPartition {
        dir,
        metadata,
        segments,
        snapshots,
        leader_epochs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: &View) -> &[u8] {
        (**v).as_ref()
    }

    #[test]
    fn resolve_stays_inside() {
        let root = Path::new("/data");
        assert_eq!(resolve(root, "t-0/x").unwrap(), Path::new("/data/t-0/x"));
        for bad in ["", "/etc/passwd", "../x", "t-0/../../x", "."] {
            assert!(resolve(root, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unfinished_swaps_are_settled_before_reading() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        fs::create_dir(&dir).unwrap();
        let name = |o: u64, ext: &str| segment_file_name(o, ext);
        // Base 0: never committed (its log is still `.cleaned`).
        fs::write(dir.join(name(0, layout::LOG)), b"old").unwrap();
        fs::write(
            dir.join(format!("{}.cleaned", name(0, layout::LOG))),
            b"half",
        )
        .unwrap();
        // Base 10: committed, the index renames left to do.
        fs::write(dir.join(name(10, layout::LOG)), b"new").unwrap();
        fs::write(dir.join(name(10, layout::INDEX)), b"old index").unwrap();
        fs::write(
            dir.join(format!("{}.cleaned", name(10, layout::INDEX))),
            b"new index",
        )
        .unwrap();
        let state = read_disk_state(tmp.path()).unwrap();
        let p = &state.partitions[0];
        assert_eq!(p.segments.len(), 2);
        assert_eq!(bytes(&p.segments[0].views.log), b"old");
        assert_eq!(bytes(&p.segments[1].views.index), b"new index");
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".cleaned"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn reads_disk_state() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::write(root.join(".kafka_cleanshutdown"), b"").unwrap();
        fs::write(
            root.join("recovery-point-offset-checkpoint"),
            b"0\n1\nt 0 5\n",
        )
        .unwrap();
        fs::write(root.join("not-a-root-file"), b"x").unwrap();
        let p = root.join("t-0");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("partition.metadata"), b"version: 0\n").unwrap();
        fs::write(p.join(segment_file_name(0, "log")), b"first").unwrap();
        fs::write(p.join(segment_file_name(0, "index")), [0u8; 8]).unwrap();
        fs::write(p.join(segment_file_name(0, "timeindex")), b"").unwrap();
        // No index files at all for this one.
        fs::write(p.join(segment_file_name(7, "log")), b"second").unwrap();
        fs::write(p.join("junk.log"), b"ignored").unwrap();
        fs::create_dir(root.join("empty-0")).unwrap();

        let s = read_disk_state(root).unwrap();
        let mut roots: Vec<_> = s.root_files.iter().map(|(n, _)| n.as_str()).collect();
        roots.sort_unstable();
        assert_eq!(
            roots,
            [".kafka_cleanshutdown", "recovery-point-offset-checkpoint"]
        );
        let dirs: Vec<_> = s.partitions.iter().map(|p| p.dir.as_str()).collect();
        assert_eq!(dirs, ["empty-0", "t-0"]);
        assert!(s.partitions[0].segments.is_empty());
        assert!(s.partitions[0].metadata.is_none());
        let t = &s.partitions[1];
        assert_eq!(t.metadata.as_deref(), Some(&b"version: 0\n"[..]));
        assert_eq!(t.segments.len(), 2);
        assert_eq!(t.segments[0].base_offset, 0);
        assert_eq!(bytes(&t.segments[0].views.log), b"first");
        assert_eq!(bytes(&t.segments[0].views.index), [0u8; 8]);
        assert!(bytes(&t.segments[0].views.timeindex).is_empty());
        assert_eq!(t.segments[1].base_offset, 7);
        assert_eq!(bytes(&t.segments[1].views.log), b"second");
        assert!(bytes(&t.segments[1].views.index).is_empty());
    }

    #[test]
    fn prepare_creates_locks_and_reports() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let lock = prepare(&dir).unwrap();
        let again = prepare(&dir).unwrap_err();
        assert!(again.to_string().contains("in use"), "{again}");
        drop(lock);
        drop(prepare(&dir).unwrap());

        // A data directory under a regular file cannot be created.
        let file = tmp.path().join("file");
        fs::write(&file, b"").unwrap();
        let e = prepare(&file.join("data")).unwrap_err();
        assert!(e.to_string().contains("data directory"), "{e}");
    }
}
