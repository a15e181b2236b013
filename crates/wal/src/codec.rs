//! Batch records: [`WriteBatch`] ↔ payload bytes, with the series table of a segment.

use crate::format::{self, Cursor, Kind};
use crate::{Error, Free, Result};
use hashbrown::HashTable;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use strata_store::{
    FxBuildHasher as FxBuild, LevelName, SampleNames, SeriesKey, WriteBatch, same_bytes,
    same_text as same,
};

/// Most bytes one sample takes in a payload: a ref delta (≤ 6 bytes for a 32-bit ref, zigzag and
/// shifted), a timestamp delta (≤ 10) and the value (4).
const SAMPLE_BYTES_MAX: usize = 20;

/// The refs a writer has handed out in the current segment.
///
/// Two levels: hosts, then the series of a host. Samples of one host arrive together, so the
/// host is looked up once per run of samples, and a host's table (a few hundred series) stays
/// in cache while its samples are encoded. One flat table of every series costs a cache miss
/// or two per sample instead (measured: a third of the server's CPU at 1.7 M samples/s).
///
/// A collector sends a host's series in the same order every interval, so each host also
/// remembers the order of its last run: the series at the same position is tried first, with
/// a few short comparisons and no hashing.
///
/// Each series key is held once, in [`Keys`]; a host's table holds only refs into it (a
/// boxed key in the map and another by ref cost ~130 bytes per series, 2.6 MB for the 21,760
/// series of 64 nodes).
#[derive(Default)]
pub(crate) struct SeriesTable {
    host_index: HashMap<Box<[u8]>, usize, FxBuild>,
    hosts: Vec<HostRefs>,
    keys: Keys,
    /// Scratch: the key being looked up.
    key: Vec<u8>,
    /// Scratch: refs of the batch being encoded.
    batch_refs: Vec<u32>,
    /// Scratch: definitions of the batch being encoded.
    definitions: Vec<u8>,
    /// Heap bytes of the refs, estimated as entries are added: the writer starts a new segment
    /// (which forgets them) once this passes its bound.
    bytes: usize,
}

/// Estimated heap bytes of one entry besides its key bytes: a host's boxed key and map slot
/// (hosts), or a series' table slot with its control byte and load factor (~10), its end in
/// [`Keys`] and its ref in the host's order (8), with room for the vectors' growth.
const ENTRY_OVERHEAD_BYTES: usize = 32;

/// The key (levels and metric, as written by `put_str`) of every ref, back to back.
#[derive(Default)]
struct Keys {
    text: Vec<u8>,
    /// Where each ref's key ends in `text`.
    ends: Vec<u32>,
}

impl Keys {
    fn get(&self, series: u32) -> Option<&[u8]> {
        let index = series as usize;
        let end = *self.ends.get(index)? as usize;
        let start = match index.checked_sub(1) {
            Some(previous) => *self.ends.get(previous)? as usize,
            None => 0,
        };
        self.text.get(start..end)
    }

    /// Adds a key and returns its ref. Refs and ends fit `u32`: the writer starts a new
    /// segment once the table's bytes pass a bound far below (`SERIES_TABLE_BYTES_MAX`).
    fn push(&mut self, key: &[u8]) -> u32 {
        let series = self.ends.len() as u32;
        self.text.extend_from_slice(key);
        self.ends.push(self.text.len() as u32);
        series
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }
}

fn hash_key(key: &[u8]) -> u64 {
    let mut hasher = FxBuild::default().build_hasher();
    hasher.write(key);
    hasher.finish()
}

#[derive(Default)]
struct HostRefs {
    /// The host's refs, found by the hash of their key in [`Keys`].
    refs: HashTable<u32>,
    /// Refs in the order of the host's last run of samples.
    order: Vec<u32>,
}

impl HostRefs {
    fn find(&self, keys: &Keys, key: &[u8]) -> Option<u32> {
        let found = self.refs.find(hash_key(key), |&series| {
            keys.get(series)
                .is_some_and(|stored| same_bytes(stored, key))
        });
        found.copied()
    }

    fn insert(&mut self, keys: &Keys, series: u32, key: &[u8]) {
        self.refs.insert_unique(hash_key(key), series, |&series| {
            hash_key(keys.get(series).unwrap_or_default())
        });
    }
}

/// Whether `key` (as written by `put_str` for each part) holds exactly `parts`.
fn key_matches(key: &[u8], parts: [&str; 3]) -> bool {
    let mut rest = key;
    for part in parts {
        // Names are at most a few hundred bytes: one- or two-byte lengths.
        let (length, skip) = match rest {
            [byte, ..] if *byte < 0x80 => (usize::from(*byte), 1),
            [low, high, ..] if *high < 0x80 => {
                (usize::from(low & 0x7f) | usize::from(*high) << 7, 2)
            }
            _ => return false,
        };
        match rest.get(skip..skip + length) {
            Some(bytes) if same_bytes(bytes, part.as_bytes()) => rest = &rest[skip + length..],
            _ => return false,
        }
    }
    rest.is_empty()
}

impl SeriesTable {
    /// Forgets every ref: a new segment defines its series again.
    pub(crate) fn clear(&mut self) {
        self.host_index.clear();
        self.hosts.clear();
        self.keys.clear();
        self.bytes = 0;
    }

    /// Estimated heap bytes held for the refs of the current segment.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends the payload of a batch record to `out`, holding the samples of `batch` from
    /// `from` on until the payload would pass `payload_bytes_target` (at least one sample),
    /// and returns where the next record must start. A huge request becomes several records
    /// instead of one that no reader could hold.
    pub(crate) fn encode(
        &mut self,
        batch: &WriteBatch,
        from: usize,
        sequence: u64,
        payload_bytes_target: usize,
        out: &mut Vec<u8>,
    ) -> usize {
        self.batch_refs.clear();
        self.definitions.clear();
        let mut defined = 0u64;
        // The host of the previous sample: its names in the batch, its key and its index.
        let mut current: Option<(SampleNames, &str, &str, usize)> = None;
        let mut position = 0usize;
        for (names, sample) in batch.iter_named(from) {
            let taken = self.batch_refs.len();
            if taken > 0
                && self.definitions.len() + (taken + 1) * SAMPLE_BYTES_MAX > payload_bytes_target
            {
                break;
            }
            let key = &sample.key;
            let host = match current {
                Some((previous, cluster, host, index))
                    if previous.same_host(&names)
                        || (same(cluster, key.cluster) && same(host, key.host)) =>
                {
                    index
                }
                _ => {
                    self.key.clear();
                    format::put_str(&mut self.key, key.cluster);
                    format::put_str(&mut self.key, key.host);
                    let index = match self.host_index.get(self.key.as_slice()) {
                        Some(&index) => index,
                        None => {
                            self.hosts.push(HostRefs::default());
                            self.host_index
                                .insert(self.key.as_slice().into(), self.hosts.len() - 1);
                            self.bytes += self.key.len() + ENTRY_OVERHEAD_BYTES;
                            self.hosts.len() - 1
                        }
                    };
                    current = Some((names, key.cluster, key.host, index));
                    position = 0;
                    index
                }
            };
            let parts = [key.levels[0], key.levels[1], key.metric];
            let table = &mut self.hosts[host];
            let predicted = table
                .order
                .get(position)
                .copied()
                .filter(|&r| self.keys.get(r).is_some_and(|k| key_matches(k, parts)));
            let series = match predicted {
                Some(series) => series,
                None => {
                    self.key.clear();
                    for part in parts {
                        format::put_str(&mut self.key, part);
                    }
                    let series = match table.find(&self.keys, &self.key) {
                        Some(series) => series,
                        None => {
                            let series = self.keys.push(&self.key);
                            table.insert(&self.keys, series, &self.key);
                            self.bytes += self.key.len() + ENTRY_OVERHEAD_BYTES;
                            format::put_str(&mut self.definitions, key.cluster);
                            format::put_str(&mut self.definitions, key.host);
                            self.definitions.extend_from_slice(&self.key);
                            defined += 1;
                            series
                        }
                    };
                    match table.order.get_mut(position) {
                        Some(slot) => *slot = series,
                        None => table.order.push(series),
                    }
                    series
                }
            };
            position += 1;
            self.batch_refs.push(series);
        }
        format::put_batch_start(out, sequence);
        format::put_varint(out, defined);
        out.extend_from_slice(&self.definitions);
        format::put_varint(out, self.batch_refs.len() as u64);
        let (mut previous_ref, mut previous_timestamp) = (0i64, 0i64);
        for ((timestamp_s, value), &series) in batch.times_values(from).zip(&self.batch_refs) {
            let delta = format::zigzag(i64::from(series) - previous_ref);
            let changed = timestamp_s != previous_timestamp;
            format::put_varint(out, delta << 1 | u64::from(changed));
            if changed {
                format::put_varint(out, format::zigzag(timestamp_s - previous_timestamp));
            }
            out.extend_from_slice(&value.to_le_bytes());
            previous_ref = i64::from(series);
            previous_timestamp = timestamp_s;
        }
        from + self.batch_refs.len()
    }
}

/// How a [`LogReader`](crate::LogReader) turns batch records into something owned: by name
/// ([`Names`], a [`WriteBatch`] as it was written) or by series reference ([`Refs`]).
pub trait Decode: Default + Send {
    type Batch: Default + Send + std::fmt::Debug;

    /// A new segment starts: its refs are numbered from 0 again.
    fn start_segment(&mut self, spare: &mut Self::Batch);

    /// Decodes a payload: a batch's samples into `batch` (appending), or a free. Returns the
    /// sequence number, and the free if it was one. On error nothing of the record's samples
    /// is kept in `batch` (the segment is abandoned after a malformed record anyway).
    fn decode_record(
        &mut self,
        payload: &[u8],
        batch: &mut Self::Batch,
    ) -> Result<(u64, Option<Free>)>;

    /// The record decoded into `batch` is before the reader's start: keep only what later
    /// records need.
    fn skip(batch: &mut Self::Batch);

    /// A handed-out batch comes back to be decoded into again.
    fn recycle(batch: &mut Self::Batch);
}

/// Decoding into a [`WriteBatch`]: the names of every series defined so far in the segment
/// being read are kept.
#[derive(Debug, Default)]
pub struct Names {
    series: Vec<[String; 5]>,
}

impl Decode for Names {
    type Batch = WriteBatch;

    fn start_segment(&mut self, _spare: &mut WriteBatch) {
        self.series.clear();
    }

    fn decode_record(
        &mut self,
        payload: &[u8],
        batch: &mut WriteBatch,
    ) -> Result<(u64, Option<Free>)> {
        decode_record_with(payload, |cursor| self.decode_batch(cursor, batch))
    }

    fn skip(batch: &mut WriteBatch) {
        batch.clear();
    }

    fn recycle(batch: &mut WriteBatch) {
        batch.clear();
    }
}

impl Names {
    /// Decodes a batch payload into `batch` and returns its sequence number.
    #[cfg(test)]
    pub(crate) fn decode(&mut self, payload: &[u8], batch: &mut WriteBatch) -> Result<u64> {
        match self.decode_record(payload, batch)? {
            (sequence, None) => Ok(sequence),
            (_, Some(_)) => Err(Error::Malformed("a free record, not a batch")),
        }
    }

    fn decode_batch(&mut self, cursor: &mut Cursor<'_>, batch: &mut WriteBatch) -> Result<()> {
        for_each_definition(cursor, |parts| {
            self.series.push(parts.map(str::to_owned));
            Ok(())
        })?;
        let rollback = batch.mark();
        let result = for_each_sample(cursor, |series, timestamp_s, value| {
            let parts = usize::try_from(series)
                .ok()
                .and_then(|i| self.series.get(i))
                .ok_or(Error::Malformed("sample refers to an undefined series"))?;
            batch.push(
                &parts[0],
                &parts[1],
                [LevelName::new(&parts[2], ""), LevelName::new(&parts[3], "")],
                &parts[4],
                timestamp_s,
                value,
            );
            Ok(())
        });
        if result.is_err() {
            batch.truncate(rollback);
        }
        result
    }
}

/// Decoding into a [`RefBatch`]: the reader keeps nothing per series (only how many are
/// defined), and no name is copied per sample. For a reader that resolves each series once
/// per segment and then works by ref: the forwarder.
#[derive(Debug, Default)]
pub struct Refs {
    defined: u64,
}

/// A batch record by series reference. Refs are numbers local to a segment
/// ([`Entry::start`](crate::Entry)'s segment): they start at 0 again in every segment.
#[derive(Debug, Default)]
pub struct RefBatch {
    /// Series defined in this record, in ref order. The first record handed out after a
    /// reader opened inside a segment also carries the definitions of the records before.
    pub defined: Vec<SeriesDefinition>,
    pub samples: Vec<RefSample>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    pub series: u32,
    pub timestamp_s: i64,
    pub value: f32,
}

/// A series' ref and its key, in one allocation.
#[derive(Debug, Clone)]
pub struct SeriesDefinition {
    pub series: u32,
    text: Box<str>,
    /// Where the first four parts end in `text`.
    ends: [u32; 4],
}

impl SeriesDefinition {
    pub fn new(series: u32, key: &SeriesKey<'_>) -> Self {
        let parts = [
            key.cluster,
            key.host,
            key.levels[0],
            key.levels[1],
            key.metric,
        ];
        let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; 4];
        for (index, part) in parts.iter().enumerate() {
            text.push_str(part);
            if let Some(end) = ends.get_mut(index) {
                // A payload is far below 4 GiB.
                *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
            }
        }
        Self {
            series,
            text: text.into(),
            ends,
        }
    }

    pub fn key(&self) -> SeriesKey<'_> {
        let [a, b, c, d] = self.ends.map(|end| end as usize);
        let text = &*self.text;
        let part = |from: usize, to: usize| text.get(from..to).unwrap_or("");
        SeriesKey {
            cluster: part(0, a),
            host: part(a, b),
            levels: [part(b, c), part(c, d)],
            metric: part(d, text.len()),
        }
    }
}

impl Decode for Refs {
    type Batch = RefBatch;

    fn start_segment(&mut self, spare: &mut RefBatch) {
        self.defined = 0;
        spare.defined.clear();
        spare.samples.clear();
    }

    fn decode_record(
        &mut self,
        payload: &[u8],
        batch: &mut RefBatch,
    ) -> Result<(u64, Option<Free>)> {
        decode_record_with(payload, |cursor| {
            let samples = batch.samples.len();
            let result = self.decode_batch(cursor, batch);
            if result.is_err() {
                batch.samples.truncate(samples);
            }
            result
        })
    }

    fn skip(batch: &mut RefBatch) {
        batch.samples.clear();
    }

    fn recycle(batch: &mut RefBatch) {
        // The first record after opening inside a segment carries every definition before
        // it: that room is not kept for the epoch.
        match batch.defined.capacity() > DEFINED_KEPT_MAX {
            true => batch.defined = Vec::new(),
            false => batch.defined.clear(),
        }
        batch.samples.clear();
    }
}

/// Room for definitions a recycled [`RefBatch`] keeps.
const DEFINED_KEPT_MAX: usize = 4096;

impl Refs {
    fn decode_batch(&mut self, cursor: &mut Cursor<'_>, batch: &mut RefBatch) -> Result<()> {
        for_each_definition(cursor, |parts| {
            let series = u32::try_from(self.defined)
                .map_err(|_| Error::Malformed("more than 2^32 series in a segment"))?;
            let key = SeriesKey {
                cluster: parts[0],
                host: parts[1],
                levels: [parts[2], parts[3]],
                metric: parts[4],
            };
            batch.defined.push(SeriesDefinition::new(series, &key));
            self.defined += 1;
            Ok(())
        })?;
        for_each_sample(cursor, |series, timestamp_s, value| {
            let series = u32::try_from(series)
                .ok()
                .filter(|&s| u64::from(s) < self.defined)
                .ok_or(Error::Malformed("sample refers to an undefined series"))?;
            batch.samples.push(RefSample {
                series,
                timestamp_s,
                value,
            });
            Ok(())
        })
    }
}

/// A record's sequence number, and its free if it is one; a batch payload is decoded by
/// `decode_batch`.
fn decode_record_with(
    payload: &[u8],
    decode_batch: impl FnOnce(&mut Cursor<'_>) -> Result<()>,
) -> Result<(u64, Option<Free>)> {
    let mut cursor = Cursor::new(payload);
    match format::read_record_start(&mut cursor)? {
        (Kind::Batch, sequence) => {
            decode_batch(&mut cursor)?;
            Ok((sequence, None))
        }
        (Kind::Free, sequence) => Ok((sequence, Some(format::read_free(&mut cursor)?))),
    }
}

/// The series definitions at the start of a batch payload: cluster, host, two levels, metric.
fn for_each_definition<'a>(
    cursor: &mut Cursor<'a>,
    mut define: impl FnMut([&'a str; 5]) -> Result<()>,
) -> Result<()> {
    // A definition is at least five one-byte lengths.
    for _ in 0..cursor.count(5)? {
        let mut parts = [""; 5];
        for part in &mut parts {
            *part = cursor.str()?;
        }
        define(parts)?;
    }
    Ok(())
}

/// The samples after the definitions: (ref, timestamp, value), each ref and timestamp a
/// delta from the previous sample's; then the payload must end.
fn for_each_sample(
    cursor: &mut Cursor<'_>,
    mut sample: impl FnMut(i64, i64, f32) -> Result<()>,
) -> Result<()> {
    let (mut previous_ref, mut previous_timestamp) = (0i64, 0i64);
    // A sample is at least a one-byte varint and a four-byte value.
    for _ in 0..cursor.count(5)? {
        let head = cursor.varint()?;
        let series = previous_ref
            .checked_add(format::unzigzag(head >> 1))
            .ok_or(Error::Malformed("series ref overflow"))?;
        if head & 1 == 1 {
            previous_timestamp = previous_timestamp
                .checked_add(format::unzigzag(cursor.varint()?))
                .ok_or(Error::Malformed("timestamp overflow"))?;
        }
        sample(series, previous_timestamp, cursor.f32()?)?;
        previous_ref = series;
    }
    match cursor.is_empty() {
        true => Ok(()),
        false => Err(Error::Malformed("bytes after the last sample")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_batch() -> WriteBatch {
        let mut batch = WriteBatch::new();
        for t in [1_700_000_000, 1_700_000_060] {
            batch.push("c", "h", [LevelName::NONE; 2], "load", t, 0.5);
            for id in ["0", "1", "2"] {
                let level = [LevelName::new("hwthread", id), LevelName::NONE];
                batch.push("c", "h", level, "cpu", t, f32::NAN);
            }
            let deep = [LevelName::new("socket", "0"), LevelName::new("net", "ib0")];
            batch.push("c", "h2", deep, "bw", t, -3.25);
        }
        batch
    }

    fn keys(batch: &WriteBatch) -> Vec<String> {
        batch
            .iter()
            .map(|s| format!("{:?}@{}={}", s.key, s.timestamp_s, s.value))
            .collect()
    }

    #[test]
    fn batches_round_trip_and_define_each_series_once_per_segment() {
        let mut table = SeriesTable::default();
        let mut definitions = Names::default();
        let batch = sample_batch();
        let mut first = Vec::new();
        table.encode(&batch, 0, 7, usize::MAX, &mut first);
        let mut second = Vec::new();
        table.encode(&batch, 0, 8, usize::MAX, &mut second);
        // The second record only refers to series defined by the first.
        assert!(
            second.len() < first.len() / 2,
            "{} vs {}",
            second.len(),
            first.len()
        );
        for (payload, sequence) in [(&first, 7), (&second, 8)] {
            let mut decoded = WriteBatch::new();
            assert_eq!(definitions.decode(payload, &mut decoded).unwrap(), sequence);
            assert_eq!(keys(&decoded), keys(&batch));
        }
    }

    #[test]
    fn a_steady_stream_costs_five_bytes_per_sample() {
        let mut table = SeriesTable::default();
        let mut batch = WriteBatch::new();
        for host in 0..16 {
            for id in 0..340 {
                let name = id.to_string();
                let level = [LevelName::new("hwthread", &name), LevelName::NONE];
                batch.push(
                    "hpc1",
                    &format!("n{host:04}"),
                    level,
                    "cpu_user",
                    1_700_000_000,
                    1.5,
                );
            }
        }
        let mut out = Vec::new();
        table.encode(&batch, 0, 1, usize::MAX, &mut out);
        out.clear();
        table.encode(&batch, 0, 2, usize::MAX, &mut out);
        let per_sample = out.len() as f64 / batch.len() as f64;
        assert!(per_sample < 5.01, "{per_sample} bytes per sample");
    }

    #[test]
    fn a_large_batch_is_cut_into_records_that_read_back_as_the_whole() {
        let mut table = SeriesTable::default();
        let mut definitions = Names::default();
        let mut batch = WriteBatch::new();
        for id in 0..5_000 {
            let name = format!("{id:0>200}");
            let level = [LevelName::new("accelerator", &name), LevelName::NONE];
            batch.push("c", "h", level, "power", 1_700_000_000, id as f32);
        }
        let target = 64 << 10;
        let (mut from, mut sequence, mut decoded) = (0, 0, WriteBatch::new());
        while from < batch.len() {
            let mut payload = Vec::new();
            from = table.encode(&batch, from, sequence, target, &mut payload);
            // The target may be passed by one series definition and the record head.
            assert!(payload.len() <= target + 1024, "{} bytes", payload.len());
            assert_eq!(
                definitions.decode(&payload, &mut decoded).unwrap(),
                sequence
            );
            sequence += 1;
        }
        assert!(sequence > 10, "{sequence} records");
        assert_eq!(keys(&decoded), keys(&batch));
    }

    #[test]
    fn hosts_named_by_other_spans_encode_as_by_shared_ones() {
        // Goal: the encoder tells hosts apart by the batch's name identity only as a shortcut:
        // a run of one host whose samples hold its names in different spans (a `retain` made
        // them neighbours) encodes byte for byte as the same run with shared names.
        let mut shared = WriteBatch::new();
        let mut separate = WriteBatch::new();
        let hw = |id| [LevelName::new("hwthread", id), LevelName::NONE];
        for (host, id, t) in [
            ("h1", "0", 1),
            ("h2", "9", 2),
            ("h1", "1", 3),
            ("h2", "8", 4),
        ] {
            separate.push("c", host, hw(id), "cpu", t, 1.5);
            if host == "h1" {
                shared.push("c", host, hw(id), "cpu", t, 1.5);
            }
        }
        separate.retain(|sample| sample.key.host == "h1");
        assert_eq!(keys(&shared), keys(&separate));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut table_a, mut table_b) = (SeriesTable::default(), SeriesTable::default());
        assert_eq!(table_a.encode(&shared, 0, 7, usize::MAX, &mut a), 2);
        assert_eq!(table_b.encode(&separate, 0, 7, usize::MAX, &mut b), 2);
        assert_eq!(a, b);
        // Once the host is known, its second run is predicted the same way too.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        table_a.encode(&shared, 0, 8, usize::MAX, &mut a);
        table_b.encode(&separate, 0, 8, usize::MAX, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn keys_match_exactly_their_parts() {
        let mut key = Vec::new();
        for part in ["hwthread1", "", "cpu"] {
            format::put_str(&mut key, part);
        }
        assert!(key_matches(&key, ["hwthread1", "", "cpu"]));
        assert!(!key_matches(&key, ["hwthread1", "", "cpu2"]));
        assert!(!key_matches(&key, ["hwthread", "1", "cpu"]));
        assert!(!key_matches(&key, ["hwthread1", "cpu", ""]));
        let long = "x".repeat(300);
        key.clear();
        for part in [long.as_str(), "a", "b"] {
            format::put_str(&mut key, part);
        }
        assert!(key_matches(&key, [long.as_str(), "a", "b"]));
    }

    #[test]
    fn a_changed_order_still_finds_every_series() {
        let mut table = SeriesTable::default();
        let mut definitions = Names::default();
        let mut forward = WriteBatch::new();
        let mut backward = WriteBatch::new();
        for id in 0..50 {
            let name = id.to_string();
            forward.push(
                "c",
                "h",
                [LevelName::new("hwthread", &name), LevelName::NONE],
                "cpu",
                1,
                id as f32,
            );
            let name = (49 - id).to_string();
            backward.push(
                "c",
                "h",
                [LevelName::new("hwthread", &name), LevelName::NONE],
                "cpu",
                2,
                (49 - id) as f32,
            );
        }
        for (batch, sequence) in [(&forward, 1), (&backward, 2), (&forward, 3)] {
            let mut payload = Vec::new();
            table.encode(batch, 0, sequence, usize::MAX, &mut payload);
            let mut decoded = WriteBatch::new();
            definitions.decode(&payload, &mut decoded).unwrap();
            assert_eq!(keys(&decoded), keys(batch));
        }
        // Only the first record defined series.
        assert_eq!(table.keys.len(), 50);
    }

    #[test]
    fn undefined_refs_and_garbage_are_errors_not_panics() {
        let mut table = SeriesTable::default();
        let mut payload = Vec::new();
        table.encode(&sample_batch(), 0, 1, usize::MAX, &mut payload);
        let mut fresh = Names::default();
        let mut second = Vec::new();
        table.encode(&sample_batch(), 0, 2, usize::MAX, &mut second);
        let mut batch = WriteBatch::new();
        assert!(fresh.decode(&second, &mut batch).is_err());
        assert!(batch.is_empty());
        for cut in 0..payload.len() {
            let mut definitions = Names::default();
            let mut batch = WriteBatch::new();
            assert!(
                definitions.decode(&payload[..cut], &mut batch).is_err(),
                "cut {cut}"
            );
            assert!(batch.is_empty());
        }
    }
}
