//! The store: clusters → hosts → level trees, and the operations that span them.
//!
//! Locking: each host's tree has its own `RwLock`, so writers and readers of different hosts
//! never wait for each other. The cluster and host maps are read-locked only to find a host
//! (and write-locked only to add one: both at once, as pruning locks them). The metric
//! registry is read once per batch, before any host lock is taken, so the lock order is always
//! registry → maps → host.

use crate::batch::{SampleNames, WriteBatch};
use crate::buffer::{FreeOutcome, MemoryDelta};
use crate::fxhash::same_text;
use crate::level::{Hint, Level};
use crate::memory::{BUFFER_ALLOCATION_OVERHEAD, map_entry};
use crate::metric::{MetricConfig, MetricId, Refusal, Registry};
use crate::pool::BufferPool;
use parking_lot::{ArcRwLockWriteGuard, RawRwLock, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// How the store is set up.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Configured metrics. When empty, unknown metrics are registered on first sight with
    /// `default_metric`.
    pub metrics: BTreeMap<String, MetricConfig>,
    /// Configuration of auto-registered metrics (COMPAT.md decision 3).
    pub default_metric: MetricConfig,
    /// Samples older than `now − retention` are refused at write and freed by retention.
    pub retention_s: i64,
    /// Samples more than this far ahead of the clock are refused: one sample from a host with a
    /// wrong clock would otherwise start a buffer in the far future for its series.
    pub future_tolerance_s: i64,
    /// Bound of the pool of freed buffers kept for reuse.
    pub pool_buffers_max: usize,
    pub limits: StoreLimits,
}

/// Bounds on what writes may create, so that no client can make the tree, or the work done
/// under its locks, grow without bound. Samples a limit refuses are dropped and counted by
/// reason ([`DropCounts`]); data already in the store is never refused, and loading snapshots
/// or importing is not limited (that data was accepted before). Every value is > 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Metrics registered on first sight (auto-registration only).
    pub metrics_max: usize,
    pub hosts_per_cluster_max: usize,
    pub series_per_host_max: usize,
    /// Children of one level: type-ids under a host, or sub-levels under a type-id.
    pub children_per_level_max: usize,
}

impl StoreLimits {
    /// Far above real systems (a few hundred metrics, ~10 000 nodes, ~10 000 series on a
    /// 256-hwthread node), low enough that a runaway client hits a limit before memory does.
    pub const DEFAULT: StoreLimits = StoreLimits {
        metrics_max: 10_000,
        hosts_per_cluster_max: 100_000,
        series_per_host_max: 100_000,
        children_per_level_max: 10_000,
    };
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl StoreConfig {
    /// A configuration that auto-registers every metric at `frequency_s`, for tests and tools.
    pub fn auto(frequency_s: i64) -> Self {
        Self {
            metrics: BTreeMap::new(),
            default_metric: MetricConfig {
                frequency_s,
                aggregation: crate::Aggregation::Avg,
            },
            retention_s: 48 * 3600,
            future_tolerance_s: 24 * 3600,
            pool_buffers_max: 4096,
            limits: StoreLimits::DEFAULT,
        }
    }
}

/// What applying one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteReport {
    pub written: usize,
    pub dropped: DropCounts,
}

/// Samples not stored, by reason. A request with dropped samples still succeeds: these are
/// not input errors but data the store cannot keep (COMPAT.md decisions 3 and 16).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DropCounts {
    /// The metric is not in a configured metric list.
    pub unknown_metric: usize,
    /// Older than the retention window.
    pub outside_retention: usize,
    /// Below what its cluster has archived (archive mode; [`Store::set_archived_until`]): the
    /// period's file is written and would never hold it.
    pub archived: usize,
    /// Further ahead of the clock than the future tolerance.
    pub future: usize,
    /// A new metric beyond [`StoreLimits::metrics_max`].
    pub too_many_metrics: usize,
    /// A new host beyond [`StoreLimits::hosts_per_cluster_max`].
    pub too_many_hosts: usize,
    /// A new series beyond [`StoreLimits::series_per_host_max`].
    pub too_many_series: usize,
    /// A new level beyond [`StoreLimits::children_per_level_max`].
    pub too_many_children: usize,
    /// A new host, level or series while the memory cap cannot be met
    /// ([`Store::memory_full`]).
    pub memory_cap: usize,
}

impl std::ops::AddAssign for DropCounts {
    fn add_assign(&mut self, other: Self) {
        self.unknown_metric += other.unknown_metric;
        self.outside_retention += other.outside_retention;
        self.archived += other.archived;
        self.future += other.future;
        self.too_many_metrics += other.too_many_metrics;
        self.too_many_hosts += other.too_many_hosts;
        self.too_many_series += other.too_many_series;
        self.too_many_children += other.too_many_children;
        self.memory_cap += other.memory_cap;
    }
}

impl DropCounts {
    pub fn total(&self) -> usize {
        self.reasons().iter().map(|(_, count)| count).sum()
    }

    /// Samples refused by a [`StoreLimits`] limit.
    pub fn over_limits(&self) -> usize {
        self.too_many_metrics + self.too_many_hosts + self.too_many_series + self.too_many_children
    }

    /// Every count with its reason's name, as `/metrics` and the log show them.
    pub fn reasons(&self) -> [(&'static str, usize); 9] {
        [
            ("unknown_metric", self.unknown_metric),
            ("outside_retention", self.outside_retention),
            ("archived", self.archived),
            ("future", self.future),
            ("too_many_metrics", self.too_many_metrics),
            ("too_many_hosts", self.too_many_hosts),
            ("too_many_series", self.too_many_series),
            ("too_many_children", self.too_many_children),
            ("memory_cap", self.memory_cap),
        ]
    }
}

/// The level at `path` below `root`, creating missing levels (their bytes added to
/// `delta`) while a level has fewer than `children_max` children. Each level's child is
/// looked for near its hint first ([`Level::child_or_insert_near`]).
fn descend<'l, 'p>(
    mut level: &'l mut Level,
    path: impl Iterator<Item = &'p str>,
    children_max: usize,
    delta: &mut MemoryDelta,
    hints: &mut [Hint; 2],
) -> Option<&'l mut Level> {
    for (name, hint) in path.zip(hints) {
        level = level.child_or_insert_near(name, children_max, delta, hint)?;
    }
    Some(level)
}

/// Totals of the store's own memory, kept on every change: buffers exactly, the tree's
/// structure as the estimate [`crate::memory`] describes.
#[derive(Debug, Default)]
struct Memory {
    buffer_bytes: AtomicI64,
    buffers: AtomicI64,
    /// Clusters, hosts and their trees (the registry is counted on demand).
    structure_bytes: AtomicI64,
    /// The last memory-cap pass could not get under the cap, or writes took the store past
    /// the ceiling: new hosts, levels and series are refused until a pass finds the store
    /// under the cap ([`Store::memory_full`]).
    full: AtomicBool,
    /// The last pass could not meet the cap (what [`MemoryCapOutcome::was_over`] reports).
    pass_over: AtomicBool,
    /// The memory cap, for the ceiling checked by writes; 0 = none.
    cap_bytes: AtomicU64,
}

/// Between two memory-cap passes, writes that create names check the store against the cap
/// plus this fraction of it (the ceiling) and make it full once it is past: a flood of new
/// hosts outgrows the cap by at most a tenth and one batch, not by whatever arrives until the
/// next pass. Buffers filling up in steady state grow far slower than that between passes.
const CEILING_DIVISOR: u64 = 10;

impl Memory {
    fn apply(&self, delta: MemoryDelta) {
        self.buffer_bytes
            .fetch_add(delta.bytes as i64, Ordering::Relaxed);
        self.buffers
            .fetch_add(delta.buffers as i64, Ordering::Relaxed);
        self.structure_bytes
            .fetch_add(delta.structure as i64, Ordering::Relaxed);
    }

    fn release(&self, freed: FreeOutcome) {
        self.buffer_bytes
            .fetch_sub(freed.bytes as i64, Ordering::Relaxed);
        self.buffers
            .fetch_sub(freed.buffers as i64, Ordering::Relaxed);
        self.release_structure(freed.structure);
    }

    fn add_structure(&self, bytes: usize) {
        self.structure_bytes
            .fetch_add(bytes as i64, Ordering::Relaxed);
    }

    fn release_structure(&self, bytes: usize) {
        self.structure_bytes
            .fetch_sub(bytes as i64, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Cluster {
    pub(crate) hosts: RwLock<BTreeMap<Box<str>, Host>>,
}

/// A host's tree behind its lock; shared so a writer can hold the lock while it walks a
/// batch. One allocation per host: the lock and the counts live beside the root level.
pub(crate) type Host = Arc<RwLock<HostTree>>;

/// A host's write lock.
pub(crate) type HostGuard = ArcRwLockWriteGuard<RawRwLock, HostTree>;

#[derive(Debug, Default)]
pub(crate) struct HostTree {
    pub(crate) root: Level,
    /// Series in the tree, for [`StoreLimits::series_per_host_max`].
    pub(crate) series: usize,
    /// Heap bytes of the tree's structure ([`Level::structure_bytes`] of the root).
    structure: usize,
    /// Set when pruning removes the host from its cluster. A writer that found the host
    /// before that checks it once it holds the lock, and starts over, so no sample is written
    /// into a host that is no longer in the tree.
    retired: bool,
}

impl HostTree {
    /// Counts structure that a write or import added.
    pub(crate) fn add_structure(&mut self, delta: MemoryDelta) {
        self.structure = self.structure.saturating_add_signed(delta.structure);
    }
}

/// Runs a free pass on the level at `path` of `host` (if it exists) and keeps its counts.
fn free_host(
    host: &Host,
    path: &[&str],
    action: impl FnOnce(&mut Level) -> FreeOutcome,
) -> FreeOutcome {
    let mut guard = host.write();
    let tree = &mut *guard;
    let mut level = &mut tree.root;
    for name in path {
        match level.child_mut(name) {
            Some(child) => level = child,
            None => return FreeOutcome::default(),
        }
    }
    let outcome = action(level);
    tree.series -= outcome.series;
    tree.structure = tree.structure.saturating_sub(outcome.structure);
    outcome
}

/// A sample's cluster and host: their identity in the batch and their text.
type HostNames<'a> = (SampleNames, (&'a str, &'a str));

/// A metric found in the registry: its id and its frequency in seconds.
type Resolved = Option<(MetricId, i64)>;

/// The count of one [`StoreLimits`] limit's refusals.
type Limit = fn(&mut DropCounts) -> &mut usize;

/// Where a sample refused by a limit is counted: under that limit, or under `memory_cap`
/// while the store is full (every limit is then 0).
fn count_refusal(dropped: &mut DropCounts, full: bool, limit: Limit) {
    *if full {
        &mut dropped.memory_cap
    } else {
        limit(dropped)
    } += 1;
}

/// A point-in-time view of the store's size.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    pub clusters: usize,
    pub hosts: usize,
    pub series: usize,
    /// Slots held, NaN-filled gaps included.
    pub samples: u64,
    pub metrics: usize,
    pub buffers: u64,
    /// Heap bytes of the buffers: their sealed (encoded) blocks and raw tails.
    pub buffer_bytes: u64,
    /// Of those, the sealed blocks (with their length prefixes)…
    pub encoded_bytes: u64,
    /// …and the raw tails' slots; the rest is the tails' room to grow.
    pub tail_bytes: u64,
    /// Heap bytes of freed buffers kept for reuse.
    pub pool_bytes: u64,
    /// Heap bytes of the tree itself: clusters, hosts, levels, series, the metric registry
    /// (an estimate, see [`Store::structure_bytes`]).
    pub structure_bytes: u64,
    /// New hosts, levels and series are refused because the memory cap cannot be met.
    pub memory_full: bool,
}

/// The in-memory metric store.
#[derive(Debug)]
pub struct Store {
    pub(crate) registry: RwLock<Registry>,
    pub(crate) clusters: RwLock<BTreeMap<Box<str>, Arc<Cluster>>>,
    pub(crate) pool: BufferPool,
    memory: Memory,
    config: StoreConfig,
    /// Samples dropped because their metric is unknown, by metric name. Bounded: names beyond
    /// `UNKNOWN_METRIC_NAMES_MAX` are counted under [`OTHER_METRICS`].
    unknown_metrics: parking_lot::Mutex<HashMap<String, u64>>,
    /// Per cluster, the end of what is archived (archive mode): writes below it are refused.
    archived_until: RwLock<HashMap<Box<str>, i64>>,
}

/// Whether metrics are registered on first sight: when none are configured (COMPAT.md
/// decision 3).
fn registers_metrics(config: &StoreConfig) -> bool {
    config.metrics.is_empty()
}

/// Most distinct unknown metric names counted by name (a bound on `/metrics` label values).
const UNKNOWN_METRIC_NAMES_MAX: usize = 100;

/// The name under which unknown metrics beyond the bound are counted.
pub const OTHER_METRICS: &str = "(other)";

impl Store {
    pub fn new(config: StoreConfig) -> Self {
        let auto = registers_metrics(&config).then_some(config.default_metric);
        let registry = Registry::new(
            config.metrics.iter().map(|(name, c)| (name.as_str(), *c)),
            auto,
            config.limits.metrics_max,
        );
        Self {
            registry: RwLock::new(registry),
            clusters: RwLock::default(),
            pool: BufferPool::new(config.pool_buffers_max),
            memory: Memory::default(),
            config,
            unknown_metrics: Default::default(),
            archived_until: Default::default(),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// An empty store with this store's configuration and a copy of its metric registry
    /// (metrics registered on first sight included): where a query that reads an archive
    /// imports the archive's and memory's images ([`Store::export_metric`]) and runs
    /// [`Store::query_each`] unchanged, so resampling, aggregation, padding and statistics
    /// follow exactly the rules of memory.
    pub fn scratch(&self) -> Store {
        let scratch = Store::new(self.config.clone());
        *scratch.registry.write() = self.registry.read().clone();
        scratch
    }

    fn registers_metrics(&self) -> bool {
        registers_metrics(&self.config)
    }

    /// Removes from `batch`, before it is logged, every sample that [`Store::write`] would
    /// drop for a reason that cannot change before the write, and counts them as `write`
    /// would (the per-metric counter of unknown metrics included): its metric is not
    /// configured; it is new while auto-registration has reached
    /// [`StoreLimits::metrics_max`] (the registry never shrinks); it is older than the
    /// retention window or further ahead than the future tolerance at `now_s`. The order of
    /// the others is kept. So the write-ahead log, which is replayed and forwarded to
    /// remote-write receivers, holds only samples the store takes.
    ///
    /// Read-only and cheap: one registry read lock, one lookup per run of samples of a
    /// metric, no host lock, no allocation.
    ///
    /// What it leaves to `write`, so what can still reach the log and be dropped there
    /// (counted under its reason): a new host, level or series refused by
    /// [`StoreLimits::hosts_per_cluster_max`], `series_per_host_max` or
    /// `children_per_level_max`, or while the store is full ([`Store::memory_full`]): those
    /// depend on the tree, which frees, pruning and memory-cap passes change between this
    /// check and the write. And new metrics of one batch beyond the room the registry has
    /// left: a concurrent writer may register one of them first, which makes it known. A
    /// `write` with a later `now_s` than this check may also drop a sample that has
    /// meanwhile left the retention window; the server passes the same time to both.
    pub fn admit(&self, batch: &mut WriteBatch, now_s: i64) -> DropCounts {
        let oldest_s = now_s - self.config.retention_s;
        let archived = self.archived_until.read();
        // The archived end of the last sample's cluster (one lookup per run of a cluster).
        let mut floor: Option<(&str, i64)> = None;
        let newest_s = now_s + self.config.future_tolerance_s;
        let mut dropped = DropCounts::default();
        let registry = self.registry.read();
        let registers = self.registers_metrics();
        let at_limit = registry.len() >= self.config.limits.metrics_max;
        // While metrics are registered on first sight and there is room, no metric is
        // refused: the common setup pays no lookups.
        let lookup = !registers || at_limit;
        // The common case, a batch of which nothing is dropped, is found with one read of
        // the times: `retain` would rewrite every sample.
        if !lookup
            && archived.is_empty()
            && batch
                .times_values(0)
                .all(|(t, _)| (oldest_s..=newest_s).contains(&t))
        {
            return dropped;
        }
        let metric_refusal = |name: &str| match registry.get(name) {
            Some(_) => None,
            None if !registers => Some(Refusal::Unknown),
            None if at_limit => Some(Refusal::TooMany),
            None => None,
        };
        let mut last: Option<(&str, Option<Refusal>)> = None;
        // Unknown metrics are counted by name once per run of one name: one lock per run.
        let mut unknown_run: Option<(&str, u64)> = None;
        batch.retain(|sample| {
            let name = sample.key.metric;
            let refusal = match last {
                _ if !lookup => None,
                Some((last_name, refusal)) if same_text(last_name, name) => refusal,
                _ => metric_refusal(name),
            };
            last = Some((name, refusal));
            // The order of `write`'s checks, so that a sample is counted under one reason.
            if refusal == Some(Refusal::Unknown) {
                dropped.unknown_metric += 1;
                match &mut unknown_run {
                    Some((run_name, count)) if same_text(run_name, name) => *count += 1,
                    run => {
                        if let Some((run_name, count)) = run.replace((name, 1)) {
                            self.count_unknown_metric(run_name, count);
                        }
                    }
                }
                return false;
            }
            if sample.timestamp_s < oldest_s {
                dropped.outside_retention += 1;
                return false;
            }
            if !archived.is_empty() {
                let cluster = sample.key.cluster;
                let until = match floor {
                    Some((last, until)) if same_text(last, cluster) => until,
                    _ => archived.get(cluster).copied().unwrap_or(i64::MIN),
                };
                floor = Some((cluster, until));
                if sample.timestamp_s < until {
                    dropped.archived += 1;
                    return false;
                }
            }
            if sample.timestamp_s > newest_s {
                dropped.future += 1;
                return false;
            }
            if refusal == Some(Refusal::TooMany) {
                dropped.too_many_metrics += 1;
                return false;
            }
            true
        });
        if let Some((name, count)) = unknown_run {
            self.count_unknown_metric(name, count);
        }
        dropped
    }

    /// Refuses, from now on, writes to `cluster` below `until_s` ([`Store::admit`]): the end of
    /// what the cluster has archived, whose files are written and would never hold them.
    pub fn set_archived_until(&self, cluster: &str, until_s: i64) {
        self.archived_until.write().insert(cluster.into(), until_s);
    }

    /// Applies a batch. `now_s` is the current time, for the retention and future bounds.
    ///
    /// Every check of [`Store::admit`] is made here too: replay and import apply batches
    /// that were never admitted (and a replayed sample may have aged out since it was
    /// logged). On the live path the batch was admitted with the same `now_s`, so those
    /// checks find nothing and no sample is counted twice.
    ///
    /// Checks, in this order, each dropping the sample under its reason: the metric is not
    /// configured; the sample is outside `[now − retention, now + future tolerance]`; the
    /// metric is new beyond [`StoreLimits::metrics_max`]; then the tree's limits. A metric is
    /// registered by its first sample inside the window, never by one that is dropped.
    pub fn write(&self, batch: &WriteBatch, now_s: i64) -> WriteReport {
        self.write_from(batch, now_s, now_s - self.config.retention_s)
    }

    /// [`Store::write`] that keeps samples down to `oldest_s` instead of `now − retention`
    /// (older ones are dropped as outside retention). For replaying the write-ahead log in
    /// archive mode: after a downtime longer than the retention, the log still holds samples
    /// that were never archived, and they must come back to be archived, not be dropped.
    pub fn write_from(&self, batch: &WriteBatch, now_s: i64, oldest_s: i64) -> WriteReport {
        let newest_s = now_s + self.config.future_tolerance_s;
        let metrics = self.resolve_metrics(batch, oldest_s..=newest_s);
        let registers = self.registers_metrics();
        let full = self.memory_full();
        let limits = if full {
            // Nothing new, but data already in the store still takes samples.
            StoreLimits {
                hosts_per_cluster_max: 0,
                series_per_host_max: 0,
                children_per_level_max: 0,
                ..self.config.limits
            }
        } else {
            self.config.limits
        };
        let mut report = WriteReport::default();
        let mut delta = MemoryDelta::default();
        // The host being written, by names and key; `None` inside when the host limit
        // refused it.
        let mut current: Option<(HostNames<'_>, Option<HostGuard>)> = None;
        // Where the previous sample's levels and series were found.
        let (mut level_hints, mut series_hint) = ([Hint::default(); 2], Hint::default());
        for ((names, sample), metric) in batch.iter_named(0).zip(metrics) {
            // (Under auto-registration `Unknown` means outside the window, not registered.)
            if metric == Err(Refusal::Unknown) && !registers {
                report.dropped.unknown_metric += 1;
                self.count_unknown_metric(sample.key.metric, 1);
                continue;
            }
            if sample.timestamp_s < oldest_s {
                report.dropped.outside_retention += 1;
                continue;
            }
            if sample.timestamp_s > newest_s {
                report.dropped.future += 1;
                continue;
            }
            // Inside the window a metric is known, registered, or refused by the limit.
            let Ok((metric, frequency_s)) = metric else {
                report.dropped.too_many_metrics += 1;
                continue;
            };
            let key = (sample.key.cluster, sample.key.host);
            let same_host = current.as_ref().is_some_and(|((n, k), _)| {
                n.same_host(&names) || (same_text(key.0, k.0) && same_text(key.1, k.1))
            });
            if !same_host {
                // Release the previous host before locking the next one: a writer holds at most
                // one host lock, so two writers can never wait for each other.
                drop(current.take());
                let guard = self.lock_host(key.0, key.1, limits.hosts_per_cluster_max);
                current = Some(((names, key), guard));
            }
            let Some((_, Some(guard))) = current.as_mut() else {
                count_refusal(&mut report.dropped, full, |d| &mut d.too_many_hosts);
                continue;
            };
            let may_create = guard.series < limits.series_per_host_max;
            let mut created = MemoryDelta::default();
            let path = sample.key.path();
            let t = sample.timestamp_s;
            let children_max = limits.children_per_level_max;
            let written: Result<_, Limit> = match descend(
                &mut guard.root,
                path,
                children_max,
                &mut created,
                &mut level_hints,
            ) {
                None => Err(|d| &mut d.too_many_children),
                Some(level) => level
                    .write_near(
                        metric,
                        frequency_s,
                        (t, sample.value),
                        &self.pool,
                        may_create,
                        &mut series_hint,
                    )
                    .ok_or(|d| &mut d.too_many_series),
            };
            // Levels created on the way count even when the sample is refused.
            guard.add_structure(created);
            delta += created;
            let written = match written {
                Ok(written) => written,
                Err(limit) => {
                    count_refusal(&mut report.dropped, full, limit);
                    continue;
                }
            };
            guard.series += usize::from(written.new_series);
            guard.add_structure(written.memory);
            report.written += 1;
            delta += written.memory;
        }
        drop(current);
        self.memory.apply(delta);
        if delta.structure > 0 {
            self.check_ceiling();
        }
        report
    }

    /// Makes the store full if it is past the ceiling ([`CEILING_DIVISOR`]).
    fn check_ceiling(&self) {
        let cap = self.memory.cap_bytes.load(Ordering::Relaxed);
        if cap > 0 && self.memory_bytes() > cap.saturating_add(cap / CEILING_DIVISOR) {
            self.memory.full.store(true, Ordering::Relaxed);
        }
    }

    /// Looks up the metric of every sample under one registry lock, registering new ones
    /// when auto-registration is on, for samples inside `window_s` only. The metric of a
    /// sample outside it is left [`Refusal::Unknown`] when not registered: `write` drops
    /// such a sample for its time.
    fn resolve_metrics(
        &self,
        batch: &WriteBatch,
        window_s: std::ops::RangeInclusive<i64>,
    ) -> Vec<Result<(MetricId, i64), Refusal>> {
        let mut resolved = Vec::with_capacity(batch.len());
        let mut missing = false;
        {
            let registry = self.registry.read();
            let mut last: Option<(SampleNames, &str, Resolved)> = None;
            for (names, sample) in batch.iter_named(0) {
                let name = sample.key.metric;
                let found = match last {
                    Some((last_names, last_name, found))
                        if last_names.same_metric(&names) || same_text(last_name, name) =>
                    {
                        found
                    }
                    _ => registry.get(name).map(|(id, c)| (id, c.frequency_s)),
                };
                missing |= found.is_none();
                last = Some((names, name, found));
                resolved.push(found.ok_or(Refusal::Unknown));
            }
            if !missing || !registry.auto_registers() {
                return resolved;
            }
        }
        let mut registry = self.registry.write();
        for (sample, slot) in batch.iter().zip(resolved.iter_mut()) {
            if slot.is_err() && window_s.contains(&sample.timestamp_s) {
                *slot = registry
                    .register(sample.key.metric, true)
                    .map(|(id, c)| (id, c.frequency_s));
            }
        }
        resolved
    }

    fn count_unknown_metric(&self, name: &str, samples: u64) {
        let mut counts = self.unknown_metrics.lock();
        if let Some(count) = counts.get_mut(name) {
            *count += samples;
        } else if counts.len() < UNKNOWN_METRIC_NAMES_MAX {
            counts.insert(name.to_owned(), samples);
        } else {
            *counts.entry(OTHER_METRICS.to_owned()).or_default() += samples;
        }
    }

    /// Samples dropped because their metric is not configured, by metric name.
    pub fn unknown_metric_counts(&self) -> Vec<(String, u64)> {
        let mut counts: Vec<_> = self
            .unknown_metrics
            .lock()
            .iter()
            .map(|(name, count)| (name.clone(), *count))
            .collect();
        counts.sort();
        counts
    }

    pub(crate) fn add_memory(&self, delta: MemoryDelta) {
        self.memory.apply(delta);
    }

    /// The write lock of a host's tree, creating the host if needed (unless its cluster has
    /// `hosts_max` hosts: then `None`); never of a retired host.
    pub(crate) fn lock_host(
        &self,
        cluster: &str,
        host: &str,
        hosts_max: usize,
    ) -> Option<HostGuard> {
        loop {
            let found = self.host_or_insert(cluster, host, hosts_max)?;
            let guard = found.write_arc();
            if !guard.retired {
                return Some(guard);
            }
        }
    }

    fn host_or_insert(&self, cluster: &str, host: &str, hosts_max: usize) -> Option<Host> {
        if let Some(found) = self.host(cluster, host) {
            return Some(found);
        }
        if hosts_max == 0 {
            // Nothing may be created: not even the cluster.
            return None;
        }
        // Cluster and host are created under the cluster map's write lock, which pruning also
        // holds: a cluster is never seen empty (and removed) between the two inserts.
        let mut clusters = self.clusters.write();
        let cluster = match clusters.get(cluster) {
            Some(found) => found,
            None => {
                self.memory.add_structure(map_entry::<Cluster>(cluster));
                clusters.entry(cluster.into()).or_default()
            }
        };
        let mut hosts = cluster.hosts.write();
        if let Some(found) = hosts.get(host) {
            return Some(found.clone());
        }
        if hosts.len() >= hosts_max {
            return None;
        }
        self.memory
            .add_structure(map_entry::<RwLock<HostTree>>(host));
        Some(hosts.entry(host.into()).or_default().clone())
    }

    pub(crate) fn cluster(&self, cluster: &str) -> Option<Arc<Cluster>> {
        self.clusters.read().get(cluster).cloned()
    }

    pub(crate) fn host(&self, cluster: &str, host: &str) -> Option<Host> {
        self.cluster(cluster)?.hosts.read().get(host).cloned()
    }

    /// The clusters, sorted by name.
    pub fn clusters(&self) -> Vec<String> {
        self.clusters
            .read()
            .keys()
            .map(|name| name.to_string())
            .collect()
    }

    /// The hosts of `cluster`, sorted by name.
    pub fn hosts(&self, cluster: &str) -> Vec<String> {
        self.cluster(cluster)
            .map(|c| c.hosts.read().keys().map(|h| h.to_string()).collect())
            .unwrap_or_default()
    }

    /// How many hosts `cluster` has, or all clusters together; cheap (no host is visited).
    pub fn host_count(&self, cluster: Option<&str>) -> usize {
        let clusters: Vec<Arc<Cluster>> = match cluster {
            Some(name) => self.cluster(name).into_iter().collect(),
            None => self.clusters.read().values().cloned().collect(),
        };
        clusters.iter().map(|c| c.hosts.read().len()).sum()
    }

    /// `POST /api/free`: frees every buffer below `selector` (cluster, host, sub-levels; empty
    /// = everything) whose end is before `before_s`, and prunes what is left empty. Returns
    /// the number of buffers freed. Unlike cc-metric-store, an unknown selector creates nothing.
    pub fn free(&self, selector: &[&str], before_s: i64) -> usize {
        let free = |level: &mut Level| level.free_before(before_s, &self.pool);
        let freed = match selector {
            [] => self.each_host(None, free),
            [cluster] => self.each_host(Some(cluster), free),
            [cluster, host, path @ ..] => match self.host(cluster, host) {
                Some(found) => free_host(&found, path, free),
                None => return 0,
            },
        };
        self.memory.release(freed);
        self.prune_empty_hosts();
        freed.buffers
    }

    /// Retention: frees everything that ended before `cutoff_s` and trims the buffer pool to
    /// what the next pass is likely to need.
    pub fn free_before(&self, cutoff_s: i64) -> usize {
        let freed = self.free(&[], cutoff_s);
        self.pool.shrink_to(freed);
        freed
    }

    /// Seals the raw tails of buffers that got no new slot for a while
    /// (`IDLE_SEAL_STEPS` steps of their series' frequency before `now_s`), so series that
    /// stopped keep only encoded blocks. Maintenance calls it with retention. Returns the bytes
    /// it saved.
    pub fn seal_idle(&self, now_s: i64) -> u64 {
        let clusters: Vec<Arc<Cluster>> = self.clusters.read().values().cloned().collect();
        let mut change = 0;
        for cluster in clusters {
            let hosts: Vec<Host> = cluster.hosts.read().values().cloned().collect();
            for host in hosts {
                change += host.write().root.seal_idle(now_s);
            }
        }
        self.memory.apply(MemoryDelta {
            bytes: change,
            ..MemoryDelta::default()
        });
        change.min(0).unsigned_abs() as u64
    }

    /// Enforces a memory cap on the store's buffers and structure (COMPAT.md §3.5, decision
    /// 10): frees data older than 75 %, 50 %, then 25 % of the retention window (hosts and
    /// series left empty go with it), and as a last resort the oldest buffer of every series,
    /// until the store fits. When it still does not (the head buffers and the tree alone
    /// exceed the cap, e.g. a million tiny hosts), the store is *full* until a later pass
    /// finds it under the cap: new hosts, levels and series are refused, counted as dropped
    /// for `memory_cap`, while the series it holds still take samples. Returns what was freed.
    ///
    /// Between passes, a write that creates names makes the store full as soon as it is a
    /// tenth over the cap ([`CEILING_DIVISOR`]), so that the next pass decides.
    pub fn enforce_memory_cap(&self, cap_bytes: u64, now_s: i64) -> MemoryCapOutcome {
        self.memory.cap_bytes.store(cap_bytes, Ordering::Relaxed);
        let mut outcome = self.free_to_cap(cap_bytes, now_s);
        self.memory
            .full
            .store(outcome.still_over, Ordering::Relaxed);
        outcome.was_over = self
            .memory
            .pass_over
            .swap(outcome.still_over, Ordering::Relaxed);
        outcome
    }

    /// Whether new hosts, levels and series are refused because the memory cap cannot be met
    /// ([`Store::enforce_memory_cap`]).
    pub fn memory_full(&self) -> bool {
        self.memory.full.load(Ordering::Relaxed)
    }

    fn free_to_cap(&self, cap_bytes: u64, now_s: i64) -> MemoryCapOutcome {
        let mut outcome = MemoryCapOutcome::default();
        if self.memory_bytes() <= cap_bytes {
            return outcome;
        }
        self.pool.shrink_to(0);
        let retention = self.config.retention_s;
        for keep in [retention * 3 / 4, retention / 2, retention / 4] {
            if self.memory_bytes() <= cap_bytes {
                return outcome;
            }
            outcome.buffers += self.free(&[], now_s - keep);
            outcome.steps += 1;
        }
        while self.memory_bytes() > cap_bytes {
            let freed = self.each_host(None, |level| level.free_oldest(&self.pool));
            self.memory.release(freed);
            self.pool.shrink_to(0);
            outcome.steps += 1;
            if freed.buffers == 0 {
                // Only head buffers and the tree are left: they alone exceed the cap.
                outcome.still_over = true;
                break;
            }
            outcome.buffers += freed.buffers;
        }
        outcome
    }

    /// Heap bytes the store holds: buffers, pooled allocations and the tree's structure —
    /// what the memory cap bounds.
    pub fn memory_bytes(&self) -> u64 {
        let buffers = self.memory.buffer_bytes.load(Ordering::Relaxed).max(0) as u64;
        buffers + self.pool.bytes() as u64 + self.structure_bytes()
    }

    /// Heap bytes of the tree itself: the cluster and host maps, each host's lock and levels,
    /// the levels' vectors, names and indexes, the series (their inline head buffer
    /// included, not its data), the allocator's overhead of every buffer and the metric
    /// registry. Kept incrementally as each part is
    /// created or removed; an estimate of what the allocator holds ([`crate::memory`]).
    pub fn structure_bytes(&self) -> u64 {
        let tree = self.memory.structure_bytes.load(Ordering::Relaxed).max(0) as u64;
        let buffers = self.memory.buffers.load(Ordering::Relaxed).max(0) as u64;
        let headers = buffers * BUFFER_ALLOCATION_OVERHEAD as u64;
        tree + headers + self.registry.read().heap_bytes() as u64
    }

    /// Runs `action` on the root level of every host (of one cluster, or of all).
    fn each_host(
        &self,
        cluster: Option<&str>,
        mut action: impl FnMut(&mut Level) -> FreeOutcome,
    ) -> FreeOutcome {
        let clusters: Vec<Arc<Cluster>> = match cluster {
            Some(name) => self.cluster(name).into_iter().collect(),
            None => self.clusters.read().values().cloned().collect(),
        };
        let mut total = FreeOutcome::default();
        for cluster in clusters {
            let hosts: Vec<Host> = cluster.hosts.read().values().cloned().collect();
            for host in hosts {
                total += free_host(&host, &[], &mut action);
            }
        }
        total
    }

    /// Removes hosts left without data, and clusters left without hosts.
    fn prune_empty_hosts(&self) {
        let mut freed = 0;
        let mut clusters = self.clusters.write();
        clusters.retain(|name, cluster| {
            let mut hosts = cluster.hosts.write();
            hosts.retain(|name, host| {
                // A host being written right now is kept; it is not empty for long.
                let Some(mut tree) = host.try_write() else {
                    return true;
                };
                if !tree.root.is_empty() {
                    return true;
                }
                tree.retired = true;
                freed += map_entry::<RwLock<HostTree>>(name) + tree.structure;
                false
            });
            if !hosts.is_empty() {
                return true;
            }
            freed += map_entry::<Cluster>(name);
            false
        });
        self.memory.release_structure(freed);
    }

    pub fn stats(&self) -> StoreStats {
        let clusters: Vec<Arc<Cluster>> = self.clusters.read().values().cloned().collect();
        let mut stats = StoreStats {
            clusters: clusters.len(),
            metrics: self.registry.read().len(),
            buffers: self.memory.buffers.load(Ordering::Relaxed).max(0) as u64,
            buffer_bytes: self.memory.buffer_bytes.load(Ordering::Relaxed).max(0) as u64,
            pool_bytes: self.pool.bytes() as u64,
            structure_bytes: self.structure_bytes(),
            memory_full: self.memory_full(),
            ..StoreStats::default()
        };
        for cluster in clusters {
            let hosts: Vec<Host> = cluster.hosts.read().values().cloned().collect();
            stats.hosts += hosts.len();
            for host in hosts {
                let tree = host.read();
                let (series, samples) = tree.root.census();
                debug_assert_eq!(series, tree.series, "series count");
                debug_assert_eq!(tree.root.structure_bytes(), tree.structure, "structure");
                stats.series += series;
                stats.samples += samples as u64;
                let (encoded, tail) = crate::inspect::data_split(&tree.root);
                stats.encoded_bytes += encoded;
                stats.tail_bytes += tail;
            }
        }
        stats
    }
}

/// What [`Store::enforce_memory_cap`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MemoryCapOutcome {
    pub buffers: usize,
    /// Free passes made (0 = under the cap already).
    pub steps: usize,
    /// The cap could not be met without dropping live head buffers: the store is full.
    pub still_over: bool,
    /// The previous pass could not meet the cap either (so a change of `still_over` is news).
    pub was_over: bool,
}
