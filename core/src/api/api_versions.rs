//! ApiVersions 0–3: the versions of every API in [`super::APIS`]. Always
//! answered with response header v0, and a version this broker does not
//! know gets a v0 answer with UNSUPPORTED_VERSION (KAFKA-NOTES).

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::api_versions_response::ApiVersion;

use super::{APIS, ApiSpec};
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{self, Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::ApiVersions,
    min: 0,
    max: 3,
    flexible: 3,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    if v >= 3 {
        r.string()?; // client_software_name
        r.string()?; // client_software_version
        r.tags()?;
    }
    Some(())
}

fn api_keys() -> Vec<ApiVersion> {
    APIS.iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min)
                .with_max_version(a.max)
        })
        .collect()
}

fn handle(_: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    // The body (client software name and version at v3) is informational;
    // a body that does not decode is still a client worth answering.
    let response = ApiVersionsResponse::default().with_api_keys(api_keys());
    super::respond(request, &response)
}

/// The answer to an ApiVersions version this broker does not know: a v0
/// response with UNSUPPORTED_VERSION and the supported keys, so the client
/// retries with one it and the broker share.
pub(crate) fn unsupported(correlation_id: i32) -> Bytes {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    protocol::encode_response(ApiKey::ApiVersions, 0, correlation_id, &response)
}
