//! One endpoint's HTTP client: a pooled `reqwest::Client` speaking HTTP/1.1 with keep-alive
//! (one connection per concurrent shard, as Prometheus does since it turned HTTP/2 off for
//! remote write), the remote-write headers, TLS and authentication from the configuration.
//! It sends a body once and classifies the answer into a [`Response`]; what to do about it
//! is `deliver`'s business. Secrets (passwords, tokens, keys) never appear in a log line,
//! an error or a `Debug` output.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine;
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::{EndpointConfig, Protocol};
use crate::error::Error;

/// Most bytes of an error response kept for the log: bodies are for humans and are never
/// parsed (the spec says so), and an unbounded read would let a receiver fill memory.
pub const REASON_BYTES_MAX: usize = 1024;

const SAMPLES_WRITTEN: &str = "x-prometheus-remote-write-samples-written";
const CONTENT_TYPE_V1: &str = "application/x-protobuf";
const CONTENT_TYPE_V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

/// What a send attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// 2xx. `samples_written` is the 2.0 written-count header (None for 1.0, whose receivers
    /// may send a wrong one: Prometheus before 3.8.1 said 0 on success).
    Written { samples_written: Option<u64> },
    /// 5xx, 429 (with `retry-on-http-429`), or no HTTP answer (refused, reset, timed out;
    /// `status` is None then).
    Retry {
        status: Option<u16>,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// 400, 409 and other 4xx not listed elsewhere (and 429 without `retry-on-http-429`):
    /// the receiver will never take this request as it is. `samples_written` is the 2.0
    /// written count (None for 1.0): a 2.0 receiver may have stored the valid samples.
    Rejected {
        status: u16,
        reason: String,
        samples_written: Option<u64>,
    },
    /// 413.
    TooLarge,
    /// 415, or a 2.0 request answered 2xx without the written-count header (a 1.x receiver
    /// that read the body as an empty 1.0 request).
    Unsupported,
    /// 401, 403, 404 and 3xx: only an operator can fix these.
    Misconfigured { status: u16, reason: String },
}

impl Response {
    /// `2xx` … `5xx` or `network`, for `remote_requests_total{code}`.
    pub fn code_class(&self) -> &'static str {
        match self {
            Response::Written { .. } => "2xx",
            Response::Retry { status: None, .. } => "network",
            Response::Retry {
                status: Some(status),
                ..
            }
            | Response::Rejected { status, .. }
            | Response::Misconfigured { status, .. } => match status {
                300..=399 => "3xx",
                400..=499 => "4xx",
                _ => "5xx",
            },
            // A 2xx to a 2.0 request without written counts is counted with 415 as 4xx: in
            // both the request was not taken.
            Response::TooLarge | Response::Unsupported => "4xx",
        }
    }
}

/// One endpoint's connection pool and request settings.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    /// Custom headers and `Authorization` (marked sensitive so it never prints).
    headers: HeaderMap,
    retry_on_http_429: bool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(config: &EndpointConfig) -> Result<Self, Error> {
        let url = reqwest::Url::parse(&config.url).map_err(|e| Error::Invalid {
            what: "url".to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Invalid {
                what: "url".to_string(),
                reason: format!("scheme {} is not http or https", url.scheme()),
            });
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let invalid = |what: &str| Error::Invalid {
                // The value is never echoed: a header can carry a tenant secret.
                what: format!("header {name}"),
                reason: format!("not a valid HTTP header {what}"),
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("name"))?;
            let mut value = HeaderValue::from_str(value).map_err(|_| invalid("value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(authorization) = authorization(config)? {
            headers.insert(header::AUTHORIZATION, authorization);
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("Strata/", env!("CARGO_PKG_VERSION")))
            .http1_only()
            // Redirects are answered as misconfiguration: following one would resend the
            // body (or turn the POST into a GET) somewhere the operator did not name.
            .redirect(reqwest::redirect::Policy::none())
            // Every attempt is ours to count, back off and report.
            .retry(reqwest::retry::never())
            .tcp_nodelay(true);
        let tls = &config.tls;
        if let Some(ca_file) = &tls.ca_file {
            let pem = read_file("tls ca-file", ca_file)?;
            let invalid = |reason: String| Error::Invalid {
                what: format!("tls ca-file {}", ca_file.display()),
                reason,
            };
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| invalid(e.to_string()))?;
            // An empty bundle would make every handshake fail, long after startup.
            if certs.is_empty() {
                return Err(invalid("no PEM certificate in it".to_string()));
            }
            builder = builder.tls_certs_only(certs);
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(cert_file), Some(key_file)) => {
                let mut pem = read_file("tls cert-file", cert_file)?;
                pem.push(b'\n');
                pem.extend(read_file("tls key-file", key_file)?);
                // The error of a key parse is not passed on: it could quote key material.
                let identity = reqwest::Identity::from_pem(&pem).map_err(|_| Error::Invalid {
                    what: "tls cert-file/key-file".to_string(),
                    reason: "not a PEM certificate and private key pair".to_string(),
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(Error::Invalid {
                    what: "tls".to_string(),
                    reason: "cert-file and key-file go together".to_string(),
                });
            }
        }
        if tls.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| Error::Http(e.without_url().to_string()))?;
        Ok(Self {
            http,
            url,
            timeout: config.timeout,
            headers,
            retry_on_http_429: config.queue.retry_on_http_429,
        })
    }

    /// Sends one encoded body; `attempt` 0 is the first try, later ones carry
    /// `Retry-Attempt: <attempt>` as Prometheus sends it.
    pub async fn send(&self, body: Bytes, protocol: Protocol, attempt: u32) -> Response {
        let (content_type, version) = match protocol {
            Protocol::V1 => (CONTENT_TYPE_V1, "0.1.0"),
            Protocol::V2 => (CONTENT_TYPE_V2, "2.0.0"),
        };
        let mut request = self
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .headers(self.headers.clone())
            .header(header::CONTENT_ENCODING, "snappy")
            .header(header::CONTENT_TYPE, content_type)
            .header("x-prometheus-remote-write-version", version)
            .body(body);
        if attempt > 0 {
            request = request.header("retry-attempt", attempt);
        }
        match request.send().await {
            Ok(response) => self.classify(response, protocol).await,
            Err(error) => Response::Retry {
                status: None,
                reason: describe(&error),
                retry_after: None,
            },
        }
    }

    async fn classify(&self, response: reqwest::Response, protocol: Protocol) -> Response {
        let status = response.status().as_u16();
        if response.status().is_success() {
            if protocol == Protocol::V1 {
                return Response::Written {
                    samples_written: None,
                };
            }
            return match samples_written(&response) {
                Some(n) => Response::Written {
                    samples_written: Some(n),
                },
                None => Response::Unsupported,
            };
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        // Only a 2.0 answer's count means anything (1.0 receivers have sent wrong ones).
        let written = samples_written(&response).filter(|_| protocol == Protocol::V2);
        let reason = || async move { format!("HTTP {status}: {}", read_reason(response).await) };
        match status {
            413 => Response::TooLarge,
            415 => Response::Unsupported,
            401 | 403 | 404 | 300..=399 => Response::Misconfigured {
                status,
                reason: reason().await,
            },
            429 if self.retry_on_http_429 => Response::Retry {
                status: Some(status),
                reason: reason().await,
                retry_after,
            },
            500..=599 => Response::Retry {
                status: Some(status),
                reason: reason().await,
                retry_after,
            },
            _ => Response::Rejected {
                status,
                reason: reason().await,
                samples_written: written,
            },
        }
    }
}

/// `X-Prometheus-Remote-Write-Samples-Written`, when present and a number.
fn samples_written(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(SAMPLES_WRITTEN)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// `Authorization` from basic auth or a bearer token file, read once at startup.
fn authorization(config: &EndpointConfig) -> Result<Option<HeaderValue>, Error> {
    let value = match (&config.basic_auth, &config.bearer_token_file) {
        (Some(_), Some(_)) => {
            return Err(Error::Invalid {
                what: "authentication".to_string(),
                reason: "basic-auth and bearer-token-file exclude each other".to_string(),
            });
        }
        (Some(basic), None) => {
            let password = secret(&basic.password_file, "basic-auth password-file")?;
            let credentials = format!("{}:{password}", basic.username);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            )
        }
        (None, Some(path)) => format!("Bearer {}", secret(path, "bearer-token-file")?),
        (None, None) => return Ok(None),
    };
    let mut value = HeaderValue::from_str(&value).map_err(|_| Error::Invalid {
        what: "credentials".to_string(),
        reason: "the credentials contain characters not allowed in an HTTP header".to_string(),
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// A secret file's content with the trailing newline an editor adds removed.
fn secret(path: &Path, what: &'static str) -> Result<String, Error> {
    let bytes = read_file(what, path)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Invalid {
        what: format!("{what} {}", path.display()),
        reason: "not UTF-8".to_string(),
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// A transport error without the URL (it could carry credentials) and with its causes.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// At most [`REASON_BYTES_MAX`] bytes of the body, on one line.
async fn read_reason(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < REASON_BYTES_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(REASON_BYTES_MAX);
    let text = String::from_utf8_lossy(&body);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3). None when absent,
/// malformed, zero or in the past: the usual backoff applies then.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .ok()?
    };
    (!delay.is_zero()).then_some(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    fn refused(config: &EndpointConfig) -> String {
        match Client::new(config) {
            Ok(_) => "accepted".to_string(),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn refuses_unusable_settings_at_startup() {
        let dir = tempfile::tempdir();
        let Ok(dir) = dir else {
            return assert!(dir.is_ok());
        };
        let base = EndpointConfig::new("http://127.0.0.1:1/api/v1/write");
        assert!(refused(&EndpointConfig::new("ftp://x/")).contains("scheme ftp"));
        assert!(refused(&EndpointConfig::new("not a url")).contains("invalid url"));

        let mut config = base.clone();
        config.bearer_token_file = Some(dir.path().join("missing-token"));
        let error = refused(&config);
        assert!(
            error.contains("bearer-token-file") && error.contains("missing-token"),
            "{error}"
        );

        let token = dir.path().join("token");
        assert!(std::fs::write(&token, "t0ken\n").is_ok());
        config.bearer_token_file = Some(token.clone());
        config.basic_auth = Some(crate::config::BasicAuth {
            username: "u".to_string(),
            password_file: token,
        });
        assert!(refused(&config).contains("exclude each other"));

        let mut config = base.clone();
        config.tls.cert_file = Some(dir.path().join("c.pem"));
        assert!(refused(&config).contains("cert-file and key-file go together"));

        let not_pem = dir.path().join("ca.pem");
        assert!(std::fs::write(&not_pem, "not a certificate").is_ok());
        let mut config = base.clone();
        config.tls.ca_file = Some(not_pem.clone());
        assert!(
            refused(&config).contains("no PEM certificate"),
            "{}",
            refused(&config)
        );

        // A key that does not parse is refused without quoting the file.
        let mut config = base;
        config.tls.cert_file = Some(not_pem.clone());
        config.tls.key_file = Some(not_pem);
        let error = refused(&config);
        assert!(error.contains("cert-file/key-file") && !error.contains("not a certificate"));
    }

    #[test]
    fn secrets_stay_out_of_debug_output_and_errors() {
        let dir = tempfile::tempdir();
        let Ok(dir) = dir else {
            return assert!(dir.is_ok());
        };
        let password = dir.path().join("pw");
        assert!(std::fs::write(&password, "hunter2-secret\n").is_ok());
        let mut config = EndpointConfig::new("http://127.0.0.1:1/api/v1/write");
        config.basic_auth = Some(crate::config::BasicAuth {
            username: "u".to_string(),
            password_file: password,
        });
        config
            .headers
            .insert("X-Scope-OrgID".to_string(), "tenant-secret".to_string());
        let client = Client::new(&config);
        let text = format!("{client:?}");
        assert!(client.is_ok(), "{text}");
        assert!(
            !text.contains("hunter2") && !text.contains("tenant-secret"),
            "{text}"
        );
        assert!(
            !text.contains(&base64::engine::general_purpose::STANDARD.encode("u:hunter2-secret"))
        );
        // A bad header value is refused without echoing it.
        config
            .headers
            .insert("X-Bad".to_string(), "line\nbreak-secret".to_string());
        let error = Client::new(&config)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("X-Bad") && !error.contains("break-secret"),
            "{error}"
        );
    }
}
