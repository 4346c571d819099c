//! DeleteRecords 0–2: a partition's log start moves up to the offset asked
//! for (-1: the high watermark). Fetches below it get OFFSET_OUT_OF_RANGE
//! and ListOffsets earliest answers it; the segments wholly below it are
//! deleted at once, and the log-start checkpoint is written so a restart
//! does not bring the records back. Compact-only topics refuse it
//! (POLICY_VIOLATION), as in Kafka.
//!
//! In a cluster the leader answers once every in-sync replica's log
//! starts at the offset too (each follower moves its own log start up to
//! the leader's and says so in its next fetch), as Kafka's leader waits
//! for the partition's low watermark: the answer's low watermark is the
//! least log start of the in-sync replicas, and a partition not there
//! within the request's `timeout_ms` gets REQUEST_TIMED_OUT (its records
//! are deleted on the leader; the followers follow).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};

use std::time::Duration;

use super::ApiSpec;
use crate::broker::cluster::NotHere;
use crate::broker::logs::LogKey;
use crate::broker::replication::Role;
use crate::broker::wait::{Answer, Ctx, Origin, Response, Until, Waiter, Wake};
use crate::config::CleanupPolicy;
use crate::log::ReadError;
use crate::protocol::{Request, guard::Reader};
use crate::time::Instant;

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::DeleteRecords,
    min: 0,
    max: 2,
    flexible: 2,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, _v: i16) -> Option<()> {
    let partition_min = 4 + 8 + r.tags_min();
    r.array(r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.string()?; // name
        r.array(partition_min, |r| {
            r.skip(4 + 8)?; // partition_index, offset
            r.tags()
        })?;
        r.tags()
    })?;
    r.skip(4)?; // timeout_ms
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<DeleteRecordsRequest>(request) else {
        return Answer::Malformed;
    };
    let mut response = DeleteRecordsResponse::default();
    let mut waiting = Vec::new();
    for (ti, topic) in req.topics.iter().enumerate() {
        let name = topic.name.0.as_str();
        let mut t = DeleteRecordsTopicResult::default().with_name(topic.name.clone());
        for (pi, p) in topic.partitions.iter().enumerate() {
            let mut r = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            match delete(cx, name, p.partition_index, p.offset) {
                Ok((key, offset)) => {
                    let low = cx.logs.low_watermark(key).unwrap_or(0);
                    r.low_watermark = i64::try_from(low).unwrap_or(i64::MAX);
                    if low < offset {
                        waiting.push(Waiting {
                            ti,
                            pi,
                            key,
                            offset,
                        });
                    }
                }
                Err(e) => r.error_code = e.code(),
            }
            t.partitions.push(r);
        }
        response.topics.push(t);
    }
    if waiting.is_empty() {
        return super::respond(request, &response);
    }
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms.max(0)).unwrap_or(0));
    Answer::Wait(Box::new(Deleting {
        version: request.version,
        correlation_id: request.correlation_id,
        response,
        waiting,
        deadline: cx.now.mono.saturating_add(timeout),
    }))
}

/// A partition whose in-sync replicas have not all moved their log start
/// to `offset` yet.
#[derive(Debug)]
struct Waiting {
    ti: usize,
    pi: usize,
    key: LogKey,
    offset: u64,
}

/// A DeleteRecords waiting for the followers of its partitions.
#[derive(Debug)]
struct Deleting {
    version: i16,
    correlation_id: i32,
    response: DeleteRecordsResponse,
    waiting: Vec<Waiting>,
    deadline: Instant,
}

impl Waiter for Deleting {
    fn until(&self) -> Until {
        Until::Appended {
            deadline: Some(self.deadline),
        }
    }

    fn poll(&mut self, cx: &mut Ctx<'_>, _: Wake) -> Option<Response> {
        let timed_out = self.deadline <= cx.now.mono;
        let response = &mut self.response;
        self.waiting.retain(|w| {
            let r = &mut response.topics[w.ti].partitions[w.pi];
            let leads = matches!(cx.logs.role(w.key), Some(Role::Leader(_)));
            let Some(low) = cx.logs.low_watermark(w.key).filter(|_| leads) else {
                r.error_code = ResponseError::NotLeaderOrFollower.code();
                return false;
            };
            r.low_watermark = i64::try_from(low).unwrap_or(i64::MAX);
            if low >= w.offset {
                return false;
            }
            if timed_out {
                r.error_code = ResponseError::RequestTimedOut.code();
                return false;
            }
            true
        });
        self.waiting.is_empty().then(|| {
            Response::Frame(crate::protocol::encode_response(
                ApiKey::DeleteRecords,
                self.version,
                self.correlation_id,
                &self.response,
            ))
        })
    }
}

/// Move the log start of `topic`'s `partition` to `offset` (-1: the high
/// watermark): the log and the offset it took.
fn delete(
    cx: &mut Ctx<'_>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(LogKey, u64), ResponseError> {
    let key = cx.leads(topic, partition).map_err(NotHere::error)?;
    let log = cx
        .logs
        .get(key)
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    if log.offline().is_some() {
        return Err(ResponseError::KafkaStorageError);
    }
    if log.config().cleanup_policy == CleanupPolicy::Compact {
        return Err(ResponseError::PolicyViolation);
    }
    let offset = match offset {
        -1 => log.high_watermark(),
        o => u64::try_from(o).map_err(|_| ResponseError::OffsetOutOfRange)?,
    };
    match cx.logs.delete_records(cx.io, cx.now, key, offset) {
        Some(Ok(start)) => {
            tracing::info!(
                topic,
                partition,
                start,
                "records deleted below the new log start"
            );
            Ok((key, offset))
        }
        Some(Err(ReadError::OffsetOutOfRange)) => Err(ResponseError::OffsetOutOfRange),
        None => Err(ResponseError::UnknownTopicOrPartition),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::protocol::guard::tests::check_api;

    #[test]
    fn the_guard_walks_every_version() {
        for v in API.min..=API.max {
            let req = DeleteRecordsRequest::default()
                .with_topics(vec![
                    DeleteRecordsTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("orders")))
                        .with_partitions(vec![
                            DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(10),
                            DeleteRecordsPartition::default()
                                .with_partition_index(1)
                                .with_offset(-1),
                        ]),
                ])
                .with_timeout_ms(1000);
            check_api(ApiKey::DeleteRecords, v, &req);
        }
    }
}
