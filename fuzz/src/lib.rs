//! What several fuzz targets share: a scratch directory for the readers that take a path, and
//! the framing of the checksummed formats.
//!
//! A checksum stops a mutated input at the frame: a fuzzer cannot guess a CRC, so the
//! decoders behind it would only ever see the seeds. The targets of checksummed formats
//! therefore take the input two ways, chosen by its first byte: as the file itself (the
//! framing and the checksum checks), or as payloads the target frames with correct lengths
//! and checksums (the decoders behind them). The framing here is written from the format
//! documentation (`strata_wal::format`, `strata_wal::snapshot`, `strata_ccms`), not shared
//! with the writers, so a writer's bug does not hide a reader's.

use std::path::PathBuf;

/// A directory of this process's own under the system's temporary directory (created once;
/// the targets overwrite their files in it on every input).
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-fuzz-{}", std::process::id()));
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
    }
    dir
}

/// Splits `data` into payloads: each is preceded by one length byte (the rest of the input
/// if it claims more), so a fuzzer mutates the number, the sizes and the contents of
/// records independently.
pub fn payloads(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((&length, rest)) = data.split_first() {
        let length = usize::from(length).min(rest.len());
        let (payload, after) = rest.split_at(length);
        out.push(payload);
        data = after;
    }
    out
}

/// A WAL segment (`strata_wal::format`): header of `version` for segment `segment` whose
/// first sequence number is `first_sequence`, then each payload framed as a record (length,
/// CRC32C of the length and the payload).
pub fn wal_segment(version: u32, segment: u64, first_sequence: u64, records: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"STRATAWL");
    out.extend_from_slice(&version.to_le_bytes());
    let mut covered = Vec::new();
    covered.extend_from_slice(b"STRATAWL");
    covered.extend_from_slice(&version.to_le_bytes());
    covered.extend_from_slice(&segment.to_le_bytes());
    if version >= 3 {
        covered.extend_from_slice(&first_sequence.to_le_bytes());
    }
    out.extend_from_slice(&crc32c::crc32c(&covered).to_le_bytes());
    out.extend_from_slice(&segment.to_le_bytes());
    if version >= 3 {
        out.extend_from_slice(&first_sequence.to_le_bytes());
    }
    for payload in records {
        let length = (payload.len() as u32).to_le_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&length), payload);
        out.extend_from_slice(&length);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(payload);
    }
    out
}

/// A snapshot pack (`strata_wal::snapshot`) of `version`: header, then for versions 2 and 3
/// each payload as a host entry (length, CRC32C, payload) and the end marker; for version 1
/// the first payload, the CRC32C of everything before it and the end marker.
pub fn snapshot_pack(version: u32, hosts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"STRATASN");
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    if version == 1 {
        out.extend_from_slice(hosts.first().copied().unwrap_or_default());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
    } else {
        for payload in hosts {
            out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
            out.extend_from_slice(payload);
        }
        out.extend_from_slice(&0u64.to_le_bytes());
    }
    out.extend_from_slice(b"SNAPEND!");
    out
}

/// A cc-metric-store `current.wal` (`strata_ccms`): the file magic, then each payload as a
/// record (record magic, length, payload, CRC-32/IEEE of the payload).
pub fn ccms_wal(records: &[&[u8]]) -> Vec<u8> {
    let mut out = strata_ccms::WAL_FILE_MAGIC.to_le_bytes().to_vec();
    for payload in records {
        out.extend_from_slice(&strata_ccms::WAL_RECORD_MAGIC.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    }
    out
}
