//! Runs one promqltest script against the engine over the real in-memory head, checks each
//! eval case as Prometheus' promqltest does, and reports against the expected-failures list.
//!
//! Environment:
//! - `PROMQLTEST_FILE=functions[.test]`: run only that file (the other tests return at once).
//! - `PROMQLTEST_LINE=123`: with `PROMQLTEST_FILE`, evaluate only the eval case on that line
//!   (loads and clears still run) and print everything about it.
//! - `PROMQLTEST_WRITE_FAILURES=1`: print every failing case in the expected-failures format
//!   (`file:line  reason`) and never fail. Use `-- --nocapture` to see it.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use regex::Regex;
use vigil_head::Head;
use vigil_model::{Label, Labels, MatchOp, Matcher, Sample, METRIC_NAME_LABEL};
use vigil_promql::parser::ast::{AtModifier, Expr};
use vigil_promql::parser::ParseOptions;
use vigil_promql::{
    instant_expr, instant_query, range_query, Annotations, EngineOptions, Point, Storage,
    StorageSeries, Value, VectorSample,
};

use crate::compare::{assert_matrix_sorted, compare, fmt_expected, fmt_value, Grid};
use crate::script::{self, Command, EvalCase, EvalKind, ExpectKind, Load, SeqValue};

/// The in-memory head as the engine's storage. Native histogram samples cannot be stored:
/// their series are remembered, and a query whose selectors match one is noted, so that its
/// case counts as native-histogram (skipped) when it fails.
pub struct HeadStorage {
    head: Head,
    native: Vec<Labels>,
    touched_native: Mutex<Option<Labels>>,
}

impl HeadStorage {
    pub fn new() -> Self {
        Self {
            head: Head::new(),
            native: Vec::new(),
            touched_native: Mutex::new(None),
        }
    }

    fn append(&self, labels: &Labels, samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        let series = self
            .head
            .get_or_create::<()>(&[(labels.fx_hash(), &pairs)], 0, |_| Ok(()))
            .expect("no error from on_created")
            .remove(0)
            .expect("no series limit");
        for s in samples {
            self.head.append(&series, *s);
        }
    }

    fn note_native(&mut self, labels: Labels) {
        if !self.native.contains(&labels) {
            self.native.push(labels);
        }
    }

    /// The first identifier of `expr` naming a metric whose series all hold only native
    /// histograms (cases on it are skipped without running).
    fn pure_native_name_in(&self, expr: &str) -> Option<String> {
        static IDENT: OnceLock<Regex> = OnceLock::new();
        let ident = IDENT.get_or_init(|| Regex::new(r"[a-zA-Z_:][a-zA-Z0-9_:]*").unwrap());
        ident
            .find_iter(expr)
            .map(|m| m.as_str())
            .find(|name| {
                self.native.iter().any(|l| l.metric_name() == Some(name)) && {
                    let m = Matcher::new(MatchOp::Equal, METRIC_NAME_LABEL, *name).unwrap();
                    self.head.select(&[m]).is_empty()
                }
            })
            .map(str::to_string)
    }

    /// Takes the native histogram series a select matched since the last call.
    fn take_touched_native(&self) -> Option<Labels> {
        self.touched_native.lock().unwrap().take()
    }
}

impl Storage for HeadStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<StorageSeries>, String> {
        let mut out: Vec<StorageSeries> = self
            .head
            .select(matchers)
            .into_iter()
            .filter_map(|s| {
                let points: Vec<Point> = s
                    .samples(mint, maxt)
                    .into_iter()
                    .map(|x| Point {
                        t: x.timestamp_ms,
                        v: x.value,
                    })
                    .collect();
                (!points.is_empty()).then(|| StorageSeries {
                    labels: s.labels.clone(),
                    points,
                })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        if let Some(hit) = self.native.iter().find(|l| {
            matchers
                .iter()
                .all(|m| m.matches(l.get(m.name.as_str()).unwrap_or("")))
        }) {
            self.touched_native
                .lock()
                .unwrap()
                .get_or_insert_with(|| hit.clone());
        }
        Ok(out)
    }
}

/// The engine options of Prometheus' test engine (`NewTestEngine` with
/// `DefaultMaxSamplesPerQuery`): 5m lookback, 10000 samples, 100s timeout, 1m subquery step.
pub fn engine_options() -> EngineOptions {
    EngineOptions {
        lookback_delta_ms: 5 * 60 * 1000,
        max_samples: 10_000,
        timeout: Duration::from_secs(100),
        default_subquery_step_ms: 60 * 1000,
        experimental_functions: true,
        // Prometheus' test engine runs with delayed name removal.
        delayed_name_removal: true,
    }
}

pub fn testdata_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// `file:line` → reason, from `testdata/promqltest-expected-failures.txt`.
fn expected_failures() -> &'static HashMap<(String, usize), String> {
    static LIST: OnceLock<HashMap<(String, usize), String>> = OnceLock::new();
    LIST.get_or_init(|| {
        let path = testdata_dir().join("promqltest-expected-failures.txt");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut map = HashMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let parsed = key
                .rsplit_once(':')
                .and_then(|(f, l)| Some((f.to_string(), l.parse::<usize>().ok()?)));
            let Some((file, case_line)) = parsed else {
                panic!(
                    "{}:{}: malformed entry {raw:?}, want `file.test:line  reason`",
                    path.display(),
                    n + 1
                );
            };
            map.insert((file, case_line), reason.trim().to_string());
        }
        map
    })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

/// Appends a load's float samples; series with native histogram samples, and the custom-bucket
/// histograms `load_with_nhcb` derives from classic ones, are only remembered.
fn load_into(storage: &mut HeadStorage, load: &Load) {
    for s in &load.series {
        let samples: Vec<Sample> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                SeqValue::Float(f) => Some(Sample::new(i as i64 * load.interval_ms, *f)),
                _ => None,
            })
            .collect();
        storage.append(&s.labels, &samples);
        if s.has_histogram() {
            storage.note_native(s.labels.clone());
        }
        if load.with_nhcb {
            let Some(name) = s.labels.metric_name() else {
                continue;
            };
            let Some(base) = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
            else {
                continue;
            };
            let derived = s
                .labels
                .iter()
                .filter(|l| l.name != "le")
                .map(|l| {
                    if l.name == METRIC_NAME_LABEL {
                        Label::new(METRIC_NAME_LABEL, base)
                    } else {
                        l.clone()
                    }
                })
                .collect();
            storage.note_native(Labels::from_sorted(derived));
        }
    }
}

fn check_expected_failure(case: &EvalCase, err: &str) -> Result<(), String> {
    if let Some(m) = &case.expected_fail_message {
        if m != err {
            return Err(format!("expected error {m:?}, but got: {err}"));
        }
    }
    if let Some(r) = &case.expected_fail_regexp {
        if !r.is_match(err) {
            return Err(format!(
                "expected error matching pattern {:?}, but got: {err}",
                r.as_str()
            ));
        }
    }
    if let Some(e) = case.expects_of(ExpectKind::Fail).next() {
        if !e.matcher.matches(err) {
            return Err(format!(
                "expected error matching {}, but got: {err}",
                e.matcher.describe()
            ));
        }
    }
    Ok(())
}

fn check_annotations_of(
    case: &EvalCase,
    kind: ExpectKind,
    actual: &[String],
    what: &str,
    all: &Annotations,
) -> Result<(), String> {
    let expected: Vec<_> = case.expects_of(kind).collect();
    if expected.is_empty() {
        return Ok(());
    }
    if actual.is_empty() {
        return Err(format!("expected {what} annotations but none were found"));
    }
    for e in &expected {
        if !actual.iter().any(|a| e.matcher.matches(a)) {
            return Err(format!(
                "expected {what} annotation matching {} but no matching annotation was found, \
                 found: {all:?}",
                e.matcher.describe()
            ));
        }
    }
    for a in actual {
        if !expected.iter().any(|e| e.matcher.matches(a)) {
            return Err(format!("unexpected {what} annotation {a:?} found"));
        }
    }
    Ok(())
}

fn check_annotations(case: &EvalCase, a: &Annotations) -> Result<(), String> {
    if case.warn && a.warnings.is_empty() {
        return Err("expected warnings but got none".into());
    }
    if case.info && a.infos.is_empty() {
        return Err("expected info annotations but got none".into());
    }
    check_annotations_of(case, ExpectKind::Warn, &a.warnings, "warn", a)?;
    check_annotations_of(case, ExpectKind::Info, &a.infos, "info", a)?;
    if case.expects_of(ExpectKind::NoWarn).next().is_some() && !a.warnings.is_empty() {
        return Err(format!("unexpected warning annotations: {:?}", a.warnings));
    }
    if case.expects_of(ExpectKind::NoInfo).next().is_some() && !a.infos.is_empty() {
        return Err(format!("unexpected info annotations: {:?}", a.infos));
    }
    Ok(())
}

fn uses_query_context_functions(expr: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"(start|end|range|step)\(\)").unwrap())
        .is_match(expr)
}

fn eval_case(storage: &HeadStorage, case: &EvalCase, verbose: bool) -> Result<(), String> {
    let opts = engine_options();
    let (result, grid) = match case.kind {
        EvalKind::Range {
            start_ms,
            end_ms,
            step_ms,
        } => (
            range_query(storage, &case.expr, start_ms, end_ms, step_ms, &opts),
            Grid {
                start: start_ms,
                end: Some(end_ms),
                step: step_ms,
            },
        ),
        EvalKind::Instant { at_ms } => {
            let grid = match case.range_vector {
                Some((start, end, step)) => Grid {
                    start,
                    end: Some(end),
                    step,
                },
                None => Grid {
                    start: at_ms,
                    end: None,
                    step: 0,
                },
            };
            (
                instant_query(storage, &case.expr, case.eval_time(), &opts),
                grid,
            )
        }
    };
    if verbose {
        match &result {
            Ok(r) => println!(
                "  got: {}\n  annotations: {:?}",
                fmt_value(&r.value, usize::MAX),
                r.annotations
            ),
            Err(e) => println!("  got error ({}): {e}", e.error_type()),
        }
    }
    let result = match result {
        Err(e) if case.is_fail() => return check_expected_failure(case, &e.to_string()),
        Err(e) => return Err(format!("error evaluating query: {e}")),
        Ok(_) if case.is_fail() => {
            return Err("expected error evaluating query but got none".into())
        }
        Ok(r) => r,
    };
    check_annotations(case, &result.annotations)?;
    compare(case, grid, &result.value).map_err(|e| {
        format!(
            "{e}\n    expected: {}\n    got: {}",
            fmt_expected(case),
            fmt_value(&result.value, 20)
        )
    })?;
    let EvalKind::Instant { .. } = case.kind else {
        return Ok(());
    };
    if case.exclude_from_range_query || uses_query_context_functions(&case.expr) {
        return Ok(());
    }
    // As in Prometheus' promqltest: with `@ <eval time>` on every selector and subquery, the
    // query gives the same result at other evaluation times.
    if !case.is_ordered() && matches!(result.value, Value::Vector(_) | Value::Scalar(_)) {
        if let Some((at_expr, times)) = at_modifier_variant(&case.expr, case.eval_time()) {
            for et in times {
                let r = instant_expr(storage, &at_expr, et, &opts).map_err(|e| {
                    format!("error evaluating query with @ modifiers at t={et}: {e}")
                })?;
                let at_grid = Grid {
                    start: et,
                    end: None,
                    step: 0,
                };
                compare(case, at_grid, &r.value).map_err(|e| {
                    format!(
                        "with @ modifiers, at t={et} ({at_expr}): {e}\n    expected: {}\n    got: {}",
                        fmt_expected(case),
                        fmt_value(&r.value, 20)
                    )
                })?;
            }
        }
    }
    // The same query as a range query around the evaluation time must agree at the middle step.
    let t = case.eval_time();
    let ranged = range_query(storage, &case.expr, t - 60_000, t + 60_000, 60_000, &opts)
        .map_err(|e| format!("error evaluating query in range mode: {e}"))?;
    if verbose {
        println!(
            "  range mode ({}..{} step 1m): {}",
            t - 60_000,
            t + 60_000,
            fmt_value(&ranged.value, usize::MAX)
        );
    }
    if case.is_ordered() {
        return Ok(());
    }
    let Value::Matrix(m) = &ranged.value else {
        return Err(format!(
            "range mode returned {}, not a matrix",
            fmt_value(&ranged.value, 3)
        ));
    };
    assert_matrix_sorted(m).map_err(|e| format!("range mode: {e}"))?;
    let vec: Vec<VectorSample> = m
        .iter()
        .filter_map(|s| {
            s.points.iter().find(|p| p.t == t).map(|p| VectorSample {
                labels: s.labels.clone(),
                t,
                v: p.v,
            })
        })
        .collect();
    let as_instant = if let Value::Scalar(_) = result.value {
        let Some(first) = vec.first() else {
            return Err(format!("range mode returned no point at t={t}"));
        };
        Value::Scalar(Point { t, v: first.v })
    } else {
        Value::Vector(vec)
    };
    compare(case, grid, &as_instant).map_err(|e| {
        format!(
            "range mode: {e}\n    expected: {}\n    got (range mode at t={t}): {}",
            fmt_expected(case),
            fmt_value(&as_instant, 20)
        )
    })
}

/// Functions whose result depends on the evaluation time even with step-invariant arguments
/// (Prometheus' `AtModifierUnsafeFunctions`): queries using them get no @ variant.
const AT_MODIFIER_UNSAFE: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
];

/// The query with `@ t` on every selector and subquery that has none (not inside subqueries),
/// and the other evaluation times Prometheus' promqltest tries it at.
fn at_modifier_variant(query: &str, t: i64) -> Option<(Expr, Vec<i64>)> {
    fn set_at(e: &mut Expr, t: i64, unsafe_fn: &mut bool) {
        match e {
            Expr::VectorSelector(vs) => {
                vs.at.get_or_insert(AtModifier::Timestamp(t));
            }
            Expr::MatrixSelector(ms) => {
                ms.selector.at.get_or_insert(AtModifier::Timestamp(t));
            }
            // Selectors inside a subquery follow the subquery's own @.
            Expr::Subquery(sq) => {
                sq.at.get_or_insert(AtModifier::Timestamp(t));
            }
            Expr::Paren(inner) => set_at(inner, t, unsafe_fn),
            Expr::Unary(u) => set_at(&mut u.expr, t, unsafe_fn),
            Expr::Binary(b) => {
                set_at(&mut b.lhs, t, unsafe_fn);
                set_at(&mut b.rhs, t, unsafe_fn);
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &mut a.param {
                    set_at(p, t, unsafe_fn);
                }
                set_at(&mut a.expr, t, unsafe_fn);
            }
            Expr::Call(c) => {
                *unsafe_fn |= AT_MODIFIER_UNSAFE.contains(&c.func.name);
                for arg in &mut c.args {
                    set_at(arg, t, unsafe_fn);
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        }
    }
    let options = ParseOptions {
        experimental_functions: true,
    };
    let mut expr = vigil_promql::parser::parse_with(query, options).ok()?;
    let mut unsafe_fn = false;
    set_at(&mut expr, t, &mut unsafe_fn);
    if unsafe_fn {
        return None;
    }
    let times = if t == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![-10 * t, 0, t / 5, t, 10 * t]
    };
    Some((expr, times))
}

fn run_case(storage: &HeadStorage, case: &EvalCase, verbose: bool) -> Outcome {
    if case.expects_histogram {
        return Outcome::Skip("expected result holds native histograms".into());
    }
    if let Some(name) = storage.pure_native_name_in(&case.expr) {
        return Outcome::Skip(format!("queries {name}, which has only native histograms"));
    }
    if let Some(e) = &case.error {
        return Outcome::Fail(format!("malformed eval block: {e}"));
    }
    storage.take_touched_native();
    let outcome = match catch_unwind(AssertUnwindSafe(|| eval_case(storage, case, verbose))) {
        Ok(Ok(())) => Outcome::Pass,
        Ok(Err(e)) => Outcome::Fail(e),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            Outcome::Fail(format!("engine panicked: {msg}"))
        }
    };
    match (outcome, storage.take_touched_native()) {
        (Outcome::Fail(e), Some(series)) => Outcome::Skip(format!(
            "fails, and selects native histogram series {series}: {}",
            e.lines().next().unwrap_or_default()
        )),
        (outcome, _) => outcome,
    }
}

fn describe_case(case: &EvalCase) -> String {
    match case.kind {
        EvalKind::Instant { .. } => {
            format!("eval instant at {}ms {}", case.eval_time(), case.expr)
        }
        EvalKind::Range {
            start_ms,
            end_ms,
            step_ms,
        } => format!(
            "eval range from {start_ms}ms to {end_ms}ms step {step_ms}ms {}",
            case.expr
        ),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Runs `file` (e.g. `functions.test`). Required files fail the test on unexpected failures,
/// on listed cases that now pass and on stale list entries; informational ones only report.
pub fn run_file(file: &str, required: bool) {
    let only_file = env("PROMQLTEST_FILE");
    if let Some(f) = &only_file {
        if f.trim_end_matches(".test") != file.trim_end_matches(".test") {
            println!("promqltest {file}: not run (PROMQLTEST_FILE={f})");
            return;
        }
    }
    let only_line: Option<usize> = env("PROMQLTEST_LINE").map(|l| {
        l.parse()
            .unwrap_or_else(|_| panic!("PROMQLTEST_LINE={l:?} is not a line number"))
    });
    let write_failures = env("PROMQLTEST_WRITE_FAILURES").is_some();
    let path = testdata_dir().join("promqltest").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let (cmds, script_errors) = script::parse(&text);
    let listed = expected_failures();

    let started = Instant::now();
    let mut storage = HeadStorage::new();
    let (mut total, mut passed, mut skipped, mut expected_fail) = (0, 0, 0, 0);
    let mut failures: Vec<String> = Vec::new();
    let mut now_passing: Vec<String> = Vec::new();
    let mut failing_entries: Vec<String> = Vec::new();
    let mut case_lines: HashSet<usize> = HashSet::new();
    let mut st_lines = 0;
    for cmd in &cmds {
        match cmd {
            Command::Clear => {
                storage = HeadStorage::new();
            }
            Command::Load(load) => {
                load_into(&mut storage, load);
                st_lines += load.st_lines;
            }
            Command::Eval(case) => {
                case_lines.insert(case.line);
                if only_line.is_some_and(|l| l != case.line) {
                    continue;
                }
                let verbose = only_line.is_some();
                if verbose {
                    println!("{file}:{}: {}", case.line, describe_case(case));
                    println!("  expected: {}", fmt_expected(case));
                    println!("  expects: {:?}", case.expects);
                }
                total += 1;
                let key = (file.to_string(), case.line);
                let reason = listed.get(&key);
                let outcome = run_case(&storage, case, verbose);
                match (&outcome, reason) {
                    (Outcome::Pass, None) => passed += 1,
                    (Outcome::Pass, Some(_)) => {
                        passed += 1;
                        now_passing.push(format!(
                            "{file}:{}: {} now passes, remove from expected-failures",
                            case.line, case.expr
                        ));
                    }
                    (Outcome::Skip(why), _) => {
                        skipped += 1;
                        if reason.is_some() {
                            now_passing.push(format!(
                                "{file}:{}: skipped as native-histogram ({why}), remove from \
                                 expected-failures",
                                case.line
                            ));
                        }
                    }
                    (Outcome::Fail(e), Some(r)) => {
                        expected_fail += 1;
                        failing_entries.push(format!("{file}:{}  {r}", case.line));
                        let _ = e;
                    }
                    (Outcome::Fail(e), None) => {
                        failures.push(format!(
                            "{file}:{}: {}\n    {}",
                            case.line,
                            describe_case(case),
                            truncate(e, 4000)
                        ));
                        let first = e.lines().next().unwrap_or_default();
                        failing_entries.push(format!(
                            "{file}:{}  TODO {}",
                            case.line,
                            truncate(first, 120)
                        ));
                    }
                }
                if verbose {
                    match &outcome {
                        Outcome::Pass => println!("  => PASS"),
                        Outcome::Skip(why) => println!("  => SKIPPED: {why}"),
                        Outcome::Fail(e) => println!("  => FAIL: {e}"),
                    }
                }
            }
        }
    }
    if let Some(l) = only_line {
        if !case_lines.contains(&l) {
            println!("{file}:{l}: no eval command on this line (PROMQLTEST_LINE)");
        }
    }
    let stale: Vec<String> = if only_line.is_some() {
        Vec::new()
    } else {
        let mut v: Vec<_> = listed
            .keys()
            .filter(|(f, l)| f == file && !case_lines.contains(l))
            .map(|(f, l)| format!("{f}:{l}: listed in expected-failures but no eval case there"))
            .collect();
        v.sort();
        v
    };

    let kind = if required { "" } else { " [informational]" };
    let mut summary = format!(
        "promqltest {file}: passed {passed} of {total} cases (skipped {skipped} \
         native-histogram, expected-fail {expected_fail}){kind}"
    );
    if !failures.is_empty() || !now_passing.is_empty() || !stale.is_empty() {
        let _ = write!(
            summary,
            "; unexpected failures {}, now passing {}, stale entries {}",
            failures.len(),
            now_passing.len(),
            stale.len()
        );
    }
    if !script_errors.is_empty() {
        let _ = write!(summary, "; script errors {}", script_errors.len());
    }
    if st_lines > 0 {
        let _ = write!(summary, "; ignored {st_lines} @st lines");
    }
    let _ = write!(summary, " in {:.1}s", started.elapsed().as_secs_f64());

    let mut report = String::new();
    for e in &script_errors {
        let _ = writeln!(report, "{file}:{}: script error: {}", e.line, e.message);
    }
    for f in failures.iter().chain(&now_passing).chain(&stale) {
        let _ = writeln!(report, "{f}");
    }
    if !report.is_empty() {
        println!("{report}");
    }
    if write_failures {
        let mut block = if required {
            format!("# {file}\n")
        } else {
            format!("# {file} (informational: never fails, listing is optional)\n")
        };
        for l in &failing_entries {
            let _ = writeln!(block, "{l}");
        }
        println!("{block}");
    }
    println!("{summary}");

    let broken = !failures.is_empty()
        || !now_passing.is_empty()
        || !stale.is_empty()
        || !script_errors.is_empty();
    if required && broken && !write_failures {
        panic!("FAILED {summary}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::STALE_NAN_BITS;

    #[test]
    fn head_storage_returns_points_in_range_with_stale_markers() {
        let mut storage = HeadStorage::new();
        let (cmds, errors) = script::parse("load 1m\n  foo{a=\"x\"} 1 _ stale 4\n  bar 1\n");
        assert!(errors.is_empty());
        let Command::Load(load) = &cmds[0] else {
            panic!("not a load")
        };
        load_into(&mut storage, load);
        let m = Matcher::new(MatchOp::Equal, "__name__", "foo").unwrap();
        let got = storage.select(&[m], 60_000, 180_000).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].labels,
            Labels::from_unsorted(vec![Label::new("__name__", "foo"), Label::new("a", "x")])
        );
        let ts: Vec<i64> = got[0].points.iter().map(|p| p.t).collect();
        assert_eq!(ts, vec![120_000, 180_000]);
        assert_eq!(got[0].points[0].v.to_bits(), STALE_NAN_BITS);
        let m = Matcher::new(MatchOp::Equal, "__name__", "bar").unwrap();
        assert!(storage.select(&[m], 60_000, 180_000).unwrap().is_empty());
    }

    #[test]
    fn native_series_are_noted_when_selected() {
        let mut storage = HeadStorage::new();
        let (cmds, _) = script::parse(
            "load_with_nhcb 1m\n  h_bucket{le=\"1\", a=\"b\"} 1\n  mixed 1 {{count:1}}\n",
        );
        let Command::Load(load) = &cmds[0] else {
            panic!("not a load")
        };
        load_into(&mut storage, load);
        let name = |n: &str| Matcher::new(MatchOp::Equal, "__name__", n).unwrap();
        storage.select(&[name("h_bucket")], 0, 0).unwrap();
        assert_eq!(storage.take_touched_native(), None);
        storage.select(&[name("h")], 0, 0).unwrap();
        assert_eq!(
            storage.take_touched_native().map(|l| l.to_string()),
            Some("h{a=\"b\"}".to_string())
        );
        let re = Matcher::new(MatchOp::RegexMatch, "__name__", "mix.*").unwrap();
        assert_eq!(storage.select(&[re], 0, 0).unwrap().len(), 1);
        assert!(storage.take_touched_native().is_some());
        assert_eq!(storage.pure_native_name_in("rate(h[1m])"), Some("h".into()));
        assert_eq!(storage.pure_native_name_in("rate(mixed[1m])"), None);
    }
}
