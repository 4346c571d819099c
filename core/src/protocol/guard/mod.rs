//! A check run on a request body before `kafka-protocol` decodes it.
//!
//! `kafka-protocol`'s array decoders call `Vec::with_capacity(count)` with
//! the count read off the wire, so a twenty-byte request claiming a billion
//! topics makes the broker try to allocate tens of gigabytes and abort. No
//! byte from the network may crash the broker, so [`counts_fit`] first walks
//! the body field by field, in the order the decoder reads it, and refuses
//! it when a count or length claims more than the bytes left. Once a body
//! passes, every element of every array the decoder meets is really there,
//! so what it allocates is in proportion to the body's size.
//!
//! Layouts follow `kafka-protocol` 0.18's generated `*_request.rs` decoders.
//! Each API's walk lives in its module under `crate::api`; this module holds
//! the [`Reader`] they walk with and the checks that run over all of them.

#[cfg(test)]
mod groups;

use kafka_protocol::messages::ApiKey;

/// Whether every array count and string or bytes length in the body of a
/// `key` request at `version` fits in the bytes after it, with the body not
/// cut short. Only the APIs and versions the broker decodes are known;
/// anything else is refused. A body this passes may still fail to decode for
/// other reasons (bad UTF-8, a null where none is allowed, a tag not valid
/// at its version).
pub fn counts_fit(key: ApiKey, version: i16, body: &[u8]) -> bool {
    walk(key, version, body).is_some()
}

/// Walks one request body with its API's walker (each API's module holds
/// its own, registered in [`crate::api::APIS`]). Returns how many bytes
/// follow its last field (the decoder ignores them), or `None` when it does
/// not fit.
fn walk(key: ApiKey, v: i16, body: &[u8]) -> Option<usize> {
    let api = crate::api::spec(key)?;
    if v < api.min || v > api.max {
        return None;
    }
    let mut r = Reader {
        buf: body,
        flexible: v >= api.flexible,
    };
    (api.walk)(&mut r, v)?;
    Some(r.buf.len())
}

/// The size of a UUID on the wire.
pub(crate) const UUID: usize = 16;

/// The unread rest of a body, and whether its version is flexible.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    flexible: bool,
}

impl Reader<'_> {
    pub(crate) fn skip(&mut self, n: usize) -> Option<()> {
        self.buf = self.buf.get(n..)?;
        Some(())
    }

    pub(crate) fn int16(&mut self) -> Option<i16> {
        let (b, rest) = self.buf.split_first_chunk()?;
        self.buf = rest;
        Some(i16::from_be_bytes(*b))
    }

    pub(crate) fn int32(&mut self) -> Option<i32> {
        let (b, rest) = self.buf.split_first_chunk()?;
        self.buf = rest;
        Some(i32::from_be_bytes(*b))
    }

    /// An unsigned varint read as kafka-protocol reads it: at most five
    /// bytes, bits past the 32nd dropped.
    pub(crate) fn uvarint(&mut self) -> Option<u32> {
        let mut value = 0u32;
        for i in 0..5 {
            let (&b, rest) = self.buf.split_first()?;
            self.buf = rest;
            value |= u32::from(b & 0x7f) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Some(value)
    }

    /// A length or count prefix (`classic_width` bytes, or a compact
    /// uvarint of N+1), null read as 0; `None` for any other negative.
    pub(crate) fn length(&mut self, classic_width: usize) -> Option<usize> {
        let n = if self.flexible {
            i64::from(self.uvarint()?) - 1
        } else if classic_width == 2 {
            i64::from(self.int16()?)
        } else {
            i64::from(self.int32()?)
        };
        if n == -1 {
            Some(0)
        } else {
            usize::try_from(n).ok()
        }
    }

    /// A string, nullable or not.
    pub(crate) fn string(&mut self) -> Option<()> {
        let len = self.length(2)?;
        self.skip(len)
    }

    /// A bytes field, nullable or not.
    pub(crate) fn bytes(&mut self) -> Option<()> {
        let len = self.length(4)?;
        self.skip(len)
    }

    /// An array, nullable or not, whose elements each take at least `min`
    /// bytes (at least 1); `each` walks one element.
    pub(crate) fn array(
        &mut self,
        min: usize,
        mut each: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        let count = self.length(4)?;
        if count.checked_mul(min.max(1))? > self.buf.len() {
            return None;
        }
        (0..count).try_for_each(|_| each(self))
    }

    /// A tagged-field section; nothing before flexible versions.
    pub(crate) fn tags(&mut self) -> Option<()> {
        self.tags_with_string(None)
    }

    /// A tagged-field section in which the decoder reads tag `string_tag`
    /// as a compact string rather than skipping the size it claims.
    pub(crate) fn tags_with_string(&mut self, string_tag: Option<u32>) -> Option<()> {
        if !self.flexible {
            return Some(());
        }
        let count = usize::try_from(self.uvarint()?).ok()?;
        // Each field takes at least a tag byte and a size byte.
        if count.checked_mul(2)? > self.buf.len() {
            return None;
        }
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).ok()?;
            if Some(tag) == string_tag {
                self.string()?;
            } else {
                self.skip(size)?;
            }
        }
        Some(())
    }

    /// Fewest bytes a string takes: its length prefix.
    pub(crate) fn string_min(&self) -> usize {
        if self.flexible { 1 } else { 2 }
    }

    /// Fewest bytes an array or bytes field takes: its length prefix.
    pub(crate) fn prefix_min(&self) -> usize {
        if self.flexible { 1 } else { 4 }
    }

    /// Fewest bytes a tagged-field section takes.
    pub(crate) fn tags_min(&self) -> usize {
        usize::from(self.flexible)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
    };
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::api::APIS;
    use crate::log::batch::tests::batch;
    use crate::protocol::put_uvarint;

    /// Where a length prefix sits in a built body, its classic width (2 for
    /// strings, 4 for arrays and bytes) and the length it holds.
    pub(super) type Prefix = (usize, usize, usize);

    /// The APIs whose bodies the fixtures here build. An API added later
    /// checks its own walk with [`check_api`] in its module's tests.
    const FIXTURED: &[ApiKey] = &[
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
    ];

    /// Every API and version the fixtures cover, each once.
    fn versions() -> impl Iterator<Item = (ApiKey, i16)> {
        let decoded = |a: &crate::api::ApiSpec| if a.key == ApiKey::Produce { 3 } else { a.min };
        let advertised = APIS
            .iter()
            .filter(|a| FIXTURED.contains(&a.key))
            .flat_map(move |a| (decoded(a)..=a.max).map(move |v| (a.key, v)));
        let groups = groups::tests::VERSIONS
            .iter()
            .flat_map(|&(key, min, max)| (min..=max).map(move |v| (key, v)));
        let mut all = Vec::new();
        for kv in advertised.chain(groups) {
            if !all.contains(&kv) {
                all.push(kv);
            }
        }
        all.into_iter()
    }

    /// Each API's flexible versions, restated independently of `walk`.
    pub(super) fn flexible(key: ApiKey, v: i16) -> bool {
        match key {
            ApiKey::ApiVersions | ApiKey::FindCoordinator | ApiKey::ListGroups => v >= 3,
            ApiKey::Metadata | ApiKey::Produce => v >= 9,
            ApiKey::Fetch => v >= 12,
            ApiKey::ListOffsets | ApiKey::JoinGroup | ApiKey::OffsetFetch => v >= 6,
            ApiKey::CreateTopics | ApiKey::DescribeGroups => v >= 5,
            ApiKey::OffsetCommit => v >= 8,
            ApiKey::DeleteGroups | ApiKey::InitProducerId => v >= 2,
            ApiKey::DeleteTopics | ApiKey::SyncGroup | ApiKey::Heartbeat | ApiKey::LeaveGroup => {
                v >= 4
            }
            _ => unreachable!("{key:?} has no fixtures"),
        }
    }

    /// Whether `key` at `v` has no count or length at all to patch.
    fn no_prefixes(key: ApiKey, v: i16) -> bool {
        matches!(
            (key, v),
            (ApiKey::ApiVersions, 0..=2) | (ApiKey::ListGroups, 0..=3)
        )
    }

    pub(super) fn enc<T: Encodable>(req: T, v: i16) -> Vec<u8> {
        let mut buf = BytesMut::new();
        req.encode(&mut buf, v).expect("encodes");
        buf.to_vec()
    }

    pub(super) fn s(s: &'static str) -> StrBytes {
        StrBytes::from_static_str(s)
    }

    pub(super) fn name(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    /// An unknown tagged field, where the version has tagged fields.
    pub(super) fn tags(flex: bool) -> BTreeMap<i32, Bytes> {
        BTreeMap::from_iter(flex.then(|| (99, Bytes::from_static(b"unknown"))))
    }

    /// A realistic body for every API and version, and where its prefixes are.
    fn realistic(key: ApiKey, v: i16) -> (Vec<u8>, Vec<Prefix>) {
        let flex = flexible(key, v);
        let w = |classic: usize| if flex { 1 } else { classic };
        let since = |first, n| if v >= first { n } else { 0 };
        match key {
            ApiKey::ApiVersions if v < 3 => (enc(ApiVersionsRequest::default(), v), vec![]),
            ApiKey::ApiVersions => {
                let req = ApiVersionsRequest::default()
                    .with_client_software_name(s("librdkafka"))
                    .with_client_software_version(s("2.3.0"))
                    .with_unknown_tagged_fields(tags(flex));
                (enc(req, v), vec![(0, 2, 10), (11, 2, 5)])
            }
            ApiKey::Metadata => {
                let topic = |n| {
                    let t = MetadataRequestTopic::default().with_name(Some(name(n)));
                    let id = Uuid::from_u128(if v >= 10 { 7 } else { 0 });
                    t.with_topic_id(id).with_unknown_tagged_fields(tags(flex))
                };
                let req = MetadataRequest::default()
                    .with_topics(Some(vec![topic("orders"), topic("payments")]))
                    .with_include_topic_authorized_operations(v >= 8)
                    .with_unknown_tagged_fields(tags(flex));
                (enc(req, v), vec![(0, 4, 2), (w(4) + since(10, 16), 2, 6)])
            }
            ApiKey::Produce => {
                let records = batch(2, 1_700_000_000_000);
                let part = |i| {
                    PartitionProduceData::default()
                        .with_index(i)
                        .with_records(Some(records.clone()))
                        .with_unknown_tagged_fields(tags(flex))
                };
                let topic = TopicProduceData::default()
                    .with_name(name("orders"))
                    .with_partition_data(vec![part(0), part(1)]);
                let req = ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(1500)
                    .with_topic_data(vec![topic]);
                let topics = w(2) + 6;
                let parts = topics + w(4) + w(2) + 6;
                let p = vec![
                    (topics, 4, 1),
                    (topics + w(4), 2, 6),
                    (parts, 4, 2),
                    (parts + w(4) + 4, 4, records.len()),
                ];
                (enc(req, v), p)
            }
            ApiKey::Fetch => {
                let part = |i| {
                    FetchPartition::default()
                        .with_partition(i)
                        .with_fetch_offset(i64::from(i))
                };
                let topic = FetchTopic::default()
                    .with_topic(name("orders"))
                    .with_partitions(vec![part(0), part(1)])
                    .with_unknown_tagged_fields(tags(flex));
                let mut req = FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(50 << 20)
                    .with_isolation_level(1)
                    .with_topics(vec![topic]);
                let topics = 17 + since(7, 8);
                let parts = topics + w(4) + w(2) + 6;
                let mut p = vec![(topics, 4, 1), (topics + w(4), 2, 6), (parts, 4, 2)];
                if v >= 7 {
                    let gone = ForgottenTopic::default()
                        .with_topic(name("old"))
                        .with_partitions(vec![3, 4]);
                    req = req
                        .with_session_id(9)
                        .with_forgotten_topics_data(vec![gone]);
                    let part_len = 4 + since(9, 4) + 8 + since(12, 4) + since(5, 8) + 4;
                    let forgotten = parts + w(4) + 2 * (part_len + since(12, 1)) + since(12, 10);
                    p.extend([(forgotten, 4, 1), (forgotten + w(4), 2, 3)]);
                    p.push((forgotten + w(4) + w(2) + 3, 4, 2));
                }
                if v >= 11 {
                    req = req.with_rack_id(s("rack-1"));
                }
                if v >= 12 {
                    req = req.with_cluster_id(Some(s("cluster")));
                }
                (enc(req.with_unknown_tagged_fields(tags(flex)), v), p)
            }
            ApiKey::ListOffsets => {
                let part = |i, ts| {
                    let p = ListOffsetsPartition::default().with_partition_index(i);
                    p.with_timestamp(ts).with_unknown_tagged_fields(tags(flex))
                };
                let topic = ListOffsetsTopic::default()
                    .with_name(name("orders"))
                    .with_partitions(vec![part(0, -1), part(1, -2)]);
                let req = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![topic]);
                let topics = 4 + since(2, 1);
                let parts = topics + w(4) + w(2) + 6;
                (
                    enc(req, v),
                    vec![(topics, 4, 1), (topics + w(4), 2, 6), (parts, 4, 2)],
                )
            }
            ApiKey::CreateTopics => {
                let config = |k, val| {
                    let c = CreatableTopicConfig::default().with_name(s(k));
                    c.with_value(Some(s(val)))
                };
                let configs = vec![
                    config("retention.ms", "60000"),
                    config("cleanup.policy", "delete"),
                ];
                let by_count = CreatableTopic::default().with_name(name("orders"));
                let by_count = by_count.with_num_partitions(3).with_replication_factor(1);
                let assign = |i| {
                    let a = CreatableReplicaAssignment::default().with_partition_index(i);
                    a.with_broker_ids(vec![BrokerId(1), BrokerId(2)])
                };
                let by_hand = CreatableTopic::default().with_name(name("manual"));
                let by_hand = by_hand.with_num_partitions(-1).with_replication_factor(-1);
                let by_count = by_count.with_configs(configs);
                let by_hand = by_hand.with_assignments(vec![assign(0), assign(1)]);
                let req = CreateTopicsRequest::default()
                    .with_topics(vec![by_count, by_hand])
                    .with_timeout_ms(30_000);
                let assignments = w(4) + w(2) + 6 + 6;
                let configs = assignments + w(4);
                let p = vec![
                    (0, 4, 2),
                    (w(4), 2, 6),
                    (assignments, 4, 0),
                    (configs, 4, 2),
                ];
                (enc(req, v), [p, vec![(configs + w(4), 2, 12)]].concat())
            }
            ApiKey::DeleteTopics if v >= 6 => {
                let state = |n, id| {
                    DeleteTopicState::default()
                        .with_name(n)
                        .with_topic_id(Uuid::from_u128(id))
                };
                let topics = vec![state(Some(name("orders")), 1), state(None, 2)];
                let req = DeleteTopicsRequest::default()
                    .with_topics(topics)
                    .with_timeout_ms(30_000);
                (enc(req, v), vec![(0, 4, 2), (1, 2, 6)])
            }
            ApiKey::DeleteTopics => {
                let req = DeleteTopicsRequest::default()
                    .with_topic_names(vec![name("orders"), name("payments")])
                    .with_timeout_ms(30_000)
                    .with_unknown_tagged_fields(tags(flex));
                (enc(req, v), vec![(0, 4, 2), (w(4), 2, 6)])
            }
            _ => groups::tests::realistic(key, v),
        }
    }

    /// Bodies whose arrays hold `N` elements of the fewest bytes each, one
    /// body per array, so an element minimum set too high shows.
    fn minimal(key: ApiKey, v: i16) -> Vec<Vec<u8>> {
        const N: usize = 40;
        fn n<T: Default + Clone>() -> Vec<T> {
            vec![T::default(); N]
        }
        match key {
            ApiKey::ApiVersions => vec![enc(ApiVersionsRequest::default(), v)],
            ApiKey::Metadata => vec![enc(MetadataRequest::default().with_topics(Some(n())), v)],
            ApiKey::Produce => {
                let one = TopicProduceData::default().with_partition_data(n());
                let req = ProduceRequest::default();
                let reqs = [
                    req.clone().with_topic_data(n()),
                    req.with_topic_data(vec![one]),
                ];
                reqs.map(|r| enc(r, v)).to_vec()
            }
            ApiKey::Fetch => {
                let one = FetchTopic::default().with_partitions(n());
                let gone = ForgottenTopic::default().with_partitions(vec![0; N]);
                let req = FetchRequest::default();
                let mut reqs = vec![
                    req.clone().with_topics(n()),
                    req.clone().with_topics(vec![one]),
                ];
                if v >= 7 {
                    reqs.push(req.clone().with_forgotten_topics_data(n()));
                    reqs.push(req.with_forgotten_topics_data(vec![gone]));
                }
                reqs.into_iter().map(|r| enc(r, v)).collect()
            }
            ApiKey::ListOffsets => {
                let one = ListOffsetsTopic::default().with_partitions(n());
                let req = ListOffsetsRequest::default();
                let reqs = [req.clone().with_topics(n()), req.with_topics(vec![one])];
                reqs.map(|r| enc(r, v)).to_vec()
            }
            ApiKey::CreateTopics => {
                let ids = CreatableReplicaAssignment::default().with_broker_ids(n());
                let topics = [
                    n(),
                    vec![CreatableTopic::default().with_assignments(n())],
                    vec![CreatableTopic::default().with_assignments(vec![ids])],
                    vec![CreatableTopic::default().with_configs(n())],
                ];
                let req = |t| CreateTopicsRequest::default().with_topics(t);
                topics.map(|t| enc(req(t), v)).to_vec()
            }
            ApiKey::DeleteTopics if v >= 6 => {
                vec![enc(DeleteTopicsRequest::default().with_topics(n()), v)]
            }
            ApiKey::DeleteTopics => {
                vec![enc(DeleteTopicsRequest::default().with_topic_names(n()), v)]
            }
            _ => groups::tests::minimal(key, v),
        }
    }

    /// What kafka-protocol makes of a body: only to be called on bodies
    /// the guard passed.
    fn kp_decodes(key: ApiKey, v: i16, body: &[u8]) -> bool {
        let b = &mut Bytes::copy_from_slice(body);
        match key {
            ApiKey::ApiVersions => ApiVersionsRequest::decode(b, v).is_ok(),
            ApiKey::Metadata => MetadataRequest::decode(b, v).is_ok(),
            ApiKey::Produce => ProduceRequest::decode(b, v).is_ok(),
            ApiKey::Fetch => FetchRequest::decode(b, v).is_ok(),
            ApiKey::ListOffsets => ListOffsetsRequest::decode(b, v).is_ok(),
            ApiKey::CreateTopics => CreateTopicsRequest::decode(b, v).is_ok(),
            ApiKey::DeleteTopics => DeleteTopicsRequest::decode(b, v).is_ok(),
            _ => groups::tests::kp_decodes(key, v, body),
        }
    }

    /// The guard's checks for one API, run from its module's own tests with
    /// a request kafka-protocol encodes: the body passes and is read to its
    /// end; every truncation of it is refused; a huge count or length
    /// written anywhere in it is refused, or decodes without allocating
    /// from it (the process would abort otherwise).
    pub(crate) fn check_api<T: Encodable + Decodable>(key: ApiKey, v: i16, req: &T) {
        let mut buf = BytesMut::new();
        req.encode(&mut buf, v).expect("the fixture encodes");
        let body = buf.to_vec();
        assert_eq!(walk(key, v, &body), Some(0), "{key:?} v{v}");
        assert!(
            T::decode(&mut Bytes::copy_from_slice(&body), v).is_ok(),
            "{key:?} v{v}"
        );
        for end in 0..body.len() {
            assert!(
                !counts_fit(key, v, &body[..end]),
                "{key:?} v{v} cut at {end}"
            );
        }
        let flex = crate::api::spec(key).is_some_and(|a| v >= a.flexible);
        for at in 0..body.len().saturating_sub(4) {
            let bad = patched(&body, flex, at, 4, 0x3fff_ffff);
            if counts_fit(key, v, &bad) {
                let _ = T::decode(&mut Bytes::from(bad), v);
            }
        }
    }

    /// `body` with the prefix at `at` (classic `width`) replaced by `huge`.
    fn patched(body: &[u8], flex: bool, at: usize, width: usize, huge: u32) -> Vec<u8> {
        let mut out = body[..at].to_vec();
        let rest = if flex {
            put_uvarint(&mut out, u64::from(huge));
            &body[at + 1..]
        } else {
            let be = huge.to_be_bytes();
            out.extend_from_slice(&be[4 - width..]);
            &body[at + width..]
        };
        out.extend_from_slice(rest);
        out
    }

    #[test]
    fn bodies_built_by_kafka_protocol_pass_and_are_read_to_the_end() {
        for (key, v) in versions() {
            let (body, _) = realistic(key, v);
            for b in std::iter::once(body).chain(minimal(key, v)) {
                assert_eq!(walk(key, v, &b), Some(0), "{key:?} v{v} {b:?}");
                assert!(kp_decodes(key, v, &b), "{key:?} v{v}");
            }
        }
    }

    #[test]
    fn huge_counts_and_lengths_fail() {
        for (key, v) in versions() {
            let flex = flexible(key, v);
            let (body, prefixes) = realistic(key, v);
            assert_eq!(prefixes.is_empty(), no_prefixes(key, v), "{key:?} v{v}");
            for (at, width, len) in prefixes {
                // The prefix is where the test thinks it is.
                let held = if flex {
                    usize::from(body[at]) - 1
                } else {
                    body[at..at + width]
                        .iter()
                        .fold(0, |n, &b| n << 8 | usize::from(b))
                };
                assert_eq!(held, len, "{key:?} v{v} at {at}");
                let huge: &[u32] = match (flex, width) {
                    (true, _) => &[0x4000_0000, u32::MAX, 1 << 21],
                    (false, 2) => &[0x7fff],
                    (false, _) => &[0x3fff_ffff, 0x7fff_ffff],
                };
                for &h in huge {
                    let bad = patched(&body, flex, at, width, h);
                    assert!(!counts_fit(key, v, &bad), "{key:?} v{v} at {at}: {h:#x}");
                }
            }
        }
    }

    #[test]
    fn every_truncation_fails() {
        for (key, v) in versions() {
            let (body, _) = realistic(key, v);
            for end in 0..body.len() {
                assert!(
                    !counts_fit(key, v, &body[..end]),
                    "{key:?} v{v} cut at {end}"
                );
            }
        }
    }

    #[test]
    fn a_huge_value_anywhere_is_refused_or_decodes_safely() {
        for (key, v) in versions() {
            let flex = flexible(key, v);
            let (body, _) = realistic(key, v);
            for at in 0..body.len().saturating_sub(4) {
                let bad = patched(&body, flex, at, 4, 0x3fff_ffff);
                if counts_fit(key, v, &bad) {
                    kp_decodes(key, v, &bad);
                }
            }
        }
    }

    #[test]
    fn the_reported_request_is_refused_and_unknown_apis_are_too() {
        let billion = Bytes::from_static(&[0x3b, 0x9a, 0xca, 0x00]);
        let decoded = crate::protocol::decode::<MetadataRequest>(ApiKey::Metadata, &billion, 0);
        assert!(decoded.is_none());
        assert!(!counts_fit(ApiKey::Produce, 2, &[]));
        assert!(!counts_fit(
            ApiKey::Fetch,
            13,
            &realistic(ApiKey::Fetch, 12).0
        ));
        assert!(!counts_fit(ApiKey::DescribeAcls, 0, &[0; 64]));
        // A null array is fine; a negative one other than -1 is not.
        assert!(counts_fit(ApiKey::Metadata, 1, &[0xff; 4]));
        assert!(!counts_fit(ApiKey::Metadata, 1, &[0xff, 0xff, 0xff, 0xfe]));
    }

    #[test]
    fn fetch_cluster_id_is_read_as_the_decoder_reads_it() {
        // kafka-protocol reads tag 0 as a compact string whatever size the
        // tag claims; the walk must end where the decoder does.
        let mut body = realistic(ApiKey::Fetch, 12).0;
        let size_at = body.len() - 9 - 8 - 1; // before "cluster" and tag 99
        assert_eq!(&body[size_at..size_at + 2], &[8, 8]);
        body[size_at] = 0;
        assert_eq!(walk(ApiKey::Fetch, 12, &body), Some(0));
        assert!(kp_decodes(ApiKey::Fetch, 12, &body));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn random_bytes_never_panic(
            which in any::<usize>(),
            body in proptest::collection::vec(any::<u8>(), 0..96),
        ) {
            let all: Vec<_> = versions().collect();
            let (key, v) = all[which % all.len()];
            if counts_fit(key, v, &body) {
                kp_decodes(key, v, &body);
            }
        }
    }
}
