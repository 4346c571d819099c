//! Requests to the simulated brokers of `net/` that the cluster tests
//! share: a three-broker cluster settled, topics created, records
//! produced and read back, a partition's bytes and high watermark.

use std::collections::BTreeSet;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, FetchResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

use crate::common;
use crate::net::{Net, quorum_net};

pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const WAIT: Duration = Duration::from_secs(10);

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// Three brokers, run until one leads and every one is registered.
pub fn cluster(seed: u64, delays: (u64, u64)) -> Net {
    let mut net = quorum_net(seed, 3, delays, &[("num.partitions", "3")]);
    settle(&mut net).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    net
}

/// Run until a leader is known to all and every broker is in every image.
pub fn settle(net: &mut Net) -> Result<(), String> {
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

pub fn controller(net: &Net) -> usize {
    net.status(0).leader.expect("a controller") as usize
}

pub fn create(net: &mut Net, at: usize, topic: &str, partitions: i32) -> CreateTopicsResponse {
    create_replicated(net, at, topic, (partitions, -1))
}

/// CreateTopics of `topic` with `partitions` partitions of `rf` replicas
/// each (-1: `default.replication.factor`), through node `at`.
pub fn create_replicated(
    net: &mut Net,
    at: usize,
    topic: &str,
    (partitions, rf): (i32, i16),
) -> CreateTopicsResponse {
    let conn = net.client(at);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(rf),
        ])
        .with_timeout_ms(5_000);
    net.request((at, conn), (ApiKey::CreateTopics, 7), &req, WAIT)
        .expect("CreateTopics answered")
}

pub fn produce(net: &mut Net, at: usize, topic: &str, partition: i32, value: &str) -> i16 {
    let conn = net.client(at);
    let batch = common::batch(&[value], 1_700_000_000_000, Compression::None);
    let req = common::Sim::produce_req(topic, partition, batch);
    let r: ProduceResponse = net
        .request((at, conn), (ApiKey::Produce, 9), &req, WAIT)
        .expect("Produce answered");
    r.responses[0].partition_responses[0].error_code
}

/// The bytes of every `.log` segment of `topic`-`p` on node `at`, in order.
pub fn log_bytes(net: &Net, at: usize, topic: &str, p: i32) -> Vec<u8> {
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

/// A consumer's fetch of `topic`-`p` from offset 0 through node `at`,
/// which must answer without error.
fn fetch_from_start(net: &mut Net, at: usize, topic: &str, p: i32) -> PartitionData {
    let conn = net.client(at);
    let mut req = common::Sim::fetch_req(topic, 0, 0);
    req.topics[0].partitions[0].partition = p;
    let f: FetchResponse = net
        .request((at, conn), (ApiKey::Fetch, 12), &req, WAIT)
        .expect("Fetch answered");
    let part = f.responses[0].partitions[0].clone();
    assert_eq!(part.error_code, 0, "fetch of {topic}-{p} at {at}");
    part
}

pub fn high_watermark(net: &mut Net, at: usize, topic: &str, p: i32) -> i64 {
    fetch_from_start(net, at, topic, p).high_watermark
}

/// What node `at` reads of `topic`-`p` from offset 0 (up to its high
/// watermark), as values.
pub fn values(net: &mut Net, at: usize, topic: &str, p: i32) -> Vec<String> {
    let records = fetch_from_start(net, at, topic, p)
        .records
        .unwrap_or_default();
    common::values_of(&records)
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

/// Acks=1 to a leader cut off from the others: its records are its own.
pub fn produce_acks_1(net: &mut Net, at: usize, topic: &str, value: &str) -> i16 {
    let conn = net.client(at);
    let batch = common::batch(&[value], 1_700_000_000_000, Compression::None);
    let req = common::Sim::produce_req(topic, 0, batch).with_acks(1);
    let r: ProduceResponse = net
        .request((at, conn), (ApiKey::Produce, 9), &req, WAIT)
        .expect("Produce answered");
    r.responses[0].partition_responses[0].error_code
}

/// The partitions of `topic` node `at` holds logs for.
pub fn held(net: &mut Net, at: usize, topic: &str) -> BTreeSet<i32> {
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
