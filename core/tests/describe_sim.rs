//! DescribeProducers and DescribeLogDirs against the whole broker: the
//! idempotent producers each partition knows (kept across a restart), and
//! the data directory with each partition's size on the simulated disk.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{Sim, batch};
use conveyor_core::{Config, ConnId};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const LOG_DIR: &str = "/srv/conveyor/data";

fn config() -> Config {
    let mut config = Config::default();
    config.set("num.partitions", "2").unwrap();
    config.log_dir = LOG_DIR.to_owned();
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

/// DescribeLogDirs at `version` (0 is written as 1: the same bytes).
fn log_dirs(
    sim: &mut Sim,
    c: ConnId,
    version: i16,
    topics: Option<&[(&str, &[i32])]>,
) -> DescribeLogDirsResponse {
    let req = DescribeLogDirsRequest::default().with_topics(topics.map(|ts| {
        ts.iter()
            .map(|&(t, ps)| {
                DescribableLogDirTopic::default()
                    .with_topic(name(t))
                    .with_partitions(ps.to_vec())
            })
            .collect()
    }));
    let layout = version.max(1);
    let corr = if version == 0 {
        let corr = 4242;
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        frame.put_i16(ApiKey::DescribeLogDirs as i16);
        frame.put_i16(0);
        frame.put_i32(corr);
        frame.put_i16(-1); // no client id
        req.encode(&mut frame, layout).unwrap();
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        sim.send_raw(c, &frame);
        corr
    } else {
        sim.send(c, ApiKey::DescribeLogDirs, version, &req)
    };
    sim.recv(c, ApiKey::DescribeLogDirs, layout, corr)
}

/// (topic, [(partition, size)]) of the one directory in `r`.
fn sizes(r: &DescribeLogDirsResponse) -> Vec<(String, Vec<(i32, i64)>)> {
    assert_eq!(r.results.len(), 1, "one log directory");
    let dir = &r.results[0];
    assert_eq!((dir.error_code, dir.log_dir.as_str()), (0, LOG_DIR));
    dir.topics
        .iter()
        .map(|t| {
            let ps = t
                .partitions
                .iter()
                .map(|p| {
                    assert_eq!((p.offset_lag, p.is_future_key), (0, false));
                    (p.partition_index, p.partition_size)
                })
                .collect();
            (t.name.0.to_string(), ps)
        })
        .collect()
}

#[test]
fn describe_log_dirs_reports_the_data_directory_and_partition_sizes() {
    let mut config = config();
    config.set("log.segment.bytes", "300").unwrap();
    let mut sim = Sim::new(config);
    let c = sim.open(1);
    sim.metadata(c, "t");
    sim.metadata(c, "u");
    for i in 0..6 {
        let ts = sim.now.wall_ms + i;
        produce(
            &mut sim,
            c,
            0,
            batch(&["aaaa", "bbbb"], ts, Compression::None),
        );
    }
    let ts = sim.now.wall_ms;
    produce(&mut sim, c, 1, batch(&["one"], ts, Compression::None));
    // Every segment's log file counts, sealed and active.
    let on_disk = |sim: &Sim, dir: &str| -> i64 {
        let paths = sim.disk.paths();
        let logs: Vec<&String> = paths
            .iter()
            .filter(|p| p.starts_with(&format!("{dir}/")) && p.ends_with(".log"))
            .collect();
        logs.iter()
            .map(|p| sim.disk.file(p).map_or(0, <[u8]>::len) as i64)
            .sum()
    };
    let segments = sim
        .disk
        .paths()
        .iter()
        .filter(|p| p.starts_with("t-0/") && p.ends_with(".log"))
        .count();
    assert!(segments >= 2, "{segments} segments");
    let (t0, t1) = (on_disk(&sim, "t-0"), on_disk(&sim, "t-1"));
    assert!(t0 > 0 && t1 > 0);

    // Everything, with the volume's size unknown (-1) from v4.
    let r = log_dirs(&mut sim, c, 4, None);
    assert_eq!(
        sizes(&r),
        [
            ("t".to_owned(), vec![(0, t0), (1, t1)]),
            ("u".to_owned(), vec![(0, 0), (1, 0)]),
        ]
    );
    assert_eq!(
        (r.results[0].total_bytes, r.results[0].usable_bytes),
        (-1, -1)
    );

    // What was asked for, at every version; what does not exist is left
    // out, and so is a topic none of whose partitions were asked for.
    let ask: &[(&str, &[i32])] = &[("t", &[1, 9, 1]), ("missing", &[0]), ("u", &[])];
    for v in 0..=4 {
        let r = log_dirs(&mut sim, c, v, Some(ask));
        assert_eq!(sizes(&r), [("t".to_owned(), vec![(1, t1)])], "v{v}");
    }
    let r = log_dirs(&mut sim, c, 2, Some(&[]));
    assert!(sizes(&r).is_empty());
}
