//! Line splitting and per-line validation.

use crate::Limits;
use crate::error::{ErrorKind, LineError, echo};
use crate::line::{FirstField, IndexedValue, Line, TagIndex};
use crate::number::{self, RawValue, ValueError};
use crate::scan::{self, NameKind, NameScan, Stop};
use std::fmt;
use std::iter::FusedIterator;

/// Iterates over the lines of `input`, yielding one item per line that is not blank or a
/// comment.
///
/// Blank lines (empty or only spaces/tabs) and comment lines (first non-blank character `#`)
/// are skipped and yield nothing. Lines end at `\n`; a `\r` directly before `\n` (or at the
/// very end of the input) is dropped. The final line may lack `\n`. An error affects only its
/// line: iteration always continues with the next one.
#[derive(Clone)]
pub struct Parser<'a> {
    input: &'a [u8],
    /// Index in `input` of the next line.
    pos: usize,
    /// `input[validated_start..]` as far as it is known to be valid UTF-8. See
    /// [`Parser::line_text`].
    validated: &'a str,
    validated_start: usize,
    limits: Limits,
    /// Number of the next line.
    number_next: u64,
    /// Physical lines consumed so far, including blank and comment lines.
    lines_consumed: u64,
    memo: SeriesMemo<'a>,
}

/// The validated series key (measurement and tag set) of the previous line.
///
/// Collectors send runs of lines that share a series key prefix: `cc-metric-collector` writes
/// one line per metric and hardware thread, so consecutive lines differ only in `type-id` or
/// only in the measurement. Validation is a function of the bytes alone, so a prefix that is
/// byte-identical to an already validated one validates identically, and its tokens can be
/// taken over instead of scanned again. This halves the parse time of such runs.
///
/// NOTE: correctness rests on comparing the bytes, including each token's delimiter. Nothing
/// is reused that was not validated: the memo is updated only after a successful scan.
#[derive(Debug, Clone, Default)]
struct SeriesMemo<'a> {
    /// The previous measurement as written, plus the `,` or space after it; empty if none.
    measurement: &'a [u8],
    /// The scan of `measurement`, with positions relative to its start.
    measurement_scan: Option<NameScan>,
    /// The previous tag set as written (from the first key), plus the space after it.
    tags: &'a [u8],
    /// The index of `tags`.
    index: TagIndex,
    /// The previous first field key as written, plus the `=` after it; empty if none.
    field_key: &'a [u8],
    /// The scan of `field_key`, with positions relative to its start.
    field_key_scan: Option<NameScan>,
}

/// Hard cap on the line length whatever [`Limits::line_bytes_max`] says: positions inside a
/// [`Line`] are stored as `u32` to keep it small.
const LINE_BYTES_CAP: usize = u32::MAX as usize;

/// How much input is checked for UTF-8 validity at once. One call per line costs ~10% of the
/// parse time on short lines; one call per 64 KiB costs nothing measurable and keeps the
/// checked bytes in cache for the parse that follows.
const UTF8_CHUNK_BYTES: usize = 64 * 1024;

// NOTE: not derived, so that logging a parser does not dump the whole request body.
impl fmt::Debug for Parser<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parser")
            .field("input_bytes", &self.input.len())
            .field("pos", &self.pos)
            .field("number_next", &self.number_next)
            .field("lines_consumed", &self.lines_consumed)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<'a> Parser<'a> {
    /// A parser whose first line is number 1.
    pub fn new(input: &'a [u8], limits: &Limits) -> Self {
        Self::with_first_line(input, limits, 1)
    }

    /// A parser whose first line is number `first_line`, for bodies that arrive in chunks:
    /// pass the previous chunk's `first_line + lines_consumed()` so that numbering continues.
    pub fn with_first_line(input: &'a [u8], limits: &Limits, first_line: u64) -> Self {
        Self {
            input,
            pos: 0,
            validated: "",
            validated_start: 0,
            limits: limits.clone(),
            number_next: first_line,
            lines_consumed: 0,
            memo: SeriesMemo::default(),
        }
    }

    /// How many physical lines (including blank and comment lines) have been consumed so far.
    pub fn lines_consumed(&self) -> u64 {
        self.lines_consumed
    }

    /// Bytes of the input consumed so far: the next line starts here.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The longest valid UTF-8 prefix of `input[start..end]`, which is all of it unless the
    /// line contains invalid UTF-8. Lines are requested in increasing order.
    #[inline]
    fn line_text(&mut self, start: usize, end: usize) -> &'a str {
        let validated_end = self.validated_start + self.validated.len();
        if start < self.validated_start || end > validated_end {
            // Validate a chunk starting at this line. If it contains invalid UTF-8, the
            // validated region stops there; the line holding the bad byte gets a short text,
            // and the line after it starts a new chunk. Each byte is thus checked at most
            // twice, whatever the input.
            let chunk_end = end
                .max(start.saturating_add(UTF8_CHUNK_BYTES))
                .min(self.input.len());
            let chunk = self.input.get(start..chunk_end).unwrap_or_default();
            self.validated = valid_prefix(chunk);
            self.validated_start = start;
        }
        let from = start - self.validated_start;
        let to = (end - self.validated_start).min(self.validated.len());
        self.validated.get(from..to).unwrap_or_default()
    }
}

/// The longest prefix of `bytes` that is valid UTF-8.
fn valid_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => bytes
            .get(..error.valid_up_to())
            .and_then(|valid| std::str::from_utf8(valid).ok())
            .unwrap_or_default(),
    }
}

/// The next line when it has the plain shape of a collector's sample,
/// `SERIES value=NUMBER[ TIMESTAMP]`, found by [`Parser::peek_plain`].
///
/// Its series key (measurement and tags) is NOT validated: the caller must know the key from
/// a line that [`Parser::next`] accepted under the same [`Limits`] (validation is a function
/// of the key's bytes and the limits alone), and otherwise let [`Parser::next`] parse the
/// line. Everything after the key is validated exactly as [`Parser::next`] would.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlainLine<'a> {
    /// The line's number.
    pub number: u64,
    /// The series key as written: the bytes before the first space. If it holds no `\`,
    /// that space is where [`Parser::next`] ends the series key too (otherwise the space may
    /// be escaped: such a key must not be looked up as a whole series key).
    pub key: &'a [u8],
    /// The value of the line's one field, `value`.
    pub value: PlainValue,
    /// The timestamp, if the line has one.
    pub timestamp: Option<i64>,
    /// Where the line starts and where the next one does.
    start: usize,
    next: usize,
}

/// The numeric value of a [`PlainLine`], as [`FieldValue`](crate::FieldValue) would hold it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlainValue {
    /// See [`FieldValue::Float`](crate::FieldValue::Float).
    Float(f64),
    /// See [`FieldValue::Int`](crate::FieldValue::Int).
    Int(i64),
    /// See [`FieldValue::UInt`](crate::FieldValue::UInt).
    UInt(u64),
}

/// What precedes the value of a plain line: the space that ends the series key and the
/// field key.
const PLAIN_FIELD: &[u8] = b" value=";

impl<'a> Parser<'a> {
    /// The next line if it is a [`PlainLine`], without consuming it; `None` for anything else
    /// (a blank or comment line, another field, a string or boolean value, an invalid value
    /// or timestamp, an over-long line), which [`Parser::next`] then parses with its exact
    /// errors.
    #[inline]
    pub fn peek_plain(&self) -> Option<PlainLine<'a>> {
        let start = self.pos;
        let rest = self.input.get(start..)?;
        // The key ends at the first space; a line that ends before one is not plain.
        let space = memchr::memchr2(b' ', b'\n', rest)?;
        let (key, after) = rest.split_at_checked(space)?;
        if after.first() != Some(&b' ') {
            return None;
        }
        let (mut tail, next) = match memchr::memchr(b'\n', after) {
            Some(newline) => (after.get(..newline)?, start + space + newline + 1),
            None => (after, self.input.len()),
        };
        if let Some(without_cr) = tail.strip_suffix(b"\r") {
            tail = without_cr;
        }
        if key.len() + tail.len() > self.limits.line_bytes_max.min(LINE_BYTES_CAP) {
            return None;
        }
        // A blank start (skipped by `next`) or a comment is not plain.
        if matches!(key.first(), None | Some(b'\t' | b'#')) || !tail.starts_with(PLAIN_FIELD) {
            return None;
        }
        // No text: numbers do not need it, and strings are not plain.
        let (value, value_end) = number::parse_field_value(tail, "", PLAIN_FIELD.len()).ok()?;
        let value = match value {
            RawValue::Float(v) => PlainValue::Float(v),
            RawValue::Int(v) => PlainValue::Int(v),
            RawValue::UInt(v) => PlainValue::UInt(v),
            RawValue::Bool(_) | RawValue::String { .. } => return None,
        };
        // A `,` after the value is a second field (or an error): not plain.
        if tail.get(value_end) == Some(&b',') {
            return None;
        }
        let timestamp = parse_timestamp(tail, value_end).ok()?;
        Some(PlainLine {
            number: self.number_next,
            key,
            value,
            timestamp,
            start,
            next,
        })
    }

    /// Where `line` (and so its key) starts in the parser's input.
    pub fn offset_of(line: &PlainLine<'a>) -> usize {
        line.start
    }

    /// Consumes `line`, which [`Parser::peek_plain`] returned for the current position, as
    /// [`Parser::next`] would have. Returns false (and consumes nothing) for any other line.
    #[inline]
    pub fn take_plain(&mut self, line: &PlainLine<'a>) -> bool {
        if line.start != self.pos || line.number != self.number_next {
            return false;
        }
        self.pos = line.next;
        self.number_next = self.number_next.saturating_add(1);
        self.lines_consumed += 1;
        true
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Line<'a>, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line_start = self.pos;
            let rest = self.input.get(line_start..).unwrap_or_default();
            if rest.is_empty() {
                return None;
            }
            let mut line_end = match memchr::memchr(b'\n', rest) {
                Some(newline) => {
                    self.pos = line_start + newline + 1;
                    line_start + newline
                }
                None => {
                    self.pos = self.input.len();
                    self.input.len()
                }
            };
            let number = self.number_next;
            self.number_next = self.number_next.saturating_add(1);
            self.lines_consumed += 1;

            if line_end > line_start && self.input.get(line_end - 1) == Some(&b'\r') {
                line_end -= 1;
            }
            let line = self.input.get(line_start..line_end).unwrap_or_default();
            let Some(start) = line.iter().position(|&b| b != b' ' && b != b'\t') else {
                continue; // Blank line.
            };
            if line.get(start) == Some(&b'#') {
                continue; // Comment line.
            }
            let line_bytes_max = self.limits.line_bytes_max.min(LINE_BYTES_CAP);
            if line.len() > line_bytes_max {
                let kind = ErrorKind::LineTooLong {
                    bytes: line.len(),
                    max: line_bytes_max,
                };
                return Some(Err(LineError { number, kind }));
            }
            let text = self.line_text(line_start, line_end);
            return Some(
                parse_line(line, text, start, number, &self.limits, &mut self.memo)
                    .map_err(|kind| LineError { number, kind }),
            );
        }
    }
}

impl FusedIterator for Parser<'_> {}

/// Parses and validates one line (without terminator) whose measurement starts at `start`.
///
/// `text` is the longest valid UTF-8 prefix of `line`. Every token boundary sits next to an
/// ASCII delimiter, so tokens are sliced out of `text` with `str::get`, which fails exactly
/// for tokens that reach into invalid UTF-8.
fn parse_line<'a>(
    line: &'a [u8],
    text: &'a str,
    start: usize,
    number: u64,
    limits: &Limits,
    memo: &mut SeriesMemo<'a>,
) -> Result<Line<'a>, ErrorKind> {
    let measurement = parse_measurement(line, text, start, limits, memo)?;
    let measurement_text =
        measurement
            .cow(text, scan::MEASUREMENT)
            .ok_or(ErrorKind::InvalidUtf8 {
                what: "measurement",
            })?;

    let mut pos = measurement.end;
    let mut tags = TagIndex::default();
    let tags_start = match measurement.stop {
        Stop::Delimiter(b',') => {
            let tags_start = pos + 1;
            pos = parse_tags(line, text, tags_start, limits, &mut tags, memo)?;
            Some(tags_start)
        }
        Stop::Delimiter(_) => None,
        Stop::End | Stop::Control(_) => return Err(ErrorKind::MissingFields),
    };
    // `pos` is at the space that ends the series key.
    pos = skip_spaces(line, pos);
    if pos >= line.len() {
        return Err(ErrorKind::MissingFields);
    }
    let fields_start = pos;
    let (first_field, fields_end) = parse_fields(line, text, fields_start, limits, memo)?;
    let first_field = FirstField {
        key_end: u32::try_from(first_field.key_end).unwrap_or(u32::MAX),
        value_end: u32::try_from(first_field.value_end).unwrap_or(u32::MAX),
        key_escaped: first_field.key_escaped,
        value: IndexedValue::new(first_field.value),
    };
    let timestamp = parse_timestamp(line, fields_end)?;

    // Every byte of the line is now known to be part of a valid token or an ASCII delimiter.
    debug_assert_eq!(text.len(), line.len());
    Ok(Line::new(
        number,
        measurement_text,
        text,
        tags_start,
        tags,
        fields_start,
        first_field,
        timestamp,
    ))
}

/// Checks a scanned name that is not empty: no control characters, valid UTF-8, within the
/// length limit, no trailing backslash.
#[inline(always)]
fn check_name(
    line: &[u8],
    text: &str,
    scan: &NameScan,
    kind: NameKind,
    limits: &Limits,
) -> Result<(), ErrorKind> {
    // A name starts and ends next to ASCII bytes (or the line's ends), so it is valid UTF-8
    // exactly when it lies inside the valid prefix `text`.
    let valid = !matches!(scan.stop, Stop::Control(_))
        && scan.end <= text.len()
        && scan.unescaped_len() <= limits.name_bytes_max
        && !scan.ends_with_backslash(line);
    if valid {
        Ok(())
    } else {
        Err(name_error(line, text, scan, kind, limits))
    }
}

#[cold]
fn name_error(
    line: &[u8],
    text: &str,
    scan: &NameScan,
    kind: NameKind,
    limits: &Limits,
) -> ErrorKind {
    let what = kind.what;
    if let Stop::Control(byte) = scan.stop {
        ErrorKind::InvalidCharacter { what, byte }
    } else if scan.end > text.len() {
        ErrorKind::InvalidUtf8 { what }
    } else if scan.unescaped_len() > limits.name_bytes_max {
        ErrorKind::NameTooLong {
            what,
            bytes: scan.unescaped_len(),
            max: limits.name_bytes_max,
        }
    } else {
        debug_assert!(scan.ends_with_backslash(line));
        ErrorKind::NameEndsWithBackslash { what }
    }
}

/// Validates the measurement starting at `start`, or takes it over from `memo` if the bytes
/// (including the delimiter after it) are those of the previous line.
#[inline]
fn parse_measurement<'a>(
    line: &'a [u8],
    text: &str,
    start: usize,
    limits: &Limits,
    memo: &mut SeriesMemo<'a>,
) -> Result<NameScan, ErrorKind> {
    if let Some(previous) = memo.measurement_scan
        && line.get(start..start + memo.measurement.len()) == Some(memo.measurement)
    {
        return Ok(NameScan {
            start,
            end: start + previous.end,
            ..previous
        });
    }
    let measurement = scan::scan_name(line, start, scan::MEASUREMENT);
    if measurement.is_empty() && !matches!(measurement.stop, Stop::Control(_)) {
        return Err(ErrorKind::MissingMeasurement);
    }
    check_name(line, text, &measurement, scan::MEASUREMENT, limits)?;
    if let Stop::Delimiter(_) = measurement.stop {
        memo.measurement = line.get(start..=measurement.end).unwrap_or_default();
        memo.measurement_scan = Some(NameScan {
            start: 0,
            end: measurement.end - start,
            ..measurement
        });
    }
    Ok(measurement)
}

/// Length of the longest common prefix of `a` and `b`.
#[inline]
fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    let mut len = 0;
    while let (Some(x), Some(y)) = (
        a.get(len..).and_then(<[u8]>::first_chunk::<8>),
        b.get(len..).and_then(<[u8]>::first_chunk::<8>),
    ) {
        let difference = u64::from_le_bytes(*x) ^ u64::from_le_bytes(*y);
        if difference != 0 {
            return len + (difference.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    let tail = a.get(len..).unwrap_or_default().iter();
    len + tail
        .zip(b.get(len..).unwrap_or_default())
        .take_while(|(x, y)| x == y)
        .count()
}

/// Validates the tag set starting at `start` (just after the measurement's `,`), recording
/// the tags in `index`. Returns the index of the space that ends it.
fn parse_tags<'a>(
    line: &'a [u8],
    text: &str,
    start: usize,
    limits: &Limits,
    index: &mut TagIndex,
    memo: &mut SeriesMemo<'a>,
) -> Result<usize, ErrorKind> {
    let mut pos = start;
    let mut count: usize = 0;

    // Take over the leading tags that are byte-identical to the previous line's, each
    // including its delimiter.
    let same_end = start + common_prefix_len(line.get(start..).unwrap_or_default(), memo.tags);
    for (key_len, key_escaped, value_len, value_escaped) in memo.index.entries() {
        let delimiter = pos + key_len + 1 + value_len;
        if delimiter >= same_end {
            break;
        }
        count += 1;
        if count > limits.tags_per_line_max {
            return Err(ErrorKind::TooManyTags {
                max: limits.tags_per_line_max,
            });
        }
        index.push(key_len, key_escaped, value_len, value_escaped);
        if line.get(delimiter) != Some(&b',') {
            // The space before the field set: the whole tag set was the same.
            return Ok(delimiter);
        }
        pos = delimiter + 1;
    }

    loop {
        let key = scan::scan_name(line, pos, scan::TAG_KEY);
        if key.is_empty() && !matches!(key.stop, Stop::Control(_)) {
            return Err(ErrorKind::MissingTagKey);
        }
        check_name(line, text, &key, scan::TAG_KEY, limits)?;
        if key.stop != Stop::Delimiter(b'=') {
            return Err(ErrorKind::MissingTagValue {
                key: scan::describe_name(line, &key, scan::TAG_KEY),
            });
        }
        count += 1;
        if count > limits.tags_per_line_max {
            return Err(ErrorKind::TooManyTags {
                max: limits.tags_per_line_max,
            });
        }
        let value = scan::scan_name(line, key.end + 1, scan::TAG_VALUE);
        if value.is_empty() && !matches!(value.stop, Stop::Control(_)) {
            return Err(ErrorKind::MissingTagValue {
                key: scan::describe_name(line, &key, scan::TAG_KEY),
            });
        }
        check_name(line, text, &value, scan::TAG_VALUE, limits)?;
        index.push(
            key.end - key.start,
            key.escapes > 0,
            value.end - value.start,
            value.escapes > 0,
        );
        match value.stop {
            Stop::Delimiter(b',') => pos = value.end + 1,
            Stop::Delimiter(_) => {
                memo.tags = line.get(start..=value.end).unwrap_or_default();
                memo.index = *index;
                return Ok(value.end);
            }
            Stop::End | Stop::Control(_) => return Err(ErrorKind::MissingFields),
        }
    }
}

/// A validated field.
struct ParsedField<'a> {
    /// Index of the `=` after the key.
    key_end: usize,
    key_escaped: bool,
    value: RawValue<'a>,
    /// Index just past the value.
    value_end: usize,
}

/// Validates the field set starting at `start`. Returns the first field and the index just
/// past the last value (a space or the end of the line).
fn parse_fields<'a>(
    line: &'a [u8],
    text: &'a str,
    start: usize,
    limits: &Limits,
    memo: &mut SeriesMemo<'a>,
) -> Result<(ParsedField<'a>, usize), ErrorKind> {
    // Take over the first key if it is byte-identical to the previous line's (see
    // `SeriesMemo`); most lines have a single field with the same key.
    let key = match memo.field_key_scan {
        Some(previous) if line.get(start..start + memo.field_key.len()) == Some(memo.field_key) => {
            NameScan {
                start,
                end: start + previous.end,
                ..previous
            }
        }
        _ => {
            let key = scan_field_key(line, text, start, limits)?;
            memo.field_key = line.get(start..=key.end).unwrap_or_default();
            memo.field_key_scan = Some(NameScan {
                start: 0,
                end: key.end - start,
                ..key
            });
            key
        }
    };
    let first = parse_field_value(line, text, &key)?;
    let mut end = first.value_end;
    while line.get(end) == Some(&b',') {
        let key = scan_field_key(line, text, end + 1, limits)?;
        end = parse_field_value(line, text, &key)?.value_end;
    }
    Ok((first, end))
}

/// Validates the field key that starts at `start`, up to its `=`.
#[inline]
fn scan_field_key(
    line: &[u8],
    text: &str,
    start: usize,
    limits: &Limits,
) -> Result<NameScan, ErrorKind> {
    let key = scan::scan_name(line, start, scan::FIELD_KEY);
    if key.is_empty() && !matches!(key.stop, Stop::Control(_)) {
        return Err(ErrorKind::MissingFieldKey);
    }
    check_name(line, text, &key, scan::FIELD_KEY, limits)?;
    if key.stop != Stop::Delimiter(b'=') {
        return Err(ErrorKind::MissingFieldValue {
            key: scan::describe_name(line, &key, scan::FIELD_KEY),
        });
    }
    Ok(key)
}

/// Validates the value after the validated field `key`.
#[inline]
fn parse_field_value<'a>(
    line: &'a [u8],
    text: &'a str,
    key: &NameScan,
) -> Result<ParsedField<'a>, ErrorKind> {
    let value_start = key.end + 1;
    match number::parse_field_value(line, text, value_start) {
        Ok((value, value_end)) => Ok(ParsedField {
            key_end: key.end,
            key_escaped: key.escapes > 0,
            value,
            value_end,
        }),
        Err(error) => Err(value_error(line, key, value_start, error)),
    }
}

#[cold]
fn value_error(line: &[u8], key: &NameScan, value_start: usize, error: ValueError) -> ErrorKind {
    let key_text = || scan::describe_name(line, key, scan::FIELD_KEY);
    match error {
        ValueError::Missing => ErrorKind::MissingFieldValue { key: key_text() },
        ValueError::Invalid { end } => ErrorKind::InvalidFieldValue {
            key: key_text(),
            value: echo(line.get(value_start..end).unwrap_or_default()),
        },
        ValueError::Unterminated => ErrorKind::UnterminatedString { key: key_text() },
        ValueError::InvalidUtf8 => ErrorKind::InvalidUtf8 {
            what: "string field value",
        },
    }
}

/// Parses the optional timestamp after the field set, which ends at `pos`.
#[inline]
fn parse_timestamp(line: &[u8], pos: usize) -> Result<Option<i64>, ErrorKind> {
    let start = skip_spaces(line, pos);
    let Some(&first) = line.get(start) else {
        return Ok(None);
    };
    let negative = first == b'-';
    let digits_start = start + usize::from(negative);
    let run = number::digit_run(line, digits_start);
    let end = digits_start + run.len;
    let value = match line.get(end) {
        None | Some(b' ') => number::run_to_i64(
            negative,
            run,
            line.get(digits_start..end).unwrap_or_default(),
        ),
        Some(_) => None,
    };
    let Some(timestamp) = value else {
        return Err(timestamp_error(line, start));
    };
    let rest = skip_spaces(line, end);
    if rest < line.len() {
        let garbage = line.get(rest..).unwrap_or_default();
        return Err(ErrorKind::TrailingGarbage {
            text: echo(garbage),
        });
    }
    Ok(Some(timestamp))
}

#[cold]
fn timestamp_error(line: &[u8], start: usize) -> ErrorKind {
    let tail = line.get(start..).unwrap_or_default();
    let token = tail.split(|&b| b == b' ').next().unwrap_or_default();
    ErrorKind::InvalidTimestamp { text: echo(token) }
}

#[inline]
fn skip_spaces(line: &[u8], pos: usize) -> usize {
    let tail = line.get(pos..).unwrap_or_default();
    pos + tail.iter().position(|&b| b != b' ').unwrap_or(tail.len())
}
