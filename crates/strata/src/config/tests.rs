//! Tests of the configuration loader. Each test states its goal; tables list the input and
//! the exact value or error expected.

use std::io;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use strata_store::{Aggregation, ResamplerKind, StoreLimits};

use super::remote_write::REMOTE_WRITE_ENDPOINTS_MAX;
use super::*;

const ORIGIN: &str = "config.json";

/// The example of COMPAT.md §5.1 (cc-metric-store's `configs/config.json`, shortened).
const COMPAT_EXAMPLE: &str = r#"
{"main":{"addr":"0.0.0.0:8082","jwt-public-key":"kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0="},
 "nats":{"address":"nats://0.0.0.0:4222","username":"root","password":"root"},
 "metric-store":{"checkpoints":{"file-format":"wal","directory":"./var/checkpoints"},
   "checkpoint-interval":"12h","memory-cap":100,"retention-in-memory":"48h",
   "cleanup":{"mode":"archive","directory":"./var/archive"},
   "nats-subscriptions":[{"subscribe-to":"hpc-nats","cluster-tag":"fritz"}]},
 "metrics":{"cpu_load":{"frequency":60,"aggregation":null},
            "flops_any":{"frequency":60,"aggregation":"sum"},
            "clock":{"frequency":60,"aggregation":"avg"}}}
"#;

/// The 32 bytes of the example's `jwt-public-key`.
const EXAMPLE_KEY: [u8; 32] = [
    147, 55, 216, 173, 140, 190, 79, 58, 90, 157, 102, 71, 39, 154, 146, 116, 200, 249, 184, 165,
    22, 130, 174, 248, 5, 104, 80, 27, 167, 40, 164, 253,
];

const HOUR: Duration = Duration::from_secs(3600);

/// The smallest configuration cc-metric-store's schema accepts.
fn minimal() -> Value {
    json!({
        "main": {"addr": "0.0.0.0:8082"},
        "metrics": {},
        "metric-store": {"retention-in-memory": "48h", "memory-cap": 0}
    })
}

/// `minimal()` with `value` stored at the JSON pointer `pointer` (parents created).
fn with(pointer: &str, value: Value) -> Value {
    let mut document = minimal();
    set(&mut document, pointer, value);
    document
}

fn set(document: &mut Value, pointer: &str, value: Value) {
    let mut target = document;
    for part in pointer.trim_start_matches('/').split('/') {
        if !target.is_object() {
            *target = json!({});
        }
        target = target
            .as_object_mut()
            .expect("checked above")
            .entry(part)
            .or_insert(Value::Null);
    }
    *target = value;
}

/// `minimal()` without the key at `pointer`.
fn without(pointer: &str) -> Value {
    let mut document = minimal();
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a slash");
    let parent = if parent.is_empty() {
        &mut document
    } else {
        document.pointer_mut(parent).expect("parent exists")
    };
    parent
        .as_object_mut()
        .expect("parent is an object")
        .remove(key)
        .expect("key exists");
    document
}

fn parse(document: &Value) -> Result<Config, ConfigError> {
    Config::from_json(&document.to_string(), Path::new(ORIGIN))
}

fn parse_ok(document: &Value) -> Config {
    match parse(document) {
        Ok(config) => config,
        Err(error) => panic!("unexpected error: {error}"),
    }
}

fn error_of(document: &Value) -> ConfigError {
    match parse(document) {
        Ok(config) => panic!("unexpectedly accepted: {config:?}"),
        Err(error) => error,
    }
}

fn message_of(document: &Value) -> String {
    error_of(document).to_string()
}

/// Goal: the example configuration of COMPAT.md §5.1 yields exactly the values it states,
/// with Strata's defaults for everything it leaves out.
#[test]
fn compat_example_parses_to_expected_values() {
    let config = Config::from_json(COMPAT_EXAMPLE, Path::new("/etc/ccms/config.json")).unwrap();
    let expected = Config {
        source: Some(PathBuf::from("/etc/ccms/config.json")),
        main: MainSection {
            addr: "0.0.0.0:8082".to_owned(),
            jwt_public_key: Some(EXAMPLE_KEY),
            https: None,
            jwt_roles: None,
        },
        metrics: BTreeMap::from([
            (
                "clock".to_owned(),
                MetricConfig {
                    frequency_s: 60,
                    aggregation: Aggregation::Avg,
                },
            ),
            (
                "cpu_load".to_owned(),
                MetricConfig {
                    frequency_s: 60,
                    aggregation: Aggregation::None,
                },
            ),
            (
                "flops_any".to_owned(),
                MetricConfig {
                    frequency_s: 60,
                    aggregation: Aggregation::Sum,
                },
            ),
        ]),
        nats: vec![NatsConnection {
            name: None,
            addresses: vec!["nats://0.0.0.0:4222".to_owned()],
            auth: NatsAuth::UserPassword {
                username: "root".to_owned(),
                password: Secret("root".to_owned()),
            },
            tls: None,
            subscriptions: vec![NatsSubscription {
                subscribe_to: "hpc-nats".to_owned(),
                cluster_tag: Some("fritz".to_owned()),
                queue_group: None,
                jetstream: None,
                connection: None,
            }],
        }],
        store: StoreSection {
            retention_in_memory: 48 * HOUR,
            memory_cap_bytes: Some(100_000_000_000),
            num_workers: default_num_workers(),
            checkpoint_interval: 12 * HOUR,
            checkpoints: CheckpointsSection {
                file_format: Some("wal".to_owned()),
                directory: PathBuf::from("./var/checkpoints"),
                max_wal_size: None,
            },
            cleanup: CleanupSection {
                mode: CleanupMode::Archive,
                directory: Some(ArchiveLocation::Local(PathBuf::from("./var/archive"))),
                interval: 48 * HOUR,
            },
            nats_subscriptions: Vec::new(),
            wal: WalSection {
                fsync: FsyncPolicy::Batch,
                fsync_interval: Duration::from_millis(100),
                segment_bytes: 64 * 1024 * 1024,
            },
            default_frequency_s: 60,
            resampling: Resampler {
                kind: ResamplerKind::Lttb,
                minimum_points: 1000,
            },
            limits: LimitsSection {
                body_bytes_max: 256 * 1024 * 1024,
                line_bytes_max: 64 * 1024,
                tags_per_line_max: 64,
                name_bytes_max: 256,
                query_series_max: 100_000,
                request_timeout: Duration::from_secs(60),
                query_points_max: 50_000_000,
                concurrent_queries: 8,
                header_timeout: Duration::from_secs(30),
                connections_max: 1024,
                nats_pending_messages: 65_536,
                nats_pending_bytes: 64 << 20,
                store: StoreLimits::DEFAULT,
            },
            remote_write: Vec::new(),
        },
        format: ConfigFormat::Sectioned,
    };
    assert_eq!(config, expected);
}

/// Goal: the embedded default is what Decision 14 promises.
#[test]
fn embedded_default_values() {
    let config = Config::embedded_default();
    assert_eq!(config.source, None);
    assert_eq!(config.main.addr, "127.0.0.1:8082");
    assert_eq!(config.main.jwt_public_key, None);
    assert!(config.metrics.is_empty());
    assert!(config.nats.is_empty());
    let store = &config.store;
    assert_eq!(store.retention_in_memory, Duration::from_secs(172_800));
    assert_eq!(store.memory_cap_bytes, None);
    assert_eq!(store.num_workers, default_num_workers());
    assert!((1..=10).contains(&store.num_workers));
    assert_eq!(store.checkpoint_interval, Duration::from_secs(43_200));
    assert_eq!(store.checkpoints.file_format, None);
    assert_eq!(
        store.checkpoints.directory,
        PathBuf::from("./var/checkpoints")
    );
    assert_eq!(store.checkpoints.max_wal_size, None);
    assert_eq!(store.cleanup.mode, CleanupMode::Delete);
    assert_eq!(store.cleanup.directory, None);
    assert_eq!(store.cleanup.interval, store.retention_in_memory);
    assert!(store.nats_subscriptions.is_empty());
    assert_eq!(store.wal.fsync, FsyncPolicy::Batch);
    assert_eq!(store.wal.fsync_interval, Duration::from_millis(100));
    assert_eq!(store.wal.segment_bytes, 67_108_864);
    assert_eq!(store.default_frequency_s, 60);
    assert_eq!(store.resampling.kind, ResamplerKind::Lttb);
    assert_eq!(store.resampling.minimum_points, 1000);
    assert_eq!(store.limits.body_bytes_max, 268_435_456);
    assert_eq!(store.limits.line_bytes_max, 65_536);
    assert_eq!(store.limits.tags_per_line_max, 64);
    assert_eq!(store.limits.name_bytes_max, 256);
    assert_eq!(store.limits.query_series_max, 100_000);
    assert_eq!(store.limits.request_timeout, Duration::from_secs(60));
}

/// Goal: the embedded default and a file stating the same values agree, so the defaults
/// of optional keys are the same in both paths.
#[test]
fn file_with_default_values_equals_embedded_default() {
    let mut document = with("/main/addr", json!("127.0.0.1:8082"));
    set(&mut document, "/metric-store/num-workers", json!(0));
    let mut expected = Config::embedded_default();
    expected.source = Some(PathBuf::from(ORIGIN));
    assert_eq!(parse_ok(&document), expected);
}

/// Goal: Strata's own keys (Decision 15) are read, in every accepted spelling.
#[test]
fn strata_keys_parse() {
    let mut document = minimal();
    set(
        &mut document,
        "/metric-store/wal",
        json!({"fsync": "always", "fsync-interval": "1.5s", "segment-size": "128MiB"}),
    );
    set(&mut document, "/metric-store/default-frequency", json!(10));
    set(
        &mut document,
        "/metric-store/resampling",
        json!({"algorithm": "average", "minimum-points": 300}),
    );
    set(
        &mut document,
        "/metric-store/limits",
        json!({
            "body-size": "1GB", "line-length": 1024, "tags-per-line": 8, "name-length": "1KiB",
            "series-per-query": 5, "request-timeout": "2m30s", "points-per-query": 7,
            "concurrent-queries": 2, "header-timeout": "1s", "connections": 9,
            "series-per-query": 5, "request-timeout": "2m30s", "metrics": 7,
            "hosts-per-cluster": 8, "series-per-host": 9, "children-per-level": 10,
            "nats-pending-messages": 11,
            "nats-pending-bytes": "3MiB"
        }),
    );
    set(&mut document, "/metric-store/num-workers", json!(3));
    set(&mut document, "/metric-store/memory-cap", json!(2));
    set(
        &mut document,
        "/metric-store/checkpoint-interval",
        json!("30m"),
    );
    set(
        &mut document,
        "/metric-store/checkpoints",
        json!({"file-format": "json", "directory": "/data/strata", "max-wal-size": "1GiB"}),
    );
    set(
        &mut document,
        "/metric-store/nats-subscriptions",
        json!([
            {"subscribe-to": "a", "cluster-tag": "", "queue-group": "strata"},
            {"subscribe-to": "b", "cluster-tag": "alex"}
        ]),
    );
    set(
        &mut document,
        "/metric-store/debug",
        json!({"dump-to-file": "/tmp/dump", "gops": false}),
    );
    let store = parse_ok(&document).store;
    assert_eq!(
        store.wal,
        WalSection {
            fsync: FsyncPolicy::Always,
            fsync_interval: Duration::from_millis(1500),
            segment_bytes: 134_217_728,
        }
    );
    assert_eq!(store.default_frequency_s, 10);
    assert_eq!(
        store.resampling,
        Resampler {
            kind: ResamplerKind::Average,
            minimum_points: 300,
        }
    );
    assert_eq!(
        store.limits,
        LimitsSection {
            body_bytes_max: 1_000_000_000,
            line_bytes_max: 1024,
            tags_per_line_max: 8,
            name_bytes_max: 1024,
            query_series_max: 5,
            request_timeout: Duration::from_secs(150),
            query_points_max: 7,
            concurrent_queries: 2,
            header_timeout: Duration::from_secs(1),
            connections_max: 9,
            nats_pending_messages: 11,
            nats_pending_bytes: 3 << 20,
            store: StoreLimits {
                metrics_max: 7,
                hosts_per_cluster_max: 8,
                series_per_host_max: 9,
                children_per_level_max: 10,
            },
        }
    );
    assert_eq!(store.num_workers, 3);
    assert_eq!(store.memory_cap_bytes, Some(2_000_000_000));
    assert_eq!(store.checkpoint_interval, Duration::from_secs(1800));
    assert_eq!(
        store.checkpoints,
        CheckpointsSection {
            file_format: Some("json".to_owned()),
            directory: PathBuf::from("/data/strata"),
            max_wal_size: Some(1_073_741_824),
        }
    );
    assert_eq!(
        store.nats_subscriptions,
        vec![
            NatsSubscription {
                subscribe_to: "a".to_owned(),
                cluster_tag: None,
                queue_group: Some("strata".to_owned()),
                jetstream: None,
                connection: None,
            },
            NatsSubscription {
                subscribe_to: "b".to_owned(),
                cluster_tag: Some("alex".to_owned()),
                queue_group: None,
                jetstream: None,
                connection: None,
            },
        ]
    );
}

/// Goal: every fsync policy and cleanup mode spelling maps to its variant.
#[test]
fn enumerations_parse() {
    for (text, expected) in [
        ("always", FsyncPolicy::Always),
        ("batch", FsyncPolicy::Batch),
        ("never", FsyncPolicy::Never),
        ("off", FsyncPolicy::Off),
    ] {
        let config = parse_ok(&with("/metric-store/wal/fsync", json!(text)));
        assert_eq!(config.store.wal.fsync, expected);
        assert_eq!(expected.to_string(), text);
    }
    let config = parse_ok(&with("/metric-store/cleanup/mode", json!("delete")));
    assert_eq!(config.store.cleanup.mode, CleanupMode::Delete);
    assert_eq!(CleanupMode::Archive.to_string(), "archive");
    assert_eq!(ResamplerKind::Average.to_string(), "average");
}

/// Goal: an unknown key anywhere is rejected with the key, the section path and the file.
/// Method: add a key `bogus` at every place that has a fixed set of keys.
#[test]
fn unknown_keys_name_key_section_and_file() {
    let cases: &[(&str, &str)] = &[
        ("/bogus", ""),
        ("/main/bogus", "main"),
        ("/main/debug/bogus", "main.debug"),
        ("/metrics/cpu_load/bogus", "metrics.cpu_load"),
        ("/nats/bogus", "nats"),
        ("/nats/tls/bogus", "nats.tls"),
        ("/metric-store/bogus", "metric-store"),
        (
            "/metric-store/checkpoints/bogus",
            "metric-store.checkpoints",
        ),
        ("/metric-store/cleanup/bogus", "metric-store.cleanup"),
        ("/metric-store/cleanup/s3/bogus", "metric-store.cleanup.s3"),
        ("/metric-store/wal/bogus", "metric-store.wal"),
        ("/metric-store/limits/bogus", "metric-store.limits"),
        ("/metric-store/resampling/bogus", "metric-store.resampling"),
        ("/metric-store/debug/bogus", "metric-store.debug"),
    ];
    for &(pointer, expected_section) in cases {
        let mut document = minimal();
        set(
            &mut document,
            "/metrics/cpu_load",
            json!({"frequency": 60, "aggregation": "avg"}),
        );
        set(&mut document, "/nats/address", json!("n:4222"));
        set(&mut document, pointer, json!(1));
        match error_of(&document) {
            ConfigError::UnknownKey {
                file, section, key, ..
            } => {
                assert_eq!(file, PathBuf::from(ORIGIN), "{pointer}");
                assert_eq!(section, expected_section, "{pointer}");
                assert_eq!(key, "bogus", "{pointer}");
            }
            other => panic!("{pointer}: expected UnknownKey, got {other:?}"),
        }
    }

    let document = with(
        "/metric-store/nats-subscriptions",
        json!([{"subscribe-to": "a"}, {"subscribe-to": "b", "bogus": 1}]),
    );
    match error_of(&document) {
        ConfigError::UnknownKey { section, key, .. } => {
            assert_eq!(section, "metric-store.nats-subscriptions[1]");
            assert_eq!(key, "bogus");
        }
        other => panic!("expected UnknownKey, got {other:?}"),
    }
}

/// Goal: the unknown-key message is the one the brief shows, plus the accepted keys.
#[test]
fn unknown_key_messages() {
    assert_eq!(
        message_of(&with("/metric-store/retention", json!("48h"))),
        "config.json: unknown key \"retention\" in section \"metric-store\"; expected one of: \
         retention-in-memory, memory-cap, num-workers, checkpoint-interval, checkpoints, \
         cleanup, nats-subscriptions, debug, wal, default-frequency, resampling, limits, \
         remote-write"
    );
    assert_eq!(
        message_of(&with("/http", json!({}))),
        "config.json: unknown key \"http\" at the top level; expected one of: main, \
         main-file, metrics, metrics-file, nats, nats-file, metric-store, metric-store-file"
    );
    assert_eq!(
        message_of(&with("/metric-store/wal/fsync-every", json!("1s"))),
        "config.json: unknown key \"fsync-every\" in section \"metric-store.wal\"; expected \
         one of: fsync, fsync-interval, segment-size"
    );
    assert_eq!(
        message_of(&with("/metric-store/cleanup/bucket", json!("b"))),
        "config.json: unknown key \"bucket\" in section \"metric-store.cleanup\"; expected \
         one of: mode, directory, interval, s3"
    );
}

fn cleanup(section: Value) -> Value {
    with("/metric-store/cleanup", section)
}

fn cleanup_message(section: Value) -> String {
    message_of(&cleanup(section))
}

/// The message of an invalid value of `key` in `section`.
fn invalid(section: &str, key: &str, reason: &str) -> String {
    format!("config.json: invalid value for key \"{key}\" in section \"{section}\": {reason}")
}

/// Goal: `cleanup.interval` (Strata only; cc-metric-store 1.5.0's release notes show it but
/// its decoder rejects it) is a Go duration > 0 and defaults to `retention-in-memory`, in
/// both modes.
#[test]
fn cleanup_interval_defaults_to_the_retention() {
    let mut document = cleanup(json!({"mode": "archive", "directory": "/a"}));
    set(
        &mut document,
        "/metric-store/retention-in-memory",
        json!("6h"),
    );
    assert_eq!(parse_ok(&document).store.cleanup.interval, 6 * HOUR);
    assert_eq!(parse_ok(&minimal()).store.cleanup.interval, 48 * HOUR);
    let config = parse_ok(&cleanup(json!({"interval": "24h"})));
    assert_eq!(config.store.cleanup.interval, 24 * HOUR);
    assert_eq!(config.store.cleanup.mode, CleanupMode::Delete);
    for (value, reason) in [
        (json!("0s"), "must be greater than zero, found \"0s\""),
        (json!("-1h"), "must be greater than zero, found \"-1h\""),
        (json!(3600), "expected a string, found 3600"),
    ] {
        assert_eq!(
            cleanup_message(json!({"interval": value})),
            invalid("metric-store.cleanup", "interval", reason)
        );
    }
}

/// Goal: `directory` is a local path or `s3://bucket/prefix` (slashes around the prefix
/// dropped), and `s3` sets every key of the object store; part-size defaults to 8 MiB.
#[test]
fn cleanup_directory_on_s3() {
    let location = |section: Value| parse_ok(&cleanup(section)).store.cleanup.directory;
    let mut expected = S3Location::new("my-bucket", "cc/archive");
    assert_eq!(expected.part_size, 8 << 20);
    assert_eq!(
        location(json!({"mode": "archive", "directory": "s3://my-bucket/cc/archive/"})),
        Some(ArchiveLocation::S3(expected.clone()))
    );
    expected.bucket = "b.example-1".to_owned();
    expected.prefix = String::new();
    assert_eq!(
        location(json!({"directory": "s3://b.example-1"})),
        Some(ArchiveLocation::S3(expected))
    );
    assert_eq!(
        location(json!({"directory": "var/s3:/x"})),
        Some(ArchiveLocation::Local(PathBuf::from("var/s3:/x")))
    );
    let section = json!({
        "mode": "archive",
        "directory": "s3://bkt/pfx",
        "s3": {
            "endpoint": "http://127.0.0.1:9000",
            "region": "eu-central-1",
            "access-key-id": "AKIDEXAMPLE",
            "secret-access-key": "wJalrXUtnFEMI",
            "allow-http": true,
            "part-size": "64KiB"
        }
    });
    let Some(ArchiveLocation::S3(found)) = location(section) else {
        panic!("not an S3 location");
    };
    assert_eq!(found.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(found.region.as_deref(), Some("eu-central-1"));
    assert_eq!(found.access_key_id.as_deref(), Some("AKIDEXAMPLE"));
    assert_eq!(
        found.secret_access_key.as_ref().map(Secret::expose),
        Some("wJalrXUtnFEMI")
    );
    assert_eq!((found.allow_http, found.part_size), (Some(true), 65_536));
    let part_size = |value: Value| {
        let section = json!({"directory": "s3://bkt", "s3": {"part-size": value}});
        match location(section) {
            Some(ArchiveLocation::S3(found)) => found.part_size,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(part_size(json!(S3_PART_SIZE_MAX)), S3_PART_SIZE_MAX);
    assert_eq!(part_size(json!("16MiB")), 16 << 20);
}

/// Goal: a bad location or `s3` key is refused with the reason: bucket names break S3's
/// rules, prefixes with empty or dot parts, other URL schemes, part sizes out of range,
/// endpoints that are not URLs, and `s3` without an `s3://` directory.
#[test]
fn cleanup_s3_invalid_values() {
    let directory = |text: &str| cleanup_message(json!({"directory": text}));
    let bucket = |name: &str, reason: &str| {
        assert_eq!(
            directory(&format!("s3://{name}/p")),
            invalid(
                "metric-store.cleanup",
                "directory",
                &format!("bucket \"{name}\" in \"s3://{name}/p\": {reason}")
            )
        );
    };
    bucket("", "must be 3 to 63 characters long");
    bucket("ab", "must be 3 to 63 characters long");
    bucket(&"a".repeat(64), "must be 3 to 63 characters long");
    bucket(
        "My-Bucket",
        "may hold only lowercase letters, digits, '.' and '-'",
    );
    bucket(
        "a_b",
        "may hold only lowercase letters, digits, '.' and '-'",
    );
    bucket("-ab", "must begin and end with a letter or digit");
    bucket("ab.", "must begin and end with a letter or digit");
    bucket("a..b", "must not hold \"..\"");
    bucket("192.168.0.1", "must not be an IP address");
    for prefix in ["a//b", "a/../b", "./a"] {
        assert_eq!(
            directory(&format!("s3://bkt/{prefix}")),
            invalid(
                "metric-store.cleanup",
                "directory",
                &format!(
                    "prefix \"{prefix}\" in \"s3://bkt/{prefix}\": parts between / must not \
                     be empty, \".\" or \"..\", nor hold control characters"
                )
            )
        );
    }
    assert_eq!(
        directory("gs://bkt/p"),
        invalid(
            "metric-store.cleanup",
            "directory",
            "\"gs://bkt/p\" is a URL; the archive is a local directory or s3://bucket/prefix"
        )
    );
    let s3 = |s3: Value| cleanup_message(json!({"directory": "s3://bkt", "s3": s3}));
    for size in [json!("32KiB"), json!(65_535), json!("65MiB"), json!("6GiB")] {
        assert!(
            s3(json!({"part-size": size})).starts_with(&invalid(
                "metric-store.cleanup.s3",
                "part-size",
                "must be from 64KiB to 64MiB"
            )),
            "{size}"
        );
    }
    assert_eq!(
        s3(json!({"endpoint": "minio:9000"})),
        invalid(
            "metric-store.cleanup.s3",
            "endpoint",
            "must be an http:// or https:// URL, found \"minio:9000\""
        )
    );
    assert_eq!(
        s3(json!({"allow-http": "yes"})),
        invalid(
            "metric-store.cleanup.s3",
            "allow-http",
            "expected true or false, found \"yes\""
        )
    );
    let local = invalid(
        "metric-store.cleanup",
        "s3",
        "configures an object store, but directory is not an s3://bucket/prefix location; \
         remove s3 or set directory to s3://…",
    );
    assert_eq!(
        cleanup_message(json!({"mode": "archive", "directory": "/a", "s3": {}})),
        local
    );
    assert_eq!(cleanup_message(json!({"s3": {"region": "x"}})), local);
}

/// Goal: the secret access key never shows: not in the configuration's `Debug` output
/// (which a log line may print), not in any error message, whatever its type.
#[test]
fn cleanup_s3_secret_is_never_shown() {
    const SECRET: &str = "wJalrXUtnFEMI-K7MDENG";
    let section = |s3: Value| cleanup(json!({"directory": "s3://bkt", "s3": s3}));
    let config = parse_ok(&section(json!({"secret-access-key": SECRET})));
    let shown = format!("{config:?} {:#?}", config.store.cleanup);
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("<redacted>"));
    for s3 in [
        json!({"secret-access-key": SECRET, "part-size": 1}),
        json!({"secret-access-key": SECRET, "endpoint": "x"}),
        json!({"secret-access-key": [SECRET]}),
        json!({"secret-access-key": {"value": SECRET}}),
        json!({"secret-access-key": SECRET, "bogus": 1}),
        json!({"endpoint": format!("https://key:{SECRET}@s3.example.org/")}),
    ] {
        let message = message_of(&section(s3.clone()));
        assert!(!message.contains(SECRET), "{s3}: {message}");
    }
    assert_eq!(
        message_of(&section(json!({"endpoint": "http://k:s@h:9000"}))),
        invalid(
            "metric-store.cleanup.s3",
            "endpoint",
            "must not hold credentials; use access-key-id and secret-access-key"
        )
    );
    let fine = section(json!({"endpoint": "http://h:9000/p?x=a@b"}));
    assert!(parse(&fine).is_ok());
    assert_eq!(
        message_of(&section(json!({"secret-access-key": 12345}))),
        invalid(
            "metric-store.cleanup.s3",
            "secret-access-key",
            "expected a string"
        )
    );
}

/// Goal: a missing required key or section is reported with its name and the file.
#[test]
fn missing_required_keys() {
    let missing_key = |document: &Value, section: &str, key: &str| match error_of(document) {
        ConfigError::MissingKey {
            file,
            section: found_section,
            key: found_key,
        } => {
            assert_eq!(file, PathBuf::from(ORIGIN));
            assert_eq!((found_section.as_str(), found_key.as_str()), (section, key));
        }
        other => panic!("expected MissingKey {section}.{key}, got {other:?}"),
    };
    missing_key(&without("/main/addr"), "main", "addr");
    missing_key(&with("/main/addr", Value::Null), "main", "addr");
    missing_key(
        &without("/metric-store/retention-in-memory"),
        "metric-store",
        "retention-in-memory",
    );
    missing_key(
        &with("/metrics/cpu_load", json!({"aggregation": "avg"})),
        "metrics.cpu_load",
        "frequency",
    );
    missing_key(
        &with("/metrics/cpu_load", json!({"frequency": 60})),
        "metrics.cpu_load",
        "aggregation",
    );
    missing_key(
        &with("/metric-store/cleanup", json!({"mode": "archive"})),
        "metric-store.cleanup",
        "directory",
    );
    missing_key(
        &with(
            "/metric-store/cleanup",
            json!({"mode": "archive", "directory": ""}),
        ),
        "metric-store.cleanup",
        "directory",
    );
    missing_key(
        &with(
            "/metric-store/nats-subscriptions",
            json!([{"cluster-tag": "x"}]),
        ),
        "metric-store.nats-subscriptions[0]",
        "subscribe-to",
    );

    // The README lists `memory-cap` as optional: leaving it out means unlimited.
    assert_eq!(
        parse_ok(&without("/metric-store/memory-cap"))
            .store
            .memory_cap_bytes,
        None
    );
    assert_eq!(
        message_of(&without("/main")),
        "config.json: missing required section \"main\""
    );
    assert_eq!(
        message_of(&without("/metric-store")),
        "config.json: missing required section \"metric-store\""
    );
}

/// Goal: `metrics` may be missing, empty or null (Decision 3: auto-registration), and
/// `nats` may be null; an aggregation may be null or "" (none).
#[test]
fn optional_sections_and_null() {
    assert!(parse_ok(&without("/metrics")).metrics.is_empty());
    assert!(parse_ok(&with("/metrics", Value::Null)).metrics.is_empty());
    assert!(parse_ok(&with("/nats", Value::Null)).nats.is_empty());
    let config = parse_ok(&with(
        "/metrics",
        json!({"a": {"frequency": 10, "aggregation": ""}, "b": {"frequency": 1, "aggregation": null}}),
    ));
    assert_eq!(
        config.metrics,
        BTreeMap::from([
            (
                "a".to_owned(),
                MetricConfig {
                    frequency_s: 10,
                    aggregation: Aggregation::None,
                },
            ),
            (
                "b".to_owned(),
                MetricConfig {
                    frequency_s: 1,
                    aggregation: Aggregation::None,
                },
            ),
        ])
    );
    // null for an optional key means its default.
    let store = parse_ok(&with("/metric-store/checkpoint-interval", Value::Null)).store;
    assert_eq!(store.checkpoint_interval, 12 * HOUR);
}

/// Goal: bad metric entries are rejected naming the metric (as the section) and the key.
#[test]
fn invalid_metric_entries() {
    let cases: &[(Value, &str)] = &[
        (
            json!({"frequency": 0, "aggregation": "sum"}),
            "config.json: invalid value for key \"frequency\" in section \"metrics.mem_bw\": \
             must be a number of seconds from 1 to 86400 (one day), found 0",
        ),
        (
            json!({"frequency": -60, "aggregation": "sum"}),
            "config.json: invalid value for key \"frequency\" in section \"metrics.mem_bw\": \
             must be a number of seconds from 1 to 86400 (one day), found -60",
        ),
        (
            // Buffer ends (start + slots × frequency) overflowed: queries returned nothing.
            json!({"frequency": i64::MAX, "aggregation": "sum"}),
            "config.json: invalid value for key \"frequency\" in section \"metrics.mem_bw\": \
             must be a number of seconds from 1 to 86400 (one day), found 9223372036854775807",
        ),
        (
            json!({"frequency": 86_401, "aggregation": "sum"}),
            "config.json: invalid value for key \"frequency\" in section \"metrics.mem_bw\": \
             must be a number of seconds from 1 to 86400 (one day), found 86401",
        ),
        (
            json!({"frequency": 60.5, "aggregation": "sum"}),
            "config.json: invalid value for key \"frequency\" in section \"metrics.mem_bw\": \
             expected an integer, found 60.5",
        ),
        (
            json!({"frequency": "60", "aggregation": "sum"}),
            "config.json: invalid value for key \"frequency\" in section \"metrics.mem_bw\": \
             expected an integer, found \"60\"",
        ),
        (
            json!({"frequency": 60, "aggregation": "max"}),
            "config.json: invalid value for key \"aggregation\" in section \"metrics.mem_bw\": \
             unknown aggregation \"max\" (expected \"sum\", \"avg\" or null)",
        ),
        (
            json!({"frequency": 60, "aggregation": 1}),
            "config.json: invalid value for key \"aggregation\" in section \"metrics.mem_bw\": \
             expected \"sum\", \"avg\" or null, found 1",
        ),
        (
            json!([60, "sum"]),
            "config.json: section \"metrics.mem_bw\" must be a JSON object, found an array",
        ),
    ];
    for (entry, expected) in cases {
        assert_eq!(
            message_of(&with("/metrics/mem_bw", entry.clone())),
            *expected,
            "{entry}"
        );
    }
    assert_eq!(
        message_of(&with(
            "/metrics/",
            json!({"frequency": 60, "aggregation": "sum"})
        )),
        "config.json: invalid value for key \"\" in section \"metrics\": a metric name must \
         not be empty"
    );
}

/// Goal: values of the wrong type or out of range in `metric-store` are rejected with the
/// key, section and reason.
#[test]
fn invalid_store_values() {
    let cases: &[(&str, Value, &str, &str, &str)] = &[
        (
            "/metric-store/retention-in-memory",
            json!("-1s"),
            "metric-store",
            "retention-in-memory",
            "must be greater than zero, found \"-1s\"",
        ),
        (
            "/metric-store/retention-in-memory",
            json!("0"),
            "metric-store",
            "retention-in-memory",
            "must be greater than zero, found \"0\"",
        ),
        (
            "/metric-store/retention-in-memory",
            json!("48"),
            "metric-store",
            "retention-in-memory",
            "missing unit in duration \"48\" (units: ns, us, ms, s, m, h)",
        ),
        (
            "/metric-store/retention-in-memory",
            json!("2d"),
            "metric-store",
            "retention-in-memory",
            "unknown unit \"d\" in duration \"2d\" (units: ns, us, ms, s, m, h)",
        ),
        (
            "/metric-store/retention-in-memory",
            json!(172_800),
            "metric-store",
            "retention-in-memory",
            "expected a string, found 172800",
        ),
        (
            "/metric-store/checkpoint-interval",
            json!("0s"),
            "metric-store",
            "checkpoint-interval",
            "must be greater than zero, found \"0s\"",
        ),
        (
            "/metric-store/memory-cap",
            json!(-1),
            "metric-store",
            "memory-cap",
            "expected a non-negative integer, found -1",
        ),
        (
            "/metric-store/memory-cap",
            json!(1.5),
            "metric-store",
            "memory-cap",
            "expected a non-negative integer, found 1.5",
        ),
        (
            "/metric-store/memory-cap",
            json!(20_000_000_000_u64),
            "metric-store",
            "memory-cap",
            "20000000000 GB is too large",
        ),
        (
            "/metric-store/num-workers",
            json!(-2),
            "metric-store",
            "num-workers",
            "expected a non-negative integer, found -2",
        ),
        (
            "/metric-store/default-frequency",
            json!(0),
            "metric-store",
            "default-frequency",
            "must be a number of seconds from 1 to 86400 (one day), found 0",
        ),
        (
            "/metric-store/default-frequency",
            json!(i64::MAX),
            "metric-store",
            "default-frequency",
            "must be a number of seconds from 1 to 86400 (one day), found 9223372036854775807",
        ),
        (
            "/metric-store/checkpoints/file-format",
            json!("avro"),
            "metric-store.checkpoints",
            "file-format",
            "expected one of \"wal\", \"json\", found \"avro\"",
        ),
        (
            "/metric-store/checkpoints/max-wal-size",
            json!(-5),
            "metric-store.checkpoints",
            "max-wal-size",
            "expected a non-negative integer or a size such as \"64MiB\", found -5",
        ),
        (
            "/metric-store/cleanup/mode",
            json!("move"),
            "metric-store.cleanup",
            "mode",
            "expected one of \"delete\", \"archive\", found \"move\"",
        ),
        (
            "/metric-store/nats-subscriptions",
            json!({"subscribe-to": "x"}),
            "metric-store",
            "nats-subscriptions",
            "expected an array, found an object",
        ),
        (
            // A cluster-tag becomes the cluster of the lines received: ingest's name rule.
            "/metric-store/nats-subscriptions",
            json!([{"subscribe-to": "x", "cluster-tag": "..evil"}]),
            "metric-store.nats-subscriptions[0]",
            "cluster-tag",
            "cluster \"..evil\" contains '/', '\\' or '..', or is '.'",
        ),
        (
            "/metric-store/wal/fsync",
            json!("sometimes"),
            "metric-store.wal",
            "fsync",
            "expected one of \"always\", \"batch\", \"never\", \"off\", found \"sometimes\"",
        ),
        (
            "/metric-store/wal/fsync",
            json!(true),
            "metric-store.wal",
            "fsync",
            "expected a string, found true",
        ),
        (
            "/metric-store/wal/fsync-interval",
            json!("-100ms"),
            "metric-store.wal",
            "fsync-interval",
            "must be greater than zero, found \"-100ms\"",
        ),
        (
            "/metric-store/wal/segment-size",
            json!(0),
            "metric-store.wal",
            "segment-size",
            "must be greater than 0",
        ),
        (
            "/metric-store/wal/segment-size",
            json!("1.5GiB"),
            "metric-store.wal",
            "segment-size",
            "invalid size \"1.5GiB\" (expected bytes, optionally with a unit, such as \"64MiB\" \
             or \"1GB\")",
        ),
        (
            "/metric-store/resampling/algorithm",
            json!("m4"),
            "metric-store.resampling",
            "algorithm",
            "expected one of \"lttb\", \"average\", found \"m4\"",
        ),
        (
            "/metric-store/resampling/minimum-points",
            json!(0),
            "metric-store.resampling",
            "minimum-points",
            "must be greater than 0",
        ),
        (
            "/metric-store/limits/body-size",
            json!("5TB"),
            "metric-store.limits",
            "body-size",
            "unknown unit \"TB\" in size \"5TB\" (units: B, KB, MB, GB, KiB, MiB, GiB)",
        ),
        (
            "/metric-store/limits/tags-per-line",
            json!(0),
            "metric-store.limits",
            "tags-per-line",
            "must be greater than 0",
        ),
        (
            "/metric-store/limits/name-length",
            json!(0),
            "metric-store.limits",
            "name-length",
            "must be greater than 0",
        ),
        (
            "/metric-store/limits/request-timeout",
            json!("0s"),
            "metric-store.limits",
            "request-timeout",
            "must be greater than zero, found \"0s\"",
        ),
        (
            "/metric-store/limits/points-per-query",
            json!(0),
            "metric-store.limits",
            "points-per-query",
            "must be greater than 0",
        ),
        (
            "/metric-store/limits/concurrent-queries",
            json!(0),
            "metric-store.limits",
            "concurrent-queries",
            "must be greater than 0",
        ),
        (
            "/metric-store/limits/header-timeout",
            json!("0s"),
            "metric-store.limits",
            "header-timeout",
            "must be greater than zero, found \"0s\"",
        ),
        (
            "/metric-store/limits/connections",
            json!(0),
            "metric-store.limits",
            "connections",
            "must be greater than 0",
        ),
    ];
    for (pointer, value, expected_section, expected_key, expected_reason) in cases {
        let error = error_of(&with(pointer, value.clone()));
        match error {
            ConfigError::InvalidValue {
                file,
                section,
                key,
                reason,
            } => {
                assert_eq!(file, PathBuf::from(ORIGIN), "{pointer}");
                assert_eq!(
                    (section.as_str(), key.as_str(), reason.as_str()),
                    (*expected_section, *expected_key, *expected_reason),
                    "{pointer} = {value}"
                );
            }
            other => panic!("{pointer} = {value}: unexpected {other:?}"),
        }
    }
}

/// Goal: the whole message of a value error reads well.
#[test]
fn invalid_value_message() {
    assert_eq!(
        message_of(&with("/metric-store/retention-in-memory", json!("-1s"))),
        "config.json: invalid value for key \"retention-in-memory\" in section \
         \"metric-store\": must be greater than zero, found \"-1s\""
    );
    assert_eq!(
        message_of(&json!([1, 2])),
        "config.json: the top level must be a JSON object, found an array"
    );
    assert_eq!(
        message_of(&with("/main", json!("0.0.0.0:8082"))),
        "config.json: section \"main\" must be a JSON object, found \"0.0.0.0:8082\""
    );
}

/// Goal: listen addresses are checked and Go's `:port` form is made bindable.
#[test]
fn listen_addresses() {
    let accepted: &[(&str, &str)] = &[
        ("0.0.0.0:8082", "0.0.0.0:8082"),
        ("127.0.0.1:0", "127.0.0.1:0"),
        ("[::]:8082", "[::]:8082"),
        ("[::1]:8082", "[::1]:8082"),
        ("localhost:8082", "localhost:8082"),
        (
            "metrics-01.cluster.example.org:443",
            "metrics-01.cluster.example.org:443",
        ),
        (":8082", "0.0.0.0:8082"),
    ];
    for &(input, expected) in accepted {
        assert_eq!(
            parse_ok(&with("/main/addr", json!(input))).main.addr,
            expected,
            "{input}"
        );
    }
    let rejected: &[(&str, &str)] = &[
        (
            "",
            "must not be empty; give host:port, e.g. \"0.0.0.0:8082\"",
        ),
        ("8082", "expected host:port, found \"8082\""),
        ("localhost", "expected host:port, found \"localhost\""),
        (
            "localhost:http",
            "expected host:port with a port number 0-65535, found \"localhost:http\"",
        ),
        (
            "0.0.0.0:65536",
            "expected host:port with a port number 0-65535, found \"0.0.0.0:65536\"",
        ),
        (
            "::1:8082",
            "invalid IPv6 address in \"::1:8082\" (write it in brackets, e.g. \"[::1]:8082\")",
        ),
        (
            "[::g]:8082",
            "invalid IPv6 address in \"[::g]:8082\" (write it in brackets, e.g. \"[::1]:8082\")",
        ),
        ("my host:8082", "invalid host name in \"my host:8082\""),
        ("http://x:8082", "invalid host name in \"http://x:8082\""),
    ];
    for &(input, expected) in rejected {
        match error_of(&with("/main/addr", json!(input))) {
            ConfigError::InvalidValue {
                section,
                key,
                reason,
                ..
            } => {
                assert_eq!((section.as_str(), key.as_str()), ("main", "addr"));
                assert_eq!(reason, expected, "{input:?}");
            }
            other => panic!("{input:?}: unexpected {other:?}"),
        }
    }
}

/// Goal: the JWT key must be standard base64 of exactly 32 bytes; empty means no auth.
#[test]
fn jwt_public_key() {
    let key_of = |text: &str| parse(&with("/main/jwt-public-key", json!(text)));
    assert_eq!(key_of("").unwrap().main.jwt_public_key, None);
    let thirty_two: [u8; 32] = std::array::from_fn(|index| index as u8);
    assert_eq!(
        key_of("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .unwrap()
            .main
            .jwt_public_key,
        Some(thirty_two)
    );
    let reason_of = |text: &str| match key_of(text) {
        Err(ConfigError::InvalidValue {
            section,
            key,
            reason,
            ..
        }) => {
            assert_eq!((section.as_str(), key.as_str()), ("main", "jwt-public-key"));
            reason
        }
        other => panic!("{text:?}: unexpected {other:?}"),
    };
    assert_eq!(
        reason_of("AAECAwQFBgcICQoLDA0ODw=="),
        "an Ed25519 public key is 32 bytes, but this decodes to 16 bytes"
    );
    assert_eq!(
        reason_of("not base64!"),
        "not valid standard base64: Invalid symbol 32, offset 3."
    );
    // URL-safe alphabet and missing padding are rejected, like Go's StdEncoding.
    assert_eq!(
        reason_of("kzfYrYy-TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0="),
        "not valid standard base64: Invalid symbol 45, offset 7."
    );
    assert_eq!(
        reason_of("kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0"),
        "not valid standard base64: Invalid padding"
    );
    assert_eq!(
        message_of(&with(
            "/main/jwt-public-key",
            json!("AAECAwQFBgcICQoLDA0ODw==")
        )),
        "config.json: invalid value for key \"jwt-public-key\" in section \"main\": an \
         Ed25519 public key is 32 bytes, but this decodes to 16 bytes"
    );
}

/// Goal (issue 11 item 2): `https-cert-file` and `https-key-file` are read as
/// cc-metric-store reads them (both set: HTTPS; both empty: plain HTTP), and one without the
/// other is an error instead of cc-metric-store's silent plain HTTP. The files themselves are
/// read at startup (`tests/https.rs`).
#[test]
fn https_files() {
    let mut document = minimal();
    set(
        &mut document,
        "/main",
        json!({"addr": ":8082", "https-cert-file": "/etc/ccms/cert.pem",
               "https-key-file": "key.pem"}),
    );
    assert_eq!(
        parse_ok(&document).main.https,
        Some(TlsFiles {
            cert_file: PathBuf::from("/etc/ccms/cert.pem"),
            key_file: PathBuf::from("key.pem"),
        })
    );
    set(
        &mut document,
        "/main",
        json!({"addr": ":8082", "https-cert-file": "", "https-key-file": null}),
    );
    assert_eq!(parse_ok(&document).main.https, None);
    assert_eq!(
        message_of(&with("/main/https-cert-file", json!("/etc/cert.pem"))),
        "config.json: invalid value for key \"https-key-file\" in section \"main\": must be \
         set with https-cert-file (HTTPS needs both)"
    );
    assert_eq!(
        message_of(&with("/main/https-key-file", json!("/etc/key.pem"))),
        "config.json: invalid value for key \"https-cert-file\" in section \"main\": must be \
         set with https-key-file (HTTPS needs both)"
    );
}

/// Goal: a key of small order (a weak key: anyone can make a signature verify against it)
/// is refused when the file is read. Before: accepted; every forged token then passed.
#[test]
fn jwt_public_key_of_small_order_is_refused() {
    // The identity point (y = 1) and the point of order 2 (y = -1).
    let mut order_two = [0xff_u8; 32];
    order_two[0] = 0xec;
    order_two[31] = 0x7f;
    let identity = {
        let mut bytes = [0_u8; 32];
        bytes[0] = 1;
        bytes
    };
    for key in [identity, order_two] {
        let text = base64::engine::general_purpose::STANDARD.encode(key);
        assert_eq!(
            message_of(&with("/main/jwt-public-key", json!(text))),
            "config.json: invalid value for key \"jwt-public-key\" in section \"main\": not a \
             usable Ed25519 public key: not a curve point, or one of small order (anyone could \
             sign tokens for it)",
            "{text}"
        );
    }
}

/// Goal: Strata's `main.jwt-roles` reads both route classes as non-empty role lists, and
/// needs `jwt-public-key`; a wrong shape names the key.
#[test]
fn jwt_roles() {
    let key = base64::engine::general_purpose::STANDARD.encode(EXAMPLE_KEY);
    let secured = |roles: Value| {
        let mut document = with("/main/jwt-public-key", json!(key));
        set(&mut document, "/main/jwt-roles", roles);
        document
    };
    let config = parse_ok(&secured(
        json!({"read": ["api", "admin"], "write": ["collector"]}),
    ));
    assert_eq!(
        config.main.jwt_roles,
        Some(strata_server::auth::JwtRoles {
            read: vec!["api".to_owned(), "admin".to_owned()],
            write: vec!["collector".to_owned()],
        })
    );
    assert_eq!(parse_ok(&secured(Value::Null)).main.jwt_roles, None);
    let cases = [
        (
            with("/main/jwt-roles", json!({"read": ["a"], "write": ["b"]})),
            "config.json: invalid value for key \"jwt-roles\" in section \"main\": needs \
             jwt-public-key: without a key no token is checked",
        ),
        (
            secured(json!({"read": [], "write": ["b"]})),
            "config.json: invalid value for key \"read\" in section \"main.jwt-roles\": list \
             at least one role, none of them empty (a token needs one of them)",
        ),
        (
            secured(json!({"read": ["a"], "write": [""]})),
            "config.json: invalid value for key \"write\" in section \"main.jwt-roles\": list \
             at least one role, none of them empty (a token needs one of them)",
        ),
    ];
    for (document, expected) in cases {
        assert_eq!(message_of(&document), expected);
    }
    for (roles, needle) in [
        (json!({"read": ["a"]}), "\"write\""),
        (json!({"read": ["a"], "write": "b"}), "\"write\""),
        (json!({"read": ["a"], "write": [1]}), "\"write\""),
        (
            json!({"read": ["a"], "write": ["b"], "free": ["c"]}),
            "\"free\"",
        ),
        (json!(["a"]), "jwt-roles"),
    ] {
        let message = message_of(&secured(roles.clone()));
        assert!(message.contains(needle), "{roles}: {message}");
    }
}

/// Goal: features Strata does not implement are refused loudly when switched on, and
/// accepted when left at their "off" value (Decision 17).
#[test]
fn unsupported_features() {
    let cases: &[(&str, Value, &str, &str, &str)] = &[
        (
            "/main/user",
            json!("ccms"),
            "main",
            "user",
            PRIVILEGE_DROP_NOT_SUPPORTED,
        ),
        (
            "/main/group",
            json!("ccms"),
            "main",
            "group",
            PRIVILEGE_DROP_NOT_SUPPORTED,
        ),
        (
            "/main/backend-url",
            json!("http://cc-backend:8080"),
            "main",
            "backend-url",
            BACKEND_URL_NOT_SUPPORTED,
        ),
        (
            "/main/debug/gops",
            json!(true),
            "main.debug",
            "gops",
            GOPS_NOT_SUPPORTED,
        ),
        (
            "/metric-store/debug/gops",
            json!(true),
            "metric-store.debug",
            "gops",
            GOPS_NOT_SUPPORTED,
        ),
    ];
    for (pointer, value, expected_section, expected_key, expected_reason) in cases {
        match error_of(&with(pointer, value.clone())) {
            ConfigError::NotSupported {
                file,
                section,
                key,
                reason,
            } => {
                assert_eq!(file, PathBuf::from(ORIGIN));
                assert_eq!(
                    (section.as_str(), key.as_str(), reason),
                    (*expected_section, *expected_key, *expected_reason),
                    "{pointer}"
                );
            }
            other => panic!("{pointer}: unexpected {other:?}"),
        }
    }
    let mut document = minimal();
    set(
        &mut document,
        "/main",
        json!({
            "addr": "0.0.0.0:8082", "https-cert-file": "", "https-key-file": "", "user": "",
            "group": "", "backend-url": "", "jwt-public-key": "",
            "debug": {"dump-to-file": "/tmp/x", "gops": false}
        }),
    );
    set(
        &mut document,
        "/metric-store/debug",
        json!({"dump-to-file": "", "gops": null}),
    );
    let config = parse_ok(&document);
    assert_eq!(config.main.addr, "0.0.0.0:8082");
    assert_eq!(config.main.jwt_public_key, None);
}

/// Goal: syntax errors give file, line and column.
#[test]
fn invalid_json_reports_line_and_column() {
    let text = "{\n  \"main\": {\"addr\": \"0.0.0.0:8082\"},\n  \"metrics\": {,}\n}";
    match Config::from_json(text, Path::new("/etc/ccms/config.json")) {
        Err(ConfigError::Json {
            file,
            line,
            column,
            message,
        }) => {
            assert_eq!(file, PathBuf::from("/etc/ccms/config.json"));
            assert_eq!((line, column), (3, 15));
            assert_eq!(message, "key must be a string");
        }
        other => panic!("unexpected {other:?}"),
    }
    let error = Config::from_json("{\"main\": ", Path::new(ORIGIN)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "config.json:1:9: invalid JSON: EOF while parsing a value"
    );
    let error = Config::from_json("", Path::new(ORIGIN)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "config.json:1:0: invalid JSON: EOF while parsing a value"
    );
}

/// Goal: a missing configuration file is an error naming it (cc-metric-store would go on
/// without it and then fail on the missing `main` section).
#[test]
fn missing_file() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("nope.json");
    match Config::from_file(&path) {
        Err(ConfigError::Read { path: found, error }) => {
            assert_eq!(found, path);
            assert_eq!(error.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Goal: `from_file` reads a file and records it as the source.
#[test]
fn from_file_reads_and_records_source() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("config.json");
    std::fs::write(&path, COMPAT_EXAMPLE).unwrap();
    let config = Config::from_file(&path).unwrap();
    assert_eq!(config.source, Some(path));
    assert_eq!(config.metrics.len(), 3);
    assert_eq!(config.main.jwt_public_key, Some(EXAMPLE_KEY));
}

/// Writes `files` (name → contents) into a fresh temporary directory.
fn write_files(files: &[(&str, &str)]) -> tempfile::TempDir {
    let directory = tempfile::tempdir().unwrap();
    for (name, contents) in files {
        std::fs::write(directory.path().join(name), contents).unwrap();
    }
    directory
}

const METRICS_JSON: &str = r#"{"cpu_load": {"frequency": 30, "aggregation": null},
                               "flops_any": {"frequency": 60, "aggregation": "sum"}}"#;

/// Goal: `<name>-file` loads a section from another file, relative to the configuration
/// file's directory or absolute; errors inside it name that file.
#[test]
fn section_files() {
    let directory = write_files(&[
        ("metrics.json", METRICS_JSON),
        (
            "store.json",
            r#"{"retention-in-memory": "2h", "memory-cap": 1}"#,
        ),
        ("main.json", r#"{"addr": "localhost:9000"}"#),
        ("nats.json", r#"{"address": "nats://n:4222"}"#),
        (
            "bad-metrics.json",
            r#"{"cpu_load": {"frequency": 30, "aggregation": "sum", "unit": "load"}}"#,
        ),
        ("broken.json", "{\"cpu_load\": \n  nope}"),
        (
            "config.json",
            r#"{"main-file": "main.json", "metrics-file": "metrics.json",
                "nats-file": "./nats.json", "metric-store-file": "store.json"}"#,
        ),
    ]);
    let root = directory.path();
    let config = Config::from_file(&root.join("config.json")).unwrap();
    assert_eq!(config.main.addr, "localhost:9000");
    assert_eq!(
        config.metrics.get("cpu_load"),
        Some(&MetricConfig {
            frequency_s: 30,
            aggregation: Aggregation::None,
        })
    );
    assert_eq!(
        config.metrics.get("flops_any"),
        Some(&MetricConfig {
            frequency_s: 60,
            aggregation: Aggregation::Sum,
        })
    );
    assert_eq!(config.metrics.len(), 2);
    assert_eq!(
        config.nats.first().map(|nats| nats.addresses.clone()),
        Some(vec!["nats://n:4222".to_owned()])
    );
    assert_eq!(config.store.retention_in_memory, 2 * HOUR);
    assert_eq!(config.store.memory_cap_bytes, Some(1_000_000_000));

    // An absolute path works from a configuration given as text anywhere.
    let mut document = without("/metrics");
    let absolute = root.join("metrics.json");
    set(
        &mut document,
        "/metrics-file",
        json!(absolute.to_str().unwrap()),
    );
    assert_eq!(parse_ok(&document).metrics.len(), 2);

    // Errors inside the included file name that file.
    let config_path = root.join("config.json");
    let load = |metrics_file: &str| {
        let mut document = without("/metrics");
        set(&mut document, "/metrics-file", json!(metrics_file));
        Config::from_json(&document.to_string(), &config_path)
    };
    match load("bad-metrics.json") {
        Err(ConfigError::UnknownKey {
            file, section, key, ..
        }) => {
            assert_eq!(file, root.join("bad-metrics.json"));
            assert_eq!(
                (section.as_str(), key.as_str()),
                ("metrics.cpu_load", "unit")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    match load("broken.json") {
        Err(ConfigError::Json {
            file, line, column, ..
        }) => {
            assert_eq!(file, root.join("broken.json"));
            assert_eq!((line, column), (2, 4));
        }
        other => panic!("unexpected {other:?}"),
    }
    match load("absent.json") {
        Err(ConfigError::Include {
            file,
            key,
            path,
            error,
        }) => {
            assert_eq!(file, config_path);
            assert_eq!(key, "metrics-file");
            assert_eq!(path, root.join("absent.json"));
            assert_eq!(error.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("unexpected {other:?}"),
    }
    match load("") {
        Err(ConfigError::InvalidValue {
            section,
            key,
            reason,
            ..
        }) => {
            assert_eq!((section.as_str(), key.as_str()), ("", "metrics-file"));
            assert_eq!(reason, "must name a JSON file, found \"\"");
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Goal: a relative `<name>-file` that does not exist next to the configuration file is
/// looked up in the working directory, as cc-metric-store does.
/// Method: the test's working directory is the crate root, which holds `Cargo.toml`; that is
/// not JSON, so the error names the file that was actually read.
#[test]
fn section_file_falls_back_to_working_directory() {
    let directory = write_files(&[]);
    let mut document = without("/metrics");
    set(&mut document, "/metrics-file", json!("Cargo.toml"));
    match Config::from_json(&document.to_string(), &directory.path().join("config.json")) {
        Err(ConfigError::Json { file, line, .. }) => {
            assert_eq!(file, PathBuf::from("Cargo.toml"));
            assert_eq!(line, 1);
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Goal: a section given both inline and as a file is ambiguous and rejected.
#[test]
fn section_and_section_file_together() {
    let document = with("/metrics-file", json!("metrics.json"));
    match error_of(&document) {
        ConfigError::DuplicateSection { file, section } => {
            assert_eq!(file, PathBuf::from(ORIGIN));
            assert_eq!(section, "metrics");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        message_of(&document),
        "config.json: both \"metrics\" and \"metrics-file\" are given; use one"
    );
    assert_eq!(
        message_of(&with("/main-file", json!(7))),
        "config.json: invalid value for key \"main-file\" at the top level: expected a \
         string, found 7"
    );
}

/// Goal: `num-workers` 0 or absent means the computed default, any other value is kept.
#[test]
fn num_workers() {
    assert_eq!(
        parse_ok(&with("/metric-store/num-workers", json!(0)))
            .store
            .num_workers,
        default_num_workers()
    );
    assert_eq!(
        parse_ok(&minimal()).store.num_workers,
        default_num_workers()
    );
    assert_eq!(
        parse_ok(&with("/metric-store/num-workers", json!(16)))
            .store
            .num_workers,
        16
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(default_num_workers(), (cpus / 2 + 1).min(10));
}

/// Goal: keys echoed in errors are capped so a pathological file cannot flood the log.
#[test]
fn long_keys_are_clipped() {
    let long_key = "k".repeat(300);
    match error_of(&with(&format!("/main/{long_key}"), json!(1))) {
        ConfigError::UnknownKey { key, .. } => {
            assert_eq!(key, format!("{}…", "k".repeat(100)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(clip("aé", 2), "a…");
    assert_eq!(clip("abc", 3), "abc");
}

/// Goal: a file over the size cap is refused before it is parsed (the cap is 64 KiB under
/// test instead of 16 MiB).
#[test]
fn oversized_file_is_refused() {
    assert_eq!(CONFIG_FILE_BYTES_MAX, 65_536);
    let padding = " ".repeat(65_536);
    let directory = write_files(&[("config.json", &format!("{{}}{padding}"))]);
    let path = directory.path().join("config.json");
    match Config::from_file(&path) {
        Err(ConfigError::Read { path: found, error }) => {
            assert_eq!(found, path);
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            assert_eq!(
                error.to_string(),
                "larger than 65536 bytes; is this a configuration file?"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// `minimal()` with `metric-store.remote-write` set to `endpoints`.
fn with_remote_write(endpoints: Value) -> Value {
    with("/metric-store/remote-write", endpoints)
}

const VM_URL: &str = "http://vm:8428/api/v1/write";

/// Goal: every key of a remote-write endpoint lands in its field of
/// `strata_forward::EndpointConfig`, and an endpoint with only a URL gets the forwarder's
/// defaults and a name derived from the URL.
#[test]
fn remote_write_parses_every_key() {
    use strata_forward::config::{BasicAuth, TlsConfig, default_name};
    use strata_forward::{EndpointConfig, Protocol, QueueConfig, RelabelAction, RelabelRule};
    let document = with_remote_write(json!([
        {
            "name": "site-vm", "url": VM_URL, "protocol": "2.0", "timeout": "10s",
            "headers": {"X-Scope-OrgID": "hpc"},
            "basic-auth": {"username": "u", "password-file": "/etc/strata/pw"},
            "tls": {"ca-file": "/etc/ca.pem", "cert-file": "/etc/c.pem", "key-file": "/etc/k.pem",
                    "insecure-skip-verify": true},
            "external-labels": {"site": "fau"},
            "relabel": [
                {"action": "drop", "source-labels": ["__name__"], "regex": "debug_.*"},
                {"source-labels": ["cluster", "hostname"], "separator": "/", "regex": "(.+)/(.+)",
                 "target-label": "instance", "replacement": "$2"},
                {"action": "labeldrop", "regex": "type_id"}
            ],
            "queue": {"min-shards": 2, "max-shards": 8, "max-samples-per-send": 500,
                      "batch-send-deadline": "1s", "min-backoff": "50ms", "max-backoff": "10s",
                      "retry-on-http-429": false},
            "max-backlog-bytes": "1GiB", "max-backlog-age": "6h"
        },
        {"url": "https://other.example.org/write", "bearer-token-file": "/etc/strata/token"},
        {"url": "http://[::1]:9090/api/v1/write", "name": null, "protocol": "1.0"}
    ]));
    let endpoints = parse_ok(&document).store.remote_write;
    let full = EndpointConfig {
        name: "site-vm".to_owned(),
        url: VM_URL.to_owned(),
        protocol: Protocol::V2,
        timeout: Duration::from_secs(10),
        headers: BTreeMap::from([("X-Scope-OrgID".to_owned(), "hpc".to_owned())]),
        basic_auth: Some(BasicAuth {
            username: "u".to_owned(),
            password_file: PathBuf::from("/etc/strata/pw"),
        }),
        bearer_token_file: None,
        tls: TlsConfig {
            ca_file: Some(PathBuf::from("/etc/ca.pem")),
            cert_file: Some(PathBuf::from("/etc/c.pem")),
            key_file: Some(PathBuf::from("/etc/k.pem")),
            insecure_skip_verify: true,
        },
        external_labels: BTreeMap::from([("site".to_owned(), "fau".to_owned())]),
        relabel: vec![
            RelabelRule {
                action: RelabelAction::Drop,
                source_labels: vec!["__name__".to_owned()],
                separator: ";".to_owned(),
                regex: "debug_.*".to_owned(),
                target_label: None,
                replacement: "$1".to_owned(),
            },
            RelabelRule {
                action: RelabelAction::Replace,
                source_labels: vec!["cluster".to_owned(), "hostname".to_owned()],
                separator: "/".to_owned(),
                regex: "(.+)/(.+)".to_owned(),
                target_label: Some("instance".to_owned()),
                replacement: "$2".to_owned(),
            },
            RelabelRule {
                action: RelabelAction::LabelDrop,
                source_labels: Vec::new(),
                separator: ";".to_owned(),
                regex: "type_id".to_owned(),
                target_label: None,
                replacement: "$1".to_owned(),
            },
        ],
        queue: QueueConfig {
            min_shards: 2,
            max_shards: 8,
            max_samples_per_send: 500,
            batch_send_deadline: Duration::from_secs(1),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(10),
            retry_on_http_429: false,
        },
        max_backlog_bytes: 1 << 30,
        max_backlog_age: 6 * HOUR,
    };
    let mut bearer = EndpointConfig::new("https://other.example.org/write");
    bearer.bearer_token_file = Some(PathBuf::from("/etc/strata/token"));
    let ipv6 = EndpointConfig::new("http://[::1]:9090/api/v1/write");
    assert_eq!(endpoints, [full, bearer, ipv6]);
    assert_eq!(
        endpoints[1].name,
        default_name("https://other.example.org/write")
    );
    assert!(endpoints[1].name.starts_with("rw-"));

    // Absent, null and empty all mean no forwarding.
    for value in [Value::Null, json!([])] {
        assert!(
            parse_ok(&with_remote_write(value))
                .store
                .remote_write
                .is_empty()
        );
    }
    assert!(parse_ok(&minimal()).store.remote_write.is_empty());
    assert!(Config::embedded_default().store.remote_write.is_empty());
}

/// Goal: every remote-write validation error names the file, the section path of the
/// endpoint (or its sub-object) and the key, and says why.
#[test]
fn remote_write_invalid_values() {
    let endpoint = |extra: Value| {
        let mut entry = json!({"url": VM_URL});
        for (key, value) in extra.as_object().expect("an object") {
            entry[key] = value.clone();
        }
        entry
    };
    let rw0 = "metric-store.remote-write[0]";
    let long_name = "n".repeat(65);
    #[rustfmt::skip]
    let cases: Vec<(Value, &str, &str, &str)> = vec![
        // url
        (json!({"url": "vm:8428/write"}), rw0, "url", "must start with http:// or https://"),
        (json!({"url": "ftp://vm/write"}), rw0, "url", "must start with http:// or https://"),
        (json!({"url": "http:///write"}), rw0, "url", "has no host"),
        (json!({"url": "https://"}), rw0, "url", "has no host"),
        (json!({"url": "http://vm:0/write"}), rw0, "url", "port must be a number from 1 to 65535"),
        (json!({"url": "http://vm:http/write"}), rw0, "url", "port must be a number"),
        (json!({"url": "http://u:p@vm/write"}), rw0, "url", "use basic-auth"),
        (json!({"url": "http://vm /write"}), rw0, "url", "printable ASCII without spaces"),
        (json!({"url": "http://[::1/write"}), rw0, "url", "lacks its ']'"),
        (json!({"url": "http://[zz]/write"}), rw0, "url", "invalid IPv6 address"),
        (json!({"url": "http://v!m/write"}), rw0, "url", "invalid host"),
        (json!({"url": 8428}), rw0, "url", "expected a string"),
        // name
        (endpoint(json!({"name": "a/b"})), rw0, "name", "not a valid endpoint name"),
        (endpoint(json!({"name": ".."})), rw0, "name", "not only dots"),
        (endpoint(json!({"name": long_name})), rw0, "name", "1 to 64"),
        // protocol, durations, sizes
        (endpoint(json!({"protocol": "3.0"})), rw0, "protocol", "expected one of \"1.0\", \"2.0\""),
        (endpoint(json!({"protocol": 1})), rw0, "protocol", "expected a string"),
        (endpoint(json!({"timeout": "0s"})), rw0, "timeout", "must be greater than zero"),
        (endpoint(json!({"timeout": "-5s"})), rw0, "timeout", "must be greater than zero"),
        (endpoint(json!({"max-backlog-age": "1d"})), rw0, "max-backlog-age", "unknown unit"),
        (endpoint(json!({"max-backlog-bytes": 0})), rw0, "max-backlog-bytes", "greater than 0"),
        (endpoint(json!({"max-backlog-bytes": "10 GB!"})), rw0, "max-backlog-bytes", "10 GB!"),
        // headers
        (endpoint(json!({"headers": {"Authorization": "Bearer x"}})), rw0, "headers", "use basic-auth or bearer-token-file"),
        (endpoint(json!({"headers": {"content-TYPE": "x"}})), rw0, "headers", "set by the forwarder"),
        (endpoint(json!({"headers": {"X-Prometheus-Remote-Write-Version": "9"}})), rw0, "headers", "set by the forwarder"),
        (endpoint(json!({"headers": {"Host": "x"}})), rw0, "headers", "set by the forwarder"),
        (endpoint(json!({"headers": {"X-A": "1", "x-a": "2"}})), rw0, "headers", "given twice"),
        (endpoint(json!({"headers": {"X A": "1"}})), rw0, "headers", "not a valid header name"),
        (endpoint(json!({"headers": {"X-A": "1\r\nX-B: 2"}})), rw0, "headers", "printable ASCII on one line"),
        (endpoint(json!({"headers": {"X-A": 1}})), rw0, "headers", "must be a string"),
        (endpoint(json!({"headers": ["X-A"]})), rw0, "headers", "expected an object of strings"),
        // credentials and TLS
        (endpoint(json!({"basic-auth": {"username": "u", "password-file": "/pw"},
                         "bearer-token-file": "/token"})),
         rw0, "bearer-token-file", "cannot be combined with basic-auth"),
        (endpoint(json!({"tls": {"cert-file": "/c.pem"}})), "metric-store.remote-write[0].tls", "cert-file", "give key-file too"),
        (endpoint(json!({"tls": {"key-file": "/k.pem"}})), "metric-store.remote-write[0].tls", "key-file", "give cert-file too"),
        (endpoint(json!({"tls": {"insecure-skip-verify": "yes"}})), "metric-store.remote-write[0].tls", "insecure-skip-verify", "expected true or false"),
        // external labels
        (endpoint(json!({"external-labels": {"1site": "x"}})), rw0, "external-labels", "not a valid label name"),
        (endpoint(json!({"external-labels": {"si-te": "x"}})), rw0, "external-labels", "not a valid label name"),
        (endpoint(json!({"external-labels": {"__site": "x"}})), rw0, "external-labels", "reserved"),
        (endpoint(json!({"external-labels": {"site": ""}})), rw0, "external-labels", "must not be empty"),
        // relabel
        (endpoint(json!({"relabel": [{"action": "hashmod", "target-label": "x"}]})), "metric-store.remote-write[0].relabel[0]", "action", "expected one of \"keep\", \"drop\", \"replace\", \"labeldrop\", \"labelkeep\""),
        (endpoint(json!({"relabel": [{"action": "keep", "regex": "(unclosed"}]})), "metric-store.remote-write[0].relabel[0]", "regex", "does not compile"),
        (endpoint(json!({"relabel": [{"action": "keep", "regex": "a)|(b"}]})), "metric-store.remote-write[0].relabel[0]", "regex", "does not compile"),
        (endpoint(json!({"relabel": [{"action": "keep", "source-labels": ["a-b"]}]})), "metric-store.remote-write[0].relabel[0]", "source-labels", "not a valid label name"),
        (endpoint(json!({"relabel": [{"action": "keep", "source-labels": "a"}]})), "metric-store.remote-write[0].relabel[0]", "source-labels", "expected an array of strings"),
        (endpoint(json!({"relabel": [{"action": "replace", "target-label": "a b"}]})), "metric-store.remote-write[0].relabel[0]", "target-label", "not a valid label name"),
        (endpoint(json!({"relabel": [{"action": "labeldrop", "regex": "x", "target-label": "y"}]})), "metric-store.remote-write[0].relabel[0]", "target-label", "does not apply to labeldrop"),
        (endpoint(json!({"relabel": [{"action": "labelkeep", "source-labels": ["x"]}]})), "metric-store.remote-write[0].relabel[0]", "source-labels", "does not apply to labeldrop"),
        (endpoint(json!({"relabel": {"action": "drop"}})), rw0, "relabel", "expected an array"),
        // queue
        (endpoint(json!({"queue": {"min-shards": 0}})), "metric-store.remote-write[0].queue", "min-shards", "must be greater than 0"),
        (endpoint(json!({"queue": {"min-shards": 4, "max-shards": 2}})), "metric-store.remote-write[0].queue", "max-shards", "must be at least min-shards (4), found 2"),
        (endpoint(json!({"queue": {"min-shards": 60}})), "metric-store.remote-write[0].queue", "max-shards", "must be at least min-shards (60), found 50"),
        (endpoint(json!({"queue": {"max-samples-per-send": 0}})), "metric-store.remote-write[0].queue", "max-samples-per-send", "must be greater than 0"),
        (endpoint(json!({"queue": {"max-samples-per-send": 100_001}})), "metric-store.remote-write[0].queue", "max-samples-per-send", "at most 100000"),
        (endpoint(json!({"queue": {"min-backoff": "1s", "max-backoff": "500ms"}})), "metric-store.remote-write[0].queue", "max-backoff", "must be at least min-backoff (1s), found 500ms"),
        (endpoint(json!({"queue": {"batch-send-deadline": "0s"}})), "metric-store.remote-write[0].queue", "batch-send-deadline", "must be greater than zero"),
        (endpoint(json!({"queue": {"retry-on-http-429": 1}})), "metric-store.remote-write[0].queue", "retry-on-http-429", "expected true or false"),
    ];
    for (entry, expected_section, expected_key, needle) in cases {
        let document = with_remote_write(json!([entry]));
        match error_of(&document) {
            ConfigError::InvalidValue {
                file,
                section,
                key,
                reason,
            } => {
                assert_eq!(file, PathBuf::from(ORIGIN), "{entry}");
                assert_eq!(
                    (section.as_str(), key.as_str()),
                    (expected_section, expected_key),
                    "{entry}: {reason}"
                );
                assert!(
                    reason.contains(needle),
                    "{entry}: {reason:?} lacks {needle:?}"
                );
            }
            other => panic!("{entry}: unexpected {other:?}"),
        }
    }
    // A full message reads well.
    assert_eq!(
        message_of(&with_remote_write(json!([endpoint(
            json!({"headers": {"Host": "x"}})
        )]))),
        "config.json: invalid value for key \"headers\" in section \
         \"metric-store.remote-write[0]\": \"Host\" is set by the forwarder and cannot be \
         overridden"
    );
    assert_eq!(
        message_of(&with_remote_write(json!([endpoint(
            json!({"relabel": [{"action": "keep", "regex": "(unclosed"}]})
        )]))),
        "config.json: invalid value for key \"regex\" in section \
         \"metric-store.remote-write[0].relabel[0]\": \"(unclosed\" does not compile: \
         unclosed group"
    );
    assert_eq!(
        message_of(&with("/metric-store/remote-write", json!({"url": VM_URL}))),
        "config.json: invalid value for key \"remote-write\" in section \"metric-store\": \
         expected an array, found an object"
    );
}

/// Goal: a missing URL, basic-auth without its parts, and a replace rule without a target
/// are reported as missing keys, with the section path.
#[test]
fn remote_write_missing_keys() {
    let cases = [
        (json!({"name": "x"}), "metric-store.remote-write[0]", "url"),
        (json!({"url": ""}), "metric-store.remote-write[0]", "url"),
        (
            json!({"url": VM_URL, "basic-auth": {"password-file": "/pw"}}),
            "metric-store.remote-write[0].basic-auth",
            "username",
        ),
        (
            json!({"url": VM_URL, "basic-auth": {"username": "u"}}),
            "metric-store.remote-write[0].basic-auth",
            "password-file",
        ),
        (
            json!({"url": VM_URL, "relabel": [{"source-labels": ["a"]}]}),
            "metric-store.remote-write[0].relabel[0]",
            "target-label",
        ),
    ];
    for (entry, section, key) in cases {
        let error = error_of(&with_remote_write(json!([entry])));
        assert!(matches!(error, ConfigError::MissingKey { .. }), "{error:?}");
        assert_eq!(error_location(&error), Some((section, key)));
    }
}

/// The section path and key an error names.
fn error_location(error: &ConfigError) -> Option<(&str, &str)> {
    match error {
        ConfigError::MissingKey { section, key, .. }
        | ConfigError::UnknownKey { section, key, .. }
        | ConfigError::InvalidValue { section, key, .. } => Some((section, key)),
        _ => None,
    }
}

/// Goal: unknown keys are refused in an endpoint and in each of its sub-objects, with the
/// keys that are allowed listed.
#[test]
fn remote_write_unknown_keys() {
    let cases = [
        (
            json!({"url": VM_URL, "write_relabel_configs": []}),
            "metric-store.remote-write[0]",
            "write_relabel_configs",
        ),
        (
            json!({"url": VM_URL, "queue": {"capacity": 10}}),
            "metric-store.remote-write[0].queue",
            "capacity",
        ),
        (
            json!({"url": VM_URL, "tls": {"server-name": "x"}}),
            "metric-store.remote-write[0].tls",
            "server-name",
        ),
        (
            json!({"url": VM_URL, "basic-auth": {"username": "u", "password": "p"}}),
            "metric-store.remote-write[0].basic-auth",
            "password",
        ),
        (
            json!({"url": VM_URL, "relabel": [{"action": "drop", "modulus": 2}]}),
            "metric-store.remote-write[0].relabel[0]",
            "modulus",
        ),
    ];
    for (entry, section, key) in cases {
        let error = error_of(&with_remote_write(json!([entry])));
        assert!(matches!(error, ConfigError::UnknownKey { .. }), "{error:?}");
        assert_eq!(error_location(&error), Some((section, key)));
    }
    assert_eq!(
        message_of(&with_remote_write(
            json!([{"url": VM_URL, "queue": {"capacity": 10}}])
        )),
        "config.json: unknown key \"capacity\" in section \"metric-store.remote-write[0].queue\"; \
         expected one of: min-shards, max-shards, max-samples-per-send, batch-send-deadline, \
         min-backoff, max-backoff, retry-on-http-429"
    );
}

/// Goal: endpoint names are unique, including the names derived from URLs, and the number
/// of endpoints is bounded.
#[test]
fn remote_write_names_are_unique_and_endpoints_bounded() {
    let duplicates = [
        json!([{"url": VM_URL, "name": "a"}, {"url": "http://other/write", "name": "a"}]),
        json!([{"url": VM_URL}, {"url": VM_URL}]),
        json!([{"url": "http://other/write", "name": strata_forward::config::default_name(VM_URL)},
               {"url": VM_URL}]),
    ];
    for document in duplicates {
        match error_of(&with_remote_write(document.clone())) {
            ConfigError::InvalidValue {
                section,
                key,
                reason,
                ..
            } => {
                assert_eq!(
                    (section.as_str(), key.as_str()),
                    ("metric-store.remote-write[1]", "name")
                );
                assert!(reason.contains("names must be unique"), "{reason}");
            }
            other => panic!("{document}: unexpected {other:?}"),
        }
    }
    // The same URL twice is fine under two names (e.g. two tenants).
    let two = json!([{"url": VM_URL, "name": "a"}, {"url": VM_URL, "name": "b"}]);
    assert_eq!(
        parse_ok(&with_remote_write(two)).store.remote_write.len(),
        2
    );

    let many: Vec<Value> = (0..=REMOTE_WRITE_ENDPOINTS_MAX)
        .map(|i| json!({"url": format!("http://receiver{i}/write")}))
        .collect();
    let ok = Value::Array(many[..REMOTE_WRITE_ENDPOINTS_MAX].to_vec());
    assert_eq!(
        parse_ok(&with_remote_write(ok)).store.remote_write.len(),
        REMOTE_WRITE_ENDPOINTS_MAX
    );
    assert_eq!(
        message_of(&with_remote_write(Value::Array(many))),
        format!(
            "config.json: invalid value for key \"remote-write\" in section \"metric-store\": \
             at most {REMOTE_WRITE_ENDPOINTS_MAX} endpoints, found {}",
            REMOTE_WRITE_ENDPOINTS_MAX + 1
        )
    );
}

/// Goal: forwarding reads the write-ahead log, so `wal.fsync: "off"` with endpoints is a
/// configuration error that says why; without endpoints `off` is fine.
#[test]
fn remote_write_needs_the_write_ahead_log() {
    let mut document = with_remote_write(json!([{"url": VM_URL}]));
    set(&mut document, "/metric-store/wal/fsync", json!("off"));
    assert_eq!(
        message_of(&document),
        "config.json: invalid value for key \"remote-write\" in section \"metric-store\": \
         forwarding reads the write-ahead log, which fsync: off disables; set wal.fsync to \
         always, batch or never, or remove remote-write"
    );
    set(&mut document, "/metric-store/remote-write", json!([]));
    assert_eq!(parse_ok(&document).store.wal.fsync, FsyncPolicy::Off);
    for fsync in ["always", "batch", "never"] {
        set(&mut document, "/metric-store/wal/fsync", json!(fsync));
        set(
            &mut document,
            "/metric-store/remote-write",
            json!([{"url": VM_URL}]),
        );
        assert_eq!(parse_ok(&document).store.remote_write.len(), 1, "{fsync}");
    }
}

/// Goal: a JetStream acknowledgement promises the write-ahead log, so `wal.fsync: "off"`
/// with a JetStream subscription is an error naming both; core subscriptions are fine.
#[test]
fn jetstream_needs_the_write_ahead_log() {
    let mut document = nats(
        json!({"address": "a:1"}),
        json!([{"subscribe-to": "core"},
               {"subscribe-to": "js", "jetstream": {"stream": "S", "consumer": "c"}}]),
    );
    set(&mut document, "/metric-store/wal/fsync", json!("off"));
    assert_eq!(
        message_of(&document),
        "config.json: invalid value for key \"nats-subscriptions[1].jetstream\" in section \
         \"metric-store\": is acknowledged only once in the write-ahead log, which \
         metric-store.wal.fsync: off disables; set wal.fsync to always, batch or never, or \
         use a core subscription"
    );
    set(
        &mut document,
        "/metric-store/nats-subscriptions",
        json!([{"subscribe-to": "core"}]),
    );
    assert_eq!(parse_ok(&document).store.wal.fsync, FsyncPolicy::Off);
}

/// `minimal()` with a `nats` section and subscriptions.
fn nats(nats: Value, subscriptions: Value) -> Value {
    let mut document = with("/nats", nats);
    set(
        &mut document,
        "/metric-store/nats-subscriptions",
        subscriptions,
    );
    document
}

fn subscription(subject: &str) -> NatsSubscription {
    NatsSubscription {
        subscribe_to: subject.to_owned(),
        cluster_tag: None,
        queue_group: None,
        jetstream: None,
        connection: None,
    }
}

/// Goal: every key of a NATS connection and subscription is read, and the subscriptions
/// end up on their connection.
#[test]
fn nats_keys_parse() {
    let config = parse_ok(&nats(
        json!({"address": "tls://a:4222, b:4222", "nkey-seed-file": "/etc/seed",
               "tls": {"ca-file": "/ca.pem", "cert-file": "/c.pem", "key-file": "/k.pem"}}),
        json!([{"subscribe-to": "m.>", "cluster-tag": "fritz", "queue-group": "g"},
               {"subscribe-to": "js", "jetstream": {"stream": "S", "consumer": "strata",
                                                    "ack-wait": "2s"}}]),
    ));
    assert!(config.store.nats_subscriptions.is_empty());
    assert_eq!(
        config.nats,
        [NatsConnection {
            name: None,
            addresses: vec!["tls://a:4222".to_owned(), "b:4222".to_owned()],
            auth: NatsAuth::NkeySeedFile(PathBuf::from("/etc/seed")),
            tls: Some(NatsTls {
                ca_file: Some(PathBuf::from("/ca.pem")),
                client_cert: Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem"))),
            }),
            subscriptions: vec![
                NatsSubscription {
                    cluster_tag: Some("fritz".to_owned()),
                    queue_group: Some("g".to_owned()),
                    ..subscription("m.>")
                },
                NatsSubscription {
                    jetstream: Some(JetStreamSubscription {
                        stream: "S".to_owned(),
                        consumer: "strata".to_owned(),
                        ack_wait: Duration::from_secs(2),
                    }),
                    ..subscription("js")
                },
            ],
        }]
    );
    // An array of addresses, creds file, defaults of jetstream and the pending limit.
    let config = parse_ok(&nats(
        json!({"address": ["nats://a:1", "b:2"], "creds-file-path": "/c.creds"}),
        json!([{"subscribe-to": "js", "jetstream": {"stream": "S", "consumer": "c"}}]),
    ));
    let connection = &config.nats[0];
    assert_eq!(connection.addresses, ["nats://a:1", "b:2"]);
    assert_eq!(
        connection.auth,
        NatsAuth::CredsFile(PathBuf::from("/c.creds"))
    );
    assert_eq!(
        connection.subscriptions[0]
            .jetstream
            .as_ref()
            .map(|js| js.ack_wait),
        Some(DEFAULT_ACK_WAIT)
    );
    assert_eq!(config.store.limits.nats_pending_messages, 65_536);
    assert_eq!(config.store.limits.nats_pending_bytes, 64 << 20);
}

/// Goal: `nats` as an array holds several named connections; each subscription goes to the
/// one it names (decision 6), and with one connection `connection` is optional but checked.
#[test]
fn nats_array_of_named_connections() {
    let config = parse_ok(&nats(
        json!([{"name": "one", "address": "a:1"},
               {"name": "two", "address": "b:2", "username": "u", "password": "p"}]),
        json!([{"subscribe-to": "x", "connection": "two"},
               {"subscribe-to": "y", "connection": "one"}]),
    ));
    let names: Vec<_> = config.nats.iter().map(|c| c.name.as_deref()).collect();
    assert_eq!(names, [Some("one"), Some("two")]);
    assert_eq!(
        config.nats[0].subscriptions,
        [NatsSubscription {
            connection: Some("one".to_owned()),
            ..subscription("y")
        }]
    );
    assert_eq!(
        config.nats[1].subscriptions,
        [NatsSubscription {
            connection: Some("two".to_owned()),
            ..subscription("x")
        }]
    );
    let one = parse_ok(&nats(
        json!({"name": "only", "address": "a:1"}),
        json!([{"subscribe-to": "x", "connection": "only"}, {"subscribe-to": "y"}]),
    ));
    assert_eq!(one.nats[0].subscriptions.len(), 2);
}

/// Goal: subscriptions without any `nats` section are validated and kept aside (ignored
/// with a warning at startup, as cc-metric-store ignores them).
#[test]
fn nats_subscriptions_without_connection_are_kept_aside() {
    let config = parse_ok(&with(
        "/metric-store/nats-subscriptions",
        json!([{"subscribe-to": "x"}]),
    ));
    assert!(config.nats.is_empty());
    assert_eq!(config.store.nats_subscriptions, [subscription("x")]);
}

/// Goal: every NATS mistake is an error naming the section and key.
#[test]
fn nats_errors() {
    let cases: &[(Value, Value, &str, &str, &str)] = &[
        (
            json!({"address": "ws://a:1"}),
            json!([]),
            "nats",
            "address",
            "\"ws://a:1\" is not supported: use nats://, tls:// or host:port",
        ),
        (
            json!({"address": "nats://u:pw@a:1"}),
            json!([]),
            "nats",
            "address",
            "must not hold credentials; use username and password",
        ),
        (
            json!({"address": "nats://"}),
            json!([]),
            "nats",
            "address",
            "\"nats://\" has no host",
        ),
        (
            json!({"address": ["a:1", 2]}),
            json!([]),
            "nats",
            "address",
            "expected an array of strings, found 2",
        ),
        (
            json!({"address": "a:1", "username": "u"}),
            json!([]),
            "nats",
            "password",
            "is required with username",
        ),
        (
            json!({"address": "a:1", "password": "p"}),
            json!([]),
            "nats",
            "username",
            "is required with password",
        ),
        (
            json!({"address": "a:1", "creds-file-path": "/c", "nkey-seed-file": "/s"}),
            json!([]),
            "nats",
            "nkey-seed-file",
            "creds-file-path and nkey-seed-file exclude each other: set one way to log in",
        ),
        (
            json!({"address": "a:1", "username": "u", "password": "p", "nkey-seed-file": "/s"}),
            json!([]),
            "nats",
            "nkey-seed-file",
            "username/password and nkey-seed-file exclude each other: set one way to log in",
        ),
        (
            json!({"address": "a:1", "username": "u", "password": "p", "creds-file-path": "/c"}),
            json!([]),
            "nats",
            "creds-file-path",
            "username/password and creds-file-path exclude each other: set one way to log in",
        ),
        (
            json!({"address": "a:1", "tls": {"cert-file": "/c"}}),
            json!([]),
            "nats.tls",
            "key-file",
            "is required with cert-file",
        ),
        (
            json!({"address": "a:1", "tls": {"key-file": "/k"}}),
            json!([]),
            "nats.tls",
            "cert-file",
            "is required with key-file",
        ),
        (
            json!([{"name": "n", "address": "a:1"}, {"name": "n", "address": "b:1"}]),
            json!([]),
            "nats[1]",
            "name",
            "\"n\" is used twice",
        ),
        (
            json!({"address": "a:1"}),
            json!([{"subscribe-to": "a..b"}]),
            "metric-store.nats-subscriptions[0]",
            "subscribe-to",
            "\"a..b\" is not a NATS subject (dot-separated tokens, no blanks, '>' only as the \
             last token)",
        ),
        (
            json!({"address": "a:1"}),
            json!([{"subscribe-to": "a b"}]),
            "metric-store.nats-subscriptions[0]",
            "subscribe-to",
            "\"a b\" is not a NATS subject (dot-separated tokens, no blanks, '>' only as the \
             last token)",
        ),
        (
            json!({"address": "a:1"}),
            json!([{"subscribe-to": "a.>.b"}]),
            "metric-store.nats-subscriptions[0]",
            "subscribe-to",
            "\"a.>.b\" is not a NATS subject (dot-separated tokens, no blanks, '>' only as the \
             last token)",
        ),
        (
            json!({"address": "a:1"}),
            json!([{"subscribe-to": "a", "jetstream": {"stream": "S", "consumer": "a.b"}}]),
            "metric-store.nats-subscriptions[0].jetstream",
            "consumer",
            "\"a.b\" holds '.'; NATS names cannot hold blanks, '.', '*', '>', '/' or '\\'",
        ),
        (
            json!({"address": "a:1"}),
            json!([{"subscribe-to": "a", "jetstream": {"stream": "S*", "consumer": "c"}}]),
            "metric-store.nats-subscriptions[0].jetstream",
            "stream",
            "\"S*\" holds '*'; NATS names cannot hold blanks, '.', '*', '>', '/' or '\\'",
        ),
        (
            json!({"address": "nats://127.0.0.1:99999"}),
            json!([]),
            "nats",
            "address",
            "\"nats://127.0.0.1:99999\" has no valid port (1 to 65535)",
        ),
        (
            json!({"address": "[::1]:0"}),
            json!([]),
            "nats",
            "address",
            "\"[::1]:0\" has no valid port (1 to 65535)",
        ),
        (
            json!({"address": "a:1"}),
            json!([{"subscribe-to": "x", "queue-group": "g 1"}]),
            "metric-store.nats-subscriptions[0]",
            "queue-group",
            "must not contain blanks",
        ),
        (
            json!({"address": "a:1"}),
            json!([{"subscribe-to": "x", "connection": "nope"}]),
            "metric-store.nats-subscriptions[0]",
            "connection",
            "\"nope\" names no connection of the nats section",
        ),
        (
            json!({"address": "a:1"}),
            json!([{"subscribe-to": "x", "queue-group": "g",
                 "jetstream": {"stream": "S", "consumer": "c"}}]),
            "metric-store.nats-subscriptions[0]",
            "queue-group",
            "does not apply to jetstream: instances sharing the durable consumer share its messages",
        ),
        (
            json!({"address": "a:1"}),
            json!([{"subscribe-to": "x", "jetstream": {"stream": "S", "consumer": "c",
                                                    "ack-wait": "0s"}}]),
            "metric-store.nats-subscriptions[0].jetstream",
            "ack-wait",
            "must be greater than zero, found \"0s\"",
        ),
        (
            json!([{"name": "a", "address": "n:1"}, {"name": "b", "address": "n:1"}]),
            json!([{"subscribe-to": "x", "connection": "a", "jetstream": {"stream": "S", "consumer": "c"}},
                   {"subscribe-to": "y", "connection": "b", "jetstream": {"stream": "S", "consumer": "c"}}]),
            "metric-store.nats-subscriptions[1]",
            "jetstream",
            "stream \"S\" consumer \"c\" is also used by metric-store.nats-subscriptions[0] on the \
             same servers: give each subscription a consumer of its own",
        ),
        (
            json!({"address": "a:1"}),
            json!([{"subscribe-to": "x", "queue-group": "g", "cluster-tag": "one"},
                   {"subscribe-to": "x", "queue-group": "g"}]),
            "metric-store.nats-subscriptions[1]",
            "cluster-tag",
            "differs from that of metric-store.nats-subscriptions[0], which subscribes to \"x\" \
             in queue group \"g\" on the same servers: each message would reach only one of them",
        ),
    ];
    for (connection, subscriptions, section, key, reason) in cases {
        assert_eq!(
            message_of(&nats(connection.clone(), subscriptions.clone())),
            invalid(section, key, reason),
            "{connection} {subscriptions}"
        );
    }
    let missing = [
        (json!({"address": ""}), json!([]), "nats", "address"),
        (json!([{"address": "a:1"}]), json!([]), "nats[0]", "name"),
        (
            json!({"username": "u", "password": "p"}),
            json!([]),
            "nats",
            "address",
        ),
        (
            json!([{"name": "a", "address": "a:1"}, {"name": "b", "address": "b:1"}]),
            json!([{"subscribe-to": "x"}]),
            "metric-store.nats-subscriptions[0]",
            "connection",
        ),
        (
            json!({"address": "a:1"}),
            json!([{"subscribe-to": "x", "jetstream": {"stream": "S"}}]),
            "metric-store.nats-subscriptions[0].jetstream",
            "consumer",
        ),
    ];
    for (connection, subscriptions, section, key) in missing {
        match error_of(&nats(connection, subscriptions)) {
            ConfigError::MissingKey {
                section: found_section,
                key: found_key,
                ..
            } => assert_eq!((found_section.as_str(), found_key.as_str()), (section, key)),
            other => panic!("expected MissingKey {section}.{key}, got {other:?}"),
        }
    }
    assert_eq!(
        message_of(&with(
            "/metric-store/limits/nats-pending-messages",
            json!(0)
        )),
        invalid(
            "metric-store.limits",
            "nats-pending-messages",
            "must be greater than 0"
        )
    );
    assert_eq!(
        message_of(&with(
            "/metric-store/limits/nats-pending-messages",
            json!(u64::MAX)
        )),
        invalid(
            "metric-store.limits",
            "nats-pending-messages",
            "18446744073709551615 is more than 1048576"
        )
    );
}

/// Goal: subscriptions that share a consumer or a queue group are fine on other servers,
/// or (queue group) with the same cluster tag.
#[test]
fn nats_sharing_allowed_where_harmless() {
    let config = parse_ok(&nats(
        json!([{"name": "a", "address": "n:1"}, {"name": "b", "address": "m:1"}]),
        json!([{"subscribe-to": "x", "connection": "a", "jetstream": {"stream": "S", "consumer": "c"}},
               {"subscribe-to": "x", "connection": "b", "jetstream": {"stream": "S", "consumer": "c"}},
               {"subscribe-to": "y", "connection": "a", "queue-group": "g", "cluster-tag": "t"},
               {"subscribe-to": "y", "connection": "a", "queue-group": "g", "cluster-tag": "t"},
               {"subscribe-to": "y", "connection": "b", "queue-group": "g", "cluster-tag": "u"}]),
    ));
    assert_eq!(config.nats[0].subscriptions.len(), 3);
    assert_eq!(config.nats[1].subscriptions.len(), 2);
}

/// Goal: the NATS password never shows in `Debug` output (logs, error messages).
#[test]
fn nats_password_is_redacted() {
    let config = parse_ok(&nats(
        json!({"address": "a:1", "username": "u", "password": "hunter2-secret"}),
        json!([]),
    ));
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("<redacted>"));
}
