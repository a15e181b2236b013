//! Per-line errors.
//!
//! Every failure mode has its own [`ErrorKind`] variant, and each variant carries the context a
//! client needs to fix its payload (which field, which value). Echoed input is capped at
//! [`ECHO_BYTES_MAX`] bytes, because error messages are returned to HTTP clients and a
//! 64 KiB line should not come back as a 64 KiB error body.

use std::fmt;

/// Longest piece of input (in bytes) echoed back inside an [`ErrorKind`]. Longer pieces are cut
/// at a character boundary and end in `…`.
pub const ECHO_BYTES_MAX: usize = 64;

/// One line of the input could not be parsed. The parser continues with the next line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based physical line number (blank and comment lines count).
    pub number: u64,
    /// What was wrong with the line.
    pub kind: ErrorKind,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.number, self.kind)
    }
}

impl std::error::Error for LineError {}

/// Why a line was rejected.
///
/// `what` fields name the part of the line: `"measurement"`, `"tag key"`, `"tag value"`,
/// `"field key"` or `"string field value"`. Echoed input (`key`, `value`, `text`) is lossily
/// converted to UTF-8 and capped at [`ECHO_BYTES_MAX`] bytes.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The line is longer than [`Limits::line_bytes_max`](crate::Limits::line_bytes_max).
    LineTooLong {
        /// Length of the line, excluding the terminator.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The line has more than [`Limits::tags_per_line_max`](crate::Limits::tags_per_line_max) tags.
    TooManyTags {
        /// The limit.
        max: usize,
    },
    /// A measurement, tag key, tag value or field key is longer (after unescaping) than
    /// [`Limits::name_bytes_max`](crate::Limits::name_bytes_max).
    NameTooLong {
        /// Which name.
        what: &'static str,
        /// Its length after unescaping.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The line starts with `,` (after leading blanks): there is no measurement.
    MissingMeasurement,
    /// A `,` in the tag set is not followed by a tag key (`cpu, v=1`, `cpu,=x v=1`).
    MissingTagKey,
    /// A tag key has no `=` or an empty value (`cpu,host v=1`, `cpu,host= v=1`).
    MissingTagValue {
        /// The tag key, unescaped.
        key: String,
    },
    /// The measurement and tags are not followed by a space and at least one field.
    MissingFields,
    /// A field has no key (`cpu =1`, or a trailing comma `cpu v=1,`).
    MissingFieldKey,
    /// A field key has no `=` or nothing after the `=` (`cpu v`, `cpu v=`).
    MissingFieldValue {
        /// The field key, unescaped.
        key: String,
    },
    /// A field value is not a valid float, integer, unsigned integer, boolean or string, or is
    /// out of range (integer overflow, float overflow to infinity).
    InvalidFieldValue {
        /// The field key, unescaped.
        key: String,
        /// The value as written.
        value: String,
    },
    /// A string field value has no closing `"` before the end of the line.
    UnterminatedString {
        /// The field key, unescaped.
        key: String,
    },
    /// The timestamp is not a signed 64-bit integer.
    InvalidTimestamp {
        /// The timestamp as written.
        text: String,
    },
    /// Something other than spaces follows the timestamp.
    TrailingGarbage {
        /// Everything after the timestamp and its spaces.
        text: String,
    },
    /// A name or a string field value is not valid UTF-8.
    InvalidUtf8 {
        /// Which part of the line.
        what: &'static str,
    },
    /// A name contains an ASCII control character (0x00–0x1F or 0x7F), escaped or not.
    InvalidCharacter {
        /// Which name.
        what: &'static str,
        /// The first control character found.
        byte: u8,
    },
    /// A name ends with a backslash after unescaping (`cpu\\ v=1`). InfluxDB rejects these
    /// because the backslash would escape the delimiter that follows when written back.
    NameEndsWithBackslash {
        /// Which name.
        what: &'static str,
    },
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineTooLong { bytes, max } => {
                write!(f, "line is too long: {bytes} bytes (max {max})")
            }
            Self::TooManyTags { max } => write!(f, "too many tags (max {max})"),
            Self::NameTooLong { what, bytes, max } => {
                write!(f, "{what} is too long: {bytes} bytes (max {max})")
            }
            Self::MissingMeasurement => f.write_str("missing measurement"),
            Self::MissingTagKey => f.write_str("missing tag key"),
            Self::MissingTagValue { key } => write!(f, "missing value for tag '{key}'"),
            Self::MissingFields => f.write_str("missing fields"),
            Self::MissingFieldKey => f.write_str("missing field key"),
            Self::MissingFieldValue { key } => write!(f, "missing value for field '{key}'"),
            Self::InvalidFieldValue { key, value } => {
                write!(f, "invalid value for field '{key}': {value:?}")
            }
            Self::UnterminatedString { key } => {
                write!(f, "unterminated string value for field '{key}'")
            }
            Self::InvalidTimestamp { text } => write!(f, "invalid timestamp: {text:?}"),
            Self::TrailingGarbage { text } => {
                write!(f, "unexpected text after timestamp: {text:?}")
            }
            Self::InvalidUtf8 { what } => write!(f, "{what} is not valid UTF-8"),
            Self::InvalidCharacter { what, byte } => {
                write!(f, "{what} contains control character 0x{byte:02x}")
            }
            Self::NameEndsWithBackslash { what } => write!(f, "{what} ends with a backslash"),
        }
    }
}

/// Converts a piece of input into an echo for an error message: lossy UTF-8, cut at
/// [`ECHO_BYTES_MAX`] bytes on a character boundary.
pub(crate) fn echo(bytes: &[u8]) -> String {
    if bytes.len() <= ECHO_BYTES_MAX {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    // Back up to the start of a UTF-8 sequence so that a multi-byte character is not split
    // into replacement characters. Continuation bytes are 0b10xx_xxxx.
    let mut cut = ECHO_BYTES_MAX;
    while cut > 0 && bytes.get(cut).is_some_and(|&b| b & 0xC0 == 0x80) {
        cut -= 1;
    }
    let mut out = String::from_utf8_lossy(bytes.get(..cut).unwrap_or_default()).into_owned();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_keeps_short_input_and_caps_long_input() {
        // Goal: echoes are verbatim when short, capped on a character boundary when long.
        assert_eq!(echo(b"abc"), "abc");
        assert_eq!(echo(&[0xff]), "\u{fffd}");
        let long = "é".repeat(40); // 80 bytes.
        let echoed = echo(long.as_bytes());
        assert_eq!(echoed, format!("{}…", "é".repeat(32)));
        let long = "x".repeat(100);
        assert_eq!(echo(long.as_bytes()).len(), ECHO_BYTES_MAX + '…'.len_utf8());
    }

    #[test]
    fn display_has_line_number_only_on_line_error() {
        // Goal: ErrorKind's Display is the bare reason; LineError prefixes the line number.
        let kind = ErrorKind::InvalidFieldValue {
            key: "value".into(),
            value: "abc".into(),
        };
        assert_eq!(kind.to_string(), "invalid value for field 'value': \"abc\"");
        let error = LineError { number: 7, kind };
        assert_eq!(
            error.to_string(),
            "line 7: invalid value for field 'value': \"abc\""
        );
    }
}
