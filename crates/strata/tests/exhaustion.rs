//! Exhaustion from outside (issue 6, items 11, 12, 13 and 15): small requests that used to pin
//! memory, queries that allocated without bound, connections that stayed open for ever, and
//! CPU-heavy work on the async workers. Each limit is answered with a JSON error and counted.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, metric_value, minutes_ago};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use std::io::Write;

const C: &str = "alex";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn resident_bytes(server: &Server) -> f64 {
    metric_value(&server.metrics(), "strata_process_resident_memory_bytes")
        .expect("strata_process_resident_memory_bytes in /metrics")
}

#[test]
fn lines_alternating_with_a_long_default_cluster_do_not_pin_memory() {
    // Goal (item 12): names are shared only between consecutive samples, so lines that
    // alternate between a `cluster` tag and a long default cluster copy the default name per
    // line. Before: a batch grew without bound within one inflated chunk (a 45 KB gzip body
    // reached 1 GB) and was kept in the pool after the request; now batches are committed
    // at a byte budget and oversized ones are freed.
    let server = Server::start_with_config(&json!({
        "metric-store": {"limits": {"name-length": 4096}, "wal": {"fsync": "off"}}
    }));
    let t = minutes_ago(5);
    let default_cluster = "d".repeat(4000);
    let pair = format!("m,cluster={C},hostname=h value=1 {t}\nm,hostname=h value=2 {t}\n");
    let body = gzip(pair.repeat(20_000).as_bytes());
    let before = resident_bytes(&server);
    let target = format!("/api/write?cluster={default_cluster}");
    let response = server.request("POST", &target, &[("Content-Encoding", "gzip")], &body);
    response.assert_status(200);
    let after = resident_bytes(&server);
    // 20,000 samples of a 4,000-byte name are 80 MB of names: one batch of them was built
    // and kept in the pool by the old code; a few MiB of batches now.
    assert!(
        after - before < 32e6,
        "resident memory grew from {before} to {after} bytes"
    );
    let stored = server.query(&json!({"cluster": default_cluster, "from": t, "to": t + 60,
        "with-padding": false, "queries": [{"metric": "m", "host": "h"}]}));
    assert_eq!(stored["results"][0][0]["data"], json!([2.0]), "{stored}");
}
