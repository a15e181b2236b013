//! Incremental snapshots (pack version 3): hosts as sealed blocks, each either written in the
//! pack or a reference to the older generation whose pack holds it.
//!
//! Every generation holds every host's complete *skeleton* — levels, series, buffers — so the
//! newest generation alone says what exists: data freed since (`/api/free`, retention, the
//! memory cap) is simply not listed. Only the bytes of sealed blocks that an older, still
//! kept generation holds are not written again: recovery has to read every live block
//! anyway, so an incremental snapshot only avoids *rewriting* them. See
//! [`strata_store::Store::export_host_blocks`] for which blocks are referenced.
//!
//! # Payload of a host entry (version 3)
//!
//! Framing, checksums and the pack layout are those of [`crate::snapshot`]. The payload is the
//! cluster and host (strings), then the root level:
//!
//! | item | encoding |
//! |---|---|
//! | level | `varint n`, n × series, `varint m`, m × (name string, level) |
//! | series | metric string, `zigzag varint` frequency, `varint b`, b × buffer |
//! | buffer | `zigzag varint` start, `varint` slots, `varint k` (≤ 4) sealed blocks, k × block, tail |
//! | block | `varint 0`, `varint` size, the block's bytes (held here); or `varint g` (g > 0, the older generation holding it), `varint` size, `u32` CRC32C of its bytes |
//! | tail | `varint` size (0: none), the raw tail encoded as one block |
//!
//! Blocks are [`strata_store::block`] blocks (their own format version in their first byte).
//! A reference is resolved by the block with the same key — host, level path, metric, buffer
//! start, block index — held in generation `g`'s pack, and its size and CRC must match.

use crate::format::{self, Cursor};
use crate::snapshot::{Generation, PackEntry, PackSeries, decode_level_with, encode_level_with};
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufReader, Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use strata_store::{
    BLOCKS_PER_BUFFER, BlockBuffer, BlockSeries, FxBuildHasher, HostBlocks, LevelImage, StoredBlock,
};

/// Bytes of an entry read to find its host's names while indexing; an entry whose names are
/// longer is read whole.
const NAMES_PREFIX_BYTES: u64 = 1024;

impl PackEntry for HostBlocks {
    const VERSION: u32 = 3;

    fn encode_payload(&self, out: &mut Vec<u8>) {
        format::put_str(out, &self.cluster);
        format::put_str(out, &self.host);
        encode_level(&self.root, out);
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    format::put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn encode_level(level: &LevelImage<BlockSeries>, out: &mut Vec<u8>) {
    encode_level_with(level, out, &|series, out| {
        format::put_varint(out, series.buffers.len() as u64);
        for buffer in &series.buffers {
            format::put_varint(out, format::zigzag(buffer.start_s));
            format::put_varint(out, buffer.len as u64);
            format::put_varint(out, buffer.blocks.len() as u64);
            for block in &buffer.blocks {
                match block {
                    StoredBlock::Bytes { bytes, .. } => {
                        format::put_varint(out, 0);
                        put_bytes(out, bytes);
                    }
                    StoredBlock::Reference {
                        generation,
                        size,
                        crc,
                    } => {
                        format::put_varint(out, *generation);
                        format::put_varint(out, u64::from(*size));
                        out.extend_from_slice(&crc.to_le_bytes());
                    }
                }
            }
            put_bytes(out, buffer.tail.as_deref().unwrap_or_default());
        }
    });
}

impl PackSeries for BlockSeries {
    fn metric(&self) -> &str {
        &self.metric
    }

    fn frequency_s(&self) -> i64 {
        self.frequency_s
    }
}

/// Decodes a version 3 host entry's payload; its blocks are held by `generation`.
pub(crate) fn decode_payload(payload: &[u8], generation: u64) -> Result<HostBlocks> {
    let mut cursor = Cursor::new(payload);
    let cluster = cursor.str()?.to_owned();
    let host = cursor.str()?.to_owned();
    let root = decode_level(&mut cursor, generation, 0)?;
    if !cursor.is_empty() {
        return Err(Error::Malformed("bytes after the host's levels"));
    }
    Ok(HostBlocks {
        cluster,
        host,
        root,
    })
}

fn decode_level(
    cursor: &mut Cursor<'_>,
    generation: u64,
    depth: usize,
) -> Result<LevelImage<BlockSeries>> {
    decode_level_with(cursor, depth, &mut |cursor, metric, frequency_s| {
        let mut buffers = Vec::new();
        // A buffer is at least its start, length, block count and tail size.
        for _ in 0..cursor.count(4)? {
            let start_s = format::unzigzag(cursor.varint()?);
            let len =
                usize::try_from(cursor.varint()?).map_err(|_| Error::Malformed("buffer length"))?;
            let count = cursor.count(2)?;
            if count > BLOCKS_PER_BUFFER {
                return Err(Error::Malformed("more sealed blocks than a buffer holds"));
            }
            let mut blocks = Vec::with_capacity(count);
            for _ in 0..count {
                blocks.push(decode_block(cursor, generation)?);
            }
            let tail = cursor.count(1)?;
            let tail = (tail > 0)
                .then(|| cursor.bytes(tail).map(<[u8]>::to_vec))
                .transpose()?;
            buffers.push(BlockBuffer {
                start_s,
                len,
                blocks,
                tail,
            });
        }
        Ok(BlockSeries {
            metric,
            frequency_s,
            buffers,
        })
    })
}

fn decode_block(cursor: &mut Cursor<'_>, generation: u64) -> Result<StoredBlock> {
    let holder = cursor.varint()?;
    let size = usize::try_from(cursor.varint()?)
        .ok()
        .filter(|&size| size <= strata_store::block::BLOCK_BYTES_MAX)
        .ok_or(Error::Malformed("block larger than a block can be"))?;
    if holder == 0 {
        return Ok(StoredBlock::Bytes {
            generation,
            bytes: cursor.bytes(size)?.to_vec(),
        });
    }
    let crc = cursor.bytes(4)?;
    Ok(StoredBlock::Reference {
        generation: holder,
        size: size as u32,
        crc: u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]),
    })
}

/// Calls `each` with the key of every sealed block below `level` — the level path and
/// metric (`path`), the buffer's start, the block's index — and the block.
fn visit_blocks(
    level: &mut LevelImage<BlockSeries>,
    path: &mut String,
    each: &mut dyn FnMut(&str, i64, usize, &mut StoredBlock),
) {
    for series in &mut level.series {
        let at = path.len();
        path.push('\0');
        path.push_str(&series.metric);
        for buffer in &mut series.buffers {
            for (k, block) in buffer.blocks.iter_mut().enumerate() {
                each(path, buffer.start_s, k, block);
            }
        }
        path.truncate(at);
    }
    for (name, child) in &mut level.children {
        let at = path.len();
        path.push('/');
        path.push_str(name);
        visit_blocks(child, path, each);
        path.truncate(at);
    }
}

/// The blocks of one series of an older entry, by buffer start and block index.
type SeriesBlocks = HashMap<(i64, usize), Vec<u8>, FxBuildHasher>;

/// Where a host's entry is in an older generation's pack.
#[derive(Debug, Clone, Copy)]
struct Located {
    generation: u64,
    file: usize,
    /// Of the payload.
    offset: u64,
    length: u64,
    crc: u32,
}

/// The host entries of older generations, by host, found by reading only the entries'
/// headers and names: recovery reads a host's older entries when it loads that host, so no
/// more than one host's worth of older packs is in memory per loading thread.
#[derive(Debug, Default)]
pub struct Older {
    files: Vec<PathBuf>,
    entries: HashMap<(String, String), Vec<Located>>,
}

/// What resolving one host's references found.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Bytes of the host's blocks by the generation that holds them (the loaded generation's
    /// own blocks included).
    pub bytes: BTreeMap<u64, u64>,
    /// References not resolved: the older entry is missing or damaged, or has no block of
    /// that key, size and checksum. Those blocks are lost.
    pub unresolved: usize,
}

/// The open files of an [`Older`], per loading thread.
#[derive(Debug, Default)]
pub struct OpenFiles(HashMap<usize, fs::File>);

impl Older {
    /// Indexes the version 3 packs of `generations`. Returns the damage found, by file: the
    /// entries before it are indexed (and references into what is lost will not resolve).
    pub fn index<'a>(
        generations: impl IntoIterator<Item = &'a Generation>,
    ) -> (Self, Vec<(PathBuf, Error)>) {
        let mut older = Self::default();
        let mut damaged = Vec::new();
        for generation in generations {
            for path in &generation.files {
                let file = older.files.len();
                older.files.push(path.clone());
                if let Err(error) = older.index_pack(file, generation.number) {
                    let error = Error::InFile {
                        path: path.clone(),
                        source: Box::new(error),
                    };
                    damaged.push((path.clone(), error));
                }
            }
        }
        (older, damaged)
    }

    fn index_pack(&mut self, file: usize, generation: u64) -> Result<()> {
        let path = &self.files[file];
        let opened = fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
        let size = opened
            .metadata()
            .map_err(|e| Error::io("reading", path, e))?
            .len();
        let mut reader = BufReader::new(opened);
        let mut header = [0u8; 16];
        reader
            .read_exact(&mut header)
            .map_err(|_| Error::Snapshot("shorter than a header"))?;
        if crate::snapshot::pack_version(&header)? < 3 {
            // Older packs hold no blocks.
            return Ok(());
        }
        let mut offset = header.len() as u64;
        let mut prefix = Vec::new();
        loop {
            let mut frame = [0u8; 12];
            reader
                .read_exact(&mut frame[..8])
                .map_err(|_| Error::Snapshot("cut off (no end marker)"))?;
            let length = u64::from_le_bytes(<[u8; 8]>::try_from(&frame[..8]).unwrap_or_default());
            if length == 0 {
                return Ok(());
            }
            reader
                .read_exact(&mut frame[8..])
                .map_err(|_| Error::Snapshot("host entry cut off"))?;
            let payload = offset + frame.len() as u64;
            if payload.saturating_add(length) > size {
                return Err(Error::Snapshot("host entry cut off or impossibly long"));
            }
            prefix.clear();
            (&mut reader)
                .take(length.min(NAMES_PREFIX_BYTES))
                .read_to_end(&mut prefix)
                .map_err(|e| Error::io("reading", path, e))?;
            if names(&prefix).is_none() && length > NAMES_PREFIX_BYTES {
                (&mut reader)
                    .take(length - NAMES_PREFIX_BYTES)
                    .read_to_end(&mut prefix)
                    .map_err(|e| Error::io("reading", path, e))?;
            }
            let read = prefix.len() as u64;
            // A damaged entry's names cannot be trusted: it is left out (its host's
            // references will not resolve and are reported).
            if let Some(key) = names(&prefix) {
                self.entries.entry(key).or_default().push(Located {
                    generation,
                    file,
                    offset: payload,
                    length,
                    crc: u32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]),
                });
            }
            let skip = i64::try_from(length - read)
                .map_err(|_| Error::Snapshot("host entry impossibly long"))?;
            reader
                .seek_relative(skip)
                .map_err(|e| Error::io("reading", path, e))?;
            offset = payload + length;
        }
    }

    /// Replaces the references of `image` by the blocks they name, read from the older
    /// entries of the same host.
    pub fn resolve(&self, image: &mut HostBlocks, files: &mut OpenFiles) -> Resolved {
        let mut resolved = Resolved::default();
        let mut wanted = std::collections::BTreeSet::new();
        visit_blocks(
            &mut image.root,
            &mut String::new(),
            &mut |_, _, _, block| {
                if let StoredBlock::Reference { generation, .. } = block {
                    wanted.insert(*generation);
                }
            },
        );
        let key = (image.cluster.clone(), image.host.clone());
        let located = self
            .entries
            .get(&key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for generation in wanted {
            let held = located
                .iter()
                .filter(|l| l.generation == generation)
                .find_map(|l| self.read_entry(l, files).ok());
            let Some(mut older) = held else {
                continue;
            };
            // By series (level path and metric, one allocation each), then buffer and block.
            let mut blocks: HashMap<String, SeriesBlocks> = HashMap::new();
            visit_blocks(
                &mut older.root,
                &mut String::new(),
                &mut |path, start, k, block| {
                    if let StoredBlock::Bytes { bytes, .. } = block {
                        let series = match blocks.get_mut(path) {
                            Some(series) => series,
                            None => blocks.entry(path.to_owned()).or_default(),
                        };
                        series.insert((start, k), std::mem::take(bytes));
                    }
                },
            );
            visit_blocks(
                &mut image.root,
                &mut String::new(),
                &mut |path, start, k, block| {
                    let StoredBlock::Reference {
                        generation: holder,
                        size,
                        crc,
                    } = *block
                    else {
                        return;
                    };
                    if holder != generation {
                        return;
                    }
                    let found = blocks.get_mut(path).and_then(|s| s.remove(&(start, k)));
                    let Some(bytes) = found else {
                        return;
                    };
                    if bytes.len() == size as usize && crc32c::crc32c(&bytes) == crc {
                        *block = StoredBlock::Bytes { generation, bytes };
                    }
                },
            );
        }
        visit_blocks(
            &mut image.root,
            &mut String::new(),
            &mut |_, _, _, block| match block {
                StoredBlock::Bytes { generation, bytes } => {
                    *resolved.bytes.entry(*generation).or_default() += bytes.len() as u64;
                }
                StoredBlock::Reference { .. } => resolved.unresolved += 1,
            },
        );
        resolved
    }

    /// Reads and decodes one older host entry, checking its checksum.
    fn read_entry(&self, at: &Located, files: &mut OpenFiles) -> Result<HostBlocks> {
        let path = &self.files[at.file];
        let file = match files.0.entry(at.file) {
            std::collections::hash_map::Entry::Occupied(open) => open.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(fs::File::open(path).map_err(|e| Error::io("reading", path, e))?)
            }
        };
        let mut payload = Vec::new();
        file.seek(SeekFrom::Start(at.offset))
            .and_then(|_| (&*file).take(at.length).read_to_end(&mut payload))
            .map_err(|e| Error::io("reading", path, e))?;
        if payload.len() as u64 != at.length || crc32c::crc32c(&payload) != at.crc {
            return Err(Error::Snapshot("older host entry damaged"));
        }
        decode_payload(&payload, at.generation)
    }
}

/// The cluster and host names at the start of a payload.
fn names(payload: &[u8]) -> Option<(String, String)> {
    let mut cursor = Cursor::new(payload);
    let cluster = cursor.str().ok()?.to_owned();
    let host = cursor.str().ok()?.to_owned();
    Some((cluster, host))
}
