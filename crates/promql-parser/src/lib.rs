//! PromQL as text: the lexer, the parser (Prometheus 3.x grammar and its parse errors), the type
//! checker, the function signatures, and the printer that `/api/v1/format_query` uses.
//!
//! - [`parse`] turns a query into an [`ast::Expr`] or a [`ParseError`] whose `Display` is
//!   Prometheus' (`1:5: parse error: unexpected <op:+>`).
//! - `Display for Expr` prints Prometheus' canonical form; [`prettify`] its multi-line form.
//! - [`parse_duration`] / [`format_duration`] handle Prometheus durations (`1h30m`), and
//!   [`parse_api_duration`] the HTTP API's float-seconds-or-duration parameters.
//! - [`functions::lookup`] gives a function's signature.

pub mod ast;
pub mod functions;
mod lexer;
mod parser;
mod printer;

pub use parser::{parse, parse_api_duration, parse_duration, DurationError, ParseError};
pub use printer::{format_duration, prettify};
