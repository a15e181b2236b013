//! Readers for cc-metric-store v1.5 checkpoint directories, so that `strata import DIR` can
//! migrate an existing installation (COMPAT.md §6, decision 12).
//!
//! The crate reads; it never writes and never touches the store. [`scan`] walks a checkpoint
//! root, [`select_snapshots`] picks the snapshots a restore cutoff needs, and
//! [`read_json_checkpoint`], [`read_binary_checkpoint`] and [`read_wal`] decode one file each
//! from bytes the caller has read. Every reader takes untrusted input: it returns an
//! [`Error`] or a [`WalEnd::TornTail`] for anything malformed and never panics, and no count
//! or length in a file makes it allocate more than the file could hold.
//!
//! ```
//! use strata_ccms::read_json_checkpoint;
//!
//! // The example of COMPAT.md §6.2, as cc-metric-store writes it.
//! let file = br#"{"metrics":{"cpu_load":{"frequency":60,"start":1700000000,"data":[0.5,null,0.7]}},
//!  "children":{"socket0":{"metrics":{"mem_bw":{"frequency":60,"start":1700000000,"data":[100.0,110.0]}},
//!                         "children":{},"from":1700000000,"to":1700043200}},
//!  "from":1700000000,"to":1700043200}
//! "#;
//! let checkpoint = read_json_checkpoint(file)?;
//! assert_eq!((checkpoint.from_s, checkpoint.to_s), (1700000000, 1700043200));
//! let cpu_load = &checkpoint.host.metrics[0];
//! assert_eq!((cpu_load.name.as_str(), cpu_load.frequency_s), ("cpu_load", 60));
//! assert!(cpu_load.values[1].is_nan()); // `null` is a missing sample.
//! let (child, socket0) = &checkpoint.host.children[0];
//! assert_eq!((child.as_str(), socket0.metrics[0].values.as_slice()), ("socket0", &[100.0, 110.0][..]));
//! # Ok::<(), strata_ccms::Error>(())
//! ```
//!
//! # Directory layout (§6.1)
//!
//! ```text
//! <root>/<cluster>/<host>/<from>.json    JSON snapshot of [from, to]
//!                         <from>.bin     binary snapshot of [from, to]
//!                         <from>.bin.tmp snapshot being written (ignored)
//!                         current.wal    samples since the last snapshot
//!                         <dir>/         legacy Avro (ignored)
//! ```
//!
//! `<from>` is the start of the interval a snapshot covers, in unix seconds. cc-metric-store
//! aborts its start on a regular file directly under the root or a cluster directory, and on
//! a `.json`/`.bin` whose stem is not an integer. [`scan`] reports each of these as a
//! [`Problem`] and carries on with everything else. It follows symbolic links, skips
//! subdirectories of host directories and ignores every other file in a host directory, as
//! cc-metric-store does.
//!
//! # JSON snapshot (`<from>.json`, §6.2)
//!
//! One JSON object per file; a level is
//! `{"metrics": {name: metric, …}, "children": {name: level, …}, "from": i64, "to": i64}`
//! and a metric is `{"frequency": i64, "start": i64, "data": [number | null, …]}`.
//!
//! - `metrics`: object — the level's metrics by name; missing or `null` means none.
//! - `children`: object — the sub-levels by name (`socket0`, `core12`, …), same shape.
//! - `from`, `to`: integer — unix seconds covered by the file; only the top level's are read
//!   (missing or `null` reads as 0, as Go's decoder leaves them).
//! - `frequency`: integer — seconds between samples; missing means 0.
//! - `start`: integer — unix seconds of `data[0]`; missing means 0.
//! - `data`: array — samples; `null` is NaN (missing). Numbers are parsed as f64 and
//!   rounded to f32, so cc-metric-store's one-decimal output (`0.4`) reads as `0.4_f32`.
//!
//! Tolerated, as by cc-metric-store's loader: unknown keys, keys in any order, anything after
//! the first JSON value, a repeated name in `metrics` or `children` (the last one wins, as in
//! a Go map). Errors ([`Error::Json`]): anything that is not such an object, a metric or
//! child that is `null`, a non-integer `frequency`/`start`/`from`/`to`, a number outside the
//! f64 range, and a repeated `frequency`/`start`/`data`/`metrics`/… key inside one object
//! (Go would take the last one). Levels nested deeper than [`LEVEL_DEPTH_MAX`] are
//! [`Error::TooDeep`]. Key matching is case-sensitive (Go's is not); cc-metric-store writes
//! lower-case keys only.
//!
//! # Binary snapshot (`<from>.bin`, §6.3), little-endian
//!
//! - `magic`: u32 (4) — [`SNAPSHOT_MAGIC`] `0xCC5B0001`.
//! - `from`: i64 (8) — unix seconds, start of the interval.
//! - `to`: i64 (8) — unix seconds, end of the interval.
//! - `level`: Level (≥ 8) — the host level, then nothing (trailing bytes are ignored, as by
//!   cc-metric-store).
//!
//! A Level is:
//!
//! - `num_metrics`: u32 (4) — number of metric entries that follow.
//! - per metric (≥ 22 bytes each):
//!   - `name_len`: u16 (2), `name`: UTF-8 (`name_len`) — metric name.
//!   - `frequency`: i64 (8) — seconds between samples.
//!   - `start`: i64 (8) — unix seconds of the first value.
//!   - `num_values`: u32 (4), `values`: f32 bits (4 × `num_values`) — samples, NaN = missing.
//! - `num_children`: u32 (4) — number of child entries that follow.
//! - per child (≥ 10 bytes each): `name_len`: u16 (2), `name`: UTF-8 (`name_len`), then the
//!   child's Level.
//!
//! Entry order in the file is arbitrary (Go map order); a repeated name keeps the last entry.
//! Errors: wrong magic ([`Error::BadMagic`]); input ending inside a field
//! ([`Error::Truncated`]); a count or length that the remaining bytes cannot hold, checked
//! before anything is allocated ([`Error::CountTooLarge`]); a name that is not UTF-8
//! ([`Error::InvalidUtf8`], Go would accept it); levels nested deeper than
//! [`LEVEL_DEPTH_MAX`] ([`Error::TooDeep`]).
//!
//! # Write-ahead log (`current.wal`, §6.4), little-endian
//!
//! - `file_magic`: u32 (4) — [`WAL_FILE_MAGIC`] `0xCC1DA701`, then records to the end of the
//!   file. Each record:
//!   - `magic`: u32 (4) — [`WAL_RECORD_MAGIC`] `0xCC1DA7A1`.
//!   - `payload_len`: u32 (4) — bytes of payload, at most [`WAL_PAYLOAD_BYTES_MAX`] (1 MiB).
//!   - `payload` (`payload_len` bytes):
//!     - `timestamp`: i64 (8) — unix seconds.
//!     - `metric_len`: u16 (2), `metric`: UTF-8 (`metric_len`) — metric name.
//!     - `selector_count`: u8 (1) — levels below the host (0 = the host itself).
//!     - per level: `len`: u8 (1), `name`: UTF-8 (`len`) — e.g. `socket0`, then `core3`.
//!     - `value`: f32 bits (4) — the sample.
//!   - `crc`: u32 (4) — CRC-32/IEEE (as `crc32fast`, zlib and Go's `hash/crc32` compute it)
//!     of `payload`.
//!
//! Cluster and host are those of the directory. [`read_wal`] returns every good record up to
//! the first bad one and says in [`WalEnd`] where and why it stopped: a short read, a bad
//! record magic, `payload_len` over 1 MiB, a CRC mismatch, or a malformed payload (fields
//! overrunning the payload, bytes left over after `value`, a name that is not UTF-8; Go
//! accepts the last two). This is a torn tail after a crash, not an error. A wrong *file* magic is an error
//! ([`Error::BadMagic`]): cc-metric-store then skips the whole file. An empty file is
//! [`WalEnd::Clean`] with no records (cc-metric-store writes the header only with the first
//! flush, so a crash can leave one). A file of 1 to 3 bytes that begins like the file magic is
//! a torn tail at offset 0.
//!
//! # Limits
//!
//! - [`LEVEL_DEPTH_MAX`] (16) levels in a snapshot, the host included; cc-metric-store
//!   writes at most 3 (host, type, sub-type). Deeper is [`Error::TooDeep`], which also bounds
//!   recursion on hostile input.
//! - [`WAL_PAYLOAD_BYTES_MAX`] (1 MiB) per WAL record, as in cc-metric-store.
//! - The readers work on the whole file in memory; what they return is at most a small
//!   constant factor larger than the file.
//!
//! # Snapshot selection (§6.6 and decision 12)
//!
//! For a restore cutoff `R`, [`select_snapshots`] keeps every snapshot with `from_s >= R` and
//! the one straddling `R`: the newest with `from_s < R`, even when it is the newest file of
//! the host (cc-metric-store drops it then, losing up to a checkpoint interval of data), and
//! even when another file starts exactly at `R` (cc-metric-store drops it then too).
//!
//! # What the readers do not check
//!
//! They return the data as stored: `frequency_s` may be zero or negative, `start_s` need not
//! be aligned, names may be empty, values may be any f32 (NaN payloads are kept bit for bit).
//! Deciding what to import (retention, unknown metrics, a file's `to < R`) is the importer's
//! business.

#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

mod binary;
mod cursor;
mod json;
mod scan;
mod wal;

use std::path::PathBuf;

pub use binary::read_binary_checkpoint;
pub use json::read_json_checkpoint;
pub use scan::{
    HostFiles, Problem, ProblemReason, Scan, SnapshotFile, SnapshotFormat, scan, select_snapshots,
};
pub use wal::{WalContents, WalEnd, WalRecord, read_wal};

/// Magic number at the start of a binary snapshot (`<from>.bin`).
pub const SNAPSHOT_MAGIC: u32 = 0xCC5B_0001;
/// Magic number at the start of `current.wal`.
pub const WAL_FILE_MAGIC: u32 = 0xCC1D_A701;
/// Magic number at the start of every WAL record.
pub const WAL_RECORD_MAGIC: u32 = 0xCC1D_A7A1;
/// Largest WAL record payload, in bytes (1 MiB, cc-metric-store's own limit). A record that
/// claims more ends the log as a torn tail.
pub const WAL_PAYLOAD_BYTES_MAX: u32 = 1 << 20;
/// Most levels a snapshot may nest, the host level included. cc-metric-store writes at most
/// 3; a deeper file is [`Error::TooDeep`]. The bound keeps recursion shallow on any input.
pub const LEVEL_DEPTH_MAX: usize = 16;

/// One metric's run of values in a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricData {
    /// Metric name as stored (`cpu_load`).
    pub name: String,
    /// Seconds between two values, as stored (not validated).
    pub frequency_s: i64,
    /// Unix seconds of `values[0]`.
    pub start_s: i64,
    /// Samples at `start_s + i * frequency_s`; NaN is a missing sample.
    pub values: Vec<f32>,
}

/// A level of a host's tree (the top level is the host).
///
/// Both lists are sorted by name, and names are unique within a list (a file that repeats a
/// name keeps its last entry, as a Go map does).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Level {
    /// The metrics stored at this level.
    pub metrics: Vec<MetricData>,
    /// Sub-levels by name (`socket0`, `core12`, `accelerator0`).
    pub children: Vec<(String, Level)>,
}

/// One decoded snapshot file of one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Unix seconds: start of the interval the snapshot covers (also the file name's stem).
    pub from_s: i64,
    /// Unix seconds: end of the interval (0 in files that never set it).
    pub to_s: i64,
    /// The host level and everything below it.
    pub host: Level,
}

/// Everything that can go wrong while reading a checkpoint directory or file.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file or directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A JSON snapshot is not valid JSON or does not have the shape of §6.2.
    #[error("invalid JSON snapshot: {reason}")]
    Json {
        /// serde_json's description, with line and column.
        reason: String,
    },
    /// The file does not start with the magic number of its format.
    #[error("not a {what}: magic {found:#010x} at byte 0, expected {expected:#010x}")]
    BadMagic {
        /// The format that was expected (`binary snapshot`, `WAL file`).
        what: &'static str,
        /// The magic number of that format.
        expected: u32,
        /// The first four bytes of the file, little-endian.
        found: u32,
    },
    /// The input ends inside a field.
    #[error("truncated at byte {offset}: {what}")]
    Truncated {
        /// Where the field that could not be read starts.
        offset: u64,
        /// The field, with its metric or level.
        what: String,
    },
    /// A count or length claims more entries than the rest of the input could hold. Checked
    /// before allocating, so a corrupt count costs nothing.
    #[error(
        "{what} at byte {offset} is {count}, needing at least {bytes_min} bytes, \
         but only {remaining} bytes remain"
    )]
    CountTooLarge {
        /// Where the count starts.
        offset: u64,
        /// The count, with its metric or level.
        what: String,
        /// The value read.
        count: u64,
        /// The fewest bytes that many entries take.
        bytes_min: u64,
        /// The bytes left after the count.
        remaining: u64,
    },
    /// Levels are nested deeper than [`LEVEL_DEPTH_MAX`].
    #[error("level {level:?} is nested deeper than {depth_max} levels")]
    TooDeep {
        /// Path of the first level that is too deep (`socket0/core1/…`, cut to ~100 bytes).
        level: String,
        /// [`LEVEL_DEPTH_MAX`].
        depth_max: usize,
    },
    /// A name is not valid UTF-8.
    #[error("{what} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Where the name's bytes start.
        offset: u64,
        /// Which name, with its level.
        what: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest name echoed in an error message, in bytes; longer ones are cut.
const ECHO_BYTES_MAX: usize = 100;

/// Cuts `text` to at most [`ECHO_BYTES_MAX`] bytes on a character boundary, marking the cut.
fn echo(text: &str) -> String {
    if text.len() <= ECHO_BYTES_MAX {
        return text.to_owned();
    }
    let mut end = ECHO_BYTES_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text.get(..end).unwrap_or_default())
}

/// Names a level for an error message: the host level is `host level`, others their path.
fn level_label(path: &str) -> String {
    if path.is_empty() {
        "host level".to_owned()
    } else {
        format!("level {:?}", echo(path))
    }
}

/// Joins a parent level path and a child name (`socket0` + `core1` → `socket0/core1`).
fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_cuts_long_names_on_a_char_boundary() {
        // Goal: error messages never echo more than ~100 bytes and never split a character.
        assert_eq!(echo("socket0"), "socket0");
        let long = "é".repeat(80); // 160 bytes, 2 per character.
        let cut = echo(&long);
        assert_eq!(cut, format!("{}…", "é".repeat(50)));
    }

    #[test]
    fn level_labels_and_paths() {
        assert_eq!(level_label(""), "host level");
        assert_eq!(level_label("socket0/core1"), "level \"socket0/core1\"");
        assert_eq!(child_path("", "socket0"), "socket0");
        assert_eq!(child_path("socket0", "core1"), "socket0/core1");
    }
}
