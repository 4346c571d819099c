//! The broker: connections, request routing, partitions, and the command
//! queue the driver drains.

use std::collections::VecDeque;

use bytes::BytesMut;

use crate::config::Config;
use crate::io::{Command, ConnId, DiskState, Done, Ids};
use crate::time::{Instant, Now};

/// Files at the top of the data directory the broker reads at startup.
pub const ROOT_FILES: &[&str] = &[
    "recovery-point-offset-checkpoint",
    "log-start-offset-checkpoint",
    ".kafka_cleanshutdown",
];

/// What [`Broker::poll`] returns.
#[derive(Debug)]
pub enum Poll {
    /// Do this, then answer it with [`Broker::handle_done`].
    Command(Command),
    /// Nothing more to do until an input arrives or the deadline (if any)
    /// passes; then call [`Broker::handle_timeout`].
    Wait(Option<Instant>),
}

/// A single-node Kafka broker as a state machine. See the crate docs for the
/// contract.
#[derive(Debug)]
pub struct Broker {
    config: Config,
    ids: Ids,
    out: VecDeque<Command>,
}

impl Broker {
    /// A broker over what the driver found in the data directory. Recovery
    /// commands (truncations, index rebuilds, segment opens) come out of
    /// [`Broker::poll`] first.
    pub fn new(config: Config, now: Now, disk: DiskState) -> Self {
        let _ = (now, disk);
        Self {
            config,
            ids: Ids::default(),
            out: VecDeque::new(),
        }
    }

    /// The configuration the broker runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A connection opened.
    pub fn handle_open(&mut self, now: Now, conn: ConnId) {
        let _ = (now, conn);
    }

    /// A connection closed (by the peer, an error, or a `Close` command).
    pub fn handle_close(&mut self, now: Now, conn: ConnId) {
        let _ = (now, conn);
    }

    /// Bytes arrived on `conn`: whole frames are cut off `buf`; a partial
    /// frame stays for the next call.
    pub fn handle_read(&mut self, now: Now, conn: ConnId, buf: &mut BytesMut) {
        let _ = (now, conn, buf);
    }

    /// Whether the broker takes more bytes from `conn` now. False while the
    /// connection has `queued.max.requests` requests unanswered; the driver
    /// stops reading it until a later `poll` says otherwise.
    pub fn wants_read(&self, conn: ConnId) -> bool {
        let _ = conn;
        true
    }

    /// A command finished.
    pub fn handle_done(&mut self, now: Now, done: Done) {
        let _ = (now, done);
    }

    /// A deadline passed.
    pub fn handle_timeout(&mut self, now: Now) {
        let _ = now;
    }

    /// Begin a clean shutdown: stop answering requests, sync every log, write
    /// the checkpoints and the clean-shutdown marker. Keep draining `poll`
    /// and answering commands until [`Broker::is_stopped`].
    pub fn shutdown(&mut self, now: Now) {
        let _ = now;
    }

    /// Clean shutdown has finished: every command is answered and the marker
    /// is written. The driver may exit.
    pub fn is_stopped(&self) -> bool {
        false
    }

    /// The next thing for the driver to do.
    pub fn poll(&mut self) -> Poll {
        match self.out.pop_front() {
            Some(cmd) => Poll::Command(cmd),
            None => Poll::Wait(None),
        }
    }
}
