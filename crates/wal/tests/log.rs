//! The log end to end: append through the writer thread, read back with replay, and what
//! replay does with torn tails and damage (the Vector `known_errors.rs` idea).

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use strata_store::{LevelName, WriteBatch};
use strata_wal::{
    Appended, FIRST_SEGMENT, Free, FsyncPolicy, Position, Record, ReplayReport, Wal, WalConfig,
    format, list_segments, replay, truncate_torn_tail,
};

fn config(directory: &Path, fsync: FsyncPolicy) -> WalConfig {
    WalConfig {
        directory: directory.to_owned(),
        fsync,
        segment_bytes: 64 << 20,
        queue_depth: 1024,
    }
}

/// A batch of `n` samples whose values encode `record` so replay order can be checked.
fn batch(record: u32, n: u32) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for i in 0..n {
        let id = (i % 8).to_string();
        let level = [LevelName::new("hwthread", &id), LevelName::NONE];
        batch.push(
            "c",
            &format!("h{}", i % 3),
            level,
            "cpu",
            1_700_000_000 + i64::from(record) * 60,
            record as f32 + i as f32 / 1000.0,
        );
    }
    batch
}

/// Appends and waits for the outcome.
fn append(wal: &Wal, batch: WriteBatch) -> Result<Appended, strata_wal::Error> {
    let (sender, receiver) = mpsc::channel();
    wal.append(
        batch,
        Box::new(move |result, _batch| {
            let _ = sender.send(result);
        }),
    );
    receiver.recv().expect("completion")
}

fn rotate(wal: &Wal) -> Position {
    let (sender, receiver) = mpsc::channel();
    wal.rotate(Box::new(move |result| {
        let _ = sender.send(result);
    }));
    receiver.recv().expect("completion").expect("rotation")
}

fn replay_all(directory: &Path) -> (Vec<String>, ReplayReport) {
    let mut seen = Vec::new();
    let report = replay(directory, FIRST_SEGMENT, |record, _| {
        let Record::Batch(batch) = record else {
            return;
        };
        for sample in batch.iter() {
            seen.push(format!(
                "{:?}@{}={}",
                sample.key, sample.timestamp_s, sample.value
            ));
        }
    })
    .expect("replay");
    (seen, report)
}

fn describe(batches: &[WriteBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            b.iter()
                .map(|s| format!("{:?}@{}={}", s.key, s.timestamp_s, s.value))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn records_round_trip_under_every_policy_and_across_segments() {
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Batch(Duration::from_millis(5)),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(config(dir.path(), policy), 1, 100).unwrap();
        let mut written = Vec::new();
        for record in 0..20 {
            let appended = append(&wal, batch(record, 50)).unwrap();
            assert_eq!(appended.sequence, 100 + u64::from(record));
            written.push(batch(record, 50));
            if record == 9 {
                assert_eq!(
                    rotate(&wal),
                    Position {
                        segment: 2,
                        offset: format::SEGMENT_HEADER_BYTES
                    }
                );
            }
        }
        wal.close();
        let (seen, report) = replay_all(dir.path());
        assert_eq!(seen, describe(&written), "{policy:?}");
        assert_eq!(
            (report.segments, report.records, report.samples),
            (2, 20, 1000)
        );
        assert_eq!(report.last_sequence, Some(119));
        assert!(report.damage.is_empty() && report.torn_tail.is_none());
    }
}

#[test]
fn segments_rotate_at_their_size_and_each_is_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), FsyncPolicy::Never);
    config.segment_bytes = 4096;
    let wal = Wal::open(config, 1, 0).unwrap();
    for record in 0..40 {
        append(&wal, batch(record, 50)).unwrap();
    }
    wal.close();
    let segments = list_segments(dir.path()).unwrap();
    assert!(segments.len() >= 3, "{segments:?}");
    assert!(
        segments.iter().all(|s| s.bytes < 4096 + 1024),
        "{segments:?}"
    );
    // Reading from a later segment works: it defines its own series.
    let second = segments[1].segment;
    let mut samples = 0;
    let report = replay(dir.path(), second, |record, _| {
        if let Record::Batch(batch) = record {
            samples += batch.len();
        }
    })
    .unwrap();
    assert!(report.damage.is_empty());
    assert_eq!(report.segments, segments.len() - 1);
    assert!(samples > 0);
}

#[test]
fn concurrent_appends_are_all_committed_once_in_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let wal =
        std::sync::Arc::new(Wal::open(config(dir.path(), FsyncPolicy::Always), 1, 0).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|r| append(&wal, batch(t * 100 + r, 10)).unwrap().sequence)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut sequences: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (0..200).collect::<Vec<_>>());
    let stats = wal.stats();
    assert_eq!(stats.records, 200);
    // Group commit: fewer writes than records when appends overlap is typical but not
    // guaranteed on a loaded machine, so only the upper bound is asserted.
    assert!(stats.writes <= 200 && stats.fsyncs >= stats.writes);
    drop(wal);
    let (_, report) = replay_all(dir.path());
    assert_eq!(report.records, 200);
}

/// Writes `n` records of `samples` each and returns the file and record end offsets.
fn segment_with_records(dir: &Path, n: u32) -> (std::path::PathBuf, Vec<u64>) {
    let wal = Wal::open(config(dir, FsyncPolicy::Never), 1, 0).unwrap();
    let ends: Vec<u64> = (0..n)
        .map(|r| append(&wal, batch(r, 20)).unwrap().position.offset)
        .collect();
    wal.close();
    (list_segments(dir).unwrap()[0].path.clone(), ends)
}

#[test]
fn a_torn_tail_at_every_byte_of_the_last_record_is_dropped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ends) = segment_with_records(dir.path(), 5);
    let full = std::fs::read(&path).unwrap();
    let last_start = ends[3];
    for cut in last_start + 1..ends[4] {
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        let (seen, report) = replay_all(dir.path());
        assert_eq!(report.records, 4, "cut at {cut}");
        assert_eq!(seen.len(), 80);
        assert_eq!(
            report.torn_tail,
            Some((
                Position {
                    segment: 1,
                    offset: last_start
                },
                cut - last_start
            ))
        );
        assert!(report.damage.is_empty());
    }
    // Truncating makes the next start clean.
    truncate_torn_tail(
        dir.path(),
        Position {
            segment: 1,
            offset: last_start,
        },
    )
    .unwrap();
    let (_, report) = replay_all(dir.path());
    assert_eq!((report.records, report.torn_tail), (4, None));
}

#[test]
fn zeros_after_the_last_record_are_a_torn_tail() {
    // What a filesystem can leave after a power loss: the size grew, the data did not land.
    let dir = tempfile::tempdir().unwrap();
    let (path, ends) = segment_with_records(dir.path(), 3);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&path, &bytes).unwrap();
    let (_, report) = replay_all(dir.path());
    assert_eq!(report.records, 3);
    assert_eq!(
        report.torn_tail,
        Some((
            Position {
                segment: 1,
                offset: ends[2]
            },
            4096
        ))
    );
}

#[test]
fn damage_in_the_middle_is_reported_with_the_records_lost_never_skipped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ends) = segment_with_records(dir.path(), 6);
    let clean = std::fs::read(&path).unwrap();
    // Flip one byte inside record 2 (0-based), at several places of it.
    for offset in [
        ends[1] + 1,
        ends[1] + 9,
        (ends[1] + ends[2]) / 2,
        ends[2] - 1,
    ] {
        let mut bytes = clean.clone();
        bytes[offset as usize] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (seen, report) = replay_all(dir.path());
        assert_eq!(report.records, 2, "flip at {offset}");
        assert_eq!(seen.len(), 40);
        assert_eq!(report.damage.len(), 1);
        let damage = &report.damage[0];
        assert_eq!((damage.segment, damage.offset), (1, ends[1]));
        // Records 2..=5 are lost: the damaged one and the three after it.
        assert_eq!(damage.records_lost, Some(4), "{damage:?}");
        assert!(report.torn_tail.is_none());
    }
}

#[test]
fn damage_in_one_segment_does_not_stop_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(dir.path(), FsyncPolicy::Never), 1, 0).unwrap();
    let mut ends = Vec::new();
    for record in 0..4 {
        ends.push(append(&wal, batch(record, 20)).unwrap().position);
    }
    rotate(&wal);
    for record in 4..8 {
        append(&wal, batch(record, 20)).unwrap();
    }
    wal.close();
    let first = &list_segments(dir.path()).unwrap()[0].path;
    let mut bytes = std::fs::read(first).unwrap();
    bytes[ends[1].offset as usize + 20] ^= 0xff;
    std::fs::write(first, &bytes).unwrap();
    let (seen, report) = replay_all(dir.path());
    assert_eq!(report.records, 2 + 4);
    assert_eq!(seen.len(), 6 * 20);
    assert_eq!(report.damage[0].records_lost, Some(2));
}

/// Frees are records of the log, read back in order with the batches around them.
#[test]
fn frees_are_replayed_in_order_with_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(dir.path(), FsyncPolicy::Never), 1, 0).unwrap();
    append(&wal, batch(0, 5)).unwrap();
    let free = Free {
        selectors: vec![vec!["c".into(), "h1".into()], vec![]],
        before_s: -42,
    };
    let (sender, receiver) = mpsc::channel();
    wal.free(
        free.clone(),
        Box::new(move |result| {
            let _ = sender.send(result);
        }),
    );
    assert_eq!(receiver.recv().unwrap().unwrap().sequence, 1);
    append(&wal, batch(1, 5)).unwrap();
    wal.close();
    let mut seen = Vec::new();
    let report = replay(dir.path(), FIRST_SEGMENT, |record, _| {
        seen.push(match record {
            Record::Batch(batch) => format!("batch of {}", batch.len()),
            Record::Free(found) => {
                assert_eq!(found, &free);
                "free".to_owned()
            }
        })
    })
    .unwrap();
    assert_eq!(seen, ["batch of 5", "free", "batch of 5"]);
    assert_eq!((report.records, report.samples), (3, 10));
    assert!(report.damage.is_empty());
}

/// Issue 6 item 9: a segment missing from the middle of the sequence used to be skipped
/// without a word (942 records gone, `check` said nothing); a gap is damage, with the records
/// lost counted from the sequence numbers on both sides.
#[test]
fn a_missing_segment_in_the_middle_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(dir.path(), FsyncPolicy::Never), 1, 0).unwrap();
    for record in 0..9 {
        append(&wal, batch(record, 10)).unwrap();
        if record % 3 == 2 {
            rotate(&wal);
        }
    }
    wal.close();
    let segments = list_segments(dir.path()).unwrap();
    assert_eq!(segments.len(), 4);
    std::fs::remove_file(&segments[1].path).unwrap();
    let (seen, report) = replay_all(dir.path());
    assert_eq!(report.records, 6);
    assert_eq!(seen.len(), 60);
    assert_eq!(report.damage.len(), 1, "{:?}", report.damage);
    let damage = &report.damage[0];
    assert_eq!(damage.segment, 2);
    assert!(damage.reason.contains("segment 2 is missing"), "{damage:?}");
    assert_eq!(damage.records_lost, Some(3));

    // Missing first segments (the replay starts at 1) are damage too.
    std::fs::remove_file(&segments[0].path).unwrap();
    let (_, report) = replay_all(dir.path());
    assert!(
        report.damage[0]
            .reason
            .contains("segments 1 to 2 are missing"),
        "{:?}",
        report.damage
    );
}

#[test]
fn a_segment_from_a_newer_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = segment_with_records(dir.path(), 1);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8] = 9; // version 9, header checksum now wrong too
    std::fs::write(&path, &bytes).unwrap();
    let (_, report) = replay_all(dir.path());
    assert_eq!(report.records, 0);
    assert!(
        report.damage[0].reason.contains("header"),
        "{:?}",
        report.damage
    );
}

/// Issue 6 item 3: one request of long names built a ~300 MB record and a size assertion
/// killed the writer. A batch past the record target is cut into records that replay as the
/// whole batch.
#[test]
fn a_huge_batch_becomes_several_records_that_replay_whole() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(dir.path(), FsyncPolicy::Never), 1, 0).unwrap();
    let mut huge = WriteBatch::new();
    let long = "x".repeat(1000);
    for id in 0..6_000 {
        let id = format!("{long}{id}");
        let level = [LevelName::new("accelerator", &id), LevelName::NONE];
        huge.push("c", "h", level, "power", 1_700_000_000, id.len() as f32);
    }
    let expected = describe(std::slice::from_ref(&huge));
    let appended = append(&wal, huge).unwrap();
    wal.close();
    let (seen, report) = replay_all(dir.path());
    assert!(report.records >= 2, "{report:?}");
    assert_eq!(appended.sequence, report.records - 1);
    assert_eq!(seen, expected);
}

#[test]
fn a_record_numbered_u64_max_is_read_without_overflow() {
    // Goal: a record whose checksum holds but whose sequence number is u64::MAX (what the
    // fuzz target wal_segment made) neither overflows the reader's next sequence nor its count
    // of records lost, whether it is read as a record or found past damage.
    let dir = tempfile::tempdir().unwrap();
    let (path, ends) = segment_with_records(dir.path(), 5);
    let mut bytes = std::fs::read(&path).unwrap();
    for record in [1, 3] {
        let start = ends[record - 1] as usize;
        let sequence_at = start + format::RECORD_HEADER_BYTES as usize + 1;
        bytes[sequence_at..sequence_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        format::finish_record(&mut bytes[..ends[record] as usize], start).unwrap();
    }
    // Damage in record 2: the reader looks past it and finds record 3's number.
    bytes[ends[1] as usize + 10] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let (_, report) = replay_all(dir.path());
    assert_eq!(report.next_sequence, u64::MAX, "{report:?}");
    assert!(!report.damage.is_empty(), "{report:?}");
}
