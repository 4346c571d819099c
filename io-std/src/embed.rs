//! The pieces a custom driver needs to run the core on real files and
//! sockets without any of this crate's runtimes: the data directory's lock,
//! the sequential segment writer's system calls, and the sendfile fetcher.
//! `examples/custom_server.rs` drives a broker with them in a loop of its
//! own.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use conveyor_core::{Command, Done, Part};

use crate::storage::segment::{DiskExec, SegTable};
use crate::storage::send::{SendCursor, Stats};

/// Create the data directory if needed, check it is writable and lock it
/// against a second broker. The lock lasts until the file is dropped.
pub fn lock_data_dir(dir: &Path) -> io::Result<File> {
    crate::storage::disk::prepare(dir)
}

/// Executes the core's file commands on a data directory, and writes its
/// `Send`s to sockets, file regions with `sendfile(2)`.
#[derive(Debug)]
pub struct Files {
    exec: DiskExec,
    segs: Arc<SegTable>,
    stats: Arc<Stats>,
}

impl Files {
    /// File commands on `data_dir` (locked with [`lock_data_dir`] first).
    pub fn new(data_dir: PathBuf) -> Files {
        let segs = Arc::new(SegTable::default());
        Files {
            exec: DiskExec::new(data_dir, Arc::clone(&segs)),
            segs,
            stats: Arc::default(),
        }
    }

    /// Run one file command (not `Send` or `Close`) and answer it. Never
    /// panics: a failure is an error in the [`Done`]. Blocks on the disk
    /// (fsync): keep it off an event loop's thread.
    pub fn execute(&self, cmd: Command) -> Done {
        self.exec.execute(cmd)
    }

    /// Write a `Send`'s parts to a blocking socket, in order.
    pub fn send(&self, sock: impl AsFd, parts: Vec<Part>) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        self.stats.send_calls.fetch_add(1, Ordering::Relaxed);
        SendCursor::new(parts).advance(sock, &self.segs, &self.stats)
    }

    /// Counters of the sends so far.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }
}
