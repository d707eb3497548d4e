//! The LogQL parser (Loki 3.x grammar, `pkg/logql/syntax/syntax.y`), written as a recursive
//! descent over the tokens of [`lexer`], with Loki's error texts:
//! `parse error at line 1, col 13: syntax error: unexpected $end, expecting } or ,` for
//! syntax errors, `parse error : <message>` for errors without a position.
//!
//! As in Loki, some errors are only reported once the whole query is syntactically valid
//! (bad parameters, grouping or unwrap not allowed, a log query where a metric is needed,
//! the "at least one non-empty matcher" rule), while bad regular expressions in matchers and
//! bad `regexp`/`pattern` parsers stop the parse at once.

mod lexer;
#[cfg(test)]
mod tests;

use std::fmt;

use regex::Regex;
use vigil_model::{MatchOp, Matcher};

use crate::ast::{
    BinaryOp, CmpOp, Expr, GroupSide, Grouping, LabelFilterExpr, LabelFormatItem, LabelSelection,
    LineFilter, LineFilterOp, LineFilterValue, LogExpr, MetricExpr, ParserStage, RangeOp, Stage,
    Unwrap, UnwrapConversion, VectorAggOp, VectorMatching,
};
use crate::units::loki_printed_bytes;
use lexer::{lex, Sym, Tok, Token};

/// A LogQL parse error. `line`/`col` are 1-based (as Loki reports them; the line may read 0
/// for some tokens, as in Loki); both are 0 when the error has no position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ParseError {
    /// An error without a position.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            line: 0,
            col: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 && self.col == 0 {
            write!(f, "parse error : {}", self.message)
        } else {
            write!(
                f,
                "parse error at line {}, col {}: {}",
                self.line, self.col, self.message
            )
        }
    }
}

impl std::error::Error for ParseError {}

const ERR_NEED_MATCHER: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

/// Parses a LogQL query (log or metric).
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        toks: lex(src),
        pos: 0,
        deferred: Vec::new(),
        stage_errors: Vec::new(),
    };
    let node = p.parse_expr(0)?;
    if !matches!(p.peek().tok, Tok::Eof) {
        return Err(p.unexpected(&[]));
    }
    if let Some(e) = p.deferred.into_iter().next() {
        return Err(e);
    }
    if let Node::Log(log) = &node {
        check_selector(&log.selector)?;
    }
    if let Some(e) = p.stage_errors.into_iter().next() {
        return Err(e);
    }
    Ok(match node {
        Node::Log(l) => Expr::Log(l),
        Node::Metric(m) => Expr::Metric(m),
    })
}

/// Loki's rule: at least one matcher that does not match the empty string.
fn check_selector(selector: &[Matcher]) -> Result<(), ParseError> {
    if selector.iter().any(|m| !m.matches_empty()) {
        Ok(())
    } else {
        Err(ParseError::new(ERR_NEED_MATCHER))
    }
}

/// Turns a Rust regex error into Go's `regexp` wording where the kind is known.
pub(crate) fn go_regex_error(pattern: &str, rust_error: &str) -> String {
    let kind = rust_error
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(rust_error)
        .trim();
    let go = match kind {
        "unclosed group" => format!("missing closing ): `{pattern}`"),
        "unopened group" => format!("unexpected ): `{pattern}`"),
        "unclosed character class" => {
            let from = pattern.rfind('[').unwrap_or(0);
            format!("missing closing ]: `{}`", &pattern[from..])
        }
        "repetition operator missing expression" => {
            let op = pattern
                .chars()
                .find(|c| matches!(c, '*' | '+' | '?' | '{'))
                .unwrap_or('*');
            format!("missing argument to repetition operator: `{op}`")
        }
        _ => format!("{kind}: `{pattern}`"),
    };
    format!("error parsing regexp: {go}")
}

fn new_matcher(op: MatchOp, name: &str, value: &str) -> Result<Matcher, ParseError> {
    Matcher::new(op, name, value).map_err(|e| {
        let reason = match &e {
            vigil_model::MatcherError::BadRegex { reason, .. } => reason.clone(),
        };
        ParseError::new(go_regex_error(value, &reason))
    })
}

enum Node {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// Where a label filter expression is being parsed: decides, as yacc's precedences and
/// shift preferences do, whether a following `and`/`or`/`,`/juxtaposition belongs here.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FilterCtx {
    Top,
    RightOfOr,
    RightOfAnd,
    RightOfComma,
}

struct LogRange {
    log: LogExpr,
    range_ns: i64,
    offset_ns: i64,
    unwrap: Option<Unwrap>,
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Errors Loki reports after a successful syntax parse, in order.
    deferred: Vec<ParseError>,
    /// Errors of stages that do not build (bad line filter regexes, ...), reported last.
    stage_errors: Vec<ParseError>,
}

fn binop_of(t: &Tok) -> Option<(BinaryOp, u8, bool)> {
    let Tok::Sym(s) = t else { return None };
    Some(match s {
        Sym::Or => (BinaryOp::Or, 1, false),
        Sym::And => (BinaryOp::And, 2, false),
        Sym::Unless => (BinaryOp::Unless, 2, false),
        Sym::CmpEq => (BinaryOp::Eq, 3, false),
        Sym::Neq => (BinaryOp::Ne, 3, false),
        Sym::Gt => (BinaryOp::Gt, 3, false),
        Sym::Ge => (BinaryOp::Ge, 3, false),
        Sym::Lt => (BinaryOp::Lt, 3, false),
        Sym::Le => (BinaryOp::Le, 3, false),
        Sym::Add => (BinaryOp::Add, 4, false),
        Sym::Sub => (BinaryOp::Sub, 4, false),
        Sym::Mul => (BinaryOp::Mul, 5, false),
        Sym::Div => (BinaryOp::Div, 5, false),
        Sym::Mod => (BinaryOp::Mod, 5, false),
        Sym::Pow => (BinaryOp::Pow, 6, true),
        _ => return None,
    })
}

pub(crate) fn binop_str(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Or => "or",
        BinaryOp::And => "and",
        BinaryOp::Unless => "unless",
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
        BinaryOp::Mod => "%",
        BinaryOp::Pow => "^",
        BinaryOp::Eq => "==",
        BinaryOp::Ne => "!=",
        BinaryOp::Gt => ">",
        BinaryOp::Ge => ">=",
        BinaryOp::Lt => "<",
        BinaryOp::Le => "<=",
    }
}

pub(crate) fn range_op_str(op: RangeOp) -> &'static str {
    match op {
        RangeOp::CountOverTime => "count_over_time",
        RangeOp::Rate => "rate",
        RangeOp::RateCounter => "rate_counter",
        RangeOp::BytesOverTime => "bytes_over_time",
        RangeOp::BytesRate => "bytes_rate",
        RangeOp::AbsentOverTime => "absent_over_time",
        RangeOp::SumOverTime => "sum_over_time",
        RangeOp::AvgOverTime => "avg_over_time",
        RangeOp::MaxOverTime => "max_over_time",
        RangeOp::MinOverTime => "min_over_time",
        RangeOp::StddevOverTime => "stddev_over_time",
        RangeOp::StdvarOverTime => "stdvar_over_time",
        RangeOp::QuantileOverTime => "quantile_over_time",
        RangeOp::FirstOverTime => "first_over_time",
        RangeOp::LastOverTime => "last_over_time",
    }
}

pub(crate) fn vector_op_str(op: VectorAggOp) -> &'static str {
    match op {
        VectorAggOp::Sum => "sum",
        VectorAggOp::Avg => "avg",
        VectorAggOp::Min => "min",
        VectorAggOp::Max => "max",
        VectorAggOp::Count => "count",
        VectorAggOp::Stddev => "stddev",
        VectorAggOp::Stdvar => "stdvar",
        VectorAggOp::Topk => "topk",
        VectorAggOp::Bottomk => "bottomk",
        VectorAggOp::Sort => "sort",
        VectorAggOp::SortDesc => "sort_desc",
    }
}

/// Go's `%f`.
fn go_f(v: f64) -> String {
    format!("{v:.6}")
}

/// Go's `strconv.ParseFloat` on a scanner number.
fn parse_number(text: &str) -> Result<f64, String> {
    let clean = !text.contains('_') && !text.starts_with("0x") && !text.starts_with("0X");
    match text.parse::<f64>() {
        Ok(v) if clean => Ok(v),
        _ => Err(format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            crate::format::quote(text)
        )),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].tok
    }

    fn is(&self, s: Sym) -> bool {
        self.peek().tok == Tok::Sym(s)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    /// A syntax error at the current token (or the lexer's error if that is where we are).
    /// The expected tokens are listed only when there are at most four, as goyacc does.
    fn unexpected(&self, expected: &[&str]) -> ParseError {
        let t = self.peek();
        if let Tok::Error(e) = &t.tok {
            return e.clone();
        }
        let mut message = format!("syntax error: unexpected {}", t.tok.name());
        if !expected.is_empty() && expected.len() <= 4 {
            message.push_str(", expecting ");
            message.push_str(&expected.join(" or "));
        }
        ParseError {
            line: t.line,
            col: t.col,
            message,
        }
    }

    fn expect(&mut self, s: Sym, expected: &[&str]) -> Result<(), ParseError> {
        if self.is(s) {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_ident(&mut self, expected: &[&str]) -> Result<String, ParseError> {
        if let Tok::Ident(s) = &self.peek().tok {
            let s = s.clone();
            self.bump();
            Ok(s)
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_string(&mut self, expected: &[&str]) -> Result<String, ParseError> {
        if let Tok::Str(s) = &self.peek().tok {
            let s = s.clone();
            self.bump();
            Ok(s)
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn defer(&mut self, message: impl Into<String>) {
        self.deferred.push(ParseError::new(message));
    }

    // ---------------------------------------------------------------- expressions

    fn parse_expr(&mut self, min_prec: u8) -> Result<Node, ParseError> {
        let mut lhs = self.parse_primary()?;
        while let Some((op, prec, right_assoc)) = binop_of(&self.peek().tok) {
            if prec < min_prec {
                break;
            }
            self.bump();
            let (return_bool, matching) = self.parse_bin_modifier()?;
            let rhs = self.parse_expr(if right_assoc { prec } else { prec + 1 })?;
            lhs = Node::Metric(self.make_binop(op, return_bool, matching, lhs, rhs));
        }
        Ok(lhs)
    }

    fn need_metric(&self, node: Node) -> Result<MetricExpr, ParseError> {
        match node {
            Node::Metric(m) => Ok(m),
            Node::Log(_) => Err(self.unexpected(&[])),
        }
    }

    fn parse_primary(&mut self) -> Result<Node, ParseError> {
        match self.peek().tok.clone() {
            Tok::Sym(Sym::LBrace) => Ok(Node::Log(self.parse_log_expr()?)),
            Tok::Sym(Sym::LParen) => {
                self.bump();
                let inner = self.parse_expr(0)?;
                self.expect(Sym::RParen, &[])?;
                Ok(inner)
            }
            Tok::Number(_) | Tok::Sym(Sym::Add) | Tok::Sym(Sym::Sub) => {
                let v = self.parse_literal()?;
                Ok(Node::Metric(MetricExpr::Literal(v)))
            }
            Tok::Sym(Sym::RangeFn(op)) => self.parse_range_agg(op).map(Node::Metric),
            Tok::Sym(Sym::VecFn(op)) => self.parse_vector_agg(op).map(Node::Metric),
            Tok::Sym(Sym::Vector) => {
                self.bump();
                self.expect(Sym::LParen, &["("])?;
                let v = match &self.peek().tok {
                    Tok::Number(text) => {
                        let text = text.clone();
                        self.bump();
                        parse_number(&text).unwrap_or_else(|e| {
                            self.defer(format!("unable to parse vectorExpr as a float: {e}"));
                            0.0
                        })
                    }
                    _ => return Err(self.unexpected(&["NUMBER"])),
                };
                self.expect(Sym::RParen, &[")"])?;
                Ok(Node::Metric(MetricExpr::Vector(v)))
            }
            Tok::Sym(Sym::LabelReplace) => self.parse_label_replace().map(Node::Metric),
            _ => Err(self.unexpected(&[])),
        }
    }

    /// `NUMBER`, `+NUMBER`, `-NUMBER`.
    fn parse_literal(&mut self) -> Result<f64, ParseError> {
        let negative = if self.is(Sym::Sub) || self.is(Sym::Add) {
            let neg = self.is(Sym::Sub);
            self.bump();
            neg
        } else {
            false
        };
        let text = match &self.peek().tok {
            Tok::Number(t) => t.clone(),
            _ => return Err(self.unexpected(&["NUMBER"])),
        };
        self.bump();
        let v = parse_number(&text).unwrap_or_else(|e| {
            self.defer(format!("unable to parse literal as a float: {e}"));
            0.0
        });
        Ok(if negative { -v } else { v })
    }

    fn parse_label_list(&mut self) -> Result<Vec<String>, ParseError> {
        self.expect(Sym::LParen, &["("])?;
        let mut labels = Vec::new();
        if self.is(Sym::RParen) {
            self.bump();
            return Ok(labels);
        }
        loop {
            let expected: &[&str] = if labels.is_empty() {
                &["IDENTIFIER", ")"]
            } else {
                &["IDENTIFIER"]
            };
            labels.push(self.expect_ident(expected)?);
            if self.is(Sym::Comma) {
                self.bump();
            } else if self.is(Sym::RParen) {
                self.bump();
                return Ok(labels);
            } else {
                return Err(self.unexpected(&[",", ")"]));
            }
        }
    }

    fn parse_grouping_opt(&mut self) -> Result<Option<Grouping>, ParseError> {
        let without = if self.is(Sym::By) {
            false
        } else if self.is(Sym::Without) {
            true
        } else {
            return Ok(None);
        };
        self.bump();
        let labels = self.parse_label_list()?;
        Ok(Some(Grouping { without, labels }))
    }

    fn parse_bin_modifier(&mut self) -> Result<(bool, Option<VectorMatching>), ParseError> {
        let return_bool = if self.is(Sym::Bool) {
            self.bump();
            true
        } else {
            false
        };
        let on = if self.is(Sym::On) {
            true
        } else if self.is(Sym::Ignoring) {
            false
        } else {
            return Ok((return_bool, None));
        };
        self.bump();
        let labels = self.parse_label_list()?;
        let group = if self.is(Sym::GroupLeft) || self.is(Sym::GroupRight) {
            let left = self.is(Sym::GroupLeft);
            self.bump();
            let include = if self.is(Sym::LParen) {
                self.parse_label_list()?
            } else {
                Vec::new()
            };
            Some(if left {
                GroupSide::Left(include)
            } else {
                GroupSide::Right(include)
            })
        } else {
            None
        };
        if !on && labels.is_empty() && group.is_none() {
            // `ignoring ()` is the default matching.
            return Ok((return_bool, None));
        }
        Ok((return_bool, Some(VectorMatching { on, labels, group })))
    }

    fn make_binop(
        &mut self,
        op: BinaryOp,
        return_bool: bool,
        matching: Option<VectorMatching>,
        lhs: Node,
        rhs: Node,
    ) -> MetricExpr {
        let op_s = binop_str(op);
        let lhs = match lhs {
            Node::Metric(m) => m,
            Node::Log(l) => {
                self.defer(format!(
                    "unexpected type for left leg of binary operation ({op_s}): *syntax.{}",
                    log_type_name(&l)
                ));
                return MetricExpr::Literal(0.0);
            }
        };
        let rhs = match rhs {
            Node::Metric(m) => m,
            Node::Log(l) => {
                self.defer(format!(
                    "unexpected type for right leg of binary operation ({op_s}): *syntax.{}",
                    log_type_name(&l)
                ));
                return MetricExpr::Literal(0.0);
            }
        };
        if op.is_set() {
            if let MetricExpr::Literal(v) = lhs {
                self.defer(format!(
                    "unexpected literal for left leg of logical/set binary operation ({op_s}): {}",
                    go_f(v)
                ));
                return MetricExpr::Literal(0.0);
            }
            if let MetricExpr::Literal(v) = rhs {
                self.defer(format!(
                    "unexpected literal for right leg of logical/set binary operation ({op_s}): {}",
                    go_f(v)
                ));
                return MetricExpr::Literal(0.0);
            }
        }
        if let (MetricExpr::Literal(a), MetricExpr::Literal(b)) = (&lhs, &rhs) {
            return MetricExpr::Literal(fold(op, *a, *b));
        }
        MetricExpr::Binary {
            op,
            return_bool,
            matching,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        }
    }

    fn parse_vector_agg(&mut self, op: VectorAggOp) -> Result<MetricExpr, ParseError> {
        self.bump();
        let before = self.parse_grouping_opt()?;
        self.expect(Sym::LParen, &["("])?;
        let mut param_text = None;
        if let (Tok::Number(t), Tok::Sym(Sym::Comma)) = (&self.peek().tok, self.peek_at(1)) {
            param_text = Some(t.clone());
            self.bump();
            self.bump();
        }
        let node = self.parse_expr(0)?;
        let inner = self.need_metric(node)?;
        self.expect(Sym::RParen, &[])?;
        let grouping = match before {
            Some(g) => Some(g),
            None => self.parse_grouping_opt()?,
        };
        let name = vector_op_str(op);
        let mut param = None;
        match op {
            VectorAggOp::Topk | VectorAggOp::Bottomk => match &param_text {
                None => self.defer(format!("parameter required for operation {name}")),
                Some(t) => match t.parse::<i64>() {
                    Err(_) => self.defer(format!("invalid parameter {name}({t},")),
                    Ok(k) if k <= 0 => self.defer(format!(
                        "invalid parameter (must be greater than 0) {name}({t}"
                    )),
                    Ok(k) => param = Some(k as f64),
                },
            },
            _ => {
                if let Some(t) = &param_text {
                    self.defer(format!("unsupported parameter for operation {name}({t},"));
                }
            }
        }
        if matches!(op, VectorAggOp::Sort | VectorAggOp::SortDesc)
            && grouping.as_ref().is_some_and(|g| !g.labels.is_empty())
        {
            self.defer("sort and sort_desc doesn't allow grouping by ");
        }
        // `by ()` aggregates everything, as no grouping does.
        let grouping = grouping.filter(|g| g.without || !g.labels.is_empty());
        Ok(MetricExpr::VectorAgg {
            op,
            param,
            grouping,
            inner: Box::new(inner),
        })
    }

    fn parse_label_replace(&mut self) -> Result<MetricExpr, ParseError> {
        self.bump();
        self.expect(Sym::LParen, &["("])?;
        let node = self.parse_expr(0)?;
        let inner = self.need_metric(node)?;
        let mut args = Vec::with_capacity(4);
        for _ in 0..4 {
            self.expect(Sym::Comma, &[])?;
            args.push(self.expect_string(&["STRING"])?);
        }
        self.expect(Sym::RParen, &[")"])?;
        let regex = args.pop().unwrap_or_default();
        let src = args.pop().unwrap_or_default();
        let replacement = args.pop().unwrap_or_default();
        let dst = args.pop().unwrap_or_default();
        if let Err(e) = Regex::new(&format!("^(?:{regex})$")) {
            self.defer(format!(
                "invalid regex in label_replace: {}",
                go_regex_error(&regex, &e.to_string())
            ));
        }
        Ok(MetricExpr::LabelReplace {
            inner: Box::new(inner),
            dst,
            replacement,
            src,
            regex,
        })
    }

    fn parse_range_agg(&mut self, op: RangeOp) -> Result<MetricExpr, ParseError> {
        self.bump();
        self.expect(Sym::LParen, &["("])?;
        let mut param_text = None;
        match &self.peek().tok {
            Tok::Number(t) => {
                param_text = Some(t.clone());
                self.bump();
                self.expect(Sym::Comma, &[","])?;
            }
            Tok::Sym(Sym::LBrace) | Tok::Sym(Sym::LParen) => {}
            _ => return Err(self.unexpected(&["NUMBER", "{", "("])),
        }
        let lr = self.parse_log_range()?;
        self.expect(Sym::RParen, &[])?;
        let grouping = self.parse_grouping_opt()?;
        let name = range_op_str(op);

        let mut error = None;
        let mut param = None;
        match &param_text {
            Some(t) if op != RangeOp::QuantileOverTime => {
                error = Some(format!("parameter {t} not supported for operation {name}"));
            }
            Some(t) => match parse_number(t) {
                Ok(v) => param = Some(v),
                Err(e) => error = Some(format!("invalid parameter for operation {name}: {e}")),
            },
            None if op == RangeOp::QuantileOverTime => {
                error = Some(format!("parameter required for operation {name}"));
            }
            None => {}
        }
        if error.is_none() {
            error = validate_range(op, grouping.is_some(), lr.unwrap.is_some());
        }
        match error {
            Some(e) => self.defer(e),
            None => {
                if let Err(e) = check_selector(&lr.log.selector) {
                    self.deferred.push(e);
                }
            }
        }
        Ok(MetricExpr::Range {
            op,
            log: lr.log,
            range_ns: lr.range_ns,
            offset_ns: lr.offset_ns,
            unwrap: lr.unwrap,
            param,
            grouping,
        })
    }

    // ---------------------------------------------------------------- log expressions

    fn parse_log_expr(&mut self) -> Result<LogExpr, ParseError> {
        let selector = self.parse_selector()?;
        let pipeline = self.parse_stages(false)?;
        Ok(LogExpr { selector, pipeline })
    }

    /// The log range of a range aggregation, in all of Loki's orders: the range after the
    /// pipeline (or before it), the unwrap before the range, parentheses around the log part
    /// or the whole.
    fn parse_log_range(&mut self) -> Result<LogRange, ParseError> {
        if self.is(Sym::LParen) {
            self.bump();
            if self.is(Sym::LBrace) {
                let selector = self.parse_selector()?;
                let pipeline = self.parse_stages(true)?;
                let unwrap = self.parse_unwrap_opt()?;
                if self.is(Sym::RParen) {
                    self.bump();
                    let range_ns = match self.peek().tok {
                        Tok::Range(ns) => ns,
                        _ => return Err(self.unexpected(&["RANGE"])),
                    };
                    self.bump();
                    let offset_ns = self.parse_offset_opt()?;
                    return Ok(LogRange {
                        log: LogExpr { selector, pipeline },
                        range_ns,
                        offset_ns,
                        unwrap,
                    });
                }
                let lr = self.parse_range_tail(selector, pipeline, unwrap)?;
                self.expect(Sym::RParen, &[])?;
                return Ok(lr);
            }
            if self.is(Sym::LParen) {
                let lr = self.parse_log_range()?;
                self.expect(Sym::RParen, &[])?;
                return Ok(lr);
            }
            return Err(self.unexpected(&["{", "("]));
        }
        if !self.is(Sym::LBrace) {
            return Err(self.unexpected(&["{", "("]));
        }
        let selector = self.parse_selector()?;
        let pipeline = self.parse_stages(true)?;
        let unwrap = self.parse_unwrap_opt()?;
        self.parse_range_tail(selector, pipeline, unwrap)
    }

    fn parse_range_tail(
        &mut self,
        selector: Vec<Matcher>,
        mut pipeline: Vec<Stage>,
        mut unwrap: Option<Unwrap>,
    ) -> Result<LogRange, ParseError> {
        let range_ns = match self.peek().tok {
            Tok::Range(ns) => ns,
            _ if unwrap.is_some() => return Err(self.unexpected(&["RANGE", "|"])),
            _ => return Err(self.unexpected(&[])),
        };
        self.bump();
        let offset_ns = self.parse_offset_opt()?;
        if pipeline.is_empty() && unwrap.is_none() {
            pipeline = self.parse_stages(true)?;
            unwrap = self.parse_unwrap_opt()?;
        }
        Ok(LogRange {
            log: LogExpr { selector, pipeline },
            range_ns,
            offset_ns,
            unwrap,
        })
    }

    fn parse_offset_opt(&mut self) -> Result<i64, ParseError> {
        if !self.is(Sym::Offset) {
            return Ok(0);
        }
        self.bump();
        match self.peek().tok {
            Tok::Duration(ns) => {
                self.bump();
                Ok(ns)
            }
            _ => Err(self.unexpected(&["DURATION"])),
        }
    }

    fn parse_unwrap_opt(&mut self) -> Result<Option<Unwrap>, ParseError> {
        if !(self.is(Sym::Pipe) && *self.peek_at(1) == Tok::Sym(Sym::Unwrap)) {
            return Ok(None);
        }
        self.bump();
        self.bump();
        let (label, conversion) = match self.peek().tok.clone() {
            Tok::Ident(name) => {
                self.bump();
                (name, UnwrapConversion::None)
            }
            Tok::Sym(s @ (Sym::ConvBytes | Sym::ConvDuration | Sym::ConvDurationSeconds)) => {
                self.bump();
                self.expect(Sym::LParen, &["("])?;
                let name = self.expect_ident(&["IDENTIFIER"])?;
                self.expect(Sym::RParen, &[")"])?;
                let conv = if s == Sym::ConvBytes {
                    UnwrapConversion::Bytes
                } else {
                    UnwrapConversion::Duration
                };
                (name, conv)
            }
            _ => {
                return Err(self.unexpected(&[
                    "IDENTIFIER",
                    "BYTES_CONV",
                    "DURATION_CONV",
                    "DURATION_SECONDS_CONV",
                ]))
            }
        };
        let mut post_filters = Vec::new();
        while self.is(Sym::Pipe) {
            self.bump();
            if !matches!(self.peek().tok, Tok::Ident(_) | Tok::Sym(Sym::LParen)) {
                return Err(self.unexpected(&["IDENTIFIER", "("]));
            }
            post_filters.push(self.parse_label_filter(FilterCtx::Top)?);
        }
        Ok(Some(Unwrap {
            label,
            conversion,
            post_filters,
        }))
    }

    fn parse_selector(&mut self) -> Result<Vec<Matcher>, ParseError> {
        self.expect(Sym::LBrace, &["{"])?;
        let mut matchers = Vec::new();
        if self.is(Sym::RBrace) {
            self.bump();
            return Ok(matchers);
        }
        loop {
            let expected: &[&str] = if matchers.is_empty() {
                &["IDENTIFIER", "}"]
            } else {
                &["IDENTIFIER"]
            };
            let name = self.expect_ident(expected)?;
            let op = self.match_op(&["=", "=~", "!~", "!="])?;
            let value = self.expect_string(&["STRING"])?;
            matchers.push(new_matcher(op, &name, &value)?);
            if self.is(Sym::Comma) {
                self.bump();
            } else if self.is(Sym::RBrace) {
                self.bump();
                return Ok(matchers);
            } else {
                return Err(self.unexpected(&["}", ","]));
            }
        }
    }

    fn match_op(&mut self, expected: &[&str]) -> Result<MatchOp, ParseError> {
        let op = match self.peek().tok {
            Tok::Sym(Sym::Eq) => MatchOp::Equal,
            Tok::Sym(Sym::Neq) => MatchOp::NotEqual,
            Tok::Sym(Sym::Re) => MatchOp::RegexMatch,
            Tok::Sym(Sym::Nre) => MatchOp::RegexNoMatch,
            _ => return Err(self.unexpected(expected)),
        };
        self.bump();
        Ok(op)
    }

    fn parse_stages(&mut self, in_range: bool) -> Result<Vec<Stage>, ParseError> {
        let mut stages = Vec::new();
        loop {
            let op = match self.peek().tok {
                Tok::Sym(Sym::PipeExact) => Some(LineFilterOp::Contains),
                Tok::Sym(Sym::Neq) => Some(LineFilterOp::NotContains),
                Tok::Sym(Sym::PipeMatch) => Some(LineFilterOp::Regex),
                Tok::Sym(Sym::Nre) => Some(LineFilterOp::NotRegex),
                Tok::Sym(Sym::PipePattern) => Some(LineFilterOp::Pattern),
                Tok::Sym(Sym::Npa) => Some(LineFilterOp::NotPattern),
                _ => None,
            };
            if let Some(op) = op {
                self.bump();
                let filter = self.parse_line_filter(op)?;
                stages.push(Stage::LineFilter(filter));
                continue;
            }
            if !self.is(Sym::Pipe) {
                return Ok(stages);
            }
            if *self.peek_at(1) == Tok::Sym(Sym::Unwrap) && in_range {
                return Ok(stages);
            }
            self.bump();
            let stage = self.parse_stage()?;
            stages.push(stage);
        }
    }

    fn parse_line_filter(&mut self, op: LineFilterOp) -> Result<LineFilter, ParseError> {
        let mut values = vec![self.parse_line_filter_value()?];
        while self.is(Sym::Or) {
            self.bump();
            values.push(self.parse_line_filter_value()?);
        }
        let filter = LineFilter { op, values };
        if matches!(op, LineFilterOp::Regex | LineFilterOp::NotRegex) {
            for v in &filter.values {
                if let LineFilterValue::Text(re) = v {
                    if let Err(e) = Regex::new(re) {
                        self.stage_errors.push(ParseError::new(format!(
                            "stage '{}' : {}",
                            filter,
                            go_regex_error(re, &e.to_string())
                        )));
                    }
                }
            }
        }
        Ok(filter)
    }

    fn parse_line_filter_value(&mut self) -> Result<LineFilterValue, ParseError> {
        match self.peek().tok.clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(LineFilterValue::Text(s))
            }
            Tok::Sym(Sym::Ip) => Ok(LineFilterValue::Ip(self.parse_ip_call()?)),
            _ => Err(self.unexpected(&["STRING", "ip"])),
        }
    }

    /// `ip("...")` (the `ip` token is current).
    fn parse_ip_call(&mut self) -> Result<String, ParseError> {
        self.bump();
        self.expect(Sym::LParen, &["("])?;
        let s = self.expect_string(&["STRING"])?;
        self.expect(Sym::RParen, &[")"])?;
        Ok(s)
    }

    /// One stage after `|`.
    fn parse_stage(&mut self) -> Result<Stage, ParseError> {
        match self.peek().tok.clone() {
            Tok::Sym(Sym::Json) => {
                self.bump();
                let params = self.parse_extractions()?;
                Ok(Stage::Parser(ParserStage::Json { params }))
            }
            Tok::Sym(Sym::Logfmt) => {
                self.bump();
                let (mut strict, mut keep_empty) = (false, false);
                while let Tok::Flag(f) = &self.peek().tok {
                    if f == "--strict" {
                        strict = true;
                    } else {
                        keep_empty = true;
                    }
                    self.bump();
                }
                let params = self.parse_extractions()?;
                Ok(Stage::Parser(ParserStage::Logfmt {
                    strict,
                    keep_empty,
                    params,
                }))
            }
            Tok::Sym(Sym::Regexp) => {
                self.bump();
                let re = self.expect_string(&["STRING"])?;
                check_regexp_parser(&re)?;
                Ok(Stage::Parser(ParserStage::Regexp(re)))
            }
            Tok::Sym(Sym::Pattern) => {
                self.bump();
                let p = self.expect_string(&["STRING"])?;
                check_pattern(&p, true)
                    .map_err(|e| ParseError::new(format!("invalid pattern parser: {e}")))?;
                Ok(Stage::Parser(ParserStage::Pattern(p)))
            }
            Tok::Sym(Sym::Unpack) => {
                self.bump();
                Ok(Stage::Parser(ParserStage::Unpack))
            }
            Tok::Sym(Sym::LineFmt) => {
                self.bump();
                Ok(Stage::LineFormat(self.expect_string(&["STRING"])?))
            }
            Tok::Sym(Sym::LabelFmt) => {
                self.bump();
                self.parse_label_format()
            }
            Tok::Sym(Sym::Drop) => {
                self.bump();
                Ok(Stage::Drop(self.parse_label_selections()?))
            }
            Tok::Sym(Sym::Keep) => {
                self.bump();
                Ok(Stage::Keep(self.parse_label_selections()?))
            }
            Tok::Sym(Sym::Decolorize) => {
                self.bump();
                Ok(Stage::Decolorize)
            }
            Tok::Ident(_) | Tok::Sym(Sym::LParen) => {
                Ok(Stage::LabelFilter(self.parse_label_filter(FilterCtx::Top)?))
            }
            _ => Err(self.unexpected(&[])),
        }
    }

    /// `a="x.y", b` after `json`/`logfmt` (empty when no identifier follows).
    fn parse_extractions(&mut self) -> Result<Vec<(String, String)>, ParseError> {
        let mut params = Vec::new();
        if !matches!(self.peek().tok, Tok::Ident(_)) {
            return Ok(params);
        }
        loop {
            let name = self.expect_ident(&["IDENTIFIER"])?;
            if self.is(Sym::Eq) {
                self.bump();
                let expr = self.expect_string(&["STRING"])?;
                params.push((name, expr));
            } else {
                params.push((name.clone(), name));
            }
            if !self.is(Sym::Comma) {
                return Ok(params);
            }
            self.bump();
        }
    }

    fn parse_label_format(&mut self) -> Result<Stage, ParseError> {
        let mut items = Vec::new();
        loop {
            let dst = self.expect_ident(&["IDENTIFIER"])?;
            self.expect(Sym::Eq, &["="])?;
            let item = match self.peek().tok.clone() {
                Tok::Ident(src) => LabelFormatItem::Rename { dst, src },
                Tok::Str(template) => LabelFormatItem::Template { dst, template },
                _ => return Err(self.unexpected(&["IDENTIFIER", "STRING"])),
            };
            self.bump();
            items.push(item);
            if !self.is(Sym::Comma) {
                break;
            }
            self.bump();
        }
        let stage = Stage::LabelFormat(items);
        if let Stage::LabelFormat(items) = &stage {
            let mut seen: Vec<&str> = Vec::new();
            for item in items {
                let dst = match item {
                    LabelFormatItem::Rename { dst, .. } | LabelFormatItem::Template { dst, .. } => {
                        dst.as_str()
                    }
                };
                if seen.contains(&dst) {
                    self.stage_errors.push(ParseError::new(format!(
                        "stage '{stage}' : multiple label name '{dst}' not allowed in a single format operation"
                    )));
                    break;
                }
                seen.push(dst);
            }
        }
        Ok(stage)
    }

    fn parse_label_selections(&mut self) -> Result<Vec<LabelSelection>, ParseError> {
        let mut out = Vec::new();
        loop {
            let name = self.expect_ident(&["IDENTIFIER"])?;
            let op = match self.peek().tok {
                Tok::Sym(Sym::Eq) => Some(MatchOp::Equal),
                Tok::Sym(Sym::Neq) => Some(MatchOp::NotEqual),
                Tok::Sym(Sym::Re) => Some(MatchOp::RegexMatch),
                Tok::Sym(Sym::Nre) => Some(MatchOp::RegexNoMatch),
                _ => None,
            };
            match op {
                Some(op) => {
                    self.bump();
                    let value = self.expect_string(&["STRING"])?;
                    out.push(LabelSelection::Matcher(new_matcher(op, &name, &value)?));
                }
                None => out.push(LabelSelection::Name(name)),
            }
            if !self.is(Sym::Comma) {
                return Ok(out);
            }
            self.bump();
        }
    }

    /// A label filter expression: `and` binds tighter than `or`; `,` and juxtaposition mean
    /// `and` and take everything to their right (yacc's shift preference in Loki's grammar).
    fn parse_label_filter(&mut self, ctx: FilterCtx) -> Result<LabelFilterExpr, ParseError> {
        let mut left = self.parse_label_filter_primary()?;
        loop {
            match &self.peek().tok {
                Tok::Sym(Sym::Or) => {
                    if matches!(ctx, FilterCtx::RightOfOr | FilterCtx::RightOfAnd) {
                        return Ok(left);
                    }
                    self.bump();
                    let right = self.parse_label_filter(FilterCtx::RightOfOr)?;
                    left = LabelFilterExpr::Or(Box::new(left), Box::new(right));
                }
                Tok::Sym(Sym::And) => {
                    if ctx == FilterCtx::RightOfAnd {
                        return Ok(left);
                    }
                    self.bump();
                    let right = self.parse_label_filter(FilterCtx::RightOfAnd)?;
                    left = LabelFilterExpr::And(Box::new(left), Box::new(right));
                }
                Tok::Sym(Sym::Comma) | Tok::Ident(_) | Tok::Sym(Sym::LParen) => {
                    if self.is(Sym::Comma) {
                        self.bump();
                    }
                    let right = self.parse_label_filter(FilterCtx::RightOfComma)?;
                    left = LabelFilterExpr::And(Box::new(left), Box::new(right));
                }
                _ => return Ok(left),
            }
        }
    }

    fn parse_label_filter_primary(&mut self) -> Result<LabelFilterExpr, ParseError> {
        let name = match self.peek().tok.clone() {
            Tok::Sym(Sym::LParen) => {
                self.bump();
                let inner = self.parse_label_filter(FilterCtx::Top)?;
                self.expect(Sym::RParen, &[])?;
                return Ok(inner);
            }
            Tok::Ident(name) => name,
            _ => return Err(self.unexpected(&["IDENTIFIER", "("])),
        };
        self.bump();
        let (cmp, string_op) = match self.peek().tok {
            Tok::Sym(Sym::Eq) => (Some(CmpOp::Eq), Some(MatchOp::Equal)),
            Tok::Sym(Sym::Neq) => (Some(CmpOp::Ne), Some(MatchOp::NotEqual)),
            Tok::Sym(Sym::Re) => (None, Some(MatchOp::RegexMatch)),
            Tok::Sym(Sym::Nre) => (None, Some(MatchOp::RegexNoMatch)),
            Tok::Sym(Sym::CmpEq) => (Some(CmpOp::Eq), None),
            Tok::Sym(Sym::Gt) => (Some(CmpOp::Gt), None),
            Tok::Sym(Sym::Ge) => (Some(CmpOp::Ge), None),
            Tok::Sym(Sym::Lt) => (Some(CmpOp::Lt), None),
            Tok::Sym(Sym::Le) => (Some(CmpOp::Le), None),
            _ => return Err(self.unexpected(&[])),
        };
        self.bump();
        match (self.peek().tok.clone(), cmp, string_op) {
            (Tok::Str(value), _, Some(op)) => {
                self.bump();
                Ok(LabelFilterExpr::Matcher(new_matcher(op, &name, &value)?))
            }
            (Tok::Sym(Sym::Ip), Some(c), Some(_)) => {
                let pattern = self.parse_ip_call()?;
                Ok(LabelFilterExpr::Ip {
                    name,
                    negated: c == CmpOp::Ne,
                    pattern,
                })
            }
            (Tok::Number(_) | Tok::Sym(Sym::Add) | Tok::Sym(Sym::Sub), Some(op), _) => {
                let value = self.parse_literal()?;
                Ok(LabelFilterExpr::Number { name, op, value })
            }
            (Tok::Duration(ns), Some(op), _) => {
                self.bump();
                Ok(LabelFilterExpr::Duration {
                    name,
                    op,
                    seconds: ns as f64 / 1e9,
                })
            }
            (Tok::Bytes(bytes), Some(op), _) => {
                self.bump();
                Ok(LabelFilterExpr::Bytes {
                    name,
                    op,
                    bytes: loki_printed_bytes(bytes),
                })
            }
            (_, None, _) => Err(self.unexpected(&["STRING"])),
            _ => Err(self.unexpected(&[])),
        }
    }
}

fn log_type_name(l: &LogExpr) -> &'static str {
    if l.pipeline.is_empty() {
        "MatchersExpr"
    } else {
        "PipelineExpr"
    }
}

/// Loki's `RangeAggregationExpr.validate`.
fn validate_range(op: RangeOp, grouping: bool, unwrap: bool) -> Option<String> {
    use RangeOp::*;
    let name = range_op_str(op);
    if grouping
        && !matches!(
            op,
            AvgOverTime
                | StddevOverTime
                | StdvarOverTime
                | QuantileOverTime
                | MaxOverTime
                | MinOverTime
                | FirstOverTime
                | LastOverTime
        )
    {
        return Some(format!("grouping not allowed for {name} aggregation"));
    }
    if unwrap {
        return match op {
            CountOverTime | BytesOverTime | BytesRate => {
                Some(format!("invalid aggregation {name} with unwrap"))
            }
            _ => None,
        };
    }
    match op {
        BytesOverTime | BytesRate | CountOverTime | Rate | AbsentOverTime => None,
        _ => Some(format!("invalid aggregation {name} without unwrap")),
    }
}

/// Loki's constant folding of a binary operation between two literals.
fn fold(op: BinaryOp, a: f64, b: f64) -> f64 {
    let truth = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => {
            if b == 0.0 {
                f64::NAN
            } else {
                a / b
            }
        }
        BinaryOp::Mod => {
            if b == 0.0 {
                f64::NAN
            } else {
                a % b
            }
        }
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Eq => truth(a == b),
        BinaryOp::Ne => truth(a != b),
        BinaryOp::Gt => truth(a > b),
        BinaryOp::Ge => truth(a >= b),
        BinaryOp::Lt => truth(a < b),
        BinaryOp::Le => truth(a <= b),
        // Set operations on literals are rejected before folding.
        BinaryOp::Or | BinaryOp::And | BinaryOp::Unless => 0.0,
    }
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// What Loki's `NewRegexpParser` checks.
fn check_regexp_parser(re: &str) -> Result<(), ParseError> {
    let err = |m: String| ParseError::new(format!("invalid regexp parser: {m}"));
    let compiled = Regex::new(re).map_err(|e| err(go_regex_error(re, &e.to_string())))?;
    let mut named = 0;
    for name in compiled.capture_names().flatten() {
        if !is_label_name(name) {
            return Err(err(format!("invalid extracted label name '{name}'")));
        }
        named += 1;
    }
    if named == 0 {
        return Err(err(
            "at least one named capture must be supplied".to_string()
        ));
    }
    Ok(())
}

/// What Loki's pattern parser checks: `<name>` captures (`<_>` unnamed) between literals, no
/// two captures side by side, no duplicate names, and (for the parser stage) at least one
/// named capture.
pub(crate) fn check_pattern(p: &str, need_capture: bool) -> Result<(), String> {
    enum Node<'a> {
        Capture(&'a str),
        Literal,
    }
    let mut nodes: Vec<Node> = Vec::new();
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<' {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'_' || b[j].is_ascii_alphabetic()) {
                j += 1;
                while j < b.len() && (b[j] == b'_' || b[j].is_ascii_alphanumeric()) {
                    j += 1;
                }
                if j < b.len() && b[j] == b'>' {
                    nodes.push(Node::Capture(&p[i + 1..j]));
                    i = j + 1;
                    continue;
                }
            }
        }
        if !matches!(nodes.last(), Some(Node::Literal)) {
            nodes.push(Node::Literal);
        }
        i += 1;
    }
    let names: Vec<&str> = nodes
        .iter()
        .filter_map(|n| match n {
            Node::Capture(c) if *c != "_" => Some(*c),
            _ => None,
        })
        .collect();
    if need_capture && names.is_empty() {
        return Err("at least one capture is required".to_string());
    }
    for w in nodes.windows(2) {
        if let [Node::Capture(a), Node::Capture(b)] = w {
            return Err(format!(
                "found consecutive capture '<{a}><{b}>': invalid expression"
            ));
        }
    }
    for (k, n) in names.iter().enumerate() {
        if names[..k].contains(n) {
            return Err(format!("duplicate capture name ({n}): invalid expression"));
        }
    }
    Ok(())
}
