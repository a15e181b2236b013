//! `metric-store.cleanup`: what happens to data older than the retention window.
//!
//! cc-metric-store's keys `mode` and `directory`, and Strata's own: `interval` (how long a
//! period of archived data is) and `s3` (the object store when `directory` is
//! `s3://bucket/prefix`; keys left out fall back to the usual `AWS_*` environment variables).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;
use super::section::{Section, quote};

pub(super) const CLEANUP_KEYS: &[&str] = &["mode", "directory", "interval", "s3"];

const S3_KEYS: &[&str] = &[
    "endpoint",
    "region",
    "access-key-id",
    "secret-access-key",
    "allow-http",
    "part-size",
];

/// The prefix of a `directory` on an S3-compatible object store.
const S3_SCHEME: &str = "s3://";

/// Smallest `s3.part-size`. S3 itself wants at least 5 MiB for every part but the last;
/// smaller parts are for S3-compatible servers (and tests) that allow them.
pub const S3_PART_SIZE_MIN: u64 = 64 << 10;

/// `s3.part-size` when not given.
pub const S3_PART_SIZE_DEFAULT: u64 = 8 << 20;

/// Largest `s3.part-size`. An upload holds up to three parts in memory (two sending, one
/// being read), so this bounds its memory to 192 MiB; S3 would take parts up to 5 GiB, and
/// 10,000 parts of 64 MiB are far more than any archive file.
pub const S3_PART_SIZE_MAX: u64 = 64 << 20;

/// `metric-store.cleanup`: what happens to data older than the retention window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupSection {
    pub mode: CleanupMode,
    /// Archive destination; always `Some` when `mode` is [`CleanupMode::Archive`].
    pub directory: Option<ArchiveLocation>,
    /// Length of an archived period (Strata only): periods are `[k·interval, (k+1)·interval)`
    /// since the epoch, one file each. Default `retention-in-memory`, cc-metric-store's fixed
    /// cleanup interval. Always > 0.
    pub interval: Duration,
}

impl CleanupSection {
    /// cc-metric-store's default: delete, every `retention`.
    pub fn delete(retention: Duration) -> Self {
        Self {
            mode: CleanupMode::Delete,
            directory: None,
            interval: retention,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupMode {
    /// Old checkpoint files are deleted.
    #[default]
    Delete,
    /// Old checkpoint files are moved to `cleanup.directory`.
    Archive,
}

impl fmt::Display for CleanupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Delete => "delete",
            Self::Archive => "archive",
        })
    }
}

/// Where the archive lives: `cleanup.directory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveLocation {
    /// A local directory, kept as written (relative to the working directory).
    Local(PathBuf),
    /// `s3://bucket/prefix` with `cleanup.s3`.
    S3(S3Location),
}

/// An archive on an S3-compatible object store. Settings left `None` fall back to the AWS
/// environment variables (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// A valid S3 bucket name.
    pub bucket: String,
    /// Object key prefix without leading or trailing `/`; `""` = the bucket's root.
    pub prefix: String,
    /// `http://` or `https://` URL of an S3-compatible server.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// Allow a plain-HTTP endpoint.
    pub allow_http: Option<bool>,
    /// Bytes per part of a multipart upload, within [`S3_PART_SIZE_MIN`] and
    /// [`S3_PART_SIZE_MAX`].
    pub part_size: u64,
}

impl S3Location {
    /// `s3://bucket/prefix` with every setting left to the environment and the default part
    /// size.
    pub fn new(bucket: &str, prefix: &str) -> Self {
        Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: None,
            part_size: S3_PART_SIZE_DEFAULT,
        }
    }
}

/// A credential: shown as `"<redacted>"` by `Debug`, so that it never reaches a log line
/// or an error message; [`Secret::expose`] gives the value to whoever must use it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

pub(super) fn parse_cleanup(
    section: &Section<'_>,
    retention: Duration,
) -> Result<CleanupSection, ConfigError> {
    let mode = section
        .choice(
            "mode",
            &[
                ("delete", CleanupMode::Delete),
                ("archive", CleanupMode::Archive),
            ],
        )?
        .unwrap_or_default();
    let s3 = section.section("s3", S3_KEYS)?;
    let directory = match section.non_empty_string("directory")? {
        Some(text) => Some(parse_location(section, text, s3.as_ref())?),
        None => None,
    };
    if mode == CleanupMode::Archive && directory.is_none() {
        // cc-metric-store's schema: `if mode == "archive" then required: ["directory"]`.
        return Err(section.missing("directory"));
    }
    if s3.is_some() && !matches!(directory, Some(ArchiveLocation::S3(_))) {
        return Err(section.invalid(
            "s3",
            "configures an object store, but directory is not an s3://bucket/prefix \
             location; remove s3 or set directory to s3://…",
        ));
    }
    let interval = section.duration("interval")?.unwrap_or(retention);
    Ok(CleanupSection {
        mode,
        directory,
        interval,
    })
}

/// `directory`: `s3://bucket/prefix` (with the `s3` section's settings) or a local path.
fn parse_location(
    section: &Section<'_>,
    text: &str,
    s3: Option<&Section<'_>>,
) -> Result<ArchiveLocation, ConfigError> {
    let Some(rest) = text.strip_prefix(S3_SCHEME) else {
        if let Some((scheme, _)) = text.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        {
            return Err(section.invalid(
                "directory",
                format!(
                    "{} is a URL; the archive is a local directory or s3://bucket/prefix",
                    quote(text)
                ),
            ));
        }
        return Ok(ArchiveLocation::Local(PathBuf::from(text)));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    check_bucket(bucket).map_err(|reason| {
        section.invalid(
            "directory",
            format!("bucket {} in {}: {reason}", quote(bucket), quote(text)),
        )
    })?;
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty()
        && prefix.split('/').any(|part| {
            part.is_empty() || part == "." || part == ".." || part.contains(char::is_control)
        })
    {
        return Err(section.invalid(
            "directory",
            format!(
                "prefix {} in {}: parts between / must not be empty, \".\" or \"..\", nor hold \
                 control characters",
                quote(prefix),
                quote(text)
            ),
        ));
    }
    let mut location = S3Location::new(bucket, prefix);
    if let Some(s3) = s3 {
        parse_s3(s3, &mut location)?;
    }
    Ok(ArchiveLocation::S3(location))
}

/// `cleanup.s3`.
fn parse_s3(s3: &Section<'_>, location: &mut S3Location) -> Result<(), ConfigError> {
    location.endpoint = s3.non_empty_string("endpoint")?.map(str::to_owned);
    if let Some(endpoint) = &location.endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        return Err(s3.invalid(
            "endpoint",
            format!(
                "must be an http:// or https:// URL, found {}",
                quote(endpoint)
            ),
        ));
    }
    if let Some(endpoint) = &location.endpoint
        && endpoint.split_once("://").is_some_and(|(_, rest)| {
            rest.split(['/', '?', '#'])
                .next()
                .is_some_and(|a| a.contains('@'))
        })
    {
        // Not echoed: what is before the `@` is a password.
        return Err(s3.invalid(
            "endpoint",
            "must not hold credentials; use access-key-id and secret-access-key",
        ));
    }
    location.region = s3.non_empty_string("region")?.map(str::to_owned);
    location.access_key_id = s3.non_empty_string("access-key-id")?.map(str::to_owned);
    // Never echoed: a secret of the wrong type is still a secret.
    location.secret_access_key = match s3.get("secret-access-key") {
        None => None,
        Some(serde_json::Value::String(text)) if text.is_empty() => None,
        Some(serde_json::Value::String(text)) => Some(Secret(text.clone())),
        Some(_) => return Err(s3.invalid("secret-access-key", "expected a string")),
    };
    location.allow_http = s3.boolean("allow-http")?;
    if let Some(bytes) = s3.size("part-size")? {
        if !(S3_PART_SIZE_MIN..=S3_PART_SIZE_MAX).contains(&bytes) {
            return Err(s3.invalid(
                "part-size",
                format!(
                    "must be from 64KiB to 64MiB (S3 itself needs at least 5MiB), found {bytes} \
                     bytes"
                ),
            ));
        }
        location.part_size = bytes;
    }
    Ok(())
}

/// S3's bucket naming rules (general purpose buckets): 3–63 characters of lowercase
/// letters, digits, `.` and `-`, beginning and ending with a letter or digit, no `..`, not
/// an IPv4 address.
fn check_bucket(bucket: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&bucket.len()) {
        return Err("must be 3 to 63 characters long");
    }
    if !bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return Err("may hold only lowercase letters, digits, '.' and '-'");
    }
    let alphanumeric = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alphanumeric(bucket.chars().next()) || !alphanumeric(bucket.chars().last()) {
        return Err("must begin and end with a letter or digit");
    }
    if bucket.contains("..") {
        return Err("must not hold \"..\"");
    }
    if bucket.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("must not be an IP address");
    }
    Ok(())
}
