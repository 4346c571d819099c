//! Fetch: find each partition's bytes through the log's indexes, answer with
//! file regions (sendfile), and long-poll while fewer than `min_bytes` are
//! there, woken by appends or the deadline.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::FetchRequest;

use super::{Broker, LogKey, SlotState};
use crate::io::{ConnId, SegId};
use crate::log::ReadError;
use crate::protocol::{self, Request, fetch as wire};
use crate::time::Instant;

/// A Fetch long-polling for data.
#[derive(Debug)]
pub(super) struct Pending {
    version: i16,
    correlation_id: i32,
    req: FetchRequest,
    /// When to answer with whatever is there.
    pub(super) deadline: Instant,
}

/// What one pass over a Fetch's partitions found.
struct Plan {
    topics: Vec<wire::TopicData>,
    bytes: u64,
    pins: Vec<(LogKey, SegId)>,
    logs: Vec<LogKey>,
    errors: bool,
}

impl Broker {
    /// Handle a Fetch request; false when it does not decode.
    pub(super) fn fetch(&mut self, conn: ConnId, request: Request) -> bool {
        let Some(req) = protocol::decode::<FetchRequest>(
            kafka_protocol::messages::ApiKey::Fetch,
            &request.body,
            request.version,
        ) else {
            return false;
        };
        let plan = self.plan_fetch(&req);
        let wait_ms = i64::from(req.max_wait_ms.max(0)).min(self.config.fetch_max_wait_cap_ms);
        let satisfied = plan.errors || plan.bytes >= req.min_bytes.max(0) as u64 || wait_ms == 0;
        if satisfied {
            let state = self.respond_fetch(request.version, request.correlation_id, plan);
            self.push_slot(conn, state);
        } else {
            let deadline = self
                .now
                .mono
                .saturating_add(Duration::from_millis(wait_ms as u64));
            let pending = Pending {
                version: request.version,
                correlation_id: request.correlation_id,
                req,
                deadline,
            };
            self.push_slot(conn, SlotState::Fetch(pending));
        }
        true
    }

    /// Look up every requested partition. Kafka's limits: each partition gets
    /// at most its `partition_max_bytes`, the response at most `max_bytes`,
    /// but the first batch found is always whole (KIP-74) so a consumer
    /// always progresses.
    fn plan_fetch(&self, req: &FetchRequest) -> Plan {
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
                    records: None,
                };
                let Some(key) = self.find_log(name, p.partition) else {
                    data.error = ResponseError::UnknownTopicOrPartition.code();
                    plan.errors = true;
                    t.partitions.push(data);
                    continue;
                };
                let Some(log) = self.log(key) else { continue };
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
                let limit = (p.partition_max_bytes.max(0) as u64).min(budget);
                match offset.map(|o| log.read(o, limit.max(1))) {
                    Some(Ok(Some(slice))) => {
                        // Past the first region, respect the budget strictly.
                        if slice.len <= budget || plan.bytes == 0 {
                            budget = budget.saturating_sub(slice.len);
                            plan.bytes += slice.len;
                            plan.pins.push((key, slice.seg));
                            data.records = Some((slice.seg, slice.pos, slice.len));
                        }
                    }
                    Some(Ok(None)) => {}
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
    fn respond_fetch(&mut self, version: i16, correlation_id: i32, plan: Plan) -> SlotState {
        for &(key, seg) in &plan.pins {
            if let Some(log) = self.logs.get_mut(key).and_then(Option::as_mut) {
                log.pin(seg);
            }
        }
        // No fetch sessions: session id 0 tells the client none was made,
        // so it keeps sending full fetch requests.
        let parts = wire::encode(version, correlation_id, 0, 0, &plan.topics);
        SlotState::Ready(parts, plan.pins)
    }

    /// Re-plan every waiting Fetch that reads `key`; answer those now
    /// satisfied.
    pub(super) fn wake_fetches(&mut self, key: LogKey) {
        self.retry_fetches(|broker, pending, _| {
            let plan = broker.plan_fetch(&pending.req);
            let relevant = plan.logs.contains(&key);
            let ready =
                relevant && (plan.errors || plan.bytes >= pending.req.min_bytes.max(0) as u64);
            ready.then_some(plan)
        });
    }

    /// Answer every waiting Fetch whose deadline has passed.
    pub(super) fn expire_fetches(&mut self) {
        let now = self.now.mono;
        self.retry_fetches(|broker, pending, _| {
            (pending.deadline <= now).then(|| broker.plan_fetch(&pending.req))
        });
    }

    /// Answer every waiting Fetch for which `decide` returns a plan.
    fn retry_fetches(&mut self, decide: impl Fn(&Broker, &Pending, ConnId) -> Option<Plan>) {
        let mut answers = Vec::new();
        for (&conn, c) in &self.conns {
            for slot in &c.queue {
                if let SlotState::Fetch(pending) = &slot.state {
                    if let Some(plan) = decide(self, pending, conn) {
                        answers.push((
                            conn,
                            slot.seq,
                            pending.version,
                            pending.correlation_id,
                            plan,
                        ));
                    }
                }
            }
        }
        for (conn, seq, version, correlation_id, plan) in answers {
            let state = self.respond_fetch(version, correlation_id, plan);
            self.set_slot(conn, seq, state);
        }
    }
}
