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
//! | `main`         | yes      | `addr`, `jwt-public-key`, (unsupported: TLS, `user`/`group`, `backend-url`, `debug.gops`) |
//! | `metrics`      | no¹      | name → `{"frequency": seconds, "aggregation": "sum"\|"avg"\|null}` |
//! | `nats`         | no       | `address`, `username`, `password`, `creds-file-path` |
//! | `metric-store` | yes      | retention, memory cap, checkpoints, cleanup, NATS subscriptions, and Strata's `wal`, `default-frequency`, `resampling`, `limits` |
//!
//! ¹ cc-metric-store requires `metrics`; in Strata a missing or empty `metrics` section means
//! "register unknown metrics on first sight" (Decision 3).
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
//!   ignored. Keys Strata parses but does not implement (TLS, privilege dropping,
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

mod duration;
mod size;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value};
use strata_store::{
    Aggregation, FREQUENCY_S, MetricConfig, Resampler, ResamplerKind, StoreLimits, check_name,
};

use self::duration::parse_go_duration;
use self::size::parse_size;

/// Listen address of the embedded default (Decision 14). Loopback only, because the
/// embedded default has no authentication.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8082";
/// In-memory window of the embedded default (Decision 14).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(48 * 3600);
/// cc-metric-store's `checkpoint-interval` default (fixed in code, not derived from retention).
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(12 * 3600);
/// cc-metric-store's `checkpoints.directory` default; Strata keeps its WAL and snapshots there.
pub const DEFAULT_CHECKPOINT_DIRECTORY: &str = "./var/checkpoints";
/// Longest time acknowledged samples wait for an fsync under the `batch` policy: the data
/// that an operating-system crash or power loss can take.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_millis(100);
/// Size at which a WAL segment is closed and a new one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Frequency (seconds) given to metrics registered on first sight (Decision 3).
pub const DEFAULT_FREQUENCY_S: i64 = 60;
/// Default `limits.body-size`: largest request body, measured after gzip decompression.
pub const DEFAULT_BODY_BYTES_MAX: u64 = 256 << 20;
/// Default `limits.line-length`: longest line-protocol line.
pub const DEFAULT_LINE_BYTES_MAX: usize = 64 << 10;
/// Default `limits.tags-per-line`.
pub const DEFAULT_TAGS_PER_LINE_MAX: usize = 64;
/// Default `limits.name-length`: longest metric name, tag key or tag value.
pub const DEFAULT_NAME_BYTES_MAX: usize = 256;
/// Default `limits.series-per-query`.
pub const DEFAULT_QUERY_SERIES_MAX: usize = 100_000;
/// Default `limits.request-timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `limits.points-per-query`: ~ a week at 60 s for 64 nodes × 20 metrics, padded,
/// with room to spare; a few hundred MB of JSON, streamed.
pub const DEFAULT_QUERY_POINTS_MAX: usize = 50_000_000;
/// Default `limits.concurrent-queries`.
pub const DEFAULT_CONCURRENT_QUERIES: usize = 8;
/// Default `limits.header-timeout` (cc-metric-store's read timeout is 30 s).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `limits.connections`.
pub const DEFAULT_CONNECTIONS_MAX: usize = 1024;

/// Largest configuration (or `<name>-file`) file read: 16 MiB. Real files are a few KiB even
/// with thousands of metrics; the cap only stops a wrong path (a device, a log file) from
/// being read into memory whole. Tests shrink it to reach it cheaply.
pub const CONFIG_FILE_BYTES_MAX: u64 = if cfg!(test) { 64 << 10 } else { 16 << 20 };

/// cc-metric-store's `memory-cap` unit: decimal gigabytes.
const MEMORY_CAP_UNIT_BYTES: u64 = 1_000_000_000;

/// Upper bound of the default worker count, as in cc-metric-store.
const NUM_WORKERS_DEFAULT_MAX: usize = 10;

/// Longest piece of configuration text (a key, a value) echoed back in an error message.
const ECHO_BYTES_MAX: usize = 100;

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
const MAIN_KEYS: &[&str] = &[
    "addr",
    "jwt-public-key",
    "https-cert-file",
    "https-key-file",
    "user",
    "group",
    "backend-url",
    "debug",
];
const DEBUG_KEYS: &[&str] = &["dump-to-file", "gops"];
const METRIC_KEYS: &[&str] = &["frequency", "aggregation"];
const NATS_KEYS: &[&str] = &["address", "username", "password", "creds-file-path"];
const STORE_KEYS: &[&str] = &[
    "retention-in-memory",
    "memory-cap",
    "num-workers",
    "checkpoint-interval",
    "checkpoints",
    "cleanup",
    "nats-subscriptions",
    "debug",
    "wal",
    "default-frequency",
    "resampling",
    "limits",
];
const CHECKPOINTS_KEYS: &[&str] = &["file-format", "directory", "max-wal-size"];
const CLEANUP_KEYS: &[&str] = &["mode", "directory"];
const SUBSCRIPTION_KEYS: &[&str] = &["subscribe-to", "cluster-tag", "queue-group"];
const WAL_KEYS: &[&str] = &["fsync", "fsync-interval", "segment-size"];
const RESAMPLING_KEYS: &[&str] = &["algorithm", "minimum-points"];
const LIMITS_KEYS: &[&str] = &[
    "body-size",
    "line-length",
    "tags-per-line",
    "name-length",
    "series-per-query",
    "request-timeout",
    "points-per-query",
    "concurrent-queries",
    "header-timeout",
    "connections",
    "metrics",
    "hosts-per-cluster",
    "series-per-host",
    "children-per-level",
];

const TLS_NOT_SUPPORTED: &str = "TLS is not supported yet; terminate TLS in a reverse proxy";
const PRIVILEGE_DROP_NOT_SUPPORTED: &str = "dropping privileges is not supported; start strata as the target user (e.g. systemd User= and Group=)";
const BACKEND_URL_NOT_SUPPORTED: &str =
    "the cc-backend node provider is not supported; retention is purely time-based";
const GOPS_NOT_SUPPORTED: &str = "the gops agent is specific to Go programs";

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
    /// The `nats` connection section, if present. Parsed and kept; NATS ingest comes later.
    pub nats: Option<NatsSection>,
    /// The `metric-store` section.
    pub store: StoreSection,
}

/// The `main` section: the HTTP listener and its authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainSection {
    /// Listen address as `host:port`, never empty. A host name (`localhost:8082`), an IPv4
    /// address or a bracketed IPv6 address; Go's `":8082"` is rewritten to `0.0.0.0:8082`.
    pub addr: String,
    /// Ed25519 public key verifying the JWTs of API requests; `None` = no authentication.
    pub jwt_public_key: Option<[u8; 32]>,
}

/// The `nats` section: how to reach the NATS server (subscriptions are in `metric-store`).
/// Empty strings mean "not set", as in cc-metric-store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NatsSection {
    pub address: String,
    pub username: String,
    pub password: String,
    pub creds_file_path: String,
}

/// The `metric-store` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSection {
    /// How long samples stay in memory; also the cleanup interval and cutoff. Always > 0.
    pub retention_in_memory: Duration,
    /// Cap on the bytes held by the store's buffers (`memory-cap` × 10⁹); `None` when the
    /// file says 0 or leaves the key out (Decision 10: unlimited, unlike cc-metric-store).
    pub memory_cap_bytes: Option<u64>,
    /// Parallelism of checkpointing, loading and NATS decoding. Always ≥ 1: a 0 in the file
    /// becomes `min(ncpus / 2 + 1, 10)` as in cc-metric-store.
    pub num_workers: usize,
    /// How often snapshots are written. Always > 0 (cc-metric-store would panic on 0).
    pub checkpoint_interval: Duration,
    pub checkpoints: CheckpointsSection,
    pub cleanup: CleanupSection,
    pub nats_subscriptions: Vec<NatsSubscription>,
    pub wal: WalSection,
    /// Frequency in seconds of metrics registered on first sight (Decision 3). Always within
    /// [`FREQUENCY_S`].
    pub default_frequency_s: i64,
    /// `metric-store.resampling` (Strata only, Decision 8).
    pub resampling: Resampler,
    pub limits: LimitsSection,
}

/// `metric-store.checkpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointsSection {
    /// `"wal"` or `"json"` if given; nothing else is accepted (cc-metric-store treats other
    /// strings as json with idle WAL workers, which is never what was meant). Parsed for
    /// compatibility and otherwise ignored, with a warning at startup (Decision 17): Strata
    /// always writes its own WAL and snapshots.
    pub file_format: Option<String>,
    /// Data directory: Strata's WAL and snapshots, or cc-metric-store's checkpoints to import.
    pub directory: PathBuf,
    /// cc-metric-store's per-host WAL size that forces a rotation, in bytes, if given.
    /// Ignored with a warning at startup: Strata's WAL rotates at `wal.segment-size`.
    pub max_wal_size: Option<u64>,
}

/// `metric-store.cleanup`: what happens to data older than the retention window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupSection {
    pub mode: CleanupMode,
    /// Archive destination; always `Some` when `mode` is [`CleanupMode::Archive`].
    pub directory: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupMode {
    /// Old checkpoint files are deleted.
    #[default]
    Delete,
    /// Old checkpoint files are moved to `cleanup.directory`.
    Archive,
}

/// One entry of `metric-store.nats-subscriptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSubscription {
    /// Subject to subscribe to; never empty.
    pub subscribe_to: String,
    /// Cluster given to lines without a `cluster` tag received on this subscription only
    /// (Decision 13); `None` when absent or empty.
    pub cluster_tag: Option<String>,
    /// NATS queue group, so that several Strata instances share a subject (Decision 13).
    pub queue_group: Option<String>,
}

/// `metric-store.wal` (Strata only): durability of acknowledged samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalSection {
    pub fsync: FsyncPolicy,
    /// Longest wait for an fsync under [`FsyncPolicy::Batch`]. Always > 0.
    pub fsync_interval: Duration,
    /// Size at which a WAL segment is closed (`segment-size`). Always > 0.
    pub segment_bytes: u64,
}

/// When the WAL is fsynced, i.e. what a crash can lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// A write is acknowledged only after its fsync: nothing acknowledged is lost.
    Always,
    /// Fsync at most every `fsync-interval`: an OS crash loses at most that window.
    #[default]
    Batch,
    /// The WAL is written but never fsynced: survives a process crash, not an OS crash.
    Never,
    /// No WAL: everything since the last snapshot is lost on any crash.
    Off,
}

/// `metric-store.limits` (Strata only): bounds on input. Every value is > 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsSection {
    /// `body-size`: largest request body in bytes, checked after gzip decompression.
    pub body_bytes_max: u64,
    /// `line-length`: longest line-protocol line in bytes.
    pub line_bytes_max: usize,
    /// `tags-per-line`.
    pub tags_per_line_max: usize,
    /// `name-length`: longest metric name, tag key or tag value in bytes.
    pub name_bytes_max: usize,
    /// `series-per-query`: most series one query request may touch.
    pub query_series_max: usize,
    /// `request-timeout`: longest time one HTTP request may take.
    pub request_timeout: Duration,
    /// `points-per-query`: most data points one query request may return.
    pub query_points_max: usize,
    /// `concurrent-queries`: most query, healthcheck and debug computations at once.
    pub concurrent_queries: usize,
    /// `header-timeout`: longest wait for a request's headers, also between the requests
    /// of a kept-alive connection.
    pub header_timeout: Duration,
    /// `connections`: most open client connections.
    pub connections_max: usize,
    /// `metrics` (auto-registered), `hosts-per-cluster`, `series-per-host`,
    /// `children-per-level`: what writes may create; samples beyond are dropped and counted.
    pub store: StoreLimits,
}

impl Default for CheckpointsSection {
    fn default() -> Self {
        Self {
            file_format: None,
            directory: PathBuf::from(DEFAULT_CHECKPOINT_DIRECTORY),
            max_wal_size: None,
        }
    }
}

impl Default for WalSection {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Batch,
            fsync_interval: DEFAULT_FSYNC_INTERVAL,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            body_bytes_max: DEFAULT_BODY_BYTES_MAX,
            line_bytes_max: DEFAULT_LINE_BYTES_MAX,
            tags_per_line_max: DEFAULT_TAGS_PER_LINE_MAX,
            name_bytes_max: DEFAULT_NAME_BYTES_MAX,
            query_series_max: DEFAULT_QUERY_SERIES_MAX,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            query_points_max: DEFAULT_QUERY_POINTS_MAX,
            concurrent_queries: DEFAULT_CONCURRENT_QUERIES,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            connections_max: DEFAULT_CONNECTIONS_MAX,
            store: StoreLimits::DEFAULT,
        }
    }
}

impl fmt::Display for CleanupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Delete => "delete",
            Self::Archive => "archive",
        })
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Always => "always",
            Self::Batch => "batch",
            Self::Never => "never",
            Self::Off => "off",
        })
    }
}

/// `num-workers: 0` means this: `min(ncpus / 2 + 1, 10)`, as in cc-metric-store.
pub fn default_num_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus / 2 + 1).min(NUM_WORKERS_DEFAULT_MAX)
}

/// A configuration that cannot be used. Every variant names the file; those about a value
/// also name the section path (`""` for the top level, `metric-store.wal`,
/// `metrics.cpu_load`, `metric-store.nats-subscriptions[0]`) and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("{}: cannot read the configuration file: {error}", .path.display())]
    Read { path: PathBuf, error: io::Error },
    /// The file named by a `<name>-file` key could not be read.
    #[error("{}: cannot read {} given by {key:?}: {error}", .file.display(), .path.display())]
    Include {
        file: PathBuf,
        key: String,
        /// The resolved path that was tried.
        path: PathBuf,
        error: io::Error,
    },
    /// The text is not JSON.
    #[error("{}:{line}:{column}: invalid JSON: {message}", .file.display())]
    Json {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A section (or the top level) is not a JSON object.
    #[error("{}: {} must be a JSON object, found {found}", .file.display(), describe_section(.section))]
    NotAnObject {
        file: PathBuf,
        section: String,
        found: String,
    },
    /// A key that is not part of the format (often a typo).
    #[error("{}: unknown key {key:?} {}; expected one of: {}", .file.display(), in_section(.section), .expected.join(", "))]
    UnknownKey {
        file: PathBuf,
        section: String,
        key: String,
        expected: &'static [&'static str],
    },
    /// A required section (`main`, `metric-store`) is absent.
    #[error("{}: missing required section {section:?}", .file.display())]
    MissingSection { file: PathBuf, section: String },
    /// A required key is absent or `null`.
    #[error("{}: missing required key {key:?} {}", .file.display(), in_section(.section))]
    MissingKey {
        file: PathBuf,
        section: String,
        key: String,
    },
    /// A key has a value of the wrong type or out of range.
    #[error("{}: invalid value for key {key:?} {}: {reason}", .file.display(), in_section(.section))]
    InvalidValue {
        file: PathBuf,
        section: String,
        key: String,
        reason: String,
    },
    /// A cc-metric-store feature that Strata does not implement is switched on (Decision 17).
    #[error("{}: key {key:?} {} is not supported: {reason}", .file.display(), in_section(.section))]
    NotSupported {
        file: PathBuf,
        section: String,
        key: String,
        reason: &'static str,
    },
    /// Both `<name>` and `<name>-file` are given.
    #[error("{}: both {section:?} and \"{section}-file\" are given; use one", .file.display())]
    DuplicateSection { file: PathBuf, section: String },
}

/// `section "x"`, or `the top level`.
fn describe_section(section: &str) -> String {
    if section.is_empty() {
        "the top level".to_owned()
    } else {
        format!("section {section:?}")
    }
}

/// `in section "x"`, or `at the top level`.
fn in_section(section: &str) -> String {
    if section.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in section {section:?}")
    }
}

/// Cuts `text` to at most `bytes_max` bytes (on a char boundary), marking the cut, so that
/// error messages stay readable when a file holds something huge.
fn clip(text: &str, bytes_max: usize) -> String {
    if text.len() <= bytes_max {
        return text.to_owned();
    }
    let mut end = bytes_max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
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
            },
            metrics: BTreeMap::new(),
            nats: None,
            store: StoreSection {
                retention_in_memory: DEFAULT_RETENTION,
                memory_cap_bytes: None,
                num_workers: default_num_workers(),
                checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
                checkpoints: CheckpointsSection::default(),
                cleanup: CleanupSection {
                    mode: CleanupMode::Delete,
                    directory: None,
                },
                nats_subscriptions: Vec::new(),
                wal: WalSection::default(),
                default_frequency_s: DEFAULT_FREQUENCY_S,
                resampling: Resampler::default(),
                limits: LimitsSection::default(),
            },
        }
    }

    /// Reads a cc-metric-store v1.5 sectioned JSON configuration file (plus Strata's keys).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = read_limited(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Config::from_json(&text, path)
    }

    /// Parses configuration text. `origin` names the file in error messages, is the base
    /// for relative `<name>-file` paths, and becomes [`Config::source`].
    pub fn from_json(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let top_value = parse_json(text, origin)?;
        let top = Section::new(origin, String::new(), &top_value, TOP_LEVEL_KEYS)?;

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

        let nats = match load_section(&top, "nats", "nats-file")? {
            Some(loaded) => Some(parse_nats(&Section::new(
                &loaded.file,
                "nats".to_owned(),
                &loaded.value,
                NATS_KEYS,
            )?)?),
            None => None,
        };

        let store = load_section(&top, "metric-store", "metric-store-file")?.ok_or_else(|| {
            ConfigError::MissingSection {
                file: origin.to_owned(),
                section: "metric-store".to_owned(),
            }
        })?;
        let store = parse_store(&Section::new(
            &store.file,
            "metric-store".to_owned(),
            &store.value,
            STORE_KEYS,
        )?)?;

        Ok(Config {
            source: Some(origin.to_owned()),
            main,
            metrics,
            nats,
            store,
        })
    }
}

/// Reads a whole file as UTF-8, refusing files over [`CONFIG_FILE_BYTES_MAX`].
fn read_limited(path: &Path) -> io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(CONFIG_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > CONFIG_FILE_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {CONFIG_FILE_BYTES_MAX} bytes; is this a configuration file?"),
        ));
    }
    Ok(text)
}

/// Parses JSON text, reporting syntax errors with file, line and column.
fn parse_json(text: &str, file: &Path) -> Result<Value, ConfigError> {
    serde_json::from_str(text).map_err(|error| {
        let (line, column) = (error.line(), error.column());
        // serde_json appends " at line L column C"; it is already in the prefix.
        let full = error.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        ConfigError::Json {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    })
}

/// A section's JSON value and the file it came from: the configuration file itself, or
/// the file named by its `<name>-file` key.
struct Loaded<'a> {
    value: Cow<'a, Value>,
    file: Cow<'a, Path>,
}

/// Finds section `name` inline or through `file_key` (`<name>-file`).
fn load_section<'a>(
    top: &Section<'a>,
    name: &str,
    file_key: &str,
) -> Result<Option<Loaded<'a>>, ConfigError> {
    let inline = top.get(name);
    let indirect = top.string(file_key)?;
    match (inline, indirect) {
        (Some(_), Some(_)) => Err(ConfigError::DuplicateSection {
            file: top.file.to_owned(),
            section: name.to_owned(),
        }),
        (Some(value), None) => Ok(Some(Loaded {
            value: Cow::Borrowed(value),
            file: Cow::Borrowed(top.file),
        })),
        (None, Some("")) => Err(top.invalid(file_key, "must name a JSON file, found \"\"")),
        (None, Some(given)) => {
            let path = resolve_include(top.file, Path::new(given));
            let text = read_limited(&path).map_err(|error| ConfigError::Include {
                file: top.file.to_owned(),
                key: file_key.to_owned(),
                path: path.clone(),
                error,
            })?;
            let value = parse_json(&text, &path)?;
            Ok(Some(Loaded {
                value: Cow::Owned(value),
                file: Cow::Owned(path),
            }))
        }
        (None, None) => Ok(None),
    }
}

/// Resolves a `<name>-file` path: absolute as given; relative against the configuration
/// file's directory, or, if nothing exists there but something exists relative to the
/// working directory, against the working directory (cc-metric-store's behaviour).
///
/// When neither exists the path next to the configuration file is returned, so that the
/// error names the place Strata looks first.
fn resolve_include(config_file: &Path, given: &Path) -> PathBuf {
    if given.is_absolute() {
        return given.to_owned();
    }
    let beside = match config_file.parent() {
        Some(directory) => directory.join(given),
        None => given.to_owned(),
    };
    if !beside.exists() && given.exists() {
        return given.to_owned();
    }
    beside
}

/// One JSON object of the configuration being walked, with the file it came from and its
/// path in the configuration, so that every error can say where it is.
struct Section<'a> {
    file: &'a Path,
    /// `""` for the top level, otherwise e.g. `metric-store.wal`.
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Section<'a> {
    /// Checks that `value` is an object whose keys are all in `keys`.
    fn new(
        file: &'a Path,
        path: String,
        value: &'a Value,
        keys: &'static [&'static str],
    ) -> Result<Self, ConfigError> {
        let map = object(file, &path, value)?;
        if let Some(key) = map.keys().find(|key| !keys.contains(&key.as_str())) {
            return Err(ConfigError::UnknownKey {
                file: file.to_owned(),
                section: path,
                key: clip(key, ECHO_BYTES_MAX),
                expected: keys,
            });
        }
        Ok(Self { file, path, map })
    }

    /// The value of `key`; an explicit `null` counts as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// A sub-object, with its own key check, or `None` if absent or `null`.
    fn section(
        &self,
        key: &str,
        keys: &'static [&'static str],
    ) -> Result<Option<Section<'a>>, ConfigError> {
        self.get(key)
            .map(|value| Section::new(self.file, self.child_path(key), value, keys))
            .transpose()
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// A string where `""` means unset, as in cc-metric-store.
    fn non_empty_string(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        Ok(self.string(key)?.filter(|text| !text.is_empty()))
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(self.wrong_type(key, "true or false", other)),
        }
    }

    /// A JSON integer (no fraction, no exponent) in `i64` range.
    fn integer(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "an integer", value)),
        }
    }

    /// A metric frequency: an integer number of seconds within [`FREQUENCY_S`].
    fn frequency(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        match self.integer(key)? {
            Some(seconds) if !FREQUENCY_S.contains(&seconds) => Err(self.invalid(
                key,
                format!(
                    "must be a number of seconds from {} to {} (one day), found {seconds}",
                    FREQUENCY_S.start(),
                    FREQUENCY_S.end()
                ),
            )),
            other => Ok(other),
        }
    }

    /// A JSON integer ≥ 0.
    fn unsigned(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a non-negative integer", value)),
        }
    }

    /// A JSON integer ≥ 1 that fits a `usize`.
    fn count(&self, key: &str) -> Result<Option<usize>, ConfigError> {
        let Some(value) = self.unsigned(key)? else {
            return Ok(None);
        };
        if value == 0 {
            return Err(self.invalid(key, "must be greater than 0"));
        }
        usize::try_from(value)
            .map(Some)
            .map_err(|_| self.invalid(key, format!("{value} is too large")))
    }

    /// A Go duration string that must be greater than zero.
    fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        let nanos =
            parse_go_duration(text).map_err(|error| self.invalid(key, error.to_string()))?;
        match u64::try_from(nanos) {
            Ok(nanos) if nanos > 0 => Ok(Some(Duration::from_nanos(nanos))),
            _ => Err(self.invalid(
                key,
                format!("must be greater than zero, found {}", quote(text)),
            )),
        }
    }

    /// A byte size: a JSON integer, or a string such as `"64MiB"` (see [`size`]).
    fn size(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => parse_size(text)
                .map(Some)
                .map_err(|error| self.invalid(key, error.to_string())),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                self.wrong_type(
                    key,
                    "a non-negative integer or a size such as \"64MiB\"",
                    value,
                )
            }),
        }
    }

    /// A byte size ≥ 1 that fits a `usize`.
    fn size_positive(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.size(key)? {
            Some(0) => Err(self.invalid(key, "must be greater than 0")),
            other => Ok(other),
        }
    }

    fn size_usize(&self, key: &str) -> Result<Option<usize>, ConfigError> {
        self.size_positive(key)?
            .map(|bytes| {
                usize::try_from(bytes)
                    .map_err(|_| self.invalid(key, format!("{bytes} is too large")))
            })
            .transpose()
    }

    /// One of `choices`, mapped to its value.
    fn choice<T: Copy>(&self, key: &str, choices: &[(&str, T)]) -> Result<Option<T>, ConfigError> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        choices
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, value)| Some(*value))
            .ok_or_else(|| {
                let names: Vec<String> = choices.iter().map(|(name, _)| quote(name)).collect();
                self.invalid(
                    key,
                    format!(
                        "expected one of {}, found {}",
                        names.join(", "),
                        quote(text)
                    ),
                )
            })
    }

    fn required<T>(&self, key: &str, value: Option<T>) -> Result<T, ConfigError> {
        value.ok_or_else(|| self.missing(key))
    }

    fn missing(&self, key: &str) -> ConfigError {
        ConfigError::MissingKey {
            file: self.file.to_owned(),
            section: self.path.clone(),
            key: key.to_owned(),
        }
    }

    fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            file: self.file.to_owned(),
            section: self.path.clone(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> ConfigError {
        self.invalid(
            key,
            format!("expected {expected}, found {}", describe_value(found)),
        )
    }

    fn not_supported(&self, key: &str, reason: &'static str) -> ConfigError {
        ConfigError::NotSupported {
            file: self.file.to_owned(),
            section: self.path.clone(),
            key: key.to_owned(),
            reason,
        }
    }
}

/// The map of `value`, or an error naming the section.
fn object<'a>(
    file: &Path,
    section: &str,
    value: &'a Value,
) -> Result<&'a Map<String, Value>, ConfigError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ConfigError::NotAnObject {
            file: file.to_owned(),
            section: section.to_owned(),
            found: describe_value(other),
        }),
    }
}

/// A JSON string literal of `text`, clipped for error messages.
fn quote(text: &str) -> String {
    format!("{:?}", clip(text, ECHO_BYTES_MAX))
}

/// A short description of a JSON value for "expected X, found Y" messages.
fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => quote(text),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn parse_main(section: &Section<'_>) -> Result<MainSection, ConfigError> {
    let addr = section.required("addr", section.string("addr")?)?;
    let addr = validate_addr(addr).map_err(|reason| section.invalid("addr", reason))?;

    let jwt_public_key = match section.non_empty_string("jwt-public-key")? {
        None => None,
        Some(text) => Some(
            decode_public_key(text).map_err(|reason| section.invalid("jwt-public-key", reason))?,
        ),
    };

    for key in ["https-cert-file", "https-key-file"] {
        if section.non_empty_string(key)?.is_some() {
            return Err(section.not_supported(key, TLS_NOT_SUPPORTED));
        }
    }
    for key in ["user", "group"] {
        if section.non_empty_string(key)?.is_some() {
            return Err(section.not_supported(key, PRIVILEGE_DROP_NOT_SUPPORTED));
        }
    }
    if section.non_empty_string("backend-url")?.is_some() {
        return Err(section.not_supported("backend-url", BACKEND_URL_NOT_SUPPORTED));
    }
    if let Some(debug) = section.section("debug", DEBUG_KEYS)? {
        parse_debug(&debug)?;
    }

    Ok(MainSection {
        addr,
        jwt_public_key,
    })
}

/// Checks a listen address and returns it in a form `TcpListener::bind` accepts.
///
/// Accepted: `ip:port` (`0.0.0.0:8082`, `[::1]:8082`), `hostname:port` (`localhost:8082`),
/// and Go's `:port`, which becomes `0.0.0.0:port` (IPv4 only; write `[::]:port` for IPv6).
/// Port 0 (any free port) is allowed, as in Go; service names (`:http`) are not.
fn validate_addr(addr: &str) -> Result<String, String> {
    if addr.is_empty() {
        return Err("must not be empty; give host:port, e.g. \"0.0.0.0:8082\"".to_owned());
    }
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(addr.to_owned());
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("expected host:port, found {}", quote(addr)));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "expected host:port with a port number 0-65535, found {}",
            quote(addr)
        ));
    }
    if host.is_empty() {
        return Ok(format!("0.0.0.0:{port}"));
    }
    let looks_like_ipv6 = host.starts_with('[')
        || (host.contains(':')
            && host
                .bytes()
                .all(|byte| byte.is_ascii_hexdigit() || byte == b':' || byte == b'.'));
    if looks_like_ipv6 {
        return Err(format!(
            "invalid IPv6 address in {} (write it in brackets, e.g. \"[::1]:8082\")",
            quote(addr)
        ));
    }
    let valid_host = host
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.' || byte == b'_');
    if !valid_host {
        return Err(format!("invalid host name in {}", quote(addr)));
    }
    Ok(addr.to_owned())
}

/// Decodes `jwt-public-key`: standard base64 (with padding, like Go's `StdEncoding`) of
/// exactly the 32 bytes of an Ed25519 public key.
fn decode_public_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|error| format!("not valid standard base64: {error}"))?;
    let length = bytes.len();
    <[u8; 32]>::try_from(bytes).map_err(|_| {
        format!("an Ed25519 public key is 32 bytes, but this decodes to {length} bytes")
    })
}

/// `debug` (in `main` and `metric-store`): `dump-to-file` is accepted and ignored, as in
/// cc-metric-store; `gops: true` is not supported.
fn parse_debug(section: &Section<'_>) -> Result<(), ConfigError> {
    section.string("dump-to-file")?;
    if section.boolean("gops")? == Some(true) {
        return Err(section.not_supported("gops", GOPS_NOT_SUPPORTED));
    }
    Ok(())
}

fn parse_metrics(
    file: &Path,
    value: &Value,
) -> Result<BTreeMap<String, MetricConfig>, ConfigError> {
    let entries = object(file, "metrics", value)?;
    let mut metrics = BTreeMap::new();
    for (name, entry) in entries {
        if name.is_empty() {
            return Err(ConfigError::InvalidValue {
                file: file.to_owned(),
                section: "metrics".to_owned(),
                key: String::new(),
                reason: "a metric name must not be empty".to_owned(),
            });
        }
        let section = Section::new(file, format!("metrics.{name}"), entry, METRIC_KEYS)?;
        metrics.insert(name.clone(), parse_metric(&section)?);
    }
    Ok(metrics)
}

fn parse_metric(section: &Section<'_>) -> Result<MetricConfig, ConfigError> {
    let frequency_s = section.required("frequency", section.frequency("frequency")?)?;
    // NOTE: `aggregation` is required but may be null; `get` would treat null as absent.
    let aggregation = match section.map.get("aggregation") {
        None => return Err(section.missing("aggregation")),
        Some(Value::Null) => Aggregation::None,
        Some(Value::String(text)) => text
            .parse::<Aggregation>()
            .map_err(|error| section.invalid("aggregation", error.to_string()))?,
        Some(other) => {
            return Err(section.wrong_type("aggregation", "\"sum\", \"avg\" or null", other));
        }
    };
    Ok(MetricConfig {
        frequency_s,
        aggregation,
    })
}

fn parse_nats(section: &Section<'_>) -> Result<NatsSection, ConfigError> {
    let text = |key: &str| -> Result<String, ConfigError> {
        Ok(section.string(key)?.unwrap_or_default().to_owned())
    };
    Ok(NatsSection {
        address: text("address")?,
        username: text("username")?,
        password: text("password")?,
        creds_file_path: text("creds-file-path")?,
    })
}

fn parse_store(section: &Section<'_>) -> Result<StoreSection, ConfigError> {
    let retention_in_memory = section.required(
        "retention-in-memory",
        section.duration("retention-in-memory")?,
    )?;
    // Required by cc-metric-store's schema; optional here, absent meaning unlimited as `0` does
    // (Decision 10), so that the embedded default and a minimal file agree.
    let memory_cap_gb = section.unsigned("memory-cap")?.unwrap_or(0);
    let memory_cap_bytes = match memory_cap_gb {
        0 => None,
        gigabytes => Some(
            gigabytes
                .checked_mul(MEMORY_CAP_UNIT_BYTES)
                .ok_or_else(|| {
                    section.invalid("memory-cap", format!("{gigabytes} GB is too large"))
                })?,
        ),
    };
    let num_workers = match section.unsigned("num-workers")? {
        None | Some(0) => default_num_workers(),
        Some(workers) => usize::try_from(workers)
            .map_err(|_| section.invalid("num-workers", format!("{workers} is too large")))?,
    };
    let checkpoint_interval = section
        .duration("checkpoint-interval")?
        .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL);

    let checkpoints = match section.section("checkpoints", CHECKPOINTS_KEYS)? {
        Some(sub) => parse_checkpoints(&sub)?,
        None => CheckpointsSection::default(),
    };
    let cleanup = match section.section("cleanup", CLEANUP_KEYS)? {
        Some(sub) => parse_cleanup(&sub)?,
        None => CleanupSection {
            mode: CleanupMode::Delete,
            directory: None,
        },
    };
    let limits = match section.section("limits", LIMITS_KEYS)? {
        Some(sub) => parse_limits(&sub)?,
        None => LimitsSection::default(),
    };
    let nats_subscriptions = parse_subscriptions(section, limits.name_bytes_max)?;
    if let Some(debug) = section.section("debug", DEBUG_KEYS)? {
        parse_debug(&debug)?;
    }
    let wal = match section.section("wal", WAL_KEYS)? {
        Some(sub) => parse_wal(&sub)?,
        None => WalSection::default(),
    };
    let default_frequency_s = section
        .frequency("default-frequency")?
        .unwrap_or(DEFAULT_FREQUENCY_S);
    let resampling = match section.section("resampling", RESAMPLING_KEYS)? {
        Some(sub) => parse_resampling(&sub)?,
        None => Resampler::default(),
    };

    Ok(StoreSection {
        retention_in_memory,
        memory_cap_bytes,
        num_workers,
        checkpoint_interval,
        checkpoints,
        cleanup,
        nats_subscriptions,
        wal,
        default_frequency_s,
        resampling,
        limits,
    })
}

fn parse_checkpoints(section: &Section<'_>) -> Result<CheckpointsSection, ConfigError> {
    let defaults = CheckpointsSection::default();
    let file_format = section
        .choice("file-format", &[("wal", "wal"), ("json", "json")])?
        .map(str::to_owned);
    let directory = section
        .non_empty_string("directory")?
        .map_or(defaults.directory, PathBuf::from);
    let max_wal_size = section.size("max-wal-size")?;
    Ok(CheckpointsSection {
        file_format,
        directory,
        max_wal_size,
    })
}

fn parse_cleanup(section: &Section<'_>) -> Result<CleanupSection, ConfigError> {
    let mode = section
        .choice(
            "mode",
            &[
                ("delete", CleanupMode::Delete),
                ("archive", CleanupMode::Archive),
            ],
        )?
        .unwrap_or_default();
    let directory = section.non_empty_string("directory")?.map(PathBuf::from);
    if mode == CleanupMode::Archive && directory.is_none() {
        // cc-metric-store's schema: `if mode == "archive" then required: ["directory"]`.
        return Err(section.missing("directory"));
    }
    Ok(CleanupSection { mode, directory })
}

/// The subscriptions; a `cluster-tag` is held to the cluster name rule of ingest
/// ([`check_name`]), since it becomes the cluster of the lines received.
fn parse_subscriptions(
    section: &Section<'_>,
    name_bytes_max: usize,
) -> Result<Vec<NatsSubscription>, ConfigError> {
    let key = "nats-subscriptions";
    let entries = match section.get(key) {
        None => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(other) => return Err(section.wrong_type(key, "an array", other)),
    };
    let mut subscriptions = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let path = format!("{}[{index}]", section.child_path(key));
        let entry = Section::new(section.file, path, entry, SUBSCRIPTION_KEYS)?;
        let subscribe_to =
            entry.required("subscribe-to", entry.non_empty_string("subscribe-to")?)?;
        let cluster_tag = entry.non_empty_string("cluster-tag")?;
        if let Some(tag) = cluster_tag {
            check_name("cluster", tag, name_bytes_max)
                .map_err(|error| entry.invalid("cluster-tag", error.to_string()))?;
        }
        subscriptions.push(NatsSubscription {
            subscribe_to: subscribe_to.to_owned(),
            cluster_tag: cluster_tag.map(str::to_owned),
            queue_group: entry.non_empty_string("queue-group")?.map(str::to_owned),
        });
    }
    Ok(subscriptions)
}

fn parse_wal(section: &Section<'_>) -> Result<WalSection, ConfigError> {
    let defaults = WalSection::default();
    let fsync = section
        .choice(
            "fsync",
            &[
                ("always", FsyncPolicy::Always),
                ("batch", FsyncPolicy::Batch),
                ("never", FsyncPolicy::Never),
                ("off", FsyncPolicy::Off),
            ],
        )?
        .unwrap_or(defaults.fsync);
    Ok(WalSection {
        fsync,
        fsync_interval: section
            .duration("fsync-interval")?
            .unwrap_or(defaults.fsync_interval),
        segment_bytes: section
            .size_positive("segment-size")?
            .unwrap_or(defaults.segment_bytes),
    })
}

fn parse_resampling(section: &Section<'_>) -> Result<Resampler, ConfigError> {
    let defaults = Resampler::default();
    Ok(Resampler {
        kind: section
            .choice(
                "algorithm",
                &[
                    ("lttb", ResamplerKind::Lttb),
                    ("average", ResamplerKind::Average),
                ],
            )?
            .unwrap_or(defaults.kind),
        minimum_points: section
            .count("minimum-points")?
            .unwrap_or(defaults.minimum_points),
    })
}

fn parse_store_limits(
    section: &Section<'_>,
    defaults: StoreLimits,
) -> Result<StoreLimits, ConfigError> {
    let count = |key, default| Ok::<_, ConfigError>(section.count(key)?.unwrap_or(default));
    Ok(StoreLimits {
        metrics_max: count("metrics", defaults.metrics_max)?,
        hosts_per_cluster_max: count("hosts-per-cluster", defaults.hosts_per_cluster_max)?,
        series_per_host_max: count("series-per-host", defaults.series_per_host_max)?,
        children_per_level_max: count("children-per-level", defaults.children_per_level_max)?,
    })
}

fn parse_limits(section: &Section<'_>) -> Result<LimitsSection, ConfigError> {
    let defaults = LimitsSection::default();
    Ok(LimitsSection {
        body_bytes_max: section
            .size_positive("body-size")?
            .unwrap_or(defaults.body_bytes_max),
        line_bytes_max: section
            .size_usize("line-length")?
            .unwrap_or(defaults.line_bytes_max),
        tags_per_line_max: section
            .count("tags-per-line")?
            .unwrap_or(defaults.tags_per_line_max),
        name_bytes_max: section
            .size_usize("name-length")?
            .unwrap_or(defaults.name_bytes_max),
        query_series_max: section
            .count("series-per-query")?
            .unwrap_or(defaults.query_series_max),
        request_timeout: section
            .duration("request-timeout")?
            .unwrap_or(defaults.request_timeout),
        query_points_max: section
            .count("points-per-query")?
            .unwrap_or(defaults.query_points_max),
        concurrent_queries: section
            .count("concurrent-queries")?
            .unwrap_or(defaults.concurrent_queries),
        header_timeout: section
            .duration("header-timeout")?
            .unwrap_or(defaults.header_timeout),
        connections_max: section
            .count("connections")?
            .unwrap_or(defaults.connections_max),
        store: parse_store_limits(section, defaults.store)?,
    })
}
