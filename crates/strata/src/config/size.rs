//! Byte sizes for Strata's own keys (`wal.segment-size`, `limits.body-size`, …): a
//! non-negative integer with an optional unit, so that `"64MiB"` can be written instead of
//! `67108864`.
//!
//! Units are case-sensitive because `MB` and `MiB` differ by 5 %: `B`, `kB`/`KB`, `MB`,
//! `GB` (powers of 1000) and `KiB`, `MiB`, `GiB` (powers of 1024). One space may separate
//! number and unit (`"64 MiB"`). Fractions are not accepted (`"1.5GiB"`): sizes are limits,
//! and an exact integer avoids surprises about rounding.

/// Why a size string was rejected. Each message quotes the input (capped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// No leading digits, or something other than a unit after them.
    #[error(
        "invalid size {0:?} (expected bytes, optionally with a unit, such as \"64MiB\" or \"1GB\")"
    )]
    Invalid(String),
    /// A unit not in the table, e.g. `"5TB"` or `"5mb"`.
    #[error("unknown unit {unit:?} in size {input:?} (units: B, KB, MB, GB, KiB, MiB, GiB)")]
    UnknownUnit { unit: String, input: String },
    /// More than `u64::MAX` bytes.
    #[error("size {0:?} is too large")]
    Overflow(String),
}

/// Longest piece of input echoed back in an error message.
const ECHO_BYTES_MAX: usize = 100;

/// Parses a size string such as `"64MiB"`, `"1 GB"` or `"4096"` into bytes.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let echo = || super::clip(input, ECHO_BYTES_MAX);
    let digits = input.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(SizeError::Invalid(echo()));
    }
    let (number, rest) = input.split_at(digits);
    let unit = rest.strip_prefix(' ').unwrap_or(rest);
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ if !unit.starts_with(|c: char| c.is_ascii_alphabetic()) => {
            return Err(SizeError::Invalid(echo()));
        }
        _ => {
            return Err(SizeError::UnknownUnit {
                unit: super::clip(unit, ECHO_BYTES_MAX),
                input: echo(),
            });
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|value| value.checked_mul(multiplier))
        .ok_or_else(|| SizeError::Overflow(echo()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: every documented unit has the documented multiplier.
    #[test]
    fn parses_units() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("4096", 4096),
            ("4096B", 4096),
            ("4096 B", 4096),
            ("1KB", 1_000),
            ("1kB", 1_000),
            ("3MB", 3_000_000),
            ("2GB", 2_000_000_000),
            ("1KiB", 1_024),
            ("64KiB", 65_536),
            ("64MiB", 67_108_864),
            ("64 MiB", 67_108_864),
            ("256MiB", 268_435_456),
            ("4GiB", 4_294_967_296),
            ("007MB", 7_000_000),
            ("18446744073709551615", u64::MAX),
            ("17179869183GiB", 17_179_869_183 * (1 << 30)),
        ];
        for &(input, expected) in cases {
            assert_eq!(parse_size(input), Ok(expected), "input {input:?}");
        }
    }

    /// Goal: malformed sizes, unknown or mis-cased units and overflow are rejected with a
    /// reason that says which.
    #[test]
    fn rejects_malformed_input() {
        let invalid = |s: &str| SizeError::Invalid(s.to_owned());
        let unknown = |unit: &str, s: &str| SizeError::UnknownUnit {
            unit: unit.to_owned(),
            input: s.to_owned(),
        };
        let overflow = |s: &str| SizeError::Overflow(s.to_owned());
        let cases: Vec<(&str, SizeError)> = vec![
            ("", invalid("")),
            ("MiB", invalid("MiB")),
            (" 1MiB", invalid(" 1MiB")),
            ("-1MiB", invalid("-1MiB")),
            ("1.5GiB", invalid("1.5GiB")),
            ("1  MiB", invalid("1  MiB")),
            ("1MiB ", unknown("MiB ", "1MiB ")),
            ("1mb", unknown("mb", "1mb")),
            ("1mib", unknown("mib", "1mib")),
            ("1TB", unknown("TB", "1TB")),
            ("1Mi", unknown("Mi", "1Mi")),
            ("18446744073709551616", overflow("18446744073709551616")),
            ("17179869184GiB", overflow("17179869184GiB")),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_size(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn error_message_lists_units() {
        assert_eq!(
            parse_size("1TB").map_err(|error| error.to_string()),
            Err(
                "unknown unit \"TB\" in size \"1TB\" (units: B, KB, MB, GB, KiB, MiB, GiB)"
                    .to_owned()
            )
        );
    }
}
