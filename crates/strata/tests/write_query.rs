//! Write → query round trips over HTTP against the real binary (COMPAT.md §1.4, §1.5, §2,
//! §4.2 and decisions 1, 3, 6, 7, 8).
//!
//! Each test starts its own server, writes a few samples near "now" (the store drops samples
//! outside the retention window) and checks the exact values, windows and error entries of
//! the query responses.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, assert_data, assert_number, metric_value, minutes_ago, now_s};
use serde_json::{Value, json};

const C: &str = "fritz";

/// The first (and usually only) entry of result `index`.
fn entry(response: &Value, index: usize) -> &Value {
    &response["results"][index][0]
}

fn not_found() -> Value {
    json!({"error":"metric or host not found","from":0,"to":0,"resolution":0,
           "avg":null,"min":null,"max":null})
}

#[test]
fn node_metric_round_trip_returns_values_window_and_stats() {
    // Goal: a node-level metric written with the cc-metric-collector line format comes back
    // with the written values, the requested window and correct avg/min/max.
    let server = Server::start();
    let t = minutes_ago(10);
    let lines = format!(
        "cpu_load,cluster={C},hostname=f0201,type=node value=1.5 {t}\n\
         cpu_load,cluster={C},hostname=f0201,type=node value=2.5 {}\n\
         cpu_load,cluster={C},hostname=f0201,type=node value=3.5 {}\n",
        t + 60,
        t + 120
    );
    let response = server.post("/api/write", &lines);
    response.assert_status(200);
    assert!(response.body.is_empty());

    let response = server.get_json(
        "/api/query",
        &json!({"cluster":C,"from":t,"to":t + 180,
                "queries":[{"metric":"cpu_load","host":"f0201"}]}),
    );
    response.assert_status(200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert!(body.get("queries").is_none(), "no for-all-nodes: {body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["results"][0].as_array().map(Vec::len), Some(1));
    let series = entry(&body, 0);
    assert_data(&series["data"], &[Some(1.5), Some(2.5), Some(3.5)]);
    assert_eq!(series["from"], json!(t));
    assert_eq!(series["to"], json!(t + 180));
    assert_eq!(series["resolution"], json!(60));
    assert_number(&series["avg"], 2.5);
    assert_number(&series["min"], 1.5);
    assert_number(&series["max"], 3.5);
    assert!(series.get("error").is_none());
}

#[test]
fn hwthread_query_has_one_entry_per_type_id_and_keeps_slots_of_missing_ids() {
    // Goal: a typed, non-aggregated query expands to one entry per type-id in list order, and
    // an id without data keeps its slot as an error entry (decision 7).
    let server = Server::start();
    let t = minutes_ago(10);
    let mut lines = String::new();
    for (id, value) in [(0, 10.0), (2, 30.0)] {
        for step in 0..2 {
            lines.push_str(&format!(
                "cpu_user,cluster={C},hostname=h1,type=hwthread,type-id={id} value={} {}\n",
                value + f64::from(step),
                t + 60 * i64::from(step)
            ));
        }
    }
    server.write_ok(C, &lines);
    let body = server.query(&json!({
    "cluster":C,"from":t,"to":t + 120,
    "queries":[
        {"metric":"cpu_user","host":"h1","type":"hwthread","type-ids":["0","1","2"]},
        {"metric":"cpu_user","host":"nohost","type":"hwthread","type-ids":["0","1"]},
        {"metric":"cpu_user","host":"h1","type":"hwthread","type-ids":["2","0"]}
    ]}));
    let entries = body["results"][0].as_array().expect("entries");
    assert_eq!(entries.len(), 3, "{body}");
    assert_data(&entries[0]["data"], &[Some(10.0), Some(11.0)]);
    assert_eq!(entries[1], not_found());
    assert_data(&entries[2]["data"], &[Some(30.0), Some(31.0)]);
    assert_number(&entries[2]["avg"], 30.5);
    // An unknown host keeps one error entry per id.
    assert_eq!(body["results"][1], json!([not_found(), not_found()]));
    // Entries follow the order of the ids in the query.
    assert_data(&body["results"][2][0]["data"], &[Some(30.0), Some(31.0)]);
    assert_data(&body["results"][2][1]["data"], &[Some(10.0), Some(11.0)]);
}

#[test]
fn node_query_of_child_metric_averages_auto_registered_metrics() {
    // Goal: a node-level query of a metric stored only on hwthreads combines the children;
    // auto-registered metrics aggregate with avg (decision 3); `aggreg: true` combines only
    // the listed ids.
    let server = Server::start();
    let t = minutes_ago(10);
    let mut lines = String::new();
    for (id, value) in [(0, 10.0), (1, 20.0), (2, 60.0)] {
        lines.push_str(&format!(
            "flops_any,cluster={C},hostname=h1,type=hwthread,type-id={id} value={value} {t}\n"
        ));
    }
    server.write_ok(C, &lines);
    let body = server.query(&json!({
    "cluster":C,"from":t,"to":t + 60,
    "queries":[
        {"metric":"flops_any","host":"h1"},
        {"metric":"flops_any","host":"h1","type":"hwthread","type-ids":["0","1"],"aggreg":true},
        {"metric":"flops_any","host":"h1","type":"hwthread","type-ids":["2"],"aggreg":true},
        {"metric":"flops_any","host":"h1","type":"hwthread","type-ids":["1","7"],"aggreg":true}
    ]}));
    for (index, expected) in [(0, 30.0), (1, 15.0), (2, 60.0), (3, 20.0)] {
        let entries = body["results"][index].as_array().expect("entries");
        assert_eq!(entries.len(), 1, "query {index}: {body}");
        assert_data(&entries[0]["data"], &[Some(expected)]);
        assert_eq!(entries[0]["from"], json!(t), "query {index}");
        assert_eq!(entries[0]["to"], json!(t + 60), "query {index}");
    }
}

#[test]
fn configured_aggregation_sum_adds_children_and_null_refuses_to_combine() {
    // Goal: with a metric list, `aggregation: "sum"` adds the children of a node-level query,
    // `null` answers `invalid aggregation` when several series match, and a single series
    // needs no aggregation.
    let server = Server::start_with_config(&json!({
        "metrics": {
            "flops_any": {"frequency": 60, "aggregation": "sum"},
            "cpu_load": {"frequency": 60, "aggregation": null}
        }
    }));
    let t = minutes_ago(10);
    let mut lines = String::new();
    for (id, value) in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0)] {
        for step in 0..2 {
            lines.push_str(&format!(
                "flops_any,cluster={C},hostname=h1,type=core,type-id={id} value={} {}\n",
                value * f64::from(step + 1),
                t + 60 * i64::from(step)
            ));
            lines.push_str(&format!(
                "cpu_load,cluster={C},hostname=h1,type=core,type-id={id} value={value} {}\n",
                t + 60 * i64::from(step)
            ));
        }
    }
    server.write_ok(C, &lines);
    let body = server.query(&json!({
    "cluster":C,"from":t,"to":t + 120,
    "queries":[
        {"metric":"flops_any","host":"h1"},
        {"metric":"flops_any","host":"h1","type":"core","type-ids":["1","3"],"aggreg":true},
        {"metric":"cpu_load","host":"h1"},
        {"metric":"cpu_load","host":"h1","type":"core","type-ids":["2"],"aggreg":true}
    ]}));
    let node = entry(&body, 0);
    assert_data(&node["data"], &[Some(15.0), Some(30.0)]);
    assert_number(&node["avg"], 22.5);
    assert_number(&node["min"], 15.0);
    assert_number(&node["max"], 30.0);
    assert_data(&entry(&body, 1)["data"], &[Some(10.0), Some(20.0)]);
    assert_eq!(entry(&body, 2)["error"], json!("invalid aggregation"));
    assert_data(&entry(&body, 3)["data"], &[Some(4.0), Some(4.0)]);
}

#[test]
fn response_window_is_clamped_to_the_data_and_ends_at_the_last_sample() {
    // Goal: COMPAT.md §2.2 — `from` is clamped to the first sample, `to` is
    // `from + len·frequency`, trailing missing data is not padded, ranges outside the data
    // are empty, and `from > to` is an error.
    let server = Server::start();
    let t = minutes_ago(30);
    let lines: String = (0..5)
        .map(|i| {
            format!(
                "mem_used,cluster={C},host=h1 value={} {}\n",
                i + 1,
                t + 60 * i
            )
        })
        .collect();
    server.write_ok(C, &lines);
    let query = |from: i64, to: i64| {
        let body = server.query(&json!({
            "cluster":C,"from":from,"to":to,"with-padding":false,
            "queries":[{"metric":"mem_used","host":"h1"}]}));
        entry(&body, 0).clone()
    };

    let wide = query(t - 600, t + 3600);
    assert_data(
        &wide["data"],
        &[Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0)],
    );
    assert_eq!(
        (wide["from"].clone(), wide["to"].clone()),
        (json!(t), json!(t + 300))
    );

    let inner = query(t + 120, t + 240);
    assert_data(&inner["data"], &[Some(3.0), Some(4.0)]);
    assert_eq!(
        (inner["from"].clone(), inner["to"].clone()),
        (json!(t + 120), json!(t + 240))
    );

    // A `from` off the sampling grid is kept as given (not snapped). Slot i of a series
    // whose first sample is at t covers [t - 30 + 60i, t + 30 + 60i), so t + 90 reads slot 2.
    let unaligned = query(t + 90, t + 200);
    assert_eq!(unaligned["from"], json!(t + 90));
    assert_data(&unaligned["data"], &[Some(3.0), Some(4.0)]);
    assert_eq!(unaligned["to"], json!(t + 210));

    let after = query(t + 1200, t + 1800);
    assert!(after.get("data").is_none(), "{after}");
    assert_eq!(
        (after["from"].clone(), after["to"].clone()),
        (json!(t + 1200), json!(t + 1200))
    );
    assert!(after["avg"].is_null() && after["min"].is_null() && after["max"].is_null());

    let before = query(t - 1800, t - 1200);
    assert!(before.get("data").is_none(), "{before}");
    assert_eq!(
        (before["from"].clone(), before["to"].clone()),
        (json!(t), json!(t))
    );

    let reversed = query(t + 300, t);
    assert_eq!(reversed["error"], json!("invalid time range"));
}

#[test]
fn with_stats_data_and_padding_default_to_true_and_each_can_be_disabled() {
    // Goal: absent `with-*` keys mean true (COMPAT.md §1.5); `with-stats: false` gives zero
    // statistics, `with-data: false` drops `data`, `with-padding: false` drops the leading
    // nulls that stand for the time between `from` and the first sample.
    let server = Server::start();
    let t = minutes_ago(10);
    server.write_ok(
        C,
        &format!("m,host=h1 value=4 {t}\nm,host=h1 value=6 {}\n", t + 60),
    );
    let query = |flags: Value| {
        let mut request = json!({"cluster":C,"from":t - 120,"to":t + 120,
                                 "queries":[{"metric":"m","host":"h1"}]});
        for (key, value) in flags.as_object().expect("flags") {
            request[key] = value.clone();
        }
        entry(&server.query(&request), 0).clone()
    };

    let default = query(json!({}));
    assert_data(&default["data"], &[None, None, Some(4.0), Some(6.0)]);
    assert_eq!(default["from"], json!(t));
    assert_eq!(default["to"], json!(t + 120));
    assert_number(&default["avg"], 5.0);
    assert_number(&default["min"], 4.0);
    assert_number(&default["max"], 6.0);

    let explicit = query(json!({"with-stats":true,"with-data":true,"with-padding":true}));
    assert_eq!(explicit, default);

    let no_stats = query(json!({"with-stats":false}));
    assert_data(&no_stats["data"], &[None, None, Some(4.0), Some(6.0)]);
    for key in ["avg", "min", "max"] {
        assert_number(&no_stats[key], 0.0);
    }

    let no_data = query(json!({"with-data":false}));
    assert!(no_data.get("data").is_none(), "{no_data}");
    assert_number(&no_data["avg"], 5.0);
    assert_eq!(no_data["from"], json!(t));

    let no_padding = query(json!({"with-padding":false}));
    assert_data(&no_padding["data"], &[Some(4.0), Some(6.0)]);
    assert_eq!(no_padding["from"], json!(t));
}

#[test]
fn scale_by_multiplies_data_and_statistics() {
    // Goal: `scale-by` multiplies data and avg/min/max; 0 and 1 mean "no scaling".
    let server = Server::start();
    let t = minutes_ago(10);
    server.write_ok(
        C,
        &format!(
            "mem_bw,host=h1 value=1.5 {t}\nmem_bw,host=h1 value=2.5 {}\n",
            t + 60
        ),
    );
    let body = server.query(&json!({
    "cluster":C,"from":t,"to":t + 120,
    "queries":[
        {"metric":"mem_bw","host":"h1","scale-by":1000},
        {"metric":"mem_bw","host":"h1","scale-by":0},
        {"metric":"mem_bw","host":"h1","scale-by":1},
        {"metric":"mem_bw","host":"h1","scale-by":0.5}
    ]}));
    let scaled = entry(&body, 0);
    assert_data(&scaled["data"], &[Some(1500.0), Some(2500.0)]);
    assert_number(&scaled["avg"], 2000.0);
    assert_number(&scaled["min"], 1500.0);
    assert_number(&scaled["max"], 2500.0);
    for index in [1, 2] {
        assert_data(&entry(&body, index)["data"], &[Some(1.5), Some(2.5)]);
        assert_number(&entry(&body, index)["avg"], 2.0);
    }
    assert_data(&entry(&body, 3)["data"], &[Some(0.75), Some(1.25)]);
}

#[test]
fn missing_slots_are_null_and_ignored_by_statistics() {
    // Goal: slots without a sample read as `null` (NaN), statistics ignore them, and a
    // child missing a slot makes that slot of the aggregate null (decision 6).
    let server = Server::start();
    let t = minutes_ago(10);
    server.write_ok(
        C,
        &format!(
            "gappy,host=h1 value=2 {t}\ngappy,host=h1 value=8 {}\n\
             agg,host=h1,type=socket,type-id=0 value=1 {t}\n\
             agg,host=h1,type=socket,type-id=0 value=1 {}\n\
             agg,host=h1,type=socket,type-id=1 value=3 {t}\n",
            t + 180,
            t + 60
        ),
    );
    let body = server.query(&json!({
        "cluster":C,"from":t,"to":t + 240,
        "queries":[{"metric":"gappy","host":"h1"},{"metric":"agg","host":"h1"}]}));
    let gappy = entry(&body, 0);
    assert_data(&gappy["data"], &[Some(2.0), None, None, Some(8.0)]);
    assert_number(&gappy["avg"], 5.0);
    assert_number(&gappy["min"], 2.0);
    assert_number(&gappy["max"], 8.0);
    let aggregated = entry(&body, 1);
    assert_data(&aggregated["data"], &[Some(2.0), None]);
    assert_number(&aggregated["avg"], 2.0);
}

#[test]
fn for_all_nodes_queries_every_host_and_echoes_the_generated_queries() {
    // Goal: `for-all-nodes` generates one node-level query per (host, metric), appended after
    // explicit queries and echoed in `queries`; hosts missing a metric keep an error entry.
    let server = Server::start();
    let t = minutes_ago(10);
    server.write_ok(
        C,
        &format!(
            "load,host=b1 value=1 {t}\nmem,host=b1 value=2 {t}\nload,host=a1 value=3 {t}\n\
             load,cluster=other,host=x value=9 {t}\n"
        ),
    );
    let body = server.query(&json!({
        "cluster":C,"from":t,"to":t + 60,"for-all-nodes":["load","mem"],
        "queries":[{"metric":"load","host":"b1","scale-by":10}]}));
    assert_eq!(
        body["queries"],
        json!([
            {"metric":"load","host":"a1","resolution":0,"aggreg":false},
            {"metric":"mem","host":"a1","resolution":0,"aggreg":false},
            {"metric":"load","host":"b1","resolution":0,"aggreg":false},
            {"metric":"mem","host":"b1","resolution":0,"aggreg":false}
        ])
    );
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 5, "{body}");
    assert_data(&results[0][0]["data"], &[Some(10.0)]);
    assert_data(&results[1][0]["data"], &[Some(3.0)]);
    assert_eq!(results[2][0], not_found());
    assert_data(&results[3][0]["data"], &[Some(1.0)]);
    assert_data(&results[4][0]["data"], &[Some(2.0)]);
}

#[test]
fn for_all_nodes_over_an_unknown_cluster_returns_empty_results() {
    // Goal: COMPAT.md §1.5 — for-all-nodes over an unknown cluster yields `{"results":[]}`
    // (`queries` is present only if queries were generated).
    let server = Server::start();
    let t = minutes_ago(10);
    server.write_ok(C, &format!("load,host=h1 value=1 {t}\n"));
    let body = server.query(&json!({"cluster":"nosuchcluster","from":t,"to":t + 60,
                                    "for-all-nodes":["load"]}));
    assert_eq!(body, json!({"results":[]}));
    // Explicit queries on an unknown cluster keep their entries as errors.
    let body = server.query(&json!({"cluster":"nosuchcluster","from":t,"to":t + 60,
                                    "queries":[{"metric":"load","host":"h1"}]}));
    assert_eq!(body, json!({"results":[[not_found()]]}));
}

#[test]
fn post_query_trailing_slashes_and_version_parameter_are_accepted() {
    // Goal: `/api/write/` and `/api/query/` work like the routes without slash, `POST
    // /api/query` works like GET, and `?version=v2` (sent by cc-backend) is ignored.
    let server = Server::start();
    let t = minutes_ago(10);
    server
        .post(
            &format!("/api/write/?cluster={C}"),
            format!("load,host=h1 value=42 {t}\n"),
        )
        .assert_status(200);
    let request = json!({"cluster":C,"from":t,"to":t + 60,
                         "queries":[{"metric":"load","host":"h1"}]});
    let expected = json!({"results":[[{"data":[42.0],"from":t,"to":t + 60,"resolution":60,
                                        "avg":42.0,"min":42.0,"max":42.0}]]});
    for target in [
        "/api/query",
        "/api/query/",
        "/api/query?version=v2",
        "/api/query/?version=v1",
    ] {
        let response = server.get_json(target, &request);
        response.assert_status(200);
        assert_eq!(response.json(), expected, "GET {target}");
    }
    let body = serde_json::to_vec(&request).expect("json");
    for target in ["/api/query", "/api/query/?version=v2"] {
        let response = server.request("POST", target, &[], &body);
        response.assert_status(200);
        assert_eq!(response.json(), expected, "POST {target}");
    }
}

#[test]
fn millisecond_microsecond_and_nanosecond_timestamps_are_converted() {
    // Goal: decision 1 — timestamps are converted to seconds by magnitude.
    let server = Server::start();
    let t = minutes_ago(10);
    let lines = format!(
        "ts,host=h1 value=1 {t}\nts,host=h1 value=2 {}\nts,host=h1 value=3 {}\n\
         ts,host=h1 value=4 {}\n",
        (t + 60) * 1_000 + 999,
        (t + 120) * 1_000_000 + 999_999,
        (t + 180) * 1_000_000_000 + 999_999_999
    );
    server.write_ok(C, &lines);
    let body = server.query(&json!({"cluster":C,"from":t,"to":t + 240,
                                    "queries":[{"metric":"ts","host":"h1"}]}));
    let series = entry(&body, 0);
    assert_data(
        &series["data"],
        &[Some(1.0), Some(2.0), Some(3.0), Some(4.0)],
    );
    assert_eq!(series["to"], json!(t + 240));
}

#[test]
fn precision_parameter_overrides_magnitude_detection() {
    // Goal: `precision=` decides the unit: a seconds value read as milliseconds lands in 1970
    // and is dropped, a milliseconds value read as seconds lands far in the future and is
    // dropped; both requests still succeed. An unknown precision is a 400.
    let server = Server::start();
    let t = minutes_ago(10);
    server
        .post(
            &format!("/api/write?cluster={C}&precision=ms"),
            format!(
                "p,host=h1 value=1 {}\np,host=h1 value=2 {}\n",
                t * 1000,
                t + 60
            ),
        )
        .assert_status(200);
    server
        .post(
            &format!("/api/write?cluster={C}&precision=s"),
            format!(
                "p,host=h1 value=3 {}\np,host=h1 value=4 {}\n",
                (t + 120) * 1000,
                t + 180
            ),
        )
        .assert_status(200);
    server
        .post(
            &format!("/api/write?cluster={C}&precision=ns"),
            format!("p,host=h1 value=5 {}\n", (t + 240) * 1_000_000_000),
        )
        .assert_status(200);
    let body = server.query(&json!({"cluster":C,"from":t,"to":t + 300,
                                    "queries":[{"metric":"p","host":"h1"}]}));
    assert_data(
        &entry(&body, 0)["data"],
        &[Some(1.0), None, None, Some(4.0), Some(5.0)],
    );
    let metrics = server.metrics();
    assert_eq!(
        metric_value(
            &metrics,
            r#"strata_ingest_samples_dropped_total{reason="outside_retention"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"strata_ingest_samples_dropped_total{reason="future"}"#
        ),
        Some(1.0),
        "{metrics}"
    );

    let response = server.post(
        &format!("/api/write?cluster={C}&precision=h"),
        format!("p,host=h1 value=1 {t}\n"),
    );
    response.assert_error(400, "unknown precision");
}

#[test]
fn line_without_timestamp_gets_the_arrival_time() {
    // Goal: decision 1 — a line without a timestamp is stored at the request's arrival time
    // (not at the previous line's time).
    let server = Server::start();
    let old = minutes_ago(30);
    let before = now_s();
    server.write_ok(
        C,
        &format!("arrival,host=h1 value=1 {old}\narrival,host=h2 value=7\n"),
    );
    let after = now_s();
    let body = server.query(&json!({"cluster":C,"from":before - 600,"to":after + 600,
                                    "with-padding":false,
                                    "queries":[{"metric":"arrival","host":"h2"}]}));
    let series = entry(&body, 0);
    assert_data(&series["data"], &[Some(7.0)]);
    let from = series["from"].as_i64().expect("from");
    assert!(
        (before..=after).contains(&from),
        "first sample at {from}, request between {before} and {after}"
    );
    assert_eq!(series["to"], json!(from + 60));
}

#[test]
fn resolution_600_over_1440_points_resamples_to_144_points() {
    // Goal: a day of 60 s data (1440 points, at least the 1000-point threshold) queried at
    // resolution 600 returns 144 points: LTTB by default (first and last point kept), bucket
    // means with `"resampler":"average"` (decision 8); resolution 60 returns it unchanged,
    // and a series shorter than 1000 points is not resampled.
    let server = Server::start();
    let t = minutes_ago(1440 + 10);
    let lines: String = (0..1440)
        .map(|i| format!("day,host=h1 value={i} {}\n", t + 60 * i))
        .collect();
    server.write_ok(C, &lines);
    let body = server.query(&json!({
    "cluster":C,"from":t,"to":t + 1440 * 60,
    "queries":[
        {"metric":"day","host":"h1","resolution":600},
        {"metric":"day","host":"h1","resolution":600,"resampler":"average"},
        {"metric":"day","host":"h1","resolution":60},
        {"metric":"day","host":"h1","resolution":0}
    ]}));

    let lttb = entry(&body, 0);
    assert_eq!(lttb["resolution"], json!(600));
    assert_eq!(
        (lttb["from"].clone(), lttb["to"].clone()),
        (json!(t), json!(t + 1440 * 60))
    );
    let values: Vec<f64> = lttb["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect();
    assert_eq!(values.len(), 144);
    assert_eq!((values[0], values[143]), (0.0, 1439.0));
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");

    let average = entry(&body, 1);
    assert_eq!(average["resolution"], json!(600));
    let expected: Vec<Option<f64>> = (0..144).map(|k| Some(10.0 * f64::from(k) + 4.5)).collect();
    assert_data(&average["data"], &expected);
    assert_number(&average["avg"], 719.5);

    for index in [2, 3] {
        let native = entry(&body, index);
        assert_eq!(native["resolution"], json!(60));
        assert_eq!(native["data"].as_array().map(Vec::len), Some(1440));
    }

    // 999 points are below the threshold: returned as they are.
    let body = server.query(&json!({
        "cluster":C,"from":t + 441 * 60,"to":t + 1440 * 60,
        "queries":[{"metric":"day","host":"h1","resolution":600}]}));
    let short = entry(&body, 0);
    assert_eq!(short["resolution"], json!(60));
    assert_eq!(short["data"].as_array().map(Vec::len), Some(999));
}

#[test]
fn resolution_that_is_not_a_multiple_of_the_frequency_is_an_entry_error() {
    // Goal: COMPAT.md §2.4 — the multiple check fires even for short series, per entry; other
    // queries of the request are unaffected.
    let server = Server::start();
    let t = minutes_ago(10);
    server.write_ok(C, &format!("r,host=h1 value=1 {t}\n"));
    let body = server.query(&json!({
    "cluster":C,"from":t,"to":t + 60,
    "queries":[
        {"metric":"r","host":"h1","resolution":90},
        {"metric":"r","host":"h1","resolution":120}
    ]}));
    let failed = entry(&body, 0);
    assert_eq!(
        failed["error"],
        json!("new sampling frequency (90) must be a multiple of old frequency (60)")
    );
    assert_eq!(
        (failed["from"].clone(), failed["to"].clone()),
        (json!(0), json!(0))
    );
    let fine = entry(&body, 1);
    assert_data(&fine["data"], &[Some(1.0)]);
    assert_eq!(fine["resolution"], json!(60));
}

#[test]
fn unknown_metric_with_a_configured_list_is_dropped_but_the_write_succeeds() {
    // Goal: decision 3 — with a metric list, lines of unlisted metrics are dropped and
    // counted, the request is still 200, and queries report `unknown metric: <name>`.
    let server = Server::start_with_config(&json!({
        "metrics": {"known": {"frequency": 60, "aggregation": "avg"}}
    }));
    let t = minutes_ago(10);
    server.write_ok(
        C,
        &format!(
            "known,host=h1 value=1 {t}\nunknown,host=h1 value=2 {t}\nunknown,host=h1 value=3 {}\n",
            t + 60
        ),
    );
    let body = server.query(&json!({
    "cluster":C,"from":t,"to":t + 60,
    "queries":[
        {"metric":"known","host":"h1"},
        {"metric":"unknown","host":"h1"},
        {"metric":"unknown","host":"h1","type":"core","type-ids":["0","1"]}
    ]}));
    assert_data(&entry(&body, 0)["data"], &[Some(1.0)]);
    assert_eq!(entry(&body, 1)["error"], json!("unknown metric: unknown"));
    assert_eq!(body["results"][2].as_array().map(Vec::len), Some(2));
    assert_eq!(
        body["results"][2][1]["error"],
        json!("unknown metric: unknown")
    );
    let metrics = server.metrics();
    assert_eq!(
        metric_value(
            &metrics,
            r#"strata_ingest_samples_dropped_total{reason="unknown_metric"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"strata_ingest_unknown_metric_samples_total{metric="unknown"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "strata_ingest_samples_total"),
        Some(1.0)
    );
}

#[test]
fn cardinality_limits_drop_new_names_and_count_them() {
    // Goal: issue 6 item 14 — `metric-store.limits` bounds auto-registered metrics, hosts per
    // cluster, series per host and children per level; refused samples are dropped (the
    // write is still 200) and counted by reason, and existing names keep working.
    let server = Server::start_with_config(&json!({"metric-store": {"limits": {
        "metrics": 2, "hosts-per-cluster": 2, "series-per-host": 2, "children-per-level": 1
    }}}));
    let t = minutes_ago(10);
    let lines = [
        "a,host=h1 value=1",
        "b,host=h1 value=1",
        "c,host=h1 value=1",
        "a,host=h2,type=core,type-id=0 value=1",
        "a,host=h2,type=core,type-id=1 value=1",
        "a,host=h3 value=1",
        "b,host=h2,type=core,type-id=0 value=1",
        "a,host=h2 value=1",
    ];
    let body: String = lines.iter().map(|line| format!("{line} {t}\n")).collect();
    server.write_ok(C, &body);
    server.write_ok(C, &format!("a,host=h1 value=2 {}\n", t + 60));
    let metrics = server.metrics();
    for reason in ["metrics", "hosts", "series", "children"] {
        let series =
            format!(r#"strata_ingest_samples_dropped_total{{reason="too_many_{reason}"}}"#);
        assert_eq!(
            metric_value(&metrics, &series),
            Some(1.0),
            "{reason}: {metrics}"
        );
    }
    assert_eq!(
        metric_value(&metrics, "strata_ingest_samples_total"),
        Some(5.0),
        "{metrics}"
    );
    let body = server.query(&json!({"cluster": C, "from": t, "to": t + 120,
        "queries": [{"metric": "a", "host": "h1"}]}));
    assert_data(&entry(&body, 0)["data"], &[Some(1.0), Some(2.0)]);
}

#[test]
fn configured_frequency_sets_the_slot_width() {
    // Goal: a metric configured at 10 s stores one slot per 10 s and reports resolution 10.
    let server = Server::start_with_config(&json!({
        "metrics": {"fast": {"frequency": 10, "aggregation": "avg"}}
    }));
    let t = minutes_ago(10);
    let lines: String = (0..6)
        .map(|i| format!("fast,host=h1 value={i} {}\n", t + 10 * i))
        .collect();
    server.write_ok(C, &lines);
    let body = server.query(&json!({"cluster":C,"from":t,"to":t + 60,
                                    "queries":[{"metric":"fast","host":"h1"}]}));
    let series = entry(&body, 0);
    assert_eq!(series["resolution"], json!(10));
    assert_data(
        &series["data"],
        &[
            Some(0.0),
            Some(1.0),
            Some(2.0),
            Some(3.0),
            Some(4.0),
            Some(5.0),
        ],
    );
    assert_eq!(series["to"], json!(t + 60));
}

#[test]
fn query_keys_match_case_insensitively_as_go_decodes_them() {
    // Goal: COMPAT.md §1.5 — cc-metric-store decodes the request with Go's encoding/json,
    // whose key matching is case-insensitive, so `"Cluster"`/`"Metric"` work there.
    let server = Server::start();
    let t = minutes_ago(10);
    server.write_ok(C, &format!("load,host=h1 value=1 {t}\n"));
    let body = server.query(&json!({"Cluster":C,"From":t,"To":t + 60,
                                    "Queries":[{"Metric":"load","Host":"h1"}]}));
    assert_eq!(body["results"].as_array().map(Vec::len), Some(1), "{body}");
    assert_data(&entry(&body, 0)["data"], &[Some(1.0)]);
}

#[test]
fn cheap_and_costly_requests_get_the_same_answers() {
    // Goal: a small request that reads little is answered on the async worker, any other on
    // the blocking pool (server query.rs, INLINE_BODY_BYTES_MAX, INLINE_SAMPLES_MAX); both
    // must answer byte for byte alike. One request three ways: compact (cheap), padded with
    // whitespace past the inline body size (the pool), and among 24 hardware threads
    // aggregated over a day (the pool, too many samples), each checked against the data.
    let server = Server::start();
    let start = minutes_ago(1440) / 60 * 60;
    let mut lines = String::new();
    for i in 0..1440 {
        let t = start + i * 60;
        lines.push_str(&format!(
            "load,hostname=n1,type=node value={} {t}\n",
            i % 97
        ));
        for thread in 0..24 {
            lines.push_str(&format!(
                "flops,hostname=n1,type=hwthread,type-id={thread} value={} {t}\n",
                thread * 10 + i % 7
            ));
        }
    }
    server.write_ok(C, &lines);
    let end = start + 1440 * 60;
    let request = json!({"cluster": C, "from": start, "to": end,
                         "queries": [{"metric": "load", "host": "n1"}]});
    let compact = server.get_json("/api/query", &request);
    compact.assert_status(200);
    let padded = format!("{}{}", " ".repeat(20 * 1024), request);
    let pooled = server.request(
        "GET",
        "/api/query",
        &[("Content-Type", "application/json")],
        padded.as_bytes(),
    );
    pooled.assert_status(200);
    assert_eq!(compact.text(), pooled.text());
    let expected: Vec<Option<f64>> = (0..1440).map(|i| Some(f64::from(i % 97))).collect();
    assert_data(&entry(&compact.json(), 0)["data"], &expected);

    let threads: Vec<String> = (0..24).map(|t| t.to_string()).collect();
    let costly = server.query(&json!({"cluster": C, "from": start, "to": end,
        "queries": [{"metric": "flops", "host": "n1", "type": "hwthread",
                     "type-ids": threads, "aggreg": true}]}));
    // The average over threads of (thread × 10 + i % 7): a metric registered by its first
    // write aggregates by average (COMPAT.md §2.3).
    let series = entry(&costly, 0);
    let data = series["data"].as_array().expect("data");
    assert_eq!(data.len(), 1440, "{series}");
    for (i, value) in (0..1440).zip(data) {
        let expected = (0..24).map(|t| f64::from(t * 10 + i % 7)).sum::<f64>() / 24.0;
        let got = value.as_f64().expect("number");
        assert!(
            (got - expected).abs() < 1e-3,
            "slot {i}: {got} != {expected}"
        );
    }
}

#[test]
fn repeated_series_keys_are_decoded_from_the_line_key_cache() {
    // Goal: the second write of the same series keys is served by the line-key cache (its
    // counters in /metrics move), stores the same values as the full path, and a line the
    // cache cannot serve (a value beyond float32) is still rejected with its line number.
    let server = Server::start();
    let t = minutes_ago(10);
    let lines = |t: i64, last: &str| {
        format!(
            "cpu_user,cluster={C},hostname=h1,type=hwthread,type-id=0 value=1.5 {t}\n\
             cpu_user,cluster={C},hostname=h1,type=hwthread,type-id=1 value=2.5 {t}\n\
             mem_used,hostname=h1 value={last} {t}\n"
        )
    };
    server.write_ok(C, &lines(t, "3i"));
    let metrics = server.metrics();
    let value = |metrics: &str, name: &str| metric_value(metrics, name).unwrap_or(-1.0);
    assert_eq!(value(&metrics, "strata_ingest_key_cache_hits_total"), 0.0);
    assert_eq!(value(&metrics, "strata_ingest_key_cache_misses_total"), 3.0);
    assert_eq!(value(&metrics, "strata_ingest_key_cache_entries"), 3.0);
    assert!(value(&metrics, "strata_ingest_key_cache_bytes") > 0.0);

    server.write_ok(C, &lines(t + 60, "4"));
    let response = server.write_lines(C, &lines(t + 120, "1e39"));
    response.assert_error(400, "1 of 3 lines rejected");
    assert_eq!(response.json()["rejected"][0]["line"], json!(3));
    let metrics = server.metrics();
    assert_eq!(value(&metrics, "strata_ingest_key_cache_hits_total"), 5.0);
    assert_eq!(value(&metrics, "strata_ingest_key_cache_misses_total"), 4.0);
    assert_eq!(value(&metrics, "strata_ingest_key_cache_entries"), 3.0);

    let body = server.query(&json!({"cluster":C,"from":t,"to":t + 180,
        "queries":[{"metric":"mem_used","host":"h1"},
                   {"metric":"cpu_user","host":"h1","type":"hwthread","type-ids":["1"]}]}));
    assert_data(&entry(&body, 0)["data"], &[Some(3.0), Some(4.0)]);
    assert_data(&entry(&body, 1)["data"], &[Some(2.5), Some(2.5), Some(2.5)]);
}
