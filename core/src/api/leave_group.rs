//! LeaveGroup 0–4 (batch leave from 3), answered by the coordinator.

use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};

use super::ApiSpec;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::LeaveGroup,
    min: 0,
    max: 4,
    flexible: 4,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    r.string()?; // group_id
    if v <= 2 {
        r.string()?; // member_id
    } else {
        // members: member_id, group_instance_id
        r.array(2 * r.string_min() + r.tags_min(), |r| {
            r.string()?;
            r.string()?;
            r.tags()
        })?;
    }
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<LeaveGroupRequest>(request) else {
        return Answer::Malformed;
    };
    if let Some(code) = cx.not_coordinator(req.group_id.0.as_str()) {
        return super::respond(
            request,
            &LeaveGroupResponse::default().with_error_code(code),
        );
    }
    let resp = cx
        .groups
        .coordinator
        .leave_group(cx.now.mono, request.version, req);
    super::respond(request, &resp)
}
