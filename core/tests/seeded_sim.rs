//! The seeded whole-broker simulation; the simulator is in `seeded/`.
//!
//! `cargo test -p conveyor-core --test seeded_sim` runs the default seeds.
//! `CONVEYOR_SIM_SEEDS=N` runs N seeds (from `CONVEYOR_SIM_FIRST_SEED`,
//! default 0); `CONVEYOR_SIM_SEED=S` replays seed S alone. A failure names
//! its seed and step, and how to replay it.

mod seeded;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use seeded::{Options, Planted, Stats};

/// Enough seeds to cover the rarer events (power loss mid-recovery, a
/// fault on a sync, a clean restart) many times over, in a few seconds.
const DEFAULT_SEEDS: u64 = 1000;
/// Random events per seed.
const STEPS: usize = 250;
/// Seeds a planted bug must be caught within.
const PLANTED_SEEDS: u64 = 100;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

/// The default environment: no planted bug, no hole between segments after
/// a crash, no clean shutdown with a partition offline. The last two keep
/// the known broker bugs at the end of this file out of the default run.
const DEFAULT: Options = Options {
    planted: Planted::None,
    no_holes: true,
    clean_shutdown_when_offline: false,
};

/// One seed, a panic included in its failure.
fn run(seed: u64, opts: Options) -> Result<Stats, String> {
    let at = Cell::new(0);
    match catch_unwind(AssertUnwindSafe(|| {
        seeded::run_seed(seed, STEPS, opts, &at)
    })) {
        Ok(Ok(stats)) => Ok(stats),
        Ok(Err((step, message))) if step > STEPS => {
            Err(format!("seed {seed} failed in the final checks: {message}"))
        }
        Ok(Err((step, message))) => Err(format!("seed {seed} failed at step {step}: {message}")),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(format!(
                "seed {seed} panicked at step {}: {message}",
                at.get()
            ))
        }
    }
}

/// Run the seeds `CONVEYOR_SIM_SEED`, `CONVEYOR_SIM_FIRST_SEED` and
/// `CONVEYOR_SIM_SEEDS` name (`default` of them by default); panic at the
/// first failure, saying how to replay it.
fn run_seeds(opts: Options, default: u64, replay: &str) {
    let seeds: Vec<u64> = match env_u64("CONVEYOR_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("CONVEYOR_SIM_FIRST_SEED").unwrap_or(0);
            let n = env_u64("CONVEYOR_SIM_SEEDS").unwrap_or(default);
            (first..first + n).collect()
        }
    };
    let mut total = Stats::default();
    for &seed in &seeds {
        match run(seed, opts) {
            Ok(stats) => total.add(&stats),
            Err(message) => panic!(
                "{message}; replay with CONVEYOR_SIM_SEED={seed} cargo test -p conveyor-core \
                 --test seeded_sim {replay} (CONVEYOR_SIM_TRACE=1 prints every event)"
            ),
        }
    }
    eprintln!("{} seeds passed: {total:?}", seeds.len());
}

#[test]
fn seeded_simulation() {
    run_seeds(DEFAULT, DEFAULT_SEEDS, "seeded_simulation");
}

/// Run a planted bug over seeds until one fails; that seed and its message.
fn first_failure(planted: Planted) -> Option<(u64, String)> {
    let opts = Options { planted, ..DEFAULT };
    (0..PLANTED_SEEDS).find_map(|seed| run(seed, opts).err().map(|m| (seed, m)))
}

/// The simulator can fail: a disk that acknowledges fsync without making
/// data durable must be noticed as acknowledged records lost.
#[test]
fn planted_lost_syncs_are_caught() {
    let (seed, message) = first_failure(Planted::LostSyncs)
        .unwrap_or_else(|| panic!("no seed of {PLANTED_SEEDS} noticed syncs that lose data"));
    eprintln!("lost syncs caught by seed {seed}: {message}");
}

/// The simulator can fail: appends to one segment taking effect out of
/// order must be noticed.
#[test]
fn planted_swapped_appends_are_caught() {
    let (seed, message) = first_failure(Planted::SwappedAppends)
        .unwrap_or_else(|| panic!("no seed of {PLANTED_SEEDS} noticed appends out of order"));
    eprintln!("swapped appends caught by seed {seed}: {message}");
}

// ---- known broker bugs -------------------------------------------------
//
// The simulator found these in core/src/broker and core/src/log; they are
// not fixed here. The default run steers clear of what triggers them (see
// `DEFAULT`); each test below runs the environment that does, and fails
// until the bug is fixed. Run them with `-- --ignored`.

/// Seeds the known-bug tests run by default: enough to hit each bug.
const KNOWN_BUG_SEEDS: u64 = 300;

/// A hole between segments stops the recovery point for good. A crash can
/// keep a later segment while losing the tail of an earlier one: a power
/// loss after the new segment's file (or its synced data) is durable and
/// the old segment's tail is not (the follow-up Sync of the old segment is
/// issued only when its in-flight one returns, after the new segment's),
/// a killed process whose writer for the old segment lagged, or a failed
/// append followed by later writes. Recovery keeps both segments, leaving
/// offsets missing between them; `advance_recovery_point` stops at the
/// first segment whose base is past the recovery point, so it never moves
/// again, and every acks=-1 produce on a flush.messages=1 topic (which
/// waits for the recovery point) is never answered, nor is anything
/// behind it on its connection.
#[test]
#[ignore = "known broker bug: a hole between segments after a crash stops the recovery point; acks=-1 produces on flush.messages=1 topics hang"]
fn known_bug_hole_between_segments_stalls_durable_produce() {
    let opts = Options {
        no_holes: false,
        ..DEFAULT
    };
    run_seeds(
        opts,
        KNOWN_BUG_SEEDS,
        "known_bug_hole_between_segments_stalls_durable_produce -- --ignored",
    );
}

/// A clean shutdown writes the clean-shutdown marker even when a storage
/// error has taken a partition offline (before or during the shutdown),
/// so its last syncs failed or never ran. The next start trusts every
/// segment as synced (no scan, no Sync, recovery point at the log end), a
/// later clean shutdown checkpoints that, and a power loss then drops
/// records the broker served and acknowledged before the shutdown.
#[test]
#[ignore = "known broker bug: a clean shutdown with a partition offline still writes the clean-shutdown marker, so unsynced data is trusted as synced"]
fn known_bug_clean_shutdown_with_an_offline_partition() {
    let opts = Options {
        clean_shutdown_when_offline: true,
        ..DEFAULT
    };
    run_seeds(
        opts,
        KNOWN_BUG_SEEDS,
        "known_bug_clean_shutdown_with_an_offline_partition -- --ignored",
    );
}
