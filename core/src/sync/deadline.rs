//! [`Deadline`]: the earliest deadline one thread publishes and a timer
//! thread sleeps towards, without missing an update.

use std::fmt;
use std::time::Duration;

use super::loom_shim::{Condvar, Mutex, lock, wait};

/// What a timer thread last saw of a [`Deadline`]: the deadline, the
/// version it had then, and whether the cell was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen<T> {
    /// The published deadline; `None` means none (sleep until a change).
    pub at: Option<T>,
    /// Bumped by every publish that changed the deadline.
    pub version: u64,
    /// The timer must stop.
    pub closed: bool,
}

/// A shared deadline cell: the thread that owns the broker publishes each
/// new `Wait` deadline; a timer thread waits on it and fires once it
/// passes. `T` is the caller's time type; the cell never reads a clock.
///
/// The `threads` runtime's timer thread sleeps on it; every drive of the
/// broker publishes the deadline `poll` returned.
///
/// **Invariant** (*no missed deadline*): a [`Deadline::wait`] given the
/// [`Seen`] it last read returns as soon as a deadline different from the
/// one it saw is published, including one published between its read and
/// its park: the version is compared under the same lock the publisher
/// takes, and the waiter parks without releasing it in between. So a nearer
/// deadline published while the timer sleeps towards a later one wakes it.
pub struct Deadline<T> {
    cell: Mutex<Seen<T>>,
    cond: Condvar,
    #[cfg(conveyor_loom)]
    fault: Fault,
}

/// The deliberate bug the loom model expects to be caught.
#[cfg_attr(not(conveyor_loom), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// `wait` parks without comparing versions first: a publish between the
    /// timer's read and its park is missed.
    ParkWithoutCheck,
}

impl<T: Copy + PartialEq> Deadline<T> {
    /// A cell with no deadline.
    pub fn new() -> Deadline<T> {
        Deadline {
            cell: Mutex::new(Seen {
                at: None,
                version: 0,
                closed: false,
            }),
            cond: Condvar::new(),
            #[cfg(conveyor_loom)]
            fault: Fault::None,
        }
    }

    /// Broken on purpose (loom models only): `wait` parks without checking
    /// whether the deadline changed since the caller read it.
    #[cfg(conveyor_loom)]
    pub fn broken_park_without_check() -> Deadline<T> {
        Deadline {
            fault: Fault::ParkWithoutCheck,
            ..Deadline::new()
        }
    }

    fn fault(&self) -> Fault {
        #[cfg(conveyor_loom)]
        return self.fault;
        #[cfg(not(conveyor_loom))]
        Fault::None
    }

    /// Publish the current deadline; wakes the timer if it changed.
    pub fn publish(&self, at: Option<T>) {
        let mut cell = lock(&self.cell);
        if cell.at != at {
            cell.at = at;
            cell.version += 1;
            drop(cell);
            self.cond.notify_all();
        }
    }

    /// Tell the timer to stop.
    pub fn close(&self) {
        let mut cell = lock(&self.cell);
        cell.closed = true;
        cell.version += 1;
        drop(cell);
        self.cond.notify_all();
    }

    /// The deadline now.
    pub fn current(&self) -> Seen<T> {
        *lock(&self.cell)
    }

    /// Wait until the deadline differs from `seen` (or the cell is closed),
    /// at most `timeout`, and return what it is then. May return early
    /// (after a timeout, or spuriously): the caller compares versions and
    /// reads its clock.
    pub fn wait(&self, seen: &Seen<T>, timeout: Option<Duration>) -> Seen<T> {
        let cell = lock(&self.cell);
        if cell.version != seen.version && self.fault() == Fault::None {
            return *cell;
        }
        *wait(&self.cond, cell, timeout)
    }
}

impl<T: Copy + PartialEq> Default for Deadline<T> {
    fn default() -> Deadline<T> {
        Deadline::new()
    }
}

impl<T: fmt::Debug + Copy> fmt::Debug for Deadline<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Deadline").field(&*lock(&self.cell)).finish()
    }
}
