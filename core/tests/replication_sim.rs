//! Replication across three broker cores on the simulated network of
//! `net/`: followers copy their leaders byte for byte and `acks=all` waits
//! for the in-sync replicas; a lagging follower leaves the ISR and comes
//! back; a dead leader's partitions pass to an in-sync replica with
//! nothing acknowledged lost, and the old leader copies the new one; an
//! old leader whose log diverged truncates it and rejoins the ISR; a
//! follower whose log ends below the leader's log start starts again there;
//! followers are read while held produces fill `queued.max.request.bytes`.

mod brokers;
mod common;
#[allow(dead_code)]
mod net;
#[allow(dead_code)]
#[path = "seeded/rng.rs"]
mod rng;

use std::collections::BTreeSet;
use std::time::Duration;

use brokers::*;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
    MetadataRequest, MetadataResponse, ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use net::{Net, quorum_net};

#[test]
fn replicas_copy_their_leader_and_acks_all_waits_for_every_in_sync_one() {
    let mut net = cluster(17, (5, 2));
    let c = controller(&net);
    let r = create_replicated(&mut net, c, "r", (2, 3));
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert_eq!(r.topics[0].replication_factor, 3);
    net.advance(Duration::from_secs(1));
    let image = net.status(0).image.topics["r"].clone();
    for i in 0..3 {
        assert_eq!(held(&mut net, i, "r"), BTreeSet::from([0, 1]), "node {i}");
    }

    // acks=all to each leader: every answer comes, in order, and every
    // replica ends with the leader's bytes.
    for p in 0..2 {
        let leader = image.partitions[p as usize].leader as usize;
        for i in 0..20 {
            assert_eq!(produce(&mut net, leader, "r", p, &format!("v{i}")), 0);
        }
        net.advance(Duration::from_secs(2));
        assert_eq!(high_watermark(&mut net, leader, "r", p), 20);
        let want = log_bytes(&net, leader, "r", p);
        assert!(!want.is_empty());
        for i in 0..3 {
            assert_eq!(log_bytes(&net, i, "r", p), want, "node {i}, partition {p}");
        }
    }

    // A follower stops: acks=all times out and the high watermark holds,
    // acks=1 is answered; once it is back, both catch up.
    let leader = image.partitions[0].leader as usize;
    let follower = (leader + 1) % 3;
    net.pause(follower, true);
    net.advance(Duration::from_secs(1));
    assert_eq!(
        produce(&mut net, leader, "r", 0, "late"),
        7,
        "REQUEST_TIMED_OUT"
    );
    let conn = net.client(leader);
    let batch = common::batch(&["one"], 1_700_000_000_000, Compression::None);
    let req = common::Sim::produce_req("r", 0, batch).with_acks(1);
    let r: ProduceResponse = net
        .request((leader, conn), (ApiKey::Produce, 9), &req, WAIT)
        .unwrap();
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(high_watermark(&mut net, leader, "r", 0), 20);
    net.pause(follower, false);
    net.advance(Duration::from_secs(3));
    assert_eq!(high_watermark(&mut net, leader, "r", 0), 22);
    let want = log_bytes(&net, leader, "r", 0);
    assert_eq!(log_bytes(&net, follower, "r", 0), want);

    // More in-sync replicas asked for than there are: refused.
    let conn = net.client(c);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name("strict"))
                .with_num_partitions(1)
                .with_replication_factor(3)
                .with_configs(vec![
                    kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default(
                    )
                    .with_name(StrBytes::from_static_str("min.insync.replicas"))
                    .with_value(Some(StrBytes::from_static_str("4"))),
                ]),
        ])
        .with_timeout_ms(5_000);
    let r: CreateTopicsResponse = net
        .request((c, conn), (ApiKey::CreateTopics, 7), &req, WAIT)
        .unwrap();
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    net.advance(Duration::from_secs(1));
    let leader = net.status(0).image.topics["strict"].partitions[0].leader as usize;
    assert_eq!(
        produce(&mut net, leader, "strict", 0, "x"),
        19,
        "NOT_ENOUGH_REPLICAS"
    );
}

#[test]
fn a_dead_leaders_partitions_pass_to_an_in_sync_replica_and_nothing_acknowledged_is_lost() {
    for seed in 23..31 {
        failover(seed);
    }
}

fn failover(seed: u64) {
    let mut net = cluster(seed, (5, 2));
    let c = controller(&net);
    let r = create_replicated(&mut net, c, "f", (3, 3));
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    net.advance(Duration::from_secs(1));
    let image = net.status(c).image.topics["f"].clone();
    let leader_of = |p: usize| image.partitions[p].leader as usize;

    // First a broker that is not the controller, then the controller.
    let plain = (0..3).find(|&p| leader_of(p) != c).unwrap();
    let led_by_controller = (0..3).find(|&p| leader_of(p) == c).unwrap();
    for (round, p) in [plain, led_by_controller].into_iter().enumerate() {
        let old = leader_of(p);
        let p32 = p as i32;
        let mut acked = Vec::new();
        for i in 0..10 {
            let v = format!("r{round}-{i}");
            assert_eq!(produce(&mut net, old, "f", p32, &v), 0);
            acked.push(v);
        }
        net.crash(old);
        // A session passes, a new controller is elected if need be, and
        // the partition moves to an in-sync replica.
        net.advance(Duration::from_secs(12));
        let alive = (0..3).find(|&i| i != old).unwrap();
        let s = net.status(alive);
        assert!(s.image.brokers[&(old as i32)].fenced, "{old} fenced");
        // Clients are no longer sent to it.
        let conn = net.client(alive);
        let m: MetadataResponse = net
            .request(
                (alive, conn),
                (ApiKey::Metadata, 12),
                &MetadataRequest::default(),
                WAIT,
            )
            .unwrap();
        let listed: Vec<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
        assert!(!listed.contains(&(old as i32)), "Metadata lists {listed:?}");
        assert_eq!(listed.len(), 2);
        let state = &s.image.topics["f"].partitions[p];
        let new = state.leader;
        assert!(new >= 0 && new != old as i32, "partition {p} led by {new}");
        assert!(!state.isr.contains(&(old as i32)), "isr {:?}", state.isr);
        assert!(state.leader_epoch >= 1);
        let new = new as usize;
        for i in 0..10 {
            let v = format!("r{round}-late-{i}");
            assert_eq!(produce(&mut net, new, "f", p32, &v), 0, "to the new leader");
            acked.push(v);
        }
        let read = values(&mut net, new, "f", p32);
        assert!(
            acked.iter().all(|v| read.contains(v)),
            "every acknowledged record on the new leader: {read:?}"
        );

        // Back: unfenced, it follows the new leader and catches up.
        net.restart(old);
        net.advance(Duration::from_secs(5));
        let s = net.status(new);
        assert!(!s.image.brokers[&(old as i32)].fenced, "{old} unfenced");
        assert_eq!(
            produce(&mut net, old, "f", p32, "to the old leader"),
            NOT_LEADER_OR_FOLLOWER
        );
        net.advance(Duration::from_secs(2));
        assert_eq!(
            log_bytes(&net, old, "f", p32),
            log_bytes(&net, new, "f", p32),
            "partition {p}: the old leader copies the new one"
        );
        let isr = &net.status(new).image.topics["f"].partitions[p].isr;
        assert_eq!(isr.len(), 3, "partition {p}: back in the ISR: {isr:?}");
    }
}

#[test]
fn a_lagging_follower_leaves_the_isr_and_rejoins_once_caught_up() {
    // Sessions longer than the lag allowed: the leader, not the
    // controller, drops the follower.
    let settings = [
        ("num.partitions", "3"),
        ("default.replication.factor", "3"),
        ("broker.session.timeout.ms", "600000"),
        ("replica.lag.time.max.ms", "2000"),
    ];
    let mut net = quorum_net(41, 3, (5, 2), &settings);
    settle(&mut net).unwrap();
    let c = controller(&net);
    assert_eq!(create(&mut net, c, "lag", 3).topics[0].error_code, 0);
    net.advance(Duration::from_secs(1));
    let state = |net: &Net, p: usize| net.status(c).image.topics["lag"].partitions[p].clone();
    let leader_of = |net: &Net, p: usize| state(net, p).leader as usize;
    // A partition the controller leads (its ISR changes go straight to the
    // quorum) and one another broker leads (AlterPartition over the wire).
    let by_controller = (0..3).find(|&p| leader_of(&net, p) == c).unwrap();
    let by_other = (0..3).find(|&p| leader_of(&net, p) != c).unwrap();
    for p in [by_controller, by_other] {
        let leader = leader_of(&net, p);
        let p32 = p as i32;
        assert_eq!(state(&net, p).isr.len(), 3);
        let before = high_watermark(&mut net, leader, "lag", p32);
        assert_eq!(produce(&mut net, leader, "lag", p32, "a"), 0);

        // A follower that is not the controller stops: acks=all waits for
        // it only until the leader drops it from the ISR.
        let slow = (0..3).find(|&i| i != leader && i != c).unwrap();
        net.pause(slow, true);
        net.advance(Duration::from_secs(4));
        let shrunk = state(&net, p).isr;
        assert!(!shrunk.contains(&(slow as i32)), "{slow} out: {shrunk:?}");
        assert_eq!(shrunk.len(), 2);
        for i in 0..5 {
            assert_eq!(produce(&mut net, leader, "lag", p32, &format!("b{i}")), 0);
        }
        assert_eq!(high_watermark(&mut net, leader, "lag", p32), before + 6);

        // Back, it catches up and the leader adds it again.
        net.pause(slow, false);
        net.advance(Duration::from_secs(3));
        let back = state(&net, p);
        assert_eq!(back.isr.len(), 3, "partition {p}: {back:?}");
        assert!(back.partition_epoch >= 2, "{back:?}");
        assert_eq!(back.leader_epoch, 0, "the leader never changed");
        assert_eq!(
            log_bytes(&net, slow, "lag", p32),
            log_bytes(&net, leader, "lag", p32)
        );
    }
}

#[test]
fn an_old_leader_whose_log_diverged_truncates_it_and_rejoins_the_isr() {
    let settings = [("num.partitions", "1"), ("default.replication.factor", "3")];
    let mut net = quorum_net(61, 3, (5, 2), &settings);
    settle(&mut net).unwrap();
    let c = controller(&net);
    let mut made = None;
    for n in 0..6 {
        let topic = format!("d{n}");
        assert_eq!(create(&mut net, c, &topic, 1).topics[0].error_code, 0);
        net.advance(Duration::from_secs(1));
        let state = net.status(c).image.topics[&topic].partitions[0].clone();
        if state.leader as usize != c {
            made = Some((topic, state.leader as usize));
            break;
        }
    }
    let (topic, old) = made.expect("a partition led by a broker that is not the controller");
    for i in 0..5 {
        assert_eq!(produce(&mut net, old, &topic, 0, &format!("a{i}")), 0);
    }
    // Cut off, the old leader still takes acks=1 writes the others never
    // see; they fence it and the new leader takes more.
    net.isolate(old);
    for i in 0..3 {
        assert_eq!(
            produce_acks_1(&mut net, old, &topic, &format!("lost{i}")),
            0
        );
    }
    net.advance(Duration::from_secs(12));
    let new = net.status(c).image.topics[&topic].partitions[0].leader as usize;
    assert_ne!(new, old);
    for i in 0..6 {
        assert_eq!(produce(&mut net, new, &topic, 0, &format!("b{i}")), 0);
    }
    net.heal();
    net.advance(Duration::from_secs(10));
    // Unfenced, it follows, is told where its epoch ended on the new
    // leader, cuts its three lost records and takes the new leader's in
    // their place: the two logs are the same bytes, and it is in sync.
    let state = net.status(c).image.topics[&topic].partitions[0].clone();
    assert!(!net.status(c).image.brokers[&(old as i32)].fenced);
    assert!(state.isr.contains(&(old as i32)), "{state:?}");
    assert_eq!(
        log_bytes(&net, old, &topic, 0),
        log_bytes(&net, new, &topic, 0),
        "the old leader's log is the new leader's"
    );
    let read = values(&mut net, new, &topic, 0);
    assert!(read.iter().all(|v| !v.starts_with("lost")), "{read:?}");
    assert_eq!(read.len(), 11);
    // After a power loss it recovers the cut log, and copies again
    // whatever it had not synced.
    net.crash(old);
    net.restart(old);
    net.advance(Duration::from_secs(10));
    assert_eq!(
        log_bytes(&net, old, &topic, 0),
        log_bytes(&net, new, &topic, 0)
    );
}

#[test]
fn replicas_are_read_while_held_produces_fill_queued_max_request_bytes() {
    // One byte: every acks=all produce, held until its followers fetch,
    // stops the reading of every client connection. The followers'
    // connections are read all the same, or nothing would free it.
    let settings = [
        ("num.partitions", "1"),
        ("default.replication.factor", "3"),
        ("queued.max.request.bytes", "1"),
    ];
    let mut net = quorum_net(71, 3, (5, 2), &settings);
    settle(&mut net).unwrap();
    let c = controller(&net);
    assert_eq!(create(&mut net, c, "held", 1).topics[0].error_code, 0);
    net.advance(Duration::from_secs(1));
    let leader = net.status(c).image.topics["held"].partitions[0].leader as usize;
    for i in 0..10 {
        assert_eq!(
            produce(&mut net, leader, "held", 0, &format!("v{i}")),
            0,
            "produce {i}"
        );
    }
    assert_eq!(high_watermark(&mut net, leader, "held", 0), 10);
}

/// The batches of `log` (a partition's segment bytes) based at `from` or
/// later.
fn batches_from(log: &[u8], from: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= log.len() {
        let base = i64::from_be_bytes(log[at..at + 8].try_into().unwrap());
        let len = 12 + i32::from_be_bytes(log[at + 8..at + 12].try_into().unwrap()) as usize;
        if base >= from {
            out.extend_from_slice(&log[at..at + len]);
        }
        at += len;
    }
    out
}

#[test]
fn a_follower_whose_log_ends_below_the_leaders_log_start_starts_again_there() {
    let settings = [
        ("num.partitions", "1"),
        ("default.replication.factor", "3"),
        ("broker.session.timeout.ms", "600000"),
        ("replica.lag.time.max.ms", "2000"),
    ];
    let mut net = quorum_net(43, 3, (5, 2), &settings);
    settle(&mut net).unwrap();
    let c = controller(&net);
    assert_eq!(create(&mut net, c, "far", 1).topics[0].error_code, 0);
    net.advance(Duration::from_secs(1));
    let state = |net: &Net| net.status(c).image.topics["far"].partitions[0].clone();
    let leader = state(&net).leader as usize;
    for i in 0..2 {
        assert_eq!(produce(&mut net, leader, "far", 0, &format!("a{i}")), 0);
    }
    // A follower that is not the controller stops; the leader takes more
    // without it and deletes records past the follower's log end.
    let slow = (0..3).find(|&i| i != leader && i != c).unwrap();
    net.pause(slow, true);
    net.advance(Duration::from_secs(4));
    assert!(!state(&net).isr.contains(&(slow as i32)));
    for i in 0..10 {
        assert_eq!(produce(&mut net, leader, "far", 0, &format!("b{i}")), 0);
    }
    let conn = net.client(leader);
    let req = DeleteRecordsRequest::default()
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(name("far"))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(8),
                ]),
        ])
        .with_timeout_ms(1000);
    let r: DeleteRecordsResponse = net
        .request((leader, conn), (ApiKey::DeleteRecords, 2), &req, WAIT)
        .expect("DeleteRecords answered");
    assert_eq!(r.topics[0].partitions[0].low_watermark, 8);

    // Back, its fetch from offset 2 is out of range: it empties its log,
    // starts again at the leader's log start, copies the leader's batches
    // from there and rejoins the ISR.
    net.pause(slow, false);
    net.advance(Duration::from_secs(5));
    let back = state(&net);
    assert!(back.isr.contains(&(slow as i32)), "{back:?}");
    let theirs = batches_from(&log_bytes(&net, leader, "far", 0), 8);
    assert!(!theirs.is_empty());
    assert_eq!(log_bytes(&net, slow, "far", 0), theirs);
    let disk = &net.nodes[slow].disk;
    let starts = disk
        .paths()
        .into_iter()
        .find(|p| p.ends_with("log-start-offset-checkpoint"))
        .and_then(|p| disk.file(&p))
        .unwrap_or_default();
    let starts = String::from_utf8_lossy(starts);
    assert!(starts.lines().any(|l| l == "far 0 8"), "{starts}");
    // A restart keeps the new start and the copied log.
    net.crash(slow);
    net.restart(slow);
    net.advance(Duration::from_secs(5));
    assert_eq!(log_bytes(&net, slow, "far", 0), theirs);
    assert!(state(&net).isr.contains(&(slow as i32)));
}

/// DeleteRecords of `topic`-0 before `offset` at node `at`: its (error
/// code, low watermark).
fn delete_records(net: &mut Net, at: usize, topic: &str, offset: i64) -> (i16, i64) {
    let conn = net.client(at);
    let req = DeleteRecordsRequest::default()
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(offset),
                ]),
        ])
        .with_timeout_ms(1000);
    let r: DeleteRecordsResponse = net
        .request((at, conn), (ApiKey::DeleteRecords, 2), &req, WAIT)
        .expect("DeleteRecords answered");
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

#[test]
fn delete_records_is_answered_once_every_in_sync_replica_has_moved_its_log_start() {
    let settings = [("num.partitions", "1"), ("default.replication.factor", "3")];
    let mut net = quorum_net(47, 3, (5, 2), &settings);
    settle(&mut net).unwrap();
    let c = controller(&net);
    assert_eq!(create(&mut net, c, "low", 1).topics[0].error_code, 0);
    net.advance(Duration::from_secs(1));
    let leader = net.status(c).image.topics["low"].partitions[0].leader as usize;
    for i in 0..5 {
        assert_eq!(produce(&mut net, leader, "low", 0, &format!("v{i}")), 0);
    }
    // Every replica moves its log start; the answer says so.
    assert_eq!(delete_records(&mut net, leader, "low", 3), (0, 3));
    // An in-sync follower that does not fetch holds the low watermark
    // back until the request's timeout.
    let slow = (0..3).find(|&i| i != leader && i != c).unwrap();
    net.pause(slow, true);
    assert_eq!(delete_records(&mut net, leader, "low", 4), (7, 3));
    net.pause(slow, false);
    net.advance(Duration::from_secs(1));
    assert_eq!(delete_records(&mut net, leader, "low", 4), (0, 4));
}
