//! cc-metric-store's legacy flat configuration (before v1.5, used until late 2025;
//! COMPAT.md §5.3), read by converting it into the v1.5 sectioned JSON that the rest of
//! this module parses.
//!
//! # Why a JSON → JSON transform
//!
//! The conversion only moves keys; every value is checked by the one v1.5 parser. So a legacy
//! file and the file `strata config convert` prints from it give the same [`Config`] by
//! construction, and no rule exists twice. The v1.5 parser's errors name v1.5 places
//! (`main.addr`); [`Converted::relocate`] moves them back to the legacy file's keys
//! (`http-api.address`), so an operator is pointed at the line they wrote.
//!
//! # Detection
//!
//! A file is legacy when it has none of `main`, `metric-store` (or their `-file` forms) and
//! has any of `http-api`, `checkpoints`, `archive`, `retention-in-memory`, `jwt-public-key`,
//! `debug`, or `nats` as an array. A file with keys of both formats is refused, naming them.
//!
//! # Mapping
//!
//! | legacy | v1.5 |
//! | ------ | ---- |
//! | `http-api.address`, `.https-cert-file`, `.https-key-file` | `main.addr`, `main.https-cert-file`, `main.https-key-file` |
//! | `jwt-public-key` | `main.jwt-public-key` |
//! | `debug` | `main.debug` (same keys) |
//! | `metrics` | `metrics`; a metric without `aggregation` gets `null`, as cc-metric-store read it |
//! | `retention-in-memory` | `metric-store.retention-in-memory` |
//! | `checkpoints.interval` | `metric-store.checkpoint-interval`; `0` or less (no periodic checkpoints) is dropped |
//! | `checkpoints.directory` | `metric-store.checkpoints.directory` |
//! | `checkpoints.file-format` | `"json"` kept; `"avro"` and `""` (= Avro) dropped |
//! | `checkpoints.restore` | dropped: Strata recovers its snapshots and log within the retention |
//! | `archive {interval, directory, delete-instead}` | `metric-store.cleanup {mode: "archive" or "delete", directory, interval}`; an interval of `0` or less (no archiving) gives no `cleanup` |
//! | `nats: [one connection]` | `nats {address, username, password, creds-file-path}` and `metric-store.nats-subscriptions` |
//! | `nats: [several]` | `nats: [{name: "nats-1", …}, …]`, each subscription with `connection` |
//!
//! Strata's own `main.jwt-roles` has no legacy form: a top-level `jwt-roles` is an unknown key.
//!
//! What does not carry over one to one is said in [`Converted::notes`]: logged at startup,
//! printed by `strata config convert` on stderr.

use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use super::duration::parse_go_duration;
use super::section::{Section, parse_json, quote};
use super::{Config, ConfigError, DEFAULT_CHECKPOINT_DIRECTORY, DEFAULT_CHECKPOINT_INTERVAL};

/// Top-level keys of the legacy format (cc-metric-store's `config.Config` before v1.5).
const LEGACY_KEYS: &[&str] = &[
    "metrics",
    "http-api",
    "checkpoints",
    "archive",
    "retention-in-memory",
    "jwt-public-key",
    "debug",
    "nats",
];

/// Top-level keys that only the legacy format has.
const LEGACY_ONLY_KEYS: &[&str] = &[
    "http-api",
    "checkpoints",
    "archive",
    "retention-in-memory",
    "jwt-public-key",
    "debug",
];

/// Top-level keys that only the v1.5 format has.
const SECTIONED_ONLY_KEYS: &[&str] = &["main", "main-file", "metric-store", "metric-store-file"];

const HTTP_API_KEYS: &[&str] = &["address", "https-cert-file", "https-key-file"];

const CHECKPOINTS_KEYS: &[&str] = &["interval", "directory", "restore", "file-format"];

const ARCHIVE_KEYS: &[&str] = &["interval", "directory", "delete-instead"];

const CONNECTION_KEYS: &[&str] = &[
    "address",
    "username",
    "password",
    "creds-file-path",
    "subscriptions",
];

/// The keys a legacy connection and a v1.5 `nats` section share.
const CONNECTION_SETTINGS: &[&str] = &["address", "username", "password", "creds-file-path"];

const SUBSCRIPTION_KEYS: &[&str] = &["subscribe-to", "cluster-tag"];

/// Which format a configuration was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFormat {
    /// cc-metric-store v1.5's sections (with Strata's keys), or the embedded default.
    Sectioned,
    /// cc-metric-store's flat file from before v1.5, converted; `notes` says what did not
    /// carry over one to one.
    LegacyFlat { notes: Vec<String> },
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sectioned => "cc-metric-store v1.5 sections",
            Self::LegacyFlat { .. } => "cc-metric-store legacy flat (before v1.5)",
        })
    }
}

/// What `strata config convert` prints: the v1.5 document of a legacy file, or a v1.5 file
/// as it is.
#[derive(Debug)]
pub struct Conversion {
    pub document: Value,
    pub format: ConfigFormat,
}

/// Reads `path` as `strata serve` would (so an invalid file gets the same error) and returns
/// its v1.5 document.
pub fn convert(path: &Path) -> Result<Conversion, ConfigError> {
    let text = super::read_config(path)?;
    let config = Config::from_json(&text, path)?;
    let top = parse_json(&text, path)?;
    let document = match config.format {
        ConfigFormat::Sectioned => top,
        ConfigFormat::LegacyFlat { .. } => to_v15(&top, path)?.document,
    };
    Ok(Conversion {
        document,
        format: config.format,
    })
}

/// `true` when `top` is a legacy flat file; an error when it mixes both formats.
pub(super) fn detect(top: &Value, origin: &Path) -> Result<bool, ConfigError> {
    // Not an object: the v1.5 parser says so.
    let Value::Object(map) = top else {
        return Ok(false);
    };
    let present = |keys: &[&'static str]| -> Vec<&'static str> {
        keys.iter()
            .copied()
            .filter(|key| map.contains_key(*key))
            .collect()
    };
    let legacy = present(LEGACY_ONLY_KEYS);
    let sectioned = present(SECTIONED_ONLY_KEYS);
    if !legacy.is_empty() && !sectioned.is_empty() {
        return Err(ConfigError::MixedFormats {
            file: origin.to_owned(),
            legacy,
            sectioned,
        });
    }
    Ok(
        sectioned.is_empty()
            && (!legacy.is_empty() || map.get("nats").is_some_and(Value::is_array)),
    )
}

/// A legacy file as a v1.5 document.
#[derive(Debug)]
pub(super) struct Converted {
    pub(super) document: Value,
    /// What does not carry over one to one, one sentence each.
    pub(super) notes: Vec<String>,
    /// Where each v1.5 place came from, for [`Converted::relocate`].
    places: Vec<Place>,
}

/// A v1.5 section (and key) and the legacy one it was made from.
#[derive(Debug)]
struct Place {
    section: String,
    /// `None`: every key of the section, under the same name.
    key: Option<&'static str>,
    legacy_section: String,
    /// `None`: the key keeps its name.
    legacy_key: Option<&'static str>,
}

impl Place {
    fn new(
        section: &str,
        key: Option<&'static str>,
        legacy_section: &str,
        legacy_key: Option<&'static str>,
    ) -> Self {
        Self {
            section: section.to_owned(),
            key,
            legacy_section: legacy_section.to_owned(),
            legacy_key,
        }
    }
}

/// The places every conversion has; the most specific first.
fn fixed_places() -> Vec<Place> {
    vec![
        Place::new("main", Some("addr"), "http-api", Some("address")),
        Place::new("main", Some("jwt-public-key"), "", None),
        Place::new("main", None, "http-api", None),
        Place::new("main.debug", None, "debug", None),
        Place::new(
            "metric-store",
            Some("checkpoint-interval"),
            "checkpoints",
            Some("interval"),
        ),
        Place::new("metric-store", Some("nats-subscriptions"), "", Some("nats")),
        Place::new("metric-store", None, "", None),
        Place::new("metric-store.checkpoints", None, "checkpoints", None),
        Place::new(
            "metric-store.cleanup",
            Some("mode"),
            "archive",
            Some("delete-instead"),
        ),
        Place::new("metric-store.cleanup", None, "archive", None),
    ]
}

impl Converted {
    /// `error` from the v1.5 parser, naming the legacy section and key it came from.
    pub(super) fn relocate(&self, mut error: ConfigError) -> ConfigError {
        match &mut error {
            ConfigError::MissingKey { section, key, .. }
            | ConfigError::InvalidValue { section, key, .. }
            | ConfigError::NotSupported { section, key, .. } => {
                let (legacy_section, legacy_key) = self.legacy_place(section, key);
                *section = legacy_section;
                *key = legacy_key;
            }
            ConfigError::UnknownKey { section, .. } | ConfigError::NotAnObject { section, .. } => {
                *section = self.legacy_section(section);
            }
            _ => {}
        }
        error
    }

    /// The legacy section and key of the v1.5 `key` in `section`; unchanged when the place
    /// is the same in both formats (`metrics.<name>`).
    fn legacy_place(&self, section: &str, key: &str) -> (String, String) {
        let found = self
            .places
            .iter()
            .find(|place| place.section == section && place.key.is_none_or(|name| name == key));
        match found {
            Some(place) => (
                place.legacy_section.clone(),
                place.legacy_key.unwrap_or(key).to_owned(),
            ),
            None => (section.to_owned(), key.to_owned()),
        }
    }

    /// The legacy section of a whole v1.5 section.
    fn legacy_section(&self, section: &str) -> String {
        self.places
            .iter()
            .find(|place| place.section == section && place.key.is_none())
            .map_or(section, |place| place.legacy_section.as_str())
            .to_owned()
    }
}

/// Converts the legacy file `top` (see the module documentation for the mapping). Checks the
/// legacy structure (keys, objects, arrays) itself, and leaves the values to the v1.5 parser.
pub(super) fn to_v15(top: &Value, origin: &Path) -> Result<Converted, ConfigError> {
    let top = Section::new(origin, String::new(), top, LEGACY_KEYS)?;
    let mut converted = Converted {
        document: Value::Null,
        notes: Vec::new(),
        places: fixed_places(),
    };
    let mut main = Map::new();
    if let Some(http) = top.section("http-api", HTTP_API_KEYS)? {
        copy(&http, "address", &mut main, "addr");
        copy(&http, "https-cert-file", &mut main, "https-cert-file");
        copy(&http, "https-key-file", &mut main, "https-key-file");
    }
    copy(&top, "jwt-public-key", &mut main, "jwt-public-key");
    copy(&top, "debug", &mut main, "debug");

    let mut store = Map::new();
    copy(
        &top,
        "retention-in-memory",
        &mut store,
        "retention-in-memory",
    );
    // No section: what its keys would default to is said all the same.
    let no_checkpoints = Value::Object(Map::new());
    let checkpoints = match top.section("checkpoints", CHECKPOINTS_KEYS)? {
        Some(checkpoints) => checkpoints,
        None => Section::new(
            origin,
            "checkpoints".to_owned(),
            &no_checkpoints,
            CHECKPOINTS_KEYS,
        )?,
    };
    convert_checkpoints(&checkpoints, &mut store, &mut converted.notes)?;
    match top.section("archive", ARCHIVE_KEYS)? {
        Some(archive) => convert_archive(&archive, &mut store, &mut converted.notes)?,
        None => converted.notes.push(
            "no archive section: data older than retention-in-memory is deleted \
             (v1.5's default cleanup)"
                .to_owned(),
        ),
    }
    let nats = convert_nats(&top, &mut store, &mut converted.places)?;

    let mut document = Map::new();
    document.insert("main".to_owned(), Value::Object(main));
    if let Some(metrics) = convert_metrics(&top, &mut converted.notes) {
        document.insert("metrics".to_owned(), metrics);
    }
    if let Some(nats) = nats {
        document.insert("nats".to_owned(), nats);
    }
    document.insert("metric-store".to_owned(), Value::Object(store));
    converted.document = Value::Object(document);
    Ok(converted)
}

/// Copies the value of `key` (unless absent or `null`) to `target_key` in `target`, as it is:
/// its type and value are the v1.5 parser's to check.
fn copy(section: &Section<'_>, key: &str, target: &mut Map<String, Value>, target_key: &str) {
    if let Some(value) = section.get(key) {
        target.insert(target_key.to_owned(), value.clone());
    }
}

/// `true` for a Go duration of zero or less, with which cc-metric-store turned a periodic
/// task off. A malformed duration is `false`: it is kept, and the v1.5 parser reports it.
fn turns_off(duration: &str) -> bool {
    matches!(parse_go_duration(duration), Ok(nanos) if nanos <= 0)
}

fn convert_checkpoints(
    section: &Section<'_>,
    store: &mut Map<String, Value>,
    notes: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let interval_h = DEFAULT_CHECKPOINT_INTERVAL.as_secs() / 3600;
    match section.string("interval")? {
        None => notes.push(format!(
            "checkpoints.interval is not set: Strata writes a snapshot every {interval_h}h \
             (v1.5's default)"
        )),
        Some(interval) if turns_off(interval) => notes.push(format!(
            "checkpoints.interval {} turned periodic checkpoints off; Strata writes a snapshot \
             every {interval_h}h (its write-ahead log holds everything in between)",
            quote(interval)
        )),
        Some(_) => copy(section, "interval", store, "checkpoint-interval"),
    }
    let mut checkpoints = Map::new();
    if section.non_empty_string("directory")?.is_none() {
        notes.push(format!(
            "checkpoints.directory is not set: Strata keeps its write-ahead log and snapshots \
             in {DEFAULT_CHECKPOINT_DIRECTORY} (v1.5's default)"
        ));
    }
    copy(section, "directory", &mut checkpoints, "directory");
    match section.string("file-format")? {
        None => {}
        Some("json") => copy(section, "file-format", &mut checkpoints, "file-format"),
        Some(avro @ ("avro" | "")) => notes.push(format!(
            "checkpoints.file-format {} (Avro) is ignored: Strata writes its own write-ahead \
             log and snapshots, and strata import does not read Avro checkpoints",
            quote(avro)
        )),
        Some(other) => {
            return Err(section.invalid(
                "file-format",
                format!("expected one of \"json\", \"avro\", found {}", quote(other)),
            ));
        }
    }
    if let Some(restore) = section.string("restore")? {
        notes.push(format!(
            "checkpoints.restore {} is ignored: Strata recovers everything its snapshots and \
             write-ahead log hold within retention-in-memory",
            quote(restore)
        ));
    }
    if !checkpoints.is_empty() {
        store.insert("checkpoints".to_owned(), Value::Object(checkpoints));
    }
    Ok(())
}

fn convert_archive(
    section: &Section<'_>,
    store: &mut Map<String, Value>,
    notes: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let delete_instead = section.boolean("delete-instead")?.unwrap_or(false);
    let interval = section.string("interval")?;
    if let Some(interval) = interval
        && turns_off(interval)
    {
        notes.push(format!(
            "archive.interval {} turned archiving off (checkpoint files were kept forever); \
             Strata deletes data older than retention-in-memory (v1.5's default cleanup)",
            quote(interval)
        ));
        return Ok(());
    }
    let mut cleanup = Map::new();
    if delete_instead {
        cleanup.insert("mode".to_owned(), Value::from("delete"));
        notes.push(
            "archive.delete-instead: data older than retention-in-memory is deleted \
             (cc-metric-store deleted checkpoint files older than archive.interval); \
             archive.directory and archive.interval are not used"
                .to_owned(),
        );
    } else {
        cleanup.insert("mode".to_owned(), Value::from("archive"));
        copy(section, "directory", &mut cleanup, "directory");
        copy(section, "interval", &mut cleanup, "interval");
        notes.push(format!(
            "archive: data older than retention-in-memory is archived as Parquet files, one \
             per {} period (cc-metric-store zipped checkpoint files older than \
             archive.interval)",
            interval.map_or_else(
                || "retention-in-memory".to_owned(),
                |interval| format!("archive.interval ({})", quote(interval))
            )
        ));
    }
    store.insert("cleanup".to_owned(), Value::Object(cleanup));
    Ok(())
}

/// The `nats` section (`None` without connections); the subscriptions go to `store`.
fn convert_nats(
    top: &Section<'_>,
    store: &mut Map<String, Value>,
    places: &mut Vec<Place>,
) -> Result<Option<Value>, ConfigError> {
    let connections = top.objects("nats", CONNECTION_KEYS)?;
    let several = connections.len() > 1;
    let mut targets = Vec::with_capacity(connections.len());
    let mut subscriptions = Vec::new();
    for (index, connection) in connections.iter().enumerate() {
        let name = format!("nats-{}", index + 1);
        let mut target = Map::new();
        if several {
            target.insert("name".to_owned(), Value::from(name.as_str()));
        } else {
            places.push(Place::new("nats", None, &connection.path, None));
        }
        for key in CONNECTION_SETTINGS {
            copy(connection, key, &mut target, key);
        }
        for subscription in connection.objects("subscriptions", SUBSCRIPTION_KEYS)? {
            let mut entry = Map::new();
            copy(&subscription, "subscribe-to", &mut entry, "subscribe-to");
            copy(&subscription, "cluster-tag", &mut entry, "cluster-tag");
            if several {
                entry.insert("connection".to_owned(), Value::from(name.as_str()));
            }
            places.push(Place::new(
                &format!("metric-store.nats-subscriptions[{}]", subscriptions.len()),
                None,
                &subscription.path,
                None,
            ));
            subscriptions.push(Value::Object(entry));
        }
        targets.push(Value::Object(target));
    }
    if !subscriptions.is_empty() {
        store.insert("nats-subscriptions".to_owned(), Value::Array(subscriptions));
    }
    Ok(match targets.len() {
        0 => None,
        1 => targets.pop(),
        _ => Some(Value::Array(targets)),
    })
}

/// `metrics` as it is, but a metric without `aggregation` gets `null` (no aggregation): the
/// legacy reader took a missing key as none, v1.5 requires it.
fn convert_metrics(top: &Section<'_>, notes: &mut Vec<String>) -> Option<Value> {
    let mut metrics = top.get("metrics")?.clone();
    let mut completed = Vec::new();
    if let Value::Object(entries) = &mut metrics {
        for (name, entry) in entries {
            if let Value::Object(entry) = entry
                && !entry.contains_key("aggregation")
            {
                entry.insert("aggregation".to_owned(), Value::Null);
                completed.push(name.as_str());
            }
        }
    }
    if !completed.is_empty() {
        notes.push(format!(
            "metrics without aggregation get null (none), as cc-metric-store read them: {}",
            completed.join(", ")
        ));
    }
    Some(metrics)
}
