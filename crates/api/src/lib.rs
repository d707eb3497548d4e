//! Vigil's HTTP surfaces on one port: Prometheus remote-write and remote-read, the Prometheus
//! query API (PromQL), the series/labels/metadata API, Loki push and its label/series API,
//! health, readiness and self-metrics. Handlers parse and answer;
//! storage lives in `vigil-db`; errors become status codes in [`error`] only.

pub mod error;
mod json;
mod logql;
mod loki;
mod prom;
mod query;
pub mod selector;
mod write;

use std::sync::{Arc, OnceLock};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use vigil_db::{Db, Metrics};
use vigil_ingest::ValidationLimits;
use vigil_model::TenantId;

use error::{ErrorKind, PlainError};

/// The tenant header, as in Mimir, Cortex and Loki.
pub const TENANT_HEADER: &str = "X-Scope-OrgID";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Set once the WAL is replayed; until then storage endpoints answer 503.
    pub db: Arc<OnceLock<Arc<Db>>>,
    pub metrics: Arc<Metrics>,
    pub limits: ValidationLimits,
    /// Loki push validation limits.
    pub log_limits: vigil_log_ingest::LogLimits,
    /// Largest accepted compressed request body.
    pub max_request_bytes: usize,
    /// Query limits and defaults (lookback, max samples, timeout).
    pub engine: vigil_promql::EngineOptions,
}

impl AppState {
    fn db(&self) -> Result<&Arc<Db>, PlainError> {
        self.db.get().ok_or_else(|| {
            PlainError::new(
                ErrorKind::Unavailable,
                "not ready: replaying the write-ahead log",
            )
        })
    }
}

/// The tenant of a request: `X-Scope-OrgID`, or the default tenant when absent.
pub fn tenant(headers: &HeaderMap) -> Result<TenantId, PlainError> {
    match headers.get(TENANT_HEADER) {
        None => Ok(TenantId::default_tenant()),
        Some(value) => {
            let value = value.to_str().map_err(|_| {
                PlainError::new(ErrorKind::BadData, "X-Scope-OrgID is not valid text")
            })?;
            TenantId::new(value.trim()).map_err(|e| {
                PlainError::new(ErrorKind::BadData, format!("invalid X-Scope-OrgID: {e}"))
            })
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/push", post(write::remote_write))
        .route("/api/v1/write", post(write::remote_write))
        .route("/api/v1/read", post(write::remote_read))
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/query_exemplars",
            get(query::exemplars).post(query::exemplars),
        )
        .route("/api/v1/series", get(prom::series).post(prom::series))
        .route("/api/v1/labels", get(prom::labels).post(prom::labels))
        .route(
            "/api/v1/label/{name}/values",
            get(prom::label_values).post(prom::label_values),
        )
        .route("/api/v1/metadata", get(prom::metadata))
        .route("/api/v1/status/buildinfo", get(prom::buildinfo))
        .route("/loki/api/v1/push", post(loki::push))
        .route("/api/prom/push", post(loki::push_legacy))
        .route("/loki/api/v1/labels", get(loki::labels).post(loki::labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(loki::label_values).post(loki::label_values),
        )
        .route("/loki/api/v1/series", get(loki::series).post(loki::series))
        .route(
            "/loki/api/v1/query_range",
            get(logql::query_range).post(logql::query_range),
        )
        .route("/loki/api/v1/query", get(logql::query).post(logql::query))
        .route(
            "/loki/api/v1/format_query",
            get(logql::format_query).post(logql::format_query),
        )
        .route("/loki/api/v1/status/buildinfo", get(logql::buildinfo))
        .route(
            "/loki/api/v1/index/stats",
            get(logql::index_stats).post(logql::index_stats),
        )
        .route(
            "/loki/api/v1/index/volume",
            get(logql::volume).post(logql::volume),
        )
        .route(
            "/loki/api/v1/index/volume_range",
            get(logql::volume_range).post(logql::volume_range),
        )
        .route("/loki/api/v1/tail", get(logql::tail))
        .route("/metrics", get(self_metrics))
        .route("/ready", get(ready))
        .route("/-/ready", get(ready))
        .route("/-/healthy", get(healthy))
        // Write handlers enforce their own limit with a 413 that names it.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.get() {
        Some(db) if !db.is_closed() => (StatusCode::OK, "ready\n"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "replaying write-ahead log\n",
        ),
    }
}

async fn healthy() -> impl IntoResponse {
    (StatusCode::OK, "healthy\n")
}

async fn self_metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(db) = state.db.get() {
        db.refresh_gauges();
    }
    let mut body = state.metrics.encode();
    if let Some(rss) = resident_memory_bytes() {
        body.insert_str(
            0,
            &format!("# HELP vigil_process_resident_memory_bytes Resident memory of the process.\n# TYPE vigil_process_resident_memory_bytes gauge\nvigil_process_resident_memory_bytes {rss}\n"),
        );
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
