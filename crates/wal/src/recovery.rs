//! Where recovery starts: which snapshot generation to load and which segment to replay from.
//!
//! A snapshot writes its host files, then its MANIFEST, then removes older generations, then
//! deletes the WAL segments below its number. So a MANIFEST is not the only evidence that a
//! generation was completed, and losing one must never lose the generation:
//!
//! - the newest generation with an intact MANIFEST is complete; newer ones without one were
//!   cut off, and everything they hold is also in it and the WAL after it;
//! - a generation without an intact MANIFEST and no complete generation before it was cut off
//!   only if the WAL still holds every segment from the first one up to it (a first snapshot
//!   that never finished). Otherwise segments it covers were deleted on the strength of it:
//!   it *was* completed and its MANIFEST was damaged or lost since. It is loaded host file by
//!   host file (each has its own checksum) and reported as damage.

use crate::reader::list_segments;
use crate::snapshot::{Generation, Manifest, list_generations};
use crate::writer::sync_directory;
use crate::{Error, FIRST_SEGMENT, Result};
use std::collections::BTreeSet;
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
    let segments: BTreeSet<u64> = list_segments(wal)?.iter().map(|s| s.segment).collect();
    let complete_exists = generations
        .iter()
        .any(|g| matches!(g.manifest, Manifest::Valid { .. }));
    let mut plan = Plan {
        replay_from: FIRST_SEGMENT,
        ..Plan::default()
    };
    // Newest first; older generations than the one loaded are left to the next snapshot.
    for generation in generations {
        let load = match generation.manifest {
            Manifest::Valid { .. } => true,
            Manifest::Missing | Manifest::Damaged(_) if complete_exists => false,
            Manifest::Missing | Manifest::Damaged(_) => {
                let needed = FIRST_SEGMENT..generation.number;
                needed.is_empty() || !needed.clone().all(|s| segments.contains(&s))
            }
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
/// file twice (damage found again at the next start) keeps the first copy.
pub fn quarantine(data_directory: &Path, path: &Path) -> Result<PathBuf> {
    let relative = path
        .strip_prefix(data_directory)
        .ok()
        .map(Path::to_owned)
        .or_else(|| path.file_name().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("unnamed"));
    let target = data_directory.join(QUARANTINE).join(relative);
    if target.exists() {
        return Ok(target);
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
