//! A series' label set as remote write wants it: sorted bytewise by name (Go string order, so
//! `Zone` < `__name__` < `a`), names unique, no empty names or values (an empty value means
//! "absent" in Prometheus).

use std::sync::Arc;

/// Cheap to clone: the pairs are shared.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<[(Box<str>, Box<str>)]>);

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
        Labels(out.into())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| &**v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (&**n, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when both share one allocation: a fast path before comparing contents.
    pub fn ptr_eq(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The shared allocation's address: identifies this `Labels` and its clones (not other
    /// allocations with equal contents) while any of them lives.
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<u8>() as usize
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
