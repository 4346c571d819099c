//! librdkafka's own test suite against Conveyor: the `tests/` folder of
//! the librdkafka source the `rdkafka-sys` crate ships (librdkafka 2.12.1),
//! its `test-runner` built once and run against in-process brokers on the
//! threads runtime, several tests at a time.
//!
//! `tests/compat/librdkafka/allow-list` names every test the runner has,
//! each in the quick set, the full set, or skipped with its reason (SSL,
//! SASL, transactions, ACLs, several brokers, runs without a broker, or a
//! named Conveyor bug); this test fails if librdkafka has a test the list
//! does not name. Every test in the set run must PASS — a test that skips
//! itself fails here too. The runner's tests check what they read back:
//! records consumed against what was produced (keys, values, headers,
//! timestamps, order, no duplicates), committed offsets, offsets by time,
//! described configs, compacted logs, group assignments.
//!
//! By default the quick set runs: 49 tests, about 70 s once the runner is
//! built. `CONVEYOR_RDKAFKA_SUITE=full` runs the quick and full sets
//! together: 84 tests, about 18 minutes on two cores (0113's cooperative
//! rebalances alone take ten). Tests of group `noautocreate` run against a
//! broker with `auto.create.topics.enable=false`, those of group `serial`
//! (network emulation) one at a time against a broker of their own.
//!
//! `TEST_KAFKA_VERSION` is 4.0.0: Conveyor's ApiVersions floors are the
//! ones Kafka 4.0 kept (KIP-896: Fetch v4, ListOffsets v1, OffsetCommit
//! v2, ... and up) and its topic settings are Kafka 4's (no
//! `message.format.version`). The few tests that shell out to Kafka's
//! `kafka-topics.sh` get a stand-in (`tests/compat/librdkafka/
//! kafka-topics.c`) that sends the same CreateTopics, CreatePartitions and
//! DeleteTopics requests through librdkafka's Admin API.
//!
//! The build (`tests/compat/librdkafka/suite.sh build`) copies the source to
//! `CARGO_TARGET_TMPDIR/librdkafka-suite` and is cached there until the
//! source or the build steps change (about four minutes on two cores); it
//! needs a C/C++ toolchain, make, and the zstd, zlib and RapidJSON headers
//! (`apt-get install build-essential libzstd-dev zlib1g-dev
//! rapidjson-dev`; scripts/test installs them). A missing one FAILS this
//! test with that instruction; nothing is skipped. Each run's whole output
//! stays in `CARGO_TARGET_TMPDIR/librdkafka-suite/run-*/suite.log`.
//!
//! Run: `cargo test -p conveyor-tests --test compat_librdkafka_suite --
//! --nocapture` (with `CONVEYOR_RDKAFKA_SUITE=full` for the full set).

use std::collections::BTreeSet;
use std::fs;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use conveyor_tests::external::run_until_ok;
use conveyor_tests::{Runtime, TestBroker};

/// How long building librdkafka and its runner may take (about two
/// minutes on two cores).
const BUILD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How long one run of the runner may take; each test also has the
/// runner's own time limit.
const RUN_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// How many tests the runner runs at once. Topics are random per test
/// (`test.topic.random`), so tests never share one; more than this on two
/// cores and the tests that time what the client does start to fail.
const PARALLEL: usize = 4;

/// Which tests of the allow-list a run includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Quick,
    Full,
}

/// One allow-list line that runs.
#[derive(Debug)]
struct Listed {
    name: String,
    set: Set,
    /// Which run it is in: `default`; `noautocreate`, the runner's scenario
    /// for a broker that does not create topics on first use; or `serial`,
    /// one test at a time. The tests that emulate the network (sockem)
    /// are serial: sockem is one table for the whole process, and 0086
    /// delays a socket by its number, which a test running alongside may
    /// have reused.
    group: String,
}

fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compat/librdkafka")
}

/// The allow-list: `<name> quick|full [<group>]` or `<name> skip
/// <reason>`, `#` comments. Panics on a malformed line or a skip without a
/// reason.
fn allow_list() -> (Vec<Listed>, BTreeSet<String>) {
    let path = compat_dir().join("allow-list");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
    let mut listed = Vec::new();
    let mut names = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let name = words.next().expect("a non-empty line has a word");
        let verdict = words.next().unwrap_or("");
        assert!(
            names.insert(name.to_string()),
            "allow-list line {}: {name} is listed twice",
            n + 1
        );
        let set = match verdict {
            "quick" => Set::Quick,
            "full" => Set::Full,
            "skip" => {
                assert!(
                    words.next().is_some(),
                    "allow-list line {}: {name} is skipped without a reason",
                    n + 1
                );
                continue;
            }
            other => panic!(
                "allow-list line {}: {name}: `{other}` is not quick, full or skip",
                n + 1
            ),
        };
        let group = words.next().unwrap_or("default").to_string();
        assert!(
            ["default", "noautocreate", "serial"].contains(&group.as_str()),
            "allow-list line {}: {name}: `{group}` is not default, noautocreate or serial",
            n + 1
        );
        listed.push(Listed {
            name: name.to_string(),
            set,
            group,
        });
    }
    (listed, names)
}

/// Where `rdkafka-sys` is, from `cargo metadata` (its manifest's
/// directory), and so the librdkafka source it ships.
fn librdkafka_source() -> PathBuf {
    // Only this machine's platform: the others' dependencies (Windows
    // crates) were never downloaded, and need not be.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = Command::new(&rustc)
        .arg("-vV")
        .output()
        .unwrap_or_else(|e| panic!("run {rustc} -vV: {e}"));
    let version = String::from_utf8_lossy(&version.stdout);
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or_else(|| panic!("{rustc} -vV names no host:\n{version}"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("run {cargo} metadata: {e}"));
    assert!(
        out.status.success(),
        "cargo metadata failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8_lossy(&out.stdout);
    // Each package's `"manifest_path":"<dir>/Cargo.toml"`; the one whose
    // directory is an rdkafka-sys release is the source.
    let key = "\"manifest_path\":\"";
    let found = json
        .match_indices(key)
        .filter_map(|(at, _)| {
            let rest = &json[at + key.len()..];
            let manifest = Path::new(&rest[..rest.find('"')?]);
            let dir = manifest.parent()?;
            let dir_name = dir.file_name()?.to_str()?;
            dir_name
                .starts_with("rdkafka-sys-")
                .then(|| dir.join("librdkafka"))
        })
        .next()
        .expect("cargo metadata names no rdkafka-sys package");
    assert!(
        found.join("tests/test.c").is_file(),
        "{found:?} has no tests/test.c: this rdkafka-sys does not ship librdkafka's tests"
    );
    found
}

/// Every test the runner has: the names in `tests/test.c`'s table
/// (`_TEST(0001_multiobj, ...)`).
fn runner_tests(source: &Path) -> BTreeSet<String> {
    let path = source.join("tests/test.c");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
    let tests: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("_TEST("))
        .filter_map(|rest| rest.split([',', ')']).next())
        .map(|name| name.trim().to_string())
        .filter(|name| name.as_bytes().first().is_some_and(u8::is_ascii_digit))
        .collect();
    assert!(
        tests.len() > 100,
        "found only {} tests in {path:?}",
        tests.len()
    );
    tests
}

fn suite_sh() -> Command {
    let mut command = Command::new("bash");
    command.arg(compat_dir().join("suite.sh"));
    command
}

#[test]
fn librdkafka_suite() {
    let full = std::env::var("CONVEYOR_RDKAFKA_SUITE").is_ok_and(|v| v == "full");
    let source = librdkafka_source();
    let (listed, named) = allow_list();

    let tests = runner_tests(&source);
    let unlisted: Vec<_> = tests.difference(&named).collect();
    let unknown: Vec<_> = named.difference(&tests).collect();
    assert!(
        unlisted.is_empty() && unknown.is_empty(),
        "tests/compat/librdkafka/allow-list must name exactly the runner's tests;\n\
         not listed: {unlisted:?}\nnot in librdkafka's tests/test.c: {unknown:?}"
    );

    // The runner selects tests by number, so a set and group hold every
    // variant of a number they hold (but for another scenario's).
    for a in &listed {
        for b in &listed {
            let scenario = |t: &Listed| t.group == "noautocreate";
            assert!(
                a.name[..4] != b.name[..4]
                    || scenario(a) != scenario(b)
                    || (a.set == b.set && a.group == b.group),
                "allow-list: {} and {} share a number but not a set and group",
                a.name,
                b.name
            );
        }
    }

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("librdkafka-suite");
    let mut build = suite_sh();
    build.arg("build").arg(&source).arg(out.join("build"));
    print!(
        "{}",
        run_until_ok(build, "librdkafka test-runner build", BUILD_TIMEOUT)
    );

    let run_set: Vec<&Listed> = listed
        .iter()
        .filter(|t| full || t.set == Set::Quick)
        .collect();
    let groups: BTreeSet<&str> = run_set.iter().map(|t| t.group.as_str()).collect();
    let mut failed = Vec::new();
    for group in groups {
        let names: Vec<&str> = run_set
            .iter()
            .filter(|t| t.group == group)
            .map(|t| t.name.as_str())
            .collect();
        let (scenario, parallel) = match group {
            "serial" => ("default", 1),
            "noautocreate" => ("noautocreate", PARALLEL),
            _ => ("default", PARALLEL),
        };
        // Kafka's defaults otherwise: the group tests count rebalances and
        // expect members that join together to be assigned in one, as
        // `group.initial.rebalance.delay.ms` (3 s) does. But the cleaner
        // looks for dirty logs every second, not every 15: 0077_compaction
        // waits at most 20 s for a pass, which a 15 s tick can miss.
        let mut settings = vec![("num.partitions", "4"), ("log.cleaner.backoff.ms", "1000")];
        if scenario == "noautocreate" {
            settings.push(("auto.create.topics.enable", "false"));
        }
        let broker = TestBroker::start_with(Runtime::Threads, &settings);
        let work = out.join(format!(
            "run-{}-{group}",
            if full { "full" } else { "quick" }
        ));
        let _ = fs::remove_dir_all(&work);
        let mut run = suite_sh();
        run.arg("run")
            .arg(out.join("build"))
            .arg(&work)
            .arg(broker.bootstrap())
            .arg(scenario)
            .arg(parallel.to_string())
            .args(&names);
        let what = format!("librdkafka's tests ({} in run {group})", names.len());
        // Every group runs even when one fails, so a run reports them all
        // (the broker and the command are not used after a panic).
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| run_until_ok(run, &what, RUN_TIMEOUT)));
        match outcome {
            Ok(output) => {
                print!("{output}");
                let passed = output.lines().filter(|l| l.starts_with("PASSED ")).count();
                if passed == names.len() {
                    println!("{what}: {passed} passed");
                } else {
                    failed.push(format!("{what}: {passed} of {} passed", names.len()));
                }
            }
            Err(_) => failed.push(format!("{what}: failed (its output is above)")),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
