//! The I/O vocabulary between the core and its driver: the commands the core
//! asks for, their completions, and what the driver reads off disk at startup.
//!
//! Every [`Command`] carries an [`IoId`] and is answered by exactly one
//! [`Done`] with that id. File commands for one segment are started in the
//! order they were issued (the driver's sequential segment writer), and each
//! takes effect after every earlier one; their `Done`s may come back in
//! another order (a `Sync` handed to an fsync worker is answered after later
//! appends). `Send`s for one connection are written in the order they were
//! issued.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::log::{Job, JobOutput};

/// Names one command; exactly one [`Done`] answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IoId(pub u64);

/// A connection. The driver names the connections it accepts (below
/// [`ConnId::FIRST_OUTBOUND`]) when it reports them open; the broker names
/// the ones it opens itself ([`Command::Connect`]) from there up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// The first id of a connection the broker opens.
    pub const FIRST_OUTBOUND: u64 = 1 << 62;

    /// Whether the broker opened this connection.
    pub fn is_outbound(self) -> bool {
        self.0 >= Self::FIRST_OUTBOUND
    }
}

/// A segment (its `.log`, `.index` and `.timeindex` files), named by the core
/// in [`Command::OpenSegment`] and used by later commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegId(pub u64);

/// A read-only view of a file's bytes: a memory map in a real driver, a
/// `Vec<u8>` in a simulation. The page cache, not the heap, holds it.
pub type View = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// An empty [`View`], for a file that does not exist.
pub fn empty_view() -> View {
    Arc::new(Vec::<u8>::new())
}

/// One piece of a [`Command::Send`].
#[derive(Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes the core built (headers, small responses).
    Bytes(Bytes),
    /// `len` bytes of a segment's `.log` file from `pos`, sent with
    /// `sendfile(2)`: record bytes never pass through user space.
    File {
        /// The segment whose log file to send from.
        seg: SegId,
        /// Byte position in the log file.
        pos: u64,
        /// Number of bytes; the file holds at least this many from `pos`.
        len: u64,
    },
}

impl Part {
    /// The number of bytes this part puts on the wire.
    pub fn len(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::File { len, .. } => *len,
        }
    }

    /// Whether this part puts no bytes on the wire.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Part::File { seg, pos, len } => write!(f, "File({seg:?} @{pos} +{len})"),
        }
    }
}

/// Work the core asks its driver to do. `#[must_use]`: each one must be
/// executed and answered with exactly one [`Done`].
#[must_use = "every command must be executed and answered with a Done"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Open the three files of a segment, `<dir>/<base_offset, 20 digits>.log`,
    /// `.index` and `.timeindex` under the data directory, for appending.
    /// With `create`, create `dir` and the files (truncating nothing that
    /// exists); without, the files exist (startup) and are opened as they are.
    OpenSegment {
        /// Answered by one [`Done`].
        io: IoId,
        /// The name later commands use.
        seg: SegId,
        /// The partition directory, relative to the data directory.
        dir: String,
        /// The segment's base offset, which names its files.
        base_offset: u64,
        /// Create the directory and files rather than open existing ones.
        create: bool,
    },
    /// Append `parts`, in order, to the end of the segment's `.log` file
    /// (one vectored write where possible).
    Append {
        /// Answered by one [`Done`].
        io: IoId,
        /// The segment.
        seg: SegId,
        /// The bytes, in order.
        parts: Vec<Bytes>,
    },
    /// Append entries to the segment's `.index` and `.timeindex` files
    /// (either may be empty).
    WriteIndex {
        /// Answered by one [`Done`].
        io: IoId,
        /// The segment.
        seg: SegId,
        /// Bytes for the end of the `.index` file.
        offset_index: Bytes,
        /// Bytes for the end of the `.timeindex` file.
        time_index: Bytes,
    },
    /// Cut the segment's three files to these lengths (recovery of a torn
    /// tail, or an index rebuilt from scratch), then sync them.
    Truncate {
        /// Answered by one [`Done`].
        io: IoId,
        /// The segment.
        seg: SegId,
        /// New length of the `.log` file.
        log_len: u64,
        /// New length of the `.index` file.
        index_len: u64,
        /// New length of the `.timeindex` file.
        timeindex_len: u64,
    },
    /// `fdatasync` the segment's three files. At most one per segment is in
    /// flight (group commit). It covers every `Append` issued before it
    /// (they are written before the sync starts), and maybe later ones.
    Sync {
        /// Answered by one [`Done`].
        io: IoId,
        /// The segment.
        seg: SegId,
    },
    /// Map the segment's three files read-only and answer with
    /// [`Completion::Mapped`]. Issued once a segment is sealed: its files no
    /// longer change.
    MapSegment {
        /// Answered by one [`Done`].
        io: IoId,
        /// The segment.
        seg: SegId,
    },
    /// Read `len` bytes of the segment's `.log` file from `pos` and answer
    /// with [`Completion::Read`]. The bytes are below the high watermark (all
    /// written) and one batch long at most, so small; used where the core
    /// must look inside a batch (ListOffsets by time).
    Read {
        /// Answered by one [`Done`].
        io: IoId,
        /// The segment.
        seg: SegId,
        /// Byte position in the log file.
        pos: u64,
        /// Number of bytes.
        len: u64,
    },
    /// Run CPU work off the thread that runs the core ([`Job::run`], pure)
    /// and answer with [`Completion::Computed`]. Not a file command: it
    /// waits for nothing, and nothing waits for it but its own `Done`.
    Compute {
        /// Answered by one [`Done`].
        io: IoId,
        /// The work.
        job: Job,
    },
    /// Create a segment's three files under the log cleaner's names,
    /// `<dir>/<base_offset>.log.cleaned`, `.index.cleaned` and
    /// `.timeindex.cleaned` (emptying any left from before), open for
    /// appending. Later commands name `seg` as any segment; `RemoveSegment`
    /// deletes the `.cleaned` files until a [`Command::SwapCleaned`] makes
    /// them the segment's.
    CreateCleaned {
        /// Answered by one [`Done`].
        io: IoId,
        /// The name later commands use.
        seg: SegId,
        /// The partition directory, relative to the data directory.
        dir: String,
        /// The base offset of the segment it replaces.
        base_offset: u64,
    },
    /// Put the cleaned segment `seg` (written and synced) in place of the
    /// consecutive segments `replaces`, the first of which has its base
    /// offset, crash-safely:
    /// 1. with more than one, write `<dir>/<base>.swap` listing the others'
    ///    base offsets ([`crate::layout::encode_swap_manifest`]) atomically;
    /// 2. rename `.log.cleaned` over `.log` and sync the directory — the
    ///    swap commits here;
    /// 3. rename the two index files into place;
    /// 4. delete the other replaced segments' files, once no `Send` still
    ///    reads them, and close the first's;
    /// 5. sync the directory, delete the manifest, sync again.
    ///
    /// `seg` keeps its open files, now under the final names. A crash at
    /// any point leaves the old segments or the new one whole, never both:
    /// [`crate::layout::finish_swaps`] says what to do at startup.
    SwapCleaned {
        /// Answered by one [`Done`].
        io: IoId,
        /// The cleaned segment.
        seg: SegId,
        /// The segments it replaces, oldest first.
        replaces: Vec<SegId>,
    },
    /// Close and delete the segment's three files (retention, topic deletion).
    /// No `Send` naming the segment is in flight.
    RemoveSegment {
        /// Answered by one [`Done`].
        io: IoId,
        /// The segment.
        seg: SegId,
    },
    /// Replace the file at `path` (relative to the data directory) with
    /// `bytes`, atomically: write a temporary file, sync it, rename it over
    /// `path`, sync the directory. Creates missing parent directories.
    WriteFile {
        /// Answered by one [`Done`].
        io: IoId,
        /// Path relative to the data directory.
        path: String,
        /// The whole new content.
        bytes: Bytes,
    },
    /// Delete the file at `path` (relative to the data directory); a missing
    /// file is success.
    RemoveFile {
        /// Answered by one [`Done`].
        io: IoId,
        /// Path relative to the data directory.
        path: String,
    },
    /// Delete a partition directory and everything left in it (its segments
    /// have been removed first).
    RemoveDir {
        /// Answered by one [`Done`].
        io: IoId,
        /// Directory relative to the data directory.
        dir: String,
    },
    /// Write `parts` to the connection's socket, in order, after every earlier
    /// `Send` to it. Answered once every byte is written (or on failure).
    Send {
        /// Answered by one [`Done`].
        io: IoId,
        /// The connection.
        conn: ConnId,
        /// The bytes: built ones and file regions.
        parts: Vec<Part>,
    },
    /// Open a TCP connection to `addr` (`host:port`) and name it `conn`.
    /// Answered once it is open, or with the error that kept it from
    /// opening (then nothing more is heard of `conn`). Once open, it is
    /// served like an accepted connection: bytes read go to
    /// `handle_read`, `Send`s and `Close` name it, and its end is reported
    /// with `handle_close`.
    Connect {
        /// Answered by one [`Done`].
        io: IoId,
        /// The connection's name, at or above [`ConnId::FIRST_OUTBOUND`].
        conn: ConnId,
        /// Where to connect.
        addr: String,
    },
    /// Close the connection (after the `Send`s issued before this command).
    /// The driver still reports it closed with `handle_close`.
    Close {
        /// Answered by one [`Done`].
        io: IoId,
        /// The connection.
        conn: ConnId,
    },
}

impl Command {
    /// The id the answering [`Done`] carries.
    pub fn io(&self) -> IoId {
        match self {
            Command::OpenSegment { io, .. }
            | Command::Append { io, .. }
            | Command::WriteIndex { io, .. }
            | Command::Truncate { io, .. }
            | Command::Sync { io, .. }
            | Command::MapSegment { io, .. }
            | Command::Read { io, .. }
            | Command::Compute { io, .. }
            | Command::CreateCleaned { io, .. }
            | Command::SwapCleaned { io, .. }
            | Command::RemoveSegment { io, .. }
            | Command::WriteFile { io, .. }
            | Command::RemoveFile { io, .. }
            | Command::RemoveDir { io, .. }
            | Command::Send { io, .. }
            | Command::Connect { io, .. }
            | Command::Close { io, .. } => *io,
        }
    }
}

/// The three files of a sealed segment, mapped read-only.
#[derive(Clone)]
pub struct SegmentViews {
    /// The `.log` file.
    pub log: View,
    /// The `.index` file.
    pub index: View,
    /// The `.timeindex` file.
    pub timeindex: View,
}

impl fmt::Debug for SegmentViews {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentViews")
            .field("log", &(*self.log).as_ref().len())
            .field("index", &(*self.index).as_ref().len())
            .field("timeindex", &(*self.timeindex).as_ref().len())
            .finish()
    }
}

/// What a successful command produced.
#[derive(Debug, Clone)]
pub enum Completion {
    /// The command was done; it produces nothing.
    Unit,
    /// The answer to [`Command::MapSegment`].
    Mapped(SegmentViews),
    /// The answer to [`Command::Read`].
    Read(Bytes),
    /// The answer to [`Command::Compute`].
    Computed(JobOutput),
}

/// Why a command failed. Kept `Clone + PartialEq` so tests can inject and
/// compare failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoError {
    /// The operating system's classification.
    pub kind: std::io::ErrorKind,
    /// A message for the log.
    pub message: String,
}

impl From<std::io::Error> for IoError {
    fn from(e: std::io::Error) -> Self {
        Self {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.message, self.kind)
    }
}

/// The answer to one [`Command`].
#[derive(Debug, Clone)]
pub struct Done {
    /// The command's id.
    pub io: IoId,
    /// What it produced, or why it failed.
    pub result: Result<Completion, IoError>,
}

impl Done {
    /// A successful completion with nothing to report.
    pub fn ok(io: IoId) -> Self {
        Self {
            io,
            result: Ok(Completion::Unit),
        }
    }
}

/// What the driver read off the data directory at startup, for recovery.
#[derive(Debug, Default)]
pub struct DiskState {
    /// The files at the top of the data directory that
    /// [`crate::ROOT_FILES`] names and that exist, with their contents.
    pub root_files: Vec<(String, Bytes)>,
    /// Every subdirectory of the data directory.
    pub partitions: Vec<DiskPartition>,
}

/// One subdirectory of the data directory.
#[derive(Debug)]
pub struct DiskPartition {
    /// Its name, e.g. `orders-3`.
    pub dir: String,
    /// The contents of its `partition.metadata` file, if there is one.
    pub metadata: Option<Bytes>,
    /// Its segments: every `<20 digits>.log` file, in any order.
    pub segments: Vec<DiskSegment>,
    /// Its producer-state snapshots: every `<20 digits>.snapshot` file's
    /// offset and contents, in any order.
    pub snapshots: Vec<(u64, Bytes)>,
    /// The contents of its `leader-epoch-checkpoint` file, if there is one.
    pub leader_epochs: Option<Bytes>,
}

/// One segment found on disk: the views of its files (a missing `.index` or
/// `.timeindex` is an empty view).
#[derive(Debug)]
pub struct DiskSegment {
    /// The base offset its file name gives.
    pub base_offset: u64,
    /// Its files.
    pub views: SegmentViews,
}

/// Hands out [`IoId`]s and [`SegId`]s, unique for the life of a broker.
#[derive(Debug, Default)]
pub struct Ids {
    next_io: u64,
    next_seg: u64,
}

impl Ids {
    /// A fresh command id.
    pub fn io(&mut self) -> IoId {
        self.next_io += 1;
        IoId(self.next_io)
    }

    /// A fresh segment id.
    pub fn seg(&mut self) -> SegId {
        self.next_seg += 1;
        SegId(self.next_seg)
    }
}

/// A hash map keyed by the core's sequential ids ([`IoId`], [`ConnId`],
/// [`SegId`]): they are unique integers, so SipHash's flood resistance buys
/// nothing and costs a visible share of every request; a multiplicative
/// hash spreads them over the table.
pub type IdMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

/// The hasher behind [`IdMap`]: Fibonacci hashing of one integer.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for the id types (they hash one integer); FNV-1a keeps
        // any other key correct.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
