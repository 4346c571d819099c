//! [`Coordinator`]: every group on this broker, the deadline index across
//! them, and the public API. The protocol's moves live beside this file:
//! `join` (JoinGroup), `membership` (SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit's check), `views` (ListGroups, DescribeGroups, DeleteGroups,
//! OffsetDelete's check, load), `rebalance` (what they share).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};

use super::member::Waiter;
use super::rebalance::{Ctx, Outbox};
use super::state::Group;
use super::{GroupConfig, GroupSnapshot, GroupState, OffsetDeletion, Parked, Reply, Ticket};
use crate::time::Instant;

/// The classic group coordinator for every group on this broker: a pure
/// state machine (see the module docs for the contract).
///
/// - Requests: [`join_group`](Self::join_group),
///   [`sync_group`](Self::sync_group), [`heartbeat`](Self::heartbeat),
///   [`leave_group`](Self::leave_group), [`list_groups`](Self::list_groups),
///   [`describe_groups`](Self::describe_groups),
///   [`delete_groups`](Self::delete_groups),
///   [`validate_commit`](Self::validate_commit),
///   [`offset_deletion`](Self::offset_deletion).
/// - Other inputs: [`handle_timeout`](Self::handle_timeout),
///   [`cancel`](Self::cancel), [`load`](Self::load),
///   [`remove_empty_group`](Self::remove_empty_group).
/// - Outputs, drained after every input: [`poll_parked`](Self::poll_parked),
///   [`poll_persist`](Self::poll_persist); then
///   [`next_deadline`](Self::next_deadline).
#[derive(Debug)]
pub struct Coordinator {
    pub(super) config: GroupConfig,
    /// By name, so ListGroups answers in a stable order.
    pub(super) groups: BTreeMap<String, Group>,
    /// Each group's next deadline, filed under it (see `Group::indexed`).
    timers: BTreeSet<(Instant, String)>,
    pub(super) out: Outbox,
}

impl Coordinator {
    /// The groups and a context over the rest of the coordinator, borrowed
    /// apart so a handler can change a group and record what it emits.
    pub(super) fn split(&mut self, now: Instant) -> (&mut BTreeMap<String, Group>, Ctx<'_>) {
        let Self {
            config,
            groups,
            out,
            ..
        } = self;
        let cx = Ctx {
            cfg: config,
            out,
            now,
        };
        (groups, cx)
    }

    /// A coordinator with no groups.
    pub fn new(config: GroupConfig) -> Self {
        Self {
            config,
            groups: BTreeMap::new(),
            timers: BTreeSet::new(),
            out: Outbox::default(),
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// JoinGroup (v0–9). Answered now (errors, a follower rejoining a stable
    /// group, the request that completes a rebalance) or parked until the
    /// rebalance's join phase ends.
    pub fn join_group(
        &mut self,
        now: Instant,
        version: i16,
        client_id: &str,
        client_host: &str,
        req: JoinGroupRequest,
    ) -> Reply<JoinGroupResponse> {
        self.handle_timeout(now);
        let ticket = self.out.issue();
        let group = req.group_id.to_string();
        let waiter = Waiter {
            ticket: Some(ticket),
            version,
        };
        self.join(now, waiter, client_id, client_host, req);
        self.settle(now, &group);
        match self.out.take_ready(ticket) {
            Some(Parked::Join(_, resp)) => Reply::Now(resp),
            Some(other) => {
                // A ticket names one request of one kind; keep it anyway.
                self.out.ready.push_back(other);
                Reply::Later(ticket)
            }
            None => Reply::Later(ticket),
        }
    }

    /// SyncGroup (v0–5). The leader's request and any request in a stable
    /// group are answered now; a follower's waits for the leader's.
    pub fn sync_group(
        &mut self,
        now: Instant,
        version: i16,
        req: SyncGroupRequest,
    ) -> Reply<SyncGroupResponse> {
        self.handle_timeout(now);
        let ticket = self.out.issue();
        let group = req.group_id.to_string();
        let waiter = Waiter {
            ticket: Some(ticket),
            version,
        };
        self.sync(now, waiter, req);
        self.settle(now, &group);
        match self.out.take_ready(ticket) {
            Some(Parked::Sync(_, resp)) => Reply::Now(resp),
            Some(other) => {
                self.out.ready.push_back(other);
                Reply::Later(ticket)
            }
            None => Reply::Later(ticket),
        }
    }

    /// Heartbeat (v0–4).
    pub fn heartbeat(
        &mut self,
        now: Instant,
        version: i16,
        req: HeartbeatRequest,
    ) -> HeartbeatResponse {
        self.handle_timeout(now);
        let group = req.group_id.to_string();
        let error = self.beat(now, version, &req);
        self.settle(now, &group);
        let mut resp = HeartbeatResponse::default();
        resp.error_code = error;
        resp
    }

    /// LeaveGroup (v0–5; a batch of members from v3).
    pub fn leave_group(
        &mut self,
        now: Instant,
        version: i16,
        req: LeaveGroupRequest,
    ) -> LeaveGroupResponse {
        self.handle_timeout(now);
        let group = req.group_id.to_string();
        let resp = self.leave(now, version, req);
        self.settle(now, &group);
        resp
    }

    /// ListGroups (v0–5; state filter from v4, type filter from v5).
    pub fn list_groups(&self, version: i16, req: &ListGroupsRequest) -> ListGroupsResponse {
        self.list(version, req)
    }

    /// DescribeGroups (v0–6).
    pub fn describe_groups(
        &self,
        version: i16,
        req: &DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        self.describe(version, req)
    }

    /// DeleteGroups (v0–2). `has_offsets(group)` says whether the group has
    /// committed offsets (the driver stores those): a group known only by
    /// its offsets is deletable. A group with members gets NON_EMPTY_GROUP,
    /// an unknown one GROUP_ID_NOT_FOUND. Returns the groups deleted, whose
    /// offsets the driver drops; each also leaves a tombstone in
    /// [`poll_persist`](Self::poll_persist).
    pub fn delete_groups(
        &mut self,
        version: i16,
        req: &DeleteGroupsRequest,
        has_offsets: impl Fn(&str) -> bool,
    ) -> (DeleteGroupsResponse, Vec<String>) {
        self.delete(version, req, has_offsets)
    }

    /// OffsetCommit's membership check, as Kafka's `validateOffsetCommit`:
    /// a negative generation from a non-member commits freely while the
    /// group is empty or unknown (an unknown group is then created, empty,
    /// as Kafka does); otherwise the member and generation must be current
    /// (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION), and a
    /// group awaiting its assignment answers REBALANCE_IN_PROGRESS. Returns
    /// the error code, 0 when the commit may go ahead; a member's session
    /// starts over as with a heartbeat.
    pub fn validate_commit(
        &mut self,
        now: Instant,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> i16 {
        self.handle_timeout(now);
        let error = self.check_commit(now, group_id, generation_id, member_id, group_instance_id);
        self.settle(now, group_id);
        error
    }

    /// OffsetDelete's check, as Kafka's `handleDeleteOffsets`: which of
    /// `group`'s offsets may go. The driver stores the offsets and writes
    /// their tombstones; nothing here changes.
    pub fn offset_deletion(&self, group: &str) -> OffsetDeletion {
        self.offset_deletion_of(group)
    }

    /// Time passed: session expiries, rebalance and sync timeouts, the end
    /// of initial rebalance delays. A spurious call is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<String> = self
            .timers
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, group)| group.clone())
            .collect();
        for id in due {
            if let Some(g) = self.groups.get_mut(&id) {
                let mut cx = Ctx {
                    cfg: &self.config,
                    out: &mut self.out,
                    now,
                };
                cx.fire(g);
            }
            self.reindex(&id);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(deadline, _)| *deadline)
    }

    /// The next parked JoinGroup/SyncGroup response that became ready, in
    /// the order they became ready (members of one group in join order).
    /// Drain until `None` after every input.
    pub fn poll_parked(&mut self) -> Option<Parked> {
        self.out.ready.pop_front()
    }

    /// Forget a parked request whose connection closed: its response will
    /// not come out of [`poll_parked`](Self::poll_parked). The member stays
    /// (and counts as having joined or synced) until its session expires,
    /// as in Kafka.
    pub fn cancel(&mut self, ticket: Ticket) {
        if let Some((group, member)) = self.out.parked.remove(&ticket)
            && let Some(g) = self.groups.get_mut(&group)
        {
            g.forget_ticket(&member, ticket);
        }
        self.out.ready.retain(|p| p.ticket() != ticket);
    }

    /// The next group state to write to `__consumer_offsets` (Kafka's
    /// GroupMetadata record): after a rebalance completes (the leader's
    /// assignment arrived), when a group becomes empty, when a static member
    /// is replaced, and `None` (a tombstone) when a group is deleted. Drain
    /// until `None`.
    pub fn poll_persist(&mut self) -> Option<(String, Option<GroupSnapshot>)> {
        self.out.persist.pop_front()
    }

    /// Startup: restore a group from its last persisted snapshot (replacing
    /// any group of that name). Members come back with their assignments
    /// and their sessions start counting from `now`; the group is Stable, or
    /// Empty without members. Load `GroupSnapshot::default()` for a group
    /// known only by its committed offsets.
    pub fn load(&mut self, now: Instant, group: String, snapshot: GroupSnapshot) {
        self.restore(now, group.clone(), snapshot);
        self.reindex(&group);
    }

    /// Removes `group` if it is Empty (for example once its offsets expired)
    /// and emits its tombstone. Returns whether it was removed.
    pub fn remove_empty_group(&mut self, group: &str) -> bool {
        if self.group_state(group) != Some(GroupState::Empty) {
            return false;
        }
        self.drop_group(group);
        self.out.persist.push_back((group.to_string(), None));
        true
    }

    /// Another broker coordinates `group` now (a cluster moved the
    /// leadership of its `__consumer_offsets` partition): it is forgotten
    /// here, without a tombstone, and its parked JoinGroup and SyncGroup
    /// requests are answered NOT_COORDINATOR so their members find the new
    /// coordinator, as Kafka's `removeGroupsForPartition` does.
    pub fn unload(&mut self, group: &str) {
        let Some(mut g) = self.groups.remove(group) else {
            return;
        };
        if let Some(at) = g.indexed.take() {
            self.timers.remove(&(at, g.id.clone()));
        }
        let mut cx = Ctx {
            cfg: &self.config,
            out: &mut self.out,
            now: Instant::default(),
        };
        for id in g.ids() {
            if let Some(m) = g.remove(&id) {
                cx.answer_moved(m);
            }
        }
        self.out.persist.retain(|(name, _)| name != group);
    }

    /// The groups it holds, by name.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// A group's state; `None` if the coordinator does not know it.
    pub fn group_state(&self, group: &str) -> Option<GroupState> {
        self.groups.get(group).map(|g| g.state)
    }

    /// After an input touched `group`: run what is due at `now` and refile
    /// the group's deadline.
    fn settle(&mut self, now: Instant, group: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            let mut cx = Ctx {
                cfg: &self.config,
                out: &mut self.out,
                now,
            };
            cx.fire(g);
        }
        self.reindex(group);
    }

    /// Files `group` under its current next deadline.
    fn reindex(&mut self, group: &str) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let next = g.next_deadline();
        if next == g.indexed {
            return;
        }
        if let Some(old) = g.indexed.take() {
            self.timers.remove(&(old, g.id.clone()));
        }
        if let Some(at) = next {
            self.timers.insert((at, g.id.clone()));
        }
        g.indexed = next;
    }

    /// Removes a group and its deadline; its parked requests (there should
    /// be none) are answered as if their members were removed.
    pub(super) fn drop_group(&mut self, group: &str) {
        let Some(mut g) = self.groups.remove(group) else {
            return;
        };
        if let Some(at) = g.indexed.take() {
            self.timers.remove(&(at, g.id.clone()));
        }
        let mut cx = Ctx {
            cfg: &self.config,
            out: &mut self.out,
            now: Instant::default(),
        };
        for id in g.ids() {
            cx.drop_member(&mut g, &id);
        }
    }
}
