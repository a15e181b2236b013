//! Where an archive lives ([`Location`]) and how a finished file gets there
//! ([`Archive::staging_directory`], [`Archive::publish`]).
//!
//! A local archive is written in place: [`crate::PeriodWriter`] renames each file into the
//! archive directory, and publishing does nothing. An archive on S3 is written the same way
//! into a local staging directory, then uploaded; the staged file is removed whether the
//! upload succeeds or not (a failed one is written again from memory by the next pass).

use crate::read::{Backend, check_cluster};
use crate::s3::S3Settings;
use crate::{Archive, Error, FileSummary};
use std::path::{Path, PathBuf};

/// The directory below the data directory where files bound for S3 are written first.
pub const STAGING_DIRECTORY: &str = "archive-staging";

/// Where an archive lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory: `<directory>/<cluster>/<period_start>.parquet`.
    Local(PathBuf),
    /// An S3 bucket: `<prefix>/<cluster>/<period_start>.parquet`.
    S3(S3Settings),
}

impl Location {
    /// The archive reader (and publisher) over this location ([`Archive::open`],
    /// [`Archive::open_s3`]).
    pub fn open(&self) -> Result<Archive, Error> {
        match self {
            Location::Local(directory) => Ok(Archive::open(directory)),
            Location::S3(settings) => Archive::open_s3(settings),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(directory) => write!(f, "{}", directory.display()),
            Location::S3(settings) if settings.prefix.is_empty() => {
                write!(f, "s3://{}", settings.bucket)
            }
            Location::S3(settings) => write!(f, "s3://{}/{}", settings.bucket, settings.prefix),
        }
    }
}

impl Archive {
    /// The directory a pass hands to [`crate::PeriodWriter::create`]: the archive directory
    /// itself when it is local; for S3, `<data_directory>/archive-staging`, created, and
    /// emptied of what a pass that crashed left there. Call it once at the start of a pass.
    pub fn staging_directory(&self, data_directory: &Path) -> Result<PathBuf, Error> {
        match &self.backend {
            Backend::Local(directory) => Ok(directory.clone()),
            Backend::S3(_) => {
                let staging = data_directory.join(STAGING_DIRECTORY);
                let io = |action| {
                    let path = staging.clone();
                    move |source| Error::Io {
                        action,
                        path,
                        source,
                    }
                };
                match std::fs::remove_dir_all(&staging) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(io("emptying the staging directory")(error)),
                }
                std::fs::create_dir_all(&staging).map_err(io("creating"))?;
                Ok(staging)
            }
        }
    }

    /// Makes a file [`crate::PeriodWriter`] finished in [`Archive::staging_directory`]
    /// visible in the archive: nothing to do for a local archive; for S3 a multipart upload
    /// to `<prefix>/<cluster>/<period_start>.parquet`, visible only once complete (a failed
    /// upload is aborted). The staged file is removed either way; the returned summary's
    /// `path` is the object's `s3://` URL.
    pub fn publish(&self, file: FileSummary, cluster: &str) -> Result<FileSummary, Error> {
        let Backend::S3(s3) = &self.backend else {
            return Ok(file);
        };
        check_cluster(cluster)?;
        let name = format!("{}.parquet", file.period_start_s);
        let uploaded = s3.upload(&file.path, cluster, &name);
        // Removed even after a failure: the next pass writes the period again from memory.
        let _ = std::fs::remove_file(&file.path);
        let url = uploaded?;
        // The next listing must see the new object, whatever the listing cache holds.
        self.forget_listing(cluster);
        Ok(FileSummary {
            path: PathBuf::from(url),
            ..file
        })
    }
}
