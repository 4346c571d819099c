//! Leader epochs as clients see them (KIP-320, KIP-951), on broker cores
//! over the simulated network of `net/`: requests naming an old leader
//! epoch are fenced and ones naming a newer one are told it is unknown;
//! OffsetForLeaderEpoch and a consumer's fetch say where an epoch ended;
//! ListOffsets names the epoch of each offset it gives, and a new leader
//! whose high watermark has not reached the start of its epoch does not
//! give out a latest offset; a producer sent to a follower is told the
//! leader.

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
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest,
    DeleteRecordsResponse, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceResponse,
};
use kafka_protocol::records::Compression;
use net::{Net, quorum_net};

const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const OFFSET_NOT_AVAILABLE: i16 = 78;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const T0: i64 = 1_700_000_000_000;

/// ListOffsets of `topic`-0 at `timestamp`, naming leader epoch `current`.
fn list_offsets_req(topic: &str, current: i32, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_current_leader_epoch(current)
                        .with_timestamp(timestamp),
                ]),
        ])
}

/// ListOffsets v7 of `topic`-0 at `timestamp` through node `at`, naming
/// leader epoch `current`.
fn list_offset(
    net: &mut Net,
    at: usize,
    topic: &str,
    current: i32,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    let conn = net.client(at);
    let req = list_offsets_req(topic, current, timestamp);
    let r: ListOffsetsResponse = net
        .request((at, conn), (ApiKey::ListOffsets, 7), &req, WAIT)
        .expect("ListOffsets answered");
    r.topics[0].partitions[0].clone()
}

/// OffsetForLeaderEpoch of `topic`-0's `epoch`, naming leader epoch
/// `current`.
fn epoch_end_req(topic: &str, current: i32, epoch: i32) -> OffsetForLeaderEpochRequest {
    OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(epoch),
                ]),
        ])
}

/// OffsetForLeaderEpoch v4 of `topic`-0's `epoch` through node `at`,
/// naming leader epoch `current`.
fn epoch_end(net: &mut Net, at: usize, topic: &str, current: i32, epoch: i32) -> EpochEndOffset {
    let conn = net.client(at);
    let req = epoch_end_req(topic, current, epoch);
    let r: OffsetForLeaderEpochResponse = net
        .request((at, conn), (ApiKey::OffsetForLeaderEpoch, 4), &req, WAIT)
        .expect("OffsetForLeaderEpoch answered");
    r.topics[0].partitions[0].clone()
}

/// A consumer's Fetch v12 of `topic`-0 from `offset` through node `at`,
/// naming leader epoch `current` and the epoch it last fetched.
fn fetch(
    net: &mut Net,
    at: usize,
    topic: &str,
    (current, last_fetched): (i32, i32),
    offset: i64,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    let conn = net.client(at);
    let mut req = common::Sim::fetch_req(topic, offset, 0);
    req.topics[0].partitions[0].current_leader_epoch = current;
    req.topics[0].partitions[0].last_fetched_epoch = last_fetched;
    let r: FetchResponse = net
        .request((at, conn), (ApiKey::Fetch, 12), &req, WAIT)
        .expect("Fetch answered");
    r.responses[0].partitions[0].clone()
}

fn produce_at(net: &mut Net, at: usize, topic: &str, version: i16) -> ProduceResponse {
    let conn = net.client(at);
    let batch = common::batch(&["x"], T0, Compression::None);
    let req = common::Sim::produce_req(topic, 0, batch);
    net.request((at, conn), (ApiKey::Produce, version), &req, WAIT)
        .expect("Produce answered")
}

#[test]
fn requests_naming_another_leader_epoch_are_refused_and_epochs_end_where_the_leader_says() {
    let mut net = cluster(83, (5, 2));
    let c = controller(&net);
    let r = create_replicated(&mut net, c, "e", (1, 3));
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    net.advance(Duration::from_secs(1));
    let old = net.status(c).image.topics["e"].partitions[0].leader as usize;
    for i in 0..5 {
        assert_eq!(produce(&mut net, old, "e", 0, &format!("a{i}")), 0);
    }

    // Epoch 0: every answer names it; a newer one is unknown here.
    let latest = list_offset(&mut net, old, "e", 0, LATEST);
    assert_eq!(
        (latest.error_code, latest.offset, latest.leader_epoch),
        (0, 5, 0)
    );
    let earliest = list_offset(&mut net, old, "e", -1, EARLIEST);
    assert_eq!((earliest.offset, earliest.leader_epoch), (0, 0));
    let by_time = list_offset(&mut net, old, "e", 0, T0);
    assert_eq!((by_time.offset, by_time.leader_epoch), (0, 0));
    assert_eq!(
        list_offset(&mut net, old, "e", 1, LATEST).error_code,
        UNKNOWN_LEADER_EPOCH
    );
    let end = epoch_end(&mut net, old, "e", 0, 0);
    assert_eq!(
        (end.error_code, end.leader_epoch, end.end_offset),
        (0, 0, 5)
    );
    let follower = (0..3).find(|&i| i != old).unwrap();
    assert_eq!(
        epoch_end(&mut net, follower, "e", 0, 0).error_code,
        NOT_LEADER_OR_FOLLOWER,
        "only the leader answers"
    );

    // The leader dies; an in-sync replica leads in epoch 1.
    net.crash(old);
    net.advance(Duration::from_secs(12));
    let alive = (0..3).find(|&i| i != old).unwrap();
    let state = net.status(alive).image.topics["e"].partitions[0].clone();
    assert_eq!(state.leader_epoch, 1, "{state:?}");
    let new = state.leader as usize;
    assert_ne!(new, old);
    for i in 0..3 {
        assert_eq!(produce(&mut net, new, "e", 0, &format!("b{i}")), 0);
    }

    // A client still on epoch 0 is fenced, one ahead is told it is unknown.
    assert_eq!(
        fetch(&mut net, new, "e", (0, -1), 0).error_code,
        FENCED_LEADER_EPOCH
    );
    assert_eq!(
        fetch(&mut net, new, "e", (2, -1), 0).error_code,
        UNKNOWN_LEADER_EPOCH
    );
    let now = fetch(&mut net, new, "e", (1, -1), 0);
    assert_eq!(now.error_code, 0);
    assert_eq!(common::values_of(&now.records.unwrap_or_default()).len(), 8);
    assert_eq!(
        list_offset(&mut net, new, "e", 0, LATEST).error_code,
        FENCED_LEADER_EPOCH
    );
    assert_eq!(
        epoch_end(&mut net, new, "e", 0, 0).error_code,
        FENCED_LEADER_EPOCH
    );

    // Where each epoch ends on the new leader: 0 where 1 began, 1 at the
    // log end, one it never had is unknown.
    let end = epoch_end(&mut net, new, "e", 1, 0);
    assert_eq!(
        (end.error_code, end.leader_epoch, end.end_offset),
        (0, 0, 5)
    );
    let end = epoch_end(&mut net, new, "e", 1, 1);
    assert_eq!((end.leader_epoch, end.end_offset), (1, 8));
    let end = epoch_end(&mut net, new, "e", -1, 4);
    assert_eq!(
        (end.error_code, end.leader_epoch, end.end_offset),
        (0, -1, -1)
    );

    // A consumer that read epoch 0 up to offset 7 (more than epoch 0 has
    // here) is told where epoch 0 ended, and sent nothing.
    let cut = fetch(&mut net, new, "e", (1, 0), 7);
    assert_eq!(cut.error_code, 0);
    assert_eq!(
        (cut.diverging_epoch.epoch, cut.diverging_epoch.end_offset),
        (0, 5)
    );
    assert!(cut.records.is_none_or(|r| r.is_empty()));
    // Told at once, not after the fetch's wait: nothing it waits for
    // can come before it truncates.
    let conn = net.client(new);
    let mut req = common::Sim::fetch_req("e", 7, 30_000);
    req.topics[0].partitions[0].current_leader_epoch = 1;
    req.topics[0].partitions[0].last_fetched_epoch = 0;
    let started = net.now.mono;
    let r: FetchResponse = net
        .request((new, conn), (ApiKey::Fetch, 12), &req, WAIT)
        .expect("a diverged fetch is answered before its wait ends");
    assert_eq!(r.responses[0].partitions[0].diverging_epoch.end_offset, 5);
    assert!(net.now.mono.saturating_since(started) < Duration::from_secs(1));
    // An epoch this log knows no end of (above every one it has, the
    // fetcher naming no current epoch) is out of range, as Kafka answers.
    assert_eq!(
        fetch(&mut net, new, "e", (-1, 4), 5).error_code,
        OFFSET_OUT_OF_RANGE
    );
    let fine = fetch(&mut net, new, "e", (1, 0), 5);
    assert_eq!(fine.diverging_epoch.epoch, -1);
    assert_eq!(
        common::values_of(&fine.records.unwrap_or_default()).len(),
        3
    );

    let latest = list_offset(&mut net, new, "e", 1, LATEST);
    assert_eq!(
        (latest.error_code, latest.offset, latest.leader_epoch),
        (0, 8, 1)
    );
    let late = list_offset(&mut net, new, "e", 1, T0 + 1);
    assert_eq!(late.offset, -1, "no record that late");

    // Records deleted into epoch 1: the earliest offset is of epoch 1,
    // not of the epoch 0 the log no longer has (a consumer told 0 would
    // take the epochs for diverged).
    let conn = net.client(new);
    let req = DeleteRecordsRequest::default()
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(name("e"))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(6),
                ]),
        ])
        .with_timeout_ms(1000);
    let r: DeleteRecordsResponse = net
        .request((new, conn), (ApiKey::DeleteRecords, 2), &req, WAIT)
        .expect("DeleteRecords answered");
    assert_eq!(r.topics[0].partitions[0].low_watermark, 6);
    let earliest = list_offset(&mut net, new, "e", 1, EARLIEST);
    assert_eq!(
        (earliest.error_code, earliest.offset, earliest.leader_epoch),
        (0, 6, 1)
    );
    let end = epoch_end(&mut net, new, "e", 1, 0);
    assert_eq!((end.leader_epoch, end.end_offset), (0, 6), "{end:?}");
    // A follower moves its log start up to the leader's, checkpointed.
    let follower = (0..3).find(|&i| i != old && i != new).unwrap();
    net.advance(Duration::from_secs(1));
    let disk = &net.nodes[follower].disk;
    let starts = disk
        .paths()
        .into_iter()
        .find(|p| p.ends_with("log-start-offset-checkpoint"))
        .and_then(|p| disk.file(&p))
        .unwrap_or_default();
    let starts = String::from_utf8_lossy(starts);
    assert!(starts.lines().any(|l| l == "e 0 6"), "{starts}");

    // A producer sent to the follower is told the leader (v10, KIP-951).
    let follower = (0..3).find(|&i| i != old && i != new).unwrap();
    let r = produce_at(&mut net, follower, "e", 10);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(
        (p.current_leader.leader_id.0, p.current_leader.leader_epoch),
        (new as i32, 1)
    );
    assert_eq!(r.node_endpoints.len(), 1, "{:?}", r.node_endpoints);
    let n = &r.node_endpoints[0];
    assert_eq!(
        (n.node_id.0, n.host.as_str(), n.port),
        (new as i32, format!("10.0.0.{}", new + 1).as_str(), 9092)
    );
    let r = produce_at(&mut net, follower, "e", 9);
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        NOT_LEADER_OR_FOLLOWER
    );
    assert!(r.node_endpoints.is_empty());
}

#[test]
fn a_new_leader_gives_no_latest_offset_until_its_high_watermark_reaches_its_epoch() {
    // Four brokers: the controller holds no replica, so one follower can
    // be cut off from the other replicas and still keep its session.
    let settings = [("num.partitions", "1")];
    let mut net = quorum_net(89, 4, (5, 2), &settings);
    settle(&mut net).unwrap();
    let c = controller(&net);
    let others: Vec<usize> = (0..4).filter(|&i| i != c).collect();
    let (leader, next, slow) = (others[0], others[1], others[2]);
    let conn = net.client(c);
    let assignment = CreatableReplicaAssignment::default()
        .with_partition_index(0)
        .with_broker_ids([leader, next, slow].map(|b| BrokerId(b as i32)).to_vec());
    let req = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name("lag"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![assignment]),
        ])
        .with_timeout_ms(5_000);
    let r: CreateTopicsResponse = net
        .request((c, conn), (ApiKey::CreateTopics, 7), &req, WAIT)
        .unwrap();
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    net.advance(Duration::from_secs(1));
    assert_eq!(
        net.status(c).image.topics["lag"].partitions[0].leader,
        leader as i32
    );
    for i in 0..3 {
        assert_eq!(produce(&mut net, leader, "lag", 0, &format!("a{i}")), 0);
    }

    // The slow follower stops copying (it still reaches the controller,
    // so it stays registered and in the ISR); acks=1 records reach the
    // next replica only, and the high watermark stays at 3.
    net.separate(slow, leader);
    net.separate(slow, next);
    for i in 0..2 {
        assert_eq!(produce_acks_1(&mut net, leader, "lag", &format!("b{i}")), 0);
    }
    net.advance(Duration::from_secs(1));

    // The leader dies; the next replica leads with 5 records and a high
    // watermark of 3 that cannot move while the slow one is in the ISR.
    net.crash(leader);
    net.advance(Duration::from_secs(12));
    let state = net.status(c).image.topics["lag"].partitions[0].clone();
    assert_eq!(state.leader, next as i32, "{state:?}");
    assert!(state.isr.contains(&(slow as i32)), "{state:?}");
    let latest = list_offset(&mut net, next, "lag", 1, LATEST);
    assert_eq!(latest.error_code, OFFSET_NOT_AVAILABLE, "{latest:?}");
    let by_time = list_offset(&mut net, next, "lag", 1, T0 + 1);
    assert_eq!(
        by_time.error_code, OFFSET_NOT_AVAILABLE,
        "past the high watermark"
    );
    let by_time = list_offset(&mut net, next, "lag", 1, T0);
    assert_eq!((by_time.error_code, by_time.offset), (0, 0), "below it");
    assert_eq!(
        list_offset(&mut net, next, "lag", 1, EARLIEST).error_code,
        0
    );

    // Once the slow follower copies, the high watermark passes the
    // epoch's start and the latest offset is given.
    net.heal();
    net.advance(Duration::from_secs(3));
    let latest = list_offset(&mut net, next, "lag", 1, LATEST);
    assert_eq!(
        (latest.error_code, latest.offset, latest.leader_epoch),
        (0, 5, 1)
    );
}

#[test]
fn a_single_broker_leads_every_partition_in_epoch_0() {
    let mut sim = common::Sim::new(conveyor_core::Config::default());
    let c = sim.open(1);
    assert_eq!(sim.metadata(c, "one").topics[0].error_code, 0);
    for _ in 0..2 {
        let corr = sim.produce(
            c,
            "one",
            0,
            common::batch(&["a", "b"], T0, Compression::None),
        );
        let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let offsets = |sim: &mut common::Sim, version, current, ts| {
        let corr = sim.send(
            c,
            ApiKey::ListOffsets,
            version,
            &list_offsets_req("one", current, ts),
        );
        let r: ListOffsetsResponse = sim.recv(c, ApiKey::ListOffsets, version, corr);
        r.topics[0].partitions[0].clone()
    };
    let latest = offsets(&mut sim, 7, 0, LATEST);
    assert_eq!(
        (latest.error_code, latest.offset, latest.leader_epoch),
        (0, 4, 0)
    );
    let earliest = offsets(&mut sim, 4, -1, EARLIEST);
    assert_eq!((earliest.offset, earliest.leader_epoch), (0, 0));
    assert_eq!(
        offsets(&mut sim, 7, 1, LATEST).error_code,
        UNKNOWN_LEADER_EPOCH
    );
    let v3 = offsets(&mut sim, 3, -1, LATEST);
    assert_eq!((v3.offset, v3.leader_epoch), (4, -1), "no epoch before v4");

    let ends = |sim: &mut common::Sim, version, current, epoch| {
        let corr = sim.send(
            c,
            ApiKey::OffsetForLeaderEpoch,
            version,
            &epoch_end_req("one", current, epoch),
        );
        let r: OffsetForLeaderEpochResponse =
            sim.recv(c, ApiKey::OffsetForLeaderEpoch, version, corr);
        r.topics[0].partitions[0].clone()
    };
    for version in 2..=4 {
        let end = ends(&mut sim, version, 0, 0);
        assert_eq!(
            (end.error_code, end.leader_epoch, end.end_offset),
            (0, 0, 4)
        );
    }
    let end = ends(&mut sim, 4, -1, 3);
    assert_eq!(
        (end.leader_epoch, end.end_offset),
        (-1, -1),
        "never led in 3"
    );
    assert_eq!(ends(&mut sim, 4, 2, 0).error_code, UNKNOWN_LEADER_EPOCH);
}
