//! End-to-end query latency over HTTP on loopback, the shapes cc-backend asks for:
//!
//! - one host × one metric × 24 h at 60 s (a node plot in the job view);
//! - 64 hosts × one metric × 24 h in one request with 64 queries (a system view);
//! - the same 64 hosts through `for-all-nodes`;
//! - one host, a hwthread metric aggregated to the node (8 hwthreads), resampled to 10 min.
//!
//! It starts the release `strata` binary (built by `cargo bench`), loads the data over
//! `/api/write`, then sends each query repeatedly over one keep-alive connection, as
//! cc-backend's HTTP client does, and prints the median, p90 and p99 in microseconds.
//!
//! Each line also gives the server's CPU time per request (from /proc), and a first line the
//! median of `GET /healthz`: what the client and HTTP alone cost on this machine.
//!
//! Run: `cargo bench -p strata --bench http_query`.

// A benchmark fails loudly on any unexpected answer, like a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

const HOSTS: usize = 64;
const POINTS: i64 = 1440;
const HWTHREADS: usize = 8;

fn main() {
    let server = common::Server::start_with_config(&json!({
        "metrics": {
            "cpu_load": {"frequency": 60, "aggregation": null},
            "flops_any": {"frequency": 60, "aggregation": "sum"}
        }
    }));
    let end = common::now_s() / 60 * 60;
    let start = end - POINTS * 60;
    load(&server, start);

    let mut connection = Connection::open(&server.addr);
    let one_host = json!({
        "cluster": "hpc1", "from": start, "to": end, "with-stats": true, "with-data": true,
        "queries": [{"metric": "cpu_load", "host": "n0000", "resolution": 60}]
    });
    let many_hosts = json!({
        "cluster": "hpc1", "from": start, "to": end, "with-stats": true, "with-data": true,
        "queries": (0..HOSTS).map(|h| json!({"metric": "cpu_load", "host": host(h), "resolution": 60})).collect::<Vec<_>>()
    });
    let all_nodes = json!({
        "cluster": "hpc1", "from": start, "to": end, "for-all-nodes": ["cpu_load"]
    });
    let aggregated = json!({
        "cluster": "hpc1", "from": start, "to": end,
        "queries": [{"metric": "flops_any", "host": "n0000", "type": "hwthread",
                     "type-ids": (0..HWTHREADS).map(|i| i.to_string()).collect::<Vec<_>>(),
                     "aggreg": true, "resolution": 600}]
    });
    // The HTTP floor: a request that does no work, on the same connection and client.
    let mut floor: Vec<f64> = (0..3000)
        .map(|_| {
            let started = Instant::now();
            let (status, _) = connection.get("/healthz", "");
            assert_eq!(status, 200);
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    floor.sort_by(f64::total_cmp);
    println!(
        "{:<48} median {:>8.0} µs",
        "GET /healthz (HTTP floor)",
        floor[floor.len() / 2]
    );
    for (name, request, iterations) in [
        ("1 host x 1 metric x 24h", &one_host, 3000),
        ("64 hosts x 1 metric x 24h (64 queries)", &many_hosts, 500),
        ("for-all-nodes, 64 hosts x 24h", &all_nodes, 500),
        (
            "1 host, 8 hwthreads aggregated, 24h at 600s",
            &aggregated,
            2000,
        ),
    ] {
        let body = request.to_string();
        let (status, response) = connection.get("/api/query", &body);
        assert_eq!(status, 200, "{response}");
        assert_results(&response);
        let cpu_before = cpu_seconds(server.pid());
        let mut micros: Vec<f64> = (0..iterations)
            .map(|_| {
                let started = Instant::now();
                let (status, _) = connection.get("/api/query", &body);
                let elapsed = started.elapsed().as_secs_f64() * 1e6;
                assert_eq!(status, 200);
                elapsed
            })
            .collect();
        let server_cpu_micros = (cpu_seconds(server.pid()) - cpu_before) * 1e6 / iterations as f64;
        micros.sort_by(f64::total_cmp);
        let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize];
        println!(
            "{name:<48} median {:>8.0} µs  p90 {:>8.0} µs  p99 {:>8.0} µs  server CPU {:>6.0} µs/request  ({iterations} requests, {} response bytes)",
            at(0.5),
            at(0.9),
            at(0.99),
            server_cpu_micros,
            response.len()
        );
    }
}

/// CPU time (user + system) the process has used, from /proc (ticks of 10 ms: the loops
/// above run long enough for that to be fine-grained).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("server's /proc stat");
    // The fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat format") + 2..]
        .split(' ')
        .collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

fn host(index: usize) -> String {
    format!("n{index:04}")
}

/// 64 hosts × 1440 points of `cpu_load`, and 8 hwthreads of `flops_any` on each host.
fn load(server: &common::Server, start: i64) {
    for h in 0..HOSTS {
        let mut lines = String::new();
        for i in 0..POINTS {
            let t = start + i * 60;
            lines.push_str(&format!(
                "cpu_load,hostname={},type=node value={} {t}\n",
                host(h),
                i % 64
            ));
            for hw in 0..HWTHREADS {
                lines.push_str(&format!(
                    "flops_any,hostname={},type=hwthread,type-id={hw} value={} {t}\n",
                    host(h),
                    (i + hw as i64) % 100
                ));
            }
        }
        server.write_ok("hpc1", &lines);
    }
}

/// Every entry of every result has data: the benchmark measures real answers.
fn assert_results(response: &str) {
    let value: Value = serde_json::from_str(response).expect("query response is JSON");
    let results = value["results"].as_array().expect("results");
    assert!(!results.is_empty());
    for entry in results
        .iter()
        .flat_map(|r| r.as_array().into_iter().flatten())
    {
        assert!(entry.get("error").is_none(), "{entry}");
        assert!(
            entry["data"].as_array().is_some_and(|d| !d.is_empty()),
            "{entry}"
        );
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connecting to strata");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Self {
            reader: BufReader::new(stream),
        }
    }

    /// Sends `GET target` with a JSON body and reads one response, with a Content-Length
    /// or chunked (large query responses are streamed).
    fn get(&mut self, target: &str, body: &str) -> (u16, String) {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("sending a request");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header line");
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("content length");
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line).expect("chunk size");
                let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..]).expect("chunk");
                line.clear();
                self.reader.read_line(&mut line).expect("chunk end");
                if size == 0 {
                    break;
                }
            }
        } else {
            body.resize(length, 0);
            self.reader.read_exact(&mut body).expect("response body");
        }
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}
