//! A seeded whole-broker simulator: the broker under simulated time, a
//! simulated disk that loses power, fails with EIO and ENOSPC, and
//! completes commands in any order the contract allows, and simulated
//! clients that pipeline, disconnect mid-request and check every answer.
//! A compacted topic keeps the log cleaner at work under all of it (its
//! jobs, cleaned segments and swaps scheduled like any command).
//! One seed decides everything, so a failure replays exactly.
//!
//! - `rng`: the seeded generator.
//! - `sched`: outstanding commands and the orders they may complete in.
//! - `wire`: requests, responses and record batches on the wire.
//! - `model`: what clients know about each partition; the invariants.
//! - `client`: connections, random requests, answers checked.
//! - `world`: the broker, disk, clients and clock, stepped at random.

mod client;
mod model;
mod rng;
mod sched;
mod wire;
mod world;

use std::cell::Cell;

pub use world::{Options, Planted, Stats};

/// Run one seed for `steps` random events and the final checks. The error
/// says which step failed and why; `at` follows the step being run, so a
/// panic can be placed too.
pub fn run_seed(
    seed: u64,
    steps: usize,
    opts: Options,
    at: &Cell<usize>,
) -> Result<Stats, (usize, String)> {
    at.set(0);
    let mut world = world::World::new(seed, opts).map_err(|e| (0, e))?;
    for step in 1..=steps {
        at.set(step);
        world.step().map_err(|e| (step, e))?;
    }
    at.set(steps + 1);
    world.finish().map_err(|e| (steps + 1, e))?;
    Ok(world.stats())
}
