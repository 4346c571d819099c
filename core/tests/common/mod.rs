//! The simulation harness shared by the broker simulation tests: the whole
//! broker under simulated time and a simulated disk; requests are encoded
//! with the `kafka-protocol` crate's client side, responses decoded with it,
//! file regions read back from the simulated disk.

#![allow(dead_code)] // each test file uses part of it

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use conveyor_core::sim::SimDisk;
use conveyor_core::{Broker, Command, Config, ConnId, Done, Now, Part, Poll};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub struct Sim {
    pub broker: Broker,
    pub disk: SimDisk,
    pub now: Now,
    /// Bytes written to each connection.
    pub wire: HashMap<ConnId, BytesMut>,
    pub closed: Vec<ConnId>,
    pub next_corr: i32,
    /// Bytes sent by each client and not yet taken by the broker.
    pub rbuf: HashMap<ConnId, BytesMut>,
    /// Connections the broker said to stop reading.
    pub paused: std::collections::HashSet<ConnId>,
    /// Every read interest change the broker output, in order.
    pub interest: Vec<(ConnId, bool)>,
    /// The deadline the broker last asked to be woken at.
    pub deadline: Option<conveyor_core::Instant>,
}

impl Sim {
    pub fn new(config: Config) -> Self {
        Self::with_disk(config, SimDisk::default())
    }

    pub fn with_disk(config: Config, mut disk: SimDisk) -> Self {
        let now = Now::new(conveyor_core::Instant::from_nanos(1), 1_700_000_000_000);
        // A new process: open files are gone, unfinished swaps settled.
        disk.restart();
        let state = disk.disk_state();
        let mut sim = Self {
            broker: Broker::new(config, now, state),
            disk,
            now,
            wire: HashMap::new(),
            closed: Vec::new(),
            next_corr: 1,
            rbuf: HashMap::new(),
            paused: Default::default(),
            interest: Vec::new(),
            deadline: None,
        };
        sim.run();
        sim
    }

    /// Drain the broker, executing every command at once.
    pub fn run(&mut self) {
        let stopped = self.run_until(|_| false);
        debug_assert!(stopped.is_none());
    }

    /// Drain the broker like [`Sim::run`], but stop at the first command
    /// `stop` picks, returning it unexecuted (a crash just before it).
    pub fn run_until(&mut self, stop: impl Fn(&Command) -> bool) -> Option<Command> {
        for _ in 0..100_000 {
            match self.broker.poll() {
                Poll::Wait(deadline) => {
                    self.deadline = deadline;
                    return None;
                }
                Poll::ReadInterest { conn, read } => {
                    self.interest.push((conn, read));
                    if read {
                        self.paused.remove(&conn);
                        // What was read but not taken goes in first.
                        let mut buf = self.rbuf.remove(&conn).unwrap_or_default();
                        self.broker.handle_read(self.now, conn, &mut buf);
                        self.rbuf.insert(conn, buf);
                    } else {
                        self.paused.insert(conn);
                    }
                }
                Poll::Command(cmd) => {
                    if stop(&cmd) {
                        return Some(cmd);
                    }
                    let done = match &cmd {
                        Command::Send { io, conn, parts } => {
                            let out = self.wire.entry(*conn).or_default();
                            for part in parts {
                                match part {
                                    Part::Bytes(b) => out.put_slice(b),
                                    Part::File { seg, pos, len } => {
                                        let path = self
                                            .disk
                                            .log_path(*seg)
                                            .expect("a sent segment is open");
                                        let file =
                                            self.disk.file(&path).expect("a sent segment exists");
                                        let (pos, len) = (*pos as usize, *len as usize);
                                        out.put_slice(&file[pos..pos + len]);
                                    }
                                }
                            }
                            Done::ok(*io)
                        }
                        Command::Close { io, conn } => {
                            self.closed.push(*conn);
                            Done::ok(*io)
                        }
                        _ => self.disk.execute(&cmd),
                    };
                    self.broker.handle_done(self.now, done);
                }
            }
        }
        panic!("the broker never went idle");
    }

    /// Move time on by `d`, then serve every deadline that is due, as a
    /// driver does (a deadline at or before now is served at once).
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.advance(d);
        self.broker.handle_timeout(self.now);
        self.run();
        for _ in 0..100_000 {
            match self.deadline {
                Some(t) if t <= self.now.mono => {
                    self.broker.handle_timeout(self.now);
                    self.run();
                }
                _ => return,
            }
        }
        panic!("the broker kept asking to be woken at once");
    }

    pub fn open(&mut self, id: u64) -> ConnId {
        let conn = ConnId(id);
        self.broker.handle_open(self.now, conn);
        conn
    }

    /// A client sends bytes; the broker reads them unless it said to stop
    /// reading the connection, as a driver does.
    pub fn send_raw(&mut self, conn: ConnId, bytes: &[u8]) {
        let mut buf = self.rbuf.remove(&conn).unwrap_or_default();
        buf.extend_from_slice(bytes);
        if !self.paused.contains(&conn) {
            self.broker.handle_read(self.now, conn, &mut buf);
        }
        self.rbuf.insert(conn, buf);
        self.run();
    }

    /// Send a request; returns its correlation id.
    pub fn send<T: Encodable>(&mut self, conn: ConnId, key: ApiKey, version: i16, body: &T) -> i32 {
        let mut buf = BytesMut::new();
        let corr = self.frame(key, version, body, &mut buf);
        self.send_raw(conn, &buf);
        corr
    }

    /// Append a request frame to `out` without sending it (to send several
    /// in one read); returns its correlation id.
    pub fn frame<T: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &T,
        out: &mut BytesMut,
    ) -> i32 {
        let corr = self.next_corr;
        self.next_corr += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("sim")));
        let start = out.len();
        out.put_i32(0);
        header
            .encode(out, key.request_header_version(version))
            .unwrap();
        body.encode(out, version).unwrap();
        let len = (out.len() - start - 4) as i32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        corr
    }

    /// The next whole response frame on `conn`, if any: (correlation id, body).
    pub fn recv_frame(&mut self, conn: ConnId, key: ApiKey, version: i16) -> Option<(i32, Bytes)> {
        let out = self.wire.get_mut(&conn)?;
        if out.len() < 4 {
            return None;
        }
        let len = i32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        if out.len() < 4 + len {
            return None;
        }
        let mut frame = out.split_to(4 + len).freeze();
        frame.advance(4);
        let header_version = if key == ApiKey::ApiVersions {
            0
        } else {
            key.response_header_version(version)
        };
        let header = ResponseHeader::decode(&mut frame, header_version).unwrap();
        Some((header.correlation_id, frame))
    }

    pub fn recv<T: Decodable>(&mut self, conn: ConnId, key: ApiKey, version: i16, corr: i32) -> T {
        let (got, mut body) = self
            .recv_frame(conn, key, version)
            .unwrap_or_else(|| panic!("no {key:?} response"));
        assert_eq!(got, corr, "responses leave in request order");
        let decoded = T::decode(&mut body, version).unwrap();
        assert!(body.is_empty(), "{key:?} v{version}: trailing bytes");
        decoded
    }

    pub fn metadata(&mut self, conn: ConnId, topic: &str) -> MetadataResponse {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(topic.into())))),
            ]))
            .with_allow_auto_topic_creation(true);
        let corr = self.send(conn, ApiKey::Metadata, 12, &req);
        self.recv(conn, ApiKey::Metadata, 12, corr)
    }

    pub fn produce(&mut self, conn: ConnId, topic: &str, partition: i32, batch: Bytes) -> i32 {
        let req = Sim::produce_req(topic, partition, batch);
        self.send(conn, ApiKey::Produce, 9, &req)
    }

    /// An acks=all produce of `batch` to one partition.
    pub fn produce_req(topic: &str, partition: i32, batch: Bytes) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.into())))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch)),
                    ]),
            ])
    }

    pub fn fetch_req(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.into())))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ])
    }
}

pub fn batch(values: &[&str], timestamp: i64, compression: Compression) -> Bytes {
    let records = values.iter().enumerate().map(|(i, v)| {
        let key = Bytes::from(format!("k{i}"));
        (
            Some(key),
            Some(Bytes::from(v.to_string())),
            timestamp + i as i64,
        )
    });
    encode_batch(records, compression)
}

/// One batch of `(key, value, timestamp)` records, offsets from 0.
fn encode_batch(
    records: impl Iterator<Item = (Option<Bytes>, Option<Bytes>, i64)>,
    compression: Compression,
) -> Bytes {
    let records: Vec<Record> = records
        .enumerate()
        .map(|(i, (key, value, timestamp))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence
            // changes; this keeps every record in one batch whose base
            // sequence is -1 (no idempotent producer).
            sequence: i as i32 - 1,
            timestamp,
            key,
            value,
            headers: IndexMap::new(),
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
    .unwrap();
    buf.freeze()
}

pub fn values_of(records: &Bytes) -> Vec<(i64, String)> {
    let mut buf = records.clone();
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
        for r in set.records {
            let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            out.push((r.offset, v));
        }
    }
    out
}

/// One batch of records `(key, value)` (either null), timestamps `ts`.
pub fn keyed_batch(
    records: &[(Option<&str>, Option<&str>)],
    ts: i64,
    compression: Compression,
) -> Bytes {
    let owned = |f: &Option<&str>| f.map(|f| Bytes::from(f.to_owned()));
    encode_batch(
        records.iter().map(|(k, v)| (owned(k), owned(v), ts)),
        compression,
    )
}

/// Create `name` with `partitions` and these topic configs; it must work.
pub fn create_topic(
    sim: &mut Sim,
    conn: ConnId,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let s = |v: &str| StrBytes::from_string(v.to_owned());
    let configs = configs
        .iter()
        .map(|&(k, v)| {
            create_topics_request::CreatableTopicConfig::default()
                .with_name(s(k))
                .with_value(Some(s(v)))
        })
        .collect();
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(configs),
    ]);
    let corr = sim.send(conn, ApiKey::CreateTopics, 7, &req);
    let r: CreateTopicsResponse = sim.recv(conn, ApiKey::CreateTopics, 7, corr);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}
