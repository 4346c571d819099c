//! The partition log: segments of RecordBatch v2 bytes stored exactly as
//! received, Kafka's offset and time indexes, reads for fetches, recovery.
//!
//! Everything here is pure: a [`PartitionLog`] decides what to write and
//! emits [`Command`]s; the driver does the writing and answers with
//! [`Done`]s, which the broker routes back through
//! [`PartitionLog::handle_done`].
//!
//! Offsets and visibility: `append` assigns offsets at once (the log end
//! offset moves), but a batch becomes visible to readers only when its
//! `Append` and every earlier one have completed: the high watermark is the
//! end of the completed prefix. A read never returns bytes past it, so a
//! `sendfile` never sends bytes that are not yet in the file.

mod append;
pub mod batch;
pub mod clean;
mod cleaner;
pub mod codec;
pub mod epochs;
pub mod index;
mod job;
mod partition;
pub mod policy;
pub mod producers;
mod read;
pub mod records;
mod recovery;
mod retention;
mod segment;
mod truncate;

pub use append::{AppendError, AppendInfo, Appended};
pub use cleaner::CleanerLimits;
pub use job::{Job, JobOutput, PIECE_BYTES};
pub use partition::{LogEvent, PartitionLog, ReadError, ReadSlice, Recovered, TimeHit};
pub use truncate::{TruncateError, Truncated};
