//! The writer's committed position, published for readers that tail the live log.
//!
//! A reader of the segment the writer is in reads only up to this position: the bytes after
//! it may be a group being written, which would look like a torn tail or damage. Readers wait
//! on it with a condition variable, so a tailing reader wakes when there is something to
//! read and costs nothing while there is not.

use crate::Position;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// What the writer has committed (written to the segment file), published for readers.
#[derive(Debug)]
pub struct Committed {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Clone, Copy)]
struct State {
    position: Position,
    closed: bool,
}

impl Committed {
    pub(crate) fn new(position: Position) -> Self {
        Self {
            state: Mutex::new(State {
                position,
                closed: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// The state is two plain fields, always consistent: a panic elsewhere while the lock was
    /// held cannot have left it half-written, so a poisoned lock is used as it is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// End of the last record written; every byte before it in that segment is a complete
    /// record.
    pub fn position(&self) -> Position {
        self.state().position
    }

    /// Blocks until the committed position is past `position` or the log is closed, at most
    /// `timeout`; returns the committed position.
    pub fn wait_past(&self, position: Position, timeout: Duration) -> Position {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.state();
        while state.position <= position && !state.closed {
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.position
    }

    /// Whether the writer has ended: the position will not move again.
    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Called by the writer once `position` is in the file.
    pub(crate) fn publish(&self, position: Position) {
        self.state().position = position;
        self.changed.notify_all();
    }

    pub(crate) fn close(&self) {
        self.state().closed = true;
        self.changed.notify_all();
    }
}

/// Marks the log closed when dropped: held by the writer thread, so that readers learn of its
/// end however it ends.
pub(crate) struct CloseOnDrop(pub(crate) std::sync::Arc<Committed>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn at(segment: u64, offset: u64) -> Position {
        Position { segment, offset }
    }

    #[test]
    fn a_waiter_wakes_on_publish_and_on_close() {
        let committed = Arc::new(Committed::new(at(1, 32)));
        let publisher = {
            let committed = committed.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                committed.publish(at(1, 100));
            })
        };
        // Woken by the publish long before the hour is up.
        assert_eq!(
            committed.wait_past(at(1, 32), Duration::from_secs(3600)),
            at(1, 100)
        );
        publisher.join().unwrap();
        // Already past: returns at once.
        assert_eq!(committed.wait_past(at(1, 50), Duration::ZERO), at(1, 100));
        // Not past and nothing happens: returns the same position after the wait.
        assert_eq!(
            committed.wait_past(at(1, 100), Duration::from_millis(10)),
            at(1, 100)
        );
        let closer = {
            let committed = committed.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                drop(CloseOnDrop(committed));
            })
        };
        assert_eq!(
            committed.wait_past(at(1, 100), Duration::from_secs(3600)),
            at(1, 100)
        );
        assert!(committed.is_closed());
        closer.join().unwrap();
    }
}
