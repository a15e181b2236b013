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
pub fn same_text(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}
