//! Comparison of a query result with an eval case's expectation, with the semantics of
//! Prometheus' promqltest (`compareResult`, `almost.Equal` with a relative tolerance of 1e-6).

use std::fmt::Write as _;

use vigil_model::Labels;
use vigil_promql::{Series, Value};

use crate::script::{EvalCase, ExpectedSeries, SeqValue, STALE_NAN_BITS};

/// Relative error allowed for sample values (`defaultEpsilon`).
pub const EPSILON: f64 = 0.000001;

pub use vigil_promql::kernels::histogram::almost_equal;

/// The time grid expected points sit on: `start + i*step`, up to `end` (none for a plain
/// instant query, where a range-vector result cannot match).
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub start: i64,
    pub end: Option<i64>,
    pub step: i64,
}

pub fn fmt_f64(v: f64) -> String {
    if v.to_bits() == STALE_NAN_BITS {
        "stale".into()
    } else if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

pub fn fmt_seq(values: &[SeqValue]) -> String {
    values
        .iter()
        .map(|v| match v {
            SeqValue::Omitted => "_".to_string(),
            SeqValue::Float(f) => fmt_f64(*f),
            SeqValue::Histogram => "{{histogram}}".to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn fmt_series(s: &Series) -> String {
    let pts: Vec<String> = s
        .points
        .iter()
        .map(|p| format!("{}@{}", fmt_f64(p.v), p.t))
        .collect();
    format!("{} float point(s) [{}]", s.points.len(), pts.join(" "))
}

/// A result in a readable form, at most `max_series` series.
pub fn fmt_value(value: &Value, max_series: usize) -> String {
    let mut out = String::new();
    match value {
        Value::Scalar(p) => {
            let _ = write!(out, "scalar {} @{}", fmt_f64(p.v), p.t);
        }
        Value::String { t, s } => {
            let _ = write!(out, "string {s:?} @{t}");
        }
        Value::Vector(v) => {
            let _ = write!(out, "vector of {}:", v.len());
            for s in v.iter().take(max_series) {
                let _ = write!(out, "\n        {} => {} @{}", s.labels, fmt_f64(s.v), s.t);
            }
            if v.len() > max_series {
                let _ = write!(out, "\n        ...");
            }
        }
        Value::Matrix(m) => {
            let _ = write!(out, "matrix of {}:", m.len());
            for s in m.iter().take(max_series) {
                let _ = write!(out, "\n        {} => {}", s.labels, fmt_series(s));
            }
            if m.len() > max_series {
                let _ = write!(out, "\n        ...");
            }
        }
    }
    out
}

pub fn fmt_expected(case: &EvalCase) -> String {
    if let Some(s) = &case.expected_string {
        return format!("string {s:?}");
    }
    if case.expect_scalar {
        return format!("scalar {}", fmt_f64(case.scalar.unwrap_or_default()));
    }
    let mut out = format!("{} series:", case.expected.len());
    for e in &case.expected {
        let _ = write!(out, "\n        {} => {}", e.labels, fmt_seq(&e.values));
    }
    out
}

fn find<'a>(case: &'a EvalCase, labels: &Labels) -> Option<&'a ExpectedSeries> {
    case.expected.iter().find(|e| &e.labels == labels)
}

/// Matrix results must be sorted by label set.
pub fn assert_matrix_sorted(m: &[Series]) -> Result<(), String> {
    for (i, w) in m.windows(2).enumerate() {
        if w[0].labels > w[1].labels {
            return Err(format!(
                "matrix results should always be sorted by labels, but series at index {} ({}) \
                 sorts before series at index {} ({})",
                i + 1,
                w[1].labels,
                i,
                w[0].labels
            ));
        }
    }
    Ok(())
}

/// Compares `value` with the case's expectation (`compareResult`).
pub fn compare(case: &EvalCase, grid: Grid, value: &Value) -> Result<(), String> {
    match value {
        Value::Matrix(m) => {
            if case.is_ordered() {
                return Err("expected ordered result, but query returned a matrix".into());
            }
            if case.expect_scalar {
                return Err(format!(
                    "expected scalar result, but got {}",
                    fmt_value(value, 10)
                ));
            }
            assert_matrix_sorted(m)?;
            for s in m {
                let Some(exp) = find(case, &s.labels) else {
                    return Err(format!(
                        "unexpected metric {} in result, has {}",
                        s.labels,
                        fmt_series(s)
                    ));
                };
                let mut expected = Vec::new();
                for (i, v) in exp.values.iter().enumerate() {
                    let ts = grid.start + i as i64 * grid.step;
                    if grid.end.is_none_or(|end| ts > end) {
                        return Err(format!(
                            "expected {} points for {}, but query time range cannot return this \
                             many points",
                            exp.values.len(),
                            exp.labels
                        ));
                    }
                    match v {
                        SeqValue::Float(f) => expected.push((ts, *f)),
                        SeqValue::Omitted => {}
                        SeqValue::Histogram => {
                            return Err("native histogram expectations are not supported".into())
                        }
                    }
                }
                if expected.len() != s.points.len() {
                    return Err(format!(
                        "expected {} float points for {}, but got {}",
                        expected.len(),
                        exp.labels,
                        fmt_series(s)
                    ));
                }
                for (i, ((t, v), p)) in expected.iter().zip(&s.points).enumerate() {
                    if *t != p.t {
                        return Err(format!(
                            "expected float value at index {i} for {} to have timestamp {t}, but \
                             it had timestamp {} (result has {})",
                            exp.labels,
                            p.t,
                            fmt_series(s)
                        ));
                    }
                    if !almost_equal(p.v, *v, EPSILON) {
                        return Err(format!(
                            "expected float value at index {i} (t={t}) for {} to be {}, but got \
                             {} (result has {})",
                            exp.labels,
                            fmt_f64(*v),
                            fmt_f64(p.v),
                            fmt_series(s)
                        ));
                    }
                }
            }
            for e in &case.expected {
                if !m.iter().any(|s| s.labels == e.labels) {
                    return Err(format!("expected metric {} not found", e.labels));
                }
            }
        }
        Value::Vector(vec) => {
            if case.expect_scalar {
                return Err(format!(
                    "expected scalar result, but got {}",
                    fmt_value(value, 10)
                ));
            }
            for (pos, s) in vec.iter().enumerate() {
                let Some(exp) = find(case, &s.labels) else {
                    return Err(format!(
                        "unexpected metric {} in result, has value {}",
                        s.labels,
                        fmt_f64(s.v)
                    ));
                };
                if case.is_ordered() && exp.pos != pos + 1 {
                    return Err(format!(
                        "expected metric {} with [{}] at position {} but was at {}",
                        s.labels,
                        fmt_seq(&exp.values),
                        exp.pos,
                        pos + 1
                    ));
                }
                let want = match exp.values.first() {
                    Some(SeqValue::Float(f)) => *f,
                    Some(SeqValue::Omitted) => 0.0,
                    Some(SeqValue::Histogram) => {
                        return Err(format!(
                            "expected a histogram for {} but got float value {}",
                            s.labels,
                            fmt_f64(s.v)
                        ))
                    }
                    None => return Err(format!("expected series {} has no value", exp.labels)),
                };
                if !almost_equal(want, s.v, EPSILON) {
                    return Err(format!(
                        "expected {} for {} but got {}",
                        fmt_f64(want),
                        s.labels,
                        fmt_f64(s.v)
                    ));
                }
            }
            for e in &case.expected {
                if !vec.iter().any(|s| s.labels == e.labels) {
                    return Err(format!(
                        "expected metric {} with [{}] not found",
                        e.labels,
                        fmt_seq(&e.values)
                    ));
                }
            }
        }
        Value::Scalar(p) => {
            if !case.expect_scalar {
                return Err(format!(
                    "expected vector or matrix result, but got scalar {}",
                    fmt_f64(p.v)
                ));
            }
            let want = case.scalar.unwrap_or_default();
            if !almost_equal(want, p.v, EPSILON) {
                return Err(format!(
                    "expected scalar {} but got {}",
                    fmt_f64(want),
                    fmt_f64(p.v)
                ));
            }
        }
        Value::String { s, .. } => {
            let want = case.expected_string.as_deref().unwrap_or_default();
            if want != s {
                return Err(format!("expected string {want:?} but got {s:?}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{parse, Command};
    use vigil_model::Label;
    use vigil_promql::{Point, VectorSample};

    fn case(src: &str) -> EvalCase {
        let (cmds, errors) = parse(src);
        assert!(errors.is_empty(), "{errors:?}");
        match cmds.into_iter().last() {
            Some(Command::Eval(c)) => *c,
            other => panic!("no eval case: {other:?}"),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_unsorted(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect())
    }

    fn sample(pairs: &[(&str, &str)], v: f64) -> VectorSample {
        VectorSample {
            labels: labels(pairs),
            t: 60_000,
            v,
        }
    }

    const INSTANT: Grid = Grid {
        start: 60_000,
        end: None,
        step: 0,
    };

    #[test]
    fn vectors_compare_unordered_unless_ordered_is_expected() {
        let src = "eval instant at 1m foo\n  foo{a=\"1\"} 1\n  foo{a=\"2\"} 2\n";
        let got = Value::Vector(vec![
            sample(&[("__name__", "foo"), ("a", "2")], 2.0 + 1e-9),
            sample(&[("__name__", "foo"), ("a", "1")], 1.0),
        ]);
        assert_eq!(compare(&case(src), INSTANT, &got), Ok(()));
        let ordered = src.replace("foo\n", "foo\n  expect ordered\n");
        assert!(compare(&case(&ordered), INSTANT, &got).is_err());
        let missing = Value::Vector(vec![sample(&[("__name__", "foo"), ("a", "1")], 1.0)]);
        assert!(compare(&case(src), INSTANT, &missing).is_err());
        let wrong = Value::Vector(vec![
            sample(&[("__name__", "foo"), ("a", "1")], 1.0),
            sample(&[("__name__", "foo"), ("a", "2")], 2.1),
        ]);
        assert!(compare(&case(src), INSTANT, &wrong).is_err());
    }

    #[test]
    fn matrices_compare_points_on_the_step_grid() {
        let c = case("eval range from 0 to 2m step 1m foo\n  foo 1 _ NaN\n");
        let grid = Grid {
            start: 0,
            end: Some(120_000),
            step: 60_000,
        };
        let series = |points: Vec<(i64, f64)>| {
            Value::Matrix(vec![Series {
                labels: labels(&[("__name__", "foo")]),
                points: points.into_iter().map(|(t, v)| Point { t, v }).collect(),
            }])
        };
        assert_eq!(
            compare(&c, grid, &series(vec![(0, 1.0), (120_000, f64::NAN)])),
            Ok(())
        );
        assert!(compare(&c, grid, &series(vec![(0, 1.0), (60_000, f64::NAN)])).is_err());
        assert!(compare(&c, grid, &series(vec![(0, 1.0)])).is_err());
        assert!(compare(&c, INSTANT, &series(vec![(0, 1.0), (120_000, f64::NAN)])).is_err());
    }

    #[test]
    fn scalars_strings_and_empty_results() {
        let c = case("eval instant at 0 1+1\n  2\n");
        assert_eq!(
            compare(&c, INSTANT, &Value::Scalar(Point { t: 0, v: 2.0 })),
            Ok(())
        );
        assert!(compare(&c, INSTANT, &Value::Vector(vec![])).is_err());
        let empty = case("eval instant at 0 foo\n");
        assert_eq!(compare(&empty, INSTANT, &Value::Vector(vec![])), Ok(()));
        assert!(compare(&empty, INSTANT, &Value::Scalar(Point { t: 0, v: 2.0 })).is_err());
        let s = case("eval instant at 0 \"a\"\n  expect string \"a\"\n");
        let got = Value::String {
            t: 0,
            s: "a".into(),
        };
        assert_eq!(compare(&s, INSTANT, &got), Ok(()));
        assert!(s.exclude_from_range_query);
    }

    #[test]
    fn almost_equal_matches_prometheus() {
        assert!(almost_equal(f64::NAN, f64::NAN, EPSILON));
        assert!(almost_equal(1.0, 1.0 + 1e-9, EPSILON));
        assert!(!almost_equal(1.0, 1.0001, EPSILON));
        assert!(!almost_equal(0.0, 1e-300, EPSILON));
        assert!(almost_equal(f64::INFINITY, f64::INFINITY, EPSILON));
        assert!(!almost_equal(f64::INFINITY, f64::NEG_INFINITY, EPSILON));
    }
}
