//! Parse throughput on the shared benchmark workload.
//!
//! The body mimics one `cc-metric-collector` flush for 16 nodes: per node 20 node-level
//! metrics and 5 per-hwthread metrics × 64 hwthreads (340 lines per node), values with 0–3
//! decimals. The consumer walks every tag and field, as the ingest path does, so the
//! measured cost includes the second tokenization that `Line::tags`/`Line::fields` perform.
//!
//! Run: `cargo bench -p strata-lineproto --bench parse`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::fmt::Write;
use std::hint::black_box;
use strata_lineproto::{FieldValue, Limits, Parser};

const NODES: usize = 16;
const HWTHREADS: usize = 64;
const NODE_METRICS: [&str; 20] = [
    "mem_used",
    "mem_bw",
    "mem_cached",
    "mem_available",
    "mem_free",
    "swap_used",
    "net_bytes_in",
    "net_bytes_out",
    "net_pkts_in",
    "net_pkts_out",
    "ib_recv",
    "ib_xmit",
    "ib_recv_pkts",
    "ib_xmit_pkts",
    "lustre_read_bw",
    "lustre_write_bw",
    "nfs4_read",
    "nfs4_write",
    "cpu_power",
    "core_power",
];
const HWTHREAD_METRICS: [&str; 5] = ["cpu_user", "cpu_system", "cpu_iowait", "flops_any", "ipc"];
const TIMESTAMP: u64 = 1_794_873_600;

/// A deterministic value with 0–3 decimals (a tiny LCG keeps the bench free of `rand`).
fn value(state: &mut u64) -> String {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1);
    let raw = (*state >> 33) % 1_000_000;
    match (*state >> 20) % 4 {
        0 => format!("{}", raw / 1000),
        1 => format!("{}.{}", raw / 1000, raw % 10),
        2 => format!("{}.{:02}", raw / 1000, raw % 100),
        _ => format!("{}.{:03}", raw / 1000, raw % 1000),
    }
}

fn workload() -> Vec<u8> {
    let mut body = String::new();
    let mut state = 42;
    for node in 0..NODES {
        for metric in NODE_METRICS {
            let v = value(&mut state);
            writeln!(
                body,
                "{metric},cluster=hpc1,hostname=n{node:04},type=node value={v} {TIMESTAMP}"
            )
            .ok();
        }
        for metric in HWTHREAD_METRICS {
            for thread in 0..HWTHREADS {
                let v = value(&mut state);
                writeln!(
                    body,
                    "{metric},cluster=hpc1,hostname=n{node:04},type=hwthread,type-id={thread} value={v} {TIMESTAMP}"
                )
                .ok();
            }
        }
    }
    body.into_bytes()
}

/// The lines of `body` in a deterministic pseudo-random order (Fisher-Yates with an LCG).
fn shuffle_lines(body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<&[u8]> = body.split_inclusive(|&b| b == b'\n').collect();
    let mut state = 7_u64;
    for i in (1..lines.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let j = usize::try_from((state >> 33) % (i as u64 + 1)).unwrap_or(0);
        lines.swap(i, j);
    }
    lines.concat()
}

/// Parses `body` and touches every token, returning a checksum so nothing is optimised away.
fn consume(body: &[u8], limits: &Limits) -> (usize, f64) {
    let mut bytes = 0;
    let mut sum = 0.0;
    for line in Parser::new(body, limits) {
        let Ok(line) = line else { continue };
        bytes += line.measurement.len();
        for (key, value) in line.tags() {
            bytes += key.len() + value.len();
        }
        for (key, value) in line.fields() {
            bytes += key.len();
            if let FieldValue::Float(v) = value {
                sum += v;
            }
        }
        if let Some(ts) = line.timestamp {
            bytes += usize::from(ts > 0);
        }
    }
    (bytes, sum)
}

fn bench_parse(c: &mut Criterion) {
    let body = workload();
    let limits = Limits::default();
    let lines = body.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(
        lines,
        NODES * (NODE_METRICS.len() + HWTHREAD_METRICS.len() * HWTHREADS)
    );
    // Every line must parse, or the benchmark measures the error path.
    assert!(Parser::new(&body, &limits).all(|line| line.is_ok()));

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("workload_walk_tags_fields", |b| {
        b.iter(|| consume(black_box(&body), &limits));
    });
    group.bench_function("workload_lines_only", |b| {
        b.iter(|| {
            Parser::new(black_box(&body), &limits)
                .filter(Result::is_ok)
                .count()
        });
    });
    // The same lines in a scrambled order, so that consecutive lines rarely share a series
    // prefix and the parser's reuse of the previous line's tags seldom applies: the worst case
    // for this workload's bytes.
    let shuffled = shuffle_lines(&body);
    assert_eq!(shuffled.len(), body.len());
    group.bench_function("shuffled_walk_tags_fields", |b| {
        b.iter(|| consume(black_box(&shuffled), &limits));
    });
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
