//! JoinGroup and SyncGroup responses, filled for the request's version:
//! kafka-protocol refuses to encode a non-default field that the version
//! lacks, so version-specific fields are set only where they exist.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::state::Group;

/// Kafka's error codes the coordinator answers with.
pub(super) mod code {
    use kafka_protocol::ResponseError as E;

    pub const NONE: i16 = 0;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = E::CoordinatorNotAvailable.code();
    pub const NOT_COORDINATOR: i16 = E::NotCoordinator.code();
    pub const ILLEGAL_GENERATION: i16 = E::IllegalGeneration.code();
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = E::InconsistentGroupProtocol.code();
    pub const INVALID_GROUP_ID: i16 = E::InvalidGroupId.code();
    pub const UNKNOWN_MEMBER_ID: i16 = E::UnknownMemberId.code();
    pub const INVALID_SESSION_TIMEOUT: i16 = E::InvalidSessionTimeout.code();
    pub const REBALANCE_IN_PROGRESS: i16 = E::RebalanceInProgress.code();
    pub const NON_EMPTY_GROUP: i16 = E::NonEmptyGroup.code();
    pub const GROUP_ID_NOT_FOUND: i16 = E::GroupIdNotFound.code();
    pub const MEMBER_ID_REQUIRED: i16 = E::MemberIdRequired.code();
    pub const GROUP_MAX_SIZE_REACHED: i16 = E::GroupMaxSizeReached.code();
    pub const FENCED_INSTANCE_ID: i16 = E::FencedInstanceId.code();
}

/// A string for a response field.
pub(super) fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

/// A JoinGroup error: no generation, leader or protocol.
pub(crate) fn join_error(version: i16, member_id: &str, error: i16) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = error;
    r.generation_id = -1;
    r.member_id = s(member_id);
    r.leader = StrBytes::new();
    r.protocol_type = None;
    // Nullable from v7; before, Kafka sends an empty string.
    r.protocol_name = if version >= 7 {
        None
    } else {
        Some(StrBytes::new())
    };
    r
}

/// A successful JoinGroup for `member_id` in `group`'s current generation.
/// `leader` is the leader id to report (Kafka reports the old leader to a
/// replaced static member); `with_members` gives the member list (the
/// leader's response); `skip_assignment` is JoinGroup v9's flag.
pub(super) fn join_ok(
    version: i16,
    group: &Group,
    member_id: &str,
    leader: Option<&str>,
    with_members: bool,
    skip_assignment: bool,
) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = code::NONE;
    r.generation_id = group.generation;
    r.member_id = s(member_id);
    r.leader = s(leader.unwrap_or(""));
    if version >= 7 {
        r.protocol_type = group.protocol_type.as_deref().map(s);
        r.protocol_name = group.protocol.as_deref().map(s);
    } else {
        r.protocol_name = Some(s(group.protocol.as_deref().unwrap_or("")));
    }
    if version >= 9 {
        r.skip_assignment = skip_assignment;
    }
    if with_members {
        let protocol = group.protocol.as_deref();
        r.members = group
            .ordered()
            .into_iter()
            .map(|m| {
                let mut jm = JoinGroupResponseMember::default();
                jm.member_id = s(&m.id);
                if version >= 5 {
                    jm.group_instance_id = m.instance_id.as_deref().map(s);
                }
                jm.metadata = m.metadata(protocol);
                jm
            })
            .collect();
    }
    r
}

/// A SyncGroup error: no assignment.
pub(super) fn sync_error(error: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = error;
    r
}

/// A member's assignment; v5 names the protocol type and protocol.
pub(super) fn sync_ok(version: i16, group: &Group, member_id: &str) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = code::NONE;
    if version >= 5 {
        r.protocol_type = group.protocol_type.as_deref().map(s);
        r.protocol_name = group.protocol.as_deref().map(s);
    }
    r.assignment = group
        .get(member_id)
        .map(|m| m.assignment.clone())
        .unwrap_or_default();
    r
}
