//! `strata`: the binary. Command line, configuration, logging, and the order in which the
//! parts start and stop.

mod check;
mod import;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use config::{ArchiveLocation, CleanupMode, Config, ConfigFormat, FsyncPolicy, NatsAuth};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use strata::config;
use strata_archive::{Location, S3Settings};
use strata_server::archiving::ArchiveSettings;
use strata_server::durability::{Durability, DurabilityConfig, RecoveryReport};
use strata_server::ingest::IngestLimits;
use strata_server::listen::ConnectionLimits;
use strata_server::maintenance::Schedule;
use strata_server::{App, ServerConfig};
use strata_store::{Store, StoreConfig};

/// A metric store for HPC clusters: a drop-in replacement for cc-metric-store.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level (error, warn, info, debug, trace) or a tracing filter such as
    /// `strata_server=debug`; RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the metric store. Without --config it listens on 127.0.0.1:8082, keeps 48 h in
    /// memory and registers every metric it sees at a 60 s frequency.
    Serve {
        /// A cc-metric-store v1.5 configuration file (JSON with main, metrics, nats and
        /// metric-store sections), or its legacy flat file from before v1.5.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Import a cc-metric-store checkpoint directory (<cluster>/<host>/*.json, *.bin,
    /// current.wal) into the data directory of the configuration. Stop `strata serve` first.
    Import {
        /// The cc-metric-store checkpoint directory.
        directory: PathBuf,
        /// The configuration whose data directory, metrics and retention apply.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Archive what has left the memory window to Parquet files now (cleanup.mode "archive"),
    /// as `strata serve` does every cleanup interval. Stop `strata serve` first.
    Archive {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Verify every WAL segment and snapshot of a data directory; exits 1 when anything is
    /// damaged. Read-only: safe while `strata serve` runs.
    Check {
        /// The data directory; default: the configuration's checkpoints directory.
        directory: Option<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the v1.5 equivalent of a cc-metric-store legacy flat configuration file.
    ///
    /// The file (cc-metric-store's format before v1.5) is checked as `strata serve` checks
    /// it; the v1.5 JSON goes to stdout, what does not carry over one to one to stderr. A
    /// file in the v1.5 format already is printed with its keys sorted.
    Convert {
        /// The configuration file.
        file: PathBuf,
    },
}

/// jemalloc instead of glibc's malloc. The store's buffers grow a few bytes at a time and
/// are re-allocated when a block is sealed, from every ingest thread; glibc's per-thread arenas
/// kept a third of the resident memory as free fragments after a day of 64 nodes. Its settings
/// are in .cargo/config.toml.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's statistics, as of now: advancing the epoch makes it gather them. That takes
/// ~15 µs with one arena and 200,000 live allocations (~90 µs with 8 arenas), measured with a
/// loop of reads: cheap enough for the /metrics handler, which runs once per scrape.
fn jemalloc_stats() -> Option<strata_server::telemetry::AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    let read = |value: tikv_jemalloc_ctl::Result<usize>| value.ok().map(|bytes| bytes as u64);
    Some(strata_server::telemetry::AllocatorStats {
        allocated: read(stats::allocated::read())?,
        active: read(stats::active::read())?,
        resident: read(stats::resident::read())?,
        metadata: read(stats::metadata::read())?,
        mapped: read(stats::mapped::read())?,
        retained: read(stats::retained::read())?,
    })
}

/// An error ends the process with its message and causes on one line and status 1. Not by
/// returning it from `main`: that prints anyhow's debug form, with a stack backtrace whenever
/// `RUST_BACKTRACE` is set (common on build hosts), and a backtrace belongs to a panic, not
/// to a mistyped duration.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_level, cli.log_format)?;
    let load = |path: &Option<PathBuf>| match path {
        Some(path) => Config::from_file(path).inspect(log_config_format),
        None => Ok(Config::embedded_default()),
    };
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
    };
    match cli.command {
        Command::Serve { config } => runtime()?.block_on(serve(load(&config)?)),
        Command::Import { directory, config } => {
            let config = load(&config)?;
            let store = Arc::new(Store::new(store_config(&config)));
            let summary = runtime()?.block_on(import::import(
                &directory,
                store.clone(),
                durability_config(&config),
                config.store.retention_in_memory.as_secs() as i64,
                config.store.limits.name_bytes_max,
                strata_server::now_s(),
            ))?;
            print!("{summary}");
            println!(
                "into:                  {} ({} samples in memory)",
                config.store.checkpoints.directory.display(),
                store.stats().samples
            );
            Ok(())
        }
        Command::Archive { config } => runtime()?.block_on(archive(load(&config)?)),
        Command::Check { directory, config } => {
            let directory = match directory {
                Some(directory) => directory,
                None => load(&config)?.store.checkpoints.directory,
            };
            let report = check::check(&directory)?;
            print!("{}", report.text);
            if report.damaged {
                std::process::exit(1);
            }
            println!("no damage found in {}", directory.display());
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Convert { file },
        } => convert_config(&file),
    }
}

/// `strata config convert FILE`: the v1.5 document on stdout, notes on stderr.
fn convert_config(file: &std::path::Path) -> anyhow::Result<()> {
    let conversion = config::convert(file)?;
    let text = serde_json::to_string_pretty(&conversion.document)
        .context("serialising the converted configuration")?;
    match &conversion.format {
        ConfigFormat::Sectioned => eprintln!(
            "note: {} is in the v1.5 format already; printed with its keys sorted",
            file.display()
        ),
        ConfigFormat::LegacyFlat { notes } => {
            for note in notes {
                eprintln!("note: {note}");
            }
        }
    }
    println!("{text}");
    Ok(())
}

/// A legacy file says so at startup, with what did not carry over one to one.
fn log_config_format(config: &Config) {
    let (ConfigFormat::LegacyFlat { notes }, Some(file)) = (&config.format, &config.source) else {
        return;
    };
    tracing::info!(
        "configuration format: {}; `strata config convert {}` prints the v1.5 equivalent",
        config.format,
        file.display()
    );
    for note in notes {
        tracing::warn!("legacy configuration: {note}");
    }
}

fn store_config(config: &Config) -> StoreConfig {
    StoreConfig {
        metrics: config.metrics.clone(),
        default_metric: strata_store::MetricConfig {
            frequency_s: config.store.default_frequency_s,
            aggregation: strata_store::Aggregation::Avg,
        },
        retention_s: config.store.retention_in_memory.as_secs() as i64,
        future_tolerance_s: 24 * 3600,
        pool_buffers_max: 16 * 1024,
        limits: config.store.limits.store,
    }
}

fn durability_config(config: &Config) -> DurabilityConfig {
    let wal = &config.store.wal;
    let fsync = match wal.fsync {
        FsyncPolicy::Off => None,
        FsyncPolicy::Always => Some(strata_wal::FsyncPolicy::Always),
        FsyncPolicy::Batch => Some(strata_wal::FsyncPolicy::Batch(wal.fsync_interval)),
        FsyncPolicy::Never => Some(strata_wal::FsyncPolicy::Never),
    };
    DurabilityConfig {
        directory: config.store.checkpoints.directory.clone(),
        fsync,
        segment_bytes: wal.segment_bytes,
        workers: config.store.num_workers,
    }
}

fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    // The NATS client logs every failed reconnect attempt; Strata logs them rate-limited
    // itself (strata_nats), so the client's own lines are off unless asked for.
    let rust_log = std::env::var(tracing_subscriber::EnvFilter::DEFAULT_ENV).ok();
    let directives = log_directives(level, rust_log.as_deref());
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .with_context(|| format!("invalid --log-level or RUST_LOG {directives:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// The log filter: `RUST_LOG` when set, else `--log-level`; either way with the NATS
/// client's own lines off unless it is named.
fn log_directives(level: &str, rust_log: Option<&str>) -> String {
    let level = rust_log.filter(|value| !value.is_empty()).unwrap_or(level);
    if level.contains("async_nats") {
        level.to_owned()
    } else {
        format!("{level},async_nats=off")
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // An unusable certificate or key stops the start first (one line naming the file).
    let certificates = match &config.main.https {
        Some(files) => Some(
            strata_server::tls::Certificates::load(files.clone()).with_context(|| {
                config
                    .source
                    .as_ref()
                    .map_or("configuration".to_owned(), |path| {
                        path.display().to_string()
                    })
            })?,
        ),
        None => None,
    };
    let tls = certificates
        .as_ref()
        .map(strata_server::tls::Certificates::acceptor)
        .transpose()?;
    warn_about_config(&config);
    handle_file_size_signal();
    let store_config = store_config(&config);
    let limits = &config.store.limits;
    let server_config = ServerConfig {
        jwt_public_key: config.main.jwt_public_key,
        jwt_roles: config.main.jwt_roles.clone(),
        ingest: IngestLimits {
            body_bytes_max: limits.body_bytes_max,
            line: strata_lineproto::Limits {
                line_bytes_max: limits.line_bytes_max,
                tags_per_line_max: limits.tags_per_line_max,
                name_bytes_max: limits.name_bytes_max,
            },
            request_timeout: limits.request_timeout,
        },
        query_series_max: limits.query_series_max,
        query_points_max: limits.query_points_max,
        concurrent_queries: limits.concurrent_queries,
        request_body_bytes_max: REQUEST_BODY_BYTES_MAX,
        resampler: config.store.resampling,
    };
    if server_config.jwt_public_key.is_none() {
        tracing::warn!(
            "no main.jwt-public-key configured: the API accepts requests without authentication"
        );
    }
    // A NATS file that cannot be used stops the start before recovery and listening.
    let nats_config = nats_config(&config);
    if let Some(nats) = &nats_config {
        strata_nats::NatsIngest::check(nats)
            .await
            .context("starting NATS ingest")?;
    }
    let store = Arc::new(Store::new(store_config));
    let (durability, recovery) = recover(&config, &store)?;
    let app = Arc::new(App::new(store.clone(), durability.clone(), server_config)?);
    app.telemetry.set_allocator(jemalloc_stats);
    if let Some(settings) = archive_settings(&config) {
        // Opening makes no request: an unreachable object store fails passes and archive
        // reads (logged, counted), never the start.
        let archive = settings
            .location
            .open()
            .with_context(|| format!("opening the archive at {}", settings.location))?;
        app.attach_archive(archive);
        // Writes below what is archived are refused from the first request on.
        let state = strata_server::archiving::ArchiveState::load(durability.data_directory());
        for (cluster, until) in state.clusters() {
            store.set_archived_until(cluster, *until);
        }
    }
    app.telemetry.record_recovery(&recovery);
    // Reads cursors and hints and may write a cursor: off the async workers.
    let starting = app.clone();
    let endpoints = config.store.remote_write.clone();
    tokio::task::spawn_blocking(move || starting.start_forwarding(&endpoints, &recovery))
        .await
        .context("starting remote write")?
        .context("starting remote write")?;
    let serving = app.clone();
    let listener = tokio::net::TcpListener::bind(&config.main.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.main.addr))?;
    let schedule = Schedule {
        memory_cap_bytes: config.store.memory_cap_bytes,
        snapshot_interval: config.store.checkpoint_interval,
        snapshot_wal_bytes: SNAPSHOT_WAL_BYTES,
        archive: archive_settings(&config),
    };
    let mut maintenance = strata_server::maintenance::start(app.clone(), schedule);
    if let Some(certificates) = certificates {
        maintenance.push(strata_server::tls::spawn_reloader(
            app.clone(),
            certificates,
        ));
    }
    tracing::info!(
        addr = %listener.local_addr().map_or(config.main.addr.clone(), |a| a.to_string()),
        scheme = if tls.is_some() { "https" } else { "http" },
        config = %config.source.as_ref().map_or("embedded default".into(), |p| p.display().to_string()),
        metrics = if config.metrics.is_empty() { "auto-registered".to_string() } else { config.metrics.len().to_string() },
        retention = ?config.store.retention_in_memory,
        memory_cap_bytes = config.store.memory_cap_bytes.unwrap_or(0),
        "strata listening"
    );
    let connections = ConnectionLimits {
        connections_max: connections_max(limits.connections_max),
        header_timeout: limits.header_timeout,
    };
    // Connects in the background: a down NATS server never delays serving HTTP.
    let nats = match nats_config {
        Some(nats) => Some(
            strata_nats::NatsIngest::start(app.clone(), nats)
                .await
                .context("starting NATS ingest")?,
        ),
        None => None,
    };
    // cc-metric-store's order: NATS stops receiving (and commits what it holds), then
    // HTTP, then the final snapshot.
    let shutdown = async move {
        shutdown_signal().await;
        if let Some(nats) = nats {
            nats.stop().await;
        }
    };
    strata_server::listen::serve(listener, serving, connections, tls, shutdown).await;
    for task in maintenance {
        task.abort();
    }
    app.stop_forwarding().await;
    // Requests have finished: a final snapshot covers everything, so the next start
    // replays nothing.
    let report = durability
        .snapshot(&store, strata_server::now_s())
        .await
        .context("writing the final snapshot")?;
    tracing::info!(
        hosts = report.hosts,
        bytes = report.bytes,
        seconds = report.seconds,
        "final snapshot written"
    );
    tracing::info!("shutdown complete");
    Ok(())
}

/// Largest query, free or healthcheck body (axum's `DefaultBodyLimit`; 413 with the JSON
/// error beyond it). A query for thousands of series is a few hundred KiB.
const REQUEST_BODY_BYTES_MAX: usize = 64 << 20;

/// File descriptors kept free of client connections: WAL segments, snapshot files (one per
/// host file written at a time), the listener, and room for the operator's tools.
const RESERVED_DESCRIPTORS: usize = 64;

/// `limits.connections`, lowered to what the open-files limit (`ulimit -n`) leaves after
/// [`RESERVED_DESCRIPTORS`]: beyond it, connections would take the descriptors a snapshot
/// needs ("Too many open files").
fn connections_max(configured: usize) -> usize {
    let Some(open_files) = open_files_limit() else {
        return configured;
    };
    let available = open_files.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    if configured > available {
        tracing::warn!(
            configured,
            open_files,
            effective = available,
            "limits.connections is lowered to fit the open-files limit (ulimit -n)"
        );
    }
    configured.min(available)
}

/// The soft limit on open files, from `/proc/self/limits` (Linux); `None` when unknown or
/// unlimited.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// WAL growth after which a snapshot is taken even before `checkpoint-interval`. Replay runs
/// at ~0.05 s per MB on the reference machine, so a crash just before the trigger replays
/// 48 MiB in ~2.5 s, which with loading the snapshot keeps a restart at 100 M samples within
/// 5 s (issue 10 item 6). Incremental snapshots make a snapshot cost about the WAL bytes it
/// covers, not the store, so taking them this often is cheap.
const SNAPSHOT_WAL_BYTES: u64 = 48 << 20;

/// Archive mode: where and how; `None` in delete mode.
fn archive_settings(config: &Config) -> Option<ArchiveSettings> {
    let cleanup = &config.store.cleanup;
    let location = match (&cleanup.mode, &cleanup.directory) {
        (CleanupMode::Archive, Some(ArchiveLocation::Local(directory))) => {
            Location::Local(directory.clone())
        }
        (CleanupMode::Archive, Some(ArchiveLocation::S3(s3))) => Location::S3(S3Settings {
            bucket: s3.bucket.clone(),
            prefix: s3.prefix.clone(),
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: s3.secret_access_key.as_ref().map(|s| s.expose().to_owned()),
            allow_http: s3.allow_http,
            part_size: s3.part_size,
        }),
        _ => return None,
    };
    Some(ArchiveSettings {
        location,
        interval_s: cleanup.interval.as_secs().max(1) as i64,
    })
}

/// NATS ingest's settings; `None` without a subscription.
fn nats_config(config: &Config) -> Option<strata_nats::NatsConfig> {
    let connections: Vec<_> = config
        .nats
        .iter()
        .filter(|connection| !connection.subscriptions.is_empty())
        .map(|connection| strata_nats::ConnectionConfig {
            name: connection.name.clone(),
            addresses: connection.addresses.clone(),
            auth: match &connection.auth {
                NatsAuth::None => strata_nats::Auth::None,
                NatsAuth::UserPassword { username, password } => strata_nats::Auth::UserPassword {
                    username: username.clone(),
                    password: password.expose().to_owned(),
                },
                NatsAuth::CredsFile(path) => strata_nats::Auth::CredsFile(path.clone()),
                NatsAuth::NkeySeedFile(path) => strata_nats::Auth::NkeySeedFile(path.clone()),
            },
            tls: connection.tls.as_ref().map(|tls| strata_nats::Tls {
                ca_file: tls.ca_file.clone(),
                client_cert: tls.client_cert.clone(),
            }),
            subscriptions: connection
                .subscriptions
                .iter()
                .map(|subscription| strata_nats::SubscriptionConfig {
                    subject: subscription.subscribe_to.clone(),
                    cluster_tag: subscription.cluster_tag.clone(),
                    queue_group: subscription.queue_group.clone(),
                    jetstream: subscription.jetstream.as_ref().map(|js| {
                        strata_nats::JetStreamConfig {
                            stream: js.stream.clone(),
                            consumer: js.consumer.clone(),
                            ack_wait: js.ack_wait,
                        }
                    }),
                })
                .collect(),
        })
        .collect();
    (!connections.is_empty()).then_some(strata_nats::NatsConfig {
        connections,
        workers: config.store.num_workers,
        pending_messages: config.store.limits.nats_pending_messages,
        pending_bytes: config.store.limits.nats_pending_bytes,
    })
}

/// `strata archive`: recovery (which takes the data directory's lock), one pass, and a
/// snapshot without what the pass freed.
async fn archive(config: Config) -> anyhow::Result<()> {
    let Some(settings) = archive_settings(&config) else {
        anyhow::bail!("strata archive needs metric-store.cleanup.mode \"archive\" and a directory");
    };
    let store = Arc::new(Store::new(store_config(&config)));
    let (durability, _) = recover(&config, &store)?;
    let pass_store = store.clone();
    let directory = durability.data_directory().to_owned();
    let archive = settings
        .location
        .open()
        .with_context(|| format!("opening the archive at {}", settings.location))?;
    let report = tokio::task::spawn_blocking(move || {
        strata_server::archiving::run_pass(
            &pass_store,
            &archive,
            &directory,
            &settings,
            strata_server::now_s(),
        )
    })
    .await
    .context("archiving")?;
    durability
        .snapshot(&store, strata_server::now_s())
        .await
        .context("writing the snapshot after archiving")?;
    print!("{report}");
    if !report.errors.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// Opens the data directory and brings the store back to where it was. In archive mode the
/// whole log is replayed, however old: what is not archived still has to be.
fn recover(config: &Config, store: &Store) -> anyhow::Result<(Arc<Durability>, RecoveryReport)> {
    // Everything the log holds: one floor for all clusters would drop the samples of a
    // cluster that is archived less far than another (or not at all); what is archived
    // already is freed again by the next pass.
    let replay_floor = archive_settings(config).map(|_| i64::MIN);
    let (durability, report) = Durability::recover_from(
        durability_config(config),
        store,
        strata_server::now_s(),
        replay_floor,
    )?;
    let stats = store.stats();
    tracing::info!(
        directory = %config.store.checkpoints.directory.display(),
        fsync = %config.store.wal.fsync,
        snapshot_generation = ?report.generation,
        snapshot_hosts = report.hosts,
        snapshot_samples = report.snapshot_samples,
        wal_segments = report.replay.segments,
        wal_records = report.replay.records,
        wal_samples = report.replay.samples,
        wal_samples_stored = report.replayed_samples_stored,
        torn_tail_bytes = report.replay.torn_tail.map_or(0, |(_, bytes)| bytes),
        damaged_segments = report.replay.damage.len(),
        damaged_snapshots = report.damaged_snapshots.len(),
        samples_in_memory = stats.samples,
        snapshot_seconds = report.snapshot_seconds,
        replay_seconds = report.replay_seconds,
        seconds = report.seconds,
        "recovered"
    );
    Ok((Arc::new(durability), report))
}

/// A write past the file size limit (`ulimit -f`) raises SIGXFSZ, whose default action kills
/// the process. Handled, the write fails with EFBIG instead: the WAL turns that into a
/// poisoned log (writes answer 503, `/healthz` says why, what was acknowledged is synced) and
/// the process stays up to answer queries until the operator restarts it; recovery then reads
/// the log as it is.
fn handle_file_size_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::from_raw(libc::SIGXFSZ)) {
        Ok(mut received) => {
            tokio::spawn(async move {
                while received.recv().await.is_some() {
                    tracing::error!("a write went past the file size limit (ulimit -f)");
                }
            });
        }
        Err(error) => tracing::warn!(%error, "cannot handle SIGXFSZ"),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Configuration that parses but has no effect in this build, or that a server is likely to
/// refuse, says so at startup, so an operator migrating from cc-metric-store is never misled.
fn warn_about_config(config: &Config) {
    if !config.store.nats_subscriptions.is_empty() {
        tracing::warn!(
            subscriptions = config.store.nats_subscriptions.len(),
            "metric-store.nats-subscriptions are ignored: there is no nats section (connection)"
        );
    }
    for connection in config.nats.iter().filter(|c| c.subscriptions.is_empty()) {
        tracing::warn!(
            connection = connection.name.as_deref().unwrap_or(""),
            "NATS connection without subscriptions: nothing is received through it"
        );
    }
    let checkpoints = &config.store.checkpoints;
    if let Some(format) = &checkpoints.file_format {
        tracing::warn!(
            "checkpoints.file-format {format:?} is ignored: Strata always writes its own \
             write-ahead log and snapshots (strata import reads cc-metric-store's files)"
        );
    }
    if let Some(bytes) = checkpoints.max_wal_size {
        tracing::warn!(
            "checkpoints.max-wal-size {bytes} is ignored: Strata's log rotates at \
             metric-store.wal.segment-size and is truncated by snapshots"
        );
    }
    if let Some(ArchiveLocation::S3(s3)) = &config.store.cleanup.directory
        && s3.part_size < S3_PART_SIZE_PORTABLE
    {
        tracing::warn!(
            part_size = s3.part_size,
            "cleanup.s3.part-size is below 5 MiB: AWS S3, MinIO and Ceph refuse every upload of \
             more than one part (only servers configured for small parts accept them)"
        );
    }
}

/// The smallest part (but the last) that every S3 implementation accepts.
const S3_PART_SIZE_PORTABLE: u64 = 5 << 20;

#[cfg(test)]
mod tests {
    use super::log_directives;

    /// Goal: the NATS client's own lines are off with RUST_LOG too, unless it names them.
    #[test]
    fn nats_client_logs_off_unless_named() {
        assert_eq!(log_directives("info", None), "info,async_nats=off");
        assert_eq!(log_directives("info", Some("")), "info,async_nats=off");
        assert_eq!(
            log_directives("info", Some("debug")),
            "debug,async_nats=off"
        );
        assert_eq!(
            log_directives("info", Some("info,async_nats=debug")),
            "info,async_nats=debug"
        );
        assert_eq!(
            log_directives("warn,async_nats=info", Some("")),
            "warn,async_nats=info"
        );
    }
}
