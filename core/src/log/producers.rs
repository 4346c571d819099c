//! Idempotent producer state of one partition, as Kafka's
//! `ProducerStateManager` keeps it: for each producer id its epoch and the
//! metadata of its last five batches, so a retried batch is recognised and
//! answered with its original offsets instead of being appended twice.
//!
//! The checks follow Kafka 3.x's `ProducerAppendInfo` and
//! `ProducerStateEntry` (storage/src/main/java/org/apache/kafka/storage/
//! internals/log/): an epoch older than the known one is refused
//! (`INVALID_PRODUCER_EPOCH`); a new epoch must start at sequence 0 and a
//! known epoch must continue at `last sequence + 1` (else
//! `OUT_OF_ORDER_SEQUENCE_NUMBER`); a producer with no state is accepted at
//! any sequence (since Kafka 2.5 the broker no longer answers
//! `UNKNOWN_PRODUCER_ID`: its data may simply have been removed by
//! retention). Sequences wrap from `i32::MAX` to 0.
//!
//! The state also round-trips through a small snapshot format (see
//! [`ProducerStates::encode`]), written beside the segments.

use std::collections::{BTreeMap, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};

use super::batch::BatchHeader;

/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`): a
/// producer has at most five requests in flight per partition, so a retry
/// is always of one of its last five batches.
pub const BATCHES_TO_RETAIN: usize = 5;

/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
const NO_EPOCH: i16 = -1;

/// Bytes of one producer's fixed part and of one batch in a snapshot.
const ENTRY_LEN: usize = 8 + 2 + 8 + 1;
const BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;
/// Snapshot header: magic, version, CRC-32 of the rest, entry count.
const SNAPSHOT_MAGIC: &[u8; 4] = b"CVPS";
const SNAPSHOT_VERSION: u16 = 1;
const SNAPSHOT_HEADER_LEN: usize = 4 + 2 + 4 + 4;

/// One appended batch of a producer (Kafka's `BatchMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Sequence of its first record.
    pub first_seq: i32,
    /// Sequence of its last record (wrapped).
    pub last_seq: i32,
    /// Offset of its first record.
    pub first_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
    /// Its largest timestamp as stored (the append time under
    /// `LogAppendTime`).
    pub timestamp: i64,
}

/// What is known of one producer id in this partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The epoch of its latest batch.
    pub epoch: i16,
    /// The timestamp of its latest batch (expiry counts from it, as in Kafka).
    pub last_timestamp: i64,
    /// Its last batches, oldest first, at most [`BATCHES_TO_RETAIN`], all of
    /// `epoch`.
    batches: VecDeque<BatchMeta>,
}

impl ProducerEntry {
    /// The remembered batches, oldest first.
    pub fn batches(&self) -> impl Iterator<Item = &BatchMeta> {
        self.batches.iter()
    }

    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }
}

/// Why a producer's batch is refused, with Kafka's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerError {
    /// INVALID_PRODUCER_EPOCH (47): the batch's epoch is older than the
    /// producer's latest (a fenced, zombie producer).
    InvalidEpoch,
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (45): the batch does not continue the
    /// producer's sequence (a gap, or a new epoch not starting at 0).
    OutOfOrder,
}

impl ProducerError {
    /// Kafka's error code.
    pub fn code(self) -> i16 {
        match self {
            ProducerError::InvalidEpoch => 47,
            ProducerError::OutOfOrder => 45,
        }
    }

    /// A message for the response (Produce v8+).
    pub fn message(self) -> &'static str {
        match self {
            ProducerError::InvalidEpoch => "producer epoch is older than the latest one",
            ProducerError::OutOfOrder => "out of order sequence number",
        }
    }
}

/// What to do with a producer's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append it.
    Append,
    /// It is a retry of this batch, already appended: answer with its
    /// offsets and append nothing.
    Duplicate(BatchMeta),
}

/// The sequence of a batch's last record: `first + delta`, wrapping past
/// `i32::MAX` to 0 (Kafka's `DefaultRecordBatch.incrementSequence`).
pub fn increment_sequence(first: i32, delta: i32) -> i32 {
    if first > i32::MAX - delta {
        delta - (i32::MAX - first) - 1
    } else {
        first + delta
    }
}

/// Whether `next` directly follows `last` (Kafka's `inSequence`).
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// Every producer's state in one partition, by producer id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    /// Ordered, so snapshots of the same state are the same bytes.
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerStates {
    /// Number of producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The state of one producer.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer's state, by producer id.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(&id, e)| (id, e))
    }

    /// Check a client's batch (one with `producer_id >= 0`) before it is
    /// appended, in Kafka's order: a duplicate of one of the last batches of
    /// the same epoch first, then the epoch, then the sequence.
    pub fn check(&self, header: &BatchHeader) -> Result<Check, ProducerError> {
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // No state: any epoch and any sequence (Kafka 2.5+).
            return Ok(Check::Append);
        };
        let first = header.base_sequence;
        let last = increment_sequence(first, header.last_offset_delta);
        if header.producer_epoch == entry.epoch {
            // `ProducerStateEntry.findDuplicateBatch`: the exact range.
            if let Some(b) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == first && b.last_seq == last)
            {
                return Ok(Check::Duplicate(*b));
            }
        }
        // `checkProducerEpoch`.
        if header.producer_epoch < entry.epoch {
            return Err(ProducerError::InvalidEpoch);
        }
        // `checkSequence`.
        if header.producer_epoch != entry.epoch {
            if first != 0 && entry.epoch != NO_EPOCH {
                return Err(ProducerError::OutOfOrder);
            }
        } else {
            let current_last = entry.last_seq().unwrap_or(-1);
            if entry.epoch != NO_EPOCH && !in_sequence(current_last, first) {
                return Err(ProducerError::OutOfOrder);
            }
        }
        Ok(Check::Append)
    }

    /// Record a batch appended at `first_offset..=last_offset` (from a
    /// client after [`ProducerStates::check`], or replayed from the log at
    /// startup, which checks nothing, as Kafka's replication origin).
    /// Batches without a producer id are ignored.
    pub fn record(&mut self, header: &BatchHeader, first_offset: u64, last_offset: u64, ts: i64) {
        if header.producer_id < 0 || header.is_control() {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: NO_EPOCH,
                last_timestamp: -1,
                batches: VecDeque::with_capacity(BATCHES_TO_RETAIN),
            });
        // `ProducerStateEntry.addBatch`: a new epoch forgets the old batches.
        if entry.epoch != header.producer_epoch {
            entry.batches.clear();
            entry.epoch = header.producer_epoch;
        }
        if entry.batches.len() == BATCHES_TO_RETAIN {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: header.base_sequence,
            last_seq: increment_sequence(header.base_sequence, header.last_offset_delta),
            first_offset,
            last_offset,
            timestamp: ts,
        });
        entry.last_timestamp = ts;
    }

    /// The log was cut at `end` (a follower truncating a tail its leader
    /// does not have): forget the batches at or past it. A producer left
    /// with none is forgotten: its state before them is not known here
    /// (Kafka reloads it from a snapshot; this state keeps no history).
    /// The leader's batches that replace the cut ones bring it back, and a
    /// producer with no state is accepted at any sequence. Returns how many
    /// producers went.
    pub fn truncate_from(&mut self, end: u64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.batches.retain(|b| b.last_offset < end);
            match e.batches.back() {
                Some(b) => {
                    e.last_timestamp = b.timestamp;
                    true
                }
                None => false,
            }
        });
        before - self.producers.len()
    }

    /// Drop producers whose latest batch is `expiration_ms` or more older
    /// than `now_ms` (Kafka's `producer.id.expiration.ms`, counted from the
    /// batch timestamp). Returns how many went.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// The snapshot bytes: `CVPS`, version 1 (u16), CRC-32 (IEEE) of what
    /// follows it, the producer count (u32), then per producer its id (i64),
    /// epoch (i16), last timestamp (i64), batch count (u8) and per batch
    /// first and last sequence (i32), first and last offset (u64) and
    /// timestamp (i64). Big-endian throughout.
    pub fn encode(&self) -> Bytes {
        let batches: usize = self.producers.values().map(|e| e.batches.len()).sum();
        let mut b = BytesMut::with_capacity(
            SNAPSHOT_HEADER_LEN + self.producers.len() * ENTRY_LEN + batches * BATCH_LEN,
        );
        b.put_slice(SNAPSHOT_MAGIC);
        b.put_u16(SNAPSHOT_VERSION);
        b.put_u32(0);
        // At most one entry per producer id; ids come from InitProducerId.
        b.put_u32(u32::try_from(self.producers.len()).unwrap_or(u32::MAX));
        for (&id, e) in &self.producers {
            b.put_i64(id);
            b.put_i16(e.epoch);
            b.put_i64(e.last_timestamp);
            // At most BATCHES_TO_RETAIN.
            b.put_u8(e.batches.len() as u8);
            for m in &e.batches {
                b.put_i32(m.first_seq);
                b.put_i32(m.last_seq);
                b.put_u64(m.first_offset);
                b.put_u64(m.last_offset);
                b.put_i64(m.timestamp);
            }
        }
        let crc = crc32fast::hash(&b[10..]);
        b[6..10].copy_from_slice(&crc.to_be_bytes());
        b.freeze()
    }

    /// Parse [`ProducerStates::encode`]'s bytes; `None` when they are torn,
    /// corrupt or of another version.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.get(..4)? != SNAPSHOT_MAGIC {
            return None;
        }
        let mut r = Reader(bytes.get(4..)?);
        if r.u16()? != SNAPSHOT_VERSION {
            return None;
        }
        let crc = r.u32()?;
        if crc32fast::hash(r.0) != crc {
            return None;
        }
        let count = r.u32()?;
        let mut producers = BTreeMap::new();
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let last_timestamp = r.i64()?;
            let n = usize::from(r.u8()?);
            if n > BATCHES_TO_RETAIN {
                return None;
            }
            let mut batches = VecDeque::with_capacity(BATCHES_TO_RETAIN);
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.u64()?,
                    last_offset: r.u64()?,
                    timestamp: r.i64()?,
                });
            }
            let entry = ProducerEntry {
                epoch,
                last_timestamp,
                batches,
            };
            if id < 0 || producers.insert(id, entry).is_some() {
                return None;
            }
        }
        r.0.is_empty().then_some(Self { producers })
    }
}

/// Big-endian reads off the front of untrusted bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_be_bytes)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: id,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: records,
        }
    }

    /// Check then record like an append at the log end; returns the check.
    fn append(
        s: &mut ProducerStates,
        end: &mut u64,
        h: &BatchHeader,
    ) -> Result<Check, ProducerError> {
        let c = s.check(h)?;
        if c == Check::Append {
            let last = *end + u64::try_from(h.last_offset_delta).unwrap();
            s.record(h, *end, last, 1000);
            *end = last + 1;
        }
        Ok(c)
    }

    #[test]
    fn a_cut_forgets_the_batches_past_it_and_producers_left_with_none() {
        let mut s = ProducerStates::default();
        let mut end = 0;
        append(&mut s, &mut end, &header(1, 0, 0, 2)).unwrap(); // 0..=1
        append(&mut s, &mut end, &header(2, 0, 0, 1)).unwrap(); // 2
        append(&mut s, &mut end, &header(1, 0, 2, 2)).unwrap(); // 3..=4
        assert_eq!(s.truncate_from(3), 0);
        let one: Vec<u64> = s.get(1).unwrap().batches().map(|b| b.last_offset).collect();
        assert_eq!(one, vec![1]);
        // The leader's batch at 3 continues producer 1's sequence from 2.
        assert_eq!(
            append(&mut s, &mut end, &header(1, 0, 2, 1)),
            Ok(Check::Append)
        );
        assert_eq!(s.truncate_from(2), 1, "producer 2 had only the cut batch");
        assert!(s.get(2).is_none());
        assert!(s.get(1).is_some());
    }

    #[test]
    fn in_order_batches_append() {
        let (mut s, mut end) = (ProducerStates::default(), 0);
        for i in 0..10 {
            assert_eq!(
                append(&mut s, &mut end, &header(7, 0, i * 3, 3)),
                Ok(Check::Append)
            );
        }
        assert_eq!(end, 30);
        let e = s.get(7).unwrap();
        assert_eq!(e.batches().count(), BATCHES_TO_RETAIN);
        assert_eq!(e.batches().last().unwrap().last_seq, 29);
    }

    #[test]
    fn each_of_the_last_five_is_a_duplicate_with_its_offsets() {
        let (mut s, mut end) = (ProducerStates::default(), 0);
        for i in 0..7 {
            append(&mut s, &mut end, &header(1, 0, i * 2, 2)).unwrap();
        }
        // Batches 2..7 are remembered; 0 and 1 are not.
        for i in 2..7 {
            let got = append(&mut s, &mut end, &header(1, 0, i * 2, 2)).unwrap();
            let first = u64::try_from(i * 2).unwrap();
            assert_eq!(
                got,
                Check::Duplicate(BatchMeta {
                    first_seq: i * 2,
                    last_seq: i * 2 + 1,
                    first_offset: first,
                    last_offset: first + 1,
                    timestamp: 1000,
                })
            );
        }
        assert_eq!(end, 14, "duplicates append nothing");
        // Too old to be recognised: it is out of order instead.
        assert_eq!(
            append(&mut s, &mut end, &header(1, 0, 2, 2)),
            Err(ProducerError::OutOfOrder)
        );
        // Same first sequence but another range is not a duplicate.
        assert_eq!(
            append(&mut s, &mut end, &header(1, 0, 12, 1)),
            Err(ProducerError::OutOfOrder)
        );
    }

    #[test]
    fn a_gap_is_out_of_order() {
        let (mut s, mut end) = (ProducerStates::default(), 0);
        append(&mut s, &mut end, &header(1, 0, 0, 5)).unwrap();
        assert_eq!(
            append(&mut s, &mut end, &header(1, 0, 6, 1)),
            Err(ProducerError::OutOfOrder)
        );
        assert_eq!(
            append(&mut s, &mut end, &header(1, 0, 5, 1)),
            Ok(Check::Append)
        );
    }

    #[test]
    fn epochs() {
        let (mut s, mut end) = (ProducerStates::default(), 0);
        append(&mut s, &mut end, &header(1, 3, 0, 2)).unwrap();
        // Older epoch: fenced, even for what would be a duplicate.
        assert_eq!(
            append(&mut s, &mut end, &header(1, 2, 2, 1)),
            Err(ProducerError::InvalidEpoch)
        );
        assert_eq!(
            append(&mut s, &mut end, &header(1, 2, 0, 2)),
            Err(ProducerError::InvalidEpoch)
        );
        // A new epoch must start at 0.
        assert_eq!(
            append(&mut s, &mut end, &header(1, 4, 2, 1)),
            Err(ProducerError::OutOfOrder)
        );
        assert_eq!(
            append(&mut s, &mut end, &header(1, 4, 0, 1)),
            Ok(Check::Append)
        );
        // The new epoch forgot the old batches.
        assert_eq!(s.get(1).unwrap().batches().count(), 1);
        assert_eq!(
            append(&mut s, &mut end, &header(1, 3, 0, 2)),
            Err(ProducerError::InvalidEpoch)
        );
    }

    #[test]
    fn an_unknown_producer_is_accepted_at_any_sequence() {
        let (mut s, mut end) = (ProducerStates::default(), 0);
        assert_eq!(
            append(&mut s, &mut end, &header(9, 5, 1234, 1)),
            Ok(Check::Append)
        );
        assert_eq!(
            append(&mut s, &mut end, &header(9, 5, 1235, 1)),
            Ok(Check::Append)
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        let (mut s, mut end) = (ProducerStates::default(), 0);
        append(&mut s, &mut end, &header(1, 0, i32::MAX - 2, 2)).unwrap();
        // Crosses the wrap: MAX-0..=0.
        assert_eq!(
            append(&mut s, &mut end, &header(1, 0, i32::MAX, 2)),
            Ok(Check::Append)
        );
        assert_eq!(s.get(1).unwrap().last_seq(), Some(0));
        assert_eq!(
            append(&mut s, &mut end, &header(1, 0, i32::MAX, 2)),
            Ok(Check::Duplicate(BatchMeta {
                first_seq: i32::MAX,
                last_seq: 0,
                first_offset: 2,
                last_offset: 3,
                timestamp: 1000
            }))
        );
        assert_eq!(
            append(&mut s, &mut end, &header(1, 0, 1, 1)),
            Ok(Check::Append)
        );
        // And a batch ending exactly at MAX is followed by 0.
        let (mut s, mut end) = (ProducerStates::default(), 0);
        append(&mut s, &mut end, &header(2, 0, i32::MAX - 1, 2)).unwrap();
        assert_eq!(
            append(&mut s, &mut end, &header(2, 0, 0, 1)),
            Ok(Check::Append)
        );
    }

    #[test]
    fn expiry_counts_from_the_last_batch_timestamp() {
        let (mut s, mut end) = (ProducerStates::default(), 0);
        append(&mut s, &mut end, &header(1, 0, 0, 1)).unwrap();
        assert_eq!(s.expire(1000 + 99, 100), 0);
        assert_eq!(s.expire(1000 + 100, 100), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn snapshots_round_trip_and_refuse_damage() {
        let (mut s, mut end) = (ProducerStates::default(), 0);
        for id in [3, 1, 2] {
            for i in 0..7 {
                append(&mut s, &mut end, &header(id, 1, i, 1)).unwrap();
            }
        }
        let bytes = s.encode();
        assert_eq!(ProducerStates::decode(&bytes), Some(s.clone()));
        assert_eq!(
            ProducerStates::decode(&ProducerStates::default().encode()),
            Some(ProducerStates::default())
        );
        for cut in 0..bytes.len() {
            assert_eq!(ProducerStates::decode(&bytes[..cut]), None, "cut {cut}");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x10;
            assert_eq!(ProducerStates::decode(&bad), None, "flip {i}");
        }
    }
}
