//! A broker the benchmark runs as a child process — `conveyor serve` on a
//! runtime, or Apache Kafka ([`super::kafka`]) — on 127.0.0.1, with its
//! output in a log file and its memory sampled while it runs.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::bench::BenchOpts;
use super::rss::{RssSampler, status_kib};

/// A broker child process.
pub(crate) struct Broker {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) log: PathBuf,
    rss: Option<RssSampler>,
}

impl Broker {
    /// Start `cmd` (its output to `log`) and wait up to `ready` for it to
    /// accept connections on `addr`; `what` names it in errors.
    pub(crate) fn spawn(
        mut cmd: Command,
        addr: SocketAddr,
        log: &Path,
        ready: Duration,
        what: &str,
    ) -> Result<Broker, String> {
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().map_err(|e| format!("spawn {what}: {e}"))?;
        let mut broker = Broker {
            rss: Some(RssSampler::start(child.id())),
            child,
            addr,
            log: log.to_owned(),
        };
        let up =
            conveyor_tests::wait_until_accepting(addr, ready, || match broker.child.try_wait() {
                Ok(None) => Ok(()),
                Ok(Some(status)) => Err(format!("{what} exited: {status}")),
                Err(e) => Err(e.to_string()),
            });
        match up {
            Ok(()) => Ok(broker),
            Err(why) => {
                let text = format!("{why}\n{}", broker.log_text());
                broker.kill();
                Err(text)
            }
        }
    }

    /// `conveyor serve --runtime <runtime>` with the bench's settings,
    /// on a free port (three tries: a port can be taken meanwhile).
    pub(crate) fn conveyor(
        opts: &BenchOpts,
        runtime: &str,
        data_dir: &Path,
        log: PathBuf,
    ) -> Result<Broker, String> {
        let mut last = String::new();
        for _ in 0..3 {
            let addr = SocketAddr::from(([127, 0, 0, 1], conveyor_tests::free_port()));
            let mut cmd = serve_command(&opts.conveyor, addr, data_dir, runtime);
            // The cleaning workload wants the cleaner to start at once.
            cmd.arg("--set").arg("log.cleaner.backoff.ms=1000");
            for kv in &opts.broker_settings {
                cmd.arg("--set").arg(kv);
            }
            let what = format!("conveyor --runtime {runtime}");
            match Broker::spawn(cmd, addr, &log, Duration::from_secs(10), &what) {
                Ok(b) => return Ok(b),
                Err(why) => last = why,
            }
        }
        Err(format!(
            "could not start conveyor --runtime {runtime}: {last}"
        ))
    }

    /// `None` while running, else how it ended.
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(status.to_string()),
            Err(e) => Some(format!("try_wait: {e}")),
        }
    }

    /// The last 20 lines of its log.
    pub(crate) fn log_text(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status_kib(&status, "VmHWM:")
    }

    /// The sampled RssAnon peak since the last call, KiB.
    pub(crate) fn anon_window_kib(&self) -> Option<u64> {
        self.rss.as_ref().map(RssSampler::take_window)
    }

    /// Sampled peaks over the broker's life: (RssAnon, RssFile), KiB.
    pub(crate) fn sampled_peaks_kib(&self) -> Option<(u64, u64)> {
        self.rss.as_ref().map(RssSampler::peaks)
    }

    /// SIGTERM, then SIGKILL if it has not exited within 30 s.
    pub(crate) fn stop(mut self) -> String {
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

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `conveyor serve` on `runtime`, listening on `addr` with its data in
/// `data_dir`; the caller adds its settings.
pub(crate) fn serve_command(
    conveyor: &Path,
    addr: SocketAddr,
    data_dir: &Path,
    runtime: &str,
) -> Command {
    let mut cmd = Command::new(conveyor);
    cmd.arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--runtime")
        .arg(runtime);
    cmd
}
