//! `bench`: the benchmark matrix. Starts `conveyor serve --runtime <r>` as a
//! child process on 127.0.0.1 with a fresh data directory for each runtime
//! the binary accepts, runs a fixed set of workloads against it with
//! librdkafka, measures the baselines in the same run (page-cache writes,
//! loopback sendfile, and the very same client workloads against
//! librdkafka's in-process mock cluster), and prints one Markdown table:
//! workload, figure, baseline, ratio.
//!
//! Every workload is bounded in time (`--seconds` each); topics are deleted
//! as soon as they are measured so the disk holds one workload's data at a
//! time.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::baseline::{self, Throughput};
use super::broker::Broker;
use super::consume::{self, ConsumeOpts, ConsumeResult};
use super::e2e::{self, E2eOpts, E2eResult};
use super::kafka;
use super::produce::{self, ProduceOpts, ProduceResult};
use super::report::{
    self, Table, add_rows, mib, one_line, ratio, report_throughput, throughput_figure,
};
use super::rss::RSS_SAMPLE;
use super::{Target, unique_topic};

/// How to run the matrix.
#[derive(Debug, Clone)]
pub struct BenchOpts {
    /// The `conveyor` binary.
    pub conveyor: PathBuf,
    /// Runtimes to measure (empty: every one the binary accepts).
    pub runtimes: Vec<String>,
    /// Seconds per workload.
    pub seconds: f64,
    /// Where data directories and baseline files go (same file system as
    /// the broker's data, so the write baseline is comparable).
    pub dir: PathBuf,
    /// Extra broker settings, `key=value` (`--set`).
    pub broker_settings: Vec<String>,
    /// Skip the mock-cluster client ceilings.
    pub no_mock: bool,
    /// Bytes the page-cache write baseline writes at most.
    pub write_bytes: u64,
    /// A note printed under the table (e.g. the commit).
    pub note: Option<String>,
    /// Also run the matrix against Apache Kafka ([`kafka`]), started the
    /// same way, and set each runtime beside it.
    pub kafka: bool,
}

/// One workload of the matrix, run the same way against Conveyor and the
/// mock cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Workload {
    /// Throughput produce; `consume` also reads it back afterwards.
    Produce {
        size: usize,
        partitions: i32,
        acks: &'static str,
        consume: bool,
        /// The topic syncs every message (`flush.messages=1`), so with
        /// acks=-1 each answer waits for its fsync (group commit).
        fsync: bool,
    },
    /// One record per produce request (linger.ms=0, batch.num.messages=1).
    SingleRecord,
    /// Produce at a fixed rate with linger.ms=0, consume in parallel.
    E2e { rate: f64 },
    /// [`Workload::E2e`] right after `fill` bytes were written to another
    /// topic (1 KiB records over 1,000 keys, 64 MiB segments): with
    /// `compact`, a compacted one that the log cleaner works through
    /// during the measurement; without, a plain one, the baseline that
    /// carries the same write-back and page-cache load. Not run on the
    /// mock, which has no cleaner.
    E2eWhileCleaning { rate: f64, fill: u64, compact: bool },
    /// Produce 1 KiB records uncompressed to a topic whose
    /// `compression.type` is `codec`: the broker rewrites every batch. Its
    /// baseline is the same produce to a plain topic. Not run on the mock.
    Recompress { codec: &'static str },
}

const MATRIX: &[Workload] = &[
    Workload::Produce {
        size: 100,
        partitions: 1,
        acks: "1",
        consume: true,
        fsync: false,
    },
    Workload::Produce {
        size: 100,
        partitions: 8,
        acks: "1",
        consume: false,
        fsync: false,
    },
    Workload::Produce {
        size: 100,
        partitions: 1,
        acks: "-1",
        consume: false,
        fsync: false,
    },
    Workload::Produce {
        size: 100,
        partitions: 8,
        acks: "-1",
        consume: false,
        fsync: false,
    },
    Workload::Produce {
        size: 1024,
        partitions: 1,
        acks: "1",
        consume: true,
        fsync: false,
    },
    Workload::Produce {
        size: 1024,
        partitions: 8,
        acks: "1",
        consume: true,
        fsync: false,
    },
    Workload::Produce {
        size: 1024,
        partitions: 1,
        acks: "-1",
        consume: false,
        fsync: false,
    },
    Workload::Produce {
        size: 1024,
        partitions: 8,
        acks: "-1",
        consume: false,
        fsync: false,
    },
    Workload::Produce {
        size: 1024,
        partitions: 1,
        acks: "-1",
        consume: false,
        fsync: true,
    },
    // Syncs of eight partitions at once: what `log.flush.threads` is for.
    Workload::Produce {
        size: 1024,
        partitions: 8,
        acks: "-1",
        consume: false,
        fsync: true,
    },
    Workload::Recompress { codec: "zstd" },
    Workload::SingleRecord,
    Workload::E2e { rate: 10_000.0 },
    Workload::E2eWhileCleaning {
        rate: 10_000.0,
        fill: 1 << 30,
        compact: false,
    },
    Workload::E2eWhileCleaning {
        rate: 10_000.0,
        fill: 1 << 30,
        compact: true,
    },
];

impl Workload {
    fn name(&self) -> String {
        match *self {
            Workload::Produce {
                size,
                partitions,
                acks,
                fsync,
                ..
            } => format!(
                "produce {} B, {partitions} partition{}, acks={acks}{}",
                size,
                if partitions == 1 { "" } else { "s" },
                if fsync {
                    ", fsync per batch (flush.messages=1)"
                } else {
                    ""
                }
            ),
            Workload::SingleRecord => {
                "one record per request (100 B, linger.ms=0, batch.num.messages=1, acks=1)".into()
            }
            Workload::E2e { rate } => {
                format!("e2e at {rate:.0} records/s (100 B, linger.ms=0, acks=1)")
            }
            Workload::Recompress { codec } => format!(
                "produce 1024 B, 1 partition, acks=1, topic compression.type={codec} (the broker recompresses)"
            ),
            Workload::E2eWhileCleaning {
                rate,
                fill,
                compact: true,
            } => format!(
                "e2e at {rate:.0} records/s while the cleaner compacts a {} MiB topic",
                fill >> 20
            ),
            Workload::E2eWhileCleaning {
                rate,
                fill,
                compact: false,
            } => format!(
                "e2e at {rate:.0} records/s after writing a {} MiB topic (nothing to clean)",
                fill >> 20
            ),
        }
    }
}

/// What one workload measured on one target.
#[derive(Debug, Clone)]
pub(crate) enum Measured {
    Produce(ProduceResult, Option<Result<ConsumeResult, String>>),
    E2e(E2eResult),
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.05))
}

/// Runs one workload on `target`, then deletes its topic.
fn run_workload(target: &Target, w: Workload, seconds: f64) -> Result<Measured, String> {
    let topic = unique_topic("bench");
    let bootstrap = target.bootstrap();
    let outcome = match w {
        Workload::Produce {
            size,
            partitions,
            acks,
            consume,
            fsync,
        } => {
            let configs: &[(&str, &str)] = if fsync {
                &[("flush.messages", "1")]
            } else {
                &[]
            };
            target.create_topic_with(&topic, partitions, configs)?;
            let mut opts = ProduceOpts::new(&topic, u64::MAX, size);
            opts.partitions = partitions;
            opts.acks = acks.into();
            opts.max_time = Some(secs(seconds));
            opts.progress = Duration::ZERO;
            let p = produce::run(&opts, &bootstrap)?;
            let c = consume.then(|| {
                let mut copts = ConsumeOpts::new(&topic);
                copts.max_time = Some(secs(seconds));
                copts.progress = Duration::ZERO;
                if target.is_mock() {
                    // The mock keeps only ~5 MB per partition: read it
                    // again and again for the same time.
                    copts.rewind = true;
                } else {
                    copts.records = Some(p.acked);
                }
                consume::run(&copts, &bootstrap)
            });
            Ok(Measured::Produce(p, c))
        }
        Workload::SingleRecord => {
            target.create_topic(&topic, 1)?;
            let mut opts = ProduceOpts::new(&topic, u64::MAX, 100);
            opts.linger_ms = "0".into();
            opts.batch_num_messages = 1;
            // A short local queue: the broker's request rate paces the
            // sender, and the backlog left at the deadline drains quickly.
            opts.overrides = vec!["queue.buffering.max.messages=10000".into()];
            opts.max_time = Some(secs(seconds));
            opts.progress = Duration::ZERO;
            produce::run(&opts, &bootstrap).map(|p| Measured::Produce(p, None))
        }
        Workload::Recompress { .. } if target.is_mock() => {
            Err("not measured: the mock cluster does not recompress".to_owned())
        }
        Workload::Recompress { codec } => {
            target.create_topic_with(&topic, 1, &[("compression.type", codec)])?;
            let mut opts = ProduceOpts::new(&topic, u64::MAX, 1024);
            // Text that compresses as text does, not one value repeated.
            opts.varied = true;
            opts.max_time = Some(secs(seconds));
            opts.progress = Duration::ZERO;
            produce::run(&opts, &bootstrap).map(|p| Measured::Produce(p, None))
        }
        Workload::E2eWhileCleaning { .. } if target.is_mock() => {
            Err("not measured: the mock cluster has no cleaner".to_owned())
        }
        Workload::E2eWhileCleaning {
            rate,
            fill,
            compact,
        } => {
            let filled = unique_topic("filled");
            let policy = if compact { "compact" } else { "delete" };
            target.create_topic_with(
                &filled,
                1,
                &[
                    ("cleanup.policy", policy),
                    ("segment.bytes", "67108864"),
                    ("min.cleanable.dirty.ratio", "0.01"),
                ],
            )?;
            let mut fopts = ProduceOpts::new(&filled, fill / 1024, 1024);
            fopts.keys = Some(1_000);
            fopts.progress = Duration::ZERO;
            let filling = produce::run(&fopts, &bootstrap);
            // The broker runs with log.cleaner.backoff.ms=1000 in the bench:
            // its cleaner starts within a second, during the measurement.
            let measured = filling.and_then(|_| {
                target.create_topic(&topic, 1)?;
                let mut popts = ProduceOpts::new(&topic, 0, 100);
                popts.linger_ms = "0".into();
                popts.progress = Duration::ZERO;
                let opts = E2eOpts {
                    produce: popts,
                    rate,
                    duration: secs(seconds.max(10.0)),
                    consumer_overrides: Vec::new(),
                };
                e2e::run(&opts, &bootstrap).map(Measured::E2e)
            });
            target.delete_topic(&filled);
            measured
        }
        Workload::E2e { rate } => {
            target.create_topic(&topic, 1)?;
            let mut popts = ProduceOpts::new(&topic, 0, 100);
            popts.linger_ms = "0".into();
            popts.progress = Duration::ZERO;
            let opts = E2eOpts {
                produce: popts,
                rate,
                duration: secs(seconds),
                // The mock holds an empty fetch for fetch.wait.max.ms and is
                // not woken by a produce: it is polled every millisecond.
                consumer_overrides: if target.is_mock() {
                    vec!["fetch.wait.max.ms=1".into()]
                } else {
                    Vec::new()
                },
            };
            e2e::run(&opts, &bootstrap).map(Measured::E2e)
        }
    };
    target.delete_topic(&topic);
    outcome
}

/// The cleaner's passes in a broker log (its `cleaned` lines): how many,
/// and the records and bytes they read and kept.
fn cleaner_passes(log: &str) -> String {
    let field = |line: &str, name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (mut n, mut rin, mut rout, mut bin, mut bout) = (0, 0, 0, 0, 0);
    for line in log
        .lines()
        .filter(|l| l.contains(" cleaned ") && l.contains("records_in="))
    {
        n += 1;
        rin += field(line, "records_in");
        rout += field(line, "records_out");
        bin += field(line, "bytes_in");
        bout += field(line, "bytes_out");
    }
    format!(
        "{n} passes finished: {rin} records read, {rout} kept; {} MB read, {} MB written",
        bin / 1_000_000,
        bout / 1_000_000
    )
}

fn describe(m: &Result<Measured, String>) -> String {
    match m {
        Err(e) => format!("ERROR: {e}"),
        Ok(Measured::Produce(p, c)) => {
            let mut s = p.summary();
            if let Some(c) = c {
                s.push_str("\n    consume: ");
                match c {
                    Ok(c) => s.push_str(&c.summary()),
                    Err(e) => s.push_str(&format!("ERROR: {e}")),
                }
            }
            s
        }
        Ok(Measured::E2e(e)) => e.summary().replace('\n', "\n    "),
    }
}

/// How a broker's process ends when stopped cleanly.
const CLEAN_EXIT: &[&str] = &["exited: exit status: 0"];

/// What the matrix measured on one broker.
struct Run {
    name: String,
    results: Vec<Result<Measured, String>>,
    rss: Option<u64>,
    sampled: Option<(u64, u64)>,
    exit: String,
    /// It stopped as `clean_exits` says a clean stop ends.
    clean: bool,
    cleaning: Option<String>,
    /// The broker's CPU seconds during each workload.
    cpu: Vec<Option<f64>>,
}

/// Run the matrix on a started broker (or record why it did not start),
/// then stop it; `label` names it in progress lines, `conveyor` says
/// whether it is a Conveyor (whose log tells the cleaner's passes).
fn measure(
    name: &str,
    label: &str,
    (started, conveyor): (Result<Broker, String>, bool),
    seconds: f64,
    clean_exits: &[&str],
) -> Run {
    let mut run = Run {
        name: name.to_owned(),
        results: Vec::new(),
        rss: None,
        sampled: None,
        exit: String::new(),
        clean: false,
        cleaning: None,
        cpu: Vec::new(),
    };
    let mut broker = match started {
        Err(e) => {
            eprintln!("== {label}: {e}");
            run.results = MATRIX.iter().map(|_| Err(e.clone())).collect();
            run.exit = format!("did not start: {}", one_line(&e));
            return run;
        }
        Ok(b) => b,
    };
    let target = Target::Broker(broker.addr.to_string());
    for w in MATRIX {
        eprintln!("== {label}: {}", w.name());
        broker.anon_window_kib();
        let cpu_before = super::rss::cpu_seconds(broker.child.id());
        let m = match broker.exited() {
            None => run_workload(&target, *w, seconds),
            Some(status) => Err(format!(
                "the broker exited ({status}); log tail:\n{}",
                broker.log_text()
            )),
        };
        eprintln!("    {}", describe(&m));
        let cpu_after = super::rss::cpu_seconds(broker.child.id());
        run.cpu.push(cpu_before.zip(cpu_after).map(|(a, b)| b - a));
        // Conveyor logs each cleaner pass; Kafka's log shows errors only.
        if conveyor && matches!(w, Workload::E2eWhileCleaning { compact: true, .. }) {
            let passes = cleaner_passes(&broker.log_text());
            eprintln!("    cleaner: {passes}");
            run.cleaning = Some(passes);
        }
        if let Some(a) = broker.anon_window_kib() {
            eprintln!("    broker RssAnon peak {}", mib(a));
        }
        run.results.push(m);
    }
    let died = broker.exited();
    run.rss = broker.peak_rss_kib();
    run.sampled = broker.sampled_peaks_kib();
    let log = broker.log.clone();
    run.exit = match died {
        Some(status) => format!("exited by itself during the matrix: {status}"),
        None => broker.stop(),
    };
    run.clean = clean_exits.contains(&run.exit.as_str());
    eprintln!("== {label}: {}", run.exit);
    let trouble = !run.clean
        || run.results.iter().any(|r| match r {
            Err(_) => true,
            Ok(Measured::Produce(p, c)) => p.failed > 0 || c.as_ref().is_some_and(|c| c.is_err()),
            Ok(Measured::E2e(e)) => e.failed > 0 || e.received < e.sent,
        });
    if trouble {
        // Keep the broker's log past the temporary directory.
        let file = name.replace(' ', "-");
        let kept =
            std::env::temp_dir().join(format!("conveyor-bench-{file}-{}.log", std::process::id()));
        if fs::copy(&log, &kept).is_ok() {
            eprintln!("== {label}: log kept at {}", kept.display());
            run.exit
                .push_str(&format!("; broker log kept at {}", kept.display()));
        }
    }
    run
}

/// The runtimes the binary accepts. Asked the way that cannot start a
/// broker: an unknown `--runtime` is refused with "(valid: a, b, c)"
/// before anything is opened. Falls back to the list in `serve --help`
/// ("Valid: a (...), b."), then to `threads`.
pub fn runtimes_of(conveyor: &Path) -> Vec<String> {
    let probe_dir = std::env::temp_dir().join("conveyor-perf-runtime-probe-never-created");
    let refused = Command::new(conveyor)
        .args([
            "serve",
            "--runtime",
            "conveyor-perf-probe",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&probe_dir)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    let _ = fs::remove_dir(&probe_dir);
    if let Some(names) = list_after(&refused, "(valid:", ')') {
        return names;
    }
    let help = Command::new(conveyor)
        .args(["serve", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let after_runtime = flat.find("--runtime").map_or("", |i| &flat[i..]);
    for marker in ["Valid:", "possible values:"] {
        if let Some(names) = list_after(after_runtime, marker, '.') {
            return names;
        }
    }
    vec!["threads".to_owned()]
}

/// "marker a (note, more), b, c<end>" → [a, b, c]: the first word of each
/// comma-separated item, parenthesised notes dropped.
fn list_after(text: &str, marker: &str, end: char) -> Option<Vec<String>> {
    let start = text.find(marker)? + marker.len();
    let mut depth = 0;
    let mut list = String::new();
    for ch in text[start..].chars() {
        match ch {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            c if depth == 0 && (c == end || c == ']' || c == '\n') => break,
            c if depth == 0 => list.push(c),
            _ => {}
        }
    }
    let names: Vec<String> = list
        .split(',')
        .filter_map(|item| item.split_whitespace().next())
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '_')
                .to_owned()
        })
        .filter(|w| !w.is_empty())
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Machine facts for the table's heading.
fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {mem_gib:.1} GiB RAM, Linux {}",
        kernel.trim()
    )
}

/// Runs the matrix; returns the Markdown report.
pub fn run(opts: &BenchOpts) -> Result<String, String> {
    let started = Instant::now();
    let runtimes = if opts.runtimes.is_empty() {
        runtimes_of(&opts.conveyor)
    } else {
        opts.runtimes.clone()
    };
    eprintln!("== runtimes: {}", runtimes.join(", "));
    fs::create_dir_all(&opts.dir).map_err(|e| format!("{}: {e}", opts.dir.display()))?;
    let work = tempfile::Builder::new()
        .prefix("conveyor-bench-")
        .tempdir_in(&opts.dir)
        .map_err(|e| e.to_string())?;
    let seconds = opts.seconds;

    // Machine baselines.
    eprintln!("== baseline: page-cache write");
    let write = baseline::page_cache_write(work.path(), opts.write_bytes, 1 << 20, secs(seconds));
    report_throughput("page-cache write", &write);
    eprintln!("== baseline: sendfile to loopback");
    let sendfile = baseline::sendfile_loopback(work.path(), 256 << 20, 1 << 20, secs(seconds));
    report_throughput("sendfile loopback", &sendfile);

    // Client ceilings.
    let mut mock: Vec<Option<Result<Measured, String>>> = vec![None; MATRIX.len()];
    if !opts.no_mock {
        for (i, w) in MATRIX.iter().enumerate() {
            eprintln!("== mock cluster: {}", w.name());
            // A fresh mock cluster per workload, as a fresh broker would be.
            let m = Target::mock().and_then(|t| run_workload(&t, *w, seconds));
            eprintln!("    {}", describe(&m));
            mock[i] = Some(m);
        }
    }

    // Conveyor, per runtime.
    let mut per_runtime = Vec::new();
    for rt in &runtimes {
        let data = work.path().join(format!("data-{rt}"));
        fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let log = work.path().join(format!("conveyor-{rt}.log"));
        let broker = Broker::conveyor(opts, rt, &data, log);
        per_runtime.push(measure(
            rt,
            &format!("conveyor --runtime {rt}"),
            (broker, true),
            seconds,
            CLEAN_EXIT,
        ));
        let _ = fs::remove_dir_all(&data);
    }

    // Apache Kafka, the same way.
    let peer = if opts.kafka {
        let name = format!("kafka {}", kafka::KAFKA_VERSION);
        eprintln!("== {name}: resolving its jars with Maven");
        let log = work.path().join("kafka.log");
        let broker =
            kafka::classpath(work.path()).and_then(|cp| kafka::start(&cp, work.path(), log));
        // The JVM exits 143 after its shutdown hooks ran on SIGTERM.
        let run = measure(
            &name,
            &name,
            (broker, false),
            seconds,
            &[CLEAN_EXIT[0], "exited: exit status: 143"],
        );
        let _ = fs::remove_dir_all(work.path().join("kafka-data"));
        Some(run)
    } else {
        None
    };

    // The table.
    let mut t = Table { rows: Vec::new() };
    let write_mb = write.as_ref().ok().map(Throughput::mb_per_sec);
    let sendfile_mb = sendfile.as_ref().ok().map(Throughput::mb_per_sec);
    t.row(
        "baseline: sequential write to the page cache (1 MiB writes, no fsync)",
        throughput_figure(&write),
        "-".into(),
        "-".into(),
    );
    t.row(
        "baseline: sendfile from a cached file to a 127.0.0.1 socket (1 MiB calls)",
        throughput_figure(&sendfile),
        "-".into(),
        "-".into(),
    );
    for run in per_runtime.iter().chain(peer.iter()) {
        let Run {
            name: rt,
            results,
            rss,
            sampled,
            exit,
            clean,
            cleaning,
            cpu,
        } = run;
        let plain_1k = MATRIX.iter().position(|w| {
            matches!(
                w,
                Workload::Produce {
                    size: 1024,
                    partitions: 1,
                    acks: "1",
                    ..
                }
            )
        });
        let plain_e2e = MATRIX
            .iter()
            .position(|w| matches!(w, Workload::E2eWhileCleaning { compact: false, .. }));
        for (i, w) in MATRIX.iter().enumerate() {
            let m = &results[i];
            let b = match w {
                Workload::E2eWhileCleaning { compact: true, .. } => {
                    plain_e2e.and_then(|j| results.get(j))
                }
                Workload::Recompress { .. } => plain_1k.and_then(|j| results.get(j)),
                Workload::E2eWhileCleaning { .. } => None,
                _ => mock[i].as_ref(),
            };
            let name = format!("{rt}: {}", w.name());
            add_rows(&mut t, &name, *w, m, b, write_mb, sendfile_mb);
        }
        // The broker's CPU per GB produced, with and without recompressing.
        let per_gb = |i: Option<usize>| -> Option<f64> {
            let i = i?;
            let Some(Ok(Measured::Produce(p, _))) = results.get(i) else {
                return None;
            };
            let secs = cpu.get(i).copied().flatten()?;
            (p.bytes > 0).then(|| secs / (p.bytes as f64 / 1e9))
        };
        let recompress = MATRIX
            .iter()
            .position(|w| matches!(w, Workload::Recompress { .. }));
        if let (Some(a), Some(b)) = (per_gb(recompress), per_gb(plain_1k)) {
            t.row(
                format!("{rt}: broker CPU per GB produced, topic compression.type=zstd"),
                format!("{a:.2} s/GB"),
                format!("{b:.2} s/GB plain topic"),
                ratio(a, b),
            );
        }
        if let Some(c) = cleaning {
            t.row(
                format!("{rt}: what the cleaner did during the cleaning workload"),
                c.clone(),
                "-".into(),
                "-".into(),
            );
        }
        t.row(
            format!("{rt}: broker peak RSS (VmHWM) over the whole matrix"),
            rss.map_or("-".into(), mib),
            "-".into(),
            "-".into(),
        );
        t.row(
            format!(
                "{rt}: broker peak RssAnon (own memory, without mapped page cache; sampled every \
                 {} ms) / peak RssFile",
                RSS_SAMPLE.as_millis()
            ),
            sampled.map_or("-".into(), |(a, f)| format!("{} / {}", mib(a), mib(f))),
            "-".into(),
            "-".into(),
        );
        if !clean {
            t.row(
                format!("{rt}: broker exit"),
                one_line(exit),
                "-".into(),
                "-".into(),
            );
        }
    }
    if let Some(kafka) = &peer {
        for run in &per_runtime {
            for (i, w) in MATRIX.iter().enumerate() {
                report::peer_rows(
                    &mut t,
                    &format!("{} vs {}: {}", run.name, kafka.name, w.name()),
                    *w,
                    &run.results[i],
                    &kafka.results[i],
                );
            }
            if let (Some(a), Some(b)) = (run.rss, kafka.rss) {
                t.row(
                    format!("{} vs {}: broker peak RSS (VmHWM)", run.name, kafka.name),
                    mib(a),
                    mib(b),
                    ratio(a as f64, b as f64),
                );
            }
            let cpu_per_gb = |r: &Run| -> Option<f64> {
                let (mut secs, mut bytes) = (0.0, 0u64);
                for (i, m) in r.results.iter().enumerate() {
                    if let (Ok(Measured::Produce(p, _)), Some(Some(c))) = (m, r.cpu.get(i)) {
                        if matches!(MATRIX[i], Workload::Produce { .. }) {
                            secs += c;
                            bytes += p.bytes;
                        }
                    }
                }
                (bytes > 0).then(|| secs / (bytes as f64 / 1e9))
            };
            if let (Some(a), Some(b)) = (cpu_per_gb(run), cpu_per_gb(kafka)) {
                t.row(
                    format!(
                        "{} vs {}: broker CPU per GB over the produce-and-consume workloads",
                        run.name, kafka.name
                    ),
                    format!("{a:.2} s/GB"),
                    format!("{b:.2} s/GB"),
                    ratio(a, b),
                );
            }
        }
    }
    let mut out = format!(
        "Machine: {}. {} s per workload; client and broker on the same machine, 127.0.0.1; \
         librdkafka {}.\n\n",
        machine(),
        seconds,
        rdkafka::util::get_rdkafka_version().1
    );
    out.push_str(&t.render());
    out.push_str(
        "\nMB = 10^6 bytes of record values. Baselines: the same client settings against \
         librdkafka's in-process mock cluster (the client's ceiling; consume there re-reads the \
         ~5 MB per partition the mock retains, and its consumers use fetch.wait.max.ms=1 because \
         the mock never wakes a waiting fetch), and the machine limits above; each figure is \
         compared with the tightest baseline that applies. Ratio = figure / baseline: higher is \
         better for throughput, lower is better for latency.\n",
    );
    if let Some(note) = &opts.note {
        out.push_str(&format!("\n{note}\n"));
    }
    out.push_str(&format!(
        "\nWhole run: {:.0} s.\n",
        started.elapsed().as_secs_f64()
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::list_after;

    #[test]
    fn runtime_lists_parse() {
        let refused = "error: --runtime: unknown runtime `x` (valid: threads, mio, tokio, smol)\n";
        assert_eq!(
            list_after(refused, "(valid:", ')').unwrap(),
            ["threads", "mio", "tokio", "smol"]
        );
        let help = "[default: threads]. Valid: threads (a thread per connection), mio (one \
                    event-loop thread), tokio, smol. --set";
        assert_eq!(
            list_after(help, "Valid:", '.').unwrap(),
            ["threads", "mio", "tokio", "smol"]
        );
    }
}
