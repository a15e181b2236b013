//! Forwarding to Prometheus remote-write receivers, straight from the write-ahead log.
//!
//! The log is the queue: there is no second copy of the data. Each endpoint reads the log
//! from its own cursor and sends what it reads; the cursor moves only over records whose
//! samples were all acknowledged by the receiver or deliberately dropped (and counted).
//!
//! ```text
//! log ─► reader thread (by series ref) ─► labels once per segment, hint ─► shard = id % n
//!                                                                   │  batch by count/deadline
//!                                                                   ▼  encode + snappy once
//!        cursor file ◄── acknowledgements (per record) ◄──────── POST, retry, bisect
//! ```
//!
//! Invariants:
//! - **At least once.** A record is done when every one of its samples is acknowledged or
//!   deliberately dropped (`acks`); the cursor file and the retention hold never pass a
//!   record that is not done, so a restart or SIGKILL resends, never skips.
//! - **Few duplicates.** A per-series hint of the log position of the newest acknowledged
//!   sample (`series::Mark`), written beside the cursor, skips samples already acknowledged
//!   when records are read again after a restart or an epoch change; duplicates remain only
//!   for requests whose 2xx was lost (or acknowledged after the hint was last written).
//! - **Order per series.** A series always goes to the same shard, and a shard has one request
//!   in flight.
//! - **Isolation.** Each endpoint has its own reader, shards, HTTP client, backoff and budget;
//!   ingest never waits for an endpoint (the log is written first, read later), and a slow
//!   endpoint only holds log segments back, within its `max-backlog-bytes`/`-age` budget.
//!   Past the budget its cursor moves forward, and what it skipped is logged and counted
//!   (`strata_remote_samples_dropped_total{reason="backlog_budget"}`).
//! - **Bounded memory.** Samples read and not yet acknowledged are bounded per endpoint
//!   (pending budget). Label sets live once in a table shared by all endpoints, bounded by
//!   `series::SERIES_CACHED_MAX`; an endpoint keeps ~21 bytes a series (its label set's
//!   `Arc`, the packed acknowledged mark, and the log segment's ref table).
//! - **Resharding loses nothing.** It stops the epoch, drops the in-memory queues and starts
//!   again at the cursor (Prometheus drains or drops instead).
//!
//! On disk: `<data>/remote-write/<endpoint>.cursor` and `.acked` ([`cursor`]), and the
//! dead-letter file of samples a receiver refused for good ([`deadletter`]).

mod acks;
pub mod config;
pub mod cursor;
mod endpoint;
mod pipeline;
mod reshard;
mod series;

pub use config::{EndpointConfig, Protocol, QueueConfig, RelabelAction, RelabelRule};
pub mod client;
pub mod deadletter;
pub mod deliver;
pub mod error;
pub mod labels;
pub mod metrics;
pub mod proto;
pub mod relabel;
pub use endpoint::{LogHandles, Status};
pub use error::{Error, Result};

use crate::cursor::{CursorFiles, Saved};
use crate::endpoint::Endpoint;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use strata_wal::Position;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Every endpoint, running.
pub struct Forwarding {
    endpoints: Vec<Arc<Endpoint>>,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Forwarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarding")
            .field("endpoints", &self.endpoints.len())
            .finish()
    }
}

impl Forwarding {
    /// Opens every endpoint's cursor, holds the log from it, and starts sending. Call it after
    /// recovery and before anything can delete log segments. `state_directory` keeps the
    /// cursors and dead-letter files. Runs inside a Tokio runtime.
    pub fn start(
        configs: &[EndpointConfig],
        log: LogHandles,
        state_directory: &Path,
        metrics: &metrics::Metrics,
    ) -> Result<Self> {
        std::fs::create_dir_all(state_directory)
            .map_err(|e| Error::Io(format!("creating {}: {e}", state_directory.display())))?;
        let (shutdown, watcher) = watch::channel(false);
        let table = series::SeriesTable::new();
        let mut endpoints = Vec::with_capacity(configs.len());
        let mut starts = Vec::with_capacity(configs.len());
        for config in configs {
            let endpoint_metrics = metrics.endpoint(&config.name);
            let relabeler = Arc::new(relabel::Relabeler::new(
                &config.relabel,
                &config.external_labels,
            )?);
            let dead_letter = deadletter::DeadLetter::new(state_directory, &config.name);
            let sender = Arc::new(deliver::Sender::new(
                config,
                endpoint_metrics.clone(),
                dead_letter,
            )?);
            let files = CursorFiles::new(state_directory, &config.name);
            let start = start_position(&files, &log, &config.name, &endpoint_metrics)?;
            let hint = usable_hint(&files, &log, &config.name);
            let endpoint = Arc::new(Endpoint::new(
                config.clone(),
                sender,
                relabeler,
                files,
                log.clone(),
                endpoint_metrics,
                series::EndpointSeries::new(table.clone(), hint),
            ));
            endpoint.hold(start);
            endpoints.push(endpoint);
            starts.push(start);
        }
        warn_about_orphans(state_directory, configs);
        let tasks = endpoints
            .iter()
            .zip(starts)
            .map(|(endpoint, start)| {
                tokio::spawn(supervise(endpoint.clone(), start, watcher.clone()))
            })
            .collect();
        Ok(Self {
            endpoints,
            tasks: parking_lot::Mutex::new(tasks),
            shutdown,
        })
    }

    pub fn status(&self) -> Vec<Status> {
        self.endpoints.iter().map(|e| e.status()).collect()
    }

    /// Stops every endpoint, writing cursors and hints; requests in flight are abandoned
    /// (their records are resent after the restart).
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Runs an endpoint; a panic (a bug) is logged and the endpoint starts again from its last
/// acknowledged position, so that its hold and its budget stay in force.
async fn supervise(endpoint: Arc<Endpoint>, start: Position, shutdown: watch::Receiver<bool>) {
    let mut start = start;
    loop {
        let run = tokio::spawn(endpoint.clone().run(start, shutdown.clone()));
        match run.await {
            Err(error) if error.is_panic() => {
                tracing::error!(endpoint = %endpoint.config.name, %error, "remote write: the endpoint failed (a bug); restarting it from its cursor");
                start = endpoint.status().cursor;
                if *shutdown.borrow() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
            _ => return,
        }
    }
}

/// Where an endpoint starts: its cursor; the log's end for a new endpoint; the oldest record
/// still in the log for a damaged cursor or one ahead of the log (duplicates rather than
/// loss). A cursor in a segment that is gone (deleted while the endpoint was not configured,
/// or quarantined) starts at the oldest segment, loudly and counted.
fn start_position(
    files: &CursorFiles,
    log: &LogHandles,
    name: &str,
    metrics: &metrics::EndpointMetrics,
) -> Result<Position> {
    let segments = strata_wal::list_segments(&log.directory)?;
    let oldest = segments.first().map_or_else(
        || log.committed.position(),
        |s| Position {
            segment: s.segment,
            offset: 0,
        },
    );
    let saved = match files.load_cursor() {
        Saved::Cursor(position) if position > log.committed.position() => Saved::Damaged(format!(
            "it is at {position}, past the end of the log ({}): the log was replaced",
            log.committed.position()
        )),
        saved => saved,
    };
    Ok(match saved {
        Saved::Cursor(position) => {
            if !segments.iter().any(|s| s.segment == position.segment)
                && position.segment < log.committed.position().segment
            {
                metrics.log_damage.inc();
                tracing::error!(
                    endpoint = name,
                    cursor = %position,
                    start = %oldest,
                    "remote write: the log segment of the cursor is gone (deleted while the \
                     endpoint was not configured, or quarantined); what it held is not \
                     forwarded"
                );
                return Ok(oldest.max(position));
            }
            position
        }
        // The hint outlives a cursor only when the cursor was deleted: not a new endpoint.
        Saved::Missing if files.hint_exists() => {
            tracing::error!(
                endpoint = name,
                path = %files.cursor_path().display(),
                start = %oldest,
                "remote write: the cursor file is missing but its hint is there; resending from \
                 the oldest record in the log"
            );
            files.store_cursor(oldest)?;
            oldest
        }
        Saved::Missing => {
            let end = log.committed.position();
            // Written now, so that a crash before the first acknowledgement resends from
            // here rather than starting again at a later end.
            files.store_cursor(end)?;
            tracing::info!(endpoint = name, start = %end, "remote write: new endpoint starts at the end of the log");
            end
        }
        Saved::Damaged(reason) => {
            tracing::error!(
                endpoint = name,
                path = %files.cursor_path().display(),
                %reason,
                start = %oldest,
                "remote write: cursor unreadable; resending from the oldest record in the log"
            );
            oldest
        }
    })
}

/// The endpoint's hint, unless it names records the log never had (the data directory was
/// replaced or restored): then it could skip samples never sent, and is ignored.
fn usable_hint(files: &CursorFiles, log: &LogHandles, name: &str) -> HashMap<u64, series::Mark> {
    let hint = files.load_hint();
    match hint.values().map(|mark| mark.sequence).max() {
        Some(newest) if newest >= log.next_sequence => {
            tracing::warn!(
                endpoint = name,
                newest,
                next_sequence = log.next_sequence,
                "remote write: the acknowledged-position hint is from another log; ignored \
                 (samples resent after the cursor may arrive twice)"
            );
            HashMap::new()
        }
        _ => hint,
    }
}

/// Warns about cursor files of endpoints no longer configured: their log segments are no
/// longer held.
pub fn warn_about_orphans(state_directory: &Path, configs: &[EndpointConfig]) {
    let Ok(entries) = std::fs::read_dir(state_directory) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(endpoint) = name.to_str().and_then(|n| n.strip_suffix(".cursor")) else {
            continue;
        };
        if !configs.iter().any(|c| c.name == endpoint) {
            tracing::warn!(
                endpoint,
                path = %entry.path().display(),
                "remote write: a cursor of an endpoint that is not configured; the log is not \
                 kept for it (delete the file if the endpoint is gone for good)"
            );
        }
    }
}
