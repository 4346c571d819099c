//! Tests of the metadata records and the image (`records.rs`).

use super::*;

fn partition(replicas: &[i32]) -> PartitionImage {
    PartitionImage {
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader: replicas[0],
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

fn every_record() -> Vec<Record> {
    let id = Uuid::from_u128(7);
    vec![
        Record::RegisterBroker {
            broker_id: 3,
            endpoint: "127.0.0.3:9092".into(),
        },
        Record::Topic {
            name: "t".into(),
            id,
        },
        Record::Partition {
            topic_id: id,
            partition: 0,
            state: partition(&[1, 2]),
        },
        Record::Config {
            resource_type: TOPIC_RESOURCE,
            resource: "t".into(),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        },
        Record::Config {
            resource_type: TOPIC_RESOURCE,
            resource: "t".into(),
            name: "retention.ms".into(),
            value: None,
        },
        Record::FenceBroker {
            broker_id: 3,
            epoch: 1,
        },
        Record::UnfenceBroker {
            broker_id: 3,
            epoch: 1,
        },
        Record::RemoveTopic { id },
        Record::ProducerIds {
            broker_id: 3,
            from: 0,
            start: 5,
            end: 1005,
        },
        Record::NoOp,
    ]
}

#[test]
fn images_round_trip_as_snapshots() {
    let mut image = Image::default();
    for (i, r) in every_record().into_iter().take(4).enumerate() {
        image.apply(i as u64 + 1, r);
    }
    image.apply(
        9,
        Record::RegisterBroker {
            broker_id: 0,
            endpoint: "h:0".into(),
        },
    );
    assert!(image.apply(
        10,
        Record::FenceBroker {
            broker_id: 0,
            epoch: 9
        }
    ));
    assert!(image.brokers[&0].fenced);
    assert!(image.apply(
        11,
        Record::ProducerIds {
            broker_id: 0,
            from: 0,
            start: 0,
            end: 1000
        }
    ));
    assert_eq!(image.topics["t"].partitions.len(), 1);
    assert_eq!(image.topics["t"].configs["retention.ms"], "1000");
    // Version 2 had no broker defaults: one without them reads as before.
    let mut v2 = image.encode(77).to_vec();
    v2[0] = 2;
    v2.truncate(v2.len() - 4);
    assert_eq!(Image::decode(&v2), Ok((image.clone(), 77)));
    let broker = |resource: &str, value: Option<&str>| Record::Config {
        resource_type: BROKER_RESOURCE,
        resource: resource.into(),
        name: "log.retention.ms".into(),
        value: value.map(Into::into),
    };
    assert!(image.apply(12, broker("", Some("5000"))));
    // One broker's own settings are its own, not metadata.
    assert!(!image.apply(13, broker("0", Some("6000"))));
    assert_eq!(image.broker_defaults["log.retention.ms"], "5000");
    let b = image.encode(77);
    assert_eq!(Image::decode(&b), Ok((image.clone(), 77)));
    for cut in 0..b.len() {
        assert!(Image::decode(&b[..cut]).is_err(), "cut at {cut}");
    }
    assert!(image.apply(14, broker("", None)));
    assert!(image.broker_defaults.is_empty());
}

#[test]
fn version_0_snapshots_still_read() {
    let mut b = BytesMut::new();
    b.put_u8(0);
    b.put_u64(5);
    b.put_u32(1);
    b.put_i32(2);
    b.put_u64(4);
    put_str(&mut b, "h:1");
    let (image, digest) = Image::decode(&b).unwrap();
    assert_eq!(digest, 5);
    assert_eq!(image.brokers[&2].endpoint, "h:1");
    assert!(image.topics.is_empty());
    assert!(!image.brokers[&2].fenced);
}

#[test]
fn fencing_applies_to_the_registration_it_names() {
    let mut image = Image::default();
    let register = Record::RegisterBroker {
        broker_id: 1,
        endpoint: "h:1".into(),
    };
    let fence = |epoch| Record::FenceBroker {
        broker_id: 1,
        epoch,
    };
    let unfence = |epoch| Record::UnfenceBroker {
        broker_id: 1,
        epoch,
    };
    assert!(image.apply(4, register.clone()));
    assert!(!image.apply(5, fence(3)), "an older registration's");
    assert!(!image.apply(5, unfence(4)), "not fenced");
    assert!(image.apply(6, fence(4)));
    assert!(!image.apply(7, fence(4)), "already fenced");
    assert!(image.brokers[&1].fenced);
    // Registering again starts a new, unfenced epoch.
    assert!(image.apply(8, register));
    assert!(!image.brokers[&1].fenced);
    assert!(!image.apply(9, unfence(4)));
    assert!(image.apply(10, fence(8)));
    assert!(image.apply(11, unfence(8)));
    assert!(!image.brokers[&1].fenced);
    assert!(!image.apply(12, fence(1)));
    assert!(!image.apply(
        13,
        Record::FenceBroker {
            broker_id: 5,
            epoch: 8
        }
    ));
}

#[test]
fn producer_id_blocks_are_taken_once() {
    let mut image = Image::default();
    let claim = |broker_id, from, start, end| Record::ProducerIds {
        broker_id,
        from,
        start,
        end,
    };
    assert!(image.apply(1, claim(1, 0, 0, 1000)));
    // Claimed from the same free id: raced, changes nothing.
    assert!(!image.apply(2, claim(2, 0, 0, 1000)));
    assert!(
        image.apply(3, claim(2, 1000, 4000, 5000)),
        "a floor of its own"
    );
    assert!(
        !image.apply(4, claim(2, 5000, 4999, 6000)),
        "below the free id"
    );
    assert!(!image.apply(5, claim(2, 5000, 5000, 5000)), "empty");
    assert_eq!(image.next_producer_id, 5000);
    assert_eq!(image.producer_ids[&1], (0, 1000));
    assert_eq!(image.producer_ids[&2], (4000, 5000));
}

#[test]
fn records_round_trip_and_bad_ones_are_refused() {
    let all = every_record();
    for r in &all {
        assert_eq!(Record::decode(&r.encode()), Ok(r.clone()));
        let b = r.encode();
        for cut in 0..b.len() {
            assert!(Record::decode(&b[..cut]).is_err(), "{r:?} cut at {cut}");
        }
    }
    assert_eq!(Record::decode_all(&Record::encode_all(&all)), Ok(all));
    assert!(Record::decode_all(&[]).is_err());
    assert!(Record::decode(&[20, 0, 1]).is_err());
    assert!(Record::decode(&[99, 0]).is_err());
    assert!(Record::decode(&[0, 1, 0, 0, 0, 1, 0, 0]).is_err());
}

#[test]
fn records_that_do_not_fit_the_image_change_nothing() {
    let mut image = Image::default();
    let id = Uuid::from_u128(1);
    let topic = |name: &str, id| Record::Topic {
        name: name.into(),
        id,
    };
    assert!(image.apply(1, topic("a", id)));
    // The name or the id taken: a raced proposal loses.
    assert!(!image.apply(2, topic("a", Uuid::from_u128(2))));
    assert!(!image.apply(3, topic("b", id)));
    let p = |n, topic_id| Record::Partition {
        topic_id,
        partition: n,
        state: partition(&[0]),
    };
    assert!(!image.apply(4, p(1, id)), "a gap");
    assert!(!image.apply(5, p(0, Uuid::from_u128(9))), "no such topic");
    assert!(image.apply(6, p(0, id)));
    assert!(image.apply(7, Record::RemoveTopic { id }));
    assert!(!image.apply(8, Record::RemoveTopic { id }));
    assert!(image.topics.is_empty());
}

#[test]
fn a_partition_change_made_from_an_older_epoch_changes_nothing() {
    let id = Uuid::from_u128(9);
    let mut image = Image::default();
    image.apply(
        1,
        Record::Topic {
            name: "t".into(),
            id,
        },
    );
    let change = |isr: &[i32], leader: i32, epoch: i32| Record::Partition {
        topic_id: id,
        partition: 0,
        state: PartitionImage {
            isr: isr.to_vec(),
            leader,
            partition_epoch: epoch,
            ..partition(&[1, 2, 3])
        },
    };
    assert!(image.apply(2, change(&[1, 2, 3], 1, 0)), "a new partition");
    // Two changes made from epoch 0 before either applied: the first
    // wins, the second (which would put broker 1 back as leader) is
    // skipped.
    assert!(image.apply(3, change(&[2, 3], 2, 1)));
    assert!(!image.apply(4, change(&[1, 2], 1, 1)));
    let p = &image.topics["t"].partitions[0];
    assert_eq!(
        (p.leader, p.isr.clone(), p.partition_epoch),
        (2, vec![2, 3], 1)
    );
    // Neither older nor later than the next epoch.
    assert!(!image.apply(5, change(&[2], 2, 3)));
    assert!(image.apply(6, change(&[2], 2, 2)));
}
