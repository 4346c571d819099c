//! [`SyncHandoff`]: the group-commit hand-off from the sequential segment
//! writer to an fsync worker.

use std::collections::VecDeque;
use std::fmt;

use super::loom_shim::{Condvar, Mutex, lock, wait};

/// Sync requests handed from the sequential segment writer to the fsync
/// workers.
///
/// Group commit is decided once, in the core: it keeps at most one `Sync`
/// in flight per segment, and that one covers every `Append` issued before
/// it, however many requests those appends answer. So nothing is batched
/// here: the hand-off is a queue in hand-over order, and each request gets
/// a sync of its own. What is chosen here is how many syncs run at once:
/// one per worker thread calling [`SyncHandoff::serve`]. `fdatasync`s of
/// different files proceed in parallel on the disk, so syncs of different
/// partitions need not wait for each other (measured on the development
/// machine: 2,400 fdatasyncs/s of 64 KiB appends to eight files from one
/// thread, 8,200/s from four).
///
/// The segment writer runs a segment's commands in issue order; on reaching
/// a `Sync` every earlier `Append` of the segment is written, so it hands
/// the request over ([`SyncHandoff::hand`]) and goes on with later commands
/// instead of waiting for the disk. A worker takes the oldest request,
/// syncs, and answers it.
///
/// **Invariants.**
/// - *Covered*: a request is answered only by a sync that started after
///   it was handed over (the request is taken before its sync starts), so
///   the sync covers every write its writer made before handing it.
/// - *None left waiting*: every request handed over before
///   [`SyncHandoff::close`] is answered before every `serve` returns; a
///   request handed after it is given back to the caller.
pub struct SyncHandoff<K, T> {
    state: Mutex<State<K, T>>,
    cond: Condvar,
    #[cfg(conveyor_loom)]
    fault: Fault,
}

struct State<K, T> {
    pending: VecDeque<(K, T)>,
    closed: bool,
}

/// The deliberate bugs the loom models expect to be caught.
#[cfg_attr(not(conveyor_loom), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// A request for a key answered by the worker's previous sync of that
    /// key, which started before the request was handed over.
    ReuseLastSync,
    /// The worker stops at `close` without serving what is pending.
    CloseDropsPending,
}

impl<K: Clone + PartialEq, T> SyncHandoff<K, T> {
    /// An open hand-off with nothing pending.
    pub fn new() -> SyncHandoff<K, T> {
        SyncHandoff {
            state: Mutex::new(State {
                pending: VecDeque::new(),
                closed: false,
            }),
            cond: Condvar::new(),
            #[cfg(conveyor_loom)]
            fault: Fault::None,
        }
    }

    /// Broken on purpose (loom models only): a worker answers a request
    /// with its previous sync of the same key.
    #[cfg(conveyor_loom)]
    pub fn broken_reuse_last_sync() -> SyncHandoff<K, T> {
        SyncHandoff {
            fault: Fault::ReuseLastSync,
            ..SyncHandoff::new()
        }
    }

    /// Broken on purpose (loom models only): the worker stops at `close`
    /// and leaves pending requests unanswered.
    #[cfg(conveyor_loom)]
    pub fn broken_close_drops_pending() -> SyncHandoff<K, T> {
        SyncHandoff {
            fault: Fault::CloseDropsPending,
            ..SyncHandoff::new()
        }
    }

    fn fault(&self) -> Fault {
        #[cfg(conveyor_loom)]
        return self.fault;
        #[cfg(not(conveyor_loom))]
        Fault::None
    }

    /// Hand a sync request for `key` to the worker. Call it only once every
    /// write the request must cover is done. After [`SyncHandoff::close`]
    /// the request is given back (`Err`), for the caller to answer.
    pub fn hand(&self, key: K, request: T) -> Result<(), T> {
        let mut st = lock(&self.state);
        if st.closed {
            return Err(request);
        }
        st.pending.push_back((key, request));
        drop(st);
        self.cond.notify_one();
        Ok(())
    }

    /// No more requests: [`SyncHandoff::serve`] returns once it has
    /// answered what is pending.
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.cond.notify_all();
    }

    /// The number of requests waiting for a worker.
    pub fn pending(&self) -> usize {
        lock(&self.state).pending.len()
    }

    /// A worker's loop: wait for a request, `sync` for it, `answer` it
    /// with the sync's result; return once closed and drained. Several
    /// workers may serve one hand-off.
    pub fn serve<R: Clone>(
        &self,
        mut sync: impl FnMut(&K, &T) -> R,
        mut answer: impl FnMut(K, T, R),
    ) {
        let mut last: Option<(K, R)> = None;
        // The request is taken before its sync starts: it was handed over
        // before, and so is covered.
        while let Some((key, request)) = self.take() {
            if self.fault() == Fault::ReuseLastSync {
                if let Some((k, r)) = &last {
                    if *k == key {
                        // Broken on purpose: an earlier sync of the same
                        // key answers a request handed over after it.
                        let r = r.clone();
                        answer(key, request, r);
                        continue;
                    }
                }
            }
            let r = sync(&key, &request);
            last = Some((key.clone(), r.clone()));
            answer(key, request, r);
        }
    }

    /// The oldest pending request, waiting for one; `None` once closed and
    /// drained.
    fn take(&self) -> Option<(K, T)> {
        let mut st = lock(&self.state);
        loop {
            if st.closed && self.fault() == Fault::CloseDropsPending {
                return None;
            }
            if let Some(next) = st.pending.pop_front() {
                return Some(next);
            }
            if st.closed {
                return None;
            }
            st = wait(&self.cond, st, None);
        }
    }
}

impl<K: Clone + PartialEq, T> Default for SyncHandoff<K, T> {
    fn default() -> SyncHandoff<K, T> {
        SyncHandoff::new()
    }
}

impl<K, T> fmt::Debug for SyncHandoff<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.state);
        f.debug_struct("SyncHandoff")
            .field("pending", &st.pending.len())
            .field("closed", &st.closed)
            .finish_non_exhaustive()
    }
}
