//! The writer streams: its memory does not grow with the size of a host (or a period), it
//! stays at the open row group plus the column encoders' current pages plus one series.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use strata_archive::format::{self, WriterOptions};
use strata_archive::{FileSummary, PeriodWriter};

const START: i64 = 1_700_000_000;
const ROW_GROUP_BYTES: usize = 128 * 1024;

/// Writes one host of `series` noisy hwthread series (1440 samples each) and returns the file
/// and the writer's peak `memory_bytes`.
fn write_host(series: usize) -> (FileSummary, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = WriterOptions {
        // No host boundary closes a group here: only the byte cap does.
        row_group_rows_min: usize::MAX,
        row_group_rows_max: usize::MAX,
        row_group_bytes_max: ROW_GROUP_BYTES,
        ..WriterOptions::default()
    };
    let mut writer = PeriodWriter::create_with(dir.path(), "fritz", START, START + 86_400, options)
        .expect("create");
    let mut noise = 0x9E37_79B9u32;
    let mut levels: Vec<String> = (0..series).map(|t| format!("hwthread{t}")).collect();
    levels.sort();
    let mut peak = 0;
    for level in &levels {
        let samples: Vec<(i64, f32)> = (0..1440)
            .map(|i| {
                noise ^= noise << 13;
                noise ^= noise >> 17;
                noise ^= noise << 5;
                (START + i * 60, noise as f32)
            })
            .collect();
        writer
            .add_series("big", &[level], "flops", 60, &samples)
            .expect("series");
        peak = peak.max(writer.memory_bytes());
    }
    (writer.finish().expect("finish"), peak)
}

#[test]
fn memory_does_not_grow_with_the_host() {
    let (small, small_peak) = write_host(128);
    let (big, big_peak) = write_host(512);
    assert!(big.bytes > 3 * small.bytes, "{small:?} {big:?}");
    assert!(
        big.bytes > 2 * big_peak as u64,
        "the big host ({} B) is more than twice the peak ({big_peak} B)",
        big.bytes
    );
    assert!(big.row_groups > 3 * small.row_groups, "{small:?} {big:?}");
    let one_series = 1440 * std::mem::size_of::<(i64, i64, f32)>();
    // The string columns' writers run on their own thread and report their memory as of
    // their last run: a reading may or may not include their page buffers (the dictionary
    // encoder's indices, 8 bytes a row), whatever the host's size.
    let string_pages = 5 * format::PAGE_ROWS * 8;
    assert!(
        big_peak <= small_peak + one_series + string_pages,
        "peak {small_peak} B for {} B, {big_peak} B for {} B",
        small.bytes,
        big.bytes
    );
}
