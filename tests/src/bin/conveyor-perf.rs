//! `conveyor-perf`: Kafka-style producer, consumer and end-to-end latency
//! perf tests on librdkafka, the machine's baselines, and the benchmark
//! matrix behind `scripts/bench`. Point it at a broker with `--bootstrap`,
//! or at librdkafka's in-process mock cluster with `--mock` (the client's
//! own ceiling).
//!
//! ```text
//! conveyor-perf produce --bootstrap 127.0.0.1:9092 --records 1000000 --record-size 100
//! conveyor-perf consume --bootstrap 127.0.0.1:9092 --topic perf
//! conveyor-perf e2e --mock --rate 10000 --seconds 5
//! conveyor-perf sendfile-baseline
//! conveyor-perf bench --conveyor target/release/conveyor --out bench.md
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[path = "../perf/mod.rs"]
mod perf;

use perf::Target;

#[derive(Debug, Parser)]
#[command(
    name = "conveyor-perf",
    about = "Kafka perf tests on librdkafka, and the benchmark matrix"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Produce N records of S bytes; records/s, MB/s and delivery latency.
    Produce(ProduceArgs),
    /// Read a topic from the beginning; records/s, MB/s, time to first record.
    Consume(ConsumeArgs),
    /// Produce at a fixed rate with a consumer in parallel; produce-to-ack
    /// and produce-to-consume latency.
    E2e(E2eArgs),
    /// Sequential write to the page cache (no fsync), MB/s.
    WriteBaseline(WriteArgs),
    /// sendfile(2) from a cached file to a 127.0.0.1 socket, MB/s.
    SendfileBaseline(SendfileArgs),
    /// The benchmark matrix against `conveyor serve` on every runtime, with
    /// baselines; prints a Markdown table.
    Bench(BenchArgs),
    /// Three brokers beside one: replicated produce throughput and the
    /// failover time after kill -9 of a leader; prints a Markdown table.
    Cluster(ClusterArgs),
}

#[derive(Debug, Args)]
struct ClusterArgs {
    /// The conveyor binary.
    #[arg(long, default_value = "target/release/conveyor")]
    conveyor: PathBuf,
    /// The runtime every broker runs.
    #[arg(long, default_value = "mio")]
    runtime: String,
    /// Seconds per throughput workload.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Where the data directories go.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// Extra broker setting for every `conveyor serve --set` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    broker_settings: Vec<String>,
    /// Failovers to measure (kill -9 of a leader each).
    #[arg(long, default_value_t = 3)]
    failovers: usize,
    /// A note printed under the table (the commit, say).
    #[arg(long)]
    note: Option<String>,
    /// Also save the table to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// An existing broker.
    #[arg(
        long,
        value_name = "HOST:PORT",
        required_unless_present = "mock",
        conflicts_with = "mock"
    )]
    bootstrap: Option<String>,
    /// librdkafka's in-process mock cluster (one broker) instead.
    #[arg(long)]
    mock: bool,
}

impl TargetArgs {
    fn target(&self) -> Result<Target, String> {
        match &self.bootstrap {
            Some(b) => Ok(Target::Broker(b.clone())),
            None => Target::mock(),
        }
    }
}

#[derive(Debug, Args)]
struct ProduceArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Topic (created when missing; default: a fresh one).
    #[arg(long)]
    topic: Option<String>,
    /// Partitions, for a topic this creates.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Records to send.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// acks: 0, 1, -1 (all).
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    acks: String,
    /// linger.ms.
    #[arg(long, default_value = "5")]
    linger_ms: String,
    /// batch.size (bytes).
    #[arg(long, default_value_t = 1_000_000)]
    batch_size: u64,
    /// batch.num.messages.
    #[arg(long, default_value_t = 10_000)]
    batch_num_messages: u64,
    /// compression.type: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Cap on records per second.
    #[arg(long, value_name = "RECORDS_PER_SEC")]
    rate: Option<f64>,
    /// Stop sending after this many seconds even if not all records were sent.
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Progress line interval in seconds (0: none).
    #[arg(long, default_value_t = 5.0)]
    progress: f64,
    /// Extra librdkafka producer setting (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Topic to read (all partitions, from the beginning).
    #[arg(long)]
    topic: String,
    /// Stop after this many records (default: when every partition is at its end).
    #[arg(long)]
    records: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Stop after this many seconds without a record.
    #[arg(long, default_value_t = 5.0)]
    idle_seconds: f64,
    /// Seek back to the beginning at each partition end (needs --records or
    /// --max-seconds).
    #[arg(long)]
    rewind: bool,
    /// Progress line interval in seconds (0: none).
    #[arg(long, default_value_t = 5.0)]
    progress: f64,
    /// Extra librdkafka consumer setting (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// With --mock: first produce this many records (of --record-size bytes)
    /// to the topic, since a fresh mock cluster is empty.
    #[arg(long, default_value_t = 0)]
    fill: u64,
    /// Record size for --fill.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Partitions for a topic --fill creates.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
}

#[derive(Debug, Args)]
struct E2eArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Topic (default: a fresh one).
    #[arg(long)]
    topic: Option<String>,
    /// Partitions, for a topic this creates.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Records per second.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Seconds to produce.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Bytes per record value (at least 24: run id, sequence, send time).
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// acks.
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    acks: String,
    /// linger.ms.
    #[arg(long, default_value = "0")]
    linger_ms: String,
    /// Extra librdkafka producer setting (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Extra librdkafka consumer setting (repeatable).
    #[arg(short = 'C', value_name = "KEY=VALUE")]
    consumer_set: Vec<String>,
}

#[derive(Debug, Args)]
struct WriteArgs {
    /// Directory for the temporary file (the broker's file system).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// Bytes to write at most.
    #[arg(long, default_value_t = 2 << 30)]
    bytes: u64,
    /// Bytes per write.
    #[arg(long, default_value_t = 1 << 20)]
    block: usize,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 5.0)]
    max_seconds: f64,
}

#[derive(Debug, Args)]
struct SendfileArgs {
    /// Directory for the temporary file.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// Size of the cached file (sent over and over).
    #[arg(long, default_value_t = 256 << 20)]
    file_size: u64,
    /// Bytes per sendfile call.
    #[arg(long, default_value_t = 1 << 20)]
    chunk: usize,
    /// Seconds to send.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// The conveyor binary.
    #[arg(long, default_value = "target/release/conveyor")]
    conveyor: PathBuf,
    /// A runtime to measure (repeatable; default: every one `conveyor serve
    /// --help` lists).
    #[arg(long = "runtime", value_name = "NAME")]
    runtimes: Vec<String>,
    /// Seconds per workload.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Where data directories and baseline files go.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// Extra broker setting for `conveyor serve --set` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    broker_settings: Vec<String>,
    /// Skip the mock-cluster client ceilings.
    #[arg(long)]
    no_mock: bool,
    /// Bytes the page-cache write baseline writes at most.
    #[arg(long, default_value_t = 4 << 30)]
    write_bytes: u64,
    /// A note printed under the table (the commit, say).
    #[arg(long)]
    note: Option<String>,
    /// Also measure Apache Kafka 4.4.0 the same way, in the same run
    /// (its jars come from Maven, once; needs `mvn` and a JDK 17+).
    #[arg(long)]
    kafka: bool,
    /// Also save the table to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("conveyor-perf: {e}");
            ExitCode::from(2)
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Ok(false): the run finished but something failed (delivery errors...).
fn run(cmd: Cmd) -> Result<bool, String> {
    match cmd {
        Cmd::Produce(a) => {
            let target = a.target.target()?;
            let topic = a.topic.unwrap_or_else(|| perf::unique_topic("perf"));
            target.create_topic(&topic, a.partitions)?;
            let mut opts = perf::produce::ProduceOpts::new(&topic, a.records, a.record_size);
            opts.partitions = a.partitions;
            opts.acks = a.acks;
            opts.linger_ms = a.linger_ms;
            opts.batch_size = a.batch_size;
            opts.batch_num_messages = a.batch_num_messages;
            opts.compression = a.compression;
            opts.rate = a.rate;
            opts.max_time = a.max_seconds.map(secs);
            opts.progress = secs(a.progress);
            opts.overrides = a.set;
            eprintln!("producing to {topic} on {}", target.bootstrap());
            let r = perf::produce::run(&opts, &target.bootstrap())?;
            println!("{}", r.summary());
            Ok(r.failed == 0)
        }
        Cmd::Consume(a) => {
            let target = a.target.target()?;
            if a.fill > 0 {
                target.create_topic(&a.topic, a.partitions)?;
                let mut opts = perf::produce::ProduceOpts::new(&a.topic, a.fill, a.record_size);
                opts.progress = Duration::ZERO;
                let r = perf::produce::run(&opts, &target.bootstrap())?;
                eprintln!("fill: {}", r.summary());
            }
            let mut opts = perf::consume::ConsumeOpts::new(&a.topic);
            opts.records = a.records;
            opts.max_time = a.max_seconds.map(secs);
            opts.idle = secs(a.idle_seconds);
            opts.rewind = a.rewind;
            opts.progress = secs(a.progress);
            opts.overrides = a.set;
            if opts.rewind && opts.records.is_none() && opts.max_time.is_none() {
                return Err("--rewind needs --records or --max-seconds".into());
            }
            let r = perf::consume::run(&opts, &target.bootstrap())?;
            println!("{}", r.summary());
            Ok(r.error.is_none())
        }
        Cmd::E2e(a) => {
            let target = a.target.target()?;
            let topic = a.topic.unwrap_or_else(|| perf::unique_topic("e2e"));
            target.create_topic(&topic, a.partitions)?;
            let mut produce = perf::produce::ProduceOpts::new(&topic, 0, a.record_size);
            produce.partitions = a.partitions;
            produce.acks = a.acks;
            produce.linger_ms = a.linger_ms;
            produce.overrides = a.set;
            let opts = perf::e2e::E2eOpts {
                produce,
                rate: a.rate,
                duration: secs(a.seconds),
                consumer_overrides: a.consumer_set,
            };
            let r = perf::e2e::run(&opts, &target.bootstrap())?;
            println!("{}", r.summary());
            Ok(r.failed == 0 && r.received == r.sent)
        }
        Cmd::WriteBaseline(a) => {
            let t =
                perf::baseline::page_cache_write(&a.dir, a.bytes, a.block, secs(a.max_seconds))?;
            println!("{}", t.summary("page-cache write"));
            Ok(true)
        }
        Cmd::SendfileBaseline(a) => {
            let t =
                perf::baseline::sendfile_loopback(&a.dir, a.file_size, a.chunk, secs(a.seconds))?;
            println!("{}", t.summary("sendfile loopback"));
            Ok(true)
        }
        Cmd::Bench(a) => {
            let opts = perf::bench::BenchOpts {
                conveyor: a.conveyor,
                runtimes: a.runtimes,
                seconds: a.seconds,
                dir: a.dir,
                broker_settings: a.broker_settings,
                no_mock: a.no_mock,
                write_bytes: a.write_bytes,
                note: a.note,
                kafka: a.kafka,
            };
            let report = perf::bench::run(&opts)?;
            print_and_save(&report, a.out.as_deref())?;
            Ok(true)
        }
        Cmd::Cluster(a) => {
            let opts = perf::cluster::ClusterOpts {
                conveyor: a.conveyor,
                runtime: a.runtime,
                seconds: a.seconds,
                dir: a.dir,
                broker_settings: a.broker_settings,
                failovers: a.failovers,
                note: a.note,
            };
            let report = perf::cluster::run(&opts)?;
            print_and_save(&report, a.out.as_deref())?;
            Ok(true)
        }
    }
}

fn print_and_save(report: &str, out: Option<&std::path::Path>) -> Result<(), String> {
    println!("{report}");
    if let Some(out) = out {
        std::fs::write(out, report).map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!("saved to {}", out.display());
    }
    Ok(())
}
