//! The durable write path: resolve series, check samples against the head, log series and
//! samples to the WAL, wait for the group commit, then make them visible in the head.

use std::sync::atomic::Ordering;

use vigil_head::{AppendCheck, AppendError};
use vigil_ingest::{Discard, DiscardReason, WriteBatch};
use vigil_model::{Sample, TenantId};
use vigil_wal::record;

use crate::metrics::{RejectLabels, TenantLabel};
use crate::{Db, DbError};

/// What happened to a write request.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    /// Samples accepted (new, or exact duplicates of stored ones), all durable.
    pub accepted: usize,
    /// Samples set aside, with reasons, including those from validation.
    pub discards: Vec<Discard>,
}

impl WriteOutcome {
    pub fn hit_series_limit(&self) -> bool {
        self.discards
            .iter()
            .any(|d| d.reason == DiscardReason::SeriesLimit)
    }
}

impl Db {
    /// Writes a validated batch; returns only after every accepted sample is durable.
    pub async fn write(
        &self,
        tenant: &TenantId,
        batch: WriteBatch,
    ) -> Result<WriteOutcome, DbError> {
        let _shared = self.ingest_barrier.read().await;
        if self.closed.load(Ordering::Acquire) {
            return Err(DbError::ShuttingDown);
        }
        let head = self.head(tenant);
        let mut outcome = WriteOutcome {
            accepted: 0,
            discards: batch.discards,
        };
        let wanted: Vec<&vigil_model::Labels> = batch.series.iter().map(|s| &s.labels).collect();
        let wal = &self.wal;
        let resolved =
            head.get_or_create(&wanted, self.config.max_series_per_tenant, |created| {
                let mut buf = Vec::new();
                record::encode_series(&mut buf, tenant.as_str(), created);
                wal.append(&[&buf]).map(|_| ())
            })?;

        let mut to_log: Vec<(u32, Sample)> = Vec::new();
        let mut to_apply = Vec::new();
        for (series_write, series) in batch.series.iter().zip(resolved) {
            let Some(series) = series else {
                outcome.discards.push(Discard {
                    reason: DiscardReason::SeriesLimit,
                    samples: series_write.samples.len(),
                    series: series_write.labels.to_string(),
                    timestamp_ms: None,
                });
                continue;
            };
            let mut rejected: Option<(AppendError, usize, i64)> = None;
            for sample in &series_write.samples {
                match series.check(sample, self.config.out_of_order_window.as_millis() as i64) {
                    Ok(AppendCheck::New) => {
                        to_log.push((series.id, *sample));
                        outcome.accepted += 1;
                    }
                    Ok(AppendCheck::AlreadyStored) => outcome.accepted += 1,
                    Err(e) => {
                        let entry = rejected.get_or_insert((e, 0, sample.timestamp_ms));
                        entry.1 += 1;
                    }
                }
            }
            if let Some((error, count, ts)) = rejected {
                outcome.discards.push(Discard {
                    reason: match error {
                        AppendError::OutOfOrder => DiscardReason::OutOfOrder,
                        AppendError::DuplicateTimestamp => DiscardReason::DuplicateTimestamp,
                    },
                    samples: count,
                    series: series_write.labels.to_string(),
                    timestamp_ms: Some(ts),
                });
            }
            to_apply.push(series);
        }

        let mut payloads: Vec<Vec<u8>> = Vec::new();
        if !to_log.is_empty() {
            let mut buf = Vec::with_capacity(to_log.len() * 12 + 16);
            record::encode_samples(&mut buf, tenant.as_str(), &to_log);
            payloads.push(buf);
        }
        if !batch.metadata.is_empty() {
            let mut buf = Vec::new();
            record::encode_metadata(&mut buf, tenant.as_str(), &batch.metadata);
            payloads.push(buf);
        }
        if !payloads.is_empty() {
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            self.wal.write(&refs).await?;
        }

        // Durable: make visible.
        let mut series_iter = to_apply.iter().peekable();
        for (id, sample) in &to_log {
            while series_iter.peek().is_some_and(|s| s.id != *id) {
                series_iter.next();
            }
            match series_iter.peek() {
                Some(series) => head.append(series, *sample),
                None => {
                    if let Some(series) = head.get_by_id(*id) {
                        head.append(&series, *sample);
                    }
                }
            }
        }
        if !batch.metadata.is_empty() {
            head.set_metadata(batch.metadata);
        }

        let tenant_name = tenant.as_str().to_string();
        self.metrics
            .samples_ingested
            .get_or_create(&TenantLabel {
                tenant: tenant_name.clone(),
            })
            .inc_by(outcome.accepted as u64);
        for d in &outcome.discards {
            self.metrics
                .samples_rejected
                .get_or_create(&RejectLabels {
                    tenant: tenant_name.clone(),
                    reason: d.reason.as_label().to_string(),
                })
                .inc_by(d.samples as u64);
        }
        Ok(outcome)
    }
}
