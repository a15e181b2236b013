//! Sealed-block codec benchmarks: encode, decode and whole-block `decode_range_into` per value
//! distribution, in samples per second, plus the encoded size (printed as B/sample).
//!
//! The distributions reproduce ../shared/bench/gen.py: random walks reflected into the
//! metric's range, a step of `step × range` per tick (50× smaller on idle nodes), rounded to
//! the metric's decimals, formatted and parsed back (`f64` then `as f32`, as ingest does);
//! clock frequencies that change with probability 1 % per tick; and adversarial random bits.
//! Each series is 1024 ticks cut into 128-slot blocks, encoded in order with one hint.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use strata_store::block::{self, BLOCK_SLOTS, EncodeHint};

const TICKS: usize = 1024;
const SERIES: usize = 64;

/// gen.py's (lo, hi, decimals, step) for one metric.
#[derive(Clone, Copy)]
struct Metric {
    lo: f64,
    hi: f64,
    decimals: usize,
    step: f64,
}

const fn metric(lo: f64, hi: f64, decimals: usize, step: f64) -> Metric {
    Metric {
        lo,
        hi,
        decimals,
        step,
    }
}

const NODE_METRICS: [Metric; 20] = [
    metric(0.0, 64.0, 2, 0.05),
    metric(0.0, 512.0, 3, 0.01),
    metric(0.0, 64.0, 3, 0.01),
    metric(0.0, 512.0, 3, 0.01),
    metric(0.0, 16.0, 1, 0.002),
    metric(0.0, 3000.0, 3, 0.08),
    metric(0.0, 1500.0, 3, 0.08),
    metric(0.0, 3000.0, 3, 0.08),
    metric(0.0, 350.0, 2, 0.08),
    metric(0.0, 1.2e9, 0, 0.05),
    metric(0.0, 1.2e9, 0, 0.05),
    metric(0.0, 1e6, 0, 0.05),
    metric(0.0, 1e6, 0, 0.05),
    metric(0.0, 2.5e10, 0, 0.05),
    metric(0.0, 2.5e10, 0, 0.05),
    metric(0.0, 5e9, 1, 0.05),
    metric(0.0, 5e9, 1, 0.05),
    metric(0.0, 1e8, 1, 0.05),
    metric(50.0, 560.0, 1, 0.03),
    metric(10.0, 120.0, 1, 0.03),
];
const CPU_USER: Metric = metric(0.0, 100.0, 1, 0.05);
const CPU_SYSTEM: Metric = metric(0.0, 100.0, 1, 0.02);
const CPU_IOWAIT: Metric = metric(0.0, 100.0, 1, 0.01);
const IPC: Metric = metric(0.0, 4.0, 3, 0.05);
const CLOCKS: [f64; 4] = [1200.0, 2000.0, 2400.0, 3000.0];

/// xorshift64* plus Box–Muller: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// What ingest stores for a value printed with `decimals` digits.
fn ingested(value: f64, decimals: usize) -> f32 {
    format!("{value:.decimals$}")
        .parse::<f64>()
        .unwrap_or(f64::NAN) as f32
}

fn walk(rng: &mut Rng, m: Metric, idle: bool) -> Vec<f32> {
    let span = m.hi - m.lo;
    let mut state = m.lo + span * rng.uniform();
    let step = span * m.step * if idle { 0.02 } else { 1.0 };
    (0..TICKS)
        .map(|_| {
            state += rng.normal() * step;
            if state < m.lo {
                state = 2.0 * m.lo - state;
            }
            if state > m.hi {
                state = 2.0 * m.hi - state;
            }
            state = state.clamp(m.lo, m.hi);
            ingested(state, m.decimals)
        })
        .collect()
}

fn clock(rng: &mut Rng) -> Vec<f32> {
    let pick = |rng: &mut Rng| CLOCKS[(rng.next() % 4) as usize] as f32;
    let mut state = pick(rng);
    (0..TICKS)
        .map(|_| {
            if rng.uniform() < 0.01 {
                state = pick(rng);
            }
            state
        })
        .collect()
}

/// One host of the shared workload: 20 node metrics and 5 metrics × 64 hwthreads.
fn host(rng: &mut Rng, idle: bool) -> Vec<Vec<f32>> {
    let mut series: Vec<Vec<f32>> = NODE_METRICS.iter().map(|&m| walk(rng, m, idle)).collect();
    for m in [CPU_USER, CPU_SYSTEM, CPU_IOWAIT, IPC] {
        series.extend((0..64).map(|_| walk(rng, m, idle)));
    }
    series.extend((0..64).map(|_| clock(rng)));
    series
}

fn distributions() -> Vec<(&'static str, Vec<Vec<f32>>)> {
    let mut rng = Rng(42);
    let mut many = |f: &mut dyn FnMut(&mut Rng) -> Vec<f32>| -> Vec<Vec<f32>> {
        (0..SERIES).map(|_| f(&mut rng)).collect()
    };
    let mut out = vec![
        ("cpu_user", many(&mut |r| walk(r, CPU_USER, false))),
        ("cpu_system", many(&mut |r| walk(r, CPU_SYSTEM, false))),
        ("cpu_iowait", many(&mut |r| walk(r, CPU_IOWAIT, false))),
        ("ipc", many(&mut |r| walk(r, IPC, false))),
        ("clock", many(&mut clock)),
        ("idle_cpu_user", many(&mut |r| walk(r, CPU_USER, true))),
        ("mem_used", many(&mut |r| walk(r, NODE_METRICS[1], false))),
        (
            "net_bytes_in",
            many(&mut |r| walk(r, NODE_METRICS[9], false)),
        ),
        ("ib_recv", many(&mut |r| walk(r, NODE_METRICS[13], false))),
        (
            "lustre_read_bw",
            many(&mut |r| walk(r, NODE_METRICS[15], false)),
        ),
        ("constant", many(&mut |_| vec![42.5; TICKS])),
        (
            "random_bits",
            many(&mut |r| {
                (0..TICKS)
                    .map(|_| f32::from_bits(r.next() as u32))
                    .collect()
            }),
        ),
    ];
    // 6 hosts, one idle (gen.py: ~15 % idle nodes).
    let workload = (0..6).flat_map(|h| host(&mut rng, h == 0)).collect();
    out.push(("workload_mix", workload));
    out
}

/// Encodes every series block by block with one hint per series; returns the blocks.
fn encode_all(series: &[Vec<f32>], out: &mut Vec<u8>, ends: &mut Vec<usize>) {
    out.clear();
    ends.clear();
    for values in series {
        let mut hint = EncodeHint::default();
        for chunk in values.chunks(BLOCK_SLOTS) {
            block::encode(chunk, &mut hint, out);
            ends.push(out.len());
        }
    }
}

fn blocks<'a>(bytes: &'a [u8], ends: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    std::iter::once(0)
        .chain(ends.iter().copied())
        .zip(ends)
        .map(move |(start, &end)| &bytes[start..end])
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("block");
    for (name, series) in distributions() {
        let samples: usize = series.iter().map(Vec::len).sum();
        let (mut bytes, mut ends) = (Vec::new(), Vec::new());
        encode_all(&series, &mut bytes, &mut ends);
        eprintln!(
            "block size {name}: {:.3} B/sample ({} blocks, {} bytes)",
            bytes.len() as f64 / samples as f64,
            ends.len(),
            bytes.len()
        );
        group.throughput(Throughput::Elements(samples as u64));
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            let (mut out, mut ends) = (Vec::with_capacity(bytes.len()), Vec::new());
            b.iter(|| encode_all(black_box(&series), &mut out, &mut ends));
        });
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            let mut values = [0.0f32; BLOCK_SLOTS];
            b.iter(|| {
                let mut sum = 0usize;
                for block in blocks(black_box(&bytes), &ends) {
                    sum += block::decode(block, &mut values);
                }
                black_box((sum, values[BLOCK_SLOTS - 1]))
            });
        });
        group.bench_function(BenchmarkId::new("decode_range_into", name), |b| {
            let mut out = Vec::with_capacity(samples);
            b.iter(|| {
                out.clear();
                for block in blocks(black_box(&bytes), &ends) {
                    block::decode_range_into(block, 0, BLOCK_SLOTS, &mut out);
                }
                black_box(out.len())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
