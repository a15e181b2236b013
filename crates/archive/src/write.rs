//! [`PeriodWriter`]: one cluster's period streamed into one Parquet file, atomically.

use crate::Error;
use crate::encode::Encoder;
use crate::format::{self, WriterOptions};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Rows per batch handed to the encoder.
const BATCH_ROWS: usize = format::PAGE_ROWS;

/// What [`PeriodWriter::finish`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// The final file, `<dir>/<cluster>/<period_start>.parquet`.
    pub path: PathBuf,
    /// Rows = samples written (NaN omitted).
    pub rows: u64,
    /// Series written (after merging series that share a `(scope, scope_id)`).
    pub series: u64,
    /// File size.
    pub bytes: u64,
    pub row_groups: usize,
    pub period_start_s: i64,
    pub period_end_s: i64,
}

/// A series' position in the file order: (hostname, metric, scope, scope_id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    host: String,
    metric: String,
    scope: String,
    scope_id: String,
}

impl SeriesKey {
    fn new(host: &str, levels: &[&str], metric: &str) -> Self {
        let (scope, scope_id) = format::stored_scope(levels);
        Self {
            host: host.to_string(),
            metric: metric.to_string(),
            scope: scope.to_string(),
            scope_id: scope_id.to_string(),
        }
    }
}

impl std::fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "({}, {}, {}, {:?})",
            self.host, self.metric, self.scope, self.scope_id
        )
    }
}

/// The newest series, held back until the next one shows whether it must be merged with it: two
/// levels can share a `(scope, scope_id)` (`cpu3` and `hwthread3`, or `core3` below two sockets),
/// and the file must hold each key's rows as one time-sorted run.
struct Pending {
    key: SeriesKey,
    /// (timestamp, frequency, value), NaN already dropped.
    rows: Vec<(i64, i64, f32)>,
    /// Whether a merge put `rows` out of time order.
    merged: bool,
}

/// Streams one period of one cluster into `<dir>/<cluster>/<period_start>.parquet`.
///
/// Series must come in file order (see [`PeriodWriter::add_series`]); each is written as soon as
/// the next one arrives, and a row group is closed at the first host boundary once it holds
/// `row_group_rows_min` rows (the writer also closes one at `row_group_rows_max` rows or
/// `row_group_bytes_max` bytes, inside a host if it must). Dropping the writer without
/// [`PeriodWriter::finish`] removes the temporary file; nothing is ever visible under the final
/// name until it is complete and durable.
pub struct PeriodWriter {
    writer: Option<Encoder>,
    options: WriterOptions,
    cluster: String,
    period_start_s: i64,
    period_end_s: i64,
    temporary: PathBuf,
    target: PathBuf,
    /// Directories whose entries changed (the cluster directory, and the parent of each
    /// directory `create` made), fsynced after the rename.
    synced: Vec<PathBuf>,
    previous: Option<SeriesKey>,
    pending: Option<Pending>,
    /// Host of the last rows handed to the Parquet writer.
    written_host: Option<String>,
    rows: u64,
    series: u64,
    /// Set once the file is under its final name; until then `Drop` removes the temporary file.
    renamed: bool,
}

impl PeriodWriter {
    /// Starts `<directory>/<cluster>/.<period_start>.parquet.tmp` (creating the directories) for
    /// samples with `period_start_s <= t < period_end_s`, with the default [`WriterOptions`].
    pub fn create(
        directory: &Path,
        cluster: &str,
        period_start_s: i64,
        period_end_s: i64,
    ) -> Result<Self, Error> {
        Self::create_with(
            directory,
            cluster,
            period_start_s,
            period_end_s,
            WriterOptions::default(),
        )
    }

    /// [`PeriodWriter::create`] with explicit limits.
    pub fn create_with(
        directory: &Path,
        cluster: &str,
        period_start_s: i64,
        period_end_s: i64,
        options: WriterOptions,
    ) -> Result<Self, Error> {
        let cluster_directory = crate::read::cluster_directory(directory, cluster)?;
        let invalid = Error::InvalidPeriod {
            start_s: period_start_s,
            end_s: period_end_s,
        };
        if period_start_s >= period_end_s {
            return Err(invalid);
        }
        let Some(properties) = format::writer_properties(&options, period_start_s, period_end_s)
        else {
            return Err(invalid);
        };
        // The cluster directory gets the new entry; every directory created here is itself a new
        // entry of its parent, so the parents of created directories are synced too.
        let synced: Vec<PathBuf> = cluster_directory
            .ancestors()
            // A relative path ends in "", which is the working directory.
            .map(|path| {
                if path.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    path
                }
            })
            .scan(true, |created, path| {
                let take = *created;
                *created = take && !path.is_dir();
                take.then(|| path.to_path_buf())
            })
            .collect();
        fs::create_dir_all(&cluster_directory).map_err(|source| Error::Io {
            action: "creating",
            path: cluster_directory.clone(),
            source,
        })?;
        let temporary = cluster_directory.join(format!(".{period_start_s}.parquet.tmp"));
        let target = cluster_directory.join(format!("{period_start_s}.parquet"));
        let file = File::create(&temporary).map_err(|source| Error::Io {
            action: "creating",
            path: temporary.clone(),
            source,
        })?;
        let writer = Encoder::new(file, properties).map_err(|source| Error::Parquet {
            path: temporary.clone(),
            source,
        });
        let writer = match writer {
            Ok(writer) => writer,
            Err(error) => {
                // Best effort: the temporary file is garbage now.
                let _ = fs::remove_file(&temporary);
                return Err(error);
            }
        };
        Ok(Self {
            writer: Some(writer),
            options,
            cluster: cluster.to_string(),
            period_start_s,
            period_end_s,
            temporary,
            target,
            synced,
            previous: None,
            pending: None,
            written_host: None,
            rows: 0,
            series: 0,
            renamed: false,
        })
    }

    /// Adds one series: `(timestamp unix s, value)` samples of `metric` at `host` / `levels`.
    ///
    /// `levels` are the level names below the host (0 to 2); the innermost one decides
    /// `(scope, scope_id)` ([`format::scope_of`]), as cc-metric-store does, and none means the
    /// host level (`node`). Series must come sorted by (hostname, metric, scope, scope_id),
    /// strings by bytes; an equal key is merged with the previous series. Timestamps must
    /// ascend strictly and lie in the period. NaN values are omitted. Any violation is an
    /// [`Error`] and leaves the file unusable (drop the writer).
    pub fn add_series(
        &mut self,
        host: &str,
        levels: &[&str],
        metric: &str,
        frequency_s: i64,
        samples: &[(i64, f32)],
    ) -> Result<(), Error> {
        if levels.len() > 2 {
            return Err(Error::TooManyLevels(levels.len()));
        }
        if frequency_s <= 0 {
            return Err(Error::InvalidFrequency(frequency_s));
        }
        let key = SeriesKey::new(host, levels, metric);
        self.check_samples(&key, samples)?;
        match &self.previous {
            Some(previous) if key < *previous => {
                return Err(Error::OutOfOrder {
                    previous: previous.to_string(),
                    next: key.to_string(),
                });
            }
            Some(previous) if key == *previous => {
                if let Some(pending) = &mut self.pending {
                    pending.merged = true;
                    pending.rows.extend(present(samples, frequency_s));
                    return Ok(());
                }
            }
            _ => {}
        }
        self.write_pending()?;
        self.previous = Some(key.clone());
        let rows: Vec<_> = present(samples, frequency_s).collect();
        if !rows.is_empty() {
            self.pending = Some(Pending {
                key,
                rows,
                merged: false,
            });
        }
        Ok(())
    }

    /// Closes the file, fsyncs it, renames it to `<period_start>.parquet` and fsyncs the
    /// directory. A period without samples still gets a (row-less) file, so the archive records
    /// that the period was archived.
    pub fn finish(mut self) -> Result<FileSummary, Error> {
        self.write_pending()?;
        let Some(mut writer) = self.writer.take() else {
            return Err(self.parquet_error(parquet::errors::ParquetError::General(
                "writer already closed".to_string(),
            )));
        };
        writer.close_group().map_err(|e| self.parquet_error(e))?;
        let row_groups = writer.groups();
        let file = writer.finish().map_err(|e| self.parquet_error(e))?;
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        file.sync_all().map_err(io("syncing", &self.temporary))?;
        let bytes = file
            .metadata()
            .map_err(io("reading metadata of", &self.temporary))?
            .len();
        drop(file);
        fs::rename(&self.temporary, &self.target).map_err(io("renaming", &self.temporary))?;
        self.renamed = true;
        for directory in &self.synced {
            File::open(directory)
                .and_then(|d| d.sync_all())
                .map_err(io("syncing", directory))?;
        }
        Ok(FileSummary {
            path: self.target.clone(),
            rows: self.rows,
            series: self.series,
            bytes,
            row_groups,
            period_start_s: self.period_start_s,
            period_end_s: self.period_end_s,
        })
    }

    /// Bytes the writer holds now: the open row group's encoded pages (at most about
    /// `row_group_bytes_max`), the column encoders' current pages (about 1 MiB with 8192-row
    /// pages) and the pending series — independent of the size of a host or a period.
    pub fn memory_bytes(&self) -> usize {
        let writer = self.writer.as_ref().map_or(0, Encoder::memory_size);
        let pending = self.pending.as_ref().map_or(0, |pending| {
            pending.rows.capacity() * std::mem::size_of::<(i64, i64, f32)>()
        });
        writer + pending
    }

    fn check_samples(&self, key: &SeriesKey, samples: &[(i64, f32)]) -> Result<(), Error> {
        let mut previous = None;
        for &(timestamp_s, _) in samples {
            if previous.is_some_and(|p| timestamp_s <= p) {
                return Err(Error::TimestampsNotAscending {
                    series: key.to_string(),
                    timestamp_s,
                });
            }
            if !(self.period_start_s..self.period_end_s).contains(&timestamp_s) {
                return Err(Error::OutsidePeriod {
                    series: key.to_string(),
                    timestamp_s,
                    start_s: self.period_start_s,
                    end_s: self.period_end_s,
                });
            }
            previous = Some(timestamp_s);
        }
        Ok(())
    }

    /// Hands the pending series to the Parquet writer in batches of `BATCH_ROWS`.
    fn write_pending(&mut self) -> Result<(), Error> {
        let Some(mut pending) = self.pending.take() else {
            return Ok(());
        };
        if pending.merged {
            // Stable: of two samples at the same second, the one added first comes first.
            pending.rows.sort_by_key(|&(timestamp_s, _, _)| timestamp_s);
        }
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let parquet = |source| Error::Parquet {
            path: self.temporary.clone(),
            source,
        };
        let new_host = self.written_host.as_deref() != Some(pending.key.host.as_str());
        if new_host && writer.group_rows() >= self.options.row_group_rows_min {
            writer.close_group().map_err(parquet)?;
        }
        let key = &pending.key;
        let strings = [
            self.cluster.as_str(),
            &key.host,
            &key.metric,
            &key.scope,
            &key.scope_id,
        ];
        let mut rest = pending.rows.as_slice();
        while !rest.is_empty() {
            // A group ends exactly at the row cap, or once its numeric columns' encoded size
            // reaches the byte cap.
            let room = self.options.row_group_rows_max - writer.group_rows();
            let (rows, next) = rest.split_at(rest.len().min(room).min(BATCH_ROWS));
            writer.write(strings, rows).map_err(parquet)?;
            if writer.group_rows() >= self.options.row_group_rows_max
                || writer.group_bytes() >= self.options.row_group_bytes_max
            {
                writer.close_group().map_err(parquet)?;
            }
            rest = next;
        }
        self.rows += pending.rows.len() as u64;
        self.series += 1;
        if new_host {
            self.written_host = Some(pending.key.host);
        }
        Ok(())
    }

    fn parquet_error(&self, source: parquet::errors::ParquetError) -> Error {
        Error::Parquet {
            path: self.temporary.clone(),
            source,
        }
    }
}

impl Drop for PeriodWriter {
    fn drop(&mut self) {
        // `finish` did not get as far as the rename: the temporary file is garbage.
        if !self.renamed {
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

fn present(samples: &[(i64, f32)], frequency_s: i64) -> impl Iterator<Item = (i64, i64, f32)> {
    samples
        .iter()
        .filter(|(_, value)| !value.is_nan())
        .map(move |&(timestamp_s, value)| (timestamp_s, frequency_s, value))
}
