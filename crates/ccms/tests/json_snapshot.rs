//! JSON snapshots (`<from>.json`, COMPAT.md §6.2): files built by the reference encoder in
//! `util` and by hand are read back and compared value by value.

mod util;

use proptest::prelude::*;
use strata_ccms::{Error, Level, read_json_checkpoint};
use util::{bits, encode_json, encode_json_like_go, level, metric};

#[test]
fn reads_the_example_of_compat_6_2_verbatim() {
    // Goal: the document in COMPAT.md §6.2, character for character, with the trailing
    // newline json.Encoder adds.
    let file = r#"{"metrics":{"cpu_load":{"frequency":60,"start":1700000000,"data":[0.5,null,0.7]}},
 "children":{"socket0":{"metrics":{"mem_bw":{"frequency":60,"start":1700000000,"data":[100.0,110.0]}},
                        "children":{},"from":1700000000,"to":1700043200}},
 "from":1700000000,"to":1700043200}
"#;
    let checkpoint = read_json_checkpoint(file.as_bytes()).unwrap();
    assert_eq!(checkpoint.from_s, 1_700_000_000);
    assert_eq!(checkpoint.to_s, 1_700_043_200);
    let expected = level(
        vec![metric("cpu_load", 60, 1_700_000_000, &[0.5, f32::NAN, 0.7])],
        vec![(
            "socket0",
            level(
                vec![metric("mem_bw", 60, 1_700_000_000, &[100.0, 110.0])],
                vec![],
            ),
        )],
    );
    assert_eq!(bits(&checkpoint.host), bits(&expected));
}

#[test]
fn reads_nested_children_and_nulls() {
    // Goal: three levels (host, socket, core), several metrics per level, NaN samples written
    // as null, all read back exactly.
    let host = level(
        vec![
            metric("cpu_load", 60, 1_700_000_000, &[0.5, f32::NAN, 0.75]),
            metric("mem_used", 60, 1_700_000_030, &[f32::NAN, f32::NAN]),
        ],
        vec![
            (
                "socket0",
                level(
                    vec![metric("mem_bw", 10, 1_700_000_000, &[100.0, -2.25, 3e6])],
                    vec![
                        (
                            "core0",
                            level(vec![metric("flops_any", 10, 1_700_000_000, &[1.0])], vec![]),
                        ),
                        (
                            "core1",
                            level(vec![metric("flops_any", 10, 1_700_000_010, &[])], vec![]),
                        ),
                    ],
                ),
            ),
            ("socket1", level(vec![], vec![])),
        ],
    );
    let file = encode_json(1_700_000_000, 1_700_043_200, &host);
    let checkpoint = read_json_checkpoint(file.as_bytes()).unwrap();
    assert_eq!(
        (checkpoint.from_s, checkpoint.to_s),
        (1_700_000_000, 1_700_043_200)
    );
    assert_eq!(bits(&checkpoint.host), bits(&host));
    let core1 = &checkpoint.host.children[0].1.children[1];
    assert_eq!(core1.0, "core1");
    assert_eq!(core1.1.metrics[0].start_s, 1_700_000_010);
}

#[test]
fn reads_cc_metric_stores_one_decimal_output_as_the_nearest_f32() {
    // Goal: cc-metric-store writes float32 with one decimal (0.45 → "0.4", 0.04 → "0.0",
    // §6.2 quirk); the reader gives the nearest f32 of what is written.
    let host = level(
        vec![metric("m", 60, 0, &[0.45, 0.04, 1234.56, f32::NAN])],
        vec![],
    );
    let file = encode_json_like_go(0, 60, &host);
    assert!(file.contains("\"data\":[0.4,0.0,1234.6,null]"), "{file}");
    let checkpoint = read_json_checkpoint(file.as_bytes()).unwrap();
    let values = &checkpoint.host.metrics[0].values;
    assert_eq!(values[..3], [0.4, 0.0, 1234.6]);
    assert!(values[3].is_nan());
}

#[test]
fn tolerates_what_cc_metric_stores_loader_tolerates() {
    // Goal: unknown keys (at every level), keys in another order, missing and null fields,
    // trailing text after the document, and a repeated metric name (the last one wins, as
    // in a Go map) are all accepted.
    let file = br#"{"version":2,"to":200,"children":{"socket0":{"extra":[1,2]}},
        "metrics":{"b":{"data":[1.5],"unit":"GB","start":100,"frequency":10},
                   "a":{"frequency":10},
                   "b":{"frequency":20,"start":110,"data":[2.5,null]},
                   "c":{"frequency":30,"start":null,"data":null}},
        "from":null}
        this is ignored, as Go's json.Decoder ignores it"#;
    let checkpoint = read_json_checkpoint(file).unwrap();
    assert_eq!((checkpoint.from_s, checkpoint.to_s), (0, 200));
    let expected = level(
        vec![
            metric("a", 10, 0, &[]),
            metric("b", 20, 110, &[2.5, f32::NAN]),
            metric("c", 30, 0, &[]),
        ],
        vec![("socket0", Level::default())],
    );
    assert_eq!(bits(&checkpoint.host), bits(&expected));

    let empty = read_json_checkpoint(b"{}").unwrap();
    assert_eq!((empty.from_s, empty.to_s), (0, 0));
    assert_eq!(empty.host, Level::default());
    let nulls = read_json_checkpoint(br#"{"metrics":null,"children":null}"#).unwrap();
    assert_eq!(nulls.host, Level::default());
}

#[test]
fn rejects_documents_of_the_wrong_shape() {
    // Goal: each malformed document is an Error::Json whose reason says what is wrong.
    let cases: &[(&[u8], &str)] = &[
        (b"", "EOF while parsing"),
        (b"[1,2]", "invalid type: sequence, expected a JSON object"),
        (br#"{"metrics":{"m":[60,0,[1]]}}"#, "invalid type: sequence"),
        (b"null", "invalid type: null"),
        (br#"{"metrics":{"m":null}}"#, "invalid type: null"),
        (br#"{"children":{"socket0":null}}"#, "invalid type: null"),
        (
            br#"{"metrics":{"m":{"frequency":60.0}}}"#,
            "invalid type: floating point",
        ),
        (
            br#"{"metrics":{"m":{"data":["NaN"]}}}"#,
            "invalid type: string",
        ),
        (
            br#"{"metrics":{"m":{"data":[1e400]}}}"#,
            "number out of range",
        ),
        (br#"{"from":1,"from":2}"#, "duplicate field `from`"),
        (br#"{"metrics":{"m":{"data":[1,2"#, "EOF while parsing"),
    ];
    for (file, reason_part) in cases {
        let error = read_json_checkpoint(file).unwrap_err();
        match &error {
            Error::Json { reason } => assert!(
                reason.contains(reason_part),
                "{:?}: {reason}",
                String::from_utf8_lossy(file)
            ),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(file)),
        }
    }
}

/// A JSON snapshot whose host has a chain of `depth - 1` nested children named `x`.
fn nested(depth: usize) -> String {
    let mut file = String::new();
    for _ in 1..depth {
        file.push_str(r#"{"children":{"x":"#);
    }
    file.push_str("{}");
    for _ in 1..depth {
        file.push_str("}}");
    }
    file
}

#[test]
fn limits_nesting_depth() {
    // Goal: 16 levels (host included) are accepted, 17 are Error::TooDeep naming the first
    // level past the limit, and nesting beyond serde_json's recursion limit is a clean
    // Error::Json rather than a stack overflow.
    let checkpoint = read_json_checkpoint(nested(16).as_bytes()).unwrap();
    let mut depth = 1;
    let mut current = &checkpoint.host;
    while let Some((name, child)) = current.children.first() {
        assert_eq!(name, "x");
        depth += 1;
        current = child;
    }
    assert_eq!(depth, 16);

    let error = read_json_checkpoint(nested(17).as_bytes()).unwrap_err();
    assert!(
        matches!(&error, Error::TooDeep { level, depth_max: 16 } if *level == vec!["x"; 16].join("/")),
        "{error:?}"
    );
    let error = read_json_checkpoint(nested(100_000).as_bytes()).unwrap_err();
    assert!(
        matches!(&error, Error::Json { reason } if reason.contains("recursion limit exceeded")),
        "{error:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_json_checkpoint(&bytes);
    }

    #[test]
    fn arbitrary_text_after_a_json_prefix_never_panics(tail in "[{}\\[\\]\":,a-z0-9.nul -]{0,200}") {
        let _ = read_json_checkpoint(format!("{{\"metrics\":{tail}").as_bytes());
        let _ = read_json_checkpoint(format!("{{\"children\":{{\"s\":{tail}").as_bytes());
    }

    #[test]
    fn generated_checkpoints_round_trip(
        from in any::<i64>(),
        to in any::<i64>(),
        host in util::arb_level(util::arb_decimal_value()),
    ) {
        let file = encode_json(from, to, &host);
        let checkpoint = read_json_checkpoint(file.as_bytes()).unwrap();
        prop_assert_eq!((checkpoint.from_s, checkpoint.to_s), (from, to));
        prop_assert_eq!(bits(&checkpoint.host), bits(&host));
    }
}
