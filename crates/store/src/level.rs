//! A level of the tree below a host: its series and its child levels.
//!
//! Levels are small and numerous (one per hwthread of every host), so they are two vectors:
//! series are found by a linear scan over a handful of metric ids, children by binary search
//! over names kept sorted (which also makes every listing deterministic).

use crate::buffer::{FreeOutcome, MemoryDelta, Series};
use crate::metric::MetricId;
use crate::pool::BufferPool;

#[derive(Debug, Default)]
pub(crate) struct Level {
    series: Vec<(MetricId, Series)>,
    /// Sorted by name.
    children: Vec<(Box<str>, Level)>,
}

impl Level {
    pub(crate) fn child(&self, name: &str) -> Option<&Level> {
        self.children
            .binary_search_by(|(child, _)| (**child).cmp(name))
            .ok()
            .and_then(|i| self.children.get(i))
            .map(|(_, level)| level)
    }

    pub(crate) fn child_mut(&mut self, name: &str) -> Option<&mut Level> {
        match self
            .children
            .binary_search_by(|(child, _)| (**child).cmp(name))
        {
            Ok(i) => self.children.get_mut(i).map(|(_, level)| level),
            Err(_) => None,
        }
    }

    /// The child named `name`, created if missing.
    pub(crate) fn child_or_insert(&mut self, name: &str) -> &mut Level {
        let i = match self
            .children
            .binary_search_by(|(child, _)| (**child).cmp(name))
        {
            Ok(i) => i,
            Err(i) => {
                self.children.insert(i, (name.into(), Level::default()));
                i
            }
        };
        &mut self.children[i].1
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&str, &Level)> {
        self.children.iter().map(|(name, level)| (&**name, level))
    }

    pub(crate) fn series(&self, metric: MetricId) -> Option<&Series> {
        self.series
            .iter()
            .find(|(id, _)| *id == metric)
            .map(|(_, series)| series)
    }

    pub(crate) fn series_mut(&mut self, metric: MetricId) -> Option<&mut Series> {
        self.series
            .iter_mut()
            .find(|(id, _)| *id == metric)
            .map(|(_, series)| series)
    }

    /// Adds a series; the metric must not have one here yet.
    pub(crate) fn insert_series(&mut self, metric: MetricId, series: Series) {
        debug_assert!(self.series(metric).is_none());
        self.series.push((metric, series));
    }

    pub(crate) fn all_series(&self) -> impl Iterator<Item = (MetricId, &Series)> {
        self.series.iter().map(|(id, series)| (*id, series))
    }

    /// Writes one sample of `metric`, creating its series on first sight.
    pub(crate) fn write(
        &mut self,
        metric: MetricId,
        frequency_s: i64,
        timestamp_s: i64,
        value: f32,
        pool: &BufferPool,
    ) -> MemoryDelta {
        if let Some((_, series)) = self.series.iter_mut().find(|(id, _)| *id == metric) {
            return series.write(timestamp_s, value, pool);
        }
        let (series, delta) = Series::new(frequency_s, timestamp_s, value, pool);
        self.series.push((metric, series));
        delta
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.series.is_empty() && self.children.is_empty()
    }

    /// Frees every buffer in this subtree whose end is before `before`, drops series left
    /// without buffers and prunes children left empty.
    pub(crate) fn free_before(&mut self, before: i64, pool: &BufferPool) -> FreeOutcome {
        let mut total = FreeOutcome::default();
        self.series.retain_mut(|(_, series)| {
            let outcome = series.free_before(before, pool);
            total += outcome;
            !outcome.all
        });
        self.children.retain_mut(|(_, child)| {
            total += child.free_before(before, pool);
            !child.is_empty()
        });
        total
    }

    /// Drops the oldest buffer of every series in this subtree that has more than one.
    pub(crate) fn free_oldest(&mut self, pool: &BufferPool) -> FreeOutcome {
        let mut total = FreeOutcome::default();
        for (_, series) in &mut self.series {
            total += series.free_oldest(pool);
        }
        for (_, child) in &mut self.children {
            total += child.free_oldest(pool);
        }
        total
    }

    /// Number of series and of slots (samples, NaN-filled ones included) in this subtree.
    pub(crate) fn census(&self) -> (usize, usize) {
        let slots = self.series.iter().map(|(_, s)| s.slot_count()).sum();
        self.children
            .iter()
            .fold((self.series.len(), slots), |(series, slots), (_, child)| {
                let (more_series, more_slots) = child.census();
                (series + more_series, slots + more_slots)
            })
    }
}
