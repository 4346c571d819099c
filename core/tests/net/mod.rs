//! A simulated network of broker cores for the tests that run several in
//! one process (`peers_sim.rs`, `quorum_sim.rs`): connections are TCP's
//! (bytes in order, once, after a seeded delay per send, lost when the
//! connection is cut), disks are [`SimDisk`]s whose commands finish in
//! order after a seeded delay, and time is simulated, moving from one
//! event to the next. Nodes can be paused (a stopped process), crashed (a
//! power loss: unfinished writes lost) and restarted, or split from
//! others. After every event the quorum's invariants are checked on every
//! node that has one: one leader per term, commit indexes never going back
//! while a node runs, the same records applied up to the same index.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use conveyor_core::cluster::QuorumStatus;
use conveyor_core::sim::SimDisk;
use conveyor_core::{Broker, Command, Config, ConnId, Done, Instant, IoError, Now, Part, Poll};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::rng::Rng;

pub struct Node {
    pub broker: Broker,
    pub config: Config,
    pub disk: SimDisk,
    /// File commands not yet done, with when each finishes, in order.
    pub disk_queue: VecDeque<(Instant, Command)>,
    pub addr: String,
    pub paused: bool,
    /// Crashed and not yet restarted: unreachable, runs nothing.
    pub down: bool,
    /// The broker's last `Wait` deadline.
    pub wait: Option<Instant>,
}

/// Bytes in flight on one direction of a connection, oldest first.
type Flight = VecDeque<(Instant, BytesMut)>;

pub struct Net {
    pub rng: Rng,
    pub trace: bool,
    pub now: Now,
    pub nodes: Vec<Node>,
    /// Each open connection's other end: (node, conn) → (node, conn).
    pub links: HashMap<(usize, ConnId), (usize, ConnId)>,
    /// What each sending end has in flight.
    pub flights: BTreeMap<(usize, u64), Flight>,
    /// Pairs of nodes that cannot reach each other.
    pub split: HashSet<(usize, usize)>,
    pub max_delay_ms: u64,
    pub max_disk_ms: u64,
    pub next_inbound: u64,
    /// Checks: the leader of each term, each voter's last commit index,
    /// the digest of the log applied to each index.
    pub leaders: HashMap<u64, i32>,
    pub committed: Vec<u64>,
    pub digests: HashMap<u64, u64>,
    pub events: u64,
    /// Client connections into a node, with the bytes it sent back.
    pub clients: HashMap<(usize, ConnId), BytesMut>,
    /// Bytes a node's broker left unread on a connection (its read
    /// interest was off), as a driver keeps them: handed over, before
    /// anything that arrives after, when it asks to read again.
    pub unread: HashMap<(usize, ConnId), BytesMut>,
    pub next_corr: i32,
}

impl Node {
    fn start(config: Config, addr: String, disk: SimDisk, now: Now) -> Node {
        Node {
            broker: Broker::new(config.clone(), now, disk.disk_state()),
            config,
            disk,
            disk_queue: VecDeque::new(),
            addr,
            paused: false,
            down: false,
            wait: None,
        }
    }
}

impl Net {
    /// Brokers with these configurations, each reached at its own address
    /// in `controller.quorum.voters`; links delay bytes up to
    /// `max_delay_ms`, disks finish commands up to `max_disk_ms` late.
    pub fn new(seed: u64, configs: Vec<Config>, (max_delay_ms, max_disk_ms): (u64, u64)) -> Self {
        let now = Now::new(Instant::from_nanos(1), 1_700_000_000_000);
        let n = configs.len();
        let nodes = configs
            .into_iter()
            .map(|c| {
                let addr = c
                    .quorum_voters
                    .iter()
                    .find(|(id, _)| *id == c.node_id)
                    .map(|(_, a)| a.clone())
                    .expect("each node is a voter");
                Node::start(c, addr, SimDisk::default(), now)
            })
            .collect();
        let mut net = Net {
            rng: Rng::new(seed),
            trace: std::env::var_os("CONVEYOR_SIM_NET_TRACE").is_some(),
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
            clients: HashMap::new(),
            unread: HashMap::new(),
            next_corr: 1,
        };
        net.run();
        net
    }

    /// Another broker joins, at `addr`.
    pub fn add(&mut self, config: Config, addr: &str) {
        let node = Node::start(config, addr.to_owned(), SimDisk::default(), self.now);
        self.nodes.push(node);
        self.committed.push(0);
        self.drain();
    }

    /// Run what is due now, until the brokers wait.
    pub fn run(&mut self) {
        self.run_until(self.now.mono);
    }

    /// Let `d` pass, running everything due on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now.mono.saturating_add(d);
        self.run_until(end);
    }

    pub fn apart(&self, i: usize, j: usize) -> bool {
        self.split.contains(&(i.min(j), i.max(j)))
    }

    /// Run every unpaused broker until it waits.
    pub fn drain(&mut self) {
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
                        Poll::ReadInterest { conn, read: true } => {
                            if let Some(mut buf) = self.unread.remove(&(i, conn)) {
                                idle = false;
                                self.read(i, conn, &mut buf);
                            }
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

    pub fn execute(&mut self, i: usize, cmd: Command) {
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
                        Part::File { seg, pos, len } => {
                            let disk = &self.nodes[i].disk;
                            let path = disk.log_path(seg).expect("a sent segment is open");
                            let file = disk.file(&path).expect("a sent segment exists");
                            bytes.extend_from_slice(&file[pos as usize..(pos + len) as usize]);
                        }
                    }
                }
                if let Some(out) = self.clients.get_mut(&(i, conn)) {
                    out.extend_from_slice(&bytes);
                } else if self.links.contains_key(&(i, conn)) {
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
                if self.clients.remove(&(i, conn)).is_some() {
                    self.nodes[i].broker.handle_close(now, conn);
                    return;
                }
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
    pub fn finish_disk(&mut self) {
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
    pub fn crash(&mut self, i: usize) {
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
        self.unread.retain(|(n, _), _| *n != i);
        let node = &mut self.nodes[i];
        node.disk_queue.clear();
        node.disk.crash();
        node.down = true;
        node.paused = false;
        node.wait = None;
    }

    /// Node `i` starts again from what its disk kept.
    pub fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.broker = Broker::new(node.config.clone(), self.now, node.disk.disk_state());
        node.down = false;
        self.committed[i] = 0;
        self.drain();
    }

    /// A connection ends: both ends hear it closed (a paused end when it
    /// resumes: it is closed under it), bytes in flight are lost.
    pub fn cut(&mut self, i: usize, conn: ConnId) {
        let now = self.now;
        self.flights.remove(&(i, conn.0));
        self.unread.remove(&(i, conn));
        if let Some((j, other)) = self.links.remove(&(i, conn)) {
            self.unread.remove(&(j, other));
            self.links.remove(&(j, other));
            self.flights.remove(&(j, other.0));
            self.nodes[j].broker.handle_close(now, other);
        }
        self.nodes[i].broker.handle_close(now, conn);
    }

    /// Node `i` can reach no other node (its clients still reach it) until
    /// [`Net::heal`].
    pub fn isolate(&mut self, i: usize) {
        for j in 0..self.nodes.len() {
            if j != i {
                self.separate(i, j);
            }
        }
    }

    /// Nodes `i` and `j` cannot reach each other until [`Net::heal`].
    pub fn separate(&mut self, i: usize, j: usize) {
        self.split.insert((i.min(j), i.max(j)));
        self.cut_between(i, j);
        self.cut_between(j, i);
    }

    /// Every connection between `i` and `j`.
    pub fn cut_between(&mut self, i: usize, j: usize) {
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
    pub fn run_until(&mut self, end: Instant) {
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

    pub fn advance_to(&mut self, t: Instant) {
        if t > self.now.mono {
            let d = Duration::from_nanos(t.as_nanos() - self.now.mono.as_nanos());
            self.now = self.now.advance(d);
        }
    }

    pub fn deliver(&mut self) {
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
                self.read(j, other, &mut bytes);
                // The connection may have closed under the read.
                if !self.links.contains_key(&(i, ConnId(c))) {
                    break;
                }
            }
        }
    }

    pub fn status(&self, i: usize) -> QuorumStatus {
        self.nodes[i]
            .broker
            .quorum()
            .expect("every node is a voter")
    }

    pub fn check(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].down {
                continue;
            }
            // A node outside a quorum has nothing to check.
            let Some(s) = self.nodes[i].broker.quorum() else {
                continue;
            };
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

    pub fn pause(&mut self, i: usize, paused: bool) {
        if self.nodes[i].down {
            return;
        }
        self.nodes[i].paused = paused;
        if !paused {
            // It wakes to whatever time it is.
            self.nodes[i].broker.handle_timeout(self.now);
        }
    }

    pub fn heal(&mut self) {
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

    /// A client connects to node `i`.
    pub fn client(&mut self, i: usize) -> ConnId {
        let conn = ConnId(self.next_inbound);
        self.next_inbound += 1;
        self.clients.insert((i, conn), BytesMut::new());
        self.nodes[i].broker.handle_open(self.now, conn);
        self.drain();
        conn
    }

    /// Send a request from a client of node `i` and run until its answer
    /// comes, for at most `within`; the answer, or `None` when none came
    /// (or the connection was closed).
    pub fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        (i, conn): (usize, ConnId),
        (key, version): (ApiKey, i16),
        body: &Req,
        within: Duration,
    ) -> Option<Resp> {
        let corr = self.send((i, conn), (key, version), body);
        self.answer((i, conn), (key, version), corr, within)
    }

    /// Send a request from a client of node `i` without waiting: its
    /// correlation id, for [`Net::answer`]. Answers come in order.
    pub fn send<Req: Encodable>(
        &mut self,
        (i, conn): (usize, ConnId),
        (key, version): (ApiKey, i16),
        body: &Req,
    ) -> i32 {
        let corr = self.next_corr;
        self.next_corr += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("sim-client")));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header
            .encode(&mut frame, key.request_header_version(version))
            .unwrap();
        body.encode(&mut frame, version).unwrap();
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.read(i, conn, &mut frame);
        corr
    }

    /// Hand `bytes` that arrived on `conn` to node `i`, behind any it left
    /// unread; keep what it leaves.
    fn read(&mut self, i: usize, conn: ConnId, bytes: &mut BytesMut) {
        if let Some(held) = self.unread.get_mut(&(i, conn)) {
            held.extend_from_slice(bytes);
            return;
        }
        self.nodes[i].broker.handle_read(self.now, conn, bytes);
        if !bytes.is_empty() {
            self.unread.insert((i, conn), bytes.split());
        }
    }

    /// Run until the answer to request `corr` comes, for at most `within`.
    pub fn answer<Resp: Decodable>(
        &mut self,
        (i, conn): (usize, ConnId),
        (key, version): (ApiKey, i16),
        corr: i32,
        within: Duration,
    ) -> Option<Resp> {
        let end = self.now.mono.saturating_add(within);
        loop {
            self.drain();
            let out = self.clients.get_mut(&(i, conn))?;
            if out.len() >= 4 {
                let len = i32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
                if out.len() >= 4 + len {
                    let mut frame = out.split_to(4 + len).freeze();
                    frame.advance(4);
                    let header =
                        ResponseHeader::decode(&mut frame, key.response_header_version(version))
                            .unwrap();
                    assert_eq!(header.correlation_id, corr, "answers come in order");
                    return Some(Resp::decode(&mut frame, version).unwrap());
                }
            }
            if self.now.mono >= end {
                return None;
            }
            let step = self
                .now
                .mono
                .saturating_add(Duration::from_millis(10))
                .min(end);
            self.run_until(step);
        }
    }
}

pub fn voters(n: usize) -> String {
    (0..n)
        .map(|i| format!("{i}@10.0.0.{}:9093", i + 1))
        .collect::<Vec<_>>()
        .join(",")
}

/// `n` voters at 10.0.0.1–n, advertising port 9092, with `settings`.
pub fn quorum_net(seed: u64, n: usize, delays: (u64, u64), settings: &[(&str, &str)]) -> Net {
    let configs = (0..n)
        .map(|i| {
            let mut c = Config::default();
            c.set("node.id", &i.to_string()).unwrap();
            c.set("controller.quorum.voters", &voters(n)).unwrap();
            for (k, v) in settings {
                c.set(k, v).unwrap();
            }
            c.advertised_host = format!("10.0.0.{}", i + 1);
            c.advertised_port = 9092;
            c
        })
        .collect();
    Net::new(seed, configs, delays)
}

impl Net {
    /// A run of faults for `span`, then healing.
    pub fn faults(&mut self, span: Duration) {
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
}
