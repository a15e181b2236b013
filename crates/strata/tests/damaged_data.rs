//! Damaged data directories, black-box: what `strata serve` recovers and what `strata check`
//! reports when a snapshot MANIFEST or a WAL segment is damaged or missing, and that damaged
//! files are kept in `quarantine/` instead of being deleted.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, files_under, minutes_ago, run_strata};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

const CLUSTER: &str = "dmg";
const SAMPLES: i64 = 30;
const TIMEOUT: Duration = Duration::from_secs(20);

/// Writes `SAMPLES` samples of `host` (60 s apart) in one request.
fn write_host(server: &Server, host: &str, start: i64) {
    let lines: String = (0..SAMPLES)
        .map(|i| {
            format!(
                "temp,hostname={host},type=node value={} {}\n",
                i + 1,
                start + 60 * i
            )
        })
        .collect();
    server.write_ok(CLUSTER, &lines);
}

/// The values of `host`, non-null slots only.
fn values(server: &Server, host: &str, start: i64) -> Vec<f64> {
    let body = server.query(&json!({
        "cluster": CLUSTER, "from": start, "to": start + 60 * SAMPLES,
        "with-padding": false, "with-stats": false,
        "queries": [{"metric": "temp", "host": host}]}));
    body["results"][0][0]["data"]
        .as_array()
        .map(|data| data.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn expected() -> Vec<f64> {
    (1..=SAMPLES).map(|v| v as f64).collect()
}

fn stop(server: &mut Server) {
    server.signal("TERM");
    server.wait_exit(TIMEOUT).expect("server stops");
}

fn check(server: &Server) -> common::Output {
    let data = server.data_dir();
    run_strata(server.dir(), &["check", data.to_str().unwrap()], TIMEOUT)
}

/// The MANIFEST of the only snapshot generation.
fn manifest(server: &Server) -> PathBuf {
    let snapshots = server.data_dir().join("snapshots");
    let generations: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(generations.len(), 1, "{generations:?}");
    generations[0].join("MANIFEST")
}

/// Issue 6 item 1: one damaged byte in the MANIFEST (or a cut-off or deleted one) made
/// `serve` delete the whole generation — every snapshotted sample — and `check` call it
/// "incomplete, no damage found" with exit 0. The WAL it covers is gone, so the generation
/// is the only copy: it must be loaded, reported loudly, and the MANIFEST quarantined.
#[test]
fn a_damaged_manifest_loses_nothing_and_check_fails() {
    for damage in ["flip", "cut", "delete"] {
        let mut server = Server::start();
        let start = minutes_ago(SAMPLES + 5);
        write_host(&server, "a", start);
        write_host(&server, "b", start);
        stop(&mut server);

        let manifest = manifest(&server);
        let mut bytes = std::fs::read(&manifest).unwrap();
        match damage {
            "flip" => {
                bytes[30] ^= 0x01;
                std::fs::write(&manifest, bytes).unwrap();
            }
            "cut" => std::fs::write(&manifest, &bytes[..bytes.len() / 2]).unwrap(),
            _ => std::fs::remove_file(&manifest).unwrap(),
        }

        let report = check(&server);
        assert_eq!(report.status.code(), Some(1), "{damage}: {}", report.stdout);
        assert!(
            report.stdout.contains("DAMAGED") && report.stdout.contains("MANIFEST"),
            "{damage}: {}",
            report.stdout
        );
        assert!(
            report.stdout.contains("2 hosts readable"),
            "{damage}: {}",
            report.stdout
        );

        server.restart();
        for host in ["a", "b"] {
            assert_eq!(values(&server, host, start), expected(), "{damage}: {host}");
        }
        let log = server.log();
        assert!(
            log.contains("ERROR") && log.contains("MANIFEST"),
            "{damage}: {log}"
        );
        if damage != "delete" {
            let quarantined = files_under(&server.data_dir().join("quarantine"));
            assert!(
                quarantined.iter().any(|p| p.ends_with("MANIFEST")),
                "{damage}: {quarantined:?}"
            );
        }
        // Recovery wrote the generation a new MANIFEST: whole again, before any snapshot.
        let report = check(&server);
        assert!(report.status.success(), "{damage}: {}", report.stdout);
        stop(&mut server);
        let report = check(&server);
        assert!(report.status.success(), "{damage}: {}", report.stdout);
    }
}

/// Issue 6 item 9: a WAL segment missing from the middle of the sequence was skipped by
/// `serve` and by `check` without a word. It is damage: `check` exits 1 and names it,
/// `serve` logs it, and everything in the other segments is recovered.
#[test]
fn a_missing_wal_segment_is_reported_by_serve_and_check() {
    let mut server = Server::start_with_config(&json!({
        "metric-store": {"wal": {"segment-size": "1KiB"}}
    }));
    let start = minutes_ago(SAMPLES + 5);
    let hosts: Vec<String> = (0..16).map(|i| format!("n{i:02}")).collect();
    for host in &hosts {
        write_host(&server, host, start);
    }
    server.kill_now();
    let wal = server.data_dir().join("wal");
    let mut segments: Vec<PathBuf> = files_under(&wal);
    segments.sort();
    assert!(segments.len() >= 4, "{segments:?}");
    std::fs::remove_file(&segments[1]).unwrap();

    let report = check(&server);
    assert_eq!(report.status.code(), Some(1), "{}", report.stdout);
    assert!(report.stdout.contains("is missing"), "{}", report.stdout);

    server.restart();
    let log = server.log();
    assert!(
        log.contains("WAL damaged") && log.contains("is missing"),
        "{log}"
    );
    assert_eq!(values(&server, &hosts[15], start), expected());
}

/// Issue 10: a snapshot refers to sealed blocks an older generation holds. `check` read only
/// the newest generation's packs, so blocks lost with a damaged older pack went unreported
/// until a start lost their samples. It must resolve every reference as recovery does.
#[test]
fn check_resolves_the_blocks_a_snapshot_keeps_in_older_generations() {
    let mut server = Server::start();
    // 386 samples per host: three sealed 128-slot blocks each and a tail of two, so that
    // the blocks are most of the first generation and the second one refers to them instead
    // of writing them again (it rewrites a generation less than half live).
    let start = minutes_ago(400);
    for host in ["a", "b"] {
        let lines: String = (0..386)
            .map(|i: i64| {
                let value = ((i * 7919) % 1000) as f64 / 10.0;
                format!(
                    "temp,hostname={host},type=node value={value} {}\n",
                    start + 60 * i
                )
            })
            .collect();
        server.write_ok(CLUSTER, &lines);
    }
    stop(&mut server);
    server.restart();
    write_host(&server, "c", minutes_ago(SAMPLES + 5));
    stop(&mut server);

    let report = check(&server);
    assert!(report.status.success(), "{}", report.stdout);
    assert!(
        report.stdout.contains("3 hosts readable")
            && report.stdout.contains("blocks kept in older generations"),
        "{}",
        report.stdout
    );

    // Damage the older generation's pack in the middle of a host's entry.
    let snapshots = server.data_dir().join("snapshots");
    let mut generations: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    generations.sort();
    assert_eq!(generations.len(), 2, "{generations:?}");
    let packs: Vec<PathBuf> = files_under(&generations[0])
        .into_iter()
        .filter(|p| !p.ends_with("MANIFEST"))
        .collect();
    for pack in &packs {
        let mut bytes = std::fs::read(pack).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(pack, bytes).unwrap();
    }
    let report = check(&server);
    assert_eq!(report.status.code(), Some(1), "{}", report.stdout);
    assert!(
        report.stdout.contains("DAMAGED") && report.stdout.contains("lost"),
        "{}",
        report.stdout
    );
    // What a start then does: the blocks are lost and said to be, the rest is loaded.
    server.restart();
    assert_eq!(values(&server, "c", minutes_ago(SAMPLES + 5)), expected());
    assert!(
        server.log().contains("snapshot blocks missing or damaged"),
        "{}",
        server.log()
    );
}

/// Issue 6 item 9: `check` on a directory that does not exist, or that is not a Strata data
/// directory, said "no damage found" and exited 0.
#[test]
fn check_refuses_what_is_not_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let report = run_strata(dir.path(), &["check", missing.to_str().unwrap()], TIMEOUT);
    assert_ne!(report.status.code(), Some(0), "{}", report.stdout);
    assert!(
        report.stderr.contains("no such directory"),
        "{}",
        report.stderr
    );

    std::fs::write(dir.path().join("notes.txt"), "not data").unwrap();
    let report = run_strata(
        dir.path(),
        &["check", dir.path().to_str().unwrap()],
        TIMEOUT,
    );
    assert_ne!(report.status.code(), Some(0), "{}", report.stdout);
    assert!(
        report.stderr.contains("not a Strata data directory"),
        "{}",
        report.stderr
    );
}

/// Found in hostile testing: `strata check` beside a running server failed 6 of 374 runs
/// ("reading …wal: No such file or directory") when a snapshot deleted a segment under it.
/// README promises it is safe while the server runs: under writes and snapshots every second
/// (small segments, so each snapshot deletes some), every check must come out clean.
#[test]
fn check_beside_a_running_server_never_reports_its_snapshots_as_damage() {
    let server = Server::start_with_config(&json!({"metric-store": {
        "checkpoint-interval": "1s", "wal": {"segment-size": "8KiB"}}}));
    let start = minutes_ago(SAMPLES + 5);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (addr, stop) = (server.addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut round = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let lines: String = (0..SAMPLES)
                    .map(|i| {
                        format!(
                            "temp,hostname=w{round},type=node value=1 {}\n",
                            start + 60 * i
                        )
                    })
                    .collect();
                let _ = common::try_http(
                    &addr,
                    "POST",
                    &format!("/api/write?cluster={CLUSTER}"),
                    &[],
                    lines.as_bytes(),
                );
                round = (round + 1) % 500;
            }
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    let mut runs = 0;
    while std::time::Instant::now() < deadline {
        let report = check(&server);
        assert!(
            report.status.success(),
            "run {runs}: {}\n{}",
            report.stdout,
            report.stderr
        );
        runs += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let snapshots = common::metric_value(&server.metrics(), "strata_snapshots_total");
    assert!(
        snapshots >= Some(2.0),
        "{snapshots:?} snapshots in {runs} checks"
    );
}
