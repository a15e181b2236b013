//! The ingest decoder (`strata_server::ingest::LineDecoder`) fed a body in chunks split at
//! arbitrary points must decode what it decodes from the whole body: the same samples, line
//! counts and rejected lines. The split is decoded twice with one key cache
//! (`strata_server::keycache`), cold and then warm, so the cached path must agree too.
//!
//! Input: one byte `n` (mod 16), `n` chunk sizes (bytes; 0 = an empty chunk), then the body.
//! The sizes repeat until the body is used up. Small line limits let the fuzzer reach them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use strata_lineproto::Limits;
use strata_server::error::RejectedLine;
use strata_server::ingest::{LineDecoder, Precision};
use strata_server::keycache::KeyCache;

const LIMITS: Limits = Limits {
    line_bytes_max: 256,
    tags_per_line_max: 8,
    name_bytes_max: 32,
};

/// Arrival time of the request: lines without a timestamp get it.
const NOW_S: i64 = 1_700_000_000;

#[derive(Debug, PartialEq)]
struct Decoded {
    /// cluster, host, levels, metric, timestamp, value bits.
    samples: Vec<(String, String, [String; 2], String, i64, u32)>,
    lines: u64,
    rejected: Vec<u64>,
    first_rejected: Vec<RejectedLine>,
}

fn take_samples(decoder: &mut LineDecoder, into: &mut Decoded) {
    for sample in decoder.batch.iter() {
        let key = sample.key;
        into.samples.push((
            key.cluster.to_owned(),
            key.host.to_owned(),
            key.levels.map(str::to_owned),
            key.metric.to_owned(),
            sample.timestamp_s,
            sample.value.to_bits(),
        ));
    }
    decoder.batch.clear();
}

/// Feeds `chunks` in order, committing (here: taking) the batch whenever it fills up.
fn decode<'a>(chunks: impl Iterator<Item = &'a [u8]>, cache: Option<&Arc<KeyCache>>) -> Decoded {
    let mut decoder = LineDecoder::new("dflt", Precision::Auto, NOW_S, LIMITS);
    if let Some(cache) = cache {
        decoder = decoder.with_key_cache(cache.clone());
    }
    let mut out = Decoded {
        samples: Vec::new(),
        lines: 0,
        rejected: Vec::new(),
        first_rejected: Vec::new(),
    };
    for chunk in chunks {
        let mut rest = chunk;
        loop {
            let used = decoder.feed(rest);
            rest = &rest[used..];
            if rest.is_empty() {
                break;
            }
            assert!(
                decoder.batch_full(),
                "feed stops early only on a full batch"
            );
            take_samples(&mut decoder, &mut out);
        }
    }
    decoder.finish();
    take_samples(&mut decoder, &mut out);
    out.lines = decoder.lines;
    out.rejected = decoder.rejected.to_vec();
    out.first_rejected = decoder.first_rejected.clone();
    for rejected in &mut out.first_rejected {
        // Known difference: a line found too long before its end arrived reports the bytes
        // buffered until then, not its whole length; the line and the reason are the same.
        if let Some(at) = rejected.reason.find(TOO_LONG) {
            rejected.reason.truncate(at + TOO_LONG.len());
        }
    }
    out
}

/// The start of the reason of a line over `line_bytes_max`, before its length.
const TOO_LONG: &str = "line is too long: ";

/// `body` cut into chunks of the given sizes, repeated until it is used up.
fn chunks<'a>(body: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut at = 0;
    let mut size = sizes.iter().cycle();
    let stuck = sizes.iter().all(|&s| s == 0);
    std::iter::from_fn(move || {
        if at >= body.len() {
            return None;
        }
        let n = if stuck { 1 } else { usize::from(*size.next()?) };
        let end = (at + n).min(body.len());
        let chunk = &body[at..end];
        at = end;
        Some(chunk)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 16).min(rest.len());
    let (sizes, body) = rest.split_at(count);
    let sizes = if sizes.is_empty() { &[1][..] } else { sizes };

    let whole = decode(std::iter::once(body), None);
    let cache = Arc::new(KeyCache::new(LIMITS));
    let cold = decode(chunks(body, sizes), Some(&cache));
    assert_eq!(
        whole, cold,
        "split at {sizes:?}: differs from the whole body"
    );
    let warm = decode(chunks(body, sizes), Some(&cache));
    assert_eq!(
        whole, warm,
        "split at {sizes:?}, warm key cache: differs from the whole body"
    );
});
