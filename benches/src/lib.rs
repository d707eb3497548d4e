//! Load generators and benchmark helpers for Vigil.
//!
//! - [`remote_write`]: a deterministic, node-exporter-like data set and a hand-rolled
//!   Prometheus remote-write 1.0 encoder, used by the `remote-write-load` binary and by
//!   `benches/run_remote_write.sh`.

pub mod logs;
pub mod remote_write;
