//! `POST /api/free`, `GET /api/debug` and `GET /api/healthcheck` (COMPAT.md §1.6–1.8).

use crate::App;
use crate::durability::DurabilityError;
use crate::error::{ApiError, decode_json, json_response};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::sync::Arc;
use strata_store::{DebugLevel, HostHealth};
use strata_wal::Free;

/// Most distinct selectors in one `/api/free` request (a cluster has a few thousand hosts; each
/// selector is a walk of its subtree under the host lock).
const FREE_SELECTORS_MAX: usize = 10_000;

#[derive(Debug, Deserialize)]
pub struct FreeParams {
    to: Option<String>,
}

/// Frees, for each selector of the JSON body, every buffer that ended before `to`.
pub async fn free(
    State(app): State<Arc<App>>,
    Query(params): Query<FreeParams>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let to = params
        .to
        .ok_or_else(|| ApiError::BadRequest("'to' is a required query parameter".to_owned()))?;
    let to: i64 = to
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("'to' is not an integer: {e}")))?;
    let mut selectors: Vec<Vec<String>> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid selector list: {e}")))?;
    selectors.sort_unstable();
    selectors.dedup();
    if selectors.len() > FREE_SELECTORS_MAX {
        return Err(ApiError::BadRequest(format!(
            "{} distinct selectors; at most {FREE_SELECTORS_MAX} per request",
            selectors.len()
        )));
    }
    let count = selectors.len();
    // Logged before it is applied, so a crash cannot bring freed data back; a task of its
    // own, so a client that hangs up cannot leave a logged free unapplied.
    let free = Free {
        selectors,
        before_s: to,
    };
    let task = {
        let app = app.clone();
        tokio::spawn(async move { app.durability.free(&app.store, free).await })
    };
    let freed = task
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|e| match e {
            // The log's record bound (8 MiB), not the log's health: refused alone.
            DurabilityError::Wal(strata_wal::Error::RecordTooLarge(bytes)) => {
                ApiError::BadRequest(format!(
                    "the selectors take {bytes} bytes in the log; at most {} per request",
                    strata_wal::format::RECORD_BYTES_MAX
                ))
            }
            e => ApiError::Unavailable(e.to_string()),
        })?;
    tracing::info!(selectors = count, to, freed, "freed buffers on request");
    Ok((StatusCode::OK, format!("buffers freed: {freed}\n")).into_response())
}

/// Most hosts one `/api/debug` dump covers: the dump is built whole (~60 B per buffer), and
/// 1 M hosts made 64 MB answers that took ~430 MB each while built (found in review).
pub const DEBUG_HOSTS_MAX: usize = 10_000;

#[derive(Debug, Deserialize)]
pub struct DebugParams {
    selector: Option<String>,
}

/// Dumps the tree below a `cluster:host:…` selector as JSON (decision 11: valid JSON, with
/// cc-metric-store's fields). Without a selector that is the whole store: a blocking thread's
/// work.
pub async fn debug(
    State(app): State<Arc<App>>,
    Query(params): Query<DebugParams>,
) -> Result<Response, ApiError> {
    let store = app.store.clone();
    app.compute(app.turn_deadline(), move || {
        let selector = params.selector.unwrap_or_default();
        let path: Vec<&str> = selector.split(':').filter(|s| !s.is_empty()).collect();
        if path.len() < 2 {
            let hosts = store.host_count(path.first().copied());
            if hosts > DEBUG_HOSTS_MAX {
                return Err(ApiError::BadRequest(format!(
                    "the dump would cover {hosts} hosts; at most {DEBUG_HOSTS_MAX} without a \
                     host in the selector (?selector=cluster:host)"
                )));
            }
        }
        let tree = store
            .debug(&path)
            .ok_or_else(|| ApiError::BadRequest(format!("not found: {path:?}")))?;
        Ok(json_response(
            StatusCode::OK,
            &DebugDump { data: Tree(&tree) },
        ))
    })
    .await?
}

/// `GET /api/remote-write`: each forwarding endpoint's state.
pub async fn remote_write(State(app): State<Arc<App>>) -> Response {
    let endpoints: Vec<serde_json::Value> = app
        .forwarding_status()
        .into_iter()
        .map(|status| {
            serde_json::json!({
                "name": status.name,
                "url": status.url,
                "cursor": {"segment": status.cursor.segment, "offset": status.cursor.offset},
                "lag_bytes": status.lag_bytes,
                "lag_seconds": status.lag_seconds,
                "shards": status.shards,
                "desired_shards": status.desired_shards,
                "last_error": status.last_error,
            })
        })
        .collect();
    json_response(StatusCode::OK, &endpoints)
}

#[derive(Serialize)]
struct DebugDump<'a> {
    data: Tree<'a>,
}

/// A level as `{"metric":[{"start":…,"len":…,"end":…,"sealed_blocks":…,"encoded_bytes":…,
/// "tail_bytes":…}], "child":{…}}`: cc-metric-store's keys, then how each buffer is held.
struct Tree<'a>(&'a DebugLevel);

impl Serialize for Tree<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Buffer {
            start: i64,
            len: usize,
            end: i64,
            sealed_blocks: usize,
            encoded_bytes: usize,
            tail_bytes: usize,
        }
        let mut map = serializer.serialize_map(None)?;
        for (metric, buffers) in &self.0.metrics {
            let buffers: Vec<Buffer> = buffers
                .iter()
                .map(|b| Buffer {
                    start: b.start,
                    len: b.len,
                    end: b.end,
                    sealed_blocks: b.sealed_blocks,
                    encoded_bytes: b.encoded_bytes,
                    tail_bytes: b.tail_bytes,
                })
                .collect();
            map.serialize_entry(metric, &buffers)?;
        }
        for (name, child) in &self.0.children {
            map.serialize_entry(name, &Tree(child))?;
        }
        map.end()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthRequest {
    cluster: String,
    nodes: Vec<String>,
    #[serde(rename = "metric-names")]
    metric_names: Vec<String>,
}

/// Most node × metric checks in one `/api/healthcheck` request, after duplicates are
/// removed: 20,000 nodes × 50 metrics, a fraction of a second of work. A 439 KB body asking
/// for millions used to hold a thread for 41 s.
pub const HEALTH_CHECKS_MAX: usize = 1_000_000;

/// Most distinct nodes in one `/api/healthcheck` request, whatever the metric list: each one
/// is an entry of the answer (found in review: 5 M nodes with no metric names passed the check
/// count and built a 244 MB answer). A cluster's default host limit.
pub const HEALTH_NODES_MAX: usize = 100_000;

/// Health of each requested node for the expected metrics (v1.5 form), on a blocking thread.
pub async fn healthcheck(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let store = app.store.clone();
    app.compute(app.turn_deadline(), move || {
        let mut request: HealthRequest = decode_json(&body)
            .map_err(|e| ApiError::BadRequest(format!("parsing request body failed: {e}")))?;
        // Each node is answered once anyway (the answer is keyed by node); a metric named
        // twice is checked once, in the order of its first mention.
        request.nodes.sort_unstable();
        request.nodes.dedup();
        let mut seen = std::collections::HashSet::new();
        request
            .metric_names
            .retain(|name| seen.insert(name.clone()));
        if request.nodes.len() > HEALTH_NODES_MAX {
            return Err(ApiError::BadRequest(format!(
                "{} nodes; at most {HEALTH_NODES_MAX} per request",
                request.nodes.len()
            )));
        }
        let checks = request
            .nodes
            .len()
            .saturating_mul(request.metric_names.len());
        if checks > HEALTH_CHECKS_MAX {
            return Err(ApiError::BadRequest(format!(
                "{} nodes × {} metric names are {checks} checks; at most {HEALTH_CHECKS_MAX} \
                 per request",
                request.nodes.len(),
                request.metric_names.len()
            )));
        }
        let now_s = crate::now_s();
        let mut response = BTreeMap::new();
        for node in &request.nodes {
            let health = store.health(&request.cluster, node, &request.metric_names, now_s);
            response.insert(node.as_str(), NodeHealth::from(&health));
        }
        Ok(json_response(StatusCode::OK, &response))
    })
    .await?
}

/// cc-metric-store's Go field names, and the metric lists as a JSON *string*.
#[derive(Serialize)]
struct NodeHealth {
    #[serde(rename = "State")]
    state: String,
    #[serde(rename = "HealthMetrics")]
    health_metrics: String,
}

impl From<&HostHealth> for NodeHealth {
    fn from(health: &HostHealth) -> Self {
        #[derive(Serialize)]
        struct Lists<'a> {
            degraded: &'a [String],
            missing: &'a [String],
        }
        let health_metrics = health
            .metrics
            .as_ref()
            .map(|m| {
                serde_json::to_string(&Lists {
                    degraded: &m.degraded,
                    missing: &m.missing,
                })
                .unwrap_or_default()
            })
            .unwrap_or_default();
        Self {
            state: health.state.to_string(),
            health_metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_store::{DebugBuffer, HealthState, MetricHealth};

    #[test]
    fn health_metrics_is_a_json_string_with_sorted_keys() {
        let health = HostHealth {
            state: HealthState::Partial,
            metrics: Some(MetricHealth {
                degraded: vec!["mem_used".into()],
                missing: vec![],
            }),
        };
        let text = serde_json::to_string(&NodeHealth::from(&health)).unwrap();
        assert_eq!(
            text,
            r#"{"State":"partial","HealthMetrics":"{\"degraded\":[\"mem_used\"],\"missing\":[]}"}"#
        );
        let absent = HostHealth {
            state: HealthState::Failed,
            metrics: None,
        };
        let text = serde_json::to_string(&NodeHealth::from(&absent)).unwrap();
        assert_eq!(text, r#"{"State":"failed","HealthMetrics":""}"#);
    }

    #[test]
    fn debug_dump_is_valid_json() {
        let tree = DebugLevel {
            metrics: vec![(
                "load".into(),
                vec![DebugBuffer {
                    start: 95,
                    len: 130,
                    end: 1400,
                    sealed_blocks: 1,
                    encoded_bytes: 42,
                    tail_bytes: 8,
                }],
            )],
            children: vec![("socket0".into(), DebugLevel::default())],
        };
        let text = serde_json::to_string(&DebugDump { data: Tree(&tree) }).unwrap();
        assert_eq!(
            text,
            r#"{"data":{"load":[{"start":95,"len":130,"end":1400,"sealed_blocks":1,"encoded_bytes":42,"tail_bytes":8}],"socket0":{}}}"#
        );
    }
}
