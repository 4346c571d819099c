//! The broker in a cluster: Raft frames in and out, the partition logs
//! this broker holds made to follow the image the quorum applied, the
//! cluster as handlers see it (brokers, controller, who leads a partition),
//! and requests that wait for their records to be committed.
//!
//! Without a quorum every answer here is the single broker's own: itself
//! as the only broker and controller, leader of every partition it has.

use std::fmt;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;

use super::Broker;
use super::group_log::{self, OFFSETS_TOPIC};
use super::logs::{Level, LogKey};
use super::out::Owner;
use super::replication::{Leading, Role};
use super::wait::{Ctx, Response, Until, Waiter, Wake};
use crate::cluster::controller::{self, NewTopic};
use crate::cluster::records::PartitionImage;
use crate::cluster::{Image, state, wire};
use crate::io::{Command, ConnId};
use crate::protocol::{self, Request};
use crate::time::Instant;

/// How long the controller waits before proposing `__consumer_offsets`
/// again, when a leader change may have lost the proposal.
const OFFSETS_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// A broker as clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerAddr {
    pub(crate) id: i32,
    pub(crate) host: String,
    pub(crate) port: i32,
    /// Fenced by the controller (not heard from): Metadata leaves it out.
    pub(crate) fenced: bool,
}

/// Why a partition is not served here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotHere {
    /// No such topic or partition.
    Unknown,
    /// Another broker leads it (or none does now).
    NotLeader,
    /// The request knows an older leader epoch than this broker's.
    FencedEpoch,
    /// The request knows a newer leader epoch than this broker's.
    UnknownEpoch,
}

impl NotHere {
    pub(crate) fn error(self) -> ResponseError {
        match self {
            NotHere::Unknown => ResponseError::UnknownTopicOrPartition,
            NotHere::NotLeader => ResponseError::NotLeaderOrFollower,
            NotHere::FencedEpoch => ResponseError::FencedLeaderEpoch,
            NotHere::UnknownEpoch => ResponseError::UnknownLeaderEpoch,
        }
    }

    pub(crate) fn code(self) -> i16 {
        self.error().code()
    }
}

impl Ctx<'_> {
    /// The image, in a cluster.
    pub(crate) fn image(&self) -> Option<&Image> {
        self.quorum.as_deref().map(|q| q.image())
    }

    /// Every broker clients can reach: the registered ones, and this one
    /// even before its registration is applied (a client always has one).
    pub(crate) fn brokers(&self) -> Vec<BrokerAddr> {
        let me = BrokerAddr {
            id: self.config.node_id,
            host: self.config.advertised_host.clone(),
            port: i32::from(self.config.advertised_port),
            fenced: false,
        };
        let Some(image) = self.image() else {
            return vec![me];
        };
        let mut all: Vec<BrokerAddr> = image
            .brokers
            .iter()
            .filter_map(|(&id, r)| {
                let (host, port) = r.host_port()?;
                Some(BrokerAddr {
                    id,
                    host: host.to_owned(),
                    port: i32::from(port),
                    // This broker answers, so it is up, whatever the
                    // image says yet.
                    fenced: r.fenced && id != self.config.node_id,
                })
            })
            .collect();
        if !all.iter().any(|b| b.id == me.id) {
            all.push(me);
        }
        all
    }

    /// The active controller's id, -1 when none is known.
    pub(crate) fn controller_id(&self) -> i32 {
        match self.quorum.as_deref() {
            None => self.config.node_id,
            Some(q) => q.controller().unwrap_or(-1),
        }
    }

    /// Whether `name` is a topic of the cluster (or, alone, of this broker).
    pub(crate) fn topic_exists(&self, name: &str) -> bool {
        match self.image() {
            Some(image) => image.topics.contains_key(name),
            None => self.logs.topic(name).is_some(),
        }
    }

    /// Whether this broker serves reads and writes of `topic`'s partition
    /// `partition`: it exists and this broker leads it. Alone, a broker
    /// leads every partition it has.
    /// Its log, when so.
    pub(crate) fn leads(&self, topic: &str, partition: i32) -> Result<LogKey, NotHere> {
        let local = self.logs.find(topic, partition);
        let Some(image) = self.image() else {
            return local.ok_or(NotHere::Unknown);
        };
        let p = usize::try_from(partition)
            .ok()
            .and_then(|p| image.topics.get(topic)?.partitions.get(p))
            .ok_or(NotHere::Unknown)?;
        match local {
            Some(key) if p.leader == self.config.node_id => Ok(key),
            _ => Err(NotHere::NotLeader),
        }
    }

    /// `leads`, for a request that names the leader epoch its sender knows
    /// (`current`, -1 for none): as Kafka's replicas check it (KIP-320),
    /// a broker holding the partition answers FENCED_LEADER_EPOCH to an
    /// older epoch than its own and UNKNOWN_LEADER_EPOCH to a newer one,
    /// before asking whether it leads.
    pub(crate) fn leads_in(
        &self,
        topic: &str,
        partition: i32,
        current: i32,
    ) -> Result<LogKey, NotHere> {
        if current >= 0 && self.logs.find(topic, partition).is_some() {
            let mine = self.leader_epoch(topic, partition).unwrap_or(current);
            if current < mine {
                return Err(NotHere::FencedEpoch);
            }
            if current > mine {
                return Err(NotHere::UnknownEpoch);
            }
        }
        self.leads(topic, partition)
    }

    /// The partition's leader epoch as this broker knows it: the image's
    /// in a cluster; alone, 0 for every partition it has.
    pub(crate) fn leader_epoch(&self, topic: &str, partition: i32) -> Option<i32> {
        match self.image() {
            Some(_) => self
                .partition_image(topic, partition)
                .map(|p| p.leader_epoch),
            None => self.logs.find(topic, partition).map(|_| 0),
        }
    }

    /// The image's state of one partition, in a cluster.
    fn partition_image(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        let p = usize::try_from(partition).ok()?;
        self.image()?.topics.get(topic)?.partitions.get(p)
    }

    /// How many replicas `topic`'s partition has in the cluster; `None`
    /// alone, or for a partition the image does not have.
    pub(crate) fn replicas(&self, topic: &str, partition: i32) -> Option<usize> {
        self.partition_image(topic, partition)
            .map(|p| p.replicas.len())
    }

    /// How many of them are in sync.
    pub(crate) fn in_sync_replicas(&self, topic: &str, partition: i32) -> Option<usize> {
        self.partition_image(topic, partition).map(|p| p.isr.len())
    }

    /// Whether `topic` has partition `partition` in the cluster (or, alone,
    /// on this broker).
    pub(crate) fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        match self.image() {
            Some(image) => usize::try_from(partition)
                .ok()
                .zip(image.topics.get(topic))
                .is_some_and(|(p, t)| p < t.partitions.len()),
            None => self.logs.find(topic, partition).is_some(),
        }
    }

    /// A topic's own settings: the image's in a cluster, else those given
    /// at its creation (or changed since) on this broker.
    pub(crate) fn topic_overrides(&self, topic: &str) -> Vec<(String, String)> {
        match self.image().and_then(|i| i.topics.get(topic)) {
            Some(t) => t
                .configs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            None => self.logs.overrides_of(topic),
        }
    }

    /// The broker that coordinates `group`: the leader of its partition of
    /// `__consumer_offsets`. Alone, this broker; in a cluster, the error
    /// while that topic does not exist yet or the partition has no leader
    /// (COORDINATOR_NOT_AVAILABLE: the client asks again).
    pub(crate) fn coordinator_of(&self, group: &str) -> Result<BrokerAddr, i16> {
        let not_available = ResponseError::CoordinatorNotAvailable.code();
        let Some(image) = self.image() else {
            return Ok(self.brokers().swap_remove(0));
        };
        let topic = image.topics.get(OFFSETS_TOPIC).ok_or(not_available)?;
        let p = group_log::partition_for(group, topic.partitions.len() as i32);
        let leader = topic
            .partitions
            .get(usize::try_from(p).unwrap_or(0))
            .map_or(crate::cluster::NO_LEADER, |p| p.leader);
        self.brokers()
            .into_iter()
            .find(|b| b.id == leader)
            .ok_or(not_available)
    }

    /// Whether this broker coordinates `group`; when not, the error to give
    /// (NOT_COORDINATOR, or COORDINATOR_NOT_AVAILABLE while there is none),
    /// so the client finds the coordinator again.
    pub(crate) fn not_coordinator(&self, group: &str) -> Option<i16> {
        // Alone, this broker coordinates every group.
        self.quorum.as_ref()?;
        match self.coordinator_of(group) {
            Ok(b) if b.id == self.config.node_id => {
                let p = group_log::partition_for(group, self.offsets_partitions());
                // Its log is being created, or its groups not yet taken
                // over: the client asks again.
                let loading =
                    self.logs.find(OFFSETS_TOPIC, p).is_none() || !self.groups.coordinates(p, true);
                loading.then(|| ResponseError::CoordinatorLoadInProgress.code())
            }
            Ok(_) => Some(ResponseError::NotCoordinator.code()),
            Err(code) => Some(code),
        }
    }

    /// The partitions `__consumer_offsets` has (or will have, alone).
    pub(crate) fn offsets_partitions(&self) -> i32 {
        self.image()
            .and_then(|i| i.topics.get(OFFSETS_TOPIC))
            .map_or(self.config.offsets_topic_partitions, |t| {
                t.partitions.len() as i32
            })
    }

    /// This broker is the active controller: it may propose. In a cluster
    /// elsewhere, the NOT_CONTROLLER refusal to give.
    pub(crate) fn not_controller(&self) -> Option<(i16, String)> {
        let q = self.quorum.as_deref()?;
        if q.is_controller() {
            return None;
        }
        let message = match q.controller() {
            Some(c) => format!("broker {c} is the active controller; ask it"),
            None => "no active controller is known yet; retry".to_owned(),
        };
        Some((ResponseError::NotController.code(), message))
    }
}

/// Called on a response once the records a result waited for are applied
/// (`Ok`), or could not be (`Err`: the error to give): it fills in that
/// result.
type Finish<T> = Box<dyn FnMut(&mut T, Result<&Image, (i16, String)>) + Send>;

/// A request answered once the records it proposed are applied: each
/// result of its response waits for the log index its records took, then
/// is filled in from the image. A result whose records a new controller
/// overwrote is told NOT_CONTROLLER (the client retries); one still
/// waiting at the request's timeout, REQUEST_TIMED_OUT.
pub(crate) struct Committed<T> {
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: T,
    /// Each result's log index, the term it was proposed in when known,
    /// and how to fill it in.
    pending: Vec<(u64, Option<u64>, Finish<T>)>,
    deadline: Instant,
}

impl<T> fmt::Debug for Committed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Committed")
            .field("key", &self.key)
            .field("pending", &self.pending.len())
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<T: Encodable + Send + 'static> Committed<T> {
    pub(crate) fn new(request: &Request, response: T, deadline: Instant) -> Self {
        Self {
            key: request.key,
            version: request.version,
            correlation_id: request.correlation_id,
            response,
            pending: Vec::new(),
            deadline,
        }
    }

    /// The response, to fill in results that wait for nothing.
    pub(crate) fn response(&mut self) -> &mut T {
        &mut self.response
    }

    /// A result waiting for log index `index`.
    pub(crate) fn wait_for(
        &mut self,
        index: u64,
        finish: impl FnMut(&mut T, Result<&Image, (i16, String)>) + Send + 'static,
    ) {
        self.pending.push((index, None, Box::new(finish)));
    }

    /// A result waiting for log index `index`, proposed in `term`: should
    /// another entry take that index (a new controller's), the result is
    /// NOT_CONTROLLER rather than read from an image its records are not
    /// in.
    pub(crate) fn wait_for_entry(
        &mut self,
        (index, term): (u64, u64),
        finish: impl FnMut(&mut T, Result<&Image, (i16, String)>) + Send + 'static,
    ) {
        self.pending.push((index, Some(term), Box::new(finish)));
    }

    /// The answer: now when nothing waits, else a wait.
    pub(crate) fn answer(mut self, cx: &mut Ctx<'_>) -> super::wait::Answer {
        match self.poll(cx, Wake::Metadata) {
            Some(Response::Frame(f)) => super::wait::Answer::Frame(f),
            Some(r @ Response::Parts(..)) => r.into(),
            None => super::wait::Answer::Wait(Box::new(self)),
        }
    }
}

impl<T: Encodable + Send + 'static> Waiter for Committed<T> {
    fn until(&self) -> Until {
        Until::Metadata {
            deadline: self.deadline,
        }
    }

    fn poll(&mut self, cx: &mut Ctx<'_>, wake: Wake) -> Option<Response> {
        let timed_out = matches!(wake, Wake::Deadline) && self.deadline <= cx.now.mono;
        let response = &mut self.response;
        match cx.quorum.as_deref() {
            None => {
                for (_, _, mut finish) in self.pending.drain(..) {
                    let why = "the metadata quorum stopped".to_owned();
                    finish(response, Err((ResponseError::NotController.code(), why)));
                }
            }
            Some(q) => {
                let (applied, image) = (q.applied(), q.image());
                self.pending.retain_mut(|(index, term, finish)| {
                    let replaced = term.zip(q.entry_term(*index)).is_some_and(|(a, b)| a != b);
                    if *index <= applied && replaced {
                        let why = "a new active controller replaced the change before it was \
                                   committed; retry"
                            .to_owned();
                        finish(response, Err((ResponseError::NotController.code(), why)));
                        false
                    } else if *index <= applied {
                        finish(response, Ok(image));
                        false
                    } else if timed_out {
                        let why = "not committed by the metadata quorum within the timeout; \
                                   it may still be"
                            .to_owned();
                        finish(response, Err((ResponseError::RequestTimedOut.code(), why)));
                        false
                    } else {
                        true
                    }
                });
            }
        }
        if !self.pending.is_empty() {
            return None;
        }
        Some(Response::Frame(protocol::encode_response(
            self.key,
            self.version,
            self.correlation_id,
            &self.response,
        )))
    }
}

impl Broker {
    /// Raft messages from a peer: one-way, so they take no slot in the
    /// connection's response order. Bytes that are not a well-formed batch
    /// close the connection. A broker outside a quorum drops them, warning
    /// once: the sender names it a voter, so the two configurations differ
    /// (closing would only have the sender reconnect and send again).
    pub(super) fn raft_frame(&mut self, conn: ConnId, frame: bytes::Bytes) {
        // The same connection carries its replica fetches.
        self.conns.mark_peer(conn);
        let Some(q) = &mut self.quorum else {
            self.metrics.rejected("raft_without_quorum");
            if !self.warned_no_quorum {
                self.warned_no_quorum = true;
                tracing::warn!(
                    ?conn,
                    client = self.conns.client_id(conn),
                    "a peer sends Raft messages, but this broker is no voter \
                     (controller.quorum.voters names no other broker, or not this node.id); dropped"
                );
            }
            return;
        };
        match wire::decode_frame(frame) {
            Ok(messages) => q.receive(messages, self.now),
            Err(e) => {
                tracing::debug!(?conn, error = ?e, "malformed Raft frame; closing");
                self.metrics.rejected("malformed");
                return self.conns.close(&mut self.io, conn);
            }
        }
        self.send_quorum();
    }

    /// Write the quorum's state when a round changed it, send what it has
    /// for its peers and forward the topics it wants created to the
    /// controller. A peer not connected misses them; Raft sends again what
    /// matters, and clients ask again for their topics. Then act on the
    /// records applied: follow the image, wake requests waiting on them.
    pub(super) fn send_quorum(&mut self) {
        let Some(q) = &mut self.quorum else {
            return;
        };
        if let Some(bytes) = q.take_write() {
            let cmd = Command::WriteFile {
                io: self.io.next_io(),
                path: state::QUORUM_STATE.to_owned(),
                bytes,
            };
            self.io.emit(cmd, Owner::Quorum);
        }
        for (node, messages) in q.take_outbox() {
            self.peers.send_raft(&mut self.io, node, &messages);
        }
        if let Some((controller, topics)) = q.take_wanted_topics() {
            self.peers.create_topics(&mut self.io, controller, &topics);
        }
        if q.take_changed() {
            self.follow_image();
            self.wake_metadata();
        }
        self.maybe_create_offsets_topic();
    }

    /// As the active controller, create `__consumer_offsets` once every
    /// voter is registered, so its partitions (and the groups they
    /// coordinate) spread over all of them. Proposed again if a leader
    /// change lost the proposal.
    fn maybe_create_offsets_topic(&mut self) {
        let Some(q) = &mut self.quorum else {
            return;
        };
        let voters = self.config.quorum_voters.len();
        let image = q.image();
        if !q.is_controller()
            || image.topics.contains_key(OFFSETS_TOPIC)
            || image.brokers.len() < voters
            || self
                .offsets_proposed_at
                .is_some_and(|at| at.saturating_add(OFFSETS_RETRY) > self.now.mono)
        {
            return;
        }
        // As many replicas as `offsets.topic.replication.factor` asks and
        // there are brokers: Kafka refuses to create the topic with fewer
        // (and no group works until more brokers come); a smaller cluster
        // here gets one replica on each.
        let wanted = self.config.offsets_topic_replication_factor;
        let rf = wanted.min(i16::try_from(image.brokers.len()).unwrap_or(i16::MAX));
        if rf < wanted {
            tracing::warn!(
                wanted,
                brokers = image.brokers.len(),
                "fewer brokers than offsets.topic.replication.factor: \
                 {OFFSETS_TOPIC} gets one replica on each"
            );
        }
        let topic = NewTopic {
            name: OFFSETS_TOPIC.to_owned(),
            partitions: self.config.offsets_topic_partitions,
            replication_factor: rf,
            assignments: Vec::new(),
            configs: super::groups::offsets_topic_settings(&self.config),
        };
        let id = super::new_topic_id(OFFSETS_TOPIC, self.now, q.applied());
        match controller::create_topic(image, &topic, id, 0, 1) {
            Ok(records) => {
                self.offsets_proposed_at = Some(self.now.mono);
                if let Some(index) = q.propose(&records) {
                    tracing::info!(
                        partitions = topic.partitions,
                        index,
                        "creating {OFFSETS_TOPIC}"
                    );
                    // Once more, for what the proposal made to send; it
                    // is not proposed again within OFFSETS_RETRY.
                    self.send_quorum();
                }
            }
            Err((_, why)) => tracing::warn!(why, "{OFFSETS_TOPIC} not created"),
        }
    }

    /// Hold a log for every partition the image makes this broker a
    /// replica of; remove the topics the image no longer has. A topic this
    /// broker holds that the image never had (a stray: data from before
    /// the cluster, or from another one) is left on disk, unserved, and
    /// named once in the log.
    pub(super) fn follow_image(&mut self) {
        let Some(q) = &self.quorum else {
            return;
        };
        let image = q.image().clone();
        let me = self.config.node_id;
        if let Some(&block) = image.producer_ids.get(&me) {
            for (conn, seq, frame) in self.producers.granted(&mut self.io, block) {
                self.fill(conn, seq, frame);
            }
        }
        // The defaults of every broker, as the controller last set them.
        let defaults: Vec<(String, String)> = image
            .broker_defaults
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if *self.logs.dynamic().at(Level::ClusterDefault) != defaults {
            tracing::info!(?defaults, "broker defaults changed");
            self.logs
                .set_dynamic(&mut self.io, Level::ClusterDefault, defaults);
        }
        for (name, topic) in &image.topics {
            let overrides: Vec<(String, String)> = topic
                .configs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (p, state) in topic.partitions.iter().enumerate() {
                if !state.replicas.contains(&me) {
                    continue;
                }
                let Ok(p) = i32::try_from(p) else { continue };
                let seen = &self.seen_topics;
                let hosted = self.logs.host_partition(
                    &mut self.io,
                    self.now,
                    (name, topic.id),
                    p,
                    (&overrides, |old| seen.contains(&old)),
                );
                if let Some(key) = hosted.ok().and_then(|()| self.logs.find(name, p)) {
                    self.logs.set_role(key, role_of(state, me, self.now.mono));
                }
                if let Err(old) = hosted {
                    if self.strays.insert(old) {
                        tracing::warn!(
                            topic = %name,
                            "this broker holds logs of another topic of this name, which the \
                             cluster's metadata never had; they are kept, and the cluster's \
                             topic is not served here until they are moved away"
                        );
                    }
                }
            }
            // Settings the controller changed since: in force at once.
            let held = self.logs.topic(name).is_some_and(|t| t.id == topic.id);
            if held && self.logs.overrides_of(name) != overrides {
                tracing::info!(topic = %name, ?overrides, "topic settings changed");
                self.logs.alter_topic(&mut self.io, name, overrides);
            }
        }
        let held: Vec<(String, uuid::Uuid)> = self
            .logs
            .topics()
            .map(|(name, t)| (name.clone(), t.id))
            .collect();
        for (name, id) in held {
            let now_in_image = image.topics.get(&name).is_some_and(|t| t.id == id);
            if now_in_image {
                continue;
            }
            if self.seen_topics.contains(&id) {
                tracing::info!(topic = %name, "topic deleted by the controller; removing its logs");
                self.logs.delete_topic(&mut self.io, self.now, &name);
                self.seen_topics.remove(&id);
            } else if self.strays.insert(id) {
                tracing::warn!(
                    topic = %name,
                    "this broker holds logs of a topic the cluster's metadata does not have; \
                     they are kept on disk and not served"
                );
            }
        }
        for (name, t) in &image.topics {
            if self.logs.topic(name).is_some_and(|held| held.id == t.id) {
                self.seen_topics.insert(t.id);
            }
        }
        let (mut cx, _) = self.parts();
        super::groups::follow_leadership(&mut cx);
        self.replicate();
    }
}

/// What broker `me`, one of its replicas, is to a partition, at `now`.
fn role_of(state: &PartitionImage, me: i32, now: Instant) -> Option<Role> {
    if state.replicas.len() < 2 {
        None
    } else if state.leader == me {
        Some(Role::Leader(Leading::new(state, me, now)))
    } else {
        Some(Role::Follower {
            leader: state.leader,
        })
    }
}

impl Broker {
    /// Requests waiting on the metadata quorum look again.
    fn wake_metadata(&mut self) {
        let metadata = |u: Until| matches!(u, Until::Metadata { .. });
        for (conn, seq) in self.conns.waiting(metadata) {
            self.wake_slot(conn, seq, Wake::Metadata);
        }
    }
}
