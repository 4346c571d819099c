//! CreateTopics 2–7: new topics with a partition count and settings
//! checked against Kafka's names and ranges. From v5 each created (or
//! validated) topic's answer carries its partition count, replication
//! factor and every setting it has.
//!
//! Alone, a broker creates the logs at once (replication factor 1). In a
//! cluster the active controller places the partitions on the registered
//! brokers ([`crate::cluster::controller`]), proposes each topic's records
//! and answers once they are committed and applied; another broker
//! answers NOT_CONTROLLER, naming the controller, and clients ask it.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiSpec, describe_configs};
use crate::broker::cluster::Committed;
use crate::broker::group_log::OFFSETS_TOPIC;
use crate::broker::logs::Overrides;
use crate::broker::valid_topic_name;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::cluster::controller::{self, NewTopic};
use crate::cluster::records::Record;
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::CreateTopics,
    min: 2,
    max: 7,
    flexible: 5,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, _v: i16) -> Option<()> {
    let assignment_min = 4 + r.prefix_min() + r.tags_min();
    let config_min = 2 * r.string_min() + r.tags_min();
    let topic_min = r.string_min() + 4 + 2 + 2 * r.prefix_min() + r.tags_min();
    r.array(topic_min, |r| {
        r.string()?; // name
        r.skip(4 + 2)?; // num_partitions, replication_factor
        r.array(assignment_min, |r| {
            r.skip(4)?; // partition_index
            r.array(4, |r| r.skip(4))?; // broker_ids
            r.tags()
        })?;
        r.array(config_min, |r| {
            r.string()?; // name
            r.string()?; // value
            r.tags()
        })?;
        r.tags()
    })?;
    r.skip(4 + 1)?; // timeout_ms, validate_only
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<CreateTopicsRequest>(request) else {
        return Answer::Malformed;
    };
    if cx.quorum.is_some() {
        return clustered(cx, request, &req);
    }
    let v = request.version;
    let mut response = CreateTopicsResponse::default();
    for topic in &req.topics {
        let name = topic.name.0.as_str();
        let mut r = CreatableTopicResult::default().with_name(topic.name.clone());
        if v >= 5 {
            r.num_partitions = -1;
            r.replication_factor = -1;
        }
        match check_new_topic(cx, topic) {
            Err((code, message)) => {
                r.error_code = code;
                r.error_message = Some(StrBytes::from_string(message));
            }
            Ok((partitions, overrides)) => {
                if v >= 5 {
                    r.num_partitions = partitions;
                    r.replication_factor = 1;
                    // Every setting the topic has (or would have), as
                    // DescribeConfigs would answer: Kafka's clients read
                    // them from here (the Java client's
                    // `CreateTopicsResult.config`).
                    let settings = describe_configs::topic_settings(cx, name, &overrides);
                    r.configs = Some(settings.into_iter().map(created_config).collect());
                }
                if !req.validate_only {
                    tracing::info!(topic = name, partitions, "creating topic");
                    let id = cx
                        .logs
                        .create_topic(cx.io, cx.now, name, partitions, overrides);
                    if v >= 7 {
                        r.topic_id = id;
                    }
                }
            }
        }
        response.topics.push(r);
    }
    super::respond(request, &response)
}

fn created_config(d: describe_configs::Described) -> CreatableTopicConfigs {
    CreatableTopicConfigs::default()
        .with_name(StrBytes::from_static_str(d.name))
        .with_value(Some(StrBytes::from_string(d.value)))
        .with_read_only(d.read_only)
        .with_config_source(d.source)
        .with_is_sensitive(false)
}

/// Check a CreateTopics entry; the partition count and the topic
/// settings it overrides, or the error code and message.
fn check_new_topic(
    cx: &Ctx<'_>,
    topic: &CreatableTopic,
) -> Result<(i32, Overrides), (i16, String)> {
    let name = topic.name.0.as_str();
    if !valid_topic_name(name) || name == OFFSETS_TOPIC {
        return Err((
            ResponseError::InvalidTopicException.code(),
            format!("topic name `{name}` is not valid: 1-249 of [a-zA-Z0-9._-]"),
        ));
    }
    if cx.topic_exists(name) {
        return Err((
            ResponseError::TopicAlreadyExists.code(),
            format!("topic `{name}` already exists"),
        ));
    }
    if cx.shutting_down {
        return Err((
            ResponseError::BrokerNotAvailable.code(),
            "the broker is shutting down".to_owned(),
        ));
    }
    if cx.quorum.is_some() {
        // The controller checks the factor and the assignments.
    } else if !matches!(topic.replication_factor, -1 | 1) {
        return Err((
            ResponseError::InvalidReplicationFactor.code(),
            format!(
                "replication factor {} is larger than the 1 broker available",
                topic.replication_factor
            ),
        ));
    }
    let partitions = if !topic.assignments.is_empty() {
        let node = cx.config.node_id;
        if cx.quorum.is_none()
            && topic
                .assignments
                .iter()
                .any(|a| a.broker_ids.iter().any(|b| b.0 != node))
        {
            return Err((
                ResponseError::InvalidReplicaAssignment.code(),
                format!("assignments may name only broker {node}"),
            ));
        }
        topic.assignments.len() as i32
    } else if topic.num_partitions == -1 {
        cx.config.num_partitions
    } else {
        topic.num_partitions
    };
    if !(1..=100_000).contains(&partitions) {
        return Err((
            ResponseError::InvalidPartitions.code(),
            format!("{partitions} partitions: must be 1 to 100000"),
        ));
    }
    let mut config = cx.logs.defaults().clone();
    let mut overrides = Vec::new();
    for c in &topic.configs {
        let Some(value) = &c.value else { continue };
        let (key, value) = (c.name.as_str(), value.as_str());
        config
            .set(key, value)
            .map_err(|e| (ResponseError::InvalidConfig.code(), e.to_string()))?;
        // Stored one `topic key=value` line each.
        if key.contains(['\n', '=', ' ']) || value.contains('\n') {
            return Err((
                ResponseError::InvalidConfig.code(),
                format!("configuration `{key}` has a value that cannot be stored"),
            ));
        }
        overrides.push((key.to_owned(), value.to_owned()));
    }
    Ok((partitions, overrides))
}

/// CreateTopics in a cluster: on the active controller, each valid topic's
/// records are proposed and its result waits for them to apply.
fn clustered(cx: &mut Ctx<'_>, request: &Request, req: &CreateTopicsRequest) -> Answer {
    let v = request.version;
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms.max(0)).unwrap_or(0));
    let mut committed = Committed::new(
        request,
        CreateTopicsResponse::default(),
        cx.now.mono.saturating_add(timeout),
    );
    let refused = cx.not_controller();
    for topic in &req.topics {
        let name = topic.name.0.as_str().to_owned();
        let mut r = CreatableTopicResult::default().with_name(topic.name.clone());
        if v >= 5 {
            r.num_partitions = -1;
            r.replication_factor = -1;
        }
        let planned = match &refused {
            Some(why) => Err(why.clone()),
            None => check_new_topic(cx, topic).and_then(|(partitions, overrides)| {
                plan(cx, topic, partitions, overrides.clone()).map(|p| (p, overrides))
            }),
        };
        let (
            Plan {
                records,
                id,
                partitions,
                replication_factor: rf,
            },
            overrides,
        ) = match planned {
            Err((code, message)) => {
                r.error_code = code;
                r.error_message = Some(StrBytes::from_string(message));
                committed.response().topics.push(r);
                continue;
            }
            Ok(p) => p,
        };
        if v >= 5 {
            r.num_partitions = partitions;
            r.replication_factor = rf;
            let settings = describe_configs::topic_settings(cx, &name, &overrides);
            r.configs = Some(settings.into_iter().map(created_config).collect());
        }
        if v >= 7 && !req.validate_only {
            r.topic_id = id;
        }
        let at = committed.response().topics.len();
        committed.response().topics.push(r);
        if req.validate_only {
            continue;
        }
        let proposed = cx.quorum.as_deref_mut().and_then(|q| q.propose(&records));
        let Some(index) = proposed else {
            let t = &mut committed.response().topics[at];
            t.error_code = ResponseError::NotController.code();
            t.error_message = Some(StrBytes::from_static_str(
                "this broker stopped being the active controller; retry",
            ));
            continue;
        };
        tracing::info!(topic = %name, partitions, index, "proposing a topic");
        committed.wait_for(
            index,
            move |response: &mut CreateTopicsResponse, outcome| {
                let t = &mut response.topics[at];
                let error = match outcome {
                    Ok(image) if image.topics.get(&name).is_some_and(|t| t.id == id) => return,
                    Ok(_) => (
                        ResponseError::NotController.code(),
                        "the active controller changed before the topic was committed; retry"
                            .to_owned(),
                    ),
                    Err(e) => e,
                };
                t.error_code = error.0;
                t.error_message = Some(StrBytes::from_string(error.1));
                if v >= 7 {
                    t.topic_id = uuid::Uuid::nil();
                }
            },
        );
    }
    committed.answer(cx)
}

/// The controller's records for a checked topic, with what they make.
struct Plan {
    records: Vec<Record>,
    id: uuid::Uuid,
    partitions: i32,
    replication_factor: i16,
}

/// The controller's records for a checked topic.
fn plan(
    cx: &Ctx<'_>,
    topic: &CreatableTopic,
    partitions: i32,
    configs: Overrides,
) -> Result<Plan, (i16, String)> {
    let image = cx.image().ok_or((
        ResponseError::NotController.code(),
        "no metadata quorum".to_owned(),
    ))?;
    let new = NewTopic {
        name: topic.name.0.as_str().to_owned(),
        partitions,
        replication_factor: topic.replication_factor,
        assignments: topic
            .assignments
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect(),
        configs,
    };
    let salt = cx.quorum.as_deref().map_or(0, |q| q.applied());
    let id = crate::broker::new_topic_id(&new.name, cx.now, salt);
    let records = controller::create_topic(
        image,
        &new,
        id,
        placement_start(&id),
        cx.config.default_replication_factor,
    )?;
    let rf = records
        .iter()
        .find_map(|r| match r {
            Record::Partition { state, .. } => Some(state.replicas.len() as i16),
            _ => None,
        })
        .unwrap_or(1);
    Ok(Plan {
        records,
        id,
        partitions,
        replication_factor: rf,
    })
}

/// Where a topic's placement starts: drawn from its (random) id, so
/// leaders of many small topics spread over the brokers too.
fn placement_start(id: &uuid::Uuid) -> usize {
    id.as_u128() as usize
}

/// Auto-creation on the active controller: propose `name` with the
/// defaults; the client asks again and finds it once applied.
pub(super) fn propose_auto_created(cx: &mut Ctx<'_>, name: &str, partitions: i32) {
    let topic = CreatableTopic::default()
        .with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(
            name.to_owned(),
        )))
        .with_num_partitions(partitions)
        .with_replication_factor(-1);
    match plan(cx, &topic, partitions, Vec::new()) {
        Ok(Plan { records, .. }) => {
            if let Some(index) = cx.quorum.as_deref_mut().and_then(|q| q.propose(&records)) {
                tracing::info!(topic = %name, partitions, index, "auto-creating topic");
            }
        }
        Err((code, message)) => {
            tracing::warn!(topic = %name, code, message, "topic not auto-created");
        }
    }
}
