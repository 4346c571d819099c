//! OffsetForLeaderEpoch 2–4 (KIP-101, KIP-320): where a leader epoch ends
//! on the partition's leader, so a client can tell whether the log it read
//! was cut under it. A consumer asks after a leader change with the epoch
//! of the last record it consumed; when the answer's end offset is below
//! its position, records it read are gone (an unclean election, or a
//! position past the high watermark) and it resets.
//!
//! Kafka's answer, from the leader's epochs ([`crate::log::epochs`]): the
//! largest epoch at or below the one asked for and the start of the next,
//! or the log end for the epoch it leads in now; -1 and -1 for an epoch
//! it does not know. Each partition names the leader epoch its sender
//! knows, checked as Fetch checks it (FENCED_LEADER_EPOCH,
//! UNKNOWN_LEADER_EPOCH); only the leader answers, for followers as for
//! consumers (NOT_LEADER_OR_FOLLOWER elsewhere). Versions 0 and 1, which
//! Kafka 4 dropped, are not offered.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::ApiSpec;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::OffsetForLeaderEpoch,
    min: 2,
    max: 4,
    flexible: 4,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    if v >= 3 {
        r.skip(4)?; // replica_id
    }
    // partition, current_leader_epoch, leader_epoch
    let partition = 4 + 4 + 4;
    let partition_min = partition + r.tags_min();
    r.array(r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.string()?; // topic
        r.array(partition_min, |r| {
            r.skip(partition)?;
            r.tags()
        })?;
        r.tags()
    })?;
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<OffsetForLeaderEpochRequest>(request) else {
        return Answer::Malformed;
    };
    let mut response = OffsetForLeaderEpochResponse::default();
    for topic in &req.topics {
        let name = topic.topic.0.as_str();
        let mut t = OffsetForLeaderTopicResult::default().with_topic(topic.topic.clone());
        for p in &topic.partitions {
            let mut r = EpochEndOffset::default().with_partition(p.partition);
            let key = cx.leads_in(name, p.partition, p.current_leader_epoch);
            match key.map(|k| cx.logs.get(k)) {
                Err(e) => r.error_code = e.code(),
                Ok(None) => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Ok(Some(log)) if log.offline().is_some() => {
                    r.error_code = ResponseError::KafkaStorageError.code()
                }
                Ok(Some(log)) => {
                    let leading = cx.leader_epoch(name, p.partition);
                    if let Some((epoch, end)) = log.end_offset_for_epoch(p.leader_epoch, leading) {
                        r.leader_epoch = epoch;
                        r.end_offset = i64::try_from(end).unwrap_or(i64::MAX);
                    }
                }
            }
            t.partitions.push(r);
        }
        response.topics.push(t);
    }
    super::respond(request, &response)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::protocol::guard::tests::check_api;

    #[test]
    fn the_guard_walks_every_version() {
        for v in API.min..=API.max {
            let partition = |p, epoch| {
                OffsetForLeaderPartition::default()
                    .with_partition(p)
                    .with_current_leader_epoch(3)
                    .with_leader_epoch(epoch)
            };
            let mut req = OffsetForLeaderEpochRequest::default().with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("orders")))
                    .with_partitions(vec![partition(0, 2), partition(1, 3)]),
            ]);
            if v >= 3 {
                req.replica_id = BrokerId(-1);
            }
            check_api(ApiKey::OffsetForLeaderEpoch, v, &req);
        }
    }
}
