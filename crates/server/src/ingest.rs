//! `POST /api/write`: line protocol in, samples into the store (COMPAT.md §1.4, §4, decisions
//! 1–4).
//!
//! The body is streamed: each chunk is parsed as it arrives, complete lines at once and a
//! partial last line carried to the next chunk, so memory per request is bounded by the
//! chunk size plus one line, whatever the body size. Decoded samples collect in a
//! [`WriteBatch`] that is committed every [`BATCH_SAMPLES_MAX`] samples or
//! [`BATCH_TEXT_BYTES_MAX`] bytes of names, mid-chunk if need be, and at the end.
//!
//! Every valid line is stored. Invalid lines are counted and the first few reported with
//! their line number in a 400 response (decision 2); they never stop the rest of the body.

use crate::App;
use crate::error::{ApiError, RejectedLine};
use crate::keycache::{KeyCache, KeyCacheReader, KeyNames};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use std::borrow::Cow;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use strata_lineproto::{ErrorKind, FieldValue, Line, Parser, PlainLine, PlainValue};
use strata_store::{LevelName, WriteBatch, check_name, same_text};

/// Samples decoded before a batch is committed. Bounds the memory of a batch (56 bytes per
/// sample plus names) and lets big bodies become visible while they stream in.
pub const BATCH_SAMPLES_MAX: usize = 16 * 1024;

/// Bytes of names decoded before a batch is committed. Names are shared only between
/// consecutive samples, so lines that alternate between a `cluster` tag and a long default
/// cluster add the whole name per line: bounded by samples alone, a batch grew to gigabytes.
pub const BATCH_TEXT_BYTES_MAX: usize = 256 * 1024;

/// Rejected lines listed in a 400 response; the rest are only counted.
pub const REJECTED_LINES_LISTED_MAX: usize = 10;

/// Compressed bytes fed to the gzip decoder at a time, so that one chunk of a gzip bomb
/// inflates to at most ~1 000 times this before the body limit is checked.
const GZIP_INPUT_STEP_BYTES: usize = 4 * 1024;

/// Limits of the write endpoint.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Largest body, counted after decompression (and before: a gzip body may not be larger
    /// either); the rest of a larger body is refused with 413.
    pub body_bytes_max: u64,
    pub line: strata_lineproto::Limits,
    /// Longest time to receive a whole body.
    pub request_timeout: Duration,
}

/// The unit of timestamps (decision 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Detect by magnitude: < 1e11 s, < 1e14 ms, < 1e17 µs, else ns.
    Auto,
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
    /// InfluxDB 1.x's `precision=m` (only `/write` accepts it).
    Minutes,
    /// InfluxDB 1.x's `precision=h` (only `/write` accepts it).
    Hours,
}

impl Precision {
    /// InfluxDB's spellings of the `precision` query parameter (v1 and v2).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "s" => Self::Seconds,
            "ms" => Self::Milliseconds,
            "us" | "u" | "µs" => Self::Microseconds,
            "ns" | "n" => Self::Nanoseconds,
            _ => return None,
        })
    }

    /// Converts a timestamp to unix seconds, truncating sub-second parts. Minutes and hours
    /// beyond the `i64` range of seconds saturate (and are then dropped as future or outside
    /// retention, like any far-off time).
    pub fn to_seconds(self, timestamp: i64) -> i64 {
        let magnitude = timestamp.unsigned_abs();
        let divisor = match self {
            Self::Minutes => return timestamp.saturating_mul(60),
            Self::Hours => return timestamp.saturating_mul(3_600),
            // Seconds, the common unit, need no 64-bit division (2.5 % of decoding).
            Self::Seconds => return timestamp,
            Self::Auto if magnitude < 100_000_000_000 => return timestamp,
            Self::Milliseconds => 1_000,
            Self::Microseconds => 1_000_000,
            Self::Nanoseconds => 1_000_000_000,
            Self::Auto if magnitude < 100_000_000_000_000 => 1_000,
            Self::Auto if magnitude < 100_000_000_000_000_000 => 1_000_000,
            Self::Auto => 1_000_000_000,
        };
        timestamp / divisor
    }
}

/// Why a line was rejected, as a `/metrics` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Syntax,
    LineTooLong,
    TooManyTags,
    NameTooLong,
    UnknownField,
    ValueType,
    ValueRange,
    MissingHost,
    MissingCluster,
    InvalidName,
}

impl RejectReason {
    pub const ALL: [RejectReason; 10] = [
        Self::Syntax,
        Self::LineTooLong,
        Self::TooManyTags,
        Self::NameTooLong,
        Self::UnknownField,
        Self::ValueType,
        Self::ValueRange,
        Self::MissingHost,
        Self::MissingCluster,
        Self::InvalidName,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::LineTooLong => "line_too_long",
            Self::TooManyTags => "too_many_tags",
            Self::NameTooLong => "name_too_long",
            Self::UnknownField => "unknown_field",
            Self::ValueType => "value_type",
            Self::ValueRange => "value_range",
            Self::MissingHost => "missing_host",
            Self::MissingCluster => "missing_cluster",
            Self::InvalidName => "invalid_name",
        }
    }

    fn of(kind: &ErrorKind) -> Self {
        match kind {
            ErrorKind::LineTooLong { .. } => Self::LineTooLong,
            ErrorKind::TooManyTags { .. } => Self::TooManyTags,
            ErrorKind::NameTooLong { .. } => Self::NameTooLong,
            _ => Self::Syntax,
        }
    }
}

/// Turns line-protocol bytes, fed in arbitrary chunks, into a [`WriteBatch`] by
/// cc-metric-store's tag rules.
#[derive(Debug)]
pub struct LineDecoder {
    default_cluster: String,
    /// Where a line's cluster comes from when it has no `cluster` tag, for the error message.
    cluster_fallback: &'static str,
    precision: Precision,
    /// Time given to lines without a timestamp: the request's arrival (decision 1).
    now_s: i64,
    limits: strata_lineproto::Limits,
    /// The unfinished last line of the previous chunk.
    pending: Vec<u8>,
    /// The current line was rejected as too long before its end arrived; skip to its end.
    skipping: bool,
    /// Number of the next physical line.
    next_line: u64,
    /// Non-blank, non-comment lines seen.
    pub lines: u64,
    /// Lines rejected, by [`RejectReason`] (indexed like [`RejectReason::ALL`]).
    pub rejected: [u64; RejectReason::ALL.len()],
    /// The first rejected lines, for the response.
    pub first_rejected: Vec<RejectedLine>,
    pub batch: WriteBatch,
    /// The last cluster and host that passed [`check_name`]: a collector sends runs of
    /// lines of one host, whose names need no second check.
    checked: (String, String),
    /// Series keys decoded before, by any request (see [`crate::keycache`]).
    key_cache: Option<Arc<KeyCache>>,
    /// The default cluster is a valid name, so cached keys without a `cluster` tag may use it.
    default_cluster_valid: bool,
    /// Lines decoded from the cache and in full, not yet added to the cache's counters.
    cache_hits: u64,
    cache_misses: u64,
    /// The cache record that probably holds the next line's key: the one after the last hit.
    cache_hint: usize,
    /// Keys of the current chunk's lines that were decoded in full, to cache after it.
    uncached: Vec<UncachedKey>,
}

/// A key decoded in full during a chunk: where it is in the chunk and which sample holds its
/// names.
#[derive(Debug)]
struct UncachedKey {
    key: std::ops::Range<usize>,
    sample: usize,
    tagged_cluster: bool,
}

impl LineDecoder {
    pub fn new(
        default_cluster: &str,
        precision: Precision,
        now_s: i64,
        limits: strata_lineproto::Limits,
    ) -> Self {
        Self {
            default_cluster: default_cluster.to_owned(),
            cluster_fallback: "query parameter 'cluster'",
            precision,
            now_s,
            limits,
            pending: Vec::new(),
            skipping: false,
            next_line: 1,
            lines: 0,
            rejected: [0; RejectReason::ALL.len()],
            first_rejected: Vec::new(),
            batch: WriteBatch::new(),
            checked: (String::new(), String::new()),
            key_cache: None,
            default_cluster_valid: false,
            cache_hits: 0,
            cache_misses: 0,
            cache_hint: 0,
            uncached: Vec::new(),
        }
    }

    /// Decodes lines whose series key is in `cache` from it, and adds the keys of the other
    /// valid lines to it. Ignored unless the cache was filled under this decoder's limits.
    pub fn with_key_cache(mut self, cache: Arc<KeyCache>) -> Self {
        if *cache.limits() == self.limits {
            self.default_cluster_valid = !self.default_cluster.is_empty()
                && check_name("cluster", &self.default_cluster, self.limits.name_bytes_max).is_ok();
            self.key_cache = Some(cache);
        }
        self
    }

    /// Names where the default cluster comes from (e.g. "query parameter 'db'") in the error
    /// of a line without a cluster.
    pub fn with_cluster_fallback(mut self, fallback: &'static str) -> Self {
        self.cluster_fallback = fallback;
        self
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Decodes the complete lines of `chunk` (and of what was pending before it) until the
    /// batch is [full](LineDecoder::batch_full). Returns the bytes of `chunk` consumed: all of
    /// them unless the batch filled up; the caller then commits the batch and feeds the rest.
    pub fn feed(&mut self, chunk: &[u8]) -> usize {
        if self.batch_full() {
            return 0;
        }
        let mut used = 0;
        if self.skipping {
            let Some(end) = memchr::memchr(b'\n', chunk) else {
                return chunk.len();
            };
            self.skipping = false;
            self.next_line += 1;
            used = end + 1;
        }
        if !self.pending.is_empty() {
            let rest = &chunk[used..];
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.pending.extend_from_slice(rest);
                self.bound_pending();
                return chunk.len();
            };
            let mut line = std::mem::take(&mut self.pending);
            line.extend_from_slice(&rest[..=end]);
            self.parse(&line);
            line.clear();
            self.pending = line;
            used += end + 1;
            if self.batch_full() {
                return used;
            }
        }
        let rest = &chunk[used..];
        if let Some(end) = memchr::memrchr(b'\n', rest) {
            let parsed = self.parse(&rest[..=end]);
            used += parsed;
            if parsed <= end {
                return used;
            }
        }
        self.pending.extend_from_slice(&chunk[used..]);
        self.bound_pending();
        chunk.len()
    }

    /// The batch has reached [`BATCH_SAMPLES_MAX`] samples or [`BATCH_TEXT_BYTES_MAX`] bytes
    /// of names and must be committed before more is decoded.
    pub fn batch_full(&self) -> bool {
        self.batch.len() >= BATCH_SAMPLES_MAX || self.batch.text_bytes() >= BATCH_TEXT_BYTES_MAX
    }

    /// Decodes the last line if the body did not end with a newline.
    pub fn finish(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.parse(&line);
        }
    }

    /// A line whose end has not arrived and which is already over the limit is rejected now,
    /// instead of buffering it whole.
    /// Blank and comment lines are skipped whatever their length, as the parser skips them.
    fn bound_pending(&mut self) {
        // One extra byte for a '\r' before the '\n'.
        let bound = self.limits.line_bytes_max + 1;
        if self.pending.len() > bound {
            match self.pending.iter().find(|&&b| b != b' ' && b != b'\t') {
                // A comment: skipped to its end, not counted (lines counts the others).
                Some(b'#') => {
                    self.pending.clear();
                    self.skipping = true;
                    return;
                }
                // Blanks so far: the rest decides (blank, comment, or too long); keep
                // them bounded, still over the limit.
                None => {
                    self.pending.truncate(bound + 1);
                    return;
                }
                Some(_) => {}
            }
            let bytes = self.pending.len();
            self.pending.clear();
            self.skipping = true;
            self.lines += 1;
            let kind = ErrorKind::LineTooLong {
                bytes,
                max: self.limits.line_bytes_max,
            };
            self.reject(
                self.next_line,
                RejectReason::LineTooLong,
                format!("{kind} (at least)"),
            );
        }
    }

    /// Decodes the lines of `bytes` until the batch is full; returns the bytes consumed.
    fn parse(&mut self, bytes: &[u8]) -> usize {
        let cache = self.key_cache.take();
        let used = self.parse_with(bytes, cache.as_deref());
        if let Some(cache) = &cache {
            self.update_cache(cache, bytes);
        }
        self.key_cache = cache;
        used
    }

    fn parse_with(&mut self, bytes: &[u8], cache: Option<&KeyCache>) -> usize {
        let limits = self.limits.clone();
        let mut parser = Parser::with_first_line(bytes, &limits, self.next_line);
        // Taken at the first plain line and held for the chunk (see `crate::keycache`).
        let mut reader = None;
        // At least one line, so that a line completed by a later chunk is never lost.
        loop {
            let plain = cache.and_then(|_| parser.peek_plain());
            if let (Some(cache), Some(plain)) = (cache, &plain)
                && self.decode_cached(reader.get_or_insert_with(|| cache.read()), plain)
            {
                // Always true: the line was peeked at this position.
                let taken = parser.take_plain(plain);
                debug_assert!(taken);
                self.lines += 1;
                self.cache_hits += 1;
            } else {
                let Some(item) = parser.next() else {
                    break;
                };
                self.lines += 1;
                match item {
                    Ok(line) => match self.decode(&line) {
                        Ok(tagged_cluster) => {
                            if let Some(plain) = &plain {
                                let start = Parser::offset_of(plain);
                                self.uncached.push(UncachedKey {
                                    key: start..start + plain.key.len(),
                                    sample: self.batch.len().saturating_sub(1),
                                    tagged_cluster,
                                });
                            }
                        }
                        Err((reason, message)) => self.reject(line.number, reason, message),
                    },
                    Err(error) => self.reject(
                        error.number,
                        RejectReason::of(&error.kind),
                        error.kind.to_string(),
                    ),
                }
                self.cache_misses += u64::from(cache.is_some());
            }
            if self.batch_full() {
                break;
            }
        }
        self.next_line += parser.lines_consumed();
        parser.position()
    }

    /// Adds the sample of a plain line from the names cached for its key. False if the line
    /// must be decoded in full: its key is not cached, or its value or cluster would be
    /// rejected (the full path words the error).
    #[inline]
    fn decode_cached(&mut self, cache: &KeyCacheReader<'_>, line: &PlainLine<'_>) -> bool {
        let value = match line.value {
            PlainValue::Float(v) if !(v as f32).is_finite() => return false,
            PlainValue::Float(v) => v as f32,
            PlainValue::Int(v) => v as f32,
            PlainValue::UInt(v) => v as f32,
        };
        let Some((index, names)) = cache.find(line.key, self.cache_hint) else {
            return false;
        };
        let cluster = match names.cluster {
            Some(cluster) => cluster,
            None if self.default_cluster_valid => self.default_cluster.as_str(),
            None => return false,
        };
        let timestamp_s = line
            .timestamp
            .map_or(self.now_s, |t| self.precision.to_seconds(t));
        let [first, second] = names.levels;
        self.batch.push(
            cluster,
            names.host,
            [LevelName::new(first, ""), LevelName::new(second, "")],
            names.metric,
            timestamp_s,
            value,
        );
        self.cache_hint = index + 1;
        true
    }

    /// After a chunk: caches the keys decoded in full (their names are those of their
    /// samples) and adds the chunk's counts.
    fn update_cache(&mut self, cache: &KeyCache, chunk: &[u8]) {
        cache.count(self.cache_hits, self.cache_misses);
        (self.cache_hits, self.cache_misses) = (0, 0);
        if self.uncached.is_empty() {
            return;
        }
        let batch = &self.batch;
        cache.insert(self.uncached.iter().filter_map(|uncached| {
            let key = chunk.get(uncached.key.clone())?;
            let names = batch.get(uncached.sample)?.key;
            Some((
                key,
                KeyNames {
                    cluster: uncached.tagged_cluster.then_some(names.cluster),
                    host: names.host,
                    levels: names.levels,
                    metric: names.metric,
                },
            ))
        }));
        self.uncached.clear();
    }

    fn reject(&mut self, line: u64, reason: RejectReason, message: String) {
        if let Some(count) = RejectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.rejected.get_mut(i))
        {
            *count += 1;
        }
        if self.first_rejected.len() < REJECTED_LINES_LISTED_MAX {
            self.first_rejected.push(RejectedLine {
                line,
                reason: message,
            });
        }
    }

    /// Applies cc-metric-store's tag semantics to one parsed line and adds its sample.
    /// Returns whether the cluster came from a `cluster` tag (rather than the default).
    fn decode(&mut self, line: &Line<'_>) -> Result<bool, (RejectReason, String)> {
        let mut cluster: Option<Cow<'_, str>> = None;
        let mut hostname: Option<Cow<'_, str>> = None;
        let mut host: Option<Cow<'_, str>> = None;
        let (mut kind, mut kind_id) = (None, None);
        let (mut subkind, mut subkind_id) = (None, None);
        for (key, value) in line.tags() {
            match &*key {
                "cluster" => cluster = Some(value),
                "hostname" => hostname = Some(value),
                "host" => host = Some(value),
                "type" => kind = Some(value),
                "type-id" => kind_id = Some(value),
                // `subtype` is the key cc-metric-store used before May 2025 (decision 4).
                "stype" | "subtype" => subkind = Some(value),
                "stype-id" => subkind_id = Some(value),
                _ => {}
            }
        }
        let mut value = None;
        for (key, field) in line.fields() {
            if key != "value" {
                return Err((
                    RejectReason::UnknownField,
                    format!("unknown field '{key}' (only 'value' is accepted)"),
                ));
            }
            value = Some(match field {
                // In-memory values are float32 (decision 5): a larger magnitude would be
                // stored as infinity and read back as null.
                FieldValue::Float(v) if !(v as f32).is_finite() => {
                    return Err((
                        RejectReason::ValueRange,
                        format!("value {v:e} is outside the float32 range (±{:e})", f32::MAX),
                    ));
                }
                FieldValue::Float(v) => v as f32,
                FieldValue::Int(v) => v as f32,
                FieldValue::UInt(v) => v as f32,
                FieldValue::Bool(_) | FieldValue::String(_) => {
                    return Err((
                        RejectReason::ValueType,
                        "unsupported value type for field 'value': only numbers are accepted"
                            .to_owned(),
                    ));
                }
            });
        }
        let Some(value) = value else {
            return Err((RejectReason::Syntax, "missing field 'value'".to_owned()));
        };
        let host = hostname.or(host).unwrap_or_default();
        if host.is_empty() {
            return Err((
                RejectReason::MissingHost,
                "missing host (tag 'hostname' or 'host')".to_owned(),
            ));
        }
        let tagged_cluster = cluster.is_some();
        let cluster = cluster.unwrap_or(Cow::Borrowed(&self.default_cluster));
        if cluster.is_empty() {
            return Err((
                RejectReason::MissingCluster,
                format!(
                    "missing cluster (tag 'cluster' or {})",
                    self.cluster_fallback
                ),
            ));
        }
        if !same_text(&cluster, &self.checked.0) || !same_text(&host, &self.checked.1) {
            for (what, name) in [("cluster", &cluster), ("host", &host)] {
                check_name(what, name, self.limits.name_bytes_max)
                    .map_err(|error| (RejectReason::InvalidName, error.to_string()))?;
            }
            self.checked.0.clear();
            self.checked.0.push_str(&cluster);
            self.checked.1.clear();
            self.checked.1.push_str(&host);
        }
        // `type=node` means the host itself (decision 4).
        let kind = kind.filter(|k| k != "node");
        let first = kind
            .as_deref()
            .map(|k| LevelName::new(k, kind_id.as_deref().unwrap_or("")));
        let second = subkind
            .as_deref()
            .map(|k| LevelName::new(k, subkind_id.as_deref().unwrap_or("")));
        let levels = match (first, second) {
            (Some(first), second) => [first, second.unwrap_or(LevelName::NONE)],
            (None, Some(second)) => [second, LevelName::NONE],
            (None, None) => [LevelName::NONE; 2],
        };
        let timestamp_s = line
            .timestamp
            .map_or(self.now_s, |t| self.precision.to_seconds(t));
        self.batch.push(
            &cluster,
            &host,
            levels,
            &line.measurement,
            timestamp_s,
            value,
        );
        Ok(tagged_cluster)
    }
}

/// The query parameters of `/api/write`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WriteParams {
    cluster: Option<String>,
    precision: Option<String>,
}

impl WriteParams {
    /// Parses the raw query string by [`query_params`]' rules.
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let [cluster, precision] = query_params(query, ["cluster", "precision"])?;
        Ok(Self { cluster, precision })
    }
}

/// The values of `keys` in a raw query string (or a form-encoded body), in the order of
/// `keys`. Other parameters are ignored, as cc-metric-store and InfluxDB do; one of `keys`
/// given twice, a bad `%` escape or a value that is not UTF-8 is a 400 (decoding such bytes
/// lossily would turn `%FF` into a different name than was sent).
pub fn query_params<const N: usize>(
    query: &str,
    keys: [&str; N],
) -> Result<[Option<String>; N], ApiError> {
    let mut values = [const { None }; N];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key)?;
        let Some(slot) = keys
            .iter()
            .position(|k| *k == key)
            .and_then(|i| values.get_mut(i))
        else {
            continue;
        };
        if slot.is_some() {
            return Err(ApiError::BadRequest(format!(
                "query parameter {key:?} is given more than once"
            )));
        }
        *slot = Some(percent_decode(value)?);
    }
    Ok(values)
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XY` a byte.
fn percent_decode(text: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::BadRequest("invalid %-escape in the query string".to_owned());
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        bytes.push(match byte {
            b'+' => b' ',
            b'%' => {
                let hex = rest
                    .get(..2)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .ok_or_else(invalid)?;
                rest = &rest[2..];
                u8::from_str_radix(hex, 16).map_err(|_| invalid())?
            }
            other => other,
        });
    }
    String::from_utf8(bytes).map_err(|_| {
        ApiError::BadRequest("query string is not valid UTF-8 after %-decoding".to_owned())
    })
}

/// The body decoding a request asked for.
enum Encoding {
    Identity,
    /// `MultiGz`: a gzip body may consist of several members (RFC 1952 §2.2), e.g. the
    /// concatenation of separately compressed batches.
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
}

impl Encoding {
    /// From `Content-Encoding`, whose codings are case-insensitive (RFC 9110 §8.4.1).
    fn from_header(value: Option<&axum::http::HeaderValue>) -> Result<Self, ApiError> {
        let Some(value) = value else {
            return Ok(Self::Identity);
        };
        let text = value.to_str().unwrap_or("?").trim();
        if text.is_empty() || text.eq_ignore_ascii_case("identity") {
            Ok(Self::Identity)
        } else if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
            Ok(Self::Gzip(Box::new(flate2::write::MultiGzDecoder::new(
                Vec::new(),
            ))))
        } else {
            Err(ApiError::BadRequest(format!(
                "unsupported Content-Encoding {text:?} (expected gzip or none)"
            )))
        }
    }
}

pub async fn write(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let now_s = crate::now_s();
    let params = WriteParams::parse(query.as_deref().unwrap_or(""))?;
    let precision = match params.precision.as_deref() {
        None | Some("") => Precision::Auto,
        Some(text) => Precision::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown precision {text:?} (expected s, ms, us or ns)"
            ))
        })?,
    };
    let request = WriteRequest {
        default_cluster: params.cluster.as_deref().unwrap_or(""),
        cluster_fallback: "query parameter 'cluster'",
        precision,
        source: "http",
    };
    ingest_body(&app, request, &headers, body, now_s)
        .await?
        .into_result(app.config.ingest.body_bytes_max)?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")]).into_response())
}

/// What a write applies to lines that do not say it themselves.
#[derive(Debug, Clone, Copy)]
pub struct WriteRequest<'a> {
    /// Cluster of lines without a `cluster` tag; empty for none (such lines are rejected).
    pub default_cluster: &'a str,
    /// Where `default_cluster` comes from, for the error of a line without a cluster
    /// (e.g. "query parameter 'db'").
    pub cluster_fallback: &'static str,
    pub precision: Precision,
    /// Names the sender in the log line about rejected lines (`http`, `influx_v1`,
    /// `nats:SUBJECT`), so that a broken publisher can be found.
    pub source: &'a str,
}

/// How a write went, once every complete line received was decoded and committed.
#[derive(Debug)]
pub struct WriteOutcome {
    /// Non-blank, non-comment lines seen.
    pub lines: u64,
    /// Lines rejected (counted in `/metrics` by reason).
    pub rejected: u64,
    /// The first [`REJECTED_LINES_LISTED_MAX`] rejected lines.
    pub first_rejected: Vec<RejectedLine>,
    /// Why the body ended early, if it did; the lines before were stored.
    pub failure: Option<BodyFailure>,
}

/// Why a body was not read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFailure {
    Timeout,
    TooLarge,
    Read(String),
}

impl WriteOutcome {
    pub fn lines_stored(&self) -> u64 {
        self.lines - self.rejected
    }

    /// The `/api/write` answer: the body failure if any, else the rejected lines if any.
    pub fn into_result(self, body_bytes_max: u64) -> Result<(), ApiError> {
        let lines_stored = self.lines_stored();
        match self.failure {
            Some(BodyFailure::Timeout) => Err(ApiError::Timeout { lines_stored }),
            Some(BodyFailure::TooLarge) => Err(ApiError::PayloadTooLarge {
                limit_bytes: body_bytes_max,
                lines_stored,
            }),
            Some(BodyFailure::Read(message)) => Err(ApiError::BadRequest(format!(
                "reading request body failed: {message}; the first {lines_stored} lines were stored"
            ))),
            None if self.rejected > 0 => Err(ApiError::LinesRejected {
                rejected: self.rejected,
                lines: self.lines,
                first: self.first_rejected,
            }),
            None => Ok(()),
        }
    }

    fn of(decoder: &mut LineDecoder, failure: Option<BodyFailure>) -> Self {
        Self {
            lines: decoder.lines,
            rejected: decoder.rejected_total(),
            first_rejected: std::mem::take(&mut decoder.first_rejected),
            failure,
        }
    }
}

/// Reads, decodes and commits an HTTP write body (every write endpoint). `Err` is what
/// stopped the request before or during the commit (a bad header or cluster, a WAL failure);
/// everything about the body itself is in the [`WriteOutcome`].
pub async fn ingest_body(
    app: &App,
    request: WriteRequest<'_>,
    headers: &HeaderMap,
    body: Body,
    now_s: i64,
) -> Result<WriteOutcome, ApiError> {
    let mut encoding = Encoding::from_header(headers.get(header::CONTENT_ENCODING))?;
    let mut decoder = new_decoder(app, &request, now_s)?;
    let limits = &app.config.ingest;
    let deadline = tokio::time::Instant::now() + limits.request_timeout;
    let mut body = body;
    // Decoded bytes (what the limit is about) and bytes received: the limit holds for both,
    // or a stream of empty gzip members, which inflates to nothing, would never end.
    let mut body_bytes: u64 = 0;
    let mut received_bytes: u64 = 0;
    let outcome = loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => break Err(Failure::Body(BodyFailure::Timeout)),
            Ok(None) => break Ok(()),
            Ok(Some(Err(error))) => break Err(Failure::Body(BodyFailure::Read(error.to_string()))),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        received_bytes += data.len() as u64;
        if received_bytes > limits.body_bytes_max {
            break Err(Failure::Body(BodyFailure::TooLarge));
        }
        let step = match &mut encoding {
            Encoding::Identity => {
                body_bytes += data.len() as u64;
                decode(app, &mut decoder, &data, now_s).await
            }
            Encoding::Gzip(gzip) => {
                inflate(app, gzip, &data, &mut decoder, &mut body_bytes, now_s).await
            }
        };
        if let Err(failure) = step {
            break Err(failure);
        }
    };
    let outcome = match (outcome, &mut encoding) {
        (Ok(()), Encoding::Gzip(gzip)) => {
            let result = gzip.try_finish();
            let inflated = std::mem::take(gzip.get_mut());
            match decode(app, &mut decoder, &inflated, now_s).await {
                Ok(()) => result.map_err(|e| {
                    Failure::Body(BodyFailure::Read(format!("invalid gzip data: {e}")))
                }),
                Err(failure) => Err(failure),
            }
        }
        (outcome, _) => outcome,
    };
    app.telemetry.body_bytes.inc_by(body_bytes);
    finish(app, decoder, outcome, &request, now_s).await
}

/// Decodes and commits one message that is wholly in memory (a NATS message). The decoding
/// runs on the blocking pool, one batch at a time, so that a large message never holds an
/// async worker; the caller bounds how many run at once. `Err` is a commit failure (the WAL
/// refuses writes): the batches before it were stored.
pub async fn ingest_message(
    app: &App,
    request: WriteRequest<'_>,
    payload: bytes::Bytes,
    now_s: i64,
) -> Result<WriteOutcome, ApiError> {
    let mut decoder = new_decoder(app, &request, now_s)?;
    if payload.len() as u64 > app.config.ingest.body_bytes_max {
        let too_large = Err(Failure::Body(BodyFailure::TooLarge));
        return finish(app, decoder, too_large, &request, now_s).await;
    }
    let mut offset = 0;
    loop {
        let input = payload.clone();
        let (returned, used) = tokio::task::spawn_blocking(move || {
            let used = decoder.feed(input.get(offset..).unwrap_or_default());
            (decoder, used)
        })
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?;
        decoder = returned;
        offset += used;
        if offset >= payload.len() {
            break;
        }
        // The batch is full: commit it before decoding the rest.
        match app.commit(std::mem::take(&mut decoder.batch), now_s).await {
            Ok(batch) => decoder.batch = batch,
            Err((error, batch)) => {
                app.give_batch(batch);
                // Lines rejected before the failure are counted all the same.
                app.record_rejections(&decoder, request.source, now_s);
                return Err(error);
            }
        }
    }
    finish(app, decoder, Ok(()), &request, now_s).await
}

fn new_decoder(app: &App, request: &WriteRequest<'_>, now_s: i64) -> Result<LineDecoder, ApiError> {
    let limits = &app.config.ingest;
    if !request.default_cluster.is_empty() {
        check_name(
            "cluster",
            request.default_cluster,
            limits.line.name_bytes_max,
        )
        .map_err(|error| ApiError::BadRequest(format!("query parameter: {error}")))?;
    }
    let mut decoder = LineDecoder::new(
        request.default_cluster,
        request.precision,
        now_s,
        limits.line.clone(),
    )
    .with_cluster_fallback(request.cluster_fallback)
    .with_key_cache(app.key_cache.clone());
    decoder.batch = app.take_batch();
    Ok(decoder)
}

/// Commits what is left after the input ended (whatever the reason: every complete line
/// received is kept, decision 2), counts the rejected lines and describes the outcome.
async fn finish(
    app: &App,
    mut decoder: LineDecoder,
    outcome: Result<(), Failure>,
    request: &WriteRequest<'_>,
    now_s: i64,
) -> Result<WriteOutcome, ApiError> {
    let failure = match outcome {
        Err(Failure::Commit(error)) => {
            app.give_batch(std::mem::take(&mut decoder.batch));
            app.record_rejections(&decoder, request.source, now_s);
            return Err(error);
        }
        Err(Failure::Body(failure)) => Some(failure),
        Ok(()) => {
            decoder.finish();
            None
        }
    };
    let committed = match app.commit(std::mem::take(&mut decoder.batch), now_s).await {
        Ok(batch) => {
            app.give_batch(batch);
            Ok(())
        }
        Err((error, batch)) => {
            app.give_batch(batch);
            Err(error)
        }
    };
    app.record_rejections(&decoder, request.source, now_s);
    committed?;
    Ok(WriteOutcome::of(&mut decoder, failure))
}

enum Failure {
    Body(BodyFailure),
    /// A full batch could not be committed (the WAL refuses writes).
    Commit(ApiError),
}

/// Decodes `input`, committing the batch whenever it fills up, so that its memory stays
/// bounded however the input is shaped.
async fn decode(
    app: &App,
    decoder: &mut LineDecoder,
    mut input: &[u8],
    now_s: i64,
) -> Result<(), Failure> {
    loop {
        input = input.get(decoder.feed(input)..).unwrap_or_default();
        if decoder.batch_full() {
            match app.commit(std::mem::take(&mut decoder.batch), now_s).await {
                Ok(batch) => decoder.batch = batch,
                Err((error, batch)) => {
                    app.give_batch(batch);
                    return Err(Failure::Commit(error));
                }
            }
        }
        if input.is_empty() {
            return Ok(());
        }
    }
}

/// Feeds compressed bytes through the gzip decoder in small steps, checking the body limit
/// on the inflated size after each.
async fn inflate(
    app: &App,
    gzip: &mut flate2::write::MultiGzDecoder<Vec<u8>>,
    data: &[u8],
    decoder: &mut LineDecoder,
    body_bytes: &mut u64,
    now_s: i64,
) -> Result<(), Failure> {
    for step in data.chunks(GZIP_INPUT_STEP_BYTES) {
        gzip.write_all(step)
            .map_err(|e| Failure::Body(BodyFailure::Read(format!("invalid gzip data: {e}"))))?;
        let inflated = gzip.get_mut();
        *body_bytes += inflated.len() as u64;
        if *body_bytes > app.config.ingest.body_bytes_max {
            return Err(Failure::Body(BodyFailure::TooLarge));
        }
        decode(app, decoder, inflated, now_s).await?;
        inflated.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str, chunk: usize) -> LineDecoder {
        let mut decoder =
            LineDecoder::new("dflt", Precision::Auto, 1_700_000_000, Default::default());
        for piece in body.as_bytes().chunks(chunk) {
            decoder.feed(piece);
        }
        decoder.finish();
        decoder
    }

    fn keys(decoder: &LineDecoder) -> Vec<String> {
        decoder
            .batch
            .iter()
            .map(|s| {
                let k = s.key;
                format!(
                    "{}/{}/{}/{}/{}@{}={}",
                    k.cluster, k.host, k.levels[0], k.levels[1], k.metric, s.timestamp_s, s.value
                )
            })
            .collect()
    }

    #[test]
    fn applies_cc_metric_store_tag_rules() {
        let body = "\
cpu_load,cluster=alex,hostname=a0603,type=node value=35.0 1725827464
cpu_user,cluster=alex,hostname=a0603,type=hwthread,type-id=0 value=12.0 1725827464
m,hostname=h,type-id=2,type=core value=1i 1725827464
m,host=h,type=socket,type-id=0,stype=net,stype-id=ib0 value=2u 1725827464
m,host=h,type=node,type-id=0 value=3 1725827464
m,host=h,stype=net,stype-id=eth0 value=4 1725827464
m,host=h,subtype=net,stype-id=eth1,unit=x value=5 1725827464
";
        let expected = [
            "alex/a0603///cpu_load@1725827464=35",
            "alex/a0603/hwthread0//cpu_user@1725827464=12",
            "dflt/h/core2//m@1725827464=1",
            "dflt/h/socket0/netib0/m@1725827464=2",
            "dflt/h///m@1725827464=3",
            "dflt/h/neteth0//m@1725827464=4",
            "dflt/h/neteth1//m@1725827464=5",
        ];
        for chunk in [1, 7, 64, 4096] {
            let decoder = decode(body, chunk);
            assert_eq!(keys(&decoder), expected, "chunk {chunk}");
            assert_eq!((decoder.lines, decoder.rejected_total()), (7, 0));
        }
    }

    #[test]
    fn converts_timestamps_by_magnitude_or_precision() {
        assert_eq!(Precision::Auto.to_seconds(1_725_827_464), 1_725_827_464);
        assert_eq!(Precision::Auto.to_seconds(1_725_827_464_123), 1_725_827_464);
        assert_eq!(
            Precision::Auto.to_seconds(1_725_827_464_123_456),
            1_725_827_464
        );
        assert_eq!(
            Precision::Auto.to_seconds(1_725_827_464_123_456_789),
            1_725_827_464
        );
        assert_eq!(Precision::Milliseconds.to_seconds(5_000), 5);
        assert_eq!(Precision::parse("n"), Some(Precision::Nanoseconds));
        assert_eq!(Precision::parse("h"), None);
        assert_eq!(Precision::Minutes.to_seconds(3), 180);
        assert_eq!(Precision::Hours.to_seconds(-2), -7_200);
        assert_eq!(Precision::Hours.to_seconds(i64::MAX), i64::MAX);
        let decoder = decode("m,host=h value=1\n", 100);
        assert_eq!(
            decoder.batch.iter().next().map(|s| s.timestamp_s),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn keeps_valid_lines_and_reports_bad_ones_with_line_numbers() {
        let body = "\
# comment

m,host=h value=1 1700000000
m,host=h other=1 1700000000
m,host=h value=\"s\" 1700000000
m value=1 1700000000
m,host=a/b value=1 1700000000
broken line
m,host=h value=2 1700000060\r
";
        let decoder = decode(body, 3);
        assert_eq!(keys(&decoder).len(), 2);
        assert_eq!(decoder.lines, 7);
        assert_eq!(decoder.rejected_total(), 5);
        let lines: Vec<u64> = decoder.first_rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8]);
        assert!(
            decoder.first_rejected[0]
                .reason
                .contains("unknown field 'other'")
        );
        assert!(decoder.first_rejected[2].reason.contains("missing host"));
        assert!(decoder.first_rejected[3].reason.contains("'..'"));
    }

    #[test]
    fn values_beyond_float32_are_rejected_per_line() {
        let decoder = decode(
            "m,host=h value=1e39 1\nm,host=h value=-3.5e38 2\nm,host=h value=3.4e38 3\n",
            100,
        );
        assert_eq!(
            keys(&decoder),
            ["dflt/h///m@3=340000000000000000000000000000000000000"]
        );
        let lines: Vec<u64> = decoder.first_rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 2]);
        assert!(
            decoder.first_rejected[0]
                .reason
                .contains("outside the float32 range")
        );
        let at = RejectReason::ALL
            .iter()
            .position(|r| *r == RejectReason::ValueRange)
            .unwrap();
        assert_eq!(decoder.rejected[at], 2, "counted as value_range");
    }

    #[test]
    fn write_params_are_percent_decoded_and_must_be_unambiguous() {
        let params = WriteParams::parse("cluster=a%20b+c&precision=s&other=1&other=2").unwrap();
        assert_eq!(params.cluster.as_deref(), Some("a b c"));
        assert_eq!(params.precision.as_deref(), Some("s"));
        assert_eq!(WriteParams::parse("").unwrap(), WriteParams::default());
        for bad in [
            "cluster=a&cluster=b",
            "cluster=%FF",
            "cluster=%4",
            "cluster=%zz",
            "cluster=%+1",
        ] {
            assert!(WriteParams::parse(bad).is_err(), "{bad}");
        }
        // `%00` decodes; the name check refuses it afterwards.
        assert_eq!(
            WriteParams::parse("cluster=%00")
                .unwrap()
                .cluster
                .as_deref(),
            Some("\0")
        );
    }

    #[test]
    fn content_codings_are_case_insensitive() {
        use axum::http::HeaderValue;
        for gzip in ["gzip", "GZIP", "x-Gzip", " gzip "] {
            let value = HeaderValue::from_static(gzip);
            assert!(matches!(
                Encoding::from_header(Some(&value)),
                Ok(Encoding::Gzip(_))
            ));
        }
        let value = HeaderValue::from_static("Identity");
        assert!(matches!(
            Encoding::from_header(Some(&value)),
            Ok(Encoding::Identity)
        ));
        let value = HeaderValue::from_static("br");
        assert!(Encoding::from_header(Some(&value)).is_err());
    }

    #[test]
    fn names_are_checked_again_whenever_cluster_or_host_change() {
        // Issue 10: a cluster and host equal to the last checked ones are not checked again;
        // any change is.
        let body = "\
m,host=h value=1 1
m,host=a/b value=2 1
m,host=h value=3 1
m,cluster=x..y,host=h value=4 1
m,cluster=x..y,host=h value=5 1
m,host=h value=6 1
m,host=h.. value=7 1
";
        let decoder = decode(body, 4096);
        assert_eq!(
            keys(&decoder),
            ["dflt/h///m@1=1", "dflt/h///m@1=3", "dflt/h///m@1=6"]
        );
        let lines: Vec<u64> = decoder.first_rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4, 5, 7]);
    }

    #[test]
    fn missing_cluster_is_rejected() {
        let mut decoder = LineDecoder::new("", Precision::Auto, 0, Default::default());
        decoder.feed(b"m,host=h value=1 1\n");
        assert_eq!(decoder.rejected_total(), 1);
        assert!(decoder.first_rejected[0].reason.contains("missing cluster"));
    }

    #[test]
    fn a_batch_is_full_at_its_name_budget_and_decoding_resumes_after_a_commit() {
        // Issue 6 item 12: lines alternating a `cluster` tag with a long default cluster add
        // the whole default name per line; one chunk of them grew a batch to gigabytes.
        let cluster = "d".repeat(250);
        let mut decoder = LineDecoder::new(&cluster, Precision::Auto, 0, Default::default());
        let body = "m,cluster=x,host=h value=1 1\nm,host=h value=1 1\n".repeat(20_000);
        let mut input = body.as_bytes();
        let (mut samples, mut commits) = (0, 0);
        while !input.is_empty() {
            input = &input[decoder.feed(input)..];
            assert!(decoder.batch.text_bytes() < BATCH_TEXT_BYTES_MAX + 300);
            if decoder.batch_full() {
                samples += decoder.batch.len();
                commits += 1;
                decoder.batch.clear();
            }
        }
        decoder.finish();
        samples += decoder.batch.len();
        assert_eq!((samples, decoder.rejected_total()), (40_000, 0));
        assert!(commits >= 10, "{commits} commits");
    }

    /// Everything a decoder produced: samples (value bits, not values), lines, rejections by
    /// reason, and the rejected lines listed.
    fn outcome(decoder: &LineDecoder) -> (Vec<String>, u64, Vec<u64>, Vec<RejectedLine>) {
        let samples = decoder
            .batch
            .iter()
            .map(|s| {
                let k = s.key;
                format!(
                    "{}/{}/{}/{}/{}@{}={:x}",
                    k.cluster,
                    k.host,
                    k.levels[0],
                    k.levels[1],
                    k.metric,
                    s.timestamp_s,
                    s.value.to_bits()
                )
            })
            .collect();
        (
            samples,
            decoder.lines,
            decoder.rejected.to_vec(),
            decoder.first_rejected.clone(),
        )
    }

    fn decode_with(
        body: &[u8],
        cuts: &[usize],
        cluster: &str,
        limits: &strata_lineproto::Limits,
        cache: Option<&Arc<KeyCache>>,
    ) -> LineDecoder {
        let mut decoder = LineDecoder::new(cluster, Precision::Auto, 1_700_000_000, limits.clone());
        if let Some(cache) = cache {
            decoder = decoder.with_key_cache(cache.clone());
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut from = 0;
        for cut in cuts.into_iter().chain([body.len()]) {
            let mut input = &body[from..cut];
            while !input.is_empty() {
                input = &input[decoder.feed(input)..];
            }
            from = cut;
        }
        decoder.finish();
        decoder
    }

    mod key_cache {
        use super::*;
        use proptest::prelude::*;

        /// A series key from pieces that are valid, near-valid or hostile to the fast path.
        fn series_key() -> impl Strategy<Value = String> {
            let measurement = prop::sample::select(vec![
                "cpu_user".to_owned(),
                "m".to_owned(),
                "m\\,x".to_owned(),
                "m\"q".to_owned(),
                "é".to_owned(),
                "n".repeat(300),
            ]);
            let tag = (
                prop::sample::select(vec![
                    "cluster", "hostname", "host", "type", "type-id", "stype", "subtype",
                    "stype-id", "x", "a\\=b",
                ]),
                prop::sample::select(vec![
                    "hpc1", "n01", "n02", "a/b", "node", "hwthread", "socket", "0", "12", "h..",
                    "v\\ w", "\"q\"", "",
                ]),
            );
            (measurement, prop::collection::vec(tag, 0..6)).prop_map(|(measurement, tags)| {
                let mut key = measurement;
                for (name, value) in tags {
                    key.push_str(&format!(",{name}={value}"));
                }
                key
            })
        }

        /// The rest of a line after its series key, and its end.
        fn tail() -> impl Strategy<Value = String> {
            let field = prop::sample::select(vec![
                " value=1.5",
                " value=49.42",
                " value=-3i",
                " value=7u",
                " value=1e39",
                " value=-3.5e38",
                " value=12345678901234567890123",
                " value=t",
                " value=\"s\"",
                " other=1",
                " value=1,x=2",
                "  value=2",
                " value=",
                " value=1e400",
                "",
            ]);
            let timestamp = prop::sample::select(vec![
                "",
                " 1700000000",
                " 1700000000123",
                " -5",
                " x",
                "  17  ",
                " 1 2",
                " 99999999999999999999",
            ]);
            let end = prop::sample::select(vec!["\n", "\r\n", "\n\n", "\n# c\n", "\r\r\n"]);
            (field, timestamp, end)
                .prop_map(|(field, timestamp, end)| format!("{field}{timestamp}{end}"))
        }

        /// A body whose lines share a few series keys (so that the cache holds what later
        /// lines need), some lines with a byte overwritten.
        fn body() -> impl Strategy<Value = Vec<u8>> {
            let line = (
                any::<prop::sample::Index>(),
                tail(),
                prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
            );
            (
                prop::collection::vec(series_key(), 1..5),
                prop::collection::vec(line, 1..24),
            )
                .prop_map(|(keys, lines)| {
                    let mut body = Vec::new();
                    for (key, tail, edit) in lines {
                        let mut line = format!("{}{tail}", key.get(&keys)).into_bytes();
                        if let Some((at, byte)) = edit {
                            let at = at.index(line.len());
                            line[at] = byte;
                        }
                        body.extend_from_slice(&line);
                    }
                    body
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1500))]

            #[test]
            fn decoding_with_a_warm_cache_equals_decoding_without(
                warm in body(),
                body in body(),
                cuts in prop::collection::vec(any::<usize>(), 0..6),
                warm_cluster in prop::sample::select(vec!["dflt", "other", "", "x..y"]),
                cluster in prop::sample::select(vec!["dflt", "other", "", "x..y"]),
                short_names in any::<bool>(),
                short_lines in any::<bool>(),
            ) {
                // Goal: the cache changes nothing but speed: samples (names, times, value
                // bits), line counts, rejections by reason and the rejected lines with their
                // numbers and messages are those of the full path, whatever the cache was
                // warmed with (another body, another default cluster) and however the body
                // is cut into chunks.
                let limits = strata_lineproto::Limits {
                    name_bytes_max: if short_names { 8 } else { 256 },
                    line_bytes_max: if short_lines { 40 } else { 64 * 1024 },
                    ..Default::default()
                };
                let cache = Arc::new(KeyCache::new(limits.clone()));
                decode_with(&warm, &[], warm_cluster, &limits, Some(&cache));
                decode_with(&body, &[], warm_cluster, &limits, Some(&cache));
                let cold = decode_with(&body, &cuts, cluster, &limits, None);
                let warm = decode_with(&body, &cuts, cluster, &limits, Some(&cache));
                prop_assert_eq!(outcome(&warm), outcome(&cold));
            }
        }

        #[test]
        fn collector_lines_are_served_from_the_cache_after_the_first_time() {
            let body = "cpu_user,cluster=hpc1,hostname=n0000,type=hwthread,type-id=12 value=49.42 1795934400\n\
                        mem_used,hostname=n0000 value=3i\n";
            let limits = strata_lineproto::Limits::default();
            let cache = Arc::new(KeyCache::new(limits.clone()));
            let first = decode_with(body.as_bytes(), &[], "c", &limits, Some(&cache));
            assert_eq!(cache.stats().misses, 2);
            assert_eq!(cache.stats().entries, 2);
            let second = decode_with(body.as_bytes(), &[30], "c", &limits, Some(&cache));
            assert_eq!((cache.stats().hits, cache.stats().misses), (2, 2));
            assert_eq!(outcome(&first), outcome(&second));
            assert_eq!(
                keys(&second),
                [
                    "hpc1/n0000/hwthread12//cpu_user@1795934400=49.42",
                    "c/n0000///mem_used@1700000000=3"
                ]
            );
            // Other limits: the cache is not used.
            let other = strata_lineproto::Limits {
                name_bytes_max: 9,
                ..limits
            };
            decode_with(body.as_bytes(), &[], "c", &other, Some(&cache));
            assert_eq!((cache.stats().hits, cache.stats().misses), (2, 2));
        }
    }

    #[test]
    fn an_over_long_line_is_rejected_without_buffering_it() {
        let limits = strata_lineproto::Limits {
            line_bytes_max: 100,
            ..Default::default()
        };
        let mut decoder = LineDecoder::new("c", Precision::Auto, 0, limits);
        decoder.feed(b"m,host=h value=1 1\nm,host=h,x=");
        for _ in 0..1000 {
            decoder.feed(&[b'a'; 64]);
            assert!(decoder.pending.len() <= 102);
        }
        decoder.feed(b" value=1 2\nm,host=h value=3 3\n");
        decoder.finish();
        assert_eq!(keys(&decoder), ["c/h///m@1=1", "c/h///m@3=3"]);
        assert_eq!(decoder.first_rejected.len(), 1);
        assert_eq!(decoder.first_rejected[0].line, 2);
    }

    #[test]
    fn over_long_comment_and_blank_lines_are_skipped_whatever_the_chunks() {
        // Goal: a comment or blank line longer than the limit is skipped as the parser skips
        // it, also when its end arrives in a later chunk (the fuzz target ingest_split found a
        // long comment rejected and counted when split, ignored when whole); blanks then text
        // are still a line too long, at any split.
        let limits = strata_lineproto::Limits {
            line_bytes_max: 100,
            ..Default::default()
        };
        let body = format!(
            "m,host=h value=1 1\n  #{}\n{}\n{}m,host=h value=2 2\n{}# c\nm,host=h value=3 3\n",
            "a".repeat(300),
            " ".repeat(300),
            "\t".repeat(300),
            " ".repeat(300),
        );
        for chunk in [body.len(), 1, 7, 64] {
            let mut decoder = LineDecoder::new("c", Precision::Auto, 0, limits.clone());
            for piece in body.as_bytes().chunks(chunk) {
                decoder.feed(piece);
                assert!(decoder.pending.len() <= 102, "chunk {chunk}");
            }
            decoder.finish();
            assert_eq!(
                keys(&decoder),
                ["c/h///m@1=1", "c/h///m@3=3"],
                "chunk {chunk}"
            );
            assert_eq!(decoder.lines, 3, "chunk {chunk}");
            let rejected: Vec<u64> = decoder.first_rejected.iter().map(|r| r.line).collect();
            assert_eq!(rejected, [4], "chunk {chunk}");
        }
    }
}
