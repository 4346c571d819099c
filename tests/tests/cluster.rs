//! Topics across three `conveyor serve` processes on loopback, on every
//! runtime, driven by librdkafka: a topic created through any broker is
//! created by the active controller and its partitions led by all three;
//! Metadata from any broker names the three brokers and every partition's
//! leader; a producer and a consumer bootstrapped from one broker each
//! reach every leader, and every record produced is read back; a consumer
//! group found through one broker is coordinated by the leader of its
//! `__consumer_offsets` partition, and its committed offsets are read back
//! through another broker; a topic with three replicas ends with the
//! same segment bytes on every broker; a topic's settings changed through
//! a broker that is not the controller are described by every broker.
//!
//! Failover: `kill -9` of a partition's leader while idempotent
//! producers (librdkafka and kafka-python) write with `acks=all` and
//! `min.insync.replicas=2` — once a plain broker, once the active
//! controller. The controller fences the dead broker, an in-sync replica
//! takes the partition, the producers go on there, and a read from the
//! earliest offset passes the history checker (`conveyor_tests::history`):
//! every record acknowledged is there once, at the offset acknowledged, no
//! offset was read with two values, reads went forward. The killed
//! broker restarts and rejoins the ISR.
//!
//! Network partition: three brokers in network namespaces of their own
//! (`conveyor_tests::netns`); the leader of a partition is cut off from
//! the other two while the test still reaches it. Its acks=all write is
//! never acknowledged, the others elect a new leader and take writes, and
//! healed, the old leader drops what it took alone, copies the new one
//! and rejoins the ISR: the history checker finds nothing acknowledged
//! lost, and all three hold the same bytes.
//!
//! Coordinator failover: a consumer group commits, then `kill -9` of its
//! coordinator; a new member bootstrapped from another broker finds the
//! new coordinator (the new leader of the group's replicated
//! `__consumer_offsets` partition) and resumes exactly from the commits.
//!
//! Run: `cargo test -p conveyor-tests --test cluster`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use conveyor_tests::client::{
    block_on, client_config, consume, consume_all, consume_through_failover, consumer,
    produce_test_records, producer, producer_config, try_create_replicated_topic,
};
use conveyor_tests::history::History;
use conveyor_tests::netns::Lan;
use conveyor_tests::python::{KAFKA_PYTHON, run_script};
use conveyor_tests::{ChildBroker, TestRecord, each_runtime, loopback_voters, unique_topic};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// How long three brokers may take to elect a controller and register.
const FORM: Duration = Duration::from_secs(30);
const PARTITIONS: i32 = 6;
const RECORDS: usize = 600;

/// The logs of every broker still running.
fn logs<'a>(brokers: impl IntoIterator<Item = &'a ChildBroker>) -> String {
    brokers
        .into_iter()
        .map(ChildBroker::log)
        .collect::<Vec<_>>()
        .join("\n----\n")
}

/// Wait until Metadata from `bootstrap` names `n` brokers and a controller.
fn formed(bootstrap: &str, n: usize, logs: impl Fn() -> String) {
    let c = consumer(&client_config(bootstrap));
    let deadline = Instant::now() + FORM;
    loop {
        if let Ok(m) = c.fetch_metadata(None, Duration::from_secs(2)) {
            if m.brokers().len() == n {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Metadata never named {n} brokers within {FORM:?}\n{}",
            logs()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

each_runtime! {
    fn a_topic_spreads_over_three_brokers_and_every_record_comes_back(rt) {
        let (addrs, voters) = loopback_voters(3);
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let brokers: Vec<ChildBroker> = (0..3)
            .map(|i| {
                let id = i.to_string();
                let settings = [
                    ("node.id", id.as_str()),
                    ("controller.quorum.voters", voters.as_str()),
                ];
                ChildBroker::spawn_on(rt, addrs[i], dirs[i].path(), &settings)
            })
            .collect();
        let bootstrap = |i: usize| addrs[i].to_string();
        formed(&bootstrap(0), 3, || logs(&brokers));

        // Created through broker 1, whichever broker is the controller:
        // librdkafka sends CreateTopics to the controller Metadata names.
        let topic = unique_topic("spread");
        create(&bootstrap(1), &topic, (PARTITIONS, 1), || logs(&brokers));

        // A topic's settings changed through a broker that is not the
        // controller, beside that broker's own: every broker has them.
        settings_through_a_follower(&addrs, &topic, || logs(&brokers));

        // Every broker answers Metadata with all three and the same leaders,
        // all three leading some partitions.
        let mut leaders_seen = None;
        for i in 0..3 {
            let c = consumer(&client_config(&bootstrap(i)));
            let deadline = Instant::now() + FORM;
            let leaders: Vec<i32> = loop {
                let m = c
                    .fetch_metadata(Some(&topic), Duration::from_secs(5))
                    .expect("metadata");
                let t = &m.topics()[0];
                if t.error().is_none() && t.partitions().len() == PARTITIONS as usize {
                    assert_eq!(m.brokers().len(), 3, "broker {i} names every broker");
                    let mut l: Vec<(i32, i32)> =
                        t.partitions().iter().map(|p| (p.id(), p.leader())).collect();
                    l.sort_unstable();
                    break l.into_iter().map(|(_, leader)| leader).collect();
                }
                assert!(
                    Instant::now() < deadline,
                    "broker {i} never had {topic}: {:?}\n{}",
                    t.error(),
                    logs(&brokers)
                );
                thread::sleep(Duration::from_millis(100));
            };
            let distinct: BTreeSet<i32> = leaders.iter().copied().collect();
            assert_eq!(distinct, BTreeSet::from([0, 1, 2]), "leaders {leaders:?}");
            match &leaders_seen {
                None => leaders_seen = Some(leaders),
                Some(seen) => assert_eq!(seen, &leaders, "broker {i} agrees"),
            }
        }

        // A producer bootstrapped from broker 2 reaches every leader.
        let p = producer(&producer_config(&bootstrap(2), "lz4"));
        let acked = produce_test_records(&p, &topic, None, 0..RECORDS, Duration::from_secs(60));
        assert_eq!(acked.len(), RECORDS);
        let partitions: BTreeSet<i32> = acked.values().map(|d| d.partition).collect();
        assert_eq!(partitions.len(), PARTITIONS as usize, "keys spread over every partition");

        // And a consumer bootstrapped from broker 0 reads every one back.
        let records = consume_all(&bootstrap(0), &topic, PARTITIONS, Duration::from_secs(60));
        let got: BTreeSet<usize> = records.iter().map(|r| r.index()).collect();
        assert_eq!(got, (0..RECORDS).collect::<BTreeSet<_>>());
        assert_eq!(records.len(), RECORDS, "no record twice");

        // A consumer group, found through broker 0, reads everything and
        // commits; its coordinator is whichever broker leads the group's
        // partition of __consumer_offsets, and a member bootstrapped from
        // broker 2 finds the same committed offsets.
        let group = unique_topic("group");
        let mut config = client_config(&bootstrap(0));
        config
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        let member = consumer(&config);
        member.subscribe(&[&topic]).expect("subscribe");
        let read = consume(&member, RECORDS, Duration::from_secs(60));
        assert_eq!(read.len(), RECORDS);
        member.commit_consumer_state(CommitMode::Sync).expect("commit");
        drop(member);
        let mut config = client_config(&bootstrap(2));
        config.set("group.id", &group);
        let other = consumer(&config);
        let mut wanted = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            wanted.add_partition(&topic, p);
        }
        let committed = other
            .committed_offsets(wanted, Duration::from_secs(10))
            .expect("committed offsets");
        let total: i64 = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                other => panic!("partition {} has {other:?} committed", e.partition()),
            })
            .sum();
        assert_eq!(total, RECORDS as i64, "every record's offset committed");

        // Each broker holds logs only for the partitions it leads.
        let leaders = leaders_seen.expect("leaders");
        for (i, dir) in dirs.iter().enumerate() {
            for (p, &leader) in leaders.iter().enumerate() {
                let held = dir.path().join(format!("{topic}-{p}")).is_dir();
                assert_eq!(held, leader == i as i32, "broker {i}, partition {p}");
            }
        }
        // A topic with three replicas: acks=all answered, every record read
        // back, and every broker ends with the leader's segment bytes.
        let replicated = unique_topic("replicated");
        create(&bootstrap(0), &replicated, (3, 3), || logs(&brokers));
        let p = producer(&producer_config(&bootstrap(2), "zstd"));
        let acked = produce_test_records(&p, &replicated, None, 0..RECORDS, Duration::from_secs(60));
        assert_eq!(acked.len(), RECORDS);
        let records = consume_all(&bootstrap(1), &replicated, 3, Duration::from_secs(60));
        assert_eq!(records.len(), RECORDS, "every acked record, once");
        for part in 0..3 {
            let bytes = |i: usize| segment_bytes(dirs[i].path(), &replicated, part);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !(bytes(1) == bytes(0) && bytes(2) == bytes(0)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(100));
            }
            assert!(!bytes(0).is_empty(), "partition {part} has records");
            assert_eq!(bytes(1), bytes(0), "partition {part}: brokers 0 and 1");
            assert_eq!(bytes(2), bytes(0), "partition {part}: brokers 0 and 2");
        }
        for b in brokers {
            assert!(b.terminate().success(), "clean stop");
        }
    }
}

each_runtime! {
    fn killing_a_leader_loses_no_acknowledged_record(rt) {
        let (addrs, voters) = loopback_voters(3);
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let start = |i: usize| {
            let id = i.to_string();
            let settings = [
                ("node.id", id.as_str()),
                ("controller.quorum.voters", voters.as_str()),
                ("broker.session.timeout.ms", "3000"),
                ("default.replication.factor", "3"),
                ("min.insync.replicas", "2"),
            ];
            ChildBroker::spawn_on(rt, addrs[i], dirs[i].path(), &settings)
        };
        let mut brokers: Vec<Option<ChildBroker>> = (0..3).map(|i| Some(start(i))).collect();
        let bootstrap = addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
        formed(&addrs[0].to_string(), 3, || logs(brokers.iter().flatten()));
        let topic = unique_topic("failover");
        create(&addrs[1].to_string(), &topic, (2, 3), || logs(brokers.iter().flatten()));

        let mut config = producer_config(&bootstrap, "lz4");
        config.set("enable.idempotence", "true");
        let p = producer(&config);
        let mut history = History::new();
        let mut next = 0;
        let per_round = 300;
        for round in 0..2 {
            let (leaders, controller) = leaders_and_controller(&addrs, &topic, &brokers);
            // First the leader of a partition the controller does not lead,
            // then the controller, with a partition it leads if it has one.
            let (partition, victim) = if round == 0 {
                let p = (0..2).find(|&p| leaders[p] != controller).expect("leaders spread");
                (p as i32, leaders[p] as usize)
            } else {
                let p = (0..2).find(|&p| leaders[p] == controller).unwrap_or(0);
                (p as i32, controller as usize)
            };
            let produce = |next: &mut usize, history: &mut History| {
                let batch = *next..*next + per_round;
                *next += per_round;
                let acked = produce_test_records(
                    &p,
                    &topic,
                    Some(partition),
                    batch.clone(),
                    Duration::from_secs(60),
                );
                // Every acknowledgement so far.
                assert_eq!(acked.len(), *next, "round {round}: every record acknowledged");
                for i in batch {
                    let d = &acked[&i];
                    history.acked(format!("rd-{i}"), (d.partition, d.offset), true);
                }
            };
            produce(&mut next, &mut history);
            // kafka-python's idempotent producer writes to the same
            // partition through the kill.
            let python = {
                let args = [
                    "--bootstrap".to_owned(),
                    bootstrap.clone(),
                    "--topic".to_owned(),
                    topic.clone(),
                    "--partition".to_owned(),
                    partition.to_string(),
                    "--prefix".to_owned(),
                    format!("py{round}"),
                    "--seconds".to_owned(),
                    "8".to_owned(),
                ];
                thread::spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    run_script(KAFKA_PYTHON, "acked_producer.py", &args)
                })
            };
            thread::sleep(Duration::from_secs(2));
            brokers[victim].take().expect("running").kill9();
            // Writes go on while the controller fences it and moves what
            // it led; librdkafka retries until the new leader answers.
            produce(&mut next, &mut history);
            let printed = python.join().expect("the kafka-python producer");
            let before = history.acks();
            for line in printed.lines() {
                let fields: Vec<&str> = line.split(' ').collect();
                if let ["ACK", p, o, value] = fields.as_slice() {
                    history.acked(*value, (p.parse().unwrap(), o.parse().unwrap()), true);
                }
            }
            assert!(history.acks() > before, "kafka-python had acknowledgements:\n{printed}");

            // A read of both partitions from the earliest offset, through a
            // survivor: the history holds.
            let survivor = (0..3).find(|&i| brokers[i].is_some()).unwrap();
            let read = consume_all(&addrs[survivor].to_string(), &topic, 2, Duration::from_secs(60));
            let reader = format!("round-{round}");
            for r in &read {
                let value = match r.key.as_deref().and_then(TestRecord::index_of) {
                    Some(i) => format!("rd-{i}"),
                    None => String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into(),
                };
                history.read(&reader, (r.partition, r.offset), value);
            }
            history.check(&reader);
            // Back from its data directory: it rejoins the ISR.
            brokers[victim] = Some(start(victim));
            wait_for_isr(&addrs[survivor].to_string(), &topic, 3, || {
                logs(brokers.iter().flatten())
            });
        }
        for b in brokers.into_iter().flatten() {
            assert!(b.terminate().success(), "clean stop");
        }
    }
}

each_runtime! {
    fn a_group_resumes_from_its_commits_when_its_coordinator_is_killed(rt) {
        let (addrs, voters) = loopback_voters(3);
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let start = |i: usize| {
            let id = i.to_string();
            let settings = [
                ("node.id", id.as_str()),
                ("controller.quorum.voters", voters.as_str()),
                ("broker.session.timeout.ms", "3000"),
                ("default.replication.factor", "3"),
                ("offsets.topic.num.partitions", "4"),
            ];
            ChildBroker::spawn_on(rt, addrs[i], dirs[i].path(), &settings)
        };
        let mut brokers: Vec<Option<ChildBroker>> = (0..3).map(|i| Some(start(i))).collect();
        let bootstrap = addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
        formed(&addrs[0].to_string(), 3, || logs(brokers.iter().flatten()));
        let topic = unique_topic("resume");
        create(&addrs[0].to_string(), &topic, (2, 3), || logs(brokers.iter().flatten()));
        let total = 400;
        let p = producer(&producer_config(&bootstrap, "lz4"));
        let acked = produce_test_records(&p, &topic, None, 0..total, Duration::from_secs(60));
        assert_eq!(acked.len(), total);
        drop(p);

        let group = unique_topic("group");
        let member = |at: &str| {
            let mut config = client_config(at);
            config
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest");
            let c = consumer(&config);
            c.subscribe(&[&topic]).expect("subscribe");
            c
        };
        let first = member(&bootstrap);
        let read = consume(&first, total / 2, Duration::from_secs(60));
        first.commit_consumer_state(CommitMode::Sync).expect("commit");
        drop(first);
        let coordinator = {
            let deadline = Instant::now() + FORM;
            loop {
                let id = conveyor_tests::raw::coordinator_id(addrs[0], &group);
                if id >= 0 {
                    break id as usize;
                }
                assert!(Instant::now() < deadline, "no coordinator of {group}");
                thread::sleep(Duration::from_millis(100));
            }
        };
        brokers[coordinator].take().expect("running").kill9();

        // Another member, bootstrapped from a survivor, is coordinated by
        // the new leader of the group's partition and reads on from the
        // commits: every record once between the two.
        let survivor = (0..3).find(|&i| i != coordinator).unwrap();
        let second = member(&addrs[survivor].to_string());
        let rest = consume_through_failover(&second, total - read.len(), Duration::from_secs(60));
        let mut seen = BTreeSet::new();
        for r in read.iter().chain(&rest) {
            assert!(seen.insert(r.index()), "record {} read twice", r.index());
        }
        assert_eq!(seen, (0..total).collect::<BTreeSet<_>>(), "every record once");
        let now = conveyor_tests::raw::coordinator_id(addrs[survivor], &group);
        assert!(now >= 0 && now as usize != coordinator, "coordinator {now}");
        drop(second);

        // Back, the killed broker rejoins every __consumer_offsets ISR.
        brokers[coordinator] = Some(start(coordinator));
        wait_for_isr(&addrs[survivor].to_string(), "__consumer_offsets", 3, || {
            logs(brokers.iter().flatten())
        });
        for b in brokers.into_iter().flatten() {
            assert!(b.terminate().success(), "clean stop");
        }
    }
}

each_runtime! {
    fn a_leader_cut_off_from_the_others_loses_nothing_acknowledged_and_rejoins(rt) {
        // Three brokers in network namespaces of their own; the test
        // reaches all three, whatever is cut between them.
        let lan = Lan::new(3);
        let addrs: Vec<SocketAddr> = (0..3).map(|i| SocketAddr::from((lan.ip(i), 9092))).collect();
        let voters = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{i}@{a}"))
            .collect::<Vec<_>>()
            .join(",");
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let start = |i: usize| {
            let id = i.to_string();
            let settings = [
                ("node.id", id.as_str()),
                ("controller.quorum.voters", voters.as_str()),
                ("broker.session.timeout.ms", "3000"),
                ("default.replication.factor", "3"),
                ("min.insync.replicas", "2"),
            ];
            ChildBroker::spawn_in(&lan.ns(i), rt, addrs[i], dirs[i].path(), &settings)
        };
        let brokers: Vec<Option<ChildBroker>> = (0..3).map(|i| Some(start(i))).collect();
        let all = addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
        formed(&addrs[0].to_string(), 3, || logs(brokers.iter().flatten()));
        let topic = unique_topic("partitioned");
        create(&addrs[0].to_string(), &topic, (1, 3), || logs(brokers.iter().flatten()));
        let (leaders, _) = leaders_and_controller(&addrs, &topic, &brokers);
        let old = leaders[0] as usize;

        let mut history = History::new();
        let produce = |bootstrap: &str, batch: std::ops::Range<usize>, history: &mut History| {
            let mut config = producer_config(bootstrap, "lz4");
            config.set("enable.idempotence", "true");
            let p = producer(&config);
            let acked = produce_test_records(&p, &topic, Some(0), batch.clone(), Duration::from_secs(60));
            assert_eq!(acked.len(), batch.len(), "every record acknowledged");
            for (i, d) in acked {
                history.acked(format!("rd-{i}"), (d.partition, d.offset), true);
            }
        };
        produce(&all, 0..200, &mut history);

        // Cut off, the leader takes an acks=all write it can never have
        // every in-sync replica confirm: it is not acknowledged.
        lan.cut(old);
        let batch = conveyor_tests::raw::record_batch(
            &[conveyor_tests::raw::RawRecord { key: None, value: Some(b"isolated") }],
            1_700_000_000_000,
        );
        let body = conveyor_tests::raw::produce_v3_body(&topic, 0, -1, &batch);
        let frame = conveyor_tests::raw::request(0, 3, 5, Some("conveyor-tests"), &body);
        let answer = conveyor_tests::raw::RawConn::connect(addrs[old]).round_trip(&frame, 5);
        let acked = answer
            .ok()
            .and_then(|b| conveyor_tests::raw::parse_produce_v3(&b))
            .is_some_and(|p| p.error_code == 0);
        assert!(!acked, "the cut-off leader acknowledged an acks=all write");

        // The others fence it and a new leader takes writes.
        let others: Vec<String> = (0..3).filter(|&i| i != old).map(|i| addrs[i].to_string()).collect();
        produce(&others.join(","), 200..400, &mut history);
        let survivor = (0..3).find(|&i| i != old).unwrap();
        let (leaders, _) = leaders_and_controller(&[addrs[survivor]], &topic, &brokers[survivor..=survivor]);
        assert_ne!(leaders[0] as usize, old, "a new leader");

        // Healed, the old leader drops the write it took alone, copies the
        // new leader and rejoins the ISR; nothing acknowledged is lost.
        lan.heal();
        wait_for_isr(&addrs[survivor].to_string(), &topic, 3, || logs(brokers.iter().flatten()));
        let read = consume_all(&addrs[survivor].to_string(), &topic, 1, Duration::from_secs(60));
        for r in &read {
            let value = match r.key.as_deref().and_then(TestRecord::index_of) {
                Some(i) => format!("rd-{i}"),
                None => String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into(),
            };
            history.read("final", (r.partition, r.offset), value);
        }
        history.check("final");
        assert!(read.iter().all(|r| r.value.as_deref() != Some(b"isolated")));
        let bytes = |i: usize| segment_bytes(dirs[i].path(), &topic, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(0..3).all(|i| bytes(i) == bytes(survivor)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        for i in 0..3 {
            assert_eq!(bytes(i), bytes(survivor), "broker {i} holds the leader's bytes");
        }
        for b in brokers.into_iter().flatten() {
            assert!(b.terminate().success(), "clean stop");
        }
    }
}

/// The leaders of `topic`'s partitions and the active controller, once a
/// running broker's Metadata names them all.
fn leaders_and_controller(
    addrs: &[SocketAddr],
    topic: &str,
    brokers: &[Option<ChildBroker>],
) -> (Vec<i32>, i32) {
    let at = (0..addrs.len()).find(|&i| brokers[i].is_some()).unwrap();
    let c = consumer(&client_config(&addrs[at].to_string()));
    let deadline = Instant::now() + FORM;
    loop {
        let m = c
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .expect("metadata");
        let mut leaders: Vec<(i32, i32)> = m.topics()[0]
            .partitions()
            .iter()
            .map(|p| (p.id(), p.leader()))
            .collect();
        leaders.sort_unstable();
        let leaders: Vec<i32> = leaders.into_iter().map(|(_, l)| l).collect();
        let controller = conveyor_tests::raw::controller_id(addrs[at]);
        if !leaders.is_empty() && leaders.iter().all(|&l| l >= 0) && controller >= 0 {
            return (leaders, controller);
        }
        assert!(
            Instant::now() < deadline,
            "no leaders ({leaders:?}) or controller ({controller})\n{}",
            logs(brokers.iter().flatten())
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Until Metadata from `bootstrap` shows every partition of `topic` with
/// `n` in-sync replicas.
fn wait_for_isr(bootstrap: &str, topic: &str, n: usize, logs: impl Fn() -> String) {
    let c = consumer(&client_config(bootstrap));
    let deadline = Instant::now() + FORM;
    loop {
        let isr = c
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .map(|m| {
                m.topics()[0]
                    .partitions()
                    .iter()
                    .map(|p| p.isr().len())
                    .collect::<Vec<_>>()
            });
        if isr
            .as_ref()
            .is_some_and(|l| !l.is_empty() && l.iter().all(|&c| c == n))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} never had {n} in-sync replicas in every partition ({isr:?})\n{}",
            logs()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// The bytes of every `.log` segment of `topic`-`p` in `dir`, in order.
/// Creates `topic` through the broker at `bootstrap`, retrying what a
/// Kafka client retries: NOT_CONTROLLER (a controller elected a moment ago
/// may not be known yet) and the client's own timeout (the brokers' logs
/// are printed so a slow quorum leaves its trace), after which the topic
/// may already exist.
fn create(bootstrap: &str, topic: &str, (partitions, rf): (i32, i32), logs: impl Fn() -> String) {
    let deadline = Instant::now() + FORM;
    let mut timed_out = false;
    loop {
        let e = match try_create_replicated_topic(
            bootstrap,
            topic,
            (partitions, rf),
            Duration::from_secs(10),
        ) {
            Ok(()) => return,
            Err(RDKafkaErrorCode::TopicAlreadyExists) if timed_out => return,
            Err(e) => e,
        };
        match e {
            RDKafkaErrorCode::NotController if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(200));
            }
            RDKafkaErrorCode::OperationTimedOut if Instant::now() < deadline => {
                eprintln!("CreateTopics {topic} timed out; retrying\n{}", logs());
                timed_out = true;
            }
            e => panic!("CreateTopics {topic}: {e}\n{}", logs()),
        }
    }
}

/// AlterConfigs of `topic` and of a broker that is not the active
/// controller: librdkafka sends a request with a broker resource to that
/// broker, which answers its own part and forwards the topic's to the
/// controller. Then until each broker describes the topic's new setting
/// (a broker resource makes librdkafka ask that broker).
fn settings_through_a_follower(addrs: &[SocketAddr], topic: &str, logs: impl Fn() -> String) {
    let controller = conveyor_tests::raw::controller_id(addrs[0]);
    let other = (0..addrs.len() as i32).find(|&i| i != controller).unwrap();
    let admin: AdminClient<DefaultClientContext> =
        client_config(&addrs[other as usize].to_string())
            .create()
            .expect("admin client");
    let timeout = Duration::from_secs(15);
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let changes = [
        AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", "86400000"),
        AlterConfig::new(ResourceSpecifier::Broker(other)).set("log.retention.bytes", "1000000000"),
    ];
    let results = block_on(admin.alter_configs(&changes, &opts), timeout)
        .expect("AlterConfigs answered in time")
        .unwrap_or_else(|e| panic!("AlterConfigs through broker {other}: {e}\n{}", logs()));
    for r in &results {
        assert!(
            r.is_ok(),
            "AlterConfigs through broker {other}: {results:?}\n{}",
            logs()
        );
    }
    for i in 0..addrs.len() as i32 {
        let admin: AdminClient<DefaultClientContext> =
            client_config(&addrs[i as usize].to_string())
                .create()
                .expect("admin client");
        let deadline = Instant::now() + FORM;
        loop {
            let asked = [
                ResourceSpecifier::Broker(i),
                ResourceSpecifier::Topic(topic),
            ];
            let described = block_on(admin.describe_configs(&asked, &opts), timeout)
                .expect("DescribeConfigs answered in time")
                .expect("DescribeConfigs");
            let entry = described[1]
                .as_ref()
                .ok()
                .and_then(|t| t.get("retention.ms"))
                .map(|e| (e.value.clone(), format!("{:?}", e.source)));
            let want = (Some("86400000".to_owned()), "DynamicTopic".to_owned());
            let set = entry.as_ref() == Some(&want);
            if set {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "broker {i} describes {entry:?}\n{}",
                logs()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

fn segment_bytes(dir: &std::path::Path, topic: &str, p: i32) -> Vec<u8> {
    let Ok(entries) = std::fs::read_dir(dir.join(format!("{topic}-{p}"))) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    paths.sort();
    paths
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap_or_default())
        .collect()
}
