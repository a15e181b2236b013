//! Reading segments back: replay at startup, and `strata check`, both through the streaming
//! [`LogReader`] (offline: without the writer's committed position).
//!
//! A segment is read from its header to its end. What stops a segment:
//! - its clean end;
//! - a torn tail: a record cut off, or damaged bytes with no valid record after them, in the
//!   newest segment. That is what a crash during a write leaves; the records in it were never
//!   acknowledged (under `always`) or are within the fsync window (under `batch`). Replay drops
//!   it and [`truncate_torn_tail`] cuts the file back to the last good record;
//! - a missing segment: a gap in the numbers, reported like damage;
//! - corruption anywhere else: a damaged record in a sealed segment, or with valid records
//!   after it. Replay reports the segment, the offset and how many records were lost (from
//!   the sequence numbers), and goes on with the next segment: the rest of a damaged segment
//!   cannot be trusted to have its series definitions.

use crate::format;
use crate::stream::{Event, LogReader, OwnedRecord};
use crate::{Error, Position, Record, Result};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A segment file in a WAL directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub segment: u64,
    pub path: PathBuf,
    pub bytes: u64,
}

/// The segment file name for a number: `00000000000000000042.wal`.
pub fn segment_file_name(segment: u64) -> String {
    format!("{segment:020}.wal")
}

/// The sequence number of the oldest record the log still holds: the first sequence in the
/// oldest segment's header (version 3 on). `None` without segments, for an older version, or
/// when that header cannot be read: a caller then keeps whatever it keys on sequences.
pub fn oldest_sequence(directory: &Path) -> Option<u64> {
    let oldest = list_segments(directory).ok()?.into_iter().next()?;
    let mut header = [0u8; format::SEGMENT_HEADER_BYTES as usize];
    fs::File::open(&oldest.path)
        .ok()?
        .read_exact(&mut header)
        .ok()?;
    format::decode_segment_header(&header).ok()?.first_sequence
}

/// The segments of `directory`, oldest first. Other files are ignored.
pub fn list_segments(directory: &Path) -> Result<Vec<SegmentFile>> {
    let mut segments = Vec::new();
    let entries = match fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(segments),
        Err(error) => return Err(Error::io("listing", directory, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", directory, e))?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let bytes = entry
            .metadata()
            .map_err(|e| Error::io("reading metadata of", &entry.path(), e))?
            .len();
        segments.push(SegmentFile {
            segment: number,
            path: entry.path(),
            bytes,
        });
    }
    segments.sort_by_key(|s| s.segment);
    Ok(segments)
}

/// Damage found while reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: u64,
    pub offset: u64,
    pub reason: String,
    /// Records known to be lost (from sequence numbers); `None` when it cannot be told.
    pub records_lost: Option<u64>,
}

impl Damage {
    /// Segments `first` up to `next` (which exists) are missing.
    pub(crate) fn missing(first: u64, next: u64) -> Self {
        let reason = match next - first {
            1 => format!("segment {first} is missing"),
            _ => format!("segments {first} to {} are missing", next - 1),
        };
        Self {
            segment: first,
            offset: 0,
            reason,
            records_lost: None,
        }
    }
}

/// What a replay read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub segments: usize,
    pub records: u64,
    pub samples: u64,
    /// A torn tail of the newest segment: where the good records end, and the bytes after.
    pub torn_tail: Option<(Position, u64)>,
    /// Damage that lost acknowledged records.
    pub damage: Vec<Damage>,
    /// Sequence number of the last good record.
    pub last_sequence: Option<u64>,
    /// The newest segment read, if any.
    pub last_segment: Option<u64>,
    /// Where sequence numbers go on: past the last record and past the newest segment
    /// header's first sequence (a segment without records still carries it).
    pub next_sequence: u64,
}

/// Reads every record of the segments numbered `from_segment` and later, oldest first, and
/// hands each record and its size in bytes to `apply` (which may take a record's batch: the
/// reader continues with an empty one). Damage is reported, never silently skipped: a missing
/// segment (a gap in the numbers from `from_segment` on) is damage too.
pub fn replay(
    directory: &Path,
    from_segment: u64,
    mut apply: impl FnMut(Record<'_>, u64),
) -> Result<ReplayReport> {
    let mut report = ReplayReport::default();
    // The reader starts quietly at the oldest segment there is; for recovery, segments
    // missing from where the snapshot says to start are lost records.
    let oldest = list_segments(directory)?
        .into_iter()
        .map(|s| s.segment)
        .find(|&s| s >= from_segment);
    if let Some(oldest) = oldest
        && oldest > from_segment
    {
        report.damage.push(Damage::missing(from_segment, oldest));
    }
    let from = Position {
        segment: from_segment,
        offset: 0,
    };
    let mut reader = LogReader::open(directory, from, None)?;
    while let Some(event) = reader.next(Duration::ZERO)? {
        let entry = match event {
            Event::Damage(damage) => {
                report.damage.push(damage);
                continue;
            }
            Event::Record(entry) => entry,
        };
        report.records += 1;
        report.last_sequence = Some(entry.sequence);
        let size = entry.end.offset - entry.start.offset;
        match entry.record {
            OwnedRecord::Batch(mut batch) => {
                report.samples += batch.len() as u64;
                apply(Record::Batch(&mut batch), size);
                reader.recycle(batch);
            }
            OwnedRecord::Free(free) => apply(Record::Free(&free), size),
        }
    }
    report.segments = reader.segments_read();
    report.last_segment = reader.last_segment();
    report.torn_tail = reader.torn_tail();
    report.next_sequence = reader.next_sequence();
    Ok(report)
}

/// Cuts a torn tail off the newest segment so that the next start does not report it again.
pub fn truncate_torn_tail(directory: &Path, position: Position) -> Result<()> {
    let path = directory.join(segment_file_name(position.segment));
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    // Inside the header (the shortest one: a version 1 or 2 segment may be torn right
    // after its 24 bytes, and keeps them).
    if position.offset < format::SEGMENT_HEADER_BYTES_BEFORE_V3 {
        drop(file);
        return fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e));
    }
    file.set_len(position.offset)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("truncating", &path, e))
}
