//! # conveyor-io-std: Conveyor on std threads, on a mio event loop, and the shared pieces of every runtime
//!
//! This crate runs a [`conveyor_core::Broker`] over real sockets and files,
//! and promises to decide nothing a Kafka client could observe: it moves
//! bytes and runs the core's commands. It holds the system calls every
//! runtime shares, written once: the **sequential segment writer** (append,
//! `fdatasync`, open, remove, on one thread in issue order) and the
//! **sendfile fetcher** (record bytes from the segment file to the socket
//! with `sendfile(2)`, resuming after partial writes and `EAGAIN`). The
//! segment writer hands each `Sync` to an **fsync worker** thread (group
//! commit), so appends behind it do not wait for the disk. The state these
//! threads share is built from [`conveyor_core::sync`]'s model-checked
//! pieces.
//!
//! Layout: `host.rs` is the one connection table every driver keeps beside
//! the broker (read buffers, the broker's read interest, command routing,
//! the clamped wall clock, allocator trims); `storage/` holds the system
//! calls (segment writer and fsync worker, sendfile, the data directory);
//! `drivers/` holds the three ways of running a host.
//!
//! Runtimes, each returning the same [`Running`] handle:
//!
//! - [`start`] (`threads`): a listener thread; per connection a reader
//!   thread that stops reading while the broker says so and a
//!   writer thread that writes the connection's `Send`s in order; a timer
//!   thread. Every thread funnels its input through one step: lock the
//!   broker, apply the input, drain `poll`, queue each command for its
//!   thread.
//! - [`start_mio`] (`mio`): one event-loop thread owns the broker and every
//!   non-blocking socket; readiness drives partial reads and writes, and the
//!   loop bounds its work per turn ([`IO_LOOP_BOUND`]). File work runs on
//!   the segment writer thread, whose completions come back through a
//!   channel and a `mio::Waker`.
//! - [`async_drive`]: one drive loop for async runtimes, written against the
//!   [`async_drive::AsyncRuntime`] trait; `conveyor-io-tokio` and
//!   `conveyor-io-smol` implement it in a few dozen lines each.
//!
//! At startup every runtime creates and locks the data directory, reads what
//! recovery needs (maps each segment's files read-only with `memmap2`) and
//! hands it to [`conveyor_core::Broker::new`].
//!
//! ## Example: a broker in your own process
//!
//! ```no_run
//! use conveyor_io_std::{Options, start};
//!
//! # fn main() -> std::io::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let running = start(Options {
//!     // Port 0 picks a free port; the broker advertises the one it got.
//!     listen: "127.0.0.1:0".parse().expect("a literal socket address"),
//!     data_dir: dir.path().join("data"),
//!     broker: conveyor_core::Config::default(),
//! })?;
//! println!("Kafka clients can connect to {}", running.local_addr());
//!
//! // From a signal handler's thread, or anywhere else:
//! let handle = running.shutdown_handle();
//! std::thread::spawn(move || handle.shutdown());
//!
//! // Blocks until the handle fires, then shuts down cleanly: logs synced,
//! // checkpoints and the clean-shutdown marker written.
//! running.wait()?;
//! # Ok(())
//! # }
//! ```
//!
//! [`Running::shutdown`] does the same at once; dropping a [`Running`] shuts
//! it down too.
//!
//! ## An in-process broker for your integration tests
//!
//! Instead of a JVM in a container, a Rust test can start a real broker in
//! one call, on an ephemeral port over a temporary directory, and stop it by
//! dropping it (add `conveyor-io-std`, `conveyor-core` and `tempfile` as
//! dev-dependencies):
//!
//! ```
//! use conveyor_io_std::{Options, start};
//!
//! # fn main() -> std::io::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let broker = start(Options {
//!     listen: "127.0.0.1:0".parse().expect("a literal socket address"),
//!     data_dir: dir.path().to_owned(),
//!     broker: conveyor_core::Config::default(),
//! })?;
//! let bootstrap = broker.local_addr().to_string(); // for `bootstrap.servers`
//! # let _ = bootstrap;
//! // ... produce and consume with any Kafka client ...
//! drop(broker); // clean shutdown; then `dir` is removed
//! # Ok(())
//! # }
//! ```
//!
//! ## What the host process must provide
//!
//! - `SIGPIPE` ignored, as every Rust `main` arranges: `sendfile(2)` and
//!   `writev(2)` to a socket the peer has reset raise it.
//! - Enough file descriptors: a socket per connection (and two threads with
//!   the `threads` runtime), and three files per open segment (as in Kafka,
//!   raise `ulimit -n`).

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod drivers;
pub mod embed;
mod host;
mod metrics;
mod rbuf;
mod storage;

pub use drivers::async_drive;

use std::fmt;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use conveyor_core::Broker;

pub use metrics::MetricsServer;
pub use storage::disk::read_disk_state;
pub use storage::send::Stats;

pub use drivers::mio_loop::IO_LOOP_BOUND;

use drivers::threads::{self as runtime, Shared, Threads, drive};
use host::Clock;
use storage::segment::{DiskExec, SegTable, SegmentWriter};

/// How long [`Running::shutdown`] waits for the broker to finish its clean
/// shutdown (sync every log, write checkpoints and the marker).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The address to listen on. With port 0 the system picks one, and the
    /// broker advertises the port it got and this IP.
    pub listen: SocketAddr,
    /// The data directory; created if missing.
    pub data_dir: PathBuf,
    /// The broker's settings. Its `log_dir` is set to `data_dir`'s
    /// absolute path.
    pub broker: conveyor_core::Config,
}

/// Starts a shutdown of a [`Running`] broker from any thread; cloneable.
#[derive(Debug, Clone, Default)]
pub struct ShutdownHandle(Arc<(Mutex<bool>, Condvar)>);

impl ShutdownHandle {
    /// Ask for a shutdown: [`Running::wait`] returns after shutting down.
    pub fn shutdown(&self) {
        let (flag, cond) = &*self.0;
        *flag.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cond.notify_all();
    }

    /// Whether a shutdown was asked for.
    pub fn is_requested(&self) -> bool {
        *self.0.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wait(&self) {
        let (flag, cond) = &*self.0;
        let mut asked = flag.lock().unwrap_or_else(PoisonError::into_inner);
        while !*asked {
            asked = cond.wait(asked).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A running broker, whatever its runtime. Shut it down with
/// [`Running::shutdown`], [`Running::wait`] or by dropping it.
pub struct Running {
    local_addr: SocketAddr,
    stats: Arc<Stats>,
    /// Stopped after the runtime.
    metrics: Option<MetricsServer>,
    handle: ShutdownHandle,
    /// Stops the runtime and joins what it started; taken by the first stop.
    stop: Option<StopFn>,
}

/// A runtime's clean stop: shut the broker down, close every connection,
/// join every thread or task, release the data directory's lock.
pub type StopFn = Box<dyn FnOnce() -> io::Result<()> + Send>;

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("local_addr", &self.local_addr)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What every runtime does before it serves: bind, take the data
/// directory's lock, read it and recover the broker from it.
pub(crate) struct Prepared {
    pub(crate) listener: TcpListener,
    pub(crate) local_addr: SocketAddr,
    pub(crate) broker: Broker,
    pub(crate) clock: Clock,
    /// Holds the data directory's lock until the runtime is gone.
    pub(crate) lock: File,
    /// The runtime's counters, which the metrics show too.
    pub(crate) stats: Arc<Stats>,
    /// The open segments' files, shared by the writer and the senders.
    pub(crate) segs: Arc<SegTable>,
    /// The segment writer's executor over the data directory.
    pub(crate) exec: DiskExec,
    /// The metrics endpoint, serving already (`metrics.listen`).
    pub(crate) metrics: Option<MetricsServer>,
}

/// Bind, lock and read the data directory, recover the broker.
///
/// Errors name what failed: the address that cannot be bound, the data
/// directory that cannot be created, written or read.
pub(crate) fn prepare(opts: Options) -> io::Result<Prepared> {
    let Options {
        listen,
        data_dir,
        broker: mut config,
    } = opts;
    let listener = TcpListener::bind(listen)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    let local_addr = listener.local_addr()?;
    if listen.port() == 0 {
        config.advertised_port = local_addr.port();
        config.advertised_host = connectable(local_addr).ip().to_string();
    }
    let advertised = format!("{}:{}", config.advertised_host, config.advertised_port);
    let lock = storage::disk::prepare(&data_dir)?;
    // DescribeLogDirs names the directory by its absolute path, as Kafka.
    config.log_dir = std::path::absolute(&data_dir)?.display().to_string();
    let disk = read_disk_state(&data_dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read data directory {}: {e}", data_dir.display()),
        )
    })?;
    let clock = Clock::new();
    let mut broker = Broker::new(
        config,
        conveyor_core::Now::new(clock.mono(), Clock::wall_ms()),
        disk,
    );
    let stats = Arc::new(Stats::default());
    let segs = Arc::new(SegTable::default());
    let fsync = metrics::fsync_histogram();
    let exec = DiskExec::new(data_dir, Arc::clone(&segs))
        .with_threads(broker.config())
        .with_fsync_histogram(fsync.clone());
    let registry = broker.take_metrics();
    let plan = metrics::Plan::new(&broker.config().metrics_listen, registry, &fsync);
    let metrics = plan.serve(Arc::clone(&stats))?;
    tracing::info!(addr = %local_addr, advertised = %advertised, "listening");
    Ok(Prepared {
        listener,
        local_addr,
        broker,
        clock,
        lock,
        stats,
        segs,
        exec,
        metrics,
    })
}

/// Start the `threads` runtime: bind, recover the data directory and serve
/// with a thread per connection.
///
/// Errors name what failed: the address that cannot be bound, the data
/// directory that cannot be created, written or read.
pub fn start(opts: Options) -> io::Result<Running> {
    let p = prepare(opts)?;
    let local_addr = p.local_addr;
    let (seg_tx, seg_rx) = mpsc::channel();
    let exec = p.exec;
    let stats = p.stats;
    let shared = Shared::new(p.broker, p.clock, seg_tx, p.segs, Arc::clone(&stats));

    let mut threads = Threads::new(Arc::clone(&shared), local_addr, p.lock);
    // From here on, dropping `threads` on an error stops what was started.
    let s = Arc::clone(&shared);
    let writer = SegmentWriter::start(exec, move |mut dones| {
        runtime::report_dones(&s, &mut dones);
    })?;
    let s = Arc::clone(&shared);
    threads.seg_writer = Some(spawn("conveyor-segments", move || {
        runtime::segment_writer(s, writer, seg_rx);
    })?);
    let s = Arc::clone(&shared);
    threads.timer = Some(spawn("conveyor-timer", move || runtime::timer(s))?);
    // Recovery's commands are queued before the first connection arrives.
    drive(&shared, |_, _| {});
    let s = Arc::clone(&shared);
    let stop = Arc::clone(&threads.stop_accepting);
    let listener = p.listener;
    threads.listener = Some(spawn("conveyor-listen", move || {
        runtime::listener(s, listener, stop);
    })?);
    Ok(Running::new(
        local_addr,
        stats,
        ShutdownHandle::default(),
        Box::new(move || threads.stop()),
    )
    .with_metrics(p.metrics))
}

/// Start the `mio` runtime: bind, recover the data directory and serve every
/// connection from one event-loop thread (see the crate docs).
///
/// Errors name what failed, as [`start`]'s do.
pub fn start_mio(opts: Options) -> io::Result<Running> {
    drivers::mio_loop::start(prepare(opts)?)
}

pub(crate) fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name(name.to_owned()).spawn(f)
}

/// An address a local client can connect to: the wildcard address becomes
/// loopback.
pub(crate) fn connectable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

impl Running {
    /// A handle on a running runtime: where it listens, its counters, the
    /// handle that makes [`Running::wait`] return, and how to stop it
    /// (called once, by the first of [`Running::shutdown`],
    /// [`Running::wait`] or drop). For a custom runtime built on this
    /// crate's pieces.
    pub fn new(
        local_addr: SocketAddr,
        stats: Arc<Stats>,
        handle: ShutdownHandle,
        stop: StopFn,
    ) -> Running {
        Running {
            local_addr,
            stats,
            metrics: None,
            handle,
            stop: Some(stop),
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serve `metrics` while running; stopped after the runtime.
    pub fn with_metrics(mut self, metrics: Option<MetricsServer>) -> Running {
        self.metrics = metrics;
        self
    }

    /// Where the metrics are served (`metrics.listen`), if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::local_addr)
    }

    /// Counters of the runtime's work.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// A handle that makes [`Running::wait`] shut down, from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Block until a [`ShutdownHandle`] asks for a shutdown, then shut down.
    pub fn wait(mut self) -> io::Result<()> {
        self.handle.wait();
        self.stop()
    }

    /// Shut down cleanly: stop accepting, let the broker sync its logs and
    /// write its checkpoints and clean-shutdown marker, close every
    /// connection and join every thread. Fails if the broker does not finish
    /// within [`SHUTDOWN_TIMEOUT`] or a thread panicked; the runtime is
    /// stopped either way.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        let Some(stop) = self.stop.take() else {
            return Ok(()); // already stopped
        };
        self.handle.shutdown();
        let result = stop();
        drop(self.metrics.take());
        match &result {
            Ok(()) => tracing::info!("stopped"),
            Err(e) => tracing::error!(error = %e, "unclean shutdown"),
        }
        result
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // `stop` logs the outcome; a drop has nobody to return it to.
        let _ = self.stop();
    }
}
