//! `conveyor log dump` and `conveyor log verify`: a data directory's files
//! read offline, with the broker stopped or running (files are only read).
//!
//! Segments are Kafka's (`<base offset>.log`, `.index`, `.timeindex`), so
//! the output follows `kafka-dump-log`'s: one line per batch (offsets,
//! producer fields, codec, CRC and whether it matches), one line per record
//! with `--records`, one per index entry. `verify` checks what recovery
//! relies on — whole batches with matching CRCs, offsets increasing from
//! the file's base, records that parse and count as their header says,
//! index entries that point at batches — and names the file and byte
//! position of the first problem in each file.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use conveyor_core::layout::{self, INDEX, LOG, TIME_INDEX};
use conveyor_core::log::batch::{self, BatchHeader};
use conveyor_core::log::codec::Codec;
use conveyor_core::log::{index, records};

/// What `log dump` prints beyond the batches.
#[derive(Debug, Clone, Copy, Default)]
pub struct DumpOptions {
    /// One line per record: offset, timestamp, sizes, headers, key, value.
    pub records: bool,
    /// The most bytes a batch's records may decompress to.
    pub max_batch_bytes: usize,
}

/// The first problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// Byte position in it.
    pub pos: u64,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at byte {}: {}",
            self.path.display(),
            self.pos,
            self.what
        )
    }
}

/// What `verify` found in one healthy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The file.
    pub path: PathBuf,
    /// Batches, or index entries.
    pub entries: u64,
    /// The first and last offset it covers, if any.
    pub offsets: Option<(u64, u64)>,
}

/// The segment files named by `paths`: a file as it is, a directory's
/// segment files (a partition directory's, or every partition's of a data
/// directory), in name order. Errors name a path that cannot be read.
pub fn segment_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        let meta = fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if !meta.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut found = Vec::new();
        collect(p, 2, &mut found).map_err(|e| format!("{}: {e}", p.display()))?;
        if found.is_empty() {
            return Err(format!("{}: no segment files", p.display()));
        }
        // Directory by directory, each segment's log, then its indexes.
        found.sort_by_key(|p| (p.parent().map(Path::to_owned), kind(p).map(|(k, b)| (b, k))));
        out.extend(found);
    }
    Ok(out)
}

fn collect(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if depth > 1 {
                collect(&path, depth - 1, out)?;
            }
        } else if kind(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Log,
    Index,
    TimeIndex,
}

/// The kind of a segment file and its base offset, from its name.
fn kind(path: &Path) -> Option<(Kind, u64)> {
    let name = path.file_name()?.to_str()?;
    [
        (Kind::Log, LOG),
        (Kind::Index, INDEX),
        (Kind::TimeIndex, TIME_INDEX),
    ]
    .into_iter()
    .find_map(|(k, ext)| layout::parse_offset_file_name(name, ext).map(|base| (k, base)))
}

fn kind_of(path: &Path) -> Result<(Kind, u64), String> {
    kind(path).ok_or_else(|| {
        format!(
            "{}: not a segment file (<20-digit offset>.log, .index or .timeindex)",
            path.display()
        )
    })
}

/// Print one file the way `kafka-dump-log` does.
pub fn dump(path: &Path, opts: DumpOptions, out: &mut dyn Write) -> Result<(), String> {
    let (kind, base) = kind_of(path)?;
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    let _ = writeln!(text, "Dumping {}", path.display());
    match kind {
        Kind::Log => dump_log(&bytes, base, opts, &mut text),
        Kind::Index => {
            for i in 0..index::offset_entries(&bytes) {
                if let Some((rel, pos)) = index::offset_entry(&bytes, i) {
                    let _ = writeln!(text, "offset: {} position: {pos}", base + u64::from(rel));
                }
            }
        }
        Kind::TimeIndex => {
            for i in 0..index::time_entries(&bytes) {
                if let Some((ts, rel)) = index::time_entry(&bytes, i) {
                    let _ = writeln!(text, "timestamp: {ts} offset: {}", base + u64::from(rel));
                }
            }
        }
    }
    out.write_all(text.as_bytes())
        .map_err(|e| format!("writing the dump: {e}"))
}

fn dump_log(bytes: &[u8], base: u64, opts: DumpOptions, text: &mut String) {
    let _ = writeln!(text, "Log starting offset: {base}");
    let mut scan = batch::scan(bytes, 0);
    for (pos, h) in scan.by_ref() {
        let whole = &bytes[pos..pos + h.total_len() as usize];
        let valid = batch::crc_of(whole) == Some(h.crc);
        // As kafka-dump-log names them (`none`, not the topic setting's
        // `uncompressed`).
        let codec = match Codec::from_attributes(h.attributes) {
            Some(Codec::None) => "none",
            Some(c) => c.name(),
            None => "unknown",
        };
        let last_sequence = if h.base_sequence < 0 {
            -1
        } else {
            h.base_sequence.wrapping_add(h.last_offset_delta)
        };
        let _ = writeln!(
            text,
            "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {last_sequence} \
             producerId: {} producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} \
             isControl: {} position: {pos} {}: {} size: {} magic: {} compresscodec: {codec} \
             crc: {} isvalid: {valid}",
            h.base_offset,
            h.last_offset(),
            h.record_count,
            h.base_sequence,
            h.producer_id,
            h.producer_epoch,
            h.partition_leader_epoch,
            h.attributes & 0x10 != 0,
            h.is_control(),
            if h.is_log_append_time() {
                "LogAppendTime"
            } else {
                "CreateTime"
            },
            h.max_timestamp,
            h.total_len(),
            h.magic,
            h.crc,
        );
        if opts.records {
            dump_records(whole, &h, opts.max_batch_bytes, text);
        }
    }
    if scan.position() < bytes.len() {
        let _ = writeln!(
            text,
            "Found {} bytes at position {} that are not a whole batch",
            bytes.len() - scan.position(),
            scan.position()
        );
    }
}

fn dump_records(whole: &[u8], h: &BatchHeader, limit: usize, text: &mut String) {
    let body = match records::body(whole, h, limit) {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(text, "| records cannot be read: {e}");
            return;
        }
    };
    for r in records::records(&body) {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(text, "| {e}");
                return;
            }
        };
        let sequence = if h.base_sequence < 0 {
            -1
        } else {
            h.base_sequence.wrapping_add(r.offset_delta)
        };
        let ts = if h.is_log_append_time() {
            h.max_timestamp
        } else {
            h.base_timestamp.saturating_add(r.timestamp_delta)
        };
        let header_keys: Vec<String> = r.headers().map(|(k, _)| shown(k)).collect();
        let size = |b: Option<&[u8]>| b.map_or(-1, |b| b.len() as i64);
        let _ = writeln!(
            text,
            "| offset: {} {}: {ts} keySize: {} valueSize: {} sequence: {sequence} headerKeys: [{}] key: {} payload: {}",
            h.base_offset.saturating_add(i64::from(r.offset_delta)),
            if h.is_log_append_time() {
                "LogAppendTime"
            } else {
                "CreateTime"
            },
            size(r.key),
            size(r.value),
            header_keys.join(","),
            r.key.map_or("null".to_owned(), shown),
            r.value.map_or("null".to_owned(), shown),
        );
    }
}

/// Bytes as text: UTF-8 as it is (control characters escaped), anything
/// else as `\xNN`.
fn shown(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Check one segment file; an index is checked against its `.log` beside
/// it when there is one.
pub fn verify(path: &Path, max_batch_bytes: usize) -> Result<Checked, Problem> {
    let at_start = |what: String| Problem {
        path: path.to_owned(),
        pos: 0,
        what,
    };
    let (kind, base) = kind_of(path).map_err(at_start)?;
    let bytes = fs::read(path).map_err(|e| at_start(e.to_string()))?;
    let log_beside = || {
        let name = layout::offset_file_name(base, LOG);
        fs::read(path.with_file_name(name)).ok()
    };
    match kind {
        Kind::Log => verify_log(&bytes, base, max_batch_bytes).map_err(|(p, w)| Problem {
            path: PathBuf::new(),
            pos: p,
            what: w,
        }),
        Kind::Index => verify_index(&bytes, base, log_beside().as_deref()),
        Kind::TimeIndex => verify_time_index(&bytes, base, log_beside().as_deref()),
    }
    .map(|(entries, offsets)| Checked {
        path: path.to_owned(),
        entries,
        offsets,
    })
    .map_err(|e: Problem| Problem {
        path: path.to_owned(),
        ..e
    })
}

type Verified = (u64, Option<(u64, u64)>);

fn verify_log(bytes: &[u8], base: u64, limit: usize) -> Result<Verified, (u64, String)> {
    let mut batches = 0u64;
    let mut range: Option<(u64, u64)> = None;
    let mut scan = batch::scan(bytes, 0);
    for (pos, h) in scan.by_ref() {
        let at = pos as u64;
        let whole = &bytes[pos..pos + h.total_len() as usize];
        let crc = batch::crc_of(whole);
        if crc != Some(h.crc) {
            return Err((
                at,
                format!(
                    "batch at offset {}: CRC {:#010x} in the header, {:#010x} computed",
                    h.base_offset,
                    h.crc,
                    crc.unwrap_or(0)
                ),
            ));
        }
        let first =
            u64::try_from(h.base_offset).map_err(|_| (at, "negative base offset".into()))?;
        let next = range.map_or(base, |(_, last)| last + 1);
        if first < next {
            return Err((
                at,
                format!("batch at offset {first}: offsets go back (expected {next} or later)"),
            ));
        }
        let body = records::body(whole, &h, limit)
            .map_err(|e| (at, format!("batch at offset {first}: {e}")))?;
        let mut count = 0i64;
        for r in records::records(&body) {
            let r = r.map_err(|e| (at, format!("batch at offset {first}: {e}")))?;
            if r.offset_delta < 0 || r.offset_delta > h.last_offset_delta {
                return Err((
                    at,
                    format!(
                        "batch at offset {first}: a record's offset delta {} is outside 0..={}",
                        r.offset_delta, h.last_offset_delta
                    ),
                ));
            }
            count += 1;
        }
        if count != i64::from(h.record_count) {
            return Err((
                at,
                format!(
                    "batch at offset {first}: {count} records, the header says {}",
                    h.record_count
                ),
            ));
        }
        let last = u64::try_from(h.last_offset()).unwrap_or(first);
        range = Some((range.map_or(first, |(f, _)| f), last));
        batches += 1;
    }
    let end = scan.position();
    if end < bytes.len() {
        return Err((
            end as u64,
            format!(
                "{} bytes that are not a whole batch (a torn write or corruption)",
                bytes.len() - end
            ),
        ));
    }
    Ok((batches, range))
}

/// Each batch of a log: its position, and its last offset relative to the
/// segment's base; `None` unless the log scans whole.
fn batch_ends(log: &[u8], base: u64) -> Option<Vec<(u32, u64, i64)>> {
    let mut scan = batch::scan(log, 0);
    let ends: Vec<(u32, u64, i64)> = scan
        .by_ref()
        .map(|(pos, h)| {
            let rel = u64::try_from(h.last_offset())
                .unwrap_or(0)
                .saturating_sub(base);
            (pos as u32, rel, h.max_timestamp)
        })
        .collect();
    (scan.position() == log.len()).then_some(ends)
}

/// A problem at byte `pos` of the file being checked (its path is filled
/// in by [`verify`]).
fn problem(pos: usize, what: String) -> Problem {
    Problem {
        path: PathBuf::new(),
        pos: pos as u64,
        what,
    }
}

/// How many entries of `size` bytes an index file holds; a partial one at
/// the end is a problem.
fn whole_entries(bytes: &[u8], size: usize) -> Result<usize, Problem> {
    let partial = bytes.len() % size;
    if partial != 0 {
        return Err(problem(
            bytes.len() - partial,
            "a partial entry at the end".into(),
        ));
    }
    Ok(bytes.len() / size)
}

fn verify_index(bytes: &[u8], base: u64, log: Option<&[u8]>) -> Result<Verified, Problem> {
    let n = whole_entries(bytes, index::OFFSET_ENTRY)?;
    let batches = log.and_then(|l| batch_ends(l, base));
    let mut prev: Option<(u32, u32)> = None;
    for i in 0..n {
        let at = i * index::OFFSET_ENTRY;
        let Some((rel, pos)) = index::offset_entry(bytes, i) else {
            return Err(problem(at, "an entry cannot be read".into()));
        };
        if prev.is_some_and(|(pr, pp)| rel <= pr || pos <= pp) {
            return Err(problem(
                at,
                format!(
                    "entry {i} (offset {}, position {pos}) does not follow the one before",
                    base + u64::from(rel)
                ),
            ));
        }
        prev = Some((rel, pos));
        if let Some(b) = &batches {
            let ok = b.iter().any(|&(p, r, _)| p == pos && r == u64::from(rel));
            if !ok {
                return Err(problem(
                    at,
                    format!(
                        "entry {i} says offset {} ends the batch at position {pos}; the log has no such batch",
                        base + u64::from(rel)
                    ),
                ));
            }
        }
    }
    let range = (n > 0).then(|| {
        let last = prev.map_or(0, |(r, _)| u64::from(r));
        (base, base + last)
    });
    Ok((n as u64, range))
}

fn verify_time_index(bytes: &[u8], base: u64, log: Option<&[u8]>) -> Result<Verified, Problem> {
    let n = whole_entries(bytes, index::TIME_ENTRY)?;
    let batches = log.and_then(|l| batch_ends(l, base));
    let mut prev: Option<(i64, u32)> = None;
    for i in 0..n {
        let at = i * index::TIME_ENTRY;
        let Some((ts, rel)) = index::time_entry(bytes, i) else {
            return Err(problem(at, "an entry cannot be read".into()));
        };
        if prev.is_some_and(|(pt, pr)| ts < pt || rel < pr) {
            return Err(problem(
                at,
                format!(
                    "entry {i} (timestamp {ts}, offset {}) goes back",
                    base + u64::from(rel)
                ),
            ));
        }
        prev = Some((ts, rel));
        if let Some(b) = &batches {
            let ok = b
                .iter()
                .any(|&(_, r, max_ts)| r == u64::from(rel) && max_ts == ts);
            if !ok {
                return Err(problem(
                    at,
                    format!(
                        "entry {i} says offset {} has timestamp {ts}; no batch of the log ends there with it",
                        base + u64::from(rel)
                    ),
                ));
            }
        }
    }
    let range = (n > 0).then(|| (base, base + prev.map_or(0, |(_, r)| u64::from(r))));
    Ok((n as u64, range))
}
