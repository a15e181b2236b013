//! Background work on the store: retention and the memory cap (COMPAT.md §3.5, decision 10).

use crate::App;
use crate::archiving::{ArchiveSettings, ArchiveState, run_pass};
use crate::telemetry::ClusterLabel;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Longest time between two retention passes. cc-metric-store waits half the retention (a day
/// at 48 h), which lets memory grow to 1.5× the window; Strata frees more often.
const RETENTION_INTERVAL_MAX: Duration = Duration::from_secs(600);

/// Time between two checks of the memory cap. A check reads two counters, so it is cheap.
const MEMORY_CAP_INTERVAL: Duration = Duration::from_secs(5);

/// How often the snapshot task looks at the clock and the WAL size: the WAL may outgrow
/// the trigger by what ingest writes in this time (~10 MB at 2 M samples/s).
const SNAPSHOT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// When background work runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub memory_cap_bytes: Option<u64>,
    /// A snapshot is taken at least this often (`checkpoint-interval`)…
    pub snapshot_interval: Duration,
    /// …and whenever the WAL has grown this much since the last one, which bounds the
    /// replay work at startup.
    pub snapshot_wal_bytes: u64,
    /// Archive mode: data leaving the memory window is archived before it is freed.
    pub archive: Option<ArchiveSettings>,
}

/// Starts retention (or archiving), the memory cap (if any) and snapshots. Abort the handles
/// to stop.
pub fn start(app: Arc<App>, schedule: Schedule) -> Vec<JoinHandle<()>> {
    let memory_cap_bytes = schedule.memory_cap_bytes;
    let retention_s = app.store.config().retention_s;
    let interval = Duration::from_secs((retention_s / 2).max(1) as u64).min(RETENTION_INTERVAL_MAX);
    let mut tasks = vec![match schedule.archive.clone() {
        Some(settings) => tokio::spawn(archiving(app.clone(), settings, interval)),
        None => tokio::spawn(every(interval, app.clone(), move |app| {
            let freed = app.store.free_before(crate::now_s() - retention_s);
            app.store.seal_idle(crate::now_s());
            app.telemetry.retention_freed_buffers.inc_by(freed as u64);
            if freed > 0 {
                tracing::info!(freed, "retention freed buffers");
            }
        })),
    }];
    tasks.push(tokio::spawn(snapshots(app.clone(), schedule)));
    tasks.push(tokio::spawn(trim_spare_batches(app.clone())));
    if let Some(cap) = memory_cap_bytes {
        app.telemetry.memory_cap_bytes.set(cap as i64);
        tasks.push(tokio::spawn(every(MEMORY_CAP_INTERVAL, app, move |app| {
            let outcome = app.store.enforce_memory_cap(cap, crate::now_s());
            app.telemetry
                .memory_cap_freed_buffers
                .inc_by(outcome.buffers as u64);
            // The full state is logged when it begins and ends, not on every pass.
            if outcome.still_over && !outcome.was_over {
                tracing::error!(
                    cap,
                    bytes = app.store.memory_bytes(),
                    structure_bytes = app.store.structure_bytes(),
                    "memory cap cannot be met: the newest buffer of every series and the tree \
                     alone exceed it; new hosts, levels and series are dropped (reason \
                     memory_cap) until the store fits"
                );
            } else if !outcome.still_over && outcome.was_over {
                tracing::info!(
                    cap,
                    bytes = app.store.memory_bytes(),
                    "memory cap met again: new hosts, levels and series are accepted"
                );
            } else if outcome.steps > 0 && !outcome.still_over {
                tracing::warn!(
                    cap,
                    freed = outcome.buffers,
                    "memory cap reached: freed old buffers early"
                );
            }
        })));
    }
    tasks
}

/// Frees the write batches a burst left behind (a few frees: no need for the blocking pool).
async fn trim_spare_batches(app: Arc<App>) {
    let mut ticker = tokio::time::interval(crate::SPARE_BATCH_IDLE);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        app.trim_spare_batches();
    }
}

/// Runs `work` on the blocking pool every `interval` (it walks the whole store).
async fn every(
    interval: Duration,
    app: Arc<App>,
    work: impl Fn(&App) + Send + Sync + Copy + 'static,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let app = app.clone();
        if let Err(error) = tokio::task::spawn_blocking(move || work(&app)).await {
            tracing::error!(%error, "maintenance task failed");
        }
    }
}

/// Retention in archive mode: a pass archives what leaves the memory window and frees only
/// what is archived; a snapshot then drops the freed data from disk too.
async fn archiving(app: Arc<App>, settings: ArchiveSettings, interval: Duration) {
    // How far each cluster is archived is known before the first pass (an alert on a missing
    // gauge would fire after every restart otherwise).
    let state_app = app.clone();
    let state = tokio::task::spawn_blocking(move || {
        ArchiveState::load(state_app.durability.data_directory())
    })
    .await;
    if let Ok(state) = state {
        record_archived_until(&app, state.clusters());
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let (pass_app, pass_settings) = (app.clone(), settings.clone());
        let pass = tokio::task::spawn_blocking(move || {
            let directory = pass_app.durability.data_directory();
            let archive = pass_app.archive()?;
            pass_app.store.seal_idle(crate::now_s());
            Some(run_pass(
                &pass_app.store,
                archive,
                directory,
                &pass_settings,
                crate::now_s(),
            ))
        })
        .await;
        let report = match pass {
            Ok(Some(report)) => report,
            Ok(None) => {
                tracing::error!("archive mode without an archive attached: nothing is archived");
                continue;
            }
            Err(error) => {
                tracing::error!(%error, "archive pass failed");
                continue;
            }
        };
        let telemetry = &app.telemetry;
        telemetry
            .retention_freed_buffers
            .inc_by(report.freed_buffers as u64);
        telemetry.archive_files.inc_by(report.files.len() as u64);
        telemetry.archive_samples.inc_by(report.samples);
        telemetry.archive_bytes.inc_by(report.bytes);
        telemetry.archive_pass_seconds.set(report.seconds);
        record_archived_until(&app, &report.archived_until);
        telemetry
            .archive_failures
            .inc_by(report.errors.len() as u64);
        if !report.files.is_empty() {
            tracing::info!(
                files = report.files.len(),
                samples = report.samples,
                bytes = report.bytes,
                freed = report.freed_buffers,
                seconds = report.seconds,
                peak_extra_bytes = report.peak_extra_bytes,
                "archived"
            );
        }
        if report.freed_buffers > 0 {
            match app.durability.snapshot(&app.store, crate::now_s()).await {
                Ok(snapshot) => app.telemetry.record_snapshot(&snapshot),
                Err(error) => {
                    app.telemetry.snapshot_failures.inc();
                    tracing::error!(%error, "snapshot after archiving failed; the WAL keeps everything until one succeeds");
                }
            }
        }
    }
}

/// Takes a snapshot when the interval has passed or the WAL has grown past its bound.
async fn snapshots(app: Arc<App>, schedule: Schedule) {
    let mut last = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(SNAPSHOT_CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let due = last.elapsed() >= schedule.snapshot_interval
            || app.durability.wal_bytes_since_snapshot() >= schedule.snapshot_wal_bytes;
        if !due {
            continue;
        }
        last = tokio::time::Instant::now();
        match app.durability.snapshot(&app.store, crate::now_s()).await {
            Ok(report) => {
                app.telemetry.record_snapshot(&report);
                tracing::info!(
                    generation = report.generation,
                    hosts = report.hosts,
                    bytes = report.bytes,
                    segments_deleted = report.segments_deleted,
                    seconds = report.seconds,
                    "snapshot written"
                );
            }
            Err(error) => {
                app.telemetry.snapshot_failures.inc();
                tracing::error!(%error, "snapshot failed; the WAL keeps everything until one succeeds");
            }
        }
    }
}

/// `strata_archive_end_seconds{cluster}` from the archived end of each cluster.
fn record_archived_until(app: &App, clusters: &BTreeMap<String, i64>) {
    for (cluster, until) in clusters {
        let label = ClusterLabel {
            cluster: cluster.clone(),
        };
        app.telemetry
            .archived_until
            .get_or_create(&label)
            .set(*until);
    }
}
