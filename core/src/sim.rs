//! A simulated disk for tests and simulations: executes the core's file
//! commands on in-memory files that remember how much of them is synced, so
//! a crash (every file cut to its synced length) can be replayed.
//! (API fixed; bodies filled in by the log work.)

use crate::io::{Command, DiskState, Done};

/// In-memory files keyed by path relative to the data directory.
#[derive(Debug, Default)]
pub struct SimDisk {}

impl SimDisk {
    /// Execute one command. File commands change the files; `Send` and
    /// `Close` are answered `Ok` untouched (the caller handles sockets).
    pub fn execute(&mut self, cmd: &Command) -> Done {
        Done::ok(cmd.io())
    }

    /// Lose everything not synced: each file is cut to its synced length.
    pub fn crash(&mut self) {}

    /// What a driver would read off this disk at startup.
    pub fn disk_state(&self) -> DiskState {
        DiskState::default()
    }

    /// The bytes of a file, if it exists.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        let _ = path;
        None
    }
}
