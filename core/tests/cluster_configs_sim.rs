//! A topic's settings in a cluster, with three broker cores on the
//! simulated network of `net/`: AlterConfigs and IncrementalAlterConfigs
//! sent to any broker reach the active controller (the others send them
//! on), which checks them and commits them as Config records; every
//! broker then has them in its image, in force on the partitions it holds
//! and in DescribeConfigs, and keeps them across a restart. The defaults
//! of every broker (the broker resource "") go the same way.

#[allow(dead_code)]
mod brokers;
mod common;
#[allow(dead_code)]
mod net;
#[allow(dead_code)]
#[path = "seeded/rng.rs"]
mod rng;

use std::collections::BTreeMap;
use std::time::Duration;

use brokers::*;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncResource, AlterableConfig as IncConfig,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use net::Net;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const REQUEST_TIMED_OUT: i16 = 7;
const INVALID_CONFIG: i16 = 40;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;

/// A change: (operation, key, value).
type Op<'a> = (i8, &'a str, &'a str);

/// A resource and its changes: (resource type, name, changes).
type Resource<'a> = (i8, &'a str, &'a [Op<'a>]);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// IncrementalAlterConfigs of `(op, key, value)` on each resource, sent
/// to node `at`: each resource's (error code, message).
fn incremental(
    net: &mut Net,
    at: usize,
    resources: &[Resource<'_>],
    validate_only: bool,
) -> Vec<(i16, String)> {
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(
            resources
                .iter()
                .map(|(kind, name, ops)| {
                    IncResource::default()
                        .with_resource_type(*kind)
                        .with_resource_name(s(name))
                        .with_configs(
                            ops.iter()
                                .map(|(op, k, v)| {
                                    IncConfig::default()
                                        .with_name(s(k))
                                        .with_config_operation(*op)
                                        .with_value(Some(s(v)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
        .with_validate_only(validate_only);
    let conn = net.client(at);
    let r: IncrementalAlterConfigsResponse = net
        .request((at, conn), (ApiKey::IncrementalAlterConfigs, 1), &req, WAIT)
        .expect("IncrementalAlterConfigs answered");
    r.responses
        .iter()
        .map(|r| {
            let m = r.error_message.as_ref().map(|m| m.to_string());
            (r.error_code, m.unwrap_or_default())
        })
        .collect()
}

/// The value and source node `at` describes `key` of `topic` with.
fn described(net: &mut Net, at: usize, topic: &str, key: &str) -> (Option<String>, i8) {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(s(topic))
            .with_configuration_keys(Some(vec![s(key)])),
    ]);
    let conn = net.client(at);
    let r: DescribeConfigsResponse = net
        .request((at, conn), (ApiKey::DescribeConfigs, 4), &req, WAIT)
        .expect("DescribeConfigs answered");
    let c = &r.results[0].configs[0];
    (c.value.as_ref().map(|v| v.to_string()), c.config_source)
}

fn image_configs(net: &Net, at: usize, topic: &str) -> BTreeMap<String, String> {
    net.status(at).image.topics[topic].configs.clone()
}

/// A produce of one record of `bytes` bytes to `topic`-0 at its leader.
fn produce_bytes(net: &mut Net, topic: &str, bytes: usize) -> i16 {
    let leader = net.status(0).image.topics[topic].partitions[0].leader as usize;
    let value = "x".repeat(bytes);
    let batch = common::batch(&[value.as_str()], 1_700_000_000_000, Compression::None);
    let req = common::Sim::produce_req(topic, 0, batch).with_acks(1);
    let conn = net.client(leader);
    let r: ProduceResponse = net
        .request((leader, conn), (ApiKey::Produce, 9), &req, WAIT)
        .expect("Produce answered");
    r.responses[0].partition_responses[0].error_code
}

#[test]
fn a_topics_settings_change_through_the_controller_from_any_broker() {
    let mut net = cluster(23, (5, 2));
    let c = controller(&net);
    let (a, b) = ((c + 1) % 3, (c + 2) % 3);
    let r = create_replicated(&mut net, c, "cfg", (1, 3));
    assert_eq!(r.topics[0].error_code, 0);
    net.advance(Duration::from_secs(1));
    assert_eq!(produce_bytes(&mut net, "cfg", 500), 0);

    // Sent to a broker that is not the controller: it goes on to it.
    let set: &[Op<'_>] = &[
        (SET, "max.message.bytes", "300"),
        (SET, "retention.ms", "12345"),
    ];
    let r = incremental(&mut net, a, &[(TOPIC, "cfg", set)], false);
    assert_eq!(r, [(0, String::new())]);
    net.advance(Duration::from_secs(1));
    let want: BTreeMap<String, String> = [("max.message.bytes", "300"), ("retention.ms", "12345")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for i in 0..3 {
        assert_eq!(image_configs(&net, i, "cfg"), want, "node {i}");
        // 1: the topic's own setting.
        let d = described(&mut net, i, "cfg", "max.message.bytes");
        assert_eq!(d, (Some("300".into()), 1), "node {i}");
    }
    // In force on the leader's log at once.
    assert_eq!(produce_bytes(&mut net, "cfg", 500), MESSAGE_TOO_LARGE);
    assert_eq!(produce_bytes(&mut net, "cfg", 100), 0);

    // Refusals come back from the controller as it words them.
    let bad: &[Op<'_>] = &[(SET, "max.message.bytes", "-5")];
    let unknown: &[Op<'_>] = &[(SET, "no.such.setting", "1")];
    let r = incremental(
        &mut net,
        b,
        &[
            (TOPIC, "cfg", bad),
            (TOPIC, "cfg", unknown),
            (TOPIC, "missing", set),
        ],
        false,
    );
    let codes: Vec<i16> = r.iter().map(|x| x.0).collect();
    assert_eq!(
        codes,
        [INVALID_CONFIG, INVALID_CONFIG, UNKNOWN_TOPIC_OR_PARTITION],
        "{r:?}"
    );
    assert!(r[0].1.contains("max.message.bytes"), "{r:?}");
    assert!(r[1].1.contains("no.such.setting"), "{r:?}");

    // Validating changes nothing.
    let r = incremental(
        &mut net,
        b,
        &[(TOPIC, "cfg", &[(DELETE, "retention.ms", "")])],
        true,
    );
    assert_eq!(r[0].0, 0);
    net.advance(Duration::from_secs(1));
    assert_eq!(image_configs(&net, b, "cfg"), want);

    // A broker resource beside a topic one (librdkafka sends both to the
    // broker named): the broker's setting here, the topic's through the
    // controller.
    let r = incremental(
        &mut net,
        b,
        &[
            (
                BROKER,
                &b.to_string(),
                &[(SET, "log.retention.ms", "777000")],
            ),
            (TOPIC, "cfg", &[(DELETE, "retention.ms", "")]),
        ],
        false,
    );
    assert_eq!(r, [(0, String::new()), (0, String::new())]);
    net.advance(Duration::from_secs(1));
    let want: BTreeMap<String, String> = [("max.message.bytes".to_owned(), "300".to_owned())]
        .into_iter()
        .collect();
    for i in 0..3 {
        assert_eq!(image_configs(&net, i, "cfg"), want, "node {i}");
    }
    // The broker's own default shows where the topic sets nothing.
    assert_eq!(
        described(&mut net, b, "cfg", "retention.ms"),
        (Some("777000".into()), 2),
        "a dynamic setting of this broker"
    );

    // AlterConfigs replaces the settings whole, from any broker.
    let req = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(s("cfg"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("cleanup.policy"))
                    .with_value(Some(s("compact"))),
            ]),
    ]);
    let conn = net.client(a);
    let r: AlterConfigsResponse = net
        .request((a, conn), (ApiKey::AlterConfigs, 2), &req, WAIT)
        .unwrap();
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0]);
    net.advance(Duration::from_secs(1));
    let want: BTreeMap<String, String> = [("cleanup.policy".to_owned(), "compact".to_owned())]
        .into_iter()
        .collect();
    for i in 0..3 {
        assert_eq!(image_configs(&net, i, "cfg"), want, "node {i}");
    }
    assert_eq!(produce_bytes(&mut net, "cfg", 500), 0, "no size limit now");

    // The defaults of every broker (the broker resource "") are metadata
    // too: set through one broker, in force on all, under a broker's own.
    let r = incremental(
        &mut net,
        a,
        &[(BROKER, "", &[(SET, "log.retention.ms", "888000")])],
        false,
    );
    assert_eq!(r, [(0, String::new())]);
    net.advance(Duration::from_secs(1));
    for i in 0..3 {
        let want = if i == b {
            (Some("777000".into()), 2)
        } else {
            (Some("888000".into()), 3)
        };
        assert_eq!(
            described(&mut net, i, "cfg", "retention.ms"),
            want,
            "node {i}"
        );
    }

    // A broker that restarts comes back with the settings.
    net.crash(a);
    net.advance(Duration::from_millis(500));
    net.restart(a);
    net.advance(Duration::from_secs(3));
    assert_eq!(
        described(&mut net, a, "cfg", "cleanup.policy"),
        (Some("compact".into()), 1)
    );
    assert_eq!(
        described(&mut net, a, "cfg", "max.message.bytes").1,
        5,
        "back to the broker's default"
    );
    assert_eq!(
        described(&mut net, a, "cfg", "retention.ms"),
        (Some("888000".into()), 3)
    );
}

#[test]
fn a_broker_that_cannot_reach_the_controller_says_so() {
    let mut net = cluster(29, (5, 2));
    let c = controller(&net);
    let a = (c + 1) % 3;
    let r = create_replicated(&mut net, c, "cfg", (1, 3));
    assert_eq!(r.topics[0].error_code, 0);
    net.advance(Duration::from_secs(1));
    net.separate(a, c);
    let set: &[Op<'_>] = &[(SET, "retention.ms", "5000")];
    let conn = net.client(a);
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        IncResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(s("cfg"))
            .with_configs(vec![
                IncConfig::default()
                    .with_name(s(set[0].1))
                    .with_config_operation(SET)
                    .with_value(Some(s(set[0].2))),
            ]),
    ]);
    let r: IncrementalAlterConfigsResponse = net
        .request(
            (a, conn),
            (ApiKey::IncrementalAlterConfigs, 1),
            &req,
            Duration::from_secs(40),
        )
        .expect("answered within request.timeout.ms");
    let code = r.responses[0].error_code;
    assert_eq!(code, REQUEST_TIMED_OUT, "{:?}", r.responses[0]);
    assert!(!image_configs(&net, c, "cfg").contains_key("retention.ms"));
}
