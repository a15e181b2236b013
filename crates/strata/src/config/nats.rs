//! The `nats` section (the connection) and `metric-store.nats-subscriptions`.

use strata_store::check_name;

use super::ConfigError;
use super::section::Section;

pub(super) const NATS_KEYS: &[&str] = &["address", "username", "password", "creds-file-path"];

const SUBSCRIPTION_KEYS: &[&str] = &["subscribe-to", "cluster-tag", "queue-group"];

/// The `nats` section: how to reach the NATS server (subscriptions are in `metric-store`).
/// Empty strings mean "not set", as in cc-metric-store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NatsSection {
    pub address: String,
    pub username: String,
    pub password: String,
    pub creds_file_path: String,
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

pub(super) fn parse_nats(section: &Section<'_>) -> Result<NatsSection, ConfigError> {
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

/// The subscriptions; a `cluster-tag` is held to the cluster name rule of ingest
/// ([`check_name`]), since it becomes the cluster of the lines received.
pub(super) fn parse_subscriptions(
    section: &Section<'_>,
    name_bytes_max: usize,
) -> Result<Vec<NatsSubscription>, ConfigError> {
    let entries = section.objects("nats-subscriptions", SUBSCRIPTION_KEYS)?;
    let mut subscriptions = Vec::with_capacity(entries.len());
    for entry in &entries {
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
