//! From a store series to a remote-write label set, once per series and endpoint.
//!
//! Labels: `__name__` (the metric), `cluster`, `hostname`, and for sub-levels `type` and
//! `type_id`, `stype` and `stype_id`. The tags are called `type-id` and `stype-id` in line
//! protocol, but Remote-Write 1.0 requires label names to match `[a-zA-Z_][a-zA-Z0-9_]*`
//! (receivers may refuse or mangle a dash), so the dash becomes an underscore. Metric names
//! that are not valid Prometheus names get their invalid characters replaced by `_`, as
//! Prometheus's own translators do.

use crate::labels::Labels;
use crate::relabel::Relabeler;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use strata_store::SeriesKey;
use strata_wal::SeriesDefinition;

/// Most series given a shared id (and so a cached label set per endpoint; ids are never
/// given back). Beyond it, an endpoint keeps the label sets of at most
/// [`UNCACHED_LABELS_MAX`] such series per log segment, and builds the others' labels afresh
/// for every sample from their definitions (names only, ~70 bytes): a cardinality explosion
/// costs CPU, not memory without bound.
#[cfg(not(test))]
pub const SERIES_CACHED_MAX: usize = 4 << 20;
#[cfg(test)]
pub const SERIES_CACHED_MAX: usize = 2;

/// Label sets (~0.5 KB each) an endpoint keeps for series beyond [`SERIES_CACHED_MAX`] in
/// one log segment.
#[cfg(not(test))]
pub const UNCACHED_LABELS_MAX: usize = 65_536;
#[cfg(test)]
pub const UNCACHED_LABELS_MAX: usize = 2;

/// Level kinds cc-metric-collector writes. A level name is stored as kind and id run
/// together (`hwthread12`), so these tell where the kind ends.
const KNOWN_KINDS: [&str; 7] = [
    "memoryDomain",
    "accelerator",
    "hwthread",
    "socket",
    "core",
    "node",
    "die",
];

/// What every endpoint shares: an id per store series, and one copy of each distinct label
/// set (endpoints whose relabeling gives the same labels share it). Per endpoint there is
/// then only an index by id ([`EndpointSeries`]), so memory per series and endpoint stays
/// small.
#[derive(Debug, Default)]
pub struct SeriesTable {
    ids: RwLock<HashMap<Box<str>, u32>>,
    interned: Mutex<HashSet<Labels>>,
}

impl SeriesTable {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The id of a store series (its key as text), assigned on first sight while there is
    /// room.
    fn id(&self, key: &str) -> Option<u32> {
        if let Some(&id) = self.ids.read().get(key) {
            return Some(id);
        }
        let mut ids = self.ids.write();
        let next = ids.len();
        if next >= SERIES_CACHED_MAX {
            return ids.get(key).copied();
        }
        Some(*ids.entry(key.into()).or_insert(next as u32))
    }

    fn intern(&self, labels: Labels) -> Labels {
        let mut interned = self.interned.lock();
        if let Some(existing) = interned.get(&labels) {
            return existing.clone();
        }
        interned.insert(labels.clone());
        labels
    }
}

/// A store series as one endpoint sends it.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// The endpoint's relabel rules drop it.
    Dropped,
    /// `id` picks its shard and its acknowledged mark.
    Cached { id: u32 },
    /// Beyond [`SERIES_CACHED_MAX`]: `hash` does what the id does.
    Uncached { hash: u64, labels: Labels },
}

/// Where a sample is in the log: its record's sequence number and its place in the record.
///
/// The hint keys on this, not on sample time: a series goes to one shard, which sends in log
/// order, so when the receiver acknowledges a sample every earlier sample of its series was
/// delivered too — whatever their timestamps (late samples are routine with several writers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mark {
    pub sequence: u64,
    pub index: u32,
}

/// What an endpoint keeps per series: its label set (an `Arc` into the shared table) and the
/// log position of its newest acknowledged sample — 16 bytes a series.
#[derive(Debug)]
pub struct EndpointSeries {
    table: Arc<SeriesTable>,
    /// By id; `None` until the endpoint first sees the series, an empty set when dropped.
    labels: Vec<Option<Labels>>,
    /// By id: the acknowledged [`Mark`], packed (see [`pack`]); 0: nothing acknowledged.
    acked: Vec<u64>,
    /// The hint read at startup (by [`Labels::stable_hash`]), consumed as series are first seen, and
    /// the acknowledged marks of uncached series.
    by_hash: HashMap<u64, Mark>,
    /// Counts acknowledgements, so that an unchanged hint is not written again.
    changes: u64,
    key: String,
}

impl EndpointSeries {
    pub fn new(table: Arc<SeriesTable>, hint: HashMap<u64, Mark>) -> Self {
        Self {
            table,
            labels: Vec::new(),
            acked: Vec::new(),
            by_hash: hint,
            changes: 0,
            key: String::new(),
        }
    }

    /// How the endpoint sends the series of `key`.
    pub fn resolve(&mut self, key: &SeriesKey<'_>, relabeler: &Relabeler) -> Resolved {
        self.key.clear();
        for part in [
            key.cluster,
            key.host,
            key.levels[0],
            key.levels[1],
            key.metric,
        ] {
            self.key.push_str(part);
            self.key.push('\u{0}');
        }
        let Some(id) = self.table.id(&self.key) else {
            return match relabeler.apply(store_labels(key)) {
                None => Resolved::Dropped,
                Some(labels) => Resolved::Uncached {
                    hash: labels.stable_hash(),
                    labels,
                },
            };
        };
        let index = id as usize;
        if index >= self.labels.len() {
            grow_to(&mut self.labels, index, None);
            grow_to(&mut self.acked, index, 0);
        }
        let labels = match &self.labels[index] {
            Some(labels) => labels,
            None => {
                let labels = match relabeler.apply(store_labels(key)) {
                    Some(labels) => {
                        if let Some(acked) = self.by_hash.remove(&labels.stable_hash()) {
                            self.acked[index] = pack(acked);
                        }
                        self.table.intern(labels)
                    }
                    None => Labels::new(Vec::new()),
                };
                &*self.labels[index].insert(labels)
            }
        };
        match labels.is_empty() {
            true => Resolved::Dropped,
            false => Resolved::Cached { id },
        }
    }

    /// The label set of the series `id`, once resolved (empty when dropped).
    pub fn labels(&self, id: u32) -> Option<&Labels> {
        self.labels.get(id as usize)?.as_ref()
    }

    /// The log position of the newest acknowledged sample of a series.
    pub fn acked(&self, series: SeriesRef) -> Option<Mark> {
        match series {
            SeriesRef::Id(id) => self.mark(id as usize),
            SeriesRef::Hash(hash) => self.by_hash.get(&hash).copied(),
        }
    }

    fn mark(&self, index: usize) -> Option<Mark> {
        self.acked.get(index).copied().and_then(unpack)
    }

    /// The receiver acknowledged the sample at `mark` of the series `reference`.
    pub fn acknowledge(&mut self, reference: SeriesRef, mark: Mark) {
        self.changes += 1;
        match reference {
            SeriesRef::Id(id) => {
                let index = id as usize;
                if let Some(acked) = self.acked.get_mut(index) {
                    *acked = (*acked).max(pack(mark));
                }
            }
            SeriesRef::Hash(hash) => {
                let acked = self.by_hash.entry(hash).or_insert(mark);
                *acked = (*acked).max(mark);
            }
        }
    }

    /// Series with an acknowledged mark: what the hint file needs (hashed by the caller, off
    /// the lock).
    ///
    /// Marks in records before `floor` (a sequence number: no record before it is read
    /// again) skip nothing any more: they are left out, and dropped from the marks kept by
    /// hash, so series that went away do not stay in the hint forever.
    pub fn acknowledged(
        &mut self,
        floor: Option<u64>,
    ) -> (Vec<(Labels, Mark)>, HashMap<u64, Mark>) {
        let useful = |mark: &Mark| floor.is_none_or(|floor| mark.sequence >= floor);
        self.by_hash.retain(|_, mark| useful(mark));
        let cached = self
            .labels
            .iter()
            .enumerate()
            .filter_map(|(index, labels)| match (labels, self.mark(index)) {
                (Some(labels), Some(mark)) if !labels.is_empty() && useful(&mark) => {
                    Some((labels.clone(), mark))
                }
                _ => None,
            })
            .collect();
        (cached, self.by_hash.clone())
    }

    /// Changes since the start: equal counts, equal hints.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Series this endpoint keeps a place for.
    pub fn series_count(&self) -> usize {
        self.labels.len() + self.by_hash.len()
    }
}

/// Bits of a packed [`Mark`] that hold the index: a record holds at most 8 MiB and a sample
/// takes at least 5 bytes, so fewer than 2^21 samples.
const INDEX_BITS: u32 = 21;

/// A mark in 8 bytes: sequence + 1 above the index, so packed marks compare like marks and 0
/// is "nothing". A mark that does not fit (a 2^43rd record, or an oversized record of an old
/// segment version) packs as 0: the series is then sent again rather than wrongly skipped.
fn pack(mark: Mark) -> u64 {
    let sequence = mark.sequence.saturating_add(1);
    match sequence < 1 << (64 - INDEX_BITS) && mark.index < 1 << INDEX_BITS {
        true => sequence << INDEX_BITS | u64::from(mark.index),
        false => 0,
    }
}

fn unpack(packed: u64) -> Option<Mark> {
    let sequence = (packed >> INDEX_BITS).checked_sub(1)?;
    Some(Mark {
        sequence,
        index: (packed & ((1 << INDEX_BITS) - 1)) as u32,
    })
}

/// Grows `vector` to hold `index`, filling with `fill`, by steps of an eighth of its size:
/// doubling would leave up to half of it unused (100k series would cost 131k).
fn grow_to<T: Clone>(vector: &mut Vec<T>, index: usize, fill: T) {
    if index < vector.len() {
        return;
    }
    if index >= vector.capacity() {
        let step = (vector.capacity() / 8).max(1024);
        vector.reserve_exact((index + 1 - vector.len()).max(step));
    }
    vector.resize(index + 1, fill);
}

/// How a shard refers back to a sample's series when it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesRef {
    Id(u32),
    Hash(u64),
}

/// What one log segment's series refs stand for at one endpoint, resolved once per
/// definition: the reader then goes from a sample's ref to its labels by index, with no name
/// built or hashed per sample. 4 bytes a series.
#[derive(Debug, Default)]
pub struct SegmentRefs {
    segment: Option<u64>,
    /// By ref: a shared series id, [`DROPPED_SLOT`], or [`UNCACHED_SLOT`] | an index into
    /// `uncached`.
    slots: Vec<u32>,
    uncached: Vec<Uncached>,
    /// How many of `uncached` keep a label set (at most [`UNCACHED_LABELS_MAX`]).
    labeled: usize,
}

/// A series beyond the shared table.
#[derive(Debug)]
enum Uncached {
    Labeled {
        hash: u64,
        labels: Labels,
    },
    /// Past [`UNCACHED_LABELS_MAX`]: labeled again at every sample.
    Named(SeriesDefinition),
}

const DROPPED_SLOT: u32 = u32::MAX;
const UNCACHED_SLOT: u32 = 1 << 31;
const _: () = assert!(SERIES_CACHED_MAX < UNCACHED_SLOT as usize);

impl SegmentRefs {
    /// Refs are numbered per segment: a record of another segment than the last starts
    /// afresh.
    pub fn enter(&mut self, segment: u64) {
        if self.segment != Some(segment) {
            self.segment = Some(segment);
            self.slots.clear();
            self.uncached.clear();
            self.labeled = 0;
        }
    }

    /// `definition` resolved for this endpoint as `resolved`.
    pub fn define(&mut self, definition: &SeriesDefinition, resolved: Resolved) {
        let slot = match resolved {
            Resolved::Dropped => DROPPED_SLOT,
            Resolved::Cached { id } => id,
            Resolved::Uncached { hash, labels } => {
                self.uncached
                    .push(match self.labeled < UNCACHED_LABELS_MAX {
                        true => {
                            self.labeled += 1;
                            Uncached::Labeled { hash, labels }
                        }
                        false => Uncached::Named(definition.clone()),
                    });
                // 2^31 uncached series in one segment would need terabytes of memory first.
                u32::try_from(self.uncached.len() - 1)
                    .ok()
                    .filter(|&index| index < UNCACHED_SLOT - 1)
                    .map_or(DROPPED_SLOT, |index| UNCACHED_SLOT | index)
            }
        };
        let index = definition.series as usize;
        grow_to(&mut self.slots, index, DROPPED_SLOT);
        if let Some(place) = self.slots.get_mut(index) {
            *place = slot;
        }
    }

    /// Shard key, acknowledgement reference and labels of the series of a ref; `None` when
    /// the endpoint drops it.
    pub fn lookup(
        &self,
        series_ref: u32,
        series: &EndpointSeries,
        relabeler: &Relabeler,
    ) -> Option<(u64, SeriesRef, Labels)> {
        let slot = *self.slots.get(series_ref as usize)?;
        if slot == DROPPED_SLOT {
            return None;
        }
        if slot & UNCACHED_SLOT != 0 {
            let (hash, labels) = match self.uncached.get((slot & !UNCACHED_SLOT) as usize)? {
                Uncached::Labeled { hash, labels } => (*hash, labels.clone()),
                Uncached::Named(definition) => {
                    let labels = relabeler.apply(store_labels(&definition.key()))?;
                    (labels.stable_hash(), labels)
                }
            };
            return Some((hash, SeriesRef::Hash(hash), labels));
        }
        let labels = series.labels(slot)?.clone();
        Some((u64::from(slot), SeriesRef::Id(slot), labels))
    }
}

/// The labels of a store series, before relabeling.
pub fn store_labels(key: &SeriesKey<'_>) -> Vec<(String, String)> {
    let mut labels = Vec::with_capacity(7);
    labels.push(("__name__".to_owned(), metric_name(key.metric)));
    labels.push(("cluster".to_owned(), key.cluster.to_owned()));
    labels.push(("hostname".to_owned(), key.host.to_owned()));
    for (level, (kind_label, id_label)) in
        key.path().zip([("type", "type_id"), ("stype", "stype_id")])
    {
        let (kind, id) = split_level(level);
        labels.push((kind_label.to_owned(), kind.to_owned()));
        if !id.is_empty() {
            labels.push((id_label.to_owned(), id.to_owned()));
        }
    }
    labels
}

/// Splits a level name into kind and id: a known kind and the rest, else the name up to its
/// first digit and the rest (`socket0` → `socket`, `0`; `gpu3a` → `gpu`, `3a`).
pub fn split_level(name: &str) -> (&str, &str) {
    if let Some(kind) = KNOWN_KINDS
        .iter()
        .find(|kind| name.len() > kind.len() && name.starts_with(*kind))
    {
        return name.split_at(kind.len());
    }
    let at = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    name.split_at(at)
}

/// A valid Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`, other characters as `_`.
fn metric_name(metric: &str) -> String {
    let mut name: String = metric
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | ':' => c,
            _ => '_',
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn level_names_split_into_kind_and_id() {
        assert_eq!(split_level("hwthread12"), ("hwthread", "12"));
        assert_eq!(split_level("socket0"), ("socket", "0"));
        assert_eq!(
            split_level("accelerator00000000:3b:00.0"),
            ("accelerator", "00000000:3b:00.0")
        );
        assert_eq!(split_level("memoryDomain1"), ("memoryDomain", "1"));
        assert_eq!(split_level("nic0"), ("nic", "0"));
        assert_eq!(split_level("node"), ("node", ""));
        assert_eq!(split_level("0"), ("", "0"));
    }

    #[test]
    fn a_series_gets_the_documented_labels() {
        let key = SeriesKey {
            cluster: "fritz",
            host: "f0101",
            levels: ["socket1", "memoryDomain3"],
            metric: "mem.bw-total",
        };
        let relabeler = Relabeler::new(&[], &BTreeMap::new()).unwrap();
        let table = SeriesTable::new();
        let mut series = EndpointSeries::new(table.clone(), HashMap::new());
        let Resolved::Cached { id } = series.resolve(&key, &relabeler) else {
            panic!("not cached");
        };
        let labels = series.labels(id).unwrap().clone();
        let pairs: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(
            pairs,
            [
                ("__name__", "mem_bw_total"),
                ("cluster", "fritz"),
                ("hostname", "f0101"),
                ("stype", "memoryDomain"),
                ("stype_id", "3"),
                ("type", "socket"),
                ("type_id", "1"),
            ]
        );
        assert_eq!(metric_name("9lives"), "_9lives");
        // A second endpoint with the same labels shares the label set.
        let mut other = EndpointSeries::new(table, HashMap::new());
        let Resolved::Cached { id: same } = other.resolve(&key, &relabeler) else {
            panic!("not cached");
        };
        assert_eq!(same, id);
        assert!(other.labels(same).unwrap().ptr_eq(&labels));
    }

    #[test]
    fn the_hint_survives_a_restart_by_label_hash() {
        let key = SeriesKey {
            cluster: "c",
            host: "h",
            levels: ["", ""],
            metric: "m",
        };
        let relabeler = Relabeler::new(&[], &BTreeMap::new()).unwrap();
        let mut series = EndpointSeries::new(SeriesTable::new(), HashMap::new());
        let Resolved::Cached { id } = series.resolve(&key, &relabeler) else {
            panic!("not cached");
        };
        let reference = SeriesRef::Id(id);
        assert_eq!(series.acked(reference), None);
        let later = Mark {
            sequence: 7,
            index: 2,
        };
        series.acknowledge(reference, later);
        series.acknowledge(
            reference,
            Mark {
                sequence: 7,
                index: 1,
            },
        );
        assert_eq!(series.acked(reference), Some(later));
        let (cached, uncached) = series.acknowledged(None);
        assert!(uncached.is_empty());
        let hint: HashMap<u64, Mark> = cached
            .iter()
            .map(|(labels, acked)| (labels.stable_hash(), *acked))
            .collect();
        // After a restart: a new table, ids assigned afresh, the hint found by hash.
        let mut restarted = EndpointSeries::new(SeriesTable::new(), hint);
        let Resolved::Cached { id } = restarted.resolve(&key, &relabeler) else {
            panic!("not cached");
        };
        assert_eq!(restarted.acked(SeriesRef::Id(id)), Some(later));
    }

    #[test]
    fn packed_marks_compare_like_marks_and_never_claim_too_much() {
        let marks = [
            Mark {
                sequence: 0,
                index: 0,
            },
            Mark {
                sequence: 0,
                index: 5,
            },
            Mark {
                sequence: 1,
                index: 0,
            },
            Mark {
                sequence: (1 << 43) - 2,
                index: (1 << 21) - 1,
            },
        ];
        for pair in marks.windows(2) {
            assert!(pack(pair[0]) < pack(pair[1]));
        }
        for mark in marks {
            assert_eq!(unpack(pack(mark)), Some(mark));
        }
        assert_eq!(unpack(0), None);
        // What does not fit is "nothing acknowledged": sent again, never skipped.
        assert_eq!(
            pack(Mark {
                sequence: (1 << 43) - 1,
                index: 0
            }),
            0
        );
        assert_eq!(
            pack(Mark {
                sequence: 3,
                index: 1 << 21
            }),
            0
        );
        let mut grown = Vec::new();
        for index in 0..100_300 {
            grow_to(&mut grown, index, 0u8);
        }
        assert_eq!(grown.len(), 100_300);
        assert!(
            grown.capacity() <= 100_300 + 100_300 / 8,
            "{}",
            grown.capacity()
        );
    }

    #[test]
    fn marks_behind_the_cursor_leave_the_hint() {
        let key = |host| SeriesKey {
            cluster: "c",
            host,
            levels: ["", ""],
            metric: "m",
        };
        let relabeler = Relabeler::new(&[], &BTreeMap::new()).unwrap();
        let mark = |sequence| Mark { sequence, index: 0 };
        let gone = Labels::new(vec![("__name__".into(), "gone".into())]);
        let hint = HashMap::from([(gone.stable_hash(), mark(3))]);
        let mut series = EndpointSeries::new(SeriesTable::new(), hint);
        for (host, sequence) in [("old", 4), ("new", 9)] {
            let Resolved::Cached { id } = series.resolve(&key(host), &relabeler) else {
                panic!("not cached");
            };
            series.acknowledge(SeriesRef::Id(id), mark(sequence));
        }
        let (cached, by_hash) = series.acknowledged(None);
        assert_eq!((cached.len(), by_hash.len()), (2, 1));
        let (cached, by_hash) = series.acknowledged(Some(5));
        let kept: Vec<Option<&str>> = cached.iter().map(|(l, _)| l.get("hostname")).collect();
        assert_eq!(kept, [Some("new")]);
        assert!(
            by_hash.is_empty(),
            "the startup hint of a series gone is dropped"
        );
    }

    /// Beyond SERIES_CACHED_MAX (2 in tests), refs of uncached series resolve to their own
    /// labels, across a segment change and a re-definition, and their marks go by hash.
    #[test]
    fn uncached_refs_keep_their_labels_across_segments() {
        let relabeler = Relabeler::new(&[], &BTreeMap::new()).unwrap();
        let mut series = EndpointSeries::new(SeriesTable::new(), HashMap::new());
        let hosts: Vec<String> = (0..6).map(|i| format!("h{i}")).collect();
        let mut refs = SegmentRefs::default();
        for segment in [1u64, 2] {
            refs.enter(segment);
            // Segment 2 defines the hosts in another order.
            for (r, host) in hosts.iter().enumerate() {
                let h = if segment == 1 {
                    host.clone()
                } else {
                    hosts[5 - r].clone()
                };
                let key = SeriesKey {
                    cluster: "c",
                    host: &h,
                    levels: ["", ""],
                    metric: "m",
                };
                let resolved = series.resolve(&key, &relabeler);
                refs.define(&SeriesDefinition::new(r as u32, &key), resolved);
            }
            for r in 0..6u32 {
                let want = if segment == 1 {
                    &hosts[r as usize]
                } else {
                    &hosts[5 - r as usize]
                };
                let (_, reference, labels) = refs.lookup(r, &series, &relabeler).expect("resolved");
                assert_eq!(
                    labels.get("hostname"),
                    Some(want.as_str()),
                    "segment {segment} ref {r}"
                );
                let mark = Mark {
                    sequence: segment,
                    index: r,
                };
                series.acknowledge(reference, mark);
                assert_eq!(series.acked(reference), Some(mark));
            }
        }
        // Two cached, two uncached with label sets, two labeled at every lookup.
        assert_eq!(refs.labeled, UNCACHED_LABELS_MAX);
        assert!(
            refs.uncached
                .iter()
                .any(|u| matches!(u, Uncached::Named(_)))
        );
        assert!(refs.lookup(6, &series, &relabeler).is_none());
    }

    #[test]
    fn dropped_series_are_remembered_as_dropped() {
        let rule = crate::config::RelabelRule {
            action: crate::config::RelabelAction::Drop,
            source_labels: vec!["hostname".into()],
            separator: ";".into(),
            regex: "h".into(),
            target_label: None,
            replacement: "$1".into(),
        };
        let relabeler = Relabeler::new(&[rule], &BTreeMap::new()).unwrap();
        let mut series = EndpointSeries::new(SeriesTable::new(), HashMap::new());
        let key = SeriesKey {
            cluster: "c",
            host: "h",
            levels: ["", ""],
            metric: "m",
        };
        assert!(matches!(
            series.resolve(&key, &relabeler),
            Resolved::Dropped
        ));
        assert!(matches!(
            series.resolve(&key, &relabeler),
            Resolved::Dropped
        ));
    }
}
