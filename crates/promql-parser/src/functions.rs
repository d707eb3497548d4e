//! Signatures of PromQL's functions, for type checking and for the evaluator's dispatch.

use crate::ast::ValueType;

/// A function's signature. `variadic`: 0 = exactly `arg_types`; n > 0 = up to n more of the
/// last type; -1 = any number more of the last type. Optional trailing arguments are expressed
/// as a variadic count over the last listed type, as Prometheus does.
#[derive(Debug, PartialEq)]
pub struct Function {
    pub name: &'static str,
    pub arg_types: &'static [ValueType],
    pub variadic: i32,
    pub return_type: ValueType,
}

// The table (every function of Prometheus 3.x plus `holt_winters` as the 2.x name of
// `double_exponential_smoothing`) and `pub fn lookup(name: &str) -> Option<&'static Function>`
// are filled in by the parser work.
