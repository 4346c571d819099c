//! Kafka's wire protocol: framing, request headers, the table of supported
//! APIs, and response encoding. Message bodies are decoded and encoded with
//! the `kafka-protocol` crate, except the Fetch response, which [`fetch`]
//! frames by hand around file regions.

pub mod fetch;
pub mod guard;
pub mod produce_v0;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// What cutting a frame off a connection's buffer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole request, without its length prefix.
    Request(Bytes),
    /// More bytes are needed.
    Partial,
    /// The length prefix is negative or above the limit: close the connection.
    Invalid(i32),
}

/// Cut one length-prefixed frame off the front of `buf` without copying.
pub fn cut_frame(buf: &mut BytesMut, max_len: u32) -> Frame {
    if buf.len() < 4 {
        return Frame::Partial;
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    // A request header alone is at least 10 bytes (key, version, correlation
    // id, client id length).
    if len < 10 || len as u32 > max_len {
        return Frame::Invalid(len);
    }
    let len = len as usize;
    if buf.len() < 4 + len {
        // Reserve now so the driver's next read has room for the whole frame.
        buf.reserve(4 + len - buf.len());
        return Frame::Partial;
    }
    let mut frame = buf.split_to(4 + len).freeze();
    frame.advance(4);
    Frame::Request(frame)
}

/// One supported API: its key and version range.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    /// The API.
    pub key: ApiKey,
    /// Lowest version advertised.
    pub min: i16,
    /// Highest version advertised.
    pub max: i16,
}

/// Every API this broker answers, with the versions it advertises.
///
/// Produce is advertised from version 0 because librdkafka turns off
/// compression when the lowest Produce version is above 0; versions 0–2
/// (message format v0/v1) are answered with UNSUPPORTED_VERSION per partition.
/// Fetch stops at 12: from 13 topics are named by id.
pub const APIS: &[Api] = &[
    api(ApiKey::Produce, 0, 9),
    api(ApiKey::Fetch, 4, 12),
    api(ApiKey::ListOffsets, 1, 7),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::ApiVersions, 0, 3),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::FindCoordinator, 0, 4),
    api(ApiKey::JoinGroup, 0, 7),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 4),
    api(ApiKey::OffsetCommit, 2, 8),
    api(ApiKey::OffsetFetch, 1, 8),
    api(ApiKey::ListGroups, 0, 4),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::InitProducerId, 0, 4),
];

const fn api(key: ApiKey, min: i16, max: i16) -> Api {
    Api { key, min, max }
}

/// The advertised range for `key`, if the broker answers it.
pub fn supported(key: ApiKey) -> Option<Api> {
    APIS.iter().copied().find(|a| a.key == key)
}

/// A request's header, decoded, and the body that follows it.
#[derive(Debug)]
pub struct Request {
    /// The API.
    pub key: ApiKey,
    /// Its version.
    pub version: i16,
    /// Echoed in the response.
    pub correlation_id: i32,
    /// The client's name for itself, if it gave one.
    pub client_id: Option<String>,
    /// The body, after the header.
    pub body: Bytes,
}

/// Why a request could not even be routed.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// An API key Kafka does not define or this broker does not answer.
    /// Kafka closes the connection.
    UnknownApi(i16),
    /// A version outside the advertised range. ApiVersions answers with
    /// error 35; anything else closes the connection, as Kafka does.
    UnsupportedVersion {
        /// The API.
        key: ApiKey,
        /// The version asked for.
        version: i16,
        /// Echoed in an ApiVersions error response.
        correlation_id: i32,
    },
    /// The header does not parse.
    Malformed,
}

/// Decode a request frame's header.
pub fn parse_header(mut frame: Bytes) -> Result<Request, HeaderError> {
    if frame.len() < 8 {
        return Err(HeaderError::Malformed);
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let key = ApiKey::try_from(raw_key).map_err(|()| HeaderError::UnknownApi(raw_key))?;
    let api = supported(key).ok_or(HeaderError::UnknownApi(raw_key))?;
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
    Ok(Request {
        key,
        version,
        correlation_id,
        client_id: header.client_id.map(|c| c.as_str().to_owned()),
        body: frame,
    })
}

/// Decode the body of a `key` request, of type `T`, at `version`; `None`
/// when malformed (the broker then closes the connection, as Kafka does).
/// That includes a count or length claiming more than the body holds, which
/// `kafka-protocol` would otherwise try to allocate up front ([`guard`]).
pub fn decode<T: Decodable>(key: ApiKey, body: &Bytes, version: i16) -> Option<T> {
    if !guard::counts_fit(key, version, body) {
        return None;
    }
    let mut buf = body.clone();
    T::decode(&mut buf, version).ok()
}

/// A whole response frame: length, header, body.
pub fn encode_response<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Bytes {
    // ApiVersions always answers with header v0 so a client that sent a
    // version we don't know can still read the error (KAFKA-NOTES).
    let header_version = if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + body.compute_size(version)?));
    let mut buf = BytesMut::with_capacity(4 + size.as_ref().copied().unwrap_or(64));
    buf.put_i32(0);
    let encoded = header
        .encode(&mut buf, header_version)
        .and_then(|()| body.encode(&mut buf, version));
    if let Err(e) = encoded {
        // Only a broker bug (a field out of range for the version) gets
        // here; a frame holding just the header tells the client something
        // broke instead of leaving it waiting.
        tracing::error!(?key, version, error = %e, "response encoding failed");
        buf.truncate(4);
        let _ = header.encode(&mut buf, header_version);
    }
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

/// Append an unsigned varint (Kafka's flexible lengths and counts).
pub fn put_uvarint(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_whole_and_limits_hold() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff, 9][..]);
        match cut_frame(&mut buf, 100) {
            Frame::Request(f) => assert_eq!(f.len(), 10),
            other => panic!("{other:?}"),
        }
        assert_eq!(buf.len(), 1);
        assert_eq!(cut_frame(&mut buf, 100), Frame::Partial);
        let mut big = BytesMut::from(&[0u8, 0, 1, 0][..]);
        assert_eq!(cut_frame(&mut big, 100), Frame::Invalid(256));
        let mut neg = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert_eq!(cut_frame(&mut neg, 100), Frame::Invalid(-1));
    }

    #[test]
    fn header_errors() {
        let unknown = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
        assert_eq!(
            parse_header(unknown).unwrap_err(),
            HeaderError::UnknownApi(0x7f00)
        );
        let bad_version = Bytes::from_static(&[0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff]);
        assert!(matches!(
            parse_header(bad_version),
            Err(HeaderError::UnsupportedVersion {
                version: 99,
                correlation_id: 1,
                ..
            })
        ));
        let ok = parse_header(Bytes::from_static(&[0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff])).unwrap();
        assert_eq!(
            (ok.key, ok.version, ok.correlation_id),
            (ApiKey::ApiVersions, 0, 1)
        );
        assert!(ok.body.is_empty());
    }

    #[test]
    fn uvarint() {
        let mut b = Vec::new();
        put_uvarint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
    }
}
