//! Simulated clients: what each connection has sent, what the driver has
//! read of it, what came back, and the requests still waiting for answers.
//! Requests are random Produce (acks 1 and -1), Fetch, ListOffsets and
//! Metadata, pipelined; every answer is checked against the model. Records
//! to a compacted topic share keys from a small, skewed key space, and
//! some are tombstones.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

use super::model::{Model, Pk, Snap};
use super::rng::Rng;
use super::wire::{self, Shape};

#[derive(Debug)]
pub enum Kind {
    Produce {
        acks: i16,
        parts: Vec<(Pk, Vec<u64>)>,
    },
    Fetch {
        parts: Vec<(Pk, u64)>,
    },
    ListOffsets {
        parts: Vec<(Pk, i64)>,
    },
    Metadata,
}

#[derive(Debug)]
pub struct Req {
    pub corr: i32,
    pub key: ApiKey,
    pub version: i16,
    /// Stream position just past the request's last byte.
    pub end: u64,
    pub kind: Kind,
    /// The model when the broker cut the frame.
    pub snap: Option<Snap>,
}

/// One connection, seen from both ends of the socket.
#[derive(Debug, Default)]
pub struct Client {
    /// Sent by the client, not yet read by the driver (it reads only while
    /// the broker wants to).
    pub tx: BytesMut,
    /// Read by the driver, not yet taken by the broker (a partial frame, or
    /// whole frames left while the broker did not want more).
    pub rx: BytesMut,
    /// Bytes the client has sent, and the broker has taken, so far.
    pub sent: u64,
    pub taken: u64,
    /// Bytes the broker wrote, not yet parsed.
    pub wire: BytesMut,
    pub outstanding: VecDeque<Req>,
    /// The broker said to stop reading it (`Poll::ReadInterest`).
    pub paused: bool,
    pub closed: bool,
}

impl Client {
    /// Queue bytes the client sends: a whole request (`req` says what it
    /// asks), or the start of one it will never finish (`None`).
    pub fn write(&mut self, bytes: &[u8], req: Option<Req>) {
        self.tx.extend_from_slice(bytes);
        self.sent += bytes.len() as u64;
        if let Some(mut req) = req {
            req.end = self.sent;
            self.outstanding.push_back(req);
        }
    }

    /// Requests whose last byte the broker has now taken, marked handled.
    pub fn mark_handled(&mut self, model: &Model, event: u64, records: &mut Vec<(Pk, Vec<u64>)>) {
        for req in self.outstanding.iter_mut() {
            if req.end > self.taken || req.snap.is_some() {
                continue;
            }
            req.snap = Some(model.snap(event));
            if let Kind::Produce { parts, .. } = &req.kind {
                records.extend(parts.iter().cloned());
            }
        }
    }

    /// Parse and check every whole response the broker has written.
    pub fn read_answers(&mut self, model: &mut Model) -> Result<(), String> {
        while let Some(frame) = wire::cut_frame(&mut self.wire)? {
            let req = self
                .outstanding
                .pop_front()
                .ok_or("a response with no request outstanding")?;
            let snap = req
                .snap
                .clone()
                .ok_or_else(|| format!("request {} answered before it was read", req.corr))?;
            // Every response header starts with the correlation id.
            let corr = frame
                .get(..4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            if corr != Some(req.corr) {
                return Err(format!(
                    "response with correlation id {corr:?} where {} was next: out of request order",
                    req.corr
                ));
            }
            answer(model, &req, &snap, frame)?;
        }
        Ok(())
    }
}

fn topic_name(model: &Model, pk: Pk) -> TopicName {
    TopicName(StrBytes::from_string(model.topics[pk.topic].name.clone()))
}

/// A random request: its bytes and what it asked.
pub fn random_request(rng: &mut Rng, model: &mut Model, corr: i32, now_ms: i64) -> (Bytes, Req) {
    let pks = model.pks();
    let pick_parts = |rng: &mut Rng, most: usize| {
        let mut chosen: Vec<Pk> = Vec::new();
        for _ in 0..rng.range(1, most as u64) {
            let pk = pks[rng.index(pks.len())];
            if !chosen.contains(&pk) {
                chosen.push(pk);
            }
        }
        chosen
    };
    let (key, version, kind, bytes) = match rng.weighted(&[5, 4, 1, 1]) {
        0 => {
            let version = [3, 7, 9][rng.index(3)];
            let acks = if rng.chance(1, 2) { 1 } else { -1 };
            let mut by_topic: BTreeMap<usize, Vec<PartitionProduceData>> = BTreeMap::new();
            let mut parts = Vec::new();
            let mut chosen = pick_parts(rng, 2);
            // Compacted partitions get most of the records, so their
            // segments roll and the cleaner has work within a few hundred
            // steps (no draw at all without one, so runs without keep
            // their schedules).
            let compacted: Vec<Pk> = pks
                .iter()
                .copied()
                .filter(|&p| model.is_compacted(p))
                .collect();
            if !compacted.is_empty() && rng.chance(2, 3) {
                let pk = compacted[rng.index(compacted.len())];
                if !chosen.contains(&pk) {
                    chosen.push(pk);
                }
            }
            for pk in chosen {
                let shapes: Vec<Shape> = match model.topics[pk.topic].compact {
                    Some(c) => (0..rng.range(1, 8))
                        .map(|_| {
                            let hot = rng.range(1, u64::from(c.keys));
                            Shape {
                                // Skewed: low keys are rewritten often (so
                                // compaction removes records), high ones seldom
                                // (so their latest records sit in old, cleaned
                                // segments, where a lost one shows).
                                key: Some(rng.below(hot) as u32),
                                tombstone: rng.chance(1, c.tombstone_one_in),
                            }
                        })
                        .collect(),
                    None => vec![Shape::default(); rng.range(1, 4) as usize],
                };
                let rids = model.new_records(pk, &shapes, now_ms);
                let compression = match rng.below(12) {
                    0 => Compression::Gzip,
                    1 => Compression::Lz4,
                    2 => Compression::Snappy,
                    _ => Compression::None,
                };
                let shaped: Vec<(u64, Shape)> = rids.iter().copied().zip(shapes).collect();
                let records = wire::batch(&shaped, now_ms, compression);
                by_topic.entry(pk.topic).or_default().push(
                    PartitionProduceData::default()
                        .with_index(pk.partition)
                        .with_records(Some(records)),
                );
                parts.push((pk, rids));
            }
            let topic_data = by_topic
                .into_iter()
                .map(|(t, data)| {
                    TopicProduceData::default()
                        .with_name(topic_name(
                            model,
                            Pk {
                                topic: t,
                                partition: 0,
                            },
                        ))
                        .with_partition_data(data)
                })
                .collect();
            let body = ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(30_000)
                .with_topic_data(topic_data);
            let bytes = wire::frame(ApiKey::Produce, version, corr, &body);
            (
                ApiKey::Produce,
                version,
                Kind::Produce { acks, parts },
                bytes,
            )
        }
        1 => {
            let version = [4, 11, 12][rng.index(3)];
            let small = |rng: &mut Rng| {
                if rng.chance(1, 3) {
                    rng.range(1, 2000) as i32
                } else {
                    1 << 20
                }
            };
            let mut parts = Vec::new();
            let mut topics: Vec<FetchTopic> = Vec::new();
            for pk in pick_parts(rng, 3) {
                let visible = model.part_ref(pk).floor;
                // Consumers mostly follow the tail; some re-read.
                let offset = if rng.chance(1, 2) {
                    visible
                } else {
                    rng.range(0, visible)
                };
                let p = FetchPartition::default()
                    .with_partition(pk.partition)
                    .with_fetch_offset(offset as i64)
                    .with_partition_max_bytes(small(rng));
                let name = topic_name(model, pk);
                match topics.iter_mut().find(|t| t.topic == name) {
                    Some(t) => t.partitions.push(p),
                    None => topics.push(
                        FetchTopic::default()
                            .with_topic(name)
                            .with_partitions(vec![p]),
                    ),
                }
                parts.push((pk, offset));
            }
            let body = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(if rng.chance(1, 3) {
                    0
                } else {
                    rng.range(1, 40) as i32
                })
                .with_min_bytes(1)
                .with_max_bytes(small(rng))
                .with_session_epoch(-1)
                .with_topics(topics);
            let bytes = wire::frame(ApiKey::Fetch, version, corr, &body);
            (ApiKey::Fetch, version, Kind::Fetch { parts }, bytes)
        }
        2 => {
            let version = [1, 5, 7][rng.index(3)];
            let mut parts = Vec::new();
            let mut topics: Vec<ListOffsetsTopic> = Vec::new();
            for pk in pick_parts(rng, 2) {
                let ts = match rng.below(3) {
                    0 => -1,
                    1 => -2,
                    _ => now_ms - rng.below(300) as i64,
                };
                let p = ListOffsetsPartition::default()
                    .with_partition_index(pk.partition)
                    .with_timestamp(ts);
                let name = topic_name(model, pk);
                match topics.iter_mut().find(|t| t.name == name) {
                    Some(t) => t.partitions.push(p),
                    None => topics.push(
                        ListOffsetsTopic::default()
                            .with_name(name)
                            .with_partitions(vec![p]),
                    ),
                }
                parts.push((pk, ts));
            }
            let body = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(topics);
            let bytes = wire::frame(ApiKey::ListOffsets, version, corr, &body);
            (
                ApiKey::ListOffsets,
                version,
                Kind::ListOffsets { parts },
                bytes,
            )
        }
        _ => {
            let version = [1, 9, 12][rng.index(3)];
            let topics = model
                .topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
                })
                .collect();
            let body = MetadataRequest::default().with_topics(Some(topics));
            let bytes = wire::frame(ApiKey::Metadata, version, corr, &body);
            (ApiKey::Metadata, version, Kind::Metadata, bytes)
        }
    };
    let req = Req {
        corr,
        key,
        version,
        end: 0,
        kind,
        snap: None,
    };
    (bytes, req)
}

/// Check one answer against the model.
fn answer(model: &mut Model, req: &Req, snap: &Snap, frame: Bytes) -> Result<(), String> {
    let name = |model: &Model, pk: Pk| model.topics[pk.topic].name.clone();
    match &req.kind {
        Kind::Produce { acks, parts } => {
            let (_, r) = wire::decode::<ProduceResponse>(frame, req.key, req.version)?;
            for (pk, rids) in parts {
                let topic = name(model, *pk);
                let p = r
                    .responses
                    .iter()
                    .filter(|t| t.name.0.as_str() == topic)
                    .flat_map(|t| &t.partition_responses)
                    .find(|p| p.index == pk.partition)
                    .ok_or_else(|| format!("produce answer without {}", model.name(*pk)))?;
                model.produce_answer(snap, *pk, *acks, rids, p.error_code, p.base_offset)?;
            }
            Ok(())
        }
        Kind::Fetch { parts } => {
            let (_, r) = wire::decode::<FetchResponse>(frame, req.key, req.version)?;
            for (pk, offset) in parts {
                let topic = name(model, *pk);
                let p = r
                    .responses
                    .iter()
                    .filter(|t| t.topic.0.as_str() == topic)
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == pk.partition)
                    .ok_or_else(|| format!("fetch answer without {}", model.name(*pk)))?;
                if req.version >= 5 && p.error_code == 0 && p.log_start_offset != 0 {
                    return Err(format!(
                        "fetch of {}: log start {} with no retention",
                        model.name(*pk),
                        p.log_start_offset
                    ));
                }
                model.fetch_answer(
                    snap,
                    *pk,
                    *offset,
                    parts.len() == 1,
                    p.error_code,
                    p.high_watermark,
                    p.records.as_ref(),
                )?;
            }
            Ok(())
        }
        Kind::ListOffsets { parts } => {
            let (_, r) = wire::decode::<ListOffsetsResponse>(frame, req.key, req.version)?;
            for (pk, ts) in parts {
                let topic = name(model, *pk);
                let p = r
                    .topics
                    .iter()
                    .filter(|t| t.name.0.as_str() == topic)
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == pk.partition)
                    .ok_or_else(|| format!("list offsets answer without {}", model.name(*pk)))?;
                model.list_offsets_answer(snap, *pk, *ts, p.error_code, p.offset, p.timestamp)?;
            }
            Ok(())
        }
        Kind::Metadata => {
            let (_, r) = wire::decode::<MetadataResponse>(frame, req.key, req.version)?;
            for pk in model.pks() {
                let topic = name(model, pk);
                let t = r
                    .topics
                    .iter()
                    .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
                    .ok_or_else(|| format!("metadata answer without topic {topic}"))?;
                if t.error_code != 0
                    || t.partitions.len() != model.topics[pk.topic].partitions as usize
                {
                    return Err(format!(
                        "metadata of {topic}: error {}, {} partitions",
                        t.error_code,
                        t.partitions.len()
                    ));
                }
                let p = t
                    .partitions
                    .iter()
                    .find(|p| p.partition_index == pk.partition)
                    .ok_or_else(|| format!("metadata answer without {}", model.name(pk)))?;
                model.metadata_answer(snap, pk, p.error_code)?;
            }
            Ok(())
        }
    }
}
