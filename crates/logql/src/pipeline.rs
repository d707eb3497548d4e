//! A log pipeline compiled from its stages: what runs once per line. Line filters work on the
//! raw bytes (memchr substring search, regexes compiled once), parsers add labels, formatters
//! rewrite the line or labels, label filters drop lines, as Loki's `log` package does.

use memchr::memmem;
use regex::Regex;

use crate::ast::{
    CmpOp, LabelFilterExpr, LabelFormatItem, LabelSelection, LineFilter, LineFilterOp,
    LineFilterValue, ParserStage, Stage,
};
use crate::extract::{
    decolorize, IpFilter, JsonParser, LogfmtParser, PatternParser, RegexpParser, UnpackParser,
};
use crate::labels::{errors, LabelsBuilder, ERROR_DETAILS_LABEL, ERROR_LABEL};
use crate::template::Template;
use crate::units::{parse_bytes, parse_go_duration};
use vigil_model::{ImpliedSubstrings, MatchOp};

/// A stage that cannot be built from valid syntax (bad regex, bad pattern, bad template):
/// reported to the user as a parse error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(pub String);

/// The compiled pipeline of a log expression.
pub struct Pipeline {
    stages: Vec<CompiledStage>,
    /// True when no stage can change labels: the stream's labels are the line's labels.
    keeps_stream_labels: bool,
}

enum CompiledStage {
    LineFilter(LineFilterMatcher),
    Json(JsonParser),
    Logfmt(LogfmtParser),
    Regexp(RegexpParser),
    Pattern(PatternParser),
    Unpack(UnpackParser),
    LabelFilter(LabelFilter),
    LineFormat(Template),
    LabelFormat(Vec<(String, LabelFormat)>),
    Drop(Vec<LabelSelection>),
    Keep(Vec<LabelSelection>),
    Decolorize,
}

enum LabelFormat {
    Rename(String),
    Template(Template),
}

/// One line filter stage: alternatives joined by `or`.
pub struct LineFilterMatcher {
    negated: bool,
    alternatives: Vec<LineMatch>,
}

enum LineMatch {
    Contains(Box<memmem::Finder<'static>>),
    Regex(Regex),
    Pattern(PatternParser),
    Ip(IpFilter),
}

impl LineMatch {
    fn matches(&self, line: &str) -> bool {
        match self {
            LineMatch::Contains(f) => f.find(line.as_bytes()).is_some(),
            LineMatch::Regex(re) => re.is_match(line),
            LineMatch::Pattern(p) => p.matches(line),
            LineMatch::Ip(ip) => ip.matches_line(line),
        }
    }
}

impl LineFilterMatcher {
    pub fn compile(filter: &LineFilter) -> Result<Self, CompileError> {
        let negated = matches!(
            filter.op,
            LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
        );
        let mut alternatives = Vec::with_capacity(filter.values.len());
        for value in &filter.values {
            let alt = match value {
                LineFilterValue::Ip(pattern) => {
                    LineMatch::Ip(IpFilter::new(pattern).map_err(|e| stage_error(filter, &e))?)
                }
                LineFilterValue::Text(text) => match filter.op {
                    LineFilterOp::Contains | LineFilterOp::NotContains => LineMatch::Contains(
                        Box::new(memmem::Finder::new(text.as_bytes()).into_owned()),
                    ),
                    LineFilterOp::Regex | LineFilterOp::NotRegex => LineMatch::Regex(
                        Regex::new(text).map_err(|e| stage_error(filter, &e.to_string()))?,
                    ),
                    LineFilterOp::Pattern | LineFilterOp::NotPattern => LineMatch::Pattern(
                        PatternParser::new_line_filter(text)
                            .map_err(|e| stage_error(filter, &e))?,
                    ),
                },
            };
            alternatives.push(alt);
        }
        Ok(Self {
            negated,
            alternatives,
        })
    }

    pub fn matches(&self, line: &str) -> bool {
        let any = self.alternatives.iter().any(|m| m.matches(line));
        any != self.negated
    }
}

fn stage_error(filter: &LineFilter, reason: &str) -> CompileError {
    let op = match filter.op {
        LineFilterOp::Contains => "|=",
        LineFilterOp::NotContains => "!=",
        LineFilterOp::Regex => "|~",
        LineFilterOp::NotRegex => "!~",
        LineFilterOp::Pattern => "|>",
        LineFilterOp::NotPattern => "!>",
    };
    let value = match filter.values.first() {
        Some(LineFilterValue::Text(t)) => format!("{t:?}"),
        Some(LineFilterValue::Ip(t)) => format!("ip({t:?})"),
        None => String::new(),
    };
    CompileError(format!("stage '{op} {value}' : {reason}"))
}

/// A compiled label filter expression.
pub enum LabelFilter {
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
    Matcher(vigil_model::Matcher),
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    Duration {
        name: String,
        op: CmpOp,
        seconds: f64,
    },
    Bytes {
        name: String,
        op: CmpOp,
        bytes: f64,
    },
    Ip {
        name: String,
        negated: bool,
        filter: IpFilter,
    },
}

impl LabelFilter {
    pub fn compile(expr: &LabelFilterExpr) -> Result<Self, CompileError> {
        Ok(match expr {
            LabelFilterExpr::And(a, b) => {
                LabelFilter::And(Box::new(Self::compile(a)?), Box::new(Self::compile(b)?))
            }
            LabelFilterExpr::Or(a, b) => {
                LabelFilter::Or(Box::new(Self::compile(a)?), Box::new(Self::compile(b)?))
            }
            LabelFilterExpr::Matcher(m) => LabelFilter::Matcher(m.clone()),
            LabelFilterExpr::Number { name, op, value } => LabelFilter::Number {
                name: name.clone(),
                op: *op,
                value: *value,
            },
            LabelFilterExpr::Duration { name, op, seconds } => LabelFilter::Duration {
                name: name.clone(),
                op: *op,
                seconds: *seconds,
            },
            LabelFilterExpr::Bytes { name, op, bytes } => LabelFilter::Bytes {
                name: name.clone(),
                op: *op,
                bytes: *bytes,
            },
            LabelFilterExpr::Ip {
                name,
                negated,
                pattern,
            } => LabelFilter::Ip {
                name: name.clone(),
                negated: *negated,
                filter: IpFilter::new(pattern).map_err(CompileError)?,
            },
        })
    }

    /// Whether the line passes; may record a `LabelFilterErr` (the line then passes, as in
    /// Loki, so that `| __error__=""` can drop it).
    pub fn process(&self, labels: &mut LabelsBuilder) -> bool {
        match self {
            LabelFilter::And(a, b) => {
                let left = a.process(labels);
                let right = b.process(labels);
                left && right
            }
            LabelFilter::Or(a, b) => a.process(labels) || b.process(labels),
            LabelFilter::Matcher(m) => m.matches(labels.get(&m.name).unwrap_or("")),
            LabelFilter::Number { name, op, value } => {
                compare_label(labels, name, *op, *value, parse_go_float)
            }
            LabelFilter::Duration { name, op, seconds } => {
                compare_label(labels, name, *op, *seconds, |v| {
                    parse_go_duration(v).map(|ns| ns as f64 / 1e9)
                })
            }
            LabelFilter::Bytes { name, op, bytes } => {
                compare_label(labels, name, *op, *bytes, |v| {
                    parse_bytes(v).map(f64::trunc)
                })
            }
            LabelFilter::Ip {
                name,
                negated,
                filter,
            } => {
                if labels.has_error() {
                    return true;
                }
                match labels.get(name) {
                    None => false,
                    Some(v) => filter.matches_value(v) != *negated,
                }
            }
        }
    }
}

/// Formatting errors replace an earlier error, as in Loki.
fn replace_error(labels: &mut LabelsBuilder, error: &str, details: &str) {
    labels.set(ERROR_LABEL, error);
    labels.set(ERROR_DETAILS_LABEL, details);
}

fn compare_label(
    labels: &mut LabelsBuilder,
    name: &str,
    op: CmpOp,
    expected: f64,
    convert: impl Fn(&str) -> Result<f64, String>,
) -> bool {
    let Some(raw) = labels.get(name) else {
        return false;
    };
    match convert(raw) {
        Ok(v) => compare(v, op, expected),
        Err(details) => {
            labels.set_error(errors::LABEL_FILTER, Some(&details));
            true
        }
    }
}

fn compare(v: f64, op: CmpOp, expected: f64) -> bool {
    match op {
        CmpOp::Eq => v == expected,
        CmpOp::Ne => v != expected,
        CmpOp::Gt => v > expected,
        CmpOp::Ge => v >= expected,
        CmpOp::Lt => v < expected,
        CmpOp::Le => v <= expected,
    }
}

/// Go's `strconv.ParseFloat`, with its error text.
pub fn parse_go_float(s: &str) -> Result<f64, String> {
    let valid =
        !s.is_empty() && !s.starts_with(char::is_whitespace) && !s.ends_with(char::is_whitespace);
    match s.parse::<f64>() {
        Ok(v) if valid => Ok(v),
        _ => Err(format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            crate::format::quote(s)
        )),
    }
}

/// The leading line filters of a pipeline, which storage applies while it decodes, so lines
/// that fail them are never copied out.
pub struct LinePrefilter(Vec<LineFilterMatcher>);

impl LinePrefilter {
    pub fn matches(&self, line: &str) -> bool {
        self.0.iter().all(|f| f.matches(line))
    }

    /// A search for one of the filters over many lines at once (see
    /// [`vigil_model::LineSeekFn`]): a substring filter if there is one (memchr speed), else
    /// the first regex filter that can be searched so. `None` when no filter can.
    pub fn seeker(&self) -> Option<LineSeeker> {
        let seekers = self.0.iter().filter_map(|f| f.seeker());
        let mut regex = None;
        for seeker in seekers {
            match seeker {
                LineSeeker::Substring(_) => return Some(seeker),
                LineSeeker::Regex(_) => {
                    regex.get_or_insert(seeker);
                }
            }
        }
        regex
    }
}

/// One line filter searched over many lines laid end to end.
pub enum LineSeeker {
    Substring(Box<memmem::Finder<'static>>),
    /// Also the alternatives of `|= "a" or "b"`, which the regex crate searches together.
    Regex(regex::bytes::Regex),
}

impl LineSeeker {
    /// Start of the leftmost match in `text`.
    pub fn find(&self, text: &[u8]) -> Option<usize> {
        match self {
            LineSeeker::Substring(finder) => finder.find(text),
            LineSeeker::Regex(re) => re.find(text).map(|m| m.start()),
        }
    }
}

impl LineFilterMatcher {
    /// This filter as a [`LineSeeker`], when a leftmost match over lines laid end to end
    /// lands at or before every passing line: not for a negated filter (it passes lines by
    /// what they lack), nor `ip()` and patterns, nor a regex with an anchor or word boundary
    /// (`^`, `$`, `\b` see the neighbouring line's bytes), nor one that matches empty text
    /// (it would land on every line).
    fn seeker(&self) -> Option<LineSeeker> {
        if self.negated {
            return None;
        }
        let mut substrings = Vec::with_capacity(self.alternatives.len());
        let mut regexes = Vec::with_capacity(self.alternatives.len());
        for alternative in &self.alternatives {
            match alternative {
                LineMatch::Contains(finder) if !finder.needle().is_empty() => {
                    substrings.push(finder)
                }
                LineMatch::Regex(re) => {
                    let hir = regex_syntax::Parser::new().parse(re.as_str()).ok()?;
                    if !hir.properties().look_set().is_empty() {
                        return None;
                    }
                    regexes.push(format!("(?:{})", re.as_str()));
                }
                _ => return None,
            }
        }
        if let [finder] = substrings[..] {
            if regexes.is_empty() {
                return Some(LineSeeker::Substring(finder.clone()));
            }
        }
        let pattern = substrings
            .iter()
            .map(|f| regex_syntax::escape(&String::from_utf8_lossy(f.needle())))
            .chain(regexes)
            .collect::<Vec<_>>()
            .join("|");
        let re = regex::bytes::Regex::new(&pattern).ok()?;
        (!re.is_match(b"")).then_some(LineSeeker::Regex(re))
    }
}

/// Splits a pipeline into its leading line filters (if any) and the compiled rest.
pub fn split_prefilter(
    stages: &[Stage],
) -> Result<(Option<LinePrefilter>, Pipeline), CompileError> {
    let leading = stages
        .iter()
        .take_while(|s| matches!(s, Stage::LineFilter(_)))
        .count();
    let filters = stages[..leading]
        .iter()
        .filter_map(|s| match s {
            Stage::LineFilter(f) => Some(LineFilterMatcher::compile(f)),
            _ => None,
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rest = Pipeline::compile(&stages[leading..])?;
    Ok((
        (!filters.is_empty()).then_some(LinePrefilter(filters)),
        rest,
    ))
}

/// What the leading line filters imply every passing line contains: one clause per `|=` or `|~`
/// stage, listing its alternatives (for a regex, the literals its matches start with); a stage
/// with an alternative that implies nothing (`ip(...)`, a regex without such literals) gives
/// no clause.
pub fn required_substrings(stages: &[Stage]) -> Vec<Vec<String>> {
    stages
        .iter()
        .map_while(|s| match s {
            Stage::LineFilter(f) => Some(f),
            _ => None,
        })
        .filter_map(|f| {
            let alternatives = f
                .values
                .iter()
                .map(|v| match (f.op, v) {
                    (LineFilterOp::Contains, LineFilterValue::Text(t)) => Some(vec![t.clone()]),
                    (LineFilterOp::Regex, LineFilterValue::Text(t)) => regex_prefixes(t),
                    _ => None,
                })
                .collect::<Option<Vec<Vec<String>>>>()?;
            Some(alternatives.concat())
        })
        .collect()
}

/// What a `| json` or `| logfmt` (without parameters) followed by label filters implies a
/// wanted line contains: for every `name="value"` that must hold (joined with `and`, or in
/// consecutive filter stages), the longest piece of the value between characters an escape
/// could stand for literally (`"`, `\`, `/`, `'` and control characters), or, where the line
/// escapes a character as `\uXXXX`, a `\u`. The parsers take values out of the line, so
/// wherever the label was parsed, the line holds the piece; storage applies it only there
/// ([`ImpliedSubstrings`]). `None` when the pipeline implies nothing.
pub fn implied_substrings(stages: &[Stage]) -> Option<ImpliedSubstrings> {
    let mut rest = stages
        .iter()
        .skip_while(|s| matches!(s, Stage::LineFilter(_)));
    match rest.next()? {
        Stage::Parser(ParserStage::Json { params }) if params.is_empty() => {}
        Stage::Parser(ParserStage::Logfmt { params, .. }) if params.is_empty() => {}
        _ => return None,
    }
    let mut required: Vec<(String, String)> = Vec::new();
    for stage in rest {
        let Stage::LabelFilter(expr) = stage else {
            break;
        };
        required_equalities(expr, &mut required);
    }
    if required.is_empty() {
        return None;
    }
    const ESCAPE: &str = "\\u";
    let mut clauses = Vec::with_capacity(required.len());
    let mut finders = Vec::with_capacity(required.len());
    for (_, piece) in &required {
        let mut alternatives = vec![piece.clone()];
        alternatives.extend(
            "0123456789abcdefABCDEF"
                .chars()
                .map(|digit| format!("{ESCAPE}{digit}")),
        );
        clauses.push(alternatives);
        finders.push(memmem::Finder::new(piece.as_bytes()).into_owned());
    }
    let escape = memmem::Finder::new(ESCAPE).into_owned();
    let line_check = move |line: &str| {
        let bytes = line.as_bytes();
        finders.iter().all(|f| f.find(bytes).is_some()) || escape.find(bytes).is_some()
    };
    let mut labels: Vec<String> = required.into_iter().map(|(name, _)| name).collect();
    labels.sort();
    labels.dedup();
    Some(ImpliedSubstrings {
        labels,
        clauses,
        line_check: std::sync::Arc::new(line_check),
    })
}

/// The `name="value"` matchers that must hold for `expr` to pass, each as (name, the longest
/// piece of the value without escapable characters) where that piece is not empty.
fn required_equalities(expr: &LabelFilterExpr, out: &mut Vec<(String, String)>) {
    match expr {
        LabelFilterExpr::And(a, b) => {
            required_equalities(a, out);
            required_equalities(b, out);
        }
        LabelFilterExpr::Matcher(m) if m.op == MatchOp::Equal && !m.name.starts_with("__") => {
            let piece = m
                .value
                .split(|c: char| matches!(c, '"' | '\\' | '/' | '\'') || c.is_control())
                .max_by_key(|piece| piece.len())
                .unwrap_or("");
            if !piece.is_empty() {
                out.push((m.name.clone(), piece.to_string()));
            }
        }
        _ => {}
    }
}

/// Literals of which every match of `pattern` starts with one (so a matching line contains
/// one), when there are a few and none is empty; `None` when the regex gives no such set.
fn regex_prefixes(pattern: &str) -> Option<Vec<String>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    /// More alternatives than this test the index for little.
    const MAX_LITERALS: usize = 64;
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let literals = seq.literals()?;
    if literals.is_empty() || literals.len() > MAX_LITERALS {
        return None;
    }
    literals
        .iter()
        .map(|l| match std::str::from_utf8(l.as_bytes()) {
            Ok(text) if !text.is_empty() => Some(text.to_string()),
            _ => None,
        })
        .collect()
}

impl Pipeline {
    pub fn compile(stages: &[Stage]) -> Result<Self, CompileError> {
        let mut compiled = Vec::with_capacity(stages.len());
        let mut keeps_stream_labels = true;
        for stage in stages {
            let c = match stage {
                Stage::LineFilter(f) => CompiledStage::LineFilter(LineFilterMatcher::compile(f)?),
                Stage::Parser(p) => {
                    keeps_stream_labels = false;
                    match p {
                        ParserStage::Json { params } => {
                            CompiledStage::Json(JsonParser::new(params).map_err(CompileError)?)
                        }
                        ParserStage::Logfmt {
                            strict,
                            keep_empty,
                            params,
                        } => CompiledStage::Logfmt(
                            LogfmtParser::new(*strict, *keep_empty, params)
                                .map_err(CompileError)?,
                        ),
                        ParserStage::Regexp(re) => {
                            CompiledStage::Regexp(RegexpParser::new(re).map_err(CompileError)?)
                        }
                        ParserStage::Pattern(p) => {
                            CompiledStage::Pattern(PatternParser::new(p).map_err(CompileError)?)
                        }
                        ParserStage::Unpack => CompiledStage::Unpack(UnpackParser),
                    }
                }
                Stage::LabelFilter(f) => {
                    // Filters may set __error__ (LabelFilterErr).
                    keeps_stream_labels = false;
                    CompiledStage::LabelFilter(LabelFilter::compile(f)?)
                }
                Stage::LineFormat(t) => {
                    keeps_stream_labels = false;
                    CompiledStage::LineFormat(
                        Template::parse(t)
                            .map_err(|e| CompileError(format!("invalid line template: {e}")))?,
                    )
                }
                Stage::LabelFormat(items) => {
                    keeps_stream_labels = false;
                    let mut formats = Vec::with_capacity(items.len());
                    for item in items {
                        formats.push(match item {
                            LabelFormatItem::Rename { dst, src } => {
                                (dst.clone(), LabelFormat::Rename(src.clone()))
                            }
                            LabelFormatItem::Template { dst, template } => (
                                dst.clone(),
                                LabelFormat::Template(Template::parse_label(template).map_err(
                                    |e| {
                                        CompileError(format!(
                                            "invalid template for label '{dst}': {e}"
                                        ))
                                    },
                                )?),
                            ),
                        });
                    }
                    CompiledStage::LabelFormat(formats)
                }
                Stage::Drop(sel) => {
                    keeps_stream_labels = false;
                    CompiledStage::Drop(sel.clone())
                }
                Stage::Keep(sel) => {
                    keeps_stream_labels = false;
                    CompiledStage::Keep(sel.clone())
                }
                Stage::Decolorize => CompiledStage::Decolorize,
            };
            compiled.push(c);
        }
        Ok(Self {
            stages: compiled,
            keeps_stream_labels,
        })
    }

    /// True when lines always keep their stream's labels (only line filters and decolorize).
    pub fn keeps_stream_labels(&self) -> bool {
        self.keeps_stream_labels
    }

    /// True when the pipeline has no stage at all.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs the pipeline over one line. `line` holds the line and is rewritten in place by
    /// formatting stages; `labels` must be reset to the stream by the caller. Returns whether
    /// the line passes.
    pub fn process(
        &self,
        timestamp_ns: i64,
        line: &mut String,
        labels: &mut LabelsBuilder,
        scratch: &mut String,
    ) -> bool {
        for stage in &self.stages {
            match stage {
                CompiledStage::LineFilter(f) => {
                    if !f.matches(line) {
                        return false;
                    }
                }
                CompiledStage::Json(p) => p.process(line, labels),
                CompiledStage::Logfmt(p) => p.process(line, labels),
                CompiledStage::Regexp(p) => p.process(line, labels),
                CompiledStage::Pattern(p) => p.process(line, labels),
                CompiledStage::Unpack(p) => {
                    if let Some(entry) = p.process(line, labels) {
                        *line = entry;
                    }
                }
                CompiledStage::LabelFilter(f) => {
                    if !f.process(labels) {
                        return false;
                    }
                }
                CompiledStage::LineFormat(t) => {
                    scratch.clear();
                    match t.render(labels, line, timestamp_ns, scratch) {
                        Ok(()) => std::mem::swap(line, scratch),
                        Err(details) => replace_error(labels, errors::TEMPLATE_FORMAT, &details),
                    }
                }
                CompiledStage::LabelFormat(formats) => {
                    // Templates see the labels as they were before this stage.
                    let before = (formats.len() > 1).then(|| labels.clone());
                    for (dst, format) in formats {
                        match format {
                            LabelFormat::Rename(src) => {
                                if let Some(v) = labels.get(src).map(str::to_string) {
                                    labels.set(dst, &v);
                                    labels.del(src);
                                }
                            }
                            LabelFormat::Template(t) => {
                                scratch.clear();
                                let view = before.as_ref().unwrap_or(labels);
                                match t.render(view, line, timestamp_ns, scratch) {
                                    Ok(()) => {
                                        let value = std::mem::take(scratch);
                                        labels.set(dst, &value);
                                        *scratch = value;
                                    }
                                    Err(details) => {
                                        replace_error(labels, errors::TEMPLATE_FORMAT, &details)
                                    }
                                }
                            }
                        }
                    }
                }
                CompiledStage::Drop(selections) => {
                    for sel in selections {
                        match sel {
                            LabelSelection::Name(n) => labels.del(n),
                            LabelSelection::Matcher(m) => {
                                if labels.get(&m.name).is_some_and(|v| m.matches(v)) {
                                    labels.del(&m.name);
                                }
                            }
                        }
                    }
                }
                CompiledStage::Keep(selections) => labels.retain(|name, value| {
                    selections.iter().any(|sel| match sel {
                        LabelSelection::Name(n) => n == name,
                        LabelSelection::Matcher(m) => m.name == name && m.matches(value),
                    })
                }),
                CompiledStage::Decolorize => {
                    if let std::borrow::Cow::Owned(clean) = decolorize(line) {
                        *line = clean;
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_errors_read_like_go() {
        assert_eq!(parse_go_float("1.5"), Ok(1.5));
        assert_eq!(
            parse_go_float("n/a").unwrap_err(),
            r#"strconv.ParseFloat: parsing "n/a": invalid syntax"#
        );
        assert!(parse_go_float(" 1").is_err());
        assert!(parse_go_float("").is_err());
    }

    #[test]
    fn line_filters_with_alternatives() {
        let f = LineFilterMatcher::compile(&LineFilter {
            op: LineFilterOp::NotContains,
            values: vec![
                LineFilterValue::Text("a".into()),
                LineFilterValue::Text("b".into()),
            ],
        })
        .unwrap();
        assert!(f.matches("xyz"));
        assert!(!f.matches("xbz"));
        let f = LineFilterMatcher::compile(&LineFilter {
            op: LineFilterOp::Regex,
            values: vec![LineFilterValue::Text("(?i)timeout".into())],
        })
        .unwrap();
        assert!(f.matches("a TIMEOUT b"));
    }

    /// What the query's leading line filters search for over lines laid end to end:
    /// `Some(Ok(needle))` for a substring search, `Some(Err(regex))` for a regex one.
    fn seeker(query: &str) -> Option<Result<String, String>> {
        let crate::ast::Expr::Log(log) = crate::parser::parse(query).unwrap() else {
            panic!("not a log query: {query}");
        };
        let (prefilter, _) = split_prefilter(&log.pipeline).unwrap();
        prefilter?.seeker().map(|s| match s {
            LineSeeker::Substring(f) => Ok(String::from_utf8(f.needle().to_vec()).unwrap()),
            LineSeeker::Regex(re) => Err(re.as_str().to_string()),
        })
    }

    #[test]
    fn line_seekers_prefer_substrings_and_refuse_what_could_miss_a_line() {
        assert_eq!(
            seeker(r#"{a="b"} |~ "x.y" |= "err""#),
            Some(Ok("err".into()))
        );
        assert_eq!(
            seeker(r#"{a="b"} |~ "x.y" |~ "(?i)z""#),
            Some(Err("(?:x.y)".into()))
        );
        assert_eq!(
            seeker(r#"{a="b"} |= "a.b" or "c""#),
            Some(Err(r"a\.b|c".into()))
        );
        // Negated filters, anchors and word boundaries, empty matches, ip() and patterns.
        for query in [
            r#"{a="b"} != "x""#,
            r#"{a="b"} |~ "^GET""#,
            r#"{a="b"} |~ "\\bGET""#,
            r#"{a="b"} |~ "x*""#,
            r#"{a="b"} |= """#,
            r#"{a="b"} |= ip("10.0.0.0/8")"#,
            r#"{a="b"} |> "<_> GET <_>""#,
            r#"{a="b"} | json |= "x""#,
        ] {
            assert_eq!(seeker(query), None, "{query}");
        }
        // A regex searched over two lines lands at or before the line that matches.
        let Some(LineSeeker::Regex(re)) = LineFilterMatcher::compile(&LineFilter {
            op: LineFilterOp::Regex,
            values: vec![LineFilterValue::Text(r"\w+ took \d+ms".into())],
        })
        .unwrap()
        .seeker() else {
            panic!("a regex seeker");
        };
        assert_eq!(re.find(b"alpha beta").map(|m| m.start()), None);
        assert_eq!(re.find(b"x oktook 5msy").map(|m| m.start()), None);
        assert_eq!(re.find(b"x ok took 5msy").map(|m| m.start()), Some(2));
    }

    fn clauses(query: &str) -> Vec<Vec<String>> {
        match crate::parser::parse(query).unwrap() {
            crate::ast::Expr::Log(log) => required_substrings(&log.pipeline),
            other => panic!("not a log query: {other:?}"),
        }
    }

    fn implied(query: &str) -> Option<ImpliedSubstrings> {
        match crate::parser::parse(query).unwrap() {
            crate::ast::Expr::Log(log) => implied_substrings(&log.pipeline),
            other => panic!("not a log query: {other:?}"),
        }
    }

    /// The labels and, per clause, the first alternative (the rest are the `\u` escapes).
    fn implied_pieces(query: &str) -> Option<(Vec<String>, Vec<String>)> {
        implied(query).map(|i| {
            assert!(i.clauses.iter().all(|c| c.len() == 23 && c[1] == "\\u0"));
            (
                i.labels,
                i.clauses.into_iter().map(|c| c[0].clone()).collect(),
            )
        })
    }

    #[test]
    fn equalities_after_a_parser_imply_their_values_are_in_the_line() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            implied_pieces(r#"{a="b"} |= "x" | json | logger="org.apache.Client", level="WARN""#),
            Some((s(&["level", "logger"]), s(&["org.apache.Client", "WARN"])))
        );
        assert_eq!(
            implied_pieces(r#"{a="b"} | logfmt --strict | status >= 500 | path="/api/v1/users""#),
            Some((s(&["path"]), s(&["users"])))
        );
        // Only what must hold, only right after a parser without parameters, only literals.
        for query in [
            r#"{a="b"} | json | a="x" or b="y""#,
            r#"{a="b"} | json | a!="x""#,
            r#"{a="b"} | json | a=~"x.*""#,
            r#"{a="b"} | json | a="""#,
            r#"{a="b"} | json | a="//""#,
            r#"{a="b"} | json | __error__="JSONParserErr""#,
            r#"{a="b"} | json b="c" | b="x""#,
            r#"{a="b"} | regexp "(?P<a>\\w+)" | a="x""#,
            r#"{a="b"} | json | label_format a="{{.b}}" | a="x""#,
            r#"{a="b"} | a="x""#,
        ] {
            assert!(implied(query).is_none(), "{query}");
        }
        // A value may be in the line unescaped or with \u escapes.
        let i = implied(r#"{a="b"} | json | logger="a.b.Client""#).unwrap();
        assert!((i.line_check)(r#"{"logger":"a.b.Client"}"#));
        assert!((i.line_check)(r#"{"logger":"a.b\u002eClient"}"#));
        assert!(!(i.line_check)(r#"{"logger":"a.b.Server"}"#));
    }

    #[test]
    fn required_substrings_of_substring_and_regex_filters() {
        assert_eq!(
            clauses(r#"{a="b"} |= "x" or "yz" |~ "Invalid user (admin|root)" != "q""#),
            vec![
                vec!["x".to_string(), "yz".to_string()],
                vec![
                    "Invalid user admin".to_string(),
                    "Invalid user root".to_string()
                ],
            ]
        );
        // Alternatives of an `or` join; case folding gives each spelling.
        assert_eq!(
            clauses(r#"{a="b"} |~ "err" or "(?i)ab""#),
            vec![vec![
                "err".to_string(),
                "AB".to_string(),
                "Ab".to_string(),
                "aB".to_string(),
                "ab".to_string()
            ]]
        );
        // Every match of these starts with a literal only partly or not at all.
        assert_eq!(
            clauses(r#"{a="b"} |~ "fail.*x""#),
            vec![vec!["fail".to_string()]]
        );
        for none in [
            r#"{a="b"} |~ ".*x""#,
            r#"{a="b"} |~ "x|""#,
            r#"{a="b"} |~ "[a-z]+ing""#,
            r#"{a="b"} |~ "x" or `\w`"#,
            r#"{a="b"} !~ "x""#,
            r#"{a="b"} |= ip("1.2.3.4")"#,
        ] {
            assert_eq!(clauses(none), Vec::<Vec<String>>::new(), "{none}");
        }
        // The regex itself agrees: every line it matches contains an alternative.
        let pattern = "Invalid user (admin|root)";
        let re = regex::Regex::new(pattern).unwrap();
        let prefixes = regex_prefixes(pattern).unwrap();
        for line in [
            "x Invalid user admin y",
            "Invalid user root",
            "Invalid user bob",
        ] {
            if re.is_match(line) {
                assert!(prefixes.iter().any(|p| line.contains(p.as_str())), "{line}");
            }
        }
    }
}
