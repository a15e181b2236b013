//! Scanning a checkpoint root (COMPAT.md §6.1) and choosing snapshots for a restore cutoff
//! (§6.6 with decision 12).

// Helpers that build the directory tree are not `#[test]` functions, and a failed write
// should simply fail the test.
#![allow(clippy::unwrap_used)]

mod util;

use std::fs;
use std::path::{Path, PathBuf};

use strata_ccms::{
    Error, HostFiles, Problem, ProblemReason, SnapshotFile, SnapshotFormat, WalEnd, scan,
    select_snapshots,
};
use util::{bits, encode_binary, encode_json, encode_wal, level, metric, record};

fn write(path: &Path, contents: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// Builds a tree with two clusters and every kind of entry §6.1 mentions.
///
/// ```text
/// root/stray.txt                            file under root        → problem
/// root/fritz/README                         file under a cluster   → problem
/// root/fritz/f0101/1700000000.json          snapshot
/// root/fritz/f0101/1700043200.bin           snapshot
/// root/fritz/f0101/1700086400.bin.tmp       in progress            → ignored
/// root/fritz/f0101/current.wal              WAL
/// root/fritz/f0101/avro/60_1700000000.avro  legacy subdirectory    → ignored
/// root/fritz/f0101/notes.txt                other file             → ignored
/// root/fritz/f0102/latest.json              non-integer stem       → problem
/// root/fritz/f0102/-5.bin                   negative stem, accepted like Go's ParseInt
/// root/fritz/f0102/+7.json                  signed stem, accepted like Go's ParseInt
/// root/alex/a0001/                          empty host
/// root/alex/a0002/current.wal               WAL only
/// root/alex/a0002/1700043200.json           snapshot, same stem as the .bin below
/// root/alex/a0002/1700043200.bin            snapshot
/// ```
fn build_tree(root: &Path) {
    write(&root.join("stray.txt"), b"x");
    write(&root.join("fritz/README"), b"x");
    let host = level(vec![metric("cpu_load", 60, 1_700_000_000, &[1.0])], vec![]);
    write(
        &root.join("fritz/f0101/1700000000.json"),
        encode_json(1_700_000_000, 1_700_043_200, &host).as_bytes(),
    );
    write(
        &root.join("fritz/f0101/1700043200.bin"),
        &encode_binary(1_700_043_200, 1_700_086_400, &host),
    );
    write(&root.join("fritz/f0101/1700086400.bin.tmp"), b"partial");
    let (wal, _) = encode_wal(&[record(1_700_086_460, "cpu_load", &["socket0"], 2.0)]);
    write(&root.join("fritz/f0101/current.wal"), &wal);
    write(&root.join("fritz/f0101/avro/60_1700000000.avro"), b"Obj");
    write(&root.join("fritz/f0101/notes.txt"), b"x");
    write(&root.join("fritz/f0102/latest.json"), b"{}");
    write(&root.join("fritz/f0102/-5.bin"), b"");
    write(&root.join("fritz/f0102/+7.json"), b"");
    fs::create_dir_all(root.join("alex/a0001")).unwrap();
    write(&root.join("alex/a0002/current.wal"), b"");
    write(&root.join("alex/a0002/1700043200.json"), b"{}");
    write(&root.join("alex/a0002/1700043200.bin"), b"");
}

fn snapshot(from_s: i64, path: PathBuf, format: SnapshotFormat) -> SnapshotFile {
    SnapshotFile {
        from_s,
        path,
        format,
    }
}

#[test]
fn scan_finds_hosts_and_reports_problems() {
    // Goal: exactly the hosts, snapshots and WALs of the tree, sorted; the stray file, the
    // file under a cluster and the non-integer stem as problems; .bin.tmp, other files and
    // subdirectories of host directories silently ignored.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    build_tree(root);

    let found = scan(root).unwrap();
    let expected_hosts = vec![
        HostFiles {
            cluster: "alex".into(),
            host: "a0001".into(),
            snapshots: vec![],
            wal: None,
        },
        HostFiles {
            cluster: "alex".into(),
            host: "a0002".into(),
            snapshots: vec![
                snapshot(
                    1_700_043_200,
                    root.join("alex/a0002/1700043200.json"),
                    SnapshotFormat::Json,
                ),
                snapshot(
                    1_700_043_200,
                    root.join("alex/a0002/1700043200.bin"),
                    SnapshotFormat::Binary,
                ),
            ],
            wal: Some(root.join("alex/a0002/current.wal")),
        },
        HostFiles {
            cluster: "fritz".into(),
            host: "f0101".into(),
            snapshots: vec![
                snapshot(
                    1_700_000_000,
                    root.join("fritz/f0101/1700000000.json"),
                    SnapshotFormat::Json,
                ),
                snapshot(
                    1_700_043_200,
                    root.join("fritz/f0101/1700043200.bin"),
                    SnapshotFormat::Binary,
                ),
            ],
            wal: Some(root.join("fritz/f0101/current.wal")),
        },
        HostFiles {
            cluster: "fritz".into(),
            host: "f0102".into(),
            snapshots: vec![
                snapshot(-5, root.join("fritz/f0102/-5.bin"), SnapshotFormat::Binary),
                snapshot(7, root.join("fritz/f0102/+7.json"), SnapshotFormat::Json),
            ],
            wal: None,
        },
    ];
    assert_eq!(found.hosts, expected_hosts);
    assert_eq!(
        found.problems,
        vec![
            Problem {
                path: root.join("fritz/README"),
                reason: ProblemReason::FileUnderCluster,
            },
            Problem {
                path: root.join("fritz/f0102/latest.json"),
                reason: ProblemReason::NonIntegerStem,
            },
            Problem {
                path: root.join("stray.txt"),
                reason: ProblemReason::FileUnderRoot,
            },
        ]
    );
    assert_eq!(
        found.problems[2].to_string(),
        format!(
            "{}: not a directory, but directly under the root",
            root.join("stray.txt").display()
        )
    );
}

#[test]
fn scanned_files_can_be_read() {
    // Goal: the convenience readers open the right files with the right decoder.
    let dir = tempfile::tempdir().unwrap();
    build_tree(dir.path());
    let found = scan(dir.path()).unwrap();
    let f0101 = &found.hosts[2];
    let expected = level(vec![metric("cpu_load", 60, 1_700_000_000, &[1.0])], vec![]);
    let json = f0101.snapshots[0].read().unwrap();
    assert_eq!((json.from_s, json.to_s), (1_700_000_000, 1_700_043_200));
    assert_eq!(bits(&json.host), bits(&expected));
    let binary = f0101.snapshots[1].read().unwrap();
    assert_eq!((binary.from_s, binary.to_s), (1_700_043_200, 1_700_086_400));
    assert_eq!(bits(&binary.host), bits(&expected));
    let wal = f0101.read_wal().unwrap().unwrap();
    assert_eq!(wal.end, WalEnd::Clean);
    assert_eq!(
        wal.records,
        vec![record(1_700_086_460, "cpu_load", &["socket0"], 2.0)]
    );

    // alex/a0001 has no WAL; alex/a0002's is empty.
    assert_eq!(found.hosts[0].read_wal().unwrap(), None);
    let empty = found.hosts[1].read_wal().unwrap().unwrap();
    assert_eq!((empty.records.len(), empty.end), (0, WalEnd::Clean));

    fs::remove_file(&f0101.snapshots[0].path).unwrap();
    let error = f0101.snapshots[0].read().unwrap_err();
    assert!(
        matches!(&error, Error::Io { path, .. } if *path == f0101.snapshots[0].path),
        "{error:?}"
    );
}

#[test]
fn scan_of_a_missing_root_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let error = scan(&missing).unwrap_err();
    assert!(
        matches!(&error, Error::Io { path, source } if *path == missing && source.kind() == std::io::ErrorKind::NotFound),
        "{error:?}"
    );
    assert!(scan(dir.path()).unwrap() == Default::default());
}

#[cfg(unix)]
#[test]
fn scan_follows_symlinks_and_reports_dangling_ones() {
    // Goal: a cluster directory that is a symbolic link is scanned like any other; a
    // dangling link is reported as unreadable, not fatal.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let elsewhere = dir.path().join("elsewhere");
    write(&elsewhere.join("h1/100.json"), b"{}");
    fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.join("linked")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone"), root.join("dangling")).unwrap();

    let found = scan(&root).unwrap();
    assert_eq!(found.hosts.len(), 1);
    assert_eq!(
        (
            found.hosts[0].cluster.as_str(),
            found.hosts[0].host.as_str()
        ),
        ("linked", "h1")
    );
    assert_eq!(found.hosts[0].snapshots[0].from_s, 100);
    assert_eq!(found.problems.len(), 1);
    assert_eq!(found.problems[0].path, root.join("dangling"));
    assert!(matches!(
        found.problems[0].reason,
        ProblemReason::Unreadable { .. }
    ));
}

/// Snapshot stems for the selection table; paths encode the stem and format.
fn files(stems: &[(i64, SnapshotFormat)]) -> Vec<SnapshotFile> {
    stems
        .iter()
        .map(|&(from_s, format)| {
            let extension = match format {
                SnapshotFormat::Json => "json",
                SnapshotFormat::Binary => "bin",
            };
            snapshot(
                from_s,
                PathBuf::from(format!("{from_s}.{extension}")),
                format,
            )
        })
        .collect()
}

/// One row: description, snapshot stems, cutoff, expected file names in order.
type SelectCase = (
    &'static str,
    &'static [(i64, SnapshotFormat)],
    i64,
    &'static [&'static str],
);

#[test]
fn select_snapshots_table() {
    // Goal: every file with from >= cutoff, plus the newest with from < cutoff (the one
    // straddling the cutoff), including when that is the newest file of all, which
    // cc-metric-store would skip (decision 12).
    use SnapshotFormat::{Binary as B, Json as J};
    let cases: &[SelectCase] = &[
        ("no files", &[], 100, &[]),
        (
            "all newer",
            &[(100, B), (200, B)],
            50,
            &["100.bin", "200.bin"],
        ),
        (
            "straddling one in the middle",
            &[(0, J), (50, J), (150, B), (250, B)],
            100,
            &["50.json", "150.bin", "250.bin"],
        ),
        (
            "straddling file is the newest (cc-metric-store skips it)",
            &[(0, B), (50, B)],
            100,
            &["50.bin"],
        ),
        ("single old file", &[(50, J)], 100, &["50.json"]),
        (
            "a file starting exactly at the cutoff; the previous one is kept too",
            &[(0, B), (50, B), (100, B)],
            100,
            &["50.bin", "100.bin"],
        ),
        (
            "json and bin sharing the straddling stem are both kept",
            &[(10, J), (50, J), (50, B), (150, B)],
            100,
            &["50.json", "50.bin", "150.bin"],
        ),
        (
            "unsorted input comes out sorted",
            &[(250, B), (0, J), (150, B), (50, J)],
            100,
            &["50.json", "150.bin", "250.bin"],
        ),
        (
            "negative stems and cutoff",
            &[(-300, J), (-200, J), (-50, B)],
            -100,
            &["-200.json", "-50.bin"],
        ),
    ];
    for (name, stems, cutoff_s, expected) in cases {
        let snapshots = files(stems);
        let selected: Vec<String> = select_snapshots(&snapshots, *cutoff_s)
            .into_iter()
            .map(|file| file.path.display().to_string())
            .collect();
        assert_eq!(selected, *expected, "{name}");
    }
}
