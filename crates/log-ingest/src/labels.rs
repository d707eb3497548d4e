//! The stream label string of a push request, `{app="api", env="prod"}`: the syntax of a
//! Prometheus series (Loki parses it with PromQL's `ParseMetric`), i.e. an optional metric name
//! followed by an optional brace block of `name="value"` pairs with equality only, a trailing
//! comma allowed, values in Go string syntax (double quotes with escapes, single quotes, or
//! backticks for raw strings), and `#` comments to the end of a line.

use std::fmt;

/// A syntax error, printed as PromQL prints them: `line:col: parse error: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelParseError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl fmt::Display for LabelParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: parse error: {}", self.line, self.col, self.msg)
    }
}

impl std::error::Error for LabelParseError {}

/// The metric-name label a leading identifier becomes (`foo{a="b"}` is `{__name__="foo", a="b"}`).
const METRIC_NAME: &str = "__name__";

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn error_at(&self, pos: usize, msg: impl Into<String>) -> LabelParseError {
        let before = &self.src[..pos.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        LabelParseError {
            line,
            col: pos - line_start + 1,
            msg: msg.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\n' | '\r' => self.pos += 1,
                '#' => {
                    let rest = &self.src[self.pos..];
                    self.pos += rest.find('\n').unwrap_or(rest.len());
                }
                _ => break,
            }
        }
    }

    fn ident(&mut self, metric: bool) -> &'a str {
        let start = self.pos;
        let rest = &self.src.as_bytes()[start..];
        let mut end = 0;
        while let Some(&b) = rest.get(end) {
            let ok = b == b'_'
                || b.is_ascii_alphabetic()
                || (end > 0 && b.is_ascii_digit())
                || (metric && b == b':');
            if !ok {
                break;
            }
            end += 1;
        }
        self.pos += end;
        &self.src[start..start + end]
    }

    /// What the input holds at the cursor, for "unexpected ..." messages.
    fn describe_here(&self) -> String {
        match self.peek() {
            None => "end of input".to_string(),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let rest = &self.src[self.pos..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                format!("identifier {:?}", &rest[..end])
            }
            Some(c) if c == '"' || c == '\'' || c == '`' => "string".to_string(),
            Some(c) => format!("character {c:?}"),
        }
    }

    fn string(&mut self) -> Result<String, LabelParseError> {
        let start = self.pos;
        let Some(quote) = self.peek() else {
            return Err(self.error_at(start, "unexpected end of input, expected string"));
        };
        self.pos += 1;
        if quote == '`' {
            let rest = &self.src[self.pos..];
            let Some(end) = rest.find('`') else {
                return Err(self.error_at(start, "unterminated raw string"));
            };
            self.pos += end + 1;
            // Go drops carriage returns from raw strings.
            return Ok(rest[..end].replace('\r', ""));
        }
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error_at(start, "unterminated quoted string"));
            };
            let at = self.pos;
            self.pos += c.len_utf8();
            match c {
                '\n' => return Err(self.error_at(start, "unterminated quoted string")),
                '\\' => self.escape(quote, at, &mut out)?,
                c if c == quote => break,
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        String::from_utf8(out).map_err(|_| self.error_at(start, "invalid UTF-8 in quoted string"))
    }

    fn hex_digits(&mut self, n: usize, at: usize) -> Result<u32, LabelParseError> {
        let digits = self
            .src
            .get(self.pos..self.pos + n)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error_at(at, "illegal character in escape sequence"))?;
        self.pos += n;
        u32::from_str_radix(digits, 16)
            .map_err(|_| self.error_at(at, "illegal character in escape sequence"))
    }

    fn escape(&mut self, quote: char, at: usize, out: &mut Vec<u8>) -> Result<(), LabelParseError> {
        let Some(c) = self.peek() else {
            return Err(self.error_at(at, "escape sequence not terminated"));
        };
        self.pos += c.len_utf8();
        let simple = match c {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            c if c == quote => Some(c as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return Ok(());
        }
        match c {
            'x' => {
                let v = self.hex_digits(2, at)?;
                out.push(v as u8);
            }
            '0'..='7' => {
                self.pos -= 1;
                let digits = self
                    .src
                    .get(self.pos..self.pos + 3)
                    .filter(|d| d.bytes().all(|b| (b'0'..=b'7').contains(&b)))
                    .ok_or_else(|| self.error_at(at, "illegal character in escape sequence"))?;
                let v = u32::from_str_radix(digits, 8)
                    .ok()
                    .filter(|v| *v <= 255)
                    .ok_or_else(|| self.error_at(at, "octal escape value > 255"))?;
                self.pos += 3;
                out.push(v as u8);
            }
            'u' | 'U' => {
                let v = self.hex_digits(if c == 'u' { 4 } else { 8 }, at)?;
                let ch = char::from_u32(v).ok_or_else(|| {
                    self.error_at(at, "escape sequence is invalid Unicode code point")
                })?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            other => {
                return Err(self.error_at(at, format!("unknown escape sequence {other:?}")));
            }
        }
        Ok(())
    }
}

/// Parses a stream label string into its pairs, in the order written. Empty values and
/// duplicate names are kept: dropping the former and rejecting the latter is validation's job.
pub fn parse_labels(src: &str) -> Result<Vec<(String, String)>, LabelParseError> {
    let mut p = Parser { src, pos: 0 };
    let mut pairs = Vec::new();
    p.skip_space();
    if matches!(p.peek(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':') {
        let name = p.ident(true);
        pairs.push((METRIC_NAME.to_string(), name.to_string()));
        p.skip_space();
    }
    if p.peek() == Some('{') {
        p.pos += 1;
        loop {
            p.skip_space();
            if p.peek() == Some('}') {
                p.pos += 1;
                break;
            }
            let at = p.pos;
            let name = p.ident(false);
            if name.is_empty() {
                let msg = match p.peek() {
                    None => "unexpected end of input inside braces".to_string(),
                    Some(_) => format!(
                        "unexpected {} in label set, expected identifier or \"}}\"",
                        p.describe_here()
                    ),
                };
                return Err(p.error_at(at, msg));
            }
            p.skip_space();
            let at = p.pos;
            if p.src[p.pos..].starts_with('=') && !p.src[p.pos..].starts_with("=~") {
                p.pos += 1;
            } else {
                let found = if p.src[p.pos..].starts_with("!=") {
                    "\"!=\"".to_string()
                } else if p.src[p.pos..].starts_with("=~") {
                    "\"=~\"".to_string()
                } else {
                    p.describe_here()
                };
                return Err(p.error_at(
                    at,
                    format!("unexpected {found} in label set, expected \"=\""),
                ));
            }
            p.skip_space();
            let at = p.pos;
            if !matches!(p.peek(), Some('"' | '\'' | '`')) {
                return Err(p.error_at(
                    at,
                    format!(
                        "unexpected {} in label set, expected string",
                        p.describe_here()
                    ),
                ));
            }
            let value = p.string()?;
            pairs.push((name.to_string(), value));
            p.skip_space();
            match p.peek() {
                Some(',') => p.pos += 1,
                Some('}') => {}
                None => return Err(p.error_at(p.pos, "unexpected end of input inside braces")),
                Some(_) => {
                    return Err(p.error_at(
                        p.pos,
                        format!(
                            "unexpected {} in label set, expected \",\" or \"}}\"",
                            p.describe_here()
                        ),
                    ))
                }
            }
        }
        p.skip_space();
    }
    if p.pos < src.len() {
        return Err(p.error_at(p.pos, format!("unexpected {}", p.describe_here())));
    }
    Ok(pairs)
}

/// Appends `s` quoted as Go's `strconv.Quote` does (how Loki prints label values).
pub fn push_go_quoted(out: &mut String, s: &str) {
    use fmt::Write;
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
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || c == '\u{feff}' || c == '\u{ad}' => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Loki's text of a label set: `{a="b", c="d"}` with Go-quoted values, pairs in the given order.
pub fn format_labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push('=');
        push_go_quoted(&mut out, value);
    }
    out.push('}');
    out
}

/// Whether `name` is a valid stream label name (`[a-zA-Z_][a-zA-Z0-9_]*`, as PromQL's lexer
/// accepts inside braces).
pub fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_forms_loki_accepts() {
        assert_eq!(
            parse_labels(r#"{app="api", env="prod"}"#).unwrap(),
            pairs(&[("app", "api"), ("env", "prod")])
        );
        assert_eq!(
            parse_labels("{ a = \"b\" ,\n\tc='d', }").unwrap(),
            pairs(&[("a", "b"), ("c", "d")])
        );
        assert_eq!(parse_labels("{}").unwrap(), pairs(&[]));
        assert_eq!(parse_labels("").unwrap(), pairs(&[]));
        assert_eq!(parse_labels("  {  }  ").unwrap(), pairs(&[]));
        assert_eq!(
            parse_labels(r#"up{job="x"}"#).unwrap(),
            pairs(&[("__name__", "up"), ("job", "x")])
        );
        assert_eq!(
            parse_labels("ns:up").unwrap(),
            pairs(&[("__name__", "ns:up")])
        );
        assert_eq!(
            parse_labels("{a=`raw \\n \"x\"`}").unwrap(),
            pairs(&[("a", "raw \\n \"x\"")])
        );
        assert_eq!(
            parse_labels("{a=\"x\" # comment }\n}").unwrap(),
            pairs(&[("a", "x")])
        );
        // Keywords are ordinary names inside braces; duplicates and empty values are kept.
        assert_eq!(
            parse_labels(r#"{by="1", and="2", a="", a="3"}"#).unwrap(),
            pairs(&[("by", "1"), ("and", "2"), ("a", ""), ("a", "3")])
        );
    }

    #[test]
    fn decodes_go_escapes() {
        assert_eq!(
            parse_labels(r#"{a="q\"b\\s\n\t\x41\101\u00e9\U0001F600\a"}"#).unwrap(),
            pairs(&[("a", "q\"b\\s\n\tAA\u{e9}\u{1F600}\u{7}")])
        );
        assert_eq!(
            parse_labels(r"{a='it\'s'}").unwrap(),
            pairs(&[("a", "it's")])
        );
        assert_eq!(
            parse_labels("{a=\"caf\u{e9} \u{65e5}\u{672c}\"}").unwrap(),
            pairs(&[("a", "caf\u{e9} \u{65e5}\u{672c}")])
        );
    }

    #[test]
    fn reports_errors_with_positions() {
        let cases = [
            (r#"{a="b""#, "1:7: parse error: unexpected end of input inside braces"),
            (r#"{a="b}"#, "1:4: parse error: unterminated quoted string"),
            ("{a=\"b\nc\"}", "1:4: parse error: unterminated quoted string"),
            (r#"{a=b}"#, "1:4: parse error: unexpected identifier \"b\" in label set, expected string"),
            (r#"{a!="b"}"#, "1:3: parse error: unexpected \"!=\" in label set, expected \"=\""),
            (r#"{a=~"b"}"#, "1:3: parse error: unexpected \"=~\" in label set, expected \"=\""),
            (r#"{a="b" c="d"}"#, "1:8: parse error: unexpected identifier \"c\" in label set, expected \",\" or \"}\""),
            (r#"{1a="b"}"#, "1:2: parse error: unexpected character '1' in label set, expected identifier or \"}\""),
            (r#"{a.b="c"}"#, "1:3: parse error: unexpected character '.' in label set, expected \"=\""),
            (r#"{a="b"} x"#, "1:9: parse error: unexpected identifier \"x\""),
            (r#"{a="\q"}"#, "1:5: parse error: unknown escape sequence 'q'"),
            (r#"{a="\xff"}"#, "1:4: parse error: invalid UTF-8 in quoted string"),
            (r#"{a="\uD800"}"#, "1:5: parse error: escape sequence is invalid Unicode code point"),
            ("{\n a=\"b\",\n ,}", "3:2: parse error: unexpected character ',' in label set, expected identifier or \"}\""),
            ("{a=`b", "1:4: parse error: unterminated raw string"),
            ("{", "1:2: parse error: unexpected end of input inside braces"),
        ];
        for (input, want) in cases {
            let err = parse_labels(input).expect_err(input);
            assert_eq!(err.to_string(), want, "input {input:?}");
        }
    }

    #[test]
    fn go_quoting_round_trips_through_the_parser() {
        let values = [
            "plain",
            "q\"b\\s",
            "nl\n tab\t cr\r bell\u{7} nul\u{0} del\u{7f}",
            "caf\u{e9} \u{1F600} \u{85} \u{feff}",
        ];
        for v in values {
            let text = format_labels([("a", v)]);
            assert_eq!(parse_labels(&text).unwrap(), pairs(&[("a", v)]), "{text}");
        }
        assert_eq!(
            format_labels([("a", "x\ny"), ("b", "\"")]),
            r#"{a="x\ny", b="\""}"#
        );
    }

    #[test]
    fn label_names_follow_the_legacy_rules() {
        assert!(is_label_name("_a1"));
        assert!(is_label_name("service_name"));
        assert!(!is_label_name("1a"));
        assert!(!is_label_name("a.b"));
        assert!(!is_label_name(""));
    }
}
