//! Requests a broker sends on to the active controller, as Kafka's brokers
//! forward the admin requests only the controller can carry out (KIP-590):
//! a client may send AlterConfigs for a topic to any broker, and Kafka's
//! Java client and kafka-python do (to the least loaded one).
//!
//! The handler leaves a [`Forward`] in [`Ctx::forwards`] and waits in its
//! slot ([`Forwarded`]). The broker sends the request's body, as the
//! client encoded it, at the same API version over its connection to the
//! controller; the handler's `finish` turns the controller's answer into
//! the client's (its results, under the client's correlation id). A
//! request already forwarded is never forwarded again (the controller it
//! reached answers NOT_CONTROLLER itself if it no longer is one), so a
//! request crosses at most one hop. With no controller reachable, the
//! connection lost before the answer, or no answer by the deadline,
//! `finish` is given nothing and says so in each result.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use super::Broker;
use super::peers;
use super::wait::{Answer, Ctx, Origin, Response, Until, Waiter, Wake};
use crate::io::ConnId;
use crate::protocol::Request;
use crate::time::Instant;

/// A request on its way to the active controller.
#[derive(Debug)]
pub(crate) struct Forward {
    conn: ConnId,
    seq: u64,
    key: ApiKey,
    version: i16,
    body: Bytes,
    deadline: Instant,
}

/// A forwarded request sent and not yet answered.
#[derive(Debug)]
pub(super) struct InFlight {
    node: i32,
    correlation: i32,
    conn: ConnId,
    seq: u64,
    /// Its slot has given up by then: the entry goes.
    deadline: Instant,
}

/// Whether this request may go on to the controller: not one a broker
/// forwarded already.
pub(crate) fn may_forward(cx: &Ctx<'_>, origin: Origin<'_>) -> bool {
    !peers::is_peer_client(cx.config, origin.client_id)
}

/// Turns the controller's answer (its response frame from the
/// correlation id on), or none, into the client's response frame.
pub(crate) type Finish = Box<dyn FnOnce(Option<&[u8]>) -> Bytes + Send>;

/// Send `request` on to the active controller and answer with what
/// `finish` makes of its answer, or of none when it cannot be asked or
/// does not answer within `request.timeout.ms`.
pub(crate) fn forward(
    cx: &mut Ctx<'_>,
    request: &Request,
    origin: Origin<'_>,
    finish: Finish,
) -> Answer {
    let timeout = std::time::Duration::from_millis(cx.config.request_timeout_ms);
    let deadline = cx.now.mono.saturating_add(timeout);
    cx.forwards.push(Forward {
        conn: origin.conn,
        seq: origin.seq,
        key: request.key,
        version: request.version,
        body: request.body.clone(),
        deadline,
    });
    Answer::Wait(Box::new(Forwarded {
        finish: Some(finish),
        deadline,
    }))
}

/// A slot waiting for the controller's answer.
struct Forwarded {
    finish: Option<Finish>,
    deadline: Instant,
}

impl std::fmt::Debug for Forwarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarded")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Waiter for Forwarded {
    fn until(&self) -> Until {
        Until::Forwarded {
            deadline: self.deadline,
        }
    }

    fn poll(&mut self, cx: &mut Ctx<'_>, wake: Wake) -> Option<Response> {
        let answer = match &wake {
            Wake::Forwarded(answer) => answer.as_deref(),
            Wake::Deadline if self.deadline <= cx.now.mono => None,
            _ => return None,
        };
        let finish = self.finish.take()?;
        Some(Response::Frame(finish(answer)))
    }
}

impl Broker {
    /// Send the requests handlers left for the active controller; those
    /// that cannot go get their fallback at once.
    pub(super) fn send_forwards(&mut self) {
        let controller = self
            .quorum
            .as_ref()
            .and_then(|q| q.controller())
            .filter(|&c| c != self.config.node_id);
        let now = self.now.mono;
        self.in_flight_forwards.retain(|f| f.deadline > now);
        for f in std::mem::take(&mut self.forwards) {
            let sent = controller.and_then(|node| {
                let correlation =
                    self.peers
                        .forward(&mut self.io, node, (f.key, f.version), &f.body)?;
                Some(InFlight {
                    node,
                    correlation,
                    conn: f.conn,
                    seq: f.seq,
                    deadline: f.deadline,
                })
            });
            match sent {
                Some(sent) => {
                    tracing::debug!(controller = sent.node, api = ?f.key, "request forwarded");
                    self.in_flight_forwards.push(sent);
                }
                None => self.wake_slot(f.conn, f.seq, Wake::Forwarded(None)),
            }
        }
    }

    /// Peer `node` answered a forwarded request (`frame`: correlation id,
    /// header, body).
    pub(super) fn forward_answered(&mut self, node: i32, frame: Bytes) {
        let Some(correlation) = frame
            .get(..4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return;
        };
        let Some(at) = self
            .in_flight_forwards
            .iter()
            .position(|f| f.node == node && f.correlation == correlation)
        else {
            return;
        };
        let f = self.in_flight_forwards.swap_remove(at);
        self.wake_slot(f.conn, f.seq, Wake::Forwarded(Some(frame)));
    }

    /// The connection to `node` ended: what was forwarded on it gets no
    /// answer.
    pub(super) fn forwards_lost(&mut self, node: i32) {
        let (lost, kept) = std::mem::take(&mut self.in_flight_forwards)
            .into_iter()
            .partition(|f| f.node == node);
        self.in_flight_forwards = kept;
        let lost: Vec<InFlight> = lost;
        for f in lost {
            self.wake_slot(f.conn, f.seq, Wake::Forwarded(None));
        }
    }
}
