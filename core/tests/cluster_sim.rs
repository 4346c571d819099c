//! Topics through the metadata quorum, with three broker cores on the
//! simulated network of `net/`: the active controller places partitions on
//! the registered brokers and commits them; every broker applies the same
//! records, holds logs for exactly the partitions it was given, answers
//! Metadata with the whole cluster, and serves only the partitions it
//! leads. Then the same under faults, over many seeds: whatever the
//! controller answered as created is in every image, and every broker
//! holds the logs its image gives it.
//!
//! `CONVEYOR_CLUSTER_SEEDS=N` runs N seeds; `CONVEYOR_CLUSTER_SEED=S`
//! replays one (`CONVEYOR_SIM_NET_TRACE=1` prints its faults).

#[allow(dead_code)]
mod brokers;
mod common;
#[allow(dead_code)]
mod net;
#[allow(dead_code)]
#[path = "seeded/rng.rs"]
mod rng;

use std::collections::BTreeSet;
use std::time::Duration;

use brokers::*;
use conveyor_core::ConnId;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, FetchResponse,
    InitProducerIdRequest, InitProducerIdResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use net::Net;

const LEADER_NOT_AVAILABLE: i16 = 5;
const NOT_CONTROLLER: i16 = 41;

fn metadata(net: &mut Net, at: usize, conn: ConnId, topic: &str, create: bool) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic))),
        ]))
        .with_allow_auto_topic_creation(create);
    net.request((at, conn), (ApiKey::Metadata, 12), &req, WAIT)
        .expect("Metadata answered")
}

/// The partitions of `topic` the image of node `at` makes it a replica of.
fn assigned(net: &Net, at: usize, topic: &str) -> BTreeSet<i32> {
    let s = net.status(at);
    s.image.topics.get(topic).map_or_else(BTreeSet::new, |t| {
        t.partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.replicas.contains(&s.node_id))
            .map(|(i, _)| i as i32)
            .collect()
    })
}

#[test]
fn topics_are_created_by_the_controller_and_placed_across_the_brokers() {
    let mut net = cluster(7, (5, 2));
    let c = controller(&net);
    let other = (c + 1) % 3;

    // Another broker is not the controller, and says which is.
    let r = create(&mut net, other, "orders", 6);
    assert_eq!(r.topics[0].error_code, NOT_CONTROLLER);
    let message = r.topics[0].error_message.as_ref().unwrap().to_string();
    assert!(message.contains(&format!("broker {c}")), "{message}");

    let r = create(&mut net, c, "orders", 6);
    let t = &r.topics[0];
    assert_eq!(t.error_code, 0, "{:?}", t.error_message);
    assert!(!t.topic_id.is_nil());
    assert_eq!((t.num_partitions, t.replication_factor), (6, 1));
    net.advance(Duration::from_secs(1));

    // Every broker has the same topic, the leaders spread two to a broker,
    // and each holds logs for exactly the partitions given to it.
    let image = net.status(0).image.topics["orders"].clone();
    assert_eq!(image.id, t.topic_id);
    for i in 0..3 {
        assert_eq!(net.status(i).image.topics["orders"], image, "node {i}");
        assert_eq!(assigned(&net, i, "orders").len(), 2, "node {i}");
        assert_eq!(
            held(&mut net, i, "orders"),
            assigned(&net, i, "orders"),
            "node {i}"
        );
    }

    // Metadata from any broker names all three and each partition's leader.
    for i in 0..3 {
        let conn = net.client(i);
        let m = metadata(&mut net, i, conn, "orders", false);
        assert_eq!(m.brokers.len(), 3, "node {i}");
        assert_eq!(m.controller_id.0, c as i32);
        let topic = &m.topics[0];
        assert_eq!(topic.error_code, 0);
        assert_eq!(topic.topic_id, image.id);
        for p in &topic.partitions {
            let want = &image.partitions[p.partition_index as usize];
            assert_eq!(p.leader_id.0, want.leader);
            assert_eq!(p.replica_nodes.len(), 1);
        }
    }

    // The leader takes a produce and serves it back; the others refuse it.
    for p in 0..6 {
        let leader = image.partitions[p as usize].leader as usize;
        assert_eq!(
            produce(&mut net, leader, "orders", p, "v"),
            0,
            "partition {p}"
        );
        let elsewhere = (leader + 1) % 3;
        let code = produce(&mut net, elsewhere, "orders", p, "w");
        assert_eq!(
            code, NOT_LEADER_OR_FOLLOWER,
            "partition {p} on node {elsewhere}"
        );
    }
    let leader = image.partitions[0].leader as usize;
    let conn = net.client(leader);
    let f: FetchResponse = net
        .request(
            (leader, conn),
            (ApiKey::Fetch, 12),
            &common::Sim::fetch_req("orders", 0, 0),
            WAIT,
        )
        .unwrap();
    let part = &f.responses[0].partitions[0];
    assert_eq!((part.error_code, part.high_watermark), (0, 1));
    let values = common::values_of(part.records.as_ref().unwrap());
    assert_eq!(values, vec![(0, "v".to_owned())]);
    let follower = (leader + 1) % 3;
    let conn = net.client(follower);
    let f: FetchResponse = net
        .request(
            (follower, conn),
            (ApiKey::Fetch, 12),
            &common::Sim::fetch_req("orders", 0, 0),
            WAIT,
        )
        .unwrap();
    assert_eq!(
        f.responses[0].partitions[0].error_code,
        NOT_LEADER_OR_FOLLOWER
    );

    // Another topic of the same name is refused.
    assert_eq!(create(&mut net, c, "orders", 1).topics[0].error_code, 36);
}

#[test]
fn a_topic_auto_created_on_any_broker_is_created_by_the_controller() {
    let mut net = cluster(11, (5, 2));
    let c = controller(&net);
    for (i, at) in [(c + 1) % 3, c].into_iter().enumerate() {
        let topic = format!("auto-{i}");
        let conn = net.client(at);
        let first = metadata(&mut net, at, conn, &topic, true);
        assert_eq!(
            first.topics[0].error_code, LEADER_NOT_AVAILABLE,
            "asked at {at}"
        );
        let mut found = None;
        for _ in 0..50 {
            net.advance(Duration::from_millis(100));
            let m = metadata(&mut net, at, conn, &topic, true);
            if m.topics[0].error_code == 0 {
                found = Some(m);
                break;
            }
        }
        let m = found.unwrap_or_else(|| panic!("{topic} never created"));
        assert_eq!(m.topics[0].partitions.len(), 3, "num.partitions");
    }
    // Without leave to create, nothing is.
    let conn = net.client(0);
    let m = metadata(&mut net, 0, conn, "never", false);
    assert_eq!(m.topics[0].error_code, 3);
    net.advance(Duration::from_secs(2));
    assert!(!net.status(0).image.topics.contains_key("never"));
}

#[test]
fn partitions_grow_and_topics_go_on_every_broker() {
    let mut net = cluster(13, (5, 2));
    let c = controller(&net);
    assert_eq!(create(&mut net, c, "t", 3).topics[0].error_code, 0);
    let conn = net.client(c);
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(name("t"))
                .with_count(6),
        ])
        .with_timeout_ms(5_000);
    let r: CreatePartitionsResponse = net
        .request((c, conn), (ApiKey::CreatePartitions, 3), &req, WAIT)
        .unwrap();
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
    net.advance(Duration::from_secs(1));
    for i in 0..3 {
        assert_eq!(net.status(i).image.topics["t"].partitions.len(), 6);
        assert_eq!(held(&mut net, i, "t"), assigned(&net, i, "t"), "node {i}");
        assert_eq!(assigned(&net, i, "t").len(), 2, "node {i}");
    }
    // A broker that restarts keeps its partitions and no others.
    let restarted = (c + 2) % 3;
    net.crash(restarted);
    net.advance(Duration::from_millis(500));
    net.restart(restarted);
    net.advance(Duration::from_secs(3));
    assert_eq!(
        held(&mut net, restarted, "t"),
        assigned(&net, restarted, "t")
    );

    let c = controller(&net);
    let conn = net.client(c);
    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![name("t")])
        .with_timeout_ms(5_000);
    let r: DeleteTopicsResponse = net
        .request((c, conn), (ApiKey::DeleteTopics, 5), &req, WAIT)
        .unwrap();
    assert_eq!(r.responses[0].error_code, 0);
    net.advance(Duration::from_secs(1));
    for i in 0..3 {
        assert!(!net.status(i).image.topics.contains_key("t"));
        assert!(held(&mut net, i, "t").is_empty(), "node {i} still holds t");
    }
}

/// One seed: topics created on whichever broker leads, under faults;
/// after healing, every topic the controller said it created is in every
/// image, and every broker holds the logs its image gives it.
fn run_seed(seed: u64) -> Result<usize, String> {
    let mut net = cluster(seed, (20, 5));
    let mut created = Vec::new();
    for round in 0..4 {
        let topic = format!("s{round}");
        let at = net.status(0).leader.unwrap_or(0) as usize;
        if !net.nodes[at].down {
            let conn = net.client(at);
            let req = CreateTopicsRequest::default()
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(name(&topic))
                        .with_num_partitions(1 + (seed % 5) as i32)
                        .with_replication_factor(-1),
                ])
                .with_timeout_ms(3_000);
            let answer: Option<CreateTopicsResponse> = net.request(
                (at, conn),
                (ApiKey::CreateTopics, 7),
                &req,
                Duration::from_millis(50),
            );
            if let Some(r) = answer {
                if r.topics[0].error_code == 0 {
                    created.push((topic.clone(), r.topics[0].topic_id));
                }
            }
        }
        net.faults(Duration::from_secs(3));
        settle(&mut net)?;
    }
    net.advance(Duration::from_secs(2));
    for i in 0..3 {
        let image = net.status(i).image;
        for (topic, id) in &created {
            match image.topics.get(topic) {
                Some(t) if t.id == *id => {}
                _ => return Err(format!("node {i} lacks {topic}, answered as created")),
            }
        }
        for topic in image.topics.keys() {
            let (h, a) = (held(&mut net, i, topic), assigned(&net, i, topic));
            if h != a {
                return Err(format!(
                    "node {i} holds partitions {h:?} of {topic}; its image gives it {a:?}"
                ));
            }
        }
    }
    Ok(created.len())
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

#[test]
fn what_the_controller_created_survives_faults_on_every_broker() {
    if let Some(seed) = env_u64("CONVEYOR_CLUSTER_SEED") {
        run_seed(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        return;
    }
    let seeds = env_u64("CONVEYOR_CLUSTER_SEEDS").unwrap_or(300);
    let mut created = 0;
    for seed in 0..seeds {
        match run_seed(seed) {
            Ok(n) => created += n,
            Err(e) => panic!(
                "seed {seed}: {e}\nreplay: CONVEYOR_CLUSTER_SEED={seed} cargo test -p conveyor-core --test cluster_sim"
            ),
        }
    }
    // The runs must have created topics, not only refused them.
    assert!(
        created as u64 >= seeds,
        "{created} topics over {seeds} seeds"
    );
}

#[test]
fn each_group_has_one_coordinator_and_the_others_send_clients_to_it() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{
        FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest,
        HeartbeatResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
        OffsetFetchResponse,
    };
    const NOT_COORDINATOR: i16 = 16;

    let mut net = cluster(17, (5, 2));
    let c = controller(&net);
    assert_eq!(create(&mut net, c, "orders", 3).topics[0].error_code, 0);
    // The controller creates __consumer_offsets once all three registered.
    net.advance(Duration::from_secs(2));
    let offsets = net.status(0).image.topics["__consumer_offsets"].clone();
    assert_eq!(offsets.partitions.len(), 50);
    let leaders: BTreeSet<i32> = offsets.partitions.iter().map(|p| p.leader).collect();
    assert_eq!(leaders, BTreeSet::from([0, 1, 2]), "coordinators spread");

    let mut coordinators = BTreeSet::new();
    for g in 0..12 {
        let group = format!("g{g}");
        let find = |net: &mut Net, at: usize| {
            let conn = net.client(at);
            let req =
                FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.clone()));
            let r: FindCoordinatorResponse = net
                .request((at, conn), (ApiKey::FindCoordinator, 3), &req, WAIT)
                .unwrap();
            assert_eq!(r.error_code, 0, "{group} from node {at}");
            r.node_id.0
        };
        let answers: BTreeSet<i32> = (0..3).map(|at| find(&mut net, at)).collect();
        assert_eq!(
            answers.len(),
            1,
            "{group}: one coordinator, whoever is asked"
        );
        let coordinator = *answers.first().unwrap() as usize;
        coordinators.insert(coordinator);

        // Another broker sends the client back to find it.
        let other = (coordinator + 1) % 3;
        let conn = net.client(other);
        let hb = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_member_id(StrBytes::from_static_str("m"));
        let r: HeartbeatResponse = net
            .request((other, conn), (ApiKey::Heartbeat, 4), &hb, WAIT)
            .unwrap();
        assert_eq!(r.error_code, NOT_COORDINATOR);

        // The coordinator keeps the group's offsets, for any topic's
        // partition, wherever that partition is led.
        let commit = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(name("orders"))
                    .with_partitions(
                        (0..3)
                            .map(|p| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(10 + i64::from(p))
                            })
                            .collect(),
                    ),
            ]);
        for (at, want) in [(other, NOT_COORDINATOR), (coordinator, 0)] {
            let conn = net.client(at);
            let r: OffsetCommitResponse = net
                .request((at, conn), (ApiKey::OffsetCommit, 8), &commit, WAIT)
                .unwrap();
            for p in &r.topics[0].partitions {
                assert_eq!(p.error_code, want, "{group} committed at node {at}");
            }
        }
        let conn = net.client(coordinator);
        let fetch = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(name("orders"))
                    .with_partition_indexes(vec![0, 1, 2]),
            ]));
        let r: OffsetFetchResponse = net
            .request((coordinator, conn), (ApiKey::OffsetFetch, 7), &fetch, WAIT)
            .unwrap();
        let got: Vec<i64> = r.topics[0]
            .partitions
            .iter()
            .map(|p| p.committed_offset)
            .collect();
        assert_eq!(got, vec![10, 11, 12], "{group}");
    }
    assert!(
        coordinators.len() > 1,
        "groups spread over coordinators: {coordinators:?}"
    );
}

fn producer_id(net: &mut Net, at: usize) -> i64 {
    let conn = net.client(at);
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let r: InitProducerIdResponse = net
        .request((at, conn), (ApiKey::InitProducerId, 4), &req, WAIT)
        .expect("InitProducerId answered");
    assert_eq!(r.error_code, 0, "InitProducerId at {at}");
    r.producer_id.0
}

#[test]
fn producer_ids_never_repeat_across_brokers_or_restarts() {
    let mut net = cluster(51, (5, 2));
    let mut seen = BTreeSet::new();
    let mut take = |net: &mut Net, at: usize, n: usize| {
        for _ in 0..n {
            let id = producer_id(net, at);
            assert!(
                id >= 0 && seen.insert(id),
                "producer id {id} from {at} given before"
            );
        }
    };
    // Every broker at once claims a block from the same free id: one wins
    // each round, the others claim again.
    for at in 0..3 {
        take(&mut net, at, 3);
    }
    // Past a block's end on one broker.
    take(&mut net, 1, 1_100);
    // A restarted broker takes a new block, never its old one again.
    net.crash(2);
    net.restart(2);
    settle(&mut net).unwrap();
    take(&mut net, 2, 5);
    // The controller claims through the same records.
    let c = controller(&net);
    take(&mut net, c, 2);
    let image = net.status(c).image;
    assert!(
        image.next_producer_id >= 2_000,
        "{}",
        image.next_producer_id
    );
}
