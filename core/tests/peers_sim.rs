//! Connections the broker opens: brokers that name each other in
//! `controller.quorum.voters`, wired by a simulated network, connect, make
//! the ApiVersions exchange, and reconnect with backoff when a peer is down
//! or a connection ends.

// The network is `net/mod.rs`'s, shared with quorum_sim.rs; this test
// uses part of it (and of the seeded generator it draws delays from).
#[allow(dead_code)]
mod net;
#[allow(dead_code)]
#[path = "seeded/rng.rs"]
mod rng;

use std::time::Duration;

use bytes::BytesMut;
use conveyor_core::sim::SimDisk;
use conveyor_core::{Broker, Command, Config, Now, Poll};
use net::Net;

fn config(id: i32, voters: &str) -> Config {
    let mut c = Config::default();
    c.set("node.id", &id.to_string()).unwrap();
    c.set("controller.quorum.voters", voters).unwrap();
    c
}

const VOTERS: &str = "1@10.0.0.1:9093,2@10.0.0.2:9093";

#[test]
fn two_brokers_connect_and_exchange_api_versions() {
    let net = Net::new(0, vec![config(1, VOTERS), config(2, VOTERS)], (0, 0));
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
    let mut net = Net::new(0, vec![config(1, VOTERS)], (0, 0));
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
    net.add(config(2, VOTERS), "10.0.0.2:9093");
    net.advance(Duration::from_millis(1000));
    let p = peer(&net);
    assert!(p.ready, "{p:?}");
    assert_eq!(p.failures, 0);
}

#[test]
fn a_connection_that_ends_is_opened_again() {
    let mut net = Net::new(0, vec![config(1, VOTERS), config(2, VOTERS)], (0, 0));
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
    let mut net = Net::new(0, vec![config(1, VOTERS), config(2, VOTERS)], (0, 0));
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
