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

/// Most series given a shared id (and so a cached label set per endpoint). Beyond it, new
/// series are labeled afresh at every sample: a cardinality explosion costs CPU, not
/// unbounded memory.
pub const SERIES_CACHED_MAX: usize = 4 << 20;

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
    /// `id` picks its shard and its acknowledged timestamp.
    Cached { id: u32, labels: Labels },
    /// Beyond [`SERIES_CACHED_MAX`]: `hash` does what the id does.
    Uncached { hash: u64, labels: Labels },
}

/// What an endpoint keeps per series: its label set (an `Arc` into the shared table) and the
/// newest timestamp the receiver acknowledged — 24 bytes a series.
#[derive(Debug)]
pub struct EndpointSeries {
    table: Arc<SeriesTable>,
    /// By id; `None` until the endpoint first sees the series, an empty set when dropped.
    labels: Vec<Option<Labels>>,
    /// By id; `i64::MIN` when nothing was acknowledged.
    acked_ms: Vec<i64>,
    /// The hint read at startup (by [`series_hash`]), consumed as series are first seen, and
    /// the acknowledged timestamps of uncached series.
    by_hash: HashMap<u64, i64>,
    key: String,
}

impl EndpointSeries {
    pub fn new(table: Arc<SeriesTable>, hint: HashMap<u64, i64>) -> Self {
        Self {
            table,
            labels: Vec::new(),
            acked_ms: Vec::new(),
            by_hash: hint,
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
                    hash: series_hash(&labels),
                    labels,
                },
            };
        };
        let index = id as usize;
        if index >= self.labels.len() {
            self.labels.resize(index + 1, None);
            self.acked_ms.resize(index + 1, i64::MIN);
        }
        let labels = match &self.labels[index] {
            Some(labels) => labels.clone(),
            None => {
                let labels = match relabeler.apply(store_labels(key)) {
                    Some(labels) => {
                        if let Some(acked) = self.by_hash.remove(&series_hash(&labels)) {
                            self.acked_ms[index] = acked;
                        }
                        self.table.intern(labels)
                    }
                    None => Labels::new(Vec::new()),
                };
                self.labels[index] = Some(labels.clone());
                labels
            }
        };
        match labels.is_empty() {
            true => Resolved::Dropped,
            false => Resolved::Cached { id, labels },
        }
    }

    /// The newest acknowledged timestamp of a resolved series.
    pub fn acked_ms(&self, series: &Resolved) -> i64 {
        match series {
            Resolved::Cached { id, .. } => {
                self.acked_ms.get(*id as usize).copied().unwrap_or(i64::MIN)
            }
            Resolved::Uncached { hash, .. } => self.by_hash.get(hash).copied().unwrap_or(i64::MIN),
            Resolved::Dropped => i64::MIN,
        }
    }

    /// The receiver acknowledged a sample at `timestamp_ms` of the series `reference`
    /// ([`SeriesRef`]).
    pub fn acknowledge(&mut self, reference: SeriesRef, timestamp_ms: i64) {
        let acked = match reference {
            SeriesRef::Id(id) => self.acked_ms.get_mut(id as usize),
            SeriesRef::Hash(hash) => Some(self.by_hash.entry(hash).or_insert(i64::MIN)),
        };
        if let Some(acked) = acked {
            *acked = (*acked).max(timestamp_ms);
        }
    }

    /// Series with an acknowledged timestamp: what the hint file needs (hashed by the caller,
    /// off the lock).
    pub fn acknowledged(&self) -> (Vec<(Labels, i64)>, HashMap<u64, i64>) {
        let cached = self
            .labels
            .iter()
            .zip(&self.acked_ms)
            .filter_map(|(labels, &acked)| match labels {
                Some(labels) if acked != i64::MIN && !labels.is_empty() => {
                    Some((labels.clone(), acked))
                }
                _ => None,
            })
            .collect();
        (cached, self.by_hash.clone())
    }

    /// Series this endpoint keeps a place for.
    pub fn series_count(&self) -> usize {
        self.labels.len() + self.by_hash.len()
    }
}

/// How a shard refers back to a sample's series when it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesRef {
    Id(u32),
    Hash(u64),
}

impl Resolved {
    /// Shard key and acknowledgement reference; `None` for a dropped series.
    pub fn reference(&self) -> Option<(u64, SeriesRef, &Labels)> {
        match self {
            Resolved::Dropped => None,
            Resolved::Cached { id, labels } => Some((u64::from(*id), SeriesRef::Id(*id), labels)),
            Resolved::Uncached { hash, labels } => Some((*hash, SeriesRef::Hash(*hash), labels)),
        }
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

/// FNV-1a (64 bit) over names and values: stable across releases and restarts (the hint
/// file keys on it), unlike the standard library's hasher.
pub fn series_hash(labels: &Labels) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |bytes: &[u8]| {
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, value) in labels.iter() {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xfe]);
    }
    hash
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
        let Resolved::Cached { id, labels } = series.resolve(&key, &relabeler) else {
            panic!("not cached");
        };
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
        let Resolved::Cached {
            id: same,
            labels: shared,
        } = other.resolve(&key, &relabeler)
        else {
            panic!("not cached");
        };
        assert_eq!(same, id);
        assert!(shared.ptr_eq(&labels));
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
        let resolved = series.resolve(&key, &relabeler);
        assert_eq!(series.acked_ms(&resolved), i64::MIN);
        let (_, reference, _) = resolved.reference().unwrap();
        series.acknowledge(reference, 5_000);
        series.acknowledge(reference, 4_000);
        assert_eq!(series.acked_ms(&resolved), 5_000);
        let (cached, uncached) = series.acknowledged();
        assert!(uncached.is_empty());
        let hint: HashMap<u64, i64> = cached
            .iter()
            .map(|(labels, acked)| (series_hash(labels), *acked))
            .collect();
        // After a restart: a new table, ids assigned afresh, the hint found by hash.
        let mut restarted = EndpointSeries::new(SeriesTable::new(), hint);
        let resolved = restarted.resolve(&key, &relabeler);
        assert_eq!(restarted.acked_ms(&resolved), 5_000);
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
