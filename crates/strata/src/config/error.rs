//! [`ConfigError`]: what is wrong with a configuration, and where.

use std::io;
use std::path::PathBuf;

/// A configuration that cannot be used. Every variant names the file; those about a value
/// also name the section path (`""` for the top level, `metric-store.wal`,
/// `metrics.cpu_load`, `metric-store.nats-subscriptions[0]`) and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("{}: cannot read the configuration file: {error}", .path.display())]
    Read { path: PathBuf, error: io::Error },
    /// The file named by a `<name>-file` key could not be read.
    #[error("{}: cannot read {} given by {key:?}: {error}", .file.display(), .path.display())]
    Include {
        file: PathBuf,
        key: String,
        /// The resolved path that was tried.
        path: PathBuf,
        error: io::Error,
    },
    /// The text is not JSON.
    #[error("{}:{line}:{column}: invalid JSON: {message}", .file.display())]
    Json {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A section (or the top level) is not a JSON object.
    #[error("{}: {} must be a JSON object, found {found}", .file.display(), describe_section(.section))]
    NotAnObject {
        file: PathBuf,
        section: String,
        found: String,
    },
    /// A key that is not part of the format (often a typo).
    #[error("{}: unknown key {key:?} {}; expected one of: {}", .file.display(), in_section(.section), .expected.join(", "))]
    UnknownKey {
        file: PathBuf,
        section: String,
        key: String,
        expected: &'static [&'static str],
    },
    /// A required section (`main`, `metric-store`) is absent.
    #[error("{}: missing required section {section:?}", .file.display())]
    MissingSection { file: PathBuf, section: String },
    /// A required key is absent or `null`.
    #[error("{}: missing required key {key:?} {}", .file.display(), in_section(.section))]
    MissingKey {
        file: PathBuf,
        section: String,
        key: String,
    },
    /// A key has a value of the wrong type or out of range.
    #[error("{}: invalid value for key {key:?} {}: {reason}", .file.display(), in_section(.section))]
    InvalidValue {
        file: PathBuf,
        section: String,
        key: String,
        reason: String,
    },
    /// A cc-metric-store feature that Strata does not implement is switched on (Decision 17).
    #[error("{}: key {key:?} {} is not supported: {reason}", .file.display(), in_section(.section))]
    NotSupported {
        file: PathBuf,
        section: String,
        key: String,
        reason: &'static str,
    },
    /// Both `<name>` and `<name>-file` are given.
    #[error("{}: both {section:?} and \"{section}-file\" are given; use one", .file.display())]
    DuplicateSection { file: PathBuf, section: String },
    /// Top-level keys of cc-metric-store's legacy flat format and of the v1.5 format together.
    #[error("{}: mixes the legacy flat format of cc-metric-store before v1.5 ({}) with the v1.5 format ({}); use one (strata config convert FILE prints a legacy file in the v1.5 format)", .file.display(), .legacy.join(", "), .sectioned.join(", "))]
    MixedFormats {
        file: PathBuf,
        /// The legacy keys present.
        legacy: Vec<&'static str>,
        /// The v1.5 keys present.
        sectioned: Vec<&'static str>,
    },
}

/// `section "x"`, or `the top level`.
fn describe_section(section: &str) -> String {
    if section.is_empty() {
        "the top level".to_owned()
    } else {
        format!("section {section:?}")
    }
}

/// `in section "x"`, or `at the top level`.
fn in_section(section: &str) -> String {
    if section.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in section {section:?}")
    }
}
