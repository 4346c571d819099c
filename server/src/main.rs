//! `conveyor`: a Kafka-compatible log broker.
//!
//! Reads the configuration (a `server.properties` file, then flags), starts
//! the chosen runtime, and shuts down cleanly on SIGINT or SIGTERM.

mod config;

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
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve Kafka clients (the default with no command).
    ///
    /// Settings are applied in this order, later ones winning: defaults,
    /// the --config file, each --set in order, then --listen, --data-dir
    /// and --runtime. Set RUST_LOG (default `info`) to choose what is logged.
    Serve(ServeArgs),
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
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => ServeArgs::default(),
    };
    init_logging();
    let (config, listen) = match configure(&args) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    match serve(config, listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_RUNTIME, &e),
    }
}

fn fail(code: u8, e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(code)
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Fails only when a global subscriber is already set, and then logs
    // still go somewhere.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
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
