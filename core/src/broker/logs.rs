//! The logs part: topics and their partition logs, the topic settings given
//! at creation, the pins in-flight sends and reads hold on segments, and the
//! logs of deleted topics waiting for their pins to drop. What happened to
//! the logs during an input is kept as [`Events`] for the broker to act on.

use std::collections::BTreeMap;

use super::lifecycle::{self, FileJob};
use super::out::{Io, Owner};
use super::replication::Role;
use crate::config::TopicConfig;
use crate::io::{Command, Completion, Ids, IoError, IoId, SegId};
use crate::log::PartitionLog;
use crate::time::{Instant, Now};

/// Index of a partition log.
pub(crate) type LogKey = usize;

/// Segments pinned by a response or a read.
pub(crate) type Pins = Vec<(LogKey, SegId)>;

/// Topic settings given at creation, as `(key, value)` in Kafka's names.
pub(crate) type Overrides = Vec<(String, String)>;

/// A topic: its id and the logs of its partitions, in partition order. In
/// a cluster a broker holds logs only for the partitions it is a replica
/// of; the others are `None`.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) id: uuid::Uuid,
    pub(crate) partitions: Vec<Option<LogKey>>,
}

impl Topic {
    /// The partitions this broker holds a log for, as (partition, log).
    pub(crate) fn hosted(&self) -> impl Iterator<Item = (i32, LogKey)> + '_ {
        self.partitions
            .iter()
            .enumerate()
            .filter_map(|(p, k)| Some((i32::try_from(p).ok()?, (*k)?)))
    }

    fn keys(&self) -> Vec<LogKey> {
        self.partitions.iter().flatten().copied().collect()
    }
}

/// What happened to the logs since the broker last looked.
#[derive(Debug, Default)]
pub(crate) struct Events {
    /// A high watermark or recovery point moved, or a log failed or went
    /// away: requests waiting for their appends look again.
    pub(crate) appended: bool,
    /// Logs that have more to read (or failed): long-polling fetches
    /// reading them look again.
    pub(crate) data: Vec<LogKey>,
    /// Some log's recovery point moved: the checkpoint is due a rewrite.
    pub(crate) recovery_points: bool,
    /// Some log's start moved by request (DeleteRecords): the checkpoint
    /// is due now, so a restart does not bring the records back.
    pub(crate) log_starts: bool,
    /// Some log's cleaning pass finished: the cleaner checkpoint is due.
    pub(crate) cleaned: bool,
    /// The bytes each pass that finished read and wrote.
    pub(crate) passes: Vec<(u64, u64)>,
}

/// Where a dynamic broker setting applies: every broker (the cluster-wide
/// default, resource name "") or this one (its id). This broker's own win.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    ClusterDefault,
    Broker,
}

/// Broker settings changed at run time, stored in `broker-configs`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Dynamic {
    pub(crate) cluster_default: Overrides,
    pub(crate) broker: Overrides,
}

impl Dynamic {
    pub(crate) fn at(&self, level: Level) -> &Overrides {
        match level {
            Level::ClusterDefault => &self.cluster_default,
            Level::Broker => &self.broker,
        }
    }

    /// Every setting, cluster defaults first so this broker's win.
    fn all(&self) -> Overrides {
        let mut all = self.cluster_default.clone();
        all.extend(self.broker.iter().cloned());
        all
    }
}

/// Every topic and partition log.
#[derive(Debug)]
pub(crate) struct Logs {
    topics: BTreeMap<String, Topic>,
    logs: Vec<Option<PartitionLog>>,
    /// Topic settings given at creation, by topic (stored on disk).
    overrides: BTreeMap<String, Overrides>,
    /// The broker's topic defaults: the static ones with the dynamic
    /// settings applied.
    defaults: TopicConfig,
    /// The topic defaults `server.properties` gave.
    static_defaults: TopicConfig,
    /// Broker settings changed at run time (AlterConfigs on the broker).
    dynamic: Dynamic,
    /// Logs of deleted topics, waiting for their pins to drop.
    doomed: Vec<LogKey>,
    /// Topics recovered without a stored id (a crash lost every
    /// `partition.metadata` before it was synced): their id was made up, and
    /// the cluster's image may give the real one.
    unknown_ids: std::collections::BTreeSet<String>,
    /// This broker's part in each partition with other replicas.
    roles: BTreeMap<LogKey, Role>,
    events: Events,
}

impl Logs {
    pub(crate) fn new(defaults: TopicConfig) -> Self {
        Self {
            topics: BTreeMap::new(),
            logs: Vec::new(),
            overrides: BTreeMap::new(),
            static_defaults: defaults.clone(),
            defaults,
            dynamic: Dynamic::default(),
            doomed: Vec::new(),
            unknown_ids: Default::default(),
            roles: Default::default(),
            events: Events::default(),
        }
    }

    /// What happened since the last call.
    pub(crate) fn take_events(&mut self) -> Events {
        std::mem::take(&mut self.events)
    }

    /// Run `f` on a log, queueing every command it emits as the log's.
    pub(crate) fn run<R>(
        &mut self,
        io: &mut Io,
        now: Now,
        key: LogKey,
        f: impl FnOnce(&mut PartitionLog, Now, &mut Ids, &mut Vec<Command>) -> R,
    ) -> Option<R> {
        let log = self.logs.get_mut(key)?.as_mut()?;
        Some(io.emit_from(|| Owner::Log(key), |ids, out| f(log, now, ids, out)))
    }

    /// One of `key`'s file commands finished.
    pub(crate) fn done(
        &mut self,
        io: &mut Io,
        now: Now,
        key: LogKey,
        id: IoId,
        result: Result<Completion, IoError>,
    ) {
        let Some(event) = self.run(io, now, key, |log, now, ids, out| {
            let event = log.handle_done(id, result, ids, out);
            log.continue_cleaning(now, ids, out);
            event
        }) else {
            return;
        };
        if let Some(e) = &event.failed {
            let dir = self.get(key).map(|l| l.dir().to_owned());
            tracing::error!(?dir, error = %e, "storage error: partition offline");
        }
        if event.high_watermark_advanced || event.written_advanced || event.failed.is_some() {
            self.events.appended = true;
            self.events.data.push(key);
        }
        if event.recovery_point_advanced {
            self.events.recovery_points = true;
            // acks=-1 produces on flush.messages=1 topics wait for this.
            self.events.appended = true;
        }
        self.note_cleaner(key);
        // A deleted topic's log may have waited for this (a swap).
        if self.doomed.contains(&key) {
            self.reap_doomed(io, now);
        }
    }

    /// Cut `key`'s log before offset `at` (a follower dropping a tail its
    /// leader does not have); the recovery-point checkpoint is rewritten,
    /// as the point may have moved back. `None` when the log is gone.
    pub(crate) fn truncate(
        &mut self,
        io: &mut Io,
        now: Now,
        key: LogKey,
        at: u64,
    ) -> Option<Result<crate::log::Truncated, crate::log::TruncateError>> {
        let result = self.run(io, now, key, |log, _, ids, out| {
            log.truncate_to(at, ids, out)
        })?;
        if result.is_ok_and(|t| t.bytes > 0) {
            self.events.recovery_points = true;
        }
        Some(result)
    }

    /// Empty `key`'s log and start it at `start` (see
    /// [`crate::log::PartitionLog::truncate_fully_and_start_at`]).
    pub(crate) fn truncate_fully(
        &mut self,
        io: &mut Io,
        now: Now,
        key: LogKey,
        start: u64,
    ) -> Option<Result<crate::log::Truncated, crate::log::TruncateError>> {
        let result = self.run(io, now, key, |log, _, ids, out| {
            log.truncate_fully_and_start_at(start, ids, out)
        })?;
        if result.is_ok() {
            self.events.recovery_points = true;
            self.events.log_starts = true;
        }
        Some(result)
    }

    /// This broker's part in `key`'s partition, when it has other replicas.
    pub(crate) fn role(&self, key: LogKey) -> Option<&Role> {
        self.roles.get(&key)
    }

    /// This broker's part in `key`'s partition: `None` when it is the only
    /// replica. A leader keeps what it knew of its followers while its
    /// leader epoch stays.
    pub(crate) fn set_role(&mut self, key: LogKey, role: Option<Role>) {
        let role = match (role, self.roles.get(&key)) {
            (Some(Role::Leader(new)), Some(Role::Leader(known))) => {
                Some(Role::Leader(new.carry(known)))
            }
            (role, _) => role,
        };
        if role.as_ref() == self.roles.get(&key) {
            return;
        }
        let Some(log) = self.logs.get_mut(key).and_then(Option::as_mut) else {
            return;
        };
        if let Some(Role::Leader(l)) = &role {
            log.set_leader_epoch(l.leader_epoch);
        }
        let hwm = log.high_watermark();
        let bound = match &role {
            None => None,
            Some(r @ Role::Leader { .. }) => r.leader_bound(hwm),
            // Until the leader says more.
            Some(Role::Follower { .. }) => Some(hwm),
        };
        log.set_high_watermark_bound(bound);
        match role {
            Some(r) => self.roles.insert(key, r),
            None => self.roles.remove(&key),
        };
        // Requests waiting on the partition look again: produces on a
        // leader that lost it are told so, fetches naming the leader epoch
        // it left are fenced at once.
        self.high_watermark_moved(key, true);
    }

    /// Whether another broker leads `key`'s partition (or none does), so
    /// this one only follows it.
    pub(crate) fn led_elsewhere(&self, key: LogKey) -> bool {
        matches!(self.roles.get(&key), Some(Role::Follower { .. }))
    }

    /// Whether this broker follows `key`'s partition on `leader`.
    pub(crate) fn follows(&self, key: LogKey, leader: i32) -> bool {
        matches!(self.roles.get(&key), Some(Role::Follower { leader: l }) if *l == leader)
    }

    /// Whether `replica` follows `key`'s partition, which this broker leads.
    pub(crate) fn is_follower(&self, key: LogKey, replica: i32) -> bool {
        matches!(self.roles.get(&key), Some(Role::Leader(l)) if l.followers.contains(&replica))
    }

    /// A follower fetched `key` from `offset` at `now`: its log ends there,
    /// and starts at `start` (when it says).
    pub(crate) fn follower_fetched(
        &mut self,
        key: LogKey,
        replica: i32,
        (offset, start): (u64, Option<u64>),
        now: Instant,
    ) {
        let Some(log) = self.logs.get_mut(key).and_then(Option::as_mut) else {
            return;
        };
        let Some(Role::Leader(l)) = self.roles.get_mut(&key) else {
            return;
        };
        l.fetched(replica, offset, log.written_end(), now);
        if start.is_some_and(|start| l.started(replica, start)) {
            // A DeleteRecords may be waiting for it.
            self.events.appended = true;
        }
        let bound = self
            .roles
            .get(&key)
            .and_then(|r| r.leader_bound(log.high_watermark()));
        let moved = log.set_high_watermark_bound(bound);
        self.high_watermark_moved(key, moved);
    }

    /// `key`'s low watermark: the least log start of its in-sync
    /// replicas when this broker leads it with followers, else its own
    /// log start.
    pub(crate) fn low_watermark(&self, key: LogKey) -> Option<u64> {
        let own = self.get(key)?.log_start_offset();
        Some(match self.roles.get(&key) {
            Some(Role::Leader(l)) => l.low_watermark(own),
            _ => own,
        })
    }

    /// The leader of `key`'s partition, which this broker follows, has its
    /// high watermark at `hw`.
    pub(crate) fn leader_high_watermark(&mut self, key: LogKey, hw: u64) {
        if !matches!(self.roles.get(&key), Some(Role::Follower { .. })) {
            return;
        }
        let Some(log) = self.logs.get_mut(key).and_then(Option::as_mut) else {
            return;
        };
        let moved = log.set_high_watermark_bound(Some(hw));
        self.high_watermark_moved(key, moved);
    }

    fn high_watermark_moved(&mut self, key: LogKey, moved: bool) {
        if moved {
            self.events.appended = true;
            self.events.data.push(key);
        }
    }

    /// Record a finished cleaning pass of `key`'s log.
    pub(crate) fn note_cleaner(&mut self, key: LogKey) {
        if let Some(log) = self.logs.get_mut(key).and_then(Option::as_mut) {
            if let Some(stats) = log.take_cleaner_advanced() {
                self.events.cleaned = true;
                self.events.passes.push((stats.bytes_in, stats.bytes_out));
            }
        }
    }

    pub(crate) fn get(&self, key: LogKey) -> Option<&PartitionLog> {
        self.logs.get(key)?.as_ref()
    }

    /// Every log key, deleted ones included (they answer `None`).
    pub(crate) fn keys(&self) -> std::ops::Range<LogKey> {
        0..self.logs.len()
    }

    /// Every live log.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &PartitionLog> {
        self.logs.iter().flatten()
    }

    /// The log of `topic`'s partition `partition`, if both exist.
    pub(crate) fn find(&self, topic: &str, partition: i32) -> Option<LogKey> {
        let t = self.topics.get(topic)?;
        t.partitions
            .get(usize::try_from(partition).ok()?)
            .copied()?
    }

    pub(crate) fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name)
    }

    pub(crate) fn topics(&self) -> impl Iterator<Item = (&String, &Topic)> {
        self.topics.iter()
    }

    /// Keep `seg` on disk until [`Logs::unpin_all`] releases it.
    pub(crate) fn pin(&mut self, key: LogKey, seg: SegId) {
        if let Some(log) = self.logs.get_mut(key).and_then(Option::as_mut) {
            log.pin(seg);
        }
    }

    pub(crate) fn unpin_all(&mut self, io: &mut Io, now: Now, pins: &[(LogKey, SegId)]) {
        for &(key, seg) in pins {
            if let Some(log) = self.logs.get_mut(key).and_then(Option::as_mut) {
                log.unpin(seg);
                if log.swap_held() {
                    // A cleaned segment's swap waits for its pins to go.
                    self.run(io, now, key, |log, now, ids, out| {
                        log.continue_cleaning(now, ids, out)
                    });
                }
            }
        }
        if !pins.is_empty() && !self.doomed.is_empty() {
            self.reap_doomed(io, now);
        }
    }

    /// Create a topic's partition logs (and their `partition.metadata`),
    /// with `overrides` of the broker's topic defaults (already validated),
    /// which are stored so a restart keeps them.
    pub(crate) fn create_topic(
        &mut self,
        io: &mut Io,
        now: Now,
        name: &str,
        partitions: i32,
        overrides: Overrides,
    ) -> uuid::Uuid {
        let config = self.topic_config(name, &overrides);
        if !overrides.is_empty() {
            self.overrides.insert(name.to_owned(), overrides);
            self.write_overrides(io);
        }
        let id = lifecycle::topic_id(name, now, io.next_io().0);
        let mut keys = Vec::new();
        for p in 0..partitions.max(1) {
            let dir = crate::layout::partition_dir(name, p);
            let key = self.logs.len();
            let log = io.emit_from(
                || Owner::Log(key),
                |ids, out| PartitionLog::create(dir.clone(), config.clone(), 0, ids, out),
            );
            self.logs.push(Some(log));
            write_partition_metadata(io, &dir, id);
            keys.push(Some(key));
        }
        let topic = Topic {
            id,
            partitions: keys,
        };
        self.topics.insert(name.to_owned(), topic);
        id
    }

    /// Hold a log for partition `partition` of `name` (topic id `id`) with
    /// the topic's `overrides`, creating it empty if this broker has none:
    /// the cluster's image made this broker one of its replicas. A topic
    /// held under another id is removed first when `replaces(old id)` says
    /// so (the image had it: it was deleted and created again while this
    /// broker was away); otherwise it is left alone and its id returned.
    pub(crate) fn host_partition(
        &mut self,
        io: &mut Io,
        now: Now,
        (name, id): (&str, uuid::Uuid),
        partition: i32,
        (overrides, replaces): (&Overrides, impl Fn(uuid::Uuid) -> bool),
    ) -> Result<(), uuid::Uuid> {
        if let Some(old) = self.topics.get(name).map(|t| t.id).filter(|&old| old != id) {
            if self.unknown_ids.remove(name) {
                tracing::info!(topic = name, %id, "the topic's id, lost in a crash, is the image's");
                self.adopt_id(io, name, id);
            } else if !replaces(old) {
                return Err(old);
            } else {
                tracing::info!(topic = name, "held under an older topic id; removing it");
                self.delete_topic(io, now, name);
            }
        }
        let Ok(p) = usize::try_from(partition) else {
            return Ok(());
        };
        if self.find(name, partition).is_some() {
            return Ok(());
        }
        if self.overrides_of(name) != *overrides {
            if overrides.is_empty() {
                self.overrides.remove(name);
            } else {
                self.overrides.insert(name.to_owned(), overrides.clone());
            }
            self.write_overrides(io);
        }
        let config = self.topic_config(name, overrides);
        let dir = crate::layout::partition_dir(name, partition);
        let key = self.logs.len();
        let log = io.emit_from(
            || Owner::Log(key),
            |ids, out| PartitionLog::create(dir.clone(), config, 0, ids, out),
        );
        self.logs.push(Some(log));
        write_partition_metadata(io, &dir, id);
        let topic = self.topics.entry(name.to_owned()).or_insert(Topic {
            id,
            partitions: Vec::new(),
        });
        if topic.partitions.len() <= p {
            topic.partitions.resize(p + 1, None);
        }
        topic.partitions[p] = Some(key);
        tracing::info!(topic = name, partition, "hosting a partition");
        Ok(())
    }

    /// Give `name` the id `id`, stored in each of its partitions.
    fn adopt_id(&mut self, io: &mut Io, name: &str, id: uuid::Uuid) {
        let Some(topic) = self.topics.get_mut(name) else {
            return;
        };
        topic.id = id;
        let dirs: Vec<String> = topic
            .hosted()
            .map(|(p, _)| crate::layout::partition_dir(name, p))
            .collect();
        for dir in dirs {
            write_partition_metadata(io, &dir, id);
        }
    }

    /// A recovered topic's id was made up: no partition had it stored.
    pub(crate) fn mark_unknown_id(&mut self, name: &str) {
        self.unknown_ids.insert(name.to_owned());
    }

    /// Grow a topic to `count` partitions (more than it has): the new
    /// logs start empty, with the topic's settings and id.
    pub(crate) fn add_partitions(&mut self, io: &mut Io, name: &str, count: i32) {
        let Some(topic) = self.topics.get(name) else {
            return;
        };
        let (id, have) = (topic.id, topic.partitions.len());
        let config = self.topic_config(name, &self.overrides_of(name));
        let mut keys = Vec::new();
        for p in have..usize::try_from(count).unwrap_or(0) {
            let dir = crate::layout::partition_dir(name, p as i32);
            let key = self.logs.len();
            let log = io.emit_from(
                || Owner::Log(key),
                |ids, out| PartitionLog::create(dir.clone(), config.clone(), 0, ids, out),
            );
            self.logs.push(Some(log));
            write_partition_metadata(io, &dir, id);
            keys.push(Some(key));
        }
        if let Some(topic) = self.topics.get_mut(name) {
            topic.partitions.extend(keys);
        }
    }

    /// Remove a topic now; its files go once no send pins them.
    pub(crate) fn delete_topic(&mut self, io: &mut Io, now: Now, name: &str) -> bool {
        let Some(topic) = self.topics.remove(name) else {
            return false;
        };
        if self.overrides.remove(name).is_some() {
            self.write_overrides(io);
        }
        self.doomed.extend(topic.keys());
        self.reap_doomed(io, now);
        // Producers waiting on the deleted logs get errors now.
        self.events.appended = true;
        true
    }

    /// The broker's topic defaults with a topic's overrides applied. The
    /// overrides were checked when the topic was created; one that no longer
    /// applies (a stored file from another version) is skipped and logged.
    pub(crate) fn topic_config(&self, topic: &str, overrides: &[(String, String)]) -> TopicConfig {
        let mut config = self.defaults.clone();
        for (key, value) in overrides {
            if let Err(e) = config.set(key, value) {
                tracing::warn!(topic, error = %e, "ignoring a stored topic setting");
            }
        }
        config
    }

    /// DeleteRecords on `key`: the new log start (see
    /// [`PartitionLog::delete_records_before`]); segments wholly below it
    /// go now.
    pub(crate) fn delete_records(
        &mut self,
        io: &mut Io,
        now: Now,
        key: LogKey,
        offset: u64,
    ) -> Option<Result<u64, crate::log::ReadError>> {
        let r = self.run(io, now, key, |log, now, ids, out| {
            let r = log.delete_records_before(offset, ids, out);
            if r.is_ok() {
                log.enforce_retention(now, ids, out);
            }
            r
        })?;
        if r.is_ok() {
            self.events.log_starts = true;
        }
        Some(r)
    }

    /// Replace a topic's own settings (already validated): stored, and in
    /// force on its partitions from now on.
    pub(crate) fn alter_topic(&mut self, io: &mut Io, name: &str, overrides: Overrides) {
        let config = self.topic_config(name, &overrides);
        if overrides.is_empty() {
            self.overrides.remove(name);
        } else {
            self.overrides.insert(name.to_owned(), overrides);
        }
        self.write_overrides(io);
        let keys = self.topics.get(name).map(Topic::keys);
        for key in keys.into_iter().flatten() {
            if let Some(log) = self.logs.get_mut(key).and_then(Option::as_mut) {
                log.set_config(config.clone());
            }
        }
    }

    /// The topic defaults a new topic's settings start from.
    pub(crate) fn defaults(&self) -> &TopicConfig {
        &self.defaults
    }

    /// The broker settings changed at run time.
    pub(crate) fn dynamic(&self) -> &Dynamic {
        &self.dynamic
    }

    /// The topic defaults if `level`'s dynamic settings were `settings`;
    /// the first setting that does not apply, as an error.
    pub(crate) fn try_dynamic(
        &self,
        level: Level,
        settings: &Overrides,
    ) -> Result<TopicConfig, crate::config::ConfigError> {
        let mut next = self.dynamic.clone();
        match level {
            Level::ClusterDefault => next.cluster_default = settings.clone(),
            Level::Broker => next.broker = settings.clone(),
        }
        crate::config::with_dynamic(&self.static_defaults, &next.all())
    }

    /// Replace `level`'s dynamic settings (already checked with
    /// [`Self::try_dynamic`]): stored, and in force on every topic that
    /// does not set them itself.
    pub(crate) fn set_dynamic(&mut self, io: &mut Io, level: Level, settings: Overrides) {
        match level {
            Level::ClusterDefault => self.dynamic.cluster_default = settings,
            Level::Broker => self.dynamic.broker = settings,
        }
        self.apply_dynamic();
        let mut stored = BTreeMap::new();
        stored.insert(
            "cluster-default".to_owned(),
            self.dynamic.cluster_default.clone(),
        );
        stored.insert("broker".to_owned(), self.dynamic.broker.clone());
        stored.retain(|_, o| !o.is_empty());
        io.write_file(
            FileJob::Metadata,
            lifecycle::BROKER_CONFIGS,
            lifecycle::encode_topic_configs(&stored),
        );
        let topics: Vec<String> = self.topics.keys().cloned().collect();
        for name in topics {
            let config = self.topic_config(&name, &self.overrides_of(&name));
            let keys = self.topics.get(&name).map(Topic::keys);
            for key in keys.into_iter().flatten() {
                if let Some(log) = self.logs.get_mut(key).and_then(Option::as_mut) {
                    log.set_config(config.clone());
                }
            }
        }
    }

    /// The stored dynamic broker settings, read at startup before any log.
    pub(crate) fn load_dynamic(&mut self, mut stored: BTreeMap<String, Overrides>) {
        self.dynamic = Dynamic {
            cluster_default: stored.remove("cluster-default").unwrap_or_default(),
            broker: stored.remove("broker").unwrap_or_default(),
        };
        self.apply_dynamic();
    }

    fn apply_dynamic(&mut self) {
        match crate::config::with_dynamic(&self.static_defaults, &self.dynamic.all()) {
            Ok(d) => self.defaults = d,
            Err(e) => tracing::warn!(error = %e, "ignoring stored dynamic broker settings"),
        }
    }

    fn reap_doomed(&mut self, io: &mut Io, now: Now) {
        let doomed = std::mem::take(&mut self.doomed);
        for key in doomed {
            let gone = self
                .run(io, now, key, |log, _, ids, out| log.delete(ids, out))
                .unwrap_or(true);
            if !gone {
                self.doomed.push(key);
            }
        }
    }

    /// Rewrite the topic settings file.
    fn write_overrides(&self, io: &mut Io) {
        io.write_file(
            FileJob::Metadata,
            lifecycle::TOPIC_CONFIGS,
            lifecycle::encode_topic_configs(&self.overrides),
        );
    }

    // ---- recovery --------------------------------------------------------

    /// The stored topic settings, read at startup.
    pub(crate) fn load_overrides(&mut self, overrides: BTreeMap<String, Overrides>) {
        self.overrides = overrides;
    }

    pub(crate) fn overrides_of(&self, topic: &str) -> Overrides {
        self.overrides.get(topic).cloned().unwrap_or_default()
    }

    /// Add a recovered log; its key.
    pub(crate) fn push_recovered(&mut self, log: PartitionLog) -> LogKey {
        self.logs.push(Some(log));
        self.logs.len() - 1
    }

    /// Add a recovered topic whose logs were pushed.
    pub(crate) fn insert_topic(&mut self, name: String, topic: Topic) {
        self.topics.insert(name, topic);
    }
}

/// Queue a write of `dir`'s `partition.metadata` with the topic's id.
pub(crate) fn write_partition_metadata(io: &mut Io, dir: &str, id: uuid::Uuid) {
    io.write_file(
        FileJob::Metadata,
        &format!("{dir}/{}", lifecycle::PARTITION_METADATA),
        lifecycle::encode_partition_metadata(id),
    );
}
