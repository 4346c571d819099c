//! `e2e`: end-to-end latency, as Kafka's `EndToEndLatency` measures it but
//! at a fixed rate. A producer (linger.ms=0 by default) sends R records/s
//! for D seconds; a consumer in another thread reads them. Each record's
//! value starts with a run id, its sequence number and its send time
//! (nanoseconds since a shared origin), so the consumer computes
//! produce-to-consume latency with no shared table, and ignores anything
//! another run left in the topic. Produce-to-ack latency comes from the
//! delivery reports as in `produce`.
//!
//! Before the timed part, one warm-up record must make the whole trip, so
//! connection setup and the consumer's first fetch are not measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::consume::{ConsumeOpts, partitions_of};
use super::hist::Histogram;
use super::produce::{self, ProduceOpts};

/// Bytes of the header every e2e record starts with.
pub const HEADER: usize = 24;
const WARMUP: u64 = u64::MAX;

/// What to run.
#[derive(Debug, Clone)]
pub struct E2eOpts {
    /// Producer settings (topic, record size ≥ 24, acks, linger...);
    /// `records`, `rate` and `max_time` are ignored.
    pub produce: ProduceOpts,
    /// Records per second.
    pub rate: f64,
    /// How long to produce.
    pub duration: Duration,
    /// Extra consumer settings.
    pub consumer_overrides: Vec<String>,
}

/// What an e2e run measured.
#[derive(Debug, Clone)]
pub struct E2eResult {
    /// Records sent in the timed part.
    pub sent: u64,
    /// Records acknowledged.
    pub acked: u64,
    /// Records that failed.
    pub failed: u64,
    /// Records of this run the consumer read.
    pub received: u64,
    /// The rate actually achieved, records/s.
    pub achieved_rate: f64,
    /// Send to delivery report.
    pub ack_latency: Histogram,
    /// Send to consumer's poll returning it.
    pub e2e_latency: Histogram,
}

impl E2eResult {
    /// Summary lines.
    pub fn summary(&self) -> String {
        format!(
            "{} records sent at {:.1} records/s, {} acked, {} failed, {} consumed\n\
             produce-to-ack latency: {}\n\
             produce-to-consume latency: {}",
            self.sent,
            self.achieved_rate,
            self.acked,
            self.failed,
            self.received,
            self.ack_latency.summary_ms(),
            self.e2e_latency.summary_ms(),
        )
    }
}

struct Shared {
    origin: Instant,
    run_id: u64,
    warmed_up: AtomicBool,
    /// Total records of the timed part, once the producer is done.
    sent_total: AtomicU64,
    stop: AtomicBool,
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn consumer_loop(consumer: &BaseConsumer, shared: &Shared) -> Result<(u64, Histogram), String> {
    let mut hist = Histogram::default();
    let mut received = 0u64;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let total = shared.sent_total.load(Ordering::Relaxed);
        if total != 0 && received >= total {
            break;
        }
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(e)) => return Err(format!("consumer: {e}")),
            Some(Ok(msg)) => {
                let now = shared.origin.elapsed().as_nanos() as u64;
                let Some(value) = msg.payload() else { continue };
                if read_u64(value, 0) != Some(shared.run_id) {
                    continue;
                }
                let (Some(seq), Some(sent_at)) = (read_u64(value, 8), read_u64(value, 16)) else {
                    continue;
                };
                if seq == WARMUP {
                    shared.warmed_up.store(true, Ordering::Relaxed);
                    continue;
                }
                received += 1;
                hist.record(now.saturating_sub(sent_at));
            }
        }
    }
    Ok((received, hist))
}

/// Runs the e2e test against `bootstrap` (the topic must exist).
pub fn run(opts: &E2eOpts, bootstrap: &str) -> Result<E2eResult, String> {
    let size = opts.produce.record_size.max(HEADER);
    let origin = Instant::now();
    let shared = Arc::new(Shared {
        origin,
        run_id: origin.elapsed().as_nanos() as u64 ^ (u64::from(std::process::id()) << 32) ^ 0xE2E,
        warmed_up: AtomicBool::new(false),
        sent_total: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let mut consume_opts = ConsumeOpts::new(&opts.produce.topic);
    consume_opts.overrides.clone_from(&opts.consumer_overrides);
    let mut config = consume_opts.config(bootstrap)?;
    config.set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config
        .create()
        .map_err(|e| format!("create consumer: {e}"))?;
    let partitions = partitions_of(&consumer, &opts.produce.topic)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        // From the end: whatever an earlier run left is not read at all.
        tpl.add_partition_offset(&opts.produce.topic, p, Offset::End)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    let reader = {
        let shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("e2e-consumer".into())
            .spawn(move || consumer_loop(&consumer, &shared))
            .map_err(|e| e.to_string())?
    };
    let result = produce_part(opts, bootstrap, &shared, size);
    if result.is_err() {
        shared.stop.store(true, Ordering::Relaxed);
    }
    // The consumer stops once it has everything, or after a grace period.
    let grace = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < grace {
        thread::sleep(Duration::from_millis(20));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let (received, e2e_latency) = reader
        .join()
        .map_err(|_| "the consumer thread panicked".to_owned())??;
    let mut r = result?;
    r.received = received;
    r.e2e_latency = e2e_latency;
    Ok(r)
}

fn produce_part(
    opts: &E2eOpts,
    bootstrap: &str,
    shared: &Shared,
    size: usize,
) -> Result<E2eResult, String> {
    let producer = Arc::new(produce::producer(&opts.produce, bootstrap, shared.origin)?);
    let ctx = producer.context();
    // Reports are served as they arrive while this thread sleeps between sends.
    let poller = produce::Poller::start(&producer);
    let mut value = super::payload(size, 0xE2E);
    value[..8].copy_from_slice(&shared.run_id.to_be_bytes());
    // Warm-up: one record all the way through, re-sent every second (it
    // may go out before the consumer's assignment has resolved its
    // offsets), for at most 15 s.
    let warm_deadline = Instant::now() + Duration::from_secs(15);
    while !shared.warmed_up.load(Ordering::Relaxed) {
        if Instant::now() >= warm_deadline {
            shared.stop.store(true, Ordering::Relaxed);
            return Err("the warm-up record never reached the consumer within 15 s".into());
        }
        value[8..16].copy_from_slice(&WARMUP.to_be_bytes());
        value[16..24].copy_from_slice(&0u64.to_be_bytes());
        let record =
            BaseRecord::with_opaque_to(&opts.produce.topic, ctx.stamp()).payload(&value[..]);
        produce::send(&producer, record, Duration::from_secs(10), false)?;
        let again = Instant::now() + Duration::from_secs(1);
        while !shared.warmed_up.load(Ordering::Relaxed) && Instant::now() < again {
            thread::sleep(Duration::from_millis(5));
        }
    }
    let _ = producer.flush(Duration::from_secs(10));
    // flush polls on this thread too; reports are counted either way.
    let (warm_acked, warm_failed) = ctx.counts();
    // The histogram so far holds the warm-up records: start afresh.
    ctx.reset_latency();

    let start = Instant::now();
    let end = start + opts.duration;
    let mut sent = 0u64;
    loop {
        let due = start + Duration::from_secs_f64(sent as f64 / opts.rate);
        if due >= end {
            break;
        }
        produce::sleep_until(due);
        let stamp = ctx.stamp();
        value[8..16].copy_from_slice(&sent.to_be_bytes());
        value[16..24].copy_from_slice(&(stamp as u64).to_be_bytes());
        let record = BaseRecord::with_opaque_to(&opts.produce.topic, stamp).payload(&value[..]);
        produce::send(&producer, record, Duration::from_secs(10), false)?;
        sent += 1;
    }
    let achieved_rate = sent as f64 / start.elapsed().as_secs_f64();
    shared.sent_total.store(sent.max(1), Ordering::Relaxed);
    let drain = Instant::now() + Duration::from_secs(35);
    loop {
        let (a, f) = ctx.counts();
        if a + f >= warm_acked + warm_failed + sent || Instant::now() >= drain {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    drop(poller);
    let (acked, failed) = ctx.counts();
    let acked = acked - warm_acked;
    let failed = failed - warm_failed;
    let ack_latency = ctx.latency();
    Ok(E2eResult {
        sent,
        acked,
        failed: failed + sent.saturating_sub(acked + failed),
        received: 0,
        achieved_rate,
        ack_latency,
        e2e_latency: Histogram::default(),
    })
}
