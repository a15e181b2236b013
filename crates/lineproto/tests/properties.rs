//! Property tests: robustness on arbitrary input, exact round trips of generated lines, and
//! equivalence of parsing lines together (which reuses the previous line's series key) and
//! alone.

mod common;

use common::{Owned, Spec, cc_spec, escape_key, escape_measurement, escape_string, spec};
use proptest::prelude::*;
use std::borrow::Cow;
use strata_lineproto::{FieldValue, Limits, Parser, PlainValue};

/// Bytes that matter to the grammar, plus invalid UTF-8, so that random inputs often come
/// close to valid lines.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => prop::sample::select(b"abz019 ,=\\\"\n".to_vec()),
        1 => prop::sample::select(b"\r\t#.-+eEiutfTF".to_vec()),
        1 => prop::sample::select(vec![0x00, 0x7f, 0xc3, 0xa9, 0xff, 0xe2]),
    ]
}

fn arbitrary_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(interesting_byte(), 0..300),
        // A valid line with a few bytes overwritten.
        (
            spec(),
            prop::collection::vec((any::<prop::sample::Index>(), interesting_byte()), 0..4)
        )
            .prop_map(|(spec, edits)| {
                let mut bytes = spec.format().into_bytes();
                for (index, byte) in edits {
                    if !bytes.is_empty() {
                        let at = index.index(bytes.len());
                        bytes[at] = byte;
                    }
                }
                bytes
            }),
    ]
}

/// `spec` formatted, with one byte overwritten if `edit` says so (never by a newline: the
/// result is one line).
fn edited(spec: &Spec, edit: Option<(prop::sample::Index, u8)>) -> Vec<u8> {
    let mut bytes = spec.format().into_bytes();
    if let Some((index, byte)) = edit {
        let at = index.index(bytes.len());
        bytes[at] = if byte == b'\n' { b' ' } else { byte };
    }
    bytes
}

/// Collector lines (many of them plain), a few with a byte overwritten.
fn collector_body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            cc_spec(),
            prop::option::of((any::<prop::sample::Index>(), interesting_byte())),
        ),
        1..20,
    )
    .prop_map(|lines| {
        let lines: Vec<Vec<u8>> = lines
            .iter()
            .map(|(spec, edit)| edited(spec, *edit))
            .collect();
        lines.join(&b'\n')
    })
}

/// Whether `text` points into `input`.
fn borrows_from(input: &[u8], text: &str) -> bool {
    let start = input.as_ptr() as usize;
    let at = text.as_ptr() as usize;
    at >= start && at + text.len() <= start + input.len()
}

/// Checks that a token is a slice of the input, or (if owned) an unescaping of some part of
/// it: removing every backslash from both leaves a substring.
#[allow(clippy::ptr_arg)] // The variant matters, so the argument must stay a `Cow`.
fn assert_from_input(input: &[u8], token: &Cow<'_, str>) {
    match token {
        Cow::Borrowed(text) => assert!(borrows_from(input, text), "{text:?} not in input"),
        Cow::Owned(text) => {
            let strip = |bytes: &[u8]| -> Vec<u8> {
                bytes.iter().copied().filter(|&b| b != b'\\').collect()
            };
            let haystack = strip(input);
            let needle = strip(text.as_bytes());
            assert!(
                haystack.windows(needle.len().max(1)).any(|w| w == needle) || needle.is_empty(),
                "{text:?} is not an unescaping of the input"
            );
        }
    }
}

fn physical_lines(input: &[u8]) -> u64 {
    let newlines = input.iter().filter(|&&b| b == b'\n').count() as u64;
    newlines + u64::from(!input.is_empty() && !input.ends_with(b"\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic_and_tokens_come_from_the_input(input in arbitrary_input()) {
        // Goal: no input makes the parser panic or loop; every token of an accepted line is
        // a slice or an unescaping of the input; numbering is physical and increasing.
        let mut parser = Parser::new(&input, &Limits::default());
        let mut last_number = 0;
        let mut items = 0;
        for result in parser.by_ref() {
            items += 1;
            let number = match &result {
                Ok(line) => line.number,
                Err(error) => error.number,
            };
            prop_assert!(number > last_number);
            last_number = number;
            // Every error has a non-empty message.
            if let Err(error) = &result {
                prop_assert!(!error.to_string().is_empty());
                continue;
            }
            let Ok(line) = result else { continue };
            prop_assert!(!line.measurement.is_empty());
            assert_from_input(&input, &line.measurement);
            for (key, value) in line.tags() {
                prop_assert!(!key.is_empty() && !value.is_empty());
                assert_from_input(&input, &key);
                assert_from_input(&input, &value);
            }
            let mut fields = 0;
            for (key, value) in line.fields() {
                fields += 1;
                prop_assert!(!key.is_empty());
                assert_from_input(&input, &key);
                match value {
                    FieldValue::String(s) => assert_from_input(&input, &s),
                    FieldValue::Float(v) => prop_assert!(v.is_finite()),
                    _ => {}
                }
            }
            prop_assert!(fields >= 1);
        }
        prop_assert!(items as u64 <= physical_lines(&input));
        prop_assert_eq!(parser.lines_consumed(), physical_lines(&input));
        prop_assert!(last_number <= physical_lines(&input));
        prop_assert!(parser.next().is_none());
    }

    #[test]
    fn generated_lines_round_trip(
        specs in prop::collection::vec(spec(), 1..8),
        separators in prop::collection::vec(
            prop::sample::select(vec!["\n", "\r\n", "\n\n", "\n# comment\n", "\n \t \n"]),
            8,
        ),
        final_newline in any::<bool>(),
    ) {
        // Goal: a body of valid lines with names that need escaping, every value type,
        // optional timestamps and extra blanks parses back to exactly what was written, with
        // physical line numbers; tokens are borrowed exactly when nothing was escaped.
        let mut body = String::new();
        let mut expected = Vec::new();
        let mut number = 1;
        for (i, spec) in specs.iter().enumerate() {
            body.push_str(&spec.format());
            expected.push(spec.expected(number));
            if i + 1 < specs.len() || final_newline {
                let separator = separators[i];
                body.push_str(separator);
                number += separator.matches('\n').count() as u64;
            }
        }
        let parsed = common::parse_all(body.as_bytes());
        let parsed: Vec<Owned> = parsed
            .into_iter()
            .map(|r| r.map_err(|e| format!("{e} in {body:?}")))
            .collect::<Result<_, _>>()
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(&parsed, &expected);

        for (line, spec) in Parser::new(body.as_bytes(), &Limits::default()).zip(&specs) {
            let line = line.map_err(|e| TestCaseError::fail(e.to_string()))?;
            assert_borrowing(&line, spec);
        }
    }

    #[test]
    fn parsing_together_equals_parsing_alone(
        lines in prop::collection::vec(
            (cc_spec(), prop::option::of((any::<prop::sample::Index>(), interesting_byte()))),
            1..40,
        ),
    ) {
        // Goal: the reuse of the previous line's series key never changes a result: a body
        // of lines with shared prefixes (some corrupted) parses exactly as each line alone.
        let formatted: Vec<Vec<u8>> =
            lines.iter().map(|(spec, edit)| edited(spec, *edit)).collect();
        let body = formatted.join(&b'\n');
        let limits = Limits { tags_per_line_max: 3, ..Limits::default() };
        let together = common::parse_with(&body, &limits);
        let alone: Vec<_> = formatted
            .iter()
            .enumerate()
            .flat_map(|(i, line)| {
                Parser::with_first_line(line, &limits, i as u64 + 1)
                    .map(|r| r.map(|line| Owned::from(&line)))
                    .collect::<Vec<_>>()
            })
            .collect();
        prop_assert_eq!(together, alone);
    }

    #[test]
    fn a_plain_line_is_what_next_parses(
        input in prop_oneof![arbitrary_input(), collector_body()],
        cr in any::<bool>(),
    ) {
        // Goal: wherever `peek_plain` finds a plain line, `next` yields the same line (number,
        // `value` field, timestamp) with its series key before the first space, or an error
        // about the key alone; `take_plain` then leaves the parser where `next` does.
        let mut input = input;
        if cr {
            input.extend_from_slice(b"\r\nm,host=h value=1 2");
        }
        let limits = Limits { tags_per_line_max: 3, name_bytes_max: 8, ..Limits::default() };
        let mut parser = Parser::new(&input, &limits);
        loop {
            let plain = parser.peek_plain();
            let mut taker = parser.clone();
            let Some(item) = parser.next() else {
                prop_assert!(plain.is_none());
                break;
            };
            let Some(plain) = plain else { continue };
            prop_assert!(taker.take_plain(&plain));
            prop_assert_eq!(taker.position(), parser.position());
            prop_assert_eq!(taker.lines_consumed(), parser.lines_consumed());
            let Ok(line) = item else {
                // Only the series key, which `peek_plain` does not check, may be wrong.
                continue;
            };
            prop_assert_eq!(line.number, plain.number);
            prop_assert_eq!(line.timestamp, plain.timestamp);
            let fields: Vec<_> = line.fields().collect();
            let value = match plain.value {
                PlainValue::Float(v) => FieldValue::Float(v),
                PlainValue::Int(v) => FieldValue::Int(v),
                PlainValue::UInt(v) => FieldValue::UInt(v),
            };
            prop_assert_eq!(fields, vec![(Cow::Borrowed("value"), value)]);
            if plain.key.contains(&b'\\') {
                // The space may be escaped: such a key is not a whole series key.
                continue;
            }
            let key = std::str::from_utf8(plain.key).unwrap();
            prop_assert!(key.starts_with(line.measurement.as_ref()));
            let tags: Vec<String> = line.tags().map(|(k, v)| format!(",{k}={v}")).collect();
            prop_assert_eq!(format!("{}{}", line.measurement, tags.concat()), key);
        }
    }
}

/// Checks that each token of `line` is borrowed exactly when `spec` needed no escaping.
fn assert_borrowing(line: &strata_lineproto::Line<'_>, spec: &Spec) {
    let borrowed = |cow: &Cow<'_, str>| matches!(cow, Cow::Borrowed(_));
    assert_eq!(
        borrowed(&line.measurement),
        escape_measurement(&spec.measurement) == spec.measurement
    );
    for ((key, value), (spec_key, spec_value)) in line.tags().zip(&spec.tags) {
        assert_eq!(borrowed(&key), escape_key(spec_key) == *spec_key);
        assert_eq!(borrowed(&value), escape_key(spec_value) == *spec_value);
    }
    for ((key, value), (spec_key, written)) in line.fields().zip(&spec.fields) {
        assert_eq!(borrowed(&key), escape_key(spec_key) == *spec_key);
        if let (FieldValue::String(s), common::Written::String(text)) = (value, written) {
            assert_eq!(borrowed(&s), escape_string(text) == *text);
        }
    }
}

#[test]
fn collector_lines_are_plain_and_others_are_not() {
    // Goal: the fast path is taken for what collectors send, and not for lines whose series
    // key or tail differ from `SERIES value=NUMBER[ TIMESTAMP]`.
    let plain = [
        (
            "cpu_user,cluster=hpc1,hostname=n0000,type=hwthread,type-id=12 value=49.42 1795934400",
            PlainValue::Float(49.42),
            Some(1_795_934_400),
        ),
        ("m,host=h value=-3i", PlainValue::Int(-3), None),
        ("m,host=h value=3u  17  ", PlainValue::UInt(3), Some(17)),
        ("m,host=h value=.5 -1\r", PlainValue::Float(0.5), Some(-1)),
        // The key is not checked: `next` decides about it (and the line-key cache refuses
        // keys with `\` or `"`).
        ("m,=,, value=1", PlainValue::Float(1.0), None),
        ("m,host=\"h\" value=1", PlainValue::Float(1.0), None),
        ("m\\ value=1", PlainValue::Float(1.0), None),
    ];
    for (text, value, timestamp) in plain {
        let line = Parser::new(text.as_bytes(), &Limits::default()).peek_plain();
        let line = line.unwrap_or_else(|| panic!("{text:?} not plain"));
        assert_eq!((line.value, line.timestamp), (value, timestamp), "{text:?}");
        assert_eq!(line.key, text.split(' ').next().unwrap().as_bytes());
    }
    for text in [
        "",
        " m,host=h value=1",
        "# m,host=h value=1",
        "m,host=h\\ x value=1",
        "m,host=h  value=1",
        "m,host=h value=1,x=2",
        "m,host=h value=t",
        "m,host=h value=\"1\"",
        "m,host=h value=1e400",
        "m,host=h value=1 2 3",
        "m,host=h value=1 x",
        "m,host=h v=1",
        "m,host=h value=1\r\r",
        "m,host=h",
        "m,host=h\nvalue=1 value=1",
        "m value=1 2\r\r",
    ] {
        let line = Parser::new(text.as_bytes(), &Limits::default()).peek_plain();
        assert_eq!(line, None, "{text:?}");
    }
    let short = Limits {
        line_bytes_max: 10,
        ..Limits::default()
    };
    assert_eq!(
        Parser::new(b"m,h=h value=1\n", &short).peek_plain(),
        None,
        "too long"
    );
}
