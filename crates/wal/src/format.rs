//! The bytes of a WAL segment.
//!
//! # Warning
//! This layout is on disk. Changing it needs a new `SEGMENT_VERSION`, a reader for the old
//! version, and a fixture of the old version in `tests/`.
//!
//! Segment file `<directory>/<segment:020>.wal`, all integers little-endian:
//!
//! | field | type (bytes) | meaning |
//! |---|---|---|
//! | magic | `[u8; 8]` | `b"STRATAWL"` |
//! | version | u32 (4) | [`SEGMENT_VERSION`] |
//! | header_crc | u32 (4) | CRC32C of magic, version, segment and first_sequence |
//! | segment | u64 (8) | the segment number, equal to the file name |
//! | first_sequence | u64 (8) | sequence number of the segment's first record (version 3 on) |
//! | records | … | records until the end of the file |
//!
//! The header is [`SEGMENT_HEADER_BYTES`] long; versions 1 and 2 have no `first_sequence`
//! (and their CRC does not cover it): [`SEGMENT_HEADER_BYTES_BEFORE_V3`]. `first_sequence` is
//! the writer's next sequence number when it starts the segment, so an empty segment (what a
//! snapshot's rotation leaves at a clean shutdown) still says where the numbers go on.
//!
//! Record:
//!
//! | field | type (bytes) | meaning |
//! |---|---|---|
//! | length | u32 (4) | payload bytes, ≤ [`RECORD_BYTES_MAX`] (≤ [`RECORD_BYTES_MAX_BEFORE_V3`] in versions 1 and 2) |
//! | crc | u32 (4) | CRC32C of the length field's four bytes and the payload |
//! | payload | `length` bytes | see below |
//!
//! Payload of a batch record (kind 1):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | kind | u8 | 1 = batch |
//! | sequence | u64 | record number, +1 per record across all segments |
//! | definitions | varint n, then n × 5 strings | series first used in this segment, refs assigned in order |
//! | samples | varint n, then n × sample | |
//!
//! Payload of a free record (kind 2, `POST /api/free`; segment version 2 on):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | kind | u8 | 2 = free |
//! | sequence | u64 | as in a batch record |
//! | before | zigzag varint | buffers that ended before this time (Unix s) are freed |
//! | selectors | varint n, then n × (varint m, m strings) | cluster, host, levels (empty = all) |
//!
//! A string is a varint length and UTF-8 bytes: cluster, host, level 1, level 2 (empty when
//! absent), metric. A sample is `varint(zigzag(ref − previous ref) << 1 | timestamp changed)`,
//! then `zigzag varint(timestamp − previous timestamp)` if it changed, then the value as f32.
//! "Previous" starts at 0 in every record, so a record needs nothing but its segment's earlier
//! definitions: any reader can start at any segment boundary. In a steady stream the refs of
//! consecutive samples differ by one and timestamps repeat, so a sample costs five bytes.

use crate::{Error, Free, Result};

/// Magic at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"STRATAWL";

/// The segment format this build writes. Version 2 added free records (kind 2), version 3
/// the header's `first_sequence` and the lower [`RECORD_BYTES_MAX`]; version 1 and 2
/// segments are read as before.
pub const SEGMENT_VERSION: u32 = 3;

/// The oldest segment format this build reads.
pub const SEGMENT_VERSION_OLDEST: u32 = 1;

/// Bytes of the segment header this build writes (version 3).
pub const SEGMENT_HEADER_BYTES: u64 = 32;

/// Bytes of a version 1 or 2 segment header.
pub const SEGMENT_HEADER_BYTES_BEFORE_V3: u64 = 24;

/// Bytes of every version's header up to and including `header_crc`.
const SEGMENT_HEADER_PREFIX_BYTES: usize = 16;

/// Bytes before a record's payload: length and CRC.
pub const RECORD_HEADER_BYTES: u64 = 8;

/// Payload size at which the writer starts a new record for the rest of a batch, far below
/// [`RECORD_BYTES_MAX`] so that a reader never holds a huge record.
pub const RECORD_PAYLOAD_TARGET_BYTES: usize = 4 << 20;

/// Largest record payload written and read (version 3 on). A batch record passes
/// [`RECORD_PAYLOAD_TARGET_BYTES`] by at most one series definition (names are at most a
/// line, 64 KiB); a free record is refused beyond it. A larger length field is damage: a
/// reader holds at most one record of this size.
pub const RECORD_BYTES_MAX: u32 = 2 * RECORD_PAYLOAD_TARGET_BYTES as u32;

/// Largest record payload of a version 1 or 2 segment, from before batches were split.
pub const RECORD_BYTES_MAX_BEFORE_V3: u32 = 256 << 20;

const KIND_BATCH: u8 = 1;
const KIND_FREE: u8 = 2;

/// The CRC32C of a segment header's other fields.
fn header_crc(version: u32, segment: u64, first_sequence: Option<u64>) -> u32 {
    let mut crc = crc32c::crc32c(&SEGMENT_MAGIC);
    crc = crc32c::crc32c_append(crc, &version.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &segment.to_le_bytes());
    match first_sequence {
        Some(first) => crc32c::crc32c_append(crc, &first.to_le_bytes()),
        None => crc,
    }
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segment: u64,
    pub version: u32,
    /// The sequence number of the segment's first record (version 3 on).
    pub first_sequence: Option<u64>,
}

impl SegmentHeader {
    /// Where the first record starts.
    pub fn bytes(&self) -> u64 {
        segment_header_bytes(self.version)
    }

    /// The largest record payload of this segment's version.
    pub fn record_bytes_max(&self) -> u32 {
        match self.version {
            ..3 => RECORD_BYTES_MAX_BEFORE_V3,
            _ => RECORD_BYTES_MAX,
        }
    }
}

fn segment_header_bytes(version: u32) -> u64 {
    match version {
        ..3 => SEGMENT_HEADER_BYTES_BEFORE_V3,
        _ => SEGMENT_HEADER_BYTES,
    }
}

/// The length of the header that starts `bytes`, as far as its version field tells: a file
/// shorter than this was cut off while its header was being written.
pub fn segment_header_length(bytes: &[u8]) -> u64 {
    match bytes.get(8..12) {
        Some(version) => segment_header_bytes(u32::from_le_bytes([
            version[0], version[1], version[2], version[3],
        ])),
        None => SEGMENT_HEADER_BYTES_BEFORE_V3,
    }
}

pub fn encode_segment_header(
    segment: u64,
    first_sequence: u64,
) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    let crc = header_crc(SEGMENT_VERSION, segment, Some(first_sequence));
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    header[16..24].copy_from_slice(&segment.to_le_bytes());
    header[24..32].copy_from_slice(&first_sequence.to_le_bytes());
    header
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let field: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(field))
}

/// Checks the segment header at the start of `bytes`.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader> {
    let short = || Error::SegmentHeader("shorter than a header");
    let prefix = bytes.get(..SEGMENT_HEADER_PREFIX_BYTES).ok_or_else(short)?;
    if prefix[0..8] != SEGMENT_MAGIC {
        return Err(Error::SegmentHeader("not a Strata WAL segment (bad magic)"));
    }
    let version = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
    let crc = u32::from_le_bytes([prefix[12], prefix[13], prefix[14], prefix[15]]);
    let segment = u64_at(bytes, 16).ok_or_else(short)?;
    let first_sequence = match version {
        ..3 => None,
        _ => Some(u64_at(bytes, 24).ok_or_else(short)?),
    };
    if crc != header_crc(version, segment, first_sequence) {
        return Err(Error::SegmentHeader("header checksum mismatch"));
    }
    if !(SEGMENT_VERSION_OLDEST..=SEGMENT_VERSION).contains(&version) {
        return Err(Error::UnsupportedVersion {
            what: "WAL segment",
            found: version,
            supported: SEGMENT_VERSION,
        });
    }
    Ok(SegmentHeader {
        segment,
        version,
        first_sequence,
    })
}

const _: () = assert!(RECORD_PAYLOAD_TARGET_BYTES * 2 <= RECORD_BYTES_MAX as usize);

/// Frames a record (length, CRC, payload) in `out`. The payload must already be in `out`
/// after eight reserved bytes at `record_start`; this fills them in. A payload longer than
/// [`RECORD_BYTES_MAX`] is refused: no reader would accept it.
pub fn finish_record(out: &mut [u8], record_start: usize) -> Result<()> {
    let payload_start = record_start + RECORD_HEADER_BYTES as usize;
    let length = u32::try_from(out.len() - payload_start)
        .ok()
        .filter(|length| *length <= RECORD_BYTES_MAX)
        .ok_or(Error::RecordTooLarge(out.len() - payload_start))?;
    let length_bytes = length.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&length_bytes), &out[payload_start..]);
    out[record_start..record_start + 4].copy_from_slice(&length_bytes);
    out[record_start + 4..payload_start].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// What is at a position of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A record whose checksum is right.
    Record(&'a [u8]),
    /// Nothing more: the segment ends exactly here.
    End,
    /// A record header or payload cut off by the end of the segment.
    Truncated,
    /// A length that cannot be, or a payload whose checksum is wrong.
    Corrupt { reason: &'static str },
}

/// Reads the frame at the start of `bytes`; a length above `length_max` is corrupt.
pub fn read_frame(bytes: &[u8], length_max: u32) -> Frame<'_> {
    if bytes.is_empty() {
        return Frame::End;
    }
    let Some(header) = bytes.get(..RECORD_HEADER_BYTES as usize) else {
        return Frame::Truncated;
    };
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if length == 0 || length > length_max {
        return Frame::Corrupt {
            reason: "impossible record length",
        };
    }
    let end = RECORD_HEADER_BYTES as usize + length as usize;
    let Some(payload) = bytes.get(RECORD_HEADER_BYTES as usize..end) else {
        return Frame::Truncated;
    };
    if crc32c::crc32c_append(crc32c::crc32c(&header[..4]), payload) != crc {
        return Frame::Corrupt {
            reason: "checksum mismatch",
        };
    }
    Frame::Record(payload)
}

pub(crate) use strata_store::varint::{put_varint, unzigzag, zigzag};

pub(crate) fn put_str(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// Encodes the header of a batch payload: kind and sequence.
pub(crate) fn put_batch_start(out: &mut Vec<u8>, sequence: u64) {
    out.push(KIND_BATCH);
    out.extend_from_slice(&sequence.to_le_bytes());
}

/// A cursor over a record payload; every read is bounds-checked.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        let byte = *self
            .bytes
            .get(self.position)
            .ok_or(Error::Malformed("payload ends early"))?;
        self.position += 1;
        Ok(byte)
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    pub(crate) fn f32(&mut self) -> Result<f32> {
        let bytes = self.take(4)?;
        Ok(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// `count` little-endian f32 values, read in one piece.
    pub(crate) fn f32s(&mut self, count: usize) -> Result<Vec<f32>> {
        let bytes = self.take(
            count
                .checked_mul(4)
                .ok_or(Error::Malformed("length overflow"))?,
        )?;
        let mut values = Vec::with_capacity(count);
        values.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        Ok(values)
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Error::Malformed("varint longer than 10 bytes"))
    }

    /// A count of items each at least `item_bytes_min` long: refused when the rest of the
    /// payload cannot hold that many, so a corrupt count never allocates.
    pub(crate) fn count(&mut self, item_bytes_min: usize) -> Result<usize> {
        let count = self.varint()?;
        let remaining = (self.bytes.len() - self.position) as u64;
        if count.saturating_mul(item_bytes_min as u64) > remaining {
            return Err(Error::Malformed("count larger than the payload"));
        }
        Ok(count as usize)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str> {
        let length = self.count(1)?;
        let bytes = self.take(length)?;
        std::str::from_utf8(bytes).map_err(|_| Error::Malformed("name is not UTF-8"))
    }

    /// `length` bytes as they are.
    pub(crate) fn bytes(&mut self, length: usize) -> Result<&'a [u8]> {
        self.take(length)
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8]> {
        let end = self
            .position
            .checked_add(length)
            .ok_or(Error::Malformed("length overflow"))?;
        let bytes = self
            .bytes
            .get(self.position..end)
            .ok_or(Error::Malformed("payload ends early"))?;
        self.position = end;
        Ok(bytes)
    }
}

/// Appends the payload of a free record.
pub(crate) fn put_free(out: &mut Vec<u8>, sequence: u64, free: &Free) {
    out.push(KIND_FREE);
    out.extend_from_slice(&sequence.to_le_bytes());
    put_varint(out, zigzag(free.before_s));
    put_varint(out, free.selectors.len() as u64);
    for selector in &free.selectors {
        put_varint(out, selector.len() as u64);
        for part in selector {
            put_str(out, part);
        }
    }
}

/// The kind of a record, read from the start of its payload with its sequence number.
pub(crate) enum Kind {
    Batch,
    Free,
}

/// Reads the kind and sequence of a payload.
pub(crate) fn read_record_start(cursor: &mut Cursor<'_>) -> Result<(Kind, u64)> {
    let kind = match cursor.u8()? {
        KIND_BATCH => Kind::Batch,
        KIND_FREE => Kind::Free,
        _ => return Err(Error::Malformed("unknown record kind")),
    };
    Ok((kind, cursor.u64()?))
}

/// Reads the rest of a free payload.
pub(crate) fn read_free(cursor: &mut Cursor<'_>) -> Result<Free> {
    let before_s = unzigzag(cursor.varint()?);
    let mut selectors = Vec::new();
    for _ in 0..cursor.count(1)? {
        let mut selector = Vec::new();
        for _ in 0..cursor.count(1)? {
            selector.push(cursor.str()?.to_owned());
        }
        selectors.push(selector);
    }
    if !cursor.is_empty() {
        return Err(Error::Malformed("bytes after the last selector"));
    }
    Ok(Free {
        selectors,
        before_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trips_and_rejects_damage() {
        let header = encode_segment_header(42, 1234);
        let decoded = decode_segment_header(&header).unwrap();
        assert_eq!(
            decoded,
            SegmentHeader {
                segment: 42,
                version: SEGMENT_VERSION,
                first_sequence: Some(1234)
            }
        );
        assert_eq!(decoded.bytes(), SEGMENT_HEADER_BYTES);
        for i in 0..header.len() {
            let mut damaged = header;
            damaged[i] ^= 0x01;
            assert!(decode_segment_header(&damaged).is_err(), "byte {i}");
        }
        for cut in 0..header.len() {
            assert!(decode_segment_header(&header[..cut]).is_err(), "cut {cut}");
            assert!(segment_header_length(&header[..cut]) > cut as u64);
        }
    }

    /// A version 1 or 2 header: 24 bytes, no first sequence, its CRC over the first three
    /// fields.
    fn old_header(version: u32, segment: u64) -> Vec<u8> {
        let mut header = Vec::new();
        header.extend_from_slice(&SEGMENT_MAGIC);
        header.extend_from_slice(&version.to_le_bytes());
        header.extend_from_slice(&header_crc(version, segment, None).to_le_bytes());
        header.extend_from_slice(&segment.to_le_bytes());
        header
    }

    #[test]
    fn newer_versions_are_refused_by_name() {
        let newer = SEGMENT_VERSION + 1;
        let mut header = encode_segment_header(7, 0);
        header[8..12].copy_from_slice(&newer.to_le_bytes());
        let crc = header_crc(newer, 7, Some(0));
        header[12..16].copy_from_slice(&crc.to_le_bytes());
        let error = decode_segment_header(&header).unwrap_err();
        assert!(
            error.to_string().contains(&format!("version {newer}")),
            "{error}"
        );
        // Older versions this build still reads, with their shorter header.
        for version in SEGMENT_VERSION_OLDEST..SEGMENT_VERSION {
            let header = old_header(version, 7);
            let decoded = decode_segment_header(&header).unwrap();
            assert_eq!((decoded.segment, decoded.first_sequence), (7, None));
            assert_eq!(decoded.bytes(), header.len() as u64);
            assert_eq!(segment_header_length(&header), header.len() as u64);
            assert_eq!(decoded.record_bytes_max(), RECORD_BYTES_MAX_BEFORE_V3);
        }
    }

    #[test]
    fn frames_detect_truncation_and_corruption() {
        let mut out = vec![0u8; 8];
        out.extend_from_slice(b"hello");
        finish_record(&mut out, 0).unwrap();
        assert_eq!(read_frame(&out, RECORD_BYTES_MAX), Frame::Record(b"hello"));
        for cut in 1..out.len() {
            assert_eq!(
                read_frame(&out[..cut], RECORD_BYTES_MAX),
                Frame::Truncated,
                "cut {cut}"
            );
        }
        let mut flipped = out.clone();
        flipped[10] ^= 0x20;
        assert!(matches!(
            read_frame(&flipped, RECORD_BYTES_MAX),
            Frame::Corrupt { .. }
        ));
        let mut length = out.clone();
        length[0] = 9; // longer than what follows
        assert_eq!(read_frame(&length, RECORD_BYTES_MAX), Frame::Truncated);
        assert_eq!(
            read_frame(&[0; 16], RECORD_BYTES_MAX),
            Frame::Corrupt {
                reason: "impossible record length"
            }
        );
        assert_eq!(read_frame(&[], RECORD_BYTES_MAX), Frame::End);
        // A length above the segment version's bound is damage, not a record to wait for.
        assert!(matches!(read_frame(&out, 4), Frame::Corrupt { .. }));
    }

    #[test]
    fn varints_and_zigzag_round_trip() {
        for value in [0i64, 1, -1, 63, -64, 64, 1 << 40, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, zigzag(value));
            let mut cursor = Cursor::new(&out);
            assert_eq!(unzigzag(cursor.varint().unwrap()), value);
            assert!(cursor.is_empty());
        }
        let mut cursor = Cursor::new(&[0xff; 11]);
        assert!(cursor.varint().is_err());
    }

    #[test]
    fn counts_larger_than_the_payload_are_refused() {
        let mut out = Vec::new();
        put_varint(&mut out, 1 << 40);
        assert!(Cursor::new(&out).count(1).is_err());
    }
}
