//! TLS against a real receiver: Prometheus 2.42 serving HTTPS with a certificate from a test
//! CA and requiring a client certificate (`--web.config.file`, `RequireAndVerifyClientCert`).
//! The sender with `ca-file`, `cert-file` and `key-file` delivers, and the samples are read
//! back over the same mutual TLS; without the client certificate, or without the CA, the
//! handshake fails, the batch is retried (never dropped) and the error says why.

// Helpers panic on purpose: a failed setup step is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_forward::config::EndpointConfig;
use strata_forward::deliver::Cancelled;
use strata_forward::labels::Labels;
use strata_forward::proto::OutSample;
use strata_testkit::make_certificates;
use support::{Harness, config, delivered};

/// Prometheus 2.42 serving only HTTPS with mutual TLS, killed on drop. (strata-testkit's
/// receivers speak plain HTTP; readiness here is the port accepting connections, and the
/// sender retries the 503s of a Prometheus still starting.)
struct TlsPrometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for TlsPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus_tls() -> TlsPrometheus {
    let mut dir = Some(tempfile::tempdir().unwrap());
    let d = dir.as_ref().unwrap().path().to_path_buf();
    make_certificates(&d);
    let web = d.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {0}/server.crt\n  key_file: {0}/server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {0}/ca.crt\n",
            d.display()
        ),
    )
    .unwrap();
    let config = d.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    for _ in 0..5 {
        let port = strata_testkit::free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.config.file={}", web.display()))
            .arg(format!("--storage.tsdb.path={}", d.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (scripts/test.sh installs it)");
        let mut prometheus = TlsPrometheus {
            child,
            port,
            dir: dir.take().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = prometheus.child.try_wait() {
                break; // the port was taken: try another
            }
            // Connected, and still running a moment later: the port is Prometheus's, not
            // another test's that won the race for it.
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                std::thread::sleep(Duration::from_millis(300));
                if let Ok(None) = prometheus.child.try_wait() {
                    return prometheus;
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        dir = Some(std::mem::replace(
            &mut prometheus.dir,
            tempfile::tempdir().unwrap(),
        ));
    }
    panic!("prometheus with TLS did not start");
}

fn tls_config(prometheus: &TlsPrometheus, client_certificate: bool, ca: bool) -> EndpointConfig {
    let dir = prometheus.dir.path();
    let mut endpoint = config(&format!(
        "https://127.0.0.1:{}/api/v1/write",
        prometheus.port
    ));
    if ca {
        endpoint.tls.ca_file = Some(dir.join("ca.crt"));
    }
    if client_certificate {
        endpoint.tls.cert_file = Some(dir.join("client.crt"));
        endpoint.tls.key_file = Some(dir.join("client.key"));
    }
    endpoint.timeout = Duration::from_secs(5);
    endpoint
}

/// Delivers until cancelled after `time` and a first failure (on a loaded machine a TLS
/// handshake may take longer than `time`); the delivery must not finish by itself.
async fn retries_until_cancelled(h: &Harness, batch: &[OutSample], time: Duration) {
    let cancel = h.cancel.subscribe();
    let (result, ()) = tokio::join!(h.sender.deliver(batch, &cancel), async {
        tokio::time::sleep(time).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while h.sender.last_error().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        h.cancel.send_replace(true);
    });
    assert_eq!(result, Err(Cancelled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_private_ca() {
    let prometheus = start_prometheus_tls();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let labels = Labels::new(vec![
        ("__name__".to_string(), "fwd_tls".to_string()),
        ("hostname".to_string(), "f0001".to_string()),
    ]);
    let batch: Vec<OutSample> = (0..10)
        .map(|i| OutSample {
            labels: labels.clone(),
            timestamp_ms: now - 60_000 + i * 5_000,
            value: i as f64,
        })
        .collect();

    // A client with the CA and the client certificate, to wait for readiness and read back.
    let dir = prometheus.dir.path();
    let mut identity = std::fs::read(dir.join("client.crt")).unwrap();
    identity.extend(std::fs::read(dir.join("client.key")).unwrap());
    let reader = reqwest::Client::builder()
        .tls_certs_only(
            reqwest::Certificate::from_pem_bundle(&std::fs::read(dir.join("ca.crt")).unwrap())
                .unwrap(),
        )
        .identity(reqwest::Identity::from_pem(&identity).unwrap())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{}", prometheus.port);
    let get = |path: String| {
        let reader = reader.clone();
        async move {
            let response = reader.get(path).send().await.ok()?;
            let ok = response.status().is_success();
            let text = response.text().await.ok()?;
            ok.then_some(text)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(format!("{base}/-/ready")).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "Prometheus with TLS never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let h = Harness::new(&tls_config(&prometheus, true, true));
    assert_eq!(h.deliver(&batch).await, delivered(10, 0));

    let query = format!(
        "{base}/api/v1/query?query=fwd_tls%5B5m%5D&time={}",
        (now + 1000) as f64 / 1000.0
    );
    let text = get(query).await.unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let values = body["data"]["result"][0]["values"].as_array().expect(&text);
    let got: Vec<(i64, f64)> = values
        .iter()
        .map(|p| {
            (
                (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                p[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let want: Vec<(i64, f64)> = batch.iter().map(|s| (s.timestamp_ms, s.value)).collect();
    assert_eq!(got, want);

    // No client certificate: the server refuses the handshake; retried, never dropped.
    let h = Harness::new(&tls_config(&prometheus, false, true));
    retries_until_cancelled(&h, &batch, Duration::from_secs(1)).await;
    assert_eq!(h.endpoint.samples_sent.get(), 0);
    let error = h.sender.last_error().unwrap_or_default();
    eprintln!("without a client certificate: {error}");
    assert!(
        error.to_lowercase().contains("certificate") && !error.contains("BEGIN"),
        "{error}"
    );

    // No CA: the server's certificate does not verify against the system roots.
    let h = Harness::new(&tls_config(&prometheus, true, false));
    retries_until_cancelled(&h, &batch, Duration::from_secs(1)).await;
    let error = h.sender.last_error().unwrap_or_default();
    eprintln!("without the CA: {error}");
    assert!(error.to_lowercase().contains("certificate"), "{error}");

    // insecure-skip-verify accepts the unknown issuer (the client certificate still counts).
    let mut insecure = tls_config(&prometheus, true, false);
    insecure.tls.insecure_skip_verify = true;
    let h = Harness::new(&insecure);
    let later: Vec<OutSample> = batch
        .iter()
        .map(|s| OutSample {
            timestamp_ms: s.timestamp_ms + 60_000,
            ..s.clone()
        })
        .collect();
    assert_eq!(h.deliver(&later).await, delivered(10, 0));
}
