//! Vigil's PromQL against a real Prometheus (Debian's 2.42), live: both get the same data from
//! `obsload metrics-write` (the shared reference client, see `/work/shared/bin/README.md`), then
//! `obsload compare` runs every query of the vendored public corpus
//! (`tests/data/promql-corpus-public.txt`) and of our own extra corpus
//! (`tests/data/promql-corpus-extra.txt`) as range and instant queries against both and compares
//! the results the way the PromQL compliance tester does.
//!
//! Every mismatch must be listed with its reason in `tests/data/promql-compare-known-mismatches.txt`
//! and every listed query must still mismatch (so the list stays honest). Vigil follows Prometheus
//! 3.x where 3.x changed 2.42's results; such entries are marked (reason `3.x: …`) and count as
//! matches in the adjusted score, which must reach 99% on the public corpus. The score and each
//! mismatch, with obsload's detail, are printed (run with `--nocapture`). obsload's A is
//! Prometheus (its reference side), B is Vigil.
//!
//! obsload is found through `VIGIL_OBSLOAD`, else `<repo>/../shared/bin/obsload`, else
//! `/work/shared/bin/obsload`; a missing obsload fails the test.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{urlencode, Client};
use common::process::VigilOpts;
use common::prometheus::Prometheus;
use common::{free_port, now_ms, require_prometheus, wait_for, Proc, Vigil};

/// The data set: `obsload metrics-write --series SERIES --samples-per-series SAMPLES_PER_SERIES
/// --seed SEED`, one sample per 15 s.
const SERIES: usize = 3000;
const SAMPLES_PER_SERIES: usize = 120;
const INTERVAL_MS: i64 = 15_000;
const SEED: u64 = 1;
/// The public corpus must match at least this share of its queries (percent), counting the listed
/// Prometheus 3.x differences as matches.
const MIN_PUBLIC_SCORE: f64 = 99.0;
/// Bound of one `obsload metrics-write` run.
const WRITE_TIMEOUT: Duration = Duration::from_secs(180);
/// Bound of one `obsload compare` run (it is killed after this).
const COMPARE_TIMEOUT: Duration = Duration::from_secs(600);
/// Bound of one query request inside `obsload compare`.
const QUERY_TIMEOUT_S: u64 = 60;

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data_file(name: &str) -> PathBuf {
    repo_dir().join("tests/data").join(name)
}

/// The obsload binary; panics with where it was looked for if it is not there.
fn obsload() -> PathBuf {
    if let Some(path) = std::env::var_os("VIGIL_OBSLOAD") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "VIGIL_OBSLOAD={} is not a file (it should be the obsload binary, see \
             /work/shared/bin/README.md)",
            path.display()
        );
        return path;
    }
    let candidates = [
        repo_dir().join("../shared/bin/obsload"),
        PathBuf::from("/work/shared/bin/obsload"),
    ];
    for candidate in &candidates {
        if candidate.is_file() {
            return candidate.clone();
        }
    }
    panic!(
        "obsload not found (looked at $VIGIL_OBSLOAD, {} and {}): this test needs the shared \
         obsload binary (see /work/shared/bin/README.md); set VIGIL_OBSLOAD to its path",
        candidates[0].display(),
        candidates[1].display()
    );
}

/// Runs obsload with `args`, its stdout and stderr going to `log`; kills it after `timeout`
/// (panicking) and panics if it fails. Returns what it printed.
fn run_obsload(
    obsload: &Path,
    name: &str,
    args: &[String],
    log: &Path,
    timeout: Duration,
) -> String {
    let mut command = Command::new(obsload);
    command.args(args);
    let mut proc = Proc::spawn(name, command, log);
    // Panics after `timeout`; the guard then kills obsload and prints its log.
    let status = proc.wait_exit(timeout);
    let text = proc.log_text();
    assert!(
        status.success(),
        "{name} failed with {status}; args {args:?}; output:\n{text}"
    );
    text
}

/// Writes the data set to `url` and checks that every sample was accepted.
fn write_data(obsload: &Path, url: &str, start_ms: i64, log: &Path) -> serde_json::Value {
    let args: Vec<String> = [
        "metrics-write",
        "--url",
        url,
        "--series",
        &SERIES.to_string(),
        "--samples-per-series",
        &SAMPLES_PER_SERIES.to_string(),
        "--interval-ms",
        &INTERVAL_MS.to_string(),
        "--start-ms",
        &start_ms.to_string(),
        "--seed",
        &SEED.to_string(),
        "--max-seconds",
        &WRITE_TIMEOUT.as_secs().to_string(),
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    let started = Instant::now();
    let output = run_obsload(
        obsload,
        "obsload metrics-write",
        &args,
        log,
        WRITE_TIMEOUT + Duration::from_secs(30),
    );
    let summary_line = output
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with('{'))
        .unwrap_or_else(|| {
            panic!("obsload metrics-write to {url} printed no JSON summary:\n{output}")
        });
    let summary: serde_json::Value = serde_json::from_str(summary_line).unwrap_or_else(|err| {
        panic!("obsload metrics-write summary is not JSON ({err}): {summary_line}")
    });
    let samples = summary["samples"].as_u64().unwrap_or(0);
    let samples_ok = summary["samples_ok"].as_u64().unwrap_or(0);
    eprintln!(
        "wrote {samples_ok} of {samples} samples to {url} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        samples > 0 && samples_ok == samples,
        "obsload metrics-write to {url}: {samples_ok} of {samples} samples ok; summary {summary}"
    );
    assert_eq!(
        summary["stopped_by_deadline"], false,
        "obsload metrics-write to {url} hit its deadline: {summary}"
    );
    summary
}

/// `count({__name__=~".+"})` at `time_s` on the Prometheus-API server at `base_url`.
fn series_count(client: &Client, base_url: &str, time_s: i64) -> Result<f64, String> {
    let url = format!(
        "{base_url}/api/v1/query?query={}&time={time_s}",
        urlencode(r#"count({__name__=~".+"})"#)
    );
    let response = client.get(&url, None)?;
    if response.status != 200 {
        return Err(format!("{url}: {} {}", response.status, response.text()));
    }
    let json: serde_json::Value = serde_json::from_slice(&response.body)
        .map_err(|err| format!("{url}: not JSON ({err}): {}", response.text()))?;
    json["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|value| value.parse::<f64>().ok())
        .ok_or_else(|| format!("{url}: no count in {json}"))
}

/// One query's result in `obsload compare`'s output.
#[derive(Debug)]
struct Outcome {
    query: String,
    /// `None` if the results matched, else obsload's verdict (`FAIL` or `ERROR`) and its detail.
    mismatch: Option<(String, String)>,
}

/// What `obsload compare` printed.
#[derive(Debug)]
struct CompareRun {
    compared: usize,
    matched: usize,
    failed: usize,
    errors: usize,
    outcomes: Vec<Outcome>,
    timing: Option<String>,
}

impl CompareRun {
    fn score(&self) -> f64 {
        if self.compared == 0 {
            0.0
        } else {
            100.0 * self.matched as f64 / self.compared as f64
        }
    }

    /// Parses the `--verbose` output: `ok QUERY`, `FAIL QUERY :: DETAIL`, `ERROR QUERY :: DETAIL`,
    /// `timing {...}` and last `compared N, matched M, failed F, errors E`.
    fn parse(output: &str) -> CompareRun {
        let mut outcomes = Vec::new();
        let mut timing = None;
        let mut summary = None;
        for line in output.lines() {
            if let Some(query) = line.strip_prefix("ok ") {
                outcomes.push(Outcome {
                    query: query.to_string(),
                    mismatch: None,
                });
            } else if let Some((verdict, rest)) = ["FAIL ", "ERROR "].iter().find_map(|verdict| {
                line.strip_prefix(verdict)
                    .map(|rest| (verdict.trim(), rest))
            }) {
                let (query, detail) = rest.split_once(" :: ").unwrap_or((rest, ""));
                outcomes.push(Outcome {
                    query: query.to_string(),
                    mismatch: Some((verdict.to_string(), detail.to_string())),
                });
            } else if let Some(json) = line.strip_prefix("timing ") {
                timing = Some(json.to_string());
            } else if let Some(rest) = line.strip_prefix("compared ") {
                summary = Some(rest.to_string());
            }
        }
        let summary = summary.unwrap_or_else(|| {
            panic!("obsload compare printed no `compared N, matched M, failed F, errors E` line:\n{output}")
        });
        // "N, matched M, failed F, errors E"
        let numbers: Vec<usize> = summary
            .split(',')
            .map(|part| {
                part.split_whitespace()
                    .last()
                    .and_then(|number| number.parse().ok())
                    .unwrap_or_else(|| panic!("cannot parse obsload summary `compared {summary}`"))
            })
            .collect();
        let [compared, matched, failed, errors] = numbers[..] else {
            panic!("cannot parse obsload summary `compared {summary}`");
        };
        let run = CompareRun {
            compared,
            matched,
            failed,
            errors,
            outcomes,
            timing,
        };
        let mismatches = run.outcomes.iter().filter(|o| o.mismatch.is_some()).count();
        assert!(
            run.outcomes.len() == compared
                && mismatches == failed + errors
                && matched + failed + errors == compared,
            "obsload compare output does not add up: summary `compared {summary}`, {} query lines \
             of which {mismatches} mismatches",
            run.outcomes.len()
        );
        run
    }
}

/// The queries of a query file (one per line; blank lines and `#` comments skipped).
fn read_queries(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("read query file {}: {err}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The known mismatches: `QUERY # reason` per line (blank lines and `#` comments skipped).
fn read_known_mismatches(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("read known mismatches {}: {err}", path.display()));
    let mut known = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (query, reason) = line.split_once(" # ").unwrap_or_else(|| {
            panic!(
                "{}:{}: expected `QUERY # reason`, got `{line}`",
                path.display(),
                number + 1
            )
        });
        let (query, reason) = (query.trim(), reason.trim());
        assert!(
            !query.is_empty() && !reason.is_empty(),
            "{}:{}: expected `QUERY # reason`, got `{line}`",
            path.display(),
            number + 1
        );
        assert!(
            known
                .insert(query.to_string(), reason.to_string())
                .is_none(),
            "{}:{}: `{query}` is listed twice",
            path.display(),
            number + 1
        );
    }
    known
}

/// Runs `obsload compare` with Prometheus as A (the reference) and Vigil as B.
#[allow(clippy::too_many_arguments)] // one call site; the names say what each is
fn compare(
    obsload: &Path,
    prometheus_url: &str,
    vigil_url: &str,
    queries: &Path,
    start_s: i64,
    end_s: i64,
    log: &Path,
    label: &str,
) -> CompareRun {
    let args: Vec<String> = vec![
        "compare".into(),
        "--a".into(),
        prometheus_url.into(),
        "--b".into(),
        vigil_url.into(),
        "--queries".into(),
        queries.display().to_string(),
        "--start".into(),
        start_s.to_string(),
        "--end".into(),
        end_s.to_string(),
        "--step".into(),
        "15s".into(),
        "--timeout-s".into(),
        QUERY_TIMEOUT_S.to_string(),
        "--verbose".into(),
    ];
    let started = Instant::now();
    let output = run_obsload(
        obsload,
        &format!("obsload compare ({label})"),
        &args,
        log,
        COMPARE_TIMEOUT,
    );
    let run = CompareRun::parse(&output);
    eprintln!(
        "obsload compare ({label}) took {:.1}s; timing {}",
        started.elapsed().as_secs_f64(),
        run.timing.as_deref().unwrap_or("(none)")
    );
    // Every query of the file was compared, once.
    let mut expected = read_queries(queries);
    let mut seen: Vec<String> = run.outcomes.iter().map(|o| o.query.clone()).collect();
    expected.sort();
    seen.sort();
    assert_eq!(
        seen,
        expected,
        "obsload compare ({label}) did not report each query of {} once",
        queries.display()
    );
    run
}

/// The reason prefix of a known mismatch that is a difference between Prometheus 2.42 and 3.x
/// where Vigil follows 3.x; such mismatches count as matches in the adjusted score.
const VERSION_DIFFERENCE: &str = "3.x:";

/// Prints the score and every mismatch (with obsload's detail); returns the problems: mismatches
/// that are not listed in `known`, and an adjusted score below `min_score` (if given). The
/// adjusted score counts the listed Prometheus 3.x differences as matches.
fn report(
    label: &str,
    run: &CompareRun,
    min_score: Option<f64>,
    known: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    eprintln!();
    eprintln!(
        "promql live comparison{label}: matched {} of {} ({:.2}%) [failed {}, errors {}]",
        run.matched,
        run.compared,
        run.score(),
        run.failed,
        run.errors
    );
    let mut unlisted = Vec::new();
    let mut version_differences = 0;
    for outcome in &run.outcomes {
        let Some((verdict, detail)) = &outcome.mismatch else {
            continue;
        };
        let listed = known.get(&outcome.query);
        let tag = match listed {
            Some(reason) => format!("known: {reason}"),
            None => "NOT LISTED".to_string(),
        };
        eprintln!("  {verdict} [{tag}] {}", outcome.query);
        eprintln!("      {detail}");
        match listed {
            Some(reason) if reason.starts_with(VERSION_DIFFERENCE) => version_differences += 1,
            Some(_) => {}
            None => unlisted.push(outcome.query.clone()),
        }
    }
    let adjusted = if run.compared == 0 {
        0.0
    } else {
        100.0 * (run.matched + version_differences) as f64 / run.compared as f64
    };
    eprintln!(
        "promql live comparison{label}: adjusted score {adjusted:.2}% (counting the \
         {version_differences} listed Prometheus 3.x differences as matches){}",
        match min_score {
            Some(min_score) => format!("; must be at least {min_score}%"),
            None => String::new(),
        }
    );
    if let Some(min_score) = min_score {
        if adjusted < min_score {
            problems.push(format!(
                "promql live comparison{label}: adjusted score {adjusted:.2}% is below \
                 {min_score}% (matched {} of {}, plus {version_differences} listed Prometheus \
                 3.x differences)",
                run.matched, run.compared
            ));
        }
    }
    if !unlisted.is_empty() {
        problems.push(format!(
            "promql live comparison{label}: {} mismatching queries are not in \
             tests/data/promql-compare-known-mismatches.txt:\n    {}",
            unlisted.len(),
            unlisted.join("\n    ")
        ));
    }
    problems
}

#[test]
fn promql_matches_prometheus_on_the_same_data() {
    let test_started = Instant::now();
    let obsload = obsload();
    let prometheus_binary = require_prometheus();
    let public_corpus = data_file("promql-corpus-public.txt");
    let extra_corpus = data_file("promql-corpus-extra.txt");
    let known_path = data_file("promql-compare-known-mismatches.txt");
    let known = read_known_mismatches(&known_path);
    let dir = tempfile::tempdir().unwrap();

    let vigil_dir = dir.path().join("vigil");
    std::fs::create_dir_all(&vigil_dir).unwrap();
    let vigil = Vigil::start(&vigil_dir, VigilOpts::default());
    let prometheus_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prometheus_dir).unwrap();
    let config_path = prometheus_dir.join("prometheus.yml");
    // No scrape jobs: the only data is what obsload writes.
    std::fs::write(&config_path, "global:\n  scrape_interval: 15s\n").unwrap();
    let prometheus = Prometheus::start(
        &prometheus_binary,
        &prometheus_dir,
        &config_path,
        free_port(),
        &["--web.enable-remote-write-receiver"],
    );
    let (vigil_url, prometheus_url) = (vigil.base_url(), prometheus.base_url());
    eprintln!("vigil at {vigil_url}, prometheus at {prometheus_url}");

    // Prometheus' head takes only recent samples: the data ends just before now (as in
    // /work/shared/bin/README.md), and the queries cover its last 20 minutes.
    let start_ms = (now_ms() - 121 * INTERVAL_MS) / 60_000 * 60_000;
    let end_s = start_ms / 1000 + 1800;
    let start_s = end_s - 1200;
    let logs = dir.path();
    let vigil_write = write_data(
        &obsload,
        &format!("{vigil_url}/api/v1/push"),
        start_ms,
        &logs.join("obsload-write-vigil.log"),
    );
    let prometheus_write = write_data(
        &obsload,
        &format!("{prometheus_url}/api/v1/write"),
        start_ms,
        &logs.join("obsload-write-prometheus.log"),
    );
    assert_eq!(
        vigil_write["samples"], prometheus_write["samples"],
        "obsload wrote different data sets"
    );

    // Both hold the same series at the end of the range (bounded; the writes are synchronous).
    let client = Client::with_timeout(Duration::from_secs(30));
    let count = wait_for(
        "Vigil and Prometheus to return the same count({__name__=~\".+\"})",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let in_prometheus = series_count(&client, &prometheus_url, end_s)?;
            let in_vigil =
                series_count(&client, &vigil_url, end_s).map_err(|err| format!("vigil: {err}"))?;
            if in_prometheus == in_vigil && in_prometheus > 0.0 {
                Ok(in_vigil)
            } else {
                Err(format!("prometheus {in_prometheus}, vigil {in_vigil}"))
            }
        },
    );
    eprintln!(
        "both hold {count} series at {end_s}; writing took until {:.1}s into the test",
        test_started.elapsed().as_secs_f64()
    );

    let public = compare(
        &obsload,
        &prometheus_url,
        &vigil_url,
        &public_corpus,
        start_s,
        end_s,
        &logs.join("obsload-compare-public.log"),
        "public corpus",
    );
    let extra = compare(
        &obsload,
        &prometheus_url,
        &vigil_url,
        &extra_corpus,
        start_s,
        end_s,
        &logs.join("obsload-compare-extra.log"),
        "extra corpus",
    );

    eprintln!("(A = Prometheus 2.42, the reference; B = Vigil)");
    let mut problems = report("", &public, Some(MIN_PUBLIC_SCORE), &known);
    // The extra corpus: every mismatch must be listed, whatever the score.
    problems.extend(report(" (extra corpus)", &extra, None, &known));

    // Listed entries must still mismatch, and be queries of one of the corpora.
    let mut still_matching = Vec::new();
    let mut not_in_corpus = Vec::new();
    for query in known.keys() {
        let outcome = public
            .outcomes
            .iter()
            .chain(&extra.outcomes)
            .find(|outcome| &outcome.query == query);
        match outcome {
            Some(outcome) if outcome.mismatch.is_none() => still_matching.push(query.clone()),
            Some(_) => {}
            None => not_in_corpus.push(query.clone()),
        }
    }
    if !still_matching.is_empty() {
        problems.push(format!(
            "{} queries listed in {} match now; remove them:\n    {}",
            still_matching.len(),
            known_path.display(),
            still_matching.join("\n    ")
        ));
    }
    if !not_in_corpus.is_empty() {
        problems.push(format!(
            "{} queries listed in {} are in neither corpus; remove them:\n    {}",
            not_in_corpus.len(),
            known_path.display(),
            not_in_corpus.join("\n    ")
        ));
    }

    eprintln!();
    eprintln!(
        "promql live comparison: matched {} of {} ({:.2}%); extra corpus matched {} of {} \
         ({:.2}%); the test took {:.1}s",
        public.matched,
        public.compared,
        public.score(),
        extra.matched,
        extra.compared,
        extra.score(),
        test_started.elapsed().as_secs_f64()
    );
    let mut vigil = vigil;
    vigil.assert_running();
    let mut prometheus = prometheus;
    assert!(
        prometheus.proc.try_exit().is_none(),
        "prometheus exited during the test"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
