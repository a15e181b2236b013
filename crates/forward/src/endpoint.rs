//! One endpoint's life: epochs of its pipeline, its cursor on disk and in the retention
//! registry, its backlog budget and its shard count.

use crate::config::EndpointConfig;
use crate::cursor::CursorFiles;
use crate::deliver::Sender;
use crate::metrics::{EndpointMetrics, reason};
use crate::pipeline::{Epoch, EpochSetup, Progress};
use crate::relabel::Relabeler;
use crate::reshard::{Controller, Interval, RESHARD_INTERVAL};
use crate::series::EndpointSeries;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use strata_wal::format::SEGMENT_HEADER_BYTES;
use strata_wal::{Committed, Event, LogReader, OwnedRecord, Position, Refs, Retention};
use tokio::sync::watch;

/// How often the cursor is written (when it moved) and the budget checked.
const CURSOR_INTERVAL: Duration = Duration::from_secs(1);

/// The acknowledged-position hint is written with every cursor write while it has at most
/// this many series (160 KiB at 20 bytes a series), so that a crash resends almost nothing;
/// a larger one is written every [`HINT_INTERVAL`] (when it changed), and a crash may then
/// resend up to that much.
const HINT_SERIES_WITH_CURSOR_MAX: usize = 8 << 10;

const HINT_INTERVAL: Duration = Duration::from_secs(10);

/// Longest wait for requests in flight when an epoch ends (reshard, budget skip, shutdown):
/// their answers need not be sent again; past it they are abandoned (and resent).
const DRAIN_MAX: Duration = Duration::from_secs(5);

/// Pause before a pipeline that failed (an unreadable log) is started again.
const RESTART_DELAY: Duration = Duration::from_secs(5);

/// The shared log, as an endpoint reads it.
#[derive(Debug, Clone)]
pub struct LogHandles {
    pub directory: PathBuf,
    /// The sequence number the log's next record gets, at startup (no hint may be past it).
    pub next_sequence: u64,
    pub committed: Arc<Committed>,
    pub retention: Arc<Retention>,
}

/// An endpoint's state for `GET /api/remote-write`.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub name: String,
    pub url: String,
    pub cursor: Position,
    pub lag_bytes: u64,
    pub lag_seconds: f64,
    pub shards: usize,
    pub desired_shards: f64,
    pub last_error: Option<String>,
}

pub struct Endpoint {
    pub(crate) config: EndpointConfig,
    sender: Arc<Sender>,
    relabeler: Arc<Relabeler>,
    files: CursorFiles,
    log: LogHandles,
    metrics: EndpointMetrics,
    series: Arc<Mutex<EndpointSeries>>,
    progress: Arc<Progress>,
    status: Mutex<Status>,
}

/// Why an epoch ended.
enum Next {
    Shutdown,
    Reshard(usize),
    Skip(Position),
    Restart,
}

impl Endpoint {
    pub fn new(
        config: EndpointConfig,
        sender: Arc<Sender>,
        relabeler: Arc<Relabeler>,
        files: CursorFiles,
        log: LogHandles,
        metrics: EndpointMetrics,
        series: EndpointSeries,
    ) -> Self {
        let series = Arc::new(Mutex::new(series));
        let status = Status {
            name: config.name.clone(),
            url: redact(&config.url),
            ..Status::default()
        };
        Self {
            config,
            sender,
            relabeler,
            files,
            log,
            metrics,
            series,
            progress: Arc::new(Progress::default()),
            status: Mutex::new(status),
        }
    }

    pub fn status(&self) -> Status {
        let mut status = self.status.lock().clone();
        status.last_error = self.sender.last_error();
        status
    }

    /// The registry's hold for this endpoint.
    fn hold_name(&self) -> String {
        format!("remote-write/{}", self.config.name)
    }

    /// Holds the log from `start` on: before anything can delete it.
    pub fn hold(&self, start: Position) {
        self.log.retention.hold(&self.hold_name(), start);
        self.status.lock().cursor = start;
    }

    /// Runs epochs until `shutdown`; then writes the cursor and the hint a last time.
    pub async fn run(self: Arc<Self>, start: Position, mut shutdown: watch::Receiver<bool>) {
        let queue = &self.config.queue;
        let mut controller = Controller::new(queue.min_shards, queue.max_shards);
        let (mut start, mut shards) = (start, queue.min_shards);
        let mut persisted = start;
        let mut hint_written = Instant::now();
        let mut hint_changes = 0;
        loop {
            self.metrics.shards.set(shards as i64);
            self.status.lock().shards = shards;
            let epoch = Epoch::start(EpochSetup {
                name: self.config.name.clone(),
                wal_directory: self.log.directory.clone(),
                committed: self.log.committed.clone(),
                start,
                shards,
                max_samples_per_send: queue.max_samples_per_send,
                batch_send_deadline: queue.batch_send_deadline,
                relabeler: self.relabeler.clone(),
                sender: self.sender.clone(),
                metrics: self.metrics.clone(),
                series: self.series.clone(),
                progress: self.progress.clone(),
            });
            let mut epoch = match epoch {
                Ok(epoch) => epoch,
                Err(error) => {
                    tracing::error!(endpoint = %self.config.name, %error, "remote write: cannot read the log; retrying");
                    if wait_or_shutdown(RESTART_DELAY, &mut shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            let mut tick = tokio::time::interval(CURSOR_INTERVAL);
            let mut last_reshard = Instant::now();
            let mut rates = self.rates();
            let next = loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => break Next::Shutdown,
                }
                if let Some(error) = epoch.failed() {
                    tracing::error!(endpoint = %self.config.name, %error, "remote write: reading the log failed; restarting from the cursor");
                    break Next::Restart;
                }
                let done = epoch.acks.lock().done();
                let small = self.series.lock().series_count() <= HINT_SERIES_WITH_CURSOR_MAX;
                // The hint goes first: a hint newer than the cursor is harmless.
                if (done != persisted && small) || hint_written.elapsed() >= HINT_INTERVAL {
                    hint_changes = self.write_hint(hint_changes).await;
                    hint_written = Instant::now();
                }
                persisted = self.persist(done, persisted).await;
                let backlog = self.backlog(done).await;
                if let Some(target) = backlog.skip_to {
                    break Next::Skip(target);
                }
                if last_reshard.elapsed() >= RESHARD_INTERVAL {
                    last_reshard = Instant::now();
                    let (interval, now) = self.interval(&rates, backlog.pending_samples);
                    rates = now;
                    let decided = controller.decide(shards, interval);
                    self.metrics.shards_desired.set(controller.desired);
                    self.status.lock().desired_shards = controller.desired;
                    if let Some(n) = decided {
                        break Next::Reshard(n);
                    }
                }
            };
            let done = epoch.stop(self.config.timeout.min(DRAIN_MAX)).await;
            hint_changes = self.write_hint(hint_changes).await;
            persisted = self.persist(done, persisted).await;
            start = done;
            match next {
                Next::Shutdown => break,
                Next::Reshard(n) => {
                    tracing::info!(endpoint = %self.config.name, from = shards, to = n, "remote write: resharding");
                    shards = n;
                }
                // Acknowledgements may have passed the target while the epoch stopped.
                Next::Skip(target) if target > done => {
                    self.skip(done, target).await;
                    start = target;
                    persisted = self.persist(target, persisted).await;
                }
                Next::Skip(_) => {}
                Next::Restart => {
                    if wait_or_shutdown(RESTART_DELAY, &mut shutdown).await {
                        break;
                    }
                }
            }
        }
    }

    /// Writes the cursor when it moved and moves the retention hold; deletes what no reader
    /// needs any more once the cursor left a segment.
    async fn persist(&self, done: Position, persisted: Position) -> Position {
        self.status.lock().cursor = done;
        if done == persisted {
            return persisted;
        }
        let files = self.files.clone();
        let retention = self.log.retention.clone();
        let hold = self.hold_name();
        let left_segment = done.segment > persisted.segment;
        let written = tokio::task::spawn_blocking(move || {
            files.store_cursor(done)?;
            retention.hold(&hold, done);
            if left_segment {
                retention.collect().map_err(crate::Error::Wal)?;
            }
            Ok::<_, crate::Error>(())
        })
        .await;
        match written {
            Ok(Ok(())) => done,
            Ok(Err(error)) => {
                tracing::error!(endpoint = %self.config.name, %error, "remote write: cannot write the cursor");
                persisted
            }
            Err(error) => {
                tracing::error!(endpoint = %self.config.name, %error, "remote write: cursor task failed");
                persisted
            }
        }
    }

    /// Writes the hint if it changed since `written` (a change count); returns the count
    /// written. Marks in records the log no longer holds are left out: nothing reads those
    /// records again, not even after a lost cursor file (which restarts at the oldest record).
    async fn write_hint(&self, written: u64) -> u64 {
        if self.series.lock().changes() == written {
            return written;
        }
        let directory = self.log.directory.clone();
        let floor = tokio::task::spawn_blocking(move || strata_wal::oldest_sequence(&directory))
            .await
            .ok()
            .flatten();
        let (changes, (cached, mut hint)) = {
            let mut series = self.series.lock();
            (series.changes(), series.acknowledged(floor))
        };
        let files = self.files.clone();
        let name = self.config.name.clone();
        let stored = tokio::task::spawn_blocking(move || {
            hint.extend(cached.iter().map(|(labels, acked)| (labels.stable_hash(), *acked)));
            files.store_hint(&hint).map_err(|error| {
                tracing::warn!(endpoint = %name, %error, "remote write: cannot write the acknowledged-position hint");
            })
        })
        .await;
        match stored {
            Ok(Ok(())) => changes,
            _ => written,
        }
    }

    /// The counters behind the resharding rates, now.
    fn rates(&self) -> (u64, u64, u64) {
        let p = &self.progress;
        (
            p.samples_in.load(Ordering::Relaxed),
            p.samples_out.load(Ordering::Relaxed),
            p.send_nanos.load(Ordering::Relaxed),
        )
    }

    fn interval(&self, before: &(u64, u64, u64), pending: f64) -> (Interval, (u64, u64, u64)) {
        let now = self.rates();
        let delivered = self
            .progress
            .last_delivery
            .lock()
            .is_some_and(|at| at.elapsed() < RESHARD_INTERVAL);
        let interval = Interval {
            samples_in: now.0.saturating_sub(before.0),
            samples_out: now.1.saturating_sub(before.1),
            send_seconds: now.2.saturating_sub(before.2) as f64 / 1e9,
            pending,
            delivered,
        };
        (interval, now)
    }

    /// Measures the lag behind the log and checks the backlog budget.
    async fn backlog(&self, done: Position) -> Backlog {
        let directory = self.log.directory.clone();
        let active = self.log.committed.position();
        let (bytes_max, age_max) = (self.config.max_backlog_bytes, self.config.max_backlog_age);
        let measured = tokio::task::spawn_blocking(move || {
            measure_backlog(&directory, done, active, bytes_max, age_max)
        })
        .await;
        let mut backlog = match measured {
            Ok(Ok(backlog)) => backlog,
            Ok(Err(error)) => {
                tracing::warn!(endpoint = %self.config.name, %error, "remote write: cannot measure the backlog");
                return Backlog::default();
            }
            Err(_) => return Backlog::default(),
        };
        let read = self.progress.bytes_read.load(Ordering::Relaxed);
        let samples = self.progress.samples_in.load(Ordering::Relaxed);
        let bytes_per_sample = match samples {
            0 => 5.0,
            _ => (read as f64 / samples as f64).max(1.0),
        };
        backlog.pending_samples = backlog.lag_bytes as f64 / bytes_per_sample;
        // Behind by a sealed segment: how long its data has waited. Behind within the segment
        // being written: the newest sample read minus the newest acknowledged, once one was.
        let lag_seconds = match (backlog.lag_bytes, backlog.unsent_age) {
            (0, _) => 0.0,
            (_, Some(age)) => age.as_secs_f64(),
            (_, None) => {
                let read_ms = self.progress.highest_read_ms.load(Ordering::Relaxed);
                let sent_ms = self.progress.highest_sent_ms.load(Ordering::Relaxed);
                match sent_ms {
                    0 => 0.0,
                    _ => read_ms.saturating_sub(sent_ms).max(0) as f64 / 1000.0,
                }
            }
        };
        self.metrics.cursor_lag_bytes.set(backlog.lag_bytes as i64);
        self.metrics.cursor_lag_seconds.set(lag_seconds);
        let mut status = self.status.lock();
        status.lag_bytes = backlog.lag_bytes;
        status.lag_seconds = lag_seconds;
        backlog
    }

    /// Moves past records the budget no longer holds: counts and logs what is skipped.
    async fn skip(&self, from: Position, to: Position) {
        let directory = self.log.directory.clone();
        let counted =
            tokio::task::spawn_blocking(move || count_samples(&directory, from, to)).await;
        let (samples, first_ms, last_ms) = match counted {
            Ok(Ok(counted)) => counted,
            Ok(Err(error)) => {
                tracing::warn!(endpoint = %self.config.name, %error, "remote write: cannot count the skipped samples");
                (0, None, None)
            }
            Err(_) => (0, None, None),
        };
        self.metrics.dropped(reason::BACKLOG_BUDGET, samples);
        self.metrics.backlog_skips.inc();
        tracing::error!(
            endpoint = %self.config.name,
            from = %from,
            to = %to,
            samples,
            first_timestamp_ms = ?first_ms,
            last_timestamp_ms = ?last_ms,
            max_backlog_bytes = self.config.max_backlog_bytes,
            max_backlog_age_s = self.config.max_backlog_age.as_secs(),
            "remote write: backlog budget exceeded; these samples will not be forwarded"
        );
    }
}

#[derive(Debug, Default)]
struct Backlog {
    lag_bytes: u64,
    pending_samples: f64,
    skip_to: Option<Position>,
    /// How long the oldest unsent data in a sealed segment has waited, at least.
    unsent_age: Option<Duration>,
}

/// The log bytes after `done`, and where to move it when they pass the budget: to the first
/// segment from which the rest fits in `bytes_max` and was written within `age_max`. The
/// segment the writer is in is never skipped.
fn measure_backlog(
    directory: &std::path::Path,
    done: Position,
    active: Position,
    bytes_max: u64,
    age_max: Duration,
) -> strata_wal::Result<Backlog> {
    let segments: Vec<_> = strata_wal::list_segments(directory)?
        .into_iter()
        .filter(|s| s.segment >= done.segment && s.segment <= active.segment)
        .collect();
    // Record bytes of a segment: its header is not lag (older segments' shorter headers
    // make this a slight overestimate for them).
    let size = |s: &strata_wal::SegmentFile| {
        let end = match s.segment == active.segment {
            true => active.offset,
            false => s.bytes,
        };
        end.saturating_sub(SEGMENT_HEADER_BYTES)
    };
    let total: u64 = segments.iter().map(size).sum();
    let lag_bytes = total.saturating_sub(match segments.first() {
        Some(first) if first.segment == done.segment => {
            done.offset.saturating_sub(SEGMENT_HEADER_BYTES)
        }
        _ => 0,
    });
    let now = SystemTime::now();
    // A sealed segment was last written at its modification time: its data is at least that
    // old.
    let age = |s: &strata_wal::SegmentFile| {
        std::fs::metadata(&s.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
    };
    let mut rest = lag_bytes;
    let mut skip_to = None;
    let mut unsent_age = None;
    for segment in &segments {
        let unsent = match segment.segment == done.segment {
            true => size(segment).saturating_sub(done.offset.saturating_sub(SEGMENT_HEADER_BYTES)),
            false => size(segment),
        };
        // Nothing unsent here (a caught-up endpoint at a segment's end): nothing to skip.
        if unsent == 0 {
            continue;
        }
        if segment.segment == active.segment {
            break;
        }
        let segment_age = age(segment);
        unsent_age = unsent_age.or(segment_age);
        if rest <= bytes_max && segment_age.is_none_or(|age| age <= age_max) {
            break;
        }
        rest = rest.saturating_sub(unsent);
        skip_to = Some(Position {
            segment: segment.segment + 1,
            offset: 0,
        });
        unsent_age = None;
    }
    Ok(Backlog {
        lag_bytes,
        pending_samples: 0.0,
        skip_to,
        unsent_age,
    })
}

/// Most records read to count what a budget skip passes over; beyond it the count is a
/// lower bound (a skip of many gigabytes must not hold up a shutdown).
const SKIP_COUNT_RECORDS_MAX: usize = 100_000;

/// Samples and their time span in the records from `from` up to `to` (at most
/// [`SKIP_COUNT_RECORDS_MAX`] records). Samples of those records that other shards had
/// already delivered are counted too: the figure is an upper bound of what was lost.
fn count_samples(
    directory: &std::path::Path,
    from: Position,
    to: Position,
) -> strata_wal::Result<(u64, Option<i64>, Option<i64>)> {
    let mut reader = LogReader::<Refs>::open_as(directory, from, None)?;
    let (mut samples, mut first, mut last) = (0u64, None::<i64>, None::<i64>);
    let mut records = 0;
    while records < SKIP_COUNT_RECORDS_MAX
        && let Some(event) = reader.next(Duration::ZERO)?
    {
        records += 1;
        let Event::Record(entry) = event else {
            continue;
        };
        if entry.start >= to {
            break;
        }
        if let OwnedRecord::Batch(batch) = entry.record {
            for sample in &batch.samples {
                let ms = sample.timestamp_s.saturating_mul(1000);
                samples += 1;
                first = Some(first.map_or(ms, |f| f.min(ms)));
                last = Some(last.map_or(ms, |l| l.max(ms)));
            }
        }
    }
    Ok((samples, first, last))
}

/// Sleeps `delay`; true when shutdown came first.
async fn wait_or_shutdown(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = shutdown.changed() => true,
    }
}

/// The URL without user information (a password in a URL must not reach a status page).
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    /// Segments of the given sizes (header included), last written `age` ago.
    fn segments(directory: &std::path::Path, sizes: &[(u64, u64, Duration)]) {
        for &(segment, bytes, age) in sizes {
            let path = directory.join(strata_wal::segment_file_name(segment));
            let file = File::create(&path).unwrap();
            file.set_len(bytes).unwrap();
            file.set_modified(SystemTime::now() - age).unwrap();
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(segment: u64, offset: u64) -> Position {
        Position { segment, offset }
    }

    #[test]
    fn the_budget_skips_whole_segments_of_unsent_data_only() {
        let directory = tempfile::tempdir().unwrap();
        let header = SEGMENT_HEADER_BYTES;
        segments(
            directory.path(),
            &[
                (1, header + 1000, 3 * HOUR),
                (2, header + 1000, 2 * HOUR),
                (3, header + 500, Duration::ZERO),
            ],
        );
        let active = at(3, header + 500);
        let measure = |done, bytes_max, age_max| {
            measure_backlog(directory.path(), done, active, bytes_max, age_max).unwrap()
        };
        // Within budget.
        let backlog = measure(at(1, header + 400), 10_000, 24 * HOUR);
        assert_eq!(backlog.lag_bytes, 600 + 1000 + 500);
        assert_eq!(backlog.skip_to, None);
        assert!(
            backlog
                .unsent_age
                .is_some_and(|age| age >= 3 * HOUR - 60 * Duration::from_secs(1))
        );
        // Over the byte budget: segment 1 goes, 1500 bytes fit.
        assert_eq!(
            measure(at(1, header + 400), 1500, 24 * HOUR).skip_to,
            Some(at(2, 0))
        );
        // Over the age budget: segments 1 and 2 are older than 1 h.
        assert_eq!(measure(at(1, header), 10_000, HOUR).skip_to, Some(at(3, 0)));
        // Never the segment being written.
        assert_eq!(measure(at(3, header), 0, Duration::ZERO).skip_to, None);
    }

    // See: review of issue 7, finding 9.
    #[test]
    fn a_caught_up_endpoint_at_the_end_of_an_old_segment_is_not_skipped() {
        let directory = tempfile::tempdir().unwrap();
        let header = SEGMENT_HEADER_BYTES;
        segments(
            directory.path(),
            &[(1, header + 1000, 48 * HOUR), (2, header, Duration::ZERO)],
        );
        let backlog = measure_backlog(
            directory.path(),
            at(1, header + 1000),
            at(2, header),
            0,
            HOUR,
        )
        .unwrap();
        assert_eq!(backlog.lag_bytes, 0);
        assert_eq!(backlog.skip_to, None);
    }

    #[test]
    fn user_information_never_reaches_the_status() {
        assert_eq!(
            redact("https://user:secret@vm.example:8428/api/v1/write"),
            "https://vm.example:8428/api/v1/write"
        );
        assert_eq!(
            redact("http://vm:8428/api/v1/write"),
            "http://vm:8428/api/v1/write"
        );
    }
}
