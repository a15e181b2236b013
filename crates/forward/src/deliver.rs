//! The per-batch delivery policy (REMOTE_WRITE.md §9.7): a batch is sent until every sample
//! in it is acknowledged or deliberately dropped, and nothing is dropped that a retry, a
//! split or an operator could still get through.
//!
//! - Each (sub)batch is encoded and compressed once; retries resend the same bytes.
//! - 5xx, 429 and network errors: capped exponential backoff from `min-backoff` to
//!   `max-backoff` with full jitter; `Retry-After` replaces the sleep, capped at
//!   [`RETRY_AFTER_FACTOR_MAX`] × `max-backoff`.
//! - 400/409: the batch is bisected (halves sent separately, in order) and only single
//!   samples still rejected are dropped (`reason="rejected"`) and dead-lettered; a
//!   Prometheus 1.0 receiver rolls back a whole request for one bad sample. A 2.0 receiver
//!   that says it wrote part of the batch (`X-Prometheus-Remote-Write-Samples-Written` > 0)
//!   kept the valid samples: the rest are counted as rejected without bisecting, since
//!   resending stored samples would only be refused as out of order.
//! - 413: split in halves; a single sample still too large is dropped (`too_large`). Later
//!   batches above the refused size are split before they are sent.
//! - 415, or a 2.0 request answered 2xx without written counts: the endpoint falls back to
//!   1.0 for good (logged once) and the batch is re-encoded and resent.
//! - 401/403/404 (and 3xx, and 415 to a 1.0 request): retried with a long backoff
//!   ([`MISCONFIGURED_BACKOFF_MIN`]…[`MISCONFIGURED_BACKOFF_MAX`]) and a loud error, once a
//!   minute; never dropped: an operator can fix a URL or a credential.
//! - Poison: after [`POISON_ATTEMPTS_MAX`] retryable failures in a row (429 excepted), a
//!   probe writes one sample of the series [`PROBE_METRIC`] (value 1, timestamp now, plus
//!   the external labels). If the receiver takes it, the receiver is up and storing, and
//!   this batch is what fails: it is bisected, and a single sample failing that often again
//!   is dropped (`poison`) and dead-lettered, so one sample never blocks its endpoint (the
//!   Prometheus 2.42 500 for duplicate label names, pre-2.50's 500 for "too old"). If the
//!   probe fails too, the receiver is down for everyone, and the batch keeps retrying
//!   whole: an outage never drops data. The probe is a real sample, not an empty request,
//!   because some receivers answer an empty request without touching their storage
//!   (a Cortex or Mimir distributor whose ingesters are down).
//!
//! Per-series order holds: halves go out in order, and a dropped sample only leaves a gap.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::client::{Client, Response};
use crate::config::{EndpointConfig, Protocol, QueueConfig};
use crate::deadletter::DeadLetter;
use crate::error::Error;
use crate::labels::Labels;
use crate::metrics::{EndpointMetrics, reason};
use crate::proto::{EncodeTooLarge, OutSample, try_encode_v1, try_encode_v2};

/// Retryable failures in a row before a batch is suspected of being poison. Eight attempts
/// at the default backoff (30 ms doubling to 5 s, full jitter) span about 4–8 s: longer
/// than the transient 5xx of a receiver restarting or rebalancing usually lasts, short
/// enough that bisecting a 2000-sample batch down to its poison sample (11 levels) takes
/// about a minute rather than an hour. The probe (see the module doc) keeps an outage from
/// ever being mistaken for poison, so a small value costs only a few extra requests.
pub const POISON_ATTEMPTS_MAX: u32 = 8;

/// The series the poison probe writes to (see the module doc).
pub const PROBE_METRIC: &str = "strata_remote_write_probe";

/// `Retry-After` is honoured up to this many times `max-backoff`, so a receiver that asks
/// for a day does not stall an endpoint for a day.
pub const RETRY_AFTER_FACTOR_MAX: u32 = 10;

/// Backoff bounds for answers only an operator can fix (401, 403, 404).
pub const MISCONFIGURED_BACKOFF_MIN: Duration = Duration::from_secs(30);
pub const MISCONFIGURED_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The loud error about a misconfigured endpoint repeats at most this often.
pub const MISCONFIGURED_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Warnings about retried requests repeat at most this often per endpoint.
pub const RETRY_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Warnings about dropped samples repeat at most this often per endpoint (the counters and
/// the dead-letter file have every one).
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Samples acknowledged with a 2xx.
    pub sent: usize,
    /// Samples given up on, each counted by reason (and dead-lettered unless throttled).
    pub dropped: usize,
}

/// Delivery stopped because `cancel` fired; nothing of the batch is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("delivery cancelled")]
pub struct Cancelled;

/// One endpoint's sender, shared by its shards.
#[derive(Debug)]
pub struct Sender {
    name: String,
    client: Client,
    /// True while the endpoint speaks 2.0; cleared for good on fallback.
    v2: AtomicBool,
    /// Most samples per request, learned from 413s: a batch above it is split before it is
    /// sent, so a receiver with a small body limit costs one refused request, not one per
    /// batch. Only ever lowered (until a restart).
    samples_per_request_max: AtomicUsize,
    queue: QueueConfig,
    metrics: EndpointMetrics,
    dead_letter: DeadLetter,
    /// The probe's labels: [`PROBE_METRIC`] and the external labels.
    probe_labels: Labels,
    /// The last probe's timestamp, so probes never repeat one.
    probe_timestamp_ms: AtomicI64,
    /// xorshift state for jitter.
    jitter: AtomicU64,
    /// [`MISCONFIGURED_BACKOFF_MIN`] and [`MISCONFIGURED_BACKOFF_MAX`] unless a test shortens
    /// them.
    misconfigured_backoff: (Duration, Duration),
    misconfigured_log: RateLimit,
    drop_log: RateLimit,
    retry_log: RateLimit,
    last_error: Mutex<Option<String>>,
}

/// What became of one (sub)batch.
enum Outcome {
    Sent,
    Dropped,
    Split,
    /// A 2.0 receiver stored `written` of the samples and refused the rest.
    Partial {
        written: usize,
    },
}

impl Sender {
    pub fn new(
        config: &EndpointConfig,
        metrics: EndpointMetrics,
        dead_letter: DeadLetter,
    ) -> Result<Self, Error> {
        Ok(Self {
            name: config.name.clone(),
            client: Client::new(config)?,
            v2: AtomicBool::new(config.protocol == Protocol::V2),
            samples_per_request_max: AtomicUsize::new(usize::MAX),
            queue: config.queue.clone(),
            metrics,
            dead_letter,
            probe_labels: probe_labels(config),
            probe_timestamp_ms: AtomicI64::new(0),
            jitter: AtomicU64::new(RandomState::new().hash_one(config.name.as_str()) | 1),
            misconfigured_backoff: (MISCONFIGURED_BACKOFF_MIN, MISCONFIGURED_BACKOFF_MAX),
            misconfigured_log: RateLimit::new(MISCONFIGURED_LOG_INTERVAL),
            drop_log: RateLimit::new(DROP_LOG_INTERVAL),
            retry_log: RateLimit::new(RETRY_LOG_INTERVAL),
            last_error: Mutex::new(None),
        })
    }

    /// Shortens the long backoff for 401/403/404, so a test of it takes seconds rather
    /// than minutes.
    pub fn set_misconfigured_backoff(&mut self, min: Duration, max: Duration) {
        self.misconfigured_backoff = (min, max.max(min));
    }

    /// The endpoint's name (`remote_name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The protocol now in use (2.0 until a fallback, if configured).
    pub fn protocol(&self) -> Protocol {
        if self.v2.load(Ordering::Relaxed) {
            Protocol::V2
        } else {
            Protocol::V1
        }
    }

    /// The last failure's description, for the endpoint's state page.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    pub fn metrics(&self) -> &EndpointMetrics {
        &self.metrics
    }

    /// Sends `samples` until every one is written or deliberately dropped (each drop counted
    /// by reason and, for rejected, too large and poison samples, dead-lettered). Returns
    /// early only when `cancel` becomes true (shutdown, reshard): then nothing is claimed
    /// and the caller rewinds. A closed `cancel` channel never cancels.
    pub async fn deliver(
        &self,
        samples: &[OutSample],
        cancel: &watch::Receiver<bool>,
    ) -> Result<Delivered, Cancelled> {
        let mut cancel = cancel.clone();
        let mut delivered = Delivered::default();
        // Ranges still to send, the next on top: a split pushes its second half first.
        let mut pending: Vec<Range<usize>> = Vec::new();
        pending.push(0..samples.len());
        while let Some(range) = pending.pop() {
            let Some(batch) = samples.get(range.clone()) else {
                continue;
            };
            if batch.is_empty() {
                continue;
            }
            // Split before sending when 413s taught a smaller limit (not a bisection).
            let too_large = batch.len() > self.samples_per_request_max.load(Ordering::Relaxed);
            let outcome = if too_large {
                Outcome::Split
            } else {
                self.send_batch(batch, &mut cancel).await?
            };
            match outcome {
                Outcome::Sent => delivered.sent += batch.len(),
                Outcome::Dropped => delivered.dropped += batch.len(),
                Outcome::Partial { written } => {
                    delivered.sent += written;
                    delivered.dropped += batch.len() - written;
                }
                Outcome::Split => {
                    if !too_large {
                        self.metrics.bisections.inc();
                    }
                    let middle = range.start + batch.len() / 2;
                    pending.push(middle..range.end);
                    pending.push(range.start..middle);
                }
            }
        }
        Ok(delivered)
    }

    async fn send_batch(
        &self,
        batch: &[OutSample],
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<Outcome, Cancelled> {
        let count = batch.len() as u64;
        let mut protocol = self.protocol();
        let Ok(mut body) = encode(batch, protocol) else {
            return Ok(self
                .split_or_drop(batch, reason::TOO_LARGE, "request too large")
                .await);
        };
        let mut attempt: u32 = 0;
        let mut failures: u32 = 0;
        let mut misconfigured: u32 = 0;
        loop {
            if *cancel.borrow() {
                return Err(Cancelled);
            }
            let started = Instant::now();
            let response =
                cancellable(cancel, self.client.send(body.clone(), protocol, attempt)).await?;
            self.count_attempt(count, body.len(), started, &response, attempt);
            attempt = attempt.saturating_add(1);
            let delay = match response {
                Response::Written { samples_written } => {
                    self.acknowledged(batch, samples_written);
                    return Ok(Outcome::Sent);
                }
                Response::Retry {
                    status,
                    reason: why,
                    retry_after,
                } => {
                    self.note_error(&why);
                    self.log_retry(&why);
                    // 429 is the receiver pacing us, not this batch failing.
                    if status != Some(429) {
                        failures += 1;
                    }
                    if failures >= POISON_ATTEMPTS_MAX {
                        failures = 0;
                        if self.receiver_stores_probe(protocol, cancel).await? {
                            let why = format!("{}: {why}", reason::POISON);
                            return Ok(self.split_or_drop(batch, reason::POISON, &why).await);
                        }
                    }
                    let cap = self.queue.max_backoff * RETRY_AFTER_FACTOR_MAX;
                    match retry_after {
                        Some(wait) => wait.min(cap),
                        None => self.jittered(backoff_ceiling(
                            self.queue.min_backoff,
                            self.queue.max_backoff,
                            attempt,
                        )),
                    }
                }
                Response::Rejected {
                    status: 429,
                    reason: why,
                    ..
                } => {
                    // Only without retry-on-http-429: the operator chose dropping.
                    self.metrics.samples_failed.inc_by(count);
                    self.note_error(&why);
                    self.metrics.dropped(reason::THROTTLED, count);
                    self.log_drop(batch.len(), reason::THROTTLED, &why);
                    return Ok(Outcome::Dropped);
                }
                Response::Rejected {
                    status,
                    reason: why,
                    samples_written: Some(written),
                } if written > 0 => {
                    return Ok(self.partly_written(batch, written, status, &why));
                }
                Response::Rejected {
                    status,
                    reason: why,
                    ..
                } => {
                    self.metrics.samples_failed.inc_by(count);
                    self.note_error(&why);
                    let why = format!("{} (HTTP {status}): {why}", reason::REJECTED);
                    return Ok(self.split_or_drop(batch, reason::REJECTED, &why).await);
                }
                Response::TooLarge => {
                    self.metrics.samples_failed.inc_by(count);
                    self.learn_request_limit(batch.len());
                    self.note_error("HTTP 413: request too large");
                    let why = format!("{} (HTTP 413)", reason::TOO_LARGE);
                    return Ok(self.split_or_drop(batch, reason::TOO_LARGE, &why).await);
                }
                Response::Unsupported if protocol == Protocol::V2 => {
                    self.fall_back_to_v1();
                    protocol = Protocol::V1;
                    let Ok(v1) = encode(batch, protocol) else {
                        let why = "request too large";
                        return Ok(self.split_or_drop(batch, reason::TOO_LARGE, why).await);
                    };
                    body = v1;
                    attempt = 0;
                    continue;
                }
                Response::Unsupported => {
                    self.misconfigured(415, "HTTP 415 to a remote-write 1.0 request");
                    // The receiver refuses everyone: no evidence against this batch.
                    failures = 0;
                    misconfigured += 1;
                    self.misconfigured_backoff(misconfigured)
                }
                Response::Misconfigured {
                    status,
                    reason: why,
                } => {
                    self.misconfigured(status, &why);
                    failures = 0;
                    misconfigured += 1;
                    self.misconfigured_backoff(misconfigured)
                }
            };
            cancellable(cancel, tokio::time::sleep(delay)).await?;
        }
    }

    fn count_attempt(
        &self,
        count: u64,
        bytes: usize,
        started: Instant,
        response: &Response,
        attempt: u32,
    ) {
        let m = &self.metrics;
        m.sent_batch_duration_seconds
            .observe(started.elapsed().as_secs_f64());
        m.samples.inc_by(count);
        m.bytes.inc_by(bytes as u64);
        m.request(response.code_class());
        if attempt > 0 {
            m.samples_retried.inc_by(count);
        }
    }

    fn acknowledged(&self, batch: &[OutSample], samples_written: Option<u64>) {
        let count = batch.len() as u64;
        if let Some(written) = samples_written.filter(|w| *w < count) {
            // A 2xx promises everything was written; say so if it counts less.
            tracing::warn!(endpoint = %self.name, written, sent = count,
                "receiver answered 2xx but reports fewer samples written");
        }
        self.metrics.samples_sent.inc_by(count);
        if let Some(newest) = batch.iter().map(|s| s.timestamp_ms).max() {
            self.metrics.sent_timestamp(newest);
        }
    }

    /// A 2.0 receiver refused part of a batch and stored the rest, saying how many. Resending
    /// the stored ones would only collect out-of-order refusals (and drop them as rejected),
    /// so the batch is done: the refused samples are counted and logged, not dead-lettered,
    /// since the receiver does not say which they were.
    fn partly_written(&self, batch: &[OutSample], written: u64, status: u16, why: &str) -> Outcome {
        let count = batch.len() as u64;
        let written = written.min(count);
        let refused = count - written;
        self.note_error(why);
        self.metrics.samples_failed.inc_by(refused);
        self.metrics.samples_sent.inc_by(written);
        self.metrics.dropped(reason::REJECTED, refused);
        if let Some(newest) = batch.iter().map(|s| s.timestamp_ms).max() {
            self.metrics.sent_timestamp(newest);
        }
        let text = format!(
            "{} (HTTP {status}, {written} of {count} written, which ones not said): {why}",
            reason::REJECTED
        );
        self.log_drop(refused as usize, reason::REJECTED, &text);
        Outcome::Partial {
            written: written as usize,
        }
    }

    /// A batch of several samples is split (the caller sends the halves); a single sample
    /// is dropped, counted and dead-lettered.
    async fn split_or_drop(&self, batch: &[OutSample], why: &'static str, text: &str) -> Outcome {
        if batch.len() > 1 {
            return Outcome::Split;
        }
        let count = batch.len() as u64;
        self.metrics.dropped(why, count);
        self.log_drop(batch.len(), why, text);
        let written = self
            .dead_letter
            .append(batch.to_vec(), text.to_string())
            .await as u64;
        self.metrics.dead_lettered_samples.inc_by(written);
        self.metrics
            .dead_letter_overflow_samples
            .inc_by(count.saturating_sub(written));
        Outcome::Dropped
    }

    /// Whether the receiver stores a probe sample: up, and not failing for everyone.
    async fn receiver_stores_probe(
        &self,
        protocol: Protocol,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<bool, Cancelled> {
        // Strictly increasing timestamps: a strict receiver refuses a repeated one.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let previous = self.probe_timestamp_ms.fetch_max(now, Ordering::Relaxed);
        let timestamp_ms = if previous >= now {
            self.probe_timestamp_ms.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            now
        };
        let probe = OutSample {
            labels: self.probe_labels.clone(),
            timestamp_ms,
            value: 1.0,
        };
        let Ok(body) = encode(std::slice::from_ref(&probe), protocol) else {
            return Ok(false);
        };
        let response = cancellable(cancel, self.client.send(body, protocol, 0)).await?;
        self.metrics.request(response.code_class());
        Ok(matches!(response, Response::Written { .. }))
    }

    /// A request of `refused` samples was too large: later batches go out smaller.
    fn learn_request_limit(&self, refused: usize) {
        if refused < 2 {
            return;
        }
        let limit = refused - 1;
        if self
            .samples_per_request_max
            .fetch_min(limit, Ordering::Relaxed)
            > limit
        {
            tracing::warn!(endpoint = %self.name, refused,
                "receiver answered 413 (too large) to a request of {refused} samples: sending \
                 smaller requests until a restart; lower queue.max-samples-per-send to match");
        }
    }

    fn fall_back_to_v1(&self) {
        if self.v2.swap(false, Ordering::Relaxed) {
            self.metrics.protocol_fallbacks.inc();
            tracing::warn!(endpoint = %self.name,
                "receiver does not speak remote-write 2.0 (415, or 2xx without written \
                 counts): falling back to 1.0");
        }
    }

    fn misconfigured(&self, status: u16, why: &str) {
        self.note_error(why);
        if self.misconfigured_log.ready() {
            tracing::error!(endpoint = %self.name, status, reason = %why,
                "remote-write endpoint refuses requests until its URL or credentials are \
                 fixed; retrying with a long backoff, nothing is dropped");
        }
    }

    fn misconfigured_backoff(&self, streak: u32) -> Duration {
        let (min, max) = self.misconfigured_backoff;
        let floor = self.queue.max_backoff.max(min);
        let ceiling = backoff_ceiling(floor, max.max(floor), streak);
        // Half jitter: spread out, but never short.
        ceiling / 2 + self.jittered(ceiling / 2)
    }

    fn log_drop(&self, count: usize, why: &'static str, text: &str) {
        if self.drop_log.ready() {
            tracing::warn!(endpoint = %self.name, reason = why, samples = count, detail = %text,
                "dropped samples (counted in strata_remote_samples_dropped_total; see the \
                 dead-letter file)");
        }
    }

    fn note_error(&self, why: &str) {
        *self.last_error.lock() = Some(why.to_string());
    }

    /// A retryable failure (5xx, 429, network): logged at most once per
    /// [`RETRY_LOG_INTERVAL`], so an outage is visible in the log without flooding it.
    fn log_retry(&self, why: &str) {
        if self.retry_log.ready() {
            tracing::warn!(endpoint = %self.name, reason = %why,
                "remote write: the receiver is failing; retrying (strata_remote_samples_retried_total)");
        }
    }

    /// Uniform in [0, ceiling] ("full jitter").
    fn jittered(&self, ceiling: Duration) -> Duration {
        // xorshift64: statistical quality is irrelevant here, only spreading retries.
        let mut x = self.jitter.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.store(x, Ordering::Relaxed);
        jitter(ceiling, x)
    }
}

fn probe_labels(config: &EndpointConfig) -> Labels {
    let mut pairs: Vec<(String, String)> = config
        .external_labels
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    pairs.push(("__name__".to_string(), PROBE_METRIC.to_string()));
    Labels::new(pairs)
}

/// The backoff ceiling before `attempt` (1 = first retry): `min` doubled per attempt, capped
/// at `max`, and never below `min`.
pub fn backoff_ceiling(min: Duration, max: Duration, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    min.saturating_mul(1u32 << doublings).min(max).max(min)
}

/// `random` mapped into [0, ceiling].
fn jitter(ceiling: Duration, random: u64) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(random % nanos.saturating_add(1))
}

fn encode(samples: &[OutSample], protocol: Protocol) -> Result<Bytes, EncodeTooLarge> {
    match protocol {
        Protocol::V1 => try_encode_v1(samples),
        Protocol::V2 => try_encode_v2(samples),
    }
    .map(Bytes::from)
}

/// Runs `work` unless `cancel` becomes true first. A closed channel never cancels.
async fn cancellable<F: Future>(
    cancel: &mut watch::Receiver<bool>,
    work: F,
) -> Result<F::Output, Cancelled> {
    let cancelled = async {
        if cancel.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        biased;
        () = cancelled => Err(Cancelled),
        output = work => Ok(output),
    }
}

/// Lets an event through at most once per interval.
#[derive(Debug)]
struct RateLimit {
    interval: Duration,
    last: Mutex<Option<Instant>>,
}

impl RateLimit {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(None),
        }
    }

    fn ready(&self) -> bool {
        let mut last = self.last.lock();
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < self.interval => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_min_and_caps_at_max() {
        let min = Duration::from_millis(30);
        let max = Duration::from_secs(5);
        let ceilings: Vec<u128> = (1..=10)
            .map(|a| backoff_ceiling(min, max, a).as_millis())
            .collect();
        assert_eq!(
            ceilings,
            [30, 60, 120, 240, 480, 960, 1920, 3840, 5000, 5000]
        );
        assert_eq!(backoff_ceiling(min, max, 0), min);
        assert_eq!(backoff_ceiling(min, max, u32::MAX), max);
        // A misconfigured max below min still waits min.
        assert_eq!(backoff_ceiling(min, Duration::from_millis(1), 3), min);
    }

    #[test]
    fn jitter_stays_within_the_ceiling() {
        let ceiling = Duration::from_millis(250);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut seen_low = false;
        let mut seen_high = false;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = jitter(ceiling, x);
            assert!(d <= ceiling);
            seen_low |= d < ceiling / 10;
            seen_high |= d > ceiling * 9 / 10;
        }
        // Full jitter covers the whole range.
        assert!(seen_low && seen_high);
        assert_eq!(jitter(Duration::ZERO, x), Duration::ZERO);
        assert!(jitter(Duration::MAX, u64::MAX) <= Duration::MAX);
    }

    #[test]
    fn misconfigured_backoff_is_long_and_bounded() {
        let config = EndpointConfig::new("http://127.0.0.1:1/api/v1/write");
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = crate::metrics::Metrics::register(&mut registry).endpoint("t");
        let dir = std::env::temp_dir();
        let sender = Sender::new(&config, metrics, DeadLetter::new(&dir, "t"));
        let Ok(sender) = sender else {
            return assert!(sender.is_ok());
        };
        for streak in 1..40 {
            let d = sender.misconfigured_backoff(streak);
            assert!(d >= MISCONFIGURED_BACKOFF_MIN / 2, "{d:?}");
            assert!(d <= MISCONFIGURED_BACKOFF_MAX, "{d:?}");
        }
        assert!(sender.misconfigured_backoff(30) >= MISCONFIGURED_BACKOFF_MAX / 2);
    }

    #[test]
    fn rate_limit_lets_one_through_per_interval() {
        let limit = RateLimit::new(Duration::from_secs(3600));
        assert!(limit.ready());
        assert!(!limit.ready());
    }
}
