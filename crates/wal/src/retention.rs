//! The one place that deletes WAL segments.
//!
//! Every reader that needs the log kept holds a position in it under a name: the snapshot
//! (segments since the newest complete generation are needed for recovery) and each
//! forwarder (segments from its cursor on are still to be sent). A segment is deleted only
//! when it is below every hold, and never the segment the writer is in.

use crate::reader::list_segments;
use crate::writer::sync_directory;
use crate::{Committed, Error, Position, Result};
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The holds on a WAL directory, and the deletion of what none of them needs.
#[derive(Debug)]
pub struct Retention {
    directory: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    holds: BTreeMap<String, Position>,
    /// The writer's published position, once there is a writer.
    writer: Option<Arc<Committed>>,
}

impl Retention {
    pub fn new(wal_directory: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            directory: wal_directory,
            state: Mutex::new(State::default()),
        })
    }

    /// A map of positions and a handle: a panic elsewhere while the lock was held cannot
    /// have left them half-updated, so a poisoned lock is used as it is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer of the log: [`Retention::collect`] never deletes the segment it is in (or
    /// a newer one).
    pub fn set_writer(&self, committed: Arc<Committed>) {
        self.state().writer = Some(committed);
    }

    /// Sets (or moves) the hold named `name`: segments at or after `position.segment` are
    /// kept for it.
    pub fn hold(&self, name: &str, position: Position) {
        self.state().holds.insert(name.to_owned(), position);
    }

    pub fn release(&self, name: &str) {
        self.state().holds.remove(name);
    }

    /// The lowest hold, if any.
    pub fn lowest(&self) -> Option<Position> {
        self.state().holds.values().min().copied()
    }

    /// Deletes the segments below the lowest hold (none when there is no hold), syncs the
    /// directory, returns how many went. Never deletes the segment the writer is in.
    pub fn collect(&self) -> Result<usize> {
        // Held throughout: a hold set meanwhile (a forwarder starting) is never below what
        // is being deleted.
        let state = self.state();
        let Some(lowest) = state.holds.values().min() else {
            return Ok(0);
        };
        let mut below = lowest.segment;
        if let Some(writer) = &state.writer {
            below = below.min(writer.position().segment);
        }
        let mut deleted = 0;
        for file in list_segments(&self.directory)? {
            if file.segment >= below {
                break;
            }
            match std::fs::remove_file(&file.path) {
                Ok(()) => deleted += 1,
                // Gone already: someone else's business (an operator), not a failure.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(Error::io("deleting", &file.path, error)),
            }
        }
        if deleted > 0 {
            sync_directory(&self.directory)?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::segment_file_name;

    fn at(segment: u64) -> Position {
        Position { segment, offset: 0 }
    }

    fn segments(directory: &std::path::Path) -> Vec<u64> {
        list_segments(directory)
            .unwrap()
            .iter()
            .map(|s| s.segment)
            .collect()
    }

    #[test]
    fn only_what_every_hold_has_passed_is_deleted() {
        let directory = tempfile::tempdir().unwrap();
        for segment in 1..=6 {
            std::fs::write(directory.path().join(segment_file_name(segment)), b"").unwrap();
        }
        let retention = Retention::new(directory.path().to_owned());
        // No hold: nothing is known to be redundant.
        assert_eq!(retention.collect().unwrap(), 0);
        retention.hold("snapshot", at(5));
        retention.hold("forward", at(2));
        assert_eq!(retention.lowest(), Some(at(2)));
        assert_eq!(retention.collect().unwrap(), 1);
        assert_eq!(segments(directory.path()), [2, 3, 4, 5, 6]);
        // Moving a hold forward frees what only it kept.
        retention.hold("forward", at(4));
        assert_eq!(retention.collect().unwrap(), 2);
        retention.release("forward");
        assert_eq!(retention.lowest(), Some(at(5)));
        assert_eq!(retention.collect().unwrap(), 1);
        assert_eq!(segments(directory.path()), [5, 6]);
        // A hold past the writer's segment never deletes the writer's.
        retention.set_writer(Arc::new(Committed::new(at(6))));
        retention.hold("snapshot", at(9));
        assert_eq!(retention.collect().unwrap(), 1);
        assert_eq!(segments(directory.path()), [6]);
    }
}
