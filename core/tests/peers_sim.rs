//! Connections the broker opens: brokers that name each other in
//! `controller.quorum.voters`, wired by a simulated network, connect, make
//! the ApiVersions exchange, and reconnect with backoff when a peer is down
//! or a connection ends.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::BytesMut;
use conveyor_core::sim::SimDisk;
use conveyor_core::{Broker, Command, Config, ConnId, Done, IoError, Now, Part, Poll};

struct Node {
    broker: Broker,
    disk: SimDisk,
    addr: String,
}

/// Brokers and the connections between them.
struct Net {
    nodes: Vec<Node>,
    /// Each open connection's other end: (node, conn) → (node, conn).
    links: HashMap<(usize, ConnId), (usize, ConnId)>,
    /// Addresses that refuse connections.
    down: HashSet<String>,
    now: Now,
    next_inbound: u64,
}

fn config(id: i32, voters: &str) -> Config {
    let mut c = Config::default();
    c.set("node.id", &id.to_string()).unwrap();
    c.set("controller.quorum.voters", voters).unwrap();
    c
}

impl Net {
    fn new(configs: Vec<Config>) -> Self {
        let now = Now::new(conveyor_core::Instant::from_nanos(1), 1_700_000_000_000);
        let nodes = configs
            .into_iter()
            .map(|c| {
                let addr = c
                    .quorum_voters
                    .iter()
                    .find(|(id, _)| *id == c.node_id)
                    .map(|(_, a)| a.clone())
                    .expect("each node is a voter");
                let disk = SimDisk::default();
                Node {
                    broker: Broker::new(c, now, disk.disk_state()),
                    disk,
                    addr,
                }
            })
            .collect();
        let mut net = Net {
            nodes,
            links: HashMap::new(),
            down: HashSet::new(),
            now,
            next_inbound: 1,
        };
        net.run();
        net
    }

    /// Drain every broker, delivering what they send, until all wait.
    fn run(&mut self) {
        for _ in 0..10_000 {
            let mut idle = true;
            for i in 0..self.nodes.len() {
                while let Some(cmd) = self.next_command(i) {
                    idle = false;
                    self.execute(i, cmd);
                }
            }
            if idle {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    fn next_command(&mut self, i: usize) -> Option<Command> {
        loop {
            match self.nodes[i].broker.poll() {
                Poll::Wait(_) => return None,
                // Every connection here is read at once.
                Poll::ReadInterest { .. } => {}
                Poll::Command(cmd) => return Some(cmd),
            }
        }
    }

    fn execute(&mut self, i: usize, cmd: Command) {
        let now = self.now;
        let done = match cmd {
            Command::Connect { io, conn, addr } => {
                let target = self.nodes.iter().position(|n| n.addr == addr);
                match target.filter(|_| !self.down.contains(&addr)) {
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
                            message: format!("{addr} refused"),
                        }),
                    },
                }
            }
            Command::Send { io, conn, parts } => {
                let mut bytes = BytesMut::new();
                for part in parts {
                    match part {
                        Part::Bytes(b) => bytes.extend_from_slice(&b),
                        Part::File { .. } => panic!("peers exchange no file regions here"),
                    }
                }
                if let Some(&(j, other)) = self.links.get(&(i, conn)) {
                    self.nodes[j].broker.handle_read(now, other, &mut bytes);
                }
                Done::ok(io)
            }
            Command::Close { io, conn } => {
                self.nodes[i].broker.handle_done(now, Done::ok(io));
                self.cut(i, conn);
                return;
            }
            other => self.nodes[i].disk.execute(&other),
        };
        self.nodes[i].broker.handle_done(now, done);
    }

    /// A connection ends: both brokers hear it closed.
    fn cut(&mut self, i: usize, conn: ConnId) {
        let now = self.now;
        if let Some((j, other)) = self.links.remove(&(i, conn)) {
            self.links.remove(&(j, other));
            self.nodes[j].broker.handle_close(now, other);
        }
        self.nodes[i].broker.handle_close(now, conn);
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.advance(d);
        for n in &mut self.nodes {
            n.broker.handle_timeout(self.now);
        }
        self.run();
    }
}

const VOTERS: &str = "1@10.0.0.1:9093,2@10.0.0.2:9093";

#[test]
fn two_brokers_connect_and_exchange_api_versions() {
    let net = Net::new(vec![config(1, VOTERS), config(2, VOTERS)]);
    for (n, other) in [(0, 2), (1, 1)] {
        let peers = net.nodes[n].broker.peers();
        assert_eq!(peers.len(), 1, "only the other voter is a peer");
        let p = &peers[0];
        assert_eq!(p.node_id, other);
        assert!(p.ready, "{p:?}");
        assert!(
            p.api_versions.contains(&(18, 0, 3)),
            "the peer's own ApiVersions table: {:?}",
            p.api_versions
        );
        assert_eq!(p.failures, 0);
    }
}

#[test]
fn a_peer_that_is_down_is_tried_again_with_backoff_until_it_answers() {
    let mut net = Net::new(vec![config(1, VOTERS)]);
    // Node 2 is not there at all: every connect is refused.
    let peer = |net: &Net| net.nodes[0].broker.peers()[0].clone();
    assert_eq!(peer(&net).failures, 1);
    net.advance(Duration::from_millis(49));
    assert_eq!(peer(&net).failures, 1, "the first retry waits 50 ms");
    net.advance(Duration::from_millis(1));
    assert_eq!(peer(&net).failures, 2);
    net.advance(Duration::from_millis(100));
    assert_eq!(peer(&net).failures, 3, "then 100 ms");
    for _ in 0..20 {
        net.advance(Duration::from_millis(1000));
    }
    let capped = peer(&net).failures;
    assert!(
        (20..=24).contains(&capped),
        "at most one a second: {capped}"
    );

    // Node 2 comes up; within a backoff the peer is ready.
    let disk = SimDisk::default();
    net.nodes.push(Node {
        broker: Broker::new(config(2, VOTERS), net.now, disk.disk_state()),
        disk,
        addr: "10.0.0.2:9093".into(),
    });
    net.run();
    net.advance(Duration::from_millis(1000));
    let p = peer(&net);
    assert!(p.ready, "{p:?}");
    assert_eq!(p.failures, 0);
}

#[test]
fn a_connection_that_ends_is_opened_again() {
    let mut net = Net::new(vec![config(1, VOTERS), config(2, VOTERS)]);
    let (&(i, conn), _) = net
        .links
        .iter()
        .find(|((i, c), _)| *i == 0 && c.is_outbound())
        .expect("node 1's connection to node 2");
    net.cut(i, conn);
    net.run();
    assert!(!net.nodes[0].broker.peers()[0].ready);
    net.advance(Duration::from_millis(50));
    assert!(net.nodes[0].broker.peers()[0].ready);
}

#[test]
fn a_bad_answer_closes_the_connection_and_it_is_opened_again() {
    let mut net = Net::new(vec![config(1, VOTERS), config(2, VOTERS)]);
    let conn = *net
        .links
        .keys()
        .find(|(i, c)| *i == 0 && c.is_outbound())
        .map(|(_, c)| c)
        .expect("node 1's connection to node 2");
    // An answer to no request: the broker closes the connection.
    let now = net.now;
    let mut garbage = BytesMut::from(&[0u8, 0, 0, 4, 0, 0, 0, 9][..]);
    net.nodes[0].broker.handle_read(now, conn, &mut garbage);
    net.run();
    assert!(!net.links.contains_key(&(0, conn)), "closed");
    assert!(!net.nodes[0].broker.peers()[0].ready);
    net.advance(Duration::from_millis(50));
    assert!(net.nodes[0].broker.peers()[0].ready);
}

#[test]
fn a_broker_without_voters_opens_no_connections() {
    let mut c = Config::default();
    c.set("controller.quorum.voters", "").unwrap();
    let disk = SimDisk::default();
    let mut b = Broker::new(c, Now::default(), disk.disk_state());
    assert!(b.peers().is_empty());
    while let Poll::Command(cmd) = b.poll() {
        assert!(!matches!(cmd, Command::Connect { .. }), "{cmd:?}");
    }
}

#[test]
fn voters_are_checked() {
    let mut c = Config::default();
    for bad in ["1@", "x@h:1", "1@h", "1@h:port", "1@h:1,1@g:2", "-1@h:1"] {
        let e = c.set("controller.quorum.voters", bad).unwrap_err();
        assert_eq!(e.key, "controller.quorum.voters", "{bad}");
    }
    c.set("controller.quorum.voters", "1@a:1, 2@[::1]:2")
        .unwrap();
    assert_eq!(
        c.quorum_voters,
        vec![(1, "a:1".into()), (2, "[::1]:2".into())]
    );
}
