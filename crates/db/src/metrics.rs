//! Vigil's own metrics, exported at `/metrics` in the Prometheus text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub tenant: String,
    pub reason: String,
}

/// Every metric the storage exports.
pub struct Metrics {
    pub registry: Registry,
    pub samples_ingested: Family<TenantLabel, Counter>,
    pub samples_rejected: Family<RejectLabels, Counter>,
    pub requests_rejected: Family<RejectLabels, Counter>,
    pub wal_fsync_seconds: Histogram,
    pub head_series: Family<TenantLabel, Gauge>,
    pub head_memory_bytes: Family<TenantLabel, Gauge>,
    pub blocks_cut: Family<TenantLabel, Counter>,
    pub blocks_uploaded: Family<TenantLabel, Counter>,
    pub block_upload_failures: Counter,
    pub blocks_pending_upload: Gauge,
    pub wal_truncations: Counter,
    pub log_entries_ingested: Family<TenantLabel, Counter>,
    pub log_bytes_ingested: Family<TenantLabel, Counter>,
    pub log_entries_rejected: Family<RejectLabels, Counter>,
    pub log_head_streams: Family<TenantLabel, Gauge>,
    pub log_head_memory_bytes: Family<TenantLabel, Gauge>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vigil");
        let m = Self {
            samples_ingested: Family::default(),
            samples_rejected: Family::default(),
            requests_rejected: Family::default(),
            wal_fsync_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            head_series: Family::default(),
            head_memory_bytes: Family::default(),
            blocks_cut: Family::default(),
            blocks_uploaded: Family::default(),
            block_upload_failures: Counter::default(),
            blocks_pending_upload: Gauge::default(),
            wal_truncations: Counter::default(),
            log_entries_ingested: Family::default(),
            log_bytes_ingested: Family::default(),
            log_entries_rejected: Family::default(),
            log_head_streams: Family::default(),
            log_head_memory_bytes: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "samples_ingested",
            "Samples accepted and durable, by tenant",
            m.samples_ingested.clone(),
        );
        registry.register(
            "samples_rejected",
            "Samples rejected, by tenant and reason",
            m.samples_rejected.clone(),
        );
        registry.register(
            "write_requests_rejected",
            "Whole write requests rejected, by tenant and reason",
            m.requests_rejected.clone(),
        );
        registry.register(
            "wal_fsync_duration_seconds",
            "Latency of WAL fsyncs (one per group commit)",
            m.wal_fsync_seconds.clone(),
        );
        registry.register(
            "head_series",
            "Series in the in-memory head",
            m.head_series.clone(),
        );
        registry.register(
            "head_memory_bytes",
            "Approximate bytes held by the head (labels, index, compressed samples)",
            m.head_memory_bytes.clone(),
        );
        registry.register(
            "blocks_cut",
            "Blocks cut from the head",
            m.blocks_cut.clone(),
        );
        registry.register(
            "blocks_uploaded",
            "Blocks confirmed by the object store",
            m.blocks_uploaded.clone(),
        );
        registry.register(
            "block_upload_failures",
            "Failed block file upload attempts (each is retried)",
            m.block_upload_failures.clone(),
        );
        registry.register(
            "blocks_pending_upload",
            "Blocks on local disk waiting for upload",
            m.blocks_pending_upload.clone(),
        );
        registry.register(
            "wal_truncations",
            "WAL checkpoints that removed segments",
            m.wal_truncations.clone(),
        );
        registry.register(
            "log_entries_ingested",
            "Log entries accepted and durable, by tenant",
            m.log_entries_ingested.clone(),
        );
        registry.register(
            "log_bytes_ingested",
            "Bytes of log lines accepted and durable, by tenant",
            m.log_bytes_ingested.clone(),
        );
        registry.register(
            "log_entries_rejected",
            "Log entries rejected, by tenant and reason (Loki's discard reasons)",
            m.log_entries_rejected.clone(),
        );
        registry.register(
            "log_head_streams",
            "Log streams in the in-memory head",
            m.log_head_streams.clone(),
        );
        registry.register(
            "log_head_memory_bytes",
            "Approximate bytes held by the log head (labels, index, compressed entries)",
            m.log_head_memory_bytes.clone(),
        );
        Self { registry, ..m }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
