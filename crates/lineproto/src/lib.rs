//! A fast, zero-copy parser for the [InfluxDB line protocol] (v2), as sent by
//! `cc-metric-collector` and other ClusterCockpit clients.
//!
//! The parser turns a request body (`&[u8]`) into [`Line`]s whose measurement, tags and
//! fields borrow from the body. Nothing is allocated unless a name or string contains an
//! escape sequence. Each bad line yields its own [`LineError`], and parsing continues with
//! the next line, so one malformed line never costs the rest of a batch.
//!
//! ```
//! use strata_lineproto::{FieldValue, Limits, Parser};
//!
//! let body = b"# comment\n\
//!     cpu_user,cluster=hpc1,hostname=n0042,type=hwthread,type-id=12 value=45.3 1794873600\n\
//!     mem_used,cluster=hpc1 value=abc\n";
//! let mut parser = Parser::new(body, &Limits::default());
//!
//! let line = parser.next().unwrap().unwrap();
//! assert_eq!(line.number, 2);
//! assert_eq!(line.measurement, "cpu_user");
//! assert_eq!(line.timestamp, Some(1794873600));
//! let tags: Vec<_> = line.tags().collect();
//! assert_eq!(tags[1], ("hostname".into(), "n0042".into()));
//! let (key, value) = line.fields().next().unwrap();
//! assert_eq!((key.as_ref(), value), ("value", FieldValue::Float(45.3)));
//!
//! let error = parser.next().unwrap().unwrap_err();
//! assert_eq!(error.to_string(), "line 3: invalid value for field 'value': \"abc\"");
//! assert!(parser.next().is_none());
//! assert_eq!(parser.lines_consumed(), 3);
//! ```
//!
//! # Grammar
//!
//! ```text
//! line        = measurement *("," tag-key "=" tag-value) 1*" " field *("," field)
//!               [1*" " timestamp] *" "
//! field       = field-key "=" field-value
//! field-value = float | integer "i" | unsigned "u" | boolean | string
//! float       = ["-"] (1*DIGIT ["." *DIGIT] | "." 1*DIGIT) [("e" | "E") ["+" | "-"] 1*DIGIT]
//! integer     = ["-"] 1*DIGIT            ; must fit i64
//! unsigned    = 1*DIGIT                  ; must fit u64
//! boolean     = "t" | "T" | "true" | "True" | "TRUE" | "f" | "F" | "false" | "False" | "FALSE"
//! string      = DQUOTE *(any byte but DQUOTE or backslash | "\" any byte) DQUOTE
//! timestamp   = ["-"] 1*DIGIT            ; must fit i64; no unit conversion
//! ```
//!
//! - **Lines** end at `\n`. A `\r` directly before `\n`, or at the very end of the input, is
//!   dropped. Leading spaces and tabs are skipped. Blank lines and lines whose first
//!   non-blank byte is `#` yield nothing but are counted in line numbers.
//! - **Names** (measurement, tag keys, tag values, field keys) are non-empty, valid UTF-8,
//!   free of ASCII control characters, and must not end with a backslash after unescaping.
//!   - The measurement ends at an unescaped `,` or space. `\,` `\ ` `\\` are escapes; `=` is
//!     an ordinary character.
//!   - Tag keys and field keys end at an unescaped `=`; tag values end at an unescaped `,`
//!     or space. In all three `\,` `\=` `\ ` `\\` are escapes, and a `=` inside a tag value
//!     is ordinary.
//!   - A backslash before any other byte is a literal backslash.
//! - **Strings** may contain spaces, commas and `=`. `\"` and `\\` are escapes; any other
//!   backslash is literal. They must be valid UTF-8.
//! - **Floats** must be finite: `NaN`, `inf` and values that overflow `f64` are rejected.
//! - **Whitespace** between sections is one or more spaces (not tabs). Trailing spaces are
//!   allowed.
//! - Duplicate tag or field keys are not detected; the iterators yield them as written.
//!
//! # Limits
//!
//! [`Limits`] bounds the work per line; exceeding one is an error for that line only.
//!
//! | Limit | Default | Error |
//! |---|---|---|
//! | [`Limits::line_bytes_max`] (excluding the terminator) | [`LINE_BYTES_MAX`] = 64 KiB | [`ErrorKind::LineTooLong`] |
//! | [`Limits::tags_per_line_max`] | [`TAGS_PER_LINE_MAX`] = 64 | [`ErrorKind::TooManyTags`] |
//! | [`Limits::name_bytes_max`] (after unescaping) | [`NAME_BYTES_MAX`] = 256 | [`ErrorKind::NameTooLong`] |
//!
//! Lines are also capped at 4 GiB (`u32::MAX` bytes) whatever `line_bytes_max` says,
//! because a [`Line`] stores positions as `u32`. Comment lines are skipped without checking
//! their length. The parser holds no buffers: memory use does not depend on the input,
//! apart from unescaped names and strings.
//!
//! # Design
//!
//! - **Two passes per line, one of them mostly free.** [`Parser::next`] validates the whole
//!   line, so that [`Line::tags`] and [`Line::fields`] cannot fail. Validation records the
//!   boundaries of the first 8 tags and the parsed first field in the `Line` (128 bytes,
//!   no heap), so iterating those costs no scanning; anything beyond is tokenized again by
//!   the scanner that validated it.
//! - **Scanning** tests 8 bytes at a time for delimiters, backslashes and control
//!   characters (SWAR), and digits likewise. UTF-8 is validated once per 64 KiB, not per
//!   token.
//! - **Floats** take Clinger's fast path (at most 19 digits, mantissa ≤ 2^53, exponent
//!   within ±22: exact with one multiplication or division) and fall back to
//!   `str::parse::<f64>` otherwise; both give bit-identical results.
//! - **Repeated prefixes are not re-validated.** Collectors send runs of lines that share a
//!   measurement and most tags. A prefix that is byte-identical to the previous line's
//!   validated one is taken over instead of scanned again.
//!
//! On the ClusterCockpit workload (see `benches/parse.rs`) this parses over 500 MB/s on
//! one core while the consumer walks every tag and field.
//!
//! # Differences from InfluxDB
//!
//! The behavioural reference is the `influxdb_line_protocol` 2.0.0 crate (InfluxDB IOx/3.x),
//! checked by a differential test. We deliberately differ where it is more lenient than the
//! Go parsers (`influxdb/models` and `line-protocol/v2`, the latter used by
//! `cc-metric-store`), or where it rejects harmless input:
//!
//! 1. **A newline always ends a line**, even inside a quoted string or after a backslash. The
//!    reference and the Go parsers let a quoted string span lines. Splitting first keeps line
//!    numbers physical and stops one unbalanced quote from swallowing the rest of a body.
//! 2. **`\r\n` line endings are accepted.** The reference keeps the `\r` and rejects the line.
//! 3. **Trailing spaces after the field set are accepted** even without a timestamp. The
//!    reference accepts them only after a timestamp; the Go parsers accept both.
//! 4. **`.5`, `-.5`, `1.` and `1.e5` are floats**, as in Go's `strconv.ParseFloat`; the
//!    reference requires digits on both sides of the point.
//! 5. **Floats that overflow to infinity (`1e400`) are rejected**, as in Go; the reference
//!    stores infinity.
//! 6. **An unescaped `,` inside a tag key or field key is an error** (`cpu,a,b=1 v=1`), as in
//!    Go; the reference accepts `a,b` as the key.
//! 7. **ASCII control characters in names are errors**, escaped or not, as in
//!    `line-protocol/v2`; the reference accepts most of them (NUL only outside the
//!    measurement, tab only after a backslash).
//! 8. **The input is bytes, not `&str`**: invalid UTF-8 fails only the line that contains it.
//! 9. **A comma after the last field is an error** (`cpu v=1,` and `cpu v=1, 123`), as in
//!    Go; the reference drops it.
//!
//! [InfluxDB line protocol]: https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/

// Nothing may panic on any input. These lints keep panicking constructs out of the library
// (tests may index and panic freely); the workspace already denies `unwrap` and `expect`.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]
#![deny(missing_docs)]

mod error;
mod line;
mod number;
mod parser;
mod scan;

pub use error::{ECHO_BYTES_MAX, ErrorKind, LineError};
pub use line::{FieldValue, Fields, Line, Tags};
pub use parser::{Parser, PlainLine, PlainValue};

/// Default for [`Limits::line_bytes_max`]: 64 KiB. Unit: bytes, excluding the `\n` or `\r\n`
/// terminator. A longer line yields [`ErrorKind::LineTooLong`] and is not parsed; the next
/// line is parsed normally.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// Default for [`Limits::tags_per_line_max`]: 64 tags. A line with more tags yields
/// [`ErrorKind::TooManyTags`]; the next line is parsed normally. ClusterCockpit lines carry
/// 2–6 tags (`cluster`, `hostname`, `type`, `type-id`, `stype`, `stype-id`).
pub const TAGS_PER_LINE_MAX: usize = 64;

/// Default for [`Limits::name_bytes_max`]: 256 bytes. Unit: bytes of UTF-8 after unescaping.
/// Applies to the measurement, each tag key, each tag value and each field key (not to string
/// field values). A longer name yields [`ErrorKind::NameTooLong`] for its line.
pub const NAME_BYTES_MAX: usize = 256;

/// Limits enforced per line. Each exceeded limit is a [`LineError`] for that line only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted line in bytes, excluding the line terminator. Default
    /// [`LINE_BYTES_MAX`].
    pub line_bytes_max: usize,
    /// Most tags accepted on one line. Default [`TAGS_PER_LINE_MAX`].
    pub tags_per_line_max: usize,
    /// Longest accepted measurement, tag key, tag value or field key, in bytes after
    /// unescaping. Default [`NAME_BYTES_MAX`].
    pub name_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            line_bytes_max: LINE_BYTES_MAX,
            tags_per_line_max: TAGS_PER_LINE_MAX,
            name_bytes_max: NAME_BYTES_MAX,
        }
    }
}
