//! Input found by hostile black-box testing (issue 6, items 18, 19, 22 and the `?cluster=`
//! part of 23): valid gzip forms, numbers beyond float32, and error responses that must all
//! have cc-metric-store's JSON error shape, whatever part of the server produced them.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, assert_data, assert_number, metric_value, minutes_ago};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use std::io::Write;

const C: &str = "alex";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// Queries `metric` on host `h1` over `[from, to)` without padding and returns the entry.
fn read(server: &Server, metric: &str, from: i64, to: i64, scale_by: Option<f64>) -> Value {
    let mut query = json!({"metric": metric, "host": "h1"});
    if let Some(factor) = scale_by {
        query["scale-by"] = json!(factor);
    }
    let body = server.query(&json!({"cluster": C, "from": from, "to": to,
                                    "with-padding": false, "queries": [query]}));
    body["results"][0][0].clone()
}

#[test]
fn multi_member_and_upper_case_gzip_bodies_are_accepted() {
    // Goal: a gzip body of several members (RFC 1952 §2.2; what concatenating compressed
    // batches gives) is inflated whole, and content codings are case-insensitive
    // (RFC 9110 §8.4.1). Before: "failed to write whole buffer" and "unsupported".
    let server = Server::start();
    let t = minutes_ago(10);
    let target = format!("/api/write?cluster={C}");
    let mut body = gzip(format!("gz,host=h1 value=1 {t}\n").as_bytes());
    body.extend(gzip(format!("gz,host=h1 value=2 {}\n", t + 60).as_bytes()));
    body.extend(gzip(format!("gz,host=h1 value=3 {}\n", t + 120).as_bytes()));
    let response = server.request("POST", &target, &[("Content-Encoding", "gzip")], &body);
    response.assert_status(200);
    let body = gzip(format!("gz,host=h1 value=4 {}\n", t + 180).as_bytes());
    for coding in ["GZIP", "X-Gzip"] {
        let response = server.request("POST", &target, &[("Content-Encoding", coding)], &body);
        response.assert_status(200);
    }
    let stored = read(&server, "gz", t, t + 240, None);
    assert_data(
        &stored["data"],
        &[Some(1.0), Some(2.0), Some(3.0), Some(4.0)],
    );

    // Garbage after a complete member is still refused, and the member before it is kept.
    let mut body = gzip(format!("gz,host=h1 value=5 {}\n", t + 240).as_bytes());
    body.extend_from_slice(b"not gzip at all");
    let response = server.request("POST", &target, &[("Content-Encoding", "gzip")], &body);
    response.assert_error(400, "invalid gzip data");
}

#[test]
fn gzip_members_that_inflate_to_nothing_are_bounded_by_the_body_limit() {
    // Goal: with several members allowed, `limits.body-size` also bounds the compressed
    // bytes, so a stream of empty members cannot hold a request open until the timeout.
    let server = Server::start_with_config(&json!({
        "metric-store": {"limits": {"body-size": 1000}}
    }));
    let empty = gzip(b"");
    let body = empty.repeat(2000 / empty.len() + 1);
    let target = format!("/api/write?cluster={C}");
    let response = server.request("POST", &target, &[("Content-Encoding", "gzip")], &body);
    response.assert_error(413, "exceeds the limit of 1000 bytes");
    // Under the limit, empty members are a successful no-op.
    let response = server.request(
        "POST",
        &target,
        &[("Content-Encoding", "gzip")],
        &empty.repeat(3),
    );
    response.assert_status(200);
}

#[test]
fn values_beyond_float32_are_rejected_per_line_and_scaling_stays_finite() {
    // Goal: a value that float32 cannot hold is a rejected line with its reason, not a 200
    // that reads back as null; `scale-by` never turns data or statistics into null: where
    // the product leaves float32 the entry says so. Before: 200 and null.
    let server = Server::start();
    let t = minutes_ago(10);
    let response = server.write_lines(
        C,
        &format!(
            "big,host=h1 value=1 {t}\nbig,host=h1 value=1e39 {}\n\
             big,host=h1 value=2 {}\nbig,host=h1 value=-1e39 {}\n",
            t + 60,
            t + 120,
            t + 180
        ),
    );
    response.assert_status(400);
    let body = response.json();
    assert_eq!(body["error"], json!("2 of 4 lines rejected"), "{body}");
    assert_eq!(body["rejected"][0]["line"], json!(2), "{body}");
    assert_eq!(body["rejected"][1]["line"], json!(4), "{body}");
    let reason = body["rejected"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("outside the float32 range"), "{body}");
    assert_eq!(
        metric_value(
            &server.metrics(),
            "strata_ingest_lines_rejected_total{reason=\"value_range\"}"
        ),
        Some(2.0)
    );
    let stored = read(&server, "big", t, t + 240, None);
    assert_data(&stored["data"], &[Some(1.0), None, Some(2.0)]);

    // 2 × 1e308 leaves float32 (and nearly f64): an error entry instead of nulls.
    let scaled = read(&server, "big", t, t + 240, Some(1e308));
    let error = scaled["error"].as_str().unwrap_or_default();
    assert!(error.contains("scale-by"), "{scaled}");
    assert!(error.contains("float32"), "{scaled}");
    // A factor beyond float32's range still scales where the product fits.
    let scaled = read(&server, "big", t, t + 240, Some(1e-39));
    let tiny = scaled["data"][2].as_f64().unwrap_or_default();
    assert!((1.9e-39..2.1e-39).contains(&tiny), "{scaled}");
    // A negative factor keeps min ≤ max.
    server.write_ok(C, &format!("big,host=h1 value=4 {}\n", t + 60));
    let scaled = read(&server, "big", t, t + 240, Some(-1.0));
    assert_data(&scaled["data"], &[Some(-1.0), Some(-4.0), Some(-2.0)]);
    assert_number(&scaled["min"], -4.0);
    assert_number(&scaled["max"], -1.0);
}

#[test]
fn every_error_response_has_the_json_error_shape() {
    // Goal: whatever answers an error — a handler, axum's extractors, the router's 404 and
    // 405, the body limit — the body is cc-metric-store's error JSON. Before: text/plain
    // "Failed to deserialize…", empty 404 and 405 bodies.
    let server = Server::start();
    let t = minutes_ago(10);
    let line = format!("m,host=h1 value=1 {t}\n");

    let response = server.post(&format!("/api/write?cluster={C}&cluster=other"), &line);
    response.assert_error(400, "more than once");
    let response = server.post(&format!("/api/free?to={t}&to={t}"), "[]");
    response.assert_error(400, "query string");
    let response = server.get("/api/debug?selector=a&selector=b");
    response.assert_error(400, "query string");

    let response = server.get("/api/nope");
    response.assert_error(404, "/api/nope");
    let response = server.get("/");
    response.assert_error(404, "GET /");

    let response = server.request("DELETE", "/api/write", &[], b"");
    response.assert_error(405, "DELETE");
    assert_eq!(response.header("allow"), Some("POST"));
    let response = server.get("/api/free");
    response.assert_error(405, "/api/free");

    // The query body limit (64 MiB) of axum's `DefaultBodyLimit`.
    let huge = vec![b' '; (64 << 20) + 1];
    let response = server.request("POST", "/api/query", &[], &huge);
    response.assert_error(413, "length limit");

    // The 401 of authentication stays plain text, as cc-metric-store sends it (auth.rs).
    // Nothing above was stored.
    assert_eq!(server.get("/api/debug").json(), json!({"data": {}}));
}

#[test]
fn cluster_query_parameter_is_held_to_the_name_rule() {
    // Goal: `?cluster=` of /api/write passes the same check as a `cluster` tag: length
    // (limits.name-length), control characters, path characters, and bytes that are not
    // UTF-8 are a 400 before anything is stored. Before: all accepted.
    let server = Server::start();
    let t = minutes_ago(10);
    let line = format!("m,host=h1 value=1 {t}\n");
    let long = "c".repeat(60 * 1024);
    for (cluster, needle) in [
        (long.as_str(), "the limit is 256 bytes"),
        ("%00", "control character"),
        ("a%0ab", "control character"),
        ("%FF", "UTF-8"),
        ("..%2Fetc", "'..'"),
        ("%zz", "%-escape"),
    ] {
        let response = server.post(&format!("/api/write?cluster={cluster}"), &line);
        response.assert_error(400, needle);
    }
    // A long name is not echoed back whole.
    let response = server.post(&format!("/api/write?cluster={long}"), &line);
    assert!(response.body.len() < 1024, "{} bytes", response.body.len());
    assert_eq!(server.get("/api/debug").json(), json!({"data": {}}));
    // The same name as a tag is rejected as that line's fault.
    let response = server.write_lines(C, &format!("m,cluster=a\\ b\u{7},host=h1 value=1 {t}\n"));
    response.assert_status(400);
    assert!(
        response.text().contains("control character"),
        "{}",
        response.text()
    );
    server.write_ok("ok%20cluster", &line);
}
