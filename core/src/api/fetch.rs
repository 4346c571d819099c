//! Fetch 4–12: find each partition's bytes through the log's indexes,
//! answer with file regions (sendfile), and long-poll while fewer than
//! `min_bytes` are there, woken by appends or the deadline. From 13 topics
//! are named by id, which this broker does not do yet.
//!
//! Each partition names the leader epoch its sender knows (v9+): an older
//! one than this broker's is answered FENCED_LEADER_EPOCH, a newer one
//! UNKNOWN_LEADER_EPOCH (KIP-320). One that names the epoch of the last
//! batch it fetched (v12+) and whose offset is past that epoch's end here
//! is told where the epoch ends (DivergingEpoch) and sent nothing: a
//! follower truncates, a consumer finds its log was cut (Kafka checks
//! both alike).
//!
//! A Fetch with a replica id is a follower's: its fetch offsets are its log
//! ends, which move the leader's high watermark, and it is served up to the
//! leader's written end rather than the high watermark
//! (`broker::replication`).

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, FetchRequest};

use super::ApiSpec;
use crate::broker::logs::{LogKey, Logs, Pins};
use crate::broker::wait::{Answer, Ctx, Origin, Response, Until, Waiter, Wake};
use crate::log::{PartitionLog, ReadError};
use crate::protocol::{Request, fetch as wire, guard::Reader};
use crate::time::Instant;

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::Fetch,
    min: 4,
    max: 12,
    flexible: 12,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    // replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level
    r.skip(4 + 4 + 4 + 4 + 1)?;
    if v >= 7 {
        r.skip(4 + 4)?; // session_id, session_epoch
    }
    // A partition's fixed fields: partition, current_leader_epoch (v9+),
    // fetch_offset, last_fetched_epoch (v12+), log_start_offset (v5+),
    // partition_max_bytes.
    let since = |first, n| if v >= first { n } else { 0 };
    let partition = 4 + since(9, 4) + 8 + since(12, 4) + since(5, 8) + 4;
    let partition_min = partition + r.tags_min();
    let topic_min = r.string_min() + r.prefix_min() + r.tags_min();
    r.array(topic_min, |r| {
        r.string()?; // topic
        r.array(partition_min, |r| {
            r.skip(partition)?;
            r.tags()
        })?;
        r.tags()
    })?;
    if v >= 7 {
        // forgotten_topics_data
        r.array(topic_min, |r| {
            r.string()?; // topic
            r.array(4, |r| r.skip(4))?; // partitions
            r.tags()
        })?;
    }
    if v >= 11 {
        r.string()?; // rack_id
    }
    // kafka-protocol reads tag 0 (cluster_id) as a compact string straight
    // off the buffer, whatever size the tag claims.
    r.tags_with_string(Some(0))
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<FetchRequest>(request) else {
        return Answer::Malformed;
    };
    follower_fetched(cx, &req);
    let plan = plan(cx, &req);
    let wait_ms = i64::from(req.max_wait_ms.max(0)).min(cx.config.fetch_max_wait_cap_ms);
    if plan.errors || plan.bytes >= min_bytes(&req) || wait_ms == 0 {
        return respond(cx, request.version, request.correlation_id, plan).into();
    }
    let deadline = cx
        .now
        .mono
        .saturating_add(Duration::from_millis(wait_ms as u64));
    Answer::Wait(Box::new(Pending {
        version: request.version,
        correlation_id: request.correlation_id,
        req,
        deadline,
    }))
}

/// A follower's fetch offsets are its log ends: the leader's high
/// watermark may move (see `broker::replication`). Not a follower whose
/// log diverged: its offset names records the leader does not have, and
/// counting it could put it in the ISR before it truncates (Kafka updates
/// a follower's state only when there is no diverging epoch).
fn follower_fetched(cx: &mut Ctx<'_>, req: &FetchRequest) {
    let replica = req.replica_id.0;
    if replica < 0 {
        return;
    }
    for topic in &req.topics {
        for p in &topic.partitions {
            let name = topic.topic.0.as_str();
            let (Ok(key), Ok(offset)) = (
                cx.leads_in(name, p.partition, p.current_leader_epoch),
                u64::try_from(p.fetch_offset),
            ) else {
                continue;
            };
            let leading = cx.leader_epoch(name, p.partition);
            let in_line = cx.logs.get(key).is_some_and(|log| {
                epoch_check(log, p.last_fetched_epoch, Some(offset), leading) == EpochCheck::InLine
            });
            if in_line {
                let start = u64::try_from(p.log_start_offset).ok();
                cx.logs
                    .follower_fetched(key, replica, (offset, start), cx.now.mono);
            }
        }
    }
}

/// What the last fetched epoch (KIP-320) says of a fetch from `offset`.
#[derive(Debug, PartialEq, Eq)]
enum EpochCheck {
    /// The fetcher's records are this log's (or it named no epoch).
    InLine,
    /// Its epoch ends here at this (epoch, end offset), before `offset` or
    /// in an older epoch: nothing is sent, the fetcher truncates.
    Diverged(i32, i64),
    /// No end of its epoch can be found, or `offset` is below the log
    /// start: OFFSET_OUT_OF_RANGE, whatever the epochs say.
    OutOfRange,
}

/// Kafka's order (`Partition.fetchRecords`): a fetcher that last fetched
/// `last_fetched_epoch` (-1: none known) and now fetches from `offset` is
/// out of range when this log knows no end for that epoch (an epoch above
/// every one here, which the leader epoch check leaves only to a fetcher
/// that did not name its own) or when `offset` is below the log start;
/// else it diverged when this log's epoch at or below it is older, or
/// ends before `offset`. `leading` is the epoch this broker leads the log
/// in.
fn epoch_check(
    log: &PartitionLog,
    last_fetched_epoch: i32,
    offset: Option<u64>,
    leading: Option<i32>,
) -> EpochCheck {
    if last_fetched_epoch < 0 {
        return EpochCheck::InLine;
    }
    let Some(offset) = offset else {
        return EpochCheck::OutOfRange;
    };
    let Some((epoch, end)) = log.end_offset_for_epoch(last_fetched_epoch, leading) else {
        return EpochCheck::OutOfRange;
    };
    if offset < log.log_start_offset() {
        return EpochCheck::OutOfRange;
    }
    if epoch < last_fetched_epoch || end < offset {
        return EpochCheck::Diverged(epoch, i64::try_from(end).unwrap_or(i64::MAX));
    }
    EpochCheck::InLine
}

fn min_bytes(req: &FetchRequest) -> u64 {
    req.min_bytes.max(0) as u64
}

/// A Fetch long-polling for data.
#[derive(Debug)]
struct Pending {
    version: i16,
    correlation_id: i32,
    req: FetchRequest,
    /// When to answer with whatever is there.
    deadline: Instant,
}

impl Waiter for Pending {
    fn until(&self) -> Until {
        Until::Data {
            deadline: self.deadline,
        }
    }

    fn poll(&mut self, cx: &mut Ctx<'_>, wake: Wake) -> Option<Response> {
        let plan = plan(cx, &self.req);
        let ready = match wake {
            Wake::Deadline => true,
            Wake::Data(key) => {
                plan.logs.contains(&key) && (plan.errors || plan.bytes >= min_bytes(&self.req))
            }
            Wake::Appended | Wake::Read(..) | Wake::Metadata | Wake::Forwarded(_) => false,
        };
        ready.then(|| respond(cx, self.version, self.correlation_id, plan))
    }
}

/// What one pass over a Fetch's partitions found.
struct Plan {
    topics: Vec<wire::TopicData>,
    bytes: u64,
    pins: Pins,
    logs: Vec<LogKey>,
    errors: bool,
}

/// Look up every requested partition. Kafka's limits: each partition gets
/// at most its `partition_max_bytes`, the response at most `max_bytes`, but
/// the first batch found is always whole (KIP-74) so a consumer always
/// progresses.
fn plan(cx: &Ctx<'_>, req: &FetchRequest) -> Plan {
    let logs: &Logs = cx.logs;
    let mut plan = Plan {
        topics: Vec::with_capacity(req.topics.len()),
        bytes: 0,
        pins: Vec::new(),
        logs: Vec::new(),
        errors: false,
    };
    let mut budget = req.max_bytes.max(0) as u64;
    for topic in &req.topics {
        let name = topic.topic.0.as_str();
        let mut t = wire::TopicData {
            name: topic.topic.0.clone().into_bytes(),
            partitions: Vec::with_capacity(topic.partitions.len()),
        };
        for p in &topic.partitions {
            let mut data = wire::PartitionData {
                index: p.partition,
                error: 0,
                high_watermark: -1,
                log_start_offset: -1,
                records: Vec::new(),
                diverging_epoch: None,
            };
            let key = match cx.leads_in(name, p.partition, p.current_leader_epoch) {
                Ok(key) => key,
                Err(e) => {
                    data.error = e.code();
                    plan.errors = true;
                    t.partitions.push(data);
                    continue;
                }
            };
            let Some(log) = logs.get(key) else {
                data.error = ResponseError::UnknownTopicOrPartition.code();
                plan.errors = true;
                t.partitions.push(data);
                continue;
            };
            plan.logs.push(key);
            if log.offline().is_some() {
                data.error = ResponseError::KafkaStorageError.code();
                plan.errors = true;
                t.partitions.push(data);
                continue;
            }
            data.high_watermark = log.high_watermark() as i64;
            data.log_start_offset = log.log_start_offset() as i64;
            let offset = u64::try_from(p.fetch_offset).ok();
            let limit = (p.partition_max_bytes.max(0) as u64).min(budget).max(1);
            // A follower is served what the leader has written; a consumer
            // what is below the high watermark.
            let follower = logs.is_follower(key, req.replica_id.0);
            let leading = cx.leader_epoch(name, p.partition);
            match epoch_check(log, p.last_fetched_epoch, offset, leading) {
                EpochCheck::InLine => {}
                EpochCheck::Diverged(epoch, end) => {
                    // Nothing is sent past a divergence, and at once: the
                    // fetcher finds out first (a follower truncates).
                    data.diverging_epoch = Some((epoch, end));
                    plan.errors = true;
                    t.partitions.push(data);
                    continue;
                }
                EpochCheck::OutOfRange => {
                    data.error = ResponseError::OffsetOutOfRange.code();
                    plan.errors = true;
                    t.partitions.push(data);
                    continue;
                }
            }
            let read = offset.map(|o| {
                if follower {
                    log.read_regions_for_replica(o, limit)
                } else {
                    log.read_regions(o, limit)
                }
            });
            match read {
                Some(Ok(slices)) if !slices.is_empty() => {
                    let len: u64 = slices.iter().map(|s| s.len).sum();
                    // Past the first partition, respect the budget strictly.
                    if len <= budget || plan.bytes == 0 {
                        budget = budget.saturating_sub(len);
                        plan.bytes += len;
                        for slice in slices {
                            plan.pins.push((key, slice.seg));
                            data.records.push((slice.seg, slice.pos, slice.len));
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(ReadError::OffsetOutOfRange)) | None => {
                    data.error = ResponseError::OffsetOutOfRange.code();
                    plan.errors = true;
                }
            }
            t.partitions.push(data);
        }
        plan.topics.push(t);
    }
    plan
}

/// Pin the plan's segments and frame the response.
fn respond(cx: &mut Ctx<'_>, version: i16, correlation_id: i32, plan: Plan) -> Response {
    for &(key, seg) in &plan.pins {
        cx.logs.pin(key, seg);
    }
    for t in &plan.topics {
        let bytes = t
            .partitions
            .iter()
            .flat_map(|p| &p.records)
            .map(|r| r.2)
            .sum();
        cx.metrics.fetched(&String::from_utf8_lossy(&t.name), bytes);
    }
    // No fetch sessions: session id 0 tells the client none was made, so
    // it keeps sending full fetch requests.
    let parts = wire::encode(version, correlation_id, 0, 0, &plan.topics);
    Response::Parts(parts, plan.pins)
}
