//! Delivery to the real receivers the issue names, from their Debian packages: VictoriaMetrics
//! 1.79 and Prometheus 2.42 (`--web.enable-remote-write-receiver`), each started on a free
//! loopback port. What arrived is read back through their query APIs and compared sample by
//! sample with what the sender reported as acknowledged. A missing binary fails the test
//! (scripts/test.sh installs both).

// Helpers panic on purpose: a failed read is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_forward::config::Protocol;
use strata_forward::metrics::reason;
use strata_forward::proto::OutSample;
use strata_forward::relabel::Relabeler;
use support::{Harness, Process, config, delivered, encode_query, http_get};

const VICTORIA_METRICS: &str = "/usr/bin/victoria-metrics";
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Longest wait for written samples to become visible to queries.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Series key: the sorted label pairs.
type Key = BTreeMap<String, String>;

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

fn expected(samples: &[OutSample]) -> BTreeMap<Key, Vec<(i64, f64)>> {
    let mut out: BTreeMap<Key, Vec<(i64, f64)>> = BTreeMap::new();
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

/// Delivers in batches of `batch` samples, checking each was fully acknowledged.
async fn deliver_all(h: &Harness, samples: &[OutSample], batch: usize) {
    for chunk in samples.chunks(batch) {
        assert_eq!(h.deliver(chunk).await, delivered(chunk.len(), 0));
    }
}

/// Polls `read` until it returns `want` or the time is up; returns the last reading.
fn wait_for<T: PartialEq>(want: &T, mut read: impl FnMut() -> T) -> T {
    let deadline = Instant::now() + VISIBLE_TIMEOUT;
    loop {
        let got = read();
        if &got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A query API's `"metric": {name: value…}` object.
fn metric_key(metric: &serde_json::Value) -> Key {
    metric
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// VictoriaMetrics' raw export: every stored sample, duplicates included.
fn vm_export(port: u16) -> BTreeMap<Key, Vec<(i64, f64)>> {
    // Makes recently written samples searchable now rather than within seconds.
    http_get(port, "/internal/force_flush");
    let query = format!(
        "/api/v1/export?match[]={}",
        encode_query("{__name__=~\"fwd_.+\"}")
    );
    let Some((200, body)) = http_get(port, &query) else {
        return BTreeMap::new();
    };
    let mut out: BTreeMap<Key, Vec<(i64, f64)>> = BTreeMap::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = metric_key(&json["metric"]);
        let timestamps = json["timestamps"].as_array().unwrap();
        let values = json["values"].as_array().unwrap();
        let mut points: Vec<(i64, f64)> = timestamps
            .iter()
            .zip(values)
            .map(|(t, v)| (t.as_i64().unwrap(), v.as_f64().unwrap()))
            .collect();
        points.sort_by_key(|p| p.0);
        out.entry(key).or_default().extend(points);
    }
    out
}

/// Several thousand samples over 40 series, sent as 2.0 (VictoriaMetrics 1.79 answers 204
/// without written counts, so the sender must fall back to 1.0 and resend), then read back
/// with /api/v1/export: every sample exactly once, with its labels, timestamp and value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn victoria_metrics_receives_every_sample_exactly() {
    let vm = Process::start(
        VICTORIA_METRICS,
        |port, dir| {
            vec![
                format!("-httpListenAddr=127.0.0.1:{port}"),
                format!("-storageDataPath={}", dir.join("data").display()),
                "-retentionPeriod=100y".to_string(),
                "-search.latencyOffset=0s".to_string(),
            ]
        },
        Some("/health"),
    );
    let mut endpoint = config(&write_url(&vm));
    endpoint.protocol = Protocol::V2;
    let h = Harness::new(&endpoint);
    let start = now_ms() - 3_600_000;
    let samples = workload(40, 100, start, 15_000);
    assert_eq!(samples.len(), 4000);
    deliver_all(&h, &samples, 500).await;
    assert_eq!(h.sender.protocol(), Protocol::V1, "fell back from 2.0");
    assert_eq!(h.endpoint.samples_sent.get(), 4000);

    let want = expected(&samples);
    let port = vm.port;
    let got = tokio::task::spawn_blocking(move || wait_for(&want, || vm_export(port)))
        .await
        .unwrap();
    let want = expected(&samples);
    assert_eq!(got.len(), 40, "series in VictoriaMetrics\n{}", vm.log());
    for (key, points) in &want {
        assert_eq!(got.get(key), Some(points), "series {key:?}");
        assert_eq!(key.get("site").map(String::as_str), Some("fau"));
    }
    assert_eq!(got, want);
}

/// Prometheus 2.42 as a remote-write receiver, with `extra` appended to its configuration.
fn start_prometheus(extra: &'static str) -> Process {
    Process::start(
        PROMETHEUS,
        move |port, dir| {
            let config = dir.join("prometheus.yml");
            std::fs::write(&config, format!("global:\n  scrape_interval: 1h\n{extra}")).unwrap();
            vec![
                format!("--config.file={}", config.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--web.enable-remote-write-receiver".to_string(),
            ]
        },
        Some("/-/ready"),
    )
}

/// Prometheus's range-vector query: every stored sample of the fwd_ series in the window.
fn prometheus_samples(port: u16, at_ms: i64) -> BTreeMap<Key, Vec<(i64, f64)>> {
    let query = format!(
        "/api/v1/query?query={}&time={}",
        encode_query("{__name__=~\"fwd_.+\"}[20m]"),
        at_ms as f64 / 1000.0
    );
    let Some((200, body)) = http_get(port, &query) else {
        return BTreeMap::new();
    };
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = BTreeMap::new();
    for series in json["data"]["result"].as_array().unwrap() {
        let key = metric_key(&series["metric"]);
        let points: Vec<(i64, f64)> = series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                (t, p[1].as_str().unwrap().parse().unwrap())
            })
            .collect();
        out.insert(key, points);
    }
    out
}

/// What Prometheus holds of the fwd_ series at `at_ms`, once it equals what `samples` should
/// give or the wait is over.
async fn read_back(
    prometheus: &Process,
    at_ms: i64,
    samples: &[OutSample],
) -> BTreeMap<Key, Vec<(i64, f64)>> {
    let want = expected(samples);
    let port = prometheus.port;
    tokio::task::spawn_blocking(move || wait_for(&want, || prometheus_samples(port, at_ms)))
        .await
        .unwrap()
}

fn write_url(receiver: &Process) -> String {
    format!("http://127.0.0.1:{}/api/v1/write", receiver.port)
}

/// Prometheus 2.42 as a strict receiver: a batch arrives whole; then a batch with one
/// out-of-order sample inside, which Prometheus answers 400 and rolls back entirely. The
/// sender bisects, only the out-of-order sample is dropped and dead-lettered, and every
/// other sample of that batch arrives, which the range query confirms sample by sample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_receives_everything_but_the_rejected_sample() {
    let prometheus = start_prometheus("");
    let h = Harness::new(&config(&write_url(&prometheus)));
    let now = now_ms();
    // 20 series × 60 samples at 10 s: the last 10 minutes, inside a fresh head's range.
    let start = now - 600_000;
    let samples = workload(20, 60, start, 10_000);
    let (first, second) = samples.split_at(600);
    deliver_all(&h, first, 300).await;

    // One sample of series 7 older than what Prometheus now holds for it.
    let mut mixed = second.to_vec();
    let poison = OutSample {
        labels: first[7].labels.clone(),
        timestamp_ms: first[7].timestamp_ms - 1,
        value: 4242.0,
    };
    mixed.insert(250, poison.clone());
    assert_eq!(h.deliver(&mixed).await, delivered(600, 1));
    assert_eq!(h.dropped(reason::REJECTED), 1);
    assert!(h.bisections() >= 1);
    let dead = h.dead_letter();
    assert!(dead.contains("out of order sample"), "{dead}");
    assert!(dead.contains(" value=4242 "), "{dead}");

    let got = read_back(&prometheus, now + 1000, &samples).await;
    let names: BTreeSet<&String> = got.keys().filter_map(|k| k.get("__name__")).collect();
    assert_eq!(names.len(), 4, "{}", prometheus.log());
    assert_eq!(got, expected(&samples));
}

/// A real poison sample: Prometheus 2.42 with an out-of-order window answers **500** "too
/// old sample" (retryable by the spec, so a spec-following sender retries forever) for a
/// sample older than the newest of its series by more than the window. The sender's probe
/// is stored, the batch is bisected, the one sample is dropped as poison and
/// dead-lettered, and every other sample of the batch arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_too_old_500_is_isolated_as_poison() {
    let prometheus = start_prometheus("storage:\n  tsdb:\n    out_of_order_time_window: 10m\n");
    let h = Harness::new(&config(&write_url(&prometheus)));
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

    let got = read_back(&prometheus, now + 1000, &samples).await;
    assert_eq!(got, expected(&samples));
}
