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
use std::collections::HashMap;
use strata_store::SeriesKey;

/// Most series an endpoint remembers labels for. Past it the cache starts over (labels are
/// rebuilt on next sight), so a cardinality explosion costs CPU, not unbounded memory.
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

/// A series as an endpoint sends it.
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: Labels,
    /// [`series_hash`] of the labels: picks the shard, keys the acknowledged-timestamp hint.
    pub hash: u64,
}

/// Label sets by store series, for one endpoint (relabeling differs per endpoint).
#[derive(Debug, Default)]
pub struct SeriesCache {
    /// `None`: the relabel rules drop the series.
    series: HashMap<Box<str>, Option<Series>>,
    key: String,
}

impl SeriesCache {
    /// The series for `key`, or `None` when relabeling drops it.
    pub fn get(&mut self, key: &SeriesKey<'_>, relabeler: &Relabeler) -> Option<&Series> {
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
        if !self.series.contains_key(self.key.as_str()) {
            if self.series.len() >= SERIES_CACHED_MAX {
                self.series.clear();
            }
            let series = relabeler.apply(store_labels(key)).map(|labels| Series {
                hash: series_hash(&labels),
                labels,
            });
            self.series.insert(self.key.as_str().into(), series);
        }
        self.series.get(self.key.as_str()).and_then(Option::as_ref)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.series.len()
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
        let mut cache = SeriesCache::default();
        let series = cache.get(&key, &relabeler).unwrap().clone();
        let labels: Vec<(&str, &str)> = series.labels.iter().collect();
        assert_eq!(
            labels,
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
        assert_eq!(series.hash, series_hash(&series.labels));
        assert_eq!(cache.len(), 1);
        cache.get(&key, &relabeler);
        assert_eq!(cache.len(), 1, "the second sight is a cache hit");
        assert_eq!(metric_name("9lives"), "_9lives");
    }
}
