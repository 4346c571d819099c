//! The machine's own limits, measured in the same run as the broker:
//! sequential writes into the page cache (no fsync), and `sendfile(2)` from
//! a cached file to a loopback TCP socket whose reader discards.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// A throughput figure: bytes moved and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Bytes moved.
    pub bytes: u64,
    /// Time taken.
    pub elapsed: Duration,
}

impl Throughput {
    /// MB (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }

    /// One summary line.
    pub fn summary(&self, what: &str) -> String {
        format!(
            "{what}: {:.1} MB in {:.2} s, {:.1} MB/s",
            self.bytes as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            self.mb_per_sec()
        )
    }
}

fn temp_file(dir: &Path, prefix: &str) -> Result<tempfile::NamedTempFile, String> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(dir)
        .map_err(|e| format!("temporary file in {}: {e}", dir.display()))
}

/// Writes up to `total` bytes in `block`-byte writes to a new file in `dir`
/// (deleted afterwards), stopping early after `max_time`. No fsync: this
/// is the page cache's speed, what a broker's appends run into.
pub fn page_cache_write(
    dir: &Path,
    total: u64,
    block: usize,
    max_time: Duration,
) -> Result<Throughput, String> {
    let mut file = temp_file(dir, "conveyor-perf-write-")?;
    let buf = super::payload(block.max(1), 0xD15C);
    let start = Instant::now();
    let mut written = 0u64;
    while written < total && start.elapsed() < max_time {
        let n = (total - written).min(buf.len() as u64) as usize;
        file.as_file_mut()
            .write_all(&buf[..n])
            .map_err(|e| format!("write: {e}"))?;
        written += n as u64;
    }
    let elapsed = start.elapsed();
    Ok(Throughput {
        bytes: written,
        elapsed,
    })
}

/// Writes a `file_size`-byte file in `dir` (so it is in the page cache),
/// then `sendfile`s it over and over, `chunk` bytes per call, to a
/// 127.0.0.1 socket whose reader thread reads 1 MiB at a time and discards,
/// for `duration`. Measured at the reader, from the first send to the last
/// byte read.
pub fn sendfile_loopback(
    dir: &Path,
    file_size: u64,
    chunk: usize,
    duration: Duration,
) -> Result<Throughput, String> {
    let mut file = temp_file(dir, "conveyor-perf-sendfile-")?;
    let block = super::payload(1 << 20, 0x5E4D);
    let mut left = file_size.max(1);
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.as_file_mut()
            .write_all(&block[..n])
            .map_err(|e| format!("write: {e}"))?;
        left -= n as u64;
    }
    // Read it once, so every page is certainly cached.
    let mut check = File::open(file.path()).map_err(|e| e.to_string())?;
    let mut sink = vec![0u8; 1 << 20];
    while check.read(&mut sink).map_err(|e| e.to_string())? > 0 {}

    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let reader = thread::spawn(move || -> Result<(u64, Instant), String> {
        let (mut sock, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            match sock.read(&mut buf) {
                Ok(0) => return Ok((got, Instant::now())),
                Ok(n) => got += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    });
    let sock = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let size = file_size.max(1);
    let src = file.as_file();
    let start = Instant::now();
    let end = start + duration;
    let mut offset = 0u64;
    let mut result = Ok(());
    while Instant::now() < end {
        let count = (size - offset).min(chunk.max(1) as u64) as usize;
        match rustix::fs::sendfile(&sock, src, Some(&mut offset), count) {
            Ok(0) => {
                result = Err("sendfile wrote nothing".to_owned());
                break;
            }
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                result = Err(format!("sendfile: {e}"));
                break;
            }
        }
        if offset >= size {
            offset = 0;
        }
    }
    let _ = sock.shutdown(Shutdown::Write);
    let (bytes, done) = reader
        .join()
        .map_err(|_| "the reader thread panicked".to_owned())??;
    result?;
    Ok(Throughput {
        bytes,
        elapsed: done - start,
    })
}
