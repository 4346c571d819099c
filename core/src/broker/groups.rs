//! The groups part: the consumer group [`Coordinator`], the committed
//! offsets as stored in `__consumer_offsets`, the JoinGroup and SyncGroup
//! requests parked in the coordinator, and the writes that keep the
//! internal topic in step with both.
//!
//! In a cluster `__consumer_offsets` is replicated like any topic, and a
//! group's coordinator is the leader of its partition. Every broker keeps
//! the groups of the partitions it follows warm: the batches it copies
//! are decoded as they are appended and applied once its high watermark
//! passes them, so the committed offsets and each group's last written
//! state are already here when it takes a partition over. Taking over
//! applies the rest of the log (a new leader's log is the partition's)
//! and loads the groups into the coordinator; giving one up drops them
//! from it, answering their parked requests NOT_COORDINATOR.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;

use super::group_log::{self, Committed, Entry, OFFSETS_TOPIC};
use super::logs::LogKey;
use super::wait::Ctx;
use crate::group::{Coordinator, GroupConfig, GroupSnapshot, GroupState, Parked, Ticket};
use crate::io::ConnId;
use crate::protocol;

/// Committed offsets by group, then by (topic, partition).
pub(crate) type OffsetTable = HashMap<String, HashMap<(String, i32), Committed>>;

/// A parked JoinGroup or SyncGroup: where its answer goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParkedSlot {
    pub(crate) conn: ConnId,
    pub(crate) seq: u64,
    pub(crate) key: ApiKey,
    pub(crate) version: i16,
    pub(crate) correlation_id: i32,
}

#[derive(Debug)]
pub(crate) struct Groups {
    pub(crate) coordinator: Coordinator,
    /// Committed offsets, as stored in `__consumer_offsets`.
    pub(crate) committed: OffsetTable,
    /// Parked JoinGroup/SyncGroup requests by ticket.
    parked: crate::io::IdMap<u64, ParkedSlot>,
    /// Group metadata as last written, of groups the coordinator does not
    /// hold: replayed at startup until every partition is read; in a
    /// cluster, those of the partitions this broker follows, ready for it
    /// to take over (`None`: deleted).
    snapshots: BTreeMap<String, Option<GroupSnapshot>>,
    /// In a cluster, entries of `__consumer_offsets` batches this broker
    /// copied as a follower and its high watermark has not passed yet, by
    /// log and then the batch's last offset.
    pending: BTreeMap<LogKey, VecDeque<(u64, Vec<Entry>)>>,
    /// In a cluster, the `__consumer_offsets` partitions whose groups the
    /// coordinator holds: those this broker leads.
    coordinating: BTreeSet<i32>,
}

impl Groups {
    pub(crate) fn new(config: GroupConfig) -> Self {
        Self {
            coordinator: Coordinator::new(config),
            committed: HashMap::new(),
            parked: Default::default(),
            snapshots: BTreeMap::new(),
            pending: BTreeMap::new(),
            coordinating: BTreeSet::new(),
        }
    }

    /// Remember where a parked request's answer goes.
    pub(crate) fn park(&mut self, ticket: Ticket, slot: ParkedSlot) {
        self.parked.insert(ticket.0, slot);
    }

    /// A connection closed: its parked requests are abandoned.
    pub(crate) fn cancel_conn(&mut self, conn: ConnId) {
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

    fn parked_frame<T: Encodable>(
        &mut self,
        ticket: Ticket,
        body: &T,
    ) -> Option<(ConnId, u64, Bytes)> {
        let slot = self.parked.remove(&ticket.0)?;
        let frame = protocol::encode_response(slot.key, slot.version, slot.correlation_id, body);
        Some((slot.conn, slot.seq, frame))
    }

    /// Replay one `__consumer_offsets` partition's entries at startup.
    pub(crate) fn replay(&mut self, entries: Vec<Entry>) {
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
                    self.snapshots.insert(group, value);
                }
            }
        }
    }

    /// Hand the replayed groups to the coordinator once every partition of
    /// the internal topic is read; in a cluster they wait for this broker
    /// to lead their partitions ([`Groups::take_over`]).
    pub(crate) fn finish_replay(&mut self, now: crate::time::Instant, clustered: bool) {
        if clustered {
            return;
        }
        let mut snapshots = std::mem::take(&mut self.snapshots);
        // A group known only by its offsets is an Empty group, as in Kafka.
        for group in self.committed.keys() {
            snapshots
                .entry(group.clone())
                .or_insert_with(|| Some(GroupSnapshot::default()));
        }
        for (group, snapshot) in snapshots {
            if let Some(snapshot) = snapshot {
                self.coordinator.load(now, group, snapshot);
            }
        }
    }
}

impl Groups {
    /// As a follower, this broker appended a `__consumer_offsets` batch of
    /// `key` ending at `last`: its entries wait for the high watermark.
    pub(crate) fn replicated(&mut self, key: LogKey, last: u64, batch: &[u8]) {
        let mut entries = Vec::new();
        group_log::replay(batch, &mut entries);
        if !entries.is_empty() {
            self.pending
                .entry(key)
                .or_default()
                .push_back((last, entries));
        }
    }

    /// The high watermark of `key` reached `hw`: the entries below it are
    /// applied (they can no longer be cut from this log).
    pub(crate) fn committed_to(&mut self, key: LogKey, hw: u64) {
        let Some(queue) = self.pending.get_mut(&key) else {
            return;
        };
        let mut ready = Vec::new();
        while queue.front().is_some_and(|(last, _)| *last < hw) {
            ready.extend(queue.pop_front().into_iter().flat_map(|(_, e)| e));
        }
        if queue.is_empty() {
            self.pending.remove(&key);
        }
        self.replay(ready);
    }

    /// `key`'s log was cut at `at` (it diverged from its leader's): the
    /// entries of the batches cut go unapplied.
    pub(crate) fn truncated(&mut self, key: LogKey, at: u64) {
        if let Some(queue) = self.pending.get_mut(&key) {
            queue.retain(|(last, _)| *last < at);
        }
    }

    /// Whether the coordinator holds the groups of `__consumer_offsets`
    /// partition `partition` (always, alone).
    pub(crate) fn coordinates(&self, partition: i32, clustered: bool) -> bool {
        !clustered || self.coordinating.contains(&partition)
    }

    /// This broker now leads `partition` of `count` (its log `key`):
    /// what it copied and had not yet applied is applied, the new
    /// leader's log being the partition's now, and its groups are loaded
    /// as last written (one known only by its offsets as Empty).
    pub(crate) fn take_over(
        &mut self,
        now: crate::time::Instant,
        (key, partition): (LogKey, i32),
        count: i32,
    ) {
        let rest: Vec<Entry> = self
            .pending
            .remove(&key)
            .into_iter()
            .flatten()
            .flat_map(|(_, entries)| entries)
            .collect();
        self.replay(rest);
        let ours = |g: &str| group_log::partition_for(g, count) == partition;
        let mut groups: BTreeMap<String, Option<GroupSnapshot>> = BTreeMap::new();
        self.snapshots.retain(|g, s| {
            if ours(g) {
                groups.insert(g.clone(), s.take());
            }
            !ours(g)
        });
        for group in self.committed.keys().filter(|g| ours(g)) {
            groups
                .entry(group.clone())
                .or_insert_with(|| Some(GroupSnapshot::default()));
        }
        let loaded = groups.values().filter(|s| s.is_some()).count();
        for (group, snapshot) in groups {
            if let Some(snapshot) = snapshot {
                self.coordinator.load(now, group, snapshot);
            }
        }
        self.coordinating.insert(partition);
        tracing::info!(
            partition,
            groups = loaded,
            "coordinating the groups of {OFFSETS_TOPIC}"
        );
    }

    /// Another broker leads `partition` of `count` now: its groups leave
    /// the coordinator (their parked requests are answered
    /// NOT_COORDINATOR). Their offsets stay, and this broker follows the
    /// new leader's writes.
    pub(crate) fn give_up(&mut self, partition: i32, count: i32) {
        let ours: Vec<String> = self
            .coordinator
            .group_names()
            .filter(|g| group_log::partition_for(g, count) == partition)
            .map(str::to_owned)
            .collect();
        for group in &ours {
            self.coordinator.unload(group);
        }
        self.coordinating.remove(&partition);
        tracing::info!(
            partition,
            groups = ours.len(),
            "no longer coordinating the groups of {OFFSETS_TOPIC}"
        );
    }
}

/// In a cluster: the coordinator takes over the groups of each
/// `__consumer_offsets` partition this broker has come to lead, and
/// gives up those of each it no longer leads. Run after the image is
/// followed.
pub(crate) fn follow_leadership(cx: &mut Ctx<'_>) {
    if cx.quorum.is_none() {
        return;
    }
    let count = cx.offsets_partitions();
    for partition in 0..count {
        let leads = cx.leads(OFFSETS_TOPIC, partition).ok();
        match (leads, cx.groups.coordinating.contains(&partition)) {
            (Some(key), false) => cx.groups.take_over(cx.now.mono, (key, partition), count),
            (None, true) => cx.groups.give_up(partition, count),
            _ => {}
        }
    }
}

/// Deliver the coordinator's parked answers, as (connection, slot, frame),
/// and persist the group metadata it asks to.
pub(crate) fn drain(cx: &mut Ctx<'_>) -> Vec<(ConnId, u64, Bytes)> {
    let mut answers = Vec::new();
    while let Some(parked) = cx.groups.coordinator.poll_parked() {
        let answer = match parked {
            Parked::Join(t, resp) => cx.groups.parked_frame(t, &resp),
            Parked::Sync(t, resp) => cx.groups.parked_frame(t, &resp),
        };
        answers.extend(answer);
    }
    let Some(first) = cx.groups.coordinator.poll_persist() else {
        // The common case, after every request: nothing to write.
        return answers;
    };
    let mut records: HashMap<i32, Vec<(Bytes, Option<Bytes>)>> = HashMap::new();
    let mut next = Some(first);
    while let Some((group, mut snapshot)) = next.take() {
        next = cx.groups.coordinator.poll_persist();
        // The coordinator has no wall clock; the snapshot is of now.
        if let Some(s) = snapshot.as_mut().filter(|s| s.state_timestamp_ms < 0) {
            s.state_timestamp_ms = cx.now.wall_ms;
        }
        let p = partition_of(cx, &group);
        records
            .entry(p)
            .or_default()
            .push(group_log::group_record(&group, snapshot.as_ref()));
        if cx.quorum.is_some() {
            // What the log says of the group, should this broker give its
            // partition up and take it over again.
            cx.groups.snapshots.insert(group, snapshot);
        }
    }
    for (partition, records) in records {
        // Group metadata is written behind the answers: a crash before it
        // lands costs a rebalance at restart, never an offset.
        append_internal(cx, partition, &records);
    }
    answers
}

/// Create `__consumer_offsets` on first use, as Kafka does; false while
/// shutting down. In a cluster the active controller creates it (once
/// every voter is registered, so its partitions spread over all of them):
/// false until the image has it.
pub(crate) fn ensure_offsets_topic(cx: &mut Ctx<'_>) -> bool {
    if let Some(image) = cx.image() {
        return image.topics.contains_key(OFFSETS_TOPIC);
    }
    if cx.logs.topic(OFFSETS_TOPIC).is_some() {
        return true;
    }
    if cx.shutting_down {
        return false;
    }
    let partitions = cx.config.offsets_topic_partitions;
    tracing::info!(partitions, "creating {OFFSETS_TOPIC}");
    cx.logs.create_topic(
        cx.io,
        cx.now,
        OFFSETS_TOPIC,
        partitions,
        offsets_topic_settings(cx.config),
    );
    true
}

/// The settings `__consumer_offsets` is created with.
pub(crate) fn offsets_topic_settings(config: &crate::config::Config) -> Vec<(String, String)> {
    vec![
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        (
            "segment.bytes".to_owned(),
            config.offsets_topic_segment_bytes.to_string(),
        ),
    ]
}

/// Append records to the internal topic's `partition`; the appended
/// batch's log and last offset, or `None` when the log refuses.
pub(crate) fn append_internal(
    cx: &mut Ctx<'_>,
    partition: i32,
    records: &[(Bytes, Option<Bytes>)],
) -> Option<(LogKey, u64)> {
    if !ensure_offsets_topic(cx) {
        return None;
    }
    // Only the partition's leader writes it; a follower's log is its
    // leader's copy.
    let key = cx.leads(OFFSETS_TOPIC, partition).ok()?;
    let (batch, header) = group_log::batch_of(records, cx.now.wall_ms)?;
    let info = cx
        .logs
        .run(cx.io, cx.now, key, |log, now, ids, out| {
            log.append(now, batch, &header, ids, out)
        })?
        .map_err(|e| tracing::error!(error = %e, "appending to {OFFSETS_TOPIC} failed"))
        .ok()?;
    Some((key, info.last_offset))
}

/// The internal topic's partition for `group`.
pub(crate) fn partition_of(cx: &Ctx<'_>, group: &str) -> i32 {
    group_log::partition_for(group, cx.offsets_partitions())
}

/// When a write to `partition` of the offsets topic gives up waiting for
/// its replicas (`offsets.commit.timeout.ms`): `None` when it has none to
/// wait for, so a local write waits only for its own append.
pub(crate) fn commit_deadline(cx: &Ctx<'_>, partition: i32) -> Option<crate::time::Instant> {
    let replicated = cx
        .replicas(group_log::OFFSETS_TOPIC, partition)
        .is_some_and(|r| r > 1);
    let timeout = std::time::Duration::from_millis(cx.config.offsets_commit_timeout_ms);
    replicated.then(|| cx.now.mono.saturating_add(timeout))
}

/// Forget a deleted group's offsets, on disk too (tombstones).
pub(crate) fn drop_offsets(cx: &mut Ctx<'_>, group: &str) {
    let Some(table) = cx.groups.committed.remove(group) else {
        return;
    };
    let records: Vec<_> = table
        .keys()
        .map(|(topic, p)| group_log::offset_record(group, topic, *p, None))
        .collect();
    if !records.is_empty() {
        let partition = partition_of(cx, group);
        append_internal(cx, partition, &records);
    }
}

/// `offsets.retention.minutes`: a group with no members loses offsets
/// committed longer ago than the retention; once it has none left the
/// group itself goes. Kafka counts from when the group became empty; a
/// group that is consuming commits all the time, so counting from the
/// commit differs only for a member that stopped committing long ago.
pub(crate) fn expire_offsets(cx: &mut Ctx<'_>) {
    let cutoff = cx
        .now
        .wall_ms
        .saturating_sub(cx.config.offsets_retention_ms);
    let groups = &*cx.groups;
    let (count, clustered) = (cx.offsets_partitions(), cx.quorum.is_some());
    // In a cluster, only the groups this broker coordinates: the others'
    // offsets are their coordinators' to expire.
    let idle: Vec<String> = groups
        .committed
        .keys()
        .filter(|g| {
            groups.coordinates(group_log::partition_for(g, count), clustered)
                && matches!(
                    groups.coordinator.group_state(g),
                    None | Some(GroupState::Empty)
                )
        })
        .cloned()
        .collect();
    for group in idle {
        let Some(table) = cx.groups.committed.get_mut(&group) else {
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
        let partition = partition_of(cx, &group);
        append_internal(cx, partition, &records);
        if emptied {
            cx.groups.committed.remove(&group);
            cx.groups.coordinator.remove_empty_group(&group);
        }
    }
}
