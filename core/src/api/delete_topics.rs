//! DeleteTopics 1–6: topics by name (or, from v6, by id) are removed at
//! once; their files go when no send or read pins them. A name that names
//! no topic is UNKNOWN_TOPIC_OR_PARTITION, an id UNKNOWN_TOPIC_ID. In a
//! cluster the active controller proposes each removal and answers once it
//! is applied (every broker then removes its logs of the topic); another
//! broker answers NOT_CONTROLLER.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::ApiSpec;
use crate::broker::cluster::Committed;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::cluster::controller;
use crate::cluster::records::Record;
use crate::protocol::{
    Request,
    guard::{Reader, UUID},
};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::DeleteTopics,
    min: 1,
    max: 6,
    flexible: 4,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    if v >= 6 {
        // topics: name, topic_id
        r.array(r.string_min() + UUID + r.tags_min(), |r| {
            r.string()?;
            r.skip(UUID)?;
            r.tags()
        })?;
    } else {
        r.array(r.string_min(), Reader::string)?; // topic_names
    }
    r.skip(4)?; // timeout_ms
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<DeleteTopicsRequest>(request) else {
        return Answer::Malformed;
    };
    // v6 names topics in `topics` (by name or id); earlier versions in
    // `topic_names`.
    let mut wanted: Vec<(Option<TopicName>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.clone()), uuid::Uuid::nil()))
        .collect();
    wanted.extend(req.topics.iter().map(|t| (t.name.clone(), t.topic_id)));
    let v = request.version;
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms.max(0)).unwrap_or(0));
    let mut committed = Committed::new(
        request,
        DeleteTopicsResponse::default(),
        cx.now.mono.saturating_add(timeout),
    );
    let refused = cx.not_controller();
    for (name, id) in wanted {
        let resolved = match (&name, cx.image()) {
            (Some(n), _) => Some(n.0.as_str().to_owned()),
            (None, Some(image)) => image.topic_by_id(id).map(|(n, _)| n.clone()),
            (None, None) => cx
                .logs
                .topics()
                .find(|(_, t)| t.id == id)
                .map(|(n, _)| n.clone()),
        };
        // Before v6 the name is the key and never null; from v6 a topic
        // asked for by id is answered by id, its name null until found.
        let mut r = DeletableTopicResult::default();
        if v >= 6 {
            r.name = name.clone();
            r.topic_id = id;
        } else {
            r.name = Some(name.clone().unwrap_or_default());
        }
        let found = resolved.and_then(|n| {
            let id = match cx.image() {
                Some(image) => image.topics.get(&n)?.id,
                None => cx.logs.topic(&n)?.id,
            };
            Some((id, n))
        });
        match found {
            _ if refused.is_some() => {
                let (code, message) = refused.clone().unwrap_or_default();
                r.error_code = code;
                r.error_message = Some(StrBytes::from_string(message));
            }
            Some((topic_id, n)) => {
                tracing::info!(topic = %n, "deleting topic");
                if v >= 6 {
                    r.topic_id = topic_id;
                    r.name = Some(TopicName(StrBytes::from_string(n.clone())));
                }
                if cx.quorum.is_none() {
                    cx.logs.delete_topic(cx.io, cx.now, &n);
                } else {
                    let at = committed.response().responses.len();
                    committed.response().responses.push(r);
                    propose_removal(cx, &mut committed, at, &n);
                    continue;
                }
            }
            // An id that names no topic is UNKNOWN_TOPIC_ID, as Kafka's
            // controller answers (the Java admin client's
            // UnknownTopicIdException).
            None if name.is_none() => {
                r.error_code = ResponseError::UnknownTopicId.code();
                r.error_message = Some(StrBytes::from_static_str(
                    "This server does not host this topic ID.",
                ));
            }
            None => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
        }
        committed.response().responses.push(r);
    }
    committed.answer(cx)
}

/// On the active controller: propose the removal of `name`, whose result
/// is `at`, and have it wait for the removal to apply.
fn propose_removal(
    cx: &mut Ctx<'_>,
    committed: &mut Committed<DeleteTopicsResponse>,
    at: usize,
    name: &str,
) {
    let records: Vec<_> = cx
        .image()
        .and_then(|i| controller::remove_topic(i, name))
        .into_iter()
        .collect();
    let Some(id) = records.iter().find_map(|r| match r {
        Record::RemoveTopic { id } => Some(*id),
        _ => None,
    }) else {
        return;
    };
    let index = cx.quorum.as_deref_mut().and_then(|q| q.propose(&records));
    let not_controller = |r: &mut DeletableTopicResult, why: &str| {
        r.error_code = ResponseError::NotController.code();
        r.error_message = Some(StrBytes::from_string(why.to_owned()));
    };
    let Some(index) = index else {
        let why = "this broker stopped being the active controller; retry";
        return not_controller(&mut committed.response().responses[at], why);
    };
    let name = name.to_owned();
    committed.wait_for(
        index,
        move |response: &mut DeleteTopicsResponse, outcome| {
            let r = &mut response.responses[at];
            match outcome {
                Ok(image) if image.topics.get(&name).is_none_or(|t| t.id != id) => {}
                Ok(_) => not_controller(
                    r,
                    "the active controller changed before the deletion was committed; retry",
                ),
                Err((code, message)) => {
                    r.error_code = code;
                    r.error_message = Some(StrBytes::from_string(message));
                }
            }
        },
    );
}
