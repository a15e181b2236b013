//! The accept loop: HTTP/1.1 connections with a header timeout, a connection limit and
//! graceful shutdown.
//!
//! `axum::serve` has neither a header timeout nor a connection limit: idle sockets stayed
//! open for ever, headers trickled in at a byte a second were waited for, and a few hundred
//! sockets under a low `ulimit -n` left no descriptor for `/healthz` or a snapshot.

use crate::App;
use crate::error::error_response;
use crate::telemetry::LogLimiter;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits on client connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most open connections; one more is answered 503 and closed at once.
    pub connections_max: usize,
    /// Longest wait for the headers of a request, which is also the longest a kept-alive
    /// connection stays open between requests.
    pub header_timeout: Duration,
}

/// Pause after a failed `accept` (out of descriptors, typically): retrying at once would
/// spin, and the condition clears when connections close.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, closes idle
/// connections, and returns once every request in flight has been answered, or after
/// [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let router = crate::router(app.clone());
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let refusal = refusal(limits.connections_max).await;
    let graceful = GracefulShutdown::new();
    let refusal_log = LogLimiter::new(10);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    app.telemetry.accept_errors.inc();
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            app.telemetry.connections_refused.inc();
            // Best effort and never waiting: the socket's send buffer is empty.
            let _ = stream.try_write(&refusal);
            if let Some(suppressed) = refusal_log.allow(crate::now_s()) {
                tracing::warn!(
                    connections_max = limits.connections_max,
                    suppressed,
                    "connection refused: limits.connections are open \
                     (counted in strata_http_connections_refused_total)"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        let app = app.clone();
        app.telemetry.connections_open.inc();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            app.telemetry.connections_open.dec();
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = app.telemetry.connections_open.get(),
            "connections still open after the shutdown grace period; shutting down without them"
        );
    }
}

/// Longest wait at shutdown for requests in flight. A client that sends its header or body
/// slowly would otherwise hold the shutdown for up to `header-timeout` or `request-timeout`,
/// past a service manager's stop timeout, and the final snapshot would never be written
/// (found in review). What such a request had not committed was never acknowledged.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The whole HTTP response to a connection over the limit: cc-metric-store's JSON error.
async fn refusal(connections_max: usize) -> Vec<u8> {
    let response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!(
            "too many open connections (limits.connections is {connections_max}); retry later"
        ),
    );
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let mut bytes = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}
