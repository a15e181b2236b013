//! Differential tests against the `influxdb_line_protocol` crate (InfluxDB IOx/3.x), our
//! behavioural reference.
//!
//! Method: generate valid lines and slightly mutated ones, parse each with both parsers, and
//! require the same accept/reject decision and, when both accept, the same tokens and values
//! (floats bit for bit). A disagreement must be explained by one of the deviations documented
//! in the crate docs, which `deviation` recognises; anything else fails the test.
//!
//! Lines are compared one at a time: the reference joins lines inside what it believes is a
//! quoted string (deviation 1), which would misalign whole bodies.

mod common;

use common::{Owned, Value, spec};
use influxdb_line_protocol::{FieldValue as RefValue, parse_lines};
use proptest::prelude::*;

/// The reference's view of `line`, without line numbers.
fn reference(line: &str) -> Vec<Result<Owned, String>> {
    parse_lines(line)
        .map(|result| {
            result
                .map(|parsed| Owned {
                    number: 0,
                    measurement: parsed.series.measurement.to_string(),
                    tags: parsed
                        .series
                        .tag_set
                        .map(|tags| {
                            tags.iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    fields: parsed
                        .field_set
                        .iter()
                        .map(|(k, v)| {
                            let value = match v {
                                RefValue::I64(v) => Value::Int(*v),
                                RefValue::U64(v) => Value::UInt(*v),
                                RefValue::F64(v) => Value::Float(*v),
                                RefValue::Boolean(v) => Value::Bool(*v),
                                RefValue::String(v) => Value::String(v.to_string()),
                            };
                            (k.to_string(), value)
                        })
                        .collect(),
                    timestamp: parsed.timestamp,
                })
                .map_err(|error| error.to_string())
        })
        .collect()
}

/// Our view of `line`, without line numbers.
fn ours(line: &str) -> Vec<Result<Owned, String>> {
    common::parse_all(line.as_bytes())
        .into_iter()
        .map(|result| {
            result
                .map(|line| Owned { number: 0, ..line })
                .map_err(|error| error.to_string())
        })
        .collect()
}

/// Which documented deviation explains why we decided `ours` and the reference `theirs`.
fn deviation(
    line: &str,
    ours: &Result<Owned, String>,
    theirs: &Result<Owned, String>,
) -> Option<&'static str> {
    match (ours, theirs) {
        (Ok(accepted), Err(_)) => {
            // 3: trailing spaces after the field set.
            let trimmed = line.trim_end_matches(' ');
            if trimmed.len() < line.len() && reference(trimmed) == [Ok(accepted.clone())] {
                return Some("trailing spaces");
            }
            // 4: `.5`, `1.`, `1.e5`. Generated names and strings hold no `.`, so a `.` next
            // to a non-digit belongs to such a float.
            let bytes = line.as_bytes();
            let loose_point = bytes.iter().enumerate().any(|(i, &b)| {
                b == b'.'
                    && !(i > 0
                        && bytes[i - 1].is_ascii_digit()
                        && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
            });
            loose_point.then_some("float without digits on both sides of the point")
        }
        (Err(_), Ok(accepted)) => {
            // 9: a comma after the last field, which the reference drops.
            let bytes = line.as_bytes();
            let dangling_comma = (0..bytes.len()).any(|i| {
                bytes[i] == b',' && matches!(bytes.get(i + 1), None | Some(b' ')) && {
                    let without = format!("{}{}", &line[..i], &line[i + 1..]);
                    common::parse_all(without.as_bytes())
                        .into_iter()
                        .map(|r| r.map(|line| Owned { number: 0, ..line }).ok())
                        .eq([Some(accepted.clone())])
                }
            });
            if dangling_comma {
                return Some("trailing comma after the fields");
            }
            // 5: floats that overflow to infinity.
            let infinite = accepted
                .fields
                .iter()
                .any(|(_, v)| matches!(v, Value::Float(f) if !f.is_finite()));
            if infinite {
                return Some("float overflow");
            }
            // 6: an unescaped comma inside a key.
            let comma_key = accepted.tags.iter().any(|(k, _)| k.contains(','))
                || accepted.fields.iter().any(|(k, _)| k.contains(','));
            comma_key.then_some("comma in key")
        }
        _ => None,
    }
}

/// Compares both parsers on `line`; panics on an unexplained difference. Returns the
/// deviation that explained a difference, if any.
fn compare(line: &str) -> Option<&'static str> {
    let ours = ours(line);
    let theirs = reference(line);
    assert_eq!(
        ours.len(),
        theirs.len(),
        "{line:?}: we yield {ours:?}, the reference {theirs:?}"
    );
    let mut explained = None;
    for (ours, theirs) in ours.iter().zip(&theirs) {
        match (ours, theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{line:?}: values differ"),
            (Err(_), Err(_)) => {}
            _ => match deviation(line, ours, theirs) {
                Some(reason) => explained = Some(reason),
                None => panic!("{line:?}: we say {ours:?}, the reference {theirs:?}"),
            },
        }
    }
    explained
}

/// Characters a mutation inserts: the grammar's delimiters and value characters, letters,
/// digits and multi-byte UTF-8. Not tabs, CR, LF or other controls (deviations 1, 2 and 7
/// are tested in `syntax.rs`).
fn mutation_char() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        ' ', ',', '=', '\\', '"', '#', '.', '-', '+', 'e', 'E', 'i', 'u', 't', 'f', 'T', 'F', 'N',
        'a', 'z', '0', '1', '9', 'é',
    ])
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(prop::sample::Index, char),
    Delete(prop::sample::Index),
    Replace(prop::sample::Index, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), mutation_char()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<prop::sample::Index>().prop_map(Edit::Delete),
        (any::<prop::sample::Index>(), mutation_char()).prop_map(|(i, c)| Edit::Replace(i, c)),
    ]
}

fn mutate(line: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = line.chars().collect();
    for edit in edits {
        match edit {
            Edit::Insert(i, c) => chars.insert(i.index(chars.len() + 1), *c),
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i.index(chars.len()));
            }
            Edit::Replace(i, c) if !chars.is_empty() => {
                let at = i.index(chars.len());
                chars[at] = *c;
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn valid_lines_agree(spec in spec()) {
        // Goal: on valid lines both parsers accept and agree on every token and value.
        let line = spec.format();
        let theirs = reference(&line);
        prop_assert_eq!(theirs.len(), 1);
        prop_assert!(theirs[0].is_ok(), "reference rejects {:?}: {:?}", line, theirs);
        prop_assert_eq!(compare(&line), None);
    }

    #[test]
    fn mutated_lines_agree_up_to_documented_deviations(
        spec in spec(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        // Goal: after random edits both parsers still make the same decision and produce the
        // same values, or differ only as documented.
        let line = mutate(&spec.format(), &edits);
        compare(&line);
    }
}

#[test]
fn documented_deviations_are_real() {
    // Goal: each documented deviation shows on a hand-written line, so the predicates above
    // are not vacuous and the docs stay true.
    assert_eq!(compare("m v=1 "), Some("trailing spaces"));
    assert_eq!(
        compare("m v=.5"),
        Some("float without digits on both sides of the point")
    );
    assert_eq!(
        compare("m v=1."),
        Some("float without digits on both sides of the point")
    );
    assert_eq!(compare("m v=1e400"), Some("float overflow"));
    assert_eq!(compare("m,a,b=1 v=1"), Some("comma in key"));
    assert_eq!(compare("m a,b=1"), Some("comma in key"));
    assert_eq!(compare("m v=1,"), Some("trailing comma after the fields"));
    assert_eq!(
        compare("m v=1, 123"),
        Some("trailing comma after the fields")
    );
    // 2: CRLF.
    assert!(reference("m v=1\r\n")[0].is_err());
    assert!(ours("m v=1\r\n")[0].is_ok());
    // 7: control characters in names.
    assert!(reference("m,k\x01=v v=1")[0].is_ok());
    assert!(ours("m,k\x01=v v=1")[0].is_err());
    // 1: a newline inside a quoted string.
    assert_eq!(reference("m s=\"a\nb\"").len(), 1);
    assert_eq!(ours("m s=\"a\nb\"").len(), 2);
}

#[test]
fn hand_picked_edge_cases_agree() {
    // Goal: edge cases from the reference's own test suite and the grammar agree exactly.
    for line in [
        "cpu,host=A,region=west usage_system=64i 1590488773254420000",
        "tag1=1 field=1 1234",
        "tag1=1,tag2=2 value=1 123",
        "foo 1234",
        "m0 field=-1.234456e+06 1615869152385000000",
        "m0 field=1.234456e-0",
        "m0 field=-1.234456e 1615869152385000000",
        "m0 field=-1.234456E+ 1615869152385000000",
        "foo,tag0=value1 asdf=23.1.22,jkl=4",
        "  measurement  a=1i  123  ",
        "# comment",
        "m0 field=1i 99999999999999999999999999999999",
        "m v=9223372036854775808i",
        "m v=18446744073709551616u",
        "m v=-1u",
        "m v=1 -0",
        r"wea\,ther,t\ k=v\=x f\ k=1",
        r"\\wea\\ther v=1",
        r"\wea\ther v=1",
        r"m,k=v\\ v=1",
        r"m k\\=1",
        r#"m s="a\"b\\c\d""#,
        r#"m s="""#,
        r#"m s="abc"#,
        r#"m s="a"b"#,
        "m v=t,w=F,x=true,y=False,z=TRUE",
        "m v=tru",
        "m,=a v=1",
        "m,a= v=1",
        "m, v=1",
        ",a=b v=1",
        "m v=",
        "m =1",
        "m v=1,",
        "m v=1 1 1",
        "m v=1 1a",
        "m v=NaN",
        "m v=inf",
        "m v=-",
        "m v=1e5i",
        "m,a=b=c v=1",
    ] {
        compare(line);
    }
}
