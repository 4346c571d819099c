//! Conveyor's server: runtime selection, shared by the `conveyor` binary,
//! the end-to-end tests and applications that embed the broker.

use std::io;
use std::str::FromStr;

use conveyor_io_std::{Options, Running};

/// A runtime the server can run the broker on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `threads`: a thread per connection, blocking system calls.
    Threads,
    /// `mio`: one event-loop thread, non-blocking sockets.
    Mio,
    /// `tokio`: a multi-threaded tokio runtime.
    Tokio,
    /// `smol`: a smol executor, a thread per core.
    Smol,
}

impl Runtime {
    /// Every runtime, in the order messages list them.
    pub const ALL: [Runtime; 4] = [
        Runtime::Threads,
        Runtime::Mio,
        Runtime::Tokio,
        Runtime::Smol,
    ];

    /// The name `conveyor serve --runtime` and `runtime=` take.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Threads => "threads",
            Runtime::Mio => "mio",
            Runtime::Tokio => "tokio",
            Runtime::Smol => "smol",
        }
    }

    /// Start a broker on this runtime; it serves until the returned
    /// [`Running`] is shut down or dropped.
    pub fn start(self, opts: Options) -> io::Result<Running> {
        match self {
            Runtime::Threads => conveyor_io_std::start(opts),
            Runtime::Mio => conveyor_io_std::start_mio(opts),
            Runtime::Tokio => conveyor_io_tokio::start(opts),
            Runtime::Smol => conveyor_io_smol::start(opts),
        }
    }
}

impl FromStr for Runtime {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Runtime::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Runtime::ALL.iter().map(|r| r.name()).collect();
                format!("unknown runtime `{s}` (valid: {})", names.join(", "))
            })
    }
}
