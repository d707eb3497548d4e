//! The storage engine of one Vigil process, scoped by tenant everywhere: it replays the WAL into
//! per-tenant heads, makes writes durable before they are acknowledged, cuts the head into
//! blocks by time, uploads blocks to object storage, and truncates the WAL only once the data is
//! safe in an uploaded block. Reads merge the head with every block that overlaps the range.

mod cache;
mod catalog;
pub mod logs;
pub mod metrics;
mod read;
mod write;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::ObjectStore;
use parking_lot::RwLock;
use tokio::sync::{mpsc, watch};
use vigil_block::logs::{LOGS_KIND, STREAMS_FILE};
use vigil_block::{BlockIndex, EncodedBlock, INDEX_FILE, META_FILE, SERIES_FILE};
use vigil_head::logs::LogHead;
use vigil_head::Head;
use vigil_model::TenantId;
use vigil_objstore::{Backoff, ObjStoreError};
use vigil_wal::record::{self, Record};
use vigil_wal::{Wal, WalError, WalOptions};

pub use catalog::{BlockEntry, BlockLocation};
pub use logs::{LogWriteOutcome, PreparedLogWrite, StreamData};
pub use metrics::Metrics;
pub use read::SeriesData;
pub use write::{PreparedWrite, WriteGuard, WriteOutcome};

use catalog::Catalog;

/// The kind segment of object paths for metrics blocks.
pub const METRICS_KIND: &str = "metrics";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    ObjStore(#[from] ObjStoreError),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    Block(#[from] vigil_block::BlockError),
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("background task failed: {0}")]
    Task(String),
    #[error("shutting down")]
    ShuttingDown,
}

impl DbError {
    /// Whether a client should retry (the fault is ours and temporary).
    pub fn is_transient(&self) -> bool {
        true
    }
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DbError + '_ {
    move |source| DbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Storage settings (the server fills these from its configuration).
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub data_dir: PathBuf,
    pub block_duration: Duration,
    pub out_of_order_window: Duration,
    /// 0 = unlimited.
    pub max_series_per_tenant: usize,
    pub wal: WalOptions,
    pub upload_backoff: Backoff,
    /// How often the head is checked for ranges to cut.
    pub maintenance_interval: Duration,
    /// Memory for recently read metrics block sample files (and a quarter more for their parsed
    /// Parquet metadata); 0 disables the cache.
    pub metric_block_cache_bytes: usize,
    /// Memory for recently read log block files (and a quarter more each for their decoded line
    /// indexes and their parsed Parquet metadata); 0 disables the cache.
    pub log_block_cache_bytes: usize,
    /// Memory for row groups of log blocks decoded whole by reads of their lines; 0 disables
    /// the cache.
    pub log_row_group_cache_bytes: usize,
    /// A due log range still receiving entries waits until none arrived for this long (at most
    /// [`LOG_CUT_MAX_WAITS`] times it) before it is cut; zero cuts as soon as it is due.
    pub log_cut_idle: Duration,
    /// Above this much log head memory, due ranges are cut without waiting; 0 = no limit.
    pub log_head_max_bytes: usize,
}

/// A due log range that keeps receiving entries is cut after this many idle periods anyway, so
/// a trickle of late entries cannot hold the WAL untruncated.
pub const LOG_CUT_MAX_WAITS: u32 = 30;

impl DbConfig {
    pub(crate) fn block_ms(&self) -> i64 {
        (self.block_duration.as_millis() as i64).max(1)
    }
}

/// The storage engine.
pub struct Db {
    config: DbConfig,
    wal: Wal,
    heads: RwLock<HashMap<String, Arc<Head>>>,
    log_heads: RwLock<HashMap<String, Arc<LogHead>>>,
    /// Writers hold it shared from WAL append until the head has the samples; WAL rotation for
    /// a checkpoint and series garbage collection hold it exclusively.
    ingest_barrier: tokio::sync::RwLock<()>,
    catalog: Catalog,
    log_catalog: Catalog,
    log_block_cache: cache::BlockFileCache,
    /// `samples.parquet` of metrics blocks recently read, by block.
    metric_block_cache: cache::BlockFileCache,
    /// The parsed metadata of the files in `metric_block_cache`, within a quarter of its budget.
    metric_block_metadata: Arc<cache::BlockMetadataCache>,
    log_read_caches: Arc<cache::LogReadCaches>,
    store: Arc<dyn ObjectStore>,
    pending_store: Arc<dyn ObjectStore>,
    pending_dir: PathBuf,
    upload_tx: mpsc::UnboundedSender<Arc<BlockEntry>>,
    upload_rx: tokio::sync::Mutex<Option<mpsc::UnboundedReceiver<Arc<BlockEntry>>>>,
    pub metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
    closed: AtomicBool,
    /// Something was cut since the last WAL truncation.
    cut_since_truncation: AtomicBool,
    /// Cuts and truncations run one at a time (the background tick and shutdown may overlap).
    maintenance: tokio::sync::Mutex<()>,
    /// Per tenant, the end of a due log range being held back while it is written, and since
    /// when.
    log_cut_waits: parking_lot::Mutex<HashMap<String, (i64, Instant)>>,
}

impl Db {
    /// Opens the data directory: finds blocks in the object store and in the pending directory,
    /// replays the WAL into the heads. Blocking I/O: call from a blocking thread or at start-up.
    pub async fn open(
        config: DbConfig,
        store: Arc<dyn ObjectStore>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, DbError> {
        let pending_dir = config.data_dir.join("pending");
        let wal_dir = config.data_dir.join("wal");
        std::fs::create_dir_all(&pending_dir).map_err(io_err(&pending_dir))?;
        let pending_store = vigil_objstore::open_local(&pending_dir)?;

        // Blocks are listed before the WAL is replayed: replay skips what a listed log block
        // already holds (see `logs::ReplayCuts`).
        let stored_blocks = vigil_objstore::list_blocks(store.as_ref(), META_FILE).await?;
        let pending_blocks = vigil_objstore::list_blocks(pending_store.as_ref(), META_FILE).await?;
        let mut cuts = logs::ReplayCuts {
            known_blocks: stored_blocks
                .iter()
                .chain(&pending_blocks)
                .filter(|b| b.kind == LOGS_KIND)
                .map(|b| (b.tenant.clone(), b.ulid.clone()))
                .collect(),
            ..Default::default()
        };
        let heads: RwLock<HashMap<String, Arc<Head>>> = RwLock::default();
        let log_heads: RwLock<HashMap<String, Arc<LogHead>>> = RwLock::default();
        let mut replayed_entries = 0u64;
        let fsync_metrics = metrics.clone();
        let observer: vigil_wal::FsyncObserver =
            Arc::new(move |d: Duration| fsync_metrics.wal_fsync_seconds.observe(d.as_secs_f64()));
        let started = std::time::Instant::now();
        let mut replayed_samples = 0u64;
        let mut unknown_refs = 0u64;
        let mut series_cache: HashMap<String, Vec<Option<Arc<vigil_head::MemSeries>>>> =
            HashMap::new();
        let wal_options = config.wal.clone();
        let (wal, stats) = {
            let heads = &heads;
            let log_heads = &log_heads;
            let mut apply = |payload: &[u8]| match record::decode(payload) {
                Ok(Record::Series { tenant, series }) => {
                    let head = head_for(heads, &tenant);
                    for (id, labels) in series {
                        head.restore_series(id, labels);
                    }
                }
                Ok(Record::Samples { tenant, samples }) => {
                    let head = head_for(heads, &tenant);
                    // Series by id without the table lock for every sample.
                    let cache = series_cache.entry(tenant).or_default();
                    for (id, sample) in samples {
                        let slot = id as usize;
                        if cache.len() <= slot {
                            cache.resize(slot + 1, None);
                        }
                        if cache[slot].is_none() {
                            cache[slot] = head.get_by_id(id);
                        }
                        match &cache[slot] {
                            Some(series) => {
                                head.append(series, sample);
                                replayed_samples += 1;
                            }
                            None => unknown_refs += 1,
                        }
                    }
                }
                Ok(Record::Metadata { tenant, entries }) => {
                    head_for(heads, &tenant).set_metadata(entries)
                }
                Ok(log_record) => {
                    replayed_entries +=
                        logs::replay_log_record(log_heads, log_record, &mut unknown_refs, &mut cuts)
                }
                Err(e) => tracing::warn!(error = %e, "skipping undecodable wal record"),
            };
            Wal::open(&wal_dir, wal_options, observer, &mut apply)?
        };
        if unknown_refs > 0 {
            tracing::warn!(unknown_refs, "wal samples referred to unknown series");
        }
        tracing::info!(
            records = stats.records,
            bytes = stats.bytes,
            samples = replayed_samples,
            log_entries = replayed_entries,
            truncated_bytes = stats.truncated_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "wal replayed"
        );

        let (upload_tx, upload_rx) = mpsc::unbounded_channel();
        let (shutdown, _) = watch::channel(false);
        let log_block_cache = cache::BlockFileCache::new(config.log_block_cache_bytes);
        let metric_block_cache = cache::BlockFileCache::new(config.metric_block_cache_bytes);
        let metric_block_metadata = Arc::new(cache::BlockMetadataCache::new(
            config.metric_block_cache_bytes / 4,
        ));
        let log_read_caches = Arc::new(cache::LogReadCaches {
            row_groups: cache::LruCache::new(config.log_row_group_cache_bytes),
            // Decoded from the footers of the cached block files, kept beside them.
            line_indexes: cache::LruCache::new(config.log_block_cache_bytes / 4),
            metadata: cache::LruCache::new(config.log_block_cache_bytes / 4),
        });
        let db = Arc::new(Self {
            config,
            wal,
            heads,
            log_heads,
            ingest_barrier: tokio::sync::RwLock::new(()),
            catalog: Catalog::default(),
            log_catalog: Catalog::default(),
            log_block_cache,
            metric_block_cache,
            metric_block_metadata,
            log_read_caches,
            store,
            pending_store,
            pending_dir,
            upload_tx,
            upload_rx: tokio::sync::Mutex::new(Some(upload_rx)),
            metrics,
            shutdown,
            closed: AtomicBool::new(false),
            cut_since_truncation: AtomicBool::new(false),
            maintenance: tokio::sync::Mutex::new(()),
            log_cut_waits: parking_lot::Mutex::new(HashMap::new()),
        });
        db.load_blocks(stored_blocks, pending_blocks).await?;
        db.settle_replayed_cuts(cuts);
        db.refresh_gauges();
        Ok(db)
    }

    /// Registers the uploaded blocks, then the pending ones (queued for upload).
    async fn load_blocks(
        &self,
        stored: Vec<vigil_objstore::StoredBlock>,
        pending: Vec<vigil_objstore::StoredBlock>,
    ) -> Result<(), DbError> {
        for block in stored {
            let Some(catalog) = self.catalog_of(&block.kind) else {
                continue;
            };
            match load_block_index(self.store.as_ref(), &block).await {
                Ok(index) => catalog.add(Arc::new(BlockEntry {
                    index,
                    location: RwLock::new(BlockLocation::Uploaded),
                    cut_seq: 0,
                })),
                Err(e) => {
                    tracing::error!(tenant = %block.tenant, block = %block.ulid, error = %e, "cannot read uploaded block; skipping it")
                }
            }
        }
        for block in pending {
            let Some(catalog) = self.catalog_of(&block.kind) else {
                continue;
            };
            if catalog.contains(&block.tenant, &block.ulid) {
                // Uploaded before a crash removed the local copy.
                self.remove_pending(&block.tenant, &block.kind, &block.ulid);
                continue;
            }
            let loaded = load_block_index(self.pending_store.as_ref(), &block).await;
            let index = match loaded {
                Ok(index) => index,
                Err(e) => {
                    // Pending blocks are not uploaded yet, so the WAL still holds their samples.
                    tracing::warn!(tenant = %block.tenant, block = %block.ulid, error = %e,
                        "removing unreadable pending block; the wal still holds its samples");
                    self.remove_pending(&block.tenant, &block.kind, &block.ulid);
                    continue;
                }
            };
            let entry = Arc::new(BlockEntry {
                index,
                location: RwLock::new(BlockLocation::Pending),
                cut_seq: 0,
            });
            catalog.add(entry.clone());
            let _ = self.upload_tx.send(entry);
        }
        self.remove_incomplete_pending();
        Ok(())
    }

    /// Block directories without meta.json were being written when the process died; the WAL
    /// still holds their samples.
    fn remove_incomplete_pending(&self) {
        let Ok(tenants) = std::fs::read_dir(&self.pending_dir) else {
            return;
        };
        for tenant in tenants.flatten() {
            for kind in [METRICS_KIND, LOGS_KIND] {
                let blocks_dir = tenant.path().join(kind).join("blocks");
                let Ok(blocks) = std::fs::read_dir(&blocks_dir) else {
                    continue;
                };
                for block in blocks.flatten() {
                    if !block.path().join(META_FILE).exists() {
                        tracing::warn!(path = %block.path().display(), "removing incomplete block left by a crash");
                        let _ = std::fs::remove_dir_all(block.path());
                    }
                }
            }
        }
    }

    /// The catalog of a block kind; `None` for kinds this version does not read.
    fn catalog_of(&self, kind: &str) -> Option<&Catalog> {
        match kind {
            METRICS_KIND => Some(&self.catalog),
            LOGS_KIND => Some(&self.log_catalog),
            _ => None,
        }
    }

    /// Blocks cut but not yet confirmed by the object store, of every kind.
    fn pending_blocks(&self) -> usize {
        self.catalog.pending_count() + self.log_catalog.pending_count()
    }

    fn remove_pending(&self, tenant: &str, kind: &str, ulid: &str) {
        let dir = self
            .pending_dir
            .join(tenant)
            .join(kind)
            .join("blocks")
            .join(ulid);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(path = %dir.display(), error = %e, "cannot remove uploaded block's local copy");
        }
    }

    pub fn config(&self) -> &DbConfig {
        &self.config
    }

    /// The tenant's head, created on first use.
    pub fn head(&self, tenant: &TenantId) -> Arc<Head> {
        head_for(&self.heads, tenant.as_str())
    }

    fn existing_head(&self, tenant: &TenantId) -> Option<Arc<Head>> {
        self.heads.read().get(tenant.as_str()).cloned()
    }

    fn all_heads(&self) -> Vec<(String, Arc<Head>)> {
        self.heads
            .read()
            .iter()
            .map(|(t, h)| (t.clone(), h.clone()))
            .collect()
    }

    /// Updates the head and pending-block gauges (also done on every maintenance tick).
    pub fn refresh_gauges(&self) {
        for (tenant, head) in self.all_heads() {
            let label = metrics::TenantLabel { tenant };
            self.metrics
                .head_series
                .get_or_create(&label)
                .set(head.num_series() as i64);
            self.metrics
                .head_memory_bytes
                .get_or_create(&label)
                .set(head.memory_bytes() as i64);
        }
        for (tenant, head) in self.all_log_heads() {
            let label = metrics::TenantLabel { tenant };
            self.metrics
                .log_head_streams
                .get_or_create(&label)
                .set(head.num_streams() as i64);
            self.metrics
                .log_head_memory_bytes
                .get_or_create(&label)
                .set(head.memory_bytes() as i64);
        }
        self.metrics
            .blocks_pending_upload
            .set(self.pending_blocks() as i64);
    }

    /// Runs the cutter and the uploader until [`Db::shutdown`].
    pub async fn run_background(self: &Arc<Self>) {
        let uploader = {
            let db = self.clone();
            tokio::spawn(async move { db.upload_loop().await })
        };
        let mut stop = self.shutdown.subscribe();
        let mut tick = tokio::time::interval(self.config.maintenance_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            if let Err(e) = self.maintain(false).await {
                tracing::error!(error = %e, "head maintenance failed; will retry");
            }
        }
        let _ = uploader.await;
    }

    /// Cuts due ranges (all of the head when `everything`), then truncates the WAL when every
    /// cut block is uploaded.
    async fn maintain(&self, everything: bool) -> Result<(), DbError> {
        let _one_at_a_time = self.maintenance.lock().await;
        let block_ms = self.config.block_ms();
        let now_ms = now_ms();
        for (tenant, head) in self.all_heads() {
            while let (Some(min), Some(max)) = (head.min_ts(), head.max_ts()) {
                let Some(end) = cut_end(min, max, block_ms, now_ms, everything) else {
                    break;
                };
                self.cut(&tenant, &head, end).await?;
                if everything {
                    break;
                }
            }
        }
        for (tenant, head) in self.all_log_heads() {
            if everything {
                self.cut_all_logs(&tenant, &head).await?;
                continue;
            }
            while let (Some(min), Some(max)) = (head.min_ns(), head.max_ns()) {
                let (min_ms, max_ms) = (
                    min.div_euclid(logs::NS_PER_MS),
                    max.div_euclid(logs::NS_PER_MS),
                );
                let Some(end_ms) = cut_end(min_ms, max_ms, block_ms, now_ms, false) else {
                    break;
                };
                let end_ns = end_ms.saturating_mul(logs::NS_PER_MS);
                if !self.log_range_ready(&tenant, &head, end_ns) {
                    break;
                }
                self.cut_logs(&tenant, &head, end_ns).await?;
            }
        }
        // Gauges are refreshed when /metrics is scraped: walking every series each second
        // would cost queries and ingest CPU for numbers nobody reads in between.
        if self.cut_since_truncation.load(Ordering::Acquire) && self.pending_blocks() == 0 {
            self.truncate_wal().await?;
        }
        Ok(())
    }

    /// Whether the due log range ending at `end_ns` should be cut now: no entry arrived for it
    /// (or an earlier range) for `log_cut_idle`, or the head is over its memory limit, or the
    /// range has waited [`LOG_CUT_MAX_WAITS`] idle periods. Cutting a range while a backfill
    /// still writes it would split it into overlapping blocks and spend the encoding CPU while
    /// the writes need it.
    fn log_range_ready(&self, tenant: &str, head: &LogHead, end_ns: i64) -> bool {
        let idle = self.config.log_cut_idle;
        let limit = self.config.log_head_max_bytes;
        let written_recently = head
            .last_write_up_to(end_ns)
            .is_some_and(|at| at.elapsed() < idle);
        let ready = !written_recently || (limit > 0 && head.memory_bytes() >= limit);
        let mut waits = self.log_cut_waits.lock();
        if ready {
            waits.remove(tenant);
            return true;
        }
        let (waiting_end, since) = waits
            .entry(tenant.to_string())
            .or_insert((end_ns, Instant::now()));
        if *waiting_end != end_ns {
            (*waiting_end, *since) = (end_ns, Instant::now());
        }
        if since.elapsed() >= idle.saturating_mul(LOG_CUT_MAX_WAITS) {
            waits.remove(tenant);
            return true;
        }
        false
    }

    /// Cuts the whole log head (at shutdown) one block range at a time, so blocks stay aligned
    /// to the block duration and one cut holds one range.
    async fn cut_all_logs(&self, tenant: &str, head: &Arc<LogHead>) -> Result<(), DbError> {
        let block_ns = self.config.block_ms().saturating_mul(logs::NS_PER_MS);
        let Some(last) = head.max_ns() else {
            return Ok(());
        };
        let mut previous_end = i64::MIN;
        while let Some(min) = head.min_ns() {
            if min > last {
                break;
            }
            let mut end_ns = range_end(min, block_ns);
            if end_ns <= previous_end {
                // Entries arrived for a range already cut: take the rest in one block.
                end_ns = last.saturating_add(1);
            }
            self.cut_logs(tenant, head, end_ns).await?;
            if end_ns > last {
                break;
            }
            previous_end = end_ns;
        }
        Ok(())
    }

    /// Writes the head's samples before `end` as a block in the pending directory, makes it
    /// readable, then removes them from the head. Samples that arrived for that range during the
    /// cut stay in the head for a later block.
    async fn cut(&self, tenant: &str, head: &Arc<Head>, end: i64) -> Result<(), DbError> {
        let snapshot: Vec<_> = head
            .select(&[])
            .into_iter()
            .map(|s| (s.labels.clone(), s.samples(i64::MIN, end - 1)))
            .filter(|(_, samples)| !samples.is_empty())
            .collect();
        if snapshot.is_empty() {
            head.remove_cut(end, |_, _| false);
            return Ok(());
        }
        let tenant_owned = tenant.to_string();
        let pending_dir = self.pending_dir.clone();
        let (entry, snapshot) = run_low_priority(move || -> Result<_, DbError> {
            let mut snapshot = snapshot;
            snapshot.sort_by(|a, b| a.0.cmp(&b.0));
            let encoded = vigil_block::encode_block(
                &tenant_owned,
                snapshot.iter().map(|(l, s)| (l, s.as_slice())),
            )?;
            let index = write_pending_block(&pending_dir, &encoded, SERIES_FILE)?;
            Ok((
                Arc::new(BlockEntry {
                    index,
                    location: RwLock::new(BlockLocation::Pending),
                    cut_seq: 0,
                }),
                snapshot,
            ))
        })
        .await??;
        tracing::info!(
            tenant,
            block = entry.ulid(),
            min_time_ms = entry.index.meta.min_time_ms,
            max_time_ms = entry.index.meta.max_time_ms,
            series = entry.index.meta.num_series,
            samples = entry.index.meta.num_samples,
            "block cut"
        );
        self.catalog.add(entry.clone());
        self.metrics
            .blocks_cut
            .get_or_create(&metrics::TenantLabel {
                tenant: tenant.to_string(),
            })
            .inc();

        // Remove from the head exactly what the block holds.
        let in_block: HashMap<&vigil_model::Labels, &Vec<vigil_model::Sample>> =
            snapshot.iter().map(|(l, s)| (l, s)).collect();
        head.remove_cut(end, |series, sample| {
            in_block.get(&series.labels).is_some_and(|k| {
                k.binary_search_by_key(&sample.timestamp_ms, |x| x.timestamp_ms)
                    .is_ok()
            })
        });
        self.cut_since_truncation.store(true, Ordering::Release);
        let _ = self.upload_tx.send(entry);
        Ok(())
    }

    async fn upload_loop(self: Arc<Self>) {
        let Some(mut rx) = self.upload_rx.lock().await.take() else {
            return;
        };
        let stop = self.shutdown.subscribe();
        loop {
            let mut stopping = stop.clone();
            let entry = tokio::select! {
                entry = rx.recv() => entry,
                _ = stopping.wait_for(|s| *s) => None,
            };
            let Some(entry) = entry else { return };
            if *entry.location.read() == BlockLocation::Uploaded {
                continue;
            }
            match self.upload(&entry, &stop).await {
                Ok(true) => {}
                Ok(false) => {
                    if *stop.borrow() && self.closed.load(Ordering::Acquire) {
                        return;
                    }
                }
                Err(e) => tracing::error!(block = entry.ulid(), error = %e, "block upload failed"),
            }
        }
    }

    /// Uploads one pending block; meta.json goes last. Returns false when interrupted.
    async fn upload(
        &self,
        entry: &Arc<BlockEntry>,
        stop: &watch::Receiver<bool>,
    ) -> Result<bool, DbError> {
        let (tenant, ulid) = (entry.tenant().to_string(), entry.ulid().to_string());
        let kind = entry.index.meta.kind.clone();
        let files = entry.index.meta.files.iter().map(|f| f.name.as_str());
        for file in files.chain([META_FILE]) {
            let path = vigil_objstore::block_file(&tenant, &kind, &ulid, file);
            let bytes = vigil_objstore::get(self.pending_store.as_ref(), &path).await?;
            let ok = vigil_objstore::put_with_retry(
                self.store.as_ref(),
                &path,
                bytes,
                self.config.upload_backoff,
                |_| {
                    self.metrics.block_upload_failures.inc();
                },
                stop,
            )
            .await;
            if !ok {
                return Ok(false);
            }
        }
        *entry.location.write() = BlockLocation::Uploaded;
        self.remove_pending(&tenant, &kind, &ulid);
        self.metrics
            .blocks_uploaded
            .get_or_create(&metrics::TenantLabel {
                tenant: tenant.clone(),
            })
            .inc();
        self.metrics
            .blocks_pending_upload
            .set(self.pending_blocks() as i64);
        tracing::info!(tenant, kind, block = ulid, "block uploaded");
        Ok(true)
    }

    /// Replaces the WAL segments written so far by a checkpoint of what the heads still hold.
    async fn truncate_wal(&self) -> Result<(), DbError> {
        let segment = {
            let _exclusive = self.ingest_barrier.write().await;
            for (_, head) in self.all_heads() {
                head.remove_empty_series();
            }
            for (_, head) in self.all_log_heads() {
                head.remove_empty_streams();
            }
            self.wal.rotate().await?
        };
        self.cut_since_truncation.store(false, Ordering::Release);
        let heads = self.all_heads();
        let log_heads = self.all_log_heads();
        let wal = &self.wal;
        // Records are produced while the checkpoint is written: log heads are large.
        tokio::task::block_in_place(|| {
            let records = checkpoint_records(&heads)
                .into_iter()
                .chain(logs::log_checkpoint_records(log_heads));
            wal.checkpoint(segment, records)
        })?;
        self.metrics.wal_truncations.inc();
        tracing::info!(segment, "wal truncated behind checkpoint");
        Ok(())
    }

    /// Stops ingestion, cuts the whole head into blocks and tries to upload them within
    /// `upload_deadline`; what is not uploaded stays pending (and in the WAL) for the next start.
    pub async fn shutdown(&self, upload_deadline: Duration) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Wait for in-flight writes; new ones see `closed`.
        drop(self.ingest_barrier.write().await);
        // The final cut's working set then comes out of returned pages, not on top of them.
        release_freed_memory();
        if let Err(e) = self.maintain(true).await {
            tracing::error!(error = %e, "final block cut failed; the wal keeps the data");
        }
        let deadline = tokio::time::Instant::now() + upload_deadline;
        while self.pending_blocks() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if self.pending_blocks() == 0 && self.cut_since_truncation.load(Ordering::Acquire) {
            let _one_at_a_time = self.maintenance.lock().await;
            if let Err(e) = self.truncate_wal().await {
                tracing::warn!(error = %e, "final wal truncation failed");
            }
        } else if self.pending_blocks() > 0 {
            tracing::warn!(
                pending = self.pending_blocks(),
                "shutting down with blocks not yet uploaded; they upload on next start"
            );
        }
        let _ = self.shutdown.send(true);
        self.wal.close();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

fn head_for<H: Default>(heads: &RwLock<HashMap<String, Arc<H>>>, tenant: &str) -> Arc<H> {
    if let Some(head) = heads.read().get(tenant) {
        return head.clone();
    }
    heads
        .write()
        .entry(tenant.to_string())
        .or_insert_with(|| Arc::new(H::default()))
        .clone()
}

/// What returns freed memory to the system now, set once by the binary that picks the
/// allocator ([`set_release_freed_memory`]).
static RELEASE_FREED_MEMORY: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets what [`release_freed_memory`] calls: the allocator keeps freed pages for a while to
/// reuse them, which is right for ingest but not around a block cut, which frees a block
/// range's head memory at once and then builds the next block (at shutdown, one after another).
pub fn set_release_freed_memory(release: fn()) {
    let _ = RELEASE_FREED_MEMORY.set(release);
}

/// Tasks a block is read by when all of it is wanted: one per core.
pub(crate) fn read_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Returns the allocator's freed pages to the system, where the binary said how.
pub(crate) fn release_freed_memory() {
    if let Some(release) = RELEASE_FREED_MEMORY.get() {
        release();
    }
}

/// Runs block encoding on a thread of its own at the lowest CPU priority (nice 19), so that
/// ingest and queries win the cores while a cut compresses in the background.
pub(crate) async fn run_low_priority<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DbError> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("block-encoder".into())
        .spawn(move || {
            lower_thread_priority();
            let _ = done.send(work());
        })
        .map_err(|e| DbError::Task(format!("cannot start the block encoder thread: {e}")))?;
    result
        .await
        .map_err(|_| DbError::Task("the block encoder thread panicked".into()))
}

#[cfg(target_os = "linux")]
fn lower_thread_priority() {
    // On Linux a nice value belongs to the thread (task) whose id is given; this thread ends
    // with the work, so the lowered priority never leaks into other work.
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_thread_priority() {}

/// The end (exclusive) of the block-aligned range of length `block` holding `t` (any unit).
pub(crate) fn range_end(t: i64, block: i64) -> i64 {
    t.div_euclid(block).saturating_add(1).saturating_mul(block)
}

/// The end (exclusive, ms) of the next range to cut from a head holding `[min, max]`, or `None`
/// when nothing is due: a block-aligned range is due once the head reaches half a block past it
/// or the clock a whole block past it. With `everything`, the whole head.
fn cut_end(min: i64, max: i64, block_ms: i64, now_ms: i64, everything: bool) -> Option<i64> {
    if everything {
        return Some(max.saturating_add(1));
    }
    let end = range_end(min, block_ms);
    let due = max >= end + block_ms / 2 || now_ms >= end + block_ms;
    due.then_some(end)
}

/// The directory of a block waiting for upload.
pub(crate) fn pending_block_dir(
    pending_dir: &std::path::Path,
    tenant: &str,
    kind: &str,
    ulid: &str,
) -> PathBuf {
    pending_dir
        .join(tenant)
        .join(kind)
        .join("blocks")
        .join(ulid)
}

/// Writes an encoded block into the pending directory (each file under a temporary name, then
/// renamed, meta.json last, directory synced) and loads its index; `labels_file` is the file
/// that holds its label sets. Blocking I/O.
fn write_pending_block(
    pending_dir: &std::path::Path,
    encoded: &EncodedBlock,
    labels_file: &str,
) -> Result<BlockIndex, DbError> {
    let meta = &encoded.meta;
    let dir = pending_block_dir(pending_dir, &meta.tenant, &meta.kind, &meta.ulid);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    for (name, staged) in &encoded.staged {
        let path = dir.join(name);
        std::fs::rename(staged, &path).map_err(io_err(&path))?;
    }
    for (name, bytes) in &encoded.files {
        // meta.json marks the block complete: write under a temporary name and rename, so a
        // crash never leaves a partial file.
        let path = dir.join(name);
        let tmp = dir.join(format!("{name}.tmp"));
        let mut file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        std::io::Write::write_all(&mut file, bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    }
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(&dir))?;
    let file = |n: &str| {
        encoded
            .files
            .iter()
            .find(|(f, _)| *f == n)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    Ok(BlockIndex::load(
        meta.clone(),
        file(labels_file),
        &file(INDEX_FILE),
    )?)
}

fn checkpoint_records(heads: &[(String, Arc<Head>)]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    for (tenant, head) in heads {
        let snapshot = head.snapshot();
        for chunk in snapshot.chunks(1024) {
            let series: Vec<(u32, &vigil_model::Labels)> =
                chunk.iter().map(|(s, _)| (s.id, &s.labels)).collect();
            let mut buf = Vec::new();
            record::encode_series(&mut buf, tenant, &series);
            records.push(buf);
            let samples: Vec<(u32, vigil_model::Sample)> = chunk
                .iter()
                .flat_map(|(s, samples)| samples.iter().map(move |x| (s.id, *x)))
                .collect();
            if !samples.is_empty() {
                let mut buf = Vec::new();
                record::encode_samples(&mut buf, tenant, &samples);
                records.push(buf);
            }
        }
        let metadata: Vec<_> = head.metadata().into_iter().collect();
        if !metadata.is_empty() {
            let mut buf = Vec::new();
            record::encode_metadata(&mut buf, tenant, &metadata);
            records.push(buf);
        }
    }
    records
}

async fn load_block_index(
    store: &dyn ObjectStore,
    block: &vigil_objstore::StoredBlock,
) -> Result<BlockIndex, DbError> {
    let get =
        |file: &str| vigil_objstore::block_file(&block.tenant, &block.kind, &block.ulid, file);
    let labels_file = if block.kind == LOGS_KIND {
        STREAMS_FILE
    } else {
        SERIES_FILE
    };
    let meta = vigil_objstore::get(store, &get(META_FILE)).await?;
    let series: Bytes = vigil_objstore::get(store, &get(labels_file)).await?;
    let index = vigil_objstore::get(store, &get(INDEX_FILE)).await?;
    let meta = BlockIndex::parse_meta(&meta)?;
    Ok(
        tokio::task::spawn_blocking(move || BlockIndex::load(meta, series, &index))
            .await
            .map_err(|e| DbError::Task(e.to_string()))??,
    )
}

/// Nanoseconds since the Unix epoch, now (log entry time).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
