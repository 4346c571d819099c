//! OffsetFetch 1–8 (several groups at 8): committed offsets, -1 with empty
//! metadata where nothing is committed, as Kafka answers.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{ApiKey, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::ApiSpec;
use crate::broker::group_log::Committed;
use crate::broker::groups::OffsetTable;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::OffsetFetch,
    min: 1,
    max: 8,
    flexible: 6,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    // A topic, before and from v8 alike: name, partition_indexes.
    let topic_min = r.string_min() + r.prefix_min() + r.tags_min();
    let topic = |r: &mut Reader<'_>| {
        r.string()?;
        r.array(4, |r| r.skip(4))?;
        r.tags()
    };
    if v <= 7 {
        r.string()?; // group_id
        r.array(topic_min, topic)?; // topics
    } else {
        // groups: group_id, topics
        r.array(r.string_min() + r.prefix_min() + r.tags_min(), |r| {
            r.string()?;
            r.array(topic_min, topic)?;
            r.tags()
        })?;
    }
    if v >= 7 {
        r.skip(1)?; // require_stable
    }
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<OffsetFetchRequest>(request) else {
        return Answer::Malformed;
    };
    let v = request.version;
    let mut resp = answer(&cx.groups.committed, v, &req);
    // In a cluster only the group's coordinator answers for it.
    if v >= 8 {
        for g in &mut resp.groups {
            if let Some(code) = cx.not_coordinator(g.group_id.0.as_str()) {
                g.error_code = code;
                g.topics.clear();
            }
        }
    } else if let Some(code) = cx.not_coordinator(req.group_id.0.as_str()) {
        resp = OffsetFetchResponse::default();
        if v >= 2 {
            resp.error_code = code;
        } else {
            // v1 has errors only per partition.
            for t in req.topics.iter().flatten() {
                let partitions = t.partition_indexes.iter().map(|&p| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(-1)
                        .with_metadata(Some(StrBytes::new()))
                        .with_error_code(code)
                });
                resp.topics.push(
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions.collect()),
                );
            }
        }
    }
    super::respond(request, &resp)
}

fn answer(committed: &OffsetTable, v: i16, req: &OffsetFetchRequest) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if v >= 8 {
        for g in &req.groups {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.clone(), t.partition_indexes.clone()))
            });
            let found = lookup(committed, g.group_id.0.as_str(), topics);
            let mut group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            for (name, partitions) in found {
                let mut t = OffsetFetchResponseTopics::default().with_name(name);
                for (index, c) in partitions {
                    t.partitions.push(
                        OffsetFetchResponsePartitions::default()
                            .with_partition_index(index)
                            .with_committed_offset(c.offset)
                            .with_committed_leader_epoch(c.leader_epoch)
                            .with_metadata(Some(StrBytes::from_string(c.metadata))),
                    );
                }
                group.topics.push(t);
            }
            resp.groups.push(group);
        }
        return resp;
    }
    let topics = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.clone(), t.partition_indexes.clone()))
    });
    for (name, partitions) in lookup(committed, req.group_id.0.as_str(), topics) {
        let mut t = OffsetFetchResponseTopic::default().with_name(name);
        for (index, c) in partitions {
            let mut p = OffsetFetchResponsePartition::default()
                .with_partition_index(index)
                .with_committed_offset(c.offset)
                .with_metadata(Some(StrBytes::from_string(c.metadata)));
            if v >= 5 {
                p.committed_leader_epoch = c.leader_epoch;
            }
            t.partitions.push(p);
        }
        resp.topics.push(t);
    }
    resp
}

/// Committed offsets for the asked partitions (all the group has when
/// `topics` is `None`); -1 with empty metadata where nothing is committed.
fn lookup(
    committed: &OffsetTable,
    group: &str,
    topics: Option<impl Iterator<Item = (TopicName, Vec<i32>)>>,
) -> Vec<(TopicName, Vec<(i32, Committed)>)> {
    let table = committed.get(group);
    let none = Committed {
        offset: -1,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: -1,
    };
    match topics {
        Some(topics) => topics
            .map(|(name, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|p| {
                        let key = (name.0.as_str().to_owned(), p);
                        let c = table.and_then(|t| t.get(&key)).cloned();
                        (p, c.unwrap_or_else(|| none.clone()))
                    })
                    .collect();
                (name, found)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<&str, Vec<(i32, Committed)>> = BTreeMap::new();
            for ((topic, p), c) in table.into_iter().flatten() {
                by_topic.entry(topic).or_default().push((*p, c.clone()));
            }
            by_topic
                .into_iter()
                .map(|(t, mut ps)| {
                    ps.sort_by_key(|(p, _)| *p);
                    (TopicName(StrBytes::from_string(t.to_owned())), ps)
                })
                .collect()
        }
    }
}
