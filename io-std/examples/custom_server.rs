//! A custom server: the core driven by a loop of its own, the way an
//! application embeds Conveyor without any of `conveyor-io-std`'s runtimes.
//! One thread, blocking sockets, one connection at a time — the smallest
//! driver that follows the core's contract: feed every input with `now`,
//! drain `poll` until `Wait`, answer every command with one `Done`.
//!
//! ```text
//! cargo run -p conveyor-io-std --example custom_server -- 127.0.0.1:9092 ./data
//! ```
//!
//! `io-std/tests/custom_server.rs` builds this file into a test and serves a
//! Kafka request with it.

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use conveyor_core::{Broker, Command, Config, ConnId, Done, Now, Poll};
use conveyor_io_std::embed::{Files, lock_data_dir};

/// Bytes read from the socket per read.
const READ_CHUNK: usize = 64 * 1024;

#[allow(dead_code)] // the test builds this file as a module and calls `serve`
fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "./data".into()));
    let listener = TcpListener::bind(&listen)?;
    println!("listening on {}", listener.local_addr()?);
    serve(listener, &dir, None)
}

/// The driver's clock: monotonic for deadlines, wall clock for timestamps.
struct Clock(std::time::Instant);

impl Clock {
    fn now(&self) -> Now {
        let mono = u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Now::new(conveyor_core::Instant::from_nanos(mono), wall)
    }
}

/// Serve connections from `listener` one at a time over the data directory
/// `dir`, at most `max_conns` of them (all, with `None`), then shut the
/// broker down cleanly.
pub fn serve(listener: TcpListener, dir: &Path, max_conns: Option<usize>) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let _lock = lock_data_dir(dir)?;
    let disk = conveyor_io_std::read_disk_state(dir)?;
    let config = Config {
        advertised_host: addr.ip().to_string(),
        advertised_port: addr.port(),
        log_dir: std::path::absolute(dir)?.display().to_string(),
        ..Config::default()
    };
    let clock = Clock(std::time::Instant::now());
    let mut broker = Broker::new(config, clock.now(), disk);
    let files = Files::new(dir.to_owned());
    // Recovery's file commands.
    drain(&mut broker, &clock, &files, None);

    for (n, stream) in listener
        .incoming()
        .take(max_conns.unwrap_or(usize::MAX))
        .enumerate()
    {
        let stream = stream?;
        let conn = ConnId(n as u64);
        broker.handle_open(clock.now(), conn);
        drain(&mut broker, &clock, &files, Some(&stream));
        serve_one(&mut broker, &clock, &files, conn, &stream, addr);
        broker.handle_close(clock.now(), conn);
        drain(&mut broker, &clock, &files, None);
    }

    broker.shutdown(clock.now());
    drain(&mut broker, &clock, &files, None);
    if broker.is_stopped() {
        Ok(())
    } else {
        Err(io::Error::other("the broker did not stop"))
    }
}

/// Read one connection to its end, feeding the broker and firing its
/// deadlines (a long-polling fetch) with the socket's read timeout.
fn serve_one(
    broker: &mut Broker,
    clock: &Clock,
    files: &Files,
    conn: ConnId,
    stream: &TcpStream,
    addr: SocketAddr,
) {
    let mut buf = BytesMut::new();
    // Whether the broker wants this connection's bytes (back-pressure).
    let mut reading = true;
    loop {
        // Drain `poll`; then sleep in `read` no longer than the broker's
        // next deadline.
        let wait = loop {
            match broker.poll() {
                Poll::Wait(Some(deadline)) => {
                    break Some(
                        deadline
                            .saturating_since(clock.now().mono)
                            .max(Duration::from_millis(1)),
                    );
                }
                Poll::Wait(None) => break None,
                Poll::ReadInterest { read, .. } => {
                    reading = read;
                    if read && !buf.is_empty() {
                        // What was read but not taken goes in first.
                        broker.handle_read(clock.now(), conn, &mut buf);
                    }
                }
                Poll::Command(cmd) => run(broker, clock, files, Some(stream), cmd),
            }
        };
        if !reading {
            // Leave the socket alone: every command ran above, so only the
            // broker's deadline can change its mind.
            std::thread::sleep(wait.unwrap_or(Duration::from_millis(1)));
            broker.handle_timeout(clock.now());
            continue;
        }
        if stream.set_read_timeout(wait).is_err() {
            return;
        }
        let len = buf.len();
        buf.resize(len + READ_CHUNK, 0);
        match (&*stream).read(&mut buf[len..]) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(len + n);
                broker.handle_read(clock.now(), conn, &mut buf);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                buf.truncate(len);
                broker.handle_timeout(clock.now());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(len),
            Err(e) => {
                eprintln!("{addr}: read failed: {e}");
                return;
            }
        }
    }
}

/// Drain `poll` until `Wait`, running every command at once. Outside
/// `serve_one` no connection is being read, so read interest is moot.
fn drain(broker: &mut Broker, clock: &Clock, files: &Files, stream: Option<&TcpStream>) {
    loop {
        match broker.poll() {
            Poll::Wait(_) => return,
            Poll::ReadInterest { .. } => {}
            Poll::Command(cmd) => run(broker, clock, files, stream, cmd),
        }
    }
}

/// Run one command and answer it.
fn run(
    broker: &mut Broker,
    clock: &Clock,
    files: &Files,
    stream: Option<&TcpStream>,
    cmd: Command,
) {
    let done = match cmd {
        Command::Send { io, parts, .. } => {
            let sent = match stream {
                Some(s) => files.send(s, parts),
                None => Err(io::ErrorKind::NotConnected.into()),
            };
            match sent {
                Ok(()) => Done::ok(io),
                Err(e) => Done {
                    io,
                    result: Err(e.into()),
                },
            }
        }
        Command::Close { io, .. } => {
            if let Some(s) = stream {
                // Already gone: nothing more to do.
                let _ = s.shutdown(Shutdown::Both);
            }
            Done::ok(io)
        }
        Command::Connect { io, addr, .. } => {
            // One connection at a time, all of them accepted: this driver
            // opens none (the broker tries again after its backoff). A
            // driver that serves several sockets connects here, answers the
            // `Connect` once open, and reads and writes the new connection
            // like an accepted one.
            let message = format!("this example opens no connections (to {addr})");
            Done {
                io,
                result: Err(io::Error::new(io::ErrorKind::Unsupported, message).into()),
            }
        }
        file_cmd => files.execute(file_cmd),
    };
    broker.handle_done(clock.now(), done);
}
