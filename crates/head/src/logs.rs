//! The log head: a tenant's recent log entries, from the moment a push is durable until its
//! range is cut into a log block. Streams are label sets found through the same roaring-bitmap
//! index as metric series. Each stream appends entries to an open buffer (in arrival order, which
//! may be out of order within the window); a full buffer is sorted by time and sealed into a
//! zstd-compressed chunk, so the head holds compressed text. A cut moves the entries before its
//! end into a `cutting` set that stays readable until the block is registered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use vigil_model::{Labels, LogEntry, LogReadFilter, Matcher};

use crate::{labels_hash, widen_range, AtomicI64Opt, Keyed, SeriesTable};

/// Raw bytes (lines and metadata) an open buffer holds before it is sealed into a chunk.
const CHUNK_TARGET_BYTES: usize = 256 * 1024;
/// zstd level of head chunks: fast enough for the ingest path, about 5x smaller than the text.
const CHUNK_ZSTD_LEVEL: i32 = 1;

/// Why an entry cannot enter its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAppendError {
    /// Older than the stream's newest entry by more than the out-of-order window.
    TooFarBehind { oldest_acceptable_ns: i64 },
}

/// One stream of the log head.
pub struct MemStream {
    pub id: u32,
    pub labels: Labels,
    data: Mutex<StreamData>,
}

impl Keyed for MemStream {
    fn id(&self) -> u32 {
        self.id
    }
    fn labels(&self) -> &Labels {
        &self.labels
    }
}

#[derive(Default)]
struct StreamData {
    sealed: Vec<LogChunk>,
    /// In arrival order.
    open: Vec<LogEntry>,
    open_bytes: usize,
    /// Entries being written into a block: readable until the block is.
    cutting: Vec<LogChunk>,
    /// Newest timestamp accepted, kept across cuts: the out-of-order window is measured from it.
    newest_ns: Option<i64>,
    /// An entry arrived at or before the newest one (out of order, a retried push, a WAL
    /// replay): the stream may hold exact repeats, which only their lines tell apart.
    may_repeat: bool,
}

/// Entries sorted by time, encoded and compressed.
struct LogChunk {
    min_ns: i64,
    max_ns: i64,
    raw_bytes: usize,
    data: Box<[u8]>,
}

impl LogChunk {
    /// Seals entries (sorted here) into a chunk; `None` when there are none.
    fn seal(mut entries: Vec<LogEntry>) -> Option<LogChunk> {
        sort_and_dedupe(&mut entries);
        let (first, last) = (entries.first()?, entries.last()?);
        let (min_ns, max_ns) = (first.timestamp_ns, last.timestamp_ns);
        let mut raw = Vec::with_capacity(entries.iter().map(entry_bytes).sum::<usize>() + 16);
        put_uvarint(&mut raw, entries.len() as u64);
        let mut previous = min_ns;
        for entry in &entries {
            put_uvarint(&mut raw, entry.timestamp_ns.wrapping_sub(previous) as u64);
            previous = entry.timestamp_ns;
            put_bytes(&mut raw, entry.line.as_bytes());
            put_uvarint(&mut raw, entry.structured_metadata.len() as u64);
            for (name, value) in &entry.structured_metadata {
                put_bytes(&mut raw, name.as_bytes());
                put_bytes(&mut raw, value.as_bytes());
            }
        }
        // Compressing into memory cannot fail short of allocation failure; keep the raw
        // encoding (flagged by the first byte) if it somehow does.
        let data = match compress_chunk(&raw) {
            Ok(mut compressed) => {
                compressed.insert(0, 1);
                compressed
            }
            Err(_) => {
                raw.insert(0, 0);
                raw.clone()
            }
        };
        Some(LogChunk {
            min_ns,
            max_ns,
            raw_bytes: raw.len(),
            data: data.into_boxed_slice(),
        })
    }

    fn overlaps(&self, min_ns: i64, max_ns: i64) -> bool {
        self.min_ns <= max_ns && self.max_ns >= min_ns
    }

    /// The chunk's entries, sorted by time.
    fn entries(&self) -> Vec<LogEntry> {
        self.entries_where(i64::MIN, i64::MAX, &LogReadFilter::default())
    }

    /// The chunk's entries in `[min_ns, max_ns]` that `filter` keeps, sorted by time.
    fn entries_where(&self, min_ns: i64, max_ns: i64, filter: &LogReadFilter) -> Vec<LogEntry> {
        let raw = match self.data.split_first() {
            Some((1, compressed)) => {
                zstd::bulk::decompress(compressed, self.raw_bytes).unwrap_or_default()
            }
            Some((_, raw)) => raw.to_vec(),
            None => Vec::new(),
        };
        decode_entries(&raw, self.min_ns, min_ns, max_ns, filter).unwrap_or_default()
    }
}

thread_local! {
    /// One compression context per thread: a fresh one per chunk would set up its tables anew.
    static CHUNK_COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress_chunk(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    CHUNK_COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Compressor::new(CHUNK_ZSTD_LEVEL)?);
        }
        match slot.as_mut() {
            Some(compressor) => compressor.compress(raw),
            None => zstd::bulk::compress(raw, CHUNK_ZSTD_LEVEL),
        }
    })
}

fn entry_bytes(entry: &LogEntry) -> usize {
    entry.line.len()
        + entry
            .structured_metadata
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>()
}

/// Decodes a chunk's entries (timestamps delta-coded from `base_ns`), keeping those in
/// `[min_ns, max_ns]` whose line `filter` keeps; a skipped entry costs no allocation.
fn decode_entries(
    raw: &[u8],
    base_ns: i64,
    min_ns: i64,
    max_ns: i64,
    filter: &LogReadFilter,
) -> Option<Vec<LogEntry>> {
    let mut pos = 0;
    let count = get_uvarint(raw, &mut pos)? as usize;
    let mut entries = Vec::with_capacity(if filter.line_filter.is_some() {
        0
    } else {
        count.min(raw.len())
    });
    let mut ts = base_ns;
    let (mut read_lines, mut read_bytes) = (0u64, 0u64);
    for _ in 0..count {
        ts = ts.wrapping_add(get_uvarint(raw, &mut pos)? as i64);
        let line = get_str(raw, &mut pos)?;
        let pairs = get_uvarint(raw, &mut pos)? as usize;
        let in_range = ts >= min_ns && ts <= max_ns;
        if in_range {
            read_lines += 1;
            read_bytes += line.len() as u64;
        }
        let wanted = in_range && filter.keeps(line);
        let mut structured_metadata = Vec::with_capacity(if wanted { pairs.min(64) } else { 0 });
        for _ in 0..pairs {
            let (name, value) = (get_str(raw, &mut pos)?, get_str(raw, &mut pos)?);
            if wanted {
                structured_metadata.push((name.to_string(), value.to_string()));
            }
        }
        if wanted {
            entries.push(LogEntry {
                timestamp_ns: ts,
                line: filter.line(line),
                structured_metadata,
            });
        }
    }
    filter.count_read(read_lines, read_bytes);
    Some(entries)
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uvarint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn get_uvarint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

fn get_str<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    let len = get_uvarint(buf, pos)? as usize;
    let bytes = buf.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    std::str::from_utf8(bytes).ok()
}

/// Sorts by time (arrival order among equal timestamps) and drops exact repeats of an entry
/// (same time, line and metadata), as Loki does for a retried push.
pub fn sort_and_dedupe(entries: &mut Vec<LogEntry>) {
    if entries
        .windows(2)
        .any(|w| w[0].timestamp_ns > w[1].timestamp_ns)
    {
        entries.sort_by_key(|e| e.timestamp_ns);
    }
    let mut run_start = 0;
    let mut kept = 0;
    for i in 0..entries.len() {
        if kept > 0 && entries[kept - 1].timestamp_ns != entries[i].timestamp_ns {
            run_start = kept;
        }
        let repeat = entries[run_start..kept].iter().any(|e| *e == entries[i]);
        if !repeat {
            entries.swap(kept, i);
            kept += 1;
        }
    }
    entries.truncate(kept);
}

impl StreamData {
    fn seal_open(&mut self) {
        let open = std::mem::take(&mut self.open);
        self.open_bytes = 0;
        if let Some(chunk) = LogChunk::seal(open) {
            self.sealed.push(chunk);
        }
    }

    fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.open.is_empty() && self.cutting.is_empty()
    }

    fn min_ns(&self) -> Option<i64> {
        let chunks = self.sealed.iter().chain(&self.cutting).map(|c| c.min_ns);
        chunks.chain(self.open.iter().map(|e| e.timestamp_ns)).min()
    }
}

impl MemStream {
    /// Checks an entry's time against the out-of-order window (`window_ns` behind the newest
    /// entry accepted so far; `pending_newest` is the newest of the same request not yet
    /// appended).
    pub fn check(
        &self,
        timestamp_ns: i64,
        pending_newest: Option<i64>,
        window_ns: i64,
    ) -> Result<(), LogAppendError> {
        let stored = self.data.lock().newest_ns;
        let newest = match (stored, pending_newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        match newest {
            Some(newest) if timestamp_ns < newest.saturating_sub(window_ns) => {
                Err(LogAppendError::TooFarBehind {
                    oldest_acceptable_ns: newest.saturating_sub(window_ns),
                })
            }
            _ => Ok(()),
        }
    }

    /// Entries with `min_ns <= t <= max_ns`, sorted by time, exact repeats removed.
    pub fn entries(&self, min_ns: i64, max_ns: i64) -> Vec<LogEntry> {
        self.entries_where(min_ns, max_ns, &LogReadFilter::default())
    }

    /// Entries in `[min_ns, max_ns]` that `filter` keeps (lines emptied when it skips them),
    /// sorted by time, exact repeats removed.
    pub fn entries_where(&self, min_ns: i64, max_ns: i64, filter: &LogReadFilter) -> Vec<LogEntry> {
        let data = self.data.lock();
        // Repeats are told apart by their lines, and a repeat can sit in two chunks (a WAL
        // replay may append an entry again): lines are kept until repeats are gone. A stream
        // whose every entry came after the one before holds no repeats.
        let with_lines;
        let decode_filter = if filter.skip_lines && data.may_repeat {
            with_lines = LogReadFilter {
                skip_lines: false,
                ..filter.clone()
            };
            &with_lines
        } else {
            filter
        };
        let chunks: Vec<&LogChunk> = data
            .sealed
            .iter()
            .chain(&data.cutting)
            .filter(|c| c.overlaps(min_ns, max_ns))
            .collect();
        let in_range = data
            .open
            .iter()
            .filter(|e| e.timestamp_ns >= min_ns && e.timestamp_ns <= max_ns);
        let (mut read_lines, mut read_bytes) = (0u64, 0u64);
        let mut out: Vec<LogEntry> = in_range
            .inspect(|e| {
                read_lines += 1;
                read_bytes += e.line.len() as u64;
            })
            .filter(|e| filter.keeps(&e.line))
            .map(|e| {
                if decode_filter.skip_lines {
                    LogEntry {
                        timestamp_ns: e.timestamp_ns,
                        line: String::new(),
                        structured_metadata: e.structured_metadata.clone(),
                    }
                } else {
                    e.clone()
                }
            })
            .collect();
        filter.count_read(read_lines, read_bytes);
        // Decompress outside the lock would need copies of the chunks; they are small.
        for chunk in chunks {
            out.extend(chunk.entries_where(min_ns, max_ns, decode_filter));
        }
        drop(data);
        sort_and_dedupe(&mut out);
        if filter.skip_lines {
            for e in &mut out {
                e.line = String::new();
            }
        }
        out
    }

    /// Whether the stream holds an entry in `[min_ns, max_ns]`.
    pub fn has_entries(&self, min_ns: i64, max_ns: i64) -> bool {
        let data = self.data.lock();
        data.sealed
            .iter()
            .chain(&data.cutting)
            .any(|c| c.overlaps(min_ns, max_ns))
            || data
                .open
                .iter()
                .any(|e| e.timestamp_ns >= min_ns && e.timestamp_ns <= max_ns)
    }

    /// Hands the entries set aside by [`LogHead::begin_cut`] to `visit` in time order, exact
    /// repeats removed, decoding one chunk at a time: chunks are taken by their first time, and
    /// after each one the entries before the next chunk's first time are final. Empty batches
    /// are not handed over.
    pub fn visit_cutting_entries<E>(
        &self,
        mut visit: impl FnMut(Vec<LogEntry>) -> Result<(), E>,
    ) -> Result<(), E> {
        let firsts: Vec<(i64, usize)> = {
            let data = self.data.lock();
            let mut firsts: Vec<(i64, usize)> = data
                .cutting
                .iter()
                .enumerate()
                .map(|(i, c)| (c.min_ns, i))
                .collect();
            firsts.sort_unstable();
            firsts
        };
        let mut pending: Vec<LogEntry> = Vec::new();
        for (k, &(_, chunk)) in firsts.iter().enumerate() {
            // The cutting set does not change until the cut ends, so the indices stay valid.
            if let Some(entries) = self.data.lock().cutting.get(chunk).map(LogChunk::entries) {
                pending.extend(entries);
            }
            // Every repeat of an entry before the next chunk's first time is in the chunks
            // read so far.
            let taken = std::mem::take(&mut pending);
            let (mut ready, rest): (Vec<LogEntry>, Vec<LogEntry>) = match firsts.get(k + 1) {
                Some(&(bound, _)) => taken.into_iter().partition(|e| e.timestamp_ns < bound),
                None => (taken, Vec::new()),
            };
            pending = rest;
            sort_and_dedupe(&mut ready);
            if !ready.is_empty() {
                visit(ready)?;
            }
        }
        Ok(())
    }

    /// The entries set aside by [`LogHead::begin_cut`], sorted by time, for the block.
    pub fn cutting_entries(&self) -> Vec<LogEntry> {
        let data = self.data.lock();
        let chunks: Vec<Vec<LogEntry>> = data.cutting.iter().map(LogChunk::entries).collect();
        drop(data);
        let mut out: Vec<LogEntry> = chunks.into_iter().flatten().collect();
        sort_and_dedupe(&mut out);
        out
    }
}

/// A tenant's log head.
#[derive(Default)]
pub struct LogHead {
    table: RwLock<SeriesTable<MemStream>>,
    min_ns: AtomicI64Opt,
    max_ns: AtomicI64Opt,
    entries_appended: AtomicU64,
    bytes_appended: AtomicU64,
    /// Odd while a cut is in flight: cut `k` raises it to `2k - 1` when it begins and to `2k`
    /// when it ends (or is aborted). See [`LogHead::read_at_cut`].
    cut_generation: AtomicU64,
    /// Held exclusively while a cut moves entries (begin, end, abort), shared by readers that
    /// need the head whole at one cut generation.
    cut_lock: RwLock<()>,
    /// When entries last arrived for each time range, keyed by the range's end (ranges are the
    /// caller's, e.g. block ranges): a range still being written is better cut once writes stop.
    range_writes: Mutex<BTreeMap<i64, Instant>>,
}

impl LogHead {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn num_streams(&self) -> usize {
        self.table.read().by_id.len()
    }

    /// Oldest and newest entry time held, in ns.
    pub fn min_ns(&self) -> Option<i64> {
        self.min_ns.get()
    }

    pub fn max_ns(&self) -> Option<i64> {
        self.max_ns.get()
    }

    pub fn get_by_id(&self, id: u32) -> Option<Arc<MemStream>> {
        self.table.read().by_id.get(&id).cloned()
    }

    /// Finds or creates the stream of each label set, given with its [`Labels::fx_hash`].
    /// `on_created` runs under the table's write lock with the streams this call created, so
    /// the caller can log them ahead of entries that refer to them.
    pub fn get_or_create<E>(
        &self,
        wanted: &[(u64, &Labels)],
        on_created: impl FnOnce(&[(u32, &Labels)]) -> Result<(), E>,
    ) -> Result<Vec<Arc<MemStream>>, E> {
        {
            let table = self.table.read();
            let found: Option<Vec<_>> = wanted
                .iter()
                .map(|(hash, labels)| table.find(*hash, labels).cloned())
                .collect();
            if let Some(found) = found {
                return Ok(found);
            }
        }
        let mut table = self.table.write();
        let mut result = Vec::with_capacity(wanted.len());
        let mut created: Vec<Arc<MemStream>> = Vec::new();
        for (hash, labels) in wanted {
            if let Some(s) = table.find(*hash, labels) {
                result.push(s.clone());
                continue;
            }
            let id = table.next_id;
            let stream = table.insert(*hash, new_stream(id, (*labels).clone()));
            created.push(stream.clone());
            result.push(stream);
        }
        if !created.is_empty() {
            let refs: Vec<(u32, &Labels)> = created.iter().map(|s| (s.id, &s.labels)).collect();
            on_created(&refs)?;
        }
        Ok(result)
    }

    /// Restores a stream under a known id (WAL replay).
    pub fn restore_stream(&self, id: u32, labels: Labels) {
        let mut table = self.table.write();
        let hash = labels_hash(&labels);
        if table.find(hash, &labels).is_some() || table.by_id.contains_key(&id) {
            return;
        }
        table.insert(hash, new_stream(id, labels));
    }

    /// Stores entries that were validated and made durable (or replayed).
    pub fn append(&self, stream: &MemStream, entries: impl IntoIterator<Item = LogEntry>) {
        let mut data = stream.data.lock();
        let (mut count, mut bytes) = (0u64, 0u64);
        for entry in entries {
            let ts = entry.timestamp_ns;
            let size = entry_bytes(&entry);
            data.open_bytes += size;
            data.open.push(entry);
            data.may_repeat |= data.newest_ns.is_some_and(|n| ts <= n);
            data.newest_ns = Some(data.newest_ns.map_or(ts, |n| n.max(ts)));
            widen_range(&self.min_ns, &self.max_ns, ts);
            count += 1;
            bytes += size as u64;
            if data.open_bytes >= CHUNK_TARGET_BYTES {
                data.seal_open();
            }
        }
        drop(data);
        self.entries_appended.fetch_add(count, Ordering::Relaxed);
        self.bytes_appended.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records that entries for the ranges ending at `range_ends_ns` arrived at `at`.
    pub fn note_range_writes(&self, range_ends_ns: &[i64], at: Instant) {
        if range_ends_ns.is_empty() {
            return;
        }
        let mut writes = self.range_writes.lock();
        for &end in range_ends_ns {
            writes.insert(end, at);
        }
    }

    /// The last time entries arrived for a range ending at or before `end_ns`.
    pub fn last_write_up_to(&self, end_ns: i64) -> Option<Instant> {
        self.range_writes
            .lock()
            .range(..=end_ns)
            .map(|(_, at)| *at)
            .max()
    }

    /// Forgets the write times of ranges ending at or before `end_ns` (they were cut).
    pub fn forget_range_writes(&self, end_ns: i64) {
        let mut writes = self.range_writes.lock();
        *writes = writes.split_off(&end_ns.saturating_add(1));
    }

    /// Streams matching every matcher.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<Arc<MemStream>> {
        self.table.read().select(matchers)
    }

    fn all_streams(&self) -> Vec<Arc<MemStream>> {
        self.table.read().by_id.values().cloned().collect()
    }

    /// Sets aside every entry older than `end_ns` for a block; returns the streams that have
    /// some, sorted by labels. The entries stay readable until [`LogHead::finish_cut`] drops
    /// them or [`LogHead::abort_cut`] puts them back. One cut at a time.
    fn cut_generation(&self) -> u64 {
        self.cut_generation.load(Ordering::Acquire)
    }

    /// Runs `read` with no cut moving entries meanwhile, given the cut generation: `2k` once
    /// cut `k` has ended, `2k - 1` while it runs (its entries are then all still in the head).
    pub fn read_at_cut<T>(&self, read: impl FnOnce(u64) -> T) -> T {
        let _no_cut_moves = self.cut_lock.read();
        read(self.cut_generation())
    }

    /// The number of the cut in flight (`k` of generation `2k - 1`), set by
    /// [`LogHead::begin_cut`].
    pub fn cut_in_flight(&self) -> Option<u64> {
        let g = self.cut_generation();
        (g % 2 == 1).then_some(g.div_ceil(2))
    }

    pub fn begin_cut(&self, end_ns: i64) -> Vec<Arc<MemStream>> {
        let _moving = self.cut_lock.write();
        self.cut_generation.fetch_add(1, Ordering::AcqRel);
        let mut cut = Vec::new();
        for stream in self.all_streams() {
            let mut data = stream.data.lock();
            let mut keep = Vec::new();
            let mut split_before = Vec::new();
            let mut split_after = Vec::new();
            for chunk in std::mem::take(&mut data.sealed) {
                if chunk.max_ns < end_ns {
                    data.cutting.push(chunk);
                } else if chunk.min_ns >= end_ns {
                    keep.push(chunk);
                } else {
                    for entry in chunk.entries() {
                        if entry.timestamp_ns < end_ns {
                            split_before.push(entry);
                        } else {
                            split_after.push(entry);
                        }
                    }
                }
            }
            let (before, after): (Vec<LogEntry>, Vec<LogEntry>) = std::mem::take(&mut data.open)
                .into_iter()
                .partition(|e| e.timestamp_ns < end_ns);
            split_before.extend(before);
            data.cutting.extend(LogChunk::seal(split_before));
            keep.extend(LogChunk::seal(split_after));
            data.sealed = keep;
            data.open_bytes = after.iter().map(entry_bytes).sum();
            data.open = after;
            if !data.cutting.is_empty() {
                cut.push(stream.clone());
            }
        }
        cut.sort_by(|a, b| a.labels.cmp(&b.labels));
        cut
    }

    /// The block holding the cut entries is readable: drop them here.
    pub fn finish_cut(&self) {
        let _moving = self.cut_lock.write();
        let mut min_left: Option<i64> = None;
        let mut max_left: Option<i64> = None;
        for stream in self.all_streams() {
            let mut data = stream.data.lock();
            data.cutting.clear();
            if let Some(m) = data.min_ns() {
                min_left = Some(min_left.map_or(m, |x| x.min(m)));
                let newest = data.newest_ns.unwrap_or(m);
                max_left = Some(max_left.map_or(newest, |x| x.max(newest)));
            }
        }
        // Appends racing this may widen again through widen_range.
        self.min_ns.set(min_left);
        self.max_ns.set(max_left);
        self.cut_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The block could not be written: the cut entries return to their streams.
    pub fn abort_cut(&self) {
        let _moving = self.cut_lock.write();
        for stream in self.all_streams() {
            let mut data = stream.data.lock();
            let cutting = std::mem::take(&mut data.cutting);
            data.sealed.extend(cutting);
        }
        self.cut_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops streams that hold no entries. The caller must keep writers out while this runs.
    pub fn remove_empty_streams(&self) -> usize {
        self.table
            .write()
            .remove_where(|s| s.data.lock().is_empty())
    }

    /// Every stream, for a WAL checkpoint; entries are read one stream at a time with
    /// [`MemStream::entries`] so the checkpoint never holds the whole head decoded.
    pub fn streams(&self) -> Vec<Arc<MemStream>> {
        let mut streams = self.all_streams();
        streams.sort_by_key(|s| s.id);
        streams
    }

    /// Approximate bytes held: labels, index, compressed chunks and open buffers.
    pub fn memory_bytes(&self) -> usize {
        self.all_streams()
            .iter()
            .map(|s| {
                let data = s.data.lock();
                let chunks: usize = data
                    .sealed
                    .iter()
                    .chain(&data.cutting)
                    .map(|c| c.data.len() + std::mem::size_of::<LogChunk>())
                    .sum();
                s.labels.heap_bytes()
                    + chunks
                    + data.open_bytes
                    + data.open.capacity() * std::mem::size_of::<LogEntry>()
                    + std::mem::size_of::<MemStream>()
                    + 64
            })
            .sum()
    }

    /// Entries and raw bytes stored since start.
    pub fn entries_appended(&self) -> u64 {
        self.entries_appended.load(Ordering::Relaxed)
    }

    pub fn bytes_appended(&self) -> u64 {
        self.bytes_appended.load(Ordering::Relaxed)
    }
}

fn new_stream(id: u32, labels: Labels) -> MemStream {
    MemStream {
        id,
        labels,
        data: Mutex::new(StreamData::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::{Label, MatchOp};

    fn entry(ts: i64, line: &str) -> LogEntry {
        LogEntry {
            timestamp_ns: ts,
            line: line.into(),
            structured_metadata: vec![],
        }
    }

    fn stream(head: &LogHead, app: &str) -> Arc<MemStream> {
        let labels = Labels::from_unsorted(vec![Label::new("app", app)]);
        head.get_or_create::<()>(&[(labels.fx_hash(), &labels)], |_| Ok(()))
            .unwrap()
            .remove(0)
    }

    #[test]
    fn entries_survive_sealing_sorted_and_deduplicated() {
        let head = LogHead::new();
        let s = stream(&head, "a");
        let big = "x".repeat(1000);
        let mut expected = Vec::new();
        for i in (0..2000).rev() {
            let mut e = entry(i, &format!("{i} {big}"));
            if i % 7 == 0 {
                e.structured_metadata = vec![("trace".into(), format!("t{i}"))];
            }
            expected.push(e.clone());
            head.append(&s, [e.clone()]);
            if i % 10 == 0 {
                head.append(&s, [e]); // an exact repeat: dropped
            }
        }
        head.append(&s, [entry(5, "same time, other line")]);
        expected.push(entry(5, "same time, other line"));
        expected.sort_by_key(|e| e.timestamp_ns);
        let got = s.entries(i64::MIN, i64::MAX);
        assert_eq!(got.len(), expected.len());
        assert_eq!(got, {
            let mut e = expected.clone();
            sort_and_dedupe(&mut e);
            e
        });
        assert!(s.data.lock().sealed.len() > 2, "full buffers are sealed");
        assert_eq!(s.entries(10, 12).len(), 3);
        assert_eq!(head.min_ns(), Some(0));
        assert_eq!(head.max_ns(), Some(1999));
    }

    #[test]
    fn cut_entries_are_visited_chunk_by_chunk_in_time_order_without_repeats() {
        let head = LogHead::new();
        let s = stream(&head, "a");
        let text = "z".repeat(3000);
        // Time jitters back and forth so neighbouring chunks overlap, and a replay-like second
        // pass appends every tenth entry again (a repeat in another chunk).
        let ts = |i: i64| i * 10 + if i % 2 == 0 { 15 } else { 0 };
        for i in 0..400 {
            head.append(&s, [entry(ts(i), &format!("{i} {text}"))]);
        }
        for i in (0..400).step_by(10) {
            head.append(&s, [entry(ts(i), &format!("{i} {text}"))]);
        }
        assert!(head.begin_cut(i64::MAX).len() == 1);
        let expected = s.cutting_entries();
        assert_eq!(expected.len(), 400);
        let mut batches = Vec::new();
        s.visit_cutting_entries(|batch| {
            batches.push(batch);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(batches.len() > 2, "one batch per chunk, not one in all");
        assert!(batches.iter().all(|b| !b.is_empty()));
        let visited: Vec<LogEntry> = batches.into_iter().flatten().collect();
        assert!(visited
            .windows(2)
            .all(|w| w[0].timestamp_ns <= w[1].timestamp_ns));
        assert_eq!(visited, expected);
        head.finish_cut();
    }

    #[test]
    fn counting_reads_drop_lines_and_still_remove_repeats() {
        let head = LogHead::new();
        let counting = LogReadFilter {
            skip_lines: true,
            ..Default::default()
        };
        let text = "q".repeat(4000);
        // In order: no repeats possible, lines are never decoded.
        let ordered = stream(&head, "ordered");
        for i in 0..300 {
            head.append(&ordered, [entry(i, &format!("{i} {text}"))]);
        }
        let read = ordered.entries_where(0, 1000, &counting);
        assert_eq!(read.len(), 300);
        assert!(read.iter().all(|e| e.line.is_empty()));
        // The same entries again (a retried push), in later chunks: counted once.
        let retried = stream(&head, "retried");
        for _ in 0..2 {
            for i in 0..150 {
                head.append(&retried, [entry(i, &format!("{i} {text}"))]);
            }
        }
        head.append(&retried, [entry(5, "same time, other line")]);
        assert!(retried.data.lock().sealed.len() > 2);
        let read = retried.entries_where(0, 1000, &counting);
        assert_eq!(read.len(), 151);
        assert!(read.iter().all(|e| e.line.is_empty()));
    }

    #[test]
    fn range_writes_tell_when_a_range_was_last_written() {
        let head = LogHead::new();
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(5);
        head.note_range_writes(&[100, 200], t0);
        head.note_range_writes(&[200], t1);
        assert_eq!(head.last_write_up_to(50), None);
        assert_eq!(head.last_write_up_to(100), Some(t0));
        assert_eq!(head.last_write_up_to(300), Some(t1));
        head.forget_range_writes(100);
        assert_eq!(head.last_write_up_to(150), None);
        assert_eq!(head.last_write_up_to(200), Some(t1));
    }

    #[test]
    fn out_of_order_window_is_measured_from_the_newest_entry() {
        let head = LogHead::new();
        let s = stream(&head, "a");
        head.append(&s, [entry(1_000, "a")]);
        assert!(s.check(900, None, 100).is_ok());
        assert_eq!(
            s.check(899, None, 100),
            Err(LogAppendError::TooFarBehind {
                oldest_acceptable_ns: 900
            })
        );
        assert!(s.check(950, Some(1_100), 100).is_err());
    }

    #[test]
    fn cut_sets_aside_older_entries_and_keeps_later_ones() {
        let head = LogHead::new();
        let a = stream(&head, "a");
        let b = stream(&head, "b");
        let big = "y".repeat(5000);
        for i in 0..500 {
            head.append(&a, [entry(i, &big)]);
        }
        head.append(&b, [entry(1000, "late stream")]);
        let cut = head.begin_cut(250);
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].id, a.id);
        // Readable during the cut; an entry arriving for the cut range stays afterwards.
        assert_eq!(a.entries(i64::MIN, i64::MAX).len(), 500);
        head.append(&a, [entry(10, "arrived during the cut")]);
        let cut_entries = a.cutting_entries();
        assert_eq!(cut_entries.len(), 250);
        assert!(cut_entries.iter().all(|e| e.timestamp_ns < 250));
        head.finish_cut();
        let left = a.entries(i64::MIN, i64::MAX);
        assert_eq!(left.len(), 251);
        assert_eq!(left[0].line, "arrived during the cut");
        assert_eq!(head.min_ns(), Some(10));
        assert_eq!(head.max_ns(), Some(1000));

        let again = head.begin_cut(2000);
        assert_eq!(again.len(), 2);
        head.abort_cut();
        assert_eq!(a.entries(i64::MIN, i64::MAX).len(), 251);
        head.begin_cut(2000);
        head.finish_cut();
        assert_eq!(head.min_ns(), None);
        assert_eq!(head.remove_empty_streams(), 2);
        assert_eq!(head.num_streams(), 0);
    }

    #[test]
    fn streams_are_found_by_labels_and_matchers() {
        let head = LogHead::new();
        let a = stream(&head, "a");
        let again = stream(&head, "a");
        assert_eq!(a.id, again.id);
        stream(&head, "b");
        let m = Matcher::new(MatchOp::RegexMatch, "app", "a|c").unwrap();
        assert_eq!(head.select(&[m]).len(), 1);
        let mut apps: Vec<String> = head
            .select(&[])
            .iter()
            .filter_map(|s| s.labels.get("app").map(str::to_string))
            .collect();
        apps.sort();
        assert_eq!(apps, vec!["a", "b"]);
        head.restore_stream(9, Labels::from_unsorted(vec![Label::new("app", "z")]));
        assert_eq!(stream(&head, "new").id, 10);
    }
}
