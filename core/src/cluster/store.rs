//! The log raft-rs reads: entries and hard state in memory, loaded from
//! the `quorum-state` file at start ([`restore`]), with the image as the
//! snapshot it hands a voter behind the cut log.

use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use raft::prelude::{ConfState, Entry, Snapshot};
use raft::storage::{MemStorage, Storage};
use raft::{GetEntriesContext, RaftState};

use super::state::Stored;

/// The log raft-rs reads: entries and hard state in memory, and as its
/// snapshot the image at the commit index (which, applied at once, is the
/// applied index), so a voter behind the cut log gets the metadata itself.
pub(super) struct Store {
    pub(super) mem: MemStorage,
    /// The image and digest, encoded, as of the last apply.
    pub(super) image: Arc<RwLock<Bytes>>,
}

impl Storage for Store {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let mut snap = self.mem.snapshot(request_index, to)?;
        snap.data = self
            .image
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Ok(snap)
    }
}

/// Put the `quorum-state` file's snapshot, entries and hard state in the
/// in-memory store raft-rs reads.
pub(super) fn restore(mem: &MemStorage, stored: &Stored, conf: ConfState) -> raft::Result<()> {
    let mut core = mem.wl();
    if stored.snap_index > 0 {
        let mut snap = Snapshot::default();
        let meta = snap.mut_metadata();
        meta.index = stored.snap_index;
        meta.term = stored.snap_term;
        meta.set_conf_state(conf);
        snap.data = stored.image.clone();
        core.apply_snapshot(snap)?;
    }
    core.append(&stored.entries)?;
    let mut hs = stored.hard_state.clone();
    hs.commit = hs.commit.max(stored.snap_index);
    core.set_hardstate(hs);
    Ok(())
}
