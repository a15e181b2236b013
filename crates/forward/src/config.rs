//! One remote-write endpoint's settings, as `metric-store.remote-write[]` gives them (the
//! configuration loader in the `strata` crate parses and validates the JSON into these).
//! Defaults are Prometheus's `remote_write` defaults unless said otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Names the endpoint in logs, metrics (`remote_name`) and its cursor file: an endpoint
    /// keeps its place in the log across restarts and configuration changes while its name
    /// stays. Default: `rw-` and 8 hex digits of a hash of the URL.
    pub name: String,
    /// `http://` or `https://` receiver URL (the only required key).
    pub url: String,
    pub protocol: Protocol,
    /// Per-attempt HTTP timeout (default 30 s).
    pub timeout: Duration,
    /// Extra request headers; the reserved remote-write headers and `authorization` are
    /// refused by the loader.
    pub headers: BTreeMap<String, String>,
    pub basic_auth: Option<BasicAuth>,
    pub bearer_token_file: Option<PathBuf>,
    pub tls: TlsConfig,
    /// Added to every series unless it already has the label.
    pub external_labels: BTreeMap<String, String>,
    pub relabel: Vec<RelabelRule>,
    pub queue: QueueConfig,
    /// Most log bytes this endpoint may hold back from deletion (default 10 GiB); past it
    /// the cursor moves forward and the skipped range is logged and counted.
    pub max_backlog_bytes: u64,
    /// Oldest log data this endpoint may hold back (default 24 h), enforced the same way.
    pub max_backlog_age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Remote-Write 1.0 (`prometheus.WriteRequest`), the default: every receiver speaks it.
    #[default]
    V1,
    /// Remote-Write 2.0 (`io.prometheus.write.v2.Request`), falling back to 1.0 when the
    /// receiver answers 415 or a 2xx without the written-count headers.
    V2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    /// Read at startup; the password never appears in a log line or error.
    pub password_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

/// Prometheus's `queue_config`, the keys that apply to a sender that reads from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub min_shards: usize,
    pub max_shards: usize,
    pub max_samples_per_send: usize,
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Retry on 429 (default true: unlike Prometheus, the log absorbs the backlog, so a
    /// throttled endpoint falls behind instead of losing data).
    pub retry_on_http_429: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            min_shards: 1,
            max_shards: 50,
            max_samples_per_send: 2000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: true,
        }
    }
}

/// A relabel rule, as Prometheus's `write_relabel_configs` (regexes are anchored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelabelRule {
    pub action: RelabelAction,
    pub source_labels: Vec<String>,
    /// Joins the source labels' values (default `;`).
    pub separator: String,
    /// Default `(.*)`; validated by the loader.
    pub regex: String,
    /// For `replace`.
    pub target_label: Option<String>,
    /// For `replace` (default `$1`).
    pub replacement: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelabelAction {
    Keep,
    Drop,
    Replace,
    LabelDrop,
    LabelKeep,
}

/// Defaults for everything but the URL.
impl EndpointConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_MAX_BACKLOG_BYTES: u64 = 10 << 30;
    pub const DEFAULT_MAX_BACKLOG_AGE: Duration = Duration::from_secs(24 * 3600);

    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        Self {
            name: default_name(&url),
            url,
            protocol: Protocol::V1,
            timeout: Self::DEFAULT_TIMEOUT,
            headers: BTreeMap::new(),
            basic_auth: None,
            bearer_token_file: None,
            tls: TlsConfig::default(),
            external_labels: BTreeMap::new(),
            relabel: Vec::new(),
            queue: QueueConfig::default(),
            max_backlog_bytes: Self::DEFAULT_MAX_BACKLOG_BYTES,
            max_backlog_age: Self::DEFAULT_MAX_BACKLOG_AGE,
        }
    }
}

/// `rw-` and 8 hex digits of FNV-1a over the URL: stable across releases (a std hasher is
/// not), so an unnamed endpoint keeps its cursor while its URL stays.
pub fn default_name(url: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in url.bytes() {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    format!("rw-{hash:08x}")
}
