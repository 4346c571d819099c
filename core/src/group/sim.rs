//! The test harness: a `Sim` drives the coordinator under simulated time
//! as the broker does (draining parked responses and persisted snapshots
//! after every input), checks every response encodes at its request's
//! version, and that no deadline is left overdue after an input.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DescribeGroupsResponse, GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::reply::code;
use super::*;
use crate::time::Instant;

pub(super) fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

/// Protocols named `names`, each with metadata `meta-<name>`.
pub(super) fn protos(names: &[&str]) -> Vec<(String, Bytes)> {
    names
        .iter()
        .map(|n| (n.to_string(), Bytes::from(format!("meta-{n}"))))
        .collect()
}

/// Asserts `msg` encodes at `version` (kafka-protocol refuses fields the
/// version lacks).
pub(super) fn encodes<T: Encodable + std::fmt::Debug>(msg: &T, version: i16) {
    let mut buf = BytesMut::new();
    if let Err(e) = msg.encode(&mut buf, version) {
        panic!("does not encode at v{version}: {e}\n{msg:?}");
    }
}

/// A JoinGroup to build.
#[derive(Clone, Debug)]
pub(super) struct J {
    pub version: i16,
    pub group: String,
    pub client: String,
    pub member: String,
    pub instance: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub session_ms: i32,
    pub rebalance_ms: i32,
}

impl J {
    pub fn new(group: &str, client: &str) -> Self {
        Self {
            version: 5,
            group: group.into(),
            client: client.into(),
            member: String::new(),
            instance: None,
            protocol_type: "consumer".into(),
            protocols: protos(&["range"]),
            session_ms: 10_000,
            rebalance_ms: 60_000,
        }
    }
    pub fn v(mut self, v: i16) -> Self {
        self.version = v;
        self
    }
    pub fn member(mut self, m: &str) -> Self {
        self.member = m.into();
        self
    }
    pub fn instance(mut self, i: &str) -> Self {
        self.instance = Some(i.into());
        self
    }
    pub fn protocols(mut self, names: &[&str]) -> Self {
        self.protocols = protos(names);
        self
    }
    pub fn session(mut self, ms: i32) -> Self {
        self.session_ms = ms;
        self
    }
    pub fn rebalance(mut self, ms: i32) -> Self {
        self.rebalance_ms = ms;
        self
    }
    fn request(&self) -> JoinGroupRequest {
        let mut r = JoinGroupRequest::default();
        r.group_id = GroupId(s(&self.group));
        r.session_timeout_ms = self.session_ms;
        r.rebalance_timeout_ms = self.rebalance_ms;
        r.member_id = s(&self.member);
        r.group_instance_id = self.instance.as_deref().map(s);
        r.protocol_type = s(&self.protocol_type);
        r.protocols = self
            .protocols
            .iter()
            .map(|(n, m)| {
                let mut p = JoinGroupRequestProtocol::default();
                p.name = s(n);
                p.metadata = m.clone();
                p
            })
            .collect();
        r
    }
}

pub(super) struct Sim {
    pub c: Coordinator,
    pub now: Instant,
    /// Parked responses drained so far, not yet taken by a test.
    pub ready: Vec<Parked>,
    pub persisted: Vec<(String, Option<GroupSnapshot>)>,
    /// Tickets handed out, not yet answered, and the version they were
    /// asked at.
    versions: HashMap<Ticket, i16>,
}

impl Sim {
    pub fn new() -> Self {
        Self::with(GroupConfig::default())
    }

    pub fn with(cfg: GroupConfig) -> Self {
        Self {
            c: Coordinator::new(cfg),
            now: Instant::from_nanos(1_000_000_000),
            ready: Vec::new(),
            persisted: Vec::new(),
            versions: HashMap::new(),
        }
    }

    /// Moves time on by `ms` and lets the coordinator act on it.
    pub fn advance(&mut self, ms: u64) {
        self.now = self.now.saturating_add(Duration::from_millis(ms));
        self.c.handle_timeout(self.now);
        self.drain();
    }

    /// Moves time to the next deadline (if any) and runs it.
    pub fn advance_to_deadline(&mut self) -> bool {
        let Some(at) = self.c.next_deadline() else {
            return false;
        };
        self.now = self.now.max(at);
        self.c.handle_timeout(self.now);
        self.drain();
        true
    }

    /// The connection of a parked request closed.
    pub fn cancel(&mut self, t: Ticket) {
        self.c.cancel(t);
        self.versions.remove(&t);
    }

    /// Tickets handed out and neither answered nor cancelled.
    pub fn unanswered(&self) -> Vec<Ticket> {
        self.versions.keys().copied().collect()
    }

    pub fn drain(&mut self) {
        while let Some(p) = self.c.poll_parked() {
            let v = self
                .versions
                .remove(&p.ticket())
                .expect("a parked response answers a live ticket, once");
            match &p {
                Parked::Join(_, r) => encodes(r, v),
                Parked::Sync(_, r) => encodes(r, v),
            }
            self.ready.push(p);
        }
        while let Some(p) = self.c.poll_persist() {
            self.persisted.push(p);
        }
        if let Some(at) = self.c.next_deadline() {
            assert!(at > self.now, "a due deadline survived an input");
        }
    }

    pub fn join(&mut self, j: &J) -> Reply<JoinGroupResponse> {
        let reply = self
            .c
            .join_group(self.now, j.version, &j.client, "/10.0.0.1", j.request());
        match &reply {
            Reply::Now(r) => encodes(r, j.version),
            Reply::Later(t) => {
                assert!(
                    self.versions.insert(*t, j.version).is_none(),
                    "ticket reused"
                );
            }
        }
        self.drain();
        reply
    }

    /// Joins as a new member, doing the MEMBER_ID_REQUIRED round trip when
    /// the version asks for it. Returns the member id and the reply to the
    /// JoinGroup that entered the group.
    pub fn join_new(&mut self, j: &J) -> (String, Reply<JoinGroupResponse>) {
        assert!(j.member.is_empty());
        let first = self.join(j);
        if j.version >= 4 && j.instance.is_none() {
            let Reply::Now(r) = first else {
                panic!("MEMBER_ID_REQUIRED comes at once")
            };
            assert_eq!(r.error_code, code::MEMBER_ID_REQUIRED);
            let id = r.member_id.to_string();
            let second = self.join(&j.clone().member(&id));
            return (id, second);
        }
        let id = match &first {
            Reply::Now(r) => r.member_id.to_string(),
            Reply::Later(t) => self.member_of(*t),
        };
        (id, first)
    }

    /// The member a parked ticket belongs to (through the coordinator's
    /// bookkeeping: the client learns it only from the response).
    pub fn member_of(&self, t: Ticket) -> String {
        self.c
            .out
            .parked
            .get(&t)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub fn take_join(&mut self, t: Ticket) -> Option<JoinGroupResponse> {
        let i = self.ready.iter().position(|p| p.ticket() == t)?;
        match self.ready.remove(i) {
            Parked::Join(_, r) => Some(r),
            Parked::Sync(..) => panic!("ticket {t:?} was a JoinGroup"),
        }
    }

    pub fn take_sync(&mut self, t: Ticket) -> Option<SyncGroupResponse> {
        let i = self.ready.iter().position(|p| p.ticket() == t)?;
        match self.ready.remove(i) {
            Parked::Sync(_, r) => Some(r),
            Parked::Join(..) => panic!("ticket {t:?} was a SyncGroup"),
        }
    }

    /// A join reply, now or after time moves to deadlines until it comes.
    pub fn await_join(&mut self, reply: Reply<JoinGroupResponse>) -> JoinGroupResponse {
        match reply {
            Reply::Now(r) => r,
            Reply::Later(t) => {
                for _ in 0..100 {
                    if let Some(r) = self.take_join(t) {
                        return r;
                    }
                    assert!(self.advance_to_deadline(), "nothing left to wait for");
                }
                panic!("JoinGroup {t:?} never answered")
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        version: i16,
        group: &str,
        generation: i32,
        member: &str,
        instance: Option<&str>,
        assignments: &[(&str, &str)],
    ) -> Reply<SyncGroupResponse> {
        let mut r = SyncGroupRequest::default();
        r.group_id = GroupId(s(group));
        r.generation_id = generation;
        r.member_id = s(member);
        r.group_instance_id = instance.map(s);
        r.assignments = assignments
            .iter()
            .map(|(m, a)| {
                let mut x = SyncGroupRequestAssignment::default();
                x.member_id = s(m);
                x.assignment = Bytes::from(a.to_string());
                x
            })
            .collect();
        let reply = self.c.sync_group(self.now, version, r);
        match &reply {
            Reply::Now(r) => encodes(r, version),
            Reply::Later(t) => {
                assert!(self.versions.insert(*t, version).is_none(), "ticket reused");
            }
        }
        self.drain();
        reply
    }

    pub fn heartbeat(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        instance: Option<&str>,
    ) -> i16 {
        let mut r = HeartbeatRequest::default();
        r.group_id = GroupId(s(group));
        r.generation_id = generation;
        r.member_id = s(member);
        r.group_instance_id = instance.map(s);
        let resp = self.c.heartbeat(self.now, 3, r);
        encodes(&resp, 3);
        self.drain();
        resp.error_code
    }

    pub fn leave(
        &mut self,
        version: i16,
        group: &str,
        members: &[(&str, Option<&str>)],
    ) -> LeaveGroupResponse {
        let mut r = LeaveGroupRequest::default();
        r.group_id = GroupId(s(group));
        if version <= 2 {
            r.member_id = s(members[0].0);
        } else {
            r.members = members
                .iter()
                .map(|(m, i)| {
                    let mut x = MemberIdentity::default();
                    x.member_id = s(m);
                    x.group_instance_id = i.map(s);
                    x
                })
                .collect();
        }
        let resp = self.c.leave_group(self.now, version, r);
        encodes(&resp, version);
        self.drain();
        resp
    }

    pub fn describe(&self, version: i16, group: &str) -> DescribeGroupsResponse {
        let mut r = DescribeGroupsRequest::default();
        r.groups = vec![GroupId(s(group))];
        let resp = self.c.describe_groups(version, &r);
        encodes(&resp, version);
        resp
    }

    pub fn state(&self, group: &str) -> Option<GroupState> {
        self.c.group_state(group)
    }

    /// Builds a stable group: `n` members join together (v5), the first
    /// becomes leader and assigns `"a-<i>"` to member i. Returns the member
    /// ids in join order and the generation.
    pub fn stable_group(&mut self, group: &str, n: usize) -> (Vec<String>, i32) {
        let mut ids = Vec::new();
        let mut replies = Vec::new();
        for i in 0..n {
            let (id, reply) = self.join_new(&J::new(group, &format!("c{i}")));
            ids.push(id);
            replies.push(reply);
        }
        let responses: Vec<JoinGroupResponse> =
            replies.into_iter().map(|r| self.await_join(r)).collect();
        let generation = responses[0].generation_id;
        assert_eq!(responses[0].leader.as_str(), ids[0]);
        let assignment: Vec<(String, String)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), format!("a-{i}")))
            .collect();
        let pairs: Vec<(&str, &str)> = assignment
            .iter()
            .map(|(m, a)| (m.as_str(), a.as_str()))
            .collect();
        let mut follower_tickets = Vec::new();
        for id in &ids[1..] {
            match self.sync(3, group, generation, id, None, &[]) {
                Reply::Later(t) => follower_tickets.push(t),
                Reply::Now(r) => panic!("a follower's sync waits for the leader: {r:?}"),
            }
        }
        let Reply::Now(lr) = self.sync(3, group, generation, &ids[0], None, &pairs) else {
            panic!("the leader's sync is answered at once")
        };
        assert_eq!(lr.assignment, Bytes::from("a-0"));
        for (i, t) in follower_tickets.into_iter().enumerate() {
            let r = self
                .take_sync(t)
                .expect("followers answered after the leader");
            assert_eq!(r.error_code, 0);
            assert_eq!(r.assignment, Bytes::from(format!("a-{}", i + 1)));
        }
        assert_eq!(self.state(group), Some(GroupState::Stable));
        (ids, generation)
    }
}

pub(super) fn now_join(reply: Reply<JoinGroupResponse>) -> JoinGroupResponse {
    match reply {
        Reply::Now(r) => r,
        Reply::Later(t) => panic!("expected an immediate JoinGroup answer, got {t:?}"),
    }
}

pub(super) fn later<T: std::fmt::Debug>(reply: Reply<T>) -> Ticket {
    match reply {
        Reply::Later(t) => t,
        Reply::Now(r) => panic!("expected a parked request, got {r:?}"),
    }
}
