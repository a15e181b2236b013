//! Forwarding to Prometheus remote-write receivers, straight from the write-ahead log.
//!
//! (Design note to be completed as the crate lands: cursor, shards, acknowledgements.)
//!
//! The sending half: [`relabel`] turns a sample's labels into the endpoint's [`labels::Labels`],
//! [`proto`] encodes a batch (protobuf + snappy block), [`client`] sends it and classifies the
//! answer, [`deliver`] applies the per-batch policy (retries, bisection, fallback, poison),
//! [`deadletter`] keeps what was given up on, [`metrics`] counts all of it.

pub mod client;
pub mod config;
pub mod deadletter;
pub mod deliver;
pub mod error;
pub mod labels;
pub mod metrics;
pub mod proto;
pub mod relabel;

pub use config::{EndpointConfig, Protocol, QueueConfig, RelabelAction, RelabelRule};
