//! The Kafka-protocol subcommands of the `conveyor` binary (`topic`,
//! `produce`, `consume`, `group`, `cluster`) run as a child process against
//! an in-process broker:
//!
//! - a topic is described as it was created, its configs altered and it is
//!   deleted;
//! - records from `conveyor produce` come back from `conveyor consume` with
//!   their keys, headers and offsets, from the beginning, an offset, a
//!   timestamp or the end;
//! - `group describe` shows the lag left by a partial group consume, and
//!   `reset-offsets` moves it;
//! - every `--format json` parses; a bad argument exits 2; an unreachable
//!   broker exits 1 within the timeout, naming its address.
//!
//! Run: `cargo test -p conveyor-tests --test cli` (after
//! `cargo build -p conveyor-server`: it runs the binary).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use conveyor_tests::{Runtime, TestBroker, conveyor_bin, unique_topic};
use serde_json::Value;

/// The longest any one command may run before the test fails.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{self:?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// Run `conveyor ARGS` with `stdin`, killing it after [`COMMAND_LIMIT`].
fn conveyor(args: &[&str], stdin: &str) -> Run {
    let start = Instant::now();
    let mut child = Command::new(conveyor_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run conveyor");
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_owned();
    let writer = thread::spawn(move || {
        // A command that exits without reading stdin closes the pipe.
        let _ = input.write_all(stdin.as_bytes());
    });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).map(|_| s)
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for conveyor") {
            break status;
        }
        if start.elapsed() > COMMAND_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("conveyor {args:?} ran for more than {COMMAND_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    writer.join().expect("stdin writer");
    Run {
        code: status.code(),
        stdout: out_reader.join().expect("stdout").expect("read stdout"),
        stderr: err_reader.join().expect("stderr").expect("read stderr"),
        took: start.elapsed(),
    }
}

/// `conveyor ARGS --bootstrap-server B` with no stdin.
fn at(broker: &TestBroker, args: &[&str]) -> Run {
    at_with(broker, args, "")
}

fn at_with(broker: &TestBroker, args: &[&str], stdin: &str) -> Run {
    let bootstrap = broker.bootstrap();
    let mut all = args.to_vec();
    all.extend(["--bootstrap-server", &bootstrap]);
    conveyor(&all, stdin)
}

fn broker() -> TestBroker {
    TestBroker::start(Runtime::Mio)
}

#[test]
fn topic_is_described_as_created_altered_and_deleted() {
    let b = broker();
    let t = unique_topic("cli-topic");
    let created = at(
        &b,
        &[
            "topic",
            "create",
            &t,
            "--partitions",
            "3",
            "--config",
            "retention.ms=86400000",
            "--config",
            "cleanup.policy=delete",
        ],
    )
    .ok();
    assert!(created.stdout.contains("3 partitions"), "{created:?}");

    let list = at(&b, &["topic", "list", "--format", "json"]).ok().json();
    let listed = list
        .as_array()
        .expect("a list")
        .iter()
        .find(|e| e["topic"] == t.as_str())
        .unwrap_or_else(|| panic!("{t} in {list}"));
    assert_eq!(listed["partitions"], 3);

    let table = at(&b, &["topic", "describe", &t]).ok().stdout;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip_while(|l| !l.starts_with("PARTITION"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["0", "0", "0", "0"],
            vec!["1", "0", "0", "0"],
            vec!["2", "0", "0", "0"]
        ],
        "{table}"
    );
    assert!(
        table.lines().any(|l| l
            .split_whitespace()
            .eq(["retention.ms", "86400000", "topic"])),
        "{table}"
    );

    at(
        &b,
        &[
            "topic",
            "alter-config",
            &t,
            "--set",
            "segment.bytes=1048576",
            "--delete",
            "retention.ms",
        ],
    )
    .ok();
    let described = at(&b, &["topic", "describe", &t, "--format", "json"])
        .ok()
        .json();
    assert_eq!(described["partitions"].as_array().map(Vec::len), Some(3));
    assert_eq!(described["replication_factor"], 1);
    let configs: Vec<(String, String)> = described["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("name"), s("value"))
        })
        .collect();
    assert_eq!(
        configs,
        vec![
            ("cleanup.policy".to_owned(), "delete".to_owned()),
            ("segment.bytes".to_owned(), "1048576".to_owned()),
        ]
    );

    let again = at(&b, &["topic", "create", &t]);
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(again.stderr.contains("TopicAlreadyExists"), "{again:?}");

    at(&b, &["topic", "delete", &t]).ok();
    let gone = at(&b, &["topic", "describe", &t]);
    assert_eq!(gone.code, Some(1), "{gone:?}");
    assert!(
        gone.stderr.starts_with("error: ") && gone.stderr.contains(&t),
        "{gone:?}"
    );
}

#[test]
fn produced_records_come_back_with_keys_headers_and_offsets() {
    let b = broker();
    let t = unique_topic("cli-records");
    at(&b, &["topic", "create", &t]).ok();
    let produced = at_with(
        &b,
        &[
            "produce",
            &t,
            "--key-separator",
            ":",
            "--header",
            "source=cli",
            "--header",
            "run=1",
            "--compression",
            "zstd",
        ],
        "k0:zero\nk1:one\nk2:two:with:colons\n",
    )
    .ok();
    assert_eq!(produced.stdout, format!("acknowledged 3 records to {t}\n"));
    // Later timestamps for the second call, so a timestamp can find it.
    thread::sleep(Duration::from_millis(20));
    let second = at_with(&b, &["produce", &t, "--format", "json"], "no key\nlast\n")
        .ok()
        .json();
    assert_eq!(second["acknowledged"], 2);

    let all = at(
        &b,
        &["consume", &t, "-n", "5", "--format", r"%p %o %k|%v|%h"],
    )
    .ok();
    assert_eq!(
        all.stdout,
        "0 0 k0|zero|source=cli,run=1\n\
         0 1 k1|one|source=cli,run=1\n\
         0 2 k2|two:with:colons|source=cli,run=1\n\
         0 3 |no key|\n\
         0 4 |last|\n",
        "{all:?}"
    );

    let json: Vec<Value> = at(&b, &["consume", &t, "-n", "5", "--format", "json"])
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(json.len(), 5);
    assert_eq!(json[1]["key"], "k1");
    assert_eq!(json[1]["value"], "one");
    assert_eq!(json[1]["offset"], 1);
    assert_eq!(
        json[1]["headers"],
        serde_json::json!([["source", "cli"], ["run", "1"]])
    );
    assert_eq!(json[3]["key"], Value::Null);

    let from_offset = at(
        &b,
        &["consume", &t, "--from", "3", "-n", "2", "--format", "%o %v"],
    )
    .ok();
    assert_eq!(from_offset.stdout, "3 no key\n4 last\n");

    let ts = json[3]["timestamp"].as_i64().expect("a timestamp");
    assert!(ts > json[2]["timestamp"].as_i64().expect("a timestamp"));
    let by_time = at(
        &b,
        &[
            "consume",
            &t,
            "--from",
            &format!("@{ts}"),
            "-n",
            "2",
            "--format",
            "%o",
        ],
    )
    .ok();
    assert_eq!(by_time.stdout, "3\n4\n");

    // Nothing after the end: it waits out the idle timeout and exits 0.
    let end = at(&b, &["consume", &t, "--from", "end", "--timeout", "1s"]).ok();
    assert_eq!(end.stdout, "");
    assert!(end.took >= Duration::from_secs(1), "{end:?}");
}

/// Committed offset, log end and lag per partition, from the JSON.
fn lag(b: &TestBroker, group: &str) -> Vec<(i64, i64, i64)> {
    let d = at(b, &["group", "describe", group, "--format", "json"])
        .ok()
        .json();
    d["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| {
            let n = |k: &str| o[k].as_i64().expect(k);
            (n("committed"), n("log_end"), n("lag"))
        })
        .collect()
}

#[test]
fn group_describe_shows_the_lag_of_a_partial_consume() {
    let b = broker();
    let t = unique_topic("cli-group");
    let g = unique_topic("cli-readers");
    at(&b, &["topic", "create", &t]).ok();
    let lines: String = (0..10).map(|i| format!("record {i}\n")).collect();
    at_with(&b, &["produce", &t], &lines).ok();

    let read = at(&b, &["consume", &t, "--group", &g, "-n", "4"]).ok();
    assert_eq!(read.stdout, "record 0\nrecord 1\nrecord 2\nrecord 3\n");
    assert_eq!(lag(&b, &g), vec![(4, 10, 6)]);

    let table = at(&b, &["group", "describe", &g]).ok().stdout;
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq([t.as_str(), "0", "4", "10", "6"])),
        "{table}"
    );
    let listed = at(&b, &["group", "list", "--format", "json"]).ok().json();
    assert!(
        listed
            .as_array()
            .expect("groups")
            .iter()
            .any(|e| e["group"] == g.as_str() && e["members"] == 0),
        "{listed}"
    );

    // The next member of the group carries on from the commit.
    let more = at(&b, &["consume", &t, "--group", &g, "-n", "2"]).ok();
    assert_eq!(more.stdout, "record 4\nrecord 5\n");
    assert_eq!(lag(&b, &g), vec![(6, 10, 4)]);

    at(&b, &["group", "reset-offsets", &g, "--to-earliest"]).ok();
    assert_eq!(lag(&b, &g), vec![(0, 10, 10)]);
    at(
        &b,
        &[
            "group",
            "reset-offsets",
            &g,
            "--to-offset",
            "7",
            "--topic",
            &t,
        ],
    )
    .ok();
    assert_eq!(lag(&b, &g), vec![(7, 10, 3)]);
    let rest = at(&b, &["consume", &t, "--group", &g, "-n", "3"]).ok();
    assert_eq!(rest.stdout, "record 7\nrecord 8\nrecord 9\n");
    at(&b, &["group", "reset-offsets", &g, "--to-latest"]).ok();
    assert_eq!(lag(&b, &g), vec![(10, 10, 0)]);

    at(&b, &["group", "delete", &g]).ok();
    let gone = at(&b, &["group", "describe", &g]);
    assert_eq!(gone.code, Some(1), "{gone:?}");
    assert!(gone.stderr.contains("does not exist"), "{gone:?}");
}

#[test]
fn cluster_info_names_the_broker() {
    let b = broker();
    let t = unique_topic("cli-cluster");
    at(&b, &["topic", "create", &t]).ok();
    let info = at(&b, &["cluster", "info", "--format", "json"]).ok().json();
    let brokers = info["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1, "{info}");
    assert_eq!(brokers[0]["port"], i64::from(b.addr().port()));
    assert_eq!(info["controller"], brokers[0]["id"]);
    assert!(info["topics"].as_i64() >= Some(1), "{info}");
    assert!(info["cluster_id"].is_string(), "{info}");
    let table = at(&b, &["cluster", "info"]).ok().stdout;
    assert!(
        table.contains(&format!("127.0.0.1  {}", b.addr().port())),
        "{table}"
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    let cases: &[&[&str]] = &[
        &["topic", "create"],
        &["topic", "create", "t", "--partitions", "0"],
        &["topic", "alter-config", "t"],
        &["produce", "t", "--acks", "2"],
        &["consume", "t", "--from", "yesterday"],
        &["consume", "t", "--timeout", "soon"],
        &["group", "reset-offsets", "g"],
        &[
            "group",
            "reset-offsets",
            "g",
            "--to-earliest",
            "--to-latest",
        ],
        &["cluster", "info", "--format", "xml"],
        // Parsed by clap, refused by the command, before any connection.
        &["consume", "t", "--group", "g", "--from", "5"],
    ];
    for args in cases {
        let r = conveyor(args, "");
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
        assert!(r.stderr.starts_with("error: "), "{args:?}: {r:?}");
    }
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["topic", "--help"][..],
        &["topic", "create", "--help"],
        &["topic", "alter-config", "--help"],
        &["produce", "--help"],
        &["consume", "--help"],
        &["group", "reset-offsets", "--help"],
        &["cluster", "info", "--help"],
    ] {
        let r = conveyor(args, "").ok();
        assert!(
            r.stdout.contains("--bootstrap-server") || r.stdout.contains("Commands:"),
            "{r:?}"
        );
    }
}

#[test]
fn an_unreachable_broker_fails_within_the_timeout_naming_it() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("local addr")
    };
    let addr = addr.to_string();
    for args in [
        &["topic", "list"][..],
        &["topic", "create", "t"],
        &["produce", "t"],
        &["consume", "t"],
        &["group", "list"],
        &["group", "describe", "g"],
        &["cluster", "info"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--bootstrap-server", &addr, "--timeout", "2s"]);
        let r = conveyor(&all, "a record\n");
        assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
        assert!(r.took < Duration::from_secs(15), "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {r:?}");
        assert!(
            r.stderr.starts_with("error: ") && r.stderr.contains(&addr),
            "{args:?}: {r:?}"
        );
    }
}

/// `script(1)` gives the command a terminal: the progress line of a long
/// produce and of `consume -n` is drawn there, while the same commands
/// piped write nothing to stderr. (`script` is in util-linux, on every
/// Debian.)
#[test]
fn progress_shows_on_a_terminal_and_not_when_piped() {
    let b = broker();
    let topic = unique_topic("cli-progress");
    let lines: String = (0..20_000).map(|i| format!("line-{i}\n")).collect();

    let piped = at_with(&b, &["produce", &topic], &lines).ok();
    assert!(piped.stderr.is_empty(), "quiet when piped: {piped:?}");
    let piped = at(&b, &["consume", &topic, "-n", "100", "--timeout", "10s"]).ok();
    assert_eq!(piped.stdout.lines().count(), 100);
    assert!(piped.stderr.is_empty(), "quiet when piped: {piped:?}");

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("lines");
    std::fs::write(&input, &lines).unwrap();
    let bin = conveyor_bin();
    let bootstrap = b.bootstrap();
    let on_terminal = |shell: String| {
        let o = Command::new("script")
            .args(["-qec", &shell, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("script(1) from util-linux runs the command on a terminal");
        assert!(o.status.success(), "{shell}: {o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let produce = on_terminal(format!(
        "{} produce {topic} --bootstrap-server {bootstrap} < {}",
        bin.display(),
        input.display()
    ));
    assert!(
        produce.contains("records sent"),
        "a progress line: {produce:?}"
    );
    assert!(
        produce.contains("acknowledged 20000 records"),
        "{produce:?}"
    );
    let consume = on_terminal(format!(
        "{} consume {topic} -n 40000 --timeout 10s --bootstrap-server {bootstrap} > /dev/null",
        bin.display()
    ));
    assert!(
        consume.contains("/40000 records consumed"),
        "a bar towards the count: {consume:?}"
    );
}
