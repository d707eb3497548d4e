//! The Prometheus query API (`/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`,
//! `/api/v1/query_exemplars`) against a real Prometheus 3.x (Debian's package, unpacked by
//! `scripts/install-prometheus3.sh`): both get the same small data set by remote-write (a counter
//! with a reset, gauges, NaN, ±Inf, a series ended by a stale marker, a classic histogram), then
//! every request of a table is sent to both, as a GET and as a form-encoded POST, and the HTTP
//! status, the content type and the JSON (including `warnings` and `infos`, the PromQL
//! annotations, word for word) must be identical. Vigil's answers are also checked for
//! Prometheus' envelope shape (keys and JSON types).
//!
//! Allowed differences, each with its reason where it is applied:
//! - instant vectors compared as sets (no defined order except after `sort*`) ([`normalise`]);
//! - the order in which a many-to-many error names the duplicate series ([`Case::allow`]).
//!
//! The samples sit on the evaluation grid, so range selectors, lookback windows and subquery
//! steps start exactly on samples: 3.x's left-open windows are exercised, not avoided.
//!
//! All mismatches are collected and printed with the request and both answers; the test fails at
//! the end if there was any.

mod common;

use std::time::Duration;

use serde_json::Value;
use vigil_proto::prometheus::WriteRequest;

use common::data::{labels, request, series, LabelSet, STALE_NAN_BITS};
use common::http::{encode_snappy, urlencode, Client, Response, REMOTE_WRITE_HEADERS};
use common::process::VigilOpts;
use common::prometheus::Prometheus;
use common::{free_port, now_ms, require_prometheus3, wait_for, Vigil};

/// One sample every 15 s per series.
const STEP_MS: i64 = 15_000;
/// Samples per series: 20 minutes' worth.
const SAMPLES: i64 = 81;

/// The data set. `end_ms` is a full minute in the past and the last sample's time; the first
/// sample is 20 minutes earlier.
fn dataset(end_ms: i64) -> WriteRequest {
    let first = end_ms - (SAMPLES - 1) * STEP_MS;
    let ts = |i: i64| first + i * STEP_MS;
    let make = |set: LabelSet, value: &dyn Fn(i64) -> Option<f64>| {
        let samples: Vec<(i64, f64)> = (0..SAMPLES)
            .filter_map(|i| value(i).map(|v| (ts(i), v)))
            .collect();
        series(&set, &samples)
    };
    let stale = f64::from_bits(STALE_NAN_BITS);
    let mut out = vec![
        // Counters: i1 grows by 10 per sample; i2 by 5, reset to 0 at i = 50.
        make(
            labels("test_counter_total", &[("instance", "i1"), ("job", "a")]),
            &|i| Some(10.0 * i as f64),
        ),
        make(
            labels("test_counter_total", &[("instance", "i2"), ("job", "a")]),
            &|i| Some(5.0 * (if i < 50 { i } else { i - 50 }) as f64),
        ),
        // Gauges with decimal values (0.1 * i prints as 0.30000000000000004 and the like).
        make(
            labels("test_gauge", &[("instance", "i1"), ("job", "a")]),
            &|i| Some(0.1 * i as f64),
        ),
        make(
            labels("test_gauge", &[("instance", "i2"), ("job", "a")]),
            &|i| Some(100.0 - 2.5 * i as f64),
        ),
        // Special values.
        make(labels("test_special", &[("kind", "nan")]), &|_| {
            Some(f64::NAN)
        }),
        make(labels("test_special", &[("kind", "pinf")]), &|_| {
            Some(f64::INFINITY)
        }),
        make(labels("test_special", &[("kind", "ninf")]), &|_| {
            Some(f64::NEG_INFINITY)
        }),
        // Float formatting: Go's strconv 'f' format, no exponent.
        make(labels("test_format", &[("kind", "big")]), &|_| Some(1.5e21)),
        make(labels("test_format", &[("kind", "small")]), &|_| {
            Some(1.25e-7)
        }),
        make(labels("test_format", &[("kind", "zero")]), &|_| Some(0.0)),
        make(labels("test_format", &[("kind", "third")]), &|_| {
            Some(1.0 / 3.0)
        }),
        // Ends with a stale marker at i = 71 (2 min 27 s before end_ms, inside the lookback).
        make(labels("test_stale", &[("job", "a")]), &|i| match i {
            0..=70 => Some(i as f64),
            71 => Some(stale),
            _ => None,
        }),
        make(labels("up", &[("instance", "i1"), ("job", "a")]), &|_| {
            Some(1.0)
        }),
    ];
    // A classic histogram: bucket rates 1, 3, 4, 5 per sample.
    for (le, per) in [("0.1", 1.0), ("0.5", 3.0), ("1", 4.0), ("+Inf", 5.0)] {
        out.push(make(
            labels("test_hist_bucket", &[("job", "a"), ("le", le)]),
            &move |i| Some(per * i as f64),
        ));
    }
    out.push(make(labels("test_hist_sum", &[("job", "a")]), &|i| {
        Some(1.75 * i as f64)
    }));
    out.push(make(labels("test_hist_count", &[("job", "a")]), &|i| {
        Some(5.0 * i as f64)
    }));
    request(out)
}

/// Prometheus 3.14's own test (promqltest operators.test:1027) names the two duplicate series in
/// the opposite order from 3.5 (and 2.42); Vigil follows the newer test.
const MANY_TO_MANY_ORDER: &str = "the two duplicate series are named in 3.14's order \
     (promqltest operators.test:1027), the reverse of 3.5's";

fn many_to_many_error() -> Value {
    serde_json::json!({
        "status": "error",
        "errorType": "execution",
        "error": "found duplicate series for the match group {job=\"a\"} on the right hand-side of the operation: [{__name__=\"test_counter_total\", instance=\"i1\", job=\"a\"}, {__name__=\"test_counter_total\", instance=\"i2\", job=\"a\"}];many-to-many matching not allowed: matching labels must be unique on one side"
    })
}

/// A case where Vigil answers differently from the reference Prometheus by design: Vigil's answer must be
/// exactly `vigil` (status and normalised JSON), and Prometheus' must still differ from it (so
/// the exception stays honest).
struct AllowedDifference {
    reason: &'static str,
    status: u16,
    json: Value,
}

/// One request of the table.
struct Case {
    name: String,
    path: &'static str,
    params: Vec<(String, String)>,
    allowed: Option<AllowedDifference>,
    /// Set for a case whose answer depends on the clock (time omitted): the timestamps are
    /// checked to be near now and then blanked.
    now_dependent: bool,
}

impl Case {
    fn new(name: &str, path: &'static str, params: &[(&str, &str)]) -> Case {
        Case {
            name: name.to_string(),
            path,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            allowed: None,
            now_dependent: false,
        }
    }

    fn allow(mut self, reason: &'static str, status: u16, json: Value) -> Case {
        self.allowed = Some(AllowedDifference {
            reason,
            status,
            json,
        });
        self
    }

    fn form(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn query(&self) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == "query")
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Method {
    Get,
    Post,
}

fn send(client: &Client, base: &str, case: &Case, method: Method) -> Response {
    let form = case.form();
    let result = match method {
        Method::Get => {
            let url = if form.is_empty() {
                format!("{base}{}", case.path)
            } else {
                format!("{base}{}?{form}", case.path)
            };
            client.get(&url, None)
        }
        Method::Post => client.post(
            &format!("{base}{}", case.path),
            None,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form.into_bytes(),
        ),
    };
    result.unwrap_or_else(|err| panic!("{} {method:?} {base}: {err}", case.name))
}

/// Normalises what legitimately differs between Vigil and Prometheus, the same way on both
/// sides: vector results are sorted by their metric (Prometheus defines no order for instant
/// vectors except after `sort`/`sort_desc`, which are left in order).
fn normalise(case: &Case, json: &mut Value) {
    let Some(object) = json.as_object_mut() else {
        return;
    };
    let query = case.query().trim_start();
    let ordered = query.starts_with("sort(") || query.starts_with("sort_desc(");
    if let Some(data) = object.get_mut("data") {
        if data["resultType"] == "vector" && !ordered {
            if let Some(result) = data["result"].as_array_mut() {
                result.sort_by_key(|item| item["metric"].to_string());
            }
        }
    }
}

/// Checks the envelope of a query API answer: `status`, and for success `data.resultType` and
/// `data.result` with Prometheus' JSON types (timestamps as numbers, values as strings, metrics
/// as maps of strings); for errors `errorType` and `error` strings.
fn check_envelope(path: &str, json: &Value) -> Result<(), String> {
    let object = json.as_object().ok_or("not a JSON object")?;
    let status = object
        .get("status")
        .and_then(Value::as_str)
        .ok_or("no string status")?;
    let point = |p: &Value| -> Result<(), String> {
        let pair = p
            .as_array()
            .ok_or_else(|| format!("point {p} is not a list"))?;
        if pair.len() != 2 || !pair[0].is_number() || !pair[1].is_string() {
            return Err(format!("point {p} is not [number, \"string\"]"));
        }
        Ok(())
    };
    let metric = |m: &Value| -> Result<(), String> {
        let map = m
            .as_object()
            .ok_or_else(|| format!("metric {m} is not a map"))?;
        if map.values().all(Value::is_string) {
            Ok(())
        } else {
            Err(format!("metric {m} has a non-string value"))
        }
    };
    for key in object.keys() {
        if !["status", "data", "warnings", "infos", "errorType", "error"].contains(&key.as_str()) {
            return Err(format!("unexpected top-level key {key:?}"));
        }
    }
    for key in ["warnings", "infos"] {
        if let Some(list) = object.get(key) {
            let list = list
                .as_array()
                .ok_or_else(|| format!("{key} is not a list"))?;
            if list.is_empty() || !list.iter().all(Value::is_string) {
                return Err(format!(
                    "{key} must be a non-empty list of strings if present"
                ));
            }
        }
    }
    match status {
        "error" => {
            for key in ["errorType", "error"] {
                if !object.get(key).is_some_and(Value::is_string) {
                    return Err(format!("error answer without a string {key}"));
                }
            }
            if object.contains_key("data") {
                return Err("error answer with data".into());
            }
            Ok(())
        }
        "success" => {
            let data = object.get("data").ok_or("no data")?;
            match path {
                "/api/v1/format_query" => {
                    if data.is_string() {
                        Ok(())
                    } else {
                        Err("format_query data is not a string".into())
                    }
                }
                "/api/v1/query_exemplars" => {
                    if data.is_array() {
                        Ok(())
                    } else {
                        Err("query_exemplars data is not a list".into())
                    }
                }
                _ => {
                    let data = data.as_object().ok_or("data is not an object")?;
                    if data.len() != 2 {
                        return Err(format!(
                            "data must have exactly resultType and result: {:?}",
                            data.keys().collect::<Vec<_>>()
                        ));
                    }
                    let result = data.get("result").ok_or("no data.result")?;
                    match data.get("resultType").and_then(Value::as_str) {
                        Some("scalar") | Some("string") => point(result),
                        Some("vector") => {
                            for item in result.as_array().ok_or("vector result not a list")? {
                                let item = item.as_object().ok_or("vector item not an object")?;
                                if item.len() != 2 {
                                    return Err("vector item must have metric and value".into());
                                }
                                metric(item.get("metric").ok_or("no metric")?)?;
                                point(item.get("value").ok_or("no value")?)?;
                            }
                            Ok(())
                        }
                        Some("matrix") => {
                            for item in result.as_array().ok_or("matrix result not a list")? {
                                let item = item.as_object().ok_or("matrix item not an object")?;
                                if item.len() != 2 {
                                    return Err("matrix item must have metric and values".into());
                                }
                                metric(item.get("metric").ok_or("no metric")?)?;
                                let values = item
                                    .get("values")
                                    .and_then(Value::as_array)
                                    .ok_or("no values list")?;
                                if values.is_empty() {
                                    return Err("matrix series without values".into());
                                }
                                for p in values {
                                    point(p)?;
                                }
                            }
                            Ok(())
                        }
                        other => Err(format!("bad resultType {other:?}")),
                    }
                }
            }
        }
        other => Err(format!("bad status {other:?}")),
    }
}

/// For a clock-dependent answer: checks every timestamp is within a minute of now and blanks it.
fn blank_now_timestamps(json: &mut Value, now_s: f64) -> Result<(), String> {
    fn visit(value: &mut Value, now_s: f64) -> Result<(), String> {
        match value {
            Value::Array(items) => {
                if items.len() == 2 && items[0].is_number() && items[1].is_string() {
                    let t = items[0].as_f64().unwrap_or_default();
                    if (t - now_s).abs() > 60.0 {
                        return Err(format!("timestamp {t} is not near now ({now_s})"));
                    }
                    items[0] = Value::String("<now>".into());
                    return Ok(());
                }
                for item in items {
                    visit(item, now_s)?;
                }
                Ok(())
            }
            Value::Object(map) => {
                for item in map.values_mut() {
                    visit(item, now_s)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    visit(json, now_s)
}

/// RFC 3339 (UTC, `Z`) of a Unix time in milliseconds, with a fraction if it has one.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil_from_days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if millis != 0 {
        out.push_str(&format!(".{millis:03}"));
    }
    out.push('Z');
    out
}

/// The table. `end_ms` is the data's evaluation grid end (a full minute).
fn cases(end_ms: i64) -> Vec<Case> {
    let s = |ms: i64| {
        if ms % 1000 == 0 {
            (ms / 1000).to_string()
        } else {
            format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
        }
    };
    let t = s(end_ms);
    let t_ms = s(end_ms - 60_000 + 123); // a time with milliseconds
    let start10 = s(end_ms - 600_000);
    let q = "/api/v1/query";
    let qr = "/api/v1/query_range";
    let fq = "/api/v1/format_query";
    let ex = "/api/v1/query_exemplars";
    let instant = |name: &str, query: &str| Case::new(name, q, &[("query", query), ("time", &t)]);
    let range = |name: &str, query: &str, step: &str| {
        Case::new(
            name,
            qr,
            &[
                ("query", query),
                ("start", &start10),
                ("end", &t),
                ("step", step),
            ],
        )
    };
    let mut cases = vec![
        // Instant queries.
        instant("instant vector", "test_gauge"),
        instant("instant vector, one series", r#"test_gauge{instance="i1"}"#),
        instant("counter", "test_counter_total"),
        instant("rate", "rate(test_counter_total[5m])"),
        instant("increase with reset", "increase(test_counter_total[5m])"),
        instant("sum by", "sum by (job) (test_gauge)"),
        instant("sort_desc keeps order", "sort_desc(test_gauge)"),
        instant("scalar", "1+1"),
        instant("scalar function", "scalar(test_gauge{instance=\"i1\"})"),
        instant("time()", "time()"),
        instant("string", r#""foo""#),
        instant("range vector", "up[5m]"),
        instant("range vector of gauge", "test_gauge[1m]"),
        instant("empty result", "no_such_metric"),
        instant("empty range vector", "no_such_metric[5m]"),
        instant("NaN, +Inf, -Inf", "test_special"),
        instant("negated specials", "-test_special"),
        instant("NaN scalar", "NaN"),
        instant("-Inf scalar", "-Inf"),
        instant("float formatting", "test_format"),
        instant("negative zero", "test_format{kind=\"zero\"} * -1"),
        instant("float arithmetic", "test_format / 7"),
        instant("stale marker hides the series", "test_stale"),
        instant("range vector stops at the stale marker", "test_stale[5m]"),
        instant(
            "histogram_quantile",
            "histogram_quantile(0.5, rate(test_hist_bucket[5m]))",
        ),
        instant(
            "histogram_quantile of sum",
            "histogram_quantile(0.9, sum by (le) (rate(test_hist_bucket[5m])))",
        ),
        instant(
            "histogram average",
            "rate(test_hist_sum[5m]) / rate(test_hist_count[5m])",
        ),
        instant("vector()", "vector(1)"),
        // PromQL annotations (`infos`, `warnings`), compared word for word.
        instant("rate of a gauge (info in 3.x)", "rate(test_gauge[5m])"),
        instant(
            "histogram_quantile without le (warning in 3.x)",
            "histogram_quantile(0.5, test_gauge)",
        ),
        instant(
            "quantile out of range (warning in 3.x)",
            "quantile(2, test_gauge)",
        ),
        instant("offset", "test_gauge offset 5m"),
        // The subquery's steps (multiples of 1m) fall on samples and on its range's left end.
        Case::new(
            "subquery",
            q,
            &[("query", "max_over_time(test_gauge[5m:1m])"), ("time", &t)],
        ),
        instant(
            "label_replace",
            r#"label_replace(up, "x", "$1", "job", "(.*)")"#,
        ),
        Case::new(
            "time with milliseconds",
            q,
            &[("query", "test_gauge"), ("time", &t_ms)],
        ),
        Case::new(
            "scalar at a time with milliseconds",
            q,
            &[("query", "time()"), ("time", &t_ms)],
        ),
        Case::new(
            "RFC 3339 time",
            q,
            &[("query", "test_gauge"), ("time", &rfc3339(end_ms))],
        ),
        Case::new(
            "RFC 3339 time with milliseconds",
            q,
            &[("query", "test_gauge"), ("time", &rfc3339(end_ms - 59_877))],
        ),
        // Instant query errors.
        Case::new("missing query", q, &[("time", &t)]),
        Case::new("empty query", q, &[("query", ""), ("time", &t)]),
        Case::new("bad time", q, &[("query", "up"), ("time", "abc")]),
        instant("parse error: foo{", "foo{"),
        instant("parse error: sum(", "sum("),
        instant("parse error: rate(foo)", "rate(foo)"),
        instant("parse error: 1 +", "1 +"),
        instant("parse error: foo[5m", "foo[5m"),
        instant("parse error: unknown function", "nosuchfunction(up)"),
        instant(
            "execution error: many-to-many",
            "test_gauge + on(job) test_counter_total",
        )
        .allow(MANY_TO_MANY_ORDER, 422, many_to_many_error()),
        instant(
            "execution error: duplicate labelset",
            r#"label_replace(test_gauge, "instance", "x", "", "")"#,
        ),
        instant(
            "execution error: function output with duplicate labelset",
            r#"count_over_time({job="a"}[5m])"#,
        ),
        instant(
            "duplicate labelset inside an aggregation",
            r#"count(count_over_time({job="a"}[5m]))"#,
        ),
        // Range queries.
        range("range: step in seconds", "test_gauge", "60"),
        range("range: step 15s", "test_gauge", "15s"),
        range("range: step 1m", "rate(test_counter_total[5m])", "1m"),
        range("range: fractional step", "test_counter_total", "90.5"),
        range("range: scalar", "1+1", "1m"),
        range("range: time()", "time()", "2m"),
        range("range: specials", "test_special", "1m"),
        range("range: stale marker ends the series", "test_stale", "30s"),
        range("range: empty", "no_such_metric", "1m"),
        range(
            "range: histogram_quantile",
            "histogram_quantile(0.5, rate(test_hist_bucket[5m]))",
            "1m",
        ),
        range("range: string is an error", r#""foo""#, "1m"),
        range("range: range vector is an error", "up[5m]", "1m"),
        range("range: parse error", "sum(", "1m"),
        range(
            "range: execution error",
            "test_gauge + on(job) test_counter_total",
            "1m",
        )
        .allow(MANY_TO_MANY_ORDER, 422, many_to_many_error()),
        Case::new(
            "range: RFC 3339 start and end",
            qr,
            &[
                ("query", "test_gauge"),
                ("start", &rfc3339(end_ms - 300_000)),
                ("end", &rfc3339(end_ms)),
                ("step", "1m"),
            ],
        ),
        Case::new(
            "range: millisecond start",
            qr,
            &[
                ("query", "test_gauge"),
                ("start", &s(end_ms - 300_000 + 250)),
                ("end", &t),
                ("step", "1m"),
            ],
        ),
        Case::new(
            "range: end before start",
            qr,
            &[
                ("query", "test_gauge"),
                ("start", &t),
                ("end", &start10),
                ("step", "60"),
            ],
        ),
        range("range: step 0", "test_gauge", "0"),
        range("range: negative step", "test_gauge", "-15"),
        range("range: negative duration step", "test_gauge", "-1m"),
        range("range: bad step", "test_gauge", "abc"),
        Case::new(
            "range: too many points",
            qr,
            &[
                ("query", "test_gauge"),
                ("start", &s(end_ms - 12_000_000)),
                ("end", &t),
                ("step", "1"),
            ],
        ),
        Case::new(
            "range: exactly 11000 steps",
            qr,
            &[
                ("query", "1"),
                ("start", &s(end_ms - 11_000_000)),
                ("end", &t),
                ("step", "1000"),
            ],
        ),
        Case::new(
            "range: missing query",
            qr,
            &[("start", &start10), ("end", &t), ("step", "60")],
        ),
        Case::new(
            "range: missing step",
            qr,
            &[("query", "up"), ("start", &start10), ("end", &t)],
        ),
        Case::new(
            "range: missing start",
            qr,
            &[("query", "up"), ("end", &t), ("step", "60")],
        ),
        Case::new(
            "range: bad end",
            qr,
            &[
                ("query", "up"),
                ("start", &start10),
                ("end", "xyz"),
                ("step", "60"),
            ],
        ),
        // format_query.
        Case::new("format: selector", fq, &[("query", r#"foo{b="2",a="1"}"#)]),
        Case::new(
            "format: aggregation",
            fq,
            &[("query", "sum   by(job)(rate(foo[5m]))")],
        ),
        Case::new(
            "format: precedence",
            fq,
            &[("query", "a + b * c / (d - e)")],
        ),
        Case::new(
            "format: long query is wrapped",
            fq,
            &[(
                "query",
                r#"histogram_quantile(0.99, sum by (le, job, instance) (rate(http_request_duration_seconds_bucket{job="api-server",handler!="/metrics"}[5m]))) > on (job) group_left () max by (job) (slo_threshold_seconds)"#,
            )],
        ),
        Case::new(
            "format: offset, @ and subquery",
            fq,
            &[("query", "max_over_time(foo[5m:30s] offset 1m @ 1700000000)")],
        ),
        Case::new("format: number and string", fq, &[("query", r#"1e3 + -2"#)]),
        Case::new("format: parse error", fq, &[("query", "foo{")]),
        Case::new("format: missing query", fq, &[]),
        // query_exemplars (no exemplars stored on either side).
        Case::new(
            "exemplars: empty",
            ex,
            &[
                ("query", "test_counter_total"),
                ("start", &start10),
                ("end", &t),
            ],
        ),
        Case::new("exemplars: parse error", ex, &[("query", "foo{")]),
        Case::new(
            "exemplars: missing query",
            ex,
            &[("start", &start10), ("end", &t)],
        ),
        Case::new(
            "exemplars: bad start",
            ex,
            &[
                ("query", "test_counter_total"),
                ("start", "abc"),
                ("end", &t),
            ],
        ),
        Case::new(
            "exemplars: end before start",
            ex,
            &[
                ("query", "test_counter_total"),
                ("start", &t),
                ("end", &start10),
            ],
        ),
    ];
    // Time omitted: the answer depends on the clock (checked near now, then blanked).
    for (name, query) in [
        ("time omitted: vector", "vector(1)"),
        ("time omitted: scalar", "time() - time()"),
    ] {
        let mut case = Case::new(name, q, &[("query", query)]);
        case.now_dependent = true;
        cases.push(case);
    }
    cases
}

/// One side's answer, prepared for comparison.
struct Answer {
    status: u16,
    content_type: String,
    /// As received (for the envelope check).
    received: Value,
    /// Normalised (for the comparison).
    json: Value,
    raw: String,
}

fn answer(case: &Case, response: &Response, now_s: f64) -> Result<Answer, String> {
    let raw = response.text();
    let received: Value =
        serde_json::from_slice(&response.body).map_err(|err| format!("not JSON ({err}): {raw}"))?;
    let mut json = received.clone();
    if case.now_dependent {
        blank_now_timestamps(&mut json, now_s)?;
    }
    normalise(case, &mut json);
    Ok(Answer {
        status: response.status,
        // Parameters such as charset are not compared, only the media type.
        content_type: response
            .content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        received,
        json,
        raw,
    })
}

#[test]
fn query_api_answers_like_prometheus() {
    let binary = require_prometheus3();
    let dir = tempfile::tempdir().unwrap();
    let vigil_dir = dir.path().join("vigil");
    let prometheus_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&vigil_dir).unwrap();
    std::fs::create_dir_all(&prometheus_dir).unwrap();
    let config_path = prometheus_dir.join("prometheus.yml");
    // No scrape jobs: the data comes only from this test.
    std::fs::write(&config_path, "global:\n  scrape_interval: 15s\n").unwrap();
    let prometheus = Prometheus::start(
        &binary,
        &prometheus_dir,
        &config_path,
        free_port(),
        &["--web.enable-remote-write-receiver"],
    );
    let vigil = Vigil::start(&vigil_dir, VigilOpts::default());

    let end_ms = now_ms() / 60_000 * 60_000 - 60_000;
    let data = dataset(end_ms);
    vigil.write_ok(None, &data);
    let response = prometheus
        .client
        .post(
            &format!("{}/api/v1/write", prometheus.base_url()),
            None,
            &REMOTE_WRITE_HEADERS,
            encode_snappy(&data),
        )
        .unwrap_or_else(|err| panic!("remote-write to Prometheus: {err}"));
    assert_eq!(
        response.status,
        204,
        "remote-write to Prometheus answered {}: {}",
        response.status,
        response.text()
    );

    // Both have every series (bounded wait; the writes are acknowledged, so this is quick).
    let series_total = data.timeseries.len() as f64;
    let count_query = Case::new(
        "count",
        "/api/v1/query",
        &[
            ("query", r#"count(last_over_time({__name__=~".+"}[30m]))"#),
            ("time", &(end_ms / 1000).to_string()),
        ],
    );
    let vigil_base = vigil.base_url();
    let prometheus_base = prometheus.base_url();
    let client = Client::with_timeout(Duration::from_secs(30));
    for (side, base) in [("vigil", &vigil_base), ("prometheus", &prometheus_base)] {
        wait_for(
            &format!("{side} to have all {series_total} series"),
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                let response = send(&client, base, &count_query, Method::Get);
                let json: Value = serde_json::from_slice(&response.body)
                    .map_err(|err| format!("{err}: {}", response.text()))?;
                let count = json["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok());
                if count == Some(series_total) {
                    Ok(())
                } else {
                    Err(format!("{} {}", response.status, response.text()))
                }
            },
        );
    }

    let cases = cases(end_ms);
    let mut mismatches: Vec<String> = Vec::new();
    let mut compared = 0;
    for case in &cases {
        for method in [Method::Get, Method::Post] {
            compared += 1;
            let now_s = now_ms() as f64 / 1000.0;
            let vigil_response = send(&client, &vigil_base, case, method);
            let prometheus_response = send(&client, &prometheus_base, case, method);
            let request = format!(
                "{method:?} {}{}{}",
                case.path,
                if method == Method::Get { "?" } else { " body " },
                case.form()
            );
            let prometheus_answer = match answer(case, &prometheus_response, now_s) {
                Ok(answer) => answer,
                Err(err) => panic!("{}: {request}: Prometheus' answer: {err}", case.name),
            };
            let vigil_answer = match answer(case, &vigil_response, now_s) {
                Ok(answer) => answer,
                Err(err) => {
                    mismatches.push(format!(
                        "{}\n  request: {request}\n  vigil: {} {err}\n  prometheus: {} {}",
                        case.name,
                        vigil_response.status,
                        prometheus_response.status,
                        prometheus_answer.raw
                    ));
                    continue;
                }
            };
            if let Err(err) = check_envelope(case.path, &prometheus_answer.received) {
                panic!(
                    "{}: {request}: the envelope check rejects Prometheus' own answer ({err}): {}",
                    case.name, prometheus_answer.raw
                );
            }
            for key in ["warnings", "infos"] {
                if let Some(list) = vigil_answer.received.get(key) {
                    if method == Method::Get {
                        eprintln!("note: {}: Vigil's {key}: {list}", case.name);
                    }
                }
            }
            let mut problems = Vec::new();
            if let Err(err) = check_envelope(case.path, &vigil_answer.received) {
                problems.push(format!("envelope: {err}"));
            }
            if let Some(allowed) = &case.allowed {
                if (vigil_answer.status, &vigil_answer.json) != (allowed.status, &allowed.json) {
                    problems.push(format!(
                        "not the allowed difference: Vigil should answer {} {} ({})",
                        allowed.status, allowed.json, allowed.reason
                    ));
                }
                if (prometheus_answer.status, &prometheus_answer.json)
                    == (allowed.status, &allowed.json)
                {
                    problems.push(
                        "Prometheus now answers like Vigil: the allowed difference is stale"
                            .to_string(),
                    );
                }
            } else if vigil_answer.status != prometheus_answer.status {
                problems.push(format!(
                    "status {} vs Prometheus {}",
                    vigil_answer.status, prometheus_answer.status
                ));
            }
            if vigil_answer.content_type != prometheus_answer.content_type {
                problems.push(format!(
                    "content type {:?} vs Prometheus {:?}",
                    vigil_answer.content_type, prometheus_answer.content_type
                ));
            }
            if case.allowed.is_none() && vigil_answer.json != prometheus_answer.json {
                problems.push("JSON differs (after normalising)".to_string());
            }
            if !problems.is_empty() {
                mismatches.push(format!(
                    "{}: {}\n  request: {request}\n  vigil:      {} {}\n  prometheus: {} {}",
                    case.name,
                    problems.join("; "),
                    vigil_answer.status,
                    vigil_answer.raw,
                    prometheus_answer.status,
                    prometheus_answer.raw
                ));
            }
        }
    }
    for case in &cases {
        if let Some(allowed) = &case.allowed {
            eprintln!(
                "allowed difference: {}: Vigil must answer {} {} ({})",
                case.name, allowed.status, allowed.json, allowed.reason
            );
        }
    }
    eprintln!(
        "query API: {compared} requests ({} cases × GET/POST) compared with Prometheus, {} mismatches",
        cases.len(),
        mismatches.len()
    );
    for mismatch in &mismatches {
        eprintln!("MISMATCH {mismatch}\n");
    }
    assert!(
        mismatches.is_empty(),
        "{} of {compared} query API requests answered differently from Prometheus (details \
         above):\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .map(|m| m.lines().next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
