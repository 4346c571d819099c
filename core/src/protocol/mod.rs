//! Kafka's wire protocol: framing, request headers, the body guard, and
//! response encoding (the table of supported APIs is [`crate::api`]). Message bodies are decoded and encoded with
//! the `kafka-protocol` crate, except the Fetch response, which [`fetch`]
//! frames by hand around file regions.

pub mod fetch;
pub mod guard;
pub mod produce_v0;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// What cutting a frame off a connection's buffer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole frame (a request, or a peer's response), without its
    /// length prefix.
    Request(Bytes),
    /// More bytes are needed.
    Partial,
    /// The length prefix is negative or above the limit: close the connection.
    Invalid(i32),
}

/// Cut one length-prefixed request frame off the front of `buf` without
/// copying. A request header alone is at least 10 bytes (key, version,
/// correlation id, client id length).
pub fn cut_frame(buf: &mut BytesMut, max_len: u32) -> Frame {
    cut_sized(buf, 10, max_len)
}

/// Cut one length-prefixed response frame (a peer's answer): at least its
/// 4-byte correlation id.
pub fn cut_response(buf: &mut BytesMut, max_len: u32) -> Frame {
    cut_sized(buf, 4, max_len)
}

fn cut_sized(buf: &mut BytesMut, min_len: i32, max_len: u32) -> Frame {
    if buf.len() < 4 {
        return Frame::Partial;
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < min_len || len as u32 > max_len {
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
    fn uvarint() {
        let mut b = Vec::new();
        put_uvarint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
    }
}
