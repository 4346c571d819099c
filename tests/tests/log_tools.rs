//! `conveyor log dump` and `conveyor log verify` on a data directory a
//! real client wrote: records produced by librdkafka in every codec, with
//! keys and headers, over several segments.
//!
//! - `verify` passes every file of the healthy log, one `ok` line each;
//! - `dump --records` shows every record produced at the offset its
//!   producer was told, with its key, value and header key, and every
//!   batch's position;
//! - a flipped byte inside a batch fails `verify` with the CRC, naming the
//!   file and the batch's position; a torn tail fails it naming where the
//!   whole batches end; a missing path is a usage error (exit 2).
//!
//! Run: `cargo test -p conveyor-tests --test log_tools` (after
//! `cargo build -p conveyor-server`: it runs the binary).

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use conveyor_tests::client::{create_topic, producer, producer_config, send, wait_acked};
use conveyor_tests::{Runtime, TestBroker, conveyor_bin};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

const TOPIC: &str = "dumped";
const PER_CODEC: usize = 200;
const TIMEOUT: Duration = Duration::from_secs(30);

fn log_tool(args: &[&str]) -> Output {
    Command::new(conveyor_bin())
        .arg("log")
        .args(args)
        .output()
        .expect("run conveyor log")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `key: K payload: V` and the header keys of each `| offset:` line.
fn dumped_records(stdout: &str) -> BTreeMap<i64, (String, String, String)> {
    let mut out = BTreeMap::new();
    for line in stdout.lines().filter(|l| l.starts_with("| offset: ")) {
        let field = |name: &str| {
            let start = line.find(name).expect(name) + name.len();
            let rest = &line[start..];
            rest.split(' ').next().unwrap_or("").to_owned()
        };
        let offset: i64 = field("| offset: ").parse().expect("an offset");
        let headers = field("headerKeys: ");
        out.insert(offset, (field(" key: "), field(" payload: "), headers));
    }
    out
}

/// The `position:` of every batch line of a dump, in order.
fn batch_positions(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter(|l| l.starts_with("baseOffset: "))
        .map(|l| {
            let at = l.find(" position: ").expect("a position") + " position: ".len();
            l[at..].split(' ').next().unwrap().parse().unwrap()
        })
        .collect()
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

#[test]
fn dump_shows_what_was_produced_and_verify_finds_corruption() {
    let mut broker = TestBroker::start_with(Runtime::Mio, &[("log.segment.bytes", "4096")]);
    create_topic(&broker.bootstrap(), TOPIC, 1, TIMEOUT);
    let mut want = BTreeMap::new();
    for (c, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        let p = producer(&producer_config(&broker.bootstrap(), codec));
        let mut sent = BTreeMap::new();
        for i in c * PER_CODEC..(c + 1) * PER_CODEC {
            let (key, value) = (format!("key-{i}"), format!("value-{i}-{codec}"));
            let headers = OwnedHeaders::new().insert(Header {
                key: &format!("h{}", i % 3),
                value: Some("x"),
            });
            let record = BaseRecord::with_opaque_to(TOPIC, i)
                .key(key.as_bytes())
                .payload(value.as_bytes())
                .headers(headers);
            send(&p, record, TIMEOUT);
            sent.insert(i, (key, value, format!("[h{}]", i % 3)));
        }
        for (i, d) in wait_acked(&p, PER_CODEC, TIMEOUT) {
            want.insert(d.offset, sent.remove(&i).expect("a report per record"));
        }
    }
    broker.stop();
    let data = broker.data_dir();
    let part = data.join(format!("{TOPIC}-0"));
    let logs = log_files(&part);
    assert!(logs.len() >= 3, "several segments: {logs:?}");

    // Healthy: every segment file of the data directory is ok.
    let o = log_tool(&["verify", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let ok = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(ok >= 3 * logs.len(), "a line per segment file:\n{stdout}");
    assert!(!stdout.contains("CORRUPT"), "{stdout}");

    // The dump holds every record at the offset its producer was told.
    let o = log_tool(&["dump", "--records", part.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let got = dumped_records(&stdout);
    assert_eq!(got.len(), want.len(), "every record dumped once");
    assert_eq!(got, want, "offsets, keys, values and header keys");
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        assert!(
            stdout.contains(&format!("compresscodec: {codec}")),
            "{codec} batches shown"
        );
    }
    assert!(!stdout.contains("isvalid: false"), "every CRC matches");

    // A flipped byte in the last batch of the first segment: its CRC.
    let first = &logs[0];
    let dump = log_tool(&["dump", first.to_str().unwrap()]);
    let positions = batch_positions(&String::from_utf8_lossy(&dump.stdout));
    let last = *positions.last().expect("batches");
    let mut bytes = fs::read(first).unwrap();
    let at = last as usize + 70;
    bytes[at] ^= 0xff;
    fs::write(first, &bytes).unwrap();
    let o = log_tool(&["verify", first.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = format!("CORRUPT {} at byte {last}: ", first.display());
    assert!(stdout.contains(&line), "names the file and batch: {stdout}");
    assert!(stdout.contains("CRC"), "{stdout}");

    // A torn tail on the newest segment: where the whole batches end.
    let newest = logs.last().unwrap();
    let dump = log_tool(&["dump", newest.to_str().unwrap()]);
    let positions = batch_positions(&String::from_utf8_lossy(&dump.stdout));
    let tail = *positions.last().expect("batches");
    let len = fs::metadata(newest).unwrap().len();
    let f = OpenOptions::new().write(true).open(newest).unwrap();
    f.set_len(len - 5).unwrap();
    let o = log_tool(&["verify", part.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = format!("CORRUPT {} at byte {tail}: ", newest.display());
    assert!(stdout.contains(&line), "names the torn file: {stdout}");
    assert!(stdout.contains("not a whole batch"), "{stdout}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("2 of "), "both bad files counted: {stderr}");

    // A path that is not there is a usage error.
    let missing = data.join("no-such-partition-0");
    let o = log_tool(&["verify", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no-such-partition-0"),
        "{}",
        text(&o)
    );
}
