//! InitProducerId for idempotent producers, and the producer id blocks that
//! keep ids from ever repeating across restarts.
//!
//! Kafka's transaction coordinator answers a request without a
//! transactional id with a new producer id and epoch 0, ignoring any
//! producer id and epoch the request carries (`TransactionCoordinator.
//! handleInitProducerId`: "if the transactional id is null, then always
//! blindly accept the request and return a new producerId"); the Java
//! client bumps an idempotent producer's epoch itself, librdkafka asks for a
//! new id. Ids come from blocks of [`BLOCK_SIZE`], as Kafka's
//! `ProducerIdManager` takes them: the end of the reserved block is written
//! to [`PRODUCER_ID_BLOCK`] before any id in it is handed out, so a crash
//! may skip ids but never hands one out twice.

use std::collections::VecDeque;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::lifecycle::FileJob;
use super::{Broker, SlotState};
use crate::io::{ConnId, IoError, Part};
use crate::protocol::{self, Request};

/// The root file holding the first producer id not yet reserved.
pub(super) const PRODUCER_ID_BLOCK: &str = "producer-id-block";

/// Ids reserved per write of [`PRODUCER_ID_BLOCK`] (Kafka's `PID_BLOCK_SIZE`).
const BLOCK_SIZE: i64 = 1000;

/// A request waiting for a block to be written: (connection, slot,
/// version, correlation id).
type Waiting = (ConnId, u64, i16, i32);

/// The producer id allocator.
#[derive(Debug, Default)]
pub(super) struct ProducerIds {
    /// The next id to hand out.
    next: i64,
    /// Ids below this are reserved on disk.
    reserved_end: i64,
    /// The end of a block whose write is in flight.
    writing: Option<i64>,
    /// Requests waiting for that write, in arrival order.
    waiting: VecDeque<Waiting>,
}

impl ProducerIds {
    /// The allocator after a restart: nothing is reserved for this run yet,
    /// and ids continue after the last reserved block.
    pub(super) fn load(file: Option<&[u8]>) -> Self {
        let next = file.and_then(parse_block_file).unwrap_or(0);
        Self {
            next,
            reserved_end: next,
            writing: None,
            waiting: VecDeque::new(),
        }
    }

    /// A reserved id, if one is left.
    fn take(&mut self) -> Option<i64> {
        (self.next < self.reserved_end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// The next block's end when a write should start now: none is in
    /// flight and less than half a block is left.
    fn want_write(&mut self) -> Option<i64> {
        if self.writing.is_some() || self.reserved_end - self.next >= BLOCK_SIZE / 2 {
            return None;
        }
        let end = self.reserved_end.max(self.next).saturating_add(BLOCK_SIZE);
        self.writing = Some(end);
        Some(end)
    }
}

/// The block file: format version 0, then the first unreserved id.
fn encode_block_file(next: i64) -> Bytes {
    Bytes::from(format!("0\n{next}\n"))
}

fn parse_block_file(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "0" {
        return None;
    }
    lines.next()?.trim().parse().ok().filter(|&n: &i64| n >= 0)
}

fn response(code: i16, producer_id: i64, epoch: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
}

impl Broker {
    /// Handle an InitProducerId request; false when it does not decode.
    pub(super) fn init_producer_id(&mut self, conn: ConnId, request: &Request) -> bool {
        let Some(req) = protocol::decode::<InitProducerIdRequest>(
            ApiKey::InitProducerId,
            &request.body,
            request.version,
        ) else {
            return false;
        };
        let error = match req.transactional_id.as_ref().map(|t| t.0.as_str()) {
            None => None,
            // Kafka: "if transactional id is empty then return error as
            // invalid request".
            Some("") => Some(ResponseError::InvalidRequest.code()),
            // Transactions are out of scope: there is no transaction
            // coordinator, which is what Kafka answers while it has none.
            Some(_) => Some(ResponseError::CoordinatorNotAvailable.code()),
        };
        let (version, corr) = (request.version, request.correlation_id);
        if let Some(code) = error {
            let frame = encode(version, corr, &response(code, -1, -1));
            self.push_ready(conn, vec![Part::Bytes(frame)], Vec::new());
            return true;
        }
        if self.producer_ids.waiting.is_empty() {
            if let Some(id) = self.producer_ids.take() {
                let frame = encode(version, corr, &response(0, id, 0));
                self.push_ready(conn, vec![Part::Bytes(frame)], Vec::new());
                self.maybe_reserve_producer_ids();
                return true;
            }
        }
        if let Some(seq) = self.push_slot(conn, SlotState::InitProducerId) {
            self.producer_ids
                .waiting
                .push_back((conn, seq, version, corr));
        }
        self.maybe_reserve_producer_ids();
        true
    }

    /// Start writing the next block if it is due.
    fn maybe_reserve_producer_ids(&mut self) {
        if let Some(end) = self.producer_ids.want_write() {
            self.emit_file(
                FileJob::ProducerIds,
                PRODUCER_ID_BLOCK,
                encode_block_file(end),
            );
        }
    }

    /// The block file write finished: its ids may be handed out, and the
    /// requests waiting for them are answered. After a failure they get
    /// COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
    pub(super) fn producer_ids_written(&mut self, result: Result<(), IoError>) {
        let ids = &mut self.producer_ids;
        if let Some(end) = ids.writing.take() {
            if result.is_ok() {
                ids.reserved_end = ids.reserved_end.max(end);
            }
        }
        while let Some(&(conn, seq, version, corr)) = self.producer_ids.waiting.front() {
            let body = match self.producer_ids.take() {
                Some(id) => response(0, id, 0),
                None if result.is_err() => {
                    response(ResponseError::CoordinatorLoadInProgress.code(), -1, -1)
                }
                None => break,
            };
            self.producer_ids.waiting.pop_front();
            let frame = encode(version, corr, &body);
            self.set_slot(
                conn,
                seq,
                SlotState::Ready(vec![Part::Bytes(frame)], Vec::new()),
            );
        }
        if result.is_ok() {
            self.maybe_reserve_producer_ids();
        }
    }
}

fn encode(version: i16, corr: i32, body: &InitProducerIdResponse) -> Bytes {
    protocol::encode_response(ApiKey::InitProducerId, version, corr, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_reserved_before_use_and_continue_after_a_restart() {
        let mut ids = ProducerIds::load(None);
        assert_eq!(ids.take(), None, "nothing reserved yet");
        assert_eq!(ids.want_write(), Some(BLOCK_SIZE));
        assert_eq!(ids.want_write(), None, "one write at a time");
        ids.reserved_end = ids.writing.take().unwrap();
        for i in 0..BLOCK_SIZE / 2 + 1 {
            assert_eq!(ids.take(), Some(i));
        }
        assert_eq!(ids.want_write(), Some(2 * BLOCK_SIZE), "prefetch");
        let file = encode_block_file(2 * BLOCK_SIZE);
        let restarted = ProducerIds::load(Some(&file));
        assert_eq!((restarted.next, restarted.reserved_end), (2000, 2000));
        assert_eq!(parse_block_file(b"1\n5\n"), None);
        assert_eq!(parse_block_file(b"0\n-5\n"), None);
    }
}
