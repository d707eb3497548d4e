//! What the log blocks' line indexes skip must never change an answer: lines with long ids
//! (digits, hex: what the token filters index), JSON lines with escapes and structured metadata
//! (what parsed-label filters imply) are pushed, cut into blocks by a graceful restart, and
//! queried through the real binary; every answer must equal a plain substring search (or JSON
//! decode) over what was pushed.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::http::urlencode;
use common::loki::{now_ns, push_streams_json, stream_labels, Entry, StreamLabels};
use common::process::VigilOpts;
use common::Vigil;

const NS: i64 = 1_000_000_000;
/// Lines per stream, five a second (50 minutes, within one 2 h block): over 1 MiB of text
/// each, so every stream has row groups of its own, and a needle's are not the others'.
const LINES: i64 = 15_000;
const SPACING_NS: i64 = NS / 5;
/// The JSON checks look at the first two minutes (their answers stay under the limit).
const JSON_NS: i64 = 120 * NS;

fn lines(t0: i64) -> Vec<(StreamLabels, Vec<Entry>)> {
    let mut rng = fastrand::Rng::with_seed(42);
    let mut digits =
        |n: usize| -> String { (0..n).map(|_| char::from(b'0' + rng.u8(0..10))).collect() };
    let blocks: Vec<Entry> = (0..LINES)
        .map(|k| {
            let line = format!(
                "Receiving block blk_-{} src: /10.250.{}.{}:50010 dest: /10.250.11.85:50010",
                digits(19),
                k % 256,
                k % 7
            );
            Entry::new(t0 + k * SPACING_NS, &line)
        })
        .collect();
    let requests: Vec<Entry> = (0..LINES)
        .map(|k| {
            let line = format!(
                "[req-{}-{}] GET /v2/servers/detail status: 200 len: {}",
                digits(8),
                digits(16),
                digits(4)
            );
            Entry::new(t0 + k * SPACING_NS + 1, &line)
        })
        .collect();
    let loggers = [
        "org.apache.hadoop.ipc.Client",
        "org.apache.hadoop.hdfs.DFSClient",
    ];
    let json: Vec<Entry> = (0..LINES)
        .map(|k| {
            let logger = loggers[k as usize % 2];
            // Every 25th line escapes its dots, as some JSON encoders do.
            let written = if k % 25 == 7 {
                logger.replace('.', "\\u002e")
            } else {
                logger.to_string()
            };
            let line = format!(r#"{{"level":"INFO","logger":"{written}","msg":"call {k}"}}"#);
            let mut entry = Entry::new(t0 + k * SPACING_NS + 2, &line);
            if k % 35 == 3 {
                // The label then comes from structured metadata, not from the line.
                entry.line = format!(r#"{{"level":"INFO","msg":"call {k}"}}"#);
                entry.metadata = vec![("logger".into(), loggers[0].into())];
            }
            entry
        })
        .collect();
    vec![
        (stream_labels(&[("app", "hdfs")]), blocks),
        (stream_labels(&[("app", "nova")]), requests),
        (stream_labels(&[("app", "hadoop")]), json),
    ]
}

/// The lines a query answers (limit above what it matches) and how many lines it read.
fn answer(vigil: &Vigil, query: &str, range: (i64, i64)) -> (BTreeSet<(i64, String)>, u64) {
    let url = vigil.url(&format!(
        "/loki/api/v1/query_range?query={}&start={}&end={}&limit=5000",
        urlencode(query),
        range.0,
        range.1
    ));
    let response = vigil.client.get(&url, None).expect("query");
    assert_eq!(response.status, 200, "{query}: {}", response.text());
    let body = response.json();
    let read = body["data"]["stats"]["summary"]["totalLinesProcessed"]
        .as_u64()
        .expect("stats");
    let mut out = BTreeSet::new();
    for stream in body["data"]["result"].as_array().expect("result") {
        for value in stream["values"].as_array().expect("values") {
            let ts: i64 = value[0].as_str().expect("ts").parse().unwrap();
            out.insert((ts, value[1].as_str().expect("line").to_string()));
        }
    }
    (out, read)
}

fn check(vigil: &Vigil, data: &[(StreamLabels, Vec<Entry>)], t0: i64, context: &str) {
    let range = (t0 - NS, t0 + (LINES + 1) * SPACING_NS);
    let all: Vec<&Entry> = data.iter().flat_map(|(_, e)| e.iter()).collect();
    let block_line = &data[0].1[123].line;
    let request_line = &data[1].1[321].line;
    let block_id = block_line.split(' ').nth(2).unwrap();
    let request_id = &request_line[1..request_line.find(']').unwrap()];
    // Needles: whole ids, their long tails after a separator, prefixes of them, one that starts
    // inside a token, ones that occur nowhere.
    let needles = [
        block_id.to_string(),
        block_id["blk_".len()..].to_string(),
        block_id[..block_id.len() - 3].to_string(),
        block_id[7..].to_string(),
        format!(" {}", &block_id[..16]),
        request_id.to_string(),
        request_id[request_id.len() - 16..].to_string(),
        format!(
            "-{}",
            &request_id[request_id.len() - 16..request_id.len() - 2]
        ),
        "blk_-0000000000000000000".to_string(),
        "-99999999999999999".to_string(),
    ];
    let mut matched = 0;
    let mut least_read = u64::MAX;
    for needle in &needles {
        let want: BTreeSet<(i64, String)> = all
            .iter()
            .filter(|e| e.line.contains(needle.as_str()))
            .map(|e| (e.ts_ns, e.line.clone()))
            .collect();
        matched += usize::from(!want.is_empty());
        let query = format!(r#"{{app=~".+"}} |= "{needle}""#);
        let (got, read) = answer(vigil, &query, range);
        assert_eq!(got, want, "{context}: {query}");
        least_read = least_read.min(read);
    }
    assert!(matched >= 7, "{context}: most needles occur");
    if context == "blocks" {
        // The indexes did skip: some needle read under a third of the lines.
        assert!(
            least_read < all.len() as u64 / 3,
            "{context}: read {least_read}"
        );
    }

    // `| json | logger="..."`: a logger value in the line, escaped or not, or in metadata.
    for logger in [
        "org.apache.hadoop.ipc.Client",
        "org.apache.hadoop.hdfs.DFSClient",
    ] {
        let range = (t0 - NS, t0 + JSON_NS);
        let want: BTreeSet<(i64, String)> = data[2]
            .1
            .iter()
            .filter(|e| e.ts_ns < range.1)
            .filter(|e| {
                let parsed: serde_json::Value = serde_json::from_str(&e.line).unwrap();
                let from_metadata = e.metadata.iter().find(|(n, _)| n == "logger");
                match from_metadata {
                    Some((_, v)) => v == logger,
                    None => parsed["logger"] == logger,
                }
            })
            .map(|e| (e.ts_ns, e.line.clone()))
            .collect();
        assert!(
            want.iter().any(|(_, l)| l.contains("\\u002e")),
            "escaped lines"
        );
        let query = format!(r#"{{app="hadoop"}} | json | logger="{logger}""#);
        assert_eq!(answer(vigil, &query, range).0, want, "{context}: {query}");
    }
}

#[test]
fn line_indexes_never_change_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut vigil = Vigil::start(dir.path(), VigilOpts::default());
    let now = now_ns();
    // The start of the 2 h block range that began at least 3 h ago, plus a minute.
    let block = 2 * 3600 * NS;
    let t0 = (now - 3 * 3600 * NS).div_euclid(block) * block + 60 * NS;
    let data = lines(t0);
    push_streams_json(&vigil, &data);
    check(&vigil, &data, t0, "head");
    vigil.terminate(Duration::from_secs(60));
    vigil.restart();
    check(&vigil, &data, t0, "blocks");
}
