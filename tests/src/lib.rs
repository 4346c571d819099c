//! Helpers shared by Conveyor's end-to-end tests.
//!
//! Everything here binds loopback addresses only (127.0.0.1, and a
//! cluster's own address in 127.0.0.0/8), owns what it starts (temporary
//! directories are removed and child processes killed on drop) and bounds
//! every wait in time. A helper that gives up panics with what it saw, so a
//! failing test says why.
//!
//! - [`Runtime`]: every runtime Conveyor runs on; [`each_runtime!`] turns
//!   one test body into one `#[test]` per runtime, named after it.
//! - [`TestBroker`]: an in-process broker on a chosen runtime on
//!   127.0.0.1:0 in a temporary directory, restartable on the same directory.
//! - [`ChildBroker`]: the `conveyor` binary as a child process
//!   (`--runtime`), for SIGKILL and SIGTERM tests.
//! - [`client`]: `rdkafka` configuration builders, a producer that records
//!   every delivery report, consumers and a tiny `block_on` for the admin API.
//! - [`raw`]: a hand-written Kafka request encoder and response reader for
//!   malformed-input tests, independent of the broker's own codec.
//! - [`external`]: running another program (a client harness) to an `OK`.
//! - [`python`]: the Python clients (kafka-python, confluent-kafka) and the
//!   runner for the scripts in `tests/python/`.

use std::fs::{self, File};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use conveyor_io_std::{Options, Running, Stats};
use tempfile::TempDir;

pub mod client;
pub mod external;
pub mod groups;
pub mod history;
pub mod netns;
pub mod python;
pub mod raw;

/// A runtime to run the broker on (the server's own selection): the
/// end-to-end suite runs on each.
pub use conveyor_server::Runtime;

/// One `#[test]` per [`Runtime`] from one body: `each_runtime!(fn name(rt)
/// { .. })` makes a module `name` with tests `threads`, `mio`, `tokio` and
/// `smol`, so a failure names its runtime. Attributes before `fn` (doc
/// comments, `#[ignore]`) go on every test.
#[macro_export]
macro_rules! each_runtime {
    ($(#[$meta:meta])* fn $name:ident($rt:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($rt: $crate::Runtime) $body

            $(#[$meta])*
            #[test]
            fn threads() {
                body($crate::Runtime::Threads)
            }

            $(#[$meta])*
            #[test]
            fn mio() {
                body($crate::Runtime::Mio)
            }

            $(#[$meta])*
            #[test]
            fn tokio() {
                body($crate::Runtime::Tokio)
            }

            $(#[$meta])*
            #[test]
            fn smol() {
                body($crate::Runtime::Smol)
            }
        }
    };
}

/// How long any single "wait until ready" step may take.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a child broker gets to exit after SIGTERM.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings every test broker starts with unless a test overrides them:
/// auto-created topics get three partitions.
pub const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("num.partitions", "3"),
    ("auto.create.topics.enable", "true"),
    // Every test broker serves its metrics, on a port of its own.
    ("metrics.listen", "127.0.0.1:0"),
];

fn merged_settings(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = DEFAULT_SETTINGS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in extra {
        all.retain(|(old, _)| old != k);
        all.push((k.to_string(), v.to_string()));
    }
    all
}

fn broker_config(settings: &[(String, String)]) -> conveyor_core::Config {
    let mut config = conveyor_core::Config::default();
    for (k, v) in settings {
        if let Err(e) = config.set(k, v) {
            panic!("test broker setting {k}={v} rejected: {e}");
        }
    }
    config
}

/// A broker running in this process on 127.0.0.1 (a fresh port each start)
/// over a temporary data directory that outlives restarts.
pub struct TestBroker {
    runtime: Runtime,
    running: Option<Running>,
    settings: Vec<(String, String)>,
    // Declared last so it is dropped (removed) after the broker stopped.
    dir: TempDir,
}

// By hand, so `Running` need not implement Debug.
impl std::fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBroker")
            .field("runtime", &self.runtime)
            .field("addr", &self.running.as_ref().map(Running::local_addr))
            .field("data_dir", &self.data_dir())
            .field("settings", &self.settings)
            .finish()
    }
}

impl TestBroker {
    /// Starts a broker on `runtime` with [`DEFAULT_SETTINGS`].
    pub fn start(runtime: Runtime) -> TestBroker {
        TestBroker::start_with(runtime, &[])
    }

    /// Starts a broker on `runtime` with [`DEFAULT_SETTINGS`] overridden by
    /// `settings` (Kafka names, e.g. `("log.segment.bytes", "1048576")`).
    pub fn start_with(runtime: Runtime, settings: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::Builder::new()
            .prefix("conveyor-test-")
            .tempdir()
            .expect("create a temporary directory");
        let mut broker = TestBroker {
            runtime,
            running: None,
            settings: merged_settings(settings),
            dir,
        };
        broker.start_again();
        broker
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn running(&self) -> &Running {
        self.running
            .as_ref()
            .expect("the test broker is stopped; call start_again first")
    }

    /// The address the broker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.running().local_addr()
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr().to_string()
    }

    /// The runtime's counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.running().stats()
    }

    /// Where the broker serves its metrics.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.running()
            .metrics_addr()
            .expect("test brokers serve metrics (metrics.listen)")
    }

    /// Clean shutdown; the data directory stays.
    pub fn stop(&mut self) {
        let running = self
            .running
            .take()
            .expect("the test broker is already stopped");
        running
            .shutdown()
            .expect("clean shutdown of the in-process broker");
    }

    /// Starts a stopped broker again on the same data directory (the port
    /// changes, so make new clients).
    pub fn start_again(&mut self) {
        assert!(self.running.is_none(), "the test broker is already running");
        let data_dir = self.data_dir();
        fs::create_dir_all(&data_dir).expect("create the data directory");
        let opts = Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            broker: broker_config(&self.settings),
        };
        let running = self
            .runtime
            .start(opts)
            .unwrap_or_else(|e| panic!("start the in-process broker on {:?}: {e}", self.runtime));
        let addr = running.local_addr();
        assert!(
            addr.ip().is_loopback() && addr.port() != 0,
            "the broker reports local_addr {addr}, expected 127.0.0.1 and the bound port"
        );
        self.running = Some(running);
    }

    /// Clean shutdown then start again on the same data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            // Not a panic on drop: a test that is already failing should
            // report its own failure, not this one.
            if let Err(e) = running.shutdown() {
                eprintln!("test broker: shutdown on drop failed: {e}");
            }
        }
    }
}

/// Picks a free 127.0.0.1 port by binding port 0 and letting go. Another
/// process can take it in between; [`ChildBroker::spawn`] retries for that.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// `n` free loopback addresses for a cluster's brokers, and the
/// `controller.quorum.voters` value naming them as nodes `0..n`.
///
/// Every port is held until all are picked, so no two brokers of one cluster
/// are given the same port (Linux hands a just-released port straight back).
/// Each call takes its own address in 127.0.0.0/8, away from 127.0.0.1, so a
/// port another test picks at the same moment, or takes while a killed broker
/// of this cluster is down, can never be one of this cluster's.
pub fn loopback_voters(n: usize) -> (Vec<SocketAddr>, String) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CLUSTERS: AtomicU32 = AtomicU32::new(0);
    let call = CLUSTERS.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let ip = [
        127,
        1 + (pid % 250) as u8,
        (pid / 250 % 256) as u8,
        1 + (call % 250) as u8,
    ];
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind(SocketAddr::from((ip, 0))).expect("bind a loopback address"))
        .collect();
    let addrs: Vec<SocketAddr> = held
        .iter()
        .map(|l| l.local_addr().expect("local_addr"))
        .collect();
    drop(held);
    let voters = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{i}@{a}"))
        .collect::<Vec<_>>()
        .join(",");
    (addrs, voters)
}

/// Waits until something accepts TCP connections on `addr`, for at most
/// `timeout`. `still_alive` is asked between attempts so a dead server fails
/// fast; it returns a reason to stop waiting.
pub fn wait_until_accepting(
    addr: SocketAddr,
    timeout: Duration,
    mut still_alive: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last_error = String::from("no attempt made");
    while Instant::now() < deadline {
        still_alive()?;
        match TcpStream::connect_timeout(&addr, Duration::from_millis(250)) {
            Ok(_) => return Ok(()),
            Err(e) => last_error = e.to_string(),
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "nothing accepted on {addr} within {timeout:?} (last error: {last_error})"
    ))
}

/// The `conveyor` binary built beside the running test executable:
/// `<target>/<profile>/conveyor`, the test living in `<target>/<profile>/deps/`.
/// `CONVEYOR_BIN` overrides it.
pub fn conveyor_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CONVEYOR_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps/");
    let bin = profile_dir.join("conveyor");
    assert!(
        bin.is_file(),
        "the conveyor binary is not at {}; build it first with `cargo build -p conveyor-server` \
         (with --release when the tests run in release), or set CONVEYOR_BIN",
        bin.display()
    );
    bin
}

/// The `conveyor` binary running as a child process on 127.0.0.1. Killed
/// (SIGKILL) and reaped on drop if still running.
#[derive(Debug)]
pub struct ChildBroker {
    child: Option<Child>,
    addr: SocketAddr,
    log_path: PathBuf,
    // Holds the child's stdout/stderr log; removed on drop.
    _log_dir: TempDir,
}

impl ChildBroker {
    /// Starts `conveyor serve --runtime <runtime>` on a free port over
    /// `data_dir` with `--set k=v` for each setting, and waits (bounded)
    /// until it accepts connections.
    pub fn spawn(runtime: Runtime, data_dir: &Path, settings: &[(&str, &str)]) -> ChildBroker {
        let bin = conveyor_bin();
        let mut failures = Vec::new();
        // A port picked by `free_port` can be taken before the child binds
        // it; three attempts make that race irrelevant in practice.
        for _attempt in 0..3 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            match ChildBroker::try_spawn(&bin, (runtime, None), addr, data_dir, settings) {
                Ok(child) => return child,
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "could not start {} after 3 attempts:\n{}",
            bin.display(),
            failures.join("\n---\n")
        );
    }

    /// `conveyor serve` listening on `addr`, which the caller chose (a
    /// cluster's brokers name each other's addresses before they start).
    pub fn spawn_on(
        runtime: Runtime,
        addr: SocketAddr,
        data_dir: &Path,
        settings: &[(&str, &str)],
    ) -> ChildBroker {
        let bin = conveyor_bin();
        ChildBroker::try_spawn(&bin, (runtime, None), addr, data_dir, settings)
            .unwrap_or_else(|why| panic!("could not start {} on {addr}: {why}", bin.display()))
    }

    /// [`ChildBroker::spawn_on`] inside network namespace `netns` (see
    /// [`netns::Lan`]), on an address of that namespace.
    pub fn spawn_in(
        netns: &str,
        runtime: Runtime,
        addr: SocketAddr,
        data_dir: &Path,
        settings: &[(&str, &str)],
    ) -> ChildBroker {
        let bin = conveyor_bin();
        ChildBroker::try_spawn(&bin, (runtime, Some(netns)), addr, data_dir, settings)
            .unwrap_or_else(|why| {
                panic!(
                    "could not start {} on {addr} in {netns}: {why}",
                    bin.display()
                )
            })
    }

    fn try_spawn(
        bin: &Path,
        (runtime, netns): (Runtime, Option<&str>),
        addr: SocketAddr,
        data_dir: &Path,
        settings: &[(&str, &str)],
    ) -> Result<Self, String> {
        let log_dir = tempfile::Builder::new()
            .prefix("conveyor-child-log-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let log_path = log_dir.path().join("conveyor.log");
        let log = File::create(&log_path).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        // `ip netns exec` enters the namespace and execs the broker, so the
        // child is the broker itself.
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("serve")
            .arg("--runtime")
            .arg(runtime.name())
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir);
        for (k, v) in merged_settings(settings) {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut broker = ChildBroker {
            child: Some(child),
            addr,
            log_path,
            _log_dir: log_dir,
        };
        let ready = wait_until_accepting(addr, READY_TIMEOUT, || {
            match broker.child.as_mut().map(Child::try_wait) {
                Some(Ok(None)) => Ok(()),
                Some(Ok(Some(status))) => Err(format!("conveyor exited early: {status}")),
                Some(Err(e)) => Err(format!("try_wait: {e}")),
                None => Err("no child".into()),
            }
        });
        match ready {
            Ok(()) => Ok(broker),
            // Dropping `broker` kills and reaps the child.
            Err(why) => Err(format!("{why}\nlog:\n{}", broker.log())),
        }
    }

    /// The address the child listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The child's stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child already reaped").id()
    }

    /// SIGKILL and reap: an unclean stop, as a crash or power cut.
    pub fn kill9(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("child already reaped");
        child.kill().expect("SIGKILL the broker");
        child.wait().expect("reap the broker")
    }

    /// SIGTERM (clean shutdown) and wait, bounded by [`EXIT_TIMEOUT`]. Panics
    /// (after SIGKILL) if the child does not exit in time.
    pub fn terminate(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("child already reaped");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet (so
        // it cannot have been reused) and a valid signal number.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM): {}", io::Error::last_os_error());
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            match child.try_wait().expect("try_wait") {
                Some(status) => return status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "conveyor did not exit within {EXIT_TIMEOUT:?} of SIGTERM\nlog:\n{}",
                        self.log()
                    );
                }
                None => thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for ChildBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `.log` segment files of `<data_dir>/<topic>-<partition>/`, sorted by
/// base offset (the 20-digit names sort as numbers).
pub fn segment_files(data_dir: &Path, topic: &str, partition: i32) -> Vec<PathBuf> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    let mut logs: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs
}

/// A unique topic name for one test run: `<prefix>-<pid>-<nanos>`.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The record every producer test sends at `index`: the key is the index in
/// decimal, the value 16..=271 deterministic bytes, and one or two headers
/// (sometimes one with a null value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    /// The record key.
    pub key: Vec<u8>,
    /// The record value.
    pub value: Vec<u8>,
    /// Headers in order; `None` is a null header value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl TestRecord {
    /// The record for `index`, always the same bytes.
    pub fn new(index: usize) -> TestRecord {
        let mut state = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            // xorshift64: cheap, deterministic, not compressible to nothing.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let len = 16 + (next() % 256) as usize;
        // Half random bytes, half a repeating pattern, so every codec has
        // something to compress and something it cannot.
        let value: Vec<u8> = (0..len)
            .map(|i| {
                if i % 2 == 0 {
                    next() as u8
                } else {
                    (index % 251) as u8
                }
            })
            .collect();
        let mut headers = vec![("idx".to_string(), Some(index.to_be_bytes().to_vec()))];
        if index % 7 == 0 {
            headers.push(("nil".to_string(), None));
        } else if index % 2 == 0 {
            headers.push(("even".to_string(), Some(b"yes".to_vec())));
        }
        TestRecord {
            key: index.to_string().into_bytes(),
            value,
            headers,
        }
    }

    /// The index a key was made from.
    pub fn index_of(key: &[u8]) -> Option<usize> {
        std::str::from_utf8(key).ok()?.parse().ok()
    }
}

/// Where one RecordBatch sits in a `.log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOnDisk {
    /// Byte position of the batch in the file.
    pub pos: usize,
    /// Total bytes (12-byte prefix plus batchLength).
    pub len: usize,
    /// baseOffset.
    pub base_offset: i64,
    /// lastOffsetDelta + 1.
    pub records: i64,
}

/// Walks the RecordBatches of a segment's `.log` bytes by their length
/// fields, stopping at the first one that does not fit. Reads Kafka's
/// on-disk format directly so corruption tests can aim at a batch.
pub fn batches_in(log: &[u8]) -> Vec<BatchOnDisk> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(header) = log.get(pos..pos + 61) {
        let base_offset = i64::from_be_bytes(header[0..8].try_into().expect("8 bytes"));
        let length = i32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
        let last_delta = i32::from_be_bytes(header[23..27].try_into().expect("4 bytes"));
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        let len = 12 + length;
        if pos + len > log.len() || len < 61 {
            break;
        }
        out.push(BatchOnDisk {
            pos,
            len,
            base_offset,
            records: i64::from(last_delta) + 1,
        });
        pos += len;
    }
    out
}
