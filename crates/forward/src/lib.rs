//! Forwarding to Prometheus remote-write receivers, straight from the write-ahead log.
//!
//! The log is the queue: there is no second copy of the data. Each endpoint reads the log
//! from its own cursor and sends what it reads; the cursor moves only over records whose
//! samples were all acknowledged by the receiver or deliberately dropped (and counted).
//!
//! ```text
//! log ─► reader thread ─► series labels (cached), relabel, hint ─► shard = hash(series) % n
//!                                                                   │  batch by count/deadline
//!                                                                   ▼  encode + snappy once
//!        cursor file ◄── acknowledgements (per record) ◄──────── POST, retry, bisect
//! ```
//!
//! Invariants:
//! - **At least once.** A record is done when every one of its samples is acknowledged or
//!   deliberately dropped ([`acks`]); the cursor file and the retention hold never pass a
//!   record that is not done, so a restart or SIGKILL resends, never skips.
//! - **Few duplicates.** A per-series acknowledged-timestamp hint, written beside the cursor,
//!   skips samples already acknowledged when records are read again after a restart or an
//!   epoch change; duplicates remain only for requests whose 2xx was lost.
//! - **Order per series.** A series always goes to the same shard, and a shard has one request
//!   in flight.
//! - **Isolation.** Each endpoint has its own reader, shards, HTTP client, backoff and budget;
//!   ingest never waits for an endpoint (the log is written first, read later), and a slow
//!   endpoint only holds log segments back, within its `max-backlog-bytes`/`-age` budget.
//!   Past the budget its cursor moves forward, and what it skipped is logged and counted
//!   (`strata_remote_samples_dropped_total{reason="backlog_budget"}`).
//! - **Bounded memory.** Samples read and not yet acknowledged are bounded per endpoint
//!   (pending budget); the label cache is bounded ([`series::SERIES_CACHED_MAX`]).
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
            let start = start_position(&files, &log, &config.name)?;
            let endpoint = Arc::new(Endpoint::new(
                config.clone(),
                sender,
                relabeler,
                files,
                log.clone(),
                endpoint_metrics,
            ));
            endpoint.hold(start);
            endpoints.push(endpoint);
            starts.push(start);
        }
        let tasks = endpoints
            .iter()
            .zip(starts)
            .map(|(endpoint, start)| tokio::spawn(endpoint.clone().run(start, watcher.clone())))
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

/// Where an endpoint starts: its cursor; the log's end for a new endpoint; the oldest record
/// still in the log for a damaged cursor (duplicates rather than loss).
fn start_position(files: &CursorFiles, log: &LogHandles, name: &str) -> Result<Position> {
    Ok(match files.load_cursor() {
        Saved::Cursor(position) => position,
        Saved::Missing => {
            let end = log.committed.position();
            // Written now, so that a crash before the first acknowledgement resends from
            // here rather than starting again at a later end.
            files.store_cursor(end)?;
            tracing::info!(endpoint = name, start = %end, "remote write: new endpoint starts at the end of the log");
            end
        }
        Saved::Damaged(reason) => {
            let oldest = strata_wal::list_segments(&log.directory)?
                .first()
                .map_or_else(
                    || log.committed.position(),
                    |s| Position {
                        segment: s.segment,
                        offset: 0,
                    },
                );
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
