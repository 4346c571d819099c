//! SyncGroup, Heartbeat, LeaveGroup and OffsetCommit's membership check, as
//! Kafka's `GroupCoordinator` answers them.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest,
};

use super::GroupState;
use super::coordinator::Coordinator;
use super::member::Waiter;
use super::rebalance::Ctx;
use super::reply::{code, s, sync_error, sync_ok};
use super::state::Group;
use crate::time::Instant;

/// Kafka's `validateCurrentMember`: a static member's instance id must map
/// to this member id (else FENCED_INSTANCE_ID: a newer instance took over),
/// and the member must exist.
pub(super) fn validate_member(g: &Group, member_id: &str, instance: Option<&str>) -> Option<i16> {
    if let Some(instance) = instance {
        match g.static_member(instance) {
            Some(current) if current != member_id => return Some(code::FENCED_INSTANCE_ID),
            Some(_) => {}
            None => return Some(code::UNKNOWN_MEMBER_ID),
        }
    }
    (!g.has(member_id)).then_some(code::UNKNOWN_MEMBER_ID)
}

impl Coordinator {
    pub(super) fn sync(&mut self, now: Instant, waiter: Waiter, req: SyncGroupRequest) {
        let version = waiter.version;
        let (groups, mut cx) = self.split(now);
        let group_id = req.group_id.as_str();
        if group_id.is_empty() {
            return cx.answer_sync(waiter, sync_error(code::INVALID_GROUP_ID));
        }
        let Some(g) = groups.get_mut(group_id) else {
            return cx.answer_sync(waiter, sync_error(code::UNKNOWN_MEMBER_ID));
        };
        let id = req.member_id.as_str();
        let instance = if version >= 3 {
            req.group_instance_id.as_deref()
        } else {
            None
        };
        let (protocol_type, protocol) = if version >= 5 {
            (req.protocol_type.as_deref(), req.protocol_name.as_deref())
        } else {
            (None, None)
        };
        let error = if g.state == GroupState::Dead {
            Some(code::COORDINATOR_NOT_AVAILABLE)
        } else {
            validate_member(g, id, instance)
                .or_else(|| (req.generation_id != g.generation).then_some(code::ILLEGAL_GENERATION))
                .or_else(|| {
                    let wrong_type =
                        protocol_type.is_some_and(|p| g.protocol_type.as_deref() != Some(p));
                    let wrong_name = protocol.is_some_and(|p| g.protocol.as_deref() != Some(p));
                    (wrong_type || wrong_name).then_some(code::INCONSISTENT_GROUP_PROTOCOL)
                })
        };
        if let Some(error) = error {
            return cx.answer_sync(waiter, sync_error(error));
        }
        match g.state {
            GroupState::Empty => cx.answer_sync(waiter, sync_error(code::UNKNOWN_MEMBER_ID)),
            GroupState::PreparingRebalance => {
                cx.answer_sync(waiter, sync_error(code::REBALANCE_IN_PROGRESS));
            }
            GroupState::CompletingRebalance => {
                cx.park_sync(g, id, waiter);
                cx.synced(g, id);
                if g.is_leader(id) {
                    // Later entries win, as in Kafka's map; ids that are not
                    // members are ignored.
                    let assignments: HashMap<String, Bytes> = req
                        .assignments
                        .into_iter()
                        .map(|a| (a.member_id.to_string(), a.assignment))
                        .collect();
                    cx.complete_sync(g, assignments);
                }
            }
            GroupState::Stable => {
                cx.synced(g, id);
                cx.answer_sync(waiter, sync_ok(version, g, id));
                cx.touch(g, id);
            }
            GroupState::Dead => cx.answer_sync(waiter, sync_error(code::COORDINATOR_NOT_AVAILABLE)),
        }
    }

    pub(super) fn beat(&mut self, now: Instant, version: i16, req: &HeartbeatRequest) -> i16 {
        let (groups, mut cx) = self.split(now);
        let group_id = req.group_id.as_str();
        if group_id.is_empty() {
            return code::INVALID_GROUP_ID;
        }
        let Some(g) = groups.get_mut(group_id) else {
            return code::UNKNOWN_MEMBER_ID;
        };
        if g.state == GroupState::Dead {
            return code::COORDINATOR_NOT_AVAILABLE;
        }
        let id = req.member_id.as_str();
        let instance = if version >= 3 {
            req.group_instance_id.as_deref()
        } else {
            None
        };
        if let Some(error) = validate_member(g, id, instance) {
            return error;
        }
        if req.generation_id != g.generation {
            return code::ILLEGAL_GENERATION;
        }
        match g.state {
            GroupState::Empty => code::UNKNOWN_MEMBER_ID,
            GroupState::Dead => code::COORDINATOR_NOT_AVAILABLE,
            GroupState::PreparingRebalance => {
                cx.touch(g, id);
                code::REBALANCE_IN_PROGRESS
            }
            // Members may heartbeat between their JoinGroup and SyncGroup
            // responses (Kafka 2.x said REBALANCE_IN_PROGRESS here; 3.x
            // does not).
            GroupState::CompletingRebalance | GroupState::Stable => {
                cx.touch(g, id);
                code::NONE
            }
        }
    }

    pub(super) fn leave(
        &mut self,
        now: Instant,
        version: i16,
        req: LeaveGroupRequest,
    ) -> LeaveGroupResponse {
        let (groups, mut cx) = self.split(now);
        let mut resp = LeaveGroupResponse::default();
        // v0-2 name one member; v3+ a batch, possibly by instance id alone.
        let leaving: Vec<(String, Option<String>)> = if version <= 2 {
            vec![(req.member_id.to_string(), None)]
        } else {
            req.members
                .iter()
                .map(|m| {
                    let instance = m.group_instance_id.as_ref().map(|i| i.to_string());
                    (m.member_id.to_string(), instance)
                })
                .collect()
        };
        let group_id = req.group_id.as_str();
        if group_id.is_empty() {
            resp.error_code = code::INVALID_GROUP_ID;
            return resp;
        }
        let errors: Vec<i16> = match groups.get_mut(group_id) {
            None => vec![code::UNKNOWN_MEMBER_ID; leaving.len()],
            Some(g) if g.state == GroupState::Dead => {
                resp.error_code = code::COORDINATOR_NOT_AVAILABLE;
                return resp;
            }
            Some(g) => leaving
                .iter()
                .map(|(id, instance)| leave_one(&mut cx, g, id, instance.as_deref()))
                .collect(),
        };
        if version >= 3 {
            resp.members = leaving
                .into_iter()
                .zip(&errors)
                .map(|((id, instance), error)| {
                    let mut m = MemberResponse::default();
                    m.member_id = s(&id);
                    m.group_instance_id = instance.as_deref().map(s);
                    m.error_code = *error;
                    m
                })
                .collect();
        } else {
            // Before v3 the member's error is the response's.
            resp.error_code = errors.iter().copied().find(|e| *e != 0).unwrap_or(0);
        }
        resp
    }

    pub(super) fn check_commit(
        &mut self,
        now: Instant,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
    ) -> i16 {
        let (groups, mut cx) = self.split(now);
        let Some(g) = groups.get_mut(group_id) else {
            if generation < 0 {
                // A consumer that assigns partitions itself: Kafka creates
                // the (empty) group to hold its offsets.
                groups.insert(group_id.to_string(), Group::new(group_id.to_string()));
                return code::NONE;
            }
            // Or a member of a generation this coordinator no longer knows.
            return code::ILLEGAL_GENERATION;
        };
        let error = if g.state == GroupState::Dead {
            Some(code::COORDINATOR_NOT_AVAILABLE)
        } else if generation < 0 && g.state == GroupState::Empty {
            None
        } else if generation >= 0 || !member_id.is_empty() || instance.is_some() {
            validate_member(g, member_id, instance)
                .or_else(|| (generation != g.generation).then_some(code::ILLEGAL_GENERATION))
        } else {
            // Only members may commit while the group has some.
            Some(code::UNKNOWN_MEMBER_ID)
        };
        if let Some(error) = error {
            return error;
        }
        match g.state {
            GroupState::Empty => code::NONE,
            GroupState::Stable | GroupState::PreparingRebalance => {
                cx.touch(g, member_id);
                code::NONE
            }
            // It has its generation but not its assignment yet.
            GroupState::CompletingRebalance => code::REBALANCE_IN_PROGRESS,
            GroupState::Dead => code::COORDINATOR_NOT_AVAILABLE,
        }
    }
}

/// One member of a LeaveGroup.
fn leave_one(cx: &mut Ctx<'_>, g: &mut Group, id: &str, instance: Option<&str>) -> i16 {
    if id.is_empty() {
        // An admin removing a static member by its instance id alone.
        let current = instance
            .and_then(|i| g.static_member(i))
            .map(str::to_string);
        return match current {
            Some(current) => {
                cx.remove_member(g, &current);
                code::NONE
            }
            None => code::UNKNOWN_MEMBER_ID,
        };
    }
    if g.is_pending(id) {
        g.remove_pending(id);
        if g.state == GroupState::PreparingRebalance {
            cx.try_complete_join(g);
        }
        return code::NONE;
    }
    if let Some(error) = validate_member(g, id, instance) {
        return error;
    }
    cx.remove_member(g, id);
    code::NONE
}
