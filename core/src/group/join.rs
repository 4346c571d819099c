//! JoinGroup, as Kafka's `GroupCoordinator.handleJoinGroup`: new members
//! (dynamic, with the MEMBER_ID_REQUIRED round trip from v4, or static),
//! known members rejoining, and static members whose instance restarted.

use bytes::Bytes;
use kafka_protocol::messages::JoinGroupRequest;

use super::coordinator::Coordinator;
use super::member::{Member, Waiter, member_id};
use super::membership::validate_member;
use super::rebalance::{Ctx, NEW_MEMBER_JOIN_TIMEOUT_MS, after};
use super::reply::{code, join_error, join_ok};
use super::state::Group;
use super::{GroupConfig, GroupState};
use crate::time::Instant;

/// A JoinGroup, read for its version.
struct Join<'a> {
    waiter: Waiter,
    member_id: &'a str,
    instance_id: Option<&'a str>,
    client_id: &'a str,
    client_host: &'a str,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    protocol_type: &'a str,
    protocols: Vec<(String, Bytes)>,
    /// v4+: a new dynamic member gets its id with MEMBER_ID_REQUIRED first.
    require_known_id: bool,
    /// v9+: a static leader may be told to skip the assignment.
    skip_assignment_ok: bool,
}

impl Join<'_> {
    fn version(&self) -> i16 {
        self.waiter.version
    }

    fn error(&self, member_id: &str, error: i16) -> kafka_protocol::messages::JoinGroupResponse {
        join_error(self.version(), member_id, error)
    }
}

impl Coordinator {
    pub(super) fn join(
        &mut self,
        now: Instant,
        waiter: Waiter,
        client_id: &str,
        client_host: &str,
        req: JoinGroupRequest,
    ) {
        let version = waiter.version;
        let (groups, mut cx) = self.split(now);
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();
        if group_id.is_empty() {
            let resp = join_error(version, member_id, code::INVALID_GROUP_ID);
            return cx.answer_join(waiter, resp);
        }
        let session = req.session_timeout_ms;
        if session < cx.cfg.min_session_timeout_ms || session > cx.cfg.max_session_timeout_ms {
            let resp = join_error(version, member_id, code::INVALID_SESSION_TIMEOUT);
            return cx.answer_join(waiter, resp);
        }
        let j = Join {
            waiter,
            member_id,
            instance_id: if version >= 5 {
                req.group_instance_id.as_deref()
            } else {
                None
            },
            client_id,
            client_host,
            // v0 has no rebalance timeout: Kafka uses the session timeout.
            rebalance_timeout_ms: if version == 0 {
                session
            } else {
                req.rebalance_timeout_ms
            },
            session_timeout_ms: session,
            protocol_type: req.protocol_type.as_str(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_id: version >= 4,
            skip_assignment_ok: version >= 9,
        };
        let unknown = member_id.is_empty();
        let created = !groups.contains_key(group_id);
        if created {
            if !unknown {
                // A member id for a group that does not exist.
                return cx.answer_join(waiter, j.error(member_id, code::UNKNOWN_MEMBER_ID));
            }
            groups.insert(group_id.to_string(), Group::new(group_id.to_string()));
        }
        let Some(g) = groups.get_mut(group_id) else {
            return;
        };
        if !accepts(cx.cfg, g, member_id) {
            cx.remove_member(g, member_id);
            cx.answer_join(waiter, j.error("", code::GROUP_MAX_SIZE_REACHED));
        } else if unknown {
            new_member_join(&mut cx, g, j);
        } else {
            known_member_join(&mut cx, g, j);
        }
        if g.state == GroupState::PreparingRebalance {
            cx.try_complete_join(g);
        }
        if created && g.state == GroupState::Empty && g.is_empty() && !g.has_pending() {
            // Nobody made it in: do not leave an empty group behind.
            groups.remove(group_id);
        }
    }
}

/// Kafka's `acceptJoiningMember`: `group.max.size`, counting members that
/// rejoined while preparing a rebalance (so the last to rejoin of an
/// oversized group are shed).
fn accepts(cfg: &GroupConfig, g: &Group, member_id: &str) -> bool {
    match g.state {
        GroupState::Empty | GroupState::Dead => true,
        GroupState::PreparingRebalance => {
            g.get(member_id).is_some_and(|m| m.join.is_some())
                || g.awaiting_join() < cfg.max_group_size
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            g.has(member_id) || g.len() < cfg.max_group_size
        }
    }
}

/// A member id no member or pending member of `g` has.
fn fresh_id(cx: &mut Ctx<'_>, g: &Group, prefix: &str) -> String {
    let mut id = String::new();
    for _ in 0..8 {
        cx.out.ids_made += 1;
        id = member_id(prefix, &g.id, cx.now, cx.out.ids_made);
        if !g.id_taken(&id) {
            break;
        }
    }
    id
}

/// A JoinGroup without a member id.
fn new_member_join(cx: &mut Ctx<'_>, g: &mut Group, j: Join<'_>) {
    if g.state == GroupState::Dead {
        return cx.answer_join(j.waiter, j.error("", code::COORDINATOR_NOT_AVAILABLE));
    }
    if !g.supports(j.protocol_type, &j.protocols) {
        return cx.answer_join(j.waiter, j.error("", code::INCONSISTENT_GROUP_PROTOCOL));
    }
    let new_id = fresh_id(cx, g, j.instance_id.unwrap_or(j.client_id));
    match j.instance_id {
        Some(instance) => match g.static_member(instance) {
            Some(old_id) => {
                let old_id = old_id.to_string();
                replace_static_member(cx, g, &old_id, &new_id, instance, j);
            }
            None => add_member(cx, g, new_id, j),
        },
        None if j.require_known_id => {
            // The client must rejoin with this id: until it does (or its
            // session timeout passes), a rebalance waits for it.
            g.add_pending(new_id.clone(), after(cx.now, j.session_timeout_ms));
            cx.answer_join(j.waiter, j.error(&new_id, code::MEMBER_ID_REQUIRED));
        }
        None => add_member(cx, g, new_id, j),
    }
}

/// A JoinGroup with a member id.
fn known_member_join(cx: &mut Ctx<'_>, g: &mut Group, j: Join<'_>) {
    let id = j.member_id;
    if g.state == GroupState::Dead {
        return cx.answer_join(j.waiter, j.error(id, code::COORDINATOR_NOT_AVAILABLE));
    }
    if !g.supports(j.protocol_type, &j.protocols) {
        return cx.answer_join(j.waiter, j.error(id, code::INCONSISTENT_GROUP_PROTOCOL));
    }
    if g.is_pending(id) {
        // The second half of the MEMBER_ID_REQUIRED round trip. Pending ids
        // are only ever dynamic.
        if j.instance_id.is_some() {
            return cx.answer_join(j.waiter, j.error(id, code::UNKNOWN_MEMBER_ID));
        }
        return add_member(cx, g, id.to_string(), j);
    }
    if let Some(error) = validate_member(g, id, j.instance_id) {
        return cx.answer_join(j.waiter, j.error(id, error));
    }
    let matches = g.get(id).is_some_and(|m| m.matches(&j.protocols));
    match g.state {
        GroupState::PreparingRebalance => update_member(cx, g, j),
        GroupState::CompletingRebalance if matches => {
            // It lost the response to its last JoinGroup: send it again.
            let resp = join_ok(
                j.version(),
                g,
                id,
                g.leader.as_deref(),
                g.is_leader(id),
                false,
            );
            cx.answer_join(j.waiter, resp);
        }
        GroupState::Stable if matches && !g.is_leader(id) => {
            // A follower with nothing new: it may sync right away.
            let resp = join_ok(j.version(), g, id, g.leader.as_deref(), false, false);
            cx.answer_join(j.waiter, resp);
        }
        // New metadata, or the leader asking for a rebalance (its way to
        // react to changes its members' metadata does not show).
        GroupState::CompletingRebalance | GroupState::Stable => update_member(cx, g, j),
        GroupState::Empty | GroupState::Dead => {
            cx.answer_join(j.waiter, j.error(id, code::UNKNOWN_MEMBER_ID));
        }
    }
}

/// Adds a member, parks its JoinGroup and starts a rebalance if none is
/// under way.
fn add_member(cx: &mut Ctx<'_>, g: &mut Group, id: String, j: Join<'_>) {
    let member = Member {
        id: id.clone(),
        instance_id: j.instance_id.map(str::to_string),
        client_id: j.client_id.to_string(),
        client_host: j.client_host.to_string(),
        rebalance_timeout_ms: j.rebalance_timeout_ms,
        session_timeout_ms: j.session_timeout_ms,
        protocols: j.protocols,
        assignment: Bytes::new(),
        join: None,
        sync: None,
        is_new: true,
        seq: 0,
        deadline: None,
    };
    if g.state == GroupState::PreparingRebalance && g.generation == 0 {
        // Lets the initial delay stretch while members keep arriving.
        g.new_member_added = true;
    }
    // It cannot heartbeat until answered; if its client gives up, this
    // bounds how long it lingers.
    let deadline = after(cx.now, NEW_MEMBER_JOIN_TIMEOUT_MS);
    if let Some(old) = g.add(member, j.protocol_type, Some(deadline)) {
        cx.answer_removed(old);
    }
    cx.park_join(g, &id, j.waiter);
    cx.maybe_prepare_rebalance(g);
}

/// A known member rejoins with (possibly) new metadata: park it and
/// rebalance if the group is not already doing so.
fn update_member(cx: &mut Ctx<'_>, g: &mut Group, j: Join<'_>) {
    let id = j.member_id;
    g.update(
        id,
        j.protocols,
        j.rebalance_timeout_ms,
        j.session_timeout_ms,
    );
    cx.park_join(g, id, j.waiter);
    cx.maybe_prepare_rebalance(g);
}

/// Kafka's `updateStaticMemberAndRebalance`: a static member's instance
/// restarted (new JoinGroup, no member id). The new member id takes over
/// the old member's place and assignment; the old id is fenced. A stable
/// group whose selected protocol would not change does not rebalance.
fn replace_static_member(
    cx: &mut Ctx<'_>,
    g: &mut Group,
    old_id: &str,
    new_id: &str,
    instance: &str,
    j: Join<'_>,
) {
    let old_leader = g.leader.clone();
    let (old_join, old_sync) = g.replace_static(instance, old_id, new_id);
    if let Some(w) = old_join {
        cx.answer_join(w, join_error(w.version, old_id, code::FENCED_INSTANCE_ID));
    }
    if let Some(w) = old_sync {
        cx.answer_sync(w, super::reply::sync_error(code::FENCED_INSTANCE_ID));
    }
    g.update(
        new_id,
        j.protocols.clone(),
        j.rebalance_timeout_ms,
        j.session_timeout_ms,
    );
    cx.touch(g, new_id);
    match g.state {
        GroupState::Stable if g.select_protocol() == g.protocol => {
            cx.persist(g);
            let resp = if j.skip_assignment_ok {
                // v9: tell a static leader it leads, but that the group is
                // stable and the assignment must not be redone.
                let leads = g.is_leader(new_id);
                join_ok(j.version(), g, new_id, g.leader.as_deref(), leads, leads)
            } else {
                // Report the old leader id, so a restarted leader does not
                // think it leads and compute an assignment nobody would get.
                join_ok(j.version(), g, new_id, old_leader.as_deref(), false, false)
            };
            cx.answer_join(j.waiter, resp);
        }
        GroupState::CompletingRebalance => {
            // The leader may be assigning to the old id: start over.
            cx.park_join(g, new_id, j.waiter);
            cx.prepare_rebalance(g);
        }
        _ => {
            cx.park_join(g, new_id, j.waiter);
            cx.maybe_prepare_rebalance(g);
        }
    }
}
