//! raft-rs logs through `slog`; this drain hands its lines to `tracing`
//! (target `conveyor::raft`), so they go wherever the broker's logs go.

use std::fmt::{self, Write};

use slog::{Drain, KV, Key, Level, Never, OwnedKVList, Record, Serializer};

/// The logger given to raft-rs.
pub(crate) fn logger(node_id: i32) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("node" => node_id))
}

struct TracingDrain;

impl Drain for TracingDrain {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), Never> {
        let level = record.level();
        let enabled = match level {
            Level::Critical | Level::Error => tracing::enabled!(tracing::Level::ERROR),
            Level::Warning => tracing::enabled!(tracing::Level::WARN),
            Level::Info => tracing::enabled!(tracing::Level::INFO),
            Level::Debug | Level::Trace => tracing::enabled!(tracing::Level::DEBUG),
        };
        if !enabled {
            return Ok(());
        }
        let mut kv = Fields(String::new());
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let (msg, fields) = (record.msg(), kv.0);
        match level {
            Level::Critical | Level::Error => {
                tracing::error!(target: "conveyor::raft", "{msg}{fields}")
            }
            Level::Warning => tracing::warn!(target: "conveyor::raft", "{msg}{fields}"),
            Level::Info => tracing::info!(target: "conveyor::raft", "{msg}{fields}"),
            Level::Debug | Level::Trace => {
                tracing::debug!(target: "conveyor::raft", "{msg}{fields}")
            }
        }
        Ok(())
    }
}

/// A record's key-value pairs as ` key=value` text.
struct Fields(String);

impl Serializer for Fields {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}
