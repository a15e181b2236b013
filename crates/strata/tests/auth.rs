//! JWT authentication over HTTP (COMPAT.md §1.2): with `main.jwt-public-key` every `/api/`
//! route needs `Authorization: Bearer <EdDSA JWT>`; `/healthz` and `/metrics` never do; without
//! a key nothing does.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{DOCS_PUBLIC_KEY, DOCS_TOKEN, Response, Server, assert_data, minutes_ago, now_s};
use serde_json::json;

const C: &str = "fritz";

fn secured_server() -> Server {
    Server::start_with_config(&json!({"main": {"jwt-public-key": DOCS_PUBLIC_KEY}}))
}

/// `(method, target, body)` of one request to every `/api/` endpoint, `/api/free` last.
fn api_requests(t: i64) -> Vec<(&'static str, String, Vec<u8>)> {
    let query = json!({"cluster":C,"from":t,"to":t + 60,"queries":[{"metric":"load","host":"h1"}]});
    let health = json!({"cluster":C,"nodes":["h1"],"metric-names":["load"]});
    vec![
        (
            "POST",
            format!("/api/write?cluster={C}"),
            format!("load,host=h1 value=3 {t}\n").into_bytes(),
        ),
        (
            "GET",
            "/api/query".to_owned(),
            query.to_string().into_bytes(),
        ),
        (
            "POST",
            "/api/query/".to_owned(),
            query.to_string().into_bytes(),
        ),
        ("GET", "/api/debug".to_owned(), Vec::new()),
        ("GET", format!("/api/debug/?selector={C}:h1"), Vec::new()),
        (
            "GET",
            "/api/healthcheck".to_owned(),
            health.to_string().into_bytes(),
        ),
        (
            "POST",
            format!("/api/free?to={}", now_s() + 3600),
            json!([[C, "h1"]]).to_string().into_bytes(),
        ),
    ]
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[track_caller]
fn assert_unauthorized(response: &Response, what: &str) {
    assert_eq!(response.status, 401, "{what}: {}", response.text());
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/plain")),
        "{what}: {:?}",
        response.headers
    );
}

#[test]
fn docs_token_is_accepted_on_every_api_endpoint() {
    // Goal: the documented test token verifies against the documented key on write, query,
    // debug, healthcheck and free, and each endpoint does its job.
    let server = secured_server();
    let t = minutes_ago(10);
    let auth = bearer(DOCS_TOKEN);
    let headers = [("Authorization", auth.as_str())];
    let mut responses = Vec::new();
    for (method, target, body) in api_requests(t) {
        let response = server.request(method, &target, &headers, &body);
        assert_eq!(
            response.status,
            200,
            "{method} {target}: {}",
            response.text()
        );
        responses.push(response);
    }
    assert!(responses[0].body.is_empty());
    for query in &responses[1..3] {
        assert_data(&query.json()["results"][0][0]["data"], &[Some(3.0)]);
    }
    assert!(responses[3].json()["data"][C]["h1"]["load"].is_array());
    assert!(responses[4].json()["data"]["load"].is_array());
    assert_eq!(responses[5].json()["h1"]["State"], json!("failed"));
    assert_eq!(responses[6].text(), "buffers freed: 1\n");
}

#[test]
fn requests_without_a_bearer_token_get_401_use_jwt_authentication() {
    // Goal: no `Authorization` header, or one that is not `Bearer …`, is refused with
    // cc-metric-store's plain-text body, and the request has no effect.
    let server = secured_server();
    let t = minutes_ago(10);
    for (method, target, body) in api_requests(t) {
        for headers in [&[][..], &[("Authorization", "Basic YWRtaW46YWRtaW4=")][..]] {
            let response = server.request(method, &target, headers, &body);
            assert_unauthorized(&response, &format!("{method} {target} {headers:?}"));
            assert_eq!(response.text(), "Use JWT Authentication\n");
        }
    }
    // The refused write stored nothing.
    let auth = bearer(DOCS_TOKEN);
    let response = server.request(
        "GET",
        "/api/debug",
        &[("Authorization", auth.as_str())],
        b"",
    );
    response.assert_status(200);
    assert_eq!(response.json(), json!({"data":{}}));
}

#[test]
fn garbage_tampered_and_altered_tokens_get_401() {
    // Goal: a token that is not a JWT, one with one character of the signature changed, and
    // one whose payload was replaced (signature kept) are all refused.
    let server = secured_server();
    let t = minutes_ago(10);
    let (header, rest) = DOCS_TOKEN.split_once('.').expect("header");
    let (payload, signature) = rest.split_once('.').expect("payload");

    let mut changed: Vec<char> = signature.chars().collect();
    changed[10] = if changed[10] == 'A' { 'B' } else { 'A' };
    let changed: String = changed.into_iter().collect();
    let tampered_signature = format!("{header}.{payload}.{changed}");

    let altered_claims = URL_SAFE_NO_PAD.encode(br#"{"user":"root","roles":["ROLE_ADMIN"]}"#);
    let altered_payload = format!("{header}.{altered_claims}.{signature}");
    assert_ne!(altered_claims, payload);

    let alg_none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"none"}"#)
    );

    for token in [
        "garbage",
        "a.b.c",
        "",
        tampered_signature.as_str(),
        altered_payload.as_str(),
        alg_none.as_str(),
    ] {
        let auth = bearer(token);
        for (method, target, body) in api_requests(t) {
            let response =
                server.request(method, &target, &[("Authorization", auth.as_str())], &body);
            assert_unauthorized(&response, &format!("token {token:?} on {method} {target}"));
        }
    }
    let auth = bearer(DOCS_TOKEN);
    let debug = server.request(
        "GET",
        "/api/debug",
        &[("Authorization", auth.as_str())],
        b"",
    );
    assert_eq!(
        debug.json(),
        json!({"data":{}}),
        "a refused write was stored"
    );
}

#[test]
fn healthz_and_metrics_need_no_token() {
    // Goal: liveness and Prometheus scraping work without credentials on a secured server.
    let server = secured_server();
    let health = server.get("/healthz");
    health.assert_status(200);
    assert_eq!(health.text(), "ok\n");
    let metrics = server.get("/metrics");
    metrics.assert_status(200);
    assert!(metrics.text().contains("strata_ingest_samples_total"));
}

#[test]
fn without_a_configured_key_no_token_is_needed() {
    // Goal: without `jwt-public-key` (or with it empty) every endpoint is open, and an
    // invalid token is simply ignored.
    for config in [json!({}), json!({"main": {"jwt-public-key": ""}})] {
        let server = Server::start_with_config(&config);
        let t = minutes_ago(10);
        for headers in [&[][..], &[("Authorization", "Bearer garbage")][..]] {
            for (method, target, body) in api_requests(t) {
                let response = server.request(method, &target, headers, &body);
                assert_eq!(
                    response.status,
                    200,
                    "{config} {method} {target} {headers:?}: {}",
                    response.text()
                );
            }
        }
    }
}

/// A compact JWS of `claims` signed with the key of `seed`, and that key's public half as
/// `main.jwt-public-key` wants it.
fn signed_token(seed: u8, claims: &str) -> (String, String) {
    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::{Signer, SigningKey};
    let key = SigningKey::from_bytes(&[seed; 32]);
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()).to_bytes());
    let public = STANDARD.encode(key.verifying_key().as_bytes());
    let token = format!("{signed}.{signature}");
    common::secret(&token);
    (token, public)
}

#[test]
fn claims_are_checked_as_golang_jwt_v4_map_claims_checks_them() {
    // Goal: correctly signed tokens whose claims golang-jwt v4 (cc-metric-store) refuses are
    // refused: an `exp` that is a string or null, and claims that are not a JSON object.
    // Before: all accepted (a non-number `exp` was treated as absent).
    let (_, public) = signed_token(7, "{}");
    let server = Server::start_with_config(&json!({"main": {"jwt-public-key": public}}));
    let t = minutes_ago(10);
    let refused = [
        (r#"{"exp":"never"}"#, "token is expired"),
        (r#"{"exp":null}"#, "token is expired"),
        (r#"{"nbf":"now"}"#, "token is not valid yet"),
        (r#"["admin"]"#, "token is malformed"),
        ("42", "token is malformed"),
        (&format!(r#"{{"exp":{}}}"#, now_s() - 1), "token is expired"),
    ];
    for (claims, reason) in refused {
        let (token, _) = signed_token(7, claims);
        let auth = bearer(&token);
        for (method, target, body) in api_requests(t) {
            let response =
                server.request(method, &target, &[("Authorization", auth.as_str())], &body);
            assert_unauthorized(&response, &format!("claims {claims} on {method} {target}"));
            assert_eq!(response.text().trim(), reason, "claims {claims}");
        }
    }
    // The same key with acceptable claims works: a numeric future `exp`, `exp: 0` (unset in
    // v4), and `null` claims (Go decodes them to an empty map).
    for claims in [
        format!(r#"{{"exp":{}}}"#, now_s() + 3600),
        r#"{"exp":0}"#.to_owned(),
        "null".to_owned(),
    ] {
        let (token, _) = signed_token(7, &claims);
        let auth = bearer(&token);
        for (method, target, body) in api_requests(t) {
            let response =
                server.request(method, &target, &[("Authorization", auth.as_str())], &body);
            assert_eq!(
                response.status,
                200,
                "claims {claims} on {method} {target}: {}",
                response.text()
            );
        }
    }
}

/// A server whose tokens are signed by the key of seed 7, with `main.jwt-roles`: reads need
/// `api` or `admin`, writes `collector` or `admin`.
fn server_with_roles() -> Server {
    let (_, public) = signed_token(7, "{}");
    Server::start_with_config(&json!({"main": {
        "jwt-public-key": public,
        "jwt-roles": {"read": ["api", "admin"], "write": ["collector", "admin"]},
    }}))
}

/// Whether a target of [`api_requests`] is a write-class route (`/api/write`, `/api/free`).
fn is_write_route(target: &str) -> bool {
    target.starts_with("/api/write") || target.starts_with("/api/free")
}

#[track_caller]
fn assert_forbidden(response: &Response, class: &str, what: &str) {
    assert_eq!(response.status, 403, "{what}: {}", response.text());
    let body = response.json();
    assert_eq!(body["status"], json!("Forbidden"), "{what}");
    assert_eq!(
        body["error"],
        json!(format!(
            "the token has none of the roles in main.jwt-roles.{class}"
        )),
        "{what}"
    );
}

#[test]
fn with_jwt_roles_a_read_only_token_cannot_write_or_free() {
    // Goal: with `main.jwt-roles`, cc-backend's token (role `api`) queries, dumps and checks
    // health but gets 403 on /api/write and /api/free — naming the config key, not its
    // claims — and its refused write stores nothing; the collector's token (role
    // `collector`) writes (also through the InfluxDB routes) but cannot read.
    let server = server_with_roles();
    let t = minutes_ago(10);
    let (backend, _) = signed_token(7, r#"{"sub":"cc-backend","roles":["api"]}"#);
    let (collector, _) = signed_token(7, r#"{"sub":"cc-metric-collector","roles":["collector"]}"#);
    let backend = bearer(&backend);
    let collector = bearer(&collector);
    let backend_headers = [("Authorization", backend.as_str())];
    let refused = server.request(
        "POST",
        &format!("/api/write?cluster={C}"),
        &backend_headers,
        format!("load,host=h9 value=9 {t}\n").as_bytes(),
    );
    assert_forbidden(&refused, "write", "backend's write");
    let dump = server.request("GET", "/api/debug", &backend_headers, b"");
    dump.assert_status(200);
    assert_eq!(
        dump.json(),
        json!({"data":{}}),
        "the refused write was stored"
    );
    // Twice: the second round is answered from the token cache.
    for round in 0..2 {
        for (method, target, body) in api_requests(t) {
            let what = format!("round {round}: {method} {target}");
            let as_backend = server.request(method, &target, &backend_headers, &body);
            let as_collector = server.request(
                method,
                &target,
                &[("Authorization", collector.as_str())],
                &body,
            );
            if is_write_route(&target) {
                assert_forbidden(&as_backend, "write", &what);
                assert!(
                    !as_backend.text().contains("cc-backend"),
                    "{what}: claims echoed"
                );
                assert_eq!(as_collector.status, 200, "{what}: {}", as_collector.text());
            } else {
                assert_eq!(as_backend.status, 200, "{what}: {}", as_backend.text());
                assert_forbidden(&as_collector, "read", &what);
            }
        }
    }
    // The InfluxDB write routes are write routes.
    let line = format!("load,host=h2 value=4 {t}\n");
    for (target, scheme) in [
        (format!("/write?db={C}&precision=s"), "Bearer"),
        (format!("/api/v2/write?bucket={C}&precision=s"), "Token"),
    ] {
        let write_as = |bearer: &str| {
            let authorization = format!("{scheme} {}", bearer.trim_start_matches("Bearer "));
            server.request(
                "POST",
                &target,
                &[("Authorization", authorization.as_str())],
                line.as_bytes(),
            )
        };
        let refused = write_as(&backend);
        assert_eq!(refused.status, 403, "{target}: {}", refused.text());
        assert!(
            refused.text().contains("main.jwt-roles.write"),
            "{target}: {}",
            refused.text()
        );
        let written = write_as(&collector);
        assert_eq!(written.status, 204, "{target}: {}", written.text());
    }
    let metrics = server.metrics();
    let forbidden = [
        ("write", 3.0),
        ("free", 2.0),
        ("query", 4.0),
        ("debug", 4.0),
        ("healthcheck", 2.0),
        ("influx_v1", 1.0),
        ("influx_v2", 1.0),
    ];
    for (route, expected) in forbidden {
        let series = format!(r#"strata_http_responses_total{{route="{route}",status="403"}}"#);
        assert_eq!(
            common::metric_value(&metrics, &series),
            Some(expected),
            "{series}"
        );
    }
}

#[test]
fn with_jwt_roles_an_invalid_token_is_still_a_plain_401() {
    // Goal: roles are checked after the token: a missing, unsigned or expired token with the
    // right role is cc-metric-store's plain-text 401, not a 403.
    let server = server_with_roles();
    let t = minutes_ago(10);
    let (expired, _) = signed_token(
        7,
        &format!(r#"{{"roles":["admin"],"exp":{}}}"#, now_s() - 1),
    );
    let (other_key, _) = signed_token(8, r#"{"roles":["admin"]}"#);
    for token in [None, Some(expired.as_str()), Some(other_key.as_str())] {
        for (method, target, body) in api_requests(t) {
            let auth = token.map(bearer);
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            let response = server.request(method, &target, &headers, &body);
            assert_unauthorized(&response, &format!("{method} {target}"));
        }
    }
}
