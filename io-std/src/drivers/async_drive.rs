//! One drive loop for every async runtime, written against
//! [`AsyncRuntime`]: the runtime's primitives (spawn, a timer, a TCP
//! listener and streams with readiness, a blocking pool) and nothing else.
//! `conveyor-io-tokio` and `conveyor-io-smol` implement the trait; the loop,
//! the system calls ([`SendCursor`](crate::send) and the segment writer's)
//! and the shutdown are written once, here.
//!
//! The shape:
//! - one **driver** task owns the broker. It takes events from a channel
//!   (bytes read, connections opened and closed, completions, stop), at
//!   most [`IO_LOOP_BOUND`] per turn, and sleeps until the broker's deadline
//!   when there are none;
//! - an **accept** task turns connections into a reader and a writer task;
//! - a connection's **reader** task reads only with the driver's permit,
//!   which the driver withholds while the broker says to stop reading it
//!   (`Poll::ReadInterest`), so unwanted bytes stay in the kernel's buffer;
//! - its **writer** task writes its `Send`s in order, `sendfile` on the raw
//!   socket inside the runtime's write readiness, and its `Close`;
//! - the **segment writer** task runs file commands in issue order, in
//!   batches on the runtime's blocking pool, and hands each `Sync` to the
//!   fsync worker thread (group commit), so fsync never holds a worker.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use bytes::BytesMut;
use conveyor_core::{Command, ConnId, Done, IoError, IoId};
use futures_lite::future;

use crate::drivers::mio_loop::IO_LOOP_BOUND;
use crate::drivers::threads::finish;
use crate::host::{Host, Link, fail};
use crate::storage::segment::{DONE_BATCH, SegTable, SegmentWriter, run_all};
use crate::storage::send::{SendCursor, Stats};
use crate::{Options, Running, SHUTDOWN_TIMEOUT, ShutdownHandle, prepare};

/// A task the runtime runs to completion.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Blocking work for the runtime's blocking pool.
pub type BlockingWork = Box<dyn FnOnce() + Send + 'static>;

/// Which readiness to wait for or to clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// The socket has bytes to read (or its end).
    Readable,
    /// The socket takes more bytes.
    Writable,
}

/// What the drive loop needs from an async runtime. Implemented once per
/// runtime; everything else is shared.
#[async_trait::async_trait]
pub trait AsyncRuntime: Send + Sync + 'static {
    /// The runtime's TCP listener.
    type Listener: Send + Sync + 'static;
    /// The runtime's TCP stream: a non-blocking socket with readiness.
    type Stream: AsyncStream;

    /// Run `task` on the runtime, detached.
    fn spawn(&self, task: Task);

    /// Return at `deadline` (or later).
    async fn sleep_until(&self, deadline: Instant);

    /// Wrap a bound, non-blocking std listener.
    fn listener(&self, listener: std::net::TcpListener) -> io::Result<Self::Listener>;

    /// Accept the next connection.
    async fn accept(&self, listener: &Self::Listener) -> io::Result<Self::Stream>;

    /// Open a connection to `addr` (a peer broker).
    async fn connect(&self, addr: std::net::SocketAddr) -> io::Result<Self::Stream>;

    /// Run `work` where blocking is allowed (fsync), and return when it is
    /// done.
    async fn unblock(&self, work: BlockingWork);
}

/// A connected, non-blocking TCP socket with readiness. The drive loop does
/// the system calls itself on the raw descriptor (`read`, `writev`,
/// `sendfile`), inside [`AsyncStream::try_io`].
#[async_trait::async_trait]
pub trait AsyncStream: AsFd + Send + Sync + 'static {
    /// Wait until the socket may be ready for `interest`.
    async fn ready(&self, interest: Interest) -> io::Result<()>;

    /// Run the system call `f` on the socket. When it fails with
    /// `WouldBlock`, the runtime forgets the readiness for `interest`, so
    /// the next [`AsyncStream::ready`] waits for a new event.
    fn try_io(&self, interest: Interest, f: &mut dyn FnMut() -> io::Result<()>) -> io::Result<()>;
}

/// Bytes read from a socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// A read of at most this many bytes is handed to the driver as a copy.
const SMALL_READ: usize = 4 * 1024;

/// The shortest sleep while the broker's deadline has already passed.
const TIMER_MIN_NAP: Duration = Duration::from_millis(1);

/// How long an accept loop pauses after a failed accept (out of file
/// descriptors, say) before trying again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// How long a stop waits, beyond the broker's [`SHUTDOWN_TIMEOUT`], for the
/// connections to close and the driver to finish.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Start serving `opts` on the runtime `rt`. `finish` runs after the broker
/// has stopped and every connection is closed, to stop the runtime itself
/// (its worker threads); it is the last thing a stop does.
///
/// Errors name what failed, as [`crate::start`]'s do.
pub fn start<R: AsyncRuntime>(
    rt: Arc<R>,
    opts: Options,
    finish_runtime: impl FnOnce() + Send + 'static,
) -> io::Result<Running> {
    let p = prepare(opts)?;
    p.listener.set_nonblocking(true)?;
    let listener = rt.listener(p.listener)?;
    let segs = Arc::clone(&p.segs);
    let stats = Arc::clone(&p.stats);
    let (ev_tx, ev_rx) = async_channel::unbounded::<Event<R::Stream>>();
    let (seg_tx, seg_rx) = async_channel::unbounded::<Command>();
    let (stop_accept_tx, stop_accept_rx) = async_channel::bounded::<()>(1);
    let (finished_tx, finished_rx) = std::sync::mpsc::channel::<Vec<String>>();

    let events = ev_tx.clone();
    let writer = SegmentWriter::start(p.exec, move |d| {
        // Unbounded: fails only once the driver is gone.
        let _ = events.try_send(Event::Done(d));
    })?;
    // From here on, a failure leaves tasks that end with the runtime.
    rt.spawn(Box::pin(segment_writer(
        Arc::clone(&rt),
        Arc::new(writer),
        seg_rx,
        ev_tx.clone(),
    )));
    let host = Host::new(
        p.broker,
        p.clock,
        Box::new(move |cmd| seg_tx.try_send(cmd).is_ok()),
    );
    let driver = Driver {
        host,
        stats: Arc::clone(&stats),
        events: ev_tx.clone(),
        segs: Arc::clone(&segs),
    };
    rt.spawn(Box::pin(driver.run(Arc::clone(&rt), ev_rx, finished_tx)));
    rt.spawn(Box::pin(acceptor(
        Arc::clone(&rt),
        listener,
        ev_tx.clone(),
        stop_accept_rx,
        segs,
        Arc::clone(&stats),
    )));

    let lock = p.lock;
    let stop = move || {
        drop(stop_accept_tx); // the accept loop ends and closes the listener
        let mut problems = Vec::new();
        if ev_tx.try_send(Event::Stop).is_err() {
            problems.push("the driver task is gone".to_owned());
        }
        match finished_rx.recv_timeout(SHUTDOWN_TIMEOUT + CLOSE_TIMEOUT) {
            Ok(p) => problems.extend(p),
            Err(_) => problems.push("the driver task did not finish".to_owned()),
        }
        finish_runtime();
        drop(lock);
        finish(problems)
    };
    Ok(Running::new(
        p.local_addr,
        stats,
        ShutdownHandle::default(),
        Box::new(stop),
    )
    .with_metrics(p.metrics))
}

/// What the driver hears about.
enum Event<S> {
    /// A connection was accepted: its socket, its writer's queue and its
    /// reader's permits.
    Open(ConnId, Arc<S>, Sender<Command>, Sender<()>),
    /// A connection the broker asked for opened (the `Connect` to answer,
    /// then as `Open`), or did not.
    Connected(
        IoId,
        ConnId,
        io::Result<(Arc<S>, Sender<Command>, Sender<()>)>,
    ),
    /// Bytes read from a connection.
    Read(ConnId, BytesMut),
    /// A connection's reader saw its end.
    Closed(ConnId),
    /// Commands finished.
    Done(Vec<Done>),
    /// Shut down.
    Stop,
}

/// How the driver reaches a connection's tasks.
struct AsyncLink<S> {
    stream: Arc<S>,
    /// The writer's queue; dropping it ends the writer once it is done.
    tx: Sender<Command>,
    /// Lets the reader read once more.
    permit: Sender<()>,
}

impl<S> Link for AsyncLink<S> {
    fn queue(&mut self, cmd: Command) -> Result<(), Command> {
        self.tx.try_send(cmd).map_err(|e| e.into_inner())
    }

    fn resume(&mut self) {
        // Unbounded: fails only once the reader is gone, and then its
        // `Closed` is on the way.
        let _ = self.permit.try_send(());
    }
}

struct Driver<S> {
    host: Host<AsyncLink<S>>,
    stats: Arc<Stats>,
    /// For the tasks it starts (connects).
    events: Sender<Event<S>>,
    segs: Arc<SegTable>,
}

impl<S: AsyncStream> Driver<S> {
    async fn run<R: AsyncRuntime<Stream = S>>(
        mut self,
        rt: Arc<R>,
        events: Receiver<Event<S>>,
        finished: std::sync::mpsc::Sender<Vec<String>>,
    ) {
        let mut problems = Vec::new();
        // Recovery's commands go out before the first connection arrives.
        self.host.apply(|_, _| {});
        self.start_connects(&rt);
        let mut give_up: Option<Instant> = None;
        let mut closed_all = false;
        loop {
            let nap = self.host.until_deadline().map(|d| d.max(TIMER_MIN_NAP));
            let nap = match give_up {
                Some(at) => Some(nap.map_or(at, |n| (Instant::now() + n).min(at))),
                None => nap.map(|n| Instant::now() + n),
            };
            let first = match nap {
                None => events.recv().await.ok(),
                Some(at) => {
                    let recv = async { events.recv().await.ok() };
                    let sleep = async {
                        rt.sleep_until(at).await;
                        None
                    };
                    future::or(recv, sleep).await
                }
            };
            // At most IO_LOOP_BOUND events a turn; the rest stay queued
            // and make the next wait return at once.
            let mut next = first;
            let mut handled = 0;
            while let Some(ev) = next.take() {
                if matches!(ev, Event::Stop) && give_up.is_none() {
                    give_up = Some(Instant::now() + SHUTDOWN_TIMEOUT);
                    self.host.apply(|b, now| b.shutdown(now));
                } else {
                    self.handle(ev);
                }
                handled += 1;
                if handled < IO_LOOP_BOUND {
                    next = events.try_recv().ok();
                }
            }
            self.host.timeout_if_due();
            // The async links act at once; nothing waits on the list.
            self.host.drain_touched(drop);
            self.start_connects(&rt);
            if let Some(at) = give_up {
                let stopped = self.host.broker.is_stopped();
                let late = Instant::now() >= at;
                if (stopped || late) && !closed_all {
                    if !stopped {
                        problems.push(format!(
                            "the broker did not finish shutting down within {SHUTDOWN_TIMEOUT:?}"
                        ));
                    }
                    // Readers see their ends and report them; writers end
                    // once their queues are dropped.
                    for c in self.host.conns.values() {
                        shutdown(&*c.link.stream);
                    }
                    closed_all = true;
                }
                let open = self.host.conns.len();
                if closed_all && (open == 0 || Instant::now() >= at + CLOSE_TIMEOUT) {
                    if open > 0 {
                        problems.push(format!("{open} connections did not close"));
                    }
                    break;
                }
            }
        }
        self.host.stop_segment_writer();
        // The stop waits on this; if it gave up, nobody listens.
        let _ = finished.send(problems);
    }

    /// Open the connections the broker asked for, each in a task of its own.
    fn start_connects<R: AsyncRuntime<Stream = S>>(&mut self, rt: &Arc<R>) {
        for c in self.host.take_connects() {
            rt.spawn(Box::pin(connector(
                Arc::clone(rt),
                c,
                self.events.clone(),
                Arc::clone(&self.segs),
                Arc::clone(&self.stats),
            )));
        }
    }

    fn handle(&mut self, ev: Event<S>) {
        match ev {
            Event::Open(id, stream, tx, permit) => {
                self.stats.connections.fetch_add(1, Ordering::Relaxed);
                let mut link = AsyncLink { stream, tx, permit };
                // The first read; beyond `max.connections` the broker
                // closes the connection at once.
                link.resume();
                self.host.open(id, link);
                tracing::debug!(conn = ?id, "connection opened");
            }
            Event::Connected(io, id, Ok((stream, tx, permit))) => {
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                let mut link = AsyncLink { stream, tx, permit };
                link.resume();
                self.host.connected(io, id, link);
            }
            Event::Connected(io, id, Err(e)) => {
                tracing::debug!(conn = ?id, error = %e, "connect failed");
                self.host.connect_failed(io, &e);
            }
            Event::Read(id, bytes) => {
                self.host.read_chunk(id, bytes);
                // One permit per read while the broker wants bytes (or the
                // connection reads on to its end); otherwise the permit
                // comes with the broker's resume.
                if let Some(c) = self.host.conns.get_mut(&id) {
                    if c.may_read() {
                        c.link.resume();
                    }
                }
            }
            Event::Closed(id) => {
                // The writer answers what it was given; nothing waits here.
                self.host.close(id, |_| Vec::new());
            }
            Event::Done(dones) => self.host.done(dones),
            Event::Stop => {} // only the first counts
        }
    }
}

/// Shut both directions of a socket; its reader then sees the end.
fn shutdown(stream: &impl AsFd) {
    // Already shut or reset by the peer: nothing left to do.
    let _ = rustix::net::shutdown(stream, rustix::net::Shutdown::Both);
}

/// Open a connection the broker asked for, with a reader and a writer.
async fn connector<R: AsyncRuntime>(
    rt: Arc<R>,
    c: crate::host::Connect,
    events: Sender<Event<R::Stream>>,
    segs: Arc<SegTable>,
    stats: Arc<Stats>,
) {
    let opened = async {
        let stream = rt.connect(c.resolve()?).await?;
        rustix::net::sockopt::set_tcp_nodelay(&stream, true)?;
        Ok::<_, io::Error>(stream)
    }
    .await;
    let opened = opened.map(|stream| serve(&*rt, c.conn, stream, &events, segs, stats));
    // The driver is gone if this fails: nobody to tell.
    let _ = events.send(Event::Connected(c.io, c.conn, opened)).await;
}

/// Start a connection's reader and writer; what the driver needs of it.
fn serve<R: AsyncRuntime>(
    rt: &R,
    id: ConnId,
    stream: R::Stream,
    events: &Sender<Event<R::Stream>>,
    segs: Arc<SegTable>,
    stats: Arc<Stats>,
) -> (Arc<R::Stream>, Sender<Command>, Sender<()>) {
    let stream = Arc::new(stream);
    let (tx, rx) = async_channel::unbounded();
    let (permit_tx, permit_rx) = async_channel::unbounded();
    rt.spawn(Box::pin(reader(
        id,
        Arc::clone(&stream),
        events.clone(),
        permit_rx,
    )));
    rt.spawn(Box::pin(writer(
        Arc::clone(&stream),
        rx,
        events.clone(),
        segs,
        stats,
    )));
    (stream, tx, permit_tx)
}

/// Accept connections until `stop` closes, each with a reader and a writer.
async fn acceptor<R: AsyncRuntime>(
    rt: Arc<R>,
    listener: R::Listener,
    events: Sender<Event<R::Stream>>,
    stop: Receiver<()>,
    segs: Arc<SegTable>,
    stats: Arc<Stats>,
) {
    let mut next_conn = 0u64;
    loop {
        let accept = async { Some(rt.accept(&listener).await) };
        let stopped = async {
            // Nothing is ever sent: the stop drops the sender.
            let _ = stop.recv().await;
            None
        };
        let stream = match future::or(accept, stopped).await {
            None => break,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "accept failed");
                rt.sleep_until(Instant::now() + ACCEPT_PAUSE).await;
                continue;
            }
        };
        // Small responses must not wait for Nagle; large ones are corked.
        if let Err(e) = rustix::net::sockopt::set_tcp_nodelay(&stream, true) {
            tracing::warn!(error = %e, "cannot serve a new connection");
            continue;
        }
        next_conn += 1;
        let id = ConnId(next_conn);
        let (stream, tx, permit_tx) = serve(
            &*rt,
            id,
            stream,
            &events,
            Arc::clone(&segs),
            Arc::clone(&stats),
        );
        if events
            .send(Event::Open(id, stream, tx, permit_tx))
            .await
            .is_err()
        {
            break; // the driver is gone
        }
    }
}

/// A connection's reader: reads a chunk per permit and hands it to the
/// driver; reports the end of the stream.
async fn reader<S: AsyncStream>(
    id: ConnId,
    stream: Arc<S>,
    events: Sender<Event<S>>,
    permits: Receiver<()>,
) {
    let mut buf = BytesMut::new();
    while permits.recv().await.is_ok() {
        if buf.len() < READ_CHUNK {
            // The last chunk was handed over whole.
            buf = BytesMut::zeroed(READ_CHUNK);
        }
        let mut got = 0;
        let r = loop {
            let r = stream.try_io(Interest::Readable, &mut || {
                got = rustix::io::read(&*stream, &mut buf[..])?;
                Ok(())
            });
            match r {
                Ok(()) => break Ok(got),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = stream.ready(Interest::Readable).await {
                        break Err(e);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match r {
            Ok(0) => break,
            Ok(n) => {
                // A small read is copied out and the chunk kept for the
                // next: the frames cut from what is sent keep it alive, and
                // a 64 KiB chunk per small request (one record per produce,
                // say) held each request's memory 300 times over.
                let chunk = if n <= SMALL_READ {
                    BytesMut::from(&buf[..n])
                } else {
                    let mut c = std::mem::take(&mut buf);
                    c.truncate(n);
                    c
                };
                if events.send(Event::Read(id, chunk)).await.is_err() {
                    return; // the driver is gone
                }
            }
            Err(e) => {
                tracing::debug!(conn = ?id, error = %e, "read failed");
                break;
            }
        }
    }
    // The driver is gone if this fails: nobody to tell.
    let _ = events.send(Event::Closed(id)).await;
}

/// A connection's writer: its `Send`s and its `Close`, in issue order,
/// each answered to the driver.
async fn writer<S: AsyncStream>(
    stream: Arc<S>,
    commands: Receiver<Command>,
    events: Sender<Event<S>>,
    segs: Arc<SegTable>,
    stats: Arc<Stats>,
) {
    // After a failed write or a `Close` the connection is done for; the
    // rest of its queue fails fast.
    let mut dead: Option<IoError> = None;
    while let Ok(cmd) = commands.recv().await {
        let io = cmd.io();
        let result = match (&dead, cmd) {
            (Some(e), _) => Err(e.clone()),
            (None, Command::Send { parts, .. }) => {
                stats.send_calls.fetch_add(1, Ordering::Relaxed);
                match send(&*stream, SendCursor::new(parts), &segs, &stats).await {
                    Ok(()) => Ok(conveyor_core::Completion::Unit),
                    Err(e) => {
                        tracing::debug!(error = %e, "send failed");
                        // The reader sees the end and reports the close.
                        shutdown(&*stream);
                        let e = IoError::from(e);
                        dead = Some(e.clone());
                        Err(e)
                    }
                }
            }
            (None, Command::Close { .. }) => {
                shutdown(&*stream);
                dead = Some(IoError {
                    kind: io::ErrorKind::NotConnected,
                    message: "closed by the broker".into(),
                });
                Ok(conveyor_core::Completion::Unit)
            }
            (None, other) => fail(other.io(), "a file command reached a socket").result,
        };
        if events
            .send(Event::Done(vec![Done { io, result }]))
            .await
            .is_err()
        {
            return; // the driver is gone
        }
    }
}

/// Write a whole `Send`, waiting for write readiness whenever the socket is
/// full.
async fn send<S: AsyncStream>(
    stream: &S,
    mut cursor: SendCursor,
    segs: &SegTable,
    stats: &Stats,
) -> io::Result<()> {
    loop {
        let r = stream.try_io(Interest::Writable, &mut || {
            cursor.advance(stream, segs, stats)
        });
        match r {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                stream.ready(Interest::Writable).await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The segment writer: file commands in issue order, each batch run on the
/// blocking pool, completions handed to the driver (`Sync`s by its fsync
/// worker, stopped and joined on the blocking pool once the queue closes).
async fn segment_writer<R: AsyncRuntime>(
    rt: Arc<R>,
    exec: Arc<SegmentWriter>,
    commands: Receiver<Command>,
    events: Sender<Event<R::Stream>>,
) {
    while let Ok(first) = commands.recv().await {
        let mut batch = vec![first];
        while batch.len() < DONE_BATCH {
            match commands.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        let exec = Arc::clone(&exec);
        let events = events.clone();
        rt.unblock(Box::new(move || {
            run_all(
                batch,
                |cmd| exec.execute(cmd),
                |dones| {
                    // Unbounded: fails only once the driver is gone.
                    let _ = events.try_send(Event::Done(std::mem::take(dones)));
                },
            );
        }))
        .await;
    }
    // Each batch's clone is gone once its work returned: this drop joins
    // the fsync worker, off the async workers.
    rt.unblock(Box::new(move || drop(exec))).await;
}
