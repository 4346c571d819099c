//! The leader's view of its followers, and the ISR changes it asks the
//! controller for, as Kafka's leaders do with AlterPartition.
//!
//! A follower is caught up when it fetches from at least the log end the
//! leader had at its previous fetch (Kafka's rule: under a steady stream
//! no follower is ever exactly at the end). An in-sync follower not caught
//! up for `replica.lag.time.max.ms` is dropped from the ISR; an
//! out-of-sync one whose log reaches the high watermark is added. The
//! change is a compare-and-swap on the partition epoch: the controller
//! refuses it when the partition changed since (another leader, another
//! ISR), and the leader asks again from the new image. The image, not the
//! answer, is what the leader goes by.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::alter_partition_request::{PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, ApiKey, BrokerId};
use kafka_protocol::protocol::Encodable;

use super::Broker;
use super::logs::LogKey;
use super::replication::Role;
use crate::cluster::PartitionImage;
use crate::cluster::controller::IsrChange;
use crate::time::Instant;

/// The AlterPartition version leaders send: topic ids, ISR as broker ids.
pub(crate) const ALTER_PARTITION_VERSION: i16 = 2;

/// How long a leader waits for its ISR change to show in the image before
/// it asks again.
const ASK_AGAIN: Duration = Duration::from_secs(1);

/// A leader's state of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leading {
    /// The other replicas, in assignment order.
    pub(crate) followers: Vec<i32>,
    /// Those of them in the ISR, as the image has it.
    pub(crate) isr: Vec<i32>,
    /// Each follower's log end, as its last fetch showed.
    pub(crate) ends: BTreeMap<i32, u64>,
    /// When each follower was last caught up (or, not heard from since
    /// this broker took the partition, when it did).
    pub(crate) caught_up: BTreeMap<i32, Instant>,
    /// Each follower's last fetch: the leader's log end then, and when.
    pub(crate) last_fetch: BTreeMap<i32, (u64, Instant)>,
    /// Each follower's log start, as its last fetch showed
    /// (DeleteRecords waits for the in-sync ones to reach its offset).
    pub(crate) starts: BTreeMap<i32, u64>,
    pub(crate) leader_epoch: i32,
    pub(crate) partition_epoch: i32,
}

impl Leading {
    /// Leading `state` as `me`, from `now`.
    pub(crate) fn new(state: &PartitionImage, me: i32, now: Instant) -> Self {
        let others = |list: &[i32]| list.iter().copied().filter(|&r| r != me).collect();
        let followers: Vec<i32> = others(&state.replicas);
        Self {
            caught_up: followers.iter().map(|&r| (r, now)).collect(),
            followers,
            isr: others(&state.isr),
            ends: BTreeMap::new(),
            last_fetch: BTreeMap::new(),
            starts: BTreeMap::new(),
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
        }
    }

    /// The same partition in a newer image: what is known of the
    /// followers stays.
    pub(crate) fn carry(mut self, known: &Leading) -> Self {
        if self.leader_epoch == known.leader_epoch {
            self.ends.clone_from(&known.ends);
            self.last_fetch.clone_from(&known.last_fetch);
            self.starts.clone_from(&known.starts);
            for (r, at) in &known.caught_up {
                self.caught_up.insert(*r, *at);
            }
        }
        self
    }

    /// `replica` fetched from `offset` at `now`, the leader's log ending at
    /// `end`.
    pub(crate) fn fetched(&mut self, replica: i32, offset: u64, end: u64, now: Instant) {
        if !self.followers.contains(&replica) {
            return;
        }
        self.ends.insert(replica, offset);
        if offset >= end {
            self.caught_up.insert(replica, now);
        } else if let Some(&(before, at)) = self.last_fetch.get(&replica) {
            if offset >= before {
                self.caught_up.insert(replica, at);
            }
        }
        self.last_fetch.insert(replica, (end, now));
    }

    /// `replica`'s log starts at `start`, as its fetch says; whether that
    /// moved it.
    pub(crate) fn started(&mut self, replica: i32, start: u64) -> bool {
        if !self.followers.contains(&replica) {
            return false;
        }
        self.starts.insert(replica, start) != Some(start)
    }

    /// The least log start of the in-sync replicas, the leader's
    /// (`own`) among them: what DeleteRecords answers as the partition's
    /// low watermark. A follower not heard from yet counts as 0.
    pub(crate) fn low_watermark(&self, own: u64) -> u64 {
        self.isr
            .iter()
            .map(|r| self.starts.get(r).copied().unwrap_or(0))
            .fold(own, u64::min)
    }

    /// The ISR (the leader's `me` first) this leader wants, when it is not
    /// the image's: without the followers not caught up within `lag`, with
    /// those caught up whose log reaches `hwm`.
    pub(crate) fn wanted_isr(
        &self,
        me: i32,
        hwm: u64,
        now: Instant,
        lag: Duration,
    ) -> Option<Vec<i32>> {
        let mut changed = false;
        let mut isr = vec![me];
        for &r in &self.followers {
            let in_sync = self.isr.contains(&r);
            let recent = self
                .caught_up
                .get(&r)
                .is_some_and(|at| at.saturating_add(lag) > now);
            // One out of sync joins when it reaches the high watermark,
            // and only while it keeps fetching.
            let keep = recent && (in_sync || self.ends.get(&r).is_some_and(|&end| end >= hwm));
            changed |= keep != in_sync;
            if keep {
                isr.push(r);
            }
        }
        changed.then_some(isr)
    }
}

/// ISR changes asked for and not yet in the image: by partition, the
/// partition epoch asked from and when.
pub(crate) type Asked = BTreeMap<LogKey, (i32, Instant)>;

impl Broker {
    /// As a leader, ask the controller for every ISR change due: over the
    /// wire, or straight to the quorum when this broker is the controller.
    pub(super) fn alter_isrs(&mut self) {
        let Some(q) = &self.quorum else {
            return;
        };
        let Some(controller) = q.controller() else {
            return;
        };
        let me = self.config.node_id;
        let now = self.now.mono;
        let lag = Duration::from_millis(self.config.replica_lag_time_max_ms);
        let mut changes: Vec<(LogKey, IsrChange)> = Vec::new();
        let led = q.image().topics.iter().flat_map(|(name, t)| {
            let name = name.as_str();
            (0..t.partitions.len()).map(move |p| (name, t.id, p))
        });
        for (topic, topic_id, p) in led {
            let Ok(partition) = i32::try_from(p) else {
                continue;
            };
            let Some(key) = self.logs.find(topic, partition) else {
                continue;
            };
            let (Some(Role::Leader(l)), Some(log)) = (self.logs.role(key), self.logs.get(key))
            else {
                continue;
            };
            let Some(isr) = l.wanted_isr(me, log.high_watermark(), now, lag) else {
                continue;
            };
            let asked = self.fetching.isr_asked.get(&key);
            if asked.is_some_and(|&(epoch, at)| {
                epoch == l.partition_epoch && at.saturating_add(ASK_AGAIN) > now
            }) {
                continue;
            }
            changes.push((
                key,
                IsrChange {
                    topic_id,
                    partition,
                    leader: me,
                    leader_epoch: l.leader_epoch,
                    partition_epoch: l.partition_epoch,
                    isr,
                },
            ));
        }
        if changes.is_empty() {
            return;
        }
        if controller != me && self.peers.awaiting(controller, ApiKey::AlterPartition) {
            return;
        }
        for (key, c) in &changes {
            tracing::info!(
                topic_id = %c.topic_id,
                partition = c.partition,
                isr = ?c.isr,
                "asking the controller to change the ISR"
            );
            self.fetching
                .isr_asked
                .insert(*key, (c.partition_epoch, now));
        }
        if controller == me {
            let Some(q) = self.quorum.as_mut() else {
                return;
            };
            let records: Vec<_> = changes
                .iter()
                .filter_map(|(_, c)| c.record(q.image()).ok())
                .collect();
            q.propose(&records);
            return;
        }
        let Some(broker_epoch) = self
            .quorum
            .as_ref()
            .and_then(|q| q.image().brokers.get(&me))
            .map(|r| r.epoch)
        else {
            return;
        };
        let mut topics: Vec<TopicData> = Vec::new();
        for (_, c) in changes {
            let p = PartitionData::default()
                .with_partition_index(c.partition)
                .with_leader_epoch(c.leader_epoch)
                .with_partition_epoch(c.partition_epoch)
                .with_new_isr(c.isr.into_iter().map(BrokerId).collect());
            match topics.iter_mut().find(|t| t.topic_id == c.topic_id) {
                Some(t) => t.partitions.push(p),
                None => topics.push(
                    TopicData::default()
                        .with_topic_id(c.topic_id)
                        .with_partitions(vec![p]),
                ),
            }
        }
        let request = AlterPartitionRequest::default()
            .with_broker_id(BrokerId(me))
            .with_broker_epoch(i64::try_from(broker_epoch).unwrap_or(i64::MAX))
            .with_topics(topics);
        let mut body = BytesMut::new();
        if request.encode(&mut body, ALTER_PARTITION_VERSION).is_err() {
            tracing::error!("AlterPartition encoding failed");
            return;
        }
        self.peers.send_request(
            &mut self.io,
            controller,
            (ApiKey::AlterPartition, ALTER_PARTITION_VERSION),
            &body.freeze(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(isr: &[i32]) -> PartitionImage {
        PartitionImage {
            replicas: vec![0, 1, 2],
            isr: isr.to_vec(),
            leader: 0,
            leader_epoch: 3,
            partition_epoch: 5,
        }
    }

    #[test]
    fn followers_leave_the_isr_when_they_lag_and_join_when_they_reach_the_high_watermark() {
        let t = |ms: u64| Instant::from_nanos(ms * 1_000_000);
        let lag = Duration::from_millis(30_000);
        let mut l = Leading::new(&state(&[0, 1, 2]), 0, t(0));
        assert_eq!(l.wanted_isr(0, 0, t(29_999), lag), None);
        // 1 keeps up under a steady stream: it fetches from where the
        // log ended at its previous fetch.
        l.fetched(1, 0, 10, t(1_000));
        l.fetched(1, 10, 20, t(20_000));
        l.fetched(1, 20, 30, t(40_000));
        assert_eq!(l.caught_up[&1], t(20_000));
        // 2 never fetched: out after the lag.
        assert_eq!(l.wanted_isr(0, 20, t(45_000), lag), Some(vec![0, 1]));
        let mut l = Leading::new(&state(&[0, 1]), 0, t(45_000)).carry(&l);
        assert_eq!(l.wanted_isr(0, 30, t(45_001), lag), None);
        l.fetched(2, 12, 30, t(45_002));
        assert_eq!(
            l.wanted_isr(0, 30, t(45_003), lag),
            None,
            "below the high watermark"
        );
        l.fetched(2, 30, 30, t(45_004));
        assert_eq!(l.wanted_isr(0, 30, t(45_005), lag), Some(vec![0, 1, 2]));
        // A replica that is no follower changes nothing.
        l.fetched(7, 30, 30, t(45_006));
        assert!(!l.ends.contains_key(&7));
        // A new leader epoch forgets what the old one knew.
        let mut next = state(&[0, 1, 2]);
        next.leader_epoch = 4;
        let fresh = Leading::new(&next, 0, t(60_000)).carry(&l);
        assert!(fresh.ends.is_empty());
    }
}
