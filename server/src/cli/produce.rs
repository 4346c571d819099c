//! `conveyor produce TOPIC`: each line of stdin becomes a record, with an
//! optional key cut at a separator and the same headers on every record.
//! The command ends once every record is acknowledged or has failed, and
//! any failure makes it an error.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use serde_json::json;

use super::{Conn, Failure, Format, Result, finish, millis, parse_key_value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Acks {
    /// Every in-sync replica has the record.
    All,
    /// The leader has the record.
    #[value(name = "1")]
    Leader,
    /// Nothing: a record counts as acknowledged once sent.
    #[value(name = "0")]
    None,
}

#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// The topic to write to.
    pub topic: String,
    /// Split each line at the first SEP: before it is the key, after it the
    /// value. Lines without SEP have no key.
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header put on every record, e.g. --header source=cli (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// How batches are compressed on the wire and on disk.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// What the broker must do before acknowledging a record.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    pub acks: Acks,
    /// Write every record to this partition; by default the key picks it
    /// (records without a key are spread).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    #[command(flatten)]
    pub conn: Conn,
    /// Print the summary as a line or as JSON.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Counts deliveries and keeps the first failure.
#[derive(Debug, Default)]
struct Deliveries {
    acked: AtomicUsize,
    failed: AtomicUsize,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, _: &str) {}
    fn error(&self, _: KafkaError, _: &str) {}
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                // A poisoned lock only means another callback panicked;
                // the message is still worth keeping.
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

pub fn run(a: ProduceArgs) -> ExitCode {
    finish(produce(&a))
}

fn produce(a: &ProduceArgs) -> Result<()> {
    let mut config = a.conn.client_config();
    let compression = format!("{:?}", a.compression).to_lowercase();
    let acks = match a.acks {
        Acks::All => "all",
        Acks::Leader => "1",
        Acks::None => "0",
    };
    config
        .set("compression.type", &compression)
        .set("acks", acks)
        // A record the broker never acknowledges fails after --timeout
        // instead of waiting out librdkafka's five-minute default.
        .set("message.timeout.ms", millis(a.conn.timeout).to_string())
        .set("linger.ms", "5")
        // As any producer: a missing topic is created if the broker's
        // auto.create.topics.enable allows it.
        .set("allow.auto.create.topics", "true");
    let producer: BaseProducer<Deliveries> = config
        .create_with_context(Deliveries::default())
        .map_err(|e| Failure::op(format!("cannot start a producer: {e}")))?;
    a.conn.metadata(producer.client(), Some(&a.topic))?;

    let mut headers = OwnedHeaders::new();
    for (k, v) in &a.headers {
        headers = headers.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    let stdin = std::io::stdin().lock();
    let progress = super::progress::Progress::new("sent", None);
    let mut sent = 0usize;
    for line in stdin.split(b'\n') {
        let mut line = line.map_err(|e| Failure::op(format!("reading stdin: {e}")))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let (key, value) = split_key(&line, a.key_separator.as_deref());
        let mut record = BaseRecord::to(&a.topic)
            .payload(value)
            .headers(headers.clone());
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = a.partition {
            record = record.partition(p);
        }
        send(&producer, record, a.conn.timeout)?;
        sent += 1;
        progress.inc();
    }
    drop(progress);
    // Every record is acknowledged or failed within message.timeout.ms;
    // the flush waits a little longer so their callbacks have run.
    let flushed = producer.flush(a.conn.timeout + Duration::from_secs(5));
    let ctx = producer.context();
    let acked = ctx.acked.load(Ordering::Relaxed);
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 || flushed.is_err() {
        let why = ctx
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or_else(|| flushed.err().map(|e| e.to_string()))
            .unwrap_or_default();
        return Err(Failure::op(format!(
            "{} of {sent} records to {} were not acknowledged by {}: {why}",
            sent - acked,
            a.topic,
            a.conn.bootstrap_server
        )));
    }
    let text = format!("acknowledged {acked} records to {}\n", a.topic);
    super::output::emit(
        a.format,
        &text,
        &json!({ "topic": a.topic, "acknowledged": acked }),
    )
}

/// The key and value of one line.
fn split_key<'a>(line: &'a [u8], separator: Option<&str>) -> (Option<&'a [u8]>, &'a [u8]) {
    let Some(sep) = separator.map(str::as_bytes).filter(|s| !s.is_empty()) else {
        return (None, line);
    };
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (Some(&line[..i]), &line[i + sep.len()..]),
        None => (None, line),
    }
}

/// Queue one record, serving delivery callbacks while librdkafka's queue is
/// full; gives up if it stays full for the whole timeout.
fn send(
    producer: &BaseProducer<Deliveries>,
    mut record: BaseRecord<'_, [u8], [u8]>,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match producer.send(record) {
            Ok(()) => {
                producer.poll(Duration::ZERO);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                if Instant::now() < deadline =>
            {
                record = r;
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => return Err(Failure::op(format!("produce: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_key;

    #[test]
    fn keys_are_cut_at_the_first_separator() {
        assert_eq!(
            split_key(b"k1:a:b", Some(":")),
            (Some(&b"k1"[..]), &b"a:b"[..])
        );
        assert_eq!(split_key(b"novalue", Some(":")), (None, &b"novalue"[..]));
        assert_eq!(split_key(b"k::v", Some("::")), (Some(&b"k"[..]), &b"v"[..]));
        assert_eq!(split_key(b"a:b", None), (None, &b"a:b"[..]));
    }
}
