//! `conveyor consume TOPIC`: print records from a starting point, either
//! from assigned partitions or as a member of a group that commits what it
//! read. Ends after `-n` records, or once no record came for `--timeout`.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::json;

use super::{Conn, Failure, Quiet, Result, finish};

/// The longest one poll waits, so the idle timeout is checked often.
const POLL_SLICE: Duration = Duration::from_millis(200);

#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    pub topic: String,
    /// Where to start: `beginning`, `end`, an offset (in every partition
    /// read), or `@MS` for the first record at or after a timestamp in
    /// milliseconds. With --group, only where the group has no committed
    /// offset: `beginning` or `end`.
    #[arg(long, value_name = "WHERE", default_value = "beginning", value_parser = parse_from)]
    pub from: From,
    /// Read as a member of this consumer group, sharing partitions with its
    /// other members, and commit the offsets read before exiting.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Read only these partitions (repeatable); not with --group.
    #[arg(long, value_name = "N", conflicts_with = "group")]
    pub partition: Vec<i32>,
    /// Exit after this many records.
    #[arg(short = 'n', long = "count", value_name = "COUNT")]
    pub count: Option<u64>,
    /// How each record is printed: `json` (one object per line), or a
    /// template where %t is the topic, %p the partition, %o the offset,
    /// %T the timestamp (ms), %k the key, %v the value, %h the headers
    /// (k=v,...) and %% a percent sign; \t, \n and \\ are escapes.
    #[arg(long, value_name = "TEMPLATE", default_value = "%v")]
    pub format: String,
    #[command(flatten)]
    pub conn: Conn,
}

/// Where consumption starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Beginning,
    End,
    Offset(i64),
    Timestamp(i64),
}

fn parse_from(s: &str) -> std::result::Result<From, String> {
    let bad = || format!("`{s}` is not beginning, end, an offset or @TIMESTAMP-MS");
    match s {
        "beginning" => Ok(From::Beginning),
        "end" => Ok(From::End),
        _ => match s.strip_prefix('@') {
            Some(ms) => ms.parse().map(From::Timestamp).map_err(|_| bad()),
            None => s
                .parse()
                .ok()
                .filter(|o: &i64| *o >= 0)
                .map(From::Offset)
                .ok_or_else(bad),
        },
    }
}

pub fn run(a: ConsumeArgs) -> ExitCode {
    finish(consume(&a))
}

fn consume(a: &ConsumeArgs) -> Result<()> {
    let template = Template::parse(&a.format);
    let mut config = a.conn.client_config();
    config
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set(
            "auto.offset.reset",
            if a.from == From::End {
                "latest"
            } else {
                "earliest"
            },
        );
    if let Some(g) = &a.group {
        if !matches!(a.from, From::Beginning | From::End) {
            return Err(Failure::usage(
                "--from OFFSET and --from @TIMESTAMP need partitions of its own; drop --group",
            ));
        }
        config.set("group.id", g);
    } else {
        // librdkafka refuses to assign partitions without a group id. This
        // one is never joined and never committed to.
        config.set("group.id", format!("conveyor-cli-{}", std::process::id()));
    }
    let consumer: BaseConsumer<Quiet> = config
        .create_with_context(Quiet)
        .map_err(|e| Failure::op(format!("cannot start a consumer: {e}")))?;
    let md = a.conn.metadata(consumer.client(), Some(&a.topic))?;
    let topic = md.topics().iter().find(|t| t.name() == a.topic);
    let partitions: Vec<i32> = match topic {
        Some(t) if t.error().is_none() => t.partitions().iter().map(|p| p.id()).collect(),
        _ => return Err(Failure::op(format!("topic {} does not exist", a.topic))),
    };
    if a.group.is_some() {
        consumer
            .subscribe(&[&a.topic])
            .map_err(|e| Failure::op(format!("subscribe to {}: {e}", a.topic)))?;
    } else {
        let chosen = if a.partition.is_empty() {
            partitions
        } else {
            if let Some(p) = a.partition.iter().find(|p| !partitions.contains(p)) {
                return Err(Failure::op(format!(
                    "topic {} has no partition {p}",
                    a.topic
                )));
            }
            a.partition.clone()
        };
        let assignment = start_offsets(a, &consumer, &chosen)?;
        consumer
            .assign(&assignment)
            .map_err(|e| Failure::op(format!("assign partitions of {}: {e}", a.topic)))?;
    }

    let mut out = std::io::stdout().lock();
    // A bar only for a count: an open-ended consume has no end to show.
    let progress = a
        .count
        .map(|n| super::progress::Progress::new("consumed", Some(n)));
    let mut read = 0u64;
    let mut idle_since = Instant::now();
    while a.count.is_none_or(|n| read < n) && idle_since.elapsed() < a.conn.timeout {
        let wait = POLL_SLICE.min(a.conn.timeout.saturating_sub(idle_since.elapsed()));
        match consumer.poll(wait) {
            None => {}
            Some(Ok(m)) => {
                let line = if a.format == "json" {
                    json_line(&m)
                } else {
                    template.render(&m)
                };
                let mut write = || writeln!(out, "{line}");
                match &progress {
                    Some(p) => p.suspend(write),
                    None => write(),
                }
                .map_err(|e| Failure::op(format!("writing to stdout: {e}")))?;
                read += 1;
                if let Some(p) = &progress {
                    p.inc();
                }
                idle_since = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => return Err(Failure::op(format!("consume {}: {e}", a.topic))),
        }
    }
    drop(progress);
    out.flush()
        .map_err(|e| Failure::op(format!("writing to stdout: {e}")))?;
    if let (Some(g), true) = (&a.group, read > 0) {
        consumer
            .commit_consumer_state(CommitMode::Sync)
            .map_err(|e| Failure::op(format!("commit offsets of group {g}: {e}")))?;
    }
    Ok(())
}

/// The assignment for `--from`, resolving timestamps with ListOffsets.
fn start_offsets(
    a: &ConsumeArgs,
    consumer: &BaseConsumer<Quiet>,
    partitions: &[i32],
) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    let offset = match a.from {
        From::Beginning => Offset::Beginning,
        From::End => Offset::End,
        From::Offset(o) => Offset::Offset(o),
        From::Timestamp(ms) => Offset::Offset(ms),
    };
    for &p in partitions {
        // Setting an offset on a partition just added cannot fail.
        tpl.add_partition_offset(&a.topic, p, offset)
            .expect("a new partition takes an offset");
    }
    if let From::Timestamp(_) = a.from {
        tpl = consumer
            .offsets_for_times(tpl, a.conn.timeout)
            .map_err(|e| Failure::op(format!("find offsets by timestamp in {}: {e}", a.topic)))?;
    }
    Ok(tpl)
}

/// One piece of a `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Value,
    Headers,
}

#[derive(Debug)]
struct Template(Vec<Piece>);

impl Template {
    fn parse(s: &str) -> Template {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            let field = match (c, chars.clone().next()) {
                ('%', Some(n)) => match n {
                    't' => Some(Piece::Topic),
                    'p' => Some(Piece::Partition),
                    'o' => Some(Piece::Offset),
                    'T' => Some(Piece::Timestamp),
                    'k' => Some(Piece::Key),
                    'v' => Some(Piece::Value),
                    'h' => Some(Piece::Headers),
                    '%' => Some(Piece::Text("%".into())),
                    _ => None,
                },
                ('\\', Some(n)) => match n {
                    't' => Some(Piece::Text("\t".into())),
                    'n' => Some(Piece::Text("\n".into())),
                    '\\' => Some(Piece::Text("\\".into())),
                    _ => None,
                },
                _ => None,
            };
            match field {
                Some(Piece::Text(t)) => {
                    chars.next();
                    text.push_str(&t);
                }
                Some(piece) => {
                    chars.next();
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(piece);
                }
                None => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Template(pieces)
    }

    fn render(&self, m: &BorrowedMessage<'_>) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Topic => out.push_str(m.topic()),
                Piece::Partition => out.push_str(&m.partition().to_string()),
                Piece::Offset => out.push_str(&m.offset().to_string()),
                Piece::Timestamp => {
                    out.push_str(&m.timestamp().to_millis().unwrap_or(-1).to_string());
                }
                Piece::Key => out.push_str(&text(m.key())),
                Piece::Value => out.push_str(&text(m.payload())),
                Piece::Headers => {
                    let pairs: Vec<String> = headers(m)
                        .into_iter()
                        .map(|(k, v)| format!("{k}={}", v.unwrap_or_default()))
                        .collect();
                    out.push_str(&pairs.join(","));
                }
            }
        }
        out
    }
}

fn text(bytes: Option<&[u8]>) -> String {
    bytes.map_or(String::new(), |b| String::from_utf8_lossy(b).into_owned())
}

fn headers(m: &BorrowedMessage<'_>) -> Vec<(String, Option<String>)> {
    m.headers().map_or(Vec::new(), |hs| {
        hs.iter()
            .map(|h| {
                let v = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                (h.key.to_owned(), v)
            })
            .collect()
    })
}

/// A record as one JSON object; a missing key or value is null, and the
/// headers are `[key, value]` pairs in order (a key may repeat).
fn json_line(m: &BorrowedMessage<'_>) -> String {
    let hs: Vec<_> = headers(m).into_iter().map(|(k, v)| json!([k, v])).collect();
    json!({
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "timestamp": m.timestamp().to_millis(),
        "key": m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "value": m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
        "headers": hs,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_values() {
        assert_eq!(parse_from("beginning"), Ok(From::Beginning));
        assert_eq!(parse_from("end"), Ok(From::End));
        assert_eq!(parse_from("42"), Ok(From::Offset(42)));
        assert_eq!(
            parse_from("@1700000000000"),
            Ok(From::Timestamp(1_700_000_000_000))
        );
        assert!(parse_from("-1").is_err());
        assert!(parse_from("start").is_err());
    }

    #[test]
    fn templates() {
        let t = Template::parse(r"%k\t%v 100%% %x");
        assert_eq!(
            t.0,
            vec![
                Piece::Key,
                Piece::Text("\t".into()),
                Piece::Value,
                Piece::Text(" 100% %x".into()),
            ]
        );
    }
}
