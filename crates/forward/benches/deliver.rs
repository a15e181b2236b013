//! CPU cost of sending: `Sender::deliver` of 2000-sample batches (200 series) to a real
//! VictoriaMetrics on loopback, measured as this process's CPU time (the sum over its
//! threads of /proc/<pid>/task/*/schedstat, nanoseconds), not wall time: the receiver's
//! speed on a shared 2-core machine says nothing about the sender's cost. The sender runs
//! on a current-thread runtime in this process: encoding, HTTP, connection handling. The
//! "time" criterion reports is CPU time per batch; the throughput is samples per CPU-second.
//!
//! `cargo bench -p strata-forward --bench deliver` (needs victoria-metrics, which scripts/test.sh installs)

// A bench whose setup fails should stop.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;
use support::{Harness, config, samples};

/// CPU time of every thread of this process so far.
fn cpu_time() -> Duration {
    let mut nanos: u64 = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            nanos += text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(nanos)
}

fn deliver(c: &mut Criterion) {
    let vm = strata_testkit::VictoriaMetrics::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("deliver");
    group.throughput(Throughput::Elements(2000));
    let h = Harness::new(&config(&vm.write_url()));
    let batch = samples(2000, 200, 1_700_000_000_000);
    group.bench_function("to_victoria_metrics_2000_samples_200_series", |b| {
        b.iter_custom(|iterations| {
            let start = cpu_time();
            runtime.block_on(async {
                for _ in 0..iterations {
                    h.deliver(&batch).await;
                }
            });
            cpu_time() - start
        })
    });
    group.finish();
}

criterion_group!(benches, deliver);
criterion_main!(benches);
