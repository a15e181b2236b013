//! Go duration strings (`time.ParseDuration`), the syntax cc-metric-store uses for
//! `retention-in-memory` and `checkpoint-interval`, so that its configuration files are read
//! unchanged.
//!
//! Syntax: an optional sign, then either `0` alone or one or more `<number><unit>` terms,
//! where `<number>` is decimal digits with an optional fraction (`1`, `1.5`, `.5`, `1.`) and
//! `<unit>` is one of `ns`, `us`, `µs` (U+00B5), `μs` (U+03BC), `ms`, `s`, `m`, `h`. There is
//! no whitespace and no day unit, exactly as in Go. The result is a signed count of
//! nanoseconds that must fit in an `i64`, like Go's `time.Duration`.
//!
//! This is a port of Go's `time.ParseDuration`, including its use of `float64` for the
//! fractional part, so that the same string gives the same nanosecond count in both
//! (`"0.3333333333333333333h"` is exactly 20 minutes in Go, though truncating exact decimal
//! arithmetic would give one nanosecond less).

/// Why a duration string was rejected. Each message quotes the input (capped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Empty input, a sign alone, a term not starting with a digit or `.`, or a `.` without
    /// digits on either side.
    #[error("invalid duration {0:?} (expected Go syntax such as \"48h\", \"1h30m\" or \"100ms\")")]
    Invalid(String),
    /// A number without a unit, e.g. `"60"`: Go requires a unit for every non-zero value.
    #[error("missing unit in duration {0:?} (units: ns, us, ms, s, m, h)")]
    MissingUnit(String),
    /// A unit Go does not know, e.g. `"2d"` or `"1 h"` (the space is part of the unit).
    #[error("unknown unit {unit:?} in duration {input:?} (units: ns, us, ms, s, m, h)")]
    UnknownUnit { unit: String, input: String },
    /// More than `i64::MAX` nanoseconds (about 292 years).
    #[error("duration {0:?} is too large (at most about 292 years)")]
    Overflow(String),
}

/// Longest piece of input echoed back in an error message.
const ECHO_BYTES_MAX: usize = 100;

/// Parses a Go duration string into signed nanoseconds. See the module documentation for
/// the syntax. Callers that need a positive value check the sign themselves, because Go
/// accepts `"-1s"` and cc-metric-store files are validated key by key.
pub fn parse_go_duration(input: &str) -> Result<i64, DurationError> {
    let echo = || super::clip(input, ECHO_BYTES_MAX);
    let mut rest = input;
    let mut negative = false;
    if let Some(stripped) = rest.strip_prefix('-') {
        negative = true;
        rest = stripped;
    } else if let Some(stripped) = rest.strip_prefix('+') {
        rest = stripped;
    }
    // NOTE: Go special-cases a bare "0" (no unit needed); "00" or "0.0" still need a unit.
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(DurationError::Invalid(echo()));
    }

    // The total is accumulated as an unsigned magnitude up to 2^63, which is representable
    // only when negative (i64::MIN), as in Go.
    const MAGNITUDE_MAX: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let starts_number = rest.starts_with(|c: char| c == '.' || c.is_ascii_digit());
        if !starts_number {
            return Err(DurationError::Invalid(echo()));
        }

        let (whole, after_whole, whole_digits) = leading_int(rest);
        let Some(whole) = whole else {
            return Err(DurationError::Overflow(echo()));
        };
        rest = after_whole;
        let mut fraction = Fraction::default();
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (parsed, after_fraction) = leading_fraction(after_dot);
            fraction = parsed;
            rest = after_fraction;
        }
        if whole_digits == 0 && fraction.digits == 0 {
            return Err(DurationError::Invalid(echo()));
        }

        // The unit runs up to the next digit or '.', both ASCII, so the split is always on a
        // char boundary.
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(echo()));
        }
        let (unit, after_unit) = rest.split_at(unit_len);
        rest = after_unit;
        let Some(unit_ns) = unit_nanos(unit) else {
            return Err(DurationError::UnknownUnit {
                unit: super::clip(unit, ECHO_BYTES_MAX),
                input: echo(),
            });
        };

        let mut term = u128::from(whole) * unit_ns;
        if fraction.value > 0 {
            // NOTE: float arithmetic on purpose, exactly as Go computes it (see module doc).
            // The cast saturates, and the result is far below 2^64 whenever it matters.
            let nanos = fraction.value as f64 * (unit_ns as f64 / fraction.scale);
            term += u128::from(nanos as u64);
        }
        total += term;
        if total > MAGNITUDE_MAX {
            return Err(DurationError::Overflow(echo()));
        }
    }

    if negative {
        // The magnitude 2^63 is valid only here: it is exactly i64::MIN.
        if total == MAGNITUDE_MAX {
            return Ok(i64::MIN);
        }
        return i64::try_from(total)
            .map(|magnitude| -magnitude)
            .map_err(|_| DurationError::Overflow(echo()));
    }
    i64::try_from(total).map_err(|_| DurationError::Overflow(echo()))
}

/// Nanoseconds per unit, Go's `unitMap`.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// Parses leading ASCII digits. Returns the value (`None` on overflow past `2^63`, which Go
/// reports as an invalid duration and we report as too large), the rest, and the number of
/// digits consumed.
fn leading_int(text: &str) -> (Option<u64>, &str, usize) {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, rest) = text.split_at(digits);
    let mut value: Option<u64> = Some(0);
    for byte in number.bytes() {
        value = value
            .and_then(|v| v.checked_mul(10))
            .and_then(|v| v.checked_add(u64::from(byte - b'0')))
            .filter(|v| *v <= 1 << 63);
    }
    (value, rest, digits)
}

/// The digits after a decimal point, as `value / scale`.
struct Fraction {
    value: u64,
    scale: f64,
    digits: usize,
}

impl Default for Fraction {
    fn default() -> Self {
        Self {
            value: 0,
            scale: 1.0,
            digits: 0,
        }
    }
}

/// Parses the digits after a `.` (possibly none), like Go's `leadingFraction`: once another
/// digit would overflow the value, the remaining digits are consumed but ignored (they are
/// far below a nanosecond).
fn leading_fraction(text: &str) -> (Fraction, &str) {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, rest) = text.split_at(digits);
    let mut fraction = Fraction {
        digits,
        ..Fraction::default()
    };
    for byte in number.bytes() {
        let next = fraction
            .value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(byte - b'0')))
            .filter(|v| *v <= 1 << 63);
        let Some(next) = next else {
            break;
        };
        fraction.value = next;
        fraction.scale *= 10.0;
    }
    (fraction, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    /// Goal: accept everything Go's `time.ParseDuration` accepts, with the same value.
    /// Method: a table of inputs taken from Go's own `parseDurationTests` plus the values
    /// found in cc-metric-store configuration files.
    #[test]
    fn parses_go_syntax() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("+0", 0),
            ("-0", 0),
            ("5s", 5 * SECOND),
            ("30s", 30 * SECOND),
            ("1478s", 1478 * SECOND),
            ("-5s", -5 * SECOND),
            ("+5s", 5 * SECOND),
            ("-0s", 0),
            ("5.0s", 5 * SECOND),
            ("5.6s", 5 * SECOND + 600_000_000),
            ("5.s", 5 * SECOND),
            (".5s", SECOND / 2),
            ("1.0s", SECOND),
            ("1.00s", SECOND),
            ("1.004s", SECOND + 4_000_000),
            ("100.00100s", 100 * SECOND + 1_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12\u{b5}s", 12_000),
            ("12\u{3bc}s", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14 * SECOND),
            ("15m", 15 * 60 * SECOND),
            ("16h", 16 * 3600 * SECOND),
            ("48h", 48 * 3600 * SECOND),
            ("12h", 12 * 3600 * SECOND),
            ("100ms", 100_000_000),
            ("1h30m", 5400 * SECOND),
            ("1.5h", 5400 * SECOND),
            ("3h30m", 12_600 * SECOND),
            ("10.5s4m", 4 * 60 * SECOND + 10 * SECOND + 500_000_000),
            ("-2m3.4s", -(2 * 60 * SECOND + 3 * SECOND + 400_000_000)),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 1_200_000_000_000),
            ("9007199254740993ns", 9_007_199_254_740_993),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("0.000000000000000000000000000001ns", 0),
            ("2562047h", 2_562_047 * 3600 * SECOND),
        ];
        for &(input, expected) in cases {
            assert_eq!(parse_go_duration(input), Ok(expected), "input {input:?}");
        }
    }

    /// Goal: reject what Go rejects, with the reason Go gives.
    /// Method: a table of malformed inputs and the expected error.
    #[test]
    fn rejects_malformed_input() {
        let invalid = |s: &str| DurationError::Invalid(s.to_owned());
        let missing = |s: &str| DurationError::MissingUnit(s.to_owned());
        let unknown = |unit: &str, s: &str| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: s.to_owned(),
        };
        let overflow = |s: &str| DurationError::Overflow(s.to_owned());
        let cases: Vec<(&str, DurationError)> = vec![
            ("", invalid("")),
            ("-", invalid("-")),
            ("+", invalid("+")),
            ("s", invalid("s")),
            (".", invalid(".")),
            ("-.", invalid("-.")),
            (".s", invalid(".s")),
            ("+.s", invalid("+.s")),
            ("h1", invalid("h1")),
            (" 1s", invalid(" 1s")),
            ("1", missing("1")),
            ("60", missing("60")),
            ("00", missing("00")),
            ("1.5", missing("1.5")),
            ("1h30", missing("1h30")),
            ("3000000h", overflow("3000000h")),
            ("2562048h", overflow("2562048h")),
            ("9223372036854775808ns", overflow("9223372036854775808ns")),
            ("9223372036854775.808us", overflow("9223372036854775.808us")),
            ("-9223372036854775809ns", overflow("-9223372036854775809ns")),
            (
                "99999999999999999999999s",
                overflow("99999999999999999999999s"),
            ),
            ("2d", unknown("d", "2d")),
            ("1 h", unknown(" h", "1 h")),
            ("1s ", unknown("s ", "1s ")),
            ("5sec", unknown("sec", "5sec")),
            ("1H", unknown("H", "1H")),
            ("3x", unknown("x", "3x")),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_go_duration(input), Err(expected), "input {input:?}");
        }
    }

    /// Goal: error messages are readable and say what is accepted.
    #[test]
    fn error_messages_name_input_and_units() {
        let message = |s: &str| match parse_go_duration(s) {
            Err(error) => error.to_string(),
            Ok(value) => format!("unexpectedly parsed as {value}"),
        };
        assert_eq!(
            message("2d"),
            "unknown unit \"d\" in duration \"2d\" (units: ns, us, ms, s, m, h)"
        );
        assert_eq!(
            message("60"),
            "missing unit in duration \"60\" (units: ns, us, ms, s, m, h)"
        );
        assert_eq!(
            message("abc"),
            "invalid duration \"abc\" (expected Go syntax such as \"48h\", \"1h30m\" or \"100ms\")"
        );
    }
}
