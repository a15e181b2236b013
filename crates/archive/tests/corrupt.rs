//! Damaged files are named in `skipped`, never a panic, and the other files still answer.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use strata_archive::{Archive, ArchivedSeries, PeriodWriter};

const START: i64 = 1_700_000_000;
const DAY: i64 = 86_400;

/// A valid file for the period starting at `start`: host `h`, metric `m`, 100 samples.
fn write_period(directory: &Path, start: i64) -> Vec<u8> {
    let mut writer = PeriodWriter::create(directory, "fritz", start, start + DAY).expect("create");
    let samples: Vec<(i64, f32)> = (0..100).map(|i| (start + i * 60, i as f32)).collect();
    writer
        .add_series("h", &[], "m", 60, &samples)
        .expect("series");
    let summary = writer.finish().expect("finish");
    fs::read(summary.path).expect("read back")
}

#[test]
fn truncated_and_garbage_files_are_named_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write_period(dir.path(), START);
    let cluster = dir.path().join("fritz");
    // Each damaged file claims a later period, so it would overlap the read below.
    let damaged: [(&str, Vec<u8>); 5] = [
        ("1700086400.parquet", good[..good.len() / 2].to_vec()),
        (
            "1700172800.parquet",
            (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("1700259200.parquet", Vec::new()),
        ("1700345600.parquet", {
            // Footer length pointing before the start of the file.
            let mut bytes = good.clone();
            let at = bytes.len() - 8;
            bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            bytes
        }),
        ("1700432000.parquet", {
            // Magic intact, footer garbage.
            let mut bytes = good.clone();
            let at = bytes.len() - 8;
            let length =
                u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
            for byte in &mut bytes[at - length..at] {
                *byte = 0xA5;
            }
            bytes
        }),
    ];
    for (name, bytes) in &damaged {
        fs::write(cluster.join(name), bytes).expect("write damaged file");
    }
    let archive = Archive::open(dir.path());
    for _ in 0..2 {
        // Twice: the second read goes through the caches.
        let result = archive.read("fritz", "h", "m", 0, i64::MAX).expect("read");
        assert_eq!(
            result.series,
            [ArchivedSeries {
                levels: vec![],
                frequency_s: 60,
                samples: (0..100).map(|i| (START + i * 60, i as f32)).collect(),
            }]
        );
        let mut names: Vec<&str> = result.skipped.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        let mut want: Vec<&str> = damaged.iter().map(|(name, _)| *name).collect();
        want.sort();
        assert_eq!(names, want, "{:?}", result.skipped);
        assert!(result.skipped.iter().all(|s| !s.reason.is_empty()));
    }
    assert_eq!(
        archive.newest_s("fritz").expect("listing"),
        Some(START + DAY),
        "damaged files add nothing"
    );
    // A pass must not guess: the newest numbered file is unreadable.
    let error = archive
        .archived_end("fritz")
        .expect_err("unreadable newest file");
    assert!(error.to_string().contains("1700432000.parquet"), "{error}");
}

// Goal: a pass starts after the newest period file, whatever lies beside it: files of other
// names are not looked at (not even read), a newer numbered file without a period (a
// cc-metric-store file) is passed over, older damaged files below it are never read.
#[test]
fn archived_end_is_the_newest_period_and_ignores_foreign_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = dir.path().join("fritz");
    let good = write_period(dir.path(), START);
    write_period(dir.path(), START + DAY);
    fs::write(cluster.join("1600000000.parquet"), b"damaged, but older").expect("write");
    fs::write(cluster.join("notes.parquet"), b"not an archive file").expect("write");
    let archive = Archive::open(dir.path());
    assert_eq!(
        archive.archived_end("fritz").expect("end"),
        Some(START + 2 * DAY)
    );
    // A newer file without period metadata: rewrite the newest as plain Parquet rows.
    let plain = {
        use parquet::arrow::ArrowWriter;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(good))
            .expect("footer")
            .build()
            .expect("reader");
        let mut out = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut out, strata_archive::format::schema(), None).expect("w");
        for batch in reader {
            writer.write(&batch.expect("batch")).expect("write");
        }
        writer.close().expect("close");
        out
    };
    fs::write(cluster.join("1800000000.parquet"), plain).expect("write");
    let archive = Archive::open(dir.path());
    assert_eq!(
        archive.archived_end("fritz").expect("end"),
        Some(START + 2 * DAY),
        "a file without a period is no period of Strata's"
    );
    assert_eq!(archive.archived_end("empty").expect("end"), None);
}

/// A file whose data pages are overwritten (footer intact) fails while decoding; it is skipped
/// and the other file answers.
#[test]
fn a_file_with_garbage_pages_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_period(dir.path(), START);
    let mut bad = write_period(dir.path(), START + DAY);
    // Everything between the leading magic and the first page header... and well into the
    // pages: the first half of the file after "PAR1".
    let half = bad.len() / 2;
    for byte in &mut bad[4..half] {
        *byte = 0xA5;
    }
    let name = format!("{}.parquet", START + DAY);
    fs::write(dir.path().join("fritz").join(&name), &bad).expect("damage");
    let result = Archive::open(dir.path())
        .read("fritz", "h", "m", 0, i64::MAX)
        .expect("read");
    assert_eq!(result.series.len(), 1);
    assert_eq!(result.series[0].samples.len(), 100);
    assert_eq!(result.series[0].samples[0].0, START);
    assert_eq!(
        result
            .skipped
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        [name.as_str()]
    );
}

#[test]
fn a_missing_cluster_is_empty_and_a_bad_name_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(dir.path());
    let result = archive
        .read("nowhere", "h", "m", 0, i64::MAX)
        .expect("read");
    assert!(result.series.is_empty() && result.skipped.is_empty());
    assert!(archive.read("..", "h", "m", 0, i64::MAX).is_err());
    assert!(archive.read("a/b", "h", "m", 0, i64::MAX).is_err());
}
