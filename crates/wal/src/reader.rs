//! Reading segments back: replay at startup, and `strata check`.
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

use crate::codec::Definitions;
use crate::format::{self, Frame};
use crate::{Error, Position, Record, Result};
use std::fs;
use std::path::{Path, PathBuf};
use strata_store::WriteBatch;

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
    let segments: Vec<SegmentFile> = list_segments(directory)?
        .into_iter()
        .filter(|s| s.segment >= from_segment)
        .collect();
    let mut report = ReplayReport::default();
    let mut batch = WriteBatch::new();
    let mut definitions = Definitions::default();
    // A damaged segment whose lost records are counted when the next good record shows up.
    let mut pending_loss: Option<usize> = None;
    let mut expected = from_segment;
    for (index, file) in segments.iter().enumerate() {
        if file.segment > expected {
            let reason = match file.segment - expected {
                1 => format!("segment {expected} is missing"),
                _ => format!("segments {expected} to {} are missing", file.segment - 1),
            };
            report.damage.push(Damage {
                segment: expected,
                offset: 0,
                reason,
                records_lost: None,
            });
            pending_loss = Some(report.damage.len() - 1);
        }
        expected = file.segment + 1;
        let newest = index + 1 == segments.len();
        let bytes = fs::read(&file.path).map_err(|e| Error::io("reading", &file.path, e))?;
        report.segments += 1;
        report.last_segment = Some(file.segment);
        definitions.clear();
        let outcome = read_segment(
            file,
            &bytes,
            newest,
            &mut definitions,
            &mut batch,
            |record, sequence, size| {
                if let (Some(damage), Some(last)) = (pending_loss.take(), report.last_sequence) {
                    report.damage[damage].records_lost = Some(sequence.saturating_sub(last + 1));
                }
                report.records += 1;
                if let Record::Batch(batch) = &record {
                    report.samples += batch.len() as u64;
                }
                report.last_sequence = Some(sequence);
                apply(record, size);
            },
        );
        match outcome {
            SegmentEnd::Clean => {}
            SegmentEnd::TornTail { offset } => {
                let position = Position {
                    segment: file.segment,
                    offset,
                };
                report.torn_tail = Some((position, bytes.len() as u64 - offset));
            }
            SegmentEnd::Damaged {
                offset,
                reason,
                sequence_after,
            } => {
                let records_lost = match (sequence_after, report.last_sequence) {
                    (Some(after), Some(last)) => Some(after.saturating_sub(last)),
                    _ => None,
                };
                report.damage.push(Damage {
                    segment: file.segment,
                    offset,
                    reason,
                    records_lost,
                });
                pending_loss = Some(report.damage.len() - 1);
            }
        }
    }
    Ok(report)
}

enum SegmentEnd {
    Clean,
    TornTail {
        offset: u64,
    },
    Damaged {
        offset: u64,
        reason: String,
        /// The highest sequence number of a valid record found after the damage.
        sequence_after: Option<u64>,
    },
}

fn read_segment(
    file: &SegmentFile,
    bytes: &[u8],
    newest: bool,
    definitions: &mut Definitions,
    batch: &mut WriteBatch,
    mut apply: impl FnMut(Record<'_>, u64, u64),
) -> SegmentEnd {
    let header_ok =
        format::decode_segment_header(bytes).and_then(|number| match number == file.segment {
            true => Ok(()),
            false => Err(Error::SegmentHeader(
                "segment number differs from the file name",
            )),
        });
    if let Err(error) = header_ok {
        // A newest segment shorter than its header was being created during the crash.
        if newest && (bytes.len() as u64) < format::SEGMENT_HEADER_BYTES {
            return SegmentEnd::TornTail { offset: 0 };
        }
        return SegmentEnd::Damaged {
            offset: 0,
            reason: error.to_string(),
            sequence_after: None,
        };
    }
    let mut offset = format::SEGMENT_HEADER_BYTES as usize;
    loop {
        let rest = bytes.get(offset..).unwrap_or_default();
        let reason = match format::read_frame(rest) {
            Frame::End => return SegmentEnd::Clean,
            Frame::Record(payload) => {
                batch.clear();
                match definitions.decode_record(payload, batch) {
                    Ok((sequence, free)) => {
                        let size = format::RECORD_HEADER_BYTES + payload.len() as u64;
                        let record = match &free {
                            Some(free) => Record::Free(free),
                            None => Record::Batch(batch),
                        };
                        apply(record, sequence, size);
                        offset += size as usize;
                        continue;
                    }
                    Err(error) => error.to_string(),
                }
            }
            Frame::Truncated => "record cut off by the end of the segment".to_owned(),
            Frame::Corrupt { reason } => reason.to_owned(),
        };
        let sequence_after = last_valid_sequence_after(bytes, offset + 1);
        if newest && sequence_after.is_none() {
            return SegmentEnd::TornTail {
                offset: offset as u64,
            };
        }
        return SegmentEnd::Damaged {
            offset: offset as u64,
            reason,
            sequence_after,
        };
    }
}

/// Looks for valid records after damage, byte by byte, and returns the highest sequence
/// number among them. A cheap check (record kind byte) comes before the checksum, so the scan
/// stays linear in practice.
fn last_valid_sequence_after(bytes: &[u8], start: usize) -> Option<u64> {
    let mut highest = None;
    let mut offset = start;
    while offset + format::RECORD_HEADER_BYTES as usize + 9 <= bytes.len() {
        let rest = &bytes[offset..];
        if matches!(rest.get(format::RECORD_HEADER_BYTES as usize), Some(1 | 2))
            && let Frame::Record(payload) = format::read_frame(rest)
            && let Some(Ok(sequence)) = payload.get(1..9).map(<[u8; 8]>::try_from)
        {
            highest = Some(u64::from_le_bytes(sequence));
            offset += format::RECORD_HEADER_BYTES as usize + payload.len();
            continue;
        }
        offset += 1;
    }
    highest
}

/// Cuts a torn tail off the newest segment so that the next start does not report it again.
pub fn truncate_torn_tail(directory: &Path, position: Position) -> Result<()> {
    let path = directory.join(segment_file_name(position.segment));
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    if position.offset < format::SEGMENT_HEADER_BYTES {
        drop(file);
        return fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e));
    }
    file.set_len(position.offset)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("truncating", &path, e))
}
