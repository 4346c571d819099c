//! Metadata 0–12: this broker, and the topics asked for (every topic when
//! none are named; by name, or from v12 by id), auto-creating unknown
//! names when the client and `auto.create.topics.enable` allow.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{ApiSpec, CLUSTER_ID};
use crate::broker::group_log::OFFSETS_TOPIC;
use crate::broker::valid_topic_name;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::cluster::NO_LEADER;
use crate::protocol::{
    Request,
    guard::{Reader, UUID},
};

/// Kafka's operations on a topic (READ, WRITE, CREATE, DELETE, ALTER,
/// DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS), as bits of their codes.
const TOPIC_OPERATIONS: i32 =
    1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::Metadata,
    min: 0,
    max: 12,
    flexible: 9,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    let topic_id = if v >= 10 { UUID } else { 0 };
    r.array(topic_id + r.string_min() + r.tags_min(), |r| {
        r.skip(topic_id)?;
        r.string()?; // name
        r.tags()
    })?;
    if v >= 4 {
        r.skip(1)?; // allow_auto_topic_creation
    }
    if (8..=10).contains(&v) {
        r.skip(1)?; // include_cluster_authorized_operations
    }
    if v >= 8 {
        r.skip(1)?; // include_topic_authorized_operations
    }
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<MetadataRequest>(request) else {
        return Answer::Malformed;
    };
    let v = request.version;
    // v0 has no null: an empty list means every topic. From v12 a topic
    // may be named by its id alone (the Java admin client's describeTopics
    // by id): a known id answers as its topic, an unknown one
    // UNKNOWN_TOPIC_ID, as Kafka's `KafkaApis` does.
    let mut unknown_ids = Vec::new();
    let mut by_id = false;
    let names: Vec<String> = match &req.topics {
        Some(list) if !(v == 0 && list.is_empty()) => {
            let mut names = Vec::new();
            for t in list {
                if v >= 12 && !t.topic_id.is_nil() {
                    by_id = true;
                    match topic_named_by_id(cx, t.topic_id) {
                        Some(name) => names.push(name),
                        None => unknown_ids.push(t.topic_id),
                    }
                } else if let Some(name) = &t.name {
                    names.push(name.0.as_str().to_owned());
                }
            }
            names
        }
        _ => every_topic(cx),
    };
    // v4+ lets the client ask that nothing be created; nothing is
    // created for a request naming topics by id, as in Kafka.
    let allow_create = (v < 4 || req.allow_auto_topic_creation) && !by_id;
    // Fenced brokers are left out, as Kafka leaves them out: clients would
    // only try to reach them.
    let brokers = cx
        .brokers()
        .into_iter()
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
        })
        .collect();
    let mut response = MetadataResponse::default().with_brokers(brokers);
    // kafka-protocol refuses to encode a field the version lacks, so
    // each one is set only where its version has it.
    if v >= 1 {
        response.controller_id = BrokerId(cx.controller_id());
    }
    if v >= 2 {
        response.cluster_id = Some(StrBytes::from_static_str(CLUSTER_ID));
    }
    // No authorizer: every operation is allowed, as Kafka answers when
    // asked; i32::MIN when not asked.
    if (8..=10).contains(&v) {
        response.cluster_authorized_operations = if req.include_cluster_authorized_operations {
            super::describe_cluster::CLUSTER_OPERATIONS
        } else {
            i32::MIN
        };
    }
    for name in names {
        let mut t = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
        if v >= 8 {
            t.topic_authorized_operations = if req.include_topic_authorized_operations {
                TOPIC_OPERATIONS
            } else {
                i32::MIN
            };
        }
        if !cx.topic_exists(&name) {
            t.error_code = match absent(cx, &name, allow_create) {
                Ok(()) => {
                    if cx.topic_exists(&name) {
                        0
                    } else {
                        // Being created by the controller: the client
                        // asks again, as it does of Kafka.
                        ResponseError::LeaderNotAvailable.code()
                    }
                }
                Err(code) => code,
            };
            if t.error_code != 0 {
                response.topics.push(t);
                continue;
            }
        }
        if v >= 1 {
            t.is_internal = name.starts_with("__");
        }
        let (id, partitions) = describe(cx, &name);
        if v >= 10 {
            t.topic_id = id;
        }
        for mut p in partitions {
            if v < 7 {
                p.leader_epoch = -1;
            }
            t.partitions.push(p);
        }
        response.topics.push(t);
    }
    for id in unknown_ids {
        let t = MetadataResponseTopic::default()
            .with_name(None)
            .with_topic_id(id)
            .with_error_code(ResponseError::UnknownTopicId.code())
            .with_topic_authorized_operations(i32::MIN);
        response.topics.push(t);
    }
    super::respond(request, &response)
}

/// Every topic: the cluster's, or this broker's alone.
fn every_topic(cx: &Ctx<'_>) -> Vec<String> {
    match cx.image() {
        Some(image) => image.topics.keys().cloned().collect(),
        None => cx.logs.topics().map(|(n, _)| n.clone()).collect(),
    }
}

fn topic_named_by_id(cx: &Ctx<'_>, id: uuid::Uuid) -> Option<String> {
    if let Some(image) = cx.image() {
        if let Some((name, _)) = image.topic_by_id(id) {
            return Some(name.clone());
        }
    }
    let (name, _) = cx.logs.topics().find(|(_, topic)| topic.id == id)?;
    Some(name.clone())
}

/// A topic asked for that does not exist: create it when the client and
/// `auto.create.topics.enable` allow (in a cluster the controller does,
/// asked by this broker when it is not the controller); else the error.
fn absent(cx: &mut Ctx<'_>, name: &str, allow_create: bool) -> Result<(), i16> {
    if !valid_topic_name(name) {
        return Err(ResponseError::InvalidTopicException.code());
    }
    if !(allow_create && cx.config.auto_create_topics) || name == OFFSETS_TOPIC || cx.shutting_down
    {
        return Err(ResponseError::UnknownTopicOrPartition.code());
    }
    let partitions = cx.config.num_partitions;
    if cx.quorum.is_none() {
        tracing::info!(topic = %name, partitions, "auto-creating topic");
        cx.logs
            .create_topic(cx.io, cx.now, name, partitions, Vec::new());
        return Ok(());
    }
    if cx.not_controller().is_some() {
        let now = cx.now;
        if let Some(q) = cx.quorum.as_deref_mut() {
            q.want_topic(name, now);
        }
        return Ok(());
    }
    super::create_topics::propose_auto_created(cx, name, partitions);
    Ok(())
}

/// A topic's id and partitions: from the image in a cluster, else from
/// this broker's logs (it leads every one).
fn describe(cx: &Ctx<'_>, name: &str) -> (uuid::Uuid, Vec<MetadataResponsePartition>) {
    let ids = |v: &[i32]| v.iter().map(|&b| BrokerId(b)).collect::<Vec<_>>();
    let offline = |key: Option<usize>| {
        key.and_then(|k| cx.logs.get(k))
            .is_none_or(|l| l.offline().is_some())
    };
    if let Some(topic) = cx.image().and_then(|i| i.topics.get(name)) {
        let me = cx.config.node_id;
        let partitions = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let index = index as i32;
                let mut r = MetadataResponsePartition::default()
                    .with_partition_index(index)
                    .with_leader_id(BrokerId(p.leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(ids(&p.replicas))
                    .with_isr_nodes(ids(&p.isr));
                if p.leader == NO_LEADER {
                    r.error_code = ResponseError::LeaderNotAvailable.code();
                } else if p.leader == me && offline(cx.logs.find(name, index)) {
                    r.error_code = ResponseError::KafkaStorageError.code();
                }
                r
            })
            .collect();
        return (topic.id, partitions);
    }
    let Some(topic) = cx.logs.topic(name) else {
        return (uuid::Uuid::nil(), Vec::new());
    };
    let node = BrokerId(cx.config.node_id);
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, &key)| {
            let mut p = MetadataResponsePartition::default()
                .with_partition_index(index as i32)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node]);
            if offline(key) {
                p.error_code = ResponseError::KafkaStorageError.code();
            }
            p
        })
        .collect();
    (topic.id, partitions)
}
