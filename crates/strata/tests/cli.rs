//! The command line and process lifecycle: `--version`, `--help`, configuration errors that
//! must stop startup with a clear message, and graceful shutdown on SIGTERM/SIGINT.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, run_strata};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest wait for a `strata` invocation that is expected to exit by itself.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

fn write_config(dir: &Path, config: &Value) -> PathBuf {
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config).expect("json"))
        .expect("writing config");
    path
}

/// A complete, valid configuration on an OS-chosen port, to be broken by each test.
fn valid_config() -> Value {
    json!({
        "main": {"addr": "127.0.0.1:0"},
        "metric-store": {"retention-in-memory": "48h", "memory-cap": 0,
                         "checkpoints": {"directory": "./checkpoints"}}
    })
}

/// Runs `strata serve --config <config>` expecting it to refuse to start; returns stderr.
#[track_caller]
fn refused(config: &Value) -> (String, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_config(dir.path(), config);
    let path_text = path.display().to_string();
    let output = run_strata(dir.path(), &["serve", "--config", &path_text], EXIT_TIMEOUT);
    assert!(
        !output.status.success(),
        "strata started with {config}; stderr:\n{}",
        output.stderr
    );
    assert!(
        !output.stderr.contains("strata listening"),
        "strata listened before failing:\n{}",
        output.stderr
    );
    // One line of message and causes, no backtrace although RUST_BACKTRACE is set.
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr);
    let errors: Vec<&str> = output
        .stderr
        .lines()
        .filter(|l| l.starts_with("Error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", output.stderr);
    for noise in ["backtrace", "Caused by", "at /rustc/", "anyhow::"] {
        assert!(
            !output.stderr.contains(noise),
            "{noise}:\n{}",
            output.stderr
        );
    }
    (output.stderr, path)
}

#[test]
fn version_flag_prints_the_version_and_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    for flag in ["--version", "-V"] {
        let output = run_strata(dir.path(), &[flag], EXIT_TIMEOUT);
        assert!(output.status.success(), "{flag}: {:?}", output.status);
        assert_eq!(
            output.stdout.trim(),
            format!("strata {}", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
}

#[test]
fn help_mentions_serve_and_config_and_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = run_strata(dir.path(), &["--help"], EXIT_TIMEOUT);
    assert!(output.status.success(), "{:?}", output.status);
    assert!(output.stdout.contains("serve"), "{}", output.stdout);
    let output = run_strata(dir.path(), &["serve", "--help"], EXIT_TIMEOUT);
    assert!(output.status.success(), "{:?}", output.status);
    assert!(output.stdout.contains("--config"), "{}", output.stdout);
    // Without a subcommand it is a usage error, not a silent start.
    let output = run_strata(dir.path(), &[], EXIT_TIMEOUT);
    assert_eq!(output.status.code(), Some(2), "{}", output.stderr);
    assert!(output.stderr.contains("Usage"), "{}", output.stderr);
}

#[test]
fn unknown_configuration_key_stops_startup_naming_key_and_file() {
    // Goal: a misspelt key is never silently ignored (COMPAT.md §5.1): the error names the
    // key, its section and the file.
    let mut config = valid_config();
    config["metric-store"]["retention-in-memroy"] = json!("12h");
    let (stderr, path) = refused(&config);
    assert!(stderr.contains("retention-in-memroy"), "{stderr}");
    assert!(stderr.contains("metric-store"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");

    let mut config = valid_config();
    config["mian"] = json!({});
    let (stderr, path) = refused(&config);
    assert!(stderr.contains("\"mian\""), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
}

#[test]
fn missing_or_empty_listen_address_stops_startup() {
    // Goal: decision 14 — `main.addr` is required in a configuration file and may not be
    // empty; the message says which key is wrong.
    let mut config = valid_config();
    config["main"] = json!({});
    let (stderr, path) = refused(&config);
    assert!(stderr.contains("missing required key \"addr\""), "{stderr}");
    assert!(stderr.contains("\"main\""), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");

    config["main"] = json!({"addr": ""});
    let (stderr, _) = refused(&config);
    assert!(
        stderr.contains("\"addr\"") && stderr.contains("must not be empty"),
        "{stderr}"
    );

    let mut config = valid_config();
    config.as_object_mut().expect("object").remove("main");
    let (stderr, _) = refused(&config);
    assert!(
        stderr.contains("missing required section \"main\""),
        "{stderr}"
    );
}

#[test]
fn unusable_settings_stop_startup_with_a_clear_error() {
    // Goal: an unreadable file, an invalid JWT key and an unsupported feature are refused
    // with messages naming the cause.
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.json");
    let missing_text = missing.display().to_string();
    let output = run_strata(
        dir.path(),
        &["serve", "--config", &missing_text],
        EXIT_TIMEOUT,
    );
    assert!(!output.status.success());
    assert!(
        output.stderr.contains("cannot read the configuration file"),
        "{}",
        output.stderr
    );
    assert!(output.stderr.contains(&missing_text), "{}", output.stderr);

    let mut config = valid_config();
    config["main"]["jwt-public-key"] = json!("not base64!");
    let (stderr, _) = refused(&config);
    assert!(stderr.contains("jwt-public-key"), "{stderr}");

    let mut config = valid_config();
    config["main"]["https-cert-file"] = json!("/etc/cert.pem");
    let (stderr, _) = refused(&config);
    assert!(
        stderr.contains("\"https-key-file\" in section \"main\": must be set with https-cert-file"),
        "{stderr}"
    );

    let mut config = valid_config();
    config["metrics"] = json!({"cpu_load": {"frequency": 0, "aggregation": "avg"}});
    let (stderr, _) = refused(&config);
    assert!(
        stderr.contains("frequency") && stderr.contains("metrics.cpu_load"),
        "{stderr}"
    );
}

#[test]
fn address_in_use_stops_startup() {
    // Goal: a listen address that another server holds is an error with a non-zero exit.
    let server = Server::start();
    let mut config = valid_config();
    config["main"]["addr"] = json!(server.addr);
    let (stderr, _) = refused(&config);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(stderr.contains(&server.addr), "{stderr}");
}

#[test]
fn sigterm_and_sigint_shut_down_gracefully_with_exit_code_0() {
    // Goal: a service manager's SIGTERM (and Ctrl-C's SIGINT) ends the process within a few
    // seconds with exit code 0 and `shutdown complete` in the log.
    for signal in ["TERM", "INT"] {
        let mut server = Server::start();
        server.write_ok("c", "m,host=h value=1\n");
        server.signal(signal);
        let status = server
            .wait_exit(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("strata ignored SIG{signal}; log:\n{}", server.log()));
        let log = server.log();
        assert_eq!(status.code(), Some(0), "SIG{signal}: {status}; log:\n{log}");
        assert!(log.contains(&format!("SIG{signal} received")), "{log}");
        assert!(log.contains("shutdown complete"), "{log}");
    }
}

#[test]
fn serve_without_config_uses_the_embedded_default() {
    // Goal: decision 14 — `strata serve` without `--config` listens on 127.0.0.1:8082 with
    // auto-registered metrics and 48 h retention. Port 8082 may be taken on a developer
    // machine; then the bind error must still name the default address.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut guard = common::ChildGuard(common::spawn_strata(dir.path(), &["serve".as_ref()]));
    let child = &mut guard.0;
    let log = || {
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stdout.log"), read("stderr.log"))
    };
    let deadline = std::time::Instant::now() + EXIT_TIMEOUT;
    let exited = loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            break Some(status);
        }
        if log().contains("strata listening") {
            break None;
        }
        if std::time::Instant::now() > deadline {
            panic!("strata serve neither listened nor exited; log:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    match exited {
        Some(status) => {
            let log = log();
            assert!(!status.success());
            assert!(log.contains("cannot listen on 127.0.0.1:8082"), "{log}");
        }
        None => {
            let text = log();
            assert!(text.contains("addr=127.0.0.1:8082"), "{text}");
            assert!(text.contains("config=embedded default"), "{text}");
            assert!(text.contains("metrics=\"auto-registered\""), "{text}");
            assert!(text.contains("retention=172800s"), "{text}");
            // It holds the port, so this answer is its own.
            let health = common::http("127.0.0.1:8082", "GET", "/healthz", &[], b"");
            assert_eq!(health.status, 200);
            let status = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success());
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let status = loop {
                if let Some(status) = child.try_wait().expect("waiting") {
                    break status;
                }
                if std::time::Instant::now() > deadline {
                    panic!("strata ignored SIGTERM; log:\n{}", log());
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            assert_eq!(status.code(), Some(0), "{}", log());
        }
    }
}

#[test]
fn frequencies_beyond_one_day_stop_startup() {
    // Goal: a metric frequency (configured or the default for auto-registered metrics)
    // outside 1 s – 1 day is refused at startup. Before: 9223372036854775807 was accepted,
    // buffer ends overflowed and queries returned nothing.
    let mut config = valid_config();
    config["metrics"] = json!({"cpu_load": {"frequency": i64::MAX, "aggregation": "avg"}});
    let (stderr, _) = refused(&config);
    assert!(
        stderr.contains("metrics.cpu_load") && stderr.contains("from 1 to 86400"),
        "{stderr}"
    );
    let mut config = valid_config();
    config["metric-store"]["default-frequency"] = json!(86_401);
    let (stderr, _) = refused(&config);
    assert!(
        stderr.contains("default-frequency") && stderr.contains("from 1 to 86400"),
        "{stderr}"
    );
}

#[test]
fn memory_cap_is_optional_and_ignored_checkpoint_keys_are_warned_about() {
    // Goal: the README's optional keys are optional (`memory-cap` absent = unlimited), and
    // `checkpoints.file-format` / `max-wal-size`, parsed but without effect, say so at
    // startup (COMPAT.md decision 17). Before: refused without `memory-cap`; silent.
    let server = Server::start_with_config(&json!({
        "metric-store": {"checkpoints": {"file-format": "json", "max-wal-size": "1GiB"}}
    }));
    assert!(server.config()["metric-store"].get("memory-cap").is_none());
    let log = server.log();
    assert!(log.contains("memory_cap_bytes=0"), "{log}");
    assert!(
        log.contains("checkpoints.file-format \"json\" is ignored"),
        "{log}"
    );
    assert!(
        log.contains("checkpoints.max-wal-size 1073741824 is ignored"),
        "{log}"
    );
    // Without the keys, no warning.
    let quiet = Server::start();
    assert!(!quiet.log().contains("is ignored"), "{}", quiet.log());
}

#[test]
fn remote_write_needs_the_write_ahead_log() {
    // Goal: (issue 7) `metric-store.remote-write` with `wal.fsync: "off"` stops startup
    // with the reason (forwarding reads the log); a valid list starts the server, which
    // says where the endpoint starts reading.
    let endpoint = json!([{"url": "http://127.0.0.1:1/api/v1/write", "name": "site-vm"}]);
    let mut config = valid_config();
    config["metric-store"]["remote-write"] = endpoint.clone();
    config["metric-store"]["wal"] = json!({"fsync": "off"});
    let (stderr, path) = refused(&config);
    assert!(
        stderr.contains(&path.display().to_string())
            && stderr.contains("\"remote-write\"")
            && stderr.contains("forwarding reads the write-ahead log, which fsync: off disables"),
        "{stderr}"
    );
    let server = Server::start_with_config(&json!({"metric-store": {"remote-write": endpoint}}));
    let log = server.log();
    assert!(
        log.contains("new endpoint starts at the end of the log") && log.contains("site-vm"),
        "{log}"
    );
}
