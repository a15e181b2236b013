//! Write throughput: a generated day of 8 hosts (5 node metrics, 5 metrics × 16 hwthreads, 60 s)
//! streamed into one period file, fsync and rename included.
//!
//! `cargo bench -p strata-archive --bench write`

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn write(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = common::write_day(dir.path());
    println!(
        "one day: {} samples, {} bytes, {:.3} bytes/sample, {} row groups",
        summary.rows,
        summary.bytes,
        summary.bytes as f64 / summary.rows as f64,
        summary.row_groups
    );
    // Where the bytes go: compressed bytes per sample of each column.
    let file = std::fs::File::open(&summary.path).expect("open");
    let reader = parquet::file::reader::SerializedFileReader::new(file).expect("footer");
    let metadata = parquet::file::reader::FileReader::metadata(&reader);
    for (column, name) in strata_archive::format::COLUMNS.iter().enumerate() {
        let bytes: i64 = metadata
            .row_groups()
            .iter()
            .map(|group| group.column(column).compressed_size())
            .sum();
        println!(
            "  {name}: {:.3} bytes/sample",
            bytes as f64 / summary.rows as f64
        );
    }
    let mut group = c.benchmark_group("write");
    group.sample_size(10);
    group.throughput(Throughput::Elements(summary.rows));
    group.bench_function("day_8_hosts", |b| b.iter(|| common::write_day(dir.path())));
    group.finish();
}

criterion_group!(benches, write);
criterion_main!(benches);
