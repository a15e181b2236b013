//! A level of the tree below a host: its series and its child levels.
//!
//! Levels are small and numerous (one per hwthread of every host), so series and children are
//! vectors in insertion order, found by a linear scan while there are few of them. A level
//! with many (a host with 64–256 hwthreads, or a level with many metrics) also gets a hash
//! index. Appending keeps the index valid, so adding n entries costs O(n): keeping children
//! sorted and re-indexing them on every insert made a write with 40 000 new type-ids take
//! minutes under the host's lock. Listings that must be deterministic sort by name
//! ([`Level::children_by_name`]).

use crate::buffer::{FreeOutcome, MemoryDelta, Series};
use crate::fxhash::FxBuildHasher;
use crate::memory::{allocation, boxed_str, hash_index};
use crate::metric::MetricId;
use crate::pool::BufferPool;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// Collections with more entries than this get an index.
const INDEXED_MIN: usize = 16;

/// Entries in insertion order with unique keys, and a key index once there are many.
#[derive(Debug)]
struct Entries<K, V> {
    items: Vec<(K, V)>,
    /// Position of each entry by key, when there are more than [`INDEXED_MIN`].
    // NOTE: boxed so that the many collections without an index (every hwthread) pay 8 bytes
    // for this field instead of an empty map's ~40.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<K, u32, FxBuildHasher>>>,
    /// Entries indexed by full rebuilds, for tests that count work.
    #[cfg(test)]
    reindexed: usize,
}

impl<K, V> Default for Entries<K, V> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            index: None,
            #[cfg(test)]
            reindexed: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, V> Entries<K, V> {
    fn position<Q>(&self, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match &self.index {
            Some(index) => index.get(key).map(|&i| i as usize),
            None => self.items.iter().position(|(k, _)| k.borrow() == key),
        }
    }

    /// [`Entries::position`], trying the entry at `hint` and the one after it first, and
    /// moving `hint` to what was found. A collector sends a host's series in the same order
    /// every time: within a batch, the next sample's entry is the previous one's (the same
    /// metric on the next hwthread) or the one after it (the next hwthread, or the next
    /// metric of one level), and a key comparison replaces the hash lookup.
    #[inline]
    fn position_near<Q>(&self, key: &Q, hint: &mut Hint) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let near = hint.0;
        let found = [near, near + 1]
            .into_iter()
            .find(|&i| self.items.get(i).is_some_and(|(k, _)| k.borrow() == key))
            .or_else(|| self.position(key));
        if let Some(i) = found {
            hint.0 = i;
        }
        found
    }

    fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.position(key)?;
        self.items.get(i).map(|(_, value)| value)
    }

    fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.position(key)?;
        self.items.get_mut(i).map(|(_, value)| value)
    }

    /// Heap bytes of the entry vector and the index, as the allocator holds them (keys' own
    /// allocations are the owner's to count).
    fn heap_bytes(&self) -> usize {
        let items = allocation(self.items.capacity() * size_of::<(K, V)>());
        let index = self.index.as_ref().map_or(0, |index| {
            allocation(size_of::<HashMap<K, u32, FxBuildHasher>>())
                + hash_index(index.capacity(), size_of::<(K, u32)>())
        });
        items + index
    }

    /// Appends an entry whose key is not present yet; O(1) amortised.
    fn push(&mut self, key: K, value: V) -> &mut V {
        debug_assert!(self.position(&key).is_none());
        let i = self.items.len();
        if i == self.items.capacity() {
            // Doubling from one instead of `Vec`'s minimum of four: most levels hold one or
            // a few series (a host with one metric paid for four 72-byte entries).
            self.items.reserve_exact(i.max(1));
        }
        match &mut self.index {
            Some(index) => {
                index.insert(key.clone(), i as u32);
            }
            None if i >= INDEXED_MIN => {
                self.items.push((key, value));
                self.reindex();
                return &mut self.items[i].1;
            }
            None => {}
        }
        self.items.push((key, value));
        &mut self.items[i].1
    }

    /// Keeps the entries for which `keep` is true; re-indexes if any were removed (a pass
    /// over every entry anyway), and gives back the vector's spare room once it is mostly
    /// empty, so a level that lost most of its entries does not keep their memory.
    fn retain_mut(&mut self, keep: impl FnMut(&mut (K, V)) -> bool) {
        let before = self.items.len();
        self.items.retain_mut(keep);
        let len = self.items.len();
        if len != before {
            if self.items.capacity() > 2 * len {
                self.items.shrink_to_fit();
            }
            self.reindex();
        }
    }

    fn reindex(&mut self) {
        if self.items.len() <= INDEXED_MIN {
            self.index = None;
            return;
        }
        #[cfg(test)]
        {
            self.reindexed += self.items.len();
        }
        let index = self.index.get_or_insert_with(Box::default);
        index.clear();
        for (i, (key, _)) in self.items.iter().enumerate() {
            index.insert(key.clone(), i as u32);
        }
    }
}

/// Where the last lookup in a collection found its entry ([`Entries::position_near`]).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Hint(usize);

/// What [`Level::write`] did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    pub memory: MemoryDelta,
    /// The write created the series.
    pub new_series: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Level {
    series: Entries<MetricId, Series>,
    children: Entries<Box<str>, Level>,
}

impl Level {
    pub(crate) fn child(&self, name: &str) -> Option<&Level> {
        self.children.get(name)
    }

    pub(crate) fn child_mut(&mut self, name: &str) -> Option<&mut Level> {
        self.children.get_mut(name)
    }

    /// The child named `name`, created if missing and this level has fewer than
    /// `children_max` children; a creation adds its bytes to `delta.structure`.
    pub(crate) fn child_or_insert(
        &mut self,
        name: &str,
        children_max: usize,
        delta: &mut MemoryDelta,
    ) -> Option<&mut Level> {
        self.child_or_insert_near(name, children_max, delta, &mut Hint::default())
    }

    /// [`Level::child_or_insert`] that looks near `hint` first and leaves it at the child.
    pub(crate) fn child_or_insert_near(
        &mut self,
        name: &str,
        children_max: usize,
        delta: &mut MemoryDelta,
        hint: &mut Hint,
    ) -> Option<&mut Level> {
        match self.children.position_near(name, hint) {
            Some(i) => self.children.items.get_mut(i).map(|(_, level)| level),
            None if self.children.items.len() < children_max => {
                let before = self.children.heap_bytes();
                let name: Box<str> = name.into();
                let grown = boxed_str(&name);
                hint.0 = self.children.items.len();
                self.children.push(name, Level::default());
                delta.structure += (self.children.heap_bytes() + grown) as isize - before as isize;
                self.children.items.last_mut().map(|(_, level)| level)
            }
            None => None,
        }
    }

    /// Heap bytes of this level's own vectors and indexes (not of its series or children).
    fn own_bytes(&self) -> usize {
        self.series.heap_bytes() + self.children.heap_bytes()
    }

    /// Heap bytes of this subtree's structure, found by walking it: what the store's
    /// incremental count must equal (checked in debug builds by [`crate::Store::stats`]).
    pub(crate) fn structure_bytes(&self) -> usize {
        let series: usize = self
            .series
            .items
            .iter()
            .map(|(_, s)| s.structure_bytes())
            .sum();
        let children: usize = self
            .children()
            .map(|(name, child)| boxed_str(name) + child.structure_bytes())
            .sum();
        self.own_bytes() + series + children
    }

    /// The children in no particular order, for passes where order does not matter.
    pub(crate) fn children(&self) -> impl Iterator<Item = (&str, &Level)> {
        self.children
            .items
            .iter()
            .map(|(name, level)| (&**name, level))
    }

    /// The children sorted by name, for listings and reads that must be deterministic.
    pub(crate) fn children_by_name(&self) -> Vec<(&str, &Level)> {
        let mut children: Vec<_> = self.children().collect();
        children.sort_unstable_by(|a, b| a.0.cmp(b.0));
        children
    }

    pub(crate) fn series(&self, metric: MetricId) -> Option<&Series> {
        self.series.get(&metric)
    }

    /// Adds a series; the metric must not have one here yet. Returns the structure bytes
    /// it added.
    pub(crate) fn insert_series(&mut self, metric: MetricId, series: Series) -> usize {
        let before = self.series.heap_bytes();
        let own = series.structure_bytes();
        self.series.push(metric, series);
        self.series.heap_bytes() + own - before
    }

    pub(crate) fn all_series(&self) -> impl Iterator<Item = (MetricId, &Series)> {
        self.series.items.iter().map(|(id, series)| (*id, series))
    }

    /// Writes one sample of `metric`, creating its series on first sight if `may_create`.
    /// `None` when the series is missing and may not be created.
    pub(crate) fn write(
        &mut self,
        metric: MetricId,
        frequency_s: i64,
        timestamp_s: i64,
        value: f32,
        pool: &BufferPool,
        may_create: bool,
    ) -> Option<Written> {
        let sample = (timestamp_s, value);
        self.write_near(
            metric,
            frequency_s,
            sample,
            pool,
            may_create,
            &mut Hint::default(),
        )
    }

    /// [`Level::write`] of `(timestamp_s, value)` that looks for the series near `hint`
    /// first and leaves it at the series.
    pub(crate) fn write_near(
        &mut self,
        metric: MetricId,
        frequency_s: i64,
        (timestamp_s, value): (i64, f32),
        pool: &BufferPool,
        may_create: bool,
        hint: &mut Hint,
    ) -> Option<Written> {
        if let Some(i) = self.series.position_near(&metric, hint)
            && let Some((_, series)) = self.series.items.get_mut(i)
        {
            return Some(Written {
                memory: series.write(timestamp_s, value, pool),
                new_series: false,
            });
        }
        if !may_create {
            return None;
        }
        let (series, mut memory) = Series::new(frequency_s, timestamp_s, value, pool);
        hint.0 = self.series.items.len();
        memory.structure += self.insert_series(metric, series) as isize;
        Some(Written {
            memory,
            new_series: true,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.series.items.is_empty() && self.children.items.is_empty()
    }

    /// Frees every buffer in this subtree whose end is before `before`, drops series left
    /// without buffers and prunes children left empty.
    pub(crate) fn free_before(&mut self, before: i64, pool: &BufferPool) -> FreeOutcome {
        let mut total = FreeOutcome::default();
        let own_before = self.own_bytes();
        self.series.retain_mut(|(_, series)| {
            let outcome = series.free_before(before, pool);
            total += outcome;
            total.series += usize::from(outcome.all);
            if outcome.all {
                total.structure += series.structure_bytes();
            }
            !outcome.all
        });
        self.children.retain_mut(|(name, child)| {
            total += child.free_before(before, pool);
            if !child.is_empty() {
                return true;
            }
            total.structure += boxed_str(name) + child.own_bytes();
            false
        });
        // Vectors shrink and indexes go when entries are removed.
        total.structure += own_before.saturating_sub(self.own_bytes());
        total
    }

    /// Drops the oldest buffer of every series in this subtree that has more than one.
    pub(crate) fn free_oldest(&mut self, pool: &BufferPool) -> FreeOutcome {
        let mut total = FreeOutcome::default();
        for (_, series) in &mut self.series.items {
            total += series.free_oldest(pool);
        }
        for (_, child) in &mut self.children.items {
            total += child.free_oldest(pool);
        }
        total
    }

    /// Seals the idle raw tails in this subtree ([`Series::seal_idle`]); returns the change of
    /// the buffers' bytes.
    pub(crate) fn seal_idle(&mut self, now_s: i64) -> isize {
        let own: isize = self
            .series
            .items
            .iter_mut()
            .map(|(_, s)| s.seal_idle(now_s))
            .sum();
        let children: isize = (self.children.items.iter_mut())
            .map(|(_, child)| child.seal_idle(now_s))
            .sum();
        own + children
    }

    /// Number of series and of slots (samples, NaN-filled ones included) in this subtree.
    pub(crate) fn census(&self) -> (usize, usize) {
        let slots = self.series.items.iter().map(|(_, s)| s.slot_count()).sum();
        self.children().fold(
            (self.series.items.len(), slots),
            |(series, slots), (_, child)| {
                let (more_series, more_slots) = child.census();
                (series + more_series, slots + more_slots)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_children_are_found_through_the_index_and_listed_by_name() {
        let pool = BufferPool::new(4);
        let mut level = Level::default();
        let names: Vec<String> = (0..40).rev().map(|i| format!("hwthread{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            let child = level
                .child_or_insert(name, usize::MAX, &mut MemoryDelta::default())
                .expect("no limit");
            child.write(0, 10, 1000 + i as i64, 1.0, &pool, true);
        }
        assert!(level.children.index.is_some());
        let listed: Vec<&str> = level
            .children_by_name()
            .iter()
            .map(|(name, _)| *name)
            .collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!((listed.len(), listed), (40, sorted));
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
        assert!(level.children.index.is_none());
        for name in names.iter().skip(30) {
            assert!(level.child(name).is_some(), "{name}");
        }
        assert!(level.child(&names[0]).is_none());
        // Growing past the threshold again builds the index again, appended entries included.
        for i in 100..120 {
            level.child_or_insert(
                &format!("hwthread{i}"),
                usize::MAX,
                &mut MemoryDelta::default(),
            );
        }
        assert!(level.children.index.is_some());
        assert!(level.child("hwthread119").is_some() && level.child(&names[35]).is_some());
    }

    #[test]
    fn hints_only_shortcut_lookups_that_find_the_same_entry() {
        // Issue 10: writes look near the previous entry first; a stale or wrong hint must
        // still find the entry by its key, and never a neighbour.
        let pool = BufferPool::new(4);
        let mut level = Level::default();
        let mut hint = Hint::default();
        let mut delta = MemoryDelta::default();
        for i in 0..40 {
            let child =
                level.child_or_insert_near(&format!("c{i}"), usize::MAX, &mut delta, &mut hint);
            child.expect("no limit").write(0, 10, 100, 1.0, &pool, true);
            assert_eq!(hint.0, i, "a new child leaves the hint at it");
        }
        for (name, start) in [("c7", 6), ("c7", 7), ("c7", 39), ("c0", 39), ("c39", 0)] {
            let mut hint = Hint(start);
            let child = level.child_or_insert_near(name, usize::MAX, &mut delta, &mut hint);
            let found = child.expect("exists") as *const Level;
            assert_eq!(
                found,
                level.child(name).expect("exists") as *const Level,
                "{name}"
            );
            assert_eq!(level.children.items[hint.0].0.as_ref(), name);
        }
        // Removing entries moves the others; the hint then points at another key.
        for name in ["c5", "c6"] {
            level
                .child_mut(name)
                .expect("exists")
                .free_before(i64::MAX, &pool);
        }
        level.free_before(0, &pool);
        let mut hint = Hint(5);
        let child = level.child_or_insert_near("c9", 0, &mut delta, &mut hint);
        assert!(child.is_some_and(|c| c.series(0).is_some()));
        assert_eq!(level.children.items[hint.0].0.as_ref(), "c9");
        // Series: a hint at another metric's series writes to the right one.
        for metric in 0..20 {
            level.write(metric, 10, 100, metric as f32, &pool, true);
        }
        let mut hint = Hint(3);
        let written = level.write_near(17, 10, (110, 7.0), &pool, false, &mut hint);
        assert!(written.is_some_and(|w| !w.new_series));
        assert_eq!(level.series.items[hint.0].0, 17);
        assert!(
            level
                .write_near(99, 10, (110, 7.0), &pool, false, &mut hint)
                .is_none()
        );
    }

    #[test]
    fn adding_children_and_series_is_linear_work() {
        // Issue 6, item 14: every new child used to rebuild the whole name index, so adding
        // n children indexed n²/2 names. Now only crossing the threshold builds it.
        let pool = BufferPool::new(4);
        let mut level = Level::default();
        for i in 0..10_000 {
            let child =
                level.child_or_insert(&format!("core{i}"), usize::MAX, &mut MemoryDelta::default());
            let child = child.expect("no limit");
            child.write(0, 10, 100, 1.0, &pool, true);
            level.write(i, 10, 100, 1.0, &pool, true);
        }
        assert_eq!(level.children.reindexed, INDEXED_MIN + 1);
        assert_eq!(level.series.reindexed, INDEXED_MIN + 1);
        assert!((0..10_000).all(|i| level.child(&format!("core{i}")).is_some()));
    }

    #[test]
    fn limits_refuse_new_children_and_series_but_not_existing_ones() {
        let pool = BufferPool::new(4);
        let mut level = Level::default();
        assert!(
            level
                .child_or_insert("a", 1, &mut MemoryDelta::default())
                .is_some()
        );
        assert!(
            level
                .child_or_insert("b", 1, &mut MemoryDelta::default())
                .is_none()
        );
        assert!(
            level
                .child_or_insert("a", 1, &mut MemoryDelta::default())
                .is_some()
        );
        assert!(level.write(7, 10, 100, 1.0, &pool, false).is_none());
        let first = level.write(7, 10, 100, 1.0, &pool, true).expect("created");
        assert!(first.new_series);
        let again = level.write(7, 10, 110, 1.0, &pool, false).expect("exists");
        assert!(!again.new_series);
    }

    #[test]
    fn many_series_on_one_level_are_indexed() {
        let pool = BufferPool::new(4);
        let mut level = Level::default();
        for metric in (0..100).rev() {
            level.write(metric, 10, 100, metric as f32, &pool, true);
        }
        assert!(level.series.index.is_some());
        for metric in 0..100 {
            let series = level.series(metric).expect("exists");
            let mut out = Vec::new();
            series.read(0, 200, &mut out);
            assert_eq!(out, [metric as f32]);
        }
    }
}
