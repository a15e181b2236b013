//! `strata import` and `strata check` on the real binary: a cc-metric-store checkpoint
//! directory built from the documented byte formats (JSON snapshot, binary snapshot,
//! current.wal with a torn tail) is imported, served, and verified.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../../ccms/tests/util/mod.rs"]
mod ccms_files;
mod common;

use common::{Server, files_under, minutes_ago, run_strata};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Writes `<root>/fritz/f0201` (a JSON snapshot, a later binary snapshot, a WAL with a torn
/// last record) and `<root>/fritz/f0202` (one binary snapshot), and a stray file under root.
fn checkpoint_directory(root: &Path, start: i64) {
    let f0201 = root.join("fritz/f0201");
    let f0202 = root.join("fritz/f0202");
    std::fs::create_dir_all(&f0201).unwrap();
    std::fs::create_dir_all(&f0202).unwrap();
    let first = ccms_files::level(
        vec![ccms_files::metric(
            "cpu_load",
            60,
            start,
            &[1.0, 2.0, f32::NAN, 4.0],
        )],
        vec![(
            "socket0",
            ccms_files::level(
                vec![ccms_files::metric("mem_bw", 60, start, &[10.0, 11.0])],
                vec![],
            ),
        )],
    );
    std::fs::write(
        f0201.join(format!("{start}.json")),
        ccms_files::encode_json(start, start + 240, &first),
    )
    .unwrap();
    let second = ccms_files::level(
        vec![ccms_files::metric("cpu_load", 60, start + 240, &[5.0, 6.0])],
        vec![],
    );
    std::fs::write(
        f0201.join(format!("{}.bin", start + 240)),
        ccms_files::encode_binary(start + 240, start + 360, &second),
    )
    .unwrap();
    let records = [
        ccms_files::record(start + 360, "cpu_load", &[], 7.0),
        ccms_files::record(start + 360, "mem_bw", &["socket0"], 12.0),
        ccms_files::record(start + 420, "cpu_load", &[], 8.0),
    ];
    let (mut wal, _) = ccms_files::encode_wal(&records);
    let torn =
        ccms_files::encode_wal_record(&ccms_files::record(start + 480, "cpu_load", &[], 9.0));
    wal.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(f0201.join("current.wal"), wal).unwrap();
    let other = ccms_files::level(
        vec![ccms_files::metric("cpu_load", 60, start, &[0.5; 3])],
        vec![],
    );
    std::fs::write(
        f0202.join(format!("{start}.bin")),
        ccms_files::encode_binary(start, start + 180, &other),
    )
    .unwrap();
    std::fs::write(root.join("README"), "not a cluster").unwrap();
}

fn data(
    server: &Server,
    cluster: &str,
    host: &str,
    metric: &str,
    kind: Option<&str>,
    from: i64,
) -> Vec<Option<f64>> {
    let mut query = json!({"metric": metric, "host": host});
    if let Some(kind) = kind {
        query["type"] = json!(kind);
        query["type-ids"] = json!(["0"]);
    }
    let response = server.query(&json!({
        "cluster": cluster, "from": from, "to": from + 3600, "with-padding": false, "queries": [query]
    }));
    response["results"][0][0]["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {response}"))
        .iter()
        .map(serde_json::Value::as_f64)
        .collect()
}

/// Starts and stops a server (so that its data directory exists), then runs `strata import
/// <source>` with its configuration; restart the server to see the result.
fn import_into_stopped_server(source: &Path) -> (Server, common::Output) {
    let mut server = Server::start_with_config(&json!({}));
    server.signal("TERM");
    server
        .wait_exit(Duration::from_secs(10))
        .expect("server stops");
    let config = server.dir().join("config.json");
    let output = run_strata(
        server.dir(),
        &[
            "import",
            source.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    (server, output)
}

#[test]
fn import_brings_snapshots_and_wal_of_cc_metric_store_into_strata() {
    let start = minutes_ago(120) / 60 * 60;
    let source = tempfile::tempdir().unwrap();
    checkpoint_directory(source.path(), start);
    let (mut server, output) = import_into_stopped_server(source.path());
    assert!(
        output.status.success(),
        "import failed: {}\n{}",
        output.stdout,
        output.stderr
    );
    assert!(
        output.stdout.contains("hosts imported:        2"),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("snapshot files read:   3"),
        "{}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .contains("WAL files replayed:    1 (3 records, 3 samples stored)"),
        "{}",
        output.stdout
    );
    // Reported, not silently skipped: the stray file and the torn WAL tail.
    assert!(output.stdout.contains("README"), "{}", output.stdout);
    assert!(
        output.stdout.contains("current.wal: stopped at byte"),
        "{}",
        output.stdout
    );

    server.restart();
    let cpu = data(&server, "fritz", "f0201", "cpu_load", None, start);
    assert_eq!(
        cpu,
        [
            Some(1.0),
            Some(2.0),
            None,
            Some(4.0),
            Some(5.0),
            Some(6.0),
            Some(7.0),
            Some(8.0)
        ]
    );
    assert_eq!(
        data(&server, "fritz", "f0201", "mem_bw", Some("socket"), start),
        [Some(10.0), Some(11.0), None, None, None, None, Some(12.0)]
    );
    assert_eq!(
        data(&server, "fritz", "f0202", "cpu_load", None, start),
        [Some(0.5); 3]
    );
    assert!(
        server.log().contains("snapshot_generation=Some("),
        "{}",
        server.log()
    );
}

#[test]
fn check_reports_a_clean_directory_and_exits_1_on_damage() {
    let mut server = Server::start_with_config(&json!({}));
    let now = minutes_ago(1) / 60 * 60;
    server.write_ok(
        "c",
        &format!("m,host=h1 value=1 {now}\nm,host=h2 value=2 {now}\n"),
    );
    server.signal("TERM");
    server
        .wait_exit(Duration::from_secs(10))
        .expect("server stops");
    let data_dir = server.dir().join("checkpoints");
    let clean = run_strata(
        server.dir(),
        &["check", data_dir.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert!(clean.status.success(), "{}\n{}", clean.stdout, clean.stderr);
    assert!(
        clean.stdout.contains("2 hosts readable"),
        "{}",
        clean.stdout
    );
    assert!(clean.stdout.contains("no damage found"), "{}", clean.stdout);

    let snapshot = files_under(&data_dir.join("snapshots"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .expect("a snapshot file");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    bytes[40] ^= 0xff; // inside the first host's entry
    std::fs::write(&snapshot, bytes).unwrap();
    let damaged = run_strata(
        server.dir(),
        &["check", data_dir.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(damaged.status.code(), Some(1), "{}", damaged.stdout);
    assert!(damaged.stdout.contains("DAMAGED"), "{}", damaged.stdout);
    assert!(damaged.stdout.contains("checksum"), "{}", damaged.stdout);
}

#[test]
fn import_refuses_the_names_and_frequencies_ingest_refuses() {
    // Goal: one name rule for every door: a cluster directory `..evil` (which ingest rejects)
    // is skipped and reported, not imported; a series whose frequency is beyond one day is
    // left out instead of making its buffer ends overflow. Before: `..evil` was imported.
    let start = minutes_ago(120) / 60 * 60;
    let source = tempfile::tempdir().unwrap();
    for (cluster, host) in [("..evil", "h1"), ("good", "h1"), ("good", "bad\u{1}host")] {
        let directory = source.path().join(cluster).join(host);
        std::fs::create_dir_all(&directory).unwrap();
        let level = ccms_files::level(
            vec![
                ccms_files::metric("cpu_load", 60, start, &[1.0, 2.0]),
                ccms_files::metric("huge_step", i64::MAX, start, &[3.0]),
            ],
            vec![],
        );
        std::fs::write(
            directory.join(format!("{start}.bin")),
            ccms_files::encode_binary(start, start + 120, &level),
        )
        .unwrap();
    }
    let (mut server, output) = import_into_stopped_server(source.path());
    assert!(
        output.status.success(),
        "{}\n{}",
        output.stdout,
        output.stderr
    );
    let summary = &output.stdout;
    assert!(summary.contains("hosts imported:        1"), "{summary}");
    assert!(
        summary.contains("..evil/h1: cluster \"..evil\" contains '/', '\\' or '..'"),
        "{summary}"
    );
    assert!(
        summary.contains("host \"bad\\u{1}host\" contains a control character"),
        "{summary}"
    );

    server.restart();
    let debug = server.get("/api/debug").json();
    let clusters: Vec<&String> = debug["data"].as_object().unwrap().keys().collect();
    assert_eq!(clusters, ["good"], "{debug}");
    let hosts: Vec<&String> = debug["data"]["good"].as_object().unwrap().keys().collect();
    assert_eq!(hosts, ["h1"], "{debug}");
    assert_eq!(
        data(&server, "good", "h1", "cpu_load", None, start),
        [Some(1.0), Some(2.0)]
    );
    let huge = server.query(
        &json!({"cluster": "good", "from": start, "to": start + 3600,
                                    "queries": [{"metric": "huge_step", "host": "h1"}]}),
    );
    assert_eq!(
        huge["results"][0][0]["error"],
        json!("unknown metric: huge_step"),
        "{huge}"
    );
}
