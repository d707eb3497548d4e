//! Parses Prometheus' own test scripts and the public query corpus, and checks that printing
//! and re-parsing gives the same tree.

use std::path::PathBuf;

use vigil_promql_parser::ast::{Expr, VectorSelector};
use vigil_promql_parser::{parse, prettify};

/// Sorts every selector's matchers: printing orders them, so a round trip keeps the set only.
fn normalize(e: &Expr) -> Expr {
    fn sel(vs: &VectorSelector) -> VectorSelector {
        let mut vs = vs.clone();
        vs.matchers
            .sort_by(|a, b| (&a.name, &a.value, a.op as u8).cmp(&(&b.name, &b.value, b.op as u8)));
        vs
    }
    let mut e = e.clone();
    match &mut e {
        Expr::VectorSelector(vs) => *vs = sel(vs),
        Expr::MatrixSelector(m) => m.selector = sel(&m.selector),
        Expr::Subquery(s) => *s.expr = normalize(&s.expr),
        Expr::Paren(p) => **p = normalize(p),
        Expr::Unary(u) => *u.expr = normalize(&u.expr),
        Expr::Binary(b) => {
            *b.lhs = normalize(&b.lhs);
            *b.rhs = normalize(&b.rhs);
        }
        Expr::Aggregate(a) => {
            *a.expr = normalize(&a.expr);
            if let Some(p) = &mut a.param {
                **p = normalize(p);
            }
        }
        Expr::Call(c) => c.args = c.args.iter().map(normalize).collect(),
        // NaN != NaN: compare it as a marker.
        Expr::NumberLiteral(v) if v.is_nan() => e = Expr::StringLiteral("<NaN>".into()),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
    }
    e
}

fn shared(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/promql")
        .join(rel)
}

/// Files whose features Vigil does not parse (native-histogram literals, experimental syntax).
const SKIPPED_FILES: &[&str] = &["native_histograms.test"];

/// Files testing experimental syntax: their failures are listed, not asserted.
const EXPERIMENTAL_FILES: &[&str] = &[
    "extended_vectors.test",
    "fill-modifier.test",
    "duration_expression.test",
];

/// Experimental syntax Vigil rejects, as Prometheus does without feature flags.
const EXPERIMENTAL_ERRORS: &[&str] = &[
    "experimental and not enabled",
    "experimental duration expression is not enabled",
    "is not enabled",
];

fn round_trip(q: &str) {
    let e = parse(q).unwrap();
    let printed = e.to_string();
    let again = parse(&printed).unwrap_or_else(|err| panic!("{q} printed as {printed}: {err}"));
    assert_eq!(
        normalize(&e),
        normalize(&again),
        "round trip of {q} via {printed}"
    );
    assert_eq!(again.to_string(), printed, "printing is stable for {q}");
    let pretty = prettify(&e);
    let again = parse(&pretty).unwrap_or_else(|err| panic!("{q} prettified as {pretty}: {err}"));
    assert_eq!(
        normalize(&e),
        normalize(&again),
        "pretty round trip of {q} via {pretty}"
    );
}

/// The queries of `eval` lines whose block does not expect failure.
fn eval_queries(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let query = if let Some(rest) = line.strip_prefix("eval instant at ") {
            rest.split_once(' ').map(|(_, q)| q)
        } else if let Some(rest) = line.strip_prefix("eval range from ") {
            // <start> to <end> step <step> <query>
            let mut parts = rest.splitn(6, ' ');
            let _ = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            );
            parts.next()
        } else {
            None
        };
        let Some(query) = query else { continue };
        let expects_fail = lines[i + 1..]
            .iter()
            .take_while(|l| l.starts_with(' ') || l.starts_with('\t') || l.starts_with("expect"))
            .any(|l| l.trim_start().starts_with("expect fail"));
        if !expects_fail {
            out.push((i + 1, query.trim().to_string()));
        }
    }
    out
}

#[test]
fn promqltest_scripts_parse() {
    let dir = shared("promqltest");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("skipped: {} is absent", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let (mut parsed, mut skipped, mut failures) = (0, Vec::new(), Vec::new());
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if SKIPPED_FILES.contains(&name.as_str()) {
            println!("skipped file {name} (native-histogram syntax)");
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, q) in eval_queries(&text) {
            match parse(&q) {
                Ok(_) => {
                    round_trip(&q);
                    parsed += 1;
                }
                Err(e)
                    if EXPERIMENTAL_FILES.contains(&name.as_str())
                        || EXPERIMENTAL_ERRORS.iter().any(|m| e.message.contains(m)) =>
                {
                    skipped.push(format!("{name}:{line}: {q}  [{e}]"))
                }
                Err(e) => failures.push(format!("{name}:{line}: {q}  [{e}]")),
            }
        }
    }
    println!(
        "parsed {parsed} queries; skipped {} using experimental syntax:",
        skipped.len()
    );
    for s in &skipped {
        println!("  {s}");
    }
    assert!(failures.is_empty(), "failed:\n{}", failures.join("\n"));
}

#[test]
fn public_corpus_parses() {
    let path = shared("corpus-public.txt");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipped: {} is absent", path.display());
        return;
    };
    let (mut ok, mut failed) = (0, Vec::new());
    for line in text.lines() {
        let q = line.trim();
        if q.is_empty() || q.starts_with('#') {
            continue;
        }
        match parse(q) {
            Ok(_) => {
                round_trip(q);
                ok += 1;
            }
            Err(e) => failed.push(format!("{q}  =>  {e}")),
        }
    }
    println!("corpus: {ok} parsed, {} rejected:", failed.len());
    for f in &failed {
        println!("  {f}");
    }
    assert!(ok > 400);
}
