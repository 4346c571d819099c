//! [`SyncHandoff`]: the group-commit hand-off from the sequential segment
//! writer to an fsync worker.

use std::collections::VecDeque;
use std::fmt;

use super::loom_shim::{Condvar, Mutex, lock, wait};

/// Sync requests handed from the sequential segment writer to an fsync
/// worker, which serves them in groups: one sync per key (segment) covers
/// every request for that key handed over before the sync started.
///
/// The segment writer runs a segment's commands in issue order; on reaching
/// a `Sync` every earlier `Append` of the segment is written, so it hands
/// the request over ([`SyncHandoff::hand`]) and goes on with later
/// commands instead of waiting for the disk. The worker
/// ([`SyncHandoff::serve`]) takes *all* pending requests for the oldest
/// pending key, syncs once, and answers each of them.
///
/// **Invariants.**
/// - *Covered*: a request is answered only by a sync that started after
///   it was handed over (the batch is taken before the sync starts), so
///   the sync covers every write its writer made before handing it.
/// - *None left waiting*: every request handed over before
///   [`SyncHandoff::close`] is answered before `serve` returns; a request
///   handed after it is given back to the caller.
/// - Requests for one key are answered in the order they were handed.
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
    /// The worker starts the sync, then takes the batch: requests handed
    /// over during the sync are answered by a sync that does not cover
    /// them.
    SyncBeforeTake,
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

    /// Broken on purpose (loom models only): the worker syncs first and
    /// takes its batch afterwards.
    #[cfg(conveyor_loom)]
    pub fn broken_sync_before_take() -> SyncHandoff<K, T> {
        SyncHandoff {
            fault: Fault::SyncBeforeTake,
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

    /// The worker's loop: wait for requests, take every pending one for the
    /// oldest pending key, `sync` once for the batch, `answer` the batch
    /// with the sync's result; return once closed and drained.
    pub fn serve<R>(
        &self,
        mut sync: impl FnMut(&K, &[T]) -> R,
        mut answer: impl FnMut(K, Vec<T>, R),
    ) {
        while let Some(key) = self.next_key() {
            if self.fault() == Fault::SyncBeforeTake {
                let r = sync(&key, &[]);
                let batch = self.take(&key);
                answer(key, batch, r);
                continue;
            }
            // The batch is fixed before the sync starts: every request in
            // it was handed over before, and so is covered.
            let batch = self.take(&key);
            let r = sync(&key, &batch);
            answer(key, batch, r);
        }
    }

    /// The oldest pending key, waiting for one; `None` once closed and
    /// drained.
    fn next_key(&self) -> Option<K> {
        let mut st = lock(&self.state);
        loop {
            if let Some((key, _)) = st.pending.front() {
                if st.closed && self.fault() == Fault::CloseDropsPending {
                    return None;
                }
                return Some(key.clone());
            }
            if st.closed {
                return None;
            }
            st = wait(&self.cond, st, None);
        }
    }

    /// Take every pending request for `key`, in the order handed.
    fn take(&self, key: &K) -> Vec<T> {
        let mut st = lock(&self.state);
        let mut batch = Vec::new();
        let mut rest = VecDeque::with_capacity(st.pending.len());
        for (k, t) in st.pending.drain(..) {
            if k == *key {
                batch.push(t);
            } else {
                rest.push_back((k, t));
            }
        }
        st.pending = rest;
        batch
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
