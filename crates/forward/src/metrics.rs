//! Per-endpoint metrics, mirroring Prometheus's `prometheus_remote_storage_*` (so dashboards
//! and the mixin's alerts translate) under the server registry's `strata_` prefix, with a
//! `remote_name` label: `strata_remote_samples_total{remote_name="site-vm"}` and so on.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemoteLabel {
    pub remote_name: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemoteReasonLabel {
    pub remote_name: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemoteCodeLabel {
    pub remote_name: String,
    /// `2xx`, `3xx`, `4xx`, `5xx` or `network` (no HTTP answer: refused, reset, timed out).
    pub code: &'static str,
}

/// Why samples were dropped (the `reason` label of `remote_samples_dropped_total`).
pub mod reason {
    /// A single sample the receiver still refused with 400/409: invalid for it for good.
    pub const REJECTED: &str = "rejected";
    /// A single sample the receiver still answered 413 for.
    pub const TOO_LARGE: &str = "too_large";
    /// A single sample that kept failing with retryable errors while the receiver stored a
    /// probe sample (see `deliver::POISON_ATTEMPTS_MAX`).
    pub const POISON: &str = "poison";
    /// 429 with `retry-on-http-429: false`: the operator chose dropping over falling behind.
    pub const THROTTLED: &str = "throttled";
    /// The endpoint's relabel rules drop the series.
    pub const DROPPED_SERIES: &str = "dropped_series";
    /// The endpoint fell behind by more than `max-backlog-bytes` or `max-backlog-age`: its
    /// cursor moved past samples it had not sent.
    pub const BACKLOG_BUDGET: &str = "backlog_budget";
    pub const ALL: [&str; 6] = [
        REJECTED,
        TOO_LARGE,
        POISON,
        THROTTLED,
        DROPPED_SERIES,
        BACKLOG_BUDGET,
    ];
}

type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramFamily = Family<RemoteLabel, Histogram, fn() -> Histogram>;

/// Prometheus's `DefBuckets` plus 25 s … 300 s: a per-attempt timeout is 30 s by default,
/// and slow receivers are the interesting case.
fn batch_duration_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0,
    ])
}

/// Every forwarding metric family; one per process, registered once.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Samples in requests sent, counted per attempt as Prometheus does (a retried batch
    /// counts again).
    pub samples: Family<RemoteLabel, Counter>,
    /// Samples in attempts answered with a non-retryable error (a 4xx, 429 only when not retried).
    pub samples_failed: Family<RemoteLabel, Counter>,
    /// Samples in retried attempts.
    pub samples_retried: Family<RemoteLabel, Counter>,
    /// Samples given up on, by reason: the only way data leaves without a 2xx.
    pub samples_dropped: Family<RemoteReasonLabel, Counter>,
    /// Samples acknowledged by a 2xx.
    pub samples_sent: Family<RemoteLabel, Counter>,
    pub sent_batch_duration_seconds: HistogramFamily,
    /// Newest sample timestamp acknowledged by the receiver (Prometheus also counts sends
    /// that failed; acknowledged is what an operator needs to see lag).
    pub queue_highest_sent_timestamp_seconds: Family<RemoteLabel, FloatGauge>,
    /// Compressed request bytes sent, per attempt.
    pub bytes: Family<RemoteLabel, Counter>,
    /// HTTP attempts by answer class.
    pub requests: Family<RemoteCodeLabel, Counter>,
    /// Batches split in two to isolate a rejected, too large or poison sample.
    pub bisections: Family<RemoteLabel, Counter>,
    /// Dropped samples written to the dead-letter file.
    pub dead_lettered_samples: Family<RemoteLabel, Counter>,
    /// Dropped samples not written to the dead-letter file because it was full.
    pub dead_letter_overflow_samples: Family<RemoteLabel, Counter>,
    /// Remote-write 2.0 endpoints that fell back to 1.0.
    pub protocol_fallbacks: Family<RemoteLabel, Counter>,
    pub shards: Family<RemoteLabel, Gauge>,
    pub shards_desired: Family<RemoteLabel, FloatGauge>,
    /// Samples read from the log and not yet acknowledged or dropped.
    pub samples_pending: Family<RemoteLabel, Gauge>,
    /// Log bytes after the endpoint's cursor.
    pub cursor_lag_bytes: Family<RemoteLabel, Gauge>,
    /// Newest sample read minus newest sample acknowledged, while behind.
    pub cursor_lag_seconds: Family<RemoteLabel, FloatGauge>,
    /// Samples read again after a restart or reshard and skipped because the receiver had
    /// already acknowledged them (the acknowledged-position hint).
    pub replay_skipped_samples: Family<RemoteLabel, Counter>,
    /// Damaged log records or missing segments met while reading.
    pub log_damage: Family<RemoteLabel, Counter>,
    /// Times the cursor was moved forward by the backlog budget.
    pub backlog_skips: Family<RemoteLabel, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            samples: Family::default(),
            samples_failed: Family::default(),
            samples_retried: Family::default(),
            samples_dropped: Family::default(),
            samples_sent: Family::default(),
            sent_batch_duration_seconds: Family::new_with_constructor(batch_duration_histogram),
            queue_highest_sent_timestamp_seconds: Family::default(),
            bytes: Family::default(),
            requests: Family::default(),
            bisections: Family::default(),
            dead_lettered_samples: Family::default(),
            dead_letter_overflow_samples: Family::default(),
            protocol_fallbacks: Family::default(),
            shards: Family::default(),
            shards_desired: Family::default(),
            samples_pending: Family::default(),
            cursor_lag_bytes: Family::default(),
            cursor_lag_seconds: Family::default(),
            replay_skipped_samples: Family::default(),
            log_damage: Family::default(),
            backlog_skips: Family::default(),
        };
        let m = metrics.clone();
        let r = registry;
        r.register(
            "remote_samples",
            "Samples sent to remote storage, per attempt",
            m.samples,
        );
        r.register(
            "remote_samples_failed",
            "Samples in attempts answered with a non-retryable error",
            m.samples_failed,
        );
        r.register(
            "remote_samples_retried",
            "Samples in retried attempts",
            m.samples_retried,
        );
        r.register(
            "remote_samples_dropped",
            "Samples given up on without a 2xx, by reason",
            m.samples_dropped,
        );
        r.register(
            "remote_samples_sent",
            "Samples acknowledged by the receiver with a 2xx",
            m.samples_sent,
        );
        r.register(
            "remote_sent_batch_duration_seconds",
            "Duration of one send attempt",
            m.sent_batch_duration_seconds,
        );
        r.register(
            "remote_queue_highest_sent_timestamp_seconds",
            "Newest sample timestamp acknowledged by the receiver",
            m.queue_highest_sent_timestamp_seconds,
        );
        r.register(
            "remote_bytes",
            "Compressed request bytes sent, per attempt",
            m.bytes,
        );
        r.register(
            "remote_requests",
            "Send attempts by answer class",
            m.requests,
        );
        r.register(
            "remote_bisections",
            "Batches split in two to isolate a failing sample",
            m.bisections,
        );
        r.register(
            "remote_dead_lettered_samples",
            "Dropped samples written to the dead-letter file",
            m.dead_lettered_samples,
        );
        r.register(
            "remote_dead_letter_overflow_samples",
            "Dropped samples not dead-lettered because the file reached its size limit",
            m.dead_letter_overflow_samples,
        );
        r.register(
            "remote_protocol_fallbacks",
            "Remote-write 2.0 endpoints that fell back to 1.0",
            m.protocol_fallbacks,
        );
        r.register("remote_shards", "Shards sending in parallel", m.shards);
        r.register(
            "remote_shards_desired",
            "Shards the resharding rule asks for, before rounding and bounds",
            m.shards_desired,
        );
        r.register(
            "remote_samples_pending",
            "Samples read from the log and not yet acknowledged or dropped",
            m.samples_pending,
        );
        r.register(
            "remote_cursor_lag_bytes",
            "Log bytes after the endpoint's cursor",
            m.cursor_lag_bytes,
        );
        r.register(
            "remote_cursor_lag_seconds",
            "Newest sample timestamp read minus newest acknowledged, while behind",
            m.cursor_lag_seconds,
        );
        r.register(
            "remote_replay_skipped_samples",
            "Samples read again and skipped because the receiver had acknowledged them",
            m.replay_skipped_samples,
        );
        r.register(
            "remote_log_damage",
            "Damaged log records or missing segments met by the endpoint's reader",
            m.log_damage,
        );
        r.register(
            "remote_backlog_skips",
            "Times the backlog budget moved the endpoint's cursor past unsent samples",
            m.backlog_skips,
        );
        metrics
    }

    /// One endpoint's handles. Every series of the endpoint is created here, so a dashboard
    /// sees zeros rather than absent series before the first event.
    pub fn endpoint(&self, name: &str) -> EndpointMetrics {
        let label = RemoteLabel {
            remote_name: name.to_string(),
        };
        let code = |code| {
            self.requests
                .get_or_create(&RemoteCodeLabel {
                    remote_name: name.to_string(),
                    code,
                })
                .clone()
        };
        let dropped = reason::ALL.map(|reason| {
            let counter = self
                .samples_dropped
                .get_or_create(&RemoteReasonLabel {
                    remote_name: name.to_string(),
                    reason,
                })
                .clone();
            (reason, counter)
        });
        EndpointMetrics {
            samples: self.samples.get_or_create(&label).clone(),
            samples_failed: self.samples_failed.get_or_create(&label).clone(),
            samples_retried: self.samples_retried.get_or_create(&label).clone(),
            samples_sent: self.samples_sent.get_or_create(&label).clone(),
            dropped,
            sent_batch_duration_seconds: self
                .sent_batch_duration_seconds
                .get_or_create(&label)
                .clone(),
            highest_sent_timestamp_seconds: self
                .queue_highest_sent_timestamp_seconds
                .get_or_create(&label)
                .clone(),
            highest_sent_timestamp_ms: Arc::new(AtomicI64::new(i64::MIN)),
            bytes: self.bytes.get_or_create(&label).clone(),
            requests: [
                ("2xx", code("2xx")),
                ("3xx", code("3xx")),
                ("4xx", code("4xx")),
                ("5xx", code("5xx")),
                ("network", code("network")),
            ],
            bisections: self.bisections.get_or_create(&label).clone(),
            dead_lettered_samples: self.dead_lettered_samples.get_or_create(&label).clone(),
            dead_letter_overflow_samples: self
                .dead_letter_overflow_samples
                .get_or_create(&label)
                .clone(),
            protocol_fallbacks: self.protocol_fallbacks.get_or_create(&label).clone(),
            shards: self.shards.get_or_create(&label).clone(),
            shards_desired: self.shards_desired.get_or_create(&label).clone(),
            samples_pending: self.samples_pending.get_or_create(&label).clone(),
            cursor_lag_bytes: self.cursor_lag_bytes.get_or_create(&label).clone(),
            cursor_lag_seconds: self.cursor_lag_seconds.get_or_create(&label).clone(),
            replay_skipped: self.replay_skipped_samples.get_or_create(&label).clone(),
            log_damage: self.log_damage.get_or_create(&label).clone(),
            backlog_skips: self.backlog_skips.get_or_create(&label).clone(),
        }
    }
}

/// One endpoint's metric handles (cheap clones of the family members).
#[derive(Debug, Clone)]
pub struct EndpointMetrics {
    pub samples: Counter,
    pub samples_failed: Counter,
    pub samples_retried: Counter,
    pub samples_sent: Counter,
    dropped: [(&'static str, Counter); reason::ALL.len()],
    pub sent_batch_duration_seconds: Histogram,
    highest_sent_timestamp_seconds: FloatGauge,
    highest_sent_timestamp_ms: Arc<AtomicI64>,
    pub bytes: Counter,
    requests: [(&'static str, Counter); 5],
    pub bisections: Counter,
    pub dead_lettered_samples: Counter,
    pub dead_letter_overflow_samples: Counter,
    pub protocol_fallbacks: Counter,
    pub shards: Gauge,
    pub shards_desired: FloatGauge,
    pub samples_pending: Gauge,
    pub cursor_lag_bytes: Gauge,
    pub cursor_lag_seconds: FloatGauge,
    pub replay_skipped: Counter,
    pub log_damage: Counter,
    pub backlog_skips: Counter,
}

impl EndpointMetrics {
    /// `reason` is one of [`reason::ALL`].
    pub fn dropped(&self, reason: &str, samples: u64) {
        if let Some((_, counter)) = self.dropped.iter().find(|(r, _)| *r == reason) {
            counter.inc_by(samples);
        }
    }

    /// `code` is `2xx` … `5xx` or `network`.
    pub fn request(&self, code: &str) {
        if let Some((_, counter)) = self.requests.iter().find(|(c, _)| *c == code) {
            counter.inc();
        }
    }

    /// Raises the highest acknowledged timestamp; shards race, so it only moves forward.
    pub fn sent_timestamp(&self, timestamp_ms: i64) {
        let previous = self
            .highest_sent_timestamp_ms
            .fetch_max(timestamp_ms, Ordering::Relaxed);
        if timestamp_ms > previous {
            let newest = self.highest_sent_timestamp_ms.load(Ordering::Relaxed);
            self.highest_sent_timestamp_seconds
                .set(newest as f64 / 1000.0);
        }
    }

    pub fn highest_sent_timestamp_ms(&self) -> Option<i64> {
        let value = self.highest_sent_timestamp_ms.load(Ordering::Relaxed);
        (value != i64::MIN).then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_mirror_prometheus_with_the_strata_prefix() {
        let mut registry = Registry::with_prefix("strata");
        let metrics = Metrics::register(&mut registry);
        let endpoint = metrics.endpoint("site-vm");
        endpoint.samples.inc_by(3);
        endpoint.dropped(reason::POISON, 1);
        endpoint.request("5xx");
        endpoint.sent_timestamp(1_700_000_000_500);
        endpoint.sent_timestamp(1_600_000_000_000);
        let mut text = String::new();
        let encoded = prometheus_client::encoding::text::encode(&mut text, &registry);
        assert!(encoded.is_ok());
        for line in [
            "strata_remote_samples_total{remote_name=\"site-vm\"} 3",
            "strata_remote_samples_dropped_total{remote_name=\"site-vm\",reason=\"poison\"} 1",
            "strata_remote_samples_dropped_total{remote_name=\"site-vm\",reason=\"rejected\"} 0",
            "strata_remote_requests_total{remote_name=\"site-vm\",code=\"5xx\"} 1",
            "strata_remote_queue_highest_sent_timestamp_seconds{remote_name=\"site-vm\"} 1700000000.5",
            "strata_remote_sent_batch_duration_seconds_bucket{le=\"300.0\",remote_name=\"site-vm\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert_eq!(
            endpoint.highest_sent_timestamp_ms(),
            Some(1_700_000_000_500)
        );
    }
}
