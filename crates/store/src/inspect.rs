//! Read-only views of the tree: per-host health (COMPAT.md §3.6) and the debug dump (§1.7).

use crate::level::Level;
use crate::metric::{MetricId, Registry};
use crate::store::Store;
use std::fmt;

/// A buffer is stale when its newest slot is more than this many intervals old
/// (cc-metric-store's `MaxMissingDataPoints`).
const MISSING_POINTS_MAX: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Every expected metric is fresh.
    Full,
    /// Some expected metrics are stale or missing.
    Partial,
    /// No expected metric is fresh, or the host is unknown.
    Failed,
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full => "full",
            Self::Partial => "partial",
            Self::Failed => "failed",
        })
    }
}

/// The health of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostHealth {
    pub state: HealthState,
    /// `None` when the host does not exist.
    pub metrics: Option<MetricHealth>,
}

/// Expected metrics that are not healthy, in the order they were asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricHealth {
    /// Some buffer of the metric in the host's subtree is stale.
    pub degraded: Vec<String>,
    /// No buffer of the metric has data, or the metric is unknown.
    pub missing: Vec<String>,
}

enum Freshness {
    Missing,
    Healthy,
    Degraded,
}

/// One buffer chain in the debug dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugBuffer {
    pub start: i64,
    pub len: usize,
    pub end: i64,
    /// Blocks of 128 slots sealed (encoded), and their bytes with their length prefixes.
    pub sealed_blocks: usize,
    pub encoded_bytes: usize,
    /// Bytes of the raw float32 tail's slots.
    pub tail_bytes: usize,
}

/// One level of the debug dump.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DebugLevel {
    pub metrics: Vec<(String, Vec<DebugBuffer>)>,
    pub children: Vec<(String, DebugLevel)>,
}

impl Store {
    /// Health of `host` for the `expected` metrics at time `now_s`.
    pub fn health(&self, cluster: &str, host: &str, expected: &[String], now_s: i64) -> HostHealth {
        let Some(found) = self.host(cluster, host) else {
            return HostHealth {
                state: HealthState::Failed,
                metrics: None,
            };
        };
        let registry = self.registry.read();
        let tree = found.read();
        let root = &tree.root;
        let mut report = MetricHealth::default();
        for name in expected {
            let freshness = match registry.get(name) {
                None => Freshness::Missing,
                Some((id, _)) => freshness(root, id, now_s),
            };
            match freshness {
                Freshness::Missing => report.missing.push(name.clone()),
                Freshness::Degraded => report.degraded.push(name.clone()),
                Freshness::Healthy => {}
            }
        }
        let unhealthy = report.degraded.len() + report.missing.len();
        let state = if unhealthy == 0 {
            HealthState::Full
        } else if unhealthy == expected.len() {
            HealthState::Failed
        } else {
            HealthState::Partial
        };
        HostHealth {
            state,
            metrics: Some(report),
        }
    }

    /// The tree below `selector` (`[]` = all clusters, `[cluster]`, `[cluster, host, levels…]`),
    /// or `None` when the selector does not exist.
    pub fn debug(&self, selector: &[&str]) -> Option<DebugLevel> {
        let registry = self.registry.read();
        match selector {
            [] => {
                let clusters: Vec<_> = self
                    .clusters
                    .read()
                    .keys()
                    .map(|name| name.to_string())
                    .collect();
                let children = clusters
                    .into_iter()
                    .filter_map(|name| Some((name.clone(), self.debug_cluster(&name, &registry)?)))
                    .collect();
                Some(DebugLevel {
                    metrics: Vec::new(),
                    children,
                })
            }
            [cluster] => self.debug_cluster(cluster, &registry),
            [cluster, host, path @ ..] => {
                let found = self.host(cluster, host)?;
                let tree = found.read();
                let mut level: &Level = &tree.root;
                for name in path {
                    level = level.child(name)?;
                }
                Some(dump(level, &registry))
            }
        }
    }

    fn debug_cluster(&self, cluster: &str, registry: &Registry) -> Option<DebugLevel> {
        let hosts: Vec<_> = self
            .cluster(cluster)?
            .hosts
            .read()
            .iter()
            .map(|(name, host)| (name.to_string(), host.clone()))
            .collect();
        let children = hosts
            .into_iter()
            .map(|(name, host)| (name, dump(&host.read().root, registry)))
            .collect();
        Some(DebugLevel {
            metrics: Vec::new(),
            children,
        })
    }
}

/// The freshness of `metric` anywhere in the subtree of `level`.
fn freshness(level: &Level, metric: MetricId, now_s: i64) -> Freshness {
    let mut result = Freshness::Missing;
    if let Some(series) = level.series(metric) {
        let stale = now_s - series.newest_data_end() > MISSING_POINTS_MAX * series.frequency_s();
        if stale {
            return Freshness::Degraded;
        }
        result = Freshness::Healthy;
    }
    for (_, child) in level.children() {
        match freshness(child, metric, now_s) {
            Freshness::Degraded => return Freshness::Degraded,
            Freshness::Healthy => result = Freshness::Healthy,
            Freshness::Missing => {}
        }
    }
    result
}

/// The bytes of a subtree's buffers that are sealed blocks and raw tail slots (for
/// [`crate::StoreStats`]); the rest of their heap bytes is the tails' room.
pub(crate) fn data_split(level: &Level) -> (u64, u64) {
    let (mut encoded, mut tail) = (0, 0);
    for (_, series) in level.all_series() {
        for buffer in series.buffers() {
            encoded += buffer.encoded_bytes() as u64;
            tail += buffer.tail_bytes() as u64;
        }
    }
    for (_, child) in level.children() {
        let (more_encoded, more_tail) = data_split(child);
        encoded += more_encoded;
        tail += more_tail;
    }
    (encoded, tail)
}

fn dump(level: &Level, registry: &Registry) -> DebugLevel {
    let mut metrics: Vec<(String, Vec<DebugBuffer>)> = level
        .all_series()
        .filter_map(|(id, series)| {
            let (name, _) = registry.config(id)?;
            let f = series.frequency_s();
            let buffers = series
                .buffers()
                .map(|b| DebugBuffer {
                    start: b.start(),
                    len: b.len(),
                    end: b.end(f),
                    sealed_blocks: b.sealed_blocks(),
                    encoded_bytes: b.encoded_bytes(),
                    tail_bytes: b.tail_bytes(),
                })
                .collect();
            Some((name.to_owned(), buffers))
        })
        .collect();
    metrics.sort_by(|a, b| a.0.cmp(&b.0));
    let children = level
        .children_by_name()
        .into_iter()
        .map(|(name, child)| (name.to_owned(), dump(child, registry)))
        .collect();
    DebugLevel { metrics, children }
}
