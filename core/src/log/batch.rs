//! RecordBatch v2 (magic 2): header parsing, client-batch validation, scans
//! over a segment's bytes, and the `LogAppendTime` restamp. The records
//! inside a batch are read by [`super::records`].
//!
//! Everything here reads untrusted bytes (a Produce request, a file that may
//! be torn), so nothing indexes a slice directly or does unchecked
//! arithmetic: every read goes through `get` and every sum is checked.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes in a RecordBatch v2 header, up to the first record.
pub const HEADER_LEN: usize = 61;

/// Bytes before the CRC-covered part: base offset, length, leader epoch,
/// magic and the CRC itself. The CRC covers `CRC_START..end`.
pub const CRC_START: usize = 21;

/// The smallest legal `batch_length`: a header with no records.
const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - 12) as i32;

/// Attribute bits (KAFKA-NOTES: byte 21).
const CODEC_MASK: i16 = 0x07;
const LOG_APPEND_TIME: i16 = 0x08;
const CONTROL: i16 = 0x20;

/// The fixed header of a RecordBatch v2 (see KAFKA-NOTES: byte layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// The leader epoch that wrote it.
    pub partition_leader_epoch: i32,
    /// Record format version (2).
    pub magic: i8,
    /// CRC-32C of bytes 21..end.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record minus the base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

fn be<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Big-endian readers over untrusted bytes; `None` when out of bounds.
pub(crate) fn read_i64(bytes: &[u8], at: usize) -> Option<i64> {
    be(bytes, at).map(i64::from_be_bytes)
}
pub(crate) fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    be(bytes, at).map(i32::from_be_bytes)
}
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    be(bytes, at).map(u32::from_be_bytes)
}
fn read_i16(bytes: &[u8], at: usize) -> Option<i16> {
    be(bytes, at).map(i16::from_be_bytes)
}

impl BatchHeader {
    /// Parse the header at the front of `bytes` (at least [`HEADER_LEN`]
    /// bytes), checking nothing but length.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        Some(Self {
            base_offset: read_i64(bytes, 0)?,
            batch_length: read_i32(bytes, 8)?,
            partition_leader_epoch: read_i32(bytes, 12)?,
            magic: i8::from_be_bytes(be(bytes, 16)?),
            crc: read_u32(bytes, 17)?,
            attributes: read_i16(bytes, 21)?,
            last_offset_delta: read_i32(bytes, 23)?,
            base_timestamp: read_i64(bytes, 27)?,
            max_timestamp: read_i64(bytes, 35)?,
            producer_id: read_i64(bytes, 43)?,
            producer_epoch: read_i16(bytes, 51)?,
            base_sequence: read_i32(bytes, 53)?,
            record_count: read_i32(bytes, 57)?,
        })
    }

    /// Whole size of the batch on disk: `12 + batch_length`.
    pub fn total_len(&self) -> u64 {
        // A negative length (only in a corrupt batch) counts as no bytes, so
        // callers comparing against what is present see it as too short.
        12 + u64::try_from(self.batch_length).unwrap_or(0)
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The compression codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn codec(&self) -> i16 {
        self.attributes & CODEC_MASK
    }

    /// Whether the batch's timestamps are the broker's append time.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & LOG_APPEND_TIME != 0
    }

    /// Whether this is a transaction marker batch.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL != 0
    }

    /// Whether the header can describe a batch at all: magic 2, a length
    /// that covers the header, and a non-negative offset delta.
    pub fn is_plausible(&self) -> bool {
        self.magic == 2 && self.batch_length >= MIN_BATCH_LENGTH && self.last_offset_delta >= 0
    }
}

/// Why a client's batch was refused, with Kafka's error code for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// CORRUPT_MESSAGE (2): bad CRC, impossible lengths, truncated.
    Corrupt(&'static str),
    /// INVALID_RECORD (87): not magic 2, more than one batch, base offset not
    /// 0, count mismatch, control batch, producer id without sequence.
    Invalid(&'static str),
    /// MESSAGE_TOO_LARGE (10): larger than `max.message.bytes`.
    TooLarge,
}

impl BatchError {
    /// Kafka's error code for this refusal.
    pub fn code(&self) -> i16 {
        match self {
            BatchError::Corrupt(_) => 2,
            BatchError::Invalid(_) => 87,
            BatchError::TooLarge => 10,
        }
    }
}

/// Check a Produce request's records for one partition: exactly one v2
/// batch, whole, `max_message_bytes` at most, CRC-32C valid, base offset 0,
/// `last_offset_delta + 1 == record_count > 0` (and, uncompressed, the record
/// count matching the records present), no control batch, a sequence when
/// there is a producer id.
pub fn validate_client_batch(
    records: &Bytes,
    max_message_bytes: u64,
) -> Result<BatchHeader, BatchError> {
    // The order follows Kafka's `analyzeAndValidateRecords`: framing, then
    // size, then CRC, then the fields.
    let header =
        BatchHeader::parse(records).ok_or(BatchError::Corrupt("batch shorter than its header"))?;
    if header.magic != 2 {
        return Err(BatchError::Invalid("record batch magic is not 2"));
    }
    if header.batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::Corrupt("batch length shorter than the header"));
    }
    let total = header.total_len();
    let len = records.len() as u64;
    if total > len {
        return Err(BatchError::Corrupt("batch truncated"));
    }
    if total < len {
        return Err(BatchError::Invalid("more than one batch for a partition"));
    }
    if len > max_message_bytes {
        return Err(BatchError::TooLarge);
    }
    if crc_of(records) != Some(header.crc) {
        return Err(BatchError::Corrupt("CRC-32C mismatch"));
    }
    if header.base_offset != 0 {
        return Err(BatchError::Invalid(
            "base offset of a produced batch is not 0",
        ));
    }
    if header.record_count <= 0
        || i64::from(header.last_offset_delta) + 1 != i64::from(header.record_count)
    {
        return Err(BatchError::Invalid(
            "last offset delta does not match the record count",
        ));
    }
    if header.is_control() {
        return Err(BatchError::Invalid("control batches cannot be produced"));
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(BatchError::Invalid("producer id without a base sequence"));
    }
    match header.codec() {
        0 => {
            let body = records.get(HEADER_LEN..).unwrap_or_default();
            let mut count: i64 = 0;
            for record in super::records::records(body) {
                record.map_err(BatchError::Corrupt)?;
                count += 1;
            }
            if count != i64::from(header.record_count) {
                return Err(BatchError::Invalid(
                    "record count does not match the records present",
                ));
            }
        }
        1..=4 => {}
        _ => return Err(BatchError::Corrupt("unknown compression codec")),
    }
    Ok(header)
}

/// CRC-32C of a whole batch's covered bytes (`21..end`), or `None` when the
/// batch is shorter than its header.
pub fn crc_of(batch: &[u8]) -> Option<u32> {
    if batch.len() < HEADER_LEN {
        return None;
    }
    batch.get(CRC_START..).map(crc32c::crc32c)
}

/// The 16 bytes that replace a batch's first 16 when it is appended: the
/// assigned base offset, the original batch length, the partition leader
/// epoch of the leader appending it. Neither the offset nor the epoch is covered by the CRC, so the rest of the batch is written
/// untouched.
pub fn offset_prefix(base_offset: u64, batch_length: i32, leader_epoch: i32) -> Bytes {
    let mut b = BytesMut::with_capacity(16);
    // Offsets are below i64::MAX: they count records appended.
    b.put_i64(i64::try_from(base_offset).unwrap_or(i64::MAX));
    b.put_i32(batch_length);
    b.put_i32(leader_epoch);
    b.freeze()
}

/// A `LogAppendTime` header for `batch` (a whole, validated batch): its
/// first [`HEADER_LEN`] bytes with the base offset and epoch patched, the
/// timestamp-type bit set, `max_timestamp = append_ms` and the CRC
/// recomputed over the new header and the untouched records. The base
/// timestamp is left as the producer wrote it, as Kafka's
/// `setMaxTimestamp` does: readers of a `LogAppendTime` batch use its max
/// timestamp for every record. `None` when `batch` is shorter than a header.
pub fn log_append_time_header(
    batch: &[u8],
    (base_offset, leader_epoch): (u64, i32),
    append_ms: i64,
) -> Option<Bytes> {
    let original = batch.get(..HEADER_LEN)?;
    let records = batch.get(HEADER_LEN..)?;
    let mut h = BytesMut::with_capacity(HEADER_LEN);
    h.extend_from_slice(original);
    let attributes = read_i16(original, 21)? | LOG_APPEND_TIME;
    h.get_mut(0..8)?
        .copy_from_slice(&i64::try_from(base_offset).unwrap_or(i64::MAX).to_be_bytes());
    h.get_mut(12..16)?
        .copy_from_slice(&leader_epoch.to_be_bytes());
    h.get_mut(21..23)?
        .copy_from_slice(&attributes.to_be_bytes());
    h.get_mut(35..43)?.copy_from_slice(&append_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(h.get(CRC_START..)?), records);
    h.get_mut(17..21)?.copy_from_slice(&crc.to_be_bytes());
    Some(h.freeze())
}

/// Iterates the whole batches in `bytes` from a position: each item is the
/// batch's position and header. Stops at the first batch that is incomplete
/// or whose header cannot describe a batch; [`Scan::position`] then says
/// where the whole batches end. Checks no CRC.
#[derive(Debug, Clone)]
pub struct Scan<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Scan whole batches in `bytes` starting at `pos`.
pub fn scan(bytes: &[u8], pos: usize) -> Scan<'_> {
    Scan { bytes, pos }
}

impl Scan<'_> {
    /// The end of the last whole batch returned so far (the start position
    /// before the first).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for Scan<'_> {
    type Item = (usize, BatchHeader);

    fn next(&mut self) -> Option<Self::Item> {
        let header = BatchHeader::parse(self.bytes.get(self.pos..)?)?;
        if !header.is_plausible() {
            return None;
        }
        let end = self
            .pos
            .checked_add(usize::try_from(header.total_len()).ok()?)?;
        if end > self.bytes.len() {
            return None;
        }
        let at = self.pos;
        self.pos = end;
        Some((at, header))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    /// A valid uncompressed batch with `n` records, timestamps `ts + i`.
    pub(crate) fn batch(n: i32, ts: i64) -> Bytes {
        let mut records = Vec::new();
        for i in 0..n {
            let mut r = vec![0u8];
            put_varint(&mut r, i64::from(i));
            put_varint(&mut r, i64::from(i));
            put_varint(&mut r, -1);
            put_varint(&mut r, 3);
            r.extend_from_slice(b"abc");
            put_varint(&mut r, 0);
            put_varint(&mut records, r.len() as i64);
            records.extend_from_slice(&r);
        }
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((HEADER_LEN - 12 + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(n - 1).to_be_bytes());
        b.extend_from_slice(&ts.to_be_bytes());
        b.extend_from_slice(&(ts + i64::from(n) - 1).to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&records);
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(b)
    }

    fn recrc(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn parses_and_validates_a_good_batch() {
        let b = batch(3, 1000);
        let h = validate_client_batch(&b, 1 << 20).unwrap();
        assert_eq!(h.record_count, 3);
        assert_eq!(h.max_timestamp, 1002);
        assert_eq!(h.total_len(), b.len() as u64);
        let recs: Vec<_> = super::super::records::records(&b[HEADER_LEN..])
            .map(Result::unwrap)
            .collect();
        assert_eq!((recs[2].offset_delta, recs[2].timestamp_delta), (2, 2));
    }

    #[test]
    fn refusals_carry_kafka_codes() {
        let b = batch(2, 0);
        assert_eq!(validate_client_batch(&b, 10), Err(BatchError::TooLarge));
        let mut bad = b.to_vec();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            validate_client_batch(&Bytes::from(bad), 1 << 20)
                .unwrap_err()
                .code(),
            2
        );
        let mut two = b.to_vec();
        two.extend_from_slice(&b);
        assert_eq!(
            validate_client_batch(&Bytes::from(two), 1 << 20)
                .unwrap_err()
                .code(),
            87
        );
        let mut magic = b.to_vec();
        magic[16] = 1;
        assert_eq!(
            validate_client_batch(&Bytes::from(magic), 1 << 20)
                .unwrap_err()
                .code(),
            87
        );
        // A count that disagrees with the records present, CRC fixed up.
        let mut count = b.to_vec();
        count[23..27].copy_from_slice(&2i32.to_be_bytes());
        count[57..61].copy_from_slice(&3i32.to_be_bytes());
        recrc(&mut count);
        assert_eq!(
            validate_client_batch(&Bytes::from(count), 1 << 20),
            Err(BatchError::Invalid(
                "record count does not match the records present"
            ))
        );
        let mut offset = b.to_vec();
        offset[7] = 5;
        assert_eq!(
            validate_client_batch(&Bytes::from(offset), 1 << 20)
                .unwrap_err()
                .code(),
            87
        );
        assert_eq!(
            validate_client_batch(&b.slice(..b.len() - 1), 1 << 20)
                .unwrap_err()
                .code(),
            2
        );
    }

    #[test]
    fn never_panics_on_prefixes_and_flips() {
        let b = batch(3, 7).to_vec();
        for cut in 0..=b.len() {
            let _ = validate_client_batch(&Bytes::copy_from_slice(&b[..cut]), 1 << 20);
        }
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                // Fix the CRC so the record walk runs on the damage too.
                recrc(&mut c);
                let _ = validate_client_batch(&Bytes::from(c), 1 << 20);
            }
        }
    }

    #[test]
    fn scan_stops_at_a_partial_batch() {
        let one = batch(1, 0);
        let mut all = one.to_vec();
        all.extend_from_slice(&one);
        all.extend_from_slice(&one[..20]);
        let mut s = scan(&all, 0);
        assert_eq!(
            s.by_ref().map(|(p, _)| p).collect::<Vec<_>>(),
            vec![0, one.len()]
        );
        assert_eq!(s.position(), 2 * one.len());
    }

    #[test]
    fn log_append_time_header_recomputes_the_crc() {
        let b = batch(2, 5);
        let h = log_append_time_header(&b, (42, 0), 9999).unwrap();
        let mut whole = h.to_vec();
        whole.extend_from_slice(&b[HEADER_LEN..]);
        let parsed = BatchHeader::parse(&whole).unwrap();
        assert_eq!(parsed.base_offset, 42);
        assert_eq!(parsed.max_timestamp, 9999);
        assert!(parsed.is_log_append_time());
        assert_eq!(crc_of(&whole), Some(parsed.crc));
    }
}
