//! The PromQL lexer: turns a query into tokens the way Prometheus' lexer does, including its
//! error texts (`unclosed left parenthesis`, `unexpected character inside braces: '$'`, ...).
//! Lexing stops at the first error, which becomes the last token.

use crate::ast::{AggregateOp, BinaryOp};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Eof,
    Error(String),
    Number,
    Duration,
    Str,
    Ident,
    MetricIdent,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    /// `=` (label matching).
    Eql,
    EqlRegex,
    NeqRegex,
    /// Binary operators, including `!=` (also a label matcher) and the word operators.
    Op(BinaryOp),
    At,
    Agg(AggregateOp),
    Offset,
    By,
    Without,
    On,
    Ignoring,
    GroupLeft,
    GroupRight,
    Bool,
    Start,
    End,
}

#[derive(Debug, Clone)]
pub(crate) struct Token<'a> {
    pub tok: Tok,
    /// Byte offset of the token's start.
    pub pos: usize,
    pub text: &'a str,
}

impl Token<'_> {
    /// Prometheus' description of the token in "unexpected ..." messages.
    pub fn desc(&self) -> String {
        let t = self.text;
        match &self.tok {
            Tok::Eof => "end of input".to_string(),
            Tok::Error(m) => m.clone(),
            Tok::Ident => format!("identifier {}", go_quote(t)),
            Tok::MetricIdent => format!("metric identifier {}", go_quote(t)),
            Tok::Number => format!("number {}", short_quote(t)),
            Tok::Duration => format!("duration {}", short_quote(t)),
            Tok::Str => format!("string {}", short_quote(t)),
            Tok::Op(_) | Tok::At | Tok::EqlRegex | Tok::NeqRegex => format!("<op:{t}>"),
            Tok::Agg(_) => format!("<aggr:{t}>"),
            Tok::Offset
            | Tok::By
            | Tok::Without
            | Tok::On
            | Tok::Ignoring
            | Tok::GroupLeft
            | Tok::GroupRight
            | Tok::Bool => format!("<{t}>"),
            _ => go_quote(t),
        }
    }
}

/// Go's `%q` of a string, shortened like `%.10q...` when longer than 10 bytes.
fn short_quote(s: &str) -> String {
    if s.len() > 10 {
        let head: String = s.chars().take(10).collect();
        format!("{}...", go_quote(&head))
    } else {
        go_quote(s)
    }
}

fn is_go_print(c: char) -> bool {
    !c.is_control() && !matches!(c, '\u{ad}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
}

fn escape_char_into(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if is_go_print(c) => out.push(c),
        c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// Go's `strconv.Quote`: a double-quoted string with Go escapes.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_char_into(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `%q` of a rune: `'x'`.
pub(crate) fn go_quote_rune(c: char) -> String {
    let mut out = String::from("'");
    escape_char_into(&mut out, c, '\'');
    out.push('\'');
    out
}

/// Go's `%#U` of a rune: `U+0071 'q'`.
fn go_unicode(c: char) -> String {
    if is_go_print(c) {
        format!("U+{:04X} '{}'", c as u32, c)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

fn keyword(word: &str) -> Option<Tok> {
    let lower = word.to_ascii_lowercase();
    Some(match lower.as_str() {
        "and" => Tok::Op(BinaryOp::And),
        "or" => Tok::Op(BinaryOp::Or),
        "unless" => Tok::Op(BinaryOp::Unless),
        "atan2" => Tok::Op(BinaryOp::Atan2),
        "sum" => Tok::Agg(AggregateOp::Sum),
        "avg" => Tok::Agg(AggregateOp::Avg),
        "count" => Tok::Agg(AggregateOp::Count),
        "min" => Tok::Agg(AggregateOp::Min),
        "max" => Tok::Agg(AggregateOp::Max),
        "group" => Tok::Agg(AggregateOp::Group),
        "stddev" => Tok::Agg(AggregateOp::Stddev),
        "stdvar" => Tok::Agg(AggregateOp::Stdvar),
        "topk" => Tok::Agg(AggregateOp::TopK),
        "bottomk" => Tok::Agg(AggregateOp::BottomK),
        "count_values" => Tok::Agg(AggregateOp::CountValues),
        "quantile" => Tok::Agg(AggregateOp::Quantile),
        "limitk" => Tok::Agg(AggregateOp::LimitK),
        "limit_ratio" => Tok::Agg(AggregateOp::LimitRatio),
        "offset" => Tok::Offset,
        "by" => Tok::By,
        "without" => Tok::Without,
        "on" => Tok::On,
        "ignoring" => Tok::Ignoring,
        "group_left" => Tok::GroupLeft,
        "group_right" => Tok::GroupRight,
        "bool" => Tok::Bool,
        "start" => Tok::Start,
        "end" => Tok::End,
        "inf" | "nan" => Tok::Number,
        _ => return None,
    })
}

pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_alpha(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_alnum(c: char) -> bool {
    is_alpha(c) || c.is_ascii_digit()
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    paren_depth: i64,
    brace_open: bool,
    bracket_open: bool,
    got_colon: bool,
    got_duration: bool,
    out: Vec<Token<'a>>,
}

/// Lexes the whole input. The last token is `Eof` or `Error`; comments are dropped.
pub(crate) fn lex(input: &str) -> Vec<Token<'_>> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        paren_depth: 0,
        brace_open: false,
        bracket_open: false,
        got_colon: false,
        got_duration: false,
        out: Vec::new(),
    };
    loop {
        let done = if l.brace_open {
            l.inside_braces()
        } else if l.bracket_open {
            l.inside_brackets()
        } else {
            l.statements()
        };
        if done {
            break;
        }
    }
    l.out
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn emit(&mut self, tok: Tok) {
        self.out.push(Token {
            tok,
            pos: self.start,
            text: &self.input[self.start..self.pos],
        });
        self.start = self.pos;
    }

    /// Emits an error token; always returns `true` (lexing is over).
    fn error(&mut self, msg: String) -> bool {
        self.out.push(Token {
            tok: Tok::Error(msg),
            pos: self.start,
            text: "",
        });
        true
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.next();
        }
        self.start = self.pos;
    }

    fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' || c == '\r' {
                break;
            }
            self.next();
        }
        self.start = self.pos;
    }

    /// One step outside braces and brackets. Returns `true` when lexing is over.
    fn statements(&mut self) -> bool {
        if self.input[self.pos..].starts_with('#') {
            self.skip_comment();
            return false;
        }
        let Some(c) = self.next() else {
            if self.paren_depth != 0 {
                return self.error("unclosed left parenthesis".into());
            }
            self.emit(Tok::Eof);
            return true;
        };
        match c {
            ',' => self.emit(Tok::Comma),
            c if is_space(c) => self.skip_spaces(),
            '*' => self.emit(Tok::Op(BinaryOp::Mul)),
            '/' => self.emit(Tok::Op(BinaryOp::Div)),
            '%' => self.emit(Tok::Op(BinaryOp::Mod)),
            '+' => self.emit(Tok::Op(BinaryOp::Add)),
            '-' => self.emit(Tok::Op(BinaryOp::Sub)),
            '^' => self.emit(Tok::Op(BinaryOp::Pow)),
            '=' => match self.peek() {
                Some('=') => {
                    self.next();
                    self.emit(Tok::Op(BinaryOp::Eq));
                }
                Some('~') => {
                    return self.error("unexpected character after '=': '~'".into());
                }
                _ => self.emit(Tok::Eql),
            },
            '!' => match self.next() {
                Some('=') => self.emit(Tok::Op(BinaryOp::Ne)),
                other => {
                    let q = other
                        .map(go_quote_rune)
                        .unwrap_or_else(|| "%!q(int32=-1)".into());
                    return self.error(format!("unexpected character after '!': {q}"));
                }
            },
            '<' => {
                if self.accept("=") {
                    self.emit(Tok::Op(BinaryOp::Le));
                } else {
                    self.emit(Tok::Op(BinaryOp::Lt));
                }
            }
            '>' => {
                if self.accept("=") {
                    self.emit(Tok::Op(BinaryOp::Ge));
                } else {
                    self.emit(Tok::Op(BinaryOp::Gt));
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && self.peek().is_some_and(|d| d.is_ascii_digit())) =>
            {
                self.pos = self.start;
                return self.number_or_duration();
            }
            '"' | '\'' => return self.string(c),
            '`' => return self.raw_string(),
            c if is_alpha(c) || c == ':' => {
                while self.peek().is_some_and(|c| is_alnum(c) || c == ':') {
                    self.next();
                }
                let word = &self.input[self.start..self.pos];
                match keyword(word) {
                    Some(t) => self.emit(t),
                    None if word.contains(':') => self.emit(Tok::MetricIdent),
                    None => self.emit(Tok::Ident),
                }
            }
            '(' => {
                self.emit(Tok::LParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.emit(Tok::RParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    // Prometheus' lexer replaces the `)` by the error.
                    self.out.pop();
                    return self.error("unexpected right parenthesis ')'".into());
                }
            }
            '{' => {
                self.emit(Tok::LBrace);
                self.brace_open = true;
            }
            '[' => {
                self.got_colon = false;
                self.emit(Tok::LBracket);
                self.skip_spaces();
                self.bracket_open = true;
            }
            ']' => return self.error("unexpected right bracket ']'".into()),
            '@' => self.emit(Tok::At),
            c => return self.error(format!("unexpected character: {}", go_quote_rune(c))),
        }
        false
    }

    /// One step inside `{...}`.
    fn inside_braces(&mut self) -> bool {
        if self.input[self.pos..].starts_with('#') {
            self.skip_comment();
            return false;
        }
        let Some(c) = self.next() else {
            return self.error("unexpected end of input inside braces".into());
        };
        match c {
            c if is_space(c) => self.skip_spaces(),
            c if is_alpha(c) => {
                while self.peek().is_some_and(is_alnum) {
                    self.next();
                }
                self.emit(Tok::Ident);
            }
            ',' => self.emit(Tok::Comma),
            '"' | '\'' => return self.string(c),
            '`' => return self.raw_string(),
            '=' => {
                if self.accept("~") {
                    self.emit(Tok::EqlRegex);
                } else {
                    self.emit(Tok::Eql);
                }
            }
            '!' => match self.next() {
                Some('~') => self.emit(Tok::NeqRegex),
                Some('=') => self.emit(Tok::Op(BinaryOp::Ne)),
                other => {
                    let q = other
                        .map(go_quote_rune)
                        .unwrap_or_else(|| "%!q(int32=-1)".into());
                    return self
                        .error(format!("unexpected character after '!' inside braces: {q}"));
                }
            },
            '{' => return self.error("unexpected left brace '{'".into()),
            '}' => {
                self.emit(Tok::RBrace);
                self.brace_open = false;
            }
            c => {
                return self.error(format!(
                    "unexpected character inside braces: {}",
                    go_quote_rune(c)
                ))
            }
        }
        false
    }

    /// One step inside `[...]` (Prometheus 3 lexes duration expressions here).
    fn inside_brackets(&mut self) -> bool {
        let Some(c) = self.next() else {
            // After a duration (`foo[5m`) the bracket is simply unclosed; only an empty
            // bracket (`foo[`) is an unfinished duration expression.
            let message = if self.got_duration {
                "unclosed left bracket"
            } else {
                "unexpected end of input in duration expression"
            };
            return self.error(message.into());
        };
        match c {
            ']' => {
                self.emit(Tok::RBracket);
                self.bracket_open = false;
                self.got_colon = false;
            }
            ':' => {
                self.emit(Tok::Colon);
                if !self.got_duration {
                    return self
                        .error("unexpected colon before duration in duration expression".into());
                }
                if self.got_colon {
                    return self.error("unexpected repeated colon in duration expression".into());
                }
                self.got_colon = true;
            }
            '(' => {
                self.emit(Tok::LParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.emit(Tok::RParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    // Prometheus' lexer replaces the `)` by the error.
                    self.out.pop();
                    return self.error("unexpected right parenthesis ')'".into());
                }
            }
            c if is_space(c) => self.skip_spaces(),
            '+' => self.emit(Tok::Op(BinaryOp::Add)),
            '-' => self.emit(Tok::Op(BinaryOp::Sub)),
            '*' => self.emit(Tok::Op(BinaryOp::Mul)),
            '/' => self.emit(Tok::Op(BinaryOp::Div)),
            '%' => self.emit(Tok::Op(BinaryOp::Mod)),
            '^' => self.emit(Tok::Op(BinaryOp::Pow)),
            ',' => self.emit(Tok::Comma),
            's' | 'S' | 'm' | 'M' | 'r' | 'R' => {
                while self.peek().is_some_and(is_alpha) {
                    self.next();
                }
                let word = self.input[self.start..self.pos].to_ascii_lowercase();
                match word.as_str() {
                    "step" | "range" => self.emit(Tok::Ident),
                    "min" => self.emit(Tok::Agg(AggregateOp::Min)),
                    "max" => self.emit(Tok::Agg(AggregateOp::Max)),
                    _ => {
                        return self.error(format!(
                            "unexpected character in duration expression: {}",
                            go_quote_rune(c)
                        ))
                    }
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && self.peek().is_some_and(|d| d.is_ascii_digit())) =>
            {
                self.pos = self.start;
                self.got_duration = true;
                return self.number_or_duration();
            }
            c => {
                return self.error(format!(
                    "unexpected character in duration expression: {}",
                    go_quote_rune(c)
                ))
            }
        }
        false
    }

    fn number_or_duration(&mut self) -> bool {
        if self.scan_number() {
            self.emit(Tok::Number);
            return false;
        }
        if self.accept_remaining_duration() {
            self.emit(Tok::Duration);
            return false;
        }
        let text = go_quote(&self.input[self.start..self.pos]);
        self.error(format!("bad number or duration syntax: {text}"))
    }

    fn accept_remaining_duration(&mut self) -> bool {
        if !self.accept("smhdwy") {
            return false;
        }
        self.accept("s");
        while self.accept("0123456789") {
            while self.accept("0123456789") {}
            if !self.accept("smhdw") {
                return false;
            }
            self.accept("s");
        }
        match self.peek() {
            Some(c) if is_alnum(c) => {
                self.next();
                false
            }
            _ => true,
        }
    }

    /// Prometheus' `scanNumber`: decimal, hex, octal or float, with `_` separators.
    fn scan_number(&mut self) -> bool {
        let initial = self.pos;
        let mut digits = "0123456789";
        if self.accept("0") && self.accept("xX") {
            self.accept("_");
            digits = "0123456789abcdefABCDEF";
        }
        let hex = digits.len() > 10;
        self.accept(".");
        self.accept(digits);
        let mut dot = false;
        let mut exp = false;
        while let Some(c) = self.peek() {
            let in_set = digits.contains(c) || c == '.' || c == '_' || c == 'e' || c == 'E';
            if !in_set {
                break;
            }
            if c == '.' {
                if dot {
                    self.next();
                    return false;
                }
                self.next();
                dot = true;
                if self.accept("_.") {
                    return false;
                }
                if hex {
                    return false;
                }
                continue;
            }
            if (c == 'e' || c == 'E') && !hex {
                if exp {
                    self.next();
                    return false;
                }
                self.next();
                exp = true;
                self.accept("+-");
                if self.accept("._eE") || self.peek().is_none() {
                    return false;
                }
                continue;
            }
            if c == '_' {
                self.next();
                if self.accept("._eE") || self.peek().is_none() {
                    return false;
                }
                continue;
            }
            while self.peek().is_some_and(|c| digits.contains(c)) {
                self.next();
            }
        }
        if self.pos == initial {
            return false;
        }
        !self.peek().is_some_and(is_alnum)
    }

    fn string(&mut self, quote: char) -> bool {
        loop {
            match self.next() {
                None | Some('\n') => return self.error("unterminated quoted string".into()),
                Some('\\') => {
                    if let Err(msg) = self.escape(quote) {
                        return self.error(msg);
                    }
                }
                Some(c) if c == quote => break,
                Some(_) => {}
            }
        }
        self.emit(Tok::Str);
        false
    }

    fn escape(&mut self, quote: char) -> Result<(), String> {
        let Some(ch) = self.next() else {
            return Err("escape sequence not terminated".into());
        };
        let (n, base, max): (u32, u32, u32) = match ch {
            'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' => return Ok(()),
            c if c == quote => return Ok(()),
            '0'..='7' => {
                self.pos -= 1;
                (3, 8, 255)
            }
            'x' => (2, 16, 255),
            'u' => (4, 16, 0x10ffff),
            'U' => (8, 16, 0x10ffff),
            c => return Err(format!("unknown escape sequence {}", go_unicode(c))),
        };
        let mut x: u32 = 0;
        for _ in 0..n {
            let Some(c) = self.next() else {
                return Err("escape sequence not terminated".into());
            };
            let d = c.to_digit(16).unwrap_or(16);
            if d >= base {
                return Err(format!(
                    "illegal character {} in escape sequence",
                    go_unicode(c)
                ));
            }
            x = x.saturating_mul(base).saturating_add(d);
        }
        if x > max || (0xd800..0xe000).contains(&x) {
            return Err("escape sequence is an invalid Unicode code point".into());
        }
        Ok(())
    }

    fn raw_string(&mut self) -> bool {
        loop {
            match self.next() {
                None => return self.error("unterminated raw string".into()),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(Tok::Str);
        false
    }
}

/// Decodes a string token (with its quotes) into its value, as Prometheus' `strutil.Unquote`.
/// Octal and `\x` escapes that do not form valid UTF-8 are replaced by U+FFFD.
pub(crate) fn unquote(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let quote = chars.next().ok_or("invalid syntax")?;
    if s.len() < 2 || !s.ends_with(quote) {
        return Err("invalid syntax".into());
    }
    let body = &s[quote.len_utf8()..s.len() - quote.len_utf8()];
    if quote == '`' {
        if body.contains('`') {
            return Err("invalid syntax".into());
        }
        return Ok(body.to_string());
    }
    if quote != '"' && quote != '\'' {
        return Err("invalid syntax".into());
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut it = body.chars().peekable();
    while let Some(c) = it.next() {
        if c == quote || c == '\n' {
            return Err("invalid syntax".into());
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = it.next().ok_or("invalid syntax")?;
        let simple = match e {
            'a' => Some(7u8),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            '\'' | '"' if e == quote => Some(e as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let (n, base, byte) = match e {
            '0'..='7' => (2, 8, true),
            'x' => (2, 16, true),
            'u' => (4, 16, false),
            'U' => (8, 16, false),
            _ => return Err("invalid syntax".into()),
        };
        let mut v: u32 = if base == 8 { e as u32 - '0' as u32 } else { 0 };
        for _ in 0..n {
            let d = it
                .next()
                .and_then(|c| c.to_digit(base))
                .ok_or("invalid syntax")?;
            v = v.saturating_mul(base).saturating_add(d);
        }
        if byte {
            let b = u8::try_from(v).map_err(|_| "invalid syntax")?;
            out.push(b);
        } else {
            let c = char::from_u32(v).ok_or("invalid syntax")?;
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Ok(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(q: &str) -> Vec<Tok> {
        lex(q).into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers_and_durations() {
        for (q, t) in [
            ("1", Tok::Number),
            ("0x1F", Tok::Number),
            ("1e-3", Tok::Number),
            (".5", Tok::Number),
            ("5.", Tok::Number),
            ("1_000", Tok::Number),
            ("Inf", Tok::Number),
            ("nAn", Tok::Number),
            ("5m", Tok::Duration),
            ("1h30m", Tok::Duration),
            ("5ms", Tok::Duration),
            ("1y2w3d4h5m6s7ms", Tok::Duration),
        ] {
            assert_eq!(kinds(q), vec![t, Tok::Eof], "{q}");
        }
        assert_eq!(
            kinds("2.5."),
            vec![Tok::Error("bad number or duration syntax: \"2.5.\"".into())]
        );
        assert_eq!(
            kinds("0deadbeef"),
            vec![Tok::Error("bad number or duration syntax: \"0de\"".into())]
        );
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(unquote(r#""a\nb\x41\u00e9\101""#).unwrap(), "a\nbAéA");
        assert_eq!(unquote(r"'it\'s'").unwrap(), "it's");
        assert_eq!(unquote("`raw\\n`").unwrap(), "raw\\n");
        assert_eq!(
            kinds(r#""\q""#),
            vec![Tok::Error("unknown escape sequence U+0071 'q'".into())]
        );
        assert_eq!(
            kinds("\"abc"),
            vec![Tok::Error("unterminated quoted string".into())]
        );
        assert_eq!(
            kinds("`abc"),
            vec![Tok::Error("unterminated raw string".into())]
        );
    }

    #[test]
    fn braces_and_keywords() {
        assert_eq!(
            kinds("sum BY (x) {a!~\"b\", or=\"c\"} # hi"),
            vec![
                Tok::Agg(AggregateOp::Sum),
                Tok::By,
                Tok::LParen,
                Tok::Ident,
                Tok::RParen,
                Tok::LBrace,
                Tok::Ident,
                Tok::NeqRegex,
                Tok::Str,
                Tok::Comma,
                Tok::Ident,
                Tok::Eql,
                Tok::Str,
                Tok::RBrace,
                Tok::Eof
            ]
        );
        assert_eq!(kinds("foo:bar"), vec![Tok::MetricIdent, Tok::Eof]);
        assert_eq!(
            kinds("{a$}").last(),
            Some(&Tok::Error(
                "unexpected character inside braces: '$'".into()
            ))
        );
        assert_eq!(
            kinds("((1)").last(),
            Some(&Tok::Error("unclosed left parenthesis".into()))
        );
    }
}
