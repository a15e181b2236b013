//! Every failure an endpoint can answer with, mapped to a status and body in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One rejected line of a write request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RejectedLine {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug)]
pub enum ApiError {
    /// 400 with cc-metric-store's error JSON.
    BadRequest(String),
    /// 400 listing rejected lines (COMPAT.md decision 2).
    LinesRejected {
        rejected: u64,
        lines: u64,
        first: Vec<RejectedLine>,
    },
    /// 413: the body is over the configured limit. Lines before the limit were stored.
    PayloadTooLarge { limit_bytes: u64, lines_stored: u64 },
    /// 401 with a plain-text reason, as cc-metric-store answers.
    Unauthorized(String),
    /// 403: a valid token without a role `main.jwt-roles` asks for (Strata's).
    Forbidden(String),
    /// 503: the write-ahead log cannot take writes; nothing of the failed batch was stored.
    Unavailable(String),
    /// 408: the body did not arrive within the request timeout.
    Timeout { lines_stored: u64 },
    /// 503: too much work in progress; the request was not started.
    Busy(String),
    /// 500: a computation failed unexpectedly (a bug).
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'a str,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<&'a [RejectedLine]>,
}

/// Decodes a JSON request body the way cc-metric-store's Go decoder does: object keys match
/// field names case-insensitively (`"Metric"` is `metric`). Keys are lower-cased before
/// decoding; every field name Strata reads is lower case.
pub fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    fn lower_keys(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut value) in entries {
                    lower_keys(&mut value);
                    // An exact (lower-case) key wins over a differently cased duplicate, as in Go.
                    let lowered = key.to_ascii_lowercase();
                    if lowered == key || !map.contains_key(&lowered) {
                        map.insert(lowered, value);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(lower_keys),
            _ => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(body)?;
    lower_keys(&mut value);
    serde_json::from_value(value)
}

/// A JSON response body with cc-metric-store's trailing newline.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let mut text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}

/// cc-metric-store's error JSON (`{"status":"Bad Request","error":"…"}`) for any status.
pub fn error_response(status: StatusCode, error: &str) -> Response {
    error_json(status, error, None)
}

/// Marks an error response whose plain-text body is deliberate (401, as cc-metric-store
/// answers it), so that [`crate::json_errors`] leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct PlainTextError;

fn error_json(status: StatusCode, error: &str, rejected: Option<&[RejectedLine]>) -> Response {
    let body = ErrorBody {
        status: status.canonical_reason().unwrap_or("Error"),
        error,
        rejected,
    };
    json_response(status, &body)
}

impl ApiError {
    /// The status and the one-line message of this error; each API wraps them in its own
    /// body shape (cc-metric-store's here, InfluxDB's in [`crate::influx`]).
    pub fn status_and_message(&self) -> (StatusCode, String) {
        match self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, message.clone()),
            Self::LinesRejected {
                rejected, lines, ..
            } => (
                StatusCode::BAD_REQUEST,
                format!("{rejected} of {lines} lines rejected"),
            ),
            Self::PayloadTooLarge {
                limit_bytes,
                lines_stored,
            } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body exceeds the limit of {limit_bytes} bytes; \
                     the first {lines_stored} lines were stored"
                ),
            ),
            Self::Unavailable(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not stored: {reason}"),
            ),
            Self::Timeout { lines_stored } => (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within the request timeout; \
                     the first {lines_stored} lines were stored"
                ),
            ),
            Self::Busy(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason.clone()),
            Self::Internal(reason) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error: {reason}"),
            ),
            Self::Unauthorized(reason) => (StatusCode::UNAUTHORIZED, reason.clone()),
            Self::Forbidden(reason) => (StatusCode::FORBIDDEN, reason.clone()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = self.status_and_message();
        match self {
            Self::LinesRejected { first, .. } => error_json(status, &message, Some(&first)),
            Self::Unauthorized(_) => (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                axum::Extension(PlainTextError),
                format!("{message}\n"),
            )
                .into_response(),
            _ => error_json(status, &message, None),
        }
    }
}
