//! Heartbeat 0–4, answered by the coordinator.

use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};

use super::ApiSpec;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::Heartbeat,
    min: 0,
    max: 4,
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
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<HeartbeatRequest>(request) else {
        return Answer::Malformed;
    };
    if let Some(code) = cx.not_coordinator(req.group_id.0.as_str()) {
        return super::respond(request, &HeartbeatResponse::default().with_error_code(code));
    }
    let resp = cx
        .groups
        .coordinator
        .heartbeat(cx.now.mono, request.version, req);
    super::respond(request, &resp)
}
