//! Tests of the legacy flat configuration (`legacy`): detection, the mapping of every key,
//! errors that name the legacy keys, and that a converted file parses to the same
//! configuration as the legacy file it came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::legacy::{detect, to_v15};
use super::*;

const ORIGIN: &str = "legacy.json";

/// The `jwt-public-key` of cc-metric-store's documentation.
const KEY: &str = "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0=";

const HOUR: Duration = Duration::from_secs(3600);

/// A legacy file shaped like cc-metric-store's `configs/config-nats.json` (written from
/// COMPAT.md §5.3), with every key of the format.
fn full_legacy() -> Value {
    json!({
        "metrics": {
            "cpu_load": {"frequency": 60, "aggregation": null},
            "flops_any": {"frequency": 60, "aggregation": "sum"},
            "clock": {"frequency": 60, "aggregation": "avg"},
            "mem_used": {"frequency": 60}
        },
        "checkpoints": {"interval": "12h", "directory": "./var/checkpoints", "restore": "48h",
                        "file-format": "json"},
        "archive": {"interval": "50h", "directory": "./var/archive", "delete-instead": false},
        "http-api": {"address": "localhost:8082", "https-cert-file": "", "https-key-file": ""},
        "retention-in-memory": "48h",
        "jwt-public-key": KEY,
        "debug": {"dump-to-file": "", "gops": false},
        "nats": [{
            "address": "nats://localhost:4222", "username": "root", "password": "root",
            "creds-file-path": "",
            "subscriptions": [{"subscribe-to": "updates", "cluster-tag": "fritz"},
                              {"subscribe-to": "updates", "cluster-tag": "alex"}]
        }]
    })
}

/// The smallest legacy file Strata accepts.
fn minimal_legacy() -> Value {
    json!({"http-api": {"address": "0.0.0.0:8081"}, "retention-in-memory": "48h"})
}

/// `document` with `value` at the JSON pointer `pointer` (`null` removes the key).
fn with(mut document: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a slash");
    let parent = if parent.is_empty() {
        &mut document
    } else {
        document.pointer_mut(parent).expect("parent exists")
    };
    let parent = parent.as_object_mut().expect("parent is an object");
    if value.is_null() {
        parent.remove(key);
    } else {
        parent.insert(key.to_owned(), value);
    }
    document
}

fn parse(document: &Value) -> Result<Config, ConfigError> {
    Config::from_json(&document.to_string(), Path::new(ORIGIN))
}

fn message_of(document: &Value) -> String {
    match parse(document) {
        Ok(config) => panic!("unexpectedly accepted: {config:?}"),
        Err(error) => error.to_string(),
    }
}

fn converted(document: &Value) -> Value {
    to_v15(document, Path::new(ORIGIN))
        .expect("converts")
        .document
}

fn notes_of(document: &Value) -> Vec<String> {
    to_v15(document, Path::new(ORIGIN)).expect("converts").notes
}

/// Goal: detection follows the top-level keys: legacy with a legacy-only key or `nats` as an
/// array and no v1.5 section; v1.5 otherwise; both together refused, naming both sets.
#[test]
fn detection() {
    let origin = Path::new(ORIGIN);
    let legacy = [
        json!({"http-api": {}}),
        json!({"checkpoints": {}}),
        json!({"archive": {}}),
        json!({"retention-in-memory": "1h"}),
        json!({"jwt-public-key": ""}),
        json!({"debug": {}}),
        json!({"nats": []}),
        json!({"metrics": {}, "nats": [{}]}),
        full_legacy(),
    ];
    for document in &legacy {
        assert!(detect(document, origin).unwrap(), "{document}");
    }
    let sectioned = [
        json!({}),
        json!([]),
        json!({"metrics": {}}),
        json!({"nats": {}}),
        json!({"main": {}, "nats": [{}]}),
        json!({"main": {"addr": ":8082"}, "metric-store": {"retention-in-memory": "1h"}}),
        json!({"main-file": "main.json"}),
    ];
    for document in &sectioned {
        assert!(!detect(document, origin).unwrap(), "{document}");
    }
    let mixed = json!({"main": {}, "metric-store": {}, "http-api": {}, "archive": {}});
    assert_eq!(
        detect(&mixed, origin).unwrap_err().to_string(),
        "legacy.json: mixes the legacy flat format of cc-metric-store before v1.5 (http-api, \
         archive) with the v1.5 format (main, metric-store); use one (strata config convert \
         FILE prints a legacy file in the v1.5 format)"
    );
    assert!(matches!(
        parse(&json!({"metric-store-file": "s.json", "retention-in-memory": "1h"})),
        Err(ConfigError::MixedFormats { .. })
    ));
}

/// Goal: every key of the legacy format lands where the mapping table says, with the values
/// unchanged, and nothing else is added.
#[test]
fn every_key_maps() {
    assert_eq!(
        converted(&full_legacy()),
        json!({
            "main": {"addr": "localhost:8082", "https-cert-file": "", "https-key-file": "",
                     "jwt-public-key": KEY, "debug": {"dump-to-file": "", "gops": false}},
            "metrics": {
                "cpu_load": {"frequency": 60, "aggregation": null},
                "flops_any": {"frequency": 60, "aggregation": "sum"},
                "clock": {"frequency": 60, "aggregation": "avg"},
                "mem_used": {"frequency": 60, "aggregation": null}
            },
            "nats": {"address": "nats://localhost:4222", "username": "root", "password": "root",
                     "creds-file-path": ""},
            "metric-store": {
                "retention-in-memory": "48h",
                "checkpoint-interval": "12h",
                "checkpoints": {"directory": "./var/checkpoints", "file-format": "json"},
                "cleanup": {"mode": "archive", "directory": "./var/archive", "interval": "50h"},
                "nats-subscriptions": [{"subscribe-to": "updates", "cluster-tag": "fritz"},
                                       {"subscribe-to": "updates", "cluster-tag": "alex"}]
            }
        })
    );
    assert_eq!(
        notes_of(&full_legacy()),
        [
            "checkpoints.restore \"48h\" is ignored: Strata recovers everything its snapshots \
             and write-ahead log hold within retention-in-memory",
            "archive: data older than retention-in-memory is archived as Parquet files, one per \
             archive.interval (\"50h\") period (cc-metric-store zipped checkpoint files older \
             than archive.interval)",
            "metrics without aggregation get null (none), as cc-metric-store read them: mem_used",
        ]
    );
    assert_eq!(
        converted(&minimal_legacy()),
        json!({"main": {"addr": "0.0.0.0:8081"},
               "metric-store": {"retention-in-memory": "48h"}})
    );
    assert_eq!(
        notes_of(&minimal_legacy()),
        [
            "checkpoints.interval is not set: Strata writes a snapshot every 12h (v1.5's \
             default)",
            "checkpoints.directory is not set: Strata keeps its write-ahead log and snapshots \
             in ./var/checkpoints (v1.5's default)",
            "no archive section: data older than retention-in-memory is deleted (v1.5's \
             default cleanup)",
        ]
    );
}

/// Goal: the legacy file gives the configuration its values say: checked through the parsed
/// `Config`, not only the JSON.
#[test]
fn full_legacy_file_parses_to_expected_values() {
    let config = parse(&full_legacy()).unwrap();
    assert!(matches!(config.format, ConfigFormat::LegacyFlat { ref notes } if notes.len() == 3));
    assert_eq!(config.source, Some(PathBuf::from(ORIGIN)));
    assert_eq!(config.main.addr, "localhost:8082");
    assert!(config.main.jwt_public_key.is_some());
    assert_eq!(config.metrics.len(), 4);
    assert_eq!(
        config.metrics["mem_used"].aggregation,
        strata_store::Aggregation::None
    );
    assert_eq!(config.store.retention_in_memory, 48 * HOUR);
    assert_eq!(config.store.memory_cap_bytes, None);
    assert_eq!(config.store.checkpoint_interval, 12 * HOUR);
    assert_eq!(
        config.store.checkpoints.directory,
        PathBuf::from("./var/checkpoints")
    );
    assert_eq!(
        config.store.checkpoints.file_format.as_deref(),
        Some("json")
    );
    assert_eq!(
        config.store.cleanup,
        CleanupSection {
            mode: CleanupMode::Archive,
            directory: Some(ArchiveLocation::Local(PathBuf::from("./var/archive"))),
            interval: 50 * HOUR,
        }
    );
    let [nats] = config.nats.as_slice() else {
        panic!("one connection: {:?}", config.nats);
    };
    assert_eq!(nats.addresses, ["nats://localhost:4222"]);
    assert!(
        matches!(&nats.auth, NatsAuth::UserPassword { username, .. } if username == "root"),
        "{:?}",
        nats.auth
    );
    let tags: Vec<_> = nats
        .subscriptions
        .iter()
        .map(|s| (s.subscribe_to.as_str(), s.cluster_tag.as_deref()))
        .collect();
    assert_eq!(
        tags,
        [("updates", Some("fritz")), ("updates", Some("alex"))]
    );
}

/// Goal: several NATS connections become decision 6's `nats` array, named `nats-1`, `nats-2`,
/// …, and each subscription names its connection; an empty array gives no NATS at all.
#[test]
fn several_nats_connections() {
    let document = with(
        minimal_legacy(),
        "/nats",
        json!([
            {"address": "nats://a:4222", "subscriptions": [{"subscribe-to": "x", "cluster-tag": "fritz"}]},
            {"address": "nats://b:4222", "creds-file-path": "/etc/b.creds",
             "subscriptions": [{"subscribe-to": "y"}, {"subscribe-to": "z", "cluster-tag": "alex"}]},
            {"address": "nats://c:4222"}
        ]),
    );
    let document = converted(&document);
    assert_eq!(
        document["nats"],
        json!([
            {"name": "nats-1", "address": "nats://a:4222"},
            {"name": "nats-2", "address": "nats://b:4222", "creds-file-path": "/etc/b.creds"},
            {"name": "nats-3", "address": "nats://c:4222"}
        ])
    );
    assert_eq!(
        document["metric-store"]["nats-subscriptions"],
        json!([
            {"subscribe-to": "x", "cluster-tag": "fritz", "connection": "nats-1"},
            {"subscribe-to": "y", "connection": "nats-2"},
            {"subscribe-to": "z", "cluster-tag": "alex", "connection": "nats-2"}
        ])
    );
    // The v1.5 parser gives each connection its subscriptions.
    let text = serde_json::to_string(&document).unwrap();
    let config = Config::from_json(&text, Path::new(ORIGIN)).unwrap();
    let attached: Vec<(Option<&str>, Vec<&str>)> = config
        .nats
        .iter()
        .map(|c| {
            let subjects = c.subscriptions.iter().map(|s| s.subscribe_to.as_str());
            (c.name.as_deref(), subjects.collect())
        })
        .collect();
    assert_eq!(
        attached,
        [
            (Some("nats-1"), vec!["x"]),
            (Some("nats-2"), vec!["y", "z"]),
            (Some("nats-3"), vec![])
        ]
    );
    let none = converted(&with(minimal_legacy(), "/nats", json!([])));
    assert_eq!(none.get("nats"), None);
    assert_eq!(none["metric-store"].get("nats-subscriptions"), None);
}

/// Goal: what cc-metric-store switched off with a duration of zero or less, and the keys
/// Strata has no use for, are left out with a note rather than refused or kept silently.
#[test]
fn switched_off_and_dropped_keys() {
    let document = with(
        minimal_legacy(),
        "/checkpoints",
        json!({"interval": "0", "directory": "/data", "restore": "1h", "file-format": "avro"}),
    );
    let document = with(
        document,
        "/archive",
        json!({"interval": "-1h", "directory": "/arch"}),
    );
    assert_eq!(
        converted(&document)["metric-store"],
        json!({"retention-in-memory": "48h", "checkpoints": {"directory": "/data"}})
    );
    assert_eq!(
        notes_of(&document),
        [
            "checkpoints.interval \"0\" turned periodic checkpoints off; Strata writes a \
             snapshot every 12h (its write-ahead log holds everything in between)",
            "checkpoints.file-format \"avro\" (Avro) is ignored: Strata writes its own \
             write-ahead log and snapshots, and strata import does not read Avro checkpoints",
            "checkpoints.restore \"1h\" is ignored: Strata recovers everything its snapshots and \
             write-ahead log hold within retention-in-memory",
            "archive.interval \"-1h\" turned archiving off (checkpoint files were kept forever); \
             Strata deletes data older than retention-in-memory (v1.5's default cleanup)",
        ]
    );
    let config = parse(&document).unwrap();
    assert_eq!(
        config.store.checkpoint_interval,
        DEFAULT_CHECKPOINT_INTERVAL
    );
    assert_eq!(config.store.cleanup, CleanupSection::delete(48 * HOUR));

    // An empty file-format meant Avro as well.
    let empty_format = with(
        minimal_legacy(),
        "/checkpoints",
        json!({"directory": "/d", "file-format": ""}),
    );
    assert_eq!(
        converted(&empty_format)["metric-store"]["checkpoints"],
        json!({"directory": "/d"})
    );

    // delete-instead: delete mode; directory and interval have no use there.
    let delete = with(
        minimal_legacy(),
        "/archive",
        json!({"interval": "24h", "directory": "/arch", "delete-instead": true}),
    );
    assert_eq!(
        converted(&delete)["metric-store"]["cleanup"],
        json!({"mode": "delete"})
    );
    assert_eq!(
        parse(&delete).unwrap().store.cleanup.mode,
        CleanupMode::Delete
    );
}

/// Goal: Strata's `main.jwt-roles` has no legacy form: a legacy file is cc-metric-store's
/// own format, so a `jwt-roles` in it is an unknown key (convert the file to use it).
#[test]
fn jwt_roles_is_not_read_from_a_legacy_file() {
    let document = with(
        full_legacy(),
        "/jwt-roles",
        json!({"read": ["api"], "write": ["collector"]}),
    );
    assert!(
        message_of(&document)
            .starts_with("legacy.json: unknown key \"jwt-roles\" at the top level"),
        "{}",
        message_of(&document)
    );
    assert_eq!(parse(&full_legacy()).expect("parses").main.jwt_roles, None);
}

/// Goal: every error names the legacy file and the legacy section and key, including the
/// errors found by the v1.5 parser after the conversion.
#[test]
fn errors_name_legacy_keys() {
    let cases: &[(&str, Value, &str)] = &[
        // Found by the conversion.
        (
            "",
            json!(null),
            "legacy.json: unknown key \"bogus\" at the top level; expected one of: metrics, \
             http-api, checkpoints, archive, retention-in-memory, jwt-public-key, debug, nats",
        ),
        (
            "/http-api",
            json!({"address": ":8081", "port": 8081}),
            "legacy.json: unknown key \"port\" in section \"http-api\"; expected one of: \
             address, https-cert-file, https-key-file",
        ),
        (
            "/http-api",
            json!(8081),
            "legacy.json: section \"http-api\" must be a JSON object, found 8081",
        ),
        (
            "/checkpoints",
            json!({"interval": 3600}),
            "legacy.json: invalid value for key \"interval\" in section \"checkpoints\": \
             expected a string, found 3600",
        ),
        (
            "/checkpoints",
            json!({"file-format": "wal"}),
            "legacy.json: invalid value for key \"file-format\" in section \"checkpoints\": \
             expected one of \"json\", \"avro\", found \"wal\"",
        ),
        (
            "/archive",
            json!({"directory": "/a", "delete-instead": "yes"}),
            "legacy.json: invalid value for key \"delete-instead\" in section \"archive\": \
             expected true or false, found \"yes\"",
        ),
        (
            "/archive",
            json!({"directory": "/a", "compress": true}),
            "legacy.json: unknown key \"compress\" in section \"archive\"; expected one of: \
             interval, directory, delete-instead",
        ),
        (
            "/nats",
            json!({"address": "nats://a:4222"}),
            "legacy.json: invalid value for key \"nats\" at the top level: expected an array, \
             found an object",
        ),
        (
            "/nats",
            json!([{"address": "nats://a:4222", "subscriptions": [{"subject": "x"}]}]),
            "legacy.json: unknown key \"subject\" in section \"nats[0].subscriptions[0]\"; \
             expected one of: subscribe-to, cluster-tag",
        ),
        (
            "/nats",
            json!([{"address": "nats://a:4222", "queue-group": "g"}]),
            "legacy.json: unknown key \"queue-group\" in section \"nats[0]\"; expected one of: \
             address, username, password, creds-file-path, subscriptions",
        ),
        // Found by the v1.5 parser, moved back to the legacy place.
        (
            "/http-api",
            json!(null),
            "legacy.json: missing required key \"address\" in section \"http-api\"",
        ),
        (
            "/http-api",
            json!({"address": ""}),
            "legacy.json: invalid value for key \"address\" in section \"http-api\": must not \
             be empty; give host:port, e.g. \"0.0.0.0:8082\"",
        ),
        (
            "/http-api",
            json!({"address": ":8081", "https-cert-file": "c.pem"}),
            "legacy.json: invalid value for key \"https-key-file\" in section \"http-api\": must \
             be set with https-cert-file (HTTPS needs both)",
        ),
        (
            "/retention-in-memory",
            json!(null),
            "legacy.json: missing required key \"retention-in-memory\" at the top level",
        ),
        (
            "/retention-in-memory",
            json!("0"),
            "legacy.json: invalid value for key \"retention-in-memory\" at the top level: must \
             be greater than zero, found \"0\"",
        ),
        (
            "/jwt-public-key",
            json!("not base64!"),
            "legacy.json: invalid value for key \"jwt-public-key\" at the top level: not valid \
             standard base64: Invalid symbol 32, offset 3.",
        ),
        (
            "/checkpoints",
            json!({"interval": "1 day"}),
            "legacy.json: invalid value for key \"interval\" in section \"checkpoints\": \
             unknown unit \" day\" in duration \"1 day\" (units: ns, us, ms, s, m, h)",
        ),
        (
            "/archive",
            json!({"interval": "24h"}),
            "legacy.json: missing required key \"directory\" in section \"archive\"",
        ),
        (
            "/archive",
            json!({"interval": "1d", "directory": "/a"}),
            "legacy.json: invalid value for key \"interval\" in section \"archive\": unknown \
             unit \"d\" in duration \"1d\" (units: ns, us, ms, s, m, h)",
        ),
        (
            "/debug",
            json!({"gops": true}),
            "legacy.json: key \"gops\" in section \"debug\" is not supported: the gops agent is \
             specific to Go programs",
        ),
        (
            "/debug",
            json!({"trace": true}),
            "legacy.json: unknown key \"trace\" in section \"debug\"; expected one of: \
             dump-to-file, gops",
        ),
        (
            "/debug",
            json!(true),
            "legacy.json: section \"debug\" must be a JSON object, found true",
        ),
        (
            "/nats",
            json!([{"address": "nats://a:4222", "subscriptions": [
                {"subscribe-to": "x"}, {"subscribe-to": "y", "cluster-tag": "a/b"}]}]),
            "legacy.json: invalid value for key \"cluster-tag\" in section \
             \"nats[0].subscriptions[1]\": cluster \"a/b\" contains '/', '\\' or '..', or is '.'",
        ),
        (
            "/nats",
            json!([{"address": "nats://a:4222", "subscriptions": [{"subscribe-to": ""}]}]),
            "legacy.json: missing required key \"subscribe-to\" in section \
             \"nats[0].subscriptions[0]\"",
        ),
        (
            "/nats",
            json!([{"address": 4222}]),
            "legacy.json: invalid value for key \"address\" in section \"nats[0]\": expected a \
             string, found 4222",
        ),
        // Same place in both formats.
        (
            "/metrics",
            json!({"cpu_load": {"frequency": 0}}),
            "legacy.json: invalid value for key \"frequency\" in section \"metrics.cpu_load\": \
             must be a number of seconds from 1 to 86400 (one day), found 0",
        ),
    ];
    for (pointer, value, expected) in cases {
        let document = if pointer.is_empty() {
            with(minimal_legacy(), "/bogus", json!(1))
        } else {
            with(minimal_legacy(), pointer, value.clone())
        };
        assert_eq!(message_of(&document), *expected, "{document}");
    }
}

/// Goal: `convert` reads a file as `serve` does: a legacy file gives its v1.5 document, a v1.5
/// file comes back as it is, and an invalid file gets the same error as `Config::from_file`.
#[test]
fn convert_reads_files_as_serve_does() {
    let dir = tempfile::tempdir().unwrap();
    let legacy_path = dir.path().join("legacy.json");
    std::fs::write(&legacy_path, full_legacy().to_string()).unwrap();
    let conversion = convert(&legacy_path).unwrap();
    assert!(matches!(conversion.format, ConfigFormat::LegacyFlat { .. }));
    assert_eq!(conversion.document, converted(&full_legacy()));

    let sectioned_path = dir.path().join("v15.json");
    std::fs::write(&sectioned_path, conversion.document.to_string()).unwrap();
    let again = convert(&sectioned_path).unwrap();
    assert_eq!(again.format, ConfigFormat::Sectioned);
    assert_eq!(again.document, conversion.document);

    let bad_path = dir.path().join("bad.json");
    let bad = with(full_legacy(), "/http-api", json!({"address": "nowhere"}));
    std::fs::write(&bad_path, bad.to_string()).unwrap();
    let expected = Config::from_file(&bad_path).unwrap_err().to_string();
    assert_eq!(convert(&bad_path).unwrap_err().to_string(), expected);
    assert!(
        expected.ends_with("in section \"http-api\": expected host:port, found \"nowhere\""),
        "{expected}"
    );
    assert!(matches!(
        convert(&dir.path().join("missing.json")),
        Err(ConfigError::Read { .. })
    ));
}

/// Most NATS connections in a generated legacy file (several: decision 6's `nats` array).
const GENERATED_CONNECTIONS_MAX: usize = 3;

/// One legacy file from its parts, with values that are valid.
fn legacy_file() -> impl Strategy<Value = Value> {
    let duration = || prop::sample::select(vec!["0", "-1h", "30m", "12h", "1h30m"]);
    let aggregation =
        prop::sample::select(vec![json!(null), json!("sum"), json!("avg"), json!("")]);
    let checkpoints = (
        prop::option::of(duration()),
        prop::option::of(prop::sample::select(vec!["", "./data"])),
        prop::option::of(prop::sample::select(vec!["48h", ""])),
        prop::option::of(prop::sample::select(vec!["json", "avro", ""])),
    );
    let archive = (prop::option::of(duration()), any::<bool>());
    let metrics = prop::collection::btree_map(
        "[a-z_]{1,8}",
        (
            prop::sample::select(vec![1_i64, 10, 60]),
            prop::option::of(aggregation),
        ),
        0..4,
    );
    let subscriptions = prop::collection::vec(
        (
            prop::sample::select(vec!["updates", "hpc"]),
            prop::option::of(prop::sample::select(vec!["fritz", "alex", ""])),
        ),
        0..3,
    );
    let nats = prop::option::of(prop::collection::vec(
        subscriptions,
        0..=GENERATED_CONNECTIONS_MAX,
    ));
    (
        prop::option::of(prop::sample::select(vec!["", KEY])),
        prop::option::of(checkpoints),
        prop::option::of(archive),
        metrics,
        nats,
        any::<bool>(),
        prop::sample::select(vec!["48h", "2h"]),
    )
        .prop_map(
            |(jwt, checkpoints, archive, metrics, nats, debug, retention)| {
                let mut document = json!({
                    "http-api": {"address": "127.0.0.1:8082"},
                    "retention-in-memory": retention,
                    "metrics": {},
                });
                if let Some(jwt) = jwt {
                    document["jwt-public-key"] = json!(jwt);
                }
                if let Some((interval, directory, restore, format)) = checkpoints {
                    let mut section = json!({});
                    let mut put = |key: &str, value: Option<&str>| {
                        if let Some(value) = value {
                            section[key] = json!(value);
                        }
                    };
                    put("interval", interval);
                    put("directory", directory);
                    put("restore", restore);
                    put("file-format", format);
                    document["checkpoints"] = section;
                }
                if let Some((interval, delete_instead)) = archive {
                    document["archive"] =
                        json!({"directory": "./var/archive", "delete-instead": delete_instead});
                    if let Some(interval) = interval {
                        document["archive"]["interval"] = json!(interval);
                    }
                }
                for (name, (frequency, aggregation)) in metrics {
                    let mut entry = json!({"frequency": frequency});
                    if let Some(aggregation) = aggregation {
                        entry["aggregation"] = aggregation;
                    }
                    document["metrics"][name] = entry;
                }
                if let Some(connections) = nats {
                    let connections: Vec<Value> = connections
                        .into_iter()
                        .enumerate()
                        .map(|(index, subscriptions)| {
                            let subscriptions: Vec<Value> = subscriptions
                                .into_iter()
                                .map(|(subject, tag)| match tag {
                                    Some(tag) => {
                                        json!({"subscribe-to": subject, "cluster-tag": tag})
                                    }
                                    None => json!({"subscribe-to": subject}),
                                })
                                .collect();
                            json!({"address": format!("nats://n{index}:4222"), "username": "u",
                                   "password": "p", "subscriptions": subscriptions})
                        })
                        .collect();
                    document["nats"] = Value::Array(connections);
                }
                if debug {
                    document["debug"] = json!({"dump-to-file": "", "gops": false});
                }
                document
            },
        )
}

proptest! {
    /// Goal: the text `strata config convert` prints parses to the same configuration as the
    /// legacy file it came from (only the recorded format differs), is itself a v1.5 file, and
    /// keeps what the legacy file says (metrics, subscriptions, retention, cleanup mode).
    #[test]
    fn converted_file_parses_to_the_same_config(document in legacy_file()) {
        let origin = Path::new(ORIGIN);
        let legacy = parse(&document).unwrap();
        let is_legacy = matches!(legacy.format, ConfigFormat::LegacyFlat { .. });
        prop_assert!(is_legacy);
        let text = serde_json::to_string_pretty(&converted(&document)).unwrap();
        let v15 = Config::from_json(&text, origin).unwrap();
        prop_assert_eq!(&v15, &Config { format: ConfigFormat::Sectioned, ..legacy.clone() });
        prop_assert!(!detect(&serde_json::from_str(&text).unwrap(), origin).unwrap());

        prop_assert_eq!(legacy.metrics.len(), document["metrics"].as_object().unwrap().len());
        let connections = document["nats"].as_array().map_or(&[][..], Vec::as_slice);
        let subscriptions: usize = connections
            .iter()
            .map(|connection| connection["subscriptions"].as_array().map_or(0, Vec::len))
            .sum();
        let attached: usize = legacy.nats.iter().map(|c| c.subscriptions.len()).sum();
        prop_assert_eq!(attached, subscriptions);
        prop_assert!(legacy.store.nats_subscriptions.is_empty());
        prop_assert_eq!(legacy.nats.len(), connections.len());
        let retention = document["retention-in-memory"].as_str().unwrap();
        prop_assert_eq!(legacy.store.retention_in_memory, if retention == "2h" { 2 * HOUR } else { 48 * HOUR });
        let archive = &document["archive"];
        let archiving = archive.is_object()
            && archive["delete-instead"] == json!(false)
            && !matches!(archive["interval"].as_str(), Some("0" | "-1h"));
        prop_assert_eq!(legacy.store.cleanup.mode == CleanupMode::Archive, archiving);
    }
}

/// Goal (issue 11 item 2): the legacy `http-api` TLS keys turn HTTPS on like v1.5's `main`
/// keys.
#[test]
fn legacy_https_files() {
    let document = with(
        minimal_legacy(),
        "/http-api",
        json!({"address": ":8081", "https-cert-file": "c.pem", "https-key-file": "k.pem"}),
    );
    let config = parse(&document).expect("legacy file with TLS keys");
    assert_eq!(
        config.main.https,
        Some(TlsFiles {
            cert_file: PathBuf::from("c.pem"),
            key_file: PathBuf::from("k.pem"),
        })
    );
}
