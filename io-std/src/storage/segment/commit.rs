//! Group commit's fsync workers: the segment writer hands each `Sync` here
//! and goes on with later commands (see [`GroupCommit`]).

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use conveyor_core::sync::{Pin, SyncHandoff};
use conveyor_core::{Completion, Done, IoError, IoId, SegId};
use prometheus_client::metrics::histogram::Histogram;

use super::{SegTable, SegmentFiles};

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

/// Fsync workers when none are configured (`log.flush.threads`).
pub(crate) const DEFAULT_FLUSH_THREADS: usize = 4;

impl GroupCommit {
    pub(super) fn start(
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
    pub(super) fn hand(&self, io: IoId, seg: SegId, segs: &SegTable) -> Option<Done> {
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
