//! Data-driven LogQL tests: every `tests/scripts/*.test` file loads log lines into an in-memory
//! source and checks queries against expected answers, in the style of Prometheus' promqltest.
//!
//! ```text
//! load
//!   {app="a", env="prod"} 10s "a line"       # labels, time (s/ms/m/h), JSON string
//!
//! eval logs 0s 60s 100 backward {app="a"} |= "line"
//!   {app="a", env="prod"} 10s "a line"       # result streams sorted by labels, entries in answer order
//!
//! eval range 0s 60s 30s count_over_time({app="a"}[1m])
//!   {app="a", env="prod"} 30s=1 60s=1        # one line per series, sorted by labels
//!
//! eval instant 60s sum(count_over_time({app="a"}[1m]))
//!   {} 1                                     # `scalar 3` for a scalar answer
//!
//! eval_fail range 0s 60s 30s avg_over_time({app="a"}[1m])
//!   expect unwrap                            # optional: a substring of the error
//! ```
//! `clear` empties the source.

use std::fmt::Write as _;
use std::path::Path;

use vigil_logql::ast::Expr;
use vigil_logql::{LogSource, MetricValue, SourceStream, Steps};
use vigil_model::{Label, Labels, LogEntry, LogReadFilter, Matcher};

#[derive(Default)]
struct MemSource {
    streams: Vec<SourceStream>,
}

impl LogSource for MemSource {
    fn select(
        &self,
        selector: &[Matcher],
        start_ns: i64,
        end_ns: i64,
        filter: &LogReadFilter,
    ) -> Result<Vec<SourceStream>, String> {
        Ok(self
            .streams
            .iter()
            .filter(|s| {
                selector
                    .iter()
                    .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
            })
            .map(|s| SourceStream {
                labels: s.labels.clone(),
                entries: s
                    .entries
                    .iter()
                    .filter(|e| e.timestamp_ns >= start_ns && e.timestamp_ns <= end_ns)
                    .filter(|e| filter.keeps(&e.line))
                    .map(|e| LogEntry {
                        line: filter.line(&e.line),
                        ..e.clone()
                    })
                    .collect(),
            })
            .collect())
    }
}

impl MemSource {
    fn push(&mut self, labels: Labels, entry: LogEntry) {
        match self.streams.iter_mut().find(|s| s.labels == labels) {
            Some(s) => s.entries.push(entry),
            None => self.streams.push(SourceStream {
                labels,
                entries: vec![entry],
            }),
        }
        for s in &mut self.streams {
            s.entries.sort_by_key(|e| e.timestamp_ns);
        }
    }
}

/// `10s`, `1500ms`, `2m`, `1h`, `0` → nanoseconds.
fn parse_time(s: &str) -> i64 {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().unwrap_or_else(|_| panic!("bad time {s:?}"));
    let scale = match unit {
        "ns" => 1.0,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        other => panic!("bad unit {other:?} in {s:?}"),
    };
    (n * scale).round() as i64
}

fn format_time(ns: i64) -> String {
    if ns % 1_000_000_000 == 0 {
        format!("{}s", ns / 1_000_000_000)
    } else {
        format!("{}ms", ns / 1_000_000)
    }
}

/// Splits `{a="b", c="d"} rest` into the labels and the rest.
fn parse_labels(s: &str) -> (Labels, &str) {
    let s = s.trim_start();
    assert!(s.starts_with('{'), "labels expected: {s}");
    let mut in_str = false;
    let mut escaped = false;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else if c == '}' {
            end = i;
            break;
        }
    }
    let body = &s[1..end];
    let mut pairs = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').expect("name=value");
        let after = after.trim_start();
        let mut de = serde_json::Deserializer::from_str(after).into_iter::<String>();
        let value = de.next().expect("value").expect("JSON string value");
        let used = de.byte_offset();
        pairs.push(Label::new(name.trim(), value));
        rest = after[used..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    (Labels::from_unsorted(pairs), &s[end + 1..])
}

fn labels_text(labels: &Labels) -> String {
    let mut out = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write!(
            out,
            "{}={}",
            l.name,
            serde_json::Value::String(l.value.clone())
        )
        .unwrap();
    }
    out.push('}');
    out
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        let s = format!("{v}");
        s
    }
}

fn run_eval(source: &MemSource, header: &str) -> Result<Vec<String>, String> {
    let mut words = header.split_whitespace();
    let kind = words.next().unwrap_or_default();
    let mut take = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| words.next().expect("eval argument").to_string())
            .collect()
    };
    let (args, query_start) = match kind {
        "logs" => (take(4), 5),
        "range" => (take(3), 4),
        "instant" => (take(1), 2),
        other => panic!("unknown eval kind {other:?}"),
    };
    // The query is everything after the arguments.
    let query = header
        .split_whitespace()
        .skip(query_start)
        .collect::<Vec<_>>()
        .join(" ");
    let expr = vigil_logql::parser::parse(&query).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match (kind, expr) {
        ("logs", Expr::Log(log)) => {
            let forward = match args[3].as_str() {
                "forward" => true,
                "backward" => false,
                other => panic!("bad direction {other}"),
            };
            let mut streams = vigil_logql::eval_log_query(
                &log,
                source,
                parse_time(&args[0]),
                parse_time(&args[1]),
                args[2].parse().expect("limit"),
                forward,
                Default::default(),
            )
            .map_err(|e| e.to_string())?;
            streams.sort_by(|a, b| a.labels.cmp(&b.labels));
            for s in streams {
                for e in s.entries {
                    out.push(format!(
                        "{} {} {}",
                        labels_text(&s.labels.to_labels()),
                        format_time(e.timestamp_ns),
                        serde_json::Value::String(e.line)
                    ));
                }
            }
        }
        ("range", Expr::Metric(m)) => {
            let steps = Steps {
                start_ns: parse_time(&args[0]),
                end_ns: parse_time(&args[1]),
                step_ns: parse_time(&args[2]),
            };
            let value = vigil_logql::eval_metric_query(&m, source, steps, Default::default())
                .map_err(|e| e.to_string())?;
            match value {
                MetricValue::Scalar(values) => {
                    let points: Vec<String> = values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| format!("{}={}", format_time(steps.at(i)), format_value(*v)))
                        .collect();
                    out.push(format!("scalar {}", points.join(" ")));
                }
                MetricValue::Vector(mut series) => {
                    series.sort_by(|a, b| a.labels.cmp(&b.labels));
                    for s in series {
                        let points: Vec<String> = s
                            .values
                            .iter()
                            .enumerate()
                            .filter_map(|(i, v)| {
                                v.map(|v| {
                                    format!("{}={}", format_time(steps.at(i)), format_value(v))
                                })
                            })
                            .collect();
                        if !points.is_empty() {
                            out.push(format!("{} {}", labels_text(&s.labels), points.join(" ")));
                        }
                    }
                }
            }
        }
        ("instant", Expr::Metric(m)) => {
            let steps = Steps::instant(parse_time(&args[0]));
            let value = vigil_logql::eval_metric_query(&m, source, steps, Default::default())
                .map_err(|e| e.to_string())?;
            match value {
                MetricValue::Scalar(values) => {
                    out.push(format!("scalar {}", format_value(values[0])))
                }
                MetricValue::Vector(mut series) => {
                    series.sort_by(|a, b| a.labels.cmp(&b.labels));
                    for s in series {
                        if let Some(Some(v)) = s.values.first() {
                            out.push(format!("{} {}", labels_text(&s.labels), format_value(*v)));
                        }
                    }
                }
            }
        }
        (kind, _) => return Err(format!("query kind does not fit `eval {kind}`")),
    }
    Ok(out)
}

fn run_file(path: &Path) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut source = MemSource::default();
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut i = 0;
    let strip = |l: &str| -> String {
        // Comments start with `#` outside the data lines' JSON strings only at line start.
        l.trim().to_string()
    };
    while i < lines.len() {
        let line = strip(lines[i]);
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let body_start = i;
        while i < lines.len() && lines[i].starts_with("  ") && !lines[i].trim().is_empty() {
            i += 1;
        }
        let body: Vec<String> = lines[body_start..i]
            .iter()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.starts_with('#'))
            .collect();
        if line == "clear" {
            source = MemSource::default();
        } else if line == "load" {
            for data in &body {
                let (labels, rest) = parse_labels(data);
                let rest = rest.trim_start();
                let (ts, line_json) = rest.split_once(' ').expect("time and line");
                let text: String = serde_json::from_str(line_json.trim())
                    .unwrap_or_else(|e| panic!("bad line {line_json}: {e}"));
                source.push(
                    labels,
                    LogEntry {
                        timestamp_ns: parse_time(ts),
                        line: text,
                        structured_metadata: vec![],
                    },
                );
            }
        } else if let Some(header) = line.strip_prefix("eval_fail ") {
            cases += 1;
            let expected = body
                .iter()
                .find_map(|l| l.strip_prefix("expect "))
                .map(str::to_string);
            match run_eval(&source, header) {
                Ok(out) => failures.push(format!(
                    "{}:{}: `{header}` should fail, got {out:?}",
                    path.display(),
                    body_start
                )),
                Err(e) => {
                    if let Some(want) = expected {
                        if !e.contains(&want) {
                            failures.push(format!(
                                "{}:{}: `{header}` failed with {e:?}, expected it to contain {want:?}",
                                path.display(),
                                body_start
                            ));
                        }
                    }
                }
            }
        } else if let Some(header) = line.strip_prefix("eval ") {
            cases += 1;
            match run_eval(&source, header) {
                Ok(out) => {
                    if out != body {
                        failures.push(format!(
                            "{}:{}: `{header}`\n  expected:\n    {}\n  got:\n    {}",
                            path.display(),
                            body_start,
                            body.join("\n    "),
                            out.join("\n    ")
                        ));
                    }
                }
                Err(e) => failures.push(format!(
                    "{}:{}: `{header}` failed: {e}",
                    path.display(),
                    body_start
                )),
            }
        } else {
            panic!(
                "{}:{}: unknown command {line:?}",
                path.display(),
                body_start
            );
        }
    }
    (cases, failures)
}

#[test]
fn logql_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", dir.display());
    let mut all_failures = Vec::new();
    for file in files {
        let (cases, failures) = run_file(&file);
        println!(
            "{}: {} of {} passed",
            file.file_name().unwrap().to_string_lossy(),
            cases - failures.len(),
            cases
        );
        all_failures.extend(failures);
    }
    assert!(all_failures.is_empty(), "{}", all_failures.join("\n"));
}

#[test]
fn queries_past_their_deadline_fail_with_a_timeout() {
    let mut source = MemSource::default();
    for i in 0..10_000 {
        source.streams.push(SourceStream {
            labels: Labels::from_unsorted(vec![
                Label::new("app", "a"),
                Label::new("i", i.to_string()),
            ]),
            entries: vec![LogEntry {
                timestamp_ns: 1,
                line: "x".into(),
                structured_metadata: vec![],
            }],
        });
    }
    let limits = vigil_logql::Limits {
        deadline: Some(std::time::Instant::now()),
        ..Default::default()
    };
    let Expr::Log(log) = vigil_logql::parser::parse(r#"{app="a"} | logfmt"#).unwrap() else {
        panic!("log query expected")
    };
    let err = vigil_logql::eval_log_query(&log, &source, 0, 10, 100, false, limits).unwrap_err();
    assert!(matches!(err, vigil_logql::EvalError::Timeout), "{err}");
    let Expr::Metric(m) =
        vigil_logql::parser::parse(r#"sum(count_over_time({app="a"}[1m]))"#).unwrap()
    else {
        panic!("metric query expected")
    };
    let err = vigil_logql::eval_metric_query(&m, &source, Steps::instant(10), limits).unwrap_err();
    assert!(matches!(err, vigil_logql::EvalError::Timeout), "{err}");
}

/// The lines of a log query's answer in answer order: time in the query's direction, then
/// labels, then line.
fn answer_lines(
    streams: &[vigil_logql::StreamResult],
    forward: bool,
) -> Vec<(i64, String, String)> {
    let mut lines: Vec<(i64, String, String)> = streams
        .iter()
        .flat_map(|s| {
            let labels = labels_text(&s.labels.to_labels());
            s.entries
                .iter()
                .map(move |e| (e.timestamp_ns, labels.clone(), e.line.clone()))
        })
        .collect();
    lines.sort_by(|a, b| {
        let by_time = if forward {
            a.0.cmp(&b.0)
        } else {
            b.0.cmp(&a.0)
        };
        by_time.then_with(|| (&a.1, &a.2).cmp(&(&b.1, &b.2)))
    });
    lines
}

/// Over streams long enough to be cut into many units for the cores, the answer with a limit
/// is the first lines of the whole answer: two identical streams (one after `drop pod`),
/// identical entries inside a stream, streams that end early.
#[test]
fn limited_answers_are_the_first_lines_of_the_whole_answer() {
    let mut source = MemSource::default();
    let stream =
        |pod: &str| Labels::from_unsorted(vec![Label::new("app", "x"), Label::new("pod", pod)]);
    let mut seed = 7u64;
    let mut entries: [Vec<LogEntry>; 4] = Default::default();
    for i in 0..1500i64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let level = if seed >> 62 == 0 { "debug" } else { "info" };
        let entry = |offset_ms: i64, n: i64| LogEntry {
            timestamp_ns: (i * 1000 + offset_ms) * 1_000_000,
            line: format!("level={level} n={n}"),
            structured_metadata: vec![],
        };
        entries[0].push(entry(0, i));
        entries[1].push(entry(0, i));
        entries[2].push(entry(333, i % 97));
        if i % 5 == 0 {
            entries[2].push(entry(333, i % 97));
        }
        if i < 200 {
            entries[3].push(entry(666, i));
        }
    }
    for (pod, entries) in ["1", "2", "3", "4"].into_iter().zip(entries) {
        source.streams.push(SourceStream {
            labels: stream(pod),
            entries,
        });
    }
    let end = 1_600 * 1_000_000_000;
    for query in [
        r#"{app="x"} | drop pod"#,
        r#"{app="x"} | logfmt | level="info""#,
        r#"{app="x"} | keep app"#,
        r#"{app="x"} | logfmt | n > 1400"#,
    ] {
        let Expr::Log(log) = vigil_logql::parser::parse(query).unwrap() else {
            panic!("log query expected")
        };
        for forward in [false, true] {
            let all = vigil_logql::eval_log_query(
                &log,
                &source,
                0,
                end,
                100_000,
                forward,
                Default::default(),
            )
            .unwrap();
            let all = answer_lines(&all, forward);
            for limit in [1, 10, 300, 1000, 2500] {
                let got = vigil_logql::eval_log_query(
                    &log,
                    &source,
                    0,
                    end,
                    limit,
                    forward,
                    Default::default(),
                )
                .unwrap();
                let want = &all[..limit.min(all.len())];
                assert_eq!(
                    answer_lines(&got, forward),
                    want,
                    "{query} limit {limit} forward {forward}"
                );
            }
        }
    }
}
