//! DescribeGroups 0–5, answered by the coordinator.

use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest};
use kafka_protocol::protocol::StrBytes;

use super::ApiSpec;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::DescribeGroups,
    min: 0,
    max: 5,
    flexible: 5,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    r.array(r.string_min(), Reader::string)?; // groups
    if v >= 3 {
        r.skip(1)?; // include_authorized_operations
    }
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<DescribeGroupsRequest>(request) else {
        return Answer::Malformed;
    };
    let mut resp = cx.groups.coordinator.describe_groups(request.version, &req);
    // In a cluster only a group's coordinator describes it.
    for g in &mut resp.groups {
        if let Some(code) = cx.not_coordinator(g.group_id.0.as_str()) {
            g.error_code = code;
            g.group_state = StrBytes::new();
            g.protocol_type = StrBytes::new();
            g.protocol_data = StrBytes::new();
            g.members.clear();
        }
    }
    super::respond(request, &resp)
}
