//! `/metrics` as a real Prometheus (2.42, Debian's package) scrapes it: every sample parses,
//! counters stay counters, and the values Prometheus stores are the ones Strata reports.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, metric_value, minutes_ago};
use std::time::{Duration, Instant};
use strata_testkit::Prometheus;

/// Longest wait for Prometheus to scrape (every second) what the test checks.
const SCRAPED_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn a_real_prometheus_scrapes_the_metrics_with_their_values_and_types() {
    let server = Server::start();
    let t = minutes_ago(5);
    server.write_ok(
        "c",
        &format!("m,host=h1 value=1 {t}\nm,host=h2 value=2 {t}\n"),
    );
    let reported = metric_value(&server.metrics(), "strata_ingest_samples_total")
        .expect("strata reports strata_ingest_samples_total");
    assert_eq!(reported, 2.0);

    let prometheus = Prometheus::scraping(&server.addr);
    let deadline = Instant::now() + SCRAPED_TIMEOUT;
    let stored = loop {
        let found = prometheus.instant("strata_ingest_samples_total{job=\"strata\"}");
        if let [(_, value)] = found.as_slice() {
            break *value;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus has not stored strata_ingest_samples_total after {SCRAPED_TIMEOUT:?}: \
             {found:?}; target health: {:?}",
            prometheus.instant("up")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(stored, reported);
    // The scrape itself succeeded: a sample Prometheus could not parse fails the whole scrape.
    let up = prometheus.instant("up{job=\"strata\"}");
    assert_eq!(up.first().map(|(_, v)| *v), Some(1.0), "{up:?}");

    // Prometheus names a counter's family without `_total` in its metadata (OpenMetrics).
    let metadata = loop {
        let metadata = prometheus.metadata("strata_ingest_samples");
        if !metadata.is_empty() {
            break metadata;
        }
        assert!(
            Instant::now() < deadline,
            "no metadata for strata_ingest_samples"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        metadata.iter().all(|m| m["type"] == "counter"),
        "{metadata:?}"
    );
    let gauge = prometheus.metadata("strata_store_hosts");
    assert!(
        !gauge.is_empty() && gauge.iter().all(|m| m["type"] == "gauge"),
        "{gauge:?}"
    );
    // And gauges carry the store's state: two hosts.
    let hosts = prometheus.instant("strata_store_hosts{job=\"strata\"}");
    assert_eq!(hosts.first().map(|(_, v)| *v), Some(2.0), "{hosts:?}");
}
