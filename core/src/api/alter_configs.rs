//! AlterConfigs 0–2 and IncrementalAlterConfigs 0–1: a topic's own
//! settings, checked by type and range, stored in `topic-configs` (so they
//! survive restarts) and in force on its live partitions at once.
//!
//! IncrementalAlterConfigs changes the keys it names (SET, DELETE, and
//! APPEND or SUBTRACT for a list such as `cleanup.policy`); AlterConfigs
//! replaces the topic's settings with the ones it gives, as Kafka does.
//!
//! Broker resources take the settings Kafka lets change at run time — the
//! broker-level defaults of topic settings (`log.retention.ms`,
//! `log.cleanup.policy`, `compression.type`, ...): for every broker (the
//! resource name "", Kafka's cluster-wide default) or for this one (its
//! id). They are stored in `broker-configs` and in force at once on every
//! topic that does not set them itself. Any other broker setting is read
//! once at startup and answered INVALID_REQUEST, naming
//! `server.properties`. With `validate_only` nothing changes.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::ApiSpec;
use crate::broker::logs::{Level, Overrides};
use crate::broker::valid_topic_name;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::config::{ConfigType, TOPIC_SETTINGS, dynamic_broker_setting};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::AlterConfigs,
    min: 0,
    max: 2,
    flexible: 2,
    walk,
    handle,
};

pub(super) const INCREMENTAL: ApiSpec = ApiSpec {
    key: ApiKey::IncrementalAlterConfigs,
    min: 0,
    max: 1,
    flexible: 1,
    walk: walk_incremental,
    handle: handle_incremental,
};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

fn walk(r: &mut Reader<'_>, _v: i16) -> Option<()> {
    let config_min = 2 * r.string_min() + r.tags_min();
    r.array(1 + r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.skip(1)?; // resource_type
        r.string()?; // resource_name
        r.array(config_min, |r| {
            r.string()?; // name
            r.string()?; // value
            r.tags()
        })?;
        r.tags()
    })?;
    r.skip(1)?; // validate_only
    r.tags()
}

fn walk_incremental(r: &mut Reader<'_>, _v: i16) -> Option<()> {
    let config_min = 2 * r.string_min() + 1 + r.tags_min();
    r.array(1 + r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.skip(1)?; // resource_type
        r.string()?; // resource_name
        r.array(config_min, |r| {
            r.string()?; // name
            r.skip(1)?; // config_operation
            r.string()?; // value
            r.tags()
        })?;
        r.tags()
    })?;
    r.skip(1)?; // validate_only
    r.tags()
}

/// One change to a topic's settings.
enum Op<'a> {
    Set(&'a str),
    Delete,
    Append(&'a str),
    Subtract(&'a str),
}

type Failure = (ResponseError, String);

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<AlterConfigsRequest>(request) else {
        return Answer::Malformed;
    };
    let mut response = AlterConfigsResponse::default();
    for resource in &req.resources {
        let ops = resource
            .configs
            .iter()
            .map(|c| {
                let key = c.name.as_str();
                let value = c.value.as_ref().ok_or_else(|| null_value(key))?;
                Ok((key, Op::Set(value.as_str())))
            })
            .collect();
        // The topic's settings become exactly these.
        let (code, message) = alter(
            cx,
            &resource.resource_name,
            resource.resource_type,
            true,
            ops,
            req.validate_only,
        );
        response.responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone()),
        );
    }
    super::respond(request, &response)
}

fn handle_incremental(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<IncrementalAlterConfigsRequest>(request) else {
        return Answer::Malformed;
    };
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in &req.resources {
        let ops = resource
            .configs
            .iter()
            .map(|c| {
                let key = c.name.as_str();
                let op = match (c.config_operation, c.value.as_ref().map(|v| v.as_str())) {
                    (0, Some(v)) => Op::Set(v),
                    (1, _) => Op::Delete,
                    (2, Some(v)) => Op::Append(v),
                    (3, Some(v)) => Op::Subtract(v),
                    (0 | 2 | 3, None) => return Err(null_value(key)),
                    (other, _) => {
                        let m = format!("unknown operation {other} for `{key}`");
                        return Err((ResponseError::InvalidRequest, m));
                    }
                };
                Ok((key, op))
            })
            .collect();
        let (code, message) = alter(
            cx,
            &resource.resource_name,
            resource.resource_type,
            false,
            ops,
            req.validate_only,
        );
        response.responses.push(
            IncrementalResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone()),
        );
    }
    super::respond(request, &response)
}

fn null_value(key: &str) -> Failure {
    let m = format!("configuration `{key}` has a null value");
    (ResponseError::InvalidRequest, m)
}

/// What a resource's changes apply to.
enum Target<'a> {
    Topic(&'a str),
    Broker(Level),
}

/// One resource's changes, as both APIs apply them: the resource checked,
/// each change applied to its settings as stored (starting from none when
/// they are `replace`d), the whole checked and put in force. The
/// response's error code and message.
fn alter(
    cx: &mut Ctx<'_>,
    name: &StrBytes,
    kind: i8,
    replace: bool,
    ops: Result<Vec<(&str, Op<'_>)>, Failure>,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    let name = name.as_str();
    let result = target(cx, kind, name).and_then(|target| {
        let mut overrides = match (&target, replace) {
            (_, true) => Overrides::new(),
            (Target::Topic(topic), false) => cx.logs.overrides_of(topic),
            (Target::Broker(level), false) => cx.logs.dynamic().at(*level).clone(),
        };
        for (key, op) in ops? {
            change(&mut overrides, cx, &target, key, op)?;
        }
        commit(cx, &target, overrides, validate_only)
    });
    outcome(result)
}

fn outcome(result: Result<(), Failure>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err((error, message)) => (error.code(), Some(StrBytes::from_string(message))),
    }
}

/// The resource whose settings change, if they can be changed here.
fn target<'a>(cx: &Ctx<'_>, kind: i8, name: &'a str) -> Result<Target<'a>, Failure> {
    match kind {
        TOPIC if !valid_topic_name(name) => Err((
            ResponseError::InvalidTopicException,
            format!("topic name `{name}` is not valid: 1-249 of [a-zA-Z0-9._-]"),
        )),
        TOPIC if !cx.topic_exists(name) => Err((
            ResponseError::UnknownTopicOrPartition,
            format!("topic `{name}` does not exist"),
        )),
        // Topic settings in a cluster are metadata records; changing them
        // through the quorum is not built yet, and changing them on one
        // broker alone would leave the brokers disagreeing.
        TOPIC if cx.quorum.is_some() => Err((
            ResponseError::InvalidRequest,
            format!(
                "topic `{name}`: changing a topic's settings in a cluster is not supported yet; \
                 give them at creation"
            ),
        )),
        TOPIC => Ok(Target::Topic(name)),
        BROKER if name.is_empty() => Ok(Target::Broker(Level::ClusterDefault)),
        BROKER if name.parse::<i32>().ok() == Some(cx.config.node_id) => {
            Ok(Target::Broker(Level::Broker))
        }
        BROKER => Err((
            ResponseError::InvalidRequest,
            format!(
                "unexpected broker id `{name}`: this is broker {}, or use an empty name for every broker",
                cx.config.node_id
            ),
        )),
        other => Err((
            ResponseError::InvalidRequest,
            format!("resource type {other} has no configs to alter"),
        )),
    }
}

/// Apply one change to the resource's settings as stored (`overrides`),
/// checking the key.
fn change(
    overrides: &mut Overrides,
    cx: &Ctx<'_>,
    target: &Target<'_>,
    key: &str,
    op: Op<'_>,
) -> Result<(), Failure> {
    let kind = match target {
        Target::Topic(_) => TOPIC_SETTINGS.iter().find(|s| s.key == key).map(|s| s.kind),
        Target::Broker(_) => dynamic_broker_setting(key),
    };
    let Some(kind) = kind else {
        let m = match target {
            Target::Topic(_) => format!("configuration `{key}`: unknown topic configuration"),
            Target::Broker(_) => format!(
                "configuration `{key}` cannot be changed at run time: set it in server.properties"
            ),
        };
        let error = match target {
            Target::Topic(_) => ResponseError::InvalidConfig,
            Target::Broker(_) => ResponseError::InvalidRequest,
        };
        return Err((error, m));
    };
    let current = || {
        let own = overrides
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone());
        own.or_else(|| match target {
            Target::Topic(topic) => cx.logs.topic_config(topic, &[]).get(key),
            Target::Broker(_) => TOPIC_SETTINGS
                .iter()
                .find(|s| s.broker_key == key)
                .and_then(|s| cx.logs.defaults().get(s.key)),
        })
        .unwrap_or_default()
    };
    let list_op = |what: &str| {
        let m = format!("configuration `{key}` is not a list: {what} applies to lists only");
        (ResponseError::InvalidConfig, m)
    };
    let value = match op {
        Op::Delete => {
            overrides.retain(|(k, _)| k != key);
            return Ok(());
        }
        Op::Set(v) => v.to_owned(),
        Op::Append(v) if kind == ConfigType::List => {
            let mut items = list(&current());
            for item in list(v) {
                if !items.contains(&item) {
                    items.push(item);
                }
            }
            items.join(",")
        }
        Op::Subtract(v) if kind == ConfigType::List => {
            let gone = list(v);
            let items: Vec<String> = list(&current())
                .into_iter()
                .filter(|i| !gone.contains(i))
                .collect();
            items.join(",")
        }
        Op::Append(_) => return Err(list_op("APPEND")),
        Op::Subtract(_) => return Err(list_op("SUBTRACT")),
    };
    overrides.retain(|(k, _)| k != key);
    overrides.push((key.to_owned(), value));
    Ok(())
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Check the resource's new settings as a whole, then store them and put
/// them in force (unless only validating).
fn commit(
    cx: &mut Ctx<'_>,
    target: &Target<'_>,
    overrides: Overrides,
    validate_only: bool,
) -> Result<(), Failure> {
    for (key, value) in &overrides {
        // Stored one `name key=value` line each.
        if value.contains('\n') {
            let m = format!("configuration `{key}` has a value that cannot be stored");
            return Err((ResponseError::InvalidConfig, m));
        }
    }
    let invalid = |e: crate::config::ConfigError| (ResponseError::InvalidConfig, e.to_string());
    match *target {
        Target::Topic(topic) => {
            let mut config = cx.logs.defaults().clone();
            for (key, value) in &overrides {
                config.set(key, value).map_err(invalid)?;
            }
            if !validate_only {
                tracing::info!(topic, ?overrides, "topic settings changed");
                cx.logs.alter_topic(cx.io, topic, overrides);
            }
        }
        Target::Broker(level) => {
            cx.logs.try_dynamic(level, &overrides).map_err(invalid)?;
            if !validate_only {
                tracing::info!(?level, ?overrides, "dynamic broker settings changed");
                cx.logs.set_dynamic(cx.io, level, overrides);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::incremental_alter_configs_request as inc;

    use super::*;
    use crate::protocol::guard::tests::check_api;

    fn s(v: &'static str) -> StrBytes {
        StrBytes::from_static_str(v)
    }

    #[test]
    fn the_guard_walks_every_version() {
        for v in API.min..=API.max {
            let req = AlterConfigsRequest::default()
                .with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(TOPIC)
                        .with_resource_name(s("orders"))
                        .with_configs(vec![
                            AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("1000"))),
                        ]),
                ])
                .with_validate_only(true);
            check_api(ApiKey::AlterConfigs, v, &req);
        }
        for v in INCREMENTAL.min..=INCREMENTAL.max {
            let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
                inc::AlterConfigsResource::default()
                    .with_resource_type(TOPIC)
                    .with_resource_name(s("orders"))
                    .with_configs(vec![
                        inc::AlterableConfig::default()
                            .with_name(s("cleanup.policy"))
                            .with_config_operation(2)
                            .with_value(Some(s("compact"))),
                        inc::AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_config_operation(1)
                            .with_value(None),
                    ]),
            ]);
            check_api(ApiKey::IncrementalAlterConfigs, v, &req);
        }
    }

    #[test]
    fn lists_append_and_subtract_without_repeats() {
        assert_eq!(list(" delete, compact ,"), ["delete", "compact"]);
    }
}
