//! The head holds a tenant's recent samples in memory, compressed, from the moment a write is
//! durable until the range is cut into a block. Series are found through a roaring-bitmap label
//! index. Samples arriving in order go into XOR chunks; late samples inside the out-of-order
//! window go into a small sorted buffer merged on read and on cut.

mod chunk;
pub mod logs;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use vigil_index::Postings;
use vigil_model::{Labels, Matcher, MetricMetadata, PrehashedKey, Sample};

pub use chunk::XorChunk;

/// Why a sample cannot enter the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendError {
    /// Older than the series' newest sample by more than the out-of-order window.
    OutOfOrder,
    /// Same timestamp as a stored sample, different value.
    DuplicateTimestamp,
}

/// What appending a valid sample will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendCheck {
    /// The sample is new.
    New,
    /// The exact sample is already stored: accepted, nothing to write.
    AlreadyStored,
}

/// One series of the head.
pub struct MemSeries {
    pub id: u32,
    pub labels: Labels,
    data: Mutex<SeriesData>,
}

#[derive(Default)]
struct SeriesData {
    closed: Vec<XorChunk>,
    open: XorChunk,
    /// Late samples, sorted by timestamp, none equal to a chunk sample's timestamp.
    out_of_order: Vec<Sample>,
}

impl SeriesData {
    fn max_ts(&self) -> Option<i64> {
        let chunk_max = if !self.open.is_empty() {
            Some(self.open.max_ts())
        } else {
            self.closed.last().map(XorChunk::max_ts)
        };
        let ooo_max = self.out_of_order.last().map(|s| s.timestamp_ms);
        chunk_max.max(ooo_max)
    }

    fn chunk_max_ts(&self) -> Option<i64> {
        if !self.open.is_empty() {
            Some(self.open.max_ts())
        } else {
            self.closed.last().map(XorChunk::max_ts)
        }
    }

    fn min_ts(&self) -> Option<i64> {
        let chunk_min = self
            .closed
            .first()
            .map(XorChunk::min_ts)
            .or_else(|| (!self.open.is_empty()).then(|| self.open.min_ts()));
        let ooo_min = self.out_of_order.first().map(|s| s.timestamp_ms);
        match (chunk_min, ooo_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn is_empty(&self) -> bool {
        self.open.is_empty() && self.closed.is_empty() && self.out_of_order.is_empty()
    }

    /// The stored value at `ts`, if any.
    fn value_at(&self, ts: i64) -> Option<f64> {
        if let Ok(i) = self
            .out_of_order
            .binary_search_by_key(&ts, |s| s.timestamp_ms)
        {
            return Some(self.out_of_order[i].value);
        }
        let mut decoded = Vec::new();
        for chunk in self.closed.iter().chain(std::iter::once(&self.open)) {
            if !chunk.is_empty() && chunk.min_ts() <= ts && ts <= chunk.max_ts() {
                chunk.decode_into(&mut decoded);
                return decoded
                    .iter()
                    .find(|s| s.timestamp_ms == ts)
                    .map(|s| s.value);
            }
        }
        None
    }

    fn check(&self, sample: &Sample, ooo_window_ms: i64) -> Result<AppendCheck, AppendError> {
        let Some(max_ts) = self.max_ts() else {
            return Ok(AppendCheck::New);
        };
        if sample.timestamp_ms > max_ts {
            return Ok(AppendCheck::New);
        }
        if sample.timestamp_ms < max_ts.saturating_sub(ooo_window_ms) {
            return Err(AppendError::OutOfOrder);
        }
        match self.value_at(sample.timestamp_ms) {
            Some(v) if v.to_bits() == sample.value.to_bits() => Ok(AppendCheck::AlreadyStored),
            Some(_) => Err(AppendError::DuplicateTimestamp),
            None => Ok(AppendCheck::New),
        }
    }

    /// Inserts without the window check (replay and validated writes). Returns whether a sample
    /// was added; a sample whose timestamp is taken keeps the stored value.
    fn insert(&mut self, sample: Sample) -> bool {
        match self.chunk_max_ts() {
            Some(max) if sample.timestamp_ms <= max => {
                if self.value_at(sample.timestamp_ms).is_some() {
                    return false;
                }
                let pos = self
                    .out_of_order
                    .partition_point(|s| s.timestamp_ms < sample.timestamp_ms);
                self.out_of_order.insert(pos, sample);
                true
            }
            _ => {
                if self.open.is_full() {
                    let mut full = std::mem::take(&mut self.open);
                    full.shrink();
                    self.closed.push(full);
                }
                // An out-of-order sample newer than every chunk sample stays valid: the buffer
                // is merged on read. Keep the chunk strictly increasing.
                if self
                    .out_of_order
                    .binary_search_by_key(&sample.timestamp_ms, |s| s.timestamp_ms)
                    .is_ok()
                {
                    return false;
                }
                self.open.append(sample);
                true
            }
        }
    }

    /// All samples in `[mint, maxt]`, sorted by time.
    fn samples(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
        let start = out.len();
        let chunks = || {
            self.closed
                .iter()
                .chain(std::iter::once(&self.open))
                .filter(|c| !c.is_empty() && c.max_ts() >= mint && c.min_ts() <= maxt)
        };
        out.reserve(chunks().map(XorChunk::len).sum());
        for chunk in chunks() {
            // Decode straight into `out`; trim only chunks that stick out of the range.
            let from = out.len();
            chunk.decode_into(out);
            if chunk.min_ts() < mint || chunk.max_ts() > maxt {
                let mut kept = from;
                for i in from..out.len() {
                    let s = out[i];
                    if s.timestamp_ms >= mint && s.timestamp_ms <= maxt {
                        out[kept] = s;
                        kept += 1;
                    }
                }
                out.truncate(kept);
            }
        }
        let late = self
            .out_of_order
            .iter()
            .filter(|s| s.timestamp_ms >= mint && s.timestamp_ms <= maxt);
        let mut any_late = false;
        for s in late {
            out.push(*s);
            any_late = true;
        }
        if any_late {
            out[start..].sort_by_key(|s| s.timestamp_ms);
        }
    }

    /// Removes and returns every sample older than `end`.
    /// Removes the samples older than `end` that `taken` accepts, atomically for this series;
    /// returns how many were removed.
    fn remove_before(&mut self, end: i64, taken: impl Fn(&Sample) -> bool) -> usize {
        let mut all = Vec::new();
        self.samples(i64::MIN, i64::MAX, &mut all);
        let before = all.len();
        all.retain(|s| s.timestamp_ms >= end || !taken(s));
        let removed = before - all.len();
        if removed == 0 {
            return 0;
        }
        *self = SeriesData::default();
        for s in all {
            self.insert(s);
        }
        removed
    }

    fn bytes(&self) -> usize {
        self.closed.iter().map(XorChunk::bytes).sum::<usize>()
            + self.open.bytes()
            + self.out_of_order.capacity() * std::mem::size_of::<Sample>()
    }
}

impl MemSeries {
    pub fn samples(&self, mint: i64, maxt: i64) -> Vec<Sample> {
        let mut out = Vec::new();
        self.data.lock().samples(mint, maxt, &mut out);
        out
    }

    /// [`samples`](Self::samples) appended to `out` (a buffer reused across series).
    pub fn samples_into(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
        self.data.lock().samples(mint, maxt, out);
    }

    pub fn check(&self, sample: &Sample, ooo_window_ms: i64) -> Result<AppendCheck, AppendError> {
        self.data.lock().check(sample, ooo_window_ms)
    }

    pub fn max_ts(&self) -> Option<i64> {
        self.data.lock().max_ts()
    }
}

/// What a [`SeriesTable`] keys: an id and a label set (a metric series or a log stream).
pub(crate) trait Keyed {
    fn id(&self) -> u32;
    fn labels(&self) -> &Labels;
}

impl Keyed for MemSeries {
    fn id(&self) -> u32 {
        self.id
    }
    fn labels(&self) -> &Labels {
        &self.labels
    }
}

/// Series (or streams) by label-set hash and by id, with their postings.
pub(crate) struct SeriesTable<T> {
    /// Label-set hash → entries with that hash (almost always one).
    by_hash: HashMap<u64, Vec<Arc<T>>, BuildHasherDefault<PrehashedKey>>,
    by_id: FxHashMap<u32, Arc<T>>,
    postings: Postings,
    next_id: u32,
}

impl<T> Default for SeriesTable<T> {
    fn default() -> Self {
        Self {
            by_hash: HashMap::default(),
            by_id: FxHashMap::default(),
            postings: Postings::default(),
            next_id: 0,
        }
    }
}

impl<T: Keyed> SeriesTable<T> {
    fn find(&self, hash: u64, labels: &Labels) -> Option<&Arc<T>> {
        self.by_hash
            .get(&hash)?
            .iter()
            .find(|s| s.labels() == labels)
    }

    fn find_pairs(&self, hash: u64, pairs: &[(&str, &str)]) -> Option<&Arc<T>> {
        self.by_hash
            .get(&hash)?
            .iter()
            .find(|s| s.labels().equals_pairs(pairs))
    }

    fn insert(&mut self, hash: u64, item: T) -> Arc<T> {
        let item = Arc::new(item);
        let id = item.id();
        self.postings.add(id, item.labels());
        self.by_hash.entry(hash).or_default().push(item.clone());
        self.by_id.insert(id, item.clone());
        self.next_id = self.next_id.max(id.saturating_add(1));
        item
    }

    /// Entries matching every matcher.
    fn select(&self, matchers: &[Matcher]) -> Vec<Arc<T>> {
        let ids = self.postings.select(matchers);
        ids.iter()
            .filter_map(|id| self.by_id.get(&id).cloned())
            .collect()
    }

    /// Label names (or values of `name`) over the entries matching `matchers`.
    fn label_names(&self, matchers: &[Matcher]) -> Vec<String> {
        let ids = self.postings.select(matchers);
        self.postings.label_names(&ids)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Vec<String> {
        let ids: RoaringBitmap = self.postings.select(matchers);
        self.postings.label_values(name, &ids)
    }

    /// Removes every entry `empty` says holds nothing; returns how many.
    fn remove_where(&mut self, empty: impl Fn(&T) -> bool) -> usize {
        let gone: Vec<Arc<T>> = self.by_id.values().filter(|s| empty(s)).cloned().collect();
        for item in &gone {
            self.remove(item);
        }
        gone.len()
    }

    fn remove(&mut self, item: &T) {
        self.by_id.remove(&item.id());
        self.postings.remove(item.id(), item.labels());
        let hash = labels_hash(item.labels());
        if let Some(ids) = self.by_hash.get_mut(&hash) {
            ids.retain(|x| x.id() != item.id());
            if ids.is_empty() {
                self.by_hash.remove(&hash);
            }
        }
    }
}

/// A series with this id and labels, not yet in any table.
fn new_series(id: u32, labels: Labels) -> MemSeries {
    MemSeries {
        id,
        labels,
        data: Mutex::new(SeriesData::default()),
    }
}

fn labels_hash(labels: &Labels) -> u64 {
    labels.fx_hash()
}

/// The series limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesLimitReached {
    pub limit: usize,
}

/// A tenant's head.
#[derive(Default)]
pub struct Head {
    table: RwLock<SeriesTable<MemSeries>>,
    metadata: RwLock<HashMap<String, MetricMetadata>>,
    min_ts: AtomicI64Opt,
    max_ts: AtomicI64Opt,
    samples_appended: AtomicU64,
}

/// An i64 where `i64::MIN`/`MAX` sentinels mean "none yet".
pub(crate) struct AtomicI64Opt(AtomicI64);

impl Default for AtomicI64Opt {
    fn default() -> Self {
        Self(AtomicI64::new(i64::MIN))
    }
}

/// Widens a time range to include `ts`; read-mostly so concurrent writers do not fight over the
/// cache line when the range does not change.
pub(crate) fn widen_range(min: &AtomicI64Opt, max: &AtomicI64Opt, ts: i64) {
    let current = min.0.load(Ordering::Acquire);
    if current == i64::MIN || ts < current {
        let _ = min
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                (m == i64::MIN || ts < m).then_some(ts)
            });
    }
    if ts > max.0.load(Ordering::Acquire) {
        max.0.fetch_max(ts, Ordering::AcqRel);
    }
}

impl AtomicI64Opt {
    pub(crate) fn get(&self) -> Option<i64> {
        let v = self.0.load(Ordering::Acquire);
        (v != i64::MIN).then_some(v)
    }
    pub(crate) fn set(&self, v: Option<i64>) {
        self.0.store(v.unwrap_or(i64::MIN), Ordering::Release);
    }
}

impl Head {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn num_series(&self) -> usize {
        self.table.read().by_id.len()
    }

    pub fn min_ts(&self) -> Option<i64> {
        self.min_ts.get()
    }

    pub fn max_ts(&self) -> Option<i64> {
        self.max_ts.get()
    }

    /// The existing series with these labels.
    pub fn get(&self, labels: &Labels) -> Option<Arc<MemSeries>> {
        self.table.read().find(labels_hash(labels), labels).cloned()
    }

    pub fn get_by_id(&self, id: u32) -> Option<Arc<MemSeries>> {
        self.table.read().by_id.get(&id).cloned()
    }

    /// Finds or creates the series for each label set, given as its [`vigil_model::labels_hash`]
    /// and borrowed pairs (sorted, valid). `on_created` runs under the table's write lock with
    /// the series created by this call, before any other writer can see them, so the caller can
    /// log them ahead of samples that refer to them. Label sets beyond `max_series`
    /// (0 = unlimited) get `None`.
    pub fn get_or_create<E>(
        &self,
        wanted: &[(u64, &[(&str, &str)])],
        max_series: usize,
        on_created: impl FnOnce(&[(u32, &Labels)]) -> Result<(), E>,
    ) -> Result<Vec<Option<Arc<MemSeries>>>, E> {
        {
            let table = self.table.read();
            let found: Vec<_> = wanted
                .iter()
                .map(|(hash, pairs)| table.find_pairs(*hash, pairs).cloned())
                .collect();
            if found.iter().all(Option::is_some) {
                return Ok(found);
            }
        }
        let mut table = self.table.write();
        let mut result = Vec::with_capacity(wanted.len());
        let mut created = Vec::new();
        for (hash, pairs) in wanted {
            if let Some(s) = table.find_pairs(*hash, pairs) {
                result.push(Some(s.clone()));
                continue;
            }
            if max_series > 0 && table.by_id.len() >= max_series {
                result.push(None);
                continue;
            }
            let id = table.next_id;
            let labels = Labels::from_sorted(
                pairs
                    .iter()
                    .map(|(n, v)| vigil_model::Label::new(*n, *v))
                    .collect(),
            );
            let series = table.insert(*hash, new_series(id, labels));
            created.push(series.clone());
            result.push(Some(series));
        }
        if !created.is_empty() {
            let refs: Vec<(u32, &Labels)> = created.iter().map(|s| (s.id, &s.labels)).collect();
            on_created(&refs)?;
        }
        Ok(result)
    }

    /// Restores a series under a known id (WAL replay).
    pub fn restore_series(&self, id: u32, labels: Labels) {
        let mut table = self.table.write();
        let hash = labels_hash(&labels);
        if table.find(hash, &labels).is_some() || table.by_id.contains_key(&id) {
            return;
        }
        table.insert(hash, new_series(id, labels));
    }

    /// Stores a sample that was validated and made durable (or replayed).
    pub fn append(&self, series: &MemSeries, sample: Sample) {
        if series.data.lock().insert(sample) {
            self.samples_appended.fetch_add(1, Ordering::Relaxed);
            self.note_timestamp(sample.timestamp_ms);
        }
    }

    fn note_timestamp(&self, ts: i64) {
        widen_range(&self.min_ts, &self.max_ts, ts);
    }

    pub fn set_metadata(&self, entries: impl IntoIterator<Item = (String, MetricMetadata)>) {
        let mut metadata = self.metadata.write();
        for (family, meta) in entries {
            metadata.insert(family, meta);
        }
    }

    pub fn metadata(&self) -> HashMap<String, MetricMetadata> {
        self.metadata.read().clone()
    }

    /// Series matching every matcher.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        self.table.read().select(matchers)
    }

    /// Label names (or values of `name`) over the series matching `matchers`.
    pub fn label_names(&self, matchers: &[Matcher]) -> Vec<String> {
        self.table.read().label_names(matchers)
    }

    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Vec<String> {
        self.table.read().label_values(name, matchers)
    }

    /// Removes the samples older than `end` that a block now holds: `in_block(series, sample)`
    /// decides. Each series changes under its own lock, so a reader sees a sample either here or
    /// (already) in the block, and samples that arrived during the cut stay.
    pub fn remove_cut(&self, end: i64, in_block: impl Fn(&MemSeries, &Sample) -> bool) {
        let series: Vec<Arc<MemSeries>> = self.table.read().by_id.values().cloned().collect();
        let mut min_left: Option<i64> = None;
        for s in series {
            let mut data = s.data.lock();
            data.remove_before(end, |x| in_block(&s, x));
            if let Some(m) = data.min_ts() {
                min_left = Some(min_left.map_or(m, |x| x.min(m)));
            }
        }
        // Writes racing this may have set an older minimum; they win through fetch_min.
        self.min_ts.set(min_left);
        if min_left.is_none() {
            self.max_ts.set(None);
        }
    }

    /// Drops series that hold no samples. The caller must keep writers out while this runs.
    pub fn remove_empty_series(&self) -> usize {
        self.table
            .write()
            .remove_where(|s| s.data.lock().is_empty())
    }

    /// Every series with all its samples, for a WAL checkpoint.
    pub fn snapshot(&self) -> Vec<(Arc<MemSeries>, Vec<Sample>)> {
        let series: Vec<Arc<MemSeries>> = self.table.read().by_id.values().cloned().collect();
        series
            .into_iter()
            .map(|s| {
                let samples = s.samples(i64::MIN, i64::MAX);
                (s, samples)
            })
            .collect()
    }

    /// Approximate bytes held: labels, index and compressed samples.
    pub fn memory_bytes(&self) -> usize {
        let table = self.table.read();
        table
            .by_id
            .values()
            .map(|s| {
                s.labels.heap_bytes()
                    + s.data.lock().bytes()
                    + std::mem::size_of::<MemSeries>()
                    + 64
            })
            .sum()
    }

    /// Samples stored since start (after de-duplication).
    pub fn samples_appended(&self) -> u64 {
        self.samples_appended.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::{Label, MatchOp};

    fn labels(name: &str, job: &str) -> Labels {
        Labels::from_unsorted(vec![Label::new("__name__", name), Label::new("job", job)])
    }

    fn pairs(l: &Labels) -> Vec<(&str, &str)> {
        l.iter()
            .map(|x| (x.name.as_str(), x.value.as_str()))
            .collect()
    }

    fn create(head: &Head, l: &Labels) -> Arc<MemSeries> {
        let p = pairs(l);
        head.get_or_create::<()>(&[(l.fx_hash(), &p)], 0, |_| Ok(()))
            .unwrap()[0]
            .clone()
            .unwrap()
    }

    #[test]
    fn late_samples_merge_in_order_and_duplicates_are_detected() {
        let head = Head::new();
        let s = create(&head, &labels("up", "a"));
        for ts in [1000, 2000, 4000] {
            head.append(&s, Sample::new(ts, ts as f64));
        }
        assert_eq!(
            s.check(&Sample::new(3000, 3.0), 60_000),
            Ok(AppendCheck::New)
        );
        head.append(&s, Sample::new(3000, 3.0));
        assert_eq!(
            s.check(&Sample::new(2000, 2000.0), 60_000),
            Ok(AppendCheck::AlreadyStored)
        );
        assert_eq!(
            s.check(&Sample::new(2000, 1.0), 60_000),
            Err(AppendError::DuplicateTimestamp)
        );
        assert_eq!(
            s.check(&Sample::new(4000 - 60_001, 1.0), 60_000),
            Err(AppendError::OutOfOrder)
        );
        let ts: Vec<i64> = s
            .samples(0, i64::MAX)
            .iter()
            .map(|s| s.timestamp_ms)
            .collect();
        assert_eq!(ts, vec![1000, 2000, 3000, 4000]);
    }

    #[test]
    fn remove_cut_takes_only_what_the_block_holds() {
        let head = Head::new();
        let a = create(&head, &labels("up", "a"));
        let b = create(&head, &labels("up", "b"));
        for ts in (0..500).map(|i| i * 10) {
            head.append(&a, Sample::new(ts, 1.0));
            head.append(&b, Sample::new(ts + 5, 2.0));
        }
        // Samples at odd multiples of 10 ms "arrived during the cut" and are not in the block.
        head.remove_cut(2500, |_, s| {
            s.timestamp_ms % 20 == 0 || s.timestamp_ms % 10 == 5
        });
        assert_eq!(a.samples(0, i64::MAX).len(), 250 + 125);
        assert_eq!(b.samples(0, i64::MAX).len(), 250);
        assert_eq!(head.min_ts(), Some(10));
        head.remove_cut(i64::MAX, |_, _| true);
        assert_eq!(head.remove_empty_series(), 2);
        assert_eq!(head.num_series(), 0);
    }

    #[test]
    fn series_limit_leaves_extra_series_uncreated() {
        let head = Head::new();
        let a = labels("up", "a");
        let b = labels("up", "b");
        let (pa, pb) = (pairs(&a), pairs(&b));
        let got = head
            .get_or_create::<()>(&[(a.fx_hash(), &pa), (b.fx_hash(), &pb)], 1, |_| Ok(()))
            .unwrap();
        assert!(got[0].is_some() && got[1].is_none());
        let m = Matcher::new(MatchOp::Equal, "job", "a").unwrap();
        assert_eq!(head.select(&[m]).len(), 1);
    }
}
