//! Where recovery starts: which snapshot generation to load and which segment to replay from.
//!
//! A snapshot of generation `G` (see [`crate::snapshot`]) goes through four steps: S1 writes
//! its packs, S2 its MANIFEST, S3 removes the older generations that `G` does not refer to
//! (each MANIFEST first; [`crate::incremental`]), S4 deletes the WAL segments below `G`,
//! oldest first. A crash can stop it between any two, and a MANIFEST can be damaged or lost
//! at any time after S2. Losing a MANIFEST must never lose the generation, so the MANIFEST is
//! not the only evidence that a generation was completed. For a generation without an intact
//! MANIFEST, recovery looks at what is older:
//!
//! - an older generation `O` with an intact MANIFEST, and the log still has segment `O` (or
//!   there is no log at all, `fsync: off`): `O` and the log after it hold everything, so this
//!   one is set aside. With the log's segment `O` gone, S4 ran for this generation (an older
//!   one that it refers to keeps its MANIFEST through S3): it is loaded. So is it when `O`
//!   refers to a generation that is gone: only S3 of this generation removes one;
//! - an older generation without one: S3 was cut off after it removed that MANIFEST, so this
//!   generation had passed S2. It is loaded;
//! - no older generation, and the log still has its first segment: nothing was ever deleted
//!   on the strength of this generation (S4 deletes the oldest first). It is set aside and the
//!   whole log replayed;
//! - no older generation and no first segment: it is the only copy of what the deleted
//!   segments held (or, under `fsync: off`, the only copy there is). It is loaded.
//!
//! A generation loaded without an intact MANIFEST is reported as damage, and recovery writes
//! it a new one, so that the next crash finds it complete (the third case above, repeated
//! with a newer cut-off generation, would otherwise pass it over).

use crate::reader::list_segments;
use crate::snapshot::{Generation, Manifest, list_generations};
use crate::writer::sync_directory;
use crate::{Error, FIRST_SEGMENT, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// What recovery loads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The generation to load, if any; its MANIFEST may be damaged (see the module doc).
    pub generation: Option<Generation>,
    /// Newer generations that are not needed: cut off (no MANIFEST) or with a damaged one.
    pub set_aside: Vec<Generation>,
    /// The first segment to replay: the generation's number, or the first segment ever.
    pub replay_from: u64,
}

/// Decides what to load from the snapshots under `snapshots` and the segments in `wal`.
pub fn plan(snapshots: &Path, wal: &Path) -> Result<Plan> {
    let generations = list_generations(snapshots)?;
    let numbers: Vec<u64> = generations.iter().map(|g| g.number).collect();
    let segments = list_segments(wal)?;
    let kept = |segment: u64| segments.iter().any(|s| s.segment == segment);
    let mut plan = Plan {
        replay_from: FIRST_SEGMENT,
        ..Plan::default()
    };
    // Newest first; generations older than the one loaded are left to the next snapshot.
    let mut generations = generations.into_iter().peekable();
    while let Some(generation) = generations.next() {
        let load = match (&generation.manifest, generations.peek()) {
            (Manifest::Valid { .. }, _) => true,
            (_, Some(older)) if matches!(older.manifest, Manifest::Valid { .. }) => {
                let refers_to_removed = older
                    .references
                    .iter()
                    .any(|r| !numbers.contains(&r.generation));
                refers_to_removed || (!segments.is_empty() && !kept(older.number))
            }
            (_, Some(_)) => true,
            (_, None) => !kept(FIRST_SEGMENT),
        };
        if load {
            plan.replay_from = generation.number;
            plan.generation = Some(generation);
            break;
        }
        plan.set_aside.push(generation);
    }
    Ok(plan)
}

/// Keeps a damaged file or directory for inspection under `<data>/quarantine/`, at its path
/// relative to the data directory, and returns where. A file is hard-linked: it stays in
/// place as long as recovery may still need its readable part, and when a later snapshot
/// deletes it, the quarantined link remains. A directory is moved. Quarantining the same
/// file twice (damage found again at the next start) keeps the first link.
pub fn quarantine(data_directory: &Path, path: &Path) -> Result<PathBuf> {
    let relative = path
        .strip_prefix(data_directory)
        .ok()
        .map(Path::to_owned)
        .or_else(|| path.file_name().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("unnamed"));
    let mut target = data_directory.join(QUARANTINE).join(relative);
    if target.exists() {
        if !path.is_dir() {
            return Ok(target);
        }
        // A directory is moved, so the same name twice is two directories: keep both.
        let name = target.as_os_str().to_owned();
        target = (1..)
            .map(|n| {
                let mut numbered = name.clone();
                numbered.push(format!(".{n}"));
                PathBuf::from(numbered)
            })
            .find(|candidate| !candidate.exists())
            .unwrap_or(target);
    }
    let parent = target.parent().unwrap_or(data_directory);
    fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
    if path.is_dir() {
        fs::rename(path, &target).map_err(|e| Error::io("moving to quarantine", path, e))?;
        if let Some(source_parent) = path.parent() {
            sync_directory(source_parent)?;
        }
    } else if fs::hard_link(path, &target).is_err() {
        fs::copy(path, &target).map_err(|e| Error::io("copying to quarantine", path, e))?;
    }
    sync_directory(parent)?;
    Ok(target)
}

/// The folder of a data directory that holds damaged files.
pub const QUARANTINE: &str = "quarantine";
