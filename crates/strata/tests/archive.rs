//! Archiving to Parquet (`cleanup.mode: "archive"`): what leaves the memory window is written
//! to files that an independent reader (pyarrow, installed by scripts/test.sh) reads back
//! exactly, and is freed from memory only then.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, metric_value, minutes_ago, run_strata};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Every row of every Parquet file under `directory`, as pyarrow reads them: the schema and
/// the rows as `[cluster, hostname, metric, scope, scope_id, timestamp, frequency, value]`.
fn read_with_pyarrow(directory: &Path) -> Value {
    let script = r#"
import glob, json, sys
import pyarrow.parquet as pq
files = sorted(glob.glob(sys.argv[1] + "/**/*.parquet", recursive=True))
schema, rows = None, []
for path in files:
    table = pq.read_table(path)
    schema = [[f.name, str(f.type), f.nullable] for f in table.schema]
    rows += [list(r.values()) for r in table.to_pylist()]
print(json.dumps({"files": len(files), "schema": schema, "rows": rows}))
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(directory)
        .output()
        .expect("running python3 (scripts/test.sh installs pyarrow)");
    assert!(
        output.status.success(),
        "pyarrow could not read the archive (scripts/test.sh installs it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("pyarrow's JSON")
}

/// Switches the (stopped) server's configuration to archive mode into `<dir>/archive` with
/// hourly periods and `retention` in memory; returns the archive directory.
fn use_archive(server: &Server, retention: &str) -> PathBuf {
    let archive = server.dir().join("archive");
    let mut config = server.config();
    config["metric-store"]["retention-in-memory"] = json!(retention);
    config["metric-store"]["cleanup"] = json!({
        "mode": "archive", "directory": archive.display().to_string(), "interval": "1h"});
    server.set_config(&config);
    archive
}

/// Restarts the server and checks that memory holds no sample any more (all archived).
fn restarted_empty(server: &mut Server) {
    server.restart();
    let samples = metric_value(&server.metrics(), "strata_store_samples");
    assert_eq!(
        samples,
        Some(0.0),
        "memory should hold nothing of it any more"
    );
}

/// The arguments of `strata archive` with the server's configuration file.
fn archive_args(server: &Server) -> [String; 3] {
    let config = server.dir().join("config.json");
    ["archive", "--config", config.to_str().expect("UTF-8 path")].map(String::from)
}

/// Runs `strata archive` once with the server's configuration.
fn archive_once(server: &Server) -> common::Output {
    let args = archive_args(server);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_strata(server.dir(), &args, Duration::from_secs(120))
}

// Goal: `strata archive` writes everything older than the retention window to files with
// cc-metric-store's schema, exactly the samples written, frees them from memory (queries then
// answer from the files), and a second pass writes nothing again.
#[test]
fn strata_archive_writes_what_left_the_window_and_frees_it() {
    let mut server = Server::start();
    let first = (minutes_ago(30 * 60) / 60) * 60;
    let mut lines = String::new();
    let mut expected = Vec::new();
    for minute in 0..90i64 {
        let t = first + minute * 60;
        for host in ["h0", "h1"] {
            let load = minute as f64 + 0.5;
            lines.push_str(&format!("cpu_load,hostname={host} value={load} {t}\n"));
            expected.push(json!(["c1", host, "cpu_load", "node", "", t, 60, load]));
            for thread in 0..3 {
                let user = (minute * 10 + thread) as f64;
                lines.push_str(&format!(
                    "cpu_user,hostname={host},type=hwthread,type-id={thread} value={user} {t}\n"
                ));
                let id = thread.to_string();
                expected.push(json!(["c1", host, "cpu_user", "hwthread", id, t, 60, user]));
            }
        }
    }
    server.write_ok("c1", &lines);
    let query = json!({
        "cluster": "c1", "from": first, "to": first + 90 * 60, "with-stats": false,
        "queries": [{"metric": "cpu_load", "host": "h0"}]});
    let present = |answer: &Value| {
        let entry = &answer["results"][0][0];
        assert!(entry.is_object(), "{answer}");
        entry["data"]
            .as_array()
            .map_or(0, |values| values.iter().filter(|v| v.is_number()).count())
    };
    assert_eq!(present(&server.query(&query)), 90);
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));

    let archive = use_archive(&server, "1h");
    let output = archive_once(&server);
    assert!(output.status.success(), "{}", output.stderr);
    assert_reports_samples(&output, expected.len());

    let read = read_with_pyarrow(&archive);
    // 90 minutes span two or three hourly periods: one file each, none for empty periods.
    let files = read["files"].as_u64().unwrap_or(0);
    assert!((2..=3).contains(&files), "{files} files");
    let types = [
        "string", "string", "string", "string", "string", "int64", "int64", "float",
    ];
    let columns = [
        "cluster",
        "hostname",
        "metric",
        "scope",
        "scope_id",
        "timestamp",
        "frequency",
        "value",
    ];
    let schema: Vec<Value> = columns
        .iter()
        .zip(types)
        .map(|(name, kind)| json!([name, kind, false]))
        .collect();
    assert_eq!(read["schema"], json!(schema));
    let mut rows = read["rows"].as_array().cloned().unwrap_or_default();
    let key = |row: &Value| row.to_string();
    rows.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(rows, expected);
    assert!(server.data_dir().join("ARCHIVE-STATE").exists());

    // Nothing is left in memory, and a second pass writes nothing.
    let again = archive_once(&server);
    assert!(again.status.success(), "{}", again.stderr);
    assert!(
        again.stdout.contains("files written:   0"),
        "{}",
        again.stdout
    );
    server.restart();
    let samples = metric_value(&server.metrics(), "strata_store_samples");
    assert_eq!(
        samples,
        Some(0.0),
        "the snapshot after archiving still holds data"
    );
    assert_eq!(
        present(&server.query(&query)),
        90,
        "answered from the archive"
    );

    // A damaged file beside them is left out of every read, counted each time and logged once.
    std::fs::write(archive.join("c1").join("1.parquet"), b"not parquet").expect("damaging");
    for _ in 0..3 {
        assert_eq!(present(&server.query(&query)), 90, "the other files answer");
    }
    let metrics = server.metrics();
    let skipped = metric_value(&metrics, "strata_archive_skipped_files_total");
    assert_eq!(skipped, Some(3.0), "{metrics}");
    let reads = metric_value(&metrics, "strata_archive_reads_total").unwrap_or(0.0);
    assert!(reads >= 4.0, "{metrics}");
    let logged = server.log().matches("archive file skipped").count();
    assert_eq!(logged, 1, "{}", server.log());
}

// Goal: a query over a range that left memory answers from the archive exactly as it did
// from memory: raw series, aggregation over hwthreads, a coarser resolution, padding, stats.
#[test]
fn queries_read_the_archive_as_if_the_data_were_in_memory() {
    let mut server = Server::start();
    let first = (minutes_ago(30 * 60) / 60) * 60;
    let mut lines = String::new();
    for minute in 0..150i64 {
        // A gap of 20 minutes in the middle, NaN-free values.
        if (60..80).contains(&minute) {
            continue;
        }
        let t = first + minute * 60;
        lines.push_str(&format!("cpu_load,hostname=h0 value={} {t}\n", minute % 7));
        for thread in 0..4 {
            let value = (minute * 3 + thread) as f64 / 4.0;
            lines.push_str(&format!(
                "cpu_user,hostname=h0,type=hwthread,type-id={thread} value={value} {t}\n"
            ));
        }
    }
    server.write_ok("c1", &lines);
    let ids = json!(["0", "1", "2", "3"]);
    let requests = [
        json!({"cluster": "c1", "from": first, "to": first + 150 * 60,
               "queries": [{"metric": "cpu_load", "host": "h0"}]}),
        json!({"cluster": "c1", "from": first - 600, "to": first + 200 * 60, "with-padding": true,
               "queries": [{"metric": "cpu_user", "host": "h0", "type": "hwthread",
                            "type-ids": ids, "aggreg": true}]}),
        json!({"cluster": "c1", "from": first + 30 * 60, "to": first + 120 * 60,
               "queries": [{"metric": "cpu_user", "host": "h0", "type": "hwthread",
                            "type-ids": ids, "resolution": 600},
                           {"metric": "cpu_user", "host": "h0", "scale-by": 2.5}]}),
    ];
    let before: Vec<Value> = requests.iter().map(|r| server.query(r)).collect();
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));
    let mut config = server.config();
    config["metric-store"]["retention-in-memory"] = json!("1h");
    config["metric-store"]["cleanup"] = json!({
        "mode": "archive", "directory": server.dir().join("archive").display().to_string(),
        "interval": "1h"});
    server.set_config(&config);
    let config_path = server.dir().join("config.json");
    let output = run_strata(
        server.dir(),
        &[
            "archive",
            "--config",
            config_path.to_str().expect("UTF-8 path"),
        ],
        Duration::from_secs(120),
    );
    assert!(output.status.success(), "{}", output.stderr);
    restarted_empty(&mut server);
    for (request, before) in requests.iter().zip(&before) {
        assert_eq!(&server.query(request), before, "{request}");
    }
}

// Goal: a response too large for one chunk (the server streams 64 KiB at a time) answers
// from the archive exactly as from memory: the merged data of a query is carried from chunk
// to chunk, not read again or lost between them.
#[test]
fn a_response_in_many_chunks_reads_the_archive_as_memory() {
    let mut server = Server::start();
    let first = (minutes_ago(30 * 60) / 60) * 60;
    let threads = 64;
    let mut lines = String::new();
    for minute in 0..300i64 {
        let t = first + minute * 60;
        for thread in 0..threads {
            let value = (minute * 7 + thread) as f64 / 8.0;
            lines.push_str(&format!(
                "cpu_user,hostname=h0,type=hwthread,type-id={thread} value={value} {t}\n"
            ));
        }
    }
    server.write_ok("c1", &lines);
    let ids: Vec<String> = (0..threads).map(|id| id.to_string()).collect();
    let request = json!({"cluster": "c1", "from": first, "to": first + 300 * 60,
        "queries": [{"metric": "cpu_user", "host": "h0", "type": "hwthread", "type-ids": ids},
                    {"metric": "cpu_user", "host": "h0", "type": "hwthread", "type-ids": ids,
                     "aggreg": true}]});
    let before = server.query(&request);
    let size = serde_json::to_vec(&before).expect("JSON").len();
    assert!(
        size > 2 * 64 * 1024,
        "{size} bytes: not three chunks or more"
    );
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));
    let archive = use_archive(&server, "1h");
    let output = archive_once(&server);
    assert!(output.status.success(), "{}", output.stderr);
    let rows = read_with_pyarrow(&archive)["rows"].as_array().map(Vec::len);
    assert_eq!(rows, Some(300 * threads as usize));
    restarted_empty(&mut server);
    assert_eq!(server.query(&request), before);
    // How far c1 is archived shows before the restarted server's first pass (10 min away).
    let gauge = "strata_archive_end_seconds{cluster=\"c1\"}";
    let metrics = wait_for_metrics(&server, "the archived end", |m| {
        metric_value(m, gauge).is_some()
    });
    let end = metric_value(&metrics, gauge).unwrap_or(0.0);
    assert!(end >= (first + 300 * 60) as f64, "{metrics}");
}

// Goal: `strata archive` refuses to run beside a serving strata (the data directory's lock).
#[test]
fn strata_archive_refuses_while_the_server_runs() {
    let server = Server::start();
    let mut config = server.config();
    config["metric-store"]["cleanup"] = json!({
        "mode": "archive", "directory": server.dir().join("archive").display().to_string()});
    let path = server.dir().join("archive-config.json");
    std::fs::write(&path, serde_json::to_vec(&config).expect("config")).expect("writing config");
    let output = run_strata(
        server.dir(),
        &["archive", "--config", path.to_str().expect("UTF-8 path")],
        Duration::from_secs(60),
    );
    assert!(!output.status.success());
    assert!(
        output.stderr.contains("LOCK") || output.stderr.contains("lock"),
        "{}",
        output.stderr
    );
}

/// Lines for `hosts` hosts of `cluster` (a node metric and four hwthreads each, every 60 s for
/// `minutes` minutes from `first`) and the rows pyarrow must read back for them.
fn generated(cluster: &str, hosts: usize, first: i64, minutes: i64) -> Vec<(String, Vec<Value>)> {
    (0..hosts)
        .map(|host| {
            let host = format!("h{host}");
            let (mut lines, mut rows) = (String::new(), Vec::new());
            for minute in 0..minutes {
                let t = first + minute * 60;
                let load = minute as f64 + 0.5;
                lines.push_str(&format!("cpu_load,hostname={host} value={load} {t}\n"));
                rows.push(json!([cluster, host, "cpu_load", "node", "", t, 60, load]));
                for thread in 0..4 {
                    let user = (minute * 10 + thread) as f64;
                    lines.push_str(&format!(
                        "cpu_user,hostname={host},type=hwthread,type-id={thread} value={user} {t}\n"
                    ));
                    let id = thread.to_string();
                    rows.push(json!([
                        cluster, host, "cpu_user", "hwthread", id, t, 60, user
                    ]));
                }
            }
            (lines, rows)
        })
        .collect()
}

/// Writes [`generated`] data and returns the rows expected back.
fn write_generated(
    server: &Server,
    cluster: &str,
    hosts: usize,
    first: i64,
    minutes: i64,
) -> Vec<Value> {
    let mut expected = Vec::new();
    for (lines, rows) in generated(cluster, hosts, first, minutes) {
        server.write_ok(cluster, &lines);
        expected.extend(rows);
    }
    expected
}

/// A stopped server in archive mode (hourly periods, 1 h in memory) holding two hours of
/// [`generated`] data of cluster `c1` from five hours ago, with `state` as its ARCHIVE-STATE
/// if given: the server, the archive directory, the first timestamp and the expected rows.
fn stopped_with_old_data(hosts: usize, state: Option<Value>) -> (Server, PathBuf, i64, Vec<Value>) {
    let mut server = Server::start();
    let first = (minutes_ago(5 * 60) / 60) * 60;
    let expected = write_generated(&server, "c1", hosts, first, 120);
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));
    let archive = use_archive(&server, "1h");
    if let Some(state) = state {
        let path = server.data_dir().join("ARCHIVE-STATE");
        std::fs::write(path, state.to_string()).expect("writing ARCHIVE-STATE");
    }
    (server, archive, first, expected)
}

/// The archive's rows, each as its JSON text, sorted (duplicates kept).
fn archived_rows(archive: &Path) -> Vec<String> {
    let read = read_with_pyarrow(archive);
    let mut rows: Vec<String> = read["rows"]
        .as_array()
        .map(|rows| rows.iter().map(Value::to_string).collect())
        .unwrap_or_default();
    rows.sort();
    rows
}

/// Asserts the archive holds exactly `expected` (each row once), naming the first difference
/// rather than printing a million rows.
fn assert_archived_exactly(archive: &Path, expected: &[Value]) {
    let mut expected: Vec<String> = expected.iter().map(Value::to_string).collect();
    expected.sort();
    let actual = archived_rows(archive);
    let missing = expected
        .iter()
        .find(|row| actual.binary_search(row).is_err());
    let extra = actual
        .iter()
        .find(|row| expected.binary_search(row).is_err());
    assert!(
        actual.len() == expected.len() && missing.is_none() && extra.is_none(),
        "{} rows archived, {} expected; first missing {missing:?}, first unexpected {extra:?}",
        actual.len(),
        expected.len()
    );
}

/// Runs `strata archive`, which must succeed and leave exactly `expected` in `archive` and no
/// temporary file.
fn rerun_archives_exactly(server: &Server, archive: &Path, expected: &[Value]) {
    let output = archive_once(server);
    assert!(output.status.success(), "{}", output.stderr);
    assert_archived_exactly(archive, expected);
    assert_eq!(leftovers(archive), Vec::<PathBuf>::new());
}

/// Asserts the pass failed and its report says each of `needles`.
fn assert_failed_saying(output: &common::Output, needles: &[&str]) {
    assert!(!output.status.success(), "{}", output.stdout);
    for needle in needles {
        assert!(
            output.stdout.contains(needle),
            "no {needle:?} in {}",
            output.stdout
        );
    }
}

/// Files under `archive` that are not final archive files (a writer's temporary files).
fn leftovers(archive: &Path) -> Vec<PathBuf> {
    common::files_under(archive)
        .into_iter()
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with('.') || !name.ends_with(".parquet")
        })
        .collect()
}

/// Samples of `cpu_load` at `h0` of `cluster` the server holds in `[from, to)`.
fn points(server: &Server, cluster: &str, from: i64, to: i64) -> usize {
    let answer = server.query(&json!({
        "cluster": cluster, "from": from, "to": to, "with-stats": false,
        "queries": [{"metric": "cpu_load", "host": "h0"}]}));
    let entry = &answer["results"][0][0];
    assert!(entry.is_object(), "{answer}");
    entry["data"]
        .as_array()
        .map_or(0, |values| values.iter().filter(|v| v.is_number()).count())
}

// Goal (issue 8 item 4): `strata archive` killed (SIGKILL) in the middle of a pass leaves no
// half-written file under a final name, and the next pass archives every sample exactly once,
// for every cluster. The data is in the log only (the server was killed too), so this also
// covers replay after a pass that archived one cluster and not the other.
#[test]
fn a_pass_killed_midway_loses_nothing_and_writes_nothing_twice() {
    let mut server = Server::start();
    // Two clusters over six hourly periods, all older than the retention below.
    let first = (minutes_ago(9 * 60) / 3600) * 3600;
    let mut expected = write_generated(&server, "a", 40, first, 6 * 60);
    expected.extend(write_generated(&server, "b", 40, first, 6 * 60));
    server.kill_now();
    let archive = use_archive(&server, "1h");

    let run_dir = server.dir().join("killed-run");
    std::fs::create_dir(&run_dir).expect("creating a directory");
    let args = archive_args(&server);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let mut pass = common::ChildGuard(common::spawn_strata(&run_dir, &args));
    // The first period of the first cluster is recorded: kill the pass right there.
    let state = server.data_dir().join("ARCHIVE-STATE");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !state.exists() {
        assert!(
            pass.0.try_wait().expect("polling strata").is_none(),
            "the pass ended before it could be killed: {}",
            std::fs::read_to_string(run_dir.join("stderr.log")).unwrap_or_default()
        );
        assert!(std::time::Instant::now() < deadline, "no period archived");
        std::thread::sleep(Duration::from_millis(1));
    }
    pass.0.kill().expect("SIGKILL");
    pass.0.wait().expect("reaping strata");
    let report = std::fs::read_to_string(run_dir.join("stdout.log")).unwrap_or_default();
    assert!(
        !report.contains("files written"),
        "the pass finished: {report}"
    );
    // Whatever is under a final name reads (pyarrow fails on a torn file).
    let partial = archived_rows(&archive);
    assert!(!partial.is_empty(), "nothing archived before the kill");

    rerun_archives_exactly(&server, &archive, &expected);
}

// Goal: a damaged ARCHIVE-STATE never makes a pass rewrite an archived period from the part of
// it memory still holds (a buffer that straddles the archived end keeps older samples), which
// would replace a complete file with a partial one.
#[test]
fn a_damaged_archive_state_never_rewrites_a_complete_file() {
    let mut server = Server::start();
    // 29 hours: three 512-minute buffers are freed, the fourth starts 36 minutes into an
    // archived hour and stays in memory.
    let first = (minutes_ago(30 * 60) / 3600) * 3600;
    let expected = write_generated(&server, "c1", 1, first, 29 * 60);
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));
    let archive = use_archive(&server, "1h");
    let output = archive_once(&server);
    assert!(output.status.success(), "{}", output.stderr);
    let before = archived_rows(&archive);
    assert!(before.len() > expected.len() / 2, "{} rows", before.len());

    std::fs::write(server.data_dir().join("ARCHIVE-STATE"), b"{ damaged").expect("damaging");
    let again = archive_once(&server);
    assert!(again.status.success(), "{}", again.stderr);
    let after = archived_rows(&archive);
    let after_set: std::collections::BTreeSet<&String> = after.iter().collect();
    assert_eq!(after_set.len(), after.len(), "rows written twice");
    let lost: Vec<&String> = before
        .iter()
        .filter(|row| !after_set.contains(row))
        .collect();
    assert!(
        lost.is_empty(),
        "{} archived rows lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );

    // Without a state, a newest file that cannot be read leaves the pass nothing to go by: it
    // fails, naming the file, and rewrites nothing (the memory's part of that period would
    // replace the whole file).
    let mut files: Vec<PathBuf> = std::fs::read_dir(archive.join("c1"))
        .expect("cluster directory")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    let newest = files.last().expect("a file").clone();
    let bytes = std::fs::read(&newest).expect("reading");
    let damaged = &bytes[..bytes.len() / 2];
    std::fs::write(&newest, damaged).expect("damaging");
    std::fs::remove_file(server.data_dir().join("ARCHIVE-STATE")).expect("removing the state");
    let blind = archive_once(&server);
    assert!(!blind.status.success(), "{}", blind.stdout);
    let name = newest.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(
        blind.stderr.contains(name) || blind.stdout.contains(name),
        "{}",
        blind.stderr
    );
    assert_eq!(
        std::fs::read(&newest).expect("reading"),
        damaged,
        "rewritten"
    );
}

// Goal: after retention-in-memory was raised past what is archived, a late sample for an
// archived period is refused (counted under reason "archived"), never accepted, shown and later
// freed unarchived when retention goes back down (found by the hostile test: two acknowledged
// samples vanished without a trace).
#[test]
fn a_late_sample_for_an_archived_period_is_refused_not_lost() {
    let mut server = Server::start();
    let base = (minutes_ago(30 * 60) / 3600) * 3600;
    let lines: String = (0..180)
        .filter(|minute| *minute != 30)
        .map(|minute| format!("cpu_load,hostname=h0 value=1 {}\n", base + minute * 60))
        .collect();
    server.write_ok("c1", &lines);
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));
    let archive = use_archive(&server, "1h");
    let output = archive_once(&server);
    assert!(output.status.success(), "{}", output.stderr);
    let archived = archived_rows(&archive);
    assert_eq!(archived.len(), 179);

    // Retention raised: the archived hours are inside the window again.
    let mut config = server.config();
    config["metric-store"]["retention-in-memory"] = json!("48h");
    server.set_config(&config);
    server.restart();
    let late = base + 30 * 60;
    server.write_ok(
        "c1",
        &format!("cpu_load,hostname=h0 value=42 {late}\ncpu_load,hostname=h9 value=43 {late}\n"),
    );
    let metrics = server.metrics();
    let refused = metric_value(
        &metrics,
        "strata_ingest_samples_dropped_total{reason=\"archived\"}",
    );
    assert_eq!(refused, Some(2.0), "{metrics}");
    let query = json!({"cluster": "c1", "from": base, "to": base + 3 * 3600,
                       "queries": [{"metric": "cpu_load", "host": "h0"}]});
    let shown = server.query(&query);

    // Retention back down: the next pass frees what is archived; nothing shown is lost.
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));
    use_archive(&server, "1h");
    let again = archive_once(&server);
    assert!(again.status.success(), "{}", again.stderr);
    assert_eq!(archived_rows(&archive), archived, "the files changed");
    restarted_empty(&mut server);
    assert_eq!(server.query(&query), shown);
}

// Goal: an ARCHIVE-STATE that claims more than a pass at this clock can have archived (the
// clock was set back, or the file comes from elsewhere) frees nothing: memory may hold samples
// below it that are in no file. The pass says so and fails.
#[test]
fn an_archive_state_from_the_future_frees_nothing() {
    let future = json!({"format": 1, "clusters": {"c1": common::now_s() + 86_400}});
    let (mut server, archive, first, _) = stopped_with_old_data(1, Some(future));

    let output = archive_once(&server);
    assert_failed_saying(&output, &["after this pass's cutoff", "buffers freed:   0"]);
    assert!(archived_rows(&archive).is_empty());
    server.restart();
    assert_eq!(points(&server, "c1", first, first + 120 * 60), 120);
}

// Goal: when the archive directory cannot be written (a file stands in its place), the pass
// fails, frees nothing and leaves no temporary file; once the directory is usable, the next
// pass archives everything.
#[test]
fn an_unwritable_archive_keeps_the_data_for_the_next_pass() {
    let (server, archive, _, expected) = stopped_with_old_data(2, None);
    std::fs::write(&archive, b"not a directory").expect("blocking the archive");

    assert_failed_saying(&archive_once(&server), &["buffers freed:   0"]);
    std::fs::remove_file(&archive).expect("unblocking the archive");
    rerun_archives_exactly(&server, &archive, &expected);
}

// Goal: the shapes a cluster really has archive exactly: levels two deep (stored by the inner
// level), `cpu3` next to `hwthread3` (one stored key: both series' rows, each once), a gap
// (no row), metrics at 10 s and 60 s, several clusters. A cluster whose name is no directory
// name (too long for a file name) fails alone: the others are archived, its data stays in memory.
#[test]
fn archive_edge_shapes_and_a_cluster_that_is_no_directory() {
    let minutely = json!({"frequency": 60, "aggregation": "avg"});
    let mut metrics: serde_json::Map<String, Value> =
        ["deep", "twin", "gappy", "cpu_load", "cpu_user"]
            .into_iter()
            .map(|name| (name.to_string(), minutely.clone()))
            .collect();
    metrics.insert(
        "fast".into(),
        json!({"frequency": 10, "aggregation": "avg"}),
    );
    let mut server = Server::start_with_config(&json!({ "metrics": metrics }));
    let first = (minutes_ago(5 * 60) / 3600) * 3600;
    let mut expected = Vec::new();
    let mut lines = String::new();
    for minute in 0..30i64 {
        let t = first + minute * 60;
        let v = minute as f64;
        for (socket, core) in [(0, 1), (1, 2)] {
            lines.push_str(&format!(
                "deep,hostname=h0,type=socket,type-id={socket},stype=core,stype-id={core} value={v} {t}\n"
            ));
            expected.push(json!([
                "c1",
                "h0",
                "deep",
                "core",
                core.to_string(),
                t,
                60,
                v
            ]));
        }
        lines.push_str(&format!(
            "twin,hostname=h0,type=cpu,type-id=3 value={v} {t}\n"
        ));
        lines.push_str(&format!(
            "twin,hostname=h0,type=hwthread,type-id=3 value={} {t}\n",
            v + 100.0
        ));
        expected.push(json!(["c1", "h0", "twin", "hwthread", "3", t, 60, v]));
        expected.push(json!([
            "c1",
            "h0",
            "twin",
            "hwthread",
            "3",
            t,
            60,
            v + 100.0
        ]));
        // A gap at minute 7: no row.
        if minute != 7 {
            lines.push_str(&format!("gappy,hostname=h1 value={v} {t}\n"));
            expected.push(json!(["c1", "h1", "gappy", "node", "", t, 60, v]));
        }
        for step in 0..6 {
            // Quarters: exact in f32.
            let (t, v) = (t + step * 10, v + step as f64 / 4.0);
            lines.push_str(&format!("fast,hostname=h1 value={v} {t}\n"));
            expected.push(json!(["c1", "h1", "fast", "node", "", t, 10, v]));
        }
    }
    server.write_ok("c1", &lines);
    expected.extend(write_generated(&server, "c2", 2, first, 30));
    // 256 bytes is a valid cluster name but longer than a file name may be (255).
    let bad = "x".repeat(256);
    server.write_ok(&bad, &format!("cpu_load,hostname=h0 value=1 {first}\n"));
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));
    let archive = use_archive(&server, "1h");

    assert_failed_saying(&archive_once(&server), &[&bad]);
    assert_archived_exactly(&archive, &expected);
    assert_eq!(leftovers(&archive), Vec::<PathBuf>::new());
    server.restart();
    assert_eq!(
        points(&server, &bad, first, first + 60),
        1,
        "the unarchived cluster was freed"
    );
    assert_eq!(points(&server, "c1", first, first + 30 * 60), 0);
}

/// A serving strata in archive mode with a 4 s window (a pass every 2 s, periods of 2 s) into
/// `<dir>/archive`, holding four samples (two hosts, the last two seconds: a write may take
/// up to 3 s before they leave the window) of the 1 s metric `fast`: the server, the archive
/// directory and the rows expected there.
fn serving_a_short_window(block_archive: bool) -> (Server, PathBuf, Vec<Value>) {
    let mut archive = PathBuf::new();
    let (server, expected) = serving_a_short_window_into(|server| {
        archive = server.dir().join("archive");
        if block_archive {
            std::fs::write(&archive, b"not a directory").expect("blocking the archive");
        }
        json!({"mode": "archive", "directory": archive.display().to_string()})
    });
    (server, archive, expected)
}

/// [`serving_a_short_window`] with the `cleanup` section `cleanup` makes (its `interval` is
/// set to 2 s).
fn serving_a_short_window_into(cleanup: impl FnOnce(&Server) -> Value) -> (Server, Vec<Value>) {
    let mut server = Server::start_with_config(&json!({
        "metrics": {"fast": {"frequency": 1, "aggregation": "avg"}}}));
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));
    let mut config = server.config();
    config["metric-store"]["retention-in-memory"] = json!("4s");
    config["metric-store"]["cleanup"] = cleanup(&server);
    config["metric-store"]["cleanup"]["interval"] = json!("2s");
    server.set_config(&config);
    server.restart();
    let now = common::now_s();
    let mut lines = String::new();
    let mut expected = Vec::new();
    for (step, t) in (now - 1..=now).enumerate() {
        for host in ["h0", "h1"] {
            lines.push_str(&format!("fast,hostname={host} value={step} {t}\n"));
            expected.push(json!(["c1", host, "fast", "node", "", t, 1, step as f64]));
        }
    }
    server.write_ok("c1", &lines);
    (server, expected)
}

/// Polls `/metrics` (for at most a minute) until `done` holds.
fn wait_for_metrics(server: &Server, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = server.metrics();
        if done(&metrics) {
            return metrics;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the store holds no sample and a snapshot was written since the start.
fn freed_and_snapshotted(metrics: &str) -> bool {
    metric_value(metrics, "strata_store_samples") == Some(0.0)
        && metric_value(metrics, "strata_snapshots_total").unwrap_or(0.0) >= 1.0
}

// Goal (serve): with a short window, the periodic pass archives what leaves it, frees it and
// takes a snapshot, across a crash (SIGKILL right after the write: the samples are in the log
// only) and restart; every sample written ends up in a file, none is freed without one.
#[test]
fn serve_archives_frees_and_snapshots_what_leaves_a_short_window() {
    let (mut server, archive, expected) = serving_a_short_window(false);
    server.kill_now();
    server.restart();

    let end_gauge = "strata_archive_end_seconds{cluster=\"c1\"}";
    let metrics = wait_for_metrics(&server, "archiving", |metrics| {
        freed_and_snapshotted(metrics) && metric_value(metrics, end_gauge).is_some()
    });
    assert_archived_exactly(&archive, &expected);
    assert_eq!(leftovers(&archive), Vec::<PathBuf>::new());
    let archived = metric_value(&metrics, "strata_archive_samples_total");
    assert_eq!(archived, Some(expected.len() as f64), "{metrics}");
    let failures = metric_value(&metrics, "strata_archive_failures_total");
    assert_eq!(failures, Some(0.0), "{metrics}");
    let state = std::fs::read_to_string(server.data_dir().join("ARCHIVE-STATE")).expect("state");
    let state: Value = serde_json::from_str(&state).expect("state JSON");
    let until = state["clusters"]["c1"].as_f64().expect("c1's archived end");
    // Passes go on every 2 s: the gauge read before the state may be a pass behind it.
    let newest = expected
        .iter()
        .filter_map(|row| row[5].as_f64())
        .fold(0.0, f64::max);
    let gauge = metric_value(&metrics, end_gauge).expect("strata_archive_end_seconds for c1");
    assert!(newest < gauge && gauge <= until, "{newest} {gauge} {until}");
    let bytes = metric_value(&metrics, "strata_archive_bytes_total").unwrap_or(0.0);
    assert!(bytes > 0.0, "{metrics}");
}

// Goal (serve): while the archive cannot be written, passes fail (logged, counted), free
// nothing and write nothing; the first pass after it is repaired archives everything.
#[test]
fn serve_retries_a_failed_pass_and_frees_nothing_meanwhile() {
    let (server, archive, expected) = serving_a_short_window(true);
    let failures =
        |metrics: &str| metric_value(metrics, "strata_archive_failures_total").unwrap_or(0.0);
    // Two failed passes: the samples left the window a pass ago and are still held.
    let metrics = wait_for_metrics(&server, "two failed passes", |m| failures(m) >= 2.0);
    let held = metric_value(&metrics, "strata_store_samples");
    assert_eq!(held, Some(expected.len() as f64), "{metrics}");
    // (The pass cannot even list the archive: it leaves the cluster alone.)
    assert!(server.log().contains("stays in memory"), "{}", server.log());
    std::fs::remove_file(&archive).expect("unblocking the archive");
    wait_for_metrics(&server, "archiving after the repair", freed_and_snapshotted);
    assert_archived_exactly(&archive, &expected);
    assert_eq!(leftovers(&archive), Vec::<PathBuf>::new());
}

// Goal: after the interval changes, a pass starting off the new grid archives a short period
// up to the grid, never a period reaching past the cutoff (samples there still arrive, and
// would land below the archived end: never archived, later freed).
#[test]
fn a_changed_interval_never_archives_past_the_cutoff() {
    let mut server = Server::start();
    let first = (minutes_ago(30 * 60) / 60) * 60;
    write_generated(&server, "c1", 1, first, 30 * 60 - 2);
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));
    // Hourly periods up to an odd hour, then 2-hour periods (even hours) with the cutoff in
    // the first hour after an even hour: continuing in steps of 2 h from the odd hour would
    // end one period an hour past the cutoff.
    let hour = common::now_s() / 3600;
    let first_retention = if (hour - 20) % 2 == 1 { 20 } else { 21 };
    let retention = if (hour - 2) % 2 == 0 { 2 } else { 3 };
    let archive = use_archive(&server, &format!("{first_retention}h"));
    assert!(archive_once(&server).status.success());
    let mut config = server.config();
    config["metric-store"]["retention-in-memory"] = json!(format!("{retention}h"));
    config["metric-store"]["cleanup"]["interval"] = json!("2h");
    server.set_config(&config);
    let output = archive_once(&server);
    assert!(output.status.success(), "{}", output.stderr);
    let cutoff = common::now_s() - retention * 3600;
    let newest = read_with_pyarrow(&archive)["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|row| row[5].as_i64())
        .max();
    assert!(
        newest.is_some_and(|t| t < cutoff),
        "newest archived {newest:?}, cutoff {cutoff}"
    );
}

// Goal: an archived end far in the past (a hand-made or very old ARCHIVE-STATE, a long
// downtime) costs one step, not one store walk and state write per empty period: with the
// epoch in the state and hourly periods, the pass is as quick as without it.
#[test]
fn an_archive_state_from_long_ago_skips_the_empty_periods() {
    let epoch = json!({"format": 1, "clusters": {"c1": 0}});
    let (server, archive, _, expected) = stopped_with_old_data(1, Some(epoch));
    // ~500 000 empty hourly periods since 1970 would take far longer than this bound.
    let args = archive_args(&server);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_strata(server.dir(), &args, Duration::from_secs(60));
    assert!(output.status.success(), "{}", output.stderr);
    assert_archived_exactly(&archive, &expected);
}

/// The bucket the S3 tests archive into, below [`S3_PREFIX`].
const S3_BUCKET: &str = "cc-archive";
const S3_PREFIX: &str = "strata/archive";
/// A credential that must never reach a log line or a report.
const S3_SECRET: &str = "s3cr3t-never-logged";

/// The `cleanup` section of an archive in moto behind `endpoint` (hourly periods, parts of
/// 64 KiB).
fn s3_cleanup(endpoint: &str) -> Value {
    json!({
        "mode": "archive", "directory": format!("s3://{S3_BUCKET}/{S3_PREFIX}"),
        "interval": "1h",
        "s3": {"endpoint": endpoint, "region": "us-east-1", "access-key-id": "strata",
               "secret-access-key": common::secret(S3_SECRET), "allow-http": true, "part-size": "64KiB"}})
}

/// Switches the (stopped) server's configuration to archive mode into moto behind `endpoint`
/// (1 h in memory, [`s3_cleanup`]).
fn use_s3_archive(server: &Server, endpoint: &str) {
    let mut config = server.config();
    config["metric-store"]["retention-in-memory"] = json!("1h");
    config["metric-store"]["cleanup"] = s3_cleanup(endpoint);
    server.set_config(&config);
}

/// `/api/query`'s body, as bytes, for each request.
fn answers(server: &Server, requests: &[Value]) -> Vec<String> {
    requests
        .iter()
        .map(|request| {
            let response = server.get_json("/api/query", request);
            response.assert_status(200);
            response.text()
        })
        .collect()
}

/// Queries over the two hours from `first` (raw, aggregated over hwthreads with padding,
/// resampled) for hosts `h0` and `h7`.
fn s3_requests(first: i64) -> Vec<Value> {
    let ids = json!(["0", "1", "2", "3"]);
    ["h0", "h7"]
        .iter()
        .flat_map(|host| {
            [
                json!({"cluster": "c1", "from": first, "to": first + 120 * 60,
                       "queries": [{"metric": "cpu_load", "host": host}]}),
                json!({"cluster": "c1", "from": first - 600, "to": first + 150 * 60,
                       "with-padding": true,
                       "queries": [{"metric": "cpu_user", "host": host, "type": "hwthread",
                                    "type-ids": ids, "aggreg": true}]}),
                json!({"cluster": "c1", "from": first + 30 * 60, "to": first + 100 * 60,
                       "queries": [{"metric": "cpu_user", "host": host, "type": "hwthread",
                                    "type-ids": ids, "resolution": 600}]}),
            ]
        })
        .collect()
}

/// Two whole hourly periods of `hosts` hosts of cluster `c1`, from the hour five hours ago,
/// values that do not compress (so that one file spans several 64 KiB parts): the lines are
/// written, the rows pyarrow must read back returned with the first timestamp.
fn write_incompressible(server: &Server, hosts: usize) -> (i64, Vec<Value>) {
    let first = (minutes_ago(5 * 60) / 3600) * 3600;
    let mut expected = Vec::new();
    for host in 0..hosts {
        let name = format!("h{host}");
        let mut lines = String::new();
        for minute in 0..120i64 {
            let t = first + minute * 60;
            for thread in 0..5u64 {
                let x = (host as u64 * 7919 + thread * 104_729 + minute as u64)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    >> 40;
                let value = (x % 1_000_000) as f64 / 8.0;
                if thread == 4 {
                    lines.push_str(&format!("cpu_load,hostname={name} value={value} {t}\n"));
                    expected.push(json!(["c1", name, "cpu_load", "node", "", t, 60, value]));
                } else {
                    lines.push_str(&format!(
                        "cpu_user,hostname={name},type=hwthread,type-id={thread} value={value} {t}\n"
                    ));
                    let id = thread.to_string();
                    expected.push(json!([
                        "c1", name, "cpu_user", "hwthread", id, t, 60, value
                    ]));
                }
            }
        }
        server.write_ok("c1", &lines);
    }
    (first, expected)
}

/// A stopped server in archive mode into moto behind `endpoint` ([`use_s3_archive`]) holding
/// [`write_incompressible`] data of `hosts` hosts: the server, the rows expected in the
/// archive, [`s3_requests`] and their answers before archiving.
fn stopped_with_s3_data(
    hosts: usize,
    endpoint: &str,
) -> (Server, Vec<Value>, Vec<Value>, Vec<String>) {
    let mut server = Server::start();
    let (first, expected) = write_incompressible(&server, hosts);
    let requests = s3_requests(first);
    let before = answers(&server, &requests);
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));
    use_s3_archive(&server, endpoint);
    (server, expected, requests, before)
}

/// Downloads every object of the bucket below the prefix into `<into>/<cluster>/<name>`;
/// asserts each key is `<prefix>/c1/<period start>.parquet`.
fn download_archive(moto: &strata_testkit::Moto, into: &Path) -> Vec<String> {
    let keys = moto.keys(S3_BUCKET);
    for key in &keys {
        let relative = key
            .strip_prefix(&format!("{S3_PREFIX}/"))
            .unwrap_or_else(|| panic!("{key} is outside the prefix"));
        let (cluster, name) = relative.split_once('/').expect("<cluster>/<name>");
        let stem = name.strip_suffix(".parquet").expect(".parquet");
        assert!(cluster == "c1" && stem.parse::<i64>().is_ok(), "{key}");
        std::fs::create_dir_all(into.join(cluster)).expect("mkdir");
        std::fs::write(into.join(cluster).join(name), moto.get(S3_BUCKET, key)).expect("write");
    }
    keys
}

/// Runs `strata archive`, which must succeed, report and leave exactly `expected` in moto and
/// nothing in staging: the keys.
fn archive_to_moto_exactly(
    server: &Server,
    moto: &strata_testkit::Moto,
    expected: &[Value],
) -> Vec<String> {
    let output = archive_once(server);
    assert!(
        output.status.success(),
        "{}\n{}",
        output.stdout,
        output.stderr
    );
    assert_reports_samples(&output, expected.len());
    for text in [&output.stdout, &output.stderr] {
        assert!(!text.contains(S3_SECRET), "the secret leaked: {text}");
    }
    let downloaded = tempfile::tempdir().expect("tempdir");
    let keys = download_archive(moto, downloaded.path());
    assert_archived_exactly(downloaded.path(), expected);
    assert_staging_empty(server);
    keys
}

/// Asserts the pass's report says it archived `samples` samples.
fn assert_reports_samples(output: &common::Output, samples: usize) {
    assert!(
        output
            .stdout
            .contains(&format!("samples:         {samples}")),
        "{}",
        output.stdout
    );
}

/// Restarts the server after a pass: memory holds nothing, and `requests` answer `before`.
fn answers_from_the_archive(server: &mut Server, requests: &[Value], before: &[String]) {
    server.restart();
    let samples = metric_value(&server.metrics(), "strata_store_samples");
    assert_eq!(samples, Some(0.0));
    assert_eq!(answers(server, requests), before);
}

/// Asserts the data directory's staging area holds no file.
fn assert_staging_empty(server: &Server) {
    let staging = server.data_dir().join("archive-staging");
    assert_eq!(common::files_under(&staging), Vec::<PathBuf>::new());
}

// Goal (issue 8 items 3, 4): `strata archive` with an s3:// directory uploads each period to
// `<prefix>/<cluster>/<period>.parquet` on a real S3 server (moto), pyarrow reads exactly the
// samples written, memory is freed, and /api/query answers byte for byte what it answered
// before archiving, now from the objects. The secret key appears nowhere in the output.
#[test]
fn s3_round_trip_archives_to_moto_and_answers_the_same() {
    let moto = strata_testkit::Moto::start();
    moto.create_bucket(S3_BUCKET);
    let (mut server, expected, requests, before) = stopped_with_s3_data(8, &moto.endpoint());
    // What a pass killed in the middle of a write left in staging is removed by the next.
    let leftover = server
        .data_dir()
        .join("archive-staging/c1/.1700000000.parquet.tmp");
    std::fs::create_dir_all(leftover.parent().expect("parent")).expect("mkdir");
    std::fs::write(&leftover, b"half a file").expect("leftover");

    let keys = archive_to_moto_exactly(&server, &moto, &expected);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(moto.open_uploads(S3_BUCKET).is_empty());
    answers_from_the_archive(&mut server, &requests, &before);
    let log = server.log();
    assert!(!log.contains(S3_SECRET), "the secret leaked: {log}");
}

// Goal (issue 8 items 3, 4): the S3 server goes away in the middle of a multipart upload: the
// pass fails saying so, no object is visible, nothing is freed (queries answer the same, also
// from a server started while the object store is unreachable), and once the server is back
// the next pass uploads everything and answers are still identical.
#[test]
fn an_interrupted_upload_loses_nothing() {
    let moto = strata_testkit::Moto::start();
    moto.create_bucket(S3_BUCKET);
    let proxy = strata_testkit::CutProxy::start(moto.addr());
    let (mut server, expected, requests, before) =
        stopped_with_s3_data(160, &format!("http://{}", proxy.addr()));

    // Gone after a part and a half of the first file.
    proxy.cut_after(96 << 10);
    let output = archive_once(&server);
    assert!(proxy.has_cut(), "the upload finished before the cut");
    assert_failed_saying(
        &output,
        &[
            "errors:          1",
            &format!("uploading s3://{S3_BUCKET}/{S3_PREFIX}/c1/"),
        ],
    );
    assert!(
        moto.keys(S3_BUCKET).is_empty(),
        "{:?}",
        moto.keys(S3_BUCKET)
    );
    assert_staging_empty(&server);
    assert!(!server.data_dir().join("ARCHIVE-STATE").exists());

    // The object store is still unreachable: the server starts, serves, holds everything.
    server.restart();
    assert_eq!(answers(&server, &requests), before);
    let held = metric_value(&server.metrics(), "strata_store_samples");
    assert_eq!(held, Some(expected.len() as f64));
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));

    proxy.restore();
    archive_to_moto_exactly(&server, &moto, &expected);
    answers_from_the_archive(&mut server, &requests, &before);
}

// Goal (serve, S3): the periodic pass of a server whose object store is unreachable from the
// start fails (logged without the secret, counted in strata_archive_failures_total) and frees
// nothing, while the server serves; once the store answers, the next pass uploads everything
// and frees it.
#[test]
fn serve_archives_to_s3_once_it_answers() {
    let moto = strata_testkit::Moto::start();
    moto.create_bucket(S3_BUCKET);
    let proxy = strata_testkit::CutProxy::start(moto.addr());
    proxy.cut_after(0);
    let endpoint = format!("http://{}", proxy.addr());
    let (server, expected) = serving_a_short_window_into(|_| s3_cleanup(&endpoint));
    let failures =
        |metrics: &str| metric_value(metrics, "strata_archive_failures_total").unwrap_or(0.0);
    let metrics = wait_for_metrics(&server, "two failed passes", |m| failures(m) >= 2.0);
    let held = metric_value(&metrics, "strata_store_samples");
    assert_eq!(held, Some(expected.len() as f64), "{metrics}");
    let log = server.log();
    assert!(
        log.contains("stays in memory")
            && log.contains(&format!("s3://{S3_BUCKET}/{S3_PREFIX}/c1")),
        "{log}"
    );
    assert!(!log.contains(S3_SECRET), "the secret leaked: {log}");
    assert!(moto.keys(S3_BUCKET).is_empty());

    proxy.restore();
    wait_for_metrics(&server, "archiving once S3 answers", freed_and_snapshotted);
    let downloaded = tempfile::tempdir().expect("tempdir");
    download_archive(&moto, downloaded.path());
    assert_archived_exactly(downloaded.path(), &expected);
    assert_staging_empty(&server);
}
