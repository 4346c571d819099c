//! The metadata quorum: the voters of `controller.quorum.voters` run one
//! Raft group whose committed log is the cluster's metadata, as Kafka's
//! KRaft quorum does. The consensus engine is raft-rs's `RawNode`, itself
//! a pure state machine: the broker ticks it from its own clock, steps it
//! with the messages peers send, and carries what it sends in Conveyor's
//! frames over the peer connections ([`wire`]).
//!
//! What the quorum holds: broker registrations, topics with their
//! partitions (replicas, in-sync replicas, leader, epochs) and settings,
//! and NoOps. Every voter registers itself once it knows a leader; the
//! active controller (the leader) turns CreateTopics, CreatePartitions and
//! DeleteTopics into records ([`controller`]); the records apply in log
//! order on every voter to the same [`Image`], and each broker opens (or
//! removes) the partition logs the image gives it. The active controller
//! also keeps the brokers' sessions ([`sessions`]): a broker it stops
//! hearing from is fenced and its partitions move ([`proposals`]).
//!
//! Durability ([`state`]): each Raft round that appends entries, takes a
//! snapshot, or changes the term or vote rewrites the `quorum-state` file,
//! and the messages that round holds back (votes, acknowledgements of
//! entries) leave only once that write is done, through raft-rs's
//! asynchronous-persistence calls. A voter that restarts comes back with
//! its term, its vote and its log. A write that fails stops this voter
//! taking part, as Kafka stops a controller that cannot write its log.
//!
//! Determinism: raft-rs draws each election timeout from the thread's
//! random source. Whenever it has drawn one, the quorum replaces it with a
//! draw of its own, seeded from the node id and the clock the broker is
//! given, so a simulation with the same inputs elects the same leaders.

pub(crate) mod controller;
mod logger;
mod proposals;
pub(crate) mod records;
mod sessions;
pub mod state;
mod store;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use raft::prelude::{ConfState, Entry, EntryType, Message, Snapshot};
use raft::storage::{MemStorage, Storage};
use raft::{GetEntriesContext, RawNode, StateRole};

use crate::config::Config;
use crate::time::{Instant, Now};
use records::Record;
pub use records::{Image, NO_LEADER, PartitionImage, Registration, TopicImage};
use sessions::Sessions;
use state::Stored;
use store::{Store, restore};

/// The heartbeat interval, in ticks.
const HEARTBEAT_TICKS: usize = 2;
/// The most ticks made up at once after the broker was not woken for a
/// while: more would only start elections at once.
const MAX_CATCH_UP_TICKS: u32 = 5;
/// How often a broker not yet in the image proposes its registration again
/// (a proposal can be lost with a leader change).
const REGISTER_RETRY: Duration = Duration::from_secs(1);

/// How the quorum stands, seen from one voter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// This broker's node id.
    pub node_id: i32,
    /// The voters, by node id.
    pub voters: Vec<i32>,
    /// The leader this voter knows of (the active controller).
    pub leader: Option<i32>,
    /// The current term (Kafka's leader epoch of the metadata log).
    pub term: u64,
    /// This voter's role: leader, follower, candidate or pre-candidate.
    pub role: &'static str,
    /// The highest log index known committed (the metadata high watermark).
    pub committed: u64,
    /// The highest log index applied to the image.
    pub applied: u64,
    /// The last log index this voter holds.
    pub last_index: u64,
    /// Per voter, the highest index the leader knows it holds; only the
    /// leader knows (others answer `None`).
    pub matched: Vec<(i32, Option<u64>)>,
    /// A digest of every record applied, in order: two voters that applied
    /// the same records in the same order up to `applied` show the same.
    pub applied_digest: u64,
    /// The metadata the applied records built.
    pub image: Image,
    /// Snapshots installed: each time this voter was behind the leader's
    /// cut log and took its image instead of the records.
    pub snapshots_installed: u64,
    /// The first index the log still holds (it is cut below it).
    pub first_index: u64,
}

/// The Raft node and what the broker does with it.
pub(crate) struct Quorum {
    node: RawNode<Store>,
    /// The encoded image the store hands out as its snapshot.
    snapshot: Arc<RwLock<Bytes>>,
    node_id: i32,
    voters: Vec<i32>,
    tick: Duration,
    next_tick: Instant,
    /// splitmix64 state for election timeouts.
    rng: u64,
    /// (term, role, leader, election ticks elapsed) after the last call
    /// into raft-rs: a change, or fewer ticks elapsed, means it drew a new
    /// election timeout.
    seen: (u64, StateRole, u64, usize),
    /// Messages to send, by destination node id.
    outbox: Vec<(i32, Message)>,
    /// Raft rounds not yet known durable, oldest first: the round's number,
    /// the messages it holds back until then, and whether it changed what
    /// the `quorum-state` file holds.
    unpersisted: VecDeque<(u64, Vec<Message>, bool)>,
    /// The round the `quorum-state` write in flight covers.
    writing: Option<u64>,
    /// A write failed: this voter takes no further part.
    failed: bool,
    /// A snapshot installed in round `.0`, to count as applied (`.1`) once
    /// that round is written.
    snapshot_to_apply: Option<(u64, u64)>,
    image: Image,
    applied: u64,
    digest: u64,
    endpoint: String,
    registered_at: Option<Instant>,
    snapshots_installed: u64,
    /// `metadata.max.idle.interval.ms`; zero for none.
    idle_interval: Duration,
    /// `metadata.log.snapshot.interval.records`: the log is cut once it
    /// holds this many applied entries, keeping a quarter, so a voter a
    /// little behind still catches up from entries, not a snapshot.
    compact_after: u64,
    /// The log's last index when last looked at, and since when it is so.
    last_index: (u64, Instant),
    /// Records applied since [`Quorum::take_changed`] last looked changed
    /// the image.
    changed: bool,
    /// Topics clients asked for that do not exist, for the controller to
    /// create (auto-creation on a broker that is not the controller), and
    /// when each was last asked for.
    wanted: Vec<String>,
    asked: HashMap<String, Instant>,
    /// As the controller, the brokers' sessions.
    sessions: Sessions,
    /// `unclean.leader.election.enable` for topics that do not set it.
    unclean_default: bool,
    /// As the controller, when it last proposed to move partitions led by
    /// a fenced broker ([`controller::repair_leaders`]).
    repaired_at: Option<Instant>,
    /// The applied index the controller last looked for such partitions
    /// at: the image has not changed since.
    repair_checked: u64,
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("node_id", &self.node_id)
            .field("term", &self.node.raft.term)
            .field("leader", &self.node.raft.leader_id)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

/// The Raft id of a Kafka node id: raft-rs reserves 0 for "none", and
/// Kafka's node ids start at 0.
fn raft_id(node_id: i32) -> u64 {
    u64::from(node_id.unsigned_abs()) + 1
}

fn node_id(raft_id: u64) -> i32 {
    i32::try_from(raft_id.saturating_sub(1)).unwrap_or(i32::MAX)
}

fn role_name(r: StateRole) -> &'static str {
    match r {
        StateRole::Leader => "leader",
        StateRole::Follower => "follower",
        StateRole::Candidate => "candidate",
        StateRole::PreCandidate => "pre-candidate",
    }
}

impl Quorum {
    /// The quorum `config` names, when this broker is one of its voters
    /// and there are others; alone, a broker needs none.
    /// `stored` is the `quorum-state` file, when there is one; a damaged
    /// one keeps this broker out of the quorum (it could vote twice).
    pub(crate) fn new(config: &Config, now: Now, stored: Option<&[u8]>) -> Option<Self> {
        let voters: Vec<i32> = config.quorum_voters.iter().map(|(id, _)| *id).collect();
        if voters.len() < 2 || !voters.contains(&config.node_id) {
            return None;
        }
        let stored = match stored.map(Stored::decode) {
            None => Stored::default(),
            Some(Ok(s)) => s,
            Some(Err(why)) => {
                tracing::error!(
                    why,
                    file = state::QUORUM_STATE,
                    "the metadata quorum's state is damaged; this broker stays out of the quorum"
                );
                return None;
            }
        };
        let (image, digest) = if stored.snap_index == 0 {
            (Image::default(), 0)
        } else {
            match Image::decode(&stored.image) {
                Ok(i) => i,
                Err(why) => {
                    tracing::error!(
                        why,
                        "the metadata quorum's image is damaged; this broker stays out of the quorum"
                    );
                    return None;
                }
            }
        };
        let tick = Duration::from_millis(config.quorum_tick_ms.max(1));
        let election_tick = usize::try_from(
            (config.quorum_election_timeout_ms / config.quorum_tick_ms.max(1)).max(3),
        )
        .unwrap_or(usize::MAX / 4);
        let raft_config = raft::Config {
            id: raft_id(config.node_id),
            election_tick,
            heartbeat_tick: HEARTBEAT_TICKS.min(election_tick - 1),
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            applied: stored.snap_index,
            ..raft::Config::default()
        };
        let conf = ConfState::from((
            voters.iter().map(|&v| raft_id(v)).collect::<Vec<_>>(),
            vec![],
        ));
        let snapshot = Arc::new(RwLock::new(image.encode(digest)));
        let mem = MemStorage::new_with_conf_state(conf.clone());
        if let Err(e) = restore(&mem, &stored, conf) {
            tracing::error!(error = %e, "the metadata quorum's state does not fit; this broker stays out of the quorum");
            return None;
        }
        let storage = Store {
            mem,
            image: Arc::clone(&snapshot),
        };
        let node = match RawNode::new(&raft_config, storage, &logger::logger(config.node_id)) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "the metadata quorum could not start");
                return None;
            }
        };
        let mut q = Self {
            node,
            snapshot,
            node_id: config.node_id,
            voters,
            tick,
            next_tick: now.mono.saturating_add(tick),
            rng: raft_id(config.node_id).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ now.mono.as_nanos()
                ^ (now.wall_ms as u64).rotate_left(29),
            seen: (0, StateRole::Follower, 0, 0),
            outbox: Vec::new(),
            unpersisted: VecDeque::new(),
            writing: None,
            failed: false,
            snapshot_to_apply: None,
            applied: stored.snap_index,
            image,
            digest,
            endpoint: format!("{}:{}", config.advertised_host, config.advertised_port),
            registered_at: None,
            snapshots_installed: 0,
            idle_interval: Duration::from_millis(config.metadata_max_idle_interval_ms),
            last_index: (0, now.mono),
            compact_after: config.metadata_snapshot_interval_records.max(8),
            changed: true,
            wanted: Vec::new(),
            asked: HashMap::new(),
            sessions: Sessions::new(Duration::from_millis(config.broker_session_timeout_ms)),
            unclean_default: config.topic_defaults.unclean_leader_election,
            repaired_at: None,
            repair_checked: 0,
        };
        // The timeout raft-rs drew at creation is replaced like any other.
        q.seen.3 = usize::MAX;
        q.after_call();
        tracing::info!(
            node = q.node_id,
            voters = ?q.voters,
            term = stored.hard_state.term,
            applied = stored.snap_index,
            entries = stored.entries.len(),
            election_ticks = election_tick,
            tick_ms = tick.as_millis() as u64,
            "metadata quorum started"
        );
        Some(q)
    }

    /// When the next tick is due.
    pub(crate) fn deadline(&self) -> Instant {
        self.next_tick
    }

    /// Tick for the time that passed; propose this broker's registration
    /// when it is due.
    pub(crate) fn timeout(&mut self, now: Now) {
        if self.failed {
            self.next_tick = now.mono.saturating_add(Duration::from_secs(3600));
            return;
        }
        let mut ticks = 0;
        while self.next_tick <= now.mono && ticks < MAX_CATCH_UP_TICKS {
            self.next_tick = self.next_tick.saturating_add(self.tick);
            self.node.tick();
            self.after_call();
            ticks += 1;
        }
        if self.next_tick <= now.mono {
            // Time the broker was not woken for is not made up.
            self.next_tick = now.mono.saturating_add(self.tick);
        }
        self.maybe_register(now);
        self.maybe_no_op(now);
        self.maybe_fence(now);
        self.drive();
    }

    /// Messages a peer sent.
    pub(crate) fn receive(&mut self, messages: Vec<Message>, now: Now) {
        if self.failed {
            return;
        }
        let me = raft_id(self.node_id);
        for m in messages {
            self.sessions.heard(node_id(m.from), now.mono);
            if m.to != me {
                tracing::debug!(to = m.to, "a Raft message for another node; dropped");
                continue;
            }
            if let Err(e) = self.node.step(m) {
                // Local message types and unknown senders are refused by
                // raft-rs itself; neither harms the group.
                tracing::debug!(error = %e, "Raft message refused");
            }
            self.after_call();
        }
        self.drive();
    }

    /// The messages to send, as (node id, frame body), one batch per
    /// destination.
    pub(crate) fn take_outbox(&mut self) -> Vec<(i32, Vec<Message>)> {
        let mut by_node: Vec<(i32, Vec<Message>)> = Vec::new();
        for (to, m) in self.outbox.drain(..) {
            match by_node.iter_mut().find(|(n, _)| *n == to) {
                Some((_, list)) => list.push(m),
                None => by_node.push((to, vec![m])),
            }
        }
        by_node
    }

    pub(crate) fn status(&self) -> QuorumStatus {
        let raft = &self.node.raft;
        let leader = (raft.leader_id != 0).then(|| node_id(raft.leader_id));
        let matched = self
            .voters
            .iter()
            .map(|&v| {
                let m = (raft.state == StateRole::Leader)
                    .then(|| raft.prs().get(raft_id(v)).map(|p| p.matched))
                    .flatten();
                (v, m)
            })
            .collect();
        QuorumStatus {
            node_id: self.node_id,
            voters: self.voters.clone(),
            leader,
            term: raft.term,
            role: role_name(raft.state),
            committed: raft.raft_log.committed,
            applied: self.applied,
            last_index: raft.raft_log.last_index(),
            matched,
            applied_digest: self.digest,
            image: self.image.clone(),
            snapshots_installed: self.snapshots_installed,
            first_index: self.node.store().first_index().unwrap_or(0),
        }
    }

    /// Replace an election timeout raft-rs drew with one of our own.
    fn after_call(&mut self) {
        let raft = &mut self.node.raft;
        let now = (raft.term, raft.state, raft.leader_id, raft.election_elapsed);
        let (term, role, leader, elapsed) = self.seen;
        let drew = now.0 != term || now.1 != role || now.2 != leader || now.3 < elapsed;
        if drew {
            let min = raft.election_timeout();
            let span = raft.election_timeout() as u64; // [min, 2 * min)
            self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let t = min + usize::try_from(z % span.max(1)).unwrap_or(0);
            raft.set_randomized_election_timeout(t);
        }
        self.seen = now;
    }

    /// Handle what raft-rs made ready: keep the entries and hard state,
    /// queue the messages, apply what is committed.
    fn drive(&mut self) {
        // Each round consumes a Ready; a handful always suffice.
        for _ in 0..16 {
            if !self.node.has_ready() {
                return;
            }
            let mut rd = self.node.ready();
            self.queue(rd.take_messages());
            // What must be durable before this round's held messages leave.
            let mut changed = !rd.snapshot().is_empty() || !rd.entries().is_empty();
            if !rd.snapshot().is_empty() {
                let snap = rd.snapshot().clone();
                self.install(&snap);
                if let Err(e) = self.node.mut_store().mem.wl().apply_snapshot(snap) {
                    tracing::error!(error = %e, "metadata snapshot not applied");
                }
            }
            let committed = rd.take_committed_entries();
            let last_committed = committed.last().map(|e| e.index);
            self.apply(committed);
            if !rd.entries().is_empty() {
                if let Err(e) = self.node.mut_store().mem.wl().append(rd.entries()) {
                    tracing::error!(error = %e, "metadata entries not kept");
                }
            }
            if let Some(hs) = rd.hs() {
                let mut store = self.node.mut_store().mem.wl();
                let before = store.hard_state();
                changed |= hs.term != before.term || hs.vote != before.vote;
                store.set_hardstate(hs.clone());
            }
            let number = rd.number();
            let snapshot = (!rd.snapshot().is_empty()).then(|| rd.snapshot().get_metadata().index);
            let held = rd.take_persisted_messages();
            self.node.advance_append_async(rd);
            // raft-rs hands out committed entries only once persisted, but
            // a snapshot counts as applied only after it is written.
            if let Some(i) = last_committed {
                self.node.advance_apply_to(i);
            }
            if let Some(i) = snapshot {
                self.snapshot_to_apply = Some((number, i));
            }
            self.unpersisted.push_back((number, held, changed));
            self.release();
            self.after_call();
            self.compact();
        }
    }

    /// Let out the rounds at the front that need nothing written, unless a
    /// write still in flight covers an earlier one.
    fn release(&mut self) {
        if self.writing.is_some() {
            return;
        }
        let mut last = None;
        while let Some((number, _, false)) = self.unpersisted.front() {
            last = Some(*number);
            let (_, held, _) = self.unpersisted.pop_front().unwrap_or_default();
            self.queue(held);
        }
        if let Some(n) = last {
            self.node.on_persist_ready(n);
        }
    }

    /// The `quorum-state` file to write, when a round changed it and no
    /// write is in flight. The write covers every round so far.
    pub(crate) fn take_write(&mut self) -> Option<Bytes> {
        if self.failed || self.writing.is_some() {
            return None;
        }
        if !self.unpersisted.iter().any(|(_, _, changed)| *changed) {
            return None;
        }
        let covers = self.unpersisted.back().map(|(n, _, _)| *n)?;
        self.writing = Some(covers);
        Some(self.stored().encode())
    }

    /// The `quorum-state` write finished: let out what it covered, or, if it
    /// failed, stop taking part.
    pub(crate) fn written(&mut self, ok: bool) {
        let Some(covers) = self.writing.take() else {
            return;
        };
        if !ok {
            tracing::error!(
                file = state::QUORUM_STATE,
                "the metadata quorum's state could not be written; this voter stops taking part"
            );
            self.failed = true;
            self.unpersisted.clear();
            self.outbox.clear();
            return;
        }
        while self
            .unpersisted
            .front()
            .is_some_and(|(n, _, _)| *n <= covers)
        {
            let (_, held, _) = self.unpersisted.pop_front().unwrap_or_default();
            self.queue(held);
        }
        self.node.on_persist_ready(covers);
        if let Some((number, index)) = self.snapshot_to_apply {
            if number <= covers {
                self.snapshot_to_apply = None;
                self.node.advance_apply_to(index);
            }
        }
        self.release();
        self.drive();
    }

    /// What `quorum-state` holds: the hard state, the image as of the
    /// applied index as the snapshot, and the entries after it.
    fn stored(&self) -> Stored {
        let store = &self.node.store().mem;
        let hard_state = store.rl().hard_state().clone();
        let last = store.last_index().unwrap_or(0);
        let from = self.applied + 1;
        let entries = if last >= from {
            store
                .entries(from, last + 1, None, GetEntriesContext::empty(false))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Stored {
            hard_state,
            snap_index: self.applied,
            snap_term: store.term(self.applied).unwrap_or(0),
            image: self.image.encode(self.digest),
            entries,
        }
    }

    /// Take a snapshot's image as the applied state.
    fn install(&mut self, snap: &Snapshot) {
        let index = snap.get_metadata().index;
        match Image::decode(&snap.data) {
            Ok((image, digest)) => {
                tracing::info!(index, "metadata snapshot installed");
                self.snapshots_installed += 1;
                self.image = image;
                self.digest = digest;
                self.changed = true;
                self.applied = self.applied.max(index);
                self.publish();
            }
            // Every voter's snapshots come from the same encoder: a bad
            // one means a newer broker or damage, and the image stays.
            Err(why) => tracing::error!(index, why, "metadata snapshot refused"),
        }
    }

    /// Hand the store the image as of now, for the snapshots it gives.
    fn publish(&self) {
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = self.image.encode(self.digest);
    }

    /// Cut the log below what is applied once it holds
    /// `metadata.log.snapshot.interval.records`, keeping a quarter.
    fn compact(&mut self) {
        let Ok(first) = self.node.store().first_index() else {
            return;
        };
        if self.applied < first.saturating_add(self.compact_after) {
            return;
        }
        let to = self.applied - self.compact_after / 4;
        if let Err(e) = self.node.mut_store().mem.wl().compact(to) {
            tracing::warn!(error = %e, "metadata log not cut");
        }
    }

    fn queue(&mut self, messages: Vec<Message>) {
        self.outbox
            .extend(messages.into_iter().map(|m| (node_id(m.to), m)));
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        for e in entries {
            if e.index <= self.applied {
                continue;
            }
            self.applied = e.index;
            if e.entry_type != EntryType::EntryNormal || e.data.is_empty() {
                // A new leader's empty entry, or a configuration change
                // (none are proposed: the voters are static).
                continue;
            }
            self.digest = digest(self.digest, e.index, &e.data);
            match Record::decode_all(&e.data) {
                Ok(records) => {
                    for r in records {
                        if r == Record::NoOp {
                            continue;
                        }
                        tracing::debug!(index = e.index, record = ?r, "metadata record");
                        if self.image.apply(e.index, r) {
                            self.changed = true;
                        } else {
                            tracing::debug!(
                                index = e.index,
                                "metadata record did not fit the image"
                            );
                        }
                    }
                }
                // Every voter skips the same entry, so the images agree;
                // a newer broker wrote it, or the log is damaged.
                Err(why) => tracing::error!(index = e.index, why, "metadata entry skipped"),
            }
        }
        self.publish();
    }

    /// The metadata the applied records built.
    pub(crate) fn image(&self) -> &Image {
        &self.image
    }

    /// The highest log index applied to the image.
    pub(crate) fn applied(&self) -> u64 {
        self.applied
    }

    /// The active controller (the quorum's leader), when one is known.
    pub(crate) fn controller(&self) -> Option<i32> {
        let leader = self.node.raft.leader_id;
        (leader != 0).then(|| node_id(leader))
    }

    /// The Raft term this voter is in: a proposal's entry is its own when
    /// the entry at its index carries the term it was proposed in.
    pub(crate) fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// The term of the entry at `index`, while the log still holds it.
    pub(crate) fn entry_term(&self, index: u64) -> Option<u64> {
        self.node.raft.raft_log.term(index).ok().filter(|&t| t != 0)
    }

    /// Whether this broker is the active controller and may propose.
    pub(crate) fn is_controller(&self) -> bool {
        !self.failed && self.node.raft.state == StateRole::Leader
    }

    /// As the active controller, append `records` as one entry; the log
    /// index it takes, which is applied once committed (unless a new
    /// leader overwrites it first: look at the image then). `None` when
    /// this broker is not the controller.
    pub(crate) fn propose(&mut self, records: &[Record]) -> Option<u64> {
        if !self.is_controller() || records.is_empty() {
            return None;
        }
        let before = self.node.raft.raft_log.last_index();
        let proposed = self
            .node
            .propose(Vec::new(), Record::encode_all(records).to_vec());
        self.after_call();
        let index = self.node.raft.raft_log.last_index();
        self.drive();
        match proposed {
            Ok(()) if index > before => Some(index),
            Ok(()) => None,
            Err(e) => {
                tracing::debug!(error = %e, "metadata records not proposed");
                None
            }
        }
    }

    /// A client asked for `topic`, which does not exist, and may have it
    /// created: ask the controller, at most once per [`REGISTER_RETRY`]
    /// for each name (clients ask again and again while they wait).
    pub(crate) fn want_topic(&mut self, topic: &str, now: Now) {
        let due = self
            .asked
            .get(topic)
            .is_none_or(|at| at.saturating_add(REGISTER_RETRY) <= now.mono);
        if !due {
            return;
        }
        self.asked
            .retain(|_, at| at.saturating_add(REGISTER_RETRY) > now.mono);
        self.asked.insert(topic.to_owned(), now.mono);
        self.wanted.push(topic.to_owned());
    }

    /// The topics to ask the controller to create, and the controller;
    /// none while no other broker is known to be it.
    pub(crate) fn take_wanted_topics(&mut self) -> Option<(i32, Vec<String>)> {
        if self.wanted.is_empty() {
            return None;
        }
        let wanted = std::mem::take(&mut self.wanted);
        let controller = self.controller().filter(|&c| c != self.node_id)?;
        Some((controller, wanted))
    }

    /// Whether the image changed since the last call.
    pub(crate) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

/// FNV-1a over the previous digest, the index and the record.
fn digest(prev: u64, index: u64, data: &Bytes) -> u64 {
    let mut h = prev ^ 0xcbf2_9ce4_8422_2325;
    for b in index.to_be_bytes().iter().chain(data.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
