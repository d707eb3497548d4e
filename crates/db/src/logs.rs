//! Logs through the same machinery as metrics: a push is resolved to streams, checked against
//! the per-stream out-of-order window, logged to the shared WAL and made visible in the tenant's
//! log head once durable; the head is cut into log blocks by time, uploaded, and read back
//! merged with the head.

use std::collections::hash_map::Entry as HashEntry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use roaring::RoaringBitmap;
use vigil_block::logs::{ReadPart, RowGroupCache, ENTRIES_FILE, LOGS_KIND, STREAMS_FILE};
use vigil_head::logs::{sort_and_dedupe, LogAppendError, LogHead, MemStream};
use vigil_log_ingest::{LogBatch, Rejection};
use vigil_model::{
    Labels, LogEntry, LogReadFilter, LogSampleValue, LogWindowSums, LogWindows, Matcher, TenantId,
    WindowSums,
};
use vigil_wal::record;

use crate::cache::BlockRowGroups;
use crate::catalog::{BlockEntry, BlockLocation};
use crate::metrics::{RejectLabels, TenantLabel};
use crate::write::WriteGuard;
use crate::{Db, DbError};

/// Nanoseconds per millisecond: block ranges and the cut schedule are in ms.
pub(crate) const NS_PER_MS: i64 = 1_000_000;

/// What happened to a push.
#[derive(Debug, Default)]
pub struct LogWriteOutcome {
    /// Entries accepted, all durable.
    pub accepted: usize,
    /// Entries in the request, valid or not.
    pub total_entries: usize,
    /// Entries set aside, with reasons, including those from validation.
    pub rejections: Vec<Rejection>,
}

impl LogWriteOutcome {
    /// Loki's 400 body when something was rejected.
    pub fn error_body(&self) -> Option<String> {
        (!self.rejections.is_empty())
            .then(|| vigil_log_ingest::describe_rejections(&self.rejections, self.total_entries))
    }
}

/// A checked push, ready for the WAL.
pub struct PreparedLogWrite {
    tenant: TenantId,
    head: Arc<LogHead>,
    applies: Vec<(Arc<MemStream>, Vec<LogEntry>)>,
    accepted_bytes: usize,
    wal_payloads: Vec<Vec<u8>>,
    outcome: LogWriteOutcome,
    /// Ends of the block ranges the accepted entries fall in.
    range_ends: Vec<i64>,
}

/// One stream with its entries in a requested range, sorted by time.
#[derive(Debug, Clone)]
pub struct StreamData {
    pub labels: Labels,
    pub entries: Vec<LogEntry>,
}

impl Db {
    /// The tenant's log head, created on first use.
    pub fn log_head(&self, tenant: &TenantId) -> Arc<LogHead> {
        crate::head_for(&self.log_heads, tenant.as_str())
    }

    pub(crate) fn existing_log_head(&self, tenant: &TenantId) -> Option<Arc<LogHead>> {
        self.log_heads.read().get(tenant.as_str()).cloned()
    }

    pub(crate) fn all_log_heads(&self) -> Vec<(String, Arc<LogHead>)> {
        self.log_heads
            .read()
            .iter()
            .map(|(t, h)| (t.clone(), h.clone()))
            .collect()
    }

    /// Resolves streams (logging new ones), checks each entry against its stream's
    /// out-of-order window and encodes the WAL record. CPU only.
    pub fn prepare_log_write(
        &self,
        _guard: &WriteGuard<'_>,
        tenant: &TenantId,
        batch: LogBatch,
    ) -> Result<PreparedLogWrite, DbError> {
        let head = self.log_head(tenant);
        let mut outcome = LogWriteOutcome {
            accepted: 0,
            total_entries: batch.total_entries,
            rejections: batch.rejections,
        };
        let wanted: Vec<(u64, &Labels)> =
            batch.streams.iter().map(|s| (s.hash, &s.labels)).collect();
        let wal = &self.wal;
        let resolved = head.get_or_create(&wanted, |created| {
            let mut buf = Vec::new();
            record::encode_log_streams(&mut buf, tenant.as_str(), created);
            wal.append(&[&buf]).map(|_| ())
        })?;
        drop(wanted);

        let window_ns =
            i64::try_from(self.config.out_of_order_window.as_nanos()).unwrap_or(i64::MAX);
        let mut applies: Vec<(Arc<MemStream>, Vec<LogEntry>)> = Vec::with_capacity(resolved.len());
        let mut accepted_bytes = 0usize;
        let block_ns = self.config.block_ms().saturating_mul(NS_PER_MS);
        let mut range_ends: Vec<i64> = Vec::new();
        // The range of the last entry: most entries fall in it, and need no division.
        let mut last_range = (0i64, 0i64);
        for (stream_batch, stream) in batch.streams.into_iter().zip(resolved) {
            let mut kept = Vec::with_capacity(stream_batch.entries.len());
            let mut newest: Option<i64> = None;
            let shown = || {
                vigil_log_ingest::format_labels(
                    stream_batch
                        .labels
                        .iter()
                        .map(|l| (l.name.as_str(), l.value.as_str())),
                )
            };
            let mut stream_label: Option<String> = None;
            for entry in stream_batch.entries {
                match stream.check(entry.timestamp_ns, newest, window_ns) {
                    Ok(()) => {
                        newest =
                            Some(newest.map_or(entry.timestamp_ns, |n| n.max(entry.timestamp_ns)));
                        accepted_bytes += entry.line.len();
                        let ts = entry.timestamp_ns;
                        if !(last_range.0..last_range.1).contains(&ts) {
                            let end = crate::range_end(ts, block_ns);
                            range_ends.push(end);
                            last_range = (end.saturating_sub(block_ns), end);
                        }
                        kept.push(entry);
                    }
                    Err(LogAppendError::TooFarBehind {
                        oldest_acceptable_ns,
                    }) => {
                        let stream_text = stream_label.get_or_insert_with(shown);
                        outcome.rejections.push(vigil_log_ingest::too_far_behind(
                            stream_text,
                            &entry,
                            oldest_acceptable_ns,
                        ));
                    }
                }
            }
            outcome.accepted += kept.len();
            if !kept.is_empty() {
                applies.push((stream, kept));
            }
        }

        range_ends.sort_unstable();
        range_ends.dedup();
        let mut wal_payloads = Vec::new();
        if !applies.is_empty() {
            let mut buf = Vec::with_capacity(accepted_bytes + outcome.accepted * 16 + 64);
            let count = applies.iter().map(|(_, e)| e.len()).sum::<usize>();
            record::encode_log_entries(
                &mut buf,
                tenant.as_str(),
                ExactLen {
                    inner: applies
                        .iter()
                        .flat_map(|(s, entries)| entries.iter().map(move |e| (s.id, e))),
                    len: count,
                },
            );
            wal_payloads.push(buf);
        }
        Ok(PreparedLogWrite {
            tenant: tenant.clone(),
            head,
            applies,
            accepted_bytes,
            wal_payloads,
            outcome,
            range_ends,
        })
    }

    /// Makes the prepared push durable, then visible; returns after both.
    pub async fn commit_log_write(
        &self,
        guard: WriteGuard<'_>,
        prepared: PreparedLogWrite,
    ) -> Result<LogWriteOutcome, DbError> {
        if !prepared.wal_payloads.is_empty() {
            let refs: Vec<&[u8]> = prepared.wal_payloads.iter().map(Vec::as_slice).collect();
            self.wal.write(&refs).await?;
        }
        for (stream, entries) in prepared.applies {
            prepared.head.append(&stream, entries);
        }
        prepared
            .head
            .note_range_writes(&prepared.range_ends, std::time::Instant::now());
        drop(guard);

        let outcome = prepared.outcome;
        let tenant = TenantLabel {
            tenant: prepared.tenant.as_str().to_string(),
        };
        self.metrics
            .log_entries_ingested
            .get_or_create(&tenant)
            .inc_by(outcome.accepted as u64);
        self.metrics
            .log_bytes_ingested
            .get_or_create(&tenant)
            .inc_by(prepared.accepted_bytes as u64);
        for r in &outcome.rejections {
            self.metrics
                .log_entries_rejected
                .get_or_create(&RejectLabels {
                    tenant: tenant.tenant.clone(),
                    reason: r.reason.as_label().to_string(),
                })
                .inc_by(r.entries as u64);
        }
        Ok(outcome)
    }

    /// Writes a validated push; returns only after every accepted entry is durable.
    pub async fn write_logs(
        &self,
        tenant: &TenantId,
        batch: LogBatch,
    ) -> Result<LogWriteOutcome, DbError> {
        let guard = self.begin_write().await?;
        let prepared = self.prepare_log_write(&guard, tenant, batch)?;
        self.commit_log_write(guard, prepared).await
    }

    /// Cuts the log head's entries before `end_ns` into a pending block, registers it, then
    /// drops them from the head. On failure they return to the head.
    pub(crate) async fn cut_logs(
        &self,
        tenant: &str,
        head: &Arc<LogHead>,
        end_ns: i64,
    ) -> Result<(), DbError> {
        let block_ulid = ulid::Ulid::generate().to_string();
        let streams = {
            // No write is between its WAL record and the head while the cut takes its entries,
            // so the marker logged here splits the WAL exactly where the head did.
            let _exclusive = self.ingest_barrier.write().await;
            let streams = head.begin_cut(end_ns);
            if streams.is_empty() {
                head.finish_cut();
                return Ok(());
            }
            let mut marker = Vec::new();
            record::encode_log_cut(&mut marker, tenant, end_ns, &block_ulid);
            if let Err(e) = self.wal.write(&[marker.as_slice()]).await {
                head.abort_cut();
                return Err(e.into());
            }
            streams
        };
        let cut_seq = head.cut_in_flight().unwrap_or(0);
        let tenant_owned = tenant.to_string();
        let pending_dir = self.pending_dir.clone();
        // One head chunk decoded at a time: the cut never holds the range's text uncompressed.
        let block_dir = crate::pending_block_dir(&self.pending_dir, tenant, LOGS_KIND, &block_ulid);
        let staging_dir = block_dir.clone();
        let written = crate::run_low_priority(move || -> Result<Arc<BlockEntry>, DbError> {
            // The largest file goes straight to disk; the block is complete once meta.json is
            // written, and a directory without it is removed at start-up.
            std::fs::create_dir_all(&staging_dir).map_err(crate::io_err(&staging_dir))?;
            let staged = staging_dir.join(format!("{ENTRIES_FILE}.tmp"));
            let mut writer = vigil_block::logs::LogBlockWriter::to_file(&tenant_owned, &staged)?
                .with_ulid(block_ulid);
            for stream in &streams {
                let mut begun = false;
                stream.visit_cutting_entries(|entries| {
                    if !begun {
                        writer.begin_stream(&stream.labels)?;
                        begun = true;
                    }
                    writer.add_entries(&entries)
                })?;
            }
            let encoded = writer.finish()?;
            let index = crate::write_pending_block(&pending_dir, &encoded, STREAMS_FILE)?;
            Ok(Arc::new(BlockEntry {
                index,
                location: RwLock::new(BlockLocation::Pending),
                cut_seq,
            }))
        })
        .await
        .and_then(|r| r);
        let entry = match written {
            Ok(entry) => entry,
            Err(e) => {
                head.abort_cut();
                let _ = std::fs::remove_dir_all(&block_dir);
                return Err(e);
            }
        };
        let stats = entry.index.meta.logs.unwrap_or_default();
        tracing::info!(
            tenant,
            block = entry.ulid(),
            min_time_ns = stats.min_time_ns,
            max_time_ns = stats.max_time_ns,
            streams = entry.index.meta.num_series,
            entries = stats.num_entries,
            "log block cut"
        );
        // Registered before the head lets go, so a reader never misses the entries (a reader
        // seeing both removes the repeats).
        self.log_catalog.add(entry.clone());
        head.finish_cut();
        head.forget_range_writes(end_ns);
        // The range's head chunks and the encoder's buffers are freed now.
        crate::release_freed_memory();
        self.metrics
            .blocks_cut
            .get_or_create(&TenantLabel {
                tenant: tenant.to_string(),
            })
            .inc();
        self.cut_since_truncation.store(true, Ordering::Release);
        let _ = self.upload_tx.send(entry);
        Ok(())
    }

    /// Streams matching any of the matcher sets with entries in `[start_ns, end_ns]`.
    pub fn log_series(
        &self,
        tenant: &TenantId,
        matcher_sets: &[Vec<Matcher>],
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<Labels> {
        let mut out = BTreeSet::new();
        for matchers in &non_empty_sets(matcher_sets) {
            if let Some(head) = self.existing_log_head(tenant) {
                for s in head.select(matchers) {
                    if s.has_entries(start_ns, end_ns) {
                        out.insert(s.labels.clone());
                    }
                }
            }
            for block in self.log_blocks(tenant, start_ns, end_ns) {
                for id in block.index.postings.select(matchers) {
                    if let Some(labels) = block.index.labels.get(id as usize) {
                        out.insert(labels.clone());
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// Label names over the matching streams with entries in range.
    pub fn log_label_names(
        &self,
        tenant: &TenantId,
        matcher_sets: &[Vec<Matcher>],
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<String> {
        let mut out = BTreeSet::new();
        for labels in self.log_series(tenant, matcher_sets, start_ns, end_ns) {
            out.extend(labels.iter().map(|l| l.name.clone()));
        }
        out.into_iter().collect()
    }

    /// Values of `name` over the matching streams with entries in range.
    pub fn log_label_values(
        &self,
        tenant: &TenantId,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<String> {
        let mut out = BTreeSet::new();
        for labels in self.log_series(tenant, matcher_sets, start_ns, end_ns) {
            if let Some(value) = labels.get(name) {
                out.insert(value.to_string());
            }
        }
        out.into_iter().collect()
    }

    /// Entries of every stream matching `matchers` in `[start_ns, end_ns]`, merged over head and
    /// blocks, each stream sorted by time with exact repeats removed; streams sorted by labels.
    pub async fn select_log_entries(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<StreamData>, DbError> {
        self.select_log_entries_where(tenant, matchers, start_ns, end_ns, LogReadFilter::default())
            .await
    }

    /// [`select_log_entries`](Self::select_log_entries) keeping only what `filter` wants; the
    /// head, then the blocks (in parallel), are decoded on blocking threads.
    pub async fn select_log_entries_where(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
        filter: LogReadFilter,
    ) -> Result<Vec<StreamData>, DbError> {
        // The head is read before the blocks are listed: a cut registers its block before the
        // head lets go, so an entry is never missed; blocks of cuts the head read still held
        // are left out, so none is read twice.
        let head = self.existing_log_head(tenant);
        let head_filter = filter.clone();
        let head_matchers = matchers.to_vec();
        let head_task = tokio::task::spawn_blocking(move || {
            read_head(head.as_deref(), head_matchers, |s| {
                (
                    s.labels.clone(),
                    s.entries_where(start_ns, end_ns, &head_filter),
                )
            })
        });
        let (decoded, cuts_done) = head_task.await.map_err(|e| DbError::Task(e.to_string()))?;
        let mut blocks = self.matching_log_blocks(tenant, matchers, start_ns, end_ns, cuts_done);
        // With a limit, blocks are read in the wanted time order, a few at a time, until the
        // entries held reach past every block left.
        let wave = match filter.limit {
            Some((_, forward)) => {
                blocks.sort_by_key(|(b, _)| {
                    let meta = &b.index.meta;
                    if forward {
                        meta.min_time_ms
                    } else {
                        -meta.max_time_ms
                    }
                });
                READ_WAVE_BLOCKS
            }
            None => blocks.len().max(1),
        };
        let mut merged: BTreeMap<Labels, Vec<LogEntry>> = BTreeMap::new();
        for (labels, entries) in decoded {
            if !entries.is_empty() {
                merged.entry(labels).or_default().extend(entries);
            }
        }
        let mut rest = blocks.as_slice();
        let admitted = Arc::new(AtomicUsize::new(0));
        while !rest.is_empty() {
            if let Some((limit, forward)) = filter.limit {
                if limit_reached(&merged, limit, forward, &rest[0].0) {
                    break;
                }
            }
            let (now, later) = rest.split_at(wave.min(rest.len()));
            rest = later;
            // Every core gets a share of every block, so that a large block does not run alone
            // (with a limit, blocks come one at a time, each read by all cores).
            let parts = crate::read_parallelism();
            let reads = now.iter().map(|(block, ids)| {
                let filter = filter.for_streams(block_stream_labels(block, ids));
                let decoded = self.block_read_caches(block, &admitted);
                async move {
                    let range = (start_ns, end_ns);
                    let entries = self
                        .read_block_entries(block, ids.clone(), range, filter, parts, decoded)
                        .await?;
                    Ok::<_, DbError>((block, entries))
                }
            });
            let wave_started = std::time::Instant::now();
            let read = futures::future::try_join_all(reads).await?;
            tracing::debug!(
                blocks = now.len(),
                parts,
                ms = wave_started.elapsed().as_secs_f64() * 1e3,
                entries = read
                    .iter()
                    .map(|(_, e)| e.values().map(Vec::len).sum::<usize>())
                    .sum::<usize>(),
                "log read wave"
            );
            for (block, entries) in read {
                for (id, entries) in entries {
                    if let Some(labels) = block.index.labels.get(id as usize) {
                        merged.entry(labels.clone()).or_default().extend(entries);
                    }
                }
            }
        }
        Ok(merged
            .into_iter()
            .map(|(labels, mut entries)| {
                if filter.skip_lines {
                    entries.sort_by_key(|e| e.timestamp_ns);
                } else {
                    sort_and_dedupe(&mut entries);
                }
                StreamData { labels, entries }
            })
            .filter(|s| !s.entries.is_empty())
            .collect())
    }

    /// The log blocks overlapping `[start_ns, end_ns]` that hold streams matching `matchers`,
    /// with those streams' ids.
    /// Blocks of cuts after `cuts_done` are left out (their entries were read from the head).
    fn matching_log_blocks(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
        cuts_done: u64,
    ) -> Vec<(Arc<BlockEntry>, RoaringBitmap)> {
        self.log_blocks(tenant, start_ns, end_ns)
            .into_iter()
            .filter(|block| block.cut_seq <= cuts_done)
            .filter_map(|block| {
                let ids = block.index.postings.select(matchers);
                (!ids.is_empty()).then_some((block, ids))
            })
            .collect()
    }

    fn log_blocks(&self, tenant: &TenantId, start_ns: i64, end_ns: i64) -> Vec<Arc<BlockEntry>> {
        self.log_catalog.overlapping(
            tenant.as_str(),
            start_ns.div_euclid(NS_PER_MS),
            end_ns.div_euclid(NS_PER_MS),
        )
    }

    /// A block's entries, read by `parts` blocking tasks over shares of its row groups.
    async fn read_block_entries(
        &self,
        block: &Arc<BlockEntry>,
        ids: RoaringBitmap,
        range: (i64, i64),
        filter: LogReadFilter,
        parts: usize,
        decoded: BlockRowGroups,
    ) -> Result<BTreeMap<u32, Vec<LogEntry>>, DbError> {
        let ids = Arc::new(ids);
        let shares = self
            .read_block_parts(block, parts, move |bytes, part| {
                vigil_block::logs::read_log_entries_part(
                    bytes,
                    &ids,
                    range,
                    &filter,
                    part,
                    Some(&decoded as &dyn RowGroupCache),
                )
            })
            .await?;
        let mut out: BTreeMap<u32, Vec<LogEntry>> = BTreeMap::new();
        for share in shares {
            for (id, entries) in share {
                vigil_block::logs::extend_stream_entries(&mut out, id, entries);
            }
        }
        Ok(out)
    }

    /// Runs `read` over each of `parts` shares of a block's row groups, on blocking threads,
    /// and returns the results in part order.
    async fn read_block_parts<T, F>(
        &self,
        block: &BlockEntry,
        parts: usize,
        read: F,
    ) -> Result<Vec<T>, DbError>
    where
        T: Send + 'static,
        F: Fn(bytes::Bytes, ReadPart) -> Result<T, vigil_block::BlockError>
            + Clone
            + Send
            + 'static,
    {
        let bytes = self.log_entries_file(block).await?;
        let tasks = ReadPart::all(parts).map(|part| {
            let (bytes, read) = (bytes.clone(), read.clone());
            tokio::task::spawn_blocking(move || read(bytes, part))
        });
        futures::future::try_join_all(tasks)
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
            .into_iter()
            .map(|share| share.map_err(DbError::from))
            .collect()
    }

    /// Where reads of `block` keep its decoded row groups and line indexes; `admitted` counts
    /// what one query has put through the row group cache.
    fn block_read_caches(&self, block: &BlockEntry, admitted: &Arc<AtomicUsize>) -> BlockRowGroups {
        BlockRowGroups {
            caches: self.log_read_caches.clone(),
            block: Arc::from(block.ulid()),
            admitted: admitted.clone(),
        }
    }

    /// A block's entries file, from the cache or the object store.
    async fn log_entries_file(&self, block: &BlockEntry) -> Result<bytes::Bytes, DbError> {
        self.cached_block_file(&self.log_block_cache, block, ENTRIES_FILE)
            .await
    }

    /// Window sums of the streams matching `matchers` over their entries in
    /// `[start_ns, end_ns]` whose line `filter` keeps, each adding the value `value` asks for,
    /// grouped by stream and structured metadata. No line is copied out and no entry kept. As
    /// with `skip_lines`, an entry repeated in two sources (the head and a block around a cut)
    /// counts once per source.
    pub async fn select_log_window_sums(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        (start_ns, end_ns): (i64, i64),
        filter: LogReadFilter,
        value: LogSampleValue,
        windows: LogWindows,
    ) -> Result<Vec<LogWindowSums>, DbError> {
        // The head is read before the blocks are listed (see `select_log_entries_where`).
        let head = self.existing_log_head(tenant);
        let head_filter = LogReadFilter {
            skip_lines: value == LogSampleValue::One,
            limit: None,
            ..filter.clone()
        };
        let head_matchers = matchers.to_vec();
        let head_task = tokio::task::spawn_blocking(move || {
            read_head(head.as_deref(), head_matchers, |s| {
                let entries = s.entries_where(start_ns, end_ns, &head_filter);
                LogWindowSums::from_entries(&s.labels, entries, value, windows)
            })
        });
        let (from_head, cuts_done) = head_task.await.map_err(|e| DbError::Task(e.to_string()))?;
        let from_head: Vec<LogWindowSums> = from_head.into_iter().flatten().collect();
        let blocks = self.matching_log_blocks(tenant, matchers, start_ns, end_ns, cuts_done);
        // Every core gets a share of every block, so the last block does not run alone.
        let parts = crate::read_parallelism();
        let admitted = Arc::new(AtomicUsize::new(0));
        let reads = blocks.iter().map(|(block, ids)| {
            let filter = filter.for_streams(block_stream_labels(block, ids));
            let ids = Arc::new(ids.clone());
            let decoded = self.block_read_caches(block, &admitted);
            async move {
                let shares = self
                    .read_block_parts(block, parts, move |bytes, part| {
                        vigil_block::logs::read_log_window_sums(
                            bytes,
                            &ids,
                            (start_ns, end_ns),
                            &filter,
                            value,
                            windows,
                            part,
                            Some(&decoded as &dyn RowGroupCache),
                        )
                    })
                    .await?;
                Ok::<_, DbError>((block, shares.into_iter().flatten().collect::<Vec<_>>()))
            }
        });
        let from_blocks = futures::future::try_join_all(reads).await?;

        let mut merged: HashMap<SampleGroup, WindowSums> = HashMap::new();
        let mut add = |key: SampleGroup, sums: WindowSums| match merged.entry(key) {
            HashEntry::Vacant(slot) => {
                slot.insert(sums);
            }
            HashEntry::Occupied(mut slot) => slot.get_mut().add(&sums),
        };
        for group in from_head {
            add((group.labels, group.structured_metadata), group.sums);
        }
        for (block, groups) in from_blocks {
            for group in groups {
                if let Some(labels) = block.index.labels.get(group.stream_id as usize) {
                    add((labels.clone(), group.structured_metadata), group.sums);
                }
            }
        }
        let mut out: Vec<LogWindowSums> = merged
            .into_iter()
            .map(|((labels, structured_metadata), sums)| LogWindowSums {
                labels,
                structured_metadata,
                sums,
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.labels, &a.structured_metadata).cmp(&(&b.labels, &b.structured_metadata))
        });
        Ok(out)
    }
}

/// Reads the head's streams matching `matchers` with `read`, with no cut moving entries
/// meanwhile, and returns what was read with the number of cuts whose entries it no longer
/// holds: blocks of later cuts (including one in flight) hold entries the read already has.
/// Without a head every block counts.
fn read_head<T>(
    head: Option<&LogHead>,
    matchers: Vec<Matcher>,
    read: impl Fn(&MemStream) -> T,
) -> (Vec<T>, u64) {
    let Some(head) = head else {
        return (Vec::new(), u64::MAX);
    };
    let streams = head.select(&matchers);
    head.read_at_cut(|generation| {
        let out: Vec<T> = streams.iter().map(|s| read(s)).collect();
        // Generation 2k: cuts up to k are done; 2k - 1: cut k is still all in the head.
        (out, generation / 2)
    })
}

/// A stream's labels and a set of structured metadata: what window sums are grouped by.
type SampleGroup = (Labels, Vec<(String, String)>);

/// Blocks read at once when a limit lets later ones be skipped: one, read by all cores, so the
/// limit is checked after each.
const READ_WAVE_BLOCKS: usize = 1;

/// Whether `merged` already holds `limit` distinct entries that all come before (`forward`) or
/// after every entry `next` can hold, so no later block in that order can make the cut.
fn limit_reached(
    merged: &BTreeMap<Labels, Vec<LogEntry>>,
    limit: usize,
    forward: bool,
    next: &BlockEntry,
) -> bool {
    if limit == 0 || merged.values().map(Vec::len).sum::<usize>() < limit {
        return false;
    }
    let mut times: Vec<i64> = Vec::new();
    for entries in merged.values() {
        // Distinct entries only: a repeat in two sources counts once.
        let mut refs: Vec<&LogEntry> = entries.iter().collect();
        refs.sort_by(|a, b| {
            (a.timestamp_ns, &a.line, &a.structured_metadata).cmp(&(
                b.timestamp_ns,
                &b.line,
                &b.structured_metadata,
            ))
        });
        refs.dedup();
        times.extend(refs.iter().map(|e| e.timestamp_ns));
    }
    if times.len() < limit {
        return false;
    }
    let meta = &next.index.meta;
    if forward {
        let (_, kth, _) = times.select_nth_unstable(limit - 1);
        // The next block starts at or after its min time (ms, so the whole ms counts).
        *kth < meta.min_time_ms.saturating_mul(NS_PER_MS)
    } else {
        let (_, kth, _) = times.select_nth_unstable_by(limit - 1, |a, b| b.cmp(a));
        *kth > meta
            .max_time_ms
            .saturating_mul(NS_PER_MS)
            .saturating_add(NS_PER_MS - 1)
    }
}

fn non_empty_sets(matcher_sets: &[Vec<Matcher>]) -> Vec<Vec<Matcher>> {
    if matcher_sets.is_empty() {
        vec![vec![]]
    } else {
        matcher_sets.to_vec()
    }
}

/// An iterator with a known length (the WAL record starts with the count).
struct ExactLen<I> {
    inner: I,
    len: usize,
}

impl<I: Iterator> Iterator for ExactLen<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next()?;
        self.len = self.len.saturating_sub(1);
        Some(item)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl<I: Iterator> ExactSizeIterator for ExactLen<I> {}

/// Entries per checkpoint record: bounded so a checkpoint never holds much of the head at once.
const CHECKPOINT_ENTRIES_PER_RECORD: usize = 16 * 1024;

/// The WAL checkpoint records of the log heads, produced one stream at a time.
pub(crate) fn log_checkpoint_records(
    heads: Vec<(String, Arc<LogHead>)>,
) -> impl Iterator<Item = Vec<u8>> {
    heads.into_iter().flat_map(|(tenant, head)| {
        head.streams().into_iter().flat_map(move |stream| {
            let mut records = Vec::new();
            let mut buf = Vec::new();
            record::encode_log_streams(&mut buf, &tenant, &[(stream.id, &stream.labels)]);
            records.push(buf);
            let entries = stream.entries(i64::MIN, i64::MAX);
            for chunk in entries.chunks(CHECKPOINT_ENTRIES_PER_RECORD) {
                let mut buf = Vec::new();
                record::encode_log_entries(&mut buf, &tenant, chunk.iter().map(|e| (stream.id, e)));
                records.push(buf);
            }
            records
        })
    })
}

/// What replay needs to know about log cuts: the log blocks found in storage before it, and
/// the entries it let go of for each of them (returned to the head should the block not load).
#[derive(Default)]
pub(crate) struct ReplayCuts {
    /// (tenant, block ulid) of every log block listed in the object store or pending.
    pub known_blocks: HashSet<(String, String)>,
    /// (tenant, block ulid, the entries dropped per stream).
    pub dropped: Vec<(String, String, DroppedEntries)>,
}

/// Entries replay let go of for one cut, per stream.
pub(crate) type DroppedEntries = Vec<(Arc<MemStream>, Vec<LogEntry>)>;

impl Db {
    /// Entries replay dropped for a block that did not load go back to their heads.
    pub(crate) fn settle_replayed_cuts(&self, cuts: ReplayCuts) {
        let mut kept = 0usize;
        let mut returned = 0usize;
        for (tenant, ulid, streams) in cuts.dropped {
            let entries: usize = streams.iter().map(|(_, e)| e.len()).sum();
            if self.log_catalog.contains(&tenant, &ulid) {
                kept += entries;
                continue;
            }
            returned += entries;
            let head = crate::head_for(&self.log_heads, &tenant);
            for (stream, entries) in streams {
                head.append(&stream, entries);
            }
        }
        if kept + returned > 0 {
            tracing::info!(
                in_blocks = kept,
                returned,
                "wal entries already cut into log blocks were not replayed"
            );
        }
    }
}

/// Replays one log record into the heads.
pub(crate) fn replay_log_record(
    heads: &RwLock<std::collections::HashMap<String, Arc<LogHead>>>,
    record: record::Record,
    unknown_refs: &mut u64,
    cuts: &mut ReplayCuts,
) -> u64 {
    match record {
        record::Record::LogCut {
            tenant,
            end_ns,
            block,
        } => {
            // Done again only when the block is there; otherwise the entries stay.
            if cuts.known_blocks.contains(&(tenant.clone(), block.clone())) {
                let head = crate::head_for(heads, &tenant);
                let streams = head.begin_cut(end_ns);
                let dropped: DroppedEntries = streams
                    .into_iter()
                    .map(|s| {
                        let entries = s.cutting_entries();
                        (s, entries)
                    })
                    .collect();
                head.finish_cut();
                cuts.dropped.push((tenant, block, dropped));
            }
            0
        }
        record::Record::LogStreams { tenant, streams } => {
            let head = crate::head_for(heads, &tenant);
            for (id, labels) in streams {
                head.restore_stream(id, labels);
            }
            0
        }
        record::Record::LogEntries { tenant, entries } => {
            let head = crate::head_for(heads, &tenant);
            let mut replayed = 0;
            let mut run: Vec<LogEntry> = Vec::new();
            let mut run_id: Option<u32> = None;
            let mut flush = |id: Option<u32>, run: &mut Vec<LogEntry>, unknown: &mut u64| {
                if let Some(id) = id {
                    match head.get_by_id(id) {
                        Some(stream) => {
                            replayed += run.len() as u64;
                            head.append(&stream, run.drain(..));
                        }
                        None => {
                            *unknown += run.len() as u64;
                            run.clear();
                        }
                    }
                }
            };
            for (id, entry) in entries {
                if run_id != Some(id) {
                    flush(run_id, &mut run, unknown_refs);
                    run_id = Some(id);
                }
                run.push(entry);
            }
            flush(run_id, &mut run, unknown_refs);
            replayed
        }
        _ => 0,
    }
}

/// The labels of the streams `ids` of a log block.
fn block_stream_labels<'a>(
    block: &'a BlockEntry,
    ids: &'a RoaringBitmap,
) -> impl Iterator<Item = &'a Labels> {
    ids.iter()
        .filter_map(|id| block.index.labels.get(id as usize))
}
