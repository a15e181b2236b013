//! docs/openapi.yaml against the real binary: tests/openapi_check.py validates the description
//! (openapi-spec-validator), sends each of its examples, and checks every answer's status and
//! body against the documented response schema. Needs `python3` with PyYAML, jsonschema and
//! openapi-spec-validator (scripts/test.sh installs them); without them the test fails.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::Server;
use serde_json::json;
use std::path::Path;
use std::process::Command;

#[test]
fn every_documented_example_gets_the_documented_answer() {
    // The query examples ask for an hour of 2026-11-29; a long retention keeps data written
    // there, so that their answers carry data for the schema to check.
    let server = Server::start_with_config(&json!({
        "metric-store": {"retention-in-memory": "87600h"}
    }));
    let lines: String = (0..60)
        .flat_map(|i| {
            let t = 1_796_000_000 + 60 * i;
            [
                format!("cpu_load,hostname=f0201,type=node value={}.5 {t}\n", i % 7),
                format!("flops_any,hostname=f0201,type=hwthread,type-id=0 value={i} {t}\n"),
                format!("flops_any,hostname=f0201,type=hwthread,type-id=1 value=2 {t}\n"),
            ]
        })
        .collect();
    server.write_ok("fritz", &lines);

    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .arg(manifest.join("tests/openapi_check.py"))
        .arg(&server.addr)
        .arg(manifest.join("../../docs/openapi.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("python3 cannot start: {e}; scripts/test.sh installs it"));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("0 mismatches"), "{report}");
}
