//! The broker's life on disk: recovery at startup, the recovery-point and
//! log-start checkpoints (Kafka's formats), `partition.metadata` files with
//! topic ids, and clean shutdown with its marker.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;

use super::Broker;
use super::groups;
use super::logs::{Overrides, Topic, write_partition_metadata};
use super::out::Owner;
use super::producers::{PRODUCER_ID_BLOCK, Producers};
use crate::io::{Command, DiskPartition, DiskState};
use crate::layout;
use crate::log::CleanerLimits;
use crate::log::PartitionLog;
use crate::time::{Instant, Now};

/// Files at the top of the data directory the broker reads at startup.
pub const ROOT_FILES: &[&str] = &[
    RECOVERY_POINTS,
    LOG_STARTS,
    CLEANER_OFFSETS,
    CLEAN_SHUTDOWN,
    TOPIC_CONFIGS,
    BROKER_CONFIGS,
    PRODUCER_ID_BLOCK,
    crate::cluster::state::QUORUM_STATE,
];

const RECOVERY_POINTS: &str = "recovery-point-offset-checkpoint";
const LOG_STARTS: &str = "log-start-offset-checkpoint";
/// Per compacted partition, the offset below which it is cleaned.
const CLEANER_OFFSETS: &str = "cleaner-offset-checkpoint";
/// Written last at a clean shutdown, removed at startup: while it exists the
/// logs need no scan.
const CLEAN_SHUTDOWN: &str = ".kafka_cleanshutdown";
pub(super) const PARTITION_METADATA: &str = "partition.metadata";
/// The settings topics were created with (CreateTopics configs). Kafka keeps
/// them in its metadata log; a single broker keeps them beside its
/// checkpoints, one `topic key=value` line each.
pub(super) const TOPIC_CONFIGS: &str = "topic-configs";
/// Broker settings changed at run time (AlterConfigs on the broker), in the
/// topic settings file's shape under the names `cluster-default` and
/// `broker`.
pub(super) const BROKER_CONFIGS: &str = "broker-configs";
/// Kafka's `log.flush.offset.checkpoint.interval.ms` default.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// A file job of the broker's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileJob {
    /// A `partition.metadata` write.
    Metadata,
    /// A checkpoint write.
    Checkpoint,
    /// The clean-shutdown marker write.
    Marker,
    /// Removal of the previous run's marker.
    RemoveMarker,
    /// A producer id block reservation.
    ProducerIds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Waiting for every log's syncs.
    Flushing,
    /// Waiting for the checkpoint writes.
    Checkpointing,
    /// Waiting for the marker write.
    Marking,
    Stopped,
}

#[derive(Debug)]
pub(super) struct State {
    phase: Phase,
    next_checkpoint: Instant,
    next_retention: Instant,
    next_offsets_expiry: Instant,
    next_clean: Instant,
    checkpoints_in_flight: usize,
    /// Some log's recovery point moved since the last checkpoint.
    pub(super) recovery_points_changed: bool,
}

impl State {
    pub(super) fn new(now: Now, config: &crate::Config) -> Self {
        let ms = Duration::from_millis;
        Self {
            phase: Phase::Running,
            next_checkpoint: now.mono.saturating_add(CHECKPOINT_INTERVAL),
            next_retention: now
                .mono
                .saturating_add(ms(config.retention_check_interval_ms)),
            next_offsets_expiry: now
                .mono
                .saturating_add(ms(config.offsets_retention_check_interval_ms)),
            next_clean: now.mono.saturating_add(ms(config.cleaner_backoff_ms)),
            checkpoints_in_flight: 0,
            recovery_points_changed: false,
        }
    }

    pub(super) fn shutting_down(&self) -> bool {
        self.phase != Phase::Running
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        let next = self
            .next_checkpoint
            .min(self.next_retention)
            .min(self.next_offsets_expiry)
            .min(self.next_clean);
        (self.phase == Phase::Running).then_some(next)
    }
}

impl Broker {
    /// Begin a clean shutdown: stop answering requests, sync every log, write
    /// the checkpoints and the clean-shutdown marker. Keep draining `poll`
    /// and answering commands until [`Broker::is_stopped`].
    pub fn shutdown(&mut self, now: Now) {
        self.tick(now);
        if self.lifecycle.shutting_down() {
            return;
        }
        tracing::info!("clean shutdown: syncing logs");
        self.lifecycle.phase = Phase::Flushing;
        for conn in self.conns.ids() {
            self.conns.close(&mut self.io, conn);
        }
        self.peers.shutdown(&mut self.io);
        for key in self.logs.keys() {
            self.logs
                .run(&mut self.io, self.now, key, |log, _, ids, out| {
                    // A pass not yet swapping stops here (its cleaned files
                    // go); the next start cleans again.
                    log.stop_cleaning(ids, out);
                    log.flush(ids, out);
                    // So the next start loads producer state instead of
                    // replaying the log for it.
                    log.write_producer_snapshot(ids, out);
                });
        }
        self.lifecycle_progress();
    }

    /// Clean shutdown has finished: every log is synced and the marker is
    /// written. The driver may exit.
    pub fn is_stopped(&self) -> bool {
        self.lifecycle.phase == Phase::Stopped
    }

    /// Move the shutdown along once the current phase's work is answered.
    pub(super) fn lifecycle_progress(&mut self) {
        match self.lifecycle.phase {
            Phase::Flushing => {
                if self.io.logs_busy() {
                    return;
                }
                self.write_checkpoints();
                self.lifecycle.phase = Phase::Checkpointing;
                self.lifecycle_progress();
            }
            Phase::Checkpointing if self.lifecycle.checkpoints_in_flight == 0 => {
                // The marker says every log is synced and the next start
                // may trust them without a scan. Not so for a log that went
                // offline (its last sync may have failed, or never run):
                // like Kafka after a failed log directory, leave no marker,
                // and the next start recovers from the checkpoints.
                let offline = self.logs.iter().filter(|l| l.offline().is_some()).count();
                if offline > 0 {
                    tracing::warn!(
                        offline,
                        "partitions offline: no clean-shutdown marker, the next start recovers"
                    );
                    self.lifecycle.phase = Phase::Stopped;
                    return;
                }
                self.lifecycle.phase = Phase::Marking;
                self.io
                    .write_file(FileJob::Marker, CLEAN_SHUTDOWN, Bytes::new());
            }
            _ => {}
        }
    }

    /// Write the checkpoints now if none are in flight, else with the next
    /// periodic write.
    pub(super) fn checkpoint_soon(&mut self) {
        let st = &mut self.lifecycle;
        if st.phase == Phase::Running && st.checkpoints_in_flight == 0 {
            st.recovery_points_changed = false;
            self.write_checkpoints();
        } else {
            st.recovery_points_changed = true;
        }
    }

    pub(super) fn lifecycle_timeout(&mut self) {
        if self.lifecycle.phase == Phase::Running && self.now.mono >= self.lifecycle.next_retention
        {
            let interval = Duration::from_millis(self.config.retention_check_interval_ms);
            self.lifecycle.next_retention = self.now.mono.saturating_add(interval);
            let expiration_ms = self.config.producer_id_expiration_ms;
            for key in self.logs.keys() {
                let moved = self
                    .logs
                    .run(&mut self.io, self.now, key, |log, now, ids, out| {
                        log.expire_producers(now.wall_ms, expiration_ms);
                        log.enforce_retention(now, ids, out)
                    });
                if moved == Some(true) {
                    self.lifecycle.recovery_points_changed = true;
                }
            }
        }
        if self.lifecycle.phase == Phase::Running
            && self.now.mono >= self.lifecycle.next_offsets_expiry
        {
            let interval = Duration::from_millis(self.config.offsets_retention_check_interval_ms);
            self.lifecycle.next_offsets_expiry = self.now.mono.saturating_add(interval);
            let (mut cx, _) = self.parts();
            groups::expire_offsets(&mut cx);
        }
        if self.lifecycle.phase == Phase::Running && self.now.mono >= self.lifecycle.next_clean {
            let interval = Duration::from_millis(self.config.cleaner_backoff_ms);
            self.lifecycle.next_clean = self.now.mono.saturating_add(interval);
            if self.config.cleaner_enable {
                self.start_cleaning();
            }
        }
        let st = &mut self.lifecycle;
        if st.phase != Phase::Running || self.now.mono < st.next_checkpoint {
            return;
        }
        st.next_checkpoint = self.now.mono.saturating_add(CHECKPOINT_INTERVAL);
        if st.recovery_points_changed && st.checkpoints_in_flight == 0 {
            st.recovery_points_changed = false;
            self.write_checkpoints();
        }
    }

    /// Start a cleaning pass on every compacted log that is due.
    fn start_cleaning(&mut self) {
        let limits = CleanerLimits {
            dedupe_buffer_bytes: self.config.cleaner_dedupe_buffer_bytes,
            decompression_max_bytes: self.config.decompression_max_bytes,
            io_max_bytes_per_second: self.config.cleaner_io_max_bytes_per_second,
        };
        for key in self.logs.keys() {
            self.logs
                .run(&mut self.io, self.now, key, |log, now, ids, out| {
                    log.start_cleaning(now, limits, ids, out)
                });
            self.logs.note_cleaner(key);
        }
    }

    pub(super) fn file_done(
        &mut self,
        job: FileJob,
        result: Result<crate::io::Completion, crate::io::IoError>,
    ) {
        if let Err(e) = &result {
            // The marker and checkpoints only speed up the next start; a
            // failure means a longer recovery, not lost data.
            tracing::error!(?job, error = %e, "writing broker file failed");
        }
        match job {
            FileJob::Checkpoint => {
                self.lifecycle.checkpoints_in_flight -= 1;
                self.lifecycle_progress();
            }
            FileJob::Marker => {
                if result.is_ok() {
                    tracing::info!("clean shutdown complete");
                }
                self.lifecycle.phase = Phase::Stopped;
            }
            FileJob::ProducerIds => {
                let answers = self.producers.written(&mut self.io, result.map(|_| ()));
                for (conn, seq, frame) in answers {
                    self.fill(conn, seq, frame);
                }
            }
            FileJob::Metadata | FileJob::RemoveMarker => {}
        }
    }

    /// Write both checkpoint files from the logs' current state.
    pub(super) fn write_checkpoints(&mut self) {
        let mut points = Vec::new();
        let mut starts = Vec::new();
        let mut cleaned = Vec::new();
        for (name, topic) in self.logs.topics() {
            for (p, key) in topic.hosted() {
                let p = p as usize;
                if let Some(log) = self.logs.get(key) {
                    points.push((name.as_str(), p, log.recovery_point()));
                    starts.push((name.as_str(), p, log.log_start_offset()));
                    if log.first_dirty_offset() > log.log_start_offset() {
                        cleaned.push((name.as_str(), p, log.first_dirty_offset()));
                    }
                }
            }
        }
        let points = encode_checkpoint(&points);
        let starts = encode_checkpoint(&starts);
        let cleaned = encode_checkpoint(&cleaned);
        self.lifecycle.checkpoints_in_flight += 3;
        self.io
            .write_file(FileJob::Checkpoint, RECOVERY_POINTS, points);
        self.io.write_file(FileJob::Checkpoint, LOG_STARTS, starts);
        self.io
            .write_file(FileJob::Checkpoint, CLEANER_OFFSETS, cleaned);
    }

    /// Rebuild topics and logs from what the driver read off disk.
    pub(super) fn recover(&mut self, disk: DiskState) {
        let root: HashMap<String, Bytes> = disk.root_files.into_iter().collect();
        let clean = root.contains_key(CLEAN_SHUTDOWN);
        let points = root
            .get(RECOVERY_POINTS)
            .map(|b| parse_checkpoint(b))
            .unwrap_or_default();
        let starts = root
            .get(LOG_STARTS)
            .map(|b| parse_checkpoint(b))
            .unwrap_or_default();
        let cleaned = root
            .get(CLEANER_OFFSETS)
            .map(|b| parse_checkpoint(b))
            .unwrap_or_default();
        self.producers = Producers::load(root.get(PRODUCER_ID_BLOCK).map(|b| &b[..]));
        self.logs.load_dynamic(
            root.get(BROKER_CONFIGS)
                .map(|b| parse_topic_configs(b))
                .unwrap_or_default(),
        );
        self.logs.load_overrides(
            root.get(TOPIC_CONFIGS)
                .map(|b| parse_topic_configs(b))
                .unwrap_or_default(),
        );
        let mut by_topic: BTreeMap<String, BTreeMap<i32, DiskPartition>> = BTreeMap::new();
        for part in disk.partitions {
            match layout::parse_partition_dir(&part.dir) {
                Some((topic, p)) if super::valid_topic_name(topic) => {
                    by_topic
                        .entry(topic.to_owned())
                        .or_default()
                        .insert(p, part);
                }
                _ => {
                    tracing::warn!(dir = %part.dir, "ignoring a directory that is not <topic>-<partition>")
                }
            }
        }
        let total = by_topic
            .values()
            .map(|p| p.keys().next_back().map_or(0, |&n| n as usize + 1))
            .sum::<usize>();
        let total_bytes: u64 = by_topic
            .values()
            .flat_map(|p| p.values())
            .flat_map(|p| &p.segments)
            .map(|s| (*s.views.log).as_ref().len() as u64)
            .sum();
        tracing::info!(
            clean,
            topics = by_topic.len(),
            partitions = total,
            bytes = total_bytes,
            "recovering logs"
        );
        let mut done = 0usize;
        let clustered = self.quorum.is_some();
        for (name, mut parts) in by_topic {
            let count = parts.keys().next_back().map_or(0, |&p| p + 1);
            let known_id = parts
                .values()
                .find_map(|p| p.metadata.as_deref().and_then(parse_partition_metadata));
            // A crash can lose an unsynced `partition.metadata`; in a
            // cluster the image still knows the topic's id.
            let id = known_id
                .or_else(|| {
                    let q = self.quorum.as_ref()?;
                    Some(q.image().topics.get(&name)?.id)
                })
                .unwrap_or_else(|| {
                    self.logs.mark_unknown_id(&name);
                    topic_id(&name, self.now, 0)
                });
            let mut keys = Vec::new();
            for p in 0..count {
                let dir = layout::partition_dir(&name, p);
                let key = self.logs.keys().end;
                let overrides = self.logs.overrides_of(&name);
                let config = self.logs.topic_config(&name, &overrides);
                let io = &mut self.io;
                let log = match parts.remove(&p) {
                    Some(mut found) => {
                        let had_metadata = found.metadata.is_some();
                        if name == super::group_log::OFFSETS_TOPIC {
                            // Committed offsets and group metadata load
                            // before any request is served, so there is no
                            // window of COORDINATOR_LOAD_IN_PROGRESS.
                            // In a cluster they wait for the high
                            // watermark, as copied ones do.
                            found.segments.sort_by_key(|s| s.base_offset);
                            let mut batches = Vec::new();
                            for seg in &found.segments {
                                let log = (*seg.views.log).as_ref();
                                if !super::group_log::replay_batches(log, &mut batches) {
                                    break;
                                }
                            }
                            if clustered {
                                self.groups.recovered(key, batches);
                            } else {
                                let entries = batches.into_iter().flat_map(|(_, e)| e);
                                self.groups.replay(entries.collect());
                            }
                        }
                        let at = (name.clone(), p);
                        let recovered = io.emit_from(
                            || Owner::Log(key),
                            |ids, out| {
                                PartitionLog::recover_partition(
                                    config,
                                    found,
                                    points.get(&at).copied(),
                                    starts.get(&at).copied(),
                                    clean,
                                    ids,
                                    out,
                                )
                            },
                        );
                        done += 1;
                        // Progress, one line a partition: a large log's
                        // recovery shows how far it is.
                        tracing::info!(
                            %dir,
                            progress = %format!("{done}/{total}"),
                            segments = recovered.log.segment_count(),
                            bytes = recovered.log.size_bytes(),
                            scanned_bytes = recovered.scanned_bytes,
                            log_end_offset = recovered.log.log_end_offset(),
                            "recovered a partition"
                        );
                        if recovered.truncated_bytes > 0 {
                            tracing::warn!(
                                %dir,
                                bytes = recovered.truncated_bytes,
                                "truncated a torn or corrupt log tail"
                            );
                        }
                        if !had_metadata || known_id.is_none() {
                            write_partition_metadata(io, &dir, id);
                        }
                        let mut log = recovered.log;
                        // Entries read past a torn tail recovery cut.
                        self.groups.truncated(key, log.log_end_offset());
                        if let Some(&o) = cleaned.get(&at) {
                            log.set_first_dirty_offset(o.min(log.log_end_offset()));
                        }
                        log
                    }
                    // In a cluster a broker holds only the partitions it
                    // is a replica of; the image says which are missing.
                    None if clustered => {
                        keys.push(None);
                        continue;
                    }
                    None => {
                        done += 1;
                        tracing::warn!(%dir, "partition directory missing; creating it empty");
                        write_partition_metadata(io, &dir, id);
                        io.emit_from(
                            || Owner::Log(key),
                            |ids, out| PartitionLog::create(dir, config, 0, ids, out),
                        )
                    }
                };
                let pushed = self.logs.push_recovered(log);
                debug_assert_eq!(pushed, key);
                keys.push(Some(key));
            }
            let topic = Topic {
                id,
                partitions: keys,
            };
            self.logs.insert_topic(name, topic);
        }
        self.groups.finish_replay(self.now.mono, clustered);
        if clean {
            // From now on a crash must trigger a scan again.
            let io = self.io.next_io();
            let cmd = Command::RemoveFile {
                io,
                path: CLEAN_SHUTDOWN.to_owned(),
            };
            self.io.emit(cmd, Owner::File(FileJob::RemoveMarker));
        }
    }
}

/// Kafka's checkpoint format: version 0, the entry count, then one
/// `topic partition offset` line per partition.
fn encode_checkpoint(entries: &[(&str, usize, u64)]) -> Bytes {
    let mut s = format!("0\n{}\n", entries.len());
    for (topic, p, offset) in entries {
        s.push_str(&format!("{topic} {p} {offset}\n"));
    }
    Bytes::from(s)
}

/// Parse a checkpoint; a damaged file yields what parsed before the damage
/// (recovery then scans more, which is always safe).
fn parse_checkpoint(bytes: &[u8]) -> HashMap<(String, i32), u64> {
    let mut out = HashMap::new();
    for line in versioned_lines(bytes) {
        let mut it = line.split(' ');
        let (Some(t), Some(p), Some(o), None) = (it.next(), it.next(), it.next(), it.next()) else {
            break;
        };
        let (Ok(p), Ok(o)) = (p.parse(), o.parse()) else {
            break;
        };
        out.insert((t.to_owned(), p), o);
    }
    out
}

/// Parse the topic settings file: version 0, a count, then `topic key=value`
/// lines. A damaged file yields what parsed before the damage.
/// The topic settings file: format version 0, the line count, then one
/// `topic key=value` line each.
pub(super) fn encode_topic_configs(overrides: &BTreeMap<String, Overrides>) -> Bytes {
    let mut lines = Vec::new();
    for (topic, overrides) in overrides {
        for (key, value) in overrides {
            lines.push(format!("{topic} {key}={value}"));
        }
    }
    let content = format!("0\n{}\n{}", lines.len(), lines.join("\n"));
    Bytes::from(content + "\n")
}

/// Kafka's `partition.metadata`: version 0 and the topic id.
pub(super) fn encode_partition_metadata(id: uuid::Uuid) -> Bytes {
    Bytes::from(format!("version: 0\ntopic_id: {}\n", kafka_uuid(id)))
}

fn parse_topic_configs(bytes: &[u8]) -> BTreeMap<String, Overrides> {
    let mut out: BTreeMap<String, Overrides> = BTreeMap::new();
    for line in versioned_lines(bytes) {
        let Some((topic, kv)) = line.split_once(' ') else {
            break;
        };
        let Some((key, value)) = kv.split_once('=') else {
            break;
        };
        out.entry(topic.to_owned())
            .or_default()
            .push((key.to_owned(), value.to_owned()));
    }
    out
}

/// The entry lines of a file in Kafka's checkpoint shape: `0` (the
/// version), the entry count, then that many lines. Nothing for a file of
/// another version or shape.
fn versioned_lines(bytes: &[u8]) -> impl Iterator<Item = &str> {
    let mut lines = std::str::from_utf8(bytes).unwrap_or("").lines();
    let count = match (lines.next(), lines.next().map(str::parse::<usize>)) {
        (Some("0"), Some(Ok(n))) => n,
        _ => 0,
    };
    lines.take(count)
}

/// A new topic id: a hash of the name, the time and a counter, shaped as a
/// version-4 UUID. The core has no randomness source; ids need only be
/// unique on this broker.
pub(crate) fn topic_id(name: &str, now: Now, salt: u64) -> uuid::Uuid {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut state = h ^ (now.wall_ms as u64).rotate_left(17) ^ now.mono.as_nanos() ^ salt;
    let mut next = || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let bytes = (u128::from(next()) << 64 | u128::from(next())).to_be_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Kafka prints a topic id as URL-safe base64 without padding (22 chars).
fn kafka_uuid(id: uuid::Uuid) -> String {
    let mut out = String::with_capacity(22);
    for chunk in id.as_bytes().chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, group[0], group[1], group[2]]);
        // 3 bytes make 4 characters; a final single byte makes 2.
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn parse_kafka_uuid(s: &str) -> Option<uuid::Uuid> {
    if s.len() != 22 {
        return None;
    }
    let mut bytes = Vec::with_capacity(16);
    for chunk in s.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let d = B64.iter().position(|b| b == c)? as u32;
            n |= d << (18 - 6 * i);
        }
        let full = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        bytes.extend_from_slice(&full[..chunk.len() - 1]);
    }
    Some(uuid::Uuid::from_bytes(bytes.try_into().ok()?))
}

/// The topic id in a `partition.metadata` file.
fn parse_partition_metadata(bytes: &[u8]) -> Option<uuid::Uuid> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "version: 0" {
        return None;
    }
    parse_kafka_uuid(lines.next()?.strip_prefix("topic_id: ")?.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trip() {
        let b = encode_checkpoint(&[("a-b", 0, 10), ("c", 3, 0)]);
        assert_eq!(&b[..], b"0\n2\na-b 0 10\nc 3 0\n");
        let m = parse_checkpoint(&b);
        assert_eq!(m[&("a-b".to_owned(), 0)], 10);
        assert_eq!(m.len(), 2);
        assert!(parse_checkpoint(b"1\n1\nx 0 1\n").is_empty());
    }

    #[test]
    fn topic_configs_parse() {
        let m = parse_topic_configs(b"0\n2\nt retention.ms=5\nt cleanup.policy=compact,delete\n");
        assert_eq!(m["t"].len(), 2);
        assert_eq!(
            m["t"][1],
            ("cleanup.policy".to_owned(), "compact,delete".to_owned())
        );
        assert!(parse_topic_configs(b"1\n1\nt a=b\n").is_empty());
    }

    #[test]
    fn uuid_text_round_trip() {
        let id = topic_id("orders", Now::default(), 1);
        let s = kafka_uuid(id);
        assert_eq!(s.len(), 22);
        assert_eq!(parse_kafka_uuid(&s), Some(id));
        let meta = format!("version: 0\ntopic_id: {s}\n");
        assert_eq!(parse_partition_metadata(meta.as_bytes()), Some(id));
        assert_ne!(topic_id("orders", Now::default(), 2), id);
    }
}
