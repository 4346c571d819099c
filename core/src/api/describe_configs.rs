//! DescribeConfigs 1–4: the settings of topics and of this broker, each
//! with its value, where it comes from (a topic's own setting, the broker's
//! `server.properties`, or the default), whether it is read-only or
//! sensitive, and, when asked, its synonyms (the broker setting behind a
//! topic default) and documentation.
//!
//! Every topic setting Conveyor honours is listed ([`TOPIC_SETTINGS`]);
//! nothing can be changed at run time yet, so broker settings are
//! read-only. Kafka 4 no longer answers version 0.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::ApiSpec;
use crate::broker::logs::{Level, Logs, Overrides};
use crate::broker::valid_topic_name;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::config::{Config, ConfigType, TOPIC_SETTINGS, TopicConfig, dynamic_broker_setting};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::DescribeConfigs,
    min: 1,
    max: 4,
    flexible: 4,
    walk,
    handle,
};

/// Kafka's resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;

/// Kafka's config sources.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    r.array(1 + 2 * r.string_min() + r.tags_min(), |r| {
        r.skip(1)?; // resource_type
        r.string()?; // resource_name
        r.array(r.string_min(), Reader::string)?; // configuration_keys
        r.tags()
    })?;
    r.skip(1)?; // include_synonyms
    if v >= 3 {
        r.skip(1)?; // include_documentation
    }
    r.tags()
}

/// One setting as described: name, value, source, type, documentation, and
/// its synonyms in precedence order (the first is where the value comes
/// from).
pub(super) struct Described {
    pub(super) name: &'static str,
    pub(super) value: String,
    pub(super) source: i8,
    pub(super) read_only: bool,
    kind: ConfigType,
    doc: &'static str,
    synonyms: Vec<(&'static str, String, i8)>,
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<DescribeConfigsRequest>(request) else {
        return Answer::Malformed;
    };
    let v = request.version;
    let mut response = DescribeConfigsResponse::default();
    for resource in &req.resources {
        let name = resource.resource_name.as_str();
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let described = match resource.resource_type {
            TOPIC => topic(cx, name),
            BROKER => broker(cx.config, cx.logs, name),
            BROKER_LOGGER => Err((
                ResponseError::InvalidRequest,
                "broker loggers cannot be described here".to_owned(),
            )),
            other => Err((
                ResponseError::InvalidRequest,
                format!("resource type {other} has no configs to describe"),
            )),
        };
        match described {
            Err((error, message)) => {
                result.error_code = error.code();
                result.error_message = Some(StrBytes::from_string(message));
            }
            Ok(settings) => {
                // Null and empty both mean every key, as Kafka reads them
                // (`ConfigHelper.describeConfigs`); keys asked for but
                // unknown are left out.
                let wanted = resource
                    .configuration_keys
                    .as_ref()
                    .filter(|k| !k.is_empty());
                for d in settings {
                    if wanted.is_some_and(|keys| !keys.iter().any(|k| k.as_str() == d.name)) {
                        continue;
                    }
                    result.configs.push(encode(v, &req, d));
                }
            }
        }
        response.results.push(result);
    }
    super::respond(request, &response)
}

fn encode(v: i16, req: &DescribeConfigsRequest, d: Described) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(d.name))
        .with_value(Some(StrBytes::from_string(d.value)))
        .with_read_only(d.read_only)
        .with_config_source(d.source)
        .with_is_sensitive(false);
    if req.include_synonyms {
        c.synonyms = d
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str(name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_source(source)
            })
            .collect();
    }
    // kafka-protocol refuses to encode a field its version lacks.
    if v >= 3 {
        c.config_type = d.kind as i8;
        if req.include_documentation {
            c.documentation = Some(StrBytes::from_static_str(d.doc));
        }
    }
    c
}

/// A topic's settings: its own where it has them, else the broker's.
fn topic(cx: &Ctx<'_>, name: &str) -> Result<Vec<Described>, (ResponseError, String)> {
    if !valid_topic_name(name) {
        let message = format!("topic name `{name}` is not valid: 1-249 of [a-zA-Z0-9._-]");
        return Err((ResponseError::InvalidTopicException, message));
    }
    if !cx.topic_exists(name) {
        let message = format!("topic `{name}` does not exist");
        return Err((ResponseError::UnknownTopicOrPartition, message));
    }
    Ok(topic_settings(cx, name, &cx.topic_overrides(name)))
}

/// Every setting of topic `name` whose own settings are `own`, described:
/// also what CreateTopics answers for a topic it creates (or would).
pub(super) fn topic_settings(cx: &Ctx<'_>, name: &str, own: &Overrides) -> Vec<Described> {
    let effective = cx.logs.topic_config(name, own);
    let kafka = TopicConfig::default();
    TOPIC_SETTINGS
        .iter()
        .filter_map(|s| {
            // A topic's own setting reads as it was given, as in Kafka.
            let given = own.iter().find(|(k, _)| k == s.key).map(|(_, v)| v.clone());
            let value = given.clone().or_else(|| effective.get(s.key))?;
            let kafka_value = kafka.get(s.key)?;
            let mut synonyms = Vec::new();
            if given.is_some() {
                synonyms.push((s.key, value.clone(), DYNAMIC_TOPIC_CONFIG));
            }
            // A setting with no broker-level name reads its Kafka default.
            let default_name = if s.broker_key.is_empty() {
                s.key
            } else {
                s.broker_key
            };
            if !s.broker_key.is_empty() {
                synonyms.extend(dynamic_synonyms(cx.logs, s.broker_key));
                let static_value = cx.config.topic_defaults.get(s.key)?;
                if static_value != kafka_value {
                    synonyms.push((s.broker_key, static_value, STATIC_BROKER_CONFIG));
                }
            }
            synonyms.push((default_name, kafka_value, DEFAULT_CONFIG));
            Some(Described {
                name: s.key,
                value,
                source: synonyms[0].2,
                read_only: false,
                kind: s.kind,
                doc: s.doc,
                synonyms,
            })
        })
        .collect()
}

/// The dynamic levels that set broker key `key`, most specific first, with
/// their values.
fn dynamic_synonyms(logs: &Logs, key: &'static str) -> Vec<(&'static str, String, i8)> {
    let d = logs.dynamic();
    [
        (Level::Broker, DYNAMIC_BROKER_CONFIG),
        (Level::ClusterDefault, DYNAMIC_DEFAULT_BROKER_CONFIG),
    ]
    .into_iter()
    .filter_map(|(level, source)| {
        let (_, v) = d.at(level).iter().find(|(k, _)| k == key)?;
        Some((key, v.clone(), source))
    })
    .collect()
}

/// This broker's settings (the resource name is its id, or empty for the
/// cluster's defaults, which are this broker's): those `server.properties`
/// gave, with the ones changed at run time.
fn broker(
    static_config: &Config,
    logs: &Logs,
    name: &str,
) -> Result<Vec<Described>, (ResponseError, String)> {
    let config = &Config {
        topic_defaults: logs.defaults().clone(),
        ..static_config.clone()
    };
    if !name.is_empty() {
        let id: i32 = name.parse().map_err(|_| {
            let message = format!("broker id must be an integer, but it is `{name}`");
            (ResponseError::InvalidRequest, message)
        })?;
        if id != config.node_id {
            let message = format!(
                "unexpected broker id {id}: this is broker {}, or use an empty name",
                config.node_id
            );
            return Err((ResponseError::InvalidRequest, message));
        }
    }
    let defaults = Config::default();
    let mut out: Vec<Described> = broker_settings(config)
        .into_iter()
        .zip(broker_settings(&defaults))
        .zip(broker_settings(static_config))
        .map(
            |(((name, value, kind, doc), (_, default, _, _)), (_, static_value, _, _))| {
                let mut synonyms = dynamic_synonyms(logs, name);
                if static_value != default {
                    synonyms.push((name, static_value, STATIC_BROKER_CONFIG));
                }
                synonyms.push((name, default, DEFAULT_CONFIG));
                let source = synonyms[0].2;
                Described {
                    name,
                    value,
                    source,
                    read_only: dynamic_broker_setting(name).is_none(),
                    kind,
                    doc,
                    synonyms,
                }
            },
        )
        .collect();
    out.sort_by_key(|d| d.name);
    Ok(out)
}

/// The broker settings described, as (name, value, type, documentation).
fn broker_settings(c: &Config) -> Vec<(&'static str, String, ConfigType, &'static str)> {
    use ConfigType::{Boolean, Double, Int, List, Long};
    let voters = c
        .quorum_voters
        .iter()
        .map(|(id, addr)| format!("{id}@{addr}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut out = vec![
        ("node.id", c.node_id.to_string(), Int, "This broker's id."),
        (
            "broker.id",
            c.node_id.to_string(),
            Int,
            "This broker's id (node.id).",
        ),
        (
            "num.partitions",
            c.num_partitions.to_string(),
            Int,
            "Partitions of an auto-created topic.",
        ),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            Boolean,
            "Create topics named in Metadata requests.",
        ),
        (
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            Int,
            "The largest request frame; a larger one closes the connection.",
        ),
        (
            "queued.max.requests",
            c.max_inflight_requests.to_string(),
            Int,
            "Unanswered requests per connection before the broker stops reading it.",
        ),
        (
            "queued.max.request.bytes",
            c.queued_max_request_bytes.to_string(),
            Long,
            "Bytes of requests read and not yet answered, across connections, before the broker stops reading.",
        ),
        (
            "max.connections",
            c.max_connections.to_string(),
            Int,
            "Connections served at once; more are closed as they open.",
        ),
        (
            "fetch.max.wait.cap.ms",
            c.fetch_max_wait_cap_ms.to_string(),
            Long,
            "The longest a fetch may long-poll.",
        ),
        (
            "log.retention.check.interval.ms",
            c.retention_check_interval_ms.to_string(),
            Long,
            "How often retention runs.",
        ),
        (
            "log.flush.threads",
            c.flush_threads.to_string(),
            Int,
            "Fsyncs run at once.",
        ),
        (
            "log.cleaner.threads",
            c.cleaner_threads.to_string(),
            Int,
            "Cleaner jobs run at once, off the request path.",
        ),
        (
            "metrics.listen",
            c.metrics_listen.clone(),
            ConfigType::String,
            "Where the metrics are served over HTTP (empty: nowhere).",
        ),
        (
            "offsets.topic.num.partitions",
            c.offsets_topic_partitions.to_string(),
            Int,
            "Partitions of __consumer_offsets.",
        ),
        (
            "offsets.topic.segment.bytes",
            c.offsets_topic_segment_bytes.to_string(),
            Int,
            "__consumer_offsets segments roll at this size.",
        ),
        (
            "offset.metadata.max.bytes",
            c.offset_metadata_max_bytes.to_string(),
            Int,
            "The longest metadata an offset commit may carry.",
        ),
        (
            "offsets.retention.minutes",
            (c.offsets_retention_ms / 60_000).to_string(),
            Int,
            "Committed offsets of a group with no members expire this long after their commit.",
        ),
        (
            "offsets.retention.check.interval.ms",
            c.offsets_retention_check_interval_ms.to_string(),
            Long,
            "How often offsets expire.",
        ),
        (
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay_ms.to_string(),
            Int,
            "How long a new group's first rebalance waits for more members.",
        ),
        (
            "group.min.session.timeout.ms",
            c.group_min_session_timeout_ms.to_string(),
            Int,
            "The shortest session timeout a member may ask for.",
        ),
        (
            "group.max.session.timeout.ms",
            c.group_max_session_timeout_ms.to_string(),
            Int,
            "The longest session timeout a member may ask for.",
        ),
        (
            "group.max.size",
            c.group_max_size.to_string(),
            Int,
            "Members per group.",
        ),
        (
            "producer.id.expiration.ms",
            c.producer_id_expiration_ms.to_string(),
            Int,
            "A producer idle this long is forgotten.",
        ),
        (
            "log.cleaner.enable",
            c.cleaner_enable.to_string(),
            Boolean,
            "Compacted topics are cleaned.",
        ),
        (
            "log.cleaner.backoff.ms",
            c.cleaner_backoff_ms.to_string(),
            Long,
            "How often the cleaner looks for logs due.",
        ),
        (
            "log.cleaner.io.max.bytes.per.second",
            if c.cleaner_io_max_bytes_per_second == u64::MAX {
                "1.7976931348623157E308".to_owned()
            } else {
                c.cleaner_io_max_bytes_per_second.to_string()
            },
            Double,
            "The most bytes a second the cleaner reads.",
        ),
        (
            "log.cleaner.dedupe.buffer.size",
            c.cleaner_dedupe_buffer_bytes.to_string(),
            Long,
            "The most bytes a cleaning pass's key map holds.",
        ),
        (
            "log.decompression.max.bytes",
            c.decompression_max_bytes.to_string(),
            Long,
            "The most bytes a batch's records may inflate to where the broker looks inside a compressed batch.",
        ),
        (
            "controller.quorum.voters",
            voters,
            List,
            "id@host:port of every voter; the broker keeps a connection to each other one.",
        ),
        (
            "controller.quorum.election.timeout.ms",
            c.quorum_election_timeout_ms.to_string(),
            Int,
            "How long a voter hears nothing from a leader before it stands for election.",
        ),
        (
            "metadata.max.idle.interval.ms",
            c.metadata_max_idle_interval_ms.to_string(),
            Int,
            "The active controller appends a NoOp record when the metadata log was idle this long.",
        ),
        (
            "metadata.log.snapshot.interval.records",
            c.metadata_snapshot_interval_records.to_string(),
            Long,
            "The metadata log is cut below what is applied once it holds this many records.",
        ),
        (
            "controller.quorum.tick.ms",
            c.quorum_tick_ms.to_string(),
            Int,
            "The metadata quorum's clock step.",
        ),
        (
            "reconnect.backoff.ms",
            c.reconnect_backoff_ms.to_string(),
            Long,
            "The wait before reconnecting to a peer.",
        ),
        (
            "reconnect.backoff.max.ms",
            c.reconnect_backoff_max_ms.to_string(),
            Long,
            "The longest wait before reconnecting to a peer.",
        ),
        (
            "request.timeout.ms",
            c.request_timeout_ms.to_string(),
            Int,
            "How long a peer may leave a request unanswered.",
        ),
    ];
    for s in TOPIC_SETTINGS.iter().filter(|s| !s.broker_key.is_empty()) {
        if let Some(value) = c.topic_defaults.get(s.key) {
            out.push((s.broker_key, value, s.kind, s.doc));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;

    use super::*;
    use crate::protocol::guard::tests::check_api;

    #[test]
    fn the_guard_walks_every_version() {
        for v in API.min..=API.max {
            let req = DescribeConfigsRequest::default()
                .with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(TOPIC)
                        .with_resource_name(StrBytes::from_static_str("orders"))
                        .with_configuration_keys(Some(vec![StrBytes::from_static_str(
                            "retention.ms",
                        )])),
                    DescribeConfigsResource::default()
                        .with_resource_type(BROKER)
                        .with_resource_name(StrBytes::from_static_str("0")),
                ])
                .with_include_synonyms(true)
                .with_include_documentation(v >= 3);
            check_api(ApiKey::DescribeConfigs, v, &req);
        }
    }

    #[test]
    fn broker_settings_line_up_with_the_defaults() {
        let (a, b) = (
            broker_settings(&Config::default()),
            broker_settings(&Config::default()),
        );
        let names = |v: &[(&str, String, ConfigType, &str)]| -> Vec<String> {
            v.iter().map(|e| e.0.to_owned()).collect()
        };
        assert_eq!(names(&a), names(&b));
        let mut c = Config::default();
        c.set("log.retention.hours", "1").unwrap();
        let logs = Logs::new(c.topic_defaults.clone());
        let described = broker(&c, &logs, "").unwrap();
        let r = described
            .iter()
            .find(|d| d.name == "log.retention.ms")
            .unwrap();
        assert_eq!(
            (r.value.as_str(), r.source),
            ("3600000", STATIC_BROKER_CONFIG)
        );
        let n = described
            .iter()
            .find(|d| d.name == "num.partitions")
            .unwrap();
        assert_eq!(n.source, DEFAULT_CONFIG);
        assert!(broker(&c, &logs, "7").is_err());
        assert!(broker(&c, &logs, "x").is_err());
    }
}
