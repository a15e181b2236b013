//! Snapshots: one file per host, grouped in generations.
//!
//! A generation is named after the WAL segment it starts replay from: generation `G` holds
//! every record of segments below `G`, so recovery loads generation `G` and replays segments
//! `G` and later. Layout:
//!
//! ```text
//! <snapshots>/<G:020>/MANIFEST                 written last: the generation is complete
//! <snapshots>/<G:020>/<cluster>/<host>.snap    one per host (names %-escaped)
//! ```
//!
//! Every file is written to a temporary name, synced, renamed, and its directory synced, so a
//! crash leaves either the old file or the new one. The MANIFEST is written last, but it is
//! not the only evidence that a generation was completed: once one was, the WAL segments it
//! covers are deleted, and a MANIFEST damaged after that must not make the generation look
//! unfinished (see [`crate::recovery`]). Every host file carries its own checksum, so it is
//! readable without the MANIFEST.
//!
//! # Warning
//! The host file layout is on disk; changing it needs a new `SNAPSHOT_VERSION` and a fixture.
//!
//! | field | type (bytes) | meaning |
//! |---|---|---|
//! | magic | `[u8; 8]` | `b"STRATASN"` |
//! | version | u32 (4) | [`SNAPSHOT_VERSION`] |
//! | reserved | u32 (4) | 0 |
//! | cluster, host | string, string | varint length + UTF-8 |
//! | root | level | see below |
//! | crc | u32 (4) | CRC32C of everything before it |
//! | end | `[u8; 8]` | `b"SNAPEND!"`, so a cut-off file is told from a damaged one |
//!
//! A level is `varint n`, n × series, `varint m`, m × (name string, level). A series is the
//! metric name, `zigzag varint` frequency, `varint r` runs, each `zigzag varint` start,
//! `varint n` values and n × f32 (full precision, NaN for gaps).

use crate::format::{self, Cursor};
use crate::writer::sync_directory;
use crate::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use strata_store::{HostImage, LevelImage, Run, SeriesImage};

pub const SNAPSHOT_MAGIC: [u8; 8] = *b"STRATASN";
pub const SNAPSHOT_END: [u8; 8] = *b"SNAPEND!";
pub const SNAPSHOT_VERSION: u32 = 1;

/// Deepest level nesting read back (cluster → host → 2 levels in practice).
const LEVEL_DEPTH_MAX: usize = 16;

const MANIFEST: &str = "MANIFEST";

pub fn encode_host(image: &HostImage) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    format::put_str(&mut out, &image.cluster);
    format::put_str(&mut out, &image.host);
    encode_level(&image.root, &mut out);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&SNAPSHOT_END);
    out
}

fn encode_level(level: &LevelImage, out: &mut Vec<u8>) {
    format::put_varint(out, level.series.len() as u64);
    for series in &level.series {
        format::put_str(out, &series.metric);
        format::put_varint(out, format::zigzag(series.frequency_s));
        format::put_varint(out, series.runs.len() as u64);
        for run in &series.runs {
            format::put_varint(out, format::zigzag(run.start_s));
            format::put_varint(out, run.values.len() as u64);
            for value in &run.values {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }
    format::put_varint(out, level.children.len() as u64);
    for (name, child) in &level.children {
        format::put_str(out, name);
        encode_level(child, out);
    }
}

/// Decodes a host file, checking magic, version, checksum and every length.
pub fn decode_host(bytes: &[u8]) -> Result<HostImage> {
    let header = bytes
        .get(..16)
        .ok_or(Error::Snapshot("shorter than a header"))?;
    if header[..8] != SNAPSHOT_MAGIC {
        return Err(Error::Snapshot("not a Strata snapshot (bad magic)"));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != SNAPSHOT_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "snapshot",
            found: version,
            supported: SNAPSHOT_VERSION,
        });
    }
    if bytes.len() < 16 + 12 || bytes[bytes.len() - 8..] != SNAPSHOT_END {
        return Err(Error::Snapshot("cut off (no end marker)"));
    }
    let crc_at = bytes.len() - 12;
    let stored = u32::from_le_bytes([
        bytes[crc_at],
        bytes[crc_at + 1],
        bytes[crc_at + 2],
        bytes[crc_at + 3],
    ]);
    if crc32c::crc32c(&bytes[..crc_at]) != stored {
        return Err(Error::Snapshot("checksum mismatch"));
    }
    let mut cursor = Cursor::new(&bytes[16..crc_at]);
    let cluster = cursor.str()?.to_owned();
    let host = cursor.str()?.to_owned();
    let root = decode_level(&mut cursor, 0)?;
    if !cursor.is_empty() {
        return Err(Error::Malformed("bytes after the host's levels"));
    }
    Ok(HostImage {
        cluster,
        host,
        root,
    })
}

fn decode_level(cursor: &mut Cursor<'_>, depth: usize) -> Result<LevelImage> {
    if depth > LEVEL_DEPTH_MAX {
        return Err(Error::Malformed("levels nested too deep"));
    }
    let mut level = LevelImage::default();
    // A series is at least a one-byte name length, frequency and run count.
    for _ in 0..cursor.count(3)? {
        let metric = cursor.str()?.to_owned();
        let frequency_s = format::unzigzag(cursor.varint()?);
        let mut runs = Vec::new();
        for _ in 0..cursor.count(2)? {
            let start_s = format::unzigzag(cursor.varint()?);
            let count = cursor.count(4)?;
            let values = cursor.f32s(count)?;
            runs.push(Run { start_s, values });
        }
        level.series.push(SeriesImage {
            metric,
            frequency_s,
            runs,
        });
    }
    for _ in 0..cursor.count(2)? {
        let name = cursor.str()?.to_owned();
        level
            .children
            .push((name, decode_level(cursor, depth + 1)?));
    }
    Ok(level)
}

/// Longest file name written for a cluster or host (filesystems allow 255 bytes).
const FILE_NAME_BYTES_MAX: usize = 200;

/// A file name for a cluster or host name: bytes outside `[A-Za-z0-9_.-]`, and a leading
/// dot, are %-escaped, so no name can climb out of its directory or hide. A name that would
/// be too long for the filesystem is cut and made unique with a hash of the whole name; the
/// file's contents carry the real names, so loading never depends on file names.
pub fn escape_name(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        let plain =
            byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' || (byte == b'.' && i > 0);
        if plain {
            escaped.push(byte as char);
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    if escaped.is_empty() {
        escaped.push_str("%00");
    }
    if escaped.len() > FILE_NAME_BYTES_MAX {
        // Escaped text is ASCII, so any byte index is a character boundary.
        let hash = u64::from(crc32c::crc32c(name.as_bytes())) << 32
            | u64::from(crc32c::crc32c_append(0x5bd1_e995, name.as_bytes()));
        escaped.truncate(FILE_NAME_BYTES_MAX - 17);
        escaped.push_str(&format!("~{hash:016x}"));
    }
    escaped
}

/// The directory of generation `generation`.
pub fn generation_directory(root: &Path, generation: u64) -> PathBuf {
    root.join(format!("{generation:020}"))
}

/// Writes one host's file into a generation being built; returns its size in bytes.
pub fn write_host(generation_dir: &Path, image: &HostImage) -> Result<u64> {
    let cluster_dir = generation_dir.join(escape_name(&image.cluster));
    fs::create_dir_all(&cluster_dir).map_err(|e| Error::io("creating", &cluster_dir, e))?;
    let path = cluster_dir.join(format!("{}.snap", escape_name(&image.host)));
    let bytes = encode_host(image);
    write_atomically(&path, &bytes, false)?;
    Ok(bytes.len() as u64)
}

/// Completes a generation: syncs its cluster directories and writes the MANIFEST last.
pub fn finish_generation(
    generation_dir: &Path,
    generation: u64,
    hosts: usize,
    created_s: i64,
) -> Result<()> {
    let entries =
        fs::read_dir(generation_dir).map_err(|e| Error::io("listing", generation_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", generation_dir, e))?;
        if entry.path().is_dir() {
            sync_directory(&entry.path())?;
        }
    }
    let body = format!(
        "strata snapshot\nformat {SNAPSHOT_VERSION}\nwal-segment {generation}\nhosts {hosts}\ncreated {created_s}\n"
    );
    let text = format!("{body}crc {}\n", crc32c::crc32c(body.as_bytes()));
    write_atomically(&generation_dir.join(MANIFEST), text.as_bytes(), true)?;
    for directory in directories_above(generation_dir) {
        sync_directory(directory)?;
    }
    Ok(())
}

/// The directories whose entries must be durable for a generation to be found after a power
/// loss: the snapshots root (which holds the generation's directory) and the data directory
/// (which holds the root, created by the first snapshot). The caller deletes WAL segments
/// on the strength of the generation, so these are synced before it returns.
fn directories_above(generation_dir: &Path) -> impl Iterator<Item = &Path> {
    generation_dir.ancestors().skip(1).take(2)
}

/// The state of a generation's MANIFEST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// Present and intact: the generation was completed, with this many hosts.
    Valid { hosts: usize },
    /// Absent: the snapshot was cut off before it finished — or the file was lost since.
    Missing,
    /// Present but unreadable (checksum, fields), with why.
    Damaged(String),
}

/// A generation directory found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub number: u64,
    pub directory: PathBuf,
    pub manifest: Manifest,
    /// Host files, in name order. Each carries its own checksum, so they are readable
    /// whatever the state of the MANIFEST.
    pub files: Vec<PathBuf>,
}

/// Every generation directory under `root`, newest first. A MANIFEST written by a newer
/// format is an error (never guessed at).
pub fn list_generations(root: &Path) -> Result<Vec<Generation>> {
    let mut numbered = Vec::new();
    match fs::read_dir(root) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("listing", root, e))?;
                let name = entry.file_name();
                if let Some(number) = name
                    .to_str()
                    .filter(|n| n.len() == 20)
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    numbered.push((number, entry.path()));
                }
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(Error::io("listing", root, error)),
    }
    numbered.sort();
    numbered
        .into_iter()
        .rev()
        .map(|(number, directory)| {
            Ok(Generation {
                number,
                manifest: read_manifest(&directory, number)?,
                files: host_files(&directory)?,
                directory,
            })
        })
        .collect()
}

/// The state of a generation's MANIFEST.
fn read_manifest(directory: &Path, number: u64) -> Result<Manifest> {
    let path = directory.join(MANIFEST);
    let text = match fs::read(&path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => return Ok(Manifest::Damaged("not UTF-8 text".into())),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Manifest::Missing);
        }
        Err(error) => return Err(Error::io("reading", &path, error)),
    };
    let Some((body, crc_line)) = text.trim_end().rsplit_once('\n') else {
        return Ok(Manifest::Damaged("cut off".into()));
    };
    let body = format!("{body}\n");
    if crc_line
        .strip_prefix("crc ")
        .and_then(|c| c.parse::<u32>().ok())
        != Some(crc32c::crc32c(body.as_bytes()))
    {
        return Ok(Manifest::Damaged("checksum mismatch".into()));
    }
    let field = |key: &str| {
        body.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(version) = field("format ")
        && version != u64::from(SNAPSHOT_VERSION)
    {
        return Err(Error::UnsupportedVersion {
            what: "snapshot generation",
            found: u32::try_from(version).unwrap_or(u32::MAX),
            supported: SNAPSHOT_VERSION,
        });
    }
    if field("wal-segment ") != Some(number) {
        return Ok(Manifest::Damaged(
            "names another WAL segment than its directory".into(),
        ));
    }
    Ok(match field("hosts ") {
        Some(hosts) => Manifest::Valid {
            hosts: hosts as usize,
        },
        None => Manifest::Damaged("no host count".into()),
    })
}

fn host_files(directory: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for cluster in fs::read_dir(directory).map_err(|e| Error::io("listing", directory, e))? {
        let cluster = cluster
            .map_err(|e| Error::io("listing", directory, e))?
            .path();
        if !cluster.is_dir() {
            continue;
        }
        for host in fs::read_dir(&cluster).map_err(|e| Error::io("listing", &cluster, e))? {
            let host = host.map_err(|e| Error::io("listing", &cluster, e))?.path();
            if host.extension().is_some_and(|e| e == "snap") {
                files.push(host);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads and decodes one host file.
pub fn load_host(path: &Path) -> Result<HostImage> {
    let bytes = fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    decode_host(&bytes).map_err(|error| Error::InFile {
        path: path.to_owned(),
        source: Box::new(error),
    })
}

/// Removes generations older than `generation` (complete or not).
pub fn remove_generations_before(root: &Path, generation: u64) -> Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(Error::io("listing", root, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", root, e))?;
        let older = entry
            .file_name()
            .to_str()
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n < generation);
        if older {
            fs::remove_dir_all(entry.path())
                .map_err(|e| Error::io("removing", &entry.path(), e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_directory(root)?;
    }
    Ok(removed)
}

/// Writes `bytes` to `path` through a temporary file: write, fsync, rename, fsync directory
/// (the directory sync can be left to the caller when it syncs once for many files).
fn write_atomically(path: &Path, bytes: &[u8], sync_parent: bool) -> Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file =
        fs::File::create(&temporary).map_err(|e| Error::io("creating", &temporary, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("writing", &temporary, e))?;
    fs::rename(&temporary, path).map_err(|e| Error::io("renaming", &temporary, e))?;
    if sync_parent && let Some(parent) = path.parent() {
        sync_directory(parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 6 item 10: the first snapshot creates `snapshots/` and its generation directory;
    /// both entries must be synced before WAL segments are deleted.
    #[test]
    fn a_generation_makes_the_snapshots_root_and_the_data_directory_durable() {
        let generation = generation_directory(Path::new("/data/snapshots"), 7);
        let synced: Vec<&Path> = directories_above(&generation).collect();
        assert_eq!(
            synced,
            [Path::new("/data/snapshots"), Path::new("/data")],
            "{generation:?}"
        );
    }
}
