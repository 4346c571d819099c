//! What the broker counts, as Prometheus metrics: requests and their
//! latency per API, bytes and records in and out per topic, connections,
//! and a gauge per partition (offsets, size) and per group partition (lag).
//!
//! The metrics are `prometheus-client`'s: atomics behind shared handles, so
//! the core adds to them as it goes and a driver's thread encodes the
//! [`Registry`] the broker hands out ([`crate::Broker::take_metrics`])
//! whenever it is scraped, without a word to the core. The core holds its
//! own handle to each labelled series it touches, so counting a request is
//! one lookup in a small map and one atomic add, never a lock.
//!
//! Gauges that describe state (offsets, sizes, lag) are set from that state
//! at most once per [`REFRESH`] while inputs arrive, and once more within
//! [`REFRESH`] after the last: a scrape sees the broker as it was at most
//! that long ago, and an idle broker is never woken for them.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::time::Instant;

/// How stale a state gauge may be.
pub const REFRESH: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: String,
    version: i16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

/// One partition's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub(crate) struct PartitionLabels {
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

/// One group's committed partition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub(crate) struct LagLabels {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request latency buckets: 50 µs to about 1.6 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// A partition's state, as the gauges show it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PartitionState {
    pub(crate) log_start: u64,
    pub(crate) log_end: u64,
    pub(crate) high_watermark: u64,
    pub(crate) size_bytes: u64,
    pub(crate) segments: u64,
}

/// The broker's metrics and its handles to them.
#[derive(Debug)]
pub struct Metrics {
    registry: Option<Registry>,
    requests: Family<ApiLabels, Counter>,
    request_handles: HashMap<(i16, i16), Counter>,
    latency: Histograms<LatencyLabels>,
    latency_handles: HashMap<i16, Histogram>,
    rejected: Family<ReasonLabels, Counter>,
    connections: Gauge,
    accepted: Counter,
    produced_bytes: Family<TopicLabels, Counter>,
    produced_records: Family<TopicLabels, Counter>,
    fetched_bytes: Family<TopicLabels, Counter>,
    topic_handles: HashMap<String, [Counter; 3]>,
    log_start: Family<PartitionLabels, Gauge>,
    log_end: Family<PartitionLabels, Gauge>,
    high_watermark: Family<PartitionLabels, Gauge>,
    size_bytes: Family<PartitionLabels, Gauge>,
    segments: Family<PartitionLabels, Gauge>,
    lag: Family<LagLabels, Gauge>,
    cleaner_passes: Counter,
    cleaner_read: Counter,
    cleaner_written: Counter,
    /// The series shown at the last refresh, to drop those gone since.
    shown_partitions: Vec<PartitionLabels>,
    shown_lag: Vec<LagLabels>,
    /// When gauges were last set, and whether an input came since.
    refreshed: Option<Instant>,
    stale: bool,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut m = Self {
            registry: None,
            requests: Family::default(),
            request_handles: HashMap::new(),
            latency: Family::new_with_constructor(latency_histogram),
            latency_handles: HashMap::new(),
            rejected: Family::default(),
            connections: Gauge::default(),
            accepted: Counter::default(),
            produced_bytes: Family::default(),
            produced_records: Family::default(),
            fetched_bytes: Family::default(),
            topic_handles: HashMap::new(),
            log_start: Family::default(),
            log_end: Family::default(),
            high_watermark: Family::default(),
            size_bytes: Family::default(),
            segments: Family::default(),
            lag: Family::default(),
            cleaner_passes: Counter::default(),
            cleaner_read: Counter::default(),
            cleaner_written: Counter::default(),
            shown_partitions: Vec::new(),
            shown_lag: Vec::new(),
            refreshed: None,
            stale: true,
        };
        let mut r = Registry::with_prefix("conveyor");
        r.register(
            "requests",
            "Requests handled, by API and version",
            m.requests.clone(),
        );
        r.register(
            "request_latency_seconds",
            "From a request's last byte read to its response queued to send",
            m.latency.clone(),
        );
        r.register(
            "requests_rejected",
            "Requests answered by closing the connection, by reason",
            m.rejected.clone(),
        );
        r.register(
            "connections",
            "Client connections open",
            m.connections.clone(),
        );
        r.register(
            "connections_accepted",
            "Client connections accepted",
            m.accepted.clone(),
        );
        r.register(
            "produced_bytes",
            "Record batch bytes appended by Produce, by topic",
            m.produced_bytes.clone(),
        );
        r.register(
            "produced_records",
            "Records appended by Produce, by topic",
            m.produced_records.clone(),
        );
        r.register(
            "fetched_bytes",
            "Record batch bytes sent by Fetch, by topic",
            m.fetched_bytes.clone(),
        );
        r.register(
            "log_start_offset",
            "The first offset of a partition",
            m.log_start.clone(),
        );
        r.register(
            "log_end_offset",
            "The offset the next record of a partition gets",
            m.log_end.clone(),
        );
        r.register(
            "high_watermark",
            "The offset below which a partition's records are readable",
            m.high_watermark.clone(),
        );
        r.register(
            "log_size_bytes",
            "Bytes of a partition's segments",
            m.size_bytes.clone(),
        );
        r.register(
            "log_segments",
            "Segments of a partition",
            m.segments.clone(),
        );
        r.register(
            "group_lag",
            "A group's lag on a partition: its high watermark minus the committed offset",
            m.lag.clone(),
        );
        r.register(
            "cleaner_passes",
            "Log cleaner passes finished",
            m.cleaner_passes.clone(),
        );
        r.register(
            "cleaner_read_bytes",
            "Bytes the log cleaner read",
            m.cleaner_read.clone(),
        );
        r.register(
            "cleaner_written_bytes",
            "Bytes the log cleaner wrote",
            m.cleaner_written.clone(),
        );
        m.registry = Some(r);
        m
    }

    /// The registry, for the driver to add its own metrics to and serve;
    /// `None` once taken.
    pub(crate) fn take_registry(&mut self) -> Option<Registry> {
        self.registry.take()
    }

    /// A request of `key` at `version` was handled.
    pub(crate) fn request(&mut self, key: ApiKey, version: i16) {
        let requests = &self.requests;
        self.request_handles
            .entry((key as i16, version))
            .or_insert_with(|| {
                let api = format!("{key:?}");
                requests.get_or_create(&ApiLabels { api, version }).clone()
            })
            .inc();
    }

    /// A response of `key` was queued `took` after its request was read.
    pub(crate) fn answered(&mut self, key: ApiKey, took: Duration) {
        let latency = &self.latency;
        self.latency_handles
            .entry(key as i16)
            .or_insert_with(|| {
                let api = format!("{key:?}");
                latency.get_or_create(&LatencyLabels { api }).clone()
            })
            .observe(took.as_secs_f64());
    }

    /// A request was answered by closing its connection.
    pub(crate) fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A connection was accepted; `open` are open now.
    pub(crate) fn connections(&self, accepted: bool, open: usize) {
        if accepted {
            self.accepted.inc();
        }
        self.connections
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    fn topic(&mut self, topic: &str) -> &[Counter; 3] {
        if !self.topic_handles.contains_key(topic) {
            let labels = TopicLabels {
                topic: topic.to_owned(),
            };
            let handles = [
                self.produced_bytes.get_or_create(&labels).clone(),
                self.produced_records.get_or_create(&labels).clone(),
                self.fetched_bytes.get_or_create(&labels).clone(),
            ];
            self.topic_handles.insert(topic.to_owned(), handles);
        }
        &self.topic_handles[topic]
    }

    /// A batch of `records` records and `bytes` bytes was appended to `topic`.
    pub(crate) fn produced(&mut self, topic: &str, bytes: u64, records: u64) {
        let [b, r, _] = self.topic(topic);
        b.inc_by(bytes);
        r.inc_by(records);
    }

    /// `bytes` of `topic`'s records go out in a fetch response.
    pub(crate) fn fetched(&mut self, topic: &str, bytes: u64) {
        if bytes > 0 {
            self.topic(topic)[2].inc_by(bytes);
        }
    }

    /// A cleaning pass finished, having read and written these bytes.
    pub(crate) fn cleaned(&self, read: u64, written: u64) {
        self.cleaner_passes.inc();
        self.cleaner_read.inc_by(read);
        self.cleaner_written.inc_by(written);
    }

    /// An input arrived: state gauges may be stale.
    pub(crate) fn touch(&mut self) {
        self.stale = true;
    }

    /// Whether the state gauges are due to be set at `now`.
    pub(crate) fn refresh_due(&self, now: Instant) -> bool {
        self.stale
            && self
                .refreshed
                .is_none_or(|t| t.saturating_add(REFRESH) <= now)
    }

    /// When the state gauges are next due, if anything changed.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let at = self.refreshed?.saturating_add(REFRESH);
        self.stale.then_some(at)
    }

    /// Set the state gauges: every partition's, every group partition's lag.
    /// Series of partitions and groups gone since the last refresh go.
    pub(crate) fn refresh(
        &mut self,
        now: Instant,
        partitions: Vec<(PartitionLabels, PartitionState)>,
        lag: Vec<(LagLabels, i64)>,
    ) {
        self.refreshed = Some(now);
        self.stale = false;
        let gauges = [
            &self.log_start,
            &self.log_end,
            &self.high_watermark,
            &self.size_bytes,
            &self.segments,
        ];
        let mut shown: Vec<PartitionLabels> = Vec::with_capacity(partitions.len());
        for (labels, s) in partitions {
            let values = [
                s.log_start,
                s.log_end,
                s.high_watermark,
                s.size_bytes,
                s.segments,
            ];
            for (g, v) in gauges.iter().zip(values) {
                g.get_or_create(&labels)
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            }
            shown.push(labels);
        }
        shown.sort_unstable();
        for gone in self
            .shown_partitions
            .iter()
            .filter(|l| shown.binary_search(l).is_err())
        {
            for g in gauges {
                g.remove(gone);
            }
        }
        self.shown_partitions = shown;

        let mut shown: Vec<LagLabels> = Vec::with_capacity(lag.len());
        for (labels, v) in lag {
            self.lag.get_or_create(&labels).set(v);
            shown.push(labels);
        }
        shown.sort_unstable();
        for gone in self
            .shown_lag
            .iter()
            .filter(|l| shown.binary_search(l).is_err())
        {
            self.lag.remove(gone);
        }
        self.shown_lag = shown;
    }
}
