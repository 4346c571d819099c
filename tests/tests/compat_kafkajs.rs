//! KafkaJS 2.2.4, unchanged, against the in-process broker on the smol
//! runtime: tests/compat/js/kafkajs.js.
//!
//! The script checks the values every call answers, not only that it
//! returned: the admin API (createTopics, listTopics, fetchTopicMetadata,
//! describeCluster, describeConfigs with sources and synonyms, alterConfigs
//! of a topic and of a dynamic broker setting, createPartitions,
//! fetchTopicOffsets, fetchTopicOffsetsByTimestamp, deleteTopicRecords,
//! listGroups, describeGroups, fetchOffsets, setOffsets, resetOffsets,
//! deleteGroups, deleteTopics) and its refusals (bad names and values, 3
//! replicas, a shrink, unknown topics and groups); producers with acks -1, 1
//! and 0, gzip, keys, headers, timestamps and each base offset, an idempotent
//! one (producer id, epoch and sequences read back), a `LogAppendTime` topic
//! and a batch over `max.message.bytes`, one request for two topics; every
//! record consumed back, also through fetch limits smaller than a batch; and
//! a group on four partitions: two members consuming every record exactly
//! once and committing, one leaving and the other taking its partitions from
//! the committed offsets, seeks (one below the low watermark), a member
//! dropped when its session expires and joining again, the assignor every
//! member offers chosen and a member offering none of them refused. KafkaJS
//! speaks only pre-flexible versions of each API (the script prints the ones
//! it used), so this is also the broker's answer to those.
//!
//! Needs Node.js with npm (`apt-get install -y nodejs npm`; scripts/test
//! installs them). A missing `node` or `npm` FAILS this test with that
//! instruction; nothing is skipped. KafkaJS itself is installed with `npm ci`
//! from the pinned `tests/compat/js/package-lock.json` into cargo's
//! `CARGO_TARGET_TMPDIR`, again only when the lock file changes; npm's cache
//! keeps the download.
//!
//! Run: `cargo test -p conveyor-tests --test compat_kafkajs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use conveyor_tests::external::run_until_ok;
use conveyor_tests::groups::GROUP_SETTINGS;
use conveyor_tests::{Runtime, TestBroker};

/// How long `npm ci` may take (a download on a fresh machine).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the script may run before it is killed and the test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

const INSTALL_HINT: &str = "install Node.js and npm with `apt-get install -y nodejs npm` \
     (scripts/test does this)";

/// Panics with the install command unless `program --version` runs.
fn require(program: &str) {
    let out = Command::new(program)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("`{program}` is not available ({e}); {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "`{program} --version` failed; {INSTALL_HINT}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The harness folder under `CARGO_TARGET_TMPDIR`: the script and its
/// package files copied from `tests/compat/js`, KafkaJS installed by
/// `npm ci` unless the same lock file was installed there before and KafkaJS
/// is still there.
fn harness() -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat/js");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-js");
    fs::create_dir_all(&dir).expect("create the harness directory");
    let lock = fs::read(source.join("package-lock.json")).expect("read package-lock.json");
    let installed = dir.join("installed-package-lock.json");
    let present = dir.join("node_modules/kafkajs/package.json").is_file();
    if !present || fs::read(&installed).ok().as_ref() != Some(&lock) {
        for file in ["package.json", "package-lock.json"] {
            fs::copy(source.join(file), dir.join(file)).expect("copy the package files");
        }
        let mut npm = Command::new("sh");
        npm.current_dir(&dir).args([
            "-c",
            "npm ci --no-audit --no-fund --ignore-scripts && echo OK",
        ]);
        run_until_ok(npm, "npm ci (KafkaJS)", INSTALL_TIMEOUT);
        fs::write(&installed, &lock).expect("record the installed lock file");
    }
    fs::copy(source.join("kafkajs.js"), dir.join("kafkajs.js")).expect("copy kafkajs.js");
    dir
}

#[test]
fn kafkajs() {
    require("node");
    require("npm");
    let dir = harness();
    // The script checks these back through DescribeConfigs; the group
    // settings let its members join without the initial rebalance delay.
    let mut settings = vec![("num.partitions", "3"), ("log.segment.bytes", "104857600")];
    settings.extend_from_slice(GROUP_SETTINGS);
    let broker = TestBroker::start_with(Runtime::Smol, &settings);
    let mut node = Command::new("node");
    node.current_dir(&dir)
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1")
        .arg("kafkajs.js")
        .args(["--bootstrap", &broker.bootstrap()]);
    let output = run_until_ok(node, "KafkaJS (tests/compat/js/kafkajs.js)", SCRIPT_TIMEOUT);
    print!("{output}");
}
