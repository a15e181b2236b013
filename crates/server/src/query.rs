//! `GET /api/query` (and POST): cc-metric-store's JSON query API (COMPAT.md §1.5, §2, §9.1).

use crate::App;
use crate::error::{ApiError, decode_json, json_response};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use std::sync::Arc;
use strata_store::{Query, ReadOptions, ResamplerKind, SeriesResult};

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

pub async fn query(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let request: QueryRequest = decode_json(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid query request: {e}")))?;
    let generated = generated_queries(&app, &request);
    let queries: Vec<&ApiQuery> = request
        .queries
        .iter()
        .flatten()
        .chain(generated.iter())
        .collect();
    let series: usize = queries.iter().map(|q| expected_entries(q)).sum();
    let series_max = app.config.query_series_max;
    if series > series_max {
        return Err(ApiError::BadRequest(format!(
            "query asks for {series} series; the limit is {series_max}"
        )));
    }
    let mut options = ReadOptions {
        from_s: request.from,
        to_s: request.to,
        with_stats: request.with_stats,
        with_data: request.with_data,
        with_padding: request.with_padding,
        resampler: app.config.resampler,
    };
    if let Some(kind) = request.resampler {
        options.resampler.kind = kind.into();
    }
    let results: Vec<Vec<SeriesResult>> = queries
        .iter()
        .map(|q| {
            let query = Query {
                host: &q.host,
                metric: &q.metric,
                kind: q.kind.as_deref(),
                kind_ids: q.type_ids.as_deref().unwrap_or_default(),
                subkind: q.subtype.as_deref(),
                subkind_ids: q.subtype_ids.as_deref().unwrap_or_default(),
                aggregate: q.aggreg,
                resolution_s: q.resolution,
                scale_by: q.scale_by,
                resampler: q.resampler.map(Into::into),
            };
            app.store.query(&request.cluster, &query, &options)
        })
        .collect();
    let response = QueryResponse {
        // `omitempty` in cc-metric-store: only present when queries were generated (§1.5).
        queries: (!generated.is_empty()).then_some(&generated),
        results: &results,
    };
    Ok(json_response(StatusCode::OK, &response))
}

/// The queries `for-all-nodes` stands for: every host of the cluster × every listed metric.
fn generated_queries(app: &App, request: &QueryRequest) -> Vec<ApiQuery> {
    let Some(metrics) = &request.for_all_nodes else {
        return Vec::new();
    };
    let mut generated = Vec::new();
    for host in app.store.hosts(&request.cluster) {
        for metric in metrics {
            generated.push(ApiQuery {
                metric: metric.clone(),
                host: host.clone(),
                ..ApiQuery::default()
            });
        }
    }
    generated
}

/// Result entries a query will produce, to enforce the series limit before any work.
fn expected_entries(query: &ApiQuery) -> usize {
    let ids = query.type_ids.as_ref().map_or(0, Vec::len);
    let subids = query.subtype_ids.as_ref().map_or(1, Vec::len);
    if query.aggreg || query.kind.is_none() {
        1
    } else if query.subtype.is_some() {
        ids * subids
    } else {
        ids
    }
}

struct QueryResponse<'a> {
    queries: Option<&'a Vec<ApiQuery>>,
    results: &'a [Vec<SeriesResult>],
}

impl Serialize for QueryResponse<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(queries) = self.queries {
            map.serialize_entry("queries", queries)?;
        }
        let results: Vec<Vec<Entry<'_>>> = self
            .results
            .iter()
            .map(|entries| entries.iter().map(Entry).collect())
            .collect();
        map.serialize_entry("results", &results)?;
        map.end()
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
        let results = vec![vec![ok, empty, error]];
        let text = serde_json::to_string(&QueryResponse {
            queries: None,
            results: &results,
        })
        .unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"results":[[{"data":[0.52,null,0.7],"from":100,"to":280,"resolution":60,"avg":0.61,"min":0.52,"max":0.7},"#,
                r#"{"from":5,"to":5,"resolution":60,"avg":null,"min":null,"max":null},"#,
                r#"{"error":"metric or host not found","from":0,"to":0,"resolution":0,"avg":null,"min":null,"max":null}]]}"#
            )
        );
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
