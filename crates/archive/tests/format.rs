//! The archive format and writer policy, read back with parquet's own reader and with
//! [`Archive`].

#![allow(clippy::expect_used, clippy::unwrap_used)]

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::statistics::Statistics;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use strata_archive::format::{self, WriterOptions, level_of, scope_of, stored_scope};
use strata_archive::{Archive, ArchivedSeries, Error, PeriodWriter};

const START: i64 = 1_700_000_000;
const END: i64 = START + 86_400;

/// Every row of a file as (hostname, metric, scope, scope_id, timestamp, frequency, value).
type Row = (String, String, String, String, i64, i64, f32);

fn rows(path: &Path) -> Vec<Row> {
    let file = File::open(path).expect("open");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("footer")
        .build()
        .expect("reader");
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let strings = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .expect("string column")
                .clone()
        };
        let int = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .expect("int64 column")
                .clone()
        };
        let (cluster, host, metric, scope, id) =
            (strings(0), strings(1), strings(2), strings(3), strings(4));
        let (times, frequencies) = (int(5), int(6));
        let values = batch
            .column(7)
            .as_any()
            .downcast_ref::<arrow_array::Float32Array>()
            .expect("float column")
            .clone();
        for i in 0..batch.num_rows() {
            assert_eq!(cluster.value(i), "fritz");
            rows.push((
                host.value(i).to_string(),
                metric.value(i).to_string(),
                scope.value(i).to_string(),
                id.value(i).to_string(),
                times.value(i),
                frequencies.value(i),
                values.value(i),
            ));
        }
    }
    rows
}

fn samples(count: i64, frequency: i64, value: impl Fn(i64) -> f32) -> Vec<(i64, f32)> {
    (0..count)
        .map(|i| (START + i * frequency, value(i)))
        .collect()
}

/// cc-metric-store's `parseScopeFromName`, case by case (COMPAT.md §6.7).
#[test]
fn scope_of_matches_ccms() {
    let table = [
        ("cpu3", ("hwthread", "3")),
        ("hwthread12", ("hwthread", "12")),
        ("memoryDomain1", ("memoryDomain", "1")),
        ("socket0", ("socket", "0")),
        ("core17", ("core", "17")),
        (
            "accelerator00000000:3b:00.0",
            ("accelerator", "00000000:3b:00.0"),
        ),
        // A prefix counts only when a digit follows it.
        ("socket", ("socket", "")),
        ("node", ("node", "")),
        ("network", ("network", "")),
        ("cpux", ("cpux", "")),
        ("core_a1", ("core_a1", "")),
        ("ib0", ("ib0", "")),
        ("", ("", "")),
    ];
    for (level, expected) in table {
        assert_eq!(scope_of(level), expected, "{level:?}");
    }
}

#[test]
fn level_of_inverts_scope_of() {
    assert_eq!(level_of("node", ""), None, "host level");
    for level in [
        "hwthread12",
        "memoryDomain1",
        "socket0",
        "accelerator00000000:3b:00.0",
        "network",
        "socket",
    ] {
        let (scope, id) = scope_of(level);
        assert_eq!(level_of(scope, id).as_deref(), Some(level));
    }
    // Lossy like cc-metric-store: `cpu3` is stored as hwthread 3.
    let (scope, id) = scope_of("cpu3");
    assert_eq!(level_of(scope, id).as_deref(), Some("hwthread3"));
    assert_eq!(level_of("node", "1").as_deref(), Some("node1"));
}

/// The stored scope of a series is its innermost level's, the host's is `node`; series order
/// follows it, not the level names.
#[test]
fn stored_scope_is_the_innermost_level() {
    assert_eq!(stored_scope(&[]), ("node", ""));
    assert_eq!(stored_scope(&["socket1", "cpu3"]), ("hwthread", "3"));
    assert_eq!(stored_scope(&["socket1"]), ("socket", "1"));
    let mut levels = vec![
        vec![],
        vec!["socket0"],
        vec!["accelerator0"],
        vec!["hwthread10"],
    ];
    levels.sort_by_key(|l| stored_scope(l));
    assert_eq!(
        levels,
        [
            vec!["accelerator0"],
            vec!["hwthread10"],
            vec![],
            vec!["socket0"]
        ]
    );
}

#[test]
fn writer_refuses_what_breaks_the_file_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = samples(3, 60, |i| i as f32);
    let mut writer = PeriodWriter::create(dir.path(), "fritz", START, END).expect("create");
    writer
        .add_series("h2", &[], "load", 60, &one)
        .expect("first series");
    let error = writer.add_series("h1", &[], "load", 60, &one);
    assert!(matches!(error, Err(Error::OutOfOrder { .. })), "{error:?}");
    // Same host, metric before the previous one.
    let error = writer.add_series("h2", &[], "aaa", 60, &one);
    assert!(matches!(error, Err(Error::OutOfOrder { .. })), "{error:?}");
    // Scope order is by the stored scope's bytes: the host level (`node`) is not first.
    let error = writer.add_series("h2", &["hwthread10"], "load", 60, &one);
    assert!(matches!(error, Err(Error::OutOfOrder { .. })), "{error:?}");
    writer
        .add_series("h2", &["socket0"], "load", 60, &one)
        .expect("socket after node");
    // hwthread10 < hwthread2 by bytes, and cpu10 is stored as hwthread 10.
    writer
        .add_series("h2", &["hwthread10"], "m2", 60, &one)
        .expect("hwthread10");
    writer
        .add_series("h2", &["hwthread2"], "m2", 60, &one)
        .expect("hwthread2");
    let error = writer.add_series("h2", &["cpu10"], "m2", 60, &one);
    assert!(matches!(error, Err(Error::OutOfOrder { .. })), "{error:?}");
    let backwards = [(START + 60, 1.0), (START, 2.0)];
    let error = writer.add_series("h3", &[], "load", 60, &backwards);
    assert!(
        matches!(error, Err(Error::TimestampsNotAscending { .. })),
        "{error:?}"
    );
    let late = [(END, 1.0)];
    let error = writer.add_series("h3", &[], "load", 60, &late);
    assert!(
        matches!(error, Err(Error::OutsidePeriod { .. })),
        "{error:?}"
    );
    let error = writer.add_series("h3", &["a", "b", "c"], "load", 60, &one);
    assert!(matches!(error, Err(Error::TooManyLevels(3))), "{error:?}");
    let error = writer.add_series("h3", &[], "load", 0, &one);
    assert!(
        matches!(error, Err(Error::InvalidFrequency(0))),
        "{error:?}"
    );
    assert!(dir.path().join("fritz/.1700000000.parquet.tmp").exists());
    assert!(
        !dir.path().join("fritz/1700000000.parquet").exists(),
        "nothing under the final name before finish"
    );
    drop(writer);
    let left: Vec<_> = std::fs::read_dir(dir.path().join("fritz"))
        .expect("cluster directory")
        .collect();
    assert!(
        left.is_empty(),
        "dropping the writer removes its temporary file: {left:?}"
    );
    assert!(matches!(
        PeriodWriter::create(dir.path(), "../x", START, END),
        Err(Error::InvalidCluster(_))
    ));
    assert!(matches!(
        PeriodWriter::create(dir.path(), "fritz", END, START),
        Err(Error::InvalidPeriod { .. })
    ));
}

#[test]
fn rows_are_sorted_and_nan_free() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut writer = PeriodWriter::create(dir.path(), "fritz", START, END).expect("create");
    let with_gaps = samples(10, 60, |i| if i % 3 == 0 { f32::NAN } else { i as f32 });
    writer
        .add_series("a1", &[], "cpu_load", 60, &with_gaps)
        .expect("series");
    for level in ["hwthread0", "hwthread1", "hwthread10", "hwthread2"] {
        writer
            .add_series("a1", &["socket0", level], "ipc", 60, &with_gaps)
            .expect("series");
    }
    let all_nan = samples(5, 60, |_| f32::NAN);
    writer
        .add_series("a2", &[], "cpu_load", 60, &all_nan)
        .expect("series");
    writer
        .add_series("b1", &[], "cpu_load", 10, &samples(3, 10, |i| i as f32))
        .expect("series");
    let summary = writer.finish().expect("finish");
    assert_eq!(summary.path, dir.path().join("fritz/1700000000.parquet"));
    assert_eq!(summary.rows, 5 * 6 + 3);
    assert_eq!(summary.series, 6, "the all-NaN series writes nothing");
    assert_eq!(
        std::fs::metadata(&summary.path).expect("file").len(),
        summary.bytes
    );
    let rows = rows(&summary.path);
    assert_eq!(rows.len() as u64, summary.rows);
    assert!(rows.iter().all(|row| !row.6.is_nan()));
    let key = |row: &Row| {
        (
            row.0.clone(),
            row.1.clone(),
            row.2.clone(),
            row.3.clone(),
            row.4,
        )
    };
    assert!(
        rows.windows(2).all(|pair| key(&pair[0]) < key(&pair[1])),
        "strictly sorted by (hostname, metric, scope, scope_id, timestamp)"
    );
    assert_eq!(rows[0].2, "node");
    assert_eq!((rows[6].2.as_str(), rows[6].3.as_str()), ("hwthread", "0"));
    assert!(rows.iter().any(|row| row.3 == "10"));
    assert_eq!(rows.last().map(|row| row.5), Some(10), "frequency column");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("fritz"))
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(left, ["1700000000.parquet"], "no temporary file left");
}

/// Two levels that store as the same (scope, scope_id) — `core3` below two sockets — become one
/// time-sorted series instead of breaking the order.
#[test]
fn series_with_the_same_stored_key_are_merged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut writer = PeriodWriter::create(dir.path(), "fritz", START, END).expect("create");
    let even = samples(4, 120, |i| i as f32);
    let odd: Vec<_> = samples(4, 120, |i| 10.0 + i as f32)
        .into_iter()
        .map(|(t, v)| (t + 60, v))
        .collect();
    writer
        .add_series("h", &["socket0", "core3"], "flops", 60, &even)
        .expect("first");
    writer
        .add_series("h", &["socket1", "core3"], "flops", 60, &odd)
        .expect("second, same key");
    let summary = writer.finish().expect("finish");
    assert_eq!((summary.rows, summary.series), (8, 1));
    let times: Vec<i64> = rows(&summary.path).iter().map(|row| row.4).collect();
    let expected: Vec<i64> = (0..8).map(|i| START + i * 60).collect();
    assert_eq!(times, expected);
}

#[test]
fn row_groups_follow_host_boundaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = WriterOptions {
        row_group_rows_min: 100,
        row_group_rows_max: 1000,
        page_rows: 16,
        ..WriterOptions::default()
    };
    let mut writer =
        PeriodWriter::create_with(dir.path(), "fritz", START, END, options).expect("create");
    // h0, h1: 150 rows each (a group each); h2..h4: 40 rows each (closed together once ≥ 100
    // at the next boundary); h5: 2500 rows, split by the hard cap.
    let sizes = [150, 150, 40, 40, 40, 2500];
    for (host, size) in sizes.iter().enumerate() {
        writer
            .add_series(
                &format!("h{host}"),
                &[],
                "m",
                1,
                &samples(*size, 1, |i| i as f32),
            )
            .expect("series");
    }
    let summary = writer.finish().expect("finish");
    let file = File::open(&summary.path).expect("open");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("footer");
    let groups: Vec<(String, String, i64)> = builder
        .metadata()
        .row_groups()
        .iter()
        .map(|group| {
            let Some(Statistics::ByteArray(hosts)) = group.column(1).statistics() else {
                panic!("hostname statistics");
            };
            let text = |v: Option<&parquet::data_type::ByteArray>| {
                String::from_utf8(v.expect("min/max").data().to_vec()).expect("utf8")
            };
            (
                text(hosts.min_opt()),
                text(hosts.max_opt()),
                group.num_rows(),
            )
        })
        .collect();
    let expected: Vec<(String, String, i64)> = [
        ("h0", "h0", 150),
        ("h1", "h1", 150),
        ("h2", "h4", 120),
        ("h5", "h5", 1000),
        ("h5", "h5", 1000),
        ("h5", "h5", 500),
    ]
    .iter()
    .map(|(a, b, n)| (a.to_string(), b.to_string(), *n))
    .collect();
    assert_eq!(groups, expected);
    assert_eq!(summary.row_groups, 6);
}

/// Values are dictionary-encoded while the dictionary stays small (quantised metrics) and fall
/// back to byte stream split when it grows past `VALUE_DICTIONARY_BYTES` (noisy floats), and
/// both read back exactly.
#[test]
fn values_use_a_small_dictionary_then_byte_stream_split() {
    use parquet::basic::Encoding;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = WriterOptions {
        row_group_rows_min: 100,
        ..WriterOptions::default()
    };
    let mut writer =
        PeriodWriter::create_with(dir.path(), "fritz", START, END, options).expect("create");
    let distinct = 2 * format::VALUE_DICTIONARY_BYTES as i64 / 4;
    let quantised = samples(40_000, 1, |i| (i % 50) as f32 * 0.25);
    let noisy = samples(distinct, 1, |i| (i as f32).sqrt() * 1.000_1);
    writer
        .add_series("h0", &[], "m", 1, &quantised)
        .expect("series");
    writer
        .add_series("h1", &[], "m", 1, &noisy)
        .expect("series");
    let summary = writer.finish().expect("finish");
    assert_eq!(summary.row_groups, 2);
    let file = File::open(&summary.path).expect("open");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("footer");
    let value_column = format::COLUMNS.len() - 1;
    let encodings: Vec<Vec<Encoding>> = builder
        .metadata()
        .row_groups()
        .iter()
        .map(|group| group.column(value_column).encodings().collect())
        .collect();
    assert!(
        !encodings[0].contains(&Encoding::BYTE_STREAM_SPLIT),
        "{encodings:?}"
    );
    assert!(
        encodings[0].contains(&Encoding::RLE_DICTIONARY),
        "{encodings:?}"
    );
    assert!(
        encodings[1].contains(&Encoding::BYTE_STREAM_SPLIT),
        "{encodings:?}"
    );
    let values: Vec<f32> = rows(&summary.path).iter().map(|row| row.6).collect();
    let written: Vec<f32> = quantised.iter().chain(&noisy).map(|s| s.1).collect();
    assert_eq!(values, written);
}

/// The archive directory and its parents are created when missing (and synced after the rename).
#[test]
fn missing_directories_are_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("a/b/archive");
    let mut writer = PeriodWriter::create(&nested, "fritz", START, END).expect("create");
    writer
        .add_series("h", &[], "m", 60, &[(START, 1.0)])
        .expect("series");
    let summary = writer.finish().expect("finish");
    assert_eq!(summary.path, nested.join("fritz/1700000000.parquet"));
    let result = Archive::open(&nested)
        .read("fritz", "h", "m", START, END)
        .expect("read");
    assert_eq!(result.series[0].samples, [(START, 1.0)]);
}

#[test]
fn an_empty_period_still_gets_a_file_and_newest_s_sees_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(dir.path());
    assert_eq!(archive.newest_s("fritz").expect("listing"), None);
    let summary = PeriodWriter::create(dir.path(), "fritz", START, END)
        .expect("create")
        .finish()
        .expect("finish");
    assert_eq!(summary.rows, 0);
    assert_eq!(archive.newest_s("fritz").expect("listing"), Some(END));
    let mut writer = PeriodWriter::create(dir.path(), "fritz", END, END + 3600).expect("create");
    writer
        .add_series("h", &[], "m", 60, &[(END + 60, 1.0)])
        .expect("series");
    writer.finish().expect("finish");
    assert_eq!(
        archive.newest_s("fritz").expect("listing"),
        Some(END + 3600)
    );
    assert_eq!(archive.newest_s("other").expect("listing"), None);
    let result = archive.read("fritz", "h", "m", 0, i64::MAX).expect("read");
    assert_eq!(
        result.series,
        [ArchivedSeries {
            levels: vec![],
            frequency_s: 60,
            samples: vec![(END + 60, 1.0)],
        }]
    );
    assert!(result.skipped.is_empty());
}

/// One generated series: host index, level (None = host level), metric index, samples.
#[derive(Debug, Clone)]
struct Generated {
    host: usize,
    level: Option<String>,
    metric: usize,
    frequency: i64,
    samples: Vec<(i64, f32)>,
}

fn generated() -> impl Strategy<Value = Vec<Generated>> {
    let level = prop_oneof![
        Just(None),
        (0usize..12).prop_map(|i| Some(format!("hwthread{i}"))),
        (0usize..2).prop_map(|i| Some(format!("socket{i}"))),
        Just(Some("network".to_string())),
    ];
    let series = (
        0usize..4,
        level,
        0usize..3,
        prop_oneof![Just(10i64), Just(60)],
    )
        .prop_flat_map(|(host, level, metric, frequency)| {
            let values =
                prop::collection::vec(prop_oneof![4 => -1e6f32..1e6, 1 => Just(f32::NAN)], 0..200);
            (
                Just(host),
                Just(level),
                Just(metric),
                Just(frequency),
                0i64..100,
                values,
            )
        })
        .prop_map(
            |(host, level, metric, frequency, offset, values)| Generated {
                host,
                level,
                metric,
                frequency,
                samples: values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (START + (offset + i as i64) * frequency, v))
                    .collect(),
            },
        );
    prop::collection::vec(series, 0..25)
}

/// Per (host, metric): per level names, (frequency, samples).
type Expected = BTreeMap<(String, String), BTreeMap<Vec<String>, (i64, Vec<(i64, f32)>)>>;

/// Writes the generated series in file order (one per stored key: duplicates dropped) and
/// returns what a read of each (host, metric) must give.
fn write_sorted(directory: &Path, series: &[Generated], options: WriterOptions) -> Expected {
    let mut by_key = BTreeMap::new();
    for s in series {
        let host = format!("host{}", s.host);
        let metric = format!("metric{}", s.metric);
        let (scope, id) = s.level.as_deref().map_or(("node", ""), scope_of);
        by_key
            .entry((host, metric, scope.to_string(), id.to_string()))
            .or_insert(s.clone());
    }
    let mut writer =
        PeriodWriter::create_with(directory, "fritz", START, END, options).expect("create");
    let mut expected = Expected::new();
    for ((host, metric, scope, id), s) in &by_key {
        let levels: Vec<&str> = s.level.iter().map(String::as_str).collect();
        writer
            .add_series(host, &levels, metric, s.frequency, &s.samples)
            .expect("sorted input");
        let present: Vec<_> = s
            .samples
            .iter()
            .copied()
            .filter(|(_, v)| !v.is_nan())
            .collect();
        if !present.is_empty() {
            expected
                .entry((host.clone(), metric.clone()))
                .or_default()
                .insert(
                    level_of(scope, id).into_iter().collect(),
                    (s.frequency, present),
                );
        }
    }
    writer.finish().expect("finish");
    expected
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever is written reads back exactly, for any time range, with pages and row groups
    /// small enough that statistics and the page index prune.
    #[test]
    fn read_back_equals_written(
        series in generated(),
        from in 0i64..4000,
        length in 0i64..4000,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = WriterOptions {
            row_group_rows_min: 64,
            row_group_rows_max: 300,
            page_rows: 8,
            ..WriterOptions::default()
        };
        let expected = write_sorted(dir.path(), &series, options);
        let archive = Archive::open(dir.path());
        let (from_s, to_s) = (START + from, START + from + length);
        for host in 0..4 {
            for metric in 0..3 {
                let (host, metric) = (format!("host{host}"), format!("metric{metric}"));
                let result = archive.read("fritz", &host, &metric, from_s, to_s).expect("read");
                prop_assert!(result.skipped.is_empty(), "{:?}", result.skipped);
                let want: Vec<ArchivedSeries> = expected
                    .get(&(host.clone(), metric.clone()))
                    .into_iter()
                    .flatten()
                    .filter_map(|(levels, (frequency_s, samples))| {
                        let samples: Vec<_> = samples
                            .iter()
                            .copied()
                            .filter(|(t, _)| (from_s..to_s).contains(t))
                            .collect();
                        (!samples.is_empty()).then(|| ArchivedSeries {
                            levels: levels.clone(),
                            frequency_s: *frequency_s,
                            samples,
                        })
                    })
                    .collect();
                prop_assert_eq!(result.series, want, "{} {} [{}, {})", host, metric, from_s, to_s);
            }
        }
    }
}

#[test]
fn format_constants_are_consistent() {
    assert_eq!(format::schema().fields().len(), format::COLUMNS.len());
    for (field, name) in format::schema().fields().iter().zip(format::COLUMNS) {
        assert_eq!(field.name(), name);
        assert!(!field.is_nullable());
    }
}
