//! What the clients have learnt about each partition, and the invariants
//! every answer must keep. A "life" is one broker instance: a crash or a
//! restart ends it, and what the clients knew is cut back to what must
//! survive.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::wire::ReadBack;

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
}

/// A record the simulator produced (the index is its id).
#[derive(Debug)]
struct Produced {
    pk: Pk,
    life: u32,
    timestamp: i64,
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
    life: u32,
}

type Check = Result<(), String>;

impl Model {
    pub fn new(topics: Vec<TopicSpec>) -> Self {
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
            life: 0,
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

    /// Fresh record ids for a batch to `pk`.
    pub fn new_records(&mut self, pk: Pk, n: usize, timestamp: i64) -> Vec<u64> {
        (0..n)
            .map(|_| {
                self.produced.push(Produced {
                    pk,
                    life: self.life,
                    timestamp,
                });
                self.produced.len() as u64 - 1
            })
            .collect()
    }

    pub fn snap(&self, event: u64) -> Snap {
        Snap {
            event,
            floors: self.parts.iter().map(|(&pk, m)| (pk, m.floor)).collect(),
        }
    }

    /// A Produce was handled: its records may now be in the log.
    pub fn produce_handled(&mut self, pk: Pk, records: usize) {
        self.part(pk).appended_max += records as u64;
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
    fn learn(&mut self, pk: Pk, offset: u64, rid: u64) -> Check {
        let name = self.name(pk);
        let p = self
            .produced
            .get(rid as usize)
            .ok_or_else(|| format!("{name} offset {offset}: record {rid} was never produced"))?;
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
            self.learn(pk, base + i as u64, rid)?;
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
        let got = match records {
            Some(b) if !b.is_empty() => super::wire::read_records(b)
                .map_err(|e| format!("fetch of {name} at {offset}: {e}"))?,
            _ => Vec::new(),
        };
        // Nothing at or after `offset` is only right in a hole a power loss
        // left (unsynced data lost below a later segment), never where a
        // record is known or in data appended this life.
        let m = &self.parts[&pk];
        let held = offset >= m.life_base || m.facts.range(offset..hw).next().is_some();
        if alone && offset < hw && got.is_empty() && held {
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
                if r.offset > next && r.offset > self.parts[&pk].life_base {
                    return Err(format!(
                        "fetch of {name} at {offset}: a gap before offset {} in data appended \
                         this life",
                        r.offset
                    ));
                }
                next = r.offset + 1;
            }
            self.learn(pk, r.offset, r.rid)?;
        }
        if let Some(last) = prev {
            let seen: Vec<u64> = got.iter().map(|r| r.offset).collect();
            if let Some((o, rid)) = self.parts[&pk]
                .facts
                .range(offset..=last)
                .find(|(o, _)| seen.binary_search(o).is_err())
            {
                return Err(format!(
                    "fetch of {name} at {offset} skipped offset {o} (record {rid})"
                ));
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
        let bad = match timestamp {
            -1 => offset < floor as i64 || offset > m.appended_max as i64,
            -2 => offset != 0,
            // Nothing that late: no record acknowledged before the request
            // (so visible to it) may be that late either.
            _ if offset == -1 => m
                .facts
                .range(..floor)
                .any(|(_, &rid)| self.produced[rid as usize].timestamp >= timestamp),
            _ => {
                let earlier = m
                    .facts
                    .range(..u64::try_from(offset).unwrap_or(0))
                    .any(|(_, &rid)| self.produced[rid as usize].timestamp >= timestamp);
                let at = m
                    .facts
                    .get(&u64::try_from(offset).unwrap_or(u64::MAX))
                    .map(|&rid| self.produced[rid as usize].timestamp);
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
            let m = &self.parts[&pk];
            for (o, (rid, why)) in m.survive.iter().chain(&m.expect) {
                match found.get(o) {
                    Some(got) if got == rid => {}
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
                self.learn(pk, r.offset, r.rid)?;
            }
        }
        Ok(())
    }
}
