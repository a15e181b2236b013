//! Strata's Parquet archive: one file per cluster and period, in cc-metric-store's 8-column layout.
//!
//! - [`PeriodWriter`] streams one period of one cluster into `<dir>/<cluster>/<period_start>.parquet`,
//!   series by series, in the file's sort order. Memory is bounded by one series plus the open row
//!   group (at most about [`format::ROW_GROUP_BYTES_MAX`] encoded). The string columns are
//!   encoded on a second thread (`encode.rs`). The file appears atomically: it is written as
//!   `.<period_start>.parquet.tmp`, fsynced, renamed, and the directory fsynced.
//! - [`Archive`] reads one `(cluster, host, metric)` over a time range from an archive. It
//!   opens only files whose period overlaps, prunes row groups by their statistics and pages by the
//!   page index, and decodes only the needed columns. Files cc-metric-store wrote (unsorted, no
//!   page index, named after the cleanup cutoff) read correctly, just with less pruning. A file
//!   that cannot be read is reported in [`ReadResult::skipped`]; the rest still answers.
//!
//! The API uses plain types (host names, level names, `(time, value)` pairs), so this crate does
//! not depend on the store or server: they glue it in.
//!
//! - The archive can live on S3 ([`Archive::open_s3`], [`Location`]): the pass writes each file
//!   into a local staging directory ([`Archive::staging_directory`]) and uploads it
//!   ([`Archive::publish`]); reads go through the same code as local files (see `s3.rs`).
//!
//! Dependencies, and why: `parquet` (the Apache reference implementation; default features off,
//! only `arrow` for the record-batch reader/writer, `zstd`, cc-metric-store's compression, and
//! `snap`/`flate2` so that files other tools rewrote, snappy or gzip, read too; both crates are
//! in the tree already),
//! `arrow-array`/`arrow-schema` of the same version (the batches the writer takes and the reader
//! yields), `object_store` (the Arrow project's S3 client; only its `aws` feature, which reuses
//! the workspace's reqwest 0.13, rustls and aws-lc-rs), `tokio` (the small runtime its requests
//! run on) and `bytes` (its buffers), `parking_lot` (the footer cache's lock), `thiserror` (the
//! error type). Parquet's own `async`/`object_store` features are off: its async reader would
//! need a second code path; a synchronous `ChunkReader` over prefetched ranges keeps one reader
//! for files and objects. Only this crate depends on Arrow and object_store, which keeps their
//! compile time away from the rest of the workspace.

mod encode;
pub mod format;
mod location;
mod read;
mod s3;
mod write;

pub use location::{Location, STAGING_DIRECTORY};
pub use read::{
    Archive, ArchivedSeries, FOOTER_CACHE_BYTES, LISTING_TTL, READ_SAMPLES_MAX, ReadResult,
    ReadStats, SkippedFile,
};
pub use s3::{PARTS_IN_FLIGHT, S3Settings};
pub use write::{FileSummary, PeriodWriter};

use std::path::PathBuf;

/// What can go wrong writing or reading an archive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parquet {}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    /// A request to the object store failed (after its retries). The message includes the
    /// causes (such as "Connection refused"), which the client's own message leaves out.
    #[error("{action} {key}: {}", causes(source))]
    ObjectStore {
        action: &'static str,
        key: String,
        source: object_store::Error,
    },
    /// A file an archive pass needs to know about cannot be read.
    #[error("archive file {name} cannot be read: {reason}")]
    UnreadableFile { name: String, reason: String },
    /// The object store failed moments ago; it is asked again after `ttl_s`.
    #[error("{reason} (less than {ttl_s} s ago; not retried yet)")]
    Unavailable { reason: String, ttl_s: u64 },
    #[error("cannot start the S3 client's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("S3 part size {0} is not a usable number of bytes")]
    InvalidPartSize(u64),
    #[error("arrow batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A cluster name must be one plain path component.
    #[error("cluster name {0:?} is not a plain directory name")]
    InvalidCluster(String),
    #[error("period [{start_s}, {end_s}) is empty or the writer options are out of range")]
    InvalidPeriod { start_s: i64, end_s: i64 },
    #[error("at most 2 levels below a host, got {0}")]
    TooManyLevels(usize),
    #[error("frequency {0} s is not positive")]
    InvalidFrequency(i64),
    /// Series must come in the file's sort order.
    #[error(
        "series {next} comes after {previous}: series must come sorted by (hostname, metric, scope, scope_id)"
    )]
    OutOfOrder { previous: String, next: String },
    #[error("series {series}: timestamp {timestamp_s} does not follow the previous one")]
    TimestampsNotAscending { series: String, timestamp_s: i64 },
    #[error("series {series}: timestamp {timestamp_s} is outside the period [{start_s}, {end_s})")]
    OutsidePeriod {
        series: String,
        timestamp_s: i64,
        start_s: i64,
        end_s: i64,
    },
    /// A read would return more than [`READ_SAMPLES_MAX`] (or the reader's own bound) samples.
    #[error("more than {limit} archived samples in the requested range")]
    TooManySamples { limit: usize },
}

/// `error` and each of its sources not already part of the text before it, joined by ": ".
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}
