//! The reader touches only the pages the page index admits: pages it must skip are overwritten
//! with garbage, and reads that need none of them still succeed, while a read that needs them
//! fails for that file (so the damage is real and the success is not vacuous).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::PageIndexPolicy;
use std::fs::{self, File};
use strata_archive::format::WriterOptions;
use strata_archive::{Archive, PeriodWriter};

const START: i64 = 1_700_000_000;
const ROWS: i64 = 200;

#[test]
fn pages_outside_the_request_are_never_decoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One row group holding both hosts, pages of 8 rows.
    let options = WriterOptions {
        page_rows: 8,
        ..WriterOptions::default()
    };
    let mut writer = PeriodWriter::create_with(dir.path(), "fritz", START, START + 86_400, options)
        .expect("create");
    let samples: Vec<(i64, f32)> = (0..ROWS).map(|i| (START + i * 60, i as f32)).collect();
    for host in ["a", "b"] {
        writer
            .add_series(host, &[], "m", 60, &samples)
            .expect("series");
    }
    let path = writer.finish().expect("finish").path;

    let metadata = ArrowReaderMetadata::load(
        &File::open(&path).expect("open"),
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
    )
    .expect("footer");
    let parquet = metadata.metadata();
    assert_eq!(parquet.num_row_groups(), 1);
    let total = usize::try_from(parquet.row_group(0).num_rows()).expect("rows");
    assert_eq!(total, 2 * ROWS as usize);
    // Rows to protect: host "a"'s first 100 samples. Every data page lying entirely outside
    // them (the rest of "a", all of "b") is destroyed, in every column.
    let kept = 0..100usize;
    let index = parquet.page_index_for_row_group(0);
    let mut bytes = fs::read(&path).expect("read");
    let mut destroyed = 0;
    for column in 0..8 {
        let locations = index.page_locations(column).expect("offset index");
        for (page, location) in locations.iter().enumerate() {
            let first = usize::try_from(location.first_row_index).expect("row");
            let end = locations.get(page + 1).map_or(total, |next| {
                usize::try_from(next.first_row_index).expect("row")
            });
            if end <= kept.start || first >= kept.end {
                let offset = usize::try_from(location.offset).expect("offset");
                let size = usize::try_from(location.compressed_page_size).expect("size");
                bytes[offset..offset + size].fill(0xA5);
                destroyed += 1;
            }
        }
    }
    assert!(destroyed > 8 * 10, "most pages destroyed: {destroyed}");
    fs::write(&path, &bytes).expect("damage");

    let archive = Archive::open(dir.path());
    // Needs only host "a" before sample 90: every page it reads is intact.
    let result = archive
        .read("fritz", "a", "m", START, START + 90 * 60)
        .expect("read");
    assert!(result.skipped.is_empty(), "{:?}", result.skipped);
    assert_eq!(result.series.len(), 1);
    assert_eq!(result.series[0].samples, samples[..90]);
    // A host whose pages are gone, and host "a" past the kept rows: the file is skipped.
    for (host, from_s) in [("b", START), ("a", START + 150 * 60)] {
        let result = archive
            .read("fritz", host, "m", from_s, START + 86_400)
            .expect("read");
        assert!(result.series.is_empty(), "{host}: {:?}", result.series);
        assert_eq!(result.skipped.len(), 1, "{host}: the damage is real");
    }
}
