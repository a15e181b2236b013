//! Restarts on a data directory, black-box: graceful shutdown and its final snapshot, the
//! `off` policy, the directory lock, the format marker, and the WAL's metrics.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, log_fields, metric_value, minutes_ago};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const CLUSTER: &str = "restart";

/// Longest wait for a stopped process to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

fn server_with_wal(wal: Value) -> Server {
    Server::start_with_config(&json!({"metric-store": {"wal": wal}}))
}

#[track_caller]
fn field<'a>(fields: &'a HashMap<String, String>, key: &str) -> &'a str {
    fields
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {fields:?}"))
}

/// Writes `count` samples of `host` from `start` (60 s apart) in one request; returns them.
fn write_series(server: &Server, host: &str, start: i64, count: i64, base: f64) -> Vec<(i64, f64)> {
    let samples: Vec<(i64, f64)> = (0..count)
        .map(|i| (start + 60 * i, base + i as f64 + 0.5))
        .collect();
    let lines: String = samples
        .iter()
        .map(|(t, v)| format!("temp,host={host} value={v} {t}\n"))
        .collect();
    server.write_ok(CLUSTER, &lines);
    samples
}

/// The data of `host` from the first to the last of `samples`, as `(timestamp, value)`
/// pairs of the non-null slots; empty when the host is unknown.
fn read_series(server: &Server, host: &str, samples: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let from = samples.first().expect("samples").0;
    let to = samples.last().expect("samples").0 + 60;
    let body = server.query(&json!({
        "cluster": CLUSTER, "from": from, "to": to, "with-padding": false,
        "queries": [{"metric": "temp", "host": host}]}));
    let entry = &body["results"][0][0];
    let Some(data) = entry["data"].as_array() else {
        return Vec::new();
    };
    let first = entry["from"].as_i64().expect("from");
    data.iter()
        .enumerate()
        .filter_map(|(i, v)| Some((first + 60 * i as i64, v.as_f64()?)))
        .collect()
}

#[track_caller]
fn assert_series(server: &Server, host: &str, samples: &[(i64, f64)]) {
    assert_eq!(
        read_series(server, host, samples),
        samples,
        "host {host}; log:\n{}",
        server.log()
    );
}

#[track_caller]
fn assert_series_gone(server: &Server, host: &str, samples: &[(i64, f64)]) {
    assert_eq!(
        read_series(server, host, samples),
        [],
        "host {host} should be gone; log:\n{}",
        server.log()
    );
}

/// SIGTERM, then exit code 0 with the final snapshot in the log.
fn stop_gracefully(server: &mut Server) {
    server.signal("TERM");
    let status = server
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("strata ignored SIGTERM; log:\n{}", server.log()));
    let log = server.log();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("final snapshot written"), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
}

fn kill(server: &mut Server) {
    server.signal("KILL");
    server
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("strata survived SIGKILL; log:\n{}", server.log()));
}

/// `Some(<n>)` from the `recovered` line, as a number.
fn snapshot_generation(fields: &HashMap<String, String>) -> u64 {
    let text = field(fields, "snapshot_generation");
    text.strip_prefix("Some(")
        .and_then(|t| t.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no snapshot generation: {text}"))
}

#[test]
fn graceful_restart_loses_nothing_and_replays_nothing() {
    // Goal: after SIGTERM the final snapshot holds everything, so the next start restores it
    // and replays no WAL record (nothing is applied twice) — under each WAL policy, and
    // twice in a row (the second snapshot is a newer generation).
    for policy in ["always", "batch", "never"] {
        let mut server = server_with_wal(json!({"fsync": policy}));
        let start = minutes_ago(60);
        let a = write_series(&server, "a", start, 10, 10.0);
        let b = write_series(&server, "b", start, 5, 20.0);
        let metrics = server.metrics();
        assert_eq!(
            metric_value(&metrics, "strata_ingest_samples_total"),
            Some(15.0)
        );
        stop_gracefully(&mut server);

        server.restart();
        let log = server.log();
        let fields = log_fields(&log, "recovered");
        assert_eq!(field(&fields, "fsync"), policy, "{log}");
        assert_eq!(field(&fields, "wal_records"), "0", "{log}");
        assert_eq!(field(&fields, "wal_samples"), "0", "{log}");
        assert_eq!(field(&fields, "snapshot_hosts"), "2", "{log}");
        assert_eq!(field(&fields, "snapshot_samples"), "15", "{log}");
        assert_eq!(field(&fields, "samples_in_memory"), "15", "{log}");
        assert_eq!(field(&fields, "torn_tail_bytes"), "0", "{log}");
        let first_generation = snapshot_generation(&fields);
        assert_series(&server, "a", &a);
        assert_series(&server, "b", &b);

        let c = write_series(&server, "c", start + 600, 3, 30.0);
        stop_gracefully(&mut server);
        server.restart();
        let log = server.log();
        let fields = log_fields(&log, "recovered");
        assert_eq!(field(&fields, "wal_records"), "0", "{log}");
        assert_eq!(field(&fields, "snapshot_hosts"), "3", "{log}");
        assert_eq!(field(&fields, "snapshot_samples"), "18", "{log}");
        assert!(
            snapshot_generation(&fields) > first_generation,
            "a newer generation: {log}"
        );
        assert_series(&server, "a", &a);
        assert_series(&server, "b", &b);
        assert_series(&server, "c", &c);
        // Older generations are removed once a newer one is complete.
        let generations = std::fs::read_dir(server.data_dir().join("snapshots"))
            .expect("snapshots directory")
            .count();
        assert_eq!(generations, 1, "{policy}: one snapshot generation kept");
    }
}

#[test]
fn data_directory_in_use_is_refused() {
    // Goal: a second process on a data directory in use exits non-zero saying so (two
    // writers would corrupt the WAL), and the first one goes on undisturbed.
    let mut server = server_with_wal(json!({"fsync": "always"}));
    let start = minutes_ago(30);
    let a = write_series(&server, "a", start, 4, 1.0);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = server.config();
    // Another port, so that only the data directory is shared.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    config["main"]["addr"] = json!(format!("127.0.0.1:{port}"));
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec(&config).expect("config")).expect("writing");
    let path = path.to_str().expect("UTF-8 path");
    let second = common::run_strata(
        dir.path(),
        &["serve", "--config", path],
        Duration::from_secs(10),
    );
    assert!(!second.status.success(), "{second:?}");
    assert!(second.stderr.contains("in use"), "{}", second.stderr);
    assert!(second.stderr.contains("LOCK"), "{}", second.stderr);
    assert!(
        !second.stderr.contains("cannot listen"),
        "{}",
        second.stderr
    );
    assert!(
        second
            .stderr
            .contains(&server.data_dir().display().to_string()),
        "names the directory: {}",
        second.stderr
    );

    assert!(server.is_running());
    let b = write_series(&server, "b", start, 2, 5.0);
    assert_series(&server, "a", &a);
    kill(&mut server);
    // The lock goes with the process, even a killed one.
    server.restart();
    assert_series(&server, "a", &a);
    assert_series(&server, "b", &b);
}

#[test]
fn newer_format_is_refused() {
    // Goal: a data directory whose format marker is newer than this build is refused with a
    // message naming both formats, and left untouched: the right build (here, the marker put
    // back) still finds all the data.
    let mut server = server_with_wal(json!({"fsync": "always"}));
    let start = minutes_ago(30);
    let a = write_series(&server, "a", start, 6, 3.0);
    stop_gracefully(&mut server);

    let marker = server.data_dir().join("STRATA");
    let original = std::fs::read_to_string(&marker).expect("format marker");
    assert!(original.lines().any(|l| l == "format 1"), "{original}");
    std::fs::write(&marker, "strata data directory\nformat 99\n").expect("writing marker");
    server.respawn();
    let status = server
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("a newer format was not refused; log:\n{}", server.log()));
    let log = server.log();
    assert!(!status.success(), "{status}; log:\n{log}");
    assert!(log.contains("data format 99"), "{log}");
    assert!(log.contains("reads format 1"), "{log}");
    assert!(!log.contains("strata listening"), "{log}");
    assert_eq!(
        std::fs::read_to_string(&marker).expect("marker"),
        "strata data directory\nformat 99\n",
        "the marker is not rewritten"
    );

    std::fs::write(&marker, original).expect("restoring marker");
    server.restart();
    assert_series(&server, "a", &a);
}

#[test]
fn fsync_off_keeps_data_across_graceful_restart_only() {
    // Goal: document the `off` policy honestly. Without a WAL, memory is made durable only by
    // snapshots: a graceful shutdown writes one and keeps everything; a SIGKILL loses every
    // sample since the last snapshot (here: since the graceful restart), and nothing older.
    let mut server = server_with_wal(json!({"fsync": "off"}));
    let start = minutes_ago(60);

    // SIGKILL without any snapshot: gone.
    let lost_first = write_series(&server, "a", start, 5, 1.0);
    assert_series(&server, "a", &lost_first);
    kill(&mut server);
    server.restart();
    let log = server.log();
    let fields = log_fields(&log, "recovered");
    assert_eq!(field(&fields, "fsync"), "off", "{log}");
    assert_eq!(field(&fields, "snapshot_generation"), "None", "{log}");
    assert_eq!(field(&fields, "wal_records"), "0", "{log}");
    assert_eq!(field(&fields, "samples_in_memory"), "0", "{log}");
    assert_series_gone(&server, "a", &lost_first);
    assert!(
        !server.data_dir().join("wal").exists()
            || std::fs::read_dir(server.data_dir().join("wal"))
                .expect("wal dir")
                .next()
                .is_none(),
        "`off` writes no WAL segment"
    );

    // SIGTERM: the final snapshot keeps it.
    let kept = write_series(&server, "b", start, 5, 2.0);
    stop_gracefully(&mut server);
    server.restart();
    let log = server.log();
    let fields = log_fields(&log, "recovered");
    assert_eq!(field(&fields, "snapshot_samples"), "5", "{log}");
    assert_series(&server, "b", &kept);

    // SIGKILL again: what came after the snapshot is gone, the snapshot's data stays.
    let lost_second = write_series(&server, "c", start, 5, 3.0);
    kill(&mut server);
    server.restart();
    assert_series(&server, "b", &kept);
    assert_series_gone(&server, "c", &lost_second);
}

/// Issue 6 item 8: data freed with `/api/free` came back after a SIGKILL, replayed from the
/// WAL. A free is logged before it is answered, and replayed in order: writes before it stay
/// freed, writes after it (into the freed range, here) stay written.
#[test]
fn freed_data_stays_freed_after_a_crash() {
    for workers in [1, 2] {
        let mut server = Server::start_with_config(&json!({"metric-store": {
            "num-workers": workers, "wal": {"fsync": "batch"}}}));
        let start = minutes_ago(60);
        let freed = write_series(&server, "a", start, 10, 1.0);
        let kept = write_series(&server, "b", start, 10, 1.0);
        // Past the end of the 512-slot buffer that holds the samples.
        let to = start + 600 * 60;
        let response = server.post(&format!("/api/free?to={to}"), r#"[["restart","a"]]"#);
        response.assert_status(200);
        assert_series_gone(&server, "a", &freed);
        let rewritten = write_series(&server, "a", start + 20 * 60, 5, 7.0);
        kill(&mut server);

        server.restart();
        assert_series_gone(&server, "a", &freed);
        assert_series(&server, "a", &rewritten);
        assert_series(&server, "b", &kept);
    }
}

#[test]
fn periodic_snapshot_then_crash_recovers_from_snapshot_and_wal() {
    // Goal: a snapshot taken while running (checkpoint-interval; the schedule looks every
    // 5 s) covers what came before it, the WAL what came after; SIGKILL after both loses
    // nothing, replays only the records after the snapshot, and the covered segments are gone.
    let mut server = Server::start_with_config(&json!({"metric-store": {
        "checkpoint-interval": "1s", "wal": {"fsync": "always"}}}));
    let start = minutes_ago(60);
    let before = write_series(&server, "a", start, 8, 1.0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server.log().contains("snapshot written") {
        assert!(
            Instant::now() < deadline,
            "no periodic snapshot within 15 s; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let snapshot = log_fields(&server.log(), "snapshot written");
    let generation: u64 = field(&snapshot, "generation").parse().expect("generation");
    let after = write_series(&server, "b", start, 3, 2.0);
    let after_too = write_series(&server, "a", start + 8 * 60, 2, 9.0);
    kill(&mut server);

    server.restart();
    let log = server.log();
    let fields = log_fields(&log, "recovered");
    // A later periodic snapshot could have come between (5 s later): then it covers more.
    let recovered_generation = snapshot_generation(&fields);
    assert!(recovered_generation >= generation, "{log}");
    if recovered_generation == generation {
        assert_eq!(field(&fields, "snapshot_samples"), "8", "{log}");
        assert_eq!(field(&fields, "wal_records"), "2", "{log}");
        assert_eq!(field(&fields, "wal_samples"), "5", "{log}");
    }
    let all_a: Vec<(i64, f64)> = before.iter().chain(&after_too).copied().collect();
    assert_series(&server, "a", &all_a);
    assert_series(&server, "b", &after);
    let segments: Vec<u64> = std::fs::read_dir(server.data_dir().join("wal"))
        .expect("wal dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name();
            name.to_str()?.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    assert!(
        segments.iter().all(|&s| s >= recovered_generation),
        "segments below generation {recovered_generation} are deleted: {segments:?}"
    );
}

#[test]
fn wal_and_snapshot_metrics_are_exposed() {
    // Goal: /metrics shows what the WAL did — records, bytes and fsyncs under `always` (one
    // fsync per group; sequential requests are one group each) — and counts snapshots.
    let server = Server::start_with_config(&json!({"metric-store": {
        "checkpoint-interval": "1s", "wal": {"fsync": "always"}}}));
    let start = minutes_ago(30);
    for i in 0..3 {
        write_series(&server, &format!("h{i}"), start, 4, 1.0);
    }
    let metrics = server.metrics();
    assert_eq!(
        metric_value(&metrics, "strata_ingest_samples_total"),
        Some(12.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "strata_wal_records"),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "strata_wal_fsyncs"),
        Some(3.0),
        "{metrics}"
    );
    let bytes = metric_value(&metrics, "strata_wal_bytes").unwrap_or(0.0);
    assert!(bytes >= 3.0 * 8.0 + 12.0 * 5.0, "{metrics}");
    assert_eq!(
        metric_value(&metrics, "strata_snapshots_total"),
        Some(0.0),
        "{metrics}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server.log().contains("snapshot written") {
        assert!(
            Instant::now() < deadline,
            "no snapshot; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = server.metrics();
    assert!(
        metric_value(&metrics, "strata_snapshots_total").unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );

    // The other policies: `batch` syncs within its interval of a write (three quick
    // sequential writes share one or a few fsyncs), `never` never syncs, `off` has no WAL.
    for (policy, fsyncs_min, fsyncs_max, records) in [
        ("batch", 1.0, 3.0, 3.0),
        ("never", 0.0, 0.0, 3.0),
        ("off", 0.0, 0.0, 0.0),
    ] {
        let server = server_with_wal(json!({"fsync": policy, "fsync-interval": "100ms"}));
        for i in 0..3 {
            write_series(&server, &format!("h{i}"), start, 4, 1.0);
        }
        std::thread::sleep(Duration::from_millis(400));
        let metrics = server.metrics();
        let value = |name: &str| metric_value(&metrics, name).unwrap_or(-1.0);
        assert_eq!(
            value("strata_ingest_samples_total"),
            12.0,
            "{policy}: {metrics}"
        );
        assert_eq!(value("strata_wal_records"), records, "{policy}: {metrics}");
        let fsyncs = value("strata_wal_fsyncs");
        assert!(
            (fsyncs_min..=fsyncs_max).contains(&fsyncs),
            "{policy}: {fsyncs} fsyncs, expected {fsyncs_min}..={fsyncs_max}: {metrics}"
        );
    }
}

/// Host names that are awkward as file names (the snapshot stores one file per host).
/// (`/`, `\\` and `..` are refused at ingest.)
const AWKWARD_HOSTS: [&str; 7] = ["h1", "n01", ".hidden", "über", "a b", "%41", "a:b=c,d"];

/// `host` escaped as a line-protocol tag value.
fn tag_value(host: &str) -> String {
    host.replace(' ', "\\ ")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

/// Everything the queries of [`every_kind_of_series_comes_back_identical_from_wal_and_snapshot`]
/// and `/api/debug` answer.
fn observe(server: &Server, t0: i64) -> (Value, Value) {
    let mut queries: Vec<Value> = AWKWARD_HOSTS
        .iter()
        .map(|host| json!({"metric": "mem_used", "host": host}))
        .collect();
    queries.extend([
        json!({"metric": "cpu_user", "host": "h1", "type": "hwthread",
               "type-ids": ["0", "1", "2", "3", "4"]}),
        json!({"metric": "cpu_user", "host": "h1"}),
        json!({"metric": "cpu_user", "host": "h1", "type": "hwthread",
               "type-ids": ["1", "3"], "aggreg": true}),
        json!({"metric": "flops_any", "host": "n01"}),
        json!({"metric": "flops_any", "host": "n01", "resolution": 60}),
        json!({"metric": "net_bw", "host": "h1", "type": "socket", "type-ids": ["0"],
               "subtype": "net", "subtype-ids": ["ib0", "eth0"]}),
        json!({"metric": "net_bw", "host": "h1"}),
    ]);
    let body = server.query(&json!({
        "cluster": CLUSTER, "from": t0 - 120, "to": t0 + 60 * 25, "queries": queries}));
    let debug = server.get("/api/debug");
    debug.assert_status(200);
    (body, debug.json())
}

#[test]
fn every_kind_of_series_comes_back_identical_from_wal_and_snapshot() {
    // Goal: differential check of both recovery paths. Child levels (hwthreads, sockets with
    // subtypes), a 10 s metric, gaps, negative and fractional values, and host names that
    // need escaping as file names answer exactly the same queries (values, windows,
    // statistics, aggregation, resampling) and the same /api/debug tree after a crash (WAL
    // replay) and after a graceful restart (snapshot) as before.
    let mut server = Server::start_with_config(&json!({
        "metrics": {
            "cpu_user": {"frequency": 60, "aggregation": "avg"},
            "flops_any": {"frequency": 10, "aggregation": "sum"},
            "net_bw": {"frequency": 60, "aggregation": "sum"},
            "mem_used": {"frequency": 60, "aggregation": null}
        },
        "metric-store": {"wal": {"fsync": "always"}}}));
    let t0 = minutes_ago(40);
    let mut lines = String::new();
    for (h, host) in AWKWARD_HOSTS.iter().enumerate() {
        for i in (0..20).filter(|i| i % 7 != 3) {
            let value = i as f64 * 1.5 - 7.0 + h as f64 * 100.0;
            let t = t0 + 60 * i;
            lines.push_str(&format!(
                "mem_used,host={} value={value} {t}\n",
                tag_value(host)
            ));
        }
    }
    for id in 0..5 {
        for i in 0..10 {
            let t = t0 + 60 * i;
            lines.push_str(&format!(
                "cpu_user,host=h1,type=hwthread,type-id={id} value={} {t}\n",
                id * 10 + i
            ));
        }
    }
    for i in (0..60).filter(|i| i % 11 != 5) {
        let t = t0 + 10 * i;
        lines.push_str(&format!(
            "flops_any,host=n01 value={} {t}\n",
            0.25 * i as f64
        ));
    }
    for (stype_id, scale) in [("ib0", 1.0), ("eth0", -2.0)] {
        for i in 0..8 {
            let t = t0 + 60 * i;
            lines.push_str(&format!(
                "net_bw,host=h1,type=socket,type-id=0,stype=net,stype-id={stype_id} value={} {t}\n",
                scale * (i as f64 + 0.125)
            ));
        }
    }
    server.write_ok(CLUSTER, &lines);
    let (queries, debug) = observe(&server, t0);
    // The data is really there (so that equality below means something).
    let results = queries["results"].as_array().expect("results");
    for (i, result) in results.iter().enumerate() {
        for entry in result.as_array().expect("entries") {
            assert!(entry.get("error").is_none(), "query {i}: {entry}");
            assert!(
                entry["data"].as_array().is_some_and(|d| !d.is_empty()),
                "query {i}: {entry}"
            );
        }
    }
    // Two leading nulls pad `from` (t0 - 120) up to the first sample.
    assert_eq!(results[0][0]["data"][2], json!(-7.0), "{queries}");
    assert_eq!(
        debug["data"][CLUSTER].as_object().map(|o| o.len()),
        Some(AWKWARD_HOSTS.len()),
        "{debug}"
    );

    kill(&mut server);
    server.restart();
    let fields = log_fields(&server.log(), "recovered");
    assert_eq!(field(&fields, "wal_records"), "1", "{}", server.log());
    let (after_crash, debug_after_crash) = observe(&server, t0);
    assert_eq!(after_crash, queries, "queries after WAL replay");
    assert_eq!(debug_after_crash, debug, "/api/debug after WAL replay");

    stop_gracefully(&mut server);
    server.restart();
    let fields = log_fields(&server.log(), "recovered");
    assert_eq!(field(&fields, "wal_records"), "0", "{}", server.log());
    assert_eq!(
        field(&fields, "snapshot_hosts"),
        AWKWARD_HOSTS.len().to_string(),
        "{}",
        server.log()
    );
    let (after_snapshot, debug_after_snapshot) = observe(&server, t0);
    assert_eq!(
        after_snapshot, queries,
        "queries after loading the snapshot"
    );
    assert_eq!(
        debug_after_snapshot, debug,
        "/api/debug after loading the snapshot"
    );
}

#[test]
fn host_names_near_the_length_limit_do_not_break_snapshots() {
    // Goal: ingest accepts host names up to 256 bytes (`name_bytes_max`), so a snapshot must
    // be able to store such a host: a graceful shutdown exits 0 with its final snapshot, and
    // every host — the long one and the others — is there after the restart. Under `off` the
    // final snapshot is the only copy of the data.
    //
    // Fails at the time of writing: a snapshot stores a host in
    // `<generation>/<escape_name(cluster)>/<escape_name(host)>.snap` (strata_wal::snapshot::
    // write_host), and a file name is limited to 255 bytes (NAME_MAX), so a 251-byte host
    // name (256 with `.snap`; `escape_name` even triples non-ASCII bytes) fails with "File
    // name too long" — and the whole generation with it, for every host. Under `off` the
    // graceful shutdown exits 1 and everything written since the last snapshot is lost;
    // under a WAL policy it exits 1 too, and no snapshot ever succeeds again, so the WAL
    // is never truncated.
    let long_host = format!("node-{}", "x".repeat(246)); // 251 bytes: within the limit
    for policy in ["off", "always"] {
        let mut server = server_with_wal(json!({"fsync": policy}));
        let start = minutes_ago(30);
        let short = write_series(&server, "short", start, 3, 1.0);
        let long = write_series(&server, &long_host, start, 3, 2.0);
        assert_series(&server, &long_host, &long);
        server.signal("TERM");
        let status = server
            .wait_exit(EXIT_TIMEOUT)
            .unwrap_or_else(|| panic!("strata ignored SIGTERM; log:\n{}", server.log()));
        let shutdown_log = server.log();
        server.restart();
        let short_after = read_series(&server, "short", &short);
        let long_after = read_series(&server, &long_host, &long);
        assert!(
            status.success()
                && shutdown_log.contains("final snapshot written")
                && short_after == short
                && long_after == long,
            "{policy}: shutdown {status}, short host {}, long host {}; shutdown log:\n{shutdown_log}",
            if short_after == short { "kept" } else { "LOST" },
            if long_after == long { "kept" } else { "LOST" },
        );
    }
}

#[test]
fn a_frequency_changed_between_runs_reads_and_writes_at_the_new_one() {
    // Issue 6, item 7: `temp` goes from 60 s to 10 s across a graceful restart. The snapshot's
    // 60 s data must come back at its own times (not relabelled as 10 s steps), new 10 s
    // samples must not collapse into 60 s slots, and the node-level sum must stay aligned.
    let metric =
        |frequency| json!({"metrics": {"temp": {"frequency": frequency, "aggregation": "sum"}}});
    let mut server = Server::start_with_config(&metric(60));
    let start = minutes_ago(60) / 60 * 60;
    let lines: String = (0..10)
        .map(|i| {
            format!(
                "temp,host=a,type=hwthread,type-id=0 value={i} {}\n",
                start + 60 * i
            )
        })
        .collect();
    server.write_ok(CLUSTER, &lines);
    stop_gracefully(&mut server);
    let mut config = server.config();
    config["metrics"]["temp"]["frequency"] = json!(10);
    server.set_config(&config);
    server.restart();

    let after = start + 600;
    let lines: String = (0..6)
        .flat_map(|i| {
            let t = after + 10 * i;
            [
                format!(
                    "temp,host=a,type=hwthread,type-id=0 value={} {t}\n",
                    100 + i
                ),
                format!("temp,host=a,type=hwthread,type-id=1 value=1 {t}\n"),
            ]
        })
        .collect();
    server.write_ok(CLUSTER, &lines);
    let query = |selector: Value| {
        let mut query = json!({"metric": "temp", "host": "a"});
        if let (Some(query), Some(selector)) = (query.as_object_mut(), selector.as_object()) {
            query.extend(selector.clone());
        }
        let body = server.query(&json!({
            "cluster": CLUSTER, "from": start, "to": after + 60, "with-padding": true,
            "queries": [query]}));
        body["results"][0][0].clone()
    };
    let hwthread = query(json!({"type": "hwthread", "type-ids": ["0"]}));
    assert_eq!(hwthread["resolution"], 10, "{hwthread}");
    assert_eq!(hwthread["from"], start, "{hwthread}");
    // Old values every sixth 10 s slot, then six new samples in six slots.
    let mut expected: Vec<Option<f64>> = Vec::new();
    for i in 0..10 {
        expected.push(Some(f64::from(i)));
        expected.extend([None; 5]);
    }
    expected.extend((100..106).map(|v| Some(f64::from(v))));
    common::assert_data(&hwthread["data"], &expected);
    let node = query(json!({}));
    assert_eq!(
        (&node["resolution"], &node["from"]),
        (&json!(10), &json!(start)),
        "{node}"
    );
    let sums = node["data"].as_array().expect("data");
    assert_eq!(sums.len(), 66, "{node}");
    common::assert_data(
        &json!(sums[60..]),
        &[101.0, 102.0, 103.0, 104.0, 105.0, 106.0].map(Some),
    );
}

#[test]
fn samples_written_newest_first_fill_full_buffers_before_and_after_a_restart() {
    // Issue 6, item 17: newest-first writes made one buffer per sample, and the snapshot kept
    // them all. 3 series × 1200 samples need 3 × 3 buffers oldest-first; newest-first may
    // need one more per series, never thousands.
    let mut server = Server::start();
    let start = minutes_ago(1300) / 60 * 60;
    let lines: String = (0..1200)
        .rev()
        .flat_map(|i| {
            let t = start + 60 * i;
            (0..3).map(move |s| format!("temp,host=n{s} value={i} {t}\n"))
        })
        .collect();
    server.write_ok(CLUSTER, &lines);
    let buffers = |server: &Server| {
        let metrics = server.metrics();
        metric_value(&metrics, "strata_store_buffers").unwrap_or_else(|| panic!("{metrics}"))
    };
    assert!(buffers(&server) <= 12.0, "{}", server.metrics());
    stop_gracefully(&mut server);
    server.restart();
    assert!(buffers(&server) <= 12.0, "{}", server.metrics());
    let samples: Vec<(i64, f64)> = (0..1200).map(|i| (start + 60 * i, i as f64)).collect();
    for host in ["n0", "n2"] {
        assert_series(&server, host, &samples);
    }
}

/// The sequence numbers of the records in the WAL of the data directory `data`.
fn logged_sequences(data: &Path) -> Vec<u64> {
    let start = strata_wal::Position::default();
    let mut reader = strata_wal::LogReader::open(&data.join("wal"), start, None).expect("WAL");
    let mut sequences = Vec::new();
    while let Some(event) = reader.next(Duration::ZERO).expect("reading the WAL") {
        match event {
            strata_wal::Event::Record(entry) => sequences.push(entry.sequence),
            strata_wal::Event::Damage(damage) => panic!("WAL damaged: {damage:?}"),
        }
    }
    sequences
}

#[test]
fn sequence_numbers_go_on_across_graceful_restarts() {
    // Issue 7 item 4: after a graceful restart the log's newest segment has no record (the
    // final snapshot rotated the log and deleted what it covers), and numbering used to start
    // at 0 again: a forwarder's cursor would have gone backwards. Each run writes one record
    // and is killed (the record stays in the log), restarted, stopped gracefully, restarted.
    let mut server = server_with_wal(json!({"fsync": "always"}));
    let start = minutes_ago(60);
    let mut logged = Vec::new();
    for run in 0..3 {
        write_series(&server, &format!("h{run}"), start, 2, 1.0);
        kill(&mut server);
        logged.extend(logged_sequences(&server.data_dir()));
        server.restart();
        stop_gracefully(&mut server);
        assert!(logged_sequences(&server.data_dir()).is_empty());
        server.restart();
    }
    assert_eq!(logged, [0, 1, 2]);
}
