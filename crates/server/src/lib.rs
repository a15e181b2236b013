//! Strata's HTTP server: cc-metric-store's API over the in-memory store.
//!
//! Routes (each with and without a trailing slash, as cc-metric-store registers them):
//!
//! | route | method | handler |
//! |---|---|---|
//! | `/api/write` | POST | [`ingest::write`]: line protocol in |
//! | `/api/query` | GET, POST | [`query::query`]: JSON query |
//! | `/api/free` | POST | [`admin::free`]: drop old buffers |
//! | `/api/debug` | GET | [`admin::debug`]: dump the tree |
//! | `/api/healthcheck` | GET, POST | [`admin::healthcheck`]: per-node health |
//! | `/api/remote-write` | GET | [`admin::remote_write`]: each forwarding endpoint's state |
//! | `/metrics` | GET | Prometheus metrics about Strata itself (no auth) |
//! | `/healthz` | GET | liveness: `ok` (no auth) |
//! | `/write` | POST | [`influx::write_v1`]: InfluxDB 1.x write (`db`, `precision`) |
//! | `/api/v2/write` | POST | [`influx::write_v2`]: InfluxDB 2.x write (`bucket`, `precision`) |
//! | `/query` | GET, POST | [`influx::query`]: InfluxDB 1.x, `CREATE DATABASE` only |
//! | `/ping` | GET, HEAD | [`influx::ping`]: InfluxDB liveness (no auth) |
//! | `/health` | GET | [`influx::health`]: InfluxDB 2.x health (no auth) |
//!
//! With a JWT public key configured, every `/api/` route requires an EdDSA bearer token, and
//! the InfluxDB write and query routes the same token where InfluxDB clients put theirs
//! ([`influx::authenticate_v1`], [`influx::authenticate_v2`]). With `main.jwt-roles` as well,
//! the token's `roles` must grant the route's [`auth::Access`] class.
//!
//! [`listen::serve`] accepts the connections (header timeout, connection limit, graceful
//! shutdown), over TLS when `main.https-cert-file` and `main.https-key-file` are set
//! ([`tls`]: rustls, certificate reload on SIGHUP or a change of the files). Queries, healthchecks and dumps are computed on blocking threads, a bounded
//! number at a time ([`App::compute`]), except a cheap query, answered at once
//! ([`query::query`]).
//!
//! Ingest order is decode → [`App::commit`] (WAL append, then apply to memory) → acknowledge.
//! `commit` is the one place a batch enters the store.

pub mod admin;
pub mod archiving;
pub mod auth;
pub mod durability;
pub mod error;
pub mod influx;
pub mod ingest;
pub mod keycache;
pub mod listen;
pub mod maintenance;
pub mod progress;
pub mod query;
pub mod telemetry;
pub mod tls;

use crate::auth::{Access, AuthError, Authenticator, JwtRoles};
use crate::durability::{Commit, Durability};
use crate::error::{ApiError, PlainTextError, error_response};
use crate::ingest::{IngestLimits, LineDecoder, RejectReason};
use crate::telemetry::{LogLimiter, ReasonLabel, ResponseLabel, RouteLabel, Telemetry};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use strata_store::{Resampler, Store, WriteBatch};

/// Everything the server needs besides the store.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Raw Ed25519 public key; `None` = no authentication.
    pub jwt_public_key: Option<[u8; 32]>,
    /// `main.jwt-roles`: the roles a token needs per route class; `None` = any valid token.
    pub jwt_roles: Option<JwtRoles>,
    pub ingest: IngestLimits,
    /// Most result entries one query request may produce.
    pub query_series_max: usize,
    /// Most data points one query request may return, counted before any work.
    pub query_points_max: usize,
    /// Most query, healthcheck and debug computations running at once (on blocking threads);
    /// more wait up to half the request timeout and are then refused with 503.
    pub concurrent_queries: usize,
    /// Largest query, free or healthcheck body.
    pub request_body_bytes_max: usize,
    pub resampler: Resampler,
}

/// Shared state of all handlers.
#[derive(Debug)]
pub struct App {
    pub store: Arc<Store>,
    pub durability: Arc<Durability>,
    pub config: ServerConfig,
    pub telemetry: Telemetry,
    auth: Option<Authenticator>,
    reject_log: LogLimiter,
    drop_log: LogLimiter,
    spare_batches: BatchPool,
    /// Series keys decoded before, shared by all write requests.
    pub key_cache: Arc<keycache::KeyCache>,
    /// Permits for CPU-heavy read work, [`ServerConfig::concurrent_queries`] of them.
    cpu: Arc<tokio::sync::Semaphore>,
    /// Remote-write endpoints, once started.
    forwarding: std::sync::OnceLock<strata_forward::Forwarding>,
    /// The Parquet archive queries reach into, in archive mode.
    archive: std::sync::OnceLock<strata_archive::Archive>,
}

/// Most spare batches kept (one per concurrent request is enough).
const SPARE_BATCHES_MAX: usize = 64;

/// Largest batch kept for reuse, spare capacity included. A full batch is
/// [`ingest::BATCH_SAMPLES_MAX`] samples of 56 bytes (~0.9 MiB) plus up to twice
/// [`ingest::BATCH_TEXT_BYTES_MAX`] of names after the arena's last doubling; anything larger
/// was not built by ingest's bounds and is freed rather than kept for good.
const SPARE_BATCH_BYTES_MAX: usize = 2 << 20;

/// Spare batches that no request took for a whole interval this long are freed
/// ([`App::trim_spare_batches`]). After a burst each of the concurrent requests left one
/// behind, up to ~1.4 MiB each (a day of 64 nodes written over 8 connections left 5 MB, 0.16
/// bytes per sample); under steady load the batches are taken again well within a second.
pub const SPARE_BATCH_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Emptied batches kept for the next requests: a batch holds up to
/// [`ingest::BATCH_SAMPLES_MAX`] samples, and allocating that afresh for every request costs
/// page faults on the hot path.
#[derive(Debug, Default)]
struct BatchPool(parking_lot::Mutex<SpareBatches>);

#[derive(Debug, Default)]
struct SpareBatches {
    /// Most recently returned last.
    batches: Vec<WriteBatch>,
    /// The fewest batches spare since the last trim: the oldest this many were not taken.
    idle: usize,
}

impl BatchPool {
    fn take(&self) -> WriteBatch {
        let mut spare = self.0.lock();
        let batch = spare.batches.pop().unwrap_or_default();
        spare.idle = spare.idle.min(spare.batches.len());
        batch
    }

    fn give(&self, mut batch: WriteBatch) {
        if batch.capacity_bytes() > SPARE_BATCH_BYTES_MAX {
            return;
        }
        batch.clear();
        let mut spare = self.0.lock();
        if spare.batches.len() < SPARE_BATCHES_MAX {
            spare.batches.push(batch);
        }
    }

    /// Frees the batches no request took since the last trim.
    fn trim(&self) {
        let freed: Vec<WriteBatch> = {
            let mut spare = self.0.lock();
            let idle = spare.idle.min(spare.batches.len());
            let freed = spare.batches.drain(..idle).collect();
            spare.idle = spare.batches.len();
            freed
        };
        // Freed outside the lock.
        drop(freed);
    }

    fn bytes(&self) -> usize {
        let spare = self.0.lock();
        spare.batches.iter().map(WriteBatch::capacity_bytes).sum()
    }
}

/// The configured key is not an Ed25519 public key, or a weak one.
#[derive(Debug, thiserror::Error)]
#[error(
    "main.jwt-public-key is not a valid Ed25519 public key, or is one of small order \
     (anyone could sign tokens for it)"
)]
pub struct InvalidPublicKey;

impl App {
    pub fn new(
        store: Arc<Store>,
        durability: Arc<Durability>,
        config: ServerConfig,
    ) -> Result<Self, InvalidPublicKey> {
        let auth = match &config.jwt_public_key {
            Some(key) => {
                Some(Authenticator::new(key, config.jwt_roles.clone()).ok_or(InvalidPublicKey)?)
            }
            None => None,
        };
        let key_cache = Arc::new(keycache::KeyCache::new(config.ingest.line.clone()));
        Ok(Self {
            store,
            durability,
            key_cache,
            cpu: Arc::new(tokio::sync::Semaphore::new(
                config.concurrent_queries.max(1),
            )),
            config,
            telemetry: Telemetry::new(),
            auth,
            reject_log: LogLimiter::new(10),
            drop_log: LogLimiter::new(10),
            spare_batches: BatchPool::default(),
            forwarding: std::sync::OnceLock::new(),
            archive: std::sync::OnceLock::new(),
        })
    }

    /// Lets queries read `archive` for ranges older than memory.
    pub fn attach_archive(&self, archive: strata_archive::Archive) {
        let _ = self.archive.set(archive);
    }

    pub fn archive(&self) -> Option<&strata_archive::Archive> {
        self.archive.get()
    }

    /// Starts forwarding to `endpoints` from the WAL (after recovery, before the first
    /// snapshot could delete segments an endpoint still needs).
    pub fn start_forwarding(
        &self,
        endpoints: &[strata_forward::EndpointConfig],
        recovery: &durability::RecoveryReport,
    ) -> Result<(), strata_forward::Error> {
        let state = self.durability.data_directory().join("remote-write");
        if endpoints.is_empty() {
            strata_forward::warn_about_orphans(&state, endpoints);
            return Ok(());
        }
        let (Some(committed), Some(retention)) =
            (self.durability.committed(), self.durability.retention())
        else {
            return Err(strata_forward::Error::Io(
                "remote write reads the write-ahead log, which is off (wal.fsync: off)".into(),
            ));
        };
        let log = strata_forward::LogHandles {
            directory: self.durability.wal_directory(),
            next_sequence: recovery.replay.next_sequence,
            committed,
            retention,
        };
        let forwarding =
            strata_forward::Forwarding::start(endpoints, log, &state, &self.telemetry.remote)?;
        let _ = self.forwarding.set(forwarding);
        Ok(())
    }

    /// Stops forwarding, writing every endpoint's cursor.
    pub async fn stop_forwarding(&self) {
        if let Some(forwarding) = self.forwarding.get() {
            forwarding.shutdown().await;
        }
    }

    pub fn forwarding_status(&self) -> Vec<strata_forward::Status> {
        self.forwarding
            .get()
            .map(strata_forward::Forwarding::status)
            .unwrap_or_default()
    }

    /// Makes a decoded batch durable (WAL, under the fsync policy) and then part of the store.
    /// Returns the emptied batch for reuse. A WAL failure applies nothing and is answered 503:
    /// the client retries, and nothing unacknowledged was promised. Samples admission
    /// removed before the WAL append are counted as dropped either way (a retry counts
    /// them again, as it sends them again).
    pub async fn commit(
        &self,
        batch: WriteBatch,
        now_s: i64,
    ) -> Result<WriteBatch, (ApiError, WriteBatch)> {
        if batch.is_empty() {
            return Ok(batch);
        }
        let Commit {
            report,
            error,
            mut batch,
        } = self.durability.commit(&self.store, batch, now_s).await;
        batch.clear();
        self.telemetry.samples_written.inc_by(report.written as u64);
        let dropped = report.dropped.total();
        if dropped > 0 {
            self.telemetry.record_drops(&report.dropped);
            if let Some(suppressed) = self.drop_log.allow(now_s) {
                tracing::warn!(
                    unknown_metric = report.dropped.unknown_metric,
                    outside_retention = report.dropped.outside_retention,
                    archived = report.dropped.archived,
                    future = report.dropped.future,
                    over_limits = report.dropped.over_limits(),
                    memory_cap = report.dropped.memory_cap,
                    suppressed,
                    "samples not stored (counted in strata_ingest_samples_dropped_total)"
                );
            }
        }
        match error {
            Some(error) => Err((ApiError::Unavailable(error.to_string()), batch)),
            None => Ok(batch),
        }
    }

    /// Runs CPU-heavy read work (a query, a healthcheck, a dump) on a blocking thread, so
    /// that it never holds an async worker, at most [`ServerConfig::concurrent_queries`] at a
    /// time. Waits for a turn until `deadline` (see [`App::turn_deadline`]), then answers 503.
    pub async fn compute<T: Send + 'static>(
        &self,
        deadline: tokio::time::Instant,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = match tokio::time::timeout_at(deadline, self.cpu.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => {
                self.telemetry.compute_refused.inc();
                return Err(ApiError::Busy(format!(
                    "{} queries are being computed and none finished within half the \
                     request timeout (limits.concurrent-queries); retry later",
                    self.config.concurrent_queries
                )));
            }
        };
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))
    }

    /// The deadline of a request that starts now.
    pub fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.config.ingest.request_timeout
    }

    /// How long a request that starts now waits for a turn to [`App::compute`]: half the
    /// request timeout, so that a request refused for want of a turn is told so (503, retry)
    /// rather than timing out (408).
    pub fn turn_deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.config.ingest.request_timeout / 2
    }

    /// An empty batch, reused if one is spare.
    pub fn take_batch(&self) -> WriteBatch {
        self.spare_batches.take()
    }

    /// Keeps an emptied batch for reuse, unless it is too large to keep.
    pub fn give_batch(&self, batch: WriteBatch) {
        self.spare_batches.give(batch);
    }

    /// Frees the spare batches no request took since the previous call; called every
    /// [`SPARE_BATCH_IDLE`], so that a burst's batches do not stay for good.
    pub fn trim_spare_batches(&self) {
        self.spare_batches.trim();
    }

    fn record_rejections(&self, decoder: &LineDecoder, source: &str, now_s: i64) {
        let total = decoder.rejected_total();
        if total == 0 {
            return;
        }
        for (reason, count) in RejectReason::ALL.iter().zip(decoder.rejected) {
            if count > 0 {
                self.telemetry
                    .lines_rejected
                    .get_or_create(&ReasonLabel {
                        reason: reason.label(),
                    })
                    .inc_by(count);
            }
        }
        if let Some(suppressed) = self.reject_log.allow(now_s) {
            let first = decoder
                .first_rejected
                .first()
                .map(|r| format!("line {}: {}", r.line, r.reason))
                .unwrap_or_default();
            tracing::warn!(
                source,
                rejected = total,
                lines = decoder.lines,
                suppressed,
                first,
                "write request had invalid lines"
            );
        }
    }
}

/// Unix seconds now.
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// All routes, with authentication and request metrics.
pub fn router(app: Arc<App>) -> Router {
    let body_limit = axum::extract::DefaultBodyLimit::max(app.config.request_body_bytes_max);
    // The write handler keeps its own deadline (its 408 says how many lines were stored).
    let deadline = middleware::from_fn_with_state(app.clone(), within_deadline);
    let reads = Router::new()
        .route("/api/query", get(query::query).post(query::query))
        .route("/api/query/", get(query::query).post(query::query))
        .route("/api/debug", get(admin::debug))
        .route("/api/debug/", get(admin::debug))
        .route("/api/remote-write", get(admin::remote_write))
        .route(
            "/api/healthcheck",
            get(admin::healthcheck).post(admin::healthcheck),
        )
        .route(
            "/api/healthcheck/",
            get(admin::healthcheck).post(admin::healthcheck),
        )
        .layer(deadline.clone())
        .layer(middleware::from_fn_with_state(
            (app.clone(), Access::Read),
            authenticate,
        ));
    let free = Router::new()
        .route("/api/free", post(admin::free))
        .route("/api/free/", post(admin::free))
        .layer(deadline);
    let writes = Router::new()
        .route("/api/write", post(ingest::write))
        .route("/api/write/", post(ingest::write))
        .merge(free)
        .layer(middleware::from_fn_with_state(
            (app.clone(), Access::Write),
            authenticate,
        ));
    let api = writes.merge(reads);
    // InfluxDB's routes answer in InfluxDB's shapes, their 401 included, so they sit outside
    // `authenticate` with their own token extraction.
    let influx_v1 = Router::new()
        .route("/write", post(influx::write_v1))
        .route("/query", get(influx::query).post(influx::query))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            influx::authenticate_v1,
        ));
    let influx_v2 = Router::new()
        .route("/api/v2/write", post(influx::write_v2))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            influx::authenticate_v2,
        ));
    Router::new()
        .merge(api)
        .merge(influx_v1)
        .merge(influx_v2)
        .route("/ping", get(influx::ping))
        .route("/health", get(influx::health))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .layer(body_limit)
        .with_state(app)
}

/// Checks the bearer token of an `/api/` request for a route of class `access`: 401 (plain
/// text, cc-metric-store's) for a missing or invalid token, 403 (JSON) for a valid one
/// without a role `main.jwt-roles` asks for.
async fn authenticate(
    State((app, access)): State<(Arc<App>, Access)>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(auth) = &app.auth {
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(error) = auth.check(header, access, now_s()) {
            tracing::debug!(%error, "request refused");
            return match error {
                AuthError::MissingRole(_) => ApiError::Forbidden(error.to_string()),
                _ => ApiError::Unauthorized(error.to_string()),
            }
            .into_response();
        }
    }
    next.run(request).await
}

/// Answers 408 when a request has not produced its response (body received, turn waited
/// for, answer computed) within `request-timeout`: a body sent a byte at a time held its
/// connection for as long as the client liked. A streamed response, once started, has its own
/// deadline.
async fn within_deadline(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let timeout = app.config.ingest.request_timeout;
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error_response(
            StatusCode::REQUEST_TIMEOUT,
            &format!("request not completed within {timeout:?} (limits.request-timeout)"),
        ),
    }
}

/// Longest error text taken over from a response that axum or a handler produced as plain
/// text (axum's rejection messages are one line).
const ERROR_TEXT_BYTES_MAX: usize = 4096;

/// Longest part of a request path echoed in a 404 or 405 message.
const PATH_ECHO_BYTES_MAX: usize = 128;

/// Gives every error response cc-metric-store's JSON error shape (COMPAT.md §1.3): unknown
/// routes (404), wrong methods (405) and axum's own extractor rejections (a query string that
/// does not deserialize, a body over [`ServerConfig::request_body_bytes_max`]) come out of
/// axum as plain text or empty. The 401 of authentication stays plain text on purpose
/// ([`error::PlainTextError`]); the InfluxDB routes' errors are JSON already and pass
/// unchanged. Other headers (`Allow` on a 405) are kept.
async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error())
        || is_json
        || response.extensions().get::<PlainTextError>().is_some()
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, ERROR_TEXT_BYTES_MAX)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let mut path = path;
    if path.len() > PATH_ECHO_BYTES_MAX {
        let mut end = PATH_ECHO_BYTES_MAX;
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        path.truncate(end);
        path.push('…');
    }
    let message = match (text.trim(), status) {
        ("", StatusCode::NOT_FOUND) => format!("no endpoint {method} {path}"),
        ("", StatusCode::METHOD_NOT_ALLOWED) => format!("method {method} not allowed on {path}"),
        ("", _) => status.canonical_reason().unwrap_or("error").to_owned(),
        (text, _) => text.to_owned(),
    };
    let mut json = error_response(status, &message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().append(name.clone(), value.clone());
        }
    }
    json
}

/// Counts responses and their latency per route.
async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = route_label(request.extensions().get::<MatchedPath>());
    let started = Instant::now();
    let response = next.run(request).await;
    app.telemetry
        .request_seconds
        .get_or_create(&RouteLabel { route })
        .observe(started.elapsed().as_secs_f64());
    app.telemetry
        .responses
        .get_or_create(&ResponseLabel {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// A bounded label set: the known routes, everything else as `other`.
fn route_label(path: Option<&MatchedPath>) -> &'static str {
    let path = path.map_or("", |p| p.as_str());
    match path.trim_end_matches('/') {
        "/api/write" => "write",
        "/api/query" => "query",
        "/api/free" => "free",
        "/api/debug" => "debug",
        "/api/healthcheck" => "healthcheck",
        "/metrics" => "metrics",
        "/healthz" => "healthz",
        "/write" => "influx_v1",
        "/api/v2/write" => "influx_v2",
        "/query" => "influx_query",
        "/ping" => "influx_ping",
        "/health" => "influx_health",
        _ => "other",
    }
}

/// Liveness that includes the WAL: a log that refuses writes makes every write fail, so the
/// process is not healthy even though it answers.
async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.durability.wal_poisoned() {
        None => "ok\n".into_response(),
        Some(reason) => ApiError::Unavailable(format!(
            "the write-ahead log refuses writes until restart: {reason}"
        ))
        .into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let durability = &app.durability;
    let healthy = durability.wal_poisoned().is_none();
    if let Some(archive) = app.archive() {
        app.telemetry.record_archive_reads(archive.stats());
    }
    app.telemetry
        .spare_batch_bytes
        .set(app.spare_batches.bytes() as i64);
    app.telemetry.record_key_cache(app.key_cache.stats());
    let text = app
        .telemetry
        .render(&app.store, durability.wal_stats(), healthy);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_store::LevelName;

    #[test]
    fn oversized_batches_are_not_kept_for_reuse() {
        let pool = BatchPool::default();
        let mut small = WriteBatch::new();
        small.push("c", "h", [LevelName::NONE; 2], "m", 1, 1.0);
        pool.give(small);
        let mut large = WriteBatch::new();
        let name = "x".repeat(SPARE_BATCH_BYTES_MAX);
        large.push(&name, "h", [LevelName::NONE; 2], "m", 1, 1.0);
        pool.give(large);
        let kept = pool.0.lock();
        assert_eq!(kept.batches.len(), 1);
        assert!(
            kept.batches
                .iter()
                .all(|b| b.is_empty() && b.capacity_bytes() <= SPARE_BATCH_BYTES_MAX)
        );
    }

    fn batch_of(samples: usize) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for t in 0..samples {
            batch.push("c", "h", [LevelName::NONE; 2], "m", t as i64, 1.0);
        }
        batch
    }

    #[test]
    fn spare_batches_no_request_took_for_an_interval_are_freed() {
        // Issue 10: a burst over four connections leaves four spare batches.
        let pool = BatchPool::default();
        for _ in 0..4 {
            pool.give(batch_of(100));
        }
        assert!(pool.bytes() > 0);
        // They came back during this interval: kept for now.
        pool.trim();
        assert_eq!(pool.0.lock().batches.len(), 4);
        // Two requests in the next interval take one batch at a time: three stayed idle.
        pool.give(pool.take());
        pool.give(pool.take());
        pool.trim();
        assert_eq!(pool.0.lock().batches.len(), 1);
        // Nothing took the last one for a whole interval.
        pool.trim();
        assert_eq!(pool.0.lock().batches.len(), 0);
        assert_eq!(pool.bytes(), 0);
        // Steady load keeps what it uses.
        pool.give(batch_of(100));
        pool.trim();
        pool.give(pool.take());
        let taken = pool.take();
        pool.give(taken);
        pool.trim();
        assert_eq!(pool.0.lock().batches.len(), 1);
    }
}
