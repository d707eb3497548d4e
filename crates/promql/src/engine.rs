//! Query entry points: parse, check the expression type, evaluate over the steps, and shape
//! the result as Prometheus returns it.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use vigil_promql_parser::ast::{AggregateOp, Expr, ValueType};

use crate::eval::{finish_names, Evaluator, Steps, Val};
use crate::{EngineOptions, Point, QueryError, Series, Storage, Value, VectorSample};

/// Warnings and infos attached to a result (Prometheus' annotations).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    pub annotations: Annotations,
}

/// Parses a query with the options' language features, mapping the parser's error to the
/// API's `bad_data`.
pub fn parse(query: &str, opts: &EngineOptions) -> Result<Expr, QueryError> {
    let features = vigil_promql_parser::ParseOptions {
        experimental_functions: opts.experimental_functions,
    };
    vigil_promql_parser::parse_with(query, features).map_err(|e| QueryError::Parse(e.to_string()))
}

fn evaluator<'a>(
    storage: &'a dyn Storage,
    opts: &'a EngineOptions,
    start: i64,
    end: i64,
    step: i64,
) -> Evaluator<'a> {
    Evaluator {
        storage,
        opts,
        query_start: start,
        query_end: end,
        query_step: step,
        deadline: Instant::now() + opts.timeout,
        samples: Cell::new(0),
        annotations: RefCell::new(Annotations::default()),
    }
}

/// An instant vector in the order Prometheus gives: as sorted by `sort*`, `topk` and
/// `bottomk` when the query ends in one of them, else by labels (storage order).
fn in_result_order(
    expr: &Expr,
    mut series: Vec<crate::eval::StepSeries>,
) -> Vec<crate::eval::StepSeries> {
    let mut e = expr;
    while let Expr::Paren(inner) = e {
        e = inner;
    }
    let ordered = match e {
        Expr::Call(c) => c.func.name.starts_with("sort"),
        Expr::Aggregate(a) => matches!(a.op, AggregateOp::TopK | AggregateOp::BottomK),
        _ => false,
    };
    if !ordered {
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
    }
    series
}

/// Evaluates `query` at `time_ms`.
pub fn instant_query(
    storage: &dyn Storage,
    query: &str,
    time_ms: i64,
    opts: &EngineOptions,
) -> Result<QueryResult, QueryError> {
    let expr = parse(query, opts)?;
    instant_expr(storage, &expr, time_ms, opts)
}

/// Evaluates a parsed expression at `time_ms`.
pub fn instant_expr(
    storage: &dyn Storage,
    expr: &Expr,
    time_ms: i64,
    opts: &EngineOptions,
) -> Result<QueryResult, QueryError> {
    let ev = evaluator(storage, opts, time_ms, time_ms, 0);
    let steps = Steps {
        start: time_ms,
        end: time_ms,
        interval: 1,
    };
    let value = match ev.eval(expr, steps)? {
        Val::Scalar(v) => Value::Scalar(Point {
            t: time_ms,
            v: v.first().copied().unwrap_or(f64::NAN),
        }),
        Val::String(s) => Value::String { t: time_ms, s },
        Val::Vector(series) => Value::Vector(
            in_result_order(expr, finish_names(series)?)
                .into_iter()
                .filter_map(|s| {
                    s.points.first().map(|p| VectorSample {
                        labels: s.labels,
                        t: time_ms,
                        v: p.v,
                    })
                })
                .collect(),
        ),
        Val::Matrix(series) => {
            let mut m: Vec<Series> = finish_names(series)?
                .into_iter()
                .map(|s| Series {
                    labels: s.labels,
                    points: s.points,
                })
                .collect();
            m.sort_by(|a, b| a.labels.cmp(&b.labels));
            Value::Matrix(m)
        }
    };
    Ok(QueryResult {
        value,
        annotations: ev.annotations.into_inner(),
    })
}

/// Evaluates `query` at every step from `start_ms` to `end_ms`; the result is a matrix sorted
/// by labels.
pub fn range_query(
    storage: &dyn Storage,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &EngineOptions,
) -> Result<QueryResult, QueryError> {
    let expr = parse(query, opts)?;
    range_expr(storage, &expr, start_ms, end_ms, step_ms, opts)
}

/// Fails unless `expr` can be a range query (an instant vector or a scalar), with Prometheus'
/// wording.
pub fn check_range_query_type(expr: &Expr) -> Result<(), QueryError> {
    match expr.value_type() {
        ValueType::Vector | ValueType::Scalar => Ok(()),
        other => Err(range_query_type_error(other)),
    }
}

fn range_query_type_error(value_type: ValueType) -> QueryError {
    QueryError::BadData(format!(
        "invalid expression type {:?} for range query, must be Scalar or instant Vector",
        value_type.doc_name()
    ))
}

/// Evaluates a parsed expression as a range query.
pub fn range_expr(
    storage: &dyn Storage,
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &EngineOptions,
) -> Result<QueryResult, QueryError> {
    check_range_query_type(expr)?;
    if step_ms <= 0 {
        return Err(QueryError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        ));
    }
    if end_ms < start_ms {
        return Err(QueryError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    let ev = evaluator(storage, opts, start_ms, end_ms, step_ms);
    let steps = Steps {
        start: start_ms,
        end: end_ms,
        interval: step_ms,
    };
    let mut matrix: Vec<Series> = match ev.eval(expr, steps)? {
        Val::Scalar(v) => vec![Series {
            labels: Default::default(),
            points: v
                .into_iter()
                .enumerate()
                .map(|(i, v)| Point {
                    t: steps.time(i),
                    v,
                })
                .collect(),
        }],
        Val::Vector(series) => finish_names(series)?
            .into_iter()
            .filter(|s| !s.points.is_empty())
            .map(|s| Series {
                labels: s.labels,
                points: s.points,
            })
            .collect(),
        _ => return Err(range_query_type_error(expr.value_type())),
    };
    matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(QueryResult {
        value: Value::Matrix(matrix),
        annotations: ev.annotations.into_inner(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vigil_model::{Label, Labels, Matcher};

    use super::*;
    use crate::{Point, StorageSeries};

    /// A few series in memory; `select` filters them like the real storages do.
    struct Series(Vec<StorageSeries>);

    impl Storage for Series {
        fn select(
            &self,
            matchers: &[Matcher],
            mint: i64,
            maxt: i64,
        ) -> Result<Vec<StorageSeries>, String> {
            Ok(self
                .0
                .iter()
                .filter(|s| {
                    matchers
                        .iter()
                        .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
                })
                .map(|s| StorageSeries {
                    labels: s.labels.clone(),
                    points: s
                        .points
                        .iter()
                        .copied()
                        .filter(|p| p.t >= mint && p.t <= maxt)
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect())
        }
    }

    fn storage(series: usize, samples: i64) -> Series {
        Series(
            (0..series)
                .map(|i| StorageSeries {
                    labels: Labels::from_unsorted(vec![
                        Label::new("__name__", "m"),
                        Label::new("i", i.to_string()),
                    ]),
                    points: (0..samples)
                        .map(|k| Point {
                            t: k * 15_000,
                            v: k as f64,
                        })
                        .collect(),
                })
                .collect(),
        )
    }

    #[test]
    fn fused_aggregations_equal_the_general_path() {
        // Enough series for the per-core path; counters with resets in some series.
        let s = Series(
            (0..5000)
                .map(|i| StorageSeries {
                    labels: Labels::from_unsorted(vec![
                        Label::new("__name__", "c_total"),
                        Label::new("g", (i % 7).to_string()),
                        Label::new("i", i.to_string()),
                    ]),
                    points: (0..60)
                        .map(|k| Point {
                            t: k * 15_000 + (i as i64 % 13) * 100,
                            v: if i % 11 == 0 && k > 30 {
                                (k - 30) as f64
                            } else {
                                (k * (i as i64 % 5 + 1)) as f64 + 0.25
                            },
                        })
                        .collect(),
                })
                .collect(),
        );
        let opts = EngineOptions::default();
        // Alone, and under arithmetic with a number (`* 1e305` makes avg's sums overflow into
        // an incremental mean).
        let arguments = [
            "RATE(c_total[2m])",
            "1 - RATE(c_total[2m])",
            "RATE(c_total[2m]) * 1e305",
            "RATE(c_total[2m]) * 1e304",
        ];
        for (agg, argument) in ["sum", "count", "min", "max", "group", "avg"]
            .into_iter()
            .flat_map(|agg| ["rate", "increase", "delta"].map(|f| (agg, f)))
            .flat_map(|(agg, f)| arguments.map(|arg| (agg, arg.replace("RATE", f))))
        {
            let fused = format!("{agg} by (g) ({argument})");
            // `(...) * 1` puts a binary expression over the argument: the general path.
            let general = format!("{agg} by (g) (({argument}) * 1)");
            let a = range_query(&s, &fused, 120_000, 840_000, 30_000, &opts).unwrap();
            let b = range_query(&s, &general, 120_000, 840_000, 30_000, &opts).unwrap();
            let (Value::Matrix(a), Value::Matrix(b)) = (a.value, b.value) else {
                panic!("matrices expected")
            };
            assert_eq!(a.len(), b.len(), "{fused}");
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.labels, y.labels, "{fused}");
                assert_eq!(x.points.len(), y.points.len(), "{fused}");
                for (p, q) in x.points.iter().zip(&y.points) {
                    assert_eq!(p.t, q.t, "{fused}");
                    let close = p.v == q.v
                        || (p.v.is_nan() && q.v.is_nan())
                        || (p.v - q.v).abs() <= 1e-9 * p.v.abs().max(q.v.abs()).max(1.0);
                    assert!(close, "{fused}: {} vs {} at {}", p.v, q.v, p.t);
                }
            }
        }
    }

    #[test]
    fn max_samples_is_an_execution_error() {
        let s = storage(10, 100);
        let opts = EngineOptions {
            max_samples: 50,
            ..EngineOptions::default()
        };
        // `sum(m)`, and `sum(rate(...))`, which the storage streams series by series.
        for query in ["sum(m)", "sum(rate(m[5m]))"] {
            let err = range_query(&s, query, 0, 1_485_000, 15_000, &opts).unwrap_err();
            assert_eq!(err.error_type(), "execution", "{query}");
            assert_eq!(
                err.to_string(),
                "query processing would load too many samples into memory in query execution",
                "{query}"
            );
        }
        // The same query fits the default limit.
        assert!(range_query(
            &s,
            "sum(m)",
            0,
            1_485_000,
            15_000,
            &EngineOptions::default()
        )
        .is_ok());
    }

    #[test]
    fn timeout_is_a_timeout_error() {
        let s = storage(10, 100);
        let opts = EngineOptions {
            timeout: Duration::ZERO,
            ..EngineOptions::default()
        };
        let err = instant_query(&s, "sum(rate(m[5m]))", 600_000, &opts).unwrap_err();
        assert_eq!(err.error_type(), "timeout");
        assert_eq!(err.to_string(), "query timed out in query execution");
    }

    #[test]
    fn range_results_are_sorted_and_scalars_become_one_series() {
        let s = storage(3, 10);
        let opts = EngineOptions::default();
        let r = range_query(&s, "m", 0, 60_000, 15_000, &opts).unwrap();
        let Value::Matrix(m) = r.value else {
            panic!("matrix expected")
        };
        let ids: Vec<&str> = m.iter().map(|s| s.labels.get("i").unwrap()).collect();
        assert_eq!(ids, ["0", "1", "2"]);
        let r = range_query(&s, "1 + 1", 0, 60_000, 15_000, &opts).unwrap();
        let Value::Matrix(m) = r.value else {
            panic!("matrix expected")
        };
        assert_eq!(m.len(), 1);
        assert!(m[0].labels.is_empty());
        assert_eq!(m[0].points.len(), 5);
        let err = range_query(&s, "m[5m]", 0, 60_000, 15_000, &opts).unwrap_err();
        assert_eq!(err.error_type(), "bad_data");
    }
}
