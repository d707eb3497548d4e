//! Row selection shared by the metrics and log block readers: which row groups and, inside
//! them, which row ranges (pages, by the page index) a read decodes.

use std::ops::Range;

use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;

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

/// Row ranges of the pages of column `col` in one row group that `wanted` keeps; the whole row
/// group when the page index is missing.
pub(crate) fn page_ranges(
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
pub(crate) fn intersect(a: &[Range<usize>], b: &[Range<usize>]) -> Vec<Range<usize>> {
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
