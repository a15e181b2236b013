//! The writer: one thread that owns the open segment and commits appends in groups.
//!
//! Callers hand over a batch and a completion; the thread takes every append waiting at that
//! moment, encodes them into one buffer, writes it with one `write`, syncs once if the policy
//! says so, and then completes them all. So concurrent requests share one write and one fsync
//! (group commit), and a caller is completed only when its record is in the file — in the
//! page cache under `batch` and `never`, on disk under `always`.
//!
//! A failed write or fsync poisons the log: every later append fails with
//! [`Error::Poisoned`]. After a failed fsync the kernel may have dropped the dirty pages, so
//! retrying could acknowledge data that is not on disk (see "Can applications recover from
//! fsync failures?", USENIX ATC '20); the operator restarts, and recovery reads what is there.

use crate::codec::SeriesTable;
use crate::format;
use crate::reader::segment_file_name;
use crate::{Error, FsyncPolicy, Position, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use strata_store::WriteBatch;

/// How the log is set up.
#[derive(Debug, Clone)]
pub struct WalConfig {
    pub directory: PathBuf,
    pub fsync: FsyncPolicy,
    /// A segment is closed and a new one started once it is this large.
    pub segment_bytes: u64,
    /// Most appends waiting for the writer; beyond it [`Wal::append`] refuses with
    /// [`Error::QueueFull`] (the server bounds its in-flight requests below this).
    pub queue_depth: usize,
}

/// A committed append.
#[derive(Debug)]
pub struct Appended {
    /// Where the record ends: every record before this position is in the file.
    pub position: Position,
    pub sequence: u64,
}

/// Called once per append, from the writer thread, with the outcome and the batch back.
pub type Completion = Box<dyn FnOnce(Result<Appended>, WriteBatch) + Send>;

enum Command {
    Append(WriteBatch, Completion),
    /// Close the current segment and start the next; completes with the new segment's start.
    Rotate(Box<dyn FnOnce(Result<Position>) + Send>),
}

/// Counters of the writer, for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WalStats {
    pub records: u64,
    pub bytes: u64,
    pub writes: u64,
    pub fsyncs: u64,
    pub segments_created: u64,
    /// The newest position written.
    pub position: Position,
}

/// The write-ahead log, open for appending.
pub struct Wal {
    sender: Option<SyncSender<Command>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<Mutex<WalStats>>,
    directory: PathBuf,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("directory", &self.directory)
            .finish()
    }
}

impl Wal {
    /// Starts a new segment numbered `segment` and the writer thread. Record sequence numbers
    /// continue at `next_sequence`.
    pub fn open(config: WalConfig, segment: u64, next_sequence: u64) -> Result<Self> {
        fs::create_dir_all(&config.directory)
            .map_err(|e| Error::io("creating", &config.directory, e))?;
        let stats = Arc::new(Mutex::new(WalStats::default()));
        let mut writer = Writer {
            file: create_segment(&config.directory, segment)?,
            position: Position {
                segment,
                offset: format::SEGMENT_HEADER_BYTES,
            },
            config: config.clone(),
            table: SeriesTable::default(),
            sequence: next_sequence,
            buffer: Vec::new(),
            dirty_since: None,
            poisoned: None,
            stats: stats.clone(),
        };
        writer.count(|s| s.segments_created += 1);
        let (sender, receiver) = std::sync::mpsc::sync_channel(config.queue_depth.max(1));
        let thread = std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(&receiver))
            .map_err(|e| Error::io("starting the writer thread for", &config.directory, e))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
            stats,
            directory: config.directory,
        })
    }

    /// Queues `batch` for the log; `done` runs on the writer thread once the record is
    /// committed under the fsync policy (or has failed).
    pub fn append(&self, batch: WriteBatch, done: Completion) {
        let Some(sender) = &self.sender else {
            return done(Err(Error::Closed), batch);
        };
        match sender.try_send(Command::Append(batch, done)) {
            Ok(()) => {}
            Err(TrySendError::Full(Command::Append(batch, done))) => {
                done(Err(Error::QueueFull), batch)
            }
            Err(TrySendError::Disconnected(Command::Append(batch, done))) => {
                done(Err(Error::Closed), batch)
            }
            Err(_) => {}
        }
    }

    /// Starts a new segment; `done` gets the position where it begins. Every record appended
    /// before the call is in an older segment.
    pub fn rotate(&self, done: Box<dyn FnOnce(Result<Position>) + Send>) {
        let Some(sender) = &self.sender else {
            return done(Err(Error::Closed));
        };
        // Rotation waits for room: it is rare and must not be refused.
        if let Err(error) = sender.send(Command::Rotate(done))
            && let Command::Rotate(done) = error.0
        {
            done(Err(Error::Closed));
        }
    }

    pub fn stats(&self) -> WalStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Stops taking appends, commits what is queued, syncs and closes the segment.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the WAL writer thread panicked");
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Deletes segments numbered below `segment` and returns how many went.
pub fn delete_segments_before(directory: &Path, segment: u64) -> Result<usize> {
    let mut deleted = 0;
    for file in crate::reader::list_segments(directory)? {
        if file.segment < segment {
            fs::remove_file(&file.path).map_err(|e| Error::io("deleting", &file.path, e))?;
            deleted += 1;
        }
    }
    if deleted > 0 {
        sync_directory(directory)?;
    }
    Ok(deleted)
}

/// Most appends committed in one group, so that completions are not held back indefinitely
/// under a flood.
const GROUP_APPENDS_MAX: usize = 256;

struct Writer {
    file: File,
    position: Position,
    config: WalConfig,
    table: SeriesTable,
    sequence: u64,
    /// Encoded records of the current group.
    buffer: Vec<u8>,
    /// Under `batch`: when the oldest unsynced write happened.
    dirty_since: Option<Instant>,
    poisoned: Option<String>,
    stats: Arc<Mutex<WalStats>>,
}

impl Writer {
    fn run(&mut self, receiver: &Receiver<Command>) {
        loop {
            let first = match (self.config.fsync, self.dirty_since) {
                (FsyncPolicy::Batch(interval), Some(since)) => {
                    let due = interval.saturating_sub(since.elapsed());
                    match receiver.recv_timeout(due) {
                        Ok(command) => command,
                        Err(RecvTimeoutError::Timeout) => {
                            self.sync();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                _ => match receiver.recv() {
                    Ok(command) => command,
                    Err(_) => break,
                },
            };
            let mut group = vec![first];
            while group.len() < GROUP_APPENDS_MAX {
                match receiver.try_recv() {
                    Ok(command) => group.push(command),
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
        // Closing: everything acknowledged is written; make it durable unless told never to.
        if self.config.fsync != FsyncPolicy::Never && self.poisoned.is_none() {
            self.sync();
        }
    }

    /// Writes a group: appends up to each rotation are written and synced together.
    fn commit_group(&mut self, group: Vec<Command>) {
        let mut waiting: Vec<(WriteBatch, Completion, Appended)> = Vec::new();
        for command in group {
            match command {
                Command::Append(batch, done) => {
                    if let Some(reason) = &self.poisoned {
                        done(Err(Error::Poisoned(reason.clone())), batch);
                        continue;
                    }
                    let appended = self.encode(&batch);
                    waiting.push((batch, done, appended));
                }
                Command::Rotate(done) => {
                    self.flush(&mut waiting);
                    let result = match &self.poisoned {
                        Some(reason) => Err(Error::Poisoned(reason.clone())),
                        None => self.start_next_segment(),
                    };
                    done(result);
                }
            }
        }
        self.flush(&mut waiting);
        if self.position.offset >= self.config.segment_bytes
            && self.poisoned.is_none()
            && let Err(error) = self.start_next_segment()
        {
            tracing::error!(%error, "cannot start the next WAL segment");
        }
    }

    /// Encodes one batch record into the group buffer.
    fn encode(&mut self, batch: &WriteBatch) -> Appended {
        let start = self.buffer.len();
        self.buffer
            .extend_from_slice(&[0; format::RECORD_HEADER_BYTES as usize]);
        self.table.encode(batch, self.sequence, &mut self.buffer);
        format::finish_record(&mut self.buffer, start);
        let appended = Appended {
            position: Position {
                segment: self.position.segment,
                offset: self.position.offset + self.buffer.len() as u64,
            },
            sequence: self.sequence,
        };
        self.sequence += 1;
        appended
    }

    /// Writes the group buffer, syncs under `always`, then completes the waiting appends.
    fn flush(&mut self, waiting: &mut Vec<(WriteBatch, Completion, Appended)>) {
        if waiting.is_empty() {
            return;
        }
        let mut result = self.file.write_all(&self.buffer);
        if result.is_ok() && self.config.fsync == FsyncPolicy::Always {
            result = self.file.sync_data();
            self.count(|s| s.fsyncs += 1);
        }
        let bytes = self.buffer.len() as u64;
        self.buffer.clear();
        match result {
            Ok(()) => {
                self.position.offset += bytes;
                if matches!(self.config.fsync, FsyncPolicy::Batch(_)) && self.dirty_since.is_none()
                {
                    self.dirty_since = Some(Instant::now());
                }
                let records = waiting.len() as u64;
                let position = self.position;
                self.count(|s| {
                    s.records += records;
                    s.bytes += bytes;
                    s.writes += 1;
                    s.position = position;
                });
                for (batch, done, appended) in waiting.drain(..) {
                    done(Ok(appended), batch);
                }
            }
            Err(error) => {
                let reason = format!("writing segment {}: {error}", self.position.segment);
                tracing::error!(%reason, "WAL write failed; refusing further writes until restart");
                self.poisoned = Some(reason.clone());
                for (batch, done, _) in waiting.drain(..) {
                    done(Err(Error::Poisoned(reason.clone())), batch);
                }
            }
        }
    }

    fn sync(&mut self) {
        self.dirty_since = None;
        if let Err(error) = self.file.sync_data() {
            let reason = format!("syncing segment {}: {error}", self.position.segment);
            tracing::error!(%reason, "WAL fsync failed; refusing further writes until restart");
            self.poisoned = Some(reason);
        }
        self.count(|s| s.fsyncs += 1);
    }

    fn start_next_segment(&mut self) -> Result<Position> {
        if self.config.fsync != FsyncPolicy::Never {
            self.file
                .sync_data()
                .map_err(|e| Error::io("syncing", &self.segment_path(), e))?;
        }
        let segment = self.position.segment + 1;
        self.file = create_segment(&self.config.directory, segment)?;
        self.position = Position {
            segment,
            offset: format::SEGMENT_HEADER_BYTES,
        };
        self.table.clear();
        self.dirty_since = None;
        let position = self.position;
        self.count(|s| {
            s.segments_created += 1;
            s.position = position;
        });
        Ok(self.position)
    }

    fn segment_path(&self) -> PathBuf {
        self.config
            .directory
            .join(segment_file_name(self.position.segment))
    }

    fn count(&self, update: impl FnOnce(&mut WalStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            update(&mut stats);
        }
    }
}

/// Creates segment `segment` with its header, durable in its directory.
fn create_segment(directory: &Path, segment: u64) -> Result<File> {
    let path = directory.join(segment_file_name(segment));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io("creating", &path, e))?;
    file.write_all(&format::encode_segment_header(segment))
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io("writing the header of", &path, e))?;
    sync_directory(directory)?;
    Ok(file)
}

/// Makes a directory's entries (created, renamed, deleted files) durable.
pub(crate) fn sync_directory(directory: &Path) -> Result<()> {
    File::open(directory)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", directory, e))
}
