//! A write-ahead log that can no longer write, black-box: the running server is given a file
//! size limit (`prlimit --fsize`) just above its current segment, so that its next appends
//! fail with EFBIG as on a full disk. The log must be poisoned, not dead and not silent:
//! writes answer 503, `/healthz` answers 503 with the reason, `/metrics` shows
//! `strata_wal_healthy 0`, and every sample acknowledged before survives a SIGKILL.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, metric_value, minutes_ago};
use serde_json::json;

const CLUSTER: &str = "poison";

/// Lines per request: enough for a request to pass the head room in a few tries.
const LINES: i64 = 2_000;

/// Bytes a segment may still grow once the limit is set.
const HEADROOM_BYTES: u64 = 64 << 10;

/// Lines of `host`, one sample per minute from `start`, with values `base + i`.
fn lines(host: &str, start: i64, base: i64) -> String {
    (0..LINES)
        .map(|i| {
            format!(
                "load,hostname={host},type=node value={} {}\n",
                base + i,
                start + 60 * i
            )
        })
        .collect()
}

#[test]
fn a_wal_that_cannot_write_is_reported_and_loses_nothing_acknowledged() {
    let mut server = Server::start_with_config(&json!({
        "metric-store": {"wal": {"fsync": "batch"}}
    }));
    let start = minutes_ago(LINES + 10);
    server.write_ok(CLUSTER, &lines("n0", start, 0));

    server.limit_file_size(HEADROOM_BYTES);

    let mut acknowledged = vec!["n0".to_owned()];
    let mut refused = None;
    for request in 1..50 {
        let host = format!("n{request}");
        let response = server.write_lines(CLUSTER, &lines(&host, start, request * LINES));
        if response.status != 200 {
            refused = Some(response);
            break;
        }
        acknowledged.push(host);
    }
    let refused = refused.expect("the WAL never hit the file size limit");
    refused.assert_error(503, "write-ahead log");
    assert!(server.is_running(), "SIGXFSZ killed the server");

    server
        .get("/healthz")
        .assert_error(503, "refuses writes until restart");
    let metrics = server.metrics();
    assert_eq!(
        metric_value(&metrics, "strata_wal_healthy"),
        Some(0.0),
        "{metrics}"
    );
    // Still refused: the log stays poisoned, it does not pick up writing half-way.
    server
        .write_lines(CLUSTER, &lines("late", start, 0))
        .assert_error(503, "write-ahead log");
    // Issue 7: a sample removed before the append (here: older than the retention window)
    // is counted as dropped even though the log refuses the rest of the request.
    let dropped = "strata_ingest_samples_dropped_total{reason=\"outside_retention\"}";
    assert_eq!(metric_value(&server.metrics(), dropped), None);
    let old = minutes_ago(49 * 60);
    server
        .write_lines(
            CLUSTER,
            &format!(
                "load,hostname=late,type=node value=1 {old}
{}",
                lines("late", start, 0)
            ),
        )
        .assert_error(503, "write-ahead log");
    assert_eq!(metric_value(&server.metrics(), dropped), Some(1.0));
    // A line rejected before the log refused a mid-request commit (a body of more than one
    // batch) is counted too.
    let rejected = "strata_ingest_lines_rejected_total{reason=\"syntax\"}";
    let before = metric_value(&server.metrics(), rejected).unwrap_or(0.0);
    let batches = (strata_server::ingest::BATCH_SAMPLES_MAX as i64 / LINES + 1) as usize;
    server
        .write_lines(
            CLUSTER,
            &format!(
                "not line protocol\n{}",
                lines("late", start, 0).repeat(batches)
            ),
        )
        .assert_error(503, "write-ahead log");
    assert_eq!(
        metric_value(&server.metrics(), rejected),
        Some(before + 1.0)
    );

    server.kill_now();
    server.restart();
    assert_eq!(
        metric_value(&server.metrics(), "strata_wal_healthy"),
        Some(1.0)
    );
    for (index, host) in acknowledged.iter().enumerate() {
        let body = server.query(&json!({
            "cluster": CLUSTER, "from": start, "to": start + 60 * LINES,
            "with-padding": false, "with-stats": false,
            "queries": [{"metric": "load", "host": host}]}));
        let data = body["results"][0][0]["data"]
            .as_array()
            .unwrap_or_else(|| panic!("host {host}: {body}; log:\n{}", server.log()));
        let base = index as i64 * LINES;
        let expected: Vec<f64> = (0..LINES).map(|i| (base + i) as f64).collect();
        let found: Vec<f64> = data.iter().filter_map(|v| v.as_f64()).collect();
        assert_eq!(
            found,
            expected,
            "host {host}; log:\n{}",
            server.earlier_logs()
        );
    }
}
