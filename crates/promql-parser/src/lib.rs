//! PromQL as text: the lexer, the parser (Prometheus 3.x grammar and its parse errors), the type
//! checker, the function signatures, and the printer that `/api/v1/format_query` uses.

pub mod ast;
pub mod functions;
