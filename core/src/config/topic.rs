//! Topic settings: what each one Kafka defines does here
//! ([`TOPIC_SETTINGS`]), a topic's values ([`TopicConfig`]), and how they are
//! set and read back under Kafka's names.

use std::fmt;

use super::{ConfigError, bad, parse_bool, parse_range};
use crate::log::codec::{Codec, Levels};

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
    /// `unclean.leader.election.enable`: when no in-sync replica is left
    /// to lead, an out-of-sync one may (losing what it lacks).
    pub unclean_leader_election: bool,
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
            unclean_leader_election: false,
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
            "unclean.leader.election.enable" => {
                self.unclean_leader_election = parse_bool(key, value)?
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
    setting(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        ConfigType::Boolean,
        "When every in-sync replica is fenced, let an out-of-sync one lead, losing the records \
         it lacks.",
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
            "unclean.leader.election.enable" => self.unclean_leader_election.to_string(),
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
