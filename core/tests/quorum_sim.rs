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
//! `CONVEYOR_QUORUM_SEEDS=N` runs N seeds (default 300) from
//! `CONVEYOR_QUORUM_FIRST_SEED` (default 0); `CONVEYOR_QUORUM_SEED=S`
//! replays seed S alone, `CONVEYOR_QUORUM_TRACE=1` printing each fault.
//!
//! Run: `cargo test -p conveyor-core --test quorum_sim`.

// The seeded simulator's generator; this test uses only part of it.
#[allow(dead_code)]
#[path = "seeded/rng.rs"]
mod rng;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use bytes::BytesMut;
use conveyor_core::cluster::QuorumStatus;
use conveyor_core::sim::SimDisk;
use conveyor_core::{Broker, Command, Config, ConnId, Done, Instant, IoError, Now, Part, Poll};
use rng::Rng;

const ELECTION: Duration = Duration::from_millis(1_000);

struct Node {
    broker: Broker,
    config: Config,
    disk: SimDisk,
    /// File commands not yet done, with when each finishes, in order.
    disk_queue: VecDeque<(Instant, Command)>,
    addr: String,
    paused: bool,
    /// Crashed and not yet restarted: unreachable, runs nothing.
    down: bool,
    /// The broker's last `Wait` deadline.
    wait: Option<Instant>,
}

/// Bytes in flight on one direction of a connection, oldest first.
type Flight = VecDeque<(Instant, BytesMut)>;

struct Net {
    rng: Rng,
    trace: bool,
    now: Now,
    nodes: Vec<Node>,
    /// Each open connection's other end: (node, conn) → (node, conn).
    links: HashMap<(usize, ConnId), (usize, ConnId)>,
    /// What each sending end has in flight.
    flights: BTreeMap<(usize, u64), Flight>,
    /// Pairs of nodes that cannot reach each other.
    split: HashSet<(usize, usize)>,
    max_delay_ms: u64,
    max_disk_ms: u64,
    next_inbound: u64,
    /// Checks: the leader of each term, each voter's last commit index,
    /// the digest of the log applied to each index.
    leaders: HashMap<u64, i32>,
    committed: Vec<u64>,
    digests: HashMap<u64, u64>,
    events: u64,
}

fn voters(n: usize) -> String {
    (0..n)
        .map(|i| format!("{i}@10.0.0.{}:9093", i + 1))
        .collect::<Vec<_>>()
        .join(",")
}

impl Net {
    fn new(
        seed: u64,
        n: usize,
        (max_delay_ms, max_disk_ms): (u64, u64),
        settings: &[(&str, &str)],
    ) -> Self {
        let now = Now::new(Instant::from_nanos(1), 1_700_000_000_000);
        let nodes = (0..n)
            .map(|i| {
                let mut c = Config::default();
                c.set("node.id", &i.to_string()).unwrap();
                c.set("controller.quorum.voters", &voters(n)).unwrap();
                for (k, v) in settings {
                    c.set(k, v).unwrap();
                }
                c.advertised_host = format!("10.0.0.{}", i + 1);
                c.advertised_port = 9092;
                let disk = SimDisk::default();
                Node {
                    broker: Broker::new(c.clone(), now, disk.disk_state()),
                    config: c,
                    disk,
                    disk_queue: VecDeque::new(),
                    addr: format!("10.0.0.{}:9093", i + 1),
                    paused: false,
                    down: false,
                    wait: None,
                }
            })
            .collect();
        let mut net = Net {
            rng: Rng::new(seed),
            trace: std::env::var_os("CONVEYOR_QUORUM_TRACE").is_some(),
            now,
            nodes,
            links: HashMap::new(),
            flights: BTreeMap::new(),
            split: HashSet::new(),
            max_delay_ms,
            max_disk_ms,
            next_inbound: 1,
            leaders: HashMap::new(),
            committed: vec![0; n],
            digests: HashMap::new(),
            events: 0,
        };
        net.drain();
        net
    }

    fn apart(&self, i: usize, j: usize) -> bool {
        self.split.contains(&(i.min(j), i.max(j)))
    }

    /// Run every unpaused broker until it waits.
    fn drain(&mut self) {
        for _ in 0..100_000 {
            let mut idle = true;
            for i in 0..self.nodes.len() {
                if self.nodes[i].paused || self.nodes[i].down {
                    continue;
                }
                loop {
                    match self.nodes[i].broker.poll() {
                        Poll::Wait(d) => {
                            self.nodes[i].wait = d;
                            break;
                        }
                        Poll::ReadInterest { .. } => {}
                        Poll::Command(cmd) => {
                            idle = false;
                            self.execute(i, cmd);
                        }
                    }
                }
            }
            if idle {
                return;
            }
        }
        panic!("the brokers never went quiet");
    }

    fn execute(&mut self, i: usize, cmd: Command) {
        let now = self.now;
        let done = match cmd {
            Command::Connect { io, conn, addr } => {
                let target = self.nodes.iter().position(|n| n.addr == addr);
                let reachable = |j: usize| !self.nodes[j].down && !self.apart(i, j);
                match target.filter(|&j| reachable(j)) {
                    Some(j) => {
                        let inbound = ConnId(self.next_inbound);
                        self.next_inbound += 1;
                        self.links.insert((i, conn), (j, inbound));
                        self.links.insert((j, inbound), (i, conn));
                        self.nodes[j].broker.handle_open(now, inbound);
                        Done::ok(io)
                    }
                    None => Done {
                        io,
                        result: Err(IoError {
                            kind: std::io::ErrorKind::ConnectionRefused,
                            message: format!("{addr} unreachable"),
                        }),
                    },
                }
            }
            Command::Send { io, conn, parts } => {
                let mut bytes = BytesMut::new();
                for part in parts {
                    match part {
                        Part::Bytes(b) => bytes.extend_from_slice(&b),
                        Part::File { .. } => panic!("the quorum sends no file regions"),
                    }
                }
                if self.links.contains_key(&(i, conn)) {
                    let delay = Duration::from_millis(self.rng.below(self.max_delay_ms + 1));
                    let flight = self.flights.entry((i, conn.0)).or_default();
                    // In order: never before what was sent earlier.
                    let at = flight
                        .back()
                        .map_or(now.mono, |(t, _)| *t)
                        .max(now.mono.saturating_add(delay));
                    flight.push_back((at, bytes));
                }
                Done::ok(io)
            }
            Command::Close { io, conn } => {
                self.nodes[i].broker.handle_done(now, Done::ok(io));
                self.cut(i, conn);
                return;
            }
            other => {
                // Done after the disk's delay, after what was queued before.
                let delay = Duration::from_millis(self.rng.below(self.max_disk_ms + 1));
                let q = &mut self.nodes[i].disk_queue;
                let at = q
                    .back()
                    .map_or(now.mono, |(t, _)| *t)
                    .max(now.mono.saturating_add(delay));
                q.push_back((at, other));
                return;
            }
        };
        self.nodes[i].broker.handle_done(now, done);
    }

    /// Finish the file commands that are due on running nodes.
    fn finish_disk(&mut self) {
        let now = self.now;
        for n in &mut self.nodes {
            if n.paused || n.down {
                continue;
            }
            while n.disk_queue.front().is_some_and(|(at, _)| *at <= now.mono) {
                let (_, cmd) = n.disk_queue.pop_front().unwrap();
                let done = n.disk.execute(&cmd);
                n.broker.handle_done(now, done);
            }
        }
    }

    /// The machine of node `i` loses power: connections end, file commands
    /// not done are lost, the disk keeps what was synced.
    fn crash(&mut self, i: usize) {
        let mut ends: Vec<(usize, ConnId)> = self
            .links
            .keys()
            .filter(|(n, _)| *n == i)
            .copied()
            .collect();
        ends.sort_by_key(|(n, c)| (*n, c.0));
        let now = self.now;
        for (n, c) in ends {
            self.flights.remove(&(n, c.0));
            if let Some((j, other)) = self.links.remove(&(n, c)) {
                self.links.remove(&(j, other));
                self.flights.remove(&(j, other.0));
                self.nodes[j].broker.handle_close(now, other);
            }
        }
        let node = &mut self.nodes[i];
        node.disk_queue.clear();
        node.disk.crash();
        node.down = true;
        node.paused = false;
        node.wait = None;
    }

    /// Node `i` starts again from what its disk kept.
    fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.broker = Broker::new(node.config.clone(), self.now, node.disk.disk_state());
        node.down = false;
        self.committed[i] = 0;
        self.drain();
    }

    /// A connection ends: both ends hear it closed (a paused end when it
    /// resumes: it is closed under it), bytes in flight are lost.
    fn cut(&mut self, i: usize, conn: ConnId) {
        let now = self.now;
        self.flights.remove(&(i, conn.0));
        if let Some((j, other)) = self.links.remove(&(i, conn)) {
            self.links.remove(&(j, other));
            self.flights.remove(&(j, other.0));
            self.nodes[j].broker.handle_close(now, other);
        }
        self.nodes[i].broker.handle_close(now, conn);
    }

    /// Every connection between `i` and `j`.
    fn cut_between(&mut self, i: usize, j: usize) {
        let mut ends: Vec<(usize, ConnId)> = self
            .links
            .iter()
            .filter(|((a, _), (b, _))| *a == i && *b == j)
            .map(|(k, _)| *k)
            .collect();
        ends.sort_by_key(|(n, c)| (*n, c.0));
        for (n, c) in ends {
            self.cut(n, c);
        }
    }

    /// Run until `end`, event by event.
    fn run_until(&mut self, end: Instant) {
        loop {
            self.drain();
            let next_wake = self
                .nodes
                .iter()
                .filter(|n| !n.paused && !n.down)
                .flat_map(|n| [n.wait, n.disk_queue.front().map(|(t, _)| *t)])
                .flatten()
                .min();
            let next_bytes = self
                .flights
                .iter()
                .filter(|((i, c), _)| {
                    self.links
                        .get(&(*i, ConnId(*c)))
                        .is_some_and(|(j, _)| !self.nodes[*j].paused && !self.nodes[*j].down)
                })
                .filter_map(|(_, f)| f.front().map(|(t, _)| *t))
                .min();
            let next = [next_wake, next_bytes].into_iter().flatten().min();
            let Some(next) = next.filter(|t| *t <= end) else {
                self.advance_to(end);
                return;
            };
            self.advance_to(next);
            self.finish_disk();
            self.deliver();
            for i in 0..self.nodes.len() {
                let n = &mut self.nodes[i];
                if !n.paused && !n.down && n.wait.is_some_and(|w| w <= self.now.mono) {
                    n.wait = None;
                    n.broker.handle_timeout(self.now);
                }
            }
            self.drain();
            self.check();
        }
    }

    fn advance_to(&mut self, t: Instant) {
        if t > self.now.mono {
            let d = Duration::from_nanos(t.as_nanos() - self.now.mono.as_nanos());
            self.now = self.now.advance(d);
        }
    }

    fn deliver(&mut self) {
        let now = self.now.mono;
        let keys: Vec<(usize, u64)> = self.flights.keys().copied().collect();
        for (i, c) in keys {
            let Some(&(j, other)) = self.links.get(&(i, ConnId(c))) else {
                continue;
            };
            if self.nodes[j].paused || self.nodes[j].down {
                continue;
            }
            while let Some((at, _)) = self.flights.get(&(i, c)).and_then(|f| f.front()) {
                if *at > now {
                    break;
                }
                let (_, mut bytes) = self.flights.get_mut(&(i, c)).unwrap().pop_front().unwrap();
                self.events += 1;
                self.nodes[j]
                    .broker
                    .handle_read(self.now, other, &mut bytes);
                // The connection may have closed under the read.
                if !self.links.contains_key(&(i, ConnId(c))) {
                    break;
                }
            }
        }
    }

    fn status(&self, i: usize) -> QuorumStatus {
        self.nodes[i]
            .broker
            .quorum()
            .expect("every node is a voter")
    }

    fn check(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].down {
                continue;
            }
            let s = self.status(i);
            if s.role == "leader" {
                let first = *self.leaders.entry(s.term).or_insert(s.node_id);
                assert_eq!(first, s.node_id, "two leaders in term {}", s.term);
            }
            assert!(
                s.committed >= self.committed[i],
                "node {i}'s commit index went back from {} to {}",
                self.committed[i],
                s.committed
            );
            self.committed[i] = s.committed;
            let d = *self.digests.entry(s.applied).or_insert(s.applied_digest);
            assert_eq!(
                d, s.applied_digest,
                "node {i} applied other records up to index {}",
                s.applied
            );
        }
    }

    fn pause(&mut self, i: usize, paused: bool) {
        if self.nodes[i].down {
            return;
        }
        self.nodes[i].paused = paused;
        if !paused {
            // It wakes to whatever time it is.
            self.nodes[i].broker.handle_timeout(self.now);
        }
    }

    fn heal(&mut self) {
        self.split.clear();
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused {
                self.pause(i, false);
            }
            if self.nodes[i].down {
                self.restart(i);
            }
        }
    }

    /// A run of faults for `span`, then healing.
    fn faults(&mut self, span: Duration) {
        let end = self.now.mono.saturating_add(span);
        let n = self.nodes.len();
        while self.now.mono < end {
            let until = self
                .now
                .mono
                .saturating_add(Duration::from_millis(self.rng.range(200, 3_000)));
            match self.rng.below(5) {
                0 => {
                    let i = self.rng.index(n);
                    if self.trace {
                        eprintln!("{:?}: pause node {i}", self.now.mono);
                    }
                    self.pause(i, true);
                    self.run_until(until);
                    self.pause(i, false);
                }
                1 => {
                    // One side of up to half the voters.
                    let k = 1 + self.rng.index(n / 2);
                    let mut side: Vec<usize> = (0..n).collect();
                    for x in 0..n {
                        let y = x + self.rng.index(n - x);
                        side.swap(x, y);
                    }
                    side.truncate(k);
                    if self.trace {
                        eprintln!("{:?}: split {side:?} off", self.now.mono);
                    }
                    for i in 0..n {
                        for j in i + 1..n {
                            if side.contains(&i) != side.contains(&j) {
                                self.split.insert((i, j));
                                self.cut_between(i, j);
                                self.cut_between(j, i);
                            }
                        }
                    }
                    self.run_until(until);
                    self.split.clear();
                }
                2 => {
                    let mut ends: Vec<(usize, ConnId)> = self.links.keys().copied().collect();
                    ends.sort_by_key(|(n, c)| (*n, c.0));
                    if !ends.is_empty() {
                        let (i, c) = ends[self.rng.index(ends.len())];
                        if self.trace {
                            eprintln!("{:?}: cut node {i}'s {c:?}", self.now.mono);
                        }
                        self.cut(i, c);
                    }
                    self.run_until(until);
                }
                3 => {
                    let i = self.rng.index(n);
                    if self.trace {
                        eprintln!("{:?}: crash node {i}", self.now.mono);
                    }
                    self.crash(i);
                    self.run_until(until);
                    if self.trace {
                        eprintln!("{:?}: restart node {i}", self.now.mono);
                    }
                    self.restart(i);
                }
                _ => self.run_until(until),
            }
        }
        self.heal();
    }

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
    let mut net = Net::new(seed, n, (delay, disk), settings);
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
        let mut net = Net::new(
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

#[test]
fn a_broker_outside_a_quorum_refuses_raft_frames() {
    let mut disk = SimDisk::default();
    let now = Now::new(Instant::from_nanos(1), 1_700_000_000_000);
    let mut broker = Broker::new(Config::default(), now, disk.disk_state());
    assert!(broker.quorum().is_none());
    while let Poll::Command(cmd) = broker.poll() {
        let done = disk.execute(&cmd);
        broker.handle_done(now, done);
    }
    broker.handle_open(now, ConnId(1));
    let frame = conveyor_core::cluster::wire::encode_frame(3, 0, &[]);
    broker.handle_read(now, ConnId(1), &mut BytesMut::from(&frame[..]));
    let mut closed = false;
    for _ in 0..100 {
        match broker.poll() {
            Poll::Command(Command::Close { conn, .. }) => {
                assert_eq!(conn, ConnId(1));
                closed = true;
            }
            Poll::Command(_) | Poll::ReadInterest { .. } => {}
            Poll::Wait(_) => break,
        }
    }
    assert!(closed, "the connection is closed");
}
