//! Delivery to the real receivers the issue names, from their Debian packages: VictoriaMetrics
//! 1.79 and Prometheus 2.42 (`--web.enable-remote-write-receiver`), started by
//! `strata-testkit` on free loopback ports. What arrived is read back through their query
//! APIs and compared sample by sample with what the sender reported as acknowledged. A
//! missing binary fails the test (scripts/test.sh installs both).

// Helpers panic on purpose: a failed read is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_forward::config::Protocol;
use strata_forward::metrics::reason;
use strata_forward::proto::OutSample;
use strata_forward::relabel::Relabeler;
use strata_testkit::{Prometheus, Series, VictoriaMetrics};
use support::{Harness, config, delivered};

/// Longest wait for written samples to become visible to queries.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The test series, and only them (not the sender's probe series).
const SELECTOR: &str = "{__name__=~\"fwd_.+\"}";

/// Series key: the sorted label pairs.
type Key = BTreeMap<String, String>;
type Stored = BTreeMap<Key, Vec<(i64, f64)>>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `series_count` series (labels as Strata builds them, relabelled with an external label),
/// `per_series` samples each at `step_ms`, interleaved in time as the WAL yields them.
/// Values are multiples of 0.25: exact in every receiver's float handling.
fn workload(series_count: usize, per_series: usize, start_ms: i64, step_ms: i64) -> Vec<OutSample> {
    let external = BTreeMap::from([("site".to_string(), "fau".to_string())]);
    let relabeler = Relabeler::new(&[], &external).unwrap();
    let series: Vec<_> = (0..series_count)
        .map(|i| {
            relabeler
                .apply(vec![
                    ("__name__".to_string(), format!("fwd_metric_{}", i % 4)),
                    ("cluster".to_string(), "fritz".to_string()),
                    ("hostname".to_string(), format!("f{i:04}")),
                    ("type".to_string(), "node".to_string()),
                ])
                .unwrap()
        })
        .collect();
    let mut out = Vec::new();
    for step in 0..per_series {
        for (i, labels) in series.iter().enumerate() {
            out.push(OutSample {
                labels: labels.clone(),
                timestamp_ms: start_ms + step as i64 * step_ms,
                value: (step * series_count + i) as f64 * 0.25,
            });
        }
    }
    out
}

fn expected(samples: &[OutSample]) -> Stored {
    let mut out = Stored::new();
    for s in samples {
        let key = s
            .labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        out.entry(key).or_default().push((s.timestamp_ms, s.value));
    }
    out
}

fn stored(series: Vec<Series>) -> Stored {
    series.into_iter().map(|s| (s.labels, s.points)).collect()
}

/// Delivers in batches of `batch` samples, checking each was fully acknowledged.
async fn deliver_all(h: &Harness, samples: &[OutSample], batch: usize) {
    for chunk in samples.chunks(batch) {
        assert_eq!(h.deliver(chunk).await, delivered(chunk.len(), 0));
    }
}

/// Runs `read` (blocking HTTP) off the runtime until it returns what `samples` should give
/// or the time is up; returns the last reading.
async fn read_until(samples: &[OutSample], read: impl Fn() -> Stored + Send + 'static) -> Stored {
    let want = expected(samples);
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + VISIBLE_TIMEOUT;
        loop {
            let got = read();
            if got == want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    })
    .await
    .unwrap()
}

/// Several thousand samples over 40 series, sent as 2.0 (VictoriaMetrics 1.79 answers 204
/// without written counts, so the sender must fall back to 1.0 and resend), then read back
/// with /api/v1/export: every sample exactly once, with its labels, timestamp and value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn victoria_metrics_receives_every_sample_exactly() {
    let vm = Arc::new(
        tokio::task::spawn_blocking(VictoriaMetrics::start)
            .await
            .unwrap(),
    );
    let mut endpoint = config(&vm.write_url());
    endpoint.protocol = Protocol::V2;
    let h = Harness::new(&endpoint);
    let samples = workload(40, 100, now_ms() - 3_600_000, 15_000);
    assert_eq!(samples.len(), 4000);
    deliver_all(&h, &samples, 500).await;
    assert_eq!(h.sender.protocol(), Protocol::V1, "fell back from 2.0");
    assert_eq!(h.endpoint.samples_sent.get(), 4000);

    let reader = vm.clone();
    let got = read_until(&samples, move || stored(reader.export(SELECTOR))).await;
    assert_eq!(got.len(), 40, "series in VictoriaMetrics");
    assert!(
        got.keys()
            .all(|k| k.get("site").map(String::as_str) == Some("fau"))
    );
    assert_eq!(got, expected(&samples));
}

/// Prometheus 2.42 as a strict receiver: a batch arrives whole; then a batch with one
/// out-of-order sample inside, which Prometheus answers 400 and rolls back entirely. The
/// sender bisects, only the out-of-order sample is dropped and dead-lettered, and every
/// other sample of that batch arrives, which the range query confirms sample by sample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_receives_everything_but_the_rejected_sample() {
    let prometheus = Arc::new(
        tokio::task::spawn_blocking(|| Prometheus::start(None))
            .await
            .unwrap(),
    );
    let h = Harness::new(&config(&prometheus.write_url()));
    let now = now_ms();
    // 20 series × 60 samples at 10 s: the last 10 minutes, inside a fresh head's range.
    let samples = workload(20, 60, now - 600_000, 10_000);
    let (first, second) = samples.split_at(600);
    deliver_all(&h, first, 300).await;

    // One sample of series 7 older than what Prometheus now holds for it.
    let mut mixed = second.to_vec();
    let poison = OutSample {
        labels: first[7].labels.clone(),
        timestamp_ms: first[7].timestamp_ms - 1,
        value: 4242.0,
    };
    mixed.insert(250, poison);
    assert_eq!(h.deliver(&mixed).await, delivered(600, 1));
    assert_eq!(h.dropped(reason::REJECTED), 1);
    assert!(h.bisections() >= 1);
    let dead = h.dead_letter();
    assert!(dead.contains("out of order sample"), "{dead}");
    assert!(dead.contains(" value=4242 "), "{dead}");

    let got = read_back(&prometheus, now, &samples).await;
    let names: BTreeSet<&String> = got.keys().filter_map(|k| k.get("__name__")).collect();
    assert_eq!(names.len(), 4);
    assert_eq!(got, expected(&samples));
}

/// What Prometheus holds of the test series just after `now_ms`.
async fn read_back(prometheus: &Arc<Prometheus>, now_ms: i64, samples: &[OutSample]) -> Stored {
    let reader = prometheus.clone();
    let at_s = now_ms / 1000 + 1;
    read_until(samples, move || stored(reader.raw(SELECTOR, "20m", at_s))).await
}

/// A real poison sample: Prometheus 2.42 with an out-of-order window answers **500** "too
/// old sample" (retryable by the spec, so a spec-following sender retries forever) for a
/// sample older than the newest of its series by more than the window. The sender's probe
/// is stored, the batch is bisected, the one sample is dropped as poison and
/// dead-lettered, and every other sample of the batch arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_too_old_500_is_isolated_as_poison() {
    let prometheus = Arc::new(
        tokio::task::spawn_blocking(|| Prometheus::start(Some("10m")))
            .await
            .unwrap(),
    );
    let h = Harness::new(&config(&prometheus.write_url()));
    let now = now_ms();
    let samples = workload(10, 30, now - 300_000, 10_000);
    let (first, second) = samples.split_at(100);
    deliver_all(&h, first, 100).await;
    let mut mixed = second.to_vec();
    // 20 minutes older than series 3's newest: beyond the 10-minute window.
    let poison = OutSample {
        labels: first[3].labels.clone(),
        timestamp_ms: first[3].timestamp_ms - 1_200_000,
        value: 4343.0,
    };
    mixed.insert(77, poison);
    assert_eq!(h.deliver(&mixed).await, delivered(200, 1));
    assert_eq!(h.dropped(reason::POISON), 1, "{}", h.dead_letter());
    let dead = h.dead_letter();
    assert!(
        dead.contains("poison: HTTP 500") && dead.contains("too old sample"),
        "{dead}"
    );
    assert!(dead.contains(" value=4343 "), "{dead}");

    let got = read_back(&prometheus, now, &samples).await;
    assert_eq!(got, expected(&samples));
}
