//! One subscription's handles into the `strata_nats_*` families (created at start, so that
//! every series is exported from the first scrape on, at 0).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use strata_server::telemetry::{
    NatsMetrics, SubscriptionEventLabel, SubscriptionKindLabel, SubscriptionLabel,
    SubscriptionResultLabel,
};

pub(crate) struct SubscriptionMetrics {
    families: NatsMetrics,
    label: String,
    pub connected: Gauge,
    pub received_bytes: Counter,
    pub slow_consumer_drops: Counter,
    pub redelivered: Counter,
    pub stored: Counter,
    pub partial: Counter,
    pub rejected: Counter,
    pub empty: Counter,
    pub too_large: Counter,
    pub failed: Counter,
    pub abandoned: Counter,
    pub panicked: Counter,
    /// `strata_nats_jetstream_acks_total{kind}`: ack, nak, progress, term.
    pub acks: [Counter; 4],
}

impl SubscriptionMetrics {
    pub fn new(families: &NatsMetrics, label: &str) -> Self {
        let one = SubscriptionLabel {
            subscription: label.to_owned(),
        };
        let result = |result| {
            families
                .messages
                .get_or_create_owned(&SubscriptionResultLabel {
                    subscription: label.to_owned(),
                    result,
                })
        };
        Self {
            connected: families.connected.get_or_create_owned(&one),
            received_bytes: families.received_bytes.get_or_create_owned(&one),
            slow_consumer_drops: families.slow_consumer_drops.get_or_create_owned(&one),
            redelivered: families.redelivered.get_or_create_owned(&one),
            stored: result("stored"),
            partial: result("partial"),
            rejected: result("rejected"),
            empty: result("empty"),
            too_large: result("too_large"),
            failed: result("failed"),
            abandoned: result("abandoned"),
            panicked: result("panicked"),
            acks: ["ack", "nak", "progress", "term"].map(|kind_| {
                families
                    .jetstream_acks
                    .get_or_create_owned(&kind(label, kind_))
            }),
            families: families.clone(),
            label: label.to_owned(),
        }
    }

    /// `strata_nats_events_total{event}`.
    pub fn event(&self, event: &'static str) -> Counter {
        self.families
            .events
            .get_or_create_owned(&SubscriptionEventLabel {
                subscription: self.label.clone(),
                event,
            })
    }

    /// `strata_nats_jetstream_errors_total{kind}`.
    pub fn jetstream_error(&self, kind_: &'static str) -> Counter {
        self.families
            .jetstream_errors
            .get_or_create_owned(&kind(&self.label, kind_))
    }
}

fn kind(label: &str, kind: &'static str) -> SubscriptionKindLabel {
    SubscriptionKindLabel {
        subscription: label.to_owned(),
        kind,
    }
}
