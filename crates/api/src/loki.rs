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
use crate::selector::parse_selector;
use crate::write::read_body;
use crate::{tenant, AppState};

/// Loki's default range for label, series and query requests without `start`: 6h before `end`.
const DEFAULT_SINCE_NS: i64 = 6 * 3600 * 1_000_000_000;
/// Loki's default `limit` of log queries.
const DEFAULT_LIMIT: usize = 100;

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

/// A LogQL stream selector (`{app="api", level=~"warn|error"}`); Loki requires at least one
/// matcher that does not match the empty string.
fn parse_stream_selector(src: &str) -> Result<Vec<Matcher>, PlainError> {
    let text = src.trim();
    if !text.starts_with('{') {
        return Err(PlainError::new(
            ErrorKind::BadData,
            format!("parse error : only stream selectors like {{app=\"x\"}} are supported here yet, got {src:?}"),
        ));
    }
    parse_selector(text).map_err(|e| {
        let empty_compatible = e.contains("empty") || e.contains("at least one");
        let message = if empty_compatible {
            "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will".to_string()
        } else {
            format!("parse error : {e}")
        };
        PlainError::new(ErrorKind::BadData, message)
    })
}

fn optional_selector(params: &Params) -> Result<Vec<Vec<Matcher>>, PlainError> {
    match params.get("query") {
        Some(q) if !q.trim().is_empty() => Ok(vec![parse_stream_selector(q)?]),
        _ => Ok(Vec::new()),
    }
}

/// What every read endpoint starts from: the tenant, the form parameters (query string, and the
/// body of a form POST) and the time range.
struct ReadRequest {
    tenant: vigil_model::TenantId,
    params: Params,
    start: i64,
    end: i64,
}

async fn read_request(
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

fn json_response(body: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn string_list(values: Vec<String>) -> Response {
    json_response(serde_json::json!({"status": "success", "data": values}))
}

fn labels_object(labels: &Labels) -> serde_json::Value {
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

/// `GET|POST /loki/api/v1/query_range` for a plain stream selector: the newest (`backward`,
/// the default) or oldest (`forward`) `limit` entries in `[start, end)`, grouped by stream.
pub(crate) async fn query_range(
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
    let Some(text) = params.get("query") else {
        return Err(PlainError::new(
            ErrorKind::BadData,
            "query parameter is required",
        ));
    };
    let matchers = parse_stream_selector(text)?;
    let limit = match params.get("limit") {
        None | Some("") => DEFAULT_LIMIT,
        Some(v) => v.parse::<usize>().map_err(|_| {
            PlainError::new(
                ErrorKind::BadData,
                format!("invalid limit parameter: cannot parse {v:?} as a number"),
            )
        })?,
    };
    let forward = match params
        .get("direction")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") | Some("backward") => false,
        Some("forward") => true,
        Some(other) => {
            return Err(PlainError::new(
                ErrorKind::BadData,
                format!("invalid direction parameter: {other:?} is neither forward nor backward"),
            ))
        }
    };
    let db = state.db()?.clone();
    // `end` is exclusive in Loki's log queries.
    let streams = db
        .select_log_entries(&tenant, &matchers, start, end.saturating_sub(1))
        .await
        .map_err(db_error)?;
    let body = tokio::task::block_in_place(|| streams_body(streams, limit, forward));
    Ok((
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response())
}

/// Loki's `streams` result: the `limit` entries first in the query's direction over all
/// streams, each stream's values in that direction.
fn streams_body(streams: Vec<vigil_db::StreamData>, limit: usize, forward: bool) -> String {
    // The cutoff: the limit-th timestamp in direction order over all streams.
    let mut all: Vec<i64> = streams
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.timestamp_ns))
        .collect();
    let cutoff = if all.len() > limit && limit > 0 {
        if forward {
            all.select_nth_unstable(limit - 1);
        } else {
            all.select_nth_unstable_by(limit - 1, |a, b| b.cmp(a));
        }
        Some(all[limit - 1])
    } else {
        None
    };
    drop(all);
    let mut result = Vec::new();
    for stream in streams {
        let mut entries: Vec<_> = stream
            .entries
            .into_iter()
            .filter(|e| match cutoff {
                Some(c) if forward => e.timestamp_ns <= c,
                Some(c) => e.timestamp_ns >= c,
                None => true,
            })
            .collect();
        if !forward {
            entries.reverse();
        }
        if entries.is_empty() {
            continue;
        }
        result.push((stream.labels, entries));
    }
    // Entries strictly inside the cutoff always fit; ties at the cutoff fill the rest of the
    // limit in stream label order.
    if let Some(c) = cutoff {
        let strict: usize = result
            .iter()
            .map(|(_, e)| e.iter().filter(|x| x.timestamp_ns != c).count())
            .sum();
        let mut ties_left = limit.saturating_sub(strict);
        for (_, entries) in result.iter_mut() {
            entries.retain(|x| {
                if x.timestamp_ns != c {
                    return true;
                }
                if ties_left > 0 {
                    ties_left -= 1;
                    true
                } else {
                    false
                }
            });
        }
        result.retain(|(_, e)| !e.is_empty());
    }
    let mut out = String::with_capacity(1024);
    out.push_str(r#"{"status":"success","data":{"resultType":"streams","result":["#);
    for (i, (labels, entries)) in result.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"stream":"#);
        out.push_str(&labels_object(labels).to_string());
        out.push_str(r#","values":["#);
        for (j, e) in entries.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("[\"");
            out.push_str(&e.timestamp_ns.to_string());
            out.push_str("\",");
            out.push_str(&serde_json::Value::String(e.line.clone()).to_string());
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push_str(r#"],"stats":{}}}"#);
    out
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

    fn stream(app: &str, ts: &[i64]) -> vigil_db::StreamData {
        vigil_db::StreamData {
            labels: Labels::from_unsorted(vec![vigil_model::Label::new("app", app)]),
            entries: ts
                .iter()
                .map(|t| vigil_model::LogEntry {
                    timestamp_ns: *t,
                    line: format!("line {t}"),
                    structured_metadata: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn limit_takes_the_newest_entries_over_all_streams() {
        let body = streams_body(
            vec![stream("a", &[1, 4, 6]), stream("b", &[2, 5])],
            3,
            false,
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let result = &v["data"]["result"];
        assert_eq!(result[0]["values"][0][0], "6");
        assert_eq!(result[0]["values"][1][0], "4");
        assert_eq!(result[1]["values"][0][0], "5");
        assert_eq!(result.as_array().unwrap().len(), 2);
        let body = streams_body(vec![stream("a", &[1, 4, 6]), stream("b", &[2, 5])], 2, true);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["result"][0]["values"][0][1], "line 1");
        assert_eq!(v["data"]["result"][1]["values"][0][1], "line 2");
    }
}
