//! Byte classes and the name scanner shared by validation ([`crate::parser`]) and iteration
//! ([`crate::line`]).
//!
//! Both passes call the same functions, so the tokens a consumer sees are exactly the tokens
//! that were validated.

use std::borrow::Cow;

// Bit flags in `CLASSES`. A byte can be in several classes (a space stops every name and is
// escapable everywhere).
const STOP_MEASUREMENT: u8 = 1 << 0;
const STOP_KEY: u8 = 1 << 1;
const STOP_TAG_VALUE: u8 = 1 << 2;
const ESCAPABLE_MEASUREMENT: u8 = 1 << 3;
const ESCAPABLE_KEY: u8 = 1 << 4;
const ESCAPABLE_STRING: u8 = 1 << 5;
const CONTROL: u8 = 1 << 6;
const BACKSLASH: u8 = 1 << 7;

#[allow(clippy::indexing_slicing)] // Const evaluation: an out-of-bounds index fails the build.
const fn build_classes() -> [u8; 256] {
    let mut classes = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        classes[byte] = CONTROL;
        byte += 1;
    }
    classes[0x7f] = CONTROL;
    let delimiter = STOP_MEASUREMENT | STOP_KEY | STOP_TAG_VALUE;
    let escapable = ESCAPABLE_MEASUREMENT | ESCAPABLE_KEY;
    classes[b' ' as usize] = delimiter | escapable;
    classes[b',' as usize] = delimiter | escapable;
    classes[b'=' as usize] = STOP_KEY | ESCAPABLE_KEY;
    classes[b'\\' as usize] = BACKSLASH | escapable | ESCAPABLE_STRING;
    classes[b'"' as usize] = ESCAPABLE_STRING;
    classes
}

static CLASSES: [u8; 256] = build_classes();

#[inline(always)]
#[allow(clippy::indexing_slicing)] // A u8 index into a 256-entry table is always in bounds.
fn class(byte: u8) -> u8 {
    CLASSES[usize::from(byte)]
}

/// The four kinds of names. They differ in which bytes end them and which bytes a backslash
/// escapes; these follow the `influxdb_line_protocol` crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameKind {
    /// Bytes that end the name when not escaped.
    stop: u8,
    /// Bytes that a preceding backslash turns into themselves. A backslash before any other
    /// byte is a literal backslash.
    escapable: u8,
    /// Whether `=` is in `stop` (keys); used by the 8-bytes-at-a-time scan.
    stops_at_equals: bool,
    /// How error messages refer to this kind of name.
    pub(crate) what: &'static str,
}

/// Ends at `,` or ` `; escapes `\,` `\ ` `\\`. A `=` is an ordinary character.
pub(crate) const MEASUREMENT: NameKind = NameKind {
    stop: STOP_MEASUREMENT,
    escapable: ESCAPABLE_MEASUREMENT,
    stops_at_equals: false,
    what: "measurement",
};
/// Ends at `=`, `,` or ` `; escapes `\,` `\=` `\ ` `\\`.
pub(crate) const TAG_KEY: NameKind = NameKind {
    stop: STOP_KEY,
    escapable: ESCAPABLE_KEY,
    stops_at_equals: true,
    what: "tag key",
};
/// Ends at `,` or ` `; escapes `\,` `\=` `\ ` `\\`. A `=` is an ordinary character.
pub(crate) const TAG_VALUE: NameKind = NameKind {
    stop: STOP_TAG_VALUE,
    escapable: ESCAPABLE_KEY,
    stops_at_equals: false,
    what: "tag value",
};
/// Ends at `=`, `,` or ` `; escapes `\,` `\=` `\ ` `\\`.
pub(crate) const FIELD_KEY: NameKind = NameKind {
    stop: STOP_KEY,
    escapable: ESCAPABLE_KEY,
    stops_at_equals: true,
    what: "field key",
};

/// What ended a scanned name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The end of the input slice.
    End,
    /// An unescaped delimiter of the name kind (`,`, ` ` or `=`), at `NameScan::end`.
    Delimiter(u8),
    /// An ASCII control character, at `NameScan::end`. Names may not contain these.
    Control(u8),
}

/// The raw extent of one name in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameScan {
    /// Index of the first byte of the name.
    pub(crate) start: usize,
    /// Index one past the last byte of the name; the stop byte (if any) is here.
    pub(crate) end: usize,
    /// Number of escape sequences; each one makes the unescaped name one byte shorter.
    pub(crate) escapes: usize,
    /// Whether the name contains a backslash at all (an escape or a literal one).
    pub(crate) has_backslash: bool,
    pub(crate) stop: Stop,
}

impl NameScan {
    /// Length of the name after unescaping, in bytes.
    #[inline]
    pub(crate) fn unescaped_len(&self) -> usize {
        self.end
            .saturating_sub(self.start)
            .saturating_sub(self.escapes)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Whether the unescaped name ends with a backslash. It does exactly when the raw name
    /// does: either an escaped backslash or a lone literal backslash.
    #[inline]
    pub(crate) fn ends_with_backslash(&self, bytes: &[u8]) -> bool {
        self.has_backslash && self.end > self.start && bytes.get(self.end - 1) == Some(&b'\\')
    }

    /// The name as text: borrowed when it has no escapes. `None` if the raw bytes are not
    /// valid UTF-8 (they lie outside `text`, the valid prefix of the input).
    #[inline]
    pub(crate) fn cow<'a>(&self, text: &'a str, kind: NameKind) -> Option<Cow<'a, str>> {
        name_cow(text, self.start, self.end, self.escapes > 0, kind)
    }
}

// SWAR ("SIMD within a register") helpers. Each returns a word with the high bit set in every
// byte that matches. Bits above the lowest match may be spurious (a borrow propagates
// upwards), so only the lowest set bit is meaningful, which is all `find_special` uses.
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Bytes of `word` that are less than `n` (`n <= 128`).
#[inline(always)]
fn bytes_below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS
}

/// Bytes of `word` equal to `byte`.
#[inline(always)]
fn bytes_equal(word: u64, byte: u8) -> u64 {
    bytes_below(word ^ (ONES * u64::from(byte)), 1)
}

/// Index of the first byte at or after `pos` that needs attention when scanning a name of
/// `kind`: a stop byte, a backslash or a control character. `bytes.len()` if there is none.
#[inline(always)]
fn find_special(bytes: &[u8], mut pos: usize, kind: NameKind) -> usize {
    // NOTE: the word test must select exactly the bytes that the table test below selects:
    // 0x00-0x20 (controls and space), `,`, `\`, 0x7f, and `=` for keys.
    while let Some(chunk) = bytes.get(pos..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        let mut found = bytes_below(word, 0x21)
            | bytes_equal(word, b',')
            | bytes_equal(word, b'\\')
            | bytes_equal(word, 0x7f);
        if kind.stops_at_equals {
            found |= bytes_equal(word, b'=');
        }
        if found != 0 {
            return pos + (found.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    let special = kind.stop | CONTROL | BACKSLASH;
    let tail = bytes.get(pos..).unwrap_or_default();
    pos + tail
        .iter()
        .position(|&b| class(b) & special != 0)
        .unwrap_or(tail.len())
}

/// The name at `text[start..end]`: borrowed, or unescaped if `escaped`. `None` if the range
/// is not valid UTF-8 (it reaches beyond `text`, the valid prefix of the input).
#[inline]
pub(crate) fn name_cow(
    text: &str,
    start: usize,
    end: usize,
    escaped: bool,
    kind: NameKind,
) -> Option<Cow<'_, str>> {
    let raw = text.get(start..end)?;
    Some(if escaped {
        Cow::Owned(unescape(raw, kind.escapable))
    } else {
        Cow::Borrowed(raw)
    })
}

/// Scans the name of `kind` that starts at `start`, up to the first unescaped delimiter or
/// control character.
#[inline]
pub(crate) fn scan_name(bytes: &[u8], start: usize, kind: NameKind) -> NameScan {
    let mut pos = start;
    let mut escapes = 0;
    let mut has_backslash = false;
    loop {
        pos = find_special(bytes, pos, kind);
        let Some(&byte) = bytes.get(pos) else {
            return NameScan {
                start,
                end: bytes.len(),
                escapes,
                has_backslash,
                stop: Stop::End,
            };
        };
        if byte == b'\\' {
            has_backslash = true;
            let next = bytes.get(pos + 1).copied().unwrap_or_default();
            if class(next) & kind.escapable != 0 {
                escapes += 1;
                pos += 2;
            } else {
                // NOTE: a literal backslash. The byte after it is scanned normally, so a
                // control character after a backslash is still rejected.
                pos += 1;
            }
            continue;
        }
        let stop = if byte < 0x20 || byte == 0x7f {
            Stop::Control(byte)
        } else {
            Stop::Delimiter(byte)
        };
        return NameScan {
            start,
            end: pos,
            escapes,
            has_backslash,
            stop,
        };
    }
}

/// Removes the backslash from every `\x` where `x` is in the `escapable` class. A backslash
/// before any other byte stays. `raw` must contain at least one escape to be worth calling.
#[cold]
fn unescape(raw: &str, escapable: u8) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut segment_start = 0;
    let mut pos = 0;
    while let Some(offset) = memchr::memchr(b'\\', bytes.get(pos..).unwrap_or_default()) {
        let backslash = pos + offset;
        let next = bytes.get(backslash + 1).copied().unwrap_or_default();
        if class(next) & escapable != 0 {
            // Every boundary here is next to an ASCII byte, so `get` always succeeds.
            out.push_str(raw.get(segment_start..backslash).unwrap_or_default());
            // The escaped byte starts the next segment; skip it so that `\\` yields one `\`.
            segment_start = backslash + 1;
            pos = backslash + 2;
        } else {
            pos = backslash + 1;
        }
    }
    out.push_str(raw.get(segment_start..).unwrap_or_default());
    out
}

/// Unescapes a string field value: `\"` becomes `"` and `\\` becomes `\`.
pub(crate) fn unescape_string(raw: &str) -> String {
    unescape(raw, ESCAPABLE_STRING)
}

/// Unescapes a name given as raw bytes for an error message (lossy UTF-8).
pub(crate) fn describe_name(bytes: &[u8], scan: &NameScan, kind: NameKind) -> String {
    let raw = bytes.get(scan.start..scan.end).unwrap_or_default();
    let lossy = String::from_utf8_lossy(raw);
    crate::error::echo(unescape(&lossy, kind.escapable).as_bytes())
}

/// Scans a string field value whose opening quote is at `quote`. Returns the index of the
/// closing quote and whether the content contains escapes, or `None` if the string is not
/// terminated before the end of `bytes`.
#[inline]
pub(crate) fn scan_string(bytes: &[u8], quote: usize) -> Option<(usize, bool)> {
    let mut pos = quote + 1;
    let mut escaped = false;
    loop {
        let tail = bytes.get(pos..)?;
        let offset = memchr::memchr2(b'"', b'\\', tail)?;
        let at = pos + offset;
        if tail.get(offset) == Some(&b'"') {
            return Some((at, escaped));
        }
        // A backslash: `\"` and `\\` are escapes, anything else is a literal backslash.
        if matches!(tail.get(offset + 1), Some(b'"' | b'\\')) {
            escaped = true;
            pos = at + 2;
        } else {
            pos = at + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(input: &str, kind: NameKind) -> (String, Stop) {
        let scan = scan_name(input.as_bytes(), 0, kind);
        let cow = scan.cow(input, kind).unwrap_or_default();
        assert_eq!(cow.len(), scan.unescaped_len());
        (cow.into_owned(), scan.stop)
    }

    #[test]
    fn measurement_escapes() {
        // Goal: the measurement honours `\,` `\ ` `\\`; other backslashes are literal and `=`
        // is ordinary.
        assert_eq!(
            scan(r"a\,b\ c d", MEASUREMENT),
            ("a,b c".into(), Stop::Delimiter(b' '))
        );
        assert_eq!(
            scan(r"a\\b,", MEASUREMENT),
            (r"a\b".into(), Stop::Delimiter(b','))
        );
        assert_eq!(scan(r"a\=b=c", MEASUREMENT), (r"a\=b=c".into(), Stop::End));
        assert_eq!(
            scan("a\tb", MEASUREMENT),
            ("a".into(), Stop::Control(b'\t'))
        );
        assert_eq!(
            scan("a\\\tb", MEASUREMENT),
            ("a\\".into(), Stop::Control(b'\t'))
        );
    }

    #[test]
    fn key_and_value_escapes() {
        // Goal: keys stop at `=`, tag values do not; both honour `\,` `\=` `\ ` `\\`.
        assert_eq!(
            scan(r"k\=\,\ \\x=1", TAG_KEY),
            (r"k=, \x".into(), Stop::Delimiter(b'='))
        );
        assert_eq!(
            scan(r"v=w,", TAG_VALUE),
            ("v=w".into(), Stop::Delimiter(b','))
        );
        assert_eq!(
            scan(r"v\q ", TAG_VALUE),
            (r"v\q".into(), Stop::Delimiter(b' '))
        );
        assert_eq!(
            scan("ké y", FIELD_KEY),
            ("ké".into(), Stop::Delimiter(b' '))
        );
        assert_eq!(scan(r"k\", FIELD_KEY), (r"k\".into(), Stop::End));
    }

    #[test]
    fn word_scan_agrees_with_table_scan() {
        // Goal: the 8-bytes-at-a-time test selects exactly the bytes of the table test, for
        // every byte value at every position of a word, and for every name kind.
        for kind in [MEASUREMENT, TAG_KEY, TAG_VALUE, FIELD_KEY] {
            let special = kind.stop | CONTROL | BACKSLASH;
            for byte in 0..=255u8 {
                for at in 0..8 {
                    let mut input = vec![b'a'; 16];
                    input[at] = byte;
                    let expected = if class(byte) & special != 0 { at } else { 16 };
                    assert_eq!(
                        find_special(&input, 0, kind),
                        expected,
                        "{kind:?} {byte:#x}"
                    );
                    // A high byte before the target must not hide it (no false negatives).
                    input[at.saturating_sub(1)] = 0xff;
                    input[at] = byte;
                    assert_eq!(
                        find_special(&input, 0, kind),
                        expected,
                        "{kind:?} {byte:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn string_scanning() {
        // Goal: `\"` does not close a string, `\\"` does.
        assert_eq!(scan_string(br#""ab""#, 0), Some((3, false)));
        assert_eq!(scan_string(br#""a\"b""#, 0), Some((5, true)));
        assert_eq!(scan_string(br#""a\\"b"#, 0), Some((4, true)));
        assert_eq!(scan_string(br#""a\"#, 0), None);
        assert_eq!(scan_string(br#""a\x""#, 0), Some((4, false)));
        assert_eq!(unescape_string(r#"a\"b\\c\d"#), r#"a"b\c\d"#);
    }
}
