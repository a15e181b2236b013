//! Field values and timestamps: the grammar check and the numeric conversion in one pass.
//!
//! Floats take Clinger's fast path when they can: with at most 19 digits (leading zeros
//! included, which keeps the check cheap) the mantissa fits a `u64`; if it is also at most
//! 2^53 it is exact as an `f64`, and so is 10^e for |e| <= 22. One IEEE multiplication or division of two exact values is correctly
//! rounded, so the result is bit-identical to `str::parse::<f64>`, which every other input
//! falls back to.

use crate::line::FieldValue;
use crate::scan;
use std::borrow::Cow;

/// Exact powers of ten representable in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
/// Largest mantissa that converts to `f64` exactly.
const MANTISSA_EXACT_MAX: u64 = 1 << 53;
/// A `u64` holds any 19-digit decimal number.
const DIGITS_EXACT_MAX: usize = 19;
/// Exponents are accumulated up to this bound; anything larger overflows or underflows an
/// `f64` anyway and takes the slow path, which gets it right.
const EXPONENT_SATURATION: i64 = 1 << 20;

const _: () = assert!(POW10.len() == 23);
// A mantissa of 19 digits cannot overflow a u64.
const _: () = assert!(10_u64.checked_pow(DIGITS_EXACT_MAX as u32).is_some());

/// A field value as found in the line, before string unescaping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RawValue<'a> {
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    /// Content between the quotes, still escaped if `escaped`.
    String {
        raw: &'a str,
        escaped: bool,
    },
}

impl<'a> RawValue<'a> {
    #[inline]
    pub(crate) fn into_field_value(self) -> FieldValue<'a> {
        match self {
            Self::Float(v) => FieldValue::Float(v),
            Self::Int(v) => FieldValue::Int(v),
            Self::UInt(v) => FieldValue::UInt(v),
            Self::Bool(v) => FieldValue::Bool(v),
            Self::String { raw, escaped } => FieldValue::String(if escaped {
                Cow::Owned(scan::unescape_string(raw))
            } else {
                Cow::Borrowed(raw)
            }),
        }
    }
}

/// Why a field value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueError {
    /// Nothing after the `=`.
    Missing,
    /// Not a valid value; the offending token ends at `end`.
    Invalid { end: usize },
    /// A string without a closing quote.
    Unterminated,
    /// A string whose content is not valid UTF-8.
    InvalidUtf8,
}

/// Parses the field value that starts at `start`. On success returns the value and the index
/// just past it, which holds `,`, ` ` or is the end of `bytes`.
///
/// `text` is the longest valid UTF-8 prefix of `bytes` (all of it when iterating a validated
/// field set); only strings need it.
#[inline]
pub(crate) fn parse_field_value<'a>(
    bytes: &'a [u8],
    text: &'a str,
    start: usize,
) -> Result<(RawValue<'a>, usize), ValueError> {
    match bytes.get(start) {
        None | Some(b',' | b' ') => Err(ValueError::Missing),
        Some(b'-' | b'0'..=b'9' | b'.') => parse_number(bytes, start),
        Some(b'"') => parse_string(bytes, text, start),
        Some(b't' | b'T' | b'f' | b'F') => parse_bool(bytes, start),
        Some(_) => Err(ValueError::Invalid {
            end: token_end(bytes, start),
        }),
    }
}

/// Index of the first `,` or ` ` at or after `start`, or the end of `bytes`.
#[inline]
pub(crate) fn token_end(bytes: &[u8], start: usize) -> usize {
    let tail = bytes.get(start..).unwrap_or_default();
    start
        + tail
            .iter()
            .position(|&b| b == b',' || b == b' ')
            .unwrap_or(tail.len())
}

#[inline]
fn at_value_end(bytes: &[u8], pos: usize) -> bool {
    matches!(bytes.get(pos), None | Some(b',' | b' '))
}

#[inline]
fn parse_bool(bytes: &[u8], start: usize) -> Result<(RawValue<'_>, usize), ValueError> {
    let end = token_end(bytes, start);
    let value = match bytes.get(start..end).unwrap_or_default() {
        b"t" | b"T" | b"true" | b"True" | b"TRUE" => true,
        b"f" | b"F" | b"false" | b"False" | b"FALSE" => false,
        _ => return Err(ValueError::Invalid { end }),
    };
    Ok((RawValue::Bool(value), end))
}

#[inline]
fn parse_string<'a>(
    bytes: &'a [u8],
    text: &'a str,
    quote: usize,
) -> Result<(RawValue<'a>, usize), ValueError> {
    let (close, escaped) = scan::scan_string(bytes, quote).ok_or(ValueError::Unterminated)?;
    let end = close + 1;
    if !at_value_end(bytes, end) {
        return Err(ValueError::Invalid {
            end: token_end(bytes, end),
        });
    }
    let raw = text.get(quote + 1..close).ok_or(ValueError::InvalidUtf8)?;
    Ok((RawValue::String { raw, escaped }, end))
}

/// Parses `digits` (at least one digit, no sign) into a `u64`, one digit at a time; `None` on
/// a bad digit or overflow.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    Some(value)
}

/// Powers of ten up to 10^19, the largest that fits a `u64`.
const POW10_U64: [u64; 20] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
    10_000_000_000_000_000,
    100_000_000_000_000_000,
    1_000_000_000_000_000_000,
    10_000_000_000_000_000_000,
];

/// A run of ASCII digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DigitRun {
    /// The value of the digits; exact when `len <= 19`, meaningless otherwise.
    pub(crate) value: u64,
    /// Number of digits.
    pub(crate) len: usize,
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// Number of leading ASCII digits in the 8 bytes of `word` (first byte lowest).
#[inline(always)]
fn leading_digits(word: u64) -> usize {
    // A byte is a digit iff its high nibble is 3 and adding 6 keeps it 3. A carry out of a
    // byte >= 0xFA only disturbs bytes after it, and it is not a digit itself.
    let high_nibbles = 0xF0 * ONES;
    let not_digit = ((word & high_nibbles) ^ (0x30 * ONES))
        | ((word.wrapping_add(0x06 * ONES) & high_nibbles) ^ (0x30 * ONES));
    // Set the high bit of every non-zero byte (exactly, without carries between bytes).
    let low7 = 0x7F * ONES;
    let found = (((not_digit & low7) + low7) | not_digit) & (0x80 * ONES);
    (found.trailing_zeros() / 8) as usize
}

/// The value of the first `len` (1..=8) digits of `word` (first byte lowest).
#[inline(always)]
fn digits_value(word: u64, len: usize) -> u64 {
    // Subtracting '0' borrows only out of non-digit bytes, which lie above the digits and are
    // shifted out. The shift moves the digits to the top, leaving leading zeros below.
    let digits = word.wrapping_sub(0x30 * ONES) << (8 * (8 - len));
    // Combine neighbours into 2-digit, then 4-digit, then 8-digit numbers (the method of
    // simdjson's `parse_eight_digits_unrolled`).
    let pairs = digits.wrapping_mul(10).wrapping_add(digits >> 8);
    let mask = 0x0000_00FF_0000_00FF;
    let quads = (pairs & mask).wrapping_mul(100 + (1_000_000 << 32));
    let rest = ((pairs >> 16) & mask).wrapping_mul(1 + (10_000 << 32));
    quads.wrapping_add(rest) >> 32
}

/// Reads the run of ASCII digits starting at `pos`, 8 at a time while 8 bytes remain.
#[inline(always)]
pub(crate) fn digit_run(bytes: &[u8], pos: usize) -> DigitRun {
    let mut value: u64 = 0;
    let mut len = 0;
    while let Some(chunk) = bytes.get(pos + len..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        let run = leading_digits(word);
        if run > 0 {
            let scale = POW10_U64.get(run).copied().unwrap_or_default();
            value = value
                .wrapping_mul(scale)
                .wrapping_add(digits_value(word, run));
            len += run;
        }
        if run < 8 {
            return DigitRun { value, len };
        }
    }
    while let Some(&b) = bytes.get(pos + len) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
        len += 1;
    }
    DigitRun { value, len }
}

/// Converts a digit run with an optional minus sign to an `i64`, range-checked. `digits` are
/// the run's bytes, needed when it is longer than 19 digits (leading zeros).
#[inline(always)]
pub(crate) fn run_to_i64(negative: bool, run: DigitRun, digits: &[u8]) -> Option<i64> {
    if run.len == 0 {
        return None;
    }
    // 19 digits fit a u64 exactly; i64 needs a range check.
    let magnitude = if run.len <= 19 {
        run.value
    } else {
        parse_u64(digits)?
    };
    if negative {
        0_i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Converts a digit run to a `u64`, range-checked. `digits` are the run's bytes.
#[inline(always)]
fn run_to_u64(run: DigitRun, digits: &[u8]) -> Option<u64> {
    match run.len {
        0 => None,
        1..=19 => Some(run.value),
        _ => parse_u64(digits),
    }
}

/// Parses an integer (`-?\d+i`), an unsigned integer (`\d+u`) or a float
/// (`-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?`) starting at `start`.
#[inline]
fn parse_number<'a>(bytes: &'a [u8], start: usize) -> Result<(RawValue<'a>, usize), ValueError> {
    let negative = bytes.get(start) == Some(&b'-');
    let int_start = start + usize::from(negative);
    let int = digit_run(bytes, int_start);
    let mut pos = int_start + int.len;
    let invalid = |pos: usize| ValueError::Invalid {
        end: token_end(bytes, pos),
    };

    match bytes.get(pos) {
        Some(b'i') => {
            let end = pos + 1;
            let digits = bytes.get(int_start..pos).unwrap_or_default();
            return match run_to_i64(negative, int, digits) {
                Some(value) if at_value_end(bytes, end) => Ok((RawValue::Int(value), end)),
                _ => Err(invalid(end)),
            };
        }
        Some(b'u') => {
            let end = pos + 1;
            let digits = bytes.get(int_start..pos).unwrap_or_default();
            let value = if negative {
                None
            } else {
                run_to_u64(int, digits)
            };
            return match value {
                Some(value) if at_value_end(bytes, end) => Ok((RawValue::UInt(value), end)),
                _ => Err(invalid(end)),
            };
        }
        _ => {}
    }

    let mut frac = DigitRun { value: 0, len: 0 };
    if bytes.get(pos) == Some(&b'.') {
        frac = digit_run(bytes, pos + 1);
        pos += 1 + frac.len;
    }
    if int.len == 0 && frac.len == 0 {
        // "-", ".", "-." or "-x".
        return Err(invalid(pos));
    }

    let mut exponent: i64 = 0;
    if let Some(b'e' | b'E') = bytes.get(pos) {
        pos += 1;
        let exp_negative = match bytes.get(pos) {
            Some(b'-') => {
                pos += 1;
                true
            }
            Some(b'+') => {
                pos += 1;
                false
            }
            _ => false,
        };
        let exp = digit_run(bytes, pos);
        if exp.len == 0 {
            return Err(invalid(pos));
        }
        pos += exp.len;
        // Anything beyond the saturation bound overflows or underflows an f64 anyway.
        let magnitude = match i64::try_from(exp.value) {
            Ok(value) if exp.len <= 7 => value,
            _ => EXPONENT_SATURATION,
        };
        exponent = if exp_negative { -magnitude } else { magnitude };
    }

    if !at_value_end(bytes, pos) {
        return Err(invalid(pos));
    }

    // With at most 19 digits in total the mantissa is exact in a u64 (leading zeros count
    // against the 19; longer inputs are rare and take the slow path).
    let digits = int.len + frac.len;
    let fast = if digits <= DIGITS_EXACT_MAX {
        let scale = POW10_U64.get(frac.len).copied().unwrap_or_default();
        let mantissa = int.value * scale + frac.value;
        let frac_len = i64::try_from(frac.len).unwrap_or(i64::MAX);
        match mantissa {
            0 => Some(0.0),
            1..=MANTISSA_EXACT_MAX => clinger(mantissa, exponent - frac_len),
            _ => None,
        }
    } else {
        None
    };
    let value = match fast {
        Some(magnitude) if negative => -magnitude,
        Some(magnitude) => magnitude,
        None => {
            // The token is ASCII (the grammar check passed), so it is UTF-8.
            let token = bytes
                .get(start..pos)
                .and_then(|t| std::str::from_utf8(t).ok());
            let token = token.ok_or_else(|| invalid(pos))?;
            token.parse::<f64>().map_err(|_| invalid(pos))?
        }
    };
    if !value.is_finite() {
        // NOTE: InfluxDB (Go) rejects values that overflow; the Rust reference would store
        // infinity.
        return Err(invalid(pos));
    }
    Ok((RawValue::Float(value), pos))
}

/// Clinger's fast path: exact when `mantissa <= 2^53` and `|exponent| <= 22`.
#[inline(always)]
fn clinger(mantissa: u64, exponent: i64) -> Option<f64> {
    // `as` is exact: the caller guarantees mantissa <= 2^53.
    #[allow(clippy::cast_precision_loss)]
    let mantissa = mantissa as f64;
    if exponent >= 0 {
        let power = POW10.get(usize::try_from(exponent).ok()?)?;
        Some(mantissa * power)
    } else {
        let power = POW10.get(usize::try_from(exponent.checked_neg()?).ok()?)?;
        Some(mantissa / power)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value(input: &str) -> Result<RawValue<'_>, ValueError> {
        let (value, end) = parse_field_value(input.as_bytes(), input, 0)?;
        assert_eq!(end, input.len(), "value did not consume {input:?}");
        Ok(value)
    }

    fn float(input: &str) -> f64 {
        match value(input) {
            Ok(RawValue::Float(v)) => v,
            other => panic!("{input:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn digit_runs_match_naive_parsing() {
        // Goal: the 8-at-a-time digit reader agrees with a byte loop for every run length,
        // alignment and terminator, including bytes that carry or borrow in SWAR arithmetic.
        for len in 0..=24usize {
            for offset in 0..3 {
                for terminator in [b' ', b',', b'.', b'e', b'/', b':', 0xfa, 0xff, 0x00] {
                    let mut input = vec![b'x'; offset];
                    let digits: String = (0..len)
                        .map(|i| char::from(b'0' + (i * 7 + 3) as u8 % 10))
                        .collect();
                    input.extend_from_slice(digits.as_bytes());
                    input.push(terminator);
                    input.extend_from_slice(b"123456789");
                    let run = digit_run(&input, offset);
                    assert_eq!(run.len, len, "{input:?}");
                    if len > 0 && len <= 19 {
                        assert_eq!(run.value, digits.parse::<u64>().unwrap(), "{input:?}");
                    }
                    // Also at the very end of the input.
                    let end = &input[..offset + len];
                    assert_eq!(digit_run(end, offset).len, len);
                }
            }
        }
    }

    #[test]
    fn float_grammar() {
        // Goal: accept exactly -?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)? and nothing else.
        for (input, expected) in [
            ("1", 1.0_f64),
            ("1.5", 1.5),
            ("-1.5", -1.5),
            ("1e3", 1e3),
            ("1.5E-3", 1.5e-3),
            ("1.5e+3", 1.5e3),
            (".5", 0.5),
            ("-.5", -0.5),
            ("1.", 1.0),
            ("1.e2", 100.0),
            ("007", 7.0),
            ("0.000", 0.0),
            ("1e-400", 0.0),
        ] {
            assert_eq!(float(input).to_bits(), expected.to_bits(), "{input}");
        }
        assert_eq!(float("-0").to_bits(), (-0.0f64).to_bits());
        assert_eq!(float("-0.0e5").to_bits(), (-0.0f64).to_bits());
        for input in [
            "-", ".", "-.", "+1", "1e", "1e+", "1e-", "e5", "-e5", "1.5.2", "1x", "NaN", "nan",
            "inf", "-inf", "Infinity", "1e400", "-1e400", "1_000", "0x10", "1.5f", "1..5",
        ] {
            assert!(
                matches!(value(input), Err(ValueError::Invalid { .. })),
                "{input:?} should be invalid"
            );
        }
    }

    #[test]
    fn integer_grammar() {
        // Goal: `i` and `u` suffixes on plain digit strings, range-checked.
        assert_eq!(value("12i"), Ok(RawValue::Int(12)));
        assert_eq!(value("-12i"), Ok(RawValue::Int(-12)));
        assert_eq!(value("-0i"), Ok(RawValue::Int(0)));
        assert_eq!(value("9223372036854775807i"), Ok(RawValue::Int(i64::MAX)));
        assert_eq!(value("-9223372036854775808i"), Ok(RawValue::Int(i64::MIN)));
        assert_eq!(value("12u"), Ok(RawValue::UInt(12)));
        assert_eq!(value("18446744073709551615u"), Ok(RawValue::UInt(u64::MAX)));
        // Leading zeros do not count against the range.
        assert_eq!(
            value("-03141597603699698333i"),
            Ok(RawValue::Int(-3141597603699698333))
        );
        assert_eq!(value("00000000000000000000000001i"), Ok(RawValue::Int(1)));
        assert_eq!(
            value("-0009223372036854775808i"),
            Ok(RawValue::Int(i64::MIN))
        );
        assert_eq!(
            value("000000000000000000000000042u"),
            Ok(RawValue::UInt(42))
        );
        for input in [
            "9223372036854775808i",
            "-9223372036854775809i",
            "18446744073709551616u",
            "-1u",
            "-i",
            "i",
            "u",
            "1.5i",
            "1e3i",
            "1ii",
            "1iu",
            "+1i",
            ".5i",
        ] {
            assert!(
                matches!(value(input), Err(ValueError::Invalid { .. })),
                "{input:?} should be invalid"
            );
        }
    }

    #[test]
    fn bool_and_string_values() {
        // Goal: the ten boolean spellings, and strings with `\"` and `\\` escapes.
        for input in ["t", "T", "true", "True", "TRUE"] {
            assert_eq!(value(input), Ok(RawValue::Bool(true)));
        }
        for input in ["f", "F", "false", "False", "FALSE"] {
            assert_eq!(value(input), Ok(RawValue::Bool(false)));
        }
        for input in ["tru", "truE", "yes", "fa", "FALSEE", "x"] {
            assert!(matches!(value(input), Err(ValueError::Invalid { .. })));
        }
        assert_eq!(
            value(r#""a b,c=d""#),
            Ok(RawValue::String {
                raw: "a b,c=d",
                escaped: false
            })
        );
        assert_eq!(
            value(r#""a\"b""#).map(RawValue::into_field_value),
            Ok(FieldValue::String(r#"a"b"#.into()))
        );
        assert_eq!(value(r#""abc"#), Err(ValueError::Unterminated));
        assert!(matches!(
            value(r#""a"b"#),
            Err(ValueError::Invalid { end: 4 })
        ));
        assert_eq!(value(""), Err(ValueError::Missing));
    }

    #[test]
    fn value_end_is_the_delimiter() {
        // Goal: the returned end index points at the `,` or ` ` after the value.
        let input = "45.3,x=1 123";
        let (_, end) = parse_field_value(input.as_bytes(), input, 0).unwrap();
        assert_eq!(&input[end..], ",x=1 123");
        let input = r#""a,b" 1"#;
        let (_, end) = parse_field_value(input.as_bytes(), input, 0).unwrap();
        assert_eq!(&input[end..], " 1");
    }

    fn assert_matches_std(text: &str) {
        let expected: f64 = text.parse().unwrap();
        if expected.is_finite() {
            assert_eq!(float(text).to_bits(), expected.to_bits(), "{text}");
        } else {
            assert!(value(text).is_err(), "{text}");
        }
    }

    #[test]
    fn fast_path_edges_match_std() {
        // Goal: the boundaries of Clinger's fast path agree with std bit for bit.
        for text in [
            "9007199254740992",
            "9007199254740993",
            "9007199254740992e22",
            "9007199254740992e-22",
            "1e22",
            "1e23",
            "1e-22",
            "1e-23",
            "1234567890123456789",
            "12345678901234567890",
            "0.1234567890123456789",
            "0.00000000000000000000000000001",
            "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "4.9e-324",
            "2.2250738585072014e-308",
        ] {
            assert_matches_std(text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn fast_path_equals_std_parse(
            negative in any::<bool>(),
            int_part in "[0-9]{0,22}",
            frac_part in proptest::option::of("[0-9]{0,22}"),
            exp in proptest::option::of((prop_oneof![Just(""), Just("+"), Just("-")], 0u32..400)),
        ) {
            // Goal: whatever the digits and exponent, the result is bit-identical to std's.
            let mut text = String::new();
            if negative { text.push('-'); }
            text.push_str(&int_part);
            if let Some(frac) = &frac_part { text.push('.'); text.push_str(frac); }
            let has_digits = !int_part.is_empty() || frac_part.as_ref().is_some_and(|f| !f.is_empty());
            prop_assume!(has_digits);
            if let Some((sign, e)) = &exp { text.push_str(&format!("e{sign}{e}")); }
            assert_matches_std(&text);
        }

        #[test]
        fn formatted_floats_round_trip(bits in any::<u64>()) {
            // Goal: every finite f64, printed shortest or in exponent form, parses back exactly.
            let v = f64::from_bits(bits);
            prop_assume!(v.is_finite());
            assert_eq!(float(&format!("{v}")).to_bits(), v.to_bits());
            assert_eq!(float(&format!("{v:e}")).to_bits(), v.to_bits());
        }

        #[test]
        fn short_decimals_use_fast_path_and_match(m in 0u64..100_000_000, decimals in 0usize..4) {
            // Goal: the workload shape (0-3 decimals) is exact.
            let text = if decimals == 0 { m.to_string() } else {
                let s = format!("{m:0>width$}", width = decimals + 1);
                format!("{}.{}", &s[..s.len() - decimals], &s[s.len() - decimals..])
            };
            assert_matches_std(&text);
        }
    }
}
