//! Consumer groups in the broker: FindCoordinator (this broker coordinates
//! every group), the group membership APIs routed to the [`Coordinator`],
//! and committed offsets stored in `__consumer_offsets` before they are
//! acknowledged.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest,
    FindCoordinatorResponse, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::group_log::{self, Committed, Entry, OFFSETS_TOPIC};
use super::{Broker, LogKey, SlotState};
use crate::group::{GroupState, Parked, Reply, Ticket};
use crate::io::{ConnId, Part};
use crate::protocol::{self, Request};

/// Committed offsets by group, then by (topic, partition).
pub(super) type OffsetTable = HashMap<String, HashMap<(String, i32), Committed>>;

/// A parked JoinGroup or SyncGroup: where its answer goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct ParkedSlot {
    conn: ConnId,
    seq: u64,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
}

impl PendingCommit {
    /// The response once the commit's records are below the high watermark,
    /// making the offsets visible first (a failed log answers
    /// COORDINATOR_NOT_AVAILABLE); `None` while they are being written.
    pub(super) fn poll(
        &mut self,
        logs: &[Option<crate::log::PartitionLog>],
        committed: &mut OffsetTable,
    ) -> Option<Bytes> {
        let (key, last) = self.wait;
        let log = logs.get(key).and_then(Option::as_ref);
        let failed = log.is_none_or(|l| l.offline().is_some());
        if !failed && log.is_some_and(|l| l.high_watermark() <= last) {
            return None;
        }
        if failed {
            let code = ResponseError::CoordinatorNotAvailable.code();
            for t in &mut self.response.topics {
                for p in &mut t.partitions {
                    if p.error_code == 0 {
                        p.error_code = code;
                    }
                }
            }
        } else {
            let table = committed.entry(self.group.clone()).or_default();
            for (key, c) in self.apply.drain(..) {
                table.insert(key, c);
            }
        }
        Some(protocol::encode_response(
            ApiKey::OffsetCommit,
            self.version,
            self.correlation_id,
            &self.response,
        ))
    }
}

/// An OffsetCommit waiting for its records to be appended.
#[derive(Debug)]
pub(super) struct PendingCommit {
    version: i16,
    correlation_id: i32,
    response: OffsetCommitResponse,
    group: String,
    /// The log and the offset that must be below its high watermark.
    wait: (LogKey, u64),
    /// What becomes committed once the append is done.
    apply: Vec<((String, i32), Committed)>,
}

impl Broker {
    /// Route a group API; false when the body does not decode.
    pub(super) fn group_request(&mut self, conn: ConnId, request: &Request) -> bool {
        let (v, now) = (request.version, self.now.mono);
        let body = &request.body;
        match request.key {
            ApiKey::FindCoordinator => {
                let Some(req) = protocol::decode(request.key, body, v) else {
                    return false;
                };
                let resp = self.find_coordinator(v, &req);
                self.respond(conn, request, &resp);
            }
            ApiKey::JoinGroup => {
                let Some(req) = protocol::decode::<JoinGroupRequest>(request.key, body, v) else {
                    return false;
                };
                let client = self.client_of(conn);
                match self
                    .coordinator
                    .join_group(now, v, &client, "/127.0.0.1", req)
                {
                    Reply::Now(resp) => self.respond(conn, request, &resp),
                    Reply::Later(ticket) => self.park(conn, request, ticket),
                }
            }
            ApiKey::SyncGroup => {
                let Some(req) = protocol::decode::<SyncGroupRequest>(request.key, body, v) else {
                    return false;
                };
                match self.coordinator.sync_group(now, v, req) {
                    Reply::Now(resp) => self.respond(conn, request, &resp),
                    Reply::Later(ticket) => self.park(conn, request, ticket),
                }
            }
            ApiKey::Heartbeat => {
                let Some(req) = protocol::decode::<HeartbeatRequest>(request.key, body, v) else {
                    return false;
                };
                let resp = self.coordinator.heartbeat(now, v, req);
                self.respond(conn, request, &resp);
            }
            ApiKey::LeaveGroup => {
                let Some(req) = protocol::decode::<LeaveGroupRequest>(request.key, body, v) else {
                    return false;
                };
                let resp = self.coordinator.leave_group(now, v, req);
                self.respond(conn, request, &resp);
            }
            ApiKey::ListGroups => {
                let Some(req) = protocol::decode::<ListGroupsRequest>(request.key, body, v) else {
                    return false;
                };
                let resp = self.coordinator.list_groups(v, &req);
                self.respond(conn, request, &resp);
            }
            ApiKey::DescribeGroups => {
                let Some(req) = protocol::decode::<DescribeGroupsRequest>(request.key, body, v)
                else {
                    return false;
                };
                let resp = self.coordinator.describe_groups(v, &req);
                self.respond(conn, request, &resp);
            }
            ApiKey::DeleteGroups => {
                let Some(req) = protocol::decode::<DeleteGroupsRequest>(request.key, body, v)
                else {
                    return false;
                };
                let committed = &self.committed;
                let has = |g: &str| committed.get(g).is_some_and(|m| !m.is_empty());
                let (resp, deleted) = self.coordinator.delete_groups(v, &req, has);
                for group in deleted {
                    self.drop_offsets(&group);
                }
                self.respond(conn, request, &resp);
            }
            ApiKey::OffsetCommit => {
                let Some(req) = protocol::decode::<OffsetCommitRequest>(request.key, body, v)
                else {
                    return false;
                };
                self.offset_commit(conn, request, req);
            }
            ApiKey::OffsetFetch => {
                let Some(req) = protocol::decode::<OffsetFetchRequest>(request.key, body, v) else {
                    return false;
                };
                let resp = self.offset_fetch(v, &req);
                self.respond(conn, request, &resp);
            }
            _ => return false,
        }
        self.drain_coordinator();
        true
    }

    fn respond<T: Encodable>(&mut self, conn: ConnId, request: &Request, body: &T) {
        let frame =
            protocol::encode_response(request.key, request.version, request.correlation_id, body);
        self.push_ready(conn, vec![Part::Bytes(frame)], Vec::new());
    }

    fn park(&mut self, conn: ConnId, request: &Request, ticket: Ticket) {
        if let Some(seq) = self.push_slot(conn, SlotState::Group) {
            let slot = ParkedSlot {
                conn,
                seq,
                key: request.key,
                version: request.version,
                correlation_id: request.correlation_id,
            };
            self.parked.insert(ticket.0, slot);
        } else {
            self.coordinator.cancel(ticket);
        }
    }

    /// The client id a connection's requests carry, for member ids.
    fn client_of(&self, conn: ConnId) -> String {
        self.conns
            .get(&conn)
            .map(|c| c.client_id.clone())
            .unwrap_or_default()
    }

    /// Deliver the coordinator's parked answers and persist what it asks.
    pub(super) fn drain_coordinator(&mut self) {
        while let Some(parked) = self.coordinator.poll_parked() {
            let (ticket, frame) = match parked {
                Parked::Join(t, resp) => (t, self.parked_frame(t, &resp)),
                Parked::Sync(t, resp) => (t, self.parked_frame(t, &resp)),
            };
            if let (Some(slot), Some(frame)) = (self.parked.remove(&ticket.0), frame) {
                let state = SlotState::Ready(vec![Part::Bytes(frame)], Vec::new());
                self.set_slot(slot.conn, slot.seq, state);
            }
        }
        let mut records: HashMap<i32, Vec<(Bytes, Option<Bytes>)>> = HashMap::new();
        while let Some((group, mut snapshot)) = self.coordinator.poll_persist() {
            // The coordinator has no wall clock; the snapshot is of now.
            if let Some(s) = snapshot.as_mut().filter(|s| s.state_timestamp_ms < 0) {
                s.state_timestamp_ms = self.now.wall_ms;
            }
            let p = group_log::partition_for(&group, self.config.offsets_topic_partitions);
            records
                .entry(p)
                .or_default()
                .push(group_log::group_record(&group, snapshot.as_ref()));
        }
        for (partition, records) in records {
            // Group metadata is written behind the answers: a crash before it
            // lands costs a rebalance at restart, never an offset.
            self.append_internal(partition, &records);
        }
    }

    fn parked_frame<T: Encodable>(&self, ticket: Ticket, body: &T) -> Option<Bytes> {
        let slot = self.parked.get(&ticket.0)?;
        Some(protocol::encode_response(
            slot.key,
            slot.version,
            slot.correlation_id,
            body,
        ))
    }

    /// A connection closed: its parked requests are abandoned.
    pub(super) fn cancel_parked(&mut self, conn: ConnId) {
        let tickets: Vec<u64> = self
            .parked
            .iter()
            .filter(|(_, s)| s.conn == conn)
            .map(|(&t, _)| t)
            .collect();
        for t in tickets {
            self.parked.remove(&t);
            self.coordinator.cancel(Ticket(t));
        }
    }

    fn find_coordinator(
        &mut self,
        v: i16,
        req: &FindCoordinatorRequest,
    ) -> FindCoordinatorResponse {
        let node = BrokerId(self.config.node_id);
        let host = StrBytes::from_string(self.config.advertised_host.clone());
        let port = i32::from(self.config.advertised_port);
        // Only group coordinators: transactions are not supported.
        let error = if req.key_type != 0 {
            ResponseError::CoordinatorNotAvailable.code()
        } else if self.ensure_offsets_topic() {
            0
        } else {
            ResponseError::CoordinatorNotAvailable.code()
        };
        let mut resp = FindCoordinatorResponse::default();
        if v >= 4 {
            resp.coordinators = req
                .coordinator_keys
                .iter()
                .map(|key| {
                    let mut c = CoordinatorEntry::default()
                        .with_key(key.clone())
                        .with_error_code(error);
                    if error == 0 {
                        c.node_id = node;
                        c.host = host.clone();
                        c.port = port;
                    } else {
                        c.node_id = BrokerId(-1);
                        c.port = -1;
                    }
                    c
                })
                .collect();
        } else {
            resp.error_code = error;
            if error == 0 {
                resp.node_id = node;
                resp.host = host;
                resp.port = port;
            } else {
                resp.node_id = BrokerId(-1);
                resp.port = -1;
            }
        }
        resp
    }

    /// Create `__consumer_offsets` on first use, as Kafka does; false while
    /// shutting down.
    pub(super) fn ensure_offsets_topic(&mut self) -> bool {
        if self.topics.contains_key(OFFSETS_TOPIC) {
            return true;
        }
        if self.lifecycle.shutting_down() {
            return false;
        }
        let partitions = self.config.offsets_topic_partitions;
        tracing::info!(partitions, "creating {OFFSETS_TOPIC}");
        let overrides = vec![("cleanup.policy".to_owned(), "compact".to_owned())];
        self.create_topic(OFFSETS_TOPIC, partitions, overrides);
        true
    }

    /// Append records to the internal topic's `partition`; the appended
    /// batch's last offset, or `None` when the log refuses.
    fn append_internal(
        &mut self,
        partition: i32,
        records: &[(Bytes, Option<Bytes>)],
    ) -> Option<(LogKey, u64)> {
        if !self.ensure_offsets_topic() {
            return None;
        }
        let key = self.find_log(OFFSETS_TOPIC, partition)?;
        let (batch, header) = group_log::batch_of(records, self.now.wall_ms)?;
        let info = self
            .with_log(key, |log, now, ids, out| {
                log.append(now, batch, &header, ids, out)
            })?
            .map_err(|e| tracing::error!(error = %e, "appending to {OFFSETS_TOPIC} failed"))
            .ok()?;
        Some((key, info.last_offset))
    }

    fn offset_commit(&mut self, conn: ConnId, request: &Request, req: OffsetCommitRequest) {
        let v = request.version;
        let group = req.group_id.0.as_str().to_owned();
        let group_error = if group.is_empty() {
            ResponseError::InvalidGroupId.code()
        } else {
            self.coordinator.validate_commit(
                self.now.mono,
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
                } else if self.find_log(name, p.partition_index).is_none() {
                    ResponseError::UnknownTopicOrPartition.code()
                } else if metadata.len() > self.config.offset_metadata_max_bytes {
                    ResponseError::OffsetMetadataTooLarge.code()
                } else {
                    let committed = Committed {
                        offset: p.committed_offset,
                        leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                        metadata: metadata.to_owned(),
                        commit_timestamp: self.now.wall_ms,
                    };
                    let key = (name.to_owned(), p.partition_index);
                    records.push(group_log::offset_record(
                        &group,
                        name,
                        p.partition_index,
                        Some(&committed),
                    ));
                    apply.push((key, committed));
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
            self.respond(conn, request, &response);
            return;
        }
        let partition = group_log::partition_for(&group, self.config.offsets_topic_partitions);
        match self.append_internal(partition, &records) {
            Some(wait) => {
                let pending = PendingCommit {
                    version: v,
                    correlation_id: request.correlation_id,
                    response,
                    group,
                    wait,
                    apply,
                };
                if self.push_slot(conn, SlotState::Commit(pending)).is_some() {
                    self.finish_appenders(conn);
                }
            }
            None => {
                let code = ResponseError::CoordinatorNotAvailable.code();
                for t in &mut response.topics {
                    for p in &mut t.partitions {
                        if p.error_code == 0 {
                            p.error_code = code;
                        }
                    }
                }
                self.respond(conn, request, &response);
            }
        }
    }

    fn offset_fetch(&self, v: i16, req: &OffsetFetchRequest) -> OffsetFetchResponse {
        let mut resp = OffsetFetchResponse::default();
        if v >= 8 {
            for g in &req.groups {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                });
                let found = self.fetch_committed(g.group_id.0.as_str(), topics);
                let mut group =
                    OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
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
        for (name, partitions) in self.fetch_committed(req.group_id.0.as_str(), topics) {
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
    /// `topics` is `None`); -1 with empty metadata where nothing is
    /// committed, as Kafka answers.
    fn fetch_committed(
        &self,
        group: &str,
        topics: Option<impl Iterator<Item = (TopicName, Vec<i32>)>>,
    ) -> Vec<(TopicName, Vec<(i32, Committed)>)> {
        let table = self.committed.get(group);
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
                let mut by_topic: std::collections::BTreeMap<&str, Vec<(i32, Committed)>> =
                    Default::default();
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

    /// `offsets.retention.minutes`: a group with no members loses offsets
    /// committed longer ago than the retention; once it has none left the
    /// group itself goes. Kafka counts from when the group became empty; a
    /// group that is consuming commits all the time, so counting from the
    /// commit differs only for a member that stopped committing long ago.
    pub(super) fn expire_offsets(&mut self) {
        let cutoff = self
            .now
            .wall_ms
            .saturating_sub(self.config.offsets_retention_ms);
        let idle: Vec<String> = self
            .committed
            .keys()
            .filter(|g| {
                matches!(
                    self.coordinator.group_state(g),
                    None | Some(GroupState::Empty)
                )
            })
            .cloned()
            .collect();
        for group in idle {
            let Some(table) = self.committed.get_mut(&group) else {
                continue;
            };
            let expired: Vec<(String, i32)> = table
                .iter()
                .filter(|(_, c)| c.commit_timestamp < cutoff)
                .map(|(k, _)| k.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for key in &expired {
                table.remove(key);
            }
            let emptied = table.is_empty();
            tracing::info!(%group, expired = expired.len(), "committed offsets expired");
            let records: Vec<_> = expired
                .iter()
                .map(|(topic, p)| group_log::offset_record(&group, topic, *p, None))
                .collect();
            let partition = group_log::partition_for(&group, self.config.offsets_topic_partitions);
            self.append_internal(partition, &records);
            if emptied {
                self.committed.remove(&group);
                self.coordinator.remove_empty_group(&group);
            }
        }
        self.drain_coordinator();
    }

    /// Forget a deleted group's offsets, on disk too (tombstones).
    fn drop_offsets(&mut self, group: &str) {
        let Some(table) = self.committed.remove(group) else {
            return;
        };
        let records: Vec<_> = table
            .keys()
            .map(|(topic, p)| group_log::offset_record(group, topic, *p, None))
            .collect();
        if !records.is_empty() {
            let partition = group_log::partition_for(group, self.config.offsets_topic_partitions);
            self.append_internal(partition, &records);
        }
    }

    /// Replay one `__consumer_offsets` partition's segments at startup.
    pub(super) fn replay_offsets(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            match entry {
                Entry::Offset {
                    group,
                    topic,
                    partition,
                    value: Some(c),
                } => {
                    self.committed
                        .entry(group)
                        .or_default()
                        .insert((topic, partition), c);
                }
                Entry::Offset {
                    group,
                    topic,
                    partition,
                    value: None,
                } => {
                    if let Some(t) = self.committed.get_mut(&group) {
                        t.remove(&(topic, partition));
                    }
                }
                Entry::Group { group, value } => {
                    self.group_snapshots.insert(group, value);
                }
            }
        }
    }
}
