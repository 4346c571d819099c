//! Threads beside the segment writer that take commands off its queue:
//! each command handed over runs on one of them and is answered from there,
//! so nothing queued behind it waits for it. The segment writer hands
//! `SwapCleaned` (renames, deletions, directory fsyncs) to one swap worker
//! and the cleaner's `Compute` jobs to `log.cleaner.threads` workers.
//!
//! A pool may run at a lower CPU priority (a higher nice value) than the
//! threads that serve requests: the cleaner's jobs are background work,
//! and on a machine with few cores they would otherwise take turns with the
//! broker's thread and delay answers.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use conveyor_core::{Command, Done, IoError};

/// A pool of threads running handed-over commands. Dropping it lets them
/// finish what was handed over, then joins them.
#[derive(Debug)]
pub(crate) struct Workers {
    what: &'static str,
    tx: Option<Sender<Command>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// `n` threads named `conveyor-<what>-<i>`, each running `run` on the
    /// commands handed over and reporting its answer to `report`, at nice
    /// value `nice` (0: the process's own).
    pub(crate) fn start(
        what: &'static str,
        n: usize,
        nice: i32,
        run: impl Fn(Command) -> Done + Clone + Send + 'static,
        report: impl FnMut(Vec<Done>) + Clone + Send + 'static,
    ) -> io::Result<Workers> {
        let (tx, rx) = mpsc::channel::<Command>();
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Workers {
            what,
            tx: Some(tx),
            threads: Vec::new(),
        };
        for i in 0..n.max(1) {
            let (rx, run, mut report) = (Arc::clone(&rx), run.clone(), report.clone());
            // On an error, dropping `workers` stops the threads started.
            let thread = crate::spawn(&format!("conveyor-{what}-{i}"), move || {
                lower_priority(what, nice);
                while let Some(cmd) = next(&rx) {
                    report(vec![run(cmd)]);
                }
            })?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// Hand `cmd` over; `Some` answers it with an error at once when the
    /// workers are gone.
    pub(crate) fn hand(&self, cmd: Command) -> Option<Done> {
        let io = cmd.io();
        match self.tx.as_ref().map(|tx| tx.send(cmd)) {
            Some(Ok(())) => None,
            _ => Some(Done {
                io,
                result: Err(IoError::from(io::Error::other(format!(
                    "the {} workers are gone",
                    self.what
                )))),
            }),
        }
    }
}

/// Give the calling thread nice value `nice` (on Linux a thread's own:
/// `setpriority` on its thread id). Raising it needs no privilege; where it
/// fails the thread runs at the normal priority.
fn lower_priority(what: &str, nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        tracing::debug!(what, error = %e, "worker keeps the normal priority");
    }
}

/// The next command for a worker; `None` once the pool is dropped and its
/// queue is empty.
fn next(rx: &Mutex<Receiver<Command>>) -> Option<Command> {
    // A worker that panicked holding the lock leaves the queue intact.
    let rx = rx.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    rx.recv().ok()
}

impl Drop for Workers {
    fn drop(&mut self) {
        drop(self.tx.take());
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!(what = self.what, "a worker panicked");
            }
        }
    }
}
