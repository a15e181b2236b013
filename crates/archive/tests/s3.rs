//! The archive on S3, against moto's real S3 server on loopback (`moto[server]`, installed by
//! scripts/test.sh): a published file reads back exactly like the same file in a local
//! directory, uploads of many parts round trip, damaged, replaced and foreign objects are
//! skipped or ignored, and a server that goes away fails clearly and leaves nothing visible.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};
use strata_archive::{Archive, FileSummary, PeriodWriter, ReadResult, S3Settings};
use strata_testkit::{CutProxy, MOTO_PART_MIN_BYTES, Moto};

const START: i64 = 1_700_000_000;
const DAY: i64 = 86_400;
const BUCKET: &str = "archive";
const PREFIX: &str = "strata/test";

fn settings(endpoint: &str, bucket: &str, part_size: u64) -> S3Settings {
    S3Settings {
        bucket: bucket.into(),
        prefix: PREFIX.into(),
        endpoint: Some(endpoint.into()),
        region: Some("us-east-1".into()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        allow_http: Some(true),
        part_size,
    }
}

/// A value that does not compress well (so files span many parts), same for every writer.
fn value(host: usize, thread: usize, i: i64) -> f32 {
    // splitmix64's finaliser.
    let mut x = (host as u64) << 40 ^ (thread as u64) << 20 ^ i as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x >> 40) as f32 / 7.0
}

/// One day of `hosts` hosts (a node metric and 4 hwthreads each, every 60 s) in `directory`.
fn write_day(directory: &Path, start: i64, hosts: usize) -> FileSummary {
    let mut writer = PeriodWriter::create(directory, "fritz", start, start + DAY).expect("create");
    for host in 0..hosts {
        let name = format!("h{host:03}");
        let samples = |thread| -> Vec<(i64, f32)> {
            (0..DAY / 60)
                .map(|i| (start + i * 60, value(host, thread, i)))
                .collect()
        };
        writer
            .add_series(&name, &[], "cpu_load", 60, &samples(99))
            .expect("series");
        for thread in 0..4 {
            let id = format!("hwthread{thread}");
            writer
                .add_series(&name, &[&id], "ipc", 60, &samples(thread))
                .expect("series");
        }
    }
    writer.finish().expect("finish")
}

/// Writes the day into `archive`'s staging directory and publishes it; returns the staged
/// bytes.
fn publish_day(archive: &Archive, data: &Path, start: i64, hosts: usize) -> Vec<u8> {
    let staging = archive.staging_directory(data).expect("staging");
    let file = write_day(&staging, start, hosts);
    let bytes = fs::read(&file.path).expect("staged file");
    let published = archive.publish(file.clone(), "fritz").expect("publish");
    assert_eq!(
        published.path.to_str(),
        Some(format!("s3://{BUCKET}/{PREFIX}/fritz/{start}.parquet").as_str())
    );
    assert!(!file.path.exists(), "the staged file is removed");
    bytes
}

/// Writes a day of `hosts` hosts into staging and publishes it, which must fail: the error;
/// the staged file must be gone.
fn publish_fails(archive: &Archive, data: &Path, hosts: usize) -> String {
    let staging = archive.staging_directory(data).expect("staging");
    let file = write_day(&staging, START, hosts);
    let error = archive
        .publish(file.clone(), "fritz")
        .expect_err("the upload must fail");
    assert!(!file.path.exists(), "the staged file is removed");
    error.to_string()
}

fn moto_with_bucket() -> Moto {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    moto
}

fn read(archive: &Archive, host: &str, metric: &str, from_s: i64, to_s: i64) -> ReadResult {
    archive
        .read("fritz", host, metric, from_s, to_s)
        .expect("read")
}

// Goal: what the pass publishes reads back exactly as the same files in a local directory,
// for whole days, hours and missing hosts, with footers cached and the staging directory
// holding nothing afterwards.
#[test]
fn published_files_read_back_like_local_ones() {
    let moto = moto_with_bucket();
    let data = tempfile::tempdir().expect("tempdir");
    let local = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open_s3(&settings(&moto.endpoint(), BUCKET, 8 << 20)).expect("open");
    for day in 0..2 {
        let start = START + day * DAY;
        let staged = publish_day(&archive, data.path(), start, 6);
        write_day(local.path(), start, 6);
        assert_eq!(
            moto.get(BUCKET, &format!("{PREFIX}/fritz/{start}.parquet")),
            staged,
            "the object is the staged file"
        );
    }
    assert_eq!(
        moto.keys(BUCKET),
        [
            format!("{PREFIX}/fritz/{START}.parquet"),
            format!("{PREFIX}/fritz/{}.parquet", START + DAY)
        ]
    );
    let staging = data.path().join(strata_archive::STAGING_DIRECTORY);
    assert!(
        fs::read_dir(staging.join("fritz"))
            .expect("staging")
            .next()
            .is_none(),
        "nothing left in staging"
    );
    let reference = Archive::open(local.path());
    let requests = [
        ("h003", "cpu_load", START, START + 2 * DAY),
        ("h003", "ipc", START + 3600, START + DAY + 7200),
        ("h000", "ipc", START + DAY - 60, START + DAY + 60),
        ("h999", "ipc", START, START + 2 * DAY),
        ("h005", "nothing", START, START + 2 * DAY),
    ];
    for (host, metric, from_s, to_s) in requests {
        let want = read(&reference, host, metric, from_s, to_s);
        assert!(want.skipped.is_empty());
        let got = read(&archive, host, metric, from_s, to_s);
        assert_eq!(got, want, "{host} {metric} {from_s}..{to_s}");
    }
    assert_eq!(
        read(&archive, "h003", "ipc", START, START + DAY)
            .series
            .len(),
        4
    );
    assert_eq!(
        archive.newest_s("fritz").expect("listing"),
        Some(START + 2 * DAY)
    );

    // Requests per read: a cold one fetches each file's tail (footer and page index), then
    // the selected column chunks in one coalesced GET; a warm one only the latter.
    let object_gets = || {
        moto.requests()
            .iter()
            .filter(|request| request.starts_with(&format!("GET /{BUCKET}/{PREFIX}/fritz/")))
            .count()
    };
    let cold = Archive::open_s3(&settings(&moto.endpoint(), BUCKET, 8 << 20)).expect("open");
    let before = object_gets();
    read(&cold, "h004", "ipc", START, START + 2 * DAY);
    assert_eq!(object_gets() - before, 4, "{:?}", moto.requests());
    let before = object_gets();
    read(&cold, "h002", "cpu_load", START, START + 2 * DAY);
    assert_eq!(object_gets() - before, 2, "{:?}", moto.requests());

    let cached = archive.footer_cache_bytes();
    assert!(cached > 0, "footers are cached");
    read(&archive, "h001", "cpu_load", START, START + 2 * DAY);
    assert_eq!(
        archive.footer_cache_bytes(),
        cached,
        "and read from the cache"
    );
    // Another reader over the same bucket (a second Strata instance) sees the same.
    let other = Archive::open_s3(&settings(&moto.endpoint(), BUCKET, 8 << 20)).expect("open");
    assert_eq!(
        read(&other, "h002", "ipc", START, START + 2 * DAY),
        read(&reference, "h002", "ipc", START, START + 2 * DAY)
    );
}

// Goal: a file uploaded in many small parts (64 KiB, several in flight) arrives byte for byte.
#[test]
fn a_many_part_upload_round_trips() {
    let moto = moto_with_bucket();
    let data = tempfile::tempdir().expect("tempdir");
    let archive =
        Archive::open_s3(&settings(&moto.endpoint(), BUCKET, MOTO_PART_MIN_BYTES)).expect("open");
    let staged = publish_day(&archive, data.path(), START, 20);
    assert!(
        staged.len() as u64 > 6 * MOTO_PART_MIN_BYTES,
        "{} bytes: not many parts",
        staged.len()
    );
    assert_eq!(
        moto.get(BUCKET, &format!("{PREFIX}/fritz/{START}.parquet")),
        staged
    );
    assert!(moto.open_uploads(BUCKET).is_empty());
    let local = tempfile::tempdir().expect("tempdir");
    write_day(local.path(), START, 20);
    assert_eq!(
        read(&archive, "h019", "ipc", START, START + DAY),
        read(
            &Archive::open(local.path()),
            "h019",
            "ipc",
            START,
            START + DAY
        )
    );
}

// Goal: damaged objects are named in `skipped`; objects that are not the archive's (other
// suffixes, dot names, deeper keys, other prefixes) are ignored; an object replaced between
// the listing and the read is skipped as such, and read anew at the next read.
#[test]
fn damaged_foreign_and_replaced_objects() {
    let moto = moto_with_bucket();
    let data = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open_s3(&settings(&moto.endpoint(), BUCKET, 8 << 20)).expect("open");
    let good = publish_day(&archive, data.path(), START, 2);
    let key = |name: &str| format!("{PREFIX}/fritz/{name}");
    let truncated = format!("{}.parquet", START + DAY);
    let garbage = format!("{}.parquet", START + 2 * DAY);
    moto.put(BUCKET, &key(&truncated), good[..good.len() / 2].to_vec());
    moto.put(BUCKET, &key(&garbage), vec![0xA5; 100_000]);
    // A name with characters a key may hold and a URL must escape.
    let odd = "odd name+%41.parquet";
    moto.put(BUCKET, &key("odd%20name%2B%2541.parquet"), vec![0x5A; 1000]);
    for foreign in [
        key("notes.txt"),
        key(".1700000000.parquet.tmp"),
        key(".hidden.parquet"),
        key("nested/1700000000.parquet"),
        format!("{PREFIX}/other/1700000000.parquet"),
        format!("{PREFIX}/fritzy/1700000000.parquet"),
        "fritz/1700000000.parquet".to_string(),
    ] {
        moto.put(BUCKET, &foreign, good.clone());
    }
    let fresh = || Archive::open_s3(&settings(&moto.endpoint(), BUCKET, 8 << 20)).expect("open");
    let archive = fresh();
    let result = read(&archive, "h001", "ipc", 0, i64::MAX);
    assert_eq!(result.series.len(), 4);
    assert!(
        result.series.iter().all(|s| s.samples.len() == 1440),
        "only the good file's samples"
    );
    let mut skipped: Vec<&str> = result.skipped.iter().map(|s| s.name.as_str()).collect();
    skipped.sort();
    assert_eq!(skipped, [truncated.as_str(), garbage.as_str(), odd]);
    // Read and found damaged: the key was used as listed (not re-escaped into another key).
    assert!(
        result
            .skipped
            .iter()
            .all(|s| s.reason.contains("Corrupt footer") || s.reason.contains("EOF")),
        "{:?}",
        result.skipped
    );
    assert_eq!(
        archive.newest_s("fritz").expect("listing"),
        Some(START + DAY)
    );

    // Replaced after the listing: the read is refused by the ETag, not mixed.
    let archive = fresh();
    assert_eq!(
        archive.newest_s("fritz").expect("listing"),
        Some(START + DAY)
    );
    let other = tempfile::tempdir().expect("tempdir");
    let replacement = fs::read(write_day(other.path(), START, 3).path).expect("file");
    moto.put(BUCKET, &key(&format!("{START}.parquet")), replacement);
    let result = read(&archive, "h001", "cpu_load", 0, i64::MAX);
    assert!(
        result
            .skipped
            .iter()
            .any(|s| s.name == format!("{START}.parquet") && s.reason.contains("Precondition")),
        "{:?}",
        result.skipped
    );
    let result = read(&archive, "h001", "cpu_load", 0, i64::MAX);
    assert_eq!(
        result.series.len(),
        1,
        "the next read lists again: {result:?}"
    );
    assert_eq!(result.series[0].samples.len(), 1440);
}

// Goal: a missing bucket, an unreachable endpoint and a server that goes away in the middle of
// a multipart upload fail with clear errors, quickly, leave no object visible and nothing in
// staging; once the server is back the same file uploads whole.
#[test]
fn failures_are_clear_and_leave_nothing_visible() {
    let moto = moto_with_bucket();
    let data = tempfile::tempdir().expect("tempdir");

    let missing =
        Archive::open_s3(&settings(&moto.endpoint(), "no-such-bucket", 8 << 20)).expect("open");
    let error = missing
        .read("fritz", "h", "m", 0, i64::MAX)
        .expect_err("no bucket")
        .to_string();
    assert!(
        error.contains("s3://no-such-bucket/strata/test/fritz") && error.contains("NoSuchBucket"),
        "{error}"
    );
    let error = publish_fails(&missing, data.path(), 1);
    assert!(error.contains("uploading s3://no-such-bucket/"), "{error}");
    assert!(
        !error.contains("testing"),
        "no credentials in errors: {error}"
    );

    let down = format!("http://127.0.0.1:{}", strata_testkit::free_port());
    let unreachable = Archive::open_s3(&settings(&down, BUCKET, 8 << 20)).expect("open");
    let began = Instant::now();
    let error = unreachable
        .read("fritz", "h", "m", 0, i64::MAX)
        .expect_err("down")
        .to_string();
    assert!(
        error.contains("listing s3://archive/strata/test/fritz"),
        "{error}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "{:?}",
        began.elapsed()
    );
    assert!(unreachable.newest_s("fritz").is_err());
    assert!(unreachable.archived_end("fritz").is_err());

    // The server goes away after about two and a half parts.
    let proxy = CutProxy::start(moto.addr());
    let endpoint = format!("http://{}", proxy.addr());
    let archive =
        Archive::open_s3(&settings(&endpoint, BUCKET, MOTO_PART_MIN_BYTES)).expect("open");
    proxy.cut_after(5 * MOTO_PART_MIN_BYTES / 2);
    let error = publish_fails(&archive, data.path(), 12);
    assert!(proxy.has_cut());
    assert!(
        error.contains(&format!(
            "uploading s3://{BUCKET}/{PREFIX}/fritz/{START}.parquet"
        )),
        "{error}"
    );
    assert!(moto.keys(BUCKET).is_empty(), "nothing visible");
    proxy.restore();
    let staged = publish_day(&archive, data.path(), START, 12);
    assert_eq!(
        moto.get(BUCKET, &format!("{PREFIX}/fritz/{START}.parquet")),
        staged
    );
}

// Goal: credentials the server refuses fail reads and uploads with the server's reason
// (403 InvalidAccessKeyId), never the secret, and leave no staged file behind.
#[test]
fn refused_credentials_are_reported() {
    let moto = Moto::start_checking_credentials(BUCKET);
    let data = tempfile::tempdir().expect("tempdir");
    let mut wrong = settings(&moto.endpoint(), BUCKET, 8 << 20);
    wrong.secret_access_key = Some("wrong-secret-value".into());
    let archive = Archive::open_s3(&wrong).expect("open");
    let error = archive
        .read("fritz", "h", "m", 0, i64::MAX)
        .expect_err("refused")
        .to_string();
    assert!(error.contains("InvalidAccessKeyId"), "{error}");
    let error = publish_fails(&archive, data.path(), 1);
    assert!(
        error.contains("403") && error.contains("InvalidAccessKeyId"),
        "{error}"
    );
    assert!(!error.contains("wrong-secret-value"), "{error}");
}
