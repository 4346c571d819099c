//! DescribeProducers against the whole broker: the idempotent producers
//! each partition knows, kept across a restart.

mod common;

use bytes::{Bytes, BytesMut};
use common::{Sim, batch};
use conveyor_core::{Config, ConnId};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

fn config() -> Config {
    let mut config = Config::default();
    config.set("num.partitions", "2").unwrap();
    config
}

fn name(v: &str) -> TopicName {
    TopicName(StrBytes::from_string(v.to_owned()))
}

/// A batch of `n` records from producer `pid` at `epoch`, sequences from
/// `seq`, the last record stamped `timestamp + n - 1`.
fn idempotent(pid: i64, epoch: i16, seq: i32, n: i32, timestamp: i64) -> Bytes {
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
            sequence: seq + i,
            timestamp: timestamp + i64::from(i),
            key: None,
            value: Some(Bytes::from(format!("v{i}"))),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.freeze()
}

fn produce(sim: &mut Sim, c: ConnId, partition: i32, batch: Bytes) {
    let corr = sim.produce(c, "t", partition, batch);
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}

/// DescribeProducers of `parts`: per partition (topic, index, error, and
/// each producer's id, epoch, last sequence, last timestamp, coordinator
/// epoch, transaction start).
#[allow(clippy::type_complexity)]
fn producers(
    sim: &mut Sim,
    c: ConnId,
    parts: &[(&str, &[i32])],
) -> Vec<(String, i32, i16, Vec<(i64, i32, i32, i64, i32, i64)>)> {
    let req = DescribeProducersRequest::default().with_topics(
        parts
            .iter()
            .map(|&(t, ps)| {
                TopicRequest::default()
                    .with_name(name(t))
                    .with_partition_indexes(ps.to_vec())
            })
            .collect(),
    );
    let corr = sim.send(c, ApiKey::DescribeProducers, 0, &req);
    let r: DescribeProducersResponse = sim.recv(c, ApiKey::DescribeProducers, 0, corr);
    let mut out = Vec::new();
    for t in &r.topics {
        for p in &t.partitions {
            let states = p
                .active_producers
                .iter()
                .map(|s| {
                    (
                        s.producer_id.0,
                        s.producer_epoch,
                        s.last_sequence,
                        s.last_timestamp,
                        s.coordinator_epoch,
                        s.current_txn_start_offset,
                    )
                })
                .collect();
            out.push((
                t.name.0.to_string(),
                p.partition_index,
                p.error_code,
                states,
            ));
        }
    }
    out
}

#[test]
fn describe_producers_reports_each_partitions_idempotent_producers() {
    let mut sim = Sim::new(config());
    let c = sim.open(1);
    sim.metadata(c, "t");
    let t0 = sim.now.wall_ms;
    produce(&mut sim, c, 0, idempotent(9, 2, 0, 3, t0));
    produce(&mut sim, c, 0, idempotent(9, 2, 3, 2, t0 + 100));
    produce(&mut sim, c, 0, idempotent(4, 0, 0, 1, t0 + 50));
    // Batches without a producer id leave no state.
    produce(
        &mut sim,
        c,
        0,
        batch(&["plain"], t0 + 10, Compression::None),
    );
    produce(
        &mut sim,
        c,
        1,
        batch(&["plain"], t0 + 10, Compression::None),
    );

    let expected = vec![
        (
            "t".to_owned(),
            0,
            0,
            vec![(4, 0, 0, t0 + 50, -1, -1), (9, 2, 4, t0 + 101, -1, -1)],
        ),
        ("t".to_owned(), 1, 0, vec![]),
        ("t".to_owned(), 7, 3, vec![]),
        ("missing".to_owned(), 0, 3, vec![]),
    ];
    let ask: &[(&str, &[i32])] = &[("t", &[0, 1, 7]), ("missing", &[0])];
    assert_eq!(producers(&mut sim, c, ask), expected);

    // The state comes back from the log after a kill.
    sim.disk.restart();
    let mut sim = Sim::with_disk(config(), std::mem::take(&mut sim.disk));
    let c = sim.open(1);
    assert_eq!(producers(&mut sim, c, ask), expected);
}
