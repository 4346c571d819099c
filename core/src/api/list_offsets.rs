//! ListOffsets 1–7: earliest and latest from the log's bounds; the largest
//! timestamp (-3, v7); by
//! timestamp through the time index to a batch, then into the batch for the
//! exact record — Kafka answers the first record whose timestamp is at
//! least the one asked for, and only the record bytes (decompressed, when
//! the batch is) say which that is. The batch is read with a `Read`
//! command, so the answer may wait for it.
//!
//! From v4 each partition names the leader epoch its sender knows, checked
//! as Fetch checks it (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH), and each
//! answer carries the leader epoch of the offset it gives, as Kafka's: the
//! first batch's for the earliest, the current leader's for the latest,
//! the found batch's for a timestamp. A new leader whose high watermark
//! has not yet reached the start of its epoch (its followers have not
//! fetched since it took over) answers the latest offset, and a timestamp
//! past the high watermark, OFFSET_NOT_AVAILABLE: what it could give now
//! may be below an offset the old leader already gave out.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;

use super::ApiSpec;
use crate::broker::logs::LogKey;
use crate::broker::out::Owner;
use crate::broker::wait::{Answer, Ctx, Origin, Response, Until, Waiter, Wake};
use crate::io::{Command, Completion, IoId};
use crate::log::batch::BatchHeader;
use crate::protocol::{self, Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::ListOffsets,
    min: 1,
    max: 7,
    flexible: 6,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    r.skip(4)?; // replica_id
    if v >= 2 {
        r.skip(1)?; // isolation_level
    }
    // partition_index, current_leader_epoch (v4+), timestamp
    let partition = 4 + if v >= 4 { 4 } else { 0 } + 8;
    let partition_min = partition + r.tags_min();
    r.array(r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.string()?; // name
        r.array(partition_min, |r| {
            r.skip(partition)?;
            r.tags()
        })?;
        r.tags()
    })?;
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, origin: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<ListOffsetsRequest>(request) else {
        return Answer::Malformed;
    };
    let mut response = ListOffsetsResponse::default();
    let mut lookups = Vec::new();
    for (ti, topic) in req.topics.iter().enumerate() {
        let mut t = ListOffsetsTopicResponse::default().with_name(topic.name.clone());
        for (pi, p) in topic.partitions.iter().enumerate() {
            let mut r = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            let name = topic.name.0.as_str();
            let key = cx.leads_in(name, p.partition_index, p.current_leader_epoch);
            let leading = cx.leader_epoch(name, p.partition_index).unwrap_or(-1);
            // Replicated, a new leader's high watermark may lag the start
            // of its epoch until its followers fetch.
            let lagging = |log: &crate::log::PartitionLog| {
                cx.image().is_some()
                    && log.epoch_start(leading).unwrap_or(log.log_end_offset())
                        > log.high_watermark()
            };
            match key.map(|k| (k, cx.logs.get(k))) {
                Err(e) => r.error_code = e.code(),
                Ok((_, None)) => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Ok((_, Some(log))) if log.offline().is_some() => {
                    r.error_code = ResponseError::KafkaStorageError.code()
                }
                Ok((key, Some(log))) => match p.timestamp {
                    // Earliest.
                    -2 => {
                        r.offset = log.log_start_offset() as i64;
                        r.leader_epoch = log.earliest_epoch().unwrap_or(-1);
                    }
                    -1 if lagging(log) => r.error_code = ResponseError::OffsetNotAvailable.code(),
                    // Latest: what a consumer can read, the high watermark.
                    -1 => {
                        r.offset = log.high_watermark() as i64;
                        r.leader_epoch = leading;
                    }
                    // -3 (v7+): the record with the largest timestamp, found
                    // as a by-time lookup of that timestamp: its first
                    // record at or after it is the one.
                    ts if ts >= 0 || (ts == -3 && request.version >= 7) => {
                        let ts = if ts == -3 {
                            log.max_timestamp().unwrap_or(i64::MAX)
                        } else {
                            ts
                        };
                        if let Some(hit) = log.batch_for_timestamp(ts) {
                            let lookup = Lookup {
                                topic: ti,
                                partition: pi,
                                key,
                                timestamp: ts,
                                base_offset: hit.base_offset,
                                max_timestamp: hit.max_timestamp,
                            };
                            lookups.push((lookup, hit.slice));
                        } else if lagging(log) {
                            r.error_code = ResponseError::OffsetNotAvailable.code();
                        }
                    }
                    // -4 and below (earliest-local, latest-tiered) name
                    // tiered storage, which this broker does not have.
                    _ => r.error_code = ResponseError::UnsupportedVersion.code(),
                },
            }
            if request.version < 4 {
                r.leader_epoch = -1;
            }
            t.partitions.push(r);
        }
        response.topics.push(t);
    }
    let mut pending = Pending {
        version: request.version,
        correlation_id: request.correlation_id,
        response,
        reads: HashMap::new(),
    };
    if lookups.is_empty() {
        return Answer::Frame(pending.encode());
    }
    for (lookup, slice) in lookups {
        // Retention must not delete the file under the read; the slot owns
        // the read and the pin until it is answered.
        cx.logs.pin(lookup.key, slice.seg);
        let io = cx.io.next_io();
        pending.reads.insert(io, lookup);
        let read = Command::Read {
            io,
            seg: slice.seg,
            pos: slice.pos,
            len: slice.len,
        };
        let owner = Owner::Slot {
            conn: origin.conn,
            seq: origin.seq,
            pin: (lookup.key, slice.seg),
        };
        cx.io.emit(read, owner);
    }
    Answer::Wait(Box::new(pending))
}

/// A ListOffsets waiting for the batches it must look inside.
#[derive(Debug)]
struct Pending {
    version: i16,
    correlation_id: i32,
    response: ListOffsetsResponse,
    /// Each outstanding read: where its answer goes and what it looks for.
    reads: HashMap<IoId, Lookup>,
}

/// One by-time lookup waiting for its batch.
#[derive(Debug, Clone, Copy)]
struct Lookup {
    topic: usize,
    partition: usize,
    key: LogKey,
    timestamp: i64,
    base_offset: u64,
    max_timestamp: i64,
}

impl Waiter for Pending {
    fn until(&self) -> Until {
        Until::Reads
    }

    /// A batch read for a by-time lookup came back.
    fn poll(&mut self, _: &mut Ctx<'_>, wake: Wake) -> Option<Response> {
        let Wake::Read(io, result) = wake else {
            return None;
        };
        let lookup = self.reads.remove(&io)?;
        let r = &mut self.response.topics[lookup.topic].partitions[lookup.partition];
        match result {
            Ok(Completion::Read(batch)) => match exact_record(&batch, &lookup) {
                Some((offset, ts, epoch)) => {
                    r.offset = offset as i64;
                    r.timestamp = ts;
                    if self.version >= 4 {
                        r.leader_epoch = epoch;
                    }
                }
                None => {
                    tracing::error!(?lookup, "a batch below the high watermark did not decode");
                    r.error_code = ResponseError::CorruptMessage.code();
                }
            },
            Ok(_) | Err(_) => {
                tracing::error!(?lookup, "reading a batch for ListOffsets failed");
                r.error_code = ResponseError::KafkaStorageError.code();
            }
        }
        self.reads
            .is_empty()
            .then(|| Response::Frame(self.encode()))
    }
}

impl Pending {
    fn encode(&self) -> Bytes {
        protocol::encode_response(
            ApiKey::ListOffsets,
            self.version,
            self.correlation_id,
            &self.response,
        )
    }
}

/// The first record in `batch` whose timestamp is at least the one looked
/// for, as (offset, timestamp, the batch's leader epoch). With
/// `LogAppendTime` every record carries the batch's time, so it is the
/// first record.
fn exact_record(batch: &Bytes, lookup: &Lookup) -> Option<(u64, i64, i32)> {
    let header = BatchHeader::parse(batch)?;
    let epoch = header.partition_leader_epoch.max(-1);
    if header.is_log_append_time() {
        return Some((lookup.base_offset, header.max_timestamp, epoch));
    }
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).ok()?;
    set.records
        .iter()
        .find(|r| r.timestamp >= lookup.timestamp)
        .map(|r| {
            (
                u64::try_from(r.offset).unwrap_or(0).max(lookup.base_offset),
                r.timestamp,
                epoch,
            )
        })
        .or(Some((lookup.base_offset, lookup.max_timestamp, epoch)))
}
