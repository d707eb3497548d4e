//! Loki's query API over the LogQL engine: `query_range` and `query` (log and metric queries,
//! in Loki's `streams`/`matrix`/`vector`/`scalar` shapes), `format_query`, `status/buildinfo`,
//! `index/stats`, `index/volume` and `volume_range`, and the live `tail` websocket.
//! Loki answers errors on these endpoints as plain text.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use vigil_db::Db;
use vigil_logql::ast::Expr;
use vigil_logql::{
    LogSource, MetricValue, PackedLabels, ResultEntry, SourceStream, Steps, StreamResult,
};
use vigil_model::{
    Labels, LogReadFilter, LogSampleValue, LogWindowSums, LogWindows, Matcher, ReadStats, TenantId,
};
use vigil_promql::format::go_float;

use crate::error::{db_error, ErrorKind, PlainError};
use crate::json::{push_json_str, push_label_pairs, push_labels};
use crate::loki::{json_response, parse_loki_time, read_request, ReadRequest};
use crate::prom::Params;
use crate::{tenant, AppState};

/// Loki's default `limit` of log queries.
const DEFAULT_LIMIT: usize = 100;
/// `max_entries_limit_per_query` (raised from Loki's 5,000 default, as the reference runs).
const MAX_ENTRIES_LIMIT: usize = 10_000;
/// Points per series a range query may produce.
const MAX_POINTS: i64 = 11_000;
/// How far back a tail starts when no `start` is given (Loki: 1h).
const TAIL_DEFAULT_SINCE_NS: i64 = 3600 * 1_000_000_000;
/// How often a tail looks for new lines.
const TAIL_POLL: Duration = Duration::from_millis(200);

fn bad(message: impl Into<String>) -> PlainError {
    PlainError::new(ErrorKind::BadData, message)
}

/// Parses a LogQL query; errors read as Loki's (`parse error at line 1, col 13: ...`).
pub(crate) fn parse_logql(text: &str) -> Result<Expr, PlainError> {
    vigil_logql::parser::parse(text).map_err(|e| bad(e.to_string()))
}

/// The database as the LogQL engine's source. Runs on a blocking thread: reads block on the
/// runtime handle.
struct DbSource {
    db: Arc<Db>,
    tenant: TenantId,
    runtime: tokio::runtime::Handle,
    /// What storage read for this query.
    stats: Arc<ReadStats>,
}

impl DbSource {
    /// The engine's read filter, counting into this query's stats.
    fn counted(&self, filter: &LogReadFilter) -> LogReadFilter {
        LogReadFilter {
            stats: Some(self.stats.clone()),
            ..filter.clone()
        }
    }
}

impl LogSource for DbSource {
    fn select(
        &self,
        selector: &[Matcher],
        start_ns: i64,
        end_ns: i64,
        filter: &LogReadFilter,
    ) -> Result<Vec<SourceStream>, String> {
        let streams = self
            .runtime
            .block_on(self.db.select_log_entries_where(
                &self.tenant,
                selector,
                start_ns,
                end_ns,
                self.counted(filter),
            ))
            .map_err(|e| e.to_string())?;
        Ok(streams
            .into_iter()
            .map(|s| SourceStream {
                labels: s.labels,
                entries: s.entries,
            })
            .collect())
    }

    fn select_window_sums(
        &self,
        selector: &[Matcher],
        range: (i64, i64),
        filter: &LogReadFilter,
        value: LogSampleValue,
        windows: LogWindows,
    ) -> Result<Vec<LogWindowSums>, String> {
        self.runtime
            .block_on(self.db.select_log_window_sums(
                &self.tenant,
                selector,
                range,
                self.counted(filter),
                value,
                windows,
            ))
            .map_err(|e| e.to_string())
    }
}

fn eval_error(e: vigil_logql::EvalError) -> PlainError {
    match e {
        vigil_logql::EvalError::Storage(m) => PlainError::new(ErrorKind::Internal, m),
        vigil_logql::EvalError::Timeout => PlainError::new(ErrorKind::Timeout, e.to_string()),
        other => bad(other.to_string()),
    }
}

/// A query's limits: Loki's defaults and the server's query timeout.
fn query_limits(state: &AppState) -> vigil_logql::Limits {
    vigil_logql::Limits {
        deadline: std::time::Instant::now().checked_add(state.engine.timeout),
        ..Default::default()
    }
}

/// What a query read and how long it ran: the answer's `stats`.
struct QueryStats {
    lines: u64,
    bytes: u64,
    exec: Duration,
}

impl QueryStats {
    /// Loki's `stats` member with the `summary` this engine measures (no queueing, splitting
    /// or sharding happens here); `returned` is the answer's entries or series.
    fn json(&self, returned: usize) -> String {
        let secs = self.exec.as_secs_f64();
        let per_second = |n: u64| {
            if secs > 0.0 {
                (n as f64 / secs) as u64
            } else {
                0
            }
        };
        format!(
            r#""stats":{{"summary":{{"bytesProcessedPerSecond":{},"linesProcessedPerSecond":{},"totalBytesProcessed":{},"totalLinesProcessed":{},"execTime":{},"queueTime":0,"subqueries":0,"totalEntriesReturned":{},"splits":0,"shards":0}}}}"#,
            per_second(self.bytes),
            per_second(self.lines),
            self.bytes,
            self.lines,
            secs,
            returned
        )
    }
}

/// Runs engine work on a blocking thread with the database as source.
async fn run_blocking<T: Send + 'static>(
    state: &AppState,
    tenant: TenantId,
    work: impl FnOnce(&DbSource) -> Result<T, vigil_logql::EvalError> + Send + 'static,
) -> Result<(T, QueryStats), PlainError> {
    let stats = Arc::new(ReadStats::default());
    let source = DbSource {
        db: state.db()?.clone(),
        tenant,
        runtime: tokio::runtime::Handle::current(),
        stats: stats.clone(),
    };
    let started = std::time::Instant::now();
    let value = tokio::task::spawn_blocking(move || work(&source))
        .await
        .map_err(|e| PlainError::new(ErrorKind::Internal, e.to_string()))?
        .map_err(eval_error)?;
    let (lines, bytes) = stats.get();
    Ok((
        value,
        QueryStats {
            lines,
            bytes,
            exec: started.elapsed(),
        },
    ))
}

fn parse_limit(params: &Params) -> Result<usize, PlainError> {
    let limit = match params.get("limit") {
        None | Some("") => DEFAULT_LIMIT,
        Some(v) => v.parse::<usize>().map_err(|_| {
            bad(format!(
                "invalid limit parameter: cannot parse {v:?} as a number"
            ))
        })?,
    };
    if limit > MAX_ENTRIES_LIMIT {
        return Err(bad(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {MAX_ENTRIES_LIMIT})"
        )));
    }
    Ok(limit)
}

fn parse_direction(params: &Params) -> Result<bool, PlainError> {
    match params
        .get("direction")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") | Some("backward") => Ok(false),
        Some("forward") => Ok(true),
        Some(_) => Err(bad(format!(
            "invalid direction '{}'",
            params.get("direction").unwrap_or_default()
        ))),
    }
}

/// A step as Loki takes it: float seconds or a duration (`1m0s`, `60000ms`).
fn parse_step(value: &str) -> Result<i64, PlainError> {
    let ns = match value.parse::<f64>() {
        Ok(seconds) => (seconds * 1e9).round() as i64,
        Err(_) => vigil_logql::units::parse_duration(value)
            .map_err(|_| bad(format!("invalid step parameter: cannot parse {value:?}")))?,
    };
    if ns <= 0 {
        return Err(bad(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    Ok(ns)
}

/// Loki's default step: the range over 250 points, at least one second.
fn default_step(start: i64, end: i64) -> i64 {
    let seconds = ((end - start) as f64 / 1e9 / 250.0).ceil().max(1.0);
    seconds as i64 * 1_000_000_000
}

/// `GET|POST /loki/api/v1/query_range`.
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
    let expr = parse_logql(params.get("query").unwrap_or(""))?;
    let limit = parse_limit(&params)?;
    let forward = parse_direction(&params)?;
    if end < start {
        return Err(bad(
            "end timestamp must not be before or equal to start time",
        ));
    }
    match expr {
        Expr::Log(log) => {
            let limits = query_limits(&state);
            let categorize = categorize_labels(&headers);
            let (answer, stats) = run_blocking(&state, tenant, move |src| {
                let streams =
                    vigil_logql::eval_log_query(&log, src, start, end, limit, forward, limits)?;
                Ok(StreamsAnswer::render(streams, categorize))
            })
            .await?;
            Ok(json_response_text(answer.finish(&stats)))
        }
        Expr::Metric(metric) => {
            let step = match params.get("step") {
                Some(v) if !v.is_empty() => parse_step(v)?,
                _ => default_step(start, end),
            };
            if (end - start) / step > MAX_POINTS {
                return Err(bad("exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter"));
            }
            // Loki evaluates at multiples of the step.
            let steps = Steps {
                start_ns: start - start.rem_euclid(step),
                end_ns: end - end.rem_euclid(step),
                step_ns: step,
            };
            let limits = query_limits(&state);
            let (value, stats) = run_blocking(&state, tenant, move |src| {
                vigil_logql::eval_metric_query(&metric, src, steps, limits)
            })
            .await?;
            Ok(json_response_text(matrix_body(&value, steps, &stats)))
        }
    }
}

/// `GET|POST /loki/api/v1/query`: metric queries at one instant.
pub(crate) async fn query(
    State(state): State<AppState>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PlainError> {
    let tenant = tenant(&headers)?;
    let params = Params::from_request(&method, query.0, &headers, body)
        .await
        .map_err(|e| PlainError::new(e.kind, e.message))?;
    let time = match params.get("time") {
        Some(v) if !v.is_empty() => parse_loki_time("time", v)?,
        _ => vigil_db::now_ns(),
    };
    let expr = parse_logql(params.get("query").unwrap_or(""))?;
    parse_limit(&params)?;
    parse_direction(&params)?;
    let Expr::Metric(metric) = expr else {
        return Err(bad("log queries are not supported as an instant query type, please change your query to a range query type"));
    };
    let steps = Steps::instant(time);
    let limits = query_limits(&state);
    let (value, stats) = run_blocking(&state, tenant, move |src| {
        vigil_logql::eval_metric_query(&metric, src, steps, limits)
    })
    .await?;
    Ok(json_response_text(vector_body(&value, time, &stats)))
}

fn json_response_text(body: String) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Seconds as Loki writes sample timestamps: a JSON number, fractional only when needed.
fn push_seconds(out: &mut String, ns: i64) {
    // Loki evaluates at millisecond times (the nanoseconds truncated) and writes them as
    // Prometheus' model.Time does: the shortest decimal of ms / 1000.
    let ms = ns.div_euclid(1_000_000);
    let _ = write!(out, "{}", ms as f64 / 1000.0);
}

const STATS: &str = r#""stats":{}"#;

/// Whether the client asked for Loki 3's categorized labels (`X-Loki-Response-Encoding-Flags:
/// categorize-labels`, as Grafana sends): stream labels stay the stored ones and each entry
/// carries its structured metadata and parsed labels.
fn categorize_labels(headers: &HeaderMap) -> bool {
    headers
        .get_all("X-Loki-Response-Encoding-Flags")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|flag| flag.trim() == "categorize-labels")
}

fn push_pairs(out: &mut String, pairs: &[(String, String)]) {
    push_label_pairs(out, pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

/// The `result` array of a streams answer.
fn push_streams(out: &mut String, streams: &[StreamResult], categorize: bool) {
    out.push('[');
    let groups = stream_groups(streams, categorize);
    push_stream_groups(out, &groups, categorize);
    out.push(']');
}

/// One stream of a streams answer: its labels and its entries, each with the labels it had
/// after the pipeline.
type StreamGroup<'a> = (
    Cow<'a, PackedLabels>,
    Vec<(&'a ResultEntry, &'a PackedLabels)>,
);

/// The streams of an answer: as the engine grouped them, or with categorized labels by the
/// stored stream, keeping the answer's order inside each stream.
fn stream_groups(streams: &[StreamResult], categorize: bool) -> Vec<StreamGroup<'_>> {
    if categorize {
        let mut by_stream: BTreeMap<&Labels, Vec<(&ResultEntry, &PackedLabels)>> = BTreeMap::new();
        for s in streams {
            for e in &s.entries {
                by_stream.entry(&e.stream).or_default().push((e, &s.labels));
            }
        }
        by_stream
            .into_iter()
            .map(|(stream, entries)| (Cow::Owned(PackedLabels::of(stream)), entries))
            .collect()
    } else {
        streams
            .iter()
            .map(|s| {
                (
                    Cow::Borrowed(&s.labels),
                    s.entries.iter().map(|e| (e, &s.labels)).collect(),
                )
            })
            .collect()
    }
}

/// Streams of a streams answer, comma-separated.
fn push_stream_groups(out: &mut String, groups: &[StreamGroup<'_>], categorize: bool) {
    for (i, (labels, entries)) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"stream":"#);
        push_label_pairs(out, labels.iter());
        out.push_str(r#","values":["#);
        for (j, (e, line_labels)) in entries.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("[\"");
            out.push_str(itoa::Buffer::new().format(e.timestamp_ns));
            out.push_str("\",");
            push_json_str(out, &e.line);
            if categorize {
                let parsed = e.parsed(line_labels);
                if !e.structured_metadata.is_empty() || !parsed.is_empty() {
                    out.push_str(",{");
                    let mut sep = "";
                    if !e.structured_metadata.is_empty() {
                        out.push_str(r#""structuredMetadata":"#);
                        push_pairs(out, &e.structured_metadata);
                        sep = ",";
                    }
                    if !parsed.is_empty() {
                        out.push_str(sep);
                        out.push_str(r#""parsed":"#);
                        push_pairs(out, &parsed);
                    }
                    out.push('}');
                }
            }
            out.push(']');
        }
        out.push_str("]}");
    }
}

/// Streams in an answer from which rendering them is split over the cores.
const PARALLEL_RENDER_STREAMS: usize = 64;

/// A log query's answer rendered up to its `stats`, which are known once it is.
struct StreamsAnswer {
    body: String,
    entries: usize,
    categorize: bool,
}

impl StreamsAnswer {
    /// Renders the streams (an answer of many streams on every core) and frees them on a
    /// thread of the blocking pool rather than before the answer goes out.
    fn render(streams: Vec<StreamResult>, categorize: bool) -> Self {
        let mut body = String::with_capacity(1024);
        body.push_str(r#"{"status":"success","data":{"resultType":"streams","result":["#);
        let groups = stream_groups(&streams, categorize);
        if groups.len() >= PARALLEL_RENDER_STREAMS {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let parts = vigil_promql::map_runs(&groups, cores, |_, run| {
                let mut part = String::new();
                push_stream_groups(&mut part, run, categorize);
                part
            });
            body.reserve(parts.iter().map(|p| p.len() + 1).sum());
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(part);
            }
        } else {
            push_stream_groups(&mut body, &groups, categorize);
        }
        body.push(']');
        let entries = streams.iter().map(|s| s.entries.len()).sum();
        drop(groups);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || drop(streams));
        }
        Self {
            body,
            entries,
            categorize,
        }
    }

    fn finish(mut self, stats: &QueryStats) -> String {
        if self.categorize {
            self.body
                .push_str(r#","encodingFlags":["categorize-labels"]"#);
        }
        self.body.push(',');
        self.body.push_str(&stats.json(self.entries));
        self.body.push_str("}}");
        self.body
    }
}

fn matrix_body(value: &MetricValue, steps: Steps, stats: &QueryStats) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
    let scalar_series;
    let series: &[vigil_logql::StepSeries] = match value {
        MetricValue::Vector(s) => s,
        MetricValue::Scalar(values) => {
            scalar_series = [vigil_logql::StepSeries {
                labels: Labels::from_sorted(Vec::new()),
                values: values.iter().map(|v| Some(*v)).collect(),
            }];
            &scalar_series
        }
    };
    let mut first = true;
    let mut returned = 0;
    for s in series {
        if s.values.iter().all(Option::is_none) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        returned += 1;
        out.push_str(r#"{"metric":"#);
        push_labels(&mut out, &s.labels);
        out.push_str(r#","values":["#);
        let mut first_point = true;
        for (i, v) in s.values.iter().enumerate() {
            let Some(v) = v else { continue };
            if !first_point {
                out.push(',');
            }
            first_point = false;
            out.push('[');
            push_seconds(&mut out, steps.at(i));
            out.push_str(",\"");
            out.push_str(&go_float(*v));
            out.push_str("\"]");
        }
        out.push_str("]}");
    }
    out.push_str("],");
    out.push_str(&stats.json(returned));
    out.push_str("}}");
    out
}

fn vector_body(value: &MetricValue, time_ns: i64, stats: &QueryStats) -> String {
    let mut out = String::with_capacity(256);
    let mut returned = 1;
    match value {
        MetricValue::Scalar(values) => {
            out.push_str(r#"{"status":"success","data":{"resultType":"scalar","result":["#);
            out.push_str(&(time_ns.div_euclid(1_000_000)).to_string());
            out.push_str(",\"");
            out.push_str(&go_float(values.first().copied().unwrap_or(f64::NAN)));
            out.push_str("\"],");
        }
        MetricValue::Vector(series) => {
            out.push_str(r#"{"status":"success","data":{"resultType":"vector","result":["#);
            let mut first = true;
            returned = 0;
            for s in series {
                let Some(Some(v)) = s.values.first() else {
                    continue;
                };
                if !first {
                    out.push(',');
                }
                first = false;
                returned += 1;
                out.push_str(r#"{"metric":"#);
                push_labels(&mut out, &s.labels);
                out.push_str(r#","value":["#);
                push_seconds(&mut out, time_ns);
                out.push_str(",\"");
                out.push_str(&go_float(*v));
                out.push_str("\"]}");
            }
            out.push_str("],");
        }
    }
    out.push_str(&stats.json(returned));
    out.push_str("}}");
    out
}

/// `GET|POST /loki/api/v1/format_query`: the query in Loki's canonical form.
pub(crate) async fn format_query(
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PlainError> {
    let params = Params::from_request(&method, query.0, &headers, body)
        .await
        .map_err(|e| PlainError::new(e.kind, e.message))?;
    let expr = parse_logql(params.get("query").unwrap_or(""))?;
    Ok(json_response(
        serde_json::json!({"status": "success", "data": expr.to_string()}),
    ))
}

/// `GET /loki/api/v1/status/buildinfo`.
pub(crate) async fn buildinfo() -> Response {
    json_response(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "rust",
    }))
}

/// The stream selector of a `query` parameter that must be a plain log query.
fn selector_param(params: &Params) -> Result<Vec<Matcher>, PlainError> {
    match parse_logql(params.get("query").unwrap_or(""))? {
        Expr::Log(log) => Ok(log.selector),
        Expr::Metric(_) => Err(bad("only log queries (stream selectors) are accepted here")),
    }
}

/// `GET|POST /loki/api/v1/index/stats`: streams, chunks, bytes and entries in range.
pub(crate) async fn index_stats(
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
    let selector = selector_param(&params)?;
    let db = state.db()?.clone();
    let groups =
        line_bytes_sums(&db, &tenant, &selector, start, end, whole_range(start, end)).await?;
    let (mut entries, mut bytes) = (0u64, 0u64);
    let mut streams: HashSet<&Labels> = HashSet::new();
    for g in &groups {
        let count: u64 = g.sums.counts.iter().sum();
        if count > 0 {
            streams.insert(&g.labels);
        }
        entries += count;
        bytes += g.sums.sums.iter().sum::<u64>();
    }
    Ok(json_response(serde_json::json!({
        "streams": streams.len(),
        "chunks": streams.len(),
        "bytes": bytes,
        "entries": entries,
    })))
}

/// One window over `[start, end)`.
fn whole_range(start: i64, end: i64) -> LogWindows {
    LogWindows {
        first_end_ns: end.saturating_sub(1),
        step_ns: 1,
        steps: 1,
        range_ns: end.saturating_sub(start).max(1),
    }
}

/// Entries and line bytes per window of the streams `selector` picks in `[start, end)`, per
/// stream (and structured metadata): storage sums them without decoding lines (block line
/// lengths have a column of their own).
async fn line_bytes_sums(
    db: &Db,
    tenant: &TenantId,
    selector: &[Matcher],
    start: i64,
    end: i64,
    windows: LogWindows,
) -> Result<Vec<LogWindowSums>, PlainError> {
    db.select_log_window_sums(
        tenant,
        selector,
        (start, end.saturating_sub(1)),
        LogReadFilter::default(),
        LogSampleValue::LineBytes,
        windows,
    )
    .await
    .map_err(db_error)
}

/// Bytes per group of streams for `index/volume` and `volume_range`.
struct VolumeRequest {
    tenant: TenantId,
    selector: Vec<Matcher>,
    start: i64,
    end: i64,
    limit: usize,
    /// Group by these labels; by the selector's label names when `targetLabels` is absent.
    target: Vec<String>,
    step: i64,
}

impl VolumeRequest {
    /// The start of the step-aligned bucket holding `start`; bucket `i` is reported at its end,
    /// `first_bucket() + (i + 1) * step`.
    fn first_bucket(&self) -> i64 {
        self.start - self.start.rem_euclid(self.step)
    }
}

async fn volume_request(
    method: Method,
    query: RawQuery,
    headers: &HeaderMap,
    body: Body,
) -> Result<VolumeRequest, PlainError> {
    let ReadRequest {
        tenant,
        params,
        start,
        end,
    } = read_request(method, query, headers, body).await?;
    let selector = selector_param(&params)?;
    let limit = match params.get("limit") {
        Some(v) if !v.is_empty() => v
            .parse()
            .map_err(|_| bad(format!("invalid limit parameter: {v:?}")))?,
        _ => 100,
    };
    let aggregate_by_labels = params.get("aggregateBy") == Some("labels");
    let target: Vec<String> = match params.get("targetLabels") {
        Some(t) if !t.is_empty() => t.split(',').map(|s| s.trim().to_string()).collect(),
        _ if aggregate_by_labels => Vec::new(),
        _ => {
            let mut names: Vec<String> = selector.iter().map(|m| m.name.clone()).collect();
            names.dedup();
            names
        }
    };
    let step = match params.get("step") {
        Some(v) if !v.is_empty() => parse_step(v)?,
        _ => default_step(start, end),
    };
    Ok(VolumeRequest {
        tenant,
        selector,
        start,
        end,
        limit,
        target,
        step,
    })
}

/// A volume request and its entries' line bytes, over the whole range or per bucket of `step`
/// ([`VolumeRequest::first_bucket`]).
async fn volume_sums(
    state: &AppState,
    method: Method,
    query: RawQuery,
    headers: &HeaderMap,
    body: Body,
    by_step: bool,
) -> Result<(VolumeRequest, Vec<LogWindowSums>), PlainError> {
    let req = volume_request(method, query, headers, body).await?;
    let db = state.db()?.clone();
    let windows = if by_step {
        let first = req.first_bucket();
        let last = req.end.saturating_sub(1).max(req.start);
        // As for metric queries (and Loki): then at most MAX_POINTS + 2 buckets.
        if (req.end - req.start) / req.step > MAX_POINTS {
            return Err(bad("exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter"));
        }
        let buckets = usize::try_from((last - first).div_euclid(req.step) + 1).unwrap_or(0);
        LogWindows {
            first_end_ns: first + req.step - 1,
            step_ns: req.step,
            steps: buckets,
            range_ns: req.step,
        }
    } else {
        whole_range(req.start, req.end)
    };
    let groups =
        line_bytes_sums(&db, &req.tenant, &req.selector, req.start, req.end, windows).await?;
    Ok((req, groups))
}

fn volume_key(labels: &Labels, target: &[String]) -> Labels {
    Labels::from_sorted(
        labels
            .iter()
            .filter(|l| target.is_empty() || target.contains(&l.name))
            .cloned()
            .collect(),
    )
}

/// `GET|POST /loki/api/v1/index/volume`: uncompressed bytes per stream group, largest first.
pub(crate) async fn volume(
    State(state): State<AppState>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PlainError> {
    let (req, groups) = volume_sums(&state, method, query, &headers, body, false).await?;
    let mut totals: BTreeMap<Labels, u64> = BTreeMap::new();
    for g in &groups {
        if g.sums.counts.iter().sum::<u64>() == 0 {
            continue;
        }
        *totals
            .entry(volume_key(&g.labels, &req.target))
            .or_default() += g.sums.sums.iter().sum::<u64>();
    }
    let mut ranked: Vec<(Labels, u64)> = totals.into_iter().collect();
    ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
    ranked.truncate(req.limit);
    let mut out = String::from(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    for (i, (labels, bytes)) in ranked.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"metric":"#);
        push_labels(&mut out, labels);
        out.push_str(r#","value":["#);
        push_seconds(&mut out, req.end - req.end.rem_euclid(1_000_000_000));
        out.push_str(&format!(",\"{bytes}\"]}}"));
    }
    out.push_str("],");
    out.push_str(STATS);
    out.push_str("}}");
    Ok(json_response_text(out))
}

/// `GET|POST /loki/api/v1/index/volume_range`: the same per step.
pub(crate) async fn volume_range(
    State(state): State<AppState>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PlainError> {
    let (req, groups) = volume_sums(&state, method, query, &headers, body, true).await?;
    let (step, first) = (req.step, req.first_bucket());
    let mut totals: BTreeMap<Labels, BTreeMap<i64, u64>> = BTreeMap::new();
    for g in &groups {
        if g.sums.counts.iter().sum::<u64>() == 0 {
            continue;
        }
        let per_step = totals
            .entry(volume_key(&g.labels, &req.target))
            .or_default();
        for (i, (&count, &bytes)) in g.sums.counts.iter().zip(&g.sums.sums).enumerate() {
            if count > 0 {
                // Each entry counts at the step that ends its bucket.
                *per_step.entry(first + (i as i64 + 1) * step).or_default() += bytes;
            }
        }
    }
    let mut ranked: Vec<(Labels, BTreeMap<i64, u64>)> = totals.into_iter().collect();
    ranked.sort_by_key(|r| std::cmp::Reverse(r.1.values().sum::<u64>()));
    ranked.truncate(req.limit);
    let mut out = String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
    for (i, (labels, points)) in ranked.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"metric":"#);
        push_labels(&mut out, labels);
        out.push_str(r#","values":["#);
        for (j, (t, bytes)) in points.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push('[');
            push_seconds(&mut out, *t);
            out.push_str(&format!(",\"{bytes}\"]"));
        }
        out.push_str("]}");
    }
    out.push_str("],");
    out.push_str(STATS);
    out.push_str("}}");
    Ok(json_response_text(out))
}

/// `GET /loki/api/v1/tail` (websocket): the recent lines from `start` (default 1h ago, at
/// most `limit`), then every new matching line as it is acknowledged, as Loki's
/// `{"streams":[...]}` messages.
pub(crate) async fn tail(
    State(state): State<AppState>,
    ws: WebSocketUpgrade,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<Response, PlainError> {
    let tenant = tenant(&headers)?;
    let params = Params::from_request(&Method::GET, query.0, &headers, Body::empty())
        .await
        .map_err(|e| PlainError::new(e.kind, e.message))?;
    let Expr::Log(log) = parse_logql(params.get("query").unwrap_or(""))? else {
        return Err(bad("tail requires a log query"));
    };
    let limit = parse_limit(&params)?;
    let now = vigil_db::now_ns();
    let start = match params.get("start") {
        Some(v) if !v.is_empty() => parse_loki_time("start", v)?,
        _ => now - TAIL_DEFAULT_SINCE_NS,
    };
    state.db()?;
    Ok(ws.on_upgrade(move |socket| run_tail(socket, state, tenant, log, start, limit)))
}

async fn run_tail(
    mut socket: WebSocket,
    state: AppState,
    tenant: TenantId,
    log: vigil_logql::ast::LogExpr,
    start: i64,
    limit: usize,
) {
    let log = Arc::new(log);
    // Lines already sent at the newest timestamp seen, so the next poll does not repeat them.
    let mut last_ts = start;
    let mut sent_at_last: HashSet<(PackedLabels, String)> = HashSet::new();
    let mut first = true;
    loop {
        let end = vigil_db::now_ns() + 1;
        let (from, batch_limit, forward) = if first {
            (start, limit, false)
        } else {
            (last_ts, MAX_ENTRIES_LIMIT, true)
        };
        let query = log.clone();
        let limits = query_limits(&state);
        let result = run_blocking(&state, tenant.clone(), move |src| {
            vigil_logql::eval_log_query(&query, src, from, end, batch_limit, forward, limits)
        })
        .await;
        let streams = match result {
            Ok((s, _)) => s,
            Err(e) => {
                let _ = socket.send(Message::Close(None)).await;
                tracing::debug!(error = %e.message, "tail query failed");
                return;
            }
        };
        let mut fresh: Vec<StreamResult> = Vec::new();
        let mut newest = last_ts;
        for s in streams {
            let mut entries: Vec<ResultEntry> = s
                .entries
                .into_iter()
                .filter(|e| {
                    e.timestamp_ns > last_ts
                        || (e.timestamp_ns == last_ts
                            && !sent_at_last.contains(&(s.labels.clone(), e.line.clone())))
                })
                .collect();
            entries.sort_by_key(|e| e.timestamp_ns);
            if let Some(e) = entries.last() {
                newest = newest.max(e.timestamp_ns);
            }
            if !entries.is_empty() {
                fresh.push(StreamResult {
                    labels: s.labels,
                    entries,
                });
            }
        }
        if newest > last_ts {
            sent_at_last.clear();
            last_ts = newest;
        }
        for s in &fresh {
            for e in &s.entries {
                if e.timestamp_ns == last_ts {
                    sent_at_last.insert((s.labels.clone(), e.line.clone()));
                }
            }
        }
        if !fresh.is_empty() || first {
            let message = tail_message(&fresh);
            if socket.send(Message::Text(message.into())).await.is_err() {
                return;
            }
        }
        first = false;
        tokio::select! {
            _ = tokio::time::sleep(TAIL_POLL) => {}
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

fn tail_message(streams: &[StreamResult]) -> String {
    let mut out = String::from(r#"{"streams":"#);
    push_streams(&mut out, streams, false);
    out.push_str(r#","dropped_entries":null}"#);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_as_loki_does() {
        assert_eq!(parse_step("60").unwrap(), 60_000_000_000);
        assert_eq!(parse_step("0.5").unwrap(), 500_000_000);
        assert!(parse_step("0").is_err());
        assert_eq!(default_step(0, 3600 * 1_000_000_000), 15_000_000_000);
    }

    #[test]
    fn sample_times_are_seconds() {
        let mut s = String::new();
        push_seconds(&mut s, 1_793_491_260_000_000_000);
        assert_eq!(s, "1793491260");
        s.clear();
        push_seconds(&mut s, 1_793_491_260_500_000_000);
        assert_eq!(s, "1793491260.5");
        // Below a millisecond: truncated, never a bare trailing dot.
        s.clear();
        push_seconds(&mut s, 1_795_923_442_000_400_000);
        assert_eq!(s, "1795923442");
        s.clear();
        push_seconds(&mut s, 1_795_923_442_123_999_999);
        assert_eq!(s, "1795923442.123");
    }
}
