//! DeleteTopics 1–6: topics by name (or, from v6, by id) are removed at
//! once; their files go when no send or read pins them. A name that names
//! no topic is UNKNOWN_TOPIC_OR_PARTITION, an id UNKNOWN_TOPIC_ID.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::ApiSpec;
use crate::broker::wait::{Answer, Ctx, Origin};
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
    let mut response = DeleteTopicsResponse::default();
    let v = request.version;
    for (name, id) in wanted {
        let resolved = match &name {
            Some(n) => Some(n.0.as_str().to_owned()),
            None => cx
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
        let found = resolved.and_then(|n| Some((cx.logs.topic(&n)?.id, n)));
        match found {
            Some((topic_id, n)) => {
                tracing::info!(topic = %n, "deleting topic");
                if v >= 6 {
                    r.topic_id = topic_id;
                    r.name = Some(TopicName(StrBytes::from_string(n.clone())));
                }
                cx.logs.delete_topic(cx.io, cx.now, &n);
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
        response.responses.push(r);
    }
    super::respond(request, &response)
}
