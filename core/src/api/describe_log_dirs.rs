//! DescribeLogDirs 0–4: the broker's one log directory (the data
//! directory, by its absolute path from [`crate::Config::log_dir`]) and,
//! for the partitions asked for (every one for a null list), each one's
//! size: the bytes of its segments' log files. There is no replica
//! movement between directories, so the offset lag is 0 and no log is a
//! future one. Topics and partitions that do not exist are left out, as
//! Kafka leaves them out; so is a partition offline after a storage error,
//! as Kafka leaves out the logs of a failed directory.
//!
//! Version 4's total and usable bytes of the volume are -1 (Kafka's "not
//! known"): the core sees no file system, and the drivers do not report
//! one, so there is no honest value to give.
//!
//! Kafka 4 no longer answers version 0. It is answered here (older clients,
//! kafka-python 2 among them, ask for it): versions 0 and 1 are the same
//! bytes both ways, version 1 only changed how throttling is done, so both
//! are read and written with version 1's layout.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::ApiSpec;
use crate::broker::logs::Logs;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{self, Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::DescribeLogDirs,
    min: 0,
    max: 4,
    flexible: 2,
    walk,
    handle,
};

/// The volume's size, not known to the core (see the module docs).
const UNKNOWN_BYTES: i64 = -1;

fn walk(r: &mut Reader<'_>, _v: i16) -> Option<()> {
    // topics (nullable): topic, partitions
    r.array(r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.string()?;
        r.array(4, |r| r.skip(4))?;
        r.tags()
    })?;
    r.tags()
}

/// The version kafka-protocol reads and writes `v` with: 0 as 1.
fn layout(v: i16) -> i16 {
    v.max(1)
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let v = layout(request.version);
    let Some(req) = protocol::decode::<DescribeLogDirsRequest>(request.key, &request.body, v)
    else {
        return Answer::Malformed;
    };
    let wanted = req.topics.as_ref().map(|topics| {
        let mut by_topic: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
        for t in topics {
            let set = by_topic.entry(t.topic.0.as_str()).or_default();
            set.extend(t.partitions.iter().copied());
        }
        by_topic
    });
    let mut dir = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(cx.config.log_dir.clone()))
        .with_topics(describe(cx.logs, wanted.as_ref()));
    if v >= 4 {
        dir.total_bytes = UNKNOWN_BYTES;
        dir.usable_bytes = UNKNOWN_BYTES;
    }
    let response = DescribeLogDirsResponse::default().with_results(vec![dir]);
    Answer::Frame(protocol::encode_response(
        request.key,
        v,
        request.correlation_id,
        &response,
    ))
}

/// The topics and partitions of `wanted` (all of them for `None`) that
/// have a live log, by name and partition.
fn describe(
    logs: &Logs,
    wanted: Option<&BTreeMap<&str, BTreeSet<i32>>>,
) -> Vec<DescribeLogDirsTopic> {
    let mut out = Vec::new();
    for (name, topic) in logs.topics() {
        let asked = match wanted {
            None => None,
            Some(w) => match w.get(name.as_str()) {
                Some(partitions) => Some(partitions),
                None => continue,
            },
        };
        let partitions: Vec<DescribeLogDirsPartition> = topic
            .hosted()
            .filter_map(|(index, key)| {
                if asked.is_some_and(|a| !a.contains(&index)) {
                    return None;
                }
                let log = logs.get(key).filter(|l| l.offline().is_none())?;
                Some(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(index)
                        .with_partition_size(i64::try_from(log.size_bytes()).unwrap_or(i64::MAX))
                        .with_offset_lag(0)
                        .with_is_future_key(false),
                )
            })
            .collect();
        if !partitions.is_empty() {
            out.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;

    use super::*;
    use crate::protocol::guard::tests::check_api;

    fn request(topics: Option<Vec<DescribableLogDirTopic>>) -> DescribeLogDirsRequest {
        DescribeLogDirsRequest::default().with_topics(topics)
    }

    #[test]
    fn the_guard_walks_every_version() {
        let topic = |name, partitions: Vec<i32>| {
            DescribableLogDirTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(name)))
                .with_partitions(partitions)
        };
        for v in API.min..=API.max {
            // kafka-protocol writes version 0 as version 1: the same bytes.
            let v = layout(v);
            let some = Some(vec![
                topic("orders", vec![0, 1, 2]),
                topic("refunds", vec![]),
            ]);
            check_api(ApiKey::DescribeLogDirs, v, &request(some));
            check_api(ApiKey::DescribeLogDirs, v, &request(None));
        }
    }

    #[test]
    fn version_0_walks_as_version_1() {
        let req = request(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_partitions(vec![3]),
        ]));
        let mut body = bytes::BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(&req, &mut body, 1).unwrap();
        assert!(protocol::guard::counts_fit(
            ApiKey::DescribeLogDirs,
            0,
            &body
        ));
        assert!(!protocol::guard::counts_fit(
            ApiKey::DescribeLogDirs,
            0,
            &body[..body.len() - 1]
        ));
    }
}
