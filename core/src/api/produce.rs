//! Produce 0–10: validate each partition's batch (idempotent producers'
//! epochs and sequences included), append it, and answer once every append
//! the request made is done, or not at all (acks 0). Done is written on
//! this broker for acks 1; for acks -1, below the high watermark — which,
//! replicated, every in-sync replica has written — and synced too on a
//! `flush.messages=1` topic. A replicated partition whose acks=-1 append
//! is not done by the request's `timeout_ms` is answered
//! REQUEST_TIMED_OUT, as Kafka does; local writes are always waited for.
//!
//! Produce is advertised from version 0 because librdkafka turns off
//! compression when the lowest Produce version is above 0; versions 0–2
//! (message format v0/v1) are answered with UNSUPPORTED_VERSION per
//! partition ([`crate::protocol::produce_v0`]).
//!
//! From v10 (KIP-951) a partition answered NOT_LEADER_OR_FOLLOWER names
//! the leader this broker knows, with its epoch and endpoint.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, BrokerId, ProduceRequest};
use kafka_protocol::protocol::StrBytes;

use super::ApiSpec;
use crate::broker::group_log::OFFSETS_TOPIC;
use crate::broker::logs::{LogKey, Logs};
use crate::broker::wait::{Answer, Ctx, Origin, Response, Until, Waiter, Wake};
use crate::log::policy::{self, Refusal};
use crate::log::{AppendError, Appended, batch};
use crate::protocol::{self, Request, guard::Reader, produce_v0};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::Produce,
    min: 0,
    max: 10,
    flexible: 9,
    walk,
    handle,
};

/// Versions 0–2 are answered without decoding (see the module docs).
fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    if v < 3 {
        return None;
    }
    walk_v3(r, v)
}

fn walk_v3(r: &mut Reader<'_>, _v: i16) -> Option<()> {
    r.string()?; // transactional_id
    r.skip(2 + 4)?; // acks, timeout_ms
    let partition_min = 4 + r.prefix_min() + r.tags_min();
    r.array(r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.string()?; // name
        r.array(partition_min, |r| {
            r.skip(4)?; // index
            r.bytes()?; // records
            r.tags()
        })?;
        r.tags()
    })?;
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    if request.version < 3 {
        return match produce_v0::answer(
            request.version,
            request.correlation_id,
            request.body.clone(),
        ) {
            Ok(Some(frame)) => Answer::Frame(frame),
            // acks 0 on a format we refuse: Kafka closes the connection so
            // the producer notices the error.
            Ok(None) => Answer::Close,
            Err(()) => Answer::Malformed,
        };
    }
    let Some(req) = super::decode::<ProduceRequest>(request) else {
        return Answer::Malformed;
    };
    if req.transactional_id.is_some() {
        // Transactions are not supported; Kafka answers a transactional
        // produce it cannot authorise this way.
        let code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return every_partition(request, &req, code);
    }
    let mut response = ProduceResponse::default();
    let mut waits = Vec::new();
    let mut any_error = false;
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        let name = topic.name.0.as_str().to_owned();
        let mut t = TopicProduceResponse::default().with_name(topic.name.clone());
        for (pi, data) in topic.partition_data.into_iter().enumerate() {
            let mut p = partition_response(request.version, data.index, 0);
            // A duplicate of an idempotent producer's batch is answered
            // like the original append (Kafka: error NONE, the original
            // offsets), once those offsets are below the high watermark.
            match append_one(cx, &name, data.index, data.records, req.acks) {
                Ok((key, Appended::New(info) | Appended::Duplicate(info))) => {
                    p.base_offset = info.base_offset as i64;
                    p.log_append_time_ms = info.log_append_time;
                    let log = cx.logs.get(key);
                    if request.version >= 5 {
                        if let Some(log) = log {
                            p.log_start_offset = log.log_start_offset() as i64;
                        }
                    }
                    let to = match req.acks {
                        -1 if log.is_some_and(|l| l.config().flush_messages == 1) => Ack::Synced,
                        -1 => Ack::Replicated,
                        _ => Ack::Written,
                    };
                    waits.push(Wait {
                        topic: ti,
                        partition: pi,
                        key,
                        last: info.last_offset,
                        to,
                        replicated: cx.replicas(&name, data.index).is_some_and(|r| r > 1),
                    });
                }
                Err(refusal) => {
                    any_error = true;
                    p.error_code = refusal.code;
                    if request.version >= 8 {
                        if !refusal.message.is_empty() {
                            p.error_message = Some(StrBytes::from_string(refusal.message));
                        }
                        p.record_errors = refusal
                            .record_errors
                            .into_iter()
                            .map(|(i, m)| {
                                BatchIndexAndErrorMessage::default()
                                    .with_batch_index(i)
                                    .with_batch_index_error_message(Some(StrBytes::from_string(m)))
                            })
                            .collect();
                    }
                }
            }
            t.partition_responses.push(p);
        }
        response.responses.push(t);
    }
    if req.acks == 0 {
        return if any_error {
            Answer::Close
        } else {
            Answer::Silent
        };
    }
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
    Answer::Wait(Box::new(Pending {
        version: request.version,
        correlation_id: request.correlation_id,
        response,
        waits,
        deadline: cx.now.mono.saturating_add(timeout),
        written: false,
    }))
}

/// Validate and append one partition's records.
fn append_one(
    cx: &mut Ctx<'_>,
    topic: &str,
    partition: i32,
    records: Option<Bytes>,
    acks: i16,
) -> Result<(LogKey, Appended), Refusal> {
    // Clients never write to the internal offsets topic.
    if topic == OFFSETS_TOPIC {
        return Err(code(ResponseError::InvalidTopicException));
    }
    let unknown = || code(ResponseError::UnknownTopicOrPartition);
    let key = cx
        .leads(topic, partition)
        .map_err(|e| Refusal::code(e.code()))?;
    let log = cx.logs.get(key).ok_or_else(unknown)?;
    if log.offline().is_some() {
        return Err(code(ResponseError::KafkaStorageError));
    }
    let config = log.config();
    // Alone, this broker is every partition's only replica.
    let in_sync = cx.in_sync_replicas(topic, partition).unwrap_or(1);
    if acks == -1 && (in_sync as i64) < i64::from(config.min_insync_replicas) {
        return Err(Refusal {
            message: format!(
                "the in-sync replicas of {topic}-{partition} are {in_sync}, below \
                 min.insync.replicas {}",
                config.min_insync_replicas
            ),
            ..code(ResponseError::NotEnoughReplicas)
        });
    }
    let records = records.ok_or_else(|| Refusal {
        message: "null records".to_owned(),
        ..code(ResponseError::InvalidRecord)
    })?;
    let header = batch::validate_client_batch(&records, config.max_message_bytes).map_err(|e| {
        let message = match e {
            batch::BatchError::Corrupt(m) | batch::BatchError::Invalid(m) => m,
            batch::BatchError::TooLarge => "",
        };
        Refusal {
            code: e.code(),
            message: message.to_owned(),
            record_errors: Vec::new(),
        }
    })?;
    let limit = cx.config.decompression_max_bytes;
    let (records, header) = policy::apply(records, header, config, cx.now.wall_ms, limit)?;
    let (bytes, count) = (records.len() as u64, header.record_count.max(0) as u64);
    let appended = cx
        .logs
        .run(cx.io, cx.now, key, |log, now, ids, out| {
            log.append_client(now, records, &header, ids, out)
        })
        .ok_or_else(unknown)?;
    match appended {
        Ok(a) => {
            cx.metrics.produced(topic, bytes, count);
            Ok((key, a))
        }
        Err(AppendError::Producer(e)) => {
            tracing::debug!(
                topic,
                partition,
                producer_id = header.producer_id,
                epoch = header.producer_epoch,
                sequence = header.base_sequence,
                error = ?e,
                "idempotent batch refused"
            );
            Err(Refusal {
                message: e.message().to_owned(),
                ..Refusal::code(e.code())
            })
        }
        Err(AppendError::Storage(e)) => {
            tracing::warn!(topic, partition, error = %e, "append refused: partition offline");
            Err(code(ResponseError::KafkaStorageError))
        }
    }
}

/// A refusal with Kafka's error and no message.
fn code(e: ResponseError) -> Refusal {
    Refusal::code(e.code())
}

/// The same error for every partition the request names.
fn every_partition(request: &Request, req: &ProduceRequest, code: i16) -> Answer {
    let mut response = ProduceResponse::default();
    for topic in &req.topic_data {
        let mut t = TopicProduceResponse::default().with_name(topic.name.clone());
        for data in &topic.partition_data {
            t.partition_responses
                .push(partition_response(request.version, data.index, code));
        }
        response.responses.push(t);
    }
    super::respond(request, &response)
}

/// One append the answer waits for.
#[derive(Debug, Clone, Copy)]
struct Wait {
    /// Where its result goes in the response.
    topic: usize,
    partition: usize,
    key: LogKey,
    /// The offset that must be done.
    last: u64,
    to: Ack,
    /// The partition has other replicas: an acks=-1 wait may time out.
    replicated: bool,
}

/// What a partition's append waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// acks=1: written on this broker.
    Written,
    /// acks=-1: below the high watermark, so written on every in-sync
    /// replica.
    Replicated,
    /// acks=-1 on a topic that syncs every message (`flush.messages=1`):
    /// below the high watermark and the recovery point — synced — so an
    /// acknowledged record survives a power loss, not only a crash.
    Synced,
}

/// A Produce waiting for its appends to complete.
#[derive(Debug)]
struct Pending {
    version: i16,
    correlation_id: i32,
    /// The response, with each partition's result filled in; partitions
    /// still waiting are listed in `waits`.
    response: ProduceResponse,
    waits: Vec<Wait>,
    /// The request's `timeout_ms` from its arrival.
    deadline: crate::time::Instant,
    /// Every append it waits for is written here: it waits only for the
    /// followers (or a sync).
    written: bool,
}

impl Waiter for Pending {
    fn until(&self) -> Until {
        let replicated = self
            .waits
            .iter()
            .any(|w| w.replicated && w.to != Ack::Written);
        Until::Appended {
            deadline: replicated.then_some(self.deadline),
        }
    }

    fn poll(&mut self, cx: &mut Ctx<'_>, wake: Wake) -> Option<Response> {
        let done = self.poll_logs(cx.logs);
        if done || !matches!(wake, Wake::Deadline) || self.deadline > cx.now.mono {
            return done.then(|| Response::Frame(self.encode(cx)));
        }
        // What is still being written or replicated stays in the log; the
        // producer retries (an idempotent one's retry is a duplicate).
        let response = &mut self.response;
        self.waits.retain(|w| {
            if !w.replicated || w.to == Ack::Written {
                return true;
            }
            let p = &mut response.responses[w.topic].partition_responses[w.partition];
            p.error_code = ResponseError::RequestTimedOut.code();
            p.base_offset = -1;
            false
        });
        self.poll_logs(cx.logs)
            .then(|| Response::Frame(self.encode(cx)))
    }

    fn holds_request_bytes(&self) -> bool {
        !self.written
    }
}

impl Pending {
    /// Whether every append the request made is below its log's high
    /// watermark (a failed log answers its partitions with
    /// KAFKA_STORAGE_ERROR), so the response is whole.
    fn poll_logs(&mut self, logs: &Logs) -> bool {
        let response = &mut self.response;
        let mut written = true;
        self.waits.retain(|w| {
            let Some(log) = logs.get(w.key) else {
                return false;
            };
            let refused = if log.offline().is_some() {
                Some(ResponseError::KafkaStorageError)
            } else if w.to != Ack::Written && logs.led_elsewhere(w.key) {
                // Leadership moved before the in-sync replicas had it: the
                // new leader may or may not hold it; the producer retries
                // there (an idempotent retry is a duplicate if it does).
                Some(ResponseError::NotLeaderOrFollower)
            } else {
                None
            };
            if let Some(e) = refused {
                let p = &mut response.responses[w.topic].partition_responses[w.partition];
                p.error_code = e.code();
                p.base_offset = -1;
                return false;
            }
            let done_to = match w.to {
                Ack::Written => log.written_end(),
                Ack::Replicated => log.high_watermark(),
                Ack::Synced => log.recovery_point().min(log.high_watermark()),
            };
            written &= log.written_end() > w.last;
            done_to <= w.last
        });
        self.written = written;
        self.waits.is_empty()
    }

    fn encode(&mut self, cx: &Ctx<'_>) -> Bytes {
        if self.version >= 10 {
            name_leaders(cx, &mut self.response);
        }
        protocol::encode_response(
            ApiKey::Produce,
            self.version,
            self.correlation_id,
            &self.response,
        )
    }
}

/// KIP-951 (v10+): a partition answered NOT_LEADER_OR_FOLLOWER names the
/// leader this broker knows and its epoch, and the response carries those
/// leaders' endpoints, so the producer goes there without waiting for a
/// Metadata round trip.
fn name_leaders(cx: &Ctx<'_>, response: &mut ProduceResponse) {
    let Some(image) = cx.image() else {
        return;
    };
    let mut named = BTreeSet::new();
    for t in &mut response.responses {
        let Some(topic) = image.topics.get(t.name.0.as_str()) else {
            continue;
        };
        for p in &mut t.partition_responses {
            let state = usize::try_from(p.index)
                .ok()
                .and_then(|i| topic.partitions.get(i));
            let Some(state) = state.filter(|s| s.leader >= 0) else {
                continue;
            };
            if p.error_code == ResponseError::NotLeaderOrFollower.code() {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(state.leader))
                    .with_leader_epoch(state.leader_epoch);
                named.insert(state.leader);
            }
        }
    }
    response.node_endpoints = cx
        .brokers()
        .into_iter()
        .filter(|b| named.contains(&b.id) && !b.fenced)
        .map(|b| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
        })
        .collect();
}

/// A partition's answer before its append: base offset -1, and -1 in the
/// fields the version has (kafka-protocol refuses to encode a field the
/// version lacks).
fn partition_response(version: i16, index: i32, code: i16) -> PartitionProduceResponse {
    let mut p = PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1);
    if version >= 5 {
        p.log_start_offset = -1;
    }
    p
}
