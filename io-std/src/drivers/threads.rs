//! The thread-per-connection runtime: the shared broker behind one lock, the
//! [`drive`] step every thread funnels its input through, and the threads
//! themselves (listener, per-connection reader and writer, segment writer
//! and its fsync worker, timer).
//!
//! What the threads share besides the broker's lock comes from
//! [`conveyor_core::sync`]: each reader waits on its connection's [`Gate`]
//! while the broker does not want its bytes; the timer sleeps on the
//! [`Deadline`] every drive publishes; the segment table is a `PinTable`
//! and `Sync`s go to the fsync worker through a `SyncHandoff`
//! ([`crate::segment`]).

use std::fs::File;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use conveyor_core::sync::{Deadline, Gate};
use conveyor_core::{Broker, Command, ConnId, Done, Instant, IoError, Now};

use crate::host::{Clock, Connect, Host, Link};
use crate::rbuf;
use crate::storage::segment::{SegTable, SegmentWriter, work_loop};
use crate::storage::send::{Stats, send_parts};
use crate::{SHUTDOWN_TIMEOUT, connectable};

/// The shortest nap of the timer when the broker keeps asking for a deadline
/// that has already passed, so a confused deadline cannot spin a core.
const TIMER_MIN_NAP: Duration = Duration::from_millis(1);

/// How the broker's side reaches a connection's threads.
#[derive(Debug)]
pub(crate) struct ThreadLink {
    /// Feeds the connection's writer thread.
    tx: Sender<Command>,
    /// Another handle on the socket, to shut it down from any thread.
    stream: TcpStream,
    /// What its reader waits on while the broker wants none of its bytes.
    /// A reader shuts its gate under the lock, and the drive that resumes
    /// the connection opens it under the lock, so no opening is missed.
    gate: Arc<Gate>,
}

impl Link for ThreadLink {
    fn queue(&mut self, cmd: Command) -> Result<(), Command> {
        self.tx.send(cmd).map_err(|e| e.0)
    }

    fn resume(&mut self) {
        self.gate.open();
    }
}

/// Everything behind the broker's lock.
pub(crate) struct State {
    pub(crate) host: Host<ThreadLink>,
    /// Threads waiting on [`Shared::progress`]: a shutdown waiting for
    /// `is_stopped`.
    waiters: usize,
}

/// What every runtime thread shares.
pub(crate) struct Shared {
    /// Itself, for the threads it starts from under its lock (connects).
    me: Weak<Shared>,
    state: Mutex<State>,
    /// Signalled after a drive when some thread waits for the broker's state
    /// to change.
    progress: Condvar,
    /// The broker's last `Wait` deadline, published by every drive, for the
    /// timer thread; closed to stop it.
    deadline: Deadline<Instant>,
    clock: Clock,
    pub(crate) stats: Arc<Stats>,
    pub(crate) segs: Arc<SegTable>,
    /// Connection threads, joined at shutdown.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    pub(crate) fn new(
        broker: Broker,
        clock: Clock,
        seg_tx: Sender<Command>,
        segs: Arc<SegTable>,
        stats: Arc<crate::Stats>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            state: Mutex::new(State {
                host: Host::new(broker, clock, Box::new(move |cmd| seg_tx.send(cmd).is_ok())),
                waiters: 0,
            }),
            progress: Condvar::new(),
            deadline: Deadline::new(),
            clock,
            stats,
            segs,
            threads: Mutex::default(),
        })
    }

    /// Lock the broker. A panic in the broker (a bug) poisons the lock; the
    /// runtime carries on so that connections still close and shutdown
    /// still joins its threads, and [`Shared::poisoned`] reports it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn poisoned(&self) -> bool {
        self.state.is_poisoned()
    }

    /// Wait for the broker's state to change, at most `timeout`.
    pub(crate) fn wait_progress<'a>(
        &self,
        mut st: MutexGuard<'a, State>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        st.waiters += 1;
        let mut st = match timeout {
            None => self
                .progress
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner),
            Some(t) => wait_timeout(&self.progress, st, t),
        };
        st.waiters -= 1;
        st
    }

    fn spawn(&self, name: String, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let handle = thread::Builder::new().name(name).spawn(f)?;
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
        Ok(())
    }

    pub(crate) fn take_threads(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn wait_timeout<'a>(
    cond: &Condvar,
    st: MutexGuard<'a, State>,
    t: Duration,
) -> MutexGuard<'a, State> {
    match cond.wait_timeout(st, t) {
        Ok((g, _)) => g,
        Err(e) => e.into_inner().0,
    }
}

/// Apply one input to the broker and carry out what it asks: lock, read the
/// clock, call `f`, drain `poll` and dispatch every command, all under the
/// lock, so that commands reach each connection's and the segment writer's
/// queue in issue order.
pub(crate) fn drive<R>(shared: &Shared, f: impl FnOnce(&mut Broker, Now) -> R) -> R {
    shared.lock().apply(shared, f)
}

impl State {
    /// [`drive`] for a caller that already holds the lock.
    pub(crate) fn apply<R>(&mut self, shared: &Shared, f: impl FnOnce(&mut Broker, Now) -> R) -> R {
        self.with(shared, |host| host.apply(f))
    }

    /// Run `f` on the host, then publish the broker's deadline for the
    /// timer and wake whoever waits for progress.
    fn with<R>(&mut self, shared: &Shared, f: impl FnOnce(&mut Host<ThreadLink>) -> R) -> R {
        let r = f(&mut self.host);
        // The links act at once; nothing waits on the list.
        self.host.drain_touched(drop);
        for c in self.host.take_connects() {
            let Some(me) = shared.me.upgrade() else { break };
            let io = c.io;
            let spawned = shared.spawn(format!("conveyor-connect-{}", c.conn.0), move || {
                connect(&me, c);
            });
            if let Err(e) = spawned {
                self.host.connect_failed(io, &e);
            }
        }
        shared.deadline.publish(self.host.deadline());
        if self.waiters > 0 {
            shared.progress.notify_all();
        }
        r
    }

    /// Close every connection: readers see the end of their stream and
    /// report it, writers fail what is left in their queues.
    pub(crate) fn close_all(&mut self) {
        for c in self.host.conns.values_mut() {
            c.closing = true;
            // Already shut down or reset by the peer: nothing left to do.
            let _ = c.link.stream.shutdown(Shutdown::Both);
            c.link.gate.open();
        }
    }

    pub(crate) fn stop_segment_writer(&mut self) {
        self.host.stop_segment_writer();
    }
}

/// Hand completions to the broker under one lock.
fn report(shared: &Shared) -> impl FnMut(&mut Vec<Done>) + '_ {
    move |dones| report_dones(shared, dones)
}

/// Hand `dones` to the broker under one lock, emptying it.
pub(crate) fn report_dones(shared: &Shared, dones: &mut Vec<Done>) {
    drive(shared, |b, now| {
        for d in dones.drain(..) {
            b.handle_done(now, d);
        }
    });
}

/// The segment writer: file commands, one at a time, in issue order (its
/// fsync worker answers the `Sync`s).
pub(crate) fn segment_writer(shared: Arc<Shared>, writer: SegmentWriter, rx: Receiver<Command>) {
    work_loop(&rx, |cmd| writer.execute(cmd), report(&shared));
}

/// The timer: sleeps on the published [`Deadline`] and calls
/// `handle_timeout` once it passes.
pub(crate) fn timer(shared: Arc<Shared>) {
    let cell = &shared.deadline;
    let mut seen = cell.current();
    while !seen.closed {
        let Some(deadline) = seen.at else {
            seen = cell.wait(&seen, None);
            continue;
        };
        // The clock, not the wake-up, says whether the deadline passed:
        // condition variables wake early and late.
        let mono = shared.clock.mono();
        if mono < deadline {
            seen = cell.wait(&seen, Some(deadline.saturating_since(mono)));
            continue;
        }
        drive(&shared, |b, now| b.handle_timeout(now));
        seen = cell.current();
        if seen.at.is_some_and(|d| d <= mono) {
            seen = cell.wait(&seen, Some(TIMER_MIN_NAP));
        }
    }
}

pub(crate) fn stop_timer(shared: &Shared) {
    shared.deadline.close();
}

/// The listener: accepts connections until `stop` is set (then one more
/// connection wakes it to see the flag).
pub(crate) fn listener(shared: Arc<Shared>, listener: TcpListener, stop: Arc<AtomicBool>) {
    let mut next_conn = 0u64;
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Out of file descriptors or memory: let some connections
                // close before trying again.
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        next_conn += 1;
        let conn = ConnId(next_conn);
        if let Err(e) = open_conn(&shared, conn, stream) {
            tracing::warn!(?conn, error = %e, "cannot serve a new connection");
        }
    }
}

/// How long a connect to a peer may take (Kafka's
/// `socket.connection.setup.timeout.ms`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Open a connection the broker asked for, then serve it like an accepted
/// one.
fn connect(shared: &Arc<Shared>, c: Connect) {
    let opened = c
        .resolve()
        .and_then(|addr| TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT));
    let served = opened.and_then(|stream| serve_conn(shared, c.conn, stream, Some(c.io)));
    if let Err(e) = served {
        tracing::debug!(conn = ?c.conn, addr = %c.addr, error = %e, "connect failed");
        shared
            .lock()
            .with(shared, |host| host.connect_failed(c.io, &e));
    }
}

fn open_conn(shared: &Arc<Shared>, conn: ConnId, stream: TcpStream) -> io::Result<()> {
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    let peer = stream.peer_addr().ok();
    tracing::debug!(?conn, ?peer, "connection opened");
    serve_conn(shared, conn, stream, None)
}

/// Start a connection's writer and reader threads and add it to the
/// table: as accepted, or (`connect`) as the answer to that `Connect`.
fn serve_conn(
    shared: &Arc<Shared>,
    conn: ConnId,
    stream: TcpStream,
    connect: Option<conveyor_core::IoId>,
) -> io::Result<()> {
    // Small responses must not wait for Nagle; large ones are corked.
    stream.set_nodelay(true)?;
    let (tx, rx) = mpsc::channel();
    let writer_stream = stream.try_clone()?;
    let handle = stream.try_clone()?;
    let writer_shared = Arc::clone(shared);
    shared.spawn(format!("conveyor-write-{}", conn.0), move || {
        writer(&writer_shared, writer_stream, &rx);
    })?;
    {
        let link = ThreadLink {
            tx,
            stream: handle,
            gate: Arc::new(Gate::new(true)),
        };
        // Beyond `max.connections` the broker closes it at once.
        let mut st = shared.lock();
        st.with(shared, |host| match connect {
            Some(io) => {
                shared.stats.connects.fetch_add(1, Ordering::Relaxed);
                host.connected(io, conn, link);
            }
            None => host.open(conn, link),
        });
    }
    let reader_shared = Arc::clone(shared);
    let spawned = shared.spawn(format!("conveyor-read-{}", conn.0), move || {
        reader(&reader_shared, conn, stream);
    });
    if let Err(e) = spawned {
        // Nobody will read it: report it closed now; dropping its queue ends
        // its writer. A connect was answered already: its end says the rest.
        closed(shared, conn);
        if connect.is_some() {
            tracing::warn!(?conn, error = %e, "cannot serve a new connection");
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

/// Report a connection gone, and drop its queue so its writer finishes
/// (the writer answers what it was given).
fn closed(shared: &Shared, conn: ConnId) {
    let mut st = shared.lock();
    st.with(shared, |host| {
        host.close(conn, |link| {
            let _ = link.stream.shutdown(Shutdown::Both);
            Vec::new()
        })
    });
}

/// A connection's reader: reads, hands bytes to the broker, and stops
/// reading while the broker wants none (back-pressure: the rest stays in
/// the kernel's buffer). Its read buffer lives in the connection table,
/// where the broker's resume finds the frames already read but not taken;
/// the reader takes it out only for the read itself.
fn reader(shared: &Shared, conn: ConnId, stream: TcpStream) {
    loop {
        let mut buf = {
            let mut st = shared.lock();
            loop {
                let Some(c) = st.host.conns.get_mut(&conn) else {
                    break None;
                };
                if c.may_read() {
                    break Some(std::mem::take(&mut c.rbuf));
                }
                // Shut under the lock: the drive that resumes the
                // connection opens it, even before the wait.
                let gate = Arc::clone(&c.link.gate);
                gate.shut();
                drop(st);
                gate.wait();
                st = shared.lock();
            }
        };
        let Some(mut buf) = buf.take() else { break };
        let r = rbuf::read_into(&mut buf, |room| (&stream).read(room));
        let mut st = shared.lock();
        let Some(c) = st.host.conns.get_mut(&conn) else {
            break;
        };
        c.rbuf = buf;
        match r {
            Ok(0) => break,
            Ok(n) => st.with(shared, |host| host.read(conn, n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(?conn, error = %e, "read failed");
                break;
            }
        }
    }
    // Trims the allocator too, from this thread: its arena holds what the
    // connection's frames were read into.
    closed(shared, conn);
}

/// A connection's writer: `Send`s and the `Close` in issue order.
fn writer(shared: &Shared, stream: TcpStream, rx: &Receiver<Command>) {
    // After a failed write the connection is done for; the rest of its
    // queue fails fast.
    let mut dead: Option<IoError> = None;
    let mut exec = |cmd: Command| {
        let io = cmd.io();
        if let Some(e) = &dead {
            return Done {
                io,
                result: Err(e.clone()),
            };
        }
        let result = match cmd {
            Command::Send { parts, .. } => {
                shared.stats.send_calls.fetch_add(1, Ordering::Relaxed);
                send_parts(&stream, parts, &shared.segs, &shared.stats)
            }
            Command::Close { .. } => {
                // The peer may have gone already; the socket is shut either way.
                let _ = stream.shutdown(Shutdown::Both);
                dead = Some(IoError {
                    kind: io::ErrorKind::NotConnected,
                    message: "closed by the broker".into(),
                });
                return Done::ok(io);
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a file command reached a socket writer",
            )),
        };
        match result {
            Ok(()) => Done::ok(io),
            Err(e) => {
                tracing::debug!(error = %e, "send failed");
                // Wake the reader: it sees the end of the stream and reports
                // the connection closed.
                let _ = stream.shutdown(Shutdown::Both);
                let e = IoError::from(e);
                dead = Some(e.clone());
                Done { io, result: Err(e) }
            }
        }
    };
    work_loop(rx, |cmd| Some(exec(cmd)), report(shared));
}

/// How long a shutdown waits for the listener's wake-up connection.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// The `threads` runtime's threads, stopped by [`Threads::stop`] or on drop.
pub(crate) struct Threads {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    pub(crate) stop_accepting: Arc<AtomicBool>,
    pub(crate) listener: Option<JoinHandle<()>>,
    pub(crate) seg_writer: Option<JoinHandle<()>>,
    pub(crate) timer: Option<JoinHandle<()>>,
    /// Holds the data directory's lock until the runtime is gone.
    lock: Option<File>,
}

impl Threads {
    pub(crate) fn new(shared: Arc<Shared>, local_addr: SocketAddr, lock: File) -> Self {
        Self {
            shared,
            local_addr,
            stop_accepting: Arc::default(),
            listener: None,
            seg_writer: None,
            timer: None,
            lock: Some(lock),
        }
    }

    /// Stop accepting, shut the broker down cleanly (bounded by
    /// [`SHUTDOWN_TIMEOUT`]), close every connection, join every thread.
    pub(crate) fn stop(&mut self) -> io::Result<()> {
        if self.lock.is_none() {
            return Ok(()); // already stopped
        }
        let mut problems = Vec::new();
        self.stop_listener(&mut problems);

        if !self.shared.poisoned() {
            let mut st = self.shared.lock();
            st.apply(&self.shared, |b, now| b.shutdown(now));
            let give_up = std::time::Instant::now() + SHUTDOWN_TIMEOUT;
            while !st.host.broker.is_stopped() && !self.shared.poisoned() {
                let left = give_up.saturating_duration_since(std::time::Instant::now());
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
        stop_timer(&self.shared);
        if let Some(t) = self.timer.take() {
            join(t, &mut problems);
        }
        if self.shared.poisoned() {
            problems.push("the broker panicked".to_owned());
        }
        self.lock = None;
        finish(problems)
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

impl Drop for Threads {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!(error = %e, "unclean shutdown");
        }
    }
}

/// Join `t`, noting a panic in `problems`.
pub(crate) fn join(t: JoinHandle<()>, problems: &mut Vec<String>) {
    let name = t.thread().name().unwrap_or("a runtime thread").to_owned();
    if t.join().is_err() {
        problems.push(format!("{name} panicked"));
    }
}

/// The outcome of a stop: the problems met, joined into one error.
pub(crate) fn finish(problems: Vec<String>) -> io::Result<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(problems.join("; ")))
    }
}
