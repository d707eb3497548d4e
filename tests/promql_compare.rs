//! Vigil's PromQL against real Prometheus, live: Vigil and Prometheus get the same data from
//! `obsload metrics-write` (the shared reference client, see `/work/shared/bin/README.md`), then
//! `obsload compare` runs every query of the vendored public corpus
//! (`tests/data/promql-corpus-public.txt`) and of our own extra corpus
//! (`tests/data/promql-corpus-extra.txt`) as range and instant queries against both and compares
//! the results the way the PromQL compliance tester does.
//!
//! The reference is Prometheus 3.x (Debian's package, unpacked by `scripts/install-prometheus3.sh`),
//! whose semantics Vigil follows. Queries that use a 2.x-only function name (`holt_winters`, which
//! 3.x renamed `double_exponential_smoothing`) are compared against Debian 12's Prometheus 2.42
//! instead, on the same data: each query is checked against a real Prometheus that defines it.
//!
//! Every mismatch must be listed with its reason in `tests/data/promql-compare-known-mismatches.txt`
//! and every listed query must still mismatch (so the list stays honest). The public corpus must
//! match at least 99%. The score and each mismatch, with obsload's detail, are printed (run with
//! `--nocapture`). obsload's A is Prometheus (the reference side), B is Vigil.
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
use common::{free_port, now_ms, require_prometheus, require_prometheus3, wait_for, Proc, Vigil};

/// The data set: `obsload metrics-write --series SERIES --samples-per-series SAMPLES_PER_SERIES
/// --seed SEED`, one sample per 15 s.
const SERIES: usize = 3000;
const SAMPLES_PER_SERIES: usize = 120;
const INTERVAL_MS: i64 = 15_000;
const SEED: u64 = 1;
/// The public corpus must match at least this share of its queries (percent).
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
    /// The Prometheus it was compared against.
    reference: &'static str,
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
    timings: Vec<String>,
}

impl CompareRun {
    fn empty() -> CompareRun {
        CompareRun {
            compared: 0,
            matched: 0,
            failed: 0,
            errors: 0,
            outcomes: Vec::new(),
            timings: Vec::new(),
        }
    }

    /// Adds the outcomes of `other` (a run over other queries).
    fn merge(&mut self, other: CompareRun) {
        self.compared += other.compared;
        self.matched += other.matched;
        self.failed += other.failed;
        self.errors += other.errors;
        self.outcomes.extend(other.outcomes);
        self.timings.extend(other.timings);
    }

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
                    reference: "",
                    mismatch: None,
                });
            } else if let Some((verdict, rest)) = ["FAIL ", "ERROR "].iter().find_map(|verdict| {
                line.strip_prefix(verdict)
                    .map(|rest| (verdict.trim(), rest))
            }) {
                let (query, detail) = rest.split_once(" :: ").unwrap_or((rest, ""));
                outcomes.push(Outcome {
                    query: query.to_string(),
                    reference: "",
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
            timings: timing.into_iter().collect(),
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

/// A real Prometheus holding the data set, and the name printed for it.
struct Reference {
    name: &'static str,
    url: String,
}

/// Function names that only Prometheus 2.x defines (3.x renamed them); a query using one is
/// compared against the 2.x reference.
const PROMETHEUS2_ONLY_FUNCTIONS: &[&str] = &["holt_winters"];

/// Whether `query` calls one of [`PROMETHEUS2_ONLY_FUNCTIONS`] (a whole identifier followed by
/// `(`, so a label value or a longer name does not count).
fn uses_prometheus2_only_function(query: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    PROMETHEUS2_ONLY_FUNCTIONS.iter().any(|name| {
        query.match_indices(name).any(|(at, _)| {
            let before_ok = !query[..at].chars().next_back().is_some_and(is_ident);
            let after = query[at + name.len()..].trim_start();
            before_ok && after.starts_with('(')
        })
    })
}

/// Runs `obsload compare` over the queries of `corpus` with a reference Prometheus as A and Vigil
/// as B: the queries that use a 2.x-only function name against `prometheus2`, the rest against
/// `prometheus3`. Checks that every query was reported once.
#[allow(clippy::too_many_arguments)] // two call sites; the names say what each is
fn compare(
    obsload: &Path,
    prometheus3: &Reference,
    prometheus2: &Reference,
    vigil_url: &str,
    corpus: &Path,
    start_s: i64,
    end_s: i64,
    work_dir: &Path,
    label: &str,
) -> CompareRun {
    let queries = read_queries(corpus);
    let (for_prometheus2, for_prometheus3): (Vec<String>, Vec<String>) = queries
        .iter()
        .cloned()
        .partition(|query| uses_prometheus2_only_function(query));
    let mut merged = CompareRun::empty();
    for (reference, part) in [
        (prometheus3, for_prometheus3),
        (prometheus2, for_prometheus2),
    ] {
        if part.is_empty() {
            continue;
        }
        let part_label = format!("{label} vs {}", reference.name);
        let slug: String = part_label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let part_file = work_dir.join(format!("{slug}.txt"));
        std::fs::write(&part_file, part.join("\n") + "\n")
            .unwrap_or_else(|err| panic!("write {}: {err}", part_file.display()));
        let args: Vec<String> = vec![
            "compare".into(),
            "--a".into(),
            reference.url.clone(),
            "--b".into(),
            vigil_url.into(),
            "--queries".into(),
            part_file.display().to_string(),
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
            &format!("obsload compare ({part_label})"),
            &args,
            &work_dir.join(format!("obsload-compare-{slug}.log")),
            COMPARE_TIMEOUT,
        );
        let mut run = CompareRun::parse(&output);
        eprintln!(
            "obsload compare ({part_label}): {} queries in {:.1}s; timing {}",
            part.len(),
            started.elapsed().as_secs_f64(),
            run.timings.first().map_or("(none)", String::as_str)
        );
        for outcome in &mut run.outcomes {
            outcome.reference = reference.name;
        }
        merged.merge(run);
    }
    // Every query of the corpus was compared, once.
    let mut expected = queries;
    let mut seen: Vec<String> = merged.outcomes.iter().map(|o| o.query.clone()).collect();
    expected.sort();
    seen.sort();
    assert_eq!(
        seen,
        expected,
        "obsload compare ({label}) did not report each query of {} once",
        corpus.display()
    );
    merged
}

/// Prints the score and every mismatch (with obsload's detail); returns the problems: mismatches
/// that are not listed in `known`, and a score below `min_score` (if given).
fn report(
    label: &str,
    run: &CompareRun,
    min_score: Option<f64>,
    known: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    eprintln!();
    eprintln!(
        "promql live comparison{label}: matched {} of {} ({:.2}%) [failed {}, errors {}]{}",
        run.matched,
        run.compared,
        run.score(),
        run.failed,
        run.errors,
        match min_score {
            Some(min_score) => format!("; must be at least {min_score}%"),
            None => String::new(),
        }
    );
    let mut unlisted = Vec::new();
    for outcome in &run.outcomes {
        let Some((verdict, detail)) = &outcome.mismatch else {
            continue;
        };
        let listed = known.get(&outcome.query);
        let tag = match listed {
            Some(reason) => format!("known: {reason}"),
            None => "NOT LISTED".to_string(),
        };
        eprintln!(
            "  {verdict} vs {} [{tag}] {}",
            outcome.reference, outcome.query
        );
        eprintln!("      {detail}");
        if listed.is_none() {
            unlisted.push(outcome.query.clone());
        }
    }
    if let Some(min_score) = min_score {
        if run.score() < min_score {
            problems.push(format!(
                "promql live comparison{label}: score {:.2}% is below {min_score}% (matched {} \
                 of {})",
                run.score(),
                run.matched,
                run.compared
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
    let prometheus3_binary = require_prometheus3();
    let prometheus2_binary = require_prometheus();
    for binary in [&prometheus3_binary, &prometheus2_binary] {
        let version = Command::new(binary)
            .arg("--version")
            .output()
            .unwrap_or_else(|err| panic!("{} --version: {err}", binary.display()));
        let text = String::from_utf8_lossy(&version.stdout);
        eprintln!(
            "reference {}: {}",
            binary.display(),
            text.lines().next().unwrap_or("(no version)")
        );
    }
    let public_corpus = data_file("promql-corpus-public.txt");
    let extra_corpus = data_file("promql-corpus-extra.txt");
    let known_path = data_file("promql-compare-known-mismatches.txt");
    let known = read_known_mismatches(&known_path);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();

    let vigil_dir = logs.join("vigil");
    std::fs::create_dir_all(&vigil_dir).unwrap();
    let vigil = Vigil::start(&vigil_dir, VigilOpts::default());
    let vigil_url = vigil.base_url();
    let start_prometheus = |binary: &Path, name: &str, extra_args: &[&str]| {
        let prometheus_dir = logs.join(name);
        std::fs::create_dir_all(&prometheus_dir).unwrap();
        let config_path = prometheus_dir.join("prometheus.yml");
        // No scrape jobs: the only data is what obsload writes.
        std::fs::write(&config_path, "global:\n  scrape_interval: 15s\n").unwrap();
        Prometheus::start(
            binary,
            &prometheus_dir,
            &config_path,
            free_port(),
            extra_args,
        )
    };
    // double_exponential_smoothing is behind this flag in 3.x.
    let prometheus3 = start_prometheus(
        &prometheus3_binary,
        "prometheus3",
        &[
            "--web.enable-remote-write-receiver",
            "--enable-feature=promql-experimental-functions",
        ],
    );
    let prometheus2 = start_prometheus(
        &prometheus2_binary,
        "prometheus2",
        &["--web.enable-remote-write-receiver"],
    );
    let references = [
        Reference {
            name: "Prometheus 3",
            url: prometheus3.base_url(),
        },
        Reference {
            name: "Prometheus 2.42",
            url: prometheus2.base_url(),
        },
    ];
    eprintln!(
        "vigil at {vigil_url}, {} at {}, {} at {}",
        references[0].name, references[0].url, references[1].name, references[1].url
    );

    // Prometheus' head takes only recent samples: the data ends just before now (as in
    // /work/shared/bin/README.md), and the queries cover its last 20 minutes.
    let start_ms = (now_ms() - 121 * INTERVAL_MS) / 60_000 * 60_000;
    let end_s = start_ms / 1000 + 1800;
    let start_s = end_s - 1200;
    let vigil_write = write_data(
        &obsload,
        &format!("{vigil_url}/api/v1/push"),
        start_ms,
        &logs.join("obsload-write-vigil.log"),
    );
    for reference in &references {
        let written = write_data(
            &obsload,
            &format!("{}/api/v1/write", reference.url),
            start_ms,
            &logs.join(format!(
                "obsload-write-{}.log",
                reference.name.replace(' ', "-")
            )),
        );
        assert_eq!(
            vigil_write["samples"], written["samples"],
            "obsload wrote different data sets to Vigil and {}",
            reference.name
        );
    }

    // All hold the same series at the end of the range (bounded; the writes are synchronous).
    let client = Client::with_timeout(Duration::from_secs(30));
    for reference in &references {
        let count = wait_for(
            &format!(
                "Vigil and {} to return the same count({{__name__=~\".+\"}})",
                reference.name
            ),
            Duration::from_secs(60),
            Duration::from_millis(500),
            || {
                let in_reference = series_count(&client, &reference.url, end_s)?;
                let in_vigil = series_count(&client, &vigil_url, end_s)
                    .map_err(|err| format!("vigil: {err}"))?;
                if in_reference == in_vigil && in_reference > 0.0 {
                    Ok(in_vigil)
                } else {
                    Err(format!(
                        "{} {in_reference}, vigil {in_vigil}",
                        reference.name
                    ))
                }
            },
        );
        eprintln!(
            "Vigil and {} hold {count} series at {end_s}",
            reference.name
        );
    }
    eprintln!(
        "writing took until {:.1}s into the test",
        test_started.elapsed().as_secs_f64()
    );

    let [prometheus3_ref, prometheus2_ref] = &references;
    let public = compare(
        &obsload,
        prometheus3_ref,
        prometheus2_ref,
        &vigil_url,
        &public_corpus,
        start_s,
        end_s,
        logs,
        "public corpus",
    );
    let extra = compare(
        &obsload,
        prometheus3_ref,
        prometheus2_ref,
        &vigil_url,
        &extra_corpus,
        start_s,
        end_s,
        logs,
        "extra corpus",
    );

    eprintln!(
        "(A = the reference Prometheus: {} unless a query uses a 2.x-only function name, then {}; \
         B = Vigil)",
        prometheus3_ref.name, prometheus2_ref.name
    );
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
    for (mut prometheus, name) in [
        (prometheus3, "prometheus 3"),
        (prometheus2, "prometheus 2.42"),
    ] {
        assert!(
            prometheus.proc.try_exit().is_none(),
            "{name} exited during the test"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn queries_with_a_2x_only_function_name_go_to_prometheus2() {
    assert!(uses_prometheus2_only_function(
        "holt_winters(node_load1[10m], 0.5, 0.5)"
    ));
    assert!(uses_prometheus2_only_function(
        "sum(holt_winters (node_load1[10m], 0.5, 0.5))"
    ));
    assert!(!uses_prometheus2_only_function(
        "double_exponential_smoothing(node_load1[10m], 0.5, 0.5)"
    ));
    assert!(!uses_prometheus2_only_function(
        r#"node_load1{job="holt_winters"}"#
    ));
    assert!(!uses_prometheus2_only_function("my_holt_winters(x)"));
}
