//! A broker owned by one loop (the mio event loop, the async drive task):
//! the clock it is fed, its deadline, and the routing of its commands — file
//! commands to the segment writer, socket commands to an outbox the loop
//! empties onto its connections.

use std::io;
use std::time::Duration;

use conveyor_core::{Broker, Command, Done, Instant, IoError, Now, Poll};

use crate::runtime::Clock;

/// Queues a file command for the segment writer; `false` once it is gone.
pub(crate) type SegQueue = Box<dyn Fn(Command) -> bool + Send>;

/// The broker and what its loop keeps beside it.
pub(crate) struct Owned {
    pub(crate) broker: Broker,
    clock: Clock,
    /// Keeps the wall clock handed to the broker from going backwards when
    /// the system clock is stepped.
    last_wall_ms: i64,
    /// The broker's last `Wait` deadline.
    deadline: Option<Instant>,
    /// Feeds the segment writer; dropped when the runtime stops.
    seg_tx: Option<SegQueue>,
    /// `Send` and `Close` commands, in issue order, for the loop to route
    /// to their connections.
    pub(crate) outbox: Vec<Command>,
}

impl Owned {
    pub(crate) fn new(broker: Broker, clock: Clock, seg_tx: SegQueue) -> Self {
        Self {
            broker,
            clock,
            last_wall_ms: i64::MIN,
            deadline: None,
            seg_tx: Some(seg_tx),
            outbox: Vec::new(),
        }
    }

    /// Apply one input: read the clock, call `f`, drain `poll`, queue every
    /// file command for the segment writer and every socket command in the
    /// outbox.
    pub(crate) fn apply<R>(&mut self, f: impl FnOnce(&mut Broker, Now) -> R) -> R {
        self.last_wall_ms = self.last_wall_ms.max(Clock::wall_ms());
        let now = Now::new(self.clock.mono(), self.last_wall_ms);
        let r = f(&mut self.broker, now);
        loop {
            match self.broker.poll() {
                Poll::Wait(deadline) => {
                    self.deadline = deadline;
                    break;
                }
                Poll::Command(cmd @ (Command::Send { .. } | Command::Close { .. })) => {
                    self.outbox.push(cmd);
                }
                Poll::Command(cmd) => {
                    let io = cmd.io();
                    let sent = self.seg_tx.as_ref().is_some_and(|queue| queue(cmd));
                    if !sent {
                        let e = IoError {
                            kind: io::ErrorKind::BrokenPipe,
                            message: "the segment writer has stopped".into(),
                        };
                        self.broker.handle_done(now, Done { io, result: Err(e) });
                    }
                }
            }
        }
        r
    }

    /// Hand completions to the broker.
    pub(crate) fn done(&mut self, dones: impl IntoIterator<Item = Done>) {
        self.apply(|b, now| {
            for d in dones {
                b.handle_done(now, d);
            }
        });
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

    /// Stop feeding the segment writer: it ends once its queue is done.
    pub(crate) fn stop_segment_writer(&mut self) {
        self.seg_tx = None;
    }
}
