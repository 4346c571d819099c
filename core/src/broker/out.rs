//! The broker's outgoing side: the command queue the driver drains, the ids
//! commands carry, and who waits for each command's `Done`.

use std::collections::VecDeque;

use bytes::Bytes;

use super::lifecycle::FileJob;
use super::logs::{LogKey, Pins};
use crate::io::{Command, ConnId, IdMap, Ids, IoId, SegId};

/// Who is waiting for a command's `Done`.
#[derive(Debug)]
pub(crate) enum Owner {
    /// A partition log's file command.
    Log(LogKey),
    /// The metadata quorum's `quorum-state` write.
    Quorum,
    /// A response on its way; the segments it names are pinned until done.
    Send(Pins),
    /// A file read for the request waiting in `conn`'s slot `seq`; the
    /// segment is pinned until it is answered.
    Slot {
        conn: ConnId,
        seq: u64,
        pin: (LogKey, SegId),
    },
    /// A `Connect` to a peer.
    Connect(ConnId),
    /// A `Close`.
    Close,
    /// The broker's own files (metadata, checkpoints, the shutdown marker).
    File(FileJob),
}

/// The command queue and the owners of commands in flight.
#[derive(Debug, Default)]
pub(crate) struct Io {
    ids: Ids,
    queue: VecDeque<Command>,
    owners: IdMap<IoId, Owner>,
    /// Commands a log call just emitted, before their owner is recorded.
    scratch: Vec<Command>,
}

impl Io {
    /// A fresh command id.
    pub(crate) fn next_io(&mut self) -> IoId {
        self.ids.io()
    }

    /// Queue `cmd` for the driver; `owner` gets its `Done`.
    pub(crate) fn emit(&mut self, cmd: Command, owner: Owner) {
        self.owners.insert(cmd.io(), owner);
        self.queue.push_back(cmd);
    }

    /// Queue a write of one of the broker's own files.
    pub(crate) fn write_file(&mut self, job: FileJob, path: &str, bytes: Bytes) {
        let io = self.ids.io();
        let cmd = Command::WriteFile {
            io,
            path: path.to_owned(),
            bytes,
        };
        self.emit(cmd, Owner::File(job));
    }

    /// Run `f` with the id source and a scratch list, then queue every
    /// command it emitted as `owner`'s. Logs emit commands this way.
    pub(crate) fn emit_from<R>(
        &mut self,
        owner: impl Fn() -> Owner,
        f: impl FnOnce(&mut Ids, &mut Vec<Command>) -> R,
    ) -> R {
        let r = f(&mut self.ids, &mut self.scratch);
        for cmd in self.scratch.drain(..) {
            self.owners.insert(cmd.io(), owner());
            self.queue.push_back(cmd);
        }
        r
    }

    /// Who waits for `io`; each id is answered once.
    pub(crate) fn take_owner(&mut self, io: IoId) -> Option<Owner> {
        self.owners.remove(&io)
    }

    /// Whether any partition log's file command is still in flight.
    pub(crate) fn logs_busy(&self) -> bool {
        self.owners.values().any(|o| matches!(o, Owner::Log(_)))
    }

    /// The next command for the driver.
    pub(crate) fn pop(&mut self) -> Option<Command> {
        self.queue.pop_front()
    }
}
