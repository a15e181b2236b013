//! The store side of the Parquet archive (issue 8): listing and copying series out one at a
//! time (`series_names`, `export_series`), turning archived samples back into images
//! (`HostImage::add_samples`), and the query merge: an archive image and memory's copy
//! (`export_metric`) imported into a `scratch` store answer queries exactly as memory did.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use proptest::prelude::*;
use std::collections::BTreeMap;
use strata_store::{
    Aggregation, HostImage, LevelName, MetricConfig, Query, ReadOptions, Resampler, ResamplerKind,
    SAMPLE_TIME_S, SeriesResult, Store, StoreConfig, WriteBatch,
};

const BASE: i64 = 1_000_000;
const NOW: i64 = BASE + 1_000_000;
/// Beyond every sample the tests write.
const FAR: i64 = NOW;

/// Metrics: name, frequency, aggregation.
const METRICS: [(&str, i64, Aggregation); 4] = [
    ("cpu_load", 10, Aggregation::Avg),
    ("flops", 10, Aggregation::Sum),
    ("mem", 30, Aggregation::Avg),
    ("membw", 10, Aggregation::Sum),
];

fn store() -> Store {
    let mut config = StoreConfig::auto(10);
    for (name, frequency_s, aggregation) in METRICS {
        let metric = MetricConfig {
            frequency_s,
            aggregation,
        };
        config.metrics.insert(name.to_owned(), metric);
    }
    config.retention_s = NOW;
    Store::new(config)
}

fn frequency(metric: &str) -> i64 {
    METRICS.iter().find(|m| m.0 == metric).unwrap().1
}

/// `(level names, metric)` of every series the tests write on a host.
fn layout() -> Vec<(Vec<String>, &'static str)> {
    let mut series = vec![(vec![], "cpu_load"), (vec![], "mem")];
    for id in 0..4 {
        for metric in ["cpu_load", "flops"] {
            series.push((vec![format!("hwthread{id}")], metric));
        }
    }
    for socket in 0..2 {
        for core in 0..2 {
            series.push((
                vec![format!("socket{socket}"), format!("core{core}")],
                "membw",
            ));
        }
    }
    series
}

/// The level names of `path` as a write takes them (`hwthread3` → type `hwthread`, id `3`).
fn levels(path: &[String]) -> [LevelName<'_>; 2] {
    let mut out = [LevelName::NONE; 2];
    for (slot, name) in out.iter_mut().zip(path) {
        let at = name.find(|c: char| c.is_ascii_digit()).unwrap();
        *slot = LevelName::new(&name[..at], &name[at..]);
    }
    out
}

/// Writes `samples` (time, value) of one series.
fn write(store: &Store, host: &str, path: &[String], metric: &str, samples: &[(i64, f32)]) {
    let mut batch = WriteBatch::new();
    for &(t, v) in samples {
        batch.push("c", host, levels(path), metric, t, v);
    }
    assert_eq!(store.write(&batch, NOW).written, samples.len());
}

/// The archive half and the memory half of `original`'s data at `split`, merged in a
/// scratch store the way a query will merge them: archived samples (before `split`, series
/// by series) first, memory's copy of each metric from `split` on second.
fn merged(original: &Store, split: i64) -> Store {
    let scratch = original.scratch();
    for (cluster, host) in original.host_keys() {
        let mut archived = HostImage::new(&cluster, &host);
        for (path, metric) in original.series_names(&cluster, &host) {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let (frequency_s, samples) = original
                .export_series(&cluster, &host, &path, &metric, i64::MIN, split)
                .unwrap();
            archived.add_samples(&path, &metric, frequency_s, samples);
        }
        scratch.import_host(archived);
        for (metric, _, _) in METRICS {
            if let Some(memory) = original.export_metric(&cluster, &host, metric, split, i64::MAX) {
                scratch.import_host(memory);
            }
        }
    }
    scratch
}

/// Archived samples of one series: `(host, level names, metric)` → (frequency, samples).
type Archive = BTreeMap<(String, Vec<String>, String), (i64, Vec<(i64, f32)>)>;

/// `original` as the server holds it once memory below `split` is archived and freed: the
/// archived samples of every series, and a memory store with the samples from `split` on.
fn split(original: &Store, split: i64) -> (Archive, Store) {
    let mut archive = Archive::new();
    let memory = original.scratch();
    for (cluster, host) in original.host_keys() {
        let mut kept = HostImage::new(&cluster, &host);
        for (path, metric) in original.series_names(&cluster, &host) {
            let levels: Vec<&str> = path.iter().map(String::as_str).collect();
            let export = |from, to| {
                let found = original.export_series(&cluster, &host, &levels, &metric, from, to);
                found.unwrap()
            };
            let (f, newer) = export(split, i64::MAX);
            kept.add_samples(&levels, &metric, f, newer);
            let older = export(i64::MIN, split);
            archive.insert((host.clone(), path.clone(), metric.clone()), older);
        }
        memory.import_host(kept);
    }
    (archive, memory)
}

/// What a query of `metric` on `host` over `[from, to)` merges, as the server will: per
/// series of the metric, the archived samples in `[from, to)` plus the last one before
/// `from` and the first at or after `to` (what the archive reader must return, for the
/// reason `export_metric` gives), then memory's copy of the metric.
fn merged_for_query(
    (archive, memory): &(Archive, Store),
    host: &str,
    metric: &str,
    from_s: i64,
    to_s: i64,
) -> Store {
    let scratch = memory.scratch();
    let mut image = HostImage::new("c", host);
    for ((_, path, _), (f, samples)) in archive
        .iter()
        .filter(|((h, _, m), _)| h == host && m == metric)
    {
        let first = samples.partition_point(|&(t, _)| t < from_s);
        let end = samples.partition_point(|&(t, _)| t < to_s).max(first);
        let mut read = samples[first.saturating_sub(1)..end].to_vec();
        read.extend(samples.get(end));
        image.add_samples(path, metric, *f, read);
    }
    scratch.import_host(image);
    if let Some(copy) = memory.export_metric("c", host, metric, from_s, to_s) {
        scratch.import_host(copy);
    }
    scratch
}

/// The queries compared: raw series, aggregation over hwthreads (avg and sum), a node
/// query that aggregates its children, sub-levels, resampling, scaling.
fn queries<'a>(ids: &'a [String], pair: &'a [String]) -> Vec<Query<'a>> {
    let query = |metric| Query {
        host: "h",
        metric,
        ..Query::default()
    };
    let hw = |metric, aggregate| Query {
        kind: Some("hwthread"),
        kind_ids: ids,
        aggregate,
        ..query(metric)
    };
    let sockets = |aggregate| Query {
        kind: Some("socket"),
        kind_ids: pair,
        subkind: Some("core"),
        subkind_ids: pair,
        aggregate,
        ..query("membw")
    };
    vec![
        query("cpu_load"),
        query("mem"),
        query("flops"),
        hw("cpu_load", false),
        hw("cpu_load", true),
        hw("flops", true),
        sockets(false),
        sockets(true),
        query("membw"),
        Query {
            resolution_s: 60,
            ..hw("cpu_load", true)
        },
        Query {
            resolution_s: 60,
            resampler: Some(ResamplerKind::Average),
            ..query("mem")
        },
        Query {
            resolution_s: 120,
            scale_by: Some(2.5),
            ..hw("flops", true)
        },
        Query {
            scale_by: Some(-0.5),
            ..query("cpu_load")
        },
    ]
}

fn options(from_s: i64, to_s: i64, with_padding: bool) -> ReadOptions {
    ReadOptions {
        from_s,
        to_s,
        with_stats: true,
        with_data: true,
        with_padding,
        resampler: Resampler {
            kind: ResamplerKind::Lttb,
            minimum_points: 8,
        },
    }
}

/// A comparable rendering of a query's answer (NaN equal to NaN).
fn answer(store: &Store, query: &Query<'_>, options: &ReadOptions) -> String {
    let results: Vec<SeriesResult> = store.query("c", query, options);
    format!("{results:?}")
}

/// One series' samples: runs of consecutive slots separated by gaps (some longer than a
/// buffer), some values NaN but never the first or the last.
fn series_samples() -> impl Strategy<Value = Vec<(i64, bool, i16)>> {
    let run = (prop_oneof![4 => 1i64..4, 1 => 4i64..700], 1usize..120);
    (0i64..60, prop::collection::vec(run, 1..6)).prop_flat_map(|(first, runs)| {
        let mut slots = Vec::new();
        let mut cursor = first;
        for (gap, len) in runs {
            cursor += gap;
            slots.extend(cursor..cursor + len as i64);
            cursor += len as i64;
        }
        let count = slots.len();
        (
            Just(slots),
            prop::collection::vec((any::<bool>(), any::<i16>()), count),
        )
            .prop_map(|(slots, values)| {
                slots
                    .into_iter()
                    .zip(values)
                    .map(|(slot, (nan, v))| (slot, nan && v % 5 == 0, v))
                    .collect()
            })
    })
}

#[derive(Debug, Clone)]
struct Case {
    /// Per host, per series of [`layout`]: (slot, NaN, value).
    hosts: Vec<Vec<Vec<(i64, bool, i16)>>>,
    /// Times, multiples of 30 s after `BASE`, at which every series has a value.
    anchors: Vec<i64>,
    split: i64,
    /// `from` of each query range; `to` is `FAR` or an anchor ± a few seconds.
    froms: [i64; 3],
    offsets: [i64; 2],
}

fn case() -> impl Strategy<Value = Case> {
    let host = prop::collection::vec(series_samples(), layout().len());
    (
        prop::collection::vec(host, 1..3),
        prop::collection::vec(0i64..400, 2),
        BASE - 1000..BASE + 25_000,
        [
            BASE - 1000..BASE + 25_000,
            BASE - 1000..BASE + 25_000,
            BASE - 2000..BASE,
        ],
        [-4i64..=5, -4i64..=5],
    )
        .prop_map(|(hosts, anchors, split, froms, offsets)| Case {
            hosts,
            anchors: anchors.into_iter().map(|k| BASE + 30 * k).collect(),
            split,
            froms,
            offsets,
        })
}

/// The store `case` describes.
fn original(case: &Case) -> Store {
    let store = store();
    for (index, host) in case.hosts.iter().enumerate() {
        let name = ["h", "g"][index];
        for ((path, metric), slots) in layout().iter().zip(host) {
            let f = frequency(metric);
            let last = slots.len() - 1;
            let mut samples: Vec<(i64, f32)> = slots
                .iter()
                .enumerate()
                .map(|(i, &(slot, nan, v))| {
                    let value = if nan && i != 0 && i != last {
                        f32::NAN
                    } else {
                        f32::from(v) / 4.0
                    };
                    (BASE + slot * f, value)
                })
                .collect();
            // A value at every anchor, so that a query ending there ends inside the data
            // of every series.
            for &anchor in &case.anchors {
                samples.push((anchor, 1.5));
            }
            samples.sort_by_key(|&(t, _)| t);
            // The anchors may put a NaN first or last: first and last are values.
            if let Some(first) = samples.first_mut() {
                first.1 = 0.25;
            }
            if let Some(last) = samples.last_mut() {
                last.1 = 0.75;
            }
            write(&store, name, path, metric, &samples);
        }
    }
    store
}

#[test]
fn series_names_list_every_series_of_a_host() {
    // Goal: every series of a host, by level names and metric, sorted by metric then
    // levels; nothing for an unknown host.
    let store = store();
    for (path, metric) in layout() {
        write(&store, "h", &path, metric, &[(BASE, 1.0)]);
    }
    let mut expected: Vec<(Vec<String>, String)> = layout()
        .into_iter()
        .map(|(path, metric)| (path, metric.to_owned()))
        .collect();
    expected.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    assert_eq!(store.series_names("c", "h"), expected);
    assert!(store.series_names("c", "nope").is_empty());
    assert!(store.series_names("nope", "h").is_empty());
}

#[test]
fn export_series_copies_one_series_by_sample_time() {
    // Goal: the samples whose sample time lies in [from, to), NaN left out, with the
    // series' frequency; ranges that tile time copy each sample once; `None` for anything
    // that does not exist.
    let store = store();
    let path = vec!["hwthread1".to_owned()];
    let samples = [
        (BASE, 1.0),
        (BASE + 10, f32::NAN),
        (BASE + 20, 3.0),
        (BASE + 9000, 4.0),
    ];
    write(&store, "h", &path, "flops", &samples);
    let export = |from, to| store.export_series("c", "h", &["hwthread1"], "flops", from, to);
    assert_eq!(
        export(i64::MIN, i64::MAX),
        Some((10, vec![(BASE, 1.0), (BASE + 20, 3.0), (BASE + 9000, 4.0)]))
    );
    assert_eq!(
        export(BASE + 1, BASE + 9000),
        Some((10, vec![(BASE + 20, 3.0)]))
    );
    let (_, mut halves) = export(i64::MIN, BASE + 20).unwrap();
    halves.extend(export(BASE + 20, i64::MAX).unwrap().1);
    assert_eq!(halves, export(i64::MIN, i64::MAX).unwrap().1);
    assert_eq!(export(BASE + 30, BASE + 40), Some((10, vec![])));
    for (host, levels, metric) in [
        ("x", &["hwthread1"][..], "flops"),
        ("h", &["hwthread2"][..], "flops"),
        ("h", &["hwthread1"][..], "cpu_load"),
        ("h", &["hwthread1"][..], "unknown"),
        ("h", &[][..], "flops"),
    ] {
        assert_eq!(store.export_series("c", host, levels, metric, 0, FAR), None);
    }
}

#[test]
fn samples_become_an_image_that_imports_the_same_slots() {
    // Goal: `HostImage::add_samples` is the inverse of `export_series`: imported into an
    // empty store, every series holds the same samples (gaps longer than a buffer included)
    // and queries answer the same; unsorted input is sorted, the last of two samples of one
    // time wins.
    let original = store();
    let path = vec!["socket0".to_owned(), "core1".to_owned()];
    let mut samples: Vec<(i64, f32)> = (0..600).map(|i| (BASE + i * 10, i as f32)).collect();
    samples.extend((0..50).map(|i| (BASE + 20_000 + i * 10, -(i as f32))));
    write(&original, "h", &path, "membw", &samples);
    write(&original, "h", &[], "mem", &[(BASE, 1.0), (BASE + 60, 2.0)]);
    let copy = original.scratch();
    let mut image = HostImage::new("c", "h");
    for (path, metric) in original.series_names("c", "h") {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let (f, mut samples) = original
            .export_series("c", "h", &path, &metric, i64::MIN, i64::MAX)
            .unwrap();
        samples.reverse();
        samples.push((BASE + 60, 9.0));
        image.add_samples(&path, &metric, f, samples);
    }
    let report = copy.import_host(image);
    assert_eq!(report.series, 2);
    let all = |store: &Store, path: &[&str], metric| {
        store.export_series("c", "h", path, metric, i64::MIN, i64::MAX)
    };
    let (_, mut expected) = all(&original, &["socket0", "core1"], "membw").unwrap();
    expected.push((BASE + 60, 9.0));
    expected.sort_by_key(|&(t, _)| t);
    expected.dedup_by_key(|&mut (t, _)| t);
    // The pushed sample came after the original one of that time: it wins.
    let at = expected.iter().position(|&(t, _)| t == BASE + 60).unwrap();
    expected[at].1 = 9.0;
    assert_eq!(
        all(&copy, &["socket0", "core1"], "membw").unwrap().1,
        expected
    );
    assert_eq!(
        all(&copy, &[], "mem"),
        Some((30, vec![(BASE, 1.0), (BASE + 60, 9.0)]))
    );
}

#[test]
fn samples_at_another_frequency_are_resampled_like_a_snapshot() {
    // Goal: archived samples of a metric whose frequency changed since are imported as a
    // snapshot at another frequency is: counted, and each value written at its time.
    let store = store();
    let mut image = HostImage::new("c", "h");
    image.add_samples(
        &[] as &[&str],
        "mem",
        10,
        vec![(BASE, 1.0), (BASE + 10, 2.0)],
    );
    image.add_samples(&[] as &[&str], "cpu_load", 0, vec![(BASE, 1.0)]);
    let report = store.import_host(image);
    assert_eq!(report.frequency_mismatches, 1);
    // The later sample of the 30 s slot wins; the series has the configured frequency.
    assert_eq!(
        store.export_series("c", "h", &[], "mem", i64::MIN, i64::MAX),
        Some((30, vec![(BASE, 2.0)]))
    );
    // A frequency outside 1 s – 1 day imports nothing.
    assert_eq!(store.export_series("c", "h", &[], "cpu_load", 0, FAR), None);
}

#[test]
fn samples_at_absurd_times_are_left_out() {
    // Goal: an archive row at an extreme time (a corrupt or hostile file) is no sample: it
    // cannot make one series span more than the slot arithmetic holds (a panic in debug
    // builds, nonsense slots in release ones).
    let store = store();
    let mut image = HostImage::new("c", "h");
    let samples = vec![
        (i64::MIN, 1.0),
        (-1, 2.0),
        (BASE, 3.0),
        (*SAMPLE_TIME_S.end(), 4.0),
        (SAMPLE_TIME_S.end() + 1, 5.0),
        (i64::MAX, 6.0),
    ];
    image.add_samples(&["hwthread0"], "flops", 10, samples);
    assert_eq!(store.import_host(image).slots, 2);
    // The last one lands in the slot holding its time, on the grid the first one started.
    assert_eq!(
        store.export_series("c", "h", &["hwthread0"], "flops", i64::MIN, i64::MAX),
        Some((10, vec![(BASE, 3.0), (SAMPLE_TIME_S.end() + 1, 4.0)]))
    );
}

#[test]
fn export_metric_reads_like_memory_at_the_edges() {
    // Goal: a scratch store holding only `export_metric(from, to)` answers a query of
    // [from, to) as memory does. `from` in a gap: the sample before it keeps the read from
    // being clamped to the next sample. `to` just after a slot's start: the sample at or
    // after `to` fills the last step.
    let store = store();
    let path = vec!["hwthread0".to_owned()];
    let samples: Vec<(i64, f32)> = (0..30)
        .filter(|i| !(10..20).contains(i))
        .map(|i| (BASE + i * 10, i as f32))
        .collect();
    write(&store, "h", &path, "flops", &samples);
    write(&store, "h", &path, "cpu_load", &[(BASE, 1.0)]);
    let query = Query {
        host: "h",
        metric: "flops",
        kind: Some("hwthread"),
        kind_ids: &["0".to_owned()],
        ..Query::default()
    };
    // Slot i starts at BASE + 10·i − 5.
    for (from, to) in [
        // In the gap.
        (BASE + 150, BASE + 260),
        // The first step (52) reads slot 5, whose sample time (50) is before `from`.
        (BASE + 52, BASE + 97),
        // The last step (277) reads slot 28, whose sample time (280) is after `to`.
        (BASE + 207, BASE + 279),
        (BASE + 300, FAR),
    ] {
        let scratch = store.scratch();
        let image = store.export_metric("c", "h", "flops", from, to).unwrap();
        scratch.import_host(image);
        let options = options(from, to, false);
        assert_eq!(
            answer(&scratch, &query, &options),
            answer(&store, &query, &options),
            "[{from}, {to})"
        );
        // Only the metric asked for is copied.
        let cpu = Query {
            metric: "cpu_load",
            ..query
        };
        assert!(scratch.query("c", &cpu, &options)[0].is_err());
    }
    assert!(store.export_metric("c", "h", "mem", 0, FAR).is_none());
    assert!(store.export_metric("c", "x", "flops", 0, FAR).is_none());
    assert!(store.export_metric("c", "h", "unknown", 0, FAR).is_none());
}

#[test]
fn memory_start_is_the_oldest_sample_of_a_metric_on_a_host() {
    // Goal: the oldest sample of the metric at any level of the host (NaN is no sample);
    // `None` when memory holds none.
    let store = store();
    write(
        &store,
        "h",
        &[],
        "flops",
        &[(BASE + 50, f32::NAN), (BASE + 60, 1.0)],
    );
    let core = ["socket1".to_owned(), "core0".to_owned()];
    write(
        &store,
        "h",
        &core,
        "flops",
        &[(BASE + 40, 2.0), (BASE + 900, 3.0)],
    );
    write(&store, "h", &[], "cpu_load", &[(BASE, 1.0)]);
    assert_eq!(store.memory_start("c", "h", "flops"), Some(BASE + 40));
    assert_eq!(store.memory_start("c", "h", "cpu_load"), Some(BASE));
    store.free(&["c", "h", "socket1"], FAR);
    assert_eq!(store.memory_start("c", "h", "flops"), Some(BASE + 60));
    assert_eq!(store.memory_start("c", "h", "mem"), None);
    assert_eq!(store.memory_start("c", "x", "flops"), None);
    assert_eq!(store.memory_start("c", "h", "unknown"), None);
}

#[test]
fn scratch_knows_the_metrics_registered_on_first_sight() {
    // Goal: the scratch store has memory's metric registry, so a metric registered on first
    // sight is not "unknown" in it (auto-registration would give it the default
    // configuration only when an image of it is imported).
    let store = Store::new(StoreConfig::auto(10));
    let mut batch = WriteBatch::new();
    batch.push("c", "h", [LevelName::NONE; 2], "seen", BASE, 1.0);
    store.write(&batch, BASE);
    let scratch = store.scratch();
    let query = Query {
        host: "h",
        metric: "seen",
        ..Query::default()
    };
    let results = scratch.query("c", &query, &options(0, FAR, false));
    assert_eq!(format!("{results:?}"), "[Err(NotFound)]");
    assert_eq!(scratch.stats().metrics, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Goal: whatever the data and wherever the archive/memory boundary lies, a query on the
    /// merge of the archived samples and memory's copy answers exactly what the store
    /// answers — with everything merged, and with only what the query's range needs from
    /// the archive (plus one sample either side) and from memory (`export_metric`): raw series, avg and sum over hwthreads, sub-levels, resampling (LTTB and
    /// average), padding, statistics, scaling. A query range ends beyond the data or at a
    /// time every series has a value: where a range ends in a gap, a read ends at `to` if a
    /// buffer covers the gap (NaN-filled, or NaN written) and at the last slot before it if
    /// not, and an archive, which keeps values only, does not keep that coverage (the same
    /// holds for buffers re-tiled by a snapshot restore).
    #[test]
    fn scratch_merge_equals_memory(case in case()) {
        let original = original(&case);
        let scratch = merged(&original, case.split);
        // Not vacuous: the host-level series answers with data.
        let node = Query { host: "h", metric: "cpu_load", ..Query::default() };
        let full = original.query("c", &node, &options(case.froms[2], FAR, false));
        prop_assert!(
            matches!(&full[..], [Ok(d)] if d.data.as_ref().is_some_and(|d| d.len() > 1)),
            "{:?}", full
        );
        let ranges = [
            (case.froms[0], FAR),
            (case.froms[1], case.anchors[0] + case.offsets[0]),
            (case.froms[2], case.anchors[1] + case.offsets[1]),
        ];
        let held = split(&original, case.split);
        let ids = ["0", "1", "2", "3"].map(String::from);
        let pair = ["0", "1"].map(String::from);
        for query in queries(&ids, &pair) {
            for host in ["h", "g"] {
                let query = Query { host, ..query };
                for (from_s, to_s) in ranges {
                    // Only what the query's range needs, from both sides.
                    let read = merged_for_query(&held, host, query.metric, from_s, to_s);
                    for with_padding in [false, true] {
                        let options = options(from_s, to_s, with_padding);
                        let expected = answer(&original, &query, &options);
                        prop_assert_eq!(
                            &expected,
                            &answer(&scratch, &query, &options),
                            "{:?} {:?}", query, options
                        );
                        prop_assert_eq!(
                            &expected,
                            &answer(&read, &query, &options),
                            "range-limited: {:?} {:?}", query, options
                        );
                    }
                }
            }
        }
    }
}
