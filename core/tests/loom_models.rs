//! Loom models of `conveyor_core::sync`: every interleaving (up to
//! `LOOM_MAX_PREEMPTIONS`) of each shared piece the adapters use, with the
//! property that matters asserted. Each piece also has a deliberately broken
//! variant (`broken_*`) that its model must catch: a model that cannot fail
//! proves nothing.
//!
//! ```text
//! RUSTFLAGS="--cfg conveyor_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p conveyor-core --release --test loom_models
//! ```
//!
//! Only the core is built under that cfg: its `std::sync` types become
//! loom's (core/src/sync/loom_shim.rs).
#![cfg(conveyor_loom)]

use std::process::Command;
use std::time::Duration;

use conveyor_core::sync::{Deadline, Gate, PinTable, SyncHandoff};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

/// A deliberately broken variant: `$name` runs `$model` in a child test
/// process (loom's deadlock report aborts the process while unwinding, so
/// `#[should_panic]` cannot catch it) and expects it to fail with
/// `$expected` in its output; `${name}_child` is that child, ignored in a
/// normal run.
macro_rules! broken {
    ($name:ident, $model:expr, $expected:literal) => {
        mod $name {
            use super::*;

            #[test]
            #[ignore = "a broken variant, run in a child process by its parent test"]
            fn child() {
                $model;
            }

            #[test]
            fn is_caught() {
                expect_child_failure(concat!(stringify!($name), "::child"), $expected);
            }
        }
    };
}

/// Run the ignored test `name` of this binary in a child process; it must
/// fail, printing `expected`.
fn expect_child_failure(name: &str, expected: &str) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the test binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "loom did not catch the broken variant {name}:\n{text}"
    );
    assert!(
        text.contains(expected),
        "{name} failed, but not with {expected:?}:\n{text}"
    );
    // What loom printed, for the log of a `--nocapture` run.
    if let Some(line) = text.lines().find(|l| l.contains(expected)) {
        println!("{name}: loom caught it: {line}");
    }
}

// ---- Gate: no lost wake-up, and the opener's writes are visible ----------

/// Two rounds of the reader's pause: the waiter shuts the gate and waits,
/// the opener writes then opens; then again. Each wait must return, and
/// see the write made before the open it returned for.
fn gate_model(make: fn() -> Gate) {
    loom::model(move || {
        let gate = Arc::new(make());
        let data = Arc::new(AtomicUsize::new(0));
        let round = Arc::new(Gate::new(false));
        let opener = {
            let (gate, data, round) = (Arc::clone(&gate), Arc::clone(&data), Arc::clone(&round));
            thread::spawn(move || {
                data.store(1, Ordering::Relaxed);
                gate.open();
                // The second round starts once the waiter shut the gate.
                round.wait();
                data.store(2, Ordering::Relaxed);
                gate.open();
            })
        };
        // A lost wake-up leaves this thread parked forever: loom reports a
        // deadlock.
        gate.wait();
        assert!(
            data.load(Ordering::Relaxed) >= 1,
            "wait returned before the opener's writes were visible"
        );
        gate.shut();
        round.open();
        gate.wait();
        assert_eq!(
            data.load(Ordering::Relaxed),
            2,
            "wait returned before the opener's writes were visible"
        );
        opener.join().unwrap();
    });
}

#[test]
fn gate_never_loses_a_wake_up() {
    gate_model(|| Gate::new(false));
}

broken!(
    gate_broken_unlocked_notify,
    gate_model(|| Gate::broken_unlocked_notify(false)),
    "deadlock"
);

broken!(
    gate_broken_relaxed,
    gate_model(|| Gate::broken_relaxed(false)),
    "opener's writes"
);

// ---- Deadline: a nearer deadline published while the timer sleeps ---------

fn deadline_model(make: fn() -> Deadline<u64>) {
    loom::model(move || {
        let deadline = Arc::new(make());
        deadline.publish(Some(10));
        let publisher = {
            let deadline = Arc::clone(&deadline);
            thread::spawn(move || deadline.publish(Some(5)))
        };
        // The timer sleeps towards what it saw (loom treats the timeout as
        // no timeout) until it sees the nearer deadline: a missed update
        // leaves it parked forever.
        let mut seen = deadline.current();
        while seen.at != Some(5) {
            seen = deadline.wait(&seen, Some(Duration::from_secs(10)));
        }
        publisher.join().unwrap();
    });
}

#[test]
fn deadline_update_is_never_missed() {
    deadline_model(Deadline::new);
}

broken!(
    deadline_broken_park_without_check,
    deadline_model(Deadline::broken_park_without_check),
    "deadlock"
);

// ---- SyncHandoff: group commit --------------------------------------------

/// The writer writes up to `i`, then hands request `i` over; the worker's
/// "sync" is a read of how far the writes went when it started. A request
/// may be answered only by a sync that saw its write, and every request is
/// answered.
fn handoff_model(make: fn() -> SyncHandoff<u8, usize>) {
    loom::model(move || {
        let handoff = Arc::new(make());
        // What the writer has written, per key: a sync of a key covers the
        // requests handed over for it so far.
        let written = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        // Two workers, as several fsync threads serve one hand-off.
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (handoff, written) = (Arc::clone(&handoff), Arc::clone(&written));
                thread::spawn(move || {
                    let mut answered = Vec::new();
                    handoff.serve(
                        |key, _request| written[usize::from(*key)].load(Ordering::Acquire),
                        |key, request, synced| {
                            assert!(
                                request <= synced,
                                "request {request} of key {key} answered by a sync that covers only {synced}"
                            );
                            answered.push(request);
                        },
                    );
                    answered
                })
            })
            .collect();
        // Key 0 gets two requests in turn (the core keeps one Sync in
        // flight per segment, so the second follows the first's answer in
        // real use; here it may come at any time); key 1 gets one.
        written[0].store(1, Ordering::Release);
        handoff.hand(0, 1).unwrap();
        written[1].store(3, Ordering::Release);
        handoff.hand(1, 3).unwrap();
        written[0].store(2, Ordering::Release);
        handoff.hand(0, 2).unwrap();
        handoff.close();
        let mut answered: Vec<usize> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        answered.sort();
        assert_eq!(answered, [1, 2, 3], "a request was left unanswered");
    });
}

#[test]
fn handoff_answers_every_request_with_a_covering_sync() {
    handoff_model(SyncHandoff::new);
}

broken!(
    handoff_broken_reuse_last_sync,
    handoff_model(SyncHandoff::broken_reuse_last_sync),
    "answered by a sync that covers only"
);

broken!(
    handoff_broken_close_drops_pending,
    handoff_model(SyncHandoff::broken_close_drops_pending),
    "left unanswered"
);

// ---- PinTable: no removal while pinned -------------------------------------

/// The value is a segment's "files are deleted" flag; a sender checks it
/// while it holds a pin, the remover sets it once `remove` returns.
fn pins_model(make: fn() -> PinTable<u8, AtomicBool>) {
    loom::model(move || {
        let table = Arc::new(make());
        table.insert(1, AtomicBool::new(false));
        let senders: Vec<_> = (0..2)
            .map(|_| {
                let table = Arc::clone(&table);
                thread::spawn(move || {
                    if let Some(files) = table.pin(&1) {
                        assert!(
                            !files.load(Ordering::Relaxed),
                            "files removed while a send pinned them"
                        );
                    }
                })
            })
            .collect();
        if let Some(files) = table.remove(&1) {
            files.store(true, Ordering::Relaxed);
        }
        for sender in senders {
            sender.join().unwrap();
        }
        assert!(
            table.pin(&1).is_none(),
            "a removed value can still be pinned"
        );
    });
}

#[test]
fn pins_hold_off_removal() {
    pins_model(PinTable::new);
}

broken!(
    pins_broken_count_after_lookup,
    pins_model(PinTable::broken_count_after_lookup),
    "removed while a send pinned them"
);

broken!(
    pins_broken_remove_without_wait,
    pins_model(PinTable::broken_remove_without_wait),
    "removed while a send pinned them"
);
