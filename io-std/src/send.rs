//! The sendfile fetcher's system calls: writes a [`Command::Send`]'s parts
//! to a blocking socket, built bytes with vectored writes and file regions
//! with `sendfile(2)`, so record bytes never pass through user space.
//!
//! [`Command::Send`]: conveyor_core::Command::Send

use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use conveyor_core::Part;
use rustix::io::Errno;

use crate::segment::{SegTable, write_all_vectored};

/// Counters a test or an operator can read while the runtime runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes moved from segment files to sockets by `sendfile(2)`.
    pub sendfile_bytes: AtomicU64,
    /// `Send` commands executed (successfully or not).
    pub send_calls: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
}

/// Linux moves at most this many bytes per `sendfile` call.
const SENDFILE_MAX: usize = 0x7fff_f000;

/// Send `len` bytes of `file` from `pos` to `sock`, carrying on after
/// partial writes, and count them in `stats`.
pub(crate) fn sendfile_all(
    sock: &TcpStream,
    file: &File,
    pos: u64,
    len: u64,
    stats: &Stats,
) -> io::Result<()> {
    let end = pos.saturating_add(len);
    let mut off = pos;
    while off < end {
        let chunk = usize::try_from(end - off)
            .unwrap_or(usize::MAX)
            .min(SENDFILE_MAX);
        // `sendfile` advances `off` itself by what it sent.
        match rustix::fs::sendfile(sock, file, Some(&mut off), chunk) {
            // The file is shorter than the core said: stop rather than spin.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("segment file ends before byte {end} (sent up to {off})"),
                ));
            }
            Ok(n) => {
                stats.sendfile_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Write `parts` to `sock` in order. Runs of built bytes go out in one
/// vectored write; file regions go out with `sendfile`. While a response
/// mixes the two, the socket is corked so its header and records share
/// packets despite `TCP_NODELAY`.
pub(crate) fn send_parts(
    sock: &TcpStream,
    parts: Vec<Part>,
    segs: &SegTable,
    stats: &Stats,
) -> io::Result<()> {
    let cork = parts.len() > 1 && parts.iter().any(|p| matches!(p, Part::File { .. }));
    if cork {
        rustix::net::sockopt::set_tcp_cork(sock, true)?;
    }
    let mut run: Vec<Bytes> = Vec::new();
    for part in parts {
        match part {
            Part::Bytes(b) => run.push(b),
            Part::File { seg, pos, len } => {
                write_all_vectored(sock, &run)?;
                run.clear();
                let files = segs.get(seg)?;
                sendfile_all(sock, &files.log, pos, len, stats)?;
            }
        }
    }
    write_all_vectored(sock, &run)?;
    if cork {
        // Uncorking pushes out whatever is still held back.
        rustix::net::sockopt::set_tcp_cork(sock, false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread;
    use std::time::Duration;

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
        sendfile_all(&tx, &file, pos, len, &stats).unwrap();
        let got = reader.join().unwrap();
        assert_eq!(got, &data[pos as usize..(pos + len) as usize]);
        assert_eq!(stats.sendfile_bytes.load(Ordering::Relaxed), len);

        // Past the end of the file is an error, not a hang.
        let e = sendfile_all(&tx, &file, data.len() as u64 - 10, 20, &stats).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
