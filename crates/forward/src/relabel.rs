//! Prometheus's `write_relabel_configs` for the actions Strata offers: keep, drop, replace,
//! labeldrop and labelkeep. Regexes are anchored (`^(?:re)$`) as Prometheus anchors them;
//! replacements expand `$1`, `$name` and `${name}` as Go's `Regexp.Expand` does (the `regex`
//! crate's `Captures::expand` follows the same rules, including `$1x` naming group `1x`).

use std::collections::BTreeMap;

use regex::Regex;

use crate::config::{RelabelAction, RelabelRule};
use crate::error::Error;
use crate::labels::Labels;

/// One endpoint's external labels and relabel rules, compiled once.
#[derive(Debug, Clone)]
pub struct Relabeler {
    external_labels: Vec<(String, String)>,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    action: RelabelAction,
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    target_label: String,
    replacement: String,
}

impl Relabeler {
    pub fn new(
        rules: &[RelabelRule],
        external_labels: &BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let regex = Regex::new(&format!("^(?:{})$", rule.regex)).map_err(|source| {
                    Error::Regex {
                        index,
                        source: Box::new(source),
                    }
                })?;
                let target_label = match (rule.action, &rule.target_label) {
                    (RelabelAction::Replace, None) => {
                        return Err(Error::MissingTargetLabel { index });
                    }
                    (_, target) => target.clone().unwrap_or_default(),
                };
                Ok(Rule {
                    action: rule.action,
                    source_labels: rule.source_labels.clone(),
                    separator: rule.separator.clone(),
                    regex,
                    target_label,
                    replacement: rule.replacement.clone(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let external_labels = external_labels
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        Ok(Self {
            external_labels,
            rules,
        })
    }

    /// Applies external labels (added when absent, as Prometheus does) then the rules;
    /// `None` = dropped (by keep/drop, or because no label is left).
    pub fn apply(&self, labels: Vec<(String, String)>) -> Option<Labels> {
        let mut set: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in labels {
            put(&mut set, name, value);
        }
        for (name, value) in &self.external_labels {
            if !set.contains_key(name) {
                put(&mut set, name.clone(), value.clone());
            }
        }
        for rule in &self.rules {
            if !rule.apply(&mut set) {
                return None;
            }
        }
        if set.is_empty() {
            return None;
        }
        Some(Labels::new(set.into_iter().collect()))
    }
}

impl Rule {
    /// False when the series is dropped.
    fn apply(&self, set: &mut BTreeMap<String, String>) -> bool {
        match self.action {
            RelabelAction::Keep => self.regex.is_match(&self.source_value(set)),
            RelabelAction::Drop => !self.regex.is_match(&self.source_value(set)),
            RelabelAction::Replace => {
                let value = self.source_value(set);
                let Some(captures) = self.regex.captures(&value) else {
                    return true;
                };
                let mut target = String::new();
                captures.expand(&self.target_label, &mut target);
                // Prometheus skips a rule whose expanded target is not a valid label name.
                if !is_valid_label_name(&target) {
                    return true;
                }
                let mut result = String::new();
                captures.expand(&self.replacement, &mut result);
                put(set, target, result);
                true
            }
            RelabelAction::LabelDrop => {
                set.retain(|name, _| !self.regex.is_match(name));
                true
            }
            RelabelAction::LabelKeep => {
                set.retain(|name, _| self.regex.is_match(name));
                true
            }
        }
    }

    /// The source labels' values joined by the separator; an absent label is "".
    fn source_value(&self, set: &BTreeMap<String, String>) -> String {
        let mut value = String::new();
        for (i, name) in self.source_labels.iter().enumerate() {
            if i > 0 {
                value.push_str(&self.separator);
            }
            if let Some(v) = set.get(name) {
                value.push_str(v);
            }
        }
        value
    }
}

/// An empty value deletes the label, as in Prometheus's label builder.
fn put(set: &mut BTreeMap<String, String>, name: String, value: String) {
    if value.is_empty() {
        set.remove(&name);
    } else {
        set.insert(name, value);
    }
}

/// Remote-write 1.0's label-name rule, `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: RelabelAction, sources: &[&str], regex: &str) -> RelabelRule {
        RelabelRule {
            action,
            source_labels: sources.iter().map(|s| s.to_string()).collect(),
            separator: ";".to_string(),
            regex: regex.to_string(),
            target_label: None,
            replacement: "$1".to_string(),
        }
    }

    fn series(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn cpu() -> Vec<(String, String)> {
        series(&[
            ("__name__", "cpu_load"),
            ("cluster", "fritz"),
            ("hostname", "f0001"),
        ])
    }

    fn relabel(rules: &[RelabelRule], input: Vec<(String, String)>) -> Option<Vec<String>> {
        let relabeler = Relabeler::new(rules, &BTreeMap::new()).ok()?;
        relabeler
            .apply(input)
            .map(|l| l.iter().map(|(n, v)| format!("{n}={v}")).collect())
    }

    #[test]
    fn keep_is_anchored() {
        // "cpu" alone does not match "cpu_load": the regex is anchored.
        assert_eq!(
            relabel(&[rule(RelabelAction::Keep, &["__name__"], "cpu")], cpu()),
            None
        );
        assert!(relabel(&[rule(RelabelAction::Keep, &["__name__"], "cpu_.*")], cpu()).is_some());
    }

    #[test]
    fn drop_joins_source_labels_with_the_separator() {
        let drop = rule(RelabelAction::Drop, &["cluster", "hostname"], "fritz;f0+1");
        assert_eq!(relabel(&[drop], cpu()), None);
        let mut other = rule(RelabelAction::Drop, &["cluster", "hostname"], "fritz-f0001");
        assert!(relabel(std::slice::from_ref(&other), cpu()).is_some());
        other.separator = "-".to_string();
        assert_eq!(relabel(&[other], cpu()), None);
    }

    #[test]
    fn replace_expands_groups_and_an_empty_result_deletes() {
        let mut replace = rule(
            RelabelAction::Replace,
            &["hostname"],
            "(?P<rack>f\\d\\d)(\\d+)",
        );
        replace.target_label = Some("rack".to_string());
        replace.replacement = "r-${rack}-$2".to_string();
        assert_eq!(
            relabel(std::slice::from_ref(&replace), cpu()),
            Some(vec![
                "__name__=cpu_load".to_string(),
                "cluster=fritz".to_string(),
                "hostname=f0001".to_string(),
                "rack=r-f00-01".to_string(),
            ])
        );
        // No match: the rule does nothing.
        replace.regex = "x(.*)".to_string();
        assert_eq!(
            relabel(std::slice::from_ref(&replace), cpu()).map(|l| l.len()),
            Some(3)
        );
        // An empty replacement deletes the target.
        let mut delete = rule(RelabelAction::Replace, &["cluster"], ".*");
        delete.target_label = Some("hostname".to_string());
        delete.replacement = String::new();
        assert_eq!(
            relabel(&[delete], cpu()),
            Some(vec![
                "__name__=cpu_load".to_string(),
                "cluster=fritz".to_string()
            ])
        );
        // A target that expands to an invalid name is skipped.
        let mut invalid = rule(RelabelAction::Replace, &["cluster"], "(.*)");
        invalid.target_label = Some("$1-x".to_string());
        assert_eq!(relabel(&[invalid], cpu()).map(|l| l.len()), Some(3));
    }

    #[test]
    fn replace_without_target_is_refused() {
        let replace = rule(RelabelAction::Replace, &["cluster"], "(.*)");
        assert!(matches!(
            Relabeler::new(&[replace], &BTreeMap::new()),
            Err(Error::MissingTargetLabel { index: 0 })
        ));
        assert!(matches!(
            Relabeler::new(&[rule(RelabelAction::Keep, &[], "(")], &BTreeMap::new()),
            Err(Error::Regex { index: 0, .. })
        ));
    }

    #[test]
    fn labeldrop_and_labelkeep_match_names() {
        assert_eq!(
            relabel(&[rule(RelabelAction::LabelDrop, &[], "host.*")], cpu()),
            Some(vec![
                "__name__=cpu_load".to_string(),
                "cluster=fritz".to_string()
            ])
        );
        assert_eq!(
            relabel(
                &[rule(RelabelAction::LabelKeep, &[], "__name__|host")],
                cpu()
            ),
            Some(vec!["__name__=cpu_load".to_string()])
        );
        // Nothing left: dropped.
        assert_eq!(
            relabel(&[rule(RelabelAction::LabelKeep, &[], "none")], cpu()),
            None
        );
    }

    #[test]
    fn external_labels_are_added_when_absent_before_the_rules() {
        let external = BTreeMap::from([
            ("site".to_string(), "fau".to_string()),
            ("cluster".to_string(), "ignored".to_string()),
        ]);
        // The rule sees the external label, as Prometheus's write relabelling does.
        let keep = rule(RelabelAction::Keep, &["site"], "fau");
        let relabeler = Relabeler::new(&[keep], &external).ok();
        let labels = relabeler.and_then(|r| r.apply(cpu()));
        let got: Vec<String> = labels
            .iter()
            .flat_map(|l| {
                l.iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            got,
            [
                "__name__=cpu_load",
                "cluster=fritz",
                "hostname=f0001",
                "site=fau"
            ]
        );
    }
}
