//! Consumer groups end to end, with real clients (issue 3):
//!
//! 1. Three librdkafka members on a 6-partition topic: each partition owned
//!    by exactly one member; one member (a kcat child process) SIGKILLed and
//!    its partitions moved to the survivors within two session timeouts;
//!    every record consumed exactly once by the survivors, which commit
//!    synchronously.
//! 2. A kafka-python member (tests/python/group.py) and a librdkafka member
//!    in one group with the range assignor: both get partitions, together
//!    all, and every record is consumed exactly once between them.
//! 3. Committed offsets survive a clean restart and a SIGKILL of the broker;
//!    a new member resumes exactly at them.
//! 4. `kcat -G` unchanged: reads everything, then nothing, then exactly the
//!    new records.
//!
//! Needs kcat, python3 with kafka-python (scripts/test installs both) and,
//! for the SIGKILL test, the `conveyor` binary: `cargo build -p
//! conveyor-server && cargo test -p conveyor-tests --test groups`. A missing
//! tool FAILS its test with an install hint; nothing is skipped.
//!
//! Every test runs on every runtime; the whole file takes about 30 s on two
//! cores (the brokers use a 1 s minimum session and no initial rebalance
//! delay, the members a 3 s session).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use conveyor_tests::client::{
    Consumed, Delivered, consume, consumer, create_topic, expect_nothing_more,
    produce_test_records, producer, producer_config, watermarks,
};
use conveyor_tests::groups::{
    GROUP_SETTINGS, GroupMember, GroupView, JsonValue, LoggedChild, MemberLog, SESSION_TIMEOUT,
    Seen, committed, describe_group, group_consumer_config, group_observer, kcat_group_args,
    parse_json_line, require_kcat, tail, wait_for_group,
};
use conveyor_tests::python::require_kafka_python;
use conveyor_tests::{ChildBroker, TestBroker, each_runtime, unique_topic};
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

/// Bound of any produce, consume or commit step.
const TIMEOUT: Duration = Duration::from_secs(60);

/// How long a group may take to settle after members join.
const SETTLE: Duration = Duration::from_secs(20);

/// How long a member thread may run at most.
const MEMBER_LIMIT: Duration = Duration::from_secs(150);

/// How long every consumer must stay quiet after the last expected record
/// before the test stops them: a duplicate delivered late is caught here.
const QUIET: Duration = Duration::from_millis(1000);

/// Checks that `consumed` (by member name) holds every acknowledged record
/// exactly once, each from the partition and offset its delivery report
/// gave, and nothing else.
fn assert_exactly_once(consumed: &[(&str, &[Seen])], acked: &HashMap<usize, Delivered>) {
    let mut by_index: HashMap<usize, Vec<(&str, i32, i64)>> = HashMap::new();
    for (who, records) in consumed {
        for r in *records {
            let Some(i) = r.index else {
                panic!(
                    "{who} consumed a record without a test key at {}:{}",
                    r.partition, r.offset
                );
            };
            let Some(d) = acked.get(&i) else {
                panic!(
                    "{who} consumed record {i} at {}:{}, which was never produced",
                    r.partition, r.offset
                );
            };
            assert_eq!(
                (d.partition, d.offset),
                (r.partition, r.offset),
                "{who} consumed record {i} away from where it was acknowledged"
            );
            by_index
                .entry(i)
                .or_default()
                .push((who, r.partition, r.offset));
        }
    }
    let mut twice: Vec<_> = by_index.iter().filter(|(_, v)| v.len() > 1).collect();
    twice.sort();
    let mut missing: Vec<usize> = acked
        .keys()
        .filter(|i| !by_index.contains_key(i))
        .copied()
        .collect();
    missing.sort_unstable();
    assert!(
        twice.is_empty(),
        "{} records consumed more than once, first: {:?}",
        twice.len(),
        &twice[..twice.len().min(10)]
    );
    assert!(
        missing.is_empty(),
        "{} of {} records never consumed, first: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
}

/// Per partition: (records, lowest offset, highest offset), for messages.
fn by_partition(records: &[Seen]) -> BTreeMap<i32, (usize, i64, i64)> {
    let mut out: BTreeMap<i32, (usize, i64, i64)> = BTreeMap::new();
    for r in records {
        let e = out.entry(r.partition).or_insert((0, r.offset, r.offset));
        e.0 += 1;
        e.1 = e.1.min(r.offset);
        e.2 = e.2.max(r.offset);
    }
    out
}

/// Waits (bounded) until the records `seen` returns cover `want` distinct
/// test indexes, then for [`QUIET`] more so late duplicates show up.
/// `detail` describes the consumers if it gives up.
fn wait_for_records(
    want: usize,
    what: &str,
    mut seen: impl FnMut() -> Vec<Seen>,
    detail: impl Fn() -> String,
) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let records = seen();
        let mut distinct: Vec<usize> = records.iter().filter_map(|r| r.index).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() >= want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: only {} of {want} records consumed within {TIMEOUT:?} ({} deliveries)\n{}",
            distinct.len(),
            records.len(),
            detail()
        );
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(QUIET);
}

/// The committed offsets of `group` must be every partition's high
/// watermark: the members committed everything they processed.
fn assert_committed_everything(bootstrap: &str, group: &str, topic: &str, partitions: i32) {
    let observer = group_observer(bootstrap);
    let highs: Vec<Offset> = watermarks(&observer, topic, partitions)
        .into_iter()
        .map(|(_, high)| Offset::Offset(high))
        .collect();
    assert_eq!(
        committed(bootstrap, group, topic, partitions),
        highs,
        "committed offsets of {group} (OffsetFetch) against the high watermarks"
    );
}

/// Once every member closed (LeaveGroup), the group is Empty.
fn assert_group_empty(bootstrap: &str, group: &str) {
    let observer = group_observer(bootstrap);
    wait_for_group(
        &observer,
        group,
        SETTLE,
        "the group empty after every member left",
        |v| v.state == "Empty" && v.members.is_empty(),
    );
}

fn member_summary(log: &MemberLog) -> String {
    format!(
        "{} records (by partition: count, first, last: {:?}), assignment {:?} (#{}), \
         {} commits, commit errors {:?}, errors {:?}",
        log.records.len(),
        by_partition(&log.records),
        log.assignment,
        log.assignments,
        log.commits,
        &log.commit_errors[..log.commit_errors.len().min(5)],
        &log.errors[..log.errors.len().min(5)]
    )
}

each_runtime! {
    /// Why the assertion is exact: the member that is killed is kcat with
    /// `enable.auto.offset.store=false`, so it commits nothing (kcat commits
    /// what librdkafka stored even with `enable.auto.commit=false`; with the
    /// store off nothing is stored). Whatever it read, the survivors read
    /// again from the partitions' committed offsets (none: the earliest), so
    /// its output is ignored and the two survivors alone must consume every
    /// record exactly once. They commit synchronously after each poll batch
    /// and before every revoke (the eager protocol revokes all partitions at
    /// each rebalance), so no record a survivor processed reaches the other
    /// one uncommitted.
    fn three_members_one_killed(rt) {
        require_kcat();
        let broker = TestBroker::start_with(rt, GROUP_SETTINGS);
        let bootstrap = broker.bootstrap();
        let topic = unique_topic("group-kill");
        let group = format!("{topic}-g");
        create_topic(&bootstrap, &topic, 6, TIMEOUT);
        let p = producer(&producer_config(&bootstrap, "none"));
        let mut acked = produce_test_records(&p, &topic, None, 0..3_000, TIMEOUT);

        let config = |id: &str| group_consumer_config(&bootstrap, &group, id, "roundrobin");
        let a = GroupMember::start("member-a", &config("member-a"), &topic, MEMBER_LIMIT);
        let b = GroupMember::start("member-b", &config("member-b"), &topic, MEMBER_LIMIT);
        let mut victim = LoggedChild::spawn(
            "kcat -G (the member to kill)",
            Command::new("kcat")
                .args(kcat_group_args(&bootstrap, "member-kcat", "roundrobin"))
                .args(["-X", "enable.auto.commit=false"])
                .args(["-X", "enable.auto.offset.store=false"])
                .args(["-q", "-G", &group, &topic]),
        );
        let survivors = [&a, &b];
        // Each survivor's own assignment (its rebalance callback) agrees
        // with what the coordinator says it gave that member.
        let agree = |v: &GroupView| {
            survivors.iter().all(|m| {
                v.member(m.name())
                    .is_some_and(|mv| mv.partitions(&topic) == m.snapshot().assignment)
            })
        };

        let observer = group_observer(&bootstrap);
        let before = wait_for_group(&observer, &group, SETTLE, "three members, stable", |v| {
            v.is_stable_split(&topic, 6, 3)
                && v.members.iter().all(|m| m.partitions(&topic).len() == 2)
                && v.member("member-kcat").is_some()
                && agree(v)
        });
        assert_eq!(
            (before.protocol_type.as_str(), before.protocol.as_str()),
            ("consumer", "roundrobin"),
            "{before:#?}"
        );
        let mut ids: Vec<&str> = before
            .members
            .iter()
            .map(|m| m.member_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 3, "member ids are not distinct: {before:#?}");
        victim.assert_running();

        let killed = Instant::now();
        victim.kill9();
        // Records keep coming while the group notices and rebalances.
        let (after, moved_in) = thread::scope(|s| {
            let producing =
                s.spawn(|| produce_test_records(&p, &topic, None, 3_000..6_000, TIMEOUT));
            // The coordinator notices the silence after one session timeout;
            // the survivors then rejoin at their next heartbeat (every
            // 500 ms). Two session timeouts is a generous bound that still
            // fails a coordinator that never expires members or uses the
            // rebalance timeout (5 minutes) instead.
            let bound = SESSION_TIMEOUT * 2;
            let after = wait_for_group(
                &observer,
                &group,
                bound,
                "the killed member's partitions moved to the survivors",
                |v| {
                    v.is_stable_split(&topic, 6, 2)
                        && v.members.iter().all(|m| m.partitions(&topic).len() == 3)
                        && agree(v)
                },
            );
            let moved_in = killed.elapsed();
            acked.extend(producing.join().expect("the producer thread panicked"));
            (after, moved_in)
        });
        assert!(
            after.member("member-kcat").is_none(),
            "the killed member is still in the group: {after:#?}"
        );
        eprintln!("partitions moved {moved_in:?} after the SIGKILL");

        wait_for_records(
            6_000,
            "survivors",
            || {
                let mut all = a.snapshot().records;
                all.extend(b.snapshot().records);
                all
            },
            || {
                format!(
                    "member-a: {}\nmember-b: {}\ncommitted: {:?}\nwatermarks: {:?}\ngroup: {:#?}",
                    member_summary(&a.snapshot()),
                    member_summary(&b.snapshot()),
                    committed(&bootstrap, &group, &topic, 6),
                    watermarks(&observer, &topic, 6),
                    describe_group(&observer, &group)
                )
            },
        );
        a.request_stop();
        b.request_stop();
        let (log_a, log_b) = (a.stop(), b.stop());
        eprintln!("member-a: {}", member_summary(&log_a));
        eprintln!("member-b: {}", member_summary(&log_b));
        assert!(
            !log_a.records.is_empty() && !log_b.records.is_empty(),
            "a survivor consumed nothing: a {}, b {}",
            member_summary(&log_a),
            member_summary(&log_b)
        );
        assert_exactly_once(
            &[("member-a", &log_a.records), ("member-b", &log_b.records)],
            &acked,
        );
        assert_committed_everything(&bootstrap, &group, &topic, 6);
        assert_group_empty(&bootstrap, &group);
    }
}

/// `{"event": ...}` lines group.py printed, complete lines only (the last
/// one may still be being written). A complete line that does not parse
/// fails the test.
fn python_events(stdout: &str) -> Vec<BTreeMap<String, JsonValue>> {
    let complete = match stdout.rfind('\n') {
        Some(end) => &stdout[..end],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            parse_json_line(l).unwrap_or_else(|| panic!("group.py printed a foreign line: {l:?}"))
        })
        .collect()
}

fn event_is(e: &BTreeMap<String, JsonValue>, name: &str) -> bool {
    e.get("event") == Some(&JsonValue::Str(name.to_string()))
}

fn int(e: &BTreeMap<String, JsonValue>, key: &str) -> i64 {
    match e.get(key) {
        Some(JsonValue::Int(n)) => *n,
        other => panic!("group.py event {e:?}: {key} is {other:?}, expected an integer"),
    }
}

/// Records in group.py's output.
fn python_records(stdout: &str) -> Vec<Seen> {
    python_events(stdout)
        .iter()
        .filter(|e| event_is(e, "record"))
        .map(|e| Seen {
            partition: i32::try_from(int(e, "partition")).expect("partition fits i32"),
            offset: int(e, "offset"),
            index: match e.get("key") {
                Some(JsonValue::Str(k)) => k.parse().ok(),
                _ => None,
            },
        })
        .collect()
}

/// group.py's latest assignment, if it printed one.
fn python_assignment(stdout: &str) -> Option<Vec<i32>> {
    python_events(stdout)
        .iter()
        .rev()
        .find(|e| event_is(e, "assigned"))
        .map(|e| match e.get("partitions") {
            Some(JsonValue::Ints(p)) => p
                .iter()
                .map(|&x| i32::try_from(x).expect("partition fits i32"))
                .collect(),
            other => panic!("group.py assignment event {e:?}: partitions {other:?}"),
        })
}

each_runtime! {
    /// Why the assertion is exact: records are produced only once the group
    /// is stable with both members, so no rebalance happens while records
    /// are in flight; each member then commits synchronously after each
    /// batch. A rebalance in the middle (which nothing should cause) would
    /// show up as duplicates and fail the test.
    fn python_and_librdkafka_share_a_group(rt) {
        require_kafka_python();
        let broker = TestBroker::start_with(rt, GROUP_SETTINGS);
        let bootstrap = broker.bootstrap();
        let topic = unique_topic("group-py");
        let group = format!("{topic}-g");
        create_topic(&bootstrap, &topic, 6, TIMEOUT);

        let rd = GroupMember::start(
            "rdkafka-member",
            &group_consumer_config(&bootstrap, &group, "rdkafka-member", "range"),
            &topic,
            MEMBER_LIMIT,
        );
        let stop_dir = tempfile::tempdir().expect("temporary directory");
        let stop_file = stop_dir.path().join("stop");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/group.py");
        let stop_arg = stop_file.to_str().expect("utf-8 temporary path");
        let mut py = LoggedChild::spawn(
            "python3 group.py",
            Command::new("python3").arg(&script).args([
                "--bootstrap",
                &bootstrap,
                "--topic",
                &topic,
                "--group",
                &group,
                "--client-id",
                "python-member",
                "--stop-file",
                stop_arg,
                "--timeout",
                "120",
            ]),
        );

        let observer = group_observer(&bootstrap);
        let view = wait_for_group(&observer, &group, SETTLE, "both members, stable", |v| {
            py.assert_running();
            v.is_stable_split(&topic, 6, 2)
                && v.member("rdkafka-member")
                    .is_some_and(|m| m.partitions(&topic) == rd.snapshot().assignment)
                && v.member("python-member")
                    .is_some_and(|m| Some(m.partitions(&topic)) == python_assignment(&py.stdout()))
        });
        assert_eq!(
            (view.protocol_type.as_str(), view.protocol.as_str()),
            ("consumer", "range"),
            "{view:#?}"
        );
        // Range on one topic: contiguous halves.
        let mut halves: Vec<Vec<i32>> = view.members.iter().map(|m| m.partitions(&topic)).collect();
        halves.sort();
        assert_eq!(
            halves,
            vec![vec![0, 1, 2], vec![3, 4, 5]],
            "range assignment of 6 partitions to 2 members: {view:#?}"
        );

        let p = producer(&producer_config(&bootstrap, "gzip"));
        let acked = produce_test_records(&p, &topic, None, 0..4_000, TIMEOUT);
        wait_for_records(
            4_000,
            "rdkafka and python members",
            || {
                let mut all = rd.snapshot().records;
                all.extend(python_records(&py.stdout()));
                all
            },
            || {
                format!(
                    "rdkafka-member: {}\npython-member: {:?}, assignment {:?}\n\
                     committed: {:?}\nwatermarks: {:?}\ngroup: {:#?}\npython stderr:\n{}",
                    member_summary(&rd.snapshot()),
                    by_partition(&python_records(&py.stdout())),
                    python_assignment(&py.stdout()),
                    committed(&bootstrap, &group, &topic, 6),
                    watermarks(&observer, &topic, 6),
                    describe_group(&observer, &group),
                    tail(&py.stderr(), 3000)
                )
            },
        );
        fs::write(&stop_file, b"stop").expect("create the stop file");
        rd.request_stop();
        let status = py.wait(Duration::from_secs(30));
        let rd_log = rd.stop();
        let out = py.stdout();
        assert!(
            status.success(),
            "group.py failed ({status})\nstderr:\n{}",
            tail(&py.stderr(), 4000)
        );
        let events = python_events(&out);
        assert!(
            events.last().is_some_and(|e| event_is(e, "done")),
            "group.py did not close cleanly; last lines:\n{}",
            tail(&out, 2000)
        );
        let failed_commits: Vec<_> = events
            .iter()
            .filter(|e| event_is(e, "commit") && int(e, "ok") != 1)
            .collect();
        assert!(
            failed_commits.is_empty(),
            "kafka-python commits failed: {failed_commits:?}"
        );
        let py_records = python_records(&out);
        eprintln!(
            "rdkafka-member: {}; python-member: {} records",
            member_summary(&rd_log),
            py_records.len()
        );
        for (who, records) in [
            ("rdkafka-member", &rd_log.records),
            ("python-member", &py_records),
        ] {
            let owned = view.member(who).expect("member in view").partitions(&topic);
            assert!(!records.is_empty(), "{who} consumed nothing");
            if let Some(r) = records.iter().find(|r| !owned.contains(&r.partition)) {
                panic!("{who} consumed {r:?} outside its partitions {owned:?}");
            }
        }
        assert_exactly_once(
            &[
                ("rdkafka-member", &rd_log.records),
                ("python-member", &py_records),
            ],
            &acked,
        );
        assert_committed_everything(&bootstrap, &group, &topic, 6);
        assert_group_empty(&bootstrap, &group);
    }
}

/// Records in the resume tests, and how many the first member takes.
const TOTAL: usize = 1_000;
const FIRST: usize = 450;

/// A plain group consumer (default context, no commit on revoke: these
/// tests have one member at a time) that fetches little per partition, so
/// consumption interleaves partitions and commits land mid-partition.
fn small_fetch_member(bootstrap: &str, group: &str, client_id: &str) -> BaseConsumer {
    let mut config = group_consumer_config(bootstrap, group, client_id, "range");
    config.set("max.partition.fetch.bytes", "1024");
    consumer(&config)
}

/// Produces [`TOTAL`] records to a new 3-partition `topic` in small
/// batches.
fn produce_for_resume(bootstrap: &str, topic: &str) -> HashMap<usize, Delivered> {
    create_topic(bootstrap, topic, 3, TIMEOUT);
    let mut config = producer_config(bootstrap, "none");
    config.set("batch.num.messages", "20");
    let p = producer(&config);
    produce_test_records(&p, topic, None, 0..TOTAL, TIMEOUT)
}

/// The offsets a synchronous commit after `records` stores: the last
/// offset + 1 of each partition consumed from, none elsewhere.
fn next_offsets(records: &[Consumed], partitions: i32) -> Vec<Offset> {
    (0..partitions)
        .map(|p| {
            records
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| r.offset + 1)
                .max()
                .map_or(Offset::Invalid, Offset::Offset)
        })
        .collect()
}

fn assignment_committed(c: &BaseConsumer, topic: &str, partitions: i32) -> Vec<Offset> {
    let tpl = c.committed(TIMEOUT).expect("committed() of the member");
    (0..partitions)
        .map(|p| {
            tpl.find_partition(topic, p)
                .unwrap_or_else(|| panic!("committed() lacks {topic}:{p}: {tpl:?}"))
                .offset()
        })
        .collect()
}

/// Before the restart: a member subscribes, consumes [`FIRST`] records,
/// commits synchronously and leaves. Returns what it consumed and the
/// offsets it committed.
fn consume_and_commit(bootstrap: &str, topic: &str, group: &str) -> (Vec<Consumed>, Vec<Offset>) {
    let c = small_fetch_member(bootstrap, group, "before-restart");
    c.subscribe(&[topic]).expect("subscribe");
    let first = consume(&c, FIRST, TIMEOUT);
    c.commit_consumer_state(CommitMode::Sync)
        .expect("synchronous commit");
    let expected = next_offsets(&first, 3);
    assert_eq!(
        assignment_committed(&c, topic, 3),
        expected,
        "committed() right after the commit"
    );
    assert_eq!(
        committed(bootstrap, group, topic, 3),
        expected,
        "OffsetFetch right after the commit"
    );
    let highs = watermarks(&c, topic, 3);
    assert!(
        expected
            .iter()
            .zip(&highs)
            .any(|(c, (_, high))| matches!(c, Offset::Offset(o) if *o > 0 && o < high)),
        "the test means a commit in the middle of a partition: committed {expected:?}, \
         high watermarks {highs:?}"
    );
    // Closing leaves the group; nothing more is committed.
    drop(c);
    (first, expected)
}

/// After the restart: the committed offsets are still there, and a new
/// member resumes exactly at them: its first record of each partition is at
/// the committed offset (the earliest where none), and between them the two
/// members read every record exactly once.
fn resume(
    bootstrap: &str,
    topic: &str,
    group: &str,
    acked: &HashMap<usize, Delivered>,
    first: &[Consumed],
    expected: &[Offset],
) {
    assert_eq!(
        committed(bootstrap, group, topic, 3),
        expected,
        "OffsetFetch after the restart"
    );
    let c = small_fetch_member(bootstrap, group, "after-restart");
    c.subscribe(&[topic]).expect("subscribe");
    let rest = consume(&c, TOTAL - FIRST, TIMEOUT);
    expect_nothing_more(&c, Duration::from_millis(500));
    assert_eq!(
        assignment_committed(&c, topic, 3),
        expected,
        "committed() of the new member"
    );
    for p in 0..3 {
        let start = match expected[p as usize] {
            Offset::Offset(o) => o,
            _ => 0,
        };
        let head = rest.iter().find(|r| r.partition == p).map(|r| r.offset);
        let high = acked
            .values()
            .filter(|d| d.partition == p)
            .map(|d| d.offset + 1)
            .max()
            .unwrap_or(0);
        let want = (start < high).then_some(start);
        assert_eq!(
            head, want,
            "partition {p}: the new member's first record (committed {:?}, high {high})",
            expected[p as usize]
        );
    }
    let seen = |records: &[Consumed]| -> Vec<Seen> {
        records
            .iter()
            .map(|r| Seen {
                partition: r.partition,
                offset: r.offset,
                index: Some(r.index()),
            })
            .collect()
    };
    assert_exactly_once(&[("before", &seen(first)), ("after", &seen(&rest))], acked);
    c.commit_consumer_state(CommitMode::Sync)
        .expect("synchronous commit after the restart");
    drop(c);
    assert_committed_everything(bootstrap, group, topic, 3);
}

each_runtime! {
    /// Committed offsets survive a clean restart of the in-process broker.
    fn committed_offsets_survive_clean_restart(rt) {
        let mut broker = TestBroker::start_with(rt, GROUP_SETTINGS);
        let topic = unique_topic("group-restart");
        let group = format!("{topic}-g");
        let acked = produce_for_resume(&broker.bootstrap(), &topic);
        let (first, expected) = consume_and_commit(&broker.bootstrap(), &topic, &group);
        broker.restart();
        resume(&broker.bootstrap(), &topic, &group, &acked, &first, &expected);
    }
}

each_runtime! {
    /// Committed offsets survive a SIGKILL of the broker: a commit is
    /// acknowledged only once it is in `__consumer_offsets`.
    fn committed_offsets_survive_sigkill(rt) {
        let dir = tempfile::Builder::new()
            .prefix("conveyor-group-kill-")
            .tempdir()
            .expect("temporary directory");
        let data = dir.path().join("data");
        fs::create_dir_all(&data).expect("create the data directory");
        let child = ChildBroker::spawn(rt, &data, GROUP_SETTINGS);
        let topic = unique_topic("group-sigkill");
        let group = format!("{topic}-g");
        let acked = produce_for_resume(&child.bootstrap(), &topic);
        let (first, expected) = consume_and_commit(&child.bootstrap(), &topic, &group);
        child.kill9();
        let child = ChildBroker::spawn(rt, &data, GROUP_SETTINGS);
        resume(&child.bootstrap(), &topic, &group, &acked, &first, &expected);
    }
}

/// Produces `lines` to `topic` with `kcat -P`, one record each.
fn kcat_produce(bootstrap: &str, topic: &str, lines: &[String]) {
    let input = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    let mut kcat = LoggedChild::spawn_with_stdin(
        "kcat -P",
        Command::new("kcat").args(["-b", bootstrap, "-P", "-t", topic]),
        Some(input.as_bytes()),
    );
    let status = kcat.wait(TIMEOUT);
    assert!(
        status.success(),
        "kcat -P failed ({status}):\n{}",
        kcat.stderr()
    );
}

/// `kcat -b ADDR -X auto.offset.reset=earliest -G GROUP -e -q TOPIC`: the
/// lines it printed, sorted.
fn kcat_group_read(bootstrap: &str, group: &str, topic: &str) -> Vec<String> {
    let mut kcat = LoggedChild::spawn(
        "kcat -G -e",
        Command::new("kcat").args([
            "-b",
            bootstrap,
            "-X",
            "auto.offset.reset=earliest",
            "-G",
            group,
            "-e",
            "-q",
            topic,
        ]),
    );
    let status = kcat.wait(TIMEOUT);
    assert!(
        status.success(),
        "kcat -G failed ({status}):\n{}",
        kcat.stderr()
    );
    let mut lines: Vec<String> = kcat.stdout().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

each_runtime! {
    /// `kcat -G` unchanged: its group consumer reads everything, commits on
    /// exit, reads nothing the second time and exactly the new records the
    /// third.
    fn kcat_group_consumer(rt) {
        require_kcat();
        let broker = TestBroker::start_with(rt, GROUP_SETTINGS);
        let bootstrap = broker.bootstrap();
        let topic = unique_topic("group-kcat");
        let group = format!("{topic}-g");
        let lines = |r: std::ops::Range<usize>| -> Vec<String> {
            let mut v: Vec<String> = r.map(|i| format!("line-{i:04}")).collect();
            v.sort();
            v
        };
        kcat_produce(&bootstrap, &topic, &lines(0..100));
        assert_eq!(kcat_group_read(&bootstrap, &group, &topic), lines(0..100), "first read");
        assert_eq!(kcat_group_read(&bootstrap, &group, &topic), lines(0..0), "second read");
        kcat_produce(&bootstrap, &topic, &lines(100..110));
        assert_eq!(kcat_group_read(&bootstrap, &group, &topic), lines(100..110), "third read");
    }
}
