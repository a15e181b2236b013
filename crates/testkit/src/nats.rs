//! A real nats-server (Debian's 2.9, `scripts/test.sh` installs it) on free loopback ports,
//! with JetStream, and a small client for the test side (publish, streams, consumer state)
//! built on async-nats with its own current-thread runtime, so that tests stay synchronous.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;

const BINARY: &str = "nats-server";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts to bind: a free port can be taken between `free_port` and the server's bind,
/// and a restarted server may find its old port in TIME_WAIT for a moment.
const BIND_ATTEMPTS: usize = 5;

/// A nats-server child process with JetStream on, killed when dropped.
pub struct NatsServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    monitor_port: u16,
    login: Login,
    tls: bool,
}

/// How clients must log in.
#[derive(Clone)]
enum Login {
    Anyone,
    Password {
        user: String,
        password: String,
    },
    /// An nkey user; the seed is in `user.nk` in the server's directory.
    Nkey {
        seed: String,
        public_key: String,
    },
}

impl NatsServer {
    /// JetStream on, no authentication.
    pub fn start() -> Self {
        Self::launch(Login::Anyone, false)
    }

    /// JetStream on; clients must log in with `user` and `password`.
    pub fn start_with_auth(user: &str, password: &str) -> Self {
        let login = Login::Password {
            user: user.to_owned(),
            password: password.to_owned(),
        };
        Self::launch(login, false)
    }

    /// JetStream on; clients must sign the server's nonce with a user nkey whose seed is in
    /// [`NatsServer::nkey_seed_file`].
    pub fn start_with_nkey() -> Self {
        let user = nkeys::KeyPair::new_user();
        let login = Login::Nkey {
            seed: user.seed().expect("nkey seed"),
            public_key: user.public_key(),
        };
        Self::launch(login, false)
    }

    /// JetStream on; TLS only, with a client certificate signed by the test CA required.
    /// The certificates ([`crate::make_certificates`]) are in [`NatsServer::tls_dir`].
    pub fn start_with_tls() -> Self {
        Self::launch(Login::Anyone, true)
    }

    fn launch(login: Login, tls: bool) -> Self {
        let mut last = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let mut server = NatsServer {
                child: None,
                dir: tempfile::tempdir().expect("temp dir"),
                port: crate::free_port(),
                monitor_port: crate::free_port(),
                login: login.clone(),
                tls,
            };
            if tls {
                crate::make_certificates(server.dir.path());
            }
            if let Login::Nkey { seed, .. } = &login {
                std::fs::write(server.nkey_seed_file(), format!("{seed}\n"))
                    .expect("writing the seed");
            }
            match server.spawn() {
                Ok(()) => return server,
                Err(log) => last = log,
            }
        }
        panic!("nats-server did not start; last log:\n{last}");
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The seed file of [`NatsServer::start_with_nkey`].
    pub fn nkey_seed_file(&self) -> PathBuf {
        self.dir.path().join("user.nk")
    }

    /// Where ca.crt, server.{crt,key} and client.{crt,key} are, for a TLS server.
    pub fn tls_dir(&self) -> Option<&Path> {
        self.tls.then(|| self.dir.path())
    }

    /// The server's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGTERM and wait: JetStream flushes its store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM through kill(1): testkit has no libc.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same ports with the same JetStream store (stopping it first if it
    /// runs). The ports must stay: the Strata under test is configured with them.
    pub fn restart(&mut self) {
        self.stop();
        let mut last = String::new();
        for _ in 0..BIND_ATTEMPTS {
            match self.spawn() {
                Ok(()) => return,
                Err(log) => last = log,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "nats-server did not restart on port {}; log:\n{last}",
            self.port
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let mut args = vec![
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            self.port.to_string(),
            "-m".to_owned(),
            self.monitor_port.to_string(),
            "-js".to_owned(),
            "-sd".to_owned(),
            path(&dir.join("js")),
            "-l".to_owned(),
            path(&self.log_path()),
        ];
        let mut conf = String::new();
        match &self.login {
            Login::Anyone => {}
            Login::Password { user, password } => {
                conf += &format!("authorization {{ user: {user:?}, password: {password:?} }}\n");
            }
            Login::Nkey { public_key, .. } => {
                conf += &format!("authorization {{ users = [ {{ nkey: {public_key:?} }} ] }}\n");
            }
        }
        if self.tls {
            conf += &format!(
                "tls {{ cert_file: {:?}, key_file: {:?}, ca_file: {:?}, verify: true }}\n",
                path(&dir.join("server.crt")),
                path(&dir.join("server.key")),
                path(&dir.join("ca.crt")),
            );
        }
        if !conf.is_empty() {
            let file = dir.join("nats.conf");
            std::fs::write(&file, conf).expect("writing nats.conf");
            args.extend(["-c".to_owned(), path(&file)]);
        }
        let child = Command::new(BINARY)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                panic!("nats-server not found; scripts/test.sh installs it")
            }
            Err(error) => panic!("nats-server cannot start: {error}"),
        };
        self.child = Some(child);
        self.wait_ready()
    }

    /// Polls the monitor port's `/healthz` (which also waits for JetStream).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        let url = format!("http://127.0.0.1:{}/healthz", self.monitor_port);
        loop {
            let child = self.child.as_mut().expect("started");
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return Err(self.log());
            }
            if let Ok(response) = client.get(&url).send()
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "not ready within {STARTUP_TIMEOUT:?}\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Subscriptions the server holds on exactly `subject` (all clients), from `/subsz`-like
    /// `/connz?subs=1`: lets a test wait until Strata subscribed before publishing core
    /// messages (which are lost when nobody listens).
    pub fn subscriptions_to(&self, subject: &str) -> usize {
        let url = format!(
            "http://127.0.0.1:{}/connz?subs=1&limit=1024",
            self.monitor_port
        );
        let Ok(response) = reqwest::blocking::get(url) else {
            return 0;
        };
        let Ok(body) = response.json::<serde_json::Value>() else {
            return 0;
        };
        body["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["subscriptions_list"].as_array().into_iter().flatten())
            .filter(|s| s.as_str() == Some(subject))
            .count()
    }

    /// Messages the server has sent to the clients subscribed to `subject`, once it holds
    /// none back for them (nothing pending in their outbound buffers); `None` before.
    pub fn sent_to_subscribers(&self, subject: &str) -> Option<u64> {
        let url = format!(
            "http://127.0.0.1:{}/connz?subs=1&limit=1024",
            self.monitor_port
        );
        let body: serde_json::Value = reqwest::blocking::get(url).ok()?.json().ok()?;
        let subscribers: Vec<&serde_json::Value> = body["connections"]
            .as_array()?
            .iter()
            .filter(|c| {
                c["subscriptions_list"]
                    .as_array()
                    .is_some_and(|subs| subs.iter().any(|s| s.as_str() == Some(subject)))
            })
            .collect();
        subscribers
            .iter()
            .all(|c| c["pending_bytes"].as_u64() == Some(0))
            .then(|| {
                subscribers
                    .iter()
                    .filter_map(|c| c["out_msgs"].as_u64())
                    .sum()
            })
    }

    /// Waits until `count` subscriptions to `subject` exist, or panics at the deadline.
    pub fn wait_for_subscriptions(&self, subject: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.subscriptions_to(subject);
            if now >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{now} of {count} subscriptions to {subject} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A test-side client, logged in (password, client certificate) if the server wants it.
    pub fn client(&self) -> NatsClient {
        let mut options = async_nats::ConnectOptions::new();
        match &self.login {
            Login::Anyone => {}
            Login::Password { user, password } => {
                options = options.user_and_password(user.clone(), password.clone());
            }
            Login::Nkey { seed, .. } => options = options.nkey(seed.clone()),
        }
        if let Some(dir) = self.tls_dir() {
            options = options
                .require_tls(true)
                .add_root_certificates(dir.join("ca.crt"))
                .add_client_certificate(dir.join("client.crt"), dir.join("client.key"));
        }
        NatsClient::connect(&self.url(), options)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn path(path: &Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_owned()
}

/// A consumer's state as the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerState {
    /// Messages not yet delivered.
    pub num_pending: u64,
    /// Messages delivered and not acknowledged.
    pub num_ack_pending: usize,
    /// Messages delivered more than once.
    pub num_redelivered: usize,
}

/// A synchronous NATS client for tests.
pub struct NatsClient {
    runtime: tokio::runtime::Runtime,
    client: async_nats::Client,
    js: jetstream::Context,
}

impl NatsClient {
    pub fn connect(url: &str, options: async_nats::ConnectOptions) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = runtime
            .block_on(options.connect(url))
            .unwrap_or_else(|e| panic!("test client cannot connect to {url}: {e}"));
        // `jetstream::new` spawns a task: inside the runtime.
        let js = runtime.block_on(async { jetstream::new(client.clone()) });
        Self {
            runtime,
            client,
            js,
        }
    }

    /// Core publish of each payload, then a flush (the server has them all).
    pub fn publish(&self, subject: &str, payloads: impl IntoIterator<Item = Vec<u8>>) {
        self.runtime.block_on(async {
            for payload in payloads {
                self.client
                    .publish(subject.to_owned(), payload.into())
                    .await
                    .expect("publish");
            }
            self.client.flush().await.expect("flush");
        });
    }

    /// JetStream publish of each payload, waiting for every acknowledgement (stored).
    pub fn publish_stored(&self, subject: &str, payloads: impl IntoIterator<Item = Vec<u8>>) {
        self.runtime.block_on(async {
            let js = &self.js;
            let mut acks = Vec::new();
            for payload in payloads {
                acks.push(
                    js.publish(subject.to_owned(), payload.into())
                        .await
                        .expect("JetStream publish"),
                );
            }
            for ack in acks {
                ack.await.expect("JetStream publish acknowledgement");
            }
        });
    }

    /// Creates a file-stored stream on `subjects`.
    pub fn create_stream(&self, name: &str, subjects: &[&str]) {
        self.runtime.block_on(async {
            let js = &self.js;
            js.create_stream(jetstream::stream::Config {
                name: name.to_owned(),
                subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .expect("creating the stream");
        });
    }

    /// A consumer's state; `None` while it does not exist.
    pub fn consumer_state(&self, stream: &str, consumer: &str) -> Option<ConsumerState> {
        self.runtime.block_on(async {
            let js = &self.js;
            let stream = js.get_stream(stream).await.ok()?;
            let mut consumer: jetstream::consumer::PullConsumer =
                stream.get_consumer(consumer).await.ok()?;
            let info = consumer.info().await.ok()?;
            Some(ConsumerState {
                num_pending: info.num_pending,
                num_ack_pending: info.num_ack_pending,
                num_redelivered: info.num_redelivered,
            })
        })
    }

    /// Creates a durable pull consumer with the given ack policy (to test what Strata does
    /// with one it did not create).
    pub fn create_consumer(
        &self,
        stream: &str,
        name: &str,
        ack_policy: jetstream::consumer::AckPolicy,
    ) {
        self.runtime.block_on(async {
            let js = &self.js;
            let stream = js.get_stream(stream).await.expect("stream");
            stream
                .create_consumer(jetstream::consumer::pull::Config {
                    durable_name: Some(name.to_owned()),
                    ack_policy,
                    ..Default::default()
                })
                .await
                .expect("creating the consumer");
        });
    }
}
