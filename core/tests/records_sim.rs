//! DeleteRecords: the log start moves, reads below it are out of range,
//! ListOffsets earliest follows, the segments below it go, and a kill
//! right after does not bring the records back.

mod common;

use common::{Sim, batch};
use conveyor_core::{Config, ConnId};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("trim"))
}

/// DeleteRecords of partition 0 below `offset`: (low watermark, error).
fn delete(sim: &mut Sim, c: ConnId, offset: i64) -> (i64, i16) {
    let req = DeleteRecordsRequest::default()
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic())
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(offset),
                ]),
        ])
        .with_timeout_ms(1000);
    let corr = sim.send(c, ApiKey::DeleteRecords, 2, &req);
    let r: DeleteRecordsResponse = sim.recv(c, ApiKey::DeleteRecords, 2, corr);
    let p = &r.topics[0].partitions[0];
    (p.low_watermark, p.error_code)
}

fn earliest(sim: &mut Sim, c: ConnId) -> i64 {
    let req = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(topic())
            .with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-2),
            ]),
    ]);
    let corr = sim.send(c, ApiKey::ListOffsets, 7, &req);
    let r: ListOffsetsResponse = sim.recv(c, ApiKey::ListOffsets, 7, corr);
    r.topics[0].partitions[0].offset
}

fn fetch_error(sim: &mut Sim, c: ConnId, offset: i64) -> i16 {
    let corr = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req("trim", offset, 0));
    let r: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, corr);
    r.responses[0].partitions[0].error_code
}

#[test]
fn delete_records_moves_the_log_start_for_good() {
    let mut config = Config::default();
    config.set("log.segment.bytes", "200").unwrap();
    let mut sim = Sim::new(config.clone());
    let c = sim.open(1);
    let _ = sim.metadata(c, "trim");
    for i in 0..5 {
        let ts = sim.now.wall_ms + i;
        let corr = sim.produce(c, "trim", 0, batch(&["a", "b"], ts, Compression::None));
        let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let segments = |sim: &Sim| {
        sim.disk
            .paths()
            .iter()
            .filter(|p| p.ends_with(".log"))
            .count()
    };
    let before = segments(&sim);
    assert!(before >= 3, "{before} segments");

    assert_eq!(delete(&mut sim, c, 6), (6, 0));
    assert_eq!(earliest(&mut sim, c), 6);
    assert_eq!(
        fetch_error(&mut sim, c, 0),
        1,
        "OFFSET_OUT_OF_RANGE below the start"
    );
    assert_eq!(fetch_error(&mut sim, c, 6), 0);
    assert!(
        segments(&sim) < before,
        "segments below the start are deleted"
    );
    assert_eq!(delete(&mut sim, c, 4), (6, 0), "the start never moves back");
    assert_eq!(delete(&mut sim, c, 11).1, 1, "past the high watermark");
    assert_eq!(delete(&mut sim, c, -1), (10, 0), "-1: the high watermark");

    // The process killed right after (the page cache survives): the
    // checkpoint was written at once, so the records stay deleted.
    sim.disk.restart();
    let mut sim = Sim::with_disk(config, std::mem::take(&mut sim.disk));
    let c = sim.open(1);
    assert_eq!(earliest(&mut sim, c), 10);
    assert_eq!(fetch_error(&mut sim, c, 5), 1);
}

#[test]
fn compacted_topics_refuse_delete_records() {
    let mut config = Config::default();
    config.set("log.cleanup.policy", "compact").unwrap();
    let mut sim = Sim::new(config);
    let c = sim.open(1);
    let _ = sim.metadata(c, "trim");
    assert_eq!(delete(&mut sim, c, 0).1, 44, "POLICY_VIOLATION");
    let req = DeleteRecordsRequest::default().with_topics(vec![
        DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("missing")))
            .with_partitions(vec![DeleteRecordsPartition::default().with_offset(0)]),
    ]);
    let corr = sim.send(c, ApiKey::DeleteRecords, 0, &req);
    let r: DeleteRecordsResponse = sim.recv(c, ApiKey::DeleteRecords, 0, corr);
    assert_eq!(r.topics[0].partitions[0].error_code, 3);
}

#[test]
fn list_offsets_max_timestamp_finds_the_newest_record() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    let _ = sim.metadata(c, "trim");
    let t = sim.now.wall_ms;
    for (values, ts, codec) in [
        (&["a", "b", "c"][..], t, Compression::None),
        (&["d", "e"][..], t + 100, Compression::Gzip),
        (&["f", "g", "h"][..], t + 50, Compression::None),
    ] {
        let corr = sim.produce(c, "trim", 0, batch(values, ts, codec));
        let _: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    }
    let ask = |sim: &mut Sim, v: i16| {
        let req = ListOffsetsRequest::default().with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic())
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-3),
                ]),
        ]);
        let corr = sim.send(c, ApiKey::ListOffsets, v, &req);
        let r: ListOffsetsResponse = sim.recv(c, ApiKey::ListOffsets, v, corr);
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    // "e", the second record of the compressed batch, has t+101.
    assert_eq!(ask(&mut sim, 7), (0, 4, t + 101));
    assert_eq!(ask(&mut sim, 6).0, 35, "-3 needs v7: UNSUPPORTED_VERSION");
}
