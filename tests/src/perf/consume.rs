//! `consume`: Kafka's consumer perf test on librdkafka. Assigns every
//! partition of the topic from the beginning (no group membership; a
//! `group.id` is set only because librdkafka's `assign()` wants one) and
//! reads N records, or until idle, or until every partition is at its end.
//! Reports records/s and MB/s from the first record to the last, and the
//! time from `assign()` to the first record.
//!
//! `rewind` reads the same records again and again (seek to the log start
//! at each partition end) for a fixed time: the mock cluster keeps only
//! ~5 MB per partition, so that is how its consume ceiling is measured.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{Progress, apply_overrides, base_config, rates};

/// What to consume, and how.
#[derive(Debug, Clone)]
pub struct ConsumeOpts {
    /// Topic; all its partitions are read from the beginning.
    pub topic: String,
    /// Stop after this many records (`None`: until every partition's end).
    pub records: Option<u64>,
    /// Stop after this long.
    pub max_time: Option<Duration>,
    /// Stop after this long without a record.
    pub idle: Duration,
    /// Seek back to the start at each partition's end (needs `max_time` or
    /// `records`).
    pub rewind: bool,
    /// Progress line interval (zero: none).
    pub progress: Duration,
    /// Extra librdkafka settings, `key=value`.
    pub overrides: Vec<String>,
}

impl ConsumeOpts {
    /// Read `topic` to its end, giving up after 5 s idle.
    pub fn new(topic: &str) -> ConsumeOpts {
        ConsumeOpts {
            topic: topic.to_owned(),
            records: None,
            max_time: None,
            idle: Duration::from_secs(5),
            rewind: false,
            progress: Duration::from_secs(5),
            overrides: Vec::new(),
        }
    }

    /// The consumer's configuration.
    pub fn config(&self, bootstrap: &str) -> Result<ClientConfig, String> {
        let mut config = base_config(bootstrap);
        config
            .set("group.id", "conveyor-perf-assign-only")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            // librdkafka stops fetching a partition once its local queue
            // holds queued.min.messages (100,000) and then waits
            // fetch.queue.backoff.ms (1 s) before asking again: a 1 s stall
            // whenever the application keeps up. Prefetch more, and recheck
            // soon.
            .set("queued.min.messages", "1000000")
            .set("fetch.queue.backoff.ms", "10");
        if self.rewind {
            // The mock cluster holds an empty fetch for the whole
            // fetch.wait.max.ms and never wakes it; at each partition end
            // that wait would be measured, not the client.
            config.set("fetch.wait.max.ms", "1");
        }
        apply_overrides(&mut config, &self.overrides)?;
        Ok(config)
    }
}

/// What a consume run measured.
#[derive(Debug, Clone)]
pub struct ConsumeResult {
    /// Records read.
    pub records: u64,
    /// Value bytes read.
    pub bytes: u64,
    /// From the first record to the last.
    pub elapsed: Duration,
    /// From `assign()` to the first record (`None`: none came).
    pub first_record: Option<Duration>,
    /// Times a partition was rewound.
    pub rewinds: u64,
    /// A consumer error, if one ended the run.
    pub error: Option<String>,
}

impl ConsumeResult {
    /// Records per second.
    pub fn records_per_sec(&self) -> f64 {
        rates(self.records, self.bytes, self.elapsed).0
    }

    /// MB (10^6 bytes of values) per second.
    pub fn mb_per_sec(&self) -> f64 {
        rates(self.records, self.bytes, self.elapsed).1
    }

    /// One summary line.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} records ({:.2} MB) consumed in {:.2} s, {:.1} records/s ({:.2} MB/s), first record after {}",
            self.records,
            self.bytes as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            self.records_per_sec(),
            self.mb_per_sec(),
            self.first_record.map_or("-".to_owned(), |d| format!(
                "{:.1} ms",
                d.as_secs_f64() * 1e3
            )),
        );
        if self.rewinds > 0 {
            s.push_str(&format!(", {} rewinds", self.rewinds));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("; ERROR: {e}"));
        }
        s
    }
}

/// The number of partitions of `topic`, from Metadata.
pub fn partitions_of(consumer: &BaseConsumer, topic: &str) -> Result<i32, String> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("metadata for {topic}: {e}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| format!("no topic {topic} in metadata"))?;
    if let Some(e) = t.error() {
        return Err(format!("metadata for {topic}: {e:?}"));
    }
    i32::try_from(t.partitions().len()).map_err(|e| e.to_string())
}

/// Runs the consume test against `bootstrap`.
pub fn run(opts: &ConsumeOpts, bootstrap: &str) -> Result<ConsumeResult, String> {
    let consumer: BaseConsumer = opts
        .config(bootstrap)?
        .create()
        .map_err(|e| format!("create consumer: {e}"))?;
    let partitions = partitions_of(&consumer, &opts.topic)?;
    // Where each partition starts, to rewind to without a ListOffsets.
    let mut lows = Vec::new();
    if opts.rewind {
        for p in 0..partitions {
            let (low, _) = consumer
                .fetch_watermarks(&opts.topic, p, Duration::from_secs(10))
                .map_err(|e| format!("watermarks {}/{p}: {e}", opts.topic))?;
            lows.push(low);
        }
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&opts.topic, p, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    let start = Instant::now();
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    let deadline = opts.max_time.map(|d| start + d);
    let mut at_end = vec![false; partitions as usize];
    let mut progress = Progress::new(opts.progress);
    let (mut records, mut bytes, mut window_records, mut window_bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut rewinds = 0;
    let mut first: Option<Instant> = None;
    let mut last = start;
    let mut last_activity = start;
    let mut error = None;
    loop {
        if opts.records.is_some_and(|n| records >= n) {
            break;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) || now - last_activity >= opts.idle {
            break;
        }
        if !opts.rewind && opts.records.is_none() && at_end.iter().all(|&e| e) {
            break;
        }
        if let Some(window) = progress.due(now) {
            let (rps, mbps) = rates(window_records, window_bytes, window);
            eprintln!("{records} records consumed, {rps:.1} records/s ({mbps:.2} MB/s)");
            (window_records, window_bytes) = (0, 0);
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(msg)) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                last_activity = now;
                let len = msg.payload().map_or(0, <[u8]>::len) as u64;
                records += 1;
                bytes += len;
                window_records += 1;
                window_bytes += len;
                if let Some(e) = at_end.get_mut(msg.partition() as usize) {
                    *e = false;
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                last_activity = Instant::now();
                if opts.rewind {
                    let low = lows
                        .get(p as usize)
                        .map_or(Offset::Beginning, |&l| Offset::Offset(l));
                    consumer
                        .seek(&opts.topic, p, low, Duration::ZERO)
                        .map_err(|e| format!("seek {}/{p}: {e}", opts.topic))?;
                    rewinds += 1;
                } else if let Some(e) = at_end.get_mut(p as usize) {
                    *e = true;
                }
            }
            Some(Err(e)) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let first_record = first.map(|f| f - start);
    let from = match first {
        // A run too short to measure between records is measured from assign.
        Some(f) if last - f >= Duration::from_millis(1) => f,
        _ => start,
    };
    Ok(ConsumeResult {
        records,
        bytes,
        elapsed: last - from,
        first_record,
        rewinds,
        error,
    })
}
