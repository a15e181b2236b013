//! [`Archive`]: one `(cluster, host, metric)` read back from a local archive directory or an
//! S3 bucket ([`crate::s3`]).
//!
//! Per read: list `<dir>/<cluster>/*.parquet` (on S3, the objects directly under
//! `<prefix>/<cluster>/`, the listing kept [`LISTING_TTL`]); keep the files whose time range overlaps the
//! request (a Strata file's period from its key-value metadata, else the timestamp statistics,
//! else one scan of the timestamp column; remembered per file by size and mtime); in each file
//! keep the row groups whose hostname, metric and timestamp statistics admit the request, and in
//! those the pages the page index admits (a `RowSelection`); decode only the 7 columns needed
//! (not `cluster`, which the directory names) and filter each row exactly. Footers (with their
//! page index) are cached up to [`FOOTER_CACHE_BYTES`]. Local files and objects go through the
//! same code, generic over Parquet's `ChunkReader`: a `File`, or an [`ObjectReader`] that
//! fetched the footer and the selected column chunks ahead.

use crate::Error;
use crate::format::{self, level_of};
use crate::s3::{ObjectReader, S3Archive, S3Settings, TAIL_PREFETCH_BYTES};
use arrow_array::{Array, BinaryArray, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Schema};
use parking_lot::Mutex;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::page_index::RowGroupPageIndex;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, RowGroupMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Bound on the cached footers (file metadata + page index), by their in-memory size.
pub const FOOTER_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// A read returning more samples than this fails with [`Error::TooManySamples`] instead of
/// holding them all (8 Mi samples ≈ 128 MiB).
pub const READ_SAMPLES_MAX: usize = 8 * 1024 * 1024;
/// Rows per decoded record batch.
const BATCH_ROWS: usize = 8192;
/// How long an S3 listing is reused: a query lists twice (the archive's end, then the files)
/// and a request to the object store costs milliseconds. Files this archive publishes are
/// seen at once; another writer's, at most this late.
pub const LISTING_TTL: Duration = Duration::from_secs(10);

/// What [`Archive::read`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadResult {
    /// One entry per series, ordered by `levels` then `frequency_s`.
    pub series: Vec<ArchivedSeries>,
    /// Files that could not be read; the answer is built from the others.
    pub skipped: Vec<SkippedFile>,
}

/// One archived series of the requested host and metric.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedSeries {
    /// Level names below the host ([`format::level_of`]): empty for the host level, else one
    /// name (an archive keeps only the innermost level).
    pub levels: Vec<String>,
    /// Seconds between samples. A series stored at two frequencies (the metric's configuration
    /// changed between files) comes back as two entries.
    pub frequency_s: i64,
    /// `(unix s, value)`, timestamps strictly ascending; of two rows at the same second the one
    /// from the file with the lower name (then the earlier row) wins.
    pub samples: Vec<(i64, f32)>,
}

/// A file [`Archive::read`] could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// File name inside the cluster's directory.
    pub name: String,
    pub reason: String,
}

/// Reader over one archive: a local directory (`<directory>/<cluster>/*.parquet`) or an S3
/// bucket (`<prefix>/<cluster>/*.parquet`).
///
/// Cheap to share between threads: reads run in parallel, only the caches are locked briefly.
pub struct Archive {
    pub(crate) backend: Backend,
    footer_cache_bytes_max: usize,
    read_samples_max: usize,
    cache: Mutex<Cache>,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    reads: AtomicU64,
    failures: AtomicU64,
    skipped_files: AtomicU64,
}

/// What an [`Archive`] has done since it was opened (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Calls of [`Archive::read`].
    pub reads: u64,
    /// Reads that failed as a whole.
    pub failures: u64,
    /// Files left out of reads because they could not be used (each read counts them again).
    pub skipped_files: u64,
    /// In-memory size of the cached footers now.
    pub footer_cache_bytes: u64,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let location = match &self.backend {
            Backend::Local(directory) => directory.display().to_string(),
            Backend::S3(s3) => s3.url(""),
        };
        f.debug_struct("Archive")
            .field("location", &location)
            .finish_non_exhaustive()
    }
}

/// Where the files are.
pub(crate) enum Backend {
    Local(PathBuf),
    S3(Arc<S3Archive>),
}

/// Identity of a file version: a rewritten file (same name) gets new cache entries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    size: u64,
    modified: Option<SystemTime>,
    /// An object's ETag.
    tag: Option<String>,
}

#[derive(Clone)]
struct Entry {
    /// The local file, or the object's key.
    path: PathBuf,
    name: String,
    stamp: Stamp,
}

struct Footer {
    stamp: Stamp,
    metadata: ArrowReaderMetadata,
    bytes: usize,
    used: u64,
}

#[derive(Default)]
struct Cache {
    footers: HashMap<PathBuf, Footer>,
    footer_bytes: usize,
    clock: u64,
    /// `[start, end)` of the samples a file may hold; `None` for a file without rows. Kept when
    /// the footer is evicted (it is tiny and saves opening every file per read).
    ranges: HashMap<PathBuf, (Stamp, Span)>,
    /// S3 listings per cluster, with when they were made; a failed one as its error's text,
    /// so that queries meanwhile fail at once instead of each waiting for the retries.
    listings: HashMap<String, (Instant, Result<Vec<Entry>, String>)>,
    /// Per cluster, bumped whenever its listing is dropped: a listing made before the bump
    /// (a query's, racing a pass's publish) is not cached after it.
    listing_generations: HashMap<String, u64>,
}

/// A file's time range, and whether it is a Strata period (from the file's metadata) rather
/// than the span of its rows.
#[derive(Debug, Clone, Copy)]
struct Span {
    range: Option<(i64, i64)>,
    period: bool,
}

/// The request, as bytes for comparisons with Parquet statistics.
struct Query<'a> {
    host: &'a [u8],
    metric: &'a [u8],
    from_s: i64,
    to_s: i64,
}

/// Why one file contributed nothing.
enum FileError {
    Skip(String),
    Limit,
}

impl<E: std::fmt::Display> From<E> for FileError {
    fn from(error: E) -> Self {
        FileError::Skip(error.to_string())
    }
}

/// Rows of one file, per (scope, scope_id, frequency).
type FileSeries = HashMap<(String, String, i64), Vec<(i64, f32)>>;
/// Rows of all files, per (level names, frequency).
type Merged = BTreeMap<(Vec<String>, i64), Vec<(i64, f32)>>;
/// Consecutive rows of one series in a batch: (scope, scope_id, frequency) and samples.
type Run<'a> = Option<((&'a [u8], &'a [u8], i64), Vec<(i64, f32)>)>;

impl Archive {
    /// A reader over `directory`; nothing is read until a query.
    pub fn open(directory: &Path) -> Self {
        Self::with_backend(Backend::Local(directory.to_path_buf()))
    }

    /// A reader (and publisher, [`Archive::publish`]) over an S3 bucket; nothing is requested
    /// until a query or a pass, so an unreachable server fails those, not this. Errors: the
    /// settings cannot make a client (a bad endpoint URL, a zero part size).
    pub fn open_s3(settings: &S3Settings) -> Result<Self, Error> {
        Ok(Self::with_backend(Backend::S3(Arc::new(S3Archive::open(
            settings,
        )?))))
    }

    fn with_backend(backend: Backend) -> Self {
        Self {
            backend,
            footer_cache_bytes_max: FOOTER_CACHE_BYTES,
            read_samples_max: READ_SAMPLES_MAX,
            cache: Mutex::new(Cache::default()),
            counts: Counts::default(),
        }
    }

    /// Bounds the footer cache to `bytes` instead of [`FOOTER_CACHE_BYTES`] (0 disables it).
    pub fn with_footer_cache_bytes(mut self, bytes: usize) -> Self {
        self.footer_cache_bytes_max = bytes;
        self
    }

    /// Fails reads of more than `samples` samples instead of [`READ_SAMPLES_MAX`].
    pub fn with_read_samples_max(mut self, samples: usize) -> Self {
        self.read_samples_max = samples;
        self
    }

    /// In-memory size of the cached footers now (for a gauge); at most the configured bound.
    pub fn footer_cache_bytes(&self) -> usize {
        self.cache.lock().footer_bytes
    }

    /// Reads, failed reads and skipped files so far, and the footer cache's size.
    pub fn stats(&self) -> ReadStats {
        ReadStats {
            reads: self.counts.reads.load(Ordering::Relaxed),
            failures: self.counts.failures.load(Ordering::Relaxed),
            skipped_files: self.counts.skipped_files.load(Ordering::Relaxed),
            footer_cache_bytes: self.footer_cache_bytes() as u64,
        }
    }

    /// Every archived sample of `(cluster, host, metric)` with `from_s <= t < to_s`, grouped by
    /// series, each sorted by time. Files that cannot be read are listed in `skipped` (name and
    /// reason) and the rest still answers. Errors: an invalid cluster name, an unreadable
    /// cluster directory (a missing one is an empty archive), or more than
    /// [`READ_SAMPLES_MAX`] (or [`Archive::with_read_samples_max`]) samples.
    pub fn read(
        &self,
        cluster: &str,
        host: &str,
        metric: &str,
        from_s: i64,
        to_s: i64,
    ) -> Result<ReadResult, Error> {
        let query = Query {
            host: host.as_bytes(),
            metric: metric.as_bytes(),
            from_s,
            to_s,
        };
        let result = self.read_files(cluster, &query);
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
        match &result {
            Ok(read) => self
                .counts
                .skipped_files
                .fetch_add(read.skipped.len() as u64, Ordering::Relaxed),
            Err(_) => self.counts.failures.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    fn read_files(&self, cluster: &str, query: &Query) -> Result<ReadResult, Error> {
        let (entries, mut skipped) = self.list(cluster)?;
        let mut merged = Merged::new();
        if query.from_s >= query.to_s {
            return Ok(ReadResult::default());
        }
        let mut budget = self.read_samples_max;
        for entry in &entries {
            match guarded(|| self.read_file(entry, query, budget)) {
                Ok(found) => {
                    for ((scope, scope_id, frequency_s), samples) in found {
                        budget = budget.saturating_sub(samples.len());
                        let levels = level_of(&scope, &scope_id).into_iter().collect();
                        merged
                            .entry((levels, frequency_s))
                            .or_default()
                            .extend(samples);
                    }
                }
                Err(FileError::Skip(reason)) => skipped.push(SkippedFile {
                    name: entry.name.clone(),
                    reason,
                }),
                Err(FileError::Limit) => {
                    return Err(Error::TooManySamples {
                        limit: self.read_samples_max,
                    });
                }
            }
        }
        if !skipped.is_empty() {
            // An object replaced or removed since the listing: list again at the next read.
            self.forget_listing(cluster);
        }
        let series = merged
            .into_iter()
            .map(|((levels, frequency_s), mut samples)| {
                samples.sort_by_key(|&(timestamp_s, _)| timestamp_s);
                samples.dedup_by_key(|&mut (timestamp_s, _)| timestamp_s);
                ArchivedSeries {
                    levels,
                    frequency_s,
                    samples,
                }
            })
            .collect();
        Ok(ReadResult { series, skipped })
    }

    /// The end (exclusive, unix s) of what the archive holds for `cluster`: the latest period end
    /// of Strata's files, or newest timestamp + 1 of files without a period. `Ok(None)` when no
    /// readable file holds a period or a row; files that cannot be read are left out. Errors
    /// (counted as failed reads): the cluster's files cannot be listed.
    pub fn newest_s(&self, cluster: &str) -> Result<Option<i64>, Error> {
        let entries = match self.list(cluster) {
            Ok((entries, _)) => entries,
            Err(error) => {
                self.counts.failures.fetch_add(1, Ordering::Relaxed);
                return Err(error);
            }
        };
        Ok(entries
            .iter()
            .filter_map(|entry| guarded(|| self.time_range(entry)).ok().flatten())
            .map(|(_, end_s)| end_s)
            .max())
    }

    /// The end of the newest period Strata archived for `cluster` (files without a period,
    /// such as cc-metric-store's, do not count), for a pass to start after. Files are looked at
    /// from the highest name down, and the first with a period ends the search: periods never
    /// overlap, and a file's name is its period's start. Errors: the files cannot be listed, or
    /// one looked at cannot be read (a pass must not guess what is archived).
    pub fn archived_end(&self, cluster: &str) -> Result<Option<i64>, Error> {
        let (entries, _) = self.list(cluster)?;
        // Other names are neither Strata's nor cc-metric-store's: never what a pass wrote.
        let numbered = entries.iter().rev().filter(|entry| {
            let stem = entry.name.trim_end_matches(".parquet");
            stem.parse::<i64>().is_ok()
        });
        for entry in numbered {
            match guarded(|| self.span(entry)) {
                Ok(Span {
                    range: Some((_, end_s)),
                    period: true,
                }) => return Ok(Some(end_s)),
                Ok(_) => {}
                Err(FileError::Skip(reason)) => {
                    return Err(Error::UnreadableFile {
                        name: entry.name.clone(),
                        reason,
                    });
                }
                Err(FileError::Limit) => {}
            }
        }
        Ok(None)
    }

    /// The cluster's archive files, ordered by the number their name starts with, then by name;
    /// files that cannot be stat'ed are returned as skipped.
    fn list(&self, cluster: &str) -> Result<(Vec<Entry>, Vec<SkippedFile>), Error> {
        let (mut entries, skipped, directory) = match &self.backend {
            Backend::Local(directory) => {
                let directory = cluster_directory(directory, cluster)?;
                let (entries, skipped) = list_directory(&directory)?;
                (entries, skipped, directory)
            }
            Backend::S3(s3) => {
                check_cluster(cluster)?;
                let directory = PathBuf::from(s3.cluster_key(cluster));
                (self.list_objects(s3, cluster)?, Vec::new(), directory)
            }
        };
        entries.sort_by_cached_key(|entry| {
            let stem = entry.name.trim_end_matches(".parquet");
            (stem.parse::<i64>().unwrap_or(i64::MAX), entry.name.clone())
        });
        // Forget files of this cluster that are gone.
        let mut cache = self.cache.lock();
        cache.ranges.retain(|path, _| {
            path.parent() != Some(directory.as_path())
                || entries.iter().any(|entry| &entry.path == path)
        });
        Ok((entries, skipped))
    }

    /// Drops the cached S3 listing of `cluster`, and any listing in flight.
    pub(crate) fn forget_listing(&self, cluster: &str) {
        let mut cache = self.cache.lock();
        cache.listings.remove(cluster);
        *cache
            .listing_generations
            .entry(cluster.to_owned())
            .or_default() += 1;
    }

    /// The `.parquet` objects directly under the cluster's prefix (cached [`LISTING_TTL`]).
    fn list_objects(&self, s3: &S3Archive, cluster: &str) -> Result<Vec<Entry>, Error> {
        let generation = {
            let cache = self.cache.lock();
            if let Some((listed, listing)) = cache.listings.get(cluster)
                && listed.elapsed() < LISTING_TTL
            {
                return listing.clone().map_err(|reason| Error::Unavailable {
                    reason,
                    ttl_s: LISTING_TTL.as_secs(),
                });
            }
            cache.listing_generations.get(cluster).copied()
        };
        let remember = |listing: Result<Vec<Entry>, String>| {
            let mut cache = self.cache.lock();
            if cache.listing_generations.get(cluster).copied() == generation {
                cache
                    .listings
                    .insert(cluster.to_owned(), (Instant::now(), listing));
            }
        };
        let listing = match s3.list(cluster) {
            Ok(listing) => listing,
            Err(error) => {
                remember(Err(error.to_string()));
                return Err(error);
            }
        };
        let entries: Vec<Entry> = listing
            .objects
            .into_iter()
            .filter_map(|object| {
                let name = object.location.filename()?.to_owned();
                // Dot files are never the archive's (a local writer's temporary files).
                (!name.starts_with('.') && name.ends_with(".parquet")).then(|| Entry {
                    path: PathBuf::from(object.location.as_ref()),
                    name,
                    stamp: Stamp {
                        size: object.size,
                        modified: Some(SystemTime::from(object.last_modified)),
                        tag: object.e_tag,
                    },
                })
            })
            .collect();
        remember(Ok(entries.clone()));
        Ok(entries)
    }
    fn read_file(
        &self,
        entry: &Entry,
        query: &Query,
        budget: usize,
    ) -> Result<FileSeries, FileError> {
        let mut found = FileSeries::new();
        match self.time_range(entry)? {
            Some((start_s, end_s)) if start_s < query.to_s && end_s > query.from_s => {}
            _ => return Ok(found),
        }
        let metadata = self.metadata(entry)?;
        let columns = Columns::find(metadata.schema())?;
        let parquet = metadata.metadata().clone();
        let mut row_groups = Vec::new();
        let mut selectors = Vec::new();
        for (index, group) in parquet.row_groups().iter().enumerate() {
            if !group_may_match(group, &columns, query) {
                continue;
            }
            let rows = usize::try_from(group.num_rows())?;
            let ranges = page_ranges(&parquet, index, rows, &columns, query);
            if ranges.is_empty() {
                continue;
            }
            row_groups.push(index);
            select(&mut selectors, &ranges, rows);
        }
        if row_groups.is_empty() {
            return Ok(found);
        }
        let plan = Plan {
            row_groups,
            selection: Some(RowSelection::from(selectors)),
            columns: vec![
                columns.host,
                columns.metric,
                columns.scope,
                columns.scope_id,
                columns.timestamp,
                columns.frequency,
                columns.value,
            ],
        };
        let reader = self.batches(entry, metadata, plan)?;
        let mut count = 0usize;
        for batch in reader {
            count += collect(&batch?, query, &mut found)?;
            if count > budget {
                return Err(FileError::Limit);
            }
        }
        Ok(found)
    }

    /// The footer, from the cache or the file (then cached, evicting the least recently used).
    fn metadata(&self, entry: &Entry) -> Result<ArrowReaderMetadata, FileError> {
        {
            let mut cache = self.cache.lock();
            cache.clock += 1;
            let clock = cache.clock;
            if let Some(footer) = cache.footers.get_mut(&entry.path)
                && footer.stamp == entry.stamp
            {
                footer.used = clock;
                return Ok(footer.metadata.clone());
            }
        }
        // A cc-metric-store file may have no page index: read it when present.
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let metadata = match &self.backend {
            Backend::Local(_) => ArrowReaderMetadata::load(&File::open(&entry.path)?, options)?,
            Backend::S3(s3) => {
                let mut object = object_reader(s3, entry)?;
                let tail = object.len().saturating_sub(TAIL_PREFETCH_BYTES)..object.len();
                object.prefetch(&[tail])?;
                ArrowReaderMetadata::load(&object, options)?
            }
        };
        let bytes = metadata.metadata().memory_size();
        let mut cache = self.cache.lock();
        if let Some(old) = cache.footers.remove(&entry.path) {
            cache.footer_bytes -= old.bytes;
        }
        if bytes <= self.footer_cache_bytes_max {
            while cache.footer_bytes + bytes > self.footer_cache_bytes_max {
                let Some(oldest) = cache
                    .footers
                    .iter()
                    .min_by_key(|(_, footer)| footer.used)
                    .map(|(path, _)| path.clone())
                else {
                    break;
                };
                if let Some(old) = cache.footers.remove(&oldest) {
                    cache.footer_bytes -= old.bytes;
                }
            }
            let used = cache.clock;
            cache.footer_bytes += bytes;
            cache.footers.insert(
                entry.path.clone(),
                Footer {
                    stamp: entry.stamp.clone(),
                    metadata: metadata.clone(),
                    bytes,
                    used,
                },
            );
        }
        Ok(metadata)
    }

    /// The batches of `plan`: from the local file, or from the object with the plan's column
    /// chunks fetched ahead (coalesced).
    fn batches(
        &self,
        entry: &Entry,
        metadata: ArrowReaderMetadata,
        plan: Plan,
    ) -> Result<ParquetRecordBatchReader, FileError> {
        Ok(match &self.backend {
            Backend::Local(_) => build(File::open(&entry.path)?, metadata, plan)?,
            Backend::S3(s3) => {
                let mut object = object_reader(s3, entry)?;
                object.prefetch(&plan.byte_ranges(metadata.metadata()))?;
                build(object, metadata, plan)?
            }
        })
    }

    /// `[start, end)` of the file's samples (cached per file version).
    fn time_range(&self, entry: &Entry) -> Result<Option<(i64, i64)>, FileError> {
        Ok(self.span(entry)?.range)
    }

    /// The file's [`Span`] (cached per file version).
    fn span(&self, entry: &Entry) -> Result<Span, FileError> {
        if let Some((stamp, span)) = self.cache.lock().ranges.get(&entry.path)
            && *stamp == entry.stamp
        {
            return Ok(*span);
        }
        let metadata = self.metadata(entry)?;
        let period = period(metadata.metadata());
        let range = match period {
            Some(range) => Some(range),
            None => {
                let columns = Columns::find(metadata.schema())?;
                match statistics_range(metadata.metadata(), columns.timestamp) {
                    Some(range) => range,
                    None => {
                        let plan = Plan {
                            row_groups: (0..metadata.metadata().num_row_groups()).collect(),
                            selection: None,
                            columns: vec![columns.timestamp],
                        };
                        scan_range(self.batches(entry, metadata, plan)?)?
                    }
                }
            }
        };
        let span = Span {
            range,
            period: period.is_some(),
        };
        self.cache
            .lock()
            .ranges
            .insert(entry.path.clone(), (entry.stamp.clone(), span));
        Ok(span)
    }
}

/// The `.parquet` files of one cluster's directory (a missing one is empty); files that
/// cannot be stat'ed are returned as skipped.
fn list_directory(directory: &Path) -> Result<(Vec<Entry>, Vec<SkippedFile>), Error> {
    let listing = match fs::read_dir(directory) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), Vec::new()));
        }
        Err(source) => {
            return Err(Error::Io {
                action: "listing",
                path: directory.to_path_buf(),
                source,
            });
        }
    };
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for item in listing {
        let item = item.map_err(|source| Error::Io {
            action: "listing",
            path: directory.to_path_buf(),
            source,
        })?;
        let Ok(name) = item.file_name().into_string() else {
            continue;
        };
        // Dot files are a writer's temporary files.
        if name.starts_with('.') || !name.ends_with(".parquet") {
            continue;
        }
        let path = item.path();
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => entries.push(Entry {
                path,
                name,
                stamp: Stamp {
                    size: metadata.len(),
                    modified: metadata.modified().ok(),
                    tag: None,
                },
            }),
            Ok(_) => {}
            Err(error) => skipped.push(SkippedFile {
                name,
                reason: error.to_string(),
            }),
        }
    }
    Ok((entries, skipped))
}

/// The reader over a listed object, of the size and version the listing saw.
fn object_reader(s3: &Arc<S3Archive>, entry: &Entry) -> Result<ObjectReader, ParquetError> {
    ObjectReader::new(
        s3.clone(),
        &entry.path.to_string_lossy(),
        entry.stamp.size,
        entry.stamp.tag.clone(),
    )
}

/// Runs one file's work; a panic in the Parquet decoder on a damaged file (a last resort: it
/// returns errors for all damage we know of) becomes a skip instead of taking the caller down.
fn guarded<T>(work: impl FnOnce() -> Result<T, FileError>) -> Result<T, FileError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|_| Err(FileError::Skip("the Parquet decoder panicked".into())))
}

/// `<directory>/<cluster>`, refusing cluster names that are not one plain path component.
pub(crate) fn cluster_directory(directory: &Path, cluster: &str) -> Result<PathBuf, Error> {
    check_cluster(cluster)?;
    Ok(directory.join(cluster))
}

/// Refuses cluster names that are not one plain path component (or key segment).
pub(crate) fn check_cluster(cluster: &str) -> Result<(), Error> {
    let plain = !cluster.is_empty()
        && cluster != "."
        && cluster != ".."
        && !cluster.contains(['/', '\\', '\0']);
    if plain {
        Ok(())
    } else {
        Err(Error::InvalidCluster(cluster.to_string()))
    }
}

/// Indexes of the needed columns (root = leaf: the schema is flat), found by name so a file with
/// extra or reordered columns still reads.
struct Columns {
    host: usize,
    metric: usize,
    scope: usize,
    scope_id: usize,
    timestamp: usize,
    frequency: usize,
    value: usize,
}

impl Columns {
    fn find(schema: &Schema) -> Result<Self, FileError> {
        let fields = schema.fields();
        if fields.iter().any(|f| f.data_type().is_nested()) {
            return Err(FileError::Skip(
                "nested columns: not an archive file".into(),
            ));
        }
        let find = |name: &str, accepted: &[DataType]| -> Result<usize, FileError> {
            let index = schema
                .index_of(name)
                .map_err(|_| FileError::Skip(format!("no column {name:?}")))?;
            let data_type = fields[index].data_type();
            if accepted.contains(data_type) {
                Ok(index)
            } else {
                Err(FileError::Skip(format!(
                    "column {name:?} has type {data_type}"
                )))
            }
        };
        let string = [DataType::Utf8, DataType::Binary];
        Ok(Self {
            host: find(format::HOSTNAME, &string)?,
            metric: find(format::METRIC, &string)?,
            scope: find(format::SCOPE, &string)?,
            scope_id: find(format::SCOPE_ID, &string)?,
            timestamp: find(format::TIMESTAMP, &[DataType::Int64])?,
            frequency: find(format::FREQUENCY, &[DataType::Int64])?,
            value: find(format::VALUE, &[DataType::Float32])?,
        })
    }
}

/// The period a Strata file declares in its key-value metadata.
fn period(metadata: &ParquetMetaData) -> Option<(i64, i64)> {
    let pairs = metadata.file_metadata().key_value_metadata()?;
    let value = |key: &str| {
        pairs
            .iter()
            .find(|pair| pair.key == key)
            .and_then(|pair| pair.value.as_deref())
    };
    if value(format::KEY_FORMAT)? != format::FORMAT_VERSION {
        return None;
    }
    let start_s = value(format::KEY_PERIOD_START)?.parse().ok()?;
    let end_s = value(format::KEY_PERIOD_END)?.parse().ok()?;
    (start_s < end_s).then_some((start_s, end_s))
}

/// `[min, max + 1)` of the timestamp statistics of all row groups: `Some(None)` for a file
/// without rows, `None` when a row group lacks statistics.
fn statistics_range(metadata: &ParquetMetaData, timestamp: usize) -> Option<Option<(i64, i64)>> {
    let mut range: Option<(i64, i64)> = None;
    for group in metadata.row_groups() {
        if group.num_rows() == 0 {
            continue;
        }
        let Some(Statistics::Int64(statistics)) = group.column(timestamp).statistics() else {
            return None;
        };
        let (&min, &max) = (statistics.min_opt()?, statistics.max_opt()?);
        let (start, end) = range.unwrap_or((min, max.saturating_add(1)));
        range = Some((start.min(min), end.max(max.saturating_add(1))));
    }
    Some(range)
}

/// What to decode of a file: row groups, rows in them (all when `None`), columns (roots).
struct Plan {
    row_groups: Vec<usize>,
    selection: Option<RowSelection>,
    columns: Vec<usize>,
}

impl Plan {
    /// The byte ranges of the column chunks the plan decodes.
    fn byte_ranges(&self, metadata: &ParquetMetaData) -> Vec<Range<u64>> {
        let mut ranges = Vec::new();
        for &group in &self.row_groups {
            let Some(group) = metadata.row_groups().get(group) else {
                continue;
            };
            for &column in &self.columns {
                if column < group.num_columns() {
                    let (start, length) = group.column(column).byte_range();
                    ranges.push(start..start.saturating_add(length));
                }
            }
        }
        ranges.sort_by_key(|range| range.start);
        ranges
    }
}

/// The record batches of `plan` over a file or an object.
fn build<R: ChunkReader + 'static>(
    reader: R,
    metadata: ArrowReaderMetadata,
    plan: Plan,
) -> Result<ParquetRecordBatchReader, ParquetError> {
    let mask = ProjectionMask::roots(metadata.parquet_schema(), plan.columns);
    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(reader, metadata)
        .with_row_groups(plan.row_groups)
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS);
    if let Some(selection) = plan.selection {
        builder = builder.with_row_selection(selection);
    }
    builder.build()
}

/// `[min, max + 1)` of the timestamp column (the batches' only column), read in full (files
/// without statistics).
fn scan_range(reader: ParquetRecordBatchReader) -> Result<Option<(i64, i64)>, FileError> {
    let mut range: Option<(i64, i64)> = None;
    for batch in reader {
        let batch = batch?;
        let Some(times) = batch.column(0).as_any().downcast_ref::<Int64Array>() else {
            return Err(FileError::Skip("timestamp is not int64".into()));
        };
        for timestamp_s in times.iter().flatten() {
            let (start, end) = range.unwrap_or((timestamp_s, timestamp_s));
            range = Some((
                start.min(timestamp_s),
                end.max(timestamp_s.saturating_add(1)),
            ));
        }
    }
    Ok(range)
}

/// Whether a row group's statistics admit the request (no statistics: it may).
fn group_may_match(group: &RowGroupMetaData, columns: &Columns, query: &Query) -> bool {
    let bytes_may = |column: usize, value: &[u8]| match group.column(column).statistics() {
        Some(statistics @ Statistics::ByteArray(_)) => {
            match (statistics.min_bytes_opt(), statistics.max_bytes_opt()) {
                (Some(min), Some(max)) => min <= value && value <= max,
                _ => true,
            }
        }
        _ => true,
    };
    let time_may = match group.column(columns.timestamp).statistics() {
        Some(Statistics::Int64(statistics)) => match (statistics.min_opt(), statistics.max_opt()) {
            (Some(&min), Some(&max)) => min < query.to_s && max >= query.from_s,
            _ => true,
        },
        _ => true,
    };
    time_may && bytes_may(columns.host, query.host) && bytes_may(columns.metric, query.metric)
}

/// Row ranges of a row group that the page index admits for hostname, metric and timestamp
/// (every row when the index is missing or does not fit).
fn page_ranges(
    metadata: &ParquetMetaData,
    group: usize,
    rows: usize,
    columns: &Columns,
    query: &Query,
) -> Vec<Range<usize>> {
    let index = metadata.page_index_for_row_group(group);
    let mut kept: Vec<Range<usize>> = std::iter::once(0..rows).collect();
    for (column, test) in [
        (columns.host, PageTest::Bytes(query.host)),
        (columns.metric, PageTest::Bytes(query.metric)),
        (columns.timestamp, PageTest::Time(query.from_s, query.to_s)),
    ] {
        if let Some(pages) = admitted_pages(&index, column, rows, &test) {
            kept = intersect(&kept, &pages);
        }
    }
    kept
}

enum PageTest<'a> {
    Bytes(&'a [u8]),
    Time(i64, i64),
}

/// Row ranges of the pages of one column whose min/max admit `test`; `None` without a usable
/// index.
fn admitted_pages(
    index: &RowGroupPageIndex,
    column: usize,
    rows: usize,
    test: &PageTest,
) -> Option<Vec<Range<usize>>> {
    let locations = index.page_locations(column)?;
    let column_index = index.column_index(column)?;
    if usize::try_from(column_index.num_pages()).ok()? != locations.len() {
        return None;
    }
    let mut admitted: Vec<Range<usize>> = Vec::new();
    for (page, location) in locations.iter().enumerate() {
        let start = usize::try_from(location.first_row_index).ok()?;
        let end = match locations.get(page + 1) {
            Some(next) => usize::try_from(next.first_row_index).ok()?,
            None => rows,
        };
        if start > end || end > rows {
            return None;
        }
        // A page without min/max holds only nulls, which no request matches.
        let admits = match (test, column_index) {
            (PageTest::Bytes(value), ColumnIndexMetaData::BYTE_ARRAY(pages)) => {
                match (pages.min_value(page), pages.max_value(page)) {
                    (Some(min), Some(max)) => min <= *value && *value <= max,
                    _ => false,
                }
            }
            (PageTest::Time(from_s, to_s), ColumnIndexMetaData::INT64(pages)) => {
                match (pages.min_value(page), pages.max_value(page)) {
                    (Some(min), Some(max)) => min < to_s && max >= from_s,
                    _ => false,
                }
            }
            _ => return None,
        };
        if admits {
            match admitted.last_mut() {
                Some(last) if last.end == start => last.end = end,
                _ => admitted.push(start..end),
            }
        }
    }
    Some(admitted)
}

/// Intersection of two sorted, disjoint range lists.
fn intersect(a: &[Range<usize>], b: &[Range<usize>]) -> Vec<Range<usize>> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let start = a[i].start.max(b[j].start);
        let end = a[i].end.min(b[j].end);
        if start < end {
            out.push(start..end);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Appends the selectors of one selected row group: `ranges` selected, the rest skipped.
fn select(selectors: &mut Vec<RowSelector>, ranges: &[Range<usize>], rows: usize) {
    let mut position = 0;
    for range in ranges {
        if range.start > position {
            selectors.push(RowSelector::skip(range.start - position));
        }
        selectors.push(RowSelector::select(range.len()));
        position = range.end;
    }
    if rows > position {
        selectors.push(RowSelector::skip(rows - position));
    }
}

/// A string column as bytes (`Utf8`, or `Binary` for a file without the String annotation).
enum Strings<'a> {
    Utf8(&'a StringArray),
    Binary(&'a BinaryArray),
}

impl<'a> Strings<'a> {
    fn of(batch: &'a RecordBatch, name: &str) -> Result<Self, FileError> {
        let column = batch
            .column_by_name(name)
            .ok_or_else(|| FileError::Skip(format!("no column {name:?}")))?;
        let any = column.as_any();
        if let Some(strings) = any.downcast_ref::<StringArray>() {
            Ok(Self::Utf8(strings))
        } else if let Some(bytes) = any.downcast_ref::<BinaryArray>() {
            Ok(Self::Binary(bytes))
        } else {
            Err(FileError::Skip(format!("column {name:?} is not a string")))
        }
    }

    fn value(&self, row: usize) -> Option<&'a [u8]> {
        match self {
            Self::Utf8(array) => array.is_valid(row).then(|| array.value(row).as_bytes()),
            Self::Binary(array) => array.is_valid(row).then(|| array.value(row)),
        }
    }
}

fn primitive<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, FileError> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_any().downcast_ref::<T>())
        .ok_or_else(|| FileError::Skip(format!("column {name:?} has an unexpected type")))
}

/// Adds the batch's rows that match the request to `found`; returns how many.
fn collect(batch: &RecordBatch, query: &Query, found: &mut FileSeries) -> Result<usize, FileError> {
    let hosts = Strings::of(batch, format::HOSTNAME)?;
    let metrics = Strings::of(batch, format::METRIC)?;
    let scopes = Strings::of(batch, format::SCOPE)?;
    let scope_ids = Strings::of(batch, format::SCOPE_ID)?;
    let times = primitive::<Int64Array>(batch, format::TIMESTAMP)?;
    let frequencies = primitive::<Int64Array>(batch, format::FREQUENCY)?;
    let values = primitive::<Float32Array>(batch, format::VALUE)?;
    let mut count = 0;
    // Rows of one series are adjacent in a sorted file: gather a run, then look its series up.
    let mut run: Run = None;
    let flush = |run: Run, found: &mut FileSeries| {
        if let Some(((scope, scope_id, frequency_s), samples)) = run {
            let key = (
                String::from_utf8_lossy(scope).into_owned(),
                String::from_utf8_lossy(scope_id).into_owned(),
                frequency_s,
            );
            found.entry(key).or_default().extend(samples);
        }
    };
    for row in 0..batch.num_rows() {
        if hosts.value(row) != Some(query.host) || metrics.value(row) != Some(query.metric) {
            continue;
        }
        let (Some(scope), Some(scope_id)) = (scopes.value(row), scope_ids.value(row)) else {
            continue;
        };
        if times.is_null(row) || frequencies.is_null(row) || values.is_null(row) {
            continue;
        }
        let timestamp_s = times.value(row);
        let value = values.value(row);
        if !(query.from_s..query.to_s).contains(&timestamp_s) || value.is_nan() {
            continue;
        }
        count += 1;
        let key = (scope, scope_id, frequencies.value(row));
        match &mut run {
            Some((current, samples)) if *current == key => samples.push((timestamp_s, value)),
            _ => flush(run.replace((key, vec![(timestamp_s, value)])), found),
        }
    }
    flush(run, found);
    Ok(count)
}
