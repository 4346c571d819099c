//! Produce: validate each partition's batch (idempotent producers' epochs
//! and sequences included), append it, and answer once every append the
//! request made has completed (acks 1 and -1), or not at all (acks 0).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest};
use kafka_protocol::protocol::StrBytes;

use super::{Broker, LogKey, SlotState};
use crate::io::{ConnId, Part};
use crate::log::{AppendError, Appended, batch};
use crate::protocol::{self, Request, produce_v0};

/// A Produce waiting for its appends to complete.
#[derive(Debug)]
pub(super) struct Pending {
    version: i16,
    correlation_id: i32,
    /// The response, with each partition's result filled in; partitions
    /// still waiting are listed in `waits`.
    response: ProduceResponse,
    /// (topic index, partition index in the response, log, offset that must
    /// be below the high watermark, durable). Durable: acks=-1 on a topic
    /// that syncs every message (`flush.messages=1`), so the offset must be
    /// below the recovery point — synced — and an acknowledged record
    /// survives a power loss, not only a crash of the broker.
    waits: Vec<(usize, usize, LogKey, u64, bool)>,
}

impl Broker {
    /// Handle a Produce request; false when it does not decode.
    pub(super) fn produce(&mut self, conn: ConnId, request: Request) -> bool {
        if request.version < 3 {
            return match produce_v0::answer(request.version, request.correlation_id, request.body) {
                Ok(Some(frame)) => {
                    self.push_ready(conn, vec![Part::Bytes(frame)], Vec::new());
                    true
                }
                Ok(None) => {
                    // acks 0 on a format we refuse: Kafka closes the
                    // connection so the producer notices the error.
                    self.close(conn);
                    true
                }
                Err(()) => false,
            };
        }
        let Some(req) =
            protocol::decode::<ProduceRequest>(ApiKey::Produce, &request.body, request.version)
        else {
            return false;
        };
        if req.transactional_id.is_some() {
            // Transactions are not supported; Kafka answers a transactional
            // produce it cannot authorise this way.
            return self.finish_produce_error(
                conn,
                &request,
                &req,
                ResponseError::TransactionalIdAuthorizationFailed.code(),
            );
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
                match self.append_one(&name, data.index, data.records) {
                    Ok((key, Appended::New(info) | Appended::Duplicate(info))) => {
                        p.base_offset = info.base_offset as i64;
                        p.log_append_time_ms = info.log_append_time;
                        if request.version >= 5 {
                            if let Some(log) = self.log(key) {
                                p.log_start_offset = log.log_start_offset() as i64;
                            }
                        }
                        let durable = req.acks == -1
                            && self
                                .log(key)
                                .is_some_and(|l| l.config().flush_messages == 1);
                        waits.push((ti, pi, key, info.last_offset, durable));
                    }
                    Err((code, message)) => {
                        any_error = true;
                        p.error_code = code;
                        if request.version >= 8 {
                            p.error_message = message.map(StrBytes::from_static_str);
                        }
                    }
                }
                t.partition_responses.push(p);
            }
            response.responses.push(t);
        }
        if req.acks == 0 {
            if any_error {
                self.close(conn);
            } else {
                self.push_slot(conn, SlotState::Silent);
            }
            return true;
        }
        let pending = Pending {
            version: request.version,
            correlation_id: request.correlation_id,
            response,
            waits,
        };
        if self.push_slot(conn, SlotState::Produce(pending)).is_some() {
            self.finish_appenders(conn);
        }
        true
    }

    /// Validate and append one partition's records.
    fn append_one(
        &mut self,
        topic: &str,
        partition: i32,
        records: Option<bytes::Bytes>,
    ) -> Result<(LogKey, Appended), (i16, Option<&'static str>)> {
        if topic == lifecycle_internal_topic() {
            return Err((ResponseError::InvalidTopicException.code(), None));
        }
        let key = self
            .find_log(topic, partition)
            .ok_or((ResponseError::UnknownTopicOrPartition.code(), None))?;
        let log = self
            .log(key)
            .ok_or((ResponseError::UnknownTopicOrPartition.code(), None))?;
        if log.offline().is_some() {
            return Err((ResponseError::KafkaStorageError.code(), None));
        }
        let records = records.ok_or((ResponseError::InvalidRecord.code(), Some("null records")))?;
        let max = log.config().max_message_bytes;
        let header = batch::validate_client_batch(&records, max).map_err(|e| {
            let message = match e {
                batch::BatchError::Corrupt(m) | batch::BatchError::Invalid(m) => Some(m),
                batch::BatchError::TooLarge => None,
            };
            (e.code(), message)
        })?;
        let appended = self
            .with_log(key, |log, now, ids, out| {
                log.append_client(now, records, &header, ids, out)
            })
            .ok_or((ResponseError::UnknownTopicOrPartition.code(), None))?;
        match appended {
            Ok(a) => Ok((key, a)),
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
                Err((e.code(), Some(e.message())))
            }
            Err(AppendError::Storage(e)) => {
                tracing::warn!(topic, partition, error = %e, "append refused: partition offline");
                Err((ResponseError::KafkaStorageError.code(), None))
            }
        }
    }

    fn finish_produce_error(
        &mut self,
        conn: ConnId,
        request: &Request,
        req: &ProduceRequest,
        code: i16,
    ) -> bool {
        let mut response = ProduceResponse::default();
        for topic in &req.topic_data {
            let mut t = TopicProduceResponse::default().with_name(topic.name.clone());
            for data in &topic.partition_data {
                t.partition_responses
                    .push(partition_response(request.version, data.index, code));
            }
            response.responses.push(t);
        }
        let frame = protocol::encode_response(
            ApiKey::Produce,
            request.version,
            request.correlation_id,
            &response,
        );
        self.push_ready(conn, vec![Part::Bytes(frame)], Vec::new());
        true
    }

    /// Answer, in order from the front of `conn`'s queue, each Produce and
    /// OffsetCommit whose appends are done. The scan stops at the first one
    /// still waiting for its appends: whatever is behind it is checked again
    /// by the wake that releases it, so a wake costs about the answers it
    /// makes, not the depth of the queue.
    pub(super) fn finish_appenders(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut any = false;
        for slot in c.queue.iter_mut() {
            let frame = match &mut slot.state {
                SlotState::Produce(p) => p.poll(&self.logs),
                SlotState::Commit(p) => p.poll(&self.logs, &mut self.committed),
                // Other kinds are answered by their own events; an append
                // behind them must still be marked done now, or nothing
                // would wake it once they leave.
                _ => continue,
            };
            let Some(frame) = frame else { break };
            slot.state = SlotState::Ready(vec![Part::Bytes(frame)], Vec::new());
            any = true;
        }
        if any {
            self.flush_conn(conn);
        }
    }

    /// Re-check the connections with a Produce or OffsetCommit waiting for
    /// its appends (a high watermark moved, a log failed or went away).
    pub(super) fn wake_appenders(&mut self) {
        let waiting: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.queue
                    .iter()
                    .any(|s| matches!(s.state, SlotState::Produce(_) | SlotState::Commit(_)))
            })
            .map(|(&conn, _)| conn)
            .collect();
        for conn in waiting {
            self.finish_appenders(conn);
        }
    }
}

impl Pending {
    /// The response once every append the request made is below its log's
    /// high watermark (a failed log answers its partitions with
    /// KAFKA_STORAGE_ERROR); `None` while any is still being written.
    fn poll(&mut self, logs: &[Option<crate::log::PartitionLog>]) -> Option<bytes::Bytes> {
        let response = &mut self.response;
        self.waits.retain(|&(ti, pi, key, last, durable)| {
            let Some(log) = logs.get(key).and_then(Option::as_ref) else {
                return false;
            };
            if log.offline().is_some() {
                let p = &mut response.responses[ti].partition_responses[pi];
                p.error_code = ResponseError::KafkaStorageError.code();
                p.base_offset = -1;
                return false;
            }
            let done_to = if durable {
                log.recovery_point()
            } else {
                log.high_watermark()
            };
            done_to <= last
        });
        self.waits.is_empty().then(|| {
            protocol::encode_response(
                ApiKey::Produce,
                self.version,
                self.correlation_id,
                &self.response,
            )
        })
    }
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

/// Clients never write to the internal offsets topic.
fn lifecycle_internal_topic() -> &'static str {
    "__consumer_offsets"
}
