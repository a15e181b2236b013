//! The store: clusters → hosts → level trees, and the operations that span them.
//!
//! Locking: each host's tree has its own `RwLock`, so writers and readers of different hosts
//! never wait for each other. The cluster and host maps are read-locked only to find a host
//! (and write-locked only to add one: both at once, as pruning locks them). The metric
//! registry is read once per batch, before any host lock is taken, so the lock order is always
//! registry → maps → host.

use crate::batch::WriteBatch;
use crate::buffer::{FreeOutcome, MemoryDelta};
use crate::fxhash::same_text;
use crate::level::Level;
use crate::metric::{MetricConfig, MetricId, Refusal, Registry};
use crate::pool::BufferPool;
use parking_lot::{ArcRwLockWriteGuard, RawRwLock, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

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
    pub fn reasons(&self) -> [(&'static str, usize); 7] {
        [
            ("unknown_metric", self.unknown_metric),
            ("outside_retention", self.outside_retention),
            ("future", self.future),
            ("too_many_metrics", self.too_many_metrics),
            ("too_many_hosts", self.too_many_hosts),
            ("too_many_series", self.too_many_series),
            ("too_many_children", self.too_many_children),
        ]
    }
}

/// The level at `path` below `root`, creating missing levels within the children limit.
fn descend<'l, 'p>(
    mut level: &'l mut Level,
    path: impl Iterator<Item = &'p str>,
    limits: StoreLimits,
) -> Option<&'l mut Level> {
    for name in path {
        level = level.child_or_insert(name, limits.children_per_level_max)?;
    }
    Some(level)
}

/// Totals of the store's own memory, kept exact on every change.
#[derive(Debug, Default)]
struct Memory {
    buffer_bytes: AtomicI64,
    buffers: AtomicI64,
}

impl Memory {
    fn apply(&self, delta: MemoryDelta) {
        self.buffer_bytes
            .fetch_add(delta.bytes as i64, Ordering::Relaxed);
        self.buffers
            .fetch_add(delta.buffers as i64, Ordering::Relaxed);
    }

    fn release(&self, freed: FreeOutcome) {
        self.buffer_bytes
            .fetch_sub(freed.bytes as i64, Ordering::Relaxed);
        self.buffers
            .fetch_sub(freed.buffers as i64, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Cluster {
    pub(crate) hosts: RwLock<BTreeMap<Box<str>, Arc<Host>>>,
}

#[derive(Debug, Default)]
pub(crate) struct Host {
    /// Behind its own `Arc` so a writer can hold the lock while it walks a batch.
    pub(crate) root: Arc<RwLock<Level>>,
    /// Set, under the write lock, when pruning removes the host from its cluster. A writer
    /// that found the host before that checks it once it holds the lock, and starts over,
    /// so no sample is written into a host that is no longer in the tree.
    retired: std::sync::atomic::AtomicBool,
    /// Series in the tree, for [`StoreLimits::series_per_host_max`]; changed only under the
    /// write lock.
    series: AtomicUsize,
}

impl Host {
    /// Runs a free pass on the level at `path` (if it exists) and keeps the series count.
    fn free(&self, path: &[&str], action: impl FnOnce(&mut Level) -> FreeOutcome) -> FreeOutcome {
        let mut root = self.root.write();
        let mut level: &mut Level = &mut root;
        for name in path {
            match level.child_mut(name) {
                Some(child) => level = child,
                None => return FreeOutcome::default(),
            }
        }
        let outcome = action(level);
        self.series.fetch_sub(outcome.series, Ordering::Relaxed);
        outcome
    }
}

/// A host's write lock, with the host (for its series count).
pub(crate) struct HostGuard {
    host: Arc<Host>,
    pub(crate) root: ArcRwLockWriteGuard<RawRwLock, Level>,
}

impl HostGuard {
    /// Counts series that a write or import added.
    pub(crate) fn add_series(&self, count: usize) {
        self.host.series.fetch_add(count, Ordering::Relaxed);
    }
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
    /// Heap bytes of the buffers' sample arrays.
    pub buffer_bytes: u64,
    /// Heap bytes of freed buffers kept for reuse.
    pub pool_bytes: u64,
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
}

/// Most distinct unknown metric names counted by name (a bound on `/metrics` label values).
const UNKNOWN_METRIC_NAMES_MAX: usize = 100;

/// The name under which unknown metrics beyond the bound are counted.
pub const OTHER_METRICS: &str = "(other)";

impl Store {
    pub fn new(config: StoreConfig) -> Self {
        let auto = config.metrics.is_empty().then_some(config.default_metric);
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
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Applies a batch. `now_s` is the current time, for the retention and future bounds.
    pub fn write(&self, batch: &WriteBatch, now_s: i64) -> WriteReport {
        let metrics = self.resolve_metrics(batch);
        let oldest_s = now_s - self.config.retention_s;
        let newest_s = now_s + self.config.future_tolerance_s;
        let limits = self.config.limits;
        let mut report = WriteReport::default();
        let mut delta = MemoryDelta::default();
        // The host being written, by key; `None` inside when the host limit refused it.
        let mut current: Option<((&str, &str), Option<HostGuard>)> = None;
        for (sample, metric) in batch.iter().zip(metrics) {
            let (metric, frequency_s) = match metric {
                Ok(found) => found,
                Err(Refusal::Unknown) => {
                    report.dropped.unknown_metric += 1;
                    self.count_unknown_metric(sample.key.metric);
                    continue;
                }
                Err(Refusal::TooMany) => {
                    report.dropped.too_many_metrics += 1;
                    continue;
                }
            };
            if sample.timestamp_s < oldest_s {
                report.dropped.outside_retention += 1;
                continue;
            }
            if sample.timestamp_s > newest_s {
                report.dropped.future += 1;
                continue;
            }
            let key = (sample.key.cluster, sample.key.host);
            let same_host = current
                .as_ref()
                .is_some_and(|(k, _)| same_text(key.0, k.0) && same_text(key.1, k.1));
            if !same_host {
                // Release the previous host before locking the next one: a writer holds at most
                // one host lock, so two writers can never wait for each other.
                drop(current.take());
                let guard = self.lock_host(key.0, key.1, limits.hosts_per_cluster_max);
                current = Some((key, guard));
            }
            let Some((_, Some(guard))) = current.as_mut() else {
                report.dropped.too_many_hosts += 1;
                continue;
            };
            let Some(level) = descend(&mut guard.root, sample.key.path(), limits) else {
                report.dropped.too_many_children += 1;
                continue;
            };
            let series = guard.host.series.load(Ordering::Relaxed);
            let may_create = series < limits.series_per_host_max;
            let t = sample.timestamp_s;
            let Some(written) =
                level.write(metric, frequency_s, t, sample.value, &self.pool, may_create)
            else {
                report.dropped.too_many_series += 1;
                continue;
            };
            guard.add_series(usize::from(written.new_series));
            report.written += 1;
            delta += written.memory;
        }
        drop(current);
        self.memory.apply(delta);
        report
    }

    /// Looks up the metric of every sample under one registry lock, registering new ones
    /// when auto-registration is on.
    fn resolve_metrics(&self, batch: &WriteBatch) -> Vec<Result<(MetricId, i64), Refusal>> {
        let mut resolved = Vec::with_capacity(batch.len());
        let mut missing = false;
        {
            let registry = self.registry.read();
            let mut last: Option<(&str, Option<(MetricId, i64)>)> = None;
            for sample in batch.iter() {
                let name = sample.key.metric;
                let found = match last {
                    Some((last_name, found)) if same_text(last_name, name) => found,
                    _ => registry.get(name).map(|(id, c)| (id, c.frequency_s)),
                };
                missing |= found.is_none();
                last = Some((name, found));
                resolved.push(found.ok_or(Refusal::Unknown));
            }
            if !missing || !registry.auto_registers() {
                return resolved;
            }
        }
        let mut registry = self.registry.write();
        for (sample, slot) in batch.iter().zip(resolved.iter_mut()) {
            if slot.is_err() {
                *slot = registry
                    .register(sample.key.metric, true)
                    .map(|(id, c)| (id, c.frequency_s));
            }
        }
        resolved
    }

    fn count_unknown_metric(&self, name: &str) {
        let mut counts = self.unknown_metrics.lock();
        if let Some(count) = counts.get_mut(name) {
            *count += 1;
        } else if counts.len() < UNKNOWN_METRIC_NAMES_MAX {
            counts.insert(name.to_owned(), 1);
        } else {
            *counts.entry(OTHER_METRICS.to_owned()).or_default() += 1;
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
            let root = found.root.write_arc();
            if !found.retired.load(Ordering::Acquire) {
                return Some(HostGuard { host: found, root });
            }
        }
    }

    fn host_or_insert(&self, cluster: &str, host: &str, hosts_max: usize) -> Option<Arc<Host>> {
        if let Some(found) = self.host(cluster, host) {
            return Some(found);
        }
        // Cluster and host are created under the cluster map's write lock, which pruning also
        // holds: a cluster is never seen empty (and removed) between the two inserts.
        let mut clusters = self.clusters.write();
        let cluster = clusters.entry(cluster.into()).or_default();
        let mut hosts = cluster.hosts.write();
        if let Some(found) = hosts.get(host) {
            return Some(found.clone());
        }
        if hosts.len() >= hosts_max {
            return None;
        }
        Some(hosts.entry(host.into()).or_default().clone())
    }

    pub(crate) fn cluster(&self, cluster: &str) -> Option<Arc<Cluster>> {
        self.clusters.read().get(cluster).cloned()
    }

    pub(crate) fn host(&self, cluster: &str, host: &str) -> Option<Arc<Host>> {
        self.cluster(cluster)?.hosts.read().get(host).cloned()
    }

    /// The hosts of `cluster`, sorted by name.
    pub fn hosts(&self, cluster: &str) -> Vec<String> {
        self.cluster(cluster)
            .map(|c| c.hosts.read().keys().map(|h| h.to_string()).collect())
            .unwrap_or_default()
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
                Some(found) => found.free(path, free),
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

    /// Enforces a memory cap on the store's own buffers (COMPAT.md §3.5, decision 10): frees
    /// data older than 75 %, 50 %, then 25 % of the retention window, and as a last resort the
    /// oldest buffer of every series, until the buffers fit. Returns what was freed.
    pub fn enforce_memory_cap(&self, cap_bytes: u64, now_s: i64) -> MemoryCapOutcome {
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
                // Only head buffers are left: the live data alone exceeds the cap.
                outcome.still_over = true;
                break;
            }
            outcome.buffers += freed.buffers;
        }
        outcome
    }

    /// Heap bytes the store holds for samples: buffers plus pooled allocations.
    pub fn memory_bytes(&self) -> u64 {
        let buffers = self.memory.buffer_bytes.load(Ordering::Relaxed).max(0) as u64;
        buffers + self.pool.bytes() as u64
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
            let hosts: Vec<Arc<Host>> = cluster.hosts.read().values().cloned().collect();
            for host in hosts {
                total += host.free(&[], &mut action);
            }
        }
        total
    }

    /// Removes hosts left without data, and clusters left without hosts.
    fn prune_empty_hosts(&self) {
        let mut clusters = self.clusters.write();
        clusters.retain(|_, cluster| {
            let mut hosts = cluster.hosts.write();
            hosts.retain(|_, host| {
                // A host being written right now is kept; it is not empty for long.
                let Some(root) = host.root.try_write() else {
                    return true;
                };
                if !root.is_empty() {
                    return true;
                }
                host.retired.store(true, Ordering::Release);
                false
            });
            !hosts.is_empty()
        });
    }

    pub fn stats(&self) -> StoreStats {
        let clusters: Vec<Arc<Cluster>> = self.clusters.read().values().cloned().collect();
        let mut stats = StoreStats {
            clusters: clusters.len(),
            metrics: self.registry.read().len(),
            buffers: self.memory.buffers.load(Ordering::Relaxed).max(0) as u64,
            buffer_bytes: self.memory.buffer_bytes.load(Ordering::Relaxed).max(0) as u64,
            pool_bytes: self.pool.bytes() as u64,
            ..StoreStats::default()
        };
        for cluster in clusters {
            let hosts: Vec<Arc<Host>> = cluster.hosts.read().values().cloned().collect();
            stats.hosts += hosts.len();
            for host in hosts {
                let (series, samples) = host.root.read().census();
                debug_assert_eq!(series, host.series.load(Ordering::Relaxed), "series count");
                stats.series += series;
                stats.samples += samples as u64;
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
    /// The cap could not be met without dropping live head buffers.
    pub still_over: bool,
}
