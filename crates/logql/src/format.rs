//! Prints a query the way Loki's `String()` methods do (`pkg/logql/syntax/ast.go`), e.g.
//! `sum by (app)(count_over_time({app="a"} |= "x"[5m]))`. Parsing the printed text gives the
//! same tree back.
//!
//! Where Loki's text would not parse back to the same tree, a parseable form is printed
//! instead: negated line filters with `or` keep the `or` (Loki prints `!= "a" != "b"`), and an
//! `ignoring ()` that carries a `group_left`/`group_right` is kept. Byte sizes print in
//! go-humanize's rounded form as Loki's do; the parser already rounds them so (see
//! `units::loki_printed_bytes`), so the printed size is the one compared with.

use std::fmt::{self, Display, Formatter, Write};

use vigil_model::{MatchOp, Matcher};

use crate::ast::{
    Expr, GroupSide, Grouping, LabelFilterExpr, LabelFormatItem, LabelSelection, LineFilter,
    LineFilterOp, LineFilterValue, LogExpr, MetricExpr, ParserStage, Stage, Unwrap,
    UnwrapConversion, VectorAggOp,
};
use crate::parser::{binop_str, range_op_str, vector_op_str};
use crate::units::{format_duration, format_go_duration, humanize_bytes, parse_bytes};

/// Go's `strconv.Quote`: a double-quoted string with Go escapes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols
/// and the ASCII space.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c,
        '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}'
        | '\u{e000}'..='\u{f8ff}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
        | '\u{fffe}' | '\u{ffff}' | '\u{f0000}'..='\u{10ffff}')
}

/// Go's `fmt.Sprint(float64)` (`%v`): shortest digits, exponent form below 1e-4 and from 1e6.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => (sci.clone(), 0),
    };
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

fn match_op_str(op: MatchOp) -> &'static str {
    match op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::RegexMatch => "=~",
        MatchOp::RegexNoMatch => "!~",
    }
}

/// `name="value"`, as Prometheus prints a matcher.
pub fn matcher_string(m: &Matcher) -> String {
    format!("{}{}{}", m.name, match_op_str(m.op), quote(&m.value))
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => l.fmt(f),
            Expr::Metric(m) => m.fmt(f),
        }
    }
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.selector.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&matcher_string(m))?;
        }
        f.write_str("}")?;
        for stage in &self.pipeline {
            write!(f, " {stage}")?;
        }
        Ok(())
    }
}

impl Display for LineFilterOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
            LineFilterOp::Pattern => "|>",
            LineFilterOp::NotPattern => "!>",
        })
    }
}

impl Display for LineFilterValue {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LineFilterValue::Text(s) => f.write_str(&quote(s)),
            LineFilterValue::Ip(s) => write!(f, "ip({})", quote(s)),
        }
    }
}

impl Display for LineFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op)?;
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(" or")?;
            }
            write!(f, " {v}")?;
        }
        Ok(())
    }
}

fn write_params(f: &mut Formatter<'_>, params: &[(String, String)]) -> fmt::Result {
    for (i, (name, expr)) in params.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{name}={}", quote(expr))?;
    }
    Ok(())
}

impl Display for ParserStage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ParserStage::Json { params } if params.is_empty() => f.write_str("| json"),
            ParserStage::Json { params } => {
                f.write_str("| json ")?;
                write_params(f, params)
            }
            ParserStage::Logfmt {
                strict,
                keep_empty,
                params,
            } if params.is_empty() => {
                f.write_str("| logfmt")?;
                if *strict {
                    f.write_str(" --strict")?;
                }
                if *keep_empty {
                    f.write_str(" --keep-empty")?;
                }
                Ok(())
            }
            ParserStage::Logfmt {
                strict,
                keep_empty,
                params,
            } => {
                f.write_str("| logfmt ")?;
                if *strict {
                    f.write_str("--strict ")?;
                }
                if *keep_empty {
                    f.write_str("--keep-empty ")?;
                }
                write_params(f, params)
            }
            ParserStage::Regexp(re) => write!(f, "| regexp {}", quote(re)),
            ParserStage::Pattern(p) => write!(f, "| pattern {}", quote(p)),
            ParserStage::Unpack => f.write_str("| unpack"),
        }
    }
}

/// A byte size that parses back to the same value: go-humanize's form when exact (as Loki
/// prints it), else in bytes.
fn bytes_string(bytes: f64) -> String {
    if bytes >= 0.0 && bytes.fract() == 0.0 && bytes < u64::MAX as f64 {
        let h = humanize_bytes(bytes as u64);
        if parse_bytes(&h).map(f64::trunc) == Ok(bytes) {
            return h;
        }
        return format!("{}B", bytes as u64);
    }
    format!("{bytes}B")
}

impl Display for LabelFilterExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilterExpr::And(a, b) => write!(f, "( {a} , {b} )"),
            LabelFilterExpr::Or(a, b) => write!(f, "( {a} or {b} )"),
            LabelFilterExpr::Matcher(m) => f.write_str(&matcher_string(m)),
            LabelFilterExpr::Number { name, op, value } => write!(f, "{name}{op}{value}"),
            LabelFilterExpr::Duration { name, op, seconds } => {
                let ns = (seconds * 1e9).round() as i64;
                write!(f, "{name}{op}{}", format_go_duration(ns))
            }
            LabelFilterExpr::Bytes { name, op, bytes } => {
                write!(f, "{name}{op}{}", bytes_string(*bytes))
            }
            LabelFilterExpr::Ip {
                name,
                negated,
                pattern,
            } => {
                let eq = if *negated { "!=" } else { "=" };
                write!(f, "{name}{eq}ip({})", quote(pattern))
            }
        }
    }
}

impl Display for LabelFormatItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelFormatItem::Rename { dst, src } => write!(f, "{dst}={src}"),
            LabelFormatItem::Template { dst, template } => write!(f, "{dst}={}", quote(template)),
        }
    }
}

impl Display for LabelSelection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelSelection::Name(n) => f.write_str(n),
            LabelSelection::Matcher(m) => f.write_str(&matcher_string(m)),
        }
    }
}

fn join<T: Display>(items: &[T], sep: &str) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        let _ = write!(out, "{item}");
    }
    out
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(lf) => lf.fmt(f),
            Stage::Parser(p) => p.fmt(f),
            Stage::LabelFilter(lf) => write!(f, "| {lf}"),
            Stage::LineFormat(t) => write!(f, "| line_format {}", quote(t)),
            Stage::LabelFormat(items) => write!(f, "| label_format {}", join(items, ",")),
            Stage::Drop(items) => write!(f, "| drop {}", join(items, ",")),
            Stage::Keep(items) => write!(f, "| keep {}", join(items, ",")),
            Stage::Decolorize => f.write_str("| decolorize"),
        }
    }
}

impl Display for Unwrap {
    /// ` | unwrap x | filter` (with its leading space, as Loki prints it).
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.conversion {
            UnwrapConversion::None => write!(f, " | unwrap {}", self.label)?,
            UnwrapConversion::Duration => write!(f, " | unwrap duration({})", self.label)?,
            UnwrapConversion::Bytes => write!(f, " | unwrap bytes({})", self.label)?,
        }
        for pf in &self.post_filters {
            write!(f, " | {pf}")?;
        }
        Ok(())
    }
}

impl Display for Grouping {
    /// ` by (a,b)` / ` without (a)` (with its leading space, as Loki prints it).
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kw = if self.without { "without" } else { "by" };
        write!(f, " {kw} ({})", self.labels.join(","))
    }
}

impl Display for MetricExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricExpr::Range {
                op,
                log,
                range_ns,
                offset_ns,
                unwrap,
                param,
                grouping,
            } => {
                write!(f, "{}(", range_op_str(*op))?;
                if let Some(p) = param {
                    write!(f, "{p},")?;
                }
                write!(f, "{log}")?;
                if let Some(u) = unwrap {
                    write!(f, "{u}")?;
                }
                write!(f, "[{}]", format_duration(*range_ns))?;
                if *offset_ns != 0 {
                    write!(f, " offset {}", format_go_duration(*offset_ns))?;
                }
                f.write_str(")")?;
                if let Some(g) = grouping {
                    write!(f, "{g}")?;
                }
                Ok(())
            }
            MetricExpr::VectorAgg {
                op,
                param,
                grouping,
                inner,
            } => {
                f.write_str(vector_op_str(*op))?;
                if let Some(g) = grouping {
                    if g.without || !g.labels.is_empty() {
                        write!(f, "{g}")?;
                    }
                }
                f.write_str("(")?;
                match (op, param) {
                    (VectorAggOp::Topk | VectorAggOp::Bottomk, p) => {
                        write!(f, "{},", p.unwrap_or(0.0) as i64)?;
                    }
                    (_, Some(p)) if *p != 0.0 => write!(f, "{},", *p as i64)?,
                    _ => {}
                }
                write!(f, "{inner})")
            }
            MetricExpr::Binary {
                op,
                return_bool,
                matching,
                lhs,
                rhs,
            } => {
                let mut op_s = binop_str(*op).to_string();
                if *return_bool {
                    op_s.push_str(" bool");
                }
                if let Some(m) = matching {
                    let group = match &m.group {
                        None => String::new(),
                        Some(GroupSide::Left(l)) if l.is_empty() => "group_left".to_string(),
                        Some(GroupSide::Right(l)) if l.is_empty() => "group_right".to_string(),
                        Some(GroupSide::Left(l)) => format!("group_left ({})", l.join(",")),
                        Some(GroupSide::Right(l)) => format!("group_right ({})", l.join(",")),
                    };
                    if m.on || !m.labels.is_empty() || m.group.is_some() {
                        let kw = if m.on { "on" } else { "ignoring" };
                        op_s = format!("{op_s} {kw} ({}) {group}", m.labels.join(","));
                    }
                }
                write!(f, "({lhs} {op_s} {rhs})")
            }
            MetricExpr::Literal(v) => f.write_str(&go_float(*v)),
            MetricExpr::Vector(v) => write!(f, "vector({v:.6})"),
            MetricExpr::LabelReplace {
                inner,
                dst,
                replacement,
                src,
                regex,
            } => write!(
                f,
                "label_replace({inner},{},{},{},{})",
                quote(dst),
                quote(replacement),
                quote(src),
                quote(regex)
            ),
        }
    }
}
