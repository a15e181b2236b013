//! Archiving to Parquet (`cleanup.mode: "archive"`): what leaves the memory window is written
//! to files that an independent reader (pyarrow, installed by scripts/test.sh) reads back
//! exactly, and is freed from memory only then.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, metric_value, minutes_ago, run_strata};
use serde_json::{Value, json};
use std::path::Path;
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

    let archive = server.dir().join("archive");
    let mut config = server.config();
    config["metric-store"]["retention-in-memory"] = json!("1h");
    config["metric-store"]["cleanup"] = json!({
        "mode": "archive", "directory": archive.display().to_string(), "interval": "1h"});
    server.set_config(&config);
    let config_path = server.dir().join("config.json");
    let config_path = config_path.to_str().expect("UTF-8 path");
    let output = run_strata(
        server.dir(),
        &["archive", "--config", config_path],
        Duration::from_secs(120),
    );
    assert!(output.status.success(), "{}", output.stderr);
    assert!(
        output
            .stdout
            .contains(&format!("samples:         {}", expected.len())),
        "{}",
        output.stdout
    );

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
    let again = run_strata(
        server.dir(),
        &["archive", "--config", config_path],
        Duration::from_secs(120),
    );
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
    server.restart();
    let samples = metric_value(&server.metrics(), "strata_store_samples");
    assert_eq!(
        samples,
        Some(0.0),
        "memory should hold nothing of it any more"
    );
    for (request, before) in requests.iter().zip(&before) {
        assert_eq!(&server.query(request), before, "{request}");
    }
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
