//! Remote-write encoding round trip (`strata_forward::proto::encode_v1`/`encode_v2`):
//! arbitrary series and samples are encoded, the body is decompressed with the `snap` crate's
//! own block decoder and decoded with `prost` into the spec's messages, and must hold exactly
//! the samples given: each series once in first-seen order with its labels, its samples in
//! order, values bit for bit. (1.0 is written by hand, so the derived messages are an
//! independent decoder for it; 2.0 is written through the same derives and checked for the
//! grouping and the symbol table.) Known difference: -0.0 arrives as 0.0 in 2.0 (see below).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use strata_forward::labels::Labels;
use strata_forward::proto::{OutSample, RequestV2, WriteRequest, encode_v1, encode_v2};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Label sets; samples pick one by index, so several samples share a series.
    series: Vec<Vec<(String, String)>>,
    samples: Vec<(u8, i64, f64)>,
}

type Pairs = Vec<(String, String)>;

/// What a receiver must see: series in first-seen order, each with its (timestamp, value
/// bits) in order.
fn expected(samples: &[OutSample]) -> Vec<(Pairs, Vec<(i64, u64)>)> {
    let mut out: Vec<(Pairs, Vec<(i64, u64)>)> = Vec::new();
    for sample in samples {
        let pairs: Pairs = sample
            .labels
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let point = (sample.timestamp_ms, sample.value.to_bits());
        match out.iter_mut().find(|(p, _)| *p == pairs) {
            Some((_, points)) => points.push(point),
            None => out.push((pairs, vec![point])),
        }
    }
    out
}

fn decompress(body: &[u8]) -> Vec<u8> {
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .unwrap_or_else(|e| panic!("not a snappy block: {e}"))
}

fn decode_v1(body: &[u8]) -> Vec<(Pairs, Vec<(i64, u64)>)> {
    let request = WriteRequest::decode(decompress(body).as_slice())
        .unwrap_or_else(|e| panic!("not a 1.0 WriteRequest: {e}"));
    request
        .timeseries
        .into_iter()
        .map(|series| {
            let pairs = series
                .labels
                .into_iter()
                .map(|l| (l.name, l.value))
                .collect();
            let points = series
                .samples
                .iter()
                .map(|s| (s.timestamp, s.value.to_bits()))
                .collect();
            (pairs, points)
        })
        .collect()
}

fn decode_v2(body: &[u8]) -> Vec<(Pairs, Vec<(i64, u64)>)> {
    let request = RequestV2::decode(decompress(body).as_slice())
        .unwrap_or_else(|e| panic!("not a 2.0 Request: {e}"));
    assert_eq!(
        request.symbols.first().map(String::as_str),
        Some(""),
        "symbols[0] is \"\""
    );
    let symbol = |r: &u32| {
        request
            .symbols
            .get(*r as usize)
            .unwrap_or_else(|| panic!("label ref {r} outside the symbol table"))
            .clone()
    };
    request
        .timeseries
        .iter()
        .map(|series| {
            assert_eq!(series.labels_refs.len() % 2, 0, "label refs come in pairs");
            let pairs = series
                .labels_refs
                .chunks(2)
                .map(|pair| (symbol(&pair[0]), symbol(&pair[1])))
                .collect();
            let points = series
                .samples
                .iter()
                .map(|s| (s.timestamp, s.value.to_bits()))
                .collect();
            (pairs, points)
        })
        .collect()
}

fuzz_target!(|input: Input| {
    if input.series.is_empty() {
        return;
    }
    let labels: Vec<Labels> = input.series.into_iter().map(Labels::new).collect();
    let samples: Vec<OutSample> = input
        .samples
        .into_iter()
        .map(|(series, timestamp_ms, value)| OutSample {
            labels: labels[usize::from(series) % labels.len()].clone(),
            timestamp_ms,
            value,
        })
        .collect();
    let want = expected(&samples);
    assert_eq!(decode_v1(&encode_v1(&samples)), want, "1.0 round trip");
    // Known difference: 2.0 goes through prost's derives, which omit a proto3 field equal to
    // its default, and -0.0 == 0.0, so -0.0 arrives as 0.0 (1.0 writes every value's bits).
    let mut want_v2 = want;
    for (_, points) in &mut want_v2 {
        for (_, bits) in points.iter_mut() {
            if *bits == (-0.0f64).to_bits() {
                *bits = 0;
            }
        }
    }
    assert_eq!(decode_v2(&encode_v2(&samples)), want_v2, "2.0 round trip");
});
