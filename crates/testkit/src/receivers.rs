//! Real receivers as child processes, killed when dropped.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A series as a receiver stores it: labels, and (timestamp ms, value) in stored order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(i64, f64)>,
}

struct Process {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
    name: &'static str,
}

impl Process {
    fn start(
        name: &'static str,
        binary: &str,
        args: impl Fn(&str, &Path) -> Vec<String>,
        ready_path: &str,
    ) -> Self {
        Self::start_with_env(name, binary, args, ready_path, &[])
    }

    fn start_with_env(
        name: &'static str,
        binary: &str,
        args: impl Fn(&str, &Path) -> Vec<String>,
        ready_path: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let addr = format!("127.0.0.1:{}", crate::free_port());
            let log = std::fs::File::create(dir.path().join("log")).expect("log file");
            let child = Command::new(binary)
                .args(args(&addr, dir.path()))
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("{name} ({binary}) cannot start: {e}; scripts/test.sh installs it")
                });
            let mut process = Process {
                child,
                dir,
                addr,
                name,
            };
            match process.wait_ready(ready_path) {
                Ok(()) => return process,
                Err(log) => last = log,
            }
        }
        panic!("{name} did not start; last log:\n{last}");
    }

    fn wait_ready(&mut self, path: &str) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let client = client();
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(self.log());
            }
            if let Ok(response) = client.get(format!("http://{}{path}", self.addr)).send()
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(format!(
                    "not ready within {STARTUP_TIMEOUT:?}\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn get_json(&self, target: &str) -> Value {
        let response = client()
            .get(format!("http://{}{target}", self.addr))
            .send()
            .unwrap_or_else(|e| panic!("{} GET {target}: {e}", self.name));
        let status = response.status();
        let text = response.text().unwrap_or_default();
        assert!(
            status.is_success(),
            "{} GET {target}: {status} {text}",
            self.name
        );
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} GET {target}: {e}: {text}", self.name))
    }

    fn get_text(&self, target: &str) -> String {
        client()
            .get(format!("http://{}{target}", self.addr))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_else(|e| panic!("{} GET {target}: {e}", self.name))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// VictoriaMetrics single-node: stores duplicates and out-of-order samples as they come, so
/// its export shows exactly what arrived, duplicates included.
pub struct VictoriaMetrics(Process);

impl VictoriaMetrics {
    pub fn start() -> Self {
        Self(Process::start(
            "victoria-metrics",
            "victoria-metrics",
            |addr, dir| {
                vec![
                    format!("-httpListenAddr={addr}"),
                    format!("-storageDataPath={}", dir.join("data").display()),
                    "-retentionPeriod=100y".into(),
                    "-search.latencyOffset=0s".into(),
                    "-search.disableCache".into(),
                    "-loggerLevel=ERROR".into(),
                ]
            },
            "/health",
        ))
    }

    pub fn addr(&self) -> &str {
        &self.0.addr
    }

    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.0.addr)
    }

    /// Every raw sample of the series matching `selector` (duplicates included), points in
    /// timestamp order.
    pub fn export(&self, selector: &str) -> Vec<Series> {
        // Make what was just written searchable.
        self.0.get_text("/internal/force_flush");
        let text = self
            .0
            .get_text(&format!("/api/v1/export?match[]={}", encode(selector)));
        let mut all = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let value: Value = serde_json::from_str(line).expect("export line");
            let labels = labels(&value["metric"]);
            let values = value["values"].as_array().expect("values");
            let timestamps = value["timestamps"].as_array().expect("timestamps");
            let mut points: Vec<(i64, f64)> = timestamps
                .iter()
                .zip(values)
                .map(|(t, v)| (t.as_i64().unwrap(), number(v)))
                .collect();
            points.sort_by_key(|p| p.0);
            all.push(Series { labels, points });
        }
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        all
    }

    /// Rows VictoriaMetrics took in over remote write.
    pub fn rows_inserted(&self) -> f64 {
        let text = self.0.get_text("/metrics");
        text.lines()
            .find(|l| l.starts_with("vm_rows_inserted_total{type=\"promremotewrite\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

/// Prometheus 2.42 with its remote-write receiver: strict (out-of-order and re-sent older
/// samples get 400 and the whole request is rolled back), unless started with an
/// out-of-order window.
pub struct Prometheus(Process);

impl Prometheus {
    pub fn start(out_of_order_window: Option<&str>) -> Self {
        let config = match out_of_order_window {
            None => "global:\n  scrape_interval: 1h\n".to_owned(),
            Some(window) => format!(
                "global:\n  scrape_interval: 1h\nstorage:\n  tsdb:\n    out_of_order_time_window: {window}\n"
            ),
        };
        Self::with_config(config)
    }

    /// Prometheus scraping `http://{target}/metrics` every second as job `strata`.
    pub fn scraping(target: &str) -> Self {
        Self::with_config(format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: strata\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ))
    }

    fn with_config(config: String) -> Self {
        Self(Process::start(
            "prometheus",
            "prometheus",
            move |addr, dir| {
                let path = dir.join("prometheus.yml");
                std::fs::write(&path, &config).expect("prometheus config");
                vec![
                    format!("--config.file={}", path.display()),
                    format!("--storage.tsdb.path={}", dir.join("data").display()),
                    format!("--web.listen-address={addr}"),
                    "--web.enable-remote-write-receiver".into(),
                    "--log.level=warn".into(),
                ]
            },
            "/-/ready",
        ))
    }

    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.0.addr)
    }

    /// Every stored sample of `selector` within `range` (e.g. `"2h"`) before `at_s`.
    pub fn raw(&self, selector: &str, range: &str, at_s: i64) -> Vec<Series> {
        let query = encode(&format!("{selector}[{range}]"));
        let body = self
            .0
            .get_json(&format!("/api/v1/query?query={query}&time={at_s}"));
        let mut all = Vec::new();
        for result in body["data"]["result"].as_array().expect("result") {
            let labels = labels(&result["metric"]);
            let points = result["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|pair| {
                    let time = pair[0].as_f64().expect("time");
                    ((time * 1000.0).round() as i64, number(&pair[1]))
                })
                .collect();
            all.push(Series { labels, points });
        }
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        all
    }

    /// The value of every series `expr` selects now, by its labels.
    pub fn instant(&self, expr: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let body = self
            .0
            .get_json(&format!("/api/v1/query?query={}", encode(expr)));
        body["data"]["result"]
            .as_array()
            .expect("result")
            .iter()
            .map(|result| (labels(&result["metric"]), number(&result["value"][1])))
            .collect()
    }

    /// The metadata Prometheus keeps of scraped `metric`: one `{type, help, unit}` object
    /// per target that exposes it.
    pub fn metadata(&self, metric: &str) -> Vec<Value> {
        let body = self
            .0
            .get_json(&format!("/api/v1/metadata?metric={}", encode(metric)));
        body["data"][metric].as_array().cloned().unwrap_or_default()
    }

    /// A counter or gauge from Prometheus's own `/metrics`.
    pub fn self_metric(&self, name: &str) -> f64 {
        let text = self.0.get_text("/metrics");
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

/// A series' labels as the receivers' JSON APIs give them (`{"__name__": "…", …}`).
fn labels(metric: &Value) -> BTreeMap<String, String> {
    metric
        .as_object()
        .expect("metric")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// A sample value as receivers print it: a JSON number or a string ("NaN", "1.5").
fn number(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// Smallest multipart part [`Moto`] accepts (S3's is 5 MiB): tests upload many small parts.
pub const MOTO_PART_MIN_BYTES: u64 = 64 << 10;

/// moto's S3 server (`moto[server]` from PyPI; scripts/test.sh installs it): a real
/// S3-compatible HTTP server on loopback. It accepts any credentials and does not check
/// signatures.
pub struct Moto(Process);

impl Moto {
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// A moto that checks credentials (its IAM knows no key, so every signed request is
    /// refused with `InvalidAccessKeyId`), with `bucket` created before it begins checking.
    pub fn start_checking_credentials(bucket: &str) -> Self {
        // moto lets this many requests through unchecked: the readiness probe, the bucket.
        let moto = Self::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "2")]);
        moto.create_bucket(bucket);
        moto
    }

    fn start_with_env(env: &[(&str, &str)]) -> Self {
        let found = Command::new("python3")
            .args(["-c", "import moto.server"])
            .output()
            .map(|output| output.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "python3 cannot import moto.server (moto[server] from PyPI); scripts/test.sh installs it"
        );
        let part_min = MOTO_PART_MIN_BYTES.to_string();
        Self(Process::start_with_env(
            "moto",
            "python3",
            |addr, _| {
                let (host, port) = addr.rsplit_once(':').expect("host:port");
                ["-m", "moto.server", "-H", host, "-p", port]
                    .map(String::from)
                    .to_vec()
            },
            "/",
            &[env, &[("S3_UPLOAD_PART_MIN_SIZE", &part_min)]].concat(),
        ))
    }

    pub fn addr(&self) -> &str {
        &self.0.addr
    }

    /// `http://host:port`, the endpoint to configure.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.0.addr)
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder, what: &str) -> Vec<u8> {
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("moto {what}: {e}"));
        let status = response.status();
        let body = response.bytes().unwrap_or_default().to_vec();
        assert!(
            status.is_success(),
            "moto {what}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        body
    }

    /// Creates `bucket` (`PUT /<bucket>`).
    pub fn create_bucket(&self, bucket: &str) {
        let url = format!("http://{}/{bucket}", self.0.addr);
        self.send(client().put(url), &format!("creating bucket {bucket}"));
    }

    /// Stores `bytes` as `bucket/key`.
    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        let url = format!("http://{}/{bucket}/{key}", self.0.addr);
        self.send(client().put(url).body(bytes), &format!("PUT {key}"));
    }

    /// The object `bucket/key`.
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let url = format!("http://{}/{bucket}/{key}", self.0.addr);
        self.send(client().get(url), &format!("GET {key}"))
    }

    /// Every key in `bucket` (sorted; listings of up to 1000 keys).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let url = format!("http://{}/{bucket}?list-type=2", self.0.addr);
        let body = self.send(client().get(url), &format!("listing {bucket}"));
        let mut keys = xml_values(&String::from_utf8_lossy(&body), "Key");
        keys.sort();
        keys
    }

    /// The requests moto has answered so far, as `METHOD target`, from its log.
    pub fn requests(&self) -> Vec<String> {
        self.0
            .log()
            .lines()
            .filter_map(|line| {
                let (_, quoted) = line.split_once('"')?;
                let (request, _) = quoted.split_once('"')?;
                let mut words = request.split(' ');
                Some(format!("{} {}", words.next()?, words.next()?))
            })
            .collect()
    }

    /// Upload ids of the multipart uploads of `bucket` that are neither complete nor aborted.
    pub fn open_uploads(&self, bucket: &str) -> Vec<String> {
        let url = format!("http://{}/{bucket}?uploads", self.0.addr);
        let body = self.send(client().get(url), &format!("listing uploads of {bucket}"));
        xml_values(&String::from_utf8_lossy(&body), "UploadId")
    }
}

/// The texts of every `<tag>…</tag>` in `xml` (no nesting, no entities beyond the usual five).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(value, _)| value))
        .map(|value| {
            value
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}
