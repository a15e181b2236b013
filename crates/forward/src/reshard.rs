//! How many shards an endpoint needs: Prometheus's rule (`calculateDesiredShards`), fed from
//! the log instead of an in-memory queue.
//!
//! Every [`RESHARD_INTERVAL`] the rates of samples read, samples delivered and time spent
//! delivering are smoothed (EWMA, weight 0.2). Shards needed = time per sample × (inflow +
//! 5 % of the backlog), so a backlog is worked off in about 20 s if the receiver allows it.
//! Hysteresis: no change within ±30 % of the current count, never fewer while more than
//! 10 s behind, never from 3 or fewer down by exactly one (Prometheus #9207: 3 → 2 is a 33 %
//! change and flapped), and no change while sends are not completing (retrying). The count is
//! kept between `min-shards` and `max-shards`.

use std::time::Duration;

pub const RESHARD_INTERVAL: Duration = Duration::from_secs(10);

const EWMA_WEIGHT: f64 = 0.2;
const TOLERANCE: f64 = 0.3;
const BACKLOG_CATCH_UP: f64 = 0.05;
/// Behind by more than this many seconds of inflow: do not shrink.
const BEHIND_S: f64 = 10.0;

#[derive(Debug, Default, Clone, Copy)]
struct Ewma {
    rate: Option<f64>,
}

impl Ewma {
    fn update(&mut self, instant: f64) -> f64 {
        let rate = match self.rate {
            // The first non-zero interval sets the rate, as Prometheus does.
            None if instant == 0.0 => 0.0,
            None => instant,
            Some(rate) => rate + EWMA_WEIGHT * (instant - rate),
        };
        if rate != 0.0 || self.rate.is_some() {
            self.rate = Some(rate);
        }
        rate
    }
}

/// What happened over one interval.
#[derive(Debug, Default, Clone, Copy)]
pub struct Interval {
    pub samples_in: u64,
    pub samples_out: u64,
    pub send_seconds: f64,
    /// Samples in the log not yet delivered (estimated from its bytes).
    pub pending: f64,
    /// A delivery completed during the interval.
    pub delivered: bool,
}

#[derive(Debug)]
pub struct Controller {
    min: usize,
    max: usize,
    samples_in: Ewma,
    samples_out: Ewma,
    send_seconds: Ewma,
    /// The last computed need, before rounding (for the `shards_desired` gauge).
    pub desired: f64,
}

impl Controller {
    pub fn new(min: usize, max: usize) -> Self {
        Self {
            min,
            max,
            samples_in: Ewma::default(),
            samples_out: Ewma::default(),
            send_seconds: Ewma::default(),
            desired: min as f64,
        }
    }

    /// Feeds one interval; returns a new shard count when the endpoint should reshard.
    pub fn decide(&mut self, current: usize, interval: Interval) -> Option<usize> {
        let seconds = RESHARD_INTERVAL.as_secs_f64();
        let in_rate = self.samples_in.update(interval.samples_in as f64 / seconds);
        let out_rate = self
            .samples_out
            .update(interval.samples_out as f64 / seconds);
        let busy = self.send_seconds.update(interval.send_seconds / seconds);
        if out_rate <= 0.0 || !interval.delivered {
            return None;
        }
        let time_per_sample = busy / out_rate;
        self.desired = time_per_sample * (in_rate + BACKLOG_CATCH_UP * interval.pending);
        let desired = (self.desired.ceil() as usize).clamp(self.min, self.max);
        let n = current as f64;
        if desired == current
            || (n * (1.0 - TOLERANCE)..=n * (1.0 + TOLERANCE)).contains(&self.desired)
        {
            return None;
        }
        let behind = in_rate > 0.0 && interval.pending / in_rate > BEHIND_S;
        if desired < current && (behind || (current <= 3 && current - desired == 1)) {
            return None;
        }
        Some(desired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(samples: u64, send_seconds: f64, pending: f64) -> Interval {
        Interval {
            samples_in: samples,
            samples_out: samples,
            send_seconds,
            pending,
            delivered: true,
        }
    }

    #[test]
    fn a_slow_receiver_gets_more_shards_and_a_fast_one_fewer() {
        let mut controller = Controller::new(1, 50);
        // 10 k samples/s, each request keeps a shard busy: 40 shard-seconds per 10 s.
        assert_eq!(controller.decide(1, busy(100_000, 40.0, 0.0)), Some(4));
        // Now quick: 2 shard-seconds per 10 s → 1 shard, but the EWMA comes down slowly.
        let mut shards = 4;
        for _ in 0..30 {
            if let Some(n) = controller.decide(shards, busy(100_000, 2.0, 0.0)) {
                shards = n;
            }
        }
        assert_eq!(shards, 1);
    }

    #[test]
    fn a_backlog_adds_shards_and_holds_them() {
        let mut controller = Controller::new(1, 10);
        assert_eq!(controller.decide(2, busy(10_000, 10.0, 0.0)), None);
        // 1 M samples behind: 5 % of it per second on top of the inflow.
        assert_eq!(
            controller.decide(2, busy(10_000, 10.0, 1_000_000.0)),
            Some(10)
        );
        assert_eq!(
            controller.decide(10, busy(10_000, 1.0, 1_000_000.0)),
            None,
            "never fewer while behind"
        );
    }

    #[test]
    fn no_change_while_sends_fail_or_within_tolerance() {
        let mut controller = Controller::new(1, 50);
        let stuck = Interval {
            delivered: false,
            ..busy(100_000, 40.0, 0.0)
        };
        assert_eq!(controller.decide(1, stuck), None);
        assert_eq!(controller.decide(4, busy(100_000, 45.0, 0.0)), None);
        // Needs 2 of 3: outside the tolerance, but 3 → 2 flaps (Prometheus #9207).
        let mut controller = Controller::new(1, 50);
        assert_eq!(
            controller.decide(3, busy(100_000, 20.0, 0.0)),
            None,
            "3 → 2 is refused"
        );
        assert_eq!(controller.desired, 2.0);
        let mut controller = Controller::new(1, 50);
        assert_eq!(controller.decide(4, busy(100_000, 20.0, 0.0)), Some(2));
    }
}
