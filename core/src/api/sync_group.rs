//! SyncGroup 0–5, answered by the coordinator now or parked until the
//! leader's assignment arrives.

use kafka_protocol::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};

use super::ApiSpec;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::group::Reply;
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::SyncGroup,
    min: 0,
    max: 5,
    flexible: 4,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    r.string()?; // group_id
    r.skip(4)?; // generation_id
    r.string()?; // member_id
    if v >= 3 {
        r.string()?; // group_instance_id
    }
    if v >= 5 {
        r.string()?; // protocol_type
        r.string()?; // protocol_name
    }
    r.array(r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.string()?; // member_id
        r.bytes()?; // assignment
        r.tags()
    })?;
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, origin: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<SyncGroupRequest>(request) else {
        return Answer::Malformed;
    };
    if let Some(code) = cx.not_coordinator(req.group_id.0.as_str()) {
        return super::respond(request, &SyncGroupResponse::default().with_error_code(code));
    }
    match cx
        .groups
        .coordinator
        .sync_group(cx.now.mono, request.version, req)
    {
        Reply::Now(resp) => super::respond(request, &resp),
        Reply::Later(ticket) => super::park(cx, request, origin, ticket),
    }
}
