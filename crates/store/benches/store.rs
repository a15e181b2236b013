//! Store micro-benchmarks: applying write batches, and reading the shapes cc-backend asks for.
//!
//! The data has the shared workload's shape (../shared/bench/README.md): per host 20
//! node-level metrics and 5 per-hwthread metrics × 64 hwthreads, 60 s apart.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use strata_store::{LevelName, Query, ReadOptions, Resampler, Store, StoreConfig, WriteBatch};

const NOW: i64 = 1_800_000_000;
const HWTHREADS: usize = 64;
const NODE_METRICS: usize = 20;
const CORE_METRICS: usize = 5;

fn ids() -> Vec<String> {
    (0..HWTHREADS).map(|i| i.to_string()).collect()
}

/// One tick of one host: 340 samples.
fn push_host_tick(batch: &mut WriteBatch, host: &str, t: i64, ids: &[String]) {
    for m in 0..NODE_METRICS {
        let metric = format!("node_metric_{m}");
        batch.push("hpc1", host, [LevelName::NONE; 2], &metric, t, m as f32);
    }
    for m in 0..CORE_METRICS {
        let metric = format!("core_metric_{m}");
        for id in ids {
            let level = [LevelName::new("hwthread", id), LevelName::NONE];
            batch.push("hpc1", host, level, &metric, t, 1.5);
        }
    }
}

fn store() -> Store {
    let mut config = StoreConfig::auto(60);
    config.retention_s = 7 * 24 * 3600;
    Store::new(config)
}

fn write(c: &mut Criterion) {
    let ids = ids();
    let hosts: Vec<String> = (0..16).map(|h| format!("n{h:04}")).collect();
    // 16 consecutive host bodies per batch, as `loadgen --batch 16` sends them.
    let mut batches = Vec::new();
    for tick in 0..64 {
        let mut batch = WriteBatch::new();
        for host in &hosts {
            push_host_tick(&mut batch, host, NOW - 7200 + tick * 60, &ids);
        }
        batches.push(batch);
    }
    let samples = batches[0].len() as u64;
    let mut group = c.benchmark_group("store_write");
    group.throughput(Throughput::Elements(samples));
    group.bench_function("batch_16_hosts_x_340_series", |b| {
        let store = store();
        let mut next = 0;
        b.iter(|| {
            // Cycle through the ticks; after the first round slots are overwritten, which
            // costs the same as appending.
            let report = store.write(&batches[next % batches.len()], NOW);
            next += 1;
            black_box(report)
        });
    });
    // Issue 7: the admission check run on every batch before it is logged, alone and with
    // the write after it (all samples accepted: the common case, the batch is unchanged).
    // With the metrics configured (as cc-metric-store files list them), every run of a
    // metric is looked up; auto-registration with room left looks up nothing.
    group.bench_function("admit_batch_16_hosts_x_340_series_configured", |b| {
        let mut config = StoreConfig::auto(60);
        config.retention_s = 7 * 24 * 3600;
        let names = (0..NODE_METRICS)
            .map(|m| format!("node_metric_{m}"))
            .chain((0..CORE_METRICS).map(|m| format!("core_metric_{m}")));
        for name in names {
            config.metrics.insert(name, config.default_metric);
        }
        let store = Store::new(config);
        let mut batch = batches[0].clone();
        b.iter(|| black_box(store.admit(&mut batch, NOW)));
    });
    // Archive mode: the cluster has archived up to a day ago, so every sample is compared with
    // that end (all are above it and kept). Against `..._auto` (same store, nothing archived).
    for archived in [false, true] {
        let name = if archived {
            "admit_batch_16_hosts_x_340_series_archived"
        } else {
            "admit_batch_16_hosts_x_340_series_auto"
        };
        group.bench_function(name, |b| {
            let store = store();
            if archived {
                store.set_archived_until("hpc1", NOW - 86_400);
            }
            let mut batch = batches[0].clone();
            b.iter(|| black_box(store.admit(&mut batch, NOW)));
        });
    }
    group.bench_function("admit_and_write_batch_16_hosts_x_340_series", |b| {
        let store = store();
        let mut batches = batches.clone();
        let mut next = 0;
        b.iter(|| {
            let count = batches.len();
            let batch = &mut batches[next % count];
            let dropped = store.admit(batch, NOW);
            let report = store.write(batch, NOW);
            next += 1;
            black_box((dropped, report))
        });
    });
    group.bench_function("build_batch_16_hosts", |b| {
        b.iter(|| {
            let mut batch = WriteBatch::new();
            for host in &hosts {
                push_host_tick(&mut batch, host, NOW, &ids);
            }
            black_box(batch.len())
        });
    });
    group.finish();
}

fn query(c: &mut Criterion) {
    let store = store();
    let ids = ids();
    let hosts: Vec<String> = (0..64).map(|h| format!("n{h:04}")).collect();
    let day = 1440;
    for tick in 0..day {
        let mut batch = WriteBatch::new();
        for host in &hosts {
            batch.push(
                "hpc1",
                host,
                [LevelName::NONE; 2],
                "cpu_load",
                NOW - (day - tick) * 60,
                tick as f32,
            );
            for id in &ids[..8] {
                let level = [LevelName::new("hwthread", id), LevelName::NONE];
                batch.push(
                    "hpc1",
                    host,
                    level,
                    "cpu_user",
                    NOW - (day - tick) * 60,
                    1.0,
                );
            }
        }
        store.write(&batch, NOW);
    }
    let options = ReadOptions {
        from_s: NOW - day * 60,
        to_s: NOW,
        with_stats: true,
        with_data: true,
        with_padding: true,
        resampler: Resampler::default(),
    };
    let mut group = c.benchmark_group("store_query");
    group.bench_function("1_host_1_metric_24h", |b| {
        let query = Query {
            host: "n0000",
            metric: "cpu_load",
            ..Query::default()
        };
        b.iter(|| black_box(store.query("hpc1", &query, &options)));
    });
    group.bench_function("64_hosts_1_metric_24h", |b| {
        b.iter(|| {
            for host in &hosts {
                let query = Query {
                    host,
                    metric: "cpu_load",
                    ..Query::default()
                };
                black_box(store.query("hpc1", &query, &options));
            }
        });
    });
    for resolution in [0, 600] {
        group.bench_with_input(
            BenchmarkId::new("1_host_8_hwthreads_aggregated_24h", resolution),
            &resolution,
            |b, &resolution_s| {
                let query = Query {
                    host: "n0000",
                    metric: "cpu_user",
                    resolution_s,
                    ..Query::default()
                };
                b.iter(|| black_box(store.query("hpc1", &query, &options)));
            },
        );
    }
    group.finish();
}

/// One write that creates `n` new names on one host: type-ids under the host, or metrics
/// (issue 6, item 14). Throughput is per name, so linear work shows the same time per element
/// at 10 000 and 40 000; quadratic work showed 4× (children: 3 s vs 103 s in total before).
fn cardinality(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_new_names");
    group.sample_size(10);
    for n in [10_000usize, 40_000] {
        group.throughput(Throughput::Elements(n as u64));
        let names: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let fresh = || {
            let mut config = StoreConfig::auto(60);
            config.limits.metrics_max = n;
            config.limits.children_per_level_max = n;
            config.limits.series_per_host_max = n;
            Store::new(config)
        };
        let mut children = WriteBatch::new();
        let mut metrics = WriteBatch::new();
        for name in &names {
            let level = [LevelName::new("core", name), LevelName::NONE];
            children.push("c", "h", level, "m", NOW, 1.0);
            metrics.push("c", "h", [LevelName::NONE; 2], name, NOW, 1.0);
        }
        for (label, batch) in [("children", &children), ("metrics", &metrics)] {
            group.bench_with_input(BenchmarkId::new(label, n), batch, |b, batch| {
                b.iter_batched(
                    fresh,
                    |store| black_box(store.write(batch, NOW)),
                    criterion::BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

/// The store side of the Parquet archive (issue 8) on one host of the workload's shape
/// (340 series) holding one day at 60 s: copying it out series by series as the archiver
/// does, turning the samples back into an image and importing it, and the memory side of a
/// query that merges the archive (copy one metric, import it into a scratch store, query).
fn archive(c: &mut Criterion) {
    let store = store();
    let ids = ids();
    let day = 1440;
    let start = NOW - day * 60;
    for tick in 0..day {
        let mut batch = WriteBatch::new();
        push_host_tick(&mut batch, "n0000", start + tick * 60, &ids);
        store.write(&batch, NOW);
    }
    let names = store.series_names("hpc1", "n0000");
    let export = || {
        names
            .iter()
            .map(|(path, metric)| {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                let (f, samples) = store
                    .export_series("hpc1", "n0000", &path, metric, start, NOW)
                    .unwrap();
                (path, metric, f, samples)
            })
            .collect::<Vec<_>>()
    };
    let samples: usize = export().iter().map(|s| s.3.len()).sum();
    assert_eq!(samples, names.len() * day as usize);
    let mut group = c.benchmark_group("store_archive");
    group.throughput(Throughput::Elements(samples as u64));
    group.bench_function("export_series_1_host_340_series_24h", |b| {
        b.iter(|| {
            for (path, metric) in &names {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                black_box(store.export_series("hpc1", "n0000", &path, metric, start, NOW));
            }
        });
    });
    let exported = export();
    group.bench_function("samples_to_image_and_import_1_host_24h", |b| {
        b.iter_batched(
            || exported.clone(),
            |series| {
                let mut image = strata_store::HostImage::new("hpc1", "n0000");
                for (path, metric, f, samples) in series {
                    image.add_samples(&path, metric, f, samples);
                }
                let scratch = store.scratch();
                black_box(scratch.import_host(image));
                scratch
            },
            criterion::BatchSize::LargeInput,
        );
    });
    group.throughput(Throughput::Elements(ids.len() as u64 * day as u64));
    let options = ReadOptions {
        from_s: start,
        to_s: NOW,
        with_stats: true,
        with_data: true,
        with_padding: true,
        resampler: Resampler::default(),
    };
    let query = Query {
        host: "n0000",
        metric: "core_metric_0",
        kind: Some("hwthread"),
        kind_ids: &ids,
        aggregate: true,
        ..Query::default()
    };
    group.bench_function("query_64_hwthreads_aggregated_24h_memory", |b| {
        b.iter(|| black_box(store.query("hpc1", &query, &options)));
    });
    group.bench_function("query_64_hwthreads_aggregated_24h_scratch_merge", |b| {
        b.iter(|| {
            let scratch = store.scratch();
            let image = store.export_metric("hpc1", "n0000", "core_metric_0", start, NOW);
            scratch.import_host(image.unwrap());
            black_box(scratch.query("hpc1", &query, &options))
        });
    });
    group.finish();
}

criterion_group!(benches, write, query, cardinality, archive);
criterion_main!(benches);
