//! Invalid input over HTTP (COMPAT.md §1.4, §4.1 and decision 2): every valid line of a
//! request is stored, invalid ones are listed with their 1-based line number in a 400, and no
//! input — however broken — brings the server down.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, assert_data, gzip, minutes_ago, send_raw, xorshift_bytes};
use serde_json::{Value, json};
use std::time::Duration;

const C: &str = "alex";

/// The `rejected` list of a 400 write response as `(line, reason)` pairs, after checking the
/// envelope `{"status":"Bad Request","error":"<n> of <m> lines rejected",…}`.
#[track_caller]
fn rejected(body: &Value, rejected: u64, lines: u64) -> Vec<(u64, String)> {
    assert_eq!(body["status"], json!("Bad Request"), "{body}");
    assert_eq!(
        body["error"],
        json!(format!("{rejected} of {lines} lines rejected")),
        "{body}"
    );
    body["rejected"]
        .as_array()
        .unwrap_or_else(|| panic!("no rejected list: {body}"))
        .iter()
        .map(|entry| {
            let line = entry["line"].as_u64().expect("line number");
            let reason = entry["reason"].as_str().expect("reason").to_owned();
            (line, reason)
        })
        .collect()
}

#[track_caller]
fn assert_reason(listed: &[(u64, String)], line: u64, needle: &str) {
    let (_, reason) = listed
        .iter()
        .find(|(number, _)| *number == line)
        .unwrap_or_else(|| panic!("line {line} not listed in {listed:?}"));
    assert!(
        reason.contains(needle),
        "line {line}: reason {reason:?} does not contain {needle:?}"
    );
}

/// Queries `metric` on `host` over `[from, to)` without padding and returns the entry.
fn read(server: &Server, host: &str, metric: &str, from: i64, to: i64) -> Value {
    let body = server.query(
        &json!({"cluster":C,"from":from,"to":to,"with-padding":false,
                                    "queries":[{"metric":metric,"host":host}]}),
    );
    body["results"][0][0].clone()
}

#[test]
fn mixed_body_lists_each_rejected_line_and_stores_every_valid_line() {
    // Goal: decision 2 — one request with valid lines between invalid ones of every
    // content-related kind answers 400 with the exact line numbers (comments and blank lines
    // count as lines) and a reason for each, and the valid lines are stored.
    let server = Server::start();
    let t = minutes_ago(10);
    let body = format!(
        "mixed,cluster={C},host=h1 value=1 {t}\n\
         # a comment\n\
         \n\
         mixed,cluster={C},host=h1 other=1 {t}\n\
         mixed,cluster={C},host=h1 value=\"text\" {t}\n\
         mixed,cluster={C},host=h1 value=true {t}\n\
         mixed,cluster={C} value=1 {t}\n\
         mixed,cluster={C},host=h1 value=2 {t1}\n\
         mixed,cluster=a/b,host=h1 value=1 {t}\n\
         mixed,cluster={C},host=x\\\\y value=1 {t}\n\
         mixed,cluster={C},host=.. value=1 {t}\n\
         this is not line protocol\n\
         mixed,cluster=..,host=h1 value=1 {t}\n\
         mixed,cluster={C},host=h1 value=3 {t2}\n",
        t1 = t + 60,
        t2 = t + 120
    );
    // Without ?cluster=, so that a missing cluster tag would be an error too.
    let response = server.post("/api/write", &body);
    response.assert_status(400);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let listed = rejected(&response.json(), 9, 12);
    let lines: Vec<u64> = listed.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [4, 5, 6, 7, 9, 10, 11, 12, 13]);
    assert_reason(&listed, 4, "unknown field 'other'");
    assert_reason(&listed, 5, "unsupported value type");
    assert_reason(&listed, 6, "unsupported value type");
    assert_reason(&listed, 7, "missing host");
    assert_reason(&listed, 9, "cluster \"a/b\" contains '/', '\\' or '..'");
    assert_reason(&listed, 10, "host \"x\\\\y\" contains");
    assert_reason(&listed, 11, "host \"..\" contains");
    assert!(!listed[7].1.is_empty(), "syntax error without reason");
    assert_reason(&listed, 13, "cluster \"..\" contains");

    let stored = read(&server, "h1", "mixed", t, t + 180);
    assert_data(&stored["data"], &[Some(1.0), Some(2.0), Some(3.0)]);
    // Nothing was written under the invalid names.
    let debug = server.get("/api/debug").json();
    let clusters: Vec<&String> = debug["data"].as_object().expect("data").keys().collect();
    assert_eq!(clusters, [C], "{debug}");
    let hosts: Vec<&String> = debug["data"][C]
        .as_object()
        .expect("hosts")
        .keys()
        .collect();
    assert_eq!(hosts, ["h1"], "{debug}");
}

#[test]
fn limits_and_missing_cluster_reject_single_lines() {
    // Goal: an over-long line (`limits.line-length`), too many tags (`limits.tags-per-line`),
    // an over-long name (`limits.name-length`) and a line without cluster tag or ?cluster=
    // are each rejected alone; the lines around them are stored.
    let server = Server::start_with_config(&json!({
        "metric-store": {"limits": {"line-length": 200, "tags-per-line": 4, "name-length": 64}}
    }));
    let t = minutes_ago(10);
    // A valid line except for its length: a float written with 180 trailing zeros.
    let long_float = format!("1.{}", "0".repeat(180));
    let body = format!(
        "lim,cluster={C},host=h1 value=1 {t}\n\
         lim,cluster={C},host=h1 value={long_float} {t}\n\
         lim,cluster={C},host=h1,a=1,b=2,c=3 value=1 {t}\n\
         lim,cluster={C},host=h1,a=1,b=2 value=2 {t1}\n\
         lim,cluster={C},host={long_name} value=1 {t}\n\
         lim,host=h1 value=1 {t}\n\
         lim,cluster={C},host=h1 value=3 {t2}",
        long_name = "n".repeat(65),
        t1 = t + 60,
        t2 = t + 120
    );
    let response = server.post("/api/write", &body);
    response.assert_status(400);
    let listed = rejected(&response.json(), 4, 7);
    let lines: Vec<u64> = listed.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [2, 3, 5, 6]);
    assert_reason(&listed, 2, "line is too long");
    assert_reason(&listed, 2, "(max 200)");
    assert_reason(&listed, 3, "too many tags (max 4)");
    assert_reason(&listed, 5, "is too long: 65 bytes (max 64)");
    assert_reason(&listed, 6, "missing cluster");
    let stored = read(&server, "h1", "lim", t, t + 180);
    assert_data(&stored["data"], &[Some(1.0), Some(2.0), Some(3.0)]);
}

#[test]
fn at_most_ten_rejected_lines_are_listed_but_all_are_counted() {
    // Goal: a request with 15 bad lines lists the first 10 and counts all 15.
    let server = Server::start();
    let t = minutes_ago(10);
    let mut body = String::new();
    for i in 0..17 {
        if i == 0 || i == 16 {
            body.push_str(&format!(
                "many,host=h1 value={i} {}\n",
                t + 60 * i64::from(i / 16)
            ));
        } else {
            body.push_str(&format!("many,host=h1 bad={i} {t}\n"));
        }
    }
    let response = server.write_lines(C, &body);
    response.assert_status(400);
    let listed = rejected(&response.json(), 15, 17);
    let lines: Vec<u64> = listed.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, (2..=11).collect::<Vec<u64>>());
    assert!(
        listed
            .iter()
            .all(|(_, reason)| reason.contains("unknown field 'bad'"))
    );
    let stored = read(&server, "h1", "many", t, t + 120);
    assert_data(&stored["data"], &[Some(0.0), Some(16.0)]);
}

#[test]
fn crlf_line_endings_comments_and_blank_lines_are_accepted() {
    // Goal: `\r\n` endings, `#` comments, blank lines and a last line without newline are
    // all fine (200, everything stored).
    let server = Server::start();
    let t = minutes_ago(10);
    let body = format!(
        "# written by a Windows collector\r\n\r\ncrlf,host=h1 value=1 {t}\r\n\
         # another comment\r\ncrlf,host=h1 value=2 {}\r\n\r\n\r\ncrlf,host=h1 value=3 {}",
        t + 60,
        t + 120
    );
    server.write_ok(C, &body);
    let stored = read(&server, "h1", "crlf", t, t + 180);
    assert_data(&stored["data"], &[Some(1.0), Some(2.0), Some(3.0)]);
    // A body of only comments and blank lines is a successful no-op.
    server.write_ok(C, "# nothing here\r\n\r\n\n");
}

#[test]
fn gzip_bodies_are_decompressed_and_broken_gzip_is_rejected() {
    // Goal: `Content-Encoding: gzip` (and `x-gzip`) bodies are inflated before parsing; bytes
    // that are not gzip are a 400.
    let server = Server::start();
    let t = minutes_ago(10);
    let body = gzip(format!("gz,host=h1 value=1 {t}\ngz,host=h1 value=2 {}\n", t + 60).as_bytes());
    let target = format!("/api/write?cluster={C}");
    let response = server.request("POST", &target, &[("Content-Encoding", "gzip")], &body);
    response.assert_status(200);
    let body = gzip(format!("gz,host=h1 value=3 {}\n", t + 120).as_bytes());
    let response = server.request("POST", &target, &[("Content-Encoding", "x-gzip")], &body);
    response.assert_status(200);
    let stored = read(&server, "h1", "gz", t, t + 180);
    assert_data(&stored["data"], &[Some(1.0), Some(2.0), Some(3.0)]);

    let response = server.request(
        "POST",
        &target,
        &[("Content-Encoding", "gzip")],
        format!("gz,host=h1 value=9 {t}\n").as_bytes(),
    );
    response.assert_error(400, "invalid gzip data");
    // The plain text sent as "gzip" was not stored.
    let stored = read(&server, "h1", "gz", t, t + 180);
    assert_data(&stored["data"], &[Some(1.0), Some(2.0), Some(3.0)]);
}

#[test]
fn unsupported_content_encoding_is_rejected() {
    // Goal: an encoding Strata cannot decode is refused with a 400 instead of being parsed as
    // line protocol.
    let server = Server::start();
    let t = minutes_ago(10);
    for encoding in ["br", "deflate", "zstd"] {
        let response = server.request(
            "POST",
            &format!("/api/write?cluster={C}"),
            &[("Content-Encoding", encoding)],
            format!("enc,host=h1 value=1 {t}\n").as_bytes(),
        );
        response.assert_error(400, "unsupported Content-Encoding");
        response.assert_error(400, encoding);
    }
    // Nothing was parsed: the metric was never even auto-registered.
    let stored = read(&server, "h1", "enc", t, t + 60);
    assert_eq!(stored["error"], json!("unknown metric: enc"));
}

#[test]
fn body_over_the_size_limit_is_rejected_with_413() {
    // Goal: `limits.body-size` bounds the body, measured after decompression: a larger plain
    // body or a small gzip body inflating past it gets 413; a body under it is accepted.
    let server = Server::start_with_config(&json!({
        "metric-store": {"limits": {"body-size": 1000}}
    }));
    let t = minutes_ago(10);
    let target = format!("/api/write?cluster={C}");
    let small = format!("size,host=h1 value=1 {t}\n");
    server.write_ok(C, &small);

    let large: String = (0..100)
        .map(|i| format!("size,host=h2 value={i} {t}\n"))
        .collect();
    assert!(large.len() > 2000);
    let response = server.post(&target, &large);
    response.assert_error(413, "exceeds the limit of 1000 bytes");

    let bomb = gzip(large.repeat(20).as_bytes());
    assert!(
        bomb.len() < 1000,
        "compressed body should be under the limit"
    );
    let response = server.request("POST", &target, &[("Content-Encoding", "gzip")], &bomb);
    response.assert_status(413);

    // The server is still serving and the small write is there.
    let stored = read(&server, "h1", "size", t, t + 60);
    assert_data(&stored["data"], &[Some(1.0)]);
}

#[test]
fn invalid_query_json_is_a_400_with_the_error_json() {
    // Goal: a query body that is not a valid request is answered with cc-metric-store's error
    // JSON, not a 5xx or an empty body.
    let server = Server::start();
    for body in [
        &b"{not json"[..],
        b"",
        br#""a string""#,
        br#"{"cluster":"c","queries":["#,
        br#"{"cluster":"c","from":"yesterday"}"#,
        br#"{"queries":[{"metric":1}]}"#,
    ] {
        let response = server.request("GET", "/api/query", &[], body);
        assert_eq!(
            response.status,
            400,
            "body {:?}: {}",
            String::from_utf8_lossy(body),
            response.text()
        );
        assert_eq!(response.header("content-type"), Some("application/json"));
        let error = response.json();
        assert_eq!(error["status"], json!("Bad Request"));
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("invalid query request")),
            "{error}"
        );
    }
}

#[test]
fn random_garbage_never_crashes_the_server() {
    // Goal: 64 KiB of fixed-seed random bytes — as a write body, as other endpoints' bodies,
    // as line-protocol-like token soup and as raw non-HTTP bytes on the socket — get 4xx
    // answers (or a closed connection), and the process keeps serving.
    let mut server = Server::start();
    let garbage = xorshift_bytes(0x5eed_1234_abcd_ef01, 64 * 1024);
    let target = format!("/api/write?cluster={C}");

    let response = server.post(&target, &garbage);
    response.assert_status(400);
    let body = response.json();
    let counted = body["error"].as_str().expect("error").to_owned();
    let (rejected_count, lines) = counted
        .strip_suffix(" lines rejected")
        .and_then(|s| s.split_once(" of "))
        .unwrap_or_else(|| panic!("unexpected error {counted:?}"));
    assert_eq!(
        rejected_count, lines,
        "some random line was accepted: {body}"
    );
    assert!(
        body["rejected"]
            .as_array()
            .is_some_and(|r| !r.is_empty() && r.len() <= 10)
    );

    let response = server.request("POST", &target, &[("Content-Encoding", "gzip")], &garbage);
    response.assert_status(400);
    for (method, path) in [
        ("GET", "/api/query"),
        ("POST", "/api/query"),
        ("POST", "/api/free?to=100"),
        ("GET", "/api/healthcheck"),
    ] {
        let response = server.request(method, path, &[], &garbage);
        assert_eq!(response.status, 400, "{method} {path}: {}", response.text());
    }

    // Line-protocol-like token soup exercises the parser beyond its first byte.
    let tokens: [&[u8]; 16] = [
        b"m",
        b",",
        b"=",
        b" ",
        b"\\",
        b"\"",
        b"\n",
        b"value",
        b"host",
        b"cluster",
        b"1",
        b"-2.5e3",
        b"i",
        b"type",
        b"1700000000",
        b"#",
    ];
    let mut soup = Vec::new();
    for byte in xorshift_bytes(42, 64 * 1024) {
        soup.extend_from_slice(tokens[usize::from(byte) % tokens.len()]);
    }
    let response = server.post(&target, &soup);
    assert!(
        response.status == 200 || response.status == 400,
        "token soup: {} {}",
        response.status,
        response.text()
    );
    if response.status == 400 {
        let body = response.json();
        let listed = body["rejected"].as_array().expect("rejected");
        assert!(listed.len() <= 10);
        let numbers: Vec<u64> = listed.iter().filter_map(|r| r["line"].as_u64()).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    }

    // Raw bytes that are not HTTP at all.
    let reply = send_raw(&server.addr, &garbage, Duration::from_secs(5));
    if !reply.is_empty() {
        let text = String::from_utf8_lossy(&reply);
        assert!(text.starts_with("HTTP/1.1 4"), "reply to garbage: {text}");
    }

    assert!(server.is_running(), "strata died; log:\n{}", server.log());
    let health = server.get("/healthz");
    health.assert_status(200);
    assert_eq!(health.text(), "ok\n");
    // And it still ingests.
    let t = minutes_ago(10);
    server.write_ok(C, &format!("after,host=h1 value=5 {t}\n"));
    assert_data(
        &read(&server, "h1", "after", t, t + 60)["data"],
        &[Some(5.0)],
    );
}
