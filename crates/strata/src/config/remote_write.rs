//! `metric-store.remote-write` (Strata only): the Prometheus remote-write receivers the
//! write-ahead log is forwarded to, parsed into [`strata_forward::EndpointConfig`]. Keys
//! follow Prometheus's `remote_write` (`queue` is its `queue_config`, `relabel` its
//! `write_relabel_configs`) with dashes, as the rest of the file; defaults are the
//! forwarder's ([`EndpointConfig::new`]).
//!
//! Everything that can be checked without the network is checked here: the URL's form,
//! names that become a file name and a label value, headers the forwarder must own,
//! credentials given twice, label names, regexes, and the queue's bounds. Files (passwords,
//! tokens, certificates) are read by the forwarder at startup, not here.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use strata_forward::config::{BasicAuth, TlsConfig};
use strata_forward::{EndpointConfig, Protocol, QueueConfig, RelabelAction, RelabelRule};

use super::ConfigError;
use super::section::{Section, quote};

pub(super) const REMOTE_WRITE_KEY: &str = "remote-write";

const ENDPOINT_KEYS: &[&str] = &[
    "name",
    "url",
    "protocol",
    "timeout",
    "headers",
    "basic-auth",
    "bearer-token-file",
    "tls",
    "external-labels",
    "relabel",
    "queue",
    "max-backlog-bytes",
    "max-backlog-age",
];
const BASIC_AUTH_KEYS: &[&str] = &["username", "password-file"];
const TLS_KEYS: &[&str] = &["ca-file", "cert-file", "key-file", "insecure-skip-verify"];
const RELABEL_KEYS: &[&str] = &[
    "action",
    "source-labels",
    "regex",
    "separator",
    "target-label",
    "replacement",
];
const QUEUE_KEYS: &[&str] = &[
    "min-shards",
    "max-shards",
    "max-samples-per-send",
    "batch-send-deadline",
    "min-backoff",
    "max-backoff",
    "retry-on-http-429",
];

/// Most endpoints: each one holds log segments back from deletion until it has sent them
/// and runs senders of its own, so the list is short in any real deployment.
pub const REMOTE_WRITE_ENDPOINTS_MAX: usize = 32;

/// Largest `queue.max-samples-per-send`: one request of 100,000 samples is several MB of
/// protobuf before compression, past what receivers commonly accept in one body, and every
/// shard holds one such batch in memory.
pub const SAMPLES_PER_SEND_MAX: usize = 100_000;

/// Longest endpoint name: it names the endpoint's cursor file and is a label value.
const ENDPOINT_NAME_BYTES_MAX: usize = 64;

/// Headers the forwarder sets itself, or that would break the protocol or the connection;
/// compared case-insensitively. `authorization` has `basic-auth` and `bearer-token-file`.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "authorization",
];

/// Prometheus's defaults for a relabel rule.
const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

/// The endpoints of `metric-store.remote-write`, in file order; empty when absent.
pub(super) fn parse_remote_write(
    section: &Section<'_>,
) -> Result<Vec<EndpointConfig>, ConfigError> {
    let entries = section.objects(REMOTE_WRITE_KEY, ENDPOINT_KEYS)?;
    if entries.len() > REMOTE_WRITE_ENDPOINTS_MAX {
        return Err(section.invalid(
            REMOTE_WRITE_KEY,
            format!(
                "at most {REMOTE_WRITE_ENDPOINTS_MAX} endpoints, found {}",
                entries.len()
            ),
        ));
    }
    let mut endpoints: Vec<EndpointConfig> = Vec::with_capacity(entries.len());
    for entry in &entries {
        let endpoint = parse_endpoint(entry)?;
        if endpoints.iter().any(|other| other.name == endpoint.name) {
            return Err(entry.invalid(
                "name",
                format!(
                    "{} is already the name of an earlier endpoint; names must be unique \
                     (an endpoint without a name is named after its URL)",
                    quote(&endpoint.name)
                ),
            ));
        }
        endpoints.push(endpoint);
    }
    Ok(endpoints)
}

fn parse_endpoint(section: &Section<'_>) -> Result<EndpointConfig, ConfigError> {
    let url = section.required("url", section.non_empty_string("url")?)?;
    validate_url(url).map_err(|reason| section.invalid("url", reason))?;
    let mut endpoint = EndpointConfig::new(url);
    if let Some(name) = section.non_empty_string("name")? {
        validate_endpoint_name(name).map_err(|reason| section.invalid("name", reason))?;
        endpoint.name = name.to_owned();
    }
    let protocols = [("1.0", Protocol::V1), ("2.0", Protocol::V2)];
    if let Some(protocol) = section.choice("protocol", &protocols)? {
        endpoint.protocol = protocol;
    }
    if let Some(timeout) = section.duration("timeout")? {
        endpoint.timeout = timeout;
    }
    endpoint.headers = parse_headers(section)?;
    if let Some(auth) = section.section("basic-auth", BASIC_AUTH_KEYS)? {
        let username = auth.required("username", auth.non_empty_string("username")?)?;
        endpoint.basic_auth = Some(BasicAuth {
            username: username.to_owned(),
            password_file: auth.required("password-file", auth.path("password-file")?)?,
        });
    }
    endpoint.bearer_token_file = section.path("bearer-token-file")?;
    if endpoint.basic_auth.is_some() && endpoint.bearer_token_file.is_some() {
        return Err(section.invalid(
            "bearer-token-file",
            "cannot be combined with basic-auth: both set the authorization header; use one",
        ));
    }
    if let Some(tls) = section.section("tls", TLS_KEYS)? {
        endpoint.tls = parse_tls(&tls)?;
    }
    endpoint.external_labels = parse_external_labels(section)?;
    endpoint.relabel = section
        .objects("relabel", RELABEL_KEYS)?
        .iter()
        .map(parse_relabel)
        .collect::<Result<_, _>>()?;
    if let Some(queue) = section.section("queue", QUEUE_KEYS)? {
        endpoint.queue = parse_queue(&queue)?;
    }
    if let Some(bytes) = section.size_positive("max-backlog-bytes")? {
        endpoint.max_backlog_bytes = bytes;
    }
    if let Some(age) = section.duration("max-backlog-age")? {
        endpoint.max_backlog_age = age;
    }
    Ok(endpoint)
}

/// Checks a receiver URL: `http://` or `https://`, a host (name, IPv4 or bracketed IPv6),
/// an optional port 1–65535, then anything as path and query. Printable ASCII only (write a
/// non-ASCII host in its `xn--` form and percent-encode the path), and no credentials in
/// the URL: they would show in every log line that names the endpoint.
fn validate_url(url: &str) -> Result<(), String> {
    if let Some(bad) = url.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "{} contains {bad:?}; a URL is printable ASCII without spaces (percent-encode the rest)",
            quote(url)
        ));
    }
    let lower = url.to_ascii_lowercase();
    let Some(scheme_end) = ["http://", "https://"]
        .iter()
        .find(|scheme| lower.starts_with(*scheme))
        .map(|scheme| scheme.len())
    else {
        return Err(format!(
            "{} must start with http:// or https://",
            quote(url)
        ));
    };
    let rest = url.get(scheme_end..).unwrap_or_default();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "{} has credentials in it; use basic-auth (with password-file) instead",
            quote(url)
        ));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let Some((address, after)) = bracketed.split_once(']') else {
                return Err(format!("{}: an IPv6 address lacks its ']'", quote(url)));
            };
            if address.parse::<Ipv6Addr>().is_err() {
                return Err(format!("{}: invalid IPv6 address", quote(url)));
            }
            match after {
                "" => (address, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (address, Some(port)),
                    None => return Err(format!("{}: expected ':' after ']'", quote(url))),
                },
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(format!("{} has no host", quote(url)));
    }
    let host_bytes_valid = authority.starts_with('[')
        || host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_'));
    if !host_bytes_valid {
        return Err(format!("{}: invalid host {}", quote(url), quote(host)));
    }
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(1..))
    {
        return Err(format!(
            "{}: the port must be a number from 1 to 65535, found {}",
            quote(url),
            quote(port)
        ));
    }
    Ok(())
}

/// An endpoint name: 1 to 64 of `A-Z a-z 0-9 _ . -`, not `.` or `..` (it names a file).
fn validate_endpoint_name(name: &str) -> Result<(), String> {
    let valid = name.len() <= ENDPOINT_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
        && !name.bytes().all(|byte| byte == b'.');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{} is not a valid endpoint name: 1 to {ENDPOINT_NAME_BYTES_MAX} letters, digits, \
             '_', '.' or '-', not only dots (it names a file and is a label value)",
            quote(name)
        ))
    }
}

/// `headers`: names are HTTP tokens, none reserved ([`RESERVED_HEADERS`]) or given twice
/// in another case; values are visible ASCII, spaces and tabs (no line breaks).
fn parse_headers(section: &Section<'_>) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut headers = BTreeMap::new();
    for (name, value) in section.string_map("headers")?.unwrap_or_default() {
        let reason = if name.is_empty() || !name.bytes().all(is_token_byte) {
            Some(format!("{} is not a valid header name", quote(name)))
        } else if RESERVED_HEADERS
            .iter()
            .any(|reserved| reserved.eq_ignore_ascii_case(name))
        {
            Some(format!(
                "{} is set by the forwarder and cannot be overridden{}",
                quote(name),
                if name.eq_ignore_ascii_case("authorization") {
                    " (use basic-auth or bearer-token-file)"
                } else {
                    ""
                }
            ))
        } else if headers
            .keys()
            .any(|other: &String| other.eq_ignore_ascii_case(name))
        {
            Some(format!(
                "{} is given twice (header names are case-insensitive)",
                quote(name)
            ))
        } else if !value
            .bytes()
            .all(|byte| byte == b' ' || byte == b'\t' || byte.is_ascii_graphic())
        {
            Some(format!(
                "the value of {} must be printable ASCII on one line",
                quote(name)
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(section.invalid("headers", reason));
        }
        headers.insert(name.to_owned(), value.to_owned());
    }
    Ok(headers)
}

/// A byte of an HTTP token (RFC 9110 `tchar`).
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn parse_tls(section: &Section<'_>) -> Result<TlsConfig, ConfigError> {
    let tls = TlsConfig {
        ca_file: section.path("ca-file")?,
        cert_file: section.path("cert-file")?,
        key_file: section.path("key-file")?,
        insecure_skip_verify: section.boolean("insecure-skip-verify")?.unwrap_or(false),
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(_), None) => Err(section.invalid(
            "cert-file",
            "a client certificate needs its key: give key-file too",
        )),
        (None, Some(_)) => Err(section.invalid(
            "key-file",
            "a client key needs its certificate: give cert-file too",
        )),
        _ => Ok(tls),
    }
}

/// `external-labels`: valid label names not starting with `__` (reserved for Prometheus's
/// internal labels, such as `__name__`), each with a non-empty value (an empty value means
/// "no label" in Prometheus).
fn parse_external_labels(section: &Section<'_>) -> Result<BTreeMap<String, String>, ConfigError> {
    let key = "external-labels";
    let mut labels = BTreeMap::new();
    for (name, value) in section.string_map(key)?.unwrap_or_default() {
        check_label_name(name).map_err(|reason| section.invalid(key, reason))?;
        if name.starts_with("__") {
            return Err(section.invalid(
                key,
                format!(
                    "{} starts with \"__\", which is reserved for internal labels",
                    quote(name)
                ),
            ));
        }
        if value.is_empty() {
            return Err(section.invalid(
                key,
                format!("the value of {} must not be empty", quote(name)),
            ));
        }
        labels.insert(name.to_owned(), value.to_owned());
    }
    Ok(labels)
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn check_label_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let valid = bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)",
            quote(name)
        ))
    }
}

/// One relabel rule. `action` defaults to `replace`, as in Prometheus; the regex must
/// compile anchored (`^(?:regex)$`, how the forwarder applies it).
fn parse_relabel(section: &Section<'_>) -> Result<RelabelRule, ConfigError> {
    let actions = [
        ("keep", RelabelAction::Keep),
        ("drop", RelabelAction::Drop),
        ("replace", RelabelAction::Replace),
        ("labeldrop", RelabelAction::LabelDrop),
        ("labelkeep", RelabelAction::LabelKeep),
    ];
    let action = section
        .choice("action", &actions)?
        .unwrap_or(RelabelAction::Replace);
    let source_labels = section.strings("source-labels")?.unwrap_or_default();
    for name in &source_labels {
        check_label_name(name).map_err(|reason| section.invalid("source-labels", reason))?;
    }
    let regex = section.string("regex")?.unwrap_or(DEFAULT_REGEX);
    // NOTE: alone first: `a)|(b` compiles only once wrapped, into another regex than meant.
    let compiled =
        regex::Regex::new(regex).and_then(|_| regex::Regex::new(&format!("^(?:{regex})$")));
    if let Err(error) = compiled {
        return Err(section.invalid(
            "regex",
            format!("{} does not compile: {}", quote(regex), one_line(&error)),
        ));
    }
    let target_label = section.non_empty_string("target-label")?;
    if let Some(name) = target_label {
        check_label_name(name).map_err(|reason| section.invalid("target-label", reason))?;
    }
    let replacement = section.string("replacement")?;
    match action {
        RelabelAction::Replace if target_label.is_none() => {
            return Err(section.missing("target-label"));
        }
        RelabelAction::LabelDrop | RelabelAction::LabelKeep => {
            // They match the regex against label names; the other keys would be ignored.
            for key in ["source-labels", "target-label", "replacement"] {
                if section.get(key).is_some() {
                    return Err(section.invalid(
                        key,
                        "does not apply to labeldrop and labelkeep, which match the regex \
                         against label names",
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(RelabelRule {
        action,
        source_labels: source_labels.into_iter().map(str::to_owned).collect(),
        separator: section
            .string("separator")?
            .unwrap_or(DEFAULT_SEPARATOR)
            .to_owned(),
        regex: regex.to_owned(),
        target_label: target_label.map(str::to_owned),
        replacement: replacement.unwrap_or(DEFAULT_REPLACEMENT).to_owned(),
    })
}

/// The reason of a regex error: its syntax errors span lines (the pattern, a caret under
/// the fault, then `error: …`); a configuration error is one line.
fn one_line(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text.lines().last().unwrap_or_default();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

fn parse_queue(section: &Section<'_>) -> Result<QueueConfig, ConfigError> {
    let defaults = QueueConfig::default();
    let queue = QueueConfig {
        min_shards: section.count("min-shards")?.unwrap_or(defaults.min_shards),
        max_shards: section.count("max-shards")?.unwrap_or(defaults.max_shards),
        max_samples_per_send: section
            .count("max-samples-per-send")?
            .unwrap_or(defaults.max_samples_per_send),
        batch_send_deadline: section
            .duration("batch-send-deadline")?
            .unwrap_or(defaults.batch_send_deadline),
        min_backoff: section
            .duration("min-backoff")?
            .unwrap_or(defaults.min_backoff),
        max_backoff: section
            .duration("max-backoff")?
            .unwrap_or(defaults.max_backoff),
        retry_on_http_429: section
            .boolean("retry-on-http-429")?
            .unwrap_or(defaults.retry_on_http_429),
    };
    at_least(
        section,
        ("min-shards", queue.min_shards),
        ("max-shards", queue.max_shards),
    )?;
    if queue.max_samples_per_send > SAMPLES_PER_SEND_MAX {
        return Err(section.invalid(
            "max-samples-per-send",
            format!(
                "at most {SAMPLES_PER_SEND_MAX} (larger requests are refused by common \
                 receivers and held in memory per shard), found {}",
                queue.max_samples_per_send
            ),
        ));
    }
    at_least(
        section,
        ("min-backoff", queue.min_backoff),
        ("max-backoff", queue.max_backoff),
    )?;
    Ok(queue)
}

/// Checks that the `upper` key's value is at least the `lower` key's.
fn at_least<T: PartialOrd + std::fmt::Debug>(
    section: &Section<'_>,
    (lower_key, lower): (&str, T),
    (upper_key, upper): (&str, T),
) -> Result<(), ConfigError> {
    if upper < lower {
        return Err(section.invalid(
            upper_key,
            format!("must be at least {lower_key} ({lower:?}), found {upper:?}"),
        ));
    }
    Ok(())
}
