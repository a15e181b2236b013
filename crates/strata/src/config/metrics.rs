//! The `metrics` section: frequency and aggregation of each configured metric.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use strata_store::{Aggregation, MetricConfig};

use super::ConfigError;
use super::section::{Section, object};

const METRIC_KEYS: &[&str] = &["frequency", "aggregation"];

pub(super) fn parse_metrics(
    file: &Path,
    value: &Value,
) -> Result<BTreeMap<String, MetricConfig>, ConfigError> {
    let entries = object(file, "metrics", value)?;
    let mut metrics = BTreeMap::new();
    for (name, entry) in entries {
        if name.is_empty() {
            return Err(ConfigError::InvalidValue {
                file: file.to_owned(),
                section: "metrics".to_owned(),
                key: String::new(),
                reason: "a metric name must not be empty".to_owned(),
            });
        }
        let section = Section::new(file, format!("metrics.{name}"), entry, METRIC_KEYS)?;
        metrics.insert(name.clone(), parse_metric(&section)?);
    }
    Ok(metrics)
}

fn parse_metric(section: &Section<'_>) -> Result<MetricConfig, ConfigError> {
    let frequency_s = section.required("frequency", section.frequency("frequency")?)?;
    // NOTE: `aggregation` is required but may be null; `get` would treat null as absent.
    let aggregation = match section.map.get("aggregation") {
        None => return Err(section.missing("aggregation")),
        Some(Value::Null) => Aggregation::None,
        Some(Value::String(text)) => text
            .parse::<Aggregation>()
            .map_err(|error| section.invalid("aggregation", error.to_string()))?,
        Some(other) => {
            return Err(section.wrong_type("aggregation", "\"sum\", \"avg\" or null", other));
        }
    };
    Ok(MetricConfig {
        frequency_s,
        aggregation,
    })
}
