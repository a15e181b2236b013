//! Fixed-frequency float32 buffers and the chains (series) they form.
//!
//! A [`Buffer`] holds up to [`BUFFER_CAPACITY`] consecutive slots of one series; slot `i` covers
//! `[start + i·f, start + (i+1)·f)`. No timestamps are stored per sample, which is why a sample
//! costs four bytes. Missing slots are NaN.
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
//! outside the retention window are refused before they reach a series.)
//!
//! Runs loaded from snapshots are coalesced into full-size buffers the same way
//! ([`Series::adopt`]), so a chain fragmented by an older version is compacted on restart.

use crate::memory::allocation;
use crate::pool::BufferPool;

/// Slots per buffer (cc-metric-store's `BufferCap`). At 60 s that is 8.5 hours per buffer.
pub const BUFFER_CAPACITY: usize = 512;

/// The heap allocation of a buffer grows in steps of this many slots, so that a partly filled
/// buffer (every head buffer, and every buffer of a short-lived series) wastes at most
/// `GROWTH_SLOTS − 1` slots instead of up to 511.
const GROWTH_SLOTS: usize = 16;

/// The first allocation of a buffer is this small: a series that gets one sample (a host
/// that reported once) costs 16 bytes of data instead of 64, and one that keeps growing pays
/// one more reallocation per buffer.
const FIRST_SLOTS: usize = 4;

const _: () = assert!(BUFFER_CAPACITY.is_multiple_of(GROWTH_SLOTS));

/// One run of slots of a series.
#[derive(Debug)]
pub(crate) struct Buffer {
    /// Start of slot 0, unix seconds.
    start: i64,
    /// Filled slots; `data.len() <= BUFFER_CAPACITY`.
    data: Vec<f32>,
}

impl Buffer {
    pub(crate) fn start(&self) -> i64 {
        self.start
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn values(&self) -> &[f32] {
        &self.data
    }

    /// Bytes of heap this buffer holds.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.data.capacity() * size_of::<f32>()
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
        let index = self.data.iter().position(|v| !v.is_nan()).unwrap_or(0);
        self.first_write(frequency_s) + index as i64 * frequency_s
    }

    /// Grows the allocation to hold `len` slots: [`FIRST_SLOTS`], then in steps of
    /// [`GROWTH_SLOTS`]. Returns the growth in bytes.
    fn reserve_slots(&mut self, len: usize) -> usize {
        debug_assert!(len <= BUFFER_CAPACITY);
        let before = self.data.capacity();
        if len > before {
            let target = if len <= FIRST_SLOTS {
                FIRST_SLOTS
            } else {
                len.next_multiple_of(GROWTH_SLOTS).min(BUFFER_CAPACITY)
            };
            self.data.reserve_exact(target - self.data.len());
        }
        (self.data.capacity() - before) * size_of::<f32>()
    }

    /// Writes `value` into slot `index`, NaN-filling skipped slots. Returns the growth of the
    /// heap allocation in bytes.
    fn put(&mut self, index: usize, value: f32) -> usize {
        debug_assert!(index < BUFFER_CAPACITY);
        if let Some(slot) = self.data.get_mut(index) {
            *slot = value;
            return 0;
        }
        let grown = self.reserve_slots(index + 1);
        self.data.resize(index, f32::NAN);
        self.data.push(value);
        grown
    }
}

/// Counts what a write did to the store's memory, so the store can keep exact totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoryDelta {
    /// Buffer data.
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
/// one link of that chain, and a series with one buffer needs no second allocation.
#[derive(Debug)]
pub(crate) struct Series {
    frequency_s: i64,
    /// Buffers before the head, sorted by start, non-overlapping.
    older: Vec<Buffer>,
    /// The newest buffer; it starts after every older one.
    head: Buffer,
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
        let (head, delta) = new_buffer(timestamp_s - frequency_s / 2, 0, value, pool);
        let series = Self {
            frequency_s,
            older: Vec::new(),
            head,
        };
        (series, delta)
    }

    /// A series made of runs loaded from elsewhere (snapshots, imports): `(start, values)`,
    /// each at most [`BUFFER_CAPACITY`] long. Runs that are on the first run's grid and after
    /// the previous one are appended to the newest buffer while they fit in its capacity
    /// (gaps NaN-filled), else become buffers as they are; any other run is written value by
    /// value (NaN slots skipped), so overlapping or misaligned input is merged, never misread.
    pub(crate) fn adopt(frequency_s: i64, runs: Vec<(i64, Vec<f32>)>, pool: &BufferPool) -> Self {
        assert!(frequency_s > 0, "frequency must be positive");
        let mut runs = runs.into_iter().filter(|(_, values)| !values.is_empty());
        let (start, data) = runs.next().unwrap_or((0, Vec::new()));
        assert!(data.len() <= BUFFER_CAPACITY, "run longer than a buffer");
        let mut series = Self {
            frequency_s,
            older: Vec::new(),
            head: Buffer { start, data },
        };
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
                head.reserve_slots(slot + data.len());
                head.data.resize(slot, f32::NAN);
                head.data.extend_from_slice(&data);
                continue;
            }
            let previous = std::mem::replace(&mut series.head, Buffer { start, data });
            series.older.push(previous);
        }
        series
    }

    pub(crate) fn frequency_s(&self) -> i64 {
        self.frequency_s
    }

    /// Heap bytes of the chain itself (the vector of older buffers), not of their data.
    pub(crate) fn structure_bytes(&self) -> usize {
        allocation(self.older.capacity() * size_of::<Buffer>())
    }

    /// Every buffer, oldest first.
    pub(crate) fn buffers(&self) -> impl DoubleEndedIterator<Item = &Buffer> {
        self.older.iter().chain(std::iter::once(&self.head))
    }

    fn first(&self) -> &Buffer {
        self.older.first().unwrap_or(&self.head)
    }

    /// Writes one sample; the last write to a slot wins.
    pub(crate) fn write(&mut self, timestamp_s: i64, value: f32, pool: &BufferPool) -> MemoryDelta {
        let before = self.older.capacity();
        let mut delta = self.put(timestamp_s, value, pool);
        if self.older.capacity() != before {
            let grown = self.structure_bytes() - allocation(before * size_of::<Buffer>());
            delta.structure += grown as isize;
        }
        delta
    }

    /// [`Series::write`] without counting the chain's own growth.
    fn put(&mut self, timestamp_s: i64, value: f32, pool: &BufferPool) -> MemoryDelta {
        let f = self.frequency_s;
        if timestamp_s >= self.head.start {
            let index = ((timestamp_s - self.head.start) / f) as usize;
            if index < BUFFER_CAPACITY {
                return MemoryDelta {
                    bytes: self.head.put(index, value) as isize,
                    ..MemoryDelta::default()
                };
            }
            // Past the head's last slot: a new head at the slot of this sample.
            let start = self.head.start + index as i64 * f;
            let (head, delta) = new_buffer(start, 0, value, pool);
            let previous = std::mem::replace(&mut self.head, head);
            self.older.push(previous);
            return delta;
        }
        // A late sample: the last older buffer starting at or before it, if any.
        let position = self.older.partition_point(|b| b.start <= timestamp_s);
        let next_start = self
            .older
            .get(position)
            .map_or(self.head.start, |b| b.start);
        let mut floor = i64::MIN;
        if let Some(previous) = position.checked_sub(1).map(|i| &mut self.older[i]) {
            let index = ((timestamp_s - previous.start) / f) as usize;
            let slots_before_next = ((next_start - previous.start) / f) as usize;
            if index < BUFFER_CAPACITY.min(slots_before_next) {
                return MemoryDelta {
                    bytes: previous.put(index, value) as isize,
                    ..MemoryDelta::default()
                };
            }
            // Past the previous buffer's capacity: the new buffer starts no earlier than that.
            floor = previous.start + BUFFER_CAPACITY as i64 * f;
        }
        // No buffer's range holds the sample: a new buffer whose full range ends at the next
        // buffer's start (a whole number of buffer lengths before it), so that further late
        // samples fill it instead of each starting a buffer of its own.
        let span = BUFFER_CAPACITY as i64 * f;
        let buffers_back = (next_start - timestamp_s + span - 1) / span;
        let start = (next_start - buffers_back * span).max(floor);
        let (buffer, delta) = new_buffer(start, ((timestamp_s - start) / f) as usize, value, pool);
        self.older.insert(position, buffer);
        delta
    }

    /// Writes a run of slots `start_s, start_s + f, …` (at `frequency_s`) value by value,
    /// skipping NaN, so a run that overlaps or is off this series' grid merges into it.
    pub(crate) fn merge_run(
        &mut self,
        start_s: i64,
        frequency_s: i64,
        values: &[f32],
        pool: &BufferPool,
    ) -> MemoryDelta {
        let mut delta = MemoryDelta::default();
        for (t, value) in run_samples(start_s, frequency_s, values) {
            delta += self.write(t, value, pool);
        }
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
            out.extend_from_slice(&buffer.data[first..first + take]);
            remaining -= take;
            t += take as i64 * f;
        }
    }

    /// Removes every buffer whose `end() < before`. When that includes the head, the series
    /// is reported with `all = true` and its owner drops it.
    pub(crate) fn free_before(&mut self, before: i64, pool: &BufferPool) -> FreeOutcome {
        let f = self.frequency_s;
        let count = self.older.partition_point(|b| b.end(f) < before);
        let mut outcome = FreeOutcome::default();
        for buffer in self.older.drain(..count) {
            outcome.add(&buffer);
            pool.give(buffer.data);
        }
        if self.older.is_empty() && self.head.end(f) < before {
            outcome.all = true;
            let head = std::mem::replace(
                &mut self.head,
                Buffer {
                    start: 0,
                    data: Vec::new(),
                },
            );
            outcome.add(&head);
            pool.give(head.data);
        }
        outcome
    }

    /// Drops the oldest buffer unless it is the head (the emergency path of the memory cap).
    pub(crate) fn free_oldest(&mut self, pool: &BufferPool) -> FreeOutcome {
        let mut outcome = FreeOutcome::default();
        if !self.older.is_empty() {
            let buffer = self.older.remove(0);
            outcome.add(&buffer);
            pool.give(buffer.data);
        }
        outcome
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
            if first < end {
                let start = buffer.start + first as i64 * f;
                out.extend(run_samples(start, f, &buffer.data[first..end]));
            }
        }
    }

    /// The newest sample whose sample time is before `t`.
    pub(crate) fn last_sample_before(&self, t: i64) -> Option<(i64, f32)> {
        let f = self.frequency_s;
        self.buffers().rev().find_map(|buffer| {
            let end = buffer.slots_sampled_before(t, f);
            let i = buffer.data[..end].iter().rposition(|v| !v.is_nan())?;
            Some((buffer.sample_time(i, f), buffer.data[i]))
        })
    }

    /// The oldest sample whose sample time is at or after `t`.
    pub(crate) fn first_sample_from(&self, t: i64) -> Option<(i64, f32)> {
        let f = self.frequency_s;
        self.buffers().find_map(|buffer| {
            let first = buffer.slots_sampled_before(t, f);
            let i = first + buffer.data[first..].iter().position(|v| !v.is_nan())?;
            Some((buffer.sample_time(i, f), buffer.data[i]))
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

/// A new buffer whose slot `index` holds `value` (the slots before it NaN), and what it costs.
fn new_buffer(start: i64, index: usize, value: f32, pool: &BufferPool) -> (Buffer, MemoryDelta) {
    let mut buffer = Buffer {
        start,
        data: pool.take(),
    };
    let reused = buffer.heap_bytes();
    let grown = buffer.put(index, value);
    let delta = MemoryDelta {
        bytes: (reused + grown) as isize,
        buffers: 1,
        structure: 0,
    };
    (buffer, delta)
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

#[cfg(test)]
mod tests {
    //! Buffer rules from cc-metric-store's `metricstore_test.go` (COMPAT.md §8), written from
    //! the described behaviour.

    use super::*;

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
            .map(|(start, data)| Buffer { start, data })
            .collect();
        let head = buffers.pop().expect("at least one run");
        Series {
            frequency_s: 10,
            older: buffers,
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
        assert_eq!(all(&series)[0].values(), &[1.0]);
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
            all(&series)[0].values(),
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
        assert_eq!(all(&series)[0].values(), &[1.0, 5.0]);
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
        assert_eq!(all(&series)[1].values(), &[BUFFER_CAPACITY as f32]);
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
        series.write(100 + 600 * 10, 2.0, &pool);
        series.write(150, 3.0, &pool);
        assert_eq!(all(&series).len(), 2);
        assert_eq!(all(&series)[0].values()[5], 3.0);
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
        series.write(100 + 1000 * 10, 2.0, &pool);
        series.write(100 + 995 * 10, 3.0, &pool); // gap buffer from slot 512
        // Slots 512..999 belong to the gap buffer; 1000 is the head's first slot.
        series.write(100 + 999 * 10, 4.0, &pool);
        assert_eq!(all(&series).len(), 3);
        assert_eq!(all(&series)[1].start(), 95 + 512 * 10);
        assert_eq!(all(&series)[1].len(), 488);
        series.write(100 + 1000 * 10, 5.0, &pool);
        assert_eq!(all(&series)[2].values(), &[5.0]);
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
        // The head holds the first sample; three full buffers hold the rest.
        let lens: Vec<usize> = series.buffers().map(Buffer::len).collect();
        assert_eq!(
            lens,
            [BUFFER_CAPACITY; 3]
                .into_iter()
                .chain([1])
                .collect::<Vec<_>>()
        );
        let (data, from, _) = read(&series, 0, i64::MAX / 2);
        assert_eq!((data.len(), from), (count as usize + 1, 100));
        assert_eq!((data[0], data[count as usize]), (count as f32, 0.0));
    }

    #[test]
    fn sample_before_first_buffer_gets_a_buffer_on_the_same_grid() {
        let pool = pool();
        let (mut series, _) = Series::new(10, 100, 1.0, &pool);
        series.write(90, 2.0, &pool);
        series.write(61, 3.0, &pool);
        // One buffer whose range ends where the head starts, at 95.
        let span = BUFFER_CAPACITY as i64 * 10;
        assert_eq!(all(&series).len(), 2);
        assert_eq!(all(&series)[0].start(), 95 - span);
        series.write(75, 4.0, &pool);
        assert_eq!(all(&series)[0].len(), BUFFER_CAPACITY);
        // Reads start at the first value, not at the buffer's start.
        let (data, from, to) = read(&series, 0, 200);
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

    #[test]
    fn allocation_grows_in_steps_and_never_beyond_capacity() {
        let pool = pool();
        let (mut series, mut delta) = Series::new(1, 0, 0.0, &pool);
        for t in 1..BUFFER_CAPACITY as i64 {
            delta.bytes += series.write(t, 1.0, &pool).bytes;
        }
        assert_eq!(all(&series)[0].heap_bytes(), BUFFER_CAPACITY * 4);
        assert_eq!(delta.bytes, (BUFFER_CAPACITY * 4) as isize);
    }
}
