//! Broker and topic configuration, under Kafka's names.
//!
//! [`Config::set`] takes one `key=value` the way `server.properties` spells it;
//! the server feeds it the file, then the command line's overrides. Topic
//! settings given at creation (`CreateTopics` configs) override the broker's
//! defaults through [`TopicConfig::set`].

use std::fmt;

mod topic;

pub use topic::{
    CleanupPolicy, ConfigType, Ratio, TOPIC_SETTINGS, TimestampType, TopicConfig, TopicSetting,
};

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
    /// `controller.quorum.election.timeout.ms`: how long a voter hears
    /// nothing from a leader before it stands for election (Kafka's
    /// default, 1 s). Each voter waits between one and two of these,
    /// drawn afresh for every election.
    pub quorum_election_timeout_ms: u64,
    /// `metadata.max.idle.interval.ms`: the active controller appends a
    /// NoOp record when the metadata log has been idle this long (Kafka's
    /// default, 500 ms; 0 turns it off).
    pub metadata_max_idle_interval_ms: u64,
    /// `metadata.log.snapshot.interval.records` (Conveyor's; Kafka counts
    /// bytes instead): the metadata log is cut below the applied index
    /// once it holds this many applied records, keeping a quarter of them;
    /// a voter further behind gets a snapshot of the image.
    pub metadata_snapshot_interval_records: u64,
    /// `replica.lag.time.max.ms`: how long a leader keeps a follower that
    /// has not caught up in the ISR (Kafka's default, 30 s).
    pub replica_lag_time_max_ms: u64,
    /// `broker.session.timeout.ms`: how long the active controller goes
    /// without a message from a broker before it fences it (Kafka's
    /// default, 9 s): out of every ISR, its partitions led by others.
    pub broker_session_timeout_ms: u64,
    /// `controller.quorum.tick.ms` (Conveyor's): the quorum's clock step.
    /// The leader sends heartbeats every two ticks; the election timeout
    /// is counted in ticks, so it must be at least three.
    pub quorum_tick_ms: u64,
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
    /// `default.replication.factor`: replicas of a topic created without
    /// one (in a cluster; alone, only 1 can be made).
    pub default_replication_factor: i16,
    /// `replica.fetch.max.bytes`: the most bytes a follower asks of one
    /// partition per fetch (the first batch always comes whole).
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: the most bytes a follower asks
    /// for in one fetch.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits at
    /// the leader for new records.
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.backoff.ms`: a follower's wait before fetching again
    /// from a leader that answered with errors.
    pub replica_fetch_backoff_ms: u64,
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
    /// `offsets.topic.replication.factor`: replicas of each
    /// `__consumer_offsets` partition in a cluster (at most the brokers
    /// registered when it is created; alone, 1).
    pub offsets_topic_replication_factor: i16,
    /// `offsets.commit.timeout.ms`: how long an OffsetCommit waits for its
    /// records to reach every in-sync replica before it is answered
    /// REQUEST_TIMED_OUT.
    pub offsets_commit_timeout_ms: u64,
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
    /// `metrics.listen`: where the driver serves the metrics
    /// ([`crate::metrics`]) over HTTP, `host:port`; empty (the default
    /// here, for an embedded broker) serves none. `conveyor serve`
    /// defaults it to `127.0.0.1:9644`.
    pub metrics_listen: String,
    /// `log.cleaner.threads`: how many of the cleaner's jobs (mapping keys,
    /// cleaning a piece) the driver runs at once, on threads of their own.
    pub cleaner_threads: usize,
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
            quorum_election_timeout_ms: 1_000,
            quorum_tick_ms: 100,
            broker_session_timeout_ms: 9_000,
            replica_lag_time_max_ms: 30_000,
            metadata_max_idle_interval_ms: 500,
            metadata_snapshot_interval_records: 1_024,
            request_timeout_ms: 30_000,
            default_replication_factor: 1,
            replica_fetch_max_bytes: 1_048_576,
            replica_fetch_response_max_bytes: 10_485_760,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_backoff_ms: 1_000,
            flush_threads: 4,
            queued_max_request_bytes: 32 << 20,
            fetch_max_wait_cap_ms: 30_000,
            retention_check_interval_ms: 300_000,
            offsets_topic_partitions: 50,
            offsets_topic_segment_bytes: 104_857_600,
            offsets_topic_replication_factor: 3,
            offsets_commit_timeout_ms: 5_000,
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
            cleaner_threads: 1,
            metrics_listen: String::new(),
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
            "controller.quorum.election.timeout.ms" => {
                self.quorum_election_timeout_ms = parse_range(key, value, 3, 3_600_000)?
            }
            "metadata.max.idle.interval.ms" => {
                self.metadata_max_idle_interval_ms = parse_range(key, value, 0, 3_600_000)?
            }
            "metadata.log.snapshot.interval.records" => {
                self.metadata_snapshot_interval_records = parse_range(key, value, 8, 1 << 40)?
            }
            "replica.lag.time.max.ms" => {
                self.replica_lag_time_max_ms = parse_range(key, value, 1, 3_600_000)?
            }
            "broker.session.timeout.ms" => {
                self.broker_session_timeout_ms = parse_range(key, value, 1, 3_600_000)?
            }
            "controller.quorum.tick.ms" => {
                self.quorum_tick_ms = parse_range(key, value, 1, 60_000)?
            }
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
            "default.replication.factor" => {
                self.default_replication_factor = parse_range(key, value, 1, i16::MAX)?
            }
            "replica.fetch.max.bytes" => {
                self.replica_fetch_max_bytes = parse_range(key, value, 1, i32::MAX)?
            }
            "replica.fetch.response.max.bytes" => {
                self.replica_fetch_response_max_bytes = parse_range(key, value, 1, i32::MAX)?
            }
            "replica.fetch.wait.max.ms" => {
                self.replica_fetch_wait_max_ms = parse_range(key, value, 0, 60_000)?
            }
            "replica.fetch.backoff.ms" => {
                self.replica_fetch_backoff_ms = parse_range(key, value, 0, 3_600_000)?
            }
            "log.retention.check.interval.ms" => {
                self.retention_check_interval_ms = parse_range(key, value, 1, u64::MAX / 2)?
            }
            "offsets.topic.num.partitions" => {
                self.offsets_topic_partitions = parse_range(key, value, 1, 1000)?
            }
            "offsets.topic.replication.factor" => {
                self.offsets_topic_replication_factor = parse_range(key, value, 1, i16::MAX)?
            }
            "offsets.commit.timeout.ms" => {
                self.offsets_commit_timeout_ms = parse_range(key, value, 1, 3_600_000)?
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
            "log.cleaner.threads" => self.cleaner_threads = parse_range(key, value, 1, 64)?,
            "metrics.listen" => {
                let v = value.trim();
                if !v.is_empty() && v.parse::<core::net::SocketAddr>().is_err() {
                    return Err(ConfigError {
                        key: key.to_owned(),
                        reason: format!(
                            "{v:?} is not host:port (an IP address and a port), nor empty"
                        ),
                    });
                }
                v.clone_into(&mut self.metrics_listen);
            }
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
            // Not built (the transaction log); accepted so a stock
            // server.properties works, and must say 1.
            "transaction.state.log.replication.factor" | "transaction.state.log.min.isr" => {
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

pub(crate) fn bad(key: &str, reason: &str) -> ConfigError {
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

pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        v => Err(bad(key, &format!("`{v}` is not true or false"))),
    }
}

pub(crate) fn parse_range<T>(key: &str, value: &str, min: T, max: T) -> Result<T, ConfigError>
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
        let readme = include_str!("../../../README.md");
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
        assert!(c.set("default.replication.factor", "0").is_err());
        assert!(c.set("offsets.topic.replication.factor", "0").is_err());
        assert!(
            c.set("transaction.state.log.replication.factor", "3")
                .is_err()
        );
    }
}
