//! A byte-budgeted cache of block files read for queries. Blocks are immutable once written, so
//! a cached file never goes stale; the least recently used files leave when the budget is hit.

use std::collections::HashMap;

use bytes::Bytes;
use parking_lot::Mutex;

pub(crate) struct BlockFileCache {
    budget: usize,
    inner: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    files: HashMap<String, (Bytes, u64)>,
    bytes: usize,
    clock: u64,
}

impl BlockFileCache {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(CacheState::default()),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        let mut state = self.inner.lock();
        state.clock += 1;
        let now = state.clock;
        let (bytes, used) = state.files.get_mut(key)?;
        *used = now;
        Some(bytes.clone())
    }

    pub(crate) fn insert(&self, key: &str, bytes: Bytes) {
        if bytes.len() > self.budget {
            return;
        }
        let mut state = self.inner.lock();
        state.clock += 1;
        let now = state.clock;
        state.bytes += bytes.len();
        if let Some((old, _)) = state.files.insert(key.to_string(), (bytes, now)) {
            state.bytes -= old.len();
        }
        while state.bytes > self.budget {
            let Some(oldest) = state
                .files
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((evicted, _)) = state.files.remove(&oldest) {
                state.bytes -= evicted.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_budget_by_evicting_the_least_recently_used() {
        let cache = BlockFileCache::new(10);
        cache.insert("a", Bytes::from(vec![0; 4]));
        cache.insert("b", Bytes::from(vec![0; 4]));
        assert!(cache.get("a").is_some());
        cache.insert("c", Bytes::from(vec![0; 4]));
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        cache.insert("huge", Bytes::from(vec![0; 11]));
        assert!(cache.get("huge").is_none());
        let off = BlockFileCache::new(0);
        off.insert("a", Bytes::from(vec![0; 1]));
        assert!(off.get("a").is_none());
    }
}
