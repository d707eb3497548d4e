//! Loki's HTTP API, as far as the logs write path goes: push (`/loki/api/v1/push` and the legacy
//! `/api/prom/push`; 204 once durable, 400 naming what was rejected), and the read-back
//! endpoints `labels`, `label/<name>/values` and `series` in Loki's shapes, plus `query_range`
//! for plain stream selectors (LogQL pipelines and metric queries come with the LogQL engine).
//! Loki answers errors on these endpoints as plain text.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use vigil_log_ingest::{BodyFormat, ContentEncoding, DecodeError};
use vigil_model::{Labels, Matcher};

use crate::error::{db_error, ErrorKind, PlainError};
use crate::prom::Params;
use crate::write::read_body;
use crate::{tenant, AppState};

/// Loki's default range for label, series and query requests without `start`: 6h before `end`.
const DEFAULT_SINCE_NS: i64 = 6 * 3600 * 1_000_000_000;

pub(crate) async fn push(
    state: State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PlainError> {
    push_request(state, headers, body, false).await
}

pub(crate) async fn push_legacy(
    state: State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PlainError> {
    push_request(state, headers, body, true).await
}

async fn push_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
    legacy_path: bool,
) -> Result<Response, PlainError> {
    let tenant = tenant(&headers)?;
    let header_text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let format = BodyFormat::from_content_type(header_text(header::CONTENT_TYPE), legacy_path);
    let encoding = ContentEncoding::from_header(header_text(header::CONTENT_ENCODING))
        .map_err(decode_error)?;
    let db = state.db()?.clone();
    let body = read_body(body, state.max_request_bytes).await?;
    let guard = db.begin_write().await.map_err(db_error)?;
    // Decoding, validation and WAL encoding are CPU work: off the reactor.
    let prepared = tokio::task::block_in_place(|| {
        let batch = vigil_log_ingest::parse_push(
            &body,
            format,
            encoding,
            &state.log_limits,
            vigil_db::now_ns(),
        )
        .map_err(decode_error)?;
        drop(body);
        db.prepare_log_write(&guard, &tenant, batch)
            .map_err(db_error)
    })?;
    let outcome = db
        .commit_log_write(guard, prepared)
        .await
        .map_err(db_error)?;
    match outcome.error_body() {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(message) => {
            tracing::debug!(tenant = %tenant, %message, "push partially rejected");
            Err(PlainError::new(ErrorKind::BadData, message))
        }
    }
}

fn decode_error(e: DecodeError) -> PlainError {
    match e {
        DecodeError::TooLarge { .. } => PlainError::new(ErrorKind::TooLarge, e.to_string()),
        _ => PlainError::new(ErrorKind::BadData, e.to_string()),
    }
}

/// A Loki time parameter: Unix nanoseconds (or seconds when at most 10 digits), float seconds,
/// or RFC 3339 — as Loki's `loghttp` parses them.
pub(crate) fn parse_loki_time(name: &str, value: &str) -> Result<i64, PlainError> {
    let invalid = || {
        PlainError::new(
            ErrorKind::BadData,
            format!("invalid {name} parameter: cannot parse {value:?} as a timestamp"),
        )
    };
    if value.contains('.') {
        if let Ok(seconds) = value.parse::<f64>() {
            let whole = seconds.trunc();
            let frac_ns = ((seconds - whole) * 1000.0).round() * 1_000_000.0;
            return Ok((whole as i64)
                .saturating_mul(1_000_000_000)
                .saturating_add(frac_ns as i64));
        }
    }
    match value.parse::<i64>() {
        Ok(n) if value.trim_start_matches('-').len() <= 10 => Ok(n.saturating_mul(1_000_000_000)),
        Ok(n) => Ok(n),
        Err(_) => vigil_log_ingest::time::parse_rfc3339(value).ok_or_else(invalid),
    }
}

/// `start` and `end` with Loki's defaults (end: now; start: 6h before end).
fn time_range(params: &Params) -> Result<(i64, i64), PlainError> {
    let end = match params.get("end") {
        Some(v) if !v.is_empty() => parse_loki_time("end", v)?,
        _ => vigil_db::now_ns(),
    };
    let start = match params.get("start") {
        Some(v) if !v.is_empty() => parse_loki_time("start", v)?,
        _ => end.saturating_sub(DEFAULT_SINCE_NS),
    };
    if end < start {
        return Err(PlainError::new(
            ErrorKind::BadData,
            "end timestamp must not be before or equal to start time",
        ));
    }
    Ok((start, end))
}

/// A LogQL stream selector (`{app="api", level=~"warn|error"}`, a pipeline is ignored); Loki
/// requires at least one matcher that does not match the empty string.
fn parse_stream_selector(src: &str) -> Result<Vec<Matcher>, PlainError> {
    match crate::logql::parse_logql(src)? {
        vigil_logql::ast::Expr::Log(log) => Ok(log.selector),
        vigil_logql::ast::Expr::Metric(_) => Err(PlainError::new(
            ErrorKind::BadData,
            format!("parse error : a stream selector is needed here, got a metric query {src:?}"),
        )),
    }
}

fn optional_selector(params: &Params) -> Result<Vec<Vec<Matcher>>, PlainError> {
    match params.get("query") {
        Some(q) if !q.trim().is_empty() => Ok(vec![parse_stream_selector(q)?]),
        _ => Ok(Vec::new()),
    }
}

/// What every read endpoint starts from: the tenant, the form parameters (query string, and the
/// body of a form POST) and the time range.
pub(crate) struct ReadRequest {
    pub tenant: vigil_model::TenantId,
    pub params: Params,
    pub start: i64,
    pub end: i64,
}

pub(crate) async fn read_request(
    method: Method,
    query: RawQuery,
    headers: &HeaderMap,
    body: Body,
) -> Result<ReadRequest, PlainError> {
    let tenant = tenant(headers)?;
    let params = Params::from_request(&method, query.0, headers, body)
        .await
        .map_err(|e| PlainError::new(e.kind, e.message))?;
    let (start, end) = time_range(&params)?;
    Ok(ReadRequest {
        tenant,
        params,
        start,
        end,
    })
}

pub(crate) fn json_response(body: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn string_list(values: Vec<String>) -> Response {
    json_response(serde_json::json!({"status": "success", "data": values}))
}

pub(crate) fn labels_object(labels: &Labels) -> serde_json::Value {
    serde_json::Value::Object(
        labels
            .iter()
            .map(|l| (l.name.clone(), serde_json::Value::String(l.value.clone())))
            .collect(),
    )
}

/// `GET|POST /loki/api/v1/labels` (`start`, `end`, optional `query`).
pub(crate) async fn labels(
    State(state): State<AppState>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PlainError> {
    let ReadRequest {
        tenant,
        params,
        start,
        end,
    } = read_request(method, query, &headers, body).await?;
    let sets = optional_selector(&params)?;
    let db = state.db()?;
    Ok(string_list(db.log_label_names(&tenant, &sets, start, end)))
}

/// `GET|POST /loki/api/v1/label/<name>/values` (`start`, `end`, optional `query`).
pub(crate) async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PlainError> {
    let ReadRequest {
        tenant,
        params,
        start,
        end,
    } = read_request(method, query, &headers, body).await?;
    let sets = optional_selector(&params)?;
    let db = state.db()?;
    Ok(string_list(
        db.log_label_values(&tenant, &name, &sets, start, end),
    ))
}

/// `GET|POST /loki/api/v1/series` (`match[]`, `start`, `end`).
pub(crate) async fn series(
    State(state): State<AppState>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PlainError> {
    let ReadRequest {
        tenant,
        params,
        start,
        end,
    } = read_request(method, query, &headers, body).await?;
    let mut sets = Vec::new();
    for m in params.all("match[]").into_iter().chain(params.all("match")) {
        sets.push(parse_stream_selector(m)?);
    }
    let db = state.db()?;
    let data: Vec<serde_json::Value> = db
        .log_series(&tenant, &sets, start, end)
        .iter()
        .map(labels_object)
        .collect();
    Ok(json_response(
        serde_json::json!({"status": "success", "data": data}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_times_parse_as_loki_does() {
        assert_eq!(
            parse_loki_time("t", "1700000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_loki_time("t", "1700000000123456789").unwrap(),
            1_700_000_000_123_456_789
        );
        assert_eq!(
            parse_loki_time("t", "1700000000.5").unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_loki_time("t", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        assert!(parse_loki_time("t", "yesterday").is_err());
    }

    #[test]
    fn stream_selectors_need_a_non_empty_matcher() {
        assert!(parse_stream_selector(r#"{app="a"}"#).is_ok());
        let e = parse_stream_selector(r#"{app=~".*"}"#).unwrap_err();
        assert!(e.message.contains("at least one"), "{}", e.message);
        assert!(parse_stream_selector("rate({a=\"b\"}[1m])").is_err());
    }
}
