//! Streaming the log: the one reader behind recovery, `strata check` and the forwarder.
//!
//! A [`LogReader`] opens at a position and hands out records one at a time, reading each
//! segment through a small buffer: it holds at most one record ([`format::RECORD_BYTES_MAX`])
//! and a read chunk, whatever the size of the log. Only after damage does it read the rest of
//! that one segment, to count the records lost.
//!
//! Two modes:
//! - **offline** (no [`Committed`]): recovery and `strata check`. It reads to the end of the
//!   newest segment; a bad tail of the newest segment is a torn tail ([`LogReader::torn_tail`]),
//!   anywhere else it is damage.
//! - **tailing** (with the writer's [`Committed`]): the forwarder. In the segment the writer
//!   is in it reads only up to the committed position, never past it, so a group being
//!   written is never mistaken for a torn tail or damage; waiting for more is a wait on the
//!   committed position's condition variable, not polling. A segment is finished only when
//!   the committed position is in a later one: the writer wrote all of it before starting the
//!   next.
//!
//! What is not a record is a [`Damage`] event, never skipped silently: corruption (the rest
//! of that segment is skipped, since its series definitions cannot be trusted), a segment
//! missing between two that exist, and a segment deleted under the reader (retention removed
//! it between listing and opening). Records lost are counted from sequence numbers: the next
//! record's, or the next segment header's first sequence (version 3 on), whichever comes
//! first; a damage is handed out once that is known, or when the reader reaches the end or
//! has to wait.

use crate::codec::{Decode, Names};
use crate::committed::Committed;
use crate::format::{self, Frame, SegmentHeader};
use crate::reader::{Damage, list_segments, segment_file_name};
use crate::{Error, Free, Position, Result};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_store::WriteBatch;

/// Bytes read from a segment file at a time, at least.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Bytes the buffer grows by at a time, at most: a damaged length field of a version 1 or 2
/// segment (up to 256 MiB) allocates no more than what the file holds and one step.
const READ_STEP_BYTES_MAX: usize = 1 << 20;

/// A record read from the log, owned: a batch as the reader's [`Decode`] makes it.
#[derive(Debug)]
pub enum OwnedRecord<B = WriteBatch> {
    Batch(B),
    Free(Free),
}

/// A record and where it is.
#[derive(Debug)]
pub struct Entry<B = WriteBatch> {
    pub start: Position,
    /// Where the next record starts: open a reader here to resume after this record.
    pub end: Position,
    pub sequence: u64,
    pub record: OwnedRecord<B>,
}

/// What a reader hands out.
#[derive(Debug)]
pub enum Event<B = WriteBatch> {
    Record(Entry<B>),
    Damage(Damage),
}

/// An open segment and the bytes read from it.
struct Segment {
    number: u64,
    file: File,
    /// Bytes read and not yet consumed: `buffer[head..]`.
    buffer: Vec<u8>,
    head: usize,
    /// The file offset of `buffer[head]`.
    offset: u64,
    /// The largest record length of the segment's version.
    record_bytes_max: u32,
    /// Offline only: no newer segment existed when it was opened, so a bad tail is torn.
    newest: bool,
}

impl Segment {
    fn available(&self) -> usize {
        self.buffer.len() - self.head
    }

    fn bytes(&self) -> &[u8] {
        &self.buffer[self.head..]
    }

    fn consume(&mut self, bytes: usize) {
        self.head += bytes;
        self.offset += bytes as u64;
    }

    /// Reads until `want` bytes are buffered, the file ends, or the next byte would be at
    /// `limit` or past it; returns the bytes buffered. Never reads at or past `limit`, so
    /// nothing of a group being written is ever buffered.
    fn fill(&mut self, want: usize, limit: Option<u64>) -> io::Result<usize> {
        if self.available() >= want {
            return Ok(self.available());
        }
        // Reading more: what is left (less than one frame) moves to the front first.
        self.buffer.drain(..self.head);
        self.head = 0;
        while self.buffer.len() < want {
            let end = self.offset + self.buffer.len() as u64;
            let mut room = (want - self.buffer.len()).clamp(READ_CHUNK_BYTES, READ_STEP_BYTES_MAX);
            if let Some(limit) = limit {
                room = room.min(usize::try_from(limit.saturating_sub(end)).unwrap_or(usize::MAX));
            }
            if room == 0 {
                break;
            }
            let filled = self.buffer.len();
            self.buffer.resize(filled + room, 0);
            let read = match self.file.read(&mut self.buffer[filled..]) {
                Ok(read) => read,
                // A signal is not the end of the file: read again.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {
                    self.buffer.truncate(filled);
                    continue;
                }
                Err(error) => {
                    self.buffer.truncate(filled);
                    return Err(error);
                }
            };
            self.buffer.truncate(filled + read);
            if read == 0 {
                break;
            }
        }
        Ok(self.available())
    }

    /// Everything from the current offset to the end of the file (or `limit`).
    fn rest(&mut self, limit: Option<u64>) -> io::Result<Vec<u8>> {
        let mut rest = self.bytes().to_vec();
        let end = self.offset + rest.len() as u64;
        match limit {
            Some(limit) => {
                (&mut self.file)
                    .take(limit.saturating_sub(end))
                    .read_to_end(&mut rest)?;
            }
            None => {
                self.file.read_to_end(&mut rest)?;
            }
        }
        Ok(rest)
    }
}

/// What one frame read found.
enum FrameRead {
    /// A record of this payload length, buffered after its header.
    Record(usize),
    /// No bytes: the end of the file, or the reading limit.
    End,
    Bad(String),
}

/// A damage waiting for the sequence number that says how many records it lost.
struct Held {
    damage: Damage,
    /// The sequence number the next record would have had without the damage.
    expected: Option<u64>,
}

/// What one step of reading did.
enum Step {
    /// Read something (a record or a damage is queued) or moved on; step again.
    Progress,
    /// Caught up with the committed position seen: wait for it to move.
    Wait(Position),
    /// The end of the log (offline).
    End,
}

/// A streaming reader of the log; see the module doc. `D` decides how batch records are
/// handed out: by name (a [`WriteBatch`]) or by series ref ([`crate::Refs`]).
pub struct LogReader<D: Decode = Names> {
    directory: PathBuf,
    committed: Option<Arc<Committed>>,
    current: Option<Segment>,
    /// The segment to open when `current` is `None`.
    next_segment: u64,
    position: Position,
    /// Opened inside a segment: records before this position are read for their series
    /// definitions only.
    skip_to: Option<Position>,
    /// Whether a segment has been opened: segments missing before the first one are not
    /// damage (they were deleted before the reader started).
    opened_any: bool,
    decoder: D,
    /// A batch to decode into, handed back with [`LogReader::recycle`].
    spare: D::Batch,
    /// The sequence number the next record should have, when known.
    expected: Option<u64>,
    /// Past every sequence number seen: in records, segment headers, and damaged bytes.
    next_sequence: u64,
    held: Option<Held>,
    ready: VecDeque<Event<D::Batch>>,
    torn_tail: Option<(Position, u64)>,
    segments_read: usize,
    last_segment: Option<u64>,
}

impl<D: Decode> std::fmt::Debug for LogReader<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("directory", &self.directory)
            .field("position", &self.position)
            .field("tailing", &self.committed.is_some())
            .finish()
    }
}

impl LogReader {
    /// Opens a reader that hands out batches by name; see [`LogReader::open_as`].
    pub fn open(
        directory: &Path,
        from: Position,
        committed: Option<Arc<Committed>>,
    ) -> Result<Self> {
        Self::open_as(directory, from, committed)
    }
}

impl<D: Decode> LogReader<D> {
    /// Opens at `from` (a record boundary: a segment's header end, or any `Entry::end`).
    /// Segments are self-contained (each defines its series before use), so opening
    /// mid-segment decodes the series definitions of the records before `from`: a reader by
    /// name keeps them to decode later records, a reader by ref hands them out with its first
    /// record. `from` in a segment that no longer exists (deleted) or offset 0:
    /// start at the oldest segment at or after it; segments missing before that one are not
    /// reported (they were deleted), segments missing after it are.
    ///
    /// With `committed`, the reader tails the live log: in the segment the writer is in, it
    /// reads only up to the committed position and [`LogReader::next`] waits on
    /// [`Committed::wait_past`]; without it (recovery, `strata check`, offline) it reads to
    /// the end of the newest segment and a bad end of that segment is a torn tail.
    pub fn open_as(
        directory: &Path,
        from: Position,
        committed: Option<Arc<Committed>>,
    ) -> Result<Self> {
        Ok(Self {
            directory: directory.to_owned(),
            committed,
            current: None,
            next_segment: from.segment,
            position: from,
            skip_to: Some(from).filter(|from| from.offset > 0),
            opened_any: false,
            decoder: D::default(),
            spare: D::Batch::default(),
            expected: None,
            next_sequence: 0,
            held: None,
            ready: VecDeque::new(),
            torn_tail: None,
            segments_read: 0,
            last_segment: None,
        })
    }

    /// The next record or damage. `Ok(None)` means: nothing new within `wait` (tailing), or
    /// the end of the log (offline), or the log closed.
    pub fn next(&mut self, wait: Duration) -> Result<Option<Event<D::Batch>>> {
        let deadline = Instant::now().checked_add(wait);
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            match self.step()? {
                Step::Progress => {}
                Step::End => {
                    self.release_held();
                    return Ok(self.ready.pop_front());
                }
                Step::Wait(seen) => {
                    // A damage is not held back while waiting for what may never come.
                    self.release_held();
                    if !self.ready.is_empty() {
                        continue;
                    }
                    let Some(committed) = &self.committed else {
                        return Ok(None);
                    };
                    let left = deadline.map_or(Duration::MAX, |d| {
                        d.saturating_duration_since(Instant::now())
                    });
                    // Closed: the position seen is final.
                    if left.is_zero() || committed.is_closed() && committed.position() <= seen {
                        return Ok(None);
                    }
                    committed.wait_past(seen, left);
                }
            }
        }
    }

    /// Where the next record starts (after damage, the start of the next segment: offset 0).
    pub fn position(&self) -> Position {
        self.position
    }

    /// Gives a batch of a handed-out record back for decoding the next one into.
    pub fn recycle(&mut self, mut batch: D::Batch) {
        D::recycle(&mut batch);
        self.spare = batch;
    }

    /// Offline, at the end: a torn tail of the newest segment (where the good records end,
    /// and the bytes after).
    pub fn torn_tail(&self) -> Option<(Position, u64)> {
        self.torn_tail
    }

    /// Segment files opened so far.
    pub fn segments_read(&self) -> usize {
        self.segments_read
    }

    /// The newest segment opened, if any.
    pub fn last_segment(&self) -> Option<u64> {
        self.last_segment
    }

    /// The sequence number a writer continuing this log starts at: past every record read,
    /// every segment header's first sequence, and every record seen in damaged bytes.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    fn step(&mut self) -> Result<Step> {
        let committed = self.committed.as_ref().map(|c| c.position());
        let Some(segment) = &self.current else {
            return self.open_next(committed);
        };
        let limit = match committed {
            // Ahead of the writer (a position from a log that was since reset): wait.
            Some(c) if c.segment < segment.number => return Ok(Step::Wait(c)),
            Some(c) if c.segment == segment.number => Some(c.offset),
            // Sealed, or offline.
            _ => None,
        };
        match self.read_frame(limit)? {
            FrameRead::Record(length) => self.take_record(length, limit),
            FrameRead::End => match (limit, committed) {
                (Some(_), Some(c)) => Ok(Step::Wait(c)),
                _ => {
                    self.finish_segment();
                    Ok(Step::Progress)
                }
            },
            FrameRead::Bad(reason) => self.damaged(reason, limit, true),
        }
    }

    /// Reads the frame at the current offset into the buffer.
    fn read_frame(&mut self, limit: Option<u64>) -> Result<FrameRead> {
        let Some(segment) = &mut self.current else {
            return Ok(FrameRead::End);
        };
        let header = format::RECORD_HEADER_BYTES as usize;
        let (directory, number) = (&self.directory, segment.number);
        let io_error = |e| Error::io("reading", &segment_path(directory, number), e);
        let available = segment.fill(header, limit).map_err(io_error)?;
        if available == 0 {
            return Ok(FrameRead::End);
        }
        if available >= header {
            let bytes = segment.bytes();
            let length = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            if length <= segment.record_bytes_max {
                segment
                    .fill(header + length as usize, limit)
                    .map_err(io_error)?;
            }
        }
        Ok(
            match format::read_frame(segment.bytes(), segment.record_bytes_max) {
                Frame::Record(payload) => FrameRead::Record(payload.len()),
                // Reading up to the committed position, nothing is cut off by a write.
                Frame::Truncated if limit.is_some() => {
                    FrameRead::Bad("record runs past the committed end of the log".into())
                }
                Frame::Truncated => {
                    FrameRead::Bad("record cut off by the end of the segment".into())
                }
                Frame::Corrupt { reason } => FrameRead::Bad(reason.into()),
                Frame::End => FrameRead::End,
            },
        )
    }

    /// Decodes the buffered record of payload `length` and queues it (or, before `skip_to`,
    /// keeps only its definitions).
    fn take_record(&mut self, length: usize, limit: Option<u64>) -> Result<Step> {
        let Some(segment) = &mut self.current else {
            return Ok(Step::Progress);
        };
        let header = format::RECORD_HEADER_BYTES as usize;
        let payload = &segment.buffer[segment.head + header..segment.head + header + length];
        let mut batch = std::mem::take(&mut self.spare);
        let (sequence, free) = match self.decoder.decode_record(payload, &mut batch) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.spare = batch;
                return self.damaged(error.to_string(), limit, false);
            }
        };
        let start = Position {
            segment: segment.number,
            offset: segment.offset,
        };
        segment.consume(header + length);
        let end = Position {
            segment: segment.number,
            offset: segment.offset,
        };
        self.position = end;
        // Saturating: a damaged or hostile record may carry any sequence number, u64::MAX too.
        self.next_sequence = self.next_sequence.max(sequence.saturating_add(1));
        if let Some(skip) = self.skip_to
            && skip.segment == start.segment
            && start.offset < skip.offset
        {
            // Before the position the reader was opened at: definitions only.
            self.expected = Some(sequence.saturating_add(1));
            D::skip(&mut batch);
            self.spare = batch;
            if end.offset > skip.offset {
                self.skip_to = None;
                self.report(Damage {
                    segment: start.segment,
                    offset: skip.offset,
                    reason: format!(
                        "the reader's position {skip} is inside the record at {start}; going on \
                         after it"
                    ),
                    records_lost: None,
                });
            } else if end.offset == skip.offset {
                self.skip_to = None;
            }
            return Ok(Step::Progress);
        }
        self.resolve_held(sequence);
        self.expected = Some(sequence.saturating_add(1));
        let record = match free {
            Some(free) => {
                self.spare = batch;
                OwnedRecord::Free(free)
            }
            None => OwnedRecord::Batch(batch),
        };
        self.ready.push_back(Event::Record(Entry {
            start,
            end,
            sequence,
            record,
        }));
        Ok(Step::Progress)
    }

    /// The current segment is damaged at its offset: a torn tail (offline, newest segment,
    /// no valid record after) or damage, after which the reader goes on at the next segment.
    /// `framing`: the frame itself was bad (cut off or corrupt), not its decoded payload.
    fn damaged(&mut self, reason: String, limit: Option<u64>, framing: bool) -> Result<Step> {
        let Some(mut segment) = self.current.take() else {
            return Ok(Step::Progress);
        };
        let at = Position {
            segment: segment.number,
            offset: segment.offset,
        };
        let rest = segment
            .rest(limit)
            .map_err(|e| Error::io("reading", &segment_path(&self.directory, at.segment), e))?;
        let offline_newest = segment.newest && self.committed.is_none();
        // Offline, the newest segment may be written meanwhile (`strata check` beside a
        // running server): a frame that is whole when read again was being written.
        if framing
            && offline_newest
            && matches!(
                format::read_frame(&rest, segment.record_bytes_max),
                Frame::Record(_)
            )
        {
            segment.buffer = rest;
            segment.head = 0;
            self.current = Some(segment);
            return Ok(Step::Progress);
        }
        let sequence_after = last_valid_sequence_after(&rest, 1, segment.record_bytes_max);
        if offline_newest && sequence_after.is_none() {
            self.torn_tail = Some((at, rest.len() as u64));
            self.next_segment = u64::MAX;
            return Ok(Step::End);
        }
        if let Some(after) = sequence_after {
            self.next_sequence = self.next_sequence.max(after.saturating_add(1));
        }
        let records_lost = match (sequence_after, self.expected) {
            (Some(after), Some(expected)) => Some(after.saturating_add(1).saturating_sub(expected)),
            _ => None,
        };
        self.report(Damage {
            segment: at.segment,
            offset: at.offset,
            reason,
            records_lost,
        });
        self.skip_past(at.segment);
        Ok(Step::Progress)
    }

    /// Holds `damage` until the sequence number after it is known.
    fn report(&mut self, damage: Damage) {
        self.release_held();
        self.held = Some(Held {
            damage,
            expected: self.expected,
        });
    }

    /// The next sequence number after a held damage is known: the records it lost follow.
    fn resolve_held(&mut self, next: u64) {
        if let Some(held) = &mut self.held
            && let Some(expected) = held.expected
        {
            held.damage.records_lost = Some(next.saturating_sub(expected));
        }
        self.release_held();
    }

    fn release_held(&mut self) {
        if let Some(held) = self.held.take() {
            self.ready.push_back(Event::Damage(held.damage));
        }
    }

    /// Abandons segment `number` (damaged): the next record is in a later one.
    fn skip_past(&mut self, number: u64) {
        self.current = None;
        self.skip_to = None;
        self.next_segment = number + 1;
        self.position = Position {
            segment: number + 1,
            offset: 0,
        };
    }

    /// The current segment ended cleanly.
    fn finish_segment(&mut self) {
        if let Some(segment) = self.current.take() {
            if let Some(skip) = self.skip_to.take()
                && skip.segment == segment.number
                && skip.offset > segment.offset
            {
                self.report(Damage {
                    segment: segment.number,
                    offset: segment.offset,
                    reason: format!(
                        "the segment ends at offset {}, before the reader's position {skip}",
                        segment.offset
                    ),
                    records_lost: None,
                });
            }
            self.next_segment = segment.number + 1;
        }
    }

    /// Opens the next segment there is and reads its header.
    fn open_next(&mut self, committed: Option<Position>) -> Result<Step> {
        let waiting = match committed {
            Some(c) => Step::Wait(c),
            None => Step::End,
        };
        let wanted = self.next_segment;
        if wanted == u64::MAX || committed.is_some_and(|c| wanted > c.segment) {
            return Ok(waiting);
        }
        // The wanted segment, or the oldest after it: it may be deleted (retention) between
        // listing and opening, so look again until one opens.
        let mut number = wanted;
        let file = loop {
            let path = segment_path(&self.directory, number);
            match File::open(&path) {
                Ok(file) => break file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    let later = list_segments(&self.directory)?
                        .into_iter()
                        .map(|s| s.segment)
                        .find(|&s| s > number && committed.is_none_or(|c| s <= c.segment));
                    match later {
                        Some(later) => number = later,
                        None => return Ok(waiting),
                    }
                }
                Err(error) => return Err(Error::io("opening", &path, error)),
            }
        };
        if number > wanted && self.opened_any {
            self.report(Damage::missing(wanted, number));
        }
        self.opened_any = true;
        self.segments_read += 1;
        self.last_segment = Some(number);
        self.decoder.start_segment(&mut self.spare);
        if self.skip_to.is_some_and(|skip| skip.segment != number) {
            // The segment of the position opened at is gone: its records with it.
            self.skip_to = None;
        }
        let newest = committed.is_none() && !self.newer_segment_exists(number)?;
        let mut segment = Segment {
            number,
            file,
            buffer: Vec::new(),
            head: 0,
            offset: 0,
            record_bytes_max: format::RECORD_BYTES_MAX,
            newest,
        };
        let limit = committed.filter(|c| c.segment == number).map(|c| c.offset);
        let available = segment
            .fill(format::SEGMENT_HEADER_BYTES as usize, limit)
            .map_err(|e| Error::io("reading", &segment_path(&self.directory, number), e))?;
        let bytes = segment.bytes();
        let header = match available as u64 >= format::segment_header_length(bytes) {
            true => format::decode_segment_header(bytes).and_then(|header| {
                match header.segment == number {
                    true => Ok(header),
                    false => Err(Error::SegmentHeader(
                        "segment number differs from the file name",
                    )),
                }
            }),
            // Offline, a newest segment shorter than its header was being created during a
            // crash: a torn tail.
            false if newest => {
                self.torn_tail = Some((
                    Position {
                        segment: number,
                        offset: 0,
                    },
                    available as u64,
                ));
                self.next_segment = u64::MAX;
                return Ok(Step::End);
            }
            false => Err(Error::SegmentHeader("shorter than a header")),
        };
        match header {
            Ok(header) => {
                self.start_segment(segment, header);
            }
            Err(error) => {
                self.report(Damage {
                    segment: number,
                    offset: 0,
                    reason: error.to_string(),
                    records_lost: None,
                });
                self.skip_past(number);
            }
        }
        Ok(Step::Progress)
    }

    fn start_segment(&mut self, mut segment: Segment, header: SegmentHeader) {
        segment.consume(header.bytes() as usize);
        segment.record_bytes_max = header.record_bytes_max();
        if let Some(first) = header.first_sequence {
            self.resolve_held(first);
            self.expected = Some(first);
            self.next_sequence = self.next_sequence.max(first);
        }
        self.position = Position {
            segment: segment.number,
            offset: segment.offset,
        };
        if self
            .skip_to
            .is_some_and(|skip| skip.offset <= segment.offset)
        {
            self.skip_to = None;
        }
        self.current = Some(segment);
    }

    /// Whether a segment numbered above `number` exists (then `number` is complete).
    fn newer_segment_exists(&self, number: u64) -> Result<bool> {
        if segment_path(&self.directory, number + 1).exists() {
            return Ok(true);
        }
        Ok(list_segments(&self.directory)?
            .iter()
            .any(|s| s.segment > number))
    }
}

// A forwarder reads on a thread of its own.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<LogReader>();
};

fn segment_path(directory: &Path, segment: u64) -> PathBuf {
    directory.join(segment_file_name(segment))
}

/// Looks for valid records in `bytes` from `start` on, byte by byte, and returns the highest
/// sequence number among them. A cheap check (record kind byte) comes before the checksum,
/// so the scan stays linear in practice.
fn last_valid_sequence_after(bytes: &[u8], start: usize, length_max: u32) -> Option<u64> {
    let mut highest = None;
    let mut offset = start;
    while offset + format::RECORD_HEADER_BYTES as usize + 9 <= bytes.len() {
        let rest = &bytes[offset..];
        if matches!(rest.get(format::RECORD_HEADER_BYTES as usize), Some(1 | 2))
            && let Frame::Record(payload) = format::read_frame(rest, length_max)
            && let Some(Ok(sequence)) = payload.get(1..9).map(<[u8; 8]>::try_from)
        {
            highest = Some(u64::from_le_bytes(sequence));
            offset += format::RECORD_HEADER_BYTES as usize + payload.len();
            continue;
        }
        offset += 1;
    }
    highest
}
