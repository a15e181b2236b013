//! InfluxDB-compatible writes: `POST /write` (the 1.x API) and `POST /api/v2/write` (the 2.x
//! API), so that Telegraf, Vector and InfluxDB client libraries can send to Strata unchanged.
//!
//! Both go through [`ingest::ingest_body`], the one decode → WAL → memory path of
//! `/api/write`: same limits, gzip, streaming and partial writes (every valid line is stored).
//! What differs is the outside: the query parameters (`db` / `bucket` name the default
//! cluster), the precision spellings, `204 No Content` on success, InfluxDB's error bodies
//! (`{"error":…}` for 1.x, `{"code":…,"message":…}` for 2.x) and where the token may be.
//!
//! Besides the writes: `GET|HEAD /ping` and `GET /health` (no auth, as in InfluxDB) for clients
//! that check the server first, and `POST /query` answering `CREATE DATABASE` with InfluxDB's
//! empty success (Telegraf sends it at start unless `skip_database_creation = true`); every other
//! query is refused, queries go to `/api/query`.

use crate::auth::{Access, AuthError, basic_password, scheme_token};
use crate::error::{ApiError, json_response};
use crate::ingest::{self, Precision, WriteRequest, query_params};
use crate::{App, now_s};
use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::json;
use std::borrow::Cow;
use std::sync::Arc;

/// The version `/ping` and `/health` report: InfluxDB 1.8 is the release that serves both
/// APIs' write endpoints, as Strata does; the suffix says what answers.
pub const INFLUXDB_VERSION: &str = "1.8.10-strata";

/// Largest `/query` body: a form with one `CREATE DATABASE` statement is a few dozen bytes,
/// and nothing else is answered there.
pub const QUERY_FORM_BYTES_MAX: usize = 64 * 1024;

/// Which InfluxDB API a request came in through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// 1.x: `/write`, `/query`.
    V1,
    /// 2.x: `/api/v2/write`.
    V2,
}

impl Api {
    /// Names the sender in the log line about rejected lines.
    fn source(self) -> &'static str {
        match self {
            Self::V1 => "influx_v1",
            Self::V2 => "influx_v2",
        }
    }

    /// The query parameter naming the default cluster (database or bucket in InfluxDB).
    fn cluster_key(self) -> &'static str {
        match self {
            Self::V1 => "db",
            Self::V2 => "bucket",
        }
    }

    /// The `precision` values this API documents. 1.x also takes minutes and hours (the
    /// `influxdb` Python client offers them); `/api/write` keeps cc-metric-store's set.
    fn precision(self, text: &str) -> Option<Precision> {
        match (self, text) {
            (Self::V1, "m") => Some(Precision::Minutes),
            (Self::V1, "h") => Some(Precision::Hours),
            (Self::V1, _) | (Self::V2, "ns" | "us" | "ms" | "s") => Precision::parse(text),
            (Self::V2, _) => None,
        }
    }

    /// [`Api::cluster_key`] as an error message names it.
    fn cluster_parameter(self) -> &'static str {
        match self {
            Self::V1 => "query parameter 'db'",
            Self::V2 => "query parameter 'bucket'",
        }
    }

    fn precisions(self) -> &'static str {
        match self {
            Self::V1 => "n, ns, u, us, µs, ms, s, m or h",
            Self::V2 => "ns, us, ms or s",
        }
    }

    /// The token of a request, from where this API's clients put it. 1.x: `Authorization:
    /// Bearer|Token <jwt>`, `Authorization: Basic base64(user:<jwt>)`, else the `p` query
    /// parameter; 2.x: `Authorization: Token|Bearer <jwt>`. A header that is there but holds
    /// no token is not overridden by `p`: the request is refused.
    fn token<'a>(
        self,
        authorization: Option<&'a HeaderValue>,
        query: Option<&str>,
    ) -> Option<Cow<'a, str>> {
        if let Some(value) = authorization {
            let value = value.to_str().ok()?;
            let token = scheme_token(value, &["Bearer", "Token"]).map(Cow::Borrowed);
            return match self {
                Self::V1 => token.or_else(|| basic_password(value).map(Cow::Owned)),
                Self::V2 => token,
            };
        }
        match self {
            Self::V1 => {
                let [password] = query_params(query?, ["p"]).ok()?;
                password.map(Cow::Owned)
            }
            Self::V2 => None,
        }
    }
}

/// An error answered in InfluxDB's shape for its API.
#[derive(Debug)]
pub struct InfluxError {
    api: Api,
    status: StatusCode,
    message: String,
}

impl InfluxError {
    fn new(api: Api, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            api,
            status,
            message: message.into(),
        }
    }

    /// Strata's error with its status, in InfluxDB's words where InfluxDB has them: rejected
    /// lines are a "partial write" naming the first one.
    fn from_api(api: Api, error: ApiError) -> Self {
        let (status, message) = error.status_and_message();
        let message = match &error {
            ApiError::LinesRejected { first, .. } => {
                let first = first
                    .first()
                    .map(|line| format!("; first: line {}: {}", line.line, line.reason))
                    .unwrap_or_default();
                format!("partial write: {message}{first}")
            }
            _ => message,
        };
        Self::new(api, status, message)
    }

    /// The 401: InfluxDB's words, nothing about why the token failed.
    fn unauthorized(api: Api) -> Self {
        let message = match api {
            Api::V1 => "authorization failed",
            Api::V2 => "unauthorized access",
        };
        Self::new(api, StatusCode::UNAUTHORIZED, message)
    }
}

/// InfluxDB 2.x's error `code` for a status (its `errors.go` names).
fn v2_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "invalid",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not found",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "request too large",
        // 2.x has no code for a timeout; both mean "retry later" to a client.
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "internal error",
    }
}

impl IntoResponse for InfluxError {
    fn into_response(self) -> Response {
        let body = match self.api {
            Api::V1 => json!({ "error": self.message }),
            Api::V2 => json!({ "code": v2_code(self.status), "message": self.message }),
        };
        json_response(self.status, &body)
    }
}

/// `POST /write`.
pub async fn write_v1(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, InfluxError> {
    write(&app, Api::V1, query.as_deref(), &headers, body).await
}

/// `POST /api/v2/write`.
pub async fn write_v2(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, InfluxError> {
    write(&app, Api::V2, query.as_deref(), &headers, body).await
}

/// Parses the parameters of `api` (others, such as `rp`, `consistency`, `u`, `org` and
/// `orgID`, are ignored), then ingests exactly as `/api/write` does.
async fn write(
    app: &App,
    api: Api,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<StatusCode, InfluxError> {
    let now_s = now_s();
    let fail = |error| InfluxError::from_api(api, error);
    let [cluster, precision] =
        query_params(query.unwrap_or(""), [api.cluster_key(), "precision"]).map_err(fail)?;
    let cluster = cluster.unwrap_or_default();
    // InfluxDB 2.x refuses a write without a bucket; 1.x's `db` is optional here, like
    // `/api/write`'s `cluster` (a `cluster` tag in each line is enough).
    if api == Api::V2 && cluster.is_empty() {
        return Err(InfluxError::new(
            api,
            StatusCode::BAD_REQUEST,
            "bucket is required",
        ));
    }
    // No precision: detection by magnitude, which reads nanoseconds (InfluxDB's default) as
    // nanoseconds, and seconds from cc-metric-store senders as seconds.
    let precision = match precision.as_deref() {
        None | Some("") => Precision::Auto,
        Some(text) => api.precision(text).ok_or_else(|| {
            InfluxError::new(
                api,
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid precision {text:?}; valid precision units are {}",
                    api.precisions()
                ),
            )
        })?,
    };
    let request = WriteRequest {
        default_cluster: &cluster,
        cluster_fallback: api.cluster_parameter(),
        precision,
        source: api.source(),
    };
    ingest::ingest_body(app, request, headers, body, now_s)
        .await
        .and_then(|outcome| outcome.into_result(app.config.ingest.body_bytes_max))
        .map_err(fail)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Authentication of the 1.x routes (`/write`, `/query`) when a JWT key is configured.
pub async fn authenticate_v1(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    authenticate(&app, Api::V1, request, next).await
}

/// Authentication of `/api/v2/write` when a JWT key is configured.
pub async fn authenticate_v2(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    authenticate(&app, Api::V2, request, next).await
}

/// Checks the token with the same [`crate::auth::Authenticator`] (and cache) as `/api/`. The
/// reason of a refusal is logged at debug level only, never the token, and the 401 does not
/// say it. Every InfluxDB route is a write route for `main.jwt-roles` (`/query` only answers
/// the `CREATE DATABASE` writers send); a valid token without the role is a 403 naming the
/// key.
async fn authenticate(app: &App, api: Api, request: Request, next: Next) -> Response {
    if let Some(auth) = &app.auth {
        let token = api.token(
            request.headers().get(header::AUTHORIZATION),
            request.uri().query(),
        );
        let verdict = match token {
            Some(token) => auth.check_token(&token, Access::Write, now_s()),
            None => Err(AuthError::MissingBearer),
        };
        if let Err(error) = verdict {
            tracing::debug!(%error, api = api.source(), "request refused");
            return match error {
                AuthError::MissingRole(_) => {
                    InfluxError::new(api, StatusCode::FORBIDDEN, error.to_string())
                }
                _ => InfluxError::unauthorized(api),
            }
            .into_response();
        }
    }
    next.run(request).await
}

/// `GET|HEAD /ping`: InfluxDB's liveness answer, which clients check before writing.
pub async fn ping() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (
                HeaderName::from_static("x-influxdb-version"),
                HeaderValue::from_static(INFLUXDB_VERSION),
            ),
            (
                HeaderName::from_static("x-influxdb-build"),
                HeaderValue::from_static("Strata"),
            ),
        ],
    )
        .into_response()
}

/// `GET /health`: InfluxDB 2.x's health check. Fails (503) when the WAL refuses writes, as
/// `/healthz` does: every write would fail.
pub async fn health(State(app): State<Arc<App>>) -> Response {
    let (status, pass, message) = match app.durability.wal_poisoned() {
        None => (StatusCode::OK, "pass", "ready for writes".to_owned()),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "fail",
            format!("the write-ahead log refuses writes until restart: {reason}"),
        ),
    };
    let body = json!({
        "name": "strata",
        "message": message,
        "status": pass,
        "checks": [],
        "version": INFLUXDB_VERSION,
    });
    json_response(status, &body)
}

/// `GET|POST /query`: only `CREATE DATABASE …` (in `q`, from the query string or a
/// form-encoded body), answered with InfluxDB's empty success and otherwise ignored: a
/// database is a cluster, and clusters need no creating.
pub async fn query(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, InfluxError> {
    let api = Api::V1;
    let fail = |error| InfluxError::from_api(api, error);
    let [mut statement] = query_params(query.as_deref().unwrap_or(""), ["q"]).map_err(fail)?;
    if statement.is_none() {
        let form = read_form(&app, body).await?;
        [statement] = query_params(&form, ["q"]).map_err(fail)?;
    }
    if statement.as_deref().is_some_and(is_create_database) {
        return Ok(json_response(
            StatusCode::OK,
            &json!({ "results": [{ "statement_id": 0 }] }),
        ));
    }
    Err(InfluxError::new(
        api,
        StatusCode::BAD_REQUEST,
        "Strata accepts only writes on its InfluxDB endpoints (and answers CREATE DATABASE \
         without doing anything); query data with /api/query",
    ))
}

/// A form-encoded body of at most [`QUERY_FORM_BYTES_MAX`], within the request timeout.
async fn read_form(app: &App, body: Body) -> Result<String, InfluxError> {
    let api = Api::V1;
    let limit = QUERY_FORM_BYTES_MAX;
    let collected = tokio::time::timeout_at(
        app.deadline(),
        http_body_util::Limited::new(body, limit).collect(),
    )
    .await
    .map_err(|_| {
        InfluxError::new(
            api,
            StatusCode::REQUEST_TIMEOUT,
            "request body not received within the request timeout",
        )
    })?
    .map_err(|error| {
        if error.is::<http_body_util::LengthLimitError>() {
            InfluxError::new(
                api,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds the limit of {limit} bytes"),
            )
        } else {
            InfluxError::new(
                api,
                StatusCode::BAD_REQUEST,
                format!("reading request body failed: {error}"),
            )
        }
    })?;
    String::from_utf8(collected.to_bytes().to_vec())
        .map_err(|_| InfluxError::new(api, StatusCode::BAD_REQUEST, "request body is not UTF-8"))
}

/// One `CREATE DATABASE <name> [WITH …]` statement (keywords in any case, one `;` allowed at
/// the end).
fn is_create_database(statement: &str) -> bool {
    let statement = statement.trim();
    let statement = statement.strip_suffix(';').unwrap_or(statement);
    let mut words = statement.split_whitespace();
    !statement.contains(';')
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("create"))
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("database"))
        && words.next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RejectedLine;
    use base64::Engine;

    fn token(api: Api, authorization: Option<&str>, query: Option<&str>) -> Option<String> {
        let value = authorization.map(|a| HeaderValue::from_str(a).unwrap());
        api.token(value.as_ref(), query).map(Cow::into_owned)
    }

    fn basic(credentials: &[u8]) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }

    #[test]
    fn v1_takes_the_token_from_four_places() {
        let jwt = Some("a.b.c".to_owned());
        assert_eq!(token(Api::V1, Some("Bearer a.b.c"), None), jwt);
        assert_eq!(token(Api::V1, Some("Token a.b.c"), None), jwt);
        assert_eq!(token(Api::V1, Some("token  a.b.c "), None), jwt);
        assert_eq!(token(Api::V1, Some(&basic(b"user:a.b.c")), None), jwt);
        // The password is everything after the first colon; the user may be empty.
        assert_eq!(
            token(Api::V1, Some(&basic(b":a:b")), None).as_deref(),
            Some("a:b")
        );
        assert_eq!(token(Api::V1, None, Some("db=x&p=a.b.c&u=me")), jwt);
        assert_eq!(token(Api::V1, None, Some("p=a%2Eb.c")), jwt);
    }

    #[test]
    fn v1_refuses_what_holds_no_token() {
        for header in [
            basic(b"no colon"),
            "Basic !!!not base64".to_owned(),
            basic(b"user:\xff"),
            "Digest a.b.c".to_owned(),
            "Bearer".to_owned(),
        ] {
            // A header that holds no token is not overridden by `p`.
            assert_eq!(
                token(Api::V1, Some(&header), Some("p=a.b.c")),
                None,
                "{header}"
            );
        }
        for query in ["p=%zz", "p=%FF", "p=1&p=2", "u=x", ""] {
            assert_eq!(token(Api::V1, None, Some(query)), None, "{query}");
        }
        let invalid = HeaderValue::from_bytes(b"Bearer \xff").unwrap();
        assert_eq!(Api::V1.token(Some(&invalid), None), None);
    }

    #[test]
    fn v2_takes_token_or_bearer_only() {
        let jwt = Some("a.b.c".to_owned());
        assert_eq!(token(Api::V2, Some("Token a.b.c"), None), jwt);
        assert_eq!(token(Api::V2, Some("Bearer a.b.c"), None), jwt);
        assert_eq!(token(Api::V2, Some(&basic(b"u:a.b.c")), None), None);
        assert_eq!(token(Api::V2, None, Some("p=a.b.c")), None);
    }

    #[test]
    fn precision_tables_differ_by_api() {
        use Precision::*;
        let v1 = [
            ("n", Nanoseconds),
            ("ns", Nanoseconds),
            ("u", Microseconds),
            ("us", Microseconds),
            ("µs", Microseconds),
            ("ms", Milliseconds),
            ("s", Seconds),
            ("m", Minutes),
            ("h", Hours),
        ];
        for (text, precision) in v1 {
            assert_eq!(Api::V1.precision(text), Some(precision), "{text}");
        }
        let v2 = [
            ("ns", Nanoseconds),
            ("us", Microseconds),
            ("ms", Milliseconds),
            ("s", Seconds),
        ];
        for (text, precision) in v2 {
            assert_eq!(Api::V2.precision(text), Some(precision), "{text}");
        }
        for text in ["n", "u", "µs", "m", "h", "d", "NS", " s"] {
            assert_eq!(Api::V2.precision(text), None, "{text}");
        }
        for text in ["d", "M", "H", "sec", "mn"] {
            assert_eq!(Api::V1.precision(text), None, "{text}");
        }
    }

    fn body(error: InfluxError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let bytes = response_bytes(response);
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn response_bytes(response: Response) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap()
            .to_vec()
    }

    #[test]
    fn errors_map_to_influxdb_shapes() {
        let rejected = || ApiError::LinesRejected {
            rejected: 2,
            lines: 5,
            first: vec![
                RejectedLine {
                    line: 3,
                    reason: "missing host".into(),
                },
                RejectedLine {
                    line: 4,
                    reason: "x".into(),
                },
            ],
        };
        let expected = "partial write: 2 of 5 lines rejected; first: line 3: missing host";
        assert_eq!(
            body(InfluxError::from_api(Api::V1, rejected())),
            (StatusCode::BAD_REQUEST, json!({ "error": expected }))
        );
        assert_eq!(
            body(InfluxError::from_api(Api::V2, rejected())),
            (
                StatusCode::BAD_REQUEST,
                json!({ "code": "invalid", "message": expected })
            )
        );
        let cases = [
            (
                ApiError::PayloadTooLarge {
                    limit_bytes: 10,
                    lines_stored: 1,
                },
                413,
                "request too large",
            ),
            (ApiError::Timeout { lines_stored: 0 }, 408, "unavailable"),
            (ApiError::Unavailable("wal".into()), 503, "unavailable"),
            (ApiError::Busy("busy".into()), 503, "unavailable"),
            (ApiError::Internal("bug".into()), 500, "internal error"),
            (ApiError::BadRequest("bad".into()), 400, "invalid"),
        ];
        for (error, status, code) in cases {
            let (_, message) = error.status_and_message();
            let (v2_status, v2) = body(InfluxError::from_api(Api::V2, error));
            assert_eq!(v2_status.as_u16(), status);
            assert_eq!(v2, json!({ "code": code, "message": message }));
        }
        assert_eq!(
            body(InfluxError::unauthorized(Api::V1)),
            (
                StatusCode::UNAUTHORIZED,
                json!({ "error": "authorization failed" })
            )
        );
        assert_eq!(
            body(InfluxError::unauthorized(Api::V2)),
            (
                StatusCode::UNAUTHORIZED,
                json!({ "code": "unauthorized", "message": "unauthorized access" })
            )
        );
    }

    #[test]
    fn only_create_database_is_a_query_answered() {
        for yes in [
            "CREATE DATABASE telegraf",
            "create database \"telegraf\";",
            "  CREATE  DATABASE x WITH DURATION 1d ",
        ] {
            assert!(is_create_database(yes), "{yes}");
        }
        for no in [
            "",
            "CREATE DATABASE",
            "CREATE DATABASE a; DROP DATABASE a",
            "SELECT * FROM cpu",
            "DROP DATABASE x",
            "CREATE RETENTION POLICY x ON y DURATION 1d REPLICATION 1",
        ] {
            assert!(!is_create_database(no), "{no}");
        }
    }
}
