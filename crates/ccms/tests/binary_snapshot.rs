//! Binary snapshots (`<from>.bin`, COMPAT.md §6.3): files built by the reference encoder in
//! `util` are read back exactly, and damaged files fail cleanly, quickly and without large
//! allocations.

mod util;

use std::time::{Duration, Instant};

use proptest::prelude::*;
use strata_ccms::{Error, Level, read_binary_checkpoint};
use util::{bits, encode_binary, encode_binary_level, level, metric};

/// A host with two levels below it, NaN (also with a payload), ±0, ±inf and subnormals.
fn sample_host() -> Level {
    let nan_with_payload = f32::from_bits(0x7FC0_1234);
    level(
        vec![
            metric("cpu_load", 60, 1_700_000_000, &[0.5, f32::NAN, 0.7]),
            metric("mem_used", 60, 1_700_000_060, &[nan_with_payload, -0.0]),
        ],
        vec![
            (
                "accelerator0",
                level(
                    vec![metric(
                        "acc_power",
                        10,
                        -5,
                        &[f32::INFINITY, f32::NEG_INFINITY],
                    )],
                    vec![],
                ),
            ),
            (
                "socket0",
                level(
                    vec![metric("mem_bw", 10, 1_700_000_000, &[100.0, 1e-45])],
                    vec![
                        ("core0", level(vec![metric("ipc", 10, 0, &[])], vec![])),
                        ("core1", level(vec![], vec![])),
                    ],
                ),
            ),
        ],
    )
}

#[test]
fn reads_nested_children_and_nan_bit_for_bit() {
    // Goal: every field, at every level, comes back exactly; values compare as bits so NaN
    // payloads and -0.0 count. The encoder writes entries in reverse order, and the reader
    // returns them sorted by name.
    let host = sample_host();
    let file = encode_binary(1_700_000_000, 1_700_043_200, &host);
    let checkpoint = read_binary_checkpoint(&file).unwrap();
    assert_eq!(checkpoint.from_s, 1_700_000_000);
    assert_eq!(checkpoint.to_s, 1_700_043_200);
    assert_eq!(bits(&checkpoint.host), bits(&host));
    assert_eq!(checkpoint.host.metrics[1].values[0].to_bits(), 0x7FC0_1234);
    let names: Vec<_> = checkpoint
        .host
        .children
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(names, ["accelerator0", "socket0"]);
}

#[test]
fn a_repeated_name_keeps_the_last_entry_and_trailing_bytes_are_ignored() {
    // Goal: like cc-metric-store's Go maps, the last entry of a repeated name wins; bytes
    // after the host level are ignored, as cc-metric-store ignores them.
    let mut file = Vec::new();
    file.extend_from_slice(&0xCC5B_0001u32.to_le_bytes());
    file.extend_from_slice(&10i64.to_le_bytes());
    file.extend_from_slice(&20i64.to_le_bytes());
    file.extend_from_slice(&2u32.to_le_bytes());
    for value in [1.0f32, 2.0] {
        file.extend_from_slice(&1u16.to_le_bytes());
        file.push(b'm');
        file.extend_from_slice(&60i64.to_le_bytes());
        file.extend_from_slice(&0i64.to_le_bytes());
        file.extend_from_slice(&1u32.to_le_bytes());
        file.extend_from_slice(&value.to_bits().to_le_bytes());
    }
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(b"trailing garbage");
    let checkpoint = read_binary_checkpoint(&file).unwrap();
    assert_eq!(
        checkpoint.host,
        level(vec![metric("m", 60, 0, &[2.0])], vec![])
    );
}

#[test]
fn every_truncation_is_an_error() {
    // Goal: cut the file after every byte; each prefix fails with Truncated or CountTooLarge
    // (a count now larger than what is left), never a panic and never a partial result.
    let file = encode_binary(1, 2, &sample_host());
    for len in 0..file.len() {
        match read_binary_checkpoint(&file[..len]) {
            Err(Error::Truncated { offset, .. }) => assert!(offset <= len as u64, "{len}"),
            Err(Error::CountTooLarge { remaining, .. }) => {
                assert!(remaining < len as u64, "{len}");
            }
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
    assert!(read_binary_checkpoint(&file).is_ok());
}

#[test]
fn truncation_errors_name_the_field_and_offset() {
    // Goal: the error says which field of which level or metric was cut, and where it
    // starts. (Most cuts are caught earlier by a count check; these are the ones that are
    // not.)
    let error = read_binary_checkpoint(&[0x01, 0x00]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "truncated at byte 0: binary snapshot magic (u32)"
    );
    let file = encode_binary(1, 2, &Level::default());
    let error = read_binary_checkpoint(&file[..10]).unwrap_err();
    assert_eq!(error.to_string(), "truncated at byte 4: from (i64)");

    // Header 20, num_metrics 20..24, name_len 24..26, a 30-byte name 26..56.
    let long_name = "n".repeat(30);
    let file = encode_binary(1, 2, &level(vec![metric(&long_name, 60, 0, &[])], vec![]));
    let error = read_binary_checkpoint(&file[..50]).unwrap_err();
    assert!(
        matches!(&error, Error::Truncated { offset: 26, what } if what == "metric name in host level"),
        "{error:?}"
    );

    // Header 20, num_metrics 20..24, num_children 24..28, name_len 28..30, "socket0"
    // 30..37, then the child's num_metrics at 37.
    let file = encode_binary(1, 2, &level(vec![], vec![("socket0", Level::default())]));
    let error = read_binary_checkpoint(&file[..39]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "truncated at byte 37: num_metrics (u32) of level \"socket0\""
    );
}

#[test]
fn corrupt_counts_fail_fast_without_allocating() {
    // Goal: num_values, num_metrics and num_children of u32::MAX (16 GiB of values, or four
    // billion entries) are rejected before allocation, with the offset of the count.
    let host = level(
        vec![metric("m", 60, 0, &[1.0, 2.0])],
        vec![("socket0", Level::default())],
    );
    let file = encode_binary(1, 2, &host);
    // Offsets: header 20, num_metrics at 20, name_len 24, "m" 26, frequency 27, start 35,
    // num_values at 43, values 47..55, num_children at 55.
    let cases = [
        (43, "num_values of metric \"m\" in host level", 4, 29),
        (20, "num_metrics of host level", 22, 52),
        (55, "num_children of host level", 10, 17),
    ];
    for (offset, what_expected, entry_bytes, remaining_expected) in cases {
        let mut damaged = file.clone();
        damaged[offset..offset + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let started = Instant::now();
        let error = read_binary_checkpoint(&damaged).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        match error {
            Error::CountTooLarge {
                offset: at,
                what,
                count,
                bytes_min,
                remaining,
            } => {
                assert_eq!(at, offset as u64);
                assert_eq!(what, what_expected);
                assert_eq!(count, u64::from(u32::MAX));
                assert_eq!(bytes_min, u64::from(u32::MAX) * entry_bytes);
                assert_eq!(remaining, remaining_expected);
            }
            other => panic!("count at {offset}: {other:?}"),
        }
    }
}

#[test]
fn rejects_bad_magic_and_invalid_utf8() {
    let mut file = encode_binary(1, 2, &level(vec![metric("m", 60, 0, &[])], vec![]));
    let mut wrong = file.clone();
    wrong[..4].copy_from_slice(&0xCC1D_A701u32.to_le_bytes()); // a WAL, not a snapshot
    let error = read_binary_checkpoint(&wrong).unwrap_err();
    assert!(
        matches!(
            error,
            Error::BadMagic {
                expected: 0xCC5B_0001,
                found: 0xCC1D_A701,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "not a binary snapshot: magic 0xcc1da701 at byte 0, expected 0xcc5b0001"
    );

    file[26] = 0xFF; // the metric name's only byte
    let error = read_binary_checkpoint(&file).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidUtf8 { offset: 26, what } if what == "metric name in host level"),
        "{error:?}"
    );
}

#[test]
fn limits_nesting_depth() {
    // Goal: 16 levels (host included) load, 17 are TooDeep.
    fn chain(depth: usize) -> Level {
        let mut current = Level::default();
        for _ in 1..depth {
            current = level(vec![], vec![("x", current)]);
        }
        current
    }
    assert!(read_binary_checkpoint(&encode_binary(0, 0, &chain(16))).is_ok());
    let error = read_binary_checkpoint(&encode_binary(0, 0, &chain(17))).unwrap_err();
    assert!(
        matches!(error, Error::TooDeep { depth_max: 16, .. }),
        "{error:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_binary_checkpoint(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut file = 0xCC5B_0001u32.to_le_bytes().to_vec();
        file.extend_from_slice(&[0; 16]);
        file.extend_from_slice(&body);
        let _ = read_binary_checkpoint(&file);
    }

    #[test]
    fn generated_checkpoints_round_trip(
        from in any::<i64>(),
        to in any::<i64>(),
        host in util::arb_level(util::arb_any_value()),
    ) {
        let checkpoint = read_binary_checkpoint(&encode_binary(from, to, &host)).unwrap();
        prop_assert_eq!((checkpoint.from_s, checkpoint.to_s), (from, to));
        prop_assert_eq!(bits(&checkpoint.host), bits(&host));
    }

    #[test]
    fn a_flipped_byte_never_panics(
        host in util::arb_level(util::arb_any_value()),
        position in any::<prop::sample::Index>(),
        flip in 1u8..,
    ) {
        let mut file = Vec::new();
        file.extend_from_slice(&0xCC5B_0001u32.to_le_bytes());
        file.extend_from_slice(&[0; 16]);
        encode_binary_level(&mut file, &host);
        let at = position.index(file.len());
        file[at] ^= flip;
        let _ = read_binary_checkpoint(&file);
    }
}
