//! Query rules of cc-metric-store (COMPAT.md §2, §8) and Strata's decisions (§14), through the
//! store's public API. Timestamps are small numbers; `now` is placed right after them so the
//! retention window accepts them.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use strata_store::{
    Aggregation, LevelName, MetricConfig, Query, QueryError, ReadOptions, Resampler, ResamplerKind,
    SeriesData, Stats, Store, StoreConfig, WriteBatch,
};

const NOW: i64 = 10_000_000;

fn store(metrics: &[(&str, i64, Aggregation)]) -> Store {
    let mut config = StoreConfig::auto(10);
    for &(name, frequency_s, aggregation) in metrics {
        config.metrics.insert(
            name.to_owned(),
            MetricConfig {
                frequency_s,
                aggregation,
            },
        );
    }
    config.retention_s = NOW;
    Store::new(config)
}

fn write(
    store: &Store,
    host: &str,
    levels: [LevelName<'_>; 2],
    metric: &str,
    samples: &[(i64, f32)],
) {
    let mut batch = WriteBatch::new();
    for &(t, v) in samples {
        batch.push("c", host, levels, metric, t, v);
    }
    let report = store.write(&batch, NOW);
    assert_eq!(report.written, samples.len(), "{report:?}");
}

fn node() -> [LevelName<'static>; 2] {
    [LevelName::NONE; 2]
}

fn hw(id: &str) -> [LevelName<'_>; 2] {
    [LevelName::new("hwthread", id), LevelName::NONE]
}

fn options(from_s: i64, to_s: i64) -> ReadOptions {
    ReadOptions {
        from_s,
        to_s,
        with_stats: true,
        with_data: true,
        with_padding: false,
        resampler: Resampler::default(),
    }
}

fn one(store: &Store, query: Query<'_>, options: ReadOptions) -> SeriesData {
    let mut results = store.query("c", &query, &options);
    assert_eq!(results.len(), 1);
    results.remove(0).expect("a result")
}

fn data(result: &SeriesData) -> Vec<Option<f32>> {
    result
        .data
        .as_ref()
        .expect("data")
        .iter()
        .map(|v| (!v.is_nan()).then_some(*v))
        .collect()
}

#[test]
fn node_query_reads_the_host_series() {
    let store = store(&[("load", 10, Aggregation::None)]);
    write(
        &store,
        "h",
        node(),
        "load",
        &[(100, 1.0), (110, 2.0), (130, 4.0)],
    );
    let query = Query {
        host: "h",
        metric: "load",
        ..Query::default()
    };
    let result = one(&store, query, options(0, 1000));
    assert_eq!(data(&result), [Some(1.0), Some(2.0), None, Some(4.0)]);
    assert_eq!(
        (result.from_s, result.to_s, result.resolution_s),
        (100, 140, 10)
    );
    assert_eq!(
        result.stats,
        Stats {
            avg: 7.0 / 3.0,
            min: 1.0,
            max: 4.0
        }
    );
}

#[test]
fn node_query_aggregates_children_by_strategy() {
    // TestMemoryStoreAggregation: the sum of two cpus.
    let store = store(&[
        ("flops", 10, Aggregation::Sum),
        ("clock", 10, Aggregation::Avg),
    ]);
    for (id, base) in [("0", 1.0), ("1", 10.0)] {
        let samples: Vec<_> = (0..5).map(|i| (100 + i * 10, base + i as f32)).collect();
        write(&store, "h", hw(id), "flops", &samples);
        write(&store, "h", hw(id), "clock", &samples);
    }
    let sum = one(
        &store,
        Query {
            host: "h",
            metric: "flops",
            ..Query::default()
        },
        options(100, 150),
    );
    assert_eq!(
        data(&sum),
        [Some(11.0), Some(13.0), Some(15.0), Some(17.0), Some(19.0)]
    );
    let avg = one(
        &store,
        Query {
            host: "h",
            metric: "clock",
            ..Query::default()
        },
        options(100, 150),
    );
    assert_eq!(
        data(&avg),
        [Some(5.5), Some(6.5), Some(7.5), Some(8.5), Some(9.5)]
    );
}

#[test]
fn several_series_without_aggregation_is_an_error() {
    let store = store(&[("load", 10, Aggregation::None)]);
    write(&store, "h", hw("0"), "load", &[(100, 1.0)]);
    write(&store, "h", hw("1"), "load", &[(100, 1.0)]);
    let results = store.query(
        "c",
        &Query {
            host: "h",
            metric: "load",
            ..Query::default()
        },
        &options(0, 200),
    );
    assert_eq!(results, [Err(QueryError::InvalidAggregation)]);
}

#[test]
fn typed_queries_give_one_entry_per_id_and_keep_missing_ids_in_place() {
    // Decision 7: a missing id yields an error entry at its index, not a shorter array.
    let store = store(&[("cpu", 10, Aggregation::Avg)]);
    write(&store, "h", hw("0"), "cpu", &[(100, 1.0)]);
    write(&store, "h", hw("2"), "cpu", &[(100, 3.0)]);
    let ids: Vec<String> = ["0", "1", "2"].map(String::from).to_vec();
    let query = Query {
        host: "h",
        metric: "cpu",
        kind: Some("hwthread"),
        kind_ids: &ids,
        ..Query::default()
    };
    let results = store.query("c", &query, &options(0, 200));
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().map(data), Ok(vec![Some(1.0)]));
    assert_eq!(results[1], Err(QueryError::NotFound));
    assert_eq!(results[2].as_ref().map(data), Ok(vec![Some(3.0)]));
}

#[test]
fn aggregated_typed_query_combines_the_listed_ids_only() {
    let store = store(&[("cpu", 10, Aggregation::Sum)]);
    for (id, v) in [("0", 1.0), ("1", 2.0), ("2", 4.0)] {
        write(&store, "h", hw(id), "cpu", &[(100, v)]);
    }
    let ids: Vec<String> = ["0", "2"].map(String::from).to_vec();
    let query = Query {
        host: "h",
        metric: "cpu",
        kind: Some("hwthread"),
        kind_ids: &ids,
        aggregate: true,
        ..Query::default()
    };
    assert_eq!(data(&one(&store, query, options(0, 200))), [Some(5.0)]);
}

#[test]
fn selector_ending_on_a_level_with_the_metric_uses_only_that_series() {
    // §2.3: a level that holds the metric is used alone, its children are not added.
    let store = store(&[("mem", 10, Aggregation::Sum)]);
    write(&store, "h", node(), "mem", &[(100, 100.0)]);
    write(&store, "h", hw("0"), "mem", &[(100, 1.0)]);
    let result = one(
        &store,
        Query {
            host: "h",
            metric: "mem",
            ..Query::default()
        },
        options(0, 200),
    );
    assert_eq!(data(&result), [Some(100.0)]);
}

#[test]
fn aggregation_aligns_children_on_the_union_of_their_windows() {
    // Decision 6: a slot missing in any child is NaN; never a "does not align" error.
    let store = store(&[("cpu", 10, Aggregation::Sum)]);
    write(
        &store,
        "h",
        hw("0"),
        "cpu",
        &[(100, 1.0), (110, 1.0), (120, 1.0)],
    );
    write(
        &store,
        "h",
        hw("1"),
        "cpu",
        &[(110, 2.0), (120, 2.0), (130, 2.0)],
    );
    let result = one(
        &store,
        Query {
            host: "h",
            metric: "cpu",
            ..Query::default()
        },
        options(0, 1000),
    );
    assert_eq!(data(&result), [None, Some(3.0), Some(3.0), None]);
    assert_eq!((result.from_s, result.to_s), (100, 140));
}

#[test]
fn clamps_before_data_and_stops_after_it() {
    // TestMemoryStoreOutOfBounds.
    let store = store(&[("m", 10, Aggregation::None)]);
    let samples: Vec<_> = (0..10).map(|i| (1000 + i * 10, i as f32)).collect();
    write(&store, "h", node(), "m", &samples);
    let before = one(
        &store,
        Query {
            host: "h",
            metric: "m",
            ..Query::default()
        },
        options(0, 500),
    );
    assert_eq!(
        (
            before.data.as_ref().map(Vec::len),
            before.from_s,
            before.to_s
        ),
        (Some(0), 1000, 1000)
    );
    let after = one(
        &store,
        Query {
            host: "h",
            metric: "m",
            ..Query::default()
        },
        options(5000, 6000),
    );
    assert_eq!(
        (after.data.as_ref().map(Vec::len), after.from_s, after.to_s),
        (Some(0), 5000, 5000)
    );
    let overlap = one(
        &store,
        Query {
            host: "h",
            metric: "m",
            ..Query::default()
        },
        options(950, 1035),
    );
    assert_eq!(data(&overlap), [Some(0.0), Some(1.0), Some(2.0), Some(3.0)]);
    assert_eq!((overlap.from_s, overlap.to_s), (1000, 1040));
}

#[test]
fn every_third_sample_missing_reads_as_nan() {
    // TestMemoryStoreMissingDatapoints.
    let store = store(&[("m", 1, Aggregation::None)]);
    let samples: Vec<_> = (0..3000)
        .filter(|i| i % 3 == 0)
        .map(|i| (10_000 + i, i as f32))
        .collect();
    write(&store, "h", node(), "m", &samples);
    let result = one(
        &store,
        Query {
            host: "h",
            metric: "m",
            ..Query::default()
        },
        options(10_000, 13_000),
    );
    let values = data(&result);
    assert_eq!(values.len(), 2998);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v.is_some(), i % 3 == 0, "slot {i}");
    }
}

#[test]
fn many_writes_across_buffer_boundaries_keep_exact_lengths() {
    // TestMemoryStoreTooMuchWrites: 3·512+10 writes for metrics at frequency 10/20/5/30.
    let metrics = [("a", 10), ("b", 20), ("c", 5), ("d", 30)];
    let config: Vec<_> = metrics
        .iter()
        .map(|&(n, f)| (n, f, Aggregation::None))
        .collect();
    let store = store(&config);
    let count = 3 * 512 + 10;
    for &(name, f) in &metrics {
        let samples: Vec<_> = (0..count).map(|i| (100 + i * f, i as f32)).collect();
        write(&store, "h", node(), name, &samples);
    }
    for &(name, f) in &metrics {
        let end = 100 + count * f;
        let result = one(
            &store,
            Query {
                host: "h",
                metric: name,
                ..Query::default()
            },
            options(0, end),
        );
        let values = data(&result);
        assert_eq!(values.len(), count as usize, "{name}");
        assert_eq!(result.to_s, end, "{name}");
        assert!(
            values.iter().enumerate().all(|(i, v)| *v == Some(i as f32)),
            "{name}"
        );
    }
}

#[test]
fn two_frequencies_in_one_store() {
    // TestMemoryStoreBasics: 5000 writes, two frequencies.
    let store = store(&[
        ("fast", 1, Aggregation::None),
        ("slow", 2, Aggregation::None),
    ]);
    let fast: Vec<_> = (0..5000).map(|i| (10_000 + i, i as f32)).collect();
    let slow: Vec<_> = (0..2500).map(|i| (10_000 + 2 * i, i as f32)).collect();
    write(&store, "h", node(), "fast", &fast);
    write(&store, "h", node(), "slow", &slow);
    let a = one(
        &store,
        Query {
            host: "h",
            metric: "fast",
            ..Query::default()
        },
        options(10_000, 15_000),
    );
    let b = one(
        &store,
        Query {
            host: "h",
            metric: "slow",
            ..Query::default()
        },
        options(10_000, 15_000),
    );
    assert_eq!(a.data.map(|d| d.len()), Some(5000));
    assert_eq!(b.data.map(|d| d.len()), Some(2500));
    assert_eq!((b.from_s, b.to_s), (10_000, 15_000));
}

#[test]
fn unknown_metric_host_and_bad_range_are_per_entry_errors() {
    let store = store(&[("m", 10, Aggregation::None)]);
    write(&store, "h", node(), "m", &[(100, 1.0)]);
    let unknown = store.query(
        "c",
        &Query {
            host: "h",
            metric: "nope",
            ..Query::default()
        },
        &options(0, 200),
    );
    assert_eq!(unknown, [Err(QueryError::UnknownMetric("nope".into()))]);
    assert_eq!(
        unknown[0].as_ref().unwrap_err().to_string(),
        "unknown metric: nope"
    );
    let no_host = store.query(
        "c",
        &Query {
            host: "x",
            metric: "m",
            ..Query::default()
        },
        &options(0, 200),
    );
    assert_eq!(no_host, [Err(QueryError::NotFound)]);
    let no_cluster = store.query(
        "zz",
        &Query {
            host: "h",
            metric: "m",
            ..Query::default()
        },
        &options(0, 200),
    );
    assert_eq!(no_cluster, [Err(QueryError::NotFound)]);
    let range = store.query(
        "c",
        &Query {
            host: "h",
            metric: "m",
            ..Query::default()
        },
        &options(300, 200),
    );
    assert_eq!(range, [Err(QueryError::InvalidTimeRange)]);
}

#[test]
fn resolution_resamples_long_series_and_reports_it() {
    let store = store(&[("m", 60, Aggregation::None)]);
    let samples: Vec<_> = (0..1440)
        .map(|i| (600_000 + i * 60, (i % 100) as f32))
        .collect();
    write(&store, "h", node(), "m", &samples);
    let query = Query {
        host: "h",
        metric: "m",
        resolution_s: 600,
        ..Query::default()
    };
    let lttb = one(&store, query, options(600_000, 700_000));
    assert_eq!(
        (lttb.data.as_ref().map(Vec::len), lttb.resolution_s),
        (Some(144), 600)
    );
    let average = one(
        &store,
        Query {
            resampler: Some(ResamplerKind::Average),
            ..query
        },
        options(600_000, 700_000),
    );
    let values = data(&average);
    assert_eq!(values.len(), 144);
    assert_eq!(values[0], Some(4.5));
    let short = one(&store, query, options(600_000, 600_000 + 60 * 100));
    assert_eq!(
        (short.data.map(|d| d.len()), short.resolution_s),
        (Some(100), 60)
    );
    let bad = store.query(
        "c",
        &Query {
            resolution_s: 90,
            ..query
        },
        &options(0, 700_000),
    );
    assert!(matches!(bad[0], Err(QueryError::Resample(_))));
}

#[test]
fn stats_scale_padding_and_with_data() {
    // §2.5: stats, then scale, then front padding, then drop data.
    let store = store(&[("m", 10, Aggregation::None)]);
    write(
        &store,
        "h",
        node(),
        "m",
        &[(100, 1.0), (110, f32::NAN), (120, 3.0)],
    );
    let query = Query {
        host: "h",
        metric: "m",
        scale_by: Some(2.0),
        ..Query::default()
    };
    let mut padded = options(60, 200);
    padded.with_padding = true;
    let result = one(&store, query, padded);
    assert_eq!(
        data(&result),
        [None, None, None, None, Some(2.0), None, Some(6.0)]
    );
    assert_eq!(
        result.stats,
        Stats {
            avg: 4.0,
            min: 2.0,
            max: 6.0
        }
    );
    assert_eq!((result.from_s, result.to_s), (100, 130));
    let mut bare = options(60, 200);
    bare.with_data = false;
    bare.with_stats = false;
    let result = one(&store, query, bare);
    assert_eq!((result.data, result.stats), (None, Stats::ZERO));
}

#[test]
fn all_nan_stats_are_nan() {
    let store = store(&[("m", 10, Aggregation::None)]);
    write(&store, "h", node(), "m", &[(100, f32::NAN)]);
    let result = one(
        &store,
        Query {
            host: "h",
            metric: "m",
            ..Query::default()
        },
        options(0, 200),
    );
    assert!(result.stats.avg.is_nan() && result.stats.min.is_nan() && result.stats.max.is_nan());
}

#[test]
fn padding_from_zero_is_refused_not_allocated() {
    let store = store(&[("m", 1, Aggregation::None)]);
    write(&store, "h", node(), "m", &[(NOW - 10, 1.0)]);
    let mut padded = options(0, NOW);
    padded.with_padding = true;
    let results = store.query(
        "c",
        &Query {
            host: "h",
            metric: "m",
            ..Query::default()
        },
        &padded,
    );
    assert!(matches!(results[0], Err(QueryError::TooManyPoints { .. })));
}

#[test]
fn subtype_levels_are_addressed_by_type_and_subtype_ids() {
    let store = store(&[("bw", 10, Aggregation::Sum)]);
    let levels = |s: &'static str| [LevelName::new("socket", "0"), LevelName::new("port", s)];
    write(&store, "h", levels("0"), "bw", &[(100, 1.0)]);
    write(&store, "h", levels("1"), "bw", &[(100, 2.0)]);
    let sockets: Vec<String> = vec!["0".into()];
    let ports: Vec<String> = vec!["0".into(), "1".into()];
    let query = Query {
        host: "h",
        metric: "bw",
        kind: Some("socket"),
        kind_ids: &sockets,
        subkind: Some("port"),
        subkind_ids: &ports,
        ..Query::default()
    };
    let results = store.query("c", &query, &options(0, 200));
    let values: Vec<_> = results.iter().map(|r| r.as_ref().map(data)).collect();
    assert_eq!(values, [Ok(vec![Some(1.0)]), Ok(vec![Some(2.0)])]);
    let node_level = one(
        &store,
        Query {
            host: "h",
            metric: "bw",
            ..Query::default()
        },
        options(0, 200),
    );
    assert_eq!(data(&node_level), [Some(3.0)]);
}

#[test]
fn children_sampled_a_few_seconds_apart_add_no_phantom_step() {
    // Collectors read metrics at slightly different moments of an interval; found by the
    // round-trip property test.
    let store = store(&[("cpu", 10, Aggregation::Sum)]);
    write(&store, "h", hw("0"), "cpu", &[(100, 1.0), (110, 1.0)]);
    write(&store, "h", hw("1"), "cpu", &[(103, 2.0), (113, 2.0)]);
    let result = one(
        &store,
        Query {
            host: "h",
            metric: "cpu",
            ..Query::default()
        },
        options(0, 1000),
    );
    assert_eq!(data(&result), [Some(3.0), Some(3.0)]);
    assert_eq!((result.from_s, result.to_s), (100, 120));
}

/// Metric `m` of host `h`'s hardware threads `ids`.
fn by_threads(ids: &[String], aggregate: bool, resolution_s: i64) -> Query<'_> {
    Query {
        host: "h",
        metric: "m",
        kind: Some("hwthread"),
        kind_ids: ids,
        aggregate,
        resolution_s,
        ..Query::default()
    }
}

#[test]
fn points_bound_is_never_below_what_a_query_returns() {
    // The per-request points budget of the server is checked against `points_bound` before
    // anything is read: it must hold for every window, resolution and padding.
    let store = store(&[("m", 10, Aggregation::Avg)]);
    let samples: Vec<(i64, f32)> = (0..3000)
        .map(|i| (NOW - 40_000 + i * 10, i as f32))
        .collect();
    write(&store, "h", hw("0"), "m", &samples);
    write(&store, "h", hw("1"), "m", &samples[100..2000]);
    let resampler = Resampler {
        minimum_points: 50,
        ..Resampler::default()
    };
    for aggregate in [false, true] {
        for (from, to) in [
            (NOW - 45_000, NOW),
            (NOW - 39_995, NOW - 20_003),
            (NOW - 30_000, NOW - 29_990),
            (0, NOW),
            (NOW - 10_000, NOW + 500),
        ] {
            for resolution_s in [0, 10, 20, 60, 600, 35] {
                for with_padding in [false, true] {
                    let options = ReadOptions {
                        with_padding,
                        resampler,
                        ..options(from, to)
                    };
                    let ids = ["0".to_owned(), "1".to_owned()];
                    let query = by_threads(&ids, aggregate, resolution_s);
                    let bound = store.points_bound(&query, &options);
                    for result in store.query("c", &query, &options).into_iter().flatten() {
                        let points = result.data.map_or(0, |d| d.len());
                        assert!(
                            points <= bound,
                            "{points} > {bound} for {from}..{to} at {resolution_s}, \
                             padding {with_padding}, aggregate {aggregate}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn read_bound_counts_every_series_a_query_reads_over_the_native_points() {
    // The server answers a request on its async worker only when `read_bound` says it reads
    // little: the bound must count every series the selectors reach, aggregated children
    // included, at the metric's frequency whatever the resolution.
    let store = store(&[("m", 10, Aggregation::Avg)]);
    for id in ["0", "1", "2"] {
        write(&store, "h", hw(id), "m", &[(NOW - 100, 1.0)]);
    }
    // 1,000 s at 10 s: 100 steps, plus a partial one at either end.
    let window = options(NOW - 1000, NOW);
    let native = 102;
    let ids: Vec<String> = ["0", "1", "x"].iter().map(|s| s.to_string()).collect();
    let by_ids = |aggregate, resolution_s| by_threads(&ids, aggregate, resolution_s);
    assert_eq!(
        store.read_bound("c", &by_ids(false, 0), &window),
        2 * native
    );
    assert_eq!(
        store.read_bound("c", &by_ids(true, 600), &window),
        2 * native
    );
    // At the host: every hardware thread below it is read and aggregated.
    let at_host = Query {
        host: "h",
        metric: "m",
        ..Query::default()
    };
    assert_eq!(store.read_bound("c", &at_host, &window), 3 * native);
    for nothing in [
        Query {
            host: "other",
            ..at_host
        },
        Query {
            metric: "unknown",
            ..at_host
        },
    ] {
        assert_eq!(store.read_bound("c", &nothing, &window), 0);
    }
    assert_eq!(store.read_bound("other", &at_host, &window), 0);
}

#[test]
fn query_each_resumes_where_the_caller_stopped() {
    let store = store(&[("m", 10, Aggregation::Avg)]);
    for id in ["0", "1", "2"] {
        write(&store, "h", hw(id), "m", &[(NOW - 100, id.len() as f32)]);
    }
    let ids: Vec<String> = ["0", "x", "1", "2"].iter().map(|s| s.to_string()).collect();
    let query = Query {
        host: "h",
        metric: "m",
        kind: Some("hwthread"),
        kind_ids: &ids,
        ..Query::default()
    };
    let all = store.query("c", &query, &options(NOW - 200, NOW));
    let mut pieces = Vec::new();
    let mut next = Some(0);
    while let Some(first) = next {
        // One entry per call.
        next = store.query_each("c", &query, &options(NOW - 200, NOW), first, |result| {
            pieces.push(result);
            std::ops::ControlFlow::Break(())
        });
    }
    assert_eq!(pieces, all);
    assert_eq!(all.len(), 4);
    assert!(matches!(all[1], Err(QueryError::NotFound)));
}
