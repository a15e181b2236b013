//! The archive on an S3-compatible object store: objects `<prefix>/<cluster>/<name>.parquet`.
//!
//! Callers are blocking threads (the pass, queries on the blocking pool), the client is async:
//! every request runs as a task on a small runtime the archive owns and the caller waits on a
//! channel, so this works from any thread and never blocks an async worker of the server.
//!
//! Reads go through [`ObjectReader`], Parquet's synchronous `ChunkReader` over one object: it
//! serves byte ranges fetched ahead (the file's tail before its footer is parsed, the column
//! chunks of the selected row groups before decoding, coalesced) and fetches anything else
//! with one ranged GET. Every GET carries the listing's ETag (`If-Match`), so an object
//! replaced between the listing and the read fails as such instead of mixing two versions.
//!
//! Writes: the pass writes a period's file into a local staging directory as for a local
//! archive, then [`S3Archive::upload`] sends it as a multipart upload (parts of `part_size`,
//! at most [`PARTS_IN_FLIGHT`] at a time); the object becomes visible only when the upload
//! completes, and a failed upload is aborted.

use crate::Error;
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ListResult, ObjectStore, ObjectStoreExt,
    RetryConfig, WriteMultipart,
};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use std::future::Future;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Bytes read from an object's end before its footer is parsed: the footer and, for the
/// files Strata writes, the page index, in one GET.
pub(crate) const TAIL_PREFETCH_BYTES: u64 = 64 << 10;
/// A Parquet reader asking for a stream at an offset nothing was fetched for gets this much
/// (it reads one page header there).
const STREAM_FETCH_BYTES: u64 = 64 << 10;
/// Ranges closer than this are fetched with one GET.
const COALESCE_BYTES: u64 = 1 << 20;
/// Parts of one upload sent at the same time: memory holds at most this many parts plus the
/// one being read from the staged file.
pub const PARTS_IN_FLIGHT: usize = 2;
/// Timeout of one HTTP request (a part of 64 MiB at ~3 MB/s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one read request (a listing, a footer, a row group's column chunks): a query
/// against a server that accepts connections and never answers waits about this long.
const READ_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A failed request is retried this many times, with backoff, and never after the retry
/// timeout: [`READ_RETRY_TIMEOUT`] for queries' reads (a query waits seconds, not minutes, for
/// a server that is gone), [`UPLOAD_RETRY_TIMEOUT`] for uploads (long enough that a request
/// that timed out is retried: one stalled part does not fail a whole upload). A server that
/// refuses connections fails either in about a second and a half.
const RETRIES_MAX: usize = 4;
const READ_RETRY_TIMEOUT: Duration = Duration::from_secs(15);
const UPLOAD_RETRY_TIMEOUT: Duration =
    Duration::from_secs(REQUEST_TIMEOUT.as_secs() * (RETRIES_MAX as u64 + 1) + 30);

/// Where and how to reach the object store. Settings left `None` fall back to the usual AWS
/// environment variables (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, …).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    /// Key prefix without leading or trailing `/`; `""` = the bucket's root.
    pub prefix: String,
    /// `http(s)://host:port` of an S3-compatible server; requests are path-style.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow a plain-HTTP endpoint.
    pub allow_http: Option<bool>,
    /// Bytes per part of a multipart upload (S3 wants ≥ 5 MiB for all parts but the last).
    pub part_size: u64,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .field("part_size", &self.part_size)
            .finish()
    }
}

/// The client, the runtime it runs on, and where the archive lives in the bucket.
pub(crate) struct S3Archive {
    /// For listings and reads.
    store: Arc<AmazonS3>,
    /// For uploads: the same server, with the longer retry timeout.
    upload_store: Arc<AmazonS3>,
    bucket: String,
    prefix: Vec<String>,
    part_size: usize,
    io: Io,
}

/// A client of the server `settings` name: each request times out after `timeout`, and is
/// retried for at most `retry_timeout`.
fn client(
    settings: &S3Settings,
    timeout: Duration,
    retry_timeout: Duration,
) -> Result<AmazonS3, Error> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&settings.bucket)
        .with_virtual_hosted_style_request(false)
        .with_client_options(
            ClientOptions::new()
                .with_timeout(timeout)
                .with_connect_timeout(CONNECT_TIMEOUT),
        )
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: RETRIES_MAX,
            retry_timeout,
        });
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &settings.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &settings.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(allow) = settings.allow_http {
        builder = builder.with_allow_http(allow);
    }
    builder.build().map_err(|source| Error::ObjectStore {
        action: "configuring the client of",
        key: format!("s3://{}", settings.bucket),
        source,
    })
}

impl S3Archive {
    pub(crate) fn open(settings: &S3Settings) -> Result<Self, Error> {
        let part_size = usize::try_from(settings.part_size)
            .ok()
            .filter(|&size| size > 0)
            .ok_or(Error::InvalidPartSize(settings.part_size))?;
        Ok(Self {
            store: Arc::new(client(settings, READ_REQUEST_TIMEOUT, READ_RETRY_TIMEOUT)?),
            upload_store: Arc::new(client(settings, REQUEST_TIMEOUT, UPLOAD_RETRY_TIMEOUT)?),
            bucket: settings.bucket.clone(),
            prefix: settings
                .prefix
                .split('/')
                .filter(|part| !part.is_empty())
                .map(str::to_owned)
                .collect(),
            part_size,
            io: Io::new()?,
        })
    }

    /// `<prefix>/<cluster>` (the cluster name is checked by the caller).
    fn cluster_path(&self, cluster: &str) -> ObjectPath {
        ObjectPath::from_iter(self.prefix.iter().map(String::as_str).chain([cluster]))
    }

    /// The key of [`S3Archive::cluster_path`].
    pub(crate) fn cluster_key(&self, cluster: &str) -> String {
        self.cluster_path(cluster).to_string()
    }

    /// `s3://bucket/key`, for messages and reports.
    pub(crate) fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The objects directly under `<prefix>/<cluster>/` (deeper keys are not the archive's).
    pub(crate) fn list(&self, cluster: &str) -> Result<ListResult, Error> {
        let store = self.store.clone();
        let path = self.cluster_path(cluster);
        let key = path.to_string();
        self.io
            .run(async move { store.list_with_delimiter(Some(&path)).await })
            .map_err(|source| Error::ObjectStore {
                action: "listing",
                key: self.url(&key),
                source,
            })
    }

    /// Uploads the staged file `staged` as `<prefix>/<cluster>/<name>`: visible once complete;
    /// aborted on error. Returns the object's URL.
    pub(crate) fn upload(&self, staged: &Path, cluster: &str, name: &str) -> Result<String, Error> {
        let key = self.cluster_path(cluster).join(name);
        let url = self.url(key.as_ref());
        let file = std::fs::File::open(staged).map_err(|source| Error::Io {
            action: "opening the staged file",
            path: staged.to_path_buf(),
            source,
        })?;
        let store = self.upload_store.clone();
        let part_size = self.part_size;
        let staged_path = staged.to_path_buf();
        let upload = async move {
            let upload = store
                .put_multipart(&key)
                .await
                .map_err(UploadError::Store)?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
            let parts = send_parts(&mut writer, file, part_size).await;
            if let Err(error) = parts {
                // The error that stopped the upload is the one to report, not the abort's.
                let _ = writer.abort().await;
                return Err(error);
            }
            writer.finish().await.map_err(UploadError::Store)
        };
        match self.io.run(upload) {
            Ok(_) => Ok(url),
            Err(UploadError::Store(source)) => Err(Error::ObjectStore {
                action: "uploading",
                key: url,
                source,
            }),
            Err(UploadError::Read(source)) => Err(Error::Io {
                action: "reading the staged file",
                path: staged_path,
                source,
            }),
        }
    }

    /// `range` of the object `key`, only if it still has `e_tag`.
    fn fetch(
        &self,
        key: &ObjectPath,
        e_tag: Option<&str>,
        range: Range<u64>,
    ) -> Result<Bytes, ParquetError> {
        let store = self.store.clone();
        let (key, e_tag) = (key.clone(), e_tag.map(str::to_owned));
        self.io
            .run(async move { get_range(&store, &key, e_tag, range).await })
            .map_err(|error| ParquetError::External(Box::new(error)))
    }

    /// `ranges` of the object `key`, close ones coalesced into one GET, several at a time.
    fn fetch_ranges(
        &self,
        key: &ObjectPath,
        e_tag: Option<&str>,
        ranges: Vec<Range<u64>>,
    ) -> Result<Vec<(Range<u64>, Bytes)>, ParquetError> {
        let store = self.store.clone();
        let (key, e_tag) = (key.clone(), e_tag.map(str::to_owned));
        self.io
            .run(async move {
                let fetched = object_store::coalesce_ranges(
                    &ranges,
                    |range| {
                        let (store, key, e_tag) = (store.clone(), key.clone(), e_tag.clone());
                        async move { get_range(&store, &key, e_tag, range).await }
                    },
                    COALESCE_BYTES,
                )
                .await?;
                Ok(ranges.into_iter().zip(fetched).collect())
            })
            .map_err(|error: object_store::Error| ParquetError::External(Box::new(error)))
    }
}

/// Why an upload stopped.
enum UploadError {
    Store(object_store::Error),
    Read(std::io::Error),
}

/// Reads the staged file part by part into `writer`, with at most [`PARTS_IN_FLIGHT`] parts
/// uploading; the last, short part stays buffered for `finish`.
async fn send_parts(
    writer: &mut WriteMultipart,
    mut file: std::fs::File,
    part_size: usize,
) -> Result<(), UploadError> {
    loop {
        writer
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(UploadError::Store)?;
        // A local read of one part: short next to the upload it feeds, so done in place.
        let mut part = Vec::with_capacity(part_size);
        let read = (&mut file)
            .take(part_size as u64)
            .read_to_end(&mut part)
            .map_err(UploadError::Read)?;
        if read == 0 {
            return writer
                .wait_for_capacity(0)
                .await
                .map_err(UploadError::Store);
        }
        writer.put(Bytes::from(part));
    }
}

/// One ranged GET, conditional on the ETag when there is one.
async fn get_range(
    store: &AmazonS3,
    key: &ObjectPath,
    e_tag: Option<String>,
    range: Range<u64>,
) -> Result<Bytes, object_store::Error> {
    let options = GetOptions {
        if_match: e_tag,
        range: Some(GetRange::Bounded(range)),
        ..GetOptions::default()
    };
    store.get_opts(key, options).await?.bytes().await
}

/// The runtime S3 requests run on: one worker, owned by the archive.
struct Io {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Io {
    fn new() -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strata-s3")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Runs `work` on the runtime and waits for it on this (blocking) thread.
    fn run<T: Send + 'static, E: From<Stopped> + Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, E>> + Send + 'static,
    ) -> Result<T, E> {
        let Some(runtime) = &self.runtime else {
            return Err(E::from(Stopped));
        };
        let (done, result) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = done.send(work.await);
        });
        result.recv().unwrap_or(Err(E::from(Stopped)))
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which is forbidden inside another runtime
        // (the server's): let them end in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The runtime is gone (the archive is being dropped).
struct Stopped;

impl From<Stopped> for object_store::Error {
    fn from(_: Stopped) -> Self {
        object_store::Error::Generic {
            store: "S3",
            source: "the S3 client's runtime has stopped".into(),
        }
    }
}

impl From<Stopped> for UploadError {
    fn from(stopped: Stopped) -> Self {
        UploadError::Store(stopped.into())
    }
}

/// Parquet's synchronous reader over one object of known size.
pub(crate) struct ObjectReader {
    s3: Arc<S3Archive>,
    key: ObjectPath,
    size: u64,
    e_tag: Option<String>,
    /// Fetched ranges: `(start, bytes)`.
    chunks: Vec<(u64, Bytes)>,
}

impl ObjectReader {
    /// A reader over the object `key` (as listed) of `size` bytes and the ETag `e_tag`;
    /// nothing is fetched yet.
    pub(crate) fn new(
        s3: Arc<S3Archive>,
        key: &str,
        size: u64,
        e_tag: Option<String>,
    ) -> Result<Self, ParquetError> {
        // Parsed, not built from parts: the key is used exactly as listed, never re-encoded.
        let key =
            ObjectPath::parse(key).map_err(|error| ParquetError::External(Box::new(error)))?;
        Ok(Self {
            s3,
            key,
            size,
            e_tag,
            chunks: Vec::new(),
        })
    }

    /// Fetches `ranges` ahead of the reads that need them.
    pub(crate) fn prefetch(&mut self, ranges: &[Range<u64>]) -> Result<(), ParquetError> {
        let ranges: Vec<Range<u64>> = ranges
            .iter()
            .map(|range| range.start.min(self.size)..range.end.min(self.size))
            .filter(|range| !range.is_empty() && self.cached(range.clone()).is_none())
            .collect();
        if ranges.is_empty() {
            return Ok(());
        }
        let fetched = self
            .s3
            .fetch_ranges(&self.key, self.e_tag.as_deref(), ranges)?;
        self.chunks.extend(
            fetched
                .into_iter()
                .map(|(range, bytes)| (range.start, bytes)),
        );
        Ok(())
    }

    /// `range` from what was fetched, if one chunk holds all of it.
    fn cached(&self, range: Range<u64>) -> Option<Bytes> {
        self.chunks.iter().find_map(|(start, bytes)| {
            let end = start + bytes.len() as u64;
            (*start <= range.start && range.end <= end)
                .then(|| bytes.slice((range.start - start) as usize..(range.end - start) as usize))
        })
    }

    fn bytes(&self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
        if range.end > self.size {
            return Err(ParquetError::EOF(format!(
                "{} bytes at {} past the end of the object ({} bytes)",
                range.end - range.start,
                range.start,
                self.size
            )));
        }
        match self.cached(range.clone()) {
            Some(bytes) => Ok(bytes),
            None => self.s3.fetch(&self.key, self.e_tag.as_deref(), range),
        }
    }
}

impl Length for ObjectReader {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for ObjectReader {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        // The rest of the chunk holding `start`, else a window after it.
        let held = self.chunks.iter().find_map(|(chunk, bytes)| {
            let end = chunk + bytes.len() as u64;
            (*chunk <= start && start < end).then(|| bytes.slice((start - chunk) as usize..))
        });
        let bytes = match held {
            Some(bytes) => bytes,
            None => self.bytes(start..start.saturating_add(STREAM_FETCH_BYTES).min(self.size))?,
        };
        Ok(bytes.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.bytes(start..start.saturating_add(length as u64))
    }
}
