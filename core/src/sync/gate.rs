//! [`Gate`]: an open/shut flag a thread can wait on, that never loses a
//! wake-up.

use std::fmt;

use super::loom_shim::{AtomicBool, Condvar, Mutex, Ordering, lock, wait};

/// A flag one side opens and another side waits on.
///
/// The `threads` runtime gives each connection's reader thread a gate: when
/// the broker does not want the connection's bytes (`Poll::ReadInterest`), the
/// reader shuts its gate (under the broker's lock, as it registers itself
/// as paused) and waits on it outside that lock; whichever thread drives
/// the broker to want the bytes again opens it.
///
/// **Invariants.**
/// - *No lost wake-up*: an [`Gate::open`] that lands anywhere after the
///   waiter's last [`Gate::shut`] (including between the waiter's check and
///   its park) makes [`Gate::wait`] return.
/// - *Publication*: everything the opener did before `open` happens before
///   `wait` returns (Release on open, Acquire on every check).
///
/// How: `open` sets the flag, then takes and drops the lock before it
/// notifies. A waiter checks the flag under that lock and parks without
/// releasing it in between (a condition variable's wait), so a notify can
/// never fall between a waiter's check and its park.
pub struct Gate {
    open: AtomicBool,
    lock: Mutex<()>,
    cond: Condvar,
    #[cfg(conveyor_loom)]
    fault: Fault,
}

/// The deliberate bugs the loom models expect to be caught (only loom
/// builds can construct a gate with one).
#[cfg_attr(not(conveyor_loom), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// Open and the lock-free check use `Relaxed`: nothing the opener wrote
    /// is published to a waiter that takes the fast path.
    Relaxed,
    /// Open notifies without passing through the lock: a notify between a
    /// waiter's check and its park is lost.
    UnlockedNotify,
}

impl Gate {
    /// A gate, open or shut.
    pub fn new(open: bool) -> Gate {
        Gate {
            open: AtomicBool::new(open),
            lock: Mutex::new(()),
            cond: Condvar::new(),
            #[cfg(conveyor_loom)]
            fault: Fault::None,
        }
    }

    /// Broken on purpose (loom models only): `Relaxed` where `open` must
    /// release and `wait` must acquire.
    #[cfg(conveyor_loom)]
    pub fn broken_relaxed(open: bool) -> Gate {
        Gate {
            fault: Fault::Relaxed,
            ..Gate::new(open)
        }
    }

    /// Broken on purpose (loom models only): `open` notifies without the
    /// lock, so a wake-up between a waiter's check and its park is lost.
    #[cfg(conveyor_loom)]
    pub fn broken_unlocked_notify(open: bool) -> Gate {
        Gate {
            fault: Fault::UnlockedNotify,
            ..Gate::new(open)
        }
    }

    fn fault(&self) -> Fault {
        #[cfg(conveyor_loom)]
        return self.fault;
        #[cfg(not(conveyor_loom))]
        Fault::None
    }

    fn release(&self) -> Ordering {
        match self.fault() {
            Fault::Relaxed => Ordering::Relaxed,
            _ => Ordering::Release,
        }
    }

    fn acquire(&self) -> Ordering {
        match self.fault() {
            Fault::Relaxed => Ordering::Relaxed,
            _ => Ordering::Acquire,
        }
    }

    /// Open the gate and wake every thread waiting on it.
    pub fn open(&self) {
        self.open.store(true, self.release());
        if self.fault() != Fault::UnlockedNotify {
            // A waiter that saw the gate shut holds the lock until it parks:
            // passing through the lock means it is parked (and will be
            // notified) or has not checked yet (and will see the flag).
            drop(lock(&self.lock));
        }
        self.cond.notify_all();
    }

    /// Shut the gate: the next [`Gate::wait`] blocks until an `open`.
    pub fn shut(&self) {
        self.open.store(false, Ordering::Release);
    }

    /// Whether the gate is open.
    pub fn is_open(&self) -> bool {
        self.open.load(self.acquire())
    }

    /// Block until the gate is open (at once if it is).
    pub fn wait(&self) {
        if self.is_open() {
            return;
        }
        let mut guard = lock(&self.lock);
        while !self.is_open() {
            guard = wait(&self.cond, guard, None);
        }
    }
}

impl Default for Gate {
    /// A shut gate.
    fn default() -> Gate {
        Gate::new(false)
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("open", &self.is_open())
            .finish_non_exhaustive()
    }
}
