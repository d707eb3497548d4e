//! Speaking Loki's push and query API to the real binary: JSON and snappy-protobuf pushes, and
//! reading every entry of a selector back through `query_range` (paged by time), plus the log
//! blocks as pyarrow reads them (`tests/tools/read_log_blocks.py`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use vigil_log_ingest::proto::{
    EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp,
};

use super::blocks::{run_python, MotoS3, S3_ENV};
use super::http::{urlencode, Client, Response};
use super::tools_dir;

/// A stream's labels, sorted by name.
pub type StreamLabels = BTreeMap<String, String>;

/// One entry as pushed and as read back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub ts_ns: i64,
    pub line: String,
    pub metadata: Vec<(String, String)>,
}

impl Entry {
    pub fn new(ts_ns: i64, line: &str) -> Entry {
        Entry {
            ts_ns,
            line: line.to_string(),
            metadata: Vec::new(),
        }
    }
}

/// Entries by stream: what a test pushed or read.
pub type LogSet = BTreeMap<StreamLabels, Vec<Entry>>;

pub fn stream_labels(pairs: &[(&str, &str)]) -> StreamLabels {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// `{a="b", c="d"}` as Loki's label strings are written.
pub fn label_text(labels: &StreamLabels) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(n, v)| format!("{n}={}", serde_json::to_string(v).expect("json string")))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// A push body in Loki's JSON format.
pub fn json_body(streams: &[(&StreamLabels, &[Entry])]) -> Vec<u8> {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(labels, entries)| {
            let values: Vec<Value> = entries
                .iter()
                .map(|e| {
                    if e.metadata.is_empty() {
                        json!([e.ts_ns.to_string(), e.line])
                    } else {
                        let md: serde_json::Map<String, Value> = e
                            .metadata
                            .iter()
                            .map(|(n, v)| (n.clone(), Value::String(v.clone())))
                            .collect();
                        json!([e.ts_ns.to_string(), e.line, md])
                    }
                })
                .collect();
            json!({"stream": labels, "values": values})
        })
        .collect();
    serde_json::to_vec(&json!({ "streams": streams })).expect("json")
}

/// A push body as `logproto.PushRequest`, snappy block compressed.
pub fn protobuf_body(streams: &[(&StreamLabels, &[Entry])]) -> Vec<u8> {
    let request = PushRequest {
        streams: streams
            .iter()
            .map(|(labels, entries)| StreamAdapter {
                labels: label_text(labels),
                entries: entries
                    .iter()
                    .map(|e| EntryAdapter {
                        timestamp: Some(Timestamp::from_unix_nanos(e.ts_ns)),
                        line: e.line.clone(),
                        structured_metadata: e
                            .metadata
                            .iter()
                            .map(|(name, value)| LabelPairAdapter {
                                name: name.clone(),
                                value: value.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
    };
    request.encode_snappy()
}

pub const JSON: [(&str, &str); 1] = [("Content-Type", "application/json")];
pub const PROTOBUF: [(&str, &str); 1] = [("Content-Type", "application/x-protobuf")];

/// POSTs a push body to `/loki/api/v1/push`.
pub fn push(
    client: &Client,
    base_url: &str,
    tenant: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Response, String> {
    client.post(
        &format!("{base_url}/loki/api/v1/push"),
        tenant,
        headers,
        body,
    )
}

/// Pushes and asserts 204.
pub fn push_ok(
    client: &Client,
    base_url: &str,
    tenant: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) {
    let response = push(client, base_url, tenant, headers, body).expect("push");
    assert_eq!(
        response.status,
        204,
        "push answered {}: {}",
        response.status,
        response.text()
    );
}

/// The wall clock in ns since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

/// Pushes `streams` to `vigil` as one JSON request (default tenant) and asserts 204.
pub fn push_streams_json(vigil: &super::Vigil, streams: &[(StreamLabels, Vec<Entry>)]) {
    let streams: Vec<(&StreamLabels, &[Entry])> =
        streams.iter().map(|(l, e)| (l, e.as_slice())).collect();
    push_ok(
        &vigil.client,
        &vigil.base_url(),
        None,
        &[("Content-Type", "application/json")],
        json_body(&streams),
    );
}

/// Every entry of `selector` in `[start_ns, end_ns]` with its structured metadata, read through
/// `query_range` (categorized labels) forward in pages of `page` entries (each page starts after
/// the last timestamp seen; a page that ends inside a run of equal timestamps is read again with
/// a larger limit).
pub fn read_all(
    client: &Client,
    base_url: &str,
    tenant: Option<&str>,
    selector: &str,
    start_ns: i64,
    end_ns: i64,
) -> LogSet {
    let mut out = LogSet::new();
    let mut from = start_ns;
    let mut limit = 5000usize;
    for _ in 0..100_000 {
        let url = format!(
            "{base_url}/loki/api/v1/query_range?query={}&start={from}&end={}&limit={limit}&direction=forward",
            urlencode(selector),
            end_ns + 1
        );
        // Categorized labels: stream labels as stored, structured metadata per entry.
        let response = client
            .get_with_headers(
                &url,
                tenant,
                &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
            )
            .expect("query_range");
        assert_eq!(response.status, 200, "query_range: {}", response.text());
        let body = response.json();
        assert_eq!(body["status"], "success", "{body}");
        assert_eq!(body["data"]["resultType"], "streams", "{body}");
        let mut page: Vec<(StreamLabels, Entry)> = Vec::new();
        for stream in body["data"]["result"].as_array().expect("result") {
            let labels: StreamLabels =
                serde_json::from_value(stream["stream"].clone()).expect("stream labels");
            for value in stream["values"].as_array().expect("values") {
                let ts: i64 = value[0].as_str().expect("ts string").parse().expect("ts");
                let line = value[1].as_str().expect("line").to_string();
                let mut entry = Entry::new(ts, &line);
                if let Some(md) = value[2]["structuredMetadata"].as_object() {
                    entry.metadata = md
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().expect("metadata value").to_string()))
                        .collect();
                }
                page.push((labels.clone(), entry));
            }
        }
        // Loki's stats summary: what was read is at least what came back.
        let summary = &body["data"]["stats"]["summary"];
        let returned = summary["totalEntriesReturned"]
            .as_u64()
            .expect("stats summary");
        let processed = summary["totalLinesProcessed"]
            .as_u64()
            .expect("stats summary");
        assert_eq!(returned, page.len() as u64, "{summary}");
        assert!(processed >= returned, "{summary}");
        assert!(summary["execTime"].as_f64().is_some(), "{summary}");
        if page.len() < limit {
            for (labels, entry) in page {
                out.entry(labels).or_default().push(entry);
            }
            break;
        }
        let last = page
            .iter()
            .map(|(_, e)| e.ts_ns)
            .max()
            .expect("non-empty page");
        if page.iter().all(|(_, e)| e.ts_ns == last) {
            limit *= 2;
            continue;
        }
        for (labels, entry) in page.into_iter().filter(|(_, e)| e.ts_ns < last) {
            out.entry(labels).or_default().push(entry);
        }
        from = last;
    }
    for entries in out.values_mut() {
        entries.sort();
    }
    out
}

/// The entries of every complete log block under a local object-store root, by tenant, as
/// pyarrow reads them.
pub fn read_local_blocks(root: &Path) -> BTreeMap<String, LogSet> {
    let script = tools_dir().join("read_log_blocks.py");
    let out = run_python(
        &[
            script.to_str().expect("utf-8"),
            "local",
            root.to_str().expect("utf-8"),
        ],
        &[],
        Duration::from_secs(300),
    );
    parse_blocks(&out)
}

/// As [`read_local_blocks`], from an S3 bucket.
pub fn read_s3_blocks(s3: &MotoS3, bucket: &str, prefix: &str) -> BTreeMap<String, LogSet> {
    let script = tools_dir().join("read_log_blocks.py");
    let endpoint = s3.endpoint();
    let out = run_python(
        &[
            script.to_str().expect("utf-8"),
            "s3",
            "--endpoint",
            &endpoint,
            "--bucket",
            bucket,
            "--prefix",
            prefix,
        ],
        &S3_ENV,
        Duration::from_secs(300),
    );
    parse_blocks(&out)
}

fn parse_blocks(out: &str) -> BTreeMap<String, LogSet> {
    let doc: Value = serde_json::from_str(out).expect("read_log_blocks.py output is JSON");
    let mut tenants: BTreeMap<String, LogSet> = BTreeMap::new();
    for block in doc["blocks"].as_array().expect("blocks") {
        let tenant = block["tenant"].as_str().expect("tenant").to_string();
        let set = tenants.entry(tenant).or_default();
        for row in block["entries"].as_array().expect("entries") {
            let labels: StreamLabels =
                serde_json::from_str(row[0].as_str().expect("labels json")).expect("labels");
            let ts: i64 = row[1].as_str().expect("ts").parse().expect("ts");
            let line = row[2].as_str().expect("line");
            let mut entry = Entry::new(ts, line);
            if let Some(md) = row[3].as_str() {
                let map: serde_json::Map<String, Value> =
                    serde_json::from_str(md).expect("metadata json");
                entry.metadata = map
                    .into_iter()
                    .map(|(n, v)| (n, v.as_str().unwrap_or_default().to_string()))
                    .collect();
            }
            set.entry(labels).or_default().push(entry);
        }
    }
    for set in tenants.values_mut() {
        for entries in set.values_mut() {
            entries.sort();
        }
    }
    tenants
}

/// Differences between two log sets (at most `max` lines), empty when equal.
pub fn diff(expected: &LogSet, actual: &LogSet, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (labels, want) in expected {
        let Some(got) = actual.get(labels) else {
            out.push(format!(
                "stream {} missing ({} entries)",
                label_text(labels),
                want.len()
            ));
            continue;
        };
        if want != got {
            out.push(format!(
                "stream {}: expected {} entries, got {}",
                label_text(labels),
                want.len(),
                got.len()
            ));
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                if w != g {
                    out.push(format!(
                        "  first difference at {i}: expected {w:?}, got {g:?}"
                    ));
                    break;
                }
            }
        }
    }
    for labels in actual.keys() {
        if !expected.contains_key(labels) {
            out.push(format!("unexpected stream {}", label_text(labels)));
        }
    }
    out.truncate(max);
    out
}

/// The loghub sample logs (`../shared/data/loghub/*_2k.log`), each as (app, lines), split on
/// `\n` only so every other byte (`\r` of CRLF files too) is part of the line.
pub fn loghub() -> Vec<(String, Vec<String>)> {
    let dir = super::shared_dir().join("data/loghub");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .trim_end_matches("_2k.log")
                .to_lowercase();
            let text = std::fs::read_to_string(&path).expect("loghub file is UTF-8");
            let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
            if lines.last().is_some_and(String::is_empty) {
                lines.pop();
            }
            (name, lines)
        })
        .collect()
}
