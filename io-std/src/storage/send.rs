//! The sendfile fetcher's system calls: writes a [`Command::Send`]'s parts
//! to a socket, built bytes with vectored writes and file regions with
//! `sendfile(2)`, so record bytes never pass through user space.
//!
//! One [`SendCursor`] serves every runtime: on a blocking socket it runs to
//! the end; on a non-blocking one it stops with `WouldBlock` wherever the
//! socket's buffer fills and carries on from there once it is writable again.
//!
//! [`Command::Send`]: conveyor_core::Command::Send

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};

use conveyor_core::Part;
use rustix::io::Errno;

use crate::storage::segment::{IOV_MAX, SegTable};

/// Counters a test or an operator can read while the runtime runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes moved from segment files to sockets by `sendfile(2)`.
    pub sendfile_bytes: AtomicU64,
    /// `Send` commands executed (successfully or not).
    pub send_calls: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections opened to peers (`Command::Connect`).
    pub connects: AtomicU64,
}

/// Linux moves at most this many bytes per `sendfile` call.
const SENDFILE_MAX: usize = 0x7fff_f000;

/// Where a `Send` stands: which part is next and how much of it has gone.
/// [`SendCursor::advance`] writes from there; it is the only place that
/// writes a `Send` to a socket.
#[derive(Debug)]
pub(crate) struct SendCursor {
    parts: Vec<Part>,
    /// The first part not wholly written.
    next: usize,
    /// Bytes of `parts[next]` already written.
    done: u64,
    /// Whether the socket is corked (a response mixing built bytes and file
    /// regions, so its header and records share packets despite
    /// `TCP_NODELAY`); `None` until the first write.
    corked: Option<bool>,
}

impl SendCursor {
    /// A cursor at the start of `parts`.
    pub(crate) fn new(parts: Vec<Part>) -> Self {
        Self {
            parts,
            next: 0,
            done: 0,
            corked: None,
        }
    }

    /// Whether every byte has been written.
    #[cfg(test)]
    pub(crate) fn is_done(&self) -> bool {
        self.next >= self.parts.len()
    }

    /// Write as much as `sock` takes. `Ok(())` once every part is written;
    /// `Err(WouldBlock)` when a non-blocking socket is full (call again once
    /// it is writable); any other error ends the `Send`. File regions come
    /// from `segs` with `sendfile`, counted in `stats`.
    pub(crate) fn advance(
        &mut self,
        sock: impl AsFd,
        segs: &SegTable,
        stats: &Stats,
    ) -> io::Result<()> {
        let sock = sock.as_fd();
        if self.corked.is_none() {
            let cork =
                self.parts.len() > 1 && self.parts.iter().any(|p| matches!(p, Part::File { .. }));
            if cork {
                rustix::net::sockopt::set_tcp_cork(sock, true)?;
            }
            self.corked = Some(cork);
        }
        self.skip_empty();
        while let Some(part) = self.parts.get(self.next) {
            let result = match part {
                Part::Bytes(_) => self.write_bytes(sock),
                Part::File { seg, pos, len } => {
                    let (seg, pos, len) = (*seg, *pos, *len);
                    let files = segs.get(seg)?;
                    self.write_file(sock, &files.log, pos, len, stats)
                }
            };
            match result {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.skip_empty();
        }
        if self.corked == Some(true) {
            // Uncorking pushes out whatever is still held back.
            rustix::net::sockopt::set_tcp_cork(sock, false)?;
            self.corked = Some(false);
        }
        Ok(())
    }

    fn skip_empty(&mut self) {
        while self
            .parts
            .get(self.next)
            .is_some_and(|p| self.done >= p.len())
        {
            self.next += 1;
            self.done = 0;
        }
    }

    /// One `writev` of the run of built bytes from the cursor on.
    fn write_bytes(&mut self, sock: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
        let mut slices = Vec::new();
        let mut skip = usize::try_from(self.done).unwrap_or(usize::MAX);
        for part in &self.parts[self.next..] {
            let Part::Bytes(b) = part else { break };
            if slices.len() == IOV_MAX {
                break;
            }
            if let Some(rest) = b.get(skip..).filter(|r| !r.is_empty()) {
                slices.push(IoSlice::new(rest));
            }
            skip = 0;
        }
        let mut n = match rustix::io::writev(sock, &slices) {
            Ok(0) if !slices.is_empty() => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n as u64,
            Err(e) => return Err(e.into()),
        };
        while n > 0 {
            let left = self.parts[self.next].len() - self.done;
            let step = left.min(n);
            self.done += step;
            n -= step;
            self.skip_empty();
        }
        Ok(())
    }

    /// One `sendfile` of the file region at the cursor.
    fn write_file(
        &mut self,
        sock: std::os::fd::BorrowedFd<'_>,
        file: &File,
        pos: u64,
        len: u64,
        stats: &Stats,
    ) -> io::Result<()> {
        let mut off = pos.saturating_add(self.done);
        let end = pos.saturating_add(len);
        let chunk = usize::try_from(end - off)
            .unwrap_or(usize::MAX)
            .min(SENDFILE_MAX);
        // `sendfile` advances `off` itself by what it sent.
        match rustix::fs::sendfile(sock, file, Some(&mut off), chunk) {
            // The file is shorter than the core said: stop rather than spin.
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("segment file ends before byte {end} (sent up to {off})"),
            )),
            Ok(n) => {
                let before = stats.sendfile_bytes.fetch_add(n as u64, Ordering::Relaxed);
                let every = crate::storage::disk::RELEASE_MAPPED_EVERY;
                if before / every != (before + n as u64) / every {
                    crate::storage::disk::release_mapped_pages();
                }
                self.done += n as u64;
                Ok(())
            }
            Err(Errno::INTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Write `parts` to the blocking socket `sock` in order (see [`SendCursor`]).
pub(crate) fn send_parts(
    sock: impl AsFd,
    parts: Vec<Part>,
    segs: &SegTable,
    stats: &Stats,
) -> io::Result<()> {
    SendCursor::new(parts).advance(sock, segs, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread;
    use std::time::Duration;

    use bytes::Bytes;
    use conveyor_core::SegId;

    const SEG: SegId = SegId(1);

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn sendfile_moves_file_bytes_with_partial_writes() {
        let data = pattern(3 << 20);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let (tx, mut rx) = pair();
        // A small send buffer and a slow reader force partial sendfiles.
        rustix::net::sockopt::set_socket_send_buffer_size(&tx, 4096).unwrap();
        let (pos, len) = (1000u64, (data.len() - 3000) as u64);
        let reader = thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 1500];
            while got.len() < len as usize {
                let n = rx.read(&mut buf).unwrap();
                assert!(n > 0, "early EOF");
                got.extend_from_slice(&buf[..n]);
                if got.len() < 64 * 1024 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            got
        });
        let stats = Stats::default();
        let segs = SegTable::default();
        segs.insert_file(SEG, file.try_clone().unwrap());
        let parts = vec![Part::File { seg: SEG, pos, len }];
        send_parts(&tx, parts, &segs, &stats).unwrap();
        let got = reader.join().unwrap();
        assert_eq!(got, &data[pos as usize..(pos + len) as usize]);
        assert_eq!(stats.sendfile_bytes.load(Ordering::Relaxed), len);

        // Past the end of the file is an error, not a hang.
        let parts = vec![Part::File {
            seg: SEG,
            pos: data.len() as u64 - 10,
            len: 20,
        }];
        let e = send_parts(&tx, parts, &segs, &stats).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn cursor_resumes_after_would_block() {
        let data = pattern(2 << 20);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let segs = SegTable::default();
        segs.insert_file(SEG, file);
        let head = Bytes::from(pattern(70_000));
        let tail = Bytes::from_static(b"tail");
        let parts = vec![
            Part::Bytes(head.clone()),
            Part::Bytes(Bytes::new()),
            Part::File {
                seg: SEG,
                pos: 5,
                len: (data.len() - 5) as u64,
            },
            Part::Bytes(tail.clone()),
        ];
        let mut want = head.to_vec();
        want.extend_from_slice(&data[5..]);
        want.extend_from_slice(&tail);
        let (tx, mut rx) = pair();
        tx.set_nonblocking(true).unwrap();
        rustix::net::sockopt::set_socket_send_buffer_size(&tx, 4096).unwrap();
        let len = want.len();
        let reader = thread::spawn(move || {
            let mut got = vec![0u8; len];
            rx.read_exact(&mut got).unwrap();
            got
        });
        let stats = Stats::default();
        let mut cursor = SendCursor::new(parts);
        let mut blocked = 0;
        loop {
            match cursor.advance(&tx, &segs, &stats) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    blocked += 1;
                    thread::sleep(Duration::from_micros(200));
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(cursor.is_done());
        assert!(blocked > 0, "the small buffer never filled");
        assert!(reader.join().unwrap() == want, "bytes differ");
        assert_eq!(
            stats.sendfile_bytes.load(Ordering::Relaxed),
            (data.len() - 5) as u64
        );
    }
}
