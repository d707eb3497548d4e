//! A logfmt decoder with the rules of Loki's (an adaptation of go-logfmt's): bare keys,
//! quoted values with JSON-style escapes, and the same syntax errors at the same
//! (1-based byte) positions.

use std::borrow::Cow;

use super::jsonscan::sub;

pub(crate) struct Decoder<'a> {
    line: &'a str,
    pos: usize,
    pub(crate) key: Option<&'a str>,
    pub(crate) value: Option<Cow<'a, str>>,
    err: Option<(usize, Cow<'static, str>)>,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(line: &'a str) -> Self {
        Self {
            line,
            pos: 0,
            key: None,
            value: None,
            err: None,
        }
    }

    pub(crate) fn eol(&self) -> bool {
        self.pos >= self.line.len()
    }

    /// The last syntax error, worded as Loki's.
    pub(crate) fn error(&self) -> Option<String> {
        self.err
            .as_ref()
            .map(|(pos, msg)| format!("logfmt syntax error at pos {pos} : {msg}"))
    }

    fn syntax_error(&mut self, msg: &'static str) {
        self.err = Some((self.pos + 1, Cow::Borrowed(msg)));
    }

    fn unexpected_byte(&mut self, c: u8) {
        let msg = match c {
            b'"' => "unexpected '\"'",
            _ => "unexpected '='",
        };
        self.err = Some((self.pos + 1, Cow::Borrowed(msg)));
    }

    /// Skips to the next whitespace after a bad pair.
    fn skip_value(&mut self) -> bool {
        let b = self.line.as_bytes();
        self.pos = b[self.pos..]
            .iter()
            .position(|&c| c <= b' ')
            .map_or(b.len(), |p| self.pos + p);
        false
    }

    fn set_key(&mut self, start: usize) -> bool {
        if self.pos > start {
            let key = sub(self.line, start, self.pos);
            self.key = Some(key);
            if key.contains('\u{FFFD}') {
                self.syntax_error("invalid key");
                return false;
            }
        }
        true
    }

    /// Advances to the next key/value pair; false at the end of the line or on an error.
    pub(crate) fn scan_keyval(&mut self) -> bool {
        self.key = None;
        self.value = None;
        let line = self.line;
        let b = line.as_bytes();

        // Garbage before the key.
        match b[self.pos.min(b.len())..].iter().position(|&c| c > b' ') {
            Some(p) => self.pos += p,
            None => {
                self.pos = b.len();
                return false;
            }
        }

        // Key.
        let start = self.pos;
        let mut i = self.pos;
        loop {
            if i >= b.len() {
                self.pos = b.len();
                return self.set_key(start);
            }
            let c = b[i];
            if c == b'=' {
                self.pos = i;
                if self.pos > start {
                    let key = sub(line, start, self.pos);
                    self.key = Some(key);
                    if key.contains('\u{FFFD}') {
                        self.syntax_error("invalid key");
                        return self.skip_value();
                    }
                }
                if self.key.is_none() {
                    self.unexpected_byte(c);
                    return self.skip_value();
                }
                break;
            } else if c == b'"' {
                self.pos = i;
                self.unexpected_byte(c);
                return self.skip_value();
            } else if c <= b' ' {
                self.pos = i;
                return self.set_key(start);
            }
            i += 1;
        }

        // Equal sign.
        self.pos += 1;
        if self.pos >= b.len() {
            return true;
        }
        match b[self.pos] {
            c if c <= b' ' => return true,
            b'"' => return self.quoted_value(),
            _ => {}
        }

        // Bare value.
        let start = self.pos;
        let mut i = self.pos;
        while i < b.len() {
            let c = b[i];
            if c == b'=' || c == b'"' {
                self.pos = i;
                self.unexpected_byte(c);
                return self.skip_value();
            }
            if c <= b' ' {
                break;
            }
            i += 1;
        }
        self.pos = i;
        if self.pos > start {
            self.value = Some(Cow::Borrowed(sub(line, start, self.pos)));
        }
        true
    }

    fn quoted_value(&mut self) -> bool {
        let line = self.line;
        let b = line.as_bytes();
        let start = self.pos;
        let mut has_esc = false;
        let mut esc = false;
        let mut i = self.pos + 1;
        while i < b.len() {
            let c = b[i];
            if esc {
                esc = false;
            } else if c == b'\\' {
                has_esc = true;
                esc = true;
            } else if c == b'"' {
                self.pos = i + 1;
                if has_esc {
                    match unquote(sub(line, start, self.pos)) {
                        Some(v) => self.value = Some(v),
                        None => {
                            self.syntax_error("invalid quoted value");
                            return false;
                        }
                    }
                } else if self.pos - 1 > start + 1 {
                    self.value = Some(Cow::Borrowed(sub(line, start + 1, self.pos - 1)));
                }
                return true;
            }
            i += 1;
        }
        self.pos = b.len();
        self.syntax_error("unterminated quoted value");
        false
    }
}

fn getu4(d: &[u8]) -> Option<u32> {
    if d.len() < 6 || d[0] != b'\\' || d[1] != b'u' {
        return None;
    }
    let mut v = 0u32;
    for &c in &d[2..6] {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

/// Unquotes `"..."` like Go's `encoding/json` string decoding (what go-logfmt uses).
fn unquote(s: &str) -> Option<Cow<'_, str>> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let b = inner.as_bytes();
    if !b.iter().any(|&c| c == b'\\' || c == b'"' || c < b' ') {
        return Some(Cow::Borrowed(inner));
    }
    let mut out = String::with_capacity(inner.len());
    let mut r = 0;
    while r < b.len() {
        let c = b[r];
        if c == b'\\' {
            r += 1;
            let e = *b.get(r)?;
            let ch = match e {
                b'"' | b'\\' | b'/' | b'\'' => e as char,
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    r -= 1;
                    let mut rr = getu4(&b[r..])?;
                    r += 6;
                    if (0xD800..0xE000).contains(&rr) {
                        match getu4(&b[r..]) {
                            Some(rr1)
                                if (0xD800..0xDC00).contains(&rr)
                                    && (0xDC00..0xE000).contains(&rr1) =>
                            {
                                r += 6;
                                rr = ((rr - 0xD800) << 10 | (rr1 - 0xDC00)) + 0x10000;
                            }
                            _ => rr = 0xFFFD,
                        }
                    }
                    out.push(char::from_u32(rr).unwrap_or('\u{FFFD}'));
                    continue;
                }
                _ => return None,
            };
            out.push(ch);
            r += 1;
        } else if c == b'"' || c < b' ' {
            return None;
        } else {
            // Copy a run of ordinary characters.
            let run = b[r..]
                .iter()
                .position(|&c| c == b'\\' || c == b'"' || c < b' ')
                .map_or(b.len(), |p| r + p);
            out.push_str(sub(inner, r, run));
            r = run;
        }
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(line: &str) -> (Vec<(String, Option<String>)>, Option<String>) {
        let mut d = Decoder::new(line);
        let mut out = Vec::new();
        while !d.eol() {
            if d.scan_keyval() {
                out.push((
                    d.key.unwrap_or("").to_string(),
                    d.value.as_deref().map(str::to_string),
                ));
            }
        }
        (out, d.error())
    }

    #[test]
    fn decodes_pairs_and_errors() {
        let (kv, err) = scan(r#"a=1 b="x \"y\"" c flag= d="""#);
        assert_eq!(
            kv,
            vec![
                ("a".into(), Some("1".into())),
                ("b".into(), Some("x \"y\"".into())),
                ("c".into(), None),
                ("flag".into(), None),
                ("d".into(), None),
            ]
        );
        assert_eq!(err, None);
        let (kv, err) = scan("=x a=1");
        assert_eq!(kv, vec![("a".into(), Some("1".into()))]);
        assert_eq!(
            err.as_deref(),
            Some("logfmt syntax error at pos 1 : unexpected '='")
        );
        let (_, err) = scan(r#"a="open"#);
        assert_eq!(
            err.as_deref(),
            Some("logfmt syntax error at pos 8 : unterminated quoted value")
        );
        let (kv, err) = scan("a=b=c d=1");
        assert_eq!(kv, vec![("d".into(), Some("1".into()))]);
        assert_eq!(
            err.as_deref(),
            Some("logfmt syntax error at pos 4 : unexpected '='")
        );
    }
}
