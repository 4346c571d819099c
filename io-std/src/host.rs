//! The broker and the one connection table every driver of this crate
//! keeps beside it (threads, mio, async): the clock the broker is fed (the
//! wall clock clamped so it never goes backwards), the routing of its
//! commands — file commands to the segment writer, `Send`s and `Close`s to
//! their connection's writer — and each connection's read state: the bytes
//! read and not yet taken, and whether the broker wants more
//! ([`Poll::ReadInterest`]). A driver supplies a [`Link`] per connection
//! (how to reach its writer and wake its reader) and does the socket I/O;
//! everything a client could observe is decided by the broker and carried
//! out here, once.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};
use conveyor_core::{Broker, Command, ConnId, Done, Instant, IoError, IoId, Now, Poll};

use crate::rbuf;

/// The driver's clocks, read only under the broker's lock so that the `Now`
/// the broker sees never goes backwards across threads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }

    pub(crate) fn mono(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    pub(crate) fn wall_ms() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// Queues a file command for the segment writer; `false` once it is gone.
pub(crate) type SegQueue = Box<dyn Fn(Command) -> bool + Send>;

/// A driver's side of one connection.
pub(crate) trait Link {
    /// Queue a `Send` or `Close` for the connection's writer, behind the
    /// ones before it; the command comes back when the writer is gone.
    fn queue(&mut self, cmd: Command) -> Result<(), Command>;
    /// Let the connection's reader read again: the broker wants its bytes,
    /// or a `Close` was issued and it reads on to the end.
    fn resume(&mut self);
}

/// One connection's read state.
#[derive(Debug)]
pub(crate) struct Conn<L> {
    pub(crate) link: L,
    /// Bytes read and not yet taken by the broker (a partial frame, or
    /// frames held back while it wants no more).
    pub(crate) rbuf: BytesMut,
    /// What the broker last said: read this connection (it starts read).
    pub(crate) reading: bool,
    /// A `Close` was issued: read on to the end, hand the broker nothing.
    pub(crate) closing: bool,
    /// Bytes read in all (whether its end trims the allocator).
    pub(crate) read_bytes: u64,
}

impl<L> Conn<L> {
    /// A connection just opened: read, nothing held.
    fn new(link: L) -> Self {
        Conn {
            link,
            rbuf: BytesMut::new(),
            reading: true,
            closing: false,
            read_bytes: 0,
        }
    }

    /// Whether its reader should read now.
    pub(crate) fn may_read(&self) -> bool {
        self.reading || self.closing
    }
}

/// The broker, its connections, and what its driver keeps beside them.
pub(crate) struct Host<L> {
    pub(crate) broker: Broker,
    clock: Clock,
    /// Keeps the wall clock handed to the broker from going backwards when
    /// the system clock is stepped.
    last_wall_ms: i64,
    /// The broker's last `Wait` deadline.
    deadline: Option<Instant>,
    /// Feeds the segment writer; dropped when the runtime stops.
    seg_tx: Option<SegQueue>,
    pub(crate) conns: HashMap<ConnId, Conn<L>>,
    /// Connections that got a command or a resume since the driver last
    /// asked ([`Host::take_touched`]).
    touched: Vec<ConnId>,
    /// `Connect` commands for the driver to carry out.
    connects: Vec<Connect>,
}

/// A connection the broker asked to open.
#[derive(Debug)]
pub(crate) struct Connect {
    pub(crate) io: IoId,
    pub(crate) conn: ConnId,
    pub(crate) addr: String,
}

impl Connect {
    /// The address to connect to. A host name is looked up here, on the
    /// caller's thread; `controller.quorum.voters` usually names addresses.
    pub(crate) fn resolve(&self) -> io::Result<std::net::SocketAddr> {
        use std::net::ToSocketAddrs;
        self.addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} resolves to no address", self.addr),
            )
        })
    }
}

impl<L: Link> Host<L> {
    pub(crate) fn new(broker: Broker, clock: Clock, seg_tx: SegQueue) -> Self {
        Self {
            broker,
            clock,
            last_wall_ms: i64::MIN,
            deadline: None,
            seg_tx: Some(seg_tx),
            conns: HashMap::new(),
            touched: Vec::new(),
            connects: Vec::new(),
        }
    }

    fn now(&mut self) -> Now {
        self.last_wall_ms = self.last_wall_ms.max(Clock::wall_ms());
        Now::new(self.clock.mono(), self.last_wall_ms)
    }

    /// Apply one input: read the clock, call `f`, then carry out everything
    /// the broker asks until it waits.
    pub(crate) fn apply<R>(&mut self, f: impl FnOnce(&mut Broker, Now) -> R) -> R {
        let now = self.now();
        let r = f(&mut self.broker, now);
        self.drain(now);
        r
    }

    /// Drain `poll`: queue each command where it runs (answering it with an
    /// error at once when that is gone), follow read interest, and hand a
    /// resumed connection the bytes it holds.
    fn drain(&mut self, now: Now) {
        let mut failed = Vec::new();
        let mut resumed = Vec::new();
        loop {
            match self.broker.poll() {
                Poll::Wait(deadline) => {
                    self.deadline = deadline;
                    if failed.is_empty() && resumed.is_empty() {
                        return;
                    }
                    for done in failed.drain(..) {
                        self.broker.handle_done(now, done);
                    }
                    for id in resumed.drain(..) {
                        self.feed(now, id);
                    }
                }
                Poll::ReadInterest { conn, read } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.reading = read;
                        if read {
                            resumed.push(conn);
                        }
                    }
                }
                Poll::Command(Command::Connect { io, conn, addr }) => {
                    self.connects.push(Connect { io, conn, addr });
                }
                Poll::Command(cmd @ (Command::Send { .. } | Command::Close { .. })) => {
                    if let Err(done) = self.route(cmd) {
                        failed.push(done);
                    }
                }
                Poll::Command(cmd) => {
                    let io = cmd.io();
                    let sent = self.seg_tx.as_ref().is_some_and(|queue| queue(cmd));
                    if !sent {
                        let e = error(io::ErrorKind::BrokenPipe, "the segment writer has stopped");
                        failed.push(Done { io, result: Err(e) });
                    }
                }
            }
        }
    }

    /// A resumed connection: hand over what it holds, then let it read.
    fn feed(&mut self, now: Now, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if !c.reading || c.closing {
            return;
        }
        if !c.rbuf.is_empty() {
            self.broker.handle_read(now, id, &mut c.rbuf);
        }
        c.link.resume();
        self.touched.push(id);
    }

    /// Queue a socket command on its connection.
    fn route(&mut self, cmd: Command) -> Result<(), Done> {
        let (io, id, close) = match &cmd {
            Command::Send { io, conn, .. } => (*io, *conn, false),
            Command::Close { io, conn } => (*io, *conn, true),
            other => return Err(fail(other.io(), "a file command reached a socket")),
        };
        let Some(c) = self.conns.get_mut(&id) else {
            return Err(fail(io, &format!("{id:?} is closed")));
        };
        if close && !c.closing {
            c.closing = true;
            // Nobody will answer what it sends from now on; its reader
            // reads on to the end, where it reports the connection closed.
            c.rbuf.clear();
            if !c.reading {
                c.link.resume();
            }
        }
        self.touched.push(id);
        c.link
            .queue(cmd)
            .map_err(|_| fail(io, &format!("{id:?} is closed")))
    }

    /// A connection was accepted.
    pub(crate) fn open(&mut self, id: ConnId, link: L) {
        self.conns.insert(id, Conn::new(link));
        self.apply(|b, now| b.handle_open(now, id));
    }

    /// The connections the broker asked to open since the last call; the
    /// driver answers each with [`Host::connected`] or
    /// [`Host::connect_failed`].
    pub(crate) fn take_connects(&mut self) -> Vec<Connect> {
        std::mem::take(&mut self.connects)
    }

    /// A connection the broker asked for is open: served from now on like
    /// an accepted one.
    pub(crate) fn connected(&mut self, io: IoId, id: ConnId, link: L) {
        self.conns.insert(id, Conn::new(link));
        tracing::debug!(conn = ?id, "connection opened to a peer");
        self.apply(|b, now| b.handle_done(now, Done::ok(io)));
    }

    /// A connection the broker asked for did not open.
    pub(crate) fn connect_failed(&mut self, io: IoId, e: &io::Error) {
        let result = Err(IoError::from(io::Error::new(e.kind(), e.to_string())));
        self.apply(|b, now| b.handle_done(now, Done { io, result }));
    }

    /// `n` more bytes were read into the connection's `rbuf`: hand them to
    /// the broker, unless it said to stop reading (they wait) or the
    /// connection is closing (they are dropped).
    pub(crate) fn read(&mut self, id: ConnId, n: usize) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.read_bytes += n as u64;
        if c.closing {
            c.rbuf.clear();
            return;
        }
        if c.reading {
            let now = self.now();
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            self.broker.handle_read(now, id, &mut c.rbuf);
            self.drain(now);
        }
    }

    /// A chunk read off the connection into a buffer of its own (the async
    /// readers): appended to `rbuf` and handed to the broker.
    pub(crate) fn read_chunk(&mut self, id: ConnId, mut chunk: BytesMut) {
        let n = chunk.len();
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.read_bytes += n as u64;
        if c.closing {
            return; // nobody will answer these
        }
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            if c.rbuf.is_empty() {
                // Nothing pending: the chunk is the buffer, uncopied.
                c.rbuf = std::mem::take(&mut chunk);
            } else if !c.reading {
                // Held back: the rest waits with the frames not cut.
                c.rbuf.extend_from_slice(&chunk);
                return;
            } else {
                // A partial frame whose length the broker has seen has room
                // reserved for exactly its rest: copy no more than that
                // before the broker cuts it, since growing the buffer past
                // it doubles the allocation the frame keeps alive (see
                // `rbuf`).
                let room = c.rbuf.capacity() - c.rbuf.len();
                let take = if room == 0 {
                    chunk.len()
                } else {
                    room.min(chunk.len())
                };
                c.rbuf.extend_from_slice(&chunk[..take]);
                chunk.advance(take);
            }
            if c.reading {
                let now = self.now();
                let Some(c) = self.conns.get_mut(&id) else {
                    return;
                };
                self.broker.handle_read(now, id, &mut c.rbuf);
                self.drain(now);
            }
            if chunk.is_empty() {
                return;
            }
        }
    }

    /// A connection is gone: `fail` answers what its link still holds (with
    /// the error that ended it), then the broker hears it closed. Returns
    /// its link.
    pub(crate) fn close(
        &mut self,
        id: ConnId,
        fail: impl FnOnce(&mut L) -> Vec<Done>,
    ) -> Option<L> {
        let mut c = self.conns.remove(&id)?;
        let dones = fail(&mut c.link);
        self.apply(|b, now| {
            for d in dones {
                b.handle_done(now, d);
            }
            b.handle_close(now, id);
        });
        tracing::debug!(conn = ?id, "connection closed");
        let read_bytes = c.read_bytes;
        drop(c.rbuf);
        if read_bytes >= rbuf::TRIM_AFTER_BYTES {
            rbuf::release_free_memory();
        }
        Some(c.link)
    }

    /// Hand completions to the broker.
    pub(crate) fn done(&mut self, dones: impl IntoIterator<Item = Done>) {
        self.apply(|b, now| {
            for d in dones {
                b.handle_done(now, d);
            }
        });
    }

    /// The broker's last deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// How long until the broker's deadline (zero once it passed), read off
    /// the clock; `None` without a deadline.
    pub(crate) fn until_deadline(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_since(self.clock.mono()))
    }

    /// Call `handle_timeout` if the clock says the deadline passed: a timer
    /// may fire early, so the clock, not the wake-up, decides.
    pub(crate) fn timeout_if_due(&mut self) {
        if self.until_deadline().is_some_and(|d| d.is_zero()) {
            self.apply(|b, now| b.handle_timeout(now));
        }
    }

    /// Hand `f` each connection that got a command or a resume since the
    /// last call (the list keeps its room, so no input allocates one).
    pub(crate) fn drain_touched(&mut self, f: impl FnMut(ConnId)) {
        self.touched.drain(..).for_each(f);
    }

    /// Stop feeding the segment writer: it ends once its queue is done.
    pub(crate) fn stop_segment_writer(&mut self) {
        self.seg_tx = None;
    }
}

pub(crate) fn error(kind: io::ErrorKind, message: &str) -> IoError {
    IoError {
        kind,
        message: message.to_owned(),
    }
}

/// A socket command's completion when its connection is gone.
pub(crate) fn fail(io: IoId, message: &str) -> Done {
    Done {
        io,
        result: Err(error(io::ErrorKind::NotConnected, message)),
    }
}
