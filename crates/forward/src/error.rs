//! Errors of setting an endpoint up. Sending never fails with an error: every answer of a
//! receiver is a [`crate::client::Response`] that the delivery policy acts on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("relabel rule {index}: invalid regex: {source}")]
    Regex {
        index: usize,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("relabel rule {index}: action replace needs a target label")]
    MissingTargetLabel { index: usize },
    /// Never carries the file's content: it may be a secret.
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error(transparent)]
    Wal(#[from] strata_wal::Error),
    #[error("{0}")]
    Io(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
