//! The `metric-store` section: retention, memory cap, checkpoints, and Strata's `wal`,
//! `default-frequency`, `resampling` and `limits` (`cleanup`, `nats-subscriptions` and
//! `remote-write` have files of their own).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use strata_forward::EndpointConfig;
use strata_store::{Resampler, ResamplerKind, StoreLimits};

use super::ConfigError;
use super::cleanup::{CLEANUP_KEYS, CleanupSection, parse_cleanup};
use super::main::{DEBUG_KEYS, parse_debug};
use super::nats::{NatsConnection, NatsSubscription, parse_subscriptions};
use super::remote_write::{REMOTE_WRITE_KEY, parse_remote_write};
use super::section::Section;

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

/// Default `limits.nats-pending-messages`: messages a NATS subscription buffers before it
/// drops (core) or stops pulling (JetStream). Bursts of small messages (every collector
/// flushing in the same second) need many; `nats-pending-bytes` bounds their memory.
pub const DEFAULT_NATS_PENDING_MESSAGES: usize = 65_536;

/// Default `limits.nats-pending-bytes`: payload bytes a core subscription buffers before it
/// drops (64 MiB, nats.go's default pending limit, which cc-metric-store has).
pub const DEFAULT_NATS_PENDING_BYTES: u64 = 64 << 20;

/// Largest `limits.nats-pending-messages`: a million messages per subscription is already
/// far more memory than a buffer should hold.
pub const NATS_PENDING_MESSAGES_MAX: usize = 1 << 20;

/// cc-metric-store's `memory-cap` unit: decimal gigabytes.
const MEMORY_CAP_UNIT_BYTES: u64 = 1_000_000_000;

/// Upper bound of the default worker count, as in cc-metric-store.
const NUM_WORKERS_DEFAULT_MAX: usize = 10;

pub(super) const STORE_KEYS: &[&str] = &[
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
    "remote-write",
];

const CHECKPOINTS_KEYS: &[&str] = &["file-format", "directory", "max-wal-size"];

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
    "nats-pending-messages",
    "nats-pending-bytes",
];

/// The `metric-store` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSection {
    /// How long samples stay in memory; also the cleanup cutoff and the default
    /// `cleanup.interval`. Always > 0.
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
    /// Subscriptions no connection took: only when there is no `nats` section (they are
    /// validated and ignored, as cc-metric-store ignores them; `serve` warns). The others
    /// are in [`NatsConnection::subscriptions`].
    pub nats_subscriptions: Vec<NatsSubscription>,
    pub wal: WalSection,
    /// Frequency in seconds of metrics registered on first sight (Decision 3). Always within
    /// [`FREQUENCY_S`].
    pub default_frequency_s: i64,
    /// `metric-store.resampling` (Strata only, Decision 8).
    pub resampling: Resampler,
    pub limits: LimitsSection,
    /// `metric-store.remote-write` (Strata only): where the write-ahead log is forwarded,
    /// validated (unique names, see `remote_write`). Empty = no forwarding; never non-empty
    /// under [`FsyncPolicy::Off`], where there is no log to forward.
    pub remote_write: Vec<EndpointConfig>,
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
    /// `nats-pending-messages`: messages one NATS subscription buffers.
    pub nats_pending_messages: usize,
    /// `nats-pending-bytes`: payload bytes one core NATS subscription buffers.
    pub nats_pending_bytes: usize,
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
            nats_pending_messages: DEFAULT_NATS_PENDING_MESSAGES,
            nats_pending_bytes: DEFAULT_NATS_PENDING_BYTES as usize,
            store: StoreLimits::DEFAULT,
        }
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

/// `nats` is the parsed `nats` section, which subscriptions refer to.
pub(super) fn parse_store(
    section: &Section<'_>,
    nats: &[NatsConnection],
) -> Result<StoreSection, ConfigError> {
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
        Some(sub) => parse_cleanup(&sub, retention_in_memory)?,
        None => CleanupSection::delete(retention_in_memory),
    };
    let limits = match section.section("limits", LIMITS_KEYS)? {
        Some(sub) => parse_limits(&sub)?,
        None => LimitsSection::default(),
    };
    let nats_subscriptions = parse_subscriptions(section, limits.name_bytes_max, nats)?;
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

    // A JetStream acknowledgement promises the message is in the write-ahead log.
    if wal.fsync == FsyncPolicy::Off
        && let Some(index) = nats_subscriptions
            .iter()
            .position(|s| s.jetstream.is_some())
    {
        return Err(section.invalid(
            &format!("nats-subscriptions[{index}].jetstream"),
            "is acknowledged only once in the write-ahead log, which metric-store.wal.fsync: \
             off disables; set wal.fsync to always, batch or never, or use a core subscription",
        ));
    }

    let remote_write = parse_remote_write(section)?;
    if wal.fsync == FsyncPolicy::Off && !remote_write.is_empty() {
        return Err(section.invalid(
            REMOTE_WRITE_KEY,
            "forwarding reads the write-ahead log, which fsync: off disables; set \
             wal.fsync to always, batch or never, or remove remote-write",
        ));
    }

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
        remote_write,
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
        nats_pending_messages: match section.count("nats-pending-messages")? {
            Some(count) if count > NATS_PENDING_MESSAGES_MAX => {
                return Err(section.invalid(
                    "nats-pending-messages",
                    format!("{count} is more than {NATS_PENDING_MESSAGES_MAX}"),
                ));
            }
            count => count.unwrap_or(defaults.nats_pending_messages),
        },
        nats_pending_bytes: section
            .size_usize("nats-pending-bytes")?
            .unwrap_or(defaults.nats_pending_bytes),
        store: parse_store_limits(section, defaults.store)?,
    })
}
