//! The world's own connections (topic setup, reading partitions back) and
//! the end of a broker's life: power loss, a killed process, a clean
//! shutdown, the restart over what the disk kept, and the recovery check.

use std::collections::BTreeMap;

use bytes::Bytes;
use conveyor_core::{Broker, ConnId};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::super::model::Pk;
use super::super::sched::Sched;
use super::super::wire::{self, ReadBack};
use super::{Check, End, Planted, World};

impl World {
    /// One request on a connection the simulator reads itself; every
    /// command runs until the answer is there.
    fn call(&mut self, conn: ConnId, frame: &[u8]) -> Result<Bytes, String> {
        if let Some(c) = self.clients.get_mut(&conn) {
            c.write(frame, None);
        }
        for _ in 0..10 {
            self.deliver(conn, true)?;
            self.settle()?;
            let c = self.clients.get_mut(&conn).ok_or("the checker vanished")?;
            if let Some(f) = wire::cut_frame(&mut c.wire)? {
                return Ok(f);
            }
        }
        Err(format!("no answer on {conn:?}"))
    }

    fn raw_conn(&mut self) -> Result<ConnId, String> {
        let conn = self.open()?;
        self.raw.push(conn);
        Ok(conn)
    }

    fn close_raw(&mut self, conn: ConnId) -> Check {
        self.raw.retain(|&c| c != conn);
        self.disconnect(conn)?;
        self.clients.remove(&conn);
        Ok(())
    }

    pub(super) fn create_topics(&mut self) -> Check {
        let conn = self.raw_conn()?;
        let config = |k: &str, v: String| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.into()))
                .with_value(Some(StrBytes::from_string(v)))
        };
        let mut topics = Vec::new();
        for t in self.model.topics.clone() {
            // Small segments and a dense index, so rolls, maps and index
            // writes happen within a few hundred steps.
            let mut configs = vec![
                config("segment.bytes", self.rng.range(300, 3000).to_string()),
                config("index.interval.bytes", self.rng.range(64, 1024).to_string()),
            ];
            if t.durable {
                configs.push(config("flush.messages", "1".into()));
            }
            if let Some(c) = t.compact {
                // Segments of 0.5-2 KiB roll every few produces, and any
                // dirty share starts a pass.
                configs[0] = config("segment.bytes", self.rng.range(512, 2048).to_string());
                let ratio = ["0.01", "0.1", "0.3"][self.rng.index(3)];
                configs.extend([
                    config("cleanup.policy", "compact".into()),
                    config("min.cleanable.dirty.ratio", ratio.into()),
                    config("delete.retention.ms", c.delete_retention_ms.to_string()),
                ]);
            }
            topics.push(
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_num_partitions(t.partitions)
                    .with_replication_factor(1)
                    .with_configs(configs),
            );
        }
        let req = CreateTopicsRequest::default().with_topics(topics);
        let frame = wire::frame(ApiKey::CreateTopics, 7, 0, &req);
        let answer = self.call(conn, &frame)?;
        let (_, r) = wire::decode::<CreateTopicsResponse>(answer, ApiKey::CreateTopics, 7)?;
        for t in &r.topics {
            if t.error_code != 0 {
                return Err(format!("creating {:?}: error {}", t.name, t.error_code));
            }
        }
        self.close_raw(conn)
    }

    /// Read a whole partition back through Fetch: (high watermark, records).
    fn read_partition(&mut self, conn: ConnId, pk: Pk) -> Result<(u64, Vec<ReadBack>), String> {
        let name = self.model.name(pk);
        let topic = TopicName(StrBytes::from_string(
            self.model.topics[pk.topic].name.clone(),
        ));
        let mut records: Vec<ReadBack> = Vec::new();
        let mut offset = 0u64;
        loop {
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(topic.clone())
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(pk.partition)
                                .with_fetch_offset(offset as i64)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ]);
            let corr = self.next_corr;
            self.next_corr += 1;
            let answer = self.call(conn, &wire::frame(ApiKey::Fetch, 12, corr, &req))?;
            let (_, r) = wire::decode::<FetchResponse>(answer, ApiKey::Fetch, 12)?;
            let p = r
                .responses
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or_else(|| format!("after the restart a fetch of {name} has no answer"))?;
            if p.error_code != 0 {
                return Err(format!(
                    "after the restart {name} answers error {} to a fetch at {offset}",
                    p.error_code
                ));
            }
            let hw = u64::try_from(p.high_watermark)
                .map_err(|_| format!("{name}: high watermark {}", p.high_watermark))?;
            let got = match &p.records {
                Some(b) if !b.is_empty() => wire::read_records(b)
                    .map_err(|e| format!("after the restart, {name} at {offset}: {e}"))?,
                _ => Vec::new(),
            };
            let new: Vec<ReadBack> = got.into_iter().filter(|r| r.offset >= offset).collect();
            // A cleaned batch may hold no records: step over it by its
            // header.
            let batch_end = p
                .records
                .as_ref()
                .and_then(|b| wire::batch_last_offsets(b).last().copied());
            // Nothing more below the high watermark: the rest is a hole
            // where unsynced data was lost (what had to survive is checked
            // against what was found).
            let Some(last) = new
                .last()
                .map(|r| r.offset)
                .max(batch_end.filter(|&e| e >= offset))
            else {
                return Ok((hw, records));
            };
            offset = last + 1;
            records.extend(new);
            if offset >= hw {
                return Ok((hw, records));
            }
        }
    }

    // ---- the end of a life -------------------------------------------------

    /// What the disk holds now must survive recovery: all of it after a
    /// kill, the synced part (all that is left) after a power loss.
    fn learn_disk(&mut self, end: End) -> Check {
        if end == End::PowerLoss {
            self.model.power_lost();
        }
        for path in self.disk.paths() {
            let Some((dir, name)) = path.split_once('/') else {
                continue;
            };
            let Some(pk) = self.model.pk_of_dir(dir) else {
                continue;
            };
            if !name.ends_with(".log") {
                continue;
            }
            let data = Bytes::copy_from_slice(self.disk.file(&path).unwrap_or_default());
            let records = wire::read_records(&data)
                .map_err(|e| format!("the bytes on disk in {path} do not parse: {e}"))?;
            for r in records {
                self.model
                    .on_disk(pk, r.offset, r.rid, end == End::PowerLoss)?;
            }
        }
        Ok(())
    }

    pub(super) fn end_life(&mut self, end: End) -> Check {
        self.die(end)?;
        // Now and then the next life dies too, in the middle of recovery.
        if self.rng.chance(1, 4) {
            for _ in 0..self.rng.below(12) {
                self.exec_one()?;
            }
            let end = if self.rng.chance(1, 2) {
                End::PowerLoss
            } else {
                End::Kill
            };
            self.die(end)?;
        }
        self.check_recovery()
    }

    /// The broker dies; a new one starts over what the disk kept.
    fn die(&mut self, end: End) -> Check {
        self.log(|| format!("{end:?}"));
        match end {
            End::PowerLoss => {
                self.stats.power_losses += 1;
                self.disk.crash();
            }
            End::Kill => {
                self.stats.kills += 1;
                self.disk.restart();
            }
        }
        self.learn_disk(end)?;
        self.new_life()
    }

    pub(super) fn clean_restart(&mut self) -> Check {
        self.log(|| "clean shutdown".into());
        self.stats.clean_restarts += 1;
        self.shutting_down = true;
        // A fault during the shutdown leaves a partition offline when the
        // marker is written: the same known bug.
        let inject = self.inject;
        self.inject &= self.opts.clean_shutdown_when_offline;
        self.input(|b, now| b.shutdown(now))?;
        self.settle()?;
        self.inject = inject;
        if !self.broker.is_stopped() {
            return Err("a clean shutdown never finished".into());
        }
        // A clean shutdown stops every pass: a cleaned segment not swapped
        // in is discarded, one swapping finishes. Only a partition taken
        // offline may leave one (the next start removes it).
        let offline = self
            .model
            .pks()
            .into_iter()
            .any(|pk| self.model.is_failed(pk));
        if let Some(p) = self.disk.paths().iter().find(|p| p.ends_with(".cleaned")) {
            if !offline {
                return Err(format!("{p} is left after a clean shutdown"));
            }
        }
        self.model.shut_down_cleanly();
        self.disk.restart();
        self.new_life()?;
        self.check_recovery()
    }

    fn new_sched(&self) -> Sched {
        Sched::new(
            self.opts.no_holes,
            self.opts.planted == Planted::SwappedAppends,
        )
    }

    /// A new broker over the disk; every old connection is gone.
    fn new_life(&mut self) -> Check {
        self.clients.clear();
        self.raw.clear();
        self.failed_cleaned.clear();
        self.shutting_down = false;
        self.sched = self.new_sched();
        self.model.new_life();
        self.broker = Broker::new(self.config.clone(), self.now, self.disk.disk_state());
        self.deadline = None;
        self.drain()
    }

    /// Recovery runs to the end; then every partition is read back whole
    /// and must hold every record that had to survive.
    fn check_recovery(&mut self) -> Check {
        let inject = std::mem::replace(&mut self.inject, false);
        self.settle()?;
        let conn = self.raw_conn()?;
        let mut logs = BTreeMap::new();
        for pk in self.model.pks() {
            let log = self.read_partition(conn, pk)?;
            logs.insert(pk, log);
        }
        self.close_raw(conn)?;
        self.model.restarted(logs)?;
        self.inject = inject;
        Ok(())
    }
}
