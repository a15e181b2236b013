//! A client per subscription: options from the configuration, reconnect backoff, and the
//! event callback (counters, gauge, rate-limited logs).

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{ConnectOptions, Event};
use strata_server::telemetry::LogLimiter;

use crate::{Auth, ConnectionConfig, LOG_INTERVAL_S, StartError, Subscription};

/// First reconnect delay; doubles per failed attempt up to [`RECONNECT_DELAY_MAX`].
const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(100);
const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(5);
/// ± this share of a delay is random, so that a fleet does not reconnect in lockstep.
const RECONNECT_JITTER: f64 = 0.2;
/// Longest wait for one connect attempt (TCP, TLS and the NATS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Fewest messages a client buffers between its connection and the subscription's reader.
/// The reader only moves them into its own bounded buffer (core) or waits for the workers
/// (JetStream, whose pulls stay far below this), so the client itself should never drop.
const CLIENT_BUFFER_MESSAGES_MIN: usize = 4096;

/// Checks the files a connection needs (credentials, nkey seed, TLS certificates and key):
/// readable and well-formed, so that a mistake stops the start instead of failing every
/// connect attempt later. Never shows a seed.
pub(crate) async fn check_files(connection: &ConnectionConfig) -> Result<(), StartError> {
    let fail = |message: String| start_error(connection, message);
    match &connection.auth {
        Auth::None | Auth::UserPassword { .. } => {}
        Auth::CredsFile(path) => {
            ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|error| fail(format!("creds-file-path {}: {error}", path.display())))?;
        }
        Auth::NkeySeedFile(path) => {
            let seed = std::fs::read_to_string(path)
                .map_err(|error| fail(format!("nkey-seed-file {}: {error}", path.display())))?;
            if nkeys::KeyPair::from_seed(seed.trim()).is_err() {
                return Err(fail(format!(
                    "nkey-seed-file {}: does not hold an nkey seed",
                    path.display()
                )));
            }
        }
    }
    if let Some(tls) = &connection.tls {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certificates = |key: &str, path: &std::path::Path| {
            let parsed: Result<Vec<_>, _> =
                CertificateDer::pem_file_iter(path).and_then(|certificates| certificates.collect());
            match parsed {
                Ok(certificates) if !certificates.is_empty() => Ok(()),
                Ok(_) => Err(fail(format!(
                    "tls.{key} {}: no certificate",
                    path.display()
                ))),
                Err(error) => Err(fail(format!("tls.{key} {}: {error}", path.display()))),
            }
        };
        if let Some(ca) = &tls.ca_file {
            certificates("ca-file", ca)?;
        }
        if let Some((cert, key)) = &tls.client_cert {
            certificates("cert-file", cert)?;
            PrivateKeyDer::from_pem_file(key)
                .map_err(|error| fail(format!("tls.key-file {}: {error}", key.display())))?;
        }
    }
    Ok(())
}

fn start_error(connection: &ConnectionConfig, message: String) -> StartError {
    StartError {
        connection: connection
            .name
            .clone()
            .unwrap_or_else(|| connection.addresses.join(",")),
        message,
    }
}

/// The client of one subscription; connects in the background (a down server is retried
/// forever, never an error).
pub(crate) async fn client(
    connection: &ConnectionConfig,
    subscription: &Arc<Subscription>,
    pending_messages: usize,
) -> Result<async_nats::Client, StartError> {
    let fail = |message: String| start_error(connection, message);
    let events = EventLog::new(subscription.clone());
    let mut options = ConnectOptions::new()
        .name(format!("strata {}", subscription.label))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay)
        .connection_timeout(CONNECT_TIMEOUT)
        .subscription_capacity(match subscription.config.jetstream {
            Some(_) => crate::jetstream::client_capacity(pending_messages),
            None => pending_messages.max(CLIENT_BUFFER_MESSAGES_MIN),
        })
        .event_callback(move |event| {
            events.record(&event);
            std::future::ready(())
        });
    match &connection.auth {
        Auth::None => {}
        Auth::UserPassword { username, password } => {
            options = options.user_and_password(username.clone(), password.clone());
        }
        Auth::CredsFile(path) => {
            options = options
                .credentials_file(path)
                .await
                .map_err(|error| fail(format!("creds-file-path {}: {error}", path.display())))?;
        }
        Auth::NkeySeedFile(path) => {
            let seed = std::fs::read_to_string(path)
                .map_err(|error| fail(format!("nkey-seed-file {}: {error}", path.display())))?;
            options = options.nkey(seed.trim().to_owned());
        }
    }
    if let Some(tls) = &connection.tls {
        options = options.require_tls(true);
        if let Some(ca) = &tls.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &tls.client_cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
    }
    options
        .connect(connection.addresses.clone())
        .await
        .map_err(|error| fail(error.to_string()))
}

/// Exponential from [`RECONNECT_DELAY_MIN`] to [`RECONNECT_DELAY_MAX`], ± [`RECONNECT_JITTER`].
pub(crate) fn reconnect_delay(attempts: usize) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16) as u32;
    let delay = RECONNECT_DELAY_MIN
        .saturating_mul(1 << doublings)
        .min(RECONNECT_DELAY_MAX);
    // A fresh RandomState has fresh keys: its hash is a cheap random number.
    let random = std::collections::hash_map::RandomState::new().hash_one(attempts);
    let unit = (random >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    delay.mul_f64(1.0 + RECONNECT_JITTER * (2.0 * unit - 1.0))
}

/// Event kinds, for the `event` label and one log limiter each.
const EVENTS: [&str; 8] = [
    "connected",
    "disconnected",
    "lame_duck",
    "draining",
    "closed",
    "slow_consumer",
    "server_error",
    "client_error",
];

/// What the event callback needs. It only counts and logs (rate-limited): async-nats hands
/// events over a small channel with `try_send`, so a slow callback would lose events.
struct EventLog {
    subscription: Arc<Subscription>,
    limiters: [LogLimiter; EVENTS.len()],
}

impl EventLog {
    fn new(subscription: Arc<Subscription>) -> Self {
        Self {
            subscription,
            limiters: std::array::from_fn(|_| LogLimiter::new(LOG_INTERVAL_S)),
        }
    }

    fn record(&self, event: &Event) {
        let index = match event {
            Event::Connected => 0,
            Event::Disconnected => 1,
            Event::LameDuckMode => 2,
            Event::Draining => 3,
            Event::Closed => 4,
            Event::SlowConsumer(_) => 5,
            Event::ServerError(_) => 6,
            Event::ClientError(_) => 7,
        };
        let metrics = &self.subscription.metrics;
        metrics.event(EVENTS[index]).inc();
        match event {
            Event::Connected => {
                metrics.connected.set(1);
            }
            Event::Disconnected | Event::Closed => {
                metrics.connected.set(0);
            }
            Event::SlowConsumer(_) => {
                metrics.slow_consumer_drops.inc();
            }
            _ => {}
        }
        let Some(suppressed) = self.limiters[index].allow(strata_server::now_s()) else {
            return;
        };
        let subscription = &self.subscription.label;
        match event {
            Event::Connected => tracing::info!(subscription, suppressed, "NATS connected"),
            Event::Draining | Event::Closed => {
                tracing::info!(subscription, suppressed, "NATS {event}");
            }
            Event::SlowConsumer(_) => tracing::warn!(
                subscription,
                suppressed,
                "NATS messages dropped: ingest cannot keep up (counted in \
                 strata_nats_slow_consumer_drops_total); raise num-workers or \
                 limits.nats-pending-messages/-bytes, or use JetStream"
            ),
            Event::Disconnected => {
                tracing::warn!(subscription, suppressed, "NATS disconnected, reconnecting")
            }
            Event::ClientError(_) => {
                tracing::warn!(subscription, suppressed, "NATS {event}, retrying");
            }
            Event::LameDuckMode | Event::ServerError(_) => {
                tracing::warn!(subscription, suppressed, "NATS {event}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_grows_to_its_cap_with_jitter() {
        let within = |attempts, nominal: Duration| {
            let delay = reconnect_delay(attempts);
            assert!(
                delay >= nominal.mul_f64(0.8) && delay <= nominal.mul_f64(1.2),
                "attempt {attempts}: {delay:?} vs {nominal:?}"
            );
        };
        within(0, RECONNECT_DELAY_MIN);
        within(1, RECONNECT_DELAY_MIN);
        within(2, RECONNECT_DELAY_MIN * 2);
        within(4, RECONNECT_DELAY_MIN * 8);
        within(7, RECONNECT_DELAY_MAX);
        within(usize::MAX, RECONNECT_DELAY_MAX);
        let spread: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| reconnect_delay(10)).collect();
        assert!(spread.len() > 1, "jitter varies the delay");
    }
}
