//! Apache Kafka's Java client (`org.apache.kafka:kafka-clients` 4.4.0, the
//! reference implementation) against the in-process broker on tokio: the
//! Maven project in `tests/compat/java/`, built once per run into this
//! crate's `CARGO_TARGET_TMPDIR` (Maven's `~/.m2` keeps the downloads).
//!
//! Each test starts its own broker and runs one part of the harness, which
//! checks the values every call answers, not only that it answered:
//!
//! - `producer`: the idempotent producer with acks=all, once per codec
//!   (none, gzip, snappy, lz4, zstd): keys, null keys and values, headers
//!   (empty, null, repeated names), explicit timestamps; every send's
//!   partition, offset and timestamp; DescribeProducers' state; every record
//!   read back the same; 600 KB records; a topic with compression.type=zstd
//!   written uncompressed; a topic auto-created by a send; acks=0 and
//!   acks=1 without idempotence. Then this test
//!   reads the segments on disk: every batch is in the codec expected and
//!   carries the producer's id and consecutive sequences.
//! - `consumer`: assign() without a group, beginning and end offsets,
//!   seekToBeginning and seekToEnd, seek, offsetsForTimes (exact, between
//!   records, before and after all of them, an empty partition); commitSync
//!   of chosen offsets with metadata and of the position, committed() read
//!   back, metadata over offset.metadata.max.bytes refused, and a
//!   subscribed member resuming where the commits say; fetch
//!   limits smaller than a batch; read_committed; Admin.listOffsets by the
//!   largest timestamp and by time.
//! - `group`: three classic-protocol members on a topic of six partitions,
//!   with the eager range assignor and with the cooperative sticky one: two
//!   partitions each, every record consumed exactly once by its partition's
//!   owner, the commits and DescribeGroups agreeing with the members; one
//!   leaves and the other two take its partitions and consume what follows;
//!   static members (group.instance.id): one closes and comes back without
//!   a rebalance, and both are removed by instance id.
//! - `admin`: describeCluster; createTopics (with configs, answered back;
//!   with replica assignments; an existing topic, replication factor 3, an
//!   assignment to another broker and validateOnly), listTopics (internal
//!   `__consumer_offsets` too),
//!   describeTopics by name and by id, deleteTopics; describeConfigs and
//!   incrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT; validateOnly,
//!   bad values) described back; createPartitions; deleteRecords with the
//!   low watermark and a consumer following; max.message.bytes enforced;
//!   broker configs and log dirs described; listConsumerGroups, listGroups,
//!   describeConsumerGroups, describeClassicGroups, listConsumerGroupOffsets,
//!   alterConsumerGroupOffsets, deleteConsumerGroupOffsets and
//!   deleteConsumerGroups; deleteTopics by name and by id.
//!
//! Needs `java` (17+) and `mvn`: `apt-get install -y maven
//! default-jdk-headless` (scripts/test installs them). Missing, they FAIL
//! these tests with that instruction; nothing is skipped.
//!
//! Run: `cargo test -p conveyor-tests --test compat_java -- --nocapture` to
//! see every check the harness made.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use conveyor_tests::external::run_until_ok;
use conveyor_tests::groups::GROUP_SETTINGS;
use conveyor_tests::{Runtime, TestBroker, batches_in, segment_files};

/// How long one part of the harness may run (each takes seconds).
const PART_TIMEOUT: Duration = Duration::from_secs(120);

/// What installs the toolchain, for the failure message.
const INSTALL: &str = "apt-get install -y maven default-jdk-headless (scripts/test does this)";

/// The compiled harness: the class path to run it with.
struct Harness {
    classpath: String,
}

/// Builds the harness the first time any test asks (the others wait), and
/// panics with why in every test if it could not be built.
fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Result<Harness, String>> = OnceLock::new();
    match HARNESS.get_or_init(build) {
        Ok(h) => h,
        Err(why) => panic!("{why}"),
    }
}

fn require(tool: &str, version_flag: &str) -> Result<(), String> {
    match Command::new(tool).arg(version_flag).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{tool} {version_flag}` failed ({}); install it with `{INSTALL}`\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!(
            "`{tool}` is not available ({e}); install it with `{INSTALL}`"
        )),
    }
}

/// `mvn compile dependency:build-classpath` into the target directory: the
/// classes, and a file naming every dependency jar in `~/.m2`.
fn build() -> Result<Harness, String> {
    require("java", "-version")?;
    require("mvn", "-v")?;
    let pom = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat/java/pom.xml");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-java");
    let classpath_file = out.join("classpath");
    // `cargo test` runs these tests in one process (the OnceLock), nextest
    // each in its own: a lock on a file beside the output keeps two builds
    // from writing the same classes at once. Held until `lock` is dropped.
    fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let lock = File::create(out.join(".build-lock")).map_err(|e| format!("build lock: {e}"))?;
    // SAFETY: flock(2) on a descriptor `lock` owns for this whole function.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("flock: {}", std::io::Error::last_os_error()));
    }
    let built = Command::new("mvn")
        .args(["-B", "-q", "-f"])
        .arg(&pom)
        .arg(format!("-Dharness.dir={}", out.display()))
        .arg(format!("-Dmdep.outputFile={}", classpath_file.display()))
        .args(["compile", "dependency:build-classpath"])
        .output()
        .map_err(|e| format!("cannot run mvn: {e}"))?;
    if !built.status.success() {
        return Err(format!(
            "building the Java harness ({}) failed ({}):\n{}{}",
            pom.display(),
            built.status,
            String::from_utf8_lossy(&built.stdout),
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    let deps = fs::read_to_string(&classpath_file)
        .map_err(|e| format!("mvn wrote no {}: {e}", classpath_file.display()))?;
    Ok(Harness {
        classpath: format!("{}:{}", out.join("classes").display(), deps.trim()),
    })
}

/// A broker on tokio whose groups rebalance without Kafka's production
/// delays (the harness's members use six-second sessions).
fn broker() -> TestBroker {
    TestBroker::start_with(Runtime::Tokio, GROUP_SETTINGS)
}

/// Runs one part of the harness against `broker` to its `OK`; prints what
/// it checked (shown with `--nocapture`).
fn run_part(part: &str, broker: &TestBroker) {
    let harness = harness();
    let mut java = Command::new("java");
    java.args([
        // Short runs: the quick JIT tier and one GC thread start fastest on
        // a small machine.
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        &harness.classpath,
        "conveyor.compat.Main",
        part,
        "--bootstrap",
        &broker.bootstrap(),
    ]);
    let printed = run_until_ok(
        java,
        &format!("the Java client's {part} part"),
        PART_TIMEOUT,
    );
    println!("{printed}");
}

/// The topics `Produce` writes that this test reads back from disk: name,
/// partitions, records in each, and the codec their batches must be in (a
/// RecordBatch attribute value): one topic per producer codec, and an
/// uncompressed producer writing to a topic whose compression.type is zstd.
const ON_DISK: [(&str, i32, i32, i16); 6] = [
    ("java-produce-none", 3, 1000, 0),
    ("java-produce-gzip", 3, 1000, 1),
    ("java-produce-snappy", 3, 1000, 2),
    ("java-produce-lz4", 3, 1000, 3),
    ("java-produce-zstd", 3, 1000, 4),
    ("java-produce-topic-zstd", 1, 500, 4),
];

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The batches the Java producer left on disk: RecordBatch v2 in the codec
/// expected, one producer id per topic at epoch 0, sequences consecutive
/// from 0 with the offsets, and more than one record to a batch on average
/// (so the codecs compressed batches, not single records).
fn check_batches_on_disk(broker: &TestBroker) {
    for (topic, partitions, records, attribute) in ON_DISK {
        let mut producer_id = None;
        for partition in 0..partitions {
            let mut next_offset = 0i64;
            let mut next_sequence = 0i32;
            let mut batches = 0;
            for path in segment_files(&broker.data_dir(), topic, partition) {
                let log = fs::read(&path).expect("read segment");
                for b in batches_in(&log) {
                    let h = &log[b.pos..b.pos + 61];
                    let what = format!("{topic}-{partition} batch at {}", b.base_offset);
                    assert_eq!(h[16], 2, "{what}: magic");
                    assert_eq!(be_i16(h, 21) & 7, attribute, "{what}: codec");
                    let id = be_i64(h, 43);
                    assert!(id >= 0, "{what}: no producer id ({id})");
                    assert_eq!(*producer_id.get_or_insert(id), id, "{what}: producer id");
                    assert_eq!(be_i16(h, 51), 0, "{what}: producer epoch");
                    assert_eq!(be_i32(h, 53), next_sequence, "{what}: base sequence");
                    assert_eq!(b.base_offset, next_offset, "{what}: base offset");
                    next_offset += b.records;
                    next_sequence += i32::try_from(b.records).expect("batch size");
                    batches += 1;
                }
            }
            assert_eq!(
                next_sequence, records,
                "{topic}-{partition}: records on disk"
            );
            assert!(
                batches < records / 2,
                "{topic}-{partition}: {batches} batches for {records} records"
            );
        }
    }
}

#[test]
fn producer_idempotent_acks_all_every_codec() {
    let broker = broker();
    run_part("produce", &broker);
    check_batches_on_disk(&broker);
}

#[test]
fn consumer_assign_seek_offsets_for_times_commits() {
    let broker = broker();
    run_part("consume", &broker);
}

#[test]
fn classic_group_of_three_rebalances() {
    let broker = broker();
    run_part("group", &broker);
}

#[test]
fn admin_topics_configs_partitions_records_groups() {
    let broker = broker();
    run_part("admin", &broker);
}
