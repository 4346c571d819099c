//! CreateTopics 2–7: new topics with a partition count and settings
//! checked against Kafka's names and ranges; replication factor 1 (one
//! broker). From v5 each created (or validated) topic's answer carries its
//! partition count, replication factor and every setting it has.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiSpec, describe_configs};
use crate::broker::group_log::OFFSETS_TOPIC;
use crate::broker::logs::Overrides;
use crate::broker::valid_topic_name;
use crate::broker::wait::{Answer, Ctx, Origin};
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
    if cx.logs.topic(name).is_some() {
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
    if !matches!(topic.replication_factor, -1 | 1) {
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
        if topic
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
