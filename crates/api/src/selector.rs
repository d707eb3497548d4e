//! Parser for series selectors as `match[]` carries them (`up{job=~"a.*"}`). The PromQL engine
//! will bring the full grammar; this covers the selector subset with Prometheus' rules.

use vigil_model::{MatchOp, Matcher, METRIC_NAME_LABEL};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("parse error at char {position}: {message}")]
pub struct SelectorError {
    pub position: usize,
    pub message: String,
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    _src: &'a str,
}

pub fn parse_selector(src: &str) -> Result<Vec<Matcher>, SelectorError> {
    let mut p = Parser {
        chars: src.chars().collect(),
        pos: 0,
        _src: src,
    };
    let mut matchers = Vec::new();
    p.skip_ws();
    if p.peek()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
    {
        let name = p.ident(true);
        matchers.push(p.matcher(MatchOp::Equal, METRIC_NAME_LABEL, name)?);
    }
    p.skip_ws();
    if p.peek() == Some('{') {
        p.pos += 1;
        loop {
            p.skip_ws();
            if p.peek() == Some('}') {
                p.pos += 1;
                break;
            }
            if !p
                .peek()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            {
                return Err(p.error("expected label matching operator or '}'".into()));
            }
            let name = p.ident(false);
            p.skip_ws();
            let op = p.op()?;
            p.skip_ws();
            let value = p.string()?;
            matchers.push(p.matcher(op, &name, value)?);
            p.skip_ws();
            match p.peek() {
                Some(',') => p.pos += 1,
                Some('}') => {}
                _ => {
                    return Err(p.error(
                        "unexpected character inside braces: expected \",\" or \"}\"".into(),
                    ))
                }
            }
        }
    }
    p.skip_ws();
    if p.pos < p.chars.len() {
        return Err(p.error(format!("unexpected character {:?}", p.chars[p.pos])));
    }
    if matchers.is_empty() {
        return Err(SelectorError {
            position: 0,
            message: "unexpected end of input: expected a series selector".into(),
        });
    }
    if matchers.iter().all(Matcher::matches_empty) {
        return Err(SelectorError {
            position: 0,
            message: "vector selector must contain at least one non-empty matcher".into(),
        });
    }
    Ok(matchers)
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn error(&self, message: String) -> SelectorError {
        SelectorError {
            position: self.pos,
            message,
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn ident(&mut self, metric: bool) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':'))
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn op(&mut self) -> Result<MatchOp, SelectorError> {
        let two: String = self.chars.iter().skip(self.pos).take(2).collect();
        let (op, len) = match two.as_str() {
            "=~" => (MatchOp::RegexMatch, 2),
            "!~" => (MatchOp::RegexNoMatch, 2),
            "!=" => (MatchOp::NotEqual, 2),
            _ if two.starts_with('=') => (MatchOp::Equal, 1),
            _ => {
                return Err(self.error("expected label matching operator (=, !=, =~ or !~)".into()))
            }
        };
        self.pos += len;
        Ok(op)
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        let Some(quote) = self.peek().filter(|c| matches!(c, '"' | '\'' | '`')) else {
            return Err(self.error("expected a quoted label value".into()));
        };
        self.pos += 1;
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == quote {
                return Ok(out);
            }
            if c == '\\' && quote != '`' {
                let Some(e) = self.peek() else { break };
                self.pos += 1;
                let unescaped = match e {
                    'n' => Some('\n'),
                    't' => Some('\t'),
                    'r' => Some('\r'),
                    '\\' | '"' | '\'' => Some(e),
                    _ => None,
                };
                match unescaped {
                    Some(u) => out.push(u),
                    None => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            } else {
                out.push(c);
            }
        }
        Err(self.error("unterminated quoted string".into()))
    }

    fn matcher(&self, op: MatchOp, name: &str, value: String) -> Result<Matcher, SelectorError> {
        Matcher::new(op, name, value).map_err(|e| self.error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_all_matcher_kinds() {
        let m = parse_selector(r#"up{job=~"a.*", instance!="x", env!~'p', zone=`z\n`}"#).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].name, "__name__");
        assert_eq!(m[4].value, "z\\n");
        assert!(parse_selector(r#"{__name__=~"node_.+"}"#).is_ok());
    }

    #[test]
    fn rejects_empty_matching_and_bad_syntax() {
        assert!(parse_selector(r#"{job=~".*"}"#).is_err());
        assert!(parse_selector("up{job=}").is_err());
        assert!(parse_selector("up{job=\"a\"").is_err());
        assert!(parse_selector("").is_err());
    }
}
