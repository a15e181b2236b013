//! A generated day of a small cluster, shared by the write and read benchmarks.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;
use std::hint::black_box;
use std::path::Path;
use strata_archive::{Archive, FileSummary, PeriodWriter};

/// 2023-11-14 00:00 UTC, a day boundary.
pub const START: i64 = 1_699_920_000;
pub const DAY: i64 = 86_400;
pub const FREQUENCY: i64 = 60;
pub const HOSTS: usize = 8;
pub const NODE_METRICS: [&str; 5] = [
    "cpu_load",
    "mem_used",
    "net_bytes_in",
    "net_bytes_out",
    "nfs4_read",
];
pub const THREAD_METRICS: [&str; 5] = ["clock", "cpu_user", "flops_any", "ipc", "mem_bw"];
pub const THREADS: usize = 16;

pub fn host(index: usize) -> String {
    format!("f{index:04}")
}

/// Writes the day in file order; values are a noisy sine so compression sees realistic floats.
pub fn write_day(directory: &Path) -> FileSummary {
    let mut writer = PeriodWriter::create(directory, "fritz", START, START + DAY).expect("create");
    let mut levels: Vec<String> = (0..THREADS).map(|t| format!("hwthread{t}")).collect();
    levels.sort();
    let mut metrics: Vec<(&str, bool)> = NODE_METRICS
        .iter()
        .map(|m| (*m, false))
        .chain(THREAD_METRICS.iter().map(|m| (*m, true)))
        .collect();
    metrics.sort();
    let mut samples = Vec::with_capacity((DAY / FREQUENCY) as usize);
    for h in 0..HOSTS {
        let host = host(h);
        for (m, (metric, per_thread)) in metrics.iter().enumerate() {
            let series: Vec<Option<&str>> = if *per_thread {
                levels.iter().map(|l| Some(l.as_str())).collect()
            } else {
                vec![None]
            };
            for (s, level) in series.iter().enumerate() {
                samples.clear();
                let mut noise = (h * 7919 + m * 104_729 + s * 1_299_709) as u32 | 1;
                for i in 0..DAY / FREQUENCY {
                    noise ^= noise << 13;
                    noise ^= noise >> 17;
                    noise ^= noise << 5;
                    let jitter = (noise % 1000) as f32 / 1000.0;
                    let value = 50.0 + 40.0 * ((i as f32) / 90.0).sin() + jitter;
                    samples.push((START + i * FREQUENCY, value));
                }
                let levels: Vec<&str> = level.iter().copied().collect();
                writer
                    .add_series(&host, &levels, metric, FREQUENCY, &samples)
                    .expect("series");
            }
        }
    }
    writer.finish().expect("finish")
}

/// The reads both read benches time over the day of [`write_day`]: one host's node metric,
/// and one host's hwthread metric ([`THREADS`] series).
#[allow(dead_code)] // (the write bench reads nothing)
pub fn bench_day_reads(group: &mut BenchmarkGroup<'_, WallTime>, archive: &Archive) {
    let (from_s, to_s) = (START, START + DAY);
    let host = host(HOSTS / 2);
    for (name, metric, series) in [
        ("one_host_node_metric_day", "cpu_load", 1),
        ("one_host_hwthread_metric_day", "ipc", THREADS),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let result = archive
                    .read("fritz", black_box(&host), metric, from_s, to_s)
                    .expect("read");
                assert_eq!(result.series.len(), series);
                result
            })
        });
    }
}
