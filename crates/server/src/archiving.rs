//! Archiving (`cleanup.mode: archive`): data about to leave the memory window is written to
//! Parquet files ([`strata_archive::PeriodWriter`]) and freed only once its file is durable.
//!
//! Periods are `[k·interval, (k+1)·interval)` since the epoch, one file each
//! (`<directory>/<cluster>/<period-start>.parquet`, or the same key below an S3 prefix). A
//! pass takes, per cluster and oldest first, every period that ended at or before the
//! retention cutoff (`now − retention`) and is not archived yet, and
//! 1. writes it series by series in the file's sort order (memory: one series' copy and the
//!    open row group, whatever the cluster's size), under a temporary name, then fsyncs and
//!    renames it; on S3 into `<data>/archive-staging`, then uploads it (visible once the
//!    upload completes);
//! 2. records the cluster's archived end in `<data>/ARCHIVE-STATE`, atomically;
//! 3. frees the memory below it.
//!
//! A crash before step 2 leaves the data in memory, snapshots and the WAL: the next pass
//! writes the same file again. Retention never frees what is not archived
//! ([`ArchiveState::retention_cutoff`]); the snapshot after a pass drops the freed data from
//! disk.

use crate::progress::Progress;
use crate::telemetry::{LogLimiter, PeakResident};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use strata_archive::{Archive, FileSummary, Location, PeriodWriter, format};
use strata_store::{HostImage, Store};

/// The file that says how far each cluster is archived.
pub const STATE_FILE: &str = "ARCHIVE-STATE";

/// The version of [`STATE_FILE`]'s contents.
const STATE_FORMAT: u32 = 1;

/// Where and how a pass archives.
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    /// The archive's root: a local directory or an S3 bucket and prefix.
    pub location: Location,
    /// Length of a period, > 0.
    pub interval_s: i64,
}

/// Per cluster, the end of what is archived (exclusive, unix seconds).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveState {
    format: u32,
    clusters: BTreeMap<String, i64>,
}

impl ArchiveState {
    /// The state in `data_directory`; none yet is an empty state. A damaged file is logged and
    /// read as empty: periods are then archived again (the same files, written anew) and
    /// retention frees nothing that was not archived since, so nothing is lost.
    pub fn load(data_directory: &Path) -> Self {
        let path = data_directory.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Self::default(),
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "cannot read the archive state; archiving from the oldest data in memory");
                return Self::default();
            }
        };
        match serde_json::from_slice::<Self>(&bytes) {
            Ok(state) if state.format == STATE_FORMAT => state,
            Ok(state) => {
                tracing::error!(path = %path.display(), format = state.format, "archive state of an unknown format; archiving from the oldest data in memory");
                Self::default()
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "damaged archive state; archiving from the oldest data in memory");
                Self::default()
            }
        }
    }

    fn store(&self, data_directory: &Path) -> std::io::Result<()> {
        let state = Self {
            format: STATE_FORMAT,
            clusters: self.clusters.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&state).map_err(std::io::Error::other)?;
        strata_wal::snapshot::write_atomically(&data_directory.join(STATE_FILE), &bytes, true)
            .map_err(std::io::Error::other)
    }

    /// Every cluster's archived end.
    pub fn clusters(&self) -> &BTreeMap<String, i64> {
        &self.clusters
    }

    /// The end of what `cluster` has archived.
    pub fn archived_until(&self, cluster: &str) -> Option<i64> {
        self.clusters.get(cluster).copied()
    }

    /// Retention in archive mode frees a cluster only below what it has archived (and never
    /// above the usual `cutoff_s`); a cluster with nothing archived keeps its data.
    pub fn retention_cutoff(&self, cluster: &str, cutoff_s: i64) -> Option<i64> {
        self.archived_until(cluster)
            .map(|until| until.min(cutoff_s))
    }
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    pub files: Vec<FileSummary>,
    pub samples: u64,
    pub bytes: u64,
    pub freed_buffers: usize,
    /// Periods that could not be archived, with the reason; their data stays in memory.
    pub errors: Vec<String>,
    /// Wall time of the pass.
    pub seconds: f64,
    /// How far the process's resident memory rose above where it was when the pass began
    /// (Linux; `None` elsewhere). Concurrent ingest counts too.
    pub peak_extra_bytes: Option<u64>,
    /// Per cluster, the end of what is archived after the pass.
    pub archived_until: BTreeMap<String, i64>,
}

impl std::fmt::Display for PassReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "files written:   {}", self.files.len())?;
        writeln!(f, "samples:         {}", self.samples)?;
        writeln!(f, "bytes:           {}", self.bytes)?;
        if self.samples > 0 {
            let per_sample = self.bytes as f64 / self.samples as f64;
            writeln!(f, "bytes per sample: {per_sample:.2}")?;
        }
        writeln!(f, "buffers freed:   {}", self.freed_buffers)?;
        writeln!(f, "seconds:         {:.2}", self.seconds)?;
        if self.seconds > 0.0 {
            let rate = self.samples as f64 / self.seconds;
            writeln!(f, "samples per second: {rate:.0}")?;
        }
        if let Some(bytes) = self.peak_extra_bytes {
            writeln!(
                f,
                "peak extra memory: {:.1} MiB",
                bytes as f64 / (1 << 20) as f64
            )?;
        }
        writeln!(f, "errors:          {}", self.errors.len())?;
        for error in &self.errors {
            writeln!(f, "  - {error}")?;
        }
        Ok(())
    }
}

/// One pass at `now_s` (see the module doc), over `archive` (the reader whose caches queries
/// share: the newest file of each cluster is known without opening every footer again; it
/// also publishes the files, `settings.location` is where it was opened).
/// Blocking: run it off the async workers.
pub fn run_pass(
    store: &Store,
    archive: &Archive,
    data_directory: &Path,
    settings: &ArchiveSettings,
    now_s: i64,
) -> PassReport {
    let started = std::time::Instant::now();
    let peak = PeakResident::start();
    let mut report = pass(store, archive, data_directory, settings, now_s);
    report.seconds = started.elapsed().as_secs_f64();
    report.peak_extra_bytes = peak.extra_bytes();
    report
}

fn pass(
    store: &Store,
    archive: &Archive,
    data_directory: &Path,
    settings: &ArchiveSettings,
    now_s: i64,
) -> PassReport {
    let mut state = ArchiveState::load(data_directory);
    let mut report = PassReport::default();
    let directory = match archive.staging_directory(data_directory) {
        Ok(directory) => directory,
        Err(error) => {
            let error = error.to_string();
            tracing::error!(%error, "archiving failed; the data stays in memory and is archived at the next pass");
            report.errors.push(error);
            return report;
        }
    };
    let interval = settings.interval_s.max(1);
    let cutoff_s = now_s - store.config().retention_s;
    let last_end = cutoff_s.div_euclid(interval) * interval;
    let progress = Progress::new("archiving", store.clusters().len() as u64);
    for cluster in store.clusters() {
        // A file is renamed into place only once complete and periods are archived oldest
        // first, so the newest file's end is archived too: a state that was lost, damaged or
        // not written before a crash never makes a pass rewrite a complete file from the part
        // of its period memory still holds.
        let files = match archive.archived_end(&cluster) {
            Ok(files) => files,
            // Without knowing what the files hold, a pass could rewrite a complete one.
            Err(error) => {
                let error = format!("cluster {cluster}: {error}");
                tracing::error!(%error, "cannot tell how far the cluster is archived; its data stays in memory");
                report.errors.push(error);
                progress.advance(1, 0);
                continue;
            }
        };
        let archived = match (state.archived_until(&cluster), files) {
            (Some(until), Some(files)) => Some(until.max(files)),
            (until, files) => until.or(files),
        };
        if let Some(until) = archived {
            // Also while the pass refuses below (retention raised): such a write would land
            // below the archived end, where no pass ever writes again.
            store.set_archived_until(&cluster, until);
        }
        let oldest = oldest_sample(store, &cluster);
        let first = match archived {
            // Ahead of what a pass at this clock can archive (the clock went back,
            // retention-in-memory was raised, or the state or files come from elsewhere):
            // writes take samples below it that are in no file, so nothing of the cluster is
            // archived or freed until the cutoff passes it.
            Some(until) if until > cutoff_s => {
                let error = format!(
                    "cluster {cluster}: archived until {until}, after this pass's cutoff {cutoff_s}"
                );
                tracing::error!(%error, "archived end after the cutoff (clock set back, or retention raised?); the cluster's data stays in memory");
                report.errors.push(error);
                progress.advance(1, 0);
                continue;
            }
            Some(until) => until,
            None => match oldest {
                Some(oldest) => oldest.div_euclid(interval) * interval,
                None => continue,
            },
        };
        if let Some(until) = archived {
            state.clusters.insert(cluster.clone(), until);
        }
        // Periods before the oldest sample in memory are empty: one step over them, however
        // far behind the archived end is (an old or hand-made state, a long downtime), and
        // none at all without samples.
        let mut start = match oldest {
            Some(oldest) => first.max(oldest.div_euclid(interval) * interval),
            None => last_end,
        };
        while start < last_end {
            // The end of the grid period holding `start`: an archived end off the grid (the
            // interval was changed, or a cc-metric-store file ends elsewhere) is followed by
            // a short period, never by one reaching past `last_end` into the window that
            // still takes writes.
            let end = start
                .div_euclid(interval)
                .saturating_add(1)
                .saturating_mul(interval);
            let written = write_period(store, &directory, &cluster, start, end)
                .and_then(|file| file.map(|file| archive.publish(file, &cluster)).transpose());
            match written {
                Ok(Some(file)) => {
                    progress.advance(0, file.rows);
                    report.samples += file.rows;
                    report.bytes += file.bytes;
                    report.files.push(file);
                }
                Ok(None) => {}
                Err(error) => {
                    let error = format!("cluster {cluster}, period {start}..{end}: {error}");
                    tracing::error!(%error, "archiving failed; the data stays in memory and is archived at the next pass");
                    report.errors.push(error);
                    break;
                }
            }
            state.clusters.insert(cluster.clone(), end);
            if let Err(error) = state.store(data_directory) {
                let error = format!("writing {STATE_FILE}: {error}");
                tracing::error!(%error, "archiving stopped; nothing is freed until the state is written");
                report.errors.push(error);
                return report;
            }
            // The file is written: a sample for it now would be in no file.
            store.set_archived_until(&cluster, end);
            start = end;
        }
        if let Some(until) = state.retention_cutoff(&cluster, cutoff_s) {
            report.freed_buffers += store.free(&[cluster.as_str()], until);
        }
        progress.advance(1, 0);
    }
    progress.finish();
    report.archived_until = state.clusters;
    report
}

/// The oldest sample `cluster` holds in memory.
fn oldest_sample(store: &Store, cluster: &str) -> Option<i64> {
    let mut oldest = None::<i64>;
    for host in store.hosts(cluster) {
        let mut metrics: Vec<String> = store
            .series_names(cluster, &host)
            .into_iter()
            .map(|(_, metric)| metric)
            .collect();
        metrics.dedup();
        for metric in metrics {
            if let Some(start) = store.memory_start(cluster, &host, &metric) {
                oldest = Some(oldest.map_or(start, |o| o.min(start)));
            }
        }
    }
    oldest
}

/// Writes one period of `cluster`: hosts by name, each host's series by (metric, scope,
/// scope id) as the file is sorted. A period without samples gets no file (as
/// cc-metric-store removes an empty one); the state file says it is archived.
fn write_period(
    store: &Store,
    directory: &Path,
    cluster: &str,
    start: i64,
    end: i64,
) -> Result<Option<FileSummary>, strata_archive::Error> {
    let mut writer = PeriodWriter::create(directory, cluster, start, end)?;
    let mut written = false;
    for host in store.hosts(cluster) {
        let names = store.series_names(cluster, &host);
        let mut series: Vec<(&str, Vec<&str>)> = names
            .iter()
            .map(|(levels, metric)| (metric.as_str(), levels.iter().map(String::as_str).collect()))
            .collect();
        // The file's order: metric, then the (scope, scope id) the levels are stored as.
        series.sort_by(|(a_metric, a_levels), (b_metric, b_levels)| {
            let (a_scope, a_id) = format::stored_scope(a_levels);
            let (b_scope, b_id) = format::stored_scope(b_levels);
            (a_metric.as_bytes(), a_scope.as_bytes(), a_id.as_bytes()).cmp(&(
                b_metric.as_bytes(),
                b_scope.as_bytes(),
                b_id.as_bytes(),
            ))
        });
        for (metric, levels) in series {
            if let Some((frequency_s, samples)) =
                store.export_series(cluster, &host, &levels, metric, start, end)
                && !samples.is_empty()
            {
                writer.add_series(&host, &levels, metric, frequency_s, &samples)?;
                written = true;
            }
        }
    }
    // Dropped unfinished, the writer removes its temporary file.
    written.then(|| writer.finish()).transpose()
}

/// Archive read problems are logged at most once a minute (with how many were held back): a
/// damaged file would otherwise log once per query. `/metrics` counts them all.
static READ_LOG: LogLimiter = LogLimiter::new(60);

/// How far beyond a query's range the archive is read, so that a range starting or ending in
/// a gap finds the sample on the other side of it, as memory does (gaps up to this long).
pub const QUERY_MARGIN_S: i64 = 3600;

/// For a query of `metric` at `host` over `[from_s, to_s)` that starts before what memory
/// holds: a scratch store with the archive's samples and then memory's copy on top (memory
/// wins where both have a slot), for the unchanged query code to run on, so the answer
/// follows exactly the same rules as if all data were still in memory. `None`: memory alone
/// answers (it covers the range, or the archive has nothing for it). Files that cannot be read
/// are logged and left out.
pub fn with_archive(
    store: &Store,
    archive: &Archive,
    cluster: &str,
    host: &str,
    metric: &str,
    (from_s, to_s): (i64, i64),
) -> Option<Store> {
    if store
        .memory_start(cluster, host, metric)
        .is_some_and(|start| start <= from_s)
    {
        return None;
    }
    let archive_end = match archive.newest_s(cluster) {
        Ok(end) => end?,
        Err(error) => {
            if let Some(suppressed) = READ_LOG.allow(crate::now_s()) {
                tracing::warn!(cluster, host, metric, %error, suppressed, "cannot list the archive; answering from memory");
            }
            return None;
        }
    };
    if archive_end <= from_s.saturating_sub(QUERY_MARGIN_S) {
        return None;
    }
    let read = match archive.read(
        cluster,
        host,
        metric,
        from_s.saturating_sub(QUERY_MARGIN_S),
        to_s.saturating_add(QUERY_MARGIN_S).min(archive_end),
    ) {
        Ok(read) => read,
        Err(error) => {
            if let Some(suppressed) = READ_LOG.allow(crate::now_s()) {
                tracing::warn!(cluster, host, metric, %error, suppressed, "cannot read the archive; answering from memory");
            }
            return None;
        }
    };
    for skipped in &read.skipped {
        if let Some(suppressed) = READ_LOG.allow(crate::now_s()) {
            tracing::warn!(cluster, file = %skipped.name, reason = %skipped.reason, suppressed, "archive file skipped");
        }
    }
    if read.series.is_empty() {
        return None;
    }
    let mut image = HostImage::new(cluster, host);
    for series in read.series {
        image.add_samples(&series.levels, metric, series.frequency_s, series.samples);
    }
    let scratch = store.scratch();
    scratch.import_host(image);
    if let Some(memory) = store.export_metric(cluster, host, metric, from_s, to_s) {
        scratch.import_host(memory);
    }
    Some(scratch)
}
