//! The broker: connections and their ordered response queues, request
//! routing, the partition logs, and the command queue the driver drains.
//!
//! Handlers live beside this file: `produce`, `fetch`, `admin` (ApiVersions,
//! Metadata, ListOffsets, CreateTopics, DeleteTopics), `idempotence`
//! (InitProducerId) and `lifecycle` (recovery at startup, checkpoints,
//! clean shutdown).

mod admin;
mod fetch;
mod group_log;
mod groups;
mod idempotence;
mod lifecycle;
mod offsets;
mod produce;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use crate::config::{Config, TopicConfig};
use crate::group::{Coordinator, GroupConfig};
use crate::io::{
    Command, Completion, ConnId, DiskState, Done, IdMap, Ids, IoError, IoId, Part, SegId,
};
use crate::log::PartitionLog;
use crate::protocol::{self, Frame, HeaderError};
use crate::time::{Instant, Now};

pub use lifecycle::ROOT_FILES;

/// What [`Broker::poll`] returns.
#[derive(Debug)]
pub enum Poll {
    /// Do this, then answer it with [`Broker::handle_done`].
    Command(Command),
    /// Nothing more to do until an input arrives or the deadline (if any)
    /// passes; then call [`Broker::handle_timeout`].
    Wait(Option<Instant>),
}

/// Index of a partition log in [`Broker::logs`].
type LogKey = usize;

/// Topic settings given at creation, as `(key, value)` in Kafka's names.
type Overrides = Vec<(String, String)>;

/// A topic: its id and the logs of its partitions, in partition order.
#[derive(Debug)]
struct Topic {
    id: uuid::Uuid,
    partitions: Vec<LogKey>,
}

/// Who is waiting for a command's `Done`.
#[derive(Debug)]
enum Owner {
    /// A partition log's file command.
    Log(LogKey),
    /// A response on its way; the segments it names are pinned until done.
    Send(Vec<(LogKey, SegId)>),
    /// A batch read for a ListOffsets in `conn`'s slot `seq`; the segment
    /// is pinned until it is answered.
    Read {
        conn: ConnId,
        seq: u64,
        key: LogKey,
        seg: SegId,
    },
    /// A `Close`.
    Close,
    /// The broker's own files (metadata, checkpoints, the shutdown marker).
    File(lifecycle::FileJob),
}

/// One request's place in its connection's response order.
#[derive(Debug)]
struct Slot {
    seq: u64,
    state: SlotState,
    /// The request frame's size, counted in `held_bytes` until the slot's
    /// response leaves.
    bytes: u64,
}

#[derive(Debug)]
enum SlotState {
    /// The response, ready to leave once every earlier one has.
    Ready(Vec<Part>, Vec<(LogKey, SegId)>),
    /// A request that gets no response (Produce with acks 0), done.
    Silent,
    /// A Produce waiting for its appends to complete.
    Produce(produce::Pending),
    /// A Fetch long-polling for data.
    Fetch(fetch::Pending),
    /// A ListOffsets reading the batches its by-time lookups found.
    ListOffsets(offsets::Pending),
    /// A JoinGroup or SyncGroup parked in the coordinator (its ticket).
    Group,
    /// An OffsetCommit waiting for its records to be appended.
    Commit(groups::PendingCommit),
    /// An InitProducerId waiting for a producer id block to be written.
    InitProducerId,
}

#[derive(Debug, Default)]
struct Conn {
    /// The client id its latest request carried (member ids start with it).
    client_id: String,
    queue: VecDeque<Slot>,
    next_seq: u64,
    /// A `Close` was issued: read nothing more, answer nothing more.
    closing: bool,
}

/// A single-node Kafka broker as a state machine. See the crate docs for the
/// contract.
#[derive(Debug)]
pub struct Broker {
    config: Config,
    ids: Ids,
    out: VecDeque<Command>,
    /// Commands a log call just emitted, before their owners are recorded.
    scratch: Vec<Command>,
    owners: IdMap<IoId, Owner>,
    conns: IdMap<ConnId, Conn>,
    topics: BTreeMap<String, Topic>,
    logs: Vec<Option<PartitionLog>>,
    /// Topic settings given at creation, by topic (stored on disk).
    topic_overrides: BTreeMap<String, Overrides>,
    /// Logs of deleted topics, waiting for their pins to drop.
    doomed: Vec<LogKey>,
    /// The latest time an input carried.
    now: Now,
    /// Bytes of request frames read and not yet answered, across every
    /// connection (`queued.max.request.bytes` bounds it).
    held_bytes: u64,
    /// The size of the request being handled, for the slot it makes.
    incoming_bytes: u64,
    /// The consumer group coordinator.
    coordinator: Coordinator,
    /// Committed offsets, as stored in `__consumer_offsets`.
    committed: groups::OffsetTable,
    /// Parked JoinGroup/SyncGroup requests by ticket.
    parked: IdMap<u64, groups::ParkedSlot>,
    /// Group metadata replayed at startup, handed to the coordinator once
    /// every partition is read (`None`: deleted).
    group_snapshots: BTreeMap<String, Option<crate::group::GroupSnapshot>>,
    /// Producer ids for InitProducerId.
    producer_ids: idempotence::ProducerIds,
    lifecycle: lifecycle::State,
}

impl Broker {
    /// A broker over what the driver found in the data directory. Recovery
    /// commands (truncations, index rebuilds, segment opens) come out of
    /// [`Broker::poll`] first.
    pub fn new(config: Config, now: Now, disk: DiskState) -> Self {
        let retention_interval = Duration::from_millis(config.retention_check_interval_ms);
        let offsets_interval = Duration::from_millis(config.offsets_retention_check_interval_ms);
        let group_config = GroupConfig {
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            max_group_size: config.group_max_size,
        };
        let mut broker = Self {
            config,
            ids: Ids::default(),
            out: VecDeque::new(),
            scratch: Vec::new(),
            owners: IdMap::default(),
            conns: IdMap::default(),
            topics: BTreeMap::new(),
            logs: Vec::new(),
            topic_overrides: BTreeMap::new(),
            doomed: Vec::new(),
            now,
            lifecycle: lifecycle::State::new(now, retention_interval, offsets_interval),
            held_bytes: 0,
            incoming_bytes: 0,
            coordinator: Coordinator::new(group_config),
            committed: HashMap::new(),
            parked: IdMap::default(),
            group_snapshots: BTreeMap::new(),
            producer_ids: idempotence::ProducerIds::default(),
        };
        broker.recover(disk);
        broker
    }

    /// The configuration the broker runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A connection opened.
    pub fn handle_open(&mut self, now: Now, conn: ConnId) {
        self.tick(now);
        self.conns.insert(conn, Conn::default());
    }

    /// A connection closed (by the peer, an error, or a `Close` command).
    /// Its unanswered requests are dropped and their pins released.
    pub fn handle_close(&mut self, now: Now, conn: ConnId) {
        self.tick(now);
        self.cancel_parked(conn);
        if let Some(c) = self.conns.remove(&conn) {
            for slot in c.queue {
                self.held_bytes -= slot.bytes;
                if let SlotState::Ready(_, pins) = slot.state {
                    self.unpin_all(&pins);
                }
            }
        }
    }

    /// Bytes arrived on `conn`: whole frames are cut off `buf`; a partial
    /// frame stays for the next call.
    pub fn handle_read(&mut self, now: Now, conn: ConnId, buf: &mut BytesMut) {
        self.tick(now);
        loop {
            if !self.wants_read(conn) {
                return;
            }
            match protocol::cut_frame(buf, self.config.socket_request_max_bytes) {
                Frame::Partial => return,
                Frame::Invalid(len) => {
                    tracing::debug!(?conn, len, "invalid frame length; closing");
                    buf.clear();
                    self.close(conn);
                    return;
                }
                Frame::Request(frame) => {
                    self.incoming_bytes = frame.len() as u64;
                    self.handle_request(conn, frame);
                    self.incoming_bytes = 0;
                }
            }
        }
    }

    /// Whether the broker takes more bytes from `conn` now. False while the
    /// connection has `queued.max.requests` requests unanswered, or is
    /// closing; the driver stops reading it until a later `poll` says
    /// otherwise.
    pub fn wants_read(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| !c.closing && c.queue.len() < self.config.max_inflight_requests)
            && self.held_bytes < self.config.queued_max_request_bytes
            && !self.lifecycle.shutting_down()
    }

    /// A command finished.
    pub fn handle_done(&mut self, now: Now, done: Done) {
        self.tick(now);
        let Some(owner) = self.owners.remove(&done.io) else {
            tracing::warn!(io = ?done.io, "Done for an unknown command");
            return;
        };
        match owner {
            Owner::Log(key) => self.log_done(key, done.io, done.result),
            Owner::Send(pins) => {
                if let Err(e) = &done.result {
                    tracing::debug!(error = %e, "send failed");
                }
                self.unpin_all(&pins);
            }
            Owner::Read {
                conn,
                seq,
                key,
                seg,
            } => {
                self.unpin_all(&[(key, seg)]);
                self.offsets_read_done(conn, seq, done.io, done.result);
            }
            Owner::Close => {}
            Owner::File(job) => self.file_done(job, done.result),
        }
    }

    /// A deadline passed.
    pub fn handle_timeout(&mut self, now: Now) {
        self.tick(now);
        self.expire_fetches();
        for key in 0..self.logs.len() {
            let due = self.logs[key]
                .as_ref()
                .and_then(|l| l.next_deadline_wall_ms())
                .is_some_and(|d| d <= now.wall_ms);
            if due {
                self.with_log(key, |log, now, ids, out| log.handle_timeout(now, ids, out));
            }
        }
        self.coordinator.handle_timeout(self.now.mono);
        self.drain_coordinator();
        self.lifecycle_timeout();
    }

    /// The next thing for the driver to do.
    pub fn poll(&mut self) -> Poll {
        match self.out.pop_front() {
            Some(cmd) => Poll::Command(cmd),
            None => Poll::Wait(self.next_deadline()),
        }
    }

    fn tick(&mut self, now: Now) {
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
        if let Some(d) = self.coordinator.next_deadline() {
            consider(d);
        }
        for conn in self.conns.values() {
            for slot in &conn.queue {
                if let SlotState::Fetch(f) = &slot.state {
                    consider(f.deadline);
                }
            }
        }
        for log in self.logs.iter().flatten() {
            if let Some(wall) = log.next_deadline_wall_ms() {
                let wait = u64::try_from(wall.saturating_sub(self.now.wall_ms)).unwrap_or(0);
                consider(self.now.mono.saturating_add(Duration::from_millis(wait)));
            }
        }
        next
    }

    // ---- requests ------------------------------------------------------

    fn handle_request(&mut self, conn: ConnId, frame: Bytes) {
        let request = match protocol::parse_header(frame) {
            Ok(r) => r,
            Err(HeaderError::UnsupportedVersion {
                key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                let frame = admin::api_versions_unsupported(correlation_id);
                self.push_ready(conn, vec![Part::Bytes(frame)], Vec::new());
                return;
            }
            Err(e) => {
                tracing::debug!(?conn, error = ?e, "unroutable request; closing");
                self.close(conn);
                return;
            }
        };
        if let (Some(c), Some(id)) = (self.conns.get_mut(&conn), &request.client_id) {
            if c.client_id != *id {
                c.client_id.clone_from(id);
            }
        }
        let ok = match request.key {
            ApiKey::ApiVersions => self.answer(conn, admin::api_versions(&request)),
            ApiKey::Metadata => {
                let r = self.metadata(&request);
                self.answer(conn, r)
            }
            ApiKey::CreateTopics => {
                let r = self.create_topics(&request);
                self.answer(conn, r)
            }
            ApiKey::DeleteTopics => {
                let r = self.delete_topics(&request);
                self.answer(conn, r)
            }
            ApiKey::ListOffsets => self.list_offsets(conn, &request),
            ApiKey::Produce => self.produce(conn, request),
            ApiKey::InitProducerId => self.init_producer_id(conn, &request),
            ApiKey::Fetch => self.fetch(conn, request),
            ApiKey::FindCoordinator
            | ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::ListGroups
            | ApiKey::DescribeGroups
            | ApiKey::DeleteGroups => self.group_request(conn, &request),
            _ => false,
        };
        if !ok {
            tracing::debug!(?conn, "malformed request body; closing");
            self.close(conn);
        }
    }

    /// Queue a response frame; `None` means the body did not decode.
    fn answer(&mut self, conn: ConnId, frame: Option<Bytes>) -> bool {
        match frame {
            Some(f) => {
                self.push_ready(conn, vec![Part::Bytes(f)], Vec::new());
                true
            }
            None => false,
        }
    }

    /// Append a slot to `conn`'s queue and send whatever is now in order.
    fn push_slot(&mut self, conn: ConnId, state: SlotState) -> Option<u64> {
        let c = self.conns.get_mut(&conn)?;
        let seq = c.next_seq;
        c.next_seq += 1;
        // A request makes one slot; it carries the frame's bytes.
        let bytes = std::mem::take(&mut self.incoming_bytes);
        self.held_bytes += bytes;
        c.queue.push_back(Slot { seq, state, bytes });
        self.flush_conn(conn);
        Some(seq)
    }

    fn push_ready(&mut self, conn: ConnId, parts: Vec<Part>, pins: Vec<(LogKey, SegId)>) {
        if self
            .push_slot(conn, SlotState::Ready(parts, pins.clone()))
            .is_none()
        {
            self.unpin_all(&pins);
        }
    }

    /// Send the responses at the front of `conn`'s queue that are ready.
    fn flush_conn(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        while let Some(front) = c.queue.front() {
            match front.state {
                SlotState::Ready(..) | SlotState::Silent => {}
                _ => break,
            }
            let Some(slot) = c.queue.pop_front() else {
                break;
            };
            self.held_bytes -= slot.bytes;
            if let SlotState::Ready(parts, pins) = slot.state {
                let io = self.ids.io();
                self.owners.insert(io, Owner::Send(pins));
                self.out.push_back(Command::Send { io, conn, parts });
            }
        }
    }

    /// Replace the state of `conn`'s slot `seq` and send what is in order.
    fn set_slot(&mut self, conn: ConnId, seq: u64, state: SlotState) {
        let Some(c) = self.conns.get_mut(&conn) else {
            if let SlotState::Ready(_, pins) = state {
                self.unpin_all(&pins);
            }
            return;
        };
        if let Some(slot) = c.queue.iter_mut().find(|s| s.seq == seq) {
            slot.state = state;
        }
        self.flush_conn(conn);
    }

    fn close(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        c.closing = true;
        // Responses already queued before the close still leave first: the
        // driver writes this connection's commands in order.
        let io = self.ids.io();
        self.owners.insert(io, Owner::Close);
        self.out.push_back(Command::Close { io, conn });
    }

    // ---- logs ------------------------------------------------------------

    /// Run `f` on a log with the id source and a scratch command list, then
    /// record the log as the owner of every command it emitted.
    fn with_log<R>(
        &mut self,
        key: LogKey,
        f: impl FnOnce(&mut PartitionLog, Now, &mut Ids, &mut Vec<Command>) -> R,
    ) -> Option<R> {
        let log = self.logs.get_mut(key)?.as_mut()?;
        let r = f(log, self.now, &mut self.ids, &mut self.scratch);
        for cmd in self.scratch.drain(..) {
            self.owners.insert(cmd.io(), Owner::Log(key));
            self.out.push_back(cmd);
        }
        Some(r)
    }

    fn log_done(&mut self, key: LogKey, io: IoId, result: Result<Completion, IoError>) {
        let Some(event) = self.with_log(key, |log, _, ids, out| {
            log.handle_done(io, result, ids, out)
        }) else {
            return;
        };
        if let Some(e) = &event.failed {
            let dir = self.logs[key].as_ref().map(|l| l.dir().to_owned());
            tracing::error!(?dir, error = %e, "storage error: partition offline");
        }
        if event.high_watermark_advanced || event.failed.is_some() {
            self.wake_appenders();
            self.wake_fetches(key);
        }
        if event.recovery_point_advanced {
            self.lifecycle.recovery_points_changed = true;
            // acks=-1 produces on flush.messages=1 topics wait for this.
            self.wake_appenders();
        }
        self.lifecycle_progress();
    }

    fn log(&self, key: LogKey) -> Option<&PartitionLog> {
        self.logs.get(key)?.as_ref()
    }

    /// The log of `topic`'s partition `partition`, if both exist.
    fn find_log(&self, topic: &str, partition: i32) -> Option<LogKey> {
        let t = self.topics.get(topic)?;
        t.partitions.get(usize::try_from(partition).ok()?).copied()
    }

    fn unpin_all(&mut self, pins: &[(LogKey, SegId)]) {
        for &(key, seg) in pins {
            if let Some(log) = self.logs.get_mut(key).and_then(Option::as_mut) {
                log.unpin(seg);
            }
        }
        if !pins.is_empty() && !self.doomed.is_empty() {
            self.reap_doomed();
        }
    }

    /// Create a topic's partition logs (and their `partition.metadata`),
    /// with `overrides` of the broker's topic defaults (already validated),
    /// which are stored so a restart keeps them.
    fn create_topic(&mut self, name: &str, partitions: i32, overrides: Overrides) -> uuid::Uuid {
        let config = self.topic_config(name, &overrides);
        if !overrides.is_empty() {
            self.topic_overrides.insert(name.to_owned(), overrides);
            self.write_topic_overrides();
        }
        let id = lifecycle::topic_id(name, self.now, self.ids.io().0);
        let mut keys = Vec::new();
        for p in 0..partitions.max(1) {
            let dir = format!("{name}-{p}");
            let key = self.logs.len();
            self.logs.push(None);
            let mut out = Vec::new();
            let log = PartitionLog::create(dir.clone(), config.clone(), 0, &mut self.ids, &mut out);
            self.logs[key] = Some(log);
            for cmd in out {
                self.owners.insert(cmd.io(), Owner::Log(key));
                self.out.push_back(cmd);
            }
            self.write_partition_metadata(&dir, id);
            keys.push(key);
        }
        self.topics.insert(
            name.to_owned(),
            Topic {
                id,
                partitions: keys,
            },
        );
        id
    }

    /// Remove a topic now; its files go once no send pins them.
    fn delete_topic(&mut self, name: &str) -> bool {
        let Some(topic) = self.topics.remove(name) else {
            return false;
        };
        if self.topic_overrides.remove(name).is_some() {
            self.write_topic_overrides();
        }
        self.doomed.extend(topic.partitions);
        self.reap_doomed();
        // Producers and long-polls waiting on the deleted logs get errors now.
        self.wake_appenders();
        true
    }

    /// The broker's topic defaults with a topic's overrides applied. The
    /// overrides were checked when the topic was created; one that no longer
    /// applies (a stored file from another version) is skipped and logged.
    fn topic_config(&self, topic: &str, overrides: &[(String, String)]) -> TopicConfig {
        let mut config = self.config.topic_defaults.clone();
        for (key, value) in overrides {
            if let Err(e) = config.set(key, value) {
                tracing::warn!(topic, error = %e, "ignoring a stored topic setting");
            }
        }
        config
    }

    fn reap_doomed(&mut self) {
        let doomed = std::mem::take(&mut self.doomed);
        for key in doomed {
            let gone = self
                .with_log(key, |log, _, ids, out| log.delete(ids, out))
                .unwrap_or(true);
            if !gone {
                self.doomed.push(key);
            }
        }
    }
}

/// Kafka's rule for topic names: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}
