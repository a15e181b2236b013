//! The streaming reader: tailing the live log beside the writer, resuming at a position,
//! segments deleted under it, old segment versions, and sequence numbers across restarts.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Duration;
use strata_store::{LevelName, WriteBatch};
use strata_wal::{
    Appended, Damage, Entry, Event, FIRST_SEGMENT, Free, FsyncPolicy, LogReader, OwnedRecord,
    Position, Refs, Wal, WalConfig, format, list_segments, oldest_sequence, replay,
};

fn config(directory: &Path, segment_bytes: u64) -> WalConfig {
    WalConfig {
        directory: directory.to_owned(),
        fsync: FsyncPolicy::Never,
        segment_bytes,
        queue_depth: 1024,
    }
}

/// `n` samples of host `h<writer>`, their values telling the record apart.
fn batch(writer: u32, record: u32, n: u32) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for i in 0..n {
        let id = (i % 4).to_string();
        let level = [LevelName::new("hwthread", &id), LevelName::NONE];
        let host = format!("h{writer}");
        let t = 1_700_000_000 + i64::from(record) * 60;
        batch.push("c", &host, level, "cpu", t, (record * 1000 + i) as f32);
    }
    batch
}

fn append(wal: &Wal, batch: WriteBatch) -> Appended {
    let (sender, receiver) = mpsc::channel();
    wal.append(
        batch,
        Box::new(move |result, _| {
            let _ = sender.send(result);
        }),
    );
    receiver.recv().expect("completion").expect("append")
}

fn rotate(wal: &Wal) -> Position {
    let (sender, receiver) = mpsc::channel();
    wal.rotate(Box::new(move |result| {
        let _ = sender.send(result);
    }));
    receiver.recv().expect("completion").expect("rotation")
}

fn start(segment: u64) -> Position {
    Position { segment, offset: 0 }
}

/// Every event of an offline reader to the end of the log.
fn read_all(directory: &Path, from: Position) -> (Vec<Entry>, Vec<Damage>) {
    let mut reader = LogReader::open(directory, from, None).unwrap();
    let (mut entries, mut damage) = (Vec::new(), Vec::new());
    while let Some(event) = reader.next(Duration::ZERO).unwrap() {
        match event {
            Event::Record(entry) => entries.push(entry),
            Event::Damage(found) => damage.push(found),
        }
    }
    (entries, damage)
}

fn sequences(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.sequence).collect()
}

/// The CPU time this thread has used, in clock ticks (Linux: `/proc/thread-self/stat`).
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name (which is in parentheses): utime and stime are 12 and 13.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Goal: a reader tailing the live log beside writers on several threads, with a segment
/// every few KB, sees every record exactly once, in order, and never an in-flight group as
/// damage or a torn tail.
#[test]
fn a_tailing_reader_sees_every_record_once_in_order_while_writers_append() {
    const WRITERS: u32 = 4;
    const RECORDS: u32 = 150;
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(config(dir.path(), 4096), FIRST_SEGMENT, 0).unwrap());
    let mut reader =
        LogReader::open(dir.path(), start(FIRST_SEGMENT), Some(wal.committed())).unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                for record in 0..RECORDS {
                    append(&wal, batch(writer, record, 1 + record % 7));
                }
            })
        })
        .collect();
    let total = u64::from(WRITERS * RECORDS);
    let mut entries: Vec<Entry> = Vec::new();
    while (entries.len() as u64) < total {
        match reader.next(Duration::from_secs(30)).unwrap() {
            Some(Event::Record(entry)) => {
                if let Some(previous) = entries.last() {
                    // Contiguous: the next record starts where the previous ended, or at the
                    // start of the next segment.
                    assert!(
                        entry.start == previous.end
                            || entry.start.segment == previous.end.segment + 1,
                        "{:?} after {:?}",
                        entry.start,
                        previous.end
                    );
                }
                assert_eq!(reader.position(), entry.end);
                entries.push(entry);
            }
            Some(Event::Damage(damage)) => panic!("damage while tailing: {damage:?}"),
            None => panic!("no record within 30 s after {}", entries.len()),
        }
    }
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(sequences(&entries), (0..total).collect::<Vec<_>>());
    // Each writer's records arrive in the order it appended them.
    for writer in 0..WRITERS {
        let host = format!("h{writer}");
        let records: Vec<f32> = entries
            .iter()
            .filter_map(|e| match &e.record {
                OwnedRecord::Batch(b) => b
                    .iter()
                    .next()
                    .filter(|s| s.key.host == host)
                    .map(|s| s.value),
                OwnedRecord::Free(_) => None,
            })
            .collect();
        let expected: Vec<f32> = (0..RECORDS).map(|r| (r * 1000) as f32).collect();
        assert_eq!(records, expected, "writer {writer}");
    }
    let segments = list_segments(dir.path()).unwrap().len();
    assert!(
        segments > 5,
        "only {segments} segments: no rotation under the reader"
    );
    // Nothing more: the reader waits, then says so.
    assert!(reader.next(Duration::from_millis(10)).unwrap().is_none());
    drop(wal);
    // The log closed: no wait at all.
    assert!(reader.next(Duration::from_secs(3600)).unwrap().is_none());
}

/// Goal: a caught-up reader blocks on the committed position (no CPU spent polling), returns
/// `None` after its wait, and wakes for a record appended meanwhile.
#[test]
fn a_caught_up_reader_waits_without_spinning_and_wakes_on_an_append() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(config(dir.path(), 1 << 20), FIRST_SEGMENT, 0).unwrap());
    append(&wal, batch(0, 0, 3));
    let mut reader =
        LogReader::open(dir.path(), start(FIRST_SEGMENT), Some(wal.committed())).unwrap();
    assert!(matches!(
        reader.next(Duration::ZERO).unwrap(),
        Some(Event::Record(_))
    ));
    let ticks = thread_cpu_ticks();
    let waited = std::time::Instant::now();
    assert!(reader.next(Duration::from_millis(500)).unwrap().is_none());
    assert!(waited.elapsed() >= Duration::from_millis(500));
    // A spinning reader would have used ~50 ticks (100 Hz) in 500 ms.
    let used = thread_cpu_ticks() - ticks;
    assert!(used <= 10, "{used} ticks of CPU while waiting");
    // An append wakes a reader waiting for an hour.
    let appender = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            append(&wal, batch(0, 1, 3));
        })
    };
    match reader.next(Duration::from_secs(3600)).unwrap() {
        Some(Event::Record(entry)) => assert_eq!(entry.sequence, 1),
        other => panic!("{other:?}"),
    }
    appender.join().unwrap();
}

/// Goal: bytes after the committed position (a group being written) are neither handed out
/// nor called damage by a tailing reader; an offline reader calls them a torn tail.
#[test]
fn a_tailing_reader_never_reads_past_the_committed_position() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(dir.path(), 1 << 20), FIRST_SEGMENT, 0).unwrap();
    append(&wal, batch(0, 0, 3));
    let segment = &list_segments(dir.path()).unwrap()[0].path;
    // What a write in progress looks like to a reader: half a record.
    let mut half = std::fs::read(segment).unwrap();
    half.drain(..format::SEGMENT_HEADER_BYTES as usize);
    half.truncate(half.len() / 2);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(segment)
        .unwrap();
    std::io::Write::write_all(&mut file, &half).unwrap();
    let mut reader =
        LogReader::open(dir.path(), start(FIRST_SEGMENT), Some(wal.committed())).unwrap();
    assert!(matches!(
        reader.next(Duration::ZERO).unwrap(),
        Some(Event::Record(_))
    ));
    assert!(reader.next(Duration::from_millis(20)).unwrap().is_none());
    let mut offline = LogReader::open(dir.path(), start(FIRST_SEGMENT), None).unwrap();
    assert!(matches!(
        offline.next(Duration::ZERO).unwrap(),
        Some(Event::Record(_))
    ));
    assert!(offline.next(Duration::ZERO).unwrap().is_none());
    assert!(offline.torn_tail().is_some());
}

/// Goal: a reader opened at an `Entry::end` in the middle of a segment goes on with the next
/// record, decoding the series the earlier records defined.
#[test]
fn a_reader_opened_at_an_entry_end_resumes_with_the_next_record() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(dir.path(), 1 << 20), FIRST_SEGMENT, 0).unwrap();
    for record in 0..6 {
        append(&wal, batch(0, record, 5));
    }
    wal.close();
    let (all, damage) = read_all(dir.path(), start(FIRST_SEGMENT));
    assert!(damage.is_empty(), "{damage:?}");
    for (index, entry) in all.iter().enumerate() {
        let (rest, damage) = read_all(dir.path(), entry.end);
        assert!(damage.is_empty(), "{damage:?}");
        assert_eq!(sequences(&rest), sequences(&all[index + 1..]));
        // The later records use series defined only by the first one: they decode in full.
        for (resumed, original) in rest.iter().zip(&all[index + 1..]) {
            let (OwnedRecord::Batch(a), OwnedRecord::Batch(b)) =
                (&resumed.record, &original.record)
            else {
                panic!("not batches");
            };
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
    }
    // A position inside a record is reported, and reading goes on after that record.
    let inside = Position {
        segment: FIRST_SEGMENT,
        offset: all[2].start.offset + 3,
    };
    let (rest, damage) = read_all(dir.path(), inside);
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert_eq!(sequences(&rest), [3, 4, 5]);
}

/// A sample as `cluster/host/level/level/metric@t=v`.
fn sample_text(key: strata_store::SeriesKey<'_>, timestamp_s: i64, value: f32) -> String {
    format!(
        "{}/{}/{}/{}/{}@{timestamp_s}={value}",
        key.cluster, key.host, key.levels[0], key.levels[1], key.metric
    )
}

/// (sequence, samples) of every batch record an offline reader by name reads from `from`.
fn read_by_name(directory: &Path, from: Position) -> Vec<(u64, Vec<String>)> {
    read_all(directory, from)
        .0
        .into_iter()
        .filter_map(|entry| match entry.record {
            OwnedRecord::Batch(batch) => Some((
                entry.sequence,
                batch
                    .iter()
                    .map(|s| sample_text(s.key, s.timestamp_s, s.value))
                    .collect(),
            )),
            OwnedRecord::Free(_) => None,
        })
        .collect()
}

/// The same from a reader by ref, each ref resolved through the definitions it handed out
/// (refs are per segment); damage is skipped as by name.
fn read_by_ref(directory: &Path, from: Position) -> Vec<(u64, Vec<String>)> {
    let mut reader = LogReader::<Refs>::open_as(directory, from, None).unwrap();
    let (mut segment, mut names) = (None, Vec::<strata_wal::SeriesDefinition>::new());
    let mut records = Vec::new();
    while let Some(event) = reader.next(Duration::ZERO).unwrap() {
        let Event::Record(entry) = event else {
            continue;
        };
        if segment != Some(entry.start.segment) {
            segment = Some(entry.start.segment);
            names.clear();
        }
        let OwnedRecord::Batch(batch) = entry.record else {
            continue;
        };
        for definition in &batch.defined {
            assert_eq!(definition.series as usize, names.len(), "refs in order");
            names.push(definition.clone());
        }
        let samples = batch
            .samples
            .iter()
            .map(|s| sample_text(names[s.series as usize].key(), s.timestamp_s, s.value))
            .collect();
        records.push((entry.sequence, samples));
        reader.recycle(batch);
    }
    records
}

/// Goal: a reader by ref hands out the same samples as a reader by name, from every start
/// position — across segments, after a free, and opened inside a segment, where the
/// definitions of the records before its position come with its first record.
#[test]
fn a_reader_by_ref_sees_what_a_reader_by_name_sees_from_every_position() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(dir.path(), 1 << 20), FIRST_SEGMENT, 0).unwrap();
    for record in 0..4 {
        append(&wal, batch(record % 2, record, 6));
    }
    let (sender, receiver) = mpsc::channel();
    let free = Free {
        selectors: vec![vec!["c".into()]],
        before_s: 1,
    };
    wal.free(
        free,
        Box::new(move |result| {
            let _ = sender.send(result);
        }),
    );
    receiver.recv().unwrap().unwrap();
    rotate(&wal);
    for record in 4..7 {
        append(&wal, batch(record % 3, record, 5));
    }
    wal.close();
    let (all, _) = read_all(dir.path(), start(FIRST_SEGMENT));
    assert_eq!(all.len(), 8);
    let starts = std::iter::once(start(FIRST_SEGMENT)).chain(all.iter().map(|e| e.end));
    for from in starts {
        assert_eq!(
            read_by_ref(dir.path(), from),
            read_by_name(dir.path(), from),
            "from {from}"
        );
    }
    assert_eq!(read_by_name(dir.path(), start(FIRST_SEGMENT)).len(), 7);
}

/// Goal: the oldest sequence the log holds follows retention (the forwarder's hint drops
/// marks of records before it).
#[test]
fn the_oldest_sequence_is_the_oldest_segments_first() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(oldest_sequence(dir.path()), None);
    let wal = Wal::open(config(dir.path(), 1 << 20), FIRST_SEGMENT, 5).unwrap();
    for record in 0..3 {
        append(&wal, batch(0, record, 2));
    }
    rotate(&wal);
    append(&wal, batch(0, 3, 2));
    wal.close();
    assert_eq!(oldest_sequence(dir.path()), Some(5));
    let segments = list_segments(dir.path()).unwrap();
    std::fs::remove_file(&segments[0].path).unwrap();
    assert_eq!(oldest_sequence(dir.path()), Some(8));
}

/// Goal: a segment deleted under a reader (retention removed it between listing and
/// opening) is a gap, not a failure; the reader goes on with the next segment, and a segment
/// it has open stays readable.
#[test]
fn a_segment_deleted_under_a_reader_is_a_gap_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(dir.path(), 1 << 20), FIRST_SEGMENT, 0).unwrap();
    for record in 0..12 {
        append(&wal, batch(0, record, 5));
        if record % 3 == 2 {
            rotate(&wal);
        }
    }
    let mut reader =
        LogReader::open(dir.path(), start(FIRST_SEGMENT), Some(wal.committed())).unwrap();
    let first = match reader.next(Duration::ZERO).unwrap() {
        Some(Event::Record(entry)) => entry,
        other => panic!("{other:?}"),
    };
    assert_eq!(first.sequence, 0);
    let segments = list_segments(dir.path()).unwrap();
    // Segment 1 is open in the reader; segment 2 is not yet.
    std::fs::remove_file(&segments[0].path).unwrap();
    std::fs::remove_file(&segments[1].path).unwrap();
    let mut events = Vec::new();
    while let Some(event) = reader.next(Duration::from_millis(20)).unwrap() {
        events.push(event);
    }
    let described: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::Record(entry) => entry.sequence.to_string(),
            Event::Damage(damage) => {
                format!("gap {} lost {:?}", damage.segment, damage.records_lost)
            }
        })
        .collect();
    // Segment 2 held records 3 to 5.
    assert_eq!(
        described,
        [
            "1",
            "2",
            "gap 2 lost Some(3)",
            "6",
            "7",
            "8",
            "9",
            "10",
            "11"
        ]
    );
    // Opened at a deleted segment, a reader starts quietly at the oldest one after it.
    let (entries, damage) = read_all(
        dir.path(),
        Position {
            segment: 2,
            offset: 100,
        },
    );
    assert!(damage.is_empty(), "{damage:?}");
    assert_eq!(sequences(&entries), (6..12).collect::<Vec<_>>());
}

/// Goal: corruption in the middle of a sealed segment, met by a tailing reader, is one
/// damage with the records lost; the reader goes on in the writer's segment and then waits.
#[test]
fn a_tailing_reader_reports_damage_in_a_sealed_segment_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(dir.path(), 1 << 20), FIRST_SEGMENT, 0).unwrap();
    let ends: Vec<Position> = (0..4)
        .map(|r| append(&wal, batch(0, r, 5)).position)
        .collect();
    rotate(&wal);
    append(&wal, batch(0, 4, 5));
    let path = &list_segments(dir.path()).unwrap()[0].path;
    let mut bytes = std::fs::read(path).unwrap();
    bytes[ends[1].offset as usize + 12] ^= 0x10;
    std::fs::write(path, &bytes).unwrap();
    let mut reader =
        LogReader::open(dir.path(), start(FIRST_SEGMENT), Some(wal.committed())).unwrap();
    let mut described = Vec::new();
    while let Some(event) = reader.next(Duration::from_millis(20)).unwrap() {
        described.push(match event {
            Event::Record(entry) => entry.sequence.to_string(),
            Event::Damage(damage) => format!(
                "damage {}:{} lost {:?}",
                damage.segment, damage.offset, damage.records_lost
            ),
        });
    }
    let damage = format!("damage 1:{} lost Some(2)", ends[1].offset);
    assert_eq!(described, ["0", "1", damage.as_str(), "4"]);
    // Then the next append, as soon as it is committed.
    let appender = std::thread::spawn(move || append(&wal, batch(0, 5, 5)).sequence);
    match reader.next(Duration::from_secs(3600)).unwrap() {
        Some(Event::Record(entry)) => assert_eq!(entry.sequence, 5),
        other => panic!("{other:?}"),
    }
    assert_eq!(appender.join().unwrap(), 5);
}

/// Goal: a length field above the format's bound is damage, read as such without trying to
/// hold a record of that size.
#[test]
fn a_record_length_above_the_bound_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(dir.path(), 1 << 20), FIRST_SEGMENT, 0).unwrap();
    let ends: Vec<Position> = (0..3)
        .map(|r| append(&wal, batch(0, r, 5)).position)
        .collect();
    rotate(&wal);
    append(&wal, batch(0, 3, 5));
    wal.close();
    let path = &list_segments(dir.path()).unwrap()[0].path;
    let mut bytes = std::fs::read(path).unwrap();
    let at = ends[0].offset as usize;
    bytes[at..at + 4].copy_from_slice(&(format::RECORD_BYTES_MAX + 1).to_le_bytes());
    std::fs::write(path, &bytes).unwrap();
    let (entries, damage) = read_all(dir.path(), start(FIRST_SEGMENT));
    assert_eq!(sequences(&entries), [0, 3]);
    assert_eq!(damage.len(), 1);
    assert_eq!(
        (damage[0].offset, damage[0].records_lost),
        (ends[0].offset, Some(2))
    );
    assert!(damage[0].reason.contains("length"), "{damage:?}");
}

/// Goal: issue 7 item 4. Sequence numbers used to start at 0 again after a clean restart (a
/// snapshot had rotated the log, the newest segment had no record). The segment header now
/// carries its first sequence number, and replay reports where numbering goes on.
#[test]
fn sequence_numbers_go_on_across_a_restart_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let mut next_segment = FIRST_SEGMENT;
    let mut next_sequence = 0;
    for run in 0..3 {
        let wal = Wal::open(config(dir.path(), 1 << 20), next_segment, next_sequence).unwrap();
        for record in 0..4 {
            append(&wal, batch(0, run * 10 + record, 3));
        }
        // What a snapshot at shutdown does: rotate, then delete what it covers.
        let rotated = rotate(&wal);
        wal.close();
        for segment in list_segments(dir.path()).unwrap() {
            if segment.segment < rotated.segment {
                std::fs::remove_file(&segment.path).unwrap();
            }
        }
        let report = replay(dir.path(), rotated.segment, |_, _| {}).unwrap();
        assert_eq!((report.records, report.last_sequence), (0, None));
        assert_eq!(report.next_sequence, u64::from(run + 1) * 4);
        next_segment = report.last_segment.unwrap() + 1;
        next_sequence = report.next_sequence;
    }
    // Every run's records, kept this time: numbers strictly increase across the restarts.
    let dir = tempfile::tempdir().unwrap();
    let (mut next_segment, mut next_sequence) = (FIRST_SEGMENT, 0);
    for run in 0..3 {
        let wal = Wal::open(config(dir.path(), 1 << 20), next_segment, next_sequence).unwrap();
        append(&wal, batch(0, run, 3));
        rotate(&wal);
        wal.close();
        let report = replay(dir.path(), FIRST_SEGMENT, |_, _| {}).unwrap();
        next_segment = report.last_segment.unwrap() + 1;
        next_sequence = report.next_sequence;
    }
    let (entries, damage) = read_all(dir.path(), start(FIRST_SEGMENT));
    assert!(damage.is_empty(), "{damage:?}");
    assert_eq!(sequences(&entries), [0, 1, 2]);
}

/// Goal: segments written by earlier versions (1: batches only; 2: frees too; both with a
/// 24-byte header) are still read. The fixtures were written by the version 2 writer.
#[test]
fn version_1_and_2_segments_are_read() {
    for (fixture, records) in [
        (&include_bytes!("fixtures/segment-v1.wal")[..], 2),
        (&include_bytes!("fixtures/segment-v2.wal")[..], 3),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00000000000000000007.wal"), fixture).unwrap();
        let (entries, damage) = read_all(dir.path(), start(7));
        assert!(damage.is_empty(), "{damage:?}");
        assert_eq!(sequences(&entries), (40..40 + records).collect::<Vec<_>>());
        assert_eq!(
            entries[0].start.offset,
            format::SEGMENT_HEADER_BYTES_BEFORE_V3
        );
        let mut samples = Vec::new();
        for entry in &entries {
            match &entry.record {
                OwnedRecord::Batch(batch) => samples.extend(batch.iter().map(|s| {
                    format!(
                        "{}/{}/{}={}@{}",
                        s.key.host, s.key.levels[0], s.key.metric, s.value, s.timestamp_s
                    )
                })),
                OwnedRecord::Free(free) => assert_eq!(
                    free,
                    &Free {
                        selectors: vec![vec!["c".into(), "h1".into()]],
                        before_s: 1_700_000_000
                    }
                ),
            }
        }
        assert_eq!(samples.len(), 12);
        assert_eq!(samples[0], "h0/hwthread0/cpu=0@1700000000");
        assert_eq!(samples[11], "h1/hwthread2/cpu=1.625@1700000060");
        // Resuming inside an old segment works the same.
        let (rest, _) = read_all(dir.path(), entries[0].end);
        assert_eq!(sequences(&rest), sequences(&entries[1..]));
        // Replay says where numbering goes on: version 1 and 2 headers do not carry it.
        let report = replay(dir.path(), 7, |_, _| {}).unwrap();
        assert_eq!(report.next_sequence, 40 + records);
    }
}

/// Found in review: a version 2 segment torn in its first record (a crash of the version 2
/// writer, recovered by this one) is torn at offset 24, inside a version 3 header's length;
/// cutting it off keeps its header instead of removing the file.
#[test]
fn a_torn_first_record_of_a_version_2_segment_keeps_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = include_bytes!("fixtures/segment-v2.wal");
    let path = dir.path().join("00000000000000000007.wal");
    std::fs::write(&path, &fixture[..30]).unwrap();
    let report = replay(dir.path(), 7, |_, _| {}).unwrap();
    let torn = Position {
        segment: 7,
        offset: format::SEGMENT_HEADER_BYTES_BEFORE_V3,
    };
    assert_eq!(report.torn_tail, Some((torn, 6)));
    strata_wal::truncate_torn_tail(dir.path(), torn).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
    let report = replay(dir.path(), 7, |_, _| {}).unwrap();
    assert_eq!(
        (report.records, report.torn_tail, report.segments),
        (0, None, 1)
    );
    assert!(report.damage.is_empty(), "{:?}", report.damage);
}

/// Goal: damage in the middle of a segment (the rest of it skipped), new series in the next
/// segment defined from ref 0 again, every start position: by ref equals by name.
#[test]
fn a_reader_by_ref_sees_what_a_reader_by_name_sees_around_damage() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(dir.path(), 1 << 20), FIRST_SEGMENT, 0).unwrap();
    let mut ends = Vec::new();
    for record in 0..6 {
        ends.push(append(&wal, batch(record % 2, record, 7)).position);
    }
    rotate(&wal);
    for record in 6..10 {
        append(&wal, batch((record + 1) % 3, record, 6));
    }
    rotate(&wal);
    for record in 9..11 {
        append(&wal, batch(record % 2, record, 3));
    }
    wal.close();
    let path = &list_segments(dir.path()).unwrap()[0].path;
    let mut bytes = std::fs::read(path).unwrap();
    bytes[ends[3].offset as usize + 12] ^= 0x10;
    std::fs::write(path, &bytes).unwrap();
    let (all, _) = read_all(dir.path(), start(FIRST_SEGMENT));
    let starts: Vec<Position> = std::iter::once(start(FIRST_SEGMENT))
        .chain(ends.iter().copied())
        .chain(all.iter().map(|e| e.end))
        .collect();
    for from in starts {
        assert_eq!(
            read_by_ref(dir.path(), from),
            read_by_name(dir.path(), from),
            "from {from}"
        );
    }
}
