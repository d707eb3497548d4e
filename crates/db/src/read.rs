//! Reads over a tenant's head and blocks, merged: series, label names and values, samples.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use roaring::RoaringBitmap;
use vigil_block::SAMPLES_FILE;
use vigil_model::{Labels, Matcher, MetricMetadata, Sample, TenantId};

use crate::catalog::{BlockEntry, BlockLocation};
use crate::{Db, DbError, METRICS_KIND};

/// One series with its samples in the requested range, sorted by time, de-duplicated.
#[derive(Debug, Clone)]
pub struct SeriesData {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

impl Db {
    /// Series matching any of the matcher sets (each set ANDed) with samples in `[mint, maxt]`.
    pub fn series(
        &self,
        tenant: &TenantId,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<Labels> {
        let mut out = BTreeSet::new();
        let sets: Vec<Vec<Matcher>> = if matcher_sets.is_empty() {
            vec![vec![]]
        } else {
            matcher_sets.to_vec()
        };
        for matchers in &sets {
            if let Some(head) = self.existing_head(tenant) {
                for s in head.select(matchers) {
                    if !s.samples(mint, maxt).is_empty() {
                        out.insert(s.labels.clone());
                    }
                }
            }
            for block in self.catalog.overlapping(tenant.as_str(), mint, maxt) {
                for id in block.index.postings.select(matchers) {
                    if let Some(labels) = block.index.labels.get(id as usize) {
                        out.insert(labels.clone());
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// Label names over the matching series (all series when `matcher_sets` is empty).
    pub fn label_names(
        &self,
        tenant: &TenantId,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        self.collect_labels(
            tenant,
            matcher_sets,
            mint,
            maxt,
            |p, ids| p.label_names(ids),
            |h, m| h.label_names(m),
        )
    }

    /// Values of `name` over the matching series.
    pub fn label_values(
        &self,
        tenant: &TenantId,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        self.collect_labels(
            tenant,
            matcher_sets,
            mint,
            maxt,
            |p, ids| p.label_values(name, ids),
            |h, m| h.label_values(name, m),
        )
    }

    fn collect_labels(
        &self,
        tenant: &TenantId,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
        from_block: impl Fn(&vigil_index::Postings, &RoaringBitmap) -> Vec<String>,
        from_head: impl Fn(&vigil_head::Head, &[Matcher]) -> Vec<String>,
    ) -> Vec<String> {
        let mut out = BTreeSet::new();
        let sets: Vec<Vec<Matcher>> = if matcher_sets.is_empty() {
            vec![vec![]]
        } else {
            matcher_sets.to_vec()
        };
        for matchers in &sets {
            if let Some(head) = self.existing_head(tenant) {
                let in_range = head.min_ts().is_some_and(|min| min <= maxt)
                    && head.max_ts().is_some_and(|max| max >= mint);
                if in_range || head.min_ts().is_none() {
                    out.extend(from_head(&head, matchers));
                }
            }
            for block in self.catalog.overlapping(tenant.as_str(), mint, maxt) {
                let ids = block.index.postings.select(matchers);
                out.extend(from_block(&block.index.postings, &ids));
            }
        }
        out.into_iter().collect()
    }

    /// Samples of every series matching `matchers` in `[mint, maxt]`, merged over head and
    /// blocks, sorted by labels.
    pub async fn select_samples(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, DbError> {
        let mut merged: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        // The head first, then the blocks: a cut adds its block to the catalog before it
        // removes the samples from the head, so in this order a concurrent cut never hides
        // samples. The first value seen for a timestamp is kept.
        if let Some(head) = self.existing_head(tenant) {
            for s in head.select(matchers) {
                let samples = s.samples(mint, maxt);
                if !samples.is_empty() {
                    merged.insert(s.labels.clone(), samples);
                }
            }
        }
        for block in self.catalog.overlapping(tenant.as_str(), mint, maxt) {
            let ids = block.index.postings.select(matchers);
            if ids.is_empty() {
                continue;
            }
            for (id, mut samples) in self.read_block_samples(&block, ids, mint, maxt).await? {
                let Some(labels) = block.index.labels.get(id as usize) else {
                    continue;
                };
                if samples.is_empty() {
                    continue;
                }
                if !samples
                    .windows(2)
                    .all(|w| w[0].timestamp_ms < w[1].timestamp_ms)
                {
                    samples.sort_by_key(|s| s.timestamp_ms);
                    samples.dedup_by_key(|s| s.timestamp_ms);
                }
                match merged.get_mut(labels) {
                    Some(existing) => merge_keep_first(existing, samples),
                    None => {
                        merged.insert(labels.clone(), samples);
                    }
                }
            }
        }
        Ok(merged
            .into_iter()
            .map(|(labels, samples)| SeriesData { labels, samples })
            .collect())
    }

    async fn read_block_samples(
        &self,
        block: &Arc<BlockEntry>,
        ids: RoaringBitmap,
        mint: i64,
        maxt: i64,
    ) -> Result<HashMap<u32, Vec<Sample>>, DbError> {
        let path =
            vigil_objstore::block_file(block.tenant(), METRICS_KIND, block.ulid(), SAMPLES_FILE);
        let location = *block.location.read();
        let bytes = match location {
            BlockLocation::Pending => {
                match vigil_objstore::get(self.pending_store.as_ref(), &path).await {
                    Ok(bytes) => bytes,
                    // Uploaded and removed locally in the meantime.
                    Err(_) => vigil_objstore::get(self.store.as_ref(), &path).await?,
                }
            }
            BlockLocation::Uploaded => vigil_objstore::get(self.store.as_ref(), &path).await?,
        };
        tokio::task::spawn_blocking(move || vigil_block::read_samples(bytes, &ids, mint, maxt))
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
            .map_err(DbError::from)
    }

    /// Metric metadata by family name.
    pub fn metadata(&self, tenant: &TenantId) -> BTreeMap<String, MetricMetadata> {
        self.existing_head(tenant)
            .map(|h| h.metadata().into_iter().collect())
            .unwrap_or_default()
    }
}

/// Merges two time-sorted sample lists; where both have a timestamp, `into`'s sample stays.
fn merge_keep_first(into: &mut Vec<Sample>, other: Vec<Sample>) {
    let mut out = Vec::with_capacity(into.len() + other.len());
    let (mut i, mut j) = (0, 0);
    while i < into.len() && j < other.len() {
        let (a, b) = (into[i], other[j]);
        if a.timestamp_ms < b.timestamp_ms {
            out.push(a);
            i += 1;
        } else if b.timestamp_ms < a.timestamp_ms {
            out.push(b);
            j += 1;
        } else {
            out.push(a);
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(&into[i..]);
    out.extend_from_slice(&other[j..]);
    *into = out;
}
