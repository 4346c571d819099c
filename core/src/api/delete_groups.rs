//! DeleteGroups 0–2: the coordinator removes empty groups, and their
//! committed offsets go too (tombstones in `__consumer_offsets`).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
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
    // In a cluster only a group's coordinator deletes it.
    let mut elsewhere = Vec::new();
    let mut req = req;
    req.groups_names
        .retain(|name| match cx.not_coordinator(name.0.as_str()) {
            Some(code) => {
                elsewhere.push(
                    DeletableGroupResult::default()
                        .with_group_id(name.clone())
                        .with_error_code(code),
                );
                false
            }
            None => true,
        });
    let g = &mut *cx.groups;
    let committed = &g.committed;
    let has = |group: &str| committed.get(group).is_some_and(|m| !m.is_empty());
    let (mut resp, deleted) = g.coordinator.delete_groups(request.version, &req, has);
    resp.results.extend(elsewhere);
    for group in deleted {
        groups::drop_offsets(cx, &group);
    }
    super::respond(request, &resp)
}
