//! The reader's bounds: the footer cache (bounded, never serving a footer of a rewritten file)
//! and the samples one read may return.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use strata_archive::{Archive, PeriodWriter};

const START: i64 = 1_700_000_000;
const DAY: i64 = 86_400;

fn write_period(directory: &Path, start: i64, value: f32) {
    let mut writer = PeriodWriter::create(directory, "fritz", start, start + DAY).expect("create");
    let samples: Vec<(i64, f32)> = (0..50).map(|i| (start + i * 60, value)).collect();
    writer
        .add_series("h", &[], "m", 60, &samples)
        .expect("series");
    writer.finish().expect("finish");
}

/// A period rewritten under the same name (same size: only the values differ) is read anew:
/// the cache key includes the modification time.
#[test]
fn a_rewritten_file_is_not_served_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_period(dir.path(), START, 2.0);
    let archive = Archive::open(dir.path());
    let first = archive.read("fritz", "h", "m", 0, i64::MAX).expect("read");
    assert_eq!(first.series[0].samples[0].1, 2.0);
    assert!(archive.footer_cache_bytes() > 0);
    let path = dir.path().join(format!("fritz/{START}.parquet"));
    let size = std::fs::metadata(&path).expect("file").len();
    // Make sure the modification time moves even on a coarse clock.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_period(dir.path(), START, 8.0);
    assert_eq!(std::fs::metadata(&path).expect("file").len(), size);
    let second = archive.read("fritz", "h", "m", 0, i64::MAX).expect("read");
    assert_eq!(second.series[0].samples[0].1, 8.0);
}

/// With a bound smaller than two footers, reads over many files stay correct and the cache
/// never holds more than the bound; with 0 nothing is cached.
#[test]
fn the_footer_cache_stays_within_its_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    for day in 0..6 {
        write_period(dir.path(), START + day * DAY, day as f32);
    }
    let probe = Archive::open(dir.path());
    probe
        .read("fritz", "h", "m", START, START + DAY)
        .expect("read");
    let one = probe.footer_cache_bytes();
    assert!(one > 0);
    for bound in [0, one + one / 2] {
        let archive = Archive::open(dir.path()).with_footer_cache_bytes(bound);
        for _ in 0..2 {
            let result = archive.read("fritz", "h", "m", 0, i64::MAX).expect("read");
            assert_eq!(result.series.len(), 1);
            let samples = &result.series[0].samples;
            assert_eq!(samples.len(), 6 * 50);
            assert_eq!(samples.last().map(|s| s.1), Some(5.0));
            assert!(archive.footer_cache_bytes() <= bound, "{bound}");
        }
        assert_eq!(archive.footer_cache_bytes() == 0, bound == 0);
    }
}

/// A read that would return more samples than the bound fails with `TooManySamples` instead of
/// holding them; a read within the bound answers.
#[test]
fn reads_past_the_sample_bound_fail_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    for day in 0..3 {
        write_period(dir.path(), START + day * DAY, 1.0);
    }
    let archive = Archive::open(dir.path()).with_read_samples_max(120);
    let one_day = archive
        .read("fritz", "h", "m", START, START + DAY)
        .expect("50 samples");
    assert_eq!(one_day.series[0].samples.len(), 50);
    let error = archive.read("fritz", "h", "m", 0, i64::MAX);
    assert!(
        matches!(
            error,
            Err(strata_archive::Error::TooManySamples { limit: 120 })
        ),
        "{error:?}"
    );
    // Within one file, too.
    let archive = Archive::open(dir.path()).with_read_samples_max(10);
    let error = archive.read("fritz", "h", "m", START, START + DAY);
    assert!(
        matches!(
            error,
            Err(strata_archive::Error::TooManySamples { limit: 10 })
        ),
        "{error:?}"
    );
}
