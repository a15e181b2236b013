//! A batch of decoded samples: what one write request or message adds to the store.
//!
//! Ingest decodes line protocol into a [`WriteBatch`], and the batch is what the write-ahead
//! log appends and what the store applies, in that order. All names live in one text arena
//! and samples refer to them by span, so building a batch does not allocate per sample and the
//! batch owns its data (it can cross threads and outlive the request body). Consecutive samples
//! of the same cluster, host, level or metric share one span.

use crate::fxhash::same_bytes;

/// A range of the batch's text arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    len: u32,
}

/// The name of one level below a host, written as a kind and an id that are concatenated
/// (`"hwthread"` + `"12"` → `hwthread12`), as cc-metric-store names its levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LevelName<'a> {
    pub kind: &'a str,
    pub id: &'a str,
}

impl<'a> LevelName<'a> {
    pub const NONE: LevelName<'static> = LevelName { kind: "", id: "" };

    pub fn new(kind: &'a str, id: &'a str) -> Self {
        Self { kind, id }
    }

    fn is_none(&self) -> bool {
        self.kind.is_empty() && self.id.is_empty()
    }
}

/// Where a sample goes: cluster → host → up to two sub-levels → metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesKey<'a> {
    pub cluster: &'a str,
    pub host: &'a str,
    /// Sub-levels below the host; empty strings mark absent levels (always at the end).
    pub levels: [&'a str; 2],
    pub metric: &'a str,
}

impl SeriesKey<'_> {
    /// The sub-levels that are present.
    pub fn path(&self) -> impl Iterator<Item = &str> {
        self.levels.iter().copied().filter(|name| !name.is_empty())
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    cluster: Span,
    host: Span,
    levels: [Span; 2],
    metric: Span,
    timestamp_s: i64,
    value: f32,
}

impl Span {
    /// The text of this span in `arena` (empty if out of range, which a batch never makes).
    #[inline]
    fn of(self, arena: &str) -> &str {
        let start = self.start as usize;
        arena
            .get(start..start + self.len as usize)
            .unwrap_or_default()
    }
}

impl Entry {
    // NOTE: inlined so that a caller reading only some fields (`Store::admit` reads the
    // metric and the time) does not pay for slicing the others.
    #[inline]
    fn sample(self, arena: &str) -> BatchSample<'_> {
        BatchSample {
            key: SeriesKey {
                cluster: self.cluster.of(arena),
                host: self.host.of(arena),
                levels: [self.levels[0].of(arena), self.levels[1].of(arena)],
                metric: self.metric.of(arena),
            },
            timestamp_s: self.timestamp_s,
            value: self.value,
        }
    }
}

/// Samples decoded from one request, in arrival order.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    text: String,
    entries: Vec<Entry>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of names held; ingest flushes a batch before this grows large.
    pub fn text_bytes(&self) -> usize {
        self.text.len()
    }

    /// Heap bytes the batch holds, its spare capacity included: what keeping it costs.
    pub fn capacity_bytes(&self) -> usize {
        self.text.capacity() + self.entries.capacity() * std::mem::size_of::<Entry>()
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
    }

    /// The current end of the batch, to [`WriteBatch::truncate`] back to.
    pub fn mark(&self) -> BatchMark {
        BatchMark {
            entries: self.entries.len(),
            text: self.text.len(),
        }
    }

    /// Drops every sample pushed after `mark` (a reader undoing a damaged record).
    pub fn truncate(&mut self, mark: BatchMark) {
        self.entries.truncate(mark.entries);
        self.text.truncate(mark.text);
    }

    /// Appends one sample. Levels after an absent level are ignored.
    pub fn push(
        &mut self,
        cluster: &str,
        host: &str,
        levels: [LevelName<'_>; 2],
        metric: &str,
        timestamp_s: i64,
        value: f32,
    ) {
        let previous = self.entries.last().copied();
        let cluster = self.intern(cluster, previous.map(|p| p.cluster));
        let host = self.intern(host, previous.map(|p| p.host));
        let first = if levels[0].is_none() {
            Span::default()
        } else {
            self.intern_level(levels[0], previous.map(|p| p.levels[0]))
        };
        let second = if levels[0].is_none() || levels[1].is_none() {
            Span::default()
        } else {
            self.intern_level(levels[1], previous.map(|p| p.levels[1]))
        };
        let metric = self.intern(metric, previous.map(|p| p.metric));
        self.entries.push(Entry {
            cluster,
            host,
            levels: [first, second],
            metric,
            timestamp_s,
            value,
        });
    }

    /// The samples in arrival order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = BatchSample<'_>> {
        self.entries
            .iter()
            .map(move |entry| entry.sample(&self.text))
    }

    /// The `index`th sample.
    pub fn get(&self, index: usize) -> Option<BatchSample<'_>> {
        self.entries
            .get(index)
            .map(|entry| entry.sample(&self.text))
    }

    /// The samples from the `from`th on, each with the identity of its names
    /// ([`SampleNames`]), so that a consumer of runs of one host or metric compares the
    /// previous sample's names by identity instead of by text.
    pub fn iter_named(
        &self,
        from: usize,
    ) -> impl ExactSizeIterator<Item = (SampleNames, BatchSample<'_>)> {
        let entries = self.entries.get(from..).unwrap_or_default();
        entries.iter().map(move |entry| {
            let names = SampleNames {
                host: [entry.cluster, entry.host],
                metric: entry.metric,
            };
            (names, entry.sample(&self.text))
        })
    }

    /// The time and value of the samples from the `from`th on, without their names.
    pub fn times_values(&self, from: usize) -> impl ExactSizeIterator<Item = (i64, f32)> + '_ {
        let entries = self.entries.get(from..).unwrap_or_default();
        entries.iter().map(|entry| (entry.timestamp_s, entry.value))
    }

    /// Keeps the samples for which `keep` is true, in order, and returns how many were
    /// removed. In place and without allocating: the names of removed samples stay in the
    /// text arena (a batch lives for one request), so the spans of the others stay valid.
    /// A [`BatchMark`] taken before is meaningless afterwards.
    /// The samples handed to `keep` borrow the batch, so that it may remember names from one
    /// call to the next (a run of samples of one metric is looked up once).
    pub fn retain<'a>(&'a mut self, mut keep: impl FnMut(BatchSample<'a>) -> bool) -> usize {
        let before = self.entries.len();
        let Self { text, entries } = self;
        let text: &'a str = text;
        entries.retain(|entry| keep(entry.sample(text)));
        before - entries.len()
    }

    /// The bytes of `span`: comparing them needs no UTF-8 boundary checks, unlike
    /// [`Span::of`].
    #[inline]
    fn bytes(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        let bytes = self.text.as_bytes();
        bytes
            .get(start..start + span.len as usize)
            .unwrap_or_default()
    }

    fn intern(&mut self, name: &str, previous: Option<Span>) -> Span {
        if let Some(span) = previous.filter(|&span| same_bytes(self.bytes(span), name.as_bytes())) {
            return span;
        }
        let start = self.text.len();
        self.text.push_str(name);
        Self::span(start, name.len())
    }

    fn intern_level(&mut self, level: LevelName<'_>, previous: Option<Span>) -> Span {
        if let Some(span) = previous.filter(|&span| {
            let (text, kind) = (self.bytes(span), level.kind.len());
            text.len() == kind + level.id.len()
                && text.split_at_checked(kind).is_some_and(|(k, id)| {
                    same_bytes(k, level.kind.as_bytes()) && same_bytes(id, level.id.as_bytes())
                })
        }) {
            return span;
        }
        let start = self.text.len();
        self.text.push_str(level.kind);
        self.text.push_str(level.id);
        Self::span(start, level.kind.len() + level.id.len())
    }

    fn span(start: usize, len: usize) -> Span {
        // NOTE: ingest flushes batches long before 4 GiB of names; a batch this large is a bug.
        assert!(
            start + len <= u32::MAX as usize,
            "write batch text over 4 GiB"
        );
        Span {
            start: start as u32,
            len: len as u32,
        }
    }
}

/// A length of a [`WriteBatch`] to go back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMark {
    entries: usize,
    text: usize,
}

/// Which text of its batch a sample's names are: two samples of one batch with equal
/// `SampleNames::host` have the same cluster and host, with equal `SampleNames::metric` the
/// same metric, without comparing their text. Unequal ones may still name the same (compare
/// the text then): a name is shared only by a run of samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleNames {
    host: [Span; 2],
    metric: Span,
}

impl SampleNames {
    /// Whether the cluster and host are those of `other` by identity.
    #[inline]
    pub fn same_host(&self, other: &SampleNames) -> bool {
        self.host == other.host
    }

    /// Whether the metric is that of `other` by identity.
    #[inline]
    pub fn same_metric(&self, other: &SampleNames) -> bool {
        self.metric == other.metric
    }
}

/// One sample of a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchSample<'a> {
    pub key: SeriesKey<'a>,
    pub timestamp_s: i64,
    pub value: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_keys_and_shares_repeated_names() {
        let mut batch = WriteBatch::new();
        let hw = |id| [LevelName::new("hwthread", id), LevelName::NONE];
        batch.push("c", "h1", hw("0"), "cpu_user", 10, 1.0);
        batch.push("c", "h1", hw("1"), "cpu_user", 10, 2.0);
        batch.push("c", "h2", [LevelName::NONE; 2], "load", 11, 3.0);
        batch.push(
            "c",
            "h2",
            [LevelName::new("socket", "0"), LevelName::new("net", "ib0")],
            "bw",
            12,
            4.0,
        );
        let samples: Vec<_> = batch.iter().collect();
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].key.levels, ["hwthread0", ""]);
        assert_eq!(samples[1].key.levels, ["hwthread1", ""]);
        assert_eq!(samples[2].key.levels, ["", ""]);
        assert_eq!(samples[3].key.levels, ["socket0", "netib0"]);
        assert_eq!(
            samples[3].key.path().collect::<Vec<_>>(),
            ["socket0", "netib0"]
        );
        assert_eq!((samples[2].timestamp_s, samples[2].value), (11, 3.0));
        // "c", "h1", "hwthread0", "cpu_user", "hwthread1", "h2", "load", "socket0", "netib0", "bw"
        assert_eq!(batch.text_bytes(), 1 + 2 + 9 + 8 + 9 + 2 + 4 + 7 + 6 + 2);
    }

    #[test]
    fn retain_keeps_order_and_names_and_later_pushes_still_share_names() {
        // Goal: `retain` removes exactly the samples refused, keeps the others in order with
        // their names, and the batch stays usable (a push after it shares the last name).
        let mut batch = WriteBatch::new();
        let socket = [LevelName::new("socket", "0"), LevelName::NONE];
        for (i, host) in ["h1", "h1", "h2", "h2", "h3"].into_iter().enumerate() {
            batch.push("c", host, socket, "m", i as i64, i as f32);
        }
        let text_bytes = batch.text_bytes();
        let removed = batch.retain(|sample| sample.timestamp_s % 2 == 0);
        assert_eq!(removed, 2);
        let kept: Vec<_> = batch
            .iter()
            .map(|s| (s.key.host, s.key.levels[0], s.timestamp_s, s.value))
            .collect();
        assert_eq!(
            kept,
            [
                ("h1", "socket0", 0, 0.0),
                ("h2", "socket0", 2, 2.0),
                ("h3", "socket0", 4, 4.0)
            ]
        );
        assert_eq!(batch.text_bytes(), text_bytes, "no names rewritten");
        batch.push("c", "h3", socket, "m", 5, 5.0);
        assert_eq!(batch.text_bytes(), text_bytes, "h3, socket0 and m shared");
        assert_eq!(batch.retain(|_| true), 0);
        assert_eq!(batch.len(), 4);
        assert_eq!(batch.retain(|_| false), 4);
        assert!(batch.is_empty());
    }

    #[test]
    fn names_of_one_run_are_identical_and_times_values_skip_names() {
        // Goal: `SampleNames` are equal only where the names are the same text (a run shares
        // them), and `times_values`/`iter_named` start at `from`.
        let mut batch = WriteBatch::new();
        let none = [LevelName::NONE; 2];
        batch.push("c", "h1", none, "m", 1, 1.0);
        batch.push("c", "h1", none, "n", 2, 2.0);
        batch.push("c", "h2", none, "n", 3, 3.0);
        batch.push("c", "h1", none, "n", 4, 4.0);
        batch.push("", "", none, "n", 5, 5.0);
        batch.push("", "x", none, "n", 6, 6.0);
        let names: Vec<_> = batch.iter_named(0).map(|(names, _)| names).collect();
        assert!(names[0].same_host(&names[1]) && !names[0].same_metric(&names[1]));
        assert!(!names[1].same_host(&names[2]) && names[1].same_metric(&names[2]));
        // The same text in another span is not identical: the caller compares text then.
        assert!(!names[0].same_host(&names[3]));
        // Empty names take no bytes of the arena; they are still not the next name.
        assert!(!names[4].same_host(&names[5]));
        let from_two: Vec<_> = batch.iter_named(2).map(|(_, s)| s).collect();
        assert_eq!(from_two, batch.iter().skip(2).collect::<Vec<_>>());
        let times: Vec<_> = batch.times_values(3).collect();
        assert_eq!(times, [(4, 4.0), (5, 5.0), (6, 6.0)]);
        assert_eq!(batch.times_values(7).len(), 0);
    }

    #[test]
    fn a_second_level_without_a_first_is_dropped() {
        let mut batch = WriteBatch::new();
        batch.push(
            "c",
            "h",
            [LevelName::NONE, LevelName::new("x", "1")],
            "m",
            1,
            1.0,
        );
        assert_eq!(batch.iter().next().map(|s| s.key.levels), Some(["", ""]));
    }
}
