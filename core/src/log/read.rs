//! Reads of a partition log: fetches (byte ranges of whole batches below
//! the high watermark), lookups by time, and the pins that keep a segment's
//! files while a send or read names them; and the settings of a live log,
//! changed at run time (AlterConfigs).

use crate::config::TopicConfig;
use crate::io::SegId;

use super::partition::{PartitionLog, ReadError, ReadSlice, TimeHit};

impl PartitionLog {
    /// Bytes readable from `offset`: whole batches from the one holding
    /// `offset`, within one segment, adding batches while the total stays
    /// within `max_bytes` — but the first batch always, even when larger
    /// (Kafka's KIP-74 rule, so a consumer always progresses). `Ok(None)`
    /// when `offset` is at or past the high watermark (and not past the log
    /// end); `OffsetOutOfRange` below the log start or past the log end.
    pub fn read(&self, offset: u64, max_bytes: u64) -> Result<Option<ReadSlice>, ReadError> {
        self.read_below(offset, max_bytes, self.hwm)
    }

    /// [`PartitionLog::read`] up to `end` rather than the high watermark.
    fn read_below(
        &self,
        offset: u64,
        max_bytes: u64,
        end: u64,
    ) -> Result<Option<ReadSlice>, ReadError> {
        if offset < self.log_start || offset > self.log_end {
            return Err(ReadError::OffsetOutOfRange);
        }
        if offset >= end {
            return Ok(None);
        }
        // The first segment that ends past `offset` holds it; when `offset`
        // is the end of a sealed segment that is the next one.
        let first = self.segments.partition_point(|s| s.end <= offset);
        for s in self.segments.get(first..).unwrap_or_default() {
            if let Some((pos, len)) = s.read(offset, end, max_bytes) {
                return Ok(Some(ReadSlice {
                    seg: s.id,
                    pos,
                    len,
                }));
            }
        }
        Ok(None)
    }

    /// Like [`PartitionLog::read`], but running on into the following
    /// segments while the budget allows: whole batches from the one holding
    /// `offset` (the first always, KIP-74), then, each time a segment's
    /// visible batches are all taken, the next segment's from its start,
    /// while the total stays within `max_bytes`. A log of many small
    /// segments (a compacted one's) is read in one response, not one
    /// segment per fetch.
    pub fn read_regions(&self, offset: u64, max_bytes: u64) -> Result<Vec<ReadSlice>, ReadError> {
        self.regions_below(offset, max_bytes, self.hwm)
    }

    /// [`PartitionLog::read_regions`] up to the written end rather than the
    /// high watermark: what a follower replica is served, as Kafka serves
    /// followers up to the log end.
    pub fn read_regions_for_replica(
        &self,
        offset: u64,
        max_bytes: u64,
    ) -> Result<Vec<ReadSlice>, ReadError> {
        self.regions_below(offset, max_bytes, self.written)
    }

    fn regions_below(
        &self,
        offset: u64,
        max_bytes: u64,
        end: u64,
    ) -> Result<Vec<ReadSlice>, ReadError> {
        let Some(first) = self.read_below(offset, max_bytes, end)? else {
            return Ok(Vec::new());
        };
        let mut total = first.len;
        let mut out = vec![first];
        let mut i = self.segments.partition_point(|s| s.end <= offset);
        while let Some(s) = self.segments.get(i) {
            let last = out.last().copied().unwrap_or(first);
            // All of this segment is below the high watermark and was
            // taken, and the budget has room.
            if s.end >= end || total >= max_bytes {
                break;
            }
            let whole = s.id == last.seg && last.pos + last.len >= s.size;
            if !whole {
                break;
            }
            let Some(next) = self.segments.get(i + 1) else {
                break;
            };
            match next.read(next.base, end, max_bytes - total) {
                Some((pos, len)) if len <= max_bytes - total && len > 0 => {
                    total += len;
                    out.push(ReadSlice {
                        seg: next.id,
                        pos,
                        len,
                    });
                }
                _ => break,
            }
            i += 1;
        }
        Ok(out)
    }

    /// Bytes visible from `offset` to the high watermark (for `min_bytes`):
    /// an estimate that is exact at batch boundaries.
    pub fn visible_bytes_from(&self, offset: u64) -> u64 {
        if offset >= self.hwm {
            return 0;
        }
        let first = self.segments.partition_point(|s| s.end <= offset);
        let mut total: u64 = 0;
        for s in self.segments.get(first..).unwrap_or_default() {
            total = total.saturating_add(s.visible_bytes(offset, self.hwm));
            if s.end >= self.hwm {
                break;
            }
        }
        total
    }

    /// The first offset whose batch's max timestamp is at least `timestamp`,
    /// with that timestamp, searched through the time indexes (ListOffsets
    /// by time). `None` when every record is older.
    ///
    /// In a mapped (sealed) segment an uncompressed `CreateTime` batch is
    /// walked to the exact first record at or after `timestamp`; otherwise
    /// the answer is the batch's first offset and its max timestamp.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Option<(u64, i64)> {
        let s = self.segments.iter().find(|s| s.max_ts >= timestamp)?;
        s.offset_for_timestamp(timestamp, self.hwm)
            .map(|(off, ts)| (off.max(self.log_start), ts))
    }

    /// The largest record timestamp in the log, if any record has one.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.segments
            .iter()
            .map(|s| s.max_ts)
            .filter(|&t| t >= 0)
            .max()
    }

    /// The first visible batch whose largest timestamp is at least
    /// `timestamp` (ListOffsets by time): the broker reads it to find the
    /// exact record, which needs the record bytes (and, compressed, a
    /// decompression) the log never holds.
    pub fn batch_for_timestamp(&self, timestamp: i64) -> Option<TimeHit> {
        let s = self.segments.iter().find(|s| s.max_ts >= timestamp)?;
        let f = s.batch_for_timestamp(timestamp, self.hwm)?;
        Some(TimeHit {
            slice: ReadSlice {
                seg: s.id,
                pos: f.pos,
                len: f.len,
            },
            base_offset: f.base.max(self.log_start),
            max_timestamp: f.max_ts,
        })
    }

    /// Keep `seg`'s files while a `Send` naming it is in flight.
    pub fn pin(&mut self, seg: SegId) {
        if let Some(i) = self.segment_index(seg) {
            self.segments[i].pins += 1;
        }
    }

    /// Release one [`PartitionLog::pin`].
    pub fn unpin(&mut self, seg: SegId) {
        if let Some(i) = self.segment_index(seg) {
            let s = &mut self.segments[i];
            s.pins = s.pins.saturating_sub(1);
        }
    }

    /// Whether `seg` is pinned by an in-flight `Send`.
    pub fn is_pinned(&self, seg: SegId) -> bool {
        self.segment_index(seg)
            .is_some_and(|i| self.segments[i].pins > 0)
    }

    /// Change the topic's settings on the live log: the next append, roll,
    /// sync and retention check follow them.
    pub fn set_config(&mut self, config: TopicConfig) {
        self.config = config;
    }
}
