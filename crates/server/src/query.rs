//! `GET /api/query` (and POST): cc-metric-store's JSON query API (COMPAT.md §1.5, §2, §9.1).

use crate::error::{ApiError, decode_json};
use crate::{App, ServerConfig, archiving};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use std::ops::ControlFlow;
use std::sync::Arc;
use strata_archive::Archive;
use strata_store::{Query, ReadOptions, ResamplerKind, SeriesResult, Store};
use tokio::sync::mpsc;

fn yes() -> bool {
    true
}

/// cc-metric-store's `APIQueryRequest`. Unknown keys are ignored, as Go's decoder does.
#[derive(Debug, Deserialize)]
pub struct QueryRequest {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    queries: Option<Vec<ApiQuery>>,
    #[serde(default, rename = "for-all-nodes")]
    for_all_nodes: Option<Vec<String>>,
    #[serde(default)]
    from: i64,
    #[serde(default)]
    to: i64,
    #[serde(default = "yes", rename = "with-stats")]
    with_stats: bool,
    #[serde(default = "yes", rename = "with-data")]
    with_data: bool,
    #[serde(default = "yes", rename = "with-padding")]
    with_padding: bool,
    /// Strata: the resampler for every query of the request (decision 8).
    #[serde(default)]
    resampler: Option<Resampler>,
}

/// cc-metric-store's `APIQuery`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ApiQuery {
    /// Missing = empty, as Go decodes it (the entry then reports the unknown metric or host).
    #[serde(default)]
    metric: String,
    #[serde(default)]
    host: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, rename = "type-ids", skip_serializing_if = "Option::is_none")]
    type_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subtype: Option<String>,
    #[serde(
        default,
        rename = "subtype-ids",
        skip_serializing_if = "Option::is_none"
    )]
    subtype_ids: Option<Vec<String>>,
    #[serde(default)]
    resolution: i64,
    #[serde(default)]
    aggreg: bool,
    #[serde(default, rename = "scale-by", skip_serializing_if = "Option::is_none")]
    scale_by: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resampler: Option<Resampler>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Resampler {
    Lttb,
    Average,
}

impl From<Resampler> for ResamplerKind {
    fn from(resampler: Resampler) -> Self {
        match resampler {
            Resampler::Lttb => Self::Lttb,
            Resampler::Average => Self::Average,
        }
    }
}

/// Response bytes serialized per turn on a blocking thread before they are sent: the memory
/// a query response holds at a time, whatever its size. Each turn costs two thread wake-ups;
/// at 64 KiB a 64-host × 24 h answer (450 KB) took seven turns and 2.8–3.0 ms of server CPU,
/// at 256 KiB two turns and 2.4–2.6 ms (`cargo bench -p strata --bench http_query`).
const RESPONSE_CHUNK_BYTES: usize = 256 * 1024;

/// Chunks waiting between the computation and a client that reads slowly.
const RESPONSE_CHUNKS_QUEUED: usize = 2;

/// A request body up to this size is parsed on the async worker (tens of microseconds), to
/// find out whether the request is cheap enough to answer there ([`INLINE_QUERIES_MAX`],
/// [`INLINE_SAMPLES_MAX`]).
const INLINE_BODY_BYTES_MAX: usize = 16 * 1024;

/// A request whose queries read at most this many samples in all, none from the archive, is
/// answered on the async worker: at ~20 ns per sample read and written as JSON that is at
/// most ~0.3 ms, less than a turn on the blocking pool costs in thread wake-ups on a
/// virtualised host (1 host × 24 h: 60 µs inline against 80–160 µs with a turn).
const INLINE_SAMPLES_MAX: usize = 16 * 1024;

/// Answers a query request. Everything is counted before anything is built (entries against
/// `series-per-query`, points against `points-per-query`, arithmetically); a cheap request
/// ([`INLINE_SAMPLES_MAX`]) is then answered at once, any other is computed on blocking
/// threads a chunk at a time and streamed, so that its size does not decide the memory it
/// takes.
pub async fn query(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let deadline = app.deadline();
    let pending = if body.len() > INLINE_BODY_BYTES_MAX {
        Pending::Body(body)
    } else {
        match parse(&body)? {
            request if request.is_short() => Pending::Plan(plan(&app.store, &app.config, request)?),
            request => Pending::Request(request),
        }
    };
    let (plan, first, next) = match pending {
        Pending::Plan(plan) if cheap(&app, &plan) => {
            let (first, next) = fill(&app.store, app.archive(), &plan, Cursor::default());
            (plan, first, next)
        }
        pending => {
            let app = app.clone();
            app.clone()
                .compute(app.turn_deadline(), move || {
                    let plan = match pending {
                        Pending::Plan(plan) => plan,
                        Pending::Request(request) => plan(&app.store, &app.config, request)?,
                        Pending::Body(body) => plan(&app.store, &app.config, parse(&body)?)?,
                    };
                    let (first, next) = fill(&app.store, app.archive(), &plan, Cursor::default());
                    Ok::<_, ApiError>((plan, first, next))
                })
                .await??
        }
    };
    let headers = [(header::CONTENT_TYPE, "application/json")];
    let Some(next) = next else {
        // It fit in one chunk: an ordinary response with a length.
        return Ok((StatusCode::OK, headers, first).into_response());
    };
    let (sender, receiver) = mpsc::channel(RESPONSE_CHUNKS_QUEUED);
    let first = Chunk {
        bytes: first.into(),
        last: false,
    };
    tokio::spawn(respond(app, Arc::new(plan), sender, deadline, first, next));
    let body = Body::new(ChunkBody {
        receiver,
        complete: false,
    });
    Ok((StatusCode::OK, headers, body).into_response())
}

/// How far a request got before it is known where it is answered.
enum Pending {
    /// Planned on the async worker: a small body with few queries.
    Plan(Plan),
    /// Parsed but not planned: `for-all-nodes` or many queries, planned on a blocking thread.
    Request(QueryRequest),
    /// Not parsed: too large to parse on the async worker.
    Body(Bytes),
}

/// Queries a request planned on the async worker may name; `for-all-nodes`, which names one
/// per host of the cluster (up to `series-per-query`), is always planned off it.
const INLINE_QUERIES_MAX: usize = 64;

impl QueryRequest {
    /// Few enough queries to plan on the async worker ([`INLINE_QUERIES_MAX`]).
    fn is_short(&self) -> bool {
        self.for_all_nodes.as_ref().is_none_or(Vec::is_empty)
            && self.queries.as_ref().map_or(0, Vec::len) <= INLINE_QUERIES_MAX
    }
}

/// The request reads at most [`INLINE_SAMPLES_MAX`] samples, all from memory. (Memory could
/// lose the start of a range to retention between this check and the answer; the answer then
/// reads the archive as any other would, once.)
fn cheap(app: &App, plan: &Plan) -> bool {
    let mut samples = 0usize;
    for query in &plan.queries {
        let query = query.read();
        let from_memory = app.archive().is_none()
            || app
                .store
                .memory_start(&plan.cluster, query.host, query.metric)
                .is_some_and(|start| start <= plan.options.from_s);
        samples =
            samples.saturating_add(app.store.read_bound(&plan.cluster, &query, &plan.options));
        if !from_memory || samples > INLINE_SAMPLES_MAX {
            return false;
        }
    }
    true
}

/// A request checked against the limits, with `for-all-nodes` expanded.
struct Plan {
    cluster: String,
    /// The request's queries, then the generated ones.
    queries: Vec<ApiQuery>,
    /// How many of `queries`, at the end, `for-all-nodes` generated.
    generated: usize,
    options: ReadOptions,
}

fn parse(body: &[u8]) -> Result<QueryRequest, ApiError> {
    decode_json(body).map_err(|e| ApiError::BadRequest(format!("invalid query request: {e}")))
}

/// Answers a query request body from `store` alone (no archive), whole and unstreamed: the
/// bytes [`query`] sends, or its error. For the fuzz target `query` (`fuzz/`), which reaches
/// the parser, the planner and the store's read path through it.
pub fn answer(store: &Store, config: &ServerConfig, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let plan = plan(store, config, parse(body)?)?;
    let (mut out, mut next) = fill(store, None, &plan, Cursor::default());
    while let Some(at) = next {
        let (more, after) = fill(store, None, &plan, at);
        out.extend_from_slice(&more);
        next = after;
    }
    Ok(out)
}

fn plan(store: &Store, config: &ServerConfig, request: QueryRequest) -> Result<Plan, ApiError> {
    let mut options = ReadOptions {
        from_s: request.from,
        to_s: request.to,
        with_stats: request.with_stats,
        with_data: request.with_data,
        with_padding: request.with_padding,
        resampler: config.resampler,
    };
    if let Some(kind) = request.resampler {
        options.resampler.kind = kind.into();
    }
    let mut queries = request.queries.unwrap_or_default();
    let metrics = request.for_all_nodes.unwrap_or_default();
    let hosts = if metrics.is_empty() {
        Vec::new()
    } else {
        store.hosts(&request.cluster)
    };
    // `for-all-nodes` stands for every host × every listed metric, one entry each.
    let series = queries.iter().map(expected_entries).fold(
        hosts.len().saturating_mul(metrics.len()),
        usize::saturating_add,
    );
    let series_max = config.query_series_max;
    if series > series_max {
        return Err(ApiError::BadRequest(format!(
            "query asks for {series} series; the limit is {series_max} (limits.series-per-query)"
        )));
    }
    let points_of = |query: &ApiQuery| {
        expected_entries(query).saturating_mul(store.points_bound(&query.read(), &options))
    };
    let generated_points = metrics
        .iter()
        .map(|metric| points_of(&ApiQuery::for_host(metric, "")))
        .fold(0, usize::saturating_add)
        .saturating_mul(hosts.len());
    let points = queries
        .iter()
        .map(points_of)
        .fold(generated_points, usize::saturating_add);
    let points_max = config.query_points_max;
    if points > points_max {
        return Err(ApiError::BadRequest(format!(
            "query may return up to {points} points; the limit is {points_max} \
             (limits.points-per-query): narrow the time range, ask for a coarser resolution \
             or fewer series, or turn off with-padding"
        )));
    }
    let explicit = queries.len();
    for host in &hosts {
        for metric in &metrics {
            queries.push(ApiQuery::for_host(metric, host));
        }
    }
    Ok(Plan {
        cluster: request.cluster,
        generated: queries.len() - explicit,
        queries,
        options,
    })
}

/// Where the next chunk of a response starts.
#[derive(Default)]
struct Cursor {
    query: usize,
    entry: usize,
    /// The current query's data merged with the archive ([`archiving::with_archive`]), kept
    /// for its next chunks so that the archive is read once per query, not once per chunk.
    merged: Option<Arc<Store>>,
}

/// Sends `first`, then computes and sends the rest of the response a chunk at a time from
/// `next`. A failure part-way (no turn before the deadline, a client that stops reading)
/// ends the stream without its last chunk, which the client sees as a broken response
/// rather than a short one.
async fn respond(
    app: Arc<App>,
    plan: Arc<Plan>,
    sender: mpsc::Sender<Chunk>,
    deadline: tokio::time::Instant,
    first: Chunk,
    next: Cursor,
) {
    let mut chunk = first;
    let mut cursor = Some(next);
    loop {
        if !matches!(
            tokio::time::timeout_at(deadline, sender.send(chunk)).await,
            Ok(Ok(()))
        ) {
            return;
        }
        let Some(at) = cursor else {
            return;
        };
        let step = {
            let (app, plan) = (app.clone(), plan.clone());
            app.clone()
                .compute(deadline, move || fill(&app.store, app.archive(), &plan, at))
                .await
        };
        let Ok((bytes, next)) = step else {
            return;
        };
        chunk = Chunk {
            bytes: bytes.into(),
            last: next.is_none(),
        };
        cursor = next;
    }
}

/// Serializes the response from `at` on until about [`RESPONSE_CHUNK_BYTES`] are ready;
/// returns them and where the next chunk starts (`None`: this was the last one).
fn fill(
    store: &Store,
    archive: Option<&Archive>,
    plan: &Plan,
    at: Cursor,
) -> (Vec<u8>, Option<Cursor>) {
    let mut out = Vec::with_capacity(RESPONSE_CHUNK_BYTES * 2);
    let mut cursor = at;
    if cursor.query == 0 && cursor.entry == 0 {
        out.extend_from_slice(b"{");
        // `omitempty` in cc-metric-store: only present when queries were generated (§1.5).
        if plan.generated > 0 {
            let generated = plan.queries.get(plan.queries.len() - plan.generated..);
            out.extend_from_slice(b"\"queries\":");
            write_json(&mut out, &generated.unwrap_or_default());
            out.extend_from_slice(b",");
        }
        out.extend_from_slice(b"\"results\":[");
    }
    while let Some(query) = plan.queries.get(cursor.query) {
        if cursor.entry == 0 {
            if cursor.query > 0 {
                out.push(b',');
            }
            out.push(b'[');
        }
        let mut entry = cursor.entry;
        // A range older than memory reads the archive too.
        let merged = match cursor.merged.take() {
            Some(merged) => Some(merged),
            None if cursor.entry == 0 => archive.and_then(|archive| {
                let range = (plan.options.from_s, plan.options.to_s);
                archiving::with_archive(
                    store,
                    archive,
                    &plan.cluster,
                    &query.host,
                    &query.metric,
                    range,
                )
                .map(Arc::new)
            }),
            None => None,
        };
        let store = merged.as_deref().unwrap_or(store);
        let stopped = store.query_each(
            &plan.cluster,
            &query.read(),
            &plan.options,
            cursor.entry,
            |result| {
                if entry > 0 {
                    out.push(b',');
                }
                entry += 1;
                write_json(&mut out, &Entry(&result));
                if out.len() >= RESPONSE_CHUNK_BYTES {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        if let Some(entry) = stopped {
            cursor.entry = entry;
            cursor.merged = merged;
            return (out, Some(cursor));
        }
        out.push(b']');
        cursor = Cursor {
            query: cursor.query + 1,
            ..Cursor::default()
        };
        if out.len() >= RESPONSE_CHUNK_BYTES {
            return (out, Some(cursor));
        }
    }
    // cc-metric-store's trailing newline.
    out.extend_from_slice(b"]}\n");
    (out, None)
}

fn write_json(out: &mut Vec<u8>, value: &impl Serialize) {
    // NOTE: serializing these types into memory cannot fail.
    let _ = serde_json::to_writer(out, value);
}

/// A piece of a streamed response.
struct Chunk {
    bytes: Bytes,
    last: bool,
}

/// A response body fed by [`respond`]: ends cleanly after the last chunk, with an error (the
/// connection is closed mid-response) if the sender gave up before it.
struct ChunkBody {
    receiver: mpsc::Receiver<Chunk>,
    complete: bool,
}

impl http_body::Body for ChunkBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.complete {
            return std::task::Poll::Ready(None);
        }
        self.receiver.poll_recv(cx).map(|chunk| match chunk {
            Some(chunk) => {
                self.complete = chunk.last;
                Some(Ok(http_body::Frame::data(chunk.bytes)))
            }
            None => Some(Err(std::io::Error::other(
                "the query response could not be completed within the request timeout",
            ))),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.complete
    }
}

impl ApiQuery {
    /// A query of `metric` on the host level of `host`, as `for-all-nodes` generates them.
    fn for_host(metric: &str, host: &str) -> Self {
        Self {
            metric: metric.to_owned(),
            host: host.to_owned(),
            ..Self::default()
        }
    }

    fn read(&self) -> Query<'_> {
        Query {
            host: &self.host,
            metric: &self.metric,
            kind: self.kind.as_deref(),
            kind_ids: self.type_ids.as_deref().unwrap_or_default(),
            subkind: self.subtype.as_deref(),
            subkind_ids: self.subtype_ids.as_deref().unwrap_or_default(),
            aggregate: self.aggreg,
            resolution_s: self.resolution,
            scale_by: self.scale_by,
            resampler: self.resampler.map(Into::into),
        }
    }
}

/// Result entries a query will produce, to enforce the series limit before any work.
fn expected_entries(query: &ApiQuery) -> usize {
    let ids = query.type_ids.as_ref().map_or(0, Vec::len);
    let subids = query.subtype_ids.as_ref().map_or(1, Vec::len);
    if query.aggreg || query.kind.is_none() {
        1
    } else if query.subtype.is_some() {
        ids.saturating_mul(subids)
    } else {
        ids
    }
}

/// One result entry (`APIMetricData`): NaN as null, `data` omitted when empty or not wanted,
/// `error` only on failure (with null statistics, decision 7).
struct Entry<'a>(&'a SeriesResult);

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self.0 {
            Ok(series) => {
                if let Some(data) = series.data.as_deref().filter(|d| !d.is_empty()) {
                    map.serialize_entry("data", &Values(data))?;
                }
                map.serialize_entry("from", &series.from_s)?;
                map.serialize_entry("to", &series.to_s)?;
                map.serialize_entry("resolution", &series.resolution_s)?;
                map.serialize_entry("avg", &Value(series.stats.avg))?;
                map.serialize_entry("min", &Value(series.stats.min))?;
                map.serialize_entry("max", &Value(series.stats.max))?;
            }
            Err(error) => {
                map.serialize_entry("error", &error.to_string())?;
                map.serialize_entry("from", &0)?;
                map.serialize_entry("to", &0)?;
                map.serialize_entry("resolution", &0)?;
                map.serialize_entry("avg", &Value(f32::NAN))?;
                map.serialize_entry("min", &Value(f32::NAN))?;
                map.serialize_entry("max", &Value(f32::NAN))?;
            }
        }
        map.end()
    }
}

/// A float32 as the shortest decimal that reads back as the same float32 (decision 9);
/// NaN and infinities as null.
struct Value(f32);

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            serializer.serialize_f32(self.0)
        } else {
            serializer.serialize_none()
        }
    }
}

struct Values<'a>(&'a [f32]);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for &value in self.0 {
            seq.serialize_element(&Value(value))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_store::{QueryError, SeriesData, Stats};

    #[test]
    fn request_defaults_follow_cc_metric_store() {
        let request: QueryRequest = serde_json::from_str(
            r#"{"cluster":"c","queries":null,"for-all-nodes":null,"from":1,"to":2,"unknown":5}"#,
        )
        .unwrap();
        assert!(request.with_stats && request.with_data && request.with_padding);
        assert!(request.queries.is_none() && request.for_all_nodes.is_none());
    }

    #[test]
    fn entries_serialize_like_cc_metric_store() {
        let ok: SeriesResult = Ok(SeriesData {
            data: Some(vec![0.52, f32::NAN, 0.7]),
            from_s: 100,
            to_s: 280,
            resolution_s: 60,
            stats: Stats {
                avg: 0.61,
                min: 0.52,
                max: 0.7,
            },
        });
        let empty: SeriesResult = Ok(SeriesData {
            data: Some(vec![]),
            from_s: 5,
            to_s: 5,
            resolution_s: 60,
            stats: Stats {
                avg: f32::NAN,
                min: f32::NAN,
                max: f32::NAN,
            },
        });
        let error: SeriesResult = Err(QueryError::NotFound);
        let text: Vec<String> = [ok, empty, error]
            .iter()
            .map(|result| serde_json::to_string(&Entry(result)).unwrap())
            .collect();
        assert_eq!(
            text.join(","),
            concat!(
                r#"{"data":[0.52,null,0.7],"from":100,"to":280,"resolution":60,"avg":0.61,"min":0.52,"max":0.7},"#,
                r#"{"from":5,"to":5,"resolution":60,"avg":null,"min":null,"max":null},"#,
                r#"{"error":"metric or host not found","from":0,"to":0,"resolution":0,"avg":null,"min":null,"max":null}"#
            )
        );
    }

    #[test]
    fn a_response_streamed_in_chunks_is_the_whole_response() {
        // Chunks end inside a query (many type-ids) and between queries; joined, they must
        // be exactly the JSON of every entry in order.
        let store = Store::new(strata_store::StoreConfig::auto(60));
        let mut batch = strata_store::WriteBatch::new();
        let ids: Vec<String> = (0..20).map(|id| id.to_string()).collect();
        for id in &ids {
            let level = [
                strata_store::LevelName::new("hwthread", id),
                Default::default(),
            ];
            for step in 0..4000 {
                batch.push("c", "h", level, "m", 60 * step, step as f32 / 7.0);
            }
        }
        store.write(&batch, 60 * 4000);
        let by_thread = ApiQuery {
            kind: Some("hwthread".into()),
            type_ids: Some(ids),
            ..ApiQuery::for_host("m", "h")
        };
        let plan = Plan {
            cluster: "c".into(),
            queries: vec![by_thread.clone(), ApiQuery::for_host("m", "h"), by_thread],
            generated: 1,
            options: ReadOptions {
                from_s: 0,
                to_s: 60 * 4000,
                with_stats: true,
                with_data: true,
                with_padding: true,
                resampler: Default::default(),
            },
        };
        let (mut text, mut cursor, mut chunks) = (Vec::new(), Some(Cursor::default()), 0);
        while let Some(at) = cursor {
            let (bytes, next) = fill(&store, None, &plan, at);
            text.extend(bytes);
            cursor = next;
            chunks += 1;
        }
        assert!(chunks >= 4, "{chunks} chunks");
        let results: Vec<Vec<String>> = plan
            .queries
            .iter()
            .map(|q| {
                let entries = store.query("c", &q.read(), &plan.options);
                entries
                    .iter()
                    .map(|e| serde_json::to_string(&Entry(e)).unwrap())
                    .collect()
            })
            .collect();
        let results: Vec<String> = results
            .iter()
            .map(|r| format!("[{}]", r.join(",")))
            .collect();
        let expected = format!(
            "{{\"queries\":[{}],\"results\":[{}]}}\n",
            serde_json::to_string(&plan.queries[2]).unwrap(),
            results.join(",")
        );
        assert_eq!(String::from_utf8(text).unwrap(), expected);
    }

    #[test]
    fn only_few_explicit_queries_are_planned_on_the_async_worker() {
        // `for-all-nodes` expands to a query per host of the cluster (up to
        // series-per-query): never planned on an async worker, whatever the body's size.
        let short = parse(br#"{"cluster":"c","queries":[{"metric":"m","host":"h"}]}"#).unwrap();
        assert!(short.is_short());
        let all_nodes = parse(br#"{"cluster":"c","for-all-nodes":["m"]}"#).unwrap();
        assert!(!all_nodes.is_short());
        let queries: Vec<String> = (0..=INLINE_QUERIES_MAX)
            .map(|i| format!(r#"{{"metric":"m","host":"h{i}"}}"#))
            .collect();
        let many = format!(r#"{{"cluster":"c","queries":[{}]}}"#, queries.join(","));
        assert!(many.len() <= INLINE_BODY_BYTES_MAX);
        assert!(!parse(many.as_bytes()).unwrap().is_short());
    }

    #[test]
    fn echoed_queries_omit_empty_optional_keys() {
        let query = ApiQuery {
            metric: "m".into(),
            host: "h".into(),
            ..ApiQuery::default()
        };
        assert_eq!(
            serde_json::to_string(&query).unwrap(),
            r#"{"metric":"m","host":"h","resolution":0,"aggreg":false}"#
        );
    }
}
