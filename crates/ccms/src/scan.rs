//! Finding checkpoint files under a cc-metric-store root (COMPAT.md §6.1) and choosing the
//! snapshots a restore needs (§6.6 with decision 12).

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::{
    Checkpoint, Error, Result, WalContents, read_binary_checkpoint, read_json_checkpoint, read_wal,
};

/// Name of the write-ahead log in a host directory.
const WAL_FILE_NAME: &str = "current.wal";

/// A host directory found under a checkpoint root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFiles {
    /// Name of the cluster directory.
    pub cluster: String,
    /// Name of the host directory.
    pub host: String,
    /// `<from>.json` and `<from>.bin` files, sorted by `from_s` (then JSON before binary).
    pub snapshots: Vec<SnapshotFile>,
    /// `current.wal`, if the directory has one.
    pub wal: Option<PathBuf>,
}

impl HostFiles {
    /// Reads and decodes `current.wal`, if there is one.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read, [`Error::BadMagic`] if it is not a WAL.
    pub fn read_wal(&self) -> Result<Option<WalContents>> {
        let Some(path) = &self.wal else {
            return Ok(None);
        };
        read_wal(&read_file(path)?).map(Some)
    }
}

/// A snapshot file of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Unix seconds from the file name's stem: the start of the interval it covers.
    pub from_s: i64,
    /// Where the file is.
    pub path: PathBuf,
    /// From the extension.
    pub format: SnapshotFormat,
}

impl SnapshotFile {
    /// Reads and decodes the file with the reader for its format.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read, otherwise the errors of
    /// [`read_json_checkpoint`] or [`read_binary_checkpoint`].
    pub fn read(&self) -> Result<Checkpoint> {
        let bytes = read_file(&self.path)?;
        match self.format {
            SnapshotFormat::Json => read_json_checkpoint(&bytes),
            SnapshotFormat::Binary => read_binary_checkpoint(&bytes),
        }
    }
}

/// The format of a snapshot file, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SnapshotFormat {
    /// `<from>.json` (§6.2).
    Json,
    /// `<from>.bin` (§6.3).
    Binary,
}

/// Everything found under a checkpoint root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Host directories, sorted by cluster, then host.
    pub hosts: Vec<HostFiles>,
    /// What was skipped and why, sorted by path. cc-metric-store would refuse to start on
    /// most of these; Strata imports the rest and reports them.
    pub problems: Vec<Problem>,
}

/// Something under the checkpoint root that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file or directory.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: ProblemReason,
}

/// Why a [`Problem`] was skipped.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemReason {
    /// Something other than a directory directly under the root (a fatal error for
    /// cc-metric-store, e.g. after a line without a cluster).
    FileUnderRoot,
    /// Something other than a directory directly under a cluster directory (a fatal error
    /// for cc-metric-store, e.g. after a line without a host).
    FileUnderCluster,
    /// A `.json` or `.bin` file whose stem is not an integer (fatal for cc-metric-store).
    NonIntegerStem,
    /// A cluster, host or snapshot name that is not valid UTF-8.
    NonUtf8Name,
    /// The directory or entry could not be read (permissions, a dangling link, …).
    Unreadable {
        /// What the operating system said.
        error: String,
    },
}

impl fmt::Display for ProblemReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FileUnderRoot => f.write_str("not a directory, but directly under the root"),
            Self::FileUnderCluster => {
                f.write_str("not a directory, but directly under a cluster directory")
            }
            Self::NonIntegerStem => f.write_str("snapshot file name is not <integer>.json|.bin"),
            Self::NonUtf8Name => f.write_str("name is not valid UTF-8"),
            Self::Unreadable { error } => write!(f, "cannot be read: {error}"),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Walks `<root>/<cluster>/<host>/` and lists each host's snapshots and WAL.
///
/// Collects `*.json` and `*.bin` files whose stem is an integer and `current.wal`; ignores
/// other files (`*.bin.tmp`, `*.avro`, …) and subdirectories inside host directories (legacy
/// Avro). Symbolic links are followed. Anything cc-metric-store would abort on, and anything
/// unreadable below the root, becomes a [`Problem`] instead: Strata reports and carries on.
///
/// # Errors
///
/// [`Error::Io`] only if the root itself cannot be listed.
pub fn scan(root: &Path) -> Result<Scan> {
    let mut scan = Scan::default();
    let entries = list_dir(root).map_err(|source| Error::Io {
        path: root.to_owned(),
        source,
    })?;
    for (name, path) in entries {
        match fs::metadata(&path) {
            Err(error) => scan.problem(path, unreadable(&error)),
            Ok(metadata) if !metadata.is_dir() => scan.problem(path, ProblemReason::FileUnderRoot),
            Ok(_) => match name.into_string() {
                Ok(cluster) => scan_cluster(&mut scan, &cluster, &path),
                Err(_) => scan.problem(path, ProblemReason::NonUtf8Name),
            },
        }
    }
    scan.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(scan)
}

/// Adds the hosts of one cluster directory to `scan`.
fn scan_cluster(scan: &mut Scan, cluster: &str, cluster_path: &Path) {
    let entries = match list_dir(cluster_path) {
        Ok(entries) => entries,
        Err(error) => return scan.problem(cluster_path.to_owned(), unreadable(&error)),
    };
    for (name, path) in entries {
        match fs::metadata(&path) {
            Err(error) => scan.problem(path, unreadable(&error)),
            Ok(metadata) if !metadata.is_dir() => {
                scan.problem(path, ProblemReason::FileUnderCluster);
            }
            Ok(_) => match name.into_string() {
                Ok(host) => scan_host(scan, cluster, host, &path),
                Err(_) => scan.problem(path, ProblemReason::NonUtf8Name),
            },
        }
    }
}

/// Adds one host directory to `scan`.
fn scan_host(scan: &mut Scan, cluster: &str, host: String, host_path: &Path) {
    let entries = match list_dir(host_path) {
        Ok(entries) => entries,
        Err(error) => return scan.problem(host_path.to_owned(), unreadable(&error)),
    };
    let mut files = HostFiles {
        cluster: cluster.to_owned(),
        host,
        snapshots: Vec::new(),
        wal: None,
    };
    for (name, path) in entries {
        match fs::metadata(&path) {
            Err(error) => scan.problem(path, unreadable(&error)),
            // Subdirectories are legacy Avro checkpoints, which v1.5 ignores too.
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => match classify(&name) {
                Entry::Snapshot { from_s, format } => files.snapshots.push(SnapshotFile {
                    from_s,
                    path,
                    format,
                }),
                Entry::Wal => files.wal = Some(path),
                Entry::Ignored => {}
                Entry::Problem(reason) => scan.problem(path, reason),
            },
        }
    }
    files
        .snapshots
        .sort_by(|a, b| (a.from_s, a.format, &a.path).cmp(&(b.from_s, b.format, &b.path)));
    scan.hosts.push(files);
}

/// What a file in a host directory is, by name.
enum Entry {
    Snapshot { from_s: i64, format: SnapshotFormat },
    Wal,
    Ignored,
    Problem(ProblemReason),
}

fn classify(name: &std::ffi::OsStr) -> Entry {
    let Some(name) = name.to_str() else {
        let bytes = name.as_encoded_bytes();
        return if bytes.ends_with(b".json") || bytes.ends_with(b".bin") {
            Entry::Problem(ProblemReason::NonUtf8Name)
        } else {
            Entry::Ignored
        };
    };
    if name == WAL_FILE_NAME {
        return Entry::Wal;
    }
    let (stem, format) = if let Some(stem) = name.strip_suffix(".json") {
        (stem, SnapshotFormat::Json)
    } else if let Some(stem) = name.strip_suffix(".bin") {
        (stem, SnapshotFormat::Binary)
    } else {
        return Entry::Ignored;
    };
    // Same grammar as Go's strconv.ParseInt(stem, 10, 64): optional sign, ASCII digits.
    match stem.parse::<i64>() {
        Ok(from_s) => Entry::Snapshot { from_s, format },
        Err(_) => Entry::Problem(ProblemReason::NonIntegerStem),
    }
}

/// Which snapshots to load for a restore cutoff `cutoff_s` (unix seconds), oldest first.
///
/// Every file with `from_s >= cutoff_s`, plus the one straddling the cutoff: the newest with
/// `from_s < cutoff_s` (all of them, should a `.json` and a `.bin` share that stem). Unlike
/// cc-metric-store (§6.6 quirk), the straddling file is kept even when it is the newest file
/// of the host. It is also kept when another file starts exactly at the cutoff, where
/// cc-metric-store drops it: its last sample may lie at the cutoff, and an extra file costs
/// the importer only a read. Files with equal `from_s` keep their order in `snapshots`.
pub fn select_snapshots(snapshots: &[SnapshotFile], cutoff_s: i64) -> Vec<&SnapshotFile> {
    let straddling_s = snapshots
        .iter()
        .map(|snapshot| snapshot.from_s)
        .filter(|&from_s| from_s < cutoff_s)
        .max();
    let mut selected: Vec<&SnapshotFile> = snapshots
        .iter()
        .filter(|snapshot| snapshot.from_s >= cutoff_s || Some(snapshot.from_s) == straddling_s)
        .collect();
    selected.sort_by_key(|snapshot| snapshot.from_s);
    selected
}

impl Scan {
    fn problem(&mut self, path: PathBuf, reason: ProblemReason) {
        self.problems.push(Problem { path, reason });
    }
}

fn unreadable(error: &std::io::Error) -> ProblemReason {
    ProblemReason::Unreadable {
        error: error.to_string(),
    }
}

/// Lists a directory as (name, path) pairs sorted by name, so results are deterministic.
fn list_dir(dir: &Path) -> std::io::Result<Vec<(OsString, PathBuf)>> {
    let mut entries = fs::read_dir(dir)?
        .map(|entry| entry.map(|entry| (entry.file_name(), entry.path())))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    Ok(entries)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}
