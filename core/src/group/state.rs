//! One group's metadata (Kafka's `GroupMetadata`): members and their
//! protocols, the static-member map, pending member ids, generation, leader,
//! selected protocol, and the group's deadlines.
//!
//! This file keeps the bookkeeping consistent (protocol support counts, the
//! number of members waiting to join, the deadline index); the decisions
//! live in the coordinator.

use std::collections::{BTreeSet, HashMap, HashSet};

use bytes::Bytes;

use super::member::{Member, Waiter, unique_names};
use super::{GroupSnapshot, GroupState, MemberSnapshot};
use crate::time::Instant;

/// The rebalance's join phase ends at `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct JoinTimer {
    pub deadline: Instant,
    pub kind: JoinKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JoinKind {
    /// Kafka's `DelayedJoin`: ends early once every member has rejoined.
    Plain,
    /// Kafka's `InitialDelayedJoin` for a group leaving Empty: never ends
    /// early; extended by `initial_rebalance_delay_ms` while new members
    /// arrive, until `remaining_ms` of the rebalance timeout is used up.
    Initial { remaining_ms: i32 },
}

#[derive(Debug)]
pub(super) struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    members: HashMap<String, Member>,
    /// `group.instance.id` -> member id.
    statics: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined, with
    /// when they lapse.
    pending: HashMap<String, Instant>,
    /// How many members support each protocol name.
    supported: HashMap<String, usize>,
    /// How many members have a parked JoinGroup.
    awaiting_join: usize,
    /// Members of this generation that have not sent SyncGroup yet.
    pub pending_sync: HashSet<String>,
    /// A member joined during generation 0's initial delay.
    pub new_member_added: bool,
    pub join_timer: Option<JoinTimer>,
    /// When members still in `pending_sync` are removed.
    pub sync_deadline: Option<Instant>,
    /// Running member sessions and pending-id lapses, by deadline.
    sessions: BTreeSet<(Instant, String)>,
    next_seq: u64,
    /// The deadline this group is filed under in the coordinator's index.
    pub indexed: Option<Instant>,
}

impl Group {
    pub fn new(id: String) -> Self {
        Self {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: HashMap::new(),
            statics: HashMap::new(),
            pending: HashMap::new(),
            supported: HashMap::new(),
            awaiting_join: 0,
            pending_sync: HashSet::new(),
            new_member_added: false,
            join_timer: None,
            sync_deadline: None,
            sessions: BTreeSet::new(),
            next_seq: 0,
            indexed: None,
        }
    }

    // --- members -------------------------------------------------------

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn has(&self, id: &str) -> bool {
        self.members.contains_key(id)
    }

    pub fn get(&self, id: &str) -> Option<&Member> {
        self.members.get(id)
    }

    pub fn is_leader(&self, id: &str) -> bool {
        self.leader.as_deref() == Some(id)
    }

    /// Member ids in join order.
    pub fn ids(&self) -> Vec<String> {
        let mut m: Vec<&Member> = self.members.values().collect();
        m.sort_by_key(|m| m.seq);
        m.into_iter().map(|m| m.id.clone()).collect()
    }

    /// Members in join order.
    pub fn ordered(&self) -> Vec<&Member> {
        let mut m: Vec<&Member> = self.members.values().collect();
        m.sort_by_key(|m| m.seq);
        m
    }

    /// Adds a member (replacing one with the same id) whose session or join
    /// wait ends at `deadline`. The first member of an empty group sets the
    /// protocol type; a leaderless group gets it as leader. Returns the
    /// member it replaced, whose parked requests the caller answers.
    #[must_use]
    pub fn add(
        &mut self,
        mut member: Member,
        protocol_type: &str,
        deadline: Option<Instant>,
    ) -> Option<Member> {
        let replaced = self.remove(&member.id);
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_string());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        self.remove_pending(&member.id);
        member.seq = self.next_seq;
        self.next_seq += 1;
        for name in member.protocol_names() {
            *self.supported.entry(name.to_string()).or_default() += 1;
        }
        if member.join.is_some() {
            self.awaiting_join += 1;
        }
        if let Some(instance) = &member.instance_id {
            self.statics.insert(instance.clone(), member.id.clone());
        }
        let id = member.id.clone();
        member.deadline = None;
        self.members.insert(id.clone(), member);
        self.set_deadline(&id, deadline);
        replaced
    }

    /// Removes a member and returns it (its waiters still set: the caller
    /// answers them). A removed leader is replaced by the earliest member.
    pub fn remove(&mut self, id: &str) -> Option<Member> {
        let mut member = self.members.remove(id)?;
        for name in member.protocol_names() {
            if let Some(n) = self.supported.get_mut(name) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.supported.remove(name);
                }
            }
        }
        if member.join.is_some() {
            self.awaiting_join = self.awaiting_join.saturating_sub(1);
        }
        if let Some(instance) = &member.instance_id
            && self.statics.get(instance).is_some_and(|m| m == id)
        {
            self.statics.remove(instance);
        }
        if let Some(d) = member.deadline.take() {
            self.sessions.remove(&(d, member.id.clone()));
        }
        self.pending_sync.remove(id);
        if self.is_leader(id) {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.seq)
                .map(|m| m.id.clone());
        }
        Some(member)
    }

    /// New protocols and timeouts for a rejoining member.
    pub fn update(
        &mut self,
        id: &str,
        protocols: Vec<(String, Bytes)>,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i32,
    ) {
        let Some(member) = self.members.get_mut(id) else {
            return;
        };
        for name in unique_names(&member.protocols) {
            if let Some(n) = self.supported.get_mut(name) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.supported.remove(name);
                }
            }
        }
        for name in unique_names(&protocols) {
            *self.supported.entry(name.to_string()).or_default() += 1;
        }
        member.protocols = protocols;
        member.rebalance_timeout_ms = rebalance_timeout_ms;
        member.session_timeout_ms = session_timeout_ms;
    }

    pub fn set_assignment(&mut self, id: &str, assignment: Bytes) {
        if let Some(m) = self.members.get_mut(id) {
            m.assignment = assignment;
        }
    }

    /// Parks a JoinGroup for the member; returns the one it replaces.
    pub fn set_join(&mut self, id: &str, waiter: Option<Waiter>) -> Option<Waiter> {
        let member = self.members.get_mut(id)?;
        let old = std::mem::replace(&mut member.join, waiter);
        match (old.is_some(), waiter.is_some()) {
            (false, true) => self.awaiting_join += 1,
            (true, false) => self.awaiting_join = self.awaiting_join.saturating_sub(1),
            _ => {}
        }
        old
    }

    /// Parks a SyncGroup for the member; returns the one it replaces.
    pub fn set_sync(&mut self, id: &str, waiter: Option<Waiter>) -> Option<Waiter> {
        let member = self.members.get_mut(id)?;
        std::mem::replace(&mut member.sync, waiter)
    }

    /// Forgets the ticket of a parked request whose connection closed; the
    /// member keeps waiting. Returns whether the ticket was found.
    pub fn forget_ticket(&mut self, id: &str, ticket: super::Ticket) -> bool {
        let Some(member) = self.members.get_mut(id) else {
            return false;
        };
        for w in [&mut member.join, &mut member.sync].into_iter().flatten() {
            if w.ticket == Some(ticket) {
                w.ticket = None;
                return true;
            }
        }
        false
    }

    pub fn set_new(&mut self, id: &str, is_new: bool) {
        if let Some(m) = self.members.get_mut(id) {
            m.is_new = is_new;
        }
    }

    /// Starts (or stops, with `None`) the member's session clock.
    pub fn set_deadline(&mut self, id: &str, deadline: Option<Instant>) {
        let Some(member) = self.members.get_mut(id) else {
            return;
        };
        if let Some(old) = member.deadline.take() {
            self.sessions.remove(&(old, member.id.clone()));
        }
        if let Some(d) = deadline {
            self.sessions.insert((d, member.id.clone()));
        }
        member.deadline = deadline;
    }

    /// Moves a static member to a new member id (its instance restarted):
    /// everything else stays. Returns the old id's parked requests, which
    /// the caller fences.
    pub fn replace_static(
        &mut self,
        instance: &str,
        old_id: &str,
        new_id: &str,
    ) -> (Option<Waiter>, Option<Waiter>) {
        let Some(mut member) = self.members.remove(old_id) else {
            return (None, None);
        };
        let waiters = (member.join.take(), member.sync.take());
        if waiters.0.is_some() {
            self.awaiting_join = self.awaiting_join.saturating_sub(1);
        }
        if let Some(d) = member.deadline.take() {
            self.sessions.remove(&(d, old_id.to_string()));
        }
        member.id = new_id.to_string();
        self.members.insert(new_id.to_string(), member);
        self.statics
            .insert(instance.to_string(), new_id.to_string());
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_string());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_string());
        }
        waiters
    }

    pub fn static_member(&self, instance: &str) -> Option<&str> {
        self.statics.get(instance).map(String::as_str)
    }

    // --- pending member ids (MEMBER_ID_REQUIRED) -----------------------

    pub fn is_pending(&self, id: &str) -> bool {
        self.pending.contains_key(id) && !self.members.contains_key(id)
    }

    pub fn add_pending(&mut self, id: String, deadline: Instant) {
        self.sessions.insert((deadline, id.clone()));
        self.pending.insert(id, deadline);
    }

    pub fn remove_pending(&mut self, id: &str) -> bool {
        match self.pending.remove(id) {
            Some(d) => {
                self.sessions.remove(&(d, id.to_string()));
                true
            }
            None => false,
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether `id` is taken by a member or a pending member.
    pub fn id_taken(&self, id: &str) -> bool {
        self.members.contains_key(id) || self.pending.contains_key(id)
    }

    // --- rebalance helpers ----------------------------------------------

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty
    /// protocol type with at least one protocol; otherwise the type must
    /// match and one of the protocols must be supported by every member.
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && unique_names(protocols)
                    .any(|p| self.supported.get(p).copied() == Some(self.members.len()))
        }
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports,
    /// each member votes for the one it prefers most; most votes wins (ties:
    /// the one voted for first, in join order).
    pub fn select_protocol(&self) -> Option<String> {
        let n = self.members.len();
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for member in self.ordered() {
            let choice = member
                .protocol_names()
                .find(|p| self.supported.get(*p).copied() == Some(n));
            if let Some(choice) = choice {
                match votes.iter_mut().find(|(p, _)| *p == choice) {
                    Some((_, v)) => *v += 1,
                    None => votes.push((choice, 1)),
                }
            }
        }
        let best = votes.iter().map(|(_, v)| *v).max()?;
        votes
            .into_iter()
            .find(|(_, v)| *v == best)
            .map(|(p, _)| p.to_string())
    }

    /// The longest rebalance timeout among the members.
    pub fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    pub fn awaiting_join(&self) -> usize {
        self.awaiting_join
    }

    /// Every member has rejoined and no handed-out id is outstanding.
    pub fn all_joined(&self) -> bool {
        self.members.len() == self.awaiting_join && self.pending.is_empty()
    }

    /// Dynamic members that did not rejoin (removed when the join phase ends).
    pub fn not_rejoined_dynamic(&self) -> Vec<String> {
        let mut m: Vec<&Member> = self
            .members
            .values()
            .filter(|m| m.join.is_none() && m.instance_id.is_none())
            .collect();
        m.sort_by_key(|m| m.seq);
        m.into_iter().map(|m| m.id.clone()).collect()
    }

    /// Kafka's `maybeElectNewJoinedLeader`: keep a leader that rejoined,
    /// else promote the earliest member that did. False when the group has
    /// no leader or no member rejoined.
    pub fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.as_deref() else {
            return false;
        };
        if self.members.get(leader).is_some_and(|m| m.join.is_some()) {
            return true;
        }
        let joined = self
            .members
            .values()
            .filter(|m| m.join.is_some())
            .min_by_key(|m| m.seq)
            .map(|m| m.id.clone());
        match joined {
            Some(id) => {
                self.leader = Some(id);
                true
            }
            None => false,
        }
    }

    // --- deadlines --------------------------------------------------------

    /// Takes the earliest session or pending-id deadline if it is due:
    /// `(id, true)` for a member (still in the group, its clock stopped),
    /// `(id, false)` for a pending id (forgotten).
    pub fn take_due_session(&mut self, now: Instant) -> Option<(String, bool)> {
        let (deadline, id) = self.sessions.first().cloned()?;
        if deadline > now {
            return None;
        }
        self.sessions.remove(&(deadline, id.clone()));
        if let Some(m) = self.members.get_mut(&id) {
            m.deadline = None;
            return Some((id, true));
        }
        self.pending.remove(&id);
        Some((id, false))
    }

    /// The group's next deadline of any kind.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.sessions.first().map(|(d, _)| *d),
            self.join_timer.map(|t| t.deadline),
            self.sync_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // --- persistence ------------------------------------------------------

    pub fn snapshot(&self) -> GroupSnapshot {
        let protocol = self.protocol.as_deref();
        GroupSnapshot {
            protocol_type: self.protocol_type.clone(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: -1,
            members: self
                .ordered()
                .into_iter()
                .map(|m| MemberSnapshot {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}
