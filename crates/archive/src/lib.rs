//! Strata's Parquet archive: one file per cluster and period, in cc-metric-store's 8-column layout.
//!
//! - [`PeriodWriter`] streams one period of one cluster into `<dir>/<cluster>/<period_start>.parquet`,
//!   series by series, in the file's sort order. Memory is bounded by one series plus the open row
//!   group (at most about [`format::ROW_GROUP_BYTES_MAX`] encoded). The string columns are
//!   encoded on a second thread (`encode.rs`). The file appears atomically: it is written as
//!   `.<period_start>.parquet.tmp`, fsynced, renamed, and the directory fsynced.
//! - [`Archive`] reads one `(cluster, host, metric)` over a time range from a local directory. It
//!   opens only files whose period overlaps, prunes row groups by their statistics and pages by the
//!   page index, and decodes only the needed columns. Files cc-metric-store wrote (unsorted, no
//!   page index, named after the cleanup cutoff) read correctly, just with less pruning. A file
//!   that cannot be read is reported in [`ReadResult::skipped`]; the rest still answers.
//!
//! The API uses plain types (host names, level names, `(time, value)` pairs), so this crate does
//! not depend on the store or server: they glue it in.
//!
//! Dependencies, and why: `parquet` (the Apache reference implementation; default features off,
//! only `arrow` for the record-batch reader/writer and `zstd`, cc-metric-store's compression),
//! `arrow-array`/`arrow-schema` of the same version (the batches the writer takes and the reader
//! yields), `parking_lot` (the footer cache's lock), `thiserror` (the error type). Only this
//! crate depends on Arrow, which keeps its compile time away from the rest of the workspace.

mod encode;
pub mod format;
mod read;
mod write;

pub use read::{
    Archive, ArchivedSeries, FOOTER_CACHE_BYTES, READ_SAMPLES_MAX, ReadResult, SkippedFile,
};
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
