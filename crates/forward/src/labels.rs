//! A series' label set as remote write wants it: sorted bytewise by name (Go string order, so
//! `Zone` < `__name__` < `a`), names unique, no empty names or values (an empty value means
//! "absent" in Prometheus).

use std::sync::Arc;

/// Cheap to clone: the pairs are shared. Hashing uses the hash computed once at construction
/// ([`Labels::stable_hash`]): hashing the strings of every series in every request took a
/// fifth of the forwarder's CPU.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Labels(Arc<Inner>);

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Inner {
    pairs: Box<[(Box<str>, Box<str>)]>,
    /// FNV-1a of the pairs: a function of them, so the derived comparisons stay consistent.
    hash: u64,
    /// The pairs as 1.0 protobuf, ready to be copied into every request that carries the
    /// series (see [`Labels::encoded_v1`]); also a function of the pairs.
    encoded_v1: Box<[u8]>,
}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

/// FNV-1a (64 bit) over names and values: stable across releases and restarts (hint files
/// key on it), unlike the standard library's hasher.
fn fnv1a(pairs: &[(Box<str>, Box<str>)]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |bytes: &[u8]| {
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, value) in pairs {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xfe]);
    }
    hash
}

/// `TimeSeries.labels` (field 1) and `Label.name`/`Label.value` (fields 1 and 2), all
/// length-delimited.
const LABELS_TAG: u8 = 1 << 3 | 2;
const NAME_TAG: u8 = 1 << 3 | 2;
const VALUE_TAG: u8 = 2 << 3 | 2;

fn encode_v1(pairs: &[(Box<str>, Box<str>)]) -> Box<[u8]> {
    use prost::encoding::{encode_varint, encoded_len_varint};
    let field = |text: &str| 1 + encoded_len_varint(text.len() as u64) + text.len();
    let mut out = Vec::new();
    for (name, value) in pairs {
        let label = field(name) + field(value);
        out.push(LABELS_TAG);
        encode_varint(label as u64, &mut out);
        for (tag, text) in [(NAME_TAG, name), (VALUE_TAG, value)] {
            out.push(tag);
            encode_varint(text.len() as u64, &mut out);
            out.extend_from_slice(text.as_bytes());
        }
    }
    out.into()
}

impl Labels {
    /// Sorts, keeps the last of duplicate names (as Prometheus's label builder does when a
    /// name is set twice), then drops empty names and values.
    pub fn new(mut pairs: Vec<(String, String)>) -> Labels {
        // A stable sort keeps duplicates in input order, so the last of a run is the last set.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            match out.last_mut() {
                Some(last) if *last.0 == *name => last.1 = value.into_boxed_str(),
                _ => out.push((name.into_boxed_str(), value.into_boxed_str())),
            }
        }
        out.retain(|(name, value)| !name.is_empty() && !value.is_empty());
        let pairs: Box<[(Box<str>, Box<str>)]> = out.into();
        let hash = fnv1a(&pairs);
        let encoded_v1 = encode_v1(&pairs);
        Labels(Arc::new(Inner {
            pairs,
            hash,
            encoded_v1,
        }))
    }

    /// Labels whose hash is `hash`, whatever their contents: a test's 64-bit collision.
    #[cfg(test)]
    pub(crate) fn with_hash(pairs: Vec<(String, String)>, hash: u64) -> Labels {
        let labels = Labels::new(pairs);
        Labels(Arc::new(Inner {
            pairs: labels.0.pairs.clone(),
            hash,
            encoded_v1: labels.0.encoded_v1.clone(),
        }))
    }

    /// Each pair as a 1.0 `Label` message framed as field 1 of `TimeSeries`: a request
    /// copies these bytes instead of building and encoding the strings again (which took a
    /// quarter of the forwarder's CPU in allocations).
    pub fn encoded_v1(&self) -> &[u8] {
        &self.0.encoded_v1
    }

    /// A hash of the contents that never changes between releases or runs.
    pub fn stable_hash(&self) -> u64 {
        self.0.hash
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let pairs = &self.0.pairs;
        pairs
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .and_then(|i| pairs.get(i))
            .map(|(_, v)| &**v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.pairs.iter().map(|(n, v)| (&**n, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.pairs.is_empty()
    }

    /// True when both share one allocation: a fast path before comparing contents.
    pub fn ptr_eq(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The shared allocation's address: identifies this `Labels` and its clones (not other
    /// allocations with equal contents) while any of them lives.
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// Equal contents, checking the shared allocation first.
    pub fn same_series(&self, other: &Labels) -> bool {
        self.ptr_eq(other) || self.0 == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sorts_bytewise_like_go_strings() {
        let labels = Labels::new(pairs(&[("a", "1"), ("__name__", "m"), ("Zone", "z")]));
        let names: Vec<&str> = labels.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Zone", "__name__", "a"]);
    }

    #[test]
    fn last_duplicate_wins_and_empty_values_go() {
        let labels = Labels::new(pairs(&[
            ("job", "first"),
            ("x", "kept"),
            ("job", "second"),
            ("empty", ""),
            ("", "no name"),
            ("gone", "a"),
            ("gone", ""),
        ]));
        let got: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(got, [("job", "second"), ("x", "kept")]);
        assert_eq!(labels.get("job"), Some("second"));
        assert_eq!(labels.get("empty"), None);
        assert_eq!(labels.get("gone"), None);
        assert_eq!(labels.len(), 2);
    }

    #[test]
    fn same_series_compares_contents() {
        let a = Labels::new(pairs(&[("__name__", "m"), ("host", "h1")]));
        let b = Labels::new(pairs(&[("host", "h1"), ("__name__", "m")]));
        let c = Labels::new(pairs(&[("host", "h2"), ("__name__", "m")]));
        assert!(a.same_series(&b) && !a.ptr_eq(&b));
        assert!(a.same_series(&a.clone()) && a.ptr_eq(&a.clone()));
        assert!(!a.same_series(&c));
    }
}
