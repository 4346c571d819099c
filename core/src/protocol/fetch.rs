//! The Fetch response, framed by hand (v4–v12) so record bytes travel as
//! [`Part::File`] regions sent with `sendfile(2)`, never through user space.
//!
//! Kafka's own broker does the same: it writes the response's bytes up to
//! and including a partition's records length, then the file region, then
//! what follows. The frame length at the front covers every part, so each
//! region's length is fixed before the first byte leaves.

use bytes::{BufMut, BytesMut};

use super::put_uvarint;
use crate::io::{Part, SegId};

/// One partition's entry in a Fetch response.
#[derive(Debug, Clone)]
pub struct PartitionData {
    /// The partition index.
    pub index: i32,
    /// Kafka error code (0: none).
    pub error: i16,
    /// The high watermark (also the last stable offset: no transactions).
    pub high_watermark: i64,
    /// The log start offset.
    pub log_start_offset: i64,
    /// The records: regions of segment files, in order (several when a
    /// read runs on past a segment's end).
    pub records: Vec<(SegId, u64, u64)>,
    /// To a follower whose log diverged (v12+): the leader's epoch at or
    /// below the follower's last and where it ends on the leader's log.
    pub diverging_epoch: Option<(i32, i64)>,
}

/// One topic's entry in a Fetch response.
#[derive(Debug, Clone)]
pub struct TopicData {
    /// The topic name as the request gave it.
    pub name: bytes::Bytes,
    /// Its partitions.
    pub partitions: Vec<PartitionData>,
}

/// Frame a whole Fetch response: length prefix, response header, body.
pub fn encode(
    version: i16,
    correlation_id: i32,
    error: i16,
    session_id: i32,
    topics: &[TopicData],
) -> Vec<Part> {
    let flexible = version >= 12;
    let mut w = Writer {
        parts: Vec::new(),
        cur: BytesMut::with_capacity(256),
        total: 0,
    };
    w.cur.put_i32(0); // length, patched below
    w.cur.put_i32(correlation_id);
    if flexible {
        w.cur.put_u8(0); // response header tagged fields
    }
    w.cur.put_i32(0); // throttle_time_ms
    if version >= 7 {
        w.cur.put_i16(error);
        w.cur.put_i32(session_id);
    }
    w.array_len(flexible, topics.len());
    for topic in topics {
        if flexible {
            put_uvarint(&mut w.cur, topic.name.len() as u64 + 1);
        } else {
            w.cur.put_i16(topic.name.len() as i16);
        }
        w.cur.put_slice(&topic.name);
        w.array_len(flexible, topic.partitions.len());
        for p in &topic.partitions {
            w.cur.put_i32(p.index);
            w.cur.put_i16(p.error);
            w.cur.put_i64(p.high_watermark);
            w.cur.put_i64(p.high_watermark); // last stable offset
            if version >= 5 {
                w.cur.put_i64(p.log_start_offset);
            }
            // aborted_transactions: none (no transactions), as an empty array.
            w.array_len(flexible, 0);
            if version >= 11 {
                w.cur.put_i32(-1); // preferred read replica: always -1
            }
            let len: u64 = p.records.iter().map(|r| r.2).sum();
            if flexible {
                put_uvarint(&mut w.cur, len + 1);
            } else {
                w.cur.put_i32(len as i32);
            }
            for &(seg, pos, len) in p.records.iter().filter(|r| r.2 > 0) {
                w.file(seg, pos, len);
            }
            match (flexible, p.diverging_epoch) {
                (true, Some((epoch, end_offset))) => {
                    // One tagged field: 0, DivergingEpoch (epoch,
                    // end_offset, no tagged fields of its own): 13 bytes.
                    w.cur.put_slice(&[1, 0, 13]);
                    w.cur.put_i32(epoch);
                    w.cur.put_i64(end_offset);
                    w.cur.put_u8(0);
                }
                (true, None) => w.cur.put_u8(0), // partition tagged fields
                (false, _) => {}
            }
        }
        if flexible {
            w.cur.put_u8(0); // topic tagged fields
        }
    }
    if flexible {
        w.cur.put_u8(0); // body tagged fields
    }
    w.finish()
}

struct Writer {
    parts: Vec<Part>,
    cur: BytesMut,
    total: u64,
}

impl Writer {
    fn array_len(&mut self, flexible: bool, n: usize) {
        if flexible {
            put_uvarint(&mut self.cur, n as u64 + 1);
        } else {
            self.cur.put_i32(n as i32);
        }
    }

    fn flush(&mut self) {
        if !self.cur.is_empty() {
            let chunk = self.cur.split().freeze();
            self.total += chunk.len() as u64;
            self.parts.push(Part::Bytes(chunk));
        }
    }

    fn file(&mut self, seg: SegId, pos: u64, len: u64) {
        self.flush();
        self.total += len;
        self.parts.push(Part::File { seg, pos, len });
    }

    fn finish(mut self) -> Vec<Part> {
        self.flush();
        let frame_len = (self.total - 4) as i32;
        // The first part always holds the length placeholder: it is written
        // before anything else and flushed before the first file region.
        if let Some(Part::Bytes(first)) = self.parts.first_mut() {
            let mut patched = BytesMut::from(&first[..]);
            patched[..4].copy_from_slice(&frame_len.to_be_bytes());
            *first = patched.freeze();
        }
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::Decodable;

    /// Replace each file region with `len` filler bytes and decode the
    /// result with the reference decoder.
    fn materialise(parts: &[Part]) -> Bytes {
        let mut out = BytesMut::new();
        for p in parts {
            match p {
                Part::Bytes(b) => out.put_slice(b),
                Part::File { len, .. } => out.put_bytes(0xab, *len as usize),
            }
        }
        out.freeze()
    }

    #[test]
    fn decodes_with_the_reference_decoder_at_every_version() {
        let topics = vec![TopicData {
            name: Bytes::from_static(b"orders"),
            partitions: vec![
                PartitionData {
                    index: 0,
                    error: 0,
                    high_watermark: 42,
                    log_start_offset: 0,
                    records: vec![(SegId(3), 100, 200), (SegId(4), 0, 100)],
                    diverging_epoch: None,
                },
                PartitionData {
                    index: 1,
                    error: 1,
                    high_watermark: -1,
                    log_start_offset: -1,
                    records: Vec::new(),
                    diverging_epoch: Some((3, 120)),
                },
            ],
        }];
        for version in 4..=12 {
            let parts = encode(version, 77, 0, 0, &topics);
            let mut bytes = materialise(&parts);
            let len = i32::from_be_bytes(bytes[..4].try_into().unwrap());
            assert_eq!(len as usize, bytes.len() - 4, "v{version}");
            let _ = bytes::Buf::get_i32(&mut bytes);
            assert_eq!(bytes::Buf::get_i32(&mut bytes), 77);
            if version >= 12 {
                assert_eq!(bytes::Buf::get_u8(&mut bytes), 0);
            }
            let resp = FetchResponse::decode(&mut bytes, version).expect("decodes");
            let p = &resp.responses[0].partitions;
            assert_eq!(p[0].high_watermark, 42);
            assert_eq!(p[0].records.as_ref().map(|r| r.len()), Some(300));
            assert_eq!(p[1].error_code, 1);
            if version >= 12 {
                assert_eq!(p[1].diverging_epoch.epoch, 3);
                assert_eq!(p[1].diverging_epoch.end_offset, 120);
            }
            assert!(bytes.is_empty(), "v{version}: trailing bytes");
        }
    }
}
