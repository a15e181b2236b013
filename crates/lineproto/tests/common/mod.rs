//! Shared helpers for the integration tests: owned snapshots of parsed lines, a line-protocol
//! writer with InfluxDB's escaping, and proptest generators of valid lines.

#![allow(dead_code)] // Each test binary uses a different subset.

use proptest::prelude::*;
use std::borrow::Cow;
use strata_lineproto::{ErrorKind, FieldValue, Limits, Line, LineError, Parser};

/// An owned field value; floats compare by bits so that `-0.0 != 0.0`.
#[derive(Debug, Clone)]
pub enum Value {
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    String(String),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Float(a), Self::Float(b)) => a.to_bits() == b.to_bits(),
            (Self::Int(a), Self::Int(b)) => a == b,
            (Self::UInt(a), Self::UInt(b)) => a == b,
            (Self::Bool(a), Self::Bool(b)) => a == b,
            (Self::String(a), Self::String(b)) => a == b,
            _ => false,
        }
    }
}

impl From<&FieldValue<'_>> for Value {
    fn from(value: &FieldValue<'_>) -> Self {
        match value {
            FieldValue::Float(v) => Self::Float(*v),
            FieldValue::Int(v) => Self::Int(*v),
            FieldValue::UInt(v) => Self::UInt(*v),
            FieldValue::Bool(v) => Self::Bool(*v),
            FieldValue::String(v) => Self::String(v.to_string()),
        }
    }
}

/// An owned snapshot of a parsed [`Line`].
#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    pub number: u64,
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, Value)>,
    pub timestamp: Option<i64>,
}

impl From<&Line<'_>> for Owned {
    fn from(line: &Line<'_>) -> Self {
        Self {
            number: line.number,
            measurement: line.measurement.to_string(),
            tags: line
                .tags()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            fields: line
                .fields()
                .map(|(k, v)| (k.into_owned(), Value::from(&v)))
                .collect(),
            timestamp: line.timestamp,
        }
    }
}

/// Parses `input` with default limits into owned results.
pub fn parse_all(input: &[u8]) -> Vec<Result<Owned, LineError>> {
    parse_with(input, &Limits::default())
}

pub fn parse_with(input: &[u8], limits: &Limits) -> Vec<Result<Owned, LineError>> {
    Parser::new(input, limits)
        .map(|line| line.map(|line| Owned::from(&line)))
        .collect()
}

/// Parses a single line that must yield exactly one item.
pub fn one(input: &str) -> Result<Owned, ErrorKind> {
    one_with(input, &Limits::default())
}

pub fn one_with(input: &str, limits: &Limits) -> Result<Owned, ErrorKind> {
    let mut results = parse_with(input.as_bytes(), limits);
    assert_eq!(results.len(), 1, "{input:?} yielded {results:?}");
    results.remove(0).map_err(|error| error.kind)
}

/// Parses a single valid line.
pub fn ok(input: &str) -> Owned {
    match one(input) {
        Ok(line) => line,
        Err(kind) => panic!("{input:?} failed: {kind}"),
    }
}

/// Parses a single invalid line and returns why it failed.
pub fn err(input: &str) -> ErrorKind {
    match one(input) {
        Ok(line) => panic!("{input:?} parsed as {line:?}"),
        Err(kind) => kind,
    }
}

pub fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[allow(clippy::ptr_arg)] // The variant is the point, so the argument must stay a `Cow`.
pub fn is_borrowed(cow: &Cow<'_, str>) -> bool {
    matches!(cow, Cow::Borrowed(_))
}

// ---------------------------------------------------------------------------------------------
// Writing line protocol.

/// Escapes `name` by prefixing each byte of `special` (and every backslash) with a backslash.
pub fn escape(name: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c == '\\' || special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn escape_measurement(name: &str) -> String {
    escape(name, &[',', ' '])
}

pub fn escape_key(name: &str) -> String {
    escape(name, &[',', '=', ' '])
}

pub fn escape_string(value: &str) -> String {
    escape(value, &['"'])
}

/// How a generated value is written.
#[derive(Debug, Clone)]
pub enum Written {
    /// A float printed with `{}` (shortest round-trip digits, no exponent).
    Float(f64),
    /// A float printed with `{:e}`.
    FloatExp(f64),
    /// A float given as decimal text with up to 3 decimals, e.g. the workload's `45.3`.
    Decimal(String, f64),
    Int(i64),
    UInt(u64),
    /// A boolean and the spelling used.
    Bool(bool, &'static str),
    String(String),
}

impl Written {
    pub fn text(&self) -> String {
        match self {
            Self::Float(v) => format!("{v}"),
            Self::FloatExp(v) => format!("{v:e}"),
            Self::Decimal(text, _) => text.clone(),
            Self::Int(v) => format!("{v}i"),
            Self::UInt(v) => format!("{v}u"),
            Self::Bool(_, spelling) => spelling.to_string(),
            Self::String(s) => format!("\"{}\"", escape_string(s)),
        }
    }

    pub fn value(&self) -> Value {
        match self {
            Self::Float(v) | Self::FloatExp(v) | Self::Decimal(_, v) => Value::Float(*v),
            Self::Int(v) => Value::Int(*v),
            Self::UInt(v) => Value::UInt(*v),
            Self::Bool(v, _) => Value::Bool(*v),
            Self::String(s) => Value::String(s.clone()),
        }
    }
}

/// A valid line, before formatting.
#[derive(Debug, Clone)]
pub struct Spec {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, Written)>,
    pub timestamp: Option<i64>,
    /// Extra spaces before the measurement, between sections and after the timestamp.
    pub leading: usize,
    pub gap: usize,
    pub trailing: usize,
}

impl Spec {
    pub fn format(&self) -> String {
        let mut line = " ".repeat(self.leading);
        line.push_str(&escape_measurement(&self.measurement));
        for (key, value) in &self.tags {
            line.push(',');
            line.push_str(&escape_key(key));
            line.push('=');
            line.push_str(&escape_key(value));
        }
        let gap = " ".repeat(self.gap + 1);
        line.push_str(&gap);
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&escape_key(key));
            line.push('=');
            line.push_str(&value.text());
        }
        if let Some(timestamp) = self.timestamp {
            line.push_str(&gap);
            line.push_str(&timestamp.to_string());
        }
        line.push_str(&" ".repeat(self.trailing));
        line
    }

    /// What parsing the formatted line must give (with line number `number`).
    pub fn expected(&self, number: u64) -> Owned {
        Owned {
            number,
            measurement: self.measurement.clone(),
            tags: self.tags.clone(),
            fields: self
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.value()))
                .collect(),
            timestamp: self.timestamp,
        }
    }
}

/// Characters for names: plain ones, ones that need escaping, a backslash, and multi-byte
/// UTF-8. No control characters (rejected by design) and no `.` (so that a `.` in a line is
/// always part of a float; see the differential test).
pub fn name_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::sample::select(vec!['a', 'b', 'x', 'Z', '0', '7', '_', '-', '#']),
        2 => prop::sample::select(vec![' ', ',', '=', '"']),
        1 => Just('\\'),
        1 => prop::sample::select(vec!['é', 'ß', '日', '🦀']),
    ]
}

/// A valid name: non-empty and not ending with a backslash (one is repaired by appending a
/// letter, which keeps proptest from running out of rejects).
pub fn name(max_chars: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(name_char(), 1..=max_chars).prop_map(|chars| {
        let mut name: String = chars.into_iter().collect();
        if name.ends_with('\\') {
            name.push('x');
        }
        name
    })
}

/// A valid measurement: a name that does not start with `#` (that would be a comment).
pub fn measurement() -> impl Strategy<Value = String> {
    name(12).prop_map(|name| {
        if name.starts_with('#') {
            format!("m{name}")
        } else {
            name
        }
    })
}

/// String field content: anything but a newline, including tabs, quotes and backslashes.
/// No `.`, as in names.
pub fn string_content() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => prop::sample::select(vec!['a', 'Z', '9', ' ', ',', '=', '#']),
            2 => prop::sample::select(vec!['"', '\\', '\t']),
            1 => prop::sample::select(vec!['é', '日', '🦀']),
        ],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

pub fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        (-1e6..1e6f64),
        Just(0.0),
        Just(-0.0),
    ]
}

pub fn decimal() -> impl Strategy<Value = Written> {
    (any::<bool>(), 0u64..10_000_000, 0usize..4).prop_map(|(negative, raw, decimals)| {
        let digits = format!("{raw:0>width$}", width = decimals + 1);
        let (int, frac) = digits.split_at(digits.len() - decimals);
        let sign = if negative { "-" } else { "" };
        let text = if decimals == 0 {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        };
        let value = text.parse().unwrap_or_default();
        Written::Decimal(text, value)
    })
}

pub fn written_value() -> impl Strategy<Value = Written> {
    const SPELLINGS: [(bool, &str); 10] = [
        (true, "t"),
        (true, "T"),
        (true, "true"),
        (true, "True"),
        (true, "TRUE"),
        (false, "f"),
        (false, "F"),
        (false, "false"),
        (false, "False"),
        (false, "FALSE"),
    ];
    prop_oneof![
        3 => decimal(),
        2 => finite_f64().prop_map(Written::Float),
        1 => finite_f64().prop_map(Written::FloatExp),
        2 => any::<i64>().prop_map(Written::Int),
        1 => any::<u64>().prop_map(Written::UInt),
        1 => prop::sample::select(SPELLINGS.to_vec()).prop_map(|(v, s)| Written::Bool(v, s)),
        2 => string_content().prop_map(Written::String),
    ]
}

/// A valid line. `trailing` spaces only after a timestamp (the reference parser rejects them
/// otherwise; see deviation 3 in the crate docs).
pub fn spec() -> impl Strategy<Value = Spec> {
    (
        measurement(),
        prop::collection::vec((name(8), name(8)), 0..10),
        prop::collection::vec((name(8), written_value()), 1..4),
        prop::option::of(any::<i64>()),
        0usize..3,
        0usize..3,
        0usize..3,
    )
        .prop_map(
            |(measurement, tags, fields, timestamp, leading, gap, trailing)| Spec {
                measurement,
                tags,
                fields,
                trailing: if timestamp.is_some() { trailing } else { 0 },
                timestamp,
                leading,
                gap,
            },
        )
}

/// A ClusterCockpit-shaped line: few tags drawn from a small set, so that consecutive lines
/// share series-key prefixes and exercise the parser's reuse of the previous line.
pub fn cc_spec() -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(vec!["cpu_user", "mem_used", "flops_any", "ipc"]),
        prop::sample::select(vec!["n0001", "n0002"]),
        prop::option::of(prop::sample::select(vec!["node", "hwthread", "socket"])),
        prop::option::of(0u32..3),
        prop::collection::vec(
            (
                prop::sample::select(vec!["value", "v", "value2"]),
                written_value(),
            ),
            1..3,
        ),
        prop::option::of(prop::sample::select(vec![1_794_873_600_i64, -5])),
    )
        .prop_map(|(metric, host, kind, id, fields, timestamp)| {
            let mut tags = vec![
                ("cluster".to_string(), "hpc1".to_string()),
                ("hostname".to_string(), host.to_string()),
            ];
            if let Some(kind) = kind {
                tags.push(("type".to_string(), kind.to_string()));
            }
            if let Some(id) = id {
                tags.push(("type-id".to_string(), id.to_string()));
            }
            Spec {
                measurement: metric.to_string(),
                tags,
                fields: fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                timestamp,
                leading: 0,
                gap: 0,
                trailing: 0,
            }
        })
}
