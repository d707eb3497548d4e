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
        if exact && rest.checked_rem(mult).is_some_and(|r| r != 0) {
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
pub fn format_number(v: f64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn canon(q: &str) -> String {
        parse(q).unwrap().to_string()
    }

    #[test]
    fn canonical_strings() {
        for (q, want) in [
            (
                "sum by() (task:errors:rate10s{job=\"s\"})",
                "sum(task:errors:rate10s{job=\"s\"})",
            ),
            (
                "sum(rate(foo{bar=\"baz\"}[5m] offset 1m)) by (job)",
                "sum by (job) (rate(foo{bar=\"baz\"}[5m] offset 1m))",
            ),
            ("sum without() (x)", "sum without () (x)"),
            ("topk(5, x)", "topk(5, x)"),
            ("count_values('value', x)", "count_values(\"value\", x)"),
            ("a - on() c", "a - on () c"),
            ("a - on(b) group_left c", "a - on (b) group_left () c"),
            ("a - ignoring() c", "a - c"),
            (
                "a - ignoring(b) group_right(x, y) c",
                "a - ignoring (b) group_right (x, y) c",
            ),
            ("up > bool 0", "up > bool 0"),
            ("a offset -7m", "a offset -7m"),
            ("a[1h:5m] offset 1m", "a[1h:5m] offset 1m"),
            ("a[90m:]", "a[1h30m:]"),
            ("a @ 10", "a @ 10.000"),
            ("a[1m] @ start() offset 10s", "a[1m] @ start() offset 10s"),
            ("{__name__=\"a\"}", "{__name__=\"a\"}"),
            ("{\"a.b\", c=\"d\"}", "{__name__=\"a.b\",c=\"d\"}"),
            (
                "x{\"a b\"=\"1\", b=\"2\", a=\"3\"}",
                "x{\"a b\"=\"1\",a=\"3\",b=\"2\"}",
            ),
            ("sum by (\"a.b\") (x)", "sum by (\"a.b\") (x)"),
            ("1e3 + 1.5e-7 + 0x10", "1000 + 0.00000015 + 16"),
            ("-Inf + NaN - +Inf", "-Inf + NaN - +Inf"),
            ("foo[300]", "foo[5m]"),
            ("foo[86400s]", "foo[1d]"),
            ("foo[14d]", "foo[2w]"),
            ("foo[1500ms]", "foo[1s500ms]"),
            ("-(a + b)", "-(a + b)"),
            ("-2^2", "-2 ^ 2"),
            ("'a\\n\"b\"'", "\"a\\n\\\"b\\\"\""),
            ("time()", "time()"),
            (
                "label_join(a, \"x\", \",\", \"y\")",
                "label_join(a, \"x\", \",\", \"y\")",
            ),
        ] {
            assert_eq!(canon(q), want, "query {q}");
        }
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(-90_000), "-1m30s");
        assert_eq!(format_duration(365 * 86_400_000), "1y");
        assert_eq!(format_duration(90 * 86_400_000), "90d");
    }

    fn pretty10(q: &str) -> String {
        prettify_with_limit(&parse(q).unwrap(), 10)
    }

    #[test]
    fn prettier_like_prometheus() {
        // Cases from Prometheus' prettier tests (line limit 10).
        for (q, want) in [
            ("sum(foo)", "sum(foo)"),
            ("sum by() (task:errors:rate10s{job=\"s\"})", "sum(\n  task:errors:rate10s{job=\"s\"}\n)"),
            ("sum (task:errors:rate10s{job=\"s\"}) by(job,foo)", "sum by (job, foo) (\n  task:errors:rate10s{job=\"s\"}\n)"),
            ("topk(10, ask:errors:rate10s{job=\"s\"})", "topk(\n  10,\n  ask:errors:rate10s{job=\"s\"}\n)"),
            ("a+b", "a + b"),
            ("a == bool 1", "  a\n== bool\n  1"),
            ("a + ignoring(job) b", "  a\n+ ignoring (job)\n  b"),
            ("foo_1 + foo_2 + foo_3", "    foo_1\n  +\n    foo_2\n+\n  foo_3"),
            ("foo + baar + foo_3", "  foo + baar\n+\n  foo_3"),
            ("rate(foo[1m])", "rate(\n  foo[1m]\n)"),
            ("rate(long_vector_selector[10m:1m] @ start() offset 1m)", "rate(\n  long_vector_selector[10m:1m] @ start() offset 1m\n)"),
            ("histogram_quantile(0.9, rate(foo[1m]))", "histogram_quantile(\n  0.9,\n  rate(\n    foo[1m]\n  )\n)"),
            ("max_over_time(rate(demo_api_request_duration_seconds_count[1m])[1m:] @ start() offset 1m)", "max_over_time(\n  rate(\n    demo_api_request_duration_seconds_count[1m]\n  )[1m:] @ start() offset 1m\n)"),
            ("(foo)", "(foo)"),
            ("((foo_long))", "(\n  (foo_long)\n)"),
            ("(1 + 2)", "(1 + 2)"),
            ("a @ 1", "a @ 1.000"),
            ("-histogram_quantile(0.9,rate(foo[1m]))", "-histogram_quantile(\n  0.9,\n  rate(\n    foo[1m]\n  )\n)"),
            ("(-vector_selector)", "(\n  -vector_selector\n)"),
        ] {
            assert_eq!(pretty10(q), want, "query {q}");
        }
        let long = "(node_timex_offset_seconds > 0.05 and deriv(node_timex_offset_seconds[5m]) >= 0) or (node_timex_offset_seconds < -0.05 and deriv(node_timex_offset_seconds[5m]) <= 0)";
        assert_eq!(
            pretty10(long),
            "  (\n        node_timex_offset_seconds\n      >\n        0.05\n    and\n        deriv(\n          node_timex_offset_seconds[5m]\n        )\n      >=\n        0\n  )\nor\n  (\n        node_timex_offset_seconds\n      <\n        -0.05\n    and\n        deriv(\n          node_timex_offset_seconds[5m]\n        )\n      <=\n        0\n  )"
        );
        // The real limit is 100: short queries stay on one line.
        let e = parse("sum by (job) (rate(foo[5m]))").unwrap();
        assert_eq!(prettify(&e), "sum by (job) (rate(foo[5m]))");
    }
}
