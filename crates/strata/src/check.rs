//! `strata check DIR`: verifies every WAL segment and every snapshot file of a data
//! directory without changing anything, and says what is damaged, including blocks of the
//! newest generation that do not resolve in the older generations holding them. It reads the directory the
//! way recovery does (`strata_wal::recovery::plan`), so it reports what a start would load.

use anyhow::bail;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use strata_wal::incremental::{Older, OpenFiles};
use strata_wal::snapshot::{Generation, Manifest, PackHost};

/// The findings; `damaged` decides the exit code.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub text: String,
    pub damaged: bool,
}

/// Checks `directory`; an error when it is not a Strata data directory at all.
pub fn check(directory: &Path) -> anyhow::Result<CheckReport> {
    if !directory.is_dir() {
        bail!("{}: no such directory", directory.display());
    }
    if !directory.join("STRATA").is_file() {
        bail!(
            "{}: not a Strata data directory (no STRATA format marker)",
            directory.display()
        );
    }
    // A running server deletes segments and generations that a new snapshot made redundant.
    // One that vanishes under the check, or a gap that appears because the check read the
    // log after an older plan, is not damage: if a snapshot completed meanwhile, the check
    // starts over.
    let mut attempts = 0;
    loop {
        let before = replay_from(directory).ok();
        let result = check_once(directory);
        let after = replay_from(directory).ok();
        let moved = before.is_none() || after != before;
        let retry = attempts < SNAPSHOT_RETRIES
            && match &result {
                // Only the server removes files, and only those a snapshot made redundant.
                Err(error) => error
                    .downcast_ref::<strata_wal::Error>()
                    .is_some_and(vanished),
                Ok(report) => moved && report.damaged,
            };
        if !retry {
            return result;
        }
        attempts += 1;
    }
}

/// Times a check starts over because a snapshot completed under it.
const SNAPSHOT_RETRIES: usize = 10;

/// Where recovery would start replaying now.
fn replay_from(directory: &Path) -> anyhow::Result<u64> {
    let plan = strata_wal::recovery::plan(&directory.join("snapshots"), &directory.join("wal"))?;
    Ok(plan.replay_from)
}

/// Whether `error` is a file that disappeared while it was read.
fn vanished(error: &strata_wal::Error) -> bool {
    match error {
        strata_wal::Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        strata_wal::Error::InFile { source, .. } => vanished(source),
        _ => false,
    }
}

fn check_once(directory: &Path) -> anyhow::Result<CheckReport> {
    let mut report = CheckReport::default();
    let wal = directory.join("wal");
    let plan = strata_wal::recovery::plan(&directory.join("snapshots"), &wal)?;
    for generation in &plan.set_aside {
        check_set_aside(generation, &mut report)?;
    }
    match &plan.generation {
        None => writeln!(report.text, "snapshots: none")?,
        Some(generation) => check_generation(generation, &mut report)?,
    }
    check_wal(&wal, plan.replay_from, &mut report)?;
    Ok(report)
}

fn check_set_aside(generation: &Generation, report: &mut CheckReport) -> anyhow::Result<()> {
    let path = generation.directory.display();
    match &generation.manifest {
        Manifest::Damaged(reason) => {
            report.damaged = true;
            writeln!(
                report.text,
                "DAMAGED snapshot generation {path}: MANIFEST {reason} (not needed: an older \
                 generation and the WAL hold its data; quarantined at the next start)"
            )?;
        }
        Manifest::Missing | Manifest::Valid { .. } => writeln!(
            report.text,
            "snapshot generation {path} was cut off before it was complete (not needed; removed \
             at the next start)"
        )?,
    }
    Ok(())
}

fn check_generation(generation: &Generation, report: &mut CheckReport) -> anyhow::Result<()> {
    let out = &mut report.text;
    // The older generations its blocks may be in, indexed as recovery indexes them.
    let older: Vec<Generation> = match generation.directory.parent() {
        Some(snapshots) => strata_wal::snapshot::list_generations(snapshots)?
            .into_iter()
            .filter(|older| generation.may_refer_to(older))
            .collect(),
        None => Vec::new(),
    };
    let (older, unreadable) = Older::index(&older);
    for (_, error) in unreadable {
        if vanished(&error) {
            return Err(error.into());
        }
        report.damaged = true;
        writeln!(
            out,
            "  DAMAGED {error} (blocks the newest generation refers to in it are lost)"
        )?;
    }
    let (mut hosts, mut unresolved) = (0, 0);
    let mut held = BTreeMap::<u64, u64>::new();
    let mut files = OpenFiles::default();
    for file in &generation.files {
        let read = strata_wal::snapshot::read_pack(file, generation.number, |host| {
            hosts += 1;
            if let PackHost::Blocks(mut image) = host {
                let resolved = older.resolve(&mut image, &mut files);
                unresolved += resolved.unresolved;
                for (number, bytes) in resolved.bytes {
                    *held.entry(number).or_default() += bytes;
                }
            }
        });
        match read {
            Ok(_) => {}
            Err(error) if vanished(&error) => return Err(error.into()),
            Err(error) => {
                report.damaged = true;
                writeln!(out, "  DAMAGED {error}")?;
            }
        }
    }
    writeln!(
        out,
        "snapshots: generation {} with {hosts} hosts readable in {} files",
        generation.number,
        generation.files.len(),
    )?;
    let referred: Vec<String> = held
        .iter()
        .filter(|&(&number, _)| number != generation.number)
        .map(|(number, bytes)| format!("{bytes} bytes in generation {number}"))
        .collect();
    if !referred.is_empty() {
        writeln!(
            out,
            "  blocks kept in older generations: {}",
            referred.join(", ")
        )?;
    }
    if unresolved > 0 {
        report.damaged = true;
        writeln!(
            out,
            "  DAMAGED: {unresolved} blocks referred to are missing or damaged in the older \
             generations (their samples are lost at the next start; the rest loads)"
        )?;
    }
    if let Manifest::Valid { hosts: listed } = generation.manifest
        && listed != hosts
    {
        report.damaged = true;
        writeln!(out, "  DAMAGED: the MANIFEST lists {listed} hosts")?;
    }
    if let Some(damage) = generation.manifest.damage() {
        report.damaged = true;
        writeln!(
            out,
            "  DAMAGED: MANIFEST {damage}; the generation was completed (the WAL it covers is \
             gone), so a start loads every readable host"
        )?;
    }
    Ok(())
}

fn check_wal(wal: &Path, replay_from: u64, report: &mut CheckReport) -> anyhow::Result<()> {
    // Streams the log (one record in memory at a time), the way recovery reads it.
    let replay = strata_wal::replay(wal, replay_from, |_, _| {})?;
    let out = &mut report.text;
    writeln!(
        out,
        "WAL: {} segments from segment {replay_from} on, {} records, {} samples",
        replay.segments, replay.records, replay.samples
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
    Ok(())
}
