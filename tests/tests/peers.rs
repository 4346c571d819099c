//! Connections the broker opens: two brokers on loopback, one naming the
//! other in `controller.quorum.voters`, on every runtime. The first connects
//! to the second, sends ApiVersions and reads the answer (it logs the peer
//! ready); with the peer down it keeps serving; both stop cleanly.
//!
//! Run: `cargo test -p conveyor-tests --test peers`.

use std::thread;
use std::time::{Duration, Instant};

use conveyor_tests::{ChildBroker, Runtime, each_runtime, loopback_voters};

const WAIT: Duration = Duration::from_secs(15);

/// Poll `broker`'s log until `pred` holds, at most [`WAIT`].
fn wait_for_log(broker: &ChildBroker, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = broker.log();
        if pred(&log) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not seen within {WAIT:?}; log:\n{log}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn ready_lines(log: &str) -> usize {
    log.lines().filter(|l| l.contains("peer ready")).count()
}

fn start_pair(rt: Runtime, peer_addr: &str) -> (ChildBroker, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a data directory");
    // This broker's own voter address is not dialled; the peer's is.
    let own = loopback_voters(1).0[0];
    let voters = format!("1@{own},2@{peer_addr}");
    let settings = [
        ("node.id", "1"),
        ("controller.quorum.voters", voters.as_str()),
    ];
    (ChildBroker::spawn(rt, dir.path(), &settings), dir)
}

each_runtime! {
    fn a_broker_connects_to_its_peer_and_exchanges_api_versions(rt) {
        let peer_dir = tempfile::tempdir().expect("a data directory");
        let peer = ChildBroker::spawn(rt, peer_dir.path(), &[("node.id", "2")]);
        let (broker, _dir) = start_pair(rt, &peer.bootstrap());
        let log = wait_for_log(&broker, "peer ready", |l| ready_lines(l) >= 1);
        let line = log.lines().find(|l| l.contains("peer ready")).unwrap_or_default();
        assert!(line.contains("peer=2"), "{line}");
        assert!(broker.terminate().success(), "clean stop with a peer connection");
        assert!(peer.terminate().success());
    }
}

each_runtime! {
    fn a_broker_whose_peer_is_down_keeps_dialling_and_stops_cleanly(rt) {
        // Nothing listens on the peer's port: every connect is refused and
        // tried again after the backoff, while the broker serves clients.
        // The address is in this test's own part of 127.0.0.0/8, so no
        // broker started at the same moment can be listening there.
        let nobody = loopback_voters(1).0[0];
        let (broker, _dir) = start_pair(rt, &nobody.to_string());
        wait_for_log(&broker, "the unreachable peer", |l| l.contains("peer unreachable"));
        thread::sleep(Duration::from_millis(300));
        let log = broker.log();
        assert_eq!(ready_lines(&log), 0);
        let warned = log.lines().filter(|l| l.contains("peer unreachable")).count();
        assert_eq!(warned, 1, "warned once, not at every retry:\n{log}");
        let client = std::net::TcpStream::connect(broker.addr());
        assert!(client.is_ok(), "still accepting: {client:?}");
        drop(client);
        assert!(broker.terminate().success(), "stops while dialling");
    }
}
