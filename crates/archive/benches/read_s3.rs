//! Read latency from S3 (moto's server on loopback, `moto[server]`, installed by
//! scripts/test.sh) for the reads of the `read` bench, over the same generated day published
//! as an object: warm (footer cached, listing reused), and cold (a new reader: listing, tail,
//! column chunks). Loopback hides network latency: the figures are the client's own cost and
//! the request count, not S3's.
//!
//! `cargo bench -p strata-archive --bench read_s3`

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use strata_archive::{Archive, S3Settings};
use strata_testkit::Moto;

fn read_s3(c: &mut Criterion) {
    let moto = Moto::start();
    moto.create_bucket("bench");
    let settings = S3Settings {
        bucket: "bench".into(),
        prefix: "archive".into(),
        endpoint: Some(moto.endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some("bench".into()),
        secret_access_key: Some("bench".into()),
        allow_http: Some(true),
        part_size: 8 << 20,
    };
    let data = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open_s3(&settings).expect("open");
    let staging = archive.staging_directory(data.path()).expect("staging");
    archive
        .publish(common::write_day(&staging), "fritz")
        .expect("publish");
    let (from_s, to_s) = (common::START, common::START + common::DAY);
    let host = common::host(common::HOSTS / 2);
    let mut group = c.benchmark_group("read_s3");
    common::bench_day_reads(&mut group, &archive);
    group.bench_function("one_host_node_metric_day_cold", |b| {
        b.iter(|| {
            let cold = Archive::open_s3(&settings).expect("open");
            let result = cold
                .read("fritz", black_box(&host), "cpu_load", from_s, to_s)
                .expect("read");
            assert_eq!(result.series.len(), 1);
            result
        })
    });
    group.finish();
}

criterion_group!(benches, read_s3);
criterion_main!(benches);
