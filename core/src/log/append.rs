//! Appends to a partition's log: a client's batch (offsets assigned here,
//! the producer's sequence checked), a follower's copy of its leader's
//! batch (offsets as the leader gave them), and the producer-state
//! snapshots written beside the segments.

use bytes::Bytes;

use crate::config::TimestampType;
use crate::io::{Command, Ids, IoError};
use crate::time::Now;

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::epochs::LEADER_EPOCH_CHECKPOINT;
use super::partition::{PartitionLog, Pending, io_error, snapshot_path};
use super::producers::{Check, ProducerError, ProducerStates};

/// What an accepted append was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// The offset of the batch's first record.
    pub base_offset: u64,
    /// The offset of the batch's last record.
    pub last_offset: u64,
    /// The append time stamped on the batch when the topic uses
    /// `LogAppendTime`, else -1.
    pub log_append_time: i64,
}

/// What a client's batch came to ([`PartitionLog::append_client`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Appended now at these offsets.
    New(AppendInfo),
    /// A retry of an idempotent producer's batch that is already in the
    /// log: nothing was appended; these are the original offsets (and, as
    /// Kafka answers a duplicate, its stored timestamp as the append time).
    Duplicate(AppendInfo),
}

/// Why a client's batch was not appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendError {
    /// The partition is offline (or deleted).
    Storage(IoError),
    /// The producer's epoch or sequence does not fit its state.
    Producer(ProducerError),
}

impl PartitionLog {
    /// Append one client batch that passed [`super::batch::validate_client_batch`]
    /// (`header` is its parsed header). Assigns its offsets from the log end
    /// offset, patches the base offset (and partition leader epoch 0) in a
    /// new 16-byte prefix, restamps and re-checksums the header only for
    /// `LogAppendTime`, rolls first when the batch would overflow
    /// `segment.bytes`, the offset index is full or `segment.ms` passed, and
    /// emits the `Append` (and `WriteIndex` when an index entry is due).
    /// The record bytes are never copied. Fails with the partition's storage
    /// error when it is offline.
    ///
    /// A batch whose length disagrees with `header` (one that did not pass
    /// validation) is refused with `InvalidInput` and changes nothing.
    pub fn append(
        &mut self,
        now: Now,
        batch: Bytes,
        header: &BatchHeader,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Result<AppendInfo, IoError> {
        let (len32, delta) = self.writable(&batch, header)?;
        let base = self.log_end;
        let last = base.saturating_add(delta);
        let lat = self.config.timestamp_type == TimestampType::LogAppendTime;
        let (parts, max_ts) = if lat {
            // Validated batches are at least a header long.
            let stamp = (base, self.stamp_epoch);
            let Some(h) = batch::log_append_time_header(&batch, stamp, now.wall_ms) else {
                return Err(io_error(
                    std::io::ErrorKind::InvalidInput,
                    "batch shorter than its header",
                ));
            };
            (vec![h, batch.slice(HEADER_LEN..)], now.wall_ms)
        } else {
            let prefix = batch::offset_prefix(base, header.batch_length, self.stamp_epoch);
            (vec![prefix, batch.slice(16..)], header.max_timestamp)
        };
        let epoch = self.stamp_epoch;
        self.write_batch(
            now,
            parts,
            (header, epoch),
            (len32, base, last, max_ts),
            ids,
            out,
        )?;
        Ok(AppendInfo {
            base_offset: base,
            last_offset: last,
            log_append_time: if lat { now.wall_ms } else { -1 },
        })
    }

    /// Append a batch fetched from the partition's leader, as it came: its
    /// offsets, epoch and timestamps are the leader's, and it must start
    /// at this log's end (`InvalidInput` otherwise, changing nothing). The
    /// producer state follows it, as on the leader.
    pub fn append_replica(
        &mut self,
        now: Now,
        batch: Bytes,
        header: &BatchHeader,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Result<AppendInfo, IoError> {
        let (len32, delta) = self.writable(&batch, header)?;
        let base = self.log_end;
        if u64::try_from(header.base_offset).ok() != Some(base) {
            return Err(io_error(
                std::io::ErrorKind::InvalidInput,
                "a replicated batch does not start at the log end",
            ));
        }
        let last = base.saturating_add(delta);
        let max_ts = header.max_timestamp;
        self.write_batch(
            now,
            vec![batch],
            (header, header.partition_leader_epoch),
            (len32, base, last, max_ts),
            ids,
            out,
        )?;
        Ok(AppendInfo {
            base_offset: base,
            last_offset: last,
            log_append_time: -1,
        })
    }

    /// Whether a batch may be appended now: the log is online and the
    /// batch's length agrees with its header. Its length and offset delta.
    fn writable(&self, batch: &Bytes, header: &BatchHeader) -> Result<(u32, u64), IoError> {
        if let Some(e) = &self.offline {
            return Err(e.clone());
        }
        if self.deleted {
            return Err(io_error(std::io::ErrorKind::NotFound, "partition deleted"));
        }
        let len = batch.len();
        let Ok(delta) = u64::try_from(header.last_offset_delta) else {
            return Err(io_error(
                std::io::ErrorKind::InvalidInput,
                "negative offset delta",
            ));
        };
        let len32 = u32::try_from(len)
            .ok()
            .filter(|_| len >= HEADER_LEN && len as u64 == header.total_len());
        let Some(len32) = len32 else {
            return Err(io_error(
                std::io::ErrorKind::InvalidInput,
                "batch length disagrees with its header",
            ));
        };
        Ok((len32, delta))
    }

    /// Write a batch's `parts` at `base..=last`, stamped with leader epoch
    /// `epoch`: roll first when it would overflow `segment.bytes`, the
    /// offset index is full or `segment.ms` passed; emit the `Append` (and
    /// `WriteIndex` when an entry is due); move the log end, the producer
    /// state and the leader epochs now.
    fn write_batch(
        &mut self,
        now: Now,
        parts: Vec<Bytes>,
        (header, epoch): (&BatchHeader, i32),
        (len32, base, last, max_ts): (u32, u64, u64, i64),
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Result<(), IoError> {
        if self.active_expired(now.wall_ms)
            || self
                .segments
                .last()
                .is_some_and(|s| s.is_full_for(u64::from(len32), last, &self.config))
        {
            self.roll(ids, out);
        }
        let interval = self.config.index_interval_bytes;
        let Some(active) = self.segments.last_mut() else {
            return Err(io_error(
                std::io::ErrorKind::NotFound,
                "partition has no segment",
            ));
        };
        let seg = active.id;
        let entry = active.push(len32, last, max_ts, interval, now.wall_ms);
        let io = ids.io();
        self.emit(Command::Append { io, seg, parts }, Pending::Append, out);
        self.appends.push_back((io, last + 1, false));
        if let Some((offset_index, time_index)) = entry {
            let cmd = Command::WriteIndex {
                io: ids.io(),
                seg,
                offset_index,
                time_index,
            };
            self.emit(cmd, Pending::Index, out);
        }
        self.log_end = last + 1;
        // Offsets are assigned now, so the producer's state moves now: a
        // retry arriving before this append completes is a duplicate.
        self.producers.record(header, base, last, max_ts);
        if self.epochs.appended(epoch, base) {
            let cmd = Command::WriteFile {
                io: ids.io(),
                path: format!("{}/{LEADER_EPOCH_CHECKPOINT}", self.dir),
                bytes: self.epochs.encode(),
            };
            // Lost in a crash, the epochs start again at the next one.
            self.emit(cmd, Pending::Snapshot, out);
        }
        let delta = last - base;
        self.unflushed_messages = self.unflushed_messages.saturating_add(delta + 1);
        self.unflushed_since.get_or_insert(now.wall_ms);
        if i64::try_from(self.unflushed_messages).unwrap_or(i64::MAX) >= self.config.flush_messages
        {
            self.flush(ids, out);
        }
        Ok(())
    }

    /// Append a client's batch: [`PartitionLog::append`] after the checks of
    /// an idempotent producer's epoch and sequence (batches with a producer
    /// id). A retry of one of the producer's last five batches appends
    /// nothing and answers with the original offsets, as Kafka does.
    pub fn append_client(
        &mut self,
        now: Now,
        batch: Bytes,
        header: &BatchHeader,
        ids: &mut Ids,
        out: &mut Vec<Command>,
    ) -> Result<Appended, AppendError> {
        if let Some(e) = &self.offline {
            return Err(AppendError::Storage(e.clone()));
        }
        if header.producer_id >= 0 {
            match self.producers.check(header) {
                Ok(Check::Append) => {}
                Ok(Check::Duplicate(b)) => {
                    return Ok(Appended::Duplicate(AppendInfo {
                        base_offset: b.first_offset,
                        last_offset: b.last_offset,
                        log_append_time: b.timestamp,
                    }));
                }
                Err(e) => return Err(AppendError::Producer(e)),
            }
        }
        self.append(now, batch, header, ids, out)
            .map(Appended::New)
            .map_err(AppendError::Storage)
    }

    /// The idempotent producers' state.
    pub fn producers(&self) -> &ProducerStates {
        &self.producers
    }

    /// Forget producers whose latest batch is `expiration_ms` older than
    /// `now_ms` (`producer.id.expiration.ms`); returns how many.
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.expire(now_ms, expiration_ms)
    }

    /// Write the producer state as `<dir>/<log end, 20 digits>.snapshot`
    /// (at a roll and at clean shutdown, as Kafka does), keeping the
    /// previous snapshot and removing older ones. A restart loads the newest
    /// one at or below its log end and replays only the batches after it.
    pub fn write_producer_snapshot(&mut self, ids: &mut Ids, out: &mut Vec<Command>) {
        if self.offline.is_some() || self.deleted {
            return;
        }
        let offset = self.log_end;
        if self.snapshot_offsets.last() != Some(&offset) {
            self.snapshot_offsets.push(offset);
        }
        let cmd = Command::WriteFile {
            io: ids.io(),
            path: snapshot_path(&self.dir, offset),
            bytes: self.producers.encode(),
        };
        self.emit(cmd, Pending::Snapshot, out);
        while self.snapshot_offsets.len() > 2 {
            let old = self.snapshot_offsets.remove(0);
            let cmd = Command::RemoveFile {
                io: ids.io(),
                path: snapshot_path(&self.dir, old),
            };
            self.emit(cmd, Pending::Snapshot, out);
        }
    }
}
