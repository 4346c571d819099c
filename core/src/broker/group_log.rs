//! The internal `__consumer_offsets` topic: Kafka's record schemas for
//! committed offsets and group metadata, batches of them for appending, and
//! their replay at startup.
//!
//! Keys and values are Kafka's own (non-flexible) versions, so the topic
//! reads like Kafka's: offset commit key v1 (group, topic, partition) with
//! value v3 (offset, leader epoch, metadata, commit time); group metadata
//! key v2 (group) with value v3. A null value is a tombstone.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::group::{GroupSnapshot, MemberSnapshot};
use crate::log::batch;

/// The internal topic's name.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A committed offset, as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// One record of the internal topic, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    /// An offset commit (`None`: the commit was deleted).
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<Committed>,
    },
    /// Group metadata (`None`: the group was deleted).
    Group {
        group: String,
        value: Option<GroupSnapshot>,
    },
}

/// The internal topic's partition for `group`: Kafka's
/// `abs(group.hashCode()) % partitions`, with Java's `String.hashCode` over
/// UTF-16 code units, so a group lands where Kafka would put it.
pub(crate) fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    // Kafka's Utils.abs: `n & 0x7fffffff`, so i32::MIN maps to 0.
    (h & 0x7fff_ffff) % partitions.max(1)
}

fn put_str(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len().min(i16::MAX as usize) as i16);
    buf.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_nullable_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

/// The record key and value for an offset commit.
pub(crate) fn offset_record(
    group: &str,
    topic: &str,
    partition: i32,
    value: Option<&Committed>,
) -> (Bytes, Option<Bytes>) {
    let mut key = BytesMut::new();
    key.put_i16(1);
    put_str(&mut key, group);
    put_str(&mut key, topic);
    key.put_i32(partition);
    let value = value.map(|c| {
        let mut v = BytesMut::new();
        v.put_i16(3);
        v.put_i64(c.offset);
        v.put_i32(c.leader_epoch);
        put_str(&mut v, &c.metadata);
        v.put_i64(c.commit_timestamp);
        v.freeze()
    });
    (key.freeze(), value)
}

/// The record key and value for a group's metadata.
pub(crate) fn group_record(group: &str, value: Option<&GroupSnapshot>) -> (Bytes, Option<Bytes>) {
    let mut key = BytesMut::new();
    key.put_i16(2);
    put_str(&mut key, group);
    let value = value.map(|g| {
        let mut v = BytesMut::new();
        v.put_i16(3);
        put_str(&mut v, g.protocol_type.as_deref().unwrap_or(""));
        v.put_i32(g.generation);
        put_nullable_str(&mut v, g.protocol.as_deref());
        put_nullable_str(&mut v, g.leader.as_deref());
        v.put_i64(g.state_timestamp_ms);
        v.put_i32(g.members.len() as i32);
        for m in &g.members {
            put_str(&mut v, &m.member_id);
            put_nullable_str(&mut v, m.group_instance_id.as_deref());
            put_str(&mut v, &m.client_id);
            put_str(&mut v, &m.client_host);
            v.put_i32(m.rebalance_timeout_ms);
            v.put_i32(m.session_timeout_ms);
            put_bytes(&mut v, &m.subscription);
            put_bytes(&mut v, &m.assignment);
        }
        v.freeze()
    });
    (key.freeze(), value)
}

/// One uncompressed RecordBatch v2 holding `records` (key, value), base
/// offset 0 as a client would send it, stamped `timestamp`, with its
/// parsed header for the log's append.
pub(crate) fn batch_of(
    records: &[(Bytes, Option<Bytes>)],
    timestamp: i64,
) -> Option<(Bytes, batch::BatchHeader)> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence
            // changes; this keeps one batch with base sequence -1.
            sequence: i as i32 - 1,
            timestamp,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).ok()?;
    let bytes = buf.freeze();
    let header = batch::BatchHeader::parse(&bytes)?;
    Some((bytes, header))
}

/// Every entry in `log` (whole batches back to back), in order, stopping at
/// the first batch that is torn or fails its CRC — the same rule recovery
/// truncates by, so nothing recovery cuts is replayed. True when the whole
/// segment was good; after a segment that was not, recovery removes every
/// later one, so the caller stops there too.
pub(crate) fn replay(log: &[u8], out: &mut Vec<Entry>) -> bool {
    let mut batches = Vec::new();
    let whole = replay_batches(log, &mut batches);
    out.extend(batches.into_iter().flat_map(|(_, entries)| entries));
    whole
}

/// [`replay`], batch by batch: each batch's last offset and its entries
/// (a batch of none is left out).
pub(crate) fn replay_batches(log: &[u8], out: &mut Vec<(u64, Vec<Entry>)>) -> bool {
    let mut pos = 0usize;
    while let Some(header) = log.get(pos..).and_then(batch::BatchHeader::parse) {
        let Some(end) = usize::try_from(header.total_len())
            .ok()
            .and_then(|len| pos.checked_add(len))
            .filter(|&end| end <= log.len())
        else {
            return false;
        };
        let whole = &log[pos..end];
        if batch::crc_of(whole) != Some(header.crc) {
            return false;
        }
        let mut bytes = Bytes::copy_from_slice(whole);
        let Ok(set) = RecordBatchDecoder::decode(&mut bytes) else {
            return false;
        };
        let entries: Vec<Entry> = set
            .records
            .into_iter()
            .filter_map(|record| decode_entry(record.key?, record.value))
            .collect();
        if !entries.is_empty() {
            let last = u64::try_from(header.last_offset()).unwrap_or(0);
            out.push((last, entries));
        }
        pos = end;
    }
    pos == log.len()
}

/// A record this broker writes, as a replay reads it back.
pub(crate) fn entry_of((key, value): &(Bytes, Option<Bytes>)) -> Option<Entry> {
    decode_entry(key.clone(), value.clone())
}

fn get_str(b: &mut Bytes) -> Option<String> {
    let n = usize::try_from(b.try_get_i16().ok()?).ok()?;
    if b.len() < n {
        return None;
    }
    String::from_utf8(b.split_to(n).to_vec()).ok()
}

fn get_nullable_str(b: &mut Bytes) -> Option<Option<String>> {
    let n = b.try_get_i16().ok()?;
    if n < 0 {
        return Some(None);
    }
    let n = n as usize;
    if b.len() < n {
        return None;
    }
    Some(Some(String::from_utf8(b.split_to(n).to_vec()).ok()?))
}

fn get_bytes(b: &mut Bytes) -> Option<Bytes> {
    let n = usize::try_from(b.try_get_i32().ok()?).ok()?;
    (b.len() >= n).then(|| b.split_to(n))
}

/// Decode one record; `None` for a schema this broker does not know (Kafka
/// skips those too).
fn decode_entry(mut key: Bytes, value: Option<Bytes>) -> Option<Entry> {
    match key.try_get_i16().ok()? {
        0 | 1 => {
            let group = get_str(&mut key)?;
            let topic = get_str(&mut key)?;
            let partition = key.try_get_i32().ok()?;
            let value = match value {
                None => None,
                Some(v) => Some(decode_offset_value(v)?),
            };
            Some(Entry::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group = get_str(&mut key)?;
            let value = match value {
                None => None,
                Some(v) => Some(decode_group_value(v)?),
            };
            Some(Entry::Group { group, value })
        }
        _ => None,
    }
}

fn decode_offset_value(mut v: Bytes) -> Option<Committed> {
    let version = v.try_get_i16().ok()?;
    let offset = v.try_get_i64().ok()?;
    let leader_epoch = if version >= 3 {
        v.try_get_i32().ok()?
    } else {
        -1
    };
    let metadata = get_str(&mut v)?;
    let commit_timestamp = v.try_get_i64().ok()?;
    Some(Committed {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

fn decode_group_value(mut v: Bytes) -> Option<GroupSnapshot> {
    let version = v.try_get_i16().ok()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let protocol_type = get_str(&mut v)?;
    let generation = v.try_get_i32().ok()?;
    let protocol = get_nullable_str(&mut v)?;
    let leader = get_nullable_str(&mut v)?;
    let state_timestamp_ms = if version >= 2 {
        v.try_get_i64().ok()?
    } else {
        -1
    };
    let count = usize::try_from(v.try_get_i32().ok()?).ok()?;
    let mut members = Vec::with_capacity(count.min(v.len()));
    for _ in 0..count {
        let member_id = get_str(&mut v)?;
        let group_instance_id = if version >= 3 {
            get_nullable_str(&mut v)?
        } else {
            None
        };
        let client_id = get_str(&mut v)?;
        let client_host = get_str(&mut v)?;
        let rebalance_timeout_ms = if version >= 1 {
            v.try_get_i32().ok()?
        } else {
            -1
        };
        let session_timeout_ms = v.try_get_i32().ok()?;
        let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
            session_timeout_ms
        } else {
            rebalance_timeout_ms
        };
        members.push(MemberSnapshot {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: get_bytes(&mut v)?,
            assignment: get_bytes(&mut v)?,
        });
    }
    Some(GroupSnapshot {
        protocol_type: (!protocol_type.is_empty()).then_some(protocol_type),
        generation,
        protocol,
        leader,
        state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_partition_matches_kafka() {
        // Java: "my-group".hashCode() == 1_008_000_394 (checked by hand:
        // s[0]*31^(n-1) + ... over UTF-16 units).
        let mut h: i32 = 0;
        for c in "my-group".encode_utf16() {
            h = h.wrapping_mul(31).wrapping_add(i32::from(c));
        }
        assert_eq!(partition_for("my-group", 50), (h & 0x7fff_ffff) % 50);
        assert_eq!(partition_for("", 50), 0);
        assert!((0..50).contains(&partition_for("ÿ€😀 group", 50)));
    }

    #[test]
    fn records_round_trip_through_a_batch() {
        let c = Committed {
            offset: 42,
            leader_epoch: 0,
            metadata: "m".into(),
            commit_timestamp: 7,
        };
        let g = GroupSnapshot {
            protocol_type: Some("consumer".into()),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("a-1".into()),
            state_timestamp_ms: 9,
            members: vec![MemberSnapshot {
                member_id: "a-1".into(),
                group_instance_id: None,
                client_id: "a".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let records = vec![
            offset_record("g", "t", 2, Some(&c)),
            offset_record("g", "t", 3, None),
            group_record("g", Some(&g)),
            group_record("h", None),
        ];
        let (bytes, header) = batch_of(&records, 1).unwrap();
        assert_eq!(header.record_count, 4);
        assert!(batch::validate_client_batch(&bytes, 1 << 20).is_ok());
        let mut log = bytes.to_vec();
        log.extend_from_slice(&bytes[..20]); // a torn tail is not replayed
        let mut out = Vec::new();
        assert!(!replay(&log, &mut out));
        assert_eq!(out.len(), 4);
        assert!(matches!(&out[0], Entry::Offset { partition: 2, value: Some(v), .. } if *v == c));
        assert!(matches!(&out[1], Entry::Offset { value: None, .. }));
        assert!(matches!(&out[2], Entry::Group { value: Some(v), .. } if *v == g));
        assert!(matches!(&out[3], Entry::Group { value: None, .. }));
    }
}
