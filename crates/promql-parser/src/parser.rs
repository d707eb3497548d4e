//! The PromQL parser: a precedence-climbing parser over the lexer's tokens, followed by
//! Prometheus' type checks (`checkAST`). Errors carry Prometheus' texts and positions.

use vigil_model::{MatchOp, Matcher, METRIC_NAME_LABEL};

use crate::ast::*;
use crate::functions::{self, Function};
use crate::lexer::{go_quote, lex, unquote, Tok, Token};

/// A parse or type error: Prometheus' message and the position of the offending token.
/// Displays as Prometheus does: `1:5: parse error: unexpected <op:+>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: parse error: {message}", self.position())]
pub struct ParseError {
    /// Byte offset in the query.
    pub offset: usize,
    /// 1-based line; 0 when the query is empty ("unknown position").
    pub line: usize,
    /// 1-based column (bytes from the line start, plus one).
    pub column: usize,
    pub message: String,
}

impl ParseError {
    fn new(input: &str, offset: usize, message: impl Into<String>) -> Self {
        let offset = offset.min(input.len());
        // Prometheus 3.x has no position for an empty query ("unknown position").
        let (line, column) = if input.is_empty() {
            (0, 0)
        } else {
            let before = input.get(..offset).unwrap_or(input);
            let line = before.matches('\n').count() + 1;
            let column = match before.rfind('\n') {
                Some(i) => offset - i,
                None => offset + 1,
            };
            (line, column)
        };
        Self {
            offset,
            line,
            column,
            message: message.into(),
        }
    }

    /// `line:column`, or `unknown position` for an empty query.
    pub fn position(&self) -> String {
        if self.line == 0 {
            "unknown position".to_string()
        } else {
            format!("{}:{}", self.line, self.column)
        }
    }
}

/// A malformed duration (`parse_duration`), with Prometheus' texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration string")]
    Empty,
    #[error("not a valid duration string: {}", go_quote(.0))]
    Invalid(String),
    #[error("unknown unit {} in duration {}", go_quote(.0), go_quote(.1))]
    UnknownUnit(String, String),
    #[error("duration out of range")]
    OutOfRange,
    /// From [`parse_api_duration`].
    #[error("cannot parse {} to a valid duration", go_quote(.0))]
    Api(String),
    /// From [`parse_api_duration`].
    #[error("cannot parse {} to a valid duration. It overflows int64", go_quote(.0))]
    ApiOverflow(String),
}

const NS_PER_MS: u64 = 1_000_000;

/// Parses a Prometheus duration (`1y2w3d4h5m6s7ms`, units largest first, `y` = 365d; a bare
/// `0` is allowed) into milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, DurationError> {
    match s {
        "0" => return Ok(0),
        "" => return Err(DurationError::Empty),
        _ => {}
    }
    let invalid = || DurationError::Invalid(s.to_string());
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_ns: u64 = 0;
    let mut last_unit = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            return Err(invalid());
        }
        let ds = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let v: u64 = s[ds..i].parse().map_err(|_| invalid())?;
        let us = i;
        while i < bytes.len() && !bytes[i].is_ascii_digit() {
            i += 1;
        }
        if us == i {
            return Err(invalid());
        }
        let unit = &s[us..i];
        let (pos, ms): (u32, u64) = match unit {
            "y" => (1, 365 * 24 * 3_600_000),
            "w" => (2, 7 * 24 * 3_600_000),
            "d" => (3, 24 * 3_600_000),
            "h" => (4, 3_600_000),
            "m" => (5, 60_000),
            "s" => (6, 1_000),
            "ms" => (7, 1),
            _ => return Err(DurationError::UnknownUnit(unit.to_string(), s.to_string())),
        };
        if pos <= last_unit {
            return Err(invalid());
        }
        last_unit = pos;
        let mult = ms * NS_PER_MS;
        if v > (1u64 << 63) / mult {
            return Err(DurationError::OutOfRange);
        }
        total_ns = total_ns
            .checked_add(v * mult)
            .ok_or(DurationError::OutOfRange)?;
        if total_ns > i64::MAX as u64 {
            return Err(DurationError::OutOfRange);
        }
    }
    Ok((total_ns / NS_PER_MS) as i64)
}

/// The HTTP API's duration parameters (`step`, `timeout`, `lookback_delta`): float seconds or
/// a Prometheus duration, in milliseconds.
pub fn parse_api_duration(s: &str) -> Result<i64, DurationError> {
    if let Ok(secs) = parse_go_float(s) {
        let ns = secs * 1e9;
        if ns.is_nan() || ns > i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(DurationError::ApiOverflow(s.to_string()));
        }
        return Ok((ns / 1e6) as i64);
    }
    parse_duration(s).map_err(|_| DurationError::Api(s.to_string()))
}

/// Go's `strconv.ParseFloat` for the forms the lexer and API produce.
fn parse_go_float(s: &str) -> Result<f64, &'static str> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'+') => (1.0, &s[1..]),
        Some(b'-') => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Ok(sign * f64::INFINITY);
    }
    if lower == "nan" {
        return Ok(f64::NAN);
    }
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-' | b'_'))
        || !body.bytes().any(|b| b.is_ascii_digit())
    {
        return Err("invalid syntax");
    }
    let cleaned = strip_underscores(body).ok_or("invalid syntax")?;
    let v: f64 = cleaned.parse().map_err(|_| "invalid syntax")?;
    if v.is_infinite() {
        return Err("value out of range");
    }
    Ok(sign * v)
}

/// Removes `_` digit separators, which must sit between digits (or after a base prefix).
fn strip_underscores(s: &str) -> Option<String> {
    if !s.contains('_') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let prev_ok = i > 0
                && (b[i - 1].is_ascii_hexdigit()
                    || matches!(b[i - 1], b'x' | b'X' | b'o' | b'O' | b'b' | b'B'));
            let next_ok = i + 1 < b.len() && b[i + 1].is_ascii_hexdigit();
            if !prev_ok || !next_ok {
                return None;
            }
        }
    }
    Some(s.replace('_', ""))
}

/// Go's `strconv.ParseInt(s, 0, 64)` for unsigned literals.
fn parse_go_int(s: &str) -> Option<i64> {
    let s = strip_underscores(s)?;
    let (digits, radix) = if let Some(r) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (r.to_string(), 16)
    } else if let Some(r) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        (r.to_string(), 8)
    } else if let Some(r) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (r.to_string(), 2)
    } else if s.len() > 1 && s.starts_with('0') {
        (s[1..].to_string(), 8)
    } else {
        (s.clone(), 10)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    i64::from_str_radix(&digits, radix).ok()
}

/// The value of a number token, as Prometheus computes it.
fn parse_number(text: &str) -> Result<f64, String> {
    if let Some(v) = parse_go_int(text) {
        return Ok(v as f64);
    }
    parse_go_float(text).map_err(|why| {
        format!(
            "error parsing number: strconv.ParseFloat: parsing {}: {why}",
            go_quote(text)
        )
    })
}

/// Language features that Prometheus 3 keeps behind feature flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// `--enable-feature=promql-experimental-functions`: step(), range(), start(), end(),
    /// min_of(), max_of().
    pub experimental_functions: bool,
}

/// Parses a PromQL expression and type-checks it as Prometheus does (default features).
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    parse_with(input, ParseOptions::default())
}

/// [`parse`] with feature flags.
pub fn parse_with(input: &str, options: ParseOptions) -> Result<Expr, ParseError> {
    let mut p = Parser {
        input,
        toks: lex(input),
        i: 0,
        depth: 0,
        options,
    };
    if p.peek().tok == Tok::Eof {
        return Err(ParseError::new(input, 0, "no expression found in input"));
    }
    let (expr, sp) = p.expr(0)?;
    if p.peek().tok != Tok::Eof {
        return Err(p.unexpected("", ""));
    }
    check(input, &expr, &sp, false)?;
    Ok(expr)
}

/// Positions of a parsed node and its children, for the type checks.
#[derive(Debug, Clone)]
struct Sp {
    start: usize,
    /// Height of the subtree.
    height: usize,
    /// Operator position of a binary expression.
    op: usize,
    kids: Vec<Sp>,
    /// The vector matching as written (binary expressions), before type-based normalisation.
    vm: Option<VectorMatching>,
}

impl Sp {
    fn leaf(start: usize) -> Self {
        Sp {
            start,
            height: 1,
            op: start,
            kids: Vec::new(),
            vm: None,
        }
    }
    fn with(start: usize, kids: Vec<Sp>) -> Self {
        Sp {
            start,
            height: 1 + kids.iter().map(|k| k.height).max().unwrap_or(0),
            op: start,
            kids,
            vm: None,
        }
    }
}

type Node = (Expr, Sp);
type PResult<T> = Result<T, ParseError>;

const PREC_POW: u8 = 6;

/// Experimental functions of Prometheus 3.x that Vigil does not implement; calls get
/// Prometheus' answer when experimental functions are disabled.
const UNSUPPORTED_EXPERIMENTAL_FUNCTIONS: &[&str] = &[
    "end",
    "histogram_quantiles",
    "integral",
    "max_of",
    "min_of",
    "range",
    "start",
    "start_timestamp",
    "step",
];

fn precedence(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => 1,
        BinaryOp::And | BinaryOp::Unless => 2,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Le | BinaryOp::Lt | BinaryOp::Ge | BinaryOp::Gt => {
            3
        }
        BinaryOp::Add | BinaryOp::Sub => 4,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod | BinaryOp::Atan2 => 5,
        BinaryOp::Pow => PREC_POW,
    }
}

struct Parser<'a> {
    input: &'a str,
    toks: Vec<Token<'a>>,
    i: usize,
    /// Current recursion depth of `expr`.
    depth: usize,
    options: ParseOptions,
}

/// The deepest nesting accepted, so that parsing, checking, printing and evaluating stay
/// within a thread's stack.
pub const MAX_NESTING_DEPTH: usize = 200;

const TOO_DEEP: &str = "expression nesting too deep";

fn eof_token() -> Token<'static> {
    Token {
        tok: Tok::Eof,
        pos: 0,
        text: "",
    }
}

impl<'a> Parser<'a> {
    /// Line and column of a byte offset.
    fn pos_of(&self, offset: usize) -> Pos {
        let e = ParseError::new(self.input, offset, "");
        Pos {
            line: e.line,
            column: e.column,
        }
    }

    fn peek(&self) -> Token<'a> {
        match self.toks.get(self.i) {
            Some(t) => t.clone(),
            None => {
                let mut t = eof_token();
                t.pos = self.input.len();
                t
            }
        }
    }

    fn peek_at(&self, n: usize) -> Tok {
        self.toks
            .get(self.i + n)
            .map(|t| t.tok.clone())
            .unwrap_or(Tok::Eof)
    }

    fn bump(&mut self) -> Token<'a> {
        let t = self.peek();
        if self.i < self.toks.len() && !matches!(t.tok, Tok::Eof | Tok::Error(_)) {
            self.i += 1;
        }
        t
    }

    fn err(&self, pos: usize, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.input, pos, msg)
    }

    /// "unexpected <token> [in <context>][, expected <expected>]" for the next token, or the
    /// lexer's error when the next token is one.
    fn unexpected(&self, context: &str, expected: &str) -> ParseError {
        let t = self.peek();
        if let Tok::Error(msg) = &t.tok {
            return self.err(t.pos, msg.clone());
        }
        let mut msg = format!("unexpected {}", t.desc());
        if !context.is_empty() {
            msg.push_str(" in ");
            msg.push_str(context);
        }
        if !expected.is_empty() {
            msg.push_str(", expected ");
            msg.push_str(expected);
        }
        self.err(t.pos, msg)
    }

    fn expect(&mut self, tok: Tok, context: &str, expected: &str) -> PResult<Token<'a>> {
        if self.peek().tok == tok {
            Ok(self.bump())
        } else {
            Err(self.unexpected(context, expected))
        }
    }

    fn expr(&mut self, min_prec: u8) -> PResult<Node> {
        self.depth += 1;
        let r = if self.depth > MAX_NESTING_DEPTH {
            Err(self.err(self.peek().pos, TOO_DEEP))
        } else {
            self.expr_inner(min_prec)
        };
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, min_prec: u8) -> PResult<Node> {
        let (mut lhs, mut lsp) = self.unary()?;
        loop {
            let t = self.peek();
            let Tok::Op(op) = t.tok else { break };
            let prec = precedence(op);
            if prec < min_prec {
                break;
            }
            self.bump();
            let (return_bool, vm) = self.bin_modifiers(lsp.start)?;
            let next_min = if op == BinaryOp::Pow { prec } else { prec + 1 };
            let (rhs, rsp) = self.expr(next_min)?;
            let both_vectors =
                lhs.value_type() == ValueType::Vector && rhs.value_type() == ValueType::Vector;
            let matching = if both_vectors {
                let mut m = vm.clone();
                if op.is_set() && m.card == Cardinality::OneToOne {
                    m.card = Cardinality::ManyToMany;
                }
                Some(m)
            } else {
                None
            };
            let start = lsp.start;
            lhs = Expr::Binary(BinaryExpr {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                return_bool,
                matching,
            });
            let height = 1 + lsp.height.max(rsp.height);
            if height > MAX_NESTING_DEPTH {
                return Err(self.err(t.pos, TOO_DEEP));
            }
            lsp = Sp {
                start,
                height,
                op: t.pos,
                kids: vec![lsp, rsp],
                vm: Some(vm),
            };
        }
        Ok((lhs, lsp))
    }

    fn bin_modifiers(&mut self, expr_start: usize) -> PResult<(bool, VectorMatching)> {
        let mut vm = VectorMatching {
            card: Cardinality::OneToOne,
            matching_labels: Vec::new(),
            on: false,
            include: Vec::new(),
        };
        let return_bool = if self.peek().tok == Tok::Bool {
            self.bump();
            true
        } else {
            false
        };
        let t = self.peek();
        if matches!(t.tok, Tok::On | Tok::Ignoring) {
            self.bump();
            vm.on = t.tok == Tok::On;
            vm.matching_labels = self.grouping_labels()?;
            let g = self.peek();
            if matches!(g.tok, Tok::GroupLeft | Tok::GroupRight) {
                self.bump();
                vm.card = if g.tok == Tok::GroupLeft {
                    Cardinality::ManyToOne
                } else {
                    Cardinality::OneToMany
                };
                if self.peek().tok == Tok::LParen {
                    vm.include = self.grouping_labels()?;
                }
            }
        }
        let t = self.peek();
        if t.tok == Tok::Ident
            && matches!(
                t.text.to_ascii_lowercase().as_str(),
                "fill" | "fill_left" | "fill_right"
            )
            && self.peek_at(1) == Tok::LParen
        {
            return Err(self.err(
                expr_start,
                "binop fill modifiers are experimental and not enabled",
            ));
        }
        Ok((return_bool, vm))
    }

    /// `( label, ... )` after by/without/on/ignoring/group_x.
    fn grouping_labels(&mut self) -> PResult<Vec<String>> {
        self.expect(Tok::LParen, "grouping opts", "\"(\"")?;
        let mut labels = Vec::new();
        loop {
            let t = self.peek();
            match &t.tok {
                Tok::RParen => {
                    self.bump();
                    return Ok(labels);
                }
                Tok::Str => {
                    self.bump();
                    let v = unquote(t.text).map_err(|e| {
                        self.err(
                            t.pos,
                            format!("error unquoting string {}: {e}", go_quote(t.text)),
                        )
                    })?;
                    if v.is_empty() {
                        return Err(self.err(
                            t.pos + 1,
                            format!("invalid label name for grouping: {}", go_quote(&v)),
                        ));
                    }
                    labels.push(v);
                }
                Tok::Ident
                | Tok::MetricIdent
                | Tok::Agg(_)
                | Tok::By
                | Tok::Without
                | Tok::On
                | Tok::Ignoring
                | Tok::GroupLeft
                | Tok::GroupRight
                | Tok::Bool
                | Tok::Offset
                | Tok::Start
                | Tok::End
                | Tok::Op(BinaryOp::And | BinaryOp::Or | BinaryOp::Unless | BinaryOp::Atan2) => {
                    self.bump();
                    labels.push(t.text.to_string());
                }
                _ => return Err(self.unexpected("grouping opts", "label")),
            }
            match self.peek().tok {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {}
                _ => return Err(self.unexpected("grouping opts", "\",\" or \")\"")),
            }
        }
    }

    fn unary(&mut self) -> PResult<Node> {
        let t = self.peek();
        if let Tok::Op(op @ (BinaryOp::Add | BinaryOp::Sub)) = t.tok {
            self.bump();
            let (inner, isp) = self.expr(PREC_POW)?;
            if let Expr::NumberLiteral(v) = inner {
                let v = if op == BinaryOp::Sub { -v } else { v };
                return Ok((Expr::NumberLiteral(v), Sp::leaf(t.pos)));
            }
            let uop = if op == BinaryOp::Sub {
                UnaryOp::Neg
            } else {
                UnaryOp::Pos
            };
            return Ok((
                Expr::Unary(UnaryExpr {
                    op: uop,
                    expr: Box::new(inner),
                }),
                Sp::with(t.pos, vec![isp]),
            ));
        }
        let node = self.primary()?;
        self.postfix(node)
    }

    fn primary(&mut self) -> PResult<Node> {
        let t = self.peek();
        match &t.tok {
            Tok::Number => {
                self.bump();
                let v = parse_number(t.text).map_err(|m| self.err(t.pos, m))?;
                Ok((Expr::NumberLiteral(v), Sp::leaf(t.pos)))
            }
            Tok::Duration => {
                self.bump();
                let ms = parse_duration(t.text).map_err(|e| self.err(t.pos, e.to_string()))?;
                Ok((Expr::NumberLiteral(ms as f64 / 1000.0), Sp::leaf(t.pos)))
            }
            Tok::Str => {
                self.bump();
                let v = unquote(t.text).map_err(|e| {
                    self.err(
                        t.pos,
                        format!("error unquoting string {}: {e}", go_quote(t.text)),
                    )
                })?;
                Ok((Expr::StringLiteral(v), Sp::leaf(t.pos)))
            }
            Tok::LParen => {
                self.bump();
                let (inner, isp) = self.expr(0)?;
                self.expect(Tok::RParen, "", "")?;
                Ok((Expr::Paren(Box::new(inner)), Sp::with(t.pos, vec![isp])))
            }
            Tok::LBrace => self.selector(None, t.pos),
            Tok::Start | Tok::End
                if self.peek_at(1) == Tok::LParen && self.options.experimental_functions =>
            {
                self.call()
            }
            Tok::Start | Tok::End if self.peek_at(1) == Tok::LParen => Err(self.err(
                t.pos,
                format!(
                    "function {} is not enabled",
                    go_quote(&t.text.to_ascii_lowercase())
                ),
            )),
            Tok::Ident if self.peek_at(1) == Tok::LParen => self.call(),
            Tok::Agg(op) if matches!(self.peek_at(1), Tok::LParen | Tok::By | Tok::Without) => {
                self.aggregate(*op)
            }
            Tok::Ident
            | Tok::MetricIdent
            | Tok::Agg(_)
            | Tok::By
            | Tok::Without
            | Tok::Offset
            | Tok::Start
            | Tok::End
            | Tok::Op(BinaryOp::And | BinaryOp::Or | BinaryOp::Unless) => {
                self.bump();
                self.selector(Some(t.text.to_string()), t.pos)
            }
            _ => Err(self.unexpected("", "")),
        }
    }

    /// A vector selector: optional name (already consumed) and optional `{...}`.
    fn selector(&mut self, name: Option<String>, start: usize) -> PResult<Node> {
        let mut matchers = Vec::new();
        if self.peek().tok == Tok::LBrace {
            self.bump();
            loop {
                let t = self.peek();
                match &t.tok {
                    Tok::RBrace => {
                        self.bump();
                        break;
                    }
                    Tok::Ident | Tok::Str => {
                        self.bump();
                        let label = if t.tok == Tok::Str {
                            unquote(t.text).map_err(|e| {
                                self.err(
                                    t.pos,
                                    format!("error unquoting string {}: {e}", go_quote(t.text)),
                                )
                            })?
                        } else {
                            t.text.to_string()
                        };
                        let op_tok = self.peek();
                        let op = match op_tok.tok {
                            Tok::Eql => Some(MatchOp::Equal),
                            Tok::Op(BinaryOp::Ne) => Some(MatchOp::NotEqual),
                            Tok::EqlRegex => Some(MatchOp::RegexMatch),
                            Tok::NeqRegex => Some(MatchOp::RegexNoMatch),
                            _ => None,
                        };
                        match op {
                            Some(op) => {
                                self.bump();
                                let v = self.peek();
                                if v.tok != Tok::Str {
                                    return Err(self.unexpected("label matching", "string"));
                                }
                                self.bump();
                                let value = unquote(v.text).map_err(|e| {
                                    self.err(
                                        v.pos,
                                        format!("error unquoting string {}: {e}", go_quote(v.text)),
                                    )
                                })?;
                                let m = Matcher::new(op, label, value)
                                    .map_err(|e| self.err(t.pos, e.to_string()))?;
                                matchers.push(m);
                            }
                            None if t.tok == Tok::Str => {
                                let m = Matcher::new(MatchOp::Equal, METRIC_NAME_LABEL, label)
                                    .map_err(|e| self.err(t.pos, e.to_string()))?;
                                matchers.push(m);
                            }
                            None => {
                                return Err(
                                    self.unexpected("label matching", "label matching operator")
                                )
                            }
                        }
                    }
                    _ => return Err(self.unexpected("label matching", "identifier or \"}\"")),
                }
                match self.peek().tok {
                    Tok::Comma => {
                        self.bump();
                    }
                    Tok::RBrace => {}
                    _ => return Err(self.unexpected("label matching", "\",\" or \"}\"")),
                }
            }
        }
        if let Some(n) = &name {
            let m = Matcher::new(MatchOp::Equal, METRIC_NAME_LABEL, n.clone())
                .map_err(|e| self.err(start, e.to_string()))?;
            matchers.push(m);
        }
        Ok((
            Expr::VectorSelector(VectorSelector {
                name,
                matchers,
                offset_ms: 0,
                at: None,
            }),
            Sp::leaf(start),
        ))
    }

    /// `(arg, ...)` of a call or aggregation.
    fn call_args(&mut self) -> PResult<Vec<Node>> {
        self.expect(Tok::LParen, "", "")?;
        let mut args = Vec::new();
        if self.peek().tok == Tok::RParen {
            self.bump();
            return Ok(args);
        }
        loop {
            args.push(self.expr(0)?);
            let t = self.peek();
            match t.tok {
                Tok::RParen => {
                    self.bump();
                    return Ok(args);
                }
                Tok::Comma => {
                    self.bump();
                    if self.peek().tok == Tok::RParen {
                        return Err(
                            self.err(t.pos, "trailing commas not allowed in function call args")
                        );
                    }
                }
                _ => return Err(self.unexpected("", "")),
            }
        }
    }

    fn call(&mut self) -> PResult<Node> {
        let name = self.bump();
        let args = self.call_args()?;
        let experimental = if self.options.experimental_functions {
            functions::lookup_experimental(name.text)
        } else {
            None
        };
        let func: &'static Function = match functions::lookup(name.text).or(experimental) {
            Some(f) => f,
            None if UNSUPPORTED_EXPERIMENTAL_FUNCTIONS.contains(&name.text) => {
                return Err(self.err(
                    name.pos,
                    format!("function {} is not enabled", go_quote(name.text)),
                ))
            }
            None => {
                return Err(self.err(
                    name.pos,
                    format!("unknown function with name {}", go_quote(name.text)),
                ))
            }
        };
        let (exprs, sps): (Vec<Expr>, Vec<Sp>) = args.into_iter().unzip();
        Ok((
            Expr::Call(Call {
                func,
                args: exprs,
                pos: self.pos_of(name.pos),
                arg_pos: sps.iter().map(|sp| self.pos_of(sp.start)).collect(),
            }),
            Sp::with(name.pos, sps),
        ))
    }

    fn aggregate(&mut self, op: AggregateOp) -> PResult<Node> {
        let op_tok = self.bump();
        let mut grouping = None;
        let modifier = |p: &mut Self| -> PResult<Option<(Vec<String>, bool)>> {
            let t = p.peek();
            if matches!(t.tok, Tok::By | Tok::Without) {
                p.bump();
                let labels = p.grouping_labels()?;
                Ok(Some((labels, t.tok == Tok::Without)))
            } else {
                Ok(None)
            }
        };
        if let Some(g) = modifier(self)? {
            grouping = Some(g);
        }
        if self.peek().tok != Tok::LParen {
            return Err(self.unexpected("aggregation", ""));
        }
        let args = self.call_args()?;
        if grouping.is_none() {
            grouping = modifier(self)?;
        }
        let (grouping, without) = grouping.unwrap_or_default();
        if args.is_empty() {
            return Err(self.err(op_tok.pos, "no arguments for aggregate expression provided"));
        }
        let want = if op.takes_param() { 2 } else { 1 };
        if args.len() != want {
            return Err(self.err(
                op_tok.pos,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {want}, got {}",
                    args.len()
                ),
            ));
        }
        let mut it = args.into_iter();
        let (param, psp) = if want == 2 {
            match it.next() {
                Some((e, s)) => (Some(Box::new(e)), Some(s)),
                None => (None, None),
            }
        } else {
            (None, None)
        };
        let Some((expr, esp)) = it.next() else {
            return Err(self.err(op_tok.pos, "no arguments for aggregate expression provided"));
        };
        let param_pos = psp.as_ref().map(|sp| self.pos_of(sp.start));
        let mut kids = vec![esp];
        kids.extend(psp);
        Ok((
            Expr::Aggregate(AggregateExpr {
                op,
                expr: Box::new(expr),
                param,
                grouping,
                without,
                param_pos,
            }),
            Sp::with(op_tok.pos, kids),
        ))
    }

    /// Ranges, subqueries, `offset` and `@` after an operand.
    fn postfix(&mut self, mut node: Node) -> PResult<Node> {
        loop {
            let t = self.peek();
            match &t.tok {
                Tok::LBracket => node = self.range_or_subquery(node)?,
                Tok::Offset => {
                    self.bump();
                    let (secs, _) = self.duration_value(
                        true,
                        "offset",
                        "number, duration, step(), or range()",
                    )?;
                    let ms =
                        secs_to_ms(secs).ok_or_else(|| self.err(t.pos, "duration out of range"))?;
                    node = self.set_offset(node, ms)?;
                }
                Tok::At => {
                    self.bump();
                    node = self.at_modifier(node)?;
                }
                Tok::Ident
                    if matches!(
                        t.text.to_ascii_lowercase().as_str(),
                        "anchored" | "smoothed"
                    ) =>
                {
                    return Err(self.err(
                        node.1.start,
                        format!(
                            "{} modifier is experimental and not enabled",
                            t.text.to_ascii_lowercase()
                        ),
                    ));
                }
                _ => return Ok(node),
            }
        }
    }

    /// A number or duration (optionally signed) in a range, step, offset or `@`; returns
    /// seconds and the position. Duration arithmetic is rejected as Prometheus does by default.
    fn duration_value(
        &mut self,
        signed: bool,
        context: &str,
        expected: &str,
    ) -> PResult<(f64, usize)> {
        let t = self.peek();
        let mut sign = 1.0;
        let mut start = t.pos;
        if signed || matches!(t.tok, Tok::Op(BinaryOp::Add | BinaryOp::Sub)) {
            if let Tok::Op(op @ (BinaryOp::Add | BinaryOp::Sub)) = t.tok {
                self.bump();
                if op == BinaryOp::Sub {
                    sign = -1.0;
                }
                start = t.pos;
            }
        }
        let v = self.peek();
        let secs = match v.tok {
            Tok::Number => parse_number(v.text).map_err(|m| self.err(v.pos, m))?,
            Tok::Duration => {
                parse_duration(v.text).map_err(|e| self.err(v.pos, e.to_string()))? as f64 / 1000.0
            }
            Tok::LParen => {
                return Err(self.err(v.pos, "experimental duration expression is not enabled"))
            }
            Tok::Ident if matches!(v.text.to_ascii_lowercase().as_str(), "step" | "range") => {
                return Err(self.err(v.pos, "experimental duration expression is not enabled"))
            }
            Tok::Agg(AggregateOp::Min | AggregateOp::Max) if self.peek_at(1) == Tok::LParen => {
                return Err(self.err(v.pos, "experimental duration expression is not enabled"))
            }
            _ => return Err(self.unexpected(context, expected)),
        };
        self.bump();
        // Arithmetic inside brackets is a duration expression.
        if matches!(self.peek().tok, Tok::Op(_)) && self.in_brackets() {
            return Err(self.err(start, "experimental duration expression is not enabled"));
        }
        Ok((sign * secs, start))
    }

    /// Whether the next token sits inside `[...]` (operators there are duration arithmetic).
    fn in_brackets(&self) -> bool {
        let mut depth = 0i32;
        for t in self.toks[..self.i.min(self.toks.len())].iter().rev() {
            match t.tok {
                Tok::RBracket => return false,
                Tok::LBracket if depth == 0 => return true,
                Tok::RParen => depth += 1,
                Tok::LParen => depth -= 1,
                _ => {}
            }
        }
        false
    }

    fn positive_range(&mut self, context: &str, expected: &str) -> PResult<i64> {
        let (secs, pos) = self.duration_value(false, context, expected)?;
        if secs.is_nan() || secs <= 0.0 {
            return Err(self.err(pos, "duration must be greater than 0"));
        }
        secs_to_ms(secs).ok_or_else(|| self.err(pos, "duration out of range"))
    }

    fn range_or_subquery(&mut self, node: Node) -> PResult<Node> {
        let lb = self.bump();
        let range_ms = self.positive_range(
            "subquery or range selector",
            "number, duration, step(), or range()",
        )?;
        let t = self.peek();
        match t.tok {
            Tok::RBracket => {
                self.bump();
                let (expr, sp) = node;
                let msg = match &expr {
                    Expr::VectorSelector(vs) if vs.offset_ms != 0 => {
                        Some("no offset modifiers allowed before range")
                    }
                    Expr::VectorSelector(vs) if vs.at.is_some() => {
                        Some("no @ modifiers allowed before range")
                    }
                    Expr::VectorSelector(_) => None,
                    _ => Some("ranges only allowed for vector selectors"),
                };
                if let Some(m) = msg {
                    return Err(self.err(lb.pos, m));
                }
                let Expr::VectorSelector(selector) = expr else {
                    return Err(self.err(lb.pos, "ranges only allowed for vector selectors"));
                };
                Ok((
                    Expr::MatrixSelector(MatrixSelector { selector, range_ms }),
                    sp,
                ))
            }
            Tok::Colon => {
                self.bump();
                let step_ms = if self.peek().tok == Tok::RBracket {
                    None
                } else {
                    Some(self.positive_range(
                        "subquery selector",
                        "number, duration, step(), range(), or \"]\"",
                    )?)
                };
                self.expect(Tok::RBracket, "subquery selector", "\"]\"")?;
                let (expr, sp) = node;
                let start = sp.start;
                if sp.height >= MAX_NESTING_DEPTH {
                    return Err(self.err(lb.pos, TOO_DEEP));
                }
                Ok((
                    Expr::Subquery(SubqueryExpr {
                        expr: Box::new(expr),
                        range_ms,
                        step_ms,
                        offset_ms: 0,
                        at: None,
                    }),
                    Sp::with(start, vec![sp]),
                ))
            }
            _ => Err(self.unexpected("subquery or range", "\":\" or \"]\"")),
        }
    }

    fn set_offset(&self, node: Node, ms: i64) -> PResult<Node> {
        let (mut expr, sp) = node;
        let slot = match &mut expr {
            Expr::VectorSelector(vs) => &mut vs.offset_ms,
            Expr::MatrixSelector(ms) => &mut ms.selector.offset_ms,
            Expr::Subquery(sq) => &mut sq.offset_ms,
            _ => {
                return Err(self.err(
                    sp.start,
                    "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                ))
            }
        };
        if *slot != 0 {
            return Err(self.err(sp.start, "offset may not be set multiple times"));
        }
        *slot = ms;
        Ok((expr, sp))
    }

    fn at_modifier(&mut self, node: Node) -> PResult<Node> {
        let t = self.peek();
        let at = match t.tok {
            Tok::Start | Tok::End => {
                self.bump();
                self.expect(Tok::LParen, "", "")?;
                self.expect(Tok::RParen, "", "")?;
                if t.tok == Tok::Start {
                    AtModifier::Start
                } else {
                    AtModifier::End
                }
            }
            _ => {
                let (ts, _) = self.duration_value(true, "@", "timestamp")?;
                if !ts.is_finite() || ts >= i64::MAX as f64 || ts <= i64::MIN as f64 {
                    return Err(self.err(
                        node.1.start,
                        format!("timestamp out of bounds for @ modifier: {}", go_fmt_f(ts)),
                    ));
                }
                AtModifier::Timestamp(saturating_ms(ts * 1000.0))
            }
        };
        let (mut expr, sp) = node;
        let slot = match &mut expr {
            Expr::VectorSelector(vs) => &mut vs.at,
            Expr::MatrixSelector(ms) => &mut ms.selector.at,
            Expr::Subquery(sq) => &mut sq.at,
            _ => {
                return Err(self.err(
                    sp.start,
                    "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                ))
            }
        };
        if slot.is_some() {
            return Err(self.err(sp.start, "@ <timestamp> may not be set multiple times"));
        }
        *slot = Some(at);
        Ok((expr, sp))
    }
}

/// Go's `%f`.
fn go_fmt_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:.6}")
    }
}

fn saturating_ms(v: f64) -> i64 {
    let r = v.round();
    if r >= i64::MAX as f64 {
        i64::MAX
    } else if r <= i64::MIN as f64 {
        i64::MIN
    } else {
        r as i64
    }
}

/// Seconds to milliseconds; `None` when the duration overflows Go's nanosecond durations.
fn secs_to_ms(secs: f64) -> Option<i64> {
    let ns = secs * 1e9;
    if !ns.is_finite() || ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return None;
    }
    Some((secs * 1000.0).round() as i64)
}

fn check(input: &str, expr: &Expr, sp: &Sp, bypass_empty: bool) -> PResult<()> {
    let err = |pos: usize, msg: String| Err(ParseError::new(input, pos, msg));
    let kid = |i: usize| {
        sp.kids
            .get(i)
            .cloned()
            .unwrap_or_else(|| Sp::leaf(sp.start))
    };
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Paren(e) => check(input, e, &kid(0), false),
        Expr::Unary(u) => {
            check(input, &u.expr, &kid(0), false)?;
            let t = u.expr.value_type();
            if t != ValueType::Scalar && t != ValueType::Vector {
                return err(
                    sp.start,
                    format!(
                        "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                        go_quote(t.doc_name())
                    ),
                );
            }
            Ok(())
        }
        Expr::Subquery(s) => {
            check(input, &s.expr, &kid(0), false)?;
            let t = s.expr.value_type();
            if t != ValueType::Vector {
                return err(
                    sp.start,
                    format!(
                        "subquery is only allowed on instant vector, got {} instead",
                        t.api_name()
                    ),
                );
            }
            Ok(())
        }
        Expr::MatrixSelector(m) => check_selector(input, &m.selector, sp.start, false),
        Expr::VectorSelector(vs) => check_selector(input, vs, sp.start, bypass_empty),
        Expr::Aggregate(a) => {
            let esp = kid(0);
            check(input, &a.expr, &esp, false)?;
            let t = a.expr.value_type();
            if t != ValueType::Vector {
                return err(
                    esp.start,
                    format!(
                        "expected type instant vector in aggregation expression, got {}",
                        t.doc_name()
                    ),
                );
            }
            if let Some(p) = &a.param {
                let psp = kid(1);
                let want = if a.op == AggregateOp::CountValues {
                    ValueType::String
                } else {
                    ValueType::Scalar
                };
                check(input, p, &psp, false)?;
                let pt = p.value_type();
                if pt != want {
                    return err(
                        psp.start,
                        format!(
                            "expected type {} in aggregation parameter, got {}",
                            want.doc_name(),
                            pt.doc_name()
                        ),
                    );
                }
            }
            Ok(())
        }
        Expr::Binary(b) => {
            let (lsp, rsp) = (kid(0), kid(1));
            check(input, &b.lhs, &lsp, false)?;
            check(input, &b.rhs, &rsp, false)?;
            let (lt, rt) = (b.lhs.value_type(), b.rhs.value_type());
            if b.return_bool && !b.op.is_comparison() {
                return err(
                    sp.op,
                    "bool modifier can only be used on comparison operators".into(),
                );
            }
            if b.op.is_comparison()
                && !b.return_bool
                && lt == ValueType::Scalar
                && rt == ValueType::Scalar
            {
                return err(
                    sp.op,
                    "comparisons between scalars must use BOOL modifier".into(),
                );
            }
            let vm = sp.vm.clone().or_else(|| b.matching.clone());
            if let Some(vm) = &vm {
                if vm.on {
                    for l in &vm.matching_labels {
                        if vm.include.contains(l) {
                            return err(
                                sp.op,
                                format!(
                                    "label {} must not occur in ON and GROUP clause at once",
                                    go_quote(l)
                                ),
                            );
                        }
                    }
                }
            }
            let ok = |t: ValueType| t == ValueType::Scalar || t == ValueType::Vector;
            if !ok(lt) {
                return err(
                    lsp.start,
                    "binary expression must contain only scalar and instant vector types".into(),
                );
            }
            if !ok(rt) {
                return err(
                    rsp.start,
                    "binary expression must contain only scalar and instant vector types".into(),
                );
            }
            if let Some(vm) = &vm {
                if lt != ValueType::Vector || rt != ValueType::Vector {
                    if !vm.matching_labels.is_empty() {
                        return err(
                            sp.start,
                            "vector matching only allowed between instant vectors".into(),
                        );
                    }
                } else if b.op.is_set()
                    && matches!(vm.card, Cardinality::OneToMany | Cardinality::ManyToOne)
                {
                    return err(
                        sp.start,
                        format!(
                            "no grouping allowed for {} operation",
                            go_quote(b.op.as_str())
                        ),
                    );
                }
            }
            if (lt == ValueType::Scalar || rt == ValueType::Scalar) && b.op.is_set() {
                return err(
                    sp.start,
                    format!(
                        "set operator {} not allowed in binary scalar expression",
                        go_quote(b.op.as_str())
                    ),
                );
            }
            Ok(())
        }
        Expr::Call(c) => {
            let f = c.func;
            let nargs = f.arg_types.len();
            let n = c.args.len();
            let name = go_quote(f.name);
            if f.variadic == 0 {
                if nargs != n {
                    return err(
                        sp.start,
                        format!("expected {nargs} argument(s) in call to {name}, got {n}"),
                    );
                }
            } else {
                let na = nargs.saturating_sub(1);
                if na > n {
                    return err(
                        sp.start,
                        format!("expected at least {na} argument(s) in call to {name}, got {n}"),
                    );
                }
                let max = na as i64 + f.variadic as i64;
                if f.variadic > 0 && max < n as i64 {
                    return err(
                        sp.start,
                        format!("expected at most {max} argument(s) in call to {name}, got {n}"),
                    );
                }
            }
            let mut bypass_arg = None;
            if f.name == "info" && n > 1 {
                let a1 = &c.args[1];
                if a1.value_type() != ValueType::Vector {
                    return err(
                        sp.start,
                        format!(
                            "expected type instant vector in call to function {name}, got {}",
                            a1.value_type().doc_name()
                        ),
                    );
                }
                match a1 {
                    Expr::VectorSelector(vs) if vs.name.is_some() => {
                        return err(
                            kid(1).start,
                            "expected label selectors only, got vector selector instead".into(),
                        )
                    }
                    Expr::VectorSelector(_) => bypass_arg = Some(1),
                    _ => return err(kid(1).start, "expected label selectors only".into()),
                }
            }
            for (i, arg) in c.args.iter().enumerate() {
                let idx = if i >= nargs {
                    if f.variadic == 0 {
                        break;
                    }
                    nargs.saturating_sub(1)
                } else {
                    i
                };
                let Some(want) = f.arg_types.get(idx).copied() else {
                    break;
                };
                let asp = kid(i);
                check(input, arg, &asp, bypass_arg == Some(i))?;
                let t = arg.value_type();
                if t != want {
                    return err(
                        asp.start,
                        format!(
                            "expected type {} in call to function {name}, got {}",
                            want.doc_name(),
                            t.doc_name()
                        ),
                    );
                }
            }
            Ok(())
        }
    }
}

fn check_selector(
    input: &str,
    vs: &VectorSelector,
    start: usize,
    bypass_empty: bool,
) -> PResult<()> {
    if let Some(name) = &vs.name {
        let others = &vs.matchers[..vs.matchers.len().saturating_sub(1)];
        if let Some(m) = others.iter().find(|m| m.name == METRIC_NAME_LABEL) {
            return Err(ParseError::new(
                input,
                start,
                format!(
                    "metric name must not be set twice: {} or {}",
                    go_quote(name),
                    go_quote(&m.value)
                ),
            ));
        }
        return Ok(());
    }
    if !bypass_empty && vs.matchers.iter().all(|m| m.matches_empty()) {
        return Err(ParseError::new(
            input,
            start,
            "vector selector must contain at least one non-empty matcher",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(q: &str) -> String {
        match parse(q) {
            Ok(e) => panic!("{q} parsed as {e:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(
            parse_duration("1y2w3d4h5m6s7ms"),
            Ok(((((365 + 14 + 3) * 24 + 4) * 60 + 5) * 60 + 6) * 1000 + 7)
        );
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(
            parse_duration("").unwrap_err().to_string(),
            "empty duration string"
        );
        assert_eq!(
            parse_duration("1.5s").unwrap_err().to_string(),
            "unknown unit \".\" in duration \"1.5s\""
        );
        assert_eq!(
            parse_duration("s").unwrap_err().to_string(),
            "not a valid duration string: \"s\""
        );
        assert_eq!(
            parse_duration("5m1h").unwrap_err().to_string(),
            "not a valid duration string: \"5m1h\""
        );
        assert_eq!(
            parse_duration("5x").unwrap_err().to_string(),
            "unknown unit \"x\" in duration \"5x\""
        );
        assert_eq!(
            parse_duration("999999999y").unwrap_err().to_string(),
            "duration out of range"
        );
        assert_eq!(parse_api_duration("1.5"), Ok(1500));
        assert_eq!(parse_api_duration("2m"), Ok(120_000));
        assert_eq!(
            parse_api_duration("x").unwrap_err().to_string(),
            "cannot parse \"x\" to a valid duration"
        );
    }

    #[test]
    fn numbers() {
        for (q, v) in [
            ("1", 1.0),
            ("+Inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            (".5", 0.5),
            ("5.", 5.0),
            ("5e-3", 0.005),
            ("0xc", 12.0),
            ("0755", 493.0),
            ("-0755", -493.0),
            ("08", 8.0),
            ("1_000", 1000.0),
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("-2^2", -4.0),
        ] {
            match parse(q).unwrap() {
                Expr::NumberLiteral(x) => assert_eq!(x, v, "{q}"),
                Expr::Unary(u) => {
                    assert_eq!(q, "-2^2");
                    assert!(matches!(*u.expr, Expr::Binary(_)));
                }
                other => panic!("{q}: {other:?}"),
            }
        }
        assert!(matches!(parse("NaN").unwrap(), Expr::NumberLiteral(x) if x.is_nan()));
    }

    #[test]
    fn precedence() {
        let show = |q: &str| parse(q).unwrap();
        // a + b * c ^ d ^ e
        let Expr::Binary(b) = show("a + b * c ^ d ^ e") else {
            panic!()
        };
        assert_eq!(b.op, BinaryOp::Add);
        let Expr::Binary(m) = *b.rhs else { panic!() };
        assert_eq!(m.op, BinaryOp::Mul);
        let Expr::Binary(p) = *m.rhs else { panic!() };
        assert_eq!(p.op, BinaryOp::Pow);
        assert!(matches!(
            *p.rhs,
            Expr::Binary(BinaryExpr {
                op: BinaryOp::Pow,
                ..
            })
        ));
        // or < and/unless < comparisons
        let Expr::Binary(b) = show("a or b and c unless d > e") else {
            panic!()
        };
        assert_eq!(b.op, BinaryOp::Or);
        let Expr::Binary(b) = show("-a * b") else {
            panic!()
        };
        assert_eq!(b.op, BinaryOp::Mul);
        assert!(matches!(*b.lhs, Expr::Unary(_)));
        let Expr::Unary(u) = show("-a ^ b") else {
            panic!()
        };
        assert!(matches!(*u.expr, Expr::Binary(_)));
        let Expr::Binary(b) = show("a - b - c") else {
            panic!()
        };
        assert!(matches!(*b.lhs, Expr::Binary(_)));
        let Expr::Binary(b) = show("a atan2 b + c") else {
            panic!()
        };
        assert_eq!(b.op, BinaryOp::Add);
    }

    #[test]
    fn selectors_and_modifiers() {
        let Expr::VectorSelector(vs) = parse(r#"foo{a="b", c=~"d.*",}"#).unwrap() else {
            panic!()
        };
        assert_eq!(vs.name.as_deref(), Some("foo"));
        assert_eq!(vs.matchers.len(), 3);
        let Expr::VectorSelector(vs) = parse(r#"{"foo.bar", "x y"!="z"}"#).unwrap() else {
            panic!()
        };
        assert_eq!(vs.name, None);
        assert_eq!(vs.matchers[0].name, "__name__");
        assert_eq!(vs.matchers[0].value, "foo.bar");
        assert_eq!(vs.matchers[1].name, "x y");
        let Expr::VectorSelector(vs) = parse("foo @ 100 offset -5m").unwrap() else {
            panic!()
        };
        assert_eq!(
            (vs.at, vs.offset_ms),
            (Some(AtModifier::Timestamp(100_000)), -300_000)
        );
        let Expr::VectorSelector(vs) = parse("foo offset 1m30s @ end()").unwrap() else {
            panic!()
        };
        assert_eq!((vs.at, vs.offset_ms), (Some(AtModifier::End), 90_000));
        let Expr::MatrixSelector(m) = parse("foo[300] offset 1m").unwrap() else {
            panic!()
        };
        assert_eq!((m.range_ms, m.selector.offset_ms), (300_000, 60_000));
        let Expr::Subquery(s) = parse("rate(foo[5m])[30m:] @ start() offset 1m").unwrap() else {
            panic!()
        };
        assert_eq!(
            (s.range_ms, s.step_ms, s.offset_ms, s.at),
            (1_800_000, None, 60_000, Some(AtModifier::Start))
        );
        let Expr::Subquery(s) = parse("foo[30m:1m]").unwrap() else {
            panic!()
        };
        assert_eq!(s.step_ms, Some(60_000));
        // Keywords as metric names and label names.
        assert!(parse("sum + by").is_ok());
        assert!(parse(r#"{on="x", by="y"}"#).is_ok());
        assert!(parse("sum by (on, by, group_left, \"a.b\") (x)").is_ok());
    }

    #[test]
    fn binary_matching() {
        let Expr::Binary(b) = parse("a * on(x) group_left(y) b").unwrap() else {
            panic!()
        };
        let m = b.matching.unwrap();
        assert_eq!(
            (m.card, m.on, m.matching_labels, m.include),
            (
                Cardinality::ManyToOne,
                true,
                vec!["x".to_string()],
                vec!["y".to_string()]
            )
        );
        let Expr::Binary(b) = parse("a and b").unwrap() else {
            panic!()
        };
        assert_eq!(b.matching.unwrap().card, Cardinality::ManyToMany);
        let Expr::Binary(b) = parse("a > bool 1").unwrap() else {
            panic!()
        };
        assert!(b.return_bool && b.matching.is_none());
        let Expr::Binary(b) = parse("a - ignoring(x) group_right b").unwrap() else {
            panic!()
        };
        assert_eq!(b.matching.unwrap().card, Cardinality::OneToMany);
    }

    #[test]
    fn aggregations() {
        for q in ["sum by (x) (m)", "sum(m) by (x)", "SUM(m) BY (x)"] {
            let Expr::Aggregate(a) = parse(q).unwrap() else {
                panic!()
            };
            assert_eq!(
                (a.op, a.grouping, a.without),
                (AggregateOp::Sum, vec!["x".to_string()], false)
            );
        }
        let Expr::Aggregate(a) = parse("topk without (a) (3, m)").unwrap() else {
            panic!()
        };
        assert!(a.without && a.param.is_some());
        let Expr::Aggregate(a) = parse(r#"count_values("v", m)"#).unwrap() else {
            panic!()
        };
        assert!(matches!(a.param.as_deref(), Some(Expr::StringLiteral(s)) if s == "v"));
        assert!(parse("limitk(2, m)").is_ok());
        assert!(parse("limit_ratio(0.5, m)").is_ok());
    }

    #[test]
    fn functions_with_optional_args() {
        assert!(parse("round(m)").is_ok());
        assert!(parse("round(m, 0.5)").is_ok());
        assert!(parse("hour()").is_ok());
        assert!(parse("hour(m)").is_ok());
        assert!(parse(r#"label_join(m, "d", ",", "a", "b", "c")"#).is_ok());
        assert!(parse(r#"sort_by_label(m, "a", "b")"#).is_ok());
        assert!(parse("holt_winters(m[5m], 0.5, 0.5)").is_ok());
        assert!(parse(r#"info(m, {data=~".*"})"#).is_ok());
    }

    #[test]
    fn prometheus_error_messages() {
        for (q, want) in [
            ("", "unknown position: parse error: no expression found in input"),
            ("# just a comment\n\n", "1:1: parse error: no expression found in input"),
            ("1+", "1:3: parse error: unexpected end of input"),
            (".", "1:1: parse error: unexpected character: '.'"),
            ("2.5.", "1:1: parse error: bad number or duration syntax: \"2.5.\""),
            ("*1", "1:1: parse error: unexpected <op:*>"),
            ("(1))", "1:5: parse error: unexpected right parenthesis ')'"),
            ("((1)", "1:5: parse error: unclosed left parenthesis"),
            ("1 and 1", "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"),
            ("1 == 1", "1:3: parse error: comparisons between scalars must use BOOL modifier"),
            ("1 + bool 1", "1:3: parse error: bool modifier can only be used on comparison operators"),
            ("{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"),
            (r#"{x=""}"#, "1:1: parse error: vector selector must contain at least one non-empty matcher"),
            (r#"foo{__name__="bar"}"#, "1:1: parse error: metric name must not be set twice: \"foo\" or \"bar\""),
            ("rate(foo)", "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"),
            ("rate(foo[5m], 1)", "1:1: parse error: expected 1 argument(s) in call to \"rate\", got 2"),
            ("round()", "1:1: parse error: expected at least 1 argument(s) in call to \"round\", got 0"),
            ("round(a, 1, 2)", "1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3"),
            ("foo(bar)", "1:1: parse error: unknown function with name \"foo\""),
            ("sum(foo[5m])", "1:5: parse error: expected type instant vector in aggregation expression, got range vector"),
            ("topk(foo, bar)", "1:6: parse error: expected type scalar in aggregation parameter, got instant vector"),
            ("sum()", "1:1: parse error: no arguments for aggregate expression provided"),
            ("topk(a)", "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1"),
            ("(foo)[5m]", "1:6: parse error: ranges only allowed for vector selectors"),
            ("foo offset 5m [5m]", "1:15: parse error: no offset modifiers allowed before range"),
            ("foo @ 1 [5m]", "1:9: parse error: no @ modifiers allowed before range"),
            ("sum(foo) offset 5m", "1:1: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"),
            ("1 @ 5", "1:1: parse error: @ modifier must be preceded by an instant vector selector or range vector selector or a subquery"),
            ("foo offset 1m offset 2m", "1:1: parse error: offset may not be set multiple times"),
            ("foo @ 1 @ 2", "1:1: parse error: @ <timestamp> may not be set multiple times"),
            ("foo @ Inf", "1:1: parse error: timestamp out of bounds for @ modifier: +Inf"),
            ("foo[0s]", "1:5: parse error: duration must be greater than 0"),
            ("foo[5m:1m][1m]", "1:11: parse error: ranges only allowed for vector selectors"),
            ("1[5m:1m]", "1:1: parse error: subquery is only allowed on instant vector, got scalar instead"),
            ("-foo[5m]", "1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got \"range vector\""),
            ("foo[5m] + 1", "1:1: parse error: binary expression must contain only scalar and instant vector types"),
            ("a and on(x) group_left b", "1:1: parse error: no grouping allowed for \"and\" operation"),
            ("a * on(x) group_left(x) b", "1:3: parse error: label \"x\" must not occur in ON and GROUP clause at once"),
            ("1 + on(x) a", "1:1: parse error: vector matching only allowed between instant vectors"),
            ("foo{a$}", "1:6: parse error: unexpected character inside braces: '$'"),
            ("foo{a}", "1:6: parse error: unexpected \"}\" in label matching, expected label matching operator"),
            ("foo{a=1}", "1:7: parse error: unexpected character inside braces: '1'"),
            ("foo{", "1:5: parse error: unexpected end of input inside braces"),
            ("sum by (1) (x)", "1:9: parse error: unexpected number \"1\" in grouping opts, expected label"),
            ("rate(foo[5m],)", "1:13: parse error: trailing commas not allowed in function call args"),
            ("foo[5m+1m]", "1:5: parse error: experimental duration expression is not enabled"),
            (r#"foo{a=~"("}"#, "1:5: parse error: invalid regular expression \"(\": regex parse error:\n    ^(?s:()$\n          ^\nerror: unclosed group"),
            ("1 2", "1:3: parse error: unexpected number \"2\""),
            ("\"abc", "1:1: parse error: unterminated quoted string"),
            ("foo\n+ bar[5m]", "2:3: parse error: binary expression must contain only scalar and instant vector types"),
            ("label_replace(a, 1, \"b\", \"c\", \"d\")", "1:18: parse error: expected type string in call to function \"label_replace\", got scalar"),
            ("-\"a\"", "1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got \"string\""),
        ] {
            if q.contains("=~\"(\"") {
                assert!(err(q).starts_with("1:5: parse error: invalid regular expression"), "{q}");
                continue;
            }
            assert_eq!(err(q), want, "query {q:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let run = || {
            for q in [
                "(".repeat(100_000) + "1" + &")".repeat(100_000),
                "-".repeat(100_000) + "1",
                "a".to_string() + &" + a".repeat(100_000),
                "2".to_string() + &" ^ 2".repeat(100_000),
                "abs(".repeat(50_000) + "a" + &")".repeat(50_000),
                "sum(".repeat(50_000) + "a" + &")".repeat(50_000),
                "a[1m:]".to_string() + &"[1m:]".repeat(100_000),
            ] {
                let e = parse(&q).unwrap_err();
                assert!(
                    e.message.contains("too deep") || e.message.contains("subquery"),
                    "{e}"
                );
            }
            let ok = "(".repeat(150) + "1" + &")".repeat(150);
            let e = parse(&ok).unwrap();
            let _ = crate::prettify(&e);
        };
        // Debug builds use ~16 KiB of stack per nesting level; release builds far less
        // (the limit fits in 2 MiB, Tokio's worker stack).
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap();
    }

    /// Truncations and mutations of valid queries must never panic.
    #[test]
    fn garbled_queries_do_not_panic() {
        let seeds = [
            r#"sum by (job) (rate(http_requests_total{job=~"api|web", code!="500"}[5m] offset 1m)) / on(job) group_left(x) count(up @ end())"#,
            r#"histogram_quantile(0.9, sum without(le) (rate(b_bucket[5m:30s] @ 1609746000))) > bool -Inf or label_replace(x, "a", "$1", 'b', `(.*)`)"#,
            "topk(3, -foo ^ 2 atan2 bar unless baz) # comment\n and {\"utf8.name\", x=\"\\u00e9\\x41\\101\"}[1h30m]",
        ];
        let junk = [
            "(", ")", "[", "]", "{", "}", ",", ":", "@", "\"", "'", "`", "#", "\\", "-", "5m", "é",
            "\n", "=~", "!",
        ];
        let mut n = 0usize;
        for seed in seeds {
            let chars: Vec<char> = seed.chars().collect();
            for cut in 0..=chars.len() {
                let head: String = chars[..cut].iter().collect();
                let _ = parse(&head);
                let tail: String = chars[cut..].iter().collect();
                let _ = parse(&tail);
                for j in junk {
                    let mut s: String = chars[..cut].iter().collect();
                    s.push_str(j);
                    s.extend(&chars[cut..]);
                    if let Ok(e) = parse(&s) {
                        let printed = e.to_string();
                        assert!(parse(&printed).is_ok(), "{s} printed as {printed}");
                    }
                    n += 1;
                }
            }
        }
        assert!(n > 1000);
    }
}
