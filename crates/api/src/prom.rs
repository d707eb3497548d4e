//! The Prometheus HTTP API endpoints that read series and labels, in Prometheus' exact shapes.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method};
use axum::Json;
use serde_json::{json, Value};
use vigil_model::Matcher;

use crate::error::ApiError;
use crate::selector::parse_selector;
use crate::write::read_body;
use crate::{tenant, AppState};

/// Form parameters from the query string and, for form-encoded POSTs, the body.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) async fn from_request(
        method: &Method,
        query: Option<String>,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Self, ApiError> {
        let mut pairs = parse_form(query.as_deref().unwrap_or(""));
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if method == Method::POST && is_form {
            let body = read_body(body, 16 << 20).await?;
            pairs.extend(parse_form(&String::from_utf8_lossy(&body)));
        }
        Ok(Self(pairs))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Prometheus' time parameter: unix seconds (fractional) or RFC 3339. Returns milliseconds.
pub(crate) fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() {
            return Ok((seconds * 1000.0).round() as i64);
        }
    }
    parse_rfc3339(value).ok_or_else(|| {
        ApiError::bad_data(format!(
            "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid timestamp"
        ))
    })
}

/// An optional time parameter as Prometheus' `parseTimeParam` reads it (query `time`, series
/// and labels `start`/`end`, exemplars): `None` when absent or empty, errors wrapped as
/// `invalid parameter "x": invalid time value for 'x': ...`.
pub(crate) fn parse_time_param(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    match params.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => parse_time(name, value).map(Some).map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"{name}\": invalid time value for '{name}': cannot parse \"{value}\" to a valid timestamp"
            ))
        }),
    }
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut pos = 19;
    let mut millis = 0i64;
    if b.get(pos) == Some(&b'.') {
        let start = pos + 1;
        pos = start;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        let frac = s.get(start..pos)?;
        let padded = format!("{:0<3}", &frac[..frac.len().min(3)]);
        millis = padded.parse().ok()?;
    }
    let offset_minutes = match b.get(pos)? {
        b'Z' | b'z' => 0,
        b'+' | b'-' => {
            let sign = if b[pos] == b'-' { -1 } else { 1 };
            sign * (num(pos + 1..pos + 3)? * 60 + num(pos + 4..pos + 6)?)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(
        ((days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60) * 1000)
            + millis,
    )
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

struct Common {
    matcher_sets: Vec<Vec<Matcher>>,
    start: i64,
    end: i64,
    limit: Option<usize>,
}

fn common(params: &Params) -> Result<Common, ApiError> {
    let start = parse_time_param(params, "start")?.unwrap_or(i64::MIN);
    let end = parse_time_param(params, "end")?.unwrap_or(i64::MAX);
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let matcher_sets = params
        .all("match[]")
        .into_iter()
        .map(|m| {
            parse_selector(m)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let limit = limit_param(params)?;
    Ok(Common {
        matcher_sets,
        start,
        end,
        limit,
    })
}

fn success(data: Value, truncated: bool) -> Json<Value> {
    if truncated {
        Json(
            json!({"status": "success", "data": data, "warnings": ["results truncated due to limit"]}),
        )
    } else {
        Json(json!({"status": "success", "data": data}))
    }
}

/// The `limit` parameter: `None` when absent, empty or 0 (no limit).
pub(crate) fn limit_param(params: &Params) -> Result<Option<usize>, ApiError> {
    match params.get("limit").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n < 0 => Err(ApiError::bad_data(
                "invalid parameter \"limit\": limit must be non-negative",
            )),
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n as usize)),
            Err(_) => Err(ApiError::bad_data(format!(
                "invalid parameter \"limit\": cannot parse \"{v}\" to a valid integer"
            ))),
        },
    }
}

/// Keeps at most `limit` items; also says whether any were cut.
pub(crate) fn apply_limit<T>(mut items: Vec<T>, limit: Option<usize>) -> (Vec<T>, bool) {
    match limit {
        Some(n) if items.len() > n => {
            items.truncate(n);
            (items, true)
        }
        _ => (items, false),
    }
}

/// What the series and label endpoints start from: tenant, storage, common parameters.
struct Scope {
    tenant: vigil_model::TenantId,
    db: std::sync::Arc<vigil_db::Db>,
    c: Common,
}

async fn scope(
    state: &AppState,
    method: &Method,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Scope, ApiError> {
    let params = Params::from_request(method, query, headers, body).await?;
    let tenant = tenant(headers)?;
    let db = state.db()?.clone();
    let c = common(&params)?;
    Ok(Scope { tenant, db, c })
}

pub(crate) async fn series(
    State(state): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let Scope { tenant, db, c } = scope(&state, &method, query, &headers, body).await?;
    if c.matcher_sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let series = db.series(&tenant, &c.matcher_sets, c.start, c.end);
    let (series, truncated) = apply_limit(series, c.limit);
    let data: Vec<serde_json::Map<String, Value>> = series
        .iter()
        .map(|labels| {
            labels
                .iter()
                .map(|l| (l.name.clone(), Value::String(l.value.clone())))
                .collect()
        })
        .collect();
    Ok(success(json!(data), truncated))
}

pub(crate) async fn labels(
    State(state): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let Scope { tenant, db, c } = scope(&state, &method, query, &headers, body).await?;
    let (names, truncated) = apply_limit(
        db.label_names(&tenant, &c.matcher_sets, c.start, c.end),
        c.limit,
    );
    Ok(success(json!(names), truncated))
}

pub(crate) async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let Scope { tenant, db, c } = scope(&state, &method, query, &headers, body).await?;
    // Label names in Prometheus' legacy charset (UTF-8 names are not supported yet).
    if name.is_empty()
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        || name.starts_with(|ch: char| ch.is_ascii_digit())
    {
        return Err(ApiError::bad_data(format!(
            "invalid label name: \"{name}\""
        )));
    }
    let (values, truncated) = apply_limit(
        db.label_values(&tenant, &name, &c.matcher_sets, c.start, c.end),
        c.limit,
    );
    Ok(success(json!(values), truncated))
}

pub(crate) async fn metadata(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let params = Params(parse_form(query.as_deref().unwrap_or("")));
    let tenant = tenant(&headers)?;
    let db = state.db()?;
    let metric = params.get("metric").filter(|m| !m.is_empty());
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let mut data = serde_json::Map::new();
    for (family, meta) in db.metadata(&tenant) {
        if metric.is_some_and(|m| m != family) {
            continue;
        }
        if limit.is_some_and(|l| data.len() >= l) {
            break;
        }
        data.insert(
            family,
            json!([{"type": meta.metric_type, "help": meta.help, "unit": meta.unit}]),
        );
    }
    Ok(success(Value::Object(data), false))
}

pub(crate) async fn buildinfo() -> Json<Value> {
    // No `features` field: Grafana would take a non-empty one to mean Mimir with a ruler API.
    success(
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "rust",
            "application": "vigil"
        }),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_prometheus_does() {
        assert_eq!(parse_time("t", "1700000000.5").unwrap(), 1_700_000_000_500);
        assert_eq!(
            parse_time("t", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("t", "2023-11-14T23:13:20.250+01:00").unwrap(),
            1_700_000_000_250
        );
        assert!(parse_time("t", "yesterday").is_err());
    }

    #[test]
    fn form_values_are_percent_decoded() {
        let p = Params(parse_form("match%5B%5D=up%7Bjob%3D%22a%22%7D&x=a+b"));
        assert_eq!(p.all("match[]"), vec!["up{job=\"a\"}"]);
        assert_eq!(p.get("x"), Some("a b"));
    }
}
