//! Every Kafka API the broker answers: one module per API, and one table.
//!
//! A module holds everything about its API: the versions it supports, the
//! first flexible version, the guard walk of its request body (see
//! [`crate::protocol::guard`]), the decode into domain values, the handler
//! and the encode of its answer. It exports one [`ApiSpec`], and [`APIS`]
//! lists them: that row is the only place a version range is written. The
//! ApiVersions answer, header routing and the guard are derived from it.
//!
//! Adding an API is one new file and one row here.
//!
//! A handler gets the broker's parts ([`Ctx`]) and the request's
//! [`Origin`] and returns an [`Answer`]: a frame now, or a wait on one of
//! the conditions in [`crate::broker::wait`].

mod alter_configs;
mod alter_partition;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sync_group;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

pub(crate) use api_versions::unsupported as api_versions_unsupported;

use crate::broker::groups::ParkedSlot;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::group::Ticket;
use crate::protocol::{self, HeaderError, Request, guard::Reader};

/// The cluster id Metadata and DescribeCluster report: a single-node
/// cluster of its own.
pub(crate) const CLUSTER_ID: &str = "conveyor-single-node";

/// A request handler.
pub(crate) type Handler = fn(&mut Ctx<'_>, &Request, Origin<'_>) -> Answer;

/// A guard walk over a request body at a version (see
/// [`crate::protocol::guard`]).
pub(crate) type Walker = fn(&mut Reader<'_>, i16) -> Option<()>;

/// One supported API.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiSpec {
    pub(crate) key: ApiKey,
    /// Lowest version advertised.
    pub(crate) min: i16,
    /// Highest version advertised.
    pub(crate) max: i16,
    /// The first version with compact strings, arrays and tagged fields.
    pub(crate) flexible: i16,
    /// Walks a request body before it is decoded.
    pub(crate) walk: Walker,
    pub(crate) handle: Handler,
}

/// Every API this broker answers.
pub(crate) const APIS: &[ApiSpec] = &[
    produce::API,
    fetch::API,
    list_offsets::API,
    metadata::API,
    api_versions::API,
    create_topics::API,
    delete_topics::API,
    find_coordinator::API,
    join_group::API,
    sync_group::API,
    heartbeat::API,
    leave_group::API,
    offset_commit::API,
    offset_fetch::API,
    list_groups::API,
    describe_groups::API,
    delete_groups::API,
    init_producer_id::API,
    describe_configs::API,
    alter_configs::API,
    alter_configs::INCREMENTAL,
    create_partitions::API,
    describe_cluster::API,
    delete_records::API,
    offset_delete::API,
    describe_producers::API,
    describe_log_dirs::API,
    describe_quorum::API,
    alter_partition::API,
    offset_for_leader_epoch::API,
];

/// The spec of `key`, if the broker answers it.
pub(crate) fn spec(key: ApiKey) -> Option<&'static ApiSpec> {
    APIS.iter().find(|a| a.key == key)
}

/// Decode a request frame's header against the table.
pub(crate) fn route(mut frame: Bytes) -> Result<(Request, &'static ApiSpec), HeaderError> {
    if frame.len() < 8 {
        return Err(HeaderError::Malformed);
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let key = ApiKey::try_from(raw_key).map_err(|()| HeaderError::UnknownApi(raw_key))?;
    let api = spec(key).ok_or(HeaderError::UnknownApi(raw_key))?;
    if version < api.min || version > api.max {
        return Err(HeaderError::UnsupportedVersion {
            key,
            version,
            correlation_id,
        });
    }
    let header_version = key.request_header_version(version);
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|_| HeaderError::Malformed)?;
    let request = Request {
        key,
        version,
        correlation_id,
        client_id: header.client_id.map(|c| c.as_str().to_owned()),
        body: frame,
    };
    Ok((request, api))
}

/// Decode a request's body as `T`; `None` when malformed (the broker then
/// closes the connection, as Kafka does). That includes a count or length
/// claiming more than the body holds, which `kafka-protocol` would
/// otherwise try to allocate up front ([`crate::protocol::guard`]).
pub(crate) fn decode<T: Decodable>(request: &Request) -> Option<T> {
    protocol::decode(request.key, &request.body, request.version)
}

/// The response frame for `request` with `body`.
pub(crate) fn respond<T: Encodable>(request: &Request, body: &T) -> Answer {
    Answer::Frame(protocol::encode_response(
        request.key,
        request.version,
        request.correlation_id,
        body,
    ))
}

/// Park a JoinGroup or SyncGroup on its coordinator ticket: the
/// coordinator's answer fills the request's slot later.
fn park(cx: &mut Ctx<'_>, request: &Request, origin: Origin<'_>, ticket: Ticket) -> Answer {
    let slot = ParkedSlot {
        conn: origin.conn,
        seq: origin.seq,
        key: request.key,
        version: request.version,
        correlation_id: request.correlation_id,
    };
    cx.groups.park(ticket, slot);
    Answer::Parked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_is_listed_once_with_a_sane_range() {
        for (i, a) in APIS.iter().enumerate() {
            assert!(a.min <= a.max, "{:?}", a.key);
            assert!(
                APIS[..i].iter().all(|b| b.key != a.key),
                "{:?} listed twice",
                a.key
            );
        }
    }

    /// The first flexible version in the table agrees with the request
    /// header version kafka-protocol uses (header v2 is flexible).
    #[test]
    fn flexible_versions_agree_with_kafka_protocol() {
        for a in APIS {
            for v in a.min..=a.max {
                let flexible = a.key.request_header_version(v) >= 2;
                assert_eq!(flexible, v >= a.flexible, "{:?} v{v}", a.key);
            }
        }
    }

    #[test]
    fn header_errors() {
        let unknown = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
        assert_eq!(route(unknown).unwrap_err(), HeaderError::UnknownApi(0x7f00));
        let bad_version = Bytes::from_static(&[0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff]);
        assert!(matches!(
            route(bad_version),
            Err(HeaderError::UnsupportedVersion {
                version: 99,
                correlation_id: 1,
                ..
            })
        ));
        let (ok, _) = route(Bytes::from_static(&[0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff])).unwrap();
        assert_eq!(
            (ok.key, ok.version, ok.correlation_id),
            (ApiKey::ApiVersions, 0, 1)
        );
        assert!(ok.body.is_empty());
    }
}
