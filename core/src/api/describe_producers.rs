//! DescribeProducers 0: each partition's idempotent producers as its log
//! knows them (see [`crate::log::producers`]): producer id, epoch, the
//! sequence of its last batch and that batch's timestamp. There are no
//! transactions, so the coordinator epoch and the open transaction's first
//! offset are always -1, as Kafka reports a producer outside one. A
//! partition that does not exist gets UNKNOWN_TOPIC_OR_PARTITION, one
//! offline after a storage error KAFKA_STORAGE_ERROR.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};

use super::ApiSpec;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::log::PartitionLog;
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::DescribeProducers,
    min: 0,
    max: 0,
    flexible: 0,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, _v: i16) -> Option<()> {
    // topics: name, partition_indexes
    r.array(r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.string()?;
        r.array(4, |r| r.skip(4))?;
        r.tags()
    })?;
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<DescribeProducersRequest>(request) else {
        return Answer::Malformed;
    };
    let mut response = DescribeProducersResponse::default();
    for topic in &req.topics {
        let name = topic.name.0.as_str();
        let mut t = TopicResponse::default().with_name(topic.name.clone());
        for &index in &topic.partition_indexes {
            let log = cx.leads(name, index).map(|key| cx.logs.get(key));
            let p = PartitionResponse::default().with_partition_index(index);
            t.partitions.push(match log {
                Err(e) => p.with_error_code(e.code()),
                Ok(None) => p.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                Ok(Some(log)) if log.offline().is_some() => {
                    p.with_error_code(ResponseError::KafkaStorageError.code())
                }
                Ok(Some(log)) => p.with_active_producers(active_producers(log)),
            });
        }
        response.topics.push(t);
    }
    super::respond(request, &response)
}

/// Kafka's `UnifiedLog.activeProducers`: every producer the partition
/// keeps state for, by producer id.
fn active_producers(log: &PartitionLog) -> Vec<ProducerState> {
    log.producers()
        .iter()
        .map(|(id, entry)| {
            ProducerState::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(i32::from(entry.epoch))
                .with_last_sequence(entry.batches().last().map_or(-1, |b| b.last_seq))
                .with_last_timestamp(entry.last_timestamp)
                .with_coordinator_epoch(-1)
                .with_current_txn_start_offset(-1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::protocol::guard::tests::check_api;

    #[test]
    fn the_guard_walks_every_version() {
        let topic = |name, partitions: Vec<i32>| {
            TopicRequest::default()
                .with_name(TopicName(StrBytes::from_static_str(name)))
                .with_partition_indexes(partitions)
        };
        for v in API.min..=API.max {
            let req = DescribeProducersRequest::default().with_topics(vec![
                topic("orders", vec![0, 1, 2]),
                topic("refunds", vec![]),
            ]);
            check_api(ApiKey::DescribeProducers, v, &req);
        }
    }
}
