//! The group coordinator in a cluster, on three broker cores over the
//! simulated network of `net/`: `__consumer_offsets` has three replicas,
//! a group's commits reach all of them before they are acknowledged, and
//! when the coordinator dies the new leader of the group's partition
//! coordinates the group with its committed offsets and its members; the
//! old coordinator, back, follows and answers NOT_COORDINATOR.

#[allow(dead_code)]
mod brokers;
mod common;
#[allow(dead_code)]
mod net;
#[allow(dead_code)]
#[path = "seeded/rng.rs"]
mod rng;

use std::time::Duration;

use brokers::*;
use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use net::{Net, quorum_net};

const GROUP: &str = "g";
const NOT_COORDINATOR: i16 = 16;
const REQUEST_TIMED_OUT: i16 = 7;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// The coordinator of `GROUP` as node `at` names it, once it names one.
fn coordinator(net: &mut Net, at: usize) -> usize {
    for _ in 0..100 {
        let conn = net.client(at);
        let req = FindCoordinatorRequest::default().with_key(s(GROUP));
        let r: FindCoordinatorResponse = net
            .request((at, conn), (ApiKey::FindCoordinator, 3), &req, WAIT)
            .expect("FindCoordinator answered");
        if r.error_code == 0 {
            return r.node_id.0 as usize;
        }
        net.advance(Duration::from_millis(200));
    }
    panic!("node {at} never named a coordinator of {GROUP}");
}

/// Commit `offset` for `t`-0 as (member, generation) through node `at`.
fn commit(net: &mut Net, at: usize, (member, generation): (&str, i32), offset: i64) -> i16 {
    let conn = net.client(at);
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    let r: OffsetCommitResponse = net
        .request((at, conn), (ApiKey::OffsetCommit, 8), &req, WAIT)
        .expect("OffsetCommit answered");
    r.topics[0].partitions[0].error_code
}

/// The group's error and the offset committed for `t`-0, through node `at`.
fn committed(net: &mut Net, at: usize) -> (i16, i64) {
    let conn = net.client(at);
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(name("t"))
                .with_partition_indexes(vec![0]),
        ]));
    let r: OffsetFetchResponse = net
        .request((at, conn), (ApiKey::OffsetFetch, 7), &req, WAIT)
        .expect("OffsetFetch answered");
    let offset = r
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.committed_offset);
    (r.error_code, offset)
}

/// One member joins and syncs through node `at`: its id and generation.
fn join(net: &mut Net, at: usize) -> (String, i32) {
    let conn = net.client(at);
    let req = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_session_timeout_ms(45_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::from_static(b"subscription")),
            ])
    };
    let r: JoinGroupResponse = net
        .request((at, conn), (ApiKey::JoinGroup, 5), &req(""), WAIT)
        .unwrap();
    assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = r.member_id.to_string();
    let r: JoinGroupResponse = net
        .request((at, conn), (ApiKey::JoinGroup, 5), &req(&member), WAIT)
        .unwrap();
    assert_eq!(r.error_code, 0);
    let generation = r.generation_id;
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id(generation)
        .with_member_id(s(&member))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(Bytes::from_static(b"assigned")),
        ]);
    let r: SyncGroupResponse = net
        .request((at, conn), (ApiKey::SyncGroup, 3), &sync, WAIT)
        .unwrap();
    assert_eq!(r.error_code, 0);
    (member, generation)
}

fn heartbeat(net: &mut Net, at: usize, (member, generation): (&str, i32)) -> i16 {
    let conn = net.client(at);
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id(generation)
        .with_member_id(s(member));
    let r: HeartbeatResponse = net
        .request((at, conn), (ApiKey::Heartbeat, 3), &req, WAIT)
        .unwrap();
    r.error_code
}

#[test]
fn a_groups_offsets_and_members_survive_the_death_of_its_coordinator() {
    let settings = [
        ("num.partitions", "1"),
        ("offsets.topic.num.partitions", "3"),
    ];
    let mut net = quorum_net(97, 3, (5, 2), &settings);
    settle(&mut net).unwrap();
    let c = controller(&net);
    assert_eq!(create(&mut net, c, "t", 1).topics[0].error_code, 0);
    let first = coordinator(&mut net, c);
    net.advance(Duration::from_secs(1));
    let offsets = net.status(c).image.topics["__consumer_offsets"].clone();
    assert!(
        offsets.partitions.iter().all(|p| p.replicas.len() == 3),
        "{offsets:?}"
    );

    let (member, generation) = join(&mut net, first);
    assert_eq!(commit(&mut net, first, (&member, generation), 42), 0);
    assert_eq!(committed(&mut net, first), (0, 42));
    let elsewhere = (first + 1) % 3;
    assert_eq!(committed(&mut net, elsewhere).0, NOT_COORDINATOR);
    // Acknowledged once every in-sync replica has it: the same bytes on
    // all three.
    let p = offsets
        .partitions
        .iter()
        .position(|p| p.leader == first as i32)
        .unwrap() as i32;
    net.advance(Duration::from_millis(500));
    let want = log_bytes(&net, first, "__consumer_offsets", p);
    assert!(!want.is_empty());
    for i in 0..3 {
        assert_eq!(
            log_bytes(&net, i, "__consumer_offsets", p),
            want,
            "node {i}"
        );
    }

    // The coordinator dies: the new leader of the group's partition
    // coordinates it, with its offsets and its member.
    net.crash(first);
    net.advance(Duration::from_secs(12));
    let alive = (0..3).find(|&i| i != first).unwrap();
    let second = coordinator(&mut net, alive);
    assert_ne!(second, first);
    assert_eq!(committed(&mut net, second), (0, 42));
    assert_eq!(heartbeat(&mut net, second, (&member, generation)), 0);
    assert_eq!(commit(&mut net, second, (&member, generation), 43), 0);

    // Back, the old coordinator follows the new one's writes and sends
    // clients on.
    net.restart(first);
    net.advance(Duration::from_secs(5));
    assert_eq!(committed(&mut net, first).0, NOT_COORDINATOR);
    assert_eq!(
        log_bytes(&net, first, "__consumer_offsets", p),
        log_bytes(&net, second, "__consumer_offsets", p)
    );

    // And when the second dies, whoever takes over has the last commit.
    net.crash(second);
    net.advance(Duration::from_secs(12));
    let alive = (0..3).find(|&i| i != second).unwrap();
    let third = coordinator(&mut net, alive);
    assert_ne!(third, second);
    assert_eq!(committed(&mut net, third), (0, 43));
    assert_eq!(heartbeat(&mut net, third, (&member, generation)), 0);
}

/// OffsetDelete of `t`-0 through node `at`: the group-level error.
fn delete_offset(net: &mut Net, at: usize) -> Option<i16> {
    let conn = net.client(at);
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0),
                ]),
        ]);
    let r: OffsetDeleteResponse = net.request((at, conn), (ApiKey::OffsetDelete, 0), &req, WAIT)?;
    Some(r.error_code)
}

#[test]
fn a_coordinator_cut_off_from_its_replicas_times_out_commits_and_deletions() {
    let settings = [
        ("num.partitions", "1"),
        ("offsets.topic.num.partitions", "1"),
        ("offsets.commit.timeout.ms", "2000"),
    ];
    let mut net = quorum_net(101, 3, (5, 2), &settings);
    settle(&mut net).unwrap();
    let c = controller(&net);
    assert_eq!(create(&mut net, c, "t", 1).topics[0].error_code, 0);
    let first = coordinator(&mut net, c);
    net.advance(Duration::from_secs(1));
    // A group of no members, known by its offsets (as a consumer that
    // assigns itself partitions commits).
    assert_eq!(commit(&mut net, first, ("", -1), 7), 0);
    assert_eq!(delete_offset(&mut net, first), Some(0));
    assert_eq!(committed(&mut net, first), (0, -1));
    assert_eq!(commit(&mut net, first, ("", -1), 8), 0);

    // Cut off, it can replicate nothing: a commit and a deletion each
    // answer REQUEST_TIMED_OUT after offsets.commit.timeout.ms instead of
    // waiting for ever, and neither changes what it answers for the group.
    net.isolate(first);
    assert_eq!(commit(&mut net, first, ("", -1), 9), REQUEST_TIMED_OUT);
    assert_eq!(
        delete_offset(&mut net, first),
        Some(REQUEST_TIMED_OUT),
        "an OffsetDelete gives up as a commit does"
    );
    assert_eq!(committed(&mut net, first), (0, 8));
}

/// DeleteGroups of `GROUP` through node `at`: the group's error.
fn delete_group(net: &mut Net, at: usize) -> i16 {
    let conn = net.client(at);
    let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(GROUP))]);
    let r: DeleteGroupsResponse = net
        .request((at, conn), (ApiKey::DeleteGroups, 2), &req, WAIT)
        .expect("DeleteGroups answered");
    r.results[0].error_code
}

/// The state of `__consumer_offsets`-0 as node `at` knows it.
fn offsets_partition(net: &Net, at: usize) -> (i32, Vec<i32>, Vec<i32>) {
    let p = &net.status(at).image.topics["__consumer_offsets"].partitions[0];
    (p.leader, p.replicas.clone(), p.isr.clone())
}

/// Advance 200 ms at a time, at most `steps` times, until `done`: whether
/// it came.
fn advance_until(net: &mut Net, steps: usize, done: impl Fn(&Net) -> bool) -> bool {
    (0..steps).any(|_| {
        net.advance(Duration::from_millis(200));
        done(net)
    })
}

#[test]
fn writes_a_cut_off_coordinator_loses_are_not_what_it_knows_when_it_coordinates_again() {
    let settings = [
        ("num.partitions", "1"),
        ("offsets.topic.num.partitions", "1"),
        ("offsets.commit.timeout.ms", "2000"),
    ];
    // Five voters, three replicas of the offsets: two of them can die and
    // the quorum still elects.
    let mut net = quorum_net(103, 5, (5, 2), &settings);
    settle(&mut net).unwrap();
    let c = controller(&net);
    assert_eq!(create(&mut net, c, "t", 1).topics[0].error_code, 0);
    let first = coordinator(&mut net, c);
    net.advance(Duration::from_secs(1));
    let (leader, replicas, _) = offsets_partition(&net, c);
    assert_eq!(leader, first as i32);
    assert_eq!(replicas.len(), 3, "{replicas:?}");
    assert_eq!(commit(&mut net, first, ("", -1), 8), 0);

    // Cut off, it deletes the group (its offsets' tombstones go into its
    // log only) and takes a commit it cannot replicate.
    net.isolate(first);
    assert_eq!(delete_group(&mut net, first), 0);
    assert_eq!(commit(&mut net, first, ("", -1), 9), REQUEST_TIMED_OUT);

    // The others move the partition on; healed, the old coordinator cuts
    // its tail, catches up and is in sync again.
    let alive = (0..5).find(|&i| i != first).unwrap();
    let moved = advance_until(&mut net, 100, |net| {
        offsets_partition(net, alive).0 != first as i32
    });
    assert!(moved, "{:?}", offsets_partition(&net, alive));
    let second = coordinator(&mut net, alive);
    assert_eq!(committed(&mut net, second), (0, 8));
    net.heal();
    let in_sync = advance_until(&mut net, 150, |net| {
        offsets_partition(net, alive).2.contains(&(first as i32))
    });
    assert!(in_sync, "{:?}", offsets_partition(&net, alive));
    assert_eq!(committed(&mut net, first).0, NOT_COORDINATOR);

    // The other replicas die: it coordinates the group again, as the log
    // says it, the deletion and the commit it lost undone.
    for r in replicas.iter().map(|&r| r as usize).filter(|&r| r != first) {
        net.crash(r);
    }
    let back = advance_until(&mut net, 150, |net| {
        offsets_partition(net, first).0 == first as i32
    });
    assert!(back, "{:?}", offsets_partition(&net, first));
    assert_eq!(coordinator(&mut net, first), first);
    assert_eq!(committed(&mut net, first), (0, 8));
}
