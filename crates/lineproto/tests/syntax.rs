//! One test per syntax rule and per error kind, through the public API.
//!
//! Each test states the rule it checks. Expected values follow the crate docs; where the
//! crate deliberately differs from InfluxDB, the test names the deviation.

mod common;

use common::{Value, err, is_borrowed, ok, one_with, parse_all, parse_with, tags};
use std::borrow::Cow;
use strata_lineproto::{
    ErrorKind, FieldValue, LINE_BYTES_MAX, Limits, LineError, NAME_BYTES_MAX, Parser,
    TAGS_PER_LINE_MAX,
};

const WORKLOAD_LINE: &str =
    "cpu_user,cluster=hpc1,hostname=n0042,type=hwthread,type-id=12 value=45.3 1794873600";

// ---------------------------------------------------------------------------------------------
// Lines.

#[test]
fn workload_line() {
    // Goal: the shape the store ingests parses into its parts.
    let line = ok(WORKLOAD_LINE);
    assert_eq!(line.number, 1);
    assert_eq!(line.measurement, "cpu_user");
    assert_eq!(
        line.tags,
        tags(&[
            ("cluster", "hpc1"),
            ("hostname", "n0042"),
            ("type", "hwthread"),
            ("type-id", "12")
        ])
    );
    assert_eq!(line.fields, vec![("value".into(), Value::Float(45.3))]);
    assert_eq!(line.timestamp, Some(1_794_873_600));
}

#[test]
fn lines_end_at_lf_and_crlf() {
    // Goal: `\n` ends a line; a `\r` right before it is dropped.
    let results = parse_all(b"a v=1\nb v=2\r\nc v=3\r\n");
    let measurements: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().unwrap().measurement.clone())
        .collect();
    assert_eq!(measurements, ["a", "b", "c"]);
    assert_eq!(results[1].as_ref().unwrap().fields[0].1, Value::Float(2.0));
}

#[test]
fn last_line_may_lack_newline() {
    // Goal: the final line is parsed with or without a terminator, also with a lone `\r`.
    for input in ["m v=1", "m v=1\n", "m v=1\r\n", "m v=1\r"] {
        let results = parse_all(input.as_bytes());
        assert_eq!(results.len(), 1, "{input:?}");
        assert_eq!(results[0].as_ref().unwrap().fields[0].1, Value::Float(1.0));
    }
}

#[test]
fn carriage_return_inside_a_line_is_not_a_terminator() {
    // Goal: only a `\r` directly before `\n` (or at the end of input) is dropped.
    assert!(matches!(
        err("m v=1\r 5"),
        ErrorKind::InvalidFieldValue { .. }
    ));
    assert_eq!(
        err("m\rx v=1"),
        ErrorKind::InvalidCharacter {
            what: "measurement",
            byte: b'\r'
        }
    );
}

#[test]
fn blank_and_comment_lines_yield_nothing_but_count() {
    // Goal: blank lines (empty, spaces, tabs) and comments (first non-blank `#`) are skipped,
    // and still advance the line number.
    let input = b"\n   \n\t \t\n# comment\n  \t# indented comment\nm v=1\n\n";
    let results = parse_all(input);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].as_ref().unwrap().number, 6);
    let mut parser = Parser::new(input, &Limits::default());
    assert!(parser.next().is_some());
    assert!(parser.next().is_none());
    assert_eq!(parser.lines_consumed(), 7);
}

#[test]
fn empty_input_yields_nothing() {
    // Goal: no input, no lines; a lone newline is one (blank) line.
    let mut parser = Parser::new(b"", &Limits::default());
    assert!(parser.next().is_none());
    assert_eq!(parser.lines_consumed(), 0);
    let mut parser = Parser::new(b"\n", &Limits::default());
    assert!(parser.next().is_none());
    assert_eq!(parser.lines_consumed(), 1);
}

#[test]
fn errors_do_not_stop_iteration() {
    // Goal: a bad line yields an error for that line only; numbering stays physical.
    let results = parse_all(b"m v=1\nbad\nm v=2\n,x=y v=1\nm v=3");
    let summary: Vec<_> = results
        .iter()
        .map(|r| match r {
            Ok(line) => Ok(line.number),
            Err(error) => Err(error.number),
        })
        .collect();
    assert_eq!(summary, [Ok(1), Err(2), Ok(3), Err(4), Ok(5)]);
}

#[test]
fn with_first_line_continues_numbering_across_chunks() {
    // Goal: a body parsed in chunks numbers its lines as if parsed whole.
    let chunks: [&[u8]; 3] = [b"a v=1\n\n# c\n", b"bad\nb v=2\n", b"c v=3"];
    let mut first_line = 1;
    let mut numbers = Vec::new();
    for chunk in chunks {
        let mut parser = Parser::with_first_line(chunk, &Limits::default(), first_line);
        for result in parser.by_ref() {
            numbers.push(match result {
                Ok(line) => line.number,
                Err(error) => error.number,
            });
        }
        first_line += parser.lines_consumed();
    }
    assert_eq!(numbers, [1, 4, 5, 6]);
    assert_eq!(first_line, 7);
}

#[test]
fn lines_consumed_counts_as_iteration_proceeds() {
    // Goal: `lines_consumed` counts every physical line taken so far, including skipped ones.
    let mut parser = Parser::new(b"# c\na v=1\n\nb v=2\n", &Limits::default());
    assert_eq!(parser.lines_consumed(), 0);
    parser.next();
    assert_eq!(parser.lines_consumed(), 2);
    parser.next();
    assert_eq!(parser.lines_consumed(), 4);
    assert!(parser.next().is_none());
    assert_eq!(parser.lines_consumed(), 4);
}

#[test]
fn line_numbers_saturate() {
    // Goal: numbering from u64::MAX does not overflow (no panic in debug builds).
    let mut parser = Parser::with_first_line(b"a v=1\nb v=1\n", &Limits::default(), u64::MAX);
    assert_eq!(parser.next().unwrap().unwrap().number, u64::MAX);
    assert_eq!(parser.next().unwrap().unwrap().number, u64::MAX);
}

#[test]
fn newline_always_ends_a_line() {
    // Goal (deviation 1): a newline inside a quoted string or after a backslash still ends
    // the line; the string is then unterminated and the rest is a line of its own.
    let results = parse_all(b"m s=\"a\nb\" 1\nm v=1");
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0].as_ref().unwrap_err().kind,
        ErrorKind::UnterminatedString { key: "s".into() }
    );
    assert!(results[1].is_err());
    assert!(results[2].is_ok());
    let results = parse_all(b"m\\\nx v=1");
    assert_eq!(results.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Whitespace.

#[test]
fn leading_blanks_are_skipped() {
    // Goal: spaces and tabs before the measurement are ignored.
    assert_eq!(ok(" \t m v=1").measurement, "m");
}

#[test]
fn sections_are_separated_by_one_or_more_spaces() {
    // Goal: multiple spaces between sections are fine, as in InfluxDB.
    let line = ok("m,t=1   v=1    123");
    assert_eq!(line.timestamp, Some(123));
    assert_eq!(line.tags, tags(&[("t", "1")]));
}

#[test]
fn trailing_spaces_are_allowed() {
    // Goal: spaces after the timestamp, and (deviation 3) after the field set, are fine.
    assert_eq!(ok("m v=1 123  ").timestamp, Some(123));
    assert_eq!(ok("m v=1  ").timestamp, None);
}

#[test]
fn tab_is_not_a_separator() {
    // Goal: a tab between sections is an error, not whitespace.
    assert_eq!(
        err("m\tv=1"),
        ErrorKind::InvalidCharacter {
            what: "measurement",
            byte: b'\t'
        }
    );
    assert!(matches!(
        err("m v=1\t123"),
        ErrorKind::InvalidFieldValue { .. }
    ));
    assert!(matches!(
        err("m v=1 123\t"),
        ErrorKind::InvalidTimestamp { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Measurement.

#[test]
fn measurement_escapes() {
    // Goal: `\,` `\ ` `\\` are escapes; `\=` and other backslashes are literal; `=` is
    // ordinary.
    assert_eq!(ok(r"a\,b\ c v=1").measurement, "a,b c");
    assert_eq!(ok(r"a\\b v=1").measurement, r"a\b");
    assert_eq!(ok(r"a\=b v=1").measurement, r"a\=b");
    assert_eq!(ok(r"a\qb v=1").measurement, r"a\qb");
    assert_eq!(ok(r"tag1=1 v=1").measurement, "tag1=1");
    assert_eq!(ok(r"\ lead v=1").measurement, " lead");
}

#[test]
fn measurement_may_contain_utf8_and_quotes() {
    // Goal: any printable UTF-8 is fine in names.
    assert_eq!(ok("température\"°C\" v=1").measurement, "température\"°C\"");
}

#[test]
fn missing_measurement() {
    // Goal: a line starting with `,` has no measurement.
    assert_eq!(err(",t=1 v=1"), ErrorKind::MissingMeasurement);
    assert_eq!(err("  ,t=1 v=1"), ErrorKind::MissingMeasurement);
}

#[test]
fn measurement_alone_is_missing_fields() {
    // Goal: a measurement needs a space and at least one field.
    assert_eq!(err("cpu"), ErrorKind::MissingFields);
    assert_eq!(err("cpu   "), ErrorKind::MissingFields);
    assert_eq!(err(r"cpu\ v=1"), ErrorKind::MissingFields);
}

#[test]
fn name_ends_with_backslash() {
    // Goal: a name that ends with a backslash after unescaping is rejected, as in InfluxDB.
    assert_eq!(
        err(r"cpu\\ v=1"),
        ErrorKind::NameEndsWithBackslash {
            what: "measurement"
        }
    );
    assert_eq!(
        err(r"cpu\"),
        ErrorKind::NameEndsWithBackslash {
            what: "measurement"
        }
    );
    assert_eq!(
        err(r"m,k\\=v v=1"),
        ErrorKind::NameEndsWithBackslash { what: "tag key" }
    );
    assert_eq!(
        err(r"m,k=v\\ v=1"),
        ErrorKind::NameEndsWithBackslash { what: "tag value" }
    );
    assert_eq!(
        err(r"m k\\=1"),
        ErrorKind::NameEndsWithBackslash { what: "field key" }
    );
    // A backslash inside a name is fine.
    assert_eq!(ok(r"c\\u v=1").measurement, r"c\u");
}

#[test]
fn control_characters_in_names_are_rejected() {
    // Goal (deviation 7): ASCII controls, escaped or not, are errors in every kind of name.
    let cases = [
        ("c\x01pu v=1", "measurement", 0x01),
        ("c\\\x00pu v=1", "measurement", 0x00),
        ("m,k\x7f=v v=1", "tag key", 0x7f),
        ("m,k=v\x1b v=1", "tag value", 0x1b),
        ("m k\t=1", "field key", b'\t'),
    ];
    for (input, what, byte) in cases {
        assert_eq!(
            err(input),
            ErrorKind::InvalidCharacter { what, byte },
            "{input:?}"
        );
    }
    // Control characters are fine inside strings.
    assert_eq!(
        ok("m s=\"a\tb\x01\"").fields[0].1,
        Value::String("a\tb\x01".into())
    );
}

#[test]
fn invalid_utf8_fails_only_its_line() {
    // Goal (deviation 8): invalid UTF-8 is an error for the line that holds it, naming the
    // part of the line.
    let cases: [(&[u8], ErrorKind); 5] = [
        (
            b"c\xffpu v=1",
            ErrorKind::InvalidUtf8 {
                what: "measurement",
            },
        ),
        (b"m,\xc3=v v=1", ErrorKind::InvalidUtf8 { what: "tag key" }),
        (
            b"m,k=\xe2\x82 v=1",
            ErrorKind::InvalidUtf8 { what: "tag value" },
        ),
        (b"m k\xf0=1", ErrorKind::InvalidUtf8 { what: "field key" }),
        (
            b"m s=\"\xff\"",
            ErrorKind::InvalidUtf8 {
                what: "string field value",
            },
        ),
    ];
    for (input, kind) in cases {
        let mut body = b"a v=1\n".to_vec();
        body.extend_from_slice(input);
        body.extend_from_slice(b"\nb v=2\n");
        let results = parse_all(&body);
        assert_eq!(results.len(), 3, "{input:?}");
        assert!(results[0].is_ok());
        assert_eq!(results[1].as_ref().unwrap_err().kind, kind, "{input:?}");
        assert_eq!(results[2].as_ref().unwrap().measurement, "b");
    }
    // Invalid bytes in a number are an invalid value, echoed lossily.
    assert_eq!(
        parse_all(b"m v=1\xff")[0].as_ref().unwrap_err().kind,
        ErrorKind::InvalidFieldValue {
            key: "v".into(),
            value: "1\u{fffd}".into()
        }
    );
    // Invalid bytes in a comment are harmless.
    assert!(parse_all(b"# \xff\nm v=1")[0].is_ok());
}

// ---------------------------------------------------------------------------------------------
// Tags.

#[test]
fn tags_in_line_order() {
    // Goal: tags are yielded in line order, unsorted, duplicates included.
    let line = ok("m,z=1,a=2,z=3 v=1");
    assert_eq!(line.tags, tags(&[("z", "1"), ("a", "2"), ("z", "3")]));
}

#[test]
fn tag_escapes() {
    // Goal: `\,` `\=` `\ ` `\\` are escapes in keys and values; other backslashes are
    // literal; `=` is ordinary in a value.
    let line = ok(r"m,k\,e\=y\ \\k=v\,a\=l\ \\u,x=a=b,p=q\r v=1");
    assert_eq!(
        line.tags,
        tags(&[(r"k,e=y \k", r"v,a=l \u"), ("x", "a=b"), ("p", r"q\r")])
    );
}

#[test]
fn missing_tag_key() {
    // Goal: a comma must be followed by a tag key.
    assert_eq!(err("m, v=1"), ErrorKind::MissingTagKey);
    assert_eq!(err("m,=x v=1"), ErrorKind::MissingTagKey);
    assert_eq!(err("m,a=b,,c=d v=1"), ErrorKind::MissingTagKey);
    assert_eq!(err("m,a=b, v=1"), ErrorKind::MissingTagKey);
    assert_eq!(err("m,"), ErrorKind::MissingTagKey);
}

#[test]
fn missing_tag_value() {
    // Goal: a tag key needs `=` and a non-empty value.
    let missing = |key: &str| ErrorKind::MissingTagValue { key: key.into() };
    assert_eq!(err("m,host v=1"), missing("host"));
    assert_eq!(err("m,host= v=1"), missing("host"));
    assert_eq!(err("m,host=,a=b v=1"), missing("host"));
    assert_eq!(err("m,host"), missing("host"));
    // Deviation 6: an unescaped comma inside a tag key ends it.
    assert_eq!(err("m,a=1,b,c=2 v=1"), missing("b"));
    // The key in the message is unescaped.
    assert_eq!(err(r"m,a\ b v=1"), missing("a b"));
}

#[test]
fn tags_without_fields() {
    // Goal: a tag set must be followed by a space and fields.
    assert_eq!(err("m,a=b"), ErrorKind::MissingFields);
    assert_eq!(err("m,a=b "), ErrorKind::MissingFields);
}

#[test]
fn many_tags_iterate_past_the_index() {
    // Goal: lines with more tags than the internal index (8) still yield all of them.
    let pairs: Vec<(String, String)> = (0..20)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let tag_set: String = pairs.iter().map(|(k, v)| format!(",{k}={v}")).collect();
    let line = ok(&format!("m{tag_set} v=1"));
    assert_eq!(line.tags, pairs);
}

#[test]
fn long_tags_iterate_past_the_index() {
    // Goal: names longer than 255 bytes (beyond the index's u8 lengths) are yielded whole.
    let long = "x".repeat(300);
    let limits = Limits {
        name_bytes_max: 1000,
        ..Limits::default()
    };
    let line = one_with(&format!("m,a=1,{long}={long},b\\ c=2 v=1"), &limits).unwrap();
    assert_eq!(line.tags, tags(&[("a", "1"), (&long, &long), ("b c", "2")]));
}

#[test]
fn too_many_tags() {
    // Goal: more than `tags_per_line_max` tags is an error; exactly the maximum is fine.
    let limits = Limits {
        tags_per_line_max: 3,
        ..Limits::default()
    };
    assert!(one_with("m,a=1,b=2,c=3 v=1", &limits).is_ok());
    assert_eq!(
        one_with("m,a=1,b=2,c=3,d=4 v=1", &limits),
        Err(ErrorKind::TooManyTags { max: 3 })
    );
    let limits = Limits {
        tags_per_line_max: 0,
        ..Limits::default()
    };
    assert!(one_with("m v=1", &limits).is_ok());
    assert_eq!(
        one_with("m,a=1 v=1", &limits),
        Err(ErrorKind::TooManyTags { max: 0 })
    );
    // The default allows 64.
    let tag_set: String = (0..TAGS_PER_LINE_MAX).map(|i| format!(",k{i}=v")).collect();
    assert!(one_with(&format!("m{tag_set} v=1"), &Limits::default()).is_ok());
    assert_eq!(
        one_with(&format!("m{tag_set},x=y v=1"), &Limits::default()),
        Err(ErrorKind::TooManyTags {
            max: TAGS_PER_LINE_MAX
        })
    );
}

#[test]
fn too_many_tags_also_when_repeating_the_previous_line() {
    // Goal: the tag limit holds for tags taken over from the previous line (see SeriesMemo).
    let limits = Limits {
        tags_per_line_max: 2,
        ..Limits::default()
    };
    let results = parse_with(b"m,a=1,b=2 v=1\nm,a=1,b=2,c=3 v=1\nm,a=1,b=2 v=2", &limits);
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap_err().kind,
        ErrorKind::TooManyTags { max: 2 }
    );
    assert!(results[2].is_ok());
}

// ---------------------------------------------------------------------------------------------
// Fields.

#[test]
fn field_value_types() {
    // Goal: every value type and spelling.
    let line = ok(r#"m f=1.5,i=-12i,u=12u,t=t,T=TRUE,f2=False,s="x y""#);
    assert_eq!(
        line.fields,
        vec![
            ("f".into(), Value::Float(1.5)),
            ("i".into(), Value::Int(-12)),
            ("u".into(), Value::UInt(12)),
            ("t".into(), Value::Bool(true)),
            ("T".into(), Value::Bool(true)),
            ("f2".into(), Value::Bool(false)),
            ("s".into(), Value::String("x y".into())),
        ]
    );
}

#[test]
fn float_forms() {
    // Goal: InfluxDB's float grammar, plus `.5`, `1.` and `1.e5` (deviation 4).
    for (text, expected) in [
        ("1", 1.0),
        ("-1", -1.0),
        ("1.5", 1.5),
        ("-1.5", -1.5),
        ("1e3", 1e3),
        ("1E3", 1e3),
        ("1.5e-3", 1.5e-3),
        ("1.5E+3", 1.5e3),
        ("-1.234456e+06", -1.234456e6),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1.", 1.0),
        ("1.e5", 1e5),
        ("0000.5000", 0.5),
        ("1e-400", 0.0),
        ("123.456", 123.456),
    ] {
        let line = ok(&format!("m v={text}"));
        assert_eq!(line.fields[0].1, Value::Float(expected), "{text}");
    }
    assert_eq!(ok("m v=-0").fields[0].1, Value::Float(-0.0));
    // Long inputs take the slow path and still round exactly.
    let max = format!("{}", f64::MAX);
    assert_eq!(max.len(), 309);
    assert_eq!(
        ok(&format!("m v={max}")).fields[0].1,
        Value::Float(f64::MAX)
    );
}

#[test]
fn invalid_field_values() {
    // Goal: anything outside the grammar, NaN, infinities and out-of-range numbers are
    // rejected with the key and the value as written (deviation 5: overflow to infinity).
    for value in [
        "abc",
        "1.2.3",
        "1e",
        "1e+",
        "-",
        ".",
        "-.",
        "+1",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        "1e400",
        "-1e309",
        "0x10",
        "1_000",
        "1,5",
        "tru",
        "FALSEE",
        "yes",
        "9223372036854775808i",
        "-9223372036854775809i",
        "18446744073709551616u",
        "-1u",
        "1.5i",
        "1e3i",
        "1ii",
        "1.5u",
        "i",
        "u",
        "\"a\"b",
    ] {
        let input = format!("m v={value} 5");
        let expected_value = value.split(',').next().unwrap_or_default();
        let kind = err(&input);
        match &kind {
            ErrorKind::InvalidFieldValue { key, value: echoed } => {
                assert_eq!(key, "v", "{input}");
                if value != "1,5" {
                    assert_eq!(echoed, expected_value, "{input}");
                }
            }
            // `1,5` splits into field `v=1` and a field `5` without value.
            ErrorKind::MissingFieldValue { key } if value == "1,5" => assert_eq!(key, "5"),
            other => panic!("{input}: unexpected {other:?}"),
        }
    }
}

#[test]
fn integer_bounds() {
    // Goal: the i64 and u64 extremes are accepted.
    let line =
        ok("m a=9223372036854775807i,b=-9223372036854775808i,c=18446744073709551615u,d=0u,e=-0i");
    let values: Vec<_> = line.fields.into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        values,
        [
            Value::Int(i64::MAX),
            Value::Int(i64::MIN),
            Value::UInt(u64::MAX),
            Value::UInt(0),
            Value::Int(0)
        ]
    );
}

#[test]
fn string_values() {
    // Goal: strings keep spaces, commas and `=`; `\"` and `\\` are escapes; other
    // backslashes are literal; the empty string is fine.
    for (written, expected) in [
        (r#""""#, ""),
        (r#""a b,c=d""#, "a b,c=d"),
        (r#""say \"hi\"""#, r#"say "hi""#),
        (r#""back\\slash""#, r"back\slash"),
        (r#""lit\eral""#, r"lit\eral"),
        (r#""ends\\""#, r"ends\"),
        (r#""日本""#, "日本"),
    ] {
        let line = ok(&format!("m s={written},n=1i 7"));
        assert_eq!(
            line.fields[0].1,
            Value::String(expected.into()),
            "{written}"
        );
        assert_eq!(line.fields[1].1, Value::Int(7 - 6));
        assert_eq!(line.timestamp, Some(7));
    }
}

#[test]
fn unterminated_string() {
    // Goal: a string without closing quote is an error naming the field.
    let unterminated = ErrorKind::UnterminatedString { key: "s".into() };
    assert_eq!(err(r#"m s="abc"#), unterminated);
    assert_eq!(err(r#"m s="abc\""#), unterminated);
    assert_eq!(err(r#"m v=1,s="abc 123"#), unterminated);
}

#[test]
fn missing_field_key() {
    // Goal: a field needs a key.
    assert_eq!(err("m =1"), ErrorKind::MissingFieldKey);
    assert_eq!(err("m v=1,"), ErrorKind::MissingFieldKey);
    assert_eq!(err("m v=1,,w=2"), ErrorKind::MissingFieldKey);
    assert_eq!(err("m v=1, w=2"), ErrorKind::MissingFieldKey);
}

#[test]
fn missing_field_value() {
    // Goal: a field key needs `=` and a value.
    let missing = |key: &str| ErrorKind::MissingFieldValue { key: key.into() };
    assert_eq!(err("m v"), missing("v"));
    assert_eq!(err("m v="), missing("v"));
    assert_eq!(err("m v= 1"), missing("v"));
    assert_eq!(err("m v=,w=1"), missing("v"));
    assert_eq!(err("m v 123"), missing("v"));
    // Deviation 6: an unescaped comma inside a field key ends it.
    assert_eq!(err("m a,b=1"), missing("a"));
}

#[test]
fn field_key_escapes() {
    // Goal: field keys use the same escapes as tag keys.
    let line = ok(r"m f\,i\=e\ l\\d=1,\q=2");
    let keys: Vec<_> = line.fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, [r"f,i=e l\d", r"\q"]);
}

#[test]
fn duplicate_fields_are_yielded() {
    // Goal: duplicate field keys are not detected; both are yielded in order.
    let line = ok("m v=1,v=2");
    assert_eq!(line.fields.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Timestamp.

#[test]
fn timestamps() {
    // Goal: an optional signed 64-bit integer, taken as written.
    assert_eq!(ok("m v=1").timestamp, None);
    assert_eq!(ok("m v=1 0").timestamp, Some(0));
    assert_eq!(ok("m v=1 -0").timestamp, Some(0));
    assert_eq!(ok("m v=1 -123").timestamp, Some(-123));
    assert_eq!(ok("m v=1 007").timestamp, Some(7));
    assert_eq!(ok("m v=1 -00000000000000000000000042").timestamp, Some(-42));
    assert_eq!(ok("m v=1 1794873600").timestamp, Some(1_794_873_600));
    assert_eq!(
        ok("m v=1 1794873600123456789").timestamp,
        Some(1_794_873_600_123_456_789)
    );
    assert_eq!(ok("m v=1 9223372036854775807").timestamp, Some(i64::MAX));
    assert_eq!(ok("m v=1 -9223372036854775808").timestamp, Some(i64::MIN));
}

#[test]
fn invalid_timestamps() {
    // Goal: non-digits, overflow and a bare sign are errors echoing the timestamp.
    for text in [
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999999999",
        "-",
        "+5",
        "12a",
        "1.5",
        "0x10",
        "--1",
        "1e9",
    ] {
        assert_eq!(
            err(&format!("m v=1 {text}")),
            ErrorKind::InvalidTimestamp { text: text.into() },
            "{text}"
        );
    }
}

#[test]
fn trailing_garbage() {
    // Goal: only spaces may follow the timestamp.
    assert_eq!(
        err("m v=1 123 456"),
        ErrorKind::TrailingGarbage { text: "456".into() }
    );
    assert_eq!(
        err("m v=1 123  x y "),
        ErrorKind::TrailingGarbage {
            text: "x y ".into()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Limits.

#[test]
fn line_too_long() {
    // Goal: the length limit counts bytes without the terminator; exactly the limit is fine;
    // the next line is unaffected; comments are skipped whatever their length.
    let limits = Limits {
        line_bytes_max: 10,
        ..Limits::default()
    };
    let exact = "m v=123456"; // 10 bytes.
    assert_eq!(exact.len(), 10);
    let body = format!("{exact}\r\n{exact}7\n# a comment longer than ten bytes\n{exact}");
    let results = parse_with(body.as_bytes(), &limits);
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap_err(),
        &LineError {
            number: 2,
            kind: ErrorKind::LineTooLong { bytes: 11, max: 10 }
        }
    );
    assert_eq!(results[2].as_ref().unwrap().number, 4);
    assert_eq!(Limits::default().line_bytes_max, LINE_BYTES_MAX);
    let long = format!("m v=1 {}", "1".repeat(LINE_BYTES_MAX));
    assert!(matches!(
        one_with(&long, &Limits::default()),
        Err(ErrorKind::LineTooLong { .. })
    ));
}

#[test]
fn name_too_long() {
    // Goal: each kind of name is limited after unescaping; exactly the limit is fine.
    let limits = Limits {
        name_bytes_max: 4,
        ..Limits::default()
    };
    assert!(one_with("abcd,abcd=abcd abcd=1", &limits).is_ok());
    // Escapes do not count: `a\ b\,` is 4 bytes unescaped.
    assert!(one_with(r"a\ b\,,k=v v=1", &limits).is_ok());
    let too_long = |what, bytes| {
        Err(ErrorKind::NameTooLong {
            what,
            bytes,
            max: 4,
        })
    };
    assert_eq!(one_with("abcde v=1", &limits), too_long("measurement", 5));
    assert_eq!(one_with("m,abcde=v v=1", &limits), too_long("tag key", 5));
    assert_eq!(one_with("m,k=abcdé v=1", &limits), too_long("tag value", 6));
    assert_eq!(one_with("m abcde=1", &limits), too_long("field key", 5));
    // String values are not names.
    assert!(one_with("m s=\"abcdefgh\"", &limits).is_ok());
    assert_eq!(Limits::default().name_bytes_max, NAME_BYTES_MAX);
}

// ---------------------------------------------------------------------------------------------
// Borrowing and errors.

#[test]
fn unescaped_tokens_are_borrowed() {
    // Goal: no allocation on the unescaped path; escaped tokens are owned.
    let input = "cpu,host=a s=\"x\",v=1 5";
    let mut parser = Parser::new(input.as_bytes(), &Limits::default());
    let line = parser.next().unwrap().unwrap();
    assert!(is_borrowed(&line.measurement));
    for (key, value) in line.tags() {
        assert!(is_borrowed(&key) && is_borrowed(&value));
    }
    for (key, value) in line.fields() {
        assert!(is_borrowed(&key));
        if let FieldValue::String(s) = value {
            assert!(is_borrowed(&s));
        }
    }

    let input = r#"c\ pu,h\,ost=a\ b s\=x="\"x\"",v=1"#;
    let mut parser = Parser::new(input.as_bytes(), &Limits::default());
    let line = parser.next().unwrap().unwrap();
    assert!(matches!(line.measurement, Cow::Owned(_)));
    let (key, value) = line.tags().next().unwrap();
    assert!(matches!((key, value), (Cow::Owned(_), Cow::Owned(_))));
    let mut fields = line.fields();
    let (key, value) = fields.next().unwrap();
    assert!(matches!(key, Cow::Owned(_)));
    assert!(matches!(value, FieldValue::String(Cow::Owned(_))));
    assert!(matches!(fields.next(), Some((Cow::Borrowed("v"), _))));
    assert!(fields.next().is_none());
}

#[test]
fn iterators_restart_and_fuse() {
    // Goal: `tags()` and `fields()` can be called repeatedly and end for good.
    let mut parser = Parser::new(WORKLOAD_LINE.as_bytes(), &Limits::default());
    let line = parser.next().unwrap().unwrap();
    assert_eq!(line.tags().count(), 4);
    assert_eq!(line.tags().count(), 4);
    let mut fields = line.fields();
    assert!(fields.next().is_some());
    assert!(fields.next().is_none());
    assert!(fields.next().is_none());
    let line2 = line.clone();
    assert_eq!(line2, line);
}

#[test]
fn error_messages() {
    // Goal: every error kind has a short human-readable reason; LineError adds the number.
    let cases = [
        (
            ErrorKind::LineTooLong { bytes: 9, max: 8 },
            "line is too long: 9 bytes (max 8)",
        ),
        (ErrorKind::TooManyTags { max: 64 }, "too many tags (max 64)"),
        (
            ErrorKind::NameTooLong {
                what: "tag key",
                bytes: 300,
                max: 256,
            },
            "tag key is too long: 300 bytes (max 256)",
        ),
        (ErrorKind::MissingMeasurement, "missing measurement"),
        (ErrorKind::MissingTagKey, "missing tag key"),
        (
            ErrorKind::MissingTagValue { key: "host".into() },
            "missing value for tag 'host'",
        ),
        (ErrorKind::MissingFields, "missing fields"),
        (ErrorKind::MissingFieldKey, "missing field key"),
        (
            ErrorKind::MissingFieldValue { key: "v".into() },
            "missing value for field 'v'",
        ),
        (
            ErrorKind::InvalidFieldValue {
                key: "value".into(),
                value: "abc".into(),
            },
            "invalid value for field 'value': \"abc\"",
        ),
        (
            ErrorKind::UnterminatedString { key: "s".into() },
            "unterminated string value for field 's'",
        ),
        (
            ErrorKind::InvalidTimestamp { text: "12a".into() },
            "invalid timestamp: \"12a\"",
        ),
        (
            ErrorKind::TrailingGarbage { text: "x".into() },
            "unexpected text after timestamp: \"x\"",
        ),
        (
            ErrorKind::InvalidUtf8 { what: "tag value" },
            "tag value is not valid UTF-8",
        ),
        (
            ErrorKind::InvalidCharacter {
                what: "measurement",
                byte: 9,
            },
            "measurement contains control character 0x09",
        ),
        (
            ErrorKind::NameEndsWithBackslash { what: "field key" },
            "field key ends with a backslash",
        ),
    ];
    for (kind, message) in cases {
        assert_eq!(kind.to_string(), message);
        let error = LineError { number: 7, kind };
        assert_eq!(error.to_string(), format!("line 7: {message}"));
    }
    let error: Box<dyn std::error::Error> = Box::new(LineError {
        number: 1,
        kind: ErrorKind::MissingFields,
    });
    assert_eq!(error.to_string(), "line 1: missing fields");
}

#[test]
fn echoed_input_is_capped() {
    // Goal: an error never echoes more than ECHO_BYTES_MAX bytes of input.
    let value = "x".repeat(1000);
    match err(&format!("m v={value}")) {
        ErrorKind::InvalidFieldValue { value, .. } => {
            assert!(value.len() <= strata_lineproto::ECHO_BYTES_MAX + '…'.len_utf8());
            assert!(value.ends_with('…'));
        }
        other => panic!("unexpected {other:?}"),
    }
    match err(&format!("m v=1 1 {value}")) {
        ErrorKind::TrailingGarbage { text } => assert!(text.len() < 100),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn repeated_prefixes_parse_like_fresh_lines() {
    // Goal: lines that repeat the previous line's measurement, tags or first field key (which
    // the parser takes over instead of re-scanning) give the same result as on their own.
    let body = "\
cpu,a=1,b=2,c=3 v=1 1
cpu,a=1,b=2,c=4 v=2 2
cpu,a=1,b=2,c=4 v=3 3
cpu,a=1,b=2 v=4 4
cpu,a=1,b=2,c=3,d=5 v=5 5
mem,a=1,b=2,c=3 v=6 6
mem,a=1,b=2,c=3\\ x v=7 7
mem,a=1,b=2,c=3\\,x v=8 8
mem,a=1,b=2,c=3 w=9 9
mem,a=1,b=2,c=3 v=bad 10
mem,a=1,b=2,c=3 v=11 11
mem,a=1,b=2,c=3x v=12 12
mem,a=1,b=2,c v=13 13
mem,a=1,b=2,c=3 v=14 14
mem v=15 15
mem,a=1 value=16 16
mem,a=1 value=17,x=1 17
cpu\\ x,a=1 value=18
cpu\\ x,a=1 value=19
cpu v=20
cpu v=21
";
    // Tag sets the index cannot hold whole: more than 8 tags, and a tag longer than 255
    // bytes; the following lines take over part of them.
    let long = "x".repeat(256);
    let body = format!(
        "{body}\
t,a=1,b=1,c=1,d=1,e=1,f=1,g=1,h=1,i=1,j=1 v=22
t,a=1,b=1,c=1,d=1,e=1,f=1,g=1,h=1,i=1,j=2 v=23
t,a=1,b=1,c=2,d=1,e=1,f=1,g=1,h=1,i=1,j=2 v=24
t,a=1,b=1,c=2 v=25
t,k=1,l={long},m=1 v=26
t,k=1,l={long},m=2 v=27
t,k=1,l=y,m=2 v=28
t,k=1,l={long},m=2 v=29"
    );
    let together = parse_all(body.as_bytes());
    let alone: Vec<_> = body
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let mut parser =
                Parser::with_first_line(line.as_bytes(), &Limits::default(), i as u64 + 1);
            parser
                .next()
                .unwrap()
                .map(|line| common::Owned::from(&line))
        })
        .collect();
    assert_eq!(together, alone);
    assert_eq!(together.iter().filter(|r| r.is_err()).count(), 2);
}
