//! CreatePartitions 0–3: a topic grows to the partition count asked for
//! (never shrinks); the new partitions start empty with the topic's
//! settings. Records keyed to a partition by the old count may land in
//! another afterwards, as in Kafka.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::ApiSpec;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::CreatePartitions,
    min: 0,
    max: 3,
    flexible: 2,
    walk,
    handle,
};

/// The most partitions a topic may have (as CreateTopics allows).
const MAX_PARTITIONS: i32 = 100_000;

fn walk(r: &mut Reader<'_>, _v: i16) -> Option<()> {
    let assignment_min = r.prefix_min() + r.tags_min();
    r.array(r.string_min() + 4 + r.prefix_min() + r.tags_min(), |r| {
        r.string()?; // name
        r.skip(4)?; // count
        r.array(assignment_min, |r| {
            r.array(4, |r| r.skip(4))?; // broker_ids
            r.tags()
        })?;
        r.tags()
    })?;
    r.skip(4 + 1)?; // timeout_ms, validate_only
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<CreatePartitionsRequest>(request) else {
        return Answer::Malformed;
    };
    let mut response = CreatePartitionsResponse::default();
    for topic in &req.topics {
        let mut r = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        match check(cx, topic) {
            Err((error, message)) => {
                r.error_code = error.code();
                r.error_message = Some(StrBytes::from_string(message));
            }
            Ok(()) if req.validate_only => {}
            Ok(()) => {
                let name = topic.name.0.as_str();
                tracing::info!(topic = name, count = topic.count, "adding partitions");
                cx.logs.add_partitions(cx.io, name, topic.count);
            }
        }
        response.results.push(r);
    }
    super::respond(request, &response)
}

fn check(cx: &Ctx<'_>, topic: &CreatePartitionsTopic) -> Result<(), (ResponseError, String)> {
    let name = topic.name.0.as_str();
    let Some(t) = cx.logs.topic(name) else {
        let message = format!("topic `{name}` does not exist");
        return Err((ResponseError::UnknownTopicOrPartition, message));
    };
    if cx.shutting_down {
        let message = "the broker is shutting down".to_owned();
        return Err((ResponseError::BrokerNotAvailable, message));
    }
    let have = t.partitions.len() as i32;
    if topic.count <= have {
        // Kafka's words.
        let message = format!(
            "topic `{name}` currently has {have} partitions, {} would not be an increase",
            topic.count
        );
        return Err((ResponseError::InvalidPartitions, message));
    }
    if topic.count > MAX_PARTITIONS {
        let message = format!(
            "{} partitions: must be at most {MAX_PARTITIONS}",
            topic.count
        );
        return Err((ResponseError::InvalidPartitions, message));
    }
    if let Some(assignments) = &topic.assignments {
        let node = cx.config.node_id;
        if assignments.len() as i32 != topic.count - have {
            let message = format!(
                "{} assignments given for {} new partitions",
                assignments.len(),
                topic.count - have
            );
            return Err((ResponseError::InvalidReplicaAssignment, message));
        }
        if assignments
            .iter()
            .any(|a| a.broker_ids.len() != 1 || a.broker_ids.iter().any(|b| b.0 != node))
        {
            let message = format!("assignments may name only broker {node}, once each");
            return Err((ResponseError::InvalidReplicaAssignment, message));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;
    use kafka_protocol::messages::{BrokerId, TopicName};

    use super::*;
    use crate::protocol::guard::tests::check_api;

    #[test]
    fn the_guard_walks_every_version() {
        for v in API.min..=API.max {
            let req = CreatePartitionsRequest::default()
                .with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("orders")))
                        .with_count(4)
                        .with_assignments(Some(vec![
                            CreatePartitionsAssignment::default()
                                .with_broker_ids(vec![BrokerId(0)]),
                        ])),
                    CreatePartitionsTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("other")))
                        .with_count(2)
                        .with_assignments(None),
                ])
                .with_timeout_ms(1000);
            check_api(ApiKey::CreatePartitions, v, &req);
        }
    }
}
