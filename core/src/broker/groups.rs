//! The groups part: the consumer group [`Coordinator`], the committed
//! offsets as stored in `__consumer_offsets`, the JoinGroup and SyncGroup
//! requests parked in the coordinator, and the writes that keep the
//! internal topic in step with both.
//!
//! In a cluster `__consumer_offsets` is replicated like any topic, and a
//! group's coordinator is the leader of its partition. Every broker keeps
//! the groups of every partition it holds warm, as the log says them up
//! to its high watermark (`Groups::durable`): the batches it copies as a
//! follower, those it appends as the leader and those it finds at
//! startup are decoded and wait in `Groups::pending` until the high
//! watermark passes them, and a truncation drops those it cuts. So what a
//! broker knows of a partition is never a write the partition lost.
//! Taking a partition over loads what the log says to its end (a new
//! leader's log is the partition's, as Kafka's coordinator loads it) into
//! the coordinator and the live offsets; giving one up drops them from
//! both, answering their parked requests NOT_COORDINATOR. While a broker
//! coordinates, the live state runs ahead of the log as Kafka's cache
//! does (a deleted group's offsets go at once); the durable state is what
//! it falls back to.

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

/// Group metadata as last written, by group; a deleted group's tombstone
/// removes it (so deleted groups take no memory).
type GroupsWritten = BTreeMap<String, GroupSnapshot>;

/// What (part of) `__consumer_offsets` says.
#[derive(Debug, Default, Clone)]
struct Written {
    offsets: OffsetTable,
    groups: GroupsWritten,
}

/// Apply entries read from `__consumer_offsets`, in log order.
fn apply(
    offsets: &mut OffsetTable,
    groups: &mut GroupsWritten,
    entries: impl IntoIterator<Item = Entry>,
) {
    for entry in entries {
        match entry {
            Entry::Offset {
                group,
                topic,
                partition,
                value: Some(c),
            } => {
                offsets
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
                if let Some(t) = offsets.get_mut(&group) {
                    t.remove(&(topic, partition));
                    if t.is_empty() {
                        offsets.remove(&group);
                    }
                }
            }
            Entry::Group {
                group,
                value: Some(snapshot),
            } => {
                groups.insert(group, snapshot);
            }
            Entry::Group { group, value: None } => {
                groups.remove(&group);
            }
        }
    }
}

/// The groups to load into the coordinator: those last written, and one
/// known only by its offsets as Empty (as in Kafka).
fn to_load(
    offsets: &OffsetTable,
    mut groups: GroupsWritten,
) -> impl Iterator<Item = (String, GroupSnapshot)> {
    for group in offsets.keys() {
        groups.entry(group.clone()).or_default();
    }
    groups.into_iter()
}

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
    /// Committed offsets, as stored in `__consumer_offsets`: in a
    /// cluster, of the groups this broker coordinates.
    pub(crate) committed: OffsetTable,
    /// Parked JoinGroup/SyncGroup requests by ticket.
    parked: crate::io::IdMap<u64, ParkedSlot>,
    /// Group metadata as last written, replayed at startup until every
    /// partition is read. Alone only.
    snapshots: GroupsWritten,
    /// In a cluster, what each `__consumer_offsets` log held says below
    /// its high watermark.
    durable: BTreeMap<LogKey, Written>,
    /// In a cluster, entries of `__consumer_offsets` batches this broker
    /// holds that its high watermark has not passed yet (copied, appended
    /// or recovered), by log and then the batch's last offset.
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
            durable: BTreeMap::new(),
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

    /// Replay one `__consumer_offsets` partition's entries at startup,
    /// alone.
    pub(crate) fn replay(&mut self, entries: Vec<Entry>) {
        apply(&mut self.committed, &mut self.snapshots, entries);
    }

    /// Hand the replayed groups to the coordinator once every partition of
    /// the internal topic is read; in a cluster they wait for this broker
    /// to lead their partitions ([`Groups::take_over`]).
    pub(crate) fn finish_replay(&mut self, now: crate::time::Instant, clustered: bool) {
        if clustered {
            return;
        }
        let snapshots = std::mem::take(&mut self.snapshots);
        for (group, snapshot) in to_load(&self.committed, snapshots) {
            self.coordinator.load(now, group, snapshot);
        }
    }
}

impl Groups {
    /// In a cluster, at startup: the batches of `key`'s log, (last
    /// offset, entries), wait for its high watermark like copied ones (a
    /// tail past it may be cut when the broker rejoins its leader).
    pub(crate) fn recovered(&mut self, key: LogKey, batches: Vec<(u64, Vec<Entry>)>) {
        for (last, entries) in batches {
            self.queue(key, last, entries);
        }
    }

    /// As a follower, this broker appended a `__consumer_offsets` batch of
    /// `key` ending at `last`: its entries wait for the high watermark.
    pub(crate) fn replicated(&mut self, key: LogKey, last: u64, batch: &[u8]) {
        let mut entries = Vec::new();
        group_log::replay(batch, &mut entries);
        self.queue(key, last, entries);
    }

    fn queue(&mut self, key: LogKey, last: u64, entries: Vec<Entry>) {
        if !entries.is_empty() {
            self.pending
                .entry(key)
                .or_default()
                .push_back((last, entries));
        }
    }

    /// The high watermark of `key` reached `hw`: the entries below it are
    /// what the log says for good (they can no longer be cut from it).
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
        if !ready.is_empty() {
            let d = self.durable.entry(key).or_default();
            apply(&mut d.offsets, &mut d.groups, ready);
        }
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

    /// This broker now leads `partition` of `count` (its log `key`): its
    /// groups are loaded as its log says them to its end, the new
    /// leader's log being the partition's. What is past the high
    /// watermark stays pending: should this broker lose the partition
    /// before it is replicated, a truncation can still take it back.
    pub(crate) fn take_over(
        &mut self,
        now: crate::time::Instant,
        (key, partition): (LogKey, i32),
        count: i32,
    ) {
        let mut written = self.durable.get(&key).cloned().unwrap_or_default();
        let rest = self.pending.get(&key).into_iter().flatten();
        apply(
            &mut written.offsets,
            &mut written.groups,
            rest.flat_map(|(_, entries)| entries.iter().cloned()),
        );
        let ours = |g: &str| group_log::partition_for(g, count) == partition;
        // Offsets of its groups answered while another broker led it are
        // that broker's to know; the log says what they are now.
        self.committed.retain(|g, _| !ours(g));
        let mut loaded = 0;
        for (group, snapshot) in to_load(&written.offsets, written.groups) {
            self.coordinator.load(now, group, snapshot);
            loaded += 1;
        }
        self.committed.extend(written.offsets);
        self.coordinating.insert(partition);
        tracing::info!(
            partition,
            groups = loaded,
            "coordinating the groups of {OFFSETS_TOPIC}"
        );
    }

    /// Another broker leads `partition` of `count` now: its groups leave
    /// the coordinator (their parked requests are answered
    /// NOT_COORDINATOR) and their live offsets go; what this broker's log
    /// says of them stays, and it follows the new leader's writes.
    pub(crate) fn give_up(&mut self, partition: i32, count: i32) {
        let ours = |g: &str| group_log::partition_for(g, count) == partition;
        let names: Vec<String> = self
            .coordinator
            .group_names()
            .filter(|g| ours(g))
            .map(str::to_owned)
            .collect();
        for group in &names {
            self.coordinator.unload(group);
        }
        self.committed.retain(|g, _| !ours(g));
        self.coordinating.remove(&partition);
        tracing::info!(
            partition,
            groups = names.len(),
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
    if cx.quorum.is_some() {
        // What the log will say once the batch is replicated.
        if let Some(hw) = cx.logs.get(key).map(|l| l.high_watermark()) {
            cx.groups.committed_to(key, hw);
        }
        let entries = records.iter().filter_map(group_log::entry_of).collect();
        cx.groups.queue(key, info.last_offset, entries);
    }
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
