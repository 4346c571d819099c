//! The client side of the wire: requests encoded and responses decoded with
//! the `kafka-protocol` crate (so the broker's encoder is not checking
//! itself), record batches built and parsed, CRCs checked on the way.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One request as bytes on the wire: the length prefix, the header, the body.
pub fn frame<T: Encodable>(key: ApiKey, version: i16, corr: i32, body: &T) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(corr)
        .with_client_id(Some(StrBytes::from_static_str("seeded")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, key.request_header_version(version))
        .expect("a request header always encodes");
    body.encode(&mut buf, version)
        .expect("the simulator builds only requests valid for their version");
    let len = i32::try_from(buf.len() - 4).expect("requests are small");
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

/// Cut one whole response frame (without its length) off `wire`.
pub fn cut_frame(wire: &mut BytesMut) -> Result<Option<Bytes>, String> {
    if wire.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]);
    let len = usize::try_from(len).map_err(|_| format!("response frame length {len}"))?;
    if wire.len() < 4 + len {
        return Ok(None);
    }
    let mut frame = wire.split_to(4 + len).freeze();
    frame.advance(4);
    Ok(Some(frame))
}

/// Whether `buf` starts with a whole request frame (so a broker that left
/// it there was not reading).
pub fn has_whole_frame(buf: &[u8]) -> bool {
    buf.len() >= 4
        && usize::try_from(i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]))
            .is_ok_and(|len| buf.len() >= 4 + len)
}

/// A response's correlation id and body, which must decode exactly.
pub fn decode<T: Decodable>(
    mut frame: Bytes,
    key: ApiKey,
    version: i16,
) -> Result<(i32, T), String> {
    // ApiVersions answers always use header v0; the simulator sends none.
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .map_err(|e| format!("{key:?} v{version}: response header: {e}"))?;
    let body = T::decode(&mut frame, version)
        .map_err(|e| format!("{key:?} v{version}: response body: {e}"))?;
    if !frame.is_empty() {
        return Err(format!(
            "{key:?} v{version}: {} trailing bytes in a response",
            frame.len()
        ));
    }
    Ok((header.correlation_id, body))
}

/// What a record is beyond its id: on a compacted topic, its key from the
/// topic's small key space and whether it is a tombstone (null value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// `None`: a key of its own (`k<rid>`), as on every other topic.
    pub key: Option<u32>,
    pub tombstone: bool,
}

/// The header that names a compacted topic's record: a tombstone has no
/// value to name it, and compaction keeps headers.
const ID_HEADER: &str = "id";

/// The record key and value the simulator writes for record `rid`: the
/// value names the record, and its length varies so batches do too. A
/// shared key is `c<key>`; a tombstone has no value.
pub fn record_content(rid: u64, shape: Shape) -> (Bytes, Option<Bytes>) {
    let fill = (rid.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 57) as usize; // 0..128
    let mut value = format!("r{rid}:");
    value.extend(std::iter::repeat_n(
        char::from(b'a' + (rid % 26) as u8),
        fill,
    ));
    let key = match shape.key {
        Some(k) => format!("c{k}"),
        None => format!("k{rid}"),
    };
    (
        Bytes::from(key),
        (!shape.tombstone).then(|| Bytes::from(value)),
    )
}

/// The record id a value names.
pub fn rid_of(value: &[u8]) -> Option<u64> {
    let rest = value.strip_prefix(b"r")?;
    let end = rest.iter().position(|&b| b == b':')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

fn number(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// One batch (RecordBatch v2) holding records `rids` of these shapes, as a
/// client sends it. Records with a shared key carry their id in a header.
pub fn batch(rids: &[(u64, Shape)], timestamp: i64, compression: Compression) -> Bytes {
    let records: Vec<Record> = rids
        .iter()
        .enumerate()
        .map(|(i, &(rid, shape))| {
            let (key, value) = record_content(rid, shape);
            let mut headers = IndexMap::new();
            if shape.key.is_some() {
                headers.insert(
                    StrBytes::from_static_str(ID_HEADER),
                    Some(Bytes::from(rid.to_string())),
                );
            }
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch whenever offset - sequence
                // changes: this keeps one batch with base sequence -1.
                sequence: i as i32 - 1,
                timestamp,
                key: Some(key),
                value,
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("a small batch always encodes");
    buf.freeze()
}

/// The last offset of every whole batch in `bytes`, in order, from the
/// batch headers alone: a cleaned batch may hold no records at all (its
/// header stays to keep its offsets), and a reader steps over it.
pub fn batch_last_offsets(bytes: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    // baseOffset (8), batchLength (4), then lastOffsetDelta at byte 23.
    while let Some(head) = bytes.get(pos..pos + 27) {
        let base = i64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
        let delta = i32::from_be_bytes(head[23..27].try_into().expect("4 bytes"));
        let Ok(len) = usize::try_from(len) else { break };
        if bytes.len() < pos + 12 + len {
            break;
        }
        if let Ok(last) = u64::try_from(base + i64::from(delta)) {
            out.push(last);
        }
        pos += 12 + len;
    }
    out
}

/// A record read back: its offset, the record it claims to be, and what
/// it holds (checked against what was produced by the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBack {
    pub offset: u64,
    pub rid: u64,
    pub timestamp: i64,
    pub shape: Shape,
}

/// Every record in `bytes` (whole batches), checked: CRC-32C (the decoder
/// verifies it), and key and value exactly what the simulator wrote for
/// the record the value (or, for a tombstone, its id header) names.
pub fn read_records(bytes: &Bytes) -> Result<Vec<ReadBack>, String> {
    let mut buf = bytes.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .map_err(|e| format!("records do not decode: {e}"))?;
    let mut out = Vec::new();
    for set in sets {
        for r in set.records {
            let header = r
                .headers
                .get(ID_HEADER.as_bytes())
                .map(|h| h.as_deref().and_then(number));
            let rid = match (&r.value, header) {
                (_, Some(None)) => return Err("a record id header that is no number".into()),
                (_, Some(Some(rid))) => rid,
                (Some(value), None) => rid_of(value).ok_or_else(|| {
                    format!("a record value the simulator never wrote: {value:?}")
                })?,
                (None, None) => return Err("a tombstone without an id".into()),
            };
            let key = r.key.as_deref().unwrap_or_default();
            let shape = Shape {
                key: match key.strip_prefix(b"c") {
                    Some(k) if header.is_some() => Some(
                        number(k)
                            .and_then(|k| u32::try_from(k).ok())
                            .ok_or_else(|| format!("record {rid} has key {key:?}"))?,
                    ),
                    _ => None,
                },
                tombstone: r.value.is_none(),
            };
            let (expected_key, expected_value) = record_content(rid, shape);
            if key != expected_key || r.value != expected_value {
                return Err(format!(
                    "record {rid} at offset {} has the wrong bytes",
                    r.offset
                ));
            }
            let offset = u64::try_from(r.offset)
                .map_err(|_| format!("record {rid} at negative offset {}", r.offset))?;
            out.push(ReadBack {
                offset,
                rid,
                timestamp: r.timestamp,
                shape,
            });
        }
    }
    Ok(out)
}
