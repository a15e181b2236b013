//! Sealed blocks: up to [`BLOCK_SLOTS`] consecutive float32 slots of one series, encoded
//! losslessly (every bit of every value comes back, NaN gaps included).
//!
//! A block is self-delimiting: [`validate`] reads its byte length from the bytes alone, so
//! blocks can be stored back to back (in a buffer, in a snapshot file) without a length
//! prefix. Blocks in memory were written by [`encode`] and are trusted; blocks read from disk
//! go through [`validate`] first. The decoders never panic, never read out of bounds and
//! never loop longer than a block on any input; on bytes that [`validate`] refuses they
//! return unspecified values.
//!
//! # Format, version 1
//!
//! All integers are little-endian. `len` is the slot count (1..=128). A slot is *missing*
//! when it holds the canonical NaN `0x7FC0_0000` (the store's gap value).
//!
//! | bytes | field | present when |
//! |---|---|---|
//! | 1 | high 4 bits [`BLOCK_FORMAT_VERSION`] (1), low 4 bits codec: 0 CONST, 1 DECIMAL, 2 XOR, 3 RAW | always |
//! | 1 | `len − 1` | always |
//! | `4·len` | RAW: every slot's u32 bit pattern; nothing else follows | RAW |
//! | 1 | flags: bit 0 NAN_BITMAP, bit 1 EXCEPTIONS, bit 2 DOD (DECIMAL only); other bits 0 | not RAW |
//! | `⌈len/8⌉` | NaN bitmap, bit `i` (LSB first) set = slot `i` is missing | NAN_BITMAP |
//! | 1 + 5·n | `n` (≤ 8), then `n` × (u8 slot, u32 bit pattern), slots ascending, not in the bitmap | EXCEPTIONS |
//! | … | payload over the *dense* slots: the `k` slots in neither the bitmap nor the exceptions, in order | `k > 0` |
//!
//! Payloads (`k > 0`; no payload when `k = 0`):
//!
//! | codec | payload |
//! |---|---|
//! | CONST | u32: the bit pattern of every dense slot (all-missing blocks are CONST `0x7FC0_0000`) |
//! | DECIMAL | u8 exponent `e` (≤ 22), u8 shift `s` (≤ 63), zigzag LEB128 varint `m0`, [DOD: zigzag varint `d1`], u8 width `w` (≤ 32), then `k` packed `w`-bit integers `q[0..k]` |
//! | XOR | u32 first value, then per further value the control bits `0` (same bits) / `10` + meaningful bits in the previous window / `11` + 5-bit leading zeros + 5-bit (meaningful − 1) + meaningful bits, MSB first, zero-padded to a byte |
//!
//! DECIMAL packing: when `k = 128` the `q` are one `bitpacking::BitPacker4x` block (`16·w`
//! bytes, its interleaved layout); otherwise `⌈k·w/8⌉` bytes, value `i` in stream bits
//! `[i·w, (i+1)·w)`, the stream read LSB first from consecutive bytes. With
//! `z(q) = (q >> 1) ^ −(q & 1)` (zigzag) the mantissas are: delta mode `m[i] = m[i−1] +
//! (z(q[i]) << s)` from `m[−1] = m0` with `q[0] = 0`; DOD mode `d[i] = d[i−1] + (z(q[i]) << s)`,
//! `m[i] = m[i−1] + d[i]` from `d[−1] = d1`, `m[−1] = m0 − d1`, with `q[0] = q[1] = 0` (so
//! `m[0] = m0`, `m[1] = m0 + d1`). Dense value `i` is `((m[i] as f64) / 10^e) as f32`; every
//! `|m[i]| < 2^51` ([`validate`] checks).
//! XOR and DECIMAL dense values are never NaN (the encoder makes NaN patterns exceptions and
//! [`validate`] checks XOR), so [`first_present`]/[`last_present`] read only the header.
//!
//! # Exactness
//!
//! Every codec is lossless for every bit pattern. CONST, XOR, RAW, the bitmap and the
//! exceptions move bit patterns only. DECIMAL's value formula `((m as f64) / 10^e) as f32` is
//! the line-protocol parser's Clinger fast path (`strata_lineproto`'s `number.rs`: an exact
//! mantissa ≤ 2^53 divided by an exact power of ten ≤ 10^22) followed by ingest's `as f32`,
//! so a value that arrived as a decimal text round-trips by construction (the test
//! `ingested_decimals_are_decimal_blocks` checks that no such value needs an exception). The
//! encoder does not rely on that: it computes `m` for each value and keeps it only when the
//! formula gives back the same `to_bits()`. A value that fails (−0.0, ±inf, NaN payloads,
//! subnormals, values that need more than 9 decimals or a mantissa of 2^51 or more) becomes
//! an exception; more than 8 exceptions rule DECIMAL out. Encoder and decoder share
//! `decimal_value`; both turn `m` into an f64 by adding 1.5·2^52 to its bits (exact below
//! 2^51), which vectorises where `m as f64` does not.
//!
//! # Encoder
//!
//! Candidates: CONST (all present values equal, or all but ≤ 8 exceptions); DECIMAL at the
//! hint's exponent, else the smallest exponent 0..=9 with the fewest exceptions (then lowered
//! while every mantissa ends in 0), in delta or delta-of-delta mode, whichever packs smaller;
//! XOR, only when DECIMAL failed or the block mostly repeats (XOR decodes bit by bit, so it
//! must also be an eighth smaller); RAW. The smallest is written, so a block is never larger
//! than RAW ([`BLOCK_BYTES_MAX`] for 128 slots).

//! # Crates
//!
//! `bitpacking` 0.9 (MIT, quickwit-oss, a port of Lemire's simdcomp): `BitPacker4x` packs
//! exactly 128 integers of one width with SSE3 (scalar fallback on other CPUs) at several
//! G ints/s; a full block's 128 deltas are one of its groups. Only its 4x packer is compiled
//! in (`default-features = false`), the 1x/8x packers are unused. Partial blocks (`k < 128`,
//! rare: gaps and late seals) use the short scalar packer below. No other crate: `pco` and
//! `zstd` carry per-chunk metadata that would dominate 128 values, `tsz` is f64/Gorilla only.

use crate::varint::{put_varint, unzigzag, zigzag};
use bitpacking::{BitPacker, BitPacker4x};

/// Slots per sealed block: a quarter of a buffer, so that the open tail of a series, the only
/// part kept as raw float32, is at most 128 slots.
pub const BLOCK_SLOTS: usize = 128;

/// Written into every block's first byte; a reader refuses versions it does not know.
pub const BLOCK_FORMAT_VERSION: u8 = 1;

const HEADER_BYTES: usize = 2;

/// Largest encoded block (a RAW block of 128 slots): the encoder never writes more than this.
pub const BLOCK_BYTES_MAX: usize = HEADER_BYTES + 4 * BLOCK_SLOTS;

/// At most this many exceptions per block (each costs 5 bytes).
pub const BLOCK_EXCEPTIONS_MAX: usize = 8;

const CODEC_CONST: u8 = 0;
const CODEC_DECIMAL: u8 = 1;
const CODEC_XOR: u8 = 2;
const CODEC_RAW: u8 = 3;

const FLAG_NAN_BITMAP: u8 = 1;
const FLAG_EXCEPTIONS: u8 = 2;
const FLAG_DOD: u8 = 4;
const FLAGS_KNOWN: u8 = FLAG_NAN_BITMAP | FLAG_EXCEPTIONS | FLAG_DOD;

/// The store's "missing" (`f32::NAN`): the only pattern the NaN bitmap stands for.
const MISSING: u32 = 0x7fc0_0000;
const EXCEPTION_BYTES: usize = 5;
/// Largest exponent the format allows (the exact powers of ten in f64 end at 10^22).
const EXPONENT_MAX: u8 = 22;
/// The encoder tries decimal exponents up to this (the workload has 0–3 decimals).
const EXPONENT_SEARCH_MAX: u8 = 9;
/// Packed integers are u32 (`bitpacking`'s word).
const WIDTH_MAX: u32 = 32;
/// XOR is tried next to DECIMAL only when it could win by [`XOR_PREFERENCE`], estimating
/// 1 bit per repeat and this many per changed value (2 control bits and the meaningful bits:
/// about 20 for the float XOR of changed decimals): in practice only for mostly repeating
/// series (clock frequencies). Trying it costs more than the rest of `encode`.
const XOR_CHANGE_BITS: usize = 24;
/// XOR is written only when it is smaller than `(n-1)/n` of the best other codec.
const XOR_PREFERENCE: usize = 8;
/// The largest packing (128 values of 32 bits); the scalar unpacker's scratch adds a u64.
const PACKED_BYTES_MAX: usize = BLOCK_SLOTS * WIDTH_MAX as usize / 8;

const POW10: [f64; EXPONENT_MAX as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

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
    #[error("malformed block: {0}")]
    Malformed(&'static str),
}

/// The value of a DECIMAL mantissa (given as its exact f64): the parser's fast path plus
/// ingest's cast (module docs). Encoder and decoder both call this.
#[inline(always)]
fn decimal_value(mantissa: f64, power: f64) -> f32 {
    (mantissa / power) as f32
}

fn slot_bit(slot: usize) -> u128 {
    1u128.checked_shl(slot as u32).unwrap_or(0)
}

fn slots_mask(len: usize) -> u128 {
    if len >= BLOCK_SLOTS {
        u128::MAX
    } else {
        slot_bit(len) - 1
    }
}

fn width_of(bits: u64) -> u32 {
    64 - bits.leading_zeros()
}

fn packed_bytes(count: usize, width: u32) -> usize {
    if count == BLOCK_SLOTS {
        BitPacker4x::compressed_block_size(width as u8)
    } else {
        (count * width as usize).div_ceil(8)
    }
}

fn varint_bytes(value: u64) -> usize {
    (width_of(value) as usize).div_ceil(7).max(1)
}

/// A LEB128 u64 and its byte length; `None` when cut off or longer than 10 bytes.
fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
}

fn read_u32(bytes: &[u8]) -> Option<u32> {
    let word: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(word))
}

// ---------------------------------------------------------------------------------------
// Header

struct Header<'a> {
    codec: u8,
    len: usize,
    flags: u8,
    nan: u128,
    /// `n × (u8 slot, u32 bits)`.
    exceptions: &'a [u8],
    /// Everything after the header (the payload and whatever follows the block).
    payload: &'a [u8],
    header_bytes: usize,
}

impl Header<'_> {
    fn exceptions(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.exceptions.chunks_exact(EXCEPTION_BYTES).map(|entry| {
            let bits = read_u32(&entry[1..]).unwrap_or(MISSING);
            (usize::from(entry[0]), bits)
        })
    }

    fn exception_mask(&self) -> u128 {
        self.exceptions()
            .fold(0, |mask, (slot, _)| mask | slot_bit(slot))
    }

    /// Slots the payload covers.
    fn dense(&self) -> u128 {
        slots_mask(self.len) & !self.nan & !self.exception_mask()
    }
}

/// Reads the header; checks only what is needed to find the payload.
fn parse(block: &[u8]) -> Result<Header<'_>, BlockError> {
    let truncated = |needed| BlockError::Truncated {
        needed,
        available: block.len(),
    };
    let [first, count, ..] = *block else {
        return Err(truncated(HEADER_BYTES));
    };
    if first >> 4 != BLOCK_FORMAT_VERSION {
        return Err(BlockError::Version(first >> 4));
    }
    let codec = first & 0x0f;
    if codec > CODEC_RAW {
        return Err(BlockError::Codec(codec));
    }
    let len = usize::from(count) + 1;
    let mut header = Header {
        codec,
        len,
        flags: 0,
        nan: 0,
        exceptions: &[],
        payload: block.get(HEADER_BYTES..).unwrap_or_default(),
        header_bytes: HEADER_BYTES,
    };
    if codec == CODEC_RAW {
        return Ok(header);
    }
    let mut pos = HEADER_BYTES + 1;
    header.flags = *block.get(HEADER_BYTES).ok_or_else(|| truncated(pos))?;
    if header.flags & FLAG_NAN_BITMAP != 0 {
        let bytes = len.min(BLOCK_SLOTS).div_ceil(8);
        let bitmap = block
            .get(pos..pos + bytes)
            .ok_or_else(|| truncated(pos + bytes))?;
        let mut word = [0u8; 16];
        word[..bytes].copy_from_slice(bitmap);
        header.nan = u128::from_le_bytes(word);
        pos += bytes;
    }
    if header.flags & FLAG_EXCEPTIONS != 0 {
        let count = usize::from(*block.get(pos).ok_or_else(|| truncated(pos + 1))?);
        let end = pos + 1 + count * EXCEPTION_BYTES;
        header.exceptions = block.get(pos + 1..end).ok_or_else(|| truncated(end))?;
        pos = end;
    }
    header.payload = block.get(pos..).unwrap_or_default();
    header.header_bytes = pos;
    Ok(header)
}

/// Bytes of the header that [`write_header`] writes.
fn header_bytes(len: usize, nan: u128, exceptions: usize) -> usize {
    let bitmap = if nan == 0 { 0 } else { len.div_ceil(8) };
    let exceptions = if exceptions == 0 {
        0
    } else {
        1 + exceptions * EXCEPTION_BYTES
    };
    HEADER_BYTES + 1 + bitmap + exceptions
}

fn write_header(out: &mut Vec<u8>, codec: u8, len: usize, nan: u128, exc: &Exceptions, dod: bool) {
    let mut flags = 0;
    if nan != 0 {
        flags |= FLAG_NAN_BITMAP;
    }
    if exc.count > 0 {
        flags |= FLAG_EXCEPTIONS;
    }
    if dod {
        flags |= FLAG_DOD;
    }
    out.extend_from_slice(&[BLOCK_FORMAT_VERSION << 4 | codec, (len - 1) as u8, flags]);
    if nan != 0 {
        out.extend_from_slice(&nan.to_le_bytes()[..len.div_ceil(8)]);
    }
    if exc.count > 0 {
        out.push(exc.count as u8);
        for (&slot, &bits) in exc.slots.iter().zip(&exc.bits).take(exc.count) {
            out.push(slot);
            out.extend_from_slice(&bits.to_le_bytes());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Encoder

const IDENTITY: [u8; BLOCK_SLOTS] = {
    let mut slots = [0; BLOCK_SLOTS];
    let mut slot = 0;
    while slot < BLOCK_SLOTS {
        slots[slot] = slot as u8;
        slot += 1;
    }
    slots
};

/// Slots that are not missing, in order (all slots when every slot is missing: such a block
/// is CONST `MISSING` without a bitmap).
struct Input {
    len: usize,
    nan: u128,
    count: usize,
    bits: [u32; BLOCK_SLOTS],
    slots: [u8; BLOCK_SLOTS],
}

impl Input {
    fn new(values: &[f32]) -> Input {
        let mut input = Input {
            len: values.len(),
            nan: 0,
            count: values.len(),
            bits: [MISSING; BLOCK_SLOTS],
            slots: IDENTITY,
        };
        let mut missing = 0;
        for (bits, value) in input.bits.iter_mut().zip(values) {
            *bits = value.to_bits();
            missing += usize::from(*bits == MISSING);
        }
        if missing == 0 || missing == values.len() {
            return input;
        }
        // Gaps: keep the present values, in order, and a bitmap of the missing ones.
        let mut count = 0;
        for (slot, value) in values.iter().enumerate() {
            let bits = value.to_bits();
            if bits == MISSING {
                input.nan |= slot_bit(slot);
            } else {
                input.bits[count] = bits;
                input.slots[count] = slot as u8;
                count += 1;
            }
        }
        input.count = count;
        input
    }

    fn bits(&self) -> &[u32] {
        &self.bits[..self.count]
    }
}

#[derive(Default, Clone, Copy)]
struct Exceptions {
    count: usize,
    slots: [u8; BLOCK_EXCEPTIONS_MAX],
    bits: [u32; BLOCK_EXCEPTIONS_MAX],
}

impl Exceptions {
    /// False when full.
    fn push(&mut self, slot: u8, bits: u32) -> bool {
        if self.count == BLOCK_EXCEPTIONS_MAX {
            return false;
        }
        self.slots[self.count] = slot;
        self.bits[self.count] = bits;
        self.count += 1;
        true
    }
}

/// A DECIMAL encoding, ready to write.
struct Decimal {
    exponent: u8,
    shift: u32,
    width: u32,
    dod: bool,
    m0: i64,
    d1: i64,
    count: usize,
    packed: [u32; BLOCK_SLOTS],
    exceptions: Exceptions,
    repeats: usize,
}

impl Decimal {
    fn payload_bytes(&self) -> usize {
        let d1 = if self.dod {
            varint_bytes(zigzag(self.d1))
        } else {
            0
        };
        3 + varint_bytes(zigzag(self.m0)) + d1 + packed_bytes(self.count, self.width)
    }

    fn bytes(&self, input: &Input) -> usize {
        header_bytes(input.len, input.nan, self.exceptions.count) + self.payload_bytes()
    }

    fn write(&self, input: &Input, out: &mut Vec<u8>) {
        write_header(
            out,
            CODEC_DECIMAL,
            input.len,
            input.nan,
            &self.exceptions,
            self.dod,
        );
        out.extend_from_slice(&[self.exponent, self.shift as u8]);
        put_varint(out, zigzag(self.m0));
        if self.dod {
            put_varint(out, zigzag(self.d1));
        }
        out.push(self.width as u8);
        let start = out.len();
        out.resize(start + packed_bytes(self.count, self.width), 0);
        if self.count == BLOCK_SLOTS {
            BitPacker4x::new().compress(&self.packed, &mut out[start..], self.width as u8);
        } else {
            pack_scalar(&self.packed[..self.count], self.width, &mut out[start..]);
        }
    }
}

/// Adding and subtracting 1.5·2^52 rounds an f64 below 2^51 to an integer, and the sum's low
/// bits are that integer: both without a float-to-integer conversion, so the loop vectorises.
const ROUNDER: f64 = 6_755_399_441_055_744.0;
/// Mantissas stay below this in magnitude (exact through [`ROUNDER`]).
const MANTISSA_LIMIT: u64 = 1 << 51;
const SCALED_MAX: f64 = (MANTISSA_LIMIT - 1) as f64;

/// The mantissa of `bits` at `power` and whether it gives `bits` back exactly.
#[inline(always)]
fn mantissa(bits: u32, power: f64) -> (i64, bool) {
    let scaled = f64::from(f32::from_bits(bits)) * power;
    let rounded = scaled + ROUNDER;
    let mantissa = (rounded.to_bits() as i64).wrapping_sub(ROUNDER.to_bits() as i64);
    // `rounded - ROUNDER` is `mantissa as f64` (exact below 2^51), so this is
    // `decimal_value(mantissa, power)`.
    // `&`, not `&&`: no branches, so that the caller's loop vectorises. `|scaled| <= 2^51 - 1`
    // keeps the rounded mantissa below 2^51 (NaN fails the comparison).
    let exact =
        (scaled.abs() <= SCALED_MAX) & (decimal_value(rounded - ROUNDER, power).to_bits() == bits);
    (mantissa, exact)
}

/// Mantissas of the input at exponent `e` into `mantissas[..n]` (returned), failures into
/// `exceptions`; `None` when more than [`BLOCK_EXCEPTIONS_MAX`] fail or nothing fits.
fn mantissas(
    input: &Input,
    exponent: u8,
    mantissas: &mut [i64; BLOCK_SLOTS],
    exceptions: &mut Exceptions,
) -> Option<usize> {
    let power = POW10[usize::from(exponent)];
    *exceptions = Exceptions::default();
    // The first 9 values all failing decide it (random bits: most exponents) cheaply.
    let probe = input.count.min(BLOCK_EXCEPTIONS_MAX + 1);
    if input.bits[..probe]
        .iter()
        .all(|&bits| !mantissa(bits, power).1)
    {
        return None;
    }
    // Branch-free first pass; the exceptions are collected only when there are any.
    let mut failed = 0;
    for (value, &bits) in mantissas.iter_mut().zip(input.bits()) {
        let (mantissa, exact) = mantissa(bits, power);
        *value = mantissa;
        failed += usize::from(!exact);
    }
    if failed > BLOCK_EXCEPTIONS_MAX || failed == input.count {
        return None;
    }
    if failed == 0 {
        return Some(input.count);
    }
    let mut count = 0;
    for (&bits, &slot) in input.bits().iter().zip(&input.slots) {
        let (mantissa, exact) = mantissa(bits, power);
        if exact {
            mantissas[count] = mantissa;
            count += 1;
        } else {
            exceptions.push(slot, bits);
        }
    }
    Some(count)
}

/// The smallest exponent with the fewest exceptions (the hint's exponent first: when it fits
/// without exceptions only smaller ones are tried, and only while every mantissa ends in 0).
fn choose_exponent(
    input: &Input,
    hint: u8,
    values: &mut [i64; BLOCK_SLOTS],
    exceptions: &mut Exceptions,
) -> Option<(u8, usize)> {
    let hint = hint.min(EXPONENT_SEARCH_MAX);
    let mut best: Option<(u8, usize)> = None;
    let mut last = None;
    for exponent in std::iter::once(hint).chain((0..=EXPONENT_SEARCH_MAX).filter(|&e| e != hint)) {
        last = Some(exponent);
        if mantissas(input, exponent, values, exceptions).is_some()
            && best.is_none_or(|(_, fewest)| exceptions.count < fewest)
        {
            best = Some((exponent, exceptions.count));
            if exceptions.count == 0 {
                break;
            }
        }
    }
    let (mut exponent, _) = best?;
    let mut count = if last == Some(exponent) {
        input.count - exceptions.count
    } else {
        mantissas(input, exponent, values, exceptions)?
    };
    while exponent > 0 && values[..count].iter().all(|m| m % 10 == 0) {
        let before = exceptions.count;
        match mantissas(input, exponent - 1, values, exceptions) {
            Some(fewer) if exceptions.count <= before => {
                exponent -= 1;
                count = fewer;
            }
            _ => {
                count = mantissas(input, exponent, values, exceptions)?;
                break;
            }
        }
    }
    Some((exponent, count))
}

/// OR of a run of differences and of a value as wide as their zigzags: enough for the
/// shift and the width.
#[derive(Default, Clone, Copy)]
struct Spread {
    any: i64,
    zigzags: u64,
}

impl Spread {
    #[inline(always)]
    fn add(&mut self, difference: i64) {
        self.any |= difference;
        // Same bit width as `zigzag(difference)` without the arithmetic shift (which SSE2
        // lacks for 64-bit lanes): its highest set bit is where the sign bits end.
        self.zigzags |= (difference ^ (difference << 1)) as u64;
    }

    /// (shift, width): the common trailing zero bits, and the width of `zigzag(d >> shift)`
    /// (which is the width of `zigzag(d)` minus the shift); `None` above 32 bits.
    fn shift_and_width(self) -> Option<(u32, u32)> {
        if self.any == 0 {
            return Some((0, 0));
        }
        let shift = self.any.trailing_zeros();
        let width = width_of(self.zigzags) - shift;
        (width <= WIDTH_MAX).then_some((shift, width))
    }
}

fn plan_decimal(input: &Input, hint: &EncodeHint) -> Option<Decimal> {
    let mut values = [0i64; BLOCK_SLOTS];
    let mut exceptions = Exceptions::default();
    let (exponent, count) = choose_exponent(input, hint.exponent, &mut values, &mut exceptions)?;
    let values = &values[..count];
    // One pass for both modes: delta d[i] = m[i] - m[i-1], DOD d[i] - d[i-1].
    let (mut deltas, mut dods) = (Spread::default(), Spread::default());
    let mut repeats = 0;
    let d1 = values.get(1).map_or(0, |m1| m1.wrapping_sub(values[0]));
    let mut previous = d1;
    for pair in values.windows(2) {
        let delta = pair[1].wrapping_sub(pair[0]);
        deltas.add(delta);
        dods.add(delta.wrapping_sub(previous));
        repeats += usize::from(delta == 0);
        previous = delta;
    }
    let delta = deltas.shift_and_width();
    let dod = if count >= 3 {
        dods.shift_and_width()
    } else {
        None
    };
    let use_dod = match (delta, dod) {
        (None, None) => return None,
        (Some((_, delta)), Some((_, dod))) => {
            packed_bytes(count, dod) + varint_bytes(zigzag(d1)) < packed_bytes(count, delta)
        }
        (None, Some(_)) => true,
        (Some(_), None) => false,
    };
    let (shift, width) = if use_dod { dod? } else { delta? };
    let mut plan = Decimal {
        exponent,
        shift,
        width,
        dod: use_dod,
        m0: values[0],
        d1,
        count,
        packed: [0; BLOCK_SLOTS],
        exceptions,
        repeats,
    };
    // q[0] = 0 (and q[1] = 0 for DOD: d1 is in the header).
    let mut previous = d1;
    for (q, pair) in plan.packed[1..].iter_mut().zip(values.windows(2)) {
        let delta = pair[1].wrapping_sub(pair[0]);
        let difference = if use_dod {
            delta.wrapping_sub(previous)
        } else {
            delta
        };
        previous = delta;
        // The quotient fits 32 bits zigzagged (width <= 32): zigzag in i32 lanes.
        let quotient = (difference >> shift) as i32;
        *q = ((quotient << 1) ^ (quotient >> 31)) as u32;
    }
    Some(plan)
}

/// CONST with the first value, when at most [`BLOCK_EXCEPTIONS_MAX`] differ.
fn plan_const(input: &Input) -> Option<Exceptions> {
    let first = input.bits[0];
    let mut exceptions = Exceptions::default();
    for (&bits, &slot) in input.bits().iter().zip(&input.slots) {
        if bits != first && !exceptions.push(slot, bits) {
            return None;
        }
    }
    Some(exceptions)
}

fn write_const(input: &Input, exceptions: &Exceptions, out: &mut Vec<u8>) {
    write_header(out, CODEC_CONST, input.len, input.nan, exceptions, false);
    out.extend_from_slice(&input.bits[0].to_le_bytes());
}

fn write_raw(values: &[f32], out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        BLOCK_FORMAT_VERSION << 4 | CODEC_RAW,
        (values.len() - 1) as u8,
    ]);
    for value in values {
        out.extend_from_slice(&value.to_bits().to_le_bytes());
    }
}

/// Appends the XOR block; `None` (nothing appended) when more than
/// [`BLOCK_EXCEPTIONS_MAX`] values are NaN patterns (XOR dense values must not be NaN).
fn write_xor(input: &Input, out: &mut Vec<u8>) -> Option<()> {
    let mut exceptions = Exceptions::default();
    let mut dense = [0u32; BLOCK_SLOTS];
    let mut count = 0;
    for (&bits, &slot) in input.bits().iter().zip(&input.slots) {
        if f32::from_bits(bits).is_nan() {
            if !exceptions.push(slot, bits) {
                return None;
            }
        } else {
            dense[count] = bits;
            count += 1;
        }
    }
    let dense = &dense[..count];
    let first = *dense.first()?;
    write_header(out, CODEC_XOR, input.len, input.nan, &exceptions, false);
    out.extend_from_slice(&first.to_le_bytes());
    let mut writer = BitWriter {
        out,
        acc: 0,
        bits: 0,
    };
    let (mut window_lz, mut window_len) = (0u32, WIDTH_MAX);
    for pair in dense.windows(2) {
        let x = pair[0] ^ pair[1];
        if x == 0 {
            writer.put(0, 1);
            continue;
        }
        let (lz, tz) = (x.leading_zeros(), x.trailing_zeros());
        let len = WIDTH_MAX - lz - tz;
        let window_tz = WIDTH_MAX - window_lz - window_len;
        // Reuse the window while it costs less than describing a new one (10 bits).
        if lz >= window_lz && tz >= window_tz && window_len <= len + 10 {
            writer.put(0b10, 2);
            writer.put(x >> window_tz, window_len);
        } else {
            writer.put(0b11, 2);
            writer.put(lz, 5);
            writer.put(len - 1, 5);
            writer.put(x >> tz, len);
            (window_lz, window_len) = (lz, len);
        }
    }
    writer.finish();
    Some(())
}

/// MSB-first bit writer.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    bits: u32,
}

impl BitWriter<'_> {
    /// `count` is 1..=32. Whole u32s go out at once (a push per byte was half of XOR's time).
    #[inline]
    fn put(&mut self, value: u32, count: u32) {
        self.acc = (self.acc << count) | u64::from(value) & ((1u64 << count) - 1);
        self.bits += count;
        if self.bits >= 32 {
            self.bits -= 32;
            let word = (self.acc >> self.bits) as u32;
            self.out.extend_from_slice(&word.to_be_bytes());
        }
    }

    fn finish(self) {
        if self.bits > 0 {
            let tail = (self.acc << (64 - self.bits)).to_be_bytes();
            self.out
                .extend_from_slice(&tail[..self.bits.div_ceil(8) as usize]);
        }
    }
}

/// LSB-first scalar packing of `values` at `width` bits into `out` (zeroed, long enough).
fn pack_scalar(values: &[u32], width: u32, out: &mut [u8]) {
    if width == 0 {
        return;
    }
    let mut acc = 0u64;
    let mut bits = 0;
    let mut bytes = out.iter_mut();
    for &value in values {
        acc |= u64::from(value) << bits;
        bits += width;
        while bits >= 8 {
            if let Some(byte) = bytes.next() {
                *byte = acc as u8;
            }
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0
        && let Some(byte) = bytes.next()
    {
        *byte = acc as u8;
    }
}

/// Encodes `values` (1..=[`BLOCK_SLOTS`] slots; NaN is a missing sample) and appends the
/// block to `out`. Returns the bytes appended, at most [`BLOCK_BYTES_MAX`].
pub fn encode(values: &[f32], hint: &mut EncodeHint, out: &mut Vec<u8>) -> usize {
    debug_assert!(!values.is_empty() && values.len() <= BLOCK_SLOTS);
    let values = &values[..values.len().min(BLOCK_SLOTS)];
    if values.is_empty() {
        return 0;
    }
    let before = out.len();
    let input = Input::new(values);
    let raw_bytes = HEADER_BYTES + 4 * values.len();
    let constant = plan_const(&input);
    let const_bytes = constant.map(|e| header_bytes(input.len, input.nan, e.count) + 4);
    if let Some(exceptions) = constant.filter(|e| e.count == 0)
        && const_bytes.is_some_and(|bytes| bytes <= raw_bytes)
    {
        write_const(&input, &exceptions, out);
        return out.len() - before;
    }
    let decimal = plan_decimal(&input, hint);
    let decimal_bytes = decimal.as_ref().map(|d| d.bytes(&input));
    let best = [const_bytes, decimal_bytes]
        .into_iter()
        .flatten()
        .fold(raw_bytes, usize::min);
    let try_xor = decimal.as_ref().is_none_or(|d| {
        let estimate = d.repeats + XOR_CHANGE_BITS * (d.count - 1 - d.repeats);
        estimate * XOR_PREFERENCE < d.count * d.width as usize * (XOR_PREFERENCE - 1)
    });
    if try_xor && write_xor(&input, out).is_some() {
        // XOR decodes several times slower than DECIMAL: it must save an eighth.
        if (out.len() - before) * XOR_PREFERENCE < best * (XOR_PREFERENCE - 1) {
            return out.len() - before;
        }
        out.truncate(before);
    }
    match (constant, decimal) {
        (Some(exceptions), _) if const_bytes == Some(best) => write_const(&input, &exceptions, out),
        (_, Some(decimal)) if decimal_bytes == Some(best) => {
            hint.exponent = decimal.exponent;
            decimal.write(&input, out);
        }
        _ => write_raw(values, out),
    }
    out.len() - before
}

// ---------------------------------------------------------------------------------------
// Decoder

/// Longest XOR stream: 127 values of at most 2 + 10 + 32 bits.
const XOR_STREAM_MAX: usize = (BLOCK_SLOTS - 1) * 44 / 8 + 1;

/// MSB-first bit reader over a zero-padded copy of the stream: reads past the end give
/// zeros (they still count, so `validate` sees the stream ran past the bytes).
struct BitReader {
    bytes: [u8; XOR_STREAM_MAX + 8],
    pos: usize,
}

impl BitReader {
    fn new(stream: &[u8]) -> BitReader {
        let mut bytes = [0; XOR_STREAM_MAX + 8];
        let n = stream.len().min(XOR_STREAM_MAX);
        bytes[..n].copy_from_slice(&stream[..n]);
        BitReader { bytes, pos: 0 }
    }

    /// The next 57 to 64 bits, MSB first (the rest zero).
    #[inline]
    fn peek(&self) -> u64 {
        let at = (self.pos / 8).min(XOR_STREAM_MAX);
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.bytes[at..at + 8]);
        u64::from_be_bytes(word) << (self.pos % 8)
    }

    /// `count` is 0..=32.
    #[inline]
    fn get(&mut self, count: u32) -> u32 {
        let word = self.peek();
        self.pos += count as usize;
        word.checked_shr(64 - count).unwrap_or(0) as u32
    }
}

/// Decodes `out.len()` XOR values; returns the payload bytes they took.
fn decode_xor(payload: &[u8], out: &mut [u32]) -> usize {
    let mut value = read_u32(payload).unwrap_or(MISSING);
    let mut reader = BitReader::new(payload.get(4..).unwrap_or_default());
    let (mut window_lz, mut window_len) = (0u32, WIDTH_MAX);
    let mut i = 0;
    if let Some(first) = out.first_mut() {
        *first = value;
        i = 1;
    }
    while i < out.len() {
        // A run of `0` control bits is a run of repeats (clock, idle series): take it at once.
        let zeros = (reader.peek().leading_zeros() as usize).min(56);
        if zeros > 0 {
            let run = zeros.min(out.len() - i);
            out[i..i + run].fill(value);
            reader.pos += run;
            i += run;
            continue;
        }
        reader.pos += 1;
        if reader.get(1) == 1 {
            window_lz = reader.get(5);
            window_len = reader.get(5) + 1;
        }
        let window_tz = WIDTH_MAX.saturating_sub(window_lz + window_len);
        value ^= reader.get(window_len).wrapping_shl(window_tz);
        out[i] = value;
        i += 1;
    }
    4 + reader.pos.div_ceil(8)
}

/// The fields of a DECIMAL payload; `end` is its byte length.
struct DecimalLayout {
    exponent: u8,
    shift: u8,
    width: u8,
    m0: i64,
    d1: i64,
    packed: usize,
    end: usize,
}

fn decimal_layout(payload: &[u8], count: usize, dod: bool) -> Option<DecimalLayout> {
    let (&exponent, &shift) = (payload.first()?, payload.get(1)?);
    let (m0, m0_bytes) = read_varint(payload.get(2..)?)?;
    let mut pos = 2 + m0_bytes;
    let mut d1 = 0;
    if dod {
        let (value, bytes) = read_varint(payload.get(pos..)?)?;
        d1 = unzigzag(value);
        pos += bytes;
    }
    let width = *payload.get(pos)?;
    let packed = pos + 1;
    let end = packed + packed_bytes(count, u32::from(width).min(WIDTH_MAX));
    Some(DecimalLayout {
        exponent,
        shift,
        width,
        m0: unzigzag(m0),
        d1,
        packed,
        end,
    })
}

fn unpack(bytes: &[u8], width: u32, out: &mut [u32; BLOCK_SLOTS], count: usize) {
    let width = width.min(WIDTH_MAX);
    if width == 0 {
        out.fill(0);
        return;
    }
    let needed = packed_bytes(count, width);
    let mut scratch = [0u8; PACKED_BYTES_MAX + 8];
    let bytes = match bytes.get(..needed) {
        Some(bytes) if count == BLOCK_SLOTS => bytes,
        _ => {
            let n = bytes.len().min(needed);
            scratch[..n].copy_from_slice(&bytes[..n]);
            &scratch[..]
        }
    };
    if count == BLOCK_SLOTS {
        BitPacker4x::new().decompress(bytes, out, width as u8);
        return;
    }
    let mask = (1u64 << width) - 1;
    for (i, value) in out.iter_mut().take(count).enumerate() {
        let bit = i * width as usize;
        let mut word = [0u8; 8];
        word.copy_from_slice(&scratch[bit / 8..bit / 8 + 8]);
        *value = ((u64::from_le_bytes(word) >> (bit % 8)) & mask) as u32;
    }
}

/// The mantissas of a DECIMAL payload into `out[..count]`.
fn decimal_mantissas(
    payload: &[u8],
    layout: &DecimalLayout,
    dod: bool,
    out: &mut [i64; BLOCK_SLOTS],
    count: usize,
) {
    let mut steps = [0u32; BLOCK_SLOTS];
    let bytes = payload.get(layout.packed..).unwrap_or_default();
    unpack(bytes, u32::from(layout.width), &mut steps, count);
    // Unzigzag in u32 lanes (vectorises); the steps fit i32.
    for step in &mut steps {
        *step = (*step >> 1) ^ (*step & 1).wrapping_neg();
    }
    let shift = u32::from(layout.shift);
    let step = |q: u32| i64::from(q as i32).wrapping_shl(shift);
    // The prefix sums are the only serial part: nothing else in these loops.
    let out = out.iter_mut().take(count);
    if dod {
        let mut delta = layout.d1;
        let mut mantissa = layout.m0.wrapping_sub(layout.d1);
        for (value, &q) in out.zip(&steps) {
            delta = delta.wrapping_add(step(q));
            mantissa = mantissa.wrapping_add(delta);
            *value = mantissa;
        }
    } else {
        let mut mantissa = layout.m0;
        for (value, &q) in out.zip(&steps) {
            mantissa = mantissa.wrapping_add(step(q));
            *value = mantissa;
        }
    }
}

fn decode_decimal(payload: &[u8], dod: bool, out: &mut [f32]) {
    let Some(layout) = decimal_layout(payload, out.len(), dod) else {
        return;
    };
    let mut mantissas = [0i64; BLOCK_SLOTS];
    decimal_mantissas(payload, &layout, dod, &mut mantissas, out.len());
    let power = POW10[usize::from(layout.exponent.min(EXPONENT_MAX))];
    // `decimal_value` with the conversion done by ROUNDER (exact below 2^51, which the
    // encoder and `validate` guarantee), so that this loop vectorises.
    let rounder = ROUNDER.to_bits() as i64;
    let exact = |mantissa: i64| f64::from_bits(mantissa.wrapping_add(rounder) as u64) - ROUNDER;
    if layout.exponent == 0 {
        // Dividing by 10^0 = 1 is exact: the same values without the division's cost.
        for (value, &mantissa) in out.iter_mut().zip(&mantissas) {
            *value = exact(mantissa) as f32;
        }
    } else {
        for (value, &mantissa) in out.iter_mut().zip(&mantissas) {
            *value = decimal_value(exact(mantissa), power);
        }
    }
}

/// Decodes the block into `out[..len]` (`out` holds at least `len` slots) and returns `len`;
/// 0 when the header is unreadable.
fn decode_slots(block: &[u8], out: &mut [f32]) -> usize {
    let Ok(header) = parse(block) else {
        return 0;
    };
    let len = header.len.min(BLOCK_SLOTS).min(out.len());
    let out = &mut out[..len];
    if header.codec == CODEC_RAW {
        let words = header.payload.chunks_exact(4);
        for (value, word) in out.iter_mut().zip(words) {
            *value = f32::from_bits(read_u32(word).unwrap_or(MISSING));
        }
        return len;
    }
    let dense = header.dense() & slots_mask(len);
    let count = dense.count_ones() as usize;
    match header.codec {
        CODEC_CONST => {
            let bits = read_u32(header.payload).unwrap_or(MISSING);
            out[..count].fill(f32::from_bits(bits));
        }
        CODEC_DECIMAL => {
            decode_decimal(
                header.payload,
                header.flags & FLAG_DOD != 0,
                &mut out[..count],
            );
        }
        _ => {
            let mut bits = [0u32; BLOCK_SLOTS];
            decode_xor(header.payload, &mut bits[..count]);
            for (value, &bits) in out.iter_mut().zip(&bits[..count]) {
                *value = f32::from_bits(bits);
            }
        }
    }
    if count < len {
        // Spread the dense values to their slots, from the back so nothing is overwritten
        // before it moved, then the exceptions.
        let mut next = count;
        for slot in (0..len).rev() {
            if dense & slot_bit(slot) != 0 {
                next -= 1;
                out[slot] = out[next];
            } else {
                out[slot] = f32::from_bits(MISSING);
            }
        }
        for (slot, bits) in header.exceptions() {
            if let Some(value) = out.get_mut(slot) {
                *value = f32::from_bits(bits);
            }
        }
    }
    len
}

/// Checks that `bytes` starts with a whole, well-formed block and returns its byte length.
pub fn validate(bytes: &[u8]) -> Result<usize, BlockError> {
    let header = parse(bytes)?;
    let len = header.len;
    if len > BLOCK_SLOTS {
        return Err(BlockError::Malformed("more than 128 slots"));
    }
    if header.flags & !FLAGS_KNOWN != 0 {
        return Err(BlockError::Malformed("unknown flags"));
    }
    if header.flags & FLAG_DOD != 0 && header.codec != CODEC_DECIMAL {
        return Err(BlockError::Malformed("delta-of-delta flag outside DECIMAL"));
    }
    if header.nan & !slots_mask(len) != 0 {
        return Err(BlockError::Malformed("NaN bitmap past the last slot"));
    }
    let count = header.exceptions.len() / EXCEPTION_BYTES;
    if count > BLOCK_EXCEPTIONS_MAX {
        return Err(BlockError::Malformed("too many exceptions"));
    }
    let mut previous = None;
    for (slot, _) in header.exceptions() {
        if slot >= len || previous.is_some_and(|p| p >= slot) || header.nan & slot_bit(slot) != 0 {
            return Err(BlockError::Malformed(
                "exception slots out of order or range",
            ));
        }
        previous = Some(slot);
    }
    let dense = header.dense().count_ones() as usize;
    let payload = match header.codec {
        CODEC_RAW => 4 * len,
        _ if dense == 0 => 0,
        CODEC_CONST => 4,
        CODEC_DECIMAL => {
            let dod = header.flags & FLAG_DOD != 0;
            let Some(layout) = decimal_layout(header.payload, dense, dod) else {
                // Fields end within 2 bytes + two 10-byte varints + 1 byte, or they are bad.
                if header.payload.len() >= 23 {
                    return Err(BlockError::Malformed("DECIMAL varint longer than 10 bytes"));
                }
                return Err(BlockError::Truncated {
                    needed: bytes.len() + 1,
                    available: bytes.len(),
                });
            };
            if layout.exponent > EXPONENT_MAX || u32::from(layout.width) > WIDTH_MAX {
                return Err(BlockError::Malformed(
                    "DECIMAL exponent or width out of range",
                ));
            }
            let mut mantissas = [0i64; BLOCK_SLOTS];
            decimal_mantissas(header.payload, &layout, dod, &mut mantissas, dense);
            if mantissas.iter().any(|m| m.unsigned_abs() >= MANTISSA_LIMIT) {
                return Err(BlockError::Malformed("DECIMAL mantissa of 2^51 or more"));
            }
            layout.end
        }
        _ => {
            let mut bits = [0u32; BLOCK_SLOTS];
            let end = decode_xor(header.payload, &mut bits[..dense]);
            if bits[..dense].iter().any(|&b| f32::from_bits(b).is_nan()) {
                return Err(BlockError::Malformed("NaN among XOR values"));
            }
            end
        }
    };
    let needed = header.header_bytes + payload;
    if bytes.len() < needed {
        return Err(BlockError::Truncated {
            needed,
            available: bytes.len(),
        });
    }
    Ok(needed)
}

/// Slot count of a block, from its header alone.
pub fn len(block: &[u8]) -> usize {
    block
        .get(1)
        .map_or(0, |&count| (usize::from(count) + 1).min(BLOCK_SLOTS))
}

/// Decodes every slot into `out[..len]` and returns `len`.
pub fn decode(block: &[u8], out: &mut [f32; BLOCK_SLOTS]) -> usize {
    decode_slots(block, out)
}

/// Appends slots `[first, first + count)` of a block to `out` (clamped to the block's length).
/// Decodes in place at the end of `out` (grown by the block's length, then cut to the range):
/// no temporary block. Safe Rust cannot write into spare capacity, so the growth fills it
/// first (a 512-byte memset per block).
pub fn decode_range_into(block: &[u8], first: usize, count: usize, out: &mut Vec<f32>) {
    let len = len(block);
    let first = first.min(len);
    let end = first.saturating_add(count).min(len);
    if first == end {
        return;
    }
    let base = out.len();
    out.resize(base + len, f32::from_bits(MISSING));
    decode_slots(block, &mut out[base..]);
    if first > 0 {
        out.copy_within(base + first..base + end, base);
    }
    out.truncate(base + end - first);
}

/// Slots that hold a value (not NaN), from the header (RAW: from the bit patterns).
fn present(block: &[u8]) -> u128 {
    let Ok(header) = parse(block) else {
        return 0;
    };
    let len = header.len.min(BLOCK_SLOTS);
    if header.codec == CODEC_RAW {
        let words = header.payload.chunks_exact(4).take(len);
        return words.enumerate().fold(0, |mask, (slot, word)| {
            let bits = read_u32(word).unwrap_or(MISSING);
            mask | u128::from(!f32::from_bits(bits).is_nan()) << slot
        });
    }
    let const_missing = header.codec == CODEC_CONST
        && read_u32(header.payload).is_none_or(|bits| f32::from_bits(bits).is_nan());
    let mut mask = if const_missing { 0 } else { header.dense() };
    for (slot, bits) in header.exceptions() {
        if !f32::from_bits(bits).is_nan() {
            mask |= slot_bit(slot);
        }
    }
    mask & slots_mask(len)
}

/// The first slot that holds a value (not NaN).
pub fn first_present(block: &[u8]) -> Option<usize> {
    let mask = present(block);
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

/// The last slot that holds a value (not NaN).
pub fn last_present(block: &[u8]) -> Option<usize> {
    let mask = present(block);
    (mask != 0).then(|| 127 - mask.leading_zeros() as usize)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strata_lineproto::{FieldValue, Limits, Parser};

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    fn encoded(values: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(values, &mut EncodeHint::default(), &mut out);
        out
    }

    /// Every property of one block: size bound, self-delimiting, bit-exact, ranges, presence.
    fn check(values: &[f32], hint: &mut EncodeHint) -> Vec<u8> {
        let mut out = vec![0xee; 3];
        let written = encode(values, hint, &mut out);
        let block = out.split_off(3);
        assert_eq!(out, [0xee; 3], "encode touched bytes before its block");
        assert_eq!(written, block.len());
        assert!(written <= BLOCK_BYTES_MAX, "{written} bytes");
        assert!(
            written <= HEADER_BYTES + 4 * values.len(),
            "larger than RAW"
        );
        assert_eq!(validate(&block), Ok(written));
        let mut trailing = block.clone();
        trailing.extend_from_slice(&[0x13, 0xff, 1, 2, 3]);
        assert_eq!(validate(&trailing), Ok(written));
        assert_eq!(len(&block), values.len());
        let mut decoded = [0.0; BLOCK_SLOTS];
        assert_eq!(decode(&trailing, &mut decoded), values.len());
        assert_eq!(
            bits(&decoded[..values.len()]),
            bits(values),
            "block {block:02x?}"
        );
        let n = values.len();
        for (first, count) in [
            (0, n),
            (0, 1),
            (n / 2, n),
            (n - 1, 5),
            (n / 3, n / 3),
            (n, 1),
        ] {
            let mut range = vec![7.0];
            decode_range_into(&block, first, count, &mut range);
            let end = (first + count).min(n);
            assert_eq!(bits(&range[1..]), bits(&values[first.min(n)..end]));
            assert_eq!(range[0], 7.0);
        }
        assert_eq!(
            first_present(&block),
            values.iter().position(|v| !v.is_nan())
        );
        assert_eq!(
            last_present(&block),
            values.iter().rposition(|v| !v.is_nan())
        );
        block
    }

    fn codec(block: &[u8]) -> u8 {
        block[0] & 0x0f
    }

    /// Values as ingest makes them: decimal text through the line-protocol parser, `as f32`.
    fn ingested(text: &str) -> f32 {
        let line = format!("m value={text} 1\n");
        let parsed = Parser::new(line.as_bytes(), &Limits::default())
            .next()
            .unwrap()
            .unwrap();
        match parsed.fields().next().unwrap().1 {
            FieldValue::Float(v) => v as f32,
            other => panic!("{other:?}"),
        }
    }

    fn decimal_text(mantissa: i64, decimals: u32) -> String {
        let scale = 10i64.pow(decimals);
        let sign = if mantissa < 0 { "-" } else { "" };
        let (int, frac) = (mantissa.abs() / scale, mantissa.abs() % scale);
        match decimals {
            0 => format!("{sign}{int}"),
            d => format!("{sign}{int}.{frac:0width$}", width = d as usize),
        }
    }

    fn walk(start: i64, steps: &[i64], decimals: u32) -> Vec<f32> {
        let mut m = start;
        steps
            .iter()
            .map(|step| {
                m += step;
                ingested(&decimal_text(m, decimals))
            })
            .collect()
    }

    const SPECIALS: [u32; 14] = [
        0x0000_0000, // +0
        0x8000_0000, // -0
        0x0000_0001, // smallest subnormal
        0x007f_ffff, // largest subnormal
        0x8000_0001,
        0x7f80_0000, // +inf
        0xff80_0000, // -inf
        0x7f7f_ffff, // f32::MAX
        0xff7f_ffff, // f32::MIN
        0x0080_0000, // f32::MIN_POSITIVE
        0x7fa0_0001, // NaN with a payload
        0xffc0_0000, // negative NaN
        0x7fc0_0000, // missing
        0x7fc0_0001,
    ];

    #[test]
    fn raw_round_trip_keeps_every_bit() {
        let values: Vec<f32> = [0x7fc0_0000, 0x8000_0000, 1, 0x7f80_0000, 0x7fa0_0001, 42]
            .into_iter()
            .map(f32::from_bits)
            .collect();
        check(&values, &mut EncodeHint::default());
        let mut raw = Vec::new();
        write_raw(&values, &mut raw);
        assert_eq!(validate(&raw), Ok(raw.len()));
        let mut decoded = [0.0; BLOCK_SLOTS];
        assert_eq!(decode(&raw, &mut decoded), values.len());
        assert_eq!(bits(&decoded[..values.len()]), bits(&values));
        assert_eq!(
            (first_present(&raw), last_present(&raw)),
            (Some(1), Some(5))
        );
    }

    #[test]
    fn validate_refuses_truncated_and_unknown_blocks() {
        let mut hint = EncodeHint::default();
        for values in [vec![1.0, 2.0], vec![1.5; 128], walk(100, &[3; 128], 2)] {
            let block = check(&values, &mut hint);
            for cut in 0..block.len() {
                assert!(
                    matches!(validate(&block[..cut]), Err(BlockError::Truncated { .. })),
                    "{block:02x?} cut at {cut}"
                );
            }
            let mut wrong = block.clone();
            wrong[0] = 0x20 | (block[0] & 0x0f);
            assert_eq!(validate(&wrong), Err(BlockError::Version(2)));
            wrong[0] = 0x14;
            assert_eq!(validate(&wrong), Err(BlockError::Codec(4)));
        }
        // 129 slots, unknown flags, DOD outside DECIMAL, exceptions out of order.
        for bytes in [
            &[0x13, 0x80][..],
            &[0x10, 0x00, 0x08, 0, 0, 0, 0],
            &[0x10, 0x00, 0x04, 0, 0, 0, 0],
            &[
                0x10, 0x03, 0x02, 2, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ] {
            assert!(
                matches!(validate(bytes), Err(BlockError::Malformed(_))),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn all_missing_blocks_of_every_length() {
        for n in 1..=BLOCK_SLOTS {
            let block = check(&vec![f32::NAN; n], &mut EncodeHint::default());
            assert_eq!(block.len(), 7.min(2 + 4 * n), "CONST NaN without a bitmap");
        }
    }

    #[test]
    fn missing_in_every_single_position() {
        let values = walk(5000, &[17, -3, 40, -22].repeat(32), 1);
        let mut hint = EncodeHint::default();
        for slot in 0..BLOCK_SLOTS {
            let mut values = values.clone();
            values[slot] = f32::NAN;
            let block = check(&values, &mut hint);
            assert_eq!(codec(&block), CODEC_DECIMAL);
            assert_eq!(block[2] & FLAG_NAN_BITMAP, FLAG_NAN_BITMAP);
        }
    }

    #[test]
    fn every_special_value_in_every_codec_context() {
        let mut hint = EncodeHint::default();
        for &special in &SPECIALS {
            let special = f32::from_bits(special);
            for context in [vec![2.5; 128], walk(0, &[7; 128], 2), walk(3, &[1; 20], 0)] {
                for slot in [0, 1, context.len() / 2, context.len() - 1] {
                    let mut values = context.clone();
                    values[slot] = special;
                    check(&values, &mut hint);
                }
                check(&vec![special; context.len()], &mut hint);
            }
        }
        let zeros: Vec<f32> = (0..128)
            .map(|i| if i % 3 == 0 { -0.0 } else { 0.0 })
            .collect();
        check(&zeros, &mut hint);
    }

    #[test]
    fn constants_are_const_blocks() {
        for value in [0.0, 1.0, 2400.0, -7.25, 1e30, f32::MAX] {
            let block = check(&[value; 128], &mut EncodeHint::default());
            assert_eq!((codec(&block), block.len()), (CODEC_CONST, 7));
        }
        // A frequency change: one level then another, far cheaper than DECIMAL's deltas.
        let mut clock = vec![2400.0; 128];
        clock[70..].fill(1200.0);
        let block = check(&clock, &mut EncodeHint::default());
        assert!(block.len() <= 25, "{} bytes", block.len());
    }

    #[test]
    fn counters_use_delta_of_delta() {
        let counter: Vec<f32> = (0..128).map(|i| (1_000_000 + 4096 * i) as f32).collect();
        let block = check(&counter, &mut EncodeHint::default());
        assert_eq!(
            (codec(&block), block[2] & FLAG_DOD),
            (CODEC_DECIMAL, FLAG_DOD)
        );
        assert!(block.len() <= 12, "{} bytes", block.len());
    }

    #[test]
    fn the_hint_remembers_the_exponent() {
        let mut hint = EncodeHint::default();
        check(&walk(1234, &[3, -1].repeat(64), 3), &mut hint);
        assert_eq!(hint.exponent, 3);
        // Mantissas that all end in 0 fall back to the smaller exponent.
        check(&walk(1230, &[30, -10].repeat(64), 3), &mut hint);
        assert_eq!(hint.exponent, 2);
    }

    /// Presence comes from the header: the payload is not even read.
    #[test]
    fn presence_needs_only_the_header() {
        let mut values = walk(700, &[5, -2, 9].repeat(43)[..128], 1);
        values[..3].fill(f32::NAN);
        values[120..].fill(f32::NAN);
        values[5] = f32::from_bits(0x7fa0_0000);
        values[119] = -0.0;
        let block = check(&values, &mut EncodeHint::default());
        assert_eq!(codec(&block), CODEC_DECIMAL);
        let header = parse(&block).unwrap().header_bytes;
        let cut = &block[..header];
        assert_eq!(
            (first_present(cut), last_present(cut)),
            (Some(3), Some(119))
        );
    }

    /// Format version 1, pinned: these bytes must keep decoding to these values.
    #[test]
    fn fixtures_pin_format_1() {
        let nan = f32::from_bits(MISSING);
        let alternating: Vec<f32> = (0..128).map(|i| -((i + 1) / 2) as f32).collect();
        let mut packed_4x = vec![0x11, 0x7f, 0x00, 0, 0, 0x00, 1];
        packed_4x.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff].repeat(2));
        let fixtures: [(&[u8], Vec<f32>); 7] = [
            (&[0x10, 0x03, 0x00, 0x00, 0x00, 0x80, 0x3f], vec![1.0; 4]),
            (&[0x10, 0x01, 0x00, 0x00, 0x00, 0xc0, 0x7f], vec![nan; 2]),
            (
                &[0x11, 0x02, 0x00, 1, 0, 0x1e, 3, 0x10, 0x01],
                vec![1.5, 1.6, 1.8],
            ),
            (
                &[
                    0x11, 0x03, 0x03, 0x02, 1, 2, 0, 0, 0, 0x80, 0, 0, 0x04, 2, 0x08,
                ],
                vec![2.0, nan, -0.0, 3.0],
            ),
            (
                &[0x11, 0x7f, 0x04, 0, 0, 0x00, 0x02, 0],
                (0..128).map(|i| i as f32).collect(),
            ),
            (&packed_4x, alternating),
            (
                &[0x12, 0x02, 0x00, 0, 0, 0x80, 0x3f, 0x61, 0x3f, 0xf8],
                vec![1.0, 1.0, 2.0],
            ),
        ];
        for (block, values) in &fixtures {
            assert_eq!(validate(block), Ok(block.len()), "{block:02x?}");
            let mut decoded = [0.0; BLOCK_SLOTS];
            assert_eq!(decode(block, &mut decoded), values.len());
            assert_eq!(bits(&decoded[..values.len()]), bits(values), "{block:02x?}");
        }
        let raw: &[u8] = &[0x13, 0x00, 0x01, 0x00, 0xa0, 0x7f];
        let mut decoded = [0.0; BLOCK_SLOTS];
        assert_eq!(decode(raw, &mut decoded), 1);
        assert_eq!(decoded[0].to_bits(), 0x7fa0_0001);
        // The encoder writes the same bytes for the blocks it would choose.
        for (block, values) in &fixtures[..5] {
            assert_eq!(&encoded(values), block);
        }
    }

    fn decimal_block() -> impl Strategy<Value = Vec<f32>> {
        (
            1..=BLOCK_SLOTS,
            0u32..=6,
            -1_000_000i64..1_000_000,
            0i64..5000,
        )
            .prop_flat_map(|(n, decimals, start, step)| {
                proptest::collection::vec(-step..=step, n)
                    .prop_map(move |steps| walk(start, &steps, decimals))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bits_round_trip(values in proptest::collection::vec(any::<u32>(), 1..=BLOCK_SLOTS)) {
            let values: Vec<f32> = values.into_iter().map(f32::from_bits).collect();
            check(&values, &mut EncodeHint::default());
        }

        #[test]
        fn specials_mixed_into_decimals_round_trip(
            values in decimal_block(),
            specials in proptest::collection::vec((0..BLOCK_SLOTS, 0..SPECIALS.len()), 0..12),
        ) {
            let mut values = values;
            let n = values.len();
            for (slot, special) in specials {
                values[slot % n] = f32::from_bits(SPECIALS[special]);
            }
            check(&values, &mut EncodeHint::default());
        }

        /// The exactness argument: parsed decimals never need an exception.
        #[test]
        fn ingested_decimals_are_decimal_blocks(values in decimal_block(), mask in any::<u128>(), gaps in any::<bool>()) {
            let mut values = values;
            if gaps {
                for (slot, value) in values.iter_mut().enumerate() {
                    if mask & (1 << slot) != 0 {
                        *value = f32::NAN;
                    }
                }
            }
            let block = check(&values, &mut EncodeHint::default());
            // Very short blocks may be smaller as RAW (header and first mantissa).
            let present = values.iter().filter(|v| !v.is_nan()).count();
            prop_assert!(codec(&block) != CODEC_RAW || present < 16, "{:02x?}", block);
            if values.iter().any(|v| !v.is_nan()) {
                let plan = plan_decimal(&Input::new(&values), &EncodeHint::default()).unwrap();
                prop_assert_eq!(plan.exceptions.count, 0);
            }
        }

        #[test]
        fn hints_carry_over_blocks(blocks in proptest::collection::vec(decimal_block(), 1..4)) {
            let mut hint = EncodeHint::default();
            for values in blocks {
                check(&values, &mut hint);
            }
        }

        #[test]
        fn counters_round_trip(start in 0i64..1 << 40, rate in 0i64..1 << 20, jitter in proptest::collection::vec(0i64..4, 1..=BLOCK_SLOTS)) {
            let mut value = start;
            let values: Vec<f32> = jitter.iter().map(|j| { value += rate + j; value as f32 }).collect();
            check(&values, &mut EncodeHint::default());
        }

        #[test]
        fn spread_width_is_the_zigzag_width(d in -(1i64 << 60)..1 << 60) {
            let mut spread = Spread::default();
            spread.add(d);
            prop_assert_eq!(width_of(spread.zigzags), width_of(zigzag(d)));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            poke(&bytes);
        }

        #[test]
        fn damaged_blocks_never_panic(values in decimal_block(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4), cut in any::<usize>()) {
            let mut block = encoded(&values);
            for (at, byte) in flips {
                let at = at % block.len();
                block[at] ^= byte;
            }
            poke(&block);
            poke(&block[..cut % (block.len() + 1)]);
        }
    }

    fn poke(bytes: &[u8]) {
        let mut out = [0.0; BLOCK_SLOTS];
        let _ = validate(bytes);
        let n = decode(bytes, &mut out);
        assert!(n <= BLOCK_SLOTS && len(bytes) <= BLOCK_SLOTS);
        let mut range = Vec::new();
        decode_range_into(bytes, 3, 50, &mut range);
        assert!(range.len() <= 50);
        assert!(first_present(bytes) <= last_present(bytes));
        assert!(last_present(bytes).is_none_or(|slot| slot < BLOCK_SLOTS));
    }
}
