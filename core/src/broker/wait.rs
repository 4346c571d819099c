//! What a handler gives back, and the small closed set of conditions a
//! request can wait on. An API that waits implements [`Waiter`] for its own
//! pending state and names one [`Until`]; the broker wakes it when that
//! condition may hold. No API adds a variant to a central enum.

use std::fmt;

use bytes::Bytes;

use super::groups::Groups;
use super::logs::{Logs, Pins};
use super::out::Io;
use super::producers::Producers;
use crate::config::Config;
use crate::io::{Completion, ConnId, IoError, IoId, Part};
use crate::time::{Instant, Now};

/// The broker's parts a handler works with: everything but the
/// connections, whose response order the broker keeps itself.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) now: Now,
    pub(crate) config: &'a Config,
    /// A clean shutdown has begun: nothing new is created.
    pub(crate) shutting_down: bool,
    pub(crate) io: &'a mut Io,
    pub(crate) logs: &'a mut Logs,
    pub(crate) groups: &'a mut Groups,
    pub(crate) producers: &'a mut Producers,
    pub(crate) metrics: &'a mut crate::metrics::Metrics,
    /// The metadata quorum, when the broker is a voter of one.
    pub(crate) quorum: Option<&'a mut crate::cluster::Quorum>,
    /// Requests to send on to the active controller
    /// ([`super::forward`]), each waiting in its slot for the answer.
    pub(crate) forwards: &'a mut Vec<super::forward::Forward>,
}

/// Where a request came from: its connection, the place its answer takes
/// in that connection's response order, and the client's name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub(crate) conn: ConnId,
    pub(crate) seq: u64,
    pub(crate) client_id: &'a str,
}

/// A handler's answer to one request.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A whole response frame, ready to leave in order.
    Frame(Bytes),
    /// A response of parts (file regions for `sendfile`), with the segments
    /// they name pinned until it is sent.
    Parts(Vec<Part>, Pins),
    /// No response at all (Produce with acks 0).
    Silent,
    /// Not yet: answered when the waiter's condition holds.
    Wait(Box<dyn Waiter>),
    /// Not yet: a part of the broker (the group coordinator, the producer
    /// id allocator) holds a ticket for this slot and fills it later.
    Parked,
    /// Close the connection (Kafka's answer to some errors).
    Close,
    /// The body did not decode: close the connection, as Kafka does.
    Malformed,
}

/// A response, complete: what a waiter gives back once its condition
/// holds.
#[derive(Debug)]
pub(crate) enum Response {
    /// A whole response frame.
    Frame(Bytes),
    /// Parts, with the segments they name pinned.
    Parts(Vec<Part>, Pins),
}

impl From<Response> for Answer {
    fn from(r: Response) -> Self {
        match r {
            Response::Frame(f) => Answer::Frame(f),
            Response::Parts(p, pins) => Answer::Parts(p, pins),
        }
    }
}

/// The conditions a request can wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Its appends are done: a log reaches an offset (the high watermark
    /// passes it) or a sync covers it (the recovery point passes it), or
    /// the log failed or went away; or a follower's log start moved.
    /// Produce, OffsetCommit, OffsetDelete, DeleteRecords in a cluster.
    Appended {
        /// When to give up waiting (Produce's `timeout_ms`), if ever.
        deadline: Option<Instant>,
    },
    /// A log it reads has more, or the deadline passes. Fetch.
    Data {
        /// When to answer with whatever is there.
        deadline: Instant,
    },
    /// File reads it issued (owned by its slot) are done. ListOffsets.
    Reads,
    /// The metadata quorum applied more records, or the deadline passes.
    /// CreateTopics, CreatePartitions, DeleteTopics in a cluster.
    Metadata {
        /// When to give up waiting.
        deadline: Instant,
    },
    /// The active controller answered the request this broker sent on to
    /// it, or the connection to it was lost, or the deadline passes.
    /// AlterConfigs and IncrementalAlterConfigs in a cluster.
    Forwarded {
        /// When to give up waiting.
        deadline: Instant,
    },
}

impl Until {
    /// When the request is answered even if its condition never holds.
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Until::Data { deadline }
            | Until::Metadata { deadline }
            | Until::Forwarded { deadline } => Some(deadline),
            Until::Appended { deadline } => deadline,
            Until::Reads => None,
        }
    }
}

/// Why a waiter is looked at again.
#[derive(Debug)]
pub(crate) enum Wake {
    /// Some log's high watermark or recovery point moved, or a log failed.
    Appended,
    /// This log has more to read, or failed.
    Data(crate::broker::logs::LogKey),
    /// Its deadline passed.
    Deadline,
    /// One of its reads finished.
    Read(IoId, Result<Completion, IoError>),
    /// The metadata quorum applied more records.
    Metadata,
    /// The active controller's answer to a request sent on to it (its
    /// response frame: correlation id, header, body), or `None` when the
    /// connection it went out on was lost.
    Forwarded(Option<Bytes>),
}

/// A request's pending state. `poll` is called on the wakes its `until`
/// asks for and returns the answer once the condition holds.
pub(crate) trait Waiter: fmt::Debug + Send {
    /// The condition this request waits on.
    fn until(&self) -> Until;
    /// Look again; `None` while it still waits.
    fn poll(&mut self, cx: &mut Ctx<'_>, wake: Wake) -> Option<Response>;
    /// Whether the request's bytes still count toward
    /// `queued.max.request.bytes` while it waits. A produce whose records
    /// are written and which waits only for its followers holds none, as
    /// Kafka frees a request's buffer once its records are appended:
    /// counted, such produces would stop the broker reading the very
    /// fetches that answer them.
    fn holds_request_bytes(&self) -> bool {
        true
    }
}
