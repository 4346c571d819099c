//! FindCoordinator 0–4: this broker coordinates every group (it creates
//! `__consumer_offsets` on first use). Transactions are not supported, so a
//! transaction coordinator is never found.

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
    let node = BrokerId(cx.config.node_id);
    let host = StrBytes::from_string(cx.config.advertised_host.clone());
    let port = i32::from(cx.config.advertised_port);
    // Only group coordinators: transactions are not supported.
    let error = if req.key_type != 0 || !groups::ensure_offsets_topic(cx) {
        ResponseError::CoordinatorNotAvailable.code()
    } else {
        0
    };
    let mut resp = FindCoordinatorResponse::default();
    if request.version >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                let mut c = CoordinatorEntry::default()
                    .with_key(key.clone())
                    .with_error_code(error);
                if error == 0 {
                    c.node_id = node;
                    c.host = host.clone();
                    c.port = port;
                } else {
                    c.node_id = BrokerId(-1);
                    c.port = -1;
                }
                c
            })
            .collect();
    } else {
        resp.error_code = error;
        if error == 0 {
            resp.node_id = node;
            resp.host = host;
            resp.port = port;
        } else {
            resp.node_id = BrokerId(-1);
            resp.port = -1;
        }
    }
    super::respond(request, &resp)
}
