//! Progress of long work, for people watching a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A count of samples shown on a terminal while long work runs (recovery, import); silent
/// when stderr is not a terminal, so logs and CI output stay clean.
pub struct Progress {
    label: &'static str,
    count: AtomicU64,
    shown_at: std::sync::Mutex<Instant>,
    started: Instant,
    terminal: bool,
}

impl Progress {
    pub fn new(label: &'static str) -> Self {
        Self {
            label,
            count: AtomicU64::new(0),
            shown_at: std::sync::Mutex::new(Instant::now()),
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn add(&self, samples: u64) {
        let count = self.count.fetch_add(samples, Ordering::Relaxed) + samples;
        if !self.terminal {
            return;
        }
        if let Ok(mut shown) = self.shown_at.try_lock()
            && shown.elapsed() > Duration::from_millis(200)
        {
            *shown = Instant::now();
            let rate = count as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\r{}: {count} samples ({:.1} M/s)   ",
                self.label,
                rate / 1e6
            );
        }
    }

    pub fn finish(&self) {
        if self.terminal && self.count.load(Ordering::Relaxed) > 0 {
            eprintln!();
        }
    }
}
