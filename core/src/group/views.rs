//! ListGroups, DescribeGroups, DeleteGroups, OffsetDelete's check, and
//! restoring groups from their persisted snapshots.

use std::collections::{BTreeSet, HashSet};

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse,
};

use super::coordinator::Coordinator;
use super::member::Member;
use super::rebalance::{Ctx, after};
use super::reply::{code, s};
use super::state::Group;
use super::{GroupSnapshot, GroupState, OffsetDeletion};
use crate::time::Instant;

/// The ACL operations a group has (READ, DELETE, DESCRIBE as a bit field of
/// Kafka's `AclOperation` codes 3, 6, 8): with no authorizer, all of them.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// Kafka's name for the classic group type (ListGroups v5).
const CLASSIC: &str = "classic";

/// The protocol type of Kafka's consumers (`ConsumerProtocol.PROTOCOL_TYPE`).
const CONSUMER: &str = "consumer";

impl Coordinator {
    pub(super) fn list(&self, version: i16, req: &ListGroupsRequest) -> ListGroupsResponse {
        let states: Vec<String> = if version >= 4 {
            req.states_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        let classic_wanted = version < 5
            || req.types_filter.is_empty()
            || req
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case(CLASSIC));
        let mut resp = ListGroupsResponse::default();
        if !classic_wanted {
            return resp;
        }
        resp.groups = self
            .groups
            .values()
            .filter(|g| states.is_empty() || states.contains(&g.state.as_str().to_lowercase()))
            .map(|g| {
                let mut listed = ListedGroup::default();
                listed.group_id = GroupId(s(&g.id));
                listed.protocol_type = s(g.protocol_type.as_deref().unwrap_or(""));
                if version >= 4 {
                    listed.group_state = s(g.state.as_str());
                }
                if version >= 5 {
                    listed.group_type = s(CLASSIC);
                }
                listed
            })
            .collect();
        resp
    }

    pub(super) fn describe(
        &self,
        version: i16,
        req: &DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        let mut resp = DescribeGroupsResponse::default();
        resp.groups = req
            .groups
            .iter()
            .map(|id| {
                let mut d = DescribedGroup::default();
                d.group_id = id.clone();
                match self.groups.get(id.as_str()) {
                    None => {
                        d.group_state = s(GroupState::Dead.as_str());
                        if version >= 6 {
                            d.error_code = code::GROUP_ID_NOT_FOUND;
                            d.error_message = Some(s(&format!("Group {} not found.", id.as_str())));
                        }
                    }
                    Some(g) => {
                        describe_group(version, g, &mut d);
                        if version >= 3 && req.include_authorized_operations {
                            d.authorized_operations = GROUP_OPERATIONS;
                        }
                    }
                }
                d
            })
            .collect();
        resp
    }

    pub(super) fn delete(
        &mut self,
        _version: i16,
        req: &DeleteGroupsRequest,
        has_offsets: impl Fn(&str) -> bool,
    ) -> (DeleteGroupsResponse, Vec<String>) {
        let mut seen = HashSet::new();
        let mut deleted = Vec::new();
        let mut resp = DeleteGroupsResponse::default();
        for name in &req.groups_names {
            let name = name.as_str();
            if !seen.insert(name) {
                continue;
            }
            let error = match self.groups.get(name).map(|g| g.state) {
                Some(GroupState::Empty) => {
                    self.drop_group(name);
                    code::NONE
                }
                Some(GroupState::Dead) => code::GROUP_ID_NOT_FOUND,
                Some(_) => code::NON_EMPTY_GROUP,
                None if has_offsets(name) => code::NONE,
                None => code::GROUP_ID_NOT_FOUND,
            };
            if error == code::NONE {
                self.out.persist.push_back((name.to_string(), None));
                deleted.push(name.to_string());
            }
            let mut result = DeletableGroupResult::default();
            result.group_id = GroupId(s(name));
            result.error_code = error;
            resp.results.push(result);
        }
        (resp, deleted)
    }

    pub(super) fn offset_deletion_of(&self, group: &str) -> OffsetDeletion {
        let Some(g) = self.groups.get(group) else {
            return OffsetDeletion::UnknownGroup;
        };
        match g.state {
            GroupState::Dead => OffsetDeletion::UnknownGroup,
            GroupState::Empty => OffsetDeletion::Any,
            _ if g.protocol_type.as_deref() == Some(CONSUMER) => {
                OffsetDeletion::Subscribed(subscribed_topics(g))
            }
            _ => OffsetDeletion::NonEmpty,
        }
    }

    pub(super) fn restore(&mut self, now: Instant, name: String, snap: GroupSnapshot) {
        self.drop_group(&name);
        let mut g = Group::new(name.clone());
        let protocol_type = snap.protocol_type.clone().unwrap_or_default();
        for m in snap.members {
            let deadline = after(now, m.session_timeout_ms);
            let member = Member {
                id: m.member_id,
                instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                // Kafka keeps only the selected protocol's metadata.
                protocols: vec![(snap.protocol.clone().unwrap_or_default(), m.subscription)],
                assignment: m.assignment,
                join: None,
                sync: None,
                is_new: false,
                seq: 0,
                deadline: None,
            };
            // A repeated member id: the later entry wins (nothing is parked).
            let _replaced = g.add(member, &protocol_type, Some(deadline));
        }
        g.generation = snap.generation;
        g.protocol_type = snap.protocol_type;
        g.protocol = snap.protocol;
        if let Some(leader) = snap.leader.filter(|l| g.has(l)) {
            g.leader = Some(leader);
        }
        g.state = if g.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        if g.len() > self.config.max_group_size {
            // Over a lowered `group.max.size`: rebalance, shedding the last
            // to rejoin.
            let mut cx = Ctx {
                cfg: &self.config,
                out: &mut self.out,
                now,
            };
            cx.prepare_rebalance(&mut g);
        }
        self.groups.insert(name, g);
    }
}

fn describe_group(version: i16, g: &Group, d: &mut DescribedGroup) {
    d.group_state = s(g.state.as_str());
    d.protocol_type = s(g.protocol_type.as_deref().unwrap_or(""));
    // Kafka shows the protocol and each member's metadata and assignment
    // only when they are settled.
    let stable = g.state == GroupState::Stable;
    if stable {
        d.protocol_data = s(g.protocol.as_deref().unwrap_or(""));
    }
    d.members = g
        .ordered()
        .into_iter()
        .map(|m| {
            let mut dm = DescribedGroupMember::default();
            dm.member_id = s(&m.id);
            if version >= 4 {
                dm.group_instance_id = m.instance_id.as_deref().map(s);
            }
            dm.client_id = s(&m.client_id);
            dm.client_host = s(&m.client_host);
            if stable {
                dm.member_metadata = m.metadata(g.protocol.as_deref());
                dm.member_assignment = m.assignment.clone();
            } else {
                dm.member_metadata = Bytes::new();
                dm.member_assignment = Bytes::new();
            }
            dm
        })
        .collect();
}

/// The topics a consumer group's members subscribe to, read from each
/// member's metadata for the chosen protocol (Kafka's
/// `computeSubscribedTopics`); `None` before a protocol is chosen or when
/// some member's metadata does not read as a consumer subscription.
fn subscribed_topics(g: &Group) -> Option<BTreeSet<String>> {
    let protocol = g.protocol.as_deref()?;
    let mut topics = BTreeSet::new();
    for m in g.ordered() {
        topics.extend(subscription_topics(&m.metadata(Some(protocol)))?);
    }
    Some(topics)
}

/// The topics of a consumer protocol subscription, read as its version 0
/// prefix as Kafka reads it whatever the version: version (i16), topics
/// (i32 count of i16-length strings), user data (i32-length bytes, -1
/// null); later versions only add fields after these. `None` when it does
/// not read (cut short, a negative count or length).
fn subscription_topics(mut b: &[u8]) -> Option<Vec<String>> {
    fn int16(b: &mut &[u8]) -> Option<i16> {
        let (head, rest) = b.split_first_chunk()?;
        *b = rest;
        Some(i16::from_be_bytes(*head))
    }
    fn int32(b: &mut &[u8]) -> Option<i32> {
        let (head, rest) = b.split_first_chunk()?;
        *b = rest;
        Some(i32::from_be_bytes(*head))
    }
    fn skip<'a>(b: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..len)?, b.get(len..)?);
        *b = rest;
        Some(head)
    }
    int16(&mut b)?; // version
    let count = usize::try_from(int32(&mut b)?).ok()?;
    // Each topic takes at least its two-byte length: a count the bytes
    // cannot hold fails before anything is allocated for it.
    if count.checked_mul(2)? > b.len() {
        return None;
    }
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::try_from(int16(&mut b)?).ok()?;
        topics.push(String::from_utf8_lossy(skip(&mut b, len)?).into_owned());
    }
    match int32(&mut b)? {
        -1 => {} // null user data
        len => {
            skip(&mut b, usize::try_from(len).ok()?)?;
        }
    }
    Some(topics)
}
