//! Test harness for the forwarder: a fault-injecting remote-write receiver on a free
//! loopback port (a small HTTP/1.1 responder on a tokio `TcpListener`, so a test can answer
//! any status, stall, or store a request and then drop the connection), the test's own
//! decoding of request bodies (its own prost structs and snappy, sharing nothing with the
//! encoder under test), and a `Sender` built the way the pipeline builds one.
//!
//! Every test binary includes this module with `mod support;` and uses only part of it.

#![allow(dead_code)]
// Setup steps that fail are failed tests.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use prost::Message;
use strata_forward::config::{EndpointConfig, Protocol};
use strata_forward::deadletter::DeadLetter;
use strata_forward::deliver::Sender;
use strata_forward::labels::Labels;
use strata_forward::metrics::{EndpointMetrics, Metrics, RemoteLabel, RemoteReasonLabel};
use strata_forward::proto::OutSample;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---- the test's own view of the wire format (field numbers from the specs) ----

#[derive(Clone, PartialEq, Message)]
pub struct WireWriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<WireSeries>,
}
#[derive(Clone, PartialEq, Message)]
pub struct WireSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<WireLabel>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<WireSample>,
}
#[derive(Clone, PartialEq, Message)]
pub struct WireLabel {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}
#[derive(Clone, PartialEq, Message)]
pub struct WireSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}
#[derive(Clone, PartialEq, Message)]
pub struct WireRequestV2 {
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<WireSeriesV2>,
}
#[derive(Clone, PartialEq, Message)]
pub struct WireSeriesV2 {
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<WireSample>,
}

/// A sample as the receiver decoded it: labels as `name=value` pairs in wire order.
#[derive(Debug, Clone, PartialEq)]
pub struct Got {
    pub labels: Vec<(String, String)>,
    pub timestamp_ms: i64,
    pub value: f64,
}

impl Got {
    pub fn is_probe(&self) -> bool {
        self.labels
            .iter()
            .any(|(n, v)| n == "__name__" && v == strata_forward::deliver::PROBE_METRIC)
    }

    pub fn of(sample: &OutSample) -> Got {
        Got {
            labels: sample
                .labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            timestamp_ms: sample.timestamp_ms,
            value: sample.value,
        }
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub samples: Vec<Got>,
    /// The body decoded as a 2.0 request (by its content type).
    pub v2: bool,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    pub fn is_probe(&self) -> bool {
        !self.samples.is_empty() && self.samples.iter().all(Got::is_probe)
    }
    pub fn contains_value(&self, value: f64) -> bool {
        self.samples.iter().any(|s| s.value == value)
    }
}

fn decode(headers: &HashMap<String, String>, body: &[u8]) -> (bool, Vec<Got>) {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("snappy block body");
    let v2 = headers
        .get("content-type")
        .is_some_and(|t| t.contains("io.prometheus.write.v2.Request"));
    let mut out = Vec::new();
    if v2 {
        let request = WireRequestV2::decode(raw.as_slice()).expect("v2 protobuf");
        assert_eq!(request.symbols.first().map(String::as_str), Some(""));
        for series in request.timeseries {
            let labels: Vec<(String, String)> = series
                .labels_refs
                .chunks(2)
                .map(|p| {
                    (
                        request.symbols[p[0] as usize].clone(),
                        request.symbols[p[1] as usize].clone(),
                    )
                })
                .collect();
            for s in series.samples {
                out.push(Got {
                    labels: labels.clone(),
                    timestamp_ms: s.timestamp,
                    value: s.value,
                });
            }
        }
    } else {
        let request = WireWriteRequest::decode(raw.as_slice()).expect("v1 protobuf");
        for series in request.timeseries {
            let labels: Vec<(String, String)> = series
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            for s in series.samples {
                out.push(Got {
                    labels: labels.clone(),
                    timestamp_ms: s.timestamp,
                    value: s.value,
                });
            }
        }
    }
    (v2, out)
}

// ---- the fault-injecting receiver ----

/// What the receiver does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer with this status and headers; `store` keeps the samples (a rollback
    /// receiver answering 400 stores nothing).
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        store: bool,
    },
    /// Store the samples except those with `refused_value`, and answer `status` with
    /// `headers`: a receiver that ingests partially (Cortex, Mimir, Prometheus's 2.0 path).
    Partial {
        status: u16,
        headers: Vec<(&'static str, String)>,
        refused_value: f64,
    },
    /// Store the samples, then close the connection without answering: a lost 2xx.
    StoreThenDrop,
    /// Hold the connection without answering for this long, then close it.
    Stall(Duration),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::status(204, true)
    }
    pub fn status(status: u16, store: bool) -> Reply {
        Reply::Answer {
            status,
            headers: Vec::new(),
            store,
        }
    }
}

type Script = Box<dyn FnMut(usize, &Received) -> Reply + Send>;

struct State {
    script: Script,
    requests: Vec<Received>,
    stored: Vec<Got>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts a receiver answering each request (numbered from 0) by `script`.
    pub async fn start(script: impl FnMut(usize, &Received) -> Reply + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            script: Box::new(script),
            requests: Vec::new(),
            stored: Vec::new(),
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Receiver { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// What the receiver stored, less the sender's poison probes.
    pub fn stored(&self) -> Vec<Got> {
        let state = self.state.lock().unwrap();
        state
            .stored
            .iter()
            .filter(|s| !s.is_probe())
            .cloned()
            .collect()
    }

    /// Requests that were poison probes.
    pub fn probes(&self) -> usize {
        let state = self.state.lock().unwrap();
        state.requests.iter().filter(|r| r.is_probe()).count()
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        let mut headers = HashMap::new();
        for line in head.lines().skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            match stream.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let body = buffer[head_end..head_end + length].to_vec();
        buffer.drain(..head_end + length);
        let (v2, samples) = decode(&headers, &body);
        let request = Received {
            headers,
            body,
            samples,
            v2,
        };
        let reply = {
            let mut state = state.lock().unwrap();
            let index = state.requests.len();
            let reply = (state.script)(index, &request);
            match &reply {
                Reply::Answer { store: true, .. } | Reply::StoreThenDrop => {
                    state.stored.extend(request.samples.iter().cloned());
                }
                Reply::Partial { refused_value, .. } => {
                    let kept = request.samples.iter().filter(|s| s.value != *refused_value);
                    state.stored.extend(kept.cloned());
                }
                _ => {}
            }
            state.requests.push(request);
            reply
        };
        match reply {
            Reply::Answer {
                status, headers, ..
            }
            | Reply::Partial {
                status, headers, ..
            } => {
                let body = if status >= 300 {
                    format!("scripted {status}\n")
                } else {
                    String::new()
                };
                let mut text = format!(
                    "HTTP/1.1 {status} Scripted\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    text.push_str(&format!("{name}: {value}\r\n"));
                }
                text.push_str("\r\n");
                text.push_str(&body);
                if stream.write_all(text.as_bytes()).await.is_err() {
                    return;
                }
            }
            Reply::StoreThenDrop => return,
            Reply::Stall(time) => {
                tokio::time::sleep(time).await;
                return;
            }
        }
    }
}

// ---- samples and senders ----

pub fn series(metric: &str, host: &str) -> Labels {
    Labels::new(vec![
        ("__name__".to_string(), metric.to_string()),
        ("cluster".to_string(), "fritz".to_string()),
        ("hostname".to_string(), host.to_string()),
    ])
}

/// `count` samples round-robin over `series_count` series, one timestamp per round, values
/// distinct (the sample's index).
pub fn samples(count: usize, series_count: usize, start_ms: i64) -> Vec<OutSample> {
    let all: Vec<Labels> = (0..series_count)
        .map(|i| series(&format!("metric_{}", i % 3), &format!("h{i:04}")))
        .collect();
    (0..count)
        .map(|i| OutSample {
            labels: all[i % series_count].clone(),
            timestamp_ms: start_ms + (i / series_count) as i64 * 1000,
            value: i as f64,
        })
        .collect()
}

/// Fast retries, so fault tests take milliseconds.
pub fn config(url: &str) -> EndpointConfig {
    let mut config = EndpointConfig::new(url);
    config.name = "test-endpoint".to_string();
    config.queue.min_backoff = Duration::from_millis(1);
    config.queue.max_backoff = Duration::from_millis(5);
    config.timeout = Duration::from_secs(10);
    config
}

pub struct Harness {
    pub sender: Sender,
    pub metrics: Metrics,
    pub endpoint: EndpointMetrics,
    pub dir: tempfile::TempDir,
    pub cancel: tokio::sync::watch::Sender<bool>,
}

impl Harness {
    pub fn new(config: &EndpointConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::register(&mut Registry::with_prefix("strata"));
        let endpoint = metrics.endpoint(&config.name);
        let dead_letter = DeadLetter::new(dir.path(), &config.name);
        let sender = Sender::new(config, endpoint.clone(), dead_letter).unwrap();
        let (cancel, _) = tokio::sync::watch::channel(false);
        Harness {
            sender,
            metrics,
            endpoint,
            dir,
            cancel,
        }
    }

    pub async fn deliver(&self, samples: &[OutSample]) -> strata_forward::deliver::Delivered {
        let cancel = self.cancel.subscribe();
        tokio::time::timeout(
            Duration::from_secs(120),
            self.sender.deliver(samples, &cancel),
        )
        .await
        .expect("delivery finished in time")
        .expect("delivery not cancelled")
    }

    pub fn dropped(&self, reason: &'static str) -> u64 {
        self.metrics
            .samples_dropped
            .get_or_create(&RemoteReasonLabel {
                remote_name: "test-endpoint".to_string(),
                reason,
            })
            .get()
    }

    pub fn bisections(&self) -> u64 {
        self.metrics
            .bisections
            .get_or_create(&RemoteLabel {
                remote_name: "test-endpoint".to_string(),
            })
            .get()
    }

    pub fn dead_letter(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("test-endpoint.deadletter"))
            .unwrap_or_default()
    }
}

/// The protocol a receiver saw per request, for fallback tests.
pub fn protocols(requests: &[Received]) -> Vec<Protocol> {
    requests
        .iter()
        .map(|r| if r.v2 { Protocol::V2 } else { Protocol::V1 })
        .collect()
}

/// Each series' (timestamp, value) pairs in arrival order.
pub type SeriesSamples = BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>>;

/// Samples grouped by series in arrival order: per-series order checks.
pub fn by_series(samples: &[Got]) -> SeriesSamples {
    let mut out: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for s in samples {
        out.entry(s.labels.clone())
            .or_default()
            .push((s.timestamp_ms, s.value));
    }
    out
}

// ---- common scripts and expectations ----

/// Answers `status` (storing nothing) to the first `count` requests, then 204.
pub fn fail_first(count: usize, status: u16) -> impl FnMut(usize, &Received) -> Reply {
    move |i, _| {
        if i < count {
            Reply::status(status, false)
        } else {
            Reply::ok()
        }
    }
}

/// A rollback receiver: answers `status` and stores nothing for any request holding a
/// sample with `value`; 204 otherwise.
pub fn refuse_value(value: f64, status: u16) -> impl FnMut(usize, &Received) -> Reply {
    move |_, r| {
        // A probe's value is 1: tests refuse other values.
        if r.contains_value(value) && !r.is_probe() {
            Reply::status(status, false)
        } else {
            Reply::ok()
        }
    }
}

pub fn delivered(sent: usize, dropped: usize) -> strata_forward::deliver::Delivered {
    strata_forward::deliver::Delivered { sent, dropped }
}

/// The batch as the receiver should have stored it, less the samples with `value`.
pub fn without(batch: &[OutSample], value: f64) -> Vec<Got> {
    batch
        .iter()
        .filter(|s| s.value != value)
        .map(Got::of)
        .collect()
}
