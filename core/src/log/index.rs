//! Kafka's offset index (8-byte entries: u32 offset relative to the segment
//! base, u32 log position) and time index (12-byte entries: i64 timestamp,
//! u32 relative offset), both big-endian, over byte slices.
//!
//! An offset-index entry names a batch: the relative offset of its *last*
//! record and the position where it starts (Kafka's `LogSegment.append`).
//! A time-index entry is the largest timestamp so far in the segment and the
//! relative offset of the batch that holds it. Entries are sparse; lookups
//! give a position to start a batch scan from. The bytes may come from a
//! file mapped at startup, so every read is bounds-checked.

use bytes::{BufMut, BytesMut};

use super::batch::{read_i64, read_u32};

/// Bytes in one offset-index entry.
pub const OFFSET_ENTRY: usize = 8;
/// Bytes in one time-index entry.
pub const TIME_ENTRY: usize = 12;

/// Append an offset-index entry to `out`.
pub fn put_offset_entry(out: &mut BytesMut, relative_offset: u32, position: u32) {
    out.put_u32(relative_offset);
    out.put_u32(position);
}

/// Append a time-index entry to `out`.
pub fn put_time_entry(out: &mut BytesMut, timestamp: i64, relative_offset: u32) {
    out.put_i64(timestamp);
    out.put_u32(relative_offset);
}

/// The `i`th offset-index entry: (relative offset, position).
pub fn offset_entry(index: &[u8], i: usize) -> Option<(u32, u32)> {
    let at = i.checked_mul(OFFSET_ENTRY)?;
    Some((read_u32(index, at)?, read_u32(index, at.checked_add(4)?)?))
}

/// The `i`th time-index entry: (timestamp, relative offset).
pub fn time_entry(index: &[u8], i: usize) -> Option<(i64, u32)> {
    let at = i.checked_mul(TIME_ENTRY)?;
    Some((read_i64(index, at)?, read_u32(index, at.checked_add(8)?)?))
}

/// Whole offset-index entries in `index`.
pub fn offset_entries(index: &[u8]) -> usize {
    index.len() / OFFSET_ENTRY
}

/// Whole time-index entries in `index`.
pub fn time_entries(index: &[u8]) -> usize {
    index.len() / TIME_ENTRY
}

/// The position of the largest offset-index entry whose relative offset is
/// at most `target`, or 0 when there is none: the batch holding `target`
/// starts there or later.
pub fn lookup_position(index: &[u8], target: u32) -> u32 {
    let n = offset_entries(index);
    // Entries are sorted by offset (checked at recovery), so the entries at
    // or below `target` are a prefix.
    let below = partition_point(n, |i| {
        offset_entry(index, i).is_some_and(|(off, _)| off <= target)
    });
    below
        .checked_sub(1)
        .and_then(|i| offset_entry(index, i))
        .map_or(0, |(_, pos)| pos)
}

/// The relative offset of the largest time-index entry whose timestamp is
/// strictly below `timestamp`: every record up to and including it is older
/// than `timestamp`, so the first record at or after `timestamp` is in the
/// batch holding it or later. `None` when there is no such entry (scan the
/// segment from the start).
pub fn lookup_time(index: &[u8], timestamp: i64) -> Option<u32> {
    let n = time_entries(index);
    let below = partition_point(n, |i| {
        time_entry(index, i).is_some_and(|(ts, _)| ts < timestamp)
    });
    below
        .checked_sub(1)
        .and_then(|i| time_entry(index, i))
        .map(|(_, off)| off)
}

/// The first `i` in `0..n` for which `pred` is false, `pred` being true on a
/// prefix (a binary search over entries that are not a slice of structs).
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Whether an offset index read off disk can be trusted for a segment whose
/// log holds `log_len` bytes and `offsets` offsets: whole entries, offsets
/// and positions strictly increasing, every entry inside the log.
pub fn offset_index_is_sane(index: &[u8], log_len: u64, offsets: u64) -> bool {
    if index.len() % OFFSET_ENTRY != 0 {
        return false;
    }
    let mut prev: Option<(u32, u32)> = None;
    for i in 0..offset_entries(index) {
        let Some((off, pos)) = offset_entry(index, i) else {
            return false;
        };
        if u64::from(off) >= offsets || u64::from(pos) >= log_len {
            return false;
        }
        if prev.is_some_and(|(po, pp)| off <= po || pos <= pp) {
            return false;
        }
        prev = Some((off, pos));
    }
    true
}

/// Whether a time index read off disk can be trusted for a segment holding
/// `offsets` offsets: whole entries, timestamps and offsets not decreasing,
/// every offset inside the segment.
pub fn time_index_is_sane(index: &[u8], offsets: u64) -> bool {
    if index.len() % TIME_ENTRY != 0 {
        return false;
    }
    let mut prev: Option<(i64, u32)> = None;
    for i in 0..time_entries(index) {
        let Some((ts, off)) = time_entry(index, i) else {
            return false;
        };
        if u64::from(off) >= offsets || prev.is_some_and(|(pt, po)| ts < pt || off < po) {
            return false;
        }
        prev = Some((ts, off));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[(u32, u32)]) -> Vec<u8> {
        let mut b = BytesMut::new();
        for &(o, p) in entries {
            put_offset_entry(&mut b, o, p);
        }
        b.to_vec()
    }

    #[test]
    fn offset_lookup_finds_largest_at_or_below() {
        let idx = offsets(&[(3, 100), (9, 400), (20, 900)]);
        assert_eq!(lookup_position(&idx, 0), 0);
        assert_eq!(lookup_position(&idx, 3), 100);
        assert_eq!(lookup_position(&idx, 8), 100);
        assert_eq!(lookup_position(&idx, 9), 400);
        assert_eq!(lookup_position(&idx, 1000), 900);
        assert_eq!(lookup_position(&[], 5), 0);
        // A torn tail entry is ignored, not misread.
        assert_eq!(lookup_position(&idx[..20], 1000), 400);
    }

    #[test]
    fn time_lookup_is_strictly_below() {
        let mut b = BytesMut::new();
        put_time_entry(&mut b, 10, 2);
        put_time_entry(&mut b, 20, 5);
        assert_eq!(lookup_time(&b, 10), None);
        assert_eq!(lookup_time(&b, 11), Some(2));
        assert_eq!(lookup_time(&b, 20), Some(2));
        assert_eq!(lookup_time(&b, 21), Some(5));
    }

    #[test]
    fn sanity_checks() {
        let idx = offsets(&[(3, 100), (9, 400)]);
        assert!(offset_index_is_sane(&idx, 500, 10));
        assert!(!offset_index_is_sane(&idx, 400, 10));
        assert!(!offset_index_is_sane(&idx, 500, 9));
        assert!(!offset_index_is_sane(&idx[..7], 500, 10));
        assert!(!offset_index_is_sane(
            &offsets(&[(3, 100), (3, 200)]),
            500,
            10
        ));
        let mut t = BytesMut::new();
        put_time_entry(&mut t, 10, 2);
        put_time_entry(&mut t, 9, 5);
        assert!(!time_index_is_sane(&t, 10));
        assert!(time_index_is_sane(&t[..12], 10));
        assert!(!time_index_is_sane(&t[..12], 2));
    }
}
