//! OffsetDelete: a group's committed offsets go for good (tombstones in
//! `__consumer_offsets`, replayed after a restart), except those of topics
//! its members subscribe to; unknown groups, partitions and groups of
//! other kinds get Kafka's errors, and a failed write leaves the offsets.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::Sim;
use conveyor_core::{Config, ConnId};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn config() -> Config {
    let mut config = Config::default();
    config.set("group.initial.rebalance.delay.ms", "0").unwrap();
    config.set("offsets.topic.num.partitions", "3").unwrap();
    config.set("num.partitions", "2").unwrap();
    config
}

/// OffsetDelete of `parts` (topic, partition): the group error and each
/// partition's (topic, partition, error), in request order.
fn delete(
    sim: &mut Sim,
    c: ConnId,
    group: &str,
    parts: &[(&str, i32)],
) -> (i16, Vec<(String, i32, i16)>) {
    let mut topics: Vec<offset_delete_request::OffsetDeleteRequestTopic> = Vec::new();
    for &(topic, p) in parts {
        let partition =
            offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(p);
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(topics);
    let corr = sim.send(c, ApiKey::OffsetDelete, 0, &req);
    let r: OffsetDeleteResponse = sim.recv(c, ApiKey::OffsetDelete, 0, corr);
    let parts = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    (r.error_code, parts)
}

/// OffsetCommit of `offset` for each of `parts`, by `member` of
/// `generation` (-1 and no member: a commit from outside the group).
fn commit(
    sim: &mut Sim,
    c: ConnId,
    group: &str,
    (generation, member): (i32, &str),
    parts: &[(&str, i32)],
    offset: i64,
) {
    let topics = parts
        .iter()
        .map(|&(topic, p)| {
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset),
                ])
        })
        .collect();
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(topics);
    let corr = sim.send(c, ApiKey::OffsetCommit, 8, &req);
    let r: OffsetCommitResponse = sim.recv(c, ApiKey::OffsetCommit, 8, corr);
    for t in &r.topics {
        assert_eq!(t.partitions[0].error_code, 0, "commit to {:?}", t.name);
    }
}

/// The committed offset of each of `parts` (-1: none).
fn committed(sim: &mut Sim, c: ConnId, group: &str, parts: &[(&str, i32)]) -> Vec<i64> {
    let topics = parts
        .iter()
        .map(|&(topic, p)| {
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![p])
        })
        .collect();
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(topics));
    let corr = sim.send(c, ApiKey::OffsetFetch, 7, &req);
    let r: OffsetFetchResponse = sim.recv(c, ApiKey::OffsetFetch, 7, corr);
    r.topics
        .iter()
        .map(|t| t.partitions[0].committed_offset)
        .collect()
}

fn groups(sim: &mut Sim, c: ConnId) -> Vec<String> {
    let corr = sim.send(c, ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    let r: ListGroupsResponse = sim.recv(c, ApiKey::ListGroups, 4, corr);
    r.groups.iter().map(|g| g.group_id.0.to_string()).collect()
}

/// A consumer protocol subscription (version 1, as clients send it).
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1); // user data
    b.put_i32(0); // owned partitions
    b.freeze()
}

/// One member joins `group` (protocol type `protocol_type`, subscribed to
/// `topics`) and syncs: the group is Stable. Its member id and generation.
fn join(
    sim: &mut Sim,
    c: ConnId,
    group: &str,
    protocol_type: &str,
    topics: &[&str],
) -> (String, i32) {
    let req = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(member))
            .with_protocol_type(s(protocol_type))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(subscription(topics)),
            ])
    };
    let corr = sim.send(c, ApiKey::JoinGroup, 5, &req(""));
    let r: JoinGroupResponse = sim.recv(c, ApiKey::JoinGroup, 5, corr);
    assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = r.member_id.to_string();
    let corr = sim.send(c, ApiKey::JoinGroup, 5, &req(&member));
    let r: JoinGroupResponse = sim.recv(c, ApiKey::JoinGroup, 5, corr);
    assert_eq!(r.error_code, 0);
    let generation = r.generation_id;
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(&member))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(Bytes::from_static(b"assigned")),
        ]);
    let corr = sim.send(c, ApiKey::SyncGroup, 3, &sync);
    let r: SyncGroupResponse = sim.recv(c, ApiKey::SyncGroup, 3, corr);
    assert_eq!(r.error_code, 0);
    (member, generation)
}

#[test]
fn deleted_offsets_stay_deleted_after_a_restart() {
    let mut sim = Sim::new(config());
    let c = sim.open(1);
    sim.metadata(c, "t");
    sim.metadata(c, "u");
    let all = [("t", 0), ("t", 1), ("u", 0)];
    commit(&mut sim, c, "solo", (-1, ""), &all, 7);
    assert_eq!(committed(&mut sim, c, "solo", &all), [7, 7, 7]);

    // Partitions that do not exist are refused one by one; a partition
    // with nothing committed is fine.
    let (error, parts) = delete(
        &mut sim,
        c,
        "solo",
        &[("t", 0), ("t", 9), ("missing", 0), ("u", 1)],
    );
    assert_eq!(error, 0);
    assert_eq!(
        parts,
        [
            ("t".into(), 0, 0),
            ("t".into(), 9, 3),
            ("missing".into(), 0, 3),
            ("u".into(), 1, 0),
        ],
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(committed(&mut sim, c, "solo", &all), [-1, 7, 7]);

    // The process killed (the page cache survives): the tombstone is in
    // the log, so the replay does not bring the offset back.
    sim.disk.restart();
    let mut sim = Sim::with_disk(config(), std::mem::take(&mut sim.disk));
    let c = sim.open(1);
    assert_eq!(committed(&mut sim, c, "solo", &all), [-1, 7, 7]);
    assert_eq!(groups(&mut sim, c), ["solo"]);

    // The last offsets go, and the empty group with them.
    let (error, _) = delete(&mut sim, c, "solo", &[("t", 1), ("u", 0)]);
    assert_eq!(error, 0);
    assert!(groups(&mut sim, c).is_empty());
    assert_eq!(delete(&mut sim, c, "solo", &[("t", 1)]), (69, vec![]));

    // A clean restart keeps it that way.
    sim.broker.shutdown(sim.now);
    sim.run();
    let mut sim = Sim::with_disk(config(), std::mem::take(&mut sim.disk));
    let c = sim.open(1);
    assert_eq!(committed(&mut sim, c, "solo", &all), [-1, -1, -1]);
    assert!(groups(&mut sim, c).is_empty());
}

#[test]
fn group_errors_answer_alone() {
    let mut sim = Sim::new(config());
    let c = sim.open(1);
    sim.metadata(c, "t");
    assert_eq!(
        delete(&mut sim, c, "nobody", &[("t", 0)]),
        (69, vec![]),
        "GROUP_ID_NOT_FOUND"
    );
    assert_eq!(
        delete(&mut sim, c, "", &[("t", 0)]),
        (24, vec![]),
        "INVALID_GROUP_ID"
    );
    // Members of a group that is not a consumer group: nothing can be
    // told about what they use.
    join(&mut sim, c, "workers", "connect", &["t"]);
    assert_eq!(
        delete(&mut sim, c, "workers", &[("t", 0)]),
        (68, vec![]),
        "NON_EMPTY_GROUP"
    );
}

#[test]
fn offsets_of_subscribed_topics_stay_while_the_group_has_members() {
    let mut sim = Sim::new(config());
    let c = sim.open(1);
    sim.metadata(c, "t");
    sim.metadata(c, "u");
    let (member, generation) = join(&mut sim, c, "live", "consumer", &["t"]);
    let both = [("t", 0), ("u", 0)];
    commit(&mut sim, c, "live", (generation, &member), &both, 11);

    let (error, parts) = delete(&mut sim, c, "live", &both);
    assert_eq!(error, 0);
    assert_eq!(
        parts,
        [("t".into(), 0, 86), ("u".into(), 0, 0)],
        "GROUP_SUBSCRIBED_TO_TOPIC for the subscribed topic only"
    );
    assert_eq!(committed(&mut sim, c, "live", &both), [11, -1]);
    assert_eq!(groups(&mut sim, c), ["live"], "a group with members stays");

    // Once the member leaves, the subscribed topic's offset may go too.
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("live")))
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(s(&member)),
        ]);
    let corr = sim.send(c, ApiKey::LeaveGroup, 3, &leave);
    let r: LeaveGroupResponse = sim.recv(c, ApiKey::LeaveGroup, 3, corr);
    assert_eq!(r.error_code, 0);
    assert_eq!(
        delete(&mut sim, c, "live", &[("t", 0)]).1,
        [("t".into(), 0, 0)]
    );
    assert_eq!(committed(&mut sim, c, "live", &both), [-1, -1]);
}

#[test]
fn a_failed_tombstone_write_keeps_the_offset() {
    let mut sim = Sim::new(config());
    let c = sim.open(1);
    sim.metadata(c, "t");
    commit(&mut sim, c, "solo", (-1, ""), &[("t", 0)], 5);
    // The tombstone's append is the next file command.
    sim.disk.fail_after(0);
    assert_eq!(
        delete(&mut sim, c, "solo", &[("t", 0)]),
        (15, vec![]),
        "COORDINATOR_NOT_AVAILABLE"
    );
    assert_eq!(committed(&mut sim, c, "solo", &[("t", 0)]), [5]);
}
