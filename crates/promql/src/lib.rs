//! PromQL evaluation with Prometheus 3.x semantics (5m lookback, staleness, left-open range
//! windows, extrapolated rates, vector matching), over any [`Storage`]: the database's head and
//! blocks in the server, the real head in the promqltest runner.

mod eval;
pub mod format;
pub mod kernels;
pub mod value;

pub use eval::map_on_all_cores;
pub use value::{Point, Series, Value, VectorSample};
pub use vigil_promql_parser as parser;

mod engine;

pub use engine::{
    check_range_query_type, instant_expr, instant_query, parse, range_expr, range_query,
    Annotations, QueryResult,
};

use std::time::Duration;

use vigil_model::{Labels, Matcher};

/// A source of series for the evaluator.
pub trait Storage {
    /// Every series matching all `matchers` with its points in `[mint, maxt]` (inclusive),
    /// points sorted by time without duplicates. Stale markers are returned as stored.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<StorageSeries>, String>;

    /// The series [`select`](Storage::select) returns, handed one at a time to
    /// `visit(share, labels, points)` instead of all at once: the series are split into at most
    /// `shares` runs (keeping their order), each visited in order on a thread of its own, so a
    /// storage that decodes as it goes never holds the whole selection. `Ok(false)` means the
    /// visit was incomplete (the storage changed under it): discard what was visited and use
    /// `select`. The default selects, then visits (one share below [`MIN_SERIES_FOR_SHARES`]).
    fn visit(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        shares: usize,
        visit: &(dyn Fn(usize, &Labels, &[Point]) + Sync),
    ) -> Result<bool, String> {
        let series = self.select(matchers, mint, maxt)?;
        visit_in_shares(&series, shares, |s| (&s.labels, &s.points[..]), visit);
        Ok(true)
    }
}

/// Below this many series a visit runs in one share: more threads would cost about what they
/// save (a series of a dashboard's range holds some hundred samples).
pub const MIN_SERIES_FOR_SHARES: usize = 256;

/// Visits `items` in at most `shares` contiguous runs on scoped threads (one run below
/// [`MIN_SERIES_FOR_SHARES`] items): `visit(share, labels, points)` with what `parts` takes from each item.
pub fn visit_in_shares<T: Sync>(
    items: &[T],
    shares: usize,
    parts: impl Fn(&T) -> (&Labels, &[Point]) + Sync,
    visit: &(dyn Fn(usize, &Labels, &[Point]) + Sync),
) {
    let shares = if items.len() < MIN_SERIES_FOR_SHARES {
        1
    } else {
        shares
    };
    map_runs(items, shares, |share, run| {
        for item in run {
            let (labels, points) = parts(item);
            visit(share, labels, points);
        }
    });
}

/// `f(run index, run)` over `items` cut into at most `runs` contiguous runs, the first on this
/// thread and each other one on a scoped thread of its own; the results in run order (none
/// for no items).
pub fn map_runs<T: Sync, U: Send>(
    items: &[T],
    runs: usize,
    f: impl Fn(usize, &[T]) -> U + Sync,
) -> Vec<U> {
    let chunk = items.len().div_ceil(runs.max(1)).max(1);
    let f = &f;
    let mut chunks = items.chunks(chunk).enumerate();
    let Some((_, first)) = chunks.next() else {
        return Vec::new();
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .map(|(i, run)| scope.spawn(move || f(i, run)))
            .collect();
        let mut out = Vec::with_capacity(handles.len() + 1);
        out.push(f(0, first));
        out.extend(handles.into_iter().map(|h| match h.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }));
        out
    })
}

/// One series as a [`Storage`] returns it.
#[derive(Debug, Clone)]
pub struct StorageSeries {
    pub labels: Labels,
    pub points: Vec<Point>,
}

/// Limits and defaults of one evaluation, with Prometheus' defaults.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for the latest sample (5m).
    pub lookback_delta_ms: i64,
    /// Most samples held in memory at once by one query (50,000,000).
    pub max_samples: usize,
    /// Wall-clock budget of one query (2m).
    pub timeout: Duration,
    /// Step of subqueries written without one (`[5m:]`): 1m, Prometheus' evaluation interval.
    pub default_subquery_step_ms: i64,
    /// Prometheus' `promql-experimental-functions` feature (off by default, as there).
    pub experimental_functions: bool,
    /// Prometheus' `promql-delayed-name-removal` feature (off by default, as there): drop
    /// `__name__` at the end of the query instead of at each function or operator.
    pub delayed_name_removal: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step_ms: 60 * 1000,
            experimental_functions: false,
            delayed_name_removal: false,
        }
    }
}

/// Why a query failed, with the `errorType` Prometheus reports for it.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query text does not parse or type-check (`bad_data`).
    #[error("{0}")]
    Parse(String),
    /// Bad parameters (`bad_data`), e.g. a range query with end before start.
    #[error("{0}")]
    BadData(String),
    /// A runtime error (`execution`): vector matching, label errors, storage failures.
    #[error("{0}")]
    Execution(String),
    /// The max-samples limit was hit (`execution`).
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// The timeout was hit (`timeout`).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
}

impl QueryError {
    /// The `errorType` of Prometheus' API envelope.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::Parse(_) | QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::TooManySamples(_) => "execution",
            QueryError::Timeout(_) => "timeout",
        }
    }
}
