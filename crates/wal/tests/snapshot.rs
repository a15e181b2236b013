//! Snapshot files and generations: round trips, and every kind of damage is refused.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use proptest::prelude::*;
use strata_store::{HostImage, LevelImage, Run, SeriesImage, Store, StoreConfig};
use strata_wal::incremental::{Older, OpenFiles};
use strata_wal::snapshot::{
    Manifest, PACK_BYTES_TARGET, PackHost, PackWriter, Reference, decode_file, encode_pack,
    finish_generation, generation_directory, list_generations, load_file, read_pack,
    remove_generations_except,
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

/// Every host of a pack, decoded.
fn decode_all(bytes: &[u8]) -> Result<Vec<HostImage>, strata_wal::Error> {
    let mut hosts = Vec::new();
    decode_file(bytes, |image| hosts.push(image))?;
    Ok(hosts)
}

/// Writes a generation of `hosts` and completes it.
fn write_generation(directory: &std::path::Path, number: u64, hosts: &[HostImage]) {
    let mut packs = PackWriter::new(directory).unwrap();
    for host in hosts {
        packs.add(host).unwrap();
    }
    packs.finish().unwrap();
    finish_generation(directory, number, hosts.len(), 0, &[]).unwrap();
}

/// Every host of every file of a generation, loaded.
fn load_generation(directory: &std::path::Path) -> Vec<HostImage> {
    let mut hosts = Vec::new();
    for file in list_generations(directory).unwrap()[0].files.iter() {
        load_file(file, |image| hosts.push(image)).unwrap();
    }
    hosts
}

#[test]
fn packs_round_trip_with_full_precision() {
    let originals = [image("f0201"), image("f0202")];
    let decoded = decode_all(&encode_pack(&originals)).unwrap();
    assert_eq!(decoded.len(), 2);
    for (decoded, original) in decoded.iter().zip(&originals) {
        assert!(same(decoded, original));
    }
}

/// A generation written by Strata before packs (one file per host, version 1) is still read.
#[test]
fn version_1_host_files_are_read() {
    let bytes = include_bytes!("fixtures/snapshot-v1.snap");
    let decoded = decode_all(bytes).unwrap();
    assert_eq!(decoded.len(), 1);
    assert!(same(&decoded[0], &image("f0201")));
    let mut damaged = bytes.to_vec();
    damaged[40] ^= 0x01;
    assert!(decode_all(&damaged).is_err());
}

/// A generation written by incremental snapshots (version 3, issue 10 item 3): generation 5
/// holds a block re-encoded by a late write, a reference to a block of generation 2, a new
/// block and a tail, and its MANIFEST lists the reference.
#[test]
fn version_3_generations_with_references_are_read() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/snapshots-v3");
    let plan = strata_wal::recovery::plan(&root, &root.join("no-wal")).unwrap();
    let newest = plan.generation.unwrap();
    assert_eq!(newest.number, 5);
    let reference = Reference {
        generation: 2,
        bytes: 9,
    };
    assert_eq!(newest.references, [reference]);
    let generations = list_generations(&root).unwrap();
    let (older, damaged) = Older::index(generations.iter().filter(|g| g.number < 5));
    assert!(damaged.is_empty(), "{damaged:?}");
    let store = Store::new(StoreConfig::auto(60));
    let mut files = OpenFiles::default();
    let hosts = read_pack(&newest.files[0], 5, |host| {
        let PackHost::Blocks(mut image) = host else {
            panic!("a version 3 pack holds blocks");
        };
        let resolved = older.resolve(&mut image, &mut files);
        assert_eq!(resolved.unresolved, 0);
        assert_eq!(resolved.bytes.get(&2), Some(&9));
        assert_eq!(store.load_host_blocks(image).lost_slots, 0);
    })
    .unwrap();
    assert_eq!(hosts, 1);
    let image = store.export_host("fritz", "f0201").unwrap();
    let run = &image.root.children[0].1.series[0].runs[0];
    let expected: Vec<f32> = (0..400)
        .map(|i| if i == 10 { 99.0 } else { i as f32 * 0.5 })
        .collect();
    assert_eq!((run.start_s, &run.values), (1_699_999_970, &expected));
}

#[test]
fn a_cut_off_pack_is_refused_at_every_length() {
    let bytes = encode_pack(&[image("f0201"), image("f0202")]);
    for cut in 0..bytes.len() {
        assert!(decode_all(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

/// Any flipped bit is found. A flip in a host's payload or checksum loses that host only
/// (the others of the pack are read: found in review, the rest of a pack used to be lost); a
/// flip in a length loses the pack from there on; a flip in the end marker loses nothing.
#[test]
fn a_flipped_bit_anywhere_is_refused_and_only_its_host_is_lost() {
    let first = encode_pack(&[image("f0201")]);
    // Where the second host's entry starts: after the first entry, before its end marker.
    let second_at = first.len() - 16;
    let bytes = encode_pack(&[image("f0201"), image("f0202")]);
    let end_at = bytes.len() - 16;
    for i in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[i] ^= 0x04;
        let mut hosts = Vec::new();
        assert!(
            decode_file(&damaged, |h| hosts.push(h.host)).is_err(),
            "flip at {i}"
        );
        let expected: &[&str] = match i {
            // Header, or the first entry's length.
            _ if i < 24 => &[],
            // The first entry's checksum or payload.
            _ if i < second_at => &["f0202"],
            // The second entry's length.
            _ if i < second_at + 8 => &["f0201"],
            _ if i < end_at => &["f0201"],
            _ => &["f0201", "f0202"],
        };
        assert_eq!(hosts, expected, "flip at {i}");
    }
}

#[test]
fn a_newer_version_is_refused_by_name() {
    let mut bytes = encode_pack(&[image("h")]);
    bytes[8] = 4;
    let error = decode_all(&bytes).unwrap_err().to_string();
    assert!(error.contains("version 4"), "{error}");
}

#[test]
fn hosts_with_the_longest_names_are_written_and_loaded_back() {
    let root = tempfile::tempdir().unwrap();
    let dir = generation_directory(root.path(), 1);
    let mut long = image(&"h".repeat(256));
    long.cluster = "ü".repeat(128);
    write_generation(&dir, 1, std::slice::from_ref(&long));
    let loaded = load_generation(root.path());
    assert!(same(&loaded[0], &long));
}

/// Issue 6 item 16: a file per host made a store of a million single-sample hosts write a
/// million files (362 s, 3.9 GB of disk for 63 MB of data). Small hosts share packs; a pack
/// is closed past its target, so a large store still spreads over several.
#[test]
fn many_small_hosts_share_a_few_packs() {
    let root = tempfile::tempdir().unwrap();
    let dir = generation_directory(root.path(), 2);
    let small: Vec<HostImage> = (0..20_000).map(|i| image(&format!("n{i:05}"))).collect();
    write_generation(&dir, 2, &small);
    let generation = &list_generations(root.path()).unwrap()[0];
    assert_eq!(generation.files.len(), 1, "{:?}", generation.files);
    let loaded = load_generation(root.path());
    assert_eq!(loaded.len(), small.len());
    assert!(same(&loaded[12_345], &small[12_345]));

    // Hosts of ~20 MiB each: a pack closes once past the target.
    let root = tempfile::tempdir().unwrap();
    let dir = generation_directory(root.path(), 3);
    let mut big = image("big");
    big.root.series[0].runs[0].values = vec![1.0; 5 << 20];
    let bigs: Vec<HostImage> = (0..7).map(|_| big.clone()).collect();
    write_generation(&dir, 3, &bigs);
    let files = list_generations(root.path()).unwrap()[0].files.clone();
    let per_pack = (PACK_BYTES_TARGET / (20 << 20)) as usize + 1;
    assert_eq!(files.len(), bigs.len().div_ceil(per_pack), "{files:?}");
    assert_eq!(load_generation(root.path()).len(), bigs.len());
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
        let mut packs = PackWriter::new(&dir).unwrap();
        for host in ["h1", "h2"] {
            packs.add(&image(host)).unwrap();
        }
        packs.finish().unwrap();
        if complete {
            finish_generation(&dir, generation, 2, 1_700_000_000, &[]).unwrap();
        }
    }
    let plan = plan(root.path());
    let latest = plan.generation.expect("a complete generation");
    assert_eq!(latest.number, 5);
    assert_eq!(latest.manifest, Manifest::Valid { hosts: 2 });
    assert_eq!(latest.files.len(), 1);
    assert_eq!(plan.replay_from, 5);
    let set_aside: Vec<u64> = plan.set_aside.iter().map(|g| g.number).collect();
    assert_eq!(set_aside, [9]);
    assert_eq!(plan.set_aside[0].manifest, Manifest::Missing);
    let mut loaded = Vec::new();
    load_file(&latest.files[0], |h| loaded.push(h)).unwrap();
    assert!(same(&loaded[0], &image("h1")));
    assert_eq!(remove_generations_except(root.path(), 5, &[]).unwrap(), 1);
    assert!(!generation_directory(root.path(), 3).exists());
}

/// Writes generation `number` with one host and damages its MANIFEST.
fn damaged_generation(root: &std::path::Path, number: u64) {
    let dir = generation_directory(root, number);
    write_generation(&dir, number, &[image("h1")]);
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
    write_generation(&dir, 2, &[image("h1")]);
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

/// Writes an empty WAL segment file for each of `segments` under `root/wal`.
fn segments(root: &std::path::Path, segments: impl IntoIterator<Item = u64>) -> std::path::PathBuf {
    let wal = root.join("wal");
    std::fs::create_dir_all(&wal).unwrap();
    for segment in segments {
        std::fs::write(wal.join(strata_wal::segment_file_name(segment)), b"").unwrap();
    }
    wal
}

/// Writes generation `number`, complete or cut off before its MANIFEST.
fn generation(root: &std::path::Path, number: u64, complete: bool) {
    let dir = generation_directory(root, number);
    let mut packs = PackWriter::new(&dir).unwrap();
    packs.add(&image("h1")).unwrap();
    packs.finish().unwrap();
    if complete {
        finish_generation(&dir, number, 1, 0, &[]).unwrap();
    }
}

/// Sequences of snapshots, crashes and damage, and what recovery must load (found in review).
#[test]
fn recovery_plans_over_several_generations() {
    // A generation that was loaded with a damaged MANIFEST got a new one; a later snapshot
    // cut off above it is passed over, and its WAL replayed.
    let root = tempfile::tempdir().unwrap();
    generation(root.path(), 40, true);
    generation(root.path(), 57, false);
    let wal = segments(root.path(), 40..=57);
    let plan = strata_wal::recovery::plan(root.path(), &wal).unwrap();
    assert_eq!(plan.generation.map(|g| g.number), Some(40));
    assert_eq!(plan.replay_from, 40);

    // The removal of the older generation was cut off after its MANIFEST went: the newer one
    // had been completed, even if its own MANIFEST is damaged now.
    let root = tempfile::tempdir().unwrap();
    generation(root.path(), 5, false);
    damaged_generation(root.path(), 9);
    let wal = segments(root.path(), 5..=9);
    let plan = strata_wal::recovery::plan(root.path(), &wal).unwrap();
    assert_eq!(plan.generation.map(|g| g.number), Some(9));

    // Incremental snapshots keep an older generation the newer one refers to, MANIFEST and
    // all: with the log below the newer one deleted, only the newer one holds what it did,
    // even with its MANIFEST damaged (issue 10 item 3).
    let root = tempfile::tempdir().unwrap();
    generation(root.path(), 5, true);
    damaged_generation(root.path(), 9);
    let wal = segments(root.path(), 9..=10);
    let plan = strata_wal::recovery::plan(root.path(), &wal).unwrap();
    assert_eq!(plan.generation.map(|g| g.number), Some(9));
    // While the log still has segment 5, the older generation and the log hold everything.
    let wal = segments(root.path(), 5..=10);
    let plan = strata_wal::recovery::plan(root.path(), &wal).unwrap();
    assert_eq!(plan.generation.map(|g| g.number), Some(5));
    // Unless the older one refers to a generation that is gone: the newer one's removal of
    // what it does not refer to (S3) ran, so it was complete.
    let dir = generation_directory(root.path(), 5);
    write_generation(&dir, 5, &[image("h1")]);
    let reference = Reference {
        generation: 2,
        bytes: 100,
    };
    finish_generation(&dir, 5, 1, 0, &[reference]).unwrap();
    let plan = strata_wal::recovery::plan(root.path(), &wal).unwrap();
    assert_eq!(plan.generation.map(|g| g.number), Some(9));

    // A first snapshot cut off while a segment of the log is lost: the log is replayed from
    // its start (the lost segment is damage the replay reports), not the partial snapshot.
    let root = tempfile::tempdir().unwrap();
    generation(root.path(), 12, false);
    let wal = segments(root.path(), (1..12).filter(|&s| s != 5));
    let plan = strata_wal::recovery::plan(root.path(), &wal).unwrap();
    assert_eq!(plan.generation, None);
    assert_eq!(plan.replay_from, 1);
    assert_eq!(plan.set_aside.len(), 1);
}

/// Under `fsync: off` a failed snapshot can leave packs in a generation directory; the next
/// attempt at that directory must not load them with its own (found in review).
#[test]
fn a_new_generation_clears_what_a_failed_attempt_left() {
    let root = tempfile::tempdir().unwrap();
    let dir = generation_directory(root.path(), 9);
    generation(root.path(), 9, false);
    std::fs::write(dir.join("000007.snap"), b"stale").unwrap();
    let mut packs = PackWriter::new(&dir).unwrap();
    packs.add(&image("h2")).unwrap();
    packs.finish().unwrap();
    finish_generation(&dir, 9, 1, 0, &[]).unwrap();
    let files = &list_generations(root.path()).unwrap()[0].files;
    assert_eq!(files.len(), 1, "{files:?}");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_all(&bytes);
        for version in [1u8, 2, 3] {
            let mut framed = b"STRATASN\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
            framed[8] = version;
            framed.extend_from_slice(&bytes);
            let _ = decode_all(&framed);
        }
    }

    /// Version 3 entries with a valid frame and checksum but arbitrary payloads: read and
    /// indexed as older generations without a panic.
    #[test]
    fn arbitrary_version_3_payloads_never_panic(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..4),
    ) {
        let root = tempfile::tempdir().unwrap();
        let dir = generation_directory(root.path(), 3);
        std::fs::create_dir_all(&dir).unwrap();
        let mut pack = b"STRATASN\x03\x00\x00\x00\x00\x00\x00\x00".to_vec();
        for payload in &payloads {
            pack.extend_from_slice(&(payload.len() as u64 + 1).to_le_bytes());
            let mut payload = payload.clone();
            payload.insert(0, 0);
            pack.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
            pack.extend_from_slice(&payload);
        }
        pack.extend_from_slice(&0u64.to_le_bytes());
        pack.extend_from_slice(b"SNAPEND!");
        std::fs::write(dir.join("000001.snap"), &pack).unwrap();
        let generations = list_generations(root.path()).unwrap();
        let (older, _) = Older::index(&generations);
        let store = Store::new(StoreConfig::auto(60));
        let _ = read_pack(&generations[0].files[0], 3, |host| {
            if let PackHost::Blocks(mut image) = host {
                older.resolve(&mut image, &mut OpenFiles::default());
                store.load_host_blocks(image);
            }
        });
    }

    /// The fixture's newest entry with any bit flipped and its checksum fixed (so the
    /// decoder, not the checksum, meets the damage): resolved and loaded without a panic.
    #[test]
    fn mutated_version_3_entries_never_panic(at in 0usize..1_000, bit in 0u8..8) {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/snapshots-v3");
        let root = tempfile::tempdir().unwrap();
        for number in [2, 5] {
            let (from, to) = (generation_directory(&fixture, number), generation_directory(root.path(), number));
            std::fs::create_dir_all(&to).unwrap();
            for file in ["000001.snap", "MANIFEST"] {
                std::fs::copy(from.join(file), to.join(file)).unwrap();
            }
        }
        let pack = generation_directory(root.path(), 5).join("000001.snap");
        let mut bytes = std::fs::read(&pack).unwrap();
        let payload = 28..bytes.len() - 16;
        let at = payload.start + at % payload.len();
        bytes[at] ^= 1 << bit;
        let crc = crc32c::crc32c(&bytes[payload]);
        bytes[24..28].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&pack, &bytes).unwrap();
        let generations = list_generations(root.path()).unwrap();
        let (older, _) = Older::index(generations.iter().filter(|g| g.number < 5));
        let store = Store::new(StoreConfig::auto(60));
        let _ = read_pack(&pack, 5, |host| {
            if let PackHost::Blocks(mut image) = host {
                older.resolve(&mut image, &mut OpenFiles::default());
                store.load_host_blocks(image);
            }
        });
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
        let decoded = decode_all(&encode_pack([&original])).unwrap();
        prop_assert!(same(&decoded[0], &original));
    }
}
