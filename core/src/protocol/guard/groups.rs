//! Fixtures and checks for the consumer-group and producer-id APIs' walks,
//! which the shared checks in `guard::tests` run too.

/// Fixtures for the shared checks in `guard::tests`, which run them over
/// [`tests::VERSIONS`] too, and tests of these APIs alone.
pub(super) mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Decodable;

    use super::super::tests::{Prefix, enc, flexible, name, s, tags};
    use super::super::{counts_fit, walk};

    /// The group APIs and the versions the guard walks, as the broker is
    /// to answer them (whether or not `protocol::APIS` advertises them yet).
    pub(in super::super) const VERSIONS: &[(ApiKey, i16, i16)] = &[
        (ApiKey::FindCoordinator, 0, 4),
        (ApiKey::JoinGroup, 0, 7),
        (ApiKey::SyncGroup, 0, 5),
        (ApiKey::Heartbeat, 0, 4),
        (ApiKey::LeaveGroup, 0, 4),
        (ApiKey::OffsetCommit, 2, 8),
        (ApiKey::OffsetFetch, 1, 8),
        (ApiKey::ListGroups, 0, 5),
        (ApiKey::DescribeGroups, 0, 5),
        (ApiKey::DeleteGroups, 0, 2),
        (ApiKey::InitProducerId, 0, 4),
    ];

    /// Follows a body as the encoder lays it out, noting where each
    /// length or count prefix sits and what it holds.
    struct Layout {
        at: usize,
        flex: bool,
        prefixes: Vec<Prefix>,
    }

    impl Layout {
        fn new(flex: bool) -> Self {
            Layout {
                at: 0,
                flex,
                prefixes: vec![],
            }
        }

        fn width(&self, classic: usize) -> usize {
            if self.flex { 1 } else { classic }
        }

        fn fixed(&mut self, n: usize) -> &mut Self {
            self.at += n;
            self
        }

        fn prefix(&mut self, width: usize, len: usize) -> &mut Self {
            self.prefixes.push((self.at, width, len));
            self.at += self.width(width);
            self
        }

        fn string(&mut self, len: usize) -> &mut Self {
            self.prefix(2, len).fixed(len)
        }

        fn null_string(&mut self) -> &mut Self {
            self.fixed(self.width(2))
        }

        fn bytes(&mut self, len: usize) -> &mut Self {
            self.prefix(4, len).fixed(len)
        }

        fn array(&mut self, count: usize) -> &mut Self {
            self.prefix(4, count)
        }

        fn null_array(&mut self) -> &mut Self {
            self.fixed(self.width(4))
        }

        /// An empty tagged-field section.
        fn tags(&mut self) -> &mut Self {
            self.fixed(usize::from(self.flex))
        }

        /// The section `guard::tests::tags` fills: one field of 7 bytes.
        fn unknown_tags(&mut self) -> &mut Self {
            self.fixed(if self.flex { 3 + 7 } else { 0 })
        }

        /// The body and its prefixes, once the layout has reached its end.
        fn done(&self, body: Vec<u8>) -> (Vec<u8>, Vec<Prefix>) {
            assert_eq!(self.at, body.len(), "layout and body disagree");
            (body, self.prefixes.clone())
        }
    }

    fn group(id: &'static str) -> GroupId {
        GroupId(s(id))
    }

    /// A realistic body for a group API at `v`, and where its prefixes are.
    pub(in super::super) fn realistic(key: ApiKey, v: i16) -> (Vec<u8>, Vec<Prefix>) {
        let flex = flexible(key, v);
        let mut l = Layout::new(flex);
        match key {
            ApiKey::FindCoordinator if v <= 3 => {
                let req = FindCoordinatorRequest::default()
                    .with_key(s("orders-app"))
                    .with_key_type(if v >= 1 { 1 } else { 0 })
                    .with_unknown_tagged_fields(tags(flex));
                l.string(10).fixed(if v >= 1 { 1 } else { 0 });
                l.unknown_tags().done(enc(req, v))
            }
            ApiKey::FindCoordinator => {
                let req = FindCoordinatorRequest::default()
                    .with_coordinator_keys(vec![s("group-a"), s("group-bb")])
                    .with_unknown_tagged_fields(tags(flex));
                l.fixed(1).array(2).string(7).string(8);
                l.unknown_tags().done(enc(req, v))
            }
            ApiKey::JoinGroup => {
                let protocol = |n, meta: &'static [u8]| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(n))
                        .with_metadata(Bytes::from_static(meta))
                };
                let req = JoinGroupRequest::default()
                    .with_group_id(group("group-a"))
                    .with_session_timeout_ms(45_000)
                    .with_rebalance_timeout_ms(300_000)
                    .with_member_id(s("m-1"))
                    .with_group_instance_id((v >= 5).then(|| s("inst-1")))
                    .with_protocol_type(s("consumer"))
                    .with_protocols(vec![
                        protocol("range", b"\0\x03\0\0\0\x01\0\x06orders"),
                        protocol("roundrobin", b""),
                    ])
                    .with_unknown_tagged_fields(tags(flex));
                l.string(7).fixed(4 + if v >= 1 { 4 } else { 0 }).string(3);
                if v >= 5 {
                    l.string(6);
                }
                l.string(8).array(2);
                l.string(5).bytes(14).tags().string(10).bytes(0).tags();
                l.unknown_tags().done(enc(req, v))
            }
            ApiKey::SyncGroup => {
                let assignment = |m, a: &'static [u8]| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::from_static(a))
                };
                let mut req = SyncGroupRequest::default()
                    .with_group_id(group("group-a"))
                    .with_generation_id(3)
                    .with_member_id(s("m-1"))
                    .with_group_instance_id((v >= 3).then(|| s("inst-1")))
                    .with_assignments(vec![
                        assignment("m-1", b"\0\x03\0\0\0\x01\0\x06orders\0\0\0\0"),
                        assignment("m-22", b""),
                    ])
                    .with_unknown_tagged_fields(tags(flex));
                l.string(7).fixed(4).string(3);
                if v >= 3 {
                    l.string(6);
                }
                if v >= 5 {
                    req = req
                        .with_protocol_type(Some(s("consumer")))
                        .with_protocol_name(Some(s("range")));
                    l.string(8).string(5);
                }
                l.array(2).string(3).bytes(18).tags();
                l.string(4).bytes(0).tags();
                l.unknown_tags().done(enc(req, v))
            }
            ApiKey::Heartbeat => {
                let req = HeartbeatRequest::default()
                    .with_group_id(group("group-a"))
                    .with_generation_id(3)
                    .with_member_id(s("m-1"))
                    .with_group_instance_id((v >= 3).then(|| s("inst-1")))
                    .with_unknown_tagged_fields(tags(flex));
                l.string(7).fixed(4).string(3);
                if v >= 3 {
                    l.string(6);
                }
                l.unknown_tags().done(enc(req, v))
            }
            ApiKey::LeaveGroup if v <= 2 => {
                let req = LeaveGroupRequest::default()
                    .with_group_id(group("group-a"))
                    .with_member_id(s("m-1"));
                l.string(7).string(3).done(enc(req, v))
            }
            ApiKey::LeaveGroup => {
                let member = |m, i: Option<&'static str>| {
                    MemberIdentity::default()
                        .with_member_id(s(m))
                        .with_group_instance_id(i.map(s))
                };
                let req = LeaveGroupRequest::default()
                    .with_group_id(group("group-a"))
                    .with_members(vec![member("m-1", Some("inst-1")), member("m-22", None)])
                    .with_unknown_tagged_fields(tags(flex));
                l.string(7).array(2).string(3).string(6).tags();
                l.string(4).null_string().tags();
                l.unknown_tags().done(enc(req, v))
            }
            ApiKey::OffsetCommit => {
                let part = |i, offset, meta: Option<&'static str>| {
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(i)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(if v >= 6 { 5 } else { -1 })
                        .with_committed_metadata(meta.map(s))
                        .with_unknown_tagged_fields(tags(flex))
                };
                let topic = |n, parts| {
                    OffsetCommitRequestTopic::default()
                        .with_name(name(n))
                        .with_partitions(parts)
                };
                let req = OffsetCommitRequest::default()
                    .with_group_id(group("group-a"))
                    .with_generation_id_or_member_epoch(3)
                    .with_member_id(s("m-1"))
                    .with_group_instance_id((v >= 7).then(|| s("inst-1")))
                    .with_retention_time_ms(-1)
                    .with_topics(vec![
                        topic("orders", vec![part(0, 100, Some("meta")), part(1, 9, None)]),
                        topic("payments", vec![part(0, 5, Some(""))]),
                    ]);
                l.string(7).fixed(4).string(3);
                if v >= 7 {
                    l.string(6);
                }
                if v <= 4 {
                    l.fixed(8);
                }
                let partition = 4 + 8 + if v >= 6 { 4 } else { 0 };
                l.array(2).string(6).array(2);
                l.fixed(partition).string(4).unknown_tags();
                l.fixed(partition).null_string().unknown_tags().tags();
                l.string(8).array(1);
                l.fixed(partition).string(0).unknown_tags();
                l.tags().tags().done(enc(req, v))
            }
            ApiKey::OffsetFetch if v <= 7 => {
                let topic = |n, parts| {
                    OffsetFetchRequestTopic::default()
                        .with_name(name(n))
                        .with_partition_indexes(parts)
                };
                let req = OffsetFetchRequest::default()
                    .with_group_id(group("group-a"))
                    .with_topics(Some(vec![
                        topic("orders", vec![0, 1, 2]),
                        topic("payments", vec![0]),
                    ]))
                    .with_require_stable(v >= 7)
                    .with_unknown_tagged_fields(tags(flex));
                l.string(7).array(2);
                l.string(6).array(3).fixed(12).tags();
                l.string(8).array(1).fixed(4).tags();
                l.fixed(if v >= 7 { 1 } else { 0 });
                l.unknown_tags().done(enc(req, v))
            }
            ApiKey::OffsetFetch => {
                let topic = |n, parts| {
                    OffsetFetchRequestTopics::default()
                        .with_name(name(n))
                        .with_partition_indexes(parts)
                };
                let g = |id, topics| {
                    OffsetFetchRequestGroup::default()
                        .with_group_id(group(id))
                        .with_topics(topics)
                        .with_unknown_tagged_fields(tags(flex))
                };
                let two = vec![topic("orders", vec![0, 1]), topic("payments", vec![])];
                let req = OffsetFetchRequest::default()
                    .with_groups(vec![g("group-a", Some(two)), g("group-bb", None)])
                    .with_require_stable(true);
                l.array(2).string(7).array(2);
                l.string(6).array(2).fixed(8).tags();
                l.string(8).array(0).tags().unknown_tags();
                l.string(8).null_array().unknown_tags();
                l.fixed(1).tags().done(enc(req, v))
            }
            ApiKey::ListGroups => {
                let mut req = ListGroupsRequest::default().with_unknown_tagged_fields(tags(flex));
                if v >= 4 {
                    req = req.with_states_filter(vec![s("Stable"), s("PreparingRebalance")]);
                    l.array(2).string(6).string(18);
                }
                if v >= 5 {
                    req = req.with_types_filter(vec![s("classic")]);
                    l.array(1).string(7);
                }
                l.unknown_tags().done(enc(req, v))
            }
            ApiKey::DescribeGroups => {
                let req = DescribeGroupsRequest::default()
                    .with_groups(vec![group("group-a"), group("group-bb")])
                    .with_include_authorized_operations(v >= 3)
                    .with_unknown_tagged_fields(tags(flex));
                l.array(2).string(7).string(8);
                l.fixed(if v >= 3 { 1 } else { 0 });
                l.unknown_tags().done(enc(req, v))
            }
            ApiKey::DeleteGroups => {
                let req = DeleteGroupsRequest::default()
                    .with_groups_names(vec![group("group-a"), group("group-bb")])
                    .with_unknown_tagged_fields(tags(flex));
                l.array(2).string(7).string(8);
                l.unknown_tags().done(enc(req, v))
            }
            ApiKey::InitProducerId => {
                let mut req = InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s("txn-1"))))
                    .with_transaction_timeout_ms(60_000)
                    .with_unknown_tagged_fields(tags(flex));
                l.string(5).fixed(4);
                if v >= 3 {
                    req = req
                        .with_producer_id(ProducerId(4000))
                        .with_producer_epoch(2);
                    l.fixed(8 + 2);
                }
                l.unknown_tags().done(enc(req, v))
            }
            _ => unreachable!("{key:?} is not a group API"),
        }
    }

    /// Bodies whose arrays hold `N` elements of the fewest bytes each, one
    /// body per array.
    pub(in super::super) fn minimal(key: ApiKey, v: i16) -> Vec<Vec<u8>> {
        const N: usize = 40;
        fn n<T: Default + Clone>() -> Vec<T> {
            vec![T::default(); N]
        }
        match key {
            ApiKey::FindCoordinator if v >= 4 => {
                let req = FindCoordinatorRequest::default().with_coordinator_keys(n());
                vec![enc(req, v)]
            }
            ApiKey::FindCoordinator => vec![enc(FindCoordinatorRequest::default(), v)],
            ApiKey::JoinGroup => vec![enc(JoinGroupRequest::default().with_protocols(n()), v)],
            ApiKey::SyncGroup => vec![enc(SyncGroupRequest::default().with_assignments(n()), v)],
            ApiKey::Heartbeat => vec![enc(HeartbeatRequest::default(), v)],
            ApiKey::LeaveGroup if v >= 3 => {
                vec![enc(LeaveGroupRequest::default().with_members(n()), v)]
            }
            ApiKey::LeaveGroup => vec![enc(LeaveGroupRequest::default(), v)],
            ApiKey::OffsetCommit => {
                let one = OffsetCommitRequestTopic::default().with_partitions(n());
                let req = OffsetCommitRequest::default();
                let reqs = [req.clone().with_topics(n()), req.with_topics(vec![one])];
                reqs.map(|r| enc(r, v)).to_vec()
            }
            ApiKey::OffsetFetch if v <= 7 => {
                let one = OffsetFetchRequestTopic::default().with_partition_indexes(vec![0; N]);
                let req = OffsetFetchRequest::default();
                let reqs = [
                    req.clone().with_topics(Some(n())),
                    req.with_topics(Some(vec![one])),
                ];
                reqs.map(|r| enc(r, v)).to_vec()
            }
            ApiKey::OffsetFetch => {
                let one = OffsetFetchRequestTopics::default().with_partition_indexes(vec![0; N]);
                let g = OffsetFetchRequestGroup::default();
                let groups = [
                    n(),
                    vec![g.clone().with_topics(Some(n()))],
                    vec![g.with_topics(Some(vec![one]))],
                ];
                let req = |g| OffsetFetchRequest::default().with_groups(g);
                groups.map(|g| enc(req(g), v)).to_vec()
            }
            ApiKey::ListGroups if v >= 4 => {
                vec![enc(ListGroupsRequest::default().with_states_filter(n()), v)]
            }
            ApiKey::ListGroups => vec![enc(ListGroupsRequest::default(), v)],
            ApiKey::DescribeGroups => {
                vec![enc(DescribeGroupsRequest::default().with_groups(n()), v)]
            }
            ApiKey::DeleteGroups => {
                let req = DeleteGroupsRequest::default().with_groups_names(n());
                vec![enc(req, v)]
            }
            ApiKey::InitProducerId => vec![enc(InitProducerIdRequest::default(), v)],
            _ => unreachable!("{key:?} is not a group API"),
        }
    }

    /// What kafka-protocol makes of a group API body.
    pub(in super::super) fn kp_decodes(key: ApiKey, v: i16, body: &[u8]) -> bool {
        let b = &mut Bytes::copy_from_slice(body);
        match key {
            ApiKey::FindCoordinator => FindCoordinatorRequest::decode(b, v).is_ok(),
            ApiKey::JoinGroup => JoinGroupRequest::decode(b, v).is_ok(),
            ApiKey::SyncGroup => SyncGroupRequest::decode(b, v).is_ok(),
            ApiKey::Heartbeat => HeartbeatRequest::decode(b, v).is_ok(),
            ApiKey::LeaveGroup => LeaveGroupRequest::decode(b, v).is_ok(),
            ApiKey::OffsetCommit => OffsetCommitRequest::decode(b, v).is_ok(),
            ApiKey::OffsetFetch => OffsetFetchRequest::decode(b, v).is_ok(),
            ApiKey::ListGroups => ListGroupsRequest::decode(b, v).is_ok(),
            ApiKey::DescribeGroups => DescribeGroupsRequest::decode(b, v).is_ok(),
            ApiKey::DeleteGroups => DeleteGroupsRequest::decode(b, v).is_ok(),
            ApiKey::InitProducerId => InitProducerIdRequest::decode(b, v).is_ok(),
            _ => unreachable!("{key:?} is not a group API"),
        }
    }

    #[test]
    fn versions_outside_the_walked_ranges_are_refused() {
        for &(key, min, max) in VERSIONS {
            let body = realistic(key, max).0;
            assert_eq!(walk(key, max, &body), Some(0), "{key:?} v{max}");
            assert!(!counts_fit(key, max + 1, &body), "{key:?} v{}", max + 1);
            assert!(!counts_fit(key, min - 1, &[0; 64]), "{key:?} v{}", min - 1);
        }
    }

    #[test]
    fn a_tiny_request_claiming_a_billion_elements_is_refused() {
        // JoinGroup v5: group_id "", session and rebalance timeouts,
        // member_id "", group_instance_id null, protocol_type "", then a
        // protocols count of a billion.
        let mut body = vec![
            0, 0, 0, 0, 0x75, 0x30, 0, 4, 0x93, 0xe0, 0, 0, 0xff, 0xff, 0, 0,
        ];
        body.extend_from_slice(&1_000_000_000u32.to_be_bytes());
        assert!(!counts_fit(ApiKey::JoinGroup, 5, &body));
        let body = Bytes::from(body);
        let decoded = crate::protocol::decode::<JoinGroupRequest>(ApiKey::JoinGroup, &body, 5);
        assert!(decoded.is_none());
        // The same count with its protocols really there would pass.
        let mut one = body[..16].to_vec();
        one.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(walk(ApiKey::JoinGroup, 5, &one), Some(0));
        assert!(kp_decodes(ApiKey::JoinGroup, 5, &one));
        // OffsetFetch v8: a billion groups in five bytes.
        let groups = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(!counts_fit(ApiKey::OffsetFetch, 8, &groups));
    }
}
