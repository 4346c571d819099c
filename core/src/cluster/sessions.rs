//! Broker sessions, as the active controller keeps them: which brokers it
//! hears from, and which it fences (`broker.session.timeout.ms` without a
//! word) or unfences (heard again and holding the metadata up to now).
//!
//! Every broker is a voter, and a voter answers each of the leader's Raft
//! heartbeats (every two quorum ticks), so the messages the quorum already
//! exchanges are the brokers' heartbeats: Kafka's BrokerHeartbeat would
//! say nothing they do not. What a session is stays Kafka's: held in the
//! controller's memory, not in the log, and started afresh for every broker
//! when a controller takes over, so a new controller fences nobody before
//! a whole session has passed.

use std::collections::HashMap;
use std::time::Duration;

use super::records::Image;
use crate::time::Instant;

/// How often a fencing or unfencing not yet applied is proposed again (a
/// proposal can be lost with a leader change).
const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(super) struct Sessions {
    timeout: Duration,
    /// The term this node leads in, and since when.
    leading: Option<(u64, Instant)>,
    /// When each broker was last heard from.
    heard: HashMap<i32, Instant>,
    /// When each broker the image has fenced was fenced, as far as this
    /// controller knows (when it took over, for one fenced before).
    fenced_since: HashMap<i32, Instant>,
    /// A change proposed and not yet applied: (fence, when).
    proposed: HashMap<i32, (bool, Instant)>,
}

impl Sessions {
    pub(super) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            leading: None,
            heard: HashMap::new(),
            fenced_since: HashMap::new(),
            proposed: HashMap::new(),
        }
    }

    /// A message came from `node`.
    pub(super) fn heard(&mut self, node: i32, now: Instant) {
        self.heard.insert(node, now);
    }

    /// This node no longer leads.
    pub(super) fn step_down(&mut self) {
        self.leading = None;
    }

    /// As the controller in `term`, the brokers to fence (`true`) or
    /// unfence (`false`) now, given the image; `me` is never fenced, and
    /// `caught_up` says whether a broker holds the metadata applied here.
    pub(super) fn due(
        &mut self,
        term: u64,
        image: &Image,
        me: i32,
        now: Instant,
        caught_up: impl Fn(i32) -> bool,
    ) -> Vec<(i32, bool)> {
        if self.leading.is_none_or(|(t, _)| t != term) {
            // A new controller: every session starts now.
            self.leading = Some((term, now));
            self.fenced_since.clear();
            self.proposed.clear();
        }
        let since = self.leading.map_or(now, |(_, at)| at);
        let mut due = Vec::new();
        for (&id, r) in &image.brokers {
            if self
                .proposed
                .get(&id)
                .is_some_and(|&(fence, at)| fence != r.fenced && at.saturating_add(RETRY) > now)
            {
                continue;
            }
            self.proposed.remove(&id);
            let heard = self.heard.get(&id).copied();
            if r.fenced {
                let fenced_at = *self.fenced_since.entry(id).or_insert(since);
                let back = id == me || heard.is_some_and(|h| h > fenced_at);
                if back && caught_up(id) {
                    due.push((id, false));
                }
            } else {
                self.fenced_since.remove(&id);
                let last = heard.map_or(since, |h| h.max(since));
                if id != me && last.saturating_add(self.timeout) <= now {
                    due.push((id, true));
                }
            }
        }
        for &(id, fence) in &due {
            self.proposed.insert(id, (fence, now));
            if fence {
                self.fenced_since.insert(id, now);
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::Registration;

    fn image(fenced: &[(i32, bool)]) -> Image {
        let mut i = Image::default();
        for &(id, fenced) in fenced {
            let endpoint = format!("h:{id}");
            let r = Registration {
                epoch: 1,
                endpoint,
                fenced,
            };
            i.brokers.insert(id, r);
        }
        i
    }

    #[test]
    fn silent_brokers_are_fenced_after_a_session_and_unfenced_when_heard() {
        let t0 = Instant::from_nanos(1_000_000_000);
        let at = |ms: u64| t0.saturating_add(Duration::from_millis(ms));
        let mut s = Sessions::new(Duration::from_millis(9_000));
        let live = image(&[(0, false), (1, false), (2, false)]);
        let all = |_| true;
        assert!(s.due(1, &live, 0, at(0), all).is_empty());
        s.heard(1, at(8_000));
        // A new controller gives every broker a whole session.
        assert_eq!(s.due(1, &live, 0, at(9_000), all), vec![(2, true)]);
        // Proposed: not again until applied or the retry is due.
        assert!(s.due(1, &live, 0, at(9_500), all).is_empty());
        assert_eq!(s.due(1, &live, 0, at(10_000), all), vec![(2, true)]);
        let fenced = image(&[(0, false), (1, false), (2, true)]);
        assert!(s.due(1, &fenced, 0, at(10_100), all).is_empty());
        assert_eq!(s.due(1, &fenced, 0, at(17_000), all), vec![(1, true)]);
        // Heard again, but behind: not yet.
        s.heard(2, at(17_100));
        assert!(s.due(1, &fenced, 0, at(17_200), |b| b != 2).is_empty());
        assert_eq!(s.due(1, &fenced, 0, at(17_300), all), vec![(2, false)]);

        // A controller that takes over unfences nobody it has not heard
        // since, and fences nobody before a session passes.
        let mut s = Sessions::new(Duration::from_millis(9_000));
        s.heard(2, at(100));
        assert!(s.due(2, &fenced, 0, at(200), all).is_empty());
        s.heard(2, at(300));
        assert_eq!(s.due(2, &fenced, 0, at(400), all), vec![(2, false)]);
        // Leading again in a later term starts over.
        s.step_down();
        let quiet = image(&[(0, false), (1, false)]);
        assert!(s.due(3, &quiet, 0, at(20_000), all).is_empty());
        s.heard(1, at(28_000));
        assert!(s.due(3, &quiet, 0, at(28_999), all).is_empty());
        assert!(
            s.due(3, &quiet, 0, at(29_000), all).is_empty(),
            "1 was heard"
        );
        assert_eq!(s.due(3, &quiet, 0, at(37_000), all), vec![(1, true)]);
        // Itself, never.
        let alone = image(&[(0, false)]);
        assert!(s.due(3, &alone, 0, at(99_000), all).is_empty());
    }
}
