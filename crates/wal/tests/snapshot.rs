//! Snapshot files and generations: round trips, and every kind of damage is refused.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use proptest::prelude::*;
use strata_store::{HostImage, LevelImage, Run, SeriesImage};
use strata_wal::snapshot::{
    Manifest, decode_host, encode_host, escape_name, finish_generation, generation_directory,
    list_generations, load_host, remove_generations_before, write_host,
};

fn image(host: &str) -> HostImage {
    let series = |metric: &str, values: Vec<f32>| SeriesImage {
        metric: metric.into(),
        frequency_s: 60,
        runs: vec![
            Run {
                start_s: 1_700_000_000,
                values: values.clone(),
            },
            Run {
                start_s: 1_700_000_000 + 600 * 60,
                values,
            },
        ],
    };
    HostImage {
        cluster: "fritz".into(),
        host: host.into(),
        root: LevelImage {
            series: vec![series("load", vec![0.5, f32::NAN, 1.25e-7])],
            children: vec![(
                "socket0".into(),
                LevelImage {
                    series: vec![series("mem_bw", vec![100.0; 3])],
                    children: vec![(
                        "netib0".into(),
                        LevelImage {
                            series: vec![series("bw", vec![-1.0])],
                            children: vec![],
                        },
                    )],
                },
            )],
        },
    }
}

fn same(a: &HostImage, b: &HostImage) -> bool {
    // Debug renderings also compare NaN slots (NaN != NaN).
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn host_files_round_trip_with_full_precision() {
    let original = image("f0201");
    let decoded = decode_host(&encode_host(&original)).unwrap();
    assert!(same(&decoded, &original));
}

#[test]
fn a_cut_off_file_is_refused_at_every_length() {
    let bytes = encode_host(&image("f0201"));
    for cut in 0..bytes.len() {
        assert!(decode_host(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn a_flipped_bit_anywhere_is_refused() {
    let bytes = encode_host(&image("f0201"));
    for i in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[i] ^= 0x04;
        assert!(decode_host(&damaged).is_err(), "flip at {i}");
    }
}

#[test]
fn a_newer_version_is_refused_by_name() {
    let mut bytes = encode_host(&image("h"));
    bytes[8] = 2;
    let error = decode_host(&bytes).unwrap_err().to_string();
    assert!(error.contains("version 2"), "{error}");
}

#[test]
fn names_cannot_escape_their_directory() {
    assert_eq!(escape_name("f0201"), "f0201");
    assert_eq!(escape_name("a0603.cluster-x_1"), "a0603.cluster-x_1");
    assert_eq!(escape_name(".."), "%2E.");
    assert_eq!(escape_name("a/b"), "a%2Fb");
    assert_eq!(escape_name("00000000:49:00.0"), "00000000%3A49%3A00.0");
    assert_eq!(escape_name(""), "%00");
    // Names near the 256-byte limit, and non-ASCII ones that triple when escaped, stay
    // within a file name and stay distinct.
    let long = "x".repeat(256);
    let other = format!("{}y", "x".repeat(255));
    let wide = "ü".repeat(128);
    for name in [&long, &other, &wide] {
        assert!(escape_name(name).len() <= 200, "{name}");
    }
    assert_ne!(escape_name(&long), escape_name(&other));
}

#[test]
fn hosts_with_the_longest_names_are_written_and_loaded_back() {
    let root = tempfile::tempdir().unwrap();
    let dir = generation_directory(root.path(), 1);
    let mut long = image(&"h".repeat(256));
    long.cluster = "ü".repeat(128);
    write_host(&dir, &long).unwrap();
    finish_generation(&dir, 1, 1, 0).unwrap();
    let generations = list_generations(root.path()).unwrap();
    let loaded = load_host(&generations[0].files[0]).unwrap();
    assert!(same(&loaded, &long));
}

/// The plan when there is no WAL at all (`fsync: off`, or every segment deleted).
fn plan(root: &std::path::Path) -> strata_wal::recovery::Plan {
    strata_wal::recovery::plan(root, &root.join("no-wal")).unwrap()
}

#[test]
fn the_newest_complete_generation_is_loaded_and_newer_cut_off_ones_set_aside() {
    let root = tempfile::tempdir().unwrap();
    for (generation, complete) in [(3u64, true), (5, true), (9, false)] {
        let dir = generation_directory(root.path(), generation);
        for host in ["h1", "h2"] {
            write_host(&dir, &image(host)).unwrap();
        }
        if complete {
            finish_generation(&dir, generation, 2, 1_700_000_000).unwrap();
        }
    }
    let plan = plan(root.path());
    let latest = plan.generation.expect("a complete generation");
    assert_eq!(latest.number, 5);
    assert_eq!(latest.manifest, Manifest::Valid { hosts: 2 });
    assert_eq!(latest.files.len(), 2);
    assert_eq!(plan.replay_from, 5);
    let set_aside: Vec<u64> = plan.set_aside.iter().map(|g| g.number).collect();
    assert_eq!(set_aside, [9]);
    assert_eq!(plan.set_aside[0].manifest, Manifest::Missing);
    let loaded = load_host(&latest.files[0]).unwrap();
    assert!(same(&loaded, &image("h1")));
    assert_eq!(remove_generations_before(root.path(), 5).unwrap(), 1);
    assert!(!generation_directory(root.path(), 3).exists());
}

/// Writes generation `number` with one host and damages its MANIFEST.
fn damaged_generation(root: &std::path::Path, number: u64) {
    let dir = generation_directory(root, number);
    write_host(&dir, &image("h1")).unwrap();
    finish_generation(&dir, number, 1, 0).unwrap();
    let manifest = dir.join("MANIFEST");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("hosts 1", "hosts 7");
    std::fs::write(&manifest, text).unwrap();
}

/// Issue 6 item 1: one damaged byte in a MANIFEST used to make the whole generation count as
/// incomplete, and startup deleted it. When its WAL segments are gone, it was completed:
/// it is loaded, with the damage named.
#[test]
fn a_damaged_manifest_of_a_completed_generation_still_loads_it() {
    let root = tempfile::tempdir().unwrap();
    damaged_generation(root.path(), 4);
    let plan = plan(root.path());
    let generation = plan.generation.expect("the damaged generation is loaded");
    assert_eq!(generation.number, 4);
    assert_eq!(
        generation.manifest,
        Manifest::Damaged("checksum mismatch".into())
    );
    assert_eq!(generation.files.len(), 1);
    assert!(plan.set_aside.is_empty());

    // Deleted instead of damaged: the same.
    std::fs::remove_file(generation.directory.join("MANIFEST")).unwrap();
    let generation = self::plan(root.path()).generation.expect("still loaded");
    assert_eq!(generation.manifest, Manifest::Missing);
}

/// A generation without an intact MANIFEST that nothing depends on is set aside: a complete
/// older generation exists, or the WAL still holds every segment before it.
#[test]
fn a_damaged_manifest_that_nothing_depends_on_is_set_aside() {
    let root = tempfile::tempdir().unwrap();
    let dir = generation_directory(root.path(), 2);
    write_host(&dir, &image("h1")).unwrap();
    finish_generation(&dir, 2, 1, 0).unwrap();
    damaged_generation(root.path(), 6);
    let plan = plan(root.path());
    assert_eq!(plan.generation.map(|g| g.number), Some(2));
    assert_eq!(plan.set_aside.len(), 1);

    let root = tempfile::tempdir().unwrap();
    damaged_generation(root.path(), 3);
    let wal = root.path().join("wal");
    std::fs::create_dir(&wal).unwrap();
    for segment in 1..=3 {
        std::fs::write(wal.join(strata_wal::segment_file_name(segment)), b"").unwrap();
    }
    let plan = strata_wal::recovery::plan(root.path(), &wal).unwrap();
    assert_eq!(plan.generation, None);
    assert_eq!(plan.replay_from, 1);
    assert_eq!(plan.set_aside.len(), 1);
    // Once segment 1 is gone, the generation is the only copy of its data.
    std::fs::remove_file(wal.join(strata_wal::segment_file_name(1))).unwrap();
    let plan = strata_wal::recovery::plan(root.path(), &wal).unwrap();
    assert_eq!(plan.generation.map(|g| g.number), Some(3));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_host(&bytes);
        let mut framed = b"STRATASN\x01\x00\x00\x00\x00\x00\x00\x00".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = decode_host(&framed);
    }

    #[test]
    fn generated_images_round_trip(
        values in prop::collection::vec(any::<f32>(), 0..600),
        start in -1_000_000_000i64..4_000_000_000,
        frequency in 1i64..3600,
    ) {
        let mut original = image("h");
        original.root.series[0].frequency_s = frequency;
        original.root.series[0].runs = vec![Run { start_s: start, values }];
        let decoded = decode_host(&encode_host(&original)).unwrap();
        prop_assert!(same(&decoded, &original));
    }
}
