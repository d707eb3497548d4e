//! PromQL as text: the lexer, the parser (Prometheus 3.x grammar and its parse errors), the type
//! checker, the function signatures, and the printer that `/api/v1/format_query` uses.
//!
//! - [`parse`] turns a query into an [`ast::Expr`] or a [`ParseError`] whose `Display` is
//!   Prometheus' (`1:5: parse error: unexpected <op:+>`).
//! - `Display for Expr` prints Prometheus' canonical form; [`prettify`] its multi-line form.
//! - [`parse_duration`] / [`format_duration`] handle Prometheus durations (`1h30m`), and
//!   [`parse_api_duration`] the HTTP API's float-seconds-or-duration parameters.
//! - [`functions::lookup`] gives a function's signature.
//!
//! Not supported (rejected with Prometheus' "not enabled" errors, as Prometheus does without
//! feature flags): duration arithmetic, `anchored`/`smoothed`, binop `fill` modifiers, and the
//! experimental functions `step()`, `range()`, `start()`, `end()`, `min_of`, `max_of`,
//! `start_timestamp`, `histogram_quantiles`, `integral`. Native-histogram literals are not
//! part of the query language. Nesting deeper than [`MAX_NESTING_DEPTH`] is an error.

pub mod ast;
pub mod functions;
mod lexer;
mod parser;
mod printer;

pub use parser::{
    parse, parse_api_duration, parse_duration, parse_with, DurationError, ParseError, ParseOptions,
    MAX_NESTING_DEPTH,
};
pub use printer::{format_duration, format_number, prettify};
