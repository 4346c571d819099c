//! Topic settings changed at run time (IncrementalAlterConfigs and
//! AlterConfigs): checked, in force on live partitions, kept across a
//! restart, described back.

mod common;

use common::{Sim, batch};
use conveyor_core::Config;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request as inc;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn s(v: &'static str) -> StrBytes {
    StrBytes::from_static_str(v)
}

fn create(sim: &mut Sim, c: conveyor_core::ConnId, name: &'static str) {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(2)
            .with_replication_factor(1),
    ]);
    let corr = sim.send(c, ApiKey::CreateTopics, 7, &req);
    let r: CreateTopicsResponse = sim.recv(c, ApiKey::CreateTopics, 7, corr);
    assert_eq!(r.topics[0].error_code, 0);
}

/// IncrementalAlterConfigs of one resource: (error code, message).
fn alter(
    sim: &mut Sim,
    c: conveyor_core::ConnId,
    kind: i8,
    name: &'static str,
    ops: &[(&'static str, i8, Option<&'static str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let configs = ops
        .iter()
        .map(|&(k, op, v)| {
            inc::AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(op)
                .with_value(v.map(s))
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![
            inc::AlterConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(s(name))
                .with_configs(configs),
        ])
        .with_validate_only(validate_only);
    let corr = sim.send(c, ApiKey::IncrementalAlterConfigs, 1, &req);
    let r: IncrementalAlterConfigsResponse = sim.recv(c, ApiKey::IncrementalAlterConfigs, 1, corr);
    let x = &r.responses[0];
    (
        x.error_code,
        x.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// The topic's value of `key` and its source.
fn described(
    sim: &mut Sim,
    c: conveyor_core::ConnId,
    topic: &'static str,
    key: &str,
) -> (String, i8) {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configuration_keys(None),
    ]);
    let corr = sim.send(c, ApiKey::DescribeConfigs, 4, &req);
    let r: DescribeConfigsResponse = sim.recv(c, ApiKey::DescribeConfigs, 4, corr);
    let c = r.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} not described"));
    (
        c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        c.config_source,
    )
}

#[test]
fn incremental_changes_are_checked_in_force_and_kept() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    create(&mut sim, c, "live");

    // SET: in force on the live partitions at once.
    assert_eq!(
        alter(
            &mut sim,
            c,
            2,
            "live",
            &[("max.message.bytes", 0, Some("100"))],
            false
        )
        .0,
        0
    );
    assert_eq!(
        described(&mut sim, c, "live", "max.message.bytes"),
        ("100".into(), 1)
    );
    let big = batch(&[&"x".repeat(200)], 1, Compression::None);
    let corr = sim.produce(c, "live", 1, big);
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 10,
        "MESSAGE_TOO_LARGE"
    );

    // APPEND and SUBTRACT on a list; on anything else they are refused.
    assert_eq!(
        alter(
            &mut sim,
            c,
            2,
            "live",
            &[("cleanup.policy", 2, Some("compact"))],
            false
        )
        .0,
        0
    );
    assert_eq!(
        described(&mut sim, c, "live", "cleanup.policy").0,
        "delete,compact"
    );
    assert_eq!(
        alter(
            &mut sim,
            c,
            2,
            "live",
            &[("cleanup.policy", 3, Some("delete"))],
            false
        )
        .0,
        0
    );
    assert_eq!(
        described(&mut sim, c, "live", "cleanup.policy").0,
        "compact"
    );
    let (code, message) = alter(
        &mut sim,
        c,
        2,
        "live",
        &[("retention.ms", 2, Some("5"))],
        false,
    );
    assert_eq!(code, 40, "{message:?}");

    // Bad values and unknown keys: INVALID_CONFIG naming them; nothing of
    // the request is applied.
    let (code, message) = alter(
        &mut sim,
        c,
        2,
        "live",
        &[
            ("retention.ms", 0, Some("60000")),
            ("segment.bytes", 0, Some("lots")),
        ],
        false,
    );
    assert_eq!(code, 40);
    assert!(message.unwrap_or_default().contains("segment.bytes"));
    assert_eq!(
        described(&mut sim, c, "live", "retention.ms").1,
        5,
        "unchanged"
    );
    let (code, message) = alter(
        &mut sim,
        c,
        2,
        "live",
        &[("no.such.setting", 0, Some("1"))],
        false,
    );
    assert_eq!(code, 40);
    assert!(message.unwrap_or_default().contains("no.such.setting"));

    // validate_only changes nothing.
    assert_eq!(
        alter(
            &mut sim,
            c,
            2,
            "live",
            &[("retention.ms", 0, Some("60000"))],
            true
        )
        .0,
        0
    );
    assert_eq!(described(&mut sim, c, "live", "retention.ms").1, 5);

    // Unknown topics and broker settings.
    assert_eq!(
        alter(
            &mut sim,
            c,
            2,
            "missing",
            &[("retention.ms", 0, Some("1"))],
            false
        )
        .0,
        3
    );
    // A broker setting read only at startup cannot change at run time.
    let (code, message) = alter(
        &mut sim,
        c,
        4,
        "",
        &[("num.partitions", 0, Some("4"))],
        false,
    );
    assert_eq!(code, 42);
    assert!(message.unwrap_or_default().contains("server.properties"));

    // Kept across a restart, and DELETE goes back to the default.
    assert_eq!(
        alter(
            &mut sim,
            c,
            2,
            "live",
            &[("retention.ms", 0, Some("60000"))],
            false
        )
        .0,
        0
    );
    sim.broker.shutdown(sim.now);
    sim.run();
    let mut sim = Sim::with_disk(Config::default(), std::mem::take(&mut sim.disk));
    let c = sim.open(1);
    assert_eq!(
        described(&mut sim, c, "live", "retention.ms"),
        ("60000".into(), 1)
    );
    assert_eq!(
        described(&mut sim, c, "live", "max.message.bytes"),
        ("100".into(), 1)
    );
    assert_eq!(
        alter(
            &mut sim,
            c,
            2,
            "live",
            &[("max.message.bytes", 1, None)],
            false
        )
        .0,
        0
    );
    assert_eq!(
        described(&mut sim, c, "live", "max.message.bytes"),
        ("1048588".into(), 5)
    );
    let big = batch(&[&"x".repeat(200)], 1, Compression::None);
    let corr = sim.produce(c, "live", 1, big);
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}

#[test]
fn alter_configs_replaces_a_topics_settings() {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    create(&mut sim, c, "whole");
    assert_eq!(
        alter(
            &mut sim,
            c,
            2,
            "whole",
            &[("retention.ms", 0, Some("60000"))],
            false
        )
        .0,
        0
    );
    for v in 0..=2 {
        let req = AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("whole"))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(s("segment.ms"))
                        .with_value(Some(s("3600000"))),
                ]),
        ]);
        let corr = sim.send(c, ApiKey::AlterConfigs, v, &req);
        let r: AlterConfigsResponse = sim.recv(c, ApiKey::AlterConfigs, v, corr);
        assert_eq!(r.responses[0].error_code, 0, "v{v}");
        assert_eq!(
            described(&mut sim, c, "whole", "segment.ms"),
            ("3600000".into(), 1)
        );
        assert_eq!(
            described(&mut sim, c, "whole", "retention.ms").1,
            5,
            "not given: default again"
        );
    }
}

fn create_with(
    sim: &mut Sim,
    c: conveyor_core::ConnId,
    name: &'static str,
    configs: &[(&'static str, &'static str)],
) {
    common::create_topic(sim, c, name, 1, configs);
}

/// One batch of records with these keys (`None`: keyless), timestamps `ts`.
fn keyed(keys: &[Option<&str>], ts: i64, compression: Compression) -> bytes::Bytes {
    let values: Vec<String> = (0..keys.len()).map(|i| format!("v{i}")).collect();
    let records: Vec<(Option<&str>, Option<&str>)> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (*k, Some(v.as_str())))
        .collect();
    common::keyed_batch(&records, ts, compression)
}

fn produce_acks(
    sim: &mut Sim,
    c: conveyor_core::ConnId,
    topic: &'static str,
    records: bytes::Bytes,
    acks: i16,
) -> produce_response::PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let corr = sim.send(c, ApiKey::Produce, 9, &req);
    let r: ProduceResponse = sim.recv(c, ApiKey::Produce, 9, corr);
    r.responses[0].partition_responses[0].clone()
}

#[test]
fn topic_settings_police_what_is_produced() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    let now = sim.now.wall_ms;

    // A compacted topic refuses keyless records, naming each one.
    create_with(&mut sim, c, "table", &[("cleanup.policy", "compact")]);
    for codec in [Compression::None, Compression::Snappy] {
        let p = produce_acks(
            &mut sim,
            c,
            "table",
            keyed(&[Some("a"), None, None], now, codec),
            -1,
        );
        assert_eq!(p.error_code, 87, "INVALID_RECORD");
        let idx: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(idx, [1, 2]);
        let m = p.record_errors[0]
            .batch_index_error_message
            .as_ref()
            .unwrap();
        assert!(m.contains("without key"), "{m}");
        assert!(p.error_message.unwrap().contains("2 record errors"));
    }
    let p = produce_acks(
        &mut sim,
        c,
        "table",
        keyed(&[Some("a")], now, Compression::Gzip),
        -1,
    );
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "nothing refused was stored"
    );

    // A timestamp more than message.timestamp.after.max.ms (1 h) ahead.
    let late = keyed(&[Some("a")], now + 3_600_001, Compression::None);
    let p = produce_acks(&mut sim, c, "table", late, 1);
    assert_eq!(
        (p.error_code, p.record_errors.len()),
        (32, 1),
        "INVALID_TIMESTAMP"
    );

    // min.insync.replicas above the one replica: acks=-1 is refused, acks=1 is not.
    create_with(&mut sim, c, "strict", &[("min.insync.replicas", "2")]);
    let p = produce_acks(
        &mut sim,
        c,
        "strict",
        keyed(&[Some("a")], now, Compression::None),
        -1,
    );
    assert_eq!(p.error_code, 19, "NOT_ENOUGH_REPLICAS");
    let p = produce_acks(
        &mut sim,
        c,
        "strict",
        keyed(&[Some("a")], now, Compression::None),
        1,
    );
    assert_eq!(p.error_code, 0);

    // compression.type=zstd: a gzip batch is stored, and fetched, as zstd.
    create_with(
        &mut sim,
        c,
        "packed",
        &[
            ("compression.type", "zstd"),
            ("compression.zstd.level", "9"),
        ],
    );
    let p = produce_acks(
        &mut sim,
        c,
        "packed",
        keyed(&[Some("a"), None, Some("c")], now, Compression::Gzip),
        -1,
    );
    assert_eq!(p.error_code, 0);
    let corr = sim.send(
        c,
        ApiKey::Fetch,
        12,
        &common::Sim::fetch_req("packed", 0, 0),
    );
    let f: FetchResponse = sim.recv(c, ApiKey::Fetch, 12, corr);
    let records = f.responses[0].partitions[0].records.clone().unwrap();
    let attributes = i16::from_be_bytes([records[21], records[22]]);
    assert_eq!(attributes & 7, 4, "stored as zstd");
    let values: Vec<String> = common::values_of(&records)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, ["v0", "v1", "v2"]);

    // Every Kafka topic setting is known; inert ones read back; tiered
    // storage cannot be turned on.
    create_with(
        &mut sim,
        c,
        "inert",
        &[("preallocate", "true"), ("segment.jitter.ms", "5")],
    );
    assert_eq!(described(&mut sim, c, "inert", "preallocate").0, "true");
    assert_eq!(
        described(&mut sim, c, "inert", "file.delete.delay.ms"),
        ("60000".into(), 5)
    );
    assert_eq!(
        described(&mut sim, c, "inert", "min.cleanable.dirty.ratio").0,
        "0.5"
    );
    let (code, message) = alter(
        &mut sim,
        c,
        2,
        "inert",
        &[("remote.storage.enable", 0, Some("true"))],
        false,
    );
    assert_eq!(code, 40, "{message:?}");
    let (code, _) = alter(
        &mut sim,
        c,
        2,
        "inert",
        &[("min.cleanable.dirty.ratio", 0, Some("1.5"))],
        false,
    );
    assert_eq!(code, 40);
    let (code, _) = alter(
        &mut sim,
        c,
        2,
        "inert",
        &[("compression.type", 0, Some("brotli"))],
        false,
    );
    assert_eq!(code, 40);
}

#[test]
fn dynamic_broker_settings_reach_every_topic_and_survive_a_restart() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    create(&mut sim, c, "plain");
    create_with(&mut sim, c, "own", &[("retention.ms", "5000")]);

    // The cluster-wide default (resource name ""): every topic without its
    // own setting follows at once; the source says where it came from.
    let (code, m) = alter(
        &mut sim,
        c,
        4,
        "",
        &[("log.retention.ms", 0, Some("120000"))],
        false,
    );
    assert_eq!(code, 0, "{m:?}");
    assert_eq!(
        described(&mut sim, c, "plain", "retention.ms"),
        ("120000".into(), 3)
    );
    assert_eq!(
        described(&mut sim, c, "own", "retention.ms"),
        ("5000".into(), 1)
    );

    // This broker's own setting wins over the cluster default.
    let (code, _) = alter(
        &mut sim,
        c,
        4,
        "0",
        &[("log.retention.ms", 0, Some("180000"))],
        false,
    );
    assert_eq!(code, 0);
    assert_eq!(
        described(&mut sim, c, "plain", "retention.ms"),
        ("180000".into(), 2)
    );

    // Checked like any setting; validate_only and unknown brokers change nothing.
    let (code, m) = alter(
        &mut sim,
        c,
        4,
        "",
        &[("log.retention.ms", 0, Some("soon"))],
        false,
    );
    assert_eq!(code, 40, "{m:?}");
    let (code, _) = alter(
        &mut sim,
        c,
        4,
        "",
        &[("log.cleanup.policy", 2, Some("compact"))],
        true,
    );
    assert_eq!(code, 0);
    assert_eq!(
        described(&mut sim, c, "plain", "cleanup.policy").0,
        "delete"
    );
    let (code, _) = alter(
        &mut sim,
        c,
        4,
        "7",
        &[("log.retention.ms", 0, Some("1"))],
        false,
    );
    assert_eq!(code, 42);

    // In force on live partitions: compacted by default refuses keyless records.
    let (code, _) = alter(
        &mut sim,
        c,
        4,
        "",
        &[("log.cleanup.policy", 2, Some("compact"))],
        false,
    );
    assert_eq!(code, 0);
    let now = sim.now.wall_ms;
    let p = produce_acks(
        &mut sim,
        c,
        "plain",
        keyed(&[None], now, Compression::None),
        1,
    );
    assert_eq!(p.error_code, 87);

    // Kept across a restart; DELETE goes back to the static setting.
    sim.broker.shutdown(sim.now);
    sim.run();
    let mut sim = Sim::with_disk(Config::default(), std::mem::take(&mut sim.disk));
    let c = sim.open(1);
    assert_eq!(
        described(&mut sim, c, "plain", "retention.ms"),
        ("180000".into(), 2)
    );
    assert_eq!(
        described(&mut sim, c, "plain", "cleanup.policy").0,
        "compact,delete"
    );
    let (code, _) = alter(&mut sim, c, 4, "0", &[("log.retention.ms", 1, None)], false);
    assert_eq!(code, 0);
    assert_eq!(
        described(&mut sim, c, "plain", "retention.ms"),
        ("120000".into(), 3)
    );
}

/// CreateTopics v5+ answers every setting of the topic it created (or, with
/// `validate_only`, would create), with the values and sources
/// DescribeConfigs then gives: Kafka's Java client reads them as
/// `CreateTopicsResult.config`.
#[test]
fn create_topics_answers_the_new_topics_settings() {
    let mut sim = Sim::new(Config::default());
    let c = sim.open(1);
    let topic = |name: &'static str| {
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(2)
            .with_replication_factor(1)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("3600000"))),
            ])
    };
    for (validate_only, name) in [(true, "validated"), (false, "created")] {
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic(name)])
            .with_validate_only(validate_only);
        let corr = sim.send(c, ApiKey::CreateTopics, 7, &req);
        let r: CreateTopicsResponse = sim.recv(c, ApiKey::CreateTopics, 7, corr);
        let t = &r.topics[0];
        assert_eq!(t.error_code, 0, "{name}");
        let configs = t.configs.as_ref().expect("configs answered from v5");
        let of = |key: &str| {
            let c = configs
                .iter()
                .find(|c| c.name.as_str() == key)
                .unwrap_or_else(|| panic!("{name}: {key} not answered"));
            (
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                c.config_source,
            )
        };
        assert_eq!(of("retention.ms"), ("3600000".into(), 1), "{name}: own");
        assert_eq!(
            of("max.message.bytes"),
            ("1048588".into(), 5),
            "{name}: Kafka's default"
        );
        if !validate_only {
            for answered in configs {
                let key = answered.name.as_str();
                let value = answered.value.as_ref().map(|v| v.to_string());
                assert_eq!(
                    described(&mut sim, c, name, key),
                    (value.unwrap_or_default(), answered.config_source),
                    "{key}: CreateTopics and DescribeConfigs differ"
                );
            }
        }
    }
    // Before v5 the answer has no settings (the field does not exist).
    let req = CreateTopicsRequest::default().with_topics(vec![topic("old")]);
    let corr = sim.send(c, ApiKey::CreateTopics, 4, &req);
    let r: CreateTopicsResponse = sim.recv(c, ApiKey::CreateTopics, 4, corr);
    assert_eq!(r.topics[0].error_code, 0);
    assert!(r.topics[0].configs.as_ref().is_none_or(Vec::is_empty));
}
