//! Files cc-metric-store wrote read correctly: tests/fixtures/ccms/fritz/1700006400.parquet was
//! made by tests/make_ccms_fixture.py (pyarrow) the way cc-metric-store v1.5.4 writes them —
//! unsorted rows, one row group per host, no statistics, no page index, zstd, named after the
//! cleanup cutoff with data on both sides of it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use strata_archive::format::{scope_of, stored_scope};
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
        archive.newest_s("fritz").expect("listing"),
        Some(FIRST + (SAMPLES - 1) * FREQUENCY + 1)
    );
    // A pass never counts it as a period of its own.
    assert_eq!(archive.archived_end("fritz").expect("end"), None);
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
                let levels: Vec<&str> = s.levels.iter().map(String::as_str).collect();
                let (scope, id) = stored_scope(&levels);
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

/// One row as cc-metric-store writes it (host, metric, scope, scope_id, timestamp, value).
type ForeignRow = (String, String, String, String, i64, f32);

/// Per (host, metric): per level names, the samples a read must return.
type Expected = BTreeMap<(String, String), BTreeMap<Vec<String>, Vec<(i64, f32)>>>;

/// Writes rows the way cc-metric-store does: in the given (unsorted) order, one row group per
/// host in first-seen order, no statistics, no page index, zstd.
fn write_foreign(path: &Path, rows: &[ForeignRow]) {
    use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_writer::ArrowWriterOptions;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use std::sync::Arc;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::None)
        .set_offset_index_disabled(true)
        .build();
    let options = ArrowWriterOptions::new()
        .with_properties(properties)
        .with_skip_arrow_metadata(true);
    let file = std::fs::File::create(path).expect("create");
    let schema = strata_archive::format::schema();
    let mut writer =
        ArrowWriter::try_new_with_options(file, schema.clone(), options).expect("writer");
    let mut hosts: Vec<&str> = Vec::new();
    for row in rows {
        if !hosts.contains(&row.0.as_str()) {
            hosts.push(&row.0);
        }
    }
    for host in hosts {
        let mine: Vec<&ForeignRow> = rows.iter().filter(|r| r.0 == host).collect();
        let strings = |f: fn(&ForeignRow) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(mine.iter().map(|r| f(r))))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(mine.iter().map(|_| "fritz"))),
            strings(|r| &r.0),
            strings(|r| &r.1),
            strings(|r| &r.2),
            strings(|r| &r.3),
            Arc::new(Int64Array::from_iter_values(mine.iter().map(|r| r.4))),
            Arc::new(Int64Array::from_iter_values(mine.iter().map(|_| FREQUENCY))),
            Arc::new(Float32Array::from_iter_values(mine.iter().map(|r| r.5))),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
        writer.write(&batch).expect("write");
        writer.flush().expect("row group per host");
    }
    writer.close().expect("close");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// Random series spread over up to three unsorted, statistics-free files (named like
    /// cc-metric-store's, by cutoff) read back exactly, for any time range.
    #[test]
    fn unsorted_files_without_statistics_read_back(
        series in proptest::collection::vec(
            (0usize..3, 0usize..2, proptest::option::of(0usize..12),
             proptest::collection::vec((0usize..3, -1e6f32..1e6), 1..60)),
            1..12,
        ),
        order_seed in 0u64..1000,
        from in 0i64..4000,
        length in 0i64..4000,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("fritz")).expect("cluster directory");
        let mut files: Vec<Vec<ForeignRow>> = vec![Vec::new(); 3];
        // expected[(host, metric)][levels] = samples; the first series of a key wins.
        let mut expected = Expected::default();
        for (host, metric, thread, samples) in &series {
            let host = format!("h{host}");
            let metric = format!("m{metric}");
            let level = thread.map(|t| format!("hwthread{t}"));
            let levels: Vec<String> = level.iter().cloned().collect();
            let slot = expected.entry((host.clone(), metric.clone())).or_default();
            if slot.contains_key(&levels) {
                continue;
            }
            let (scope, id) = level.as_deref().map_or(("node", ""), scope_of);
            let mut kept = Vec::new();
            for (i, (file, value)) in samples.iter().enumerate() {
                let t = FIRST + i as i64 * FREQUENCY;
                files[*file].push((host.clone(), metric.clone(), scope.to_string(), id.to_string(), t, *value));
                if (FIRST + from..FIRST + from + length).contains(&t) {
                    kept.push((t, *value));
                }
            }
            slot.insert(levels, kept);
        }
        for (index, rows) in files.iter_mut().enumerate() {
            if rows.is_empty() {
                continue;
            }
            // A fixed pseudo-random permutation: rows in no particular order.
            let mut state = order_seed;
            for i in (1..rows.len()).rev() {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                rows.swap(i, (state >> 33) as usize % (i + 1));
            }
            let name = format!("{}.parquet", CUTOFF + index as i64 * 3600);
            write_foreign(&dir.path().join("fritz").join(name), rows);
        }
        let archive = Archive::open(dir.path());
        for ((host, metric), levels) in &expected {
            let result = archive
                .read("fritz", host, metric, FIRST + from, FIRST + from + length)
                .expect("read");
            proptest::prop_assert!(result.skipped.is_empty(), "{:?}", result.skipped);
            let want: Vec<ArchivedSeries> = levels
                .iter()
                .filter(|(_, samples)| !samples.is_empty())
                .map(|(levels, samples)| ArchivedSeries {
                    levels: levels.clone(),
                    frequency_s: FREQUENCY,
                    samples: samples.clone(),
                })
                .collect();
            proptest::prop_assert_eq!(result.series, want, "{} {}", host, metric);
        }
    }
}

// Goal: an archive rewritten by another tool reads too: pyarrow, Spark and DuckDB write
// snappy by default, some gzip (found by the hostile test: such files were skipped).
#[test]
fn files_other_tools_compressed_read_too() {
    use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, GzipLevel};
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = dir.path().join("fritz");
    std::fs::create_dir_all(&cluster).expect("mkdir");
    let rows = 100i64;
    let strings = |value: &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            value,
            rows as usize,
        )))
    };
    let batch = RecordBatch::try_new(
        strata_archive::format::schema(),
        vec![
            strings("fritz"),
            strings("h"),
            strings("m"),
            strings("node"),
            strings(""),
            Arc::new(Int64Array::from_iter_values(
                (0..rows).map(|i| FIRST + i * 60),
            )),
            Arc::new(Int64Array::from_iter_values((0..rows).map(|_| 60))),
            Arc::new(Float32Array::from_iter_values((0..rows).map(|i| i as f32))),
        ],
    )
    .expect("batch");
    let compressions = [Compression::SNAPPY, Compression::GZIP(GzipLevel::default())];
    for (index, compression) in compressions.into_iter().enumerate() {
        let path = cluster.join(format!("{}.parquet", CUTOFF + index as i64));
        let file = std::fs::File::create(&path).expect("create");
        let properties = WriterProperties::builder()
            .set_compression(compression)
            .build();
        let mut writer =
            ArrowWriter::try_new(file, batch.schema(), Some(properties)).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        let archive = Archive::open(dir.path());
        let read = archive.read("fritz", "h", "m", 0, i64::MAX).expect("read");
        assert!(
            read.skipped.is_empty(),
            "{compression:?}: {:?}",
            read.skipped
        );
        let samples = &read.series[0].samples;
        assert_eq!(samples.len(), rows as usize, "{compression:?}");
        std::fs::remove_file(&path).expect("remove");
    }
}
