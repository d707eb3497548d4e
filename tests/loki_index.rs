//! `index/stats`, `index/volume` and `index/volume_range` against the real binary: entries and
//! line bytes per stream group and per step, as Grafana's log volume histogram and query-size
//! estimate ask for them, checked against sums computed here over what was pushed, once from
//! the head and once from log blocks (after a graceful restart).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::http::urlencode;
use common::loki::{now_ns, push_streams_json, stream_labels, Entry, StreamLabels};
use common::process::VigilOpts;
use common::Vigil;

const STEP_S: i64 = 60;
const NS: i64 = 1_000_000_000;

/// What was pushed: three streams over about ten minutes, one with structured metadata.
fn dataset(t0: i64) -> Vec<(StreamLabels, Vec<Entry>)> {
    let info: Vec<Entry> = (0..90)
        .map(|k| {
            Entry::new(
                t0 + k * 7 * NS,
                &format!("info line {k} {}", "x".repeat(k as usize % 13)),
            )
        })
        .collect();
    let error: Vec<Entry> = (0..50)
        .map(|k| Entry {
            metadata: vec![("trace_id".into(), format!("t{}", k % 3))],
            ..Entry::new(t0 + 3 * NS + k * 11 * NS, &format!("error {k}"))
        })
        .collect();
    let other: Vec<Entry> = (0..20).map(|k| Entry::new(t0 + k * 29 * NS, "b")).collect();
    vec![
        (stream_labels(&[("app", "a"), ("level", "info")]), info),
        (stream_labels(&[("app", "a"), ("level", "error")]), error),
        (stream_labels(&[("app", "b"), ("level", "info")]), other),
    ]
}

/// (entries, bytes) of the entries of streams `app="a"` in `[start, end)`, grouped by the
/// values of `target` labels, by bucket end (`None`: the whole range).
fn expected(
    data: &[(StreamLabels, Vec<Entry>)],
    (start, end): (i64, i64),
    target: &[&str],
    step: Option<i64>,
) -> BTreeMap<(Vec<String>, i64), (u64, u64)> {
    let mut out: BTreeMap<(Vec<String>, i64), (u64, u64)> = BTreeMap::new();
    for (labels, entries) in data {
        if labels.get("app").map(String::as_str) != Some("a") {
            continue;
        }
        let key: Vec<String> = labels
            .iter()
            .filter(|(n, _)| target.contains(&n.as_str()))
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        for e in entries.iter().filter(|e| (start..end).contains(&e.ts_ns)) {
            let at = match step {
                // An entry counts at the end of its step-aligned bucket.
                Some(step) => e.ts_ns.div_euclid(step) * step + step,
                None => 0,
            };
            let slot = out.entry((key.clone(), at)).or_default();
            slot.0 += 1;
            slot.1 += e.line.len() as u64;
        }
    }
    out
}

fn metric_key(metric: &serde_json::Value) -> Vec<String> {
    let mut key: Vec<String> = metric
        .as_object()
        .expect("metric object")
        .iter()
        .map(|(n, v)| format!("{n}={}", v.as_str().expect("label value")))
        .collect();
    key.sort();
    key
}

fn check(vigil: &Vigil, data: &[(StreamLabels, Vec<Entry>)], range: (i64, i64), context: &str) {
    let get = |path: &str, extra: &str| -> serde_json::Value {
        let url = vigil.url(&format!(
            "/loki/api/v1/{path}?query={}&start={}&end={}{extra}",
            urlencode(r#"{app="a"}"#),
            range.0,
            range.1
        ));
        let response = vigil.client.get(&url, None).expect(path);
        assert_eq!(
            response.status,
            200,
            "{context} {path}: {}",
            response.text()
        );
        response.json()
    };

    // index/stats: two streams of app="a", their entries and line bytes.
    let whole = expected(data, range, &[], None);
    let (entries, bytes) = whole.values().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(entries > 0, "{context}: the range holds entries");
    let stats = get("index/stats", "");
    assert_eq!(stats["streams"], 2, "{context}: {stats}");
    assert_eq!(stats["entries"], entries, "{context}: {stats}");
    assert_eq!(stats["bytes"], bytes, "{context}: {stats}");

    // index/volume: by the selector's labels (app), then by level.
    for (extra, target) in [("", vec!["app"]), ("&targetLabels=level", vec!["level"])] {
        let want: BTreeMap<Vec<String>, u64> = expected(data, range, &target, None)
            .into_iter()
            .map(|((key, _), (_, bytes))| (key, bytes))
            .collect();
        let answer = get("index/volume", extra);
        let got: BTreeMap<Vec<String>, u64> = answer["data"]["result"]
            .as_array()
            .expect("result")
            .iter()
            .map(|r| {
                let bytes = r["value"][1].as_str().expect("value").parse().unwrap();
                (metric_key(&r["metric"]), bytes)
            })
            .collect();
        assert_eq!(got, want, "{context} volume{extra}");
    }

    // index/volume_range: line bytes per minute bucket, by level.
    let want: BTreeMap<(Vec<String>, i64), u64> =
        expected(data, range, &["level"], Some(STEP_S * NS))
            .into_iter()
            .map(|((key, at), (_, bytes))| ((key, at / NS), bytes))
            .collect();
    let answer = get(
        "index/volume_range",
        &format!("&step={STEP_S}&targetLabels=level"),
    );
    let mut got: BTreeMap<(Vec<String>, i64), u64> = BTreeMap::new();
    for series in answer["data"]["result"].as_array().expect("result") {
        let key = metric_key(&series["metric"]);
        for point in series["values"].as_array().expect("values") {
            let at = point[0].as_i64().expect("integer seconds");
            let bytes = point[1].as_str().expect("value").parse().unwrap();
            got.insert((key.clone(), at), bytes);
        }
    }
    assert_eq!(got, want, "{context} volume_range");
}

#[test]
fn index_stats_and_volumes_sum_line_bytes_from_head_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut vigil = Vigil::start(dir.path(), VigilOpts::default());
    let now = now_ns();
    // Half an hour ago, off the minute, so buckets and the range cut through the data.
    let t0 = (now - 30 * 60 * NS) / (60 * NS) * (60 * NS) + 17 * NS;
    let data = dataset(t0);
    push_streams_json(&vigil, &data);
    let ranges = [
        (t0 - 60 * NS, t0 + 20 * 60 * NS),
        (t0 + 100 * NS + 1, t0 + 400 * NS),
    ];
    for range in ranges {
        check(&vigil, &data, range, "head");
    }
    vigil.terminate(Duration::from_secs(60));
    vigil.restart();
    for range in ranges {
        check(&vigil, &data, range, "blocks");
    }
}
