//! The metadata quorum across three `conveyor serve` processes on
//! loopback, on every runtime: they elect a leader over their peer
//! connections, the leader's DescribeQuorum (read with `conveyor cluster
//! quorum`) shows every voter caught up; `kill -9` of the leader leaves
//! the other two to elect a new one; the killed voter restarts from its
//! `quorum-state` file and catches up again. Election timeouts are Kafka's defaults (1 s).
//!
//! Run: `cargo test -p conveyor-tests --test quorum`.

use std::net::SocketAddr;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use conveyor_tests::{ChildBroker, Runtime, conveyor_bin, each_runtime, loopback_voters};
use serde_json::Value;

/// How long a new leader may take: several election timeouts, on a busy
/// machine.
const ELECT: Duration = Duration::from_secs(20);

/// `conveyor cluster quorum` against `addr`, as JSON; `None` while it fails.
fn quorum(addr: SocketAddr) -> Option<Value> {
    let out = Command::new(conveyor_bin())
        .args(["cluster", "quorum", "--format", "json", "--timeout", "2s"])
        .arg("--bootstrap-server")
        .arg(addr.to_string())
        .output()
        .expect("run conveyor cluster quorum");
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Ask `addrs` until one answers with a leader whose DescribeQuorum shows
/// `want` voters all caught up (lag 0), for at most [`ELECT`]; the leader's
/// id and epoch.
fn caught_up(addrs: &[SocketAddr], want: usize, logs: impl Fn() -> String) -> (i64, i64) {
    let deadline = Instant::now() + ELECT;
    let mut last = None;
    loop {
        for &addr in addrs {
            let Some(q) = quorum(addr) else { continue };
            let voters = q["voters"].as_array().cloned().unwrap_or_default();
            let leader = q["leader"].as_i64();
            let all = voters.len() == want && voters.iter().all(|v| v["lag"] == 0);
            // Only the leader knows the log end offsets.
            if let (Some(l), true) = (leader, all) {
                return (l, q["epoch"].as_i64().unwrap_or(-1));
            }
            last = Some(q);
        }
        assert!(
            Instant::now() < deadline,
            "no leader with {want} voters caught up within {ELECT:?}; last answer {last:?}\n{}",
            logs()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

each_runtime! {
    fn three_voters_elect_a_leader_and_elect_another_when_it_dies(rt) {
        let (addrs, voters) = loopback_voters(3);
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let start = |i: usize| {
            let id = i.to_string();
            let settings = [
                ("node.id", id.as_str()),
                ("controller.quorum.voters", voters.as_str()),
            ];
            ChildBroker::spawn_on(rt, addrs[i], dirs[i].path(), &settings)
        };
        let mut brokers: Vec<Option<ChildBroker>> = (0..3).map(|i| Some(start(i))).collect();
        let logs = |brokers: &[Option<ChildBroker>]| {
            brokers
                .iter()
                .flatten()
                .map(ChildBroker::log)
                .collect::<Vec<_>>()
                .join("\n----\n")
        };

        let (leader, epoch) = caught_up(&addrs, 3, || logs(&brokers));
        let l = usize::try_from(leader).expect("a voter's id");
        assert!(l < 3, "leader {leader} is one of the voters");

        // The leader dies; the other two elect one of themselves.
        let _ = brokers[l].take().expect("running").kill9();
        let survivors: Vec<SocketAddr> =
            (0..3).filter(|&i| i != l).map(|i| addrs[i]).collect();
        let deadline = Instant::now() + ELECT;
        let (next, next_epoch) = loop {
            let found = survivors.iter().find_map(|&a| {
                let q = quorum(a)?;
                let id = q["leader"].as_i64()?;
                (id != leader).then(|| (id, q["epoch"].as_i64().unwrap_or(-1)))
            });
            if let Some(f) = found {
                break f;
            }
            assert!(
                Instant::now() < deadline,
                "no new leader within {ELECT:?}\n{}",
                logs(&brokers)
            );
            thread::sleep(Duration::from_millis(200));
        };
        assert_ne!(next, leader);
        assert!(next_epoch > epoch, "a new leader has a later epoch: {next_epoch} after {epoch}");

        // The dead voter comes back from its quorum-state file (term, vote,
        // log) and catches up with the new leader.
        assert!(
            dirs[l].path().join("quorum-state").is_file(),
            "the killed voter kept its quorum state"
        );
        brokers[l] = Some(start(l));
        let (after, _) = caught_up(&addrs, 3, || logs(&brokers));
        assert_ne!(after, -1);
        for b in brokers.into_iter().flatten() {
            assert!(b.terminate().success(), "clean stop");
        }
    }
}

#[test]
fn a_broker_without_a_quorum_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let b = ChildBroker::spawn(Runtime::Mio, dir.path(), &[]);
    let out = Command::new(conveyor_bin())
        .args(["cluster", "quorum", "--bootstrap-server"])
        .arg(b.bootstrap())
        .output()
        .expect("run conveyor cluster quorum");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without a metadata quorum"),
        "a clear error: {err}"
    );
    assert!(b.terminate().success());
}
