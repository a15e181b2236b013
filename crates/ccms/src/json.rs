//! The JSON snapshot reader (`<from>.json`, COMPAT.md §6.2). The shape is in the crate doc.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::{Checkpoint, Error, LEVEL_DEPTH_MAX, Level, MetricData, Result, child_path, echo};

/// A level as it appears in the file. Maps, not lists: a repeated name keeps its last
/// entry (as in cc-metric-store's Go maps) and the result comes out sorted.
struct RawLevel(LevelFields);

#[derive(Deserialize)]
struct LevelFields {
    #[serde(default)]
    metrics: Option<BTreeMap<String, RawMetric>>,
    #[serde(default)]
    children: Option<BTreeMap<String, RawLevel>>,
    #[serde(default)]
    from: Option<i64>,
    #[serde(default)]
    to: Option<i64>,
}

/// A metric as it appears in the file.
struct RawMetric(MetricFields);

#[derive(Deserialize)]
struct MetricFields {
    #[serde(default)]
    frequency: Option<i64>,
    #[serde(default)]
    start: Option<i64>,
    #[serde(default)]
    data: Option<Vec<Sample>>,
}

/// One entry of `data`: a number, rounded to f32, or `null` for a missing sample (NaN).
/// Decoded straight to 4 bytes so that a large file needs no wider intermediate array.
struct Sample(f32);

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // f64 → f32 rounds to nearest; values beyond f32's range become ±inf.
        Option::<f64>::deserialize(deserializer)
            .map(|value| Self(value.map_or(f32::NAN, |value| value as f32)))
    }
}

// NOTE: serde's derived struct impls also accept a JSON array (fields by position), which
// Go's decoder rejects and no checkpoint contains. These two impls accept objects only.
impl<'de> Deserialize<'de> for RawLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(ObjectOnly(PhantomData))
            .map(Self)
    }
}

impl<'de> Deserialize<'de> for RawMetric {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(ObjectOnly(PhantomData))
            .map(Self)
    }
}

/// Deserializes `T` (a derived struct) from a JSON object and nothing else.
struct ObjectOnly<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOnly<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// Decodes a JSON snapshot (`<from>.json`).
///
/// Accepts what cc-metric-store's loader accepts: `null` samples (NaN), unknown keys, keys in
/// any order, a missing or `null` `metrics`/`children`/`data`/`from`/`to` (empty or 0), and
/// anything after the first JSON value. Only the top level's `from`/`to` are used.
///
/// # Errors
///
/// [`Error::Json`] for anything that is not a §6.2 object (with line and column), and
/// [`Error::TooDeep`] for levels nested deeper than [`LEVEL_DEPTH_MAX`]. serde_json's own
/// nesting limit (128) bounds recursion while parsing.
pub fn read_json_checkpoint(bytes: &[u8]) -> Result<Checkpoint> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    // NOTE: no `deserializer.end()`: Go's json.Decoder reads the first value and ignores the
    // rest, and cc-metric-store loads such a file, so Strata does too.
    let RawLevel(raw) = RawLevel::deserialize(&mut deserializer).map_err(|error| Error::Json {
        reason: error.to_string(),
    })?;
    let from_s = raw.from.unwrap_or(0);
    let to_s = raw.to.unwrap_or(0);
    let host = convert_level(raw, "", 1)?;
    Ok(Checkpoint { from_s, to_s, host })
}

/// Turns a parsed level at `depth` (the host is 1), whose path is `path`, into a [`Level`].
fn convert_level(raw: LevelFields, path: &str, depth: usize) -> Result<Level> {
    if depth > LEVEL_DEPTH_MAX {
        return Err(Error::TooDeep {
            level: echo(path),
            depth_max: LEVEL_DEPTH_MAX,
        });
    }
    let metrics = raw
        .metrics
        .unwrap_or_default()
        .into_iter()
        .map(|(name, RawMetric(metric))| MetricData {
            name,
            frequency_s: metric.frequency.unwrap_or(0),
            start_s: metric.start.unwrap_or(0),
            values: metric
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|Sample(value)| value)
                .collect(),
        })
        .collect();
    let children = raw
        .children
        .unwrap_or_default()
        .into_iter()
        .map(|(name, RawLevel(child))| {
            let child = convert_level(child, &child_path(path, &name), depth + 1)?;
            Ok((name, child))
        })
        .collect::<Result<_>>()?;
    Ok(Level { metrics, children })
}
