//! Property tests: whatever order samples arrive in (late, early, duplicated, split over
//! batches), a query returns, per slot, the last value written to it, NaN where nothing was
//! written, from the first written slot to the last; and a sum over children equals the sum of
//! the children slot by slot, NaN where any child lacks the slot.
//!
//! Model: each series is a map slot → last value. Timestamps are `BASE + slot·F + jitter` with
//! `jitter < F/2`, which puts every sample of a series on the slot grid its first sample
//! defines (grid start = first timestamp − F/2).

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use proptest::prelude::*;
use std::collections::BTreeMap;
use strata_store::{
    Aggregation, LevelName, MetricConfig, Query, ReadOptions, Resampler, Store, StoreConfig,
    WriteBatch,
};

const F: i64 = 10;
const BASE: i64 = 1_000_000;
const NOW: i64 = BASE + 100_000;
const SLOTS: i64 = 1500; // spans three buffers of 512

#[derive(Debug, Clone)]
struct Sample {
    child: usize,
    slot: i64,
    jitter: i64,
    value: f32,
}

fn samples() -> impl Strategy<Value = Vec<Sample>> {
    prop::collection::vec(
        (0..2usize, 0..SLOTS, 0..F / 2, -1000i32..1000).prop_map(|(child, slot, jitter, v)| {
            Sample {
                child,
                slot,
                jitter,
                value: v as f32 / 4.0,
            }
        }),
        1..400,
    )
}

fn store() -> Store {
    let mut config = StoreConfig::auto(F);
    config.metrics.insert(
        "m".into(),
        MetricConfig {
            frequency_s: F,
            aggregation: Aggregation::Sum,
        },
    );
    config.retention_s = NOW;
    Store::new(config)
}

fn options() -> ReadOptions {
    ReadOptions {
        from_s: BASE - 100 * F,
        to_s: BASE + (SLOTS + 100) * F,
        with_stats: false,
        with_data: true,
        with_padding: false,
        resampler: Resampler::default(),
    }
}

/// Writes the samples in `batches` pieces and returns the model of each child.
fn write(store: &Store, samples: &[Sample], batches: usize) -> [BTreeMap<i64, f32>; 2] {
    let mut model: [BTreeMap<i64, f32>; 2] = Default::default();
    let ids = ["0", "1"];
    for chunk in samples.chunks(samples.len().div_ceil(batches).max(1)) {
        let mut batch = WriteBatch::new();
        for s in chunk {
            let level = [LevelName::new("hwthread", ids[s.child]), LevelName::NONE];
            batch.push("c", "h", level, "m", BASE + s.slot * F + s.jitter, s.value);
            model[s.child].insert(s.slot, s.value);
        }
        let report = store.write(&batch, NOW);
        assert_eq!(report.written, chunk.len());
    }
    model
}

/// The series a query must return for one child: (first slot, values).
fn expected(model: &BTreeMap<i64, f32>) -> Option<(i64, Vec<Option<f32>>)> {
    let (&first, _) = model.first_key_value()?;
    let (&last, _) = model.last_key_value()?;
    Some((
        first,
        (first..=last)
            .map(|slot| model.get(&slot).copied())
            .collect(),
    ))
}

fn as_options(data: &[f32]) -> Vec<Option<f32>> {
    data.iter().map(|v| (!v.is_nan()).then_some(*v)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn each_slot_reads_back_its_last_write(samples in samples(), batches in 1..5usize) {
        let store = store();
        let model = write(&store, &samples, batches);
        let ids: Vec<String> = vec!["0".into(), "1".into()];
        let query = Query { host: "h", metric: "m", kind: Some("hwthread"), kind_ids: &ids, ..Query::default() };
        let results = store.query("c", &query, &options());
        prop_assert_eq!(results.len(), 2);
        for (child, result) in results.iter().enumerate() {
            match expected(&model[child]) {
                None => prop_assert!(result.is_err()),
                Some((first_slot, values)) => {
                    let series = result.as_ref().expect("child has data");
                    let data = series.data.as_deref().unwrap_or_default();
                    prop_assert_eq!(as_options(data), values.clone());
                    // `from` is the time of the first slot on this series' grid: the first
                    // sample written defines the grid and marks its slot's time.
                    let first_written = samples.iter().find(|s| s.child == child).expect("written");
                    let grid = BASE + first_written.slot * F + first_written.jitter;
                    prop_assert_eq!(series.from_s, grid + (first_slot - first_written.slot) * F);
                    prop_assert_eq!(series.to_s, series.from_s + values.len() as i64 * F);
                }
            }
        }
    }

    #[test]
    fn node_level_sum_matches_the_children_slot_by_slot(samples in samples()) {
        let store = store();
        let model = write(&store, &samples, 2);
        let result = store.query("c", &Query { host: "h", metric: "m", ..Query::default() }, &options());
        let result = result[0].as_ref().expect("the host has data");
        let data = as_options(result.data.as_deref().unwrap_or_default());
        let present: Vec<&BTreeMap<i64, f32>> = model.iter().filter(|m| !m.is_empty()).collect();
        let first = present.iter().filter_map(|m| m.keys().next()).min().copied().unwrap_or(0);
        let last = present.iter().filter_map(|m| m.keys().next_back()).max().copied().unwrap_or(0);
        prop_assert_eq!(data.len() as i64, last - first + 1);
        for (i, value) in data.iter().enumerate() {
            let slot = first + i as i64;
            let expected = present.iter().try_fold(0.0f32, |sum, m| m.get(&slot).map(|v| sum + v));
            prop_assert_eq!(*value, expected, "slot {}", slot);
        }
    }
}
