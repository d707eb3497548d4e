//! Parsing of Prometheus' promqltest scripts (`testdata/promqltest/FORMAT.md`): `load`,
//! `clear` and `eval` commands, `expect` lines, series descriptions with the expanding value
//! notation, durations and numbers as Go's `model.ParseDuration` / `strconv` read them.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use vigil_model::{Label, Labels, METRIC_NAME_LABEL};

/// Bits of Prometheus' stale marker (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// One position of an expanded value sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SeqValue {
    /// `_`: no point at this position.
    Omitted,
    Float(f64),
    /// A native histogram (`{{...}}`): not supported by the engine, only counted.
    Histogram,
}

/// `metric{label="value"} <values>`.
#[derive(Debug, Clone)]
pub struct SeriesDesc {
    pub labels: Labels,
    pub values: Vec<SeqValue>,
}

impl SeriesDesc {
    pub fn has_histogram(&self) -> bool {
        self.values.iter().any(|v| matches!(v, SeqValue::Histogram))
    }
}

#[derive(Debug)]
pub struct Load {
    pub interval_ms: i64,
    /// `load_with_nhcb`: classic histograms are also loaded as native histograms with custom
    /// buckets under their base name.
    pub with_nhcb: bool,
    pub series: Vec<SeriesDesc>,
    /// `metric@st ...` start-timestamp lines, which the runner cannot load (ignored).
    pub st_lines: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectKind {
    Ordered,
    Fail,
    Warn,
    NoWarn,
    Info,
    NoInfo,
}

/// How an `expect` line matches a message.
#[derive(Debug, Clone)]
pub enum MsgMatch {
    Any,
    Exact(String),
    Regex(Regex),
}

impl MsgMatch {
    pub fn matches(&self, s: &str) -> bool {
        match self {
            MsgMatch::Any => true,
            MsgMatch::Exact(m) => m == s,
            MsgMatch::Regex(r) => r.is_match(s),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            MsgMatch::Any => "anything".to_string(),
            MsgMatch::Exact(m) => format!("message {m:?}"),
            MsgMatch::Regex(r) => format!("pattern {:?}", r.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Expect {
    pub kind: ExpectKind,
    pub matcher: MsgMatch,
}

#[derive(Debug, Clone, Copy)]
pub enum EvalKind {
    Instant {
        at_ms: i64,
    },
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

/// One expected series: its 1-based position in the block (for `expect ordered`) and values.
#[derive(Debug, Clone)]
pub struct ExpectedSeries {
    pub labels: Labels,
    pub pos: usize,
    pub values: Vec<SeqValue>,
}

/// One `eval` command: a test case.
#[derive(Debug)]
pub struct EvalCase {
    /// 1-based line of the `eval` command.
    pub line: usize,
    pub expr: String,
    pub kind: EvalKind,
    /// Deprecated `eval_fail` / `eval_warn` / `eval_info` / `eval_ordered`.
    pub fail: bool,
    pub warn: bool,
    pub info: bool,
    pub ordered: bool,
    pub expected_fail_message: Option<String>,
    pub expected_fail_regexp: Option<Regex>,
    pub expects: Vec<Expect>,
    /// `expect range vector from .. to .. step ..` (instant queries returning a matrix).
    pub range_vector: Option<(i64, i64, i64)>,
    /// `expect string "..."`.
    pub expected_string: Option<String>,
    /// Set by `expect range vector` and `expect string`: no range-mode re-check.
    pub exclude_from_range_query: bool,
    /// The expectation is a bare number (scalar result).
    pub expect_scalar: bool,
    pub scalar: Option<f64>,
    /// Expected series, unique by label set (a later line replaces an earlier one, as in Go).
    pub expected: Vec<ExpectedSeries>,
    /// An expected value is a native histogram.
    pub expects_histogram: bool,
    /// The block is malformed; the case fails with this message.
    pub error: Option<String>,
}

impl EvalCase {
    pub fn is_fail(&self) -> bool {
        self.fail || self.expects_of(ExpectKind::Fail).next().is_some()
    }

    pub fn is_ordered(&self) -> bool {
        self.ordered || self.expects_of(ExpectKind::Ordered).next().is_some()
    }

    pub fn expects_of(&self, kind: ExpectKind) -> impl Iterator<Item = &Expect> {
        self.expects.iter().filter(move |e| e.kind == kind)
    }

    /// Time of the instant query (the end of an expected range vector).
    pub fn eval_time(&self) -> i64 {
        match (self.kind, self.range_vector) {
            (EvalKind::Instant { .. }, Some((_, end, _))) => end,
            (EvalKind::Instant { at_ms }, None) => at_ms,
            (EvalKind::Range { start_ms, .. }, _) => start_ms,
        }
    }
}

#[derive(Debug)]
pub enum Command {
    Load(Load),
    Clear,
    Eval(Box<EvalCase>),
}

/// A line the parser could not read outside an eval block (a runner or script problem).
#[derive(Debug)]
pub struct ScriptError {
    pub line: usize,
    pub message: String,
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("valid regex"))
}

fn pat_load() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^load(?:_(with_nhcb))?\s+(.+?)$")
}

fn pat_eval_instant() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(
        &R,
        r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$",
    )
}

fn pat_eval_range() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(
        &R,
        r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$",
    )
}

fn pat_expect() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(
        &R,
        r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$",
    )
}

fn pat_expect_range() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(
        &R,
        r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$",
    )
}

const RANGE_VECTOR_PREFIX: &str = "expect range vector";
const EXPECT_STRING_PREFIX: &str = "expect string";

/// Parses a whole script. Malformed eval blocks become failing cases; other malformed lines
/// are returned as errors.
pub fn parse(text: &str) -> (Vec<Command>, Vec<ScriptError>) {
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                String::new()
            } else {
                l.to_string()
            }
        })
        .collect();
    let mut cmds = Vec::new();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let first = l
            .split([' ', '\t'])
            .next()
            .unwrap_or_default()
            .to_lowercase();
        if first == "clear" {
            cmds.push(Command::Clear);
        } else if first.starts_with("load") {
            match parse_load(&lines, &mut i) {
                Ok(load) => cmds.push(Command::Load(load)),
                Err(e) => errors.push(e),
            }
        } else if first.starts_with("eval") {
            match parse_eval(&lines, &mut i) {
                Ok(case) => cmds.push(Command::Eval(Box::new(case))),
                Err(e) => errors.push(e),
            }
        } else {
            errors.push(ScriptError {
                line: i + 1,
                message: format!("invalid command {l:?}"),
            });
        }
        i += 1;
    }
    (cmds, errors)
}

/// Lines of the block after `lines[*i]`, up to the first empty line; `*i` ends on the last.
fn parse_load(lines: &[String], i: &mut usize) -> Result<Load, ScriptError> {
    let line_no = *i + 1;
    let err = |line: usize, message: String| ScriptError { line, message };
    let caps = pat_load().captures(&lines[*i]).ok_or_else(|| {
        err(
            line_no,
            "invalid load command. (load[_with_nhcb] <step:duration>)".into(),
        )
    })?;
    let with_nhcb = caps.get(1).is_some();
    let step = &caps[2];
    let interval_ms = parse_duration(step)
        .map_err(|e| err(line_no, format!("invalid step definition {step:?}: {e}")))?;
    let mut load = Load {
        interval_ms,
        with_nhcb,
        series: Vec::new(),
        st_lines: 0,
    };
    let mut first_error = None;
    while *i + 1 < lines.len() && !lines[*i + 1].is_empty() {
        *i += 1;
        let def = &lines[*i];
        let first = def.split([' ', '\t']).next().unwrap_or_default();
        if first.ends_with("@st") {
            load.st_lines += 1;
            continue;
        }
        match parse_series_desc(def) {
            Ok(desc) => {
                if let Some(old) = load.series.iter_mut().find(|s| s.labels == desc.labels) {
                    *old = desc;
                } else {
                    load.series.push(desc);
                }
            }
            Err(e) => {
                first_error.get_or_insert(err(*i + 1, format!("bad series line {def:?}: {e}")));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(load),
    }
}

fn parse_eval(lines: &[String], i: &mut usize) -> Result<EvalCase, ScriptError> {
    let line_no = *i + 1;
    let l = &lines[*i];
    let instant = pat_eval_instant().captures(l);
    let range = pat_eval_range().captures(l);
    let skip_block = |i: &mut usize| {
        while *i + 1 < lines.len() && !lines[*i + 1].is_empty() {
            *i += 1;
        }
    };
    let (modifier, expr, kind, time_error) = if let Some(c) = &instant {
        let at = c.get(2).map_or("", |m| m.as_str());
        let (kind, error) = match parse_duration(at) {
            Ok(at_ms) => (EvalKind::Instant { at_ms }, None),
            Err(e) => (
                EvalKind::Instant { at_ms: 0 },
                Some(format!("invalid timestamp definition {at:?}: {e}")),
            ),
        };
        (
            c.get(1).map(|m| m.as_str().to_string()),
            c[3].to_string(),
            kind,
            error,
        )
    } else if let Some(c) = &range {
        let (kind, error) = match parse_range(&c[2], &c[3], &c[4]) {
            Ok((start_ms, end_ms, step_ms)) => (
                EvalKind::Range {
                    start_ms,
                    end_ms,
                    step_ms,
                },
                None,
            ),
            Err(e) => (
                EvalKind::Range {
                    start_ms: 0,
                    end_ms: 0,
                    step_ms: 0,
                },
                Some(e),
            ),
        };
        (
            c.get(1).map(|m| m.as_str().to_string()),
            c[5].to_string(),
            kind,
            error,
        )
    } else {
        skip_block(i);
        return Err(ScriptError {
            line: line_no,
            message: format!("invalid evaluation command {l:?}"),
        });
    };
    let is_instant = matches!(kind, EvalKind::Instant { .. });
    let mut case = EvalCase {
        line: line_no,
        expr,
        kind,
        fail: modifier.as_deref() == Some("fail"),
        warn: modifier.as_deref() == Some("warn"),
        info: modifier.as_deref() == Some("info"),
        ordered: modifier.as_deref() == Some("ordered"),
        expected_fail_message: None,
        expected_fail_regexp: None,
        expects: Vec::new(),
        range_vector: None,
        expected_string: None,
        exclude_from_range_query: false,
        expect_scalar: false,
        scalar: None,
        expected: Vec::new(),
        expects_histogram: false,
        error: time_error,
    };
    let set_error = |case: &mut EvalCase, line: usize, msg: String| {
        case.error
            .get_or_insert_with(|| format!("script line {line}: {msg}"));
    };
    // Position among the block's lines, `expect <type>` lines not counted (as in Go).
    let mut pos = 0;
    while *i + 1 < lines.len() && !lines[*i + 1].is_empty() {
        *i += 1;
        pos += 1;
        let def = lines[*i].as_str();
        let def_no = *i + 1;
        if case.fail {
            if let Some(rest) = def.strip_prefix("expected_fail_message") {
                case.expected_fail_message = Some(rest.trim().to_string());
                break;
            }
            if let Some(rest) = def.strip_prefix("expected_fail_regexp") {
                match Regex::new(rest.trim()) {
                    Ok(r) => case.expected_fail_regexp = Some(r),
                    Err(e) => set_error(&mut case, def_no, format!("invalid regexp: {e}")),
                }
                break;
            }
        }
        if def.starts_with(RANGE_VECTOR_PREFIX) {
            match pat_expect_range().captures(def) {
                Some(c) => match parse_range(&c[1], &c[2], &c[3]) {
                    Ok(r) => {
                        case.range_vector = Some(r);
                        case.exclude_from_range_query = true;
                    }
                    Err(e) => set_error(&mut case, def_no, e),
                },
                None => set_error(
                    &mut case,
                    def_no,
                    format!("invalid range vector definition {def:?}"),
                ),
            }
            continue;
        }
        if def.starts_with(EXPECT_STRING_PREFIX) {
            let lit = def
                .strip_prefix(EXPECT_STRING_PREFIX)
                .unwrap_or_default()
                .strip_prefix(' ')
                .unwrap_or_default();
            match unquote(lit) {
                Ok(s) if !lit.is_empty() => {
                    case.expected_string = Some(s);
                    case.exclude_from_range_query = true;
                }
                _ => set_error(
                    &mut case,
                    def_no,
                    "expected string literal not valid - a quoted string literal is required"
                        .into(),
                ),
            }
            continue;
        }
        if def.split(' ').next() == Some("expect") {
            pos -= 1;
            match parse_expect(def) {
                Ok(e) => case.expects.push(e),
                Err(e) => set_error(&mut case, def_no, e),
            }
            let counts: Vec<usize> = [
                ExpectKind::Info,
                ExpectKind::NoInfo,
                ExpectKind::Warn,
                ExpectKind::NoWarn,
                ExpectKind::Fail,
            ]
            .into_iter()
            .map(|k| case.expects_of(k).count())
            .collect();
            if counts[0] > 0 && counts[1] > 0 {
                set_error(
                    &mut case,
                    def_no,
                    "invalid expect lines, info and no_info cannot be used together".into(),
                );
            }
            if counts[2] > 0 && counts[3] > 0 {
                set_error(
                    &mut case,
                    def_no,
                    "invalid expect lines, warn and no_warn cannot be used together".into(),
                );
            }
            if counts[4] > 1 {
                set_error(
                    &mut case,
                    def_no,
                    "invalid expect lines, multiple expect fail lines are not allowed".into(),
                );
            }
            continue;
        }
        if let Ok(f) = parse_go_number(def) {
            case.expect_scalar = true;
            case.scalar = Some(f);
            break;
        }
        match parse_series_desc(def) {
            Ok(desc) => {
                if desc.has_histogram() {
                    case.expects_histogram = true;
                }
                if desc.values.len() > 1 && is_instant && case.range_vector.is_none() {
                    set_error(
                        &mut case,
                        def_no,
                        "expecting multiple values in instant evaluation not allowed".into(),
                    );
                }
                case.expect_scalar = false;
                let entry = ExpectedSeries {
                    labels: desc.labels,
                    pos,
                    values: desc.values,
                };
                if let Some(old) = case.expected.iter_mut().find(|s| s.labels == entry.labels) {
                    *old = entry;
                } else {
                    case.expected.push(entry);
                }
            }
            Err(e) => set_error(&mut case, def_no, format!("bad series line {def:?}: {e}")),
        }
    }
    Ok(case)
}

fn parse_range(from: &str, to: &str, step: &str) -> Result<(i64, i64, i64), String> {
    let start = parse_duration(from)
        .map_err(|e| format!("invalid start timestamp definition {from:?}: {e}"))?;
    let end =
        parse_duration(to).map_err(|e| format!("invalid end timestamp definition {to:?}: {e}"))?;
    if end < start {
        return Err(format!(
            "invalid test definition, end timestamp ({to}) is before start timestamp ({from})"
        ));
    }
    let step =
        parse_duration(step).map_err(|e| format!("invalid step definition {step:?}: {e}"))?;
    Ok((start, end, step))
}

fn parse_expect(def: &str) -> Result<Expect, String> {
    let c = pat_expect().captures(def.trim()).ok_or_else(|| {
        "invalid expect statement, must match `expect <type> <match_type>: <string>` format"
            .to_string()
    })?;
    let kind = match &c[1] {
        "ordered" => ExpectKind::Ordered,
        "fail" => ExpectKind::Fail,
        "warn" => ExpectKind::Warn,
        "no_warn" => ExpectKind::NoWarn,
        "info" => ExpectKind::Info,
        _ => ExpectKind::NoInfo,
    };
    let matcher = match c.get(2).map(|m| m.as_str()) {
        Some("msg") => MsgMatch::Exact(c[3].trim().to_string()),
        Some(_) => {
            let pattern = c[3].trim();
            MsgMatch::Regex(
                Regex::new(pattern)
                    .map_err(|_| format!("invalid regex {pattern} for {}", &c[1]))?,
            )
        }
        None => MsgMatch::Any,
    };
    Ok(Expect { kind, matcher })
}

/// Prometheus' `model.ParseDuration`: `[0-9]+` with units y, w, d, h, m, s, ms, each at most
/// once and in that order; `0` alone is allowed. Returns milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bad = || format!("not a valid duration string: {s:?}");
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let n: i64 = s[start..i].parse().map_err(|_| bad())?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let idx = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(bad)?
            + next_unit;
        next_unit = idx + 1;
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, `0x`/`0o`/`0b` prefixes, a leading `0`
/// for octal, `_` separators.
pub fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    // Underscores separate digits, and only after a base prefix.
    if digits.contains('_') && (!prefixed || digits.ends_with('_') || digits.contains("__")) {
        return None;
    }
    let digits: String = digits.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(&digits, radix).ok()?;
    let v = if neg { -magnitude } else { magnitude };
    i64::try_from(v).ok()
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal forms used in scripts (plus `Inf`, `NaN`).
pub fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains('_') {
        return None;
    }
    let body = s.trim_start_matches(['+', '-']);
    if s.len() - body.len() > 1 {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if lower == "nan" {
        return Some(f64::NAN);
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// How the test framework reads a bare number line: `ParseInt(s, 0, 64)`, then `ParseFloat`.
pub fn parse_go_number(s: &str) -> Result<f64, String> {
    if let Some(n) = parse_go_int(s) {
        return Ok(n as f64);
    }
    parse_go_float(s).ok_or_else(|| format!("error parsing number: {s:?}"))
}

/// Go's `strconv.Unquote` for "..." (escapes), `...` (raw) and '...' (one character).
pub fn unquote(s: &str) -> Result<String, String> {
    let bad = || format!("invalid quoted string {s:?}");
    let quote = s.chars().next().ok_or_else(bad)?;
    if s.len() < 2 || !s.ends_with(quote) || !matches!(quote, '"' | '\'' | '`') {
        return Err(bad());
    }
    let inner = &s[1..s.len() - 1];
    if quote == '`' {
        if inner.contains('`') {
            return Err(bad());
        }
        return Ok(inner.replace('\r', ""));
    }
    let out = unescape(inner, quote)?;
    if quote == '\'' && out.chars().count() != 1 {
        return Err(bad());
    }
    Ok(out)
}

/// Decodes Go escape sequences inside a quoted string (without the quotes). Invalid UTF-8
/// produced by `\x` / octal escapes is replaced lossily.
fn unescape(inner: &str, quote: char) -> Result<String, String> {
    let mut bytes: Vec<u8> = Vec::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    let bad = |what: &str| format!("invalid escape in {inner:?}: {what}");
    while let Some(c) = chars.next() {
        if c == quote {
            return Err(bad("unescaped quote"));
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = chars.next().ok_or_else(|| bad("trailing backslash"))?;
        let simple = match e {
            'a' => Some(0x07u8),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '\'' | '"' => {
                if e != quote {
                    return Err(bad("escaped quote of the other kind"));
                }
                Some(e as u8)
            }
            _ => None,
        };
        if let Some(b) = simple {
            bytes.push(b);
            continue;
        }
        let mut take = |n: usize, radix: u32| -> Result<u32, String> {
            let mut v = 0u32;
            for _ in 0..n {
                let d = chars
                    .next()
                    .and_then(|c| c.to_digit(radix))
                    .ok_or_else(|| bad("short escape"))?;
                v = v * radix + d;
            }
            Ok(v)
        };
        match e {
            'x' => bytes.push(take(2, 16)? as u8),
            '0'..='7' => {
                let rest = take(2, 8)?;
                let v = (e as u32 - '0' as u32) * 64 + rest;
                if v > 255 {
                    return Err(bad("octal escape out of range"));
                }
                bytes.push(v as u8);
            }
            'u' | 'U' => {
                let v = take(if e == 'u' { 4 } else { 8 }, 16)?;
                let c = char::from_u32(v).ok_or_else(|| bad("invalid code point"))?;
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err(bad("unknown escape")),
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Reads a quoted string starting at `s[*i]`; advances past the closing quote.
fn read_quoted(s: &str, i: &mut usize) -> Result<String, String> {
    let bytes = s.as_bytes();
    let quote = bytes[*i];
    let start = *i;
    let mut j = *i + 1;
    while j < bytes.len() {
        if bytes[j] == b'\\' && quote != b'`' {
            j += 2;
            continue;
        }
        if bytes[j] == quote {
            *i = j + 1;
            // PromQL strings: single quotes delimit strings too, not runes.
            return if quote == b'`' {
                Ok(s[start + 1..j].to_string())
            } else {
                unescape(&s[start + 1..j], quote as char)
            };
        }
        j += 1;
    }
    Err(format!("unterminated string in {s:?}"))
}

fn skip_ws(bytes: &[u8], i: &mut usize) {
    while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
        *i += 1;
    }
}

/// Parses `metric{a="b", ...} <values>` (also `{...}` alone, `{"quoted.name", a="b"}`).
/// Labels with empty values are dropped, as Prometheus treats them as absent.
pub fn parse_series_desc(line: &str) -> Result<SeriesDesc, String> {
    let bytes = line.as_bytes();
    let mut i = 0;
    skip_ws(bytes, &mut i);
    let mut pairs: Vec<(String, String)> = Vec::new();
    if i < bytes.len() && is_ident_start(bytes[i]) {
        let start = i;
        while i < bytes.len() && is_ident_char(bytes[i]) {
            i += 1;
        }
        pairs.push((METRIC_NAME_LABEL.to_string(), line[start..i].to_string()));
    }
    if i < bytes.len() && bytes[i] == b'{' {
        i += 1;
        loop {
            skip_ws(bytes, &mut i);
            if i >= bytes.len() {
                return Err("unterminated label set".into());
            }
            if bytes[i] == b'}' {
                i += 1;
                break;
            }
            let name = if matches!(bytes[i], b'"' | b'\'' | b'`') {
                read_quoted(line, &mut i)?
            } else if is_ident_start(bytes[i]) {
                let start = i;
                while i < bytes.len() && is_ident_char(bytes[i]) {
                    i += 1;
                }
                line[start..i].to_string()
            } else {
                return Err(format!("unexpected character at column {}", i + 1));
            };
            skip_ws(bytes, &mut i);
            if i < bytes.len() && bytes[i] == b'=' {
                i += 1;
                skip_ws(bytes, &mut i);
                if i >= bytes.len() || !matches!(bytes[i], b'"' | b'\'' | b'`') {
                    return Err(format!("expected a quoted label value for {name:?}"));
                }
                let value = read_quoted(line, &mut i)?;
                pairs.push((name, value));
            } else {
                // A bare quoted string is the metric name.
                pairs.push((METRIC_NAME_LABEL.to_string(), name));
            }
            skip_ws(bytes, &mut i);
            if i < bytes.len() && bytes[i] == b',' {
                i += 1;
            } else if i < bytes.len() && bytes[i] != b'}' {
                return Err(format!("expected ',' or '}}' at column {}", i + 1));
            }
        }
    }
    if pairs.is_empty() && !line.trim_start().starts_with('{') {
        return Err("expected a metric name or label set".into());
    }
    let mut seen = HashMap::new();
    for (n, _) in &pairs {
        if seen.insert(n.clone(), ()).is_some() {
            return Err(format!("duplicate label name {n:?}"));
        }
    }
    let labels = Labels::from_unsorted(
        pairs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| Label::new(n, v))
            .collect(),
    );
    if i < bytes.len() && !bytes[i].is_ascii_whitespace() {
        return Err(format!("expected whitespace at column {}", i + 1));
    }
    let values = parse_values(&line[i..])?;
    Ok(SeriesDesc { labels, values })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Space,
    Add,
    Sub,
    Times,
    Blank,
    Number(String),
    Ident(String),
    Histogram,
}

/// Tokenizes a value sequence as Prometheus' lexer does in series-description mode.
fn lex_values(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            toks.push(Tok::Space);
            continue;
        }
        if c == b'{' && b.get(i + 1) == Some(&b'{') {
            let end = s[i..]
                .find("}}")
                .ok_or_else(|| "unterminated histogram".to_string())?;
            i += end + 2;
            toks.push(Tok::Histogram);
            continue;
        }
        match c {
            b'+' => toks.push(Tok::Add),
            b'-' => toks.push(Tok::Sub),
            b'x' => toks.push(Tok::Times),
            b'_' => toks.push(Tok::Blank),
            _ if c.is_ascii_digit()
                || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i < b.len() && b[i] == b'.' {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    i += 1;
                    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                        i += 1;
                    }
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < b.len() && b[i] != b'x' && is_ident_char(b[i]) {
                    return Err(format!("bad number or duration syntax: {:?}", &s[start..]));
                }
                toks.push(Tok::Number(s[start..i].to_string()));
                continue;
            }
            _ if c.is_ascii_alphabetic() => {
                let start = i;
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
                let word = &s[start..i];
                if matches!(word.to_ascii_lowercase().as_str(), "inf" | "nan") {
                    toks.push(Tok::Number(word.to_string()));
                } else {
                    toks.push(Tok::Ident(word.to_string()));
                }
                continue;
            }
            _ => {
                return Err(format!(
                    "unexpected character in series sequence: {:?}",
                    c as char
                ))
            }
        }
        i += 1;
    }
    Ok(toks)
}

/// The parser's `number()`: `ParseInt(s, 0, 64)`, then `ParseFloat`.
fn number(s: &str) -> Result<f64, String> {
    parse_go_number(s)
}

fn parse_uint(t: Option<&Tok>) -> Result<u64, String> {
    match t {
        Some(Tok::Number(n)) => n
            .parse::<u64>()
            .map_err(|_| format!("invalid repetition in series values: {n:?}")),
        other => Err(format!("expected repetition count, got {other:?}")),
    }
}

/// Expands a value sequence: `_`, `_xN`, `v`, `vxN`, `v+dxN`, `v-dxN`, `stale`, `{{...}}`.
pub fn parse_values(s: &str) -> Result<Vec<SeqValue>, String> {
    let toks = lex_values(s)?;
    let mut out = Vec::new();
    for item in toks.split(|t| *t == Tok::Space) {
        if item.is_empty() {
            continue;
        }
        // Leading value.
        let k;
        let first: Option<SeqValue> = match &item[0] {
            Tok::Blank => {
                k = 1;
                None
            }
            Tok::Histogram => {
                k = 1;
                Some(SeqValue::Histogram)
            }
            Tok::Ident(w) if w == "stale" => {
                k = 1;
                Some(SeqValue::Float(f64::from_bits(STALE_NAN_BITS)))
            }
            Tok::Ident(w) => return Err(format!("expected number or 'stale', got {w:?}")),
            Tok::Number(n) => {
                k = 1;
                Some(SeqValue::Float(number(n)?))
            }
            Tok::Add | Tok::Sub => match item.get(1) {
                Some(Tok::Number(n)) => {
                    k = 2;
                    let v = number(n)?;
                    Some(SeqValue::Float(if item[0] == Tok::Sub { -v } else { v }))
                }
                other => return Err(format!("unexpected {other:?} after sign")),
            },
            other => return Err(format!("unexpected {other:?} in series values")),
        };
        let rest = &item[k..];
        match (first, rest) {
            (None, []) => out.push(SeqValue::Omitted),
            (None, [Tok::Times, n]) => {
                let n = parse_uint(Some(n))?;
                out.extend((0..n).map(|_| SeqValue::Omitted));
            }
            (Some(v), []) => out.push(v),
            (Some(v), [Tok::Times, n]) => {
                let n = parse_uint(Some(n))?;
                out.extend((0..=n).map(|_| v));
            }
            (Some(SeqValue::Histogram), [Tok::Add | Tok::Sub, Tok::Histogram, Tok::Times, n]) => {
                let n = parse_uint(Some(n))?;
                out.extend((0..=n).map(|_| SeqValue::Histogram));
            }
            (
                Some(SeqValue::Float(mut v)),
                [sign @ (Tok::Add | Tok::Sub), Tok::Number(d), Tok::Times, n],
            ) => {
                let mut d = number(d)?;
                if *sign == Tok::Sub {
                    d = -d;
                }
                let n = parse_uint(Some(n))?;
                for _ in 0..=n {
                    out.push(SeqValue::Float(v));
                    v += d;
                }
            }
            _ => return Err(format!("invalid series value item {item:?}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(s: &str) -> Vec<Option<f64>> {
        parse_values(s)
            .unwrap()
            .into_iter()
            .map(|v| match v {
                SeqValue::Float(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn values_expand_like_promqltest() {
        assert_eq!(
            floats("1+2x3 _ -1-1x2 5x1 _x2 .5"),
            vec![
                Some(1.0),
                Some(3.0),
                Some(5.0),
                Some(7.0),
                None,
                Some(-1.0),
                Some(-2.0),
                Some(-3.0),
                Some(5.0),
                Some(5.0),
                None,
                None,
                Some(0.5)
            ]
        );
        let v = parse_values("stale Inf -Inf NaN 1e3 010").unwrap();
        assert!(matches!(v[0], SeqValue::Float(f) if f.to_bits() == STALE_NAN_BITS));
        assert_eq!(v[1], SeqValue::Float(f64::INFINITY));
        assert_eq!(v[2], SeqValue::Float(f64::NEG_INFINITY));
        assert!(matches!(v[3], SeqValue::Float(f) if f.is_nan() && f.to_bits() != STALE_NAN_BITS));
        assert_eq!(v[4], SeqValue::Float(1000.0));
        assert_eq!(v[5], SeqValue::Float(8.0));
        let h = parse_values("{{schema:1 sum:3 count:22 buckets:[5 10 7]}}x2 1").unwrap();
        assert_eq!(h.len(), 4);
        assert_eq!(h[2], SeqValue::Histogram);
    }

    #[test]
    fn series_descriptions_and_durations() {
        let d = parse_series_desc(r#"my_metric{env="prod", b='x\ny', e=""} 5"#).unwrap();
        assert_eq!(d.labels.to_string(), "my_metric{b=\"x\\ny\", env=\"prod\"}");
        assert_eq!(d.values, vec![SeqValue::Float(5.0)]);
        let d = parse_series_desc("{} 1 2").unwrap();
        assert!(d.labels.is_empty());
        assert!(parse_series_desc("foo{a=\"b\",a=\"c\"} 1").is_err());
        assert_eq!(parse_duration("10s53ms"), Ok(10_053));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("30s1m").is_err());
        assert_eq!(parse_go_number("0x10"), Ok(16.0));
        assert_eq!(parse_go_number("-Inf"), Ok(f64::NEG_INFINITY));
        assert!(parse_go_number("foo 1").is_err());
    }
}
