//! The peers part: the connections this broker opens to other brokers —
//! one to each other voter of `controller.quorum.voters` — and what it
//! sends on them. Each connection starts with the ApiVersions exchange
//! every Kafka client makes first; a connection that fails, ends or leaves
//! a request unanswered for `request.timeout.ms` is opened again after a
//! backoff (`reconnect.backoff.ms`, doubling up to
//! `reconnect.backoff.max.ms`), as Kafka's network client does.
//!
//! The metadata quorum sends its Raft messages on these connections, as
//! one-way frames of Conveyor's own ([`crate::cluster::wire`]); followers
//! send their Fetch requests to leaders on them
//! ([`super::replication`]).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::out::{Io, Owner};
use crate::config::Config;
use crate::io::{Command, ConnId, IoError, Part};
use crate::protocol::{self, Frame};
use crate::time::{Instant, Now};

/// The CreateTopics version sent to the controller, and how long it may
/// take to commit the topics.
const CREATE_TOPICS_VERSION: i16 = 7;
const CREATE_TOPICS_TIMEOUT_MS: i32 = 10_000;

/// The largest response frame a peer may send.
const MAX_RESPONSE_BYTES: u32 = 100 << 20;

/// The ApiVersions version of the handshake: v0 has no flexible fields, so
/// its answer is read here field by field, bounds-checked, without handing
/// a peer's counts to a decoder that allocates from them.
const HANDSHAKE_VERSION: i16 = 0;

/// What the broker knows of one peer, for tests and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's node id.
    pub node_id: i32,
    /// Where it is reached.
    pub addr: String,
    /// Connected and past the ApiVersions exchange.
    pub ready: bool,
    /// The APIs it answers, as (key, min version, max version), from its
    /// ApiVersions answer.
    pub api_versions: Vec<(i16, i16, i16)>,
    /// Connection attempts that failed or ended since it was last ready.
    pub failures: u32,
}

#[derive(Debug)]
enum State {
    /// Not connected; the next attempt is due at this time.
    Idle(Instant),
    /// A `Connect` is in flight.
    Connecting(ConnId),
    /// Open; the ApiVersions request is in flight, due by the deadline.
    Handshaking(ConnId, Instant),
    /// Open and past the handshake.
    Ready(ConnId),
    /// The connection is being closed; the driver reports its end.
    Closing(ConnId),
}

#[derive(Debug)]
struct Peer {
    status: PeerStatus,
    state: State,
    /// Bytes of responses read and not yet whole.
    rbuf: BytesMut,
    /// Requests sent and not answered, oldest first, as (correlation id,
    /// API, version); Kafka answers each connection's requests in order.
    in_flight: VecDeque<(i32, ApiKey, i16)>,
    next_correlation: i32,
}

/// Every peer connection.
#[derive(Debug)]
pub(crate) struct Peers {
    node_id: i32,
    peers: Vec<Peer>,
    next_conn: u64,
    backoff: Duration,
    backoff_max: Duration,
    request_timeout: Duration,
    /// A clean shutdown began: connect no more.
    stopped: bool,
}

impl Peers {
    /// The peers `config` names (every voter but this broker), each due
    /// for a first connect now.
    pub(crate) fn new(config: &Config, now: Now) -> Self {
        let peers = config
            .quorum_voters
            .iter()
            .filter(|(id, _)| *id != config.node_id)
            .map(|(id, addr)| Peer {
                status: PeerStatus {
                    node_id: *id,
                    addr: addr.clone(),
                    ready: false,
                    api_versions: Vec::new(),
                    failures: 0,
                },
                state: State::Idle(now.mono),
                rbuf: BytesMut::new(),
                in_flight: VecDeque::new(),
                next_correlation: 0,
            })
            .collect();
        Self {
            node_id: config.node_id,
            peers,
            next_conn: ConnId::FIRST_OUTBOUND,
            backoff: Duration::from_millis(config.reconnect_backoff_ms),
            backoff_max: Duration::from_millis(config.reconnect_backoff_max_ms),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            stopped: false,
        }
    }

    pub(crate) fn statuses(&self) -> Vec<PeerStatus> {
        self.peers.iter().map(|p| p.status.clone()).collect()
    }

    fn find(&mut self, conn: ConnId) -> Option<&mut Peer> {
        self.peers.iter_mut().find(|p| p.state.conn() == Some(conn))
    }

    /// The earliest time something is due: a connect or a handshake's end.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .iter()
            .filter_map(|p| match p.state {
                State::Idle(at) if !self.stopped => Some(at),
                State::Handshaking(_, at) => Some(at),
                _ => None,
            })
            .min()
    }

    /// Connect to the peers that are due; close the ones whose handshake
    /// went unanswered too long.
    pub(crate) fn timeout(&mut self, io: &mut Io, now: Now) {
        if self.stopped {
            return;
        }
        for i in 0..self.peers.len() {
            match self.peers[i].state {
                State::Idle(at) if at <= now.mono => {
                    let conn = ConnId(self.next_conn);
                    self.next_conn += 1;
                    let p = &mut self.peers[i];
                    tracing::debug!(peer = p.status.node_id, addr = %p.status.addr, "connecting");
                    let cmd = Command::Connect {
                        io: io.next_io(),
                        conn,
                        addr: p.status.addr.clone(),
                    };
                    p.state = State::Connecting(conn);
                    io.emit(cmd, Owner::Connect(conn));
                }
                State::Handshaking(conn, at) if at <= now.mono => {
                    let p = &mut self.peers[i];
                    tracing::warn!(
                        peer = p.status.node_id,
                        "no ApiVersions answer in time; reconnecting"
                    );
                    p.state = State::Closing(conn);
                    close(io, conn);
                }
                _ => {}
            }
        }
    }

    /// A `Connect` finished: send the handshake, or try again later.
    pub(crate) fn connected(
        &mut self,
        io: &mut Io,
        now: Now,
        conn: ConnId,
        result: Result<(), IoError>,
    ) {
        let (backoff, max, timeout, node) = (
            self.backoff,
            self.backoff_max,
            self.request_timeout,
            self.node_id,
        );
        let stopped = self.stopped;
        let Some(p) = self.find(conn) else {
            return;
        };
        match result {
            Err(e) => {
                // Kafka warns of an unreachable node; once, then quietly
                // while it stays so.
                if p.status.failures == 0 {
                    tracing::warn!(
                        peer = p.status.node_id,
                        addr = %p.status.addr,
                        error = %e,
                        "peer unreachable; retrying"
                    );
                } else {
                    tracing::debug!(peer = p.status.node_id, error = %e, "connect failed");
                }
                p.retry_later(now, backoff, max);
            }
            Ok(()) if stopped => {
                p.state = State::Closing(conn);
                close(io, conn);
            }
            Ok(()) => {
                p.state = State::Handshaking(conn, now.mono.saturating_add(timeout));
                p.send(io, conn, node, ApiKey::ApiVersions, HANDSHAKE_VERSION, &[]);
            }
        }
    }

    /// Bytes a peer sent: its responses, in request order. The answers to
    /// Fetch requests and to forwarded requests come back, as (peer, API,
    /// whole frame), for the broker.
    pub(crate) fn read(
        &mut self,
        io: &mut Io,
        conn: ConnId,
        buf: &mut BytesMut,
    ) -> Vec<(i32, ApiKey, Bytes)> {
        let mut fetched = Vec::new();
        let Some(p) = self.find(conn) else {
            buf.clear();
            return fetched;
        };
        p.rbuf.extend_from_slice(buf);
        buf.clear();
        loop {
            match protocol::cut_response(&mut p.rbuf, MAX_RESPONSE_BYTES) {
                Frame::Partial => return fetched,
                Frame::Invalid(len) => {
                    tracing::warn!(
                        peer = p.status.node_id,
                        len,
                        "bad response frame; reconnecting"
                    );
                    p.rbuf.clear();
                    p.state = State::Closing(conn);
                    close(io, conn);
                    return fetched;
                }
                Frame::Request(frame) => match p.answered(conn, frame) {
                    Ok(Some((key, frame))) => fetched.push((p.status.node_id, key, frame)),
                    Ok(None) => {}
                    Err(why) => {
                        tracing::warn!(peer = p.status.node_id, why, "bad response; reconnecting");
                        p.state = State::Closing(conn);
                        close(io, conn);
                        return fetched;
                    }
                },
            }
        }
    }

    /// A peer connection ended: open it again after the backoff. The
    /// peer's node id: what was in flight on it is lost.
    pub(crate) fn closed(&mut self, now: Now, conn: ConnId) -> Option<i32> {
        let (backoff, max) = (self.backoff, self.backoff_max);
        let p = self.find(conn)?;
        tracing::debug!(peer = p.status.node_id, "connection ended");
        p.retry_later(now, backoff, max);
        Some(p.status.node_id)
    }

    /// Raft messages for `node`, as one frame, when its connection is past
    /// the handshake; dropped otherwise (Raft retries what it must).
    pub(crate) fn send_raft(
        &mut self,
        io: &mut Io,
        node: i32,
        messages: &[raft::prelude::Message],
    ) {
        let from = self.node_id;
        let Some(p) = self.peers.iter_mut().find(|p| p.status.node_id == node) else {
            return;
        };
        let State::Ready(conn) = p.state else {
            return;
        };
        let correlation = p.next_correlation;
        p.next_correlation = p.next_correlation.wrapping_add(1);
        let frame = crate::cluster::wire::encode_frame(from, correlation, messages);
        let cmd = Command::Send {
            io: io.next_io(),
            conn,
            parts: vec![Part::Bytes(frame)],
        };
        io.emit(cmd, Owner::Send(Vec::new()));
    }

    /// Ask `node`, the active controller, to create `topics` with the
    /// cluster's defaults: a client asked this broker for them and may
    /// have them created (Kafka's brokers send the controller CreateTopics
    /// the same way). Dropped when the connection is not ready; the
    /// client asks again. The answer is not needed: the topics appear in
    /// the image once created.
    pub(crate) fn create_topics(&mut self, io: &mut Io, node: i32, topics: &[String]) {
        use kafka_protocol::messages::CreateTopicsRequest;
        use kafka_protocol::messages::create_topics_request::CreatableTopic;
        let request = CreateTopicsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(
                                t.clone(),
                            )))
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                    })
                    .collect(),
            )
            .with_timeout_ms(CREATE_TOPICS_TIMEOUT_MS);
        let mut body = BytesMut::new();
        if let Err(e) = request.encode(&mut body, CREATE_TOPICS_VERSION) {
            tracing::error!(error = %e, "CreateTopics encoding failed");
            return;
        }
        tracing::debug!(
            controller = node,
            ?topics,
            "asking the controller to create topics"
        );
        self.send_request(
            io,
            node,
            (ApiKey::CreateTopics, CREATE_TOPICS_VERSION),
            &body,
        );
    }

    /// Send `node` a request (`key` at `version`, its body encoded) when
    /// its connection is past the handshake; dropped otherwise.
    pub(crate) fn send_request(
        &mut self,
        io: &mut Io,
        node: i32,
        (key, version): (ApiKey, i16),
        body: &[u8],
    ) {
        let from = self.node_id;
        let Some(p) = self.peers.iter_mut().find(|p| p.status.node_id == node) else {
            return;
        };
        let State::Ready(conn) = p.state else {
            return;
        };
        p.send(io, conn, from, key, version, body);
    }

    /// Send `node` a client's request on (`key` at `version`, its body as
    /// the client encoded it): the correlation id its answer will carry,
    /// or `None` when the connection is not past the handshake.
    pub(crate) fn forward(
        &mut self,
        io: &mut Io,
        node: i32,
        (key, version): (ApiKey, i16),
        body: &[u8],
    ) -> Option<i32> {
        let from = self.node_id;
        let p = self.peers.iter_mut().find(|p| p.status.node_id == node)?;
        let State::Ready(conn) = p.state else {
            return None;
        };
        let correlation = p.next_correlation;
        p.send(io, conn, from, key, version, body);
        Some(correlation)
    }

    /// Whether a `key` request to `node` is unanswered.
    pub(crate) fn awaiting(&self, node: i32, key: ApiKey) -> bool {
        self.peers
            .iter()
            .find(|p| p.status.node_id == node)
            .is_some_and(|p| p.in_flight.iter().any(|r| r.1 == key))
    }

    /// A clean shutdown: close every peer connection, open no more.
    pub(crate) fn shutdown(&mut self, io: &mut Io) {
        self.stopped = true;
        for p in &mut self.peers {
            match p.state {
                State::Handshaking(conn, _) | State::Ready(conn) => {
                    p.state = State::Closing(conn);
                    close(io, conn);
                }
                _ => {}
            }
        }
    }
}

impl State {
    fn conn(&self) -> Option<ConnId> {
        match *self {
            State::Idle(_) => None,
            State::Connecting(c)
            | State::Handshaking(c, _)
            | State::Ready(c)
            | State::Closing(c) => Some(c),
        }
    }
}

impl Peer {
    fn retry_later(&mut self, now: Now, backoff: Duration, max: Duration) {
        self.status.ready = false;
        self.status.failures = self.status.failures.saturating_add(1);
        self.rbuf.clear();
        self.in_flight.clear();
        // Doubling from `reconnect.backoff.ms` for each failure in a row.
        let shift = self.status.failures.saturating_sub(1).min(20);
        let wait = backoff.saturating_mul(1 << shift).min(max);
        self.state = State::Idle(now.mono.saturating_add(wait));
    }

    /// Send a request with an (already encoded) body.
    fn send(
        &mut self,
        io: &mut Io,
        conn: ConnId,
        node: i32,
        key: ApiKey,
        version: i16,
        body: &[u8],
    ) {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_string(client_id(node))));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        if let Err(e) = header.encode(&mut frame, key.request_header_version(version)) {
            // Only a broker bug gets here: every field is in range.
            tracing::error!(error = %e, "request header encoding failed");
            return;
        }
        frame.put_slice(body);
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.in_flight.push_back((correlation, key, version));
        let cmd = Command::Send {
            io: io.next_io(),
            conn,
            parts: vec![Part::Bytes(frame.freeze())],
        };
        io.emit(cmd, Owner::Send(Vec::new()));
    }

    /// One response frame: it answers the oldest request in flight. A
    /// Fetch's answer, or a forwarded request's, is the broker's, whole.
    fn answered(
        &mut self,
        conn: ConnId,
        mut frame: Bytes,
    ) -> Result<Option<(ApiKey, Bytes)>, &'static str> {
        let Some((correlation, key, version)) = self.in_flight.pop_front() else {
            return Err("a response to no request");
        };
        let whole = frame.clone();
        // Response header v0 for ApiVersions, always (KAFKA-NOTES).
        if frame.len() < 4 || frame.get_i32() != correlation {
            return Err("responses out of order");
        }
        match key {
            ApiKey::ApiVersions => {
                let versions = parse_api_versions_v0(frame, version)?;
                self.status.api_versions = versions;
                self.status.ready = true;
                self.status.failures = 0;
                self.state = State::Ready(conn);
                tracing::info!(
                    peer = self.status.node_id,
                    addr = %self.status.addr,
                    apis = self.status.api_versions.len(),
                    "peer ready"
                );
                Ok(None)
            }
            // The topics show in the image once created; a refusal is
            // the controller's to log.
            ApiKey::CreateTopics => Ok(None),
            // Likewise an ISR change: the leader goes by the image and
            // asks again while it does not show.
            ApiKey::AlterPartition => Ok(None),
            ApiKey::Fetch | ApiKey::AlterConfigs | ApiKey::IncrementalAlterConfigs => {
                Ok(Some((key, whole)))
            }
            _ => Err("a response to a request never sent"),
        }
    }
}

/// The client id of the requests a broker sends to voter `node`.
fn client_id(node: i32) -> String {
    format!("conveyor-{node}")
}

/// Whether `id` is the client id of a request one broker of `config`'s
/// quorum sends another.
pub(crate) fn is_peer_client(config: &Config, id: &str) -> bool {
    config
        .quorum_voters
        .iter()
        .any(|(node, _)| id == client_id(*node))
}

fn close(io: &mut Io, conn: ConnId) {
    let cmd = Command::Close {
        io: io.next_io(),
        conn,
    };
    io.emit(cmd, Owner::Close);
}

/// An ApiVersions v0 response body: error code, then (key, min, max) per
/// API. Every count is checked against the bytes left.
fn parse_api_versions_v0(mut b: Bytes, version: i16) -> Result<Vec<(i16, i16, i16)>, &'static str> {
    debug_assert_eq!(version, 0);
    if b.remaining() < 2 + 4 {
        return Err("ApiVersions answer cut short");
    }
    let error = b.get_i16();
    if error != 0 {
        return Err("ApiVersions answered with an error");
    }
    let count = b.get_i32();
    let count = usize::try_from(count).map_err(|_| "negative ApiVersions count")?;
    if b.remaining() < count.saturating_mul(6) {
        return Err("ApiVersions count beyond the answer");
    }
    Ok((0..count)
        .map(|_| (b.get_i16(), b.get_i16(), b.get_i16()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_answers_are_read_with_their_counts_checked() {
        let mut ok = BytesMut::new();
        ok.put_i16(0);
        ok.put_i32(2);
        for v in [18i16, 0, 3, 0, 0, 9] {
            ok.put_i16(v);
        }
        assert_eq!(
            parse_api_versions_v0(ok.freeze(), 0),
            Ok(vec![(18, 0, 3), (0, 0, 9)])
        );
        let mut huge = BytesMut::new();
        huge.put_i16(0);
        huge.put_i32(i32::MAX);
        assert!(parse_api_versions_v0(huge.freeze(), 0).is_err());
        assert!(parse_api_versions_v0(Bytes::from_static(&[0]), 0).is_err());
    }
}
