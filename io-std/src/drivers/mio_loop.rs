//! The `mio` runtime: one event-loop thread owns the broker and every
//! non-blocking socket. Readiness (edge-triggered) drives partial reads and
//! writes; a [`SendCursor`] resumes a `Send` where the socket's buffer
//! filled. File work runs on the segment writer thread, which hands its
//! completions back through a channel and wakes the loop with a
//! [`mio::Waker`]. Each loop turn does a bounded amount of work
//! ([`IO_LOOP_BOUND`]) so that one busy connection cannot starve the rest.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Duration;

use conveyor_core::{Command, ConnId, Done, IoError, IoId};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Token, Waker};

use crate::drivers::threads::{finish, join};
use crate::host::{Host, Link, error};
use crate::rbuf;
use crate::storage::segment::{SegTable, spawn_segment_writer};
use crate::storage::send::{SendCursor, Stats};
use crate::{Prepared, Running, SHUTDOWN_TIMEOUT, ShutdownHandle};

/// The most units of one kind of work a loop turn does before the others
/// get their turn: accepts, batches of file completions, reads per
/// connection, and rounds of send completions. Left-over work is picked up
/// by the next turn, which then does not sleep.
pub const IO_LOOP_BOUND: usize = 32;

/// The most readiness events taken from one `poll`.
const EVENTS_CAPACITY: usize = 1024;

/// The shortest sleep while the broker's deadline has already passed, so a
/// deadline that keeps being due cannot spin the loop.
const TIMER_MIN_NAP: Duration = Duration::from_millis(1);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Connection tokens are their ids; ids start here, past the fixed tokens.
const FIRST_CONN: usize = 2;

/// Start serving `p` from a new event-loop thread.
pub(crate) fn start(p: Prepared) -> io::Result<Running> {
    let Prepared {
        listener,
        local_addr,
        broker,
        clock,
        lock,
        stats,
        segs,
        exec,
        metrics,
    } = p;
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let poll = mio::Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (done_tx, done_rx) = mpsc::channel();
    let w = Arc::clone(&waker);
    let (seg_tx, seg_writer) = spawn_segment_writer(exec, move |dones| {
        // The loop is gone only after the broker stopped: nothing waits for
        // these any more.
        if done_tx.send(dones).is_ok() {
            let _ = w.wake();
        }
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut el = EventLoop {
        poll,
        listener: Some(listener),
        host: Host::new(broker, clock, Box::new(move |cmd| seg_tx.send(cmd).is_ok())),
        next_conn: FIRST_CONN,
        done_rx,
        segs,
        stats: Arc::clone(&stats),
        stop: Arc::clone(&stop),
        ready: HashSet::new(),
        connecting: HashMap::new(),
        accept_pending: false,
        completions_pending: false,
        dones: Vec::new(),
    };
    let loop_thread = std::thread::Builder::new()
        .name("conveyor-mio".into())
        .spawn(move || el.run());
    let loop_thread = match loop_thread {
        Ok(t) => t,
        Err(e) => {
            // The writer ends once its queue's sender (in `el`) is gone.
            let _ = seg_writer.join();
            return Err(e);
        }
    };
    let stop_fn = move || {
        stop.store(true, Ordering::Release);
        let mut problems = Vec::new();
        if let Err(e) = waker.wake() {
            problems.push(format!("cannot wake the event loop: {e}"));
        }
        match loop_thread.join() {
            Ok(p) => problems.extend(p),
            Err(_) => problems.push("the event loop panicked".into()),
        }
        join(seg_writer, &mut problems);
        drop(lock);
        finish(problems)
    };
    Ok(Running::new(
        local_addr,
        stats,
        ShutdownHandle::default(),
        Box::new(stop_fn),
    )
    .with_metrics(metrics))
}

/// What waits to go out on a connection, in issue order.
#[derive(Debug)]
enum Out {
    Send(IoId, SendCursor),
    Close(IoId),
}

/// A connection's socket and what waits to be written to it.
#[derive(Debug)]
struct MioLink {
    stream: TcpStream,
    out: VecDeque<Out>,
    /// The socket may hold unread bytes (readiness is edge-triggered).
    readable: bool,
    /// The socket may take more bytes.
    writable: bool,
    /// The end of the stream or a read error: report the connection closed.
    eof: bool,
    /// Closed by the broker or failed writing: what is still queued fails.
    dead: Option<IoError>,
}

impl Link for MioLink {
    fn queue(&mut self, cmd: Command) -> Result<(), Command> {
        let out = match cmd {
            Command::Send { io, parts, .. } => Out::Send(io, SendCursor::new(parts)),
            Command::Close { io, .. } => Out::Close(io),
            other => return Err(other),
        };
        self.out.push_back(out);
        Ok(())
    }

    /// The loop sees the connection touched and looks at it in its next
    /// turn; the socket may still hold what was left unread.
    fn resume(&mut self) {}
}

/// Whether a connection has work the next turn can do without an event.
fn has_work(c: &crate::host::Conn<MioLink>) -> bool {
    let l = &c.link;
    l.eof || (l.readable && (c.may_read() || l.dead.is_some())) || (l.writable && !l.out.is_empty())
}

struct EventLoop {
    poll: mio::Poll,
    /// Dropped when the shutdown begins.
    listener: Option<TcpListener>,
    host: Host<MioLink>,
    next_conn: usize,
    done_rx: Receiver<Vec<Done>>,
    segs: Arc<SegTable>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    /// Connections with work the next turn can do without a new event.
    ready: HashSet<ConnId>,
    /// Connections the broker asked to open, not yet open: the `Connect`
    /// to answer and the socket.
    connecting: HashMap<ConnId, (IoId, TcpStream)>,
    /// The listener may hold connections not accepted yet.
    accept_pending: bool,
    /// The segment writer's channel may hold completions.
    completions_pending: bool,
    /// Completions of `Send`s and `Close`s, for the broker.
    dones: Vec<Done>,
}

impl EventLoop {
    /// Serve until asked to stop and the broker has shut down; return the
    /// problems met.
    fn run(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        // Recovery's commands go out before the first connection arrives.
        self.host.apply(|_, _| {});
        self.route();
        let mut give_up = None;
        loop {
            if give_up.is_none() && self.stop.load(Ordering::Acquire) {
                give_up = Some(std::time::Instant::now() + SHUTDOWN_TIMEOUT);
                if let Some(mut l) = self.listener.take() {
                    // The listener closes when dropped either way.
                    let _ = self.poll.registry().deregister(&mut l);
                }
                self.accept_pending = false;
                self.host.apply(|b, now| b.shutdown(now));
                self.route();
            }
            if let Some(at) = give_up {
                if self.host.broker.is_stopped() {
                    break;
                }
                if std::time::Instant::now() >= at {
                    problems.push(format!(
                        "the broker did not finish shutting down within {SHUTDOWN_TIMEOUT:?}"
                    ));
                    break;
                }
            }
            let busy = self.accept_pending || self.completions_pending || !self.ready.is_empty();
            let mut timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.host.until_deadline().map(|d| d.max(TIMER_MIN_NAP))
            };
            if let Some(at) = give_up {
                let left = at.saturating_duration_since(std::time::Instant::now());
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    problems.push(format!("event loop poll failed: {e}"));
                    break;
                }
            }
            for ev in &events {
                match ev.token() {
                    LISTENER => self.accept_pending = true,
                    WAKER => self.completions_pending = true,
                    Token(t) => {
                        let id = ConnId(t as u64);
                        if self.connecting.contains_key(&id) {
                            self.finish_connect(id);
                        } else if let Some(c) = self.host.conns.get_mut(&id) {
                            let l = &mut c.link;
                            l.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
                            l.writable |= ev.is_writable() || ev.is_write_closed() || ev.is_error();
                            self.ready.insert(id);
                        }
                    }
                }
            }
            self.turn();
        }
        // Every connection goes; what is queued on them fails.
        let ids: Vec<ConnId> = self.host.conns.keys().copied().collect();
        for id in ids {
            self.close(id);
        }
        self.host.stop_segment_writer();
        problems
    }

    /// One turn: accept, take file completions, read and write ready
    /// connections, fire the timer. Each bounded.
    fn turn(&mut self) {
        if self.accept_pending {
            self.accept();
        }
        if self.completions_pending {
            self.completions();
        }
        let ready: Vec<ConnId> = self.ready.drain().collect();
        for id in ready {
            self.read(id);
        }
        self.host.timeout_if_due();
        self.route();
        // Writes and their completions, which may queue more writes.
        for _ in 0..IO_LOOP_BOUND {
            let ready: Vec<ConnId> = self.ready.iter().copied().collect();
            for &id in &ready {
                self.write(id);
            }
            if self.dones.is_empty() {
                break;
            }
            let dones = std::mem::take(&mut self.dones);
            self.host.done(dones);
            self.route();
        }
        // Whatever still has work stays ready; the rest waits for an event.
        let host = &self.host;
        self.ready
            .retain(|id| host.conns.get(id).is_some_and(has_work));
        let closing: Vec<ConnId> = self
            .host
            .conns
            .iter()
            .filter(|(_, c)| c.link.eof)
            .map(|(id, _)| *id)
            .collect();
        for id in closing {
            self.close(id);
        }
    }

    fn accept(&mut self) {
        let Some(listener) = self.listener.take() else {
            self.accept_pending = false;
            return;
        };
        for _ in 0..IO_LOOP_BOUND {
            let (mut stream, peer) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors or memory: the next arrival
                    // tries again, once some connections have closed.
                    tracing::warn!(error = %e, "accept failed");
                    self.accept_pending = false;
                    break;
                }
            };
            let id = ConnId(self.next_conn as u64);
            let registered = stream.set_nodelay(true).and_then(|()| {
                self.poll.registry().register(
                    &mut stream,
                    Token(self.next_conn),
                    Interest::READABLE | Interest::WRITABLE,
                )
            });
            if let Err(e) = registered {
                tracing::warn!(?peer, error = %e, "cannot serve a new connection");
                continue;
            }
            self.next_conn += 1;
            self.stats.connections.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(conn = ?id, ?peer, "connection opened");
            let link = MioLink {
                stream,
                out: VecDeque::new(),
                readable: true,
                writable: true,
                eof: false,
                dead: None,
            };
            self.ready.insert(id);
            // Beyond `max.connections` the broker closes it at once.
            self.host.open(id, link);
            self.route();
        }
        self.listener = Some(listener);
    }

    fn completions(&mut self) {
        for _ in 0..IO_LOOP_BOUND {
            match self.done_rx.try_recv() {
                Ok(dones) => {
                    self.host.done(dones);
                    self.route();
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                    self.completions_pending = false;
                    return;
                }
            }
        }
    }

    /// Read what the connection holds, at most [`IO_LOOP_BOUND`] chunks,
    /// while the broker wants bytes from it.
    fn read(&mut self, id: ConnId) {
        for _ in 0..IO_LOOP_BOUND {
            let Some(c) = self.host.conns.get_mut(&id) else {
                return;
            };
            let may_read = c.may_read();
            let l = &mut c.link;
            if !l.readable || l.eof {
                break;
            }
            // Back-pressure: what the broker does not want stays in the
            // kernel's buffer. A connection under a `Close` (or whose
            // writes failed) reads on to its end.
            if !may_read && l.dead.is_none() {
                break;
            }
            let stream = &l.stream;
            let n = match rbuf::read_into(&mut c.rbuf, |room| (&*stream).read(room)) {
                Ok(n) => n,
                Err(e) => {
                    match e.kind() {
                        io::ErrorKind::WouldBlock => l.readable = false,
                        io::ErrorKind::Interrupted => {}
                        _ => {
                            tracing::debug!(conn = ?id, error = %e, "read failed");
                            l.eof = true;
                        }
                    }
                    continue;
                }
            };
            if n == 0 {
                l.eof = true;
                break;
            }
            if l.dead.is_some() {
                c.rbuf.clear(); // nobody will answer these
                continue;
            }
            self.host.read(id, n);
        }
        self.ready.insert(id);
    }

    /// The connections the broker gave commands or resumed have work;
    /// the ones it asked to open are opened.
    fn route(&mut self) {
        loop {
            let ready = &mut self.ready;
            self.host.drain_touched(|id| {
                ready.insert(id);
            });
            let connects = self.host.take_connects();
            if connects.is_empty() {
                return;
            }
            for c in connects {
                if let Err(e) = self.start_connect(c.conn, c.io, c.resolve()) {
                    tracing::debug!(conn = ?c.conn, addr = %c.addr, error = %e, "connect failed");
                    self.host.connect_failed(c.io, &e);
                }
            }
        }
    }

    /// Begin a non-blocking connect; it finishes when the socket is
    /// writable ([`EventLoop::finish_connect`]).
    fn start_connect(
        &mut self,
        id: ConnId,
        io: IoId,
        addr: io::Result<std::net::SocketAddr>,
    ) -> io::Result<()> {
        let mut stream = TcpStream::connect(addr?)?;
        stream.set_nodelay(true)?;
        let token = usize::try_from(id.0).map_err(io::Error::other)?;
        self.poll.registry().register(
            &mut stream,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.connecting.insert(id, (io, stream));
        Ok(())
    }

    /// A connecting socket had an event: open, failed, or not yet.
    fn finish_connect(&mut self, id: ConnId) {
        let Some((_, stream)) = self.connecting.get(&id) else {
            return;
        };
        let outcome = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotConnected | io::ErrorKind::WouldBlock
                    ) =>
                {
                    return; // still connecting
                }
                Err(e) => Err(e),
            },
        };
        let Some((io, mut stream)) = self.connecting.remove(&id) else {
            return;
        };
        match outcome {
            Ok(()) => {
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                let link = MioLink {
                    stream,
                    out: VecDeque::new(),
                    readable: true,
                    writable: true,
                    eof: false,
                    dead: None,
                };
                self.host.connected(io, id, link);
                self.ready.insert(id);
            }
            Err(e) => {
                let _ = self.poll.registry().deregister(&mut stream);
                tracing::debug!(conn = ?id, error = %e, "connect failed");
                self.host.connect_failed(io, &e);
            }
        }
        self.route();
    }

    /// Write the connection's queue until it is empty or the socket is full.
    fn write(&mut self, id: ConnId) {
        let Some(c) = self.host.conns.get_mut(&id) else {
            return;
        };
        let c = &mut c.link;
        while c.writable || c.dead.is_some() {
            let Some(out) = c.out.front_mut() else { break };
            let io = match out {
                Out::Send(io, _) | Out::Close(io) => *io,
            };
            if let Some(e) = &c.dead {
                self.dones.push(Done {
                    io,
                    result: Err(e.clone()),
                });
                c.out.pop_front();
                continue;
            }
            match out {
                Out::Send(_, cursor) => match cursor.advance(&c.stream, &self.segs, &self.stats) {
                    Ok(()) => {
                        self.stats.send_calls.fetch_add(1, Ordering::Relaxed);
                        self.dones.push(Done::ok(io));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        c.writable = false;
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(conn = ?id, error = %e, "send failed");
                        let e = IoError::from(e);
                        self.dones.push(Done {
                            io,
                            result: Err(e.clone()),
                        });
                        // The reader sees the end of the stream and reports
                        // the connection closed.
                        let _ = c.stream.shutdown(Shutdown::Both);
                        c.dead = Some(e);
                        c.readable = true;
                    }
                },
                Out::Close(_) => {
                    // The peer may have gone already; the socket is shut
                    // either way, and reading on finds its end.
                    let _ = c.stream.shutdown(Shutdown::Both);
                    self.dones.push(Done::ok(io));
                    c.dead = Some(error(io::ErrorKind::NotConnected, "closed by the broker"));
                    c.readable = true;
                }
            }
            c.out.pop_front();
        }
    }

    /// Report a connection gone: fail what is queued on it, then tell the
    /// broker.
    fn close(&mut self, id: ConnId) {
        self.ready.remove(&id);
        let pending = std::mem::take(&mut self.dones);
        let registry = self.poll.registry();
        self.host.close(id, |l| {
            // Closed when dropped either way.
            let _ = registry.deregister(&mut l.stream);
            let _ = l.stream.shutdown(Shutdown::Both);
            let e = l.dead.take().unwrap_or_else(|| {
                error(io::ErrorKind::NotConnected, &format!("{id:?} is closed"))
            });
            l.out
                .drain(..)
                .map(|out| match out {
                    Out::Send(io, _) | Out::Close(io) => Done {
                        io,
                        result: Err(e.clone()),
                    },
                })
                .chain(pending)
                .collect()
        });
        self.route();
    }
}
