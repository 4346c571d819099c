//! `conveyor`: a Kafka-compatible log broker.
//!
//! Reads the configuration (a `server.properties` file, then flags), starts
//! the chosen runtime, and shuts down cleanly on SIGINT or SIGTERM.

mod cli;
mod config;
mod logtool;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing_subscriber::EnvFilter;

use config::{Problem, ServerConfig};

/// Exit code for a configuration the server cannot accept.
const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure while starting or running.
const EXIT_RUNTIME: u8 = 1;

/// A Kafka-compatible, append-only log broker.
///
/// Any Kafka client can produce to it and consume from it. Run
/// `conveyor serve --help` for the settings.
#[derive(Debug, Parser)]
#[command(name = "conveyor", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// How log lines are written to stderr: `text` for people, `json` (one
    /// object per line: timestamp, level, target, fields) for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve Kafka clients (the default with no command).
    ///
    /// Settings are applied in this order, later ones winning: defaults,
    /// the --config file, each --set in order, then --listen, --data-dir
    /// and --runtime. Set RUST_LOG (default `info`) to choose what is logged.
    Serve(ServeArgs),
    /// Read a data directory's segment files offline.
    #[command(subcommand)]
    Log(LogCommand),
    /// Create, list, describe, delete and configure topics on any Kafka
    /// broker.
    #[command(subcommand)]
    Topic(cli::topic::TopicCommand),
    /// Write each line of stdin to a topic as a record.
    Produce(cli::produce::ProduceArgs),
    /// Print a topic's records, alone or as a member of a consumer group.
    Consume(cli::consume::ConsumeArgs),
    /// List, describe (with lag), delete and reset consumer groups.
    #[command(subcommand)]
    Group(cli::group::GroupCommand),
    /// Show the cluster's brokers, controller and id.
    #[command(subcommand)]
    Cluster(cli::cluster::ClusterCommand),
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Print segments and indexes as kafka-dump-log does: every batch
    /// (offsets, producer, codec, CRC), every index entry, and with
    /// --records every record.
    Dump(DumpArgs),
    /// Check segments and indexes: whole batches, CRCs, offsets in order,
    /// records that parse, index entries that point at batches. Prints one
    /// line per file; exits 1 naming the file and byte position of each
    /// problem.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct DumpArgs {
    /// Segment files (`.log`, `.index`, `.timeindex`), partition
    /// directories or a data directory.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Also print every record: offset, timestamp, sizes, header keys, key
    /// and value (as text; other bytes as \xNN).
    #[arg(long)]
    records: bool,
    /// The most bytes one batch's records may decompress to.
    #[arg(long, value_name = "BYTES", default_value_t = 128 << 20)]
    max_batch_bytes: usize,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Segment files, partition directories or a data directory.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The most bytes one batch's records may decompress to.
    #[arg(long, value_name = "BYTES", default_value_t = 128 << 20)]
    max_batch_bytes: usize,
}

#[derive(Debug, Default, clap::Args)]
struct ServeArgs {
    /// A Kafka `server.properties` file: `key=value` lines with Kafka's
    /// setting names (`listeners`, `log.dirs`, `num.partitions`,
    /// `log.retention.hours`, ...); `#` and `!` start comments.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The address to listen on [default: 127.0.0.1:9092]. Port 0 picks a
    /// free port.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,

    /// Where the logs are kept [default: ./data]; created if missing.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// The I/O runtime [default: mio, the fastest in the benchmarks]. Valid:
    /// threads (a thread per connection), mio (one event-loop thread),
    /// tokio, smol.
    #[arg(long, value_name = "NAME")]
    runtime: Option<String>,

    /// Override one setting, as the config file spells it (repeatable;
    /// applied after the file), e.g. --set log.segment.bytes=1048576.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        Some(Command::Log(cmd)) => return log_command(cmd),
        Some(Command::Topic(cmd)) => return cli::topic::run(cmd),
        Some(Command::Produce(args)) => return cli::produce::run(args),
        Some(Command::Consume(args)) => return cli::consume::run(args),
        Some(Command::Group(cmd)) => return cli::group::run(cmd),
        Some(Command::Cluster(cmd)) => return cli::cluster::run(cmd),
        None => ServeArgs::default(),
    };
    let (config, listen) = match configure(&args) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    match serve(config, listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_RUNTIME, &e),
    }
}

/// Exit code for a log that fails `log verify`.
const EXIT_CORRUPT: u8 = 1;

fn log_command(cmd: LogCommand) -> ExitCode {
    let (LogCommand::Dump(DumpArgs { paths, .. }) | LogCommand::Verify(VerifyArgs { paths, .. })) =
        &cmd;
    let files = match logtool::segment_files(paths) {
        Ok(f) => f,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    match cmd {
        LogCommand::Dump(args) => {
            let opts = logtool::DumpOptions {
                records: args.records,
                max_batch_bytes: args.max_batch_bytes,
            };
            let mut out = std::io::stdout().lock();
            for f in files {
                if let Err(e) = logtool::dump(&f, opts, &mut out) {
                    return fail(EXIT_RUNTIME, &e);
                }
            }
            ExitCode::SUCCESS
        }
        LogCommand::Verify(args) => {
            let mut bad = 0;
            for f in &files {
                match logtool::verify(f, args.max_batch_bytes) {
                    Ok(c) => {
                        let offsets = c.offsets.map_or("no offsets".to_owned(), |(a, b)| {
                            format!("offsets {a}..={b}")
                        });
                        let noun = if c.path.extension().is_some_and(|e| e == "log") {
                            "batches"
                        } else {
                            "entries"
                        };
                        println!("ok {}: {} {noun}, {offsets}", c.path.display(), c.entries);
                    }
                    Err(p) => {
                        bad += 1;
                        println!("CORRUPT {p}");
                    }
                }
            }
            if bad > 0 {
                eprintln!("error: {bad} of {} files failed verification", files.len());
                return ExitCode::from(EXIT_CORRUPT);
            }
            ExitCode::SUCCESS
        }
    }
}

fn fail(code: u8, e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(code)
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Fails only when a global subscriber is already set, and then logs
    // still go somewhere.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The effective configuration (defaults, file, `--set`s, then flags) and
/// the resolved listen address.
fn configure(args: &ServeArgs) -> Result<(ServerConfig, SocketAddr), Problem> {
    let mut c = ServerConfig::default();
    if let Some(path) = &args.config {
        c.load_file(path)?;
    }
    for kv in &args.set {
        c.set_override(kv)?;
    }
    if let Some(listen) = &args.listen {
        c.listen =
            config::HostPort::parse(listen).map_err(|e| Problem(format!("--listen: {e}")))?;
    }
    if let Some(dir) = &args.data_dir {
        c.data_dir.clone_from(dir);
    }
    if let Some(name) = &args.runtime {
        c.runtime = name
            .parse()
            .map_err(|e| Problem(format!("--runtime: {e}")))?;
    }
    let advertised = c.advertised();
    c.broker.advertised_host = advertised.host;
    c.broker.advertised_port = advertised.port;
    let listen = c
        .listen
        .resolve()
        .map_err(|e| Problem(format!("listen address {}: {e}", c.listen)))?;
    Ok((c, listen))
}

fn serve(c: ServerConfig, listen: SocketAddr) -> Result<(), String> {
    for w in &c.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        listen = %listen,
        data_dir = %c.data_dir.display(),
        runtime = c.runtime.name(),
        "starting conveyor {}",
        env!("CARGO_PKG_VERSION"),
    );
    tracing::info!(broker = ?c.broker, "broker configuration");
    run(listen, c)
}

/// Start the configured runtime and serve until SIGINT or SIGTERM.
fn run(listen: SocketAddr, c: ServerConfig) -> Result<(), String> {
    // Signals are caught before the broker starts, so none can kill it
    // midway through startup without a clean shutdown.
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("cannot handle signals: {e}"))?;
    let running = c
        .runtime
        .start(conveyor_io_std::Options {
            listen,
            data_dir: c.data_dir,
            broker: c.broker,
        })
        .map_err(|e| e.to_string())?;
    tracing::info!(addr = %running.local_addr(), "serving");
    let handle = running.shutdown_handle();
    std::thread::Builder::new()
        .name("conveyor-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if handle.is_requested() {
                    // A second signal: the operator will not wait.
                    eprintln!("error: signal {sig} during shutdown; exiting at once");
                    std::process::exit(i32::from(EXIT_RUNTIME));
                }
                tracing::info!(signal = sig, "shutting down");
                handle.shutdown();
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    running.wait().map_err(|e| format!("shutdown: {e}"))
}
