//! Progress of a long `produce` or `consume -n` on a terminal: a line on
//! stderr that redraws a few times a second. It draws nothing when stderr
//! is not a terminal, so piped and scripted runs stay quiet, and it is
//! cleared when the command ends, leaving only the command's own output.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the line is redrawn at most.
const REDRAWS_PER_SECOND: u8 = 8;

/// Records counted so far, as a bar towards `total` when it is known (a
/// count of records to read) or as a running count (lines from stdin).
pub struct Progress(ProgressBar);

impl Progress {
    /// `what` names the records (`produced`, `consumed`).
    pub fn new(what: &str, total: Option<u64>) -> Progress {
        let target = ProgressDrawTarget::stderr_with_hz(REDRAWS_PER_SECOND);
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), target).with_style(
                ProgressStyle::with_template(&format!(
                    "{{bar:30}} {{pos}}/{{len}} records {what}, {{elapsed}}, {{eta}} left"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::with_draw_target(None, target).with_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} {{pos}} records {what}, {{elapsed}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress(bar)
    }

    /// Run `f` (a write to the terminal) with the line cleared, so the
    /// output does not mix with it; redrawn after.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.suspend(f)
    }

    /// One more record.
    pub fn inc(&self) {
        self.0.inc(1);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
