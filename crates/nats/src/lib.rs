//! NATS ingest: core subscriptions (optionally in a queue group) and JetStream durable pull
//! consumers, decoded and committed through the one ingest path HTTP uses
//! ([`strata_server::ingest::ingest_message`]).
//!
//! ```text
//! per subscription: one client ─▶ reader task ─▶ core: its pending buffer ───────┐
//!                                                                               ▼
//!                    job queue (2 × workers) ─▶ workers: ingest_message, then JetStream ack/nak
//! ```
//!
//! - One client (connection) per subscription: a slow-consumer event can only be told apart
//!   per connection, and a backlogged subscription does not hold up the others.
//! - Every job carries its subscription, so a line without a `cluster` tag gets the cluster
//!   tag of the subscription it came from (cc-metric-store mixes them up with several workers).
//! - Bounded: a core subscription buffers up to `nats-pending-messages` and `-bytes` (beyond
//!   them it drops, counted exactly), the job queue holds 2 × workers jobs,
//!   JetStream pulls only when the reader asks for more and bounds unacknowledged messages.
//! - A down server never stops Strata: clients connect and reconnect in the background
//!   forever with exponential backoff.

mod connect;
mod jetstream;
mod metrics;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use strata_server::App;
use strata_server::error::ApiError;
use strata_server::ingest::{BodyFailure, Precision, WriteRequest, ingest_message};
use strata_server::telemetry::LogLimiter;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinSet;

use crate::jetstream::Answer;
use crate::metrics::SubscriptionMetrics;

/// Longest wait at shutdown for the subscriptions to stop and in-flight messages to be
/// committed (and acknowledged); what is left after it is abandoned (JetStream redelivers it).
pub const NATS_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Jobs waiting for a worker, per worker.
const QUEUE_JOBS_PER_WORKER: usize = 2;

/// Most decode workers: `num-workers` beyond it (it also sizes checkpointing) is lowered
/// for NATS, so that the job queue stays small and its size cannot overflow.
const WORKERS_MAX: usize = 256;

/// Fewest workers: a worker holds its message through the commit, which mostly waits for
/// the write-ahead log, so the cores stay busy only with several messages in flight (as
/// HTTP has with several connections). `scripts/bench-nats.sh` on 2 cores: core NATS 0.62 ×
/// HTTP's rate with 2 workers, 0.83 × with 8, 0.77 × with 16.
const WORKERS_MIN: usize = 8;

/// Seconds between two log lines of one kind per subscription.
const LOG_INTERVAL_S: i64 = 10;

/// Everything NATS ingest needs, from the configuration.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub connections: Vec<ConnectionConfig>,
    /// Decode workers shared by all subscriptions (`num-workers`; [`WORKERS_MIN`] to
    /// [`WORKERS_MAX`] are used).
    pub workers: usize,
    /// Messages one subscription buffers (`limits.nats-pending-messages`), ≥ 1 and small
    /// enough for a channel.
    pub pending_messages: usize,
    /// Payload bytes one core subscription buffers (`limits.nats-pending-bytes`).
    pub pending_bytes: usize,
}

/// One configured connection; every subscription gets a client of its own built from it.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub name: Option<String>,
    /// Server URLs: `nats://`, `tls://` or `host:port`.
    pub addresses: Vec<String>,
    pub auth: Auth,
    pub tls: Option<Tls>,
    pub subscriptions: Vec<SubscriptionConfig>,
}

/// How a client logs in.
#[derive(Clone)]
pub enum Auth {
    None,
    UserPassword { username: String, password: String },
    CredsFile(PathBuf),
    NkeySeedFile(PathBuf),
}

impl std::fmt::Debug for Auth {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::UserPassword { username, .. } => f
                .debug_struct("UserPassword")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::CredsFile(path) => f.debug_tuple("CredsFile").field(path).finish(),
            Self::NkeySeedFile(path) => f.debug_tuple("NkeySeedFile").field(path).finish(),
        }
    }
}

/// TLS settings; TLS is required when present.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    pub subject: String,
    /// Cluster of lines without a `cluster` tag.
    pub cluster_tag: Option<String>,
    pub queue_group: Option<String>,
    pub jetstream: Option<JetStreamConfig>,
}

#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    pub stream: String,
    pub consumer: String,
    pub ack_wait: Duration,
}

/// What a subscription's reader, its jobs and its client's event callback share.
struct Subscription {
    config: SubscriptionConfig,
    /// `subscription` label: the subject, numbered when several subscriptions share one.
    label: String,
    /// `source` of ingest log lines: `nats:<label>`.
    source: String,
    metrics: SubscriptionMetrics,
    failure_log: LogLimiter,
    drop_log: LogLimiter,
}

/// One message to decode and commit, with where it came from.
struct Job {
    subscription: Arc<Subscription>,
    payload: Bytes,
    /// JetStream: the message, to acknowledge after the commit.
    jetstream: Option<jetstream::Delivery>,
    /// Set once the job is handled; a job dropped before (its task aborted at the shutdown
    /// timeout, or the workers gone) is counted as abandoned.
    handled: bool,
}

impl Drop for Job {
    fn drop(&mut self) {
        // A panic is counted by the worker, as such.
        if !self.handled && !std::thread::panicking() {
            self.subscription.metrics.abandoned.inc();
        }
    }
}

/// The running NATS ingest.
pub struct NatsIngest {
    clients: Vec<async_nats::Client>,
    subscriptions: Vec<Arc<Subscription>>,
    stop: watch::Sender<bool>,
    readers: JoinSet<()>,
    workers: JoinSet<()>,
}

/// A connection could not be set up from its configuration (a credentials file that cannot
/// be read); a down server is not an error.
#[derive(Debug, thiserror::Error)]
#[error("NATS connection {connection}: {message}")]
pub struct StartError {
    connection: String,
    message: String,
}

impl NatsIngest {
    /// Checks what can be checked before connecting (the files of every connection), so
    /// that `serve` fails at once on a mistake, before recovery and listening.
    pub async fn check(config: &NatsConfig) -> Result<(), StartError> {
        for connection in &config.connections {
            connect::check_files(connection).await?;
        }
        Ok(())
    }

    /// Starts a client and a reader per subscription and the workers; returns at once
    /// (clients connect in the background).
    pub async fn start(app: Arc<App>, config: NatsConfig) -> Result<NatsIngest, StartError> {
        // rustls must have one process-wide crypto provider; another crate enabling `ring`
        // would otherwise make TLS connects fail. An already installed one is kept.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let workers = config.workers.clamp(WORKERS_MIN, WORKERS_MAX);
        if workers < config.workers {
            tracing::warn!(
                num_workers = config.workers,
                "NATS ingest uses {WORKERS_MAX} decode workers at most"
            );
        }
        let (jobs, queue) = mpsc::channel(workers * QUEUE_JOBS_PER_WORKER);
        let (stop, stopped) = watch::channel(false);
        let mut ingest = NatsIngest {
            clients: Vec::new(),
            subscriptions: Vec::new(),
            stop,
            readers: JoinSet::new(),
            workers: JoinSet::new(),
        };
        let labels = labels(&config.connections);
        let mut labels = labels.into_iter();
        for connection in &config.connections {
            for subscription in &connection.subscriptions {
                let label = labels.next().unwrap_or_default();
                let subscription = Arc::new(Subscription {
                    label: label.clone(),
                    source: format!("nats:{label}"),
                    metrics: SubscriptionMetrics::new(&app.telemetry.nats, &label),
                    config: subscription.clone(),
                    failure_log: LogLimiter::new(LOG_INTERVAL_S),
                    drop_log: LogLimiter::new(LOG_INTERVAL_S),
                });
                let client =
                    connect::client(connection, &subscription, config.pending_messages).await?;
                tracing::info!(
                    subscription = subscription.label,
                    servers = ?connection.addresses,
                    cluster_tag = subscription.config.cluster_tag.as_deref().unwrap_or(""),
                    queue_group = subscription.config.queue_group.as_deref().unwrap_or(""),
                    jetstream = ?subscription.config.jetstream,
                    "NATS subscription starting"
                );
                ingest.subscriptions.push(subscription.clone());
                let reader = Reader {
                    client: client.clone(),
                    subscription,
                    jobs: jobs.clone(),
                    stopped: stopped.clone(),
                    pending_messages: config.pending_messages,
                    pending_bytes: config.pending_bytes,
                };
                ingest.readers.spawn(reader.run());
                ingest.clients.push(client);
            }
        }
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..workers {
            let app = app.clone();
            ingest.workers.spawn(work(queue.clone(), move |job| {
                let app = app.clone();
                async move { handle(&app, job).await }
            }));
        }
        Ok(ingest)
    }

    /// Stops receiving, commits (and acknowledges) what was received, then closes the
    /// connections; all within [`NATS_DRAIN_TIMEOUT`] (a down server must not hold up the
    /// shutdown).
    pub async fn stop(mut self) {
        let deadline = tokio::time::Instant::now() + NATS_DRAIN_TIMEOUT;
        let _ = self.stop.send(true);
        let finished = tokio::time::timeout_at(deadline, async {
            while self.readers.join_next().await.is_some() {}
            // The readers held the queue's senders: the workers end once it is empty.
            while self.workers.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            self.abandon().await;
        }
        // Acknowledgements are published: flush them out, then close every connection.
        let closing = self
            .clients
            .iter()
            .filter(|c| connected(c))
            .map(|client| async move {
                let _ = client.flush().await;
                let _ = client.drain().await;
            });
        let _ = tokio::time::timeout_at(deadline, futures_util::future::join_all(closing)).await;
        tracing::info!("NATS ingest stopped");
    }
}

impl NatsIngest {
    /// Aborts readers and workers; the jobs they held or queued are counted
    /// (`result="abandoned"`) and logged, core and JetStream apart.
    async fn abandon(&mut self) {
        let before = self.abandoned();
        self.readers.abort_all();
        self.workers.abort_all();
        // Once the aborted tasks are gone, so is the queue with the jobs in it.
        while self.readers.join_next().await.is_some() {}
        while self.workers.join_next().await.is_some() {}
        let (core, jetstream) = self.abandoned();
        let (core, jetstream) = (core - before.0, jetstream - before.1);
        if core > 0 {
            tracing::error!(
                timeout = ?NATS_DRAIN_TIMEOUT,
                messages = core,
                "core NATS messages lost at shutdown: not committed in time"
            );
        }
        if jetstream > 0 || core == 0 {
            tracing::warn!(
                timeout = ?NATS_DRAIN_TIMEOUT,
                messages = jetstream,
                "NATS ingest did not finish in time; JetStream delivers again the messages \
                 that were not acknowledged"
            );
        }
    }

    /// Abandoned messages so far: (core, JetStream).
    fn abandoned(&self) -> (u64, u64) {
        self.subscriptions.iter().fold((0, 0), |(core, js), s| {
            let count = s.metrics.abandoned.get();
            match s.config.jetstream {
                Some(_) => (core, js + count),
                None => (core + count, js),
            }
        })
    }
}

/// Draining or flushing a client that is not connected would wait for the reconnect.
fn connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// The `subscription` label of each subscription, in order: its subject, or
/// `subject #n` (n from 1) when several subscriptions share a subject: a subject has no
/// blanks, so this label cannot be another subscription's subject.
fn labels(connections: &[ConnectionConfig]) -> Vec<String> {
    let subjects: Vec<&str> = connections
        .iter()
        .flat_map(|c| &c.subscriptions)
        .map(|s| s.subject.as_str())
        .collect();
    subjects
        .iter()
        .enumerate()
        .map(|(index, subject)| {
            let same = subjects.iter().filter(|s| *s == subject).count();
            if same == 1 {
                (*subject).to_owned()
            } else {
                let nth = subjects[..=index].iter().filter(|s| *s == subject).count();
                format!("{subject} #{nth}")
            }
        })
        .collect()
}

/// Receives one subscription's messages and queues them for the workers.
struct Reader {
    client: async_nats::Client,
    subscription: Arc<Subscription>,
    jobs: mpsc::Sender<Job>,
    stopped: watch::Receiver<bool>,
    pending_messages: usize,
    pending_bytes: usize,
}

impl Reader {
    async fn run(self) {
        let subscription = self.subscription.clone();
        let stopped = self.stopped.clone();
        if subscription.config.jetstream.is_some() {
            jetstream::run(self).await;
        } else {
            self.run_core().await;
        }
        if !*stopped.borrow() {
            tracing::error!(
                subscription = subscription.label,
                "NATS subscription ended before the shutdown: nothing more is received on it"
            );
        }
    }

    /// Receives core messages into [`Pending`] while handing them to the workers, so that
    /// a burst waits in memory up to the limits instead of being dropped by the client; what
    /// does not fit is dropped here and counted exactly.
    async fn run_core(mut self) {
        let subscription = &self.subscription;
        let subject = subscription.config.subject.clone();
        let subscribed = match &subscription.config.queue_group {
            Some(group) => self.client.queue_subscribe(subject, group.clone()).await,
            None => self.client.subscribe(subject).await,
        };
        let mut subscriber = match subscribed {
            Ok(subscriber) => subscriber,
            Err(error) => {
                // Only when the client is closed, which Strata never does before this.
                tracing::error!(subscription = subscription.label, %error, "cannot subscribe");
                return;
            }
        };
        let mut pending = Pending::new(
            self.pending_messages,
            self.pending_bytes,
            subscription.metrics.abandoned.clone(),
        );
        loop {
            tokio::select! {
                biased;
                _ = self.stopped.changed() => break,
                permit = self.jobs.reserve(), if !pending.is_empty() => {
                    let (Ok(permit), Some(payload)) = (permit, pending.pop()) else { return };
                    permit.send(self.job(payload, None));
                }
                message = subscriber.next() => {
                    let Some(message) = message else { break };
                    self.receive(&mut pending, message.payload);
                }
            }
        }
        if connected(&self.client) {
            // Stop the server sending; the stream ends after what the client still holds.
            let _ = subscriber.drain().await;
            while let Some(message) = subscriber.next().await {
                self.receive(&mut pending, message.payload);
            }
        } else {
            // Draining would wait for a reconnect: take only what the client holds.
            while let Some(Some(message)) = subscriber.next().now_or_never() {
                self.receive(&mut pending, message.payload);
            }
        }
        while let Some(payload) = pending.pop() {
            if self.jobs.send(self.job(payload, None)).await.is_err() {
                return;
            }
        }
    }

    /// Counts a core message and keeps it, or drops it when [`Pending`] is full.
    fn receive(&self, pending: &mut Pending, payload: Bytes) {
        let metrics = &self.subscription.metrics;
        metrics.received_bytes.inc_by(payload.len() as u64);
        if pending.push(payload) {
            return;
        }
        metrics.slow_consumer_drops.inc();
        if let Some(suppressed) = self.subscription.drop_log.allow(strata_server::now_s()) {
            tracing::warn!(
                subscription = self.subscription.label,
                pending_messages = pending.messages.len(),
                pending_bytes = pending.bytes,
                suppressed,
                "NATS messages dropped: ingest cannot keep up (counted in \
                 strata_nats_slow_consumer_drops_total); raise num-workers or \
                 limits.nats-pending-messages/-bytes, or use JetStream"
            );
        }
    }

    fn job(&self, payload: Bytes, jetstream: Option<jetstream::Delivery>) -> Job {
        Job {
            subscription: self.subscription.clone(),
            payload,
            jetstream,
            handled: false,
        }
    }

    /// Queues a message for the workers (waiting while the queue is full, which is the
    /// back-pressure); `false` once the workers are gone.
    async fn queue(&self, payload: Bytes, jetstream: Option<jetstream::Delivery>) -> bool {
        self.subscription
            .metrics
            .received_bytes
            .inc_by(payload.len() as u64);
        self.jobs.send(self.job(payload, jetstream)).await.is_ok()
    }
}

/// Core messages received and not yet handed to a worker, bounded by count and by bytes
/// (`limits.nats-pending-messages` and `-bytes`, like the pending limits of nats.go, which
/// cc-metric-store uses; the client library bounds only the count).
struct Pending {
    messages: std::collections::VecDeque<Bytes>,
    bytes: usize,
    messages_max: usize,
    bytes_max: usize,
    /// `result="abandoned"`: what is still here when the reader is aborted at shutdown.
    abandoned: prometheus_client::metrics::counter::Counter,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.abandoned.inc_by(self.messages.len() as u64);
    }
}

impl Pending {
    fn new(
        messages_max: usize,
        bytes_max: usize,
        abandoned: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        Self {
            messages: std::collections::VecDeque::new(),
            bytes: 0,
            messages_max,
            bytes_max,
            abandoned,
        }
    }

    fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Keeps `payload` unless that would pass a limit; `false`: it was not kept. A message
    /// larger than the byte limit alone is kept when nothing else waits, so that one large
    /// message is decoded (and refused by `body-size` if need be) rather than dropped here.
    fn push(&mut self, payload: Bytes) -> bool {
        let fits = self.messages.len() < self.messages_max
            && (self.bytes + payload.len() <= self.bytes_max || self.messages.is_empty());
        if fits {
            self.bytes += payload.len();
            self.messages.push_back(payload);
        }
        fits
    }

    fn pop(&mut self) -> Option<Bytes> {
        let payload = self.messages.pop_front()?;
        self.bytes -= payload.len();
        Some(payload)
    }
}

/// A worker: takes jobs until the queue is closed and empty. Each job runs in a task of its
/// own, so that a panic costs that message only (logged, counted), never the worker.
async fn work<F>(queue: Arc<Mutex<mpsc::Receiver<Job>>>, handle: impl Fn(Job) -> F)
where
    F: Future<Output = ()> + Send + 'static,
{
    loop {
        let job = queue.lock().await.recv().await;
        let Some(job) = job else { return };
        let subscription = job.subscription.clone();
        // Dropped with the worker (aborted at the shutdown timeout), it aborts the job.
        let mut running = JoinSet::new();
        running.spawn(handle(job));
        if let Some(Err(error)) = running.join_next().await
            && error.is_panic()
        {
            subscription.metrics.panicked.inc();
            if let Some(suppressed) = subscription.failure_log.allow(strata_server::now_s()) {
                tracing::error!(
                    subscription = subscription.label,
                    suppressed,
                    "NATS message handling panicked (a bug); the message is not stored"
                );
            }
        }
    }
}

/// Decodes and commits one message, counts the result, and answers JetStream: ack once every
/// batch is committed, also when lines were rejected (a redelivery cannot fix them); nak
/// with a delay when the WAL refused the write.
async fn handle(app: &App, mut job: Job) {
    let subscription = &job.subscription;
    let now_s = strata_server::now_s();
    let request = WriteRequest {
        default_cluster: subscription.config.cluster_tag.as_deref().unwrap_or(""),
        cluster_fallback: "the subscription's cluster-tag",
        precision: Precision::Auto,
        source: &subscription.source,
    };
    let ingest = ingest_message(app, request, job.payload.clone(), now_s);
    let result = match &job.jetstream {
        Some(delivery) => jetstream::with_progress(ingest, delivery, subscription).await,
        None => ingest.await,
    };
    let metrics = &subscription.metrics;
    let ack = match result {
        Ok(outcome) => {
            let counter = match outcome.failure {
                Some(BodyFailure::TooLarge) => &metrics.too_large,
                _ if outcome.lines == 0 => &metrics.empty,
                _ if outcome.rejected == 0 => &metrics.stored,
                _ if outcome.lines_stored() > 0 => &metrics.partial,
                _ => &metrics.rejected,
            };
            counter.inc();
            if matches!(outcome.failure, Some(BodyFailure::TooLarge))
                && let Some(suppressed) = subscription.failure_log.allow(now_s)
            {
                tracing::warn!(
                    subscription = subscription.label,
                    limit = app.config.ingest.body_bytes_max,
                    suppressed,
                    "NATS message larger than limits.body-size dropped"
                );
            }
            Some(Answer::Ack)
        }
        Err(error) => {
            metrics.failed.inc();
            let (answer, outcome) = on_failure(&error, job.jetstream.is_some());
            if let Some(suppressed) = subscription.failure_log.allow(now_s) {
                tracing::error!(
                    subscription = subscription.label,
                    ?error,
                    suppressed,
                    "{outcome}"
                );
            }
            answer
        }
    };
    if let (Some(delivery), Some(ack)) = (&job.jetstream, ack) {
        jetstream::answer(&delivery.message, ack, subscription).await;
    }
    job.handled = true;
}

/// The JetStream answer to a message that was not stored (none for a core message), and
/// what to log. Only a log that refused the write may take the message another time; any
/// other failure (a bug) would repeat with it.
fn on_failure(error: &ApiError, jetstream: bool) -> (Option<Answer>, &'static str) {
    match (jetstream, error) {
        (false, _) => (None, "core NATS message lost: not stored"),
        (true, ApiError::Unavailable(_)) => (
            Some(Answer::Nak),
            "NATS message not stored; JetStream delivers it again",
        ),
        (true, _) => (
            Some(Answer::Term),
            "NATS message not stored and terminated: JetStream will not deliver it again",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(subjects: &[&str]) -> ConnectionConfig {
        ConnectionConfig {
            name: None,
            addresses: vec!["a:1".to_owned()],
            auth: Auth::None,
            tls: None,
            subscriptions: subjects
                .iter()
                .map(|subject| SubscriptionConfig {
                    subject: (*subject).to_owned(),
                    cluster_tag: None,
                    queue_group: None,
                    jetstream: None,
                })
                .collect(),
        }
    }

    #[test]
    fn labels_are_subjects_numbered_when_shared() {
        let connections = [connection(&["a", "b", "a"]), connection(&["c", "a"])];
        assert_eq!(labels(&connections), ["a #1", "b", "a #2", "c", "a #3"]);
    }

    fn subscription(metrics: &strata_server::telemetry::NatsMetrics) -> Arc<Subscription> {
        Arc::new(Subscription {
            config: connection(&["a"]).subscriptions.remove(0),
            label: "a".to_owned(),
            source: "a".to_owned(),
            metrics: SubscriptionMetrics::new(metrics, "a"),
            failure_log: LogLimiter::new(LOG_INTERVAL_S),
            drop_log: LogLimiter::new(LOG_INTERVAL_S),
        })
    }

    #[test]
    fn a_job_dropped_unhandled_is_counted_as_abandoned() {
        let metrics = strata_server::telemetry::NatsMetrics::default();
        let subscription = subscription(&metrics);
        let job = |handled| Job {
            subscription: subscription.clone(),
            payload: Bytes::new(),
            jetstream: None,
            handled,
        };
        drop(job(true));
        assert_eq!(subscription.metrics.abandoned.get(), 0);
        // What the queue still holds when the aborted workers are gone.
        let (jobs, queue) = mpsc::channel(4);
        for _ in 0..3 {
            jobs.try_send(job(false)).unwrap();
        }
        drop(queue);
        assert_eq!(subscription.metrics.abandoned.get(), 3);
    }

    #[test]
    fn pending_keeps_to_its_limits_and_counts_what_it_still_holds_as_abandoned() {
        let metrics = strata_server::telemetry::NatsMetrics::default();
        let subscription = subscription(&metrics);
        let abandoned = &subscription.metrics.abandoned;
        let mut pending = Pending::new(3, 10, abandoned.clone());
        // One message over the byte limit is kept when nothing else waits.
        assert!(pending.push(Bytes::from(vec![b'x'; 20])));
        assert!(!pending.push(Bytes::from("a")));
        assert_eq!(pending.pop().map(|b| b.len()), Some(20));
        for _ in 0..3 {
            assert!(pending.push(Bytes::from("abc")));
        }
        assert!(!pending.push(Bytes::from("d")), "over the message limit");
        assert_eq!(pending.bytes, 9);
        assert!(pending.pop().is_some());
        assert!(!pending.push(Bytes::from("efghi")), "over the byte limit");
        assert!(pending.push(Bytes::from("efg")));
        drop(pending);
        assert_eq!(abandoned.get(), 3);
    }

    #[tokio::test]
    async fn a_panicking_job_is_counted_and_the_worker_goes_on() {
        let metrics = strata_server::telemetry::NatsMetrics::default();
        let subscription = subscription(&metrics);
        let (jobs, queue) = mpsc::channel(4);
        for payload in ["panic", "fine"] {
            let job = Job {
                subscription: subscription.clone(),
                payload: Bytes::from(payload),
                jetstream: None,
                handled: false,
            };
            jobs.try_send(job).unwrap();
        }
        drop(jobs);
        let (done, mut handled) = mpsc::channel(2);
        let queue = Arc::new(Mutex::new(queue));
        work(queue, move |mut job| {
            let done = done.clone();
            async move {
                assert_ne!(job.payload, "panic", "a bug while handling a message");
                job.handled = true;
                let _ = done.try_send(job.payload.clone());
            }
        })
        .await;
        assert_eq!(handled.recv().await, Some(Bytes::from("fine")));
        assert_eq!(subscription.metrics.panicked.get(), 1);
        assert_eq!(subscription.metrics.abandoned.get(), 0);
    }

    #[test]
    fn only_a_wal_failure_is_delivered_again() {
        let wal = ApiError::Unavailable("log".to_owned());
        let bug = ApiError::Internal("decoder panicked".to_owned());
        assert_eq!(on_failure(&wal, true).0, Some(Answer::Nak));
        assert_eq!(on_failure(&bug, true).0, Some(Answer::Term));
        for error in [&wal, &bug] {
            let (answer, log) = on_failure(error, false);
            assert_eq!(answer, None);
            assert!(
                log.starts_with("core") && !log.contains("JetStream"),
                "{log}"
            );
        }
    }

    #[test]
    fn auth_debug_hides_the_password() {
        let auth = Auth::UserPassword {
            username: "u".to_owned(),
            password: "hunter2".to_owned(),
        };
        let shown = format!("{auth:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
