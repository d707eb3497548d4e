//! HTTP clients: raw requests, remote-write, remote-read, the JSON APIs and `/metrics` parsing.

use std::time::Duration;

use prost::Message;
use vigil_proto::prometheus::{
    LabelMatcher, Query, ReadRequest, ReadResponse, TimeSeries, WriteRequest,
};

use super::data::Dataset;
use super::process::Vigil;

/// A response: status, headers of interest and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "response ({}) is not JSON: {err}; body: {}",
                self.status,
                self.text()
            )
        })
    }
}

/// A blocking HTTP client with a per-request timeout and no proxy.
#[derive(Clone)]
pub struct Client {
    inner: reqwest::blocking::Client,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    pub fn new() -> Client {
        Client::with_timeout(Duration::from_secs(30))
    }

    pub fn with_timeout(timeout: Duration) -> Client {
        let inner = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .expect("build HTTP client");
        Client { inner }
    }

    pub fn get(&self, url: &str, tenant: Option<&str>) -> Result<Response, String> {
        self.send(self.inner.get(url), tenant, &[], None)
    }

    pub fn get_with_headers(
        &self,
        url: &str,
        tenant: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        self.send(self.inner.get(url), tenant, headers, None)
    }

    /// POST with the given extra headers and body.
    pub fn post(
        &self,
        url: &str,
        tenant: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Response, String> {
        self.send(self.inner.post(url), tenant, headers, Some(body))
    }

    fn send(
        &self,
        mut request: reqwest::blocking::RequestBuilder,
        tenant: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, String> {
        if let Some(tenant) = tenant {
            request = request.header("X-Scope-OrgID", tenant);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().map_err(|err| format!("{err:?}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = response
            .bytes()
            .map_err(|err| format!("reading body: {err:?}"))?
            .to_vec();
        Ok(Response {
            status,
            content_type,
            body,
        })
    }
}

/// The headers of a remote-write 1.0 request.
pub const REMOTE_WRITE_HEADERS: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// Protobuf-encodes and snappy-block-compresses a message.
pub fn encode_snappy(message: &impl Message) -> Vec<u8> {
    snappy(&message.encode_to_vec())
}

/// Snappy block compression (`snap::raw`), as remote-write and remote-read use.
pub fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(bytes)
        .expect("snappy compress")
}

/// Percent-encodes a query-string component.
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A label matcher for remote read: `type` 0 EQ, 1 NEQ, 2 RE, 3 NRE.
pub fn matcher(kind: i32, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: kind,
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// Matches every series (every series has a metric name).
pub fn match_all() -> Vec<LabelMatcher> {
    vec![matcher(2, "__name__", ".+")]
}

impl Vigil {
    /// Remote-write to `/api/v1/push`.
    pub fn write(&self, tenant: Option<&str>, request: &WriteRequest) -> Response {
        self.write_to("/api/v1/push", tenant, request)
    }

    /// Remote-write to `path` (`/api/v1/push` or `/api/v1/write`).
    pub fn write_to(&self, path: &str, tenant: Option<&str>, request: &WriteRequest) -> Response {
        self.post_raw(path, tenant, &REMOTE_WRITE_HEADERS, encode_snappy(request))
    }

    /// Remote-write that must answer 204.
    pub fn write_ok(&self, tenant: Option<&str>, request: &WriteRequest) {
        let response = self.write(tenant, request);
        assert_eq!(
            response.status,
            204,
            "remote-write of valid data (tenant {tenant:?}) answered {}: {}",
            response.status,
            response.text()
        );
    }

    /// POST of an arbitrary body with arbitrary headers; panics on transport errors.
    pub fn post_raw(
        &self,
        path: &str,
        tenant: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Response {
        self.client
            .post(&self.url(path), tenant, headers, body)
            .unwrap_or_else(|err| panic!("POST {path}: {err}"))
    }

    /// GET; panics on transport errors.
    pub fn get(&self, path_and_query: &str, tenant: Option<&str>) -> Response {
        self.client
            .get(&self.url(path_and_query), tenant)
            .unwrap_or_else(|err| panic!("GET {path_and_query}: {err}"))
    }

    /// GET of a Prometheus-style JSON API; asserts 200 and `"status":"success"` and returns `data`.
    pub fn api_data(&self, path_and_query: &str, tenant: Option<&str>) -> serde_json::Value {
        let response = self.get(path_and_query, tenant);
        assert_eq!(
            response.status,
            200,
            "GET {path_and_query} (tenant {tenant:?}) answered {}: {}",
            response.status,
            response.text()
        );
        let json = response.json();
        assert_eq!(
            json["status"], "success",
            "GET {path_and_query} (tenant {tenant:?}): {json}"
        );
        json["data"].clone()
    }

    /// `/api/v1/series?match[]=…` (no time range), as label maps.
    pub fn series(
        &self,
        selector: &str,
        tenant: Option<&str>,
    ) -> Vec<std::collections::BTreeMap<String, String>> {
        let data = self.api_data(
            &format!("/api/v1/series?match[]={}", urlencode(selector)),
            tenant,
        );
        series_from_json(&data)
    }

    /// An instant PromQL query whose result is a range vector (`sel[15m]`), as a dataset of
    /// one tenant: series label set → timestamp → value bits (values parsed from Prometheus'
    /// string encoding).
    pub fn query_matrix(&self, tenant: &str, query: &str, time_ms: i64) -> Dataset {
        let path = format!(
            "/api/v1/query?query={}&time={}.{:03}",
            urlencode(query),
            time_ms.div_euclid(1000),
            time_ms.rem_euclid(1000)
        );
        let header = if tenant == "default" {
            None
        } else {
            Some(tenant)
        };
        let data = self.api_data(&path, header);
        assert_eq!(data["resultType"], "matrix", "{query}: {data}");
        let mut out = Dataset::default();
        for item in data["result"].as_array().into_iter().flatten() {
            let set: Vec<(String, String)> = item["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            for point in item["values"].as_array().into_iter().flatten() {
                let seconds = point[0].as_f64().unwrap_or(f64::NAN);
                let value = match point[1].as_str().unwrap_or("") {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    v => v
                        .parse::<f64>()
                        .unwrap_or_else(|_| panic!("{query}: value {v}")),
                };
                let ts = (seconds * 1000.0).round() as i64;
                out.insert(tenant, &set, ts, value.to_bits());
            }
        }
        out
    }

    /// `/api/v1/labels` or `/api/v1/label/<name>/values` data as a list of strings.
    pub fn string_list(&self, path_and_query: &str, tenant: Option<&str>) -> Vec<String> {
        let data = self.api_data(path_and_query, tenant);
        let list = data
            .as_array()
            .unwrap_or_else(|| panic!("GET {path_and_query}: data is not a list: {data}"));
        list.iter()
            .map(|value| {
                value
                    .as_str()
                    .unwrap_or_else(|| panic!("GET {path_and_query}: not a string: {value}"))
                    .to_string()
            })
            .collect()
    }

    /// Remote read (SAMPLES); panics unless 200 and decodable.
    pub fn read(
        &self,
        tenant: Option<&str>,
        start_ms: i64,
        end_ms: i64,
        matchers: Vec<LabelMatcher>,
    ) -> Vec<TimeSeries> {
        let request = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: start_ms,
                end_timestamp_ms: end_ms,
                matchers,
                hints: None,
            }],
            accepted_response_types: vec![0],
        };
        let response = self.post_raw(
            "/api/v1/read",
            tenant,
            &[
                ("Content-Encoding", "snappy"),
                ("Content-Type", "application/x-protobuf"),
                ("X-Prometheus-Remote-Read-Version", "0.1.0"),
            ],
            encode_snappy(&request),
        );
        assert_eq!(
            response.status,
            200,
            "remote read (tenant {tenant:?}) answered {}: {}",
            response.status,
            response.text()
        );
        let bytes = snap::raw::Decoder::new()
            .decompress_vec(&response.body)
            .unwrap_or_else(|err| panic!("remote read response is not snappy: {err}"));
        let decoded = ReadResponse::decode(bytes.as_slice())
            .unwrap_or_else(|err| panic!("remote read response is not a ReadResponse: {err}"));
        assert_eq!(
            decoded.results.len(),
            1,
            "one query must give one result: {decoded:?}"
        );
        decoded.results.into_iter().next().unwrap().timeseries
    }

    /// Every sample of a tenant in `[start_ms, end_ms]`, as a dataset (checks the response's
    /// labels are sorted and its timestamps strictly increasing per series).
    pub fn read_all(&self, tenant: &str, start_ms: i64, end_ms: i64) -> Dataset {
        let series = self.read(Some(tenant), start_ms, end_ms, match_all());
        let mut dataset = Dataset::default();
        dataset.add_read_result(tenant, &series, start_ms, end_ms);
        dataset
    }

    /// `GET /metrics`, parsed.
    pub fn metrics(&self) -> Metrics {
        let response = self.get("/metrics", None);
        assert_eq!(
            response.status,
            200,
            "GET /metrics answered {}: {}",
            response.status,
            response.text()
        );
        Metrics::parse(&response.text())
    }

    /// Waits (up to 10 s: gauges may be refreshed periodically rather than at scrape time) until
    /// the sum of the samples `name{labels}` on `/metrics` is `want`.
    pub fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64) {
        super::wait_for(
            &format!("{name}{labels:?} to be {want} on /metrics"),
            Duration::from_secs(10),
            Duration::from_millis(100),
            || match self.metrics().sum(name, labels) {
                Some(value) if value == want => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }

    /// Waits (bounded) until blocks stop moving: nothing pending upload, and the counts of cut and
    /// uploaded blocks unchanged for 2 s.
    pub fn wait_blocks_settled(&self, timeout: Duration) {
        let snapshot = || {
            let metrics = self.metrics();
            (
                metrics.sum_or_zero("vigil_blocks_pending_upload", &[]),
                metrics.sum_or_zero("vigil_blocks_cut_total", &[]),
                metrics.sum_or_zero("vigil_blocks_uploaded_total", &[]),
            )
        };
        let mut last = (snapshot(), std::time::Instant::now());
        super::wait_for(
            "blocks to settle (nothing pending upload, no cut or upload for 2 s)",
            timeout,
            Duration::from_millis(200),
            || {
                let now = snapshot();
                if now != last.0 {
                    last = (now, std::time::Instant::now());
                }
                if now.0 == 0.0 && last.1.elapsed() >= Duration::from_secs(2) {
                    Ok(())
                } else {
                    Err(format!("pending, cut, uploaded: {now:?}"))
                }
            },
        );
    }

    /// `GET /-/healthy` must answer 200.
    pub fn assert_healthy(&self) {
        let response = self.get("/-/healthy", None);
        assert_eq!(
            response.status,
            200,
            "/-/healthy answered {}: {}",
            response.status,
            response.text()
        );
    }
}

/// A `/api/v1/series` answer as label maps, sorted.
pub fn series_from_json(
    data: &serde_json::Value,
) -> Vec<std::collections::BTreeMap<String, String>> {
    let list = data
        .as_array()
        .unwrap_or_else(|| panic!("series data is not a list: {data}"));
    let mut out: Vec<_> = list
        .iter()
        .map(|item| {
            item.as_object()
                .unwrap_or_else(|| panic!("series item is not an object: {item}"))
                .iter()
                .map(|(name, value)| {
                    let value = value
                        .as_str()
                        .unwrap_or_else(|| panic!("label value is not a string: {item}"));
                    (name.clone(), value.to_string())
                })
                .collect()
        })
        .collect();
    out.sort();
    out
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
pub struct MetricSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A parsed Prometheus text exposition (the sample lines; comments are skipped).
#[derive(Debug, Clone)]
pub struct Metrics {
    pub samples: Vec<MetricSample>,
    pub text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(parse_sample_line(line).unwrap_or_else(|err| {
                panic!("bad line in /metrics: {line:?}: {err}\nwhole text:\n{text}")
            }));
        }
        Metrics {
            samples,
            text: text.to_string(),
        }
    }

    /// The sum of the samples called `name` whose labels include every pair of `labels`
    /// (`None` if there is none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for sample in &self.samples {
            if sample.name != name {
                continue;
            }
            let matches = labels.iter().all(|(want_name, want_value)| {
                sample
                    .labels
                    .iter()
                    .any(|(name, value)| name == want_name && value == want_value)
            });
            if matches {
                *found.get_or_insert(0.0) += sample.value;
            }
        }
        found
    }

    /// Like [`Metrics::sum`] but 0 when absent (for counters that appear on first increment).
    pub fn sum_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.sum(name, labels).unwrap_or(0.0)
    }
}

fn parse_sample_line(line: &str) -> Result<MetricSample, String> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(at) => (&line[..at], &line[at..]),
        None => return Err("no value".into()),
    };
    let mut labels = Vec::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end;
        loop {
            // label name
            let start = match chars.peek() {
                Some((at, '}')) => {
                    end = *at;
                    break;
                }
                Some((at, _)) => *at,
                None => return Err("unterminated labels".into()),
            };
            let mut eq = None;
            for (at, ch) in chars.by_ref() {
                if ch == '=' {
                    eq = Some(at);
                    break;
                }
            }
            let eq = eq.ok_or("label without =")?;
            let label_name = body[start..eq].trim().trim_start_matches(',').trim();
            if chars.next().map(|(_, ch)| ch) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, ch)) = chars.next() {
                match ch {
                    '\\' => match chars.next().map(|(_, ch)| ch) {
                        Some('n') => value.push('\n'),
                        Some(other) => value.push(other),
                        None => return Err("dangling escape".into()),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    other => value.push(other),
                }
            }
            if !closed {
                return Err("unterminated label value".into());
            }
            labels.push((label_name.to_string(), value));
            if let Some((_, ',')) = chars.peek() {
                chars.next();
            }
        }
        &body[end + 1..]
    } else {
        rest
    };
    let value_text = rest
        .split_whitespace()
        .next()
        .ok_or("missing value")?
        .to_string();
    let value = match value_text.as_str() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        other => other
            .parse()
            .map_err(|err| format!("value {other:?}: {err}"))?,
    };
    Ok(MetricSample {
        name: name.to_string(),
        labels,
        value,
    })
}
