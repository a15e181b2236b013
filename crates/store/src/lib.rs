//! The in-memory metric store (work in progress).

mod batch;
mod buffer;
mod inspect;
mod level;
mod metric;
mod pool;
mod query;
mod resample;
mod store;

pub use batch::{BatchSample, LevelName, SeriesKey, WriteBatch};
pub use buffer::BUFFER_CAPACITY;
pub use inspect::{DebugBuffer, DebugLevel, HealthState, HostHealth, MetricHealth};
pub use metric::{Aggregation, MetricConfig, UnknownAggregation};
pub use query::{
    POINTS_PER_SERIES_MAX, Query, QueryError, ReadOptions, SeriesData, SeriesResult, Stats,
};
pub use resample::{NotAMultiple, Resampler, ResamplerKind};
pub use store::{
    DropCounts, MemoryCapOutcome, OTHER_METRICS, Store, StoreConfig, StoreStats, WriteReport,
};
