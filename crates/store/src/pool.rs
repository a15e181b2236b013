//! A bounded pool of buffer allocations.
//!
//! Freed buffers are kept for reuse by new ones, so that retention and new buffers do not
//! churn the allocator. The pool is bounded; beyond its bound freed allocations go back to the
//! allocator. Only allocations of exactly one block's raw tail ([`TAIL_BYTES`]) are pooled: a
//! buffer's tail never needs more, and sealed buffers, whose allocations are exactly the size
//! of their blocks, are not worth keeping.

use crate::buffer::TAIL_BYTES;
use parking_lot::Mutex;

#[derive(Debug)]
pub(crate) struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    /// Most allocations kept; each is [`TAIL_BYTES`].
    buffers_max: usize,
}

impl BufferPool {
    pub(crate) fn new(buffers_max: usize) -> Self {
        Self {
            free: Mutex::new(Vec::new()),
            buffers_max,
        }
    }

    /// An empty vector: a pooled one if available, else a fresh one without an allocation.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.free.lock().pop().unwrap_or_default()
    }

    /// Returns an allocation to the pool, or to the allocator when the pool is full or the
    /// allocation is not a whole tail.
    pub(crate) fn give(&self, mut data: Vec<u8>) {
        if data.capacity() != TAIL_BYTES {
            return;
        }
        let mut free = self.free.lock();
        if free.len() < self.buffers_max {
            data.clear();
            free.push(data);
        }
    }

    /// Keeps at most `buffers` pooled allocations, returning the rest to the allocator.
    pub(crate) fn shrink_to(&self, buffers: usize) {
        let mut free = self.free.lock();
        free.truncate(buffers);
        free.shrink_to_fit();
    }

    pub(crate) fn len(&self) -> usize {
        self.free.lock().len()
    }

    /// Bytes held by pooled allocations.
    pub(crate) fn bytes(&self) -> usize {
        self.len() * TAIL_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_a_returned_buffer() {
        // TestBufferPoolGetReuse: the pool hands back what was returned; empty pool allocates.
        let pool = BufferPool::new(4);
        assert_eq!(pool.take().capacity(), 0);
        let mut data = Vec::with_capacity(TAIL_BYTES);
        data.push(1);
        pool.give(data);
        let reused = pool.take();
        assert_eq!(reused.capacity(), TAIL_BYTES);
        assert!(reused.is_empty());
    }

    #[test]
    fn is_bounded() {
        let pool = BufferPool::new(2);
        for _ in 0..5 {
            pool.give(Vec::with_capacity(TAIL_BYTES));
        }
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.bytes(), 2 * TAIL_BYTES);
    }

    #[test]
    fn ignores_partial_allocations() {
        let pool = BufferPool::new(2);
        pool.give(Vec::with_capacity(16));
        pool.give(Vec::with_capacity(TAIL_BYTES + 100));
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn shrink_clears() {
        // TestBufferPoolClear / TestBufferPoolClean.
        let pool = BufferPool::new(8);
        for _ in 0..5 {
            pool.give(Vec::with_capacity(TAIL_BYTES));
        }
        pool.shrink_to(1);
        assert_eq!(pool.len(), 1);
        pool.shrink_to(0);
        assert_eq!(pool.len(), 0);
    }
}
