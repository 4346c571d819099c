//! The whole broker under simulated time and a simulated disk (the harness
//! is in `common/`).

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{Sim, batch, values_of};
use conveyor_core::{Config, ConnId};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

#[test]
fn api_versions_answers_every_version_with_header_v0() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    for version in 0..=3 {
        let corr = sim.send(
            c,
            ApiKey::ApiVersions,
            version,
            &ApiVersionsRequest::default(),
        );
        let r: ApiVersionsResponse = sim.recv(c, ApiKey::ApiVersions, version, corr);
        assert_eq!(r.error_code, 0);
        let produce = r.api_keys.iter().find(|k| k.api_key == 0).unwrap();
        assert_eq!((produce.min_version, produce.max_version), (0, 10));
    }
    // An unknown version gets a v0 answer with UNSUPPORTED_VERSION.
    sim.send_raw(c, &[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 42, 0xff, 0xff]);
    let r: ApiVersionsResponse = sim.recv(c, ApiKey::ApiVersions, 0, 42);
    assert_eq!(r.error_code, 35);
    assert!(!r.api_keys.is_empty());
}

#[test]
fn produce_then_fetch_returns_the_batch_with_offsets() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    let md = sim.metadata(c, "orders");
    assert_eq!(md.topics[0].error_code, 0);
    assert_eq!(md.topics[0].partitions.len(), 1);
    for (i, compression) in [Compression::None, Compression::Gzip]
        .into_iter()
        .enumerate()
    {
        let corr = sim.produce(c, "orders", 0, batch(&["a", "b", "c"], 1000, compression));
        let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(p.base_offset, 3 * i as i64);
    }
    // From the middle of the second batch: the response starts at the batch
    // holding offset 4; clients skip offset 3.
    for version in [4, 11, 12] {
        let corr = sim.send(c, ApiKey::Fetch, version, &Sim::fetch_req("orders", 4, 0));
        let r: FetchResponse = sim.recv(c, ApiKey::Fetch, version, corr);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(p.high_watermark, 6);
        let got = values_of(p.records.as_ref().unwrap());
        assert_eq!(got.first(), Some(&(3, "a".to_owned())), "v{version}");
        assert_eq!(got.last(), Some(&(5, "c".to_owned())), "v{version}");
    }
    // Past the end: OFFSET_OUT_OF_RANGE.
    let corr = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req("orders", 7, 0));
    let r: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, corr);
    assert_eq!(r.responses[0].partitions[0].error_code, 1);
}

#[test]
fn long_poll_fetch_wakes_on_append_and_on_deadline() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    let p = sim.open(2);
    sim.metadata(c, "t");
    let corr = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req("t", 0, 5000));
    assert!(
        sim.recv_frame(c, ApiKey::Fetch, 12).is_none(),
        "waits for data"
    );
    let pc = sim.produce(p, "t", 0, batch(&["x"], 1, Compression::None));
    let _: ProduceResponse = sim.recv(p, ApiKey::Produce, 9, pc);
    let r: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, corr);
    assert_eq!(
        values_of(r.responses[0].partitions[0].records.as_ref().unwrap()).len(),
        1
    );

    let corr = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req("t", 1, 500));
    sim.advance(Duration::from_millis(499));
    assert!(sim.recv_frame(c, ApiKey::Fetch, 12).is_none());
    sim.advance(Duration::from_millis(2));
    let r: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, corr);
    let records = r.responses[0].partitions[0].records.as_ref();
    assert!(records.is_none_or(|r| r.is_empty()));
}

#[test]
fn responses_leave_in_request_order() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    sim.metadata(c, "t");
    // A long-polling fetch first, then an ApiVersions: the ApiVersions
    // answer must wait behind the fetch.
    let f = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req("t", 0, 1000));
    let a = sim.send(c, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert!(sim.recv_frame(c, ApiKey::Fetch, 12).is_none());
    sim.advance(Duration::from_millis(1001));
    let _: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, f);
    let _: ApiVersionsResponse = sim.recv(c, ApiKey::ApiVersions, 3, a);
}

#[test]
fn bad_batches_get_kafka_error_codes() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    sim.metadata(c, "t");
    let good = batch(&["a"], 1, Compression::None);
    let mut bad_crc = BytesMut::from(&good[..]);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let mut nonzero_base = BytesMut::from(&good[..]);
    nonzero_base[7] = 5;
    for (records, code) in [
        (bad_crc.freeze(), 2),
        (good.slice(..good.len() - 3), 2),
        (nonzero_base.freeze(), 87),
    ] {
        let corr = sim.produce(c, "t", 0, records);
        let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
        assert_eq!(r.responses[0].partition_responses[0].error_code, code);
    }
    let corr = sim.produce(c, "nope", 0, good.clone());
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 3);
    // Nothing bad was stored: the log is still empty, then takes a good batch.
    let corr = sim.produce(c, "t", 0, good);
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 0);
}

#[test]
fn broken_framing_closes_only_that_connection() {
    let mut config = Config::default();
    config.set("socket.request.max.bytes", "1000").unwrap();
    let mut sim = Sim::new(config);
    let (a, b, c) = (sim.open(1), sim.open(2), sim.open(3));
    sim.send_raw(a, &[0, 0, 0x10, 0]); // 4096 > 1000
    sim.send_raw(b, &[0, 0, 0, 10, 0x7f, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff]); // unknown key
    assert_eq!(sim.closed, vec![a, b]);
    let corr = sim.send(c, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let r: ApiVersionsResponse = sim.recv(c, ApiKey::ApiVersions, 3, corr);
    assert_eq!(r.error_code, 0);
}

#[test]
fn clean_restart_keeps_everything_and_crash_keeps_what_was_synced() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    sim.metadata(c, "t");
    for i in 0..10 {
        let corr = sim.produce(c, "t", 0, batch(&["v"], i, Compression::None));
        let _: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    }
    sim.broker.shutdown(sim.now);
    sim.run();
    assert!(sim.broker.is_stopped());

    let mut sim = Sim::with_disk(Config::default(), std::mem::take(&mut sim.disk));
    let c = sim.open(1);
    let corr = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req("t", 0, 0));
    let r: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, corr);
    assert_eq!(r.responses[0].partitions[0].high_watermark, 10);
    assert_eq!(
        values_of(r.responses[0].partitions[0].records.as_ref().unwrap()).len(),
        10
    );

    // Appends after the restart are not synced; a crash may lose them but
    // never serves a torn batch, and the synced ten remain.
    for i in 0..5 {
        let corr = sim.produce(c, "t", 0, batch(&["w"], i, Compression::None));
        let _: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    }
    let mut disk = std::mem::take(&mut sim.disk);
    disk.crash();
    let mut sim = Sim::with_disk(Config::default(), disk);
    let c = sim.open(1);
    let corr = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req("t", 0, 0));
    let r: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, corr);
    let hw = r.responses[0].partitions[0].high_watermark;
    assert!((10..=15).contains(&hw), "high watermark {hw}");
    let got = values_of(r.responses[0].partitions[0].records.as_ref().unwrap());
    assert_eq!(got.len() as i64, hw);
}

#[test]
fn create_and_delete_topics() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("three")))
            .with_num_partitions(3)
            .with_replication_factor(1),
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("bad/name")))
            .with_num_partitions(1)
            .with_replication_factor(1),
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("rf3")))
            .with_num_partitions(1)
            .with_replication_factor(3),
    ]);
    let corr = sim.send(c, ApiKey::CreateTopics, 7, &req);
    let r: CreateTopicsResponse = sim.recv(c, ApiKey::CreateTopics, 7, corr);
    let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [0, 17, 38]);
    let corr = sim.send(c, ApiKey::CreateTopics, 7, &req);
    let r: CreateTopicsResponse = sim.recv(c, ApiKey::CreateTopics, 7, corr);
    assert_eq!(r.topics[0].error_code, 36, "already exists");
    let md = sim.metadata(c, "three");
    assert_eq!(md.topics[0].partitions.len(), 3);

    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str("three"))]);
    let corr = sim.send(c, ApiKey::DeleteTopics, 5, &req);
    let r: DeleteTopicsResponse = sim.recv(c, ApiKey::DeleteTopics, 5, corr);
    assert_eq!(r.responses[0].error_code, 0);
    assert!(sim.disk.file("three-0/00000000000000000000.log").is_none());
}

#[test]
fn list_offsets_earliest_latest_and_by_time() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    sim.metadata(c, "t");
    for i in 0..4 {
        let corr = sim.produce(
            c,
            "t",
            0,
            batch(&["a", "b"], 1000 * (i + 1), Compression::None),
        );
        let _: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    }
    let ask = |ts: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(ts),
                    ]),
            ])
    };
    let mut offset_at = |ts: i64| {
        let corr = sim.send(c, ApiKey::ListOffsets, 7, &ask(ts));
        let r: ListOffsetsResponse = sim.recv(c, ApiKey::ListOffsets, 7, corr);
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        p.offset
    };
    assert_eq!(offset_at(-2), 0);
    assert_eq!(offset_at(-1), 8);
    assert_eq!(offset_at(2000), 2);
    // The exact record, inside the batch.
    assert_eq!(offset_at(2001), 3);
    assert_eq!(offset_at(2002), 4);
    assert_eq!(offset_at(99_999), -1);
}

/// DeleteTopics v6 by id: a known id deletes its topic and answers its
/// name; the same id again (or any unknown one) is UNKNOWN_TOPIC_ID with a
/// null name, as Kafka's controller answers; an unknown name stays
/// UNKNOWN_TOPIC_OR_PARTITION.
#[test]
fn delete_topics_by_id_answers_unknown_ids() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    let id = sim.metadata(c, "doomed").topics[0].topic_id;
    let by_id = delete_topics_request::DeleteTopicState::default()
        .with_name(None)
        .with_topic_id(id);
    let by_name = delete_topics_request::DeleteTopicState::default()
        .with_name(Some(TopicName(StrBytes::from_static_str("never-was"))));
    let req = DeleteTopicsRequest::default().with_topics(vec![by_id.clone()]);
    let corr = sim.send(c, ApiKey::DeleteTopics, 6, &req);
    let r: DeleteTopicsResponse = sim.recv(c, ApiKey::DeleteTopics, 6, corr);
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[0].topic_id, id);
    assert_eq!(
        r.responses[0].name.as_ref().map(|n| n.0.as_str()),
        Some("doomed")
    );
    let req = DeleteTopicsRequest::default().with_topics(vec![by_id, by_name]);
    let corr = sim.send(c, ApiKey::DeleteTopics, 6, &req);
    let r: DeleteTopicsResponse = sim.recv(c, ApiKey::DeleteTopics, 6, corr);
    assert_eq!(r.responses[0].error_code, 100, "UNKNOWN_TOPIC_ID");
    assert_eq!(r.responses[0].topic_id, id);
    assert_eq!(r.responses[0].name, None);
    assert_eq!(r.responses[1].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

/// Metadata v12 names topics by id alone (a null name), as the Java admin
/// client's `describeTopics(TopicCollection.ofTopicIds(..))` does: a known
/// id answers as its topic, an unknown one UNKNOWN_TOPIC_ID with the id
/// echoed, and nothing is auto-created.
#[test]
fn metadata_answers_topics_named_by_id() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    let id = sim.metadata(c, "by-id").topics[0].topic_id;
    assert!(!id.is_nil());
    let unknown = uuid::Uuid::from_u128(0x1234_5678);
    let req = MetadataRequest::default()
        .with_topics(Some(
            [id, unknown]
                .into_iter()
                .map(|i| {
                    metadata_request::MetadataRequestTopic::default()
                        .with_name(None)
                        .with_topic_id(i)
                })
                .collect(),
        ))
        .with_allow_auto_topic_creation(true);
    let corr = sim.send(c, ApiKey::Metadata, 12, &req);
    let r: MetadataResponse = sim.recv(c, ApiKey::Metadata, 12, corr);
    assert_eq!(r.topics.len(), 2, "{r:?}");
    let known = &r.topics[0];
    assert_eq!(known.error_code, 0);
    assert_eq!(known.topic_id, id);
    assert_eq!(known.name.as_ref().map(|n| n.0.as_str()), Some("by-id"));
    assert_eq!(known.partitions.len(), 1);
    let missing = &r.topics[1];
    assert_eq!(missing.error_code, 100, "UNKNOWN_TOPIC_ID");
    assert_eq!(missing.topic_id, unknown);
    assert_eq!(missing.name, None);
    // Every topic: still only the one.
    let corr = sim.send(
        c,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let all: MetadataResponse = sim.recv(c, ApiKey::Metadata, 12, corr);
    assert_eq!(all.topics.len(), 1);
}

#[test]
fn every_advertised_version_answers_with_a_decodable_response() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    let name = |s: &str| TopicName(StrBytes::from_string(s.into()));
    for v in 0..=12 {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("m"))),
            ]))
            .with_allow_auto_topic_creation(true);
        let corr = sim.send(c, ApiKey::Metadata, v, &req);
        let r: MetadataResponse = sim.recv(c, ApiKey::Metadata, v, corr);
        assert_eq!(r.topics[0].error_code, 0, "Metadata v{v}");
        assert_eq!(r.topics[0].partitions.len(), 1, "Metadata v{v}");
    }
    for v in 3..=9 {
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(name("m"))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(&["x"], 5, Compression::None))),
                        PartitionProduceData::default()
                            .with_index(9)
                            .with_records(Some(batch(&["x"], 5, Compression::None))),
                    ]),
            ]);
        let corr = sim.send(c, ApiKey::Produce, v, &req);
        let r: ProduceResponse = sim.recv(c, ApiKey::Produce, v, corr);
        let codes: Vec<i16> = r.responses[0]
            .partition_responses
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(codes, [0, 3], "Produce v{v}");
    }
    for v in 1..=7 {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(name("m"))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ]),
            ]);
        let corr = sim.send(c, ApiKey::ListOffsets, v, &req);
        let r: ListOffsetsResponse = sim.recv(c, ApiKey::ListOffsets, v, corr);
        assert_eq!(r.topics[0].partitions[0].offset, 7, "ListOffsets v{v}");
    }
    for v in 2..=7 {
        let topic = format!("c{v}");
        let req = CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(name(&topic))
                .with_num_partitions(2)
                .with_replication_factor(-1),
        ]);
        let corr = sim.send(c, ApiKey::CreateTopics, v, &req);
        let r: CreateTopicsResponse = sim.recv(c, ApiKey::CreateTopics, v, corr);
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}");
    }
    for v in 1..=6 {
        let topic = format!("c{}", v + 1);
        let mut req = DeleteTopicsRequest::default();
        if v >= 6 {
            req.topics = vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(name(&topic))),
            ];
        } else {
            req.topic_names = vec![name(&topic)];
        }
        let corr = sim.send(c, ApiKey::DeleteTopics, v, &req);
        let r: DeleteTopicsResponse = sim.recv(c, ApiKey::DeleteTopics, v, corr);
        assert_eq!(r.responses[0].error_code, 0, "DeleteTopics v{v}");
    }
    // Produce v0-2 is advertised but refused per partition.
    let mut old = BytesMut::new();
    old.put_i32(0);
    old.put_slice(&[0, 0, 0, 2, 0, 0, 0, 99, 0xff, 0xff]); // Produce v2, corr 99
    old.put_i16(1);
    old.put_i32(1000);
    old.put_i32(1);
    old.put_i16(1);
    old.put_slice(b"m");
    old.put_i32(1);
    old.put_i32(0);
    old.put_i32(0);
    let len = (old.len() - 4) as i32;
    old[..4].copy_from_slice(&len.to_be_bytes());
    sim.send_raw(c, &old);
    let (corr, body) = sim.recv_frame(c, ApiKey::Produce, 3).expect("an answer");
    assert_eq!(corr, 99);
    assert_eq!(&body[4 + 2 + 1 + 4 + 4..][..2], &35i16.to_be_bytes());
}

#[test]
fn topic_settings_from_create_topics_survive_a_restart() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    let topic = |name: &'static str, configs: Vec<(&'static str, &'static str)>| {
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(name)))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .into_iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str(k))
                            .with_value(Some(StrBytes::from_static_str(v)))
                    })
                    .collect(),
            )
    };
    let req = CreateTopicsRequest::default().with_topics(vec![
        topic("small", vec![("max.message.bytes", "100")]),
        topic("bad", vec![("max.message.bytes", "lots")]),
        topic("unknown", vec![("no.such.setting", "1")]),
    ]);
    let corr = sim.send(c, ApiKey::CreateTopics, 7, &req);
    let r: CreateTopicsResponse = sim.recv(c, ApiKey::CreateTopics, 7, corr);
    let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [0, 40, 40]);
    sim.broker.shutdown(sim.now);
    sim.run();

    let mut sim = Sim::with_disk(Config::default(), std::mem::take(&mut sim.disk));
    let c = sim.open(1);
    let big = batch(&[&"x".repeat(200)], 1, Compression::None);
    let corr = sim.produce(c, "small", 0, big);
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 10);
}

#[test]
fn retention_deletes_expired_segments_and_moves_the_log_start() {
    let mut config = Config::default();
    config
        .set("log.retention.check.interval.ms", "1000")
        .unwrap();
    config.set("log.retention.ms", "60000").unwrap();
    config.set("log.segment.bytes", "200").unwrap();
    let mut sim = Sim::new(config);
    let c = sim.open(1);
    sim.metadata(c, "t");
    let t0 = sim.now.wall_ms;
    for i in 0..10 {
        let corr = sim.produce(c, "t", 0, batch(&["some value"], t0 + i, Compression::None));
        let _: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    }
    // Nothing is old enough yet.
    sim.advance(Duration::from_millis(1500));
    let corr = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req("t", 0, 0));
    let r: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, corr);
    assert_eq!(r.responses[0].partitions[0].log_start_offset, 0);
    // Two minutes on, everything has expired: the log is empty from 10.
    sim.advance(Duration::from_secs(120));
    let corr = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req("t", 0, 0));
    let r: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, corr);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 1, "offset 0 is gone");
    assert_eq!(p.log_start_offset, 10);
    assert!(sim.disk.file("t-0/00000000000000000000.log").is_none());
}

#[test]
fn a_group_commits_offsets_that_survive_a_restart() {
    let mut config = Config::default();
    config.set("group.initial.rebalance.delay.ms", "0").unwrap();
    config.set("offsets.topic.num.partitions", "3").unwrap();
    let mut sim = Sim::new(config.clone());
    let c = sim.open(1);
    sim.metadata(c, "t");
    let gid = || GroupId(StrBytes::from_static_str("g"));

    let corr = sim.send(
        c,
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
    );
    let r: FindCoordinatorResponse = sim.recv(c, ApiKey::FindCoordinator, 3, corr);
    assert_eq!((r.error_code, r.node_id.0), (0, 0));

    // JoinGroup v5: MEMBER_ID_REQUIRED, then a join with the given id.
    let join = |member: StrBytes| {
        JoinGroupRequest::default()
            .with_group_id(gid())
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(member)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(b"sub")),
            ])
    };
    let corr = sim.send(c, ApiKey::JoinGroup, 5, &join(StrBytes::default()));
    let r: JoinGroupResponse = sim.recv(c, ApiKey::JoinGroup, 5, corr);
    assert_eq!(r.error_code, 79);
    let member = r.member_id.clone();
    let corr = sim.send(c, ApiKey::JoinGroup, 5, &join(member.clone()));
    let r: JoinGroupResponse = sim.recv(c, ApiKey::JoinGroup, 5, corr);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.leader, member);
    let generation = r.generation_id;

    let sync = SyncGroupRequest::default()
        .with_group_id(gid())
        .with_generation_id(generation)
        .with_member_id(member.clone())
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(member.clone())
                .with_assignment(Bytes::from_static(b"asg")),
        ]);
    let corr = sim.send(c, ApiKey::SyncGroup, 3, &sync);
    let r: SyncGroupResponse = sim.recv(c, ApiKey::SyncGroup, 3, corr);
    assert_eq!((r.error_code, &r.assignment[..]), (0, &b"asg"[..]));

    let commit = |generation: i32, offset: i64| {
        OffsetCommitRequest::default()
            .with_group_id(gid())
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(member.clone())
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset)
                            .with_committed_metadata(Some(StrBytes::from_static_str("m"))),
                    ]),
            ])
    };
    let corr = sim.send(c, ApiKey::OffsetCommit, 8, &commit(generation + 1, 5));
    let r: OffsetCommitResponse = sim.recv(c, ApiKey::OffsetCommit, 8, corr);
    assert_eq!(
        r.topics[0].partitions[0].error_code, 22,
        "ILLEGAL_GENERATION"
    );
    let corr = sim.send(c, ApiKey::OffsetCommit, 8, &commit(generation, 42));
    let r: OffsetCommitResponse = sim.recv(c, ApiKey::OffsetCommit, 8, corr);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);

    let fetch_committed = |sim: &mut Sim, c: ConnId| {
        let req = OffsetFetchRequest::default()
            .with_group_id(gid())
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_indexes(vec![0, 1]),
            ]));
        let corr = sim.send(c, ApiKey::OffsetFetch, 7, &req);
        let r: OffsetFetchResponse = sim.recv(c, ApiKey::OffsetFetch, 7, corr);
        let p = &r.topics[0].partitions;
        (p[0].committed_offset, p[1].committed_offset)
    };
    assert_eq!(fetch_committed(&mut sim, c), (42, -1));

    // After a clean shutdown the commit is replayed from __consumer_offsets,
    // and the group is known again (Empty, with its offsets).
    sim.broker.shutdown(sim.now);
    sim.run();
    let mut sim = Sim::with_disk(config, std::mem::take(&mut sim.disk));
    let c = sim.open(1);
    assert_eq!(fetch_committed(&mut sim, c), (42, -1));
    let corr = sim.send(c, ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    let r: ListGroupsResponse = sim.recv(c, ApiKey::ListGroups, 4, corr);
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].group_id.0.as_str(), "g");
}

#[test]
fn offsets_of_an_empty_group_expire() {
    let mut config = Config::default();
    config.set("offsets.retention.minutes", "1").unwrap();
    config
        .set("offsets.retention.check.interval.ms", "1000")
        .unwrap();
    config.set("offsets.topic.num.partitions", "1").unwrap();
    let mut sim = Sim::new(config);
    let c = sim.open(1);
    sim.metadata(c, "t");
    // A simple commit: no member, generation -1 (what `assign` users send).
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("solo")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(7),
                ]),
        ]);
    let corr = sim.send(c, ApiKey::OffsetCommit, 8, &commit);
    let r: OffsetCommitResponse = sim.recv(c, ApiKey::OffsetCommit, 8, corr);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let committed = |sim: &mut Sim| {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("solo")))
            .with_topics(None);
        let corr = sim.send(c, ApiKey::OffsetFetch, 7, &req);
        let r: OffsetFetchResponse = sim.recv(c, ApiKey::OffsetFetch, 7, corr);
        r.topics.iter().map(|t| t.partitions.len()).sum::<usize>()
    };
    sim.advance(Duration::from_secs(30));
    assert_eq!(committed(&mut sim), 1);
    sim.advance(Duration::from_secs(40));
    assert_eq!(committed(&mut sim), 0, "expired after a minute");
    let corr = sim.send(c, ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    let r: ListGroupsResponse = sim.recv(c, ApiKey::ListGroups, 4, corr);
    assert!(r.groups.is_empty());
}

#[test]
fn acks_all_on_a_flush_every_message_topic_survives_a_power_loss() {
    let mut config = Config::default();
    config.set("log.flush.interval.messages", "1").unwrap();
    let mut sim = Sim::new(config.clone());
    let c = sim.open(1);
    sim.metadata(c, "t");
    for i in 0..5 {
        let corr = sim.produce(c, "t", 0, batch(&["durable"], i, Compression::None));
        let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
        assert_eq!(r.responses[0].partition_responses[0].base_offset, i);
    }
    // Lose every byte not fsynced: all five acknowledged records remain.
    let mut disk = std::mem::take(&mut sim.disk);
    disk.crash();
    let mut sim = Sim::with_disk(config, disk);
    let c = sim.open(1);
    let corr = sim.send(c, ApiKey::Fetch, 12, &Sim::fetch_req("t", 0, 0));
    let r: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, corr);
    assert_eq!(r.responses[0].partitions[0].high_watermark, 5);
}

#[test]
fn clients_neither_create_nor_write_the_offsets_topic() {
    let mut config = Config::default();
    config.set("offsets.topic.num.partitions", "1").unwrap();
    let mut sim = Sim::new(config);
    let c = sim.open(1);
    let md = sim.metadata(c, "__consumer_offsets");
    assert_eq!(md.topics[0].error_code, 3, "not auto-created by Metadata");
    // A group's first FindCoordinator creates it, as in Kafka.
    let corr = sim.send(
        c,
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
    );
    let r: FindCoordinatorResponse = sim.recv(c, ApiKey::FindCoordinator, 3, corr);
    assert_eq!(r.error_code, 0);
    let md = sim.metadata(c, "__consumer_offsets");
    assert_eq!(
        (md.topics[0].error_code, md.topics[0].is_internal),
        (0, true)
    );
    let corr = sim.produce(
        c,
        "__consumer_offsets",
        0,
        batch(&["x"], 1, Compression::None),
    );
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 17);
}

#[test]
fn describe_configs_names_each_value_and_where_it_comes_from() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let mut config = Config::default();
    config.set("log.segment.bytes", "1000000").unwrap();
    let mut sim = Sim::new(config);
    let c = sim.open(1);
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("cfg")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("60000"))),
            ]),
    ]);
    let corr = sim.send(c, ApiKey::CreateTopics, 7, &req);
    let _: CreateTopicsResponse = sim.recv(c, ApiKey::CreateTopics, 7, corr);
    let resource = |kind: i8, name: &'static str| {
        DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(StrBytes::from_static_str(name))
    };
    for v in 1..=4 {
        let req = DescribeConfigsRequest::default()
            .with_resources(vec![
                resource(2, "cfg"),
                resource(2, "missing"),
                resource(4, ""),
                resource(4, "5"),
                resource(2, "cfg").with_configuration_keys(Some(vec![StrBytes::from_static_str(
                    "segment.bytes",
                )])),
            ])
            .with_include_synonyms(true)
            .with_include_documentation(v >= 3);
        let corr = sim.send(c, ApiKey::DescribeConfigs, v, &req);
        let r: DescribeConfigsResponse = sim.recv(c, ApiKey::DescribeConfigs, v, corr);
        let codes: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
        assert_eq!(codes, [0, 3, 0, 42, 0], "v{v}");
        let find = |i: usize, name: &str| {
            r.results[i]
                .configs
                .iter()
                .find(|c| c.name.as_str() == name)
                .cloned()
                .unwrap_or_else(|| panic!("v{v}: {name} not described"))
        };
        let retention = find(0, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("60000"));
        assert_eq!(retention.config_source, 1, "a topic's own setting");
        let synonyms: Vec<(String, i8)> = retention
            .synonyms
            .iter()
            .map(|s| (s.name.to_string(), s.source))
            .collect();
        assert_eq!(
            synonyms,
            [("retention.ms".into(), 1), ("log.retention.ms".into(), 5)]
        );
        let segment = find(0, "segment.bytes");
        assert_eq!(segment.value.as_deref(), Some("1000000"));
        assert_eq!(segment.config_source, 4, "the broker's configuration");
        assert_eq!(
            find(0, "max.message.bytes").config_source,
            5,
            "Kafka's default"
        );
        assert_eq!(find(0, "cleanup.policy").value.as_deref(), Some("delete"));
        assert_eq!(
            r.results[0].configs.len(),
            conveyor_core::config::TOPIC_SETTINGS.len()
        );
        assert_eq!(r.results[4].configs.len(), 1, "only the key asked for");
        let broker_segment = find(2, "log.segment.bytes");
        assert_eq!(broker_segment.value.as_deref(), Some("1000000"));
        assert_eq!(broker_segment.config_source, 4);
        assert!(!broker_segment.read_only, "a dynamic broker setting");
        assert!(find(2, "num.partitions").read_only);
        if v >= 3 {
            assert_eq!(segment.config_type, 3, "INT");
            assert!(segment.documentation.is_some());
        }
    }
}

#[test]
fn create_partitions_grows_a_topic_and_never_shrinks_it() {
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    let _ = sim.metadata(c, "grow");
    let grow = |sim: &mut Sim, name: &'static str, count: i32, validate_only: bool, other: bool| {
        let assignments = other.then(|| {
            vec![CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(7)])]
        });
        let req = CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str(name)))
                    .with_count(count)
                    .with_assignments(assignments),
            ])
            .with_validate_only(validate_only);
        let corr = sim.send(c, ApiKey::CreatePartitions, 3, &req);
        let r: CreatePartitionsResponse = sim.recv(c, ApiKey::CreatePartitions, 3, corr);
        r.results[0].error_code
    };
    let partitions = |sim: &mut Sim| sim.metadata(c, "grow").topics[0].partitions.len();
    assert_eq!(partitions(&mut sim), 1);
    assert_eq!(grow(&mut sim, "grow", 3, true, false), 0);
    assert_eq!(partitions(&mut sim), 1, "validate_only changes nothing");
    assert_eq!(grow(&mut sim, "grow", 3, false, false), 0);
    assert_eq!(partitions(&mut sim), 3);
    assert_eq!(
        grow(&mut sim, "grow", 2, false, false),
        37,
        "INVALID_PARTITIONS"
    );
    assert_eq!(grow(&mut sim, "grow", 3, false, false), 37);
    assert_eq!(
        grow(&mut sim, "grow", 4, false, true),
        39,
        "INVALID_REPLICA_ASSIGNMENT"
    );
    assert_eq!(grow(&mut sim, "missing", 4, false, false), 3);
    let corr = sim.produce(c, "grow", 2, batch(&["new"], 1, Compression::None));
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    // Kept across a restart.
    sim.broker.shutdown(sim.now);
    sim.run();
    let mut sim = Sim::with_disk(Config::default(), std::mem::take(&mut sim.disk));
    let c = sim.open(1);
    assert_eq!(sim.metadata(c, "grow").topics[0].partitions.len(), 3);
}

#[test]
fn describe_cluster_names_this_broker_and_allows_every_operation() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    for v in 0..=2 {
        let mut req =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        if v >= 1 {
            req.endpoint_type = 1;
        }
        let corr = sim.send(c, ApiKey::DescribeCluster, v, &req);
        let r: DescribeClusterResponse = sim.recv(c, ApiKey::DescribeCluster, v, corr);
        assert_eq!(r.error_code, 0, "v{v}");
        assert_eq!(r.brokers.len(), 1);
        assert_eq!(r.brokers[0].port, 9092);
        assert_eq!(
            r.cluster_authorized_operations, 8096,
            "Kafka's seven cluster operations"
        );
    }
    let req = DescribeClusterRequest::default().with_endpoint_type(2);
    let corr = sim.send(c, ApiKey::DescribeCluster, 1, &req);
    let r: DescribeClusterResponse = sim.recv(c, ApiKey::DescribeCluster, 1, corr);
    assert_eq!(r.error_code, 114, "MISMATCHED_ENDPOINT_TYPE");
    assert_eq!(r.cluster_authorized_operations, i32::MIN, "not asked");
    // Metadata answers the same way when asked.
    let req = MetadataRequest::default()
        .with_topics(None)
        .with_include_topic_authorized_operations(true);
    let _ = sim.metadata(c, "ops");
    let corr = sim.send(c, ApiKey::Metadata, 12, &req);
    let r: MetadataResponse = sim.recv(c, ApiKey::Metadata, 12, corr);
    assert_eq!(r.topics[0].topic_authorized_operations, 3576);
}
