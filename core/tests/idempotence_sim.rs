//! Idempotent producers in the whole broker, under simulated time and a
//! simulated disk: InitProducerId, duplicates answered with their original
//! offsets, sequence and epoch errors, and producer state across clean and
//! unclean restarts.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::Sim;
use conveyor_core::{Config, ConnId};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A batch of `n` records from producer `pid` at `epoch`, sequences from `seq`.
fn idem_batch(pid: i64, epoch: i16, seq: i32, n: i32, timestamp: i64) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: seq.wrapping_add(i),
            timestamp: timestamp + i64::from(i),
            key: None,
            value: Some(Bytes::from(format!("s{}", seq + i))),
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
    .unwrap();
    buf.freeze()
}

fn init_pid(sim: &mut Sim, c: ConnId, version: i16, txn: Option<&'static str>) -> (i16, i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(txn.map(|t| TransactionalId(StrBytes::from_static_str(t))))
        .with_transaction_timeout_ms(60_000);
    let corr = sim.send(c, ApiKey::InitProducerId, version, &req);
    let r: InitProducerIdResponse = sim.recv(c, ApiKey::InitProducerId, version, corr);
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// Produce one batch; (error code, base offset).
fn produce(sim: &mut Sim, c: ConnId, batch: Bytes) -> (i16, i64) {
    let corr = sim.produce(c, "t", 0, batch);
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn high_watermark(sim: &mut Sim, c: ConnId) -> i64 {
    let corr = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req("t", 0, 0));
    let r: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, corr);
    r.responses[0].partitions[0].high_watermark
}

fn restart(sim: Sim, config: Config, crash: bool) -> Sim {
    let mut sim = sim;
    if !crash {
        sim.broker.shutdown(sim.now);
        sim.run();
        assert!(sim.broker.is_stopped());
    }
    let mut disk = std::mem::take(&mut sim.disk);
    if crash {
        disk.crash();
    }
    Sim::with_disk(config, disk)
}

#[test]
fn init_producer_id_hands_out_ids_that_never_repeat() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    let mut seen = Vec::new();
    for v in 0..=4 {
        let (code, pid, epoch) = init_pid(&mut sim, c, v, None);
        assert_eq!((code, epoch), (0, 0), "v{v}");
        // The block holding the id was on disk before the answer.
        let block = sim.disk.file("producer-id-block").expect("block file");
        let next: i64 = std::str::from_utf8(block)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            pid < next,
            "id {pid} handed out beyond the reserved block {next}"
        );
        seen.push(pid);
    }
    // Transactions are out of scope; an empty id is Kafka's INVALID_REQUEST.
    assert_eq!(init_pid(&mut sim, c, 4, Some("tx")).0, 15);
    assert_eq!(init_pid(&mut sim, c, 4, Some("")).0, 42);

    let mut sim = restart(sim, Config::default(), false);
    let c = sim.open(1);
    let (_, after_clean, _) = init_pid(&mut sim, c, 4, None);
    let mut sim = restart(sim, Config::default(), true);
    let c = sim.open(1);
    let (_, after_crash, _) = init_pid(&mut sim, c, 1, None);
    seen.extend([after_clean, after_crash]);
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "ids repeat: {seen:?}");
    assert!(after_crash > after_clean && after_clean > seen[4]);
}

#[test]
fn a_retried_batch_gets_its_original_offsets_and_is_not_stored_twice() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    sim.metadata(c, "t");
    let (_, pid, epoch) = init_pid(&mut sim, c, 4, None);
    let mut seq = 0;
    for i in 0..7 {
        let (code, base) = produce(&mut sim, c, idem_batch(pid, epoch, seq, 3, 1000));
        assert_eq!((code, base), (0, 3 * i));
        seq += 3;
    }
    // Each of the last five is a duplicate; the two before are too old to
    // be told from a gap.
    for i in 2..7 {
        let got = produce(&mut sim, c, idem_batch(pid, epoch, 3 * i as i32, 3, 1000));
        assert_eq!(got, (0, 3 * i), "retry of batch {i}");
    }
    assert_eq!(
        produce(&mut sim, c, idem_batch(pid, epoch, 3, 3, 1000)).0,
        45
    );
    assert_eq!(high_watermark(&mut sim, c), 21, "nothing appended twice");
    // A gap.
    assert_eq!(
        produce(&mut sim, c, idem_batch(pid, epoch, 22, 1, 1000)).0,
        45
    );
    // In order again.
    assert_eq!(
        produce(&mut sim, c, idem_batch(pid, epoch, 21, 1, 1000)),
        (0, 21)
    );
    // A new epoch starts at 0; after it the old epoch is fenced.
    assert_eq!(
        produce(&mut sim, c, idem_batch(pid, epoch + 1, 5, 1, 1000)).0,
        45
    );
    assert_eq!(
        produce(&mut sim, c, idem_batch(pid, epoch + 1, 0, 1, 1000)),
        (0, 22)
    );
    assert_eq!(
        produce(&mut sim, c, idem_batch(pid, epoch, 22, 1, 1000)).0,
        47
    );
    // A producer the partition has no state for is taken at any sequence
    // (Kafka 2.5+ no longer answers UNKNOWN_PRODUCER_ID).
    assert_eq!(
        produce(&mut sim, c, idem_batch(pid + 1, 0, 77, 1, 1000)),
        (0, 23)
    );
    // Errors decode on an old Produce version, which has no error message.
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(idem_batch(pid, epoch, 0, 1, 1000))),
                ]),
        ]);
    let corr = sim.send(c, ApiKey::Produce, 3, &req);
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 3, corr);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 47);
}

#[test]
fn dedupe_survives_a_clean_restart_and_a_crash() {
    let mut config = Config::default();
    // Every append synced, so a crash keeps what was acknowledged.
    config.set("log.flush.interval.messages", "1").unwrap();
    // Small segments: rolls write snapshots too.
    config.set("log.segment.bytes", "300").unwrap();
    let mut sim = Sim::new(config.clone());
    let c = sim.open(1);
    sim.metadata(c, "t");
    let (_, a, _) = init_pid(&mut sim, c, 4, None);
    let (_, b, _) = init_pid(&mut sim, c, 4, None);
    // Producer `b` writes once, early; its batch ends up in a sealed segment.
    assert_eq!(produce(&mut sim, c, idem_batch(b, 0, 0, 2, 1000)), (0, 0));
    let mut end = 2;
    for i in 0..10 {
        assert_eq!(
            produce(&mut sim, c, idem_batch(a, 0, 2 * i, 2, 1000)),
            (0, end)
        );
        end += 2;
    }
    assert!(
        sim.disk.paths().iter().any(|p| p.ends_with(".snapshot")),
        "rolls write snapshots"
    );

    // Clean restart: the shutdown snapshot is loaded.
    let mut sim = restart(sim, config.clone(), false);
    let c = sim.open(1);
    assert_eq!(produce(&mut sim, c, idem_batch(a, 0, 18, 2, 1000)), (0, 20));
    assert_eq!(produce(&mut sim, c, idem_batch(b, 0, 0, 2, 1000)), (0, 0));
    assert_eq!(produce(&mut sim, c, idem_batch(a, 0, 21, 2, 1000)).0, 45);
    assert_eq!(produce(&mut sim, c, idem_batch(a, 0, 20, 2, 1000)), (0, 22));

    // Crash: the latest snapshot at or below the log end, then the batches
    // after it replayed from the segments.
    let mut sim = restart(sim, config.clone(), true);
    let c = sim.open(1);
    assert_eq!(high_watermark(&mut sim, c), 24);
    assert_eq!(produce(&mut sim, c, idem_batch(a, 0, 20, 2, 1000)), (0, 22));
    assert_eq!(produce(&mut sim, c, idem_batch(b, 0, 0, 2, 1000)), (0, 0));
    assert_eq!(produce(&mut sim, c, idem_batch(a, 0, 23, 1, 1000)).0, 45);
    assert_eq!(high_watermark(&mut sim, c), 24);
}

#[test]
fn a_crash_without_any_snapshot_replays_the_log() {
    let mut config = Config::default();
    config.set("log.flush.interval.messages", "1").unwrap();
    let mut sim = Sim::new(config.clone());
    let c = sim.open(1);
    sim.metadata(c, "t");
    let (_, pid, _) = init_pid(&mut sim, c, 4, None);
    for i in 0..6 {
        assert_eq!(
            produce(&mut sim, c, idem_batch(pid, 0, i, 1, 1000)),
            (0, i64::from(i))
        );
    }
    assert!(!sim.disk.paths().iter().any(|p| p.ends_with(".snapshot")));
    let mut sim = restart(sim, config, true);
    let c = sim.open(1);
    assert_eq!(produce(&mut sim, c, idem_batch(pid, 0, 5, 1, 1000)), (0, 5));
    assert_eq!(produce(&mut sim, c, idem_batch(pid, 0, 1, 1, 1000)), (0, 1));
    assert_eq!(produce(&mut sim, c, idem_batch(pid, 0, 7, 1, 1000)).0, 45);
}

#[test]
fn idle_producers_expire() {
    let mut config = Config::default();
    config.set("producer.id.expiration.ms", "60000").unwrap();
    config
        .set("log.retention.check.interval.ms", "1000")
        .unwrap();
    let mut sim = Sim::new(config);
    let c = sim.open(1);
    sim.metadata(c, "t");
    let (_, pid, _) = init_pid(&mut sim, c, 4, None);
    let ts = sim.now.wall_ms;
    assert_eq!(produce(&mut sim, c, idem_batch(pid, 0, 0, 1, ts)).0, 0);
    sim.advance(Duration::from_secs(30));
    assert_eq!(produce(&mut sim, c, idem_batch(pid, 0, 5, 1, ts)).0, 45);
    sim.advance(Duration::from_secs(40));
    // Forgotten: any sequence is taken again.
    assert_eq!(produce(&mut sim, c, idem_batch(pid, 0, 5, 1, ts)), (0, 1));
}

#[test]
fn a_snapshot_past_the_recovered_log_end_is_not_trusted() {
    let mut config = Config::default();
    config.set("log.segment.bytes", "300").unwrap();
    let mut sim = Sim::new(config.clone());
    let c = sim.open(1);
    sim.metadata(c, "t");
    let (_, pid, _) = init_pid(&mut sim, c, 4, None);
    for i in 0..8 {
        assert_eq!(
            produce(&mut sim, c, idem_batch(pid, 0, 2 * i, 2, 1000)).0,
            0
        );
    }
    // Damage the first segment's tail: recovery cuts the log there, below
    // every snapshot the rolls wrote, and must not believe them.
    let first = "t-0/00000000000000000000.log";
    let len = sim.disk.file(first).unwrap().len();
    assert!(sim.disk.cut(first, len - 1));
    let mut sim = restart(sim, config, true);
    let c = sim.open(1);
    let end = high_watermark(&mut sim, c);
    assert!(end < 16 && end % 2 == 0, "log cut to {end}");
    let paths = sim.disk.paths();
    let snapshots: Vec<_> = paths.iter().filter(|p| p.ends_with(".snapshot")).collect();
    assert!(
        snapshots
            .iter()
            .all(|p| *p < &format!("t-0/{:020}.snapshot", end + 1)),
        "snapshots past the log end are removed: {snapshots:?}"
    );
    let next = i32::try_from(end).unwrap();
    // Sequences continue from what the log holds, not from the snapshot.
    assert_eq!(
        produce(&mut sim, c, idem_batch(pid, 0, next, 2, 1000)),
        (0, end)
    );
    assert_eq!(
        produce(&mut sim, c, idem_batch(pid, 0, next - 2, 2, 1000)),
        (0, end - 2)
    );
}
