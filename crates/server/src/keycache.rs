//! The line-key cache: a line's series key as sent (measurement and tags, the bytes before its
//! first space) → the names ingest decoded from it (cluster, host, levels, metric).
//!
//! An HPC collector sends the same few hundred series keys per node every interval, and
//! parsing and checking them again for every line was about 45 % of the server's CPU on the
//! shared workload (issue 10). Like VictoriaMetrics' raw-name → TSID cache and Prometheus'
//! series-ref cache, a line whose key was decoded before skips the tag scan, the tag rules
//! and the name checks: see [`crate::ingest::LineDecoder`] for which lines may use it.
//!
//! Validity: decoding a key is a function of its bytes, the line limits (fixed per cache, see
//! [`KeyCache::limits`]) and the request's default cluster. The latter is kept out of the
//! key: an entry records only whether its cluster came from a `cluster` tag, and a key
//! without one takes the default cluster of the request that reads it (which must be a
//! valid name, or the line takes the full path and its error). Only keys of lines that passed
//! every check are inserted.
//!
//! Layout: one table of buckets of [`WAYS`] slots (one cache line each) over records appended
//! in insertion order, with the keys and names back to back in one text. Collectors send
//! their keys in the same order every interval, and a decoder inserts the new keys of a
//! chunk together, so the record after the last hit is usually the next line's: a decoder
//! checks it first ([`KeyCacheReader::find`]'s hint) and reads records and text
//! sequentially, touching the table only when the guess fails. (Two earlier versions looked
//! every line up by hash, one with a 104-byte slot and allocations per entry, one sharded
//! with records per shard: a cache and TLB miss or two per line made ingest 1.6× and 1.5×
//! slower than no cache at all, on a workload whose 87,000 keys do not stay in cache between
//! intervals.)
//!
//! Bounds: at most [`KEY_CACHE_ENTRIES`] entries and [`KEY_CACHE_BYTES_MAX`] bytes of text. A
//! cache at either budget is emptied before the next insert (VictoriaMetrics resets its
//! caches by generation likewise), so churn through high-cardinality keys costs bounded
//! memory and work, and the cache refills with what is current. A key whose bucket and the
//! next are full is not cached.
//!
//! Hashing: the workspace's Fx hash, seeded per process. Fx is not a keyed hash in the
//! cryptographic sense, but a lookup compares at most 2 × [`WAYS`] slots whatever the keys, so
//! colliding keys cannot make a lookup slow; at worst they fill buckets and their lines (or
//! others' of the same buckets) take the full path, as without a cache. The per-process seed
//! keeps such collisions from being precomputed.
//!
//! Concurrency: one `RwLock`, read-mostly. A decoder holds it shared for a whole chunk of
//! lines (one lock operation per chunk, not per line, so concurrent requests do not bounce
//! its cache line between cores) and inserts the chunk's new keys under one exclusive lock
//! afterwards. Hits and misses are counted by each decoder and added here once per chunk.

use parking_lot::{RwLock, RwLockReadGuard};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use strata_store::{FxHasher, same_bytes};

/// Series keys the cache holds. The shared workload sends 340 keys per node: this holds the
/// keys of ~770 nodes.
pub const KEY_CACHE_ENTRIES: usize = 1 << 18;

/// Bytes of keys and names the cache holds (about 110 per entry on the shared workload, so
/// the entries run out first; this bounds what longer keys can take). The table and the
/// per-entry records add 48 bytes per entry at most.
pub const KEY_CACHE_BYTES_MAX: usize = 32 << 20;

/// Longest series key cached; longer ones always take the full path. ClusterCockpit keys are
/// under 100 bytes.
pub const KEY_BYTES_MAX: usize = 512;

/// Slots of a bucket (one cache line); a lookup compares at most two buckets.
pub const WAYS: usize = 8;

/// Buckets of a full cache: twice the entries, so that buckets are half full on average.
const BUCKETS_MAX: usize = 2 * KEY_CACHE_ENTRIES / WAYS;
const _: () = assert!(BUCKETS_MAX.is_power_of_two());

/// Buckets of a table's first allocation (16 KiB). The table doubles whenever its entries
/// would fill more than half its slots, up to [`BUCKETS_MAX`]: allocated whole, a full-size
/// table was 4 MiB of resident memory for the 21,760 keys of 64 nodes (0.13 bytes per sample
/// of a day), touched all over by their hashes.
const BUCKETS_MIN: usize = 256;
const _: () = assert!(BUCKETS_MIN.is_power_of_two() && BUCKETS_MIN <= BUCKETS_MAX);
// Positions in the text are `u32`s.
const _: () = assert!(KEY_CACHE_BYTES_MAX < u32::MAX as usize);

/// The names decoded from one series key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyNames<'a> {
    /// `None`: the key has no `cluster` tag, so the cluster is the request's default.
    pub cluster: Option<&'a str>,
    pub host: &'a str,
    /// The levels as the batch names them (kind and id concatenated); empty when absent.
    pub levels: [&'a str; 2],
    pub metric: &'a str,
}

/// Where an entry's key and names are in the text: the key, then cluster, host, the two
/// levels and the metric, back to back.
#[derive(Debug, Clone, Copy)]
struct Record {
    hash: u64,
    start: u32,
    key_len: u16,
    /// Lengths of cluster, host, levels and metric.
    lens: [u16; 5],
    /// The cluster is the request's default (its length is 0).
    default_cluster: bool,
}

/// A bucket of the table: each slot is 0 (empty) or `tag << 32 | (record index + 1)`.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Bucket([u64; WAYS]);

#[derive(Debug, Default)]
struct Table {
    buckets: Vec<Bucket>,
    records: Vec<Record>,
    text: String,
}

impl Table {
    /// Whether record `index` holds `key`.
    #[inline]
    fn holds(&self, index: usize, key: &[u8]) -> bool {
        let Some(record) = self.records.get(index) else {
            return false;
        };
        let start = record.start as usize;
        let stored = self
            .text
            .as_bytes()
            .get(start..start + usize::from(record.key_len));
        stored.is_some_and(|stored| same_bytes(stored, key))
    }

    /// The record index of `key` (whose hash is `hash`), if cached.
    #[inline]
    fn find(&self, key: &[u8], hash: u64) -> Option<usize> {
        let tag = tag_of(hash);
        for bucket in buckets_of(hash, self.buckets.len()) {
            let bucket = self.buckets.get(bucket)?;
            let found = bucket.0.iter().find_map(|&slot| {
                if slot >> 32 != tag || slot == 0 {
                    return None;
                }
                let index = (slot as u32 as usize).checked_sub(1)?;
                let same = self.records.get(index)?.hash == hash && self.holds(index, key);
                same.then_some(index)
            });
            // A key goes to the second bucket only when the first is full.
            if found.is_some() || bucket.0.contains(&0) {
                return found;
            }
        }
        None
    }

    /// The names of record `index`.
    #[inline]
    fn names(&self, index: usize) -> Option<KeyNames<'_>> {
        let record = self.records.get(index)?;
        let mut at = record.start as usize + usize::from(record.key_len);
        // NOTE: not `lens.map(…)`, which compiled to a call per name (2.8 % of the server's
        // CPU on the shared workload).
        let mut next = |len: u16| {
            let name = self.text.get(at..at + usize::from(len)).unwrap_or_default();
            at += usize::from(len);
            name
        };
        let [c, h, l0, l1, m] = record.lens;
        let (cluster, host, first, second, metric) =
            (next(c), next(h), next(l0), next(l1), next(m));
        Some(KeyNames {
            cluster: (!record.default_cluster).then_some(cluster),
            host,
            levels: [first, second],
            metric,
        })
    }

    fn clear(&mut self) {
        self.buckets
            .iter_mut()
            .for_each(|bucket| *bucket = Bucket::default());
        self.records.clear();
        self.text.clear();
    }

    /// Heap bytes held.
    fn bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
            + self.records.capacity() * std::mem::size_of::<Record>()
            + self.text.capacity()
    }

    /// Adds `key` → `names` (hash `hash`); see [`KeyCache::insert`].
    fn insert(&mut self, key: &[u8], hash: u64, names: KeyNames<'_>) {
        let lens = [
            names.cluster.unwrap_or_default(),
            names.host,
            names.levels[0],
            names.levels[1],
            names.metric,
        ]
        .map(|name| u16::try_from(name.len()));
        let (Ok(key_len), [Ok(c), Ok(h), Ok(l0), Ok(l1), Ok(m)]) = (u16::try_from(key.len()), lens)
        else {
            return;
        };
        // A cached key was accepted by the parser, so it is UTF-8.
        let Ok(key_text) = std::str::from_utf8(key) else {
            return;
        };
        // A `\` may escape the space that ended the key (it is then not the whole series
        // key); `"` is refused likewise, to keep the cached keys plain.
        if key.len() > KEY_BYTES_MAX
            || memchr::memchr2(b'\\', b'"', key).is_some()
            || self.find(key, hash).is_some()
        {
            return;
        }
        let bytes = key.len()
            + [c, h, l0, l1, m]
                .iter()
                .map(|&len| usize::from(len))
                .sum::<usize>();
        if self.records.len() >= KEY_CACHE_ENTRIES || self.text.len() + bytes > KEY_CACHE_BYTES_MAX
        {
            self.clear();
        }
        if self.buckets.is_empty() {
            // Allocated on first use, so that a server without writes keeps no table.
            self.buckets = vec![Bucket::default(); BUCKETS_MIN];
        }
        if (self.records.len() + 1) * 2 > self.buckets.len() * WAYS
            && self.buckets.len() < BUCKETS_MAX
        {
            self.grow();
        }
        // Grown by doubling, but never past the budget (amortized growth could overshoot it
        // by almost twice).
        let needed = self.text.len() + bytes;
        if needed > self.text.capacity() {
            let capacity = (self.text.capacity() * 2)
                .min(KEY_CACHE_BYTES_MAX)
                .max(needed);
            let additional = capacity - self.text.len();
            self.text.reserve_exact(additional);
        }
        let index = self.records.len();
        let Ok(start) = u32::try_from(self.text.len()) else {
            return;
        };
        // A key whose buckets are full grows the table, until it is at its largest.
        while !self.place(index, hash) {
            if self.buckets.len() >= BUCKETS_MAX {
                return;
            }
            self.grow();
        }
        self.records.push(Record {
            hash,
            start,
            key_len,
            lens: [c, h, l0, l1, m],
            default_cluster: names.cluster.is_none(),
        });
        for text in [
            key_text,
            names.cluster.unwrap_or_default(),
            names.host,
            names.levels[0],
            names.levels[1],
            names.metric,
        ] {
            self.text.push_str(text);
        }
    }
}

impl Table {
    /// Puts record `index` (of `hash`) in a free slot of its buckets; `false` when both are
    /// full (the key is then not cached).
    fn place(&mut self, index: usize, hash: u64) -> bool {
        let [first, second] = buckets_of(hash, self.buckets.len());
        let has_room = |bucket: &Bucket| bucket.0.contains(&0);
        let bucket = if self.buckets.get(first).is_some_and(has_room) {
            first
        } else {
            second
        };
        let Some(slot) = self
            .buckets
            .get_mut(bucket)
            .and_then(|bucket| bucket.0.iter_mut().find(|slot| **slot == 0))
        else {
            return false;
        };
        *slot = tag_of(hash) << 32 | (index as u64 + 1);
        true
    }

    /// Doubles the buckets and places every record again, doubling once more while one does
    /// not fit (at the largest size, such a record stays uncached, as at insertion).
    fn grow(&mut self) {
        let mut buckets = self.buckets.len();
        loop {
            buckets = (buckets * 2).clamp(BUCKETS_MIN, BUCKETS_MAX);
            self.buckets = vec![Bucket::default(); buckets];
            let hashes: Vec<u64> = self.records.iter().map(|record| record.hash).collect();
            let placed = hashes
                .into_iter()
                .enumerate()
                .all(|(index, hash)| self.place(index, hash));
            if placed || buckets >= BUCKETS_MAX {
                return;
            }
        }
    }
}

/// The buckets a key with `hash` may be in among `buckets` (a power of two): the second only
/// if the first is full (one bucket overflows now and then at half load, a second almost
/// never). In a table not allocated yet, the indexes are out of range: nothing is found.
fn buckets_of(hash: u64, buckets: usize) -> [usize; 2] {
    let mask = buckets.wrapping_sub(1);
    let first = (hash >> 32) as usize & mask;
    [first, (first + 1) & mask]
}

/// The 32 bits a slot keeps of the hash, to skip most records of other keys unread.
fn tag_of(hash: u64) -> u64 {
    (hash ^ (hash >> 29)) & 0xFFFF_FFFF
}

/// Shared by all requests of a server; see the module documentation.
#[derive(Debug)]
pub struct KeyCache {
    table: RwLock<Table>,
    seed: u64,
    limits: strata_lineproto::Limits,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A snapshot of the cache's counters, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyCacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// Shared access to the cache for a run of lookups (the lock is held until it is dropped:
/// drop it before [`KeyCache::insert`]).
pub struct KeyCacheReader<'a> {
    cache: &'a KeyCache,
    table: RwLockReadGuard<'a, Table>,
}

impl KeyCacheReader<'_> {
    /// The names of `key`, and the index of its record, if cached. `hint` is the record
    /// thought to hold it (the one after the previous hit), checked before the table.
    #[inline]
    pub fn find(&self, key: &[u8], hint: usize) -> Option<(usize, KeyNames<'_>)> {
        let index = if self.table.holds(hint, key) {
            hint
        } else {
            self.table.find(key, self.cache.hash(key))?
        };
        Some((index, self.table.names(index)?))
    }
}

impl KeyCache {
    /// An empty cache for lines decoded under `limits`.
    pub fn new(limits: strata_lineproto::Limits) -> Self {
        Self {
            table: RwLock::default(),
            seed: std::collections::hash_map::RandomState::new().hash_one(0_u64),
            limits,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The line limits the cached keys were validated under: a decoder with other limits
    /// must not use the cache.
    pub fn limits(&self) -> &strata_lineproto::Limits {
        &self.limits
    }

    fn hash(&self, key: &[u8]) -> u64 {
        let mut hasher = FxHasher::default();
        hasher.write_u64(self.seed);
        hasher.write(key);
        // Fx mixes too little for a table indexed by some of its bits: on the shared
        // workload's keys 14 % of them met in full buckets. SplitMix64's finalizer spreads
        // every input bit over the whole word.
        let mut hash = hasher.finish();
        hash = (hash ^ (hash >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        hash = (hash ^ (hash >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        hash ^ (hash >> 31)
    }

    /// Shared access for lookups.
    pub fn read(&self) -> KeyCacheReader<'_> {
        KeyCacheReader {
            cache: self,
            table: self.table.read(),
        }
    }

    /// Caches each key → names of `entries`, in order, under one lock. A no-op for keys over
    /// [`KEY_BYTES_MAX`] or with a `\` or `"`, and for a key whose buckets are full (it keeps the full path, as
    /// without a cache). A cache at its entry or byte budget is emptied first.
    pub fn insert<'a>(&self, entries: impl IntoIterator<Item = (&'a [u8], KeyNames<'a>)>) {
        let mut table = self.table.write();
        for (key, names) in entries {
            table.insert(key, self.hash(key), names);
        }
    }

    /// Adds a decoder's counts of lines decoded from the cache and in full.
    pub fn count(&self, hits: u64, misses: u64) {
        if hits > 0 {
            self.hits.fetch_add(hits, Ordering::Relaxed);
        }
        if misses > 0 {
            self.misses.fetch_add(misses, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> KeyCacheStats {
        let table = self.table.read();
        KeyCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: table.records.len() as u64,
            bytes: table.bytes() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(host: &str) -> KeyNames<'_> {
        KeyNames {
            cluster: None,
            host,
            levels: ["hwthread1", ""],
            metric: "m",
        }
    }

    #[test]
    fn the_table_grows_with_its_entries_and_keeps_every_key() {
        // Goal: a few keys take a small table (a full-size one was 4 MiB resident for 64
        // nodes' keys); as keys arrive it doubles, and every key inserted before a doubling
        // is still found after it.
        let cache = KeyCache::new(Default::default());
        let key = |i: usize| format!("cpu_user,hostname=n{i:05},type=node");
        let table_bytes = |cache: &KeyCache| cache.table.read().buckets.len() * 64;
        for i in 0..100 {
            cache.insert([(key(i).as_bytes(), names(&key(i)))]);
        }
        assert_eq!(table_bytes(&cache), BUCKETS_MIN * 64);
        for i in 100..20_000 {
            cache.insert([(key(i).as_bytes(), names(&key(i)))]);
        }
        let buckets = cache.table.read().buckets.len();
        assert!(
            (2 * 20_000 / WAYS..=8 * 20_000 / WAYS).contains(&buckets),
            "{buckets} buckets for 20,000 keys"
        );
        let reader = cache.read();
        let missing = (0..20_000)
            .filter(|&i| reader.find(key(i).as_bytes(), usize::MAX).is_none())
            .count();
        assert_eq!(missing, 0, "keys not found after the table grew");
    }

    #[test]
    fn a_full_cache_stays_within_its_budget_and_answers_correctly() {
        // Goal: inserting far more keys than fit (short ones, then long ones that exhaust the
        // byte budget first) keeps entries and bytes within the bounds, and every key found
        // maps to its own names.
        let cache = KeyCache::new(Default::default());
        let key = |i: usize, pad: usize| format!("m,host=h{i}{}", "x".repeat(pad));
        let overhead = KEY_CACHE_ENTRIES * (2 * 8 + std::mem::size_of::<Record>());
        for (count, pad) in [(KEY_CACHE_ENTRIES * 3, 0), (KEY_CACHE_ENTRIES, 400)] {
            for i in 0..count {
                let key = key(i, pad);
                cache.insert([(key.as_bytes(), names(&key))]);
            }
            let stats = cache.stats();
            assert!(stats.entries as usize <= KEY_CACHE_ENTRIES, "{stats:?}");
            assert!(
                stats.bytes as usize <= KEY_CACHE_BYTES_MAX + overhead,
                "{stats:?}"
            );
            let mut found = 0;
            for i in (0..count).step_by(97) {
                let key = key(i, pad);
                if let Some((_, n)) = cache.read().find(key.as_bytes(), 0) {
                    let host = n.host.to_owned();
                    assert_eq!(host, key);
                    found += 1;
                }
            }
            assert!(found > 0, "recent keys are found");
            let last = key(count - 1, pad);
            let reader = cache.read();
            let cached = reader.find(last.as_bytes(), 0).map(|(_, n)| {
                let levels = n.levels.map(str::to_owned);
                (
                    n.cluster.is_none(),
                    n.host.to_owned(),
                    levels,
                    n.metric.to_owned(),
                )
            });
            drop(reader);
            assert_eq!(
                cached,
                Some((
                    true,
                    last.clone(),
                    ["hwthread1".into(), "".into()],
                    "m".into()
                )),
                "the key inserted last is there"
            );
        }
    }

    #[test]
    fn every_key_of_a_collector_workload_is_cached() {
        // Goal: keys that differ only in a host number and a type-id spread over the buckets:
        // with the bare Fx hash, 14 % of the shared workload's keys met in full buckets and
        // were never cached.
        let cache = KeyCache::new(Default::default());
        let mut keys = Vec::new();
        for host in 0..256 {
            for metric in ["cpu_user", "cpu_system", "cpu_iowait", "ipc"] {
                for id in 0..72 {
                    keys.push(format!(
                        "{metric},cluster=hpc1,hostname=n{host:04},type=hwthread,type-id={id}"
                    ));
                }
            }
            for metric in 0..52 {
                keys.push(format!(
                    "m{metric},cluster=hpc1,hostname=n{host:04},type=node"
                ));
            }
        }
        cache.insert(keys.iter().map(|key| (key.as_bytes(), names("h"))));
        assert_eq!(cache.stats().entries, keys.len() as u64);
    }

    #[test]
    fn a_key_is_cached_once_with_its_names_and_long_or_escaped_keys_are_not_cached() {
        let cache = KeyCache::new(Default::default());
        let tagged = KeyNames {
            cluster: Some("c"),
            ..names("a")
        };
        cache.insert([(&b"k"[..], tagged), (b"k", tagged)]);
        cache.insert([(&b"j"[..], names("b"))]);
        assert_eq!(cache.stats().entries, 2);
        let got = |key: &[u8]| {
            let reader = cache.read();
            let found = reader.find(key, 0);
            found.map(|(_, n)| format!("{:?}/{}/{:?}/{}", n.cluster, n.host, n.levels, n.metric))
        };
        assert_eq!(
            got(b"k").as_deref(),
            Some("Some(\"c\")/a/[\"hwthread1\", \"\"]/m")
        );
        assert_eq!(got(b"j").as_deref(), Some("None/b/[\"hwthread1\", \"\"]/m"));
        assert_eq!(got(b"x"), None);
        let long = vec![b'k'; KEY_BYTES_MAX + 1];
        cache.insert([(&long[..], names("c"))]);
        assert!(cache.read().find(&long, 0).is_none());
        for escaped in [&b"m,h=a\\"[..], b"m,h=\"a\""] {
            cache.insert([(escaped, names("d"))]);
            assert!(cache.read().find(escaped, 0).is_none());
        }
        assert_eq!(cache.stats().entries, 2);
        cache.count(3, 2);
        assert_eq!((cache.stats().hits, cache.stats().misses), (3, 2));
    }
}
