//! JoinGroup 0–7, answered by the coordinator now or parked until the
//! rebalance completes.

use kafka_protocol::messages::{ApiKey, JoinGroupRequest};

use super::ApiSpec;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::group::Reply;
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::JoinGroup,
    min: 0,
    max: 7,
    flexible: 6,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    r.string()?; // group_id
    r.skip(4)?; // session_timeout_ms
    if v >= 1 {
        r.skip(4)?; // rebalance_timeout_ms
    }
    r.string()?; // member_id
    if v >= 5 {
        r.string()?; // group_instance_id
    }
    r.string()?; // protocol_type
    r.array(r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.string()?; // name
        r.bytes()?; // metadata
        r.tags()
    })?;
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, origin: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<JoinGroupRequest>(request) else {
        return Answer::Malformed;
    };
    if let Some(code) = cx.not_coordinator(req.group_id.0.as_str()) {
        let resp = crate::group::join_error(request.version, req.member_id.as_str(), code);
        return super::respond(request, &resp);
    }
    let reply = cx.groups.coordinator.join_group(
        cx.now.mono,
        request.version,
        origin.client_id,
        "/127.0.0.1",
        req,
    );
    match reply {
        Reply::Now(resp) => super::respond(request, &resp),
        Reply::Later(ticket) => super::park(cx, request, origin, ticket),
    }
}
