//! OffsetCommit 2–8: offsets are acknowledged only once their records are
//! in `__consumer_offsets` (below its high watermark), and become visible
//! to OffsetFetch at that moment.
//!
//! In a cluster that is once every in-sync replica of the group's
//! partition has them, as Kafka's coordinator appends with `acks=all`:
//! a commit not there within `offsets.commit.timeout.ms` is answered
//! REQUEST_TIMED_OUT, and one whose partition moves to another leader
//! meanwhile NOT_COORDINATOR (the consumer finds the new coordinator and
//! commits again).

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};

use super::ApiSpec;
use crate::broker::group_log::{self, Committed};
use crate::broker::groups::{self, OffsetTable};
use crate::broker::logs::{LogKey, Logs};
use crate::broker::wait::{Answer, Ctx, Origin, Response, Until, Waiter, Wake};
use crate::protocol::{self, Request, guard::Reader};

pub(super) const API: ApiSpec = ApiSpec {
    key: ApiKey::OffsetCommit,
    min: 2,
    max: 8,
    flexible: 8,
    walk,
    handle,
};

fn walk(r: &mut Reader<'_>, v: i16) -> Option<()> {
    r.string()?; // group_id
    r.skip(4)?; // generation_id_or_member_epoch
    r.string()?; // member_id
    if v >= 7 {
        r.string()?; // group_instance_id
    }
    if v <= 4 {
        r.skip(8)?; // retention_time_ms
    }
    // partition_index, committed_offset, committed_leader_epoch (v6+)
    let partition = 4 + 8 + if v >= 6 { 4 } else { 0 };
    let partition_min = partition + r.string_min() + r.tags_min();
    r.array(r.string_min() + r.prefix_min() + r.tags_min(), |r| {
        r.string()?; // name
        r.array(partition_min, |r| {
            r.skip(partition)?;
            r.string()?; // committed_metadata
            r.tags()
        })?;
        r.tags()
    })?;
    r.tags()
}

fn handle(cx: &mut Ctx<'_>, request: &Request, _: Origin<'_>) -> Answer {
    let Some(req) = super::decode::<OffsetCommitRequest>(request) else {
        return Answer::Malformed;
    };
    let v = request.version;
    let group = req.group_id.0.as_str().to_owned();
    let group_error = if group.is_empty() {
        ResponseError::InvalidGroupId.code()
    } else if let Some(code) = cx.not_coordinator(&group) {
        code
    } else {
        cx.groups.coordinator.validate_commit(
            cx.now.mono,
            &group,
            req.generation_id_or_member_epoch,
            req.member_id.as_str(),
            req.group_instance_id.as_ref().map(|s| s.as_str()),
        )
    };
    let mut response = OffsetCommitResponse::default();
    let mut records = Vec::new();
    let mut apply = Vec::new();
    for topic in &req.topics {
        let name = topic.name.0.as_str();
        let mut t = OffsetCommitResponseTopic::default().with_name(topic.name.clone());
        for p in &topic.partitions {
            let metadata = p.committed_metadata.as_ref().map_or("", |m| m.as_str());
            let code = if group_error != 0 {
                group_error
            } else if !cx.partition_exists(name, p.partition_index) {
                ResponseError::UnknownTopicOrPartition.code()
            } else if metadata.len() > cx.config.offset_metadata_max_bytes {
                ResponseError::OffsetMetadataTooLarge.code()
            } else {
                let committed = Committed {
                    offset: p.committed_offset,
                    leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                    metadata: metadata.to_owned(),
                    commit_timestamp: cx.now.wall_ms,
                };
                records.push(group_log::offset_record(
                    &group,
                    name,
                    p.partition_index,
                    Some(&committed),
                ));
                apply.push(((name.to_owned(), p.partition_index), committed));
                0
            };
            t.partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        response.topics.push(t);
    }
    if records.is_empty() {
        return super::respond(request, &response);
    }
    let partition = groups::partition_of(cx, &group);
    let deadline = groups::commit_deadline(cx, partition);
    match groups::append_internal(cx, partition, &records) {
        Some(wait) => Answer::Wait(Box::new(Pending {
            version: v,
            correlation_id: request.correlation_id,
            response,
            group,
            wait,
            apply,
            deadline,
        })),
        None => {
            fail_unanswered(&mut response);
            super::respond(request, &response)
        }
    }
}

/// COORDINATOR_NOT_AVAILABLE for every partition not already refused.
fn fail_unanswered(response: &mut OffsetCommitResponse) {
    fail_with(response, ResponseError::CoordinatorNotAvailable);
}

/// `error` for every partition not already refused.
fn fail_with(response: &mut OffsetCommitResponse, error: ResponseError) {
    let code = error.code();
    for t in &mut response.topics {
        for p in &mut t.partitions {
            if p.error_code == 0 {
                p.error_code = code;
            }
        }
    }
}

/// An OffsetCommit waiting for its records to be appended.
#[derive(Debug)]
struct Pending {
    version: i16,
    correlation_id: i32,
    response: OffsetCommitResponse,
    group: String,
    /// The log and the offset that must be below its high watermark.
    wait: (LogKey, u64),
    /// What becomes committed once the append is done.
    apply: Vec<((String, i32), Committed)>,
    /// Replicated: when it is answered REQUEST_TIMED_OUT.
    deadline: Option<crate::time::Instant>,
}

impl Waiter for Pending {
    fn until(&self) -> Until {
        Until::Appended {
            deadline: self.deadline,
        }
    }

    fn poll(&mut self, cx: &mut Ctx<'_>, wake: Wake) -> Option<Response> {
        let answer = self.poll_log(cx.logs, &mut cx.groups.committed);
        let due = self.deadline.is_some_and(|d| d <= cx.now.mono);
        if answer.is_some() || !matches!(wake, Wake::Deadline) || !due {
            return answer.map(Response::Frame);
        }
        // The records stay in the log; a later coordinator may find them.
        fail_with(&mut self.response, ResponseError::RequestTimedOut);
        Some(Response::Frame(self.encode()))
    }
}

impl Pending {
    /// The response once the commit's records are below the high
    /// watermark, making the offsets visible first (a failed log answers
    /// COORDINATOR_NOT_AVAILABLE); `None` while they are being written.
    fn poll_log(&mut self, logs: &Logs, committed: &mut OffsetTable) -> Option<Bytes> {
        let (key, last) = self.wait;
        let log = logs.get(key);
        let failed = log.is_none_or(|l| l.offline().is_some());
        let done = log.is_some_and(|l| l.high_watermark() > last);
        let moved = logs.led_elsewhere(key);
        if !failed && !done && !moved {
            return None;
        }
        if failed {
            fail_unanswered(&mut self.response);
        } else if !done {
            // Leadership moved first: Kafka's coordinator maps the append's
            // NOT_LEADER_OR_FOLLOWER to NOT_COORDINATOR.
            fail_with(&mut self.response, ResponseError::NotCoordinator);
        } else {
            let table = committed.entry(self.group.clone()).or_default();
            for (key, c) in self.apply.drain(..) {
                table.insert(key, c);
            }
        }
        Some(self.encode())
    }

    fn encode(&self) -> Bytes {
        protocol::encode_response(
            ApiKey::OffsetCommit,
            self.version,
            self.correlation_id,
            &self.response,
        )
    }
}
