//! Copies of a host's data in and out of the store: what snapshots write and restore, and
//! what `strata import` brings in from cc-metric-store checkpoints.

use crate::buffer::{BUFFER_CAPACITY, MemoryDelta, Series, run_samples};
use crate::fxhash::FxBuildHasher;
use crate::level::{Level, Written};
use crate::metric::{MetricConfig, MetricId};
use crate::store::Store;
use std::collections::HashMap;

/// One host's data.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostImage {
    pub cluster: String,
    pub host: String,
    pub root: LevelImage,
}

/// One level: its series and its children.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LevelImage {
    pub series: Vec<SeriesImage>,
    pub children: Vec<(String, LevelImage)>,
}

/// One series: runs of consecutive slots, sorted by start and not overlapping.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesImage {
    pub metric: String,
    pub frequency_s: i64,
    pub runs: Vec<Run>,
}

/// Consecutive slots from `start_s` (the start of the first slot, not its sample time).
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub start_s: i64,
    pub values: Vec<f32>,
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    pub series: usize,
    /// Slots taken over (NaN-filled gaps included).
    pub slots: usize,
    /// Series of metrics the configuration does not know.
    pub unknown_metric_series: usize,
    /// Series stored at a frequency other than the configured one; resampled onto it (see
    /// [`Store::import_host`]).
    pub frequency_mismatches: usize,
}

impl Store {
    /// The `(cluster, host)` pairs in the store, sorted.
    pub fn host_keys(&self) -> Vec<(String, String)> {
        let clusters: Vec<_> = self
            .clusters
            .read()
            .iter()
            .map(|(name, cluster)| (name.to_string(), cluster.clone()))
            .collect();
        let mut keys = Vec::new();
        for (cluster_name, cluster) in clusters {
            for host in cluster.hosts.read().keys() {
                keys.push((cluster_name.clone(), host.to_string()));
            }
        }
        keys
    }

    /// A copy of one host's data. The host is read-locked only while its buffers are copied.
    pub fn export_host(&self, cluster: &str, host: &str) -> Option<HostImage> {
        let found = self.host(cluster, host)?;
        let registry = self.registry.read();
        let tree = found.read();
        let root = &tree.root;
        Some(HostImage {
            cluster: cluster.to_owned(),
            host: host.to_owned(),
            root: export_level(root, &|id| {
                registry.config(id).map(|(name, _)| name.to_owned())
            }),
        })
    }

    /// Adds a host's data. A series new to the store takes the runs as its buffers (runs of at
    /// most [`BUFFER_CAPACITY`] values are moved in, not copied); a series that exists gets the
    /// values written one by one (NaN slots skipped), so importing never loses what the store
    /// already holds.
    ///
    /// A series stored at another frequency than its metric's configured one (the
    /// configuration changed since the snapshot) is resampled onto the configured frequency:
    /// each value is written at its sample time, as if it arrived again. Going finer leaves
    /// the new slots between old samples empty; going coarser keeps the last value of each
    /// new slot, as repeated writes to one slot do. So every series of a metric has the
    /// metric's frequency, which is what queries read it with and aggregate it at, and new
    /// samples land on the new grid.
    pub fn import_host(&self, image: HostImage) -> ImportReport {
        let mut report = ImportReport::default();
        let mut resolved = HashMap::default();
        collect_metric_names(&image.root, &mut resolved);
        {
            let mut registry = self.registry.write();
            for (name, slot) in &mut resolved {
                *slot = registry.register(name, false).ok();
            }
        }
        // Loading data accepted before is not limited (see `StoreLimits`).
        let Some(mut guard) = self.lock_host(&image.cluster, &image.host, usize::MAX) else {
            return report;
        };
        let mut delta = MemoryDelta::default();
        let mut new_series = 0;
        import_level(
            &mut guard.root,
            image.root,
            &mut delta,
            &mut |level, series, delta| {
                let Some(&Some((id, config))) = resolved.get(series.metric.as_str()) else {
                    report.unknown_metric_series += 1;
                    return;
                };
                if config.frequency_s != series.frequency_s {
                    report.frequency_mismatches += 1;
                }
                report.series += 1;
                report.slots += series.runs.iter().map(|r| r.values.len()).sum::<usize>();
                let written = level.import_series(id, config.frequency_s, series, &self.pool);
                *delta += written.memory;
                new_series += usize::from(written.new_series);
            },
        );
        guard.series += new_series;
        guard.add_structure(delta);
        drop(guard);
        self.add_memory(delta);
        report
    }
}

fn export_level(level: &Level, name_of: &dyn Fn(u32) -> Option<String>) -> LevelImage {
    LevelImage {
        series: level
            .all_series()
            .filter_map(|(id, series)| {
                Some(SeriesImage {
                    metric: name_of(id)?,
                    frequency_s: series.frequency_s(),
                    runs: series
                        .buffers()
                        .map(|b| Run {
                            start_s: b.start(),
                            values: b.values().to_vec(),
                        })
                        .collect(),
                })
            })
            .collect(),
        children: level
            .children_by_name()
            .into_iter()
            .map(|(name, child)| (name.to_owned(), export_level(child, name_of)))
            .collect(),
    }
}

/// Metric names of an image, each once (unresolved).
type Resolved = HashMap<String, Option<(MetricId, MetricConfig)>, FxBuildHasher>;

fn collect_metric_names(level: &LevelImage, names: &mut Resolved) {
    for series in &level.series {
        if !names.contains_key(&series.metric) {
            names.insert(series.metric.clone(), None);
        }
    }
    for (_, child) in &level.children {
        collect_metric_names(child, names);
    }
}

/// Walks `image` into `target`, creating levels (their bytes added to `delta`) and handing
/// each series to `each`.
fn import_level(
    target: &mut Level,
    image: LevelImage,
    delta: &mut MemoryDelta,
    each: &mut dyn FnMut(&mut Level, SeriesImage, &mut MemoryDelta),
) {
    for series in image.series {
        each(target, series, delta);
    }
    for (name, child) in image.children {
        if let Some(target) = target.child_or_insert(&name, usize::MAX, delta) {
            import_level(target, child, delta, each);
        }
    }
}

impl Level {
    /// Takes over or merges one series of a metric configured at `frequency_s`.
    fn import_series(
        &mut self,
        metric: u32,
        frequency_s: i64,
        image: SeriesImage,
        pool: &crate::pool::BufferPool,
    ) -> Written {
        let mut done = Written {
            memory: MemoryDelta::default(),
            new_series: false,
        };
        if !crate::FREQUENCY_S.contains(&image.frequency_s)
            || image.runs.iter().all(|r| r.values.is_empty())
        {
            return done;
        }
        if image.frequency_s != frequency_s || self.series(metric).is_some() {
            // Value by value at the configured frequency: merges into an existing series,
            // resamples one stored at another frequency.
            for run in &image.runs {
                for (t, value) in run_samples(run.start_s, image.frequency_s, &run.values) {
                    if let Some(written) = self.write(metric, frequency_s, t, value, pool, true) {
                        done.memory += written.memory;
                        done.new_series |= written.new_series;
                    }
                }
            }
            return done;
        }
        let mut buffers = Vec::new();
        for run in image.runs {
            if run.values.len() <= BUFFER_CAPACITY {
                buffers.push((run.start_s, run.values));
                continue;
            }
            for (k, chunk) in run.values.chunks(BUFFER_CAPACITY).enumerate() {
                let start = run.start_s + (k * BUFFER_CAPACITY) as i64 * image.frequency_s;
                buffers.push((start, chunk.to_vec()));
            }
        }
        let series = Series::adopt(image.frequency_s, buffers, pool);
        done.memory.bytes = series.buffers().map(|b| b.heap_bytes()).sum::<usize>() as isize;
        done.memory.buffers = series.buffers().count() as isize;
        done.new_series = true;
        done.memory.structure = self.insert_series(metric, series) as isize;
        done
    }
}
