//! Row selection shared by the metrics and log block readers: which row groups and, inside
//! them, which row ranges (pages, by the page index) a read decodes.

use std::ops::Range;

use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;
use roaring::RoaringBitmap;

/// The rows a read wants by the two columns block files are sorted by: an id (series or stream)
/// in `ids` at column `id_col`, and a time in `[min_time, max_time]` at column `time_col`.
pub(crate) struct SortKeys<'a> {
    pub ids: &'a RoaringBitmap,
    pub min_time: i64,
    pub max_time: i64,
    pub id_col: usize,
    pub time_col: usize,
}

impl SortKeys<'_> {
    fn wants_ids(&self, min: i32, max: i32) -> bool {
        let (min, max) = (min as u32, max as u32);
        min <= max && self.ids.range_cardinality(min..=max) > 0
    }

    fn wants_times(&self, min: i64, max: i64) -> bool {
        min <= self.max_time && max >= self.min_time
    }

    /// Whether the column-chunk statistics of row group `rg` leave room for a wanted row.
    pub(crate) fn row_group_may_match(&self, rg: &RowGroupMetaData) -> bool {
        match (
            rg.column(self.id_col).statistics(),
            rg.column(self.time_col).statistics(),
        ) {
            (Some(Statistics::Int32(s)), Some(Statistics::Int64(t))) => {
                let ids = match (s.min_opt(), s.max_opt()) {
                    (Some(&min), Some(&max)) => self.wants_ids(min, max),
                    _ => true,
                };
                let times = match (t.min_opt(), t.max_opt()) {
                    (Some(&min), Some(&max)) => self.wants_times(min, max),
                    _ => true,
                };
                ids && times
            }
            _ => true,
        }
    }

    /// The row ranges of row group `rg_idx` whose pages (by the page index of both columns)
    /// may hold wanted rows; the whole row group without a page index.
    pub(crate) fn page_rows(&self, metadata: &ParquetMetaData, rg_idx: usize) -> Vec<Range<usize>> {
        let rows = usize::try_from(metadata.row_group(rg_idx).num_rows()).unwrap_or(0);
        let page_index = metadata.page_index_for_row_group(rg_idx);
        let id_pages = page_ranges(&page_index, self.id_col, rows, |ci, p| match ci {
            ColumnIndexMetaData::INT32(ci) => match (ci.min_value(p), ci.max_value(p)) {
                (Some(&min), Some(&max)) => self.wants_ids(min, max),
                _ => true,
            },
            _ => true,
        });
        let time_pages = page_ranges(&page_index, self.time_col, rows, |ci, p| match ci {
            ColumnIndexMetaData::INT64(ci) => match (ci.min_value(p), ci.max_value(p)) {
                (Some(&min), Some(&max)) => self.wants_times(min, max),
                _ => true,
            },
            _ => true,
        });
        intersect(&id_pages, &time_pages)
    }
}

/// The row groups a read decodes, each with the row ranges in it worth visiting.
pub(crate) type Planned = Vec<(usize, Vec<Range<usize>>)>;

/// The row groups of `planned` and the parquet row selection of their ranges.
pub(crate) fn selection_of(
    metadata: &ParquetMetaData,
    planned: &Planned,
) -> (Vec<usize>, RowSelection) {
    let mut row_groups = Vec::with_capacity(planned.len());
    let mut selectors = Vec::new();
    for (rg, ranges) in planned {
        row_groups.push(*rg);
        let rows = usize::try_from(metadata.row_group(*rg).num_rows()).unwrap_or(0);
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
    (row_groups, RowSelection::from(selectors))
}

/// `part`'s share of the ranges of `planned`, by rows.
pub(crate) fn share_ranges(planned: Planned, part: ReadPart) -> Planned {
    if part.count <= 1 {
        return planned;
    }
    let pieces: Vec<(usize, Range<usize>)> = planned
        .into_iter()
        .flat_map(|(rg, ranges)| ranges.into_iter().map(move |r| (rg, r)))
        .collect();
    let weights: Vec<usize> = pieces.iter().map(|(_, r)| r.len()).collect();
    let (first, end) = part.share(&weights);
    let mut out: Planned = Vec::new();
    for (rg, range) in pieces.into_iter().take(end).skip(first) {
        match out.last_mut() {
            Some((last, ranges)) if *last == rg => ranges.push(range),
            _ => out.push((rg, vec![range])),
        }
    }
    out
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

/// Which share of a file's row groups (or row ranges) a read covers, so that one file can be
/// read by several threads: part `index` of `count` contiguous shares of what the read wants,
/// of about equal rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPart {
    pub index: usize,
    pub count: usize,
}

impl ReadPart {
    pub const WHOLE: ReadPart = ReadPart { index: 0, count: 1 };

    /// `count` parts covering a file together.
    pub fn all(count: usize) -> impl Iterator<Item = ReadPart> {
        let count = count.max(1);
        (0..count).map(move |index| ReadPart { index, count })
    }

    /// This part's items `first..end` of a list whose items cost `weights`: contiguous
    /// shares of about equal weight, together covering the list once.
    pub(crate) fn share(&self, weights: &[usize]) -> (usize, usize) {
        let count = self.count.max(1);
        let total: usize = weights.iter().sum();
        // Item i goes to the part its weight's midpoint falls in.
        let part_of = |before: usize, weight: usize| -> usize {
            if total == 0 {
                return 0;
            }
            ((2 * before + weight) * count / (2 * total)).min(count - 1)
        };
        let (mut first, mut end, mut before) = (weights.len(), weights.len(), 0);
        for (i, &w) in weights.iter().enumerate() {
            let part = part_of(before, w);
            if part == self.index && first == weights.len() {
                first = i;
            }
            if part > self.index {
                end = i;
                break;
            }
            before += w;
        }
        (first.min(end), end)
    }
}
