//! The active controller's decisions, as pure functions of the image: which
//! records a topic creation, a partition increase or a topic deletion
//! writes. The controller is the quorum's leader; it checks a request
//! against its image and proposes the records, and every broker applies
//! them once committed (applying checks them again, so a proposal raced by
//! another changes nothing).
//!
//! Replica placement follows Kafka's rack-unaware assignment: brokers in id
//! order, partition `p`'s first replica (its preferred leader) at position
//! `start + p`, the others after it, so leaders spread evenly and `start`
//! moves from one topic to the next. Only unfenced brokers are placed on.
//!
//! Leader election, when a broker is fenced (its session expired) or
//! unfenced: a fenced broker leaves every ISR (the last in-sync replica of
//! a partition stays its ISR, so the partition knows whom to wait for);
//! each partition it led passes to the first replica in assignment order
//! that is in the ISR and unfenced, with the leader epoch bumped; with none
//! the partition has no leader until one comes back, unless the topic has
//! `unclean.leader.election.enable`, which lets any unfenced replica lead
//! (and makes it the whole ISR).

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::records::{Image, NO_LEADER, PartitionImage, Record, TOPIC_RESOURCE};

/// A refusal: a Kafka error code and the message a user reads.
pub(crate) type Refusal = (i16, String);

/// What a CreateTopics entry asks for, already checked for name and
/// settings.
#[derive(Debug, Clone)]
pub(crate) struct NewTopic {
    pub(crate) name: String,
    /// Partitions when no assignment is given.
    pub(crate) partitions: i32,
    /// -1 for `default.replication.factor`.
    pub(crate) replication_factor: i16,
    /// Replicas per partition, when the client chose them.
    pub(crate) assignments: Vec<Vec<i32>>,
    pub(crate) configs: Vec<(String, String)>,
}

/// The records that create `topic` with id `id`, placing replicas from
/// position `start`; `default_rf` stands in for a factor of -1.
pub(crate) fn create_topic(
    image: &Image,
    topic: &NewTopic,
    id: Uuid,
    start: usize,
    default_rf: i16,
) -> Result<Vec<Record>, Refusal> {
    if image.topics.contains_key(&topic.name) {
        return Err((
            ResponseError::TopicAlreadyExists.code(),
            format!("topic `{}` already exists", topic.name),
        ));
    }
    let rf = if topic.replication_factor == -1 {
        default_rf
    } else {
        topic.replication_factor
    };
    let replicas = if topic.assignments.is_empty() {
        place(image, 0, topic.partitions, rf, start)?
    } else {
        check_assignments(image, &topic.assignments)?;
        topic.assignments.clone()
    };
    let mut records = vec![Record::Topic {
        name: topic.name.clone(),
        id,
    }];
    records.extend(partitions(image, id, 0, replicas));
    records.extend(topic.configs.iter().map(|(k, v)| Record::Config {
        resource_type: TOPIC_RESOURCE,
        resource: topic.name.clone(),
        name: k.clone(),
        value: Some(v.clone()),
    }));
    Ok(records)
}

/// The records that grow `name` to `count` partitions (with `assignments`
/// for the new ones, when given).
pub(crate) fn add_partitions(
    image: &Image,
    name: &str,
    count: i32,
    assignments: &[Vec<i32>],
    start: usize,
) -> Result<Vec<Record>, Refusal> {
    let Some(topic) = image.topics.get(name) else {
        return Err((
            ResponseError::UnknownTopicOrPartition.code(),
            format!("topic `{name}` does not exist"),
        ));
    };
    let have = topic.partitions.len() as i32;
    if count <= have {
        return Err((
            ResponseError::InvalidPartitions.code(),
            format!("topic `{name}` has {have} partitions; the count can only grow"),
        ));
    }
    let rf = topic
        .partitions
        .first()
        .map_or(1, |p| p.replicas.len() as i16);
    let replicas = if assignments.is_empty() {
        place(image, have, count - have, rf, start)?
    } else {
        if assignments.len() as i32 != count - have {
            return Err((
                ResponseError::InvalidReplicaAssignment.code(),
                format!(
                    "{} assignments for {} new partitions",
                    assignments.len(),
                    count - have
                ),
            ));
        }
        check_assignments(image, assignments)?;
        assignments.to_vec()
    };
    Ok(partitions(image, topic.id, have, replicas).collect())
}

/// The records that fence `broker` and move what it led; `unclean` says
/// whether a topic allows unclean leader election.
pub(crate) fn fence_broker(
    image: &Image,
    broker: i32,
    unclean: impl Fn(&str) -> bool,
) -> Vec<Record> {
    let Some(r) = image.brokers.get(&broker) else {
        return Vec::new();
    };
    let mut records = vec![Record::FenceBroker {
        broker_id: broker,
        epoch: r.epoch,
    }];
    let usable = |b: i32| b != broker && image.brokers.get(&b).is_some_and(|r| !r.fenced);
    changes(image, &mut records, |name, p| {
        if !p.isr.contains(&broker) && p.leader != broker {
            return None;
        }
        let mut next = p.clone();
        if p.isr.len() > 1 {
            next.isr.retain(|&b| b != broker);
        }
        if p.leader == broker || p.leader == NO_LEADER {
            let leader = elect(&mut next, usable, unclean(name));
            next.leader = leader;
        }
        Some(next)
    });
    records
}

/// Partition records doing for every partition what [`fence_broker`]
/// would have, had it seen the partition as it is now: fenced brokers out
/// of its ISR (all but the last), and a new leader when its leader is
/// fenced. A safety net for a fence whose changes a concurrent one made
/// them skip (two changes made from one partition epoch: the first to
/// apply wins), so no partition stays led by, or waits for, a broker that
/// is gone.
pub(crate) fn repair_leaders(image: &Image, unclean: impl Fn(&str) -> bool) -> Vec<Record> {
    let fenced = |b: i32| image.brokers.get(&b).is_some_and(|r| r.fenced);
    let usable = |b: i32| image.brokers.get(&b).is_some_and(|r| !r.fenced);
    let mut records = Vec::new();
    changes(image, &mut records, |name, p| {
        let mut next = p.clone();
        for &b in p.isr.iter().filter(|&&b| fenced(b)) {
            if next.isr.len() > 1 {
                next.isr.retain(|&r| r != b);
            }
        }
        if p.leader != NO_LEADER && fenced(p.leader) {
            next.leader = elect(&mut next, usable, unclean(name));
        }
        Some(next)
    });
    records
}

/// The records that unfence `broker` and give it the partitions that wait
/// for it.
pub(crate) fn unfence_broker(
    image: &Image,
    broker: i32,
    unclean: impl Fn(&str) -> bool,
) -> Vec<Record> {
    let Some(r) = image.brokers.get(&broker) else {
        return Vec::new();
    };
    let mut records = vec![Record::UnfenceBroker {
        broker_id: broker,
        epoch: r.epoch,
    }];
    let usable = |b: i32| b == broker || image.brokers.get(&b).is_some_and(|r| !r.fenced);
    changes(image, &mut records, |name, p| {
        if p.leader != NO_LEADER || !p.replicas.contains(&broker) {
            return None;
        }
        let mut next = p.clone();
        let leader = elect(&mut next, usable, unclean(name));
        next.leader = leader;
        (next.leader != NO_LEADER).then_some(next)
    });
    records
}

/// Partition records for every partition `change` gives a new state,
/// with the leader epoch bumped when the leader changed and the partition
/// epoch at every change.
fn changes(
    image: &Image,
    records: &mut Vec<Record>,
    mut change: impl FnMut(&str, &PartitionImage) -> Option<PartitionImage>,
) {
    for (name, t) in &image.topics {
        for (i, p) in t.partitions.iter().enumerate() {
            let Some(mut next) = change(name, p).filter(|n| n != p) else {
                continue;
            };
            if next.leader != p.leader {
                next.leader_epoch = p.leader_epoch.saturating_add(1);
            }
            next.partition_epoch = p.partition_epoch.saturating_add(1);
            records.push(Record::Partition {
                topic_id: t.id,
                partition: i as i32,
                state: next,
            });
        }
    }
}

/// The leader for `p` among the `usable` replicas: the first in the ISR;
/// with none and `unclean`, the first usable replica, which becomes the
/// whole ISR; else none.
fn elect(p: &mut PartitionImage, usable: impl Fn(i32) -> bool, unclean: bool) -> i32 {
    let in_sync = p
        .replicas
        .iter()
        .copied()
        .find(|&b| p.isr.contains(&b) && usable(b));
    match in_sync {
        Some(b) => b,
        None if unclean => match p.replicas.iter().copied().find(|&b| usable(b)) {
            Some(b) => {
                p.isr = vec![b];
                b
            }
            None => NO_LEADER,
        },
        None => NO_LEADER,
    }
}

/// A leader's request to change a partition's ISR (AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IsrChange {
    pub(crate) topic_id: Uuid,
    pub(crate) partition: i32,
    /// The broker asking: it must lead the partition.
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    /// The partition epoch the change is made from: a compare-and-swap.
    pub(crate) partition_epoch: i32,
    /// The ISR wanted, the leader among it.
    pub(crate) isr: Vec<i32>,
}

impl IsrChange {
    /// The Partition record that makes the change, or Kafka's refusal.
    pub(crate) fn record(&self, image: &Image) -> Result<Record, Refusal> {
        let refuse = |e: ResponseError, m: String| Err((e.code(), m));
        let Some(p) = image
            .topic_by_id(self.topic_id)
            .and_then(|(_, t)| t.partitions.get(usize::try_from(self.partition).ok()?))
        else {
            return refuse(
                ResponseError::UnknownTopicOrPartition,
                format!("no partition {} of topic {}", self.partition, self.topic_id),
            );
        };
        if p.leader != self.leader {
            return refuse(
                ResponseError::NotLeaderOrFollower,
                format!("broker {} does not lead it; {} does", self.leader, p.leader),
            );
        }
        if self.leader_epoch != p.leader_epoch {
            return refuse(
                ResponseError::FencedLeaderEpoch,
                format!("leader epoch {}, not {}", p.leader_epoch, self.leader_epoch),
            );
        }
        if self.partition_epoch != p.partition_epoch {
            return refuse(
                ResponseError::InvalidUpdateVersion,
                format!(
                    "partition epoch {}, not {}: it changed since",
                    p.partition_epoch, self.partition_epoch
                ),
            );
        }
        let mut sorted = self.isr.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.isr.len()
            || !self.isr.contains(&self.leader)
            || self.isr.iter().any(|r| !p.replicas.contains(r))
        {
            return refuse(
                ResponseError::InvalidRequest,
                format!(
                    "ISR {:?}: not distinct replicas of {:?} with the leader among them",
                    self.isr, p.replicas
                ),
            );
        }
        let fenced = |r: &i32| image.brokers.get(r).is_none_or(|b| b.fenced);
        if let Some(r) = self.isr.iter().find(|r| !p.isr.contains(r) && fenced(r)) {
            return refuse(
                ResponseError::IneligibleReplica,
                format!("replica {r} is fenced and may not join the ISR"),
            );
        }
        let mut next = p.clone();
        next.isr = p
            .replicas
            .iter()
            .copied()
            .filter(|r| self.isr.contains(r))
            .collect();
        next.partition_epoch = p.partition_epoch.saturating_add(1);
        Ok(Record::Partition {
            topic_id: self.topic_id,
            partition: self.partition,
            state: next,
        })
    }
}

/// The record that deletes `name`.
pub(crate) fn remove_topic(image: &Image, name: &str) -> Option<Record> {
    let topic = image.topics.get(name)?;
    Some(Record::RemoveTopic { id: topic.id })
}

/// Partition records from `first` on, every unfenced replica in sync (a
/// new partition is empty everywhere) and the first of them leading.
fn partitions<'a>(
    image: &'a Image,
    id: Uuid,
    first: i32,
    replicas: Vec<Vec<i32>>,
) -> impl Iterator<Item = Record> + 'a {
    replicas.into_iter().zip(first..).map(move |(r, p)| {
        let isr: Vec<i32> = r
            .iter()
            .copied()
            .filter(|b| image.brokers.get(b).is_some_and(|r| !r.fenced))
            .collect();
        Record::Partition {
            topic_id: id,
            partition: p,
            state: PartitionImage {
                leader: isr.first().copied().unwrap_or(NO_LEADER),
                isr,
                replicas: r,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        }
    })
}

/// Replicas for `count` partitions from partition `first` on.
fn place(
    image: &Image,
    first: i32,
    count: i32,
    rf: i16,
    start: usize,
) -> Result<Vec<Vec<i32>>, Refusal> {
    let brokers: Vec<i32> = image
        .brokers
        .iter()
        .filter(|(_, r)| !r.fenced)
        .map(|(&id, _)| id)
        .collect();
    check_factor(rf, brokers.len())?;
    let n = brokers.len();
    let rf = rf as usize;
    Ok((first..first + count)
        .map(|p| {
            let lead = start.wrapping_add(p as usize) % n;
            (0..rf).map(|i| brokers[(lead + i) % n]).collect()
        })
        .collect())
}

fn check_factor(rf: i16, brokers: usize) -> Result<(), Refusal> {
    if rf < 1 {
        return Err((
            ResponseError::InvalidReplicationFactor.code(),
            format!("replication factor {rf}: must be at least 1"),
        ));
    }
    if rf as usize > brokers {
        return Err((
            ResponseError::InvalidReplicationFactor.code(),
            format!(
                "replication factor {rf} is larger than the {brokers} brokers available \
                 (registered and not fenced)"
            ),
        ));
    }
    Ok(())
}

fn check_assignments(image: &Image, assignments: &[Vec<i32>]) -> Result<(), Refusal> {
    let bad = |m: String| Err((ResponseError::InvalidReplicaAssignment.code(), m));
    let Some(first) = assignments.first() else {
        return bad("no assignment".to_owned());
    };
    for (p, a) in assignments.iter().enumerate() {
        if a.len() != first.len() {
            return bad(format!(
                "partition {p} has {} replicas, partition 0 has {}",
                a.len(),
                first.len()
            ));
        }
        if let Some(b) = a.iter().find(|b| !image.brokers.contains_key(b)) {
            return bad(format!(
                "partition {p} names broker {b}, which is not registered"
            ));
        }
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != a.len() {
            return bad(format!("partition {p} names a broker twice"));
        }
    }
    if let Some(p) = assignments
        .iter()
        .position(|a| a.iter().all(|b| image.brokers[b].fenced))
    {
        return bad(format!(
            "every broker assigned to partition {p} is fenced (not heard from)"
        ));
    }
    check_factor(first.len() as i16, image.brokers.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::Registration;

    fn image(brokers: &[i32]) -> Image {
        let mut i = Image::default();
        for &b in brokers {
            i.brokers.insert(
                b,
                Registration {
                    epoch: 1,
                    endpoint: format!("h:{b}"),
                    fenced: false,
                },
            );
        }
        i
    }

    fn new_topic(partitions: i32, rf: i16) -> NewTopic {
        NewTopic {
            name: "t".into(),
            partitions,
            replication_factor: rf,
            assignments: Vec::new(),
            configs: vec![("retention.ms".into(), "5".into())],
        }
    }

    fn leaders(records: &[Record]) -> Vec<i32> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Partition { state, .. } => Some(state.leader),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn leaders_spread_over_the_brokers_from_the_start_position() {
        let img = image(&[0, 1, 2]);
        let r = create_topic(&img, &new_topic(6, -1), Uuid::from_u128(1), 1, 1).unwrap();
        assert_eq!(leaders(&r), vec![1, 2, 0, 1, 2, 0]);
        assert!(matches!(&r[0], Record::Topic { name, .. } if name == "t"));
        assert!(matches!(r.last(), Some(Record::Config { name, .. }) if name == "retention.ms"));
        // Applied, they make the topic.
        let mut applied = img.clone();
        for rec in r {
            applied.apply(9, rec);
        }
        assert_eq!(applied.topics["t"].partitions.len(), 6);
        let more = add_partitions(&applied, "t", 8, &[], 0).unwrap();
        assert_eq!(leaders(&more), vec![0, 1]);
    }

    #[test]
    fn brokers_fenced_together_or_undone_leave_no_partition_led_by_one() {
        let mut img = image(&[0, 1, 2]);
        let r = create_topic(&img, &new_topic(1, 3), Uuid::from_u128(1), 1, 1).unwrap();
        for rec in r {
            img.apply(2, rec);
        }
        let p = img.topics["t"].partitions[0].clone();
        assert_eq!((p.leader, p.isr.len()), (1, 3));
        // Fenced from the same image: 1's move takes the partition to 2,
        // and 2's records, made from the same partition epoch, change
        // nothing of it when they apply (without that compare-and-swap
        // they would undo the move).
        let stale: Vec<Record> = fence_broker(&img, 1, |_| false)
            .into_iter()
            .chain(fence_broker(&img, 2, |_| false))
            .collect();
        let mut undone = img.clone();
        for rec in stale {
            undone.apply(3, rec);
        }
        let p = &undone.topics["t"].partitions[0];
        assert_eq!(
            (p.leader, p.partition_epoch),
            (2, 1),
            "led by a fenced broker"
        );
        let fixed = repair_leaders(&undone, |_| false);
        assert_eq!(leaders(&fixed), vec![0]);
        for rec in fixed {
            undone.apply(4, rec);
        }
        let p = &undone.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (0, vec![0], 2));
        assert!(
            repair_leaders(&undone, |_| false).is_empty(),
            "nothing left to move"
        );
    }

    #[test]
    fn a_fenced_broker_left_in_an_isr_is_taken_out() {
        let mut img = image(&[0, 1, 2]);
        let r = create_topic(&img, &new_topic(1, 3), Uuid::from_u128(1), 1, 1).unwrap();
        for rec in r {
            img.apply(2, rec);
        }
        // Fenced, but its Partition change was skipped (a concurrent
        // change applied first): it is still in the ISR.
        let fence = Record::FenceBroker {
            broker_id: 2,
            epoch: img.brokers[&2].epoch,
        };
        assert!(img.apply(3, fence));
        let before = img.topics["t"].partitions[0].clone();
        assert!(before.isr.contains(&2) && before.leader != 2);
        let fixed = repair_leaders(&img, |_| false);
        assert_eq!(fixed.len(), 1);
        for rec in fixed {
            assert!(img.apply(4, rec));
        }
        let p = &img.topics["t"].partitions[0];
        assert!(!p.isr.contains(&2), "{p:?}");
        assert_eq!(p.leader, before.leader);
        assert_eq!(p.leader_epoch, before.leader_epoch, "the leader stays");
        assert_eq!(p.partition_epoch, before.partition_epoch + 1);
        assert!(repair_leaders(&img, |_| false).is_empty());
    }

    #[test]
    fn bad_requests_are_refused_with_kafkas_codes() {
        let img = image(&[0, 1, 2]);
        let code = |r: Result<Vec<Record>, Refusal>| r.unwrap_err().0;
        let id = Uuid::from_u128(1);
        assert_eq!(
            code(create_topic(&img, &new_topic(1, 4), id, 0, 1)),
            ResponseError::InvalidReplicationFactor.code()
        );
        assert_eq!(
            code(create_topic(&img, &new_topic(1, 0), id, 0, 1)),
            ResponseError::InvalidReplicationFactor.code()
        );
        let mut t = new_topic(1, -1);
        t.assignments = vec![vec![0], vec![7]];
        assert_eq!(
            code(create_topic(&img, &t, id, 0, 1)),
            ResponseError::InvalidReplicaAssignment.code()
        );
        t.assignments = vec![vec![0], vec![1, 2]];
        assert_eq!(
            code(create_topic(&img, &t, id, 0, 1)),
            ResponseError::InvalidReplicaAssignment.code()
        );
        assert_eq!(
            code(add_partitions(&img, "t", 3, &[], 0)),
            ResponseError::UnknownTopicOrPartition.code()
        );
        assert_eq!(
            code(create_topic(&image(&[]), &new_topic(1, -1), id, 0, 1)),
            ResponseError::InvalidReplicationFactor.code()
        );
    }
}
