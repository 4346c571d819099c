//! # conveyor-io-smol: Conveyor on the smol runtime
//!
//! [`start`] runs a broker on a smol executor of its own (one thread per
//! core): the drive loop of [`conveyor_io_std::async_drive`], with smol's
//! primitives under it. This crate is only that glue: readiness from
//! `async-io`'s reactor ([`smol::Async`]) around the system calls
//! `conveyor-io-std` makes (`read`, `writev`, and `sendfile` on the raw
//! socket), [`smol::unblock`] for file work, [`smol::Timer`] for the
//! broker's deadlines. It decides nothing a Kafka client could observe.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let running = conveyor_io_smol::start(conveyor_io_std::Options {
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
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use conveyor_io_std::async_drive::{self, AsyncRuntime, AsyncStream, BlockingWork, Interest, Task};
use conveyor_io_std::{Options, Running};
use smol::{Async, Executor};

/// Start a broker on a new smol executor with one thread per core. The
/// executor's threads stop when the broker does.
///
/// Errors name what failed, as [`conveyor_io_std::start`]'s do.
pub fn start(opts: Options) -> io::Result<Running> {
    let ex = Arc::new(Executor::new());
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let n = thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let ex = Arc::clone(&ex);
        let stop = stop_rx.clone();
        let t = thread::Builder::new()
            .name(format!("conveyor-smol-{i}"))
            // Runs tasks until the stop channel closes.
            .spawn(move || smol::block_on(ex.run(async { stop.recv().await.ok() })));
        match t {
            Ok(t) => threads.push(t),
            Err(e) => {
                drop(stop_tx);
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
        }
    }
    let finish = move || {
        drop(stop_tx);
        for t in threads {
            // A panicking task is caught by the executor; a thread that
            // panicked anyway has nothing left to clean up.
            let _ = t.join();
        }
    };
    async_drive::start(Arc::new(Smol(ex)), opts, finish)
}

/// smol's primitives, on one executor.
#[derive(Debug)]
struct Smol(Arc<Executor<'static>>);

#[async_trait::async_trait]
impl AsyncRuntime for Smol {
    type Listener = Async<TcpListener>;
    type Stream = Stream;

    fn spawn(&self, task: Task) {
        self.0.spawn(task).detach();
    }

    async fn sleep_until(&self, deadline: Instant) {
        smol::Timer::at(deadline).await;
    }

    fn listener(&self, listener: TcpListener) -> io::Result<Self::Listener> {
        Async::new(listener)
    }

    async fn accept(&self, listener: &Self::Listener) -> io::Result<Self::Stream> {
        let (stream, _peer) = listener.accept().await?;
        Ok(Stream(stream))
    }

    async fn connect(&self, addr: std::net::SocketAddr) -> io::Result<Self::Stream> {
        Ok(Stream(Async::<TcpStream>::connect(addr).await?))
    }

    async fn unblock(&self, work: BlockingWork) {
        smol::unblock(work).await;
    }
}

/// A smol TCP stream; the system calls go on its raw descriptor.
#[derive(Debug)]
struct Stream(Async<TcpStream>);

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }
}

#[async_trait::async_trait]
impl AsyncStream for Stream {
    async fn ready(&self, interest: Interest) -> io::Result<()> {
        match interest {
            Interest::Readable => self.0.readable().await,
            Interest::Writable => self.0.writable().await,
        }
    }

    fn try_io(&self, _interest: Interest, f: &mut dyn FnMut() -> io::Result<()>) -> io::Result<()> {
        // `Async` keeps no readiness to clear: `ready` always waits for the
        // reactor's next event after a `WouldBlock`.
        f()
    }
}
