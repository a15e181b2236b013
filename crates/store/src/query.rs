//! Reading: cc-metric-store's query semantics (COMPAT.md §2) with Strata's decisions.
//!
//! One query names a host and a metric and optionally a level type and ids. It expands to one
//! *selector* per result entry (§2.1). A selector collects every series it reaches (§2.3): at
//! the level where the selector ends, that level's own series if it has one, otherwise the
//! series of all children, recursively. Several series are combined by the metric's
//! aggregation over the union of their windows, NaN where any child lacks a slot (decision 6).
//! Then: resample (§2.4), statistics, scale, front padding, drop data (§2.5).

use crate::buffer::Series;
use crate::level::Level;
use crate::metric::{Aggregation, MetricConfig, MetricId};
use crate::resample::{NotAMultiple, Resampler, ResamplerKind};
use crate::store::Store;
use std::ops::ControlFlow;

/// Most points one result may hold. Front padding is what usually exceeds it: a query with
/// `from: 0` (the default) would otherwise pad tens of millions of nulls.
pub const POINTS_PER_SERIES_MAX: usize = 1 << 20;

/// One query of a request (cc-metric-store's `APIQuery`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    pub host: &'a str,
    pub metric: &'a str,
    /// Level type, e.g. `hwthread`; `None` = the host level.
    pub kind: Option<&'a str>,
    pub kind_ids: &'a [String],
    pub subkind: Option<&'a str>,
    pub subkind_ids: &'a [String],
    /// Combine the selected ids into one series.
    pub aggregate: bool,
    /// Requested resolution in seconds; 0 = native.
    pub resolution_s: i64,
    /// Multiply data and statistics; `None`, 0 and 1 mean no scaling.
    pub scale_by: Option<f64>,
    /// Overrides the configured resampling algorithm.
    pub resampler: Option<ResamplerKind>,
}

/// What applies to every query of a request.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub from_s: i64,
    pub to_s: i64,
    pub with_stats: bool,
    pub with_data: bool,
    pub with_padding: bool,
    pub resampler: Resampler,
}

/// avg/min/max of a result; NaN when there is no value (JSON `null`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub avg: f32,
    pub min: f32,
    pub max: f32,
}

impl Stats {
    /// What cc-metric-store reports when statistics were not asked for.
    pub const ZERO: Stats = Stats {
        avg: 0.0,
        min: 0.0,
        max: 0.0,
    };

    fn of(data: &[f32]) -> Self {
        let mut sum = 0.0f64;
        let mut count = 0usize;
        let mut min = f32::INFINITY;
        let mut max = f32::NEG_INFINITY;
        for &value in data.iter().filter(|v| !v.is_nan()) {
            sum += f64::from(value);
            count += 1;
            // NOTE: plain comparisons, not `f32::min`/`max`: NaN is filtered out already, and
            // their NaN handling made this loop (most of a query's time) depend on how the
            // compiler happened to inline it, up to 40 % slower.
            if value < min {
                min = value;
            }
            if value > max {
                max = value;
            }
        }
        if count == 0 {
            return Stats {
                avg: f32::NAN,
                min: f32::NAN,
                max: f32::NAN,
            };
        }
        Stats {
            avg: (sum / count as f64) as f32,
            min,
            max,
        }
    }

    fn scaled(self, factor: f64) -> Result<Self, QueryError> {
        let (a, b) = (scale(self.min, factor)?, scale(self.max, factor)?);
        Ok(Stats {
            avg: scale(self.avg, factor)?,
            // A negative factor swaps the extremes.
            min: a.min(b),
            max: a.max(b),
        })
    }
}

/// `value × factor` as float32, computed in f64 so that a factor beyond float32 (`1e-40`,
/// `1e39`) still works where the product fits. NaN (no value) stays NaN; a product beyond
/// float32 is an error rather than infinity, which JSON can only show as null.
fn scale(value: f32, factor: f64) -> Result<f32, QueryError> {
    let scaled = (f64::from(value) * factor) as f32;
    if scaled.is_finite() || !value.is_finite() {
        Ok(scaled)
    } else {
        Err(QueryError::ScaleOverflow { factor })
    }
}

/// One entry of a query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    /// `None` when the request said `with-data: false`.
    pub data: Option<Vec<f32>>,
    pub from_s: i64,
    pub to_s: i64,
    pub resolution_s: i64,
    pub stats: Stats,
}

/// Why an entry has no data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The host, the level or the metric's series does not exist (decision 7: reported in place
    /// so result arrays stay aligned with the query's ids).
    #[error("metric or host not found")]
    NotFound,
    #[error("unknown metric: {0}")]
    UnknownMetric(String),
    #[error("invalid time range")]
    InvalidTimeRange,
    /// Several series matched but the metric has no aggregation.
    #[error("invalid aggregation")]
    InvalidAggregation,
    #[error(transparent)]
    Resample(#[from] NotAMultiple),
    /// `scale-by` would take a value beyond float32 (±3.4e38).
    #[error("scale-by {factor:e} takes values beyond the float32 range (±3.4e38)")]
    ScaleOverflow { factor: f64 },
    #[error("result of {points} points exceeds the limit of {max} points per series")]
    TooManyPoints { points: usize, max: usize },
}

pub type SeriesResult = Result<SeriesData, QueryError>;

/// One step of a selector below the host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Element {
    Name(String),
    /// Each listed child that exists.
    Group(Vec<String>),
}

impl Store {
    /// Answers one query of a request on `cluster`: one entry per selector (§2.1).
    pub fn query(
        &self,
        cluster: &str,
        query: &Query<'_>,
        options: &ReadOptions,
    ) -> Vec<SeriesResult> {
        let mut results = Vec::new();
        self.query_each(cluster, query, options, 0, |result| {
            results.push(result);
            ControlFlow::Continue(())
        });
        results
    }

    /// Answers one query entry by entry, starting at entry `first`, so that a caller can
    /// stream a response without holding more than one entry: `each` gets every entry in
    /// order until it breaks. Returns the index of the next entry if `each` broke before
    /// the end, `None` when every entry was delivered. The host is locked for the call only.
    pub fn query_each(
        &self,
        cluster: &str,
        query: &Query<'_>,
        options: &ReadOptions,
        first: usize,
        mut each: impl FnMut(SeriesResult) -> ControlFlow<()>,
    ) -> Option<usize> {
        let selectors = selectors(query);
        let selectors = selectors.get(first..).unwrap_or_default();
        let mut deliver = |index: usize, result: SeriesResult| match each(result) {
            ControlFlow::Continue(()) => None,
            ControlFlow::Break(()) => Some(first + index + 1),
        };
        let found = if options.from_s > options.to_s {
            Err(QueryError::InvalidTimeRange)
        } else {
            self.registry
                .read()
                .get(query.metric)
                .ok_or_else(|| QueryError::UnknownMetric(query.metric.to_owned()))
                .and_then(|metric| {
                    let host = self.host(cluster, query.host).ok_or(QueryError::NotFound)?;
                    Ok((metric, host))
                })
        };
        let ((metric, config), host) = match found {
            Ok(found) => found,
            Err(error) => {
                return (0..selectors.len()).find_map(|index| deliver(index, Err(error.clone())));
            }
        };
        let tree = host.read();
        let root = &tree.root;
        let mut resampler = options.resampler;
        if let Some(kind) = query.resampler {
            resampler.kind = kind;
        }
        selectors.iter().enumerate().find_map(|(index, selector)| {
            let mut found = Vec::new();
            collect(root, selector, metric, &mut found);
            deliver(
                index,
                read_series(&found, config, query, options, resampler),
            )
        })
    }

    /// Most samples answering `query` reads: the series its selectors find, each over the
    /// native points of the range. Walks the host's tree as [`Store::query_each`] does but
    /// reads no data (microseconds), so a caller can tell a cheap query from a costly one
    /// before deciding where to run it. 0 when the query finds nothing.
    pub fn read_bound(&self, cluster: &str, query: &Query<'_>, options: &ReadOptions) -> usize {
        let Some((metric, config)) = self.registry.read().get(query.metric) else {
            return 0;
        };
        let Some(host) = self.host(cluster, query.host) else {
            return 0;
        };
        let window_s = options.to_s.saturating_sub(options.from_s).max(0);
        let native = usize::try_from(window_s / config.frequency_s.max(1))
            .unwrap_or(usize::MAX)
            .saturating_add(2);
        let tree = host.read();
        let mut found = Vec::new();
        for selector in selectors(query) {
            collect(&tree.root, &selector, metric, &mut found);
        }
        found.len().saturating_mul(native)
    }

    /// Most points one entry of `query` can hold, from the time range, the metric's
    /// frequency and the resolution alone, before anything is read or allocated: what a
    /// per-request points budget is checked against. 0 when no data is returned.
    pub fn points_bound(&self, query: &Query<'_>, options: &ReadOptions) -> usize {
        if !options.with_data || options.from_s > options.to_s {
            return 0;
        }
        let Some((_, config)) = self.registry.read().get(query.metric) else {
            return 0;
        };
        let frequency_s = config.frequency_s.max(1);
        let window_s = options.to_s.saturating_sub(options.from_s);
        // One point per step of the window, plus a partial step at either end.
        let native = (window_s / frequency_s).saturating_add(2);
        let resolution_s = query.resolution_s;
        // Resampled data has one point per step of the resolution, or stays as it is when it
        // is shorter than the resampler's minimum. Padding is not bounded that way: a series
        // too short to resample is padded in native steps.
        let points = if !options.with_padding
            && resolution_s > frequency_s
            && resolution_s % frequency_s == 0
        {
            let resampled = (window_s / resolution_s).saturating_add(2);
            native.min(resampled.max(options.resampler.minimum_points as i64))
        } else {
            native
        };
        usize::try_from(points).map_or(POINTS_PER_SERIES_MAX, |p| p.min(POINTS_PER_SERIES_MAX))
    }
}

/// Expands a query into selectors below the host (COMPAT.md §2.1).
fn selectors(query: &Query<'_>) -> Vec<Vec<Element>> {
    let element = |kind: &str, ids: &[String]| match ids {
        [id] => Element::Name(format!("{kind}{id}")),
        ids => Element::Group(ids.iter().map(|id| format!("{kind}{id}")).collect()),
    };
    match query.kind {
        Some(kind) if !query.aggregate => {
            let mut selectors = Vec::new();
            for id in query.kind_ids {
                let first = Element::Name(format!("{kind}{id}"));
                match query.subkind {
                    Some(subkind) => {
                        for subid in query.subkind_ids {
                            let second = Element::Name(format!("{subkind}{subid}"));
                            selectors.push(vec![first.clone(), second]);
                        }
                    }
                    None => selectors.push(vec![first]),
                }
            }
            selectors
        }
        _ => {
            let mut selector = Vec::new();
            if let Some(kind) = query.kind {
                selector.push(element(kind, query.kind_ids));
            }
            if let Some(subkind) = query.subkind {
                selector.push(element(subkind, query.subkind_ids));
            }
            vec![selector]
        }
    }
}

/// Collects the series a selector reaches (COMPAT.md §2.3, `findBuffers`).
fn collect<'l>(
    level: &'l Level,
    selector: &[Element],
    metric: MetricId,
    found: &mut Vec<&'l Series>,
) {
    match selector.split_first() {
        None => match level.series(metric) {
            Some(series) => found.push(series),
            None => {
                // By name: the order of aggregation must not depend on insertion order.
                for (_, child) in level.children_by_name() {
                    collect(child, &[], metric, found);
                }
            }
        },
        Some((Element::Name(name), rest)) => {
            if let Some(child) = level.child(name) {
                collect(child, rest, metric, found);
            }
        }
        Some((Element::Group(names), rest)) => {
            for name in names {
                if let Some(child) = level.child(name) {
                    collect(child, rest, metric, found);
                }
            }
        }
    }
}

fn read_series(
    found: &[&Series],
    config: MetricConfig,
    query: &Query<'_>,
    options: &ReadOptions,
    resampler: Resampler,
) -> SeriesResult {
    // Every series of a metric has the metric's frequency: writes create them at it and
    // loading resamples series stored at another one (`Store::import_host`).
    let frequency_s = config.frequency_s;
    debug_assert!(found.iter().all(|s| s.frequency_s() == frequency_s));
    let (data, from_s, to_s) = match found {
        [] => return Err(QueryError::NotFound),
        [series] => {
            let mut data = Vec::new();
            let (from_s, to_s) = series.read(options.from_s, options.to_s, &mut data);
            (data, from_s, to_s)
        }
        several => {
            if config.aggregation == Aggregation::None {
                return Err(QueryError::InvalidAggregation);
            }
            aggregate(several, config, options.from_s, options.to_s)
        }
    };
    let (resampled, resolution_s) = resampler.resample(&data, frequency_s, query.resolution_s)?;
    let mut data = resampled.unwrap_or(data);
    if data.len() > POINTS_PER_SERIES_MAX {
        return Err(QueryError::TooManyPoints {
            points: data.len(),
            max: POINTS_PER_SERIES_MAX,
        });
    }
    let mut stats = if options.with_stats {
        Stats::of(&data)
    } else {
        Stats::ZERO
    };
    if let Some(factor) = query.scale_by.filter(|&f| f != 0.0 && f != 1.0) {
        stats = stats.scaled(factor)?;
        for value in &mut data {
            *value = scale(*value, factor)?;
        }
    }
    if options.with_padding && options.with_data {
        // NOTE: cc-metric-store counts padding in native steps even for resampled data, which
        // misplaces resampled series; Strata pads in steps of the returned resolution.
        let padding = from_s.div_euclid(resolution_s) - options.from_s.div_euclid(resolution_s);
        if padding > 0 {
            let points = data.len().saturating_add(padding as usize);
            if points > POINTS_PER_SERIES_MAX {
                return Err(QueryError::TooManyPoints {
                    points,
                    max: POINTS_PER_SERIES_MAX,
                });
            }
            data.splice(0..0, std::iter::repeat_n(f32::NAN, padding as usize));
        }
    }
    Ok(SeriesData {
        data: options.with_data.then_some(data),
        from_s,
        to_s,
        resolution_s,
        stats,
    })
}

/// Combines several series over the union of their windows (decision 6): a slot that any
/// series lacks is NaN. Deterministic, unlike cc-metric-store's "does not align" errors.
fn aggregate(
    found: &[&Series],
    config: MetricConfig,
    from_s: i64,
    to_s: i64,
) -> (Vec<f32>, i64, i64) {
    let f = config.frequency_s;
    let extents: Vec<Option<(i64, i64)>> = found.iter().map(|s| s.extent(from_s, to_s)).collect();
    let Some(union_from) = extents.iter().flatten().map(|&(from, _)| from).min() else {
        let from_s = found.first().map_or(from_s, |s| s.window(from_s, to_s).0);
        return (Vec::new(), from_s, from_s);
    };
    // Steps run from the earliest start; a series' steps end where its data ends. Counting
    // from data ends (not from each series' own window) keeps series whose samples sit a few
    // seconds apart within the interval from adding a phantom step.
    let count = extents
        .iter()
        .flatten()
        .map(|&(_, end)| ((end - union_from + f - 1) / f) as usize)
        .max()
        .unwrap_or(0);
    let from_s = union_from;
    let mut sum = vec![0.0f64; count];
    let mut values = Vec::with_capacity(count);
    for series in found {
        values.clear();
        series.fill(from_s, count, &mut values);
        for (total, &value) in sum.iter_mut().zip(&values) {
            *total += f64::from(value);
        }
    }
    let scale = match config.aggregation {
        Aggregation::Avg => 1.0 / found.len() as f64,
        Aggregation::Sum | Aggregation::None => 1.0,
    };
    let data = sum.into_iter().map(|v| (v * scale) as f32).collect();
    (data, from_s, from_s + count as i64 * f)
}
