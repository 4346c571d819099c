//! DeleteGroups 0–2: the coordinator removes empty groups, and their
//! committed offsets go too (tombstones in `__consumer_offsets`).

use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest};

use super::ApiSpec;
use crate::broker::groups;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::DeleteGroups,
    min: 0,
    max: 2,
    flexible: 2,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, _v: i16) -> Option<()> {
    r.array(r.string_min(), Reader::string)?; // groups_names
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<DeleteGroupsRequest>(request) else {
        return Answer::Malformed;
    };
    let g = &mut *cx.groups;
    let committed = &g.committed;
    let has = |group: &str| committed.get(group).is_some_and(|m| !m.is_empty());
    let (resp, deleted) = g.coordinator.delete_groups(request.version, &req, has);
    for group in deleted {
        groups::drop_offsets(cx, &group);
    }
    super::respond(request, &resp)
}
