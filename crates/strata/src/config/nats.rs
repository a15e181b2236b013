//! The `nats` section (the connections) and `metric-store.nats-subscriptions`.
//!
//! cc-metric-store's v1.5 `nats` is one object (one connection). Strata also accepts an array
//! of connection objects, each with a unique `name` (what cc-metric-store's legacy flat format
//! needs); a subscription then says which one it uses with `connection`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use strata_store::check_name;

use super::ConfigError;
use super::cleanup::Secret;
use super::section::{Section, quote};

const NATS_KEYS: &[&str] = &[
    "name",
    "address",
    "username",
    "password",
    "creds-file-path",
    "nkey-seed-file",
    "tls",
];

const TLS_KEYS: &[&str] = &["ca-file", "cert-file", "key-file"];

const SUBSCRIPTION_KEYS: &[&str] = &[
    "subscribe-to",
    "cluster-tag",
    "queue-group",
    "jetstream",
    "connection",
];

const JETSTREAM_KEYS: &[&str] = &["stream", "consumer", "ack-wait"];

/// Default `jetstream.ack-wait`: how long the server waits for an acknowledgement before
/// it delivers a message again.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// Address schemes Strata's client speaks (`ws://` needs a feature left out).
const SCHEMES: &[&str] = &["nats", "tls"];

/// One NATS connection: how to reach the servers, and what to subscribe to there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConnection {
    /// Required and unique when `nats` is an array; optional for the single object.
    pub name: Option<String>,
    /// Server URLs (`nats://`, `tls://` or bare `host:port`); at least one.
    pub addresses: Vec<String>,
    pub auth: NatsAuth,
    pub tls: Option<NatsTls>,
    /// The entries of `metric-store.nats-subscriptions` that use this connection.
    pub subscriptions: Vec<NatsSubscription>,
}

/// How the client logs in: at most one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsAuth {
    None,
    /// `username` and `password`, both non-empty.
    UserPassword {
        username: String,
        password: Secret,
    },
    /// `creds-file-path`: a JWT and nkey seed file.
    CredsFile(PathBuf),
    /// `nkey-seed-file`: a file holding an nkey seed.
    NkeySeedFile(PathBuf),
}

/// `nats.tls`: TLS to the servers (also implied by a `tls://` address).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NatsTls {
    /// PEM roots to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM), together.
    pub client_cert: Option<(PathBuf, PathBuf)>,
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
    /// Read from a JetStream stream through a durable pull consumer instead.
    pub jetstream: Option<JetStreamSubscription>,
    /// `connection`: the name of the connection it uses; checked against `nats`.
    pub connection: Option<String>,
}

/// `jetstream` of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamSubscription {
    /// The stream; it must exist (Strata never creates streams).
    pub stream: String,
    /// The durable consumer; created if missing.
    pub consumer: String,
    /// `ack-wait` of a consumer Strata creates.
    pub ack_wait: Duration,
}

/// The `nats` value: one connection object (cc-metric-store) or an array of named ones.
pub(super) fn parse_nats(
    file: &std::path::Path,
    value: &Value,
) -> Result<Vec<NatsConnection>, ConfigError> {
    match value {
        Value::Array(entries) => {
            let mut connections: Vec<NatsConnection> = Vec::with_capacity(entries.len());
            for (index, entry) in entries.iter().enumerate() {
                let section = Section::new(file, format!("nats[{index}]"), entry, NATS_KEYS)?;
                let connection = parse_connection(&section)?;
                let Some(name) = &connection.name else {
                    return Err(section.missing("name"));
                };
                if connections.iter().any(|c| c.name.as_ref() == Some(name)) {
                    return Err(section.invalid("name", format!("{} is used twice", quote(name))));
                }
                connections.push(connection);
            }
            Ok(connections)
        }
        value => Ok(vec![parse_connection(&Section::new(
            file,
            "nats".to_owned(),
            value,
            NATS_KEYS,
        )?)?]),
    }
}

fn parse_connection(section: &Section<'_>) -> Result<NatsConnection, ConfigError> {
    let name = section.non_empty_string("name")?.map(str::to_owned);
    let addresses = parse_addresses(section)?;
    let username = section.non_empty_string("username")?;
    let password = section.non_empty_string("password")?;
    // Each way with the key(s) that set it, for an error naming those present.
    let mut ways = Vec::new();
    match (username, password) {
        (Some(username), Some(password)) => ways.push((
            "username/password",
            NatsAuth::UserPassword {
                username: username.to_owned(),
                password: Secret(password.to_owned()),
            },
        )),
        (None, None) => {}
        (Some(_), None) => return Err(section.invalid("password", "is required with username")),
        (None, Some(_)) => return Err(section.invalid("username", "is required with password")),
    }
    if let Some(path) = section.path("creds-file-path")? {
        ways.push(("creds-file-path", NatsAuth::CredsFile(path)));
    }
    if let Some(path) = section.path("nkey-seed-file")? {
        ways.push(("nkey-seed-file", NatsAuth::NkeySeedFile(path)));
    }
    if let [(first, _), .., (last, _)] = ways.as_slice() {
        // `last` is a file key: username/password, when present, comes first.
        return Err(section.invalid(
            last,
            format!("{first} and {last} exclude each other: set one way to log in"),
        ));
    }
    let tls = match section.section("tls", TLS_KEYS)? {
        Some(tls) => Some(parse_tls(&tls)?),
        None => None,
    };
    Ok(NatsConnection {
        name,
        addresses,
        auth: ways.pop().map_or(NatsAuth::None, |(_, auth)| auth),
        tls,
        subscriptions: Vec::new(),
    })
}

/// `address`: a string, possibly a comma-separated list (as cc-metric-store passes it to
/// nats.go), or an array of strings.
fn parse_addresses(section: &Section<'_>) -> Result<Vec<String>, ConfigError> {
    let listed = match section.get("address") {
        Some(Value::Array(_)) => section.strings("address")?.unwrap_or_default(),
        _ => section
            .string("address")?
            .map(|text| text.split(',').collect())
            .unwrap_or_default(),
    };
    let addresses: Vec<String> = listed
        .iter()
        .map(|text| text.trim())
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
        .collect();
    if addresses.is_empty() {
        return Err(section.missing("address"));
    }
    for address in &addresses {
        let rest = match address.split_once("://") {
            Some((scheme, rest)) if SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) => rest,
            Some(_) => {
                return Err(section.invalid(
                    "address",
                    format!(
                        "{} is not supported: use nats://, tls:// or host:port",
                        quote(address)
                    ),
                ));
            }
            None => address.as_str(),
        };
        if rest.contains('@') {
            return Err(section.invalid(
                "address",
                "must not hold credentials; use username and password",
            ));
        }
        if rest.is_empty() || rest.starts_with('/') {
            return Err(section.invalid("address", format!("{} has no host", quote(address))));
        }
        let authority = rest.split('/').next().unwrap_or(rest);
        let port = match authority.strip_prefix('[') {
            Some(bracketed) => bracketed.split_once("]:").map(|(_, port)| port),
            None => authority.rsplit_once(':').map(|(_, port)| port),
        };
        if let Some(port) = port
            && !matches!(port.parse::<u16>(), Ok(1..))
        {
            return Err(section.invalid(
                "address",
                format!("{} has no valid port (1 to 65535)", quote(address)),
            ));
        }
    }
    Ok(addresses)
}

fn parse_tls(section: &Section<'_>) -> Result<NatsTls, ConfigError> {
    let client_cert = match (section.path("cert-file")?, section.path("key-file")?) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => return Err(section.invalid("key-file", "is required with cert-file")),
        (None, Some(_)) => return Err(section.invalid("cert-file", "is required with key-file")),
    };
    Ok(NatsTls {
        ca_file: section.path("ca-file")?,
        client_cert,
    })
}

/// The subscriptions; a `cluster-tag` is held to the cluster name rule of ingest
/// ([`check_name`]), since it becomes the cluster of the lines received. `connections` are
/// the parsed `nats` section: a `connection` must name one of them, and is required when
/// there are several.
pub(super) fn parse_subscriptions(
    section: &Section<'_>,
    name_bytes_max: usize,
    connections: &[NatsConnection],
) -> Result<Vec<NatsSubscription>, ConfigError> {
    let entries = section.objects("nats-subscriptions", SUBSCRIPTION_KEYS)?;
    let mut subscriptions = Vec::with_capacity(entries.len());
    for entry in &entries {
        let subscribe_to =
            entry.required("subscribe-to", entry.non_empty_string("subscribe-to")?)?;
        // The client refuses these at subscribe time, which would only be a log line.
        let tokens: Vec<&str> = subscribe_to.split('.').collect();
        if subscribe_to.contains(char::is_whitespace)
            || tokens.iter().any(|t| t.is_empty())
            || tokens[..tokens.len() - 1].contains(&">")
        {
            return Err(entry.invalid(
                "subscribe-to",
                format!(
                    "{} is not a NATS subject (dot-separated tokens, no blanks, '>' only as \
                     the last token)",
                    quote(subscribe_to)
                ),
            ));
        }
        let cluster_tag = entry.non_empty_string("cluster-tag")?;
        if let Some(tag) = cluster_tag {
            check_name("cluster", tag, name_bytes_max)
                .map_err(|error| entry.invalid("cluster-tag", error.to_string()))?;
        }
        let connection = entry.non_empty_string("connection")?;
        match connection {
            Some(name) if !connections.iter().any(|c| c.name.as_deref() == Some(name)) => {
                return Err(entry.invalid(
                    "connection",
                    format!("{} names no connection of the nats section", quote(name)),
                ));
            }
            None if connections.len() > 1 => {
                return Err(entry.missing("connection"));
            }
            _ => {}
        }
        let jetstream = match entry.section("jetstream", JETSTREAM_KEYS)? {
            Some(js) => Some(JetStreamSubscription {
                stream: jetstream_name(&js, "stream")?,
                consumer: jetstream_name(&js, "consumer")?,
                ack_wait: js.duration("ack-wait")?.unwrap_or(DEFAULT_ACK_WAIT),
            }),
            None => None,
        };
        let queue_group = entry.non_empty_string("queue-group")?.map(str::to_owned);
        if queue_group
            .as_deref()
            .is_some_and(|g| g.contains(char::is_whitespace))
        {
            return Err(entry.invalid("queue-group", "must not contain blanks"));
        }
        if jetstream.is_some() && queue_group.is_some() {
            return Err(entry.invalid(
                "queue-group",
                "does not apply to jetstream: instances sharing the durable consumer share its messages",
            ));
        }
        let subscription = NatsSubscription {
            subscribe_to: subscribe_to.to_owned(),
            cluster_tag: cluster_tag.map(str::to_owned),
            queue_group,
            jetstream,
            connection: connection.map(str::to_owned),
        };
        check_not_shared(entry, &subscription, &subscriptions, connections)?;
        subscriptions.push(subscription);
    }
    Ok(subscriptions)
}

/// Refuses a subscription that would take messages meant for an earlier one on the same
/// servers: the same durable consumer (each message would reach only one of them), or the
/// same subject and queue group with another cluster tag (lines without a `cluster` tag
/// would get either tag, at random).
fn check_not_shared(
    entry: &Section<'_>,
    subscription: &NatsSubscription,
    earlier: &[NatsSubscription],
    connections: &[NatsConnection],
) -> Result<(), ConfigError> {
    let servers = |s: &NatsSubscription| {
        let connection = match &s.connection {
            Some(name) => connections.iter().find(|c| c.name.as_ref() == Some(name)),
            None => connections.first(),
        };
        let mut addresses = connection.map(|c| c.addresses.clone()).unwrap_or_default();
        addresses.sort();
        addresses
    };
    let here = servers(subscription);
    for (index, other) in earlier.iter().enumerate() {
        if servers(other) != here {
            continue;
        }
        let other_name = format!("metric-store.nats-subscriptions[{index}]");
        if let (Some(js), Some(other_js)) = (&subscription.jetstream, &other.jetstream)
            && js.stream == other_js.stream
            && js.consumer == other_js.consumer
        {
            return Err(entry.invalid(
                "jetstream",
                format!(
                    "stream {} consumer {} is also used by {other_name} on the same servers: \
                     give each subscription a consumer of its own",
                    quote(&js.stream),
                    quote(&js.consumer)
                ),
            ));
        }
        if let Some(group) = &subscription.queue_group
            && other.queue_group.as_ref() == Some(group)
            && other.subscribe_to == subscription.subscribe_to
            && other.cluster_tag != subscription.cluster_tag
        {
            return Err(entry.invalid(
                "cluster-tag",
                format!(
                    "differs from that of {other_name}, which subscribes to {} in queue group {} \
                     on the same servers: each message would reach only one of them",
                    quote(&subscription.subscribe_to),
                    quote(group)
                ),
            ));
        }
    }
    Ok(())
}

/// Gives each subscription to its connection; returns those left over when there is no
/// connection at all (cc-metric-store ignores them too; `serve` warns).
pub(super) fn attach_subscriptions(
    connections: &mut [NatsConnection],
    subscriptions: Vec<NatsSubscription>,
) -> Vec<NatsSubscription> {
    let mut unattached = Vec::new();
    for subscription in subscriptions {
        let target = match (&subscription.connection, connections.len()) {
            (_, 0) => None,
            (None, _) => connections.first_mut(),
            (Some(name), _) => connections
                .iter_mut()
                .find(|c| c.name.as_deref() == Some(name.as_str())),
        };
        match target {
            Some(connection) => connection.subscriptions.push(subscription),
            None => unattached.push(subscription),
        }
    }
    unattached
}

/// A stream or durable consumer name as nats-server accepts it: the server refuses names
/// with blanks, `.`, `*`, `>` or path separators only when the consumer is created, and
/// some of those refusals never reach the client (the subscription would ingest nothing).
fn jetstream_name(section: &Section<'_>, key: &str) -> Result<String, ConfigError> {
    let name = section.required(key, section.non_empty_string(key)?)?;
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || ".*>/\\".contains(*c))
    {
        return Err(section.invalid(
            key,
            format!(
                "{} holds {bad:?}; NATS names cannot hold blanks, '.', '*', '>', '/' or '\\'",
                quote(name)
            ),
        ));
    }
    Ok(name.to_owned())
}
