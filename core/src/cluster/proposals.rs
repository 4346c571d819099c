//! What a voter proposes on its own, beside the controller's answers to
//! requests: its registration, the controller's NoOps when the log is
//! idle, the fencing and unfencing of brokers as their sessions come and
//! go ([`super::sessions`]), and claims of producer-id blocks.

use raft::StateRole;

use super::records::{Image, Record};
use super::{Quorum, REGISTER_RETRY, controller, raft_id};
use crate::time::Now;

/// How long the controller waits for a proposed leader repair to commit
/// before proposing it again.
const REPAIR_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// `unclean.leader.election.enable` of each topic in `image`, `default`
/// for a topic that does not set it.
fn unclean(image: &Image, default: bool) -> impl Fn(&str) -> bool + '_ {
    move |topic| {
        image
            .topics
            .get(topic)
            .and_then(|t| t.configs.get("unclean.leader.election.enable"))
            .map_or(default, |v| v == "true")
    }
}

impl Quorum {
    /// Propose `records` as one entry; `what` names them should the
    /// proposal be refused (no leader known: it is made again later).
    fn propose_records(&mut self, records: &[Record], what: &str) {
        if let Err(e) = self
            .node
            .propose(Vec::new(), Record::encode_all(records).to_vec())
        {
            tracing::debug!(error = %e, "{what} not proposed");
        }
        self.after_call();
    }

    /// As the controller, fence the brokers whose sessions expired and
    /// unfence those heard again, each with its leader changes.
    pub(super) fn maybe_fence(&mut self, now: Now) {
        let raft = &self.node.raft;
        if self.failed || raft.state != StateRole::Leader {
            self.sessions.step_down();
            return;
        }
        let applied = self.applied;
        let prs = raft.prs();
        let caught_up = |b: i32| prs.get(raft_id(b)).is_some_and(|p| p.matched >= applied);
        let due = self
            .sessions
            .due(raft.term, &self.image, self.node_id, now.mono, caught_up);
        if due.is_empty() {
            self.maybe_repair(now);
            return;
        }
        // Each broker's changes are made on the image as the ones before
        // them in this pass leave it: two brokers lost at once must not
        // each move a partition from the image both saw (the second would
        // undo the first's move, leaving a fenced leader).
        let mut image = self.image.clone();
        for (broker, fence) in due {
            let unclean = unclean(&image, self.unclean_default);
            let records = if fence {
                controller::fence_broker(&image, broker, unclean)
            } else {
                controller::unfence_broker(&image, broker, unclean)
            };
            for r in &records {
                image.apply(applied, r.clone());
            }
            let moved = records.len().saturating_sub(1);
            if fence {
                tracing::warn!(
                    broker,
                    partitions = moved,
                    "no word from broker within broker.session.timeout.ms; fencing it"
                );
            } else {
                tracing::info!(
                    broker,
                    partitions = moved,
                    "broker heard again; unfencing it"
                );
            }
            self.propose_records(&records, "fencing");
        }
    }

    /// As the controller, move the partitions a fenced broker still leads
    /// or is in sync with (a fence whose changes a concurrent change made
    /// skip), at most once per
    /// [`REPAIR_RETRY`] so an uncommitted repair is not proposed twice.
    fn maybe_repair(&mut self, now: Now) {
        if self.repair_checked == self.applied
            || self
                .repaired_at
                .is_some_and(|at| at.saturating_add(REPAIR_RETRY) > now.mono)
        {
            return;
        }
        let unclean = unclean(&self.image, self.unclean_default);
        let records = controller::repair_leaders(&self.image, unclean);
        if records.is_empty() {
            self.repair_checked = self.applied;
            return;
        }
        self.repaired_at = Some(now.mono);
        tracing::warn!(
            partitions = records.len(),
            "partitions led by, or in sync with, a fenced broker; repairing them"
        );
        self.propose_records(&records, "leader repair");
    }

    /// As the leader, append a NoOp record when the log was idle for
    /// `metadata.max.idle.interval.ms`.
    pub(super) fn maybe_no_op(&mut self, now: Now) {
        if self.idle_interval.is_zero() || self.node.raft.state != StateRole::Leader {
            return;
        }
        let last = self.node.raft.raft_log.last_index();
        if last != self.last_index.0 {
            self.last_index = (last, now.mono);
        }
        if self.last_index.1.saturating_add(self.idle_interval) > now.mono {
            return;
        }
        self.last_index.1 = now.mono;
        self.propose_records(&[Record::NoOp], "NoOp");
    }

    /// Propose this broker's registration while the image lacks it (or
    /// names another endpoint), once a leader is known, at most once per
    /// [`REGISTER_RETRY`].
    pub(super) fn maybe_register(&mut self, now: Now) {
        let current = self
            .image
            .brokers
            .get(&self.node_id)
            .is_some_and(|r| r.endpoint == self.endpoint);
        if current || self.node.raft.leader_id == 0 {
            return;
        }
        if self
            .registered_at
            .is_some_and(|at| at.saturating_add(REGISTER_RETRY) > now.mono)
        {
            return;
        }
        self.registered_at = Some(now.mono);
        let record = Record::RegisterBroker {
            broker_id: self.node_id,
            endpoint: self.endpoint.clone(),
        };
        // A follower forwards the proposal to the leader; with none it is
        // dropped, and proposed again later.
        self.propose_records(&[record], "registration");
    }

    /// Claim `size` producer ids for this broker, from the next free one
    /// (or `floor`, when higher: ids this broker handed out before). The
    /// next free id the claim was made from, when proposed (a follower
    /// forwards it to the leader; with none known it is not).
    pub(crate) fn claim_producer_ids(&mut self, floor: i64, size: i64) -> Option<i64> {
        if self.failed || self.node.raft.leader_id == 0 {
            return None;
        }
        let from = self.image.next_producer_id;
        let start = from.max(floor);
        let record = Record::ProducerIds {
            broker_id: self.node_id,
            from,
            start,
            end: start.saturating_add(size),
        };
        let proposed = self
            .node
            .propose(Vec::new(), Record::encode_all(&[record]).to_vec());
        self.after_call();
        self.drive();
        match proposed {
            Ok(()) => Some(from),
            Err(e) => {
                tracing::debug!(error = %e, "producer id claim not proposed");
                None
            }
        }
    }
}
