//! Reference encoders for the three cc-metric-store formats, written from COMPAT.md §6.2–6.4
//! (not from the readers), plus proptest strategies and comparison helpers shared by the
//! integration tests.

#![allow(dead_code)]

use proptest::prelude::*;
use strata_ccms::{Level, MetricData, WalRecord};

// ---------------------------------------------------------------------------------------
// Binary snapshot, §6.3: all little-endian.
//
//   u32 magic 0xCC5B0001, i64 from, i64 to, Level
//   Level: u32 num_metrics, per metric: u16 name_len, name, i64 frequency, i64 start,
//          u32 num_values, num_values × u32 f32 bits;
//          u32 num_children, per child: u16 name_len, name, Level
// ---------------------------------------------------------------------------------------

/// Encodes a binary snapshot. Entries are written in *reverse* order, standing in for Go's
/// arbitrary map order, so tests also show the reader does not depend on it.
pub fn encode_binary(from: i64, to: i64, host: &Level) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xCC5B_0001u32.to_le_bytes());
    out.extend_from_slice(&from.to_le_bytes());
    out.extend_from_slice(&to.to_le_bytes());
    encode_binary_level(&mut out, host);
    out
}

pub fn encode_binary_level(out: &mut Vec<u8>, level: &Level) {
    out.extend_from_slice(&(level.metrics.len() as u32).to_le_bytes());
    for metric in level.metrics.iter().rev() {
        encode_name16(out, &metric.name);
        out.extend_from_slice(&metric.frequency_s.to_le_bytes());
        out.extend_from_slice(&metric.start_s.to_le_bytes());
        out.extend_from_slice(&(metric.values.len() as u32).to_le_bytes());
        for value in &metric.values {
            out.extend_from_slice(&value.to_bits().to_le_bytes());
        }
    }
    out.extend_from_slice(&(level.children.len() as u32).to_le_bytes());
    for (name, child) in level.children.iter().rev() {
        encode_name16(out, name);
        encode_binary_level(out, child);
    }
}

fn encode_name16(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
}

// ---------------------------------------------------------------------------------------
// JSON snapshot, §6.2: {"metrics":{…},"children":{…},"from":…,"to":…}; every level carries
// the file's from/to; a metric is {"frequency":…,"start":…,"data":[…]}; NaN is null.
// ---------------------------------------------------------------------------------------

/// Encodes a JSON snapshot with full precision (shortest f32 representation).
pub fn encode_json(from: i64, to: i64, host: &Level) -> String {
    encode_json_with(from, to, host, &|value| format!("{value:?}"))
}

/// Encodes a JSON snapshot as cc-metric-store does: float32 with one decimal
/// (`strconv.AppendFloat(buf, v, 'f', 1, 32)`), so values are rounded.
pub fn encode_json_like_go(from: i64, to: i64, host: &Level) -> String {
    encode_json_with(from, to, host, &|value| format!("{value:.1}"))
}

fn encode_json_with(from: i64, to: i64, host: &Level, number: &dyn Fn(f32) -> String) -> String {
    let mut out = String::new();
    encode_json_level(&mut out, from, to, host, number);
    out.push('\n');
    out
}

fn encode_json_level(
    out: &mut String,
    from: i64,
    to: i64,
    level: &Level,
    number: &dyn Fn(f32) -> String,
) {
    out.push_str("{\"metrics\":{");
    for (index, metric) in level.metrics.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&json_string(&metric.name));
        out.push_str(&format!(
            ":{{\"frequency\":{},\"start\":{},\"data\":[",
            metric.frequency_s, metric.start_s
        ));
        for (index, value) in metric.values.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            if value.is_nan() {
                out.push_str("null");
            } else {
                out.push_str(&number(*value));
            }
        }
        out.push_str("]}");
    }
    out.push_str("},\"children\":{");
    for (index, (name, child)) in level.children.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&json_string(name));
        out.push(':');
        encode_json_level(out, from, to, child, number);
    }
    out.push_str(&format!("}},\"from\":{from},\"to\":{to}}}"));
}

/// A JSON string literal (RFC 8259 §7): quote, backslash and control characters escaped.
pub fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------
// current.wal, §6.4: u32 file magic 0xCC1DA701, then records:
//   u32 magic 0xCC1DA7A1, u32 payload_len, payload, u32 CRC32-IEEE(payload)
//   payload: i64 timestamp, u16 metric_len, metric, u8 selector_count,
//            per selector: u8 len, bytes; u32 value (f32 bits)
// ---------------------------------------------------------------------------------------

pub const WAL_FILE_MAGIC_BYTES: [u8; 4] = 0xCC1D_A701u32.to_le_bytes();

pub fn wal_payload(record: &WalRecord) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&record.timestamp_s.to_le_bytes());
    payload.extend_from_slice(&(record.metric.len() as u16).to_le_bytes());
    payload.extend_from_slice(record.metric.as_bytes());
    payload.push(record.selector.len() as u8);
    for level in &record.selector {
        payload.push(level.len() as u8);
        payload.extend_from_slice(level.as_bytes());
    }
    payload.extend_from_slice(&record.value.to_bits().to_le_bytes());
    payload
}

/// Frames a payload as a record with the given CRC.
pub fn wal_frame(payload: &[u8], crc: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xCC1D_A7A1u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub fn encode_wal_record(record: &WalRecord) -> Vec<u8> {
    let payload = wal_payload(record);
    wal_frame(&payload, crc32fast::hash(&payload))
}

/// Encodes a whole `current.wal`; also returns the byte offset where each record starts.
pub fn encode_wal(records: &[WalRecord]) -> (Vec<u8>, Vec<usize>) {
    let mut out = WAL_FILE_MAGIC_BYTES.to_vec();
    let mut offsets = Vec::new();
    for record in records {
        offsets.push(out.len());
        out.extend_from_slice(&encode_wal_record(record));
    }
    (out, offsets)
}

pub fn record(timestamp_s: i64, metric: &str, selector: &[&str], value: f32) -> WalRecord {
    WalRecord {
        timestamp_s,
        metric: metric.to_owned(),
        selector: selector.iter().map(|level| (*level).to_owned()).collect(),
        value,
    }
}

// ---------------------------------------------------------------------------------------
// Building and comparing levels.
// ---------------------------------------------------------------------------------------

pub fn metric(name: &str, frequency_s: i64, start_s: i64, values: &[f32]) -> MetricData {
    MetricData {
        name: name.to_owned(),
        frequency_s,
        start_s,
        values: values.to_vec(),
    }
}

pub fn level(metrics: Vec<MetricData>, children: Vec<(&str, Level)>) -> Level {
    Level {
        metrics,
        children: children
            .into_iter()
            .map(|(name, child)| (name.to_owned(), child))
            .collect(),
    }
}

/// A level with every value replaced by its bits, so that NaN compares equal to itself.
#[derive(Debug, PartialEq, Eq)]
pub struct LevelBits {
    pub metrics: Vec<(String, i64, i64, Vec<u32>)>,
    pub children: Vec<(String, LevelBits)>,
}

pub fn bits(level: &Level) -> LevelBits {
    LevelBits {
        metrics: level
            .metrics
            .iter()
            .map(|metric| {
                let values = metric.values.iter().map(|value| value.to_bits()).collect();
                (
                    metric.name.clone(),
                    metric.frequency_s,
                    metric.start_s,
                    values,
                )
            })
            .collect(),
        children: level
            .children
            .iter()
            .map(|(name, child)| (name.clone(), bits(child)))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// proptest strategies.
// ---------------------------------------------------------------------------------------

/// Names with quotes, backslashes, control characters and non-ASCII.
pub fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_]{0,10}",
        "[\"\\\\\\x00-\\x1f é€😀a-z]{0,6}",
        ".{0,8}",
    ]
}

/// Any f32, NaN payloads and infinities included (binary format).
pub fn arb_any_value() -> impl Strategy<Value = f32> + Clone {
    any::<u32>().prop_map(f32::from_bits)
}

/// Values a decimal text represents exactly (quarters below 2^20), or NaN (JSON format).
pub fn arb_decimal_value() -> impl Strategy<Value = f32> + Clone {
    prop_oneof![
        4 => (-4_000_000i32..4_000_000).prop_map(|quarters| quarters as f32 / 4.0),
        1 => Just(f32::NAN),
    ]
}

fn arb_metrics<V>(values: V) -> impl Strategy<Value = Vec<MetricData>>
where
    V: Strategy<Value = f32> + Clone,
{
    let metric = (
        any::<i64>(),
        any::<i64>(),
        prop::collection::vec(values, 0..12),
    );
    prop::collection::btree_map(arb_name(), metric, 0..4).prop_map(|metrics| {
        metrics
            .into_iter()
            .map(|(name, (frequency_s, start_s, values))| MetricData {
                name,
                frequency_s,
                start_s,
                values,
            })
            .collect()
    })
}

/// A level tree up to 4 levels deep, names unique and sorted (as the readers return them).
pub fn arb_level<V>(values: V) -> impl Strategy<Value = Level>
where
    V: Strategy<Value = f32> + Clone + 'static,
{
    let leaf = arb_metrics(values.clone()).prop_map(|metrics| Level {
        metrics,
        children: Vec::new(),
    });
    leaf.prop_recursive(3, 24, 4, move |inner| {
        (
            arb_metrics(values.clone()),
            prop::collection::btree_map(arb_name(), inner, 0..4),
        )
            .prop_map(|(metrics, children)| Level {
                metrics,
                children: children.into_iter().collect(),
            })
    })
}

pub fn arb_wal_record() -> impl Strategy<Value = WalRecord> {
    (
        any::<i64>(),
        ".{0,12}",
        prop::collection::vec("[a-z0-9é]{0,8}", 0..3),
        arb_any_value(),
    )
        .prop_map(|(timestamp_s, metric, selector, value)| WalRecord {
            timestamp_s,
            metric,
            selector,
            value,
        })
}
