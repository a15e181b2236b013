//! Encoding cost of one default-sized request: 2000 samples over 200 series (10 timestamps
//! of 200 series, interleaved as the WAL yields them), and over 2000 series (one sample
//! each, as a large cluster's per-hwthread metrics at one tick arrive), protobuf + snappy
//! block.
//!
//! `cargo bench -p strata-forward --bench encode`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use strata_forward::labels::Labels;
use strata_forward::proto::{OutSample, encode_v1, encode_v2};

fn batch(series_count: usize) -> Vec<OutSample> {
    let series: Vec<Labels> = (0..series_count)
        .map(|i| {
            Labels::new(vec![
                ("__name__".to_string(), format!("metric_{}", i % 20)),
                ("cluster".to_string(), "fritz".to_string()),
                ("hostname".to_string(), format!("f{:04}", i / 20)),
                ("type".to_string(), "hwthread".to_string()),
                ("type-id".to_string(), (i % 72).to_string()),
                ("site".to_string(), "fau".to_string()),
            ])
        })
        .collect();
    (0..2000)
        .map(|i| OutSample {
            labels: series[i % series_count].clone(),
            timestamp_ms: 1_700_000_000_000 + (i / series_count) as i64 * 60_000,
            value: (i as f64) * 0.37,
        })
        .collect()
}

fn encode(c: &mut Criterion) {
    let samples = batch(200);
    let distinct = batch(2000);
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(samples.len() as u64));
    group.bench_function("v1_2000_samples_200_series", |b| {
        b.iter(|| encode_v1(black_box(&samples)))
    });
    group.bench_function("v2_2000_samples_200_series", |b| {
        b.iter(|| encode_v2(black_box(&samples)))
    });
    group.bench_function("v1_2000_samples_2000_series", |b| {
        b.iter(|| encode_v1(black_box(&distinct)))
    });
    // The floor under any 1.0 encoder: snappy alone over the same protobuf bytes.
    let body = encode_v1(&distinct);
    let protobuf = snap::raw::Decoder::new()
        .decompress_vec(&body)
        .unwrap_or_default();
    let mut encoder = snap::raw::Encoder::new();
    group.bench_function("snappy_only_2000_series", |b| {
        b.iter(|| encoder.compress_vec(black_box(&protobuf)))
    });
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
