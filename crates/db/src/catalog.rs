//! The blocks a querier can read, per tenant: their index in memory, and where their files are
//! (local pending directory until the upload is confirmed, then the object store).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use vigil_block::BlockIndex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockLocation {
    /// Written to `<data-dir>/pending`, not yet confirmed by the object store.
    Pending,
    Uploaded,
}

pub struct BlockEntry {
    pub index: BlockIndex,
    pub location: RwLock<BlockLocation>,
    /// For a log block cut by this process: the number of its cut in the tenant's log head
    /// (see `LogHead::cut_generation`); 0 for blocks found at start and for metric blocks.
    pub cut_seq: u64,
}

impl BlockEntry {
    pub fn tenant(&self) -> &str {
        &self.index.meta.tenant
    }

    pub fn ulid(&self) -> &str {
        &self.index.meta.ulid
    }
}

#[derive(Default)]
pub struct Catalog {
    by_tenant: RwLock<HashMap<String, Vec<Arc<BlockEntry>>>>,
}

impl Catalog {
    pub fn add(&self, entry: Arc<BlockEntry>) {
        let mut map = self.by_tenant.write();
        let blocks = map.entry(entry.tenant().to_string()).or_default();
        if !blocks.iter().any(|b| b.ulid() == entry.ulid()) {
            blocks.push(entry);
        }
    }

    pub fn contains(&self, tenant: &str, ulid: &str) -> bool {
        self.by_tenant
            .read()
            .get(tenant)
            .is_some_and(|b| b.iter().any(|e| e.ulid() == ulid))
    }

    /// Blocks of `tenant` overlapping `[mint, maxt]`.
    pub fn overlapping(&self, tenant: &str, mint: i64, maxt: i64) -> Vec<Arc<BlockEntry>> {
        self.by_tenant
            .read()
            .get(tenant)
            .map(|blocks| {
                blocks
                    .iter()
                    .filter(|b| b.index.overlaps(mint, maxt))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn pending_count(&self) -> usize {
        self.by_tenant
            .read()
            .values()
            .flatten()
            .filter(|b| *b.location.read() == BlockLocation::Pending)
            .count()
    }
}
