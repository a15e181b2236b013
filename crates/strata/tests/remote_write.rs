//! Forwarding to real remote-write receivers, black-box: the real binary writes to a real
//! VictoriaMetrics 1.79 or Prometheus 2.42 (started here on free loopback ports), sometimes
//! through a proxy that injects faults, and what arrived is compared sample by sample with
//! what Strata acknowledged.
//!
//! VictoriaMetrics stores duplicates as they come, so its export counts them; Prometheus
//! without an out-of-order window refuses a re-sent older sample (400, whole request rolled
//! back), so it shows what a strict receiver makes of a restart.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, metric_value, minutes_ago};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use strata_testkit::{Fault, FaultProxy, Prometheus, Series, VictoriaMetrics};

/// Longest wait for forwarded samples to arrive.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// A remote-write configuration that sends small batches quickly and retries fast.
fn config(url: &str) -> Value {
    json!({"metric-store": {"remote-write": [{
        "name": "test",
        "url": url,
        "queue": {"batch-send-deadline": "100ms", "min-backoff": "10ms", "max-backoff": "200ms",
                  "max-samples-per-send": 500}
    }]}})
}

/// The samples of one write round: `hosts` hosts, two node metrics and one per-core metric
/// (cores 0 and 1) each, one sample a minute for `minutes` minutes ending `end_minutes_ago`
/// minutes ago. Values are exact in an f32 (below 2^22 with quarters: tags up to 40,
/// minutes up to 60, hosts up to 1000) and unique per round.
struct Round {
    lines: String,
    /// (labels, timestamp ms) → value.
    expected: BTreeMap<(BTreeMap<String, String>, i64), f64>,
}

fn round(tag: u32, hosts: usize, minutes: i64, end_minutes_ago: i64) -> Round {
    let mut lines = String::new();
    let mut expected = BTreeMap::new();
    for minute in 0..minutes {
        let time_s = minutes_ago(end_minutes_ago + minutes - 1 - minute);
        for host in 0..hosts {
            let hostname = format!("n{host:03}");
            let base = f64::from(tag) * 100_000.0 + (minute as f64) * 1000.0 + host as f64;
            for (metric, extra) in [("cpu_load", 0.0), ("mem_used", 0.5)] {
                lines.push_str(&format!(
                    "{metric},hostname={hostname} value={} {time_s}\n",
                    base + extra
                ));
                expected.insert(
                    (
                        labels(&[
                            ("__name__", metric),
                            ("cluster", "c1"),
                            ("hostname", &hostname),
                        ]),
                        time_s * 1000,
                    ),
                    base + extra,
                );
            }
            for core in 0..2 {
                let value = base + 0.25 + f64::from(core);
                lines.push_str(&format!(
                    "cpu_user,hostname={hostname},type=core,type-id={core} value={value} {time_s}\n"
                ));
                let core = core.to_string();
                expected.insert(
                    (
                        labels(&[
                            ("__name__", "cpu_user"),
                            ("cluster", "c1"),
                            ("hostname", &hostname),
                            ("type", "core"),
                            ("type_id", &core),
                        ]),
                        time_s * 1000,
                    ),
                    value,
                );
            }
        }
    }
    Round { lines, expected }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What arrived, compared with what was acknowledged: (missing, wrong values, duplicates).
fn compare(
    arrived: &[Series],
    expected: &BTreeMap<(BTreeMap<String, String>, i64), f64>,
) -> (Vec<String>, Vec<String>, usize) {
    let mut seen: BTreeMap<(BTreeMap<String, String>, i64), Vec<f64>> = BTreeMap::new();
    for series in arrived {
        for &(time_ms, value) in &series.points {
            seen.entry((series.labels.clone(), time_ms))
                .or_default()
                .push(value);
        }
    }
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    let mut duplicates = 0;
    for (key, &value) in expected {
        match seen.get(key) {
            None => missing.push(format!("{:?}@{}", key.0, key.1)),
            Some(values) => {
                duplicates += values.len() - 1;
                if values.iter().any(|&v| v != value) {
                    wrong.push(format!("{:?}@{}: {values:?} != {value}", key.0, key.1));
                }
            }
        }
    }
    for key in seen.keys() {
        if !expected.contains_key(key) {
            wrong.push(format!("never written: {:?}@{}", key.0, key.1));
        }
    }
    (missing, wrong, duplicates)
}

/// Asserts that every expected sample arrived with its value and nothing else did; returns
/// the number of duplicates.
#[track_caller]
fn assert_arrived(
    arrived: &[Series],
    expected: &BTreeMap<(BTreeMap<String, String>, i64), f64>,
) -> usize {
    let (missing, wrong, duplicates) = compare(arrived, expected);
    assert!(
        missing.is_empty() && wrong.is_empty(),
        "missing: {missing:?}; wrong: {wrong:?}"
    );
    duplicates
}

/// Like [`assert_arrived`], and each sample arrived once.
#[track_caller]
fn assert_arrived_once(
    arrived: &[Series],
    expected: &BTreeMap<(BTreeMap<String, String>, i64), f64>,
) {
    assert_eq!(assert_arrived(arrived, expected), 0, "duplicates");
}

/// Waits until every expected sample is in VictoriaMetrics; returns the export.
fn wait_for_all(
    vm: &VictoriaMetrics,
    expected: &BTreeMap<(BTreeMap<String, String>, i64), f64>,
    server: &Server,
) -> Vec<Series> {
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let arrived = vm.export(r#"{cluster="c1"}"#);
        let (missing, _, _) = compare(&arrived, expected);
        if missing.is_empty() {
            return arrived;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} samples never arrived (first: {:?}); strata log:\n{}",
            missing.len(),
            expected.len(),
            missing.first(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn every_acknowledged_sample_reaches_victoria_metrics_exactly_once() {
    let vm = VictoriaMetrics::start();
    let server = Server::start_with_config(&config(&vm.write_url()));
    let round = round(1, 20, 30, 1);
    for chunk in round.lines.lines().collect::<Vec<_>>().chunks(400) {
        server.write_ok("c1", &chunk.join("\n"));
    }
    let arrived = wait_for_all(&vm, &round.expected, &server);
    assert_arrived_once(&arrived, &round.expected);

    let metrics = server.metrics();
    let sent = metric_value(
        &metrics,
        r#"strata_remote_samples_total{remote_name="test"}"#,
    );
    assert!(sent >= Some(round.expected.len() as f64), "{metrics}");
    let status = server.get("/api/remote-write");
    status.assert_status(200);
    let status = status.json();
    assert_eq!(status[0]["name"], "test");
    assert_eq!(status[0]["url"], vm.write_url().as_str());
    assert!(
        status[0]["cursor"]["segment"].as_u64().is_some(),
        "{status}"
    );
}

#[test]
fn an_outage_with_sigkills_loses_nothing_and_resends_nothing() {
    let vm = VictoriaMetrics::start();
    let proxy = FaultProxy::start(&vm.write_url());
    let mut server = Server::start_with_config(&config(&proxy.url()));
    // The receiver fails in a different way in each of three rounds — 503, 429 with
    // Retry-After, requests that stall past the timeout — with a SIGKILL after each.
    let faults = [
        Fault::Status {
            status: 503,
            retry_after_s: None,
        },
        Fault::Status {
            status: 429,
            retry_after_s: Some(1),
        },
        Fault::Stall(Duration::from_secs(3)),
    ];
    let mut expected = BTreeMap::new();
    for (tag, fault) in (1..=3u32).zip(faults) {
        proxy.set(fault);
        let round = round(tag, 10, 10, 40 - i64::from(tag) * 10);
        server.write_ok("c1", &round.lines);
        expected.extend(round.expected);
        std::thread::sleep(Duration::from_millis(300));
        server.kill_now();
        server.restart();
    }
    assert!(
        proxy.faulted() > 0,
        "the sender never tried while the receiver was down"
    );
    proxy.set(Fault::Pass);
    let arrived = wait_for_all(&vm, &expected, &server);
    // Nothing was acknowledged before, so nothing may arrive twice.
    assert_arrived_once(&arrived, &expected);
}

#[test]
fn a_lost_response_is_the_only_source_of_duplicates() {
    let vm = VictoriaMetrics::start();
    let proxy = FaultProxy::start(&vm.write_url());
    let mut server = Server::start_with_config(&config(&proxy.url()));
    let first = round(1, 5, 10, 30);
    server.write_ok("c1", &first.lines);
    wait_for_all(&vm, &first.expected, &server);
    // Stored, but the sender never hears so: these samples are sent again.
    proxy.set(Fault::StoreThenDrop);
    let second = round(2, 5, 10, 15);
    server.write_ok("c1", &second.lines);
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    while proxy.faulted() == 0 {
        assert!(Instant::now() < deadline, "no request reached the proxy");
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.set(Fault::Pass);
    let mut expected = first.expected.clone();
    expected.extend(second.expected.clone());
    wait_for_all(&vm, &expected, &server);
    // A clean restart resends nothing: the cursor and hint are written at shutdown.
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(20));
    server.restart();
    let third = round(3, 5, 5, 1);
    server.write_ok("c1", &third.lines);
    expected.extend(third.expected.clone());
    let arrived = wait_for_all(&vm, &expected, &server);
    let duplicates = assert_arrived(&arrived, &expected);
    // Every attempt while responses were lost stored a copy: duplicates are allowed there,
    // and only there.
    let (_, _, second_duplicates) = compare(&arrived, &second.expected);
    assert_eq!(duplicates, second_duplicates);
    let (_, _, first_duplicates) = compare(&arrived, &first.expected);
    let (_, _, third_duplicates) = compare(&arrived, &third.expected);
    assert_eq!(first_duplicates + third_duplicates, 0);
}

#[test]
fn a_poison_sample_is_dead_lettered_and_everything_else_arrives() {
    let vm = VictoriaMetrics::start();
    let proxy = FaultProxy::start(&vm.write_url());
    proxy.set(Fault::RejectValue(666.0));
    let server = Server::start_with_config(&config(&proxy.url()));
    let mut round = round(1, 10, 10, 20);
    let time_s = minutes_ago(5);
    round
        .lines
        .push_str(&format!("cpu_load,hostname=poison value=666 {time_s}\n"));
    server.write_ok("c1", &round.lines);
    let arrived = wait_for_all(&vm, &round.expected, &server);
    assert_arrived_once(&arrived, &round.expected);
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let metrics = server.metrics();
        let dropped = metric_value(
            &metrics,
            r#"strata_remote_samples_dropped_total{remote_name="test",reason="rejected"}"#,
        );
        if dropped == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "poison not counted:\n{metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dead_letters: String = common::files_under(&server.data_dir())
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".deadletter"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        dead_letters.contains("hostname=poison") && dead_letters.contains("666"),
        "dead letters: {dead_letters:?}"
    );
}

#[test]
fn a_strict_prometheus_gets_every_sample_across_restarts() {
    let prometheus = Prometheus::start(None);
    let mut server = Server::start_with_config(&config(&prometheus.write_url()));
    let first = round(1, 5, 10, 25);
    server.write_ok("c1", &first.lines);
    let wait_for = |expected: &BTreeMap<(BTreeMap<String, String>, i64), f64>, server: &Server| {
        let deadline = Instant::now() + ARRIVAL_TIMEOUT;
        loop {
            let arrived = prometheus.raw(r#"{cluster="c1"}"#, "2h", common::now_s() + 60);
            let (missing, wrong, duplicates) = compare(&arrived, expected);
            if missing.is_empty() {
                assert!(wrong.is_empty(), "{wrong:?}");
                assert_eq!(duplicates, 0, "Prometheus keeps one sample per timestamp");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} samples missing; log:\n{}",
                missing.len(),
                server.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for(&first.expected, &server);
    // Let the cursor and the hint reach the disk, then crash.
    std::thread::sleep(Duration::from_millis(1500));
    server.kill_now();
    server.restart();
    let second = round(2, 5, 10, 10);
    server.write_ok("c1", &second.lines);
    let mut expected = first.expected.clone();
    expected.extend(second.expected);
    wait_for(&expected, &server);
    let metrics = server.metrics();
    let rejected = metric_value(
        &metrics,
        r#"strata_remote_samples_dropped_total{remote_name="test",reason="rejected"}"#,
    )
    .unwrap_or(0.0);
    assert_eq!(
        rejected, 0.0,
        "replayed samples reached Prometheus again:\n{metrics}"
    );
    let out_of_order = prometheus.self_metric("prometheus_tsdb_out_of_order_samples_total");
    assert_eq!(out_of_order, 0.0);
}

/// The samples VictoriaMetrics holds, each counted once.
fn unique_samples(arrived: &[Series]) -> usize {
    arrived
        .iter()
        .map(|series| {
            let mut times: Vec<i64> = series.points.iter().map(|p| p.0).collect();
            times.dedup();
            times.len()
        })
        .sum()
}

#[test]
fn an_endpoint_over_its_backlog_budget_skips_and_counts_what_it_skipped() {
    let vm = VictoriaMetrics::start();
    let proxy = FaultProxy::start(&vm.write_url());
    proxy.set(Fault::Status {
        status: 503,
        retry_after_s: None,
    });
    let mut config = config(&proxy.url());
    config["metric-store"]["remote-write"][0]["max-backlog-bytes"] = json!("64KiB");
    config["metric-store"]["wal"] = json!({"segment-size": "16KiB"});
    config["metric-store"]["checkpoint-interval"] = json!("1s");
    let server = Server::start_with_config(&config);
    let mut expected = BTreeMap::new();
    for tag in 1..=30u32 {
        let round = round(tag, 20, 10, (30 - i64::from(tag)) * 10);
        server.write_ok("c1", &round.lines);
        expected.extend(round.expected);
    }
    let dropped_metric =
        r#"strata_remote_samples_dropped_total{remote_name="test",reason="backlog_budget"}"#;
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    let skipped = loop {
        let metrics = server.metrics();
        let skipped = metric_value(&metrics, dropped_metric).unwrap_or(0.0);
        let lag = metric_value(
            &metrics,
            r#"strata_remote_cursor_lag_bytes{remote_name="test"}"#,
        );
        if skipped > 0.0 && lag.is_some_and(|lag| lag <= 64.0 * 1024.0) {
            break skipped as usize;
        }
        assert!(
            Instant::now() < deadline,
            "the budget was never enforced:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        server.log().contains("backlog budget exceeded"),
        "{}",
        server.log()
    );
    // Snapshots every second delete what no reader holds: the endpoint holds no more than its
    // budget plus the segment it is in.
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let wal_bytes: u64 = common::files_under(&server.data_dir().join("wal"))
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        if wal_bytes <= 64 * 1024 + 2 * 16 * 1024 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the log still holds {wal_bytes} bytes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The receiver comes back: what was not skipped arrives, and every sample written is
    // either there or counted as skipped.
    proxy.set(Fault::Pass);
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let metrics = server.metrics();
        let pending = metric_value(
            &metrics,
            r#"strata_remote_cursor_lag_bytes{remote_name="test"}"#,
        );
        let skipped_now = metric_value(&metrics, dropped_metric).unwrap_or(0.0) as usize;
        let arrived = unique_samples(&vm.export(r#"{cluster="c1"}"#));
        if pending == Some(0.0) && arrived + skipped_now == expected.len() {
            assert!(skipped_now >= skipped);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{arrived} arrived + {skipped_now} skipped != {} written, lag {pending:?}:\n{metrics}",
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, wrong, duplicates) = compare(&vm.export(r#"{cluster="c1"}"#), &expected);
    assert!(wrong.is_empty(), "{wrong:?}");
    assert_eq!(duplicates, 0);
}

#[test]
fn a_dead_endpoint_slows_neither_ingest_nor_the_other_endpoint() {
    let vm = VictoriaMetrics::start();
    // Accepts connections and never answers.
    let stalled = FaultProxy::start(&vm.write_url());
    stalled.set(Fault::Stall(Duration::from_secs(3600)));
    let mut config = config(&vm.write_url());
    let mut dead = config["metric-store"]["remote-write"][0].clone();
    dead["name"] = json!("dead");
    dead["url"] = json!(stalled.url());
    dead["timeout"] = json!("2s");
    config["metric-store"]["remote-write"]
        .as_array_mut()
        .unwrap()
        .push(dead);
    let server = Server::start_with_config(&config);
    let mut expected = BTreeMap::new();
    let started = Instant::now();
    for tag in 1..=5u32 {
        let round = round(tag, 20, 10, (5 - i64::from(tag)) * 10 + 1);
        server.write_ok("c1", &round.lines);
        expected.extend(round.expected);
    }
    let writing = started.elapsed();
    assert!(
        writing < Duration::from_secs(10),
        "ingest waited for the dead endpoint: {writing:?}"
    );
    let arrived = wait_for_all(&vm, &expected, &server);
    assert_arrived_once(&arrived, &expected);
    // The state page is refreshed every second: the live endpoint catches up, the dead one
    // holds its place and says why.
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let status = server.get("/api/remote-write").json();
        let endpoint = |name: &str| {
            status
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .cloned()
                .unwrap()
        };
        let (live, dead) = (endpoint("test"), endpoint("dead"));
        if live["lag_bytes"] == 0
            && dead["lag_bytes"].as_u64() > Some(0)
            && live["cursor"] != dead["cursor"]
            && dead["last_error"].is_string()
        {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(stalled.requests() > 0);
}

#[test]
fn after_a_lost_cursor_the_hint_keeps_resent_samples_from_a_strict_receiver() {
    let prometheus = Prometheus::start(None);
    let mut server = Server::start_with_config(&config(&prometheus.write_url()));
    let first = round(1, 5, 10, 25);
    server.write_ok("c1", &first.lines);
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    while !compare(
        &prometheus.raw(r#"{cluster="c1"}"#, "2h", common::now_s() + 60),
        &first.expected,
    )
    .0
    .is_empty()
    {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    // The hint reaches the disk with the cursor; then the cursor is lost, so the whole log
    // is read again from its first segment.
    std::thread::sleep(Duration::from_millis(2500));
    server.kill_now();
    let cursor = server.data_dir().join("remote-write").join("test.cursor");
    std::fs::write(&cursor, b"damaged").unwrap();
    server.restart();
    assert!(
        server.log().contains("cursor unreadable"),
        "{}",
        server.log()
    );
    let second = round(2, 5, 10, 10);
    server.write_ok("c1", &second.lines);
    let mut expected = first.expected.clone();
    expected.extend(second.expected);
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let arrived = prometheus.raw(r#"{cluster="c1"}"#, "2h", common::now_s() + 60);
        let (missing, wrong, _) = compare(&arrived, &expected);
        if missing.is_empty() {
            assert!(wrong.is_empty(), "{wrong:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{} missing", missing.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = server.metrics();
    let skipped = metric_value(
        &metrics,
        r#"strata_remote_replay_skipped_samples_total{remote_name="test"}"#,
    );
    assert_eq!(skipped, Some(first.expected.len() as f64), "{metrics}");
    let rejected = metric_value(
        &metrics,
        r#"strata_remote_samples_dropped_total{remote_name="test",reason="rejected"}"#,
    );
    assert_eq!(rejected, Some(0.0), "{metrics}");
    assert_eq!(
        prometheus.self_metric("prometheus_tsdb_out_of_order_samples_total"),
        0.0
    );
}

#[test]
fn a_slow_receiver_gets_more_shards_and_resharding_loses_nothing() {
    let vm = VictoriaMetrics::start();
    let proxy = FaultProxy::start(&vm.write_url());
    // 100 samples a request, 250 ms each: one shard moves 400 samples/s.
    proxy.set(Fault::Delay(Duration::from_millis(250)));
    let mut config = config(&proxy.url());
    config["metric-store"]["remote-write"][0]["queue"] = json!({
        "min-shards": 1, "max-shards": 8, "max-samples-per-send": 100,
        "batch-send-deadline": "50ms", "min-backoff": "10ms", "max-backoff": "200ms"});
    // Small segments: reshards reopen the log inside segments whose series were defined
    // before the position (their labels come with the first record read).
    config["metric-store"]["wal"] = json!({"segment-size": "16KiB"});
    // A series the relabel rules drop: counted once, however often a reshard reads it again.
    config["metric-store"]["remote-write"][0]["relabel"] = json!([
        {"action": "drop", "source-labels": ["hostname"], "regex": "dropped"}]);
    let server = Server::start_with_config(&config);
    let mut expected = BTreeMap::new();
    let mut dropped = 0;
    for tag in 1..=12u32 {
        let round = round(tag, 50, 10, (12 - i64::from(tag)) * 10);
        let mut lines = round.lines;
        for minute in 0..10 {
            let time_s = minutes_ago((12 - i64::from(tag)) * 10 + minute);
            lines.push_str(&format!("cpu_load,hostname=dropped value=1 {time_s}\n"));
            dropped += 1;
        }
        server.write_ok("c1", &lines);
        expected.extend(round.expected);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut most_shards = 1.0f64;
    loop {
        let metrics = server.metrics();
        let shards = metric_value(&metrics, r#"strata_remote_shards{remote_name="test"}"#);
        most_shards = most_shards.max(shards.unwrap_or(0.0));
        let lag = metric_value(
            &metrics,
            r#"strata_remote_cursor_lag_bytes{remote_name="test"}"#,
        );
        if most_shards > 1.0 && lag == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "shards {most_shards}, lag {lag:?}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(server.log().contains("resharding"), "{}", server.log());
    let arrived = wait_for_all(&vm, &expected, &server);
    let duplicates = assert_arrived(&arrived, &expected);
    // A reshard abandons requests in flight (at most one per shard); their samples may be
    // stored and sent again, nothing else.
    assert!(duplicates <= 8 * 100, "{duplicates} duplicates");
    let counted = metric_value(
        &server.metrics(),
        r#"strata_remote_samples_dropped_total{remote_name="test",reason="dropped_series"}"#,
    );
    assert_eq!(counted, Some(f64::from(dropped)));
}

// See: review of issue 7, finding 1 (the hint once compared sample times, and skipped a late
// sample that was never sent).
#[test]
fn a_late_sample_read_again_after_a_crash_is_still_sent() {
    let vm = VictoriaMetrics::start();
    let proxy = FaultProxy::start(&vm.write_url());
    let mut server = Server::start_with_config(&config(&proxy.url()));
    let newer = minutes_ago(5);
    server.write_ok("c1", &format!("cpu_load,hostname=late value=2 {newer}\n"));
    let newest: BTreeMap<_, _> = [(
        (
            labels(&[
                ("__name__", "cpu_load"),
                ("cluster", "c1"),
                ("hostname", "late"),
            ]),
            newer * 1000,
        ),
        2.0,
    )]
    .into();
    wait_for_all(&vm, &newest, &server);
    std::thread::sleep(Duration::from_millis(1500));
    // The receiver goes down; a late sample of the same series arrives and is logged, but
    // never acknowledged; then a crash.
    proxy.set(Fault::Status {
        status: 503,
        retry_after_s: None,
    });
    let older = minutes_ago(10);
    server.write_ok("c1", &format!("cpu_load,hostname=late value=1 {older}\n"));
    std::thread::sleep(Duration::from_millis(500));
    server.kill_now();
    proxy.set(Fault::Pass);
    server.restart();
    let mut expected = newest.clone();
    expected.insert(
        (
            labels(&[
                ("__name__", "cpu_load"),
                ("cluster", "c1"),
                ("hostname", "late"),
            ]),
            older * 1000,
        ),
        1.0,
    );
    let arrived = wait_for_all(&vm, &expected, &server);
    assert_arrived_once(&arrived, &expected);
}

// See: review of issue 7, finding 2.
#[test]
fn a_cursor_whose_segment_is_gone_is_reported_not_followed_silently() {
    let vm = VictoriaMetrics::start();
    let mut config = config(&vm.write_url());
    config["metric-store"]["wal"] = json!({"segment-size": "4KiB"});
    config["metric-store"]["checkpoint-interval"] = json!("1s");
    let mut server = Server::start_with_config(&config);
    let first = round(1, 5, 5, 30);
    server.write_ok("c1", &first.lines);
    wait_for_all(&vm, &first.expected, &server);
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(20));
    // Without the endpoint, the log moves on and snapshots delete what nobody holds.
    let full = server.config();
    let mut without = full.clone();
    without["metric-store"]["remote-write"] = json!([]);
    server.set_config(&without);
    server.restart();
    assert!(server.log().contains("not configured"), "{}", server.log());
    let cursor = std::fs::read(server.data_dir().join("remote-write/test.cursor")).unwrap();
    for tag in 2..=6u32 {
        server.write_ok("c1", &round(tag, 5, 5, 30 - 5 * i64::from(tag)).lines);
    }
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let log = server.log();
        if log.contains("snapshot") && common::files_under(&server.data_dir().join("wal")).len() < 3
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot deleted the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(20));
    assert_eq!(
        std::fs::read(server.data_dir().join("remote-write/test.cursor")).unwrap(),
        cursor
    );
    server.set_config(&full);
    server.restart();
    assert!(
        server
            .log()
            .contains("the log segment of the cursor is gone"),
        "{}",
        server.log()
    );
    let metrics = server.metrics();
    assert_eq!(
        metric_value(
            &metrics,
            r#"strata_remote_log_damage_total{remote_name="test"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
}

// See: hostile test of issue 7 (a deleted cursor made the endpoint start at the log's end).
#[test]
fn a_deleted_cursor_file_resends_rather_than_skips() {
    let vm = VictoriaMetrics::start();
    let proxy = FaultProxy::start(&vm.write_url());
    let mut server = Server::start_with_config(&config(&proxy.url()));
    let first = round(1, 5, 5, 20);
    server.write_ok("c1", &first.lines);
    wait_for_all(&vm, &first.expected, &server);
    std::thread::sleep(Duration::from_millis(1500));
    proxy.set(Fault::Status {
        status: 503,
        retry_after_s: None,
    });
    let second = round(2, 5, 5, 10);
    server.write_ok("c1", &second.lines);
    std::thread::sleep(Duration::from_millis(300));
    server.kill_now();
    std::fs::remove_file(server.data_dir().join("remote-write/test.cursor")).unwrap();
    proxy.set(Fault::Pass);
    server.restart();
    assert!(
        server
            .log()
            .contains("cursor file is missing but its hint is there"),
        "{}",
        server.log()
    );
    let mut expected = first.expected.clone();
    expected.extend(second.expected);
    // The hint keeps what was acknowledged from being sent again.
    let arrived = wait_for_all(&vm, &expected, &server);
    assert_arrived_once(&arrived, &expected);
}
