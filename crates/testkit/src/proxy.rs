//! A remote-write proxy that injects the faults receivers and networks produce: error
//! statuses, throttling with `Retry-After`, stalls, a receiver that stores a request and then
//! loses the response, and a receiver that refuses (and rolls back) any request holding one
//! poison value.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with the next requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Forward and answer what the receiver answered.
    Pass,
    /// Forward after this delay: a slow receiver.
    Delay(Duration),
    /// Answer this status without forwarding, with `Retry-After: <seconds>` if given.
    Status {
        status: u16,
        retry_after_s: Option<u64>,
    },
    /// Hold the request this long, then close the connection without an answer.
    Stall(Duration),
    /// Forward, then close the connection without an answer: the data is stored, the sender
    /// does not know it.
    StoreThenDrop,
    /// 400 without forwarding when any sample in the request has this value (Prometheus rolls
    /// a request back whole); otherwise forward.
    RejectValue(f64),
}

#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    /// Requests answered by the proxy itself with an error, stalled or dropped.
    pub faulted: AtomicU64,
    /// Samples in requests that reached the receiver.
    pub samples_forwarded: AtomicU64,
}

pub struct FaultProxy {
    addr: String,
    fault: Arc<Mutex<Fault>>,
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (a write URL).
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        listener.set_nonblocking(true).expect("nonblocking");
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Shared {
            upstream: upstream.to_owned(),
            fault: fault.clone(),
            counts: counts.clone(),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        let shared = Arc::new(shared);
        let stopping = stop.clone();
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let shared = shared.clone();
                        std::thread::spawn(move || serve(stream, &shared));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            addr,
            fault,
            counts,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    pub fn requests(&self) -> u64 {
        self.counts.requests.load(Ordering::Relaxed)
    }

    pub fn faulted(&self) -> u64 {
        self.counts.faulted.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Shared {
    upstream: String,
    fault: Arc<Mutex<Fault>>,
    counts: Arc<Counts>,
    client: reqwest::blocking::Client,
}

struct Request {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
}

/// Serves one keep-alive connection.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        shared.counts.requests.fetch_add(1, Ordering::Relaxed);
        let fault = shared.fault.lock().unwrap().clone();
        let answer = match fault {
            Fault::Pass => forward(shared, &request),
            Fault::Delay(delay) => {
                std::thread::sleep(delay);
                forward(shared, &request)
            }
            Fault::Status {
                status,
                retry_after_s,
            } => {
                shared.counts.faulted.fetch_add(1, Ordering::Relaxed);
                let headers = retry_after_s
                    .map(|s| vec![("Retry-After".to_owned(), s.to_string())])
                    .unwrap_or_default();
                Some((status, headers, b"injected fault".to_vec()))
            }
            Fault::Stall(duration) => {
                shared.counts.faulted.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(duration);
                None
            }
            Fault::StoreThenDrop => {
                shared.counts.faulted.fetch_add(1, Ordering::Relaxed);
                forward(shared, &request);
                None
            }
            Fault::RejectValue(poison) => {
                let poisoned = decode_samples(&request.body)
                    .is_some_and(|samples| samples.iter().any(|s| s.1 == poison));
                if poisoned {
                    shared.counts.faulted.fetch_add(1, Ordering::Relaxed);
                    Some((400, Vec::new(), b"out of bounds (injected)".to_vec()))
                } else {
                    forward(shared, &request)
                }
            }
        };
        let Some((status, headers, body)) = answer else {
            return;
        };
        let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
            return;
        }
        if request.close {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    let mut length = 0usize;
    let mut close = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok()?,
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
        headers.push((name, value));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        headers,
        body,
        close,
    })
}

type Answer = Option<(u16, Vec<(String, String)>, Vec<u8>)>;

fn forward(shared: &Shared, request: &Request) -> Answer {
    let mut builder = shared
        .client
        .post(&shared.upstream)
        .body(request.body.clone());
    for (name, value) in &request.headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("content-") && lower != "content-length"
            || lower.starts_with("x-prometheus-")
            || lower == "user-agent"
        {
            builder = builder.header(name, value);
        }
    }
    if let Some(samples) = decode_samples(&request.body) {
        shared
            .counts
            .samples_forwarded
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
    }
    let response = builder.send().ok()?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-prometheus-"))
        .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_owned())))
        .collect();
    let body = response.bytes().map(|b| b.to_vec()).unwrap_or_default();
    Some((status, headers, body))
}

/// The (timestamp ms, value) of every sample in a Remote-Write 1.0 request body.
pub fn decode_samples(body: &[u8]) -> Option<Vec<(i64, f64)>> {
    let message = snap::raw::Decoder::new().decompress_vec(body).ok()?;
    let mut samples = Vec::new();
    for (field, series) in fields(&message)? {
        if let (1, Value::Bytes(series)) = (field, series) {
            for (field, sample) in fields(series)? {
                if let (2, Value::Bytes(sample)) = (field, sample) {
                    let (mut value, mut timestamp) = (0.0, 0);
                    for (field, part) in fields(sample)? {
                        match (field, part) {
                            (1, Value::Fixed64(bits)) => value = f64::from_bits(bits),
                            (2, Value::Varint(t)) => timestamp = t as i64,
                            _ => {}
                        }
                    }
                    samples.push((timestamp, value));
                }
            }
        }
    }
    Some(samples)
}

enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    Bytes(&'a [u8]),
}

/// The fields of a protobuf message, or `None` when it is malformed.
fn fields(mut bytes: &[u8]) -> Option<Vec<(u64, Value<'_>)>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut bytes)?),
            1 => {
                let (head, rest) = bytes.split_first_chunk::<8>()?;
                bytes = rest;
                Value::Fixed64(u64::from_le_bytes(*head))
            }
            2 => {
                let length = varint(&mut bytes)? as usize;
                let (head, rest) = (bytes.get(..length)?, bytes.get(length..)?);
                bytes = rest;
                Value::Bytes(head)
            }
            5 => {
                bytes = bytes.get(4..)?;
                Value::Fixed32
            }
            _ => return None,
        };
        out.push((key >> 3, value));
    }
    Some(out)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}
