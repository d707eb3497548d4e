//! The Prometheus query API: `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`,
//! `/api/v1/query_exemplars`. Evaluation runs on a blocking thread; the JSON is written by hand
//! in Prometheus' exact shape (timestamps as seconds with millisecond fraction, values as
//! strings, `NaN`/`+Inf`/`-Inf`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use vigil_db::Db;
use vigil_model::{Labels, Matcher, TenantId};
use vigil_promql::format::push_go_float_json;
use vigil_promql::parser::ast::Expr;
use vigil_promql::{EngineOptions, QueryResult, Storage, StorageSeries, Value};

use crate::error::{query_error, ApiError, ErrorKind};
use crate::json::{push_json_str, push_labels};
use crate::prom::{apply_limit, limit_param, parse_time, parse_time_param, Params};
use crate::{tenant, AppState};

/// Prometheus' cap on points per series of a range query.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Reads series for the evaluator from the database (head and blocks, merged). Used from a
/// blocking thread: each select waits on the async block reads.
struct DbStorage {
    db: Arc<Db>,
    tenant: TenantId,
    runtime: tokio::runtime::Handle,
}

impl Storage for DbStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<StorageSeries>, String> {
        let series = self
            .runtime
            .block_on(
                self.db
                    .select_samples_unordered(&self.tenant, matchers, mint, maxt),
            )
            .map_err(|e| format!("storage error: {e}"))?;
        Ok(to_storage_series(series))
    }

    /// Head series are decoded one at a time into a buffer of each share, when no block holds
    /// any of the range; otherwise (or when a cut moved samples during the visit) as `select`.
    fn visit(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        shares: usize,
        visit: &(dyn Fn(usize, &Labels, &[vigil_promql::Point]) + Sync),
    ) -> Result<bool, String> {
        let Some(series) = self
            .db
            .head_series_alone(&self.tenant, matchers, mint, maxt)
        else {
            let series = self.select(matchers, mint, maxt)?;
            vigil_promql::visit_in_shares(&series, shares, |s| (&s.labels, &s.points[..]), visit);
            return Ok(true);
        };
        let shares = if series.len() < vigil_promql::MIN_SERIES_FOR_SHARES {
            1
        } else {
            shares
        };
        vigil_promql::map_runs(&series, shares, |share, run| {
            let (mut samples, mut points) = (Vec::new(), Vec::new());
            for s in run {
                samples.clear();
                s.samples_into(mint, maxt, &mut samples);
                if samples.is_empty() {
                    continue;
                }
                points.clear();
                points.extend(samples.iter().map(|x| vigil_promql::Point {
                    t: x.timestamp_ms,
                    v: x.value,
                }));
                visit(share, &s.labels, &points);
            }
        });
        Ok(!self.db.blocks_overlap(&self.tenant, mint, maxt))
    }
}

/// The evaluator's form of the series: a pass over every sample, on all cores for large
/// selections.
fn to_storage_series(series: Vec<vigil_db::SeriesData>) -> Vec<StorageSeries> {
    let convert = |part: Vec<vigil_db::SeriesData>| -> Vec<StorageSeries> {
        part.into_iter()
            .map(|s| StorageSeries {
                labels: s.labels,
                points: s
                    .samples
                    .into_iter()
                    .map(|x| vigil_promql::Point {
                        t: x.timestamp_ms,
                        v: x.value,
                    })
                    .collect(),
            })
            .collect()
    };
    let Ok(series) = vigil_promql::map_on_all_cores(series, |part| {
        Ok::<_, std::convert::Infallible>(convert(part))
    });
    series
}

/// A duration parameter: float seconds or a Prometheus duration (`15s`, `1m30s`).
fn parse_duration_param(name: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() {
            let ms = (secs * 1000.0).round();
            if ms.abs() < i64::MAX as f64 {
                return Ok(ms as i64);
            }
        }
    }
    vigil_promql::parser::parse_api_duration(value).map_err(|_| {
        ApiError::bad_data(format!(
            "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid duration"
        ))
    })
}

fn options(state: &AppState, params: &Params) -> Result<EngineOptions, ApiError> {
    let mut opts = state.engine.clone();
    if let Some(t) = params.get("timeout").filter(|t| !t.is_empty()) {
        let ms = parse_duration_param("timeout", t)?;
        if ms > 0 {
            opts.timeout = opts.timeout.min(Duration::from_millis(ms as u64));
        }
    }
    Ok(opts)
}

/// Parses the `query` parameter (absent = empty, which is a parse error as in Prometheus);
/// errors carry Prometheus' `invalid parameter "query": ` prefix.
fn parse_query_param(params: &Params, opts: &EngineOptions) -> Result<Expr, ApiError> {
    vigil_promql::parse(params.get("query").unwrap_or(""), opts).map_err(query_param_error)
}

/// A query engine error about the `query` parameter, with Prometheus' prefix.
fn query_param_error(error: vigil_promql::QueryError) -> ApiError {
    let mut err = query_error(error);
    err.message = format!("invalid parameter \"query\": {}", err.message);
    err
}

/// Runs the evaluation on a blocking thread with a storage view of the tenant.
async fn run(
    state: &AppState,
    headers: &HeaderMap,
    eval: impl FnOnce(&dyn Storage) -> Result<QueryResult, vigil_promql::QueryError> + Send + 'static,
) -> Result<QueryResult, ApiError> {
    let tenant = tenant(headers)?;
    let db = state.db()?.clone();
    let storage = DbStorage {
        db,
        tenant,
        runtime: tokio::runtime::Handle::current(),
    };
    tokio::task::spawn_blocking(move || eval(&storage))
        .await
        .map_err(|e| ApiError {
            kind: ErrorKind::Internal,
            message: format!("query task failed: {e}"),
        })?
        .map_err(query_error)
}

pub(crate) async fn instant(
    State(state): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::from_request(&method, query, &headers, body).await?;
    let time = parse_time_param(&params, "time")?.unwrap_or_else(vigil_db::now_ms);
    let opts = options(&state, &params)?;
    let limit = limit_param(&params)?;
    let expr = parse_query_param(&params, &opts)?;
    let result = run(&state, &headers, move |storage| {
        vigil_promql::instant_expr(storage, &expr, time, &opts)
    })
    .await?;
    Ok(json_pieces_response(render_blocking(result, limit).await?))
}

pub(crate) async fn range(
    State(state): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::from_request(&method, query, &headers, body).await?;
    let start = parse_time("start", params.get("start").unwrap_or(""))?;
    let end = parse_time("end", params.get("end").unwrap_or(""))?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = parse_duration_param("step", params.get("step").unwrap_or(""))?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let opts = options(&state, &params)?;
    let limit = limit_param(&params)?;
    let expr = parse_query_param(&params, &opts)?;
    // Prometheus 3.x rejects a string or range vector as a bad `query` parameter.
    vigil_promql::check_range_query_type(&expr).map_err(query_param_error)?;
    let result = run(&state, &headers, move |storage| {
        vigil_promql::range_expr(storage, &expr, start, end, step, &opts)
    })
    .await?;
    Ok(json_pieces_response(render_blocking(result, limit).await?))
}

pub(crate) async fn format_query(
    State(state): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::from_request(&method, query, &headers, body).await?;
    let expr = parse_query_param(&params, &state.engine)?;
    let pretty = vigil_promql::parser::prettify(&expr);
    let mut out = String::from("{\"status\":\"success\",\"data\":");
    push_json_str(&mut out, &pretty);
    out.push('}');
    Ok(json_response(out))
}

pub(crate) async fn exemplars(
    State(state): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::from_request(&method, query, &headers, body).await?;
    vigil_promql::parse(params.get("query").unwrap_or(""), &state.engine).map_err(query_error)?;
    let start = parse_time_param(&params, "start")?;
    let end = parse_time_param(&params, "end")?;
    if let (Some(start), Some(end)) = (start, end) {
        if end < start {
            return Err(ApiError::bad_data(
                "end timestamp must not be before start timestamp",
            ));
        }
    }
    // Exemplars are not stored (yet): an empty result, as Prometheus gives without any.
    Ok(json_response(
        "{\"status\":\"success\",\"data\":[]}".to_string(),
    ))
}

/// A JSON answer sent as `pieces` in order, with its length known up front.
fn json_pieces_response(mut pieces: Vec<String>) -> Response {
    if pieces.len() == 1 {
        return json_response(pieces.pop().unwrap_or_default());
    }
    let length: usize = pieces.iter().map(String::len).sum();
    let chunks = pieces
        .into_iter()
        .map(|piece| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(piece)));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        Body::from_stream(futures::stream::iter(chunks)),
    )
        .into_response()
}

fn json_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// [`render`] on a blocking thread: a large answer is megabytes of formatted floats.
async fn render_blocking(
    result: QueryResult,
    limit: Option<usize>,
) -> Result<Vec<String>, ApiError> {
    tokio::task::spawn_blocking(move || render(result, limit))
        .await
        .map_err(|e| ApiError {
            kind: ErrorKind::Internal,
            message: format!("render task failed: {e}"),
        })
}

/// Prometheus' JSON for a query result, in pieces to be sent one after the other (a large
/// matrix is written by all cores, each piece by one, and never copied into one buffer).
fn render(result: QueryResult, limit: Option<usize>) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut out = String::with_capacity(256);
    out.push_str("{\"status\":\"success\",\"data\":{\"resultType\":\"");
    let mut truncated = false;
    match result.value {
        Value::Scalar(p) => {
            out.push_str("scalar\",\"result\":");
            push_point(&mut out, p.t, p.v);
        }
        Value::String { t, s } => {
            out.push_str("string\",\"result\":[");
            push_timestamp(&mut out, t);
            out.push(',');
            push_json_str(&mut out, &s);
            out.push(']');
        }
        Value::Vector(samples) => {
            let (samples, cut) = apply_limit(samples, limit);
            truncated = cut;
            out.push_str("vector\",\"result\":");
            push_list(&mut out, &samples, |out, s| {
                out.push_str("{\"metric\":");
                push_labels(out, &s.labels);
                out.push_str(",\"value\":");
                push_point(out, s.t, s.v);
                out.push('}');
            });
        }
        Value::Matrix(series) => {
            let (series, cut) = apply_limit(series, limit);
            truncated = cut;
            out.push_str("matrix\",\"result\":");
            push_matrix(&mut pieces, &mut out, &series);
        }
    }
    out.push('}');
    let mut warnings = result.annotations.warnings;
    if truncated {
        warnings.push("results truncated due to limit".to_string());
    }
    for (key, list) in [
        ("warnings", &warnings),
        ("infos", &result.annotations.infos),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = write!(out, ",\"{key}\":");
        push_list(&mut out, list, |out, w| push_json_str(out, w));
    }
    out.push('}');
    pieces.push(out);
    pieces
}

/// A JSON array of `items`, each written by `item`.
fn push_list<T>(out: &mut String, items: &[T], item: impl Fn(&mut String, &T)) {
    out.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(out, x);
    }
    out.push(']');
}

/// A matrix's series as a JSON array, appended to `out`; from [`PARALLEL_RENDER_POINTS`]
/// points on, written by one thread per core into pieces of their own: `out` is then moved
/// to `pieces`, followed by the threads' pieces, and left holding the array's end.
fn push_matrix(pieces: &mut Vec<String>, out: &mut String, series: &[vigil_promql::Series]) {
    let points: usize = series.iter().map(|s| s.points.len()).sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let write_run = |run: &[vigil_promql::Series], into: &mut String| {
        let mut times = TimestampMemo::default();
        for (i, s) in run.iter().enumerate() {
            if i > 0 {
                into.push(',');
            }
            into.push_str("{\"metric\":");
            push_labels(into, &s.labels);
            into.push_str(",\"values\":[");
            for (k, p) in s.points.iter().enumerate() {
                times.push_point_start(into, k, p.t);
                push_go_float_json(into, p.v);
                into.push_str("\"]");
            }
            into.push_str("]}");
        }
    };
    out.push('[');
    if threads < 2 || points < PARALLEL_RENDER_POINTS || series.len() < 2 {
        write_run(series, out);
        out.push(']');
        return;
    }
    let runs = vigil_promql::map_runs(series, threads, |_, run| {
        let run_points: usize = run.iter().map(|s| s.points.len()).sum();
        let mut piece = String::with_capacity(run_points * 32 + run.len() * 128);
        write_run(run, &mut piece);
        piece
    });
    pieces.push(std::mem::take(out));
    let last = runs.len().saturating_sub(1);
    for (i, mut piece) in runs.into_iter().enumerate() {
        if i < last {
            piece.push(',');
        }
        pieces.push(piece);
    }
    out.push(']');
}

/// The text that starts each point of a series up to its value (`,[1700000000.250,"`), kept
/// by point index: the series of a range query share the steps, so each time is formatted
/// about once per answer.
#[derive(Default)]
struct TimestampMemo {
    by_index: Vec<(i64, String)>,
}

impl TimestampMemo {
    fn push_point_start(&mut self, out: &mut String, index: usize, t: i64) {
        // The first point of a series has no comma before it.
        let skip = usize::from(index == 0);
        if let Some((time, text)) = self.by_index.get(index) {
            if *time == t {
                out.push_str(&text[skip..]);
                return;
            }
        }
        let mut text = String::from(",[");
        push_timestamp(&mut text, t);
        text.push_str(",\"");
        out.push_str(&text[skip..]);
        if index < self.by_index.len() {
            self.by_index[index] = (t, text);
        } else if index == self.by_index.len() {
            self.by_index.push((t, text));
        }
    }
}

/// Points in an answer from which it is written on all cores.
const PARALLEL_RENDER_POINTS: usize = 20_000;

/// Seconds with a three-digit millisecond fraction when it is not zero (`1700000000.250`).
fn push_timestamp(out: &mut String, t: i64) {
    if t < 0 {
        out.push('-');
    }
    let t = t.unsigned_abs();
    out.push_str(itoa::Buffer::new().format(t / 1000));
    let ms = t % 1000;
    if ms != 0 {
        out.push('.');
        for digit in [ms / 100, ms / 10 % 10, ms % 10] {
            // A single decimal digit.
            out.push(char::from(b'0' + digit as u8));
        }
    }
}

fn push_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    push_timestamp(out, t);
    out.push_str(",\"");
    push_go_float_json(out, v);
    out.push_str("\"]");
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::Label;
    use vigil_promql::{Annotations, Point, VectorSample};

    #[test]
    fn large_matrices_render_in_pieces_like_small_ones() {
        // Enough points for the parallel writer; times off the grid and repeated.
        let series: Vec<vigil_promql::Series> = (0..300)
            .map(|i| vigil_promql::Series {
                labels: Labels::from_unsorted(vec![Label::new("i", i.to_string())]),
                points: (0..100)
                    .map(|k| Point {
                        t: 1_700_000_000_000 + k * 15_000 + (i % 3) * 250,
                        v: (i * k) as f64 / 7.0,
                    })
                    .collect(),
            })
            .collect();
        let mut expected =
            String::from(r#"{"status":"success","data":{"resultType":"matrix","result":"#);
        push_list(&mut expected, &series, |out, s| {
            out.push_str("{\"metric\":");
            push_labels(out, &s.labels);
            out.push_str(",\"values\":");
            push_list(out, &s.points, |out, p| push_point(out, p.t, p.v));
            out.push('}');
        });
        expected.push_str("}}");
        let pieces = render(
            QueryResult {
                value: Value::Matrix(series),
                annotations: Annotations::default(),
            },
            None,
        );
        assert!(pieces.len() > 2, "written in pieces");
        assert_eq!(pieces.concat(), expected);
    }

    #[test]
    fn timestamps_and_label_strings_render_as_prometheus_does() {
        let ts = |t: i64| {
            let mut out = String::new();
            push_timestamp(&mut out, t);
            out
        };
        assert_eq!(ts(1_700_000_000_000), "1700000000");
        assert_eq!(ts(1_700_000_000_005), "1700000000.005");
        assert_eq!(ts(1_700_000_000_250), "1700000000.250");
        assert_eq!(ts(0), "0");
        assert_eq!(ts(-1_500), "-1.500");
        assert_eq!(ts(i64::MIN), "-9223372036854775.808");
        for s in [
            "plain",
            "quo\"te",
            "back\\slash",
            "new\nline",
            "tab\t",
            "ünï/cødé",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn renders_prometheus_shapes() {
        let labels =
            Labels::from_unsorted(vec![Label::new("__name__", "up"), Label::new("job", "a")]);
        let r = QueryResult {
            value: Value::Vector(vec![VectorSample {
                labels,
                t: 1_700_000_000_250,
                v: f64::INFINITY,
            }]),
            annotations: Annotations::default(),
        };
        assert_eq!(
            render(r, None).concat(),
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000000.250,"+Inf"]}]}}"#
        );
        let r = QueryResult {
            value: Value::Scalar(Point { t: 1000, v: 0.5 }),
            annotations: Annotations {
                warnings: vec!["w".into()],
                infos: vec![],
            },
        };
        assert_eq!(
            render(r, None).concat(),
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"0.5"]},"warnings":["w"]}"#
        );
    }
}
