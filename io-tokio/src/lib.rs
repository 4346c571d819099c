//! # conveyor-io-tokio: Conveyor on the tokio runtime
//!
//! [`start`] runs a broker on a tokio runtime of its own: the drive loop of
//! [`conveyor_io_std::async_drive`], with tokio's primitives under it. This
//! crate is only that glue: readiness from tokio's reactor around the
//! system calls `conveyor-io-std` makes (`read`, `writev`, and `sendfile`
//! on the raw socket inside [`TcpStream::try_io`]), `spawn_blocking` for
//! file work, tokio's timer for the broker's deadlines. It decides nothing a
//! Kafka client could observe.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let running = conveyor_io_tokio::start(conveyor_io_std::Options {
//!     listen: "127.0.0.1:0".parse().expect("a literal socket address"),
//!     data_dir: dir.path().join("data"),
//!     broker: conveyor_core::Config::default(),
//! })?;
//! println!("Kafka clients can connect to {}", running.local_addr());
//! running.shutdown()?; // or drop it
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conveyor_io_std::async_drive::{self, AsyncRuntime, AsyncStream, BlockingWork, Interest, Task};
use conveyor_io_std::{Options, Running};
use tokio::runtime::Handle;

/// How long stopping waits for tokio's blocking threads to finish.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(5);

/// Start a broker on a new multi-threaded tokio runtime (one worker per
/// core). The runtime is shut down when the broker is.
///
/// Errors name what failed, as [`conveyor_io_std::start`]'s do.
pub fn start(opts: Options) -> io::Result<Running> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("conveyor-tokio")
        .build()?;
    let rt = Arc::new(Tokio(runtime.handle().clone()));
    async_drive::start(rt, opts, move || runtime.shutdown_timeout(RUNTIME_SHUTDOWN))
}

/// tokio's primitives, by handle.
#[derive(Debug)]
struct Tokio(Handle);

#[async_trait::async_trait]
impl AsyncRuntime for Tokio {
    type Listener = tokio::net::TcpListener;
    type Stream = Stream;

    fn spawn(&self, task: Task) {
        // Detached: every task ends on its own or with the runtime.
        drop(self.0.spawn(task));
    }

    async fn sleep_until(&self, deadline: Instant) {
        tokio::time::sleep_until(deadline.into()).await;
    }

    fn listener(&self, listener: std::net::TcpListener) -> io::Result<Self::Listener> {
        // Registering with the reactor needs the runtime's context.
        let _guard = self.0.enter();
        tokio::net::TcpListener::from_std(listener)
    }

    async fn accept(&self, listener: &Self::Listener) -> io::Result<Self::Stream> {
        let (stream, _peer) = listener.accept().await?;
        Ok(Stream(stream))
    }

    async fn connect(&self, addr: std::net::SocketAddr) -> io::Result<Self::Stream> {
        Ok(Stream(tokio::net::TcpStream::connect(addr).await?))
    }

    async fn unblock(&self, work: BlockingWork) {
        if let Err(e) = self.0.spawn_blocking(work).await {
            // A panic in file work is a bug; the runtime carries on and the
            // commands it held are never answered, as with a dead thread.
            tracing::error!(error = %e, "blocking file work failed");
        }
    }
}

/// A tokio TCP stream; the system calls go on its raw descriptor.
#[derive(Debug)]
struct Stream(tokio::net::TcpStream);

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn tokio_interest(i: Interest) -> tokio::io::Interest {
    match i {
        Interest::Readable => tokio::io::Interest::READABLE,
        Interest::Writable => tokio::io::Interest::WRITABLE,
    }
}

#[async_trait::async_trait]
impl AsyncStream for Stream {
    async fn ready(&self, interest: Interest) -> io::Result<()> {
        self.0.ready(tokio_interest(interest)).await.map(drop)
    }

    fn try_io(&self, interest: Interest, f: &mut dyn FnMut() -> io::Result<()>) -> io::Result<()> {
        self.0.try_io(tokio_interest(interest), f)
    }
}
