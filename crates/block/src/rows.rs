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

/// Which share of a file's row groups (or row ranges) a read covers, so that one file can be read by several
/// threads: part `index` of `count` contiguous shares of the row groups the read wants, of
/// about equal rows.
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
