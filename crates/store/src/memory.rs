//! What the tree's own structure costs: the allocations behind clusters, hosts, levels, series
//! and the metric registry, as opposed to the buffers' sample arrays.
//!
//! With many small hosts the structure, not the samples, is most of the memory (a million
//! hosts with one sample each held 64 MB of buffers in 1 GB), so the memory cap counts both.
//! The store keeps the total incrementally: every operation that creates or removes a part of
//! the tree reports the bytes it added or freed, computed from the capacities it changed, and
//! no pass walks the tree to find them. Debug builds check the count against a walk
//! ([`crate::Store::stats`]).
//!
//! The figures are an estimate of what the allocator holds, not a measurement: each
//! allocation is rounded as glibc's malloc rounds it (8 bytes of header, 16-byte steps, 32
//! bytes at least), a hash index's size follows hashbrown's layout, and a B-tree map entry is
//! taken at twice its size (nodes of hosts added in name order are about half full).
//! Fragmentation and the allocator's per-thread caches are not counted. The server allocates
//! with jemalloc (crates/strata/src/main.rs), which has no header and rounds to size classes
//! (16-byte steps to 128 bytes, then four classes per doubling); glibc's rounding is kept as
//! the estimate (not measured against jemalloc's: an estimate either way).

use std::sync::Arc;

/// Bytes the allocator holds for a request of `bytes` (glibc malloc on 64-bit: an 8-byte
/// header, 16-byte alignment, 32 bytes at least); 0 for no allocation.
pub(crate) const fn allocation(bytes: usize) -> usize {
    if bytes == 0 {
        return 0;
    }
    let chunk = (bytes + 8).next_multiple_of(16);
    if chunk < 32 { 32 } else { chunk }
}

/// What the allocator adds to an allocation whose size is a multiple of 16, as every
/// buffer's is (16 slots at a time, or 4): its header and alignment. Counted per buffer as
/// structure, since the buffers' own figure is their data (`buffer_bytes`). Buffers loaded
/// from snapshots have exact sizes and often pay more; this is the lower bound.
pub(crate) const BUFFER_ALLOCATION_OVERHEAD: usize = 16;

/// Heap bytes of a boxed name.
pub(crate) const fn boxed_str(name: &str) -> usize {
    allocation(name.len())
}

/// Heap bytes of an `Arc<T>`'s allocation (two reference counts and the value).
pub(crate) const fn arc<T>() -> usize {
    allocation(2 * size_of::<usize>() + size_of::<T>())
}

/// Heap bytes of a hash index (hashbrown) of the given capacity whose entries are
/// `entry_bytes` long: one slot and one control byte per bucket, plus one group of control
/// bytes; buckets are a power of two with at most 7/8 of them usable.
pub(crate) const fn hash_index(capacity: usize, entry_bytes: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    allocation(buckets * (entry_bytes + 1) + 16)
}

/// Heap bytes of one entry of a `BTreeMap<Box<str>, Arc<V>>` named `name`, the `Arc`'s
/// allocation included (see the module doc for the factor of two).
pub(crate) fn map_entry<V>(name: &str) -> usize {
    2 * size_of::<(Box<str>, Arc<V>)>() + boxed_str(name) + arc::<V>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_round_like_malloc() {
        assert_eq!(allocation(0), 0);
        assert_eq!(allocation(1), 32);
        assert_eq!(allocation(24), 32);
        assert_eq!(allocation(25), 48);
        assert_eq!(allocation(72), 80);
        for buffer in [16, 64, 2048] {
            assert_eq!(allocation(buffer), buffer + BUFFER_ALLOCATION_OVERHEAD);
        }
        // 4 buckets of 8 bytes + 4 control bytes + 16.
        assert_eq!(hash_index(3, 7), allocation(4 * 8 + 16));
        // 28 usable of 32 buckets.
        assert_eq!(hash_index(28, 7), allocation(32 * 8 + 16));
    }
}
