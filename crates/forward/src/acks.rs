//! The exact low-watermark under parallel shards: which log records are fully acknowledged.
//!
//! A record's samples go to several shards, which finish in any order. Each record read gets
//! a ticket with the number of its samples still in flight; a shard hands the tickets back as
//! its requests are acknowledged (or their samples deliberately dropped). The cursor is the
//! end of the longest prefix of records with nothing in flight: every record before it is
//! done, whatever happened after it. (Vector's `OrderedAcknowledgements`, per record.)

use std::collections::VecDeque;
use strata_wal::Position;

/// Identifies a record handed out by [`Acks::open`].
pub type Ticket = u64;

#[derive(Debug)]
struct Pending {
    end: Position,
    /// The record's sequence number, so a sample in flight need not carry it.
    sequence: u64,
    outstanding: u32,
}

/// Records read and not yet fully acknowledged, oldest first.
#[derive(Debug)]
pub struct Acks {
    /// Ticket of `pending[0]`.
    first: Ticket,
    pending: VecDeque<Pending>,
    /// End of the newest record whose predecessors and itself are all done.
    done: Position,
}

impl Acks {
    /// Starts with everything before `start` acknowledged.
    pub fn new(start: Position) -> Self {
        Self {
            first: 0,
            pending: VecDeque::new(),
            done: start,
        }
    }

    /// Registers record `sequence` ending at `end` with `samples` samples in flight; a
    /// record with none is done at once (once its predecessors are).
    pub fn open(&mut self, end: Position, sequence: u64, samples: u32) -> Ticket {
        let ticket = self.first + self.pending.len() as u64;
        self.pending.push_back(Pending {
            end,
            sequence,
            outstanding: samples,
        });
        self.advance();
        ticket
    }

    /// The sequence number of a record with samples still in flight.
    pub fn sequence(&self, ticket: Ticket) -> Option<u64> {
        let index = ticket.checked_sub(self.first)?;
        Some(self.pending.get(usize::try_from(index).ok()?)?.sequence)
    }

    /// `samples` samples of record `ticket` are acknowledged or deliberately dropped.
    pub fn acknowledge(&mut self, ticket: Ticket, samples: u32) {
        let Some(index) = ticket.checked_sub(self.first) else {
            debug_assert!(false, "ticket {ticket} acknowledged twice");
            return;
        };
        if let Some(pending) = self.pending.get_mut(index as usize) {
            debug_assert!(pending.outstanding >= samples, "more acks than samples");
            pending.outstanding = pending.outstanding.saturating_sub(samples);
        }
        if index == 0 {
            self.advance();
        }
    }

    fn advance(&mut self) {
        while let Some(front) = self.pending.front().filter(|p| p.outstanding == 0) {
            self.done = front.end;
            self.pending.pop_front();
            self.first += 1;
        }
    }

    /// Every record before this position is done.
    pub fn done(&self) -> Position {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(offset: u64) -> Position {
        Position { segment: 1, offset }
    }

    #[test]
    fn the_cursor_waits_for_the_oldest_record() {
        let mut acks = Acks::new(at(24));
        let a = acks.open(at(100), 7, 2);
        let b = acks.open(at(200), 8, 1);
        let empty = acks.open(at(250), 9, 0);
        assert_eq!(empty, 2);
        assert_eq!((acks.sequence(a), acks.sequence(b)), (Some(7), Some(8)));
        acks.acknowledge(b, 1);
        assert_eq!(acks.done(), at(24), "record a is still in flight");
        acks.acknowledge(a, 1);
        assert_eq!(acks.done(), at(24));
        acks.acknowledge(a, 1);
        assert_eq!(acks.done(), at(250), "a, b and the empty record are done");
        acks.open(at(300), 10, 0);
        assert_eq!(acks.done(), at(300));
        assert_eq!(acks.sequence(a), None, "done");
    }

    proptest! {
        /// Against a model: the cursor is the end of the longest fully acknowledged prefix,
        /// whatever order the shards acknowledge in.
        #[test]
        fn matches_the_model(
            sizes in proptest::collection::vec(0u32..4, 1..40),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 0..200),
        ) {
            let mut acks = Acks::new(at(0));
            let mut left: Vec<u32> = sizes.clone();
            for (i, &size) in sizes.iter().enumerate() {
                acks.open(at(i as u64 + 1), i as u64, size);
            }
            for index in order {
                let candidates: Vec<usize> = (0..left.len()).filter(|&i| left[i] > 0).collect();
                if candidates.is_empty() {
                    break;
                }
                let record = candidates[index.index(candidates.len())];
                left[record] -= 1;
                acks.acknowledge(record as u64, 1);
                let prefix = left.iter().take_while(|&&n| n == 0).count();
                prop_assert_eq!(acks.done(), at(prefix as u64));
            }
        }
    }
}
