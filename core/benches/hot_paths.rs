//! Criterion benches of the core's hot paths, all under the simulated disk
//! (`conveyor_core::sim::SimDisk`) and with requests encoded by
//! `kafka-protocol`'s client side, as `tests/broker_sim.rs` does:
//!
//! - `produce/*`: one Produce request (one batch) through `handle_read`,
//!   validation, offset assignment, the `Append` (executed by SimDisk), its
//!   completion and the response `Send` — the whole per-batch cost.
//! - `validate/*`: `validate_client_batch` alone (framing, CRC-32C, record walk).
//! - `index/*`: `PartitionLog::read` at random offsets over a log of many
//!   small batches in many segments (sealed ones through their mapped
//!   indexes): the lookup alone, and a whole 1 MiB answer sized.
//! - `fetch/plan`: one Fetch request through `handle_read` to its `Send`
//!   (record bytes as a file part: nothing is read).
//! - `decode/*`: the request header and ProduceRequest decode the core runs
//!   (kafka-protocol's decoder; the core's own framing is private).
//!
//! `cargo bench -p conveyor-core --bench hot_paths` (add `-- --quick` for a
//! fast, rougher run).

use std::hint::black_box;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use conveyor_core::config::TopicConfig;
use conveyor_core::io::Ids;
use conveyor_core::log::PartitionLog;
use conveyor_core::log::batch::validate_client_batch;
use conveyor_core::sim::SimDisk;
use conveyor_core::{Broker, Command, Config, ConnId, Done, Now, Poll};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, MetadataRequest, ProduceRequest, RequestHeader, TopicName,
    metadata_request,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const TOPIC: &str = "bench";
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;

/// One RecordBatch v2 of `count` records with `size`-byte values, no keys,
/// base offset 0, as a producer sends it.
fn batch(count: usize, size: usize) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Keeps every record in one batch (see tests/broker_sim.rs).
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::from(vec![b'A' + (i % 26) as u8; size])),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode a batch");
    buf.freeze()
}

/// A whole request frame: length, header v1/v2, body.
fn frame<T: Encodable>(key: ApiKey, version: i16, corr: i32, body: &T) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(corr)
        .with_client_id(Some(StrBytes::from_static_str("bench")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, key.request_header_version(version))
        .expect("encode header");
    body.encode(&mut buf, version).expect("encode body");
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

fn produce_frame(records: Bytes) -> Bytes {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    frame(ApiKey::Produce, PRODUCE_VERSION, 7, &req)
}

fn fetch_frame(offset: i64) -> Bytes {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    frame(ApiKey::Fetch, FETCH_VERSION, 9, &req)
}

/// A broker over a SimDisk with one connection and the one-partition
/// topic `bench` created (by Metadata with auto-creation).
struct Sim {
    broker: Broker,
    disk: SimDisk,
    now: Now,
    conn: ConnId,
    sends: u64,
    /// Answer `Append`s done without storing them (the core's cost alone,
    /// without SimDisk's copy into its growing in-memory file).
    null_appends: bool,
}

impl Sim {
    fn new(config: Config) -> Sim {
        let now = Now::new(conveyor_core::Instant::from_nanos(1), 1_700_000_000_000);
        let disk = SimDisk::default();
        let broker = Broker::new(config, now, disk.disk_state());
        let mut sim = Sim {
            broker,
            disk,
            now,
            conn: ConnId(1),
            sends: 0,
            null_appends: false,
        };
        sim.drain();
        sim.broker.handle_open(now, sim.conn);
        let md = MetadataRequest::default()
            .with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC)))),
            ]))
            .with_allow_auto_topic_creation(true);
        sim.input(&frame(ApiKey::Metadata, 12, 1, &md));
        sim
    }

    /// Feeds one frame (copied into a fresh buffer) and runs the broker idle.
    fn input(&mut self, frame: &[u8]) {
        let mut buf = BytesMut::from(frame);
        self.feed(&mut buf);
    }

    fn feed(&mut self, buf: &mut BytesMut) {
        self.broker.handle_read(self.now, self.conn, buf);
        self.drain();
    }

    /// Executes every command at once: file work on the SimDisk, sends and
    /// closes answered done.
    fn drain(&mut self) {
        loop {
            match self.broker.poll() {
                Poll::Wait(_) => return,
                Poll::ReadInterest { .. } => {}
                Poll::Command(cmd) => {
                    let done = match &cmd {
                        Command::Send { io, .. } => {
                            self.sends += 1;
                            Done::ok(*io)
                        }
                        Command::Append { io, .. } if self.null_appends => Done::ok(*io),
                        Command::Close { .. } => panic!("the broker closed the bench connection"),
                        _ => self.disk.execute(&cmd),
                    };
                    self.broker.handle_done(self.now, done);
                }
            }
        }
    }
}

fn config() -> Config {
    let mut c = Config::default();
    c.set("auto.create.topics.enable", "true").expect("setting");
    c.set("num.partitions", "1").expect("setting");
    c
}

/// Per batch: handle_read of a Produce frame to the response's Send, the
/// Append executed by SimDisk (`simdisk/*`) or answered without storing
/// (`null-append/*`: the core alone). A fresh broker every `CHUNK_BYTES`
/// of log keeps memory bounded and stays inside one segment; rebuilding is
/// not timed, nor is copying the frames into their read buffers.
// The core never reads a clock; this bench times it with the wall clock.
#[allow(clippy::disallowed_types, clippy::disallowed_methods)]
fn bench_produce(c: &mut Criterion) {
    use std::time::Instant;
    const CHUNK_BYTES: usize = 64 << 20;
    let mut group = c.benchmark_group("produce");
    for null_appends in [false, true] {
        for (count, size) in [(1usize, 100usize), (100, 100), (64, 1024)] {
            let frame = produce_frame(batch(count, size));
            let per_chunk = (CHUNK_BYTES / frame.len()).max(1);
            let disk = if null_appends {
                "null-append"
            } else {
                "simdisk"
            };
            group.throughput(Throughput::Elements(count as u64));
            group.bench_function(format!("{disk}/{count}x{size}B"), |b| {
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(per_chunk as u64);
                        left -= n;
                        let mut sim = Sim::new(config());
                        sim.null_appends = null_appends;
                        let mut bufs: Vec<BytesMut> =
                            (0..n).map(|_| BytesMut::from(&frame[..])).collect();
                        let before = sim.sends;
                        let start = Instant::now();
                        for buf in &mut bufs {
                            sim.feed(buf);
                        }
                        elapsed += start.elapsed();
                        assert_eq!(sim.sends - before, n, "one response per produce");
                    }
                    elapsed
                });
            });
        }
    }
    group.finish();
}

fn bench_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    for (count, size) in [(100usize, 100usize), (64, 1024)] {
        let records = batch(count, size);
        group.throughput(Throughput::Bytes(records.len() as u64));
        group.bench_function(format!("{count}x{size}B"), |b| {
            b.iter(|| validate_client_batch(black_box(&records), 1 << 20).expect("valid"));
        });
    }
    group.finish();
}

/// Appends `batches` single-record batches of ~100 B to a log with 1 MiB
/// segments, every command executed by SimDisk and answered.
fn build_log(batches: u64) -> PartitionLog {
    let mut topic = TopicConfig::default();
    topic
        .set("segment.bytes", "1048576")
        .expect("segment.bytes");
    let mut disk = SimDisk::default();
    let mut ids = Ids::default();
    let mut out = Vec::new();
    let mut log = PartitionLog::create(format!("{TOPIC}-0"), topic, 0, &mut ids, &mut out);
    let now = Now::new(conveyor_core::Instant::from_nanos(1), 1_700_000_000_000);
    let records = batch(1, 100);
    let header = validate_client_batch(&records, 1 << 20).expect("valid");
    let mut run = |log: &mut PartitionLog, out: &mut Vec<Command>, ids: &mut Ids| {
        while !out.is_empty() {
            for cmd in std::mem::take(out) {
                let done = disk.execute(&cmd);
                let event = log.handle_done(done.io, done.result, ids, out);
                assert!(event.failed.is_none(), "SimDisk failed a command");
            }
        }
    };
    run(&mut log, &mut out, &mut ids);
    for _ in 0..batches {
        log.append(now, records.clone(), &header, &mut ids, &mut out)
            .expect("append");
        run(&mut log, &mut out, &mut ids);
    }
    assert_eq!(log.high_watermark(), batches);
    log
}

fn bench_index(c: &mut Criterion) {
    const BATCHES: u64 = 200_000;
    let log = build_log(BATCHES);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let offsets: Vec<u64> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % BATCHES
        })
        .collect();
    let mut group = c.benchmark_group("index");
    let name = format!("{BATCHES}-batches-{}-segments", log.segment_count());
    // max_bytes 1: the lookup alone (the first batch is always answered);
    // 1 MiB: the lookup plus the walk that sizes a whole fetch answer.
    for (label, max_bytes) in [("lookup", 1u64), ("read-1MiB", 1 << 20)] {
        group.bench_function(format!("{label}/{name}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % offsets.len();
                log.read(black_box(offsets[i]), max_bytes)
                    .expect("in range")
            });
        });
    }
    group.finish();
}

fn bench_fetch(c: &mut Criterion) {
    const BATCHES: i64 = 20_000;
    let mut sim = Sim::new(config());
    let produce = produce_frame(batch(10, 100));
    for _ in 0..BATCHES {
        sim.input(&produce);
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let frames: Vec<Bytes> = (0..256)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            fetch_frame((state % (BATCHES as u64 * 10)) as i64)
        })
        .collect();
    let mut group = c.benchmark_group("fetch");
    group.bench_function("plan", |b| {
        let mut i = 0;
        b.iter_batched(
            || {
                i = (i + 1) % frames.len();
                BytesMut::from(&frames[i][..])
            },
            |mut buf| {
                let before = sim.sends;
                sim.feed(&mut buf);
                assert_eq!(sim.sends, before + 1, "one response per fetch");
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (count, size) in [(100usize, 100usize), (64, 1024)] {
        let frame = produce_frame(batch(count, size));
        group.bench_function(format!("produce-request/{count}x{size}B"), |b| {
            b.iter(|| {
                let mut body = frame.slice(4..);
                let header_version = ApiKey::Produce.request_header_version(PRODUCE_VERSION);
                let header = RequestHeader::decode(&mut body, header_version).expect("header");
                let req =
                    ProduceRequest::decode(&mut body, header.request_api_version).expect("body");
                assert!(!body.has_remaining());
                black_box(req)
            });
        });
    }
    group.finish();
}

criterion_group!(
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_produce, bench_validate, bench_index, bench_fetch, bench_decode
);
criterion_main!(benches);
