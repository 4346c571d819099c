//! `produce`: Kafka's producer perf test on librdkafka. Sends N records of S
//! bytes (optionally capped at R records/s, and bounded in time), measures
//! each record's delivery latency (send to delivery report: the send time
//! in nanoseconds rides along as the record's opaque, so nothing is stored
//! per record) and prints a progress line every few seconds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use super::hist::{Histogram, ms};
use super::{Progress, apply_overrides, base_config, rates};

/// What to produce, and how.
#[derive(Debug, Clone)]
pub struct ProduceOpts {
    /// Topic (created first with `partitions` partitions when missing).
    pub topic: String,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Records to send (at most).
    pub records: u64,
    /// Bytes per record value (no key).
    pub record_size: usize,
    /// `acks`: 0, 1 or -1/all.
    pub acks: String,
    /// `linger.ms`.
    pub linger_ms: String,
    /// `batch.size` in bytes.
    pub batch_size: u64,
    /// `batch.num.messages`.
    pub batch_num_messages: u64,
    /// `compression.type`.
    pub compression: String,
    /// Records per second at most (`None`: as fast as possible).
    pub rate: Option<f64>,
    /// Stop sending after this long, even if fewer than `records` were sent.
    pub max_time: Option<Duration>,
    /// Progress line interval (zero: none).
    pub progress: Duration,
    /// Extra librdkafka settings, `key=value`.
    pub overrides: Vec<String>,
    /// Record `i` gets key `k{i % keys}` (`None`: keyless records).
    pub keys: Option<u64>,
    /// Each record's value differs (a window of a larger pseudo-random
    /// text), so compression sees realistic data rather than one value
    /// repeated.
    pub varied: bool,
}

impl ProduceOpts {
    /// librdkafka's defaults for a throughput run of `records` records.
    pub fn new(topic: &str, records: u64, record_size: usize) -> ProduceOpts {
        ProduceOpts {
            topic: topic.to_owned(),
            partitions: 1,
            records,
            record_size,
            acks: "1".into(),
            linger_ms: "5".into(),
            batch_size: 1_000_000,
            batch_num_messages: 10_000,
            compression: "none".into(),
            rate: None,
            max_time: None,
            progress: Duration::from_secs(5),
            overrides: Vec::new(),
            keys: None,
            varied: false,
        }
    }

    /// The producer's configuration.
    pub fn config(&self, bootstrap: &str) -> Result<ClientConfig, String> {
        let mut config = base_config(bootstrap);
        config
            .set("acks", &self.acks)
            .set("linger.ms", &self.linger_ms)
            .set("batch.size", self.batch_size.to_string())
            .set("batch.num.messages", self.batch_num_messages.to_string())
            .set("compression.type", &self.compression)
            .set("enable.idempotence", "false")
            .set("queue.buffering.max.messages", "1000000")
            .set("message.timeout.ms", "30000");
        apply_overrides(&mut config, &self.overrides)?;
        Ok(config)
    }
}

/// What a produce run measured.
#[derive(Debug, Clone)]
pub struct ProduceResult {
    /// Records handed to librdkafka.
    pub sent: u64,
    /// Records acknowledged.
    pub acked: u64,
    /// Records that failed, and the first error.
    pub failed: u64,
    /// The first delivery error, if any.
    pub first_error: Option<String>,
    /// From the first send to the last delivery report.
    pub elapsed: Duration,
    /// Value bytes acknowledged.
    pub bytes: u64,
    /// Send-to-delivery-report latency of every acknowledged record.
    pub latency: Histogram,
}

impl ProduceResult {
    /// Acknowledged records per second.
    pub fn records_per_sec(&self) -> f64 {
        rates(self.acked, self.bytes, self.elapsed).0
    }

    /// Acknowledged MB (10^6 bytes of values) per second.
    pub fn mb_per_sec(&self) -> f64 {
        rates(self.acked, self.bytes, self.elapsed).1
    }

    /// Kafka's summary line.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} records sent, {} acked in {:.2} s, {:.1} records/s ({:.2} MB/s), latency {}",
            self.sent,
            self.acked,
            self.elapsed.as_secs_f64(),
            self.records_per_sec(),
            self.mb_per_sec(),
            self.latency.summary_ms(),
        );
        if self.failed > 0 {
            s.push_str(&format!(
                "; {} FAILED, first: {}",
                self.failed,
                self.first_error.as_deref().unwrap_or("?")
            ));
        }
        s
    }
}

/// Delivery-report bookkeeping, shared with librdkafka's callback (which
/// runs on whichever thread calls `poll`: ours).
#[derive(Debug)]
pub struct Deliveries {
    origin: Instant,
    acked: AtomicU64,
    failed: AtomicU64,
    /// Nanoseconds since `origin` of the latest report.
    last_report: AtomicU64,
    state: Mutex<DeliveryState>,
}

#[derive(Debug, Default)]
struct DeliveryState {
    latency: Histogram,
    window: Histogram,
    first_error: Option<String>,
}

impl Deliveries {
    /// Delivery bookkeeping whose opaque send times count from `origin`.
    pub fn new(origin: Instant) -> Deliveries {
        Deliveries {
            origin,
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_report: AtomicU64::new(0),
            state: Mutex::new(DeliveryState::default()),
        }
    }

    /// The opaque to send a record with now: nanoseconds since the origin.
    pub fn stamp(&self) -> usize {
        self.origin.elapsed().as_nanos() as usize
    }

    /// Reports so far: (acked, failed).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.acked.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    fn take_window(&self) -> Histogram {
        std::mem::take(&mut self.state.lock().expect("poisoned").window)
    }

    /// The latency histogram so far.
    pub fn latency(&self) -> Histogram {
        self.state.lock().expect("poisoned").latency.clone()
    }

    /// Forgets the latencies recorded so far (counts stay).
    pub fn reset_latency(&self) {
        let mut state = self.state.lock().expect("poisoned");
        state.latency = Histogram::default();
        state.window = Histogram::default();
    }

    /// The first delivery error, if any.
    pub fn first_error(&self) -> Option<String> {
        self.state.lock().expect("poisoned").first_error.clone()
    }

    /// When the latest report arrived.
    pub fn last_report(&self) -> Instant {
        self.origin + Duration::from_nanos(self.last_report.load(Ordering::Relaxed))
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: usize) {
        let now = self.origin.elapsed().as_nanos() as u64;
        self.last_report.store(now, Ordering::Relaxed);
        let mut state = self.state.lock().expect("poisoned");
        match result {
            Ok(_) => {
                let latency = now.saturating_sub(sent_at as u64);
                state.latency.record(latency);
                state.window.record(latency);
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                if state.first_error.is_none() {
                    state.first_error = Some(e.to_string());
                }
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A producer whose delivery reports land in [`Deliveries`].
pub type PerfProducer = BaseProducer<Deliveries>;

/// Makes a producer for `opts`.
pub fn producer(
    opts: &ProduceOpts,
    bootstrap: &str,
    origin: Instant,
) -> Result<PerfProducer, String> {
    opts.config(bootstrap)?
        .create_with_context(Deliveries::new(origin))
        .map_err(|e| format!("create producer: {e}"))
}

/// Queues one record, waiting while librdkafka's queue is full. Gives up (Err) after `timeout` of a full queue or on any other error.
/// `poll`: serve reports on this thread while waiting (false when a
/// [`Poller`] does).
pub fn send(
    producer: &PerfProducer,
    mut record: BaseRecord<'_, [u8], [u8], usize>,
    timeout: Duration,
    poll: bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "producer queue stayed full for {timeout:?}; is the broker acknowledging?"
                    ));
                }
                record = back;
                if poll {
                    producer.poll(Duration::from_millis(1));
                } else {
                    thread::sleep(Duration::from_micros(200));
                }
            }
            Err((e, _)) => return Err(format!("producer.send: {e}")),
        }
    }
}

/// Sleeps until `at` (plain sleep: delivery reports are served by a
/// [`Poller`] meanwhile, so they are timed when they arrive, not when this
/// thread wakes).
pub fn sleep_until(at: Instant) {
    if let Some(left) = at.checked_duration_since(Instant::now()) {
        thread::sleep(left);
    }
}

/// A thread serving a producer's delivery reports as they arrive (what
/// rdkafka's `ThreadedProducer` does), for runs whose sending thread
/// sleeps: a report waiting for the sender to wake would add the sleep to
/// its latency. Stopped and joined on drop.
#[derive(Debug)]
pub struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Poller {
    /// Starts serving `producer`'s reports.
    pub fn start(producer: &Arc<PerfProducer>) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            let producer = Arc::clone(producer);
            thread::Builder::new()
                .name("perf-delivery".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(Duration::from_millis(10));
                    }
                })
                .expect("spawn the delivery-report thread")
        };
        Poller {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long outstanding records may take to be acknowledged after the last
/// send (librdkafka's `message.timeout.ms` is 30 s here).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(35);

/// Runs the produce test against `bootstrap` (the topic must exist).
pub fn run(opts: &ProduceOpts, bootstrap: &str) -> Result<ProduceResult, String> {
    let origin = Instant::now();
    let producer = Arc::new(producer(opts, bootstrap, origin)?);
    let ctx = producer.context();
    // Flat out, this thread polls between sends; rate-capped, it sleeps
    // between sends and a poller thread takes the reports.
    let poller = opts.rate.map(|_| Poller::start(&producer));
    let poll_here = poller.is_none();
    // Varied values: windows of a 16 MiB pseudo-random text, none
    // overlapping the next, so a batch holds no repeats.
    const POOL: usize = 16 << 20;
    let value = if opts.varied {
        super::payload(POOL + opts.record_size, 0x5EED)
    } else {
        super::payload(opts.record_size, 0x5EED)
    };
    let start = Instant::now();
    let deadline = opts.max_time.map(|d| start + d);
    let mut progress = Progress::new(opts.progress);
    let mut window_sent = 0u64;
    let mut sent = 0u64;
    while sent < opts.records {
        if sent % 256 == 0 {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break;
            }
            if let Some(window) = progress.due(now) {
                print_progress(window_sent, opts.record_size, window, &ctx.take_window());
                window_sent = 0;
            }
        }
        if let Some(rate) = opts.rate {
            // Kafka's throttle: never ahead of `rate` since the start.
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            sleep_until(due);
        }
        let key = opts.keys.map(|n| format!("k{}", sent % n.max(1)));
        let at = if opts.varied {
            (sent as usize).wrapping_mul(opts.record_size + 97) % POOL
        } else {
            0
        };
        let bytes = &value[at..at + opts.record_size];
        let mut record = BaseRecord::with_opaque_to(&opts.topic, ctx.stamp()).payload(bytes);
        if let Some(k) = &key {
            record = record.key(k.as_bytes());
        }
        send(&producer, record, Duration::from_secs(30), poll_here)?;
        sent += 1;
        window_sent += 1;
        if poll_here && sent % 64 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    // Drain: every record gets a report (acked, or failed by
    // message.timeout.ms), bounded in time.
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let (acked, failed) = ctx.counts();
        if acked + failed >= sent {
            break;
        }
        let now = Instant::now();
        if now >= drain_deadline {
            eprintln!(
                "conveyor-perf: {} records unanswered {DRAIN_TIMEOUT:?} after the last send",
                sent - acked - failed
            );
            break;
        }
        if let Some(window) = progress.due(now) {
            print_progress(window_sent, opts.record_size, window, &ctx.take_window());
            window_sent = 0;
        }
        if poll_here {
            producer.poll(Duration::from_millis(10));
        } else {
            thread::sleep(Duration::from_millis(1));
        }
    }
    drop(poller);
    let (acked, failed) = ctx.counts();
    let end = if acked + failed > 0 {
        ctx.last_report()
    } else {
        Instant::now()
    };
    let unanswered = sent - acked - failed;
    let first_error = ctx.first_error().or_else(|| {
        (unanswered > 0)
            .then(|| format!("no delivery report within {DRAIN_TIMEOUT:?} of the last send"))
    });
    Ok(ProduceResult {
        sent,
        acked,
        failed: failed + unanswered,
        first_error,
        elapsed: end.saturating_duration_since(start),
        bytes: acked * opts.record_size as u64,
        latency: ctx.latency(),
    })
}

fn print_progress(sent: u64, size: usize, window: Duration, acked: &Histogram) {
    let (rps, mbps) = rates(sent, sent * size as u64, window);
    eprintln!(
        "{sent} records sent, {rps:.1} records/s ({mbps:.2} MB/s), {} ms avg latency, {} ms max latency ({} acked)",
        ms(acked.mean()),
        ms(acked.max() as f64),
        acked.count(),
    );
}
