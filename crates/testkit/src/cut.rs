//! A TCP proxy that plays a server going away: once the clients have sent a given number of
//! bytes through it, it closes every connection and closes each new one at once, until
//! restored.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Forwards `127.0.0.1:<port>` to a target, and can cut it.
pub struct CutProxy {
    addr: String,
    state: Arc<State>,
}

struct State {
    target: String,
    /// Bytes from clients still forwarded before the cut.
    budget: AtomicU64,
    cut: AtomicBool,
    /// Whether a cut happened since the proxy started or was restored.
    tripped: AtomicBool,
    stopped: AtomicBool,
    connections: Mutex<Vec<TcpStream>>,
}

impl State {
    fn cut_all(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.tripped.store(true, Ordering::SeqCst);
        for stream in self.connections.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl CutProxy {
    /// A proxy to `target` (`host:port`) that forwards everything until [`CutProxy::cut_after`].
    pub fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let state = Arc::new(State {
            target: target.to_owned(),
            budget: AtomicU64::new(u64::MAX),
            cut: AtomicBool::new(false),
            tripped: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });
        let accepting = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if accepting.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&accepting.target) else {
                    continue;
                };
                forward(accepting.clone(), client, server);
            }
        });
        Self { addr, state }
    }

    /// `host:port` to connect to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Cuts every connection once clients have sent `bytes` more bytes.
    pub fn cut_after(&self, bytes: u64) {
        self.state.budget.store(bytes, Ordering::SeqCst);
    }

    /// Whether the proxy has cut since it started or was last restored.
    pub fn has_cut(&self) -> bool {
        self.state.tripped.load(Ordering::SeqCst)
    }

    /// Forwards again, without a limit.
    pub fn restore(&self) {
        self.state.budget.store(u64::MAX, Ordering::SeqCst);
        self.state.tripped.store(false, Ordering::SeqCst);
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        self.state.cut_all();
        // Wakes the accepting thread so that it sees `stopped`.
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Pumps both directions of one connection on two threads.
fn forward(state: Arc<State>, client: TcpStream, server: TcpStream) {
    {
        let mut connections = state.connections.lock().expect("lock");
        for stream in [&client, &server] {
            if let Ok(clone) = stream.try_clone() {
                connections.push(clone);
            }
        }
    }
    let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream = state.clone();
    std::thread::spawn(move || pump(client_read, server, Some(&upstream)));
    std::thread::spawn(move || pump(server_read, client, None));
    drop(state);
}

/// Copies `from` to `to` until either closes; `budget` counts the bytes of the client side.
fn pump(mut from: TcpStream, mut to: TcpStream, budget: Option<&State>) {
    let mut buffer = vec![0u8; 16 << 10];
    while let Ok(read) = from.read(&mut buffer) {
        if read == 0 {
            break;
        }
        let mut send = read;
        if let Some(state) = budget {
            if state.cut.load(Ordering::SeqCst) {
                break;
            }
            let wanted = read as u64;
            // The budget before this read (unchanged when unlimited).
            let (Ok(left) | Err(left)) =
                state
                    .budget
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                        (left != u64::MAX).then(|| left - left.min(wanted))
                    });
            send = left.min(wanted) as usize;
        }
        if to.write_all(&buffer[..send]).is_err() {
            break;
        }
        if let Some(state) = budget
            && state.budget.load(Ordering::SeqCst) == 0
        {
            state.cut_all();
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
