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

mod common;
#[allow(dead_code)]
mod net;
#[allow(dead_code)]
#[path = "seeded/rng.rs"]
mod rng;

use std::collections::BTreeSet;
use std::time::Duration;

use conveyor_core::ConnId;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, FetchResponse, InitProducerIdRequest, InitProducerIdResponse,
    MetadataRequest, MetadataResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use net::{Net, quorum_net};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const LEADER_NOT_AVAILABLE: i16 = 5;
const NOT_CONTROLLER: i16 = 41;
const WAIT: Duration = Duration::from_secs(10);

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// Three brokers, run until one leads and every one is registered.
fn cluster(seed: u64, delays: (u64, u64)) -> Net {
    let mut net = quorum_net(seed, 3, delays, &[("num.partitions", "3")]);
    settle(&mut net).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    net
}

/// Run until a leader is known to all and every broker is in every image.
fn settle(net: &mut Net) -> Result<(), String> {
    for _ in 0..600 {
        net.advance(Duration::from_millis(100));
        let statuses: Vec<_> = (0..net.nodes.len()).map(|i| net.status(i)).collect();
        let leader = statuses[0].leader;
        let agreed = leader.is_some()
            && statuses.iter().all(|s| {
                s.leader == leader
                    && s.image.brokers.len() == net.nodes.len()
                    && s.applied == s.committed
            });
        if agreed {
            return Ok(());
        }
    }
    Err("the cluster never settled".into())
}

fn controller(net: &Net) -> usize {
    net.status(0).leader.expect("a controller") as usize
}

fn create(net: &mut Net, at: usize, topic: &str, partitions: i32) -> CreateTopicsResponse {
    let conn = net.client(at);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(-1),
        ])
        .with_timeout_ms(5_000);
    net.request((at, conn), (ApiKey::CreateTopics, 7), &req, WAIT)
        .expect("CreateTopics answered")
}

fn metadata(net: &mut Net, at: usize, conn: ConnId, topic: &str, create: bool) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic))),
        ]))
        .with_allow_auto_topic_creation(create);
    net.request((at, conn), (ApiKey::Metadata, 12), &req, WAIT)
        .expect("Metadata answered")
}

/// The partitions of `topic` node `at` holds logs for.
fn held(net: &mut Net, at: usize, topic: &str) -> BTreeSet<i32> {
    let conn = net.client(at);
    let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
        DescribableLogDirTopic::default()
            .with_topic(name(topic))
            .with_partitions((0..64).collect()),
    ]));
    let r: DescribeLogDirsResponse = net
        .request((at, conn), (ApiKey::DescribeLogDirs, 4), &req, WAIT)
        .expect("DescribeLogDirs answered");
    r.results
        .iter()
        .flat_map(|d| &d.topics)
        .flat_map(|t| &t.partitions)
        .map(|p| p.partition_index)
        .collect()
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

fn produce(net: &mut Net, at: usize, topic: &str, partition: i32, value: &str) -> i16 {
    let conn = net.client(at);
    let batch = common::batch(&[value], 1_700_000_000_000, Compression::None);
    let req = common::Sim::produce_req(topic, partition, batch);
    let r: ProduceResponse = net
        .request((at, conn), (ApiKey::Produce, 9), &req, WAIT)
        .expect("Produce answered");
    r.responses[0].partition_responses[0].error_code
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

/// The bytes of every `.log` segment of `topic`-`p` on node `at`, in order.
fn log_bytes(net: &Net, at: usize, topic: &str, p: i32) -> Vec<u8> {
    let dir = format!("{topic}-{p}/");
    let disk = &net.nodes[at].disk;
    let mut paths: Vec<String> = disk
        .paths()
        .into_iter()
        .filter(|path| path.contains(&dir) && path.ends_with(".log"))
        .collect();
    paths.sort();
    paths
        .iter()
        .flat_map(|path| disk.file(path).unwrap_or_default().to_vec())
        .collect()
}

fn high_watermark(net: &mut Net, at: usize, topic: &str, p: i32) -> i64 {
    let conn = net.client(at);
    let mut req = common::Sim::fetch_req(topic, 0, 0);
    req.topics[0].partitions[0].partition = p;
    let f: FetchResponse = net
        .request((at, conn), (ApiKey::Fetch, 12), &req, WAIT)
        .expect("Fetch answered");
    let part = &f.responses[0].partitions[0];
    assert_eq!(part.error_code, 0, "fetch of {topic}-{p} at {at}");
    part.high_watermark
}

#[test]
fn replicas_copy_their_leader_and_acks_all_waits_for_every_in_sync_one() {
    let mut net = cluster(17, (5, 2));
    let c = controller(&net);
    let conn = net.client(c);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name("r"))
                .with_num_partitions(2)
                .with_replication_factor(3),
        ])
        .with_timeout_ms(5_000);
    let r: CreateTopicsResponse = net
        .request((c, conn), (ApiKey::CreateTopics, 7), &req, WAIT)
        .unwrap();
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert_eq!(r.topics[0].replication_factor, 3);
    net.advance(Duration::from_secs(1));
    let image = net.status(0).image.topics["r"].clone();
    for i in 0..3 {
        assert_eq!(held(&mut net, i, "r"), BTreeSet::from([0, 1]), "node {i}");
    }

    // acks=all to each leader: every answer comes, in order, and every
    // replica ends with the leader's bytes.
    for p in 0..2 {
        let leader = image.partitions[p as usize].leader as usize;
        for i in 0..20 {
            assert_eq!(produce(&mut net, leader, "r", p, &format!("v{i}")), 0);
        }
        net.advance(Duration::from_secs(2));
        assert_eq!(high_watermark(&mut net, leader, "r", p), 20);
        let want = log_bytes(&net, leader, "r", p);
        assert!(!want.is_empty());
        for i in 0..3 {
            assert_eq!(log_bytes(&net, i, "r", p), want, "node {i}, partition {p}");
        }
    }

    // A follower stops: acks=all times out and the high watermark holds,
    // acks=1 is answered; once it is back, both catch up.
    let leader = image.partitions[0].leader as usize;
    let follower = (leader + 1) % 3;
    net.pause(follower, true);
    net.advance(Duration::from_secs(1));
    assert_eq!(
        produce(&mut net, leader, "r", 0, "late"),
        7,
        "REQUEST_TIMED_OUT"
    );
    let conn = net.client(leader);
    let batch = common::batch(&["one"], 1_700_000_000_000, Compression::None);
    let req = common::Sim::produce_req("r", 0, batch).with_acks(1);
    let r: ProduceResponse = net
        .request((leader, conn), (ApiKey::Produce, 9), &req, WAIT)
        .unwrap();
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(high_watermark(&mut net, leader, "r", 0), 20);
    net.pause(follower, false);
    net.advance(Duration::from_secs(3));
    assert_eq!(high_watermark(&mut net, leader, "r", 0), 22);
    let want = log_bytes(&net, leader, "r", 0);
    assert_eq!(log_bytes(&net, follower, "r", 0), want);

    // More in-sync replicas asked for than there are: refused.
    let conn = net.client(c);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name("strict"))
                .with_num_partitions(1)
                .with_replication_factor(3)
                .with_configs(vec![
                    kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default(
                    )
                    .with_name(StrBytes::from_static_str("min.insync.replicas"))
                    .with_value(Some(StrBytes::from_static_str("4"))),
                ]),
        ])
        .with_timeout_ms(5_000);
    let r: CreateTopicsResponse = net
        .request((c, conn), (ApiKey::CreateTopics, 7), &req, WAIT)
        .unwrap();
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    net.advance(Duration::from_secs(1));
    let leader = net.status(0).image.topics["strict"].partitions[0].leader as usize;
    assert_eq!(
        produce(&mut net, leader, "strict", 0, "x"),
        19,
        "NOT_ENOUGH_REPLICAS"
    );
}

/// What node `at` reads of `topic`-`p` from offset 0 (up to its high
/// watermark), as values.
fn values(net: &mut Net, at: usize, topic: &str, p: i32) -> Vec<String> {
    let conn = net.client(at);
    let mut req = common::Sim::fetch_req(topic, 0, 0);
    req.topics[0].partitions[0].partition = p;
    let f: FetchResponse = net
        .request((at, conn), (ApiKey::Fetch, 12), &req, WAIT)
        .expect("Fetch answered");
    let part = &f.responses[0].partitions[0];
    assert_eq!(part.error_code, 0, "fetch of {topic}-{p} at {at}");
    let records = part.records.clone().unwrap_or_default();
    common::values_of(&records)
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn a_dead_leaders_partitions_pass_to_an_in_sync_replica_and_nothing_acknowledged_is_lost() {
    for seed in 23..31 {
        failover(seed);
    }
}

fn failover(seed: u64) {
    let mut net = cluster(seed, (5, 2));
    let c = controller(&net);
    let conn = net.client(c);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name("f"))
                .with_num_partitions(3)
                .with_replication_factor(3),
        ])
        .with_timeout_ms(5_000);
    let r: CreateTopicsResponse = net
        .request((c, conn), (ApiKey::CreateTopics, 7), &req, WAIT)
        .unwrap();
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    net.advance(Duration::from_secs(1));
    let image = net.status(c).image.topics["f"].clone();
    let leader_of = |p: usize| image.partitions[p].leader as usize;

    // First a broker that is not the controller, then the controller.
    let plain = (0..3).find(|&p| leader_of(p) != c).unwrap();
    let led_by_controller = (0..3).find(|&p| leader_of(p) == c).unwrap();
    for (round, p) in [plain, led_by_controller].into_iter().enumerate() {
        let old = leader_of(p);
        let p32 = p as i32;
        let mut acked = Vec::new();
        for i in 0..10 {
            let v = format!("r{round}-{i}");
            assert_eq!(produce(&mut net, old, "f", p32, &v), 0);
            acked.push(v);
        }
        net.crash(old);
        // A session passes, a new controller is elected if need be, and
        // the partition moves to an in-sync replica.
        net.advance(Duration::from_secs(12));
        let alive = (0..3).find(|&i| i != old).unwrap();
        let s = net.status(alive);
        assert!(s.image.brokers[&(old as i32)].fenced, "{old} fenced");
        let state = &s.image.topics["f"].partitions[p];
        let new = state.leader;
        assert!(new >= 0 && new != old as i32, "partition {p} led by {new}");
        assert!(!state.isr.contains(&(old as i32)), "isr {:?}", state.isr);
        assert!(state.leader_epoch >= 1);
        let new = new as usize;
        for i in 0..10 {
            let v = format!("r{round}-late-{i}");
            assert_eq!(produce(&mut net, new, "f", p32, &v), 0, "to the new leader");
            acked.push(v);
        }
        let read = values(&mut net, new, "f", p32);
        assert!(
            acked.iter().all(|v| read.contains(v)),
            "every acknowledged record on the new leader: {read:?}"
        );

        // Back: unfenced, it follows the new leader and catches up.
        net.restart(old);
        net.advance(Duration::from_secs(5));
        let s = net.status(new);
        assert!(!s.image.brokers[&(old as i32)].fenced, "{old} unfenced");
        assert_eq!(
            produce(&mut net, old, "f", p32, "to the old leader"),
            NOT_LEADER_OR_FOLLOWER
        );
        net.advance(Duration::from_secs(2));
        assert_eq!(
            log_bytes(&net, old, "f", p32),
            log_bytes(&net, new, "f", p32),
            "partition {p}: the old leader copies the new one"
        );
        let isr = &net.status(new).image.topics["f"].partitions[p].isr;
        assert_eq!(isr.len(), 3, "partition {p}: back in the ISR: {isr:?}");
    }
}

#[test]
fn a_lagging_follower_leaves_the_isr_and_rejoins_once_caught_up() {
    // Sessions longer than the lag allowed: the leader, not the
    // controller, drops the follower.
    let settings = [
        ("num.partitions", "3"),
        ("default.replication.factor", "3"),
        ("broker.session.timeout.ms", "600000"),
        ("replica.lag.time.max.ms", "2000"),
    ];
    let mut net = quorum_net(41, 3, (5, 2), &settings);
    settle(&mut net).unwrap();
    let c = controller(&net);
    assert_eq!(create(&mut net, c, "lag", 3).topics[0].error_code, 0);
    net.advance(Duration::from_secs(1));
    let state = |net: &Net, p: usize| net.status(c).image.topics["lag"].partitions[p].clone();
    let leader_of = |net: &Net, p: usize| state(net, p).leader as usize;
    // A partition the controller leads (its ISR changes go straight to the
    // quorum) and one another broker leads (AlterPartition over the wire).
    let by_controller = (0..3).find(|&p| leader_of(&net, p) == c).unwrap();
    let by_other = (0..3).find(|&p| leader_of(&net, p) != c).unwrap();
    for p in [by_controller, by_other] {
        let leader = leader_of(&net, p);
        let p32 = p as i32;
        assert_eq!(state(&net, p).isr.len(), 3);
        let before = high_watermark(&mut net, leader, "lag", p32);
        assert_eq!(produce(&mut net, leader, "lag", p32, "a"), 0);

        // A follower that is not the controller stops: acks=all waits for
        // it only until the leader drops it from the ISR.
        let slow = (0..3).find(|&i| i != leader && i != c).unwrap();
        net.pause(slow, true);
        net.advance(Duration::from_secs(4));
        let shrunk = state(&net, p).isr;
        assert!(!shrunk.contains(&(slow as i32)), "{slow} out: {shrunk:?}");
        assert_eq!(shrunk.len(), 2);
        for i in 0..5 {
            assert_eq!(produce(&mut net, leader, "lag", p32, &format!("b{i}")), 0);
        }
        assert_eq!(high_watermark(&mut net, leader, "lag", p32), before + 6);

        // Back, it catches up and the leader adds it again.
        net.pause(slow, false);
        net.advance(Duration::from_secs(3));
        let back = state(&net, p);
        assert_eq!(back.isr.len(), 3, "partition {p}: {back:?}");
        assert!(back.partition_epoch >= 2, "{back:?}");
        assert_eq!(back.leader_epoch, 0, "the leader never changed");
        assert_eq!(
            log_bytes(&net, slow, "lag", p32),
            log_bytes(&net, leader, "lag", p32)
        );
    }
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

/// Acks=1 to a leader cut off from the others: its records are its own.
fn produce_acks_1(net: &mut Net, at: usize, topic: &str, value: &str) -> i16 {
    let conn = net.client(at);
    let batch = common::batch(&[value], 1_700_000_000_000, Compression::None);
    let req = common::Sim::produce_req(topic, 0, batch).with_acks(1);
    let r: ProduceResponse = net
        .request((at, conn), (ApiKey::Produce, 9), &req, WAIT)
        .expect("Produce answered");
    r.responses[0].partition_responses[0].error_code
}

#[test]
fn an_old_leader_whose_log_diverged_is_told_so_and_never_rejoins_the_isr() {
    let settings = [("num.partitions", "1"), ("default.replication.factor", "3")];
    let mut net = quorum_net(61, 3, (5, 2), &settings);
    settle(&mut net).unwrap();
    let c = controller(&net);
    let mut made = None;
    for n in 0..6 {
        let topic = format!("d{n}");
        assert_eq!(create(&mut net, c, &topic, 1).topics[0].error_code, 0);
        net.advance(Duration::from_secs(1));
        let state = net.status(c).image.topics[&topic].partitions[0].clone();
        if state.leader as usize != c {
            made = Some((topic, state.leader as usize));
            break;
        }
    }
    let (topic, old) = made.expect("a partition led by a broker that is not the controller");
    for i in 0..5 {
        assert_eq!(produce(&mut net, old, &topic, 0, &format!("a{i}")), 0);
    }
    // Cut off, the old leader still takes acks=1 writes the others never
    // see; they fence it and the new leader takes more.
    net.isolate(old);
    for i in 0..3 {
        assert_eq!(
            produce_acks_1(&mut net, old, &topic, &format!("lost{i}")),
            0
        );
    }
    net.advance(Duration::from_secs(12));
    let new = net.status(c).image.topics[&topic].partitions[0].leader as usize;
    assert_ne!(new, old);
    for i in 0..6 {
        assert_eq!(produce(&mut net, new, &topic, 0, &format!("b{i}")), 0);
    }
    let old_end = log_bytes(&net, old, &topic, 0).len();
    net.heal();
    net.advance(Duration::from_secs(6));
    // Unfenced, it follows, is told where its epoch ended on the new
    // leader, and stops rather than append after its own tail.
    let state = net.status(c).image.topics[&topic].partitions[0].clone();
    assert!(!net.status(c).image.brokers[&(old as i32)].fenced);
    assert!(!state.isr.contains(&(old as i32)), "{state:?}");
    assert_eq!(
        log_bytes(&net, old, &topic, 0).len(),
        old_end,
        "nothing appended"
    );
    let read = values(&mut net, new, &topic, 0);
    assert!(read.iter().all(|v| !v.starts_with("lost")), "{read:?}");
    assert_eq!(read.len(), 11);
}
