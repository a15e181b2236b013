//! Files cc-metric-store wrote read correctly: tests/fixtures/ccms/fritz/1700006400.parquet was
//! made by tests/make_ccms_fixture.py (pyarrow) the way cc-metric-store v1.5.4 writes them —
//! unsorted rows, one row group per host, no statistics, no page index, zstd, named after the
//! cleanup cutoff with data on both sides of it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use strata_archive::format::scope_of;
use strata_archive::{Archive, ArchivedSeries, PeriodWriter, ReadResult};

// Mirrors make_ccms_fixture.py.
const CUTOFF: i64 = 1_700_006_400;
const FIRST: i64 = CUTOFF - 7200;
const SAMPLES: i64 = 180;
const FREQUENCY: i64 = 60;
const HOSTS: [&str; 3] = ["f0102", "f0010", "f0101"];
const METRICS: [&str; 2] = ["mem_used", "cpu_load"];
const CHILDREN: [&str; 4] = [
    "hwthread0",
    "hwthread10",
    "hwthread2",
    "accelerator00000000:3b:00.0",
];

fn value(host: usize, metric: usize, child: usize, i: i64) -> f32 {
    (host * 1000 + metric * 100 + child * 10) as f32 + (i % 7) as f32 + 0.5
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ccms")
}

/// The series the fixture holds for (host, metric) within [from, to), levels as read back.
fn expected(host: usize, metric: usize, from_s: i64, to_s: i64) -> Vec<ArchivedSeries> {
    let mut levels: Vec<(Vec<String>, usize)> = vec![(vec![], 0)];
    if METRICS[metric] == "cpu_load" {
        levels.extend(
            CHILDREN
                .iter()
                .enumerate()
                .map(|(c, name)| (vec![name.to_string()], c + 1)),
        );
    }
    levels.sort();
    levels
        .into_iter()
        .map(|(levels, child)| ArchivedSeries {
            levels,
            frequency_s: FREQUENCY,
            samples: (0..SAMPLES)
                .map(|i| (FIRST + i * FREQUENCY, value(host, metric, child, i)))
                .filter(|(t, _)| (from_s..to_s).contains(t))
                .collect(),
        })
        .collect()
}

#[test]
fn reads_unsorted_ccms_file() {
    let archive = Archive::open(&fixture());
    // Both sides of the cutoff the file is named after.
    let (from_s, to_s) = (CUTOFF - 3600, CUTOFF + 1800);
    for (h, host) in HOSTS.iter().enumerate() {
        for (m, metric) in METRICS.iter().enumerate() {
            let result = archive
                .read("fritz", host, metric, from_s, to_s)
                .expect("read");
            assert_eq!(
                result,
                ReadResult {
                    series: expected(h, m, from_s, to_s),
                    skipped: vec![],
                },
                "{host} {metric}"
            );
        }
    }
    // Outside the file's data, and an unknown host: nothing.
    let before = archive
        .read("fritz", "f0010", "cpu_load", 0, FIRST)
        .expect("read");
    assert_eq!(before, ReadResult::default());
    let unknown = archive
        .read("fritz", "f9999", "cpu_load", 0, i64::MAX)
        .expect("read");
    assert_eq!(unknown, ReadResult::default());
    // The file has no period metadata: its end is its newest timestamp + 1.
    assert_eq!(
        archive.newest_s("fritz"),
        Some(FIRST + (SAMPLES - 1) * FREQUENCY + 1)
    );
}

/// The same samples written by Strata (sorted, statistics, page index) read back identically.
#[test]
fn a_strata_file_of_the_same_data_reads_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut writer =
        PeriodWriter::create(dir.path(), "fritz", FIRST, FIRST + 86_400).expect("create");
    let mut hosts: Vec<(usize, &str)> = HOSTS.iter().copied().enumerate().collect();
    hosts.sort_by_key(|(_, name)| *name);
    let mut metrics: Vec<(usize, &str)> = METRICS.iter().copied().enumerate().collect();
    metrics.sort_by_key(|(_, name)| *name);
    for (h, host) in &hosts {
        for (m, metric) in &metrics {
            // File order is by stored (scope, scope_id): the host level (`node`) sorts between
            // `accelerator` and `socket`, not first.
            let mut series = expected(*h, *m, i64::MIN, i64::MAX);
            series.sort_by_key(|s| {
                let (scope, id) = s.levels.last().map_or(("node", ""), |l| scope_of(l));
                (scope.to_string(), id.to_string())
            });
            for series in series {
                let levels: Vec<&str> = series.levels.iter().map(String::as_str).collect();
                writer
                    .add_series(host, &levels, metric, series.frequency_s, &series.samples)
                    .expect("series");
            }
        }
    }
    writer.finish().expect("finish");
    let strata = Archive::open(dir.path());
    let ccms = Archive::open(&fixture());
    for host in HOSTS {
        for metric in METRICS {
            for (from_s, to_s) in [
                (CUTOFF - 3600, CUTOFF + 1800),
                (0, i64::MAX),
                (CUTOFF, CUTOFF + 1),
            ] {
                assert_eq!(
                    strata
                        .read("fritz", host, metric, from_s, to_s)
                        .expect("strata"),
                    ccms.read("fritz", host, metric, from_s, to_s)
                        .expect("ccms"),
                    "{host} {metric} [{from_s}, {to_s})"
                );
            }
        }
    }
}
