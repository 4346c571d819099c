//! One member of a classic group: who it is, what it supports, what it was
//! assigned, and which of its requests is parked.

use bytes::Bytes;

use super::Ticket;
use crate::time::Instant;

/// A parked JoinGroup or SyncGroup: where its response goes, and the version
/// to fill it for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Waiter {
    /// `None` once the driver cancelled it (the connection closed): the
    /// member still counts as waiting, as in Kafka, but the response is
    /// dropped.
    pub ticket: Option<Ticket>,
    pub version: i16,
}

/// One member of a group.
#[derive(Clone, Debug)]
pub(super) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// Supported protocols (assignors) with their metadata, most preferred
    /// first.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// A JoinGroup waiting for the rebalance to complete.
    pub join: Option<Waiter>,
    /// A SyncGroup waiting for the leader's assignment.
    pub sync: Option<Waiter>,
    /// Joined but not yet answered for the first time: such a member can
    /// expire while it waits (Kafka's `isNew`).
    pub is_new: bool,
    /// Join order within the group: the leader is the earliest, responses go
    /// out in this order.
    pub seq: u64,
    /// When the session (or the new-member join wait) expires, if it runs.
    pub deadline: Option<Instant>,
}

impl Member {
    /// Whether the member counts as alive without heartbeats: while a
    /// request of its own is parked, it cannot heartbeat (Kafka's
    /// `hasSatisfiedHeartbeat`). A new member's join wait still expires.
    pub fn session_paused(&self) -> bool {
        !self.is_new && (self.join.is_some() || self.sync.is_some())
    }

    /// Its metadata for `protocol`, or nothing if it does not support it.
    pub fn metadata(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(name, _)| name == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Whether it rejoined with exactly the protocols it had.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Each protocol name it supports, once.
    pub fn protocol_names(&self) -> impl Iterator<Item = &str> {
        unique_names(&self.protocols)
    }
}

/// The names in `protocols`, each once, in order.
pub(super) fn unique_names(protocols: &[(String, Bytes)]) -> impl Iterator<Item = &str> {
    protocols
        .iter()
        .enumerate()
        .filter(|(i, (name, _))| !protocols[..*i].iter().any(|(n, _)| n == name))
        .map(|(_, (name, _))| name.as_str())
}

/// A member id, `<prefix>-<uuid>`, as Kafka makes them (`prefix` is the
/// client id, or the instance id of a static member). The coordinator has no
/// randomness: the uuid is a hash of the group, the prefix, the time and a
/// counter, so ids differ across restarts (the time does) and within one run
/// (the counter does).
pub(super) fn member_id(prefix: &str, group: &str, now: Instant, counter: u64) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325_u64; // FNV-1a offset basis
    for b in group.bytes().chain([0xff]).chain(prefix.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let a = splitmix(h ^ now.as_nanos());
    let b = splitmix(a ^ counter);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    format!("{prefix}-{uuid}")
}

/// SplitMix64's finaliser: a good 64-bit mix.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_look_like_kafkas_and_differ() {
        let now = Instant::from_nanos(5);
        let a = member_id("rdkafka", "g", now, 1);
        let b = member_id("rdkafka", "g", now, 2);
        assert_ne!(a, b);
        assert!(a.starts_with("rdkafka-"));
        assert_eq!(a.len(), "rdkafka-".len() + 36);
        assert_eq!(a, member_id("rdkafka", "g", now, 1), "deterministic");
    }

    #[test]
    fn unique_names_keep_first_occurrence() {
        let p = |n: &str| (n.to_string(), Bytes::new());
        let protocols = vec![p("range"), p("rr"), p("range")];
        assert_eq!(
            unique_names(&protocols).collect::<Vec<_>>(),
            ["range", "rr"]
        );
    }
}
