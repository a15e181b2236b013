//! Configuration: cc-metric-store v1.5's sectioned JSON file (COMPAT.md §5.1), Strata's own
//! additions (COMPAT.md §14, Decision 15), and the embedded default used when no file is
//! given (Decision 14).
//!
//! # Format
//!
//! The file is a JSON object of sections:
//!
//! | section        | required | contents |
//! | -------------- | -------- | -------- |
//! | `main`         | yes      | `addr`, `jwt-public-key`, `https-cert-file` + `https-key-file` (together), (unsupported: `user`/`group`, `backend-url`, `debug.gops`) |
//! | `metrics`      | no¹      | name → `{"frequency": seconds, "aggregation": "sum"\|"avg"\|null}` |
//! | `nats`         | no       | one connection object (`address`, `username`, `password`, `creds-file-path`, Strata's `nkey-seed-file`, `tls`), or an array of them each with a unique `name`³ |
//! | `metric-store` | yes      | retention, memory cap, checkpoints, cleanup, NATS subscriptions, and Strata's `wal`, `default-frequency`, `resampling`, `limits`, `remote-write`² |
//!
//! cc-metric-store's legacy flat file from before v1.5 (`http-api`, `checkpoints`, `archive`,
//! a `nats` array, …) is converted into these sections first; see `legacy`.
//!
//! ¹ cc-metric-store requires `metrics`; in Strata a missing or empty `metrics` section means
//! "register unknown metrics on first sight" (Decision 3).
//!
//! ² `metric-store.remote-write` is an array of Prometheus remote-write endpoints the
//! write-ahead log is forwarded to (not allowed with `wal.fsync: "off"`); each an object of:
//!
//! | key                 | default             | contents |
//! | ------------------- | ------------------- | -------- |
//! | `url`               | required            | `http://` or `https://` URL with a host, no credentials |
//! | `name`              | `rw-` + hash of url | unique, 1–64 of `A-Za-z0-9_.-`; names the cursor file and the `remote_name` label |
//! | `protocol`          | `"1.0"`             | `"1.0"` or `"2.0"` (falls back to 1.0) |
//! | `timeout`           | `"30s"`             | per HTTP attempt |
//! | `headers`           | none                | name → value; not `authorization`, `host`, `content-*`, `user-agent`, remote-write version headers, hop-by-hop headers |
//! | `basic-auth`        | none                | `{"username", "password-file"}`, both required; not with `bearer-token-file` |
//! | `bearer-token-file` | none                | file holding the token |
//! | `tls`               | system roots        | `ca-file`, `cert-file` + `key-file` (together), `insecure-skip-verify` |
//! | `external-labels`   | none                | label name (not `__…`) → non-empty value, added unless a series has it |
//! | `relabel`           | none                | Prometheus rules: `action` (`replace` default, `keep`, `drop`, `labeldrop`, `labelkeep`), `source-labels`, `separator` (`;`), `regex` (`(.*)`, anchored), `target-label` (required by `replace`), `replacement` (`$1`) |
//! | `queue`             | Prometheus's        | `min-shards` (1), `max-shards` (50, ≥ min), `max-samples-per-send` (2000, ≤ 100 000), `batch-send-deadline` (5s), `min-backoff` (30ms), `max-backoff` (5s, ≥ min), `retry-on-http-429` (true) |
//! | `max-backlog-bytes` | `"10GiB"`           | log bytes the endpoint may hold back from deletion |
//! | `max-backlog-age`   | `"24h"`             | oldest log data the endpoint may hold back |
//!
//! ³ `metric-store.nats-subscriptions` entries (`subscribe-to`, `cluster-tag`, `queue-group`,
//! Strata's `jetstream {stream, consumer, ack-wait}` and `connection`) are attached to their
//! connection: `connection` names it, and is required when `nats` lists several.
//!
//! A key `<name>-file` (for example `metrics-file`) loads section `<name>` from a separate
//! JSON file; giving both `<name>` and `<name>-file` is an error. A relative path is looked
//! up first next to the configuration file, then in the working directory. cc-metric-store
//! only uses the working directory; trying the configuration file's directory first means
//! a `config.json` and `metrics.json` kept side by side work wherever the service is
//! started from, and the fallback keeps existing deployments working. (cc-metric-store only
//! honours the form with one dash, so `metric-store-file` works in Strata but not there.)
//! Other relative paths (`checkpoints.directory`, `cleanup.directory`) are kept as written
//! and so are relative to the working directory, as in cc-metric-store.
//!
//! # Design
//!
//! - **Strict.** Unknown keys are errors everywhere, as in cc-metric-store (Go's
//!   `DisallowUnknownFields` plus a JSON schema), so that a misspelt key is never silently
//!   ignored. Keys Strata parses but does not implement (privilege dropping,
//!   `backend-url`, gops) are errors too when set (Decision 17): an operator must not believe
//!   a setting took effect.
//! - **Errors say where.** The file is parsed into a [`serde_json::Value`] and walked by
//!   hand instead of derived with `#[serde(deny_unknown_fields)]`, because every error must
//!   name the file, the section path (`metric-store.wal`) and the key, and serde's messages
//!   carry neither the file nor the path.
//! - **Validated once.** Everything is checked here, so the rest of the program can rely on
//!   the invariants documented on each field (durations positive, frequencies from 1 s to
//!   1 day, …).
//! - **`null` means unset.** An explicit `null` for an optional key behaves like an absent
//!   key, as Go's decoder treats it; for a required key it is reported as missing.
//!
//! # Layout
//!
//! One file per section (`main`, `metrics`, `nats`, `store` with its sub-sections,
//! `cleanup`, `remote_write`), the shared walker and file loading in `section`, the error type in `error`,
//! and the value syntaxes in `duration` and `size`. This file ties them together.

mod cleanup;
mod duration;
mod error;
mod legacy;
#[cfg(test)]
mod legacy_tests;
mod main;
mod metrics;
mod nats;
mod remote_write;
mod section;
mod size;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use strata_store::{MetricConfig, Resampler};

// NOTE: glob re-exports keep one namespace, as when this was one file: the rest of the
// program names `config::FsyncPolicy`, and the tests see every helper through `super::*`.
pub use self::cleanup::*;
pub use self::error::*;
pub use self::legacy::{ConfigFormat, convert};
pub use self::main::*;
pub use self::nats::*;
pub use self::section::*;
pub use self::store::*;

use self::metrics::parse_metrics;

const TOP_LEVEL_KEYS: &[&str] = &[
    "main",
    "main-file",
    "metrics",
    "metrics-file",
    "nats",
    "nats-file",
    "metric-store",
    "metric-store-file",
];

/// The whole configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it came from; `None` for the embedded default.
    pub source: Option<PathBuf>,
    pub main: MainSection,
    /// Configured metrics. Empty means unknown metrics are registered on first sight with
    /// `store.default_frequency_s` and aggregation `avg` (Decision 3); otherwise samples of
    /// unlisted metrics are dropped and counted.
    pub metrics: BTreeMap<String, MetricConfig>,
    /// The NATS connections with their subscriptions; empty = no NATS ingest.
    pub nats: Vec<NatsConnection>,
    /// The `metric-store` section.
    pub store: StoreSection,
    /// The format of the file, for the startup log.
    pub format: ConfigFormat,
}

impl Config {
    /// The configuration of `strata serve` without `--config` (Decision 14): listen on
    /// `127.0.0.1:8082` without authentication, register metrics on first sight, keep 48 h in
    /// memory without a memory cap, data in `./var/checkpoints`, fsync policy `batch`, and
    /// the defaults of every optional key.
    pub fn embedded_default() -> Config {
        Config {
            source: None,
            main: MainSection {
                addr: DEFAULT_ADDR.to_owned(),
                jwt_public_key: None,
                https: None,
                jwt_roles: None,
            },
            metrics: BTreeMap::new(),
            nats: Vec::new(),
            store: StoreSection {
                retention_in_memory: DEFAULT_RETENTION,
                memory_cap_bytes: None,
                num_workers: default_num_workers(),
                checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
                checkpoints: CheckpointsSection::default(),
                cleanup: CleanupSection::delete(DEFAULT_RETENTION),
                nats_subscriptions: Vec::new(),
                wal: WalSection::default(),
                default_frequency_s: DEFAULT_FREQUENCY_S,
                resampling: Resampler::default(),
                limits: LimitsSection::default(),
                remote_write: Vec::new(),
            },
            format: ConfigFormat::Sectioned,
        }
    }

    /// Reads a cc-metric-store configuration file: v1.5 sections (plus Strata's keys), or the
    /// legacy flat format.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::from_json(&read_config(path)?, path)
    }

    /// Parses configuration text: cc-metric-store v1.5's sections, or its legacy flat format
    /// (converted, see `legacy`). `origin` names the file in error messages, is the base
    /// for relative `<name>-file` paths, and becomes [`Config::source`].
    pub fn from_json(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let top_value = parse_json(text, origin)?;
        if legacy::detect(&top_value, origin)? {
            let converted = legacy::to_v15(&top_value, origin)?;
            let config = Config::from_sections(&converted.document, origin)
                .map_err(|error| converted.relocate(error))?;
            let format = ConfigFormat::LegacyFlat {
                notes: converted.notes,
            };
            return Ok(Config { format, ..config });
        }
        Config::from_sections(&top_value, origin)
    }

    /// Parses a v1.5 document.
    fn from_sections(top_value: &Value, origin: &Path) -> Result<Config, ConfigError> {
        let top = Section::new(origin, String::new(), top_value, TOP_LEVEL_KEYS)?;

        let main = load_section(&top, "main", "main-file")?.ok_or_else(|| {
            ConfigError::MissingSection {
                file: origin.to_owned(),
                section: "main".to_owned(),
            }
        })?;
        let main = parse_main(&Section::new(
            &main.file,
            "main".to_owned(),
            &main.value,
            MAIN_KEYS,
        )?)?;

        let metrics = match load_section(&top, "metrics", "metrics-file")? {
            Some(loaded) => parse_metrics(&loaded.file, &loaded.value)?,
            None => BTreeMap::new(),
        };

        let mut nats = match load_section(&top, "nats", "nats-file")? {
            Some(loaded) => parse_nats(&loaded.file, &loaded.value)?,
            None => Vec::new(),
        };

        let store = load_section(&top, "metric-store", "metric-store-file")?.ok_or_else(|| {
            ConfigError::MissingSection {
                file: origin.to_owned(),
                section: "metric-store".to_owned(),
            }
        })?;
        let mut store = parse_store(
            &Section::new(
                &store.file,
                "metric-store".to_owned(),
                &store.value,
                STORE_KEYS,
            )?,
            &nats,
        )?;
        store.nats_subscriptions =
            attach_subscriptions(&mut nats, std::mem::take(&mut store.nats_subscriptions));

        Ok(Config {
            source: Some(origin.to_owned()),
            main,
            metrics,
            nats,
            store,
            format: ConfigFormat::Sectioned,
        })
    }
}

/// The text of the configuration file `path`.
fn read_config(path: &Path) -> Result<String, ConfigError> {
    read_limited(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })
}
