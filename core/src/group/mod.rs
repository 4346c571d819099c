//! The classic consumer-group coordinator: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, ListGroups, DescribeGroups, DeleteGroups, OffsetCommit's
//! membership check and OffsetDelete's check, as Kafka's `GroupCoordinator`
//! answers them.
//!
//! It owns group membership and nothing else: it decodes and encodes no
//! bytes (it takes kafka-protocol's decoded requests and returns responses
//! filled for the request's version), stores no offsets, and reads no clock —
//! every input carries an [`Instant`](crate::time::Instant).
//!
//! ## The contract
//!
//! - **Inputs**: the request methods, [`Coordinator::handle_timeout`],
//!   [`Coordinator::cancel`] and, at startup, [`Coordinator::load`]. Each
//!   request method first runs whatever timers `now` has passed, as if
//!   `handle_timeout(now)` had been called.
//! - **Parking**: JoinGroup and SyncGroup may have to wait for other members.
//!   They answer [`Reply::Later`] with a [`Ticket`]; the response comes out of
//!   [`Coordinator::poll_parked`] after some later input. Every ticket is
//!   answered exactly once, or [`Coordinator::cancel`]led by the driver.
//! - **Outputs**: after every input, drain [`Coordinator::poll_parked`] and
//!   [`Coordinator::poll_persist`] until `None`, then sleep until
//!   [`Coordinator::next_deadline`].
//!
//! The coordinator answers SyncGroup as soon as the leader's assignment
//! arrives; it does not wait for the group's record to reach
//! `__consumer_offsets` (Kafka does). A crash between the two makes the
//! members rejoin after restart (their generation is gone), which clients
//! handle.

mod coordinator;
mod join;
mod member;
mod membership;
mod rebalance;
mod reply;
mod state;
mod views;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_static;

use std::collections::BTreeSet;

use bytes::Bytes;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};

pub use coordinator::Coordinator;
pub(crate) use reply::join_error;

/// The broker settings the coordinator obeys, in Kafka's units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`: a JoinGroup asking for less gets
    /// INVALID_SESSION_TIMEOUT.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: a JoinGroup asking for more gets
    /// INVALID_SESSION_TIMEOUT.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long an empty group's first
    /// rebalance waits for more members (extended while members keep
    /// arriving, up to the rebalance timeout).
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`: members per group (`usize::MAX`: unlimited).
    pub max_group_size: usize,
}

impl Default for GroupConfig {
    /// Kafka's defaults, with no limit on the group size.
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_group_size: usize::MAX,
        }
    }
}

/// Names a parked JoinGroup or SyncGroup until its response is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// A response now, or a ticket for one that [`Coordinator::poll_parked`]
/// will return later.
#[derive(Debug)]
#[must_use]
pub enum Reply<T> {
    /// The response, ready now.
    Now(T),
    /// The request waits for other members; its response comes out of
    /// [`Coordinator::poll_parked`] under this ticket.
    Later(Ticket),
}

/// A parked request's response, now ready.
#[derive(Debug)]
pub enum Parked {
    /// A JoinGroup's response, for the version the request was made with.
    Join(Ticket, JoinGroupResponse),
    /// A SyncGroup's response, for the version the request was made with.
    Sync(Ticket, SyncGroupResponse),
}

impl Parked {
    /// The ticket this response answers.
    pub fn ticket(&self) -> Ticket {
        match self {
            Parked::Join(t, _) | Parked::Sync(t, _) => *t,
        }
    }
}

/// A classic group's state, as Kafka names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members (possibly committed offsets only).
    Empty,
    /// Waiting for the members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Being removed.
    Dead,
}

impl GroupState {
    /// Kafka's name for the state, as ListGroups and DescribeGroups report it.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Which of a group's committed offsets OffsetDelete may remove, as
/// Kafka's `GroupCoordinator.handleDeleteOffsets` decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffsetDeletion {
    /// The coordinator does not know the group (or it is being removed):
    /// GROUP_ID_NOT_FOUND.
    UnknownGroup,
    /// The group has members and is not a consumer group (its protocol
    /// type is not `consumer`), so what its members use cannot be told:
    /// NON_EMPTY_GROUP.
    NonEmpty,
    /// The group has no members: any of its offsets.
    Any,
    /// A consumer group with members subscribed to these topics: the
    /// offsets of other topics may go, those of these get
    /// GROUP_SUBSCRIBED_TO_TOPIC. `None` when the subscriptions cannot be
    /// read (no protocol chosen yet, or metadata not in the consumer
    /// protocol's format): every topic then counts as subscribed, as in
    /// Kafka.
    Subscribed(Option<BTreeSet<String>>),
}

impl OffsetDeletion {
    /// Whether the group's members hold `topic`, so its offsets stay
    /// (false for a group without members).
    pub fn subscribed(&self, topic: &str) -> bool {
        match self {
            OffsetDeletion::Subscribed(Some(topics)) => topics.contains(topic),
            OffsetDeletion::Subscribed(None) => true,
            _ => false,
        }
    }
}

/// A group's state to persist, shaped like Kafka's GroupMetadata value in
/// `__consumer_offsets`.
///
/// The coordinator has no wall clock: the snapshots it emits carry
/// `state_timestamp_ms = -1`. They leave [`Coordinator::poll_persist`]
/// right after the input that changed the group, so the driver may stamp
/// them with its own wall clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// The members' protocol type (`consumer` for consumers); `None` for a
    /// group that never had members.
    pub protocol_type: Option<String>,
    /// The generation.
    pub generation: i32,
    /// The selected protocol (assignor); `None` when empty.
    pub protocol: Option<String>,
    /// The leader's member id; `None` when empty.
    pub leader: Option<String>,
    /// When the group entered its state, Unix ms; -1 when unknown.
    pub state_timestamp_ms: i64,
    /// The members, in the order they joined.
    pub members: Vec<MemberSnapshot>,
}

impl Default for GroupSnapshot {
    /// An empty group at generation 0: what to [`Coordinator::load`] for a
    /// group known only by its committed offsets (Kafka lists such groups).
    fn default() -> Self {
        Self {
            protocol_type: None,
            generation: 0,
            protocol: None,
            leader: None,
            state_timestamp_ms: -1,
            members: Vec::new(),
        }
    }
}

/// One member in a [`GroupSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSnapshot {
    /// The member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client id it joined with.
    pub client_id: String,
    /// The client's host as the driver reported it.
    pub client_host: String,
    /// Its rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Its session timeout.
    pub session_timeout_ms: i32,
    /// Its metadata for the selected protocol (opaque bytes).
    pub subscription: Bytes,
    /// Its assignment from the leader (opaque bytes).
    pub assignment: Bytes,
}
