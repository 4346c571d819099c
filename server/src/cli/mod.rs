//! The Kafka-protocol subcommands of `conveyor`: `topic`, `produce`,
//! `consume`, `group` and `cluster`. They speak to any broker, Conveyor or
//! Apache Kafka, through librdkafka (the `rdkafka` crate).
//!
//! This module owns what they share: the connection flags, the quiet client
//! context, the first round trip that proves the broker answers, and the
//! error that becomes one `error: ...` line and an exit code.

pub mod cluster;
pub mod consume;
pub mod group;
pub mod output;
pub mod produce;
pub mod progress;
pub mod topic;

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;

/// Exit code for a broker or operation failure.
const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error clap cannot see (it uses 2 for its own).
const EXIT_USAGE: u8 = 2;

/// How to reach the broker; flattened into every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// The broker to bootstrap from; the rest of the cluster is learned
    /// from its metadata.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,

    /// How long to wait for the broker before giving up, e.g. 10s, 500ms or
    /// 2 (seconds). `consume` also stops after this long without a record.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Output of every subcommand but `consume`, which has templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON document for programs.
    Json,
}

/// Why a subcommand failed: one line, and the exit code that goes with it.
#[derive(Debug)]
pub struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    /// The broker refused or failed an operation, or could not be reached.
    pub fn op(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: EXIT_FAILURE,
        }
    }

    /// Arguments that parse but do not make sense together.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: EXIT_USAGE,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// Turn a subcommand's outcome into the process's exit code.
pub fn finish(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // A message from librdkafka may span lines; the contract is one.
            eprintln!("error: {}", f.message.replace('\n', " "));
            ExitCode::from(f.code)
        }
    }
}

/// A client context that keeps librdkafka's own log lines and error
/// callbacks off stderr: every failure reaches the user as the one
/// `error:` line of the operation that hit it.
#[derive(Debug, Default)]
pub struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _log_message: &str) {}
    fn error(&self, _error: KafkaError, _reason: &str) {}
}

impl ConsumerContext for Quiet {}

impl Conn {
    /// An admin client for this broker.
    pub fn admin(&self) -> Result<rdkafka::admin::AdminClient<Quiet>> {
        self.client_config()
            .create_with_context(Quiet)
            .map_err(|e| Failure::op(format!("cannot start a client: {e}")))
    }

    /// Admin request options bounded by `--timeout`.
    pub fn admin_options(&self) -> rdkafka::admin::AdminOptions {
        rdkafka::admin::AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout))
    }

    /// librdkafka settings every client of these subcommands starts from.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_server)
            .set("client.id", "conveyor-cli")
            .set("socket.timeout.ms", millis(self.timeout).to_string())
            // Looking at a topic must not create it; `produce` alone
            // leaves that to the broker's auto.create.topics.enable.
            .set("allow.auto.create.topics", "false")
            .set_log_level(RDKafkaLogLevel::Emerg);
        c
    }

    /// Cluster metadata (for one topic, or all), which also proves the
    /// broker answers: an unreachable one fails here, naming its address.
    pub fn metadata<C: ClientContext>(
        &self,
        client: &Client<C>,
        topic: Option<&str>,
    ) -> Result<Metadata> {
        client.fetch_metadata(topic, self.timeout).map_err(|e| {
            Failure::op(format!(
                "no answer from the broker at {} within {}: {e}",
                self.bootstrap_server,
                show_duration(self.timeout)
            ))
        })
    }
}

/// Milliseconds for a librdkafka setting, at least 1 and at most i32::MAX.
pub fn millis(d: Duration) -> u64 {
    d.as_millis().clamp(1, i32::MAX as u128) as u64
}

/// `10s`, `1.5s` or `250ms`.
pub fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// `500ms`, `10s`, `2m` or bare seconds (`2`, `0.5`).
fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 10s, 500ms or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: the unit must be ms, s or m")),
    };
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("`{s}` must be more than 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `KEY=VALUE` from a flag such as `--config` or `--header`.
pub fn parse_key_value(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// Wait for an admin future. librdkafka completes it on its own thread and
/// bounds it by the request timeout, so this never waits forever.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

/// The answer to a DeleteTopics or DeleteGroups of `names` (`what` is
/// `topic` or `group`): an error for the first that failed, or a line
/// (or JSON) per one deleted.
pub fn deleted<E: fmt::Display>(
    what: &str,
    names: &[String],
    results: Vec<std::result::Result<String, (String, E)>>,
    format: Format,
) -> Result<()> {
    for r in results {
        r.map_err(|(name, code)| Failure::op(format!("delete {what} {name}: {code}")))?;
    }
    let text: String = names
        .iter()
        .map(|n| format!("deleted {what} {n}\n"))
        .collect();
    output::emit(format, &text, &serde_json::json!({ "deleted": names }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
        assert_eq!(show_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(show_duration(Duration::from_secs(10)), "10s");
    }

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value("a=b=c"),
            Ok(("a".to_owned(), "b=c".to_owned()))
        );
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("x").is_err());
    }
}
