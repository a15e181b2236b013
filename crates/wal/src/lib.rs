//! Strata's durability: a segmented write-ahead log and per-host snapshots.
//!
//! One log serves two readers: crash recovery, and the remote-write forwarder, which tails it
//! from its own position. So:
//!
//! - the log is numbered segment files of bounded size ([`WalConfig::segment_bytes`]); a
//!   position is `(segment, offset)`;
//! - every record is framed with its length and a CRC32C, and carries a sequence number, so a
//!   reader can tell a torn tail from damage in the middle and count what was lost;
//! - a segment is self-contained: it defines every series it uses before using it, so a
//!   reader can start at any segment boundary;
//! - the writer commits appends in groups: concurrent requests share one write and one fsync,
//!   and publishes what it has written ([`Committed`]);
//! - every reader is a [`LogReader`]: it streams records one at a time, and tails the live
//!   log up to the committed position, woken when it moves;
//! - sequence numbers go on across restarts: a segment header carries the sequence number of
//!   its first record;
//! - segments are deleted only below the position every reader holds ([`Retention`]).
//!
//! The fsync policy says what an acknowledged sample survives:
//!
//! | policy | process crash (SIGKILL) | OS crash or power loss |
//! |---|---|---|
//! | `always` | nothing lost | nothing lost: the acknowledgement waits for the fsync |
//! | `batch` | nothing lost | at most the last fsync interval (default 100 ms) |
//! | `never` | nothing lost | whatever the OS had not written back (typically up to ~30 s) |
//! | `off` | no log: everything since the last snapshot | the same |
//!
//! Formats are described in [`mod@format`] (segments) and [`snapshot`] (snapshots).

mod codec;
mod committed;
pub mod format;
pub mod incremental;
pub mod reader;
pub mod recovery;
pub mod retention;
pub mod snapshot;
mod storage;
pub mod stream;
pub mod writer;

pub use codec::{Decode, Names, RefBatch, RefSample, Refs, SeriesDefinition};
pub use committed::Committed;
pub use reader::{
    Damage, ReplayReport, SegmentFile, list_segments, oldest_sequence, replay, segment_file_name,
    truncate_torn_tail,
};
pub use retention::Retention;
pub use stream::{Entry, Event, LogReader, OwnedRecord};
pub use writer::{Appended, Completion, FreeCompletion, Wal, WalConfig, WalStats};

use std::path::{Path, PathBuf};
use std::time::Duration;
use strata_store::WriteBatch;

/// The number of the first segment of a new log.
pub const FIRST_SEGMENT: u64 = 1;

/// A place in the log: the byte offset in a segment just after a record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

/// A `POST /api/free` made durable: replayed in order with the writes around it, so freed
/// data stays freed after a crash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Free {
    /// Each a path: cluster, host, sub-levels; an empty one selects everything.
    pub selectors: Vec<Vec<String>>,
    /// Buffers that ended before this time (Unix seconds) are freed.
    pub before_s: i64,
}

/// A record handed to a replay's callback.
#[derive(Debug)]
pub enum Record<'a> {
    /// Samples to write; the callback may take them (the reader goes on with an empty batch).
    Batch(&'a mut WriteBatch),
    Free(&'a Free),
}

/// When appended records are made durable with fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before the append completes.
    Always,
    /// At most this long after a write.
    Batch(Duration),
    /// Never; the OS writes back in its own time.
    Never,
}

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("WAL segment header: {0}")]
    SegmentHeader(&'static str),
    #[error(
        "{what} format version {found} is newer than this build supports (version {supported}); \
         use the Strata release that wrote it"
    )]
    UnsupportedVersion {
        what: &'static str,
        found: u32,
        supported: u32,
    },
    #[error("snapshot: {0}")]
    Snapshot(&'static str),
    #[error(
        "snapshot: {entries} host entries damaged (checksum mismatch or undecodable) and skipped, \
         the first at byte {offset}{}",
        rest.as_ref().map(|r| format!("; then {r}")).unwrap_or_default()
    )]
    DamagedEntries {
        entries: usize,
        offset: u64,
        /// What ended the pack early, if it did not end at its end marker.
        rest: Option<String>,
    },
    #[error("{path}: {source}")]
    InFile { path: PathBuf, source: Box<Error> },
    #[error("a record of {0} bytes is larger than the format allows")]
    RecordTooLarge(usize),
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("the write-ahead log refuses writes after an earlier failure ({0}); restart Strata")]
    Poisoned(String),
    #[error("the write-ahead log queue is full")]
    QueueFull,
    #[error("the write-ahead log is closed")]
    Closed,
}

impl Error {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
