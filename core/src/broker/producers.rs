//! The producer id allocator (the producers part): the producer id blocks
//! that keep ids from ever repeating across restarts, and the
//! InitProducerId requests waiting for a block.
//!
//! Ids come from blocks of [`BLOCK_SIZE`], as Kafka's
//! `ProducerIdManager` takes them: the end of the reserved block is written
//! to [`PRODUCER_ID_BLOCK`] before any id in it is handed out, so a crash
//! may skip ids but never hands one out twice.
//!
//! In a cluster the blocks come from the metadata quorum instead, as
//! Kafka's controller hands them out: a broker claims the next free block
//! with a ProducerIds record (a compare-and-swap on the next free id, so no
//! two brokers ever share one) and hands out its ids once the image shows
//! the block as its own. The quorum's log is the durable record, so no file
//! is written; a restarted broker claims a new block.

use std::collections::VecDeque;

use bytes::Bytes;

use std::time::Duration;

use super::lifecycle::FileJob;
use super::out::Io;
use crate::cluster::Quorum;
use crate::io::{ConnId, IoError};
use crate::time::Instant;

/// The root file holding the first producer id not yet reserved.
pub(crate) const PRODUCER_ID_BLOCK: &str = "producer-id-block";

/// Ids reserved per write of [`PRODUCER_ID_BLOCK`] (Kafka's `PID_BLOCK_SIZE`).
const BLOCK_SIZE: i64 = 1000;

/// How often a claim not yet granted is made again (a proposal can be lost
/// with a leader change, or lose a race to another broker's).
const CLAIM_RETRY: Duration = Duration::from_secs(1);

/// Encodes the answer to a waiting request: a producer id, or the error
/// code when none could be reserved.
pub(crate) type Reply = Box<dyn FnOnce(Result<i64, ()>) -> Bytes + Send>;

/// A request waiting for a block to be written: its connection, its slot,
/// and how to answer it.
pub(crate) struct Waiting {
    pub(crate) conn: ConnId,
    pub(crate) seq: u64,
    pub(crate) reply: Reply,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Waiting({:?}, {})", self.conn, self.seq)
    }
}

/// The producer id allocator.
#[derive(Debug, Default)]
pub(crate) struct Producers {
    /// The next id to hand out.
    next: i64,
    /// Ids below this are reserved on disk.
    reserved_end: i64,
    /// The end of a block whose write is in flight.
    writing: Option<i64>,
    /// Requests waiting for that write, in arrival order.
    waiting: VecDeque<Waiting>,
    /// In a cluster: blocks come from the quorum, not the file.
    quorum: bool,
    /// The last claim: when, and the next free id it was made from (a
    /// block below it is an older one of this broker's).
    claimed: Option<(Instant, i64)>,
}

impl Producers {
    /// The allocator after a restart: nothing is reserved for this run yet,
    /// and ids continue after the last reserved block.
    pub(crate) fn load(file: Option<&[u8]>) -> Self {
        let next = file.and_then(parse_block_file).unwrap_or(0);
        Self {
            next,
            reserved_end: next,
            writing: None,
            waiting: VecDeque::new(),
            quorum: false,
            claimed: None,
        }
    }

    /// Take blocks from the metadata quorum from now on.
    pub(crate) fn use_quorum(&mut self) {
        self.quorum = true;
    }

    /// In a cluster, claim a block through `quorum` when one is wanted and
    /// no claim is pending.
    pub(crate) fn claim(&mut self, quorum: Option<&mut Quorum>, now: Instant) {
        let Some(q) = quorum.filter(|_| self.quorum) else {
            return;
        };
        let Some(floor) = self.writing.map(|_| self.reserved_end.max(self.next)) else {
            return;
        };
        if self
            .claimed
            .is_some_and(|(at, _)| at.saturating_add(CLAIM_RETRY) > now)
        {
            return;
        }
        if let Some(from) = q.claim_producer_ids(floor, BLOCK_SIZE) {
            self.claimed = Some((now, from));
        }
    }

    /// The image gives this broker the block `start..end`: when it is the
    /// one claimed, its ids may be handed out, and the requests waiting
    /// for them are answered, as (connection, slot, frame).
    pub(crate) fn granted(
        &mut self,
        io: &mut Io,
        (start, end): (i64, i64),
    ) -> Vec<(ConnId, u64, Bytes)> {
        let claimed = self.claimed.is_some_and(|(_, from)| start >= from);
        if !claimed || self.writing.is_none() || end <= self.reserved_end {
            return Vec::new();
        }
        self.next = start;
        self.writing = Some(end);
        self.claimed = None;
        self.written(io, Ok(()))
    }

    /// A reserved id for a new request, if one is left and no earlier
    /// request waits for one; starts the next block's write when it is due.
    pub(crate) fn assign(&mut self, io: &mut Io) -> Option<i64> {
        let id = if self.waiting.is_empty() {
            self.take()
        } else {
            None
        };
        self.maybe_reserve(io);
        id
    }

    /// Queue a request behind the block being written.
    pub(crate) fn wait(&mut self, io: &mut Io, waiting: Waiting) {
        self.waiting.push_back(waiting);
        self.maybe_reserve(io);
    }

    /// Start writing the next block if it is due (in a cluster, mark it
    /// wanted: [`Self::claim`] asks the quorum).
    fn maybe_reserve(&mut self, io: &mut Io) {
        if let Some(end) = self.want_write().filter(|_| !self.quorum) {
            io.write_file(
                FileJob::ProducerIds,
                PRODUCER_ID_BLOCK,
                encode_block_file(end),
            );
        }
    }

    /// The block file write finished: its ids may be handed out, and the
    /// requests waiting for them are answered, as (connection, slot,
    /// frame). After a failure they get an error (which clients retry).
    pub(crate) fn written(
        &mut self,
        io: &mut Io,
        result: Result<(), IoError>,
    ) -> Vec<(ConnId, u64, Bytes)> {
        if let Some(end) = self.writing.take() {
            if result.is_ok() {
                self.reserved_end = self.reserved_end.max(end);
            }
        }
        let mut answers = Vec::new();
        while !self.waiting.is_empty() {
            let id = match self.take() {
                Some(id) => Ok(id),
                None if result.is_err() => Err(()),
                None => break,
            };
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            answers.push((w.conn, w.seq, (w.reply)(id)));
        }
        if result.is_ok() {
            self.maybe_reserve(io);
        }
        answers
    }

    /// A reserved id, if one is left.
    fn take(&mut self) -> Option<i64> {
        (self.next < self.reserved_end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// The next block's end when a write should start now: none is in
    /// flight and less than half a block is left.
    fn want_write(&mut self) -> Option<i64> {
        if self.writing.is_some() || self.reserved_end - self.next >= BLOCK_SIZE / 2 {
            return None;
        }
        let end = self.reserved_end.max(self.next).saturating_add(BLOCK_SIZE);
        self.writing = Some(end);
        Some(end)
    }
}

/// The block file: format version 0, then the first unreserved id.
fn encode_block_file(next: i64) -> Bytes {
    Bytes::from(format!("0\n{next}\n"))
}

fn parse_block_file(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "0" {
        return None;
    }
    lines.next()?.trim().parse().ok().filter(|&n: &i64| n >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_reserved_before_use_and_continue_after_a_restart() {
        let mut ids = Producers::load(None);
        assert_eq!(ids.take(), None, "nothing reserved yet");
        assert_eq!(ids.want_write(), Some(BLOCK_SIZE));
        assert_eq!(ids.want_write(), None, "one write at a time");
        ids.reserved_end = ids.writing.take().unwrap();
        for i in 0..BLOCK_SIZE / 2 + 1 {
            assert_eq!(ids.take(), Some(i));
        }
        assert_eq!(ids.want_write(), Some(2 * BLOCK_SIZE), "prefetch");
        let file = encode_block_file(2 * BLOCK_SIZE);
        let restarted = Producers::load(Some(&file));
        assert_eq!((restarted.next, restarted.reserved_end), (2000, 2000));
        assert_eq!(parse_block_file(b"1\n5\n"), None);
        assert_eq!(parse_block_file(b"0\n-5\n"), None);
    }
}
