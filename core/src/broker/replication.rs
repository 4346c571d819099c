//! Data replication, Kafka's ISR protocol, in two halves.
//!
//! The leader's: a follower fetches with its replica id, and its fetch
//! offset is its log end; the leader keeps each in-sync follower's, and
//! holds the partition's high watermark at the least of them (and its own
//! written end), so readers and `acks=all` see only what every in-sync
//! replica has. Followers are served up to the leader's written end, from
//! the segment files, as consumers are (`sendfile`).
//!
//! The follower's ([`Broker::replicate`]): one Fetch at a time to each
//! leader it follows partitions of, naming them all from its log ends;
//! the batches that come back are appended as they came (offsets, epochs
//! and timestamps the leader's) through the same segment writer, and the
//! leader's high watermark bounds the follower's.
//!
//! Leaders change hands through the controller (a fenced broker's
//! partitions pass to an in-sync replica, `cluster::controller`); each
//! broker takes its new role from the image: a new leader holds its high
//! watermark where it was until its followers fetch, an old one answers
//! the produces still waiting on it NOT_LEADER_OR_FOLLOWER and follows.
//!
//! A follower whose log diverged from its leader's (it led once and took
//! batches no in-sync replica has) learns where from the leader's answer
//! (KIP-320's DivergingEpoch), stops fetching the partition, cuts its log
//! there once the log is quiet (`log/truncate.rs`) and fetches the
//! leader's batches in their place.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::Broker;
use super::group_log::OFFSETS_TOPIC;
pub(crate) use super::isr::Leading;
use super::logs::LogKey;
use crate::log::{TruncateError, batch};
use crate::time::Instant;

/// The Fetch version followers send: topics by name, no sessions needed.
pub(crate) const REPLICA_FETCH_VERSION: i16 = 12;

/// This broker's part in a partition with more than one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// It leads ([`Leading`]).
    Leader(Leading),
    /// It follows `leader`.
    Follower { leader: i32 },
}

impl Role {
    /// The most the high watermark may be, given the log's own: on a
    /// leader the least log end of the other in-sync replicas (one not
    /// heard from yet holds it where it is); on a follower, `None` (the
    /// leader's answers set it).
    pub(crate) fn leader_bound(&self, hwm: u64) -> Option<u64> {
        match self {
            Role::Leader(l) => Some(
                l.isr
                    .iter()
                    .map(|r| l.ends.get(r).copied().unwrap_or(hwm))
                    .min()
                    .unwrap_or(u64::MAX),
            ),
            Role::Follower { .. } => None,
        }
    }
}

/// The replication state beside the logs' roles: the follower's fetches,
/// and the leader's ISR changes asked for.
#[derive(Debug, Default)]
pub(crate) struct Fetching {
    /// ISR changes asked of the controller ([`super::isr`]).
    pub(crate) isr_asked: super::isr::Asked,
    /// Leaders not fetched from again before this (they answered errors).
    backoff: BTreeMap<i32, Instant>,
    /// Partitions whose fetch failed in a way only an operator can mend,
    /// already logged.
    warned: std::collections::BTreeSet<LogKey>,
    /// Diverged partitions to cut, not fetched until the cut is made and
    /// written.
    truncating: BTreeMap<LogKey, Cut>,
}

/// Where a follower's log is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Before this offset: what follows is not the leader's.
    Before(u64),
    /// Everything, the log starting again empty at this offset (the
    /// leader's log start, past this log's end).
    StartAt(u64),
}

impl Fetching {
    /// Whether a diverged log waits to be cut (its commands' answers
    /// should look again).
    pub(crate) fn truncating(&self) -> bool {
        !self.truncating.is_empty()
    }

    /// When a backoff ends.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.backoff.values().min().copied()
    }
}

impl Broker {
    /// Send a Fetch to each leader this broker follows partitions of, when
    /// none is in flight to it and it is not backing off.
    pub(super) fn replicate(&mut self) {
        if self.quorum.is_none() {
            return;
        }
        let me = self.config.node_id;
        let now = self.now.mono;
        self.fetching.backoff.retain(|_, until| *until > now);
        self.truncate_diverged();
        let Some(q) = &self.quorum else {
            return;
        };
        // Partitions by leader, each with its log end and start.
        let mut wanted: BTreeMap<i32, Vec<Wanted>> = BTreeMap::new();
        for (name, topic) in &q.image().topics {
            for (p, state) in topic.partitions.iter().enumerate() {
                let leader = state.leader;
                if leader == me || leader < 0 || !state.replicas.contains(&me) {
                    continue;
                }
                let Ok(p) = i32::try_from(p) else { continue };
                let Some(key) = self.logs.find(name, p) else {
                    continue;
                };
                if self.fetching.warned.contains(&key)
                    || self.fetching.truncating.contains_key(&key)
                {
                    continue;
                }
                let Some(log) = self.logs.get(key) else {
                    continue;
                };
                if log.offline().is_some() {
                    continue;
                }
                wanted.entry(leader).or_default().push(Wanted {
                    topic: name.clone(),
                    partition: p,
                    end: log.log_end_offset(),
                    start: log.log_start_offset(),
                    last_epoch: log.latest_epoch().unwrap_or(-1),
                    leader_epoch: state.leader_epoch,
                });
            }
        }
        for (leader, partitions) in wanted {
            if self.peers.awaiting(leader, ApiKey::Fetch)
                || self.fetching.backoff.contains_key(&leader)
            {
                continue;
            }
            let Some(body) = fetch_request(&self.config, &partitions) else {
                tracing::error!(leader, "replica Fetch encoding failed");
                continue;
            };
            self.peers.send_request(
                &mut self.io,
                leader,
                (ApiKey::Fetch, REPLICA_FETCH_VERSION),
                &body,
            );
        }
    }

    /// A leader answered a follower's Fetch: append what came, in order,
    /// and take the leader's high watermark.
    pub(super) fn replica_fetched(&mut self, leader: i32, mut frame: Bytes) {
        let version = REPLICA_FETCH_VERSION;
        let decoded =
            ResponseHeader::decode(&mut frame, ApiKey::Fetch.response_header_version(version))
                .and_then(|_| FetchResponse::decode(&mut frame, version));
        let response = match decoded {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(leader, error = %e, "replica Fetch answer does not decode");
                self.back_off(leader);
                return;
            }
        };
        if response.error_code != 0 {
            self.back_off(leader);
            return;
        }
        let mut errors = false;
        for topic in response.responses {
            let name = topic.topic.0.as_str();
            for p in topic.partitions {
                let Some(key) = self.logs.find(name, p.partition_index) else {
                    continue;
                };
                if !self.logs.follows(key, leader) {
                    // Asked before leadership moved: stale.
                    continue;
                }
                if p.error_code != 0 {
                    errors = true;
                    self.replica_error(key, leader, &p);
                    continue;
                }
                let diverged = &p.diverging_epoch;
                if diverged.epoch >= 0 || diverged.end_offset >= 0 {
                    self.diverged(key, leader, diverged.epoch, diverged.end_offset);
                    continue;
                }
                let offsets = name == OFFSETS_TOPIC;
                if let Some(records) = p.records {
                    self.append_replicated(key, leader, records, offsets);
                }
                let hw = u64::try_from(p.high_watermark).unwrap_or(0);
                self.logs.leader_high_watermark(key, hw);
                self.follow_log_start(key, p.log_start_offset);
                if offsets {
                    let hw = self.logs.get(key).map_or(0, |l| l.high_watermark());
                    self.groups.committed_to(key, hw);
                }
            }
        }
        if errors {
            self.back_off(leader);
        }
        self.replicate();
    }

    /// The leader's log start is past this replica's (DeleteRecords or
    /// retention there): move it up too, as Kafka's follower does, once
    /// this replica's high watermark has reached it (until then the next
    /// answer says it again). A consumer reading from the new leader after
    /// a failover then finds the records deleted gone there too.
    fn follow_log_start(&mut self, key: LogKey, leader_start: i64) {
        let Ok(start) = u64::try_from(leader_start) else {
            return;
        };
        let Some(log) = self.logs.get(key) else {
            return;
        };
        if start <= log.log_start_offset() || start > log.high_watermark() {
            return;
        }
        if let Some(Ok(now)) = self.logs.delete_records(&mut self.io, self.now, key, start) {
            tracing::info!(log_start = now, "log start moved up to the leader's");
        }
    }

    /// The leader says its epoch `epoch` ends at `end_offset`, and this
    /// log holds more past it: cut before the first offset that is not
    /// the leader's, as Kafka's follower does (`getOffsetTruncationState`):
    /// at the leader's end of that epoch, and before any batch of a later
    /// epoch this log has and the leader's answer did not name. Another
    /// round follows when that still leaves a later epoch than the
    /// leader's here.
    fn diverged(&mut self, key: LogKey, leader: i32, epoch: i32, end_offset: i64) {
        let Some(log) = self.logs.get(key) else {
            return;
        };
        let end = log.log_end_offset();
        let theirs = u64::try_from(end_offset).unwrap_or(0);
        let at = theirs.min(log.start_after_epoch(epoch)).min(end);
        if at >= end {
            return;
        }
        tracing::warn!(
            leader,
            dir = log.dir(),
            leader_epoch = epoch,
            leader_end = end_offset,
            log_end = end,
            truncate_to = at,
            "this replica's log diverged from its leader's; truncating it"
        );
        self.fetching.truncating.insert(key, Cut::Before(at));
        self.truncate_diverged();
    }

    /// Cut each diverged log that is quiet; resume fetching those cut and
    /// written. A partition no longer followed is left as it is.
    fn truncate_diverged(&mut self) {
        if self.fetching.truncating.is_empty() {
            return;
        }
        let wanted: Vec<(LogKey, Cut)> = self
            .fetching
            .truncating
            .iter()
            .map(|(k, cut)| (*k, *cut))
            .collect();
        for (key, cut) in wanted {
            let at = match cut {
                Cut::Before(at) => at,
                Cut::StartAt(start) => {
                    self.start_over(key, start);
                    continue;
                }
            };
            let Some(Role::Follower { leader }) = self.logs.role(key).cloned() else {
                self.fetching.truncating.remove(&key);
                continue;
            };
            let Some(log) = self.logs.get(key) else {
                self.fetching.truncating.remove(&key);
                continue;
            };
            if log.log_end_offset() <= at {
                if log.is_quiet() {
                    self.fetching.truncating.remove(&key);
                }
                continue;
            }
            let truncated = self.logs.truncate(&mut self.io, self.now, key, at);
            if matches!(truncated, Some(Ok(_))) {
                self.groups.truncated(key, at);
            }
            match truncated {
                Some(Ok(t)) => tracing::info!(
                    leader,
                    log_end = t.log_end,
                    bytes = t.bytes,
                    segments_removed = t.segments_removed,
                    "diverged replica truncated; fetching from its leader again"
                ),
                Some(Err(TruncateError::Busy)) => {}
                Some(Err(e)) => {
                    self.fetching.truncating.remove(&key);
                    let why = match e {
                        TruncateError::BelowLogStart => {
                            "this replica's log diverged from the leader's below its log start"
                        }
                        _ => "this replica's log is offline",
                    };
                    self.stop_replicating(key, leader, why);
                }
                None => {
                    self.fetching.truncating.remove(&key);
                }
            }
        }
    }

    /// Empty `key`'s log and start it at `start`, the leader's log start,
    /// once the log is quiet; then fetch from there.
    fn start_over(&mut self, key: LogKey, start: u64) {
        let leader = match self.logs.role(key) {
            Some(Role::Follower { leader }) => *leader,
            _ => {
                self.fetching.truncating.remove(&key);
                return;
            }
        };
        let Some(log) = self.logs.get(key) else {
            self.fetching.truncating.remove(&key);
            return;
        };
        if log.log_start_offset() >= start {
            // Done: fetch again once its commands are answered.
            if log.is_quiet() {
                self.fetching.truncating.remove(&key);
            }
            return;
        }
        match self.logs.truncate_fully(&mut self.io, self.now, key, start) {
            Some(Ok(t)) => {
                // Group writes it held and had not yet applied go with it.
                self.groups.truncated(key, 0);
                tracing::warn!(
                    leader,
                    log_start = start,
                    bytes = t.bytes,
                    segments_removed = t.segments_removed,
                    "this replica's log ended below its leader's log start; emptied it, \
                     copying the leader's log from its start"
                );
            }
            Some(Err(TruncateError::Busy)) => {}
            Some(Err(_)) => {
                self.fetching.truncating.remove(&key);
                self.stop_replicating(key, leader, "this replica's log is offline");
            }
            None => {
                self.fetching.truncating.remove(&key);
            }
        }
    }

    fn back_off(&mut self, leader: i32) {
        let wait = Duration::from_millis(self.config.replica_fetch_backoff_ms);
        self.fetching
            .backoff
            .insert(leader, self.now.mono.saturating_add(wait));
    }

    /// Append the whole batches of one partition's fetched records; a
    /// partial batch at the end (cut by the byte limits) is fetched again.
    /// The entries of a `__consumer_offsets` batch (`offsets`) are kept
    /// for the groups part to apply.
    fn append_replicated(&mut self, key: LogKey, leader: i32, records: Bytes, offsets: bool) {
        for (at, header) in batch::scan(&records, 0) {
            let len = header.total_len() as usize;
            let bytes = records.slice(at..at + len);
            let end = self.logs.get(key).map_or(0, |l| l.log_end_offset());
            let base = u64::try_from(header.base_offset).unwrap_or(u64::MAX);
            if base < end {
                // Already here (the first batch of a fetch may start before
                // the offset asked for).
                continue;
            }
            if batch::crc_of(&bytes) != Some(header.crc) || base > end {
                let why = if base > end {
                    "a gap"
                } else {
                    "a CRC mismatch"
                };
                self.stop_replicating(key, leader, why);
                return;
            }
            let appended = self
                .logs
                .run(&mut self.io, self.now, key, |log, now, ids, out| {
                    log.append_replica(now, bytes, &header, ids, out)
                });
            if let Some(Err(e)) = appended {
                tracing::warn!(leader, error = %e, "replicated batch not appended");
                return;
            }
            if offsets {
                let last =
                    base.saturating_add(u64::try_from(header.last_offset_delta).unwrap_or(0));
                self.groups.replicated(key, last, &records[at..at + len]);
            }
        }
    }

    /// A partition's error in a leader's answer, which carries the
    /// leader's high watermark and log start.
    fn replica_error(&mut self, key: LogKey, leader: i32, p: &PartitionData) {
        if p.error_code != ResponseError::OffsetOutOfRange.code() {
            // The leader does not lead it yet or any more: the image
            // catches up.
            tracing::debug!(leader, code = p.error_code, "replica fetch refused");
            return;
        }
        let (end, own_hw) = self
            .logs
            .get(key)
            .map_or((0, 0), |l| (l.log_end_offset(), l.high_watermark()));
        let leader_start = u64::try_from(p.log_start_offset).unwrap_or(0);
        // Past its own high watermark this log may hold records the leader
        // never had (Kafka cuts at the follower's own high watermark when
        // no epoch is known).
        match u64::try_from(p.high_watermark).map(|hw| hw.min(own_hw)) {
            // This log runs past the leader's and no leader epochs told
            // where they parted: cut at the lower of the two high
            // watermarks (below both, every record is the leader's) and
            // fetch the rest.
            Ok(hw) if hw < end && hw >= leader_start => {
                tracing::warn!(
                    leader,
                    leader_high_watermark = hw,
                    log_end = end,
                    "this replica's log runs past its leader's; truncating it"
                );
                self.fetching.truncating.insert(key, Cut::Before(hw));
                self.truncate_diverged();
            }
            // The leader's retention (or DeleteRecords) removed everything
            // this log would fetch next: start again at the leader's log
            // start, as Kafka's follower does.
            _ if end < leader_start => {
                self.fetching
                    .truncating
                    .insert(key, Cut::StartAt(leader_start));
                self.truncate_diverged();
            }
            _ => self.stop_replicating(
                key,
                leader,
                "the leader refuses this replica's fetch offset",
            ),
        }
    }

    fn stop_replicating(&mut self, key: LogKey, leader: i32, why: &str) {
        if self.fetching.warned.insert(key) {
            let dir = self.logs.get(key).map(|l| l.dir().to_owned());
            tracing::error!(
                leader,
                ?dir,
                why,
                "replication of this partition stopped; move this replica's log away \
                 and restart the broker to copy it from the leader again"
            );
        }
    }
}

/// One partition a follower fetches.
struct Wanted {
    topic: String,
    partition: i32,
    /// Its log end (the fetch offset) and start.
    end: u64,
    start: u64,
    /// The leader epoch of its last batch (-1: none known).
    last_epoch: i32,
    /// The leader's epoch, as the image has it.
    leader_epoch: i32,
}

/// The Fetch a follower sends: every partition it follows on one leader,
/// from its log ends, with the epoch of its last batch so the leader can
/// tell it where its log diverged.
fn fetch_request(config: &crate::config::Config, partitions: &[Wanted]) -> Option<Bytes> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for w in partitions {
        let partition = FetchPartition::default()
            .with_partition(w.partition)
            .with_current_leader_epoch(w.leader_epoch)
            .with_fetch_offset(i64::try_from(w.end).ok()?)
            .with_last_fetched_epoch(w.last_epoch)
            .with_log_start_offset(i64::try_from(w.start).ok()?)
            .with_partition_max_bytes(config.replica_fetch_max_bytes);
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == w.topic => t.partitions.push(partition),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(w.topic.clone())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(config.node_id))
        .with_max_wait_ms(config.replica_fetch_wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(config.replica_fetch_response_max_bytes)
        .with_topics(topics);
    let mut body = BytesMut::new();
    // Every field is in range: only a broker bug fails here.
    request.encode(&mut body, REPLICA_FETCH_VERSION).ok()?;
    Some(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PartitionImage;

    #[test]
    fn a_leader_holds_the_high_watermark_at_its_slowest_in_sync_follower() {
        let state = PartitionImage {
            replicas: vec![0, 1, 2],
            isr: vec![0, 1, 2],
            leader: 0,
            leader_epoch: 0,
            partition_epoch: 0,
        };
        let mut leading = Leading::new(&state, 0, Instant::from_nanos(0));
        leading.ends.insert(1, 7);
        // Replica 2 has not fetched: the high watermark stays where it is.
        assert_eq!(Role::Leader(leading.clone()).leader_bound(3), Some(3));
        leading.ends.insert(2, 5);
        assert_eq!(Role::Leader(leading.clone()).leader_bound(3), Some(5));
        leading.isr.clear();
        assert_eq!(Role::Leader(leading).leader_bound(3), Some(u64::MAX));
        assert_eq!(Role::Follower { leader: 0 }.leader_bound(3), None);
    }
}
