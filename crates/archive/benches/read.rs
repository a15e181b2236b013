//! Read latency of one host and one metric over the generated day (see benches/common): a
//! node-level metric (1 series) and a per-hwthread metric (16 series), footer cached.
//!
//! `cargo bench -p strata-archive --bench read`

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use strata_archive::Archive;

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    common::write_day(dir.path());
    let archive = Archive::open(dir.path());
    let from_s = common::START;
    let host = common::host(common::HOSTS / 2);
    let mut group = c.benchmark_group("read");
    common::bench_day_reads(&mut group, &archive);
    group.bench_function("one_host_node_metric_hour", |b| {
        b.iter(|| {
            archive
                .read(
                    "fritz",
                    black_box(&host),
                    "cpu_load",
                    from_s + 3600,
                    from_s + 7200,
                )
                .expect("read")
        })
    });
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
