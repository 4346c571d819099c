//! # conveyor-core: a Kafka-compatible broker as a sans-IO state machine
//!
//! This crate promises a whole single-node Kafka broker — protocol, partition
//! logs, offsets, recovery — that never touches a clock, socket, file or
//! thread. A driver (the `conveyor-io-*` crates, or your own loop) owns those
//! and feeds the [`Broker`] what happened; the broker answers with
//! [`Command`]s saying what I/O to do. Given the same inputs it makes the same
//! decisions, so a whole broker runs under simulated time and a simulated
//! disk in tests.
//!
//! ## The contract
//!
//! **Inputs** (`handle_*`), each taking [`Now`], which never goes backwards:
//! - [`Broker::handle_open`] / [`Broker::handle_close`]: a connection came or went.
//! - [`Broker::handle_read`]: bytes arrived. The broker cuts whole frames off
//!   the caller's `BytesMut` without copying and leaves a partial frame there.
//! - [`Broker::handle_done`]: a command finished, with its [`IoId`].
//! - [`Broker::handle_timeout`]: a deadline passed (a spurious call is harmless).
//! - [`Broker::shutdown`]: begin a clean shutdown (sync, checkpoint, marker).
//!
//! Startup recovery input is [`DiskState`], what the driver read off the
//! data directory, given to [`Broker::new`].
//!
//! **Output**: after every input, drain [`Broker::poll`] until it returns
//! [`Poll::Wait`] with the next deadline. Everything else it returns is a
//! [`Command`], each with an [`IoId`] to be answered by exactly one [`Done`].
//! File commands for one segment run in issue order; `Send`s for one
//! connection are written in issue order. Responses leave each connection in
//! request order.
//!
//! [`Command::Connect`] asks the driver to open a connection to another
//! broker (the voters of `controller.quorum.voters`); such a connection is
//! named by the broker, from [`ConnId::FIRST_OUTBOUND`] up, and is served
//! like an accepted one once the `Connect` is answered.
//!
//! It also tells the driver when to stop and resume reading a connection
//! ([`Poll::ReadInterest`]: the back-pressure of `queued.max.requests` and
//! `queued.max.request.bytes`), and closes a connection beyond
//! `max.connections` itself: the driver decides nothing a client can
//! observe.
//!
//! **Getters** never change state: [`Broker::is_stopped`],
//! [`Broker::wants_read`].
//!
//! Errors come in three tiers: a bad request is answered with a Kafka error
//! code; a broken connection (bad framing, oversized frame) gets
//! [`Command::Close`]; a failed file command takes its partition offline,
//! sticky, answered with `KAFKA_STORAGE_ERROR`. No input makes the broker
//! panic.
//!
//! ## The driver loop
//!
//! ```
//! use bytes::BytesMut;
//! use conveyor_core::{Broker, Command, Config, ConnId, DiskState, Done, Now, Poll};
//! use conveyor_core::sim::SimDisk;
//!
//! let mut disk = SimDisk::default();
//! let mut broker = Broker::new(Config::default(), Now::default(), DiskState::default());
//! let now = Now::default();
//! let conn = ConnId(1);
//! broker.handle_open(now, conn);
//! // An ApiVersions v0 request (api key 18), correlation id 7, no client id.
//! let mut input = BytesMut::from(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff][..]);
//! broker.handle_read(now, conn, &mut input);
//! let mut sent = Vec::new();
//! loop {
//!     match broker.poll() {
//!         Poll::Wait(_deadline) => break, // sleep until the deadline or the next input
//!         // Stop or resume reading the connection (back-pressure).
//!         Poll::ReadInterest { .. } => {}
//!         Poll::Command(Command::Send { io, parts, .. }) => {
//!             sent.extend(parts); // a real driver writes these to the socket
//!             broker.handle_done(now, Done::ok(io));
//!         }
//!         Poll::Command(cmd) => {
//!             let done = disk.execute(&cmd); // a real driver does the file work
//!             broker.handle_done(now, done);
//!         }
//!     }
//! }
//! assert!(!sent.is_empty());
//! ```

//! ## Inside
//!
//! `api/` holds one module per Kafka API and the one table of them
//! (`api::APIS`); `broker/` is the state machine in owned parts
//! (connections, logs, groups, producers, peers, the command queue,
//! lifecycle) with the closed set of conditions a request can wait on;
//! `protocol/` the framing, headers and request-body guard; [`log`] the
//! partition logs; [`group`] the coordinator; [`layout`] the data
//! directory's names; [`sync`] the pieces shared between a driver's
//! threads; [`sim`] a simulated disk.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod api;
mod broker;
pub mod cluster;
pub mod config;
pub mod group;
pub mod io;
pub mod layout;
pub mod log;
pub mod metrics;
mod protocol;
pub mod sim;
pub mod sync;
pub mod time;

pub use broker::{Broker, PeerStatus, Poll, ROOT_FILES};
pub use config::{Config, ConfigError, TopicConfig};
pub use io::{
    Command, Completion, ConnId, DiskPartition, DiskSegment, DiskState, Done, IoError, IoId, Part,
    SegId, SegmentViews, View,
};
pub use log::{Job, JobOutput};
pub use time::{Instant, Now};
