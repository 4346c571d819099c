//! conveyor-perf: producer, consumer and end-to-end latency perf tests on
//! librdkafka (modelled on Kafka's `kafka-producer-perf-test`,
//! `kafka-consumer-perf-test` and `EndToEndLatency`), the machine's own
//! limits (page-cache writes, loopback `sendfile`) and the benchmark matrix
//! that puts them side by side.
//!
//! Units: MB is 10^6 bytes; latencies are in milliseconds; throughput in
//! bytes counts record values (payloads) only, as Kafka's perf tools do.

pub mod baseline;
pub mod bench;
mod broker;
pub mod cluster;
pub mod consume;
pub mod e2e;
pub mod hist;
pub mod kafka;
pub mod produce;
mod report;
mod rss;

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// Where the clients connect: an existing broker, or librdkafka's in-process
/// mock cluster (one broker), the client's own ceiling.
pub enum Target {
    /// `host:port` of a running broker.
    Broker(String),
    /// The mock cluster, alive as long as this value.
    Mock(MockCluster<'static, DefaultProducerContext>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Broker(b) => write!(f, "Broker({b})"),
            Target::Mock(m) => write!(f, "Mock({})", m.bootstrap_servers()),
        }
    }
}

impl Target {
    /// A fresh one-broker mock cluster. `MockCluster::new` is what
    /// `test.mock.num.brokers=1` does inside a client, on a handle of its
    /// own, so the cluster outlives any one producer and a consumer can
    /// read what a producer wrote.
    pub fn mock() -> Result<Target, String> {
        MockCluster::new(1)
            .map(Target::Mock)
            .map_err(|e| format!("mock cluster: {e}"))
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> String {
        match self {
            Target::Broker(b) => b.clone(),
            Target::Mock(m) => m.bootstrap_servers(),
        }
    }

    /// Is this the mock cluster?
    pub fn is_mock(&self) -> bool {
        matches!(self, Target::Mock(_))
    }

    /// Creates `topic` with `partitions` partitions (replication 1). An
    /// existing topic is fine.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), String> {
        self.create_topic_with(topic, partitions, &[])
    }

    /// [`Target::create_topic`] with topic settings (`flush.messages`, …);
    /// the mock cluster takes none and ignores them.
    pub fn create_topic_with(
        &self,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<(), String> {
        match self {
            Target::Mock(m) => m
                .create_topic(topic, partitions, 1)
                .map_err(|e| format!("mock create_topic {topic}: {e}")),
            Target::Broker(b) => create_topic(b, topic, (partitions, 1), configs),
        }
    }

    /// Deletes `topic` (best effort, to give the disk back between
    /// workloads). The mock cluster keeps only a few MB per partition and
    /// has no DeleteTopics, so nothing is done there.
    pub fn delete_topic(&self, topic: &str) {
        if let Target::Broker(b) = self {
            if let Err(e) = delete_topic(b, topic) {
                eprintln!("conveyor-perf: delete topic {topic}: {e} (ignored)");
            }
        }
    }
}

const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

fn admin(bootstrap: &str) -> Result<(AdminClient<DefaultClientContext>, AdminOptions), String> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap)
        .create()
        .map_err(|e| format!("admin client: {e}"))?;
    let opts = AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT));
    Ok((admin, opts))
}

/// Creates `topic` with `partitions` partitions of `replicas` replicas
/// each and `configs`; an existing topic is fine.
pub fn create_topic(
    bootstrap: &str,
    topic: &str,
    (partitions, replicas): (i32, i32),
    configs: &[(&str, &str)],
) -> Result<(), String> {
    let (admin, opts) = admin(bootstrap)?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replicas));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let results = crate_block_on(admin.create_topics([&new], &opts))?
        .map_err(|e| format!("CreateTopics {topic}: {e}"))?;
    match results.first() {
        Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(()),
        Some(Err((_, code))) => Err(format!("CreateTopics {topic}: {code}")),
        None => Err(format!("CreateTopics {topic}: no result")),
    }
}

fn delete_topic(bootstrap: &str, topic: &str) -> Result<(), String> {
    let (admin, opts) = admin(bootstrap)?;
    let results = crate_block_on(admin.delete_topics(&[topic], &opts))?
        .map_err(|e| format!("DeleteTopics {topic}: {e}"))?;
    match results.first() {
        Some(Ok(_)) => Ok(()),
        Some(Err((_, code))) => Err(format!("DeleteTopics {topic}: {code}")),
        None => Err(format!("DeleteTopics {topic}: no result")),
    }
}

fn crate_block_on<F: std::future::Future>(future: F) -> Result<F::Output, String> {
    conveyor_tests::client::block_on(future, ADMIN_TIMEOUT + Duration::from_secs(1))
        .ok_or_else(|| format!("admin request did not complete in {ADMIN_TIMEOUT:?}"))
}

/// Settings every perf client gets: the broker, IPv4 only (127.0.0.1, never
/// ::1), quiet logs.
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
        .set("log_level", "4");
    config
}

/// Applies `key=value` overrides (`-X`) to a configuration.
pub fn apply_overrides(config: &mut ClientConfig, overrides: &[String]) -> Result<(), String> {
    for kv in overrides {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("-X {kv}: expected key=value"))?;
        config.set(k, v);
    }
    Ok(())
}

/// A topic name unique to this process and moment.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// `len` bytes of random capital letters, as Kafka's producer perf test
/// fills its payload (compressible, not trivially).
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect()
}

/// Throughput figures over `elapsed`.
pub fn rates(records: u64, bytes: u64, elapsed: Duration) -> (f64, f64) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    (records as f64 / secs, bytes as f64 / secs / 1e6)
}

/// Prints a progress line every `every` (stderr), from a window's counts.
#[derive(Debug)]
pub struct Progress {
    every: Duration,
    next: Instant,
    window_start: Instant,
}

impl Progress {
    /// Starts the first window now.
    pub fn new(every: Duration) -> Progress {
        let now = Instant::now();
        Progress {
            every,
            next: now + every,
            window_start: now,
        }
    }

    /// When `now` is past the window, returns its length and starts the next.
    pub fn due(&mut self, now: Instant) -> Option<Duration> {
        if self.every.is_zero() || now < self.next {
            return None;
        }
        let window = now - self.window_start;
        self.window_start = now;
        self.next = now + self.every;
        Some(window)
    }
}
