//! ListGroups 0–5 (with a states filter from 4, a group type filter from
//! 5: every group here is "classic"), answered by the coordinator.

use kafka_protocol::messages::{ApiKey, ListGroupsRequest};

use super::ApiSpec;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::ListGroups,
    min: 0,
    max: 5,
    flexible: 3,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    if v >= 4 {
        r.array(r.string_min(), Reader::string)?; // states_filter
    }
    if v >= 5 {
        r.array(r.string_min(), Reader::string)?; // types_filter
    }
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<ListGroupsRequest>(request) else {
        return Answer::Malformed;
    };
    let mut resp = cx.groups.coordinator.list_groups(request.version, &req);
    // In a cluster each broker lists the groups it coordinates, as Kafka's
    // brokers do (admin clients ask every broker).
    resp.groups
        .retain(|g| cx.not_coordinator(g.group_id.0.as_str()).is_none());
    super::respond(request, &resp)
}
