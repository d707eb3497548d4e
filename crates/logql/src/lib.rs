//! LogQL with Loki 3.x semantics: the parser ([`parser`]), the log pipeline that filters,
//! parses and reformats lines ([`pipeline`], [`extract`], [`template`]), and the evaluation of
//! log and metric queries over any [`LogSource`] (the database's head and blocks in the server).

pub mod ast;
pub mod eval;
pub mod extract;
pub mod format;
pub mod labels;
pub mod parser;
pub mod pipeline;
pub mod template;
pub mod units;

pub use eval::{
    eval_log_query, eval_metric_query, EvalError, Limits, LogSource, MetricValue, ResultEntry,
    SourceStream, StepSeries, Steps, StreamResult,
};
pub use labels::PackedLabels;
