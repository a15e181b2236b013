//! An endpoint's place in the log, and its hint of what each series already had acknowledged.
//!
//! # Warning
//! These layouts are on disk. Changing one needs a new version and a reader for the old one.
//!
//! Cursor file `<data>/remote-write/<endpoint>.cursor`, little-endian:
//!
//! | field | type (bytes) | meaning |
//! |---|---|---|
//! | magic | `[u8; 8]` | `b"STRATARC"` |
//! | version | u32 (4) | [`CURSOR_VERSION`] |
//! | segment | u64 (8) | the first record not yet acknowledged starts in this segment… |
//! | offset | u64 (8) | …at this byte offset |
//! | crc | u32 (4) | CRC32C of every byte before it |
//!
//! Acknowledged-timestamp hint `<data>/remote-write/<endpoint>.acked`:
//!
//! | field | type (bytes) | meaning |
//! |---|---|---|
//! | magic | `[u8; 8]` | `b"STRATARA"` |
//! | version | u32 (4) | [`CURSOR_VERSION`] |
//! | count | u64 (8) | entries that follow |
//! | entries | count × (u64, u64, u32) | series hash ([`crate::labels::Labels::stable_hash`]), and the log position of its newest acknowledged sample: record sequence number, index in the record |
//! | crc | u32 (4) | CRC32C of every byte before it |
//!
//! Both are written atomically (temporary file, fsync, rename, directory fsync). The cursor
//! only ever names a position whose records before it were all acknowledged or deliberately
//! dropped, so a stale cursor costs duplicates, never loss. The hint is only ever at or below
//! what was acknowledged, so a stale or missing hint costs duplicates too. A hint naming a
//! sequence number the log has not reached belongs to another log (the directory was
//! replaced) and is ignored.

use crate::series::Mark;
use crate::{Error, Result};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use strata_wal::Position;

const CURSOR_MAGIC: [u8; 8] = *b"STRATARC";
const HINT_MAGIC: [u8; 8] = *b"STRATARA";

/// The cursor and hint format this build writes and reads.
pub const CURSOR_VERSION: u32 = 1;

const CURSOR_BYTES: usize = 8 + 4 + 8 + 8 + 4;

/// Largest hint file read back: 20 bytes a series, so 50 M series. A larger one is damage.
const HINT_BYTES_MAX: u64 = 1 << 30;

/// Where one endpoint keeps its files.
#[derive(Debug, Clone)]
pub struct CursorFiles {
    cursor: PathBuf,
    hint: PathBuf,
}

/// What was found on disk for an endpoint.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    /// Never forwarded before: start at the log's end.
    Missing,
    Cursor(Position),
    /// Unreadable: the caller starts at the oldest retained record (duplicates, not loss).
    Damaged(String),
}

impl CursorFiles {
    pub fn new(directory: &Path, endpoint: &str) -> Self {
        Self {
            cursor: directory.join(format!("{endpoint}.cursor")),
            hint: directory.join(format!("{endpoint}.acked")),
        }
    }

    pub fn cursor_path(&self) -> &Path {
        &self.cursor
    }

    pub fn hint_exists(&self) -> bool {
        self.hint.exists()
    }

    pub fn load_cursor(&self) -> Saved {
        let bytes = match fs::read(&self.cursor) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Saved::Missing,
            Err(error) => return Saved::Damaged(format!("reading: {error}")),
        };
        match decode_cursor(&bytes) {
            Ok(position) => Saved::Cursor(position),
            Err(reason) => Saved::Damaged(reason.to_owned()),
        }
    }

    pub fn store_cursor(&self, position: Position) -> Result<()> {
        strata_wal::snapshot::write_atomically(&self.cursor, &encode_cursor(position), true)
            .map_err(Error::Wal)
    }

    /// The hint, or empty when it is missing or damaged (logged: only duplicates follow).
    pub fn load_hint(&self) -> HashMap<u64, Mark> {
        match self.read_hint() {
            Ok(hint) => hint,
            Err(reason) => {
                tracing::warn!(
                    path = %self.hint.display(),
                    %reason,
                    "remote write: acknowledged-position hint unreadable; samples resent after \
                     the cursor may arrive twice"
                );
                HashMap::new()
            }
        }
    }

    fn read_hint(&self) -> Result<HashMap<u64, Mark>, String> {
        let bytes = match fs::metadata(&self.hint) {
            Ok(metadata) if metadata.len() > HINT_BYTES_MAX => {
                return Err(format!("{} bytes, more than a hint can be", metadata.len()));
            }
            Ok(_) => fs::read(&self.hint).map_err(|e| e.to_string())?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(HashMap::new());
            }
            Err(error) => return Err(error.to_string()),
        };
        decode_hint(&bytes).map_err(str::to_owned)
    }

    pub fn store_hint(&self, hint: &HashMap<u64, Mark>) -> Result<()> {
        strata_wal::snapshot::write_atomically(&self.hint, &encode_hint(hint), true)
            .map_err(Error::Wal)
    }
}

fn encode_cursor(position: Position) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(CURSOR_BYTES);
    bytes.extend_from_slice(&CURSOR_MAGIC);
    bytes.extend_from_slice(&CURSOR_VERSION.to_le_bytes());
    bytes.extend_from_slice(&position.segment.to_le_bytes());
    bytes.extend_from_slice(&position.offset.to_le_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

fn decode_cursor(bytes: &[u8]) -> Result<Position, &'static str> {
    let body = checked(bytes, &CURSOR_MAGIC)?;
    if bytes.len() != CURSOR_BYTES {
        return Err("wrong length");
    }
    Ok(Position {
        segment: u64_at(body, 0)?,
        offset: u64_at(body, 8)?,
    })
}

const HINT_ENTRY_BYTES: usize = 20;

fn encode_hint(hint: &HashMap<u64, Mark>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(24 + hint.len() * HINT_ENTRY_BYTES);
    bytes.extend_from_slice(&HINT_MAGIC);
    bytes.extend_from_slice(&CURSOR_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(hint.len() as u64).to_le_bytes());
    for (&series, mark) in hint {
        bytes.extend_from_slice(&series.to_le_bytes());
        bytes.extend_from_slice(&mark.sequence.to_le_bytes());
        bytes.extend_from_slice(&mark.index.to_le_bytes());
    }
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

fn decode_hint(bytes: &[u8]) -> Result<HashMap<u64, Mark>, &'static str> {
    let body = checked(bytes, &HINT_MAGIC)?;
    let count = u64_at(body, 0)?;
    let entries = body.get(8..).ok_or("cut off")?;
    if Some(entries.len() as u64) != count.checked_mul(HINT_ENTRY_BYTES as u64) {
        return Err("entry count differs from the length");
    }
    let mut hint = HashMap::with_capacity(entries.len() / HINT_ENTRY_BYTES);
    for entry in entries.chunks_exact(HINT_ENTRY_BYTES) {
        let index = entry
            .get(16..20)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or("cut off")?;
        let mark = Mark {
            sequence: u64_at(entry, 8)?,
            index,
        };
        hint.insert(u64_at(entry, 0)?, mark);
    }
    Ok(hint)
}

/// Checks magic, version and the trailing CRC; returns the bytes between version and CRC.
fn checked<'a>(bytes: &'a [u8], magic: &[u8; 8]) -> Result<&'a [u8], &'static str> {
    let (content, crc) = bytes
        .split_last_chunk::<4>()
        .filter(|(content, _)| content.len() >= 12)
        .ok_or("cut off")?;
    if !content.starts_with(magic) {
        return Err("not a remote-write cursor file (magic)");
    }
    if crc32c::crc32c(content) != u32::from_le_bytes(*crc) {
        return Err("checksum mismatch");
    }
    let version = u32::from_le_bytes(
        content
            .get(8..12)
            .and_then(|v| v.try_into().ok())
            .ok_or("cut off")?,
    );
    if version != CURSOR_VERSION {
        return Err("unknown version (written by a newer Strata?)");
    }
    content.get(12..).ok_or("cut off")
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, &'static str> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or("cut off")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_and_hint_round_trip() {
        let directory = tempfile::tempdir().unwrap();
        let files = CursorFiles::new(directory.path(), "site-vm");
        assert_eq!(files.load_cursor(), Saved::Missing);
        assert!(files.load_hint().is_empty());
        let position = Position {
            segment: 7,
            offset: 4242,
        };
        files.store_cursor(position).unwrap();
        assert_eq!(files.load_cursor(), Saved::Cursor(position));
        let mark = |sequence, index| Mark { sequence, index };
        let hint = HashMap::from([
            (1, mark(0, 0)),
            (u64::MAX, mark(u64::MAX, u32::MAX)),
            (99, mark(1_700_000, 12)),
        ]);
        files.store_hint(&hint).unwrap();
        assert_eq!(files.load_hint(), hint);
    }

    #[test]
    fn every_damage_is_noticed() {
        let position = Position {
            segment: 3,
            offset: 99,
        };
        let good = encode_cursor(position);
        for at in 0..good.len() {
            let mut bytes = good.clone();
            bytes[at] ^= 0x10;
            assert!(decode_cursor(&bytes).is_err(), "flip at {at}");
        }
        for len in 0..good.len() {
            assert!(decode_cursor(&good[..len]).is_err(), "cut at {len}");
        }
        let mark = |sequence, index| Mark { sequence, index };
        let hint = encode_hint(&HashMap::from([(1, mark(2, 0)), (3, mark(4, 5))]));
        for at in 0..hint.len() {
            let mut bytes = hint.clone();
            bytes[at] ^= 0x01;
            assert!(decode_hint(&bytes).is_err(), "flip at {at}");
        }
        for len in 0..hint.len() {
            assert!(decode_hint(&hint[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn a_damaged_file_is_reported_not_trusted() {
        let directory = tempfile::tempdir().unwrap();
        let files = CursorFiles::new(directory.path(), "e");
        fs::write(files.cursor_path(), b"garbage").unwrap();
        assert!(matches!(files.load_cursor(), Saved::Damaged(_)));
        fs::write(directory.path().join("e.acked"), b"garbage").unwrap();
        assert!(files.load_hint().is_empty());
    }
}
