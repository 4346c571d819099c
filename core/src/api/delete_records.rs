//! DeleteRecords 0–2: a partition's log start moves up to the offset asked
//! for (-1: the high watermark). Fetches below it get OFFSET_OUT_OF_RANGE
//! and ListOffsets earliest answers it; the segments wholly below it are
//! deleted at once, and the log-start checkpoint is written so a restart
//! does not bring the records back. Compact-only topics refuse it
//! (POLICY_VIOLATION), as in Kafka.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};

use super::ApiSpec;
use crate::broker::cluster::NotHere;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::config::CleanupPolicy;
use crate::log::ReadError;
use crate::protocol::{Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::DeleteRecords,
    min: 0,
    max: 2,
    flexible: 2,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, _v: i16) -> Option<()> {
    let partition_min = 4 + 8 + r.tags_min();
    r.array(r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.string()?; // name
        r.array(partition_min, |r| {
            r.skip(4 + 8)?; // partition_index, offset
            r.tags()
        })?;
        r.tags()
    })?;
    r.skip(4)?; // timeout_ms
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<DeleteRecordsRequest>(request) else {
        return Answer::Malformed;
    };
    let mut response = DeleteRecordsResponse::default();
    for topic in &req.topics {
        let name = topic.name.0.as_str();
        let mut t = DeleteRecordsTopicResult::default().with_name(topic.name.clone());
        for p in &topic.partitions {
            let mut r = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            match delete(cx, name, p.partition_index, p.offset) {
                Ok(start) => r.low_watermark = start as i64,
                Err(e) => r.error_code = e.code(),
            }
            t.partitions.push(r);
        }
        response.topics.push(t);
    }
    super::respond(request, &response)
}

fn delete(
    cx: &mut Ctx<'_>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<u64, ResponseError> {
    let key = cx.leads(topic, partition).map_err(NotHere::error)?;
    let log = cx
        .logs
        .get(key)
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    if log.offline().is_some() {
        return Err(ResponseError::KafkaStorageError);
    }
    if log.config().cleanup_policy == CleanupPolicy::Compact {
        return Err(ResponseError::PolicyViolation);
    }
    let offset = match offset {
        -1 => log.high_watermark(),
        o => u64::try_from(o).map_err(|_| ResponseError::OffsetOutOfRange)?,
    };
    match cx.logs.delete_records(cx.io, cx.now, key, offset) {
        Some(Ok(start)) => {
            tracing::info!(
                topic,
                partition,
                start,
                "records deleted below the new log start"
            );
            Ok(start)
        }
        Some(Err(ReadError::OffsetOutOfRange)) => Err(ResponseError::OffsetOutOfRange),
        None => Err(ResponseError::UnknownTopicOrPartition),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::protocol::guard::tests::check_api;

    #[test]
    fn the_guard_walks_every_version() {
        for v in API.min..=API.max {
            let req = DeleteRecordsRequest::default()
                .with_topics(vec![
                    DeleteRecordsTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("orders")))
                        .with_partitions(vec![
                            DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(10),
                            DeleteRecordsPartition::default()
                                .with_partition_index(1)
                                .with_offset(-1),
                        ]),
                ])
                .with_timeout_ms(1000);
            check_api(ApiKey::DeleteRecords, v, &req);
        }
    }
}
