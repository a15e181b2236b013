//! A fast, non-cryptographic hash (the Firefox/rustc "Fx" hash) for the hot paths that look
//! up names per sample: metric names, level names, WAL series keys. SipHash, the std default,
//! costs several times more on these short keys. The keys come from clients, but a crafted
//! collision only makes lookups slower, it cannot corrupt anything, and every table here is
//! bounded by the limits on names and series.

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(SEED);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(SEED);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `HashMap<K, V, FxBuildHasher>` uses [`FxHasher`].
pub type FxBuildHasher = BuildHasherDefault<FxHasher>;

/// String equality with a fast path for the common case on hot paths: the same name from the
/// same batch is the very same bytes.
#[inline]
pub fn same_text(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || same_bytes(a.as_bytes(), b.as_bytes())
}

/// `a == b`, compared inline for up to 16 bytes. Names on the ingest path are short and are
/// compared several times per sample (batch interning, the WAL's series table, the host of
/// a run); `==` on slices is a call to libc's `memcmp` each time, 9.5 % of the server's CPU
/// on the shared workload (perf, issue 10).
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // Two overlapping loads cover every length from one load's size to twice that.
    if let (Some(a0), Some(b0), Some(a1), Some(b1)) = (
        a.first_chunk::<8>(),
        b.first_chunk::<8>(),
        a.last_chunk::<8>(),
        b.last_chunk::<8>(),
    ) {
        return if a.len() <= 16 {
            u64::from_ne_bytes(*a0) == u64::from_ne_bytes(*b0)
                && u64::from_ne_bytes(*a1) == u64::from_ne_bytes(*b1)
        } else {
            a == b
        };
    }
    if let (Some(a0), Some(b0), Some(a1), Some(b1)) = (
        a.first_chunk::<4>(),
        b.first_chunk::<4>(),
        a.last_chunk::<4>(),
        b.last_chunk::<4>(),
    ) {
        return u32::from_ne_bytes(*a0) == u32::from_ne_bytes(*b0)
            && u32::from_ne_bytes(*a1) == u32::from_ne_bytes(*b1);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_is_slice_equality_at_every_length() {
        // Issue 10: the inline comparison must differ from `==` nowhere, whichever byte
        // differs and whatever the length (the load sizes' edges included).
        for len in 0..40usize {
            let a: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            assert!(same_bytes(&a, &a.clone()), "{len}");
            assert!(!same_bytes(&a, &a[..len.saturating_sub(1)]) || len == 0);
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 1;
                assert!(!same_bytes(&a, &b), "len {len}, byte {at}");
            }
        }
        assert!(same_text("hwthread12", "hwthread12") && !same_text("hwthread12", "hwthread13"));
    }
}
