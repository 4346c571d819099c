//! InitProducerId 0–4 for idempotent producers: a new producer id and epoch
//! 0 from the reserved block, or a wait for the next block's write (in a
//! cluster, for the quorum to grant the next block;
//! [`crate::broker::producers`]).
//!
//! Kafka's transaction coordinator answers a request without a
//! transactional id with a new producer id and epoch 0, ignoring any
//! producer id and epoch the request carries (`TransactionCoordinator.
//! handleInitProducerId`: "if the transactional id is null, then always
//! blindly accept the request and return a new producerId"); the Java
//! client bumps an idempotent producer's epoch itself, librdkafka asks for
//! a new id.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::ApiSpec;
use crate::broker::producers::Waiting;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{self, Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::InitProducerId,
    min: 0,
    max: 4,
    flexible: 2,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    r.string()?; // transactional_id
    r.skip(4)?; // transaction_timeout_ms
    if v >= 3 {
        r.skip(8 + 2)?; // producer_id, producer_epoch
    }
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, origin: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<InitProducerIdRequest>(request) else {
        return Answer::Malformed;
    };
    let (version, corr) = (request.version, request.correlation_id);
    let error = match req.transactional_id.as_ref().map(|t| t.0.as_str()) {
        None => None,
        // Kafka: "if transactional id is empty then return error as
        // invalid request".
        Some("") => Some(ResponseError::InvalidRequest.code()),
        // Transactions are out of scope: there is no transaction
        // coordinator, which is what Kafka answers while it has none.
        Some(_) => Some(ResponseError::CoordinatorNotAvailable.code()),
    };
    if let Some(code) = error {
        return Answer::Frame(encode(version, corr, code, -1, -1));
    }
    if let Some(id) = cx.producers.assign(cx.io) {
        return Answer::Frame(encode(version, corr, 0, id, 0));
    }
    let waiting = Waiting {
        conn: origin.conn,
        seq: origin.seq,
        // After a failed block write the request gets
        // COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
        reply: Box::new(move |id| match id {
            Ok(id) => encode(version, corr, 0, id, 0),
            Err(()) => encode(
                version,
                corr,
                ResponseError::CoordinatorLoadInProgress.code(),
                -1,
                -1,
            ),
        }),
    };
    cx.producers.wait(cx.io, waiting);
    cx.producers.claim(cx.quorum.as_deref_mut(), cx.now.mono);
    Answer::Parked
}

fn encode(version: i16, corr: i32, code: i16, producer_id: i64, epoch: i16) -> Bytes {
    let body = InitProducerIdResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch);
    protocol::encode_response(ApiKey::InitProducerId, version, corr, &body)
}
