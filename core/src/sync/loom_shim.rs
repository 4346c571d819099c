//! The synchronisation types every piece of [`crate::sync`] is built on:
//! `std`'s normally, `loom`'s under `cfg(conveyor_loom)`, so that one source
//! runs in the adapters and under the model checker (as tokio's `loom`
//! module does). Nothing else in `core::sync` names `std::sync` directly.

#[cfg(not(conveyor_loom))]
pub(crate) use std::sync::{
    Arc, Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, Ordering},
};

#[cfg(conveyor_loom)]
pub(crate) use loom::sync::{
    Arc, Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, Ordering},
};

use std::sync::PoisonError;
use std::time::Duration;

/// Lock `m`, ignoring poison: every piece keeps its state valid at each
/// unlock, so a panic elsewhere (a bug, reported there) leaves nothing
/// half-done behind the lock.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wait on `cond`, at most `timeout` (`None`: until notified). May return
/// early: callers re-check their condition. Under loom a timed wait is an
/// untimed one (loom does not model time), which only makes a model
/// stricter: a lost wake-up cannot hide behind a timeout.
pub(crate) fn wait<'a, T>(
    cond: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Option<Duration>,
) -> MutexGuard<'a, T> {
    match timeout {
        None => cond.wait(guard).unwrap_or_else(PoisonError::into_inner),
        Some(t) => match cond.wait_timeout(guard, t) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        },
    }
}
