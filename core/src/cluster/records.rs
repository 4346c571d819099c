//! Metadata records: what the quorum's committed log says, and the image
//! every broker builds by applying them in log order.
//!
//! Shaped after Kafka's metadata records (KIP-631), each tagged with
//! Kafka's record type number and a version of its own layout. One Raft
//! entry holds one or more records, applied together: a topic's Topic,
//! Partition and Config records commit as one, as Kafka's controller
//! writes them in one atomic batch.
//!
//! ```text
//! entry           := record+
//! record          := type:u8 version:u8 fields
//! RegisterBroker  := broker_id:i32 endpoint:string                  (type 0)
//! Topic           := name:string topic_id:uuid                      (type 2)
//! Partition       := partition:i32 topic_id:uuid replicas:ids isr:ids
//!                    leader:i32 leader_epoch:i32 partition_epoch:i32 (type 3)
//! Config          := resource_type:i8 resource:string name:string
//!                    value:nullable_string                          (type 4)
//!                    (a topic's setting, or with resource type 4 and
//!                    resource "" a default of every broker)
//! FenceBroker     := broker_id:i32 epoch:u64                        (type 7)
//! UnfenceBroker   := broker_id:i32 epoch:u64                        (type 8)
//! RemoveTopic     := topic_id:uuid                                  (type 9)
//! ProducerIds     := broker_id:i32 from:i64 start:i64 end:i64       (type 15)
//! NoOp            :=                                                (type 20)
//! string          := len:u16 utf8*len     nullable_string := -1:i16 | string
//! ids             := count:u16 i32*count  uuid := 16 bytes
//! ```
//!
//! Applying is where a record is checked against the image: a Topic whose
//! name is taken, a Partition or Config naming no topic, or a Partition
//! change not made from the partition's current epoch (its
//! partition_epoch must be the image's plus one: Kafka's controller makes
//! the same compare-and-swap) changes nothing. Every broker skips the same records, so the images agree even
//! when two proposals raced.
//!
//! The image is also the quorum's snapshot, which lets the log be cut: a
//! voter too far behind gets it instead of the records it missed.
//!
//! ```text
//! snapshot := version:u8(3) digest:u64
//!             count:u32 (id:i32 epoch:u64 endpoint:string fenced:u8)*count
//!             next_producer_id:i64 count:u32 (broker:i32 start:i64 end:i64)*count
//!             count:u32 (name:string topic_id:uuid
//!                        count:u32 (key:string value:string)*count
//!                        count:u32 (replicas:ids isr:ids leader:i32
//!                                   leader_epoch:i32 partition_epoch:i32)*count)*count
//!             count:u32 (key:string value:string)*count      (broker defaults)
//! ```
//! Version 0 snapshots (brokers only), version 1 (no fenced flag: every
//! broker unfenced) and version 2 (no broker defaults) still read.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

/// Kafka's numbers for its metadata record types.
const REGISTER_BROKER: u8 = 0;
const TOPIC: u8 = 2;
const PARTITION: u8 = 3;
const CONFIG: u8 = 4;
const FENCE_BROKER: u8 = 7;
const UNFENCE_BROKER: u8 = 8;
const REMOVE_TOPIC: u8 = 9;
const PRODUCER_IDS: u8 = 15;
const NO_OP: u8 = 20;

/// Kafka's resource type number for a topic, as ConfigRecord carries it.
pub(crate) const TOPIC_RESOURCE: i8 = 2;

/// Kafka's resource type number for a broker; with the resource name ""
/// a ConfigRecord sets a default of every broker.
pub(crate) const BROKER_RESOURCE: i8 = 4;

/// A partition's leader when it has none.
pub const NO_LEADER: i32 = -1;

/// One metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// A broker joins (or rejoins) the cluster, reachable at `endpoint`.
    RegisterBroker { broker_id: i32, endpoint: String },
    /// A topic is created, with its id; its partitions follow.
    Topic { name: String, id: Uuid },
    /// A partition of the topic `topic_id`, with its replicas, in-sync
    /// replicas, leader and epochs: created, or replaced whole.
    Partition {
        topic_id: Uuid,
        partition: i32,
        state: PartitionImage,
    },
    /// A setting of a resource (a topic): set, or removed when `None`.
    Config {
        resource_type: i8,
        resource: String,
        name: String,
        value: Option<String>,
    },
    /// The controller stopped hearing from a broker (its session
    /// expired): it leads nothing and is in no ISR until unfenced. Applies
    /// only to the registration of broker epoch `epoch`.
    FenceBroker { broker_id: i32, epoch: u64 },
    /// A fenced broker is heard from again and has the metadata up to its
    /// fencing: it may lead and rejoin ISRs.
    UnfenceBroker { broker_id: i32, epoch: u64 },
    /// A topic is deleted, with its partitions and settings.
    RemoveTopic { id: Uuid },
    /// A broker takes the producer ids `start..end` for InitProducerId,
    /// claimed when the next free id was `from`: a compare-and-swap, so two
    /// brokers claiming at once never share ids (the later changes
    /// nothing and claims again).
    ProducerIds {
        broker_id: i32,
        from: i64,
        start: i64,
        end: i64,
    },
    /// Nothing: the active controller appends one when the log has been
    /// idle for `metadata.max.idle.interval.ms` (KIP-835), so every voter
    /// sees the log move and a stalled one is noticed.
    NoOp,
}

impl Record {
    /// One entry holding `records`, in order.
    pub(crate) fn encode_all(records: &[Record]) -> Bytes {
        let mut b = BytesMut::new();
        for r in records {
            r.encode_into(&mut b);
        }
        b.freeze()
    }

    #[cfg(test)]
    pub(crate) fn encode(&self) -> Bytes {
        Self::encode_all(std::slice::from_ref(self))
    }

    fn encode_into(&self, b: &mut BytesMut) {
        match self {
            Record::RegisterBroker {
                broker_id,
                endpoint,
            } => {
                b.put_u8(REGISTER_BROKER);
                b.put_u8(0);
                b.put_i32(*broker_id);
                put_str(b, endpoint);
            }
            Record::FenceBroker { broker_id, epoch } => {
                b.put_u8(FENCE_BROKER);
                b.put_u8(0);
                b.put_i32(*broker_id);
                b.put_u64(*epoch);
            }
            Record::UnfenceBroker { broker_id, epoch } => {
                b.put_u8(UNFENCE_BROKER);
                b.put_u8(0);
                b.put_i32(*broker_id);
                b.put_u64(*epoch);
            }
            Record::ProducerIds {
                broker_id,
                from,
                start,
                end,
            } => {
                b.put_u8(PRODUCER_IDS);
                b.put_u8(0);
                b.put_i32(*broker_id);
                b.put_i64(*from);
                b.put_i64(*start);
                b.put_i64(*end);
            }
            Record::Topic { name, id } => {
                b.put_u8(TOPIC);
                b.put_u8(0);
                put_str(b, name);
                b.put_slice(id.as_bytes());
            }
            Record::Partition {
                topic_id,
                partition,
                state,
            } => {
                b.put_u8(PARTITION);
                b.put_u8(0);
                b.put_i32(*partition);
                b.put_slice(topic_id.as_bytes());
                put_partition(b, state);
            }
            Record::Config {
                resource_type,
                resource,
                name,
                value,
            } => {
                b.put_u8(CONFIG);
                b.put_u8(0);
                b.put_i8(*resource_type);
                put_str(b, resource);
                put_str(b, name);
                match value {
                    Some(v) => put_str(b, v),
                    None => b.put_i16(-1),
                }
            }
            Record::RemoveTopic { id } => {
                b.put_u8(REMOVE_TOPIC);
                b.put_u8(0);
                b.put_slice(id.as_bytes());
            }
            Record::NoOp => {
                b.put_u8(NO_OP);
                b.put_u8(0);
            }
        }
    }

    /// The records of one entry; why not, when one is none this broker
    /// knows or the bytes are damaged.
    pub(crate) fn decode_all(mut data: &[u8]) -> Result<Vec<Record>, &'static str> {
        let mut records = Vec::new();
        if data.is_empty() {
            return Err("an entry with no record");
        }
        while !data.is_empty() {
            records.push(Self::decode_one(&mut data)?);
        }
        Ok(records)
    }

    #[cfg(test)]
    pub(crate) fn decode(data: &[u8]) -> Result<Record, &'static str> {
        match Self::decode_all(data)?.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err("not one record"),
        }
    }

    fn decode_one(data: &mut &[u8]) -> Result<Record, &'static str> {
        if data.remaining() < 2 {
            return Err("record cut short");
        }
        let (kind, version) = (data.get_u8(), data.get_u8());
        let known = [
            REGISTER_BROKER,
            TOPIC,
            PARTITION,
            CONFIG,
            FENCE_BROKER,
            UNFENCE_BROKER,
            REMOVE_TOPIC,
            PRODUCER_IDS,
            NO_OP,
        ];
        if !known.contains(&kind) {
            return Err("unknown record type");
        }
        if version != 0 {
            return Err("a record of a newer version");
        }
        Ok(match kind {
            REGISTER_BROKER => Record::RegisterBroker {
                broker_id: get_i32(data)?,
                endpoint: get_str(data)?,
            },
            TOPIC => Record::Topic {
                name: get_str(data)?,
                id: get_uuid(data)?,
            },
            PARTITION => Record::Partition {
                partition: get_i32(data)?,
                topic_id: get_uuid(data)?,
                state: get_partition(data)?,
            },
            CONFIG => {
                if data.remaining() < 1 {
                    return Err("Config cut short");
                }
                let resource_type = data.get_i8();
                let resource = get_str(data)?;
                let name = get_str(data)?;
                let value = if data.remaining() >= 2 && data[..2] == [0xff, 0xff] {
                    data.advance(2);
                    None
                } else {
                    Some(get_str(data)?)
                };
                Record::Config {
                    resource_type,
                    resource,
                    name,
                    value,
                }
            }
            FENCE_BROKER => Record::FenceBroker {
                broker_id: get_i32(data)?,
                epoch: get_u64(data)?,
            },
            UNFENCE_BROKER => Record::UnfenceBroker {
                broker_id: get_i32(data)?,
                epoch: get_u64(data)?,
            },
            REMOVE_TOPIC => Record::RemoveTopic {
                id: get_uuid(data)?,
            },
            PRODUCER_IDS => Record::ProducerIds {
                broker_id: get_i32(data)?,
                from: get_u64(data)? as i64,
                start: get_u64(data)? as i64,
                end: get_u64(data)? as i64,
            },
            _ => Record::NoOp,
        })
    }
}

fn put_str(b: &mut BytesMut, s: &str) {
    // Names and endpoints are far below the limit; a longer one is cut at
    // a character boundary rather than written with a wrong length.
    let mut n = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    b.put_u16(n as u16);
    b.put_slice(&s.as_bytes()[..n]);
}

fn get_str(data: &mut &[u8]) -> Result<String, &'static str> {
    if data.remaining() < 2 {
        return Err("string cut short");
    }
    let n = data.get_u16() as usize;
    if n > i16::MAX as usize || data.remaining() < n {
        return Err("string length beyond its bytes");
    }
    let s = std::str::from_utf8(&data[..n])
        .map_err(|_| "string is not UTF-8")?
        .to_owned();
    data.advance(n);
    Ok(s)
}

fn get_i32(data: &mut &[u8]) -> Result<i32, &'static str> {
    if data.remaining() < 4 {
        return Err("number cut short");
    }
    Ok(data.get_i32())
}

fn get_u64(data: &mut &[u8]) -> Result<u64, &'static str> {
    if data.remaining() < 8 {
        return Err("number cut short");
    }
    Ok(data.get_u64())
}

fn get_uuid(data: &mut &[u8]) -> Result<Uuid, &'static str> {
    if data.remaining() < 16 {
        return Err("topic id cut short");
    }
    let mut id = [0; 16];
    data.copy_to_slice(&mut id);
    Ok(Uuid::from_bytes(id))
}

fn put_ids(b: &mut BytesMut, ids: &[i32]) {
    let n = ids.len().min(u16::MAX as usize);
    b.put_u16(n as u16);
    for id in &ids[..n] {
        b.put_i32(*id);
    }
}

fn get_ids(data: &mut &[u8]) -> Result<Vec<i32>, &'static str> {
    if data.remaining() < 2 {
        return Err("id list cut short");
    }
    let n = data.get_u16() as usize;
    if data.remaining() < n * 4 {
        return Err("id count beyond its bytes");
    }
    Ok((0..n).map(|_| data.get_i32()).collect())
}

fn put_partition(b: &mut BytesMut, p: &PartitionImage) {
    put_ids(b, &p.replicas);
    put_ids(b, &p.isr);
    b.put_i32(p.leader);
    b.put_i32(p.leader_epoch);
    b.put_i32(p.partition_epoch);
}

fn get_partition(data: &mut &[u8]) -> Result<PartitionImage, &'static str> {
    let replicas = get_ids(data)?;
    let isr = get_ids(data)?;
    Ok(PartitionImage {
        replicas,
        isr,
        leader: get_i32(data)?,
        leader_epoch: get_i32(data)?,
        partition_epoch: get_i32(data)?,
    })
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Its broker epoch: the log index of its latest registration, as in
    /// Kafka (each registration gets a new one).
    pub epoch: u64,
    /// Where clients reach it.
    pub endpoint: String,
    /// Fenced by the controller (its session expired): it leads no
    /// partition and is in no ISR.
    pub fenced: bool,
}

impl Registration {
    /// The endpoint as host and port; `None` when it is not `host:port`.
    pub fn host_port(&self) -> Option<(&str, u16)> {
        let (host, port) = self.endpoint.rsplit_once(':')?;
        Some((host, port.parse().ok()?))
    }
}

/// One partition as the controller decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    /// Its replicas, in assignment order (the first is the preferred
    /// leader).
    pub replicas: Vec<i32>,
    /// The replicas in sync with the leader.
    pub isr: Vec<i32>,
    /// Its leader, or [`NO_LEADER`].
    pub leader: i32,
    /// Bumped at every leader change.
    pub leader_epoch: i32,
    /// Bumped at every change of the partition.
    pub partition_epoch: i32,
}

/// A topic as the applied records left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    /// Its id, which a topic created again after deletion does not share.
    pub id: Uuid,
    /// Its partitions, in partition order.
    pub partitions: Vec<PartitionImage>,
    /// Its own settings (Kafka's names), beside the broker defaults.
    pub configs: BTreeMap<String, String>,
}

/// The cluster's metadata as the applied records left it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    /// Every registered broker, by id.
    pub brokers: BTreeMap<i32, Registration>,
    /// Every topic, by name.
    pub topics: BTreeMap<String, TopicImage>,
    /// The first producer id no broker has taken.
    pub next_producer_id: i64,
    /// Each broker's latest block of producer ids, `start..end`.
    pub producer_ids: BTreeMap<i32, (i64, i64)>,
    /// The dynamic settings of every broker (the broker resource ""),
    /// Kafka's names: the cluster-wide defaults of topic settings.
    pub broker_defaults: BTreeMap<String, String>,
}

impl Image {
    /// The image as a snapshot, with the digest of the records it holds.
    pub(crate) fn encode(&self, digest: u64) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(3);
        b.put_u64(digest);
        b.put_u32(self.brokers.len() as u32);
        for (id, r) in &self.brokers {
            b.put_i32(*id);
            b.put_u64(r.epoch);
            put_str(&mut b, &r.endpoint);
            b.put_u8(u8::from(r.fenced));
        }
        b.put_i64(self.next_producer_id);
        b.put_u32(self.producer_ids.len() as u32);
        for (broker, (start, end)) in &self.producer_ids {
            b.put_i32(*broker);
            b.put_i64(*start);
            b.put_i64(*end);
        }
        b.put_u32(self.topics.len() as u32);
        for (name, t) in &self.topics {
            put_str(&mut b, name);
            b.put_slice(t.id.as_bytes());
            b.put_u32(t.configs.len() as u32);
            for (k, v) in &t.configs {
                put_str(&mut b, k);
                put_str(&mut b, v);
            }
            b.put_u32(t.partitions.len() as u32);
            for p in &t.partitions {
                put_partition(&mut b, p);
            }
        }
        b.put_u32(self.broker_defaults.len() as u32);
        for (k, v) in &self.broker_defaults {
            put_str(&mut b, k);
            put_str(&mut b, v);
        }
        b.freeze()
    }

    /// A snapshot's image and digest.
    pub(crate) fn decode(mut b: &[u8]) -> Result<(Image, u64), &'static str> {
        if b.remaining() < 1 + 8 + 4 {
            return Err("snapshot cut short");
        }
        let version = b.get_u8();
        if version > 3 {
            return Err("snapshot of a newer version");
        }
        let digest = b.get_u64();
        let mut image = Image::default();
        let count = get_count(&mut b, 4 + 8 + 2)?;
        for _ in 0..count {
            let id = get_i32(&mut b)?;
            if b.remaining() < 8 {
                return Err("snapshot cut short");
            }
            let epoch = b.get_u64();
            let endpoint = get_str(&mut b)?;
            let fenced = if version >= 2 {
                match b.first() {
                    Some(&f @ (0 | 1)) => {
                        b.advance(1);
                        f == 1
                    }
                    Some(_) => return Err("snapshot with a bad fenced flag"),
                    None => return Err("snapshot cut short"),
                }
            } else {
                false
            };
            image.brokers.insert(
                id,
                Registration {
                    epoch,
                    endpoint,
                    fenced,
                },
            );
        }
        if version >= 2 {
            image.next_producer_id = get_u64(&mut b)? as i64;
            for _ in 0..get_count(&mut b, 4 + 8 + 8)? {
                let broker = get_i32(&mut b)?;
                let start = get_u64(&mut b)? as i64;
                let end = get_u64(&mut b)? as i64;
                image.producer_ids.insert(broker, (start, end));
            }
        }
        if version >= 1 {
            let topics = get_count(&mut b, 2 + 16 + 4 + 4)?;
            for _ in 0..topics {
                let name = get_str(&mut b)?;
                let id = get_uuid(&mut b)?;
                let mut configs = BTreeMap::new();
                for _ in 0..get_count(&mut b, 4)? {
                    let k = get_str(&mut b)?;
                    configs.insert(k, get_str(&mut b)?);
                }
                let mut partitions = Vec::new();
                for _ in 0..get_count(&mut b, 2 + 2 + 12)? {
                    partitions.push(get_partition(&mut b)?);
                }
                image.topics.insert(
                    name,
                    TopicImage {
                        id,
                        partitions,
                        configs,
                    },
                );
            }
        }
        if version >= 3 {
            for _ in 0..get_count(&mut b, 4)? {
                let k = get_str(&mut b)?;
                image.broker_defaults.insert(k, get_str(&mut b)?);
            }
        }
        if b.has_remaining() {
            return Err("bytes after the snapshot");
        }
        Ok((image, digest))
    }

    /// The topic with id `id`, by name.
    pub fn topic_by_id(&self, id: Uuid) -> Option<(&String, &TopicImage)> {
        self.topics.iter().find(|(_, t)| t.id == id)
    }

    fn topic_by_id_mut(&mut self, id: Uuid) -> Option<&mut TopicImage> {
        self.topics.values_mut().find(|t| t.id == id)
    }

    /// Apply `record`, committed at log index `index`; whether it changed
    /// the image (a record that does not fit it changes nothing).
    pub(crate) fn apply(&mut self, index: u64, record: Record) -> bool {
        match record {
            Record::RegisterBroker {
                broker_id,
                endpoint,
            } => {
                self.brokers.insert(
                    broker_id,
                    Registration {
                        epoch: index,
                        endpoint,
                        fenced: false,
                    },
                );
                true
            }
            Record::FenceBroker { broker_id, epoch }
            | Record::UnfenceBroker { broker_id, epoch } => {
                let fence = matches!(record, Record::FenceBroker { .. });
                match self.brokers.get_mut(&broker_id) {
                    Some(r) if r.epoch == epoch && r.fenced != fence => {
                        r.fenced = fence;
                        true
                    }
                    // A registration since, or no change.
                    _ => false,
                }
            }
            Record::Topic { name, id } => {
                if self.topics.contains_key(&name) || self.topic_by_id(id).is_some() {
                    return false;
                }
                let topic = TopicImage {
                    id,
                    partitions: Vec::new(),
                    configs: BTreeMap::new(),
                };
                self.topics.insert(name, topic);
                true
            }
            Record::Partition {
                topic_id,
                partition,
                state,
            } => {
                let Some(t) = self.topic_by_id_mut(topic_id) else {
                    return false;
                };
                let Ok(p) = usize::try_from(partition) else {
                    return false;
                };
                match p.cmp(&t.partitions.len()) {
                    // Every change is computed from the partition as it
                    // stood, its partition epoch bumped by one: a change
                    // computed from an older state (two proposals made
                    // before either applied) changes nothing, on every
                    // voter alike, rather than undo the one that won.
                    std::cmp::Ordering::Less
                        if state.partition_epoch
                            != t.partitions[p].partition_epoch.saturating_add(1) =>
                    {
                        return false;
                    }
                    std::cmp::Ordering::Less => t.partitions[p] = state,
                    std::cmp::Ordering::Equal => t.partitions.push(state),
                    // Partitions are created in order: a gap is refused.
                    std::cmp::Ordering::Greater => return false,
                }
                true
            }
            Record::Config {
                resource_type,
                resource,
                name,
                value,
            } => {
                let configs = match (resource_type, resource.as_str()) {
                    (TOPIC_RESOURCE, topic) => match self.topics.get_mut(topic) {
                        Some(t) => &mut t.configs,
                        None => return false,
                    },
                    (BROKER_RESOURCE, "") => &mut self.broker_defaults,
                    _ => return false,
                };
                match value {
                    Some(v) => configs.insert(name, v),
                    None => configs.remove(&name),
                };
                true
            }
            Record::RemoveTopic { id } => {
                let before = self.topics.len();
                self.topics.retain(|_, t| t.id != id);
                self.topics.len() != before
            }
            Record::ProducerIds {
                broker_id,
                from,
                start,
                end,
            } => {
                if from != self.next_producer_id || start < from || end <= start {
                    return false;
                }
                self.next_producer_id = end;
                self.producer_ids.insert(broker_id, (start, end));
                true
            }
            Record::NoOp => false,
        }
    }
}

/// A count of items, each at least `min` bytes, checked against the bytes
/// left.
fn get_count(b: &mut &[u8], min: usize) -> Result<usize, &'static str> {
    if b.remaining() < 4 {
        return Err("snapshot cut short");
    }
    let n = b.get_u32() as usize;
    if n > b.remaining() / min.max(1) {
        return Err("snapshot count beyond its bytes");
    }
    Ok(n)
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
