//! Static membership (`group.instance.id`) and a seeded random simulation
//! of many clients against the coordinator.

use bytes::Bytes;
use kafka_protocol::messages::JoinGroupResponse;

use super::reply::code;
use super::sim::{J, Sim};
use super::*;

/// A stable group of `n` static members (instance ids `i0..`), member i
/// assigned `"a-<i>"`. Returns member ids and generation.
fn static_group(sim: &mut Sim, group: &str, n: usize) -> (Vec<String>, i32) {
    let mut ids = Vec::new();
    let mut replies = Vec::new();
    for i in 0..n {
        let j = J::new(group, &format!("c{i}")).instance(&format!("i{i}"));
        let (id, reply) = sim.join_new(&j);
        assert!(id.starts_with(&format!("i{i}-")), "{id}");
        ids.push(id);
        replies.push(reply);
    }
    let rs: Vec<JoinGroupResponse> = replies.into_iter().map(|r| sim.await_join(r)).collect();
    let generation = rs[0].generation_id;
    let instances: Vec<Option<&str>> = rs[0]
        .members
        .iter()
        .map(|m| m.group_instance_id.as_deref())
        .collect();
    assert_eq!(instances.len(), n);
    assert!(
        instances.iter().all(Option::is_some),
        "v5 lists instance ids"
    );
    let names: Vec<String> = (0..n).map(|i| format!("a-{i}")).collect();
    let pairs: Vec<(&str, &str)> = ids
        .iter()
        .zip(&names)
        .map(|(m, a)| (m.as_str(), a.as_str()))
        .collect();
    let tickets: Vec<Ticket> = ids[1..]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let instance = format!("i{}", i + 1);
            match sim.sync(3, group, generation, id, Some(&instance), &[]) {
                Reply::Later(t) => t,
                Reply::Now(r) => panic!("{r:?}"),
            }
        })
        .collect();
    let Reply::Now(_) = sim.sync(3, group, generation, &ids[0], Some("i0"), &pairs) else {
        panic!()
    };
    for t in tickets {
        assert_eq!(sim.take_sync(t).unwrap().error_code, 0);
    }
    (ids, generation)
}

#[test]
fn a_restarted_static_member_takes_its_place_without_a_rebalance() {
    let mut sim = Sim::new();
    let (ids, generation) = static_group(&mut sim, "g", 3);
    sim.persisted.clear();
    // Instance i1 restarts: no member id, same protocols.
    let j = J::new("g", "c1").instance("i1");
    let Reply::Now(r) = sim.join(&j) else {
        panic!("a stable group answers a returning static member at once")
    };
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, generation, "no new generation");
    let new_id = r.member_id.to_string();
    assert_ne!(new_id, ids[1]);
    assert_eq!(r.leader.as_str(), ids[0]);
    assert!(r.members.is_empty());
    assert_eq!(sim.state("g"), Some(GroupState::Stable));
    // The replacement is persisted under the new id.
    let (_, snap) = sim.persisted.last().cloned().unwrap();
    let ids_now: Vec<String> = snap
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.member_id)
        .collect();
    assert_eq!(ids_now, [ids[0].clone(), new_id.clone(), ids[2].clone()]);
    // It syncs and gets the old member's assignment.
    let Reply::Now(sr) = sim.sync(3, "g", generation, &new_id, Some("i1"), &[]) else {
        panic!()
    };
    assert_eq!((sr.error_code, sr.assignment), (0, Bytes::from("a-1")));
    // The old member id is fenced.
    assert_eq!(
        sim.heartbeat("g", generation, &ids[1], Some("i1")),
        code::FENCED_INSTANCE_ID
    );
    assert_eq!(
        sim.heartbeat("g", generation, &ids[1], None),
        code::UNKNOWN_MEMBER_ID
    );
    let Reply::Now(old) = sim.sync(3, "g", generation, &ids[1], Some("i1"), &[]) else {
        panic!()
    };
    assert_eq!(old.error_code, code::FENCED_INSTANCE_ID);
    assert_eq!(
        sim.c
            .validate_commit(sim.now, "g", generation, &ids[1], Some("i1")),
        code::FENCED_INSTANCE_ID
    );
    let old_join = sim.join(&j.clone().member(&ids[1]));
    let Reply::Now(old_join) = old_join else {
        panic!()
    };
    assert_eq!(old_join.error_code, code::FENCED_INSTANCE_ID);
    assert_eq!(sim.heartbeat("g", generation, &new_id, Some("i1")), 0);
}

#[test]
fn a_restarted_static_leader_is_not_told_it_leads_before_v9() {
    let mut sim = Sim::new();
    let (ids, generation) = static_group(&mut sim, "g", 2);
    let Reply::Now(r) = sim.join(&J::new("g", "c0").instance("i0")) else {
        panic!()
    };
    // The old leader id, which is not the new member's: no assignment.
    assert_eq!(r.leader.as_str(), ids[0]);
    assert_ne!(r.member_id.as_str(), ids[0]);
    assert!(!r.skip_assignment);
    // v9: it is told it leads, and to skip the assignment.
    let Reply::Now(r9) = sim.join(&J::new("g", "c0").instance("i0").v(9)) else {
        panic!()
    };
    assert_eq!(r9.leader, r9.member_id);
    assert!(r9.skip_assignment);
    assert_eq!(r9.members.len(), 2);
    assert_eq!(r9.generation_id, generation);
    assert_eq!(sim.state("g"), Some(GroupState::Stable));
}

#[test]
fn a_restarted_static_member_with_a_new_protocol_choice_rebalances() {
    let mut sim = Sim::new();
    let j = J::new("g", "c")
        .instance("solo")
        .protocols(&["range", "rr"]);
    let (id, reply) = sim.join_new(&j);
    let r = sim.await_join(reply);
    let Reply::Now(_) = sim.sync(3, "g", r.generation_id, &id, Some("solo"), &[]) else {
        panic!()
    };
    let Reply::Now(r2) = sim.join(&j.clone().protocols(&["rr", "range"])) else {
        panic!("the only member rejoined: the rebalance completes at once")
    };
    assert_eq!(r2.generation_id, r.generation_id + 1);
    assert_eq!(r2.protocol_name.as_deref(), Some("rr"));
}

#[test]
fn a_static_member_joining_during_completing_rebalance_restarts_it() {
    let mut sim = Sim::new();
    let (ids, generation) = static_group(&mut sim, "g", 2);
    // The leader rejoins (rebalance), member 1 rejoins: CompletingRebalance.
    let t0 = match sim.join(&J::new("g", "c0").member(&ids[0]).instance("i0")) {
        Reply::Later(t) => t,
        Reply::Now(r) => panic!("{r:?}"),
    };
    let Reply::Now(_) = sim.join(&J::new("g", "c1").member(&ids[1]).instance("i1")) else {
        panic!()
    };
    let _ = sim.take_join(t0).unwrap();
    assert_eq!(sim.state("g"), Some(GroupState::CompletingRebalance));
    // Instance i1 restarts before the leader syncs.
    let t1 = match sim.join(&J::new("g", "c1").instance("i1")) {
        Reply::Later(t) => t,
        Reply::Now(r) => panic!("{r:?}"),
    };
    assert_eq!(sim.state("g"), Some(GroupState::PreparingRebalance));
    let Reply::Now(r0) = sim.join(&J::new("g", "c0").member(&ids[0]).instance("i0")) else {
        panic!()
    };
    assert_eq!(r0.generation_id, generation + 2);
    let r1 = sim.take_join(t1).unwrap();
    assert_ne!(r1.member_id.as_str(), ids[1]);
}

#[test]
fn static_members_outlast_the_rebalance_timeout_but_not_their_session() {
    let mut sim = Sim::new();
    let (ids, generation) = static_group(&mut sim, "g", 2);
    // The leader rejoins; i1 keeps heartbeating but never rejoins.
    let t0 = match sim.join(&J::new("g", "c0").member(&ids[0]).instance("i0")) {
        Reply::Later(t) => t,
        Reply::Now(r) => panic!("{r:?}"),
    };
    for _ in 0..19 {
        sim.advance(3_000);
        let e = sim.heartbeat("g", generation, &ids[1], Some("i1"));
        assert_eq!(e, code::REBALANCE_IN_PROGRESS);
    }
    sim.advance(3_000);
    // The rebalance timeout ended the join phase: unlike a dynamic member,
    // the static member that did not rejoin is kept.
    let r0 = sim
        .take_join(t0)
        .expect("rebalance timeout ended the join phase");
    assert_eq!(r0.generation_id, generation + 1);
    assert_eq!(r0.members.len(), 2);
    // It must rejoin for the new generation; its session runs meanwhile.
    assert_eq!(
        sim.heartbeat("g", generation, &ids[1], Some("i1")),
        code::ILLEGAL_GENERATION
    );
    sim.advance(5_000);
    assert_eq!(sim.heartbeat("g", generation + 1, &ids[0], Some("i0")), 0);
    sim.advance(4_999);
    assert_eq!(sim.describe(0, "g").groups[0].members.len(), 2);
    sim.advance(1);
    assert_eq!(sim.describe(0, "g").groups[0].members.len(), 1);
}

#[test]
fn leave_by_instance_id_and_fenced_leave() {
    let mut sim = Sim::new();
    let (ids, _) = static_group(&mut sim, "g", 3);
    let resp = sim.leave(
        4,
        "g",
        &[
            ("", Some("i2")),
            ("wrong-id", Some("i1")),
            (&ids[0], Some("i0")),
            ("", Some("nobody")),
        ],
    );
    let errors: Vec<i16> = resp.members.iter().map(|m| m.error_code).collect();
    assert_eq!(
        errors,
        [0, code::FENCED_INSTANCE_ID, 0, code::UNKNOWN_MEMBER_ID]
    );
    assert_eq!(resp.members[1].group_instance_id.as_deref(), Some("i1"));
    let d = sim.describe(4, "g");
    let left: Vec<&str> = d.groups[0]
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(left, [ids[1].as_str()]);
}

#[test]
fn a_parked_request_of_a_replaced_instance_is_answered_with_fenced() {
    let mut sim = Sim::new();
    let (ids, generation) = static_group(&mut sim, "g", 3);
    // A rebalance starts (the leader rejoins); i1 rejoins and waits for i2.
    let park = |sim: &mut Sim, j: &J| match sim.join(j) {
        Reply::Later(t) => t,
        Reply::Now(r) => panic!("{r:?}"),
    };
    let t0 = park(&mut sim, &J::new("g", "c0").member(&ids[0]).instance("i0"));
    let t1 = park(&mut sim, &J::new("g", "c1").member(&ids[1]).instance("i1"));
    // Instance i1 restarts: the old incarnation's parked request is fenced,
    // the new one takes its place in the rebalance.
    let t1_new = park(&mut sim, &J::new("g", "c1").instance("i1"));
    let old = sim.take_join(t1).expect("answered at once");
    assert_eq!(old.error_code, code::FENCED_INSTANCE_ID);
    let Reply::Now(r2) = sim.join(&J::new("g", "c2").member(&ids[2]).instance("i2")) else {
        panic!("the last rejoin completes the join phase")
    };
    assert_eq!(r2.generation_id, generation + 1);
    let r0 = sim.take_join(t0).unwrap();
    let r1 = sim.take_join(t1_new).unwrap();
    assert_eq!(r1.error_code, 0);
    let listed: Vec<&str> = r0.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(
        listed,
        [ids[0].as_str(), r1.member_id.as_str(), ids[2].as_str()]
    );
}

// --- random simulation --------------------------------------------------

/// SplitMix64: the tests' only randomness, from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Default)]
struct Client {
    group: String,
    name: String,
    instance: Option<String>,
    version: i16,
    member: String,
    generation: i32,
    members: Vec<String>,
    join: Option<Ticket>,
    sync: Option<Ticket>,
}

impl Client {
    fn on_join(&mut self, r: &JoinGroupResponse) {
        self.join = None;
        match r.error_code {
            0 => {
                self.member = r.member_id.to_string();
                self.generation = r.generation_id;
                self.members = r.members.iter().map(|m| m.member_id.to_string()).collect();
            }
            code::MEMBER_ID_REQUIRED => self.member = r.member_id.to_string(),
            code::UNKNOWN_MEMBER_ID | code::FENCED_INSTANCE_ID => self.member.clear(),
            _ => {}
        }
    }
}

/// Runs one random simulation; returns how many SyncGroups got an
/// assignment (so the test knows groups did stabilise).
fn run_random(seed: u64) -> usize {
    let mut rng = Rng(seed);
    let mut sim = Sim::new();
    let mut synced = 0;
    let mut clients: Vec<Client> = (0..8)
        .map(|i| Client {
            group: format!("g{}", i % 2),
            name: format!("c{i}"),
            instance: (i % 3 == 0).then(|| format!("inst{i}")),
            version: [0, 3, 4, 5, 7, 9][rng.below(6) as usize],
            ..Client::default()
        })
        .collect();
    for _ in 0..600 {
        // Deliver what is ready.
        for c in clients.iter_mut() {
            if let Some(t) = c.join
                && let Some(r) = sim.take_join(t)
            {
                c.on_join(&r);
            }
            if let Some(t) = c.sync
                && let Some(r) = sim.take_sync(t)
            {
                c.sync = None;
                synced += usize::from(r.error_code == 0);
            }
        }
        let i = rng.below(clients.len() as u64) as usize;
        let c = &mut clients[i];
        let instance = if c.version >= 5 {
            c.instance.clone()
        } else {
            None
        };
        match rng.below(10) {
            0 | 1 if c.join.is_none() => {
                let mut j = J::new(&c.group, &c.name).v(c.version).member(&c.member);
                j.instance = instance;
                if rng.below(4) == 0 {
                    j = j.protocols(&["rr", "range"]);
                }
                match sim.join(&j) {
                    Reply::Now(r) => c.on_join(&r),
                    Reply::Later(t) => c.join = Some(t),
                }
            }
            2 | 3 if c.sync.is_none() && !c.member.is_empty() => {
                let assignments: Vec<(&str, &str)> =
                    c.members.iter().map(|m| (m.as_str(), "x")).collect();
                let reply = sim.sync(
                    c.version.min(5),
                    &c.group.clone(),
                    c.generation,
                    &c.member.clone(),
                    instance.as_deref(),
                    &assignments,
                );
                match reply {
                    Reply::Later(t) => c.sync = Some(t),
                    Reply::Now(r) => synced += usize::from(r.error_code == 0),
                }
            }
            4 | 5 => {
                let e = sim.heartbeat(
                    &c.group.clone(),
                    c.generation,
                    &c.member.clone(),
                    instance.as_deref(),
                );
                if e == code::UNKNOWN_MEMBER_ID || e == code::FENCED_INSTANCE_ID {
                    c.member.clear();
                }
            }
            6 => {
                let group = c.group.clone();
                let member = c.member.clone();
                let _ = sim.leave(
                    c.version.min(5),
                    &group,
                    &[(member.as_str(), instance.as_deref())],
                );
                let _ = sim.c.validate_commit(sim.now, &group, -1, "", None);
            }
            7 => {
                // The connection closes: parked requests are abandoned.
                for t in [c.join.take(), c.sync.take()].into_iter().flatten() {
                    sim.cancel(t);
                }
                c.member.clear();
            }
            _ => sim.advance(rng.below(4_000)),
        }
    }
    // Everyone goes away; time passes.
    for c in clients.iter_mut() {
        for t in [c.join.take(), c.sync.take()].into_iter().flatten() {
            sim.cancel(t);
        }
    }
    for _ in 0..1_000 {
        if !sim.advance_to_deadline() {
            break;
        }
    }
    assert!(
        sim.unanswered().is_empty(),
        "tickets never answered: {:?}",
        sim.unanswered()
    );
    assert!(sim.c.out.parked.is_empty());
    assert_eq!(sim.c.next_deadline(), None);
    for g in ["g0", "g1"] {
        assert!(
            matches!(sim.state(g), None | Some(GroupState::Empty)),
            "{g} should be empty once every member expired: {:?}",
            sim.state(g)
        );
    }
    synced
}

#[test]
fn random_clients_leave_no_request_unanswered() {
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let base = env("CONVEYOR_SEED").unwrap_or(0x5eed);
    let runs = env("CONVEYOR_RUNS").unwrap_or(40);
    let mut synced = 0;
    for k in 0..runs {
        let seed = base.wrapping_add(k);
        match std::panic::catch_unwind(|| run_random(seed)) {
            Ok(n) => synced += n,
            Err(e) => {
                eprintln!("random group simulation failed: CONVEYOR_SEED={seed} CONVEYOR_RUNS=1");
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!("{runs} random runs from seed {base}: {synced} assignments handed out");
    assert!(
        synced as u64 > runs,
        "groups rarely stabilised: {synced} assignments"
    );
}

#[test]
fn an_unloaded_group_sends_its_waiting_members_to_the_new_coordinator() {
    let mut sim = Sim::new();
    let (_, reply) = sim.join_new(&J::new("moving", "c0"));
    let Reply::Later(t) = reply else {
        panic!("the first join waits for the initial rebalance delay")
    };
    sim.c.unload("moving");
    sim.drain();
    let r = sim.take_join(t).expect("the parked join is answered");
    assert_eq!(r.error_code, code::NOT_COORDINATOR);
    assert_eq!(sim.c.group_state("moving"), None);
    assert!(sim.c.next_deadline().is_none(), "its timers went with it");
    assert!(
        sim.persisted
            .iter()
            .all(|(g, s)| g != "moving" || s.is_some()),
        "no tombstone: the group lives on at its new coordinator"
    );
    assert!(sim.unanswered().is_empty());
}
