//! Crash recovery of the write-ahead log, black-box: the real binary is killed while 16
//! clients write, restarted on the same data directory, and every acknowledged sample must
//! come back with its exact value.
//!
//! What a crash may lose depends on the fsync policy (see `strata_wal`'s crate docs). A
//! SIGKILL is a *process* crash: the kernel keeps what the process wrote to the page cache,
//! so under `always`, `batch` and `never` an acknowledged sample is never lost (a sample is
//! acknowledged only after its record was written to the segment file). An operating-system
//! crash or power loss, which can lose the page cache, cannot be produced here without a VM;
//! that loss (none under `always`, at most `fsync-interval` under `batch`) rests on the WAL
//! crate's design: `always` completes an append only after `sync_data`, `batch` syncs within
//! the interval of the oldest unsynced write.
//!
//! Every sample is identifiable: writer `w` of round `r` owns four series (two hosts × two
//! metrics) of its own, and its `n`-th sample goes to series `n % 4` at slot `n / 4` (60 s
//! apart) with the value `(r·16 + w)·100 000 + n + 1`, exact in an f32. So the checks are
//! exact: every acknowledged sample is present with its value, nothing is present that was
//! never sent, and a sample that was recovered once (even one whose request was never
//! acknowledged, because the kill came between the WAL append and the response) stays.
//!
//! Besides random moments, kills are aimed at snapshots (while one is written, and right
//! after one completed) and at a torn tail written by hand; a graceful shutdown under load
//! must put every acknowledged sample into its final snapshot.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, log_fields, minutes_ago, try_http};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CLUSTER: &str = "crash";

/// Concurrent clients.
const WRITERS: u64 = 16;

/// Series each writer owns in a round (two hosts × two metrics).
const SERIES_PER_WRITER: u64 = 4;

/// Bounds of the lines in one write request.
const LINES_MIN: u64 = 5;
const LINES_MAX: u64 = 20;

/// Requests one writer sends in a round at most (the kill normally comes much earlier).
const REQUESTS_PER_WRITER_MAX: u64 = 200;

/// Slots a series can get: `REQUESTS_PER_WRITER_MAX · LINES_MAX / SERIES_PER_WRITER`.
const SLOTS_MAX: u64 = REQUESTS_PER_WRITER_MAX * LINES_MAX / SERIES_PER_WRITER;

/// Longest wait for a killed or stopped process to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for the first acknowledged write of a round.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A fixed-seed xorshift64 generator: the same schedule on every run.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Spread small seeds over the state so that neighbouring seeds do not correlate.
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// Where sample `n` of writer `writer` in round `round` goes and what it holds.
#[derive(Debug, Clone, Copy)]
struct Sample {
    series: u64,
    slot: u64,
    value: f64,
}

fn sample(round: u64, writer: u64, n: u64) -> Sample {
    Sample {
        series: n % SERIES_PER_WRITER,
        slot: n / SERIES_PER_WRITER,
        value: ((round * WRITERS + writer) * 100_000 + n + 1) as f64,
    }
}

fn host(round: u64, writer: u64, series: u64) -> String {
    format!("r{round}w{writer:02}h{}", series / 2)
}

fn metric(series: u64) -> String {
    format!("m{}", series % 2)
}

/// The first timestamp of a test: slot `s` is at `first + s·60 s`; all slots are in the past
/// and well inside the 48 h retention.
fn first_timestamp() -> i64 {
    minutes_ago(SLOTS_MAX as i64 + 30)
}

/// What one writer did in one round.
#[derive(Debug, Default)]
struct WriterLog {
    /// Samples `0..attempted` were sent in some request (acknowledged or not).
    attempted: u64,
    /// Sample ranges of the requests answered 200.
    acked: Vec<std::ops::Range<u64>>,
    /// Requests answered 200.
    acked_requests: u64,
    /// Answers other than 200 (the server must not give any while it runs).
    unexpected: Vec<String>,
}

/// Sends write requests until `stop` or [`REQUESTS_PER_WRITER_MAX`]; a connection error (the
/// server was killed) leaves the request unacknowledged.
fn run_writer(
    addr: &str,
    (round, writer): (u64, u64),
    start: i64,
    pause: Duration,
    stop: &AtomicBool,
    acked: &AtomicUsize,
) -> WriterLog {
    let mut rng = XorShift::new(round * 1000 + writer + 1);
    let mut log = WriterLog::default();
    let target = format!("/api/write?cluster={CLUSTER}");
    for _ in 0..REQUESTS_PER_WRITER_MAX {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let first = log.attempted;
        let lines = rng.range(LINES_MIN, LINES_MAX);
        let mut body = String::new();
        for n in first..first + lines {
            let s = sample(round, writer, n);
            body.push_str(&format!(
                "{},host={} value={} {}\n",
                metric(s.series),
                host(round, writer, s.series),
                s.value,
                start + 60 * s.slot as i64
            ));
        }
        log.attempted = first + lines;
        match try_http(addr, "POST", &target, &[], body.as_bytes()) {
            Ok(response) if response.status == 200 => {
                log.acked.push(first..first + lines);
                log.acked_requests += 1;
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(response) => {
                log.unexpected
                    .push(format!("{}: {}", response.status, response.text()))
            }
            // The server is gone (killed) or going: not acknowledged.
            Err(_) => {}
        }
        std::thread::sleep(pause);
    }
    log
}

/// What the test knows about one writer's samples across restarts.
#[derive(Debug, Default)]
struct Expected {
    attempted: u64,
    acked: Vec<bool>,
    /// Present after an earlier recovery: must stay.
    recovered: Vec<bool>,
}

#[track_caller]
fn field_u64(fields: &HashMap<String, String>, key: &str) -> u64 {
    fields
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {key} in {fields:?}"))
}

/// Queries every series of `rounds` and checks them against `expected`, indexed by
/// `(round, writer)`. Returns the acknowledged samples and the recovered but unacknowledged
/// ones.
fn verify(
    server: &Server,
    start: i64,
    rounds: u64,
    expected: &mut HashMap<(u64, u64), Expected>,
) -> (u64, u64) {
    let mut acked_total = 0;
    let mut unacked_recovered = 0;
    for round in 0..rounds {
        let queries: Vec<Value> = (0..WRITERS)
            .flat_map(|writer| {
                (0..SERIES_PER_WRITER).map(move |series| {
                    json!({"metric": metric(series), "host": host(round, writer, series)})
                })
            })
            .collect();
        let body = server.query(&json!({
            "cluster": CLUSTER,
            "from": start,
            "to": start + 60 * (SLOTS_MAX as i64 + 1),
            "with-stats": false,
            "with-padding": false,
            "queries": queries,
        }));
        let results = body["results"]
            .as_array()
            .unwrap_or_else(|| panic!("no results: {body}"));
        assert_eq!(results.len(), queries.len(), "{body}");
        for writer in 0..WRITERS {
            let state = expected
                .get_mut(&(round, writer))
                .expect("state of every writer");
            let mut present = vec![false; state.attempted as usize];
            for series in 0..SERIES_PER_WRITER {
                let entry = &results[(writer * SERIES_PER_WRITER + series) as usize][0];
                let Some(data) = entry.get("data").and_then(Value::as_array) else {
                    // No such series (nothing of it arrived) or no data in the window.
                    continue;
                };
                let from = entry["from"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("entry without from: {entry}"));
                assert_eq!((from - start) % 60, 0, "window off the grid: {entry}");
                let first_slot = (from - start) / 60;
                assert!(first_slot >= 0, "{entry}");
                for (i, value) in data.iter().enumerate() {
                    if value.is_null() {
                        continue;
                    }
                    let slot = first_slot as u64 + i as u64;
                    let n = slot * SERIES_PER_WRITER + series;
                    let where_ = || {
                        format!(
                            "round {round} writer {writer} sample {n} ({} {} slot {slot})",
                            host(round, writer, series),
                            metric(series)
                        )
                    };
                    assert!(
                        n < state.attempted,
                        "{}: value {value} present but never sent ({} sent)",
                        where_(),
                        state.attempted
                    );
                    let want = sample(round, writer, n).value;
                    assert_eq!(value.as_f64(), Some(want), "{}: wrong value", where_());
                    present[n as usize] = true;
                }
            }
            for (n, ((&present, &acked), &recovered)) in present
                .iter()
                .zip(&state.acked)
                .zip(&state.recovered)
                .enumerate()
            {
                assert!(
                    present || !acked,
                    "round {round} writer {writer} sample {n}: acknowledged but lost after the \
                     crash"
                );
                assert!(
                    present || !recovered,
                    "round {round} writer {writer} sample {n}: recovered by an earlier restart \
                     but lost by this one"
                );
                if present && !acked {
                    unacked_recovered += 1;
                }
            }
            acked_total += state.acked.iter().filter(|&&a| a).count() as u64;
            state.recovered = present;
        }
    }
    (acked_total, unacked_recovered)
}

/// How a round ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// SIGKILL: a process crash.
    Kill,
    /// SIGTERM: a graceful shutdown under load.
    Term,
}

/// A series of crash (or shutdown) rounds on one data directory.
struct Plan {
    /// The `metric-store` section (at least `wal.fsync`).
    store: Value,
    stop_with: Stop,
    rounds: u64,
    seed: u64,
    /// When the signal comes, round by round (cycled).
    triggers: Vec<Trigger>,
    /// Each writer waits this long between its requests.
    pause: Duration,
}

/// When the signal comes.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// This many milliseconds (uniformly drawn from the range) after the writers start.
    AfterMs(u64, u64),
    /// As soon as a snapshot generation directory without its MANIFEST shows up, i.e. while
    /// a snapshot is being written.
    SnapshotInProgress,
    /// As soon as a generation newer than any at the start of the round is complete (its
    /// MANIFEST written), i.e. while the snapshot deletes the segments it covers.
    SnapshotDone,
}

impl Plan {
    /// 16 writers at full speed, the signal 50–400 ms after they start.
    fn new(store: Value, stop_with: Stop, rounds: u64, seed: u64) -> Self {
        Self {
            store,
            stop_with,
            rounds,
            seed,
            triggers: vec![Trigger::AfterMs(50, 400)],
            pause: Duration::ZERO,
        }
    }
}

/// Longest wait for a periodic snapshot to begin.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(12);

/// Snapshot generation directories (`<data>/snapshots/<20 digits>`), oldest first.
fn generations(data: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(data.join("snapshots")) else {
        return Vec::new();
    };
    let mut generations: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 20)
        })
        .collect();
    generations.sort();
    generations
}

/// Generations without a MANIFEST (being written, or left by a crash).
fn incomplete_generations(data: &Path) -> Vec<PathBuf> {
    generations(data)
        .into_iter()
        .filter(|p| !p.join("MANIFEST").exists())
        .collect()
}

/// The newest generation with a MANIFEST.
fn newest_complete_generation(data: &Path) -> Option<PathBuf> {
    generations(data)
        .into_iter()
        .rev()
        .find(|p| p.join("MANIFEST").exists())
}

/// What the last recovery of a plan logged, and in how many rounds the signal came while a
/// snapshot was being written (it had no MANIFEST after the process was gone).
struct Outcome {
    fields: HashMap<String, String>,
    killed_during_snapshot: u64,
}

/// Runs the rounds of `plan`: 16 writers, a signal at a random moment, restart on the same
/// data directory, and a check of everything written in all rounds so far.
fn crash_rounds(plan: &Plan) -> Outcome {
    let stop_with = plan.stop_with;
    let mut server = Server::start_with_config(&json!({"metric-store": plan.store}));
    let policy = plan.store["wal"]["fsync"]
        .as_str()
        .expect("fsync policy")
        .to_owned();
    let start = first_timestamp();
    let mut rng = XorShift::new(plan.seed);
    let mut expected: HashMap<(u64, u64), Expected> = HashMap::new();
    let mut acked_requests_total = 0;
    let mut outcome = Outcome {
        fields: HashMap::new(),
        killed_during_snapshot: 0,
    };
    for round in 0..plan.rounds {
        let stop = AtomicBool::new(false);
        let acked = AtomicUsize::new(0);
        let trigger = plan.triggers[round as usize % plan.triggers.len()];
        let complete_at_start = newest_complete_generation(&server.data_dir());
        let started = Instant::now();
        let logs: Vec<WriterLog> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..WRITERS)
                .map(|writer| {
                    let (addr, stop, acked) = (server.addr.clone(), &stop, &acked);
                    let pause = plan.pause;
                    scope.spawn(move || {
                        run_writer(&addr, (round, writer), start, pause, stop, acked)
                    })
                })
                .collect();
            let data = server.data_dir();
            let due = || -> bool {
                match trigger {
                    Trigger::AfterMs(..) => true,
                    Trigger::SnapshotInProgress => !incomplete_generations(&data).is_empty(),
                    Trigger::SnapshotDone => newest_complete_generation(&data) > complete_at_start,
                }
            };
            match trigger {
                Trigger::AfterMs(low, high) => {
                    std::thread::sleep(Duration::from_millis(rng.range(low, high)));
                }
                Trigger::SnapshotInProgress | Trigger::SnapshotDone => {
                    while !due() {
                        assert!(
                            started.elapsed() < SNAPSHOT_TIMEOUT,
                            "{trigger:?}: no snapshot within {SNAPSHOT_TIMEOUT:?}; log:\n{}",
                            server.log()
                        );
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            }
            // A round in which nothing was acknowledged would prove nothing.
            while acked.load(Ordering::Relaxed) == 0 {
                assert!(
                    started.elapsed() < FIRST_ACK_TIMEOUT,
                    "no write acknowledged within {FIRST_ACK_TIMEOUT:?}; log:\n{}",
                    server.log()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            match stop_with {
                Stop::Kill => server.kill_now(),
                Stop::Term => server.signal("TERM"),
            }
            stop.store(true, Ordering::Relaxed);
            handles
                .into_iter()
                .map(|h| h.join().expect("writer thread"))
                .collect()
        });
        let signal_after = started.elapsed();
        let status = server
            .wait_exit(EXIT_TIMEOUT)
            .unwrap_or_else(|| panic!("strata did not exit; log:\n{}", server.log()));
        let periodic_snapshots = server
            .log()
            .lines()
            .filter(|l| l.contains(" snapshot written") && !l.contains("final snapshot"))
            .count();
        let incomplete = incomplete_generations(&server.data_dir());
        let mut acked_requests = 0;
        for (writer, log) in logs.iter().enumerate() {
            assert!(
                log.unexpected.is_empty(),
                "round {round} writer {writer}: unexpected answers while running: {:?}",
                log.unexpected
            );
            let mut acked_samples = vec![false; log.attempted as usize];
            for range in &log.acked {
                for n in range.clone() {
                    acked_samples[n as usize] = true;
                }
            }
            acked_requests += log.acked_requests;
            expected.insert(
                (round, writer as u64),
                Expected {
                    attempted: log.attempted,
                    recovered: vec![false; log.attempted as usize],
                    acked: acked_samples,
                },
            );
        }
        acked_requests_total += acked_requests;
        match stop_with {
            Stop::Kill => assert_eq!(
                status.code(),
                None,
                "SIGKILL must end the process by signal; log:\n{}",
                server.log()
            ),
            Stop::Term => {
                assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
                assert!(
                    server.log().contains("final snapshot written"),
                    "{}",
                    server.log()
                );
            }
        }

        server.restart();
        let log = server.log();
        let fields = log_fields(&log, "recovered");
        assert_eq!(
            fields.get("fsync").map(String::as_str),
            Some(policy.as_str()),
            "{log}"
        );
        assert_eq!(field_u64(&fields, "damaged_segments"), 0, "{log}");
        assert_eq!(field_u64(&fields, "damaged_snapshots"), 0, "{log}");
        if !incomplete.is_empty() {
            // Killed while a snapshot was being written: recovery drops the partial
            // generation and falls back to the previous one plus the WAL.
            outcome.killed_during_snapshot += 1;
            assert!(
                log.contains("removing a snapshot generation that was cut off"),
                "{log}"
            );
            for path in &incomplete {
                assert!(!path.exists(), "{} is removed", path.display());
            }
        }
        let (acked_samples, unacked_recovered) = verify(&server, start, round + 1, &mut expected);
        assert!(acked_samples > 0);
        let recovered_generation = fields["snapshot_generation"].as_str();
        if stop_with == Stop::Kill && plan.store.get("checkpoint-interval").is_none() {
            // checkpoint-interval is 12 h: only a graceful shutdown writes a snapshot.
            assert_eq!(recovered_generation, "None", "{log}");
        }
        match stop_with {
            Stop::Kill if recovered_generation == "None" => {
                // No snapshot: the WAL holds every record of every run, one record per
                // acknowledged request at least.
                assert!(
                    field_u64(&fields, "wal_records") >= acked_requests_total,
                    "replayed fewer records than requests were acknowledged \
                     ({acked_requests_total}): {log}"
                );
                assert!(
                    field_u64(&fields, "wal_samples") >= acked_samples,
                    "replayed fewer samples than were acknowledged ({acked_samples}): {log}"
                );
            }
            Stop::Kill => {
                // Snapshot and WAL together hold every acknowledged sample (`verify`).
            }
            Stop::Term => {
                // The final snapshot covers everything: nothing to replay.
                assert_eq!(field_u64(&fields, "wal_records"), 0, "{log}");
                assert!(
                    field_u64(&fields, "snapshot_samples") >= acked_samples,
                    "{log}"
                );
            }
        }
        assert!(
            field_u64(&fields, "samples_in_memory") >= acked_samples,
            "{log}"
        );
        eprintln!(
            "{policy} {stop_with:?} round {round}, {trigger:?}: signal after \
             {signal_after:?} ({} periodic snapshots before, {} generations left incomplete), \
             {acked_requests} requests acknowledged; {acked_samples} acknowledged samples of \
             all rounds recovered, plus {unacked_recovered} unacknowledged; recovered from \
             generation {} and {} WAL records in {} segments",
            periodic_snapshots,
            incomplete.len(),
            fields["snapshot_generation"],
            fields["wal_records"],
            fields["wal_segments"]
        );
        outcome.fields = fields;
    }
    outcome
}

#[test]
fn crash_always_loses_no_acknowledged_sample() {
    // Goal: under `always`, SIGKILL at a random moment during concurrent writes loses no
    // acknowledged sample, over four crash–recover cycles on one data directory (recovery
    // replays the segments of every earlier run, torn tails included).
    crash_rounds(&Plan::new(
        json!({"wal": {"fsync": "always"}}),
        Stop::Kill,
        4,
        1,
    ));
}

/// Under `batch` a SIGKILL loses nothing: records reach the segment file (the page cache)
/// before the acknowledgement, and the fsync every `fsync-interval` matters only for an OS
/// crash or power loss, whose loss (at most the interval) cannot be produced without a VM
/// and rests on the WAL writer's design (`strata_wal::writer`).
#[test]
fn crash_batch_loses_nothing_on_process_crash() {
    // Goal: under `batch` (100 ms), SIGKILL loses no acknowledged sample either.
    crash_rounds(&Plan::new(
        json!({"wal": {"fsync": "batch", "fsync-interval": "100ms"}}),
        Stop::Kill,
        4,
        2,
    ));
}

/// `never` leaves write-back to the OS: like `batch`, a process crash loses nothing.
#[test]
fn crash_never_loses_nothing_on_process_crash() {
    // Goal: the WAL crate's table: `never` survives a process crash.
    crash_rounds(&Plan::new(
        json!({"wal": {"fsync": "never"}}),
        Stop::Kill,
        2,
        3,
    ));
}

#[test]
fn crash_with_small_segments_recovers_across_many_segments() {
    // Goal: with 2 KiB segments the writer rotates many times under load, and each segment
    // defines its series afresh; a crash at any point still loses no acknowledged sample.
    let rounds = 3;
    let outcome = crash_rounds(&Plan::new(
        json!({"wal": {"fsync": "always", "segment-size": "2KiB"}}),
        Stop::Kill,
        rounds,
        5,
    ));
    // Every run starts a segment; more than that were started because of their size (a
    // round acknowledges hundreds of requests of ≥ 5 bytes per sample).
    let segments = field_u64(&outcome.fields, "wal_segments");
    assert!(segments > 2 * rounds, "only {segments} segments");
}

#[test]
fn sigterm_under_load_keeps_every_acknowledged_sample_in_the_final_snapshot() {
    // Goal: a graceful shutdown while 16 clients write lets in-flight requests finish, and
    // the final snapshot holds every acknowledged sample: the next start replays nothing.
    crash_rounds(&Plan::new(
        json!({"wal": {"fsync": "always"}}),
        Stop::Term,
        2,
        4,
    ));
}

#[test]
fn crash_during_a_periodic_snapshot_loses_nothing() {
    // Goal: a SIGKILL while a periodic snapshot is being written (checkpoint-interval 1 s;
    // the schedule looks every 5 s) loses no acknowledged sample: the snapshot rotated the
    // WAL under the apply gate and deletes segments only once its MANIFEST is written, and
    // recovery drops the incomplete generation and falls back to the previous generation and
    // the WAL from it. Round by round, the kill comes right after a snapshot completed
    // (while it deletes the segments it covers), then during the next run's first snapshot,
    // which falls back to that generation. Writers are throttled to still write at 5 s.
    let plan = Plan {
        triggers: vec![Trigger::SnapshotDone, Trigger::SnapshotInProgress],
        pause: Duration::from_millis(40),
        ..Plan::new(
            json!({"checkpoint-interval": "1s", "wal": {"fsync": "always"}}),
            Stop::Kill,
            2,
            6,
        )
    };
    let outcome = crash_rounds(&plan);
    // A snapshot of ~64 hosts takes tens of milliseconds; the watcher looks every 0.2 ms.
    assert!(
        outcome.killed_during_snapshot >= 1,
        "no round hit a snapshot in progress"
    );
}

/// The newest `*.wal` segment under `<data>/wal/`.
fn newest_segment(data: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(data.join("wal"))
        .expect("listing the WAL directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments.pop().expect("a WAL segment")
}

fn append(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("opening the segment");
    file.write_all(bytes).expect("appending to the segment");
}

/// Writes `requests` requests of three samples each for host `host` from slot `slot`, all
/// acknowledged; returns `(timestamp, value)` of each sample.
fn write_known(
    server: &Server,
    host: &str,
    start: i64,
    slot: i64,
    requests: i64,
) -> Vec<(i64, f64)> {
    let mut samples = Vec::new();
    for r in 0..requests {
        let mut lines = String::new();
        for i in 0..3 {
            let k = slot + r * 3 + i;
            let (t, v) = (start + 60 * k, 1000.0 + k as f64 + 0.25);
            lines.push_str(&format!("load,host={host} value={v} {t}\n"));
            samples.push((t, v));
        }
        server.write_ok(CLUSTER, &lines);
    }
    samples
}

#[track_caller]
fn assert_samples(server: &Server, host: &str, samples: &[(i64, f64)]) {
    let from = samples.iter().map(|s| s.0).min().expect("samples");
    let to = samples.iter().map(|s| s.0).max().expect("samples") + 60;
    let body = server.query(&json!({
        "cluster": CLUSTER, "from": from, "to": to, "with-padding": false,
        "queries": [{"metric": "load", "host": host}]}));
    let entry = &body["results"][0][0];
    assert_eq!(entry["from"], json!(from), "{body}\nlog:\n{}", server.log());
    let data = entry["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {body}\nlog:\n{}", server.log()));
    for (t, v) in samples {
        let index = ((t - from) / 60) as usize;
        assert_eq!(
            data.get(index).and_then(Value::as_f64),
            Some(*v),
            "sample at {t}: {body}"
        );
    }
}

#[test]
fn torn_tail_after_crash_is_cut_and_reported() {
    // Goal: bytes after the last complete record of the newest segment (what a crash during a
    // write leaves) are reported as a torn tail with their exact size, cut off, and do not
    // cost any acknowledged record; the next start finds nothing to cut.
    let mut server =
        Server::start_with_config(&json!({"metric-store": {"wal": {"fsync": "always"}}}));
    let start = minutes_ago(120);
    let mut samples = write_known(&server, "a", start, 0, 4);
    server.signal("KILL");
    server.wait_exit(EXIT_TIMEOUT).expect("killed strata exits");

    // The first five bytes of a plausible record header: a 40-byte length and one CRC byte.
    let segment = newest_segment(&server.data_dir());
    let clean_length = std::fs::metadata(&segment).expect("segment").len();
    let mut partial = 40u32.to_le_bytes().to_vec();
    partial.push(0xA5);
    append(&segment, &partial);
    server.restart();
    let log = server.log();
    let fields = log_fields(&log, "recovered");
    assert_eq!(field_u64(&fields, "torn_tail_bytes"), 5, "{log}");
    assert_eq!(field_u64(&fields, "damaged_segments"), 0, "{log}");
    assert_eq!(field_u64(&fields, "wal_records"), 4, "{log}");
    assert_eq!(field_u64(&fields, "wal_samples"), 12, "{log}");
    assert!(log.contains("torn write"), "the torn tail is logged: {log}");
    assert_eq!(
        std::fs::metadata(&segment).expect("segment").len(),
        clean_length,
        "the torn tail is cut off the file"
    );
    assert_samples(&server, "a", &samples);

    // A second start: nothing left to cut, nothing lost.
    samples.extend(write_known(&server, "a", start, 12, 2));
    server.signal("KILL");
    server.wait_exit(EXIT_TIMEOUT).expect("killed strata exits");
    server.restart();
    let log = server.log();
    let fields = log_fields(&log, "recovered");
    assert_eq!(field_u64(&fields, "torn_tail_bytes"), 0, "{log}");
    assert_eq!(field_u64(&fields, "damaged_segments"), 0, "{log}");
    assert_eq!(field_u64(&fields, "wal_records"), 6, "{log}");
    assert_samples(&server, "a", &samples);

    // Random garbage instead of a partial header: the same.
    samples.extend(write_known(&server, "a", start, 18, 1));
    server.signal("KILL");
    server.wait_exit(EXIT_TIMEOUT).expect("killed strata exits");
    append(
        &newest_segment(&server.data_dir()),
        &common::xorshift_bytes(7, 37),
    );
    server.restart();
    let log = server.log();
    let fields = log_fields(&log, "recovered");
    assert_eq!(field_u64(&fields, "torn_tail_bytes"), 37, "{log}");
    assert_eq!(field_u64(&fields, "damaged_segments"), 0, "{log}");
    assert_eq!(field_u64(&fields, "wal_records"), 7, "{log}");
    assert_samples(&server, "a", &samples);
    server.signal("KILL");
    server.wait_exit(EXIT_TIMEOUT).expect("killed strata exits");
    server.restart();
    let fields = log_fields(&server.log(), "recovered");
    assert_eq!(field_u64(&fields, "torn_tail_bytes"), 0, "{}", server.log());
    assert_samples(&server, "a", &samples);
}
