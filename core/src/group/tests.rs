//! Simulation tests of the coordinator under simulated time (the harness is
//! in `sim.rs`): joins, syncs, leaves, expiries, rebalances, persistence,
//! and every response at every version.

use bytes::Bytes;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::{DeleteGroupsRequest, GroupId, ListGroupsRequest, SyncGroupRequest};

use super::reply::code;
use super::sim::{J, Sim, encodes, later, now_join, s};
use super::*;

// --- scenarios ------------------------------------------------------------

#[test]
fn single_member_joins_syncs_and_heartbeats() {
    let mut sim = Sim::new();
    let (id, reply) = sim.join_new(&J::new("g", "rdkafka"));
    assert!(id.starts_with("rdkafka-"), "{id}");
    let t = later(reply);
    assert_eq!(sim.state("g"), Some(GroupState::PreparingRebalance));
    // The initial rebalance delay holds the first generation back.
    sim.advance(2_999);
    assert!(sim.take_join(t).is_none());
    sim.advance(1);
    let r = sim.take_join(t).expect("joined after the initial delay");
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader.as_str(), id);
    assert_eq!(r.member_id.as_str(), id);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, Bytes::from("meta-range"));
    assert_eq!(sim.state("g"), Some(GroupState::CompletingRebalance));

    let Reply::Now(sr) = sim.sync(3, "g", 1, &id, None, &[(&id, "mine")]) else {
        panic!("the leader's sync is answered at once")
    };
    assert_eq!(
        (sr.error_code, sr.assignment.clone()),
        (0, Bytes::from("mine"))
    );
    assert_eq!(sim.state("g"), Some(GroupState::Stable));
    let (name, snap) = sim
        .persisted
        .last()
        .cloned()
        .expect("the stable group is persisted");
    let snap = snap.expect("not a tombstone");
    assert_eq!(name, "g");
    assert_eq!(snap.generation, 1);
    assert_eq!(snap.protocol.as_deref(), Some("range"));
    assert_eq!(snap.members[0].assignment, Bytes::from("mine"));
    assert_eq!(snap.members[0].subscription, Bytes::from("meta-range"));

    // Heartbeats keep it alive well past its session timeout.
    for _ in 0..10 {
        sim.advance(5_000);
        assert_eq!(sim.heartbeat("g", 1, &id, None), 0);
    }
    assert_eq!(sim.state("g"), Some(GroupState::Stable));
}

#[test]
fn three_members_wait_out_the_initial_delay_and_followers_wait_for_the_leader() {
    let mut sim = Sim::new();
    let (a, ra) = sim.join_new(&J::new("g", "a").v(3));
    sim.advance(1_000);
    let (b, rb) = sim.join_new(&J::new("g", "b").v(3));
    sim.advance(1_000);
    let (c, rc) = sim.join_new(&J::new("g", "c").v(3));
    let (ta, tb, tc) = (later(ra), later(rb), later(rc));
    // Members kept arriving during the first 3 s: the delay is extended
    // once more (to 6 s), and nobody is answered before.
    sim.advance(1_000);
    assert!(sim.ready.is_empty());
    sim.advance(2_999);
    assert!(sim.ready.is_empty());
    sim.advance(1);
    let order: Vec<Ticket> = sim.ready.iter().map(Parked::ticket).collect();
    assert_eq!(order, [ta, tb, tc], "answered in join order");
    let (ja, jb, jc) = (
        sim.take_join(ta).unwrap(),
        sim.take_join(tb).unwrap(),
        sim.take_join(tc).unwrap(),
    );
    for r in [&ja, &jb, &jc] {
        assert_eq!((r.error_code, r.generation_id), (0, 1));
        assert_eq!(r.leader.as_str(), a);
    }
    let listed: Vec<&str> = ja.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(listed, [a.as_str(), b.as_str(), c.as_str()]);
    assert!(jb.members.is_empty() && jc.members.is_empty());

    let tb = later(sim.sync(3, "g", 1, &b, None, &[]));
    let tc = later(sim.sync(3, "g", 1, &c, None, &[]));
    sim.advance(500);
    assert!(sim.ready.is_empty(), "followers wait for the leader");
    // Heartbeats while waiting for the assignment are fine (Kafka 3.x).
    assert_eq!(sim.heartbeat("g", 1, &a, None), 0);
    let Reply::Now(sa) = sim.sync(3, "g", 1, &a, None, &[(&a, "A"), (&b, "B"), (&c, "C")]) else {
        panic!()
    };
    assert_eq!(sa.assignment, Bytes::from("A"));
    let order: Vec<Ticket> = sim.ready.iter().map(Parked::ticket).collect();
    assert_eq!(order, [tb, tc]);
    assert_eq!(sim.take_sync(tb).unwrap().assignment, Bytes::from("B"));
    assert_eq!(sim.take_sync(tc).unwrap().assignment, Bytes::from("C"));
    assert_eq!(sim.state("g"), Some(GroupState::Stable));
}

#[test]
fn the_initial_delay_is_capped_by_the_rebalance_timeout() {
    let mut sim = Sim::new();
    let mut tickets = Vec::new();
    // A member arrives every second for 20 s; the rebalance timeout is 8 s.
    for i in 0..20 {
        let j = J::new("g", &format!("c{i}")).v(3).rebalance(8_000);
        tickets.push(later(sim.join_new(&j).1));
        sim.advance(1_000);
        if !sim.ready.is_empty() {
            break;
        }
    }
    // 3 s initial delay, then extensions until the 8 s are used up.
    assert_eq!(
        sim.ready.len(),
        8,
        "joined at 8 s with the 8 members so far"
    );
}

#[test]
fn a_leaving_member_triggers_a_rebalance() {
    let mut sim = Sim::new();
    let (ids, generation) = sim.stable_group("g", 3);
    let resp = sim.leave(3, "g", &[(&ids[1], None)]);
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.members[0].error_code, 0);
    assert_eq!(sim.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        sim.heartbeat("g", generation, &ids[0], None),
        code::REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        sim.heartbeat("g", generation, &ids[1], None),
        code::UNKNOWN_MEMBER_ID
    );
    let t0 = later(sim.join(&J::new("g", "c0").member(&ids[0])));
    // The last member to rejoin completes the join phase at once.
    let r2 = now_join(sim.join(&J::new("g", "c2").member(&ids[2])));
    let r0 = sim.take_join(t0).expect("answered with the last rejoin");
    assert_eq!(r0.generation_id, generation + 1);
    assert_eq!(r2.generation_id, generation + 1);
    assert_eq!(r0.members.len(), 2);
    assert_eq!(r0.leader.as_str(), ids[0]);
    // The old generation is refused.
    assert_eq!(
        sim.heartbeat("g", generation, &ids[2], None),
        code::ILLEGAL_GENERATION
    );
}

#[test]
fn leave_group_v0_names_one_member_and_reports_its_error_at_the_top() {
    let mut sim = Sim::new();
    let (ids, _) = sim.stable_group("g", 2);
    let resp = sim.leave(0, "g", &[("nobody", None)]);
    assert_eq!(resp.error_code, code::UNKNOWN_MEMBER_ID);
    assert!(resp.members.is_empty());
    let resp = sim.leave(1, "g", &[(&ids[1], None)]);
    assert_eq!(resp.error_code, 0);
    assert_eq!(sim.state("g"), Some(GroupState::PreparingRebalance));
    let resp = sim.leave(2, "unknown", &[(&ids[0], None)]);
    assert_eq!(resp.error_code, code::UNKNOWN_MEMBER_ID);
}

#[test]
fn the_last_member_leaving_empties_the_group_and_persists_it() {
    let mut sim = Sim::new();
    let (ids, generation) = sim.stable_group("g", 1);
    let resp = sim.leave(4, "g", &[(&ids[0], None)]);
    assert_eq!(resp.members[0].error_code, 0);
    assert_eq!(sim.state("g"), Some(GroupState::Empty));
    let (_, snap) = sim.persisted.last().cloned().unwrap();
    let snap = snap.unwrap();
    assert_eq!(snap.generation, generation + 1);
    assert!(snap.members.is_empty());
    assert_eq!(snap.protocol, None);
    assert_eq!(snap.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(sim.c.next_deadline(), None, "nothing left to time");
}

#[test]
fn session_expiry_removes_a_member_and_triggers_a_rebalance() {
    let mut sim = Sim::new();
    let (ids, generation) = sim.stable_group("g", 2);
    // Member 0 heartbeats every 3 s; member 1 went silent.
    for _ in 0..3 {
        sim.advance(3_000);
        assert_eq!(sim.heartbeat("g", generation, &ids[0], None), 0);
    }
    sim.advance(1_000); // 10 s since member 1's last sign of life
    assert_eq!(sim.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        sim.heartbeat("g", generation, &ids[0], None),
        code::REBALANCE_IN_PROGRESS
    );
    let r = now_join(sim.join(&J::new("g", "c0").member(&ids[0])));
    assert_eq!(r.generation_id, generation + 1);
    let members: Vec<&str> = r.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(members, [ids[0].as_str()]);
    assert_eq!(
        sim.heartbeat("g", generation, &ids[1], None),
        code::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn members_that_do_not_rejoin_within_the_rebalance_timeout_are_removed() {
    let mut sim = Sim::new();
    let (ids, generation) = sim.stable_group("g", 3);
    // Member 0 (the leader) rejoins to force a rebalance; member 1 rejoins;
    // member 2 keeps heartbeating but never rejoins.
    let t0 = later(sim.join(&J::new("g", "c0").member(&ids[0])));
    let t1 = later(sim.join(&J::new("g", "c1").member(&ids[1])));
    for _ in 0..19 {
        sim.advance(3_000);
        assert_eq!(
            sim.heartbeat("g", generation, &ids[2], None),
            code::REBALANCE_IN_PROGRESS
        );
    }
    assert!(sim.ready.is_empty());
    sim.advance(3_000); // 60 s: the rebalance timeout
    let r0 = sim.take_join(t0).expect("join phase ended at the timeout");
    let r1 = sim.take_join(t1).unwrap();
    assert_eq!(r0.members.len(), 2);
    assert_eq!(r1.generation_id, generation + 1);
    assert_eq!(
        sim.heartbeat("g", generation, &ids[2], None),
        code::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn rejoining_during_a_rebalance() {
    let mut sim = Sim::new();
    let (ids, generation) = sim.stable_group("g", 2);
    // Member 1 changes its subscription: a rebalance starts.
    let j1 = J::new("g", "c1")
        .member(&ids[1])
        .protocols(&["range", "roundrobin"]);
    let t1 = later(sim.join(&j1));
    assert_eq!(sim.state("g"), Some(GroupState::PreparingRebalance));
    // It gives up and rejoins on a new connection: the older request is
    // answered (so no ticket waits forever) and the newer one waits.
    let t1b = later(sim.join(&j1));
    let old = sim
        .take_join(t1)
        .expect("the superseded JoinGroup is answered");
    assert_eq!(old.error_code, code::REBALANCE_IN_PROGRESS);
    // A new member joins the rebalance under way.
    let (c, rc) = sim.join_new(&J::new("g", "c2"));
    let tc = later(rc);
    let r0 = now_join(sim.join(&J::new("g", "c0").member(&ids[0])));
    let r1 = sim.take_join(t1b).unwrap();
    let rc = sim.take_join(tc).unwrap();
    for r in [&r0, &r1, &rc] {
        assert_eq!(r.generation_id, generation + 1);
    }
    assert_eq!(rc.member_id.as_str(), c);
    assert_eq!(r0.members.len(), 3);
    // A sync from the old generation is refused.
    let Reply::Now(sr) = sim.sync(3, "g", generation, &ids[0], None, &[]) else {
        panic!()
    };
    assert_eq!(sr.error_code, code::ILLEGAL_GENERATION);
}

#[test]
fn a_join_during_completing_rebalance_sends_followers_back() {
    let mut sim = Sim::new();
    let (a, ra) = sim.join_new(&J::new("g", "a"));
    let (b, rb) = sim.join_new(&J::new("g", "b"));
    let (ra, rb) = (sim.await_join(ra), sim.await_join(rb));
    assert_eq!(sim.state("g"), Some(GroupState::CompletingRebalance));
    let tb = later(sim.sync(3, "g", rb.generation_id, &b, None, &[]));
    // A third member arrives before the leader syncs.
    let (_, rc) = sim.join_new(&J::new("g", "c"));
    let tc = later(rc);
    let sb = sim
        .take_sync(tb)
        .expect("the waiting follower is sent back");
    assert_eq!(sb.error_code, code::REBALANCE_IN_PROGRESS);
    // Old members rejoin; the group moves on with all three.
    let t_a = later(sim.join(&J::new("g", "a").member(&a)));
    let rb2 = now_join(sim.join(&J::new("g", "b").member(&b)));
    assert_eq!(rb2.generation_id, ra.generation_id + 1);
    assert!(sim.take_join(t_a).is_some() && sim.take_join(tc).is_some());
}

#[test]
fn a_stale_generation_gets_illegal_generation() {
    let mut sim = Sim::new();
    let (ids, generation) = sim.stable_group("g", 1);
    assert_eq!(
        sim.heartbeat("g", generation - 1, &ids[0], None),
        code::ILLEGAL_GENERATION
    );
    let Reply::Now(r) = sim.sync(3, "g", generation + 7, &ids[0], None, &[]) else {
        panic!()
    };
    assert_eq!(r.error_code, code::ILLEGAL_GENERATION);
    let e = sim
        .c
        .validate_commit(sim.now, "g", generation - 1, &ids[0], None);
    assert_eq!(e, code::ILLEGAL_GENERATION);
    assert_eq!(
        sim.c
            .validate_commit(sim.now, "g", generation, &ids[0], None),
        0
    );
    // A generation from a group this coordinator does not know.
    assert_eq!(
        sim.c.validate_commit(sim.now, "other", 3, "m", None),
        code::ILLEGAL_GENERATION
    );
}

#[test]
fn member_id_required_round_trip() {
    let mut sim = Sim::new();
    let j = J::new("g", "rdkafka").v(4);
    let r = now_join(sim.join(&j));
    assert_eq!(r.error_code, code::MEMBER_ID_REQUIRED);
    assert_eq!(r.generation_id, -1);
    let id = r.member_id.to_string();
    assert!(id.starts_with("rdkafka-"));
    assert_eq!(
        r.protocol_name.as_deref(),
        Some(""),
        "v4 has no null protocol"
    );
    // The pending id holds the rebalance open until it joins...
    let t = later(sim.join(&j.clone().member(&id)));
    let r = sim.await_join(Reply::Later(t));
    assert_eq!((r.error_code, r.member_id.as_str()), (0, id.as_str()));

    // ...or lapses after its session timeout.
    let r2 = now_join(sim.join(&J::new("g2", "x").v(7)));
    assert_eq!(r2.error_code, code::MEMBER_ID_REQUIRED);
    assert_eq!(r2.protocol_name, None, "v7 sends null");
    sim.advance(10_000);
    let late = now_join(sim.join(&J::new("g2", "x").v(7).member(&r2.member_id)));
    assert_eq!(late.error_code, code::UNKNOWN_MEMBER_ID);

    // Before v4 a new member is added straight away.
    let (_, reply) = sim.join_new(&J::new("g3", "old").v(3));
    assert!(matches!(reply, Reply::Later(_)));
}

#[test]
fn join_errors() {
    let mut sim = Sim::new();
    let r = now_join(sim.join(&J::new("", "c")));
    assert_eq!(r.error_code, code::INVALID_GROUP_ID);
    let r = now_join(sim.join(&J::new("g", "c").session(5_999)));
    assert_eq!(r.error_code, code::INVALID_SESSION_TIMEOUT);
    let r = now_join(sim.join(&J::new("g", "c").session(1_800_001)));
    assert_eq!(r.error_code, code::INVALID_SESSION_TIMEOUT);
    let r = now_join(sim.join(&J::new("g", "c").member("made-up")));
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);
    let r = now_join(sim.join(&J::new("g", "c").protocols(&[])));
    assert_eq!(r.error_code, code::INCONSISTENT_GROUP_PROTOCOL);
    assert_eq!(sim.state("g"), None, "failed joins leave no group behind");

    let (ids, _) = sim.stable_group("g", 1);
    let mut other_type = J::new("g", "c").v(3);
    other_type.protocol_type = "connect".into();
    let r = now_join(sim.join(&other_type));
    assert_eq!(r.error_code, code::INCONSISTENT_GROUP_PROTOCOL);
    let r = now_join(sim.join(&J::new("g", "c").v(3).protocols(&["sticky"])));
    assert_eq!(r.error_code, code::INCONSISTENT_GROUP_PROTOCOL);
    let r = now_join(sim.join(&J::new("g", "c0").member(&ids[0]).protocols(&["sticky"])));
    assert_eq!(r.error_code, code::INCONSISTENT_GROUP_PROTOCOL);
}

#[test]
fn the_protocol_most_members_prefer_among_those_all_support_wins() {
    let mut sim = Sim::new();
    let a = later(sim.join(&J::new("g", "a").v(3).protocols(&["range", "rr"])));
    let _ = sim.join(&J::new("g", "b").v(3).protocols(&["rr", "range"]));
    let _ = sim.join(&J::new("g", "c").v(3).protocols(&["sticky", "range", "rr"]));
    let r = sim.await_join(Reply::Later(a));
    // Votes: range (a, c), rr (b): range.
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members[1].metadata, Bytes::from("meta-range"));

    let a = later(sim.join(&J::new("h", "a").v(3).protocols(&["range", "rr"])));
    let _ = sim.join(&J::new("h", "b").v(3).protocols(&["rr", "range"]));
    let _ = sim.join(&J::new("h", "c").v(3).protocols(&["sticky", "rr"]));
    let r = sim.await_join(Reply::Later(a));
    // Only rr is supported by all.
    assert_eq!(r.protocol_name.as_deref(), Some("rr"));
}

#[test]
fn sync_and_heartbeat_errors() {
    let mut sim = Sim::new();
    let Reply::Now(r) = sim.sync(3, "", 1, "m", None, &[]) else {
        panic!()
    };
    assert_eq!(r.error_code, code::INVALID_GROUP_ID);
    let Reply::Now(r) = sim.sync(3, "nope", 1, "m", None, &[]) else {
        panic!()
    };
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);
    assert_eq!(sim.heartbeat("", 1, "m", None), code::INVALID_GROUP_ID);
    assert_eq!(sim.heartbeat("nope", 1, "m", None), code::UNKNOWN_MEMBER_ID);

    let (ids, generation) = sim.stable_group("g", 1);
    // SyncGroup v5 checks the protocol type and name.
    let mut req = SyncGroupRequest::default();
    req.group_id = GroupId(s("g"));
    req.generation_id = generation;
    req.member_id = s(&ids[0]);
    req.protocol_type = Some(s("consumer"));
    req.protocol_name = Some(s("roundrobin"));
    let Reply::Now(r) = sim.c.sync_group(sim.now, 5, req.clone()) else {
        panic!()
    };
    assert_eq!(r.error_code, code::INCONSISTENT_GROUP_PROTOCOL);
    req.protocol_name = Some(s("range"));
    let Reply::Now(r) = sim.c.sync_group(sim.now, 5, req) else {
        panic!()
    };
    encodes(&r, 5);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.assignment, Bytes::from("a-0"));
}

#[test]
fn delete_groups() {
    let mut sim = Sim::new();
    let (ids, _) = sim.stable_group("busy", 1);
    let (idle, _) = sim.stable_group("idle", 1);
    let _ = sim.leave(3, "idle", &[(&idle[0], None)]);
    assert_eq!(sim.state("idle"), Some(GroupState::Empty));
    sim.persisted.clear();
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = ["busy", "idle", "offsets-only", "never", "idle"]
        .iter()
        .map(|g| GroupId(s(g)))
        .collect();
    let (resp, deleted) = sim.c.delete_groups(2, &req, |g| g == "offsets-only");
    encodes(&resp, 2);
    let results: Vec<(&str, i16)> = resp
        .results
        .iter()
        .map(|r| (r.group_id.as_str(), r.error_code))
        .collect();
    assert_eq!(
        results,
        [
            ("busy", code::NON_EMPTY_GROUP),
            ("idle", 0),
            ("offsets-only", 0),
            ("never", code::GROUP_ID_NOT_FOUND),
        ]
    );
    assert_eq!(deleted, ["idle", "offsets-only"]);
    sim.drain();
    assert_eq!(
        sim.persisted,
        [
            ("idle".to_string(), None),
            ("offsets-only".to_string(), None)
        ]
    );
    assert_eq!(sim.state("idle"), None);
    assert_eq!(sim.state("busy"), Some(GroupState::Stable));
    assert_eq!(sim.heartbeat("busy", 1, &ids[0], None), 0);
}

#[test]
fn simple_commits_and_member_commits() {
    let mut sim = Sim::new();
    // A consumer that assigns itself: allowed, and the group now exists.
    assert_eq!(sim.c.validate_commit(sim.now, "manual", -1, "", None), 0);
    assert_eq!(sim.state("manual"), Some(GroupState::Empty));
    let (ids, generation) = sim.stable_group("g", 1);
    assert_eq!(
        sim.c.validate_commit(sim.now, "g", -1, "", None),
        code::UNKNOWN_MEMBER_ID,
        "only members commit to a group with members"
    );
    assert_eq!(
        sim.c
            .validate_commit(sim.now, "g", generation, "stranger", None),
        code::UNKNOWN_MEMBER_ID
    );
    // A commit keeps the session alive like a heartbeat.
    for _ in 0..5 {
        sim.advance(8_000);
        assert_eq!(
            sim.c
                .validate_commit(sim.now, "g", generation, &ids[0], None),
            0
        );
        sim.drain();
    }
    // While the assignment is awaited, commits are refused.
    let _ = sim.join(&J::new("g", "c0").member(&ids[0]));
    assert_eq!(sim.state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(
        sim.c
            .validate_commit(sim.now, "g", generation + 1, &ids[0], None),
        code::REBALANCE_IN_PROGRESS
    );
}

#[test]
fn list_and_describe_at_every_version() {
    let mut sim = Sim::new();
    let (ids, _) = sim.stable_group("g", 2);
    let _ = sim.join_new(&J::new("h", "x").v(3));
    for v in 0..=5 {
        let mut req = ListGroupsRequest::default();
        if v >= 4 {
            req.states_filter = vec![s("stable")];
        }
        let resp = sim.c.list_groups(v, &req);
        encodes(&resp, v);
        let names: Vec<&str> = resp.groups.iter().map(|g| g.group_id.as_str()).collect();
        if v >= 4 {
            assert_eq!(names, ["g"]);
            assert_eq!(resp.groups[0].group_state.as_str(), "Stable");
        } else {
            assert_eq!(names, ["g", "h"]);
        }
        assert_eq!(resp.groups[0].protocol_type.as_str(), "consumer");
    }
    let mut req = ListGroupsRequest::default();
    req.types_filter = vec![s("consumer")];
    assert!(sim.c.list_groups(5, &req).groups.is_empty());
    for v in 0..=6 {
        let d = sim.describe(v, "g");
        let g = &d.groups[0];
        assert_eq!((g.error_code, g.group_state.as_str()), (0, "Stable"));
        assert_eq!(g.protocol_data.as_str(), "range");
        assert_eq!(g.members.len(), 2);
        assert_eq!(g.members[1].member_id.as_str(), ids[1]);
        assert_eq!(g.members[1].member_assignment, Bytes::from("a-1"));
        assert_eq!(g.members[1].client_host.as_str(), "/10.0.0.1");
        let p = sim.describe(v, "h");
        assert_eq!(p.groups[0].group_state.as_str(), "PreparingRebalance");
        assert!(p.groups[0].members[0].member_metadata.is_empty());
        let missing = sim.describe(v, "missing");
        let m = &missing.groups[0];
        assert_eq!(m.group_state.as_str(), "Dead");
        let expected = if v >= 6 { code::GROUP_ID_NOT_FOUND } else { 0 };
        assert_eq!(m.error_code, expected);
    }
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(s("g"))];
    req.include_authorized_operations = true;
    let d = sim.c.describe_groups(3, &req);
    encodes(&d, 3);
    assert_ne!(d.groups[0].authorized_operations, i32::MIN);
}

#[test]
fn responses_encode_at_every_version() {
    for jv in 0..=9 {
        for sv in 0..=5 {
            let mut sim = Sim::new();
            let j = J::new("g", "c").v(jv);
            let (id, reply) = sim.join_new(&j);
            let r = sim.await_join(reply);
            assert_eq!(r.error_code, 0, "JoinGroup v{jv}");
            if jv >= 7 {
                assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
            } else {
                assert_eq!(r.protocol_type, None);
            }
            let Reply::Now(sr) = sim.sync(sv, "g", r.generation_id, &id, None, &[(&id, "x")])
            else {
                panic!()
            };
            assert_eq!(sr.error_code, 0);
            assert_eq!(sr.protocol_name.is_some(), sv >= 5);
            // Errors encode too.
            let _ = sim.join(&j.clone().member("bogus"));
            let _ = sim.sync(sv, "g", -5, &id, None, &[]);
            let _ = sim.leave(jv.min(5), "g", &[("bogus", Some("i"))]);
        }
    }
}

#[test]
fn persisted_groups_load_back() {
    let mut sim = Sim::new();
    let (ids, generation) = sim.stable_group("g", 3);
    let snap = sim
        .persisted
        .iter()
        .rev()
        .find(|(g, _)| g == "g")
        .and_then(|(_, s)| s.clone())
        .unwrap();
    // A restarted broker loads it later on its own clock.
    let mut fresh = Sim::new();
    fresh.advance(123_456);
    fresh.c.load(fresh.now, "g".into(), snap.clone());
    assert_eq!(fresh.state("g"), Some(GroupState::Stable));
    let before = sim.describe(4, "g");
    let after = fresh.describe(4, "g");
    assert_eq!(before.groups[0].members, after.groups[0].members);
    // Members carry on with their generation; the leader has its place.
    assert_eq!(fresh.heartbeat("g", generation, &ids[0], None), 0);
    let Reply::Now(sr) = fresh.sync(3, "g", generation, &ids[2], None, &[]) else {
        panic!()
    };
    assert_eq!(sr.assignment, Bytes::from("a-2"));
    // Members that never come back expire from the load time.
    fresh.advance(9_000);
    assert_eq!(fresh.heartbeat("g", generation, &ids[0], None), 0);
    assert_eq!(fresh.heartbeat("g", generation, &ids[2], None), 0);
    fresh.advance(1_000);
    assert_eq!(fresh.state("g"), Some(GroupState::PreparingRebalance));
    // A follower rejoining after the load (same metadata) rebalances once
    // member 1 is gone; the new snapshot has two members.
    let t0 = later(fresh.join(&J::new("g", "c0").member(&ids[0])));
    let _ = now_join(fresh.join(&J::new("g", "c2").member(&ids[2])));
    let r0 = fresh.take_join(t0).unwrap();
    assert_eq!(r0.members.len(), 2);

    // Snapshots of empty groups and offsets-only groups load as Empty.
    let mut other = Sim::new();
    other
        .c
        .load(other.now, "e".into(), GroupSnapshot::default());
    assert_eq!(other.state("e"), Some(GroupState::Empty));
    let (_, reply) = other.join_new(&J::new("e", "c"));
    assert!(matches!(reply, Reply::Later(_)));
    assert_eq!(snap.members.len(), 3);
}

#[test]
fn parked_responses_come_out_in_order_and_cancelled_ones_never() {
    let mut sim = Sim::new();
    let mut tickets = Vec::new();
    let mut ids = Vec::new();
    for i in 0..4 {
        let (id, reply) = sim.join_new(&J::new("g", &format!("c{i}")).v(3));
        ids.push(id);
        tickets.push(later(reply));
    }
    let (_, other) = sim.join_new(&J::new("h", "z").v(3));
    let other = later(other);
    // Member 2's connection closes while it waits.
    sim.cancel(tickets[2]);
    for _ in 0..6 {
        sim.advance(1_000);
    }
    let order: Vec<Ticket> = sim.ready.iter().map(Parked::ticket).collect();
    // h (one member) is done after the initial delay; g's members kept
    // arriving, so it waited once more. Within g, join order; the
    // cancelled ticket is not among them.
    assert_eq!(order, [other, tickets[0], tickets[1], tickets[3]]);
    // The member whose connection closed still joined the generation (as
    // in Kafka) and expires with its session.
    let r = sim.take_join(tickets[0]).unwrap();
    assert_eq!(r.members.len(), 4);
    assert!(r.members.iter().any(|m| m.member_id.as_str() == ids[2]));
    // A cancelled ticket is forgotten even when its answer was ready.
    let (_, reply) = sim.join_new(&J::new("k", "late").v(3));
    let t = later(reply);
    sim.advance(3_000);
    // The answer came out already: cancelling now is harmless.
    sim.c.cancel(t);
    assert!(sim.take_join(t).is_some());
}

#[test]
fn the_request_that_completes_a_rebalance_is_answered_now() {
    let mut sim = Sim::new();
    let (ids, generation) = sim.stable_group("g", 2);
    let t0 = later(sim.join(&J::new("g", "c0").member(&ids[0])));
    let r1 = sim.join(&J::new("g", "c1").member(&ids[1]));
    let r1 = now_join(r1);
    assert_eq!(r1.generation_id, generation + 1);
    assert!(sim.take_join(t0).is_some());
    assert!(sim.ready.is_empty());
}

#[test]
fn a_follower_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let mut sim = Sim::new();
    let (ids, generation) = sim.stable_group("g", 2);
    let t0 = later(sim.join(&J::new("g", "c0").member(&ids[0]).rebalance(20_000)));
    let _ = now_join(sim.join(&J::new("g", "c1").member(&ids[1]).rebalance(20_000)));
    let _ = sim.take_join(t0).unwrap();
    // The leader syncs; member 1 heartbeats but never syncs.
    let Reply::Now(_) = sim.sync(3, "g", generation + 1, &ids[0], None, &[]) else {
        panic!()
    };
    for _ in 0..6 {
        sim.advance(3_000);
        let _ = sim.heartbeat("g", generation + 1, &ids[1], None);
        let _ = sim.heartbeat("g", generation + 1, &ids[0], None);
    }
    sim.advance(2_000);
    assert_eq!(sim.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        sim.heartbeat("g", generation + 1, &ids[1], None),
        code::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn group_max_size_sheds_new_members() {
    let mut sim = Sim::with(GroupConfig {
        max_group_size: 2,
        ..GroupConfig::default()
    });
    let (ids, _) = sim.stable_group("g", 2);
    let r = now_join(sim.join(&J::new("g", "third").v(3)));
    assert_eq!(r.error_code, code::GROUP_MAX_SIZE_REACHED);
    assert_eq!(sim.state("g"), Some(GroupState::Stable));
    assert_eq!(sim.heartbeat("g", 1, &ids[1], None), 0);
}

#[test]
fn with_no_initial_delay_a_lone_member_is_answered_at_once() {
    let mut sim = Sim::with(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let r = now_join(sim.join(&J::new("g", "c").v(3)));
    assert_eq!((r.error_code, r.generation_id), (0, 1));
}

#[test]
fn join_group_v0_uses_the_session_timeout_as_rebalance_timeout() {
    let mut sim = Sim::new();
    // v0 has no rebalance timeout field (decoded as -1). With the session
    // timeout (7 s) standing in, the initial delay may stretch once.
    let j = |c: &str| J::new("g", c).v(0).session(7_000).rebalance(-1);
    let t0 = later(sim.join(&j("a")));
    let _ = later(sim.join(&j("b")));
    sim.advance(3_000);
    assert!(
        sim.take_join(t0).is_none(),
        "a -1 timeout would end it at 3 s"
    );
    sim.advance(3_000);
    let r = sim.take_join(t0).expect("done after the one extension");
    assert_eq!(r.members.len(), 2);
}

#[test]
fn empty_groups_can_be_removed_when_their_offsets_expire() {
    let mut sim = Sim::new();
    let (ids, _) = sim.stable_group("g", 1);
    assert!(!sim.c.remove_empty_group("g"), "it has a member");
    let _ = sim.leave(3, "g", &[(&ids[0], None)]);
    sim.persisted.clear();
    assert!(sim.c.remove_empty_group("g"));
    sim.drain();
    assert_eq!(sim.persisted, [("g".to_string(), None)]);
    assert_eq!(sim.state("g"), None);
    assert!(!sim.c.remove_empty_group("g"));
}

/// A consumer protocol subscription at `version` (1 adds owned partitions
/// after the user data), as Java clients and librdkafka write it.
fn subscription(version: i16, topics: &[&str]) -> Bytes {
    use bytes::BufMut;
    let mut b = bytes::BytesMut::new();
    b.put_i16(version);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1); // no user data
    if version >= 1 {
        b.put_i32(0); // no owned partitions
    }
    b.freeze()
}

#[test]
fn offset_deletion_follows_membership_and_subscriptions() {
    let mut sim = Sim::new();
    assert_eq!(sim.c.offset_deletion("g"), OffsetDeletion::UnknownGroup);

    // Two consumers subscribed to different topics: the union is held.
    let j = |client: &str, topics: &[&str], version| {
        let mut j = J::new("g", client);
        j.protocols = vec![("range".to_string(), subscription(version, topics))];
        j
    };
    let (a, ra) = sim.join_new(&j("a", &["orders"], 0));
    let (b, rb) = sim.join_new(&j("b", &["orders", "refunds"], 1));
    // Before the join completes no protocol is chosen: every topic is held.
    assert_eq!(sim.c.offset_deletion("g"), OffsetDeletion::Subscribed(None));
    let generation = sim.await_join(ra).generation_id;
    let _ = sim.await_join(rb);
    let Reply::Now(r) = sim.sync(3, "g", generation, &a, None, &[(&a, "x"), (&b, "y")]) else {
        panic!("the leader's sync is answered at once")
    };
    assert_eq!(r.error_code, 0);
    let deletion = sim.c.offset_deletion("g");
    let held: std::collections::BTreeSet<String> = ["orders", "refunds"].map(String::from).into();
    assert_eq!(deletion, OffsetDeletion::Subscribed(Some(held)));
    assert!(deletion.subscribed("refunds") && !deletion.subscribed("audit"));

    // Members gone: any offset may go.
    let _ = sim.leave(3, "g", &[(&a, None), (&b, None)]);
    assert_eq!(sim.c.offset_deletion("g"), OffsetDeletion::Any);
    assert!(!OffsetDeletion::Any.subscribed("orders"));
}

#[test]
fn unreadable_subscriptions_hold_every_topic_and_other_groups_refuse() {
    let mut sim = Sim::new();
    // `meta-range` is no consumer subscription.
    let _ = sim.stable_group("g", 1);
    let deletion = sim.c.offset_deletion("g");
    assert_eq!(deletion, OffsetDeletion::Subscribed(None));
    assert!(deletion.subscribed("anything"));

    // Cut short, or a count larger than the bytes: unreadable too.
    for bad in [
        subscription(0, &["orders"]).slice(..8),
        Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1, b'x']),
    ] {
        let mut sim = Sim::new();
        let mut j = J::new("h", "c");
        j.protocols = vec![("range".to_string(), bad)];
        let (id, reply) = sim.join_new(&j);
        let generation = sim.await_join(reply).generation_id;
        let _ = sim.sync(3, "h", generation, &id, None, &[(&id, "x")]);
        assert_eq!(sim.c.offset_deletion("h"), OffsetDeletion::Subscribed(None));
    }

    // A group of another protocol type cannot say what it uses.
    let mut j = J::new("connect", "worker");
    j.protocol_type = "connect".into();
    let (_, reply) = sim.join_new(&j);
    let _ = sim.await_join(reply);
    assert_eq!(sim.c.offset_deletion("connect"), OffsetDeletion::NonEmpty);
}
