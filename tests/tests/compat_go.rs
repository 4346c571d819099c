//! The Go clients against the in-process broker on the mio runtime, each
//! family its own test:
//!
//! - `franz_go`: franz-go's `kgo` producer (idempotent, every codec, keys,
//!   headers and timestamps read back) and group consumer (three members,
//!   each record consumed once, commits read back) and `kadm` admin
//!   (topics, configs described and altered back, partitions, records
//!   deleted, offsets listed, log dirs, groups listed, described, their
//!   lag, an offset deleted, the group deleted), max.message.bytes and
//!   LogAppendTime: `tests/compat/go/franz.go`;
//! - `franz_go_suite`: franz-go's own integration tests (package `kgo`),
//!   those `tests/compat/go/kgo-suite.txt` allows, each of which must pass;
//!   the file gives the reason for every one left out;
//! - `sarama`: Sarama's sync producer (idempotent, acks=all, four codecs),
//!   partition consumer, consumer group (ConsumeClaim, MarkMessage, commits
//!   read back) and cluster admin (topics, configs, partitions, records,
//!   group offsets), with `config.Version` at 2.1.0, 3.6.0 and 4.0.0:
//!   `tests/compat/go/sarama.go`. Below 1.1 Sarama asks DescribeConfigs
//!   v0, which Kafka 4 dropped and Conveyor does not answer either.
//!
//! The module in `tests/compat/go` pins the clients' versions (go.mod,
//! go.sum); the harness and franz-go's test binary are built once per run
//! into cargo's `CARGO_TARGET_TMPDIR` (`compat-go/`), from Go's module and
//! build caches, which are all that carries over between runs. franz-go's
//! suite is built from the module cache, not from a copy in this
//! repository.
//!
//! Needs Go (1.26, or 1.21 or later, which fetches the 1.26 toolchain
//! go.mod asks for through the Go module proxy by itself). A missing `go`
//! FAILS these tests with how to install it; nothing is skipped.
//! `scripts/test` installs it when missing.
//!
//! Run: `cargo test -p conveyor-tests --test compat_go` (set
//! `KGO_LOG_LEVEL=info` to see franz-go's own log in a failing suite).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use conveyor_tests::external::run_until_ok;
use conveyor_tests::groups::GROUP_SETTINGS;
use conveyor_tests::{Runtime, TestBroker};

/// How long building one Go program may take, module downloads included.
const BUILD_TIMEOUT: Duration = Duration::from_secs(240);

/// How long one harness run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// How long franz-go's suite may run (its own `-test.timeout` is a little
/// shorter, so a hung test names itself).
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);
const SUITE_GO_TIMEOUT: &str = "270s";

/// Records each of franz-go's group and transaction tests produce and
/// consume (`KGO_TEST_RECORDS`; the suite's own default is 500,000).
const SUITE_RECORDS: &str = "50000";

/// The Kafka versions Sarama is told the broker is (`config.Version`): the
/// oldest with every codec (zstd needs 2.1), the one Conveyor's APIs match
/// most closely, and the newest Sarama knows.
const SARAMA_VERSIONS: &[&str] = &["2.1.0", "3.6.0", "4.0.0"];

const GO_INSTALL: &str = "install Go 1.26 by running scripts/test, which installs Debian's \
    golang-go and, as that is too old for franz-go 1.22 (1.19 on Debian 12), fetches the Go 1.26 \
    toolchain module (golang.org/toolchain) through the Go module proxy into /usr/local/go; any \
    Go from 1.21 on also works, fetching the toolchain tests/compat/go/go.mod asks for by itself";

/// franz-go's client package, whose tests `franz_go_suite` runs.
const KGO: &str = "github.com/twmb/franz-go/pkg/kgo";

/// The Go module with the harness and the pinned client versions.
fn module_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("compat")
        .join("go")
}

/// Panics with [`GO_INSTALL`] unless a usable `go` is on PATH.
fn require_go() {
    let out = Command::new("go")
        .args(["env", "GOVERSION"])
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap_or_else(|e| panic!("`go` is not available ({e}): {GO_INSTALL}"));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let minor = version
        .strip_prefix("go1.")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|m| m.parse::<u32>().ok());
    assert!(
        out.status.success() && minor.is_some_and(|m| m >= 21),
        "`go env GOVERSION` answered {version:?}: {GO_INSTALL}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `go` with `args` in the module directory, through `sh` so that it prints
/// OK when it succeeds (for [`run_until_ok`]). go.mod and go.sum are used
/// as they are, never rewritten.
fn go(args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .current_dir(module_dir())
        .args(["-c", r#"go "$@" && echo OK"#, "sh"])
        .args(args);
    command
}

/// Builds `package` with `go_args` (`build` for a program, `test -c` for a
/// package's tests) as `CARGO_TARGET_TMPDIR/compat-go/<name>` and returns
/// its path. The binary is built in a fresh directory and renamed into
/// place, so a test process still running an older one is not disturbed.
fn build(name: &str, go_args: &[&str], package: &str) -> PathBuf {
    require_go();
    let dest_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-go");
    std::fs::create_dir_all(&dest_dir).expect("create CARGO_TARGET_TMPDIR/compat-go");
    let tmp = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&dest_dir)
        .expect("a temporary directory under CARGO_TARGET_TMPDIR");
    let built = tmp.path().join(name);
    let built_str = built.to_str().expect("a UTF-8 path");
    let mut args = go_args.to_vec();
    args.extend_from_slice(&["-mod=readonly", "-buildvcs=false", "-o", built_str, package]);
    run_until_ok(go(&args), &format!("go {}", args.join(" ")), BUILD_TIMEOUT);
    let dest = dest_dir.join(name);
    std::fs::rename(&built, &dest).expect("move the built binary into place");
    dest
}

/// The harness (`compat-go`), built once for every test of this process
/// that runs it.
fn harness() -> &'static Path {
    static HARNESS: OnceLock<PathBuf> = OnceLock::new();
    HARNESS.get_or_init(|| build("compat-go", &["build"], "."))
}

fn group_broker() -> TestBroker {
    TestBroker::start_with(Runtime::Mio, GROUP_SETTINGS)
}

#[test]
fn franz_go() {
    let broker = group_broker();
    let mut command = Command::new(harness());
    command.args(["franz", "--bootstrap", &broker.bootstrap()]);
    let out = run_until_ok(command, "compat-go franz", RUN_TIMEOUT);
    print!("{out}");
}

#[test]
fn sarama() {
    let broker = group_broker();
    for version in SARAMA_VERSIONS {
        let mut command = Command::new(harness());
        command.args([
            "sarama",
            "--bootstrap",
            &broker.bootstrap(),
            "--kafka-version",
            version,
        ]);
        let out = run_until_ok(
            command,
            &format!("compat-go sarama (config.Version {version})"),
            RUN_TIMEOUT,
        );
        print!("{out}");
    }
}

/// The allow-list: the tests that must pass, and those left out with why.
struct AllowList {
    pass: Vec<String>,
    skip: Vec<(String, String)>,
}

fn allow_list() -> AllowList {
    let path = module_dir().join("kgo-suite.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut list = AllowList {
        pass: Vec::new(),
        skip: Vec::new(),
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            panic!(
                "{}:{}: not `pass NAME` or `skip NAME: REASON`: {line}",
                path.display(),
                n + 1
            )
        };
        match line.split_once(' ') {
            Some(("pass", name)) if !name.contains(' ') => list.pass.push(name.to_string()),
            Some(("skip", rest)) => match rest.split_once(": ") {
                Some((name, reason)) if !name.contains(' ') && !reason.is_empty() => {
                    list.skip.push((name.to_string(), reason.to_string()))
                }
                _ => bad(),
            },
            _ => bad(),
        }
    }
    for name in &list.pass {
        assert!(
            !list.skip.iter().any(|(s, _)| s == name),
            "{name} is both allowed and left out in {}",
            path.display()
        );
    }
    list
}

#[test]
fn franz_go_suite() {
    let list = allow_list();
    let suite = build("kgo.test", &["test", "-c"], KGO);

    // Every name on the list is a test the package has, so a renamed test
    // cannot leave the list quietly.
    let listed = Command::new(&suite)
        .args(["-test.list", "."])
        .output()
        .expect("list franz-go's tests");
    let names = String::from_utf8_lossy(&listed.stdout);
    for name in list.pass.iter().chain(list.skip.iter().map(|(n, _)| n)) {
        assert!(
            names.lines().any(|l| l == name),
            "kgo-suite.txt names {name}, which franz-go's kgo package does not have"
        );
    }

    let broker = group_broker();
    let run = format!("^({})$", list.pass.join("|"));
    let mut command = Command::new("sh");
    command
        .args(["-c", r#""$@" && echo OK"#, "sh"])
        .arg(&suite)
        .args(["-test.run", &run, "-test.v", "-test.count=1"])
        .args(["-test.timeout", SUITE_GO_TIMEOUT])
        .env("KGO_SEEDS", broker.bootstrap())
        .env("KGO_TEST_RF", "1")
        .env("KGO_TEST_RECORDS", SUITE_RECORDS);
    if std::env::var_os("KGO_LOG_LEVEL").is_none() {
        command.env("KGO_LOG_LEVEL", "none");
    }
    let out = run_until_ok(command, "franz-go's kgo tests", SUITE_TIMEOUT);

    // Exit 0 means nothing failed; each allowed test must also have run to
    // a pass, not skipped itself.
    let mut missing = Vec::new();
    for name in &list.pass {
        if !out
            .lines()
            .any(|l| l.starts_with(&format!("--- PASS: {name} (")))
        {
            missing.push(name.as_str());
        }
    }
    assert!(
        missing.is_empty(),
        "franz-go tests allowed but not passed (skipped or not run): {missing:?}\n{out}"
    );
    for line in out.lines().filter(|l| l.starts_with("--- PASS: ")) {
        println!("{line}");
    }
    println!(
        "franz-go kgo suite: {} passed, 0 failed; {} left out:",
        list.pass.len(),
        list.skip.len()
    );
    for (name, reason) in &list.skip {
        println!("  {name}: {reason}");
    }
}
