//! Exhaustion from outside (issue 6, items 11, 12, 13 and 15): small requests that used to pin
//! memory, queries that allocated without bound, connections that stayed open for ever, and
//! CPU-heavy work on the async workers. Each limit is answered with a JSON error and counted.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, gzip, metric_value, minutes_ago};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const C: &str = "alex";

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

/// Connects and returns the stream with a read timeout of `read_timeout`.
fn connect(server: &Server, read_timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect(&server.addr).expect("connect");
    stream
        .set_read_timeout(Some(read_timeout))
        .expect("timeout");
    stream
}

/// Reads until the server closes the connection; panics if it is still open after the read
/// timeout. Returns what was read.
#[track_caller]
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return received,
            Err(error) => panic!(
                "connection still open ({error}); received {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
}

/// `/metrics`, as soon as closed connections have freed a place for it (within 10 s).
fn metrics_once_places_free(server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match common::try_http(&server.addr, "GET", "/metrics", &[], b"") {
            Ok(response) if response.status == 200 => return response.text(),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("/metrics not answered after the connections closed: {other:?}"),
        }
    }
}

#[test]
fn idle_and_slow_header_connections_are_closed_after_the_header_timeout() {
    // Goal (item 11): before, an idle socket stayed open for over 95 s and headers sent at a
    // byte a second were waited for over 75 s. With `header-timeout` 1 s, each of these is
    // closed within a few seconds (the read timeout of 10 s is the failure bound).
    let server = Server::start_with_config(&json!({
        "metric-store": {"limits": {"header-timeout": "1s"}}
    }));
    let bound = Duration::from_secs(10);

    // A connection that never sends anything.
    let mut idle = connect(&server, bound);
    read_until_closed(&mut idle);

    // Headers trickling in: still sending when the server gives up.
    let mut slow = connect(&server, bound);
    let started = Instant::now();
    let mut closed = false;
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: "
        .iter()
        .chain(&[b'a'; 200])
    {
        if slow.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(started.elapsed() < bound, "still accepting header bytes");
    }
    if !closed {
        read_until_closed(&mut slow);
    }

    // A kept-alive connection after its response, waiting for a next request.
    let mut kept = connect(&server, bound);
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let reply = read_until_closed(&mut kept);
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"),
        "{reply:?}"
    );
    // The server still serves new connections.
    server.get("/healthz").assert_status(200);
}

#[test]
fn connections_over_the_limit_are_answered_503_and_counted() {
    // Goal (item 11): at most `limits.connections` are open; one more gets the JSON error
    // at once and is closed, instead of taking a descriptor for as long as it likes.
    let server = Server::start_with_config(&json!({
        "metric-store": {"limits": {"connections": 3}}
    }));
    // Three connections the server has accepted (it answers nothing for half a second); a
    // place may still be taken for a moment by the harness's startup probe, whose refused
    // connection is then replaced.
    let mut held = Vec::new();
    for _ in 0..20 {
        if held.len() == 3 {
            break;
        }
        let mut stream = connect(&server, Duration::from_millis(500));
        let silent = matches!(stream.read(&mut [0u8; 1]), Err(e)
            if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
        if silent {
            held.push(stream);
        }
    }
    assert_eq!(held.len(), 3, "three connections accepted");
    let mut refused = connect(&server, Duration::from_secs(10));
    let reply = read_until_closed(&mut refused);
    let response = common::parse_response(&reply).expect("an HTTP response");
    response.assert_error(503, "too many open connections (limits.connections is 3)");
    drop(held);
    // Closed connections free their places.
    let metrics = metrics_once_places_free(&server);
    let count = metric_value(&metrics, "strata_http_connections_refused_total");
    assert!(count.is_some_and(|c| c >= 1.0), "{count:?}");
    assert!(
        server
            .log()
            .contains("connection refused: limits.connections are open"),
        "{}",
        server.log()
    );
}

/// Polls the server's resident memory every 20 ms on a thread of its own until `stop` is
/// set; returns the highest value seen.
fn watch_peak_rss(addr: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<f64> {
    std::thread::spawn(move || {
        let mut peak: f64 = 0.0;
        while !stop.load(Ordering::Relaxed) {
            if let Ok(response) = common::try_http(&addr, "GET", "/metrics", &[], b"")
                && let Some(bytes) =
                    metric_value(&response.text(), "strata_process_resident_memory_bytes")
            {
                peak = peak.max(bytes);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

#[test]
fn for_all_nodes_is_counted_before_the_queries_are_built() {
    // Goal (item 13): `for-all-nodes` stands for hosts × metrics queries; before, they were
    // all built and only then counted against `series-per-query` (1 MB body, 100 hosts:
    // 2.4 GB peak, then 400). Now the product is counted first.
    let server = Server::start();
    let t = minutes_ago(5);
    let lines: String = (0..100)
        .map(|h| format!("m,hostname=h{h} value=1 {t}\n"))
        .collect();
    server.write_ok(C, &lines);
    let metrics: Vec<String> = (0..20_000).map(|m| format!("m{m:05}")).collect();
    let before = resident_bytes(&server);
    let response = server.get_json(
        "/api/query",
        &json!({"cluster": C, "from": t, "to": t + 60, "for-all-nodes": metrics}),
    );
    response.assert_error(
        400,
        "query asks for 2000000 series; the limit is 100000 (limits.series-per-query)",
    );
    let after = resident_bytes(&server);
    assert!(
        after - before < 64e6,
        "resident memory grew from {before} to {after} bytes"
    );
}

#[test]
fn the_points_a_query_may_return_are_counted_before_it_runs() {
    // Goal (item 13): padding reached 2^20 points per entry with no budget per request (a
    // 920-byte query answered 640 MB). Points are now bounded arithmetically from the time
    // range, the frequency and the resolution, against `limits.points-per-query`.
    let server = Server::start_with_config(&json!({
        "metric-store": {"limits": {"points-per-query": 10_000}}
    }));
    let t = minutes_ago(5);
    server.write_ok(C, &format!("m,hostname=h1 value=1 {t}\n"));
    let day = 24 * 3600;
    let entries = |padding: bool, resolution: i64| {
        let query = json!({"metric": "m", "host": "h1", "resolution": resolution});
        json!({"cluster": C, "from": t - day, "to": t, "with-padding": padding,
               "queries": vec![query; 10]})
    };
    // 10 entries × (1,440 + 2) points of a padded day at 60 s: over the budget.
    let response = server.get_json("/api/query", &entries(true, 600));
    response.assert_error(
        400,
        "query may return up to 14420 points; the limit is 10000 (limits.points-per-query)",
    );
    // Without padding, a resolution of 600 s returns at most max(146, minimum-points 1000)
    // per entry: 10,000 in all, within the budget.
    let response = server.get_json("/api/query", &entries(false, 600));
    response.assert_status(200);
    assert_eq!(
        response.json()["results"].as_array().map(Vec::len),
        Some(10)
    );
    let text = server.metrics();
    let refused = metric_value(
        &text,
        "strata_http_responses_total{route=\"query\",status=\"400\"}",
    );
    assert_eq!(refused, Some(1.0), "counted in /metrics");
}

#[test]
fn a_large_query_response_is_streamed_not_built_whole() {
    // Goal (item 13): responses were built whole in memory, then serialized (a 640 MB
    // response peaked at 1.1 GB). Now they are computed and sent a chunk at a time: ~150 MB
    // of JSON (30 entries padded to ~2^20 points) passes through a few MiB.
    let server = Server::start();
    let t = minutes_ago(5);
    server.write_ok(C, &format!("m,hostname=h1 value=1 {t}\n"));
    let from = t - 1_000_000 * 60;
    let query = json!({"metric": "m", "host": "h1"});
    let request = json!({"cluster": C, "from": from, "to": t + 60, "queries": vec![query; 30]});
    let before = resident_bytes(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_peak_rss(server.addr.clone(), stop.clone());
    let response = server.get_json("/api/query", &request);
    stop.store(true, Ordering::Relaxed);
    let peak = watcher.join().expect("watcher");
    response.assert_status(200);
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    let body = response.json();
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 30);
    for entry in results {
        assert_eq!(entry[0]["data"].as_array().map(Vec::len), Some(1_000_001));
    }
    assert!(
        peak - before < 100e6,
        "resident memory went from {before} to a peak of {peak} bytes"
    );
}

#[test]
fn a_healthcheck_is_bounded_and_deduplicated() {
    // Goal (item 15): nodes × metric names was unbounded (a 439 KB body held a thread for
    // 41 s). Duplicates are dropped, and more than 1,000,000 checks are refused.
    let server = Server::start();
    let nodes: Vec<String> = (0..1001).map(|n| format!("n{n}")).collect();
    let metrics: Vec<String> = (0..1000).map(|m| format!("m{m}")).collect();
    let request = json!({"cluster": C, "nodes": nodes, "metric-names": metrics});
    let response = server.get_json("/api/healthcheck", &request);
    response.assert_error(
        400,
        "1001 nodes × 1000 metric names are 1001000 checks; at most 1000000 per request",
    );
    // Without metric names a node is still an entry of the answer: nodes are capped too.
    let nodes: Vec<String> = (0..100_001).map(|n| format!("n{n}")).collect();
    let request = json!({"cluster": C, "nodes": nodes, "metric-names": []});
    let response = server.get_json("/api/healthcheck", &request);
    response.assert_error(400, "100001 nodes; at most 100000 per request");
    // The same node and metric a million times is one check.
    let request = json!({"cluster": C, "nodes": vec!["n1"; 1000],
                         "metric-names": vec!["m"; 1001]});
    let response = server.get_json("/api/healthcheck", &request);
    response.assert_status(200);
    let health = response.json();
    assert_eq!(health.as_object().map(|o| o.len()), Some(1), "{health}");
    assert_eq!(health["n1"]["State"], json!("failed"));
}

#[test]
fn heavy_reads_wait_for_a_turn_off_the_async_workers() {
    // Goal (item 15): healthchecks, queries and dumps ran on the async workers; a few heavy
    // ones left nothing to answer `/healthz`. Now they run on blocking threads, at most
    // `concurrent-queries` at a time; the others wait up to half the `request-timeout` and
    // are then refused with 503 (counted). `/healthz` answers throughout.
    let server = Server::start_with_config(&json!({
        "metric-store": {"limits": {"concurrent-queries": 1, "request-timeout": "2s"}}
    }));
    let t = minutes_ago(1);
    // 4 hosts with 500 hardware threads each; 12,000 metric names known but absent, so
    // each check walks every thread: 4 × 12,000 × 500 level visits per healthcheck.
    let lines: String = (0..4)
        .flat_map(|host| {
            (0..500).map(move |id| {
                format!("m,hostname=h{host},type=hwthread,type-id={id} value=1 {t}\n")
            })
        })
        .collect();
    server.write_ok(C, &lines);
    let names: String = (0..12_000)
        .map(|m| format!("x{m},hostname=other value=1 {t}\n"))
        .collect();
    server.write_ok(C, &names);
    let nodes: Vec<String> = (0..4).map(|h| format!("h{h}")).collect();
    let metrics: Vec<String> = (0..12_000).map(|m| format!("x{m}")).collect();
    let request = json!({"cluster": C, "nodes": nodes, "metric-names": metrics});
    // Eight at once, one at a time: the last would wait for seven, far over the second it
    // may wait (one takes about a second in a debug build here).
    let in_flight = Arc::new(AtomicUsize::new(8));
    let heavy: Vec<_> = (0..8)
        .map(|_| {
            let (addr, body, in_flight) =
                (server.addr.clone(), request.to_string(), in_flight.clone());
            std::thread::spawn(move || {
                let response =
                    common::http(&addr, "POST", "/api/healthcheck", &[], body.as_bytes());
                in_flight.fetch_sub(1, Ordering::SeqCst);
                response
            })
        })
        .collect();
    let mut answered_while_busy = 0;
    while in_flight.load(Ordering::SeqCst) > 0 {
        let response = common::http(&server.addr, "GET", "/healthz", &[], b"");
        response.assert_status(200);
        if in_flight.load(Ordering::SeqCst) > 0 {
            answered_while_busy += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        answered_while_busy > 0,
        "/healthz was not answered while busy"
    );
    let mut refused = 0;
    for thread in heavy {
        let response = thread.join().expect("client thread");
        match response.status {
            503 => {
                response.assert_error(503, "(limits.concurrent-queries)");
                refused += 1;
            }
            // One that got its turn late may run past the request timeout.
            408 => assert!(response.text().contains("(limits.request-timeout)")),
            _ => {
                response.assert_status(200);
            }
        }
    }
    assert!(
        refused > 0,
        "one healthcheck at a time: some waited over a second"
    );
    let count = metric_value(&server.metrics(), "strata_http_compute_refused_total");
    assert_eq!(count, Some(f64::from(refused)));
}

#[test]
fn sigterm_finishes_a_streamed_response_and_closes_idle_connections() {
    // Goal (item 11): the accept loop keeps the shutdown order main relies on: on SIGTERM it
    // stops accepting, closes idle connections, lets a response in flight finish (here a
    // streamed one of ~50 MB), and only then is the final snapshot written.
    let mut server = Server::start();
    let t = minutes_ago(5);
    server.write_ok(C, &format!("m,hostname=h1 value=1 {t}\n"));
    let mut idle = connect(&server, Duration::from_secs(20));
    let query = json!({"metric": "m", "host": "h1"});
    let request = json!({"cluster": C, "from": t - 1_000_000 * 60, "to": t + 60,
                         "queries": vec![query; 10]});
    let addr = server.addr.clone();
    let reader = std::thread::spawn(move || {
        common::http(
            &addr,
            "POST",
            "/api/query",
            &[],
            request.to_string().as_bytes(),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    read_until_closed(&mut idle);
    let response = reader.join().expect("reader");
    response.assert_status(200);
    let body = response.json();
    assert_eq!(body["results"].as_array().map(Vec::len), Some(10));
    let status = server
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("strata ignored SIGTERM; log:\n{}", server.log()));
    let log = server.log();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("final snapshot written"), "{log}");
}

#[test]
fn a_slow_client_cannot_hold_the_shutdown_past_its_grace_period() {
    // Goal (found in review): a request whose body never completes held SIGTERM for the
    // whole `request-timeout` (60 s), past a service manager's stop timeout, so the final
    // snapshot was never written. Shutdown waits at most 10 s for requests in flight.
    let mut server = Server::start();
    let t = minutes_ago(5);
    server.write_ok(C, &format!("m,hostname=h1 value=1 {t}\n"));
    let mut slow = connect(&server, Duration::from_secs(60));
    slow.write_all(b"POST /api/write?cluster=alex HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nm,hostname=h2 value=2")
        .expect("sending the start of a body");
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(40))
        .unwrap_or_else(|| panic!("the slow client held the shutdown; log:\n{}", server.log()));
    let waited = signalled.elapsed();
    let log = server.log();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(waited < Duration::from_secs(20), "{waited:?}; log:\n{log}");
    assert!(log.contains("shutdown grace period"), "{log}");
    assert!(log.contains("final snapshot written"), "{log}");
    drop(slow);
}

#[test]
fn a_query_body_sent_slowly_is_answered_408_at_the_request_timeout() {
    // Goal (item 11): the header timeout does not cover bodies; a query body that never
    // completes held its connection for as long as the client liked. Now the request gets
    // the JSON 408 at `request-timeout`.
    let server = Server::start_with_config(&json!({
        "metric-store": {"limits": {"request-timeout": "1s"}}
    }));
    let mut stream = connect(&server, Duration::from_secs(10));
    stream
        .write_all(
            b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"cluster\"",
        )
        .expect("request");
    let reply = read_until_closed(&mut stream);
    let response = common::parse_response(&reply).expect("an HTTP response");
    assert_eq!(response.status, 408, "{}", response.text());
    assert!(
        response.text().contains("(limits.request-timeout)"),
        "{}",
        response.text()
    );
}

#[test]
fn many_connections_under_a_low_open_files_limit_leave_descriptors_for_snapshots() {
    // Goal (item 11): with a low `ulimit -n`, a few hundred idle sockets took every
    // descriptor: `/healthz` timed out and snapshots failed with "Too many open files".
    // Now `connections` is lowered to leave 64 descriptors free, connections beyond it are
    // refused at once, and snapshots keep succeeding (checked for every 5 s, due every 1 s
    // here: one falls while the connections are held).
    let server =
        Server::start_with_open_files(&json!({"metric-store": {"checkpoint-interval": "1s"}}), 160);
    assert!(
        server.log().contains("limits.connections is lowered"),
        "{}",
        server.log()
    );
    server.write_ok(C, &format!("m,hostname=h1 value=1 {}\n", minutes_ago(1)));
    let held: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(&server.addr).ok())
        .collect();
    assert!(held.len() > 200, "{} connections made", held.len());
    std::thread::sleep(Duration::from_secs(6));
    drop(held);
    let metrics = metrics_once_places_free(&server);
    let value = |name: &str| metric_value(&metrics, name).unwrap_or(-1.0);
    assert!(
        value("strata_http_connections_refused_total") >= 200.0,
        "{metrics}"
    );
    assert!(value("strata_snapshots_total") >= 1.0, "{metrics}");
    assert_eq!(
        value("strata_snapshot_failures_total"),
        0.0,
        "{}",
        server.log()
    );
    server.get("/healthz").assert_status(200);
}
