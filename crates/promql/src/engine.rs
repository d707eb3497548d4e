//! Query entry points; evaluation lives in the `eval` module.

use crate::{EngineOptions, QueryError, Storage, Value};

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

/// Evaluates `query` at `time_ms`.
pub fn instant_query(
    storage: &dyn Storage,
    query: &str,
    time_ms: i64,
    opts: &EngineOptions,
) -> Result<QueryResult, QueryError> {
    let _ = (storage, query, time_ms, opts);
    Err(QueryError::Execution("evaluator not built yet".into()))
}

/// Evaluates `query` at every step from `start_ms` to `end_ms`; the result is a matrix
/// (or a scalar/string error as Prometheus gives).
pub fn range_query(
    storage: &dyn Storage,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &EngineOptions,
) -> Result<QueryResult, QueryError> {
    let _ = (storage, query, start_ms, end_ms, step_ms, opts);
    Err(QueryError::Execution("evaluator not built yet".into()))
}
