//! cc-metric-store's legacy flat configuration (before v1.5, COMPAT.md §5.3) against the
//! real binary: a server started with such a file serves writes and queries as the file
//! says, logs the format once, and `strata config convert` prints a v1.5 file that starts an
//! equivalent server.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{DOCS_PUBLIC_KEY, DOCS_TOKEN, Server, minutes_ago, now_s, run_strata};
use serde_json::{Value, json};
use strata_testkit::{NatsServer, free_port};

/// Longest wait for `strata config convert` or a refused `strata serve`.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A file shaped like cc-metric-store's `configs/config-nats.json` (written from COMPAT.md
/// §5.3, not fetched): every section of the format, a NATS connection with two subscriptions
/// to one subject (per-subscription cluster tags), paths inside the test's `dir`. The NATS
/// server is a port nobody listens on (NATS ingest through a legacy file: the last test).
fn legacy_config(dir: &Path, addr: &str) -> Value {
    json!({
        "metrics": {
            "cpu_load": {"frequency": 10, "aggregation": null},
            "flops_any": {"frequency": 10, "aggregation": "sum"},
            "mem_used": {"frequency": 10}
        },
        "checkpoints": {
            "interval": "12h",
            "directory": dir.join("checkpoints"),
            "restore": "48h"
        },
        "archive": {"interval": "48h", "directory": dir.join("archive")},
        "http-api": {"address": addr, "https-cert-file": "", "https-key-file": ""},
        "retention-in-memory": "48h",
        "jwt-public-key": DOCS_PUBLIC_KEY,
        "debug": {"dump-to-file": "", "gops": false},
        "nats": [{
            "address": format!("nats://127.0.0.1:{}", free_port()),
            "username": "root",
            "password": "root",
            "subscriptions": [
                {"subscribe-to": "updates", "cluster-tag": "fritz"},
                {"subscribe-to": "updates", "cluster-tag": "alex"}
            ]
        }]
    })
}

fn bearer() -> String {
    format!("Bearer {DOCS_TOKEN}")
}

/// `POST /api/write` with the token, asserting `200`.
fn write(server: &Server, cluster: &str, lines: &str) {
    let response = server.request(
        "POST",
        &format!("/api/write?cluster={cluster}"),
        &[("Authorization", &bearer())],
        lines.as_bytes(),
    );
    response.assert_status(200);
}

/// The non-null values of one metric of host `h1` in cluster `fritz` over the last 10 minutes.
fn values(server: &Server, metric: &str, now: i64) -> Vec<f64> {
    let body = json!({
        "cluster": "fritz", "from": now - 600, "to": now + 10,
        "queries": [{"metric": metric, "host": "h1"}]
    });
    let response = server.request(
        "GET",
        "/api/query",
        &[
            ("Authorization", &bearer()),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    response.assert_status(200);
    let answer = response.json();
    answer["results"][0][0]["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {answer}"))
        .iter()
        .filter_map(Value::as_f64)
        .collect()
}

/// Goal: a legacy file starts Strata with its settings: the listen address of `http-api`, the
/// JWT key (an unauthenticated write is refused), the metrics (an unlisted one is dropped, a
/// listed one without aggregation is stored); the log names the format once and says what
/// does not carry over. Then the file `strata config convert` prints starts a second server on
/// the same data directory that answers the same query with the same values.
#[test]
fn legacy_file_serves_and_its_conversion_serves_the_same() {
    let server = Server::start_with_file(legacy_config);
    let config_path = server.dir().join("config.json");
    let log = server.log();
    let format_line = format!(
        "configuration format: cc-metric-store legacy flat (before v1.5); `strata config \
         convert {}` prints the v1.5 equivalent",
        config_path.display()
    );
    assert_eq!(log.matches(&format_line).count(), 1, "{log}");
    assert!(
        log.contains("legacy configuration: checkpoints.restore \"48h\" is ignored"),
        "{log}"
    );
    assert!(
        log.contains("legacy configuration: archive: data older than retention-in-memory"),
        "{log}"
    );

    let now = now_s();
    server
        .write_lines("fritz", &format!("cpu_load,hostname=h1 value=1 {now}"))
        .assert_status(401);
    write(
        &server,
        "fritz",
        &format!(
            "cpu_load,hostname=h1,type=node value=1.5 {}\n\
             cpu_load,hostname=h1,type=node value=2.5 {}\n\
             mem_used,hostname=h1,type=node value=7 {}\n\
             not_configured,hostname=h1,type=node value=9 {}",
            now - 30,
            now - 20,
            now - 20,
            now - 20
        ),
    );
    assert_eq!(values(&server, "cpu_load", now), [1.5, 2.5]);
    assert_eq!(values(&server, "mem_used", now), [7.0]);

    // Convert the running server's own file.
    let output = run_strata(
        server.dir(),
        &["config", "convert", &config_path.display().to_string()],
        EXIT_TIMEOUT,
    );
    assert_eq!(output.status.code(), Some(0), "{}", output.stderr);
    assert!(
        output
            .stderr
            .contains("note: checkpoints.restore \"48h\" is ignored"),
        "{}",
        output.stderr
    );
    let converted: Value = serde_json::from_str(&output.stdout).expect("stdout is JSON");
    assert_eq!(converted["main"]["addr"], json!(server.addr));
    assert_eq!(converted["main"]["jwt-public-key"], json!(DOCS_PUBLIC_KEY));
    assert_eq!(converted["metrics"]["mem_used"]["aggregation"], json!(null));
    assert_eq!(
        converted["metric-store"]["nats-subscriptions"],
        json!([{"subscribe-to": "updates", "cluster-tag": "fritz"},
               {"subscribe-to": "updates", "cluster-tag": "alex"}])
    );
    assert_eq!(
        converted["metric-store"]["cleanup"]["mode"],
        json!("archive")
    );

    // The same data directory, read by a server started from the converted file (on a port
    // of its own).
    let mut server = server;
    server.signal("TERM");
    assert!(server.wait_exit(EXIT_TIMEOUT).is_some(), "{}", server.log());
    let second = Server::start_with_file(|_, addr| {
        let mut config = converted.clone();
        config["main"]["addr"] = json!(addr);
        config
    });
    assert!(
        !second.log().contains("configuration format"),
        "{}",
        second.log()
    );
    assert_eq!(values(&second, "cpu_load", now), [1.5, 2.5]);
    assert_eq!(values(&second, "mem_used", now), [7.0]);
    write(
        &second,
        "fritz",
        &format!("cpu_load,hostname=h1 value=3.5 {}", now - 10),
    );
    assert_eq!(values(&second, "cpu_load", now), [1.5, 2.5, 3.5]);
}

/// Goal: `strata config convert` refuses what `strata serve` refuses, with the same message
/// and a non-zero exit (an invalid legacy value, a file mixing both formats), and prints a
/// v1.5 file back with a note that it needed no conversion.
#[test]
fn convert_refuses_what_serve_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| run_strata(dir.path(), args, EXIT_TIMEOUT);

    let mut bad = legacy_config(dir.path(), "127.0.0.1:8082");
    bad["http-api"]["address"] = json!("");
    let mut mixed = legacy_config(dir.path(), "127.0.0.1:8082");
    mixed["main"] = json!({"addr": "127.0.0.1:8082"});
    let cases = [
        (
            bad,
            "invalid value for key \"address\" in section \"http-api\": must not be empty",
        ),
        (
            mixed,
            "mixes the legacy flat format of cc-metric-store before v1.5 (http-api, \
             checkpoints, archive, retention-in-memory, jwt-public-key, debug) with the v1.5 \
             format (main)",
        ),
    ];
    for (index, (config, message)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("refused-{index}.json"));
        std::fs::write(&path, config.to_string()).unwrap();
        let path = path.display().to_string();
        let converted = run(&["config", "convert", &path]);
        let served = run(&["serve", "--config", &path]);
        for output in [&converted, &served] {
            assert_eq!(output.status.code(), Some(1), "{}", output.stderr);
            assert!(
                output.stderr.contains(&format!("{path}: ")) && output.stderr.contains(message),
                "{}",
                output.stderr
            );
        }
        assert!(converted.stdout.is_empty(), "{}", converted.stdout);
        let error_line = |stderr: &str| {
            stderr
                .lines()
                .find(|line| line.starts_with("Error: "))
                .map(str::to_owned)
        };
        assert_eq!(
            error_line(&converted.stderr),
            error_line(&served.stderr),
            "{}\n{}",
            converted.stderr,
            served.stderr
        );
    }

    let sectioned = json!({
        "main": {"addr": "127.0.0.1:8082"},
        "metric-store": {"retention-in-memory": "48h"}
    });
    let path = dir.path().join("v15.json");
    std::fs::write(&path, sectioned.to_string()).unwrap();
    let output = run(&["config", "convert", &path.display().to_string()]);
    assert_eq!(output.status.code(), Some(0), "{}", output.stderr);
    assert!(
        output.stderr.contains("is in the v1.5 format already"),
        "{}",
        output.stderr
    );
    let printed: Value = serde_json::from_str(&output.stdout).expect("stdout is JSON");
    assert_eq!(printed, sectioned);
}

/// Goal: every connection of a legacy file's `nats` array ingests, each subscription with its
/// own cluster tag: two nats-servers, one with a user and password, one subscription on each
/// (plus a second, differently tagged one on the first, as cc-metric-store's shipped example
/// has); untagged lines land in their subscription's cluster.
#[test]
fn legacy_nats_connections_ingest() {
    let with_auth = NatsServer::start_with_auth("root", "legacy-pass");
    let open = NatsServer::start();
    let server = Server::start_with_file(|dir, addr| {
        json!({
            "metrics": {"cpu_load": {"frequency": 60, "aggregation": "avg"}},
            "checkpoints": {"interval": "12h", "directory": dir.join("checkpoints")},
            "archive": {"interval": "48h", "directory": dir.join("archive"), "delete-instead": true},
            "http-api": {"address": addr},
            "retention-in-memory": "48h",
            "nats": [
                {"address": with_auth.url(), "username": "root", "password": "legacy-pass",
                 "subscriptions": [{"subscribe-to": "updates", "cluster-tag": "fritz"},
                                   {"subscribe-to": "other", "cluster-tag": "woody"}]},
                {"address": open.url(),
                 "subscriptions": [{"subscribe-to": "updates", "cluster-tag": "alex"}]}
            ]
        })
    });
    let t = minutes_ago(5);
    let sends = [
        (&with_auth, "updates", "fritz", 1.0),
        (&with_auth, "other", "woody", 2.0),
        (&open, "updates", "alex", 3.0),
    ];
    for (nats, subject, _, value) in sends {
        nats.wait_for_subscriptions(subject, 1, EXIT_TIMEOUT);
        nats.client().publish(
            subject,
            [format!("cpu_load,hostname=h1,type=node value={value} {t}\n").into_bytes()],
        );
    }
    let deadline = std::time::Instant::now() + EXIT_TIMEOUT;
    for (_, _, cluster, value) in sends {
        loop {
            let answer = server.query(&json!({
                "cluster": cluster, "from": t, "to": t + 60,
                "queries": [{"metric": "cpu_load", "host": "h1"}]
            }));
            let stored = answer["results"][0][0]["data"][0].as_f64();
            if stored == Some(value) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "cluster {cluster}: {answer}\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let log = server.log();
    assert!(log.contains("cc-metric-store legacy flat"), "{log}");
    assert!(
        !log.contains("legacy-pass"),
        "the password in the log:\n{log}"
    );
}
