//! The metadata quorum across three to five broker cores in one process,
//! over a simulated network, seeded: each seed picks the voter count, the
//! network's and disks' delays, and a run of faults — voters paused (as a
//! stopped process: it neither ticks nor reads, and what was sent to it
//! waits), voters crashed (the machine loses power: writes not yet done are
//! lost) and restarted later from what their disk kept, the voters split
//! into two sides that cannot reach each other, connections cut with bytes
//! in flight lost. Connections are TCP's: bytes on one arrive in order,
//! once, after the link's delay. File commands finish in order, each after
//! the disk's delay.
//!
//! After every event:
//! - at most one leader per term, across every voter and the whole run;
//! - no voter's commit index goes backwards while it runs;
//! - any two voters that applied the log to the same index applied the
//!   same records in the same order (a digest of every applied record).
//!
//! Once the faults heal, within ten election timeouts every voter knows
//! the same leader, has applied as far as it committed, and every voter's
//! image lists every broker registered at its own address.
//!
//! `CONVEYOR_QUORUM_SEEDS=N` runs N seeds (default 300, which keeps the
//! whole test suite's run short; 1,000 took 320 s in a debug build on two
//! cores) from
//! `CONVEYOR_QUORUM_FIRST_SEED` (default 0); `CONVEYOR_QUORUM_SEED=S`
//! replays seed S alone, `CONVEYOR_SIM_NET_TRACE=1` printing each fault.
//! The network, the disks and the checks are `net/mod.rs`'s.
//!
//! Run: `cargo test -p conveyor-core --test quorum_sim`.

// The seeded simulator's generator; this test uses only part of it.
#[allow(dead_code)]
#[path = "seeded/rng.rs"]
mod rng;
// The network, disks and checks; peers_sim.rs uses them too.
#[allow(dead_code)]
mod net;

use std::time::Duration;

use bytes::BytesMut;
use conveyor_core::cluster::QuorumStatus;
use conveyor_core::sim::SimDisk;
use conveyor_core::{Broker, Command, Config, ConnId, Instant, Now, Poll};
use net::Net;
use rng::Rng;

const ELECTION: Duration = Duration::from_millis(1_000);

use net::{quorum_net, voters};

impl Net {
    /// After healing: one leader all agree on, everything committed
    /// applied, every voter registered in every image.
    fn settles(&mut self) -> Result<(), String> {
        let deadline = self.now.mono.saturating_add(ELECTION * 10);
        loop {
            let step = self.now.mono.saturating_add(Duration::from_millis(100));
            self.run_until(step);
            let all: Vec<QuorumStatus> = (0..self.nodes.len()).map(|i| self.status(i)).collect();
            let leader = all[0].leader;
            let agreed = leader.is_some()
                && all
                    .iter()
                    .all(|s| s.leader == leader && s.applied == s.committed);
            let registered = all.iter().all(|s| {
                s.image.brokers.len() == self.nodes.len()
                    && s.image
                        .brokers
                        .iter()
                        .all(|(id, r)| r.endpoint == format!("10.0.0.{}:9092", id + 1))
            });
            if agreed && registered {
                return Ok(());
            }
            if self.now.mono >= deadline {
                return Err(format!("the quorum did not settle: {all:#?}"));
            }
        }
    }
}

/// What a seed did: deliveries, snapshots installed, log cuts seen.
#[derive(Default)]
struct Tally {
    deliveries: u64,
    snapshots: u64,
    cut: u64,
}

fn run_seed(seed: u64) -> Result<Tally, String> {
    run_seed_with(seed, false)
}

/// A seed's run; `forgetful`: every disk undoes its `quorum-state` writes
/// when it crashes (a planted bug).
fn run_seed_with(seed: u64, forgetful: bool) -> Result<Tally, String> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let n = 3 + rng.index(3);
    let delay = rng.range(0, 40);
    let disk = rng.range(0, 20);
    // Half the seeds append a NoOp every 50 ms and cut the log every 40
    // records, so a paused or cut-off voter comes back behind the cut and
    // catches up from a snapshot.
    let settings: &[(&str, &str)] = if rng.below(2) == 0 {
        &[
            ("metadata.max.idle.interval.ms", "50"),
            ("metadata.log.snapshot.interval.records", "40"),
        ]
    } else {
        &[]
    };
    let mut net = quorum_net(seed, n, (delay, disk), settings);
    if forgetful {
        for node in &mut net.nodes {
            node.disk.volatile_writes(true);
        }
    }
    let start = net.now.mono;
    net.run_until(start.saturating_add(ELECTION * 3));
    net.settles()?;
    net.faults(Duration::from_secs(12));
    net.settles()?;
    let all: Vec<QuorumStatus> = (0..n).map(|i| net.status(i)).collect();
    Ok(Tally {
        deliveries: net.events,
        snapshots: all.iter().map(|s| s.snapshots_installed).sum(),
        cut: all.iter().filter(|s| s.first_index > 1).count() as u64,
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn the_quorum_elects_one_leader_per_term_and_agrees_on_the_log_under_faults() {
    let seeds: Vec<u64> = match env_u64("CONVEYOR_QUORUM_SEED") {
        Some(s) => vec![s],
        None => {
            let first = env_u64("CONVEYOR_QUORUM_FIRST_SEED").unwrap_or(0);
            let n = env_u64("CONVEYOR_QUORUM_SEEDS").unwrap_or(300);
            (first..first + n).collect()
        }
    };
    let mut total = Tally::default();
    for &seed in &seeds {
        match std::panic::catch_unwind(|| run_seed(seed)) {
            Ok(Ok(t)) => {
                total.deliveries += t.deliveries;
                total.snapshots += t.snapshots;
                total.cut += t.cut;
            }
            Ok(Err(why)) => panic!(
                "seed {seed}: {why}\nreplay: CONVEYOR_QUORUM_SEED={seed} cargo test -p conveyor-core --test quorum_sim"
            ),
            Err(_) => panic!(
                "seed {seed} failed (above); replay: CONVEYOR_QUORUM_SEED={seed} cargo test -p conveyor-core --test quorum_sim"
            ),
        }
    }
    eprintln!(
        "{} seeds: {} deliveries, {} voters with a cut log, {} snapshots installed",
        seeds.len(),
        total.deliveries,
        total.cut,
        total.snapshots
    );
    if seeds.len() >= 100 {
        assert!(total.cut > 0, "no seed cut its log");
        assert!(total.snapshots > 0, "no voter caught up from a snapshot");
    }
}

/// The checks notice a voter that forgets its term, vote and log in a
/// crash: with disks that undo `quorum-state` writes when they crash, some
/// seed among the first few hundred elects two leaders in a term, applies
/// different records, or trips raft-rs's own checks.
#[test]
fn a_voter_that_forgets_its_state_is_caught() {
    let caught = (0..400).find(|&seed| {
        !matches!(
            std::panic::catch_unwind(|| run_seed_with(seed, true)),
            Ok(Ok(_))
        )
    });
    assert!(
        caught.is_some(),
        "400 seeds missed voters forgetting their votes"
    );
}

#[test]
fn a_seed_replays_exactly() {
    let run = |seed| {
        let mut rng = Rng::new(seed);
        let mut net = quorum_net(
            seed,
            3,
            (rng.range(1, 30), rng.range(0, 10)),
            &[("metadata.log.snapshot.interval.records", "40")],
        );
        net.faults(Duration::from_secs(6));
        net.settles().unwrap();
        let mut leaders: Vec<(u64, i32)> = net.leaders.iter().map(|(t, l)| (*t, *l)).collect();
        leaders.sort_unstable();
        (
            leaders,
            net.events,
            (0..3).map(|i| net.status(i)).collect::<Vec<_>>(),
        )
    };
    assert_eq!(run(42), run(42));
}

/// Whether `broker` closes a fresh connection given `bytes`.
fn closes(config: Config, bytes: &[u8]) -> bool {
    let mut disk = SimDisk::default();
    let now = Now::new(Instant::from_nanos(1), 1_700_000_000_000);
    let mut broker = Broker::new(config, now, disk.disk_state());
    loop {
        match broker.poll() {
            Poll::Command(Command::Connect { .. }) => {}
            Poll::Command(cmd) => {
                let done = disk.execute(&cmd);
                broker.handle_done(now, done);
            }
            Poll::ReadInterest { .. } => {}
            Poll::Wait(_) => break,
        }
    }
    broker.handle_open(now, ConnId(1));
    broker.handle_read(now, ConnId(1), &mut BytesMut::from(bytes));
    for _ in 0..100 {
        match broker.poll() {
            Poll::Command(Command::Close {
                conn: ConnId(1), ..
            }) => return true,
            Poll::Command(_) | Poll::ReadInterest { .. } => {}
            Poll::Wait(_) => return false,
        }
    }
    false
}

#[test]
fn a_broker_outside_a_quorum_drops_raft_frames_and_closes_on_malformed_ones() {
    let frame = conveyor_core::cluster::wire::encode_frame(3, 0, &[]);
    assert!(!closes(Config::default(), &frame), "dropped, not closed");
    let mut voter = Config::default();
    voter.set("controller.quorum.voters", &voters(3)).unwrap();
    assert!(
        !closes(voter.clone(), &frame),
        "an empty batch is well formed"
    );
    // A frame of the Raft key whose body claims a message it lacks.
    let mut bad = frame[..frame.len() - 4].to_vec();
    bad.extend_from_slice(&1u32.to_be_bytes());
    let len = (bad.len() - 4) as u32;
    bad[..4].copy_from_slice(&len.to_be_bytes());
    assert!(closes(voter, &bad), "malformed: closed");
}
