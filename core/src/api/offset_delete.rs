//! OffsetDelete 0: a group's committed offsets of some partitions go, as
//! Kafka's `handleDeleteOffsets` decides. The group must exist
//! (GROUP_ID_NOT_FOUND; an empty id is INVALID_GROUP_ID); one with members
//! that is not a consumer group answers NON_EMPTY_GROUP; a consumer group
//! with members keeps the offsets of the topics they subscribe to
//! (GROUP_SUBSCRIBED_TO_TOPIC); a partition that does not exist gets
//! UNKNOWN_TOPIC_OR_PARTITION. A group error answers alone, without
//! partitions, as in Kafka.
//!
//! A removed offset leaves a tombstone in `__consumer_offsets`, written as
//! commits are: the answer waits until it is in the log, and only then is
//! the offset gone from OffsetFetch, so a restart never brings it back.
//! The log refusing the write answers COORDINATOR_NOT_AVAILABLE. A group
//! with no members and no offsets left goes too, as after expiry.

use std::collections::HashSet;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse};

use super::ApiSpec;
use crate::broker::group_log::{self, Committed};
use crate::broker::groups;
use crate::broker::logs::LogKey;
use crate::broker::wait::{Answer, Ctx, Origin, Response, Until, Waiter, Wake};
use crate::group::{GroupState, OffsetDeletion};
use crate::protocol::{self, Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::OffsetDelete,
    min: 0,
    max: 0,
    // No flexible version yet.
    flexible: 1,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, _v: i16) -> Option<()> {
    r.string()?; // group_id
    // topics: name, partitions (partition_index)
    r.array(r.string_min() + r.prefix_min(), |r| {
        r.string()?;
        r.array(4, |r| r.skip(4))
    })
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<OffsetDeleteRequest>(request) else {
        return Answer::Malformed;
    };
    let group = req.group_id.0.as_str().to_owned();
    let deletion = match check_group(cx, &group) {
        Ok(deletion) => deletion,
        Err(e) => return super::respond(request, &group_error(e)),
    };
    let mut response = OffsetDeleteResponse::default();
    let mut records = Vec::new();
    let mut removed = Vec::new();
    let mut seen = HashSet::new();
    for topic in &req.topics {
        let name = topic.name.0.as_str();
        let mut t = OffsetDeleteResponseTopic::default().with_name(topic.name.clone());
        for p in &topic.partitions {
            let index = p.partition_index;
            let code = if !cx.partition_exists(name, index) {
                ResponseError::UnknownTopicOrPartition.code()
            } else if deletion.subscribed(name) {
                ResponseError::GroupSubscribedToTopic.code()
            } else {
                let key = (name.to_owned(), index);
                let committed = cx.groups.committed.get(&group).and_then(|t| t.get(&key));
                // Only a committed offset needs a tombstone; a partition
                // named twice gets one.
                if let Some(c) = committed.filter(|_| seen.insert(key.clone())) {
                    records.push(group_log::offset_record(&group, name, index, None));
                    removed.push((key, c.clone()));
                }
                0
            };
            t.partitions.push(
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(index)
                    .with_error_code(code),
            );
        }
        response.topics.push(t);
    }
    if records.is_empty() {
        return super::respond(request, &response);
    }
    let partition = groups::partition_of(cx, &group);
    let deadline = groups::commit_deadline(cx, partition);
    match groups::append_internal(cx, partition, &records) {
        Some(wait) => Answer::Wait(Box::new(Pending {
            correlation_id: request.correlation_id,
            response,
            group,
            wait,
            removed,
            deadline,
        })),
        None => super::respond(
            request,
            &group_error(ResponseError::CoordinatorNotAvailable),
        ),
    }
}

/// What may be deleted of `group`, or the group-level error.
fn check_group(cx: &Ctx<'_>, group: &str) -> Result<OffsetDeletion, ResponseError> {
    if group.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    if let Some(code) = cx.not_coordinator(group) {
        return Err(ResponseError::try_from_code(code).unwrap_or(ResponseError::NotCoordinator));
    }
    match cx.groups.coordinator.offset_deletion(group) {
        // A group known only by its offsets counts as empty, as it does
        // for DeleteGroups (the coordinator loads such groups at startup).
        OffsetDeletion::UnknownGroup if has_offsets(cx, group) => Ok(OffsetDeletion::Any),
        OffsetDeletion::UnknownGroup => Err(ResponseError::GroupIdNotFound),
        OffsetDeletion::NonEmpty => Err(ResponseError::NonEmptyGroup),
        deletion => Ok(deletion),
    }
}

fn has_offsets(cx: &Ctx<'_>, group: &str) -> bool {
    cx.groups
        .committed
        .get(group)
        .is_some_and(|t| !t.is_empty())
}

/// An answer with only a group-level error, as Kafka sends one.
fn group_error(e: ResponseError) -> OffsetDeleteResponse {
    OffsetDeleteResponse::default().with_error_code(e.code())
}

/// An OffsetDelete waiting for its tombstones to be appended.
#[derive(Debug)]
struct Pending {
    correlation_id: i32,
    response: OffsetDeleteResponse,
    group: String,
    /// The log and the offset that must be below its high watermark.
    wait: (LogKey, u64),
    /// The offsets the tombstones remove, as they were when asked.
    removed: Vec<((String, i32), Committed)>,
    /// Replicated: when to give up on the tombstones reaching the other
    /// replicas (`offsets.commit.timeout.ms`), as a commit does.
    deadline: Option<crate::time::Instant>,
}

impl Waiter for Pending {
    fn until(&self) -> Until {
        Until::Appended {
            deadline: self.deadline,
        }
    }

    fn poll(&mut self, cx: &mut Ctx<'_>, _: Wake) -> Option<Response> {
        let (key, last) = self.wait;
        let log = cx.logs.get(key);
        let failed = log.is_none_or(|l| l.offline().is_some());
        let done = log.is_some_and(|l| l.high_watermark() > last);
        // The offsets partition went to another leader before the
        // tombstones were replicated: they may be truncated there, so the
        // client asks the new coordinator.
        let moved = cx.logs.led_elsewhere(key);
        let due = self.deadline.is_some_and(|d| d <= cx.now.mono);
        if !failed && !done && !moved && !due {
            return None;
        }
        let response = if failed {
            group_error(ResponseError::CoordinatorNotAvailable)
        } else if !done && moved {
            group_error(ResponseError::NotCoordinator)
        } else if !done {
            group_error(ResponseError::RequestTimedOut)
        } else {
            self.apply(cx);
            std::mem::take(&mut self.response)
        };
        Some(Response::Frame(protocol::encode_response(
            ApiKey::OffsetDelete,
            0,
            self.correlation_id,
            &response,
        )))
    }
}

impl Pending {
    /// The tombstones are in the log: forget the offsets. One committed
    /// again since (its commit is later in the log, answered in the same
    /// wake) is left alone, so memory agrees with what a replay finds.
    fn apply(&mut self, cx: &mut Ctx<'_>) {
        let g = &mut *cx.groups;
        let Some(table) = g.committed.get_mut(&self.group) else {
            return;
        };
        for (key, was) in self.removed.drain(..) {
            if table.get(&key) == Some(&was) {
                table.remove(&key);
            }
        }
        tracing::info!(group = %self.group, left = table.len(), "committed offsets deleted");
        if table.is_empty() {
            g.committed.remove(&self.group);
            if g.coordinator.group_state(&self.group) == Some(GroupState::Empty) {
                g.coordinator.remove_empty_group(&self.group);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::{GroupId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::protocol::guard::tests::check_api;

    #[test]
    fn the_guard_walks_every_version() {
        let topic = |name, partitions: &[i32]| {
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(name)))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| OffsetDeleteRequestPartition::default().with_partition_index(p))
                        .collect(),
                )
        };
        for v in API.min..=API.max {
            let req = OffsetDeleteRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("billing")))
                .with_topics(vec![topic("orders", &[0, 1, 2]), topic("refunds", &[])]);
            check_api(ApiKey::OffsetDelete, v, &req);
        }
    }
}
