//! Inside a batch: its records' keys and values, and batches rebuilt from
//! some of its records. Used where the broker must look past the header —
//! a compacted topic's key check, a topic's `compression.type`, the log
//! cleaner — and nowhere on the plain produce and fetch paths.
//!
//! A rebuilt batch keeps its base offset, base timestamp, last offset
//! delta, producer id, epoch, base sequence and leader epoch; its records
//! are copied byte for byte (their deltas are relative to those fields), so
//! offsets and sequences never move. Only the codec, the record count, the
//! max timestamp, the length and the CRC are written anew.

use bytes::{BufMut, Bytes, BytesMut};

use super::batch::{BatchHeader, CRC_START, HEADER_LEN};
use super::codec::{self, Codec, CodecError, Levels};

/// One record, borrowed from an uncompressed batch body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The key; `None` for a keyless record.
    pub key: Option<&'a [u8]>,
    /// Whether the value is null (a tombstone).
    pub tombstone: bool,
    /// The value; `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// How many headers the record has.
    pub header_count: usize,
    /// The headers as stored, after their count (see [`Record::headers`]).
    headers_raw: &'a [u8],
    /// The whole record as stored, length prefix included.
    pub raw: &'a [u8],
}

impl<'a> Record<'a> {
    /// The record's headers, key and value (`None`: a null value), in
    /// order; they were checked when the record was parsed.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + use<'a> {
        let mut rest = self.headers_raw;
        (0..self.header_count).map_while(move |_| {
            let key = bytes_field(&mut rest, false)??;
            let value = bytes_field(&mut rest, true)?;
            Some((key, value))
        })
    }
}

/// The records of an uncompressed body, each checked for framing; stops at
/// the first that does not parse, with an error.
pub fn records(body: &[u8]) -> impl Iterator<Item = Result<Record<'_>, &'static str>> {
    let mut rest = body;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || rest.is_empty() {
            return None;
        }
        let r = parse(&mut rest);
        failed = r.is_err();
        Some(r)
    })
}

fn parse<'a>(rest: &mut &'a [u8]) -> Result<Record<'a>, &'static str> {
    const BAD: &str = "record does not parse";
    let start = *rest;
    let len = usize::try_from(varint(rest).ok_or(BAD)?).map_err(|_| BAD)?;
    let prefix = start.len() - rest.len();
    let mut rec = rest.get(..len).ok_or("record longer than its batch")?;
    *rest = rest.get(len..).ok_or(BAD)?;
    let raw = start.get(..prefix + len).ok_or(BAD)?;
    rec = rec.get(1..).ok_or(BAD)?; // attributes
    let timestamp_delta = varlong(&mut rec).ok_or(BAD)?;
    let offset_delta = i32::try_from(varint(&mut rec).ok_or(BAD)?).map_err(|_| BAD)?;
    let key = bytes_field(&mut rec, true).ok_or(BAD)?;
    let value = bytes_field(&mut rec, true).ok_or(BAD)?;
    let headers = usize::try_from(varint(&mut rec).ok_or(BAD)?).map_err(|_| BAD)?;
    let headers_raw = rec;
    for _ in 0..headers {
        bytes_field(&mut rec, false).ok_or(BAD)?;
        bytes_field(&mut rec, true).ok_or(BAD)?;
    }
    if !rec.is_empty() {
        return Err("record longer than its fields");
    }
    Ok(Record {
        offset_delta,
        timestamp_delta,
        key,
        tombstone: value.is_none(),
        value,
        header_count: headers,
        headers_raw,
        raw,
    })
}

/// A varint-length-prefixed byte string; `Some(None)` for null.
fn bytes_field<'a>(rec: &mut &'a [u8], nullable: bool) -> Option<Option<&'a [u8]>> {
    let len = varint(rec)?;
    if len == -1 && nullable {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let (field, rest) = (rec.get(..len)?, rec.get(len..)?);
    *rec = rest;
    Some(Some(field))
}

fn varint(buf: &mut &[u8]) -> Option<i64> {
    let v = u32::try_from(unsigned_varint(buf, 5)?).ok()?;
    Some(i64::from((v >> 1) as i32 ^ -((v & 1) as i32)))
}

fn varlong(buf: &mut &[u8]) -> Option<i64> {
    let v = unsigned_varint(buf, 10)?;
    Some((v >> 1) as i64 ^ -((v & 1) as i64))
}

fn unsigned_varint(buf: &mut &[u8], max_bytes: usize) -> Option<u64> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The uncompressed records of a whole batch (`batch` starts at its
/// header), at most `limit` bytes of them.
/// Borrowed when the batch is uncompressed.
pub fn body<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    limit: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, CodecError> {
    let codec = Codec::from_attributes(header.attributes).ok_or("unknown compression codec")?;
    let end = usize::try_from(header.total_len()).map_err(|_| "batch too long")?;
    let data = batch.get(HEADER_LEN..end).ok_or("batch truncated")?;
    if codec == Codec::None {
        if data.len() > limit {
            return Err("decompressed records exceed the broker's limit");
        }
        return Ok(std::borrow::Cow::Borrowed(data));
    }
    codec::decompress(codec, data, limit).map(std::borrow::Cow::Owned)
}

/// What a rebuilt batch holds.
#[derive(Debug, Clone, Copy)]
pub struct Rebuild {
    /// The codec to write the records with.
    pub codec: Codec,
    /// Its levels.
    pub levels: Levels,
    /// How many records `records` holds.
    pub count: i32,
    /// The largest timestamp among them (ignored for a `LogAppendTime`
    /// batch, whose max timestamp is the append time for every record).
    pub max_timestamp: i64,
}

/// A batch with `template`'s offsets, producer fields and timestamp type,
/// holding `records` (uncompressed record bytes, as [`Record::raw`]
/// concatenated) written with `how.codec`.
pub fn rebuild(template: &BatchHeader, records: &[u8], how: Rebuild) -> Result<Bytes, CodecError> {
    // An empty batch (kept for its producer's sequence) is uncompressed,
    // as Kafka writes one: there is nothing to decompress.
    let codec = if how.count == 0 {
        Codec::None
    } else {
        how.codec
    };
    let payload = codec::compress(codec, how.levels, records)?;
    let attributes = (template.attributes & !0x07) | codec as i16;
    let max_timestamp = if template.is_log_append_time() || how.count == 0 {
        template.max_timestamp
    } else {
        how.max_timestamp
    };
    let batch_length =
        i32::try_from(HEADER_LEN - 12 + payload.len()).map_err(|_| "batch too long")?;
    let mut b = BytesMut::with_capacity(HEADER_LEN + payload.len());
    b.put_i64(template.base_offset);
    b.put_i32(batch_length);
    b.put_i32(template.partition_leader_epoch);
    b.put_i8(2);
    b.put_u32(0); // CRC, below
    b.put_i16(attributes);
    b.put_i32(template.last_offset_delta);
    b.put_i64(template.base_timestamp);
    b.put_i64(max_timestamp);
    b.put_i64(template.producer_id);
    b.put_i16(template.producer_epoch);
    b.put_i32(template.base_sequence);
    b.put_i32(how.count);
    b.put_slice(&payload);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(b.freeze())
}

/// Kafka's message for a keyless record on a compacted topic.
pub const KEYLESS_ON_COMPACTED: &str = "Compacted topic cannot accept message without key.";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    /// One record's bytes: offset delta `i`, timestamp delta `i`, the key
    /// and value given, one header when `header`.
    pub(crate) fn record(
        i: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        header: bool,
    ) -> Vec<u8> {
        let mut r = vec![0u8];
        put_varint(&mut r, i);
        put_varint(&mut r, i);
        for field in [key, value] {
            match field {
                Some(f) => {
                    put_varint(&mut r, f.len() as i64);
                    r.extend_from_slice(f);
                }
                None => put_varint(&mut r, -1),
            }
        }
        if header {
            put_varint(&mut r, 2);
            for _ in 0..2 {
                put_varint(&mut r, 1);
                r.push(b'h');
                put_varint(&mut r, 1);
                r.push(b'v');
            }
        } else {
            put_varint(&mut r, 0);
        }
        let mut out = Vec::new();
        put_varint(&mut out, r.len() as i64);
        out.extend_from_slice(&r);
        out
    }

    /// A record's key and value, either null.
    pub(crate) type Kv<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    /// A batch at `base` of records `(key, value)` with offset and
    /// timestamp deltas 0, 1, ..., written with `codec`.
    pub(crate) fn batch_of(base: i64, recs: &[Kv<'_>], base_ts: i64, codec: Codec) -> Bytes {
        let mut body = Vec::new();
        for (i, (k, v)) in recs.iter().enumerate() {
            body.extend(record(i as i64, *k, *v, false));
        }
        let payload = codec::compress(codec, Levels::default(), &body).unwrap();
        let n = recs.len() as i32;
        let mut b = BytesMut::new();
        b.put_i64(base);
        b.put_i32((HEADER_LEN - 12 + payload.len()) as i32);
        b.put_i32(0);
        b.put_i8(2);
        b.put_u32(0);
        b.put_i16(codec as i16);
        b.put_i32(n - 1);
        b.put_i64(base_ts);
        b.put_i64(base_ts + i64::from(n) - 1);
        b.put_i64(-1);
        b.put_i16(-1);
        b.put_i32(-1);
        b.put_i32(n);
        b.put_slice(&payload);
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b.freeze()
    }

    #[test]
    fn records_parse_with_keys_tombstones_and_duplicate_headers() {
        let mut body = record(0, Some(b"k1"), Some(b"v"), true);
        body.extend(record(1, None, Some(b"v"), false));
        body.extend(record(2, Some(b"k2"), None, false));
        let rs: Vec<_> = records(&body).map(Result::unwrap).collect();
        assert_eq!(rs.len(), 3);
        assert_eq!((rs[0].key, rs[0].tombstone), (Some(&b"k1"[..]), false));
        assert_eq!(rs[1].key, None);
        assert_eq!((rs[2].offset_delta, rs[2].tombstone), (2, true));
        let joined: Vec<u8> = rs.iter().flat_map(|r| r.raw.iter().copied()).collect();
        assert_eq!(joined, body);
        let mut torn = body.clone();
        torn.pop();
        assert!(records(&torn).any(|r| r.is_err()));
    }

    #[test]
    fn rebuild_keeps_offsets_and_changes_codec() {
        let b = super::super::batch::tests::batch(3, 1000);
        let h = BatchHeader::parse(&b).unwrap();
        let plain = body(&b, &h, 1 << 20).unwrap();
        let kept: Vec<u8> = records(&plain)
            .map(Result::unwrap)
            .filter(|r| r.offset_delta != 1)
            .flat_map(|r| r.raw.to_vec())
            .collect();
        let how = Rebuild {
            codec: Codec::Zstd,
            levels: Levels::default(),
            count: 2,
            max_timestamp: 1002,
        };
        let nb = rebuild(&h, &kept, how).unwrap();
        let nh = super::super::batch::BatchHeader::parse(&nb).unwrap();
        assert_eq!(nh.codec(), 4);
        assert_eq!(
            (nh.base_offset, nh.last_offset_delta, nh.record_count),
            (0, 2, 2)
        );
        assert_eq!(nh.total_len(), nb.len() as u64);
        assert_eq!(super::super::batch::crc_of(&nb), Some(nh.crc));
        let back = body(&nb, &nh, 1 << 20).unwrap();
        assert_eq!(back, kept);
        let empty = rebuild(&h, &[], Rebuild { count: 0, ..how }).unwrap();
        let eh = BatchHeader::parse(&empty).unwrap();
        assert_eq!(
            (eh.record_count, eh.codec(), empty.len()),
            (0, 0, HEADER_LEN)
        );
    }
}
