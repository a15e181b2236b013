//! Encoded size of a line-protocol workload in sealed blocks, per metric and overall.
//!
//! `cargo run --release -p strata-store --example block_size -- DIR` where DIR holds the
//! `lp.bin` of ../shared/bench/gen.py. Values go through the line-protocol parser and `as
//! f32` as ingest does; each series' values, in time order, are cut into 128-slot blocks and
//! encoded with one hint per series (the last block of a series may be short, as a sealed
//! partial tail would be).

use std::collections::{BTreeMap, HashMap};
use strata_lineproto::{FieldValue, Limits, Parser};
use strata_store::block::{self, BLOCK_SLOTS, EncodeHint};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: block_size DIR")?;
    let body = std::fs::read(format!("{dir}/lp.bin"))?;
    // series key -> (metric, values in arrival order = time order in gen.py's files)
    let mut series: HashMap<String, (String, Vec<f32>)> = HashMap::new();
    for line in Parser::new(&body, &Limits::default()) {
        let line = line?;
        let mut key = line.measurement.to_string();
        for (tag, value) in line.tags() {
            key.push_str(&format!(",{tag}={value}"));
        }
        let value = match line.fields().next().ok_or("no field")?.1 {
            FieldValue::Float(v) => v as f32,
            FieldValue::Int(v) => v as f32,
            FieldValue::UInt(v) => v as f32,
            _ => return Err("not a number".into()),
        };
        let entry = series
            .entry(key)
            .or_insert_with(|| (line.measurement.to_string(), Vec::new()));
        entry.1.push(value);
    }
    // metric -> (samples, bytes, blocks)
    let mut sizes: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut out = Vec::new();
    for (metric, values) in series.values() {
        let mut hint = EncodeHint::default();
        let size = sizes.entry(metric.clone()).or_default();
        for chunk in values.chunks(BLOCK_SLOTS) {
            out.clear();
            size.1 += block::encode(chunk, &mut hint, &mut out);
            size.0 += chunk.len();
            size.2 += 1;
        }
    }
    let (mut samples, mut bytes) = (0, 0);
    for (metric, (n, b, blocks)) in &sizes {
        println!(
            "{metric:>16}: {:.3} B/sample ({n} samples, {blocks} blocks)",
            *b as f64 / *n as f64
        );
        (samples, bytes) = (samples + n, bytes + b);
    }
    println!(
        "{:>16}: {:.3} B/sample ({samples} samples, {} series)",
        "overall",
        bytes as f64 / samples as f64,
        series.len()
    );
    Ok(())
}
