//! The rebalance protocol's core moves, shared by every request and timer:
//! starting a rebalance, ending the join phase, handing out the leader's
//! assignment, removing members, running a group's due timers, and
//! answering parked requests.
//!
//! Invariant: a parked request taken off a member is always answered (its
//! response may be dropped if the driver cancelled it), so no ticket waits
//! forever.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};

use super::member::{Member, Waiter};
use super::reply::{code, join_error, join_ok, sync_error, sync_ok};
use super::state::{Group, JoinKind, JoinTimer};
use super::{GroupConfig, GroupSnapshot, GroupState, Parked, Ticket};
use crate::time::Instant;

/// How long a member that joined but has not been answered yet may wait
/// before it is dropped (Kafka's `NewMemberJoinTimeoutMs`): its client may
/// have given up, and it cannot heartbeat.
pub(super) const NEW_MEMBER_JOIN_TIMEOUT_MS: i32 = 5 * 60 * 1000;

/// A bound on timer rounds per group per call: each round removes a member
/// or ends a phase, so real groups need few; the bound only guarantees the
/// loop ends whatever the timeouts are.
const TIMER_ROUNDS: usize = 256;

/// What the coordinator hands out besides immediate responses.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    pub ready: VecDeque<Parked>,
    pub persist: VecDeque<(String, Option<GroupSnapshot>)>,
    /// Parked tickets: which group and member hold them.
    pub parked: HashMap<Ticket, (String, String)>,
    next_ticket: u64,
    /// Member ids made so far (part of each id's hash).
    pub ids_made: u64,
}

impl Outbox {
    pub fn issue(&mut self) -> Ticket {
        self.next_ticket += 1;
        Ticket(self.next_ticket)
    }

    /// Takes `ticket`'s response off the ready queue, if it is there: the
    /// request that made it ready gets it at once.
    pub fn take_ready(&mut self, ticket: Ticket) -> Option<Parked> {
        let i = self.ready.iter().rposition(|p| p.ticket() == ticket)?;
        self.ready.remove(i)
    }
}

/// `now + ms`, negative durations counting as zero.
pub(super) fn after(now: Instant, ms: i32) -> Instant {
    now.saturating_add(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// One input's view of the coordinator: the settings, the outbox and the
/// time.
pub(super) struct Ctx<'a> {
    pub cfg: &'a GroupConfig,
    pub out: &'a mut Outbox,
    pub now: Instant,
}

impl Ctx<'_> {
    // --- parked requests ----------------------------------------------

    /// Parks a JoinGroup on a member (answering any it replaces).
    pub fn park_join(&mut self, g: &mut Group, id: &str, w: Waiter) {
        self.register(g, id, w);
        if let Some(old) = g.set_join(id, Some(w)) {
            // The client gave up on the older request and sent this one.
            let resp = join_error(old.version, id, code::REBALANCE_IN_PROGRESS);
            self.answer_join(old, resp);
        }
        self.pause_session(g, id);
    }

    /// Parks a SyncGroup on a member (answering any it replaces).
    pub fn park_sync(&mut self, g: &mut Group, id: &str, w: Waiter) {
        self.register(g, id, w);
        if let Some(old) = g.set_sync(id, Some(w)) {
            self.answer_sync(old, sync_error(code::REBALANCE_IN_PROGRESS));
        }
        self.pause_session(g, id);
    }

    fn register(&mut self, g: &Group, id: &str, w: Waiter) {
        if let Some(t) = w.ticket {
            self.out.parked.insert(t, (g.id.clone(), id.to_string()));
        }
    }

    pub fn answer_join(&mut self, w: Waiter, resp: JoinGroupResponse) {
        if let Some(t) = w.ticket {
            self.out.parked.remove(&t);
            self.out.ready.push_back(Parked::Join(t, resp));
        }
    }

    pub fn answer_sync(&mut self, w: Waiter, resp: SyncGroupResponse) {
        if let Some(t) = w.ticket {
            self.out.parked.remove(&t);
            self.out.ready.push_back(Parked::Sync(t, resp));
        }
    }

    // --- sessions -------------------------------------------------------

    /// The member showed it is alive: its session starts over (unless a
    /// request of its own is parked, which keeps it alive anyway).
    pub fn touch(&mut self, g: &mut Group, id: &str) {
        let Some(m) = g.get(id) else { return };
        let deadline = (!m.session_paused()).then(|| after(self.now, m.session_timeout_ms));
        g.set_deadline(id, deadline);
    }

    fn pause_session(&mut self, g: &mut Group, id: &str) {
        if g.get(id).is_some_and(|m| m.session_paused()) {
            g.set_deadline(id, None);
        }
    }

    // --- membership -----------------------------------------------------

    /// Removes a member, answering its parked requests with
    /// UNKNOWN_MEMBER_ID (it must join again).
    pub fn drop_member(&mut self, g: &mut Group, id: &str) {
        if let Some(m) = g.remove(id) {
            self.answer_removed(m);
        }
    }

    /// Answers the parked requests of a member no longer in its group.
    pub fn answer_removed(&mut self, m: Member) {
        if let Some(w) = m.join {
            self.answer_join(w, join_error(w.version, "", code::UNKNOWN_MEMBER_ID));
        }
        if let Some(w) = m.sync {
            self.answer_sync(w, sync_error(code::UNKNOWN_MEMBER_ID));
        }
    }

    /// Answers the parked requests of a member whose group moved to another
    /// coordinator.
    pub fn answer_moved(&mut self, m: Member) {
        if let Some(w) = m.join {
            self.answer_join(w, join_error(w.version, "", code::NOT_COORDINATOR));
        }
        if let Some(w) = m.sync {
            self.answer_sync(w, sync_error(code::NOT_COORDINATOR));
        }
    }

    /// Kafka's `removeMemberAndUpdateGroup`: a member left or expired.
    pub fn remove_member(&mut self, g: &mut Group, id: &str) {
        if !g.has(id) {
            return;
        }
        self.drop_member(g, id);
        match g.state {
            GroupState::Empty | GroupState::Dead => {}
            GroupState::Stable | GroupState::CompletingRebalance => self.maybe_prepare_rebalance(g),
            GroupState::PreparingRebalance => self.try_complete_join(g),
        }
    }

    pub fn persist(&mut self, g: &Group) {
        self.out
            .persist
            .push_back((g.id.clone(), Some(g.snapshot())));
    }

    // --- the rebalance --------------------------------------------------

    pub fn maybe_prepare_rebalance(&mut self, g: &mut Group) {
        if matches!(
            g.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(g);
        }
    }

    /// Starts a rebalance: members waiting for an assignment are told to
    /// rejoin, and the join phase starts (with the initial delay when the
    /// group was empty).
    pub fn prepare_rebalance(&mut self, g: &mut Group) {
        if g.state == GroupState::CompletingRebalance {
            for id in g.ids() {
                g.set_assignment(&id, Bytes::new());
                if let Some(w) = g.set_sync(&id, None) {
                    self.answer_sync(w, sync_error(code::REBALANCE_IN_PROGRESS));
                    self.touch(g, &id);
                }
            }
        }
        g.pending_sync.clear();
        g.sync_deadline = None;
        let rebalance_ms = g.rebalance_timeout_ms();
        g.join_timer = Some(if g.state == GroupState::Empty {
            let delay = self.cfg.initial_rebalance_delay_ms.max(0);
            JoinTimer {
                deadline: after(self.now, delay),
                kind: JoinKind::Initial {
                    remaining_ms: rebalance_ms.saturating_sub(delay).max(0),
                },
            }
        } else {
            self.plain_join_timer(rebalance_ms)
        });
        g.state = GroupState::PreparingRebalance;
        self.try_complete_join(g);
    }

    fn plain_join_timer(&self, rebalance_ms: i32) -> JoinTimer {
        // At least 1 ms: a zero timeout would fire again at the same instant.
        JoinTimer {
            deadline: after(self.now, rebalance_ms.max(1)),
            kind: JoinKind::Plain,
        }
    }

    /// Ends the join phase early once everyone rejoined (never during the
    /// initial delay).
    pub fn try_complete_join(&mut self, g: &mut Group) {
        let plain = matches!(
            g.join_timer,
            Some(JoinTimer {
                kind: JoinKind::Plain,
                ..
            })
        );
        if g.state == GroupState::PreparingRebalance && plain && g.all_joined() {
            self.complete_join(g);
        }
    }

    /// Kafka's `onCompleteJoin`: dynamic members that did not rejoin are
    /// removed, a leader is chosen among those that did, the generation
    /// advances and every joined member gets its JoinGroup response (the
    /// leader's lists the members).
    pub fn complete_join(&mut self, g: &mut Group) {
        g.join_timer = None;
        g.new_member_added = false;
        for id in g.not_rejoined_dynamic() {
            self.drop_member(g, &id);
        }
        if g.state == GroupState::Dead {
            return;
        }
        if !g.elect_joined_leader() && !g.is_empty() {
            // Only static members remain and none rejoined: wait another
            // round for them to rejoin or expire.
            g.join_timer = Some(self.plain_join_timer(g.rebalance_timeout_ms()));
            return;
        }
        g.generation = g.generation.checked_add(1).unwrap_or(1);
        if g.is_empty() {
            g.protocol = None;
            g.state = GroupState::Empty;
            self.persist(g);
            return;
        }
        g.protocol = g.select_protocol();
        g.state = GroupState::CompletingRebalance;
        let leader = g.leader.clone();
        for id in g.ids() {
            let waiter = g.set_join(&id, None);
            g.set_new(&id, false);
            if let Some(w) = waiter {
                let is_leader = g.is_leader(&id);
                let resp = join_ok(w.version, g, &id, leader.as_deref(), is_leader, false);
                self.answer_join(w, resp);
            }
            self.touch(g, &id);
            g.pending_sync.insert(id);
        }
        g.sync_deadline = Some(after(self.now, g.rebalance_timeout_ms().max(1)));
    }

    /// The leader's SyncGroup: every member gets its assignment (none for
    /// members the leader left out), the group is Stable and persisted.
    pub fn complete_sync(&mut self, g: &mut Group, mut assignments: HashMap<String, Bytes>) {
        for id in g.ids() {
            let a = assignments.remove(&id).unwrap_or_default();
            g.set_assignment(&id, a);
        }
        g.state = GroupState::Stable;
        self.persist(g);
        for id in g.ids() {
            if let Some(w) = g.set_sync(&id, None) {
                let resp = sync_ok(w.version, g, &id);
                self.answer_sync(w, resp);
                self.touch(g, &id);
            }
        }
    }

    /// A member sent SyncGroup for this generation.
    pub fn synced(&mut self, g: &mut Group, id: &str) {
        g.pending_sync.remove(id);
        if g.pending_sync.is_empty() {
            g.sync_deadline = None;
        }
    }

    /// Kafka's `onExpirePendingSync`: members that never sent SyncGroup
    /// after the join phase are removed and the group rebalances.
    fn expire_sync(&mut self, g: &mut Group) {
        g.sync_deadline = None;
        let late: HashSet<String> = std::mem::take(&mut g.pending_sync);
        if late.is_empty()
            || !matches!(
                g.state,
                GroupState::CompletingRebalance | GroupState::Stable
            )
        {
            return;
        }
        for id in g.ids() {
            if late.contains(&id) {
                self.drop_member(g, &id);
            }
        }
        self.prepare_rebalance(g);
    }

    // --- timers -----------------------------------------------------------

    /// Runs everything in `g` that is due at `now`: session expiries,
    /// lapsed pending ids, the end of the join phase, the sync deadline.
    pub fn fire(&mut self, g: &mut Group) {
        for _ in 0..TIMER_ROUNDS {
            if let Some((id, is_member)) = g.take_due_session(self.now) {
                if is_member {
                    tracing::debug!(group = %g.id, member = %id, "session expired");
                    self.remove_member(g, &id);
                } else {
                    self.try_complete_join(g);
                }
                continue;
            }
            if let Some(t) = g.join_timer.filter(|t| t.deadline <= self.now) {
                match t.kind {
                    JoinKind::Initial { remaining_ms }
                        if g.new_member_added && remaining_ms > 0 =>
                    {
                        // Members are still arriving: wait a little longer.
                        g.new_member_added = false;
                        let delay = self.cfg.initial_rebalance_delay_ms.clamp(0, remaining_ms);
                        g.join_timer = Some(JoinTimer {
                            deadline: after(self.now, delay),
                            kind: JoinKind::Initial {
                                remaining_ms: remaining_ms - delay,
                            },
                        });
                    }
                    _ => self.complete_join(g),
                }
                continue;
            }
            if g.sync_deadline.is_some_and(|d| d <= self.now) {
                self.expire_sync(g);
                continue;
            }
            return;
        }
    }
}
