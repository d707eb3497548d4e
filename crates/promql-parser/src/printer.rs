//! Prometheus' canonical text of an expression (`Display for Expr`) and its prettier.

use std::fmt::{self, Write as _};

use vigil_model::{MatchOp, Matcher, METRIC_NAME_LABEL};

use crate::ast::*;
use crate::lexer::go_quote;

/// A duration in Prometheus' notation (`1h30m`, `5m`, `1w`, `0s`); years and weeks only when
/// they divide the duration exactly.
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut rest = ms.unsigned_abs();
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
    }
    const UNITS: [(&str, u64, bool); 7] = [
        ("y", 365 * 24 * 3_600_000, true),
        ("w", 7 * 24 * 3_600_000, true),
        ("d", 24 * 3_600_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1_000, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in UNITS {
        if exact && rest % mult != 0 {
            continue;
        }
        let v = rest / mult;
        if v > 0 {
            let _ = write!(out, "{v}{unit}");
            rest -= v * mult;
        }
    }
    out
}

/// A number as Prometheus prints it (Go's `strconv.FormatFloat(v, 'f', -1, 64)`).
pub(crate) fn format_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's shortest round-trip digits, never in exponent form: the same as Go's 'f', -1.
        format!("{v}")
    }
}

fn is_legacy_label(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn write_label(out: &mut String, l: &str) {
    if is_legacy_label(l) {
        out.push_str(l);
    } else {
        out.push_str(&go_quote(l));
    }
}

fn write_labels(out: &mut String, labels: &[String]) {
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_label(out, l);
    }
}

fn matcher_string(m: &Matcher) -> String {
    let mut s = String::new();
    write_label(&mut s, &m.name);
    s.push_str(match m.op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::RegexMatch => "=~",
        MatchOp::RegexNoMatch => "!~",
    });
    s.push_str(&go_quote(&m.value));
    s
}

fn at_string(at: &Option<AtModifier>) -> String {
    match at {
        None => String::new(),
        Some(AtModifier::Start) => " @ start()".to_string(),
        Some(AtModifier::End) => " @ end()".to_string(),
        Some(AtModifier::Timestamp(ms)) => format!(" @ {:.3}", *ms as f64 / 1000.0),
    }
}

fn offset_string(ms: i64) -> String {
    match ms {
        0 => String::new(),
        ms if ms > 0 => format!(" offset {}", format_duration(ms)),
        ms => format!(" offset -{}", format_duration(ms.saturating_neg())),
    }
}

/// The selector without `@` and `offset`.
fn selector_base(vs: &VectorSelector) -> String {
    let name = vs.name.as_deref().unwrap_or("");
    let mut parts: Vec<String> = vs
        .matchers
        .iter()
        .filter(|m| {
            !(m.name == METRIC_NAME_LABEL
                && m.op == MatchOp::Equal
                && m.value == name
                && !m.value.is_empty())
        })
        .map(matcher_string)
        .collect();
    parts.sort();
    let mut out = name.to_string();
    if !parts.is_empty() || name.is_empty() {
        out.push('{');
        out.push_str(&parts.join(","));
        out.push('}');
    }
    out
}

impl fmt::Display for VectorSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            selector_base(self),
            at_string(&self.at),
            offset_string(self.offset_ms)
        )
    }
}

impl fmt::Display for MatrixSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}]{}{}",
            selector_base(&self.selector),
            format_duration(self.range_ms),
            at_string(&self.selector.at),
            offset_string(self.selector.offset_ms)
        )
    }
}

impl SubqueryExpr {
    /// `[range:step] @ ... offset ...`.
    fn suffix(&self) -> String {
        let step = match self.step_ms {
            Some(s) if s != 0 => format_duration(s),
            _ => String::new(),
        };
        format!(
            "[{}:{}]{}{}",
            format_duration(self.range_ms),
            step,
            at_string(&self.at),
            offset_string(self.offset_ms)
        )
    }
}

impl AggregateExpr {
    /// `sum by (a, b) ` / `sum without () ` / `sum`.
    fn op_string(&self) -> String {
        let mut s = self.op.as_str().to_string();
        if self.without {
            s.push_str(" without (");
            write_labels(&mut s, &self.grouping);
            s.push_str(") ");
        } else if !self.grouping.is_empty() {
            s.push_str(" by (");
            write_labels(&mut s, &self.grouping);
            s.push_str(") ");
        }
        s
    }
}

impl BinaryExpr {
    /// ` bool on (x) group_left (y)` after the operator.
    fn modifier_string(&self) -> String {
        let mut s = String::new();
        if self.return_bool {
            s.push_str(" bool");
        }
        if let Some(vm) = &self.matching {
            let grouped = matches!(vm.card, Cardinality::ManyToOne | Cardinality::OneToMany);
            if !vm.matching_labels.is_empty() || vm.on || grouped {
                s.push_str(if vm.on { " on (" } else { " ignoring (" });
                write_labels(&mut s, &vm.matching_labels);
                s.push(')');
            }
            if grouped {
                s.push_str(if vm.card == Cardinality::ManyToOne {
                    " group_left ("
                } else {
                    " group_right ("
                });
                write_labels(&mut s, &vm.include);
                s.push(')');
            }
        }
        s
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::NumberLiteral(v) => f.write_str(&format_number(*v)),
            Expr::StringLiteral(s) => f.write_str(&go_quote(s)),
            Expr::VectorSelector(vs) => vs.fmt(f),
            Expr::MatrixSelector(ms) => ms.fmt(f),
            Expr::Subquery(sq) => write!(f, "{}{}", sq.expr, sq.suffix()),
            Expr::Paren(e) => write!(f, "({e})"),
            Expr::Unary(u) => {
                let op = if u.op == UnaryOp::Neg { "-" } else { "+" };
                write!(f, "{op}{}", u.expr)
            }
            Expr::Binary(b) => write!(
                f,
                "{} {}{} {}",
                b.lhs,
                b.op.as_str(),
                b.modifier_string(),
                b.rhs
            ),
            Expr::Aggregate(a) => {
                write!(f, "{}(", a.op_string())?;
                if let Some(p) = &a.param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{})", a.expr)
            }
            Expr::Call(c) => {
                write!(f, "{}(", c.func.name)?;
                for (i, a) in c.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}

const MAX_LINE: usize = 100;

fn indent(level: usize) -> String {
    "  ".repeat(level)
}

/// Prometheus' prettier (`/api/v1/format_query`): a node whose one-line form is longer than
/// 100 characters is split over indented lines; shorter nodes stay on one line.
pub fn prettify(expr: &Expr) -> String {
    pretty(expr, 0, MAX_LINE)
}

fn pretty(expr: &Expr, level: usize, max: usize) -> String {
    let one_line = expr.to_string();
    let split = one_line.len() > max;
    match expr {
        Expr::Aggregate(a) if split => {
            let mut s = format!("{}{}(\n", indent(level), a.op_string());
            if let Some(p) = &a.param {
                let _ = writeln!(s, "{},", pretty(p, level + 1, max));
            }
            let _ = write!(s, "{}\n{})", pretty(&a.expr, level + 1, max), indent(level));
            s
        }
        Expr::Binary(b) if split => format!(
            "{}\n{}{}{}\n{}",
            pretty(&b.lhs, level + 1, max),
            indent(level),
            b.op.as_str(),
            b.modifier_string(),
            pretty(&b.rhs, level + 1, max)
        ),
        Expr::Call(c) if split => {
            let args: Vec<String> = c.args.iter().map(|a| pretty(a, level + 1, max)).collect();
            format!(
                "{}{}(\n{}\n{})",
                indent(level),
                c.func.name,
                args.join(",\n"),
                indent(level)
            )
        }
        Expr::Paren(e) if split => format!(
            "{}(\n{}\n{})",
            indent(level),
            pretty(e, level + 1, max),
            indent(level)
        ),
        // Prometheus prints an unsplit subquery without indentation.
        Expr::Subquery(sq) if !split => one_line,
        Expr::Subquery(sq) => format!("{}{}", pretty(&sq.expr, level, max), sq.suffix()),
        Expr::Unary(u) => {
            let op = if u.op == UnaryOp::Neg { "-" } else { "+" };
            format!(
                "{}{}{}",
                indent(level),
                op,
                pretty(&u.expr, level, max).trim()
            )
        }
        _ => format!("{}{}", indent(level), one_line),
    }
}

#[cfg(test)]
pub(crate) fn prettify_with_limit(expr: &Expr, max: usize) -> String {
    pretty(expr, 0, max)
}
