//! The log benchmark corpus and Loki push request encoding, used by the `log-push-load` binary
//! and by `benches/run_log_ingest.sh`.
//!
//! The corpus is what `/work/shared/data/make_log_corpus.py LOGHUB OUT [T_END]` writes:
//! `corpus.tsv` (`ts_ns \t stream_idx \t line`, one entry per `\n`-terminated row, sorted by
//! timestamp; the line itself may contain tabs) and `streams.json` (a JSON array whose element
//! `i` is the label object of stream `i`).
//!
//! Requests are cut as Promtail/Alloy cut their batches: entries are taken in corpus order and
//! grouped per stream inside the current batch; a batch is sent once adding the next line would
//! take its line bytes past `batch_bytes` (a single longer line still makes a batch of its own).
//! Streams appear in a request in the order of their first entry in it, entries of a stream in
//! corpus order.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use vigil_log_ingest::proto::{EntryAdapter, PushRequest, StreamAdapter, Timestamp};

/// One corpus stream: its labels sorted by name, and the two ways a client writes them.
#[derive(Debug, Clone)]
pub struct StreamDef {
    pub labels: Vec<(String, String)>,
    /// Protobuf `labels` text, `{app="x", env="prod"}` (Prometheus' `labels.String()` format).
    pub label_text: String,
    /// JSON `stream` object, `{"app":"x","env":"prod"}`.
    pub json_object: String,
}

impl StreamDef {
    pub fn new(mut labels: Vec<(String, String)>) -> Self {
        labels.sort();
        let label_text =
            vigil_log_ingest::format_labels(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let mut json_object = String::from("{");
        for (i, (name, value)) in labels.iter().enumerate() {
            if i > 0 {
                json_object.push(',');
            }
            push_json_string(&mut json_object, name);
            json_object.push(':');
            push_json_string(&mut json_object, value);
        }
        json_object.push('}');
        Self {
            labels,
            label_text,
            json_object,
        }
    }
}

/// One corpus row; the line is `text[start..start + len]` of [`Corpus::text`].
#[derive(Debug, Clone, Copy)]
struct Row {
    ts_ns: i64,
    stream: u32,
    start: usize,
    len: u32,
}

/// The loaded corpus: the TSV text and the position of every line in it.
#[derive(Debug)]
pub struct Corpus {
    text: String,
    rows: Vec<Row>,
    pub streams: Vec<StreamDef>,
}

/// One entry of the corpus, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub ts_ns: i64,
    pub stream: u32,
    pub line: &'a str,
}

impl Corpus {
    /// Reads `DIR/corpus.tsv` and `DIR/streams.json`; `limit` keeps only the first lines.
    pub fn load(dir: &Path, limit: Option<usize>) -> Result<Self> {
        let tsv = dir.join("corpus.tsv");
        let text =
            std::fs::read_to_string(&tsv).with_context(|| format!("reading {}", tsv.display()))?;
        let streams_path = dir.join("streams.json");
        let streams = std::fs::read_to_string(&streams_path)
            .with_context(|| format!("reading {}", streams_path.display()))?;
        Self::parse(text, &streams, limit).with_context(|| format!("corpus {}", dir.display()))
    }

    /// Parses the two files' contents (see the module docs).
    pub fn parse(text: String, streams_json: &str, limit: Option<usize>) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(streams_json).context("streams.json is not JSON")?;
        let Some(array) = value.as_array() else {
            bail!("streams.json is not a JSON array");
        };
        let mut streams = Vec::with_capacity(array.len());
        for (i, object) in array.iter().enumerate() {
            let Some(object) = object.as_object() else {
                bail!("streams.json element {i} is not an object");
            };
            let mut labels = Vec::with_capacity(object.len());
            for (name, value) in object {
                let Some(value) = value.as_str() else {
                    bail!("streams.json element {i}: label {name} is not a string");
                };
                labels.push((name.clone(), value.to_string()));
            }
            streams.push(StreamDef::new(labels));
        }
        let limit = limit.unwrap_or(usize::MAX);
        let mut rows = Vec::new();
        let mut start = 0usize;
        let mut row_no = 0usize;
        while start < text.len() && rows.len() < limit {
            let end = text[start..]
                .find('\n')
                .map_or(text.len(), |offset| start + offset);
            row_no += 1;
            let row = &text[start..end];
            let mut parts = row.splitn(3, '\t');
            let (Some(ts), Some(sid), Some(line)) = (parts.next(), parts.next(), parts.next())
            else {
                bail!("corpus.tsv row {row_no} does not have three tab-separated fields");
            };
            let ts_ns: i64 = ts
                .parse()
                .with_context(|| format!("corpus.tsv row {row_no}: bad timestamp {ts:?}"))?;
            let stream: u32 = sid
                .parse()
                .with_context(|| format!("corpus.tsv row {row_no}: bad stream index {sid:?}"))?;
            if stream as usize >= streams.len() {
                bail!(
                    "corpus.tsv row {row_no}: stream {stream} not in streams.json ({} streams)",
                    streams.len()
                );
            }
            let line_start = end - line.len();
            rows.push(Row {
                ts_ns,
                stream,
                start: line_start,
                len: u32::try_from(line.len()).context("line longer than 4 GiB")?,
            });
            start = end + 1;
        }
        Ok(Self {
            text,
            rows,
            streams,
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn entry(&self, i: usize) -> EntryRef<'_> {
        let r = self.rows[i];
        EntryRef {
            ts_ns: r.ts_ns,
            stream: r.stream,
            line: &self.text[r.start..r.start + r.len as usize],
        }
    }

    /// Bytes of all lines (without newlines).
    pub fn raw_bytes(&self) -> u64 {
        self.rows.iter().map(|r| u64::from(r.len)).sum()
    }
}

/// One request's worth of entries: per stream (in order of first appearance), corpus row indexes.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub streams: Vec<(u32, Vec<usize>)>,
    pub lines: usize,
    pub raw_bytes: usize,
}

/// Cuts the corpus into batches of at most `batch_bytes` line bytes (see the module docs).
pub fn plan_batches(corpus: &Corpus, batch_bytes: usize) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut current = Batch::default();
    // Position of each stream in `current.streams`, or usize::MAX.
    let mut slot = vec![usize::MAX; corpus.streams.len()];
    for i in 0..corpus.len() {
        let row = corpus.rows[i];
        let len = row.len as usize;
        if current.lines > 0 && current.raw_bytes + len > batch_bytes {
            for (sid, _) in &current.streams {
                slot[*sid as usize] = usize::MAX;
            }
            batches.push(std::mem::take(&mut current));
        }
        let s = &mut slot[row.stream as usize];
        if *s == usize::MAX {
            *s = current.streams.len();
            current.streams.push((row.stream, Vec::new()));
        }
        current.streams[*s].1.push(i);
        current.lines += 1;
        current.raw_bytes += len;
    }
    if current.lines > 0 {
        batches.push(current);
    }
    batches
}

/// Body format of the push requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushFormat {
    /// `application/json`, Loki's v1 JSON (`stream` objects, `values` of `[ts_string, line]`),
    /// uncompressed, as python-logging-loki, Grafana Agent's JSON clients and `curl` send it.
    Json,
    /// `application/x-protobuf`, snappy block compressed `logproto.PushRequest` (Promtail/Alloy).
    Protobuf,
}

impl PushFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Protobuf => "application/x-protobuf",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Protobuf => "protobuf",
        }
    }
}

/// The request body of `batch` in `format`.
pub fn encode(corpus: &Corpus, batch: &Batch, format: PushFormat) -> Vec<u8> {
    match format {
        PushFormat::Json => encode_json(corpus, batch),
        PushFormat::Protobuf => encode_protobuf(corpus, batch),
    }
}

/// `{"streams":[{"stream":{..},"values":[["<ns>","<line>"],..]},..]}`.
pub fn encode_json(corpus: &Corpus, batch: &Batch) -> Vec<u8> {
    let mut out = String::with_capacity(batch.raw_bytes + batch.lines * 32 + 64);
    out.push_str("{\"streams\":[");
    for (si, (sid, rows)) in batch.streams.iter().enumerate() {
        if si > 0 {
            out.push(',');
        }
        out.push_str("{\"stream\":");
        out.push_str(&corpus.streams[*sid as usize].json_object);
        out.push_str(",\"values\":[");
        for (ei, &i) in rows.iter().enumerate() {
            if ei > 0 {
                out.push(',');
            }
            let e = corpus.entry(i);
            let _ = write!(out, "[\"{}\",", e.ts_ns);
            push_json_string(&mut out, e.line);
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out.into_bytes()
}

/// Snappy-compressed `logproto.PushRequest`.
pub fn encode_protobuf(corpus: &Corpus, batch: &Batch) -> Vec<u8> {
    let streams = batch
        .streams
        .iter()
        .map(|(sid, rows)| StreamAdapter {
            labels: corpus.streams[*sid as usize].label_text.clone(),
            entries: rows
                .iter()
                .map(|&i| {
                    let e = corpus.entry(i);
                    EntryAdapter {
                        timestamp: Some(Timestamp::from_unix_nanos(e.ts_ns)),
                        line: e.line.to_string(),
                        structured_metadata: Vec::new(),
                    }
                })
                .collect(),
            hash: 0,
        })
        .collect();
    PushRequest { streams }.encode_snappy()
}

/// Appends `s` as a JSON string literal (RFC 8259 escaping; non-ASCII stays UTF-8).
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_log_ingest::{parse_push, BodyFormat, ContentEncoding, JsonVersion, LogLimits};

    const STREAMS: &str = r#"[
{"app": "apache", "namespace": "web", "pod": "apache-0a1b2-0", "level": "info", "env": "prod"},
{"app": "zk", "namespace": "data", "pod": "zk-\"q\"-1", "level": "warn", "env": "prod"},
{"app": "h\u00e9", "namespace": "x\\y", "pod": "p", "level": "error", "env": "staging"}
]"#;

    /// Rows with tabs, quotes, backslashes, control characters, unicode and an empty line.
    fn corpus_text() -> String {
        let lines = [
            (1_700_000_000_000_000_001i64, 0, "plain line"),
            (1_700_000_000_000_000_002, 1, "with\ttabs\tinside"),
            (
                1_700_000_000_000_000_003,
                2,
                r#"quote " backslash \ json {"a":1}"#,
            ),
            (
                1_700_000_000_000_000_004,
                0,
                "ctl \u{1} \u{1f} \u{7f} \u{0b}\u{0c}",
            ),
            (
                1_700_000_000_000_000_005,
                1,
                "unicode é ✓ 日本語 🚀 \u{2028}",
            ),
            (1_700_000_000_000_000_006, 2, ""),
            (
                1_700_000_000_000_000_007,
                0,
                "trailing space and \\n literal ",
            ),
            (1_700_000_000_000_000_007, 0, "same timestamp, second line"),
            (1_700_000_000_123_456_789, 1, &"long ".repeat(300)),
            (1_700_000_001_000_000_000, 2, "last"),
        ];
        let mut text = String::new();
        for (ts, sid, line) in lines {
            text.push_str(&format!("{ts}\t{sid}\t{line}\n"));
        }
        text
    }

    fn corpus() -> Corpus {
        Corpus::parse(corpus_text(), STREAMS, None).unwrap()
    }

    #[test]
    fn parses_rows_byte_exact() {
        let c = corpus();
        assert_eq!(c.len(), 10);
        assert_eq!(c.entry(1).line, "with\ttabs\tinside");
        assert_eq!(c.entry(5).line, "");
        assert_eq!(c.entry(8).line.len(), 1500);
        assert_eq!(c.entry(9).ts_ns, 1_700_000_001_000_000_000);
        assert_eq!(
            c.streams[1].label_text,
            r#"{app="zk", env="prod", level="warn", namespace="data", pod="zk-\"q\"-1"}"#
        );
        let limited = Corpus::parse(corpus_text(), STREAMS, Some(3)).unwrap();
        assert_eq!(limited.len(), 3);
        assert!(Corpus::parse("1\t7\tx\n".into(), STREAMS, None).is_err());
        assert!(Corpus::parse("1\tx\n".into(), STREAMS, None).is_err());
    }

    #[test]
    fn batches_follow_promtail_cutting() {
        let c = corpus();
        let all = plan_batches(&c, usize::MAX);
        assert_eq!(all.len(), 1);
        assert_eq!(
            all[0].streams.iter().map(|s| s.0).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(all[0].streams[0].1, [0, 3, 6, 7]);
        let small = plan_batches(&c, 40);
        // Every row once, in order; no batch over the limit unless it holds one line.
        let mut seen: Vec<usize> = small
            .iter()
            .flat_map(|b| b.streams.iter().flat_map(|s| s.1.iter().copied()))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..c.len()).collect::<Vec<_>>());
        for b in &small {
            assert!(b.raw_bytes <= 40 || b.lines == 1, "{b:?}");
        }
        assert_eq!(
            small.iter().map(|b| b.raw_bytes).sum::<usize>() as u64,
            c.raw_bytes()
        );
    }

    /// Entries of a decoded batch as (sorted label pairs, ts, line), in request order.
    /// (sorted label pairs, timestamp, line) of one entry.
    type Flat = (Vec<(String, String)>, i64, String);

    fn decoded(body: &[u8], format: BodyFormat) -> Vec<Flat> {
        let limits = LogLimits::default();
        // "now" after every corpus timestamp, so none is too new.
        let batch = parse_push(
            body,
            format,
            ContentEncoding::Identity,
            &limits,
            1_800_000_000_000_000_000,
        )
        .unwrap();
        assert!(batch.rejections.is_empty(), "{:?}", batch.rejections);
        assert_eq!(batch.invalid_utf8, 0);
        let mut out = Vec::new();
        for stream in &batch.streams {
            let labels: Vec<(String, String)> = stream
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            for e in &stream.entries {
                assert!(e.structured_metadata.is_empty());
                out.push((labels.clone(), e.timestamp_ns, e.line.clone()));
            }
        }
        out
    }

    fn expected(c: &Corpus, b: &Batch) -> Vec<Flat> {
        let mut out = Vec::new();
        for (sid, rows) in &b.streams {
            for &i in rows {
                let e = c.entry(i);
                out.push((
                    c.streams[*sid as usize].labels.clone(),
                    e.ts_ns,
                    e.line.to_string(),
                ));
            }
        }
        out
    }

    #[test]
    fn json_and_protobuf_bodies_decode_to_the_corpus() {
        let c = corpus();
        for batch_bytes in [usize::MAX, 40, 1] {
            let batches = plan_batches(&c, batch_bytes);
            let mut total = 0;
            for b in &batches {
                let want = expected(&c, b);
                total += want.len();
                let json = encode_json(&c, b);
                // serde_json agrees the body is valid JSON.
                serde_json::from_slice::<serde_json::Value>(&json).unwrap();
                assert_eq!(decoded(&json, BodyFormat::Json(JsonVersion::V1)), want);
                let proto = encode_protobuf(&c, b);
                assert_eq!(decoded(&proto, BodyFormat::Protobuf), want);
                assert_eq!(encode(&c, b, PushFormat::Json), json);
            }
            assert_eq!(total, c.len());
        }
    }

    #[test]
    fn json_string_escaping_matches_serde() {
        for s in ["", "a\"b\\c", "\u{0}\u{1f}\u{7f}\t\r\n", "é✓🚀\u{2028}"] {
            let mut mine = String::new();
            push_json_string(&mut mine, s);
            assert_eq!(serde_json::from_str::<String>(&mine).unwrap(), s);
        }
    }
}
