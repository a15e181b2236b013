//! The accept loop: HTTP/1.1 connections, plain or over TLS, with a header timeout, a
//! connection limit and graceful shutdown.
//!
//! `axum::serve` has neither a header timeout nor a connection limit: idle sockets stayed
//! open for ever, headers trickled in at a byte a second were waited for, and a few hundred
//! sockets under a low `ulimit -n` left no descriptor for `/healthz` or a snapshot.

use crate::App;
use crate::error::error_response;
use crate::telemetry::{LogLimiter, ReasonLabel};
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

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
/// [`SHUTDOWN_GRACE`]. With `tls`, every connection starts with a TLS handshake, which holds
/// a connection slot and must end within the header timeout.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let router = crate::router(app.clone());
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let refusal = raw_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!(
            "too many open connections (limits.connections is {}); retry later",
            limits.connections_max
        ),
    )
    .await;
    let plain_http_answer: Arc<[u8]> = raw_response(StatusCode::BAD_REQUEST, PLAIN_HTTP_ERROR)
        .await
        .into();
    let graceful = GracefulShutdown::new();
    // Tells connections still in their TLS handshake that shutdown began: they have no
    // request yet and close, as hyper closes an idle connection, instead of holding the
    // shutdown for up to the header timeout.
    let (stop, stopping) = tokio::sync::watch::channel(());
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
            // Best effort and never waiting: the socket's send buffer is empty. A TLS client
            // would take plain bytes for a broken record: it gets the closed connection.
            if tls.is_none() {
                let _ = stream.try_write(&refusal);
            }
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
        // Taken now, before shutdown can begin: shutdown then waits for this connection,
        // handshake included, and a connection watched after it began is closed when idle.
        let watcher = graceful.watcher();
        let service = TowerToHyperService::new(router.clone());
        let http = http.clone();
        let tls = tls.clone();
        let plain_http_answer = plain_http_answer.clone();
        let mut stopping = stopping.clone();
        let app = app.clone();
        app.telemetry.connections_open.inc();
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
                Some(acceptor) => {
                    let shaken = tokio::select! {
                        shaken = handshake(
                            &acceptor,
                            stream,
                            limits.header_timeout,
                            &plain_http_answer,
                        ) => Some(shaken),
                        _ = stopping.changed() => None,
                    };
                    match shaken {
                        None => Ok(()),
                        Some(Ok(stream)) => {
                            let connection = http.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(connection).await
                        }
                        Some(Err(reason)) => {
                            app.telemetry
                                .tls_handshake_failures
                                .get_or_create(&ReasonLabel { reason })
                                .inc();
                            Ok(())
                        }
                    }
                }
            };
            if let Err(error) = served {
                tracing::debug!(%error, "connection ended with an error");
            }
            app.telemetry.connections_open.dec();
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(());
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

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Most bytes of a plain HTTP request read (and dropped) after answering it, so that the
/// close does not reset the connection before the client has read the answer.
const PLAIN_HTTP_DRAIN_BYTES_MAX: usize = 64 << 10;

/// The answer to plain HTTP on the HTTPS port (Go's servers, cc-metric-store's included,
/// answer such a request 400 too).
const PLAIN_HTTP_ERROR: &str = "this port serves HTTPS: the client sent a plain HTTP request";

/// The TLS handshake, all within `timeout`. A client speaking plain HTTP (its first byte an
/// upper-case letter, as in `GET`) gets `plain_http_answer` instead of a TLS alert it cannot
/// show. The error is the reason label of `strata_tls_handshake_failures_total`.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    timeout: Duration,
    plain_http_answer: &[u8],
) -> Result<TlsStream<TcpStream>, &'static str> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut first))
        .await
        .map_err(|_| "timeout")?;
    if matches!(peeked, Ok(1)) && first[0] != TLS_HANDSHAKE_RECORD && first[0].is_ascii_uppercase()
    {
        let _ =
            tokio::time::timeout_at(deadline, answer_plain_http(stream, plain_http_answer)).await;
        return Err("plain_http");
    }
    tokio::time::timeout_at(deadline, acceptor.accept(stream))
        .await
        .map_err(|_| "timeout")?
        .map_err(|error| {
            tracing::debug!(%error, "TLS handshake failed");
            "error"
        })
}

/// Writes the answer, ends the sending side, and reads what the client still sends (up to
/// [`PLAIN_HTTP_DRAIN_BYTES_MAX`]) until it closes.
async fn answer_plain_http(mut stream: TcpStream, answer: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.write_all(answer).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < PLAIN_HTTP_DRAIN_BYTES_MAX {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(read) => drained += read,
        }
    }
}

/// Longest wait at shutdown for requests in flight. A client that sends its header or body
/// slowly would otherwise hold the shutdown for up to `header-timeout` or `request-timeout`,
/// past a service manager's stop timeout, and the final snapshot would never be written
/// (found in review). What such a request had not committed was never acknowledged.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A whole HTTP response with cc-metric-store's JSON error, for a connection answered
/// before (or instead of) HTTP: one over the limit, plain HTTP on the HTTPS port.
async fn raw_response(status: StatusCode, message: &str) -> Vec<u8> {
    let response = error_response(status, message);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let mut bytes = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}
