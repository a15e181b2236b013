//! Sealed blocks: up to [`BLOCK_SLOTS`] consecutive float32 slots of one series, encoded
//! losslessly (every bit of every value comes back, NaN gaps included).
//!
//! A block is self-delimiting: [`validate`] reads its byte length from the bytes alone, so
//! blocks can be stored back to back (in a buffer, in a snapshot file) without a length
//! prefix. Blocks in memory were written by [`encode`] and are trusted; blocks read from disk
//! go through [`validate`] first. The decoders never panic on any input; on bytes that
//! [`validate`] refuses they return unspecified values.
//!
//! # Format, version 1
//!
//! ```text
//! byte 0   high 4 bits: BLOCK_FORMAT_VERSION, low 4 bits: codec (3 = RAW)
//! byte 1   slot count − 1 (1..=128 slots)
//! RAW      slot count × u32 little-endian bit patterns
//! ```

/// Slots per sealed block: a quarter of a buffer, so that the open tail of a series, the only
/// part kept as raw float32, is at most 128 slots.
pub const BLOCK_SLOTS: usize = 128;

/// Written into every block's first byte; a reader refuses versions it does not know.
pub const BLOCK_FORMAT_VERSION: u8 = 1;

const HEADER_BYTES: usize = 2;

/// Largest encoded block: the encoder never writes more than this.
pub const BLOCK_BYTES_MAX: usize = HEADER_BYTES + 4 * BLOCK_SLOTS;

const CODEC_RAW: u8 = 3;

/// Per-series state the encoder carries from one block to the next (the decimal exponent
/// that fitted last time is tried first).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncodeHint {
    pub exponent: u8,
}

/// Why bytes are not a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error(
        "block format version {0} is not supported (this build reads version {BLOCK_FORMAT_VERSION})"
    )]
    Version(u8),
    #[error("unknown block codec {0}")]
    Codec(u8),
}

/// Encodes `values` (1..=[`BLOCK_SLOTS`] slots; NaN is a missing sample) and appends the
/// block to `out`. Returns the bytes appended, at most [`BLOCK_BYTES_MAX`].
pub fn encode(values: &[f32], _hint: &mut EncodeHint, out: &mut Vec<u8>) -> usize {
    debug_assert!(!values.is_empty() && values.len() <= BLOCK_SLOTS);
    let values = &values[..values.len().min(BLOCK_SLOTS)];
    let before = out.len();
    out.push(BLOCK_FORMAT_VERSION << 4 | CODEC_RAW);
    out.push(values.len().saturating_sub(1) as u8);
    for value in values {
        out.extend_from_slice(&value.to_bits().to_le_bytes());
    }
    out.len() - before
}

/// Checks that `bytes` starts with a whole, well-formed block and returns its byte length.
pub fn validate(bytes: &[u8]) -> Result<usize, BlockError> {
    let truncated = |needed| BlockError::Truncated {
        needed,
        available: bytes.len(),
    };
    let [first, count, ..] = *bytes else {
        return Err(truncated(HEADER_BYTES));
    };
    if first >> 4 != BLOCK_FORMAT_VERSION {
        return Err(BlockError::Version(first >> 4));
    }
    if first & 0x0f != CODEC_RAW {
        return Err(BlockError::Codec(first & 0x0f));
    }
    let needed = HEADER_BYTES + 4 * (usize::from(count) + 1);
    if bytes.len() < needed {
        return Err(truncated(needed));
    }
    Ok(needed)
}

/// Slot count of a block, from its header alone.
pub fn len(block: &[u8]) -> usize {
    block.get(1).map_or(0, |&count| usize::from(count) + 1)
}

/// Decodes every slot into `out[..len]` and returns `len`.
pub fn decode(block: &[u8], out: &mut [f32; BLOCK_SLOTS]) -> usize {
    let payload = block.get(HEADER_BYTES..).unwrap_or_default();
    let mut count = 0;
    for (slot, bits) in out.iter_mut().zip(payload.chunks_exact(4)).take(len(block)) {
        *slot = f32::from_bits(u32::from_le_bytes([bits[0], bits[1], bits[2], bits[3]]));
        count += 1;
    }
    count
}

/// Appends slots `[first, first + count)` of a block to `out` (clamped to the block's length).
pub fn decode_range_into(block: &[u8], first: usize, count: usize, out: &mut Vec<f32>) {
    let mut values = [f32::NAN; BLOCK_SLOTS];
    let len = decode(block, &mut values);
    let first = first.min(len);
    out.extend_from_slice(&values[first..(first + count).min(len)]);
}

/// The first slot that holds a value (not NaN).
pub fn first_present(block: &[u8]) -> Option<usize> {
    let mut values = [f32::NAN; BLOCK_SLOTS];
    let len = decode(block, &mut values);
    values[..len].iter().position(|v| !v.is_nan())
}

/// The last slot that holds a value (not NaN).
pub fn last_present(block: &[u8]) -> Option<usize> {
    let mut values = [f32::NAN; BLOCK_SLOTS];
    let len = decode(block, &mut values);
    values[..len].iter().rposition(|v| !v.is_nan())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip_keeps_every_bit() {
        let values: Vec<f32> = [0x7fc0_0000, 0x8000_0000, 1, 0x7f80_0000, 0x7fa0_0001, 42]
            .into_iter()
            .map(f32::from_bits)
            .collect();
        let mut out = Vec::new();
        let written = encode(&values, &mut EncodeHint::default(), &mut out);
        assert_eq!(validate(&out), Ok(written));
        let mut decoded = [0.0; BLOCK_SLOTS];
        assert_eq!(decode(&out, &mut decoded), values.len());
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&decoded[..values.len()]), bits(&values));
        assert_eq!(
            (first_present(&out), last_present(&out)),
            (Some(1), Some(5))
        );
    }

    #[test]
    fn validate_refuses_truncated_and_unknown_blocks() {
        let mut out = Vec::new();
        encode(&[1.0, 2.0], &mut EncodeHint::default(), &mut out);
        assert!(matches!(
            validate(&out[..out.len() - 1]),
            Err(BlockError::Truncated { .. })
        ));
        out[0] = 0x23;
        assert_eq!(validate(&out), Err(BlockError::Version(2)));
    }
}
