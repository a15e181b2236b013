//! Metric configuration: how often a metric is sampled and how its sub-levels combine.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

/// How a query at a coarser level combines the series of the levels below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregation {
    /// Not combinable: a query that would need to combine several series is an error.
    #[default]
    None,
    /// Add the children (e.g. flops of all hwthreads of a node).
    Sum,
    /// Average the children (e.g. clock frequency).
    Avg,
}

impl FromStr for Aggregation {
    type Err = UnknownAggregation;

    /// Parses cc-metric-store's spelling: `"sum"`, `"avg"`, or `""` for none.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "" => Ok(Self::None),
            "sum" => Ok(Self::Sum),
            "avg" => Ok(Self::Avg),
            other => Err(UnknownAggregation(other.to_owned())),
        }
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Sum => "sum",
            Self::Avg => "avg",
        })
    }
}

/// An aggregation name other than `sum`, `avg` or empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown aggregation {0:?} (expected \"sum\", \"avg\" or null)")]
pub struct UnknownAggregation(pub String);

/// The frequencies (seconds) a metric may have, from configuration or from a snapshot: at
/// least one second, at most one day. The upper bound keeps buffer arithmetic
/// (`start + slots × frequency`) far from `i64` overflow; a larger frequency made every
/// buffer end overflow and queries return nothing.
pub const FREQUENCY_S: RangeInclusive<i64> = 1..=86_400;

/// The configuration of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricConfig {
    /// Sampling interval in seconds; always within [`FREQUENCY_S`].
    pub frequency_s: i64,
    pub aggregation: Aggregation,
}

/// Index of a metric in the [`Registry`]; levels key their series by it.
pub(crate) type MetricId = u32;

/// Metrics known to the store. With a configured list, unknown metrics are refused; without
/// one, they are registered on first sight with a default configuration (COMPAT.md decision 3).
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    by_name: std::collections::HashMap<Box<str>, MetricId, crate::fxhash::FxBuildHasher>,
    metrics: Vec<(Box<str>, MetricConfig)>,
    /// The configuration given to metrics registered on first sight; `None` = refuse them.
    auto_register: Option<MetricConfig>,
    /// Most metrics registration may reach ([`crate::StoreLimits::metrics_max`]).
    metrics_max: usize,
    /// Heap bytes of one copy of every name.
    name_bytes: usize,
}

/// Why a metric has no id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not configured, and auto-registration is off.
    Unknown,
    /// Auto-registration reached its limit.
    TooMany,
}

impl Registry {
    pub(crate) fn new<'a>(
        configured: impl IntoIterator<Item = (&'a str, MetricConfig)>,
        auto_register: Option<MetricConfig>,
        metrics_max: usize,
    ) -> Self {
        let mut registry = Self {
            by_name: Default::default(),
            metrics: Vec::new(),
            auto_register,
            metrics_max,
            name_bytes: 0,
        };
        for (name, config) in configured {
            registry.insert(name, config);
        }
        registry
    }

    fn insert(&mut self, name: &str, config: MetricConfig) -> MetricId {
        assert!(
            FREQUENCY_S.contains(&config.frequency_s),
            "metric {name}: frequency out of range"
        );
        let id = self.metrics.len() as MetricId;
        self.metrics.push((name.into(), config));
        self.by_name.insert(name.into(), id);
        self.name_bytes += crate::memory::boxed_str(name);
        id
    }

    /// Heap bytes of the registry: both tables and two copies of every name.
    pub(crate) fn heap_bytes(&self) -> usize {
        use crate::memory::{allocation, hash_index};
        let table = self.metrics.capacity() * size_of::<(Box<str>, MetricConfig)>();
        let index = hash_index(self.by_name.capacity(), size_of::<(Box<str>, MetricId)>());
        allocation(table) + index + 2 * self.name_bytes
    }

    pub(crate) fn get(&self, name: &str) -> Option<(MetricId, MetricConfig)> {
        let id = *self.by_name.get(name)?;
        Some((id, self.metrics[id as usize].1))
    }

    pub(crate) fn config(&self, id: MetricId) -> Option<(&str, MetricConfig)> {
        self.metrics
            .get(id as usize)
            .map(|(name, config)| (&**name, *config))
    }

    /// Registers `name` if auto-registration is on, within the metrics limit if `limited`
    /// (loading data accepted before is not limited).
    pub(crate) fn register(
        &mut self,
        name: &str,
        limited: bool,
    ) -> Result<(MetricId, MetricConfig), Refusal> {
        if let Some(known) = self.get(name) {
            return Ok(known);
        }
        let config = self.auto_register.ok_or(Refusal::Unknown)?;
        if limited && self.metrics.len() >= self.metrics_max {
            return Err(Refusal::TooMany);
        }
        Ok((self.insert(name, config), config))
    }

    pub(crate) fn auto_registers(&self) -> bool {
        self.auto_register.is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.metrics.len()
    }
}
