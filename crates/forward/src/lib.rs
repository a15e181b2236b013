//! Forwarding to Prometheus remote-write receivers, straight from the write-ahead log.
//!
//! (Design note to be completed as the crate lands: cursor, shards, acknowledgements.)

pub mod config;

pub use config::{EndpointConfig, Protocol, QueueConfig, RelabelAction, RelabelRule};
pub mod client;
pub mod deadletter;
pub mod deliver;
pub mod error;
pub mod labels;
pub mod metrics;
pub mod proto;
pub mod relabel;
