//! The archive file format: cc-metric-store's 8 columns, the level-name ↔ scope mapping, and
//! the writer settings that make Strata's files cheap to read back.
//!
//! The columns, their names, order, physical/logical types and `REQUIRED` repetition are exactly
//! cc-metric-store v1.5.4's (COMPAT.md §6.7), so its tools read Strata's files and Strata reads
//! its files. What Strata adds lives only in places a reader may ignore: the row order (sorted by
//! `SORT_KEY`, declared as `sorting_columns`), page statistics with a column and offset index,
//! bounded row groups and pages, and key-value metadata (`strata.format`, period start and end).

use arrow_schema::{DataType, Field, Schema};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use std::sync::Arc;

/// Column names in file order.
pub const COLUMNS: [&str; 8] = [
    CLUSTER, HOSTNAME, METRIC, SCOPE, SCOPE_ID, TIMESTAMP, FREQUENCY, VALUE,
];
pub const CLUSTER: &str = "cluster";
pub const HOSTNAME: &str = "hostname";
pub const METRIC: &str = "metric";
pub const SCOPE: &str = "scope";
pub const SCOPE_ID: &str = "scope_id";
/// Unix seconds of the sample.
pub const TIMESTAMP: &str = "timestamp";
/// Seconds between the series' samples.
pub const FREQUENCY: &str = "frequency";
/// The sample as f32; NaN (no value) is never written.
pub const VALUE: &str = "value";

/// The rows' order: these columns (hostname, metric, scope, scope_id, timestamp) ascending, strings
/// by bytes (so `scope_id "10" < "2"`). Declared in every row group's `sorting_columns`.
pub const SORT_KEY: [usize; 5] = [1, 2, 3, 4, 5];

/// `scope` of a host-level row.
pub const NODE_SCOPE: &str = "node";

/// Level-name prefixes that become a scope when a digit follows, in cc-metric-store's order
/// (`parseScopeFromName`); `cpu` is stored as `hwthread`.
const SCOPE_PREFIXES: [(&str, &str); 6] = [
    ("socket", "socket"),
    ("memoryDomain", "memoryDomain"),
    ("core", "core"),
    ("hwthread", "hwthread"),
    ("cpu", "hwthread"),
    ("accelerator", "accelerator"),
];

/// Key-value metadata: the file layout version (`FORMAT_VERSION`).
pub const KEY_FORMAT: &str = "strata.format";
/// Key-value metadata: first second of the period the file holds (unix s, inclusive).
pub const KEY_PERIOD_START: &str = "strata.period_start";
/// Key-value metadata: end of the period (unix s, exclusive).
pub const KEY_PERIOD_END: &str = "strata.period_end";
/// Value of `KEY_FORMAT` for files this crate writes.
pub const FORMAT_VERSION: &str = "1";

/// zstd level: cc-metric-store's parquet-go default is also 3.
pub const ZSTD_LEVEL: i32 = 3;
/// Largest dictionary of the value column in one column chunk; past it, byte stream split.
pub const VALUE_DICTIONARY_BYTES: usize = 64 * 1024;
/// Rows per data page, so the page index can skip inside one host's rows.
pub const PAGE_ROWS: usize = 8192;
/// A row group is closed at the first host boundary once it holds this many rows.
pub const ROW_GROUP_ROWS_MIN: usize = 64 * 1024;
/// Hard cap: a big host is split into several row groups.
pub const ROW_GROUP_ROWS_MAX: usize = 1024 * 1024;
/// Hard cap on the encoded size of a row group's numeric columns (the string columns add a
/// few bytes per series), which the writer keeps in memory until the group is closed.
pub const ROW_GROUP_BYTES_MAX: usize = 32 * 1024 * 1024;

// A page never spans row groups, and a host boundary can always close a group below the cap.
const _: () = assert!(PAGE_ROWS < ROW_GROUP_ROWS_MIN && ROW_GROUP_ROWS_MIN < ROW_GROUP_ROWS_MAX);

/// The file schema: 8 non-nullable columns (strings as `Utf8`, so readers see plain `string`).
pub fn schema() -> Arc<Schema> {
    let string = |name| Field::new(name, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        string(CLUSTER),
        string(HOSTNAME),
        string(METRIC),
        string(SCOPE),
        string(SCOPE_ID),
        Field::new(TIMESTAMP, DataType::Int64, false),
        Field::new(FREQUENCY, DataType::Int64, false),
        Field::new(VALUE, DataType::Float32, false),
    ]))
}

/// cc-metric-store's `parseScopeFromName`: `(scope, scope_id)` of a level below the host.
///
/// `socket0` → (`socket`, `0`), `cpu3` → (`hwthread`, `3`),
/// `accelerator00000000:3b:00.0` → (`accelerator`, `00000000:3b:00.0`). A prefix counts only when
/// a digit follows it; any other name is its own scope with an empty id (`network` → (`network`,
/// `""`), `socket` → (`socket`, `""`)). The host level itself is (`NODE_SCOPE`, `""`), which
/// callers write for an empty level list.
pub fn scope_of(level: &str) -> (&str, &str) {
    for (prefix, scope) in SCOPE_PREFIXES {
        if let Some(id) = level.strip_prefix(prefix)
            && id.as_bytes().first().is_some_and(u8::is_ascii_digit)
        {
            return (scope, id);
        }
    }
    (level, "")
}

/// `(scope, scope_id)` stored for a series at `levels` below its host: the innermost level's
/// [`scope_of`], or (`NODE_SCOPE`, `""`) at the host level. Within a host and metric, series must
/// reach [`crate::PeriodWriter::add_series`] ordered by this pair (by bytes), which is not the
/// order of level names: `node` sorts between `accelerator…` and `socket…`, and `cpu3` sorts as
/// `hwthread`/`3`.
pub fn stored_scope<'a>(levels: &[&'a str]) -> (&'a str, &'a str) {
    levels
        .last()
        .map_or((NODE_SCOPE, ""), |level| scope_of(level))
}

/// The level name a row's `(scope, scope_id)` reads back as: `None` for the host level (`node`),
/// else `scope` followed by `scope_id`.
///
/// Not an exact inverse of `scope_of`, like cc-metric-store's archive: `cpu3` reads back as
/// `hwthread3`, and a level below a level keeps only its own name.
pub fn level_of(scope: &str, scope_id: &str) -> Option<String> {
    (scope != NODE_SCOPE || !scope_id.is_empty()).then(|| format!("{scope}{scope_id}"))
}

/// Tunable writer limits. `Default` gives the constants above; tests shrink them to reach row
/// group and page boundaries with little data.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterOptions {
    /// See `ROW_GROUP_ROWS_MIN`.
    pub row_group_rows_min: usize,
    /// See `ROW_GROUP_ROWS_MAX`.
    pub row_group_rows_max: usize,
    /// See `ROW_GROUP_BYTES_MAX`.
    pub row_group_bytes_max: usize,
    /// See `PAGE_ROWS`.
    pub page_rows: usize,
    /// See `ZSTD_LEVEL`.
    pub zstd_level: i32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            row_group_rows_min: ROW_GROUP_ROWS_MIN,
            row_group_rows_max: ROW_GROUP_ROWS_MAX,
            row_group_bytes_max: ROW_GROUP_BYTES_MAX,
            page_rows: PAGE_ROWS,
            zstd_level: ZSTD_LEVEL,
        }
    }
}

/// Parquet writer properties for one period's file; `None` when an option is out of range.
pub fn writer_properties(
    options: &WriterOptions,
    period_start_s: i64,
    period_end_s: i64,
) -> Option<WriterProperties> {
    let zstd = ZstdLevel::try_new(options.zstd_level).ok()?;
    let nonzero = |n: usize| (n > 0).then_some(n);
    let sorting = SORT_KEY
        .iter()
        .map(|&column| {
            Some(SortingColumn {
                column_idx: i32::try_from(column).ok()?,
                descending: false,
                nulls_first: false,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let timestamp = ColumnPath::from(TIMESTAMP);
    Some(
        WriterProperties::builder()
            // Version 1 data pages: every reader cc-metric-store users have (pyarrow, DuckDB,
            // parquet-go, Spark) reads them.
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(Compression::ZSTD(zstd))
            .set_max_row_group_row_count(Some(nonzero(options.row_group_rows_max)?))
            .set_max_row_group_bytes(Some(nonzero(options.row_group_bytes_max)?))
            .set_data_page_row_count_limit(nonzero(options.page_rows)?)
            // The page row limit is checked between mini-batches of this size.
            .set_write_batch_size(options.page_rows.min(1024))
            // Chunk and page min/max, and the column index built from them.
            .set_statistics_enabled(EnabledStatistics::Page)
            // Timestamps step by the frequency: delta encoding makes them nearly free.
            .set_column_dictionary_enabled(timestamp.clone(), false)
            .set_column_encoding(timestamp, Encoding::DELTA_BINARY_PACKED)
            // Values: a dictionary while it stays small, then byte stream split (+ zstd) for
            // the rest of the column chunk. Measured (`cargo bench --bench write`, noisy floats;
            // `scripts/bench-archive.sh`, the shared workload's quantised values): byte stream
            // split alone 3.07 / 1.82 bytes per sample, a dictionary of up to 1 MiB 5.40 / 1.46,
            // up to VALUE_DICTIONARY_BYTES 3.39 / 1.40. pyarrow, DuckDB and parquet-go read all.
            .set_column_encoding(ColumnPath::from(VALUE), Encoding::BYTE_STREAM_SPLIT)
            .set_column_dictionary_page_size_limit(ColumnPath::from(VALUE), VALUE_DICTIONARY_BYTES)
            .set_sorting_columns(Some(sorting))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(KEY_FORMAT.to_string(), FORMAT_VERSION.to_string()),
                KeyValue::new(KEY_PERIOD_START.to_string(), period_start_s.to_string()),
                KeyValue::new(KEY_PERIOD_END.to_string(), period_end_s.to_string()),
            ]))
            .build(),
    )
}
