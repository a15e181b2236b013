//! Harness for the black-box tests: starts the real `strata` binary on a free loopback port
//! and talks HTTP/1.1 to it over a plain `TcpStream`.
//!
//! Every test binary includes this module with `mod common;` and uses only part of it, hence
//! the `dead_code` allowance.
//!
//! A server that cannot start makes the test fail (with the server's log in the panic
//! message); tests never skip.

#![allow(dead_code)]
// Harness code panics on purpose: a failed setup step is a failed test (the workspace allows
// unwrap/expect in `#[test]` functions only, and these helpers live outside them).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strata_testkit::free_port;

/// The binary under test.
pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");

/// Longest wait for a started server to answer `/healthz`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts to start a server when the chosen port was taken between picking and binding.
const START_ATTEMPTS: usize = 5;

/// Longest wait for one HTTP exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The public key from cc-metric-store's docs (COMPAT.md §1.2).
pub const DOCS_PUBLIC_KEY: &str = "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0=";

/// The test token from cc-metric-store's docs, signed with [`DOCS_PUBLIC_KEY`]'s private key.
pub const DOCS_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJ1c2VyIjoiYWRtaW4iLCJyb2xlcyI6WyJST0xFX0FETUlOIiwiUk9MRV9BTkFMWVNUIiwiUk9MRV9VU0VSIl19.d-3_3FZTsadPjDEdsWrrQ7nS0edMAR4zjl-eK7rJU3HziNBfI9PDHDIpJVHTNN5E5SlLGLFXctWyKAkwhXL-Dw";

/// Unix seconds now.
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A timestamp `minutes` minutes ago, aligned to a 60 s boundary, so that consecutive samples
/// at 60 s land in consecutive slots and are well inside the retention window.
pub fn minutes_ago(minutes: i64) -> i64 {
    now_s() / 60 * 60 - minutes * 60
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names as sent (lookup through [`Response::header`] ignores case).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}, body: {}",
                self.status,
                self.text()
            )
        })
    }

    /// Panics with the body unless the status is `status`.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }

    /// Asserts cc-metric-store's error JSON: `status` with its reason phrase, and an `error`
    /// text that contains `needle`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, needle: &str) {
        self.assert_status(status);
        let reason = match status {
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            413 => "Payload Too Large",
            503 => "Service Unavailable",
            other => panic!("no reason phrase known for {other}"),
        };
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{:?}",
            self.headers
        );
        let error = self.json();
        assert_eq!(error["status"], json!(reason), "{error}");
        assert!(
            error["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{error} does not mention {needle:?}"
        );
    }
}

/// Every file below `directory`, at any depth; none when it does not exist.
pub fn files_under(directory: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.expect("listing a directory").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole response.
pub fn http(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_http(addr, method, target, headers, body)
        .unwrap_or_else(|e| panic!("{method} {target} to {addr} failed: {e}"))
}

/// Like [`http`], but returns I/O and protocol errors instead of panicking.
pub fn try_http(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    try_http_over(addr, None, method, target, headers, body)
}

/// Like [`try_http`], over TLS when `tls` is given (the server name is `localhost`).
pub fn try_http_over(
    addr: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let raw = match tls {
        None => exchange(connect(addr)?, &request),
        Some(config) => exchange(tls_connect(addr, config)?, &request),
    }?;
    parse_response(&raw)
}

/// A TCP connection with [`REQUEST_TIMEOUT`] for reads and writes.
pub fn connect(addr: &str) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// A TLS connection to `addr` as server name `localhost`, its handshake completed (the
/// error says why it failed, e.g. an untrusted certificate).
pub fn tls_connect(addr: &str, config: &Arc<rustls::ClientConfig>) -> Result<TlsStream, String> {
    let mut stream = connect(addr)?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let mut connection = rustls::ClientConnection::new(config.clone(), name)
        .map_err(|e| format!("TLS client: {e}"))?;
    while connection.is_handshaking() {
        connection
            .complete_io(&mut stream)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    Ok(rustls::StreamOwned::new(connection, stream))
}

/// A client's TLS connection.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Writes `request` and reads until the server closes the connection.
fn exchange(mut stream: impl Read + Write, request: &[u8]) -> Result<Vec<u8>, String> {
    // NOTE: a server may answer (413, 401) and close before reading the whole body; a failed
    // write is then not an error as long as a response arrives. Over TLS, a close without
    // close_notify is a read error after the response.
    let write_result = stream.write_all(request).and_then(|()| stream.flush());
    let mut raw = Vec::new();
    let read_result = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        return Err(format!(
            "no response (write: {write_result:?}, read: {read_result:?})"
        ));
    }
    Ok(raw)
}

/// Parses a complete HTTP/1.1 response: status line, headers, and a body delimited by
/// `Content-Length`, chunked transfer coding, or the end of the connection.
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let head_end = find(raw, b"\r\n\r\n").ok_or("response has no end of headers")?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|e| format!("head: {e}"))?;
    let rest = &raw[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    response.body = if chunked {
        decode_chunked(rest)?
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad Content-Length {length:?}"))?;
        rest.get(..length)
            .ok_or_else(|| format!("body shorter ({}) than Content-Length {length}", rest.len()))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(response)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a chunked body (RFC 9112 §7.1); trailers are ignored.
fn decode_chunked(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|e| e.to_string())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("chunk shorter than its size")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("chunk not followed by CRLF")?;
    }
}

/// A running `strata serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// Holds the configuration, the logs and the data directory.
    dir: tempfile::TempDir,
    /// The open-files limit the server runs under, if the test set one.
    open_files: Option<u32>,
    /// The `--log-level` the server runs with, if the test set one (else `info`).
    log_level: Option<&'static str>,
    /// For an HTTPS server: the client configuration every request uses.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Server {
    /// A server with auto-registered metrics (60 s, avg), 48 h retention and no auth.
    pub fn start() -> Server {
        Server::start_with_config(&json!({}))
    }

    /// A server with `config` (any subset of the configuration file). The harness fills in
    /// `main.addr` (a free loopback port), `metric-store.checkpoints.directory` (inside a temp
    /// dir) and, unless given, `retention-in-memory: "48h"` (`memory-cap` is optional).
    pub fn start_with_config(config: &Value) -> Server {
        Server::start_with(config, None, None)
    }

    /// Like [`Server::start_with_config`], with the open-files limit (`ulimit -n`) of the
    /// server process (and its restarts) set to `open_files`.
    pub fn start_with_open_files(config: &Value, open_files: u32) -> Server {
        Server::start_with(config, Some(open_files), None)
    }

    /// Like [`Server::start_with_config`], logging at `level` (`--log-level`), e.g. `debug`
    /// for a test that checks what never reaches the log.
    pub fn start_with_log_level(config: &Value, level: &'static str) -> Server {
        Server::start_with(config, None, Some(level))
    }

    /// A server with the configuration file `make(dir, addr)` written as it is, for formats
    /// the harness does not complete (cc-metric-store's legacy flat file): `dir` is the
    /// server's temp dir, `addr` the free loopback address to listen on. [`Server::restart`]
    /// keeps the file, but cannot move such a server to another port.
    pub fn start_with_file(make: impl Fn(&Path, &str) -> Value) -> Server {
        Server::start_writing(
            |dir, addr| {
                let path = dir.join("config.json");
                let text = serde_json::to_vec_pretty(&make(dir, addr)).expect("serialising");
                std::fs::write(&path, text).expect("writing config");
                path
            },
            None,
            None,
            None,
        )
    }

    /// Like [`Server::start_with_config`] for a `config` that sets `main.https-cert-file` and
    /// `main.https-key-file`: every request of the harness (readiness included) goes over TLS
    /// with `client`.
    pub fn start_https(config: &Value, client: Arc<rustls::ClientConfig>) -> Server {
        Server::start_writing(
            |dir, addr| write_config(dir, config, addr),
            None,
            None,
            Some(client),
        )
    }

    fn start_with(
        config: &Value,
        open_files: Option<u32>,
        log_level: Option<&'static str>,
    ) -> Server {
        Server::start_writing(
            |dir, addr| write_config(dir, config, addr),
            open_files,
            log_level,
            None,
        )
    }

    /// Starts a server whose configuration file `write(dir, addr)` writes and returns.
    fn start_writing(
        write: impl Fn(&Path, &str) -> PathBuf,
        open_files: Option<u32>,
        log_level: Option<&'static str>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Server {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("creating a temp dir");
            let addr = format!("127.0.0.1:{}", free_port());
            let config_path = write(dir.path(), &addr);
            let child = spawn_serve(dir.path(), &config_path, open_files, log_level);
            let mut server = Server {
                child,
                addr,
                dir,
                open_files,
                log_level,
                tls: tls.clone(),
            };
            match server.wait_ready() {
                Ok(()) => return server,
                // Another process took the port between picking and binding: try another.
                Err(Retry::PortTaken(log)) => last_log = log,
                Err(Retry::Fatal(message)) => panic!("{message}"),
            }
        }
        panic!(
            "strata could not bind a free port in {START_ATTEMPTS} attempts; last log:\n{last_log}"
        );
    }

    /// Waits until `/healthz` answers and the log says the listener is bound (so that a
    /// server of another test on a recycled port cannot be mistaken for this one).
    fn wait_ready(&mut self) -> Result<(), Retry> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.log();
                if log.contains("cannot listen") && log.contains("in use") {
                    return Err(Retry::PortTaken(log));
                }
                return Err(Retry::Fatal(format!(
                    "strata exited during startup with {status}; log:\n{log}"
                )));
            }
            if self.log().contains("strata listening")
                && let Ok(response) = self.try_request("GET", "/healthz", &[], b"")
                && response.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Retry::Fatal(format!(
                    "strata did not answer /healthz on {} within {STARTUP_TIMEOUT:?}; log:\n{}",
                    self.addr,
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again with the same configuration, port and data directory, after
    /// the previous process was stopped (signal it first; this waits up to
    /// [`STARTUP_TIMEOUT`] for it to exit). The temp dir stays; the previous run's log moves
    /// to [`Server::earlier_logs`], so [`Server::log`] shows the new run only. Should another
    /// process have taken the port meanwhile, the server moves to a free one.
    pub fn restart(&mut self) {
        let mut last_log = String::new();
        for attempt in 0..START_ATTEMPTS {
            self.respawn();
            match self.wait_ready() {
                Ok(()) => return,
                Err(Retry::PortTaken(log)) => {
                    last_log = log;
                    // The first retry keeps the port (it may be free again in a moment).
                    if attempt == 0 {
                        std::thread::sleep(Duration::from_millis(200));
                    } else {
                        self.move_to_free_port();
                    }
                }
                Err(Retry::Fatal(message)) => panic!(
                    "restart failed: {message}\nearlier runs:\n{}",
                    self.earlier_logs()
                ),
            }
        }
        panic!(
            "strata could not bind a port on restart in {START_ATTEMPTS} attempts; last log:\n{last_log}"
        );
    }

    /// Like [`Server::restart`] but does not wait for the server to be ready: for a start that
    /// is expected to fail (then [`Server::wait_exit`] and [`Server::log`]).
    pub fn respawn(&mut self) {
        if self.wait_exit(STARTUP_TIMEOUT).is_none() {
            panic!(
                "cannot restart: strata (pid {}) is still running; log:\n{}",
                self.pid(),
                self.log()
            );
        }
        let mut earlier = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("earlier-runs.log"))
            .expect("opening earlier-runs.log");
        writeln!(earlier, "----- run ended -----\n{}", self.log()).expect("archiving the log");
        let config = self.dir.path().join("config.json");
        self.child = spawn_serve(self.dir.path(), &config, self.open_files, self.log_level);
    }

    /// The logs of the runs before the latest [`Server::restart`] or [`Server::respawn`].
    pub fn earlier_logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("earlier-runs.log")).unwrap_or_default()
    }

    /// The data directory (`metric-store.checkpoints.directory`): WAL, snapshots, `STRATA`,
    /// `LOCK`. It lives as long as the `Server`, across restarts.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("checkpoints")
    }

    /// The configuration file the server runs with (as completed by the harness).
    pub fn config(&self) -> Value {
        let text = std::fs::read(self.dir.path().join("config.json")).expect("reading config");
        serde_json::from_slice(&text).expect("parsing config")
    }

    /// Replaces the configuration file (as [`Server::config`] returned it, changed), for the
    /// next [`Server::restart`].
    pub fn set_config(&self, config: &Value) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(config).expect("serialising config"),
        )
        .expect("writing config");
    }

    /// Rewrites the configuration with a newly picked free port, for the next start.
    fn move_to_free_port(&mut self) {
        let mut config = self.config();
        self.addr = format!("127.0.0.1:{}", free_port());
        config["main"]["addr"] = json!(self.addr);
        self.set_config(&config);
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temp dir holding config, logs and data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stdout.log"), read("stderr.log"))
    }

    /// `true` while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal (`TERM`, `INT`, …) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Gives the running process a file size limit (`prlimit --fsize`, util-linux) of its
    /// largest file plus `headroom_bytes`, so that its write-ahead log fails with EFBIG once
    /// a segment grows past it, as on a full disk.
    pub fn limit_file_size(&self, headroom_bytes: u64) {
        let largest = files_under(self.dir())
            .iter()
            .map(|file| std::fs::metadata(file).map_or(0, |m| m.len()))
            .max()
            .unwrap_or(0);
        let limit = largest + headroom_bytes;
        let status = Command::new("prlimit")
            .args([
                format!("--pid={}", self.pid()),
                format!("--fsize={limit}:{limit}"),
            ])
            .status()
            .expect("running prlimit (util-linux)");
        assert!(status.success(), "prlimit failed: {status}");
    }

    /// SIGKILL through the std API: no `kill(1)` process to spawn, so the signal leaves at
    /// once (for crash tests that aim at a moment). Then reaps the process: until it is gone
    /// its data directory's LOCK is held and its files may still change.
    pub fn kill_now(&mut self) {
        self.child.kill().expect("sending SIGKILL");
        self.child.wait().expect("reaping strata");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.try_request(method, target, headers, body)
            .unwrap_or_else(|e| panic!("{method} {target} to {} failed: {e}", self.addr))
    }

    /// Like [`Server::request`], but returns I/O and protocol errors instead of panicking.
    pub fn try_request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, String> {
        try_http_over(&self.addr, self.tls.as_ref(), method, target, headers, body)
    }

    pub fn get(&self, target: &str) -> Response {
        self.request("GET", target, &[], b"")
    }

    pub fn post(&self, target: &str, body: impl AsRef<[u8]>) -> Response {
        self.request("POST", target, &[], body.as_ref())
    }

    /// `GET` with a JSON body, as cc-backend sends queries.
    pub fn get_json(&self, target: &str, body: &Value) -> Response {
        let body = serde_json::to_vec(body).expect("serialising JSON");
        self.request(
            "GET",
            target,
            &[("Content-Type", "application/json")],
            &body,
        )
    }

    /// `POST /api/write?cluster=<cluster>` with line protocol.
    pub fn write_lines(&self, cluster: &str, lines: &str) -> Response {
        self.post(&format!("/api/write?cluster={cluster}"), lines)
    }

    /// Like [`Server::write_lines`], asserting `200` and an empty body.
    #[track_caller]
    pub fn write_ok(&self, cluster: &str, lines: &str) {
        let response = self.write_lines(cluster, lines);
        response.assert_status(200);
        assert!(
            response.body.is_empty(),
            "write answered {:?}",
            response.text()
        );
    }

    /// `GET /api/query` with `request`, asserting `200`; returns the JSON response.
    #[track_caller]
    pub fn query(&self, request: &Value) -> Value {
        let response = self.get_json("/api/query", request);
        response.assert_status(200);
        response.json()
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let response = self.get("/metrics");
        response.assert_status(200);
        response.text()
    }
}

impl Drop for Server {
    /// Stops the server, then fails the test if its log holds a secret ([`secret`]).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            return;
        }
        let log = self.log();
        if let Some(leaked) = leaked_secret(&log) {
            panic!("a secret ({leaked}…) is in the server's log:\n{log}");
        }
    }
}

/// Secrets a test gave the server: every test's server logs are checked for them (issue 11:
/// no token, password or key in a log line), beside [`DOCS_TOKEN`].
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Registers `text` as a secret that no server log of this test may contain, and returns it.
pub fn secret(text: &str) -> &str {
    SECRETS.lock().expect("secrets").push(text.to_owned());
    text
}

/// The start of the first secret found in `log`: a whole secret, or a JWT's signature alone.
pub fn leaked_secret(log: &str) -> Option<String> {
    let registered = SECRETS.lock().expect("secrets").clone();
    registered
        .iter()
        .map(String::as_str)
        .chain([DOCS_TOKEN])
        .flat_map(|secret| [secret, secret.rsplit('.').next().unwrap_or(secret)])
        .find(|part| part.len() >= 8 && log.contains(part))
        .map(|part| part.chars().take(8).collect())
}

enum Retry {
    PortTaken(String),
    Fatal(String),
}

/// Completes `config` with the harness's settings and writes it to `<dir>/config.json`.
fn write_config(dir: &Path, config: &Value, addr: &str) -> PathBuf {
    let mut config = config.clone();
    let top = config
        .as_object_mut()
        .expect("config must be a JSON object");
    let main = top.entry("main").or_insert_with(|| json!({}));
    main["addr"] = json!(addr);
    let store = top.entry("metric-store").or_insert_with(|| json!({}));
    let store = store
        .as_object_mut()
        .expect("metric-store must be an object");
    store
        .entry("retention-in-memory")
        .or_insert_with(|| json!("48h"));
    let checkpoints = store.entry("checkpoints").or_insert_with(|| json!({}));
    checkpoints["directory"] = json!(dir.join("checkpoints").display().to_string());
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&config).expect("serialising config"),
    )
    .expect("writing config");
    path
}

fn spawn_serve(
    dir: &Path,
    config: &Path,
    open_files: Option<u32>,
    log_level: Option<&'static str>,
) -> Child {
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["serve".as_ref(), "--config".as_ref(), config.as_os_str()];
    if let Some(level) = log_level {
        args.extend([
            std::ffi::OsStr::new("--log-level"),
            std::ffi::OsStr::new(level),
        ]);
    }
    let Some(open_files) = open_files else {
        return spawn_strata(dir, &args);
    };
    // A shell that sets the limit and then becomes strata (same pid, for signals).
    let limit = open_files.to_string();
    let mut shell: Vec<&std::ffi::OsStr> = vec![
        "-c".as_ref(),
        "ulimit -n \"$0\" && exec \"$@\"".as_ref(),
        limit.as_ref(),
        STRATA.as_ref(),
    ];
    shell.extend(args);
    let stdout = std::fs::File::create(dir.join("stdout.log")).expect("creating stdout.log");
    let stderr = std::fs::File::create(dir.join("stderr.log")).expect("creating stderr.log");
    logged_command("sh", dir, &shell, stdout, stderr)
        .spawn()
        .expect("spawning strata under sh")
}

/// Starts `strata <args>` in `dir` with stdout and stderr going to `stdout.log` and
/// `stderr.log` there, colours off and `RUST_LOG` unset (so `--log-level` decides).
pub fn spawn_strata(dir: &Path, args: &[&std::ffi::OsStr]) -> Child {
    let stdout = std::fs::File::create(dir.join("stdout.log")).expect("creating stdout.log");
    let stderr = std::fs::File::create(dir.join("stderr.log")).expect("creating stderr.log");
    strata_command(dir, args, stdout, stderr)
        .spawn()
        .expect("spawning strata")
}

/// `strata <args>` in `dir`, output to the given files, colours off, `RUST_LOG` unset.
fn strata_command(
    dir: &Path,
    args: &[impl AsRef<std::ffi::OsStr>],
    stdout: std::fs::File,
    stderr: std::fs::File,
) -> Command {
    logged_command(STRATA, dir, args, stdout, stderr)
}

/// `program <args>` in `dir`, output to the given files, colours off, `RUST_LOG` unset,
/// `RUST_BACKTRACE` set as on many build hosts (an error must still print only its message).
fn logged_command(
    program: &str,
    dir: &Path,
    args: &[impl AsRef<std::ffi::OsStr>],
    stdout: std::fs::File,
    stderr: std::fs::File,
) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("RUST_BACKTRACE", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    command
}

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing behind.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The output of a finished `strata` run.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `strata <args>` in `dir` and waits up to `timeout` for it to exit; panics (after
/// killing it) if it does not.
pub fn run_strata(dir: &Path, args: &[&str], timeout: Duration) -> Output {
    let stdout_path = dir.join("run-stdout.log");
    let stderr_path = dir.join("run-stderr.log");
    let stdout = std::fs::File::create(&stdout_path).expect("creating stdout file");
    let stderr = std::fs::File::create(&stderr_path).expect("creating stderr file");
    let mut child = strata_command(dir, args, stdout, stderr)
        .spawn()
        .expect("spawning strata");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for strata") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "strata {args:?} did not exit within {timeout:?}; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

/// Sends raw bytes (not necessarily HTTP) and returns whatever comes back before the server
/// closes the connection or `timeout` passes.
pub fn send_raw(addr: &str, bytes: &[u8], timeout: Duration) -> Vec<u8> {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return Vec::new();
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply
}

/// The value of the sample `series` (`name` or `name{labels}`, exactly as rendered) in a
/// Prometheus/OpenMetrics text exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.split_whitespace().next()?.parse().ok()
        })
}

/// The `key=value` fields of the last log line with `message` (text log format), e.g. the
/// `recovered` line: `… INFO strata: recovered directory=… wal_records=0 …`. Panics with the
/// log when there is no such line.
pub fn log_fields(log: &str, message: &str) -> HashMap<String, String> {
    let needle = format!(" {message} ");
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no {message:?} line in the log:\n{log}"));
    let rest = &line[line.find(&needle).unwrap_or(0) + needle.len()..];
    rest.split_whitespace()
        .filter_map(|field| field.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `bytes` gzip-compressed, as a write body with `Content-Encoding: gzip`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// A deterministic xorshift64 byte stream, for garbage input.
pub fn xorshift_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.max(1);
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Asserts that `value` is a JSON number equal to `expected` (within float32 precision).
#[track_caller]
pub fn assert_number(value: &Value, expected: f64) {
    let actual = value
        .as_f64()
        .unwrap_or_else(|| panic!("expected the number {expected}, found {value}"));
    let tolerance = expected.abs().max(1.0) * 1e-6;
    assert!(
        (actual - expected).abs() <= tolerance,
        "expected {expected}, found {actual}"
    );
}

/// Asserts that a JSON `data` array equals `expected`, `None` standing for `null`.
#[track_caller]
pub fn assert_data(value: &Value, expected: &[Option<f64>]) {
    let data = value
        .as_array()
        .unwrap_or_else(|| panic!("expected a data array, found {value}"));
    assert_eq!(
        data.len(),
        expected.len(),
        "data length differs: {value} vs {expected:?}"
    );
    for (i, (actual, expected)) in data.iter().zip(expected).enumerate() {
        match expected {
            None => assert!(
                actual.is_null(),
                "data[{i}]: expected null, found {actual} in {value}"
            ),
            Some(expected) => {
                let actual = actual.as_f64().unwrap_or_else(|| {
                    panic!("data[{i}]: expected {expected}, found {actual} in {value}")
                });
                let tolerance = expected.abs().max(1.0) * 1e-6;
                assert!(
                    (actual - expected).abs() <= tolerance,
                    "data[{i}]: expected {expected}, found {actual} in {value}"
                );
            }
        }
    }
}
