//! Byte-budgeted caches of what queries read from blocks: the files themselves and, for log
//! blocks, row groups decoded whole. Blocks are immutable once written, so a cached item never
//! goes stale; the least recently used items leave when the budget is hit.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use vigil_block::logs::{DecodedRowGroup, LineIndexes, RowGroupCache};
use vigil_block::{ArrowReaderMetadata, BlockError};

/// Items of `V` by key, holding at most `budget` bytes by their own account of their size.
pub(crate) struct LruCache<K, V> {
    budget: usize,
    inner: Mutex<CacheState<K, V>>,
}

struct CacheState<K, V> {
    /// Item, its size, when it was last used.
    items: HashMap<K, (V, usize, u64)>,
    bytes: usize,
    clock: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> LruCache<K, V> {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(CacheState {
                items: HashMap::new(),
                bytes: 0,
                clock: 0,
            }),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let mut state = self.inner.lock();
        state.clock += 1;
        let now = state.clock;
        let (item, _, used) = state.items.get_mut(key)?;
        *used = now;
        Some(item.clone())
    }

    /// The item under `key`, or the one `load` makes, kept at its `size`.
    pub(crate) fn get_or_load<E>(
        &self,
        key: &K,
        load: impl FnOnce() -> Result<V, E>,
        size: impl FnOnce(&V) -> usize,
    ) -> Result<V, E> {
        if let Some(item) = self.get(key) {
            return Ok(item);
        }
        let item = load()?;
        self.insert(key.clone(), item.clone(), size(&item));
        Ok(item)
    }

    /// Keeps `item` of `size` bytes, unless it alone is over the budget.
    pub(crate) fn insert(&self, key: K, item: V, size: usize) {
        if size > self.budget {
            return;
        }
        let mut state = self.inner.lock();
        state.clock += 1;
        let now = state.clock;
        state.bytes += size;
        if let Some((_, old, _)) = state.items.insert(key, (item, size, now)) {
            state.bytes -= old;
        }
        while state.bytes > self.budget {
            let Some(oldest) = state
                .items
                .iter()
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((_, evicted, _)) = state.items.remove(&oldest) {
                state.bytes -= evicted;
            }
        }
    }
}

/// Block files by block.
pub(crate) type BlockFileCache = LruCache<String, Bytes>;

/// Block files' parsed Parquet metadata by block.
pub(crate) type BlockMetadataCache = LruCache<String, ArrowReaderMetadata>;

/// What reads decode of log blocks' entries files: row groups decoded whole (by block and row
/// group), each file's line indexes and its parsed Parquet metadata.
pub(crate) struct LogReadCaches {
    pub row_groups: LruCache<(Arc<str>, usize), Arc<DecodedRowGroup>>,
    pub line_indexes: LruCache<Arc<str>, Arc<LineIndexes>>,
    pub metadata: LruCache<Arc<str>, ArrowReaderMetadata>,
}

/// The [`RowGroupCache`] of one block's entries file, for one query.
#[derive(Clone)]
pub(crate) struct BlockRowGroups {
    pub caches: Arc<LogReadCaches>,
    pub block: Arc<str>,
    /// Bytes of row groups the query's reads have put through the cache so far.
    pub admitted: Arc<AtomicUsize>,
}

impl RowGroupCache for BlockRowGroups {
    fn get(&self, row_group: usize) -> Option<Arc<DecodedRowGroup>> {
        self.caches.row_groups.get(&(self.block.clone(), row_group))
    }

    fn insert(&self, row_group: usize, decoded: Arc<DecodedRowGroup>) {
        let size = decoded.memory_size();
        let key = (self.block.clone(), row_group);
        self.caches.row_groups.insert(key, decoded, size);
    }

    /// One query's reads may put up to half the budget through the cache, leaving room for
    /// the other panels of a dashboard: a scan of everything caches what fits of its first
    /// blocks and reads the rest past the cache, instead of evicting all on every run.
    fn admits(&self, bytes: usize) -> bool {
        let limit = self.caches.row_groups.budget / 2;
        let before = self.admitted.fetch_add(bytes, Ordering::Relaxed);
        if limit > 0 && before.saturating_add(bytes) <= limit {
            return true;
        }
        self.admitted.fetch_sub(bytes, Ordering::Relaxed);
        false
    }

    fn line_indexes(&self, load: &mut dyn FnMut() -> Arc<LineIndexes>) -> Arc<LineIndexes> {
        self.caches
            .line_indexes
            .get_or_load(
                &self.block,
                || Ok::<_, std::convert::Infallible>(load()),
                |indexes| indexes.memory_size(),
            )
            .unwrap_or_else(|never| match never {})
    }

    fn reader_metadata(
        &self,
        load: &mut dyn FnMut() -> Result<ArrowReaderMetadata, BlockError>,
    ) -> Result<ArrowReaderMetadata, BlockError> {
        self.caches
            .metadata
            .get_or_load(&self.block, load, |metadata| {
                metadata.metadata().memory_size()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_puts_at_most_half_the_row_group_budget_through_the_cache() {
        let caches = |budget: usize| {
            Arc::new(LogReadCaches {
                row_groups: LruCache::new(budget),
                line_indexes: LruCache::new(budget),
                metadata: LruCache::new(budget),
            })
        };
        let reads = |caches: &Arc<LogReadCaches>| BlockRowGroups {
            caches: caches.clone(),
            block: Arc::from("block"),
            admitted: Arc::new(AtomicUsize::new(0)),
        };
        let shared = caches(100);
        let query = reads(&shared);
        assert!(query.admits(30));
        assert!(!query.admits(30), "30 + 30 is over half of 100");
        assert!(query.admits(20), "what was refused is not counted");
        assert!(!query.admits(1));
        // Another query (another block of it shares the count).
        let other_block = BlockRowGroups {
            block: Arc::from("other"),
            ..query.clone()
        };
        assert!(!other_block.admits(1));
        assert!(reads(&shared).admits(50), "the next query starts afresh");
        assert!(
            !reads(&caches(0)).admits(0),
            "a zero budget turns the cache off"
        );
    }

    #[test]
    fn keeps_the_budget_by_evicting_the_least_recently_used() {
        let cache = BlockFileCache::new(10);
        let file = |n: usize| Bytes::from(vec![0; n]);
        cache.insert("a".into(), file(4), 4);
        cache.insert("b".into(), file(4), 4);
        assert!(cache.get(&"a".into()).is_some());
        cache.insert("c".into(), file(4), 4);
        assert!(
            cache.get(&"b".into()).is_none(),
            "b was the least recently used"
        );
        assert!(cache.get(&"a".into()).is_some() && cache.get(&"c".into()).is_some());
        cache.insert("huge".into(), file(11), 11);
        assert!(cache.get(&"huge".into()).is_none());
        // Replacing an item accounts its new size only.
        cache.insert("a".into(), file(6), 6);
        assert!(cache.get(&"a".into()).is_some() && cache.get(&"c".into()).is_some());
        let off = BlockFileCache::new(0);
        off.insert("a".into(), file(1), 1);
        assert!(off.get(&"a".into()).is_none());
    }
}
