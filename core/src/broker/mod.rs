//! The broker: the state machine behind the crate's contract.
//!
//! Its state lives in parts, each owning its fields behind narrow methods:
//! - [`conns`]: each connection's requests in order, the bytes they hold,
//!   and whether it may be read;
//! - [`logs`]: topics, partition logs, pins, deleted logs;
//! - [`groups`]: the group coordinator and committed offsets;
//! - [`producers`]: the producer id allocator;
//! - [`out`]: the command queue and who owns each command in flight;
//! - [`peers`]: connections to the other brokers; [`replication`]: the
//!   leader's and the follower's halves of data replication;
//! - [`lifecycle`]: recovery at startup, checkpoints, clean shutdown.
//!
//! A request is routed once, through the table in [`crate::api`]; its
//! handler sees every part but the connections ([`wait::Ctx`]) and answers
//! now or waits on one of the conditions in [`wait`]. This module keeps the
//! response order and wakes waiting requests when their condition may hold.

pub(crate) mod cluster;
pub(crate) mod conns;
pub(crate) mod forward;
pub(crate) mod group_log;
pub(crate) mod groups;
mod isr;
mod lifecycle;
pub(crate) mod logs;
pub(crate) mod out;
pub(crate) mod peers;
pub(crate) mod producers;
pub(crate) mod replication;
pub(crate) mod wait;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use crate::api;
use crate::cluster::{Quorum, QuorumStatus, state, wire};
use crate::config::Config;
use crate::group::GroupConfig;
use crate::io::{Command, ConnId, DiskState, Done, Part};
use crate::metrics::{LagLabels, Metrics, PartitionLabels, PartitionState};
use crate::protocol::{self, Frame, HeaderError};
use crate::time::{Instant, Now};
use conns::{Conns, SlotState};
use groups::Groups;
use logs::{LogKey, Logs};
use out::{Io, Owner};
use peers::Peers;
use producers::Producers;
use wait::{Answer, Ctx, Origin, Response, Until, Wake};

pub use lifecycle::ROOT_FILES;
pub(crate) use lifecycle::topic_id as new_topic_id;
pub use peers::PeerStatus;

/// What [`Broker::poll`] returns.
#[derive(Debug)]
pub enum Poll {
    /// Do this, then answer it with [`Broker::handle_done`].
    Command(Command),
    /// Stop (`read: false`) or resume (`read: true`) reading `conn`. Every
    /// connection starts read. While stopped, leave what the socket holds
    /// in the kernel's buffer (that is the back-pressure on the client); on
    /// resume, hand the bytes already read but not taken to
    /// [`Broker::handle_read`] before reading more, since no new bytes may
    /// come to prompt it. A connection given a [`Command::Close`] gets no
    /// more of these: read it to its end and report it closed.
    ReadInterest {
        /// The connection.
        conn: ConnId,
        /// Read it (true) or leave it (false).
        read: bool,
    },
    /// Nothing more to do until an input arrives or the deadline (if any)
    /// passes; then call [`Broker::handle_timeout`].
    Wait(Option<Instant>),
}

/// A single-node Kafka broker as a state machine. See the crate docs for the
/// contract.
#[derive(Debug)]
pub struct Broker {
    config: Config,
    /// The latest time an input carried.
    now: Now,
    io: Io,
    conns: Conns,
    logs: Logs,
    groups: Groups,
    producers: Producers,
    peers: Peers,
    /// The metadata quorum, when `controller.quorum.voters` names this
    /// broker and others.
    quorum: Option<Quorum>,
    lifecycle: lifecycle::State,
    /// A peer's Raft messages arrived here without a quorum, and that was
    /// logged.
    warned_no_quorum: bool,
    /// Topics of the cluster's image this broker held logs for: one that
    /// leaves the image was deleted, and its logs go.
    seen_topics: std::collections::HashSet<uuid::Uuid>,
    /// Topics held here that the image never had, already warned about.
    strays: std::collections::HashSet<uuid::Uuid>,
    /// When this broker, as the controller, last proposed
    /// `__consumer_offsets`.
    offsets_proposed_at: Option<Instant>,
    /// The follower's fetches from leaders.
    fetching: replication::Fetching,
    /// Read interest changes not yet returned by `poll`.
    interest: Vec<(ConnId, bool)>,
    metrics: Metrics,
    /// Requests handlers left for the active controller, and those sent
    /// and unanswered ([`forward`]).
    forwards: Vec<forward::Forward>,
    in_flight_forwards: Vec<forward::InFlight>,
}

impl Broker {
    /// A broker over what the driver found in the data directory. Recovery
    /// commands (truncations, index rebuilds, segment opens) come out of
    /// [`Broker::poll`] first.
    pub fn new(config: Config, now: Now, disk: DiskState) -> Self {
        let lifecycle = lifecycle::State::new(now, &config);
        let group_config = GroupConfig {
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            max_group_size: config.group_max_size,
        };
        let mut broker = Self {
            conns: Conns::new(
                config.max_inflight_requests,
                config.queued_max_request_bytes,
                config.max_connections,
            ),
            logs: Logs::new(config.topic_defaults.clone()),
            peers: Peers::new(&config, now),
            quorum: None,
            warned_no_quorum: false,
            config,
            now,
            io: Io::default(),
            groups: Groups::new(group_config),
            producers: Producers::default(),
            lifecycle,
            seen_topics: Default::default(),
            strays: Default::default(),
            offsets_proposed_at: None,
            fetching: Default::default(),
            interest: Vec::new(),
            metrics: Metrics::new(),
            forwards: Vec::new(),
            in_flight_forwards: Vec::new(),
        };
        let stored = disk
            .root_files
            .iter()
            .find(|(name, _)| name == state::QUORUM_STATE)
            .map(|(_, bytes)| bytes.clone());
        broker.quorum = Quorum::new(&broker.config, now, stored.as_deref());
        broker.recover(disk);
        if broker.quorum.is_some() {
            broker.producers.use_quorum();
        }
        broker.follow_image();
        // The first connects to peers, behind recovery's commands.
        broker.peers.timeout(&mut broker.io, now);
        broker
    }

    /// The other brokers this one keeps connections to
    /// (`controller.quorum.voters`), and how each stands.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.peers.statuses()
    }

    /// How the metadata quorum stands from here; `None` when the broker
    /// runs without one.
    pub fn quorum(&self) -> Option<QuorumStatus> {
        self.quorum.as_ref().map(Quorum::status)
    }

    /// The configuration the broker runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The broker's metrics ([`crate::metrics`]), once: the driver adds its
    /// own and serves them. The broker keeps counting into them.
    pub fn take_metrics(&mut self) -> Option<prometheus_client::registry::Registry> {
        self.metrics.take_registry()
    }

    /// A connection opened. Beyond `max.connections` (or while shutting
    /// down) it gets a [`Command::Close`] at once.
    pub fn handle_open(&mut self, now: Now, conn: ConnId) {
        self.tick(now);
        let admitted = self.conns.open(&mut self.io, conn);
        if admitted && self.lifecycle.shutting_down() {
            self.conns.close(&mut self.io, conn);
        }
        self.metrics.connections(admitted, self.conns.len());
    }

    /// A connection closed (by the peer, an error, or a `Close` command).
    /// Its unanswered requests are dropped and their pins released.
    pub fn handle_close(&mut self, now: Now, conn: ConnId) {
        self.tick(now);
        if conn.is_outbound() {
            if let Some(node) = self.peers.closed(self.now, conn) {
                self.forwards_lost(node);
            }
            return;
        }
        self.groups.cancel_conn(conn);
        let pins = self.conns.remove(conn);
        self.metrics.connections(false, self.conns.len());
        self.logs.unpin_all(&mut self.io, self.now, &pins);
        self.settle();
    }

    /// Bytes arrived on `conn`: whole frames are cut off `buf`; a partial
    /// frame stays for the next call.
    pub fn handle_read(&mut self, now: Now, conn: ConnId, buf: &mut BytesMut) {
        self.tick(now);
        if conn.is_outbound() {
            for (peer, key, frame) in self.peers.read(&mut self.io, conn, buf) {
                match key {
                    ApiKey::Fetch => self.replica_fetched(peer, frame),
                    _ => self.forward_answered(peer, frame),
                }
            }
            // A peer past its handshake may be fetched from now.
            self.replicate();
            return self.settle();
        }
        loop {
            if !self.wants_read(conn) {
                // Held back by a limit that will pass: have the driver hand
                // these bytes over again then. (Shutting down, they stay.)
                if !buf.is_empty() && !self.lifecycle.shutting_down() {
                    self.conns.stalled(conn);
                }
                return;
            }
            match protocol::cut_frame(buf, self.config.socket_request_max_bytes) {
                Frame::Partial => return,
                Frame::Invalid(len) => {
                    tracing::debug!(?conn, len, "invalid frame length; closing");
                    self.metrics.rejected("invalid_frame_length");
                    buf.clear();
                    self.conns.close(&mut self.io, conn);
                    return;
                }
                Frame::Request(frame) => {
                    self.handle_request(conn, frame);
                    self.settle();
                }
            }
        }
    }

    /// Whether the broker takes more bytes from `conn` now. False while the
    /// connection has `queued.max.requests` requests unanswered, while
    /// `queued.max.request.bytes` are held, or while it is closing or the
    /// broker shutting down. A getter for tests and diagnostics: drivers
    /// follow [`Poll::ReadInterest`] instead of asking.
    pub fn wants_read(&self, conn: ConnId) -> bool {
        self.conns.wants_read(conn) && !self.lifecycle.shutting_down()
    }

    /// A command finished.
    pub fn handle_done(&mut self, now: Now, done: Done) {
        self.tick(now);
        let Some(owner) = self.io.take_owner(done.io) else {
            tracing::warn!(io = ?done.io, "Done for an unknown command");
            return;
        };
        match owner {
            Owner::Log(key) => {
                self.logs
                    .done(&mut self.io, self.now, key, done.io, done.result);
                if self.fetching.truncating() {
                    // A diverged log waiting to be cut may be quiet now.
                    self.replicate();
                }
            }
            Owner::Send(pins) => {
                if let Err(e) = &done.result {
                    tracing::debug!(error = %e, "send failed");
                }
                self.logs.unpin_all(&mut self.io, self.now, &pins);
            }
            Owner::Slot { conn, seq, pin } => {
                self.logs.unpin_all(&mut self.io, self.now, &[pin]);
                self.wake_slot(conn, seq, Wake::Read(done.io, done.result));
            }
            Owner::Connect(conn) => {
                let result = done.result.map(|_| ());
                self.peers.connected(&mut self.io, self.now, conn, result);
            }
            Owner::Close => {}
            Owner::Quorum => {
                if let Err(e) = &done.result {
                    tracing::error!(error = %e, "quorum-state not written");
                }
                if let Some(q) = &mut self.quorum {
                    q.written(done.result.is_ok());
                }
                self.send_quorum();
            }
            Owner::File(job) => self.file_done(job, done.result),
        }
        self.settle();
        self.lifecycle_progress();
    }

    /// A deadline passed.
    pub fn handle_timeout(&mut self, now: Now) {
        self.tick(now);
        let now = self.now;
        let due = |u: Until| u.deadline().is_some_and(|d| d <= now.mono);
        for (conn, seq) in self.conns.waiting(due) {
            self.wake_slot(conn, seq, Wake::Deadline);
        }
        for key in self.logs.keys() {
            let due = self
                .logs
                .get(key)
                .and_then(|l| l.next_deadline_wall_ms())
                .is_some_and(|d| d <= now.wall_ms);
            if due {
                self.logs.run(&mut self.io, now, key, |log, now, ids, out| {
                    log.handle_timeout(now, ids, out)
                });
            }
        }
        self.groups.coordinator.handle_timeout(now.mono);
        self.peers.timeout(&mut self.io, now);
        if let Some(q) = &mut self.quorum {
            if q.deadline() <= now.mono {
                q.timeout(now);
            }
        }
        // The controller among the leaders proposes its ISR changes
        // itself: before the quorum's messages go out.
        self.alter_isrs();
        self.producers.claim(self.quorum.as_mut(), now.mono);
        self.send_quorum();
        self.replicate();
        self.lifecycle_timeout();
        self.settle();
    }

    /// The next thing for the driver to do.
    pub fn poll(&mut self) -> Poll {
        if let Some(cmd) = self.io.pop() {
            return Poll::Command(cmd);
        }
        if self.interest.is_empty() {
            self.conns.interest_changes(&mut self.interest);
            // Returned in the order they were found.
            self.interest.reverse();
        }
        match self.interest.pop() {
            Some((conn, read)) => Poll::ReadInterest { conn, read },
            None => {
                if self.metrics.refresh_due(self.now.mono) {
                    self.refresh_metrics();
                }
                Poll::Wait(self.next_deadline())
            }
        }
    }

    /// Set the state gauges from the logs and the committed offsets.
    fn refresh_metrics(&mut self) {
        let mut partitions = Vec::new();
        for (name, topic) in self.logs.topics() {
            for (partition, key) in topic.hosted() {
                let Some(log) = self.logs.get(key) else {
                    continue;
                };
                let labels = PartitionLabels {
                    topic: name.clone(),
                    partition,
                };
                let state = PartitionState {
                    log_start: log.log_start_offset(),
                    log_end: log.log_end_offset(),
                    high_watermark: log.high_watermark(),
                    size_bytes: log.size_bytes(),
                    segments: log.segment_count() as u64,
                };
                partitions.push((labels, state));
            }
        }
        let mut lag = Vec::new();
        for (group, offsets) in &self.groups.committed {
            for ((topic, partition), c) in offsets {
                let Some(log) = self
                    .logs
                    .find(topic, *partition)
                    .and_then(|k| self.logs.get(k))
                else {
                    continue;
                };
                let hw = i64::try_from(log.high_watermark()).unwrap_or(i64::MAX);
                let labels = LagLabels {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                lag.push((labels, hw.saturating_sub(c.offset.max(0)).max(0)));
            }
        }
        self.metrics.refresh(self.now.mono, partitions, lag);
    }

    fn tick(&mut self, now: Now) {
        self.metrics.touch();
        // Time never goes backwards, even if a driver's clocks do.
        if now.mono > self.now.mono {
            self.now.mono = now.mono;
        }
        if now.wall_ms > self.now.wall_ms {
            self.now.wall_ms = now.wall_ms;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut next = self.lifecycle.deadline();
        let mut consider = |d: Instant| next = Some(next.map_or(d, |n: Instant| n.min(d)));
        if let Some(d) = self.groups.coordinator.next_deadline() {
            consider(d);
        }
        if let Some(d) = self.conns.next_deadline() {
            consider(d);
        }
        if let Some(d) = self.peers.next_deadline() {
            consider(d);
        }
        if let Some(d) = self.fetching.next_deadline() {
            consider(d);
        }
        if let Some(d) = self.metrics.deadline() {
            consider(d);
        }
        if let Some(q) = &self.quorum {
            consider(q.deadline());
        }
        for log in self.logs.iter() {
            if let Some(wall) = log.next_deadline_wall_ms() {
                let wait = u64::try_from(wall.saturating_sub(self.now.wall_ms)).unwrap_or(0);
                consider(self.now.mono.saturating_add(Duration::from_millis(wait)));
            }
        }
        next
    }

    /// The parts handlers work with, and the connections beside them.
    fn parts(&mut self) -> (Ctx<'_>, &mut Conns) {
        let cx = Ctx {
            now: self.now,
            config: &self.config,
            shutting_down: self.lifecycle.shutting_down(),
            io: &mut self.io,
            logs: &mut self.logs,
            groups: &mut self.groups,
            producers: &mut self.producers,
            metrics: &mut self.metrics,
            quorum: self.quorum.as_mut(),
            forwards: &mut self.forwards,
        };
        (cx, &mut self.conns)
    }

    // ---- requests ------------------------------------------------------

    fn handle_request(&mut self, conn: ConnId, frame: Bytes) {
        if wire::is_raft_frame(&frame) {
            return self.raft_frame(conn, frame);
        }
        // A request makes at most one slot; it carries the frame's bytes.
        let bytes = frame.len() as u64;
        let (request, spec) = match api::route(frame) {
            Ok(r) => r,
            Err(HeaderError::UnsupportedVersion {
                key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                let frame = api::api_versions_unsupported(correlation_id);
                self.place(conn, Answer::Frame(frame), (ApiKey::ApiVersions, bytes));
                return;
            }
            Err(e) => {
                tracing::debug!(?conn, error = ?e, "unroutable request; closing");
                self.metrics.rejected("unsupported_api_or_version");
                self.conns.close(&mut self.io, conn);
                return;
            }
        };
        self.metrics.request(request.key, request.version);
        if let Some(id) = &request.client_id {
            self.conns.note_client(conn, id);
            if peers::is_peer_client(&self.config, id) {
                self.conns.mark_peer(conn);
            }
        }
        let Some(seq) = self.conns.next_seq(conn) else {
            return;
        };
        let (mut cx, conns) = self.parts();
        let origin = Origin {
            conn,
            seq,
            client_id: conns.client_id(conn),
        };
        let answer = (spec.handle)(&mut cx, &request, origin);
        self.place(conn, answer, (request.key, bytes));
        // A handler may have proposed metadata records, or left a request
        // for the controller.
        self.send_quorum();
        self.send_forwards();
    }

    /// Give a handler's answer to a request of `api` and `bytes` its slot
    /// in `conn`'s response order.
    fn place(&mut self, conn: ConnId, answer: Answer, (api, bytes): (ApiKey, u64)) {
        let state = match answer {
            Answer::Frame(f) => SlotState::Ready(vec![Part::Bytes(f)], Vec::new()),
            Answer::Parts(parts, pins) => SlotState::Ready(parts, pins),
            Answer::Silent => SlotState::Silent,
            Answer::Wait(w) => SlotState::Waiting(w.until(), w),
            Answer::Parked => SlotState::Parked,
            Answer::Close => {
                self.metrics.rejected("closed_by_handler");
                return self.conns.close(&mut self.io, conn);
            }
            Answer::Malformed => {
                tracing::debug!(?conn, "malformed request body; closing");
                self.metrics.rejected("malformed");
                return self.conns.close(&mut self.io, conn);
            }
        };
        let appends = matches!(state.until(), Some(Until::Appended { .. }));
        match self
            .conns
            .push(&mut self.io, conn, state, (api, bytes, self.now.mono))
        {
            Ok(_) if appends => self.wake_appends_on(conn),
            Ok(_) => {}
            Err(state) => {
                let pins = state.into_pins();
                self.logs.unpin_all(&mut self.io, self.now, &pins);
            }
        }
    }

    /// Fill a parked slot with its response frame.
    fn fill(&mut self, conn: ConnId, seq: u64, frame: Bytes) {
        let state = SlotState::Ready(vec![Part::Bytes(frame)], Vec::new());
        // A slot gone with its connection needs nothing more.
        let _ = self.conns.fill(&mut self.io, conn, seq, state);
    }

    // ---- waking --------------------------------------------------------

    /// Act on what the parts recorded during an input: wake the requests
    /// whose condition may now hold, deliver the coordinator's answers.
    fn settle(&mut self) {
        loop {
            let events = self.logs.take_events();
            for (read, written) in &events.passes {
                self.metrics.cleaned(*read, *written);
            }
            let mut busy = events.appended || !events.data.is_empty();
            if events.recovery_points {
                self.lifecycle.recovery_points_changed = true;
            }
            if events.log_starts || events.cleaned {
                self.checkpoint_soon();
            }
            if events.appended {
                self.wake_appends();
            }
            let mut data = events.data;
            data.sort_unstable();
            data.dedup();
            for key in data {
                self.wake_data(key);
            }
            let answers = {
                let (mut cx, _) = self.parts();
                groups::drain(&mut cx)
            };
            busy |= !answers.is_empty();
            for (conn, seq, frame) in answers {
                self.fill(conn, seq, frame);
            }
            if !busy {
                for (api, read_at) in self.conns.take_answered() {
                    let took = self.now.mono.saturating_since(read_at);
                    self.metrics.answered(api, took);
                }
                return;
            }
        }
    }

    /// Answer, in order from the front of `conn`'s queue, each request
    /// waiting for its appends whose appends are done. The scan stops at
    /// the first one still waiting: whatever is behind it is checked again
    /// by the wake that releases it, so a wake costs about the answers it
    /// makes, not the depth of the queue.
    fn wake_appends_on(&mut self, conn: ConnId) {
        let (mut cx, conns) = self.parts();
        let mut any = false;
        let mut released = 0;
        for slot in conns.slots_mut(conn) {
            // Other kinds are answered by their own events; an append
            // behind them must still be looked at now, or nothing would
            // wake it once they leave.
            let SlotState::Waiting(Until::Appended { .. }, w) = &mut slot.state else {
                continue;
            };
            let Some(response) = w.poll(&mut cx, Wake::Appended) else {
                if !w.holds_request_bytes() {
                    released += slot.release_bytes();
                }
                break;
            };
            slot.state = ready(response);
            any = true;
        }
        if released > 0 {
            conns.release(released);
        }
        if any {
            conns.flush(cx.io, conn);
        }
    }

    /// A high watermark or recovery point moved, or a log failed or went.
    fn wake_appends(&mut self) {
        for conn in self
            .conns
            .conns_waiting(|u| matches!(u, Until::Appended { .. }))
        {
            self.wake_appends_on(conn);
        }
    }

    /// `key` has more to read, or failed.
    fn wake_data(&mut self, key: LogKey) {
        let data = |u: Until| matches!(u, Until::Data { .. });
        for (conn, seq) in self.conns.waiting(data) {
            self.wake_slot(conn, seq, Wake::Data(key));
        }
    }

    /// Look at one waiting slot again.
    fn wake_slot(&mut self, conn: ConnId, seq: u64, wake: Wake) {
        let (mut cx, conns) = self.parts();
        let Some(slot) = conns.slot_mut(conn, seq) else {
            return;
        };
        let SlotState::Waiting(_, w) = &mut slot.state else {
            return;
        };
        if let Some(response) = w.poll(&mut cx, wake) {
            slot.state = ready(response);
            conns.flush(cx.io, conn);
        }
    }
}

fn ready(response: Response) -> SlotState {
    match response {
        Response::Frame(f) => SlotState::Ready(vec![Part::Bytes(f)], Vec::new()),
        Response::Parts(parts, pins) => SlotState::Ready(parts, pins),
    }
}

/// Kafka's rule for topic names: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(crate) fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}
