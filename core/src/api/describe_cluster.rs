//! DescribeCluster 0–2: the cluster id, the controller, and the brokers
//! (alone, this one; in a cluster, every registered broker, those the
//! controller fenced only when v2 asks for them). There is no authorizer, so the cluster's authorized
//! operations, when asked for, are every operation Kafka defines on a
//! cluster, as Kafka answers without an authorizer.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiSpec, CLUSTER_ID};
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::DescribeCluster,
    min: 0,
    max: 2,
    flexible: 0,
    walk,
    handle,
};

/// Brokers, the endpoint type this broker answers for (2: controllers).
const BROKERS: i8 = 1;

/// Kafka's operations on a cluster (ALTER, CREATE, CLUSTER_ACTION,
/// DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE), as bits of
/// their codes.
pub(super) const CLUSTER_OPERATIONS: i32 =
    1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    r.skip(1)?; // include_cluster_authorized_operations
    if v >= 1 {
        r.skip(1)?; // endpoint_type
    }
    if v >= 2 {
        r.skip(1)?; // include_fenced_brokers
    }
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<DescribeClusterRequest>(request) else {
        return Answer::Malformed;
    };
    let v = request.version;
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_static_str(CLUSTER_ID))
        .with_controller_id(BrokerId(cx.controller_id()))
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            i32::MIN
        });
    if v >= 1 {
        response.endpoint_type = BROKERS;
        if req.endpoint_type != BROKERS {
            response.error_code = ResponseError::MismatchedEndpointType.code();
            response.error_message = Some(StrBytes::from_static_str(
                "this is a broker endpoint: ask it for brokers (endpoint type 1)",
            ));
            return super::respond(request, &response);
        }
    }
    // Fenced brokers only when asked for (v2), marked as such.
    response.brokers = cx
        .brokers()
        .into_iter()
        .filter(|b| !b.fenced || (v >= 2 && req.include_fenced_brokers))
        .map(|b| {
            let mut d = DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
                .with_rack(None);
            if v >= 2 {
                d.is_fenced = b.fenced;
            }
            d
        })
        .collect();
    super::respond(request, &response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::guard::tests::check_api;

    #[test]
    fn the_guard_walks_every_version() {
        for v in API.min..=API.max {
            let mut req =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
            if v >= 1 {
                req.endpoint_type = BROKERS;
            }
            check_api(ApiKey::DescribeCluster, v, &req);
        }
    }

    #[test]
    fn cluster_operations_are_kafkas_seven() {
        assert_eq!(CLUSTER_OPERATIONS.count_ones(), 7);
        assert_eq!(CLUSTER_OPERATIONS, 8096);
    }
}
