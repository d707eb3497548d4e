//! Log blocks: one tenant's log entries over a time range, immutable, in the same layout as
//! metrics blocks (docs/format/log-block.md). Files under `<tenant>/logs/blocks/<ulid>/`:
//!
//! * `streams.parquet`: `stream_id` (0..n, in input order, streams sorted by labels) and
//!   `labels` as a JSON object with sorted keys, exactly like `series.parquet`, so
//!   [`BlockIndex::load`](crate::BlockIndex::load) reads it unchanged;
//! * `entries.parquet`: `stream_id`, `timestamp_ns`, `line`, `structured_metadata` (JSON object
//!   of the pairs in stored order, null when there are none), sorted by stream then time. Row
//!   groups are cut by raw line bytes so that each one can be skipped by its stream-id and time
//!   statistics; the line column is one large zstd page per row group, which is where nearly all
//!   of the size goes;
//! * `index.bin`: label postings over the streams ([`vigil_index::Postings`]);
//! * `meta.json`, written last, with [`LogBlockStats`] in its `logs` field.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, StringBuilder, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::Encoding;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, SortingColumn};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;
use roaring::RoaringBitmap;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vigil_index::Postings;
use vigil_model::{Labels, LogEntry};

use crate::{
    zstd, BlockError, BlockFile, BlockMeta, EncodedBlock, BLOCK_FORMAT_VERSION, INDEX_FILE,
    META_FILE,
};

pub const LOGS_KIND: &str = "logs";
pub const STREAMS_FILE: &str = "streams.parquet";
pub const ENTRIES_FILE: &str = "entries.parquet";
/// Every file of a log block in upload order; meta.json last marks the block complete.
pub const LOG_BLOCK_FILES: [&str; 4] = [STREAMS_FILE, ENTRIES_FILE, INDEX_FILE, META_FILE];

const STREAM_ID: &str = "stream_id";
const TIMESTAMP: &str = "timestamp_ns";
const LINE: &str = "line";
const METADATA: &str = "structured_metadata";

const NS_PER_MS: i64 = 1_000_000;
/// Rows per record batch when reading.
const READ_BATCH_ROWS: usize = 8192;

/// The `logs` field of a log block's `meta.json`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct LogBlockStats {
    /// Oldest and newest entry timestamp, inclusive, in ns (0 and 0 for an empty block).
    pub min_time_ns: i64,
    pub max_time_ns: i64,
    pub num_entries: u64,
    /// Sum of the raw line lengths in bytes.
    pub line_bytes: u64,
}

/// Layout and compression knobs of `entries.parquet`. [`Default`] is what
/// [`encode_log_block`] uses; the other values exist for tests and for measuring
/// (`examples/log_block_size.rs`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogBlockOptions {
    /// zstd level of the line column (the other columns use level 3).
    pub line_zstd_level: i32,
    /// A row group is cut once it holds this many bytes of raw line and metadata text.
    pub row_group_bytes: usize,
    /// ... or this many entries, whichever comes first.
    pub row_group_rows: usize,
    /// Data page size limit of the line column: each page is one zstd frame, so this is the
    /// compression context.
    pub line_page_bytes: usize,
    /// Encoding of the line column (`PLAIN`, `DELTA_LENGTH_BYTE_ARRAY` or `DELTA_BYTE_ARRAY`).
    pub line_encoding: Encoding,
    /// Rows per data page of `stream_id` and `timestamp_ns`: the granularity of the page index
    /// a reader uses to skip rows inside a row group.
    pub key_page_rows: usize,
}

impl Default for LogBlockOptions {
    fn default() -> Self {
        Self {
            line_zstd_level: 6,
            row_group_bytes: 4 << 20,
            row_group_rows: 64 * 1024,
            line_page_bytes: 8 << 20,
            line_encoding: Encoding::PLAIN,
            key_page_rows: 8192,
        }
    }
}

/// Encodes streams (sorted by labels; each stream's entries sorted by timestamp) into a log block.
pub fn encode_log_block<'a>(
    tenant: &str,
    streams: impl IntoIterator<Item = (&'a Labels, &'a [LogEntry])>,
) -> Result<EncodedBlock, BlockError> {
    encode_log_block_with(tenant, streams, &LogBlockOptions::default())
}

/// [`encode_log_block`] with explicit [`LogBlockOptions`].
pub fn encode_log_block_with<'a>(
    tenant: &str,
    streams: impl IntoIterator<Item = (&'a Labels, &'a [LogEntry])>,
    options: &LogBlockOptions,
) -> Result<EncodedBlock, BlockError> {
    let mut writer = LogBlockWriter::with_options(tenant, options)?;
    for (labels, entries) in streams {
        writer.add_stream(labels, entries)?;
    }
    writer.finish()
}

/// Writes a log block one stream at a time, so the caller never holds more than one stream's
/// entries decoded: streams must come sorted by labels, each stream's entries sorted by time.
pub struct LogBlockWriter {
    tenant: String,
    label_json: Vec<String>,
    postings: Postings,
    entries: EntriesWriter,
    stats: LogBlockStats,
}

impl LogBlockWriter {
    pub fn new(tenant: &str) -> Result<Self, BlockError> {
        Self::with_options(tenant, &LogBlockOptions::default())
    }

    pub fn with_options(tenant: &str, options: &LogBlockOptions) -> Result<Self, BlockError> {
        Ok(Self {
            tenant: tenant.to_string(),
            label_json: Vec::new(),
            postings: Postings::new(),
            entries: EntriesWriter::new(options)?,
            stats: LogBlockStats {
                min_time_ns: i64::MAX,
                max_time_ns: i64::MIN,
                num_entries: 0,
                line_bytes: 0,
            },
        })
    }

    /// Adds the next stream (its id is its position).
    pub fn add_stream(&mut self, labels: &Labels, entries: &[LogEntry]) -> Result<(), BlockError> {
        let id = u32::try_from(self.label_json.len()).map_err(|_| BlockError::Malformed {
            file: STREAMS_FILE,
            reason: "more than 2^32 streams".into(),
        })?;
        let map: BTreeMap<&str, &str> = labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        self.label_json.push(serde_json::to_string(&map)?);
        self.postings.add(id, labels);
        let stats = &mut self.stats;
        for entry in entries {
            stats.min_time_ns = stats.min_time_ns.min(entry.timestamp_ns);
            stats.max_time_ns = stats.max_time_ns.max(entry.timestamp_ns);
            stats.num_entries += 1;
            stats.line_bytes += entry.line.len() as u64;
            self.entries.push(id, entry)?;
        }
        Ok(())
    }

    /// Closes the files and builds `meta.json`.
    pub fn finish(self) -> Result<EncodedBlock, BlockError> {
        let mut stats = self.stats;
        if stats.num_entries == 0 {
            stats.min_time_ns = 0;
            stats.max_time_ns = 0;
        }
        let entries_bytes = self.entries.finish()?;
        let num_streams = self.label_json.len();
        let stream_ids: Vec<u32> = (0..num_streams as u32).collect();
        let streams_batch = RecordBatch::try_new(
            streams_schema(),
            vec![
                Arc::new(UInt32Array::from(stream_ids)) as ArrayRef,
                Arc::new(StringArray::from(self.label_json)),
            ],
        )?;
        let streams_bytes = crate::write_parquet(&streams_batch, crate::series_properties())?;
        let index_bytes = Bytes::from(self.postings.encode());
        let mut meta = BlockMeta {
            version: BLOCK_FORMAT_VERSION,
            ulid: ulid::Ulid::generate().to_string(),
            tenant: self.tenant,
            kind: LOGS_KIND.into(),
            min_time_ms: stats.min_time_ns.div_euclid(NS_PER_MS),
            max_time_ms: ceil_ms(stats.max_time_ns),
            num_series: num_streams as u64,
            num_samples: stats.num_entries,
            files: vec![],
            logs: Some(stats),
        };
        let mut files = vec![
            (STREAMS_FILE, streams_bytes),
            (ENTRIES_FILE, entries_bytes),
            (INDEX_FILE, index_bytes),
        ];
        meta.files = files
            .iter()
            .map(|(n, b)| BlockFile {
                name: n.to_string(),
                bytes: b.len() as u64,
            })
            .collect();
        let meta_bytes = Bytes::from(serde_json::to_vec_pretty(&meta)?);
        files.push((META_FILE, meta_bytes));
        Ok(EncodedBlock { meta, files })
    }
}

/// `ceil(ns / 1e6)` without overflow.
fn ceil_ms(ns: i64) -> i64 {
    ns.div_euclid(NS_PER_MS) + i64::from(ns.rem_euclid(NS_PER_MS) != 0)
}

fn streams_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new(STREAM_ID, DataType::UInt32, false),
        Field::new("labels", DataType::Utf8, false),
    ]))
}

fn entries_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new(STREAM_ID, DataType::UInt32, false),
        Field::new(TIMESTAMP, DataType::Int64, false),
        Field::new(LINE, DataType::Utf8, false),
        Field::new(METADATA, DataType::Utf8, true),
    ]))
}

fn entries_properties(options: &LogBlockOptions) -> Result<WriterProperties, BlockError> {
    let sid = ColumnPath::from(STREAM_ID);
    let ts = ColumnPath::from(TIMESTAMP);
    let line = ColumnPath::from(LINE);
    let meta = ColumnPath::from(METADATA);
    let sorting = (0..2)
        .map(|column_idx| SortingColumn {
            column_idx,
            descending: false,
            nulls_first: false,
        })
        .collect();
    let line_encoding = match options.line_encoding {
        e @ (Encoding::PLAIN | Encoding::DELTA_LENGTH_BYTE_ARRAY | Encoding::DELTA_BYTE_ARRAY) => e,
        other => {
            return Err(BlockError::Malformed {
                file: ENTRIES_FILE,
                reason: format!("unsupported line encoding {other}"),
            })
        }
    };
    Ok(WriterProperties::builder()
        .set_compression(zstd(3))
        // Row groups are cut by `EntriesWriter`, not by the writer.
        .set_max_row_group_row_count(None)
        .set_sorting_columns(Some(sorting))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_data_page_row_count_limit(options.key_page_rows)
        // stream_id: runs of one value (rows are sorted by stream): dictionary + RLE.
        .set_column_dictionary_enabled(sid, true)
        .set_column_dictionary_enabled(ts.clone(), false)
        .set_column_encoding(ts, Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(line.clone(), false)
        .set_column_encoding(line.clone(), line_encoding)
        .set_column_compression(line.clone(), zstd(options.line_zstd_level))
        .set_column_statistics_enabled(line.clone(), EnabledStatistics::None)
        .set_column_data_page_size_limit(line.clone(), options.line_page_bytes)
        .set_column_data_page_row_count_limit(line, usize::MAX)
        // Metadata repeats (a few keys and values): dictionary, falling back to plain.
        .set_column_dictionary_enabled(meta.clone(), true)
        .set_column_statistics_enabled(meta, EnabledStatistics::None)
        .build())
}

/// Buffers one row group of entries at a time and writes it as soon as it is full.
struct EntriesWriter {
    writer: ArrowWriter<Vec<u8>>,
    schema: Arc<Schema>,
    row_group_bytes: usize,
    row_group_rows: usize,
    ids: Vec<u32>,
    timestamps: Vec<i64>,
    lines: StringBuilder,
    metadata: StringBuilder,
    bytes: usize,
}

impl EntriesWriter {
    fn new(options: &LogBlockOptions) -> Result<Self, BlockError> {
        let schema = entries_schema();
        let writer = ArrowWriter::try_new(
            Vec::new(),
            schema.clone(),
            Some(entries_properties(options)?),
        )?;
        let row_group_rows = options.row_group_rows.max(1);
        let row_group_bytes = options.row_group_bytes.max(1);
        Ok(Self {
            writer,
            schema,
            row_group_bytes,
            row_group_rows,
            ids: Vec::new(),
            timestamps: Vec::new(),
            lines: StringBuilder::new(),
            metadata: StringBuilder::new(),
            bytes: 0,
        })
    }

    fn push(&mut self, id: u32, entry: &LogEntry) -> Result<(), BlockError> {
        self.ids.push(id);
        self.timestamps.push(entry.timestamp_ns);
        self.lines.append_value(&entry.line);
        self.bytes += entry.line.len();
        if entry.structured_metadata.is_empty() {
            self.metadata.append_null();
        } else {
            let json = serde_json::to_string(&PairsRef(&entry.structured_metadata))?;
            self.bytes += json.len();
            self.metadata.append_value(json);
        }
        if self.ids.len() >= self.row_group_rows || self.bytes >= self.row_group_bytes {
            self.flush_row_group()?;
        }
        Ok(())
    }

    fn flush_row_group(&mut self) -> Result<(), BlockError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(UInt32Array::from(std::mem::take(&mut self.ids))) as ArrayRef,
                Arc::new(Int64Array::from(std::mem::take(&mut self.timestamps))),
                Arc::new(self.lines.finish()),
                Arc::new(self.metadata.finish()),
            ],
        )?;
        self.bytes = 0;
        self.writer.write(&batch)?;
        self.writer.flush()?;
        Ok(())
    }

    fn finish(mut self) -> Result<Bytes, BlockError> {
        self.flush_row_group()?;
        Ok(Bytes::from(self.writer.into_inner()?))
    }
}

/// Structured metadata as a JSON object, pairs in stored order (duplicates kept).
struct PairsRef<'a>(&'a [(String, String)]);

impl Serialize for PairsRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The inverse of [`PairsRef`]: a JSON object read into pairs in document order.
struct Pairs(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

/// Entries of the streams in `ids` with timestamp in [min_ns, max_ns], by stream id, each sorted by time;
/// row groups whose stream-id or time statistics miss the request are not decoded.
pub fn read_log_entries(
    entries_file: Bytes,
    ids: &RoaringBitmap,
    min_ns: i64,
    max_ns: i64,
) -> Result<BTreeMap<u32, Vec<LogEntry>>, BlockError> {
    let mut out: BTreeMap<u32, Vec<LogEntry>> = BTreeMap::new();
    if ids.is_empty() || min_ns > max_ns {
        return Ok(out);
    }
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(entries_file, options)?;
    let request = Request {
        ids,
        min_ns,
        max_ns,
    };
    let Some((row_groups, selection)) = plan(builder.metadata(), &request)? else {
        return Ok(out);
    };
    let reader = builder
        .with_batch_size(READ_BATCH_ROWS)
        .with_row_groups(row_groups)
        .with_row_selection(selection)
        .build()?;
    for batch in reader {
        let batch = batch?;
        let column = |name: &'static str| batch.column_by_name(name).ok_or_else(|| malformed(name));
        let sid = downcast::<UInt32Array>(column(STREAM_ID)?, STREAM_ID)?;
        let ts = downcast::<Int64Array>(column(TIMESTAMP)?, TIMESTAMP)?;
        let line = downcast::<StringArray>(column(LINE)?, LINE)?;
        let meta = downcast::<StringArray>(column(METADATA)?, METADATA)?;
        let mut i = 0;
        while i < batch.num_rows() {
            // Rows come in runs of one stream: test membership once per run.
            let id = sid.value(i);
            let mut end = i + 1;
            while end < batch.num_rows() && sid.value(end) == id {
                end += 1;
            }
            if ids.contains(id) {
                for row in i..end {
                    let t = ts.value(row);
                    if t < min_ns || t > max_ns {
                        continue;
                    }
                    let structured_metadata = if meta.is_null(row) {
                        Vec::new()
                    } else {
                        serde_json::from_str::<Pairs>(meta.value(row))?.0
                    };
                    out.entry(id).or_default().push(LogEntry {
                        timestamp_ns: t,
                        line: line.value(row).to_string(),
                        structured_metadata,
                    });
                }
            }
            i = end;
        }
    }
    Ok(out)
}

fn malformed(what: &str) -> BlockError {
    BlockError::Malformed {
        file: ENTRIES_FILE,
        reason: format!("column {what} missing or mistyped"),
    }
}

fn downcast<'a, T: 'static>(array: &'a ArrayRef, name: &str) -> Result<&'a T, BlockError> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| malformed(name))
}

struct Request<'a> {
    ids: &'a RoaringBitmap,
    min_ns: i64,
    max_ns: i64,
}

impl Request<'_> {
    fn wants_ids(&self, min: u32, max: u32) -> bool {
        min <= max && self.ids.range_cardinality(min..=max) > 0
    }

    fn wants_times(&self, min: i64, max: i64) -> bool {
        min <= self.max_ns && max >= self.min_ns
    }
}

/// The row groups to decode and, within them, the rows worth decoding: row groups are dropped
/// by their column-chunk statistics, rows by the page index of `stream_id` and `timestamp_ns`.
/// `None` when nothing can match.
fn plan(
    metadata: &ParquetMetaData,
    request: &Request,
) -> Result<Option<(Vec<usize>, RowSelection)>, BlockError> {
    let columns = metadata.file_metadata().schema_descr();
    let index_of = |name: &str| {
        columns
            .columns()
            .iter()
            .position(|c| c.path().string() == name)
            .ok_or_else(|| malformed(name))
    };
    let (sid_col, ts_col) = (index_of(STREAM_ID)?, index_of(TIMESTAMP)?);
    let mut row_groups = Vec::new();
    let mut selectors = Vec::new();
    for (rg_idx, rg) in metadata.row_groups().iter().enumerate() {
        let keep = match (
            rg.column(sid_col).statistics(),
            rg.column(ts_col).statistics(),
        ) {
            (Some(Statistics::Int32(s)), Some(Statistics::Int64(t))) => {
                let ids = match (s.min_opt(), s.max_opt()) {
                    (Some(&min), Some(&max)) => request.wants_ids(min as u32, max as u32),
                    _ => true,
                };
                let times = match (t.min_opt(), t.max_opt()) {
                    (Some(&min), Some(&max)) => request.wants_times(min, max),
                    _ => true,
                };
                ids && times
            }
            _ => true,
        };
        if !keep {
            continue;
        }
        let rows = usize::try_from(rg.num_rows()).unwrap_or(0);
        let page_index = metadata.page_index_for_row_group(rg_idx);
        let sid_pages = page_ranges(&page_index, sid_col, rows, |ci, p| match ci {
            ColumnIndexMetaData::INT32(ci) => match (ci.min_value(p), ci.max_value(p)) {
                (Some(&min), Some(&max)) => request.wants_ids(min as u32, max as u32),
                _ => true,
            },
            _ => true,
        });
        let ts_pages = page_ranges(&page_index, ts_col, rows, |ci, p| match ci {
            ColumnIndexMetaData::INT64(ci) => match (ci.min_value(p), ci.max_value(p)) {
                (Some(&min), Some(&max)) => request.wants_times(min, max),
                _ => true,
            },
            _ => true,
        });
        let ranges = intersect(&sid_pages, &ts_pages);
        if ranges.is_empty() {
            continue;
        }
        row_groups.push(rg_idx);
        let mut at = 0;
        for r in ranges {
            if r.start > at {
                selectors.push(RowSelector::skip(r.start - at));
            }
            selectors.push(RowSelector::select(r.end - r.start));
            at = r.end;
        }
        // Cover the whole row group: the selection is matched to rows positionally.
        if at < rows {
            selectors.push(RowSelector::skip(rows - at));
        }
    }
    if row_groups.is_empty() {
        return Ok(None);
    }
    Ok(Some((row_groups, RowSelection::from(selectors))))
}

/// Row ranges of the pages of column `col` in one row group that `wanted` keeps; the whole row
/// group when the page index is missing.
fn page_ranges(
    page_index: &parquet::file::metadata::page_index::RowGroupPageIndex,
    col: usize,
    rows: usize,
    wanted: impl Fn(&ColumnIndexMetaData, usize) -> bool,
) -> Vec<Range<usize>> {
    let (Some(ci), Some(oi)) = (page_index.column_index(col), page_index.offset_index(col)) else {
        return std::iter::once(0..rows).collect();
    };
    let pages = oi.page_locations();
    if pages.len() as u64 != ci.num_pages() {
        return std::iter::once(0..rows).collect();
    }
    let start = |p: usize| {
        usize::try_from(pages[p].first_row_index)
            .unwrap_or(0)
            .min(rows)
    };
    (0..pages.len())
        .filter(|&p| wanted(ci, p))
        .map(|p| {
            start(p)..if p + 1 < pages.len() {
                start(p + 1)
            } else {
                rows
            }
        })
        .collect()
}

/// Intersection of two sorted lists of disjoint ranges.
fn intersect(a: &[Range<usize>], b: &[Range<usize>]) -> Vec<Range<usize>> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let start = a[i].start.max(b[j].start);
        let end = a[i].end.min(b[j].end);
        if start < end {
            out.push(start..end);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}
