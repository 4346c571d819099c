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

use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::{Decodable, Encodable};

use super::ApiSpec;
use crate::broker::cluster::Committed;
use crate::broker::forward;
use crate::broker::logs::{Level, Overrides};
use crate::broker::valid_topic_name;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::cluster::records::{BROKER_RESOURCE, Record, TOPIC_RESOURCE};
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

fn handle(cx: &mut Ctx<'_>, request: &Request, origin: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<AlterConfigsRequest>(request) else {
        return Answer::Malformed;
    };
    let resources: Vec<(i8, StrBytes)> = req
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.clone()))
        .collect();
    let only = |keep: &dyn Fn(usize) -> bool| {
        let mut req = req.clone();
        req.resources = keep_only(std::mem::take(&mut req.resources), keep);
        req
    };
    if let Some(answer) =
        forward_metadata::<AlterConfigsResponse, _>(cx, request, origin, &resources, only)
    {
        return answer;
    }
    let mut committed = Committed::new(request, AlterConfigsResponse::default(), deadline(cx));
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
        committed.response().responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone()),
        );
        // The topic's settings become exactly these.
        let change = Change {
            name: &resource.resource_name,
            kind: resource.resource_type,
            replace: true,
            validate_only: req.validate_only,
        };
        alter(cx, &mut committed, change, ops);
    }
    committed.answer(cx)
}

fn handle_incremental(cx: &mut Ctx<'_>, request: &Request, origin: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<IncrementalAlterConfigsRequest>(request) else {
        return Answer::Malformed;
    };
    let resources: Vec<(i8, StrBytes)> = req
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.clone()))
        .collect();
    let only = |keep: &dyn Fn(usize) -> bool| {
        let mut req = req.clone();
        req.resources = keep_only(std::mem::take(&mut req.resources), keep);
        req
    };
    if let Some(answer) = forward_metadata::<IncrementalAlterConfigsResponse, _>(
        cx, request, origin, &resources, only,
    ) {
        return answer;
    }
    let mut committed = Committed::new(
        request,
        IncrementalAlterConfigsResponse::default(),
        deadline(cx),
    );
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
        committed.response().responses.push(
            IncrementalResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone()),
        );
        let change = Change {
            name: &resource.resource_name,
            kind: resource.resource_type,
            replace: false,
            validate_only: req.validate_only,
        };
        alter(cx, &mut committed, change, ops);
    }
    committed.answer(cx)
}

/// The items of `items` whose index `keep` keeps.
fn keep_only<T>(items: Vec<T>, keep: &dyn Fn(usize) -> bool) -> Vec<T> {
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, t)| t)
        .collect()
}

/// How long a change may take to commit in a cluster: AlterConfigs names
/// no timeout, so the broker's `request.timeout.ms`.
fn deadline(cx: &Ctx<'_>) -> crate::time::Instant {
    let timeout = std::time::Duration::from_millis(cx.config.request_timeout_ms);
    cx.now.mono.saturating_add(timeout)
}

/// The two APIs' responses, as this file fills them in: one result per
/// resource, in the request's order.
trait Results: Encodable + Decodable + Default + Send + 'static {
    fn len(&self) -> usize;
    fn get(&self, at: usize) -> (i16, Option<StrBytes>);
    fn set(&mut self, at: usize, code: i16, message: Option<StrBytes>);
    fn push(&mut self, kind: i8, name: StrBytes);
}

impl Results for AlterConfigsResponse {
    fn len(&self) -> usize {
        self.responses.len()
    }
    fn get(&self, at: usize) -> (i16, Option<StrBytes>) {
        let r = &self.responses[at];
        (r.error_code, r.error_message.clone())
    }
    fn set(&mut self, at: usize, code: i16, message: Option<StrBytes>) {
        let r = &mut self.responses[at];
        (r.error_code, r.error_message) = (code, message);
    }
    fn push(&mut self, kind: i8, name: StrBytes) {
        self.responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(kind)
                .with_resource_name(name),
        );
    }
}

impl Results for IncrementalAlterConfigsResponse {
    fn len(&self) -> usize {
        self.responses.len()
    }
    fn get(&self, at: usize) -> (i16, Option<StrBytes>) {
        let r = &self.responses[at];
        (r.error_code, r.error_message.clone())
    }
    fn set(&mut self, at: usize, code: i16, message: Option<StrBytes>) {
        let r = &mut self.responses[at];
        (r.error_code, r.error_message) = (code, message);
    }
    fn push(&mut self, kind: i8, name: StrBytes) {
        self.responses.push(
            IncrementalResourceResponse::default()
                .with_resource_type(kind)
                .with_resource_name(name),
        );
    }
}

/// Whether a resource's settings are metadata in a cluster: a topic's,
/// and the defaults of every broker (the broker resource ""). One
/// broker's own settings (its id) are its own.
fn is_metadata(kind: i8, name: &str) -> bool {
    kind == TOPIC || (kind == BROKER && name.is_empty())
}

/// In a cluster, on a broker that is not the active controller: send the
/// request's metadata resources ([`is_metadata`]) on to the controller,
/// which alone changes metadata, and answer with what it answers. A
/// broker's own resource sent beside them (librdkafka sends both to the
/// broker a broker resource names) is answered here. `only(keep)` is the request with just the resources
/// `keep` keeps, by index. `None` when the whole request is answered here:
/// alone, on the controller, with no topic resource, or when a broker
/// forwarded it already (to a controller that no longer is one: it answers
/// NOT_CONTROLLER, and the client asks again).
fn forward_metadata<R: Results, Q: Encodable>(
    cx: &mut Ctx<'_>,
    request: &Request,
    origin: Origin<'_>,
    resources: &[(i8, StrBytes)],
    only: impl Fn(&dyn Fn(usize) -> bool) -> Q,
) -> Option<Answer> {
    cx.not_controller()?;
    let is_topic = |i: usize| is_metadata(resources[i].0, &resources[i].1);
    if !(0..resources.len()).any(is_topic) || !forward::may_forward(cx, origin) {
        return None;
    }
    let (key, version, correlation_id) = (request.key, request.version, request.correlation_id);
    let local: Option<R> = if (0..resources.len()).all(is_topic) {
        None
    } else {
        let here = with_body(request, &only(&|i| !is_topic(i)))?;
        let answer = match key {
            ApiKey::AlterConfigs => handle(cx, &here, origin),
            _ => handle_incremental(cx, &here, origin),
        };
        match answer {
            Answer::Frame(frame) => frame
                .get(4..)
                .and_then(|f| decode_response(key, version, f)),
            other => return Some(other),
        }
    };
    let Some(there) = with_body(request, &only(&is_topic)) else {
        return Some(Answer::Malformed);
    };
    let resources = resources.to_vec();
    let finish = move |answer: Option<&[u8]>| {
        let remote: Option<R> = answer.and_then(|a| decode_response(key, version, a));
        let unanswered = || {
            let m = "the active controller could not be asked, or did not answer within \
                     request.timeout.ms; the change may have been made";
            (
                ResponseError::RequestTimedOut.code(),
                Some(StrBytes::from_static_str(m)),
            )
        };
        let mut response = R::default();
        let (mut mine, mut theirs) = (0, 0);
        for (kind, name) in &resources {
            let (from, at) = if is_metadata(*kind, name) {
                theirs += 1;
                (remote.as_ref(), theirs - 1)
            } else {
                mine += 1;
                (local.as_ref(), mine - 1)
            };
            let (code, message) = from
                .filter(|r| at < r.len())
                .map_or_else(unanswered, |r| r.get(at));
            response.push(*kind, name.clone());
            response.set(response.len() - 1, code, message);
        }
        crate::protocol::encode_response(key, version, correlation_id, &response)
    };
    Some(forward::forward(cx, &there, origin, Box::new(finish)))
}

/// `request` with another body, encoded at its version.
fn with_body(request: &Request, body: &impl Encodable) -> Option<Request> {
    let mut b = bytes::BytesMut::new();
    body.encode(&mut b, request.version).ok()?;
    Some(Request {
        key: request.key,
        version: request.version,
        correlation_id: request.correlation_id,
        client_id: request.client_id.clone(),
        body: b.freeze(),
    })
}

/// A response frame from the correlation id on (its header, then the
/// body), decoded.
fn decode_response<R: Decodable>(key: ApiKey, version: i16, frame: &[u8]) -> Option<R> {
    let mut b = bytes::Bytes::copy_from_slice(frame);
    ResponseHeader::decode(&mut b, key.response_header_version(version)).ok()?;
    R::decode(&mut b, version).ok()
}

fn null_value(key: &str) -> Failure {
    let m = format!("configuration `{key}` has a null value");
    (ResponseError::InvalidRequest, m)
}

/// What a resource's changes apply to.
enum Target<'a> {
    /// A topic of this broker alone.
    Topic(&'a str),
    /// A topic of the cluster: its settings are metadata records, changed
    /// by the active controller (this broker).
    ClusterTopic(&'a str),
    Broker(Level),
    /// The defaults of every broker of the cluster: metadata records too.
    ClusterDefaults,
}

/// One resource's request.
struct Change<'a> {
    name: &'a StrBytes,
    kind: i8,
    /// AlterConfigs: the settings become exactly the ones given.
    replace: bool,
    validate_only: bool,
}

/// One resource's changes, as both APIs apply them: the resource checked,
/// each change applied to its settings as stored (starting from none when
/// they are `replace`d), the whole checked and put in force — or, for a
/// topic of a cluster, proposed as metadata records, the result waiting
/// for them. Fills in the response's last result.
fn alter<R: Results>(
    cx: &mut Ctx<'_>,
    committed: &mut Committed<R>,
    change: Change<'_>,
    ops: Result<Vec<(&str, Op<'_>)>, Failure>,
) {
    let name = change.name.as_str();
    let at = committed.response().len() - 1;
    let result = target(cx, change.kind, name).and_then(|target| {
        let mut overrides = match (&target, change.replace) {
            (_, true) => Overrides::new(),
            (Target::Topic(topic), false) => cx.logs.overrides_of(topic),
            (Target::ClusterTopic(topic), false) => cx.topic_overrides(topic),
            (Target::Broker(level), false) => cx.logs.dynamic().at(*level).clone(),
            (Target::ClusterDefaults, false) => cluster_defaults(cx),
        };
        for (key, op) in ops? {
            apply(&mut overrides, cx, &target, key, op)?;
        }
        commit(cx, &target, overrides, change.validate_only)
    });
    match result {
        Ok(None) => {}
        Ok(Some(records)) => {
            let topic = (change.kind == TOPIC).then_some(name);
            propose(cx, committed, at, topic, &records);
        }
        Err((error, message)) => {
            let message = Some(StrBytes::from_string(message));
            committed.response().set(at, error.code(), message);
        }
    }
}

/// As the active controller, propose changed settings (of `topic`, or
/// the broker defaults); result `at` waits for them to commit.
fn propose<R: Results>(
    cx: &mut Ctx<'_>,
    committed: &mut Committed<R>,
    at: usize,
    topic: Option<&str>,
    records: &[Record],
) {
    let id = topic.and_then(|t| cx.image()?.topics.get(t).map(|t| t.id));
    let proposed = cx
        .quorum
        .as_deref_mut()
        .and_then(|q| q.propose(records).map(|index| (index, q.term())));
    let Some(entry) = proposed else {
        let why = "this broker stopped being the active controller; retry";
        let code = ResponseError::NotController.code();
        return committed
            .response()
            .set(at, code, Some(StrBytes::from_static_str(why)));
    };
    tracing::info!(topic, index = entry.0, "proposing settings");
    let topic = topic.map(str::to_owned);
    committed.wait_for_entry(entry, move |response: &mut R, outcome| {
        let failed = match (outcome, &topic) {
            (Ok(_), None) => None,
            (Ok(image), Some(t)) if image.topics.get(t).map(|t| t.id) == id => None,
            (Ok(_), Some(t)) => Some((
                ResponseError::UnknownTopicOrPartition.code(),
                format!("topic `{t}` was deleted before its settings changed"),
            )),
            (Err(failure), _) => Some(failure),
        };
        if let Some((code, why)) = failed {
            response.set(at, code, Some(StrBytes::from_string(why)));
        }
    });
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
        // A broker a request was forwarded to that is no longer the
        // controller (the client asks again).
        TOPIC if cx.not_controller().is_some() => {
            let (_, why) = cx.not_controller().unwrap_or_default();
            Err((ResponseError::NotController, why))
        }
        TOPIC if cx.quorum.is_some() => Ok(Target::ClusterTopic(name)),
        TOPIC => Ok(Target::Topic(name)),
        BROKER if name.is_empty() && cx.not_controller().is_some() => {
            let (_, why) = cx.not_controller().unwrap_or_default();
            Err((ResponseError::NotController, why))
        }
        BROKER if name.is_empty() && cx.quorum.is_some() => Ok(Target::ClusterDefaults),
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
fn apply(
    overrides: &mut Overrides,
    cx: &Ctx<'_>,
    target: &Target<'_>,
    key: &str,
    op: Op<'_>,
) -> Result<(), Failure> {
    let kind = match target {
        Target::Topic(_) | Target::ClusterTopic(_) => {
            TOPIC_SETTINGS.iter().find(|s| s.key == key).map(|s| s.kind)
        }
        Target::Broker(_) | Target::ClusterDefaults => dynamic_broker_setting(key),
    };
    let Some(kind) = kind else {
        let m = match target {
            Target::Topic(_) | Target::ClusterTopic(_) => {
                format!("configuration `{key}`: unknown topic configuration")
            }
            Target::Broker(_) | Target::ClusterDefaults => format!(
                "configuration `{key}` cannot be changed at run time: set it in server.properties"
            ),
        };
        let error = match target {
            Target::Topic(_) | Target::ClusterTopic(_) => ResponseError::InvalidConfig,
            Target::Broker(_) | Target::ClusterDefaults => ResponseError::InvalidRequest,
        };
        return Err((error, m));
    };
    let current = || {
        let own = overrides
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone());
        own.or_else(|| match target {
            Target::Topic(topic) | Target::ClusterTopic(topic) => {
                cx.logs.topic_config(topic, &[]).get(key)
            }
            Target::Broker(_) | Target::ClusterDefaults => TOPIC_SETTINGS
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
/// them in force (unless only validating). For a topic of a cluster, the
/// records that make the image's settings these instead (none when they
/// already are).
fn commit(
    cx: &mut Ctx<'_>,
    target: &Target<'_>,
    overrides: Overrides,
    validate_only: bool,
) -> Result<Option<Vec<Record>>, Failure> {
    for (key, value) in &overrides {
        // Stored one `name key=value` line each.
        if value.contains('\n') {
            let m = format!("configuration `{key}` has a value that cannot be stored");
            return Err((ResponseError::InvalidConfig, m));
        }
    }
    let invalid = |e: crate::config::ConfigError| (ResponseError::InvalidConfig, e.to_string());
    match *target {
        Target::Topic(topic) | Target::ClusterTopic(topic) => {
            let mut config = cx.logs.defaults().clone();
            for (key, value) in &overrides {
                config.set(key, value).map_err(invalid)?;
            }
            if validate_only {
                return Ok(None);
            }
            if let Target::ClusterTopic(_) = target {
                let old = cx.topic_overrides(topic);
                let records = config_records((TOPIC_RESOURCE, topic), &old, &overrides);
                return Ok((!records.is_empty()).then_some(records));
            }
            tracing::info!(topic, ?overrides, "topic settings changed");
            cx.logs.alter_topic(cx.io, topic, overrides);
        }
        Target::Broker(level) => {
            cx.logs.try_dynamic(level, &overrides).map_err(invalid)?;
            if !validate_only {
                tracing::info!(?level, ?overrides, "dynamic broker settings changed");
                cx.logs.set_dynamic(cx.io, level, overrides);
            }
        }
        Target::ClusterDefaults => {
            let level = Level::ClusterDefault;
            cx.logs.try_dynamic(level, &overrides).map_err(invalid)?;
            if validate_only {
                return Ok(None);
            }
            let old = cluster_defaults(cx);
            let records = config_records((BROKER_RESOURCE, ""), &old, &overrides);
            return Ok((!records.is_empty()).then_some(records));
        }
    }
    Ok(None)
}

/// The defaults of every broker, as the image has them.
fn cluster_defaults(cx: &Ctx<'_>) -> Overrides {
    cx.image().map_or_else(Overrides::new, |i| {
        let d = &i.broker_defaults;
        d.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    })
}

/// The Config records that take a resource's settings from `old` to
/// `new`: each key set to a new value, each key gone removed.
fn config_records(
    (resource_type, resource): (i8, &str),
    old: &Overrides,
    new: &Overrides,
) -> Vec<Record> {
    let record = |name: &str, value: Option<&String>| Record::Config {
        resource_type,
        resource: resource.to_owned(),
        name: name.to_owned(),
        value: value.cloned(),
    };
    let value_in =
        |o: &Overrides, key: &str| o.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let set = new
        .iter()
        .filter(|(k, v)| value_in(old, k).as_ref() != Some(v))
        .map(|(k, v)| record(k, Some(v)));
    let removed = old
        .iter()
        .filter(|(k, _)| value_in(new, k).is_none())
        .map(|(k, _)| record(k, None));
    set.chain(removed).collect()
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
