//! The in-memory metric store: cc-metric-store's data model, float32 buffers, and its query
//! semantics with Strata's decisions (../shared/docs/COMPAT.md §2, §3, §14).
//!
//! - **Tree.** cluster → host → level type+id (`hwthread3`) → sub-level (`netib0`). Each host
//!   subtree has its own lock; writers and readers of different hosts never wait for each other.
//! - **Buffers.** A series is a chain of buffers of [`BUFFER_CAPACITY`] float32 slots at the
//!   metric's frequency; no timestamps are stored. Gaps are NaN, the last write to a slot wins,
//!   late samples go into the older buffer that covers them. A buffer keeps 128-slot blocks
//!   sealed (encoded losslessly, [`block`]) behind one raw block being written.
//! - **Writes** arrive as a [`WriteBatch`]: names in one arena, samples by span. The same batch
//!   is what the write-ahead log records, so ingest is decode → log → [`Store::write`].
//! - **Reads** ([`Store::query`]) expand a query into selectors, collect the series they reach,
//!   aggregate over the union of their windows, resample ([`Resampler`]), and compute stats.
//! - **Copies** in and out ([`HostImage`]): whole hosts for snapshots and imports; one series
//!   at a time by sample time for the Parquet archive ([`Store::series_names`],
//!   [`Store::export_series`], [`HostImage::add_samples`]); one metric of a host for a query
//!   that merges the archive with memory in a [`Store::scratch`] ([`Store::export_metric`],
//!   [`Store::memory_start`]).
//! - **Memory.** Exact buffer counts, and an estimate of the tree's own allocations, are kept
//!   on every change ([`Store::memory_bytes`], [`Store::structure_bytes`]); retention
//!   ([`Store::free_before`]) and the memory cap ([`Store::enforce_memory_cap`]) free the
//!   oldest buffers first, into a bounded pool; [`Store::seal_idle`] seals the raw tails of
//!   series that stopped.
//!
//! No I/O, no async: the server crate drives this.

mod batch;
pub mod block;
mod buffer;
mod fxhash;
mod image;
mod inspect;
mod level;
mod memory;
mod metric;
mod name;
mod pool;
mod query;
mod resample;
mod store;
pub mod varint;

pub use batch::{BatchMark, BatchSample, LevelName, SampleNames, SeriesKey, WriteBatch};
pub use buffer::{BLOCKS_PER_BUFFER, BUFFER_CAPACITY};
pub use fxhash::{FxBuildHasher, FxHasher, same_bytes, same_text};
pub use image::{
    BlockBuffer, BlockSeries, HostBlocks, HostImage, ImportReport, LevelImage, Run, SAMPLE_TIME_S,
    SeriesImage, StoredBlock,
};
pub use inspect::{DebugBuffer, DebugLevel, HealthState, HostHealth, MetricHealth};
pub use metric::{Aggregation, FREQUENCY_S, MetricConfig, UnknownAggregation};
pub use name::{InvalidName, NameError, check_name};
pub use query::{
    POINTS_PER_SERIES_MAX, Query, QueryError, ReadOptions, SeriesData, SeriesResult, Stats,
};
pub use resample::{NotAMultiple, Resampler, ResamplerKind};
pub use store::{
    DropCounts, MemoryCapOutcome, OTHER_METRICS, Store, StoreConfig, StoreLimits, StoreStats,
    WriteReport,
};
