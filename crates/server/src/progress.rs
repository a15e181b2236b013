//! Progress of long work (recovery, import), for people watching a terminal: a bar over the
//! known amount of work and the samples handled so far. Silent when stderr is not a
//! terminal, so logs and CI output stay clean.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Width of the bar in characters.
const BAR_WIDTH: usize = 30;

pub struct Progress {
    label: &'static str,
    /// Units of work in all (files, bytes, hosts); 0 when unknown.
    total: u64,
    done: AtomicU64,
    samples: AtomicU64,
    shown_at: std::sync::Mutex<Instant>,
    started: Instant,
    terminal: bool,
}

impl Progress {
    pub fn new(label: &'static str, total: u64) -> Self {
        Self {
            label,
            total,
            done: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            shown_at: std::sync::Mutex::new(Instant::now()),
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Records `units` of work done and `samples` handled, redrawing at most 5 times a second.
    pub fn advance(&self, units: u64, samples: u64) {
        let done = self.done.fetch_add(units, Ordering::Relaxed) + units;
        let count = self.samples.fetch_add(samples, Ordering::Relaxed) + samples;
        if !self.terminal {
            return;
        }
        if let Ok(mut shown) = self.shown_at.try_lock()
            && shown.elapsed() > Duration::from_millis(200)
        {
            *shown = Instant::now();
            eprint!("\r{}", self.line(done, count));
        }
    }

    fn line(&self, done: u64, samples: u64) -> String {
        let rate = samples as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let counts = format!(
            "{:.1} M samples ({:.1} M/s)",
            samples as f64 / 1e6,
            rate / 1e6
        );
        if self.total == 0 {
            return format!("{}: {counts}   ", self.label);
        }
        let fraction = (done as f64 / self.total as f64).clamp(0.0, 1.0);
        let filled = (fraction * BAR_WIDTH as f64) as usize;
        format!(
            "{} [{}{}] {:>3.0}%  {counts}   ",
            self.label,
            "#".repeat(filled),
            ".".repeat(BAR_WIDTH - filled),
            fraction * 100.0
        )
    }

    pub fn finish(&self) {
        if self.terminal && self.samples.load(Ordering::Relaxed) > 0 {
            let done = self.done.load(Ordering::Relaxed).max(self.total);
            eprintln!(
                "\r{}",
                self.line(done, self.samples.load(Ordering::Relaxed))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_work_done() {
        let progress = Progress::new("loading", 4);
        assert!(
            progress
                .line(0, 0)
                .starts_with("loading [..............................]   0%")
        );
        let half = progress.line(2, 1_500_000);
        assert!(
            half.starts_with("loading [###############...............]  50%  1.5 M samples"),
            "{half}"
        );
        assert!(
            Progress::new("replaying", 0)
                .line(0, 0)
                .starts_with("replaying: 0.0 M samples")
        );
    }
}
