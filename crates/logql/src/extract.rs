//! LogQL's log-line parsers (`json`, `logfmt`, `regexp`, `pattern`, `unpack`), the
//! `decolorize` stage and the `ip("...")` matcher, with Loki 3.x's behaviour: the same
//! label names (sanitized, `_extracted` on collision with a stream label), the same values,
//! and the same `__error__`/`__error_details__` on malformed input.
//!
//! All of it works on the line's bytes without building a document: JSON is walked by a
//! scanner with `jsonparser`'s semantics ([`jsonscan`]), logfmt by a port of Loki's decoder
//! ([`logfmt`]); labels are set straight into the [`LabelsBuilder`].

mod ip;
mod jsonscan;
mod logfmt;

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;

use crate::labels::{errors, LabelsBuilder, EXTRACTED_SUFFIX};

pub use ip::IpFilter;

use jsonscan::ValueType;
use jsonscan::{each_key, object_each, unescape, unescape_json_string, JsonError, KeyHit};

// ---------------------------------------------------------------------------------------
// Label names
// ---------------------------------------------------------------------------------------

#[inline]
fn is_label_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A valid Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty() && !b[0].is_ascii_digit() && b.iter().all(|&c| is_label_byte(c))
}

/// Loki's `sanitizeLabelKey(key, true)`: trimmed, a `_` before a leading digit, every
/// character outside `[a-zA-Z0-9_]` replaced by `_`.
fn sanitize_label_key(key: &str) -> Cow<'_, str> {
    let b = key.as_bytes();
    if !b.is_empty() && !b[0].is_ascii_digit() && b.iter().all(|&c| is_label_byte(c)) {
        return Cow::Borrowed(key);
    }
    let key = key.trim();
    if key.is_empty() {
        return Cow::Borrowed("");
    }
    let mut out = String::with_capacity(key.len() + 1);
    if key.as_bytes()[0].is_ascii_digit() {
        out.push('_');
    }
    push_mapped(&mut out, key);
    Cow::Owned(out)
}

/// Loki's `appendSanitized`: like [`sanitize_label_key`], the digit rule only at the start
/// of `to`.
fn append_sanitized(to: &mut String, key: &str) {
    let key = key.trim();
    if key.is_empty() {
        return;
    }
    if to.is_empty() && key.as_bytes()[0].is_ascii_digit() {
        to.push('_');
    }
    push_mapped(to, key);
}

fn push_mapped(to: &mut String, key: &str) {
    for ch in key.chars() {
        if ch.is_ascii_alphanumeric() || ch == '_' {
            to.push(ch);
        } else {
            to.push('_');
        }
    }
}

/// A fixed extracted name and its `_extracted` variant, chosen per line by whether the
/// stream itself has the name.
#[derive(Debug, Clone)]
struct OutName {
    name: String,
    suffixed: String,
}

impl OutName {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            suffixed: format!("{name}{EXTRACTED_SUFFIX}"),
        }
    }

    #[inline]
    fn pick(&self, labels: &LabelsBuilder) -> &str {
        if labels.base_has(&self.name) {
            &self.suffixed
        } else {
            &self.name
        }
    }
}

/// Sets labels for one parser run on one line so that, as in Loki, a key repeated within
/// the line keeps its first value, while labels from earlier stages are overwritten.
struct FirstWins {
    /// Labels present before this run; anything past them was set by this run.
    before: usize,
    /// Labels from before this run that this run has already overwritten.
    overwritten: Vec<String>,
}

impl FirstWins {
    fn new(labels: &LabelsBuilder) -> Self {
        Self {
            before: labels.iter().count(),
            overwritten: Vec::new(),
        }
    }

    fn set(&mut self, labels: &mut LabelsBuilder, name: &str, value: &str) {
        if name.is_empty() {
            return;
        }
        match labels.iter().position(|(n, _)| n == name) {
            Some(i) if i >= self.before => return,
            Some(_) => {
                if self.overwritten.iter().any(|n| n == name) {
                    return;
                }
                self.overwritten.push(name.to_string());
            }
            None => {}
        }
        labels.set(name, value);
    }
}

// ---------------------------------------------------------------------------------------
// json
// ---------------------------------------------------------------------------------------

/// `| json` (every field, nested objects flattened with `_`) or `| json a="path", ...`.
#[derive(Debug, Clone)]
pub struct JsonParser {
    /// Empty: extract everything.
    exprs: Vec<OutName>,
    paths: Vec<Vec<String>>,
}

impl JsonParser {
    pub fn new(params: &[(String, String)]) -> Result<Self, String> {
        let mut exprs = Vec::with_capacity(params.len());
        let mut paths = Vec::with_capacity(params.len());
        for (label, expr) in params {
            let path = parse_json_expr(expr)
                .map_err(|e| format!("cannot parse expression [{expr}]: {e}"))?;
            if !is_valid_label_name(label) {
                return Err(format!("invalid extracted label name '{label}'"));
            }
            exprs.push(OutName::new(label));
            paths.push(path);
        }
        Ok(Self { exprs, paths })
    }

    pub fn process(&self, line: &str, labels: &mut LabelsBuilder) {
        if self.exprs.is_empty() {
            self.process_all(line, labels);
        } else {
            self.process_paths(line, labels);
        }
    }

    fn process_all(&self, line: &str, labels: &mut LabelsBuilder) {
        let mut st = JsonWalk {
            first: FirstWins::new(labels),
            labels,
            prefix: String::new(),
            name: String::new(),
        };
        if let Err(e) = st.walk(line) {
            st.labels.set_error(errors::JSON_PARSER, Some(e.message()));
        }
    }

    fn process_paths(&self, line: &str, labels: &mut LabelsBuilder) {
        let Some(&first) = line.as_bytes().first() else {
            return;
        };
        if !matches!(first, b'"' | b'{' | b'[') {
            labels.set_error(errors::JSON_PARSER, None);
            return;
        }
        let mut matched = 0usize;
        each_key(line, &self.paths, |hit| match hit {
            KeyHit::Error(e) => labels.set_error(errors::JSON_PARSER, Some(e.message())),
            KeyHit::Value(idx, value, ty) => {
                let Some(out) = self.exprs.get(idx) else {
                    return;
                };
                let name = out.pick(labels).to_string();
                match ty {
                    ValueType::Null => labels.set(&name, ""),
                    ValueType::Object => labels.set(&name, value),
                    _ => labels.set(&name, &unescape_json_string(value)),
                }
                matched += 1;
            }
        });
        if matched < self.exprs.len() {
            for out in &self.exprs {
                if labels.get(&out.name).is_none() {
                    labels.set(&out.name, "");
                }
            }
        }
    }
}

struct JsonWalk<'l> {
    labels: &'l mut LabelsBuilder,
    first: FirstWins,
    /// Flattened, sanitized name of the enclosing objects.
    prefix: String,
    /// Scratch for building a nested name.
    name: String,
}

impl JsonWalk<'_> {
    fn walk(&mut self, data: &str) -> Result<(), JsonError> {
        object_each(data, |key, value, ty| match ty {
            ValueType::String | ValueType::Number | ValueType::Boolean => {
                self.leaf(key, value, ty);
                Ok(())
            }
            ValueType::Object => {
                let len = self.prefix.len();
                if !self.prefix.is_empty() {
                    self.prefix.push('_');
                }
                append_sanitized(&mut self.prefix, key);
                let r = self.walk(value);
                self.prefix.truncate(len);
                r
            }
            _ => Ok(()),
        })
    }

    fn leaf(&mut self, key: &str, raw: &str, ty: ValueType) {
        let value: Cow<'_, str> = match ty {
            ValueType::String => unescape_json_string(raw),
            ValueType::Boolean if raw == "true" => Cow::Borrowed("true"),
            ValueType::Boolean => Cow::Borrowed("false"),
            _ => Cow::Borrowed(raw),
        };
        if self.prefix.is_empty() {
            let field = sanitize_label_key(key);
            if self.labels.base_has(&field) {
                self.name.clear();
                self.name.push_str(&field);
                self.name.push_str(EXTRACTED_SUFFIX);
                self.first.set(self.labels, &self.name, &value);
            } else {
                self.first.set(self.labels, &field, &value);
            }
            return;
        }
        self.name.clear();
        self.name.push_str(&self.prefix);
        self.name.push('_');
        append_sanitized(&mut self.name, key);
        if self.labels.base_has(&self.name) {
            self.name.push_str(EXTRACTED_SUFFIX);
        }
        self.first.set(self.labels, &self.name, &value);
    }
}

/// Parses a `| json` parameter (`a.b[0]["c d"]`) into path steps, indexes as `[n]`, like
/// Loki's `jsonexpr` grammar.
fn parse_json_expr(expr: &str) -> Result<Vec<String>, String> {
    #[derive(Debug, PartialEq)]
    enum Tok {
        Lsb,
        Rsb,
        Dot,
        Field(String),
        Str(String),
        Index(usize),
    }
    let chars: Vec<char> = expr.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' => i += 1,
            '0'..='9' => {
                let start = i;
                while i < chars.len() && !matches!(chars[i], ' ' | '\t' | '\n' | '.' | ']') {
                    if !chars[i].is_ascii_digit() {
                        return Err(format!("non-integer value: {}", chars[i]));
                    }
                    i += 1;
                }
                if i == chars.len() {
                    return Err("non-integer value".to_string());
                }
                if chars[i] == '.' {
                    return Err("cannot use float as array index".to_string());
                }
                let n: String = chars[start..i].iter().collect();
                toks.push(Tok::Index(
                    n.parse().map_err(|_| "invalid index".to_string())?,
                ));
            }
            '[' => {
                toks.push(Tok::Lsb);
                i += 1;
            }
            ']' => {
                toks.push(Tok::Rsb);
                i += 1;
            }
            '.' => {
                toks.push(Tok::Dot);
                i += 1;
            }
            'a'..='z' | 'A'..='Z' | '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                toks.push(Tok::Field(chars[start..i].iter().collect()));
            }
            '"' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '"' && chars[i] != ']' {
                    i += 1;
                }
                toks.push(Tok::Str(chars[start..i].iter().collect()));
                i += 1;
            }
            other => return Err(format!("unexpected char {other}")),
        }
    }
    let mut out = Vec::new();
    let mut t = toks.into_iter().peekable();
    let syntax = || "syntax error".to_string();
    while let Some(tok) = t.next() {
        match tok {
            Tok::Field(f) if out.is_empty() => out.push(f),
            Tok::Dot if !out.is_empty() => match t.next() {
                Some(Tok::Field(f)) => out.push(f),
                _ => return Err(syntax()),
            },
            Tok::Lsb => {
                match t.next() {
                    Some(Tok::Str(s)) => out.push(s),
                    Some(Tok::Index(n)) => out.push(format!("[{n}]")),
                    _ => return Err(syntax()),
                }
                if t.next() != Some(Tok::Rsb) {
                    return Err(syntax());
                }
            }
            _ => return Err(syntax()),
        }
    }
    if out.is_empty() {
        return Err(syntax());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// logfmt
// ---------------------------------------------------------------------------------------

/// `| logfmt [--strict] [--keep-empty] [a="key", ...]`.
#[derive(Debug, Clone)]
pub struct LogfmtParser {
    strict: bool,
    keep_empty: bool,
    /// (label, logfmt key) when parameters are given.
    exprs: Vec<(OutName, String)>,
}

impl LogfmtParser {
    pub fn new(
        strict: bool,
        keep_empty: bool,
        params: &[(String, String)],
    ) -> Result<Self, String> {
        let mut exprs = Vec::with_capacity(params.len());
        for (label, expr) in params {
            let key = expr.trim();
            if !is_valid_label_name(key) {
                return Err(format!("cannot parse expression [{expr}]: syntax error"));
            }
            if !is_valid_label_name(label) {
                return Err(format!("invalid extracted label name '{label}'"));
            }
            exprs.push((OutName::new(label), key.to_string()));
        }
        Ok(Self {
            strict,
            keep_empty,
            exprs,
        })
    }

    pub fn process(&self, line: &str, labels: &mut LabelsBuilder) {
        if self.exprs.is_empty() {
            self.process_all(line, labels);
        } else {
            self.process_exprs(line, labels);
        }
    }

    fn process_all(&self, line: &str, labels: &mut LabelsBuilder) {
        let mut first = FirstWins::new(labels);
        let mut dec = logfmt::Decoder::new(line);
        let mut name = String::new();
        while !dec.eol() {
            if !dec.scan_keyval() {
                if self.strict {
                    break;
                }
                continue;
            }
            let Some(key) = dec.key else {
                continue;
            };
            let value = match dec.value.as_deref() {
                Some(v) if !v.contains('\u{FFFD}') => v,
                _ => "",
            };
            if !self.keep_empty && value.is_empty() {
                continue;
            }
            let field = sanitize_label_key(key);
            if field.is_empty() {
                continue;
            }
            if labels.base_has(&field) {
                name.clear();
                name.push_str(&field);
                name.push_str(EXTRACTED_SUFFIX);
                first.set(labels, &name, value);
            } else {
                first.set(labels, &field, value);
            }
        }
        if self.strict {
            if let Some(err) = dec.error() {
                labels.set_error(errors::LOGFMT_PARSER, Some(&err));
            }
        }
    }

    fn process_exprs(&self, line: &str, labels: &mut LabelsBuilder) {
        for (out, _) in &self.exprs {
            if !labels.base_has(&out.name) {
                labels.set(&out.name, "");
            }
        }
        // With parameters a repeated key takes its last value (unlike the full parse).
        let mut dec = logfmt::Decoder::new(line);
        while !dec.eol() {
            if !dec.scan_keyval() {
                if self.strict {
                    break;
                }
                continue;
            }
            let Some(key) = dec.key else {
                continue;
            };
            let field = sanitize_label_key(key);
            if field.is_empty() {
                continue;
            }
            let value = match dec.value.as_deref() {
                Some(v) if !v.contains('\u{FFFD}') => v,
                _ => "",
            };
            // A key named by a parameter is renamed to its label; a key equal to a label
            // name is taken as is (as Loki does).
            let idx = self
                .exprs
                .iter()
                .position(|(_, k)| *k == *field)
                .or_else(|| self.exprs.iter().position(|(o, _)| o.name == *field));
            let Some(idx) = idx else {
                continue;
            };
            let name = self.exprs[idx].0.pick(labels).to_string();
            labels.set(&name, value);
        }
        if self.strict {
            if let Some(err) = dec.error() {
                labels.set_error(errors::LOGFMT_PARSER, Some(&err));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// regexp
// ---------------------------------------------------------------------------------------

/// `| regexp "..."`: each named capture of the first match becomes a label.
#[derive(Debug, Clone)]
pub struct RegexpParser {
    re: Regex,
    /// (capture group index, label).
    names: Vec<(usize, OutName)>,
}

impl RegexpParser {
    pub fn new(re: &str) -> Result<Self, String> {
        let wrap = |e: String| format!("invalid regexp parser: {e}");
        let regex = Regex::new(&go_regex_to_rust(re)).map_err(|e| wrap(e.to_string()))?;
        let mut names: Vec<(usize, OutName)> = Vec::new();
        for (i, n) in regex.capture_names().enumerate() {
            let Some(n) = n else {
                continue;
            };
            if !is_valid_label_name(n) {
                return Err(wrap(format!("invalid extracted label name '{n}'")));
            }
            if names.iter().any(|(_, o)| o.name == n) {
                return Err(wrap(format!("duplicate extracted label name '{n}'")));
            }
            names.push((i, OutName::new(n)));
        }
        if names.is_empty() {
            return Err(wrap(
                "at least one named capture must be supplied".to_string(),
            ));
        }
        Ok(Self { re: regex, names })
    }

    pub fn process(&self, line: &str, labels: &mut LabelsBuilder) {
        let Some(caps) = self.re.captures(line) else {
            return;
        };
        for (i, out) in &self.names {
            let value = caps.get(*i).map_or("", |m| m.as_str());
            let name = if labels.base_has(&out.name) {
                &out.suffixed
            } else {
                &out.name
            };
            labels.set(name, value);
        }
    }
}

/// Rewrites Go RE2 syntax where the `regex` crate differs: Go's `\d`, `\s`, `\w` and `\b`
/// are ASCII-only, the crate's are Unicode.
fn go_regex_to_rust(re: &str) -> String {
    let mut out = String::with_capacity(re.len() + 16);
    let mut in_class = false;
    let mut chars = re.chars().peekable();
    // Position right after a class opened (`[` or `[^`), where `]` is a literal.
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = class_start;
        class_start = false;
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let rep = match (n, in_class) {
                    ('d', false) => Some("[0-9]"),
                    ('D', false) => Some("[^0-9]"),
                    ('s', false) => Some("[\\t\\n\\f\\r ]"),
                    ('S', false) => Some("[^\\t\\n\\f\\r ]"),
                    ('w', false) => Some("[0-9A-Za-z_]"),
                    ('W', false) => Some("[^0-9A-Za-z_]"),
                    ('b', false) => Some("(?-u:\\b)"),
                    ('B', false) => Some("(?-u:\\B)"),
                    ('d', true) => Some("0-9"),
                    ('D', true) => Some("[^0-9]"),
                    ('s', true) => Some("\\t\\n\\f\\r "),
                    ('S', true) => Some("[^\\t\\n\\f\\r ]"),
                    ('w', true) => Some("0-9A-Za-z_"),
                    ('W', true) => Some("[^0-9A-Za-z_]"),
                    _ => None,
                };
                match rep {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                class_start = true;
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                // POSIX class like [:alpha:]: copy through its closing `:]`.
                out.push('[');
                while let Some(x) = chars.next() {
                    out.push(x);
                    if x == ':' && chars.peek() == Some(&']') {
                        if let Some(y) = chars.next() {
                            out.push(y);
                        }
                        break;
                    }
                }
            }
            '[' => out.push_str("\\["),
            ']' if in_class && !at_class_start => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// pattern
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum PatNode {
    Literal(String),
    /// Index into the names, or `None` for `<_>`.
    Capture(Option<usize>),
}

/// `| pattern "<ip> - <_> ..."` and the pattern line filters `|>`/`!>`.
#[derive(Debug, Clone)]
pub struct PatternParser {
    nodes: Vec<PatNode>,
    names: Vec<OutName>,
}

impl PatternParser {
    /// The `| pattern` parser: at least one named capture, no two captures in a row, no
    /// name twice.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let wrap = |e: String| format!("invalid pattern parser: {e}");
        let p = Self::parse(pattern).map_err(wrap)?;
        if p.names.is_empty() {
            return Err(wrap("at least one capture is required".to_string()));
        }
        p.check_consecutive().map_err(wrap)?;
        for (i, n) in p.names.iter().enumerate() {
            if p.names[..i].iter().any(|m| m.name == n.name) {
                return Err(wrap(format!(
                    "duplicate capture name ({}): invalid expression",
                    n.name
                )));
            }
        }
        Ok(p)
    }

    /// The form for the `|>`/`!>` line filters: only `<_>` captures, none in a row.
    pub fn new_line_filter(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Ok(Self {
                nodes: Vec::new(),
                names: Vec::new(),
            });
        }
        let p = Self::parse(pattern)?;
        p.check_consecutive()?;
        if let Some(n) = p.names.first() {
            return Err(format!(
                "named captures are not allowed: found '<{}>'",
                n.name
            ));
        }
        Ok(p)
    }

    fn parse(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err(
                "syntax error: unexpected $end, expecting IDENTIFIER or LITERAL".to_string(),
            );
        }
        let mut nodes: Vec<PatNode> = Vec::new();
        let mut names: Vec<OutName> = Vec::new();
        let mut lit = String::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            if let Some((name, len)) = capture_at(rest) {
                if !lit.is_empty() {
                    nodes.push(PatNode::Literal(std::mem::take(&mut lit)));
                }
                if name == "_" {
                    nodes.push(PatNode::Capture(None));
                } else {
                    nodes.push(PatNode::Capture(Some(names.len())));
                    names.push(OutName::new(name));
                }
                rest = &rest[len..];
                continue;
            }
            let mut it = rest.chars();
            if let Some(c) = it.next() {
                lit.push(c);
            }
            rest = it.as_str();
        }
        if !lit.is_empty() {
            nodes.push(PatNode::Literal(lit));
        }
        Ok(Self { nodes, names })
    }

    fn check_consecutive(&self) -> Result<(), String> {
        for w in self.nodes.windows(2) {
            if let [PatNode::Capture(a), PatNode::Capture(b)] = w {
                let show = |c: &Option<usize>| match c {
                    Some(i) => format!("<{}>", self.names[*i].name),
                    None => "<_>".to_string(),
                };
                return Err(format!(
                    "found consecutive capture '{}{}': invalid expression",
                    show(a),
                    show(b)
                ));
            }
        }
        Ok(())
    }

    pub fn process(&self, line: &str, labels: &mut LabelsBuilder) {
        if line.is_empty() || self.nodes.is_empty() {
            return;
        }
        let mut nodes = &self.nodes[..];
        let mut input = line;
        if let PatNode::Literal(ls) = &nodes[0] {
            if !input.starts_with(ls.as_str()) {
                return;
            }
            input = &input[ls.len()..];
            nodes = &nodes[1..];
        }
        let emit = |labels: &mut LabelsBuilder, idx: Option<usize>, value: &str| {
            if let Some(out) = idx.and_then(|i| self.names.get(i)) {
                let name = if labels.base_has(&out.name) {
                    &out.suffixed
                } else {
                    &out.name
                };
                labels.set(name, value);
            }
        };
        while !nodes.is_empty() {
            let PatNode::Capture(cap) = nodes[0] else {
                return;
            };
            let Some(PatNode::Literal(ls)) = nodes.get(1) else {
                // Ending on a capture: it takes the rest of the line.
                emit(labels, cap, input);
                return;
            };
            nodes = &nodes[2..];
            match memchr::memmem::find(input.as_bytes(), ls.as_bytes()) {
                None => {
                    // A literal that is not found: the capture takes the rest.
                    emit(labels, cap, input);
                    return;
                }
                Some(i) => {
                    emit(labels, cap, &input[..i]);
                    input = &input[i + ls.len()..];
                }
            }
        }
    }

    /// Whether the line matches, as the `|>` filter tests it: literals in order, each
    /// capture non-empty, a trailing literal ending the line.
    pub fn matches(&self, line: &str) -> bool {
        if line.is_empty() || self.nodes.is_empty() {
            return line.is_empty() && self.nodes.is_empty();
        }
        let b = line.as_bytes();
        let mut off = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            let PatNode::Literal(lit) = n else {
                continue;
            };
            let Some(j) = memchr::memmem::find(&b[off..], lit.as_bytes()) else {
                return false;
            };
            if i != 0 && j == 0 {
                return false;
            }
            off += j + lit.len();
        }
        let ends_on_capture = matches!(self.nodes.last(), Some(PatNode::Capture(_)));
        ends_on_capture == (off != b.len())
    }
}

/// `<name>` at the start of `s`: the name and the byte length of the token.
fn capture_at(s: &str) -> Option<(&str, usize)> {
    let b = s.as_bytes();
    if b.len() < 3 || b[0] != b'<' || !(b[1].is_ascii_alphabetic() || b[1] == b'_') {
        return None;
    }
    let end = b[2..].iter().position(|&c| !is_label_byte(c))? + 2;
    (b[end] == b'>').then(|| (&s[1..end], end + 1))
}

// ---------------------------------------------------------------------------------------
// unpack
// ---------------------------------------------------------------------------------------

/// `| unpack`: a Promtail `pack`ed line; its string fields become labels and `_entry`
/// the line.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnpackParser;

impl UnpackParser {
    /// Sets the labels; answers the new line when the object has `_entry`.
    pub fn process(&self, line: &str, labels: &mut LabelsBuilder) -> Option<String> {
        let &first = line.as_bytes().first()?;
        if first != b'{' {
            labels.set_error(
                errors::JSON_PARSER,
                Some("expecting json object(6), but it is not"),
            );
            return None;
        }
        let mut entry: Option<String> = None;
        let mut found: Vec<(String, String)> = Vec::new();
        let res = object_each(line, |key, value, ty| {
            if ty != ValueType::String {
                return Ok(());
            }
            if key == "_entry" {
                let v = unescape(value).ok_or(JsonError::MalformedStringEscape)?;
                entry = Some(v.into_owned());
                return Ok(());
            }
            let name = if labels.base_has(key) {
                format!("{key}{EXTRACTED_SUFFIX}")
            } else {
                key.to_string()
            };
            found.push((name, unescape_json_string(value).into_owned()));
            Ok(())
        });
        if let Err(e) = res {
            labels.set_error(errors::JSON_PARSER, Some(e.message()));
            return None;
        }
        if entry.is_some() {
            for (n, v) in &found {
                labels.set(n, v);
            }
        }
        entry
    }
}

// ---------------------------------------------------------------------------------------
// decolorize
// ---------------------------------------------------------------------------------------

/// Strips ANSI escape sequences with the expression Loki's `decolorize` uses
/// (acarl005/stripansi), Go's ASCII `\d` spelled out.
pub fn decolorize(line: &str) -> Cow<'_, str> {
    if !line.contains(['\u{1b}', '\u{9b}']) {
        return Cow::Borrowed(line);
    }
    static ANSI: OnceLock<Option<Regex>> = OnceLock::new();
    let re = ANSI.get_or_init(|| {
        Regex::new(
            "[\u{1b}\u{9b}][\\[\\]()#;?]*(?:(?:(?:[a-zA-Z0-9]*(?:;[a-zA-Z0-9]*)*)?\u{7})\
             |(?:(?:[0-9]{1,4}(?:;[0-9]{0,4})*)?[0-9A-PRZcf-ntqry=><~]))",
        )
        .ok()
    });
    match re {
        Some(re) => re.replace_all(line, ""),
        None => Cow::Borrowed(line),
    }
}

#[cfg(test)]
mod tests;
