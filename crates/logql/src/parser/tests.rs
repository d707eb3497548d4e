use super::*;
use crate::ast::*;

fn p(q: &str) -> Expr {
    match parse(q) {
        Ok(e) => e,
        Err(e) => panic!("{q}: {e}"),
    }
}

fn err(q: &str) -> String {
    match parse(q) {
        Ok(e) => panic!("{q}: parsed as {e:?}"),
        Err(e) => e.to_string(),
    }
}

/// Structural equality (the AST has no `PartialEq`: matchers hold compiled regexes).
fn same(a: &Expr, b: &Expr) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fn round_trip(q: &str) {
    let e1 = p(q);
    let printed = e1.to_string();
    let e2 = match parse(&printed) {
        Ok(e) => e,
        Err(e) => panic!("{q}\n printed as {printed}\n which fails: {e}"),
    };
    assert!(
        same(&e1, &e2),
        "{q}\n printed as {printed}\n {e1:?}\n != {e2:?}"
    );
    // Printing is stable.
    assert_eq!(printed, e2.to_string(), "{q}");
}

fn log(q: &str) -> LogExpr {
    match p(q) {
        Expr::Log(l) => l,
        Expr::Metric(m) => panic!("{q}: metric {m:?}"),
    }
}

fn metric(q: &str) -> MetricExpr {
    match p(q) {
        Expr::Metric(m) => m,
        Expr::Log(l) => panic!("{q}: log {l:?}"),
    }
}

fn label_filter(q: &str) -> LabelFilterExpr {
    let l = log(q);
    match l.pipeline.last() {
        Some(Stage::LabelFilter(f)) => f.clone(),
        other => panic!("{q}: {other:?}"),
    }
}

/// A compact rendering of a label filter tree for precedence tests.
fn shape(f: &LabelFilterExpr) -> String {
    match f {
        LabelFilterExpr::And(a, b) => format!("and({}, {})", shape(a), shape(b)),
        LabelFilterExpr::Or(a, b) => format!("or({}, {})", shape(a), shape(b)),
        LabelFilterExpr::Matcher(m) => m.name.clone(),
        LabelFilterExpr::Number { name, .. }
        | LabelFilterExpr::Duration { name, .. }
        | LabelFilterExpr::Bytes { name, .. }
        | LabelFilterExpr::Ip { name, .. } => name.clone(),
    }
}

fn mshape(m: &MetricExpr) -> String {
    match m {
        MetricExpr::Binary { op, lhs, rhs, .. } => {
            format!("({} {} {})", mshape(lhs), binop_str(*op), mshape(rhs))
        }
        MetricExpr::Literal(v) => crate::format::go_float(*v),
        MetricExpr::VectorAgg { op, .. } => vector_op_str(*op).to_string(),
        MetricExpr::Range { op, .. } => range_op_str(*op).to_string(),
        MetricExpr::Vector(v) => format!("vector({v})"),
        MetricExpr::LabelReplace { .. } => "label_replace".to_string(),
    }
}

#[test]
fn golden_queries() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/logql/golden-public.json"
    );
    let path = if std::path::Path::new(path).exists() {
        path.to_string()
    } else {
        "/work/shared/logql/golden-public.json".to_string()
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipping: {path} not found");
        return;
    };
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut ok = 0;
    let mut failing = 0;
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for case in cases.as_array().unwrap() {
        let Some(q) = case["params"]["query"].as_str() else {
            continue;
        };
        if !seen.insert(q.to_string()) {
            continue;
        }
        let status = case["status"].as_i64().unwrap_or(0);
        let body = &case["body"];
        let message = body
            .as_str()
            .map(str::to_string)
            .or_else(|| body["error"].as_str().map(str::to_string))
            .or_else(|| body["message"].as_str().map(str::to_string))
            .unwrap_or_default();
        let result = parse(q);
        if status == 200 || !message.starts_with("parse error") {
            match result {
                Ok(e) => {
                    ok += 1;
                    let printed = e.to_string();
                    match parse(&printed) {
                        Ok(e2) if same(&e, &e2) => {}
                        Ok(_) => problems.push(format!("{q}: round trip differs: {printed}")),
                        Err(err) => problems.push(format!("{q}: printed {printed}: {err}")),
                    }
                }
                Err(e) => problems.push(format!("{q}: expected to parse (status {status}): {e}")),
            }
        } else {
            match result {
                Ok(e) => problems.push(format!("{q}: expected `{message}`, parsed {e}")),
                Err(e) => {
                    failing += 1;
                    if e.to_string() != message.trim_end() {
                        problems.push(format!("{q}:\n  want {message}\n  got  {e}"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(ok > 250, "only {ok} queries parsed");
    assert!(failing > 10, "only {failing} queries failed");
}

#[test]
fn golden_error_texts() {
    let cases = [
        (
            r#"{app="nginx""#,
            "parse error at line 1, col 13: syntax error: unexpected $end, expecting } or ,",
        ),
        (
            r#"{app="nginx"} |="#,
            "parse error at line 1, col 17: syntax error: unexpected $end, expecting STRING or ip",
        ),
        (
            r#"{app=~"("}"#,
            "parse error : error parsing regexp: missing closing ): `(`",
        ),
        (
            r#"{app="nginx"} |~ "(""#,
            r#"parse error : stage '|~ "("' : error parsing regexp: missing closing ): `(`"#,
        ),
        (r#"{}"#, &format!("parse error : {ERR_NEED_MATCHER}")),
        (r#"{app=~".*"}"#, &format!("parse error : {ERR_NEED_MATCHER}")),
        (
            r#"count_over_time({app="nginx"})"#,
            "parse error at line 1, col 30: syntax error: unexpected )",
        ),
        (
            r#"rate({app="nginx"}[5x])"#,
            r#"parse error at line 0, col 19: unknown unit "x" in duration "5x""#,
        ),
        (
            r#"sum_over_time({app="api-gateway"} | json | unwrap duration_ms [5m]) by (method)"#,
            "parse error : grouping not allowed for sum_over_time aggregation",
        ),
        (
            r#"{app="nginx"} | regexp "(\\d+)""#,
            "parse error : invalid regexp parser: at least one named capture must be supplied",
        ),
        (
            r#"avg_over_time({app="nginx"}[5m])"#,
            "parse error : invalid aggregation avg_over_time without unwrap",
        ),
        (
            r#"{app="nginx"} | label_format a=b, a=c"#,
            "parse error : stage '| label_format a=b,a=c' : multiple label name 'a' not allowed in a single format operation",
        ),
        (
            r#"{app="nginx"} | json status="#,
            "parse error at line 1, col 29: syntax error: unexpected $end, expecting STRING",
        ),
        (
            r#"{app="nginx"} | pattern "<a><b>""#,
            "parse error : invalid pattern parser: found consecutive capture '<a><b>': invalid expression",
        ),
        (
            r#"sum(count_over_time({app="nginx"}[5m])) by (app) + on(foo) group_left bar"#,
            "parse error at line 1, col 71: syntax error: unexpected IDENTIFIER",
        ),
        (
            r#"{app="nginx"} | drop"#,
            "parse error at line 1, col 21: syntax error: unexpected $end, expecting IDENTIFIER",
        ),
        (
            r#"{app="nginx"} | keep"#,
            "parse error at line 1, col 21: syntax error: unexpected $end, expecting IDENTIFIER",
        ),
        (
            r#"{app="nginx"} | unknown_stage"#,
            "parse error at line 1, col 30: syntax error: unexpected $end",
        ),
        (
            r#"quantile_over_time(-0.5, {app="orders"} | logfmt | unwrap items [5m]) by (pod)"#,
            "parse error at line 1, col 20: syntax error: unexpected -, expecting NUMBER or { or (",
        ),
    ];
    for (q, want) in cases {
        assert_eq!(err(q), want, "{q}");
    }
}

#[test]
fn other_errors() {
    assert!(err(r#"{app="a"} | unwrap x"#).contains("unexpected unwrap"));
    assert!(err(r#"{app="a"} + 1"#)
        .contains("unexpected type for left leg of binary operation (+): *syntax.MatchersExpr"));
    assert!(err(r#"1 + {app="a"} |= "x""#)
        .contains("unexpected type for right leg of binary operation (+): *syntax.PipelineExpr"));
    assert!(err(r#"sum({app="a"})"#).contains("syntax error: unexpected )"));
    assert!(err(r#"count_over_time({app="a"} | unwrap x [5m])"#)
        .contains("invalid aggregation count_over_time with unwrap"));
    assert!(err(r#"rate({app="a"}[5m]) by (x)"#).contains("grouping not allowed for rate"));
    assert!(err(r#"rate_counter({app="a"}[5m])"#)
        .contains("invalid aggregation rate_counter without unwrap"));
    assert!(err(r#"quantile_over_time({app="a"} | unwrap x [5m])"#)
        .contains("parameter required for operation quantile_over_time"));
    assert!(err(r#"topk(count_over_time({app="a"}[5m]))"#)
        .contains("parameter required for operation topk"));
    assert!(err(r#"topk(0, count_over_time({app="a"}[5m]))"#)
        .contains("invalid parameter (must be greater than 0) topk(0"));
    assert!(err(r#"sum(5, count_over_time({app="a"}[5m]))"#)
        .contains("unsupported parameter for operation sum(5,"));
    assert!(err(r#"sort by (a) (count_over_time({app="a"}[5m]))"#)
        .contains("sort and sort_desc doesn't allow grouping by"));
    assert!(err(r#"1 or vector(1)"#).contains(
        "unexpected literal for left leg of logical/set binary operation (or): 1.000000"
    ));
    assert!(err(r#"{app="a"} | json | x == "a""#).contains("syntax error"));
    assert!(err(r#"{app="a"} | x =~ 5"#).contains("expecting STRING"));
    assert!(err(r#"rate({app="a"}[5m"#).contains("missing closing ']' in duration"));
    assert!(err(r#"rate({app="a"}[1.5m])"#).contains(r#"unknown unit "." in duration "1.5m""#));
    assert!(err(r#"{app="a"} |= "x"#).contains("literal not terminated"));
    assert!(err(r#"{app="a"} |= "\q""#).contains("invalid char escape"));
    assert!(
        err(r#"sum(rate({app="a"}[5m])) + group_left sum(rate({app="a"}[5m]))"#)
            .contains("syntax error")
    );
    assert!(err(r#"label_replace(vector(1), "a", "b", "c", "(")"#)
        .contains("invalid regex in label_replace"));
    assert!(err(r#"{app="a"} | pattern "<_> foo""#)
        .contains("invalid pattern parser: at least one capture is required"));
    assert!(err(r#"{app="a"} | pattern "<a> <a>""#).contains("duplicate capture name (a)"));
    assert_eq!(
        err(r#"{app="a"} | logfmt --strict x="#),
        "parse error at line 1, col 31: syntax error: unexpected $end, expecting STRING"
    );
    // Multi-line positions.
    assert_eq!(
        err("sum(\n  rate({app=\"a\"}[5m])\n  ) by (\n)x"),
        "parse error at line 4, col 2: syntax error: unexpected IDENTIFIER"
    );
    // Two-character tokens report line 0, as Loki does.
    assert_eq!(
        err(r#"{app="a"} | |= "x""#),
        "parse error at line 0, col 13: syntax error: unexpected |="
    );
    let e = parse(r#"{app="a"} |="#).unwrap_err();
    assert_eq!((e.line, e.col), (1, 13));
    assert_eq!(
        ParseError::new("x").to_string(),
        "parse error : x",
        "no position"
    );
}

#[test]
fn selectors() {
    let l = log(r#"{a="b", c!="d", e=~"re", f!~"re"}"#);
    assert_eq!(l.selector.len(), 4);
    assert_eq!(l.selector[1].op, MatchOp::NotEqual);
    assert_eq!(l.selector[2].op, MatchOp::RegexMatch);
    assert_eq!(l.selector[3].op, MatchOp::RegexNoMatch);
    assert!(l.pipeline.is_empty());
    // A non-empty negative matcher is enough (Loki splits on "matches the empty string").
    p(r#"{level!=""}"#);
    p(r#"{app=~".+"}"#);
    assert!(parse(r#"{app!="x"}"#).is_err());
    assert!(parse(r#"{app=""}"#).is_err());
    // Keywords are case-insensitive; functions only before `(`.
    p(r#"SUM BY (a) (RATE({app="a"}[5m]))"#);
    let l = log(r#"{app="a"} | rate > 5 | bytes > 1KB | ip = ip("1.2.3.4")"#);
    assert_eq!(l.pipeline.len(), 3);
    // Comments.
    p("{app=\"a\"} # all of it\n|= \"x\"");
}

#[test]
fn strings_and_escapes() {
    let text = |q: &str| match &log(q).pipeline[0] {
        Stage::LineFilter(f) => match &f.values[0] {
            LineFilterValue::Text(t) => t.clone(),
            v => panic!("{v:?}"),
        },
        s => panic!("{s:?}"),
    };
    assert_eq!(text(r#"{a="b"} |= "\"q\"""#), "\"q\"");
    assert_eq!(text(r#"{a="b"} |= "a\\b""#), "a\\b");
    assert_eq!(text(r#"{a="b"} |= "a\nb\tc""#), "a\nb\tc");
    assert_eq!(text(r#"{a="b"} |= "\x1b[31m""#), "\x1b[31m");
    assert_eq!(text(r#"{a="b"} |= "caf\u00e9""#), "café");
    assert_eq!(text(r#"{a="b"} |= "\U0001F600""#), "😀");
    assert_eq!(text(r#"{a="b"} |= "\101\102""#), "AB");
    assert_eq!(text(r#"{a="b"} |= "Zoë""#), "Zoë");
    assert_eq!(text(r#"{a="b"} |= `raw \d "x"`"#), r#"raw \d "x""#);
    assert_eq!(text("{a=\"b\"} |= `two\nlines`"), "two\nlines");
    assert!(parse(r#"{a="b"} |= "\400""#).is_err());
}

#[test]
fn line_filters() {
    let l = log(r#"{a="b"} |= "x" != "y" |~ "z" !~ "w" |> "<_> p" !> "q" |= ip("10.0.0.0/8")"#);
    let ops: Vec<LineFilterOp> = l
        .pipeline
        .iter()
        .map(|s| match s {
            Stage::LineFilter(f) => f.op,
            s => panic!("{s:?}"),
        })
        .collect();
    use LineFilterOp::*;
    assert_eq!(
        ops,
        [
            Contains,
            NotContains,
            Regex,
            NotRegex,
            Pattern,
            NotPattern,
            Contains
        ]
    );
    let l = log(r#"{a="b"} |= "a" or "b" or ip("1.1.1.1") or "c""#);
    let Stage::LineFilter(f) = &l.pipeline[0] else {
        panic!()
    };
    assert_eq!(
        f.values,
        vec![
            LineFilterValue::Text("a".into()),
            LineFilterValue::Text("b".into()),
            LineFilterValue::Ip("1.1.1.1".into()),
            LineFilterValue::Text("c".into())
        ]
    );
    assert_eq!(l.pipeline.len(), 1);
}

#[test]
fn parsers() {
    let l = log(
        r#"{a="b"} | json | json a="x.y", b, c="tags[0]" | logfmt | logfmt --strict --keep-empty | logfmt a, b="c" | regexp "(?P<x>.)" | pattern "<x> y" | unpack"#,
    );
    let stages: Vec<String> = l.pipeline.iter().map(|s| format!("{s:?}")).collect();
    assert_eq!(stages[0], r#"Parser(Json { params: [] })"#);
    assert_eq!(
        stages[1],
        r#"Parser(Json { params: [("a", "x.y"), ("b", "b"), ("c", "tags[0]")] })"#
    );
    assert_eq!(
        stages[3],
        r#"Parser(Logfmt { strict: true, keep_empty: true, params: [] })"#
    );
    assert_eq!(
        stages[4],
        r#"Parser(Logfmt { strict: false, keep_empty: false, params: [("a", "a"), ("b", "c")] })"#
    );
    assert_eq!(stages.len(), 8);
}

#[test]
fn formatters_and_label_selection() {
    let l = log(
        r#"{a="b"} | line_format "{{.x}}" | label_format a="{{.x}}", b=c | drop a, b="x", c=~"y" | keep d | decolorize"#,
    );
    assert!(matches!(&l.pipeline[0], Stage::LineFormat(t) if t == "{{.x}}"));
    match &l.pipeline[1] {
        Stage::LabelFormat(items) => {
            assert!(
                matches!(&items[0], LabelFormatItem::Template { dst, template } if dst == "a" && template == "{{.x}}")
            );
            assert!(
                matches!(&items[1], LabelFormatItem::Rename { dst, src } if dst == "b" && src == "c")
            );
        }
        s => panic!("{s:?}"),
    }
    match &l.pipeline[2] {
        Stage::Drop(items) => {
            assert!(matches!(&items[0], LabelSelection::Name(n) if n == "a"));
            assert!(matches!(&items[1], LabelSelection::Matcher(m) if m.op == MatchOp::Equal));
            assert!(matches!(&items[2], LabelSelection::Matcher(m) if m.op == MatchOp::RegexMatch));
        }
        s => panic!("{s:?}"),
    }
    assert!(matches!(&l.pipeline[4], Stage::Decolorize));
}

#[test]
fn label_filter_values() {
    match label_filter(r#"{a="b"} | x >= -1.5"#) {
        LabelFilterExpr::Number { op, value, .. } => {
            assert_eq!(op, CmpOp::Ge);
            assert_eq!(value, -1.5);
        }
        f => panic!("{f:?}"),
    }
    match label_filter(r#"{a="b"} | x = 3"#) {
        LabelFilterExpr::Number { op, value, .. } => assert_eq!((op, value), (CmpOp::Eq, 3.0)),
        f => panic!("{f:?}"),
    }
    match label_filter(r#"{a="b"} | x == 3"#) {
        LabelFilterExpr::Number { op, .. } => assert_eq!(op, CmpOp::Eq),
        f => panic!("{f:?}"),
    }
    match label_filter(r#"{a="b"} | x > 250ms"#) {
        LabelFilterExpr::Duration { op, seconds, .. } => {
            assert_eq!((op, seconds), (CmpOp::Gt, 0.25))
        }
        f => panic!("{f:?}"),
    }
    match label_filter(r#"{a="b"} | x < 1.5s"#) {
        LabelFilterExpr::Duration { seconds, .. } => assert_eq!(seconds, 1.5),
        f => panic!("{f:?}"),
    }
    match label_filter(r#"{a="b"} | x != 1m"#) {
        LabelFilterExpr::Duration { op, seconds, .. } => {
            assert_eq!((op, seconds), (CmpOp::Ne, 60.0))
        }
        f => panic!("{f:?}"),
    }
    // Sizes compare as Loki's frontend prints them: 1KiB as `1.0kB`.
    match label_filter(r#"{a="b"} | x <= 1KiB"#) {
        LabelFilterExpr::Bytes { op, bytes, .. } => assert_eq!((op, bytes), (CmpOp::Le, 1000.0)),
        f => panic!("{f:?}"),
    }
    match label_filter(r#"{a="b"} | x > 100KB"#) {
        LabelFilterExpr::Bytes { bytes, .. } => assert_eq!(bytes, 100_000.0),
        f => panic!("{f:?}"),
    }
    match label_filter(r#"{a="b"} | x > 1.1KiB"#) {
        LabelFilterExpr::Bytes { bytes, .. } => assert_eq!(bytes, 1100.0),
        f => panic!("{f:?}"),
    }
    match label_filter(r#"{a="b"} | x != ip("10.0.0.0/8")"#) {
        LabelFilterExpr::Ip {
            negated, pattern, ..
        } => assert!(negated && pattern == "10.0.0.0/8"),
        f => panic!("{f:?}"),
    }
    match label_filter(r#"{a="b"} | __error__="""#) {
        LabelFilterExpr::Matcher(m) => {
            assert_eq!((m.name.as_str(), m.value.as_str()), ("__error__", ""))
        }
        f => panic!("{f:?}"),
    }
    match label_filter(r#"{a="b"} | x !~ "a.*""#) {
        LabelFilterExpr::Matcher(m) => assert_eq!(m.op, MatchOp::RegexNoMatch),
        f => panic!("{f:?}"),
    }
}

#[test]
fn label_filter_precedence() {
    let s = |q: &str| shape(&label_filter(&format!(r#"{{a="b"}} | {q}"#)));
    assert_eq!(s(r#"a="1" or b="2" and c="3""#), "or(a, and(b, c))");
    assert_eq!(s(r#"a="1" and b="2" or c="3""#), "or(and(a, b), c)");
    assert_eq!(s(r#"a="1" or b="2" or c="3""#), "or(or(a, b), c)");
    assert_eq!(s(r#"a="1" and b="2" and c="3""#), "and(and(a, b), c)");
    assert_eq!(s(r#"a="1", b="2" or c="3""#), "and(a, or(b, c))");
    assert_eq!(s(r#"a="1" or b="2", c="3""#), "or(a, and(b, c))");
    assert_eq!(s(r#"a!=1 b!=2"#), "and(a, b)");
    assert_eq!(s(r#"a="1" b="2" or c="3""#), "and(a, or(b, c))");
    assert_eq!(s(r#"(a="1" or b="2") and c="3""#), "and(or(a, b), c)");
    assert_eq!(
        s(r#"a="1" or b="2" and c="3" or d="4""#),
        "or(or(a, and(b, c)), d)"
    );
    assert_eq!(s(r#"a >= 400 and b="POST""#), "and(a, b)");
    // The golden query: `level="warn" or level="error" and method="GET"`.
    assert_eq!(
        s(r#"level="warn" or level="error" and method="GET""#),
        "or(level, and(level, method))"
    );
    let l = log(r#"{a="b"} | json | status != 200 status != 201 | x="y""#);
    assert_eq!(l.pipeline.len(), 3);
}

#[test]
fn binary_precedence() {
    let s = |q: &str| mshape(&metric(q));
    let r = r#"rate({a="b"}[1m])"#;
    assert_eq!(s(&format!("{r} + {r} * {r}")), "(rate + (rate * rate))");
    assert_eq!(s(&format!("{r} * {r} + {r}")), "((rate * rate) + rate)");
    assert_eq!(s(&format!("{r} - {r} - {r}")), "((rate - rate) - rate)");
    assert_eq!(s(&format!("{r} ^ {r} ^ {r}")), "(rate ^ (rate ^ rate))");
    assert_eq!(s(&format!("{r} * {r} ^ {r}")), "(rate * (rate ^ rate))");
    assert_eq!(
        s(&format!("{r} or {r} and {r} > {r} + {r}")),
        "(rate or (rate and (rate > (rate + rate))))"
    );
    assert_eq!(
        s(&format!("{r} and {r} unless {r}")),
        "((rate and rate) unless rate)"
    );
    assert_eq!(s(&format!("({r} + {r}) * {r}")), "((rate + rate) * rate)");
    assert_eq!(s(&format!("{r} * -1")), "(rate * -1)");
    // Literals fold, as in Loki.
    assert_eq!(s("1 + 2 * 3"), "7");
    assert_eq!(s("2 ^ 3 ^ 2"), "512");
    assert_eq!(s("1 > bool 2"), "0");
    assert_eq!(s("7 % 3"), "1");
    assert_eq!(s(&format!("2 * 3 + {r}")), "(6 + rate)");
    match metric(&format!("{r} > bool on (a, b) group_left (c) {r}")) {
        MetricExpr::Binary {
            op,
            return_bool,
            matching: Some(m),
            ..
        } => {
            assert_eq!(op, BinaryOp::Gt);
            assert!(return_bool && m.on);
            assert_eq!(m.labels, ["a", "b"]);
            assert!(matches!(m.group, Some(GroupSide::Left(ref l)) if l == &["c"]));
        }
        m => panic!("{m:?}"),
    }
    match metric(&format!("{r} / ignoring (a) group_right {r}")) {
        MetricExpr::Binary {
            matching: Some(m), ..
        } => {
            assert!(!m.on);
            assert!(matches!(m.group, Some(GroupSide::Right(ref l)) if l.is_empty()));
        }
        m => panic!("{m:?}"),
    }
}

#[test]
fn range_aggregations() {
    match metric(r#"count_over_time({a="b"} |= "x" [5m] offset 1m)"#) {
        MetricExpr::Range {
            op,
            log,
            range_ns,
            offset_ns,
            unwrap,
            param,
            grouping,
        } => {
            assert_eq!(op, RangeOp::CountOverTime);
            assert_eq!(log.pipeline.len(), 1);
            assert_eq!(range_ns, 300_000_000_000);
            assert_eq!(offset_ns, 60_000_000_000);
            assert!(unwrap.is_none() && param.is_none() && grouping.is_none());
        }
        m => panic!("{m:?}"),
    }
    match metric(
        r#"quantile_over_time(0.99, {a="b"} | json | unwrap duration(d) | __error__="" [5m]) by (x)"#,
    ) {
        MetricExpr::Range {
            param,
            unwrap: Some(u),
            grouping: Some(g),
            log,
            ..
        } => {
            assert_eq!(param, Some(0.99));
            assert_eq!(u.label, "d");
            assert_eq!(u.conversion, UnwrapConversion::Duration);
            assert_eq!(u.post_filters.len(), 1);
            assert_eq!(g.labels, ["x"]);
            assert_eq!(log.pipeline.len(), 1);
        }
        m => panic!("{m:?}"),
    }
    // All the places Loki accepts the range and the parentheses.
    let forms = [
        r#"count_over_time(({a="b"} |= "x")[5m])"#,
        r#"count_over_time({a="b"}[5m] |= "x")"#,
        r#"count_over_time(({a="b"} |= "x"[5m]))"#,
        r#"count_over_time((({a="b"} |= "x"[5m])))"#,
    ];
    for f in forms {
        assert!(
            same(&p(f), &p(r#"count_over_time({a="b"} |= "x" [5m])"#)),
            "{f}"
        );
    }
    assert!(same(
        &p(r#"sum_over_time({a="b"}[5m] offset 1m | json | unwrap x)"#),
        &p(r#"sum_over_time({a="b"} | json | unwrap x [5m] offset 1m)"#)
    ));
    assert!(same(
        &p(r#"sum_over_time(({a="b"} | unwrap bytes(x))[5m])"#),
        &p(r#"sum_over_time({a="b"} | unwrap bytes(x) [5m])"#)
    ));
    p(r#"rate_counter({a="b"} | unwrap x [5m])"#);
    p(r#"absent_over_time({a="b"} | unwrap x [5m])"#);
    p(r#"first_over_time({a="b"} | unwrap duration_seconds(x) [5m]) without (a)"#);
    p(r#"count_over_time({a="b"}[1d])"#);
    p(r#"count_over_time({a="b"}[1w])"#);
}

#[test]
fn vector_aggregations() {
    for q in [
        r#"sum by (a) (rate({a="b"}[5m]))"#,
        r#"sum(rate({a="b"}[5m])) by (a)"#,
    ] {
        match metric(q) {
            MetricExpr::VectorAgg {
                op,
                grouping: Some(g),
                ..
            } => {
                assert_eq!(op, VectorAggOp::Sum);
                assert_eq!(g.labels, ["a"]);
            }
            m => panic!("{m:?}"),
        }
    }
    match metric(r#"topk(5, rate({a="b"}[5m])) by (a)"#) {
        MetricExpr::VectorAgg { op, param, .. } => {
            assert_eq!((op, param), (VectorAggOp::Topk, Some(5.0)))
        }
        m => panic!("{m:?}"),
    }
    match metric(r#"sum by () (rate({a="b"}[5m]))"#) {
        MetricExpr::VectorAgg { grouping, .. } => assert!(grouping.is_none()),
        m => panic!("{m:?}"),
    }
    match metric(r#"sum without () (rate({a="b"}[5m]))"#) {
        MetricExpr::VectorAgg {
            grouping: Some(g), ..
        } => assert!(g.without && g.labels.is_empty()),
        m => panic!("{m:?}"),
    }
    p(r#"sort_desc(rate({a="b"}[5m]))"#);
    p(r#"bottomk by (a) (2, rate({a="b"}[5m]))"#);
    p(r#"label_replace(rate({a="b"}[5m]), "d", "$1", "s", "(.*)")"#);
    p("vector(1) + vector(2)");
}

#[test]
fn round_trips() {
    let queries = [
        r#"{a="b", c!="d", e=~"re", f!~"re"}"#,
        r#"{a="b"} |= "x" != "y" |~ "z" !~ "w" |> "<_> p" !> "q""#,
        r#"{a="b"} |= "a" or "b" != "c" or "d""#,
        r#"{a="b"} |= ip("10.0.0.0/8") or "x""#,
        r#"{a="b"} | json | json a="x.y", b | logfmt --strict a, b="c" | logfmt --keep-empty"#,
        r#"{a="b"} | regexp `(?P<x>\d+)` | pattern "<x> \"y\"" | unpack | decolorize"#,
        r#"{a="b"} | x > 1.5 | y <= -2 | z == 3 | w != 4 | d > 250ms | e < 1h30m | f > 1KiB | g <= 10KB | h >= 1.1KiB"#,
        r#"{a="b"} | x="1" or y="2" and z="3", w="4" u="5" | (a="1" or b=~"2") and c!~"3""#,
        r#"{a="b"} | ip = ip("1.2.3.4") | ip != ip("::1")"#,
        r#"{a="b"} | line_format "{{.x}}\n\t\"q\"" | label_format a="{{.b}}", c=d | drop a, b="x", c=~"y" | keep e, f!="g""#,
        r#"{a="b"} |= "Zoë\x1b[0m\u00a0""#,
        r#"sum by (app)(count_over_time({app="a"} |= "x" [5m]))"#,
        r#"sum without () (rate({a="b"}[5m]))"#,
        r#"topk(5, sum by (a, b) (rate({a="b"}[5m] offset 1h30m)))"#,
        r#"quantile_over_time(0.5, {a="b"} | logfmt | unwrap bytes(x) | __error__="" | y > 1 [90s]) by (a)"#,
        r#"avg_over_time({a="b"} | unwrap duration_seconds(x) [1d]) without (z)"#,
        r#"sum(rate({a="b"}[5m])) / ignoring (x) group_left (y) sum(rate({a="b"}[5m]))"#,
        r#"sum(rate({a="b"}[5m])) - on () group_right sum(rate({a="b"}[5m]))"#,
        r#"sum(rate({a="b"}[5m])) + ignoring () group_left sum(rate({a="b"}[5m]))"#,
        r#"sum(rate({a="b"}[5m])) > bool 0.5 or vector(0) unless sum(rate({a="c"}[1m]))"#,
        r#"2 ^ 3 ^ 2 * sum(rate({a="b"}[5m])) ^ 2"#,
        r#"-1 * 1e6 + sum(rate({a="b"}[5m])) * 0.0001 + 1e-7"#,
        r#"label_replace(rate({a="b"}[5m]), "d", "$1", "s", "(.*)")"#,
        r#"vector(3.5)"#,
        r#"1 / 3"#,
        r#"count_over_time({a="b"}[5m] offset -5m)"#,
        r#"count_over_time({a="b"} | x > 1500ms [5m])"#,
    ];
    for q in queries {
        round_trip(q);
    }
}

#[test]
fn format_matches_loki() {
    let f = |q: &str| p(q).to_string();
    assert_eq!(
        f(r#"sum by (app) (count_over_time({app="a"} |= "x" [5m]))"#),
        r#"sum by (app)(count_over_time({app="a"} |= "x"[5m]))"#
    );
    assert_eq!(
        f(
            r#"max_over_time({a="b"} | json | unwrap bytes(x) | __error__="" [5m] offset 5m) by (l, m)"#
        ),
        r#"max_over_time({a="b"} | json | unwrap bytes(x) | __error__=""[5m] offset 5m0s) by (l,m)"#
    );
    assert_eq!(
        f(r#"topk(5, rate({a="b"}[1m30s]))"#),
        r#"topk(5,rate({a="b"}[1m30s]))"#
    );
    assert_eq!(
        f(r#"sum(rate({a="b"}[5m])) + on (env) sum(rate({a="c"}[5m]))"#),
        r#"(sum(rate({a="b"}[5m])) + on (env)  sum(rate({a="c"}[5m])))"#
    );
    assert_eq!(
        f(r#"{a="b"} | json x="y", z | x >= 5 and y="a" | b > 1KB"#),
        r#"{a="b"} | json x="y",z="z" | ( x>=5 , y="a" ) | b>1.0kB"#
    );
    assert_eq!(f("vector(1)"), "vector(1.000000)");
    assert_eq!(f("1 + 2"), "3");
    assert_eq!(
        f(r#"quantile_over_time(0.99, {a="b"} | unwrap x [5m])"#),
        r#"quantile_over_time(0.99,{a="b"} | unwrap x[5m])"#
    );
    assert_eq!(
        f(r#"{a="b"} | logfmt --strict --keep-empty a | label_format x=y, z="{{.a}}""#),
        r#"{a="b"} | logfmt --strict --keep-empty a="a" | label_format x=y,z="{{.a}}""#
    );
}

/// Random token soups: the parser must never panic, and whatever parses must print back to
/// the same tree.
#[test]
fn no_panics_and_round_trips_on_token_soup() {
    let fragments = [
        "{",
        "}",
        "(",
        ")",
        "[5m]",
        "[",
        "]",
        ",",
        "a",
        "app",
        "=",
        "!=",
        "=~",
        "!~",
        "==",
        ">",
        ">=",
        "<",
        "<=",
        "|",
        "|=",
        "|~",
        "|>",
        "!>",
        "\"x\"",
        "\"(\"",
        "`y`",
        "\"<a> <b>\"",
        "5",
        "-",
        "+",
        "*",
        "/",
        "%",
        "^",
        "1.5",
        "250ms",
        "1KiB",
        "10KB",
        "or",
        "and",
        "unless",
        "by",
        "without",
        "bool",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "unwrap",
        "json",
        "logfmt",
        "--strict",
        "regexp",
        "pattern",
        "unpack",
        "line_format",
        "label_format",
        "drop",
        "keep",
        "decolorize",
        "ip(\"1.2.3.4\")",
        "ip",
        "rate",
        "count_over_time",
        "sum_over_time",
        "quantile_over_time",
        "sum",
        "topk",
        "vector",
        "label_replace",
        "bytes",
        "duration",
        "{app=\"x\"}",
        "{app=\"x\"} | json",
        "#c\n",
        "\n",
        "µs",
        "1e3",
        "0x1f",
        "é",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut parsed = 0;
    for _ in 0..30_000 {
        let n = 1 + (next() % 12) as usize;
        let mut q = String::new();
        for _ in 0..n {
            q.push_str(fragments[(next() % fragments.len() as u64) as usize]);
            if next() % 3 != 0 {
                q.push(' ');
            }
        }
        if let Ok(e) = parse(&q) {
            parsed += 1;
            let printed = e.to_string();
            if printed.contains("NaN") || printed.contains("Inf") {
                continue;
            }
            match parse(&printed) {
                Ok(e2) => assert!(same(&e, &e2), "{q}\n printed {printed}"),
                Err(err) => panic!("{q}\n printed {printed}\n {err}"),
            }
        }
    }
    eprintln!("token soup: {parsed} parsed");
    assert!(parsed > 0);
}
