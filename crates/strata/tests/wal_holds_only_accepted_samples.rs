//! Issue 7: the write-ahead log is replayed at startup and will be forwarded to remote-write
//! receivers, so it must hold only the samples the store accepts. Samples of an unknown
//! metric, older than the retention window or too far in the future used to be logged and
//! only then dropped. Black-box: the real binary, its log read back with `strata_wal`.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, assert_data, metric_value, minutes_ago, now_s};
use serde_json::json;
use strata_wal::Record;

const C: &str = "fritz";

#[test]
fn only_accepted_samples_reach_the_log_and_the_drops_are_counted_once() {
    // Goal: a request mixing good samples with an unknown metric, an old and a future
    // sample logs one record with the good samples only; a request of nothing but such
    // samples is answered like any other and logs nothing; the drops are counted once by
    // reason and by metric; after a crash the good samples come back from the log.
    // Method: configured metrics (so unknown ones are dropped), fsync `always`; read the
    // segments with `strata_wal::replay` after a SIGKILL (a graceful stop would snapshot
    // and delete them), then restart and query.
    let mut server = Server::start_with_config(&json!({
        "metrics": {"cpu_load": {"frequency": 60, "aggregation": null}},
        "metric-store": {"wal": {"fsync": "always"}}
    }));
    let t = minutes_ago(10);
    let old = now_s() - 49 * 3600;
    let future = now_s() + 25 * 3600;
    let lines = format!(
        "cpu_load,hostname=n1 value=1 {t}\n\
         debug_metric,hostname=n1 value=2 {t}\n\
         cpu_load,hostname=n1 value=3 {old}\n\
         cpu_load,hostname=n2 value=4 {future}\n\
         cpu_load,hostname=n1 value=5 {}\n",
        t + 60
    );
    server.write_ok(C, &lines);
    let junk = format!(
        "debug_metric,hostname=n1 value=6 {t}\n\
         cpu_load,hostname=n3 value=7 {old}\n"
    );
    server.write_ok(C, &junk);

    let metrics = server.metrics();
    let value = |series: &str| metric_value(&metrics, series).unwrap_or(-1.0);
    let dropped = |reason: &str| {
        value(&format!(
            "strata_ingest_samples_dropped_total{{reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(dropped("unknown_metric"), 2.0, "{metrics}");
    assert_eq!(dropped("outside_retention"), 2.0, "{metrics}");
    assert_eq!(dropped("future"), 1.0, "{metrics}");
    assert_eq!(value("strata_ingest_samples_total"), 2.0, "{metrics}");
    assert_eq!(
        value("strata_ingest_unknown_metric_samples_total{metric=\"debug_metric\"}"),
        2.0,
        "{metrics}"
    );
    assert_eq!(value("strata_wal_records"), 1.0, "{metrics}");

    server.kill_now();
    let mut logged = Vec::new();
    let replay = strata_wal::replay(&server.data_dir().join("wal"), 0, |record, _| {
        if let Record::Batch(batch) = record {
            for sample in batch.iter() {
                let key = sample.key;
                logged.push((key.host.to_owned(), key.metric.to_owned(), sample.value));
            }
        }
    })
    .unwrap();
    assert_eq!(replay.records, 1, "{replay:?}");
    assert_eq!(
        logged,
        [
            ("n1".to_owned(), "cpu_load".to_owned(), 1.0),
            ("n1".to_owned(), "cpu_load".to_owned(), 5.0)
        ]
    );

    server.restart();
    let response = server.query(&json!({
        "cluster": C, "from": t, "to": t + 120,
        "queries": [{"metric": "cpu_load", "host": "n1"}]
    }));
    assert_data(&response["results"][0][0]["data"], &[Some(1.0), Some(5.0)]);
}
