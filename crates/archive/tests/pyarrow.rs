//! An independent reader (pyarrow, via tests/read_archive.py) sees cc-metric-store's exact schema
//! and everything Strata adds. Needs `python3` with pyarrow: scripts/test.sh installs it from
//! scripts/test-requirements.txt; without it this test fails, it never skips.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use strata_archive::PeriodWriter;
use strata_archive::format::WriterOptions;

const START: i64 = 1_700_000_000;

fn pyarrow_view(file: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_archive.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("python3 cannot start: {e}; scripts/test.sh installs it"));
    assert!(
        output.status.success(),
        "read_archive.py failed (pyarrow missing? scripts/test.sh installs it from \
         scripts/test-requirements.txt):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from read_archive.py")
}

#[test]
fn independent_reader_sees_ccms_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Small groups and pages so the file has several of each.
    let options = WriterOptions {
        row_group_rows_min: 500,
        page_rows: 64,
        ..WriterOptions::default()
    };
    let mut writer = PeriodWriter::create_with(dir.path(), "fritz", START, START + 86_400, options)
        .expect("create");
    let mut written = 0u64;
    for host in ["f0001", "f0002", "f0010"] {
        for metric in ["cpu_load", "ipc"] {
            let levels: Vec<Vec<&str>> = if metric == "ipc" {
                ["hwthread0", "hwthread1", "hwthread10", "hwthread2"]
                    .iter()
                    .map(|l| vec![*l])
                    .collect()
            } else {
                vec![vec![]]
            };
            for level in levels {
                let samples: Vec<(i64, f32)> = (0..300)
                    .map(|i| {
                        let value = if i % 50 == 0 {
                            f32::NAN
                        } else {
                            i as f32 * 0.25
                        };
                        (START + i * 60, value)
                    })
                    .collect();
                written += samples.iter().filter(|(_, v)| !v.is_nan()).count() as u64;
                writer
                    .add_series(host, &level, metric, 60, &samples)
                    .expect("series");
            }
        }
    }
    let summary = writer.finish().expect("finish");
    assert_eq!(summary.rows, written);
    let view = pyarrow_view(&summary.path);

    let schema: Vec<(String, String, bool)> =
        serde_json::from_value(view["schema"].clone()).expect("schema");
    let expected: Vec<(String, String, bool)> = [
        ("cluster", "string"),
        ("hostname", "string"),
        ("metric", "string"),
        ("scope", "string"),
        ("scope_id", "string"),
        ("timestamp", "int64"),
        ("frequency", "int64"),
        ("value", "float"),
    ]
    .iter()
    .map(|(name, ty)| (name.to_string(), ty.to_string(), false))
    .collect();
    assert_eq!(schema, expected, "8 columns, types, not null");
    let physical: Vec<(String, String, String)> =
        serde_json::from_value(view["physical"].clone()).expect("physical");
    let kinds: Vec<(&str, &str)> = physical
        .iter()
        .map(|(_, p, l)| (p.as_str(), l.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("BYTE_ARRAY", "String"),
            ("BYTE_ARRAY", "String"),
            ("BYTE_ARRAY", "String"),
            ("BYTE_ARRAY", "String"),
            ("BYTE_ARRAY", "String"),
            ("INT64", "None"),
            ("INT64", "None"),
            ("FLOAT", "None"),
        ]
    );
    assert_eq!(view["num_rows"], written);
    assert!(view["num_row_groups"].as_u64().expect("groups") >= 3);
    assert_eq!(view["sorted"], true);
    assert_eq!(view["any_nan"], false);
    let chunks = view["chunks"].as_array().expect("chunks");
    assert_eq!(
        chunks.len() as u64,
        8 * view["num_row_groups"].as_u64().expect("groups")
    );
    for chunk in chunks {
        assert_eq!(chunk["compression"], "ZSTD", "{chunk}");
        if chunk["column"] == "value" {
            // A dictionary (its page PLAIN, indices RLE_DICTIONARY) while it stays small,
            // byte stream split after it; RLE is the level encoding every version 1 page lists.
            let encodings: Vec<&str> = chunk["encodings"]
                .as_array()
                .expect("encodings")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let known = ["BYTE_STREAM_SPLIT", "RLE", "PLAIN", "RLE_DICTIONARY"];
            assert!(
                encodings.iter().all(|e| known.contains(e))
                    && (encodings.contains(&"RLE_DICTIONARY")
                        || encodings.contains(&"BYTE_STREAM_SPLIT")),
                "{chunk}"
            );
        }
        // parquet 60 declares float columns in IEEE 754 total order (the newer ColumnOrder),
        // which pyarrow 26 does not know, so it hides `value`'s min/max (they are in the file;
        // nothing prunes by value).
        if chunk["column"] != "value" {
            assert_eq!(chunk["has_statistics"], true, "{chunk}");
        }
        assert_eq!(chunk["has_column_index"], true, "{chunk}");
        assert_eq!(chunk["has_offset_index"], true, "{chunk}");
    }
    let sorting = view["sorting_columns"].as_array().expect("sorting");
    for group in sorting {
        assert_eq!(
            group,
            &serde_json::json!([
                [1, false, false],
                [2, false, false],
                [3, false, false],
                [4, false, false],
                [5, false, false]
            ])
        );
    }
    assert_eq!(view["key_value"]["strata.format"], "1");
    assert_eq!(view["key_value"]["strata.period_start"], START.to_string());
    assert_eq!(
        view["key_value"]["strata.period_end"],
        (START + 86_400).to_string()
    );
    assert!(
        view["key_value"].get("ARROW:schema").is_none(),
        "no embedded Arrow schema"
    );
    assert_eq!(
        view["hosts"],
        serde_json::json!(["f0001", "f0002", "f0010"])
    );
}
