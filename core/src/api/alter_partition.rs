//! AlterPartition 2–3: a partition leader asks the active controller to
//! change the partition's ISR (`broker::isr`). Each change is a
//! compare-and-swap on the partition epoch: the controller checks it
//! against its image ([`controller::IsrChange`]) and proposes the
//! partition's new state, answering once it is applied (the state the
//! image then holds) or with the refusal — NOT_LEADER_OR_FOLLOWER,
//! FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, INELIGIBLE_REPLICA,
//! INVALID_REQUEST. A request from a broker whose registration is not the
//! one it names gets STALE_BROKER_EPOCH; a broker that is not the
//! controller answers NOT_CONTROLLER.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_response::{PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, ApiKey, BrokerId};

use super::ApiSpec;
use crate::broker::cluster::Committed;
use crate::broker::wait::{Answer, Ctx, Origin};
use crate::cluster::controller::IsrChange;
use crate::protocol::{
    Request,
    guard::{Reader, UUID},
};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::AlterPartition,
    min: 2,
    max: 3,
    flexible: 0,
    walk,
    handle,
};

/// How long an ISR change may wait to be committed before the leader is
/// told REQUEST_TIMED_OUT (it asks again from the image).
const COMMIT_WAIT: Duration = Duration::from_secs(5);

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    r.skip(4 + 8)?; // broker_id, broker_epoch
    let partition_min = 4 + 4 + r.prefix_min() + 1 + 4 + r.tags_min();
    r.array(UUID + r.prefix_min() + r.tags_min(), |r| {
        r.skip(UUID)?; // topic_id
        r.array(partition_min, |r| {
            r.skip(4 + 4)?; // partition_index, leader_epoch
            if v >= 3 {
                // new_isr_with_epochs: broker_id, broker_epoch
                r.array(4 + 8 + r.tags_min(), |r| {
                    r.skip(4 + 8)?;
                    r.tags()
                })?;
            } else {
                r.array(4, |r| r.skip(4))?; // new_isr
            }
            r.skip(1 + 4)?; // leader_recovery_state, partition_epoch
            r.tags()
        })?;
        r.tags()
    })?;
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<AlterPartitionRequest>(request) else {
        return Answer::Malformed;
    };
    let mut committed = Committed::new(
        request,
        AlterPartitionResponse::default(),
        cx.now.mono.saturating_add(COMMIT_WAIT),
    );
    let broker = req.broker_id.0;
    let stale = cx.image().is_some_and(|image| {
        image
            .brokers
            .get(&broker)
            .is_none_or(|r| i64::try_from(r.epoch).ok() != Some(req.broker_epoch))
    });
    let top = match cx.not_controller() {
        Some(_) => Some(ResponseError::NotController),
        None if stale => Some(ResponseError::StaleBrokerEpoch),
        None => None,
    };
    if let Some(e) = top {
        committed.response().error_code = e.code();
        return committed.answer(cx);
    }
    for topic in &req.topics {
        let t = committed.response().topics.len();
        committed
            .response()
            .topics
            .push(TopicData::default().with_topic_id(topic.topic_id));
        for p in &topic.partitions {
            let isr = if request.version >= 3 {
                p.new_isr_with_epochs
                    .iter()
                    .map(|b| b.broker_id.0)
                    .collect()
            } else {
                p.new_isr.iter().map(|b| b.0).collect()
            };
            let change = IsrChange {
                topic_id: topic.topic_id,
                partition: p.partition_index,
                leader: broker,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                isr,
            };
            let at = committed.response().topics[t].partitions.len();
            let mut r = PartitionData::default()
                .with_partition_index(p.partition_index)
                .with_leader_id(BrokerId(-1))
                .with_leader_epoch(-1)
                .with_partition_epoch(-1);
            let record = cx.image().map(|image| change.record(image));
            let proposed = match record {
                Some(Ok(record)) => cx
                    .quorum
                    .as_deref_mut()
                    .and_then(|q| q.propose(&[record]))
                    .ok_or(ResponseError::NotController.code()),
                Some(Err((code, message))) => {
                    tracing::debug!(broker, code, message, "ISR change refused");
                    Err(code)
                }
                None => Err(ResponseError::NotController.code()),
            };
            match proposed {
                Ok(index) => {
                    committed.response().topics[t].partitions.push(r);
                    let (id, partition) = (topic.topic_id, p.partition_index);
                    committed.wait_for(index, move |resp, applied| {
                        let r = &mut resp.topics[t].partitions[at];
                        let state = applied.as_ref().ok().and_then(|image| {
                            let (_, topic) = image.topic_by_id(id)?;
                            topic.partitions.get(usize::try_from(partition).ok()?)
                        });
                        match (applied, state) {
                            (Err((code, _)), _) => r.error_code = code,
                            (Ok(_), None) => {
                                r.error_code = ResponseError::UnknownTopicOrPartition.code()
                            }
                            (Ok(_), Some(s)) => {
                                r.leader_id = BrokerId(s.leader);
                                r.leader_epoch = s.leader_epoch;
                                r.partition_epoch = s.partition_epoch;
                                r.isr = s.isr.iter().copied().map(BrokerId).collect();
                            }
                        }
                    });
                }
                Err(code) => {
                    r.error_code = code;
                    committed.response().topics[t].partitions.push(r);
                }
            }
        }
    }
    committed.answer(cx)
}
