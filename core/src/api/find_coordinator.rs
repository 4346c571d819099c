//! FindCoordinator 0–4: a group's coordinator is the leader of its
//! partition of `__consumer_offsets` — alone, this broker, which creates
//! the topic on first use; in a cluster, whichever broker the image names
//! (COORDINATOR_NOT_AVAILABLE until the controller has created the topic).
//! Transactions are not supported, so a transaction coordinator is never
//! found.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::ApiSpec;
use crate::broker::groups;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::FindCoordinator,
    min: 0,
    max: 4,
    flexible: 3,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    if v <= 3 {
        r.string()?; // key
    }
    if v >= 1 {
        r.skip(1)?; // key_type
    }
    if v >= 4 {
        r.array(r.string_min(), Reader::string)?; // coordinator_keys
    }
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<FindCoordinatorRequest>(request) else {
        return Answer::Malformed;
    };
    // Only group coordinators: transactions are not supported.
    let available = req.key_type == 0 && groups::ensure_offsets_topic(cx);
    let find = |key: &str| {
        if available {
            cx.coordinator_of(key)
        } else {
            Err(ResponseError::CoordinatorNotAvailable.code())
        }
    };
    let mut resp = FindCoordinatorResponse::default();
    if request.version >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = CoordinatorEntry::default().with_key(key.clone());
                match find(key.as_str()) {
                    Ok(b) => c
                        .with_node_id(BrokerId(b.id))
                        .with_host(StrBytes::from_string(b.host))
                        .with_port(b.port),
                    Err(code) => c
                        .with_error_code(code)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                }
            })
            .collect();
    } else {
        match find(req.key.as_str()) {
            Ok(b) => {
                resp.node_id = BrokerId(b.id);
                resp.host = StrBytes::from_string(b.host);
                resp.port = b.port;
            }
            Err(code) => {
                resp.error_code = code;
                resp.node_id = BrokerId(-1);
                resp.port = -1;
            }
        }
    }
    super::respond(request, &resp)
}
