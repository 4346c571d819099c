//! The broker's memory while a benchmark runs: its anonymous resident
//! memory sampled from `/proc/<pid>/status`.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How often the broker's `/proc/<pid>/status` is sampled for RssAnon.
pub(super) const RSS_SAMPLE: Duration = Duration::from_millis(100);

/// Peaks of the broker's anonymous resident memory (`RssAnon`: its heap,
/// stacks and other private memory, without the page cache its mapped
/// segment files bring in, which `RssFile` counts and `VmHWM` includes),
/// sampled every [`RSS_SAMPLE`] by a thread.
#[derive(Default)]
pub(super) struct RssPeaks {
    /// Over the broker's whole life, KiB.
    anon: AtomicU64,
    /// Since the last [`RssSampler::take_window`], KiB.
    anon_window: AtomicU64,
    /// `RssFile` over the whole life, KiB.
    file: AtomicU64,
    stop: AtomicBool,
}

pub(super) struct RssSampler {
    peaks: Arc<RssPeaks>,
    thread: Option<JoinHandle<()>>,
}

/// CPU seconds (user and system) process `pid` has used, from
/// `/proc/<pid>/stat`.
pub(super) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: utime and stime are the 12th and 13th of those.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf with a valid name has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
}

/// A `kB` field of `/proc/<pid>/status`.
pub(super) fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl RssSampler {
    pub(super) fn start(pid: u32) -> RssSampler {
        let peaks = Arc::new(RssPeaks::default());
        let p = Arc::clone(&peaks);
        let thread = thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                let path = format!("/proc/{pid}/status");
                while !p.stop.load(Ordering::Relaxed) {
                    let Ok(status) = fs::read_to_string(&path) else {
                        break;
                    };
                    if let Some(a) = status_kib(&status, "RssAnon:") {
                        p.anon.fetch_max(a, Ordering::Relaxed);
                        p.anon_window.fetch_max(a, Ordering::Relaxed);
                    }
                    if let Some(f) = status_kib(&status, "RssFile:") {
                        p.file.fetch_max(f, Ordering::Relaxed);
                    }
                    thread::sleep(RSS_SAMPLE);
                }
            })
            .ok();
        RssSampler { peaks, thread }
    }

    /// The RssAnon peak since the last call, KiB, and start a new window.
    pub(super) fn take_window(&self) -> u64 {
        self.peaks.anon_window.swap(0, Ordering::Relaxed)
    }

    /// Peak RssAnon and RssFile over the whole life, KiB.
    pub(super) fn peaks(&self) -> (u64, u64) {
        (
            self.peaks.anon.load(Ordering::Relaxed),
            self.peaks.file.load(Ordering::Relaxed),
        )
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.peaks.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
