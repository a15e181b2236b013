//! Copies of a host's data in and out of the store: what snapshots write and restore, and
//! what `strata import` brings in from cc-metric-store checkpoints.

use crate::block::{self, BLOCK_SLOTS, EncodeHint};
use crate::buffer::{BUFFER_CAPACITY, Buffer, MemoryDelta, Series, run_samples};
use crate::fxhash::FxBuildHasher;
use crate::level::{Level, Written};
use crate::metric::{MetricConfig, MetricId};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// Sample times [`SeriesImage::from_samples`] takes: unix seconds from 1970 to the end of
/// the year 9999. Archive files are input like any other: a row at `i64::MIN` next to one at
/// `i64::MAX` must not make the slot arithmetic of one series overflow.
pub const SAMPLE_TIME_S: std::ops::RangeInclusive<i64> = 0..=253_402_300_799;

/// One host's data: series of runs of values (`S = SeriesImage`), or of encoded blocks
/// ([`HostBlocks`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HostImage<S = SeriesImage> {
    pub cluster: String,
    pub host: String,
    pub root: LevelImage<S>,
}

/// One level: its series and its children.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelImage<S = SeriesImage> {
    pub series: Vec<S>,
    pub children: Vec<(String, LevelImage<S>)>,
}

impl<S> Default for HostImage<S> {
    fn default() -> Self {
        Self {
            cluster: String::new(),
            host: String::new(),
            root: LevelImage::default(),
        }
    }
}

impl<S> Default for LevelImage<S> {
    fn default() -> Self {
        Self {
            series: Vec::new(),
            children: Vec::new(),
        }
    }
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
    /// Slots of blocks that could not be loaded ([`Store::load_host_blocks`]: a reference
    /// that was not resolved, a damaged block): lost, read as gaps.
    pub lost_slots: usize,
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
            root: export_level(root, &|id, series| {
                let (metric, _) = registry.config(id)?;
                Some(SeriesImage {
                    metric: metric.to_owned(),
                    frequency_s: series.frequency_s(),
                    runs: series
                        .buffers()
                        .map(|b| Run {
                            start_s: b.start(),
                            values: b.to_values(),
                        })
                        .collect(),
                })
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
        self.import_image(image, |level, series, (id, config), report| {
            if config.frequency_s != series.frequency_s {
                report.frequency_mismatches += 1;
            }
            report.slots += series.runs.iter().map(|r| r.values.len()).sum::<usize>();
            level.import_series(id, config.frequency_s, series, &self.pool)
        })
    }

    /// Adds a host's series, each handed to `take` with its metric (resolved, registered if
    /// new) and the level it goes to.
    fn import_image<S: ImageSeries>(
        &self,
        image: HostImage<S>,
        mut take: impl FnMut(&mut Level, S, (MetricId, MetricConfig), &mut ImportReport) -> Written,
    ) -> ImportReport {
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
                let Some(&Some(metric)) = resolved.get(series.metric()) else {
                    report.unknown_metric_series += 1;
                    return;
                };
                report.series += 1;
                let written = take(level, series, metric, &mut report);
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

impl HostImage {
    /// An image of `host` without data, to fill with [`HostImage::add_samples`].
    pub fn new(cluster: impl Into<String>, host: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            host: host.into(),
            root: LevelImage::default(),
        }
    }

    /// Adds one series at the level `levels` below the host (levels created as needed) from
    /// its samples `(sample time, value)`, as [`Store::export_series`] gives them and an
    /// archive holds them (see [`SeriesImage::from_samples`]). A series added twice is
    /// imported twice: the later one wins where both have a slot.
    pub fn add_samples(
        &mut self,
        levels: &[impl AsRef<str>],
        metric: &str,
        frequency_s: i64,
        samples: Vec<(i64, f32)>,
    ) {
        let series = SeriesImage::from_samples(metric, frequency_s, samples);
        if !series.runs.is_empty() {
            self.root.level_mut(levels).series.push(series);
        }
    }
}

impl LevelImage {
    /// The level at `path` below this one, created if missing.
    fn level_mut(&mut self, path: &[impl AsRef<str>]) -> &mut LevelImage {
        let Some((name, rest)) = path.split_first() else {
            return self;
        };
        let name = name.as_ref();
        let index = match self.children.iter().position(|(n, _)| n == name) {
            Some(index) => index,
            None => {
                self.children.push((name.to_owned(), LevelImage::default()));
                self.children.len() - 1
            }
        };
        self.children[index].1.level_mut(rest)
    }
}

impl SeriesImage {
    /// A series from its samples `(sample time, value)` at `frequency_s`, the inverse of
    /// [`Store::export_series`]: a sample is the slot that starts `f/2` before its time
    /// (where a write of that time puts it), consecutive slots form a run, and a gap or a
    /// time off the grid starts a new run. NaN is no sample (skipped), nor is a time outside
    /// [`SAMPLE_TIME_S`]. Unsorted samples are sorted first; of samples with the same time
    /// the last one wins.
    ///
    /// Importing the image ([`Store::import_host`]) puts every sample back into the slot it
    /// came from: a series new to the store takes the runs as its buffers, an existing one
    /// gets them written value by value, and a frequency other than the metric's configured
    /// one is resampled as for a snapshot taken before the configuration changed. A frequency
    /// outside [`crate::FREQUENCY_S`] gives a series without runs, which imports nothing.
    pub fn from_samples(
        metric: impl Into<String>,
        frequency_s: i64,
        mut samples: Vec<(i64, f32)>,
    ) -> Self {
        let mut runs: Vec<Run> = Vec::new();
        if crate::FREQUENCY_S.contains(&frequency_s) {
            if !samples.is_sorted_by_key(|&(t, _)| t) {
                // Stable: samples of one time keep their order, so the last one wins.
                samples.sort_by_key(|&(t, _)| t);
            }
            let taken = samples
                .into_iter()
                .filter(|(t, v)| !v.is_nan() && SAMPLE_TIME_S.contains(t));
            for (t, value) in taken {
                let start_s = t - frequency_s / 2;
                let Some(run) = runs.last_mut() else {
                    runs.push(Run::one(start_s, value));
                    continue;
                };
                // A run spans at most `SAMPLE_TIME_S`: no overflow.
                let next_s = run.start_s + run.values.len() as i64 * frequency_s;
                if next_s == start_s {
                    run.values.push(value);
                } else if next_s == start_s + frequency_s {
                    // The same slot again.
                    if let Some(last) = run.values.last_mut() {
                        *last = value;
                    }
                } else {
                    runs.push(Run::one(start_s, value));
                }
            }
        }
        Self {
            metric: metric.into(),
            frequency_s,
            runs,
        }
    }
}

impl Run {
    fn one(start_s: i64, value: f32) -> Self {
        Self {
            start_s,
            values: vec![value],
        }
    }
}

impl Store {
    /// Every series of a host: the level names below the host (0 to 2) and the metric name,
    /// sorted by metric, then by level names. Copies names only; the host is read-locked for
    /// the walk. Empty when the host does not exist.
    pub fn series_names(&self, cluster: &str, host: &str) -> Vec<(Vec<String>, String)> {
        let Some(found) = self.host(cluster, host) else {
            return Vec::new();
        };
        let mut names = Vec::new();
        {
            let registry = self.registry.read();
            let tree = found.read();
            let mut path = Vec::new();
            list_series(&tree.root, &mut path, &mut |path, id| {
                if let Some((metric, _)) = registry.config(id) {
                    names.push((path.to_vec(), metric.to_owned()));
                }
            });
        }
        names.sort_unstable_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        names
    }

    /// The samples of one series whose sample time (the middle of the slot, where a write of
    /// that time lands and what queries and snapshots report as the slot's time) lies in
    /// `[from_s, to_s)`, oldest first, with the series' frequency. Time ranges that tile
    /// time (`[a, b)`, `[b, c)`) copy every sample exactly once. NaN — a gap, or a NaN
    /// written — is not a sample and is left out, as cc-metric-store's archive leaves it out.
    ///
    /// The host is read-locked while this one series' samples in the range are copied, so a
    /// caller going series by series ([`Store::series_names`]) holds one series at a time.
    /// `None` when the host, a level, the metric or its series does not exist.
    pub fn export_series(
        &self,
        cluster: &str,
        host: &str,
        levels: &[&str],
        metric: &str,
        from_s: i64,
        to_s: i64,
    ) -> Option<(i64, Vec<(i64, f32)>)> {
        let (id, _) = self.registry.read().get(metric)?;
        let found = self.host(cluster, host)?;
        let tree = found.read();
        let mut level = &tree.root;
        for name in levels {
            level = level.child(name)?;
        }
        let series = level.series(id)?;
        let mut samples = Vec::new();
        series.samples_in(from_s, to_s, &mut samples);
        Some((series.frequency_s(), samples))
    }

    /// Memory's copy of one metric of one host, at every level, for a query that also reads
    /// an archive: imported into a [`Store::scratch`] after the archive's image, memory wins
    /// where both hold a slot, and [`Store::query_each`] runs unchanged.
    ///
    /// Per series: the samples whose sample time lies in `[from_s, to_s)`
    /// ([`Store::export_series`]), plus the last sample before `from_s` and the first at or
    /// after `to_s`. The two neighbours make a query of `[from_s, to_s)` read as it reads
    /// here: a read is clamped to a series' first sample, so without the one before, a
    /// `from` in a gap would start the answer at the next sample; and a step at either end
    /// reads the slot holding it, whose sample time may lie just outside the range.
    /// `None` when the host or metric is unknown, or no series of the metric has a sample.
    pub fn export_metric(
        &self,
        cluster: &str,
        host: &str,
        metric: &str,
        from_s: i64,
        to_s: i64,
    ) -> Option<HostImage> {
        let (id, _) = self.registry.read().get(metric)?;
        let found = self.host(cluster, host)?;
        let tree = found.read();
        let root = export_metric_level(&tree.root, id, metric, from_s, to_s)?;
        Some(HostImage {
            cluster: cluster.to_owned(),
            host: host.to_owned(),
            root,
        })
    }
}

impl Store {
    /// The sample time of the oldest sample memory holds of `metric` on `host`, at any
    /// level: a query whose range starts before it (or finds no series, `None`) may need the
    /// archive.
    pub fn memory_start(&self, cluster: &str, host: &str, metric: &str) -> Option<i64> {
        let (id, _) = self.registry.read().get(metric)?;
        let found = self.host(cluster, host)?;
        let tree = found.read();
        oldest_sample(&tree.root, id)
    }
}

/// The oldest sample time of `metric` at or below `level`.
fn oldest_sample(level: &Level, id: MetricId) -> Option<i64> {
    let own = level
        .series(id)
        .and_then(|series| series.first_sample_from(i64::MIN))
        .map(|(t, _)| t);
    level
        .children()
        .filter_map(|(_, child)| oldest_sample(child, id))
        .chain(own)
        .min()
}

/// Calls `each` with the level path and metric of every series below `level`.
fn list_series(level: &Level, path: &mut Vec<String>, each: &mut dyn FnMut(&[String], MetricId)) {
    for (id, _) in level.all_series() {
        each(path, id);
    }
    for (name, child) in level.children_by_name() {
        path.push(name.to_owned());
        list_series(child, path, each);
        path.pop();
    }
}

/// [`Store::export_metric`] below `level`; `None` when nothing below holds a sample.
fn export_metric_level(
    level: &Level,
    id: MetricId,
    metric: &str,
    from_s: i64,
    to_s: i64,
) -> Option<LevelImage> {
    let series = level.series(id).and_then(|series| {
        let mut samples = Vec::new();
        samples.extend(series.last_sample_before(from_s));
        series.samples_in(from_s, to_s, &mut samples);
        samples.extend(series.first_sample_from(to_s.max(from_s)));
        let image = SeriesImage::from_samples(metric, series.frequency_s(), samples);
        (!image.runs.is_empty()).then_some(image)
    });
    let children: Vec<(String, LevelImage)> = level
        .children_by_name()
        .into_iter()
        .filter_map(|(name, child)| {
            let image = export_metric_level(child, id, metric, from_s, to_s)?;
            Some((name.to_owned(), image))
        })
        .collect();
    if series.is_none() && children.is_empty() {
        return None;
    }
    Some(LevelImage {
        series: series.into_iter().collect(),
        children,
    })
}

fn export_level<S>(
    level: &Level,
    series_of: &dyn Fn(MetricId, &Series) -> Option<S>,
) -> LevelImage<S> {
    LevelImage {
        series: level
            .all_series()
            .filter_map(|(id, series)| series_of(id, series))
            .collect(),
        children: level
            .children_by_name()
            .into_iter()
            .map(|(name, child)| (name.to_owned(), export_level(child, series_of)))
            .collect(),
    }
}

/// Metric names of an image, each once (unresolved).
type Resolved = HashMap<String, Option<(MetricId, MetricConfig)>, FxBuildHasher>;

/// A series of an image, as imports see it.
trait ImageSeries {
    fn metric(&self) -> &str;
}

impl ImageSeries for SeriesImage {
    fn metric(&self) -> &str {
        &self.metric
    }
}

fn collect_metric_names<S: ImageSeries>(level: &LevelImage<S>, names: &mut Resolved) {
    for series in &level.series {
        if !names.contains_key(series.metric()) {
            names.insert(series.metric().to_owned(), None);
        }
    }
    for (_, child) in &level.children {
        collect_metric_names(child, names);
    }
}

/// Walks `image` into `target`, creating levels (their bytes added to `delta`) and handing
/// each series to `each`.
fn import_level<S>(
    target: &mut Level,
    image: LevelImage<S>,
    delta: &mut MemoryDelta,
    each: &mut dyn FnMut(&mut Level, S, &mut MemoryDelta),
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
        self.adopt_series(metric, Series::adopt(image.frequency_s, buffers, pool))
    }

    /// Adds `series`, new on this level, and counts it.
    fn adopt_series(&mut self, metric: MetricId, series: Series) -> Written {
        let memory = MemoryDelta {
            bytes: series.buffers().map(|b| b.heap_bytes()).sum::<usize>() as isize,
            buffers: series.buffers().count() as isize,
            structure: 0,
        };
        let mut done = Written {
            memory,
            new_series: true,
        };
        done.memory.structure = self.insert_series(metric, series) as isize;
        done
    }
}

/// A host as incremental snapshots write and load it: its series as encoded blocks, which
/// go to disk and come back as they are ([`Store::export_host_blocks`],
/// [`Store::load_host_blocks`]).
pub type HostBlocks = HostImage<BlockSeries>;

/// A series of a [`HostBlocks`].
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSeries {
    pub metric: String,
    pub frequency_s: i64,
    /// Sorted by start, on one grid, not overlapping.
    pub buffers: Vec<BlockBuffer>,
}

/// One buffer: its sealed blocks (block `k` holds slots `[128·k, 128·(k+1))`), then its raw
/// tail as one encoded block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockBuffer {
    /// Start of slot 0, unix seconds.
    pub start_s: i64,
    /// Filled slots.
    pub len: usize,
    pub blocks: Vec<StoredBlock>,
    pub tail: Option<Vec<u8>>,
}

/// A sealed block in a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredBlock {
    /// Its bytes, held by the files of `generation`.
    Bytes { generation: u64, bytes: Vec<u8> },
    /// Held by the files of an older `generation`: `size` bytes whose CRC32C is `crc`, so a
    /// reference to a damaged or different block is detected.
    Reference {
        generation: u64,
        size: u32,
        crc: u32,
    },
}

impl ImageSeries for BlockSeries {
    fn metric(&self) -> &str {
        &self.metric
    }
}

impl BlockBuffer {
    /// Slots of block `k` (the tail when `k` is past the sealed blocks).
    pub fn block_slots(&self, k: usize) -> usize {
        self.len.saturating_sub(k * BLOCK_SLOTS).min(BLOCK_SLOTS)
    }
}

impl Store {
    /// A copy of one host's data for snapshot `generation`, as blocks: a sealed block that
    /// a generation for which `live` is true holds is a [`StoredBlock::Reference`] to it;
    /// any other is copied and remembered as held by `generation` from now on (so a
    /// snapshot that fails needs no undo: its generation never becomes live, and the next
    /// one copies those blocks again). A block changed by a later write is copied again.
    /// Tails are encoded as they are. The host is read-locked while it is copied.
    pub fn export_host_blocks(
        &self,
        cluster: &str,
        host: &str,
        generation: u64,
        live: &dyn Fn(u64) -> bool,
    ) -> Option<HostBlocks> {
        let found = self.host(cluster, host)?;
        let registry = self.registry.read();
        let tree = found.read();
        // Beyond u32 (never, in practice: one per WAL segment) a block is never referenced.
        let tag = u32::try_from(generation).unwrap_or(0);
        let series_of = |id, series: &Series| {
            let (metric, _) = registry.config(id)?;
            let buffers = series.buffers().map(|buffer| {
                let blocks = buffer.sealed_blocks_with_generation().map(|(held, bytes)| {
                    let holder = u64::from(held.load(Ordering::Relaxed));
                    if holder != 0 && live(holder) {
                        return StoredBlock::Reference {
                            generation: holder,
                            size: bytes.len() as u32,
                            crc: crc32c::crc32c(bytes),
                        };
                    }
                    held.store(tag, Ordering::Relaxed);
                    StoredBlock::Bytes {
                        generation,
                        bytes: bytes.to_vec(),
                    }
                });
                let tail = buffer.tail_values();
                BlockBuffer {
                    start_s: buffer.start(),
                    len: buffer.len(),
                    blocks: blocks.collect(),
                    tail: (!tail.is_empty()).then(|| {
                        let mut out = Vec::new();
                        block::encode(&tail, &mut EncodeHint::default(), &mut out);
                        out
                    }),
                }
            });
            Some(BlockSeries {
                metric: metric.to_owned(),
                frequency_s: series.frequency_s(),
                buffers: buffers.collect(),
            })
        };
        Some(HostImage {
            cluster: cluster.to_owned(),
            host: host.to_owned(),
            root: export_level(&tree.root, &series_of),
        })
    }

    /// Adds a host read from a snapshot. A series new to the store, at its metric's
    /// configured frequency and whole, takes the blocks as they are (validated, not decoded;
    /// each remembers the generation that holds it); any other is decoded and imported as
    /// [`Store::import_host`] does. A block that is a [`StoredBlock::Reference`] (not
    /// resolved) or damaged reads as a gap; its slots are counted in
    /// [`ImportReport::lost_slots`].
    pub fn load_host_blocks(&self, image: HostBlocks) -> ImportReport {
        self.import_image(image, |level, series, (id, config), report| {
            if config.frequency_s != series.frequency_s {
                report.frequency_mismatches += 1;
            }
            report.slots += series.buffers.iter().map(|b| b.len).sum::<usize>();
            if config.frequency_s == series.frequency_s
                && level.series(id).is_none()
                && let Some(whole) = series_from_blocks(&series)
            {
                return level.adopt_series(id, whole);
            }
            let (runs, lost) = series.into_series_image();
            report.lost_slots += lost;
            level.import_series(id, config.frequency_s, runs, &self.pool)
        })
    }
}

/// The series `image` describes, if every block is there and well formed.
fn series_from_blocks(image: &BlockSeries) -> Option<Series> {
    if !crate::FREQUENCY_S.contains(&image.frequency_s) {
        return None;
    }
    let buffers = image.buffers.iter().map(|buffer| {
        if !SAMPLE_TIME_S.contains(&buffer.start_s) {
            return None;
        }
        let blocks = buffer.blocks.iter().map(|stored| match stored {
            StoredBlock::Bytes { generation, bytes } => {
                Some((u32::try_from(*generation).unwrap_or(0), bytes.as_slice()))
            }
            StoredBlock::Reference { .. } => None,
        });
        let blocks: Vec<_> = blocks.collect::<Option<_>>()?;
        Buffer::from_blocks(buffer.start_s, buffer.len, &blocks, buffer.tail.as_deref())
    });
    Series::from_buffers(image.frequency_s, buffers.collect::<Option<_>>()?)
}

impl BlockSeries {
    /// The series as runs of values, decoding every block that is there and well formed;
    /// and the slots of the others (lost).
    fn into_series_image(self) -> (SeriesImage, usize) {
        let mut lost = 0;
        let mut runs = Vec::new();
        let f = self.frequency_s;
        for buffer in &self.buffers {
            let tail = buffer
                .tail
                .as_deref()
                .map(|tail| (buffer.blocks.len(), tail));
            let blocks = buffer.blocks.iter().enumerate().map(|(k, stored)| {
                let bytes = match stored {
                    StoredBlock::Bytes { bytes, .. } => Some(bytes.as_slice()),
                    StoredBlock::Reference { .. } => None,
                };
                (k, bytes)
            });
            for (k, bytes) in blocks.chain(tail.map(|(k, tail)| (k, Some(tail)))) {
                let start_s = (k as i64)
                    .checked_mul(BLOCK_SLOTS as i64 * f)
                    .and_then(|offset| buffer.start_s.checked_add(offset))
                    .filter(|start| SAMPLE_TIME_S.contains(start));
                let whole = bytes.filter(|b| block::validate(b).ok() == Some(b.len()));
                let (Some(start_s), Some(bytes)) = (start_s, whole) else {
                    lost += buffer.block_slots(k);
                    continue;
                };
                let mut values = [f32::NAN; BLOCK_SLOTS];
                let count = block::decode(bytes, &mut values);
                runs.push(Run {
                    start_s,
                    values: values[..count].to_vec(),
                });
            }
        }
        let image = SeriesImage {
            metric: self.metric,
            frequency_s: f,
            runs,
        };
        (image, lost)
    }
}
