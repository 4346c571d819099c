//! Broker and topic configuration, under Kafka's names.
//!
//! [`Config::set`] takes one `key=value` the way `server.properties` spells it;
//! the server feeds it the file, then the command line's overrides. Topic
//! settings given at creation (`CreateTopics` configs) override the broker's
//! defaults through [`TopicConfig::set`].

use std::fmt;

use crate::log::codec::{Codec, Levels};

/// A configuration key or value the broker cannot accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key as given.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration `{}`: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// How a record's timestamp is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamp is kept.
    CreateTime,
    /// The broker stamps the append time.
    LogAppendTime,
}

/// What happens to old data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Old segments are deleted by time and size.
    Delete,
    /// Only the latest record per key is kept (compaction).
    Compact,
    /// Both.
    CompactDelete,
}

/// Per-topic settings, defaulted from the broker's `log.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// `segment.bytes`: roll the active segment past this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment when its first record is older.
    pub segment_ms: i64,
    /// `segment.index.bytes`: the most offset-index bytes a segment has; the
    /// active segment rolls when full.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: an index entry every this many log bytes.
    pub index_interval_bytes: u64,
    /// `retention.ms` (-1: keep forever).
    pub retention_ms: i64,
    /// `retention.bytes` per partition (-1: no limit).
    pub retention_bytes: i64,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: u64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `flush.messages`: fsync after this many messages (`i64::MAX`: leave it
    /// to the OS).
    pub flush_messages: i64,
    /// `flush.ms`: fsync when data is this old (`i64::MAX`: leave it to the OS).
    pub flush_ms: i64,
    /// `compression.type`: the codec batches are stored with; `None` is
    /// `producer` (kept as the producer wrote them).
    pub compression: Option<Codec>,
    /// `compression.gzip.level`, `compression.lz4.level`,
    /// `compression.zstd.level`: levels used when the broker compresses.
    pub compression_levels: Levels,
    /// `min.insync.replicas`: replicas in sync an acks=-1 produce needs.
    pub min_insync_replicas: i32,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime
    /// timestamp may be.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a CreateTime
    /// timestamp may be.
    pub timestamp_after_max_ms: i64,
    /// `delete.retention.ms`: how long a compacted topic keeps tombstones.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: records older than this make their log
    /// eligible for cleaning whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: the share of a log not yet cleaned at
    /// which it is cleaned.
    pub min_cleanable_dirty_ratio: Ratio,
    /// Settings Kafka defines that change nothing on this broker, kept as
    /// given so they read back (see [`TOPIC_SETTINGS`]).
    pub inert: Vec<(&'static str, String)>,
}

/// A ratio between 0 and 1 (`min.cleanable.dirty.ratio`), compared by its
/// bits so configs stay `Eq`.
#[derive(Debug, Clone, Copy)]
pub struct Ratio(pub f64);

impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Ratio {}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As Java prints a double: 0.5, 1.0.
        if self.0.fract() == 0.0 {
            write!(f, "{:.1}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3_600_000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 3_600_000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            cleanup_policy: CleanupPolicy::Delete,
            timestamp_type: TimestampType::CreateTime,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            compression: None,
            compression_levels: Levels::default(),
            min_insync_replicas: 1,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: Ratio(0.5),
            inert: Vec::new(),
        }
    }
}

impl TopicConfig {
    /// Apply one topic-level setting (`CreateTopics` config names).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "segment.bytes" => self.segment_bytes = parse_range(key, value, 14, i32::MAX as u64)?,
            "segment.ms" => self.segment_ms = parse_range(key, value, 1, i64::MAX)?,
            "segment.index.bytes" => {
                self.segment_index_bytes = parse_range(key, value, 8, i32::MAX as u64)?
            }
            "index.interval.bytes" => {
                self.index_interval_bytes = parse_range(key, value, 0, i32::MAX as u64)?
            }
            "retention.ms" => self.retention_ms = parse_range(key, value, -1, i64::MAX)?,
            "retention.bytes" => self.retention_bytes = parse_range(key, value, -1, i64::MAX)?,
            "max.message.bytes" => {
                self.max_message_bytes = parse_range(key, value, 0, i32::MAX as u64)?
            }
            "flush.messages" => self.flush_messages = parse_range(key, value, 1, i64::MAX)?,
            "flush.ms" => self.flush_ms = parse_range(key, value, 0, i64::MAX)?,
            "cleanup.policy" => {
                self.cleanup_policy = match value.replace(' ', "").as_str() {
                    "delete" => CleanupPolicy::Delete,
                    "compact" => CleanupPolicy::Compact,
                    "compact,delete" | "delete,compact" => CleanupPolicy::CompactDelete,
                    _ => return Err(bad(key, "expected delete, compact or compact,delete")),
                }
            }
            "message.timestamp.type" => {
                self.timestamp_type = match value {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(bad(key, "expected CreateTime or LogAppendTime")),
                }
            }
            "compression.type" => {
                self.compression = match value.trim() {
                    "producer" => None,
                    "uncompressed" => Some(Codec::None),
                    "gzip" => Some(Codec::Gzip),
                    "snappy" => Some(Codec::Snappy),
                    "lz4" => Some(Codec::Lz4),
                    "zstd" => Some(Codec::Zstd),
                    _ => {
                        return Err(bad(
                            key,
                            "expected producer, uncompressed, gzip, snappy, lz4 or zstd",
                        ));
                    }
                }
            }
            "compression.gzip.level" => {
                let level = parse_range(key, value, -1, 9)?;
                if level == 0 {
                    return Err(bad(key, "expected -1 or 1..=9"));
                }
                self.compression_levels.gzip = level;
            }
            "compression.lz4.level" => {
                self.compression_levels.lz4 = parse_range(key, value, 1, 17)?
            }
            "compression.zstd.level" => {
                self.compression_levels.zstd = parse_range(key, value, -131_072, 22)?
            }
            "min.insync.replicas" => {
                self.min_insync_replicas = parse_range(key, value, 1, i32::MAX)?
            }
            "message.timestamp.before.max.ms" => {
                self.timestamp_before_max_ms = parse_range(key, value, 0, i64::MAX)?
            }
            "message.timestamp.after.max.ms" => {
                self.timestamp_after_max_ms = parse_range(key, value, 0, i64::MAX)?
            }
            "delete.retention.ms" => {
                self.delete_retention_ms = parse_range(key, value, 0, i64::MAX)?
            }
            "min.compaction.lag.ms" => {
                self.min_compaction_lag_ms = parse_range(key, value, 0, i64::MAX)?
            }
            "max.compaction.lag.ms" => {
                self.max_compaction_lag_ms = parse_range(key, value, 1, i64::MAX)?
            }
            "min.cleanable.dirty.ratio" => {
                let ratio: f64 = parse_range(key, value, 0.0, 1.0)?;
                if ratio.is_nan() {
                    return Err(bad(key, "expected a number between 0 and 1"));
                }
                self.min_cleanable_dirty_ratio = Ratio(ratio)
            }
            _ => {
                let setting = TOPIC_SETTINGS
                    .iter()
                    .find(|s| s.key == key && s.inert)
                    .ok_or_else(|| bad(key, "unknown topic configuration"))?;
                let value = check_inert(setting, value)?;
                self.inert.retain(|(k, _)| *k != setting.key);
                if Some(value.as_str()) != setting.default {
                    self.inert.push((setting.key, value));
                }
            }
        }
        Ok(())
    }
}

/// Check a value for a setting that changes nothing here, by its type.
fn check_inert(s: &TopicSetting, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    match s.kind {
        ConfigType::Boolean => {
            let b = parse_bool(s.key, v)?;
            if s.key == "remote.storage.enable" && b {
                return Err(bad(
                    s.key,
                    "tiered storage is not supported by this broker; topics cannot use remote log storage",
                ));
            }
            Ok(b.to_string())
        }
        ConfigType::Long => {
            let min = if s.key.starts_with("local.retention") {
                -2
            } else {
                0
            };
            Ok(parse_range::<i64>(s.key, v, min, i64::MAX)?.to_string())
        }
        ConfigType::List => {
            // `[partition]:[broker],...` or `*` (the throttled-replica lists).
            let ok = v.is_empty()
                || v == "*"
                || v.split(',').all(|e| {
                    e.trim()
                        .split_once(':')
                        .is_some_and(|(p, b)| p.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
                });
            if !ok {
                return Err(bad(
                    s.key,
                    "expected `*` or [partition]:[broker] entries separated by commas",
                ));
            }
            Ok(v.to_owned())
        }
        _ => Ok(v.to_owned()),
    }
}

/// How a setting's value reads (Kafka's `ConfigDef.Type`, as DescribeConfigs
/// v3+ reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true` or `false`.
    Boolean = 1,
    /// Free text.
    String = 2,
    /// A 32-bit integer.
    Int = 3,
    /// A 64-bit integer.
    Long = 5,
    /// A 64-bit float.
    Double = 6,
    /// A comma-separated list.
    List = 7,
}

/// One topic setting Kafka defines: its name, the broker setting that gives
/// its default, how it reads, and what it does here.
#[derive(Debug, Clone, Copy)]
pub struct TopicSetting {
    /// The topic-level name (`segment.bytes`).
    pub key: &'static str,
    /// The broker-level name of its default (`log.segment.bytes`); empty
    /// when Kafka has none.
    pub broker_key: &'static str,
    /// How its value reads.
    pub kind: ConfigType,
    /// What it does.
    pub doc: &'static str,
    /// Accepted, checked and kept, but without effect on this broker (the
    /// doc says why).
    pub inert: bool,
    /// For an inert setting, Kafka's default.
    pub default: Option<&'static str>,
}

const fn setting(
    key: &'static str,
    broker_key: &'static str,
    kind: ConfigType,
    doc: &'static str,
) -> TopicSetting {
    TopicSetting {
        key,
        broker_key,
        kind,
        doc,
        inert: false,
        default: None,
    }
}

const fn inert(
    key: &'static str,
    broker_key: &'static str,
    kind: ConfigType,
    default: &'static str,
    doc: &'static str,
) -> TopicSetting {
    TopicSetting {
        key,
        broker_key,
        kind,
        doc,
        inert: true,
        default: Some(default),
    }
}

/// Every topic setting Kafka 4 defines, in Kafka's names: honoured, or
/// (`inert`) accepted and kept with no effect here, never refused as
/// unknown.
pub const TOPIC_SETTINGS: &[TopicSetting] = &[
    setting(
        "cleanup.policy",
        "log.cleanup.policy",
        ConfigType::List,
        "delete: old segments go by retention.ms and retention.bytes; compact: the log cleaner keeps the latest record per key (keyless records are refused); both may be set.",
    ),
    setting(
        "compression.type",
        "compression.type",
        ConfigType::String,
        "producer keeps batches as the producer compressed them; uncompressed, gzip, snappy, lz4 or zstd make the broker rewrite batches in another codec with that codec.",
    ),
    setting(
        "compression.gzip.level",
        "compression.gzip.level",
        ConfigType::Int,
        "The gzip level the broker compresses with (-1: the codec's default).",
    ),
    setting(
        "compression.lz4.level",
        "compression.lz4.level",
        ConfigType::Int,
        "The lz4 level the broker compresses with.",
    ),
    setting(
        "compression.zstd.level",
        "compression.zstd.level",
        ConfigType::Int,
        "The zstd level the broker compresses with.",
    ),
    setting(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        ConfigType::Long,
        "How long the cleaner keeps a tombstone (a null value) after its batch was written.",
    ),
    inert(
        "file.delete.delay.ms",
        "log.segment.delete.delay.ms",
        ConfigType::Long,
        "60000",
        "No effect: a segment's files go as soon as no read or sync is using them.",
    ),
    inert(
        "follower.replication.throttled.replicas",
        "",
        ConfigType::List,
        "",
        "No effect: one broker has no followers to throttle.",
    ),
    inert(
        "leader.replication.throttled.replicas",
        "",
        ConfigType::List,
        "",
        "No effect: one broker has no followers to throttle.",
    ),
    inert(
        "local.retention.bytes",
        "log.local.retention.bytes",
        ConfigType::Long,
        "-2",
        "No effect: there is no tiered storage; retention.bytes governs.",
    ),
    inert(
        "local.retention.ms",
        "log.local.retention.ms",
        ConfigType::Long,
        "-2",
        "No effect: there is no tiered storage; retention.ms governs.",
    ),
    setting(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        ConfigType::Long,
        "A dirty record older than this makes a compacted log due for cleaning, whatever its dirty ratio.",
    ),
    setting(
        "flush.messages",
        "log.flush.interval.messages",
        ConfigType::Long,
        "Fsync the log after this many messages; with 1 an acks=-1 produce is answered once it is on disk.",
    ),
    setting(
        "flush.ms",
        "log.flush.interval.ms",
        ConfigType::Long,
        "Fsync the log when unsynced data is this old.",
    ),
    setting(
        "index.interval.bytes",
        "log.index.interval.bytes",
        ConfigType::Int,
        "An offset and time index entry every this many log bytes.",
    ),
    setting(
        "max.message.bytes",
        "message.max.bytes",
        ConfigType::Int,
        "The largest record batch the topic accepts.",
    ),
    setting(
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        ConfigType::Long,
        "A CreateTime record more than this far ahead of the broker's clock is refused (INVALID_TIMESTAMP).",
    ),
    setting(
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        ConfigType::Long,
        "A CreateTime record more than this far behind the broker's clock is refused (INVALID_TIMESTAMP).",
    ),
    setting(
        "message.timestamp.type",
        "log.message.timestamp.type",
        ConfigType::String,
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's time.",
    ),
    setting(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        ConfigType::Double,
        "The share of a compacted log not yet cleaned at which the cleaner cleans it.",
    ),
    setting(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        ConfigType::Long,
        "A segment holding a record younger than this is not cleaned yet.",
    ),
    setting(
        "min.insync.replicas",
        "min.insync.replicas",
        ConfigType::Int,
        "An acks=-1 produce needs this many replicas in sync; this broker is the only replica, so above 1 such produces get NOT_ENOUGH_REPLICAS.",
    ),
    inert(
        "preallocate",
        "log.preallocate",
        ConfigType::Boolean,
        "false",
        "No effect: segment files grow as they are written.",
    ),
    inert(
        "remote.log.copy.disable",
        "",
        ConfigType::Boolean,
        "false",
        "No effect: there is no tiered storage.",
    ),
    inert(
        "remote.log.delete.on.disable",
        "",
        ConfigType::Boolean,
        "false",
        "No effect: there is no tiered storage.",
    ),
    inert(
        "remote.storage.enable",
        "",
        ConfigType::Boolean,
        "false",
        "Tiered storage is not supported: only false is accepted.",
    ),
    setting(
        "retention.bytes",
        "log.retention.bytes",
        ConfigType::Long,
        "The most bytes a partition keeps before its oldest segments go (-1: no limit).",
    ),
    setting(
        "retention.ms",
        "log.retention.ms",
        ConfigType::Long,
        "How long a segment is kept after its newest record (-1: forever).",
    ),
    setting(
        "segment.bytes",
        "log.segment.bytes",
        ConfigType::Int,
        "The active segment rolls past this size.",
    ),
    setting(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        ConfigType::Int,
        "The largest offset index of a segment; a full index rolls the segment.",
    ),
    inert(
        "segment.jitter.ms",
        "log.roll.jitter.ms",
        ConfigType::Long,
        "0",
        "No effect: segments roll at segment.ms exactly.",
    ),
    setting(
        "segment.ms",
        "log.roll.ms",
        ConfigType::Long,
        "The active segment rolls when its first record is this old.",
    ),
    inert(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        ConfigType::Boolean,
        "false",
        "No effect: one broker is the only replica, so never out of sync.",
    ),
];

impl TopicConfig {
    /// The value of the topic setting `key`, as Kafka spells it; `None`
    /// for a key Conveyor does not honour.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "cleanup.policy" => match self.cleanup_policy {
                CleanupPolicy::Delete => "delete",
                CleanupPolicy::Compact => "compact",
                CleanupPolicy::CompactDelete => "compact,delete",
            }
            .to_owned(),
            "message.timestamp.type" => match self.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            }
            .to_owned(),
            "compression.type" => self.compression.map_or("producer", Codec::name).to_owned(),
            "compression.gzip.level" => self.compression_levels.gzip.to_string(),
            "compression.lz4.level" => self.compression_levels.lz4.to_string(),
            "compression.zstd.level" => self.compression_levels.zstd.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            _ => {
                let s = TOPIC_SETTINGS.iter().find(|s| s.key == key && s.inert)?;
                let given = self.inert.iter().find(|(k, _)| *k == key);
                given.map_or(s.default?, |(_, v)| v.as_str()).to_owned()
            }
        })
    }
}

/// Broker settings the core needs. Listener and data directory settings are
/// the server's; the address clients are told to use is `advertised_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `node.id` (alias `broker.id`): this broker's id in Metadata.
    pub node_id: i32,
    /// The host clients are told to connect to.
    pub advertised_host: String,
    /// The port clients are told to connect to.
    pub advertised_port: u16,
    /// The data directory's absolute path, as DescribeLogDirs names it.
    /// `conveyor-io-std` fills it in from the directory it opens (the
    /// server's `log.dirs` / `--data-dir`); empty when the embedder left it.
    pub log_dir: String,
    /// `num.partitions`: partitions of an auto-created topic.
    pub num_partitions: i32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `socket.request.max.bytes`: the largest request frame; a larger one
    /// closes the connection.
    pub socket_request_max_bytes: u32,
    /// `queued.max.requests` per connection: requests read but not yet
    /// answered; beyond it the core stops cutting frames off the buffer.
    pub max_inflight_requests: usize,
    /// `queued.max.request.bytes`: bytes of requests read and not yet
    /// answered, across all connections; beyond it the broker reads no more
    /// until answers leave (TCP pushes back on the clients). This is what
    /// keeps memory flat under a producer that pipelines without limit.
    pub queued_max_request_bytes: u64,
    /// `max.connections`: connections served at once; the broker closes
    /// more as soon as they open.
    pub max_connections: usize,
    /// `controller.quorum.voters`: `id@host:port` of every voter, this
    /// broker (`node.id`) among them. The broker keeps a connection open to
    /// each other voter ([`crate::Command::Connect`]); empty, it runs alone.
    pub quorum_voters: Vec<(i32, String)>,
    /// `reconnect.backoff.ms`: the wait before the first reconnect to a
    /// peer, doubled after each failure.
    pub reconnect_backoff_ms: u64,
    /// `reconnect.backoff.max.ms`: the longest wait between reconnects.
    pub reconnect_backoff_max_ms: u64,
    /// `log.flush.threads`: how many fsyncs the driver runs at once (its
    /// fsync workers). The core keeps one `Sync` in flight per segment;
    /// syncs of different partitions can run side by side.
    pub flush_threads: usize,
    /// `request.timeout.ms`: how long a request to a peer may go unanswered
    /// before its connection is closed and opened again.
    pub request_timeout_ms: u64,
    /// `fetch.max.wait.cap.ms`: the longest a fetch may long-poll whatever
    /// the client asks.
    pub fetch_max_wait_cap_ms: i64,
    /// `log.retention.check.interval.ms`: how often retention runs.
    pub retention_check_interval_ms: u64,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`.
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.segment.bytes`: `__consumer_offsets` segments roll
    /// at this size, so the cleaner can compact all but the newest.
    pub offsets_topic_segment_bytes: u64,
    /// `offset.metadata.max.bytes`: the longest metadata string an offset
    /// commit may carry.
    pub offset_metadata_max_bytes: usize,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long a new group's first
    /// rebalance waits for more members.
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.max.size`: members per group.
    pub group_max_size: usize,
    /// `offsets.retention.minutes`: committed offsets of a group with no
    /// members are dropped this long after they were committed.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`: how often that is checked.
    pub offsets_retention_check_interval_ms: u64,
    /// `producer.id.expiration.ms`: an idempotent producer's state in a
    /// partition is dropped this long after its latest batch's timestamp
    /// (checked with retention).
    pub producer_id_expiration_ms: i64,
    /// `log.decompression.max.bytes`: the most bytes one batch's records
    /// may inflate to where the broker must look inside a compressed batch
    /// (a compacted topic's key check, a topic's `compression.type`); a
    /// batch past it is refused with CORRUPT_MESSAGE.
    pub decompression_max_bytes: usize,
    /// `log.cleaner.enable`: compacted topics are cleaned.
    pub cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: how often the cleaner looks for logs due.
    pub cleaner_backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: the most bytes one pass's key map
    /// holds; a log with more keys is cleaned over several passes.
    pub cleaner_dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.max.bytes.per.second`: the most bytes a second the
    /// cleaner reads (`u64::MAX`: no limit, Kafka's default).
    pub cleaner_io_max_bytes_per_second: u64,
    /// The defaults for every topic (`log.segment.bytes`, `log.retention.ms`, …).
    pub topic_defaults: TopicConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: 0,
            advertised_host: "127.0.0.1".to_owned(),
            advertised_port: 9092,
            log_dir: String::new(),
            num_partitions: 1,
            auto_create_topics: true,
            socket_request_max_bytes: 104_857_600,
            max_inflight_requests: 500,
            max_connections: 10_000,
            quorum_voters: Vec::new(),
            reconnect_backoff_ms: 50,
            reconnect_backoff_max_ms: 1_000,
            request_timeout_ms: 30_000,
            flush_threads: 4,
            queued_max_request_bytes: 32 << 20,
            fetch_max_wait_cap_ms: 30_000,
            retention_check_interval_ms: 300_000,
            offsets_topic_partitions: 50,
            offsets_topic_segment_bytes: 104_857_600,
            offset_metadata_max_bytes: 4096,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            group_max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offsets_retention_check_interval_ms: 600_000,
            producer_id_expiration_ms: 86_400_000,
            decompression_max_bytes: 128 << 20,
            cleaner_enable: true,
            cleaner_backoff_ms: 15_000,
            cleaner_dedupe_buffer_bytes: 128 << 20,
            cleaner_io_max_bytes_per_second: u64::MAX,
            topic_defaults: TopicConfig::default(),
        }
    }
}

impl Config {
    /// Apply one broker setting, as `server.properties` spells it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let t = &mut self.topic_defaults;
        match key {
            "node.id" | "broker.id" => self.node_id = parse_range(key, value, 0, i32::MAX)?,
            "num.partitions" => self.num_partitions = parse_range(key, value, 1, 1_000_000)?,
            "auto.create.topics.enable" => self.auto_create_topics = parse_bool(key, value)?,
            "socket.request.max.bytes" => {
                self.socket_request_max_bytes = parse_range(key, value, 64, i32::MAX as u32)?
            }
            "queued.max.requests" => {
                self.max_inflight_requests = parse_range(key, value, 1, 1_000_000)?
            }
            "queued.max.request.bytes" => {
                let v: i64 = parse_range(key, value, -1, i64::MAX)?;
                self.queued_max_request_bytes = u64::try_from(v).unwrap_or(u64::MAX);
            }
            "max.connections" => self.max_connections = parse_range(key, value, 1, 1_000_000)?,
            "controller.quorum.voters" => self.quorum_voters = parse_voters(key, value)?,
            "reconnect.backoff.ms" => {
                self.reconnect_backoff_ms = parse_range(key, value, 1, 3_600_000)?
            }
            "reconnect.backoff.max.ms" => {
                self.reconnect_backoff_max_ms = parse_range(key, value, 1, 3_600_000)?
            }
            "log.flush.threads" => self.flush_threads = parse_range(key, value, 1, 64)?,
            "request.timeout.ms" => {
                self.request_timeout_ms = parse_range(key, value, 1, 3_600_000)?
            }
            "log.retention.check.interval.ms" => {
                self.retention_check_interval_ms = parse_range(key, value, 1, u64::MAX / 2)?
            }
            "offsets.topic.num.partitions" => {
                self.offsets_topic_partitions = parse_range(key, value, 1, 1000)?
            }
            "offsets.topic.segment.bytes" => {
                self.offsets_topic_segment_bytes = parse_range(key, value, 14, i32::MAX as u64)?
            }
            "offset.metadata.max.bytes" => {
                self.offset_metadata_max_bytes = parse_range(key, value, 0, 1 << 20)?
            }
            "group.min.session.timeout.ms" => {
                self.group_min_session_timeout_ms = parse_range(key, value, 0, i32::MAX)?
            }
            "group.max.session.timeout.ms" => {
                self.group_max_session_timeout_ms = parse_range(key, value, 0, i32::MAX)?
            }
            "group.initial.rebalance.delay.ms" => {
                self.group_initial_rebalance_delay_ms = parse_range(key, value, 0, i32::MAX)?
            }
            "group.max.size" => {
                self.group_max_size = parse_range(key, value, 1, i32::MAX as usize)?
            }
            "offsets.retention.minutes" => {
                self.offsets_retention_ms =
                    parse_range::<i64>(key, value, 1, i64::MAX / 60_000)? * 60_000
            }
            "offsets.retention.check.interval.ms" => {
                self.offsets_retention_check_interval_ms = parse_range(key, value, 1, u64::MAX / 2)?
            }
            "producer.id.expiration.ms" => {
                self.producer_id_expiration_ms = parse_range(key, value, 1, i64::MAX)?
            }
            "log.cleaner.enable" => self.cleaner_enable = parse_bool(key, value)?,
            "log.cleaner.backoff.ms" => {
                self.cleaner_backoff_ms = parse_range(key, value, 1, u64::MAX / 2)?
            }
            "log.cleaner.io.max.bytes.per.second" => {
                let rate: f64 = parse_range(key, value, 1.0, f64::MAX)?;
                // Kafka's default is Double.MAX_VALUE: no limit.
                self.cleaner_io_max_bytes_per_second = if rate >= u64::MAX as f64 {
                    u64::MAX
                } else {
                    rate as u64
                };
            }
            "log.cleaner.dedupe.buffer.size" => {
                self.cleaner_dedupe_buffer_bytes = parse_range(key, value, 1 << 10, 1 << 40)?
            }
            "log.decompression.max.bytes" => {
                self.decompression_max_bytes = parse_range(key, value, 1024, 1 << 34)?
            }
            "fetch.max.wait.cap.ms" => {
                self.fetch_max_wait_cap_ms = parse_range(key, value, 0, 3_600_000)?
            }
            "log.roll.hours" => {
                t.segment_ms = parse_range::<i64>(key, value, 1, i64::MAX / 3_600_000)? * 3_600_000
            }
            "log.retention.minutes" => {
                t.retention_ms = parse_range::<i64>(key, value, -1, i64::MAX / 60_000)?
                    .saturating_mul(60_000)
                    .max(-1)
            }
            "log.retention.hours" => {
                t.retention_ms = parse_range::<i64>(key, value, -1, i64::MAX / 3_600_000)?
                    .saturating_mul(3_600_000)
                    .max(-1)
            }
            // A single broker has one replica of everything; these are accepted
            // so a stock single-node server.properties works, and must say 1.
            "default.replication.factor"
            | "offsets.topic.replication.factor"
            | "transaction.state.log.replication.factor"
            | "transaction.state.log.min.isr" => {
                parse_range::<i32>(key, value, 1, 1)?;
            }
            _ => {
                // The broker-level default of a topic setting.
                let s = TOPIC_SETTINGS
                    .iter()
                    .find(|s| !s.broker_key.is_empty() && s.broker_key == key)
                    .ok_or_else(|| bad(key, "unknown configuration key"))?;
                t.set(s.key, value).map_err(|e| rename(e, key))?
            }
        }
        Ok(())
    }
}

/// Broker settings that AlterConfigs may change at run time, as Kafka
/// allows: the broker-level defaults of topic settings (and the hours and
/// minutes spellings of two of them). Their type, or `None` for a setting
/// that is read once at startup.
pub fn dynamic_broker_setting(key: &str) -> Option<ConfigType> {
    match key {
        "log.retention.minutes" | "log.retention.hours" | "log.roll.hours" => {
            Some(ConfigType::Long)
        }
        _ => TOPIC_SETTINGS
            .iter()
            .find(|s| !s.broker_key.is_empty() && s.broker_key == key)
            .map(|s| s.kind),
    }
}

/// The topic defaults `base` with dynamic broker settings applied in order
/// (each a key [`dynamic_broker_setting`] accepts).
pub fn with_dynamic(
    base: &TopicConfig,
    settings: &[(String, String)],
) -> Result<TopicConfig, ConfigError> {
    let mut c = Config {
        topic_defaults: base.clone(),
        ..Config::default()
    };
    for (key, value) in settings {
        if dynamic_broker_setting(key).is_none() {
            return Err(bad(
                key,
                "not a broker setting that can change at run time: set it in server.properties",
            ));
        }
        c.set(key, value)?;
    }
    Ok(c.topic_defaults)
}

fn rename(mut e: ConfigError, key: &str) -> ConfigError {
    key.clone_into(&mut e.key);
    e
}

fn bad(key: &str, reason: &str) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

/// `1@host:9093,2@host:9094`: node ids (unique) and their addresses.
fn parse_voters(key: &str, value: &str) -> Result<Vec<(i32, String)>, ConfigError> {
    let mut voters: Vec<(i32, String)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let shape = "expected id@host:port entries separated by commas";
        let (id, addr) = entry.split_once('@').ok_or_else(|| bad(key, shape))?;
        let id: i32 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| bad(key, &format!("`{id}` is not a node id")))?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad(key, shape))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad(key, &format!("`{addr}` is not host:port")));
        }
        if voters.iter().any(|(v, _)| *v == id) {
            return Err(bad(key, &format!("node {id} is listed twice")));
        }
        voters.push((id, addr.to_owned()));
    }
    Ok(voters)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        v => Err(bad(key, &format!("`{v}` is not true or false"))),
    }
}

fn parse_range<T>(key: &str, value: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let v: T = value
        .trim()
        .parse()
        .map_err(|_| bad(key, &format!("`{value}` is not a number")))?;
    if v < min || v > max {
        return Err(bad(key, &format!("{v} is outside {min}..={max}")));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_keys_set_topic_defaults() {
        let mut c = Config::default();
        c.set("log.segment.bytes", "1048576").unwrap();
        c.set("log.retention.hours", "1").unwrap();
        assert_eq!(c.topic_defaults.segment_bytes, 1_048_576);
        assert_eq!(c.topic_defaults.retention_ms, 3_600_000);
    }

    #[test]
    fn every_topic_setting_is_known_and_documented() {
        let readme = include_str!("../../README.md");
        let defaults = TopicConfig::default();
        for s in TOPIC_SETTINGS {
            let short = s.key.rsplit_once('.').map_or(s.key, |(_, last)| last);
            assert!(
                readme.contains(&format!("`{}`", s.key)) || readme.contains(&format!(".{short}`")),
                "README's topic settings table lacks {}",
                s.key
            );
            let value = defaults.get(s.key).expect("every setting reads back");
            let mut t = TopicConfig::default();
            t.set(s.key, &value).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(t, defaults, "{} set to its default changes nothing", s.key);
            if !s.broker_key.is_empty() {
                let mut c = Config::default();
                c.set(s.broker_key, &value)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = Config::default();
        let e = c.set("log.segment.bytes", "lots").unwrap_err();
        assert_eq!(e.key, "log.segment.bytes");
        let e = c.set("no.such.key", "1").unwrap_err();
        assert!(e.to_string().contains("unknown configuration key"), "{e}");
        assert!(c.set("default.replication.factor", "3").is_err());
    }
}
