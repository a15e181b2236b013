//! HTTPS (issue 11 item 2): `main.https-cert-file` and `main.https-key-file` serve the API
//! over TLS 1.2/1.3; the pair is reloaded on SIGHUP and when the files change, without
//! dropping open connections; a bad pair is a configuration error at startup and keeps the
//! old pair at a reload. Certificates are made by the test (rcgen), and the client is rustls
//! trusting only the test's CA.

// Test helpers panic on purpose: a failed setup step is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{
    Response, Server, TlsStream, assert_data, metric_value, minutes_ago, parse_response,
    run_strata, tls_connect, try_http,
};
use rustls::version::{TLS12, TLS13};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_testkit::{client_config, first_certificate, make_certificates};

/// Longest wait for something the server does in the background (a reload, a timeout).
const WAIT: Duration = Duration::from_secs(20);

/// Two independent CAs, each with a server certificate for localhost, and the live pair the
/// server reads (a copy of the first CA's).
struct Pki {
    first: tempfile::TempDir,
    second: tempfile::TempDir,
    live: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            first: tempfile::tempdir().unwrap(),
            second: tempfile::tempdir().unwrap(),
            live: tempfile::tempdir().unwrap(),
        };
        make_certificates(pki.first.path());
        make_certificates(pki.second.path());
        pki.install(pki.first.path());
        pki
    }

    fn cert_file(&self) -> PathBuf {
        self.live.path().join("server.crt")
    }

    fn key_file(&self) -> PathBuf {
        self.live.path().join("server.key")
    }

    /// The `main` keys for the live pair.
    fn config(&self) -> Value {
        json!({"main": {
            "https-cert-file": self.cert_file().display().to_string(),
            "https-key-file": self.key_file().display().to_string(),
        }})
    }

    /// Replaces the live pair with the one in `from`, each file by a rename, as certificate
    /// tools do.
    fn install(&self, from: &Path) {
        for name in ["server.crt", "server.key"] {
            self.replace(name, &std::fs::read(from.join(name)).unwrap());
        }
    }

    fn replace(&self, name: &str, contents: &[u8]) {
        let next = self.live.path().join("next");
        std::fs::write(&next, contents).unwrap();
        std::fs::rename(&next, self.live.path().join(name)).unwrap();
    }

    /// A server on the live pair, and a kept-alive connection to it that has answered once.
    fn start_with_open_connection(&self) -> (Server, TlsStream) {
        let server = Server::start_https(&self.config(), self.trusting_first());
        let mut open = tls_connect(&server.addr, &self.trusting_first()).unwrap();
        keep_alive_request(&mut open, "/healthz").assert_status(200);
        (server, open)
    }

    fn trusting_first(&self) -> Arc<rustls::ClientConfig> {
        client_config(&self.first.path().join("ca.crt"), &[&TLS13, &TLS12])
    }

    fn trusting_second(&self) -> Arc<rustls::ClientConfig> {
        client_config(&self.second.path().join("ca.crt"), &[&TLS13, &TLS12])
    }
}

/// Sends a request on an open (kept-alive) connection and reads one response, delimited by
/// its `Content-Length`.
fn keep_alive_request(stream: &mut TlsStream, target: &str) -> Response {
    write!(stream, "GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    stream.flush().unwrap();
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Ok(response) = parse_response(&raw)
            && response
                .header("content-length")
                .is_some_and(|length| length.parse() == Ok(response.body.len()))
        {
            return response;
        }
        let read = stream.read(&mut buffer).unwrap();
        assert!(
            read > 0,
            "connection closed; got {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buffer[..read]);
    }
}

/// `server`'s counter `series`, 0 when absent.
fn counter(server: &Server, series: &str) -> f64 {
    metric_value(&server.metrics(), series).unwrap_or(0.0)
}

/// Waits until `done` holds, failing with `what` after [`WAIT`].
#[track_caller]
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first certificate the server presents on a new connection, when `client` trusts it.
fn presented(server: &Server, client: &Arc<rustls::ClientConfig>) -> Result<Vec<u8>, String> {
    let stream = tls_connect(&server.addr, client)?;
    Ok(stream.conn.peer_certificates().unwrap()[0].to_vec())
}

/// Goal: cc-metric-store's HTTPS keys serve the API over TLS: writes and queries from a
/// client that trusts only the test CA, TLS 1.3 by default with ALPN http/1.1.
#[test]
fn writes_and_queries_over_https() {
    let pki = Pki::new();
    let server = Server::start_https(&pki.config(), pki.trusting_first());
    let t = minutes_ago(10);
    server.write_ok(
        "fritz",
        &format!("flops_any,hostname=f0101,type=node value=42 {t}\n"),
    );
    let result = server.query(&json!({
        "cluster": "fritz", "from": t, "to": t + 60,
        "queries": [{"metric": "flops_any", "host": "f0101"}]
    }));
    assert_data(&result["results"][0][0]["data"], &[Some(42.0)]);

    let stream = tls_connect(&server.addr, &pki.trusting_first()).unwrap();
    assert_eq!(
        stream.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert!(
        server.log().contains("scheme=\"https\"") || server.log().contains("scheme=https"),
        "{}",
        server.log()
    );
}

/// Goal: a plain HTTP request to the HTTPS port gets a 400 saying why (as Go's servers
/// answer it), other non-TLS bytes a closed connection; both are counted and the server
/// keeps serving.
#[test]
fn plain_http_to_the_https_port_fails_cleanly() {
    let pki = Pki::new();
    let server = Server::start_https(&pki.config(), pki.trusting_first());
    try_http(&server.addr, "GET", "/api/healthcheck", &[], b"")
        .unwrap()
        .assert_error(400, "this port serves HTTPS");
    let reply = common::send_raw(&server.addr, b"\x00\x01\x02\x03\x04", WAIT);
    assert!(!reply.starts_with(b"HTTP"), "{reply:?}");
    // Counted once the connection is gone, so a moment after the client saw it close.
    for reason in ["plain_http", "error"] {
        let series = format!("strata_tls_handshake_failures_total{{reason=\"{reason}\"}}");
        wait_until(&series, || counter(&server, &series) == 1.0);
    }
    server.get("/healthz").assert_status(200);
}

/// Goal: only TLS 1.2 and 1.3 are spoken. OpenSSL offering TLS 1.1 alone (its own security
/// level lowered so that it does send the ClientHello) is refused by the server, while the
/// same command with TLS 1.2 connects; a rustls client limited to TLS 1.2 works.
#[test]
fn tls_1_1_is_refused_and_tls_1_2_works() {
    let pki = Pki::new();
    let server = Server::start_https(&pki.config(), pki.trusting_first());
    let ca = pki.first.path().join("ca.crt");
    let s_client = |version: &str| {
        let output = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &server.addr, version])
            .args(["-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "localhost"])
            .arg("-CAfile")
            .arg(&ca)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running openssl (Debian package openssl)");
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let errors = "strata_tls_handshake_failures_total{reason=\"error\"}";
    let (ok, output) = s_client("-tls1_2");
    assert!(
        ok && output.contains("Protocol  : TLSv1.2") && !output.contains("Cipher is (NONE)"),
        "{output}"
    );
    assert_eq!(counter(&server, errors), 0.0);
    let (ok, output) = s_client("-tls1_1");
    assert!(
        !ok && output.contains("Cipher is (NONE)") && output.contains("alert"),
        "{output}"
    );
    // The server refused it: the ClientHello arrived.
    wait_until("the refused handshake is counted", || {
        counter(&server, errors) == 1.0
    });

    let tls12_only = client_config(&ca, &[&TLS12]);
    let mut stream = tls_connect(&server.addr, &tls12_only).unwrap();
    assert_eq!(
        stream.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    keep_alive_request(&mut stream, "/healthz").assert_status(200);
}

/// Goal: on SIGHUP the new pair is served to new connections, which then verify only against
/// the new CA, while a connection opened before keeps working; the reload is counted.
#[test]
fn sighup_reloads_without_dropping_connections() {
    let pki = Pki::new();
    let (server, mut open) = pki.start_with_open_connection();

    pki.install(pki.second.path());
    server.signal("HUP");
    wait_until("a new connection verifies against the second CA", || {
        presented(&server, &pki.trusting_second()).is_ok()
    });
    let refused = presented(&server, &pki.trusting_first()).unwrap_err();
    assert!(
        refused.contains("UnknownIssuer") || refused.contains("BadSignature"),
        "{refused}"
    );

    // The connection made before the reload still answers, on the old certificate.
    keep_alive_request(&mut open, "/healthz").assert_status(200);
    let old = open.conn.peer_certificates().unwrap()[0].to_vec();
    assert_eq!(
        old,
        first_certificate(&pki.first.path().join("server.crt")),
        "the open connection keeps its certificate"
    );
    assert!(counter(&server, "strata_tls_reloads_total{outcome=\"ok\"}") >= 1.0);
    assert_eq!(
        counter(&server, "strata_tls_reloads_total{outcome=\"failed\"}"),
        0.0
    );
    assert!(server.log().contains("TLS certificate reloaded"));
}

/// Goal: a replacement that cannot be used (the key of another certificate) keeps the old
/// pair in use and is logged and counted as failed; when the files are then fixed, the
/// change is noticed without a signal.
#[test]
fn broken_replacement_keeps_the_old_certificate() {
    let pki = Pki::new();
    let (server, mut open) = pki.start_with_open_connection();
    let failed = "strata_tls_reloads_total{outcome=\"failed\"}";
    assert_eq!(counter(&server, failed), 0.0);

    pki.replace(
        "server.key",
        &std::fs::read(pki.second.path().join("server.key")).unwrap(),
    );
    server.signal("HUP");
    wait_until("the failed reload is counted", || {
        counter(&server, failed) >= 1.0
    });
    let log = server.log();
    assert!(
        log.contains(&format!(
            "main.https-key-file {}: the key does not belong to the certificate",
            pki.key_file().display()
        )),
        "{log}"
    );
    assert!(log.contains("still serving the previous one"), "{log}");
    presented(&server, &pki.trusting_first()).expect("the old certificate is still served");
    keep_alive_request(&mut open, "/healthz").assert_status(200);

    // Fixed without a signal: the file check finds it.
    pki.install(pki.second.path());
    wait_until("the fixed pair is loaded", || {
        presented(&server, &pki.trusting_second()).is_ok()
    });
    keep_alive_request(&mut open, "/healthz").assert_status(200);
}

/// Goal: the TLS handshake is bounded by `limits.header-timeout` and holds one of
/// `limits.connections` while it lasts; a connection over the limit is closed without a
/// plain-text answer a TLS client could not read.
#[test]
fn handshakes_are_bounded_and_hold_a_connection() {
    let pki = Pki::new();
    let mut config = pki.config();
    config["metric-store"] = json!({"limits": {"header-timeout": "5s", "connections": 2}});
    let server = Server::start_https(&config, pki.trusting_first());
    // Two connections that never start a handshake take both slots (accepted in order)…
    let silent: Vec<_> = (0..2)
        .map(|_| common::connect(&server.addr).unwrap())
        .collect();
    // …so a third is closed at once.
    let refused = tls_connect(&server.addr, &pki.trusting_first()).unwrap_err();
    assert!(refused.contains("TLS handshake"), "{refused}");
    // The silent ones are closed after the header timeout.
    for mut stream in silent {
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{rest:?}");
    }
    let timeouts = "strata_tls_handshake_failures_total{reason=\"timeout\"}";
    wait_until(timeouts, || counter(&server, timeouts) == 2.0);
    assert_eq!(
        counter(&server, "strata_http_connections_refused_total"),
        1.0
    );
}

/// Goal: a pair that cannot be used at startup is a configuration error: one line naming the
/// file and why, exit status 1.
#[test]
fn bad_pair_at_startup_is_a_configuration_error() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            pki.cert_file(),
            pki.second.path().join("server.key"),
            format!(
                "main.https-key-file {}: the key does not belong to the certificate in \
                 main.https-cert-file {}",
                pki.second.path().join("server.key").display(),
                pki.cert_file().display()
            ),
        ),
        (
            dir.path().join("missing.crt"),
            pki.key_file(),
            format!(
                "main.https-cert-file {}: cannot read: No such file or directory",
                dir.path().join("missing.crt").display()
            ),
        ),
    ];
    for (cert_file, key_file, reason) in cases {
        let config = dir.path().join("config.json");
        let document = json!({
            "main": {"addr": "127.0.0.1:0", "https-cert-file": cert_file,
                     "https-key-file": key_file},
            "metric-store": {"retention-in-memory": "48h",
                             "checkpoints": {"directory": dir.path().join("data")}},
        });
        std::fs::write(&config, document.to_string()).unwrap();
        let output = run_strata(
            dir.path(),
            &["serve", "--config", config.to_str().unwrap()],
            WAIT,
        );
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        // Before anything else is logged: the error is all there is.
        let stderr = output.stderr.trim_end();
        let expected = format!("Error: {}: {reason}", config.display());
        assert!(
            stderr.lines().count() == 1 && stderr.starts_with(&expected),
            "expected {expected:?}, got {stderr:?}"
        );
        assert!(!dir.path().join("data").exists(), "stopped before recovery");
    }
}

/// Goal: a connection still in its TLS handshake does not hold the shutdown (it has no
/// request yet): SIGTERM ends the server without waiting out the grace period.
#[test]
fn shutdown_does_not_wait_for_handshakes() {
    let pki = Pki::new();
    let (mut server, open) = pki.start_with_open_connection();
    let silent = common::connect(&server.addr).unwrap();
    // Open: the kept-alive one, the silent one, and the one asking.
    let handshakes = "strata_http_connections";
    wait_until("the silent connection is open", || {
        counter(&server, handshakes) >= 3.0
    });
    server.signal("TERM");
    let status = server.wait_exit(WAIT).expect("strata exits");
    assert!(status.success(), "{status}");
    let log = server.log();
    assert!(log.contains("shutdown complete"), "{log}");
    assert!(!log.contains("shutdown grace period"), "{log}");
    drop((silent, open));
}
