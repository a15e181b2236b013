//! Durability wiring: recovery at startup, the WAL in the commit path, snapshots, shutdown.
//!
//! Data directory (`metric-store.checkpoints.directory`):
//!
//! ```text
//! STRATA          format marker: a directory from a newer Strata is refused, not misread
//! LOCK            held while a process uses the directory
//! wal/            segments (see strata_wal::format)
//! snapshots/      generations of per-host snapshots (see strata_wal::snapshot)
//! ```
//!
//! Commit order is decode → admit → WAL append → apply to memory → acknowledge. Admission
//! ([`Store::admit`]) removes the samples the store would drop for a reason that cannot
//! change before the apply (unknown metric, outside the retention window or too far ahead,
//! a new metric past a full registry), so that the log, which is replayed and forwarded,
//! holds only accepted samples; a refusal by a limit of the tree (hosts, series, children,
//! the memory cap) is decided at apply time and so is still logged (rare, counted).
//!
//! A snapshot must contain every record of the segments it covers, so it first takes the
//! *apply gate* exclusively: no commit is between its append and its apply at that moment.
//! It rotates the WAL there (generation G = the new segment), releases the gate, and copies
//! hosts one at a time while ingest goes on; records applied meanwhile are also replayed from
//! segment G after a crash, which is harmless because writing a slot again with the same
//! value changes nothing.

use crate::progress::Progress;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use strata_store::{BlockSeries, LevelImage, Store, StoredBlock, WriteBatch, WriteReport};
use strata_wal::incremental::{Older, OpenFiles};
use strata_wal::recovery;
use strata_wal::snapshot::Manifest;
use strata_wal::snapshot::PackHost;
use strata_wal::{
    Committed, Free, FsyncPolicy, Position, Record, Retention, Wal, WalConfig, snapshot,
};
use tokio::sync::{Mutex, OwnedRwLockReadGuard, RwLock, Semaphore, oneshot};

/// The data directory format this build reads and writes.
const DATA_FORMAT: u32 = 1;

/// Decoded batches waiting per applier thread during replay (a bound on replay memory).
const REPLAY_BATCHES_IN_FLIGHT: usize = 4;

/// The snapshot's hold on the WAL: recovery replays from its newest complete generation.
const SNAPSHOT_HOLD: &str = "snapshot";

/// A generation whose blocks still referred to are less than this fraction of its packs is
/// compacted: the next snapshot writes those blocks again instead of referring to them, and
/// the generation is deleted. So at most about half of the snapshot directory is garbage.
const COMPACT_LIVE_FRACTION: f64 = 0.5;

/// Older generations a snapshot refers to at most. Recovery reads each host's entry in each
/// of them (its skeleton included), so without a bound a store that never frees data (every
/// generation mostly live) would make every snapshot add one more to read.
const GENERATIONS_REFERRED_MAX: usize = 8;

/// A committed generation kept on disk: the bytes of its packs and of the blocks in them
/// the newest generation uses.
#[derive(Debug, Default, Clone, Copy)]
struct Kept {
    pack_bytes: u64,
    live_bytes: u64,
}

/// Appends allowed in flight at once; more wait (backpressure to the HTTP clients).
const APPENDS_IN_FLIGHT_MAX: usize = 1024;

/// How the durability layer is set up.
#[derive(Debug, Clone)]
pub struct DurabilityConfig {
    pub directory: PathBuf,
    /// `None` = no WAL (`fsync: off`): memory plus snapshots only.
    pub fsync: Option<FsyncPolicy>,
    pub segment_bytes: u64,
    /// Threads loading snapshots at startup.
    pub workers: usize,
}

/// What startup recovery did.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    pub generation: Option<u64>,
    pub hosts: usize,
    pub snapshot_samples: u64,
    /// Samples of snapshot blocks that could not be loaded (damaged, or in an older
    /// generation that is damaged or gone).
    pub snapshot_samples_lost: u64,
    pub damaged_snapshots: Vec<String>,
    pub replay: strata_wal::ReplayReport,
    pub replayed_samples_stored: u64,
    /// Time spent loading snapshots, then replaying the WAL, and in all.
    pub snapshot_seconds: f64,
    pub replay_seconds: f64,
    pub seconds: f64,
}

/// What [`Durability::commit`] did with a batch.
#[derive(Debug)]
pub struct Commit {
    /// Samples stored, and dropped by reason; those that admission removed are in it even
    /// when the log then failed.
    pub report: WriteReport,
    /// Why the log refused the admitted samples; then none of them was applied.
    pub error: Option<strata_wal::Error>,
    /// The batch, for reuse.
    pub batch: WriteBatch,
}

/// What one snapshot did.
#[derive(Debug, Default, Clone, Copy)]
pub struct SnapshotReport {
    pub generation: u64,
    pub hosts: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Bytes of blocks referred to in older generations instead of written again.
    pub referenced_bytes: u64,
    /// Bytes of blocks written again because the older generation holding them was mostly
    /// garbage ([`COMPACT_LIVE_FRACTION`]); that generation is deleted.
    pub compacted_bytes: u64,
    /// Generations deleted: none of the new one's blocks is in them.
    pub generations_removed: usize,
    pub segments_deleted: usize,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum DurabilityError {
    #[error("data directory {path}: {reason}")]
    Directory { path: PathBuf, reason: String },
    #[error(transparent)]
    Wal(#[from] strata_wal::Error),
    #[error("{0}")]
    Task(String),
}

pub struct Durability {
    config: DurabilityConfig,
    wal: Option<Wal>,
    /// Deletes WAL segments: below the snapshot's hold and every forwarder's.
    retention: Arc<Retention>,
    /// Held shared from WAL append to apply; exclusively by a snapshot to rotate the WAL.
    /// In an `Arc` so that a write applied on a blocking thread keeps it until it is done,
    /// even if its request is cancelled meanwhile.
    gate: Arc<RwLock<()>>,
    appends: Semaphore,
    /// One snapshot at a time. Its guard moves into the blocking work that writes the files,
    /// so a snapshot whose task is aborted (shutdown) holds it until its writer has finished.
    snapshotting: Arc<Mutex<()>>,
    /// Under `fsync: off`, where no WAL rotation numbers generations: the newest generation
    /// number used (the next snapshot takes the one after).
    generation: AtomicU64,
    /// WAL bytes written when the newest snapshot was taken.
    wal_bytes_at_snapshot: AtomicU64,
    /// The newest committed generation and the older ones it refers to: the generations a
    /// new snapshot may refer to.
    kept: std::sync::Mutex<BTreeMap<u64, Kept>>,
    _lock: fs::File,
}

impl std::fmt::Debug for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durability")
            .field("config", &self.config)
            .finish()
    }
}

fn directory_error(path: &Path, reason: impl std::fmt::Display) -> DurabilityError {
    DurabilityError::Directory {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

impl Durability {
    /// Opens the data directory, restores the newest snapshot and replays the WAL into
    /// `store`, then opens the WAL for appending. Replay drops samples older than the
    /// retention window, as writes do.
    pub fn recover(
        config: DurabilityConfig,
        store: &Store,
        now_s: i64,
    ) -> Result<(Self, RecoveryReport), DurabilityError> {
        Self::recover_from(config, store, now_s, None)
    }

    /// [`Durability::recover`] whose replay keeps samples down to `replay_oldest_s` when it
    /// is given ([`Store::write_from`]) instead of `now − retention`: archive mode passes
    /// the oldest time not archived yet, so that a downtime longer than the retention loses
    /// nothing that still has to be archived.
    pub fn recover_from(
        config: DurabilityConfig,
        store: &Store,
        now_s: i64,
        replay_oldest_s: Option<i64>,
    ) -> Result<(Self, RecoveryReport), DurabilityError> {
        let oldest_s = replay_oldest_s.unwrap_or(now_s - store.config().retention_s);
        let started = Instant::now();
        let directory = &config.directory;
        fs::create_dir_all(directory).map_err(|e| directory_error(directory, e))?;
        let lock = lock_directory(directory)?;
        check_format(directory)?;
        let snapshots = directory.join("snapshots");
        let wal_directory = directory.join("wal");
        let mut report = RecoveryReport::default();

        let plan = recovery::plan(&snapshots, &wal_directory)?;
        set_aside(directory, &plan.set_aside)?;
        let generation = plan.generation.as_ref().map_or(0, |g| g.number);
        let mut kept = BTreeMap::new();
        if let Some(loaded) = &plan.generation {
            report.generation = Some(loaded.number);
            if let Some(damage) = loaded.manifest.damage() {
                tracing::error!(
                    generation = loaded.number,
                    damage,
                    "snapshot MANIFEST damaged, but the generation was completed (the WAL it \
                     covers is gone): loading every host file by its own checksum, and every \
                     older generation its blocks may refer to"
                );
                report
                    .damaged_snapshots
                    .push(format!("generation {}: MANIFEST {damage}", loaded.number));
                let manifest = loaded.directory.join("MANIFEST");
                if manifest.exists() {
                    quarantine(directory, &manifest);
                }
            }
            let older: Vec<snapshot::Generation> = snapshot::list_generations(&snapshots)?
                .into_iter()
                .filter(|g| g.number < loaded.number)
                .collect();
            let held = load_generation(
                loaded,
                &older,
                store,
                config.workers.max(1),
                &mut report,
                directory,
            );
            for (&number, &live_bytes) in &held {
                let pack_bytes = std::iter::once(loaded)
                    .chain(&older)
                    .find(|g| g.number == number)
                    .map(|g| g.bytes);
                if let Some(pack_bytes) = pack_bytes {
                    kept.insert(
                        number,
                        Kept {
                            pack_bytes,
                            live_bytes,
                        },
                    );
                }
            }
            if !matches!(loaded.manifest, Manifest::Valid { .. }) {
                // Complete again: a later cut-off snapshot must not make recovery pass it over.
                let references: Vec<snapshot::Reference> = kept
                    .iter()
                    .filter(|&(&number, _)| number != loaded.number)
                    .map(|(&generation, k)| snapshot::Reference {
                        generation,
                        bytes: k.live_bytes,
                    })
                    .collect();
                snapshot::finish_generation(
                    &loaded.directory,
                    loaded.number,
                    report.hosts,
                    now_s,
                    &references,
                )?;
                tracing::warn!(
                    generation = loaded.number,
                    hosts = report.hosts,
                    "wrote a new MANIFEST for the generation"
                );
            }
        }

        report.snapshot_seconds = started.elapsed().as_secs_f64();
        // The reader decodes records on this thread and deals their samples out by host to
        // `workers` partitions: it applies the first partition itself and hands the others
        // to applier threads. A host always lands in the same partition, so each series is
        // written in log order, and hosts are applied in parallel.
        let wal_bytes: u64 = strata_wal::list_segments(&wal_directory)?
            .iter()
            .filter(|s| s.segment >= plan.replay_from)
            .map(|s| s.bytes)
            .sum();
        let progress = Progress::new("replaying WAL", wal_bytes);
        let partitions = config.workers.max(1);
        // A free must see exactly the writes logged before it: the appliers meet at a
        // barrier (every batch handed out before it applied), then this thread frees.
        let barrier = std::sync::Barrier::new(partitions);
        let (replay, stored) = std::thread::scope(|scope| {
            let mut senders = Vec::with_capacity(partitions - 1);
            let mut handles = Vec::with_capacity(partitions - 1);
            for _ in 1..partitions {
                let (sender, receiver) =
                    std::sync::mpsc::sync_channel::<ReplayJob>(REPLAY_BATCHES_IN_FLIGHT);
                senders.push(sender);
                let (progress, barrier) = (&progress, &barrier);
                handles.push(scope.spawn(move || {
                    // A panic stops this applier's writes but not its part in the barrier:
                    // the reader would otherwise wait there forever. The join reports it.
                    let mut stored = Some(0u64);
                    for job in receiver {
                        match job {
                            ReplayJob::Apply(batch) => {
                                let Some(count) = stored else { continue };
                                stored = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                    store.write_from(&batch, now_s, oldest_s).written as u64
                                }))
                                .ok()
                                .map(|written| count + written);
                                progress.advance(0, batch.len() as u64);
                            }
                            ReplayJob::Meet => {
                                barrier.wait();
                            }
                        }
                    }
                    stored.ok_or(())
                }));
            }
            let mut parts: Vec<WriteBatch> = (0..partitions).map(|_| WriteBatch::new()).collect();
            let mut stored_here = 0u64;
            let replay = strata_wal::replay(&wal_directory, plan.replay_from, |record, size| {
                progress.advance(size, 0);
                let batch = match record {
                    Record::Batch(batch) => batch,
                    Record::Free(free) => {
                        for sender in &senders {
                            // An applier only goes away by panicking, which the join reports.
                            let _ = sender.send(ReplayJob::Meet);
                        }
                        barrier.wait();
                        apply_free(store, free);
                        return;
                    }
                };
                if partitions == 1 {
                    stored_here += store.write_from(batch, now_s, oldest_s).written as u64;
                    progress.advance(0, batch.len() as u64);
                    return;
                }
                split_by_host(batch, &mut parts);
                let Some((own, others)) = parts.split_first_mut() else {
                    return;
                };
                // Hand out the others first, so the appliers work while this thread applies.
                for (part, sender) in others.iter_mut().zip(&senders) {
                    if !part.is_empty() {
                        let _ = sender.send(ReplayJob::Apply(std::mem::take(part)));
                    }
                }
                stored_here += store.write_from(own, now_s, oldest_s).written as u64;
                progress.advance(0, own.len() as u64);
                own.clear();
            });
            drop(senders);
            let stored: Result<u64, ()> = handles
                .into_iter()
                .map(|h| h.join().map_err(|_| ()).and_then(|s| s))
                .sum();
            (replay, stored.map(|s| s + stored_here))
        });
        report.replay = replay?;
        let stored =
            stored.map_err(|_| DurabilityError::Task("WAL replay applier panicked".into()))?;
        progress.finish();
        report.replay_seconds = started.elapsed().as_secs_f64() - report.snapshot_seconds;
        report.replayed_samples_stored = stored;
        if let Some((position, bytes)) = report.replay.torn_tail {
            tracing::warn!(%position, bytes, "WAL ends in a torn write (a crash during a write); cutting it off");
            strata_wal::truncate_torn_tail(&wal_directory, position)?;
        }
        for damage in &report.replay.damage {
            tracing::error!(
                segment = damage.segment,
                offset = damage.offset,
                reason = %damage.reason,
                records_lost = ?damage.records_lost,
                "WAL damaged: records after this point in the segment were not replayed"
            );
            let path = wal_directory.join(strata_wal::segment_file_name(damage.segment));
            if path.exists() {
                quarantine(directory, &path);
            }
        }

        // A newest segment cut off inside its header was removed: its number is free again,
        // and reusing it keeps the numbers without a gap.
        let next_segment = match report.replay.torn_tail {
            Some((position, _))
                if position.offset < strata_wal::format::SEGMENT_HEADER_BYTES_BEFORE_V3 =>
            {
                position.segment
            }
            _ => report
                .replay
                .last_segment
                .map_or(plan.replay_from, |s| s + 1),
        };
        // Past the last record, and past what the newest segment's header says: after a clean
        // shutdown that segment has no records, and numbering must not start over.
        let next_sequence = report.replay.next_sequence;
        let retention = Retention::new(wal_directory.clone());
        // What recovery would replay stays until a snapshot covers it.
        retention.hold(
            SNAPSHOT_HOLD,
            Position {
                segment: plan.replay_from,
                offset: 0,
            },
        );
        let wal = match config.fsync {
            Some(fsync) => Some(Wal::open(
                WalConfig {
                    directory: wal_directory,
                    fsync,
                    segment_bytes: config.segment_bytes,
                    queue_depth: APPENDS_IN_FLIGHT_MAX * 2,
                },
                next_segment,
                next_sequence,
            )?),
            None => None,
        };
        if let Some(wal) = &wal {
            retention.set_writer(wal.committed());
        }
        report.seconds = started.elapsed().as_secs_f64();
        let durability = Self {
            config,
            wal,
            retention,
            gate: Arc::new(RwLock::new(())),
            appends: Semaphore::new(APPENDS_IN_FLIGHT_MAX),
            snapshotting: Arc::new(Mutex::new(())),
            // Under `off`, the next generation is numbered past every segment that exists, so
            // that its snapshot deletes them all (they are in memory now, and in it).
            generation: AtomicU64::new(generation.max(report.replay.last_segment.unwrap_or(0))),
            wal_bytes_at_snapshot: AtomicU64::new(0),
            kept: std::sync::Mutex::new(kept),
            _lock: lock,
        };
        Ok((durability, report))
    }

    /// Admits `batch` ([`Store::admit`]), appends what is left to the WAL (under the fsync
    /// policy), then applies it to `store`, with the same `now_s`: the log holds only
    /// samples the store takes (it is replayed and forwarded), except those refused by a
    /// limit of the tree at apply time (see `admit`). On a WAL failure nothing is applied.
    ///
    /// It runs as a task of its own: a request cancelled while its batch is being logged
    /// (the client hung up, the request timed out) must not leave the batch in the log but
    /// not in memory, where queries would miss it until a restart replays it.
    pub async fn commit(
        self: &Arc<Self>,
        store: &Arc<Store>,
        batch: WriteBatch,
        now_s: i64,
    ) -> Commit {
        let (this, store) = (self.clone(), store.clone());
        let task = tokio::spawn(async move { this.log_and_apply(&store, batch, now_s).await });
        match task.await {
            Ok(committed) => committed,
            // A panic in the store is a bug: it propagates as it would have inline.
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Only when the runtime shuts down under the commit.
            Err(_) => Commit {
                report: WriteReport::default(),
                error: Some(strata_wal::Error::Closed),
                batch: WriteBatch::new(),
            },
        }
    }

    async fn log_and_apply(&self, store: &Arc<Store>, mut batch: WriteBatch, now_s: i64) -> Commit {
        let refused = store.admit(&mut batch, now_s);
        // NOTE: an emptied batch is not logged: an empty record would cost an append and an
        // fsync for nothing, and every reader of the log would have to skip it.
        let (result, batch) = if batch.is_empty() {
            (Ok(WriteReport::default()), batch)
        } else {
            self.log_and_apply_admitted(store, batch, now_s).await
        };
        let (mut report, error) = match result {
            Ok(report) => (report, None),
            Err(error) => (WriteReport::default(), Some(error)),
        };
        // Counted whatever the log did: admission already counted them by metric, and they
        // would not have been stored either way.
        report.dropped += refused;
        Commit {
            report,
            error,
            batch,
        }
    }

    async fn log_and_apply_admitted(
        &self,
        store: &Arc<Store>,
        batch: WriteBatch,
        now_s: i64,
    ) -> (Result<WriteReport, strata_wal::Error>, WriteBatch) {
        let gate = self.gate.clone().read_owned().await;
        let Some(wal) = &self.wal else {
            let (report, batch) = apply(store, batch, now_s, gate).await;
            return (Ok(report), batch);
        };
        let Ok(_permit) = self.appends.acquire().await else {
            return (Err(strata_wal::Error::Closed), batch);
        };
        let (sender, receiver) = oneshot::channel();
        wal.append(
            batch,
            Box::new(move |result, batch| {
                // The receiver only goes away when the request was cancelled.
                let _ = sender.send((result, batch));
            }),
        );
        match receiver.await {
            Ok((Ok(_), batch)) => {
                let (report, batch) = apply(store, batch, now_s, gate).await;
                (Ok(report), batch)
            }
            Ok((Err(error), batch)) => (Err(error), batch),
            Err(_) => (Err(strata_wal::Error::Closed), WriteBatch::new()),
        }
    }

    /// Makes a free durable (a WAL record, under the fsync policy), then applies it to
    /// `store`, on a blocking thread. Returns the number of buffers freed. Run it as a task of
    /// its own: once the record is in the WAL, the free must also reach memory.
    ///
    /// The free holds the gate exclusively: every write logged before it is applied before it,
    /// none logged after it is applied before it, so memory is what a replay rebuilds. Ingest
    /// waits for the free (frees are rare, operator-driven).
    pub async fn free(
        self: &Arc<Self>,
        store: &Arc<Store>,
        free: Free,
    ) -> Result<usize, DurabilityError> {
        let _exclusive = self.gate.write().await;
        let (this, store) = (self.clone(), store.clone());
        tokio::task::spawn_blocking(move || {
            if let Some(wal) = &this.wal {
                let (sender, receiver) = std::sync::mpsc::sync_channel(1);
                wal.free(
                    free.clone(),
                    Box::new(move |result| {
                        let _ = sender.send(result);
                    }),
                );
                receiver.recv().map_err(|_| strata_wal::Error::Closed)??;
            }
            Ok(apply_free(&store, &free))
        })
        .await
        .map_err(|e| DurabilityError::Task(e.to_string()))?
    }

    /// WAL bytes written since the newest snapshot.
    pub fn wal_bytes_since_snapshot(&self) -> u64 {
        let written = self.wal.as_ref().map_or(0, |w| w.stats().bytes);
        written.saturating_sub(self.wal_bytes_at_snapshot.load(Ordering::Relaxed))
    }

    pub fn wal_stats(&self) -> Option<strata_wal::WalStats> {
        self.wal.as_ref().map(Wal::stats)
    }

    /// Why the WAL refuses writes, if it does.
    pub fn wal_poisoned(&self) -> Option<String> {
        self.wal.as_ref().and_then(Wal::poisoned)
    }

    /// The registry that alone deletes WAL segments, for readers that need them kept (a
    /// forwarder holds its cursor); `None` without a WAL.
    pub fn retention(&self) -> Option<Arc<Retention>> {
        self.wal.as_ref().map(|_| self.retention.clone())
    }

    /// The WAL writer's committed position, for readers that tail the log.
    pub fn committed(&self) -> Option<Arc<Committed>> {
        self.wal.as_ref().map(Wal::committed)
    }

    /// The data directory (`checkpoints.directory`).
    pub fn data_directory(&self) -> &Path {
        &self.config.directory
    }

    pub fn wal_directory(&self) -> PathBuf {
        self.config.directory.join("wal")
    }

    /// Writes a complete snapshot of `store` and deletes what it makes redundant.
    pub async fn snapshot(
        self: &Arc<Self>,
        store: &Arc<Store>,
        now_s: i64,
    ) -> Result<SnapshotReport, DurabilityError> {
        let one = self.snapshotting.clone().lock_owned().await;
        let started = Instant::now();
        let generation = match &self.wal {
            Some(wal) => {
                let _exclusive = self.gate.write().await;
                self.wal_bytes_at_snapshot
                    .store(wal.stats().bytes, Ordering::Relaxed);
                // The rotation waits for room in the writer's queue: off the async workers.
                let this = self.clone();
                let rotated = tokio::task::spawn_blocking(move || {
                    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
                    if let Some(wal) = &this.wal {
                        wal.rotate(Box::new(move |result| {
                            let _ = sender.send(result);
                        }));
                    }
                    receiver.recv().map_err(|_| strata_wal::Error::Closed)?
                })
                .await
                .map_err(|e| DurabilityError::Task(e.to_string()))?;
                let position: Position = rotated?;
                position.segment
            }
            // A number of its own even when an earlier attempt failed half-way.
            None => self.generation.fetch_add(1, Ordering::Relaxed) + 1,
        };
        let this = self.clone();
        let store = store.clone();
        let mut report = tokio::task::spawn_blocking(move || {
            let _one = one;
            this.write_generation(&store, generation, now_s)
        })
        .await
        .map_err(|e| DurabilityError::Task(e.to_string()))??;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    fn write_generation(
        &self,
        store: &Store,
        generation: u64,
        now_s: i64,
    ) -> Result<SnapshotReport, DurabilityError> {
        let root = self.config.directory.join("snapshots");
        let directory = snapshot::generation_directory(&root, generation);
        let hosts = store.host_keys();
        let mut report = SnapshotReport {
            generation,
            ..SnapshotReport::default()
        };
        let kept = self.kept.lock().map(|k| k.clone()).unwrap_or_default();
        // Blocks in a generation that is mostly garbage are written again, so it goes; so are
        // those of the smallest generations past `GENERATIONS_REFERRED_MAX`.
        let mut referable: Vec<(u64, Kept)> = kept
            .iter()
            .filter(|(_, k)| k.live_bytes as f64 >= COMPACT_LIVE_FRACTION * k.pack_bytes as f64)
            .map(|(&number, &k)| (number, k))
            .collect();
        referable.sort_by_key(|(_, k)| std::cmp::Reverse(k.live_bytes));
        referable.truncate(GENERATIONS_REFERRED_MAX);
        let live = |number: u64| referable.iter().any(|&(n, _)| n == number);
        report.compacted_bytes = kept
            .iter()
            .filter(|&(&number, _)| !live(number))
            .map(|(_, k)| k.live_bytes)
            .sum();
        let mut packs = snapshot::PackWriter::new(&directory)?;
        let mut referenced: BTreeMap<u64, u64> = BTreeMap::new();
        let mut inline_bytes = 0u64;
        for (cluster, host) in &hosts {
            // A host can vanish between listing and copying (freed empty): nothing to write.
            let Some(image) = store.export_host_blocks(cluster, host, generation, &live) else {
                continue;
            };
            count_blocks(&image.root, &mut |block| match block {
                StoredBlock::Bytes { bytes, .. } => inline_bytes += bytes.len() as u64,
                StoredBlock::Reference {
                    generation, size, ..
                } => *referenced.entry(*generation).or_default() += u64::from(*size),
            });
            packs.add(&image)?;
            report.hosts += 1;
        }
        report.bytes = packs.finish()?;
        report.referenced_bytes = referenced.values().sum();
        let references: Vec<snapshot::Reference> = referenced
            .iter()
            .map(|(&generation, &bytes)| snapshot::Reference { generation, bytes })
            .collect();
        snapshot::finish_generation(&directory, generation, report.hosts, now_s, &references)?;
        self.generation.fetch_max(generation, Ordering::Relaxed);
        let mut now_kept: BTreeMap<u64, Kept> = referenced
            .iter()
            .map(|(&number, &bytes)| {
                let pack_bytes = kept.get(&number).map_or(bytes, |k| k.pack_bytes);
                (
                    number,
                    Kept {
                        pack_bytes,
                        live_bytes: bytes,
                    },
                )
            })
            .collect();
        now_kept.insert(
            generation,
            Kept {
                pack_bytes: report.bytes,
                live_bytes: inline_bytes,
            },
        );
        let keep: Vec<u64> = now_kept.keys().copied().collect();
        if let Ok(mut kept) = self.kept.lock() {
            *kept = now_kept;
        }
        report.generations_removed = snapshot::remove_generations_except(&root, generation, &keep)?;
        // Recovery now starts at this generation; what a forwarder still needs stays.
        self.retention.hold(
            SNAPSHOT_HOLD,
            Position {
                segment: generation,
                offset: 0,
            },
        );
        report.segments_deleted = self.retention.collect()?;
        Ok(report)
    }
}

/// Calls `each` with every sealed block below `level`.
fn count_blocks(level: &LevelImage<BlockSeries>, each: &mut dyn FnMut(&StoredBlock)) {
    for series in &level.series {
        for buffer in &series.buffers {
            buffer.blocks.iter().for_each(&mut *each);
        }
    }
    for (_, child) in &level.children {
        count_blocks(child, each);
    }
}

/// Work for a replay applier thread.
enum ReplayJob {
    Apply(WriteBatch),
    /// Wait at the barrier: a free is next.
    Meet,
}

/// Frees what `free` selects; returns the number of buffers freed.
fn apply_free(store: &Store, free: &Free) -> usize {
    free.selectors
        .iter()
        .map(|selector| {
            let path: Vec<&str> = selector.iter().map(String::as_str).collect();
            store.free(&path, free.before_s)
        })
        .sum()
}

/// Deals the samples of `batch` out to `parts` by host.
fn split_by_host(batch: &WriteBatch, parts: &mut [WriteBatch]) {
    use std::hash::{Hash, Hasher};
    let mut current: Option<(&str, &str, usize)> = None;
    for sample in batch.iter() {
        let key = sample.key;
        let part = match current {
            Some((cluster, host, part))
                if std::ptr::eq(cluster, key.cluster) && std::ptr::eq(host, key.host) =>
            {
                part
            }
            _ => {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                (key.cluster, key.host).hash(&mut hasher);
                let part = (hasher.finish() % parts.len() as u64) as usize;
                current = Some((key.cluster, key.host, part));
                part
            }
        };
        let levels = [
            strata_store::LevelName::new(key.levels[0], ""),
            strata_store::LevelName::new(key.levels[1], ""),
        ];
        parts[part].push(
            key.cluster,
            key.host,
            levels,
            key.metric,
            sample.timestamp_s,
            sample.value,
        );
    }
}

/// Takes the directory's lock file so two processes never share a data directory.
fn lock_directory(directory: &Path) -> Result<fs::File, DurabilityError> {
    let path = directory.join("LOCK");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| directory_error(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(directory_error(
            directory,
            "in use by another Strata process (LOCK is held)",
        )),
        Err(fs::TryLockError::Error(error)) => Err(directory_error(&path, error)),
    }
}

/// Checks or writes the format marker.
fn check_format(directory: &Path) -> Result<(), DurabilityError> {
    let path = directory.join("STRATA");
    match fs::read_to_string(&path) {
        Ok(text) => {
            let format = text
                .lines()
                .find_map(|l| l.strip_prefix("format "))
                .and_then(|v| v.trim().parse::<u32>().ok())
                .ok_or_else(|| directory_error(&path, "unreadable format marker"))?;
            if format != DATA_FORMAT {
                return Err(directory_error(
                    directory,
                    format!(
                        "written by a Strata with data format {format}; this build reads format {DATA_FORMAT}"
                    ),
                ));
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut file = fs::File::create(&path).map_err(|e| directory_error(&path, e))?;
            writeln!(file, "strata data directory\nformat {DATA_FORMAT}")
                .and_then(|()| file.sync_all())
                .map_err(|e| directory_error(&path, e))
        }
        Err(error) => Err(directory_error(&path, error)),
    }
}

/// Removes generations that were cut off, and quarantines those with a damaged MANIFEST;
/// neither is needed (see `strata_wal::recovery`).
fn set_aside(
    directory: &Path,
    generations: &[snapshot::Generation],
) -> Result<(), DurabilityError> {
    for generation in generations {
        let path = &generation.directory;
        match &generation.manifest {
            Manifest::Valid { .. } | Manifest::Missing => {
                tracing::warn!(path = %path.display(), "removing a snapshot generation that was cut off before it was complete");
                fs::remove_dir_all(path).map_err(|e| directory_error(path, e))?;
            }
            Manifest::Damaged(damage) => {
                tracing::error!(
                    path = %path.display(),
                    damage,
                    "snapshot generation with a damaged MANIFEST is not needed (an older \
                     generation and the WAL hold its data)"
                );
                quarantine(directory, path);
            }
        }
    }
    Ok(())
}

/// Keeps a damaged file or directory in the data directory's quarantine, and says so. A
/// failure to do so is logged, not fatal: recovery goes on with what it can read.
fn quarantine(directory: &Path, path: &Path) {
    match recovery::quarantine(directory, path) {
        Ok(kept) => tracing::error!(
            path = %path.display(),
            quarantine = %kept.display(),
            "damaged file kept in quarantine"
        ),
        Err(error) => tracing::error!(%error, "cannot quarantine a damaged file"),
    }
}

/// Loads every snapshot file of a generation, `workers` at a time; damaged ones are reported
/// and quarantined (the intact hosts before the damage in a file are loaded). Blocks that
/// the generation's hosts refer to are read from the `older` generations its MANIFEST lists
/// (all of them when it is not intact), one host at a time. Returns the bytes of the blocks
/// loaded, by the generation that holds them.
fn load_generation(
    generation: &snapshot::Generation,
    older: &[snapshot::Generation],
    store: &Store,
    workers: usize,
    report: &mut RecoveryReport,
    directory: &Path,
) -> BTreeMap<u64, u64> {
    let (older, unreadable) = Older::index(older.iter().filter(|g| generation.may_refer_to(g)));
    let damaged = std::sync::Mutex::new(Vec::new());
    for (path, error) in unreadable {
        tracing::error!(%error, "older snapshot file damaged: blocks referred to in it are lost");
        quarantine(directory, &path);
        if let Ok(mut list) = damaged.lock() {
            list.push(error.to_string());
        }
    }
    let next = AtomicU64::new(0);
    let samples = AtomicU64::new(0);
    let lost = AtomicU64::new(0);
    let unresolved = AtomicU64::new(0);
    let hosts = AtomicU64::new(0);
    let held = std::sync::Mutex::new(BTreeMap::<u64, u64>::new());
    let progress = Progress::new("loading snapshots", generation.files.len() as u64);
    std::thread::scope(|scope| {
        for _ in 0..workers.min(generation.files.len()).max(1) {
            scope.spawn(|| {
                let mut files = OpenFiles::default();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(path) = generation.files.get(index) else {
                        break;
                    };
                    let loaded = snapshot::read_pack(path, generation.number, |host| {
                        let imported = match host {
                            PackHost::Values(image) => store.import_host(image),
                            PackHost::Blocks(mut image) => {
                                let resolved = older.resolve(&mut image, &mut files);
                                unresolved.fetch_add(resolved.unresolved as u64, Ordering::Relaxed);
                                if let Ok(mut held) = held.lock() {
                                    for (number, bytes) in resolved.bytes {
                                        *held.entry(number).or_default() += bytes;
                                    }
                                }
                                store.load_host_blocks(image)
                            }
                        };
                        hosts.fetch_add(1, Ordering::Relaxed);
                        samples.fetch_add(imported.slots as u64, Ordering::Relaxed);
                        lost.fetch_add(imported.lost_slots as u64, Ordering::Relaxed);
                        progress.advance(0, imported.slots as u64);
                    });
                    progress.advance(1, 0);
                    if let Err(error) = loaded {
                        tracing::error!(%error, "snapshot file damaged: the damaged hosts' data up to the snapshot is lost (the others were loaded)");
                        quarantine(directory, path);
                        if let Ok(mut list) = damaged.lock() {
                            list.push(error.to_string());
                        }
                    }
                }
            });
        }
    });
    progress.finish();
    report.hosts = hosts.into_inner() as usize;
    report.snapshot_samples = samples.into_inner();
    report.snapshot_samples_lost = lost.into_inner();
    report
        .damaged_snapshots
        .extend(damaged.into_inner().unwrap_or_default());
    let unresolved = unresolved.into_inner();
    if unresolved > 0 || report.snapshot_samples_lost > 0 {
        tracing::error!(
            generation = generation.number,
            unresolved,
            samples_lost = report.snapshot_samples_lost,
            "snapshot blocks missing or damaged (an older generation they are in is damaged or \
             gone): their samples are lost, the rest was loaded"
        );
        report.damaged_snapshots.push(format!(
            "generation {}: {unresolved} block references not resolved, {} samples lost",
            generation.number, report.snapshot_samples_lost
        ));
    }
    if let Manifest::Valid { hosts } = generation.manifest
        && report.hosts != hosts
    {
        tracing::error!(
            expected = hosts,
            loaded = report.hosts,
            "snapshot generation is missing hosts"
        );
        report.damaged_snapshots.push(format!(
            "generation {}: {} of {hosts} hosts loaded",
            generation.number, report.hosts
        ));
    }
    held.into_inner().unwrap_or_default()
}

/// Batches of at least this many samples are applied to the store on a blocking thread: a
/// full batch takes milliseconds, too long to hold an async worker that also answers
/// `/healthz`; for a small one the thread hop would cost more than the write.
const BLOCKING_WRITE_SAMPLES: usize = 1024;

/// Applies a logged batch to `store`, on a blocking thread if it is large, under the apply
/// gate. Once started it finishes, gate held, even if the request is cancelled: a snapshot
/// must not rotate the WAL between a logged batch and its application.
async fn apply(
    store: &Arc<Store>,
    batch: WriteBatch,
    now_s: i64,
    gate: OwnedRwLockReadGuard<()>,
) -> (WriteReport, WriteBatch) {
    if batch.len() < BLOCKING_WRITE_SAMPLES {
        return (store.write(&batch, now_s), batch);
    }
    let store = store.clone();
    let task = tokio::task::spawn_blocking(move || {
        let applied = (store.write(&batch, now_s), batch);
        drop(gate);
        applied
    });
    match task.await {
        Ok(applied) => applied,
        // A panic in the store is a bug: it propagates as it would have inline.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Only when the runtime shuts down under the write.
        Err(_) => (WriteReport::default(), WriteBatch::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future as _;
    use strata_store::{LevelName, StoreConfig};

    const HOSTS: usize = 400;

    /// A store of `HOSTS` hosts with a few hours of one metric each, so that writing a
    /// snapshot takes long enough to be interrupted.
    fn store(now_s: i64) -> Arc<Store> {
        let store = Store::new(StoreConfig::auto(60));
        let mut batch = WriteBatch::new();
        for host in 0..HOSTS {
            let name = format!("node{host:05}");
            for minute in 0..240 {
                let t = now_s - 60 * minute;
                batch.push("c", &name, [LevelName::NONE; 2], "load", t, minute as f32);
            }
        }
        store.write(&batch, now_s);
        Arc::new(store)
    }

    fn open(directory: &Path, store: &Store, now_s: i64) -> Arc<Durability> {
        let config = DurabilityConfig {
            directory: directory.to_owned(),
            fsync: None,
            segment_bytes: 1 << 20,
            workers: 1,
        };
        Arc::new(Durability::recover(config, store, now_s).unwrap().0)
    }

    /// Opens with a WAL of `segment_bytes` segments under the `never` policy.
    fn open_logged(directory: &Path, store: &Store, segment_bytes: u64) -> Arc<Durability> {
        let config = DurabilityConfig {
            directory: directory.to_owned(),
            fsync: Some(FsyncPolicy::Never),
            segment_bytes,
            workers: 1,
        };
        Arc::new(
            Durability::recover(config, store, crate::now_s())
                .unwrap()
                .0,
        )
    }

    async fn commit_one(durability: &Arc<Durability>, store: &Arc<Store>, host: &str) {
        let now_s = crate::now_s();
        let mut batch = WriteBatch::new();
        batch.push("c", host, [LevelName::NONE; 2], "load", now_s, 1.0);
        let commit = durability.commit(store, batch, now_s).await;
        assert!(commit.error.is_none(), "{:?}", commit.error);
    }

    /// The sequence numbers of every record in the WAL directory.
    fn logged_sequences(durability: &Durability) -> Vec<u64> {
        let start = Position {
            segment: 0,
            offset: 0,
        };
        let mut reader =
            strata_wal::LogReader::open(&durability.wal_directory(), start, None).unwrap();
        let mut sequences = Vec::new();
        while let Some(event) = reader.next(std::time::Duration::ZERO).unwrap() {
            match event {
                strata_wal::Event::Record(entry) => sequences.push(entry.sequence),
                strata_wal::Event::Damage(damage) => panic!("{damage:?}"),
            }
        }
        sequences
    }

    /// Issue 7 item 4: after a clean restart (the snapshot had rotated the log, so the newest
    /// segment held no record) numbering started at 0 again: every run's first record was 0.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sequence_numbers_go_on_across_clean_restarts() {
        let directory = tempfile::tempdir().unwrap();
        let mut firsts = Vec::new();
        for run in 0..3 {
            let store = Arc::new(Store::new(StoreConfig::auto(60)));
            let durability = open_logged(directory.path(), &store, 1 << 20);
            commit_one(&durability, &store, &format!("run{run}")).await;
            commit_one(&durability, &store, &format!("run{run}")).await;
            let logged = logged_sequences(&durability);
            firsts.extend(logged.first().copied());
            // The shutdown snapshot: rotates, and deletes the segments it covers.
            durability.snapshot(&store, crate::now_s()).await.unwrap();
            assert!(logged_sequences(&durability).is_empty());
        }
        assert_eq!(firsts, [0, 2, 4]);
    }

    /// Issue 7 item 5: a snapshot deletes only the segments no hold needs. A forwarder's hold
    /// lagging behind keeps its segments through snapshots; released, the next snapshot
    /// deletes them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lagging_hold_keeps_its_segments_through_snapshots() {
        let directory = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::new(StoreConfig::auto(60)));
        let durability = open_logged(directory.path(), &store, 1 << 20);
        let retention = durability.retention().unwrap();
        let first = durability.committed().unwrap().position();
        retention.hold("forward", first);
        commit_one(&durability, &store, "a").await;
        let segments = || strata_wal::list_segments(&durability.wal_directory()).unwrap();
        for _ in 0..3 {
            let report = durability.snapshot(&store, crate::now_s()).await.unwrap();
            assert_eq!(report.segments_deleted, 0);
            commit_one(&durability, &store, "a").await;
        }
        assert_eq!(segments().first().map(|s| s.segment), Some(first.segment));
        assert_eq!(segments().len(), 4);
        // Moved on by one segment: only the first one goes.
        let second = Position {
            segment: first.segment + 1,
            offset: 0,
        };
        retention.hold("forward", second);
        let report = durability.snapshot(&store, crate::now_s()).await.unwrap();
        assert_eq!(report.segments_deleted, 1);
        retention.release("forward");
        // Segments 2 to 5: the last one was the writer's until this snapshot rotated.
        let report = durability.snapshot(&store, crate::now_s()).await.unwrap();
        assert_eq!(report.segments_deleted, 4);
        // The writer's segment always stays.
        let writer = durability.committed().unwrap().position().segment;
        let left: Vec<u64> = segments().iter().map(|s| s.segment).collect();
        assert_eq!(left, [writer]);
    }

    /// Issue 8: replay dropped every sample older than the retention window, so after a
    /// downtime longer than the retention, archive mode would lose what was not archived
    /// yet. `recover_from` keeps samples down to the floor given; `recover` still drops them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replay_keeps_samples_down_to_the_floor_given() {
        let directory = tempfile::tempdir().unwrap();
        let now_s = crate::now_s();
        let mut store_config = StoreConfig::auto(60);
        store_config.retention_s = 3600;
        let config = DurabilityConfig {
            directory: directory.path().to_owned(),
            fsync: Some(FsyncPolicy::Always),
            segment_bytes: 1 << 20,
            workers: 2,
        };
        {
            let store = Arc::new(Store::new(store_config.clone()));
            let durability = Arc::new(
                Durability::recover(config.clone(), &store, now_s)
                    .unwrap()
                    .0,
            );
            let mut batch = WriteBatch::new();
            batch.push("c", "h", [LevelName::NONE; 2], "load", now_s - 60, 1.0);
            batch.push("c", "h", [LevelName::NONE; 2], "load", now_s, 2.0);
            let commit = durability.commit(&store, batch, now_s).await;
            assert_eq!(commit.report.written, 2);
        }
        // Two hours later, a downtime longer than the retention of one hour.
        let later = now_s + 2 * 3600;
        let replayed = |floor| {
            let store = Store::new(store_config.clone());
            let report = Durability::recover_from(config.clone(), &store, later, floor)
                .unwrap()
                .1;
            (report.replayed_samples_stored, store.stats().samples)
        };
        assert_eq!(replayed(None), (0, 0));
        assert_eq!(replayed(Some(now_s - 60)), (2, 2));
        assert_eq!(replayed(Some(now_s)), (1, 1));
    }

    /// A request cancelled while its batch was being logged used to leave the batch in the
    /// WAL but not in memory (found in review): the commit now finishes on its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_commit_still_reaches_memory() {
        let directory = tempfile::tempdir().unwrap();
        let now_s = crate::now_s();
        let store = Arc::new(Store::new(StoreConfig::auto(60)));
        let config = DurabilityConfig {
            directory: directory.path().to_owned(),
            fsync: Some(FsyncPolicy::Always),
            segment_bytes: 1 << 20,
            workers: 1,
        };
        let durability = Arc::new(Durability::recover(config, &store, now_s).unwrap().0);
        let mut batch = WriteBatch::new();
        batch.push("c", "h", [LevelName::NONE; 2], "load", now_s, 1.5);
        let mut commit = Box::pin(durability.commit(&store, batch, now_s));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        // One poll starts the commit; the fsync keeps it from finishing at once.
        let first = commit.as_mut().poll(&mut context);
        assert!(first.is_pending());
        drop(commit);
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while store.stats().samples == 0 {
            assert!(
                Instant::now() < deadline,
                "the cancelled commit never reached memory"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(durability.wal_stats().map(|s| s.records), Some(1));
    }

    /// Issue 7: samples the store drops for their metric or their time used to be logged
    /// before `write` dropped them, so a replay (and a remote-write forwarder) read them. Now
    /// the log holds exactly the accepted samples, and a batch left empty is not logged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_admitted_samples_are_logged() {
        let directory = tempfile::tempdir().unwrap();
        let now_s = crate::now_s();
        let mut config = StoreConfig::auto(60);
        let metric = strata_store::MetricConfig {
            frequency_s: 60,
            aggregation: strata_store::Aggregation::Avg,
        };
        config.metrics.insert("m".to_owned(), metric);
        let (retention_s, future_s) = (config.retention_s, config.future_tolerance_s);
        let store = Arc::new(Store::new(config));
        let durability = Arc::new(
            Durability::recover(
                DurabilityConfig {
                    directory: directory.path().to_owned(),
                    fsync: Some(FsyncPolicy::Always),
                    segment_bytes: 1 << 20,
                    workers: 1,
                },
                &store,
                now_s,
            )
            .unwrap()
            .0,
        );
        let node = [LevelName::NONE; 2];
        let mut mixed = WriteBatch::new();
        mixed.push("c", "h1", node, "m", now_s, 1.0);
        mixed.push("c", "h1", node, "unknown", now_s, 2.0);
        mixed.push("c", "h1", node, "m", now_s - retention_s - 60, 3.0);
        mixed.push("c", "h2", node, "m", now_s + future_s + 60, 4.0);
        mixed.push("c", "h2", node, "m", now_s - 60, 5.0);
        let commit = durability.commit(&store, mixed, now_s).await;
        assert!(commit.error.is_none(), "{commit:?}");
        let report = commit.report;
        assert_eq!(report.written, 2);
        let dropped = report.dropped;
        let counts = (
            dropped.unknown_metric,
            dropped.outside_retention,
            dropped.future,
        );
        assert_eq!(counts, (1, 1, 1), "{report:?}");
        assert_eq!(store.unknown_metric_counts(), [("unknown".to_owned(), 1)]);

        let mut junk = WriteBatch::new();
        junk.push("c", "h1", node, "unknown", now_s, 6.0);
        junk.push("c", "h1", node, "m", now_s - retention_s - 60, 7.0);
        let commit = durability.commit(&store, junk, now_s).await;
        assert!(commit.error.is_none(), "{commit:?}");
        assert_eq!(
            (commit.report.written, commit.report.dropped.total()),
            (0, 2)
        );
        assert!(commit.batch.is_empty());
        assert_eq!(durability.wal_stats().map(|s| s.records), Some(1));
        drop(durability);

        let mut logged = Vec::new();
        let replay = strata_wal::replay(&directory.path().join("wal"), 0, |record, _| {
            if let Record::Batch(batch) = record {
                logged.extend(batch.iter().map(|s| (s.key.host.to_owned(), s.value)));
            }
        })
        .unwrap();
        assert_eq!(replay.records, 1);
        assert_eq!(logged, [("h1".to_owned(), 1.0), ("h2".to_owned(), 5.0)]);
    }

    /// Issue 6 item 6: shutdown aborts the periodic snapshot task. The abort used to release
    /// the snapshot lock while the blocking writer went on, so the final snapshot ran beside
    /// it — under `fsync: off` with the same generation number and the same temporary files.
    /// Now the final snapshot waits for the aborted one's writer, and both complete.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_aborted_snapshot_finishes_before_the_next_one_starts() {
        let directory = tempfile::tempdir().unwrap();
        let now_s = crate::now_s();
        let store = store(now_s);
        let durability = open(directory.path(), &store, now_s);
        for delay_ms in [0, 1, 3, 10] {
            let periodic = {
                let (durability, store) = (durability.clone(), store.clone());
                tokio::spawn(async move { durability.snapshot(&store, now_s).await })
            };
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            periodic.abort();
            let last = durability.snapshot(&store, now_s).await.unwrap();
            assert_eq!(last.hosts, HOSTS, "delay {delay_ms} ms");
        }
        // What recovery finds is one complete generation with every host.
        let plan = recovery::plan(
            &directory.path().join("snapshots"),
            &directory.path().join("wal"),
        )
        .unwrap();
        let generation = plan.generation.unwrap();
        assert_eq!(generation.manifest, Manifest::Valid { hosts: HOSTS });
        assert!(plan.set_aside.is_empty());
        drop(durability);
        let reloaded = Store::new(StoreConfig::auto(60));
        drop(open(directory.path(), &reloaded, now_s));
        assert_eq!(reloaded.stats().hosts, HOSTS);
        assert_eq!(reloaded.stats().samples, store.stats().samples);
    }

    /// Incremental snapshots (issue 10 item 3): `SERIES_HOSTS` hosts with `minutes` of one
    /// metric of values that do not compress much, written through the log.
    const SERIES_HOSTS: usize = 20;

    async fn commit_minutes(
        durability: &Arc<Durability>,
        store: &Arc<Store>,
        hosts: std::ops::Range<usize>,
        minutes: std::ops::Range<i64>,
        start_s: i64,
    ) {
        let mut batch = WriteBatch::new();
        for host in hosts {
            let name = format!("node{host:05}");
            for minute in minutes.clone() {
                let value = ((minute * 2_654_435_761 + host as i64) % 100_003) as f32 / 7.0;
                batch.push(
                    "c",
                    &name,
                    [LevelName::NONE; 2],
                    "load",
                    start_s + 60 * minute,
                    value,
                );
            }
        }
        let commit = durability.commit(store, batch, crate::now_s()).await;
        assert!(commit.error.is_none(), "{:?}", commit.error);
    }

    /// A store and its logged durability in a new directory, with the first `minutes` of
    /// every host committed; and the time of minute 0.
    async fn logged(minutes: i64) -> (tempfile::TempDir, Arc<Store>, Arc<Durability>, i64) {
        let directory = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::new(StoreConfig::auto(60)));
        let durability = open_logged(directory.path(), &store, 1 << 20);
        let start_s = crate::now_s() - 60 * 2_100;
        commit_minutes(&durability, &store, 0..SERIES_HOSTS, 0..minutes, start_s).await;
        (directory, store, durability, start_s)
    }

    /// Every host of `store`, exported (Debug compares NaN slots too).
    fn images(store: &Store) -> Vec<String> {
        store
            .host_keys()
            .iter()
            .map(|(cluster, host)| format!("{:?}", store.export_host(cluster, host)))
            .collect()
    }

    /// A store recovered from `directory` (a copy), and what recovery reported.
    fn recovered(directory: &Path) -> (Store, RecoveryReport) {
        let store = Store::new(StoreConfig::auto(60));
        let config = DurabilityConfig {
            directory: directory.to_owned(),
            fsync: Some(FsyncPolicy::Never),
            segment_bytes: 1 << 20,
            workers: 2,
        };
        let (durability, report) = Durability::recover(config, &store, crate::now_s()).unwrap();
        drop(durability);
        (store, report)
    }

    /// Recovers a copy of `directory` (as after a crash: `store` stays as it is) and checks
    /// that it holds what `store` holds, bit for bit, with no damage reported.
    fn recovers_bit_exact(directory: &Path, store: &Store) -> Store {
        let copy = tempfile::tempdir().unwrap();
        copy_directory(directory, copy.path());
        let (reloaded, report) = recovered(copy.path());
        assert!(report.damaged_snapshots.is_empty(), "{report:?}");
        assert_eq!(images(&reloaded), images(store));
        reloaded
    }

    fn copy_directory(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_directory(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    fn generation_numbers(directory: &Path) -> Vec<u64> {
        let mut numbers: Vec<u64> = snapshot::list_generations(&directory.join("snapshots"))
            .unwrap()
            .iter()
            .map(|g| g.number)
            .collect();
        numbers.sort_unstable();
        numbers
    }

    /// Issue 10 item 3: a second snapshot refers to the blocks the first one wrote instead of
    /// writing them again, and recovery puts every series back bit for bit: new samples, a
    /// late write into a block already on disk, a host freed (`/api/free`) and buffers freed
    /// by retention included.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn incremental_snapshots_write_only_what_changed_and_recover_bit_exact() {
        let (directory, store, durability, start_s) = logged(2_000).await;
        let first = durability.snapshot(&store, crate::now_s()).await.unwrap();
        assert_eq!(first.referenced_bytes, 0);

        let new_minutes = 10;
        commit_minutes(
            &durability,
            &store,
            0..SERIES_HOSTS,
            2_000..2_000 + new_minutes,
            start_s,
        )
        .await;
        // A late write into a block on disk, a host freed, the oldest buffers freed.
        commit_minutes(&durability, &store, 0..1, 1_000..1_001, start_s).await;
        let free = Free {
            selectors: vec![vec!["c".into(), "node00001".into()]],
            before_s: i64::MAX / 2,
        };
        durability.free(&store, free).await.unwrap();
        assert!(store.free_before(start_s + 60 * 600) > 0);
        let second = durability.snapshot(&store, crate::now_s()).await.unwrap();

        // What the second one wrote is bounded by what changed, not by the store: per series
        // a tail (at most a block of raw slots), the new slots, a reference per block, one
        // re-encoded block, and names.
        let series = SERIES_HOSTS as u64;
        let blocks = 2_000u64.div_ceil(128);
        let bound = series * (128 * 4 + new_minutes as u64 * 4 + blocks * 16 + 128)
            + strata_store::block::BLOCK_BYTES_MAX as u64;
        assert!(second.bytes <= bound, "{} > {bound}", second.bytes);
        assert!(
            second.bytes * 4 < first.bytes,
            "{} vs {}",
            second.bytes,
            first.bytes
        );
        assert!(second.referenced_bytes > first.bytes / 2, "{second:?}");

        let reloaded = recovers_bit_exact(directory.path(), &store);
        assert!(
            reloaded.export_host("c", "node00001").is_none(),
            "freed stays freed"
        );
        assert!(store.stats().samples > 0);
    }

    /// After each snapshot, the generations the newest refers to stay and the others go;
    /// one that is mostly garbage is compacted (its live blocks written again).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreferenced_generations_are_deleted_and_garbage_is_compacted() {
        let (directory, store, durability, start_s) = logged(2_000).await;
        let first = durability.snapshot(&store, crate::now_s()).await.unwrap();
        commit_minutes(&durability, &store, 0..SERIES_HOSTS, 2_000..2_005, start_s).await;
        let second = durability.snapshot(&store, crate::now_s()).await.unwrap();
        assert_eq!(
            generation_numbers(directory.path()),
            [first.generation, second.generation]
        );
        // The second generation holds little but its skeleton: the third writes its few
        // blocks again, deletes it, and still refers to the first.
        commit_minutes(&durability, &store, 0..SERIES_HOSTS, 2_005..2_010, start_s).await;
        let third = durability.snapshot(&store, crate::now_s()).await.unwrap();
        assert_eq!(
            generation_numbers(directory.path()),
            [first.generation, third.generation]
        );
        assert_eq!(third.generations_removed, 1);

        // Retention frees most of the first generation's blocks: the next snapshot finds
        // how little of it is used, the one after writes the rest again and it goes.
        store.free_before(start_s + 60 * 1_700);
        let fourth = durability.snapshot(&store, crate::now_s()).await.unwrap();
        assert_eq!(fourth.compacted_bytes, 0, "{fourth:?}");
        let fifth = durability.snapshot(&store, crate::now_s()).await.unwrap();
        assert!(fifth.compacted_bytes > 0, "{fifth:?}");
        assert_eq!(generation_numbers(directory.path()), [fifth.generation]);
        recovers_bit_exact(directory.path(), &store);
    }

    /// A store whose data is never freed keeps every generation mostly live: without a bound
    /// each snapshot would add one more for recovery to read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_refers_to_a_bounded_number_of_generations() {
        let (directory, store, durability, start_s) = logged(300).await;
        for round in 1..=GENERATIONS_REFERRED_MAX as i64 + 3 {
            let minutes = 300 * round..300 * (round + 1);
            commit_minutes(
                &durability,
                &store,
                0..SERIES_HOSTS,
                minutes,
                start_s - 60 * 3_000,
            )
            .await;
            durability.snapshot(&store, crate::now_s()).await.unwrap();
            let kept = generation_numbers(directory.path()).len();
            assert!(
                kept <= GENERATIONS_REFERRED_MAX + 1,
                "round {round}: {kept}"
            );
        }
        recovers_bit_exact(directory.path(), &store);
    }

    /// A crash at every step of an incremental snapshot (packs written but no MANIFEST;
    /// MANIFEST written but older generations not deleted; those deleted but the WAL not
    /// trimmed), a damaged MANIFEST of the newest generation whose blocks are in an older
    /// one, and a damaged older pack: recovery loses nothing but what the damage holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_step_of_an_incremental_snapshot_survives_a_crash() {
        let (directory, store, durability, start_s) = logged(1_000).await;
        durability.snapshot(&store, crate::now_s()).await.unwrap();
        commit_minutes(&durability, &store, 0..SERIES_HOSTS, 1_000..1_600, start_s).await;
        let middle = durability.snapshot(&store, crate::now_s()).await.unwrap();
        commit_minutes(&durability, &store, 0..SERIES_HOSTS, 1_600..1_610, start_s).await;
        let before = tempfile::tempdir().unwrap();
        copy_directory(directory.path(), before.path());
        let newest = durability.snapshot(&store, crate::now_s()).await.unwrap();
        assert!(newest.referenced_bytes > 0);
        commit_minutes(&durability, &store, 0..SERIES_HOSTS, 1_610..1_615, start_s).await;
        let expected = images(&store);
        let after = directory.path();
        let snapshots = |root: &Path| root.join("snapshots");
        let newest_dir =
            |root: &Path| snapshot::generation_directory(&snapshots(root), newest.generation);

        type MakeState<'a> = &'a dyn Fn(&Path);
        let states: [(&str, MakeState); 3] = [
            ("packs written, no MANIFEST", &|root| {
                copy_directory(before.path(), root);
                copy_directory(&newest_dir(after), &newest_dir(root));
                fs::remove_file(newest_dir(root).join("MANIFEST")).unwrap();
                copy_directory(&after.join("wal"), &root.join("wal"));
            }),
            (
                "MANIFEST written, older generations and WAL kept",
                &|root| {
                    copy_directory(before.path(), root);
                    copy_directory(after, root);
                },
            ),
            ("older generations deleted, WAL kept", &|root| {
                copy_directory(after, root);
                copy_directory(&before.path().join("wal"), &root.join("wal"));
            }),
        ];
        for (step, state) in states {
            let root = tempfile::tempdir().unwrap();
            state(root.path());
            let (reloaded, report) = recovered(root.path());
            assert!(report.damaged_snapshots.is_empty(), "{step}: {report:?}");
            assert_eq!(images(&reloaded), expected, "{step}");
        }

        // The newest MANIFEST damaged after the WAL below it was deleted: the generation is
        // loaded, its references resolved from every older generation.
        let root = tempfile::tempdir().unwrap();
        copy_directory(after, root.path());
        let manifest = newest_dir(root.path()).join("MANIFEST");
        let text = fs::read_to_string(&manifest)
            .unwrap()
            .replace("hosts ", "hosts 1");
        fs::write(&manifest, text).unwrap();
        let (reloaded, report) = recovered(root.path());
        assert_eq!(report.generation, Some(newest.generation));
        assert_eq!(report.damaged_snapshots.len(), 1, "{report:?}");
        assert_eq!(images(&reloaded), expected);

        // A damaged older pack: the references into the damaged host entry are lost (and
        // reported), every other host loads whole.
        let root = tempfile::tempdir().unwrap();
        copy_directory(after, root.path());
        let older = snapshot::generation_directory(&snapshots(root.path()), middle.generation);
        let pack = older.join("000001.snap");
        let mut bytes = fs::read(&pack).unwrap();
        // Inside the first host entry's payload (after the pack and entry headers).
        bytes[16 + 12 + 40] ^= 0x10;
        fs::write(&pack, bytes).unwrap();
        let (reloaded, report) = recovered(root.path());
        assert!(report.snapshot_samples_lost > 0, "{report:?}");
        assert!(
            report
                .damaged_snapshots
                .iter()
                .any(|d| d.contains("not resolved")),
            "{report:?}"
        );
        let whole = images(&reloaded)
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a == b)
            .count();
        assert_eq!(
            whole,
            SERIES_HOSTS - 1,
            "one host is damaged, the others load: {report:?}"
        );
    }
}
