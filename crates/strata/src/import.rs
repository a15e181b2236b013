//! `strata import DIR`: brings a cc-metric-store checkpoint directory into Strata's data
//! directory (COMPAT.md §6, decision 12).
//!
//! Per host, the snapshots a restore needs (those within the retention window, plus the one
//! straddling its start) are loaded oldest first, then `current.wal` is replayed on top, as
//! cc-metric-store itself restores. The result is written as a Strata snapshot generation, so
//! the next `strata serve` starts with the data. What exists in the data directory already is
//! kept: imported series merge into it.

use anyhow::Context as _;
use std::path::Path;
use std::sync::Arc;
use strata_ccms::{Checkpoint, Level, SnapshotFile, WalEnd};
use strata_server::durability::{Durability, DurabilityConfig};
use strata_server::progress::Progress;
use strata_store::{
    FREQUENCY_S, HostImage, LevelImage, LevelName, Run, SeriesImage, Store, WriteBatch, check_name,
};

/// What an import did, printed at the end.
#[derive(Debug, Default)]
pub struct ImportSummary {
    pub hosts: usize,
    pub snapshot_files: usize,
    pub snapshot_slots: u64,
    pub wal_files: usize,
    pub wal_records: u64,
    pub wal_samples_stored: u64,
    /// Files or records not imported, with the reason.
    pub skipped: Vec<String>,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "hosts imported:        {}", self.hosts)?;
        writeln!(
            f,
            "snapshot files read:   {} ({} slots)",
            self.snapshot_files, self.snapshot_slots
        )?;
        writeln!(
            f,
            "WAL files replayed:    {} ({} records, {} samples stored)",
            self.wal_files, self.wal_records, self.wal_samples_stored
        )?;
        writeln!(f, "skipped:               {}", self.skipped.len())?;
        for reason in &self.skipped {
            writeln!(f, "  - {reason}")?;
        }
        Ok(())
    }
}

/// Imports `source` into the data directory of `durability_config`, keeping what falls in
/// the last `retention_s` seconds before `now_s`. Clusters and hosts whose names ingest would
/// refuse (longer than `name_bytes_max`, `..`, …) are skipped and listed.
pub async fn import(
    source: &Path,
    store: Arc<Store>,
    durability_config: DurabilityConfig,
    retention_s: i64,
    name_bytes_max: usize,
    now_s: i64,
) -> anyhow::Result<ImportSummary> {
    let scan =
        strata_ccms::scan(source).with_context(|| format!("reading {}", source.display()))?;
    let mut summary = ImportSummary::default();
    for problem in &scan.problems {
        summary.skipped.push(problem.to_string());
    }
    let (durability, _) = Durability::recover(durability_config, &store, now_s)?;
    let durability = Arc::new(durability);
    let cutoff_s = now_s - retention_s;
    let progress = Progress::new("importing", scan.hosts.len() as u64);
    for host in &scan.hosts {
        // The names ingest would refuse are refused here too: they become directory names
        // in cc-metric-store and reach the store through no other door.
        let valid = check_name("cluster", &host.cluster, name_bytes_max)
            .and_then(|()| check_name("host", &host.host, name_bytes_max));
        if let Err(error) = valid {
            summary.skipped.push(format!(
                "{}/{}: {error}; not imported",
                host.cluster.escape_debug(),
                host.host.escape_debug()
            ));
            progress.advance(1, 0);
            continue;
        }
        let mut imported = false;
        for file in strata_ccms::select_snapshots(&host.snapshots, cutoff_s) {
            match import_snapshot(&store, &host.cluster, &host.host, file, cutoff_s) {
                Ok((slots, note)) => {
                    summary.snapshot_files += 1;
                    summary.snapshot_slots += slots;
                    summary.skipped.extend(note);
                    progress.advance(0, slots);
                    imported = true;
                }
                Err(reason) => summary.skipped.push(reason),
            }
        }
        match host.read_wal() {
            Ok(None) => {}
            Ok(Some(wal)) => {
                summary.wal_files += 1;
                let mut batch = WriteBatch::new();
                for record in &wal.records {
                    let level = |i: usize| {
                        record
                            .selector
                            .get(i)
                            .map_or(LevelName::NONE, |name| LevelName::new(name, ""))
                    };
                    batch.push(
                        &host.cluster,
                        &host.host,
                        [level(0), level(1)],
                        &record.metric,
                        record.timestamp_s,
                        record.value,
                    );
                }
                summary.wal_records += wal.records.len() as u64;
                let report = store.write(&batch, now_s);
                summary.wal_samples_stored += report.written as u64;
                progress.advance(0, report.written as u64);
                imported |= report.written > 0;
                if let WalEnd::TornTail { offset, reason } = wal.end {
                    summary.skipped.push(format!(
                        "{}/{}/current.wal: stopped at byte {offset}: {reason}",
                        host.cluster, host.host
                    ));
                }
            }
            Err(error) => summary.skipped.push(format!(
                "{}/{}/current.wal: {error}",
                host.cluster, host.host
            )),
        }
        summary.hosts += usize::from(imported);
        progress.advance(1, 0);
    }
    progress.finish();
    durability
        .snapshot(&store, now_s)
        .await
        .context("writing the imported data as a snapshot")?;
    Ok(summary)
}

/// Imports one snapshot file; returns the slots taken over and a note on what was left out,
/// or why the whole file was skipped.
fn import_snapshot(
    store: &Store,
    cluster: &str,
    host: &str,
    file: &SnapshotFile,
    cutoff_s: i64,
) -> Result<(u64, Option<String>), String> {
    let checkpoint = file
        .read()
        .map_err(|e| format!("{}: {e}", file.path.display()))?;
    // cc-metric-store skips a file whose data ended before the restore window (§6.6).
    if checkpoint.to_s != 0 && checkpoint.to_s < cutoff_s {
        return Err(format!(
            "{}: ends before the retention window",
            file.path.display()
        ));
    }
    let image = host_image(cluster, host, &checkpoint);
    let report = store.import_host(image);
    let note = (report.unknown_metric_series > 0).then(|| {
        format!(
            "{}: {} series of metrics not in the configuration were left out",
            file.path.display(),
            report.unknown_metric_series
        )
    });
    Ok((report.slots as u64, note))
}

/// cc-metric-store's checkpoint tree as a host image. Its `start` is the time of the first
/// sample; a Strata run starts at the slot's start, half an interval earlier.
fn host_image(cluster: &str, host: &str, checkpoint: &Checkpoint) -> HostImage {
    fn level(source: &Level) -> LevelImage {
        LevelImage {
            series: source
                .metrics
                .iter()
                .filter(|m| FREQUENCY_S.contains(&m.frequency_s) && !m.name.is_empty())
                .map(|m| SeriesImage {
                    metric: m.name.clone(),
                    frequency_s: m.frequency_s,
                    runs: vec![Run {
                        start_s: m.start_s - m.frequency_s / 2,
                        values: m.values.clone(),
                    }],
                })
                .collect(),
            children: source
                .children
                .iter()
                .map(|(name, child)| (name.clone(), level(child)))
                .collect(),
        }
    }
    HostImage {
        cluster: cluster.to_owned(),
        host: host.to_owned(),
        root: level(&checkpoint.host),
    }
}
