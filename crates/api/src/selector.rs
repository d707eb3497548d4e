//! Series selectors as `match[]` carries them (`up{job=~"a.*"}`), parsed by the PromQL parser
//! with Prometheus' rules (at least one matcher that does not match the empty string).

use vigil_model::Matcher;
use vigil_promql::parser::ast::Expr;

/// The matchers of a series selector, or the parser's error text (`1:5: parse error: ...`).
pub fn parse_selector(src: &str) -> Result<Vec<Matcher>, String> {
    match vigil_promql::parser::parse(src) {
        Ok(Expr::VectorSelector(vs)) if vs.offset_ms == 0 && vs.at.is_none() => Ok(vs.matchers),
        Ok(_) => Err(format!(
            "1:1: parse error: unexpected expression, expected a series selector: {src}"
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_all_matcher_kinds() {
        let m = parse_selector(r#"up{job=~"a.*", instance!="x", env!~'p', zone=`z\n`}"#).unwrap();
        assert_eq!(m.len(), 5);
        assert!(m.iter().any(|m| m.name == "__name__" && m.value == "up"));
        assert!(m.iter().any(|m| m.name == "zone" && m.value == "z\\n"));
        assert!(parse_selector(r#"{__name__=~"node_.+"}"#).is_ok());
    }

    #[test]
    fn rejects_empty_matching_and_bad_syntax() {
        assert!(parse_selector(r#"{job=~".*"}"#).is_err());
        assert!(parse_selector("up{job=}").is_err());
        assert!(parse_selector("up{job=\"a\"").is_err());
        assert!(parse_selector("").is_err());
        assert!(parse_selector("rate(up[5m])").is_err());
        assert_eq!(
            parse_selector("up{").unwrap_err(),
            "1:4: parse error: unexpected end of input inside braces"
        );
    }
}
