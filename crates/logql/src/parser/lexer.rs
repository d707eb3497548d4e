//! The LogQL lexer, following Loki's (`pkg/logql/syntax/lex.go` over Go's `text/scanner`):
//! keywords are case-insensitive, function names are keywords only when a `(` (or `by`/
//! `without` and a `(`) follows, numbers directly followed by a unit are durations or byte
//! sizes, `[...]` is a range, and any other character is an identifier.
//!
//! Positions are those Loki reports: 1-based line and column (in characters) of the token's
//! start; the line reads 0 for tokens Loki's lexer extends past the scanner's token (two-
//! character operators, durations, byte sizes, flags and ranges).

use super::ParseError;
use crate::ast::{RangeOp, VectorAggOp};
use crate::units::{parse_bytes, parse_duration, parse_prom_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sym {
    Comma,
    Dot,
    LBrace,
    RBrace,
    Eq,
    Neq,
    Re,
    Nre,
    Npa,
    PipeExact,
    PipeMatch,
    PipePattern,
    Pipe,
    LParen,
    RParen,
    RBracket,
    By,
    Without,
    Bool,
    Offset,
    On,
    Ignoring,
    GroupLeft,
    GroupRight,
    Unwrap,
    Or,
    And,
    Unless,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    CmpEq,
    Gt,
    Ge,
    Lt,
    Le,
    Json,
    Regexp,
    Logfmt,
    Unpack,
    Pattern,
    LabelFmt,
    LineFmt,
    Decolorize,
    Drop,
    Keep,
    Variants,
    Of,
    // Function tokens: only when followed by `(`.
    Ip,
    LabelReplace,
    Vector,
    RangeFn(RangeOp),
    VecFn(VectorAggOp),
    ApproxTopk,
    ConvBytes,
    ConvDuration,
    ConvDurationSeconds,
}

impl Sym {
    /// The token's name in Loki's syntax errors.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Sym::Comma => ",",
            Sym::Dot => ".",
            Sym::LBrace => "{",
            Sym::RBrace => "}",
            Sym::Eq => "=",
            Sym::Neq => "!=",
            Sym::Re => "=~",
            Sym::Nre => "!~",
            Sym::Npa => "!>",
            Sym::PipeExact => "|=",
            Sym::PipeMatch => "|~",
            Sym::PipePattern => "|>",
            Sym::Pipe => "|",
            Sym::LParen => "(",
            Sym::RParen => ")",
            Sym::RBracket => "]",
            Sym::By => "by",
            Sym::Without => "without",
            Sym::Bool => "bool",
            Sym::Offset => "offset",
            Sym::On => "on",
            Sym::Ignoring => "ignoring",
            Sym::GroupLeft => "group_left",
            Sym::GroupRight => "group_right",
            Sym::Unwrap => "unwrap",
            Sym::Or => "or",
            Sym::And => "and",
            Sym::Unless => "unless",
            Sym::Add => "+",
            Sym::Sub => "-",
            Sym::Mul => "*",
            Sym::Div => "/",
            Sym::Mod => "%",
            Sym::Pow => "^",
            Sym::CmpEq => "==",
            Sym::Gt => ">",
            Sym::Ge => ">=",
            Sym::Lt => "<",
            Sym::Le => "<=",
            Sym::Json => "json",
            Sym::Regexp => "regexp",
            Sym::Logfmt => "logfmt",
            Sym::Unpack => "unpack",
            Sym::Pattern => "pattern",
            Sym::LabelFmt => "label_format",
            Sym::LineFmt => "line_format",
            Sym::Decolorize => "decolorize",
            Sym::Drop => "drop",
            Sym::Keep => "keep",
            Sym::Variants => "variants",
            Sym::Of => "of",
            Sym::Ip => "ip",
            Sym::LabelReplace => "label_replace",
            Sym::Vector => "VECTOR",
            Sym::RangeFn(op) => match op {
                RangeOp::CountOverTime => "COUNT_OVER_TIME",
                RangeOp::Rate => "RATE",
                RangeOp::RateCounter => "RATE_COUNTER",
                RangeOp::BytesOverTime => "BYTES_OVER_TIME",
                RangeOp::BytesRate => "BYTES_RATE",
                RangeOp::AbsentOverTime => "ABSENT_OVER_TIME",
                RangeOp::SumOverTime => "SUM_OVER_TIME",
                RangeOp::AvgOverTime => "AVG_OVER_TIME",
                RangeOp::MaxOverTime => "MAX_OVER_TIME",
                RangeOp::MinOverTime => "MIN_OVER_TIME",
                RangeOp::StddevOverTime => "STDDEV_OVER_TIME",
                RangeOp::StdvarOverTime => "STDVAR_OVER_TIME",
                RangeOp::QuantileOverTime => "QUANTILE_OVER_TIME",
                RangeOp::FirstOverTime => "FIRST_OVER_TIME",
                RangeOp::LastOverTime => "LAST_OVER_TIME",
            },
            Sym::VecFn(op) => match op {
                VectorAggOp::Sum => "SUM",
                VectorAggOp::Avg => "AVG",
                VectorAggOp::Min => "MIN",
                VectorAggOp::Max => "MAX",
                VectorAggOp::Count => "COUNT",
                VectorAggOp::Stddev => "STDDEV",
                VectorAggOp::Stdvar => "STDVAR",
                VectorAggOp::Topk => "TOPK",
                VectorAggOp::Bottomk => "BOTTOMK",
                VectorAggOp::Sort => "SORT",
                VectorAggOp::SortDesc => "SORT_DESC",
            },
            Sym::ApproxTopk => "APPROX_TOPK",
            Sym::ConvBytes => "BYTES_CONV",
            Sym::ConvDuration => "DURATION_CONV",
            Sym::ConvDurationSeconds => "DURATION_SECONDS_CONV",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Eof,
    /// A lexer error: the parse fails with it when the parser reaches it.
    Error(ParseError),
    Ident(String),
    Str(String),
    Number(String),
    /// Nanoseconds.
    Duration(i64),
    /// `[5m]`, nanoseconds.
    Range(i64),
    /// Bytes (an integer, as go-humanize gives it).
    Bytes(f64),
    /// `--strict`, `--keep-empty`.
    Flag(String),
    Sym(Sym),
}

impl Tok {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Tok::Eof | Tok::Error(_) => "$end",
            Tok::Ident(_) => "IDENTIFIER",
            Tok::Str(_) => "STRING",
            Tok::Number(_) => "NUMBER",
            Tok::Duration(_) => "DURATION",
            Tok::Range(_) => "RANGE",
            Tok::Bytes(_) => "BYTES",
            Tok::Flag(_) => "PARSER_FLAG",
            Tok::Sym(s) => s.name(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Line as Loki reports it for this token (0 when Loki's lexer extended the token).
    pub line: usize,
    pub col: usize,
}

fn keyword(s: &str) -> Option<Sym> {
    Some(match s {
        "," => Sym::Comma,
        "." => Sym::Dot,
        "{" => Sym::LBrace,
        "}" => Sym::RBrace,
        "=" => Sym::Eq,
        "!=" => Sym::Neq,
        "=~" => Sym::Re,
        "!~" => Sym::Nre,
        "!>" => Sym::Npa,
        "|=" => Sym::PipeExact,
        "|~" => Sym::PipeMatch,
        "|>" => Sym::PipePattern,
        "|" => Sym::Pipe,
        "unwrap" => Sym::Unwrap,
        "(" => Sym::LParen,
        ")" => Sym::RParen,
        "by" => Sym::By,
        "without" => Sym::Without,
        "bool" => Sym::Bool,
        "]" => Sym::RBracket,
        "offset" => Sym::Offset,
        "on" => Sym::On,
        "ignoring" => Sym::Ignoring,
        "group_left" => Sym::GroupLeft,
        "group_right" => Sym::GroupRight,
        "or" => Sym::Or,
        "and" => Sym::And,
        "unless" => Sym::Unless,
        "+" => Sym::Add,
        "-" => Sym::Sub,
        "*" => Sym::Mul,
        "/" => Sym::Div,
        "%" => Sym::Mod,
        "^" => Sym::Pow,
        "==" => Sym::CmpEq,
        ">" => Sym::Gt,
        ">=" => Sym::Ge,
        "<" => Sym::Lt,
        "<=" => Sym::Le,
        "json" => Sym::Json,
        "regexp" => Sym::Regexp,
        "logfmt" => Sym::Logfmt,
        "unpack" => Sym::Unpack,
        "pattern" => Sym::Pattern,
        "label_format" => Sym::LabelFmt,
        "line_format" => Sym::LineFmt,
        "decolorize" => Sym::Decolorize,
        "drop" => Sym::Drop,
        "keep" => Sym::Keep,
        "variants" => Sym::Variants,
        "of" => Sym::Of,
        _ => return None,
    })
}

fn function_token(s: &str) -> Option<Sym> {
    Some(match s {
        "rate" => Sym::RangeFn(RangeOp::Rate),
        "rate_counter" => Sym::RangeFn(RangeOp::RateCounter),
        "count_over_time" => Sym::RangeFn(RangeOp::CountOverTime),
        "bytes_rate" => Sym::RangeFn(RangeOp::BytesRate),
        "bytes_over_time" => Sym::RangeFn(RangeOp::BytesOverTime),
        "avg_over_time" => Sym::RangeFn(RangeOp::AvgOverTime),
        "sum_over_time" => Sym::RangeFn(RangeOp::SumOverTime),
        "min_over_time" => Sym::RangeFn(RangeOp::MinOverTime),
        "max_over_time" => Sym::RangeFn(RangeOp::MaxOverTime),
        "stdvar_over_time" => Sym::RangeFn(RangeOp::StdvarOverTime),
        "stddev_over_time" => Sym::RangeFn(RangeOp::StddevOverTime),
        "quantile_over_time" => Sym::RangeFn(RangeOp::QuantileOverTime),
        "first_over_time" => Sym::RangeFn(RangeOp::FirstOverTime),
        "last_over_time" => Sym::RangeFn(RangeOp::LastOverTime),
        "absent_over_time" => Sym::RangeFn(RangeOp::AbsentOverTime),
        "vector" => Sym::Vector,
        "sum" => Sym::VecFn(VectorAggOp::Sum),
        "avg" => Sym::VecFn(VectorAggOp::Avg),
        "max" => Sym::VecFn(VectorAggOp::Max),
        "min" => Sym::VecFn(VectorAggOp::Min),
        "count" => Sym::VecFn(VectorAggOp::Count),
        "stddev" => Sym::VecFn(VectorAggOp::Stddev),
        "stdvar" => Sym::VecFn(VectorAggOp::Stdvar),
        "bottomk" => Sym::VecFn(VectorAggOp::Bottomk),
        "topk" => Sym::VecFn(VectorAggOp::Topk),
        "sort" => Sym::VecFn(VectorAggOp::Sort),
        "sort_desc" => Sym::VecFn(VectorAggOp::SortDesc),
        "label_replace" => Sym::LabelReplace,
        "approx_topk" => Sym::ApproxTopk,
        "bytes" => Sym::ConvBytes,
        "duration" => Sym::ConvDuration,
        "duration_seconds" => Sym::ConvDurationSeconds,
        "ip" => Sym::Ip,
        _ => return None,
    })
}

fn is_go_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_duration_rune(c: char) -> bool {
    matches!(c, 'n' | 'u' | 'µ' | 'm' | 's' | 'h' | 'd' | 'w' | 'y')
}

fn is_bytes_rune(c: char) -> bool {
    matches!(c, 'B' | 'i' | 'k' | 'K' | 'M' | 'G' | 'T' | 'P')
}

struct Lexer {
    chars: Vec<char>,
    /// (line, column) of every char, plus one entry for the end.
    pos: Vec<(usize, usize)>,
    i: usize,
}

/// Tokenizes the whole input. The last token is `Eof` or an `Error`.
pub(crate) fn lex(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut pos = Vec::with_capacity(chars.len() + 1);
    let (mut line, mut col) = (1usize, 1usize);
    for &c in &chars {
        pos.push((line, col));
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    pos.push((line, col));
    let mut lx = Lexer { chars, pos, i: 0 };
    let mut out = Vec::new();
    loop {
        let t = lx.next_token();
        let stop = matches!(t.tok, Tok::Eof | Tok::Error(_));
        out.push(t);
        if stop {
            return out;
        }
    }
}

impl Lexer {
    fn peek_at(&self, i: usize) -> Option<char> {
        self.chars.get(i).copied()
    }

    fn token(&self, tok: Tok, start: usize, line_valid: bool) -> Token {
        let (line, col) = self.pos[start];
        Token {
            tok,
            line: if line_valid { line } else { 0 },
            col,
        }
    }

    fn error(&self, msg: impl Into<String>, start: usize, line_valid: bool) -> Token {
        let (line, col) = self.pos[start];
        Token {
            tok: Tok::Error(ParseError {
                line: if line_valid { line } else { 0 },
                col,
                message: msg.into(),
            }),
            line,
            col,
        }
    }

    /// Skips white space and Go comments; an error token for an unterminated `/*`.
    fn skip_space(&mut self) -> Option<Token> {
        loop {
            match self.peek_at(self.i) {
                Some(c) if is_go_whitespace(c) => self.i += 1,
                Some('/') if self.peek_at(self.i + 1) == Some('/') => {
                    while let Some(c) = self.peek_at(self.i) {
                        if c == '\n' {
                            break;
                        }
                        self.i += 1;
                    }
                }
                Some('/') if self.peek_at(self.i + 1) == Some('*') => {
                    let start = self.i;
                    self.i += 2;
                    loop {
                        match self.peek_at(self.i) {
                            None => return Some(self.error("comment not terminated", start, true)),
                            Some('*') if self.peek_at(self.i + 1) == Some('/') => {
                                self.i += 2;
                                break;
                            }
                            Some(_) => self.i += 1,
                        }
                    }
                }
                _ => return None,
            }
        }
    }

    fn next_token(&mut self) -> Token {
        loop {
            if let Some(err) = self.skip_space() {
                return err;
            }
            let start = self.i;
            let Some(c) = self.peek_at(start) else {
                return self.token(Tok::Eof, start, true);
            };
            if c == '#' {
                while let Some(c) = self.peek_at(self.i) {
                    if c == '\n' {
                        break;
                    }
                    self.i += 1;
                }
                continue;
            }
            if c.is_ascii_digit()
                || (c == '.' && self.peek_at(start + 1).is_some_and(|d| d.is_ascii_digit()))
            {
                return self.number(start);
            }
            if c == '"' {
                return self.string(start);
            }
            if c == '`' {
                return self.raw_string(start);
            }
            let text: String = if c == '_' || c.is_alphabetic() {
                let mut j = start + 1;
                while let Some(d) = self.peek_at(j) {
                    if d == '_' || d.is_alphabetic() || d.is_numeric() {
                        j += 1;
                    } else {
                        break;
                    }
                }
                self.i = j;
                self.chars[start..j].iter().collect()
            } else {
                self.i = start + 1;
                c.to_string()
            };
            return self.word(text, start);
        }
    }

    /// What Loki's `Lex` does with a scanner token that is not a number or a string.
    fn word(&mut self, text: String, start: usize) -> Token {
        if text == "-" {
            if self.peek_at(self.i) == Some('-') {
                let mut j = self.i;
                let mut flag = text.clone();
                while let Some(d) = self.peek_at(j) {
                    if d.is_alphabetic() || d == '-' {
                        flag.push(d);
                        j += 1;
                    } else {
                        break;
                    }
                }
                if flag == "--strict" || flag == "--keep-empty" {
                    self.i = j;
                    return self.token(Tok::Flag(flag), start, false);
                }
            }
            if let Some(d) = self.try_duration("-") {
                return self.token(Tok::Duration(d), start, false);
            }
        }
        if text == "[" {
            let mut j = self.i;
            let mut body = String::new();
            while let Some(d) = self.peek_at(j) {
                j += 1;
                if d == ']' {
                    self.i = j;
                    return match parse_prom_duration(&body) {
                        Ok(ns) => self.token(Tok::Range(ns), start, false),
                        Err(e) => self.error(e, start, false),
                    };
                }
                body.push(d);
            }
            self.i = j;
            return self.error("missing closing ']' in duration", start, false);
        }
        let lower = text.to_lowercase();
        if let Some(sym) = function_token(&lower) {
            if self.is_function(self.i) {
                return self.token(Tok::Sym(sym), start, true);
            }
            return self.token(Tok::Ident(text), start, true);
        }
        if let Some(next) = self.peek_at(self.i) {
            let mut two = lower.clone();
            two.extend(next.to_lowercase());
            if let Some(sym) = keyword(&two) {
                self.i += 1;
                return self.token(Tok::Sym(sym), start, false);
            }
        }
        if let Some(sym) = keyword(&lower) {
            return self.token(Tok::Sym(sym), start, true);
        }
        self.token(Tok::Ident(text), start, true)
    }

    /// Loki's `isFunction`: the next non-space input is `(`, or `by`/`without` then `(`.
    fn is_function(&self, mut j: usize) -> bool {
        while self.peek_at(j).is_some_and(char::is_whitespace) {
            j += 1;
        }
        let mut acc = String::new();
        while let Some(c) = self.peek_at(j) {
            j += 1;
            acc.extend(c.to_lowercase());
            if acc == "(" {
                return true;
            }
            if acc == "by" || acc == "without" {
                while self.peek_at(j).is_some_and(char::is_whitespace) {
                    j += 1;
                }
                return self.peek_at(j) == Some('(');
            }
            if !("by".starts_with(&acc) || "without".starts_with(&acc)) {
                return false;
            }
        }
        false
    }

    /// Loki's `tryScanDuration`: the prefix plus the following duration characters, if that
    /// parses as a duration (the input is consumed then).
    fn try_duration(&mut self, prefix: &str) -> Option<i64> {
        let mut j = self.i;
        let mut s = prefix.to_string();
        while let Some(d) = self.peek_at(j) {
            if is_go_whitespace(d) || !(d.is_numeric() || is_duration_rune(d) || d == '.') {
                break;
            }
            s.push(d);
            j += 1;
        }
        if j == self.i {
            return None;
        }
        let ns = parse_duration(&s).ok()?;
        self.i = j;
        Some(ns)
    }

    fn try_bytes(&mut self, prefix: &str) -> Option<f64> {
        let mut j = self.i;
        let mut s = prefix.to_string();
        while let Some(d) = self.peek_at(j) {
            if is_go_whitespace(d) || !(d.is_numeric() || is_bytes_rune(d) || d == '.') {
                break;
            }
            s.push(d);
            j += 1;
        }
        if j == self.i {
            return None;
        }
        let b = parse_bytes(&s).ok()?;
        self.i = j;
        // go-humanize answers an unsigned integer.
        Some(b.trunc())
    }

    /// A Go number (decimal, `0x` hex, fraction, exponent), then maybe a unit.
    fn number(&mut self, start: usize) -> Token {
        let mut j = start;
        let digits = |lx: &Self, mut j: usize, hex: bool| {
            while let Some(d) = lx.peek_at(j) {
                if d.is_ascii_digit() || d == '_' || (hex && d.is_ascii_hexdigit()) {
                    j += 1;
                } else {
                    break;
                }
            }
            j
        };
        let hex =
            self.peek_at(j) == Some('0') && matches!(self.peek_at(j + 1), Some('x') | Some('X'));
        if hex {
            j = digits(self, j + 2, true);
        } else {
            j = digits(self, j, false);
            if self.peek_at(j) == Some('.') {
                j = digits(self, j + 1, false);
            }
            if matches!(self.peek_at(j), Some('e') | Some('E')) {
                j += 1;
                if matches!(self.peek_at(j), Some('+') | Some('-')) {
                    j += 1;
                }
                let k = digits(self, j, false);
                if k == j {
                    return self.error("exponent has no digits", start, true);
                }
                j = k;
            }
        }
        let text: String = self.chars[start..j].iter().collect();
        self.i = j;
        if let Some(d) = self.try_duration(&text) {
            return self.token(Tok::Duration(d), start, false);
        }
        if let Some(b) = self.try_bytes(&text) {
            return self.token(Tok::Bytes(b), start, false);
        }
        self.token(Tok::Number(text), start, true)
    }

    /// A double-quoted string with Go escapes.
    fn string(&mut self, start: usize) -> Token {
        let mut j = start + 1;
        let mut out: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4];
        loop {
            let Some(c) = self.peek_at(j) else {
                self.i = j;
                return self.error("literal not terminated", start, true);
            };
            j += 1;
            match c {
                '"' => break,
                '\n' => {
                    self.i = j;
                    return self.error("literal not terminated", start, true);
                }
                '\\' => {
                    let e = self.peek_at(j);
                    j += 1;
                    let simple = match e {
                        Some('a') => Some(7u8),
                        Some('b') => Some(8),
                        Some('f') => Some(12),
                        Some('n') => Some(b'\n'),
                        Some('r') => Some(b'\r'),
                        Some('t') => Some(b'\t'),
                        Some('v') => Some(11),
                        Some('\\') => Some(b'\\'),
                        Some('"') => Some(b'"'),
                        _ => None,
                    };
                    if let Some(b) = simple {
                        out.push(b);
                        continue;
                    }
                    let (base, n) = match e {
                        Some('0'..='7') => {
                            j -= 1;
                            (8, 3)
                        }
                        Some('x') => (16, 2),
                        Some('u') => (16, 4),
                        Some('U') => (16, 8),
                        _ => {
                            self.i = j;
                            return self.error("invalid char escape", start, true);
                        }
                    };
                    let mut v: u32 = 0;
                    for _ in 0..n {
                        match self.peek_at(j).and_then(|d| d.to_digit(base)) {
                            Some(d) => {
                                v = v * base + d;
                                j += 1;
                            }
                            None => {
                                self.i = j;
                                return self.error("invalid char escape", start, true);
                            }
                        }
                    }
                    match e {
                        Some('x') => out.push(v as u8),
                        Some('u') | Some('U') => match char::from_u32(v) {
                            Some(ch) => out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes()),
                            None => {
                                self.i = j;
                                return self.error("invalid syntax", start, true);
                            }
                        },
                        _ => {
                            if v > 255 {
                                self.i = j;
                                return self.error("invalid syntax", start, true);
                            }
                            out.push(v as u8);
                        }
                    }
                }
                c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
            }
        }
        self.i = j;
        match String::from_utf8(out) {
            Ok(s) => self.token(Tok::Str(s), start, true),
            Err(_) => self.error("invalid UTF-8 in string literal", start, true),
        }
    }

    fn raw_string(&mut self, start: usize) -> Token {
        let mut j = start + 1;
        let mut s = String::new();
        loop {
            match self.peek_at(j) {
                None => {
                    self.i = j;
                    return self.error("literal not terminated", start, true);
                }
                Some('`') => {
                    self.i = j + 1;
                    return self.token(Tok::Str(s), start, true);
                }
                Some(c) => {
                    s.push(c);
                    j += 1;
                }
            }
        }
    }
}
