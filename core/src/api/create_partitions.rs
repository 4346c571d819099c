//! CreatePartitions 0–3: a topic grows to the partition count asked for
//! (never shrinks); the new partitions start empty with the topic's
//! settings. Records keyed to a partition by the old count may land in
//! another afterwards, as in Kafka.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::ApiSpec;
use crate::broker::cluster::Committed;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::cluster::controller;
use crate::cluster::records::Record;
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
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms.max(0)).unwrap_or(0));
    let mut committed = Committed::new(
        request,
        CreatePartitionsResponse::default(),
        cx.now.mono.saturating_add(timeout),
    );
    let refused = cx
        .not_controller()
        .map(|(_, m)| (ResponseError::NotController, m));
    for topic in &req.topics {
        let mut r = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let checked = match &refused {
            Some(why) => Err(why.clone()),
            None => check(cx, topic).and_then(|()| plan(cx, topic)),
        };
        match checked {
            Err((error, message)) => {
                r.error_code = error.code();
                r.error_message = Some(StrBytes::from_string(message));
            }
            Ok(_) if req.validate_only => {}
            Ok(None) => {
                let name = topic.name.0.as_str();
                tracing::info!(topic = name, count = topic.count, "adding partitions");
                cx.logs.add_partitions(cx.io, name, topic.count);
            }
            Ok(Some(records)) => {
                let at = committed.response().results.len();
                committed.response().results.push(r);
                propose(cx, &mut committed, at, topic, &records);
                continue;
            }
        }
        committed.response().results.push(r);
    }
    committed.answer(cx)
}

/// In a cluster, the controller's records for the new partitions; alone,
/// none (the logs are added at once).
fn plan(
    cx: &Ctx<'_>,
    topic: &CreatePartitionsTopic,
) -> Result<Option<Vec<Record>>, (ResponseError, String)> {
    let Some(image) = cx.image() else {
        return Ok(None);
    };
    let assignments: Vec<Vec<i32>> = topic
        .assignments
        .iter()
        .flatten()
        .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
        .collect();
    let start = cx.quorum.as_deref().map_or(0, |q| q.applied() as usize);
    controller::add_partitions(
        image,
        topic.name.0.as_str(),
        topic.count,
        &assignments,
        start,
    )
    .map(Some)
    .map_err(|(code, message)| {
        let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::InvalidRequest);
        (error, message)
    })
}

/// Propose the records of result `at` and have it wait for them to apply.
fn propose(
    cx: &mut Ctx<'_>,
    committed: &mut Committed<CreatePartitionsResponse>,
    at: usize,
    topic: &CreatePartitionsTopic,
    records: &[Record],
) {
    let set = |r: &mut CreatePartitionsTopicResult, code: i16, why: String| {
        r.error_code = code;
        r.error_message = Some(StrBytes::from_string(why));
    };
    let Some(index) = cx.quorum.as_deref_mut().and_then(|q| q.propose(records)) else {
        let why = "this broker stopped being the active controller; retry".to_owned();
        let code = ResponseError::NotController.code();
        return set(&mut committed.response().results[at], code, why);
    };
    let (name, count) = (topic.name.0.as_str().to_owned(), topic.count);
    tracing::info!(topic = %name, count, index, "proposing partitions");
    committed.wait_for(
        index,
        move |response: &mut CreatePartitionsResponse, outcome| {
            let r = &mut response.results[at];
            match outcome {
                Ok(image)
                    if image
                        .topics
                        .get(&name)
                        .is_some_and(|t| t.partitions.len() >= count as usize) => {}
                Ok(_) => set(
                    r,
                    ResponseError::NotController.code(),
                    "the active controller changed before the partitions were committed; retry"
                        .to_owned(),
                ),
                Err((code, why)) => set(r, code, why),
            }
        },
    );
}

fn check(cx: &Ctx<'_>, topic: &CreatePartitionsTopic) -> Result<(), (ResponseError, String)> {
    let name = topic.name.0.as_str();
    let have = match cx.image() {
        Some(image) => image.topics.get(name).map(|t| t.partitions.len()),
        None => cx.logs.topic(name).map(|t| t.partitions.len()),
    };
    let Some(have) = have else {
        let message = format!("topic `{name}` does not exist");
        return Err((ResponseError::UnknownTopicOrPartition, message));
    };
    if cx.shutting_down {
        let message = "the broker is shutting down".to_owned();
        return Err((ResponseError::BrokerNotAvailable, message));
    }
    let have = have as i32;
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
    if let Some(assignments) = topic.assignments.as_ref().filter(|_| cx.quorum.is_none()) {
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
