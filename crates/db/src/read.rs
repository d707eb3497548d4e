//! Reads over a tenant's head and blocks, merged: series, label names and values, samples.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use vigil_block::SAMPLES_FILE;
use vigil_model::{Labels, Matcher, MetricMetadata, Sample, TenantId};

use crate::catalog::{BlockEntry, BlockLocation};
use crate::{Db, DbError};

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
        let mut series = self
            .select_samples_unordered(tenant, matchers, mint, maxt)
            .await?;
        series.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        Ok(series)
    }

    /// The head series matching `matchers` when the head alone holds `[mint, maxt]` (no block
    /// overlaps it), for a reader that decodes them as it goes: it must call
    /// [`Db::blocks_overlap`] again once done, since a cut during its read may have moved
    /// samples into a block. `None` when a block overlaps (or there is no head).
    pub fn head_series_alone(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Option<Vec<Arc<vigil_head::MemSeries>>> {
        // The head first, then the catalog, as in `select_samples_unordered`.
        let series = self
            .existing_head(tenant)
            .map(|head| head.select(matchers))?;
        (!self.blocks_overlap(tenant, mint, maxt)).then_some(series)
    }

    /// Whether any block of the tenant overlaps `[mint, maxt]`.
    pub fn blocks_overlap(&self, tenant: &TenantId, mint: i64, maxt: i64) -> bool {
        !self
            .catalog
            .overlapping(tenant.as_str(), mint, maxt)
            .is_empty()
    }

    /// As [`Db::select_samples`], in no particular order (the query engine orders its results
    /// itself; sorting 100k label sets per selector costs more than the rest of a fetch).
    pub async fn select_samples_unordered(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, DbError> {
        // The head first, then the blocks: a cut adds its block to the catalog before it
        // removes the samples from the head, so in this order a concurrent cut never hides
        // samples. The first value seen for a timestamp is kept.
        let mut merged: Vec<SeriesData> = match self.existing_head(tenant) {
            Some(head) => decode_head_series(&head.select(matchers), mint, maxt),
            None => Vec::new(),
        };
        let blocks = self.catalog.overlapping(tenant.as_str(), mint, maxt);
        // Where each series already merged sits, built only once a second source (the head,
        // or an earlier block) has series to merge into.
        let mut position: Option<FxHashMap<Labels, usize>> = None;
        for block in blocks {
            let ids = block.index.postings.select(matchers);
            if ids.is_empty() {
                continue;
            }
            let read = self.read_block_samples(&block, ids, mint, maxt).await?;
            if merged.is_empty() {
                // Nothing to merge with: ids are distinct within a block.
                merged.extend(read.into_iter().filter_map(|(id, samples)| {
                    let labels = block.index.labels.get(id as usize)?;
                    Some(SeriesData {
                        labels: labels.clone(),
                        samples: sorted_unique(samples),
                    })
                }));
                continue;
            }
            let position = position.get_or_insert_with(|| {
                merged
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.labels.clone(), i))
                    .collect()
            });
            for (id, samples) in read {
                let Some(labels) = block.index.labels.get(id as usize) else {
                    continue;
                };
                let samples = sorted_unique(samples);
                match position.get(labels) {
                    Some(&i) => merge_keep_first(&mut merged[i].samples, samples),
                    None => {
                        position.insert(labels.clone(), merged.len());
                        merged.push(SeriesData {
                            labels: labels.clone(),
                            samples,
                        });
                    }
                }
            }
        }
        Ok(merged)
    }

    /// The samples of the series `ids` of one block in `[mint, maxt]`, in series-id order,
    /// decoded by all cores (each a share of the pages to read).
    async fn read_block_samples(
        &self,
        block: &Arc<BlockEntry>,
        ids: RoaringBitmap,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<(u32, Vec<Sample>)>, DbError> {
        let bytes = self
            .cached_block_file(&self.metric_block_cache, block, SAMPLES_FILE)
            .await?;
        let key = Arc::new(block.ulid().to_string());
        let ids = Arc::new(ids);
        let parts = vigil_block::ReadPart::all(crate::read_parallelism()).map(|part| {
            let (bytes, ids, key) = (bytes.clone(), ids.clone(), key.clone());
            let metadata_cache = self.metric_block_metadata.clone();
            tokio::task::spawn_blocking(move || {
                // The file's parsed metadata, kept beside it (the first read of the file may
                // parse it in every part).
                let metadata = metadata_cache.get_or_load(
                    &key,
                    || vigil_block::parquet_metadata(&bytes),
                    |metadata| metadata.metadata().memory_size(),
                )?;
                vigil_block::read_samples(bytes, &metadata, &ids, (mint, maxt), part)
            })
        });
        let mut out: Vec<(u32, Vec<Sample>)> = Vec::new();
        for part in futures::future::join_all(parts).await {
            let part = part.map_err(|e| DbError::Task(e.to_string()))??;
            for (id, samples) in part {
                // A series cut between two parts: the later part holds its later samples.
                vigil_block::push_series_run(&mut out, id, samples);
            }
        }
        Ok(out)
    }

    /// One file of a block, from `cache` (by block: one file of each block goes through a
    /// cache) or else read and left there.
    pub(crate) async fn cached_block_file(
        &self,
        cache: &crate::cache::BlockFileCache,
        block: &BlockEntry,
        file: &str,
    ) -> Result<bytes::Bytes, DbError> {
        let key = block.ulid().to_string();
        if let Some(bytes) = cache.get(&key) {
            return Ok(bytes);
        }
        let bytes = self.block_file_bytes(block, file).await?;
        cache.insert(key, bytes.clone(), bytes.len());
        Ok(bytes)
    }

    /// One file of a block, from the pending directory or the object store.
    pub(crate) async fn block_file_bytes(
        &self,
        block: &BlockEntry,
        file: &str,
    ) -> Result<bytes::Bytes, DbError> {
        let meta = &block.index.meta;
        let path = vigil_objstore::block_file(&meta.tenant, &meta.kind, &meta.ulid, file);
        let location = *block.location.read();
        Ok(match location {
            BlockLocation::Pending => {
                match vigil_objstore::get(self.pending_store.as_ref(), &path).await {
                    Ok(bytes) => bytes,
                    // Uploaded and removed locally in the meantime.
                    Err(_) => vigil_objstore::get(self.store.as_ref(), &path).await?,
                }
            }
            BlockLocation::Uploaded => vigil_objstore::get(self.store.as_ref(), &path).await?,
        })
    }

    /// Metric metadata by family name.
    pub fn metadata(&self, tenant: &TenantId) -> BTreeMap<String, MetricMetadata> {
        self.existing_head(tenant)
            .map(|h| h.metadata().into_iter().collect())
            .unwrap_or_default()
    }
}

/// `samples` sorted by time with one sample per timestamp (the first), as blocks hold them.
fn sorted_unique(mut samples: Vec<Sample>) -> Vec<Sample> {
    if !samples
        .windows(2)
        .all(|w| w[0].timestamp_ms < w[1].timestamp_ms)
    {
        samples.sort_by_key(|s| s.timestamp_ms);
        samples.dedup_by_key(|s| s.timestamp_ms);
    }
    samples
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

/// Decodes the head series' samples in `[mint, maxt]`, on both cores for large selections
/// (decoding is most of a query's storage time). Series without samples there are left out.
fn decode_head_series(
    series: &[Arc<vigil_head::MemSeries>],
    mint: i64,
    maxt: i64,
) -> Vec<SeriesData> {
    let decode = |part: &[Arc<vigil_head::MemSeries>]| -> Vec<SeriesData> {
        part.iter()
            .filter_map(|s| {
                let samples = s.samples(mint, maxt);
                (!samples.is_empty()).then(|| SeriesData {
                    labels: s.labels.clone(),
                    samples,
                })
            })
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || series.len() < 2_000 {
        return decode(series);
    }
    let chunk = series.len().div_ceil(threads);
    std::thread::scope(|scope| {
        // The first share on this thread, the others on threads of their own.
        let mut shares = series.chunks(chunk);
        let first = shares.next().unwrap_or_default();
        let handles: Vec<_> = shares
            .map(|part| scope.spawn(move || decode(part)))
            .collect();
        let mut out = Vec::with_capacity(series.len());
        out.extend(decode(first));
        for h in handles {
            // A panic in a decode thread is a bug; re-raise it on the query thread.
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}
