//! ListOffsets: earliest and latest from the log's bounds; by timestamp
//! through the time index to a batch, then into the batch for the exact
//! record — Kafka answers the first record whose timestamp is at least the
//! one asked for, and only the record bytes (decompressed, when the batch
//! is) say which that is. The batch is read with a `Read` command, so the
//! answer may wait for it.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;

use super::{Broker, LogKey, Owner, SlotState};
use crate::io::{Command, Completion, ConnId, IoError, IoId, Part};
use crate::log::batch::BatchHeader;
use crate::protocol::{self, Request};

/// A ListOffsets waiting for the batches it must look inside.
#[derive(Debug)]
pub(super) struct Pending {
    version: i16,
    correlation_id: i32,
    response: ListOffsetsResponse,
    /// Each outstanding read: where its answer goes and what it looks for.
    reads: HashMap<IoId, Lookup>,
}

/// One by-time lookup waiting for its batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lookup {
    topic: usize,
    partition: usize,
    key: LogKey,
    timestamp: i64,
    base_offset: u64,
    max_timestamp: i64,
}

impl Broker {
    /// Handle a ListOffsets request; false when it does not decode.
    pub(super) fn list_offsets(&mut self, conn: ConnId, request: &Request) -> bool {
        let Some(req) = protocol::decode::<ListOffsetsRequest>(
            ApiKey::ListOffsets,
            &request.body,
            request.version,
        ) else {
            return false;
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
                if request.version >= 4 {
                    r.leader_epoch = 0;
                }
                let key = self.find_log(topic.name.0.as_str(), p.partition_index);
                match key.and_then(|k| Some((k, self.log(k)?))) {
                    None => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
                    Some((_, log)) if log.offline().is_some() => {
                        r.error_code = ResponseError::KafkaStorageError.code()
                    }
                    Some((key, log)) => match p.timestamp {
                        // Earliest.
                        -2 => r.offset = log.log_start_offset() as i64,
                        // Latest: what a consumer can read, the high watermark.
                        -1 => r.offset = log.high_watermark() as i64,
                        ts if ts >= 0 => {
                            if let Some(hit) = log.batch_for_timestamp(ts) {
                                lookups.push((
                                    Lookup {
                                        topic: ti,
                                        partition: pi,
                                        key,
                                        timestamp: ts,
                                        base_offset: hit.base_offset,
                                        max_timestamp: hit.max_timestamp,
                                    },
                                    hit.slice,
                                ));
                            }
                        }
                        // -3 asks for the record with the largest timestamp
                        // (v7); this broker does not track it yet.
                        _ => r.error_code = ResponseError::UnsupportedVersion.code(),
                    },
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
            let frame = pending.encode();
            self.push_ready(conn, vec![Part::Bytes(frame)], Vec::new());
            return true;
        }
        let mut reads = Vec::new();
        for (lookup, slice) in lookups {
            if let Some(log) = self.logs.get_mut(lookup.key).and_then(Option::as_mut) {
                // Retention must not delete the file under the read.
                log.pin(slice.seg);
            }
            let io = self.ids.io();
            pending.reads.insert(io, lookup);
            let read = Command::Read {
                io,
                seg: slice.seg,
                pos: slice.pos,
                len: slice.len,
            };
            reads.push((read, lookup.key, slice.seg));
        }
        let Some(seq) = self.push_slot(conn, SlotState::ListOffsets(pending)) else {
            let pins: Vec<_> = reads.iter().map(|&(_, key, seg)| (key, seg)).collect();
            self.unpin_all(&pins);
            return true;
        };
        for (cmd, key, seg) in reads {
            let owner = Owner::Read {
                conn,
                seq,
                key,
                seg,
            };
            self.owners.insert(cmd.io(), owner);
            self.out.push_back(cmd);
        }
        true
    }

    /// A batch read for a by-time lookup came back.
    pub(super) fn offsets_read_done(
        &mut self,
        conn: ConnId,
        seq: u64,
        io: IoId,
        result: Result<Completion, IoError>,
    ) {
        let slot = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.queue.iter_mut().find(|s| s.seq == seq));
        let Some(SlotState::ListOffsets(pending)) = slot.map(|s| &mut s.state) else {
            // The connection went away; handle_done released the pin.
            return;
        };
        let Some(lookup) = pending.reads.remove(&io) else {
            return;
        };
        let r = &mut pending.response.topics[lookup.topic].partitions[lookup.partition];
        match result {
            Ok(Completion::Read(batch)) => match exact_record(&batch, &lookup) {
                Some((offset, ts)) => {
                    r.offset = offset as i64;
                    r.timestamp = ts;
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
        if pending.reads.is_empty() {
            let frame = pending.encode();
            self.set_slot(
                conn,
                seq,
                SlotState::Ready(vec![Part::Bytes(frame)], Vec::new()),
            );
        }
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
/// for, as (offset, timestamp). With `LogAppendTime` every record carries
/// the batch's time, so it is the first record.
fn exact_record(batch: &Bytes, lookup: &Lookup) -> Option<(u64, i64)> {
    let header = BatchHeader::parse(batch)?;
    if header.is_log_append_time() {
        return Some((lookup.base_offset, header.max_timestamp));
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
            )
        })
        .or(Some((lookup.base_offset, lookup.max_timestamp)))
}
