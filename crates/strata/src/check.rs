//! `strata check DIR`: verifies every WAL segment and every snapshot file of a data
//! directory without changing anything, and says what is damaged.

use std::fmt::Write as _;
use std::path::Path;

/// The findings; `damaged` decides the exit code.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub text: String,
    pub damaged: bool,
}

pub fn check(directory: &Path) -> anyhow::Result<CheckReport> {
    let mut report = CheckReport::default();
    let out = &mut report.text;
    let wal = directory.join("wal");
    let segments = strata_wal::list_segments(&wal)?;
    let replay = strata_wal::replay(&wal, 0, |_, _| {})?;
    writeln!(
        out,
        "WAL: {} segments, {} records, {} samples",
        segments.len(),
        replay.records,
        replay.samples
    )?;
    if let Some((position, bytes)) = replay.torn_tail {
        writeln!(
            out,
            "  torn tail at segment {} offset {}: {bytes} bytes of an unfinished write (cut off at the next start; not an error)",
            position.segment, position.offset
        )?;
    }
    for damage in &replay.damage {
        report.damaged = true;
        let lost = damage
            .records_lost
            .map_or("an unknown number of".to_owned(), |n| n.to_string());
        writeln!(
            out,
            "  DAMAGED segment {} at offset {}: {}; {lost} records lost",
            damage.segment, damage.offset, damage.reason
        )?;
    }
    let snapshots = directory.join("snapshots");
    let (latest, incomplete) = strata_wal::snapshot::latest_generation(&snapshots)?;
    for path in &incomplete {
        writeln!(
            out,
            "snapshot generation {} is incomplete (no valid MANIFEST; removed at the next start)",
            path.display()
        )?;
    }
    match latest {
        None => writeln!(out, "snapshots: none")?,
        Some(generation) => {
            let mut good = 0;
            for file in &generation.files {
                match strata_wal::snapshot::load_host(file) {
                    Ok(_) => good += 1,
                    Err(error) => {
                        report.damaged = true;
                        writeln!(out, "  DAMAGED {error}")?;
                    }
                }
            }
            writeln!(
                out,
                "snapshots: generation {} with {good} of {} host files readable (manifest lists {})",
                generation.number,
                generation.files.len(),
                generation.hosts
            )?;
            if generation.files.len() != generation.hosts {
                report.damaged = true;
                writeln!(out, "  DAMAGED: host files are missing from the generation")?;
            }
        }
    }
    Ok(report)
}
