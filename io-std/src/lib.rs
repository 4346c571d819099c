//! # conveyor-io-std: Conveyor on blocking threads
//!
//! This crate runs a [`conveyor_core::Broker`] with plain threads and
//! blocking system calls, and promises to decide nothing a Kafka client
//! could observe: it moves bytes and runs the core's commands.
//!
//! - a **listener** thread accepts connections (`TCP_NODELAY` on);
//! - per connection, a **reader** thread feeds the broker what arrives and
//!   stops reading while the broker does not want more, and a **writer**
//!   thread writes the connection's `Send`s in order, record bytes straight
//!   from the segment file with `sendfile(2)`;
//! - one **segment writer** thread runs every file command in issue order;
//! - a **timer** thread calls `handle_timeout` when the broker's deadline
//!   passes.
//!
//! Every thread funnels its input through one step: lock the broker, apply
//! the input, drain `poll` and queue each command for its thread, all under
//! the lock, so commands for a connection or a segment keep their order.
//!
//! At startup it creates and locks the data directory, reads what recovery
//! needs (maps each segment's files read-only with `memmap2`) and hands it to
//! [`conveyor_core::Broker::new`].
//!
//! ## Example
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
//! ## What the host process must provide
//!
//! - `SIGPIPE` ignored, as every Rust `main` arranges: `sendfile(2)` and
//!   `writev(2)` to a socket the peer has reset raise it.
//! - Enough file descriptors: two threads and a socket per connection, and
//!   three files per open segment (as in Kafka, raise `ulimit -n`).

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod disk;
mod runtime;
mod segment;
mod send;

use std::fmt;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use conveyor_core::Broker;

pub use disk::read_disk_state;
pub use send::Stats;

use runtime::{Clock, Shared, drive};
use segment::{DiskExec, SegTable};

/// How long [`Running::shutdown`] waits for the broker to finish its clean
/// shutdown (sync every log, write checkpoints and the marker).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a shutdown waits for the listener's wake-up connection.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The address to listen on. With port 0 the system picks one, and the
    /// broker advertises the port it got and this IP.
    pub listen: SocketAddr,
    /// The data directory; created if missing.
    pub data_dir: PathBuf,
    /// The broker's settings.
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

    fn wait(&self) {
        let (flag, cond) = &*self.0;
        let mut asked = flag.lock().unwrap_or_else(PoisonError::into_inner);
        while !*asked {
            asked = cond.wait(asked).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A broker serving on threads. Shut it down with [`Running::shutdown`],
/// [`Running::wait`] or by dropping it.
pub struct Running {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    handle: ShutdownHandle,
    stop_accepting: Arc<AtomicBool>,
    listener: Option<JoinHandle<()>>,
    seg_writer: Option<JoinHandle<()>>,
    timer: Option<JoinHandle<()>>,
    /// Holds the data directory's lock until the runtime is gone.
    lock: Option<File>,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("local_addr", &self.local_addr)
            .field("stats", &self.shared.stats)
            .finish_non_exhaustive()
    }
}

/// Bind, recover the data directory and start serving.
///
/// Errors name what failed: the address that cannot be bound, the data
/// directory that cannot be created, written or read.
pub fn start(opts: Options) -> io::Result<Running> {
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
    let lock = disk::prepare(&data_dir)?;
    let disk = read_disk_state(&data_dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read data directory {}: {e}", data_dir.display()),
        )
    })?;

    let clock = Clock::new();
    let broker = Broker::new(
        config,
        conveyor_core::Now::new(clock.mono(), Clock::wall_ms()),
        disk,
    );
    let segs = Arc::new(SegTable::default());
    let (seg_tx, seg_rx) = mpsc::channel();
    let shared = Arc::new(Shared::new(broker, clock, seg_tx, Arc::clone(&segs)));

    let mut running = Running {
        shared: Arc::clone(&shared),
        local_addr,
        handle: ShutdownHandle::default(),
        stop_accepting: Arc::default(),
        listener: None,
        seg_writer: None,
        timer: None,
        lock: Some(lock),
    };
    // From here on, dropping `running` on an error stops what was started.
    let exec = DiskExec::new(data_dir, segs);
    let s = Arc::clone(&shared);
    running.seg_writer = Some(spawn("conveyor-segments", move || {
        runtime::segment_writer(s, exec, seg_rx);
    })?);
    let s = Arc::clone(&shared);
    running.timer = Some(spawn("conveyor-timer", move || runtime::timer(s))?);
    // Recovery's commands are queued before the first connection arrives.
    drive(&shared, |_, _| {});
    let s = Arc::clone(&shared);
    let stop = Arc::clone(&running.stop_accepting);
    running.listener = Some(spawn("conveyor-listen", move || {
        runtime::listener(s, listener, stop);
    })?);
    tracing::info!(addr = %local_addr, advertised = %advertised, "listening");
    Ok(running)
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name(name.to_owned()).spawn(f)
}

/// An address a local client can connect to: the wildcard address becomes
/// loopback.
fn connectable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

impl Running {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters of the runtime's work.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.shared.stats)
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
    /// within [`SHUTDOWN_TIMEOUT`] or a thread panicked; the threads are
    /// stopped either way.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        if self.lock.is_none() {
            return Ok(()); // already stopped
        }
        let mut problems = Vec::new();
        self.handle.shutdown();
        self.stop_listener(&mut problems);

        if !self.shared.poisoned() {
            let mut st = self.shared.lock();
            st.apply(&self.shared, |b, now| b.shutdown(now));
            let give_up = Instant::now() + SHUTDOWN_TIMEOUT;
            while !st.broker.is_stopped() && !self.shared.poisoned() {
                let left = give_up.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    problems.push(format!(
                        "the broker did not finish shutting down within {SHUTDOWN_TIMEOUT:?}"
                    ));
                    break;
                }
                st = self.shared.wait_progress(st, Some(left));
            }
            st.close_all();
        } else {
            self.shared.lock().close_all();
        }
        // Readers see the end of their streams and report it; writers end
        // when their connection is gone.
        for t in self.shared.take_threads() {
            join(t, &mut problems);
        }
        self.shared.lock().stop_segment_writer();
        if let Some(t) = self.seg_writer.take() {
            join(t, &mut problems);
        }
        runtime::stop_timer(&self.shared);
        if let Some(t) = self.timer.take() {
            join(t, &mut problems);
        }
        if self.shared.poisoned() {
            problems.push("the broker panicked".to_owned());
        }
        self.lock = None;
        if problems.is_empty() {
            tracing::info!("stopped");
            Ok(())
        } else {
            Err(io::Error::other(problems.join("; ")))
        }
    }

    fn stop_listener(&mut self, problems: &mut Vec<String>) {
        let Some(t) = self.listener.take() else {
            return;
        };
        self.stop_accepting.store(true, Ordering::Release);
        // `accept` blocks; a connection of our own wakes it to see the flag.
        if let Err(e) = TcpStream::connect_timeout(&connectable(self.local_addr), WAKE_TIMEOUT) {
            // Without the wake-up the listener thread stays blocked; leave it
            // detached rather than hang the shutdown.
            problems.push(format!("cannot wake the listener: {e}"));
            return;
        }
        join(t, problems);
    }
}

fn join(t: JoinHandle<()>, problems: &mut Vec<String>) {
    let name = t.thread().name().unwrap_or("a runtime thread").to_owned();
    if t.join().is_err() {
        problems.push(format!("{name} panicked"));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!(error = %e, "unclean shutdown");
        }
    }
}
