//! The file operations of the log writer, behind a trait so that tests can make them fail
//! where a disk would (fault injection, as Vector's disk buffer does with its `Filesystem`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Creating, syncing and listing durably what the writer touches.
pub(crate) trait Storage: Send + 'static {
    type Segment: Write + Send;

    /// Creates a new file; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Self::Segment>;
    /// Makes a file's written data durable (`fdatasync`).
    fn sync_data(&self, segment: &mut Self::Segment) -> io::Result<()>;
    /// Makes a directory's entries durable.
    fn sync_directory(&self, directory: &Path) -> io::Result<()>;
}

/// The real file system.
pub(crate) struct Disk;

impl Storage for Disk {
    type Segment = File;

    fn create_new(&self, path: &Path) -> io::Result<File> {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
    }

    fn sync_data(&self, segment: &mut File) -> io::Result<()> {
        segment.sync_data()
    }

    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        File::open(directory).and_then(|d| d.sync_all())
    }
}
