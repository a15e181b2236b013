//! Test support shared by the forwarder's tests and the black-box tests: real remote-write
//! receivers started on free loopback ports (Prometheus 2.42 and VictoriaMetrics 1.79 from
//! Debian; `scripts/test.sh` installs them), and a fault-injecting proxy in front of them;
//! moto's S3 server (PyPI) and a TCP proxy that cuts every connection after some bytes, for
//! the archive on object storage; a nats-server (Debian) with JetStream, and a client for it.
//!
//! The proxy decodes requests with its own few lines of snappy and protobuf walking, not with
//! the sender's code, so a bug in the sender's encoding cannot hide itself.
//!
//! A receiver that cannot start fails the test: tests never skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cut;
mod nats;
mod proxy;
mod receivers;
mod tls;

pub use async_nats::jetstream::consumer::AckPolicy;
pub use cut::CutProxy;
pub use nats::{ConsumerState, NatsClient, NatsServer};
pub use proxy::{Fault, FaultProxy, decode_samples};
pub use receivers::{MOTO_PART_MIN_BYTES, Moto, Prometheus, Series, VictoriaMetrics};
pub use tls::{client_config, first_certificate, make_certificates};

use std::net::TcpListener;

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}
