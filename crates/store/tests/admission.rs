//! `Store::admit`: what it removes from a batch before the batch is logged, and that
//! admitting and then writing stores and counts exactly what writing alone does (issue 7:
//! only accepted samples in the write-ahead log, which is replayed and forwarded).

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use proptest::prelude::*;
use strata_store::{
    Aggregation, DropCounts, LevelName, MetricConfig, Store, StoreConfig, StoreLimits, WriteBatch,
};

const NOW: i64 = 10_000_000;
const RETENTION_S: i64 = 1000;
const FUTURE_S: i64 = 100;

fn config(configured: &[&str], metrics_max: usize) -> StoreConfig {
    let mut config = StoreConfig::auto(10);
    config.retention_s = RETENTION_S;
    config.future_tolerance_s = FUTURE_S;
    config.limits = StoreLimits {
        metrics_max,
        ..StoreLimits::DEFAULT
    };
    for name in configured {
        let metric = MetricConfig {
            frequency_s: 10,
            aggregation: Aggregation::Avg,
        };
        config.metrics.insert((*name).to_owned(), metric);
    }
    config
}

fn push(batch: &mut WriteBatch, host: &str, metric: &str, t: i64, value: f32) {
    batch.push("c", host, [LevelName::NONE; 2], metric, t, value);
}

/// `(host, metric, timestamp)` of every sample, in order.
fn samples(batch: &WriteBatch) -> Vec<(String, String, i64)> {
    batch
        .iter()
        .map(|s| {
            (
                s.key.host.to_owned(),
                s.key.metric.to_owned(),
                s.timestamp_s,
            )
        })
        .collect()
}

#[test]
fn admit_removes_unknown_old_and_future_samples_and_counts_them_once() {
    // Goal: with a configured metric list, unknown metrics, samples before the retention
    // window and samples past the future tolerance are removed (in order, by the same
    // precedence as `write`: an unknown metric is counted as unknown even when old), the
    // per-metric counter counts them by name, and writing the admitted batch drops nothing.
    let store = Store::new(config(&["known"], 10));
    let mut batch = WriteBatch::new();
    push(&mut batch, "h1", "known", NOW, 1.0);
    push(&mut batch, "h1", "nope", NOW, 2.0);
    push(&mut batch, "h1", "nope", NOW - 2 * RETENTION_S, 3.0);
    push(&mut batch, "h1", "known", NOW - RETENTION_S - 1, 4.0);
    push(&mut batch, "h1", "known", NOW - RETENTION_S, 5.0);
    push(&mut batch, "h2", "known", NOW + FUTURE_S + 1, 6.0);
    push(&mut batch, "h2", "known", NOW + FUTURE_S, 7.0);
    push(&mut batch, "h2", "other", NOW, 8.0);
    push(&mut batch, "h2", "nope", NOW, 9.0);
    let dropped = store.admit(&mut batch, NOW);
    assert_eq!(
        dropped,
        DropCounts {
            unknown_metric: 4,
            outside_retention: 1,
            future: 1,
            ..DropCounts::default()
        }
    );
    let kept: Vec<f32> = batch.iter().map(|s| s.value).collect();
    assert_eq!(kept, [1.0, 5.0, 7.0]);
    assert_eq!(
        store.unknown_metric_counts(),
        [("nope".to_owned(), 3), ("other".to_owned(), 1)]
    );
    let report = store.write(&batch, NOW);
    assert_eq!((report.written, report.dropped.total()), (3, 0));
    assert_eq!(store.unknown_metric_counts().len(), 2, "not counted again");
}

#[test]
fn admit_drops_new_metrics_only_once_the_registry_is_at_its_limit() {
    // Goal: a new metric beyond `metrics_max` is removed only when that is certain (the
    // registry is full and never shrinks). Below the limit a batch's new metrics are kept
    // even if they are more than the room left: a concurrent writer may register one of
    // them first, so only `write` can tell; those reach the log and are dropped there.
    let store = Store::new(config(&[], 2));
    let mut batch = WriteBatch::new();
    for metric in ["a", "b", "c"] {
        push(&mut batch, "h", metric, NOW, 1.0);
    }
    assert_eq!(store.admit(&mut batch, NOW), DropCounts::default());
    assert_eq!(batch.len(), 3);
    let report = store.write(&batch, NOW);
    assert_eq!((report.written, report.dropped.too_many_metrics), (2, 1));

    let mut batch = WriteBatch::new();
    push(&mut batch, "h", "a", NOW, 2.0);
    push(&mut batch, "h", "c", NOW, 2.0);
    push(&mut batch, "h", "d", NOW, 2.0);
    push(&mut batch, "h", "e", NOW - 2 * RETENTION_S, 2.0);
    let dropped = store.admit(&mut batch, NOW);
    assert_eq!(
        dropped,
        DropCounts {
            too_many_metrics: 2,
            outside_retention: 1,
            ..DropCounts::default()
        },
        "the time checks go before the metrics limit, as in write"
    );
    assert_eq!(samples(&batch), [("h".into(), "a".into(), NOW)]);
    assert!(store.unknown_metric_counts().is_empty());
}

#[test]
fn admit_leaves_refusals_that_depend_on_the_tree_to_write() {
    // Goal: a new host beyond `hosts_per_cluster_max` is not removed by `admit` (hosts are
    // pruned, so the room can grow before the write): it reaches `write`, which drops it.
    let mut config = config(&[], 10);
    config.limits.hosts_per_cluster_max = 1;
    let store = Store::new(config);
    let mut first = WriteBatch::new();
    push(&mut first, "h1", "m", NOW, 1.0);
    store.write(&first, NOW);
    let mut batch = WriteBatch::new();
    push(&mut batch, "h2", "m", NOW, 1.0);
    assert_eq!(store.admit(&mut batch, NOW), DropCounts::default());
    assert_eq!(batch.len(), 1);
    assert_eq!(store.write(&batch, NOW).dropped.too_many_hosts, 1);
}

/// One generated sample: host index, metric index, timestamp offset from `NOW`.
type Sample = (u8, u8, i64);

fn sample() -> impl Strategy<Value = Sample> {
    // Offsets cluster around both edges of the accepted window.
    let offset = prop_oneof![
        -RETENTION_S - 2..=-RETENTION_S + 1,
        FUTURE_S - 1..=FUTURE_S + 2,
        -RETENTION_S * 3..=FUTURE_S * 3,
    ];
    (0u8..3, 0u8..5, offset)
}

fn build(samples: &[Sample]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for (i, &(host, metric, offset)) in samples.iter().enumerate() {
        let host = format!("h{host}");
        push(
            &mut batch,
            &host,
            &format!("m{metric}"),
            NOW + offset,
            i as f32,
        );
    }
    batch
}

#[test]
fn write_from_keeps_samples_down_to_the_floor_given() {
    // Goal (issue 8, replay in archive mode): `write_from` admits samples older than
    // `now − retention` down to `oldest_s`, still drops older ones and future ones, and
    // registers metrics of the samples it keeps; `write` drops them all as before.
    let old = NOW - RETENTION_S - 500;
    let mut batch = WriteBatch::new();
    push(&mut batch, "h", "m", old - 1, 1.0);
    push(&mut batch, "h", "m", old, 2.0);
    push(&mut batch, "h", "n", old + 10, 3.0);
    push(&mut batch, "h", "m", NOW + FUTURE_S + 1, 4.0);
    let store = Store::new(config(&[], 10));
    let report = store.write(&batch, NOW);
    assert_eq!((report.written, report.dropped.outside_retention), (0, 3));
    let report = store.write_from(&batch, NOW, old);
    assert_eq!(report.written, 2);
    assert_eq!(
        (report.dropped.outside_retention, report.dropped.future),
        (1, 1)
    );
    assert_eq!(store.stats().metrics, 2);
    assert_eq!(
        store.export_series("c", "h", &[], "m", i64::MIN, i64::MAX),
        Some((10, vec![(old, 2.0)]))
    );
}

proptest! {
    /// Admitting then writing gives the same written count, drop counts, per-metric
    /// unknown counts, metrics and data as writing alone, and the write after admission
    /// drops nothing for a reason `admit` checks. With or without a configured list, with
    /// a metrics limit that may be reached within a batch.
    #[test]
    fn admit_then_write_equals_write(
        first in prop::collection::vec(sample(), 0..40),
        second in prop::collection::vec(sample(), 0..40),
        configured in any::<bool>(),
        metrics_max in 1usize..5,
    ) {
        let list: &[&str] = if configured { &["m0", "m2"] } else { &[] };
        let alone = Store::new(config(list, metrics_max));
        let admitted = Store::new(config(list, metrics_max));
        for samples in [&first, &second] {
            let batch = build(samples);
            let expected = alone.write(&batch, NOW);
            let mut logged = batch.clone();
            let mut dropped = admitted.admit(&mut logged, NOW);
            let report = admitted.write(&logged, NOW);
            prop_assert_eq!(report.dropped.unknown_metric, 0);
            prop_assert_eq!(report.dropped.outside_retention, 0);
            prop_assert_eq!(report.dropped.future, 0);
            dropped += report.dropped;
            prop_assert_eq!(report.written, expected.written);
            prop_assert_eq!(dropped, expected.dropped);
            prop_assert_eq!(logged.len(), report.written + report.dropped.total());
        }
        prop_assert_eq!(admitted.unknown_metric_counts(), alone.unknown_metric_counts());
        prop_assert_eq!(admitted.stats(), alone.stats());
    }
}
