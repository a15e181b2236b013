//! A level of the tree below a host: its series and its child levels.
//!
//! Levels are small and numerous (one per hwthread of every host), so they are two vectors:
//! series are found by a linear scan over a handful of metric ids, children by binary search
//! over names kept sorted (which also makes every listing deterministic). A level with many
//! children (a host with 64–256 hwthreads) also gets a hash index of their names: names like
//! `hwthread0`…`hwthread127` share a prefix, so each step of a binary search is a string
//! comparison of a dozen bytes, and a write would pay about seven of them.

use crate::buffer::{FreeOutcome, MemoryDelta, Series};
use crate::fxhash::FxBuildHasher;
use crate::metric::MetricId;
use crate::pool::BufferPool;
use std::collections::HashMap;

/// Levels with more children than this get a name index.
const CHILDREN_INDEXED_MIN: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct Level {
    series: Vec<(MetricId, Series)>,
    /// Sorted by name.
    children: Vec<(Box<str>, Level)>,
    /// Position of each child by name, when there are many children.
    // NOTE: boxed so that the many levels without an index (every hwthread) pay 8 bytes for
    // this field instead of an empty map's ~40.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<Box<str>, u32, FxBuildHasher>>>,
}

impl Level {
    /// The position of the child named `name`, or where it would be inserted.
    fn find(&self, name: &str) -> Result<usize, usize> {
        if let Some(index) = &self.index {
            return match index.get(name) {
                Some(&i) => Ok(i as usize),
                None => Err(self.children.partition_point(|(child, _)| **child < *name)),
            };
        }
        self.children
            .binary_search_by(|(child, _)| (**child).cmp(name))
    }

    /// Rebuilds the name index after children were added or removed.
    fn reindex(&mut self) {
        if self.children.len() < CHILDREN_INDEXED_MIN {
            self.index = None;
            return;
        }
        let index = self.index.get_or_insert_with(Box::default);
        index.clear();
        for (i, (name, _)) in self.children.iter().enumerate() {
            index.insert(name.clone(), i as u32);
        }
    }

    pub(crate) fn child(&self, name: &str) -> Option<&Level> {
        let i = self.find(name).ok()?;
        self.children.get(i).map(|(_, level)| level)
    }

    pub(crate) fn child_mut(&mut self, name: &str) -> Option<&mut Level> {
        let i = self.find(name).ok()?;
        self.children.get_mut(i).map(|(_, level)| level)
    }

    /// The child named `name`, created if missing.
    pub(crate) fn child_or_insert(&mut self, name: &str) -> &mut Level {
        let i = match self.find(name) {
            Ok(i) => i,
            Err(i) => {
                self.children.insert(i, (name.into(), Level::default()));
                self.reindex();
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
        let children = self.children.len();
        self.children.retain_mut(|(_, child)| {
            total += child.free_before(before, pool);
            !child.is_empty()
        });
        if self.children.len() != children {
            self.reindex();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_children_are_found_through_the_index_in_any_insert_order() {
        let pool = BufferPool::new(4);
        let mut level = Level::default();
        let names: Vec<String> = (0..40).rev().map(|i| format!("hwthread{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            level
                .child_or_insert(name)
                .write(0, 10, 1000 + i as i64, 1.0, &pool);
        }
        assert!(level.index.is_some());
        let listed: Vec<&str> = level.children().map(|(name, _)| name).collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(listed, sorted);
        for name in &names {
            assert!(level.child(name).is_some(), "{name}");
        }
        assert!(level.child("hwthread40").is_none());
        // Freeing children prunes them and keeps the index right.
        for name in names.iter().take(30) {
            let child = level.child_mut(name).expect("exists");
            child.free_before(i64::MAX, &pool);
        }
        level.free_before(0, &pool);
        assert_eq!(level.children().count(), 10);
        assert!(level.index.is_none());
        for name in names.iter().skip(30) {
            assert!(level.child(name).is_some(), "{name}");
        }
        assert!(level.child(&names[0]).is_none());
    }
}
