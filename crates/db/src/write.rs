//! The durable write path: resolve series, check samples against the head, log series and
//! samples to the WAL, wait for the group commit, then make them visible in the head.
//!
//! Split in three so the CPU part can run off the reactor while the caller holds the barrier:
//! [`Db::begin_write`] (async, takes the barrier), [`Db::prepare_write`] (sync: lookups,
//! checks, encoding) and [`Db::commit_write`] (async: group commit, then apply).

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use vigil_head::{AppendCheck, AppendError, Head, MemSeries};
use vigil_ingest::{Discard, DiscardReason, WriteBatch};
use vigil_model::{MetricMetadata, Sample, TenantId};
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

/// Held from before the WAL append until the head has the samples.
pub struct WriteGuard<'a> {
    _shared: tokio::sync::RwLockReadGuard<'a, ()>,
}

/// A checked write, ready for the WAL.
pub struct PreparedWrite {
    tenant: TenantId,
    head: Arc<Head>,
    /// New samples per series: a range of `samples`.
    applies: Vec<(Arc<MemSeries>, Range<usize>)>,
    samples: Vec<Sample>,
    metadata: Vec<(String, MetricMetadata)>,
    wal_payloads: Vec<Vec<u8>>,
    outcome: WriteOutcome,
}

impl Db {
    /// Enters the write barrier; fails once shutdown has begun.
    pub async fn begin_write(&self) -> Result<WriteGuard<'_>, DbError> {
        let shared = self.ingest_barrier.read().await;
        if self.closed.load(Ordering::Acquire) {
            return Err(DbError::ShuttingDown);
        }
        Ok(WriteGuard { _shared: shared })
    }

    /// Resolves series (logging new ones), checks each sample against the head and encodes the
    /// WAL records. CPU only; call it off the reactor for large batches.
    pub fn prepare_write(
        &self,
        _guard: &WriteGuard<'_>,
        tenant: &TenantId,
        batch: WriteBatch<'_>,
    ) -> Result<PreparedWrite, DbError> {
        let head = self.head(tenant);
        let mut outcome = WriteOutcome {
            accepted: 0,
            discards: batch.discards,
        };
        let wanted: Vec<(u64, &[(&str, &str)])> = batch
            .series
            .iter()
            .map(|s| (s.hash, &batch.labels[s.labels.clone()]))
            .collect();
        let wal = &self.wal;
        let resolved =
            head.get_or_create(&wanted, self.config.max_series_per_tenant, |created| {
                let mut buf = Vec::new();
                record::encode_series(&mut buf, tenant.as_str(), created);
                wal.append(&[&buf]).map(|_| ())
            })?;

        let ooo_window_ms = self.config.out_of_order_window.as_millis() as i64;
        let mut applies = Vec::with_capacity(batch.series.len());
        let mut samples = Vec::with_capacity(batch.samples.len());
        let mut wal_samples: Vec<(u32, Sample)> = Vec::with_capacity(batch.samples.len());
        for (series_write, series) in batch.series.iter().zip(resolved) {
            let input = &batch.samples[series_write.samples.clone()];
            let Some(series) = series else {
                outcome.discards.push(Discard {
                    reason: DiscardReason::SeriesLimit,
                    samples: input.len(),
                    series: vigil_ingest::show_pairs(&batch.labels[series_write.labels.clone()]),
                    timestamp_ms: None,
                });
                continue;
            };
            let start = samples.len();
            let mut rejected: Option<(AppendError, usize, i64)> = None;
            for sample in input {
                match series.check(sample, ooo_window_ms) {
                    Ok(AppendCheck::New) => {
                        samples.push(*sample);
                        wal_samples.push((series.id, *sample));
                        outcome.accepted += 1;
                    }
                    Ok(AppendCheck::AlreadyStored) => outcome.accepted += 1,
                    Err(e) => rejected.get_or_insert((e, 0, sample.timestamp_ms)).1 += 1,
                }
            }
            if let Some((error, count, ts)) = rejected {
                outcome.discards.push(Discard {
                    reason: match error {
                        AppendError::OutOfOrder => DiscardReason::OutOfOrder,
                        AppendError::DuplicateTimestamp => DiscardReason::DuplicateTimestamp,
                    },
                    samples: count,
                    series: series.labels.to_string(),
                    timestamp_ms: Some(ts),
                });
            }
            if samples.len() > start {
                applies.push((series, start..samples.len()));
            }
        }

        let mut wal_payloads = Vec::new();
        if !wal_samples.is_empty() {
            let mut buf = Vec::with_capacity(wal_samples.len() * 13 + 16);
            record::encode_samples(&mut buf, tenant.as_str(), &wal_samples);
            wal_payloads.push(buf);
        }
        if !batch.metadata.is_empty() {
            let mut buf = Vec::new();
            record::encode_metadata(&mut buf, tenant.as_str(), &batch.metadata);
            wal_payloads.push(buf);
        }
        Ok(PreparedWrite {
            tenant: tenant.clone(),
            head,
            applies,
            samples,
            metadata: batch.metadata,
            wal_payloads,
            outcome,
        })
    }

    /// Makes the prepared write durable, then visible; returns after both.
    pub async fn commit_write(
        &self,
        guard: WriteGuard<'_>,
        prepared: PreparedWrite,
    ) -> Result<WriteOutcome, DbError> {
        if !prepared.wal_payloads.is_empty() {
            let refs: Vec<&[u8]> = prepared.wal_payloads.iter().map(Vec::as_slice).collect();
            self.wal.write(&refs).await?;
        }
        // Durable: make visible.
        for (series, range) in &prepared.applies {
            for sample in &prepared.samples[range.clone()] {
                prepared.head.append(series, *sample);
            }
        }
        if !prepared.metadata.is_empty() {
            prepared.head.set_metadata(prepared.metadata);
        }
        drop(guard);

        let outcome = prepared.outcome;
        let tenant = prepared.tenant.as_str().to_string();
        self.metrics
            .samples_ingested
            .get_or_create(&TenantLabel {
                tenant: tenant.clone(),
            })
            .inc_by(outcome.accepted as u64);
        for d in &outcome.discards {
            self.metrics
                .samples_rejected
                .get_or_create(&RejectLabels {
                    tenant: tenant.clone(),
                    reason: d.reason.as_label().to_string(),
                })
                .inc_by(d.samples as u64);
        }
        Ok(outcome)
    }

    /// Writes a validated batch; returns only after every accepted sample is durable.
    pub async fn write(
        &self,
        tenant: &TenantId,
        batch: WriteBatch<'_>,
    ) -> Result<WriteOutcome, DbError> {
        let guard = self.begin_write().await?;
        let prepared = self.prepare_write(&guard, tenant, batch)?;
        self.commit_write(guard, prepared).await
    }
}
