//! `current.wal` (COMPAT.md §6.4): logs built by the reference encoder in `util` are read
//! back, and every kind of damage ends the log as a torn tail at the right record.

mod util;

use proptest::prelude::*;
use strata_ccms::{Error, WalContents, WalEnd, WalRecord, read_wal};
use util::{WAL_FILE_MAGIC_BYTES, encode_wal, record, wal_frame, wal_payload};

/// Records with selectors of 0, 1 and 2 levels, NaN and a negative timestamp.
fn sample_records() -> Vec<WalRecord> {
    vec![
        record(1_700_000_000, "cpu_load", &[], 0.5),
        record(1_700_000_060, "mem_bw", &["socket0"], 1.25e9),
        record(1_700_000_060, "flops_any", &["socket1", "core12"], -3.5),
        record(-1, "ipc", &["accelerator0"], f32::NAN),
        record(1_700_000_120, "cpu_user", &["socket0", "hwthread7"], 42.0),
    ]
}

/// Compares records with values as bits, so that NaN equals itself.
fn assert_records(actual: &[WalRecord], expected: &[WalRecord]) {
    assert_eq!(actual.len(), expected.len());
    for (actual, expected) in actual.iter().zip(expected) {
        assert_eq!(
            (
                actual.timestamp_s,
                &actual.metric,
                &actual.selector,
                actual.value.to_bits()
            ),
            (
                expected.timestamp_s,
                &expected.metric,
                &expected.selector,
                expected.value.to_bits()
            )
        );
    }
}

fn torn_reason(contents: &WalContents) -> (u64, &str) {
    match &contents.end {
        WalEnd::TornTail { offset, reason } => (*offset, reason.as_str()),
        WalEnd::Clean => panic!("expected a torn tail, got Clean"),
    }
}

#[test]
fn crc32_is_the_ieee_polynomial() {
    // Goal: the checksum the encoder and reader use is CRC-32/IEEE (Go's crc32.ChecksumIEEE),
    // checked against the standard test vector.
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
}

#[test]
fn reads_records_with_selectors_of_zero_one_and_two_levels() {
    let records = sample_records();
    let (file, offsets) = encode_wal(&records);
    // One record by hand: 8 header + 8 timestamp + 2 + 8 "cpu_load" + 1 + 0 + 4 value + 4 CRC.
    assert_eq!(offsets[..2], [4, 4 + 35]);
    let contents = read_wal(&file).unwrap();
    assert_eq!(contents.end, WalEnd::Clean);
    assert_records(&contents.records, &records);
    assert_eq!(contents.records[2].selector, ["socket1", "core12"]);
    assert!(contents.records[0].selector.is_empty());
}

#[test]
fn empty_file_and_header_only_are_clean_and_empty() {
    // Goal: a 0-byte file (created, crashed before the first flush) and a header without
    // records both read as Clean with no records.
    assert_eq!(
        read_wal(&[]).unwrap(),
        WalContents {
            records: vec![],
            end: WalEnd::Clean
        }
    );
    assert_eq!(
        read_wal(&WAL_FILE_MAGIC_BYTES).unwrap(),
        WalContents {
            records: vec![],
            end: WalEnd::Clean
        }
    );
}

#[test]
fn bad_file_magic_is_an_error() {
    // Goal: a file that is not a WAL is an error, not an empty log (cc-metric-store skips
    // its replay with a warning).
    let (mut file, _) = encode_wal(&sample_records());
    file[..4].copy_from_slice(&0xCC5B_0001u32.to_le_bytes());
    let error = read_wal(&file).unwrap_err();
    assert!(
        matches!(
            error,
            Error::BadMagic {
                what: "WAL file",
                expected: 0xCC1D_A701,
                found: 0xCC5B_0001
            }
        ),
        "{error:?}"
    );
    // A record magic where the file magic belongs is just as foreign.
    let error = read_wal(&0xCC1D_A7A1u32.to_le_bytes()).unwrap_err();
    assert!(matches!(
        error,
        Error::BadMagic {
            found: 0xCC1D_A7A1,
            ..
        }
    ));
}

#[test]
fn truncation_anywhere_in_the_last_record_drops_only_that_record() {
    // Goal: cut the log at every byte inside the last record: exactly N-1 records, and a
    // torn tail at the last record's offset. Cutting at the record boundary is Clean.
    let records = sample_records();
    let (file, offsets) = encode_wal(&records);
    let last = offsets[records.len() - 1];
    for cut in last + 1..file.len() {
        let contents = read_wal(&file[..cut]).unwrap();
        assert_records(&contents.records, &records[..records.len() - 1]);
        let (offset, reason) = torn_reason(&contents);
        assert_eq!(offset, last as u64, "cut at {cut}");
        assert!(reason.starts_with("short read: "), "cut at {cut}: {reason}");
    }
    let contents = read_wal(&file[..last]).unwrap();
    assert_eq!(contents.end, WalEnd::Clean);
    assert_records(&contents.records, &records[..records.len() - 1]);
}

#[test]
fn a_flipped_payload_byte_stops_at_that_record_with_a_crc_mismatch() {
    // Goal: damage inside the middle record's payload keeps the records before it and
    // reports a CRC mismatch at its offset; the records after it are not read.
    let records = sample_records();
    let (mut file, offsets) = encode_wal(&records);
    let middle = offsets[2];
    file[middle + 8 + 12] ^= 0x20; // a byte of the metric name "flops_any"
    let contents = read_wal(&file).unwrap();
    assert_records(&contents.records, &records[..2]);
    let (offset, reason) = torn_reason(&contents);
    assert_eq!(offset, middle as u64);
    assert!(reason.starts_with("CRC mismatch: stored 0x"), "{reason}");
}

#[test]
fn a_flipped_crc_bit_is_a_crc_mismatch() {
    let records = sample_records();
    let (mut file, offsets) = encode_wal(&records);
    let crc_at = offsets[2] - 4; // CRC of record 1
    file[crc_at] ^= 0x01;
    let contents = read_wal(&file).unwrap();
    assert_records(&contents.records, &records[..1]);
    let (offset, reason) = torn_reason(&contents);
    assert_eq!(offset, offsets[1] as u64);
    assert!(reason.contains("CRC mismatch"), "{reason}");
}

#[test]
fn bad_record_magic_and_oversized_payload_are_torn_tails() {
    let records = sample_records();
    let (file, offsets) = encode_wal(&records);

    let mut damaged = file.clone();
    damaged[offsets[3]] ^= 0xFF;
    let contents = read_wal(&damaged).unwrap();
    assert_records(&contents.records, &records[..3]);
    assert_eq!(
        torn_reason(&contents),
        (
            offsets[3] as u64,
            "bad record magic 0xcc1da75e, expected 0xcc1da7a1"
        )
    );

    // payload_len just over 1 MiB is refused before reading the payload.
    let mut damaged = file.clone();
    let len_at = offsets[1] + 4;
    damaged[len_at..len_at + 4].copy_from_slice(&((1u32 << 20) + 1).to_le_bytes());
    let contents = read_wal(&damaged).unwrap();
    assert_records(&contents.records, &records[..1]);
    assert_eq!(
        torn_reason(&contents),
        (
            offsets[1] as u64,
            "payload_len 1048577 exceeds the limit of 1048576 bytes (1 MiB)"
        )
    );
}

#[test]
fn a_payload_of_exactly_1_mib_is_read_and_then_found_malformed() {
    // Goal: the limit is inclusive, as in cc-metric-store (`payload_len > 1<<20` is refused).
    // No well-formed payload can be that large (at most 130 830 bytes), so with a valid CRC
    // it is a malformed payload rather than an oversized one.
    let mut payload = wal_payload(&record(5, "m", &[], 1.0));
    payload.resize(1 << 20, 0);
    let mut file = WAL_FILE_MAGIC_BYTES.to_vec();
    file.extend_from_slice(&wal_frame(&payload, crc32fast::hash(&payload)));
    let contents = read_wal(&file).unwrap();
    assert!(contents.records.is_empty());
    assert_eq!(
        torn_reason(&contents),
        (
            4,
            "malformed payload of 1048576 bytes: 1048560 bytes left over after the value"
        )
    );
}

#[test]
fn malformed_payloads_with_a_valid_crc_are_torn_tails() {
    // Goal: framing and CRC are fine but the payload's own lengths do not add up, or a name
    // is not UTF-8; reading stops there with a reason that says so.
    let good = record(7, "cpu_load", &["socket0"], 1.0);
    let payload = wal_payload(&good);

    let mut overrun = payload.clone();
    overrun[8] = 0xFF; // metric_len 255 in a 31-byte payload
    let mut invalid_utf8 = payload.clone();
    invalid_utf8[8 + 2 + 8 + 1 + 1] = 0xFF; // first byte of "socket0"
    let mut leftover = payload.clone();
    leftover.push(0);
    let too_short: Vec<u8> = payload[..14].to_vec();
    let cases: [(&[u8], &str); 4] = [
        (
            &overrun,
            "malformed payload of 31 bytes: truncated at byte 10: metric name of 255 bytes",
        ),
        (
            &invalid_utf8,
            "malformed payload of 31 bytes: selector level 0 of 7 bytes at byte 20 is not valid UTF-8",
        ),
        (
            &leftover,
            "malformed payload of 32 bytes: 1 bytes left over after the value",
        ),
        (
            &too_short,
            "malformed payload of 14 bytes: truncated at byte 10: metric name of 8 bytes",
        ),
    ];
    for (bad_payload, reason_expected) in cases {
        let mut file = WAL_FILE_MAGIC_BYTES.to_vec();
        file.extend_from_slice(&wal_frame(&payload, crc32fast::hash(&payload)));
        let bad_at = file.len() as u64;
        file.extend_from_slice(&wal_frame(bad_payload, crc32fast::hash(bad_payload)));
        file.extend_from_slice(&wal_frame(&payload, crc32fast::hash(&payload)));
        let contents = read_wal(&file).unwrap();
        assert_records(&contents.records, std::slice::from_ref(&good));
        assert_eq!(torn_reason(&contents), (bad_at, reason_expected));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_wal(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_the_file_magic_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut file = WAL_FILE_MAGIC_BYTES.to_vec();
        file.extend_from_slice(&body);
        // The file magic is right, so this is never an error; every record takes at least
        // 27 bytes (8 header, 15 payload, 4 CRC).
        let contents = read_wal(&file).unwrap();
        prop_assert!(contents.records.len() <= body.len() / 27);
        if body.is_empty() {
            prop_assert_eq!(contents, WalContents { records: vec![], end: WalEnd::Clean });
        }
    }

    #[test]
    fn generated_logs_round_trip(records in prop::collection::vec(util::arb_wal_record(), 0..20)) {
        let (file, _) = encode_wal(&records);
        let contents = read_wal(&file).unwrap();
        prop_assert_eq!(&contents.end, &WalEnd::Clean);
        assert_records(&contents.records, &records);
    }

    #[test]
    fn any_cut_yields_the_records_before_it(
        records in prop::collection::vec(util::arb_wal_record(), 1..10),
        cut in any::<prop::sample::Index>(),
    ) {
        // Goal: a log cut at any byte gives exactly the records that end before the cut, and
        // a torn tail at the first one that does not (or Clean on a boundary).
        let (file, offsets) = encode_wal(&records);
        let cut = 4 + cut.index(file.len() - 4 + 1);
        let contents = read_wal(&file[..cut]).unwrap();
        let whole = offsets.iter().chain([&file.len()]).skip(1).filter(|&&end| end <= cut).count();
        assert_records(&contents.records, &records[..whole]);
        let boundary = cut == file.len() || offsets.contains(&cut);
        if boundary {
            prop_assert_eq!(&contents.end, &WalEnd::Clean);
        } else {
            prop_assert_eq!(torn_reason(&contents).0, offsets[whole] as u64);
        }
    }
}
