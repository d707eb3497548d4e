//! Log blocks: one tenant's log entries over a time range, immutable, laid out like metrics
//! blocks (docs/format/log-block.md). Files under `<tenant>/logs/blocks/<ulid>/`:
//!
//! * `streams.parquet`: `stream_id` (0..n in input order; streams come sorted by labels) and
//!   `labels`, a JSON object with sorted keys, exactly like `series.parquet`, so
//!   [`BlockIndex::load`](crate::BlockIndex::load) reads it unchanged;
//! * `entries.parquet`: `stream_id`, `timestamp_ns`, `line`, `structured_metadata` (JSON object
//!   of the pairs in stored order, null when there are none), sorted by stream then time;
//! * `index.bin`: label postings over the streams ([`vigil_index::Postings`]);
//! * `meta.json`, written last, with [`LogBlockStats`] in its `logs` field.
//!
//! Nearly all of a block's bytes are the `line` column. Row groups are cut by raw text size
//! ([`LogBlockOptions::row_group_bytes`]) and the line column of a row group is one PLAIN data
//! page, compressed as one zstd frame. A stock zstd level at a speed the ingest path can afford
//! finds the long repeats of log text but not the short ones between variable fields, so the
//! default ([`LineCompression::Template`]) chooses the zstd sequences itself: every line is
//! matched against an earlier line of the same page with the same *shape* (the line with each
//! run of digits replaced by a placeholder), preferring the line after the previous line's
//! match, so that a sequence of lines seen before is matched at one repeated offset (which
//! zstd codes as a repeat offset, nearly for free). What the two lines share becomes matches,
//! what differs (mostly the digits) literals; lines without such a predecessor
//! fall back to a greedy hash matcher. zstd (`ZSTD_compressSequences`) then does the entropy
//! coding, so the page is an ordinary zstd frame that any Parquet reader decodes. Each frame
//! is decompressed and compared before it is written; if that ever fails, or zstd rejects the
//! sequences, the page is compressed with stock zstd instead.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::column::page::{CompressedPage, Page, PageWriteSpec, PageWriter};
use parquet::column::writer::ColumnWriterImpl;
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, ParquetMetaData, SortingColumn};
use parquet::file::properties::{
    DeltaBinaryPackedEncoderOptions, EnabledStatistics, WriterProperties, WriterPropertiesPtr,
};
use parquet::file::serialized_reader::SerializedPageReader;
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnPath, SchemaDescriptor};
use roaring::RoaringBitmap;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vigil_index::Postings;
use vigil_model::{
    Labels, LineSeekFn, LogEntry, LogReadFilter, LogSampleValue, LogWindows, WindowSums,
    WindowSumsBuilder,
};

use crate::linegrams::{self, LineGrams, LineGramsWriter};
use crate::linetokens::{self, LineTokens, LineTokensWriter};
pub use crate::rows::ReadPart;
use crate::rows::{selection_of, Planned, SortKeys};

use crate::{
    zstd, ArrowReaderMetadata, BlockError, BlockFile, BlockMeta, EncodedBlock,
    BLOCK_FORMAT_VERSION, INDEX_FILE, META_FILE,
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
/// Each line's length in bytes, so `bytes_over_time` and `bytes_rate` need not decompress the
/// lines (0.18 byte per line on the benchmark corpus). Blocks written before it have no such column.
const LINE_BYTES: &str = "line_bytes";
/// Column order of `entries.parquet`.
const ENTRIES_COLUMNS: [&str; 5] = [STREAM_ID, TIMESTAMP, LINE, METADATA, LINE_BYTES];

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

/// How the pages of the line column are compressed. Both produce standard zstd pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineCompression {
    /// zstd's own match finder at this level, as any Parquet writer would do.
    Zstd(i32),
    /// zstd frames built from line-template matches (module doc).
    Template,
}

/// Layout and compression knobs of `entries.parquet`. [`Default`] is what
/// [`encode_log_block`] uses; the fields exist for tests and for measuring
/// (`examples/log_block_size.rs`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogBlockOptions {
    pub line_compression: LineCompression,
    /// A row group is cut once it holds this many bytes of raw line and metadata text. Its
    /// line column is a single page, so this is also the zstd context of the lines.
    pub row_group_bytes: usize,
    /// ... or this many entries, whichever comes first.
    pub row_group_rows: usize,
    /// Rows per data page of `stream_id` and `timestamp_ns`: the granularity of the page index
    /// a reader uses to skip rows inside a row group.
    pub key_page_rows: usize,
    /// Rows per data page of the line column (each page its own zstd frame): a read of a time
    /// slice decodes only the pages it overlaps, at the cost of the matches a page cannot find
    /// in the pages before it.
    pub line_page_rows: usize,
    /// Write the `line_bytes` column (off only to produce blocks of the earlier layout).
    pub line_bytes_column: bool,
}

impl Default for LogBlockOptions {
    fn default() -> Self {
        Self {
            line_compression: LineCompression::Template,
            row_group_bytes: 4 << 20,
            row_group_rows: 64 * 1024,
            key_page_rows: 8192,
            line_page_rows: usize::MAX,
            line_bytes_column: true,
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
    /// The block's id; a new one when not given.
    ulid: Option<String>,
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
        Self::with_sink(tenant, options, EntriesSink::Memory(Vec::new()))
    }

    fn with_sink(
        tenant: &str,
        options: &LogBlockOptions,
        sink: EntriesSink,
    ) -> Result<Self, BlockError> {
        Ok(Self {
            tenant: tenant.to_string(),
            ulid: None,
            label_json: Vec::new(),
            postings: Postings::new(),
            entries: EntriesWriter::new(options, sink)?,
            stats: LogBlockStats {
                min_time_ns: i64::MAX,
                max_time_ns: i64::MIN,
                num_entries: 0,
                line_bytes: 0,
            },
        })
    }

    /// A writer that writes `entries.parquet` to `entries_path` (a temporary name in the block's
    /// directory) instead of memory; [`EncodedBlock::staged`] then names it.
    pub fn to_file(tenant: &str, entries_path: &Path) -> Result<Self, BlockError> {
        let file = std::fs::File::create(entries_path).map_err(|source| BlockError::Write {
            path: entries_path.to_path_buf(),
            source,
        })?;
        let sink = EntriesSink::File {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            path: entries_path.to_path_buf(),
            written: 0,
        };
        Self::with_sink(tenant, &LogBlockOptions::default(), sink)
    }

    /// Gives the block this id (a ULID) instead of a new one.
    pub fn with_ulid(mut self, ulid: String) -> Self {
        self.ulid = Some(ulid);
        self
    }

    /// Adds the next stream (its id is its position).
    pub fn add_stream(&mut self, labels: &Labels, entries: &[LogEntry]) -> Result<(), BlockError> {
        self.begin_stream(labels)?;
        self.add_entries(entries)
    }

    /// Starts the next stream (its id is its position); its entries follow with
    /// [`LogBlockWriter::add_entries`], in time order.
    pub fn begin_stream(&mut self, labels: &Labels) -> Result<(), BlockError> {
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
        Ok(())
    }

    /// Adds entries of the stream begun last, continuing its time order.
    pub fn add_entries(&mut self, entries: &[LogEntry]) -> Result<(), BlockError> {
        let Some(id) = self.label_json.len().checked_sub(1) else {
            return Err(BlockError::Malformed {
                file: ENTRIES_FILE,
                reason: "entries before their stream".into(),
            });
        };
        let id = id as u32;
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
        let entries_output = self.entries.finish()?;
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
            ulid: self
                .ulid
                .unwrap_or_else(|| ulid::Ulid::generate().to_string()),
            tenant: self.tenant,
            kind: LOGS_KIND.into(),
            min_time_ms: stats.min_time_ns.div_euclid(NS_PER_MS),
            max_time_ms: ceil_ms(stats.max_time_ns),
            num_series: num_streams as u64,
            num_samples: stats.num_entries,
            files: vec![],
            logs: Some(stats),
        };
        let (entries_in_memory, entries_len, staged) = match entries_output {
            EntriesOutput::Memory(bytes) => {
                let len = bytes.len() as u64;
                (Some(bytes), len, Vec::new())
            }
            EntriesOutput::File { path, bytes } => (None, bytes, vec![(ENTRIES_FILE, path)]),
        };
        let file = |name: &str, bytes: u64| BlockFile {
            name: name.to_string(),
            bytes,
        };
        meta.files = vec![
            file(STREAMS_FILE, streams_bytes.len() as u64),
            file(ENTRIES_FILE, entries_len),
            file(INDEX_FILE, index_bytes.len() as u64),
        ];
        let mut files = vec![(STREAMS_FILE, streams_bytes)];
        files.extend(entries_in_memory.map(|bytes| (ENTRIES_FILE, bytes)));
        files.push((INDEX_FILE, index_bytes));
        let meta_bytes = Bytes::from(serde_json::to_vec_pretty(&meta)?);
        files.push((META_FILE, meta_bytes));
        Ok(EncodedBlock {
            meta,
            files,
            staged,
        })
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

fn entries_schema(line_bytes_column: bool) -> Schema {
    let mut fields = vec![
        Field::new(STREAM_ID, DataType::UInt32, false),
        Field::new(TIMESTAMP, DataType::Int64, false),
        Field::new(LINE, DataType::Utf8, false),
        Field::new(METADATA, DataType::Utf8, true),
    ];
    if line_bytes_column {
        fields.push(Field::new(LINE_BYTES, DataType::UInt32, false));
    }
    Schema::new(fields)
}

/// The writer properties of `entries.parquet`; with `plain_metadata` the metadata column is
/// not compressed (for row groups without metadata: a reader then needs no zstd context for
/// it, and creating one costs more than reading the chunk).
fn entries_properties(
    options: &LogBlockOptions,
    schema: &Schema,
    plain_metadata: bool,
) -> Result<WriterProperties, BlockError> {
    let sid = ColumnPath::from(STREAM_ID);
    let ts = ColumnPath::from(TIMESTAMP);
    let line = ColumnPath::from(LINE);
    let meta = ColumnPath::from(METADATA);
    let line_bytes = ColumnPath::from(LINE_BYTES);
    let sorting = (0..2)
        .map(|column_idx| SortingColumn {
            column_idx,
            descending: false,
            nulls_first: false,
        })
        .collect();
    // Template pages are compressed by `TemplatePageWriter`, so the column writer must hand
    // them over uncompressed; the chunk metadata is then marked zstd.
    let line_codec = match options.line_compression {
        LineCompression::Zstd(level) => zstd(level),
        LineCompression::Template => Compression::UNCOMPRESSED,
    };
    let mut props = WriterProperties::builder()
        .set_compression(zstd(3))
        .set_max_row_group_row_count(None)
        .set_sorting_columns(Some(sorting))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_data_page_row_count_limit(options.key_page_rows.max(1))
        // Page limits are checked after each write batch.
        .set_write_batch_size(options.key_page_rows.clamp(1, 1024))
        // stream_id: long runs of one value: dictionary + RLE, a few bytes per row group, not
        // worth a zstd context per read.
        .set_column_dictionary_enabled(sid.clone(), true)
        .set_column_compression(sid, Compression::UNCOMPRESSED)
        .set_column_dictionary_enabled(ts.clone(), false)
        .set_column_encoding(ts.clone(), Encoding::DELTA_BINARY_PACKED)
        .set_column_delta_binary_packed_encoder_options(
            ts,
            DeltaBinaryPackedEncoderOptions::try_new(128, 4)?,
        )
        // Lines: PLAIN (length + bytes, the layout the template matcher reads), one page per
        // row group, no statistics (min/max of log text prune nothing).
        .set_column_dictionary_enabled(line.clone(), false)
        .set_column_encoding(line.clone(), Encoding::PLAIN)
        .set_column_compression(line.clone(), line_codec)
        .set_column_statistics_enabled(line.clone(), EnabledStatistics::None)
        .set_column_data_page_size_limit(line.clone(), usize::MAX)
        .set_column_data_page_row_count_limit(line, options.line_page_rows.max(1))
        // Metadata repeats (a few keys and values): dictionary, falling back to plain. Chunk
        // statistics for their null count: a row group without metadata is skipped by what
        // later pipeline stages imply of its lines (`ImpliedSubstrings`).
        .set_column_dictionary_enabled(meta.clone(), true)
        .set_column_statistics_enabled(meta.clone(), EnabledStatistics::Chunk)
        .set_column_compression(
            meta,
            if plain_metadata {
                Compression::UNCOMPRESSED
            } else {
                zstd(3)
            },
        )
        // Lengths repeat within a stream (lines of one shape): PLAIN under zstd beats delta
        // and dictionary encodings here.
        .set_column_dictionary_enabled(line_bytes.clone(), false)
        .set_column_encoding(line_bytes.clone(), Encoding::PLAIN)
        .set_column_statistics_enabled(line_bytes, EnabledStatistics::None)
        .build();
    add_encoded_arrow_schema_to_metadata(schema, &mut props);
    Ok(props)
}

/// Where `entries.parquet` goes: memory, or a file, so that a cut does not hold the block's
/// largest file in memory.
enum EntriesSink {
    Memory(Vec<u8>),
    File {
        file: std::io::BufWriter<std::fs::File>,
        path: PathBuf,
        written: u64,
    },
}

impl std::io::Write for EntriesSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            EntriesSink::Memory(out) => std::io::Write::write(out, buf),
            EntriesSink::File { file, written, .. } => {
                let n = std::io::Write::write(file, buf)?;
                *written += n as u64;
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            EntriesSink::Memory(_) => Ok(()),
            EntriesSink::File { file, .. } => std::io::Write::flush(file),
        }
    }
}

/// A finished `entries.parquet`.
enum EntriesOutput {
    Memory(Bytes),
    /// Written and synced at `path`.
    File {
        path: PathBuf,
        bytes: u64,
    },
}

/// Buffers one row group of entries at a time and writes it once it is full.
struct EntriesWriter {
    writer: SerializedFileWriter<EntriesSink>,
    columns: SchemaDescriptor,
    props: WriterPropertiesPtr,
    /// `props` with an uncompressed metadata column, for row groups without metadata.
    plain_metadata_props: WriterPropertiesPtr,
    template: Option<TemplateCompressor>,
    row_group_bytes: usize,
    row_group_rows: usize,
    ids: Vec<i32>,
    timestamps: Vec<i64>,
    lines: Vec<u8>,
    line_ends: Vec<usize>,
    metadata: Vec<u8>,
    metadata_ends: Vec<usize>,
    metadata_defs: Vec<i16>,
    /// Line lengths, when the `line_bytes` column is written.
    line_bytes: Option<Vec<i32>>,
    bytes: usize,
    grams: LineGramsWriter,
    tokens: LineTokensWriter,
}

impl EntriesWriter {
    fn new(options: &LogBlockOptions, sink: EntriesSink) -> Result<Self, BlockError> {
        let schema = entries_schema(options.line_bytes_column);
        let columns = ArrowSchemaConverter::new().convert(&schema)?;
        let names: Vec<String> = columns
            .columns()
            .iter()
            .map(|c| c.path().string())
            .collect();
        if names[..] != ENTRIES_COLUMNS[..names.len()] {
            return Err(BlockError::Malformed {
                file: ENTRIES_FILE,
                reason: format!("unexpected parquet columns {names:?}"),
            });
        }
        let props = Arc::new(entries_properties(options, &schema, false)?);
        let plain_metadata_props = Arc::new(entries_properties(options, &schema, true)?);
        let writer = SerializedFileWriter::new(sink, columns.root_schema_ptr(), props.clone())?;
        let template = match options.line_compression {
            LineCompression::Template => Some(TemplateCompressor::new()?),
            LineCompression::Zstd(_) => None,
        };
        Ok(Self {
            writer,
            columns,
            props,
            plain_metadata_props,
            template,
            row_group_bytes: options.row_group_bytes.max(1),
            row_group_rows: options.row_group_rows.max(1),
            ids: Vec::new(),
            timestamps: Vec::new(),
            lines: Vec::new(),
            line_ends: Vec::new(),
            metadata: Vec::new(),
            metadata_ends: Vec::new(),
            metadata_defs: Vec::new(),
            line_bytes: options.line_bytes_column.then(Vec::new),
            bytes: 0,
            grams: LineGramsWriter::default(),
            tokens: LineTokensWriter::default(),
        })
    }

    fn push(&mut self, id: u32, entry: &LogEntry) -> Result<(), BlockError> {
        // A new stream starts a new row group once this one is a quarter full, so that row
        // groups mostly hold one stream and the line indexes tell streams apart.
        if self.bytes >= self.row_group_bytes / 4
            && self.ids.last().is_some_and(|&l| l != id as i32)
        {
            self.flush_row_group()?;
        }
        // Stored as parquet INT32 with an unsigned logical type: the bits are the u32.
        self.ids.push(id as i32);
        self.timestamps.push(entry.timestamp_ns);
        self.lines.extend_from_slice(entry.line.as_bytes());
        self.line_ends.push(self.lines.len());
        if let Some(lengths) = &mut self.line_bytes {
            // INT32 with an unsigned logical type, as stream ids; a line is far below 4 GiB.
            lengths.push(entry.line.len() as u32 as i32);
        }
        self.bytes += entry.line.len();
        if entry.structured_metadata.is_empty() {
            self.metadata_defs.push(0);
        } else {
            let before = self.metadata.len();
            serde_json::to_writer(&mut self.metadata, &PairsRef(&entry.structured_metadata))?;
            self.metadata_ends.push(self.metadata.len());
            self.metadata_defs.push(1);
            self.bytes += self.metadata.len() - before;
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
        self.grams.add_row_group(&self.lines, &self.line_ends);
        self.tokens.add_row_group(&self.lines, &self.line_ends);
        let capacity = self.lines.capacity();
        let lines = byte_arrays(std::mem::take(&mut self.lines), &self.line_ends);
        let metadata = byte_arrays(std::mem::take(&mut self.metadata), &self.metadata_ends);
        let mut rg = self.writer.next_row_group()?;
        let missing =
            || ParquetError::General("entries.parquet: fewer columns than expected".into());

        let mut col = rg.next_column()?.ok_or_else(missing)?;
        col.typed::<Int32Type>()
            .write_batch(&self.ids, None, None)?;
        col.close()?;

        let mut col = rg.next_column()?.ok_or_else(missing)?;
        col.typed::<Int64Type>()
            .write_batch(&self.timestamps, None, None)?;
        col.close()?;

        match self.template.as_mut() {
            Some(template) => {
                let mut sink = TrackedWrite::new(Vec::new());
                let mut close = {
                    let pages = TemplatePageWriter {
                        inner: SerializedPageWriter::new(&mut sink),
                        template,
                    };
                    let mut writer = ColumnWriterImpl::<ByteArrayType>::new(
                        self.columns.column(2),
                        self.props.clone(),
                        Box::new(pages),
                    );
                    writer.write_batch(&lines, None, None)?;
                    writer.close()?
                };
                close.metadata = close
                    .metadata
                    .into_builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build()?;
                rg.append_column(&Bytes::from(sink.into_inner()?), close)?;
            }
            None => {
                let mut col = rg.next_column()?.ok_or_else(missing)?;
                col.typed::<ByteArrayType>()
                    .write_batch(&lines, None, None)?;
                col.close()?;
            }
        }

        if self.metadata_defs.iter().all(|&d| d == 0) {
            // No metadata in this row group: the chunk is written uncompressed.
            let mut sink = TrackedWrite::new(Vec::new());
            let close = {
                let mut writer = ColumnWriterImpl::<ByteArrayType>::new(
                    self.columns.column(3),
                    self.plain_metadata_props.clone(),
                    Box::new(SerializedPageWriter::new(&mut sink)),
                );
                writer.write_batch(&metadata, Some(&self.metadata_defs), None)?;
                writer.close()?
            };
            rg.append_column(&Bytes::from(sink.into_inner()?), close)?;
        } else {
            let mut col = rg.next_column()?.ok_or_else(missing)?;
            col.typed::<ByteArrayType>()
                .write_batch(&metadata, Some(&self.metadata_defs), None)?;
            col.close()?;
        }
        if let Some(lengths) = &mut self.line_bytes {
            let mut col = rg.next_column()?.ok_or_else(missing)?;
            col.typed::<Int32Type>().write_batch(lengths, None, None)?;
            col.close()?;
            lengths.clear();
        }
        rg.close()?;

        // The next row group's text needs about as much room: no regrowing (and copying). Taken
        // only now, so two row groups' text is never held at once.
        drop(lines);
        self.lines = Vec::with_capacity(capacity);
        self.ids.clear();
        self.timestamps.clear();
        self.line_ends.clear();
        self.metadata_ends.clear();
        self.metadata_defs.clear();
        self.bytes = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<EntriesOutput, BlockError> {
        self.flush_row_group()?;
        let grams = std::mem::take(&mut self.grams).finish()?;
        self.writer
            .append_key_value_metadata(KeyValue::new(linegrams::KEY.to_string(), grams));
        let tokens = std::mem::take(&mut self.tokens).finish();
        self.writer
            .append_key_value_metadata(KeyValue::new(linetokens::KEY.to_string(), tokens));
        match self.writer.into_inner()? {
            EntriesSink::Memory(bytes) => Ok(EntriesOutput::Memory(Bytes::from(bytes))),
            EntriesSink::File {
                file,
                path,
                written,
            } => {
                let file = file.into_inner().map_err(|e| BlockError::Write {
                    path: path.clone(),
                    source: e.into_error(),
                })?;
                file.sync_all().map_err(|source| BlockError::Write {
                    path: path.clone(),
                    source,
                })?;
                Ok(EntriesOutput::File {
                    path,
                    bytes: written,
                })
            }
        }
    }
}

/// Slices of one buffer, ending at `ends`.
fn byte_arrays(buf: Vec<u8>, ends: &[usize]) -> Vec<ByteArray> {
    let buf = Bytes::from(buf);
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let value = ByteArray::from(buf.slice(start..end));
            start = end;
            value
        })
        .collect()
}

/// Compresses the line column's pages with [`TemplateCompressor`] on their way to the file.
struct TemplatePageWriter<'a> {
    inner: SerializedPageWriter<'a, Vec<u8>>,
    template: &'a mut TemplateCompressor,
}

impl PageWriter for TemplatePageWriter<'_> {
    fn write_page(&mut self, page: CompressedPage) -> Result<PageWriteSpec, ParquetError> {
        let uncompressed_size = page.uncompressed_size();
        let page = match page.compressed_page() {
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                rep_level_encoding,
                statistics,
            } => Page::DataPage {
                buf: Bytes::from(self.template.compress(buf)?),
                num_values: *num_values,
                encoding: *encoding,
                def_level_encoding: *def_level_encoding,
                rep_level_encoding: *rep_level_encoding,
                statistics: statistics.clone(),
            },
            _ => {
                return Err(ParquetError::General(
                    "line column: only v1 data pages are expected".into(),
                ))
            }
        };
        self.inner
            .write_page(CompressedPage::new(page, uncompressed_size))
    }

    fn close(&mut self) -> Result<(), ParquetError> {
        self.inner.close()
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
    read_log_entries_where(entries_file, ids, min_ns, max_ns, &LogReadFilter::default())
}

/// [`read_log_entries`] keeping only entries whose line `filter` keeps; when it skips lines the
/// line column is not decoded at all.
pub fn read_log_entries_where(
    entries_file: Bytes,
    ids: &RoaringBitmap,
    min_ns: i64,
    max_ns: i64,
    filter: &LogReadFilter,
) -> Result<BTreeMap<u32, Vec<LogEntry>>, BlockError> {
    read_log_entries_part(
        entries_file,
        ids,
        (min_ns, max_ns),
        filter,
        ReadPart::WHOLE,
        None,
    )
}

/// [`read_log_entries_where`] over one part of the file's row groups, through `cache` when
/// given ([`RowGroupCache`]).
pub fn read_log_entries_part(
    entries_file: Bytes,
    ids: &RoaringBitmap,
    (min_ns, max_ns): (i64, i64),
    filter: &LogReadFilter,
    part: ReadPart,
    cache: Option<&dyn RowGroupCache>,
) -> Result<BTreeMap<u32, Vec<LogEntry>>, BlockError> {
    let mut out: BTreeMap<u32, Vec<LogEntry>> = BTreeMap::new();
    let need = if !filter.skip_lines || filter.tests_lines() {
        LineNeed::Text
    } else {
        LineNeed::Nothing
    };
    let mut current: Option<(u32, Vec<LogEntry>)> = None;
    visit_rows(
        entries_file,
        ids,
        (min_ns, max_ns),
        filter,
        need,
        part,
        cache,
        |id, timestamp_ns, line, _, meta| {
            let structured_metadata = match meta {
                None => Vec::new(),
                Some(json) => serde_json::from_str::<Pairs>(json)?.0,
            };
            let entry = LogEntry {
                timestamp_ns,
                line: filter.line(line),
                structured_metadata,
            };
            match &mut current {
                Some((cur, entries)) if *cur == id => entries.push(entry),
                _ => {
                    if let Some((cur, entries)) = current.replace((id, vec![entry])) {
                        extend_stream_entries(&mut out, cur, entries);
                    }
                }
            }
            Ok(())
        },
    )?;
    if let Some((cur, entries)) = current {
        extend_stream_entries(&mut out, cur, entries);
    }
    Ok(out)
}

/// Adds `entries` to stream `id`'s in `out`, moving them in when the stream has none yet.
pub fn extend_stream_entries(
    out: &mut BTreeMap<u32, Vec<LogEntry>>,
    id: u32,
    entries: Vec<LogEntry>,
) {
    match out.entry(id) {
        std::collections::btree_map::Entry::Vacant(slot) => {
            slot.insert(entries);
        }
        std::collections::btree_map::Entry::Occupied(mut slot) => slot.get_mut().extend(entries),
    }
}

/// Window sums of the streams in `ids` over the entries in [min_ns, max_ns] whose line `filter`
/// keeps, each adding the value `value` asks for, grouped by stream id and structured metadata
/// (in file order). The line column is decoded only when the filter or the value needs it,
/// through `cache` when given ([`RowGroupCache`]).
#[allow(clippy::too_many_arguments)]
pub fn read_log_window_sums(
    entries_file: Bytes,
    ids: &RoaringBitmap,
    (min_ns, max_ns): (i64, i64),
    filter: &LogReadFilter,
    value: LogSampleValue,
    windows: LogWindows,
    part: ReadPart,
    cache: Option<&dyn RowGroupCache>,
) -> Result<Vec<StreamWindowSums>, BlockError> {
    let need = match value {
        _ if filter.tests_lines() => LineNeed::Text,
        LogSampleValue::LineBytes => LineNeed::Length,
        LogSampleValue::One => LineNeed::Nothing,
    };
    let mut groups: HashMap<(u32, Option<String>), usize> = HashMap::new();
    // (stream id, structured metadata, sums)
    type Group = (u32, Vec<(String, String)>, WindowSumsBuilder);
    let mut out: Vec<Group> = Vec::new();
    // Rows come in runs of one stream, mostly without metadata: remember the last group.
    let mut last: Option<(u32, usize)> = None;
    visit_rows(
        entries_file,
        ids,
        (min_ns, max_ns),
        filter,
        need,
        part,
        cache,
        |id, timestamp_ns, _, line_bytes, meta| {
            let idx = match (meta, last) {
                (None, Some((cur, idx))) if cur == id => idx,
                _ => {
                    let key = (id, meta.map(str::to_string));
                    let idx = match groups.get(&key) {
                        Some(&idx) => idx,
                        None => {
                            let structured_metadata = match meta {
                                None => Vec::new(),
                                Some(json) => serde_json::from_str::<Pairs>(json)?.0,
                            };
                            out.push((id, structured_metadata, WindowSumsBuilder::new(windows)));
                            groups.insert(key, out.len() - 1);
                            out.len() - 1
                        }
                    };
                    if meta.is_none() {
                        last = Some((id, idx));
                    }
                    idx
                }
            };
            out[idx].2.add(timestamp_ns, value.of_length(line_bytes));
            Ok(())
        },
    )?;
    Ok(out
        .into_iter()
        .map(|(stream_id, structured_metadata, sums)| StreamWindowSums {
            stream_id,
            structured_metadata,
            sums: sums.finish(),
        })
        .collect())
}

/// Window sums of one stream of a block over the entries with the same structured metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamWindowSums {
    pub stream_id: u32,
    pub structured_metadata: Vec<(String, String)>,
    pub sums: WindowSums,
}

/// What of each line a read needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineNeed {
    /// Nothing: the line column is not decoded, lines read as empty with length 0.
    Nothing,
    /// Its length: read from `line_bytes`, or from the line where a block has no such column.
    Length,
    /// The text.
    Text,
}

/// Calls `visit(stream id, timestamp, line, line length, structured metadata JSON)` for every
/// row of the streams in `ids` in [min_ns, max_ns] whose line `filter` keeps, in file order (by
/// stream, then time). Row groups and pages that cannot match are not decoded, nor lines that
/// `need` does not ask for (they read as empty). With a `cache`, reads that need the text take
/// whole decoded row groups from it, and leave there those they decode.
#[allow(clippy::too_many_arguments)]
fn visit_rows(
    entries_file: Bytes,
    ids: &RoaringBitmap,
    (min_ns, max_ns): (i64, i64),
    filter: &LogReadFilter,
    need: LineNeed,
    part: ReadPart,
    cache: Option<&dyn RowGroupCache>,
    mut visit: impl FnMut(u32, i64, &str, usize, Option<&str>) -> Result<(), BlockError>,
) -> Result<(), BlockError> {
    if ids.is_empty() || min_ns > max_ns {
        return Ok(());
    }
    let mut load = || crate::parquet_metadata(&entries_file);
    let reader_metadata = match cache {
        Some(cache) => cache.reader_metadata(&mut load)?,
        None => load()?,
    };
    let metadata = reader_metadata.metadata();
    let implied = filter.implied.as_ref().map_or(&[][..], |i| &i.clauses[..]);
    let indexes = match (&filter.required_substrings[..], implied) {
        ([], []) => None,
        (required, implied) => Some(match cache {
            Some(cache) => cache.line_indexes(&mut || Arc::new(LineIndexes::load_all(metadata))),
            None => Arc::new(LineIndexes::load(metadata, required.iter().chain(implied))),
        }),
    };
    let request = Request {
        ids,
        min_ns,
        max_ns,
        substrings: indexes
            .as_deref()
            .map(|g| (g, &filter.required_substrings[..])),
        implied: indexes.as_deref().map(|g| (g, implied)),
        part,
    };
    let Some(planned) = plan(metadata, &request)? else {
        return Ok(());
    };
    let schema = metadata.file_metadata().schema_descr();
    let has_line_bytes = schema
        .columns()
        .iter()
        .any(|c| c.path().string() == LINE_BYTES);
    let need = match need {
        LineNeed::Length if !has_line_bytes => LineNeed::Text,
        need => need,
    };
    let mut counts = (0u64, 0u64);
    let mut rows = RowVisitor {
        ids,
        min_ns,
        max_ns,
        filter,
        counts: &mut counts,
        visit: &mut visit,
    };
    // Reads of more than the cache takes (a scan of everything) pass it by, so that they
    // neither evict what dashboards re-read nor pay for keeping what will not fit.
    let planned_bytes = || -> usize {
        let bytes: i64 = planned
            .iter()
            .map(|(rg, _)| metadata.row_group(*rg).total_byte_size())
            .sum();
        usize::try_from(bytes).unwrap_or(usize::MAX)
    };
    // Lines are read in place from their page (`PlainLines`), which is decompressed whole
    // whatever rows a read wants of it: such reads decode whole row groups.
    if need == LineNeed::Text {
        let cache = cache.filter(|cache| cache.admits(planned_bytes()));
        for (rg, ranges) in &planned {
            let decoded = match cache.and_then(|cache| cache.get(*rg)) {
                Some(decoded) => decoded,
                None => {
                    let decoded = Arc::new(DecodedRowGroup::decode(
                        &entries_file,
                        &reader_metadata,
                        *rg,
                    )?);
                    if let Some(cache) = cache {
                        cache.insert(*rg, decoded.clone());
                    }
                    decoded
                }
            };
            for range in ranges {
                rows.visit_range(
                    &decoded.stream_ids,
                    &decoded.timestamps,
                    Some(&decoded.lines),
                    None,
                    &decoded.metadata,
                    range.clone(),
                )?;
            }
        }
    } else {
        let columns: &[&str] = match need {
            LineNeed::Length => &[STREAM_ID, TIMESTAMP, METADATA, LINE_BYTES],
            LineNeed::Text | LineNeed::Nothing => &[STREAM_ID, TIMESTAMP, METADATA],
        };
        let mask = ProjectionMask::columns(schema, columns.iter().copied());
        let (row_groups, selection) = selection_of(metadata, &planned);
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(entries_file, reader_metadata)
                .with_projection(mask)
                .with_batch_size(READ_BATCH_ROWS)
                .with_row_groups(row_groups)
                .with_row_selection(selection)
                .build()?;
        for batch in reader {
            let batch = batch?;
            let column =
                |name: &'static str| batch.column_by_name(name).ok_or_else(|| malformed(name));
            let lengths = match need {
                LineNeed::Length => Some(downcast::<UInt32Array>(column(LINE_BYTES)?, LINE_BYTES)?),
                _ => None,
            };
            rows.visit_range(
                downcast::<UInt32Array>(column(STREAM_ID)?, STREAM_ID)?,
                downcast::<Int64Array>(column(TIMESTAMP)?, TIMESTAMP)?,
                None,
                lengths,
                downcast::<StringArray>(column(METADATA)?, METADATA)?,
                0..batch.num_rows(),
            )?;
        }
    }
    filter.count_read(counts.0, counts.1);
    Ok(())
}

/// The rows [`visit_rows`] hands out, and what it counts as read.
struct RowVisitor<'a, F> {
    ids: &'a RoaringBitmap,
    min_ns: i64,
    max_ns: i64,
    filter: &'a LogReadFilter,
    /// Lines and line bytes read.
    counts: &'a mut (u64, u64),
    visit: &'a mut F,
}

impl<F> RowVisitor<'_, F>
where
    F: FnMut(u32, i64, &str, usize, Option<&str>) -> Result<(), BlockError>,
{
    /// Visits the wanted rows among `rows` of decoded columns.
    fn visit_range(
        &mut self,
        sid: &UInt32Array,
        ts: &Int64Array,
        line: Option<&PlainLines>,
        lengths: Option<&UInt32Array>,
        meta: &StringArray,
        rows: Range<usize>,
    ) -> Result<(), BlockError> {
        // Lines the filter's search does not land in fail it: they are counted, not tested.
        let seek = self.filter.line_seek.as_ref().zip(line);
        let landed = seek.map(|(seek, lines)| lines.seek_rows(seek, rows.clone()));
        let mut landed = landed.as_deref().map(|rows| rows.iter().peekable());
        let mut i = rows.start;
        while i < rows.end {
            // Rows come in runs of one stream: test membership once per run.
            let id = sid.value(i);
            let mut end = i + 1;
            while end < rows.end && sid.value(end) == id {
                end += 1;
            }
            if self.ids.contains(id) {
                for row in i..end {
                    let t = ts.value(row);
                    if t < self.min_ns || t > self.max_ns {
                        continue;
                    }
                    let len = match (lengths, line) {
                        (Some(lengths), _) => lengths.value(row) as usize,
                        (None, Some(lines)) => lines.bytes(row).len(),
                        (None, None) => 0,
                    };
                    self.counts.0 += 1;
                    self.counts.1 += len as u64;
                    if let Some(landed) = &mut landed {
                        // Rows landed on but not wanted (other streams, times) are passed.
                        while landed.next_if(|&&r| r < row).is_some() {}
                        if landed.next_if(|&&r| r == row).is_none() {
                            continue;
                        }
                    }
                    let text = match line {
                        Some(lines) => lines.text(row)?,
                        None => "",
                    };
                    let json = (!meta.is_null(row)).then(|| meta.value(row));
                    if !self.filter.keeps_entry(text, json.is_some()) {
                        continue;
                    }
                    (self.visit)(id, t, text, len, json)?;
                }
            }
            i = end;
        }
        Ok(())
    }
}

/// Where reads of one entries file keep and find its row groups decoded whole: blocks never
/// change, so a decoded row group stays true, and repeated queries (a dashboard refreshing)
/// skip decompressing it again.
pub trait RowGroupCache: Send + Sync {
    fn get(&self, row_group: usize) -> Option<Arc<DecodedRowGroup>>;
    fn insert(&self, row_group: usize, decoded: Arc<DecodedRowGroup>);
    /// Whether a read that decodes row groups of `bytes` (uncompressed) should go through the
    /// cache.
    fn admits(&self, bytes: usize) -> bool;
    /// The file's line indexes, kept from an earlier read or decoded by `load` (and kept).
    fn line_indexes(&self, load: &mut dyn FnMut() -> Arc<LineIndexes>) -> Arc<LineIndexes>;
    /// The file's Parquet metadata (footer and page index), kept from an earlier read or
    /// parsed by `load` (and kept): parsing it cost as much as a cached read of a few streams.
    fn reader_metadata(
        &self,
        load: &mut dyn FnMut() -> Result<ArrowReaderMetadata, BlockError>,
    ) -> Result<ArrowReaderMetadata, BlockError>;
}

/// Every row of one row group of an entries file, with the columns a read of lines needs.
#[derive(Debug)]
pub struct DecodedRowGroup {
    stream_ids: UInt32Array,
    timestamps: Int64Array,
    lines: PlainLines,
    metadata: StringArray,
}

/// The lines of one row group as their PLAIN page holds them (each a 4-byte little-endian
/// length, then the text), read in place: copying them into an Arrow array (and checking every
/// one is UTF-8) cost more than decompressing them.
#[derive(Debug)]
pub struct PlainLines {
    page: Bytes,
    /// Where each line's text starts in `page`, then where a line after the last would
    /// (`page.len() + LEN_PREFIX`), so line `i` ends `LEN_PREFIX` before `starts[i + 1]`.
    starts: Vec<u32>,
}

impl PlainLines {
    /// The `rows` lines of `page`; an error unless it holds exactly that many.
    fn parse(page: Bytes, rows: usize) -> Result<Self, BlockError> {
        let bad = || BlockError::Malformed {
            file: ENTRIES_FILE,
            reason: "line page does not hold its rows".into(),
        };
        u32::try_from(page.len() + LEN_PREFIX).map_err(|_| bad())?;
        let mut starts = Vec::with_capacity(rows + 1);
        let mut at = 0usize;
        for _ in 0..rows {
            let prefix = page.get(at..at + LEN_PREFIX).ok_or_else(bad)?;
            let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
            at += LEN_PREFIX;
            starts.push(at as u32);
            at = at
                .checked_add(len)
                .filter(|&end| end <= page.len())
                .ok_or_else(bad)?;
        }
        if at != page.len() {
            return Err(bad());
        }
        starts.push((at + LEN_PREFIX) as u32);
        Ok(Self { page, starts })
    }

    /// The lines of an array, laid out as a PLAIN page (for line columns in another encoding).
    fn from_array(lines: &StringArray) -> Result<Self, BlockError> {
        let mut page = Vec::with_capacity(lines.value_data().len() + lines.len() * LEN_PREFIX);
        for line in lines.iter() {
            let line = line.unwrap_or_default();
            page.extend_from_slice(&(line.len() as u32).to_le_bytes());
            page.extend_from_slice(line.as_bytes());
        }
        Self::parse(page.into(), lines.len())
    }

    fn start(&self, row: usize) -> usize {
        self.starts[row] as usize
    }

    fn bytes(&self, row: usize) -> &[u8] {
        &self.page[self.start(row)..self.start(row + 1) - LEN_PREFIX]
    }

    fn text(&self, row: usize) -> Result<&str, BlockError> {
        std::str::from_utf8(self.bytes(row)).map_err(|_| BlockError::Malformed {
            file: ENTRIES_FILE,
            reason: format!("line {row} of a row group is not UTF-8"),
        })
    }

    /// The rows among `rows` that one search of their page lands in (ascending): after each
    /// landing the search goes on from the next line. A match that starts in the length in
    /// front of a line lands on the line before, which the caller's test then drops.
    fn seek_rows(&self, seek: &LineSeekFn, rows: Range<usize>) -> Vec<usize> {
        let mut landed = Vec::new();
        if rows.is_empty() {
            return landed;
        }
        let end = self.start(rows.end) - LEN_PREFIX;
        let mut row = rows.start;
        while row < rows.end {
            let from = self.start(row);
            let Some(at) = seek(&self.page[from..end]).map(|at| from + at) else {
                break;
            };
            // The line holding byte `at`: the last to start at or before it (a match is never
            // empty, so `at` is inside a line, not at an empty one sharing its start).
            row += self.starts[row + 1..rows.end].partition_point(|&s| s as usize <= at);
            landed.push(row);
            row += 1;
        }
        landed
    }

    fn memory_size(&self) -> usize {
        self.page.len() + self.starts.capacity() * std::mem::size_of::<u32>()
    }
}

impl DecodedRowGroup {
    fn decode(
        entries_file: &Bytes,
        reader_metadata: &ArrowReaderMetadata,
        row_group: usize,
    ) -> Result<DecodedRowGroup, BlockError> {
        let metadata = reader_metadata.metadata();
        let rows = usize::try_from(metadata.row_group(row_group).num_rows()).unwrap_or(0);
        let schema = metadata.file_metadata().schema_descr();
        let read = |columns: &[&str]| -> Result<RecordBatch, BlockError> {
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
                entries_file.clone(),
                reader_metadata.clone(),
            )
            .with_projection(ProjectionMask::columns(schema, columns.iter().copied()))
            .with_batch_size(rows.max(1))
            .with_row_groups(vec![row_group])
            .build()?;
            let batches = reader.collect::<Result<Vec<RecordBatch>, _>>()?;
            Ok(match batches.len() {
                1 => batches.into_iter().next().ok_or_else(|| malformed(LINE))?,
                _ => arrow::compute::concat_batches(&batches[0].schema(), &batches)?,
            })
        };
        let batch = read(&[STREAM_ID, TIMESTAMP, METADATA])?;
        let column = |name: &'static str| batch.column_by_name(name).ok_or_else(|| malformed(name));
        let lines = match plain_line_page(entries_file, metadata, row_group, rows)? {
            Some(page) => PlainLines::parse(page, rows)?,
            None => {
                let batch = read(&[LINE])?;
                let lines = batch.column_by_name(LINE).ok_or_else(|| malformed(LINE))?;
                PlainLines::from_array(downcast::<StringArray>(lines, LINE)?)?
            }
        };
        Ok(DecodedRowGroup {
            stream_ids: downcast::<UInt32Array>(column(STREAM_ID)?, STREAM_ID)?.clone(),
            timestamps: downcast::<Int64Array>(column(TIMESTAMP)?, TIMESTAMP)?.clone(),
            lines,
            metadata: downcast::<StringArray>(column(METADATA)?, METADATA)?.clone(),
        })
    }

    /// Memory the decoded columns hold.
    pub fn memory_size(&self) -> usize {
        self.stream_ids.get_array_memory_size()
            + self.timestamps.get_array_memory_size()
            + self.lines.memory_size()
            + self.metadata.get_array_memory_size()
    }
}

/// The line column of a row group as one decompressed PLAIN page of its `rows` values, as
/// this crate writes it (several pages are joined); `None` when it is laid out otherwise
/// (a dictionary, other encodings, definition levels), for the Arrow reader to decode.
fn plain_line_page(
    entries_file: &Bytes,
    metadata: &ParquetMetaData,
    row_group: usize,
    rows: usize,
) -> Result<Option<Bytes>, BlockError> {
    use parquet::column::page::{Page, PageReader};
    let row_group_meta = metadata.row_group(row_group);
    let Some(column) = row_group_meta
        .columns()
        .iter()
        .position(|c| c.column_path().string() == LINE)
    else {
        return Err(malformed(LINE));
    };
    let descr = row_group_meta.column(column).column_descr();
    if descr.max_def_level() != 0 || descr.max_rep_level() != 0 {
        return Ok(None);
    }
    let mut pages = SerializedPageReader::new(
        Arc::new(entries_file.clone()),
        row_group_meta.column(column),
        rows,
        None,
    )?;
    let mut bufs: Vec<Bytes> = Vec::new();
    while let Some(page) = pages.get_next_page()? {
        match page {
            Page::DataPage {
                buf,
                encoding: Encoding::PLAIN,
                ..
            }
            | Page::DataPageV2 {
                buf,
                encoding: Encoding::PLAIN,
                def_levels_byte_len: 0,
                rep_levels_byte_len: 0,
                ..
            } => bufs.push(buf),
            _ => return Ok(None),
        }
    }
    // One page (the default layout) is used as it is; several are joined.
    Ok(Some(match bufs.len() {
        1 => bufs.swap_remove(0),
        _ => Bytes::from(bufs.concat()),
    }))
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

/// Whether the statistics of a row group say no entry has structured metadata.
fn without_metadata(rg: &parquet::file::metadata::RowGroupMetaData, meta_col: usize) -> bool {
    rg.column(meta_col)
        .statistics()
        .and_then(|s| s.null_count_opt())
        .is_some_and(|nulls| i64::try_from(nulls).is_ok_and(|n| n == rg.num_rows()))
}

struct Request<'a> {
    /// Only row groups in this part are read.
    part: ReadPart,
    ids: &'a RoaringBitmap,
    min_ns: i64,
    max_ns: i64,
    /// Row groups whose line indexes rule out a required substring are skipped.
    substrings: Option<(&'a LineIndexes, &'a [Vec<String>])>,
    /// Likewise for implied substrings ([`vigil_model::ImpliedSubstrings`]), in row groups
    /// without structured metadata.
    implied: Option<(&'a LineIndexes, &'a [Vec<String>])>,
}

/// The per-row-group line indexes of an `entries.parquet` that it has (older files lack the
/// token filters).
pub struct LineIndexes {
    grams: Option<LineGrams>,
    tokens: Option<LineTokens>,
}

impl LineIndexes {
    /// Decodes every index the file has.
    fn load_all(metadata: &ParquetMetaData) -> LineIndexes {
        LineIndexes::load_these(metadata, true, true)
    }

    /// Memory the decoded indexes hold.
    pub fn memory_size(&self) -> usize {
        self.grams.as_ref().map_or(0, LineGrams::memory_size)
            + self.tokens.as_ref().map_or(0, LineTokens::memory_size)
    }

    /// Decodes the indexes that can rule out one of `clauses`' texts (each costs a few
    /// hundred microseconds per block).
    fn load<'c>(
        metadata: &ParquetMetaData,
        clauses: impl Iterator<Item = &'c Vec<String>> + Clone,
    ) -> LineIndexes {
        let mut texts = clauses.flatten().map(|t| t.as_bytes());
        let grams = texts.clone().any(|t| t.len() >= 3);
        let tokens = texts.any(linetokens::has_indexed_token);
        LineIndexes::load_these(metadata, grams, tokens)
    }

    /// Decodes the trigram and the token index, where asked and present.
    fn load_these(metadata: &ParquetMetaData, grams: bool, tokens: bool) -> LineIndexes {
        let value = |key: &str| {
            metadata
                .file_metadata()
                .key_value_metadata()
                .and_then(|kv| kv.iter().find(|kv| kv.key == key))
                .and_then(|kv| kv.value.as_deref())
        };
        let row_groups = metadata.num_row_groups();
        LineIndexes {
            grams: grams
                .then(|| value(linegrams::KEY).and_then(|v| LineGrams::decode(v, row_groups)))
                .flatten(),
            tokens: tokens
                .then(|| value(linetokens::KEY).and_then(|v| LineTokens::decode(v, row_groups)))
                .flatten(),
        }
    }

    /// Whether a line of the row group may satisfy every clause, each clause being a list of
    /// alternatives of which a matching line contains at least one.
    fn may_match(&self, row_group: usize, clauses: &[Vec<String>]) -> bool {
        clauses.iter().all(|alternatives| {
            alternatives.iter().any(|text| {
                self.grams
                    .as_ref()
                    .is_none_or(|g| g.may_contain(row_group, text.as_bytes()))
                    && self
                        .tokens
                        .as_ref()
                        .is_none_or(|t| t.may_contain(row_group, text.as_bytes()))
            })
        })
    }
}

/// The row groups to decode and, within them, the rows worth decoding: row groups are dropped
/// by their column-chunk statistics, rows by the page index of `stream_id` and `timestamp_ns`.
/// `None` when nothing can match.
fn plan(metadata: &ParquetMetaData, request: &Request) -> Result<Option<Planned>, BlockError> {
    let columns = metadata.file_metadata().schema_descr();
    let index_of = |name: &str| {
        columns
            .columns()
            .iter()
            .position(|c| c.path().string() == name)
            .ok_or_else(|| malformed(name))
    };
    let (sid_col, ts_col) = (index_of(STREAM_ID)?, index_of(TIMESTAMP)?);
    let meta_col = index_of(METADATA)?;
    // Each kept row group with its selected row ranges.
    let mut kept: Planned = Vec::new();
    let keys = SortKeys {
        ids: request.ids,
        min_time: request.min_ns,
        max_time: request.max_ns,
        id_col: sid_col,
        time_col: ts_col,
    };
    for (rg_idx, rg) in metadata.row_groups().iter().enumerate() {
        let keep = keys.row_group_may_match(rg)
            && request
                .substrings
                .is_none_or(|(grams, clauses)| grams.may_match(rg_idx, clauses))
            && request.implied.is_none_or(|(grams, clauses)| {
                !without_metadata(rg, meta_col) || grams.may_match(rg_idx, clauses)
            });
        if !keep {
            continue;
        }
        let ranges = keys.page_rows(metadata, rg_idx);
        if ranges.is_empty() {
            continue;
        }
        kept.push((rg_idx, ranges));
    }
    // The part's share of the kept row groups, cut by the rows they select, so the parts of
    // a read that wants a few row groups of a block share them out.
    let weights: Vec<usize> = kept
        .iter()
        .map(|(_, ranges)| ranges.iter().map(|r| r.end - r.start).sum())
        .collect();
    let (first, end) = request.part.share(&weights);
    let planned: Planned = kept.into_iter().take(end).skip(first).collect();
    Ok((!planned.is_empty()).then_some(planned))
}

/// zstd's smallest match length; shorter matches are emitted as literals.
const MIN_MATCH: usize = 3;
/// Bytes of the PLAIN length prefix in front of every line.
const LEN_PREFIX: usize = 4;
/// Hash bits of the fallback matcher's table.
const LZ_HASH_BITS: u32 = 16;
/// zstd's decoders accept windows up to 2^27 by default; larger pages use stock zstd.
const MAX_WINDOW_LOG: u32 = 27;
/// Level for pages the template path cannot take, and for zstd's entropy stage.
const FALLBACK_LEVEL: i32 = 3;

/// Compresses PLAIN pages of lines into zstd frames from template matches (module doc).
struct TemplateCompressor {
    zstd: zstd_ffi::Context,
    finder: SequenceFinder,
    verify: Vec<u8>,
}

impl TemplateCompressor {
    fn new() -> Result<Self, ParquetError> {
        Ok(Self {
            zstd: zstd_ffi::Context::new()
                .ok_or_else(|| ParquetError::General("cannot allocate a zstd context".into()))?,
            finder: SequenceFinder::default(),
            verify: Vec::new(),
        })
    }

    /// One zstd frame holding `page`.
    fn compress(&mut self, page: &[u8]) -> Result<Vec<u8>, ParquetError> {
        let window_log = page.len().max(1 << 10).next_power_of_two().trailing_zeros();
        if window_log <= MAX_WINDOW_LOG && self.finder.find(page) {
            let frame =
                self.zstd
                    .compress_sequences(page, &self.finder.seqs, window_log, FALLBACK_LEVEL);
            if let Ok(frame) = frame {
                if self
                    .zstd
                    .decompress(&frame, page.len(), &mut self.verify)
                    .is_ok()
                    && self.verify == page
                {
                    return Ok(frame);
                }
                debug_assert!(false, "template frame does not reproduce its page");
            }
        }
        self.zstd
            .compress(page, FALLBACK_LEVEL)
            .map_err(|e| ParquetError::General(format!("zstd: {e}")))
    }
}

/// Turns a page of PLAIN lines (`u32` length, bytes) into zstd sequences.
#[derive(Default)]
struct SequenceFinder {
    seqs: Vec<zstd_ffi::Sequence>,
    /// Literal bytes not yet attached to a sequence.
    lit_run: usize,
    /// The match being extended: position, length, offset.
    pending: (usize, usize, usize),
    lines: Vec<LineInfo>,
    /// Ends of the tokens of every line, relative to the line's start.
    /// (`u32`: a page is shorter than 4 GiB, and this holds a few entries per line byte.)
    token_ends: Vec<u32>,
    /// Latest line by shape-with-length and by shape.
    by_key: rustc_hash::FxHashMap<u64, usize>,
    by_shape: rustc_hash::FxHashMap<u64, usize>,
    /// Fallback matcher: 1 + position by hash of 4 bytes, 0 when empty.
    lz: Vec<u32>,
    /// Scratch: the shape of the current line.
    shape_text: Vec<u8>,
}

/// A line of the page being compressed.
struct LineInfo {
    /// Position of its text (after the length prefix) and length.
    start: usize,
    len: usize,
    /// Shape hash with and without the length.
    key: u64,
    shape: u64,
    /// Its tokens (alternating runs of digits and of other bytes) in `token_ends`.
    tokens: Range<usize>,
    /// The earlier line it was matched against.
    template: Option<usize>,
}

impl SequenceFinder {
    /// Fills `seqs` for `page`; false if the page is not a sequence of PLAIN byte arrays.
    fn find(&mut self, page: &[u8]) -> bool {
        self.seqs.clear();
        self.lit_run = 0;
        self.pending = (0, 0, 0);
        self.lines.clear();
        self.token_ends.clear();
        self.by_key.clear();
        self.by_shape.clear();
        self.lz.clear();
        self.lz.resize(1 << LZ_HASH_BITS, 0);
        if page.len() >= u32::MAX as usize {
            return false;
        }
        let mut at = 0;
        while at < page.len() {
            let Some(len) = page
                .get(at..at + LEN_PREFIX)
                .and_then(|b| <[u8; LEN_PREFIX]>::try_from(b).ok())
                .map(|b| u32::from_le_bytes(b) as usize)
            else {
                return false;
            };
            let start = at + LEN_PREFIX;
            if page.len() - start < len {
                return false;
            }
            self.line(page, start, len);
            at = start + len;
        }
        self.flush_match();
        true
    }

    /// Emits the sequences of the line at `start..start + len` and of its length prefix.
    fn line(&mut self, page: &[u8], start: usize, len: usize) {
        let text = &page[start..start + len];
        let index = self.lines.len();
        let first_token = self.token_ends.len();
        // The shape: the text with every run of digits replaced by one 0xff byte (not UTF-8,
        // so it cannot collide with text).
        self.shape_text.clear();
        self.shape_text.resize(len, 0);
        self.token_ends.resize(first_token + len + 1, 0);
        let (mut n, mut t, mut in_digits) = (0, first_token, false);
        // Branch-free: this loop sees every byte of every line.
        for (i, &b) in text.iter().enumerate() {
            let digit = b.wrapping_sub(b'0') < 10;
            self.shape_text[n] = if digit { 0xff } else { b };
            n += usize::from(!(digit && in_digits));
            self.token_ends[t] = i as u32;
            t += usize::from(digit != in_digits && i > 0);
            in_digits = digit;
        }
        if len > 0 {
            self.token_ends[t] = len as u32;
            t += 1;
        }
        self.token_ends.truncate(t);
        self.shape_text.truncate(n);
        let shape = hash_bytes(&self.shape_text);
        let key = shape ^ (len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The line after the previous line's template first: a run of lines seen before then
        // matches at one offset, which zstd codes as a repeat offset.
        let next = index
            .checked_sub(1)
            .and_then(|p| self.lines[p].template)
            .map(|t| t + 1)
            .filter(|&t| t < index);
        let by_key = self.by_key.insert(key, index);
        let by_shape = self.by_shape.insert(shape, index);
        let template = next
            .filter(|&t| self.lines[t].key == key)
            .or(by_key)
            .or_else(|| next.filter(|&t| self.lines[t].shape == shape))
            .or(by_shape);
        self.lines.push(LineInfo {
            start,
            len,
            key,
            shape,
            tokens: first_token..self.token_ends.len(),
            template,
        });
        let matched = template.is_some_and(|t| self.match_template(page, index, t));
        if !matched {
            self.lines[index].template = None;
            self.match_greedy(page, start - LEN_PREFIX, start + len);
        }
    }

    /// Emits line `index` (prefix included) as matches against line `template` where they
    /// agree; false, having emitted nothing, if their token structures differ (a hash
    /// collision).
    fn match_template(&mut self, page: &[u8], index: usize, template: usize) -> bool {
        let (line, tpl) = (&self.lines[index], &self.lines[template]);
        let (ls, cs) = (line.start, tpl.start);
        if line.len == tpl.len {
            // Same length (the common case): one offset for the whole line, so a byte diff
            // does what the token walk below would.
            let (to, offset) = (ls + line.len, ls - cs);
            let mut i = ls - LEN_PREFIX;
            while i < to {
                let same = common_prefix(&page[i..to], &page[i - offset..to - offset]);
                self.emit_match(i, same, offset);
                i += same;
                let differ = page[i..to]
                    .iter()
                    .zip(&page[i - offset..to - offset])
                    .take_while(|(a, b)| a != b)
                    .count();
                self.emit_literals(differ);
                i += differ;
            }
            return true;
        }
        if line.tokens.len() != tpl.tokens.len()
            || (line.len > 0 && page[ls].is_ascii_digit() != page[cs].is_ascii_digit())
        {
            return false;
        }
        let (ta, tb) = (line.tokens.start, tpl.tokens.start);
        let prefix = ls - LEN_PREFIX;
        if page[prefix..ls] == page[cs - LEN_PREFIX..cs] {
            self.emit_match(prefix, LEN_PREFIX, ls - cs);
        } else {
            self.emit_literals(LEN_PREFIX);
        }
        let (mut a0, mut b0) = (0, 0);
        for k in 0..self.lines[index].tokens.len() {
            let (a1, b1) = (
                self.token_ends[ta + k] as usize,
                self.token_ends[tb + k] as usize,
            );
            let a = &page[ls + a0..ls + a1];
            let b = &page[cs + b0..cs + b1];
            let offset = (ls + a0) - (cs + b0);
            if a == b {
                self.emit_match(ls + a0, a.len(), offset);
            } else {
                // Differing tokens (digit runs): keep what their ends share.
                let head = common_prefix(a, b);
                let tail = common_suffix(&a[head..], &b[head..]);
                self.emit_match(ls + a0, head, offset);
                self.emit_literals(a.len() - head - tail);
                self.emit_match(ls + a1 - tail, tail, (ls + a1) - (cs + b1));
            }
            (a0, b0) = (a1, b1);
        }
        true
    }

    /// Greedy matching of `from..to` against earlier positions with the same 4-byte hash (the
    /// positions of lines matched this way; indexing template-matched lines too costs time and
    /// does not pay).
    fn match_greedy(&mut self, page: &[u8], from: usize, to: usize) {
        let mut p = from;
        while p + 4 <= to {
            let h = lz_hash(page, p);
            let candidate = self.lz[h] as usize;
            self.lz[h] = p as u32 + 1;
            if let Some(c) = candidate.checked_sub(1) {
                let len = common_prefix(&page[c..to], &page[p..to]);
                if len >= 4 {
                    self.emit_match(p, len, p - c);
                    p += len;
                    continue;
                }
            }
            self.emit_literals(1);
            p += 1;
        }
        self.emit_literals(to - p);
    }

    fn emit_literals(&mut self, n: usize) {
        if n > 0 {
            self.flush_match();
            self.lit_run += n;
        }
    }

    /// A match of `len` bytes at `pos` copying from `pos - offset`; extends the pending match
    /// when it continues it.
    fn emit_match(&mut self, pos: usize, len: usize, offset: usize) {
        if len == 0 {
            return;
        }
        let (p, l, o) = self.pending;
        if l > 0 && o == offset && p + l == pos {
            self.pending.1 += len;
            return;
        }
        self.flush_match();
        self.pending = (pos, len, offset);
    }

    fn flush_match(&mut self) {
        let (_, len, offset) = self.pending;
        if len == 0 {
            return;
        }
        if len < MIN_MATCH {
            self.lit_run += len;
        } else {
            self.seqs.push(zstd_ffi::Sequence {
                offset: offset as u32,
                litLength: self.lit_run as u32,
                matchLength: len as u32,
                rep: 0,
            });
            self.lit_run = 0;
        }
        self.pending.1 = 0;
    }
}

/// A fast 64-bit hash (8 bytes per step; equal inputs only need equal hashes, and a collision
/// only costs compression, never correctness).
fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        h = (h ^ load_u64(chunk)).wrapping_mul(K).rotate_left(31);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^ (h >> 29)
}

fn lz_hash(page: &[u8], p: usize) -> usize {
    let v = u32::from_le_bytes([page[p], page[p + 1], page[p + 2], page[p + 3]]);
    (v.wrapping_mul(2_654_435_761) >> (32 - LZ_HASH_BITS)) as usize
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    // Eight bytes at a time: lines are mostly equal to their templates.
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let diff = load_u64(x) ^ load_u64(y);
        if diff != 0 {
            return i + (diff.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + a[i..]
        .iter()
        .zip(&b[i..])
        .take_while(|(x, y)| x == y)
        .count()
}

/// The first 8 bytes of `s` (which has at least 8), little endian.
fn load_u64(s: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[..8]);
    u64::from_le_bytes(w)
}

fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

/// The part of zstd's experimental API the template path needs: compressing caller-chosen
/// sequences into a standard frame (`ZSTD_compressSequences`). zstd-safe does not wrap it.
mod zstd_ffi {
    use std::ffi::CStr;
    use std::ptr::NonNull;

    use zstd_sys as z;

    pub use z::ZSTD_Sequence as Sequence;

    /// A compression and a decompression context.
    pub struct Context {
        cctx: NonNull<z::ZSTD_CCtx>,
        dctx: NonNull<z::ZSTD_DCtx>,
    }

    // SAFETY: zstd contexts have no thread affinity; `&mut self` gives exclusive use.
    unsafe impl Send for Context {}

    impl Drop for Context {
        fn drop(&mut self) {
            // SAFETY: both were created by zstd and are freed once.
            unsafe {
                z::ZSTD_freeCCtx(self.cctx.as_ptr());
                z::ZSTD_freeDCtx(self.dctx.as_ptr());
            }
        }
    }

    fn check(code: usize) -> Result<usize, String> {
        // SAFETY: ZSTD_isError and ZSTD_getErrorName accept any value and return a static
        // NUL-terminated string.
        unsafe {
            if z::ZSTD_isError(code) == 0 {
                Ok(code)
            } else {
                Err(CStr::from_ptr(z::ZSTD_getErrorName(code))
                    .to_string_lossy()
                    .into_owned())
            }
        }
    }

    impl Context {
        pub fn new() -> Option<Self> {
            // SAFETY: plain constructors; null on allocation failure.
            let cctx = NonNull::new(unsafe { z::ZSTD_createCCtx() });
            let dctx = NonNull::new(unsafe { z::ZSTD_createDCtx() });
            match (cctx, dctx) {
                (Some(cctx), Some(dctx)) => Some(Self { cctx, dctx }),
                (cctx, dctx) => {
                    // SAFETY: freeing null is a no-op; non-null ones were just created.
                    unsafe {
                        z::ZSTD_freeCCtx(cctx.map_or(std::ptr::null_mut(), |c| c.as_ptr()));
                        z::ZSTD_freeDCtx(dctx.map_or(std::ptr::null_mut(), |d| d.as_ptr()));
                    }
                    None
                }
            }
        }

        fn set(&mut self, param: z::ZSTD_cParameter, value: i32) -> Result<(), String> {
            // SAFETY: valid context; zstd validates the parameter and value.
            check(unsafe { z::ZSTD_CCtx_setParameter(self.cctx.as_ptr(), param, value) })
                .map(|_| ())
        }

        fn reset(&mut self, level: i32) -> Result<(), String> {
            // SAFETY: valid context.
            check(unsafe {
                z::ZSTD_CCtx_reset(
                    self.cctx.as_ptr(),
                    z::ZSTD_ResetDirective::ZSTD_reset_session_and_parameters,
                )
            })?;
            self.set(z::ZSTD_cParameter::ZSTD_c_compressionLevel, level)
        }

        /// One frame of `src` built from `seqs` (trailing bytes not covered are literals).
        /// zstd validates the sequences (offsets within the window and the data, lengths
        /// within `src`) and fails rather than trusting them.
        pub fn compress_sequences(
            &mut self,
            src: &[u8],
            seqs: &[Sequence],
            window_log: u32,
            level: i32,
        ) -> Result<Vec<u8>, String> {
            use z::ZSTD_cParameter as P;
            self.reset(level)?;
            self.set(P::ZSTD_c_windowLog, window_log.max(10) as i32)?;
            self.set(P::ZSTD_c_minMatch, super::MIN_MATCH as i32)?;
            // ZSTD_c_validateSequences
            self.set(P::ZSTD_c_experimentalParam12, 1)?;
            // SAFETY: plain size computation.
            let mut out: Vec<u8> = Vec::with_capacity(unsafe { z::ZSTD_compressBound(src.len()) });
            // SAFETY: `out` has `capacity` writable bytes, `seqs` and `src` are valid for their
            // lengths; zstd writes at most `capacity` bytes and returns how many.
            let written = check(unsafe {
                z::ZSTD_compressSequences(
                    self.cctx.as_ptr(),
                    out.as_mut_ptr().cast(),
                    out.capacity(),
                    seqs.as_ptr(),
                    seqs.len(),
                    src.as_ptr().cast(),
                    src.len(),
                )
            })?;
            // SAFETY: zstd initialised `written` <= capacity bytes.
            unsafe { out.set_len(written) };
            Ok(out)
        }

        /// One frame of `src` from zstd's own match finder.
        pub fn compress(&mut self, src: &[u8], level: i32) -> Result<Vec<u8>, String> {
            self.reset(level)?;
            // SAFETY: plain size computation.
            let mut out: Vec<u8> = Vec::with_capacity(unsafe { z::ZSTD_compressBound(src.len()) });
            // SAFETY: as in `compress_sequences`.
            let written = check(unsafe {
                z::ZSTD_compress2(
                    self.cctx.as_ptr(),
                    out.as_mut_ptr().cast(),
                    out.capacity(),
                    src.as_ptr().cast(),
                    src.len(),
                )
            })?;
            // SAFETY: zstd initialised `written` <= capacity bytes.
            unsafe { out.set_len(written) };
            Ok(out)
        }

        /// Decompresses `frame` (of `len` bytes when decoded) into `out`.
        pub fn decompress(
            &mut self,
            frame: &[u8],
            len: usize,
            out: &mut Vec<u8>,
        ) -> Result<(), String> {
            out.clear();
            out.reserve(len);
            // SAFETY: `out` has at least `len` writable bytes; zstd writes at most `len`.
            let written = check(unsafe {
                z::ZSTD_decompressDCtx(
                    self.dctx.as_ptr(),
                    out.as_mut_ptr().cast(),
                    len,
                    frame.as_ptr().cast(),
                    frame.len(),
                )
            })?;
            // SAFETY: zstd initialised `written` <= len bytes.
            unsafe { out.set_len(written) };
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlockIndex;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use vigil_model::{Label, LogWindowSums, MatchOp, Matcher};

    fn labels(app: &str, pod: &str) -> Labels {
        Labels::from_unsorted(vec![Label::new("app", app), Label::new("pod", pod)])
    }

    fn entry(t: i64, line: &str) -> LogEntry {
        LogEntry {
            timestamp_ns: t,
            line: line.to_string(),
            structured_metadata: Vec::new(),
        }
    }

    fn file(block: &EncodedBlock, name: &str) -> Bytes {
        block
            .files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b.clone())
            .unwrap()
    }

    fn all(n: u32) -> RoaringBitmap {
        (0..n).collect()
    }

    /// Small row groups and pages, to exercise skipping.
    fn small(line_compression: LineCompression) -> LogBlockOptions {
        LogBlockOptions {
            line_compression,
            row_group_bytes: 1 << 20,
            row_group_rows: 100,
            key_page_rows: 10,
            line_page_rows: 10,
            line_bytes_column: true,
        }
    }

    /// Lines like real logs: templates with changing numbers, repeating with a period.
    fn log_lines(n: usize, seed: u64) -> Vec<String> {
        let mut x = seed;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let templates = [
            "081109 {} {} INFO dfs.DataNode$PacketResponder: Received block blk_{} of size {} from /10.250.{}.{}",
            "{}-{}-16 00:{}:05.321 2931 INFO nova.compute [req-{}] Took {} seconds",
            "{\"ts\":\"2015-10-18 18:01:{}\",\"level\":\"INFO\",\"msg\":\"attempt_{}_{} done\"}",
            "ts=\"{}\" level=warn msg=\"Connection broken for id {}, my id = {}\"",
            "no numbers here at all",
            "",
            "unicode ✓ ünïcödé {} 日本語 {}",
        ];
        (0..n)
            .map(|i| {
                let t = templates[(i * 7 + i / 13) % templates.len()];
                let mut line = String::new();
                for (k, part) in t.split("{}").enumerate() {
                    if k > 0 {
                        let width = 1 + next() % 9;
                        line.push_str(&(next() % 10u64.pow(width as u32)).to_string());
                    }
                    line.push_str(part);
                }
                line
            })
            .collect()
    }

    #[test]
    fn block_round_trips_labels_entries_and_meta() {
        let a = labels("api", "a-0");
        let b = labels("api", "b-1");
        let c = labels("db", "c-0");
        let mut ea: Vec<LogEntry> = log_lines(500, 1)
            .into_iter()
            .enumerate()
            .map(|(i, l)| entry(1_700_000_000_000_000_123 + i as i64 * 1_000, &l))
            .collect();
        ea[3].line = "multi\nline\r\n\ttabbed \"quoted\" \\ back".into();
        ea[4].line = String::new();
        ea[5].structured_metadata = vec![
            ("trace_id".into(), "abc123".into()),
            ("user".into(), "ünï \"q\"\n".into()),
            ("trace_id".into(), "again".into()),
        ];
        ea[6].structured_metadata = vec![("b".into(), "2".into()), ("a".into(), "1".into())];
        let eb = vec![
            entry(5, "early"),
            entry(5, "same time"),
            entry(999_999, "x"),
        ];
        let ec: Vec<LogEntry> = vec![];
        for options in [
            LogBlockOptions::default(),
            small(LineCompression::Template),
            small(LineCompression::Zstd(3)),
        ] {
            let block = encode_log_block_with(
                "t1",
                [
                    (&a, ea.as_slice()),
                    (&b, eb.as_slice()),
                    (&c, ec.as_slice()),
                ],
                &options,
            )
            .unwrap();
            let names: Vec<&str> = block.files.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, LOG_BLOCK_FILES);
            let meta = BlockIndex::parse_meta(&file(&block, META_FILE)).unwrap();
            assert_eq!(meta, block.meta);
            assert_eq!(meta.kind, LOGS_KIND);
            assert_eq!(meta.tenant, "t1");
            assert_eq!(meta.num_series, 3);
            assert_eq!(meta.num_samples, 503);
            // Floor and ceiling of the ns range.
            assert_eq!(meta.min_time_ms, 0);
            assert_eq!(
                meta.max_time_ms,
                1_700_000_000_000_000_123_i64.div_euclid(NS_PER_MS) + 1
            );
            let stats = meta.logs.unwrap();
            assert_eq!(stats.min_time_ns, 5);
            assert_eq!(stats.max_time_ns, 1_700_000_000_000_000_123 + 499 * 1_000);
            assert_eq!(stats.num_entries, 503);
            let line_bytes: usize = ea.iter().chain(&eb).map(|e| e.line.len()).sum();
            assert_eq!(stats.line_bytes, line_bytes as u64);
            let listed: Vec<&str> = meta.files.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(listed, &LOG_BLOCK_FILES[..3]);

            let index =
                BlockIndex::load(meta, file(&block, STREAMS_FILE), &file(&block, INDEX_FILE))
                    .unwrap();
            assert_eq!(index.labels, vec![a.clone(), b.clone(), c.clone()]);
            assert!(index.overlaps(0, 0));
            let ids = index
                .postings
                .select(&[Matcher::new(MatchOp::Equal, "app", "api").unwrap()]);
            assert_eq!(ids, all(2));

            let got =
                read_log_entries(file(&block, ENTRIES_FILE), &all(3), i64::MIN, i64::MAX).unwrap();
            assert_eq!(got.len(), 2, "empty streams have no entries");
            assert_eq!(got[&0], ea);
            assert_eq!(got[&1], eb);
        }
    }

    #[test]
    fn metrics_meta_has_no_logs_field_and_old_meta_parses() {
        let block = crate::encode_block("t", std::iter::empty()).unwrap();
        assert_eq!(block.meta.logs, None);
        let json = String::from_utf8(file(&block, META_FILE).to_vec()).unwrap();
        assert!(!json.contains("logs"));
        let old = r#"{"version":1,"ulid":"01J","tenant":"t","kind":"metrics","min_time_ms":0,
            "max_time_ms":1,"num_series":1,"num_samples":1,"files":[]}"#;
        assert_eq!(BlockIndex::parse_meta(old.as_bytes()).unwrap().logs, None);
    }

    #[test]
    fn empty_block() {
        let block = encode_log_block("t", std::iter::empty()).unwrap();
        assert_eq!(block.meta.num_samples, 0);
        assert_eq!((block.meta.min_time_ms, block.meta.max_time_ms), (0, 0));
        assert_eq!(block.meta.logs, Some(LogBlockStats::default()));
        let got = read_log_entries(file(&block, ENTRIES_FILE), &all(10), 0, i64::MAX).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn negative_and_exact_ms_bounds() {
        let s = labels("a", "b");
        let e = vec![entry(-1_500_000, "a"), entry(3_000_000, "b")];
        let block = encode_log_block("t", [(&s, e.as_slice())]).unwrap();
        assert_eq!((block.meta.min_time_ms, block.meta.max_time_ms), (-2, 3));
        assert_eq!(ceil_ms(i64::MAX), i64::MAX / NS_PER_MS + 1);
        assert_eq!(ceil_ms(i64::MIN), i64::MIN / NS_PER_MS);
    }

    #[test]
    fn empty_structured_metadata_is_stored_as_null() {
        let s = labels("a", "b");
        let mut e = vec![entry(1, "x"), entry(2, "y"), entry(3, "z")];
        e[1].structured_metadata = vec![("k".into(), "v".into()), ("a".into(), "".into())];
        let block = encode_log_block("t", [(&s, e.as_slice())]).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file(&block, ENTRIES_FILE))
            .unwrap()
            .build()
            .unwrap();
        let batch = reader.into_iter().next().unwrap().unwrap();
        let meta = batch
            .column_by_name(METADATA)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(meta.null_count(), 2);
        assert!(meta.is_null(0) && meta.is_null(2));
        assert_eq!(meta.value(1), r#"{"k":"v","a":""}"#);
        let got = read_log_entries(file(&block, ENTRIES_FILE), &all(1), 0, 10).unwrap();
        assert_eq!(got[&0], e);
    }

    /// Stream `i` has 300 entries at times `i * 10 + k * 1000`.
    fn striped_block(options: &LogBlockOptions) -> (EncodedBlock, Vec<Vec<LogEntry>>) {
        let streams: Vec<Labels> = (0..10)
            .map(|i| labels("app", &format!("pod-{i:02}")))
            .collect();
        let entries: Vec<Vec<LogEntry>> = (0..10)
            .map(|i| {
                (0..300)
                    .map(|k| {
                        entry(
                            i * 10 + k * 1000,
                            &format!("stream {i} entry {k} took {}ms", k * 7 % 13),
                        )
                    })
                    .collect()
            })
            .collect();
        let block = encode_log_block_with(
            "t",
            streams.iter().zip(&entries).map(|(l, e)| (l, e.as_slice())),
            options,
        )
        .unwrap();
        (block, entries)
    }

    #[test]
    fn implied_substrings_drop_lines_and_row_groups_only_without_structured_metadata() {
        let options = LogBlockOptions {
            row_group_bytes: 100,
            row_group_rows: 2,
            ..small(LineCompression::Template)
        };
        let with_meta = |t: i64, line: &str| LogEntry {
            structured_metadata: vec![("logger".into(), "org.x.Client".into())],
            ..entry(t, line)
        };
        // Row groups of two entries: [hit, miss], [escaped, miss], [miss, miss with metadata],
        // [miss, miss].
        let entries = vec![
            entry(1, r#"{"logger":"org.x.Client"}"#),
            entry(2, r#"{"logger":"org.x.Server"}"#),
            entry(3, r#"{"logger":"org\u002ex.Client"}"#),
            entry(4, r#"{"logger":"org.y.Server"}"#),
            entry(5, r#"{"logger":"org.z.Server"}"#),
            with_meta(6, r#"{"msg":"no logger"}"#),
            entry(7, r#"{"logger":"org.z.Server"}"#),
            entry(8, r#"{"logger":"org.w.Server"}"#),
        ];
        let streams = [labels("app", "pod-0")];
        let block = encode_log_block_with(
            "t",
            streams.iter().map(|l| (l, entries.as_slice())),
            &options,
        )
        .unwrap();
        let piece = "org.x.Client";
        let mut clause = vec![piece.to_string()];
        clause.extend("0123456789abcdefABCDEF".chars().map(|d| format!("\\u{d}")));
        let filter = LogReadFilter {
            implied: Some(vigil_model::ImpliedSubstrings {
                labels: vec!["logger".into()],
                clauses: vec![clause],
                line_check: std::sync::Arc::new(move |l: &str| {
                    l.contains(piece) || l.contains("\\u")
                }),
            }),
            ..Default::default()
        };
        let read =
            read_log_entries_where(file(&block, ENTRIES_FILE), &all(1), 0, 100, &filter).unwrap();
        let times: Vec<i64> = read[&0].iter().map(|e| e.timestamp_ns).collect();
        assert_eq!(times, vec![1, 3, 6]);

        let reader = ParquetRecordBatchReaderBuilder::try_new(file(&block, ENTRIES_FILE)).unwrap();
        let metadata = reader.metadata();
        let clauses = &filter.implied.as_ref().unwrap().clauses;
        let indexes = LineIndexes::load(metadata, clauses.iter());
        let ids = all(1);
        let request = Request {
            part: ReadPart::WHOLE,
            ids: &ids,
            min_ns: i64::MIN,
            max_ns: i64::MAX,
            substrings: None,
            implied: Some((&indexes, clauses)),
        };
        // The last row group is skipped; the third holds metadata, so it is read.
        let (groups, _) = planned_selection(metadata, &request);
        assert_eq!(groups, vec![0, 1, 2]);
        // Metadata is compressed only where there is some.
        let compression = |rg: usize| metadata.row_group(rg).column(3).compression();
        assert_eq!(compression(1), Compression::UNCOMPRESSED);
        assert!(matches!(compression(2), Compression::ZSTD(_)));
    }

    #[test]
    fn a_new_stream_starts_a_row_group_once_the_current_one_is_a_quarter_full() {
        let options = LogBlockOptions {
            row_group_bytes: 1000,
            row_group_rows: 1000,
            ..small(LineCompression::Template)
        };
        // Streams of 10 lines of 29 bytes (290 bytes, over a quarter of 1000) each start a row
        // group; streams of 2 lines (58 bytes) share one until it is a quarter full.
        let stream = |i: usize, lines: usize| -> Vec<LogEntry> {
            (0..lines)
                .map(|k| entry(k as i64, &format!("stream {i:02} line {k:02} abcdefghijk")))
                .collect()
        };
        let row_groups = |sizes: &[usize]| {
            let streams: Vec<Labels> = (0..sizes.len())
                .map(|i| labels("app", &format!("pod-{i:02}")))
                .collect();
            let entries: Vec<Vec<LogEntry>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| stream(i, n))
                .collect();
            let block = encode_log_block_with(
                "t",
                streams.iter().zip(&entries).map(|(l, e)| (l, e.as_slice())),
                &options,
            )
            .unwrap();
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(file(&block, ENTRIES_FILE)).unwrap();
            reader
                .metadata()
                .row_groups()
                .iter()
                .map(|rg| rg.num_rows())
                .collect::<Vec<_>>()
        };
        assert_eq!(row_groups(&[10, 10, 10]), vec![10, 10, 10]);
        assert_eq!(row_groups(&[2, 2, 2, 2, 2, 2]), vec![10, 2]);
        // A stream longer than a row group still fills whole ones; its short rest is joined.
        assert_eq!(row_groups(&[40, 10]), vec![35, 15]);
    }

    #[test]
    fn required_substrings_are_clauses_of_alternatives_over_both_line_indexes() {
        let lines: &[&[&str]] = &[
            &["all good here", "Receiving block blk_-1046472716157313227"],
            &["all good here", "Receiving block blk_-5009020203888190378"],
        ];
        let indexes = LineIndexes {
            grams: Some(crate::linegrams::tests::grams(lines)),
            tokens: Some(crate::linetokens::tests::index(lines)),
        };
        let clause = |s: &str| vec![vec![s.to_string()]];
        assert!(indexes.may_match(1, &clause("good")));
        assert!(indexes.may_match(1, &[vec!["nope-nope".into(), "here".into()]]));
        assert!(!indexes.may_match(1, &[vec!["nope-nope".into()], vec!["here".into()]]));
        // The trigrams of a block id are everywhere; its token prefix is not.
        assert!(indexes.may_match(0, &clause("blk_-1046472716157313227")));
        assert!(!indexes.may_match(1, &clause("blk_-1046472716157313227")));
        let without = LineIndexes {
            grams: None,
            tokens: None,
        };
        assert!(without.may_match(1, &clause("blk_-1046472716157313227")));
    }

    #[test]
    fn skips_row_groups_without_the_trigrams_of_a_required_substring() {
        let (block, entries) = striped_block(&small(LineCompression::Template));
        let needle = "stream 4 entry 2";
        let filter = LogReadFilter {
            line_filter: Some(std::sync::Arc::new(move |l: &str| l.contains(needle))),
            required_substrings: vec![vec![needle.to_string()]],
            ..Default::default()
        };
        let ids: RoaringBitmap = (0u32..10).collect();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file(&block, ENTRIES_FILE)).unwrap();
        let metadata = builder.metadata();
        let grams = LineIndexes::load(metadata, filter.required_substrings.iter());
        assert!(grams.grams.is_some());
        let request = Request {
            part: ReadPart::WHOLE,
            ids: &ids,
            min_ns: i64::MIN,
            max_ns: i64::MAX,
            substrings: Some((&grams, &filter.required_substrings)),
            implied: None,
        };
        // Stream 4 is row groups 12..15; entries 1xx (row group 13) lack "y 2".
        let (groups, _) = planned_selection(metadata, &request);
        assert_eq!(groups, vec![12, 14]);
        let got = read_log_entries_where(
            file(&block, ENTRIES_FILE),
            &ids,
            i64::MIN,
            i64::MAX,
            &filter,
        )
        .unwrap();
        let want: Vec<LogEntry> = entries[4]
            .iter()
            .filter(|e| e.line.contains(needle))
            .cloned()
            .collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[&4], want);
    }

    #[test]
    fn a_line_search_lands_on_every_line_holding_a_match() {
        let finder = |needle: &'static [u8]| -> LineSeekFn {
            Arc::new(move |text: &[u8]| memchr_find(text, needle))
        };
        let lines = PlainLines::from_array(&StringArray::from(vec![
            "ab", "", "cab", "", "a", "b", "xxab", "", "", "ab", "zz",
        ]))
        .unwrap();
        assert_eq!(lines.bytes(2), b"cab");
        assert_eq!(lines.bytes(3), b"");
        assert_eq!(lines.text(10).unwrap(), "zz");
        let all = 0..11;
        assert_eq!(lines.seek_rows(&finder(b"ab"), all.clone()), [0, 2, 6, 9]);
        assert_eq!(lines.seek_rows(&finder(b"zz"), all.clone()), [10]);
        assert!(lines.seek_rows(&finder(b"q"), all.clone()).is_empty());
        assert_eq!(lines.seek_rows(&finder(b"ab"), 3..9), [6]);
        assert_eq!(lines.seek_rows(&finder(b"ab"), 7..10), [9]);
        assert!(lines.seek_rows(&finder(b"ab"), 3..3).is_empty());
        // A match running from "a" over the length of "b" into it lands on row 4 (the line
        // test then drops it), and the search goes on from row 5.
        assert_eq!(lines.seek_rows(&finder(b"a\x01\0\0\0b"), all.clone()), [4]);
        assert_eq!(lines.seek_rows(&finder(b"b"), 4..7), [5, 6]);
    }

    #[test]
    fn plain_lines_refuse_a_page_that_does_not_hold_its_rows() {
        let page = |parts: &[&[u8]]| Bytes::from(parts.concat());
        assert!(PlainLines::parse(page(&[&[2, 0, 0, 0], b"hi"]), 1).is_ok());
        assert!(PlainLines::parse(page(&[&[2, 0, 0, 0], b"hi"]), 2).is_err());
        assert!(PlainLines::parse(page(&[&[3, 0, 0, 0], b"hi"]), 1).is_err());
        assert!(PlainLines::parse(page(&[&[1, 0, 0, 0], b"hi"]), 1).is_err());
        assert!(PlainLines::parse(page(&[&[2, 0, 0]]), 1).is_err());
        let invalid = PlainLines::parse(page(&[&[1, 0, 0, 0], &[0xff]]), 1).unwrap();
        assert!(invalid.text(0).is_err());
        assert!(PlainLines::parse(Bytes::new(), 0).is_ok());
    }

    fn memchr_find(text: &[u8], needle: &[u8]) -> Option<usize> {
        text.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn reads_with_a_line_search_keep_what_the_line_test_keeps() {
        let (block, entries) = striped_block(&small(LineCompression::Template));
        let entries_file = file(&block, ENTRIES_FILE);
        let ids: RoaringBitmap = [1u32, 4, 5, 9].into_iter().collect();
        let cache = MapCache::default();
        // Common, rare, across two lines ("ms" + "stream"), and absent.
        for needle in ["entry 1", "4 entry 29", "msstream", "took 12ms", "zz"] {
            let filter = LogReadFilter {
                line_filter: Some(Arc::new(move |l: &str| l.contains(needle))),
                line_seek: Some(Arc::new(move |t: &[u8]| memchr_find(t, needle.as_bytes()))),
                ..Default::default()
            };
            for cache in [None, Some(&cache), Some(&cache)] {
                let got = read_log_entries_part(
                    entries_file.clone(),
                    &ids,
                    (11_000, 250_000),
                    &filter,
                    ReadPart::WHOLE,
                    cache.map(|c| c as &dyn RowGroupCache),
                )
                .unwrap();
                for id in ids.iter() {
                    let want: Vec<LogEntry> = entries[id as usize]
                        .iter()
                        .filter(|e| (11_000..=250_000).contains(&e.timestamp_ns))
                        .filter(|e| e.line.contains(needle))
                        .cloned()
                        .collect();
                    let got = got.get(&id).cloned().unwrap_or_default();
                    assert_eq!(got, want, "{needle:?} in stream {id}");
                }
            }
        }
    }

    #[test]
    fn window_sums_agree_with_entries() {
        let (_, mut entries) = striped_block(&small(LineCompression::Template));
        // Give a few entries of stream 3 structured metadata: they form their own group.
        for e in entries[3].iter_mut().skip(6).step_by(26) {
            e.structured_metadata = vec![("trace".into(), "x".into())];
        }
        let streams: Vec<Labels> = (0..10)
            .map(|i| labels("app", &format!("pod-{i:02}")))
            .collect();
        // Line lengths come from `line_bytes`, or from the lines in blocks without it.
        for line_bytes_column in [true, false] {
            let options = LogBlockOptions {
                line_bytes_column,
                ..small(LineCompression::Template)
            };
            let block = encode_log_block_with(
                "t",
                streams.iter().zip(&entries).map(|(l, e)| (l, e.as_slice())),
                &options,
            )
            .unwrap();
            let ids: RoaringBitmap = [3u32, 4].into_iter().collect();
            // Windows of 30 µs every 7 µs, reaching past the read range on both sides.
            let windows = LogWindows {
                first_end_ns: 10_000,
                step_ns: 7_000,
                steps: 40,
                range_ns: 30_000,
            };
            let keeps = |line: &str, filtered: bool| !filtered || line.contains("took 3");
            for filtered in [true, false] {
                let filter = LogReadFilter {
                    line_filter: filtered.then(|| {
                        std::sync::Arc::new(|l: &str| l.contains("took 3"))
                            as vigil_model::LineFilterFn
                    }),
                    ..Default::default()
                };
                for value in [LogSampleValue::One, LogSampleValue::LineBytes] {
                    let read = |cache: Option<&dyn RowGroupCache>| {
                        read_log_window_sums(
                            file(&block, ENTRIES_FILE),
                            &ids,
                            (20_000, 250_000),
                            &filter,
                            value,
                            windows,
                            ReadPart::WHOLE,
                            cache,
                        )
                        .unwrap()
                    };
                    let got = read(None);
                    let cache = MapCache::default();
                    for _cold_then_warm in 0..2 {
                        assert_eq!(read(Some(&cache)), got);
                    }
                    let mut want: Vec<StreamWindowSums> = Vec::new();
                    for id in [3u32, 4] {
                        let kept: Vec<LogEntry> = entries[id as usize]
                            .iter()
                            .filter(|e| (20_000..=250_000).contains(&e.timestamp_ns))
                            .filter(|e| keeps(&e.line, filtered))
                            .cloned()
                            .collect();
                        let sums = LogWindowSums::from_entries(
                            &streams[id as usize],
                            kept,
                            value,
                            windows,
                        );
                        for g in sums {
                            want.push(StreamWindowSums {
                                stream_id: id,
                                structured_metadata: g.structured_metadata,
                                sums: g.sums,
                            });
                        }
                    }
                    let case =
                        format!("{value:?}, filtered {filtered}, column {line_bytes_column}");
                    assert!(
                        want.iter().any(|g| !g.structured_metadata.is_empty()),
                        "{case}"
                    );
                    assert_eq!(got, want, "{case}");
                    assert!(got.iter().any(|g| g.sums.counts.iter().any(|&c| c > 1)));
                }
            }
        }
    }

    #[test]
    fn lines_read_in_place_match_the_input_for_any_selection() {
        for options in [LogBlockOptions::default(), small(LineCompression::Template)] {
            let (block, entries) = striped_block(&options);
            let entries_file = file(&block, ENTRIES_FILE);
            for (ids, lo, hi) in [
                (vec![0u32, 9], 0, i64::MAX),
                (vec![3], 17_000, 17_030),
                (vec![1, 2, 5, 8], 120_000, 260_500),
                (vec![4, 6], 299_000, 400_000),
                ((0..10).collect(), 5_000, 250_000),
            ] {
                let bitmap: RoaringBitmap = ids.iter().copied().collect();
                let got = read_log_entries(entries_file.clone(), &bitmap, lo, hi).unwrap();
                for id in ids {
                    let want: Vec<LogEntry> = entries[id as usize]
                        .iter()
                        .filter(|e| (lo..=hi).contains(&e.timestamp_ns))
                        .cloned()
                        .collect();
                    assert_eq!(
                        got.get(&id).cloned().unwrap_or_default(),
                        want,
                        "stream {id} in [{lo}, {hi}]"
                    );
                }
            }
        }
    }

    #[test]
    fn parts_share_out_the_wanted_row_groups_by_weight() {
        let shares = |weights: &[usize], count: usize| -> Vec<(usize, usize)> {
            ReadPart::all(count).map(|p| p.share(weights)).collect()
        };
        // Two wanted row groups of a block go one to each core.
        assert_eq!(shares(&[4000, 4000], 2), vec![(0, 1), (1, 2)]);
        assert_eq!(shares(&[10, 4000, 4000, 10], 2), vec![(0, 2), (2, 4)]);
        assert_eq!(shares(&[1], 2), vec![(0, 0), (0, 1)]);
        assert_eq!(shares(&[], 2), vec![(0, 0), (0, 0)]);
        // Any weights: contiguous shares that cover every item once.
        let mut x = 7u64;
        for _ in 0..500 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (x >> 59) as usize;
            let weights: Vec<usize> = (0..len)
                .map(|i| ((x >> (i % 50)) % 1000) as usize + 1)
                .collect();
            for count in 1..5 {
                let mut next = 0;
                for (first, end) in shares(&weights, count) {
                    assert!(first <= end && end <= weights.len());
                    if first < end {
                        assert_eq!(first, next, "{weights:?} {count}");
                        next = end;
                    }
                }
                assert_eq!(next, weights.len(), "{weights:?} {count}");
            }
        }
    }

    #[test]
    fn parts_together_read_what_the_whole_file_holds() {
        let (block, _) = striped_block(&small(LineCompression::Template));
        let entries_file = file(&block, ENTRIES_FILE);
        let ids: RoaringBitmap = [1u32, 4, 5, 9].into_iter().collect();
        let range = (3_000, 270_000);
        let whole = read_log_entries_where(
            entries_file.clone(),
            &ids,
            range.0,
            range.1,
            &LogReadFilter::default(),
        )
        .unwrap();
        // Without a cache, then through one (cold, then warm: decoded row groups come back).
        let cache = MapCache::default();
        for (count, cache) in [2, 3, 7, 100, 2, 3, 2].into_iter().zip([
            None,
            None,
            None,
            None,
            Some(&cache),
            Some(&cache),
            Some(&cache),
        ]) {
            let mut merged: BTreeMap<u32, Vec<LogEntry>> = BTreeMap::new();
            let mut nonempty_parts = 0;
            for part in ReadPart::all(count) {
                let got = read_log_entries_part(
                    entries_file.clone(),
                    &ids,
                    range,
                    &LogReadFilter::default(),
                    part,
                    cache.map(|c| c as &dyn RowGroupCache),
                )
                .unwrap();
                nonempty_parts += usize::from(!got.is_empty());
                for (id, entries) in got {
                    merged.entry(id).or_default().extend(entries);
                }
            }
            assert_eq!(merged, whole, "{count} parts");
            assert!(nonempty_parts > 1, "{count} parts");
        }
        assert!(cache.0.lock().unwrap().len() > 1, "row groups were cached");
    }

    /// The row groups and parquet selection a read plans.
    fn planned_selection(
        metadata: &ParquetMetaData,
        request: &Request,
    ) -> (Vec<usize>, parquet::arrow::arrow_reader::RowSelection) {
        let planned = plan(metadata, request).unwrap().unwrap();
        selection_of(metadata, &planned)
    }

    /// Keeps every decoded row group.
    #[derive(Default)]
    struct MapCache(std::sync::Mutex<HashMap<usize, Arc<DecodedRowGroup>>>);

    impl RowGroupCache for MapCache {
        fn get(&self, row_group: usize) -> Option<Arc<DecodedRowGroup>> {
            self.0.lock().unwrap().get(&row_group).cloned()
        }
        fn insert(&self, row_group: usize, decoded: Arc<DecodedRowGroup>) {
            self.0.lock().unwrap().insert(row_group, decoded);
        }
        fn admits(&self, _bytes: usize) -> bool {
            true
        }
        fn line_indexes(&self, load: &mut dyn FnMut() -> Arc<LineIndexes>) -> Arc<LineIndexes> {
            load()
        }
        fn reader_metadata(
            &self,
            load: &mut dyn FnMut() -> Result<ArrowReaderMetadata, BlockError>,
        ) -> Result<ArrowReaderMetadata, BlockError> {
            load()
        }
    }

    /// An entries file whose line column is not the PLAIN page this crate writes (here
    /// dictionary-encoded by parquet's own Arrow writer) is read through Arrow, with the same
    /// answers, line filters and window sums included.
    #[test]
    fn lines_in_another_layout_read_the_same() {
        use parquet::arrow::ArrowWriter;
        let (block, entries) = striped_block(&LogBlockOptions::default());
        let ours = file(&block, ENTRIES_FILE);
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(ours.clone())
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let props = WriterProperties::builder()
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(700))
            .build();
        let mut theirs = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut theirs, batches[0].schema(), Some(props)).unwrap();
        for batch in &batches {
            writer.write(batch).unwrap();
        }
        writer.close().unwrap();
        let theirs = Bytes::from(theirs);
        let metadata = crate::parquet_metadata(&theirs).unwrap();
        assert!(
            plain_line_page(&theirs, metadata.metadata(), 0, 700)
                .unwrap()
                .is_none(),
            "the line column should not be one PLAIN page"
        );
        let ids: RoaringBitmap = [2u32, 7].into_iter().collect();
        let got = read_log_entries(theirs.clone(), &ids, 50_000, 60_020).unwrap();
        assert_eq!(
            got,
            read_log_entries(ours.clone(), &ids, 50_000, 60_020).unwrap()
        );
        assert_eq!(got[&2].len(), 11);
        assert_eq!(got[&7][0], entries[7][50]);
        let cache = MapCache::default();
        let filter = LogReadFilter {
            line_filter: Some(Arc::new(|line: &str| line.contains("took 3ms"))),
            ..Default::default()
        };
        for file in [&theirs, &ours] {
            let filtered = read_log_entries_part(
                file.clone(),
                &all(10),
                (i64::MIN, i64::MAX),
                &filter,
                ReadPart::WHOLE,
                Some(&cache),
            )
            .unwrap();
            let lines: usize = filtered.values().map(Vec::len).sum();
            let want = entries
                .iter()
                .flatten()
                .filter(|e| e.line.contains("took 3ms"))
                .count();
            assert_eq!(lines, want);
            cache.0.lock().unwrap().clear();
        }
    }

    #[test]
    fn filters_by_stream_and_time() {
        for options in [LogBlockOptions::default(), small(LineCompression::Template)] {
            let (block, entries) = striped_block(&options);
            let entries_file = file(&block, ENTRIES_FILE);
            let ids: RoaringBitmap = [2u32, 7].into_iter().collect();
            let got = read_log_entries(entries_file.clone(), &ids, 50_000, 60_020).unwrap();
            assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![2, 7]);
            let expect = |i: usize| -> Vec<LogEntry> {
                entries[i]
                    .iter()
                    .filter(|e| (50_000..=60_020).contains(&e.timestamp_ns))
                    .cloned()
                    .collect()
            };
            assert_eq!(got[&2], expect(2));
            assert_eq!(got[&7], expect(7));
            assert_eq!(got[&2].len(), 11);
            assert_eq!(got[&7].len(), 10);
            // Bounds are inclusive.
            let one = read_log_entries(entries_file.clone(), &ids, 2_020, 2_020).unwrap();
            assert_eq!(one[&2], vec![entries[2][2].clone()]);
            // Misses.
            assert!(
                read_log_entries(entries_file.clone(), &ids, 400_000, i64::MAX)
                    .unwrap()
                    .is_empty()
            );
            let none: RoaringBitmap = [10u32, 20].into_iter().collect();
            assert!(
                read_log_entries(entries_file.clone(), &none, i64::MIN, i64::MAX)
                    .unwrap()
                    .is_empty()
            );
            assert!(read_log_entries(entries_file, &ids, 10, 5)
                .unwrap()
                .is_empty());
        }
    }

    #[test]
    fn skips_row_groups_and_pages_by_statistics() {
        let (block, _) = striped_block(&small(LineCompression::Template));
        let reader_metadata = crate::parquet_metadata(&file(&block, ENTRIES_FILE)).unwrap();
        let metadata = reader_metadata.metadata();
        // 3000 rows in row groups of 100: stream i is row groups 3i..3i+3.
        assert_eq!(metadata.num_row_groups(), 30);
        let ids: RoaringBitmap = [2u32, 7].into_iter().collect();
        let request = Request {
            part: ReadPart::WHOLE,
            ids: &ids,
            min_ns: 100_000,
            max_ns: 199_999,
            substrings: None,
            implied: None,
        };
        let (groups, selection) = planned_selection(metadata, &request);
        // Entries 100..199 of streams 2 and 7: row group 1 of each stream only.
        assert_eq!(groups, vec![7, 22]);
        // Pages of 10 rows: 10 of them, in both row groups, hold the requested times
        // (entry 100 at time i*10 + 100_000 is the first).
        assert_eq!(selection.row_count(), 200);
        let ids: RoaringBitmap = [2u32].into_iter().collect();
        let request = Request {
            part: ReadPart::WHOLE,
            ids: &ids,
            min_ns: 150_000,
            max_ns: 150_500,
            substrings: None,
            implied: None,
        };
        let (groups, selection) = planned_selection(metadata, &request);
        assert_eq!(groups, vec![7]);
        assert_eq!(selection.row_count(), 10);
        assert_eq!(selection.skipped_row_count(), 90);
        let request = Request {
            part: ReadPart::WHOLE,
            ids: &ids,
            min_ns: 1_000_000,
            max_ns: i64::MAX,
            substrings: None,
            implied: None,
        };
        assert!(plan(metadata, &request).unwrap().is_none());
        // Streams 3..=6 lie between the two requested ids: their row groups are skipped
        // although the id range 2..=7 covers them.
        let ids: RoaringBitmap = [2u32, 7].into_iter().collect();
        let request = Request {
            part: ReadPart::WHOLE,
            ids: &ids,
            min_ns: i64::MIN,
            max_ns: i64::MAX,
            substrings: None,
            implied: None,
        };
        let (groups, _) = planned_selection(metadata, &request);
        assert_eq!(groups, vec![6, 7, 8, 21, 22, 23]);
    }

    #[test]
    fn entries_file_is_plain_parquet_with_statistics() {
        let (block, _) = striped_block(&LogBlockOptions::default());
        let reader = SerializedFileReader::new(file(&block, ENTRIES_FILE)).unwrap();
        let metadata = reader.metadata();
        let columns: Vec<String> = metadata
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.path().string())
            .collect();
        assert_eq!(columns, ENTRIES_COLUMNS);
        let rg = metadata.row_group(0);
        assert_eq!(
            rg.column(2).compression(),
            Compression::ZSTD(ZstdLevel::default())
        );
        assert!(rg
            .column(1)
            .encodings_mask()
            .is_set(Encoding::DELTA_BINARY_PACKED));
        assert!(rg.column(0).statistics().is_some());
        assert!(rg.column(1).statistics().is_some());
        // Stream ids, and metadata where a row group has none, need no zstd context to read.
        assert_eq!(rg.column(0).compression(), Compression::UNCOMPRESSED);
        assert_eq!(rg.column(3).compression(), Compression::UNCOMPRESSED);
        // The line column of a row group is one page.
        assert_eq!(
            reader
                .get_row_group(0)
                .unwrap()
                .get_column_page_reader(2)
                .unwrap()
                .count(),
            1
        );
    }

    /// `n` lines replaying `base` cyclically, every digit of a run of 3 or more redrawn.
    fn replayed(base: &[String], n: usize, seed: u64) -> Vec<String> {
        let mut x = seed;
        let mut digit = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'0' + ((x >> 33) % 10) as u8)
        };
        (0..n)
            .map(|i| {
                let line: Vec<char> = base[i % base.len()].chars().collect();
                let mut out = String::new();
                let mut k = 0;
                while k < line.len() {
                    let run = line[k..].iter().take_while(|c| c.is_ascii_digit()).count();
                    if run >= 3 {
                        out.extend((0..run).map(|_| digit()));
                        k += run;
                    } else {
                        out.push(line[k]);
                        k += 1;
                    }
                }
                out
            })
            .collect()
    }

    #[test]
    fn template_pages_round_trip_and_beat_stock_zstd() {
        let s = labels("a", "b");
        let e: Vec<LogEntry> = replayed(&log_lines(300, 7), 20_000, 5)
            .into_iter()
            .enumerate()
            .map(|(i, l)| entry(i as i64, &l))
            .collect();
        let mut sizes = Vec::new();
        for codec in [LineCompression::Template, LineCompression::Zstd(3)] {
            let options = LogBlockOptions {
                line_compression: codec,
                ..LogBlockOptions::default()
            };
            let block = encode_log_block_with("t", [(&s, e.as_slice())], &options).unwrap();
            let got =
                read_log_entries(file(&block, ENTRIES_FILE), &all(1), i64::MIN, i64::MAX).unwrap();
            assert_eq!(got[&0], e);
            sizes.push(file(&block, ENTRIES_FILE).len());
        }
        assert!(
            sizes[0] * 5 < sizes[1] * 4,
            "template {} vs zstd {}",
            sizes[0],
            sizes[1]
        );
    }

    #[test]
    fn template_compressor_reproduces_arbitrary_pages() {
        let mut compressor = TemplateCompressor::new().unwrap();
        let mut x = 99u64;
        let mut byte = move || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            (x >> 56) as u8
        };
        let lines = log_lines(3000, 3);
        for round in 0..20 {
            let mut page = Vec::new();
            for (i, line) in lines
                .iter()
                .enumerate()
                .skip(round * 100)
                .take(round * 50 + 1)
            {
                let mut line = line.clone().into_bytes();
                // Some noise: random bytes, digits, non-UTF-8.
                if i % 5 == 0 {
                    line.extend((0..byte() % 40).map(|_| byte()));
                }
                if i % 7 == 0 {
                    line.extend((0..byte() % 10).map(|_| b'0' + byte() % 10));
                }
                page.extend_from_slice(&(line.len() as u32).to_le_bytes());
                page.extend_from_slice(&line);
            }
            let frame = compressor.compress(&page).unwrap();
            let mut back = Vec::new();
            compressor
                .zstd
                .decompress(&frame, page.len(), &mut back)
                .unwrap();
            assert_eq!(back, page);
        }
        // Not PLAIN byte arrays: stock zstd.
        let garbage: Vec<u8> = (0..1000).map(|_| byte()).collect();
        let frame = compressor.compress(&garbage).unwrap();
        let mut back = Vec::new();
        compressor
            .zstd
            .decompress(&frame, garbage.len(), &mut back)
            .unwrap();
        assert_eq!(back, garbage);
        assert!(!compressor.finder.find(&garbage[..7]));
        assert!(compressor.finder.find(&[]));
    }
}
