//! The connections part: each connection's requests in arrival order, each
//! holding the place its response takes, so responses leave in request
//! order (Kafka's rule); the request bytes held unanswered; whether a
//! connection may be read, told to the driver as a change
//! ([`Conns::interest_changes`]); and admission (`max.connections`).

use std::collections::VecDeque;

use kafka_protocol::messages::ApiKey;

use super::logs::Pins;
use super::out::{Io, Owner};
use super::wait::{Until, Waiter};
use crate::io::{Command, ConnId, IdMap, Part};
use crate::time::Instant;

/// One request's place in its connection's response order.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) seq: u64,
    pub(crate) state: SlotState,
    /// The request frame's size, counted in `held_bytes` until the slot's
    /// response leaves.
    bytes: u64,
    /// The request's API and when it was read, for its latency.
    api: ApiKey,
    read_at: Instant,
}

impl Slot {
    /// Stop counting the request's bytes as held; how many they were.
    pub(crate) fn release_bytes(&mut self) -> u64 {
        std::mem::take(&mut self.bytes)
    }
}

#[derive(Debug)]
pub(crate) enum SlotState {
    /// The response, ready to leave once every earlier one has.
    Ready(Vec<Part>, Pins),
    /// A request that gets no response (Produce with acks 0), done.
    Silent,
    /// Waiting on a condition, kept beside the waiter so the wakes that
    /// scan every slot compare a value instead of calling into each one.
    Waiting(Until, Box<dyn Waiter>),
    /// Waiting for a part of the broker to fill it (a ticket).
    Parked,
}

impl SlotState {
    fn is_done(&self) -> bool {
        matches!(self, SlotState::Ready(..) | SlotState::Silent)
    }

    /// The pins a state holds, released when it is dropped unsent.
    pub(crate) fn into_pins(self) -> Pins {
        match self {
            SlotState::Ready(_, pins) => pins,
            _ => Vec::new(),
        }
    }

    /// What it waits on, if it is waiting on a condition.
    pub(crate) fn until(&self) -> Option<Until> {
        match self {
            SlotState::Waiting(until, _) => Some(*until),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Conn {
    /// The client id its latest request carried (member ids start with it).
    client_id: String,
    queue: VecDeque<Slot>,
    next_seq: u64,
    /// A `Close` was issued: read nothing more, answer nothing more.
    closing: bool,
    /// Whether the driver was last told to read it (it starts reading).
    reading: bool,
    /// Bytes were left in the driver's buffer because the broker took no
    /// more: the driver must be told to stop and read again (which hands
    /// them over), even if reading is what it was last told.
    stalled: bool,
    /// Another broker's (it sent Raft frames, or a request as a voter):
    /// its replica fetches and Raft messages are what moves the high
    /// watermark that held produces wait for, so `queued.max.request.bytes`
    /// never stops reading it, and its requests (a follower's fetch
    /// long-polls all the time) do not count toward it.
    peer: bool,
}

/// Every open connection.
#[derive(Debug)]
pub(crate) struct Conns {
    conns: IdMap<ConnId, Conn>,
    /// Bytes of request frames read and not yet answered, across every
    /// connection (`queued.max.request.bytes` bounds it).
    held_bytes: u64,
    /// `queued.max.requests`: unanswered requests per connection.
    max_inflight: usize,
    /// `queued.max.request.bytes`.
    max_held_bytes: u64,
    /// `max.connections`.
    max_conns: usize,
    /// Connections whose queue changed since the driver was last told
    /// about read interest.
    dirty: Vec<ConnId>,
    /// Whether `held_bytes` was at its limit when the driver was last told.
    held_full: bool,
    /// The API and read time of each response that left since the broker
    /// last asked ([`Conns::take_answered`]).
    answered: Vec<(ApiKey, Instant)>,
}

impl Conns {
    pub(crate) fn new(max_inflight: usize, max_held_bytes: u64, max_conns: usize) -> Self {
        Self {
            conns: IdMap::default(),
            held_bytes: 0,
            max_inflight,
            max_held_bytes,
            max_conns,
            dirty: Vec::new(),
            held_full: false,
            answered: Vec::new(),
        }
    }

    /// Connections open (admitted or closing).
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// The API and read time of each response that left since the last
    /// call, in the order they left.
    pub(crate) fn take_answered(&mut self) -> Vec<(ApiKey, Instant)> {
        std::mem::take(&mut self.answered)
    }

    /// A new connection; `false` when `max.connections` are open already,
    /// and it is closed at once.
    pub(crate) fn open(&mut self, io: &mut Io, conn: ConnId) -> bool {
        let admitted = self.conns.len() < self.max_conns;
        let c = Conn {
            reading: true,
            ..Conn::default()
        };
        self.conns.insert(conn, c);
        // It starts read; if bytes are held at the limit, the next poll
        // tells the driver to stop, and later to read again.
        self.dirty.push(conn);
        if !admitted {
            tracing::warn!(
                ?conn,
                "{} connections already open (max.connections); closing",
                self.max_conns
            );
            self.close(io, conn);
        }
        admitted
    }

    /// The changes of read interest since the last call, as (connection,
    /// read), for the driver: stop reading a connection while it has
    /// `queued.max.requests` requests unanswered or `queued.max.request.bytes`
    /// are held across connections; resume once that is no longer so. A
    /// closing connection gets none: its `Close` says all.
    pub(crate) fn interest_changes(&mut self, out: &mut Vec<(ConnId, bool)>) {
        let full = self.held_bytes >= self.max_held_bytes;
        let everyone = full != self.held_full;
        self.held_full = full;
        // The list is kept, emptied, so each input does not allocate one.
        let mut ids = std::mem::take(&mut self.dirty);
        if everyone {
            ids.clear();
            ids.extend(self.conns.keys().copied());
        }
        for &id in &ids {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            let want = (!full || c.peer) && c.queue.len() < self.max_inflight;
            if c.closing {
                continue;
            }
            if std::mem::take(&mut c.stalled) && want {
                // Bytes wait in the driver's buffer and nothing may come to
                // prompt it: a resume makes it hand them over.
                if c.reading {
                    out.push((id, false));
                }
                c.reading = true;
                out.push((id, true));
                continue;
            }
            if want == c.reading {
                continue;
            }
            c.reading = want;
            out.push((id, want));
        }
        ids.clear();
        self.dirty = ids;
    }

    /// `bytes` of held requests no longer count (their records are written,
    /// and they wait only for other brokers): see
    /// [`Waiter::holds_request_bytes`].
    pub(crate) fn release(&mut self, bytes: u64) {
        self.held_bytes = self.held_bytes.saturating_sub(bytes);
    }

    /// Forget a closed connection; the pins its unsent responses held.
    pub(crate) fn remove(&mut self, conn: ConnId) -> Pins {
        let mut pins = Vec::new();
        if let Some(c) = self.conns.remove(&conn) {
            for slot in c.queue {
                self.held_bytes -= slot.bytes;
                pins.extend(slot.state.into_pins());
            }
        }
        pins
    }

    pub(crate) fn ids(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }

    /// Whether the broker takes more bytes from `conn` now: not while it
    /// has `queued.max.requests` requests unanswered or is closing, nor
    /// while `queued.max.request.bytes` are held across connections
    /// (another broker's excepted: see [`Conns::mark_peer`]).
    pub(crate) fn wants_read(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| {
            !c.closing
                && c.queue.len() < self.max_inflight
                && (c.peer || self.held_bytes < self.max_held_bytes)
        })
    }

    /// `conn` is another broker's: the bytes clients hold never stop it
    /// being read (an `acks=all` produce held at the limit waits for the
    /// very fetches that would free it).
    pub(crate) fn mark_peer(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.peer {
                c.peer = true;
                self.dirty.push(conn);
            }
        }
    }

    /// The broker left bytes of `conn` in the driver's buffer, unread for
    /// now: once it may read again, the driver is told to (see
    /// [`Conns::interest_changes`]).
    pub(crate) fn stalled(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.closing {
                c.stalled = true;
                self.dirty.push(conn);
            }
        }
    }

    /// Remember the client id a request carried.
    pub(crate) fn note_client(&mut self, conn: ConnId, id: &str) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.client_id != id {
                id.clone_into(&mut c.client_id);
            }
        }
    }

    pub(crate) fn client_id(&self, conn: ConnId) -> &str {
        self.conns.get(&conn).map_or("", |c| c.client_id.as_str())
    }

    /// The place the next request on `conn` takes.
    pub(crate) fn next_seq(&self, conn: ConnId) -> Option<u64> {
        self.conns.get(&conn).map(|c| c.next_seq)
    }

    /// Append a slot for a request of `api` and `bytes`, read at
    /// `read_at`, and send whatever is now in order; the state comes back
    /// when the connection is gone.
    pub(crate) fn push(
        &mut self,
        io: &mut Io,
        conn: ConnId,
        state: SlotState,
        (api, bytes, read_at): (ApiKey, u64, Instant),
    ) -> Result<u64, SlotState> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Err(state);
        };
        let seq = c.next_seq;
        c.next_seq += 1;
        // Another broker's requests neither stop nor count (a follower's
        // fetch long-polls all the time).
        let bytes = if c.peer { 0 } else { bytes };
        self.held_bytes += bytes;
        c.queue.push_back(Slot {
            seq,
            state,
            bytes,
            api,
            read_at,
        });
        self.dirty.push(conn);
        self.flush(io, conn);
        Ok(seq)
    }

    /// Replace the state of `conn`'s slot `seq` and send what is in order;
    /// the state comes back when the slot is gone.
    pub(crate) fn fill(
        &mut self,
        io: &mut Io,
        conn: ConnId,
        seq: u64,
        state: SlotState,
    ) -> Result<(), SlotState> {
        let Some(slot) = self.slot_mut(conn, seq) else {
            return Err(state);
        };
        slot.state = state;
        self.flush(io, conn);
        Ok(())
    }

    pub(crate) fn slot_mut(&mut self, conn: ConnId, seq: u64) -> Option<&mut Slot> {
        let c = self.conns.get_mut(&conn)?;
        c.queue.iter_mut().find(|s| s.seq == seq)
    }

    /// `conn`'s slots, oldest first.
    pub(crate) fn slots_mut(&mut self, conn: ConnId) -> impl Iterator<Item = &mut Slot> {
        self.conns
            .get_mut(&conn)
            .into_iter()
            .flat_map(|c| c.queue.iter_mut())
    }

    /// The connections with a slot waiting on a condition `pick` accepts,
    /// and those slots, in order.
    pub(crate) fn waiting(&self, pick: impl Fn(Until) -> bool) -> Vec<(ConnId, u64)> {
        let mut found = Vec::new();
        for (&conn, c) in &self.conns {
            for slot in &c.queue {
                if slot.state.until().is_some_and(&pick) {
                    found.push((conn, slot.seq));
                }
            }
        }
        found
    }

    /// The connections with a slot waiting on a condition `pick` accepts.
    pub(crate) fn conns_waiting(&self, pick: impl Fn(Until) -> bool) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.queue.iter().any(|s| s.state.until().is_some_and(&pick)))
            .map(|(&conn, _)| conn)
            .collect()
    }

    /// The earliest deadline any waiting slot has.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for c in self.conns.values() {
            for slot in &c.queue {
                if let Some(deadline) = slot.state.until().and_then(Until::deadline) {
                    next = Some(next.map_or(deadline, |n| n.min(deadline)));
                }
            }
        }
        next
    }

    /// Send the responses at the front of `conn`'s queue that are ready.
    pub(crate) fn flush(&mut self, io: &mut Io, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        while c.queue.front().is_some_and(|s| s.state.is_done()) {
            let Some(slot) = c.queue.pop_front() else {
                break;
            };
            self.held_bytes -= slot.bytes;
            self.dirty.push(conn);
            self.answered.push((slot.api, slot.read_at));
            if let SlotState::Ready(parts, pins) = slot.state {
                let io_id = io.next_io();
                let cmd = Command::Send {
                    io: io_id,
                    conn,
                    parts,
                };
                io.emit(cmd, Owner::Send(pins));
            }
        }
    }

    /// Close `conn` after the responses already sent: read nothing more
    /// from it, answer nothing more on it.
    pub(crate) fn close(&mut self, io: &mut Io, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        c.closing = true;
        // Responses already queued before the close still leave first: the
        // driver writes this connection's commands in order.
        let io_id = io.next_io();
        io.emit(Command::Close { io: io_id, conn }, Owner::Close);
    }
}
