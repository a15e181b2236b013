//! The InfluxDB-compatible endpoints: `POST /write` (1.x), `POST /api/v2/write` (2.x),
//! `/ping`, `/health` and `POST /query` (`CREATE DATABASE` only), written to with the real
//! client libraries (`influxdb-client` 1.50.0 for 2.x, `influxdb` 5.3.2 for 1.x, driven by
//! tests/influx_write.py) and with raw HTTP for the error shapes and limits. Needs `python3`
//! with both packages: scripts/test.sh installs them from scripts/test-requirements.txt;
//! without them these tests fail, they never skip.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{
    DOCS_PUBLIC_KEY, DOCS_TOKEN, Response, Server, assert_data, gzip, metric_value, minutes_ago,
    now_s,
};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const C: &str = "fritz";

/// Runs tests/influx_write.py with `writes` against `server`; returns one result per write.
fn client_writes(server: &Server, writes: &[Value]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/influx_write.py");
    let job = json!({ "url": format!("http://{}", server.addr), "writes": writes });
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 cannot start: {e}; scripts/test.sh installs it"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "influx_write.py failed (influxdb-client or influxdb missing? scripts/test.sh installs \
         them from scripts/test-requirements.txt):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "influx_write.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    assert_eq!(results.len(), writes.len(), "{results:?}");
    results
}

/// Asserts that `cpu_load` of each `(cluster, host, from, values)` holds `values` in
/// consecutive 60 s slots from `from`.
#[track_caller]
fn assert_stored(server: &Server, expected: &[(&str, &str, i64, &[f64])]) {
    for (cluster, host, from, values) in expected {
        let data = read(
            server,
            cluster,
            host,
            "cpu_load",
            *from,
            values.len() as i64,
        );
        let values: Vec<Option<f64>> = values.iter().copied().map(Some).collect();
        assert_data(&data, &values);
    }
}

/// The data of `metric` on `host` in `cluster` over `[from, from + 60 * slots)`.
fn read(server: &Server, cluster: &str, host: &str, metric: &str, from: i64, slots: i64) -> Value {
    let body = server.query(
        &json!({"cluster": cluster, "from": from, "to": from + 60 * slots,
                                    "queries": [{"metric": metric, "host": host}]}),
    );
    body["results"][0][0]["data"].clone()
}

/// `strata_http_responses_total{route, status}` in the `/metrics` text.
fn responses(metrics: &str, route: &str, status: u16) -> Option<f64> {
    let series = format!(r#"strata_http_responses_total{{route="{route}",status="{status}"}}"#);
    metric_value(metrics, &series)
}

#[track_caller]
fn assert_ok(results: &[Value]) {
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["ok"], json!(true), "write {i}: {result}");
    }
}

/// Asserts InfluxDB 1.x's error: `status`, `application/json`, `{"error": …needle…}` only.
#[track_caller]
fn assert_v1_error(response: &Response, status: u16, needle: &str) {
    response.assert_status(status);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    let object = body.as_object().unwrap();
    assert_eq!(object.len(), 1, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(needle), "{body} does not mention {needle:?}");
}

/// Asserts InfluxDB 2.x's error: `status`, `{"code": code, "message": …needle…}` only.
#[track_caller]
fn assert_v2_error(response: &Response, status: u16, code: &str, needle: &str) {
    response.assert_status(status);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert_eq!(body["code"], json!(code), "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{body} does not mention {needle:?}"
    );
}

#[test]
fn influxdb_client_v2_writes_are_stored_exactly() {
    // Goal (issue 9 items 3, 6): the real 2.x client writes with gzip on and off and every
    // precision it offers; the values come back exactly, in the bucket's cluster unless a
    // line names its own. A request with a bad line raises the client's ApiException with
    // status 400 and our message, and that request's good lines are stored.
    let server = Server::start();
    let t = minutes_ago(30);
    let writes = [
        json!({"api": "v2", "bucket": C, "precision": "s", "gzip": false, "lines": [
            format!("cpu_load,hostname=n1 value=1.25 {t}"),
            format!("cpu_load,hostname=n1 value=2.5 {}", t + 60),
            format!("cpu_load,hostname=n1,cluster=alex value=7 {t}"),
        ]}),
        json!({"api": "v2", "bucket": C, "precision": "ms", "gzip": true, "lines": [
            format!("cpu_load,hostname=n2 value=3.75 {}", t * 1000),
            format!("cpu_load,hostname=n2 value=4 {}", (t + 60) * 1000 + 999),
        ]}),
        json!({"api": "v2", "bucket": C, "precision": "us", "gzip": false, "lines": [
            format!("cpu_load,hostname=n3 value=-1 {}", t * 1_000_000),
        ]}),
        json!({"api": "v2", "bucket": C, "precision": "ns", "gzip": true, "lines": [
            format!("cpu_load,hostname=n4 value=1e3 {}", t * 1_000_000_000),
            format!("mem_used,hostname=n4,type=socket,type-id=1 value=42i {}", t * 1_000_000_000),
        ]}),
        json!({"api": "v2", "bucket": C, "precision": "ns", "gzip": false, "lines": [
            format!("cpu_load,hostname=n5 value=5 {}", t * 1_000_000_000),
            "this is not line protocol".to_owned(),
            format!("cpu_load,hostname=n5 value=6 {}", (t + 60) * 1_000_000_000),
        ]}),
        // The client's ping(), version() and health().
        json!({"api": "v2", "op": "ping"}),
    ];
    let results = client_writes(&server, &writes);
    assert_eq!(
        results[5],
        json!({"ok": true, "version": "1.8.10-strata", "health": "pass"})
    );
    assert_ok(&results[..4]);
    let failed = &results[4];
    assert_eq!(failed["exception"], json!("ApiException"), "{failed}");
    assert_eq!(failed["status"], json!(400), "{failed}");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.starts_with("partial write: 1 of 3 lines rejected; first: line 2: "),
        "{failed}"
    );
    let body: Value = serde_json::from_str(failed["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["code"], json!("invalid"), "{body}");

    assert_stored(
        &server,
        &[
            (C, "n1", t, &[1.25, 2.5]),
            ("alex", "n1", t, &[7.0]),
            (C, "n2", t, &[3.75, 4.0]),
            (C, "n3", t, &[-1.0]),
            (C, "n4", t, &[1000.0]),
            (C, "n5", t, &[5.0, 6.0]),
        ],
    );
    let socket = server.query(&json!({"cluster": C, "from": t, "to": t + 60, "queries": [
        {"metric": "mem_used", "host": "n4", "type": "socket", "type-ids": ["1"]}]}));
    assert_data(&socket["results"][0][0]["data"], &[Some(42.0)]);

    // The rate-limited log line about rejected lines names the API they came through.
    let log = server.log();
    assert!(log.contains("source=\"influx_v2\""), "{log}");
    let metrics = server.metrics();
    assert_eq!(
        responses(&metrics, "influx_v2", 204),
        Some(4.0),
        "{metrics}"
    );
    assert_eq!(
        responses(&metrics, "influx_v2", 400),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn influxdb_v1_client_writes_are_stored_exactly() {
    // Goal (issue 9 items 3, 6): the real 1.x client's write_points(protocol='line') is
    // accepted (it insists on 204) with and without time_precision, minutes and hours
    // included, gzip on and off; the values come back exactly. A bad line raises the client's
    // error with our 400 and the good lines are stored.
    let server = Server::start();
    let t = minutes_ago(30);
    let hour = (now_s() / 3600 - 2) * 3600;
    let line = |host: &str, value: &str, timestamp: i64| {
        format!("cpu_load,hostname={host} value={value} {timestamp}")
    };
    let writes = [
        // No precision: detected by magnitude (seconds here).
        json!({"api": "v1", "db": C, "precision": null, "gzip": false,
               "lines": [line("a1", "1.5", t), line("a1", "2.5", t + 60)]}),
        json!({"api": "v1", "db": C, "precision": null, "gzip": true,
               "lines": [line("a2", "3", t * 1_000_000_000)]}),
        json!({"api": "v1", "db": C, "precision": "n", "gzip": false,
               "lines": [line("a3", "4", t * 1_000_000_000)]}),
        json!({"api": "v1", "db": C, "precision": "u", "gzip": true,
               "lines": [line("a4", "5", t * 1_000_000)]}),
        json!({"api": "v1", "db": C, "precision": "ms", "gzip": false,
               "lines": [line("a5", "6", t * 1000)]}),
        json!({"api": "v1", "db": C, "precision": "s", "gzip": false,
               "lines": [line("a6", "7", t)]}),
        json!({"api": "v1", "db": C, "precision": "m", "gzip": false,
               "lines": [line("a7", "8", t / 60), line("a7", "9", t / 60 + 1)]}),
        json!({"api": "v1", "db": C, "precision": "h", "gzip": true,
               "lines": [line("a8", "10", hour / 3600)]}),
        // No db: each line names its cluster.
        json!({"api": "v1", "db": null, "precision": "s", "gzip": false,
               "lines": [format!("cpu_load,cluster=alex,hostname=a9 value=11 {t}")]}),
        json!({"api": "v1", "db": C, "precision": "s", "gzip": false,
               "lines": [line("b1", "12", t), "cpu_load value=1".to_owned(),
                         line("b1", "13", t + 60)]}),
    ];
    let probes = [
        json!({"api": "v1", "op": "ping"}),
        // Telegraf and this client create the database first; Strata answers and ignores it.
        json!({"api": "v1", "op": "create_database", "db": C}),
        json!({"api": "v1", "op": "query", "db": C, "q": "SELECT * FROM cpu_load"}),
    ];
    let results = client_writes(&server, &[&writes[..], &probes[..]].concat());
    assert_ok(&results[..9]);
    assert_eq!(results[10], json!({"ok": true, "version": "1.8.10-strata"}));
    assert_eq!(results[11], json!({"ok": true}));
    assert_eq!(results[12]["status"], json!(400), "{}", results[12]);
    let message = results[12]["message"].as_str().unwrap_or_default();
    assert!(message.contains("query data with /api/query"), "{message}");
    let failed = &results[9];
    assert_eq!(
        failed["exception"],
        json!("InfluxDBClientError"),
        "{failed}"
    );
    assert_eq!(failed["status"], json!(400), "{failed}");
    let body: Value = serde_json::from_str(failed["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"error": "partial write: 1 of 3 lines rejected; first: line 2: missing host \
                         (tag 'hostname' or 'host')"})
    );

    let minute = t / 60 * 60;
    assert_stored(
        &server,
        &[
            (C, "a1", t, &[1.5, 2.5]),
            (C, "a2", t, &[3.0]),
            (C, "a3", t, &[4.0]),
            (C, "a4", t, &[5.0]),
            (C, "a5", t, &[6.0]),
            (C, "a6", t, &[7.0]),
            (C, "a7", minute, &[8.0, 9.0]),
            (C, "a8", hour, &[10.0]),
            ("alex", "a9", t, &[11.0]),
            (C, "b1", t, &[12.0, 13.0]),
        ],
    );
    // The rate-limited log line about rejected lines names the API they came through.
    let log = server.log();
    assert!(log.contains("source=\"influx_v1\""), "{log}");
    let metrics = server.metrics();
    assert_eq!(
        responses(&metrics, "influx_v1", 204),
        Some(9.0),
        "{metrics}"
    );
}

#[test]
fn with_jwt_on_influx_clients_authenticate_where_they_put_tokens() {
    // Goal (issue 9 item 3): with main.jwt-public-key set, the 2.x client's `Token` and the
    // 1.x client's Bearer, Token, Basic (password = JWT) and `p=` are checked like /api/'s
    // Bearer; a missing or bad token is a 401 in InfluxDB's shape that says nothing about the
    // token; /ping and /health stay open; no token ever reaches the log.
    // Debug level: the reason of each refusal is logged there.
    let server = Server::start_with_log_level(
        &json!({"main": {"jwt-public-key": DOCS_PUBLIC_KEY}}),
        "debug",
    );
    let t = minutes_ago(20);
    let bad_token = format!("{DOCS_TOKEN}x");
    let line = |host: &str| vec![format!("cpu_load,hostname={host} value=1 {t}")];
    let bearer = format!("Bearer {DOCS_TOKEN}");
    let token = format!("Token {DOCS_TOKEN}");
    let writes = [
        json!({"api": "v2", "bucket": C, "precision": "s", "gzip": false, "token": DOCS_TOKEN,
               "lines": line("v2ok")}),
        json!({"api": "v2", "bucket": C, "precision": "s", "gzip": false, "token": bad_token,
               "lines": line("v2bad")}),
        json!({"api": "v2", "bucket": C, "precision": "s", "gzip": false, "token": null,
               "lines": line("v2none")}),
        json!({"api": "v1", "db": C, "precision": "s", "gzip": false,
               "auth": {"headers": {"Authorization": bearer}}, "lines": line("v1bearer")}),
        json!({"api": "v1", "db": C, "precision": "s", "gzip": true,
               "auth": {"headers": {"Authorization": token}}, "lines": line("v1token")}),
        json!({"api": "v1", "db": C, "precision": "s", "gzip": false,
               "auth": {"password": DOCS_TOKEN}, "lines": line("v1basic")}),
        json!({"api": "v1", "db": C, "precision": "s", "gzip": false,
               "auth": {"password": bad_token}, "lines": line("v1bad")}),
        json!({"api": "v1", "db": C, "precision": "s", "gzip": false, "lines": line("v1root")}),
    ];
    let results = client_writes(&server, &writes);
    for i in [0, 3, 4, 5] {
        assert_eq!(results[i]["ok"], json!(true), "write {i}: {}", results[i]);
    }
    let unauthorized_v2 = json!({"code": "unauthorized", "message": "unauthorized access"});
    let unauthorized_v1 = json!({"error": "authorization failed"});
    for (i, expected) in [
        (1, &unauthorized_v2),
        (2, &unauthorized_v2),
        (6, &unauthorized_v1),
        (7, &unauthorized_v1),
    ] {
        let result = &results[i];
        assert_eq!(result["status"], json!(401), "write {i}: {result}");
        let body: Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap();
        assert_eq!(&body, expected, "write {i}");
    }

    // `p=` and the malformed credentials no client sends.
    let body = format!("cpu_load,hostname=v1p value=1 {t}\n");
    let response = server.post(&format!("/write?db={C}&u=me&p={DOCS_TOKEN}"), &body);
    response.assert_status(204);
    let basic = |raw: &[u8]| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let no_colon = basic(DOCS_TOKEN.as_bytes());
    let refused: [(String, Vec<(&str, &str)>); 6] = [
        (format!("/write?db={C}&p={bad_token}"), vec![]),
        (format!("/write?db={C}&p=%zz{DOCS_TOKEN}"), vec![]),
        (format!("/write?db={C}"), vec![("Authorization", &no_colon)]),
        (
            format!("/write?db={C}"),
            vec![("Authorization", "Basic !!!")],
        ),
        // A header that holds no token is not overridden by `p`.
        (
            format!("/write?db={C}&p={DOCS_TOKEN}"),
            vec![("Authorization", "Digest x")],
        ),
        (format!("/query?p={bad_token}&q=CREATE+DATABASE+x"), vec![]),
    ];
    for (target, headers) in &refused {
        let response = server.request("POST", target, headers, body.as_bytes());
        assert_eq!(
            response.json(),
            json!({"error": "authorization failed"}),
            "{target}"
        );
        response.assert_status(401);
    }
    let v2 = server.request(
        "POST",
        &format!("/api/v2/write?bucket={C}&org=o"),
        &[(
            "Authorization",
            &basic(format!("u:{DOCS_TOKEN}").as_bytes()),
        )],
        body.as_bytes(),
    );
    assert_v2_error(&v2, 401, "unauthorized", "unauthorized access");
    let create = server.post(&format!("/query?p={DOCS_TOKEN}&q=CREATE+DATABASE+x"), "");
    create.assert_status(200);
    server.get("/ping").assert_status(204);
    server.get("/health").assert_status(200);

    for host in ["v2ok", "v1bearer", "v1token", "v1basic", "v1p"] {
        assert_data(&read_secured(&server, host, t), &[Some(1.0)]);
    }
    for host in ["v2bad", "v2none", "v1bad", "v1root"] {
        let data = read_secured(&server, host, t);
        assert!(data.is_null(), "{host} was stored: {data}");
    }
    let log = server.log();
    assert!(log.contains("request refused"), "{log}");
    for secret in [DOCS_TOKEN, &bad_token, &no_colon] {
        assert!(!log.contains(secret), "a token is in the log:\n{log}");
    }
    // The token's signature alone (what a truncated log line could keep) is not there either.
    let signature = DOCS_TOKEN.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "{log}");
}

fn read_secured(server: &Server, host: &str, t: i64) -> Value {
    let query = json!({"cluster": C, "from": t, "to": t + 60,
                       "queries": [{"metric": "cpu_load", "host": host}]});
    let response = server.request(
        "GET",
        "/api/query",
        &[("Authorization", &format!("Bearer {DOCS_TOKEN}"))],
        query.to_string().as_bytes(),
    );
    response.assert_status(200);
    response.json()["results"][0][0]["data"].clone()
}

#[test]
fn errors_and_limits_answer_in_influxdb_shapes() {
    // Goal (issue 9 items 3, 6): syntax errors, oversize bodies, gzip bombs, unknown
    // precisions, a missing bucket, ambiguous or non-UTF-8 parameters each get InfluxDB's
    // status and body shape of the API they came in through; /ping, /health and CREATE
    // DATABASE answer what clients expect; the valid lines of a rejected body are stored.
    let server = Server::start_with_config(&json!({
        "metric-store": {"limits": {"body-size": 1000, "line-length": 200}}
    }));
    let t = minutes_ago(10);
    let good = format!("m,hostname=h1 value=1 {t}\n");
    let v1 = |target: &str, headers: &[(&str, &str)], body: &[u8]| {
        server.request("POST", &format!("/write{target}"), headers, body)
    };
    let v2 = |target: &str, headers: &[(&str, &str)], body: &[u8]| {
        server.request("POST", &format!("/api/v2/write{target}"), headers, body)
    };

    let mixed = format!("{good}garbage\nm,hostname=h2 value=2 {t}\n");
    assert_v1_error(
        &v1(&format!("?db={C}"), &[], mixed.as_bytes()),
        400,
        "partial write: 1 of 3 lines rejected; first: line 2: ",
    );
    assert_v2_error(
        &v2(&format!("?bucket={C}"), &[], mixed.as_bytes()),
        400,
        "invalid",
        "partial write: 1 of 3 lines rejected; first: line 2: ",
    );
    let stored = read(&server, C, "h2", "m", t, 1);
    assert_data(&stored, &[Some(2.0)]);
    // A line without a cluster names the parameter of this API, not /api/write's.
    assert_v1_error(
        &v1("?cluster=ignored", &[], good.as_bytes()),
        400,
        "missing cluster (tag 'cluster' or query parameter 'db')",
    );

    let large: String = (0..100)
        .map(|i| format!("m,hostname=h3 value={i} {t}\n"))
        .collect();
    assert!(large.len() > 2000);
    assert_v1_error(
        &v1(&format!("?db={C}"), &[], large.as_bytes()),
        413,
        "exceeds the limit of 1000 bytes",
    );
    assert_v2_error(
        &v2(&format!("?bucket={C}"), &[], large.as_bytes()),
        413,
        "request too large",
        "exceeds the limit of 1000 bytes",
    );
    let bomb = gzip(large.repeat(20).as_bytes());
    assert!(
        bomb.len() < 1000,
        "compressed body should be under the limit"
    );
    let gzipped = [("Content-Encoding", "gzip")];
    assert_v1_error(
        &v1(&format!("?db={C}"), &gzipped, &bomb),
        413,
        "exceeds the limit",
    );
    assert_v2_error(
        &v2(&format!("?bucket={C}"), &gzipped, &bomb),
        413,
        "request too large",
        "exceeds the limit",
    );
    // A line over `line-length` in a body within the limit is one rejected line, the rest is
    // stored.
    let huge = format!(
        "m,hostname=h4 value=4 {t}\nm,hostname=h4,x={} value=5 {t}\n",
        "y".repeat(900)
    );
    assert_v1_error(
        &v1(&format!("?db={C}"), &[], huge.as_bytes()),
        400,
        "partial write: 1 of 2 lines rejected; first: line 2: line is too long",
    );
    assert_data(&read(&server, C, "h4", "m", t, 1), &[Some(4.0)]);

    for precision in ["d", "M", "ns2", "%C2%B5"] {
        assert_v1_error(
            &v1(
                &format!("?db={C}&precision={precision}"),
                &[],
                good.as_bytes(),
            ),
            400,
            "invalid precision",
        );
    }
    // InfluxDB 2.x knows only ns, us, ms and s; 1.x's spellings are refused there.
    for precision in ["n", "u", "m", "h", "%C2%B5s"] {
        assert_v2_error(
            &v2(
                &format!("?bucket={C}&precision={precision}"),
                &[],
                good.as_bytes(),
            ),
            400,
            "invalid",
            "valid precision units are ns, us, ms or s",
        );
    }
    for target in ["", "?bucket=", "?org=o&db=x"] {
        let response = v2(target, &[], good.as_bytes());
        response.assert_status(400);
        assert_eq!(
            response.json(),
            json!({"code": "invalid", "message": "bucket is required"})
        );
    }
    assert_v1_error(
        &v1(&format!("?db={C}&db=alex"), &[], good.as_bytes()),
        400,
        "\"db\" is given more than once",
    );
    assert_v2_error(
        &v2("?bucket=a&bucket=b", &[], good.as_bytes()),
        400,
        "invalid",
        "\"bucket\" is given more than once",
    );
    assert_v1_error(&v1("?db=%FF", &[], good.as_bytes()), 400, "not valid UTF-8");
    assert_v1_error(&v1("?db=%F", &[], good.as_bytes()), 400, "invalid %-escape");
    assert_v2_error(
        &v2("?bucket=%C3%28", &[], good.as_bytes()),
        400,
        "invalid",
        "UTF-8",
    );
    assert_v1_error(&v1("?db=a/b", &[], good.as_bytes()), 400, "cluster");
    assert_v1_error(
        &v1(
            &format!("?db={C}"),
            &[("Content-Encoding", "br")],
            good.as_bytes(),
        ),
        400,
        "unsupported Content-Encoding",
    );
    // Ignored parameters, as InfluxDB's clients send them.
    v1(
        &format!("?db={C}&rp=autogen&consistency=one&u=x&p=y"),
        &[],
        good.as_bytes(),
    )
    .assert_status(204);
    let ok = v2(
        &format!("?bucket={C}&org=o&orgID=1&precision=s"),
        &[],
        good.as_bytes(),
    );
    ok.assert_status(204);
    assert!(ok.body.is_empty());

    for method in ["GET", "HEAD"] {
        let ping = server.request(method, "/ping", &[], b"");
        ping.assert_status(204);
        assert_eq!(ping.header("x-influxdb-version"), Some("1.8.10-strata"));
        assert!(ping.body.is_empty());
    }
    let health = server.get("/health");
    health.assert_status(200);
    assert_eq!(health.json()["status"], json!("pass"));

    let created = json!({"results": [{"statement_id": 0}]});
    let create = server.post("/query?q=CREATE+DATABASE+%22telegraf%22", "");
    create.assert_status(200);
    assert_eq!(create.json(), created);
    let form = server.request(
        "POST",
        "/query",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"db=&q=create%20database%20telegraf",
    );
    form.assert_status(200);
    assert_eq!(form.json(), created);
    for target in [
        "/query?q=SELECT+*+FROM+m",
        "/query",
        "/query?q=DROP+DATABASE+x",
    ] {
        assert_v1_error(&server.post(target, ""), 400, "query data with /api/query");
    }
    // QUERY_FORM_BYTES_MAX (64 KiB): a form holds one statement.
    let oversized_form = format!("q={}", "x".repeat(100 << 10));
    assert_v1_error(
        &server.post("/query", &oversized_form),
        413,
        "exceeds the limit of 65536 bytes",
    );

    let metrics = server.metrics();
    for (route, status) in [
        ("influx_v1", 400),
        ("influx_v1", 413),
        ("influx_v2", 413),
        ("influx_ping", 204),
        ("influx_health", 200),
        ("influx_query", 200),
    ] {
        assert!(
            responses(&metrics, route, status).is_some_and(|v| v >= 1.0),
            "{route} {status} missing:\n{metrics}"
        );
    }
}

#[test]
fn a_slow_influx_body_is_answered_408_in_influxdb_shape() {
    // Goal (issue 9 item 3): a /write body that never completes is answered at
    // `request-timeout` with InfluxDB's error shape, and the lines received before are stored.
    let server = Server::start_with_config(&json!({
        "metric-store": {"limits": {"request-timeout": "1s"}}
    }));
    let t = minutes_ago(10);
    for (target, expected) in [
        (format!("/write?db={C}"), json!(null)),
        (format!("/api/v2/write?bucket={C}"), json!("unavailable")),
    ] {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let start = format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n\
             slow,hostname=h1 value=1 {t}\nslow,hostname=h1 va"
        );
        stream.write_all(start.as_bytes()).unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        let response = common::parse_response(&reply).expect("an HTTP response");
        response.assert_status(408);
        let body = response.json();
        assert_eq!(body["code"], expected, "{body}");
        let message = body
            .get("error")
            .or_else(|| body.get("message"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(message.contains("the first 1 lines were stored"), "{body}");
    }
    assert_data(&read(&server, C, "h1", "slow", t, 1), &[Some(1.0)]);
}

#[test]
fn a_wal_that_refuses_writes_is_a_503_in_influxdb_shape_and_health_fails() {
    // Goal (issue 9 item 3): when the write-ahead log cannot append (here: a file size limit,
    // as a full disk), both write APIs answer 503 in their shapes (2.x code `unavailable`, so
    // clients retry), and InfluxDB 2.x's /health fails as /healthz does.
    let server = Server::start_with_config(&json!({"metric-store": {"wal": {"fsync": "batch"}}}));
    let t = minutes_ago(2_010);
    let body = |host: &str| -> String {
        (0..2_000)
            .map(|i| format!("m,hostname={host} value={i} {}\n", t + 60 * i))
            .collect()
    };
    server
        .post(&format!("/write?db={C}"), body("h0"))
        .assert_status(204);
    server.limit_file_size(64 << 10);
    let refused = (1..50)
        .map(|i| server.post(&format!("/write?db={C}"), body(&format!("h{i}"))))
        .find(|response| response.status != 204)
        .expect("the WAL never hit the file size limit");
    assert_v1_error(&refused, 503, "write-ahead log");
    let v2 = server.post(&format!("/api/v2/write?bucket={C}"), body("v2"));
    assert_v2_error(&v2, 503, "unavailable", "write-ahead log");
    let health = server.get("/health");
    health.assert_status(503);
    let health = health.json();
    assert_eq!(health["status"], json!("fail"), "{health}");
    assert!(
        health["message"]
            .as_str()
            .is_some_and(|m| m.contains("refuses writes until restart")),
        "{health}"
    );
    server.get("/ping").assert_status(204);
}
