//! # The pieces shared between an adapter's threads
//!
//! The [`crate::Broker`] is a single-threaded state machine: the high
//! watermark, long-poll waiters and the core's pins live inside it, owned by
//! one thread or task at a time. What multi-threaded adapters do share is
//! here, written once, each small, each with its invariant stated on the
//! type and checked by a loom model (`core/tests/loom_models.rs`):
//!
//! - [`Gate`]: a flag a thread waits on (the `threads` runtime's readers
//!   paused by the broker's read interest); no lost wake-up.
//! - [`Deadline`]: the broker's next deadline, published by whichever thread
//!   drove the broker, slept towards by a timer thread; no missed update.
//! - [`SyncHandoff`]: group commit between the sequential segment writer and
//!   the fsync worker; every sync request answered, and only by a sync that
//!   covers it.
//! - [`PinTable`]: open segment files shared by the segment writer, the
//!   socket writers (`sendfile`) and the fsync worker; nothing removed while
//!   pinned.
//!
//! These are synchronisation primitives only: no thread, clock, file or
//! socket. They are built on [`std::sync`]'s types, or on `loom`'s under
//! `cfg(conveyor_loom)` (see `loom_shim.rs`); each also has a deliberately
//! broken variant, constructed only in loom builds (`broken_*`), that the
//! models expect loom to catch.

mod deadline;
mod gate;
mod handoff;
mod loom_shim;
mod pins;

pub use deadline::{Deadline, Seen};
pub use gate::Gate;
pub use handoff::SyncHandoff;
pub use pins::{Pin, PinTable, Removed};
