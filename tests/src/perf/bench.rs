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

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::thread;
use std::time::{Duration, Instant};

use super::baseline::{self, Throughput};
use super::consume::{self, ConsumeOpts, ConsumeResult};
use super::e2e::{self, E2eOpts, E2eResult};
use super::hist::ms;
use super::produce::{self, ProduceOpts, ProduceResult};
use super::rss::{RSS_SAMPLE, RssSampler, status_kib};
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
}

/// One workload of the matrix, run the same way against Conveyor and the
/// mock cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Workload {
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
enum Measured {
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

/// A `conveyor serve` child process.
struct Broker {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    rss: Option<RssSampler>,
}

impl Broker {
    fn start(
        opts: &BenchOpts,
        runtime: &str,
        data_dir: &Path,
        log: PathBuf,
    ) -> Result<Broker, String> {
        let mut last = String::new();
        for _ in 0..3 {
            let addr = SocketAddr::from(([127, 0, 0, 1], conveyor_tests::free_port()));
            let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            let mut cmd = Command::new(&opts.conveyor);
            cmd.arg("serve")
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--data-dir")
                .arg(data_dir)
                .arg("--runtime")
                .arg(runtime);
            // The cleaning workload wants the cleaner to start at once.
            cmd.arg("--set").arg("log.cleaner.backoff.ms=1000");
            for kv in &opts.broker_settings {
                cmd.arg("--set").arg(kv);
            }
            cmd.stdin(Stdio::null()).stdout(out).stderr(err);
            let child = cmd
                .spawn()
                .map_err(|e| format!("spawn {}: {e}", opts.conveyor.display()))?;
            let mut broker = Broker {
                rss: Some(RssSampler::start(child.id())),
                child,
                addr,
                log: log.clone(),
            };
            let ready =
                conveyor_tests::wait_until_accepting(
                    addr,
                    Duration::from_secs(10),
                    || match broker.child.try_wait() {
                        Ok(None) => Ok(()),
                        Ok(Some(status)) => Err(format!("conveyor exited: {status}")),
                        Err(e) => Err(e.to_string()),
                    },
                );
            match ready {
                Ok(()) => return Ok(broker),
                Err(why) => {
                    last = format!("{why}\n{}", broker.log_text());
                    broker.kill();
                }
            }
        }
        Err(format!(
            "could not start conveyor --runtime {runtime}: {last}"
        ))
    }

    /// `None` while running, else how it ended.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(status.to_string()),
            Err(e) => Some(format!("try_wait: {e}")),
        }
    }

    fn log_text(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Peak resident set size (VmHWM) in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status_kib(&status, "VmHWM:")
    }

    /// The sampled RssAnon peak since the last call, KiB.
    fn anon_window_kib(&self) -> Option<u64> {
        self.rss.as_ref().map(RssSampler::take_window)
    }

    /// Sampled peaks over the broker's life: (RssAnon, RssFile), KiB.
    fn sampled_peaks_kib(&self) -> Option<(u64, u64)> {
        self.rss.as_ref().map(RssSampler::peaks)
    }

    /// SIGTERM, then SIGKILL if it has not exited within 30 s.
    fn stop(mut self) -> String {
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            self.kill();
            return "killed".into();
        };
        // SAFETY: kill(2) on our own child, not yet reaped, so the pid is
        // still ours; SIGTERM is a valid signal.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("exited: {status}");
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        "did not exit within 30 s of SIGTERM; killed".into()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

struct Table {
    rows: Vec<[String; 4]>,
}

impl Table {
    fn row(
        &mut self,
        workload: impl Into<String>,
        figure: String,
        baseline: String,
        ratio: String,
    ) {
        self.rows.push([workload.into(), figure, baseline, ratio]);
    }

    fn render(&self) -> String {
        let mut s = String::from("| workload | figure | baseline | ratio |\n|---|---|---|---|\n");
        for r in &self.rows {
            s.push_str(&format!("| {} | {} | {} | {} |\n", r[0], r[1], r[2], r[3]));
        }
        s
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ratio(figure: f64, baseline: f64) -> String {
    if baseline > 0.0 && figure.is_finite() {
        format!("{:.2}", figure / baseline)
    } else {
        "-".into()
    }
}

fn rec_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M records/s", r / 1e6)
    } else {
        format!("{:.0} records/s", r)
    }
}

/// The tighter of the baselines that apply: (value in MB/s, description).
fn tightest(candidates: &[(Option<f64>, String)]) -> Option<(f64, String)> {
    candidates
        .iter()
        .filter_map(|(v, d)| v.map(|v| (v, d.clone())))
        .min_by(|a, b| a.0.total_cmp(&b.0))
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
        let mut results: Vec<Result<Measured, String>> = Vec::new();
        let mut rss = None;
        let mut sampled = None;
        let mut exit = String::new();
        let mut cleaning = None;
        let mut cpu: Vec<Option<f64>> = Vec::new();
        match Broker::start(opts, rt, &data, log) {
            Err(e) => {
                eprintln!("== runtime {rt}: {e}");
                results = MATRIX.iter().map(|_| Err(e.clone())).collect();
            }
            Ok(mut broker) => {
                let target = Target::Broker(broker.addr.to_string());
                for w in MATRIX {
                    eprintln!("== conveyor --runtime {rt}: {}", w.name());
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
                    cpu.push(cpu_before.zip(cpu_after).map(|(a, b)| b - a));
                    if matches!(w, Workload::E2eWhileCleaning { compact: true, .. }) {
                        let passes = cleaner_passes(&broker.log_text());
                        eprintln!("    cleaner: {passes}");
                        cleaning = Some(passes);
                    }
                    if let Some(a) = broker.anon_window_kib() {
                        eprintln!("    broker RssAnon peak {}", mib(a));
                    }
                    results.push(m);
                }
                let died = broker.exited();
                rss = broker.peak_rss_kib();
                sampled = broker.sampled_peaks_kib();
                let log = broker.log.clone();
                exit = match died {
                    Some(status) => format!("exited by itself during the matrix: {status}"),
                    None => broker.stop(),
                };
                eprintln!("== conveyor --runtime {rt}: {exit}");
                let trouble = exit != "exited: exit status: 0"
                    || results.iter().any(|r| match r {
                        Err(_) => true,
                        Ok(Measured::Produce(p, c)) => {
                            p.failed > 0 || c.as_ref().is_some_and(|c| c.is_err())
                        }
                        Ok(Measured::E2e(e)) => e.failed > 0 || e.received < e.sent,
                    });
                if trouble {
                    // Keep the broker's log past the temporary directory.
                    let kept = std::env::temp_dir()
                        .join(format!("conveyor-bench-{rt}-{}.log", std::process::id()));
                    if fs::copy(&log, &kept).is_ok() {
                        eprintln!("== conveyor --runtime {rt}: log kept at {}", kept.display());
                        exit.push_str(&format!("; broker log kept at {}", kept.display()));
                    }
                }
            }
        }
        let _ = fs::remove_dir_all(&data);
        per_runtime.push((rt.clone(), results, rss, sampled, exit, cleaning, cpu));
    }

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
    for (rt, results, rss, sampled, exit, cleaning, cpu) in &per_runtime {
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
        if exit != "exited: exit status: 0" {
            t.row(
                format!("{rt}: broker exit"),
                one_line(exit),
                "-".into(),
                "-".into(),
            );
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

fn report_throughput(what: &str, t: &Result<Throughput, String>) {
    match t {
        Ok(t) => eprintln!("    {}", t.summary(what)),
        Err(e) => eprintln!("    {what}: ERROR: {e}"),
    }
}

fn throughput_figure(t: &Result<Throughput, String>) -> String {
    match t {
        Ok(t) => format!("{:.0} MB/s", t.mb_per_sec()),
        Err(e) => format!("error: {}", one_line(e)),
    }
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").replace('|', "/")
}

#[allow(clippy::too_many_arguments)]
fn add_rows(
    t: &mut Table,
    name: &str,
    w: Workload,
    m: &Result<Measured, String>,
    mock: Option<&Result<Measured, String>>,
    write_mb: Option<f64>,
    sendfile_mb: Option<f64>,
) {
    let m = match m {
        Ok(m) => m,
        Err(e) => {
            t.row(
                name,
                format!("error: {}", one_line(e)),
                "-".into(),
                "-".into(),
            );
            return;
        }
    };
    let mock = mock.and_then(|r| r.as_ref().ok());
    match (w, m) {
        (Workload::E2e { .. } | Workload::E2eWhileCleaning { .. }, Measured::E2e(e)) => {
            let base = match mock {
                Some(Measured::E2e(b)) => Some(b),
                _ => None,
            };
            // The cleaning row's baseline is the same fill with nothing
            // to clean, on the same runtime.
            let base_name = if matches!(w, Workload::E2eWhileCleaning { .. }) {
                "same fill, no cleaning"
            } else {
                "mock"
            };
            let lat = |h: &super::hist::Histogram| {
                format!(
                    "p50 {} / p99 {} / p99.9 {} ms",
                    ms(h.quantile(0.5) as f64),
                    ms(h.quantile(0.99) as f64),
                    ms(h.quantile(0.999) as f64)
                )
            };
            let mut lost = String::new();
            if e.failed > 0 || e.received < e.sent {
                lost = format!(
                    " ({} failed, {} of {} consumed)",
                    e.failed, e.received, e.sent
                );
            }
            t.row(
                format!("{name}: produce-to-ack latency"),
                format!("{}{lost}", lat(&e.ack_latency)),
                base.map_or("-".into(), |b| {
                    format!("{} ({base_name})", lat(&b.ack_latency))
                }),
                base.map_or("-".into(), |b| {
                    ratio(
                        e.ack_latency.quantile(0.99) as f64,
                        b.ack_latency.quantile(0.99) as f64,
                    ) + " (p99)"
                }),
            );
            t.row(
                format!("{name}: produce-to-consume latency"),
                lat(&e.e2e_latency),
                base.map_or("-".into(), |b| {
                    format!("{} ({base_name})", lat(&b.e2e_latency))
                }),
                base.map_or("-".into(), |b| {
                    ratio(
                        e.e2e_latency.quantile(0.99) as f64,
                        b.e2e_latency.quantile(0.99) as f64,
                    ) + " (p99)"
                }),
            );
        }
        (Workload::Recompress { .. }, Measured::Produce(p, _)) => {
            // The baseline is the same produce to a plain topic.
            let base = match mock {
                Some(Measured::Produce(b, _)) => Some(b),
                _ => None,
            };
            let figure = format!(
                "{} ({:.0} MB/s), p99 {} ms",
                rec_rate(p.records_per_sec()),
                p.mb_per_sec(),
                ms(p.latency.quantile(0.99) as f64)
            );
            match base {
                Some(b) => t.row(
                    name,
                    figure,
                    format!(
                        "{} ({:.0} MB/s) plain topic",
                        rec_rate(b.records_per_sec()),
                        b.mb_per_sec()
                    ),
                    ratio(p.mb_per_sec(), b.mb_per_sec()),
                ),
                None => t.row(name, figure, "-".into(), "-".into()),
            }
        }
        (_, Measured::Produce(p, c)) => {
            let (base_p, base_c) = match mock {
                Some(Measured::Produce(bp, bc)) => {
                    (Some(bp), bc.as_ref().and_then(|r| r.as_ref().ok()))
                }
                _ => (None, None),
            };
            let mut figure = format!(
                "{} ({:.0} MB/s), p99 {} ms",
                rec_rate(p.records_per_sec()),
                p.mb_per_sec(),
                ms(p.latency.quantile(0.99) as f64)
            );
            if w == Workload::SingleRecord {
                figure = format!(
                    "{:.0} requests/s, p99 {} ms",
                    p.records_per_sec(),
                    ms(p.latency.quantile(0.99) as f64)
                );
            }
            if p.failed > 0 {
                figure.push_str(&format!(
                    " ({} FAILED: {})",
                    p.failed,
                    one_line(p.first_error.as_deref().unwrap_or("?"))
                ));
            }
            // In MB/s so the client ceiling and the disk compare alike.
            let mut candidates = vec![(
                base_p.map(|b| b.mb_per_sec()),
                base_p.map_or(String::new(), |b| {
                    format!(
                        "{} ({:.0} MB/s) mock",
                        rec_rate(b.records_per_sec()),
                        b.mb_per_sec()
                    )
                }),
            )];
            if w != Workload::SingleRecord {
                candidates.push((
                    write_mb,
                    format!("{:.0} MB/s page-cache write", write_mb.unwrap_or(0.0)),
                ));
            }
            match tightest(&candidates) {
                Some((b, desc)) => t.row(name, figure, desc, ratio(p.mb_per_sec(), b)),
                None => t.row(name, figure, "-".into(), "-".into()),
            }
            if let Some(c) = c {
                let cname = name.replacen(": produce", ": consume (page cache)", 1);
                match c {
                    Err(e) => t.row(
                        cname,
                        format!("error: {}", one_line(e)),
                        "-".into(),
                        "-".into(),
                    ),
                    Ok(c) => {
                        let figure = format!(
                            "{} ({:.0} MB/s), first record {}",
                            rec_rate(c.records_per_sec()),
                            c.mb_per_sec(),
                            c.first_record
                                .map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
                        );
                        let candidates = [
                            (
                                base_c.map(|b| b.mb_per_sec()),
                                base_c.map_or(String::new(), |b| {
                                    format!(
                                        "{} ({:.0} MB/s) mock",
                                        rec_rate(b.records_per_sec()),
                                        b.mb_per_sec()
                                    )
                                }),
                            ),
                            (
                                sendfile_mb,
                                format!("{:.0} MB/s sendfile", sendfile_mb.unwrap_or(0.0)),
                            ),
                        ];
                        match tightest(&candidates) {
                            Some((b, desc)) => t.row(cname, figure, desc, ratio(c.mb_per_sec(), b)),
                            None => t.row(cname, figure, "-".into(), "-".into()),
                        }
                    }
                }
            }
        }
        _ => t.row(
            name,
            "error: mismatched result".into(),
            "-".into(),
            "-".into(),
        ),
    }
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
