//! [`Encoder`]: a Parquet file's row groups, encoded in two lanes so that a pass uses two
//! cores. The five string columns are constant within a series, but Parquet's dictionary
//! encoder interns them value by value: about half of the work (`perf` of an archive pass).
//! They are encoded on a worker thread, the numeric columns on the caller's; each row group's
//! column chunks are then appended to the file in column order.

use crate::format;
use arrow_array::{ArrayRef, Float32Array, Int64Array, StringArray};
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowSchemaConverter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// The leading string columns: cluster, hostname, metric, scope, scope_id.
pub(crate) const STRING_COLUMNS: usize = 5;
/// Runs of rows queued for the string lane: how far the caller may run ahead of it.
const LANE_QUEUE: usize = 64;

/// Work for the string lane.
enum Job {
    /// The string columns' writers of a new row group.
    Start(Vec<ArrowColumnWriter>),
    /// `rows` rows whose string columns hold `values`.
    Rows {
        values: [String; STRING_COLUMNS],
        rows: usize,
    },
    /// Close the row group's string columns and send their chunks.
    Close(SyncSender<Result<Vec<ArrowColumnChunk>>>),
}

/// Memory the string lane's writers hold, published after each run it encodes.
#[derive(Default)]
struct LaneSize {
    memory: AtomicUsize,
}

pub(crate) struct Encoder {
    file: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// The numeric columns' writers of the open row group (none open: empty).
    numbers: Vec<ArrowColumnWriter>,
    lane: Lane,
    lane_size: Arc<LaneSize>,
    group_rows: usize,
    groups: usize,
}

impl Encoder {
    pub(crate) fn new(file: File, properties: WriterProperties) -> Result<Self> {
        let schema = format::schema();
        let properties = Arc::new(properties);
        let parquet_schema = ArrowSchemaConverter::new()
            .with_coerce_types(properties.coerce_types())
            .convert(&schema)?;
        // No embedded Arrow schema: readers see the plain Parquet types, exactly as in a
        // cc-metric-store file.
        let file = SerializedFileWriter::new(file, parquet_schema.root_schema_ptr(), properties)?;
        let factory = ArrowRowGroupWriterFactory::new(&file, schema.clone());
        let lane_size = Arc::new(LaneSize::default());
        let (jobs, receiver) = sync_channel(LANE_QUEUE);
        let worker = {
            let (schema, lane_size) = (schema.clone(), lane_size.clone());
            std::thread::Builder::new()
                .name("archive-strings".into())
                .spawn(move || string_lane(&schema, &receiver, &lane_size))
                .map_err(|e| ParquetError::External(Box::new(e)))?
        };
        Ok(Self {
            file,
            factory,
            schema,
            numbers: Vec::new(),
            lane: Lane {
                jobs: Some(jobs),
                worker: Some(worker),
            },
            lane_size,
            group_rows: 0,
            groups: 0,
        })
    }

    /// Adds `rows` (timestamp, frequency, value) of one series, whose string columns hold
    /// `strings`, to the open row group (opening one if none is).
    pub(crate) fn write(
        &mut self,
        strings: [&str; STRING_COLUMNS],
        rows: &[(i64, i64, f32)],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if self.numbers.is_empty() {
            let mut writers = self.factory.create_column_writers(self.groups)?;
            self.numbers = writers.split_off(STRING_COLUMNS);
            self.lane.send(Job::Start(writers))?;
        }
        self.lane.send(Job::Rows {
            values: strings.map(str::to_string),
            rows: rows.len(),
        })?;
        let columns: [ArrayRef; 3] = [
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.2))),
        ];
        let fields = self.schema.fields().iter().skip(STRING_COLUMNS);
        for ((writer, field), column) in self.numbers.iter_mut().zip(fields).zip(&columns) {
            for leaf in compute_leaves(field, column)? {
                writer.write(&leaf)?;
            }
        }
        self.group_rows += rows.len();
        Ok(())
    }

    /// Rows in the open row group.
    pub(crate) fn group_rows(&self) -> usize {
        self.group_rows
    }

    /// Encoded bytes of the open row group's numeric columns. The string columns (runs of one
    /// value per series: a few bytes each) are left out, so that row group boundaries never
    /// depend on how far the string lane has got.
    pub(crate) fn group_bytes(&self) -> usize {
        self.numbers
            .iter()
            .map(ArrowColumnWriter::get_estimated_total_bytes)
            .sum()
    }

    /// Memory the open row group's writers hold (the string lane's as of its last run).
    pub(crate) fn memory_size(&self) -> usize {
        let numbers: usize = self
            .numbers
            .iter()
            .map(ArrowColumnWriter::memory_size)
            .sum();
        numbers + self.lane_size.memory.load(Ordering::Relaxed)
    }

    /// Row groups written to the file.
    pub(crate) fn groups(&self) -> usize {
        self.groups
    }

    /// Writes the open row group to the file (nothing when none is open).
    pub(crate) fn close_group(&mut self) -> Result<()> {
        if self.numbers.is_empty() {
            return Ok(());
        }
        let (reply, chunks) = sync_channel(1);
        self.lane.send(Job::Close(reply))?;
        let strings = chunks.recv().map_err(|_| lane_gone())??;
        let numbers = std::mem::take(&mut self.numbers)
            .into_iter()
            .map(ArrowColumnWriter::close)
            .collect::<Result<Vec<_>>>()?;
        let mut group = self.file.next_row_group()?;
        for chunk in strings.into_iter().chain(numbers) {
            chunk.append_to_row_group(&mut group)?;
        }
        group.close()?;
        self.groups += 1;
        self.group_rows = 0;
        Ok(())
    }

    /// Writes the open row group and the footer; the file, not yet synced.
    pub(crate) fn finish(mut self) -> Result<File> {
        self.close_group()?;
        self.file.into_inner()
    }
}

/// The string lane's queue and thread; dropped, it closes the queue and waits for the thread.
struct Lane {
    jobs: Option<SyncSender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl Lane {
    fn send(&self, job: Job) -> Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(lane_gone)?;
        jobs.send(job).map_err(|_| lane_gone())
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(worker) = self.worker.take() {
            // A panic in the lane was already reported as a failed write or close.
            let _ = worker.join();
        }
    }
}

fn lane_gone() -> ParquetError {
    ParquetError::General("the archive's string encoder thread stopped".into())
}

/// The string lane: encodes runs of repeated strings until its queue closes. An error is kept
/// and answered at the row group's close.
fn string_lane(schema: &SchemaRef, jobs: &Receiver<Job>, size: &LaneSize) {
    let mut writers = Vec::new();
    let mut failed = None;
    for job in jobs {
        match job {
            Job::Start(new) => {
                writers = new;
                failed = None;
            }
            Job::Rows { values, rows } => {
                if failed.is_none()
                    && let Err(error) = write_strings(schema, &mut writers, &values, rows)
                {
                    failed = Some(error);
                }
                let memory = writers.iter().map(ArrowColumnWriter::memory_size).sum();
                size.memory.store(memory, Ordering::Relaxed);
            }
            Job::Close(reply) => {
                let chunks = match failed.take() {
                    Some(error) => Err(error),
                    None => std::mem::take(&mut writers)
                        .into_iter()
                        .map(ArrowColumnWriter::close)
                        .collect(),
                };
                size.memory.store(0, Ordering::Relaxed);
                // The caller waits for it; gone, it has failed already.
                let _ = reply.send(chunks);
            }
        }
    }
}

fn write_strings(
    schema: &SchemaRef,
    writers: &mut [ArrowColumnWriter],
    values: &[String; STRING_COLUMNS],
    rows: usize,
) -> Result<()> {
    for ((writer, field), value) in writers.iter_mut().zip(schema.fields()).zip(values) {
        let column: ArrayRef = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            value, rows,
        )));
        for leaf in compute_leaves(field, &column)? {
            writer.write(&leaf)?;
        }
    }
    Ok(())
}
