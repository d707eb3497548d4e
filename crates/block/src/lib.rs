//! A block is the immutable, columnar form of one tenant's samples over a time range: what the
//! head becomes when it is cut, and what object storage keeps. Files (docs/format/block.md):
//! `series.parquet` (series_id, metric_name, labels as JSON), `samples.parquet` (series_id,
//! timestamp_ms, value; sorted by series then time; delta-encoded timestamps, byte-stream-split
//! values, zstd), `index.bin` (roaring postings) and `meta.json`, written last.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
/// A block file's parsed Parquet metadata, which reads of the file can share.
pub use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use vigil_index::Postings;
use vigil_model::{Label, Labels, Sample};

pub mod linegrams;
pub mod linetokens;
pub mod logs;
pub use rows::ReadPart;
mod rows;

pub const SERIES_FILE: &str = "series.parquet";
pub const SAMPLES_FILE: &str = "samples.parquet";
pub const INDEX_FILE: &str = "index.bin";
pub const META_FILE: &str = "meta.json";
/// Every file of a block in upload order; meta.json last marks the block complete.
pub const BLOCK_FILES: [&str; 4] = [SERIES_FILE, SAMPLES_FILE, INDEX_FILE, META_FILE];
pub const BLOCK_FORMAT_VERSION: u32 = 1;

const SAMPLES_PER_ROW_GROUP: usize = 1 << 20;
const SAMPLES_PER_PAGE_ROWS: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("meta.json: {0}")]
    Meta(#[from] serde_json::Error),
    #[error("index: {0}")]
    Index(#[from] vigil_index::IndexError),
    #[error("block file {file} is malformed: {reason}")]
    Malformed { file: &'static str, reason: String },
    #[error("compressing the line trigram index: {0}")]
    Compress(#[from] std::io::Error),
    #[error("writing {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BlockMeta {
    pub version: u32,
    pub ulid: String,
    pub tenant: String,
    /// `metrics` for sample blocks.
    pub kind: String,
    /// Oldest and newest sample timestamp, inclusive, in ms.
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub num_series: u64,
    pub num_samples: u64,
    pub files: Vec<BlockFile>,
    /// Log blocks only (`kind = "logs"`); absent from metrics blocks' meta.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<logs::LogBlockStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BlockFile {
    pub name: String,
    pub bytes: u64,
}

/// A block's files, encoded and ready to store.
pub struct EncodedBlock {
    pub meta: BlockMeta,
    /// (file name, contents) in [`BLOCK_FILES`] order.
    pub files: Vec<(&'static str, Bytes)>,
    /// Files already written and synced at a temporary path in the block's directory, to be
    /// renamed to their name before `meta.json` is written.
    pub staged: Vec<(&'static str, std::path::PathBuf)>,
}

/// Encodes series (sorted by labels, samples sorted by time) into a block.
pub fn encode_block<'a>(
    tenant: &str,
    series: impl IntoIterator<Item = (&'a Labels, &'a [Sample])>,
) -> Result<EncodedBlock, BlockError> {
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut label_json = Vec::new();
    let mut postings = Postings::new();
    let mut sample_ids = Vec::new();
    let mut timestamps = Vec::new();
    let mut values = Vec::new();
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
    for (id, (labels, samples)) in series.into_iter().enumerate() {
        let id = id as u32;
        ids.push(id);
        names.push(labels.metric_name().unwrap_or("").to_string());
        let map: BTreeMap<&str, &str> = labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        label_json.push(serde_json::to_string(&map)?);
        postings.add(id, labels);
        for s in samples {
            sample_ids.push(id);
            timestamps.push(s.timestamp_ms);
            values.push(s.value);
            min_t = min_t.min(s.timestamp_ms);
            max_t = max_t.max(s.timestamp_ms);
        }
    }
    let num_samples = timestamps.len() as u64;
    let series_batch = RecordBatch::try_new(
        series_schema(),
        vec![
            Arc::new(UInt32Array::from(ids.clone())) as ArrayRef,
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from(label_json)),
        ],
    )?;
    let samples_batch = RecordBatch::try_new(
        samples_schema(),
        vec![
            Arc::new(UInt32Array::from(sample_ids)) as ArrayRef,
            Arc::new(Int64Array::from(timestamps)),
            Arc::new(Float64Array::from(values)),
        ],
    )?;
    let series_bytes = write_parquet(&series_batch, series_properties())?;
    let samples_bytes = write_parquet(&samples_batch, samples_properties())?;
    let index_bytes = Bytes::from(postings.encode());
    let mut meta = BlockMeta {
        version: BLOCK_FORMAT_VERSION,
        ulid: ulid::Ulid::generate().to_string(),
        tenant: tenant.to_string(),
        kind: "metrics".into(),
        min_time_ms: if num_samples == 0 { 0 } else { min_t },
        max_time_ms: if num_samples == 0 { 0 } else { max_t },
        num_series: ids.len() as u64,
        num_samples,
        files: vec![],
        logs: None,
    };
    let files = vec![
        (SERIES_FILE, series_bytes),
        (SAMPLES_FILE, samples_bytes),
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
    let mut files = files;
    files.push((META_FILE, meta_bytes));
    Ok(EncodedBlock {
        meta,
        files,
        staged: Vec::new(),
    })
}

fn series_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt32, false),
        Field::new("metric_name", DataType::Utf8, false),
        Field::new("labels", DataType::Utf8, false),
    ]))
}

fn samples_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt32, false),
        Field::new("timestamp_ms", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
    ]))
}

fn zstd(level: i32) -> Compression {
    // Levels 1..=22 are valid; the constants used here are in range.
    Compression::ZSTD(ZstdLevel::try_new(level).unwrap_or_default())
}

fn series_properties() -> WriterProperties {
    WriterProperties::builder().set_compression(zstd(3)).build()
}

fn samples_properties() -> WriterProperties {
    let ts = ColumnPath::from("timestamp_ms");
    let value = ColumnPath::from("value");
    WriterProperties::builder()
        .set_compression(zstd(3))
        .set_max_row_group_row_count(Some(SAMPLES_PER_ROW_GROUP))
        .set_data_page_row_count_limit(SAMPLES_PER_PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_column_dictionary_enabled(ts.clone(), false)
        .set_column_encoding(ts, Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(value.clone(), false)
        .set_column_encoding(value, Encoding::BYTE_STREAM_SPLIT)
        .build()
}

fn write_parquet(batch: &RecordBatch, props: WriterProperties) -> Result<Bytes, BlockError> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(Bytes::from(out))
}

/// The in-memory part of a block a querier keeps: labels by series id and the postings.
pub struct BlockIndex {
    pub meta: BlockMeta,
    pub labels: Vec<Labels>,
    pub postings: Postings,
}

impl BlockIndex {
    pub fn load(
        meta: BlockMeta,
        series_file: Bytes,
        index_file: &[u8],
    ) -> Result<Self, BlockError> {
        let postings = Postings::decode(index_file)?;
        let mut labels = Vec::with_capacity(meta.num_series as usize);
        let reader = ParquetRecordBatchReaderBuilder::try_new(series_file)?.build()?;
        for batch in reader {
            let batch = batch?;
            let json = batch
                .column_by_name("labels")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| BlockError::Malformed {
                    file: SERIES_FILE,
                    reason: "no labels column".into(),
                })?;
            for i in 0..json.len() {
                let map: BTreeMap<String, String> = serde_json::from_str(json.value(i))?;
                labels.push(Labels::from_sorted(
                    map.into_iter()
                        .map(|(name, value)| Label { name, value })
                        .collect(),
                ));
            }
        }
        Ok(Self {
            meta,
            labels,
            postings,
        })
    }

    pub fn parse_meta(bytes: &[u8]) -> Result<BlockMeta, BlockError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.meta.num_samples > 0 && self.meta.min_time_ms <= maxt && self.meta.max_time_ms >= mint
    }
}

/// Leaf columns of `samples.parquet`, in the order it is written.
const SERIES_ID_COLUMN: usize = 0;
const TIMESTAMP_COLUMN: usize = 1;
const VALUE_COLUMN: usize = 2;

/// Parses a block file's Parquet metadata (footer and page index, when it has one): for a
/// large file as much work as a small read, so reads of one file share it.
pub fn parquet_metadata(file: &Bytes) -> Result<ArrowReaderMetadata, BlockError> {
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    Ok(ArrowReaderMetadata::load(file, options)?)
}

/// Reads the samples of the series in `ids` within `[mint, maxt]` from `samples.parquet`, in
/// series-id order, decoding only the row groups and pages (by the page index of `series_id`
/// and `timestamp_ms`) that can hold them. With `part`, only that share of those pages (by
/// rows), so that several threads read one file: a series whose rows straddle two parts comes
/// back from both, the earlier samples from the earlier part.
pub fn read_samples(
    samples_file: Bytes,
    metadata: &ArrowReaderMetadata,
    ids: &RoaringBitmap,
    (mint, maxt): (i64, i64),
    part: ReadPart,
) -> Result<Vec<(u32, Vec<Sample>)>, BlockError> {
    let mut out: Vec<(u32, Vec<Sample>)> = Vec::new();
    if ids.is_empty() || mint > maxt {
        return Ok(out);
    }
    let planned = rows::share_ranges(plan_samples(metadata.metadata(), ids, mint, maxt), part);
    if planned.is_empty() {
        return Ok(out);
    }
    let (row_groups, selection) = rows::selection_of(metadata.metadata(), &planned);
    let schema = metadata.metadata().file_metadata().schema_descr();
    let read = |columns: &[usize], selection: RowSelection| {
        ParquetRecordBatchReaderBuilder::new_with_metadata(samples_file.clone(), metadata.clone())
            .with_projection(ProjectionMask::leaves(schema, columns.iter().copied()))
            .with_row_groups(row_groups.clone())
            .with_row_selection(selection)
            .build()
    };
    let mut push_run = |id: u32, times: &[i64], values: &[f64]| {
        // A series' times ascend: its rows in range are one slice of the run.
        let from = times.partition_point(|&t| t < mint);
        let to = times.partition_point(|&t| t <= maxt);
        if from < to {
            let samples = times[from..to]
                .iter()
                .zip(&values[from..to])
                .map(|(&t, &v)| Sample::new(t, v));
            push_series_run(&mut out, id, samples);
        }
    };
    // Where the wanted series are most of those in their id range, all columns are read at
    // once. Where they are spread (one series in eight of a metric), the series ids come
    // first, then the times and values of the wanted series' rows only.
    let (first, last) = (ids.min().unwrap_or(0), ids.max().unwrap_or(0));
    let spread = ids.len() * 2 < u64::from(last - first) + 1;
    if !spread {
        for batch in read(
            &[SERIES_ID_COLUMN, TIMESTAMP_COLUMN, VALUE_COLUMN],
            selection,
        )? {
            let batch = batch?;
            let (sids, times, values) = (
                column::<UInt32Array>(&batch, 0, "series_id")?.values(),
                column::<Int64Array>(&batch, 1, "timestamp_ms")?.values(),
                column::<Float64Array>(&batch, 2, "value")?.values(),
            );
            let mut i = 0;
            while i < sids.len() {
                // Rows come in runs of one series: one membership test per run.
                let id = sids[i];
                let end = i + sids[i..].iter().take_while(|&&s| s == id).count();
                if ids.contains(id) {
                    push_run(id, &times[i..end], &values[i..end]);
                }
                i = end;
            }
        }
        return Ok(out);
    }
    let mut runs: Vec<(u32, usize)> = Vec::new();
    for batch in read(&[SERIES_ID_COLUMN], selection.clone())? {
        for &id in column::<UInt32Array>(&batch?, 0, "series_id")?.values() {
            match runs.last_mut() {
                Some((last, rows)) if *last == id => *rows += 1,
                _ => runs.push((id, 1)),
            }
        }
    }
    if runs.iter().map(|(_, rows)| rows).sum::<usize>() != selection.row_count() {
        return Err(malformed_samples("series_id"));
    }
    let mut wanted = Vec::new();
    let of_runs: Vec<RowSelector> = runs
        .into_iter()
        .map(|(id, rows)| {
            if ids.contains(id) {
                wanted.push((id, rows));
                RowSelector::select(rows)
            } else {
                RowSelector::skip(rows)
            }
        })
        .collect();
    let selection = selection.and_then(&RowSelection::from(of_runs));
    // The rows come in the order of `wanted`; a run may straddle two batches.
    let mut wanted = wanted.into_iter();
    let mut current: Option<(u32, usize)> = None;
    for batch in read(&[TIMESTAMP_COLUMN, VALUE_COLUMN], selection)? {
        let batch = batch?;
        let (times, values) = (
            column::<Int64Array>(&batch, 0, "timestamp_ms")?.values(),
            column::<Float64Array>(&batch, 1, "value")?.values(),
        );
        let mut i = 0;
        while i < times.len() {
            let Some((id, left)) = current.take().or_else(|| wanted.next()) else {
                return Err(malformed_samples("timestamp_ms"));
            };
            let end = i + left.min(times.len() - i);
            push_run(id, &times[i..end], &values[i..end]);
            if left > end - i {
                current = Some((id, left - (end - i)));
            }
            i = end;
        }
    }
    Ok(out)
}

/// Column `index` of a batch read from `samples.parquet`, as the array type it is written as.
fn column<'a, T: 'static>(
    batch: &'a RecordBatch,
    index: usize,
    name: &str,
) -> Result<&'a T, BlockError> {
    batch
        .column(index)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| malformed_samples(name))
}

fn malformed_samples(what: &str) -> BlockError {
    BlockError::Malformed {
        file: SAMPLES_FILE,
        reason: format!("column {what} missing or mistyped"),
    }
}

/// Appends a run of series `id`'s samples to `out` (in series order): to the last series when
/// it is the same one, cut by a batch, page or part boundary.
pub fn push_series_run(
    out: &mut Vec<(u32, Vec<Sample>)>,
    id: u32,
    samples: impl IntoIterator<Item = Sample>,
) {
    match out.last_mut() {
        Some((last, into)) if *last == id => into.extend(samples),
        _ => out.push((id, samples.into_iter().collect())),
    }
}

/// The row groups of `samples.parquet` and the row ranges in them that can hold samples of
/// `ids` in `[mint, maxt]`: by the column-chunk statistics, then the page index.
fn plan_samples(
    metadata: &ParquetMetaData,
    ids: &RoaringBitmap,
    mint: i64,
    maxt: i64,
) -> rows::Planned {
    let keys = rows::SortKeys {
        ids,
        min_time: mint,
        max_time: maxt,
        id_col: SERIES_ID_COLUMN,
        time_col: TIMESTAMP_COLUMN,
    };
    let mut planned = Vec::new();
    for (rg_idx, rg) in metadata.row_groups().iter().enumerate() {
        if !keys.row_group_may_match(rg) {
            continue;
        }
        let ranges = keys.page_rows(metadata, rg_idx);
        if !ranges.is_empty() {
            planned.push((rg_idx, ranges));
        }
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::{MatchOp, Matcher};

    #[test]
    fn block_round_trips_labels_and_samples_bit_exact() {
        let a = Labels::from_unsorted(vec![Label::new("__name__", "up"), Label::new("job", "a")]);
        let b = Labels::from_unsorted(vec![Label::new("__name__", "up"), Label::new("job", "b")]);
        let stale = f64::from_bits(vigil_model::STALE_NAN_BITS);
        let sa: Vec<Sample> = (0..1000)
            .map(|i| Sample::new(i * 15_000, i as f64 * 0.5))
            .collect();
        let sb = vec![Sample::new(5, 1.0), Sample::new(10, stale)];
        let block = encode_block("t", [(&a, sa.as_slice()), (&b, sb.as_slice())]).unwrap();
        assert_eq!(block.meta.num_samples, 1002);
        assert_eq!(block.meta.min_time_ms, 0);
        let file = |name| {
            block
                .files
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap()
                .1
                .clone()
        };
        let meta = BlockIndex::parse_meta(&file(META_FILE)).unwrap();
        assert_eq!(meta, block.meta);
        let index = BlockIndex::load(meta, file(SERIES_FILE), &file(INDEX_FILE)).unwrap();
        assert_eq!(index.labels, vec![a, b]);
        let ids = index
            .postings
            .select(&[Matcher::new(MatchOp::Equal, "job", "b").unwrap()]);
        let samples = file(SAMPLES_FILE);
        let got = read_samples(
            samples.clone(),
            &parquet_metadata(&samples).unwrap(),
            &ids,
            (i64::MIN, i64::MAX),
            ReadPart::WHOLE,
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 1);
        assert!(got[0].1[1].same_as(&sb[1]));
    }

    #[test]
    fn reads_of_a_few_series_and_a_time_slice_skip_pages_and_match_a_full_scan() {
        // 600 series × 120 samples: several pages of 16,384 rows.
        let labels: Vec<Labels> = (0..600)
            .map(|i| {
                Labels::from_unsorted(vec![
                    Label::new("__name__", "m"),
                    Label::new("i", format!("{i:03}")),
                ])
            })
            .collect();
        let samples: Vec<Vec<Sample>> = (0..600)
            .map(|i| {
                (0..120)
                    .map(|k| Sample::new(k * 15_000 + i, (i * 1000 + k) as f64))
                    .collect()
            })
            .collect();
        let block = encode_block(
            "t",
            labels.iter().zip(&samples).map(|(l, s)| (l, s.as_slice())),
        )
        .unwrap();
        let file = block
            .files
            .iter()
            .find(|(n, _)| *n == SAMPLES_FILE)
            .unwrap()
            .1
            .clone();
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let builder =
            ParquetRecordBatchReaderBuilder::try_new_with_options(file.clone(), options).unwrap();
        for (ids, mint, maxt) in [
            (vec![3u32, 4, 599], i64::MIN, i64::MAX),
            (vec![0, 250, 251, 598], 300_000, 900_003),
            ((0..600).step_by(7).collect(), 15_000, 15_000 + 599),
            // Most series of their id range: read in one pass, not two.
            ((0..600).filter(|i| i % 5 != 0).collect(), 300_000, i64::MAX),
            (vec![10], 2_000_000, 3_000_000),
            (vec![], i64::MIN, i64::MAX),
        ] {
            let bitmap: RoaringBitmap = ids.iter().copied().collect();
            let want: Vec<(u32, Vec<(i64, f64)>)> = ids
                .iter()
                .map(|&id| {
                    let s = &samples[id as usize];
                    let kept = s.iter().filter(|x| (mint..=maxt).contains(&x.timestamp_ms));
                    (
                        id,
                        kept.map(|x| (x.timestamp_ms, x.value)).collect::<Vec<_>>(),
                    )
                })
                .filter(|(_, s)| !s.is_empty())
                .collect();
            // Whole, and in parts whose pieces of a series join up in order.
            let metadata = parquet_metadata(&file).unwrap();
            for count in [1, 2, 3, 7] {
                let mut got: Vec<(u32, Vec<Sample>)> = Vec::new();
                for part in ReadPart::all(count) {
                    for (id, s) in
                        read_samples(file.clone(), &metadata, &bitmap, (mint, maxt), part).unwrap()
                    {
                        push_series_run(&mut got, id, s);
                    }
                }
                let got: Vec<(u32, Vec<(i64, f64)>)> = got
                    .into_iter()
                    .map(|(id, s)| (id, s.iter().map(|x| (x.timestamp_ms, x.value)).collect()))
                    .collect();
                assert_eq!(got, want, "{ids:?} in [{mint}, {maxt}], {count} parts");
            }
        }
        // Three series in two of the five pages: only those are planned.
        let few: RoaringBitmap = [3u32, 4, 599].into_iter().collect();
        let planned = plan_samples(builder.metadata(), &few, i64::MIN, i64::MAX);
        let rows: usize = planned.iter().flat_map(|(_, r)| r).map(|r| r.len()).sum();
        assert_eq!(planned.len(), 1);
        assert!(rows <= 2 * 16_384, "{rows} rows planned");
    }
}
