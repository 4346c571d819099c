//! Metadata records: what the quorum's committed log says, and the image
//! every broker builds by applying them in log order.
//!
//! Shaped after Kafka's metadata records (KIP-631), each tagged with
//! Kafka's record type number and a version of its own layout. Today the
//! log holds broker registrations; topics, partitions (replicas, ISR,
//! leader and epochs), configs and producer-id blocks come next.
//!
//! ```text
//! record          := type:u8 version:u8 fields
//! RegisterBroker  := broker_id:i32 endpoint:string      (type 0, version 0)
//! NoOp            :=                                     (type 20, version 0)
//! string          := len:u16 utf8*len
//! ```
//!
//! The image is also the quorum's snapshot, which lets the log be cut: a
//! voter too far behind gets it instead of the records it missed.
//!
//! ```text
//! snapshot := version:u8 digest:u64 count:u32 (id:i32 epoch:u64 endpoint:string)*count
//! ```

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Kafka's number for RegisterBrokerRecord.
const REGISTER_BROKER: u8 = 0;
/// Kafka's number for NoOpRecord.
const NO_OP: u8 = 20;

/// One metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// A broker joins (or rejoins) the cluster, reachable at `endpoint`.
    RegisterBroker { broker_id: i32, endpoint: String },
    /// Nothing: the active controller appends one when the log has been
    /// idle for `metadata.max.idle.interval.ms` (KIP-835), so every voter
    /// sees the log move and a stalled one is noticed.
    NoOp,
}

impl Record {
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            Record::RegisterBroker {
                broker_id,
                endpoint,
            } => {
                b.put_u8(REGISTER_BROKER);
                b.put_u8(0);
                b.put_i32(*broker_id);
                let e = endpoint.as_bytes();
                let n = e.len().min(u16::MAX as usize);
                b.put_u16(n as u16);
                b.put_slice(&e[..n]);
            }
            Record::NoOp => {
                b.put_u8(NO_OP);
                b.put_u8(0);
            }
        }
        b.freeze()
    }

    /// The record in `data`; why not, when it is none this broker knows.
    pub(crate) fn decode(mut data: &[u8]) -> Result<Record, &'static str> {
        if data.remaining() < 2 {
            return Err("record cut short");
        }
        let (kind, version) = (data.get_u8(), data.get_u8());
        match (kind, version) {
            (REGISTER_BROKER, 0) => {
                if data.remaining() < 4 + 2 {
                    return Err("RegisterBroker cut short");
                }
                let broker_id = data.get_i32();
                let n = data.get_u16() as usize;
                if data.remaining() != n {
                    return Err("RegisterBroker endpoint length");
                }
                let endpoint = std::str::from_utf8(data)
                    .map_err(|_| "RegisterBroker endpoint is not UTF-8")?
                    .to_owned();
                Ok(Record::RegisterBroker {
                    broker_id,
                    endpoint,
                })
            }
            (REGISTER_BROKER, _) => Err("RegisterBroker of a newer version"),
            (NO_OP, 0) if data.is_empty() => Ok(Record::NoOp),
            (NO_OP, _) => Err("NoOp of another version or with bytes"),
            _ => Err("unknown record type"),
        }
    }
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Its broker epoch: the log index of its latest registration, as in
    /// Kafka (each registration gets a new one).
    pub epoch: u64,
    /// Where clients reach it.
    pub endpoint: String,
}

/// The cluster's metadata as the applied records left it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    /// Every registered broker, by id.
    pub brokers: BTreeMap<i32, Registration>,
}

impl Image {
    /// The image as a snapshot, with the digest of the records it holds.
    pub(crate) fn encode(&self, digest: u64) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(0);
        b.put_u64(digest);
        b.put_u32(self.brokers.len() as u32);
        for (id, r) in &self.brokers {
            b.put_i32(*id);
            b.put_u64(r.epoch);
            let e = r.endpoint.as_bytes();
            let n = e.len().min(u16::MAX as usize);
            b.put_u16(n as u16);
            b.put_slice(&e[..n]);
        }
        b.freeze()
    }

    /// A snapshot's image and digest.
    pub(crate) fn decode(mut b: &[u8]) -> Result<(Image, u64), &'static str> {
        if b.remaining() < 1 + 8 + 4 {
            return Err("snapshot cut short");
        }
        if b.get_u8() != 0 {
            return Err("snapshot of another version");
        }
        let digest = b.get_u64();
        let count = b.get_u32() as usize;
        if count > b.remaining() / (4 + 8 + 2) {
            return Err("snapshot broker count beyond its bytes");
        }
        let mut image = Image::default();
        for _ in 0..count {
            if b.remaining() < 4 + 8 + 2 {
                return Err("snapshot cut short");
            }
            let id = b.get_i32();
            let epoch = b.get_u64();
            let n = b.get_u16() as usize;
            if b.remaining() < n {
                return Err("snapshot cut short");
            }
            let endpoint = std::str::from_utf8(&b[..n])
                .map_err(|_| "snapshot endpoint is not UTF-8")?
                .to_owned();
            b.advance(n);
            image.brokers.insert(id, Registration { epoch, endpoint });
        }
        if b.has_remaining() {
            return Err("bytes after the snapshot");
        }
        Ok((image, digest))
    }

    /// Apply `record`, committed at log index `index`.
    pub(crate) fn apply(&mut self, index: u64, record: Record) {
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
                    },
                );
            }
            Record::NoOp => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_round_trip_as_snapshots() {
        let mut image = Image::default();
        image.apply(
            4,
            Record::RegisterBroker {
                broker_id: 2,
                endpoint: "h:1".into(),
            },
        );
        image.apply(
            9,
            Record::RegisterBroker {
                broker_id: 0,
                endpoint: "h:0".into(),
            },
        );
        let b = image.encode(77);
        assert_eq!(Image::decode(&b), Ok((image, 77)));
        for cut in 0..b.len() {
            assert!(Image::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let r = Record::RegisterBroker {
            broker_id: 3,
            endpoint: "127.0.0.3:9092".into(),
        };
        assert_eq!(Record::decode(&r.encode()), Ok(r.clone()));
        let b = r.encode();
        for cut in 0..b.len() {
            assert!(Record::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(Record::decode(&Record::NoOp.encode()), Ok(Record::NoOp));
        assert!(Record::decode(&[20, 0, 1]).is_err());
        assert!(Record::decode(&[9, 0]).is_err());
        assert!(Record::decode(&[0, 1, 0, 0, 0, 1, 0, 0]).is_err());
    }
}
