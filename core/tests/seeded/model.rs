//! What the clients have learnt about each partition, and the invariants
//! every answer must keep. A "life" is one broker instance: a crash or a
//! restart ends it, and what the clients knew is cut back to what must
//! survive.
//!
//! On a compacted topic (`cleanup.policy=compact`) a record the model knows
//! may later be missing, from a fetch or after a restart, only where the
//! cleaner may remove it (`Model::may_be_compacted`): a record of its key
//! is in the log at a higher offset, or it is a tombstone older than
//! `delete.retention.ms`. So the latest record of a key that had to survive
//! survives; offsets still never move nor are reused, and fetches still
//! return increasing offsets.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::wire::{ReadBack, Shape};

/// A partition: index into the topic table, partition number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pk {
    pub topic: usize,
    pub partition: i32,
}

#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// `flush.messages=1`: acks=-1 means synced.
    pub durable: bool,
    /// `cleanup.policy=compact`, and how.
    pub compact: Option<Compact>,
}

/// A compacted topic's records: keys from a small space, some tombstones.
#[derive(Debug, Clone, Copy)]
pub struct Compact {
    /// Keys are `0..keys`.
    pub keys: u32,
    /// One record in this many is a tombstone.
    pub tombstone_one_in: u64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
}

/// A record the simulator produced (the index is its id).
#[derive(Debug)]
struct Produced {
    pk: Pk,
    life: u32,
    timestamp: i64,
    shape: Shape,
}

/// One partition as the clients know it.
#[derive(Debug, Default)]
pub struct PartModel {
    /// Offset → record, learnt this life from acknowledgements and fetches.
    facts: BTreeMap<u64, u64>,
    /// Offset → record that must be there after any restart, power losses
    /// included: acknowledged as synced, found on the disk after a power
    /// loss (so synced), or acknowledged before a clean shutdown that
    /// synced it.
    survive: BTreeMap<u64, (u64, Why)>,
    /// Offset → record that must be there after the coming restart only:
    /// written but maybe not synced when the process was killed. A power
    /// loss before the restart is over may take it.
    expect: BTreeMap<u64, (u64, Why)>,
    /// The log end when this life began: data at or above it was appended
    /// in this life and has no gaps.
    life_base: u64,
    /// The highest high watermark a client has learnt this life, from an
    /// acknowledgement (its last offset + 1) or an answer carrying one. A
    /// request handled later sees at least this; fetches ask at or below
    /// it, so never out of range.
    pub floor: u64,
    /// An upper bound on the log end: the life base plus every record of
    /// every Produce handled this life.
    appended_max: u64,
    /// The event at which an injected storage error reached the broker.
    failed_at: Option<u64>,
}

/// Why a record must survive a restart, for the failure message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    SyncedAck,
    SyncedOnDisk,
    CleanShutdown,
    Written,
}

impl Why {
    fn says(self) -> &'static str {
        match self {
            Why::SyncedAck => "acknowledged as synced (acks=-1, flush.messages=1)",
            Why::SyncedOnDisk => "on the disk after a power loss, so synced",
            Why::CleanShutdown => "in the log when a clean shutdown finished",
            Why::Written => "written when the process was killed",
        }
    }
}

/// The model's state when a request was handled (its frame cut by the broker).
#[derive(Debug, Clone)]
pub struct Snap {
    pub event: u64,
    floors: BTreeMap<Pk, u64>,
}

#[derive(Debug)]
pub struct Model {
    pub topics: Vec<TopicSpec>,
    parts: BTreeMap<Pk, PartModel>,
    produced: Vec<Produced>,
    /// Where each record was seen: a record never moves and never appears twice.
    placed: HashMap<u64, (Pk, u64)>,
    /// Records a Produce answer acknowledged.
    acked: HashSet<u64>,
    /// The records produced with each shared key of a compacted partition.
    keyed: HashMap<(Pk, u32), Vec<u64>>,
    /// Records whose Produce the broker has taken: they may be in the log,
    /// where no one may have seen them yet.
    handled: HashSet<u64>,
    life: u32,
    /// The wall clock (Unix ms), for `delete.retention.ms`.
    pub now_ms: i64,
    /// Known records found gone where compaction allows it.
    pub compacted_away: u64,
}

type Check = Result<(), String>;

impl Model {
    pub fn new(topics: Vec<TopicSpec>, now_ms: i64) -> Self {
        let mut parts = BTreeMap::new();
        for (topic, t) in topics.iter().enumerate() {
            for partition in 0..t.partitions {
                parts.insert(Pk { topic, partition }, PartModel::default());
            }
        }
        Self {
            topics,
            parts,
            produced: Vec::new(),
            placed: HashMap::new(),
            acked: HashSet::new(),
            keyed: HashMap::new(),
            handled: HashSet::new(),
            life: 0,
            now_ms,
            compacted_away: 0,
        }
    }

    pub fn pks(&self) -> Vec<Pk> {
        self.parts.keys().copied().collect()
    }

    pub fn name(&self, pk: Pk) -> String {
        format!("{}-{}", self.topics[pk.topic].name, pk.partition)
    }

    /// The partition a directory name (`<topic>-<partition>`) stands for.
    pub fn pk_of_dir(&self, dir: &str) -> Option<Pk> {
        let (name, p) = dir.rsplit_once('-')?;
        let topic = self.topics.iter().position(|t| t.name == name)?;
        let pk = Pk {
            topic,
            partition: p.parse().ok()?,
        };
        self.parts.contains_key(&pk).then_some(pk)
    }

    fn part(&mut self, pk: Pk) -> &mut PartModel {
        self.parts
            .get_mut(&pk)
            .expect("the simulator only names its own partitions")
    }

    pub fn part_ref(&self, pk: Pk) -> &PartModel {
        &self.parts[&pk]
    }

    pub fn is_failed(&self, pk: Pk) -> bool {
        self.parts[&pk].failed_at.is_some()
    }

    /// Fresh record ids for a batch to `pk`, one per shape.
    pub fn new_records(&mut self, pk: Pk, shapes: &[Shape], timestamp: i64) -> Vec<u64> {
        shapes
            .iter()
            .map(|&shape| {
                let rid = self.produced.len() as u64;
                self.produced.push(Produced {
                    pk,
                    life: self.life,
                    timestamp,
                    shape,
                });
                if let Some(k) = shape.key {
                    self.keyed.entry((pk, k)).or_default().push(rid);
                }
                rid
            })
            .collect()
    }

    pub fn is_compacted(&self, pk: Pk) -> bool {
        self.topics[pk.topic].compact.is_some()
    }

    /// Whether record `rid` is a tombstone older than `delete.retention.ms`
    /// by now, so the cleaner may have removed it.
    fn expired_tombstone(&self, rid: u64) -> bool {
        let p = &self.produced[rid as usize];
        let Some(c) = self.topics[p.pk.topic].compact else {
            return false;
        };
        // The cleaner drops a tombstone whose batch's newest time plus the
        // retention is before its pass started, so before now.
        p.shape.tombstone && self.now_ms.saturating_sub(p.timestamp) > c.delete_retention_ms
    }

    /// Whether record `rid`, known at `offset` of `pk`, may be missing from
    /// the log now: only on a compacted topic, and only if a record of its
    /// key is in the log at a higher offset (`holds_later(key, offset)`,
    /// over what is known of the log being checked), or it or a later
    /// tombstone of its key is older than `delete.retention.ms`.
    ///
    /// Weaker than the cleaner's rule where the model cannot know more: a
    /// tombstone of the key whose offset no one learnt (its answer lost
    /// with its connection) may be the later one, or may never have been
    /// appended; either is let pass.
    fn may_be_compacted(
        &self,
        pk: Pk,
        offset: u64,
        rid: u64,
        holds_later: impl Fn(u32, u64) -> bool,
    ) -> bool {
        let Some(key) = self.produced[rid as usize].shape.key else {
            return false;
        };
        if !self.is_compacted(pk) {
            return false;
        }
        if self.expired_tombstone(rid) || holds_later(key, offset) {
            return true;
        }
        self.keyed.get(&(pk, key)).is_some_and(|rids| {
            rids.iter().any(|&t| {
                self.expired_tombstone(t)
                    && self
                        .placed
                        .get(&t)
                        .is_none_or(|&(p, o)| p == pk && o > offset)
            })
        })
    }

    /// Whether the live log of `pk` may hold a record of `key` above
    /// `offset`, as far as the clients can tell: one of this life's facts
    /// (nothing is lost within a life; it may be compacted in turn, which
    /// only a later record of the key or an old tombstone does), or one the
    /// broker took whose place no one has learnt yet (its answer still on
    /// its way or lost with its connection). The cleaner may rely on such a
    /// record; a client cannot tell where it is, so this is weaker than the
    /// check after a restart, which reads the whole log.
    fn live_log_holds_later(&self, pk: Pk, key: u32, offset: u64) -> bool {
        let known = self.parts[&pk]
            .facts
            .range(offset + 1..)
            .any(|(_, &r)| self.produced[r as usize].shape.key == Some(key));
        known
            || self.keyed.get(&(pk, key)).is_some_and(|rids| {
                rids.iter()
                    .any(|r| self.handled.contains(r) && !self.placed.contains_key(r))
            })
    }

    pub fn snap(&self, event: u64) -> Snap {
        Snap {
            event,
            floors: self.parts.iter().map(|(&pk, m)| (pk, m.floor)).collect(),
        }
    }

    /// A Produce was handled: its records may now be in the log.
    pub fn produce_handled(&mut self, pk: Pk, rids: &[u64]) {
        self.part(pk).appended_max += rids.len() as u64;
        self.handled.extend(rids);
    }

    /// An injected error on one of `pk`'s file commands reached the broker.
    pub fn storage_failed(&mut self, pk: Pk, event: u64) {
        self.part(pk).failed_at.get_or_insert(event);
    }

    /// What every answer for `pk` to a request handled at `snap` may say
    /// about storage errors: 56 only once one happened, and always after.
    fn check_code(&self, what: &str, snap: &Snap, pk: Pk, code: i16) -> Result<bool, String> {
        let failed = self.parts[&pk].failed_at;
        let name = self.name(pk);
        match code {
            0 if failed.is_some_and(|f| f < snap.event) => Err(format!(
                "{what} of {name} handled after its storage error answered 0: the error must be sticky"
            )),
            0 => Ok(true),
            56 if failed.is_some() => Ok(false),
            56 => Err(format!(
                "{what} of {name} answered KAFKA_STORAGE_ERROR without any storage error"
            )),
            c => Err(format!("{what} of {name} answered error {c}")),
        }
    }

    /// Learn that `rid` is at `offset` of `pk` in this life.
    fn learn(&mut self, pk: Pk, offset: u64, rid: u64, shape: Shape) -> Check {
        let name = self.name(pk);
        let p = self
            .produced
            .get(rid as usize)
            .ok_or_else(|| format!("{name} offset {offset}: record {rid} was never produced"))?;
        if p.shape != shape {
            return Err(format!(
                "{name} offset {offset}: record {rid} reads as {shape:?}, but was produced as {:?}",
                p.shape
            ));
        }
        if p.pk != pk {
            return Err(format!(
                "{name} offset {offset}: record {rid} was produced to {}",
                self.name(p.pk)
            ));
        }
        let stale = p.life != self.life;
        let m = self.part(pk);
        if offset >= m.life_base && stale {
            return Err(format!(
                "{name} offset {offset}: record {rid}, produced before the last restart, \
                 is in data appended since"
            ));
        }
        if let Some(&had) = m.facts.get(&offset) {
            if had != rid {
                return Err(format!(
                    "{name} offset {offset} holds record {rid}, but held record {had}: an offset reused"
                ));
            }
        }
        m.facts.insert(offset, rid);
        match self.placed.insert(rid, (pk, offset)) {
            Some(was) if was != (pk, offset) => Err(format!(
                "record {rid} is at {name} offset {offset}, but was at offset {}",
                was.1
            )),
            _ => Ok(()),
        }
    }

    /// One partition's answer to a Produce of `rids`.
    pub fn produce_answer(
        &mut self,
        snap: &Snap,
        pk: Pk,
        acks: i16,
        rids: &[u64],
        code: i16,
        base: i64,
    ) -> Check {
        if !self.check_code("produce", snap, pk, code)? {
            return Ok(());
        }
        let name = self.name(pk);
        let base =
            u64::try_from(base).map_err(|_| format!("produce to {name}: base offset {base}"))?;
        let end = base + rids.len() as u64;
        let m = &self.parts[&pk];
        if base < m.life_base || end > m.appended_max {
            return Err(format!(
                "produce to {name} acknowledged at offsets {base}..{end}, outside what this life \
                 appended ({}..{})",
                m.life_base, m.appended_max
            ));
        }
        for (i, &rid) in rids.iter().enumerate() {
            let shape = self.produced[rid as usize].shape;
            self.learn(pk, base + i as u64, rid, shape)?;
        }
        self.acked.extend(rids);
        let durable = acks == -1 && self.topics[pk.topic].durable;
        let m = self.part(pk);
        m.floor = m.floor.max(end);
        if durable {
            for (i, &rid) in rids.iter().enumerate() {
                m.survive.insert(base + i as u64, (rid, Why::SyncedAck));
            }
        }
        Ok(())
    }

    /// One partition's answer to a Fetch at `offset`; `alone` when it is
    /// the only partition asked for (so it cannot lose its bytes to others).
    #[allow(clippy::too_many_arguments)]
    pub fn fetch_answer(
        &mut self,
        snap: &Snap,
        pk: Pk,
        offset: u64,
        alone: bool,
        code: i16,
        hw: i64,
        records: Option<&bytes::Bytes>,
    ) -> Check {
        if !self.check_code("fetch", snap, pk, code)? {
            return Ok(());
        }
        let name = self.name(pk);
        let hw = u64::try_from(hw).map_err(|_| format!("fetch of {name}: high watermark {hw}"))?;
        let m = &self.parts[&pk];
        let floor = snap.floors[&pk];
        if hw < floor || hw > m.appended_max {
            return Err(format!(
                "fetch of {name}: high watermark {hw}, but {floor} was known before the request \
                 and at most {} appended",
                m.appended_max
            ));
        }
        let (got, batches) = match records {
            Some(b) if !b.is_empty() => (
                super::wire::read_records(b)
                    .map_err(|e| format!("fetch of {name} at {offset}: {e}"))?,
                super::wire::batch_last_offsets(b),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        // Nothing at or after `offset` is only right in a hole a power loss
        // left (unsynced data lost below a later segment), never where a
        // record is known or in data appended this life. A compacted log
        // has a batch there still: the cleaner keeps the header of a
        // group's last batch, and never cleans the active segment.
        let m = &self.parts[&pk];
        let held = offset >= m.life_base || m.facts.range(offset..hw).next().is_some();
        if alone && offset < hw && batches.is_empty() && held {
            return Err(format!(
                "fetch of {name} at {offset} below the high watermark {hw} returned nothing"
            ));
        }
        let mut next = offset;
        let mut prev: Option<u64> = None;
        for r in &got {
            if prev.is_some_and(|p| r.offset <= p) || r.offset >= hw {
                return Err(format!(
                    "fetch of {name} at {offset}: offset {} out of order or at/after the high \
                     watermark {hw}",
                    r.offset
                ));
            }
            prev = Some(r.offset);
            if r.offset >= offset {
                // A compacted log has gaps wherever the cleaner removed
                // records; which records were there, and so whether they
                // could go, is checked for the offsets the model knows
                // (below), and the rest cannot be checked.
                if r.offset > next && r.offset > self.parts[&pk].life_base && !self.is_compacted(pk)
                {
                    return Err(format!(
                        "fetch of {name} at {offset}: a gap before offset {} in data appended \
                         this life",
                        r.offset
                    ));
                }
                next = r.offset + 1;
            }
            self.learn(pk, r.offset, r.rid, r.shape)?;
        }
        // (A cleaned batch that spans `offset` may keep only records below
        // it.)
        if let Some(last) = prev.filter(|&l| l >= offset) {
            let seen: Vec<u64> = got.iter().map(|r| r.offset).collect();
            let skipped: Vec<(u64, u64)> = self.parts[&pk]
                .facts
                .range(offset..=last)
                .filter(|(o, _)| seen.binary_search(o).is_err())
                .map(|(&o, &rid)| (o, rid))
                .collect();
            for (o, rid) in skipped {
                if !self.may_be_compacted(pk, o, rid, |k, o| self.live_log_holds_later(pk, k, o)) {
                    return Err(format!(
                        "fetch of {name} at {offset} skipped offset {o} (record {rid})"
                    ));
                }
                // Not held against later reads: an answer built before the
                // swap, on another connection, may still show it. (That it
                // never comes back after a restart, nothing checks: the
                // model only learns what is there.)
                self.compacted_away += 1;
                self.part(pk).facts.remove(&o);
            }
        }
        let m = self.part(pk);
        m.floor = m.floor.max(hw);
        Ok(())
    }

    /// One partition's answer to a ListOffsets for `timestamp` (-1 latest,
    /// -2 earliest).
    pub fn list_offsets_answer(
        &mut self,
        snap: &Snap,
        pk: Pk,
        timestamp: i64,
        code: i16,
        offset: i64,
        found_ts: i64,
    ) -> Check {
        if !self.check_code("list offsets", snap, pk, code)? {
            return Ok(());
        }
        let name = self.name(pk);
        let m = &self.parts[&pk];
        let floor = snap.floors[&pk];
        // On a compacted topic a known record may be gone (see
        // `may_be_compacted`): it counts neither as an earlier match the
        // answer missed nor as the one it names.
        let here = |o: u64, rid: u64| {
            !self.may_be_compacted(pk, o, rid, |k, o| self.live_log_holds_later(pk, k, o))
        };
        let bad = match timestamp {
            -1 => offset < floor as i64 || offset > m.appended_max as i64,
            -2 => offset != 0,
            // Nothing that late: no record acknowledged before the request
            // (so visible to it) may be that late either.
            _ if offset == -1 => m.facts.range(..floor).any(|(&o, &rid)| {
                self.produced[rid as usize].timestamp >= timestamp && here(o, rid)
            }),
            _ => {
                let earlier =
                    m.facts
                        .range(..u64::try_from(offset).unwrap_or(0))
                        .any(|(&o, &rid)| {
                            self.produced[rid as usize].timestamp >= timestamp && here(o, rid)
                        });
                let at = u64::try_from(offset).ok().and_then(|o| {
                    let rid = *m.facts.get(&o)?;
                    here(o, rid).then(|| self.produced[rid as usize].timestamp)
                });
                offset < 0
                    || offset >= m.appended_max as i64
                    || found_ts < timestamp
                    || earlier
                    || at.is_some_and(|t| t != found_ts)
            }
        };
        if bad {
            return Err(format!(
                "list offsets of {name} for time {timestamp}: offset {offset} (timestamp \
                 {found_ts}); {floor} known before the request, at most {} appended",
                m.appended_max
            ));
        }
        if timestamp == -1 {
            let m = self.part(pk);
            m.floor = m.floor.max(offset as u64);
        }
        Ok(())
    }

    /// A partition's state in a Metadata answer.
    pub fn metadata_answer(&self, snap: &Snap, pk: Pk, code: i16) -> Check {
        self.check_code("metadata", snap, pk, code).map(|_| ())
    }

    /// At the end of a life `rid` is on the disk at `offset`: it must
    /// survive the restart; `synced` (after a power loss nothing else is
    /// left), every restart after it too.
    pub fn on_disk(&mut self, pk: Pk, offset: u64, rid: u64, synced: bool) -> Check {
        let name = self.name(pk);
        // Its place is known from now on (an unacknowledged tombstone's
        // included, which `may_be_compacted` then places).
        if let Some(&was) = self.placed.get(&rid) {
            if was != (pk, offset) {
                return Err(format!(
                    "record {rid} is on the disk at {name} offset {offset}, but was at offset {}",
                    was.1
                ));
            }
        }
        self.placed.insert(rid, (pk, offset));
        let m = self.part(pk);
        let (set, why) = if synced {
            (&mut m.survive, Why::SyncedOnDisk)
        } else {
            (&mut m.expect, Why::Written)
        };
        match set.insert(offset, (rid, why)) {
            Some((had, _)) if had != rid => Err(format!(
                "{name} offset {offset}: the disk holds record {rid} where record {had} was \
                 acknowledged"
            )),
            _ => Ok(()),
        }
    }

    /// A new broker started: storage errors were the old one's.
    pub fn new_life(&mut self) {
        for m in self.parts.values_mut() {
            m.failed_at = None;
        }
    }

    /// The power went: what was only expected to survive a restart is gone.
    pub fn power_lost(&mut self) {
        for m in self.parts.values_mut() {
            m.expect.clear();
        }
    }

    /// A clean shutdown finished: everything acknowledged must survive,
    /// and was synced, unless a storage error stopped the partition (its
    /// writes are still on the disk, maybe not synced).
    pub fn shut_down_cleanly(&mut self) {
        for m in self.parts.values_mut() {
            let facts = m
                .facts
                .iter()
                .map(|(&o, &rid)| (o, (rid, Why::CleanShutdown)));
            if m.failed_at.is_some() {
                m.expect.extend(facts);
            } else {
                m.survive.extend(facts);
            }
        }
    }

    /// A new life began; `logs` is each partition's whole content read back
    /// after recovery, up to its high watermark.
    pub fn restarted(&mut self, logs: BTreeMap<Pk, (u64, Vec<ReadBack>)>) -> Check {
        self.life += 1;
        for (pk, (hw, records)) in logs {
            let name = self.name(pk);
            let found: BTreeMap<u64, u64> = records.iter().map(|r| (r.offset, r.rid)).collect();
            // What compaction may have removed: only records the log, as
            // read back, holds a later record of the same key for (the
            // latest of a key that had to survive must be there), or old
            // tombstones (see `may_be_compacted`).
            let found_later = |key: u32, offset: u64| {
                records
                    .iter()
                    .any(|r| r.offset > offset && r.shape.key == Some(key))
            };
            let m = &self.parts[&pk];
            let mut gone = 0;
            for (o, (rid, why)) in m.survive.iter().chain(&m.expect) {
                match found.get(o) {
                    Some(got) if got == rid => {}
                    None if self.may_be_compacted(pk, *o, *rid, found_later) => gone += 1,
                    got => {
                        let got = got.map_or("nothing".into(), |g| format!("record {g}"));
                        let acked = if self.acked.contains(rid) {
                            "acknowledged"
                        } else {
                            "never acknowledged"
                        };
                        return Err(format!(
                            "after the restart {name} offset {o} holds {got}, but record {rid} \
                             ({acked}, {}) must have survived (log end {hw})",
                            why.says()
                        ));
                    }
                }
            }
            self.compacted_away += gone;
            let m = self.part(pk);
            *m = PartModel {
                survive: std::mem::take(&mut m.survive),
                life_base: hw,
                floor: hw,
                appended_max: hw,
                ..PartModel::default()
            };
            for r in records {
                // Every offset is below the new life's base, so only the
                // record's identity and place are checked.
                self.learn(pk, r.offset, r.rid, r.shape)?;
            }
        }
        Ok(())
    }
}
