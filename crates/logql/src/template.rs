//! Go `text/template` for LogQL's `line_format` and `label_format`, with Loki's function map
//! (Sprig subset plus Loki's own functions) and Go's output formatting (`fmt`, `strconv`, `time`).
//!
//! Semantics follow Loki: the data is the line's label map (`map[string]string`) executed with
//! `missingkey=zero`, so a missing label renders as the empty string; `__line__` and
//! `__timestamp__` are functions. Runtime errors carry Go's wording
//! (`template: line:1:8: executing "line" at <.nope.nope>: can't evaluate field nope in type string`).
//!
//! Not supported: `define`/`template`/`block`, the `call` builtin, complex numbers, methods other
//! than a few on `time.Time`, and time zones other than UTC/fixed offsets (the process `Local`
//! zone is taken to be UTC, as in Loki's container images).

use std::borrow::Cow;
use std::fmt::{self, Display, Write as _};
use std::rc::Rc;

use regex::Regex;

use crate::labels::{LabelsBuilder, ERROR_DETAILS_LABEL, ERROR_LABEL};

/// A template that failed to parse; the text is Go's (`template: line:1: function "x" not defined`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// A parsed template, ready to render lines.
#[derive(Debug, Clone)]
pub struct Template {
    name: &'static str,
    src: String,
    root: Vec<Node>,
    /// `{{.name}}` alone: Loki copies the label straight through (without the error labels).
    simple_key: Option<String>,
    /// Regexes given as literals to the regex functions, compiled once.
    regexes: Vec<(String, Result<Regex, String>)>,
}

impl Template {
    /// Parses a `line_format` template (Go template name `line`).
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        Self::parse_named("line", src, true)
    }

    /// Parses a `label_format` template (Go template name `label`, as in Loki's error details).
    pub fn parse_label(src: &str) -> Result<Template, TemplateError> {
        Self::parse_named("label", src, false)
    }

    fn parse_named(
        name: &'static str,
        src: &str,
        fast_path: bool,
    ) -> Result<Template, TemplateError> {
        let items = lex(src).map_err(|(pos, msg)| {
            TemplateError(format!("template: {name}:{}: {msg}", line_of(src, pos)))
        })?;
        let mut p = Parser {
            src,
            name,
            items,
            i: 0,
            vars: vec!["$".to_string()],
            range_depth: 0,
        };
        let root = p.parse_top()?;
        let mut simple_key = None;
        if fast_path && root.len() == 1 {
            if let Node::Action(pipe) = &root[0] {
                if pipe.cmds.len() == 1 && pipe.cmds[0].args.len() == 1 {
                    if let ArgKind::Field(ids) = &pipe.cmds[0].args[0].kind {
                        if ids.len() == 1 {
                            simple_key = Some(ids[0].clone());
                        }
                    }
                }
            }
        }
        let mut patterns = Vec::new();
        collect_regex_literals(&root, &mut patterns);
        let regexes = patterns
            .into_iter()
            .map(|p| {
                let r = go_regex(&p);
                (p, r)
            })
            .collect();
        Ok(Template {
            name,
            src: src.to_string(),
            root,
            simple_key,
            regexes,
        })
    }

    /// Renders with the line's labels as the data, appending to `out`. On a runtime error
    /// nothing is appended and the error's details (Go's wording) are returned.
    pub fn render(
        &self,
        labels: &LabelsBuilder,
        line: &str,
        timestamp_ns: i64,
        out: &mut String,
    ) -> Result<(), String> {
        if let Some(k) = &self.simple_key {
            // Loki's fast path reads the label directly; the error labels are not visible there.
            if k != ERROR_LABEL && k != ERROR_DETAILS_LABEL {
                if let Some(v) = labels.get(k) {
                    out.push_str(v);
                }
            }
            return Ok(());
        }
        let start = out.len();
        let mut ex = Exec {
            t: self,
            lb: labels,
            line,
            ts: timestamp_ns,
            vars: vec![("$", Value::Labels)],
        };
        match ex.walk(&Value::Labels, &self.root, out) {
            Ok(_) => Ok(()),
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Label names the template reads through field access (`.name`), in order of appearance.
    pub fn referenced_labels(&self) -> Vec<String> {
        let mut out = Vec::new();
        fields_in_nodes(&self.root, &mut out);
        let mut seen = std::collections::HashSet::new();
        out.retain(|n| seen.insert(n.clone()));
        out
    }
}

fn line_of(src: &str, pos: usize) -> usize {
    1 + memchr::memchr_iter(b'\n', &src.as_bytes()[..pos.min(src.len())]).count()
}

// ---------------------------------------------------------------------------------------------
// AST

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
struct Branch {
    pipe: Pipe,
    list: Vec<Node>,
    else_list: Vec<Node>,
}

#[derive(Debug, Clone)]
struct Pipe {
    pos: usize,
    is_assign: bool,
    decl: Vec<String>,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
struct Cmd {
    pos: usize,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
struct Arg {
    pos: usize,
    kind: ArgKind,
}

#[derive(Debug, Clone)]
enum ArgKind {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Dot,
    Nil,
    Bool(bool),
    Num(Num),
    Str { quoted: String, val: String },
    Func(Func),
    Pipe(Box<Pipe>),
    Chain(Box<Arg>, Vec<String>),
}

#[derive(Debug, Clone)]
struct Num {
    text: String,
    int: Option<i64>,
    float: Option<f64>,
    is_char: bool,
}

impl Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ArgKind::Field(ids) => {
                for id in ids {
                    write!(f, ".{id}")?;
                }
                Ok(())
            }
            ArgKind::Var(name, ids) => {
                f.write_str(name)?;
                for id in ids {
                    write!(f, ".{id}")?;
                }
                Ok(())
            }
            ArgKind::Dot => f.write_str("."),
            ArgKind::Nil => f.write_str("nil"),
            ArgKind::Bool(b) => write!(f, "{b}"),
            ArgKind::Num(n) => f.write_str(&n.text),
            ArgKind::Str { quoted, .. } => f.write_str(quoted),
            ArgKind::Func(func) => f.write_str(func.name()),
            ArgKind::Pipe(p) => write!(f, "{p}"),
            ArgKind::Chain(node, fields) => {
                if let ArgKind::Pipe(p) = &node.kind {
                    write!(f, "({p})")?;
                } else {
                    write!(f, "{node}")?;
                }
                for id in fields {
                    write!(f, ".{id}")?;
                }
                Ok(())
            }
        }
    }
}

impl Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if let ArgKind::Pipe(p) = &a.kind {
                write!(f, "({p})")?;
            } else {
                write!(f, "{a}")?;
            }
        }
        Ok(())
    }
}

impl Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

fn fields_in_nodes(nodes: &[Node], out: &mut Vec<String>) {
    for n in nodes {
        match n {
            Node::Action(p) => fields_in_pipe(p, out),
            Node::If(b) | Node::With(b) | Node::Range(b) => {
                fields_in_pipe(&b.pipe, out);
                fields_in_nodes(&b.list, out);
                fields_in_nodes(&b.else_list, out);
            }
            _ => {}
        }
    }
}

fn fields_in_pipe(p: &Pipe, out: &mut Vec<String>) {
    for c in &p.cmds {
        for a in &c.args {
            match &a.kind {
                ArgKind::Field(ids) => out.extend(ids.iter().cloned()),
                ArgKind::Pipe(p) => fields_in_pipe(p, out),
                _ => {}
            }
        }
    }
}

fn collect_regex_literals(nodes: &[Node], out: &mut Vec<String>) {
    fn pipe(p: &Pipe, out: &mut Vec<String>) {
        for c in &p.cmds {
            if let Some(Arg {
                kind: ArgKind::Func(f),
                ..
            }) = c.args.first()
            {
                if matches!(
                    f,
                    Func::RegexReplaceAll | Func::RegexReplaceAllLiteral | Func::Count
                ) {
                    if let Some(Arg {
                        kind: ArgKind::Str { val, .. },
                        ..
                    }) = c.args.get(1)
                    {
                        if !out.contains(val) {
                            out.push(val.clone());
                        }
                    }
                }
            }
            for a in &c.args {
                match &a.kind {
                    ArgKind::Pipe(p) => pipe(p, out),
                    ArgKind::Chain(n, _) => {
                        if let ArgKind::Pipe(p) = &n.kind {
                            pipe(p, out)
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    for n in nodes {
        match n {
            Node::Action(p) => pipe(p, out),
            Node::If(b) | Node::With(b) | Node::Range(b) => {
                pipe(&b.pipe, out);
                collect_regex_literals(&b.list, out);
                collect_regex_literals(&b.else_list, out);
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Char(char),
    Str(String),
    RawStr(String),
    CharConst(String),
    Number(String),
    Bool(bool),
    Nil,
    Dot,
    Field(String),
    Variable(String),
    Ident(String),
    Kw(Kw),
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kw {
    If,
    Else,
    End,
    Range,
    With,
    Break,
    Continue,
    Define,
    Template,
    Block,
}

impl Kw {
    fn name(self) -> &'static str {
        match self {
            Kw::If => "if",
            Kw::Else => "else",
            Kw::End => "end",
            Kw::Range => "range",
            Kw::With => "with",
            Kw::Break => "break",
            Kw::Continue => "continue",
            Kw::Define => "define",
            Kw::Template => "template",
            Kw::Block => "block",
        }
    }
}

/// Go's `item.String()` for parse error messages.
fn tok_desc(t: &Tok) -> String {
    let q = |s: &str| {
        if s.chars().count() > 10 {
            let head: String = s.chars().take(10).collect();
            format!("{}...", go_quote(&head, false))
        } else {
            go_quote(s, false)
        }
    };
    match t {
        Tok::Eof => "EOF".into(),
        Tok::Kw(k) => format!("<{}>", k.name()),
        Tok::Text(s)
        | Tok::Str(s)
        | Tok::RawStr(s)
        | Tok::CharConst(s)
        | Tok::Number(s)
        | Tok::Variable(s)
        | Tok::Ident(s) => q(s),
        Tok::Field(s) => q(&format!(".{s}")),
        Tok::LeftDelim => q("{{"),
        Tok::RightDelim => q("}}"),
        Tok::Space => q(" "),
        Tok::Pipe => q("|"),
        Tok::LParen => q("("),
        Tok::RParen => q(")"),
        Tok::Declare => q(":="),
        Tok::Assign => q("="),
        Tok::Comma => q(","),
        Tok::Char(c) => q(&c.to_string()),
        Tok::Bool(b) => q(if *b { "true" } else { "false" }),
        Tok::Nil => q("nil"),
        Tok::Dot => q("."),
    }
}

struct Item {
    tok: Tok,
    pos: usize,
}

fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_space_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// `(at a right delimiter, with a trim marker)`.
fn at_right_delim(b: &[u8], p: usize) -> (bool, bool) {
    if b.len() >= p + 4 && is_space_byte(b[p]) && b[p + 1] == b'-' && &b[p + 2..p + 4] == b"}}" {
        return (true, true);
    }
    (b.len() >= p + 2 && &b[p..p + 2] == b"}}", false)
}

fn char_at(s: &str, p: usize) -> Option<char> {
    s.get(p..).and_then(|r| r.chars().next())
}

fn go_hash_u(c: char) -> String {
    format!("U+{:04X} '{}'", c as u32, c)
}

fn lex(src: &str) -> Result<Vec<Item>, (usize, String)> {
    let b = src.as_bytes();
    let mut items = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    loop {
        let start = memchr::memmem::find(&b[pos..], b"{{").map(|i| i + pos);
        let text_end = start.unwrap_or(b.len());
        let mut text = &src[pos..text_end];
        if trim_next {
            text = text.trim_start_matches(is_space_char);
        }
        let Some(start) = start else {
            if !text.is_empty() {
                items.push(Item {
                    tok: Tok::Text(text.to_string()),
                    pos,
                });
            }
            break;
        };
        let mut after = start + 2;
        if b.len() >= after + 2 && b[after] == b'-' && is_space_byte(b[after + 1]) {
            text = text.trim_end_matches(is_space_char);
            after += 2;
        }
        if !text.is_empty() {
            items.push(Item {
                tok: Tok::Text(text.to_string()),
                pos,
            });
        }
        if src[after..].starts_with("/*") {
            let Some(rel) = src[after + 2..].find("*/") else {
                return Err((start, "unclosed comment".into()));
            };
            let p = after + 2 + rel + 2;
            let (ok, trim) = at_right_delim(b, p);
            if !ok {
                return Err((p, "comment ends before closing delimiter".into()));
            }
            pos = p + if trim { 4 } else { 2 };
            trim_next = trim;
            continue;
        }
        items.push(Item {
            tok: Tok::LeftDelim,
            pos: start,
        });
        let mut p = after;
        let mut depth = 0i32;
        loop {
            let (ok, trim) = at_right_delim(b, p);
            if ok {
                if depth != 0 {
                    return Err((p, "unclosed left paren".into()));
                }
                let dpos = if trim { p + 2 } else { p };
                items.push(Item {
                    tok: Tok::RightDelim,
                    pos: dpos,
                });
                p = dpos + 2;
                trim_next = trim;
                break;
            }
            let Some(c) = char_at(src, p) else {
                return Err((p, "unclosed action".into()));
            };
            let s = p;
            let tok = match c {
                ' ' | '\t' | '\r' | '\n' => {
                    p += 1;
                    while p < b.len() && is_space_byte(b[p]) && !at_right_delim(b, p).1 {
                        p += 1;
                    }
                    Tok::Space
                }
                '=' => {
                    p += 1;
                    Tok::Assign
                }
                ':' => {
                    if b.get(p + 1) != Some(&b'=') {
                        return Err((p, "expected :=".into()));
                    }
                    p += 2;
                    Tok::Declare
                }
                '|' => {
                    p += 1;
                    Tok::Pipe
                }
                '"' | '\'' => {
                    let quote = c as u8;
                    let mut q = p + 1;
                    loop {
                        match b.get(q) {
                            Some(b'\\') if !matches!(b.get(q + 1), None | Some(b'\n')) => q += 2,
                            Some(&x) if x == quote => break,
                            None | Some(b'\n') | Some(b'\\') => {
                                return Err((
                                    p,
                                    if quote == b'"' {
                                        "unterminated quoted string".into()
                                    } else {
                                        "unterminated character constant".into()
                                    },
                                ))
                            }
                            Some(_) => q += 1,
                        }
                    }
                    p = q + 1;
                    if quote == b'"' {
                        Tok::Str(src[s..p].to_string())
                    } else {
                        Tok::CharConst(src[s..p].to_string())
                    }
                }
                '`' => {
                    let Some(rel) = src[p + 1..].find('`') else {
                        return Err((p, "unterminated raw quoted string".into()));
                    };
                    p = p + 1 + rel + 1;
                    Tok::RawStr(src[s..p].to_string())
                }
                '$' | '.' => {
                    if c == '.' && matches!(b.get(p + 1), Some(b'0'..=b'9')) {
                        p = scan_number(src, p)?;
                        Tok::Number(src[s..p].to_string())
                    } else {
                        p += 1;
                        while let Some(ch) = char_at(src, p) {
                            if !is_alnum(ch) {
                                break;
                            }
                            p += ch.len_utf8();
                        }
                        if !at_terminator(src, p) {
                            let bad = char_at(src, p).unwrap_or(' ');
                            return Err((p, format!("bad character {}", go_hash_u(bad))));
                        }
                        if c == '$' {
                            Tok::Variable(src[s..p].to_string())
                        } else if p == s + 1 {
                            Tok::Dot
                        } else {
                            Tok::Field(src[s + 1..p].to_string())
                        }
                    }
                }
                '+' | '-' | '0'..='9' => {
                    p = scan_number(src, p)?;
                    Tok::Number(src[s..p].to_string())
                }
                '(' => {
                    p += 1;
                    depth += 1;
                    Tok::LParen
                }
                ')' => {
                    p += 1;
                    depth -= 1;
                    if depth < 0 {
                        return Err((s, "unexpected right paren".into()));
                    }
                    Tok::RParen
                }
                ',' => {
                    p += 1;
                    Tok::Comma
                }
                c if is_alnum(c) => {
                    while let Some(ch) = char_at(src, p) {
                        if !is_alnum(ch) {
                            break;
                        }
                        p += ch.len_utf8();
                    }
                    if !at_terminator(src, p) {
                        let bad = char_at(src, p).unwrap_or(' ');
                        return Err((p, format!("bad character {}", go_hash_u(bad))));
                    }
                    match &src[s..p] {
                        "if" => Tok::Kw(Kw::If),
                        "else" => Tok::Kw(Kw::Else),
                        "end" => Tok::Kw(Kw::End),
                        "range" => Tok::Kw(Kw::Range),
                        "with" => Tok::Kw(Kw::With),
                        "break" => Tok::Kw(Kw::Break),
                        "continue" => Tok::Kw(Kw::Continue),
                        "define" => Tok::Kw(Kw::Define),
                        "template" => Tok::Kw(Kw::Template),
                        "block" => Tok::Kw(Kw::Block),
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => Tok::Ident(w.to_string()),
                    }
                }
                c if c.is_ascii() && !c.is_ascii_control() => {
                    p += 1;
                    Tok::Char(c)
                }
                c => {
                    return Err((
                        p,
                        format!("unrecognized character in action: {}", go_hash_u(c)),
                    ))
                }
            };
            items.push(Item { tok, pos: s });
        }
        pos = p;
    }
    items.push(Item {
        tok: Tok::Eof,
        pos: b.len(),
    });
    Ok(items)
}

fn at_terminator(src: &str, p: usize) -> bool {
    match char_at(src, p) {
        None => true,
        Some(c) if is_space_char(c) => true,
        Some('.' | ',' | '|' | ':' | ')' | '(') => true,
        Some(_) => src[p..].starts_with("}}"),
    }
}

fn scan_number(src: &str, start: usize) -> Result<usize, (usize, String)> {
    let b = src.as_bytes();
    let mut p = start;
    let accept = |p: &mut usize, set: &[u8]| -> bool {
        if *p < b.len() && set.contains(&b[*p]) {
            *p += 1;
            true
        } else {
            false
        }
    };
    let run = |p: &mut usize, set: &[u8]| {
        while *p < b.len() && set.contains(&b[*p]) {
            *p += 1;
        }
    };
    accept(&mut p, b"+-");
    let mut digits: &[u8] = b"0123456789_";
    if accept(&mut p, b"0") {
        if accept(&mut p, b"xX") {
            digits = b"0123456789abcdefABCDEF_";
        } else if accept(&mut p, b"oO") {
            digits = b"01234567_";
        } else if accept(&mut p, b"bB") {
            digits = b"01_";
        }
    }
    run(&mut p, digits);
    if accept(&mut p, b".") {
        run(&mut p, digits);
    }
    if digits.len() == 11 && accept(&mut p, b"eE") {
        accept(&mut p, b"+-");
        run(&mut p, b"0123456789_");
    }
    if digits.len() == 23 && accept(&mut p, b"pP") {
        accept(&mut p, b"+-");
        run(&mut p, b"0123456789_");
    }
    accept(&mut p, b"i");
    if let Some(c) = char_at(src, p) {
        if is_alnum(c) {
            let end = p + c.len_utf8();
            return Err((
                start,
                format!("bad number syntax: {}", go_quote(&src[start..end], false)),
            ));
        }
    }
    Ok(p)
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser<'s> {
    src: &'s str,
    name: &'static str,
    items: Vec<Item>,
    i: usize,
    vars: Vec<String>,
    range_depth: usize,
}

enum Parsed {
    Node(Node),
    End(usize),
    Else(usize),
}

type PResult<T> = Result<T, TemplateError>;

impl Parser<'_> {
    fn err(&self, pos: usize, msg: impl Display) -> TemplateError {
        TemplateError(format!(
            "template: {}:{}: {}",
            self.name,
            line_of(self.src, pos),
            msg
        ))
    }

    fn item(&self, i: usize) -> (Tok, usize) {
        match self.items.get(i).or(self.items.last()) {
            Some(it) => (it.tok.clone(), it.pos),
            None => (Tok::Eof, 0),
        }
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.item(self.i);
        self.i += 1;
        t
    }

    fn backup(&mut self) {
        self.i = self.i.saturating_sub(1);
    }

    fn peek(&self) -> (Tok, usize) {
        self.item(self.i)
    }

    fn next_non_space(&mut self) -> (Tok, usize) {
        loop {
            let t = self.next();
            if t.0 != Tok::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> (Tok, usize) {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn unexpected(&self, t: &Tok, pos: usize, context: &str) -> TemplateError {
        self.err(pos, format!("unexpected {} in {}", tok_desc(t), context))
    }

    fn expect_right_delim(&mut self, context: &str) -> PResult<()> {
        let (t, pos) = self.next_non_space();
        if t != Tok::RightDelim {
            return Err(self.unexpected(&t, pos, context));
        }
        Ok(())
    }

    fn parse_top(&mut self) -> PResult<Vec<Node>> {
        let mut nodes = Vec::new();
        loop {
            if self.peek().0 == Tok::Eof {
                return Ok(nodes);
            }
            match self.text_or_action()? {
                Parsed::Node(n) => nodes.push(n),
                Parsed::End(pos) => return Err(self.err(pos, "unexpected {{end}}")),
                Parsed::Else(pos) => return Err(self.err(pos, "unexpected {{else}}")),
            }
        }
    }

    /// Nodes up to `{{end}}` or `{{else}}`; returns the terminator (`true` for else).
    fn item_list(&mut self) -> PResult<(Vec<Node>, Option<usize>)> {
        let mut nodes = Vec::new();
        loop {
            let (t, pos) = self.peek();
            if t == Tok::Eof {
                return Err(self.err(pos, "unexpected EOF"));
            }
            match self.text_or_action()? {
                Parsed::Node(n) => nodes.push(n),
                Parsed::End(_) => return Ok((nodes, None)),
                Parsed::Else(pos) => return Ok((nodes, Some(pos))),
            }
        }
    }

    fn text_or_action(&mut self) -> PResult<Parsed> {
        let (t, pos) = self.next_non_space();
        match t {
            Tok::Text(s) => Ok(Parsed::Node(Node::Text(s))),
            Tok::LeftDelim => self.action(),
            t => Err(self.unexpected(&t, pos, "input")),
        }
    }

    fn action(&mut self) -> PResult<Parsed> {
        let (t, pos) = self.next_non_space();
        match t {
            Tok::Kw(Kw::If) => Ok(Parsed::Node(Node::If(self.parse_control("if")?))),
            Tok::Kw(Kw::With) => Ok(Parsed::Node(Node::With(self.parse_control("with")?))),
            Tok::Kw(Kw::Range) => Ok(Parsed::Node(Node::Range(self.parse_control("range")?))),
            Tok::Kw(Kw::Else) => {
                let (p, _) = self.peek_non_space();
                if !matches!(p, Tok::Kw(Kw::If) | Tok::Kw(Kw::With)) {
                    self.expect_right_delim("else")?;
                }
                Ok(Parsed::Else(pos))
            }
            Tok::Kw(Kw::End) => {
                self.expect_right_delim("end")?;
                Ok(Parsed::End(pos))
            }
            Tok::Kw(k @ (Kw::Break | Kw::Continue)) => {
                if self.range_depth == 0 {
                    return Err(
                        self.err(pos, format!("{{{{{}}}}} outside {{{{range}}}}", k.name()))
                    );
                }
                self.expect_right_delim(&format!("{{{{{}}}}}", k.name()))?;
                Ok(Parsed::Node(if k == Kw::Break {
                    Node::Break
                } else {
                    Node::Continue
                }))
            }
            Tok::Kw(k) => Err(self.err(pos, format!("{{{{{}}}}} is not supported", k.name()))),
            _ => {
                self.backup();
                Ok(Parsed::Node(Node::Action(
                    self.pipeline("command", Tok::RightDelim)?,
                )))
            }
        }
    }

    fn parse_control(&mut self, context: &str) -> PResult<Branch> {
        let mark = self.vars.len();
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let listed = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, next) = listed?;
        let mut else_list = Vec::new();
        if next.is_some() {
            let (p, _) = self.peek_non_space();
            if (context == "if" && p == Tok::Kw(Kw::If))
                || (context == "with" && p == Tok::Kw(Kw::With))
            {
                self.next();
                let b = self.parse_control(context)?;
                else_list.push(if context == "if" {
                    Node::If(b)
                } else {
                    Node::With(b)
                });
            } else {
                let (l, n2) = self.item_list()?;
                if let Some(pos) = n2 {
                    return Err(self.err(pos, "expected end; found {{else}}"));
                }
                else_list = l;
            }
        }
        self.vars.truncate(mark);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> PResult<Pipe> {
        let (_, pos) = self.peek_non_space();
        let mut pipe = Pipe {
            pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        loop {
            let var_idx = self.i;
            let (t, _) = self.peek_non_space();
            let Tok::Variable(v) = t else { break };
            let var_idx2 = self.i;
            self.next();
            let (t2, pos2) = self.peek_non_space();
            match t2 {
                Tok::Assign | Tok::Declare => {
                    self.next();
                    pipe.is_assign = t2 == Tok::Assign;
                    pipe.decl.push(v.clone());
                    self.vars.push(v);
                    break;
                }
                Tok::Comma => {
                    self.next();
                    pipe.decl.push(v.clone());
                    self.vars.push(v);
                    if context == "range" && pipe.decl.len() < 2 {
                        let (t3, pos3) = self.peek_non_space();
                        match t3 {
                            Tok::Variable(_) | Tok::RightDelim | Tok::RParen => continue,
                            _ => return Err(self.err(pos3, "range can only initialize variables")),
                        }
                    }
                    return Err(self.err(pos2, format!("too many declarations in {context}")));
                }
                _ => {
                    let _ = var_idx;
                    self.i = var_idx2;
                    break;
                }
            }
        }
        loop {
            let (t, tpos) = self.next_non_space();
            if t == end {
                if pipe.cmds.is_empty() {
                    return Err(self.err(tpos, format!("missing value for {context}")));
                }
                for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                    if matches!(
                        c.args[0].kind,
                        ArgKind::Bool(_)
                            | ArgKind::Dot
                            | ArgKind::Nil
                            | ArgKind::Num(_)
                            | ArgKind::Str { .. }
                    ) {
                        return Err(self.err(
                            c.pos,
                            format!("non executable command in pipeline stage {}", i + 1),
                        ));
                    }
                }
                return Ok(pipe);
            }
            match t {
                Tok::Bool(_)
                | Tok::CharConst(_)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Nil
                | Tok::RawStr(_)
                | Tok::Str(_)
                | Tok::Variable(_)
                | Tok::LParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                t => return Err(self.unexpected(&t, tpos, context)),
            }
        }
    }

    fn command(&mut self) -> PResult<Cmd> {
        let (_, pos) = self.peek_non_space();
        let mut cmd = Cmd {
            pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let (t, tpos) = self.next();
            match t {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RParen => self.backup(),
                Tok::Pipe => {}
                t => return Err(self.unexpected(&t, tpos, "operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err(self.err(pos, "empty command"));
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        let (t, cpos) = self.peek();
        if !matches!(t, Tok::Field(_)) {
            return Ok(Some(node));
        }
        let mut fields = Vec::new();
        while let (Tok::Field(f), _) = self.peek() {
            self.next();
            fields.push(f);
        }
        let kind = match node.kind {
            ArgKind::Field(mut ids) => {
                ids.extend(fields);
                ArgKind::Field(ids)
            }
            ArgKind::Var(name, mut ids) => {
                ids.extend(fields);
                ArgKind::Var(name, ids)
            }
            ArgKind::Bool(_)
            | ArgKind::Str { .. }
            | ArgKind::Num(_)
            | ArgKind::Nil
            | ArgKind::Dot => {
                return Err(self.err(
                    cpos,
                    format!(
                        "unexpected . after term {}",
                        go_quote(&node.to_string(), false)
                    ),
                ))
            }
            _ => ArgKind::Chain(Box::new(node), fields),
        };
        Ok(Some(Arg { pos: cpos, kind }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let (t, pos) = self.next_non_space();
        let kind = match t {
            Tok::Ident(name) => match Func::lookup(&name) {
                Some(f) => ArgKind::Func(f),
                None => {
                    return Err(self.err(
                        pos,
                        format!("function {} not defined", go_quote(&name, false)),
                    ))
                }
            },
            Tok::Dot => ArgKind::Dot,
            Tok::Nil => ArgKind::Nil,
            Tok::Variable(v) => {
                if !self.vars.contains(&v) {
                    return Err(
                        self.err(pos, format!("undefined variable {}", go_quote(&v, false)))
                    );
                }
                ArgKind::Var(v, Vec::new())
            }
            Tok::Field(f) => ArgKind::Field(vec![f]),
            Tok::Bool(b) => ArgKind::Bool(b),
            Tok::Number(text) => {
                ArgKind::Num(new_number(&text, false).map_err(|e| self.err(pos, e))?)
            }
            Tok::CharConst(text) => {
                ArgKind::Num(new_number(&text, true).map_err(|e| self.err(pos, e))?)
            }
            Tok::LParen => {
                let p = self.pipeline("parenthesized pipeline", Tok::RParen)?;
                return Ok(Some(Arg {
                    pos: p.pos,
                    kind: ArgKind::Pipe(Box::new(p)),
                }));
            }
            Tok::Str(raw) | Tok::RawStr(raw) => {
                let val = go_unquote(&raw).map_err(|e| self.err(pos, e))?;
                ArgKind::Str { quoted: raw, val }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        };
        Ok(Some(Arg { pos, kind }))
    }
}

fn new_number(text: &str, is_char: bool) -> Result<Num, String> {
    if is_char {
        let s = go_unquote(text)?;
        let mut it = s.chars();
        let (Some(c), None) = (it.next(), it.next()) else {
            return Err(format!("malformed character constant: {text}"));
        };
        return Ok(Num {
            text: text.to_string(),
            int: Some(c as i64),
            float: Some(c as u32 as f64),
            is_char: true,
        });
    }
    if text.ends_with('i') {
        return Err("complex numbers are not supported".into());
    }
    let mut n = Num {
        text: text.to_string(),
        int: None,
        float: None,
        is_char: false,
    };
    if let Some(i) = go_parse_int(text) {
        n.int = Some(i);
        n.float = Some(i as f64);
    } else if let Some(u) = go_parse_uint(text) {
        n.float = Some(u as f64);
    } else if let Some(f) = go_parse_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {}", go_quote(text, false)));
        }
        n.float = Some(f);
        if f.fract() == 0.0 && f.abs() < 9.2e18 {
            n.int = Some(f as i64);
        }
    }
    if n.int.is_none() && n.float.is_none() {
        return Err(format!("illegal number syntax: {}", go_quote(text, false)));
    }
    Ok(n)
}

/// `strconv.ParseUint(s, 0, 64)` (no sign).
fn go_parse_uint(s0: &str) -> Option<u64> {
    let b = s0.as_bytes();
    if b.is_empty() {
        return None;
    }
    let (digits, base) =
        if b[0] == b'0' && b.len() >= 3 && matches!(b[1] | 0x20, b'b' | b'o' | b'x') {
            let base = match b[1] | 0x20 {
                b'b' => 2,
                b'o' => 8,
                _ => 16,
            };
            (&s0[2..], base)
        } else if b[0] == b'0' {
            (&s0[1..], 8)
        } else {
            (s0, 10)
        };
    let mut v: u64 = 0;
    let mut underscores = false;
    for c in digits.chars() {
        if c == '_' {
            underscores = true;
            continue;
        }
        let d = c.to_digit(base)? as u64;
        v = v.checked_mul(base as u64)?.checked_add(d)?;
    }
    if underscores && !underscore_ok(s0) {
        return None;
    }
    Some(v)
}

fn underscore_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1] | 0x20, b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1] | 0x20 == b'x';
    }
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_digit() || (hex && (b'a'..=b'f').contains(&(c | 0x20))) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// `strconv.ParseInt(s, 0, 64)`.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let u = go_parse_uint(rest)?;
    if neg {
        if u <= i64::MAX as u64 + 1 {
            Some((u as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else if u <= i64::MAX as u64 {
        Some(u as i64)
    } else {
        None
    }
}

/// `strconv.ParseFloat(s, 64)` (decimal forms, inf and nan).
fn go_parse_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches(['+', '-']);
    let lower = t.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return s.parse::<f64>().ok();
    }
    if t.is_empty()
        || !t
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// `strconv.Unquote` for `"..."`, `` `...` `` and `'.'`.
fn go_unquote(raw: &str) -> Result<String, String> {
    let bad = || "invalid syntax".to_string();
    if let Some(inner) = raw.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        return Ok(inner.replace('\r', ""));
    }
    let quote = raw.chars().next().ok_or_else(bad)?;
    if raw.len() < 2 || !raw.ends_with(quote) || !(quote == '"' || quote == '\'') {
        return Err(bad());
    }
    let inner = &raw[1..raw.len() - 1];
    let mut out: Vec<u8> = Vec::with_capacity(inner.len());
    let mut it = inner.char_indices().peekable();
    while let Some((_, c)) = it.next() {
        if c != '\\' {
            if c == quote && quote == '"' {
                return Err(bad());
            }
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some((_, e)) = it.next() else {
            return Err(bad());
        };
        let hex = |n: usize, it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
            let mut v: u32 = 0;
            for _ in 0..n {
                let d = it
                    .next()
                    .and_then(|(_, c)| c.to_digit(16))
                    .ok_or_else(bad)?;
                v = v * 16 + d;
            }
            Ok::<u32, String>(v)
        };
        match e {
            'a' => out.push(7),
            'b' => out.push(8),
            'f' => out.push(12),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(11),
            '\\' => out.push(b'\\'),
            '"' if quote == '"' => out.push(b'"'),
            '\'' if quote == '\'' => out.push(b'\''),
            'x' => {
                let v = hex(2, &mut it)?;
                out.push(v as u8);
            }
            'u' | 'U' => {
                let v = hex(if e == 'u' { 4 } else { 8 }, &mut it)?;
                let ch = char::from_u32(v).ok_or_else(bad)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = it.next().and_then(|(_, c)| c.to_digit(8)).ok_or_else(bad)?;
                    v = v * 8 + d;
                }
                if v > 255 {
                    return Err(bad());
                }
                out.push(v as u8);
            }
            _ => return Err(bad()),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

// ---------------------------------------------------------------------------------------------
// Functions

/// Go parameter types of the template functions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum P {
    S,
    I,
    F,
    A,
    T,
}

impl P {
    fn name(self) -> &'static str {
        match self {
            P::S => "string",
            P::I => "int",
            P::F => "float64",
            P::A => "interface {}",
            P::T => "time.Time",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Print,
    Printf,
    Println,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Html,
    Js,
    Urlquery,
    GoToLower,
    GoToUpper,
    GoReplace,
    GoTrim,
    GoTrimLeft,
    GoTrimRight,
    GoTrimPrefix,
    GoTrimSuffix,
    GoTrimSpace,
    RegexReplaceAll,
    RegexReplaceAllLiteral,
    Count,
    Urldecode,
    Urlencode,
    Bytes,
    Duration,
    DurationSeconds,
    UnixEpochMillis,
    UnixEpochNanos,
    ToDateInZone,
    UnixToTime,
    AlignLeft,
    AlignRight,
    B64enc,
    B64dec,
    Lower,
    Upper,
    Title,
    Trunc,
    Substr,
    Contains,
    HasPrefix,
    HasSuffix,
    Indent,
    Nindent,
    Replace,
    Repeat,
    Trim,
    TrimAll,
    TrimSuffix,
    TrimPrefix,
    Int,
    Float64,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Addf,
    Subf,
    Mulf,
    Divf,
    Max,
    Min,
    Maxf,
    Minf,
    Ceil,
    Floor,
    Round,
    FromJson,
    Date,
    ToDate,
    Now,
    UnixEpoch,
    Default,
    Line,
    Timestamp,
}

const FUNCS: &[(&str, Func)] = &[
    ("and", Func::And),
    ("or", Func::Or),
    ("not", Func::Not),
    ("len", Func::Len),
    ("index", Func::Index),
    ("slice", Func::Slice),
    ("print", Func::Print),
    ("printf", Func::Printf),
    ("println", Func::Println),
    ("eq", Func::Eq),
    ("ne", Func::Ne),
    ("lt", Func::Lt),
    ("le", Func::Le),
    ("gt", Func::Gt),
    ("ge", Func::Ge),
    ("html", Func::Html),
    ("js", Func::Js),
    ("urlquery", Func::Urlquery),
    ("ToLower", Func::GoToLower),
    ("ToUpper", Func::GoToUpper),
    ("Replace", Func::GoReplace),
    ("Trim", Func::GoTrim),
    ("TrimLeft", Func::GoTrimLeft),
    ("TrimRight", Func::GoTrimRight),
    ("TrimPrefix", Func::GoTrimPrefix),
    ("TrimSuffix", Func::GoTrimSuffix),
    ("TrimSpace", Func::GoTrimSpace),
    ("regexReplaceAll", Func::RegexReplaceAll),
    ("regexReplaceAllLiteral", Func::RegexReplaceAllLiteral),
    ("count", Func::Count),
    ("urldecode", Func::Urldecode),
    ("urlencode", Func::Urlencode),
    ("bytes", Func::Bytes),
    ("duration", Func::Duration),
    ("duration_seconds", Func::DurationSeconds),
    ("unixEpochMillis", Func::UnixEpochMillis),
    ("unixEpochNanos", Func::UnixEpochNanos),
    ("toDateInZone", Func::ToDateInZone),
    ("unixToTime", Func::UnixToTime),
    ("alignLeft", Func::AlignLeft),
    ("alignRight", Func::AlignRight),
    ("b64enc", Func::B64enc),
    ("b64dec", Func::B64dec),
    ("lower", Func::Lower),
    ("upper", Func::Upper),
    ("title", Func::Title),
    ("trunc", Func::Trunc),
    ("substr", Func::Substr),
    ("contains", Func::Contains),
    ("hasPrefix", Func::HasPrefix),
    ("hasSuffix", Func::HasSuffix),
    ("indent", Func::Indent),
    ("nindent", Func::Nindent),
    ("replace", Func::Replace),
    ("repeat", Func::Repeat),
    ("trim", Func::Trim),
    ("trimAll", Func::TrimAll),
    ("trimSuffix", Func::TrimSuffix),
    ("trimPrefix", Func::TrimPrefix),
    ("int", Func::Int),
    ("float64", Func::Float64),
    ("add", Func::Add),
    ("sub", Func::Sub),
    ("mul", Func::Mul),
    ("div", Func::Div),
    ("mod", Func::Mod),
    ("addf", Func::Addf),
    ("subf", Func::Subf),
    ("mulf", Func::Mulf),
    ("divf", Func::Divf),
    ("max", Func::Max),
    ("min", Func::Min),
    ("maxf", Func::Maxf),
    ("minf", Func::Minf),
    ("ceil", Func::Ceil),
    ("floor", Func::Floor),
    ("round", Func::Round),
    ("fromJson", Func::FromJson),
    ("date", Func::Date),
    ("toDate", Func::ToDate),
    ("now", Func::Now),
    ("unixEpoch", Func::UnixEpoch),
    ("default", Func::Default),
    ("__line__", Func::Line),
    ("__timestamp__", Func::Timestamp),
];

impl Func {
    fn lookup(name: &str) -> Option<Func> {
        FUNCS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    fn name(self) -> &'static str {
        FUNCS
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Fixed parameter types and the element type of a variadic tail.
    fn sig(self) -> (&'static [P], Option<P>) {
        use Func::*;
        use P::*;
        match self {
            And | Or | Index | Slice | Eq => (&[A], Some(A)),
            Not | Len | Int | Float64 | Ceil | Floor => (&[A], None),
            Print | Println | Html | Js | Urlquery | Add | Addf => (&[], Some(A)),
            Printf => (&[S], Some(A)),
            Ne | Lt | Le | Gt | Ge | Sub | Div | Mod => (&[A, A], None),
            GoToLower | GoToUpper | GoTrimSpace | Urldecode | Urlencode | Bytes | Duration
            | DurationSeconds | UnixToTime | B64enc | B64dec | Lower | Upper | Title | Trim
            | FromJson => (&[S], None),
            GoReplace => (&[S, S, S, I], None),
            GoTrim | GoTrimLeft | GoTrimRight | GoTrimPrefix | GoTrimSuffix | Count | Contains
            | HasPrefix | HasSuffix | TrimAll | TrimSuffix | TrimPrefix | ToDate => (&[S, S], None),
            RegexReplaceAll | RegexReplaceAllLiteral | Replace | ToDateInZone => (&[S, S, S], None),
            UnixEpochMillis | UnixEpochNanos | UnixEpoch => (&[T], None),
            AlignLeft | AlignRight | Trunc | Indent | Nindent | Repeat => (&[I, S], None),
            Substr => (&[I, I, S], None),
            Mul | Subf | Mulf | Divf | Max | Min | Maxf | Minf | Default => (&[A], Some(A)),
            Round => (&[A, I], Some(F)),
            Date => (&[S, A], None),
            Now | Line | Timestamp => (&[], None),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values

#[derive(Debug, Clone)]
enum Value<'a> {
    /// An invalid `reflect.Value` (untyped nil).
    Nil,
    /// A nil `interface{}` read from a JSON map.
    NilIface,
    Str(Cow<'a, str>),
    /// Go `int`.
    Int(i64),
    /// Go `int64` (Sprig's integer math).
    Int64(i64),
    Float(f64),
    Bool(bool),
    Time(Box<GoTime>),
    /// The label map (`map[string]string`).
    Labels,
    Obj(Rc<serde_json::Map<String, serde_json::Value>>),
    Arr(Rc<Vec<serde_json::Value>>),
}

impl<'a> Value<'a> {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::NilIface => "interface {}",
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Float(_) => "float64",
            Value::Bool(_) => "bool",
            Value::Time(_) => "time.Time",
            Value::Labels => "map[string]string",
            Value::Obj(_) => "map[string]interface {}",
            Value::Arr(_) => "[]interface {}",
        }
    }

    /// What `evalPipeline` does to interface values: a nil interface becomes invalid.
    fn dig(self) -> Value<'a> {
        match self {
            Value::NilIface => Value::Nil,
            v => v,
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Value::Str(s) => s,
            _ => "",
        }
    }

    fn as_int(&self) -> i64 {
        match self {
            Value::Int(i) | Value::Int64(i) => *i,
            _ => 0,
        }
    }

    fn as_time(&self) -> GoTime {
        match self {
            Value::Time(t) => (**t).clone(),
            _ => GoTime::zero(),
        }
    }
}

fn json_val<'a>(v: &serde_json::Value) -> Value<'a> {
    match v {
        serde_json::Value::Null => Value::NilIface,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::Str(Cow::Owned(s.clone())),
        serde_json::Value::Array(a) => Value::Arr(Rc::new(a.clone())),
        serde_json::Value::Object(o) => Value::Obj(Rc::new(o.clone())),
    }
}

fn label_pairs(lb: &LabelsBuilder) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = lb.iter().collect();
    if let Some(e) = lb.get(ERROR_LABEL) {
        v.push((ERROR_LABEL, e));
    }
    if let Some(d) = lb.get(ERROR_DETAILS_LABEL) {
        v.push((ERROR_DETAILS_LABEL, d));
    }
    v.sort_unstable_by(|a, b| a.0.cmp(b.0));
    v
}

/// Go's `isTrue`.
fn truth(v: &Value<'_>, lb: &LabelsBuilder) -> bool {
    match v {
        Value::Nil | Value::NilIface => false,
        Value::Str(s) => !s.is_empty(),
        Value::Int(i) | Value::Int64(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Bool(b) => *b,
        Value::Time(_) => true,
        Value::Labels => lb.iter().next().is_some() || lb.has_error(),
        Value::Obj(m) => !m.is_empty(),
        Value::Arr(a) => !a.is_empty(),
    }
}

/// Sprig's `empty`.
fn empty(v: &Value<'_>, lb: &LabelsBuilder) -> bool {
    match v {
        Value::Time(_) => false,
        v => !truth(v, lb),
    }
}

/// `cast.ToInt64` (spf13/cast, as used by Sprig); failures give 0.
fn cast_int(v: &Value<'_>) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Float(f) => {
            if f.is_nan() {
                i64::MIN
            } else {
                *f as i64
            }
        }
        Value::Bool(b) => *b as i64,
        Value::Str(s) => go_parse_int(trim_zero_decimal(s)).unwrap_or(0),
        _ => 0,
    }
}

fn trim_zero_decimal(s: &str) -> &str {
    let b = s.as_bytes();
    let mut found_zero = false;
    let mut i = b.len();
    while i > 0 {
        match b[i - 1] {
            b'.' => {
                if found_zero {
                    return &s[..i - 1];
                }
                return s;
            }
            b'0' => found_zero = true,
            _ => return s,
        }
        i -= 1;
    }
    s
}

/// `cast.ToFloat64`; failures give 0.
fn cast_float(v: &Value<'_>) -> f64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => *b as i64 as f64,
        Value::Str(s) => go_parse_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

// ---------------------------------------------------------------------------------------------
// Execution

enum Flow {
    Next,
    Break,
    Continue,
}

/// A node that error messages point at.
#[derive(Clone, Copy)]
enum ENode<'t> {
    Arg(&'t Arg),
    Cmd(&'t Cmd),
    Pipe(&'t Pipe),
}

impl ENode<'_> {
    fn pos(&self) -> usize {
        match self {
            ENode::Arg(a) => a.pos,
            ENode::Cmd(c) => c.pos,
            ENode::Pipe(p) => p.pos,
        }
    }
    fn text(&self) -> String {
        match self {
            ENode::Arg(a) => a.to_string(),
            ENode::Cmd(c) => c.to_string(),
            ENode::Pipe(p) => p.to_string(),
        }
    }
}

type EResult<T> = Result<T, String>;

struct Exec<'a> {
    t: &'a Template,
    lb: &'a LabelsBuilder,
    line: &'a str,
    ts: i64,
    vars: Vec<(&'a str, Value<'a>)>,
}

impl<'a> Exec<'a> {
    fn fail(&self, node: ENode<'_>, msg: impl Display) -> String {
        let pos = node.pos().min(self.t.src.len());
        let before = &self.t.src[..pos];
        let (line, col) = match before.rfind('\n') {
            Some(nl) => (line_of(&self.t.src, pos), pos - nl - 1),
            None => (1, pos),
        };
        let mut ctx = node.text();
        if ctx.chars().count() > 20 {
            ctx = ctx.chars().take(20).collect::<String>() + "...";
        }
        format!(
            "template: {n}:{line}:{col}: executing \"{n}\" at <{ctx}>: {msg}",
            n = self.t.name
        )
    }

    fn walk(&mut self, dot: &Value<'a>, nodes: &'a [Node], out: &mut String) -> EResult<Flow> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.eval_pipeline(dot, p)?;
                    if p.decl.is_empty() {
                        match v {
                            Value::Nil | Value::NilIface => out.push_str("<no value>"),
                            v => fmt_value(out, &v, 'v', &Flags::default(), self.lb),
                        }
                    }
                }
                Node::If(b) | Node::With(b) => {
                    let mark = self.vars.len();
                    let v = self.eval_pipeline(dot, &b.pipe)?;
                    let flow = if truth(&v, self.lb) {
                        if matches!(n, Node::With(_)) {
                            self.walk(&v, &b.list, out)?
                        } else {
                            self.walk(dot, &b.list, out)?
                        }
                    } else {
                        self.walk(dot, &b.else_list, out)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Next) {
                        return Ok(flow);
                    }
                }
                Node::Range(b) => self.walk_range(dot, b, out)?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Next)
    }

    fn walk_range(&mut self, dot: &Value<'a>, b: &'a Branch, out: &mut String) -> EResult<()> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark2 = self.vars.len();
        let items: Vec<(Value<'a>, Value<'a>)> = match &val {
            Value::Labels => label_pairs(self.lb)
                .into_iter()
                .map(|(k, v)| (Value::Str(Cow::Borrowed(k)), Value::Str(Cow::Borrowed(v))))
                .collect(),
            Value::Obj(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                keys.into_iter()
                    .map(|k| (Value::Str(Cow::Owned(k.clone())), json_val(&m[k.as_str()])))
                    .collect()
            }
            Value::Arr(a) => a
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), json_val(e)))
                .collect(),
            Value::Int(n) | Value::Int64(n) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.fail(
                        ENode::Pipe(&b.pipe),
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                let int64 = matches!(val, Value::Int64(_));
                (0..*n)
                    .map(|i| {
                        let v = if int64 {
                            Value::Int64(i)
                        } else {
                            Value::Int(i)
                        };
                        (v.clone(), v)
                    })
                    .collect()
            }
            Value::Nil | Value::NilIface => Vec::new(),
            other => {
                let mut s = String::new();
                fmt_value(&mut s, other, 'v', &Flags::default(), self.lb);
                return Err(self.fail(
                    ENode::Pipe(&b.pipe),
                    format!("range can't iterate over {s}"),
                ));
            }
        };
        if items.is_empty() {
            self.walk(dot, &b.else_list, out)?;
            self.vars.truncate(mark);
            return Ok(());
        }
        let nd = b.pipe.decl.len();
        for (k, e) in items {
            if nd > 0 {
                if b.pipe.is_assign {
                    let v = if nd > 1 { k.clone() } else { e.clone() };
                    self.set_var(&b.pipe.decl[0], v, ENode::Pipe(&b.pipe))?;
                } else if let Some(slot) = mark2.checked_sub(1).and_then(|i| self.vars.get_mut(i)) {
                    slot.1 = e.clone();
                }
            }
            if nd > 1 {
                if b.pipe.is_assign {
                    self.set_var(&b.pipe.decl[1], e.clone(), ENode::Pipe(&b.pipe))?;
                } else if let Some(slot) = mark2.checked_sub(2).and_then(|i| self.vars.get_mut(i)) {
                    slot.1 = k;
                }
            }
            let flow = self.walk(&e, &b.list, out)?;
            self.vars.truncate(mark2);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn set_var(&mut self, name: &str, v: Value<'a>, node: ENode<'_>) -> EResult<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(self.fail(node, format!("undefined variable: {name}"))),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value<'a>, pipe: &'a Pipe) -> EResult<Value<'a>> {
        let mut val: Option<Value<'a>> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, val.take())?;
            val = Some(v.dig());
        }
        let val = val.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, val.clone(), ENode::Pipe(pipe))?;
            } else {
                self.vars.push((name.as_str(), val.clone()));
            }
        }
        Ok(val)
    }

    fn not_a_function(&self, args: &'a [Arg], fin: &Option<Value<'a>>) -> EResult<()> {
        if args.len() > 1 || fin.is_some() {
            return Err(self.fail(
                ENode::Arg(&args[0]),
                format!("can't give argument to non-function {}", args[0]),
            ));
        }
        Ok(())
    }

    fn eval_command(
        &mut self,
        dot: &Value<'a>,
        cmd: &'a Cmd,
        fin: Option<Value<'a>>,
    ) -> EResult<Value<'a>> {
        let first = &cmd.args[0];
        match &first.kind {
            ArgKind::Field(ids) => self.eval_field_chain(dot.clone(), first, ids, &cmd.args, fin),
            ArgKind::Chain(node, fields) => {
                let recv = self.eval_chain_head(dot, first, node)?;
                self.eval_field_chain(recv, first, fields, &cmd.args, fin)
            }
            ArgKind::Func(f) => {
                self.eval_function(dot, *f, first, ENode::Cmd(cmd), &cmd.args[1..], fin)
            }
            ArgKind::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                self.eval_pipeline(dot, p)
            }
            ArgKind::Var(name, ids) => self.eval_variable(first, name, ids, &cmd.args, fin),
            kind => {
                self.not_a_function(&cmd.args, &fin)?;
                match kind {
                    ArgKind::Bool(b) => Ok(Value::Bool(*b)),
                    ArgKind::Dot => Ok(dot.clone()),
                    ArgKind::Num(n) => self.ideal_constant(first, n),
                    ArgKind::Str { val, .. } => Ok(Value::Str(Cow::Borrowed(val))),
                    _ => Err(self.fail(ENode::Arg(first), "nil is not a command")),
                }
            }
        }
    }

    fn ideal_constant(&self, node: &'a Arg, n: &Num) -> EResult<Value<'a>> {
        let t = n.text.as_str();
        let is_hex_int = t.len() > 2
            && t.starts_with('0')
            && matches!(t.as_bytes()[1], b'x' | b'X')
            && !t.contains(['p', 'P']);
        if n.float.is_some() && !is_hex_int && !n.is_char && t.contains(['.', 'e', 'E', 'p', 'P']) {
            return Ok(Value::Float(n.float.unwrap_or(0.0)));
        }
        match n.int {
            Some(i) => Ok(Value::Int(i)),
            None => Err(self.fail(ENode::Arg(node), format!("{t} overflows int"))),
        }
    }

    fn var_value(&self, name: &str, node: &'a Arg) -> EResult<Value<'a>> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.fail(ENode::Arg(node), format!("undefined variable: {name}"))),
        }
    }

    fn eval_variable(
        &mut self,
        node: &'a Arg,
        name: &str,
        ids: &'a [String],
        args: &'a [Arg],
        fin: Option<Value<'a>>,
    ) -> EResult<Value<'a>> {
        let v = self.var_value(name, node)?;
        if ids.is_empty() {
            self.not_a_function(args, &fin)?;
            return Ok(v);
        }
        self.eval_field_chain(v, node, ids, args, fin)
    }

    fn eval_chain_head(
        &mut self,
        dot: &Value<'a>,
        node: &'a Arg,
        head: &'a Arg,
    ) -> EResult<Value<'a>> {
        if matches!(head.kind, ArgKind::Nil) {
            return Err(self.fail(
                ENode::Arg(node),
                format!("indirection through explicit nil in {node}"),
            ));
        }
        self.eval_arg(dot, P::A, head)
    }

    fn eval_field_chain(
        &mut self,
        recv: Value<'a>,
        node: &'a Arg,
        ids: &'a [String],
        args: &'a [Arg],
        fin: Option<Value<'a>>,
    ) -> EResult<Value<'a>> {
        let n = ids.len();
        let mut recv = recv;
        for id in &ids[..n - 1] {
            recv = self.eval_field(id, node, &[], None, recv)?;
        }
        self.eval_field(&ids[n - 1], node, args, fin, recv)
    }

    fn eval_field(
        &mut self,
        name: &str,
        node: &'a Arg,
        args: &'a [Arg],
        fin: Option<Value<'a>>,
        recv: Value<'a>,
    ) -> EResult<Value<'a>> {
        let has_args = args.len() > 1 || fin.is_some();
        match recv {
            Value::Nil => Ok(Value::Nil),
            Value::NilIface => Err(self.fail(
                ENode::Arg(node),
                format!("nil pointer evaluating interface {{}}.{name}"),
            )),
            Value::Time(t) => self.time_method(&t, name, node, args, fin),
            Value::Labels => {
                if has_args {
                    return Err(self.fail(
                        ENode::Arg(node),
                        format!("{name} is not a method but has arguments"),
                    ));
                }
                Ok(Value::Str(Cow::Borrowed(self.lb.get(name).unwrap_or(""))))
            }
            Value::Obj(m) => {
                if has_args {
                    return Err(self.fail(
                        ENode::Arg(node),
                        format!("{name} is not a method but has arguments"),
                    ));
                }
                Ok(m.get(name).map(json_val).unwrap_or(Value::NilIface))
            }
            other => Err(self.fail(
                ENode::Arg(node),
                format!("can't evaluate field {name} in type {}", other.type_name()),
            )),
        }
    }

    /// The few `time.Time` methods worth having.
    fn time_method(
        &mut self,
        t: &GoTime,
        name: &str,
        node: &'a Arg,
        args: &'a [Arg],
        fin: Option<Value<'a>>,
    ) -> EResult<Value<'a>> {
        let nargs = args.len().saturating_sub(1) + fin.is_some() as usize;
        let want = usize::from(name == "Format");
        let known = matches!(
            name,
            "Unix"
                | "UnixMilli"
                | "UnixMicro"
                | "UnixNano"
                | "Year"
                | "YearDay"
                | "Day"
                | "Hour"
                | "Minute"
                | "Second"
                | "Nanosecond"
                | "UTC"
                | "Local"
                | "String"
                | "Format"
        );
        if !known {
            return Err(self.fail(
                ENode::Arg(node),
                format!("can't evaluate field {name} in type time.Time"),
            ));
        }
        if nargs != want {
            return Err(self.fail(
                ENode::Arg(node),
                format!("wrong number of args for {name}: want {want} got {nargs}"),
            ));
        }
        let c = t.civil();
        Ok(match name {
            "Unix" => Value::Int64(t.sec),
            "UnixMilli" => Value::Int64(t.sec.wrapping_mul(1000) + t.nsec as i64 / 1_000_000),
            "UnixMicro" => Value::Int64(t.sec.wrapping_mul(1_000_000) + t.nsec as i64 / 1000),
            "UnixNano" => Value::Int64(t.unix_nano()),
            "Year" => Value::Int(c.year),
            "YearDay" => Value::Int(c.yday as i64),
            "Day" => Value::Int(c.day as i64),
            "Hour" => Value::Int(c.hour as i64),
            "Minute" => Value::Int(c.min as i64),
            "Second" => Value::Int(c.sec as i64),
            "Nanosecond" => Value::Int(t.nsec as i64),
            "UTC" | "Local" => Value::Time(Box::new(GoTime {
                offset: 0,
                zone: "UTC".into(),
                ..t.clone()
            })),
            "String" => Value::Str(Cow::Owned(t.to_string())),
            _ => {
                let layout = match fin {
                    Some(v) => self.validate(v, P::S, ENode::Arg(node))?,
                    None => self.eval_arg(&Value::Nil, P::S, &args[1])?,
                };
                Value::Str(Cow::Owned(go_format(t, layout.as_str())))
            }
        })
    }

    fn validate(&self, v: Value<'a>, ty: P, node: ENode<'_>) -> EResult<Value<'a>> {
        let ok = match (&v, ty) {
            (Value::NilIface, P::A) => return Ok(Value::Nil),
            (_, P::A) => true,
            (Value::Nil, _) => {
                return Err(self.fail(node, format!("invalid value; expected {}", ty.name())))
            }
            (Value::Str(_), P::S)
            | (Value::Int(_), P::I)
            | (Value::Float(_), P::F)
            | (Value::Time(_), P::T) => true,
            _ => false,
        };
        if ok {
            Ok(v)
        } else {
            Err(self.fail(
                node,
                format!(
                    "wrong type for value; expected {}; got {}",
                    ty.name(),
                    v.type_name()
                ),
            ))
        }
    }

    fn eval_arg(&mut self, dot: &Value<'a>, ty: P, arg: &'a Arg) -> EResult<Value<'a>> {
        let node = ENode::Arg(arg);
        let v = match &arg.kind {
            ArgKind::Dot => dot.clone(),
            ArgKind::Nil => {
                if ty == P::A {
                    return Ok(Value::Nil);
                }
                return Err(self.fail(node, format!("cannot assign nil to {}", ty.name())));
            }
            ArgKind::Field(ids) => {
                self.eval_field_chain(dot.clone(), arg, ids, std::slice::from_ref(arg), None)?
            }
            ArgKind::Var(name, ids) => {
                self.eval_variable(arg, name, ids, std::slice::from_ref(arg), None)?
            }
            ArgKind::Pipe(p) => self.eval_pipeline(dot, p)?,
            ArgKind::Func(f) => self.eval_function(dot, *f, arg, node, &[], None)?,
            ArgKind::Chain(head, fields) => {
                let recv = self.eval_chain_head(dot, arg, head)?;
                self.eval_field_chain(recv, arg, fields, &[], None)?
            }
            ArgKind::Bool(b) => {
                return match ty {
                    P::A => Ok(Value::Bool(*b)),
                    P::S => Err(self.fail(node, format!("expected string; found {arg}"))),
                    P::I => Err(self.fail(node, format!("expected integer; found {arg}"))),
                    P::F => Err(self.fail(node, format!("expected float; found {arg}"))),
                    P::T => Err(self.fail(
                        node,
                        format!("can't handle {arg} for arg of type time.Time"),
                    )),
                }
            }
            ArgKind::Num(n) => {
                return match ty {
                    P::A => self.ideal_constant(arg, n),
                    P::I => match n.int {
                        Some(i) => Ok(Value::Int(i)),
                        None => Err(self.fail(node, format!("expected integer; found {arg}"))),
                    },
                    P::F => match n.float {
                        Some(f) => Ok(Value::Float(f)),
                        None => Err(self.fail(node, format!("expected float; found {arg}"))),
                    },
                    P::S => Err(self.fail(node, format!("expected string; found {arg}"))),
                    P::T => Err(self.fail(
                        node,
                        format!("can't handle {arg} for arg of type time.Time"),
                    )),
                }
            }
            ArgKind::Str { val, .. } => {
                return match ty {
                    P::A | P::S => Ok(Value::Str(Cow::Borrowed(val))),
                    P::I => Err(self.fail(node, format!("expected integer; found {arg}"))),
                    P::F => Err(self.fail(node, format!("expected float; found {arg}"))),
                    P::T => Err(self.fail(
                        node,
                        format!("can't handle {arg} for arg of type time.Time"),
                    )),
                }
            }
        };
        self.validate(v, ty, node)
    }

    fn eval_function(
        &mut self,
        dot: &Value<'a>,
        f: Func,
        ident: &'a Arg,
        call_node: ENode<'a>,
        args: &'a [Arg],
        fin: Option<Value<'a>>,
    ) -> EResult<Value<'a>> {
        let name = f.name();
        let (fixed, variadic) = f.sig();
        let num_in = args.len() + fin.is_some() as usize;
        if variadic.is_some() {
            if num_in < fixed.len() {
                return Err(self.fail(
                    ENode::Arg(ident),
                    format!(
                        "wrong number of args for {name}: want at least {} got {}",
                        fixed.len(),
                        args.len()
                    ),
                ));
            }
        } else if num_in != fixed.len() {
            return Err(self.fail(
                ENode::Arg(ident),
                format!(
                    "wrong number of args for {name}: want {} got {num_in}",
                    fixed.len()
                ),
            ));
        }
        if matches!(f, Func::And | Func::Or) {
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(dot, P::A, a)?;
                if truth(&v, self.lb) == (f == Func::Or) {
                    return Ok(v);
                }
            }
            if let Some(fv) = fin {
                v = fv;
            }
            return Ok(v);
        }
        let ty_at = |i: usize| -> P {
            if i < fixed.len() {
                fixed[i]
            } else {
                variadic.unwrap_or(P::A)
            }
        };
        let mut argv = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            argv.push(self.eval_arg(dot, ty_at(i), a)?);
        }
        if let Some(fv) = fin {
            let last = args.last().unwrap_or(ident);
            let v = self.validate(fv, ty_at(argv.len()), ENode::Arg(last))?;
            argv.push(v);
        }
        self.call(f, argv)
            .map_err(|e| self.fail(call_node, format!("error calling {name}: {e}")))
    }

    /// Runs `f` with the compiled regexp (precompiled when the pattern was a literal).
    fn with_regex<T>(&self, pat: &str, f: impl FnOnce(&Regex) -> T) -> Result<T, String> {
        match self.t.regexes.iter().find(|(p, _)| p == pat) {
            Some((_, Ok(r))) => Ok(f(r)),
            Some((_, Err(e))) => Err(e.clone()),
            None => go_regex(pat).map(|r| f(&r)),
        }
    }

    fn call(&mut self, f: Func, a: Vec<Value<'a>>) -> Result<Value<'a>, String> {
        use Func::*;
        let lb = self.lb;
        let s = |i: usize| a.get(i).map(|v| v.as_str()).unwrap_or("");
        let i = |i: usize| a.get(i).map(|v| v.as_int()).unwrap_or(0);
        let owned = |x: String| Value::Str(Cow::Owned(x));
        Ok(match f {
            And | Or => Value::Nil,
            Not => Value::Bool(!truth(&a[0], lb)),
            Len => Value::Int(match &a[0] {
                Value::Str(s) => s.len() as i64,
                Value::Labels => label_pairs(lb).len() as i64,
                Value::Obj(m) => m.len() as i64,
                Value::Arr(v) => v.len() as i64,
                Value::Nil => return Err("len of untyped nil".into()),
                Value::NilIface => return Err("len of nil pointer".into()),
                v => return Err(format!("len of type {}", v.type_name())),
            }),
            Index => index(lb, &a[0], &a[1..])?,
            Slice => slice(&a[0], &a[1..])?,
            Print => owned(go_sprint(&a, lb, false)),
            Println => owned(go_sprint(&a, lb, true)),
            Printf => owned(go_sprintf(s(0), &a[1..], lb)),
            Eq => Value::Bool(go_eq(&a[0], &a[1..])?),
            Ne => Value::Bool(!go_eq(&a[0], &a[1..])?),
            Lt => Value::Bool(go_lt(&a[0], &a[1])?),
            Le => Value::Bool(go_lt(&a[0], &a[1])? || go_eq(&a[0], &a[1..])?),
            Gt => Value::Bool(!(go_lt(&a[0], &a[1])? || go_eq(&a[0], &a[1..])?)),
            Ge => Value::Bool(!go_lt(&a[0], &a[1])?),
            Html => owned(html_escape(&eval_args(&a, lb))),
            Js => owned(js_escape(&eval_args(&a, lb))),
            Urlquery => owned(query_escape(&eval_args(&a, lb))),
            GoToLower | Lower => owned(go_lower(s(0))),
            GoToUpper | Upper => owned(go_upper(s(0))),
            GoReplace => {
                let n = i(3);
                owned(if n < 0 {
                    s(0).replace(s(1), s(2))
                } else {
                    s(0).replacen(s(1), s(2), n as usize)
                })
            }
            GoTrim => {
                let cut = s(1);
                owned(s(0).trim_matches(|c| cut.contains(c)).to_string())
            }
            GoTrimLeft => {
                let cut = s(1);
                owned(s(0).trim_start_matches(|c| cut.contains(c)).to_string())
            }
            GoTrimRight => {
                let cut = s(1);
                owned(s(0).trim_end_matches(|c| cut.contains(c)).to_string())
            }
            GoTrimPrefix => owned(s(0).strip_prefix(s(1)).unwrap_or(s(0)).to_string()),
            GoTrimSuffix => owned(s(0).strip_suffix(s(1)).unwrap_or(s(0)).to_string()),
            GoTrimSpace | Trim => owned(s(0).trim().to_string()),
            TrimAll => {
                let cut = s(0);
                owned(s(1).trim_matches(|c| cut.contains(c)).to_string())
            }
            TrimPrefix => owned(s(1).strip_prefix(s(0)).unwrap_or(s(1)).to_string()),
            TrimSuffix => owned(s(1).strip_suffix(s(0)).unwrap_or(s(1)).to_string()),
            RegexReplaceAll => {
                owned(self.with_regex(s(0), |r| r.replace_all(s(1), s(2)).into_owned())?)
            }
            RegexReplaceAllLiteral => owned(self.with_regex(s(0), |r| {
                r.replace_all(s(1), regex::NoExpand(s(2))).into_owned()
            })?),
            Count => Value::Int(self.with_regex(s(0), |r| r.find_iter(s(1)).count())? as i64),
            Urldecode => owned(query_unescape(s(0))?),
            Urlencode => owned(query_escape(s(0))),
            Bytes => Value::Float(parse_bytes(s(0))? as f64),
            Duration | DurationSeconds => {
                let d = parse_duration(s(0))?;
                Value::Float((d / 1_000_000_000) as f64 + (d % 1_000_000_000) as f64 / 1e9)
            }
            UnixEpochMillis => {
                let t = a[0].as_time();
                owned((t.sec.wrapping_mul(1000) + t.nsec as i64 / 1_000_000).to_string())
            }
            UnixEpochNanos => owned(a[0].as_time().unix_nano().to_string()),
            UnixEpoch => owned(a[0].as_time().sec.to_string()),
            ToDateInZone => Value::Time(Box::new(
                go_parse_time(s(0), s(2)).unwrap_or_else(|_| GoTime::zero()),
            )),
            ToDate => Value::Time(Box::new(
                go_parse_time(s(0), s(1)).unwrap_or_else(|_| GoTime::zero()),
            )),
            UnixToTime => Value::Time(Box::new(unix_to_time(s(0))?)),
            AlignLeft | AlignRight => {
                let count = i(0);
                let src = s(1);
                let l = src.chars().count() as i64;
                owned(if count < 0 || count == l {
                    src.to_string()
                } else if count > l {
                    let pad = " ".repeat((count - l) as usize);
                    if f == AlignLeft {
                        format!("{src}{pad}")
                    } else {
                        format!("{pad}{src}")
                    }
                } else if f == AlignLeft {
                    src.chars().take(count as usize).collect()
                } else {
                    src.chars().skip((l - count) as usize).collect()
                })
            }
            B64enc => owned(base64_encode(s(0).as_bytes())),
            B64dec => owned(match base64_decode(s(0)) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => e,
            }),
            Title => owned(go_title(s(0))),
            Trunc => {
                let (c, st) = (i(0), s(1));
                let l = st.len() as i64;
                owned(if c < 0 && l + c > 0 {
                    lossy(&st.as_bytes()[(l + c) as usize..])
                } else if c >= 0 && l > c {
                    lossy(&st.as_bytes()[..c as usize])
                } else {
                    st.to_string()
                })
            }
            Substr => owned(substr(i(0), i(1), s(2))?),
            Contains => Value::Bool(s(1).contains(s(0))),
            HasPrefix => Value::Bool(s(1).starts_with(s(0))),
            HasSuffix => Value::Bool(s(1).ends_with(s(0))),
            Indent | Nindent => {
                let pad = go_repeat(" ", i(0))?;
                let body = format!("{pad}{}", s(1).replace('\n', &format!("\n{pad}")));
                owned(if f == Nindent {
                    format!("\n{body}")
                } else {
                    body
                })
            }
            Replace => owned(s(2).replace(s(0), s(1))),
            Repeat => owned(go_repeat(s(1), i(0))?),
            Int => Value::Int(cast_int(&a[0])),
            Float64 => Value::Float(cast_float(&a[0])),
            Add => Value::Int64(a.iter().fold(0i64, |acc, v| acc.wrapping_add(cast_int(v)))),
            Sub => Value::Int64(cast_int(&a[0]).wrapping_sub(cast_int(&a[1]))),
            Mul => Value::Int64(
                a[1..]
                    .iter()
                    .fold(cast_int(&a[0]), |acc, v| acc.wrapping_mul(cast_int(v))),
            ),
            Div | Mod => {
                let (x, y) = (cast_int(&a[0]), cast_int(&a[1]));
                if y == 0 {
                    return Err("runtime error: integer divide by zero".into());
                }
                Value::Int64(if f == Div {
                    x.wrapping_div(y)
                } else {
                    x.wrapping_rem(y)
                })
            }
            Addf => Value::Float(decimal_op(&Value::Float(0.0), &a, DecOp::Add)?),
            Subf => Value::Float(decimal_op(&a[0], &a[1..], DecOp::Sub)?),
            Mulf => Value::Float(decimal_op(&a[0], &a[1..], DecOp::Mul)?),
            Divf => Value::Float(decimal_op(&a[0], &a[1..], DecOp::Div)?),
            Max | Min => Value::Int64(a[1..].iter().fold(cast_int(&a[0]), |acc, v| {
                let b = cast_int(v);
                if (f == Max && b > acc) || (f == Min && b < acc) {
                    b
                } else {
                    acc
                }
            })),
            Maxf | Minf => Value::Float(a[1..].iter().fold(cast_float(&a[0]), |acc, v| {
                go_minmax(acc, cast_float(v), f == Maxf)
            })),
            Ceil => Value::Float(cast_float(&a[0]).ceil()),
            Floor => Value::Float(cast_float(&a[0]).floor()),
            Round => {
                let round_on = match a.get(2) {
                    Some(Value::Float(r)) => *r,
                    _ => 0.5,
                };
                let val = cast_float(&a[0]);
                let pow = 10f64.powf(i(1) as f64);
                let digit = pow * val;
                let frac = digit.fract();
                let r = if frac >= round_on {
                    digit.ceil()
                } else {
                    digit.floor()
                };
                Value::Float(r / pow)
            }
            FromJson => match serde_json::from_str::<serde_json::Value>(s(0)) {
                Ok(v) => json_val(&v).dig(),
                Err(_) => Value::Nil,
            },
            Date => {
                let t = match &a[1] {
                    Value::Time(t) => (**t).clone(),
                    Value::Int(n) | Value::Int64(n) => GoTime::unix(*n, 0),
                    _ => GoTime::now(),
                };
                owned(go_format(&t.in_utc(), s(0)))
            }
            Now => Value::Time(Box::new(GoTime::now())),
            Default => {
                if a.len() < 2 || empty(&a[1], lb) {
                    a[0].clone()
                } else {
                    a[1].clone()
                }
            }
            Line => Value::Str(Cow::Borrowed(self.line)),
            Timestamp => Value::Time(Box::new(GoTime::unix(
                self.ts.div_euclid(1_000_000_000),
                self.ts.rem_euclid(1_000_000_000) as u32,
            ))),
        })
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn go_repeat(s: &str, n: i64) -> Result<String, String> {
    if n < 0 {
        return Err("strings: negative Repeat count".into());
    }
    if (s.len() as u128) * (n as u128) > (1u128 << 31) {
        return Err("strings: Repeat output length overflow".into());
    }
    Ok(s.repeat(n as usize))
}

/// Sprig's byte-based `substr`, with Go's slice panics as errors.
fn substr(start: i64, end: i64, s: &str) -> Result<String, String> {
    let l = s.len() as i64;
    let b = s.as_bytes();
    if start < 0 {
        if end < 0 {
            return Err(format!("runtime error: slice bounds out of range [:{end}]"));
        }
        if end > l {
            return Err(format!(
                "runtime error: slice bounds out of range [:{end}] with length {l}"
            ));
        }
        return Ok(lossy(&b[..end as usize]));
    }
    if end < 0 || end > l {
        if start > l {
            return Err(format!(
                "runtime error: slice bounds out of range [{start}:{l}]"
            ));
        }
        return Ok(lossy(&b[start as usize..]));
    }
    if start > end {
        return Err(format!(
            "runtime error: slice bounds out of range [{start}:{end}]"
        ));
    }
    Ok(lossy(&b[start as usize..end as usize]))
}

/// Go's `math.Max` / `math.Min`.
fn go_minmax(a: f64, b: f64, max: bool) -> f64 {
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == b && a == 0.0 {
        let neg = if max {
            a.is_sign_negative() && b.is_sign_negative()
        } else {
            a.is_sign_negative() || b.is_sign_negative()
        };
        return if neg { -0.0 } else { 0.0 };
    }
    if max {
        a.max(b)
    } else {
        a.min(b)
    }
}

fn index<'a>(
    lb: &'a LabelsBuilder,
    item: &Value<'a>,
    idx: &[Value<'a>],
) -> Result<Value<'a>, String> {
    let mut item = item.clone();
    if matches!(item, Value::Nil) {
        return Err("index of untyped nil".into());
    }
    for ix in idx {
        item = match &item {
            Value::Arr(_) | Value::Str(_) => {
                let i = match ix {
                    Value::Int(i) | Value::Int64(i) => *i,
                    Value::Nil | Value::NilIface => {
                        return Err("cannot index slice/array with nil".into())
                    }
                    v => {
                        return Err(format!(
                            "cannot index slice/array with type {}",
                            v.type_name()
                        ))
                    }
                };
                let len = match &item {
                    Value::Arr(a) => a.len(),
                    v => v.as_str().len(),
                } as i64;
                if i < 0 || i >= len {
                    return Err(format!("index out of range: {i}"));
                }
                match &item {
                    Value::Arr(a) => json_val(&a[i as usize]),
                    v => Value::Int(v.as_str().as_bytes()[i as usize] as i64),
                }
            }
            Value::Labels | Value::Obj(_) => {
                let key = match ix {
                    Value::Str(k) => k.clone(),
                    v => {
                        return Err(format!(
                            "value has type {}; should be string",
                            v.type_name()
                        ))
                    }
                };
                match &item {
                    Value::Obj(m) => m.get(key.as_ref()).map(json_val).unwrap_or(Value::NilIface),
                    _ => Value::Str(Cow::Borrowed(lb.get(&key).unwrap_or(""))),
                }
            }
            Value::Nil | Value::NilIface => return Err("index of nil pointer".into()),
            v => return Err(format!("can't index item of type {}", v.type_name())),
        };
    }
    Ok(item)
}

fn slice<'a>(item: &Value<'a>, idx: &[Value<'a>]) -> Result<Value<'a>, String> {
    let len = match item {
        Value::Nil | Value::NilIface => return Err("slice of untyped nil".into()),
        Value::Str(s) => {
            if idx.len() > 2 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::Arr(a) => a.len(),
        v => return Err(format!("can't slice item of type {}", v.type_name())),
    } as i64;
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let mut ix = [0i64, len, len];
    for (k, v) in idx.iter().enumerate() {
        let n = match v {
            Value::Int(i) | Value::Int64(i) => *i,
            v => {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    v.type_name()
                ))
            }
        };
        if n < 0 || n > len {
            return Err(format!("index out of range: {n}"));
        }
        ix[k] = n;
    }
    if ix[0] > ix[1] {
        return Err(format!("invalid slice index: {} > {}", ix[0], ix[1]));
    }
    Ok(match item {
        Value::Str(s) => Value::Str(Cow::Owned(lossy(
            &s.as_bytes()[ix[0] as usize..ix[1] as usize],
        ))),
        Value::Arr(a) => Value::Arr(Rc::new(a[ix[0] as usize..ix[1] as usize].to_vec())),
        _ => Value::Nil,
    })
}

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn basic_kind(v: &Value<'_>) -> Kind {
    match v {
        Value::Nil | Value::NilIface => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Int64(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

fn go_eq(a: &Value<'_>, rest: &[Value<'_>]) -> Result<bool, String> {
    if matches!(a, Value::Labels | Value::Obj(_) | Value::Arr(_)) {
        return Err("invalid type for comparison".into());
    }
    let ka = basic_kind(a);
    for b in rest {
        let kb = basic_kind(b);
        let truth = if ka != kb {
            if ka != Kind::Invalid && kb != Kind::Invalid {
                return Err("incompatible types for comparison".into());
            }
            false
        } else {
            match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::Str(x), Value::Str(y)) => x == y,
                (Value::Time(x), Value::Time(y)) => x == y,
                (Value::Int(x) | Value::Int64(x), Value::Int(y) | Value::Int64(y)) => x == y,
                (Value::Nil | Value::NilIface, Value::Nil | Value::NilIface) => true,
                (_, Value::Labels | Value::Obj(_) | Value::Arr(_)) => {
                    return Err(format!("non-comparable type {}", b.type_name()))
                }
                _ => return Err("incompatible types for comparison".into()),
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn go_lt(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
    let (ka, kb) = (basic_kind(a), basic_kind(b));
    if matches!(ka, Kind::Invalid | Kind::Other) || matches!(kb, Kind::Invalid | Kind::Other) {
        return Err("invalid type for comparison".into());
    }
    if ka != kb {
        return Err("incompatible types for comparison".into());
    }
    Ok(match (a, b) {
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Str(x), Value::Str(y)) => x < y,
        (Value::Int(x) | Value::Int64(x), Value::Int(y) | Value::Int64(y)) => x < y,
        _ => return Err("invalid type for comparison".into()),
    })
}

/// text/template's `evalArgs` for html/js/urlquery.
fn eval_args(a: &[Value<'_>], lb: &LabelsBuilder) -> String {
    if let [Value::Str(s)] = a {
        return s.to_string();
    }
    let printable: Vec<Value<'_>> = a
        .iter()
        .map(|v| match v {
            Value::Nil => Value::Str(Cow::Borrowed("<no value>")),
            v => v.clone(),
        })
        .collect();
    go_sprint(&printable, lb, false)
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '\'' => o.push_str("&#39;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&#34;"),
            '\0' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

fn js_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\'' => o.push_str("\\'"),
            '"' => o.push_str("\\\""),
            '<' => o.push_str("\\u003C"),
            '>' => o.push_str("\\u003E"),
            '&' => o.push_str("\\u0026"),
            '=' => o.push_str("\\u003D"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c if !c.is_ascii() && !is_print(c) => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// fmt

#[derive(Default, Clone, Copy)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    sharp_v: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

fn write_padding(out: &mut String, n: usize, f: &Flags) {
    let c = if f.zero && !f.minus { '0' } else { ' ' };
    out.extend(std::iter::repeat_n(c, n));
}

/// fmt's `pad`: width counted in runes.
fn pad(out: &mut String, s: &str, f: &Flags) {
    let Some(w) = f.wid.filter(|w| *w > 0) else {
        out.push_str(s);
        return;
    };
    let n = w.saturating_sub(s.chars().count());
    if f.minus {
        out.push_str(s);
        write_padding(out, n, f);
    } else {
        write_padding(out, n, f);
        out.push_str(s);
    }
}

fn go_sprint(a: &[Value<'_>], lb: &LabelsBuilder, ln: bool) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, v) in a.iter().enumerate() {
        let is_string = matches!(v, Value::Str(_));
        if i > 0 && (ln || (!is_string && !prev_string)) {
            out.push(' ');
        }
        fmt_value(&mut out, v, 'v', &Flags::default(), lb);
        prev_string = is_string;
    }
    if ln {
        out.push('\n');
    }
    out
}

fn go_sprintf(format: &str, a: &[Value<'_>], lb: &LabelsBuilder) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let b = format.as_bytes();
    let end = b.len();
    let mut i = 0;
    let mut arg_num = 0usize;
    let mut reordered = false;
    // `[n]` argument index; returns (argNum, i, found, ok).
    let arg_number =
        |arg_num: usize, i: usize, reordered: &mut bool| -> (usize, usize, bool, bool) {
            if i >= end || b[i] != b'[' {
                return (arg_num, i, false, true);
            }
            *reordered = true;
            let mut j = i + 1;
            while j < end && b[j] != b']' {
                j += 1;
            }
            if j >= end {
                return (arg_num, i + 1, false, false);
            }
            match format[i + 1..j].parse::<usize>() {
                Ok(n) if n >= 1 && n <= a.len() => (n - 1, j + 1, true, true),
                _ => (arg_num, j + 1, true, false),
            }
        };
    let parse_num = |i: usize| -> (Option<usize>, usize) {
        let mut j = i;
        let mut n: usize = 0;
        while j < end && b[j].is_ascii_digit() {
            n = n.saturating_mul(10).saturating_add((b[j] - b'0') as usize);
            j += 1;
        }
        if j == i {
            (None, i)
        } else {
            (Some(n.min(1_000_000)), j)
        }
    };
    while i < end {
        let lasti = i;
        while i < end && b[i] != b'%' {
            i += 1;
        }
        out.push_str(&format[lasti..i]);
        if i >= end {
            break;
        }
        i += 1;
        let mut f = Flags::default();
        let mut good_arg = true;
        while i < end {
            match b[i] {
                b'#' => f.sharp = true,
                b'0' => f.zero = !f.minus,
                b'+' => f.plus = true,
                b'-' => {
                    f.minus = true;
                    f.zero = false;
                }
                b' ' => f.space = true,
                _ => break,
            }
            i += 1;
        }
        let (n, ni, mut after_index, ok) = arg_number(arg_num, i, &mut reordered);
        arg_num = n;
        i = ni;
        good_arg &= ok;
        if i < end && b[i] == b'*' {
            i += 1;
            match a.get(arg_num) {
                Some(Value::Int(w) | Value::Int64(w)) => {
                    if *w < 0 {
                        f.minus = true;
                        f.zero = false;
                    }
                    f.wid = Some((w.unsigned_abs() as usize).min(1_000_000));
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            arg_num += 1;
            after_index = false;
        } else {
            let (w, ni) = parse_num(i);
            f.wid = w;
            i = ni;
            if after_index && w.is_some() {
                good_arg = false;
            }
        }
        if i + 1 < end && b[i] == b'.' {
            i += 1;
            if after_index {
                good_arg = false;
            }
            let (n, ni, ai, ok) = arg_number(arg_num, i, &mut reordered);
            arg_num = n;
            i = ni;
            after_index = ai;
            good_arg &= ok;
            if i < end && b[i] == b'*' {
                i += 1;
                match a.get(arg_num) {
                    Some(Value::Int(p) | Value::Int64(p)) if *p >= 0 => {
                        f.prec = Some((*p as usize).min(1_000_000))
                    }
                    Some(Value::Int(_) | Value::Int64(_)) => f.prec = None,
                    _ => out.push_str("%!(BADPREC)"),
                }
                arg_num += 1;
                after_index = false;
            } else {
                let (p, ni) = parse_num(i);
                f.prec = Some(p.unwrap_or(0));
                i = ni;
            }
        } else if i < end && b[i] == b'.' {
            i += 1;
            f.prec = Some(0);
        }
        if !after_index {
            let (n, ni, ai, ok) = arg_number(arg_num, i, &mut reordered);
            arg_num = n;
            i = ni;
            let _ = ai;
            good_arg &= ok;
        }
        let Some(verb) = format[i.min(end)..].chars().next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
        } else if !good_arg {
            let _ = write!(out, "%!{verb}(BADINDEX)");
        } else if arg_num >= a.len() {
            let _ = write!(out, "%!{verb}(MISSING)");
        } else {
            if verb == 'v' {
                f.sharp_v = f.sharp;
                f.sharp = false;
                f.plus = false;
            }
            fmt_value(&mut out, &a[arg_num], verb, &f, lb);
            arg_num += 1;
        }
    }
    if !reordered && arg_num < a.len() {
        out.push_str("%!(EXTRA ");
        for (k, v) in a[arg_num..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            if matches!(v, Value::Nil) {
                out.push_str("<nil>");
            } else {
                out.push_str(v.type_name());
                out.push('=');
                fmt_value(&mut out, v, 'v', &Flags::default(), lb);
            }
        }
        out.push(')');
    }
    out
}

fn bad_verb(out: &mut String, v: &Value<'_>, verb: char, f: &Flags, lb: &LabelsBuilder) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Time(t) => {
            out.push_str("time.Time=");
            pad(out, &t.to_string(), f);
        }
        v => {
            out.push_str(v.type_name());
            out.push('=');
            fmt_value(out, v, 'v', f, lb);
        }
    }
    out.push(')');
}

/// `fmt`'s printArg for one value.
fn fmt_value(out: &mut String, v: &Value<'_>, verb: char, f: &Flags, lb: &LabelsBuilder) {
    if verb == 'T' {
        pad(out, v.type_name(), f);
        return;
    }
    match v {
        Value::Nil | Value::NilIface => match verb {
            'v' => pad(out, "<nil>", f),
            _ => bad_verb(out, &Value::Nil, verb, f, lb),
        },
        Value::Bool(b) => match verb {
            't' | 'v' => pad(out, if *b { "true" } else { "false" }, f),
            _ => bad_verb(out, v, verb, f, lb),
        },
        Value::Int(n) | Value::Int64(n) => match verb {
            'v' | 'd' => fmt_integer(out, *n, 10, verb, f),
            'b' => fmt_integer(out, *n, 2, verb, f),
            'o' | 'O' => fmt_integer(out, *n, 8, verb, f),
            'x' | 'X' => fmt_integer(out, *n, 16, verb, f),
            'c' => pad(
                out,
                &char::from_u32(*n as u32)
                    .filter(|_| (0..=0x10FFFF).contains(n))
                    .unwrap_or('\u{FFFD}')
                    .to_string(),
                f,
            ),
            'q' => {
                let c = char::from_u32(*n as u32)
                    .filter(|_| (0..=0x10FFFF).contains(n))
                    .unwrap_or('\u{FFFD}');
                pad(out, &go_quote_rune(c, f.plus), f)
            }
            'U' => {
                let mut s = format!("U+{:04X}", n);
                if f.sharp {
                    if let Some(c) = char::from_u32(*n as u32).filter(|c| is_print(*c)) {
                        let _ = write!(s, " '{c}'");
                    }
                }
                pad(out, &s, f)
            }
            _ => bad_verb(out, v, verb, f, lb),
        },
        Value::Float(x) => match verb {
            'v' => fmt_float(out, *x, b'g', -1, f),
            'b' | 'g' | 'G' | 'x' | 'X' => {
                let c = if verb == 'G' { b'G' } else { b'g' };
                fmt_float(out, *x, c, f.prec.map(|p| p as i32).unwrap_or(-1), f)
            }
            'f' | 'F' | 'e' | 'E' => {
                let c = match verb {
                    'F' => b'f',
                    c => c as u8,
                };
                fmt_float(out, *x, c, f.prec.map(|p| p as i32).unwrap_or(6), f)
            }
            _ => bad_verb(out, v, verb, f, lb),
        },
        Value::Str(s) => fmt_string(out, s, verb, f, v, lb),
        Value::Time(t) => match verb {
            'v' | 's' | 'x' | 'X' | 'q' => fmt_string(out, &t.to_string(), verb, f, v, lb),
            _ => bad_verb(out, v, verb, f, lb),
        },
        Value::Labels => {
            out.push_str("map[");
            for (k, (name, val)) in label_pairs(lb).into_iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                fmt_value(out, &Value::Str(Cow::Borrowed(name)), verb, f, lb);
                out.push(':');
                fmt_value(out, &Value::Str(Cow::Borrowed(val)), verb, f, lb);
            }
            out.push(']');
        }
        Value::Obj(m) => {
            out.push_str("map[");
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (k, key) in keys.into_iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                fmt_value(out, &Value::Str(Cow::Borrowed(key)), verb, f, lb);
                out.push(':');
                fmt_value(out, &json_val(&m[key.as_str()]), verb, f, lb);
            }
            out.push(']');
        }
        Value::Arr(a) => {
            out.push('[');
            for (k, e) in a.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                fmt_value(out, &json_val(e), verb, f, lb);
            }
            out.push(']');
        }
    }
}

fn fmt_string(out: &mut String, s: &str, verb: char, f: &Flags, v: &Value<'_>, lb: &LabelsBuilder) {
    let truncated = |s: &str| -> String {
        match f.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.to_string(),
        }
    };
    match verb {
        'v' if f.sharp_v => pad(out, &go_quote(s, false), f),
        'v' | 's' => match f.prec {
            None => pad(out, s, f),
            Some(_) => pad(out, &truncated(s), f),
        },
        'q' => {
            let t = truncated(s);
            let q =
                if f.sharp && !t.contains('`') && t.chars().all(|c| c == '\t' || !c.is_control()) {
                    format!("`{t}`")
                } else {
                    go_quote(&t, f.plus)
                };
            pad(out, &q, f)
        }
        'x' | 'X' => {
            let digits: &[u8; 16] = if verb == 'x' {
                b"0123456789abcdef"
            } else {
                b"0123456789ABCDEF"
            };
            let bytes = s.as_bytes();
            let len = f.prec.map_or(bytes.len(), |p| p.min(bytes.len()));
            let mut width = 2 * len;
            if width > 0 {
                if f.space {
                    if f.sharp {
                        width *= 2;
                    }
                    width += len - 1;
                } else if f.sharp {
                    width += 2;
                }
            } else {
                if let Some(w) = f.wid {
                    write_padding(out, w, f);
                }
                return;
            }
            let w = f.wid.unwrap_or(0);
            if w > width && !f.minus {
                write_padding(out, w - width, f);
            }
            if f.sharp {
                out.push('0');
                out.push(verb);
            }
            for (k, c) in bytes[..len].iter().enumerate() {
                if f.space && k > 0 {
                    out.push(' ');
                    if f.sharp {
                        out.push('0');
                        out.push(verb);
                    }
                }
                out.push(digits[(c >> 4) as usize] as char);
                out.push(digits[(c & 15) as usize] as char);
            }
            if w > width && f.minus {
                write_padding(out, w - width, f);
            }
        }
        _ => bad_verb(out, v, verb, f, lb),
    }
}

fn fmt_integer(out: &mut String, v: i64, base: u32, verb: char, f: &Flags) {
    let neg = v < 0;
    let mut u = (v as i128).unsigned_abs();
    let mut prec = 0usize;
    if let Some(p) = f.prec {
        prec = p;
        if p == 0 && v == 0 {
            let nf = Flags { zero: false, ..*f };
            write_padding(out, f.wid.unwrap_or(0), &nf);
            return;
        }
    } else if f.zero && !f.minus {
        if let Some(w) = f.wid {
            prec = w;
            if neg || f.plus || f.space {
                prec = prec.saturating_sub(1);
            }
        }
    }
    let digits: &[u8] = if verb == 'X' {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        buf.push(digits[(u % base as u128) as usize]);
        u /= base as u128;
        if u == 0 {
            break;
        }
    }
    while buf.len() < prec {
        buf.push(b'0');
    }
    if f.sharp {
        match base {
            2 => buf.extend_from_slice(b"b0"),
            8 if buf.last() != Some(&b'0') => buf.push(b'0'),
            16 => {
                buf.push(if verb == 'X' { b'X' } else { b'x' });
                buf.push(b'0');
            }
            _ => {}
        }
    }
    if verb == 'O' {
        buf.extend_from_slice(b"o0");
    }
    if neg {
        buf.push(b'-');
    } else if f.plus {
        buf.push(b'+');
    } else if f.space {
        buf.push(b' ');
    }
    buf.reverse();
    let s = String::from_utf8_lossy(&buf);
    pad(out, &s, &Flags { zero: false, ..*f });
}

fn fmt_float(out: &mut String, v: f64, verb: u8, prec: i32, f: &Flags) {
    let s = format_float(v, verb, prec);
    let mut num = if s.starts_with('-') || s.starts_with('+') {
        s
    } else {
        format!("+{s}")
    };
    if f.space && num.starts_with('+') && !f.plus {
        num.replace_range(0..1, " ");
    }
    if num[1..].starts_with('I') || num[1..].starts_with('N') {
        if num[1..].starts_with('N') && !f.space && !f.plus {
            num.remove(0);
        }
        pad(out, &num, &Flags { zero: false, ..*f });
        return;
    }
    if f.plus || !num.starts_with('+') {
        if f.zero && !f.minus && f.wid.is_some_and(|w| w > num.len()) {
            out.push_str(&num[..1]);
            write_padding(out, f.wid.unwrap_or(0) - num.len(), f);
            out.push_str(&num[1..]);
            return;
        }
        pad(out, &num, f);
        return;
    }
    pad(out, &num[1..], f);
}

/// Decimal digits (no trailing zeros) and decimal point position of |v|.
fn float_digits(a: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    if a == 0.0 {
        return (Vec::new(), 0);
    }
    let s = match sig {
        None => format!("{a:e}"),
        Some(n) => format!("{:.*e}", n.saturating_sub(1), a),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    (digits, exp + 1)
}

/// `strconv.FormatFloat(v, fmt, prec, 64)` for e, f, g.
fn format_float(v: f64, fmt: u8, prec: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let mut out = String::new();
    if v.is_sign_negative() {
        out.push('-');
    }
    let a = v.abs();
    if (fmt == b'f' || fmt == b'F') && prec >= 0 {
        let _ = write!(out, "{:.*}", prec as usize, a);
        return out;
    }
    let shortest = prec < 0;
    let (digs, dp) = if shortest {
        float_digits(a, None)
    } else {
        match fmt {
            b'e' | b'E' => float_digits(a, Some(prec as usize + 1)),
            _ => float_digits(a, Some(prec.max(1) as usize)),
        }
    };
    let nd = digs.len() as i32;
    match fmt {
        b'e' | b'E' => {
            let p = if shortest { (nd - 1).max(0) } else { prec };
            fmt_e(&mut out, &digs, dp, p, fmt);
        }
        b'f' | b'F' => fmt_f(&mut out, &digs, dp, (nd - dp).max(0)),
        _ => {
            let mut p = if shortest { nd } else { prec.max(1) };
            let mut eprec = p;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec {
                if p > nd {
                    p = nd;
                }
                fmt_e(&mut out, &digs, dp, (p - 1).max(0), fmt + b'e' - b'g');
            } else {
                if p > dp {
                    p = nd;
                }
                fmt_f(&mut out, &digs, dp, (p - dp).max(0));
            }
        }
    }
    out
}

fn fmt_e(out: &mut String, digs: &[u8], dp: i32, prec: i32, e: u8) {
    out.push(*digs.first().unwrap_or(&b'0') as char);
    if prec > 0 {
        out.push('.');
        let m = digs.len().min(prec as usize + 1);
        for d in digs.iter().take(m).skip(1) {
            out.push(*d as char);
        }
        for _ in m.max(1)..=prec as usize {
            out.push('0');
        }
    }
    out.push(e as char);
    let mut exp = if digs.is_empty() { 0 } else { dp - 1 };
    if exp < 0 {
        out.push('-');
        exp = -exp;
    } else {
        out.push('+');
    }
    if exp < 10 {
        out.push('0');
    }
    let _ = write!(out, "{exp}");
}

fn fmt_f(out: &mut String, digs: &[u8], dp: i32, prec: i32) {
    if dp > 0 {
        let m = digs.len().min(dp as usize);
        for d in &digs[..m] {
            out.push(*d as char);
        }
        for _ in m..dp as usize {
            out.push('0');
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            let j = dp + i - 1;
            let c = if j >= 0 && (j as usize) < digs.len() {
                digs[j as usize] as char
            } else {
                '0'
            };
            out.push(c);
        }
    }
}

/// Approximation of Go's `unicode.IsPrint`.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0xAD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064 | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF)
        || (0xD800..=0xDFFF).contains(&(c as u32)))
}

fn push_escaped(o: &mut String, c: char, quote: char, ascii: bool) {
    if c == quote || c == '\\' {
        o.push('\\');
        o.push(c);
        return;
    }
    if (!ascii || c.is_ascii()) && is_print(c) {
        o.push(c);
        return;
    }
    match c {
        '\x07' => o.push_str("\\a"),
        '\x08' => o.push_str("\\b"),
        '\x0c' => o.push_str("\\f"),
        '\n' => o.push_str("\\n"),
        '\r' => o.push_str("\\r"),
        '\t' => o.push_str("\\t"),
        '\x0b' => o.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(o, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(o, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(o, "\\U{:08x}", c as u32);
        }
    }
}

/// `strconv.Quote` (or `QuoteToASCII`).
fn go_quote(s: &str, ascii: bool) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        push_escaped(&mut o, c, '"', ascii);
    }
    o.push('"');
    o
}

fn go_quote_rune(c: char, ascii: bool) -> String {
    let mut o = String::from("'");
    push_escaped(&mut o, c, '\'', ascii);
    o.push('\'');
    o
}

/// `strings.ToUpper`: per-rune simple case mapping.
fn go_upper(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    s.chars()
        .map(|c| {
            let mut m = c.to_uppercase();
            match (m.next(), m.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// `strings.ToLower`: per-rune simple case mapping.
fn go_lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// `strings.Title`.
fn go_title(s: &str) -> String {
    let is_sep = |c: char| -> bool {
        if c.is_ascii() {
            return !(c.is_ascii_alphanumeric() || c == '_');
        }
        if c.is_alphanumeric() {
            return false;
        }
        c.is_whitespace()
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let r = if is_sep(prev) {
                let mut m = c.to_uppercase();
                match (m.next(), m.next()) {
                    (Some(u), None) => u,
                    _ => c,
                }
            } else {
                c
            };
            prev = c;
            r
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Encodings, sizes, durations, decimals, regexps

/// `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(c as char)
            }
            b' ' => o.push('+'),
            c => {
                let _ = write!(o, "%{c:02X}");
            }
        }
    }
    o
}

/// `url.QueryUnescape`.
fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut o = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (
                    b.get(i + 1).and_then(|c| hex(*c)),
                    b.get(i + 2).and_then(|c| hex(*c)),
                ) {
                    (Some(h), Some(l)) => {
                        o.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        let end = (i + 3).min(b.len());
                        return Err(format!(
                            "invalid URL escape {}",
                            go_quote(&lossy(&b[i..end]), false)
                        ));
                    }
                }
            }
            b'+' => {
                o.push(b' ');
                i += 1;
            }
            c => {
                o.push(c);
                i += 1;
            }
        }
    }
    Ok(lossy(&o))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(b: &[u8]) -> String {
    let mut o = String::with_capacity(b.len().div_ceil(3) * 4);
    for ch in b.chunks(3) {
        let n = (ch[0] as u32) << 16
            | (*ch.get(1).unwrap_or(&0) as u32) << 8
            | *ch.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= ch.len() {
                o.push(B64[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

/// `base64.StdEncoding.DecodeString`; errors as `illegal base64 data at input byte N`.
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let err = |i: usize| format!("illegal base64 data at input byte {i}");
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut quantum: Vec<u32> = Vec::with_capacity(4);
    let mut pad_at: Option<usize> = None;
    let mut padding = 0;
    for (i, c) in s.bytes().enumerate() {
        if c == b'\r' || c == b'\n' {
            continue;
        }
        if c == b'=' {
            if quantum.len() < 2 {
                return Err(err(i));
            }
            if pad_at.is_none() {
                pad_at = Some(i);
            }
            padding += 1;
            if quantum.len() + padding > 4 {
                return Err(err(i));
            }
            continue;
        }
        if pad_at.is_some() {
            return Err(err(i));
        }
        let Some(v) = B64.iter().position(|&x| x == c) else {
            return Err(err(i));
        };
        quantum.push(v as u32);
        if quantum.len() == 4 {
            let n = quantum[0] << 18 | quantum[1] << 12 | quantum[2] << 6 | quantum[3];
            out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
            quantum.clear();
        }
    }
    if !quantum.is_empty() {
        if quantum.len() + padding != 4 {
            return Err(err(s.len()));
        }
        let mut n = 0u32;
        for (k, q) in quantum.iter().enumerate() {
            n |= q << (18 - 6 * k);
        }
        out.push((n >> 16) as u8);
        if quantum.len() == 3 {
            out.push((n >> 8) as u8);
        }
    } else if padding > 0 {
        return Err(err(pad_at.unwrap_or(0)));
    }
    Ok(out)
}

/// go-humanize's `ParseBytes`.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let mut last = 0;
    let mut has_comma = false;
    for (i, c) in s.char_indices() {
        if !(c.is_numeric() || c == '.' || c == ',') {
            break;
        }
        if c == ',' {
            has_comma = true;
        }
        last = i + c.len_utf8();
    }
    let mut num = s[..last].to_string();
    if has_comma {
        num = num.replace(',', "");
    }
    let f = go_parse_float(&num).ok_or_else(|| {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(&num, false)
        )
    })?;
    let extra = s[last..].trim().to_lowercase();
    let mult: u64 = match extra.as_str() {
        "b" | "" => 1,
        "kib" | "ki" => 1 << 10,
        "kb" | "k" => 1000,
        "mib" | "mi" => 1 << 20,
        "mb" | "m" => 1_000_000,
        "gib" | "gi" => 1 << 30,
        "gb" | "g" => 1_000_000_000,
        "tib" | "ti" => 1 << 40,
        "tb" | "t" => 1_000_000_000_000,
        "pib" | "pi" => 1 << 50,
        "pb" | "p" => 1_000_000_000_000_000,
        "eib" | "ei" => 1 << 60,
        "eb" | "e" => 1_000_000_000_000_000_000,
        _ => return Err(format!("unhandled size name: {extra}")),
    };
    let v = f * mult as f64;
    if v >= u64::MAX as f64 {
        return Err(format!("too large: {s}"));
    }
    Ok(v as u64)
}

/// `time.ParseDuration`, in nanoseconds.
fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig, false));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let mut i = 0;
        let mut v: u64 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add((b[i] - b'0') as u64))
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(invalid)?;
            i += 1;
        }
        let pre = i > 0;
        let mut f: u64 = 0;
        let mut scale = 1f64;
        let mut post = false;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let st = i;
            let mut overflow = false;
            while i < b.len() && b[i].is_ascii_digit() {
                if !overflow {
                    match f
                        .checked_mul(10)
                        .and_then(|y| y.checked_add((b[i] - b'0') as u64))
                    {
                        Some(y) if y <= 1 << 63 => {
                            f = y;
                            scale *= 10.0;
                        }
                        _ => overflow = true,
                    }
                }
                i += 1;
            }
            post = i > st;
        }
        if !pre && !post {
            return Err(invalid());
        }
        let ustart = i;
        while i < b.len() && !(b[i] == b'.' || b[i].is_ascii_digit()) {
            i += 1;
        }
        if i == ustart {
            return Err(format!(
                "time: missing unit in duration {}",
                go_quote(orig, false)
            ));
        }
        let u = &s[ustart..i];
        let unit: u64 = match u {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(u, false),
                    go_quote(orig, false)
                ))
            }
        };
        s = &s[i..];
        if v > (1u64 << 63) / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > 1 << 63 {
                return Err(invalid());
            }
        }
        d += v;
        if d > 1 << 63 {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((d as i128).wrapping_neg() as i64);
    }
    if d > i64::MAX as u64 {
        return Err(invalid());
    }
    Ok(d as i64)
}

#[derive(Clone, Copy)]
enum DecOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// An exact decimal `m * 10^e` (shopspring/decimal for Sprig's float math).
#[derive(Clone, Copy)]
struct Dec {
    m: i128,
    e: i32,
}

fn dec_from_f64(f: f64) -> Option<Dec> {
    if f == 0.0 {
        return Some(Dec { m: 0, e: 0 });
    }
    let s = format!("{f:e}");
    let (mant, exp) = s.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let m: i128 = digits.parse().ok()?;
    Some(Dec {
        m: if mant.starts_with('-') { -m } else { m },
        e: exp - (digits.len() as i32 - 1),
    })
}

fn pow10(n: i32) -> Option<i128> {
    10i128.checked_pow(u32::try_from(n).ok()?)
}

fn dec_apply(a: Dec, b: Dec, op: DecOp) -> Option<Dec> {
    match op {
        DecOp::Add | DecOp::Sub => {
            let e = a.e.min(b.e);
            let am = a.m.checked_mul(pow10(a.e - e)?)?;
            let mut bm = b.m.checked_mul(pow10(b.e - e)?)?;
            if matches!(op, DecOp::Sub) {
                bm = -bm;
            }
            Some(Dec {
                m: am.checked_add(bm)?,
                e,
            })
        }
        DecOp::Mul => Some(Dec {
            m: a.m.checked_mul(b.m)?,
            e: a.e + b.e,
        }),
        DecOp::Div => {
            // Rounded half away from zero to 16 decimal places (decimal.DivisionPrecision).
            let k = a.e - b.e + 16;
            let (num, den) = if k >= 0 {
                (a.m.checked_mul(pow10(k)?)?, b.m)
            } else {
                (a.m, b.m.checked_mul(pow10(-k)?)?)
            };
            let mut q = num / den;
            let r = num % den;
            if r.checked_abs()?.checked_mul(2)? >= den.checked_abs()? {
                q += if (num < 0) == (den < 0) { 1 } else { -1 };
            }
            Some(Dec { m: q, e: -16 })
        }
    }
}

fn decimal_op(first: &Value<'_>, rest: &[Value<'_>], op: DecOp) -> Result<f64, String> {
    let conv = |v: &Value<'_>| -> Result<f64, String> {
        let f = cast_float(v);
        if f.is_finite() {
            Ok(f)
        } else {
            let mut s = String::new();
            fmt_float(&mut s, f, b'g', -1, &Flags::default());
            Err(format!("Cannot create a Decimal from {s}"))
        }
    };
    let mut acc_f = conv(first)?;
    let mut acc = dec_from_f64(acc_f);
    for v in rest {
        let x = conv(v)?;
        if matches!(op, DecOp::Div) && x == 0.0 {
            return Err("decimal division by zero".into());
        }
        acc = match (acc, dec_from_f64(x)) {
            (Some(a), Some(b)) => dec_apply(a, b, op),
            _ => None,
        };
        acc_f = match op {
            DecOp::Add => acc_f + x,
            DecOp::Sub => acc_f - x,
            DecOp::Mul => acc_f * x,
            DecOp::Div => acc_f / x,
        };
        if let Some(d) = acc {
            acc_f = format!("{}e{}", d.m, d.e).parse().unwrap_or(acc_f);
        }
    }
    Ok(acc_f)
}

/// Compiles a Go (RE2) regexp: Perl classes are ASCII-only in Go.
fn go_regex(pat: &str) -> Result<Regex, String> {
    let mut t = String::with_capacity(pat.len() + 8);
    let mut it = pat.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            t.push(c);
            continue;
        }
        match it.next() {
            Some('d') => t.push_str("[0-9]"),
            Some('D') => t.push_str("[^0-9]"),
            Some('w') => t.push_str("[0-9A-Za-z_]"),
            Some('W') => t.push_str("[^0-9A-Za-z_]"),
            Some('s') => t.push_str("[\\t\\n\\f\\r ]"),
            Some('S') => t.push_str("[^\\t\\n\\f\\r ]"),
            Some(o) => {
                t.push('\\');
                t.push(o);
            }
            None => t.push('\\'),
        }
    }
    Regex::new(&t).map_err(|e| {
        let msg = e.to_string();
        let detail = msg
            .lines()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or("invalid regexp")
            .to_string();
        format!("error parsing regexp: {detail}: `{pat}`")
    })
}

fn unix_to_time(epoch: &str) -> Result<GoTime, String> {
    let i =
        go_parse_int_base10(epoch).map_err(|e| format!("unable to parse time '{epoch}': {e}"))?;
    Ok(match epoch.len() {
        5 => GoTime::unix(i.wrapping_mul(86400), 0),
        10 => GoTime::unix(i, 0),
        13 => GoTime::from_nanos(i.wrapping_mul(1_000_000)),
        16 => GoTime::from_nanos(i.wrapping_mul(1000)),
        19 => GoTime::from_nanos(i),
        _ => return Err(format!("unable to parse time '{epoch}': %!w(<nil>)")),
    })
}

/// `strconv.ParseInt(s, 10, 64)` with Go's error text.
fn go_parse_int_base10(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            go_quote(s, false)
        ));
    }
    s.parse::<i64>().map_err(|_| {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            go_quote(s, false)
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Go time

/// A Go `time.Time`: Unix seconds and nanoseconds plus a fixed zone (`zone` empty = unnamed).
#[derive(Debug, Clone, PartialEq)]
struct GoTime {
    sec: i64,
    nsec: u32,
    offset: i32,
    zone: String,
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    yday: u32,
    wday: u32,
    hour: u32,
    min: u32,
    sec: u32,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in(m: u32, y: i64) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl GoTime {
    fn unix(sec: i64, nsec: u32) -> GoTime {
        GoTime {
            sec,
            nsec,
            offset: 0,
            zone: "UTC".into(),
        }
    }

    fn from_nanos(ns: i64) -> GoTime {
        GoTime::unix(
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000) as u32,
        )
    }

    /// Go's zero time, January 1, year 1, 00:00:00 UTC.
    fn zero() -> GoTime {
        GoTime::unix(-62135596800, 0)
    }

    fn now() -> GoTime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        GoTime::unix(d.as_secs() as i64, d.subsec_nanos())
    }

    fn in_utc(&self) -> GoTime {
        GoTime::unix(self.sec, self.nsec)
    }

    fn unix_nano(&self) -> i64 {
        self.sec
            .wrapping_mul(1_000_000_000)
            .wrapping_add(self.nsec as i64)
    }

    fn civil(&self) -> Civil {
        let local = self.sec + self.offset as i64;
        let days = local.div_euclid(86400);
        let sod = local.rem_euclid(86400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            yday: (days - days_from_civil(year, 1, 1) + 1) as u32,
            wday: (days + 4).rem_euclid(7) as u32,
            hour: sod / 3600,
            min: sod / 60 % 60,
            sec: sod % 60,
        }
    }
}

impl Display for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&go_format(self, "2006-01-02 15:04:05.999999999 -0700 MST"))
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    Iso8601TZ,
    Iso8601SecondsTZ,
    Iso8601ShortTZ,
    Iso8601ColonTZ,
    Iso8601ColonSecondsTZ,
    NumTZ,
    NumSecondsTz,
    NumShortTZ,
    NumColonTZ,
    NumColonSecondsTZ,
    /// `.000` (digit '0') or `.999` (digit '9'), with the separator and digit count.
    Frac(u8, u8, usize),
}

/// Go's `nextStdChunk`: (prefix, element, rest).
fn next_std_chunk(layout: &str) -> (&str, Option<Std>, &str) {
    let b = layout.as_bytes();
    let at = |i: usize, s: &str| layout.get(i..).is_some_and(|r| r.starts_with(s));
    let lower_at = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_lowercase());
    let mut i = 0;
    while i < b.len() {
        let hit: Option<(Std, usize)> = match b[i] {
            b'J' if at(i, "Jan") => {
                if at(i, "January") {
                    Some((Std::LongMonth, 7))
                } else if !lower_at(i + 3) {
                    Some((Std::Month, 3))
                } else {
                    None
                }
            }
            b'M' => {
                if at(i, "Monday") {
                    Some((Std::LongWeekDay, 6))
                } else if at(i, "Mon") && !lower_at(i + 3) {
                    Some((Std::WeekDay, 3))
                } else if at(i, "MST") {
                    Some((Std::TZ, 3))
                } else {
                    None
                }
            }
            b'0' => match b.get(i + 1) {
                Some(c @ b'1'..=b'6') => Some((
                    [
                        Std::ZeroMonth,
                        Std::ZeroDay,
                        Std::ZeroHour12,
                        Std::ZeroMinute,
                        Std::ZeroSecond,
                        Std::Year,
                    ][(c - b'1') as usize],
                    2,
                )),
                _ if at(i + 1, "02") => Some((Std::ZeroYearDay, 3)),
                _ => None,
            },
            b'1' => {
                if b.get(i + 1) == Some(&b'5') {
                    Some((Std::Hour, 2))
                } else {
                    Some((Std::NumMonth, 1))
                }
            }
            b'2' => {
                if at(i, "2006") {
                    Some((Std::LongYear, 4))
                } else {
                    Some((Std::Day, 1))
                }
            }
            b'_' => {
                if b.get(i + 1) == Some(&b'2') {
                    if at(i + 1, "2006") {
                        return (&layout[..i + 1], Some(Std::LongYear), &layout[i + 5..]);
                    }
                    Some((Std::UnderDay, 2))
                } else if at(i + 1, "_2") {
                    Some((Std::UnderYearDay, 3))
                } else {
                    None
                }
            }
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if b.get(i + 1) == Some(&b'M') => Some((Std::PM, 2)),
            b'p' if b.get(i + 1) == Some(&b'm') => Some((Std::Pm, 2)),
            b'-' => {
                if at(i, "-070000") {
                    Some((Std::NumSecondsTz, 7))
                } else if at(i, "-07:00:00") {
                    Some((Std::NumColonSecondsTZ, 9))
                } else if at(i, "-0700") {
                    Some((Std::NumTZ, 5))
                } else if at(i, "-07:00") {
                    Some((Std::NumColonTZ, 6))
                } else if at(i, "-07") {
                    Some((Std::NumShortTZ, 3))
                } else {
                    None
                }
            }
            b'Z' => {
                if at(i, "Z070000") {
                    Some((Std::Iso8601SecondsTZ, 7))
                } else if at(i, "Z07:00:00") {
                    Some((Std::Iso8601ColonSecondsTZ, 9))
                } else if at(i, "Z0700") {
                    Some((Std::Iso8601TZ, 5))
                } else if at(i, "Z07:00") {
                    Some((Std::Iso8601ColonTZ, 6))
                } else if at(i, "Z07") {
                    Some((Std::Iso8601ShortTZ, 3))
                } else {
                    None
                }
            }
            sep @ (b'.' | b',') => match b.get(i + 1) {
                Some(&ch @ (b'0' | b'9')) => {
                    let mut j = i + 1;
                    while j < b.len() && b[j] == ch {
                        j += 1;
                    }
                    if !b.get(j).is_some_and(u8::is_ascii_digit) {
                        return (
                            &layout[..i],
                            Some(Std::Frac(sep, ch, j - (i + 1))),
                            &layout[j..],
                        );
                    }
                    None
                }
                _ => None,
            },
            _ => None,
        };
        if let Some((std, len)) = hit {
            return (&layout[..i], Some(std), &layout[i + len..]);
        }
        i += 1;
    }
    (layout, None, "")
}

fn push_int(out: &mut String, v: i64, width: usize) {
    if v < 0 {
        out.push('-');
    }
    let s = v.unsigned_abs().to_string();
    for _ in s.len()..width {
        out.push('0');
    }
    out.push_str(&s);
}

/// Go's `Time.Format`.
fn go_format(t: &GoTime, layout: &str) -> String {
    let c = t.civil();
    let mut out = String::with_capacity(layout.len() + 10);
    let mut rest = layout;
    loop {
        let (prefix, std, suffix) = next_std_chunk(rest);
        out.push_str(prefix);
        let Some(std) = std else { break };
        rest = suffix;
        match std {
            Std::Year => push_int(&mut out, (c.year % 100).abs(), 2),
            Std::LongYear => push_int(&mut out, c.year, 4),
            Std::Month => out.push_str(&MONTHS[c.month as usize - 1][..3]),
            Std::LongMonth => out.push_str(MONTHS[c.month as usize - 1]),
            Std::NumMonth => push_int(&mut out, c.month as i64, 0),
            Std::ZeroMonth => push_int(&mut out, c.month as i64, 2),
            Std::WeekDay => out.push_str(&DAYS[c.wday as usize][..3]),
            Std::LongWeekDay => out.push_str(DAYS[c.wday as usize]),
            Std::Day => push_int(&mut out, c.day as i64, 0),
            Std::UnderDay => {
                if c.day < 10 {
                    out.push(' ');
                }
                push_int(&mut out, c.day as i64, 0);
            }
            Std::ZeroDay => push_int(&mut out, c.day as i64, 2),
            Std::UnderYearDay => {
                if c.yday < 100 {
                    out.push(' ');
                    if c.yday < 10 {
                        out.push(' ');
                    }
                }
                push_int(&mut out, c.yday as i64, 0);
            }
            Std::ZeroYearDay => push_int(&mut out, c.yday as i64, 3),
            Std::Hour => push_int(&mut out, c.hour as i64, 2),
            Std::Hour12 | Std::ZeroHour12 => {
                let h = match c.hour % 12 {
                    0 => 12,
                    h => h,
                };
                push_int(&mut out, h as i64, if std == Std::Hour12 { 0 } else { 2 });
            }
            Std::Minute => push_int(&mut out, c.min as i64, 0),
            Std::ZeroMinute => push_int(&mut out, c.min as i64, 2),
            Std::Second => push_int(&mut out, c.sec as i64, 0),
            Std::ZeroSecond => push_int(&mut out, c.sec as i64, 2),
            Std::PM => out.push_str(if c.hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => out.push_str(if c.hour >= 12 { "pm" } else { "am" }),
            Std::Iso8601TZ
            | Std::Iso8601SecondsTZ
            | Std::Iso8601ShortTZ
            | Std::Iso8601ColonTZ
            | Std::Iso8601ColonSecondsTZ
            | Std::NumTZ
            | Std::NumSecondsTz
            | Std::NumShortTZ
            | Std::NumColonTZ
            | Std::NumColonSecondsTZ => {
                let iso = matches!(
                    std,
                    Std::Iso8601TZ
                        | Std::Iso8601SecondsTZ
                        | Std::Iso8601ShortTZ
                        | Std::Iso8601ColonTZ
                        | Std::Iso8601ColonSecondsTZ
                );
                if iso && t.offset == 0 {
                    out.push('Z');
                    continue;
                }
                let mut zone = t.offset / 60;
                let mut abs = t.offset;
                if zone < 0 {
                    out.push('-');
                    zone = -zone;
                    abs = -abs;
                } else {
                    out.push('+');
                }
                push_int(&mut out, (zone / 60) as i64, 2);
                let colon = matches!(
                    std,
                    Std::Iso8601ColonTZ
                        | Std::NumColonTZ
                        | Std::Iso8601ColonSecondsTZ
                        | Std::NumColonSecondsTZ
                );
                if colon {
                    out.push(':');
                }
                if !matches!(std, Std::NumShortTZ | Std::Iso8601ShortTZ) {
                    push_int(&mut out, (zone % 60) as i64, 2);
                }
                if matches!(
                    std,
                    Std::Iso8601SecondsTZ
                        | Std::NumSecondsTz
                        | Std::NumColonSecondsTZ
                        | Std::Iso8601ColonSecondsTZ
                ) {
                    if colon {
                        out.push(':');
                    }
                    push_int(&mut out, (abs % 60) as i64, 2);
                }
            }
            Std::TZ => {
                if !t.zone.is_empty() {
                    out.push_str(&t.zone);
                } else {
                    let mut zone = t.offset / 60;
                    if zone < 0 {
                        out.push('-');
                        zone = -zone;
                    } else {
                        out.push('+');
                    }
                    push_int(&mut out, (zone / 60) as i64, 2);
                    push_int(&mut out, (zone % 60) as i64, 2);
                }
            }
            Std::Frac(sep, digit, n) => {
                let all = format!("{:09}", t.nsec);
                let mut d = &all[..n.min(9)];
                if digit == b'9' {
                    d = d.trim_end_matches('0');
                    if d.is_empty() {
                        continue;
                    }
                }
                out.push(sep as char);
                out.push_str(d);
            }
        }
    }
    out
}

/// Go's `time.Parse` (in UTC, the `Local` of Loki's containers); errors are not reported in
/// detail since every caller turns them into the zero time.
fn go_parse_time(layout: &str, value: &str) -> Result<GoTime, ()> {
    fn getnum(v: &str, fixed: bool) -> Result<(i64, &str), ()> {
        let b = v.as_bytes();
        if !b.first().is_some_and(u8::is_ascii_digit) {
            return Err(());
        }
        if !b.get(1).is_some_and(u8::is_ascii_digit) {
            if fixed {
                return Err(());
            }
            return Ok(((b[0] - b'0') as i64, &v[1..]));
        }
        Ok((((b[0] - b'0') * 10 + (b[1] - b'0')) as i64, &v[2..]))
    }
    fn lookup<'v>(tab: &[&str], v: &'v str, n: Option<usize>) -> Result<(usize, &'v str), ()> {
        for (i, name) in tab.iter().enumerate() {
            let name = match n {
                Some(n) => &name[..n],
                None => name,
            };
            if v.len() >= name.len()
                && v.as_bytes()[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            {
                return Ok((i, &v[name.len()..]));
            }
        }
        Err(())
    }
    fn skip<'v>(mut v: &'v str, mut prefix: &str) -> Result<&'v str, ()> {
        while !prefix.is_empty() {
            if prefix.starts_with(' ') {
                if !v.is_empty() && !v.starts_with(' ') {
                    return Err(());
                }
                prefix = prefix.trim_start_matches(' ');
                v = v.trim_start_matches(' ');
                continue;
            }
            let c = prefix.chars().next().ok_or(())?;
            if !v.starts_with(c) {
                return Err(());
            }
            prefix = &prefix[c.len_utf8()..];
            v = &v[c.len_utf8()..];
        }
        Ok(v)
    }
    fn nanos(v: &str, n: usize) -> Result<u32, ()> {
        let b = v.as_bytes();
        if !matches!(b.first(), Some(b'.' | b',')) || n > b.len() {
            return Err(());
        }
        let n = n.min(10);
        let digits = &v[1..n];
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(());
        }
        let mut ns: u32 = digits.parse().unwrap_or(0);
        for _ in 0..(10 - n) {
            ns *= 10;
        }
        Ok(ns)
    }
    let (mut year, mut month, mut day, mut yday) = (0i64, -1i64, -1i64, -1i64);
    let (mut hour, mut min, mut sec, mut nsec) = (0i64, 0i64, 0i64, 0u32);
    let (mut pm_set, mut am_set) = (false, false);
    let mut utc_z = false;
    let mut zone_offset: Option<i32> = None;
    let mut zone_name: Option<String> = None;
    let mut layout = layout;
    let mut v = value;
    loop {
        let (prefix, std, suffix) = next_std_chunk(layout);
        let std_str = &layout[prefix.len()..layout.len() - suffix.len()];
        v = skip(v, prefix)?;
        let Some(std) = std else {
            if !v.is_empty() {
                return Err(());
            }
            break;
        };
        layout = suffix;
        match std {
            Std::Year => {
                let (n, r) = getnum(v, true)?;
                year = if n >= 69 { n + 1900 } else { n + 2000 };
                v = r;
            }
            Std::LongYear => {
                if v.len() < 4 || !v.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
                    return Err(());
                }
                year = v[..4].parse().map_err(|_| ())?;
                v = &v[4..];
            }
            Std::Month | Std::LongMonth => {
                let (m, r) = lookup(&MONTHS, v, (std == Std::Month).then_some(3))?;
                month = m as i64 + 1;
                v = r;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let (n, r) = getnum(v, std == Std::ZeroMonth)?;
                if !(1..=12).contains(&n) {
                    return Err(());
                }
                month = n;
                v = r;
            }
            Std::WeekDay | Std::LongWeekDay => {
                v = lookup(&DAYS, v, (std == Std::WeekDay).then_some(3))?.1;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay && v.starts_with(' ') {
                    v = &v[1..];
                }
                let (n, r) = getnum(v, std == Std::ZeroDay)?;
                day = n;
                v = r;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                let mut w = v;
                if std == Std::UnderYearDay {
                    w = w.trim_start_matches(' ');
                }
                let n = w.bytes().take(3).take_while(u8::is_ascii_digit).count();
                if n == 0 || (std == Std::ZeroYearDay && n != 3) {
                    return Err(());
                }
                yday = w[..n].parse().map_err(|_| ())?;
                v = &w[n..];
            }
            Std::Hour => {
                let (n, r) = getnum(v, false)?;
                if n >= 24 {
                    return Err(());
                }
                hour = n;
                v = r;
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let (n, r) = getnum(v, std == Std::ZeroHour12)?;
                if n > 12 {
                    return Err(());
                }
                hour = n;
                v = r;
            }
            Std::Minute | Std::ZeroMinute => {
                let (n, r) = getnum(v, std == Std::ZeroMinute)?;
                if n >= 60 {
                    return Err(());
                }
                min = n;
                v = r;
            }
            Std::Second | Std::ZeroSecond => {
                let (n, r) = getnum(v, std == Std::ZeroSecond)?;
                if n >= 60 {
                    return Err(());
                }
                sec = n;
                v = r;
                let b = v.as_bytes();
                if b.len() >= 2 && matches!(b[0], b'.' | b',') && b[1].is_ascii_digit() {
                    if let (_, Some(Std::Frac(..)), _) = next_std_chunk(layout) {
                        continue;
                    }
                    let mut n = 2;
                    while n < b.len() && b[n].is_ascii_digit() {
                        n += 1;
                    }
                    nsec = nanos(v, n)?;
                    v = &v[n..];
                }
            }
            Std::PM | Std::Pm => {
                if v.len() < 2 {
                    return Err(());
                }
                let p = &v[..2];
                let up = std == Std::PM;
                match p {
                    "PM" if up => pm_set = true,
                    "AM" if up => am_set = true,
                    "pm" if !up => pm_set = true,
                    "am" if !up => am_set = true,
                    _ => return Err(()),
                }
                v = &v[2..];
            }
            Std::Iso8601TZ
            | Std::Iso8601SecondsTZ
            | Std::Iso8601ShortTZ
            | Std::Iso8601ColonTZ
            | Std::Iso8601ColonSecondsTZ
            | Std::NumTZ
            | Std::NumSecondsTz
            | Std::NumShortTZ
            | Std::NumColonTZ
            | Std::NumColonSecondsTZ => {
                let iso = std_str.starts_with('Z');
                if iso && v.starts_with('Z') {
                    v = &v[1..];
                    utc_z = true;
                    continue;
                }
                let b = v.as_bytes();
                let sign = match b.first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return Err(()),
                };
                let colon = std_str.contains(':');
                let with_secs = matches!(
                    std,
                    Std::Iso8601SecondsTZ
                        | Std::NumSecondsTz
                        | Std::NumColonSecondsTZ
                        | Std::Iso8601ColonSecondsTZ
                );
                let short = matches!(std, Std::NumShortTZ | Std::Iso8601ShortTZ);
                let mut w = &v[1..];
                let (hh, r) = getnum(w, true)?;
                w = r;
                let mut mm = 0;
                let mut ss = 0;
                if !short {
                    if colon {
                        w = w.strip_prefix(':').ok_or(())?;
                    }
                    let (m, r) = getnum(w, true)?;
                    mm = m;
                    w = r;
                }
                if with_secs {
                    if colon {
                        w = w.strip_prefix(':').ok_or(())?;
                    }
                    let (s, r) = getnum(w, true)?;
                    ss = s;
                    w = r;
                }
                zone_offset = Some(sign * ((hh * 60 + mm) * 60 + ss) as i32);
                v = w;
            }
            Std::TZ => {
                if v.starts_with("UTC") {
                    v = &v[3..];
                    utc_z = true;
                    continue;
                }
                let n = v.bytes().take_while(u8::is_ascii_uppercase).count();
                if !(3..=5).contains(&n) {
                    return Err(());
                }
                zone_name = Some(v[..n].to_string());
                v = &v[n..];
            }
            Std::Frac(_, digit, n) => {
                if digit == b'0' {
                    let nd = 1 + n;
                    if v.len() < nd {
                        return Err(());
                    }
                    nsec = nanos(v, nd)?;
                    v = &v[nd..];
                } else {
                    let b = v.as_bytes();
                    if b.len() < 2 || !matches!(b[0], b'.' | b',') || !b[1].is_ascii_digit() {
                        continue;
                    }
                    let mut i = 0;
                    while i + 1 < b.len() && b[i + 1].is_ascii_digit() {
                        i += 1;
                    }
                    nsec = nanos(v, 1 + i)?;
                    v = &v[1 + i..];
                }
            }
        }
    }
    if pm_set && hour < 12 {
        hour += 12;
    } else if am_set && hour == 12 {
        hour = 0;
    }
    if yday >= 0 {
        let leap = is_leap(year);
        if yday < 1 || yday > 365 + leap as i64 {
            return Err(());
        }
        let mut m = 1u32;
        let mut d = yday;
        while d > days_in(m, year) as i64 {
            d -= days_in(m, year) as i64;
            m += 1;
        }
        if (month >= 0 && month != m as i64) || (day >= 0 && day != d) {
            return Err(());
        }
        month = m as i64;
        day = d;
    } else {
        if month < 0 {
            month = 1;
        }
        if day < 0 {
            day = 1;
        }
    }
    if day < 1 || day > days_in(month as u32, year) as i64 {
        return Err(());
    }
    let local =
        days_from_civil(year, month as u32, day as u32) * 86400 + hour * 3600 + min * 60 + sec;
    if utc_z {
        return Ok(GoTime::unix(local, nsec));
    }
    if let Some(off) = zone_offset {
        let mut t = GoTime::unix(local - off as i64, nsec);
        if off != 0 {
            t.offset = off;
            t.zone = String::new();
        }
        return Ok(t);
    }
    if let Some(name) = zone_name {
        let off = name
            .strip_prefix("GMT")
            .and_then(|r| r.parse::<i32>().ok())
            .map_or(0, |h| h * 3600);
        return Ok(GoTime {
            sec: local - off as i64,
            nsec,
            offset: off,
            zone: name,
        });
    }
    Ok(GoTime::unix(local, nsec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::{Label, Labels};

    fn lb(pairs: &[(&str, &str)]) -> LabelsBuilder {
        let stream = Labels::from_unsorted(
            pairs
                .iter()
                .filter(|(k, _)| !k.starts_with("__error"))
                .map(|(k, v)| Label::new(*k, *v))
                .collect(),
        );
        let mut b = LabelsBuilder::new(&stream);
        for (k, v) in pairs.iter().filter(|(k, _)| k.starts_with("__error")) {
            b.set(k, v);
        }
        b
    }

    const TS: i64 = 1793491222416886616;

    fn run_with(
        src: &str,
        line_tmpl: bool,
        pairs: &[(&str, &str)],
        line: &str,
        ts: i64,
    ) -> Result<String, String> {
        let t = if line_tmpl {
            Template::parse(src)
        } else {
            Template::parse_label(src)
        }
        .map_err(|e| format!("PARSE: {e}"))?;
        let mut out = String::from("prefix:");
        let r = t.render(&lb(pairs), line, ts, &mut out);
        match r {
            Ok(()) => Ok(out["prefix:".len()..].to_string()),
            Err(e) => {
                assert_eq!(out, "prefix:", "output must be untouched on error");
                Err(e)
            }
        }
    }

    fn run(src: &str, pairs: &[(&str, &str)]) -> String {
        run_with(src, true, pairs, "the line", TS).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    fn run_err(src: &str, pairs: &[(&str, &str)]) -> String {
        match run_with(src, true, pairs, "the line", TS) {
            Ok(o) => panic!("{src}: expected an error, got {o:?}"),
            Err(e) => e,
        }
    }

    fn parse_err(src: &str) -> String {
        match Template::parse(src) {
            Ok(_) => panic!("{src}: expected a parse error"),
            Err(e) => e.0,
        }
    }

    /// Cases recorded from Loki (golden-public.json): (line_format?, template, labels, line, ts, result).
    #[allow(clippy::type_complexity)]
    const GOLDEN: &[(bool, &str, &[(&str, &str)], &str, i64, Result<&str, &str>)] = &[
        (true, "{{.user_id}}/{{.user_name}}", &[("app", "api-gateway"), ("user_id", "448"), ("user_name", "grace")], "x", 1793491222416886616, Ok("448/grace")),
        (true, "{{.user_id}}/{{.user_name}}", &[("app", "api-gateway"), ("user_id", "385"), ("user_name", "trent")], "x", 1793491244138883710, Ok("385/trent")),
        (true, "{{.user_id}}/{{.user_name}}", &[("app", "api-gateway"), ("user_id", "76"), ("user_name", "sybil")], "x", 1793491271059963060, Ok("76/sybil")),
        (true, "{{.container}}:{{.stream}} {{__line__}}", &[("app", "collector"), ("container", "init"), ("stream", "stderr")], "GET /api/v1/users 200 319ms", 1793491533011412445, Ok("init:stderr GET /api/v1/users 200 319ms")),
        (true, "{{.container}}:{{.stream}} {{__line__}}", &[("app", "collector"), ("container", "init"), ("stream", "stderr")], "level=info msg=\"sync finished\" files=75", 1793491600186589736, Ok("init:stderr level=info msg=\"sync finished\" files=75")),
        (true, "{{.container}}:{{.stream}} {{__line__}}", &[("app", "collector"), ("container", "init"), ("stream", "stdout")], "worker 12 heartbeat", 1793491345464360316, Ok("init:stdout worker 12 heartbeat")),
        (true, "{{ printf \"%-6s|%s\" .method .path }}", &[("__error__", "JSONParserErr"), ("__error_details__", "Malformed JSON error"), ("app", "api-gateway"), ("method", "POST"), ("path", "/metrics")], "x", 1793491273154329746, Ok("POST  |/metrics")),
        (true, "{{ printf \"%-6s|%s\" .method .path }}", &[("app", "api-gateway"), ("method", "GET"), ("path", "/static/style.css")], "x", 1793491222416886616, Ok("GET   |/static/style.css")),
        (true, "{{ printf \"%-6s|%s\" .method .path }}", &[("app", "api-gateway"), ("method", "GET"), ("path", "/api/v1/users")], "x", 1793491244138883710, Ok("GET   |/api/v1/users")),
        (true, "{{ if eq .status \"500\" }}ERR{{ else }}ok{{ end }} {{.order_id}}", &[("app", "orders"), ("order_id", "259850"), ("status", "200")], "x", 1793491209016137421, Ok("ok 259850")),
        (true, "{{ if eq .status \"500\" }}ERR{{ else }}ok{{ end }} {{.order_id}}", &[("app", "orders"), ("order_id", "302342"), ("status", "200")], "x", 1793491218195979028, Ok("ok 302342")),
        (true, "{{ if eq .status \"500\" }}ERR{{ else }}ok{{ end }} {{.order_id}}", &[("app", "orders"), ("order_id", "180356"), ("status", "200")], "x", 1793491249103023475, Ok("ok 180356")),
        (true, "{{ trim .msg }}", &[("app", "orders"), ("msg", "order updated")], "x", 1793491209016137421, Ok("order updated")),
        (true, "{{ trim .msg }}", &[("app", "orders"), ("msg", "order created")], "x", 1793491218195979028, Ok("order created")),
        (true, "{{ trim .msg }}", &[("app", "orders"), ("msg", "order updated")], "x", 1793491249103023475, Ok("order updated")),
        (true, "{{ ToLower .method }}", &[("__error__", "JSONParserErr"), ("__error_details__", "Malformed JSON error"), ("app", "api-gateway"), ("method", "POST")], "x", 1793491273154329746, Ok("post")),
        (true, "{{ ToLower .method }}", &[("app", "api-gateway"), ("method", "GET")], "x", 1793491222416886616, Ok("get")),
        (true, "{{ ToLower .method }}", &[("app", "api-gateway"), ("method", "GET")], "x", 1793491244138883710, Ok("get")),
        (true, "{{ lower .level }} {{ upper .method }}", &[("__error__", "JSONParserErr"), ("__error_details__", "Malformed JSON error"), ("app", "api-gateway"), ("level", "info"), ("method", "POST")], "x", 1793491273154329746, Ok("info POST")),
        (true, "{{ lower .level }} {{ upper .method }}", &[("app", "api-gateway"), ("level", "info"), ("method", "GET")], "x", 1793491222416886616, Ok("info GET")),
        (true, "{{ lower .level }} {{ upper .method }}", &[("app", "api-gateway"), ("level", "info"), ("method", "GET")], "x", 1793491244138883710, Ok("info GET")),
        (true, "{{ substr 0 8 .trace_id }}", &[("__error__", "JSONParserErr"), ("__error_details__", "Malformed JSON error"), ("app", "api-gateway")], "x", 1793491273154329746, Ok("")),
        (true, "{{ substr 0 8 .trace_id }}", &[("app", "api-gateway"), ("trace_id", "79a92357072263c8dfe15607f102ddd9")], "x", 1793491222416886616, Ok("79a92357")),
        (true, "{{ substr 0 8 .trace_id }}", &[("app", "api-gateway"), ("trace_id", "42fc7222a9e5fa83df29307b079e8dea")], "x", 1793491244138883710, Ok("42fc7222")),
        (true, "{{ regexReplaceAll \"[0-9]+\" .path \"N\" }}", &[("__error__", "JSONParserErr"), ("__error_details__", "Malformed JSON error"), ("app", "api-gateway"), ("path", "/metrics")], "x", 1793491273154329746, Ok("/metrics")),
        (true, "{{ regexReplaceAll \"[0-9]+\" .path \"N\" }}", &[("app", "api-gateway"), ("path", "/static/style.css")], "x", 1793491222416886616, Ok("/static/style.css")),
        (true, "{{ regexReplaceAll \"[0-9]+\" .path \"N\" }}", &[("app", "api-gateway"), ("path", "/api/v1/users")], "x", 1793491244138883710, Ok("/api/vN/users")),
        (true, "{{ len .path }}", &[("__error__", "JSONParserErr"), ("__error_details__", "Malformed JSON error"), ("app", "api-gateway"), ("path", "/metrics")], "x", 1793491273154329746, Ok("8")),
        (true, "{{ len .path }}", &[("app", "api-gateway"), ("path", "/static/style.css")], "x", 1793491222416886616, Ok("17")),
        (true, "{{ len .path }}", &[("app", "api-gateway"), ("path", "/api/v1/users")], "x", 1793491244138883710, Ok("13")),
        (true, "{{ mulf .amount 2 }}", &[("amount", "105.84"), ("app", "payments")], "x", 1793491337865914330, Ok("211.68")),
        (true, "{{ mulf .amount 2 }}", &[("amount", "107.18"), ("app", "payments")], "x", 1793491352682325536, Ok("214.36")),
        (true, "{{ mulf .amount 2 }}", &[("amount", "108.15"), ("app", "payments")], "x", 1793491296179636100, Ok("216.3")),
        (true, "{{ .status }}", &[("__error__", "JSONParserErr"), ("__error_details__", "Value is string, but can't find closing '\"' symbol"), ("app", "api-gateway"), ("status", "503")], "x", 1793491851639214992, Ok("503")),
        (true, "{{ .status }}", &[("app", "api-gateway"), ("status", "500")], "x", 1793492115820296907, Ok("500")),
        (true, "{{ .status }}", &[("app", "api-gateway"), ("status", "500")], "x", 1793491900202457602, Ok("500")),
        (true, "{{ .user_name | default \"-\" | ToUpper }}", &[("app", "api-gateway"), ("user_name", "Zoë")], "x", 1793491880683291120, Ok("ZOË")),
        (true, "{{ .user_name | default \"-\" | ToUpper }}", &[("app", "api-gateway"), ("user_name", "Zoë")], "x", 1793492200295307101, Ok("ZOË")),
        (true, "{{ .user_name | default \"-\" | ToUpper }}", &[("app", "api-gateway"), ("user_name", "Zoë")], "x", 1793493088848913383, Ok("ZOË")),
        (true, "{{ __line__ | replace \"\\x1b\" \"ESC\" }}", &[("app", "worker")], "\u{1b}[32mINFO\u{1b}[0m [\u{1b}[1mjob=cleanup-tmp\u{1b}[0m] processed 258 items in 12.1s", 1793491225826344642, Ok("ESC[32mINFOESC[0m [ESC[1mjob=cleanup-tmpESC[0m] processed 258 items in 12.1s")),
        (true, "{{ __line__ | replace \"\\x1b\" \"ESC\" }}", &[("app", "worker")], "INFO [job=reindex] processed 67 items in 14.7s", 1793491225861595866, Ok("INFO [job=reindex] processed 67 items in 14.7s")),
        (true, "{{ contains \"failed\" .msg }}", &[("app", "orders"), ("msg", "order updated")], "x", 1793491209016137421, Ok("false")),
        (true, "{{ contains \"failed\" .msg }}", &[("app", "orders"), ("msg", "order created")], "x", 1793491218195979028, Ok("false")),
        (true, "{{ contains \"failed\" .msg }}", &[("app", "orders"), ("msg", "order updated")], "x", 1793491249103023475, Ok("false")),
        (true, "{{ unixEpoch __timestamp__ }}", &[("app", "nginx")], "x", 1793491209051721472, Ok("1793491209")),
        (true, "{{ unixEpoch __timestamp__ }}", &[("app", "nginx")], "x", 1793491202445268716, Ok("1793491202")),
        (false, "{{ substr 0 1 .status }}xx", &[("__error__", "JSONParserErr"), ("__error_details__", "Malformed JSON error"), ("app", "api-gateway"), ("status", "204")], "x", 1793491273154329746, Ok("2xx")),
        (false, "{{ substr 0 1 .status }}xx", &[("app", "api-gateway"), ("status", "200")], "x", 1793491222416886616, Ok("2xx")),
        (false, "{{ substr 0 1 .status }}xx", &[("app", "api-gateway"), ("status", "200")], "x", 1793491244138883710, Ok("2xx")),
        (false, "{{.method}}", &[("__error__", "JSONParserErr"), ("__error_details__", "Malformed JSON error"), ("app", "api-gateway"), ("method", "POST")], "x", 1793491273154329746, Ok("POST")),
        (false, "{{.method}}", &[("app", "api-gateway"), ("method", "DELETE")], "x", 1793491227992061134, Ok("DELETE")),
        (false, "{{.method}}", &[("app", "api-gateway"), ("method", "DELETE")], "x", 1793491269021683370, Ok("DELETE")),
        (false, "{{ len .ts }}", &[("app", "orders"), ("ts", "2026-11-01T00:00:09.016Z")], "x", 1793491209016137421, Ok("24")),
        (false, "{{ len .ts }}", &[("app", "orders"), ("ts", "2026-11-01T00:00:18.195Z")], "x", 1793491218195979028, Ok("24")),
        (false, "{{ len .ts }}", &[("app", "orders"), ("ts", "2026-11-01T00:00:49.103Z")], "x", 1793491249103023475, Ok("24")),
        (true, "{{ __line__ }}!", &[("app", "worker")], "ERROR [job=send-emails] job failed: timeout", 1793491566029991577, Ok("ERROR [job=send-emails] job failed: timeout!")),
        (true, "{{ __line__ }}!", &[("app", "worker")], "ERROR [job=cleanup-tmp] job failed: exit code 137", 1793491693575114197, Ok("ERROR [job=cleanup-tmp] job failed: exit code 137!")),
        (true, "{{.__error_details__}}", &[("__error__", "JSONParserErr"), ("__error_details__", "Malformed JSON error"), ("app", "api-gateway")], "x", 1793492365494186107, Ok("")),
        (true, "{{.__error_details__}}", &[("__error__", "JSONParserErr"), ("__error_details__", "Malformed JSON error"), ("app", "api-gateway")], "x", 1793497141398993248, Ok("")),
        (true, "{{.__error_details__}}", &[("__error__", "JSONParserErr"), ("__error_details__", "Malformed JSON error"), ("app", "api-gateway")], "x", 1793491853005832280, Ok("")),
        (true, "{{ .nope.nope }}", &[("app", "api-gateway"), ("method", "GET")], "{\"level\":\"info\",\"msg\":\"request completed\",\"method\":\"GET\",\"path\":\"/static/style.css\",\"status\":200,\"duration_ms\":25.85,\"bytes\":0,\"latency\":\"25.85ms\",\"trace_id\":\"79a92357072263c8dfe15607f102ddd9\",\"user\":{\"id\":448,\"name\":\"grace\"},\"client\":{\"ip\":\"192.168.0.223\",\"geo\":{\"country\":\"DE\"}},\"tags\":[\"mobile\",\"web\"]}", 1793491222416886616, Err("template: line:1:8: executing \"line\" at <.nope.nope>: can't evaluate field nope in type string")),
        (true, "{{ .nope.nope }}", &[("app", "api-gateway"), ("method", "GET")], "{\"level\":\"info\",\"msg\":\"token refreshed\",\"method\":\"GET\",\"path\":\"/api/v1/users\",\"status\":200,\"duration_ms\":108.7,\"bytes\":0,\"latency\":\"108.7ms\",\"trace_id\":\"42fc7222a9e5fa83df29307b079e8dea\",\"user\":{\"id\":385,\"name\":\"trent\"},\"client\":{\"ip\":\"10.0.225.116\",\"geo\":{\"country\":\"FR\"}}}", 1793491244138883710, Err("template: line:1:8: executing \"line\" at <.nope.nope>: can't evaluate field nope in type string")),
        (true, "{{ .nope.nope }}", &[("app", "api-gateway"), ("method", "GET")], "{\"level\":\"info\",\"msg\":\"token refreshed\",\"method\":\"GET\",\"path\":\"/api/v1/users\",\"status\":204,\"duration_ms\":39.74,\"bytes\":0,\"latency\":\"39.74ms\",\"trace_id\":\"8768726416dc309ee84b206711bafab8\",\"user\":{\"id\":76,\"name\":\"sybil\"},\"client\":{\"ip\":\"192.168.0.47\",\"geo\":{\"country\":\"JP\"}}}", 1793491271059963060, Err("template: line:1:8: executing \"line\" at <.nope.nope>: can't evaluate field nope in type string")),
        (true, "{{ .nope.nope }}", &[("app", "api-gateway"), ("method", "GET")], "{\"level\":\"info\",\"msg\":\"request completed\",\"method\":\"GET\",\"path\":\"/static/style.css\",\"status\":200,\"duration_ms\":25.85,\"bytes\":0,\"latency\":\"25.85ms\",\"trace_id\":\"79a92357072263c8dfe15607f102ddd9\",\"user\":{\"id\":448,\"name\":\"grace\"},\"client\":{\"ip\":\"192.168.0.223\",\"geo\":{\"country\":\"DE\"}},\"tags\":[\"mobile\",\"web\"]}", 1793491222416886616, Err("template: line:1:8: executing \"line\" at <.nope.nope>: can't evaluate field nope in type string")),
        (true, "{{ .nope.nope }}", &[("app", "api-gateway"), ("method", "GET")], "{\"level\":\"info\",\"msg\":\"token refreshed\",\"method\":\"GET\",\"path\":\"/api/v1/users\",\"status\":200,\"duration_ms\":108.7,\"bytes\":0,\"latency\":\"108.7ms\",\"trace_id\":\"42fc7222a9e5fa83df29307b079e8dea\",\"user\":{\"id\":385,\"name\":\"trent\"},\"client\":{\"ip\":\"10.0.225.116\",\"geo\":{\"country\":\"FR\"}}}", 1793491244138883710, Err("template: line:1:8: executing \"line\" at <.nope.nope>: can't evaluate field nope in type string")),
        (true, "{{ .nope.nope }}", &[("app", "api-gateway"), ("method", "GET")], "{\"level\":\"info\",\"msg\":\"token refreshed\",\"method\":\"GET\",\"path\":\"/api/v1/users\",\"status\":204,\"duration_ms\":39.74,\"bytes\":0,\"latency\":\"39.74ms\",\"trace_id\":\"8768726416dc309ee84b206711bafab8\",\"user\":{\"id\":76,\"name\":\"sybil\"},\"client\":{\"ip\":\"192.168.0.47\",\"geo\":{\"country\":\"JP\"}}}", 1793491271059963060, Err("template: line:1:8: executing \"line\" at <.nope.nope>: can't evaluate field nope in type string")),
    ];

    #[test]
    fn golden_cases() {
        for (line_tmpl, src, pairs, line, ts, want) in GOLDEN {
            let got = run_with(src, *line_tmpl, pairs, line, *ts);
            let want = want.map(str::to_string).map_err(str::to_string);
            assert_eq!(got, want, "template {src:?} labels {pairs:?}");
        }
    }

    #[test]
    fn text_trim_and_comments() {
        let l = &[("a", "A")];
        assert_eq!(run("  x  {{- .a -}}  y", l), "  xAy");
        assert_eq!(run("x {{.a}} y", l), "x A y");
        assert_eq!(run("a{{/* c */}}b", l), "ab");
        assert_eq!(run("a {{- /* c */ -}} \n b", l), "ab");
        assert_eq!(run("{{-3}}", l), "-3");
        assert_eq!(run("no actions", l), "no actions");
        assert_eq!(run("", l), "");
        assert_eq!(run("{{\n.a\n}}", l), "A");
    }

    #[test]
    fn control_flow() {
        let t = r#"{{ if eq .s "500" }}E{{ else if eq .s "404" }}N{{ else }}ok{{ end }}"#;
        assert_eq!(run(t, &[("s", "500")]), "E");
        assert_eq!(run(t, &[("s", "404")]), "N");
        assert_eq!(run(t, &[("s", "200")]), "ok");
        let w = "{{ with .u }}user={{ . }}{{ else }}anon{{ end }}";
        assert_eq!(run(w, &[("u", "bob")]), "user=bob");
        assert_eq!(run(w, &[]), "anon");
        assert_eq!(
            run("{{ if and .a (not .b) }}y{{ end }}", &[("a", "x")]),
            "y"
        );
        assert_eq!(
            run(
                "[{{ and .a .b }}][{{ or .b \"d\" }}][{{ not .b }}]",
                &[("a", "x")]
            ),
            "[][d][true]"
        );
        assert_eq!(
            run(
                "{{ range $k, $v := . }}{{ $k }}={{ $v }};{{ end }}",
                &[("b", "2"), ("a", "1")]
            ),
            "a=1;b=2;"
        );
        assert_eq!(run("{{ range 3 }}{{ . }}{{ end }}", &[]), "012");
        assert_eq!(
            run(
                r#"{{ range $i, $e := fromJson "[1,2,3,4]" }}{{ if eq $i 2 }}{{ break }}{{ end }}{{ $e }},{{ end }}"#,
                &[]
            ),
            "1,2,"
        );
        assert_eq!(
            run(
                r#"{{ range fromJson "[1,2,3]" }}{{ if eq . 2.0 }}{{ continue }}{{ end }}{{ . }}{{ end }}"#,
                &[]
            ),
            "13"
        );
        assert_eq!(
            run(r#"{{ range fromJson "[]" }}x{{ else }}none{{ end }}"#, &[]),
            "none"
        );
    }

    #[test]
    fn variables_and_pipelines() {
        let l = &[("a", "abc"), ("n", "4")];
        assert_eq!(
            run("{{ $x := upper .a }}{{ $x }}{{ $x = \"z\" }}{{ $x }}", l),
            "ABCz"
        );
        assert_eq!(run("{{ $.a }}", l), "abc");
        assert_eq!(run("{{ .a | printf \"%s-%s\" \"x\" }}", l), "x-abc");
        assert_eq!(
            run("{{ printf \"%s:%d\" (upper .a) (len .a) }}", l),
            "ABC:3"
        );
        assert_eq!(run("{{ .a | upper | lower | title }}", l), "Abc");
        assert_eq!(
            run("{{ . }}", &[("a", "1"), ("b", "x y")]),
            "map[a:1 b:x y]"
        );
        assert_eq!(
            run(
                "{{ index . \"a\" }}|{{ index . \"zz\" }}|{{ index \"abc\" 1 }}",
                l
            ),
            "abc||98"
        );
        // Loki copies a lone `{{.x}}` straight through, even with a declaration.
        assert_eq!(run("{{ $v := .a }}", l), "abc");
        assert_eq!(run("{{ $v := .a }}!", l), "!");
    }

    #[test]
    fn error_labels_visibility() {
        let l = &[
            ("__error__", "JSONParserErr"),
            ("__error_details__", "bad"),
            ("a", "x"),
        ];
        assert_eq!(run("{{ .__error__ }}", l), "");
        assert_eq!(run("{{ .__error__ }}!", l), "JSONParserErr!");
        assert_eq!(
            run_with("{{ .__error__ }}", false, l, "", 0).as_deref(),
            Ok("JSONParserErr")
        );
    }

    #[test]
    fn literals() {
        assert_eq!(
            run(
                "{{ 0x1F }} {{ 1e3 }} {{ 'a' }} {{ -2.50 }} {{ 1_000 }} {{ true }}",
                &[]
            ),
            "31 1000 97 -2.5 1000 true"
        );
        assert_eq!(run(r#"{{ "a\tb\u00e9\x41" }}"#, &[]), "a\tbéA");
        assert_eq!(run("{{ `raw\\n` }}", &[]), "raw\\n");
        assert_eq!(
            run(
                "{{ printf \"%v %v %v %v\" 1e21 123456789.0 0.0001 100000.0 }}",
                &[]
            ),
            "1e+21 1.23456789e+08 0.0001 100000"
        );
    }

    #[test]
    fn printf_verbs() {
        assert_eq!(
            run(
                r#"{{ printf "%5s|%-5s|%.2s|%q|%x|%d|%05d|%+d|%.2f|%8.3f|%e|%g|%v|%t" "ab" "ab" "abc" "a\"b" "hi" 42 42 42 3.14159 3.14159 1234.5678 0.000012345 1.5 true }}"#,
                &[]
            ),
            r#"   ab|ab   |ab|"a\"b"|6869|42|00042|+42|3.14|   3.142|1.234568e+03|1.2345e-05|1.5|true"#
        );
        assert_eq!(
            run(
                r#"{{ printf "%6.2f|%-8.3e|%x|%X|%o|%b|%c|%U|%#x" 3.14159 1234.56 255 255 8 5 65 65 255 }}"#,
                &[]
            ),
            "  3.14|1.235e+03|ff|FF|10|101|A|U+0041|0xff"
        );
        assert_eq!(
            run(
                r#"{{ printf "%08.3f|%+.1f|% d|%-4d|" -3.14159 2.26 5 7 }}"#,
                &[]
            ),
            "-003.142|+2.3| 5|7   |"
        );
        assert_eq!(
            run(r#"{{ printf "%T %T %T %T" 1 "a" 1.5 (add 1 1) }}"#, &[]),
            "int string float64 int64"
        );
        assert_eq!(
            run(r#"{{ printf "%d" .a }}"#, &[("a", "5")]),
            "%!d(string=5)"
        );
        assert_eq!(run(r#"{{ printf "%s %s" "a" }}"#, &[]), "a %!s(MISSING)");
        assert_eq!(
            run(r#"{{ printf "%s" "a" "b" }}"#, &[]),
            "a%!(EXTRA string=b)"
        );
        assert_eq!(run(r#"{{ printf "%[2]s %[1]s" "a" "b" }}"#, &[]), "b a");
        assert_eq!(
            run(r#"{{ printf "%*d|%%|%5.1q" 4 7 "abc" }}"#, &[]),
            "   7|%|  \"a\""
        );
        assert_eq!(
            run(r#"{{ printf "%v|%s" .missing 3 }}"#, &[]),
            "|%!s(int=3)"
        );
        assert_eq!(
            run(r#"{{ print 1 2 "a" 3 }}|{{ println 1 "a" }}"#, &[]),
            "1 2a3|1 a\n"
        );
        assert_eq!(
            run(r#"{{ printf "%.3g|%g|%G" 2.5 1e-7 1e21 }}"#, &[]),
            "2.5|1e-07|1E+21"
        );
    }

    #[test]
    fn string_functions() {
        let l = &[("msg", "  job failed: OOM  "), ("u", "Zoë")];
        assert_eq!(
            run("{{ trim .msg }}|{{ TrimSpace .msg }}", l),
            "job failed: OOM|job failed: OOM"
        );
        assert_eq!(run("{{ contains \"failed\" .msg }} {{ hasPrefix \"ab\" \"abc\" }} {{ hasSuffix \"x\" \"abc\" }}", l), "true true false");
        assert_eq!(
            run(
                "{{ ToUpper .u }} {{ upper .u }} {{ lower \"ÄB\" }} {{ upper \"straße\" }}",
                l
            ),
            "ZOË ZOË äb STRAßE"
        );
        assert_eq!(run("{{ title \"hello world-foo\" }}", l), "Hello World-Foo");
        assert_eq!(
            run(
                "{{ trunc 3 \"abcdef\" }} {{ trunc -2 \"abcdef\" }} {{ trunc 9 \"ab\" }}",
                l
            ),
            "abc ef ab"
        );
        assert_eq!(
            run(
                "{{ substr 1 3 \"abcdef\" }} {{ substr 2 -1 \"abcdef\" }} {{ substr 0 99 \"ab\" }}",
                l
            ),
            "bc cdef ab"
        );
        assert_eq!(run("{{ substr 0 3 .u }}", l), "Zo\u{FFFD}");
        assert_eq!(run("{{ len .u }}", l), "4");
        assert_eq!(run("{{ repeat 3 \"ab\" }} {{ replace \"a\" \"b\" \"banana\" }} {{ Replace \"banana\" \"a\" \"o\" 2 }}", l), "ababab bbnbnb bonona");
        assert_eq!(
            run("{{ indent 2 \"a\\nb\" }}|{{ nindent 2 \"a\" }}", l),
            "  a\n  b|\n  a"
        );
        assert_eq!(run("{{ trimAll \"$\" \"$5.00$\" }} {{ trimPrefix \"v\" \"v1.2\" }} {{ trimSuffix \".go\" \"a.go\" }}", l), "5.00 1.2 a");
        assert_eq!(run("{{ TrimLeft \"xxhixx\" \"x\" }} {{ TrimRight \"xxhixx\" \"x\" }} {{ Trim \"xxhixx\" \"x\" }} {{ TrimPrefix \"xxhi\" \"x\" }} {{ TrimSuffix \"hix\" \"x\" }}", l), "hixx xxhi hi xhi hi");
        assert_eq!(run("{{ alignLeft 5 \"ab\" }}|{{ alignRight 5 \"ab\" }}|{{ alignLeft 2 \"abcd\" }}|{{ alignRight 2 \"abcd\" }}", l), "ab   |   ab|ab|cd");
        assert_eq!(
            run(
                "{{ .missing | default \"-\" }} {{ default \"d\" 0 }} {{ .u | default \"d\" }}",
                l
            ),
            "- d Zoë"
        );
        assert_eq!(
            run(
                "{{ b64enc \"hello\" }} {{ b64dec \"aGVsbG8=\" }} {{ b64dec \"!!\" }}",
                l
            ),
            "aGVsbG8= hello illegal base64 data at input byte 0"
        );
        assert_eq!(
            run(
                "{{ urlencode \"a b&c=d/é\" }} {{ urldecode \"a+b%26c\" }}",
                l
            ),
            "a+b%26c%3Dd%2F%C3%A9 a b&c"
        );
        assert_eq!(
            run(
                "{{ html \"<a href='x'>\" }} {{ urlquery \"a b\" }} {{ js \"it's <b>\" }}",
                l
            ),
            "&lt;a href=&#39;x&#39;&gt; a+b it\\'s \\u003Cb\\u003E"
        );
    }

    #[test]
    fn regex_functions() {
        let l = &[("e", "bob@corp"), ("path", "/api/v1/users/123")];
        assert_eq!(
            run(r#"{{ regexReplaceAll "[0-9]+" .path "N" }}"#, l),
            "/api/vN/users/N"
        );
        assert_eq!(
            run(r#"{{ regexReplaceAll "(\\w+)@(\\w+)" .e "${2}:$1" }}"#, l),
            "corp:bob"
        );
        assert_eq!(
            run(r#"{{ regexReplaceAllLiteral "[0-9]" "a1b2" "$1" }}"#, l),
            "a$1b$1"
        );
        assert_eq!(run(r#"{{ count "a" "banana" }}"#, l), "3");
        assert_eq!(run(r#"{{ regexReplaceAll "\\d" "a١2" "N" }}"#, l), "a١N");
        let e = run_err(r#"{{ regexReplaceAll "[a" .path "N" }}"#, l);
        assert!(e.starts_with("template: line:1:3: executing \"line\" at <regexReplaceAll \"[a\"...>: error calling regexReplaceAll: error parsing regexp: "), "{e}");
    }

    #[test]
    fn math_functions() {
        let l = &[("n", "4"), ("amount", "103.95")];
        assert_eq!(run("{{ add 1 2 }} {{ add \"3\" .n }} {{ sub .n 10 }} {{ div 7 2 }} {{ mod 7 2 }} {{ mul 2 3 4 }}", l), "3 7 -6 3 1 24");
        assert!(
            Template::parse("{{ add1 1 }}").is_err(),
            "add1 is not in Loki's function map"
        );
    }

    #[test]
    fn float_functions() {
        let l = &[("n", "4"), ("amount", "103.95")];
        assert_eq!(run("{{ addf 0.1 0.2 }} {{ mulf .amount 2 }} {{ divf 1 3 }} {{ subf 1.5 0.25 }} {{ mulf 1.1 1.1 }}", l), "0.3 207.9 0.3333333333333333 1.25 1.21");
        assert_eq!(run("{{ float64 \"1e6\" }} {{ round 3.14159 2 }} {{ ceil 1.2 }} {{ floor \"2.7\" }} {{ int \"12.00\" }} {{ int \"12.5\" }} {{ int 3.9 }}", l), "1e+06 3.14 2 2 12 0 3");
        assert_eq!(
            run(
                "{{ maxf 1.5 2 }} {{ minf 1.5 \"x\" }} {{ max 1 5 3 }} {{ min 4 .n 9 }}",
                l
            ),
            "2 0 5 4"
        );
        assert_eq!(run("{{ bytes \"1.5KB\" }} {{ bytes \"2MiB\" }} {{ duration \"1h30m\" }} {{ duration_seconds \"1.5s\" }}", l), "1500 2.097152e+06 5400 1.5");
        let e = run_err("{{ div 1 0 }}", l);
        assert_eq!(e, "template: line:1:3: executing \"line\" at <div 1 0>: error calling div: runtime error: integer divide by zero");
        let e = run_err("{{ duration \"5d\" }}", l);
        assert!(
            e.ends_with("error calling duration: time: unknown unit \"d\" in duration \"5d\""),
            "{e}"
        );
        let e = run_err("{{ divf 1 0 }}", l);
        assert!(
            e.ends_with("error calling divf: decimal division by zero"),
            "{e}"
        );
    }

    #[test]
    fn time_functions() {
        let l = &[("ts", "2026-11-01T01:59:01+02:00")];
        assert_eq!(
            run("{{ __timestamp__ }}", l),
            "2026-11-01 00:00:22.416886616 +0000 UTC"
        );
        assert_eq!(run("{{ unixEpoch __timestamp__ }} {{ unixEpochMillis __timestamp__ }} {{ unixEpochNanos __timestamp__ }}", l), "1793491222 1793491222416 1793491222416886616");
        assert_eq!(
            run(
                "{{ date \"2006-01-02T15:04:05.000Z07:00\" __timestamp__ }}",
                l
            ),
            "2026-11-01T00:00:22.416Z"
        );
        assert_eq!(
            run(
                "{{ __timestamp__ | date \"Mon Jan _2 3:04PM .999 MST\" }}",
                l
            ),
            "Sun Nov  1 12:00AM .416 UTC"
        );
        assert_eq!(
            run("{{ toDate \"2006-01-02\" \"2024-02-29\" | unixEpoch }}", l),
            "1709164800"
        );
        assert_eq!(
            run("{{ (toDate \"2006-01-02T15:04:05Z07:00\" .ts).Unix }}", l),
            "1793491141"
        );
        assert_eq!(
            run("{{ toDate \"2006-01-02T15:04:05Z07:00\" .ts }}", l),
            "2026-11-01 01:59:01 +0200 +0200"
        );
        assert_eq!(
            run("{{ toDate \"2006-01-02\" \"garbage\" | unixEpoch }}", l),
            "-62135596800"
        );
        assert_eq!(
            run(
                "{{ unixToTime \"1700000000\" | date \"2006-01-02 15:04:05\" }}",
                l
            ),
            "2023-11-14 22:13:20"
        );
        assert_eq!(
            run("{{ unixToTime \"1700000000123\" | unixEpochMillis }}", l),
            "1700000000123"
        );
        assert_eq!(
            run("{{ date \"2006 Jan January Monday 01/02 15h\" 0 }}", l),
            "1970 Jan January Thursday 01/01 00h"
        );
        assert_eq!(
            run(
                "{{ (__timestamp__).Format \"15:04:05\" }} {{ (__timestamp__).Year }}",
                l
            ),
            "00:00:22 2026"
        );
        assert_eq!(
            run(
                "{{ toDateInZone \"2006-01-02 15:04\" \"UTC\" \"2024-01-02 03:04\" | unixEpoch }}",
                l
            ),
            "1704164640"
        );
        let e = run_err("{{ unixToTime \"123\" }}", l);
        assert!(
            e.ends_with("error calling unixToTime: unable to parse time '123': %!w(<nil>)"),
            "{e}"
        );
        let e = run_err("{{ unixToTime \"abc\" }}", l);
        assert!(
            e.ends_with(
                "unable to parse time 'abc': strconv.ParseInt: parsing \"abc\": invalid syntax"
            ),
            "{e}"
        );
    }

    #[test]
    fn json_values() {
        let l = &[("j", r#"{"a":1.5,"b":[1,"x"],"c":null,"d":{"e":"f"}}"#)];
        assert_eq!(run("{{ (fromJson .j).a }}", l), "1.5");
        assert_eq!(run("{{ (fromJson .j).d.e }}", l), "f");
        assert_eq!(
            run("{{ fromJson .j }}", l),
            "map[a:1.5 b:[1 x] c:<nil> d:map[e:f]]"
        );
        assert_eq!(run("{{ (fromJson .j).zz }}", l), "<no value>");
        assert_eq!(run("{{ index (fromJson .j) \"b\" 1 }}", l), "x");
        assert_eq!(run("{{ len (fromJson .j).b }}", l), "2");
        assert_eq!(run("{{ fromJson \"not json\" }}", l), "<no value>");
        let e = run_err("{{ (fromJson .j).c.d }}", l);
        assert!(e.ends_with("nil pointer evaluating interface {}.d"), "{e}");
    }

    #[test]
    fn comparisons() {
        assert_eq!(run("{{ lt \"a\" \"b\" }} {{ gt 3 2 }} {{ le 2.5 2.5 }} {{ ge 1 2 }} {{ ne .a \"x\" }} {{ eq .a \"y\" \"x\" }}", &[("a", "x")]), "true true true false false true");
        let e = run_err("{{ eq .status 500 }}", &[("status", "500")]);
        assert_eq!(e, "template: line:1:3: executing \"line\" at <eq .status 500>: error calling eq: incompatible types for comparison");
        let e = run_err("{{ lt 1 \"a\" }}", &[]);
        assert!(
            e.ends_with("error calling lt: incompatible types for comparison"),
            "{e}"
        );
        let e = run_err("{{ lt true false }}", &[]);
        assert!(
            e.ends_with("error calling lt: invalid type for comparison"),
            "{e}"
        );
    }

    #[test]
    fn runtime_errors() {
        let l = &[("a", "x")];
        assert_eq!(
            run_err("{{ .nope.nope }}", l),
            "template: line:1:8: executing \"line\" at <.nope.nope>: can't evaluate field nope in type string"
        );
        assert_eq!(
            run_err("{{ substr \"a\" 1 .x }}", l),
            "template: line:1:10: executing \"line\" at <\"a\">: expected integer; found \"a\""
        );
        assert_eq!(
            run_err("{{ .a | .b }}", l),
            "template: line:1:8: executing \"line\" at <.b>: b is not a method but has arguments"
        );
        assert_eq!(
            run_err("{{ len 3 }}", l),
            "template: line:1:3: executing \"line\" at <len 3>: error calling len: len of type int"
        );
        assert_eq!(
            run_err("{{ upper \"a\" \"b\" }}", l),
            "template: line:1:3: executing \"line\" at <upper>: wrong number of args for upper: want 1 got 2"
        );
        assert_eq!(
            run_err("{{ 5 | upper }}", l),
            "template: line:1:7: executing \"line\" at <upper>: wrong type for value; expected string; got int"
        );
        assert_eq!(
            run_err("{{ substr 0 (add 1 1) .a }}", l),
            "template: line:1:13: executing \"line\" at <add 1 1>: wrong type for value; expected int; got int64"
        );
        assert_eq!(
            run_err("{{ substr 5 9 \"abc\" }}", l),
            "template: line:1:3: executing \"line\" at <substr 5 9 \"abc\">: error calling substr: runtime error: slice bounds out of range [5:3]"
        );
        assert_eq!(
            run_err("x\n{{ printf \"%s\" .a | repeat -1 | upper }}", l),
            "template: line:2:20: executing \"line\" at <repeat -1>: error calling repeat: strings: negative Repeat count"
        );
        assert_eq!(
            run_err("{{ upper nil }}", l),
            "template: line:1:9: executing \"line\" at <nil>: cannot assign nil to string"
        );
        assert_eq!(
            run_with("{{ .a.b }}", false, l, "", 0),
            Err("template: label:1:5: executing \"label\" at <.a.b>: can't evaluate field b in type string".into())
        );
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            parse_err("{{ foo }}"),
            "template: line:1: function \"foo\" not defined"
        );
        assert_eq!(parse_err("{{ .a "), "template: line:1: unclosed action");
        assert_eq!(
            parse_err("{{ if .a }}x"),
            "template: line:1: unexpected EOF"
        );
        assert_eq!(
            parse_err("{{ end }}"),
            "template: line:1: unexpected {{end}}"
        );
        assert_eq!(
            parse_err("{{ $x }}"),
            "template: line:1: undefined variable \"$x\""
        );
        assert_eq!(
            parse_err("{{ }}"),
            "template: line:1: missing value for command"
        );
        assert_eq!(
            parse_err("{{ \"a }}"),
            "template: line:1: unterminated quoted string"
        );
        assert_eq!(
            parse_err("{{ .a | \"b\" }}"),
            "template: line:1: non executable command in pipeline stage 2"
        );
        assert_eq!(
            parse_err("{{ break }}"),
            "template: line:1: {{break}} outside {{range}}"
        );
        assert_eq!(
            parse_err("a\n{{ .a ) }}"),
            "template: line:2: unexpected right paren"
        );
        assert!(Template::parse("{{ define \"x\" }}{{ end }}").is_err());
        assert_eq!(
            Template::parse_label("{{ nope }}")
                .map(|_| ())
                .map_err(|e| e.0),
            Err("template: label:1: function \"nope\" not defined".into())
        );
    }

    #[test]
    fn template_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
        check::<Template>();
    }

    #[test]
    fn referenced_labels() {
        let t = Template::parse(
            "{{ .a }}{{ if .b }}{{ upper .c.d }}{{ end }}{{ (printf \"%s\" .a) }}{{ $x := 1 }}",
        )
        .unwrap();
        assert_eq!(t.referenced_labels(), vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn float_formatting() {
        let cases: &[(f64, u8, i32, &str)] = &[
            (0.0, b'g', -1, "0"),
            (-0.0, b'g', -1, "-0"),
            (1e6, b'g', -1, "1e+06"),
            (123456.0, b'g', -1, "123456"),
            (1234567.0, b'g', -1, "1.234567e+06"),
            (0.00001, b'g', -1, "1e-05"),
            (0.1 + 0.2, b'g', -1, "0.30000000000000004"),
            (2.5, b'f', 0, "2"),
            (0.125, b'f', 2, "0.12"),
            (1.0, b'e', 3, "1.000e+00"),
            (0.0, b'e', 2, "0.00e+00"),
            (1e100, b'e', -1, "1e+100"),
            (100.0, b'g', 2, "1e+02"),
            (f64::INFINITY, b'g', -1, "+Inf"),
            (f64::NAN, b'g', -1, "NaN"),
        ];
        for (v, f, p, want) in cases {
            assert_eq!(format_float(*v, *f, *p), *want, "{v} {} {p}", *f as char);
        }
    }
}
