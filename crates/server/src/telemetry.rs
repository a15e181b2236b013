//! Metrics about the store itself, served at `GET /metrics` in the OpenMetrics text format,
//! and rate-limited logging for events that can come in floods.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use strata_store::{DropCounts, Store};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MetricLabel {
    pub metric: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabel {
    pub cluster: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabel {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionLabel {
    pub subscription: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionEventLabel {
    pub subscription: String,
    pub event: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionResultLabel {
    pub subscription: String,
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionKindLabel {
    pub subscription: String,
    pub kind: &'static str,
}

/// NATS ingest (`strata_nats_*`), per subscription (label: its subject). Filled by the
/// strata-nats crate; the samples and rejected lines of NATS messages are counted in the
/// `strata_ingest_*` metrics like those of HTTP requests.
#[derive(Debug, Clone, Default)]
pub struct NatsMetrics {
    pub connected: Family<SubscriptionLabel, Gauge>,
    pub events: Family<SubscriptionEventLabel, Counter>,
    pub messages: Family<SubscriptionResultLabel, Counter>,
    pub received_bytes: Family<SubscriptionLabel, Counter>,
    pub slow_consumer_drops: Family<SubscriptionLabel, Counter>,
    pub jetstream_acks: Family<SubscriptionKindLabel, Counter>,
    pub redelivered: Family<SubscriptionLabel, Counter>,
    pub jetstream_errors: Family<SubscriptionKindLabel, Counter>,
}

impl NatsMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "nats_connected",
            "1 while the subscription's NATS client is connected",
            self.connected.clone(),
        );
        r.register(
            "nats_events",
            "NATS client events (connected, disconnected, slow_consumer, server_error, client_error, …)",
            self.events.clone(),
        );
        r.register(
            "nats_messages",
            "NATS messages handled, by result: stored, partial (some lines rejected), rejected \
             (every line), empty, too_large (over limits.body-size), failed (not stored: the WAL \
             refused the write, or a bug), panicked (a bug), abandoned (not handled within the \
             shutdown timeout; JetStream delivers it again)",
            self.messages.clone(),
        );
        r.register(
            "nats_received_bytes",
            "Payload bytes of NATS messages received",
            self.received_bytes.clone(),
        );
        r.register(
            "nats_slow_consumer_drops",
            "Core NATS messages dropped because limits.nats-pending-messages or \
             nats-pending-bytes were waiting (JetStream pulls only what fits)",
            self.slow_consumer_drops.clone(),
        );
        r.register(
            "nats_jetstream_acks",
            "JetStream acknowledgements sent, by kind (ack, nak, progress, term)",
            self.jetstream_acks.clone(),
        );
        r.register(
            "nats_redelivered_messages",
            "JetStream messages delivered more than once",
            self.redelivered.clone(),
        );
        r.register(
            "nats_jetstream_errors",
            "JetStream failures, by kind (stream, consumer, ack_policy, filter_subject, messages, ack)",
            self.jetstream_errors.clone(),
        );
    }
}

type HistogramFamily = Family<RouteLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric Strata exports.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    /// Remote-write forwarding (`strata_remote_*`), per endpoint.
    pub remote: strata_forward::metrics::Metrics,
    pub nats: NatsMetrics,
    pub samples_written: Counter,
    pub lines_rejected: Family<ReasonLabel, Counter>,
    pub samples_dropped: Family<ReasonLabel, Counter>,
    unknown_metric_samples: Family<MetricLabel, Counter>,
    pub body_bytes: Counter,
    pub spare_batch_bytes: Gauge,
    pub compute_refused: Counter,
    pub connections_open: Gauge,
    pub connections_refused: Counter,
    pub accept_errors: Counter,
    pub tls_reloads: Family<OutcomeLabel, Counter>,
    pub tls_handshake_failures: Family<ReasonLabel, Counter>,
    pub responses: Family<ResponseLabel, Counter>,
    pub request_seconds: HistogramFamily,
    pub retention_freed_buffers: Counter,
    pub archive_files: Counter,
    pub archive_samples: Counter,
    pub archive_failures: Counter,
    pub archive_bytes: Counter,
    pub archive_pass_seconds: Gauge<f64, AtomicU64>,
    pub archived_until: Family<ClusterLabel, Gauge>,
    archive_reads: Counter,
    archive_read_failures: Counter,
    archive_skipped_files: Counter,
    archive_footer_cache_bytes: Gauge,
    key_cache_hits: Counter,
    key_cache_misses: Counter,
    key_cache_entries: Gauge,
    key_cache_bytes: Gauge,
    snapshots: Counter,
    pub snapshot_failures: Counter,
    snapshot_bytes: Gauge,
    snapshot_referenced_bytes: Gauge,
    snapshot_compacted_bytes: Gauge,
    snapshot_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    wal_bytes: Gauge,
    wal_records: Gauge,
    wal_fsyncs: Gauge,
    wal_segment: Gauge,
    wal_healthy: Gauge,
    wal_series_table_bytes: Gauge,
    recovery_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    recovery_snapshot_samples: Gauge,
    recovery_replayed_samples: Gauge,
    recovery_torn_tail_bytes: Gauge,
    recovery_damaged_segments: Gauge,
    recovery_records_lost: Gauge,
    recovery_damaged_snapshots: Gauge,
    recovery_snapshot_samples_lost: Gauge,
    pub memory_cap_freed_buffers: Counter,
    store_hosts: Gauge,
    store_series: Gauge,
    store_samples: Gauge,
    store_buffers: Gauge,
    store_buffer_bytes: Gauge,
    store_encoded_bytes: Gauge,
    store_tail_bytes: Gauge,
    store_pool_bytes: Gauge,
    store_structure_bytes: Gauge,
    pub memory_cap_bytes: Gauge,
    memory_full: Gauge,
    resident_bytes: Gauge,
    /// Reads the allocator's statistics; set by the binary that installed the allocator.
    allocator: std::sync::OnceLock<AllocatorReader>,
    allocator_gauges: [Gauge; 6],
}

/// The global allocator's own view of its memory (jemalloc's `stats.*`), to tell the store's
/// data from fragmentation, dirty pages and metadata in the resident set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes the program holds (allocated and not freed).
    pub allocated: u64,
    /// Bytes of pages with live allocations: `allocated` plus rounding and free slots in them.
    pub active: u64,
    /// Bytes of the allocator's pages that are resident, its metadata included.
    pub resident: u64,
    /// Bytes of the allocator's own bookkeeping.
    pub metadata: u64,
    /// Bytes of address space mapped in active extents.
    pub mapped: u64,
    /// Bytes of address space kept mapped (but not resident) for reuse.
    pub retained: u64,
}

/// Reads [`AllocatorStats`]; `None` if the allocator cannot tell.
pub type AllocatorReader = fn() -> Option<AllocatorStats>;

/// Names and help of the `strata_allocator_*` gauges, in [`AllocatorStats::values`]' order.
const ALLOCATOR_GAUGES: [(&str, &str); 6] = [
    (
        "allocator_allocated_bytes",
        "Bytes the allocator has handed out and not got back",
    ),
    (
        "allocator_active_bytes",
        "Bytes of the allocator's pages that hold allocations (allocated plus size-class rounding and free slots)",
    ),
    (
        "allocator_resident_bytes",
        "Bytes of the allocator's resident pages, free ones not yet returned to the system and metadata included",
    ),
    (
        "allocator_metadata_bytes",
        "Bytes of the allocator's own bookkeeping",
    ),
    (
        "allocator_mapped_bytes",
        "Bytes of address space the allocator has mapped in active extents",
    ),
    (
        "allocator_retained_bytes",
        "Bytes of address space the allocator keeps for reuse without holding memory",
    ),
];

impl AllocatorStats {
    fn values(&self) -> [u64; 6] {
        [
            self.allocated,
            self.active,
            self.resident,
            self.metadata,
            self.mapped,
            self.retained,
        ]
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("strata");
        let remote = strata_forward::metrics::Metrics::register(&mut registry);
        let mut telemetry = Self {
            registry,
            remote,
            nats: NatsMetrics::default(),
            samples_written: Counter::default(),
            lines_rejected: Family::default(),
            samples_dropped: Family::default(),
            unknown_metric_samples: Family::default(),
            body_bytes: Counter::default(),
            spare_batch_bytes: Gauge::default(),
            compute_refused: Counter::default(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            accept_errors: Counter::default(),
            tls_reloads: Family::default(),
            tls_handshake_failures: Family::default(),
            responses: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            retention_freed_buffers: Counter::default(),
            archive_files: Counter::default(),
            archive_samples: Counter::default(),
            archive_failures: Counter::default(),
            archive_bytes: Counter::default(),
            archive_pass_seconds: Gauge::default(),
            archived_until: Family::default(),
            archive_reads: Counter::default(),
            archive_read_failures: Counter::default(),
            archive_skipped_files: Counter::default(),
            archive_footer_cache_bytes: Gauge::default(),
            key_cache_hits: Counter::default(),
            key_cache_misses: Counter::default(),
            key_cache_entries: Gauge::default(),
            key_cache_bytes: Gauge::default(),
            snapshots: Counter::default(),
            snapshot_failures: Counter::default(),
            snapshot_bytes: Gauge::default(),
            snapshot_referenced_bytes: Gauge::default(),
            snapshot_compacted_bytes: Gauge::default(),
            snapshot_seconds: Gauge::default(),
            wal_bytes: Gauge::default(),
            wal_records: Gauge::default(),
            wal_fsyncs: Gauge::default(),
            wal_segment: Gauge::default(),
            wal_healthy: Gauge::default(),
            wal_series_table_bytes: Gauge::default(),
            recovery_seconds: Gauge::default(),
            recovery_snapshot_samples: Gauge::default(),
            recovery_replayed_samples: Gauge::default(),
            recovery_torn_tail_bytes: Gauge::default(),
            recovery_damaged_segments: Gauge::default(),
            recovery_records_lost: Gauge::default(),
            recovery_damaged_snapshots: Gauge::default(),
            recovery_snapshot_samples_lost: Gauge::default(),
            memory_cap_freed_buffers: Counter::default(),
            store_hosts: Gauge::default(),
            store_series: Gauge::default(),
            store_samples: Gauge::default(),
            store_buffers: Gauge::default(),
            store_buffer_bytes: Gauge::default(),
            store_encoded_bytes: Gauge::default(),
            store_tail_bytes: Gauge::default(),
            store_pool_bytes: Gauge::default(),
            store_structure_bytes: Gauge::default(),
            memory_cap_bytes: Gauge::default(),
            memory_full: Gauge::default(),
            resident_bytes: Gauge::default(),
            allocator: std::sync::OnceLock::new(),
            allocator_gauges: Default::default(),
        };
        let r = &mut telemetry.registry;
        telemetry.nats.register(r);
        r.register(
            "ingest_samples",
            "Samples stored in memory",
            telemetry.samples_written.clone(),
        );
        r.register(
            "ingest_lines_rejected",
            "Input lines rejected with a 400, by reason",
            telemetry.lines_rejected.clone(),
        );
        r.register(
            "ingest_samples_dropped",
            "Valid samples the store did not keep, by reason (the request still succeeded)",
            telemetry.samples_dropped.clone(),
        );
        r.register(
            "ingest_unknown_metric_samples",
            "Samples dropped because their metric is not configured, by metric",
            telemetry.unknown_metric_samples.clone(),
        );
        r.register(
            "ingest_body_bytes",
            "Request body bytes read by /api/write, after decompression",
            telemetry.body_bytes.clone(),
        );
        r.register(
            "ingest_spare_batch_bytes",
            "Memory of emptied write batches kept for the next requests (freed after a second unused)",
            telemetry.spare_batch_bytes.clone(),
        );
        r.register(
            "ingest_key_cache_hits",
            "Lines decoded from the line-key cache (series key seen before)",
            telemetry.key_cache_hits.clone(),
        );
        r.register(
            "ingest_key_cache_misses",
            "Lines parsed in full (series key not cached, or a line the cache does not serve)",
            telemetry.key_cache_misses.clone(),
        );
        r.register(
            "ingest_key_cache_entries",
            "Series keys in the line-key cache",
            telemetry.key_cache_entries.clone(),
        );
        r.register(
            "ingest_key_cache_bytes",
            "Memory of the line-key cache's entries (keys, names, per-entry overhead)",
            telemetry.key_cache_bytes.clone(),
        );
        r.register(
            "http_compute_refused",
            "Query, healthcheck and debug requests refused with 503: no turn within half \
             the request timeout (limits.concurrent-queries)",
            telemetry.compute_refused.clone(),
        );
        r.register(
            "http_connections",
            "Open client connections",
            telemetry.connections_open.clone(),
        );
        r.register(
            "http_connections_refused",
            "Connections answered 503 and closed because limits.connections were open",
            telemetry.connections_refused.clone(),
        );
        r.register(
            "http_accept_errors",
            "Failed accepts (e.g. out of file descriptors)",
            telemetry.accept_errors.clone(),
        );
        r.register(
            "tls_reloads",
            "Loads of the HTTPS certificate and key after SIGHUP or a change of the files, \
             by outcome (failed: the previous pair is still served)",
            telemetry.tls_reloads.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "HTTPS connections closed before the TLS handshake completed, by reason \
             (timeout: not within limits.header-timeout; plain_http: an unencrypted request, \
             answered 400; error: a protocol or certificate error)",
            telemetry.tls_handshake_failures.clone(),
        );
        r.register(
            "http_responses",
            "HTTP responses by route and status",
            telemetry.responses.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time from request to response, by route",
            telemetry.request_seconds.clone(),
        );
        r.register(
            "retention_freed_buffers",
            "Buffers freed because they left the retention window",
            telemetry.retention_freed_buffers.clone(),
        );
        r.register(
            "archive_files",
            "Archive files written (cleanup.mode archive)",
            telemetry.archive_files.clone(),
        );
        r.register(
            "archive_samples",
            "Samples written to archive files",
            telemetry.archive_samples.clone(),
        );
        r.register(
            "archive_failures",
            "Archive periods or state writes that failed; their data stays in memory",
            telemetry.archive_failures.clone(),
        );
        r.register(
            "archive_bytes",
            "Bytes of archive files written",
            telemetry.archive_bytes.clone(),
        );
        r.register(
            "archive_pass_duration_seconds",
            "Wall time of the last archive pass",
            telemetry.archive_pass_seconds.clone(),
        );
        r.register(
            "archive_end_seconds",
            "Per cluster, the end (unix s) of what is archived: alert when now minus this \
             exceeds retention plus two archive intervals",
            telemetry.archived_until.clone(),
        );
        r.register(
            "archive_reads",
            "Queries' reads of the archive (one per query entry older than memory)",
            telemetry.archive_reads.clone(),
        );
        r.register(
            "archive_read_failures",
            "Archive reads that failed as a whole; those queries answered from memory",
            telemetry.archive_read_failures.clone(),
        );
        r.register(
            "archive_skipped_files",
            "Archive files left out of a read because they could not be used (counted per read)",
            telemetry.archive_skipped_files.clone(),
        );
        r.register(
            "archive_footer_cache_bytes",
            "Memory of the cached Parquet footers of archive files",
            telemetry.archive_footer_cache_bytes.clone(),
        );
        r.register(
            "memory_cap_freed_buffers",
            "Buffers freed early to stay under the memory cap",
            telemetry.memory_cap_freed_buffers.clone(),
        );
        r.register(
            "store_hosts",
            "Hosts in memory",
            telemetry.store_hosts.clone(),
        );
        r.register(
            "store_series",
            "Series in memory",
            telemetry.store_series.clone(),
        );
        r.register(
            "store_samples",
            "Sample slots in memory, NaN-filled gaps included",
            telemetry.store_samples.clone(),
        );
        r.register(
            "store_buffers",
            "Buffers in memory",
            telemetry.store_buffers.clone(),
        );
        r.register(
            "store_buffer_bytes",
            "Heap bytes of buffer data",
            telemetry.store_buffer_bytes.clone(),
        );
        r.register(
            "store_encoded_bytes",
            "Of the buffer data, bytes of sealed (encoded) blocks",
            telemetry.store_encoded_bytes.clone(),
        );
        r.register(
            "store_tail_bytes",
            "Of the buffer data, bytes of raw float32 tail slots (the rest is the tails' room)",
            telemetry.store_tail_bytes.clone(),
        );
        r.register(
            "store_pool_bytes",
            "Heap bytes of freed buffers kept for reuse",
            telemetry.store_pool_bytes.clone(),
        );
        r.register(
            "store_structure_bytes",
            "Heap bytes of the tree itself (hosts, levels, series, indexes, metric names), estimated",
            telemetry.store_structure_bytes.clone(),
        );
        r.register(
            "memory_cap_bytes",
            "Configured memory cap for buffers, pooled buffers and structure; 0 = unlimited",
            telemetry.memory_cap_bytes.clone(),
        );
        r.register(
            "memory_cap_full",
            "1 while the memory cap cannot be met by freeing old data: new hosts, levels and series are dropped (reason memory_cap)",
            telemetry.memory_full.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident set size of the process",
            telemetry.resident_bytes.clone(),
        );
        let gauges = [
            (
                "wal_bytes",
                "Bytes appended to the WAL since start",
                &telemetry.wal_bytes,
            ),
            (
                "wal_records",
                "Records appended to the WAL since start",
                &telemetry.wal_records,
            ),
            (
                "wal_fsyncs",
                "WAL fsyncs since start",
                &telemetry.wal_fsyncs,
            ),
            (
                "wal_segment",
                "Number of the WAL segment being written",
                &telemetry.wal_segment,
            ),
            (
                "wal_healthy",
                "1 while the WAL takes writes; 0 once a failed write or fsync made it refuse them until restart",
                &telemetry.wal_healthy,
            ),
            (
                "wal_series_table_bytes",
                "Estimated memory of the WAL writer's series refs for the current segment (a new segment starts past 256 MiB)",
                &telemetry.wal_series_table_bytes,
            ),
            (
                "snapshot_bytes",
                "Size of the newest snapshot",
                &telemetry.snapshot_bytes,
            ),
            (
                "snapshot_referenced_bytes",
                "Bytes of sealed blocks the newest snapshot referred to in older snapshots instead of writing them again",
                &telemetry.snapshot_referenced_bytes,
            ),
            (
                "snapshot_compacted_bytes",
                "Bytes the newest snapshot wrote again so that a mostly unreferenced older snapshot could be deleted",
                &telemetry.snapshot_compacted_bytes,
            ),
            (
                "recovery_snapshot_samples",
                "Samples loaded from snapshots at startup",
                &telemetry.recovery_snapshot_samples,
            ),
            (
                "recovery_replayed_samples",
                "Samples replayed from the WAL at startup",
                &telemetry.recovery_replayed_samples,
            ),
            (
                "recovery_torn_tail_bytes",
                "Bytes of an unfinished WAL write cut off at startup",
                &telemetry.recovery_torn_tail_bytes,
            ),
            (
                "recovery_damaged_segments",
                "WAL segments found damaged at startup",
                &telemetry.recovery_damaged_segments,
            ),
            (
                "recovery_records_lost",
                "WAL records lost to damage found at startup",
                &telemetry.recovery_records_lost,
            ),
            (
                "recovery_damaged_snapshots",
                "Snapshot files that could not be read at startup",
                &telemetry.recovery_damaged_snapshots,
            ),
            (
                "recovery_snapshot_samples_lost",
                "Samples of snapshot blocks that could not be loaded at startup (damaged, or in an older snapshot that is damaged or gone)",
                &telemetry.recovery_snapshot_samples_lost,
            ),
        ];
        for (name, help, gauge) in gauges {
            r.register(name, help, gauge.clone());
        }
        for ((name, help), gauge) in ALLOCATOR_GAUGES.iter().zip(&telemetry.allocator_gauges) {
            r.register(*name, *help, gauge.clone());
        }
        r.register(
            "snapshots",
            "Snapshots written",
            telemetry.snapshots.clone(),
        );
        r.register(
            "snapshot_failures",
            "Snapshots that failed",
            telemetry.snapshot_failures.clone(),
        );
        r.register(
            "snapshot_duration_seconds",
            "Time the newest snapshot took",
            telemetry.snapshot_seconds.clone(),
        );
        r.register(
            "recovery_duration_seconds",
            "Time the last startup recovery took",
            telemetry.recovery_seconds.clone(),
        );
        telemetry
    }

    /// Makes `read` the source of the `strata_allocator_*` gauges (0 until it is set: a
    /// library user's allocator is not known here). Only the first call counts.
    pub fn set_allocator(&self, read: AllocatorReader) {
        let _ = self.allocator.set(read);
    }

    /// Counts what the store refused to keep.
    pub fn record_drops(&self, dropped: &DropCounts) {
        for (reason, count) in dropped.reasons() {
            if count > 0 {
                self.samples_dropped
                    .get_or_create(&ReasonLabel { reason })
                    .inc_by(count as u64);
            }
        }
    }

    /// Makes what startup recovery found visible (it is also logged).
    pub fn record_recovery(&self, report: &crate::durability::RecoveryReport) {
        self.recovery_seconds.set(report.seconds);
        self.recovery_snapshot_samples
            .set(report.snapshot_samples as i64);
        self.recovery_replayed_samples
            .set(report.replay.samples as i64);
        self.recovery_torn_tail_bytes
            .set(report.replay.torn_tail.map_or(0, |(_, bytes)| bytes) as i64);
        self.recovery_damaged_segments
            .set(report.replay.damage.len() as i64);
        let lost: u64 = report
            .replay
            .damage
            .iter()
            .filter_map(|d| d.records_lost)
            .sum();
        self.recovery_records_lost.set(lost as i64);
        self.recovery_damaged_snapshots
            .set(report.damaged_snapshots.len() as i64);
        self.recovery_snapshot_samples_lost
            .set(report.snapshot_samples_lost as i64);
    }

    pub fn record_snapshot(&self, report: &crate::durability::SnapshotReport) {
        self.snapshots.inc();
        self.snapshot_bytes.set(report.bytes as i64);
        self.snapshot_referenced_bytes
            .set(report.referenced_bytes as i64);
        self.snapshot_compacted_bytes
            .set(report.compacted_bytes as i64);
        self.snapshot_seconds.set(report.seconds);
    }

    /// Refreshes the archive reader's metrics from its counts.
    pub fn record_archive_reads(&self, stats: strata_archive::ReadStats) {
        self.archive_reads
            .inner()
            .store(stats.reads, Ordering::Relaxed);
        self.archive_read_failures
            .inner()
            .store(stats.failures, Ordering::Relaxed);
        self.archive_skipped_files
            .inner()
            .store(stats.skipped_files, Ordering::Relaxed);
        self.archive_footer_cache_bytes
            .set(stats.footer_cache_bytes as i64);
    }

    /// Refreshes the line-key cache's metrics from its counts.
    pub fn record_key_cache(&self, stats: crate::keycache::KeyCacheStats) {
        self.key_cache_hits
            .inner()
            .store(stats.hits, Ordering::Relaxed);
        self.key_cache_misses
            .inner()
            .store(stats.misses, Ordering::Relaxed);
        self.key_cache_entries.set(stats.entries as i64);
        self.key_cache_bytes.set(stats.bytes as i64);
    }

    /// Renders every metric, refreshing the ones read from the store and the WAL first.
    pub fn render(
        &self,
        store: &Store,
        wal: Option<strata_wal::WalStats>,
        wal_healthy: bool,
    ) -> String {
        self.wal_healthy.set(i64::from(wal_healthy));
        if let Some(wal) = wal {
            self.wal_bytes.set(wal.bytes as i64);
            self.wal_records.set(wal.records as i64);
            self.wal_fsyncs.set(wal.fsyncs as i64);
            self.wal_segment.set(wal.position.segment as i64);
            self.wal_series_table_bytes
                .set(wal.series_table_bytes as i64);
        }
        let stats = store.stats();
        self.store_hosts.set(stats.hosts as i64);
        self.store_series.set(stats.series as i64);
        self.store_samples.set(stats.samples as i64);
        self.store_buffers.set(stats.buffers as i64);
        self.store_buffer_bytes.set(stats.buffer_bytes as i64);
        self.store_encoded_bytes.set(stats.encoded_bytes as i64);
        self.store_tail_bytes.set(stats.tail_bytes as i64);
        self.store_pool_bytes.set(stats.pool_bytes as i64);
        self.store_structure_bytes.set(stats.structure_bytes as i64);
        self.memory_full.set(i64::from(stats.memory_full));
        if let Some(bytes) = resident_bytes() {
            self.resident_bytes.set(bytes as i64);
        }
        if let Some(stats) = self.allocator.get().and_then(|read| read()) {
            for (gauge, value) in self.allocator_gauges.iter().zip(stats.values()) {
                gauge.set(value as i64);
            }
        }
        for (metric, count) in store.unknown_metric_counts() {
            let counter = self
                .unknown_metric_samples
                .get_or_create(&MetricLabel { metric });
            counter.inner().store(count, Ordering::Relaxed);
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// The resident set size from `/proc/self/statm` (Linux), in bytes.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The rise of resident memory over a stretch of work (Linux): the kernel's high-water mark
/// is reset at [`PeakResident::start`] (`/proc/self/clear_refs`), read back at the end.
#[derive(Debug)]
pub struct PeakResident {
    start_bytes: Option<u64>,
}

impl PeakResident {
    pub fn start() -> Self {
        // "5" resets the peak resident set size to the current one (Linux ≥ 4.0).
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Self {
            start_bytes: reset
                .then(|| status_kib("VmRSS:"))
                .flatten()
                .map(|kib| kib * 1024),
        }
    }

    /// Peak resident memory since [`PeakResident::start`] minus what it was then.
    pub fn extra_bytes(&self) -> Option<u64> {
        let peak = status_kib("VmHWM:")? * 1024;
        Some(peak.saturating_sub(self.start_bytes?))
    }
}

/// A `kB` field of `/proc/self/status` (both readings in one unit, whatever the page size).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Lets a log line through at most once per interval and counts what it held back, so a
/// flood of bad input cannot flood the log.
#[derive(Debug)]
pub struct LogLimiter {
    interval_s: i64,
    last_s: AtomicI64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    pub const fn new(interval_s: i64) -> Self {
        Self {
            interval_s,
            last_s: AtomicI64::new(i64::MIN),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were held back before it.
    pub fn allow(&self, now_s: i64) -> Option<u64> {
        let last = self.last_s.load(Ordering::Relaxed);
        if now_s.saturating_sub(last) >= self.interval_s
            && self
                .last_s
                .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_lets_one_line_through_per_interval() {
        let limiter = LogLimiter::new(10);
        assert_eq!(limiter.allow(100), Some(0));
        assert_eq!(limiter.allow(101), None);
        assert_eq!(limiter.allow(105), None);
        assert_eq!(limiter.allow(110), Some(2));
    }

    #[test]
    fn snapshot_and_recovery_reports_reach_their_gauges() {
        // Samples lost to damaged snapshot blocks are a drop: an operator must see them.
        let telemetry = Telemetry::new();
        let store = Store::new(strata_store::StoreConfig::auto(60));
        telemetry.record_recovery(&crate::durability::RecoveryReport {
            snapshot_samples_lost: 7,
            ..Default::default()
        });
        telemetry.record_snapshot(&crate::durability::SnapshotReport {
            bytes: 100,
            referenced_bytes: 900,
            compacted_bytes: 40,
            ..Default::default()
        });
        let text = telemetry.render(&store, None, true);
        for line in [
            "strata_recovery_snapshot_samples_lost 7",
            "strata_snapshot_bytes 100",
            "strata_snapshot_referenced_bytes 900",
            "strata_snapshot_compacted_bytes 40",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn render_includes_store_gauges_and_drops() {
        let telemetry = Telemetry::new();
        let store = Store::new(strata_store::StoreConfig::auto(60));
        telemetry.record_drops(&DropCounts {
            future: 3,
            ..DropCounts::default()
        });
        let text = telemetry.render(&store, None, true);
        assert!(
            text.contains("strata_ingest_samples_dropped_total{reason=\"future\"} 3"),
            "{text}"
        );
        assert!(text.contains("strata_store_buffers 0"), "{text}");
        // The tree's structure is counted: an empty store holds only its metric registry.
        let structure = format!("strata_store_structure_bytes {}", store.structure_bytes());
        assert!(
            text.contains(&structure),
            "{structure} missing from:\n{text}"
        );
        let mut batch = strata_store::WriteBatch::new();
        batch.push("c", "h", [strata_store::LevelName::NONE; 2], "m", 1000, 1.0);
        store.write(&batch, 1000);
        let text = telemetry.render(&store, None, true);
        let structure = format!("strata_store_structure_bytes {}", store.structure_bytes());
        assert!(
            store.structure_bytes() > 0 && text.contains(&structure),
            "{text}"
        );
        assert!(text.contains("strata_memory_cap_full 0"), "{text}");
        // A cap the tree alone exceeds makes the store full, and new hosts are counted.
        assert!(store.enforce_memory_cap(1, 1000).still_over);
        let mut batch = strata_store::WriteBatch::new();
        batch.push(
            "c",
            "new",
            [strata_store::LevelName::NONE; 2],
            "m",
            1000,
            1.0,
        );
        telemetry.record_drops(&store.write(&batch, 1000).dropped);
        let text = telemetry.render(&store, None, true);
        assert!(text.contains("strata_memory_cap_full 1"), "{text}");
        let dropped = "strata_ingest_samples_dropped_total{reason=\"memory_cap\"} 1";
        assert!(text.contains(dropped), "{text}");
        // Every metric is registered (a field that is never registered is never exported).
        for name in [
            "strata_wal_bytes 0",
            "strata_wal_segment 0",
            "strata_wal_healthy 1",
            "strata_snapshots_total 0",
            "strata_snapshot_duration_seconds 0",
            "strata_recovery_duration_seconds 0",
            "strata_recovery_records_lost 0",
            "strata_recovery_snapshot_samples_lost 0",
            "strata_snapshot_referenced_bytes 0",
            "strata_snapshot_compacted_bytes 0",
            "strata_retention_freed_buffers_total 0",
            "strata_archive_files_total 0",
            "strata_archive_samples_total 0",
            "strata_archive_failures_total 0",
            "strata_archive_bytes_total 0",
            "strata_archive_pass_duration_seconds 0",
            "strata_archive_reads_total 0",
            "strata_archive_read_failures_total 0",
            "strata_archive_skipped_files_total 0",
            "strata_archive_footer_cache_bytes 0",
            "strata_ingest_key_cache_hits_total 0",
            "strata_ingest_key_cache_misses_total 0",
            "strata_ingest_key_cache_entries 0",
            "strata_ingest_key_cache_bytes 0",
            "strata_process_resident_memory_bytes",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
