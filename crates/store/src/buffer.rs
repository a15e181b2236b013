//! Fixed-frequency float32 buffers and the chains (series) they form.
//!
//! A [`Buffer`] holds up to [`BUFFER_CAPACITY`] consecutive slots of one series; slot `i` covers
//! `[start + i·f, start + (i+1)·f)`. No timestamps are stored per sample. Missing slots are NaN.
//!
//! A [`Series`] is the chain of buffers of one metric on one level, sorted by `start` and
//! non-overlapping. Every buffer of a series starts on the same grid (`first write − f/2 + k·f`),
//! so a slot means the same time interval in every buffer. The newest buffer is the *head*;
//! normal progress appends to it, and a write past its last slot starts a new head at the slot of
//! that write (a time jump leaves a gap that reads as NaN).
//!
//! Late samples (COMPAT.md decision 16) go into the older buffer whose range holds them. A
//! buffer's writable range ends at its capacity or at the next buffer's start, whichever comes
//! first. A late sample that no buffer's range holds — in a gap, or older than the first buffer
//! (decision 16 allows dropping that one, but with concurrent writers the first two samples of
//! a new series routinely arrive out of order, and the store must not lose the first one) —
//! gets a new buffer on the grid whose full range ends at the next buffer's start, or as close
//! to it as the previous buffer's range allows. So samples written newest-first fill full-size
//! buffers backwards instead of starting one buffer per sample; the slots before the sample
//! read as NaN, and reads start at the first value, not at the buffer's start. (Samples
//! outside the retention window are refused before they reach a series.) Except when the head
//! is young — all raw, in its first block — and the sample is after every older buffer's
//! range: the head then starts earlier, at the sample's slot, as it would have had the
//! samples arrived in order ([`Series::start_head_earlier`]).
//!
//! Runs loaded from snapshots are coalesced into full-size buffers the same way
//! ([`Series::adopt`]), so a chain fragmented by an older version is compacted on restart.
//!
//! # Sealed blocks
//!
//! Slots `[k·128, (k+1)·128)` of a buffer are its block `k` ([`BLOCK_SLOTS`]). Blocks behind
//! the one being written are *sealed*: encoded losslessly by [`crate::block`], in a fraction of
//! four bytes a slot. The rest, the *tail*, is raw float32, so appending costs what it always
//! did. Both share one allocation: the sealed blocks back to back (each after its byte
//! length), then the tail's slots as little-endian bytes; the spare capacity is the tail's room
//! to grow. A write past the tail's block seals it (padded with NaN to 128 slots); a new head
//! seals the old head's tail as it is (a short block), an older buffer's tail is sealed once
//! it reaches the next buffer (nothing can follow it), and [`Series::seal_idle`] seals the
//! tails nothing writes to any more. Only the last sealed block can be short, and only while
//! its buffer has no tail: a write past it pads it to 128 slots first, so slot `i` is always in
//! block `i / 128`. A late write into a sealed block decodes, patches and encodes it again
//! ([`Series::merge_run`] does that once per block for a run of samples).

use crate::block::{self, BLOCK_SLOTS, EncodeHint};
use crate::memory::allocation;
use crate::pool::BufferPool;
use std::cell::RefCell;
use std::ops::{ControlFlow, Range};
use std::sync::atomic::AtomicU32;

/// Slots per buffer (cc-metric-store's `BufferCap`). At 60 s that is 8.5 hours per buffer.
pub const BUFFER_CAPACITY: usize = 512;

/// Sealed blocks of a full buffer (also the most a format-3 snapshot buffer may list).
pub const BLOCKS_PER_BUFFER: usize = BUFFER_CAPACITY / BLOCK_SLOTS;

/// A tail's room starts at this many slots and doubles up to a whole block (16, 32, 64, 128):
/// a partly filled tail (every head, and every buffer of a short-lived series) wastes less
/// than half its room, and a block costs four reallocations. Keeping a whole block of room
/// instead cost every head up to 512 bytes (0.36 bytes per sample of a day of 64 nodes).
const GROWTH_SLOTS: usize = 16;

/// The first allocation of a buffer is this small: a series that gets one sample (a host
/// that reported once) costs 16 bytes of data instead of 64, and one that keeps growing pays
/// one more reallocation per buffer.
const FIRST_SLOTS: usize = 4;

const SLOT_BYTES: usize = size_of::<f32>();

/// Each sealed block is preceded by its byte length (u16), so readers find block `k` by
/// skipping `k` lengths instead of parsing `k` headers ([`block::validate`] checks far more
/// than the length). Two bytes per 128 slots.
const LENGTH_BYTES: usize = size_of::<u16>();

/// Bytes of a whole block's raw tail: the allocations the pool recycles.
pub(crate) const TAIL_BYTES: usize = BLOCK_SLOTS * SLOT_BYTES;

/// [`Series::seal_idle`] seals a tail once its buffer has had no new slot for this many steps
/// (16 minutes at 60 s). Sealing too early costs one re-encode of one block if the series
/// resumes; sealing late keeps up to 512 raw bytes per series that stopped (a job or a node
/// that ended). Collector hiccups and late samples span a few steps, so 16 leaves those alone.
pub(crate) const IDLE_SEAL_STEPS: i64 = 16;

const _: () = assert!(BUFFER_CAPACITY.is_multiple_of(BLOCK_SLOTS));
const _: () = assert!(BLOCK_SLOTS.is_power_of_two() && GROWTH_SLOTS.is_power_of_two());
// Offsets into a buffer's bytes are u16.
const _: () =
    assert!(BLOCKS_PER_BUFFER * (LENGTH_BYTES + block::BLOCK_BYTES_MAX) <= u16::MAX as usize);

const NAN_BYTES: [u8; SLOT_BYTES] = f32::NAN.to_le_bytes();

thread_local! {
    /// Blocks are encoded here, then copied into their buffer, which grows by exactly their
    /// size (encoding into the buffer itself could double its allocation).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Encodes `values` as one block and hands its bytes to `then`.
fn with_encoded<R>(values: &[f32], hint: &mut EncodeHint, then: impl FnOnce(&[u8]) -> R) -> R {
    #[cfg(test)]
    tests::ENCODED.set(tests::ENCODED.get() + 1);
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        block::encode(values, hint, scratch);
        then(scratch)
    })
}

fn slot_value(bytes: &[u8]) -> f32 {
    <[u8; SLOT_BYTES]>::try_from(bytes).map_or(f32::NAN, f32::from_le_bytes)
}

/// The byte range of the block whose length prefix is at `at` in `sealed`.
fn block_at(sealed: &[u8], at: usize) -> Option<Range<usize>> {
    let prefix = sealed.get(at..at + LENGTH_BYTES)?;
    let size = usize::from(u16::from_le_bytes(
        <[u8; LENGTH_BYTES]>::try_from(prefix).ok()?,
    ));
    let range = at + LENGTH_BYTES..at + LENGTH_BYTES + size;
    sealed.get(range.clone()).map(|_| range)
}

/// A sealed block or the raw tail of a buffer.
#[derive(Debug, Clone, Copy, Default)]
struct Segment<'a> {
    /// The buffer's slot where it starts.
    first: usize,
    len: usize,
    bytes: &'a [u8],
    sealed: bool,
}

impl Segment<'_> {
    /// All its slots, decoded into `out`.
    fn decode<'o>(&self, out: &'o mut [f32; BLOCK_SLOTS]) -> &'o [f32] {
        let len = if self.sealed {
            block::decode(self.bytes, out)
        } else {
            for (slot, bytes) in out.iter_mut().zip(self.bytes.chunks_exact(SLOT_BYTES)) {
                *slot = slot_value(bytes);
            }
            self.len
        };
        &out[..len.min(BLOCK_SLOTS)]
    }

    /// Appends its slots `[first, first + count)` to `out`.
    fn extend_into(&self, first: usize, count: usize, out: &mut Vec<f32>) {
        if self.sealed {
            block::decode_range_into(self.bytes, first, count, out);
        } else {
            let bytes = self
                .bytes
                .get(first * SLOT_BYTES..(first + count) * SLOT_BYTES);
            out.extend(
                bytes
                    .unwrap_or_default()
                    .chunks_exact(SLOT_BYTES)
                    .map(slot_value),
            );
        }
    }

    fn first_present(&self) -> Option<usize> {
        if self.sealed {
            return block::first_present(self.bytes);
        }
        let mut slots = self.bytes.chunks_exact(SLOT_BYTES);
        slots.position(|bytes| !slot_value(bytes).is_nan())
    }
}

/// The segments of a buffer, oldest first.
struct Segments<'a> {
    items: [Segment<'a>; BLOCKS_PER_BUFFER + 1],
    count: usize,
}

impl<'a> Segments<'a> {
    fn as_slice(&self) -> &[Segment<'a>] {
        &self.items[..self.count]
    }
}

/// One run of slots of a series: sealed blocks, then a raw tail (see the module doc).
#[derive(Debug)]
pub(crate) struct Buffer {
    /// Start of slot 0, unix seconds.
    start: i64,
    /// The sealed blocks, each after its length (`tail_at` bytes), then the tail's slots.
    data: Vec<u8>,
    /// Filled slots, at most [`BUFFER_CAPACITY`].
    len: u16,
    tail_at: u16,
    sealed: u8,
    /// What the encoder learnt from the previous block (a byte; a series carries it from
    /// buffer to buffer).
    hint: EncodeHint,
    /// Per sealed block, the snapshot generation whose files hold its bytes (0: none, or
    /// changed since). Set by a snapshot under the host's read lock, hence atomic; reset
    /// by a re-encode, under the write lock.
    generations: [AtomicU32; BLOCKS_PER_BUFFER],
}

impl Buffer {
    fn empty(start: i64, mut data: Vec<u8>, hint: EncodeHint) -> Self {
        data.clear();
        Self {
            start,
            data,
            len: 0,
            tail_at: 0,
            sealed: 0,
            hint,
            generations: Default::default(),
        }
    }

    pub(crate) fn start(&self) -> i64 {
        self.start
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Bytes of heap this buffer holds: its sealed blocks and its tail's room.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.data.capacity()
    }

    pub(crate) fn sealed_blocks(&self) -> usize {
        usize::from(self.sealed)
    }

    /// Bytes of the sealed blocks, with their lengths.
    pub(crate) fn encoded_bytes(&self) -> usize {
        usize::from(self.tail_at)
    }

    fn tail(&self) -> &[u8] {
        &self.data[self.encoded_bytes()..]
    }

    /// Bytes of the raw tail's slots (its room not included).
    pub(crate) fn tail_bytes(&self) -> usize {
        self.tail().len()
    }

    /// The buffer's slot where the tail starts.
    fn tail_first(&self) -> usize {
        self.sealed_blocks() * BLOCK_SLOTS
    }

    fn segments(&self) -> Segments<'_> {
        let mut segments = Segments {
            items: [Segment::default(); BLOCKS_PER_BUFFER + 1],
            count: 0,
        };
        let (sealed, tail) = self.data.split_at(self.encoded_bytes());
        let mut at = 0;
        for (k, item) in segments.items.iter_mut().enumerate() {
            let first = k * BLOCK_SLOTS;
            if let Some(range) = block_at(sealed, at) {
                let bytes = &sealed[range.clone()];
                *item = Segment {
                    first,
                    len: block::len(bytes),
                    bytes,
                    sealed: true,
                };
                at = range.end;
            } else if !tail.is_empty() {
                *item = Segment {
                    first,
                    len: tail.len() / SLOT_BYTES,
                    bytes: tail,
                    sealed: false,
                };
            } else {
                break;
            }
            segments.count = k + 1;
            if !item.sealed {
                break;
            }
        }
        segments
    }

    /// Byte range of sealed block `k` (without its length).
    fn block_range(&self, k: usize) -> Option<Range<usize>> {
        let sealed = &self.data[..self.encoded_bytes()];
        let mut range = block_at(sealed, 0)?;
        for _ in 0..k {
            range = block_at(sealed, range.end)?;
        }
        Some(range)
    }

    /// The time of the first slot's sample as cc-metric-store reports it (`start + f/2`).
    pub(crate) fn first_write(&self, frequency_s: i64) -> i64 {
        self.start + frequency_s / 2
    }

    /// cc-metric-store's `end()`: `first_write + len·f`. Used by freeing and debug output.
    pub(crate) fn end(&self, frequency_s: i64) -> i64 {
        self.first_write(frequency_s) + self.len() as i64 * frequency_s
    }

    /// Exclusive end of the filled slots: `start + len·f`.
    pub(crate) fn data_end(&self, frequency_s: i64) -> i64 {
        self.start + self.len() as i64 * frequency_s
    }

    /// The sample time of slot `index`: the middle of the slot ([`run_samples`]).
    fn sample_time(&self, index: usize, frequency_s: i64) -> i64 {
        self.first_write(frequency_s) + index as i64 * frequency_s
    }

    /// The slot whose range holds `t`, if `t` is not before the buffer.
    fn slot_of(&self, t: i64, frequency_s: i64) -> Option<usize> {
        usize::try_from((t.checked_sub(self.start)?) / frequency_s).ok()
    }

    /// How many slots have a sample time before `t` (at most `len`).
    fn slots_sampled_before(&self, t: i64, frequency_s: i64) -> usize {
        // Slot i is before `t` when i·f < t − first_write, so the count is ⌈offset / f⌉.
        let offset = t.saturating_sub(self.first_write(frequency_s));
        if offset <= 0 {
            return 0;
        }
        let count = (offset - 1) / frequency_s + 1;
        usize::try_from(count).map_or(self.len(), |count| count.min(self.len()))
    }

    /// The sample time of the first slot that holds a value (not NaN): where reads start.
    fn first_value(&self, frequency_s: i64) -> i64 {
        let segments = self.segments();
        let index = segments
            .as_slice()
            .iter()
            .find_map(|segment| Some(segment.first + segment.first_present()?))
            .unwrap_or(0);
        self.first_write(frequency_s) + index as i64 * frequency_s
    }

    /// Appends slots `[first, first + count)` (within `len`) to `out`, decoding sealed blocks
    /// straight into it.
    fn read_into(&self, first: usize, count: usize, out: &mut Vec<f32>) {
        let end = first + count;
        for segment in self.segments().as_slice() {
            let from = first.max(segment.first);
            let to = end.min(segment.first + segment.len);
            if from < to {
                segment.extend_into(from - segment.first, to - from, out);
            }
        }
    }

    /// Every slot, decoded (for exports).
    pub(crate) fn to_values(&self) -> Vec<f32> {
        let mut values = Vec::with_capacity(self.len());
        self.read_into(0, self.len(), &mut values);
        values
    }

    /// Calls `visit` with the values of the slots `[first, end)` a block at a time (the slot
    /// of the first value, the values), oldest or newest block first, until it breaks.
    fn visit<B>(
        &self,
        first: usize,
        end: usize,
        newest_first: bool,
        mut visit: impl FnMut(usize, &[f32]) -> ControlFlow<B>,
    ) -> Option<B> {
        let segments = self.segments();
        let segments = segments.as_slice();
        let mut values = [f32::NAN; BLOCK_SLOTS];
        for k in 0..segments.len() {
            let segment = segments[if newest_first {
                segments.len() - 1 - k
            } else {
                k
            }];
            let from = first.max(segment.first);
            let to = end.min(segment.first + segment.len);
            if from >= to {
                continue;
            }
            let decoded = segment.decode(&mut values);
            let Some(slice) = decoded.get(from - segment.first..to - segment.first) else {
                continue;
            };
            if let ControlFlow::Break(found) = visit(from, slice) {
                return Some(found);
            }
        }
        None
    }

    /// Makes room for a tail of `slots` slots: [`FIRST_SLOTS`] in a new buffer, then
    /// [`GROWTH_SLOTS`] doubling up to a block.
    fn reserve_tail(&mut self, slots: usize) {
        debug_assert!(slots <= BLOCK_SLOTS);
        if self.encoded_bytes() + slots * SLOT_BYTES > self.data.capacity() {
            let target = if slots <= FIRST_SLOTS && self.sealed_blocks() == 0 {
                FIRST_SLOTS
            } else {
                slots.next_power_of_two().clamp(GROWTH_SLOTS, BLOCK_SLOTS)
            };
            let wanted = self.encoded_bytes() + target * SLOT_BYTES;
            self.data.reserve_exact(wanted - self.data.len());
        }
    }

    /// Encodes the tail as the next sealed block: padded with NaN to a whole block when the
    /// buffer goes on past it (an empty tail then makes a block of NaN), as it is when the
    /// buffer is done.
    fn seal_tail(&mut self, pad: bool) {
        let slots = self.tail().len() / SLOT_BYTES;
        let count = if pad { BLOCK_SLOTS } else { slots };
        if count == 0 || self.sealed_blocks() == BLOCKS_PER_BUFFER {
            return;
        }
        let mut values = [f32::NAN; BLOCK_SLOTS];
        for (value, bytes) in values.iter_mut().zip(self.tail().chunks_exact(SLOT_BYTES)) {
            *value = slot_value(bytes);
        }
        let tail_at = self.encoded_bytes();
        let mut hint = self.hint;
        with_encoded(&values[..count], &mut hint, |bytes| {
            self.data.truncate(tail_at);
            self.data.reserve_exact(LENGTH_BYTES + bytes.len());
            self.data
                .extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            self.data.extend_from_slice(bytes);
        });
        self.hint = hint;
        self.tail_at = self.data.len() as u16;
        self.sealed += 1;
        self.len = (self.tail_first() - BLOCK_SLOTS + count) as u16;
        // The next tail's room grows from nothing ([`Buffer::reserve_tail`]).
        self.data.shrink_to_fit();
    }

    /// Decodes sealed block `k`, lets `edit` change its values and length, and encodes it
    /// again in place.
    fn patch(&mut self, k: usize, edit: impl FnOnce(&mut [f32; BLOCK_SLOTS], &mut usize)) {
        let Some(range) = self.block_range(k) else {
            return;
        };
        // Its bytes change: no snapshot holds them any more.
        if let Some(generation) = self.generations.get_mut(k) {
            *generation.get_mut() = 0;
        }
        let mut values = [f32::NAN; BLOCK_SLOTS];
        let mut len = block::decode(&self.data[range.clone()], &mut values);
        edit(&mut values, &mut len);
        let len = len.clamp(1, BLOCK_SLOTS);
        let replaced = range.len();
        let mut hint = self.hint;
        let length_at = range.start - LENGTH_BYTES;
        let written = with_encoded(&values[..len], &mut hint, |bytes| {
            self.data
                .reserve_exact(bytes.len().saturating_sub(replaced));
            self.data.splice(range, bytes.iter().copied());
            bytes.len()
        });
        self.data[length_at..length_at + LENGTH_BYTES]
            .copy_from_slice(&(written as u16).to_le_bytes());
        self.hint = hint;
        self.tail_at = (self.encoded_bytes() + written - replaced) as u16;
        if self.tail().is_empty() {
            if k + 1 == self.sealed_blocks() {
                self.len = (k * BLOCK_SLOTS + len) as u16;
            }
            self.data.shrink_to_fit();
        } else {
            // A block that got smaller leaves the tail no more room than one block's.
            self.data.shrink_to(self.encoded_bytes() + TAIL_BYTES);
        }
    }

    /// Makes block `k` (at or past the sealed ones) the tail's: seals what is before it.
    fn open(&mut self, k: usize) {
        if self.tail().is_empty() && self.len() < self.tail_first() {
            // The last sealed block is short: it becomes whole before anything follows it.
            self.patch(self.sealed_blocks() - 1, |_, len| *len = BLOCK_SLOTS);
        }
        while self.sealed_blocks() < k {
            self.seal_tail(true);
        }
    }

    /// Writes `(slot, value)` pairs that all lie in one block, in order (the last write to a
    /// slot wins); a sealed block is decoded and encoded once for all of them.
    fn put_many(&mut self, writes: &[(usize, f32)]) {
        let Some(&(first, _)) = writes.first() else {
            return;
        };
        let k = first / BLOCK_SLOTS;
        debug_assert!(writes.iter().all(|&(slot, _)| slot / BLOCK_SLOTS == k));
        let base = k * BLOCK_SLOTS;
        if k < self.sealed_blocks() {
            self.patch(k, |values, len| {
                for &(slot, value) in writes {
                    if let Some(target) = values.get_mut(slot - base) {
                        *target = value;
                        *len = (*len).max(slot - base + 1);
                    }
                }
            });
            return;
        }
        self.open(k);
        for &(slot, value) in writes {
            self.tail_put_run(slot - base, std::slice::from_ref(&value));
        }
    }

    /// Moves the start `slots` slots earlier, the new slots NaN. Only for a buffer whose
    /// slots, old and new, are all in its raw tail.
    fn start_earlier(&mut self, slots: usize, frequency_s: i64) {
        debug_assert!(self.sealed_blocks() == 0 && self.len() + slots <= BLOCK_SLOTS);
        self.reserve_tail(self.len() + slots);
        let nan = NAN_BYTES.iter().copied().cycle().take(slots * SLOT_BYTES);
        self.data.splice(0..0, nan);
        self.len += slots as u16;
        self.start -= slots as i64 * frequency_s;
    }

    /// Writes `value` into slot `index`, NaN-filling skipped slots.
    fn put(&mut self, index: usize, value: f32) {
        debug_assert!(index < BUFFER_CAPACITY);
        self.put_many(&[(index, value)]);
    }

    /// Writes `values` into the slots from `first` on, NaN included, a block at a time.
    fn put_run(&mut self, first: usize, mut values: &[f32]) {
        let mut slot = first;
        while !values.is_empty() {
            let (k, offset) = (slot / BLOCK_SLOTS, slot % BLOCK_SLOTS);
            let (chunk, rest) = values.split_at((BLOCK_SLOTS - offset).min(values.len()));
            if k < self.sealed_blocks() {
                self.patch(k, |block, len| {
                    block[offset..offset + chunk.len()].copy_from_slice(chunk);
                    *len = (*len).max(offset + chunk.len());
                });
            } else {
                self.open(k);
                self.tail_put_run(offset, chunk);
            }
            (slot, values) = (slot + chunk.len(), rest);
        }
    }

    /// Writes `values` into the tail from its slot `first` on, NaN-filling skipped slots.
    fn tail_put_run(&mut self, first: usize, values: &[f32]) {
        let end = first + values.len();
        debug_assert!(end <= BLOCK_SLOTS);
        let at = self.encoded_bytes();
        if self.data.len() < at + end * SLOT_BYTES {
            self.reserve_tail(end);
            while self.data.len() < at + end * SLOT_BYTES {
                self.data.extend_from_slice(&NAN_BYTES);
            }
            self.len = (self.tail_first() + end) as u16;
        }
        let slots = self.data[at + first * SLOT_BYTES..].chunks_exact_mut(SLOT_BYTES);
        for (bytes, value) in slots.zip(values) {
            bytes.copy_from_slice(&value.to_le_bytes());
        }
    }

    fn has_tail(&self) -> bool {
        !self.tail().is_empty()
    }

    /// Seals the tail as it is (the buffer is done, or idle) and frees its spare room.
    fn seal(&mut self) {
        self.seal_tail(false);
        self.data.shrink_to_fit();
    }
}

/// Counts what a write did to the store's memory, so the store can keep exact totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoryDelta {
    /// Buffer data: sealed blocks and tails.
    pub bytes: isize,
    pub buffers: isize,
    /// The tree's own allocations ([`crate::memory`]).
    pub structure: isize,
}

impl std::ops::AddAssign for MemoryDelta {
    fn add_assign(&mut self, other: Self) {
        self.bytes += other.bytes;
        self.buffers += other.buffers;
        self.structure += other.structure;
    }
}

/// The chain of buffers of one metric on one level.
///
/// The head is kept inline: nearly every write goes to it, and with hundreds of thousands of
/// series a write is a chain of cache misses (level → series → data); an inline head removes
/// one link of that chain, and a series with one buffer needs no second allocation. The older
/// buffers are a boxed slice (16 bytes, no spare capacity): a new one arrives once per 512
/// slots, and the series stays 64 bytes.
#[derive(Debug)]
pub(crate) struct Series {
    frequency_s: i64,
    /// Buffers before the head, sorted by start, non-overlapping.
    older: Box<[Buffer]>,
    /// The newest buffer; it starts after every older one.
    head: Buffer,
}

/// Which buffer of a series: an older one by position, or the head.
#[derive(Debug, Clone, Copy)]
enum At {
    Older(usize),
    Head,
}

impl Series {
    /// A series whose first sample is `(timestamp_s, value)`.
    pub(crate) fn new(
        frequency_s: i64,
        timestamp_s: i64,
        value: f32,
        pool: &BufferPool,
    ) -> (Self, MemoryDelta) {
        assert!(frequency_s > 0, "frequency must be positive");
        let mut head = Buffer::empty(
            timestamp_s - frequency_s / 2,
            pool.take(),
            EncodeHint::default(),
        );
        head.put(0, value);
        let delta = MemoryDelta {
            bytes: head.heap_bytes() as isize,
            buffers: 1,
            structure: 0,
        };
        let series = Self {
            frequency_s,
            older: Box::default(),
            head,
        };
        (series, delta)
    }

    /// A series made of runs loaded from elsewhere (snapshots, imports): `(start, values)`,
    /// each at most [`BUFFER_CAPACITY`] long. Runs that are on the first run's grid and after
    /// the previous one are appended to the newest buffer while they fit in its capacity
    /// (gaps NaN-filled), else become buffers as they are; any other run is written value by
    /// value (NaN slots skipped), so overlapping or misaligned input is merged, never misread.
    /// Every block is encoded once, except where runs overlap.
    pub(crate) fn adopt(frequency_s: i64, runs: Vec<(i64, Vec<f32>)>, pool: &BufferPool) -> Self {
        assert!(frequency_s > 0, "frequency must be positive");
        let mut runs = runs.into_iter().filter(|(_, values)| !values.is_empty());
        let (start, data) = runs.next().unwrap_or((0, Vec::new()));
        assert!(data.len() <= BUFFER_CAPACITY, "run longer than a buffer");
        let mut series = Self {
            frequency_s,
            older: Box::default(),
            head: Buffer::empty(start, pool.take(), EncodeHint::default()),
        };
        series.head.put_run(0, &data);
        for (start, data) in runs {
            let head = &mut series.head;
            let follows = data.len() <= BUFFER_CAPACITY
                && start >= head.data_end(frequency_s)
                && (start - head.start) % frequency_s == 0;
            if !follows {
                series.merge_run(start, frequency_s, &data, pool);
                continue;
            }
            // Slot of the run in the head; the run follows the head's data, so it is past it.
            let slot = ((start - head.start) / frequency_s) as usize;
            if slot + data.len() <= BUFFER_CAPACITY {
                head.put_run(slot, &data);
                continue;
            }
            let mut next = Buffer::empty(start, pool.take(), head.hint);
            next.put_run(0, &data);
            series.push_head(next);
        }
        series
    }

    pub(crate) fn frequency_s(&self) -> i64 {
        self.frequency_s
    }

    /// Heap bytes of the chain itself (the older buffers' headers), not of their data.
    pub(crate) fn structure_bytes(&self) -> usize {
        allocation(self.older.len() * size_of::<Buffer>())
    }

    /// Every buffer, oldest first.
    pub(crate) fn buffers(&self) -> impl DoubleEndedIterator<Item = &Buffer> {
        self.older.iter().chain(std::iter::once(&self.head))
    }

    fn first(&self) -> &Buffer {
        self.older.first().unwrap_or(&self.head)
    }

    fn buffer_mut(&mut self, at: At) -> &mut Buffer {
        match at {
            At::Older(i) => &mut self.older[i],
            At::Head => &mut self.head,
        }
    }

    fn insert_older(&mut self, position: usize, buffer: Buffer) {
        let mut older = std::mem::take(&mut self.older).into_vec();
        older.reserve_exact(1);
        older.insert(position, buffer);
        self.older = older.into_boxed_slice();
    }

    /// Makes `head` the head; the previous head is done, its tail sealed. Returns the change
    /// of the previous head's bytes.
    fn push_head(&mut self, head: Buffer) -> isize {
        let before = self.head.heap_bytes();
        self.head.seal();
        let sealed = self.head.heap_bytes() as isize - before as isize;
        let previous = std::mem::replace(&mut self.head, head);
        self.insert_older(self.older.len(), previous);
        sealed
    }

    /// Writes one sample; the last write to a slot wins.
    pub(crate) fn write(&mut self, timestamp_s: i64, value: f32, pool: &BufferPool) -> MemoryDelta {
        let before = self.older.len();
        let mut delta = self.put(timestamp_s, value, pool);
        if self.older.len() != before {
            let grown =
                self.structure_bytes() as isize - allocation(before * size_of::<Buffer>()) as isize;
            delta.structure += grown;
        }
        delta
    }

    /// [`Series::write`] without counting the chain's own growth.
    fn put(&mut self, timestamp_s: i64, value: f32, pool: &BufferPool) -> MemoryDelta {
        let (at, index, end, mut delta) = self.locate(timestamp_s, pool);
        delta.bytes += self.put_at(at, end, &[(index, value)]);
        delta
    }

    /// [`Buffer::put_many`] on the buffer `at`, whose writable range ends at slot `end`;
    /// returns the change of its bytes.
    fn put_at(&mut self, at: At, end: usize, writes: &[(usize, f32)]) -> isize {
        let buffer = self.buffer_mut(at);
        let before = buffer.heap_bytes();
        let behind_tail = writes
            .first()
            .is_some_and(|&(slot, _)| slot / BLOCK_SLOTS < buffer.sealed_blocks());
        let older = matches!(at, At::Older(_));
        if older && behind_tail {
            // Samples arriving newest first fill an older buffer backwards: its tail gets
            // nothing more, so it is sealed now rather than by the idle pass.
            buffer.seal();
        }
        buffer.put_many(writes);
        if older && buffer.len() >= end && buffer.has_tail() {
            // Its tail reaches the next buffer: nothing can follow it any more. This is the
            // first sample of a series that arrived after the second one (concurrent writers),
            // which lands in the last slot of a new older buffer (see the module doc) and would
            // keep a whole raw block until the idle pass.
            buffer.seal();
        }
        buffer.heap_bytes() as isize - before as isize
    }

    /// The buffer whose range holds `timestamp_s`, creating it when none does; the slot of
    /// the sample in it, the end of its writable range, and the memory a new buffer took.
    fn locate(&mut self, timestamp_s: i64, pool: &BufferPool) -> (At, usize, usize, MemoryDelta) {
        let f = self.frequency_s;
        if timestamp_s >= self.head.start {
            let index = ((timestamp_s - self.head.start) / f) as usize;
            if index < BUFFER_CAPACITY {
                return (At::Head, index, BUFFER_CAPACITY, MemoryDelta::default());
            }
            // Past the head's last slot: a new head at the slot of this sample.
            let start = self.head.start + index as i64 * f;
            let head = Buffer::empty(start, pool.take(), self.head.hint);
            let mut delta = new_buffer_delta(&head);
            delta.bytes += self.push_head(head);
            return (At::Head, 0, BUFFER_CAPACITY, delta);
        }
        // A late sample: the last older buffer starting at or before it, if any.
        let position = self.older.partition_point(|b| b.start <= timestamp_s);
        let next_start = self
            .older
            .get(position)
            .map_or(self.head.start, |b| b.start);
        let writable = |start: i64| BUFFER_CAPACITY.min(((next_start - start) / f) as usize);
        let mut floor = i64::MIN;
        if let Some(i) = position.checked_sub(1) {
            let previous = &self.older[i];
            let index = ((timestamp_s - previous.start) / f) as usize;
            let end = writable(previous.start);
            if index < end {
                return (At::Older(i), index, end, MemoryDelta::default());
            }
            // Past the previous buffer's capacity: the new buffer starts no earlier than that.
            floor = previous.start + BUFFER_CAPACITY as i64 * f;
        }
        if position == self.older.len()
            && let Some(delta) = self.start_head_earlier(timestamp_s, floor)
        {
            return (At::Head, 0, BUFFER_CAPACITY, delta);
        }
        // No buffer's range holds the sample: a new buffer whose full range ends at the next
        // buffer's start (a whole number of buffer lengths before it), so that further late
        // samples fill it instead of each starting a buffer of its own.
        let span = BUFFER_CAPACITY as i64 * f;
        let buffers_back = (next_start - timestamp_s + span - 1) / span;
        let start = (next_start - buffers_back * span).max(floor);
        let buffer = Buffer::empty(start, pool.take(), self.head.hint);
        let delta = new_buffer_delta(&buffer);
        self.insert_older(position, buffer);
        let index = ((timestamp_s - start) / f) as usize;
        (At::Older(position), index, writable(start), delta)
    }

    /// Moves the head's start back to the slot of `timestamp_s`, if the head is young (all
    /// raw, in its first block) and would not reach back past `floor` (where the previous
    /// buffer's range ends). Concurrent writers send the ticks of a series on several
    /// connections, so a new series' first samples, or the first samples of a new head, often
    /// arrive out of order; the head then starts where it would have had they arrived in
    /// order. A buffer of its own for such a sample holds it in its last slot behind 511 NaN
    /// (or in a one-slot buffer squeezed in before the head): one buffer more per series for
    /// good, in 1 of 4 runs of the shared workload (issue 10).
    fn start_head_earlier(&mut self, timestamp_s: i64, floor: i64) -> Option<MemoryDelta> {
        let f = self.frequency_s;
        let head = &mut self.head;
        // Checked: imported runs can carry any timestamp.
        let distance = head.start.checked_sub(timestamp_s)?.checked_add(f - 1)?;
        let back = usize::try_from(distance / f).ok()?;
        let start = head.start.checked_sub((back as i64).checked_mul(f)?)?;
        let young = head.len() > 0 && head.sealed_blocks() == 0;
        if !young || head.len() + back > BLOCK_SLOTS || start < floor {
            return None;
        }
        let before = head.heap_bytes() as isize;
        head.start_earlier(back, f);
        Some(MemoryDelta {
            bytes: head.heap_bytes() as isize - before,
            ..MemoryDelta::default()
        })
    }

    /// Writes a run of slots `start_s, start_s + f, …` (at `frequency_s`), skipping NaN, so a
    /// run that overlaps or is off this series' grid merges into it. Samples that land in the
    /// same sealed block are written with one decode and one encode.
    fn merge_run(
        &mut self,
        start_s: i64,
        frequency_s: i64,
        values: &[f32],
        pool: &BufferPool,
    ) -> MemoryDelta {
        let f = self.frequency_s;
        let chain_before = self.older.len();
        let mut delta = MemoryDelta::default();
        let mut samples = run_samples(start_s, frequency_s, values).peekable();
        let mut writes = Vec::new();
        while let Some((t, value)) = samples.next() {
            let (at, index, end, created) = self.locate(t, pool);
            delta += created;
            let buffer = self.buffer_mut(at);
            let block_end = ((index / BLOCK_SLOTS + 1) * BLOCK_SLOTS).min(end);
            writes.clear();
            writes.push((index, value));
            while let Some(slot) = samples
                .peek()
                .and_then(|&(t, _)| buffer.slot_of(t, f))
                .filter(|slot| (index..block_end).contains(slot))
            {
                writes.extend(samples.next().map(|(_, value)| (slot, value)));
            }
            delta.bytes += self.put_at(at, end, &writes);
        }
        delta.structure += self.structure_bytes() as isize
            - allocation(chain_before * size_of::<Buffer>()) as isize;
        delta
    }

    /// Where a read of `[from, to)` starts and where its data ends: `from` clamped to the first
    /// sample, the end cut at the data that starts before `to` (COMPAT.md §2.2). `None` when
    /// nothing is in range.
    pub(crate) fn extent(&self, from: i64, to: i64) -> Option<(i64, i64)> {
        let f = self.frequency_s;
        let from = from.max(self.first().first_value(f));
        let last = self.buffers().rev().find(|b| b.start < to)?;
        let end = to.min(last.data_end(f));
        (end > from).then_some((from, end))
    }

    /// The window [`Series::read`] returns: `(from, from + count·f)`, or `(from, from)` with
    /// `from` clamped when nothing is in range.
    pub(crate) fn window(&self, from: i64, to: i64) -> (i64, i64) {
        let f = self.frequency_s;
        match self.extent(from, to) {
            Some((from, end)) => (from, from + (end - from + f - 1) / f * f),
            None => {
                let from = from.max(self.first().first_value(f));
                (from, from)
            }
        }
    }

    /// Reads `[from, to)` by cc-metric-store's rules (COMPAT.md §2.2): `from` is clamped to the
    /// first sample, the result stops at the end of the data that starts before `to`, and gaps
    /// are NaN. Appends the values to `out` and returns the effective `(from, to)`.
    pub(crate) fn read(&self, from: i64, to: i64, out: &mut Vec<f32>) -> (i64, i64) {
        let (from, to) = self.window(from, to);
        self.fill(from, ((to - from) / self.frequency_s) as usize, out);
        (from, to)
    }

    /// Appends the values of the `count` steps `from, from+f, …` to `out`, NaN where no slot
    /// holds a step. Unlike [`Series::read`] nothing is clamped: aggregation uses this to read
    /// every child over one common window.
    pub(crate) fn fill(&self, from: i64, count: usize, out: &mut Vec<f32>) {
        let f = self.frequency_s;
        out.reserve(count);
        let mut t = from;
        let mut remaining = count;
        let mut buffers = self.buffers().peekable();
        while remaining > 0 {
            // Skip buffers that end before `t`.
            while buffers.peek().is_some_and(|b| b.data_end(f) <= t) {
                buffers.next();
            }
            let Some(buffer) = buffers.peek() else {
                out.extend(std::iter::repeat_n(f32::NAN, remaining));
                return;
            };
            if t < buffer.start {
                // Gap before this buffer: NaN up to its start.
                let gap = ((buffer.start - t + f - 1) / f) as usize;
                let gap = gap.min(remaining);
                out.extend(std::iter::repeat_n(f32::NAN, gap));
                remaining -= gap;
                t += gap as i64 * f;
                continue;
            }
            let first = ((t - buffer.start) / f) as usize;
            let available = buffer.len() - first;
            let take = available.min(remaining);
            buffer.read_into(first, take, out);
            remaining -= take;
            t += take as i64 * f;
        }
    }

    /// Removes every buffer whose `end() < before` (the chain's shrinking counted as structure).
    /// When that includes the head, the series is reported with `all = true` and its owner
    /// drops it.
    pub(crate) fn free_before(&mut self, before: i64, pool: &BufferPool) -> FreeOutcome {
        let f = self.frequency_s;
        let count = self.older.partition_point(|b| b.end(f) < before);
        let mut outcome = FreeOutcome::default();
        if count > 0 {
            let chain_before = self.structure_bytes();
            let mut older = std::mem::take(&mut self.older).into_vec();
            for buffer in older.drain(..count) {
                outcome.add(&buffer);
                pool.give(buffer.data);
            }
            self.older = older.into_boxed_slice();
            outcome.structure += chain_before - self.structure_bytes();
        }
        if self.older.is_empty() && self.head.end(f) < before {
            outcome.all = true;
            let empty = Buffer::empty(0, Vec::new(), EncodeHint::default());
            let head = std::mem::replace(&mut self.head, empty);
            outcome.add(&head);
            pool.give(head.data);
        }
        outcome
    }

    /// Drops the oldest buffer unless it is the head (the emergency path of the memory cap).
    pub(crate) fn free_oldest(&mut self, pool: &BufferPool) -> FreeOutcome {
        let mut outcome = FreeOutcome::default();
        if !self.older.is_empty() {
            let chain_before = self.structure_bytes();
            let mut older = std::mem::take(&mut self.older).into_vec();
            let buffer = older.remove(0);
            self.older = older.into_boxed_slice();
            outcome.structure += chain_before - self.structure_bytes();
            outcome.add(&buffer);
            pool.give(buffer.data);
        }
        outcome
    }

    /// Seals the raw tails of buffers that got no new slot in the [`IDLE_SEAL_STEPS`] steps
    /// before `now_s`: the head of a series that stopped, and older buffers that late samples
    /// opened. Returns the change of the buffers' bytes.
    pub(crate) fn seal_idle(&mut self, now_s: i64) -> isize {
        let f = self.frequency_s;
        let idle_before = now_s.saturating_sub(IDLE_SEAL_STEPS.saturating_mul(f));
        let mut bytes = 0;
        for buffer in self.older.iter_mut().chain(std::iter::once(&mut self.head)) {
            if buffer.has_tail() && buffer.data_end(f) < idle_before {
                let before = buffer.heap_bytes();
                buffer.seal();
                bytes += buffer.heap_bytes() as isize - before as isize;
            }
        }
        bytes
    }

    /// The newest buffer's data end, for health checks: `start + len·f`.
    pub(crate) fn newest_data_end(&self) -> i64 {
        self.head.data_end(self.frequency_s)
    }

    /// Number of samples held (including NaN-filled slots).
    pub(crate) fn slot_count(&self) -> usize {
        self.buffers().map(Buffer::len).sum()
    }

    /// The samples (values, not NaN) whose sample time ([`run_samples`]) lies in
    /// `[from_s, to_s)`, oldest first, appended to `out`. A slot's sample time is in exactly
    /// one of two adjacent ranges, so ranges that tile time copy every sample once.
    pub(crate) fn samples_in(&self, from_s: i64, to_s: i64, out: &mut Vec<(i64, f32)>) {
        let f = self.frequency_s;
        for buffer in self.buffers() {
            let first = buffer.slots_sampled_before(from_s, f);
            let end = buffer.slots_sampled_before(to_s, f);
            buffer.visit(first, end, false, |slot, values| {
                let start = buffer.start + slot as i64 * f;
                out.extend(run_samples(start, f, values));
                ControlFlow::<()>::Continue(())
            });
        }
    }

    /// The newest sample whose sample time is before `t`.
    pub(crate) fn last_sample_before(&self, t: i64) -> Option<(i64, f32)> {
        let f = self.frequency_s;
        self.buffers().rev().find_map(|buffer| {
            let end = buffer.slots_sampled_before(t, f);
            buffer.visit(0, end, true, |slot, values| {
                let found = values.iter().rposition(|v| !v.is_nan());
                found.map_or(ControlFlow::Continue(()), |i| {
                    ControlFlow::Break((buffer.sample_time(slot + i, f), values[i]))
                })
            })
        })
    }

    /// The oldest sample whose sample time is at or after `t`.
    pub(crate) fn first_sample_from(&self, t: i64) -> Option<(i64, f32)> {
        let f = self.frequency_s;
        self.buffers().find_map(|buffer| {
            let first = buffer.slots_sampled_before(t, f);
            buffer.visit(first, buffer.len(), false, |slot, values| {
                let found = values.iter().position(|v| !v.is_nan());
                found.map_or(ControlFlow::Continue(()), |i| {
                    ControlFlow::Break((buffer.sample_time(slot + i, f), values[i]))
                })
            })
        })
    }
}

/// The samples of a run of slots `start_s, start_s + f, …` (at `frequency_s`): each value not
/// NaN at its sample time, the middle of its slot, where a first write places it.
pub(crate) fn run_samples(
    start_s: i64,
    frequency_s: i64,
    values: &[f32],
) -> impl Iterator<Item = (i64, f32)> + '_ {
    (0i64..)
        .zip(values)
        .filter(|(_, value)| !value.is_nan())
        .map(move |(i, &value)| (start_s + i * frequency_s + frequency_s / 2, value))
}

/// What a new (empty) buffer costs.
fn new_buffer_delta(buffer: &Buffer) -> MemoryDelta {
    MemoryDelta {
        bytes: buffer.heap_bytes() as isize,
        buffers: 1,
        structure: 0,
    }
}

/// What a free pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FreeOutcome {
    pub buffers: usize,
    pub bytes: usize,
    pub samples: usize,
    /// Series dropped because they had no buffers left.
    pub series: usize,
    /// Bytes of the tree's own structure freed ([`crate::memory`]).
    pub structure: usize,
    /// The series has no buffers left and must be dropped by its owner.
    pub all: bool,
}

impl FreeOutcome {
    fn add(&mut self, buffer: &Buffer) {
        self.buffers += 1;
        self.bytes += buffer.heap_bytes();
        self.samples += buffer.len();
    }
}

impl std::ops::AddAssign for FreeOutcome {
    fn add_assign(&mut self, other: Self) {
        self.buffers += other.buffers;
        self.bytes += other.bytes;
        self.samples += other.samples;
        self.series += other.series;
        self.structure += other.structure;
    }
}

/// What incremental snapshots need (`crate::image`): the sealed blocks with the generation
/// that holds them, the tail, and buffers and series rebuilt from those bytes.
impl Buffer {
    /// The sealed blocks, oldest first: the generation holding each (settable), its bytes.
    pub(crate) fn sealed_blocks_with_generation(
        &self,
    ) -> impl Iterator<Item = (&AtomicU32, &[u8])> {
        let sealed = &self.data[..self.encoded_bytes()];
        let mut at = 0;
        self.generations
            .iter()
            .take(self.sealed_blocks())
            .map_while(move |generation| {
                let range = block_at(sealed, at)?;
                at = range.end;
                Some((generation, &sealed[range]))
            })
    }

    /// The tail's values (empty without a tail).
    pub(crate) fn tail_values(&self) -> Vec<f32> {
        self.tail()
            .chunks_exact(SLOT_BYTES)
            .map(slot_value)
            .collect()
    }

    /// A buffer of `len` slots from `start` made of sealed `blocks` (`(generation, bytes)`,
    /// kept as they are) and a `tail` given as one encoded block (decoded into the raw tail).
    /// `None` unless every block is well formed ([`block::validate`]), every block but the
    /// last sealed one without a tail is whole, and the slots add up to `len`.
    pub(crate) fn from_blocks(
        start: i64,
        len: usize,
        blocks: &[(u32, &[u8])],
        tail: Option<&[u8]>,
    ) -> Option<Self> {
        if blocks.len() + usize::from(tail.is_some()) > BLOCKS_PER_BUFFER
            || !(1..=BUFFER_CAPACITY).contains(&len)
        {
            return None;
        }
        let bytes = blocks.iter().map(|(_, b)| LENGTH_BYTES + b.len()).sum();
        let mut buffer = Self::empty(start, Vec::with_capacity(bytes), EncodeHint::default());
        let mut slots = 0;
        for (k, &(generation, bytes)) in blocks.iter().enumerate() {
            if slots != k * BLOCK_SLOTS || block::validate(bytes).ok()? != bytes.len() {
                return None;
            }
            slots += block::len(bytes);
            buffer
                .data
                .extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            buffer.data.extend_from_slice(bytes);
            *buffer.generations[k].get_mut() = generation;
        }
        buffer.tail_at = buffer.data.len() as u16;
        buffer.sealed = blocks.len() as u8;
        buffer.len = slots as u16;
        if let Some(tail) = tail {
            if slots != buffer.tail_first() || block::validate(tail).ok()? != tail.len() {
                return None;
            }
            let mut values = [f32::NAN; BLOCK_SLOTS];
            let count = block::decode(tail, &mut values);
            buffer.tail_put_run(0, &values[..count]);
        }
        (buffer.len() == len).then_some(buffer)
    }
}

impl Series {
    /// A series of `buffers`, which must be sorted by start, on one grid and not overlap
    /// (`None` otherwise).
    pub(crate) fn from_buffers(frequency_s: i64, mut buffers: Vec<Buffer>) -> Option<Self> {
        if frequency_s <= 0 {
            return None;
        }
        for pair in buffers.windows(2) {
            let end = pair[0]
                .start
                .checked_add(pair[0].len() as i64 * frequency_s)?;
            let step = pair[1].start.checked_sub(pair[0].start)?;
            if pair[1].start < end || step % frequency_s != 0 {
                return None;
            }
        }
        let head = buffers.pop()?;
        Some(Self {
            frequency_s,
            older: buffers.into_boxed_slice(),
            head,
        })
    }
}

#[cfg(test)]
mod tests {
    //! Buffer rules from cc-metric-store's `metricstore_test.go` (COMPAT.md §8), written from
    //! the described behaviour.

    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Blocks this thread encoded (sealed or re-encoded).
        pub(super) static ENCODED: Cell<usize> = const { Cell::new(0) };
    }

    fn pool() -> BufferPool {
        BufferPool::new(16)
    }

    fn all(series: &Series) -> Vec<&Buffer> {
        series.buffers().collect()
    }

    /// A series at 10 s whose buffers are exactly `runs` (sorted, not overlapping).
    fn series(runs: Vec<(i64, Vec<f32>)>) -> Series {
        let mut buffers: Vec<Buffer> = runs
            .into_iter()
            .map(|(start, data)| {
                let mut buffer = Buffer::empty(start, Vec::new(), EncodeHint::default());
                buffer.put_run(0, &data);
                buffer
            })
            .collect();
        let head = buffers.pop().expect("at least one run");
        // Older buffers are sealed, as in a series that was written.
        buffers.iter_mut().for_each(Buffer::seal);
        Series {
            frequency_s: 10,
            older: buffers.into_boxed_slice(),
            head,
        }
    }

    fn read(series: &Series, from: i64, to: i64) -> (Vec<f32>, i64, i64) {
        let mut out = Vec::new();
        let (from, to) = series.read(from, to, &mut out);
        (out, from, to)
    }

    fn same(left: &[f32], right: &[f32]) -> bool {
        left.len() == right.len()
            && left
                .iter()
                .zip(right)
                .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()))
    }

    #[test]
    fn end_and_first_write() {
        // TestBufferEndFirstWrite: start 90, freq 10, len 4 → firstWrite 95, end 135.
        let series = series(vec![(90, vec![1.0, 2.0, 3.0, 4.0])]);
        let buffer = &all(&series)[0];
        assert_eq!(buffer.first_write(10), 95);
        assert_eq!(buffer.end(10), 135);
    }

    #[test]
    fn first_write_lands_in_slot_zero() {
        // TestBufferWrite: the first write creates start = ts − f/2 and fills slot 0.
        let (series, delta) = Series::new(10, 100, 1.0, &pool());
        assert_eq!(all(&series)[0].start(), 95);
        assert_eq!(all(&series)[0].to_values(), &[1.0]);
        assert_eq!(delta.buffers, 1);
        assert_eq!(delta.bytes, (FIRST_SLOTS * 4) as isize);
    }

    #[test]
    fn skipped_slots_are_nan() {
        // TestBufferWriteNaNFill: writes at 100 and 130 (freq 10) → [1, NaN, NaN, 4].
        let pool = pool();
        let (mut series, _) = Series::new(10, 100, 1.0, &pool);
        series.write(130, 4.0, &pool);
        assert!(same(
            &all(&series)[0].to_values(),
            &[1.0, f32::NAN, f32::NAN, 4.0]
        ));
    }

    #[test]
    fn same_slot_overwrites() {
        // TestBufferWriteOverwrite: the second write to a slot replaces it; length unchanged.
        let pool = pool();
        let (mut series, _) = Series::new(10, 100, 1.0, &pool);
        series.write(110, 2.0, &pool);
        series.write(112, 5.0, &pool);
        assert_eq!(all(&series)[0].to_values(), &[1.0, 5.0]);
    }

    #[test]
    fn capacity_overflow_links_a_new_head() {
        // TestBufferWriteCapacityOverflow.
        let pool = pool();
        let (mut series, _) = Series::new(10, 100, 0.0, &pool);
        for i in 1..=BUFFER_CAPACITY as i64 {
            series.write(100 + i * 10, i as f32, &pool);
        }
        assert_eq!(all(&series).len(), 2);
        assert_eq!(all(&series)[0].len(), BUFFER_CAPACITY);
        assert_eq!(all(&series)[1].start(), 95 + BUFFER_CAPACITY as i64 * 10);
        assert_eq!(all(&series)[1].to_values(), &[BUFFER_CAPACITY as f32]);
    }

    #[test]
    fn a_time_jump_starts_a_new_head_and_leaves_a_gap() {
        let pool = pool();
        let (mut series, _) = Series::new(10, 100, 1.0, &pool);
        series.write(100_000, 2.0, &pool);
        assert_eq!(all(&series).len(), 2);
        let (data, from, to) = read(&series, 100, 100_010);
        assert_eq!((from, to), (100, 100_010));
        assert_eq!(data.len(), 9991);
        assert_eq!(data[0], 1.0);
        assert!(data[1..9990].iter().all(|v| v.is_nan()));
        assert_eq!(data[9990], 2.0);
    }

    #[test]
    fn late_sample_goes_into_the_older_buffer_that_holds_it() {
        // COMPAT.md decision 16.
        let pool = pool();
        let (mut series, _) = Series::new(10, 100, 1.0, &pool);
        // A head past its first block (a younger one starts earlier instead).
        for k in 600..=600 + BLOCK_SLOTS as i64 {
            series.write(100 + k * 10, 2.0, &pool);
        }
        series.write(150, 3.0, &pool);
        assert_eq!(all(&series).len(), 2);
        assert_eq!(all(&series)[0].to_values()[5], 3.0);
        // A late sample in the gap past the old buffer's capacity gets its own buffer, starting
        // where the old buffer's range ends.
        series.write(100 + 550 * 10, 4.0, &pool);
        assert_eq!(all(&series).len(), 3);
        assert_eq!(all(&series)[1].start(), 95 + 512 * 10);
        let (data, _, _) = read(&series, 100 + 550 * 10, 100 + 551 * 10);
        assert_eq!(data, vec![4.0]);
    }

    #[test]
    fn late_buffer_never_overlaps_its_successor() {
        let pool = pool();
        let (mut series, _) = Series::new(10, 100, 1.0, &pool);
        // A head past its first block (a younger one starts earlier instead).
        for k in 1000..=1000 + BLOCK_SLOTS as i64 {
            series.write(100 + k * 10, 2.0, &pool);
        }
        series.write(100 + 995 * 10, 3.0, &pool); // gap buffer from slot 512
        // Slots 512..999 belong to the gap buffer; 1000 is the head's first slot.
        series.write(100 + 999 * 10, 4.0, &pool);
        assert_eq!(all(&series).len(), 3);
        assert_eq!(all(&series)[1].start(), 95 + 512 * 10);
        assert_eq!(all(&series)[1].len(), 488);
        series.write(100 + 1000 * 10, 5.0, &pool);
        assert_eq!(all(&series)[2].to_values()[0], 5.0);
        let (data, _, _) = read(&series, 100 + 995 * 10, 100 + 1001 * 10);
        let nan = f32::NAN;
        assert!(same(&data, &[3.0, nan, nan, nan, 4.0, 5.0]));
    }

    #[test]
    fn samples_written_newest_first_fill_full_size_buffers() {
        // Issue 6, item 17: one buffer per sample before.
        let pool = pool();
        let count = 3 * BUFFER_CAPACITY as i64;
        let newest = 100 + count * 10;
        let (mut series, _) = Series::new(10, newest, 0.0, &pool);
        for i in 1..=count {
            series.write(newest - i * 10, i as f32, &pool);
        }
        // The head starts earlier until its first block is full; three full-size buffers
        // hold the rest (the oldest from its first sample on).
        let lens: Vec<usize> = series.buffers().map(Buffer::len).collect();
        assert_eq!(
            lens,
            [
                BUFFER_CAPACITY,
                BUFFER_CAPACITY,
                BUFFER_CAPACITY,
                BLOCK_SLOTS
            ]
        );
        let (data, from, _) = read(&series, 0, i64::MAX / 2);
        assert_eq!((data.len(), from), (count as usize + 1, 100));
        assert_eq!((data[0], data[count as usize]), (count as f32, 0.0));
    }

    #[test]
    fn sample_before_first_buffer_gets_a_buffer_on_the_same_grid() {
        let pool = pool();
        let (mut series, _) = Series::new(10, 100, 1.0, &pool);
        // A head past its first block (a younger one starts earlier instead).
        for k in 1..=BLOCK_SLOTS as i64 {
            series.write(100 + 10 * k, 1.0, &pool);
        }
        series.write(90, 2.0, &pool);
        series.write(61, 3.0, &pool);
        // One buffer whose range ends where the head starts, at 95.
        let span = BUFFER_CAPACITY as i64 * 10;
        assert_eq!(all(&series).len(), 2);
        assert_eq!(all(&series)[0].start(), 95 - span);
        series.write(75, 4.0, &pool);
        assert_eq!(all(&series)[0].len(), BUFFER_CAPACITY);
        // Reads start at the first value, not at the buffer's start.
        let (data, from, to) = read(&series, 0, 110);
        assert!(same(&data, &[3.0, f32::NAN, 4.0, 2.0, 1.0]));
        assert_eq!((from, to), (60, 110));
        // A sample more than a buffer's span before gets a buffer on the same tiling.
        series.write(95 - span - 1, 5.0, &pool);
        assert_eq!(all(&series)[0].start(), 95 - 2 * span);
        assert_eq!(all(&series)[0].len(), BUFFER_CAPACITY);
    }

    #[test]
    fn read_clamps_from_to_first_write() {
        // TestBufferReadBeforeFirstWrite: read from 50 on data starting at 100.
        let pool = pool();
        let (mut series, _) = Series::new(10, 100, 1.0, &pool);
        series.write(110, 2.0, &pool);
        let (data, from, to) = read(&series, 50, 200);
        assert_eq!(data, vec![1.0, 2.0]);
        assert_eq!((from, to), (100, 120));
    }

    #[test]
    fn read_three_values() {
        // TestBufferRead: values at 100/110/120 read as from 100, to 130.
        let pool = pool();
        let (mut series, _) = Series::new(10, 100, 1.0, &pool);
        series.write(110, 2.0, &pool);
        series.write(120, 3.0, &pool);
        let (data, from, to) = read(&series, 0, 1000);
        assert_eq!(data, vec![1.0, 2.0, 3.0]);
        assert_eq!((from, to), (100, 130));
    }

    #[test]
    fn read_across_a_chain() {
        // TestBufferReadChain: two buffers read as one contiguous run.
        let series = series(vec![(95, vec![1.0, 2.0, 3.0]), (125, vec![4.0, 5.0, 6.0])]);
        let (data, from, to) = read(&series, 100, 160);
        assert_eq!(data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!((from, to), (100, 160));
    }

    #[test]
    fn read_recomputes_the_index_after_switching_buffers() {
        // TestBufferReadIdxAfterSwitch: same-start chains loaded from checkpoints.
        let series = series(vec![(0, vec![1.0, 2.0]), (20, vec![3.0, 4.0])]);
        let (data, _, _) = read(&series, 0, 40);
        assert_eq!(data, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn stored_nan_reads_as_nan() {
        // TestBufferReadNaNValues.
        let series = series(vec![(95, vec![1.0, f32::NAN, 3.0])]);
        let (data, _, _) = read(&series, 100, 130);
        assert!(same(&data, &[1.0, f32::NAN, 3.0]));
    }

    #[test]
    fn read_range_after_data_is_empty_at_from() {
        let series = series(vec![(95, vec![1.0, 2.0])]);
        assert_eq!(read(&series, 500, 600), (vec![], 500, 500));
    }

    #[test]
    fn read_range_before_data_is_empty_at_first_sample() {
        let series = series(vec![(95, vec![1.0, 2.0])]);
        assert_eq!(read(&series, 0, 50), (vec![], 100, 100));
    }

    #[test]
    fn read_stops_before_a_successor_starting_after_to() {
        let series = series(vec![(95, vec![1.0, 2.0]), (995, vec![3.0])]);
        let (data, from, to) = read(&series, 100, 500);
        assert_eq!(data, vec![1.0, 2.0]);
        assert_eq!((from, to), (100, 120));
    }

    #[test]
    fn read_to_is_from_plus_len_times_f_even_past_requested_to() {
        let series = series(vec![(95, vec![1.0, 2.0, 3.0, 4.0])]);
        let (data, from, to) = read(&series, 100, 125);
        assert_eq!(data, vec![1.0, 2.0, 3.0]);
        assert_eq!((from, to), (100, 130));
    }

    #[test]
    fn fill_pads_with_nan_on_both_sides() {
        let series = series(vec![(95, vec![1.0, 2.0])]);
        let mut out = Vec::new();
        series.fill(80, 5, &mut out);
        assert!(same(&out, &[f32::NAN, f32::NAN, 1.0, 2.0, f32::NAN]));
    }

    #[test]
    fn free_removes_only_buffers_that_ended() {
        // TestBufferFreeRetention: only buffers with end < t are freed and pooled.
        let pool = pool();
        let mut series = series(vec![
            (0, vec![1.0; 10]),
            (100, vec![2.0; 10]),
            (200, vec![3.0; 10]),
        ]);
        // ends: 105, 205, 305
        let outcome = series.free_before(206, &pool);
        assert_eq!(outcome.buffers, 2);
        assert!(!outcome.all);
        assert_eq!(all(&series).len(), 1);
        assert_eq!(series.free_before(205, &pool).buffers, 0);
    }

    #[test]
    fn free_all_tells_the_caller_to_drop_the_series() {
        // TestBufferFreeAll.
        let pool = pool();
        let mut series = series(vec![(0, vec![1.0; 10])]);
        let outcome = series.free_before(1000, &pool);
        assert!(outcome.all);
        assert_eq!(outcome.buffers, 1);
    }

    #[test]
    fn force_free_drops_exactly_the_oldest_but_never_the_head() {
        // TestForceFreeOldestPoolReturn / TestForceFreeOldestSingleBuffer.
        let pool = pool();
        let mut series = series(vec![(0, vec![1.0; 10]), (100, vec![2.0; 10])]);
        assert_eq!(series.free_oldest(&pool).buffers, 1);
        assert_eq!(all(&series)[0].start(), 100);
        assert_eq!(series.free_oldest(&pool).buffers, 0);
        assert_eq!(all(&series).len(), 1);
    }

    #[test]
    fn adopting_overlapping_runs_merges_them() {
        // The second run overlaps the first: written value by value (NaN skipped); the third
        // is on the grid after the data and fits: appended to the buffer; the fourth does not
        // fit: taken as a buffer.
        let adopt = |runs| Series::adopt(10, runs, &pool());
        let merged = adopt(vec![
            (95, vec![1.0, 2.0, 3.0]),
            (105, vec![f32::NAN, 9.0]),
            (195, vec![4.0]),
            (95 + 510 * 10, vec![5.0, 6.0, 7.0]),
        ]);
        assert_eq!(all(&merged).len(), 2);
        assert_eq!(all(&merged)[0].len(), 11);
        let (data, from, to) = read(&merged, 0, 220);
        let nan = f32::NAN;
        assert!(same(
            &data,
            &[1.0, 2.0, 9.0, nan, nan, nan, nan, nan, nan, nan, 4.0]
        ));
        assert_eq!((from, to), (100, 210));
        // A run off the grid lands in the slots holding its sample times.
        let misaligned = adopt(vec![(95, vec![1.0]), (103, vec![7.0])]);
        assert_eq!(read(&misaligned, 0, 1000).0, vec![1.0, 7.0]);
    }

    #[test]
    fn samples_in_a_range_are_those_whose_sample_time_is_in_it() {
        // Sample times 100, 110, 120 (NaN), 130 | 200, 210.
        let nan = f32::NAN;
        let series = series(vec![(95, vec![1.0, 2.0, nan, 4.0]), (195, vec![5.0, 6.0])]);
        let samples = |from, to| {
            let mut out = Vec::new();
            series.samples_in(from, to, &mut out);
            out
        };
        assert_eq!(samples(110, 201), [(110, 2.0), (130, 4.0), (200, 5.0)]);
        // A slot belongs to the range holding its sample time, not its start.
        assert_eq!(samples(101, 110), []);
        assert_eq!(samples(100, 101), [(100, 1.0)]);
        assert_eq!(samples(i64::MIN, i64::MAX).len(), 5);
        assert_eq!(samples(300, 100), []);
        // Adjacent ranges copy every sample once.
        let mut split = samples(i64::MIN, 123);
        split.extend(samples(123, i64::MAX));
        assert_eq!(split, samples(i64::MIN, i64::MAX));
        assert_eq!(series.last_sample_before(130), Some((110, 2.0)));
        assert_eq!(series.last_sample_before(100), None);
        assert_eq!(series.last_sample_before(i64::MAX), Some((210, 6.0)));
        assert_eq!(series.first_sample_from(111), Some((130, 4.0)));
        assert_eq!(series.first_sample_from(131), Some((200, 5.0)));
        assert_eq!(series.first_sample_from(211), None);
        assert_eq!(series.first_sample_from(i64::MIN), Some((100, 1.0)));
    }

    #[test]
    fn slot_count_sums_the_chain() {
        // TestBufferCount.
        let series = series(vec![(0, vec![1.0; 10]), (100, vec![2.0; 7])]);
        assert_eq!(series.slot_count(), 17);
    }

    /// Heap bytes of every buffer of a series, counted afresh.
    fn heap(series: &Series) -> isize {
        series.buffers().map(|b| b.heap_bytes() as isize).sum()
    }

    #[test]
    fn a_head_holds_sealed_blocks_and_one_tail_and_a_done_one_is_exact() {
        let pool = pool();
        let (mut series, mut delta) = Series::new(1, 0, 0.0, &pool);
        for t in 1..BUFFER_CAPACITY as i64 {
            delta += series.write(t, 1.0, &pool);
        }
        let head = all(&series)[0];
        assert_eq!(head.sealed_blocks(), BLOCKS_PER_BUFFER - 1);
        assert_eq!(head.heap_bytes(), head.encoded_bytes() + TAIL_BYTES);
        assert_eq!(delta.bytes, heap(&series));
        // The next write starts a new head and seals the old head's tail, to its exact size.
        delta += series.write(BUFFER_CAPACITY as i64, 2.0, &pool);
        let done = all(&series)[0];
        assert_eq!(done.sealed_blocks(), BLOCKS_PER_BUFFER);
        assert_eq!(done.heap_bytes(), done.encoded_bytes());
        assert_eq!((delta.bytes, delta.buffers), (heap(&series), 2));
    }

    #[test]
    fn a_late_write_into_the_last_slot_of_a_sealed_block_patches_it() {
        let pool = pool();
        let (mut series, mut delta) = Series::new(10, 100, 0.0, &pool);
        for i in 1..200 {
            delta += series.write(100 + i * 10, i as f32, &pool);
        }
        assert_eq!(all(&series)[0].sealed_blocks(), 1);
        delta += series.write(100 + 127 * 10, -1.0, &pool);
        delta += series.write(100 + 128 * 10, -2.0, &pool);
        let values = all(&series)[0].to_values();
        assert_eq!(
            (values[126], values[127], values[128], values.len()),
            (126.0, -1.0, -2.0, 200)
        );
        assert_eq!(all(&series)[0].sealed_blocks(), 1);
        assert_eq!(delta.bytes, heap(&series));
    }

    #[test]
    fn a_late_write_extends_a_short_sealed_block_and_a_later_one_pads_it() {
        let pool = pool();
        let (mut series, mut delta) = Series::new(10, 100, 0.0, &pool);
        for i in 1..10 {
            delta += series.write(100 + i * 10, i as f32, &pool);
        }
        // A new head seals the old one's tail as a short block of 10 slots.
        delta += series.write(100 + 600 * 10, 600.0, &pool);
        let old = all(&series)[0];
        assert_eq!(
            (old.sealed_blocks(), old.len(), old.has_tail()),
            (1, 10, false)
        );
        // A late write past its end but inside the block: the block grows to 21 slots.
        delta += series.write(100 + 20 * 10, 20.0, &pool);
        let old = all(&series)[0];
        assert_eq!(
            (old.sealed_blocks(), old.len(), old.has_tail()),
            (1, 21, false)
        );
        // One past the block: the block becomes whole (NaN), the sample opens a tail.
        delta += series.write(100 + 130 * 10, 130.0, &pool);
        let old = all(&series)[0];
        assert_eq!(
            (old.sealed_blocks(), old.len(), old.has_tail()),
            (1, 131, true)
        );
        let values = old.to_values();
        assert!(
            values[10..20]
                .iter()
                .chain(&values[21..130])
                .all(|v| v.is_nan())
        );
        assert_eq!((values[9], values[20], values[130]), (9.0, 20.0, 130.0));
        assert_eq!(delta.bytes, heap(&series));
    }

    #[test]
    fn a_write_far_into_a_new_buffer_seals_nan_blocks_before_it() {
        let pool = pool();
        let (mut series, _) = Series::new(10, 100, 0.0, &pool);
        series.write(100 + 2000 * 10, 1.0, &pool);
        // A late sample in slot 300 of the gap buffer from slot 512: blocks 0 and 1 are NaN.
        series.write(100 + (512 + 300) * 10, 2.0, &pool);
        let gap = all(&series)[1];
        assert_eq!((gap.sealed_blocks(), gap.len()), (2, 301));
        let (data, from, _) = read(&series, 100 + 812 * 10, 100 + 813 * 10);
        assert_eq!((data, from), (vec![2.0], 100 + 812 * 10));
    }

    #[test]
    fn adopting_overlapping_runs_encodes_each_block_once() {
        // A buffer of 512 slots, then a run overlapping its second and third block, then one
        // following the data: the overlap re-encodes two blocks once each, not per sample.
        let full: Vec<f32> = (0..512).map(|i| i as f32).collect();
        let overlap: Vec<f32> = (0..200).map(|i| -(i as f32)).collect();
        ENCODED.set(0);
        let series = Series::adopt(
            10,
            vec![
                (95, full),
                (95 + 200 * 10, overlap),
                (95 + 512 * 10, vec![7.0; 3]),
            ],
            &pool(),
        );
        // Four blocks sealed when the head moved on, two re-encoded by the overlap.
        assert_eq!(ENCODED.get(), 4 + 2);
        let (data, _, _) = read(&series, 0, 100 + 515 * 10);
        assert_eq!(
            (data[199], data[200], data[399], data[400]),
            (199.0, 0.0, -199.0, 400.0)
        );
        assert_eq!((data[511], data[512], data.len()), (511.0, 7.0, 515));
    }

    #[test]
    fn seal_idle_seals_only_tails_that_stopped() {
        let pool = pool();
        let (mut idle, _) = Series::new(10, 100, 1.0, &pool);
        let (mut busy, _) = Series::new(10, 100, 1.0, &pool);
        for i in 1..10 {
            idle.write(100 + i * 10, 1.0, &pool);
            busy.write(100 + i * 10, 1.0, &pool);
        }
        busy.write(100 + 30 * 10, 1.0, &pool);
        // Both ended more than 16 steps ago: 200 and 400.
        let now = 200 + 20 * 10;
        let before = heap(&idle);
        let change = idle.seal_idle(now);
        assert_eq!(heap(&idle), before.saturating_add(change));
        assert!(!all(&idle)[0].has_tail() && all(&idle)[0].sealed_blocks() == 1);
        assert_eq!(busy.seal_idle(now), 0);
        assert!(all(&busy)[0].has_tail());
        // Writing again after a seal continues the short block.
        idle.write(100 + 10 * 10, 2.0, &pool);
        assert_eq!(read(&idle, 0, 1000).0.len(), 11);
    }

    #[test]
    fn first_samples_out_of_order_start_the_head_earlier() {
        // With concurrent writers tick 1 often arrives before tick 0. Tick 0 got a buffer of
        // its own, in its last slot behind 511 NaN: a buffer more per series for good. The
        // head starts earlier instead, as if the ticks had arrived in order.
        let pool = pool();
        let (mut series, mut delta) = Series::new(10, 110, 1.0, &pool);
        delta += series.write(100, 0.0, &pool);
        delta += series.write(80, -2.0, &pool);
        assert_eq!(delta.bytes, heap(&series));
        assert_eq!(delta.buffers, 1);
        let (mut in_order, _) = Series::new(10, 80, -2.0, &pool);
        for (t, value) in [(100, 0.0), (110, 1.0)] {
            in_order.write(t, value, &pool);
        }
        let (head, expected) = (all(&series)[0], all(&in_order)[0]);
        assert_eq!(all(&series).len(), 1);
        assert_eq!(
            (head.start(), head.len()),
            (expected.start(), expected.len())
        );
        assert!(same(&head.to_values(), &expected.to_values()));
        let (data, from, _) = read(&series, 0, 200);
        assert!(same(&data, &[-2.0, f32::NAN, 0.0, 1.0]));
        assert_eq!(from, 80);
        // A sample further back than the head's first block gets an older buffer, as any
        // late sample before the first buffer does.
        let back = 80 - 10 * BLOCK_SLOTS as i64;
        delta += series.write(back, 5.0, &pool);
        assert_eq!(all(&series).len(), 2);
        assert_eq!(delta.bytes, heap(&series));
        let (data, from, _) = read(&series, back, 90);
        assert_eq!(from, back);
        assert_eq!(data.first(), Some(&5.0));
        assert_eq!(data.last(), Some(&-2.0));
    }

    #[test]
    fn a_sample_at_the_end_of_time_before_a_young_head_does_not_overflow() {
        let pool = pool();
        let (mut series, _) = Series::new(10, 100, 1.0, &pool);
        assert!(series.start_head_earlier(i64::MIN, i64::MIN).is_none());
        assert_eq!(all(&series)[0].start(), 95);
    }

    #[test]
    fn a_new_heads_first_samples_out_of_order_start_it_earlier() {
        // Slot 513 arrives before 512 and 511: the new head starts at 512, not 513 with a
        // one-slot buffer squeezed in for 512.
        let pool = pool();
        let (mut series, mut delta) = Series::new(10, 100, 0.0, &pool);
        for slot in (1..511).chain([513, 512, 511]) {
            delta += series.write(100 + slot * 10, slot as f32, &pool);
        }
        let lens: Vec<usize> = series.buffers().map(Buffer::len).collect();
        assert_eq!(lens, [BUFFER_CAPACITY, 2]);
        assert_eq!(delta.bytes, heap(&series));
        let (data, from, _) = read(&series, 0, 100 + 514 * 10);
        assert_eq!(from, 100);
        let expected: Vec<f32> = (0..=513).map(|slot| slot as f32).collect();
        assert!(same(&data, &expected));
    }

    #[test]
    fn a_tail_room_doubles_from_16_slots_after_a_seal() {
        // Keeping a whole block of room after each seal cost every head up to 512 bytes.
        let pool = pool();
        let (mut series, mut delta) = Series::new(1, 0, 0.0, &pool);
        let mut rooms = Vec::new();
        for t in 1..2 * BLOCK_SLOTS as i64 {
            delta += series.write(t, t as f32, &pool);
            let head = all(&series)[0];
            let room = (head.heap_bytes() - head.encoded_bytes()) / SLOT_BYTES;
            if head.sealed_blocks() == 1 && rooms.last() != Some(&room) {
                rooms.push(room);
            }
        }
        assert_eq!(rooms, [GROWTH_SLOTS, 32, 64, BLOCK_SLOTS]);
        assert_eq!(delta.bytes, heap(&series));
        let (data, _, _) = read(&series, 0, 2 * BLOCK_SLOTS as i64);
        assert!(data.iter().enumerate().all(|(i, &v)| v == i as f32));
    }

    #[test]
    fn a_series_is_still_80_bytes() {
        // Per-series structure: a host with one sample costs 320 bytes (crates/store/tests/
        // lifecycle.rs); a bigger series would cost every series more. 16 of the 80 are the
        // head's block generations for incremental snapshots (16 B per 512 slots).
        assert_eq!(size_of::<Series>(), 80);
    }
}

#[cfg(test)]
mod model_tests {
    //! A series against a plain map of slot → value under random writes, frees and seals:
    //! every reader bit for bit, and the memory counts against a recount.

    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const F: i64 = 10;
    /// Start of slot 0: the first write is at `START + F/2`.
    const START: i64 = 1_000_000;

    #[derive(Debug, Clone)]
    enum Op {
        /// One sample in slot `slot` (anywhere: in order, late, in gaps, before the start).
        Write(i64, f32),
        /// `n` samples after the newest slot written, `skip` slots on.
        Append { skip: i64, values: Vec<f32> },
        /// Seals every tail idle at `now` = the newest data end plus `steps`.
        SealIdle(i64),
        /// Frees buffers that end before slot `slot`.
        Free(i64),
    }

    fn value() -> impl Strategy<Value = f32> {
        prop_oneof![
            4 => (-100_000i32..100_000, 0u32..4).prop_map(|(m, e)| m as f32 / 10f32.powi(e as i32)),
            2 => Just(f32::NAN),
            1 => any::<u32>().prop_map(f32::from_bits),
            1 => prop::sample::select(vec![
                -0.0,
                0.0,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::from_bits(1),
                f32::MAX,
                f32::MIN_POSITIVE,
                f32::from_bits(0x7fa0_0001),
                f32::from_bits(0xffc0_0000),
            ]),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (-700i64..2600, value()).prop_map(|(slot, v)| Op::Write(slot, v)),
            4 => (0i64..140, prop::collection::vec(value(), 1..300))
                .prop_map(|(skip, values)| Op::Append { skip, values }),
            1 => (0i64..40).prop_map(Op::SealIdle),
            1 => (-700i64..2600).prop_map(Op::Free),
        ]
    }

    /// Sample time of slot `slot`.
    fn time(slot: i64) -> i64 {
        START + slot * F + F / 2
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    /// What the map says: the last value written to each slot.
    #[derive(Default)]
    struct Oracle {
        slots: BTreeMap<i64, f32>,
    }

    impl Oracle {
        fn fill(&self, from_slot: i64, count: usize) -> Vec<f32> {
            (from_slot..from_slot + count as i64)
                .map(|s| self.slots.get(&s).copied().unwrap_or(f32::NAN))
                .collect()
        }

        fn samples(&self) -> impl DoubleEndedIterator<Item = (i64, f32)> + '_ {
            (self.slots.iter())
                .filter(|(_, v)| !v.is_nan())
                .map(|(&s, &v)| (time(s), v))
        }
    }

    /// The shape every buffer keeps (module doc): whole blocks before the last, a tail only
    /// after whole blocks, segments covering `[0, len)`, and an allocation without spare room
    /// once the tail is gone.
    fn check_shape(buffer: &Buffer) {
        let segments = buffer.segments();
        let segments = segments.as_slice();
        let mut next = 0;
        for (k, segment) in segments.iter().enumerate() {
            assert_eq!(segment.first, next, "segments are contiguous");
            assert_eq!(segment.first, k * BLOCK_SLOTS);
            if k + 1 < segments.len() {
                assert_eq!(segment.len, BLOCK_SLOTS, "only the last segment is short");
            }
            next += segment.len;
        }
        assert_eq!(next, buffer.len());
        assert!(buffer.len() <= BUFFER_CAPACITY && buffer.sealed_blocks() <= BLOCKS_PER_BUFFER);
        let sealed = segments.iter().filter(|s| s.sealed).count();
        assert_eq!(sealed, buffer.sealed_blocks());
        if !buffer.has_tail() {
            assert_eq!(
                buffer.heap_bytes(),
                buffer.encoded_bytes(),
                "exact when sealed"
            );
        } else {
            assert!(buffer.heap_bytes() <= buffer.encoded_bytes() + TAIL_BYTES);
        }
    }

    fn check(series: &Series, oracle: &Oracle, counted: MemoryDelta) {
        let heap: usize = series.buffers().map(Buffer::heap_bytes).sum();
        assert_eq!(counted.bytes, heap as isize, "bytes counted");
        assert_eq!(
            counted.buffers,
            series.buffers().count() as isize,
            "buffers counted"
        );
        assert_eq!(
            counted.structure,
            series.structure_bytes() as isize,
            "structure counted"
        );
        series.buffers().for_each(check_shape);
        // An older buffer whose slots reach the next one's start can get nothing appended, so
        // it keeps no raw tail (a first sample that arrived after the second is sealed at once).
        let buffers: Vec<&Buffer> = series.buffers().collect();
        for pair in buffers.windows(2) {
            let reach = ((pair[1].start() - pair[0].start()) / F) as usize;
            if pair[0].len() >= reach.min(BUFFER_CAPACITY) {
                assert!(
                    !pair[0].has_tail(),
                    "an older buffer that is full keeps a tail"
                );
            }
        }
        let (Some((&low, _)), Some((&high, _))) = (
            oracle.slots.first_key_value(),
            oracle.slots.last_key_value(),
        ) else {
            return;
        };
        // fill over everything and a margin, from every offset of a slot.
        let (from, count) = (low - 3, (high - low + 7) as usize);
        for offset in [0, 3, F - 1] {
            let mut out = Vec::new();
            series.fill(START + from * F + offset, count, &mut out);
            assert_eq!(bits(&out), bits(&oracle.fill(from, count)), "fill");
        }
        // read: the window it returns holds exactly the map's values.
        let mut out = Vec::new();
        let (read_from, read_to) = series.read(time(low - 2), time(high + 2), &mut out);
        let first_slot = (read_from - START).div_euclid(F);
        assert_eq!((read_to - read_from) / F, out.len() as i64);
        assert_eq!(
            bits(&out),
            bits(&oracle.fill(first_slot, out.len())),
            "read"
        );
        // samples_in, first_sample_from, last_sample_before.
        let mut samples = Vec::new();
        series.samples_in(i64::MIN, i64::MAX, &mut samples);
        let expected: Vec<(i64, f32)> = oracle.samples().collect();
        let as_bits =
            |s: &[(i64, f32)]| s.iter().map(|&(t, v)| (t, v.to_bits())).collect::<Vec<_>>();
        assert_eq!(as_bits(&samples), as_bits(&expected), "samples_in");
        let mid = time((low + high) / 2) - 1;
        let mut part = Vec::new();
        series.samples_in(mid, time(high), &mut part);
        let in_range: Vec<_> = expected
            .iter()
            .copied()
            .filter(|&(t, _)| t >= mid && t < time(high))
            .collect();
        assert_eq!(as_bits(&part), as_bits(&in_range), "samples_in part");
        for t in [time(low), mid, time(high), time(high) + 1, time(low) - 1] {
            let first = expected.iter().copied().find(|&(s, _)| s >= t);
            let last = expected.iter().copied().rev().find(|&(s, _)| s < t);
            let got = (series.first_sample_from(t), series.last_sample_before(t));
            assert_eq!(
                (
                    got.0.map(|(t, v)| (t, v.to_bits())),
                    got.1.map(|(t, v)| (t, v.to_bits()))
                ),
                (
                    first.map(|(t, v)| (t, v.to_bits())),
                    last.map(|(t, v)| (t, v.to_bits()))
                ),
                "first/last sample around {t}"
            );
        }
    }

    fn run(ops: Vec<Op>) {
        let pool = BufferPool::new(4);
        let (mut series, mut counted) = Series::new(F, time(0), 1.5, &pool);
        let mut oracle = Oracle::default();
        oracle.slots.insert(0, 1.5);
        let mut newest = 0;
        for op in ops {
            match op {
                Op::Write(slot, value) => {
                    counted += series.write(time(slot) - F / 2 + slot.rem_euclid(F), value, &pool);
                    oracle.slots.insert(slot, value);
                    newest = newest.max(slot);
                }
                Op::Append { skip, values } => {
                    for (slot, value) in (newest + 1 + skip..).zip(values) {
                        counted += series.write(time(slot), value, &pool);
                        oracle.slots.insert(slot, value);
                        newest = slot;
                    }
                }
                Op::SealIdle(steps) => {
                    let now = series.newest_data_end() + steps * F;
                    counted.bytes += series.seal_idle(now);
                    // A buffer with a tail that ends within the idle window keeps it.
                    let idle_before = now - IDLE_SEAL_STEPS * F;
                    for buffer in series.buffers() {
                        assert!(!buffer.has_tail() || buffer.data_end(F) >= idle_before);
                    }
                }
                Op::Free(slot) => {
                    let before = START + slot * F;
                    let freed: Vec<(i64, i64)> = series
                        .buffers()
                        .filter(|b| b.end(F) < before)
                        .map(|b| (b.start(), b.data_end(F)))
                        .collect();
                    let chain = series.structure_bytes();
                    let outcome = series.free_before(before, &pool);
                    if outcome.all {
                        // The owner drops the series: start a new one, as a writer would.
                        return;
                    }
                    assert_eq!(outcome.buffers, freed.len());
                    counted.bytes -= outcome.bytes as isize;
                    counted.buffers -= outcome.buffers as isize;
                    counted.structure -= outcome.structure as isize;
                    assert_eq!(chain - outcome.structure, series.structure_bytes());
                    for (start, end) in freed {
                        let (first, last) = ((start - START) / F, (end - START) / F);
                        oracle.slots.retain(|&s, _| s < first || s >= last);
                    }
                }
            }
            check(&series, &oracle, counted);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn series_matches_a_map_of_slots(ops in prop::collection::vec(op(), 1..40)) {
            run(ops);
        }

        #[test]
        fn adopted_runs_match_the_map(
            runs in prop::collection::vec(
                (-600i64..2000, 0i64..F, prop::collection::vec(value(), 1..BUFFER_CAPACITY)),
                1..8,
            )
        ) {
            // Runs on the grid (offset 0) or off it; NaN never overwrites (canonical NaN only,
            // since a run's NaN is "missing").
            let runs: Vec<(i64, Vec<f32>)> = runs
                .into_iter()
                .map(|(slot, offset, values)| {
                    let values = values.into_iter().map(|v| if v.is_nan() { f32::NAN } else { v });
                    (START + slot * F + offset, values.collect())
                })
                .collect();
            let first = runs[0].0;
            let mut oracle = Oracle::default();
            for (start, values) in &runs {
                for (t, value) in run_samples(*start, F, values) {
                    oracle.slots.insert((t - first).div_euclid(F), value);
                }
            }
            let pool = BufferPool::new(4);
            let series = Series::adopt(F, runs.clone(), &pool);
            let counted = MemoryDelta {
                bytes: series.buffers().map(|b| b.heap_bytes() as isize).sum(),
                buffers: series.buffers().count() as isize,
                structure: series.structure_bytes() as isize,
            };
            // The oracle's slots are relative to the first run's start.
            let shifted = Oracle {
                slots: oracle.slots.iter().map(|(&s, &v)| (s + (first - START).div_euclid(F), v)).collect(),
            };
            if first.rem_euclid(F) == START.rem_euclid(F) {
                check(&series, &shifted, counted);
            } else {
                let mut samples = Vec::new();
                series.samples_in(i64::MIN, i64::MAX, &mut samples);
                prop_assert_eq!(samples.len(), oracle.samples().count());
            }
        }
    }
}
