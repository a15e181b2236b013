//! `metric-store.cleanup`: what happens to data older than the retention window.

use std::fmt;
use std::path::PathBuf;

use super::ConfigError;
use super::section::Section;

pub(super) const CLEANUP_KEYS: &[&str] = &["mode", "directory"];

/// `metric-store.cleanup`: what happens to data older than the retention window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupSection {
    pub mode: CleanupMode,
    /// Archive destination; always `Some` when `mode` is [`CleanupMode::Archive`].
    pub directory: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupMode {
    /// Old checkpoint files are deleted.
    #[default]
    Delete,
    /// Old checkpoint files are moved to `cleanup.directory`.
    Archive,
}

impl fmt::Display for CleanupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Delete => "delete",
            Self::Archive => "archive",
        })
    }
}

pub(super) fn parse_cleanup(section: &Section<'_>) -> Result<CleanupSection, ConfigError> {
    let mode = section
        .choice(
            "mode",
            &[
                ("delete", CleanupMode::Delete),
                ("archive", CleanupMode::Archive),
            ],
        )?
        .unwrap_or_default();
    let directory = section.non_empty_string("directory")?.map(PathBuf::from);
    if mode == CleanupMode::Archive && directory.is_none() {
        // cc-metric-store's schema: `if mode == "archive" then required: ["directory"]`.
        return Err(section.missing("directory"));
    }
    Ok(CleanupSection { mode, directory })
}
