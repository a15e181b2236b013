//! Snapshots: hosts packed into files, grouped in generations.
//!
//! A generation is named after the WAL segment it starts replay from: generation `G` holds
//! every record of segments below `G`, so recovery loads generation `G` and replays segments
//! `G` and later. Layout:
//!
//! ```text
//! <snapshots>/<G:020>/MANIFEST                 written last: the generation is complete
//! <snapshots>/<G:020>/<n:06>.snap              packs of hosts, up to PACK_BYTES_TARGET each
//! ```
//!
//! Hosts are packed so that a store of a million small hosts costs a few files and fsyncs,
//! not a million (a file per host took 362 s to write and 3.9 GB of disk for 63 MB of data).
//! A large host still gets a pack of its own, so packs stay a few tens of MiB, and recovery
//! loads packs in parallel.
//!
//! Every file is written to a temporary name, synced, renamed, and its directory synced, so a
//! crash leaves either the old file or the new one. The MANIFEST is written last, but it is
//! not the only evidence that a generation was completed: once one was, the WAL segments it
//! covers are deleted, and a MANIFEST damaged after that must not make the generation look
//! unfinished (see [`crate::recovery`]). Every host entry carries its own checksum, so packs
//! are readable without the MANIFEST, and damage loses the hosts from the damaged entry to
//! the end of its pack, not the generation.
//!
//! # Warning
//! The pack layout is on disk; changing it needs a new `SNAPSHOT_VERSION`, a reader for the
//! old one, and a fixture (`tests/fixtures`). All integers are little-endian.
//!
//! | field | type (bytes) | meaning |
//! |---|---|---|
//! | magic | `[u8; 8]` | `b"STRATASN"` |
//! | version | u32 (4) | [`SNAPSHOT_VERSION`] |
//! | reserved | u32 (4) | 0 |
//! | hosts | entries | until an entry length of 0 |
//! | end | u64 (8) = 0, `[u8; 8]` | then `b"SNAPEND!"`, so a cut-off pack is told from a damaged one |
//!
//! A host entry is `u64` payload length, `u32` CRC32C of the payload, and the payload. In
//! version 3 (written) the payload holds the host as sealed blocks, some of them references
//! to blocks an older generation holds: see [`crate::incremental`], which also says which
//! generations a MANIFEST lists (`reference <generation> <bytes>` lines) and how recovery
//! resolves them. Version 2 (read; written only as [`PackWriter`] of [`HostImage`]s): the
//! cluster and host (strings: varint length + UTF-8), then the root level. A level is
//! `varint n`, n × series, `varint m`, m × (name string, level). A series is the metric name,
//! `zigzag varint` frequency, `varint r` runs, each `zigzag varint` start, `varint n` values
//! and n × f32 (full precision, NaN for gaps).
//!
//! Version 1 (read, no longer written) had one file per host, `<G>/<cluster>/<host>.snap`:
//! magic, version, reserved, the payload above, a CRC32C of everything before it, and the end
//! marker.

use crate::format::{self, Cursor};
use crate::writer::sync_directory;
use crate::{Error, Result};
use std::fs;
use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};
use strata_store::{HostBlocks, HostImage, LevelImage, Run, SeriesImage};

pub const SNAPSHOT_MAGIC: [u8; 8] = *b"STRATASN";
pub const SNAPSHOT_END: [u8; 8] = *b"SNAPEND!";
/// The snapshot format this build writes.
pub const SNAPSHOT_VERSION: u32 = 3;
/// The oldest snapshot format this build reads.
pub const SNAPSHOT_VERSION_OLDEST: u32 = 1;

/// Bytes of a pack's header: magic, version, reserved.
const HEADER_BYTES: usize = 16;

/// Bytes before a host entry's payload: length and CRC.
const ENTRY_HEADER_BYTES: usize = 12;

/// A pack is closed once it holds this much; a host larger than this gets a pack of its own.
pub const PACK_BYTES_TARGET: u64 = 64 << 20;

/// Deepest level nesting read back (cluster → host → 2 levels in practice).
const LEVEL_DEPTH_MAX: usize = 16;

const MANIFEST: &str = "MANIFEST";

/// What a pack holds: hosts as runs of values (version 2, still written by tests and tools
/// that make version 2 packs) or as blocks (version 3, [`crate::incremental`]).
pub trait PackEntry {
    /// The pack version whose entries this is.
    const VERSION: u32;
    /// The payload of a host entry.
    fn encode_payload(&self, out: &mut Vec<u8>);
}

impl PackEntry for HostImage {
    const VERSION: u32 = 2;

    fn encode_payload(&self, out: &mut Vec<u8>) {
        format::put_str(out, &self.cluster);
        format::put_str(out, &self.host);
        encode_level(&self.root, out);
    }
}

fn decode_payload(payload: &[u8]) -> Result<HostImage> {
    let mut cursor = Cursor::new(payload);
    let cluster = cursor.str()?.to_owned();
    let host = cursor.str()?.to_owned();
    let root = decode_level(&mut cursor, 0)?;
    if !cursor.is_empty() {
        return Err(Error::Malformed("bytes after the host's levels"));
    }
    Ok(HostImage {
        cluster,
        host,
        root,
    })
}

/// A pack holding `images`, as [`PackWriter`] writes them.
pub fn encode_pack<'a, E: PackEntry + 'a>(images: impl IntoIterator<Item = &'a E>) -> Vec<u8> {
    let mut out = pack_header(E::VERSION);
    for image in images {
        put_entry(image, &mut out);
    }
    put_pack_end(&mut out);
    out
}

fn pack_header(version: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES);
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}

fn put_entry(image: &impl PackEntry, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; ENTRY_HEADER_BYTES]);
    image.encode_payload(out);
    let payload = &out[start + ENTRY_HEADER_BYTES..];
    let length = (payload.len() as u64).to_le_bytes();
    let crc = crc32c::crc32c(payload).to_le_bytes();
    out[start..start + 8].copy_from_slice(&length);
    out[start + 8..start + ENTRY_HEADER_BYTES].copy_from_slice(&crc);
}

fn put_pack_end(out: &mut Vec<u8>) {
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&SNAPSHOT_END);
}

/// Reads a pack's header: its version, which this build reads.
pub(crate) fn pack_version(header: &[u8]) -> Result<u32> {
    let header = header
        .get(..HEADER_BYTES)
        .ok_or(Error::Snapshot("shorter than a header"))?;
    if header[..8] != SNAPSHOT_MAGIC {
        return Err(Error::Snapshot("not a Strata snapshot (bad magic)"));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if header[12..16] != [0; 4] {
        return Err(Error::Snapshot("reserved header bytes are not zero"));
    }
    if !(SNAPSHOT_VERSION_OLDEST..=SNAPSHOT_VERSION).contains(&version) {
        return Err(Error::UnsupportedVersion {
            what: "snapshot",
            found: version,
            supported: SNAPSHOT_VERSION,
        });
    }
    Ok(version)
}

/// Decodes a snapshot file of version 1 or 2, handing every intact host to `each`.
/// Damage stops the file: the hosts before it are handed out, then the error says where.
/// A version 3 pack holds blocks: [`read_pack`] reads it.
pub fn decode_file(bytes: &[u8], mut each: impl FnMut(HostImage)) -> Result<()> {
    match pack_version(bytes)? {
        1 => decode_host_v1(bytes).map(each),
        2 => for_each_entry(&mut &bytes[HEADER_BYTES..], |payload| {
            decode_payload(payload).map(&mut each).is_ok()
        }),
        _ => Err(Error::Snapshot(
            "a version 3 pack (blocks): read with read_pack",
        )),
    }
}

/// A host read from a pack of any version.
#[derive(Debug)]
pub enum PackHost {
    /// Versions 1 and 2: runs of values, for [`strata_store::Store::import_host`].
    Values(HostImage),
    /// Version 3: blocks, some of them references to older generations.
    Blocks(HostBlocks),
}

/// Reads a snapshot file of any readable version and hands every intact host to `each`;
/// returns how many. A version 3 pack is streamed entry by entry (its inline blocks are
/// tagged as held by `generation`); older ones are read whole. Damage is an error naming
/// the file, after the hosts before it were handed out.
pub fn read_pack(path: &Path, generation: u64, mut each: impl FnMut(PackHost)) -> Result<usize> {
    let in_file = |error| Error::InFile {
        path: path.to_owned(),
        source: Box::new(error),
    };
    let file = fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let size = file
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    let mut reader = std::io::BufReader::new(file);
    let mut header = [0u8; HEADER_BYTES];
    let mut hosts = 0;
    let version = reader
        .read_exact(&mut header)
        .map_err(|_| Error::Snapshot("shorter than a header"))
        .and_then(|()| pack_version(&header))
        .map_err(in_file)?;
    if version < 3 {
        return load_file(path, |image| {
            hosts += 1;
            each(PackHost::Values(image));
        });
    }
    let mut reader = std::io::Read::take(reader, size.saturating_sub(HEADER_BYTES as u64));
    for_each_entry(
        &mut reader,
        |payload| match crate::incremental::decode_payload(payload, generation) {
            Ok(image) => {
                hosts += 1;
                each(PackHost::Blocks(image));
                true
            }
            Err(_) => false,
        },
    )
    .map_err(in_file)?;
    Ok(hosts)
}

/// Reads the host entries of a pack (after its header) and hands each payload whose
/// checksum holds to `each`, which says whether it could decode it. A damaged entry is
/// skipped (its length still leads to the next one), so one damaged host does not take the
/// rest of the pack with it; a length that leads nowhere ends the pack. Damage is reported
/// after every readable host was handed out. `entries` is limited (a `Take`, a slice): a
/// damaged length never allocates more than what is left.
fn for_each_entry(
    entries: &mut impl std::io::Read,
    mut each: impl FnMut(&[u8]) -> bool,
) -> Result<()> {
    let mut offset = HEADER_BYTES as u64;
    let mut damaged: Option<(usize, u64)> = None;
    let mut payload = Vec::new();
    let end = loop {
        let mut length = [0u8; 8];
        if entries.read_exact(&mut length).is_err() {
            break Err(Error::Snapshot("cut off (no end marker)"));
        }
        let length = u64::from_le_bytes(length);
        if length == 0 {
            let mut end = Vec::new();
            break match entries.read_to_end(&mut end) {
                Ok(_) if end == SNAPSHOT_END => Ok(()),
                _ => Err(Error::Snapshot("damaged end marker")),
            };
        }
        let mut crc = [0u8; 4];
        payload.clear();
        // Reads what is there, up to `length`: a damaged length allocates no more than that.
        let read = entries
            .read_exact(&mut crc)
            .and_then(|()| std::io::Read::take(&mut *entries, length).read_to_end(&mut payload));
        if read.is_err() || payload.len() as u64 != length {
            break Err(Error::Snapshot("host entry cut off or impossibly long"));
        }
        if crc32c::crc32c(&payload) != u32::from_le_bytes(crc) || !each(&payload) {
            let (count, _) = damaged.get_or_insert((0, offset));
            *count += 1;
        }
        offset += ENTRY_HEADER_BYTES as u64 + length;
    };
    match damaged {
        Some((entries, at)) => Err(Error::DamagedEntries {
            entries,
            offset: at,
            rest: end.err().map(|e| e.to_string()),
        }),
        None => end,
    }
}

/// Decodes a version 1 host file (one host, a CRC of the whole file, the end marker).
fn decode_host_v1(bytes: &[u8]) -> Result<HostImage> {
    if bytes.len() < HEADER_BYTES + 12 || bytes[bytes.len() - 8..] != SNAPSHOT_END {
        return Err(Error::Snapshot("cut off (no end marker)"));
    }
    let crc_at = bytes.len() - 12;
    let stored = u32::from_le_bytes([
        bytes[crc_at],
        bytes[crc_at + 1],
        bytes[crc_at + 2],
        bytes[crc_at + 3],
    ]);
    if crc32c::crc32c(&bytes[..crc_at]) != stored {
        return Err(Error::Snapshot("checksum mismatch"));
    }
    decode_payload(&bytes[HEADER_BYTES..crc_at])
}

fn encode_level(level: &LevelImage, out: &mut Vec<u8>) {
    encode_level_with(level, out, &|series, out| {
        format::put_varint(out, series.runs.len() as u64);
        for run in &series.runs {
            format::put_varint(out, format::zigzag(run.start_s));
            format::put_varint(out, run.values.len() as u64);
            for value in &run.values {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    });
}

/// The series of a level in a pack entry, after its metric name and frequency.
pub(crate) trait PackSeries: Sized {
    fn metric(&self) -> &str;
    fn frequency_s(&self) -> i64;
}

impl PackSeries for SeriesImage {
    fn metric(&self) -> &str {
        &self.metric
    }

    fn frequency_s(&self) -> i64 {
        self.frequency_s
    }
}

/// Encodes a level: its series (name, frequency, then what `series` writes) and children.
pub(crate) fn encode_level_with<S: PackSeries>(
    level: &LevelImage<S>,
    out: &mut Vec<u8>,
    series: &dyn Fn(&S, &mut Vec<u8>),
) {
    format::put_varint(out, level.series.len() as u64);
    for one in &level.series {
        format::put_str(out, one.metric());
        format::put_varint(out, format::zigzag(one.frequency_s()));
        series(one, out);
    }
    format::put_varint(out, level.children.len() as u64);
    for (name, child) in &level.children {
        format::put_str(out, name);
        encode_level_with(child, out, series);
    }
}

fn decode_level(cursor: &mut Cursor<'_>, depth: usize) -> Result<LevelImage> {
    decode_level_with(cursor, depth, &mut |cursor, metric, frequency_s| {
        let mut runs = Vec::new();
        for _ in 0..cursor.count(2)? {
            let start_s = format::unzigzag(cursor.varint()?);
            let count = cursor.count(4)?;
            let values = cursor.f32s(count)?;
            runs.push(Run { start_s, values });
        }
        Ok(SeriesImage {
            metric,
            frequency_s,
            runs,
        })
    })
}

/// Decodes a level: for each series its name and frequency, the rest by `series`.
pub(crate) fn decode_level_with<S>(
    cursor: &mut Cursor<'_>,
    depth: usize,
    series: &mut dyn FnMut(&mut Cursor<'_>, String, i64) -> Result<S>,
) -> Result<LevelImage<S>> {
    if depth > LEVEL_DEPTH_MAX {
        return Err(Error::Malformed("levels nested too deep"));
    }
    let mut level = LevelImage::default();
    // A series is at least a one-byte name length, frequency and count.
    for _ in 0..cursor.count(3)? {
        let metric = cursor.str()?.to_owned();
        let frequency_s = format::unzigzag(cursor.varint()?);
        level.series.push(series(cursor, metric, frequency_s)?);
    }
    for _ in 0..cursor.count(2)? {
        let name = cursor.str()?.to_owned();
        let child = decode_level_with(cursor, depth + 1, series)?;
        level.children.push((name, child));
    }
    Ok(level)
}

/// The directory of generation `generation`.
pub fn generation_directory(root: &Path, generation: u64) -> PathBuf {
    root.join(format!("{generation:020}"))
}

/// Writes hosts into the packs of a generation being built.
pub struct PackWriter<E> {
    directory: PathBuf,
    /// The pack being filled.
    buffer: Vec<u8>,
    packs: u32,
    bytes: u64,
    entries: std::marker::PhantomData<fn(&E)>,
}

impl<E: PackEntry> PackWriter<E> {
    /// Starts generation directory `directory`. What an earlier, failed attempt left there is
    /// removed first: its packs must not be loaded with this generation's.
    pub fn new(directory: &Path) -> Result<Self> {
        if directory.exists() {
            remove_generation(directory)?;
        }
        fs::create_dir_all(directory).map_err(|e| Error::io("creating", directory, e))?;
        Ok(Self {
            directory: directory.to_owned(),
            buffer: pack_header(E::VERSION),
            packs: 0,
            bytes: 0,
            entries: std::marker::PhantomData,
        })
    }

    /// Adds a host; the pack is written out once it holds [`PACK_BYTES_TARGET`].
    pub fn add(&mut self, image: &E) -> Result<()> {
        put_entry(image, &mut self.buffer);
        if self.buffer.len() as u64 >= PACK_BYTES_TARGET {
            self.write_pack()?;
        }
        Ok(())
    }

    /// Writes the last pack; returns the bytes of every pack. The caller finishes the
    /// generation (directory sync, MANIFEST) with [`finish_generation`].
    pub fn finish(mut self) -> Result<u64> {
        if self.buffer.len() > HEADER_BYTES {
            self.write_pack()?;
        }
        Ok(self.bytes)
    }

    fn write_pack(&mut self) -> Result<()> {
        put_pack_end(&mut self.buffer);
        self.packs += 1;
        let path = self.directory.join(format!("{:06}.snap", self.packs));
        write_atomically(&path, &self.buffer, false)?;
        self.bytes += self.buffer.len() as u64;
        self.buffer = pack_header(E::VERSION);
        Ok(())
    }
}

/// Completes a generation: syncs its directories and writes the MANIFEST last.
/// `references` are the older generations whose packs hold blocks this one refers to.
pub fn finish_generation(
    generation_dir: &Path,
    generation: u64,
    hosts: usize,
    created_s: i64,
    references: &[Reference],
) -> Result<()> {
    // The packs' renames are durable before the MANIFEST can be.
    sync_directory(generation_dir)?;
    let mut body = format!(
        "strata snapshot\nformat {SNAPSHOT_VERSION}\nwal-segment {generation}\nhosts {hosts}\ncreated {created_s}\n"
    );
    for reference in references {
        body.push_str(&format!(
            "reference {} {}\n",
            reference.generation, reference.bytes
        ));
    }
    let text = format!("{body}crc {}\n", crc32c::crc32c(body.as_bytes()));
    write_atomically(&generation_dir.join(MANIFEST), text.as_bytes(), true)?;
    for directory in directories_above(generation_dir) {
        sync_directory(directory)?;
    }
    Ok(())
}

/// The directories whose entries must be durable for a generation to be found after a power
/// loss: the snapshots root (which holds the generation's directory) and the data directory
/// (which holds the root, created by the first snapshot). The caller deletes WAL segments
/// on the strength of the generation, so these are synced before it returns.
fn directories_above(generation_dir: &Path) -> impl Iterator<Item = &Path> {
    generation_dir.ancestors().skip(1).take(2)
}

/// The state of a generation's MANIFEST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// Present and intact: the generation was completed, with this many hosts.
    Valid { hosts: usize },
    /// Absent: the snapshot was cut off before it finished — or the file was lost since.
    Missing,
    /// Present but unreadable (checksum, fields), with why.
    Damaged(String),
}

impl Manifest {
    /// What is wrong with the MANIFEST, if anything.
    pub fn damage(&self) -> Option<&str> {
        match self {
            Self::Valid { .. } => None,
            Self::Missing => Some("missing"),
            Self::Damaged(reason) => Some(reason),
        }
    }
}

/// An older generation that a generation's blocks refer to, and the bytes of the blocks
/// referred to (listed in the MANIFEST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    pub generation: u64,
    pub bytes: u64,
}

/// A generation directory found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub number: u64,
    pub directory: PathBuf,
    pub manifest: Manifest,
    /// The older generations its MANIFEST lists (none unless the MANIFEST is intact).
    pub references: Vec<Reference>,
    /// Bytes of its snapshot files.
    pub bytes: u64,
    /// Snapshot files, in name order. Every host in them carries its own checksum, so they
    /// are readable whatever the state of the MANIFEST.
    pub files: Vec<PathBuf>,
}

impl Generation {
    /// Whether this generation's blocks may be held by `older`: it is older and the MANIFEST
    /// lists it, or any older one when the MANIFEST is not intact (the list is then unknown).
    pub fn may_refer_to(&self, older: &Generation) -> bool {
        older.number < self.number
            && (!matches!(self.manifest, Manifest::Valid { .. })
                || self.references.iter().any(|r| r.generation == older.number))
    }
}

/// Every generation directory under `root`, newest first. A MANIFEST written by a newer
/// format is an error (never guessed at).
pub fn list_generations(root: &Path) -> Result<Vec<Generation>> {
    let mut numbered = Vec::new();
    match fs::read_dir(root) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("listing", root, e))?;
                let name = entry.file_name();
                if let Some(number) = name
                    .to_str()
                    .filter(|n| n.len() == 20)
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    numbered.push((number, entry.path()));
                }
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(Error::io("listing", root, error)),
    }
    numbered.sort();
    numbered
        .into_iter()
        .rev()
        .map(|(number, directory)| {
            let (manifest, references) = read_manifest(&directory, number)?;
            let files = snapshot_files(&directory)?;
            let bytes = files
                .iter()
                .map(|f| fs::metadata(f).map_or(0, |m| m.len()))
                .sum();
            Ok(Generation {
                number,
                manifest,
                references,
                bytes,
                files,
                directory,
            })
        })
        .collect()
}

/// The state of a generation's MANIFEST, and the references it lists.
fn read_manifest(directory: &Path, number: u64) -> Result<(Manifest, Vec<Reference>)> {
    let damaged = |why: &str| Ok((Manifest::Damaged(why.into()), Vec::new()));
    let path = directory.join(MANIFEST);
    let text = match fs::read(&path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => return damaged("not UTF-8 text"),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Manifest::Missing, Vec::new()));
        }
        Err(error) => return Err(Error::io("reading", &path, error)),
    };
    let Some((body, crc_line)) = text.trim_end().rsplit_once('\n') else {
        return damaged("cut off");
    };
    let body = format!("{body}\n");
    if crc_line
        .strip_prefix("crc ")
        .and_then(|c| c.parse::<u32>().ok())
        != Some(crc32c::crc32c(body.as_bytes()))
    {
        return damaged("checksum mismatch");
    }
    let field = |key: &str| {
        body.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(version) = field("format ")
        && !(u64::from(SNAPSHOT_VERSION_OLDEST)..=u64::from(SNAPSHOT_VERSION)).contains(&version)
    {
        return Err(Error::UnsupportedVersion {
            what: "snapshot generation",
            found: u32::try_from(version).unwrap_or(u32::MAX),
            supported: SNAPSHOT_VERSION,
        });
    }
    if field("wal-segment ") != Some(number) {
        return damaged("names another WAL segment than its directory");
    }
    let mut references = Vec::new();
    for line in body.lines() {
        let Some(fields) = line.strip_prefix("reference ") else {
            continue;
        };
        let parsed = fields.split_once(' ').and_then(|(generation, bytes)| {
            Some(Reference {
                generation: generation.parse().ok().filter(|&g| g < number)?,
                bytes: bytes.parse().ok()?,
            })
        });
        match parsed {
            Some(reference) => references.push(reference),
            None => return damaged("unreadable reference"),
        }
    }
    match field("hosts ") {
        Some(hosts) => Ok((
            Manifest::Valid {
                hosts: hosts as usize,
            },
            references,
        )),
        None => damaged("no host count"),
    }
}

/// The snapshot files of a generation directory: packs, and the per-host files of version 1
/// in cluster directories.
fn snapshot_files(directory: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(directory).map_err(|e| Error::io("listing", directory, e))? {
        let path = entry
            .map_err(|e| Error::io("listing", directory, e))?
            .path();
        if path.is_dir() {
            for host in fs::read_dir(&path).map_err(|e| Error::io("listing", &path, e))? {
                let host = host.map_err(|e| Error::io("listing", &path, e))?.path();
                if host.extension().is_some_and(|e| e == "snap") {
                    files.push(host);
                }
            }
        } else if path.extension().is_some_and(|e| e == "snap") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a snapshot file and hands every intact host to `each`; returns how many. Damage is
/// an error naming the file, after the hosts before it were handed out.
pub fn load_file(path: &Path, mut each: impl FnMut(HostImage)) -> Result<usize> {
    let bytes = fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let mut hosts = 0;
    decode_file(&bytes, |image| {
        hosts += 1;
        each(image);
    })
    .map_err(|error| Error::InFile {
        path: path.to_owned(),
        source: Box::new(error),
    })?;
    Ok(hosts)
}

/// Removes generations older than `generation` (complete or not) but those in `keep`.
pub fn remove_generations_except(root: &Path, generation: u64, keep: &[u64]) -> Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(Error::io("listing", root, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", root, e))?;
        let older = entry
            .file_name()
            .to_str()
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n < generation && !keep.contains(&n));
        if older {
            remove_generation(&entry.path())?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_directory(root)?;
    }
    Ok(removed)
}

/// Removes a generation directory, its MANIFEST first and durably: a removal cut off half-way
/// must not leave a generation that looks complete but lacks packs.
fn remove_generation(directory: &Path) -> Result<()> {
    let manifest = directory.join(MANIFEST);
    match fs::remove_file(&manifest) {
        Ok(()) => sync_directory(directory)?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(Error::io("removing", &manifest, error)),
    }
    fs::remove_dir_all(directory).map_err(|e| Error::io("removing", directory, e))
}

/// Writes `bytes` to `path` through a temporary file: write, fsync, rename, fsync directory
/// (the directory sync can be left to the caller when it syncs once for many files).
pub fn write_atomically(path: &Path, bytes: &[u8], sync_parent: bool) -> Result<()> {
    // `<name>.tmp` beside `<name>`: two files that differ only in their extension (an
    // endpoint's `.cursor` and `.acked`) never share a temporary file.
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file =
        fs::File::create(&temporary).map_err(|e| Error::io("creating", &temporary, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("writing", &temporary, e))?;
    fs::rename(&temporary, path).map_err(|e| Error::io("renaming", &temporary, e))?;
    if sync_parent && let Some(parent) = path.parent() {
        sync_directory(parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 6 item 10: the first snapshot creates `snapshots/` and its generation directory;
    /// both entries must be synced before WAL segments are deleted.
    #[test]
    fn a_generation_makes_the_snapshots_root_and_the_data_directory_durable() {
        let generation = generation_directory(Path::new("/data/snapshots"), 7);
        let synced: Vec<&Path> = directories_above(&generation).collect();
        assert_eq!(
            synced,
            [Path::new("/data/snapshots"), Path::new("/data")],
            "{generation:?}"
        );
    }
}
