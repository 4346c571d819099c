//! DescribeQuorum 0–2: how the metadata quorum stands — the leader (the
//! active controller), its epoch (the Raft term), the high watermark (the
//! commit index) and the voters, with their log end offsets where the
//! answering voter is the leader and knows them (-1 elsewhere), as
//! `kafka-metadata-quorum describe --status` shows it.
//!
//! Any voter answers with what it knows; Kafka's brokers forward the
//! request to the controller instead. The only partition is
//! `__cluster_metadata`-0; another gets UNKNOWN_TOPIC_OR_PARTITION. A
//! broker running without a quorum answers INVALID_REQUEST, saying so.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;

use super::ApiSpec;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::DescribeQuorum,
    min: 0,
    max: 2,
    flexible: 0,
    walk,
    handle,
};

/// The metadata log's name, as Kafka's.
pub(crate) const METADATA_TOPIC: &str = "__cluster_metadata";

/// The listener name the voters' addresses are given under (v2).
const CONTROLLER_LISTENER: &str = "CONTROLLER";

fn walk(r: &mut Reader<'_>, _v: i16) -> Option<()> {
    // topics: name, partitions: partition_index
    r.array(r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.string()?;
        r.array(4 + r.tags_min(), |r| {
            r.skip(4)?;
            r.tags()
        })?;
        r.tags()
    })?;
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<DescribeQuorumRequest>(request) else {
        return Answer::Malformed;
    };
    let v = request.version;
    let mut response = DescribeQuorumResponse::default();
    let Some(status) = cx.quorum.as_ref().map(|q| q.status()) else {
        response.error_code = ResponseError::InvalidRequest.code();
        if v >= 2 {
            response.error_message = Some(StrBytes::from_static_str(
                "this broker runs without a metadata quorum: controller.quorum.voters names no other voter",
            ));
        }
        return super::respond(request, &response);
    };
    for topic in &req.topics {
        let mut t = TopicData::default().with_topic_name(topic.topic_name.clone());
        for p in &topic.partitions {
            let mut data = PartitionData::default().with_partition_index(p.partition_index);
            if topic.topic_name.0.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                data.error_code = ResponseError::UnknownTopicOrPartition.code();
                data.leader_id = BrokerId(-1);
                data.leader_epoch = -1;
                data.high_watermark = -1;
            } else {
                data.leader_id = BrokerId(status.leader.unwrap_or(-1));
                data.leader_epoch = i32::try_from(status.term).unwrap_or(i32::MAX);
                data.high_watermark = i64::try_from(status.committed).unwrap_or(i64::MAX);
                data.current_voters = status
                    .matched
                    .iter()
                    .map(|&(id, matched)| {
                        // Raft index n is offset n - 1 of the log: the
                        // log end offset is the index held.
                        let end = matched.map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX));
                        ReplicaState::default()
                            .with_replica_id(BrokerId(id))
                            .with_log_end_offset(end)
                            .with_last_fetch_timestamp(-1)
                            .with_last_caught_up_timestamp(-1)
                    })
                    .collect();
            }
            t.partitions.push(data);
        }
        response.topics.push(t);
    }
    if v >= 2 {
        response.nodes = cx
            .config
            .quorum_voters
            .iter()
            .map(|(id, addr)| {
                let (host, port) = addr.rsplit_once(':').unwrap_or((addr.as_str(), "0"));
                Node::default()
                    .with_node_id(BrokerId(*id))
                    .with_listeners(vec![
                        Listener::default()
                            .with_name(StrBytes::from_static_str(CONTROLLER_LISTENER))
                            .with_host(StrBytes::from_string(host.to_owned()))
                            .with_port(port.parse().unwrap_or(0)),
                    ])
            })
            .collect();
    }
    super::respond(request, &response)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};

    use super::*;
    use crate::protocol::guard::tests::check_api;

    #[test]
    fn the_guard_walks_every_version() {
        for v in API.min..=API.max {
            let req = DescribeQuorumRequest::default().with_topics(vec![
                TopicData::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
                    .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
            ]);
            check_api(ApiKey::DescribeQuorum, v, &req);
        }
    }
}
