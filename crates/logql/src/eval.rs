//! Evaluation of LogQL queries over a [`LogSource`]: log queries (entries through the pipeline,
//! limited and ordered by direction) and metric queries (range aggregations over log lines
//! evaluated at each step, then vector aggregations, binary operations and functions with
//! Prometheus-like semantics, as Loki's engine does).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use vigil_model::{
    Label, Labels, LineFilterFn, LineSeekFn, LogEntry, LogReadFilter, LogSampleValue,
    LogWindowSums, LogWindows, MatchOp, Matcher, PrehashedKey, WindowSums,
};

use crate::ast::{
    BinaryOp, GroupSide, Grouping, LogExpr, MetricExpr, RangeOp, Unwrap, UnwrapConversion,
    VectorAggOp, VectorMatching,
};
use crate::labels::{errors, LabelsBuilder, PackedLabels};
use crate::pipeline::{
    implied_substrings, parse_go_float, required_substrings, split_prefilter, CompileError,
    LabelFilter, Pipeline,
};
use crate::units::{parse_bytes, parse_go_duration};

/// Where the engine reads log entries from.
pub trait LogSource {
    /// Every stream matching all `selector` matchers with its entries in `[start_ns, end_ns]`
    /// (inclusive), sorted by time.
    /// Entries whose line `filter` rejects may be left out, and lines left empty when it skips
    /// them.
    fn select(
        &self,
        selector: &[Matcher],
        start_ns: i64,
        end_ns: i64,
        filter: &LogReadFilter,
    ) -> Result<Vec<SourceStream>, String>;

    /// Window sums of every stream matching `selector` over its entries in
    /// `[start_ns, end_ns]` whose line `filter` keeps, each adding the value `value` asks for,
    /// grouped by stream and structured metadata. For metric queries summing over a pipeline
    /// of line filters only, so that storage need not hand out lines.
    fn select_window_sums(
        &self,
        selector: &[Matcher],
        (start_ns, end_ns): (i64, i64),
        filter: &LogReadFilter,
        value: LogSampleValue,
        windows: LogWindows,
    ) -> Result<Vec<LogWindowSums>, String> {
        let filter = LogReadFilter {
            skip_lines: value == LogSampleValue::One,
            ..filter.clone()
        };
        let streams = self.select(selector, start_ns, end_ns, &filter)?;
        Ok(streams
            .into_iter()
            .flat_map(|s| LogWindowSums::from_entries(&s.labels, s.entries, value, windows))
            .collect())
    }
}

/// The storage side of a pipeline: its leading line filters as a [`LogReadFilter`] (lines kept
/// when `keep_lines`), and the stages that remain for the engine.
fn plan_read(
    expr: &LogExpr,
    keep_lines: impl FnOnce(&Pipeline) -> bool,
) -> Result<(LogReadFilter, Pipeline), EvalError> {
    let (prefilter, rest) = split_prefilter(&expr.pipeline)?;
    let filter = LogReadFilter {
        skip_lines: !keep_lines(&rest),
        required_substrings: required_substrings(&expr.pipeline),
        implied: implied_substrings(&expr.pipeline),
        limit: None,
        stats: None,
        line_seek: prefilter
            .as_ref()
            .and_then(|p| p.seeker())
            .map(|seeker| Arc::new(move |text: &[u8]| seeker.find(text)) as LineSeekFn),
        line_filter: prefilter.map(|p| {
            let p = Arc::new(p);
            Arc::new(move |line: &str| p.matches(line)) as LineFilterFn
        }),
    };
    Ok((filter, rest))
}

/// One stream as a [`LogSource`] returns it.
#[derive(Debug, Clone)]
pub struct SourceStream {
    pub labels: Labels,
    pub entries: Vec<LogEntry>,
}

/// Limits of one query: those that show in answers (Loki's defaults) and its deadline.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `max_query_series`.
    pub max_series: usize,
    /// When the query must have finished (checked between streams and every few thousand lines).
    pub deadline: Option<std::time::Instant>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_series: 500,
            deadline: None,
        }
    }
}

impl Limits {
    fn check_deadline(&self) -> Result<(), EvalError> {
        match self.deadline {
            Some(d) if std::time::Instant::now() >= d => Err(EvalError::Timeout),
            _ => Ok(()),
        }
    }
}

/// Lines processed between two deadline checks.
const DEADLINE_CHECK_LINES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("parse error : {0}")]
    Compile(#[from] CompileError),
    /// A line or sample kept an `__error__` label into a metric result.
    #[error("pipeline error: '{error}' for series: '{series}'.\nUse a label filter to intentionally skip this error. (e.g | __error__!=\"{error}\").\nTo skip all potential errors you can match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n")]
    Pipeline { error: String, series: String },
    #[error("maximum of series ({0}) reached for a single query")]
    TooManySeries(usize),
    #[error("query timed out")]
    Timeout,
    #[error("{0}")]
    Storage(String),
    #[error("{0}")]
    Invalid(String),
}

/// Lines of one result stream, in the answer's order.
#[derive(Debug, Clone)]
pub struct StreamResult {
    /// The line's labels after the pipeline (stream labels, structured metadata, parsed).
    pub labels: PackedLabels,
    pub entries: Vec<ResultEntry>,
}

/// One line of a log query's answer.
#[derive(Debug, Clone)]
pub struct ResultEntry {
    pub timestamp_ns: i64,
    pub line: String,
    /// The labels of the stream the line was stored in (shared by its lines).
    pub stream: Arc<Labels>,
    /// The entry's structured metadata as stored.
    pub structured_metadata: Vec<(String, String)>,
}

impl ResultEntry {
    /// Labels the pipeline added or changed: the line's labels that are neither the stream's
    /// nor structured metadata (Loki's `parsed` category).
    pub fn parsed(&self, labels: &PackedLabels) -> Vec<(String, String)> {
        labels
            .iter()
            .filter(|(name, value)| self.stream.get(name) != Some(value))
            .filter(|(name, value)| {
                !self
                    .structured_metadata
                    .iter()
                    .any(|(k, v)| k == name && v == value)
            })
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }
}

type Candidate = (i64, usize, String, Arc<Labels>, Vec<(String, String)>);

/// Result keys (label sets after the pipeline) by their labels, numbered in order of appearance.
type KeyMap = HashMap<PackedLabels, usize, BuildHasherDefault<PrehashedKey>>;

/// Runs a log query: entries in `[start_ns, end_ns)`, at most `limit` over all streams, the
/// newest first (`forward == false`) or the oldest first.
pub fn eval_log_query(
    expr: &LogExpr,
    source: &dyn LogSource,
    start_ns: i64,
    end_ns: i64,
    limit: usize,
    forward: bool,
    limits: Limits,
) -> Result<Vec<StreamResult>, EvalError> {
    let (mut filter, pipeline) = plan_read(expr, |_| true)?;
    if limit == 0 || end_ns <= start_ns {
        return Ok(Vec::new());
    }
    if pipeline.is_empty() {
        // Storage applies every stage: the first `limit` entries it finds in order are the answer.
        filter.limit = Some((limit, forward));
    }
    // Per stream at most `limit` lines can make the cut: walk each from the wanted end.
    let mut keys = KeyMap::default();
    // (time, result key, line, source stream, structured metadata)
    let mut candidates: Vec<Candidate> = Vec::new();
    // Read time slices from the wanted end, growing, until `limit` lines passed; older (newer)
    // slices cannot make the cut then. When the engine filters (parsers, label filters),
    // storage cannot stop at the limit itself. A bare selector is sliced too: every entry
    // counts, so the first slice mostly suffices and spares decoding whole blocks. Storage
    // line filters alone are not: their matches may be rare, and storage stops at the limit.
    let mut slice_ns = if pipeline.is_empty() && filter.line_filter.is_some() {
        end_ns - start_ns
    } else {
        ((end_ns - start_ns) / 16).max(MIN_SLICE_NS)
    };
    let (mut lo, mut hi) = if forward {
        (start_ns, (start_ns + slice_ns).min(end_ns))
    } else {
        ((end_ns - slice_ns).max(start_ns), end_ns)
    };
    let pass = LinePass {
        pipeline: &pipeline,
        limit,
        forward,
        limits: &limits,
    };
    loop {
        limits.check_deadline()?;
        let mut streams = source
            .select(&expr.selector, lo, hi - 1, &filter)
            .map_err(EvalError::Storage)?;
        let kept = pass.run(&mut streams, (lo, hi))?;
        for (stream, kept) in streams.iter().zip(kept) {
            let labels = Arc::new(stream.labels.clone());
            let stream_key = pipeline
                .keeps_stream_labels()
                .then(|| intern(&mut keys, PackedLabels::of(&stream.labels)));
            for line in kept {
                let key = match (line.labels, stream_key) {
                    (Some(l), _) => intern(&mut keys, l),
                    (None, Some(k)) => k,
                    (None, None) => intern(&mut keys, PackedLabels::of(&stream.labels)),
                };
                candidates.push((
                    line.timestamp_ns,
                    key,
                    line.line,
                    labels.clone(),
                    line.structured_metadata,
                ));
            }
        }
        let done = if forward {
            hi >= end_ns
        } else {
            lo <= start_ns
        };
        if !done {
            order_candidates(&mut candidates, forward);
        }
        if done || candidates.len() >= limit {
            break;
        }
        slice_ns = slice_ns.saturating_mul(2);
        if forward {
            lo = hi;
            hi = hi.saturating_add(slice_ns).min(end_ns);
        } else {
            hi = lo;
            lo = lo.saturating_sub(slice_ns).max(start_ns);
        }
    }
    order_candidates(&mut candidates, forward);
    candidates.truncate(limit);
    let mut per_key: Vec<Vec<ResultEntry>> = vec![Vec::new(); keys.len()];
    for (timestamp_ns, key, line, stream, structured_metadata) in candidates {
        per_key[key].push(ResultEntry {
            timestamp_ns,
            line,
            stream,
            structured_metadata,
        });
    }
    // In the order the keys appeared.
    let mut answer: Vec<(usize, StreamResult)> = keys
        .into_iter()
        .filter_map(|(labels, key)| {
            let entries = std::mem::take(&mut per_key[key]);
            (!entries.is_empty()).then_some((key, StreamResult { labels, entries }))
        })
        .collect();
    answer.sort_unstable_by_key(|(key, _)| *key);
    Ok(answer.into_iter().map(|(_, stream)| stream).collect())
}

/// Sorts candidates in answer order and drops identical entries (same time, labels and line)
/// that came from different source streams.
fn order_candidates(candidates: &mut Vec<Candidate>, forward: bool) {
    if forward {
        candidates.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    } else {
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    }
    candidates.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1 && a.2 == b.2);
}

/// The shortest first slice of a log query.
const MIN_SLICE_NS: i64 = 15 * 60 * 1_000_000_000;

/// Lines of one stream the cores take at a time.
const UNIT_LINES: usize = 256;

/// Lines between two looks at whether the lines before a unit already made the cut.
const CUT_CHECK_LINES: usize = 32;

fn intern(keys: &mut KeyMap, key: PackedLabels) -> usize {
    let next = keys.len();
    *keys.entry(key).or_insert(next)
}

/// A line the pipeline kept.
struct KeptLine {
    timestamp_ns: i64,
    line: String,
    /// Its labels after the pipeline; `None` when they are its stream's.
    labels: Option<PackedLabels>,
    structured_metadata: Vec<(String, String)>,
}

/// A run of one stream's entries in the order they are visited, never cut between two entries
/// of the same time (identical entries are kept once, and a run sees all of them).
struct Unit<'a> {
    stream: usize,
    entries: &'a mut [LogEntry],
}

/// What a finished unit kept: how many lines, the time of the last one.
#[derive(Clone, Copy)]
struct UnitCut {
    stream: usize,
    kept: usize,
    last_ns: i64,
}

/// The pipeline of a log query over the lines of a time slice.
struct LinePass<'a> {
    pipeline: &'a Pipeline,
    limit: usize,
    forward: bool,
    limits: &'a Limits,
}

/// Units of [`LinePass::run`], shared by the cores.
struct Units<'a> {
    slots: Vec<std::sync::Mutex<Option<Unit<'a>>>>,
    /// Per unit: its stream, and lines it kept so far.
    streams: Vec<usize>,
    kept: Vec<AtomicUsize>,
    /// Per stream: its units in visiting order.
    of_stream: Vec<Vec<usize>>,
    /// Units finished with lines kept, by stream.
    finished: std::sync::Mutex<Vec<UnitCut>>,
}

impl<'a> Units<'a> {
    /// Cuts each stream's entries in `[lo, hi)` into units in visiting order, and orders all
    /// units by the time of their first line; with the streams' labels.
    fn cut(
        streams: &'a mut [SourceStream],
        (lo, hi): (i64, i64),
        forward: bool,
    ) -> (Vec<&'a Labels>, Self) {
        let stream_count = streams.len();
        let mut labels: Vec<&Labels> = Vec::with_capacity(stream_count);
        let mut cut: Vec<(i64, Unit<'_>)> = Vec::new();
        for (stream, source) in streams.iter_mut().enumerate() {
            labels.push(&source.labels);
            let from = source.entries.partition_point(|e| e.timestamp_ns < lo);
            let to = source.entries.partition_point(|e| e.timestamp_ns < hi);
            let mut rest = &mut source.entries[from..to.max(from)];
            while !rest.is_empty() {
                let n = rest.len();
                let (unit, left) = if forward {
                    let mut at = UNIT_LINES.min(n);
                    while at < n && rest[at].timestamp_ns == rest[at - 1].timestamp_ns {
                        at += 1;
                    }
                    std::mem::take(&mut rest).split_at_mut(at)
                } else {
                    let mut at = n - UNIT_LINES.min(n);
                    while at > 0 && rest[at - 1].timestamp_ns == rest[at].timestamp_ns {
                        at -= 1;
                    }
                    let (left, unit) = std::mem::take(&mut rest).split_at_mut(at);
                    (unit, left)
                };
                let first_ns = if forward {
                    unit[0].timestamp_ns
                } else {
                    unit[unit.len() - 1].timestamp_ns
                };
                cut.push((
                    first_ns,
                    Unit {
                        stream,
                        entries: unit,
                    },
                ));
                rest = left;
            }
        }
        // Stable: units of one time stay by stream, and in their stream's order.
        cut.sort_by(|a, b| {
            let by_time = a.0.cmp(&b.0);
            if forward {
                by_time
            } else {
                by_time.reverse()
            }
        });
        let mut of_stream: Vec<Vec<usize>> = vec![Vec::new(); stream_count];
        for (u, (_, unit)) in cut.iter().enumerate() {
            of_stream[unit.stream].push(u);
        }
        let units = Self {
            streams: cut.iter().map(|(_, unit)| unit.stream).collect(),
            kept: cut.iter().map(|_| AtomicUsize::new(0)).collect(),
            slots: cut
                .into_iter()
                .map(|(_, unit)| std::sync::Mutex::new(Some(unit)))
                .collect(),
            of_stream,
            finished: std::sync::Mutex::new(Vec::new()),
        };
        (labels, units)
    }

    /// Records what unit `u` kept, for [`LinePass::kept_before`].
    fn finish(&self, u: usize, kept: &[KeptLine]) {
        let (Some(last), Ok(mut finished)) = (kept.last(), self.finished.lock()) else {
            return;
        };
        let stream = self.streams[u];
        let at = finished.partition_point(|c| c.stream <= stream);
        finished.insert(
            at,
            UnitCut {
                stream,
                kept: kept.len(),
                last_ns: last.timestamp_ns,
            },
        );
    }
}

impl LinePass<'_> {
    /// Whether time `a` comes before `b` in the query's direction.
    fn before(&self, a: i64, b: i64) -> bool {
        if self.forward {
            a < b
        } else {
            a > b
        }
    }

    /// Each stream's first `limit` lines in `[lo, hi)` that pass the pipeline, walking from the
    /// wanted end, identical entries (same time, labels and line) kept once. Streams are cut
    /// into units; the cores take them in the order of their first line's time, and a unit
    /// stops where no line can make the answer any more: once its stream's units before it
    /// kept `limit` lines, or finished units kept `limit` lines all before its current line.
    fn run(
        &self,
        streams: &mut [SourceStream],
        (lo, hi): (i64, i64),
    ) -> Result<Vec<Vec<KeptLine>>, EvalError> {
        let stream_count = streams.len();
        let (labels, units) = Units::cut(streams, (lo, hi), self.forward);
        let next = AtomicUsize::new(0);
        let work = || -> Result<Vec<(usize, Vec<KeptLine>)>, EvalError> {
            let mut builder = LabelsBuilder::default();
            let mut scratch = String::new();
            let mut builder_stream = usize::MAX;
            let mut out = Vec::new();
            loop {
                let u = next.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = units.slots.get(u) else {
                    return Ok(out);
                };
                let Some(unit) = slot.lock().ok().and_then(|mut s| s.take()) else {
                    continue;
                };
                if unit.stream != builder_stream {
                    builder_stream = unit.stream;
                    builder.reset(labels[unit.stream]);
                }
                let kept = self.unit(&units, u, unit, &labels, &mut builder, &mut scratch)?;
                units.finish(u, &kept);
                out.push((u, kept));
            }
        };
        // Without stages a line costs too little to hand to another thread.
        let workers = if self.pipeline.is_empty() {
            1
        } else {
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(units.slots.len())
        };
        let mut done: Vec<(usize, Vec<KeptLine>)> = if workers > 1 {
            std::thread::scope(|scope| {
                let others: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
                let mut all = work()?;
                for other in others {
                    match other.join() {
                        Ok(kept) => all.extend(kept?),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
                Ok::<_, EvalError>(all)
            })?
        } else {
            work()?
        };
        // Each stream's units in visiting order.
        done.sort_unstable_by_key(|(u, _)| (units.streams[*u], *u));
        let mut per_stream: Vec<Vec<KeptLine>> = (0..stream_count).map(|_| Vec::new()).collect();
        for (u, kept) in done {
            let lines = &mut per_stream[units.streams[u]];
            let room = self.limit.saturating_sub(lines.len());
            lines.extend(kept.into_iter().take(room));
        }
        Ok(per_stream)
    }

    /// Lines that certainly come before line time `t` of unit `u` in the answer: those the
    /// units before `u` of its stream kept so far, or those finished units of another stream
    /// kept all before `t`. Lines of two streams are not added up: identical entries of two
    /// streams count once in the answer.
    fn kept_before(&self, units: &Units<'_>, u: usize, stream: usize, t: i64) -> usize {
        let own: usize = units.of_stream[stream]
            .iter()
            .take_while(|&&v| v != u)
            .map(|&v| units.kept[v].load(Ordering::Relaxed))
            .sum();
        let Ok(finished) = units.finished.lock() else {
            return own;
        };
        finished
            .chunk_by(|a, b| a.stream == b.stream)
            .map(|of_stream| {
                of_stream
                    .iter()
                    .filter(|c| self.before(c.last_ns, t))
                    .map(|c| c.kept)
                    .sum()
            })
            .fold(own, usize::max)
    }

    /// The lines of unit `u` that pass, in visiting order, until no more can make the answer
    /// ([`LinePass::run`]).
    fn unit(
        &self,
        units: &Units<'_>,
        u: usize,
        unit: Unit<'_>,
        labels: &[&Labels],
        builder: &mut LabelsBuilder,
        scratch: &mut String,
    ) -> Result<Vec<KeptLine>, EvalError> {
        let keeps_stream_labels = self.pipeline.keeps_stream_labels();
        let stream_key = keeps_stream_labels.then(|| PackedLabels::of(labels[unit.stream]));
        let mut kept: Vec<KeptLine> = Vec::new();
        let mut before = 0;
        // Kept lines at the current timestamp: Loki keeps one of identical entries (same
        // labels, time and line after the pipeline).
        let mut run_ts = i64::MIN;
        let mut run_start = 0;
        let mut visit = |i: usize, entry: &mut LogEntry| -> Result<bool, EvalError> {
            if i.is_multiple_of(CUT_CHECK_LINES) {
                if i.is_multiple_of(DEADLINE_CHECK_LINES) {
                    self.limits.check_deadline()?;
                }
                before = self.kept_before(units, u, unit.stream, entry.timestamp_ns);
            }
            if before + kept.len() >= self.limit {
                return Ok(false);
            }
            builder.reset_to_base();
            for (k, v) in &entry.structured_metadata {
                builder.set(k, v);
            }
            // The source's line is ours: formatted in place, no copy.
            let mut line = std::mem::take(&mut entry.line);
            if !self
                .pipeline
                .process(entry.timestamp_ns, &mut line, builder, scratch)
            {
                return Ok(true);
            }
            let key = if keeps_stream_labels && entry.structured_metadata.is_empty() {
                None
            } else {
                Some(builder.packed()).filter(|key| stream_key.as_ref() != Some(key))
            };
            if entry.timestamp_ns != run_ts {
                run_ts = entry.timestamp_ns;
                run_start = kept.len();
            } else if kept[run_start..]
                .iter()
                .any(|k| k.labels == key && k.line == line)
            {
                return Ok(true);
            }
            kept.push(KeptLine {
                timestamp_ns: entry.timestamp_ns,
                line,
                labels: key,
                structured_metadata: std::mem::take(&mut entry.structured_metadata),
            });
            units.kept[u].store(kept.len(), Ordering::Relaxed);
            Ok(true)
        };
        if self.forward {
            for (i, e) in unit.entries.iter_mut().enumerate() {
                if !visit(i, e)? {
                    break;
                }
            }
        } else {
            for (i, e) in unit.entries.iter_mut().rev().enumerate() {
                if !visit(i, e)? {
                    break;
                }
            }
        }
        Ok(kept)
    }
}

/// The steps a metric query is evaluated at: `start`, `start + step`, ... `<= end`.
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    pub start_ns: i64,
    pub end_ns: i64,
    pub step_ns: i64,
}

impl Steps {
    pub fn instant(time_ns: i64) -> Self {
        Self {
            start_ns: time_ns,
            end_ns: time_ns,
            step_ns: 1,
        }
    }

    pub fn len(&self) -> usize {
        if self.end_ns < self.start_ns {
            return 0;
        }
        ((self.end_ns - self.start_ns) / self.step_ns.max(1)) as usize + 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn at(&self, i: usize) -> i64 {
        self.start_ns + i as i64 * self.step_ns
    }
}

/// A metric query's value: one scalar per step, or series with an optional value per step.
#[derive(Debug, Clone)]
pub enum MetricValue {
    Scalar(Vec<f64>),
    Vector(Vec<StepSeries>),
}

#[derive(Debug, Clone)]
pub struct StepSeries {
    pub labels: Labels,
    pub values: Vec<Option<f64>>,
}

/// Evaluates a metric query at every step.
pub fn eval_metric_query(
    expr: &MetricExpr,
    source: &dyn LogSource,
    steps: Steps,
    limits: Limits,
) -> Result<MetricValue, EvalError> {
    let evaluator = Evaluator {
        source,
        steps,
        limits,
    };
    let value = evaluator.eval(expr)?;
    if let MetricValue::Vector(series) = &value {
        if series.len() > limits.max_series {
            return Err(EvalError::TooManySeries(limits.max_series));
        }
    }
    Ok(value)
}

struct Evaluator<'a> {
    source: &'a dyn LogSource,
    steps: Steps,
    limits: Limits,
}

/// Samples of one series (after the pipeline and grouping), in time order.
struct SampleSeries {
    labels: Labels,
    samples: Vec<(i64, f64)>,
}

impl Evaluator<'_> {
    fn eval(&self, expr: &MetricExpr) -> Result<MetricValue, EvalError> {
        let n = self.steps.len();
        match expr {
            MetricExpr::Literal(v) => Ok(MetricValue::Scalar(vec![*v; n])),
            MetricExpr::Vector(v) => Ok(MetricValue::Vector(vec![StepSeries {
                labels: Labels::from_sorted(Vec::new()),
                values: vec![Some(*v); n],
            }])),
            MetricExpr::Range {
                op,
                log,
                range_ns,
                offset_ns,
                unwrap,
                param,
                grouping,
            } => self.eval_range(
                *op,
                log,
                *range_ns,
                *offset_ns,
                unwrap.as_ref(),
                *param,
                grouping.as_ref(),
            ),
            MetricExpr::VectorAgg {
                op,
                param,
                grouping,
                inner,
            } => {
                let series = match self.eval(inner)? {
                    MetricValue::Vector(s) => s,
                    MetricValue::Scalar(_) => {
                        return Err(EvalError::Invalid(
                            "vector aggregation over a scalar".to_string(),
                        ))
                    }
                };
                Ok(MetricValue::Vector(aggregate(
                    *op,
                    *param,
                    grouping.as_ref(),
                    series,
                    n,
                )))
            }
            MetricExpr::Binary {
                op,
                return_bool,
                matching,
                lhs,
                rhs,
            } => {
                let l = self.eval(lhs)?;
                let r = self.eval(rhs)?;
                binary(*op, *return_bool, matching.as_ref(), l, r, n)
            }
            MetricExpr::LabelReplace {
                inner,
                dst,
                replacement,
                src,
                regex,
            } => {
                let re = regex::Regex::new(&format!("^(?s:{regex})$"))
                    .map_err(|e| EvalError::Invalid(e.to_string()))?;
                let series = match self.eval(inner)? {
                    MetricValue::Vector(s) => s,
                    MetricValue::Scalar(_) => {
                        return Err(EvalError::Invalid(
                            "label_replace over a scalar".to_string(),
                        ))
                    }
                };
                let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
                for s in series {
                    let value = s.labels.get(src).unwrap_or("");
                    let labels = match re.captures(value) {
                        None => s.labels.clone(),
                        Some(caps) => {
                            let mut expanded = String::new();
                            caps.expand(replacement, &mut expanded);
                            let mut pairs: Vec<Label> = s
                                .labels
                                .iter()
                                .filter(|l| l.name != *dst)
                                .cloned()
                                .collect();
                            if !expanded.is_empty() {
                                pairs.push(Label::new(dst.as_str(), expanded));
                            }
                            Labels::from_unsorted(pairs)
                        }
                    };
                    out.push(StepSeries {
                        labels,
                        values: s.values,
                    });
                }
                Ok(MetricValue::Vector(merge_same_labels(out)))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_range(
        &self,
        op: RangeOp,
        log: &LogExpr,
        range_ns: i64,
        offset_ns: i64,
        unwrap: Option<&Unwrap>,
        param: Option<f64>,
        grouping: Option<&Grouping>,
    ) -> Result<MetricValue, EvalError> {
        let n = self.steps.len();
        // Counting needs no lines once storage has applied the line filters.
        let counts_only = matches!(
            op,
            RangeOp::CountOverTime | RangeOp::Rate | RangeOp::AbsentOverTime
        ) && unwrap.is_none();
        let (filter, pipeline) = plan_read(log, |rest| !(counts_only && rest.is_empty()))?;
        let post_filters = match unwrap {
            Some(u) => u
                .post_filters
                .iter()
                .map(LabelFilter::compile)
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        // Windows are (t - offset - range, t - offset].
        let first = self.steps.start_ns - offset_ns - range_ns + 1;
        let last = self.steps.end_ns - offset_ns;
        let sample_value = match op {
            RangeOp::BytesOverTime | RangeOp::BytesRate => Some(LogSampleValue::LineBytes),
            RangeOp::CountOverTime | RangeOp::Rate | RangeOp::AbsentOverTime => {
                Some(LogSampleValue::One)
            }
            _ => None,
        };
        if let (Some(value), None, true) = (sample_value, unwrap, pipeline.is_empty()) {
            // Nothing left for the engine to do per line: storage sums the windows.
            let windows = LogWindows {
                first_end_ns: self.steps.start_ns - offset_ns,
                step_ns: self.steps.step_ns,
                steps: n,
                range_ns,
            };
            let groups = self
                .source
                .select_window_sums(&log.selector, (first, last), &filter, value, windows)
                .map_err(EvalError::Storage)?;
            self.limits.check_deadline()?;
            let series = group_window_sums(groups, grouping, n);
            if op == RangeOp::AbsentOverTime {
                let present: Vec<bool> = (0..n)
                    .map(|i| series.iter().any(|(_, s)| s.counts[i] > 0))
                    .collect();
                return Ok(MetricValue::Vector(self.absent(&present, &log.selector)));
            }
            let range_s = range_ns as f64 / 1e9;
            return Ok(MetricValue::Vector(
                series
                    .into_iter()
                    .map(|(labels, sums)| {
                        let values = (0..n)
                            .map(|i| {
                                (sums.counts[i] > 0).then(|| match op {
                                    RangeOp::CountOverTime => sums.counts[i] as f64,
                                    RangeOp::Rate => sums.counts[i] as f64 / range_s,
                                    RangeOp::BytesRate => sums.sums[i] as f64 / range_s,
                                    _ => sums.sums[i] as f64,
                                })
                            })
                            .collect();
                        StepSeries { labels, values }
                    })
                    .collect(),
            ));
        }
        let streams = self
            .source
            .select(&log.selector, first, last, &filter)
            .map_err(EvalError::Storage)?;
        let series = extract_samples(
            streams,
            &pipeline,
            unwrap,
            &post_filters,
            op,
            grouping,
            &self.limits,
        )?;
        if op == RangeOp::AbsentOverTime {
            let present: Vec<bool> = (0..n)
                .map(|i| {
                    let t = self.steps.at(i) - offset_ns;
                    series.iter().any(|s| {
                        let idx = s.samples.partition_point(|(ts, _)| *ts <= t - range_ns);
                        s.samples.get(idx).is_some_and(|(ts, _)| *ts <= t)
                    })
                })
                .collect();
            return Ok(MetricValue::Vector(self.absent(&present, &log.selector)));
        }
        let mut out = Vec::with_capacity(series.len());
        for s in series {
            let mut values = vec![None; n];
            let (mut lo, mut hi) = (0usize, 0usize);
            let mut any = false;
            for (i, slot) in values.iter_mut().enumerate() {
                let t = self.steps.at(i) - offset_ns;
                while lo < s.samples.len() && s.samples[lo].0 <= t - range_ns {
                    lo += 1;
                }
                if hi < lo {
                    hi = lo;
                }
                while hi < s.samples.len() && s.samples[hi].0 <= t {
                    hi += 1;
                }
                if hi > lo {
                    *slot = range_value(op, &s.samples[lo..hi], t, range_ns, param);
                    any |= slot.is_some();
                }
            }
            if any {
                out.push(StepSeries {
                    labels: s.labels,
                    values,
                });
            }
        }
        Ok(MetricValue::Vector(out))
    }

    /// `absent_over_time`: 1 at the steps where no window held an entry.
    fn absent(&self, present: &[bool], selector: &[Matcher]) -> Vec<StepSeries> {
        let values: Vec<Option<f64>> = present
            .iter()
            .map(|&p| if p { None } else { Some(1.0) })
            .collect();
        let any = values.iter().any(Option::is_some);
        if !any {
            return Vec::new();
        }
        let mut pairs: Vec<Label> = Vec::new();
        for m in selector {
            if m.op == MatchOp::Equal && !pairs.iter().any(|l| l.name == m.name) {
                pairs.push(Label::new(m.name.as_str(), m.value.as_str()));
            }
        }
        vec![StepSeries {
            labels: Labels::from_unsorted(pairs),
            values,
        }]
    }
}

/// Runs the pipeline over every entry and turns passing lines into samples, keyed by their
/// final labels (grouped when the range aggregation has `by`/`without`).
fn extract_samples(
    streams: Vec<SourceStream>,
    pipeline: &Pipeline,
    unwrap: Option<&Unwrap>,
    post_filters: &[LabelFilter],
    op: RangeOp,
    grouping: Option<&Grouping>,
    limits: &Limits,
) -> Result<Vec<SampleSeries>, EvalError> {
    let mut index: FxHashMap<Labels, usize> = FxHashMap::default();
    let mut out: Vec<SampleSeries> = Vec::new();
    let mut builder = LabelsBuilder::default();
    let mut scratch = String::new();
    let fast_labels = pipeline.keeps_stream_labels() && unwrap.is_none() && grouping.is_none();
    for stream in streams {
        builder.reset(&stream.labels);
        let mut stream_series: Option<usize> = None;
        limits.check_deadline()?;
        for (n, entry) in stream.entries.into_iter().enumerate() {
            if n % DEADLINE_CHECK_LINES == DEADLINE_CHECK_LINES - 1 {
                limits.check_deadline()?;
            }
            builder.reset_to_base();
            for (k, v) in &entry.structured_metadata {
                builder.set(k, v);
            }
            let mut line = entry.line;
            if !pipeline.process(entry.timestamp_ns, &mut line, &mut builder, &mut scratch) {
                continue;
            }
            let value = match unwrap {
                None => match op {
                    RangeOp::BytesOverTime | RangeOp::BytesRate => line.len() as f64,
                    _ => 1.0,
                },
                Some(u) => {
                    let raw = builder.get(&u.label).unwrap_or("");
                    if raw.is_empty() {
                        continue;
                    }
                    let converted = match u.conversion {
                        UnwrapConversion::None => parse_go_float(raw),
                        UnwrapConversion::Duration => {
                            parse_go_duration(raw).map(|ns| ns as f64 / 1e9)
                        }
                        UnwrapConversion::Bytes => parse_bytes(raw).map(f64::trunc),
                    };
                    let v = match converted {
                        Ok(v) => v,
                        Err(details) => {
                            builder.set_error(errors::SAMPLE_EXTRACTION, Some(&details));
                            0.0
                        }
                    };
                    if !post_filters.iter().all(|f| f.process(&mut builder)) {
                        continue;
                    }
                    v
                }
            };
            if let Some(error) = builder.error() {
                return Err(EvalError::Pipeline {
                    error: error.to_string(),
                    series: builder.labels().to_string(),
                });
            }
            let idx = if fast_labels && entry.structured_metadata.is_empty() {
                match stream_series {
                    Some(i) => i,
                    None => {
                        let i = series_index(&mut index, &mut out, &stream.labels);
                        stream_series = Some(i);
                        i
                    }
                }
            } else {
                let labels = match (grouping, unwrap) {
                    (Some(g), _) if !g.without => group_labels(builder.iter(), g),
                    // Without `by`, the unwrapped label leaves the series (as in Loki).
                    (g, Some(u)) => {
                        let mut dropped = g.map(|g| g.labels.clone()).unwrap_or_default();
                        dropped.push(u.label.clone());
                        group_labels(
                            builder.iter(),
                            &Grouping {
                                without: true,
                                labels: dropped,
                            },
                        )
                    }
                    (Some(g), None) => group_labels(builder.iter(), g),
                    (None, None) => builder.labels(),
                };
                series_index(&mut index, &mut out, &labels)
            };
            out[idx].samples.push((entry.timestamp_ns, value));
        }
    }
    for s in &mut out {
        if !s.samples.windows(2).all(|w| w[0].0 <= w[1].0) {
            s.samples.sort_by_key(|(ts, _)| *ts);
        }
    }
    Ok(out)
}

/// Window sums read from storage as series: each group's labels are its stream's with its
/// structured metadata added (what an empty pipeline leaves), grouped by the range
/// aggregation's `by`/`without`; in order of first appearance.
fn group_window_sums(
    groups: Vec<LogWindowSums>,
    grouping: Option<&Grouping>,
    steps: usize,
) -> Vec<(Labels, WindowSums)> {
    let mut index: FxHashMap<Labels, usize> = FxHashMap::default();
    let mut out: Vec<(Labels, WindowSums)> = Vec::new();
    let mut builder = LabelsBuilder::default();
    for group in groups {
        let labels = if group.structured_metadata.is_empty() && grouping.is_none() {
            group.labels
        } else {
            builder.reset(&group.labels);
            for (k, v) in &group.structured_metadata {
                builder.set(k, v);
            }
            match grouping {
                Some(g) => group_labels(builder.iter(), g),
                None => builder.labels(),
            }
        };
        debug_assert_eq!(group.sums.counts.len(), steps);
        match index.get(&labels) {
            Some(&i) => out[i].1.add(&group.sums),
            None => {
                index.insert(labels.clone(), out.len());
                out.push((labels, group.sums));
            }
        }
    }
    out
}

fn series_index(
    index: &mut FxHashMap<Labels, usize>,
    out: &mut Vec<SampleSeries>,
    labels: &Labels,
) -> usize {
    if let Some(&i) = index.get(labels) {
        return i;
    }
    let i = out.len();
    index.insert(labels.clone(), i);
    out.push(SampleSeries {
        labels: labels.clone(),
        samples: Vec::new(),
    });
    i
}

fn group_labels<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>, g: &Grouping) -> Labels {
    let kept: Vec<Label> = pairs
        .filter(|(n, _)| g.labels.iter().any(|l| l == n) != g.without)
        .map(|(n, v)| Label::new(n, v))
        .collect();
    Labels::from_unsorted(kept)
}

/// The value of a range aggregation over the samples of the window `(end - range, end]`.
fn range_value(
    op: RangeOp,
    samples: &[(i64, f64)],
    end_ns: i64,
    range_ns: i64,
    param: Option<f64>,
) -> Option<f64> {
    let range_s = range_ns as f64 / 1e9;
    let values = samples.iter().map(|(_, v)| *v);
    Some(match op {
        RangeOp::CountOverTime => samples.len() as f64,
        RangeOp::Rate => values.sum::<f64>() / range_s,
        RangeOp::BytesOverTime | RangeOp::SumOverTime => values.sum::<f64>(),
        RangeOp::BytesRate => values.sum::<f64>() / range_s,
        RangeOp::AvgOverTime => {
            // Loki averages incrementally (as Prometheus does for large values).
            let mut mean = 0.0;
            for (i, v) in values.enumerate() {
                mean += (v - mean) / (i as f64 + 1.0);
            }
            mean
        }
        RangeOp::MaxOverTime => {
            values.fold(f64::NAN, |m, v| if m.is_nan() || v > m { v } else { m })
        }
        RangeOp::MinOverTime => {
            values.fold(f64::NAN, |m, v| if m.is_nan() || v < m { v } else { m })
        }
        RangeOp::StdvarOverTime => variance(values),
        RangeOp::StddevOverTime => variance(values).sqrt(),
        RangeOp::QuantileOverTime => {
            let mut v: Vec<f64> = values.collect();
            quantile(param.unwrap_or(f64::NAN), &mut v)
        }
        RangeOp::FirstOverTime => samples.first()?.1,
        RangeOp::LastOverTime => samples.last()?.1,
        RangeOp::RateCounter => counter_rate(samples, end_ns, range_ns)?,
        RangeOp::AbsentOverTime => return None,
    })
}

fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        m2 += delta * (v - mean);
    }
    m2 / count
}

/// Prometheus' quantile: linear interpolation between the closest ranks.
fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Per-second rate of a counter over the window `(end - range, end]`, with counter resets and
/// Prometheus' extrapolation to the window's edges (Loki's `rate_counter`, as its
/// `extrapolatedRate`).
fn counter_rate(samples: &[(i64, f64)], end_ns: i64, range_ns: i64) -> Option<f64> {
    let (first, last) = (samples.first()?, samples.last()?);
    if samples.len() < 2 {
        return None;
    }
    let mut increase = last.1 - first.1;
    let mut prev = first.1;
    for (_, v) in &samples[1..] {
        if *v < prev {
            increase += prev;
        }
        prev = *v;
    }
    let seconds = |ns: i64| ns as f64 / 1e9;
    let mut to_start = seconds(first.0 - (end_ns - range_ns));
    let to_end = seconds(end_ns - last.0);
    let sampled = seconds(last.0 - first.0);
    let average_gap = sampled / (samples.len() - 1) as f64;
    // A counter does not extrapolate below zero.
    if increase > 0.0 && first.1 >= 0.0 {
        to_start = to_start.min(sampled * (first.1 / increase));
    }
    let threshold = average_gap * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average_gap / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average_gap / 2.0
    };
    Some(increase * (interval / sampled) / seconds(range_ns))
}

/// Merges series that ended up with the same labels (first value per step wins).
fn merge_same_labels(series: Vec<StepSeries>) -> Vec<StepSeries> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            Some(&i) => {
                for (slot, v) in out[i].values.iter_mut().zip(s.values) {
                    if slot.is_none() {
                        *slot = v;
                    }
                }
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    out
}

fn grouping_key(labels: &Labels, grouping: Option<&Grouping>) -> Labels {
    match grouping {
        None => Labels::from_sorted(Vec::new()),
        Some(g) => group_labels(
            labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
            g,
        ),
    }
}

fn aggregate(
    op: VectorAggOp,
    param: Option<f64>,
    grouping: Option<&Grouping>,
    series: Vec<StepSeries>,
    n: usize,
) -> Vec<StepSeries> {
    match op {
        VectorAggOp::Sort | VectorAggOp::SortDesc => {
            // Only an instant query's order shows: sort by the first step's value.
            let mut series = series;
            let key = |s: &StepSeries| s.values.first().copied().flatten().unwrap_or(f64::NAN);
            series.sort_by(|a, b| {
                let (x, y) = (key(a), key(b));
                if op == VectorAggOp::Sort {
                    x.total_cmp(&y)
                } else {
                    y.total_cmp(&x)
                }
            });
            return series;
        }
        VectorAggOp::Topk | VectorAggOp::Bottomk => {
            return top_k(op == VectorAggOp::Topk, param, grouping, series, n)
        }
        _ => {}
    }
    let mut groups: Vec<(Labels, Vec<usize>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (i, s) in series.iter().enumerate() {
        let key = grouping_key(&s.labels, grouping);
        let g = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    let mut out = Vec::with_capacity(groups.len());
    for (labels, members) in groups {
        let mut values = vec![None; n];
        let mut any = false;
        for (step, slot) in values.iter_mut().enumerate() {
            let present = members.iter().filter_map(|&m| series[m].values[step]);
            let v = match op {
                VectorAggOp::Sum => fold_present(present, |a, b| a + b),
                VectorAggOp::Min => {
                    fold_present(present, |a, b| if a.is_nan() || b < a { b } else { a })
                }
                VectorAggOp::Max => {
                    fold_present(present, |a, b| if a.is_nan() || b > a { b } else { a })
                }
                VectorAggOp::Count => {
                    let c = present.count();
                    (c > 0).then_some(c as f64)
                }
                VectorAggOp::Avg => {
                    let mut count = 0.0;
                    let mut mean = 0.0;
                    for v in present {
                        count += 1.0;
                        mean += (v - mean) / count;
                    }
                    (count > 0.0).then_some(mean)
                }
                VectorAggOp::Stdvar | VectorAggOp::Stddev => {
                    let vals: Vec<f64> = present.collect();
                    if vals.is_empty() {
                        None
                    } else {
                        let var = variance(vals.into_iter());
                        Some(if op == VectorAggOp::Stddev {
                            var.sqrt()
                        } else {
                            var
                        })
                    }
                }
                _ => None,
            };
            *slot = v;
            any |= v.is_some();
        }
        if any {
            out.push(StepSeries { labels, values });
        }
    }
    out
}

fn fold_present(mut values: impl Iterator<Item = f64>, f: impl Fn(f64, f64) -> f64) -> Option<f64> {
    let first = values.next()?;
    Some(values.fold(first, f))
}

fn top_k(
    top: bool,
    param: Option<f64>,
    grouping: Option<&Grouping>,
    series: Vec<StepSeries>,
    n: usize,
) -> Vec<StepSeries> {
    let k = param.unwrap_or(0.0).max(0.0) as usize;
    let mut out: Vec<StepSeries> = series
        .iter()
        .map(|s| StepSeries {
            labels: s.labels.clone(),
            values: vec![None; n],
        })
        .collect();
    let mut groups: HashMap<Labels, Vec<usize>> = HashMap::new();
    for (i, s) in series.iter().enumerate() {
        groups
            .entry(grouping_key(&s.labels, grouping))
            .or_default()
            .push(i);
    }
    for members in groups.values() {
        for step in 0..n {
            let mut present: Vec<(usize, f64)> = members
                .iter()
                .filter_map(|&m| series[m].values[step].map(|v| (m, v)))
                .collect();
            present.sort_by(|a, b| {
                if a.1.is_nan() {
                    std::cmp::Ordering::Greater
                } else if b.1.is_nan() {
                    std::cmp::Ordering::Less
                } else if top {
                    b.1.total_cmp(&a.1)
                } else {
                    a.1.total_cmp(&b.1)
                }
            });
            for (m, v) in present.into_iter().take(k) {
                out[m].values[step] = Some(v);
            }
        }
    }
    out.retain(|s| s.values.iter().any(Option::is_some));
    out
}

fn binary(
    op: BinaryOp,
    return_bool: bool,
    matching: Option<&VectorMatching>,
    lhs: MetricValue,
    rhs: MetricValue,
    n: usize,
) -> Result<MetricValue, EvalError> {
    match (lhs, rhs) {
        (MetricValue::Scalar(a), MetricValue::Scalar(b)) => Ok(MetricValue::Scalar(
            a.iter()
                .zip(&b)
                .map(|(x, y)| {
                    let v = arith(op, *x, *y);
                    if op.is_comparison() {
                        // Scalar comparisons need `bool`; without it Loki still answers 0/1.
                        if v.is_some() {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        v.unwrap_or(f64::NAN)
                    }
                })
                .collect(),
        )),
        (MetricValue::Vector(v), MetricValue::Scalar(s)) => Ok(MetricValue::Vector(vector_scalar(
            op,
            return_bool,
            v,
            &s,
            false,
        ))),
        (MetricValue::Scalar(s), MetricValue::Vector(v)) => Ok(MetricValue::Vector(vector_scalar(
            op,
            return_bool,
            v,
            &s,
            true,
        ))),
        (MetricValue::Vector(l), MetricValue::Vector(r)) => Ok(MetricValue::Vector(vector_vector(
            op,
            return_bool,
            matching,
            l,
            r,
            n,
        )?)),
    }
}

/// The arithmetic result, or for comparisons `Some(lhs)` when true and `None` when false.
fn arith(op: BinaryOp, a: f64, b: f64) -> Option<f64> {
    Some(match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Mod => a % b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Eq => return (a == b).then_some(a),
        BinaryOp::Ne => return (a != b).then_some(a),
        BinaryOp::Gt => return (a > b).then_some(a),
        BinaryOp::Ge => return (a >= b).then_some(a),
        BinaryOp::Lt => return (a < b).then_some(a),
        BinaryOp::Le => return (a <= b).then_some(a),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => return None,
    })
}

fn vector_scalar(
    op: BinaryOp,
    return_bool: bool,
    series: Vec<StepSeries>,
    scalar: &[f64],
    scalar_left: bool,
) -> Vec<StepSeries> {
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        let mut values = s.values;
        for (step, slot) in values.iter_mut().enumerate() {
            let Some(v) = *slot else { continue };
            let (a, b) = if scalar_left {
                (scalar[step], v)
            } else {
                (v, scalar[step])
            };
            let r = arith(op, a, b);
            *slot = if op.is_comparison() {
                if return_bool {
                    Some(if r.is_some() { 1.0 } else { 0.0 })
                } else {
                    r.map(|_| v)
                }
            } else {
                r
            };
        }
        if values.iter().any(Option::is_some) {
            out.push(StepSeries {
                labels: s.labels,
                values,
            });
        }
    }
    out
}

fn match_key(labels: &Labels, matching: Option<&VectorMatching>) -> Labels {
    match matching {
        None => labels.clone(),
        Some(m) => Labels::from_sorted(
            labels
                .iter()
                .filter(|l| m.labels.contains(&l.name) == m.on)
                .cloned()
                .collect(),
        ),
    }
}

fn vector_vector(
    op: BinaryOp,
    return_bool: bool,
    matching: Option<&VectorMatching>,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    n: usize,
) -> Result<Vec<StepSeries>, EvalError> {
    if op.is_set() {
        return Ok(set_op(op, matching, lhs, rhs, n));
    }
    let group = matching.and_then(|m| m.group.as_ref());
    // The "one" side is indexed by match key; the "many" side looks it up.
    let (many, one, many_is_left) = match group {
        Some(GroupSide::Right(_)) => (rhs, lhs, false),
        _ => (lhs, rhs, true),
    };
    let mut one_index: HashMap<Labels, Vec<usize>> = HashMap::new();
    for (i, s) in one.iter().enumerate() {
        one_index
            .entry(match_key(&s.labels, matching))
            .or_default()
            .push(i);
    }
    let include: &[String] = match group {
        Some(GroupSide::Left(l)) | Some(GroupSide::Right(l)) => l,
        None => &[],
    };
    let mut out: Vec<StepSeries> = Vec::new();
    let mut out_index: HashMap<Labels, usize> = HashMap::new();
    for m in &many {
        let key = match_key(&m.labels, matching);
        let Some(partners) = one_index.get(&key) else {
            continue;
        };
        for &p in partners {
            let o = &one[p];
            let labels = result_labels(&m.labels, &o.labels, matching, include, op, return_bool);
            let mut values = vec![None; n];
            for (step, slot) in values.iter_mut().enumerate() {
                let (Some(mv), Some(ov)) = (m.values[step], o.values[step]) else {
                    continue;
                };
                let (a, b) = if many_is_left { (mv, ov) } else { (ov, mv) };
                let r = arith(op, a, b);
                *slot = if op.is_comparison() {
                    if return_bool {
                        Some(if r.is_some() { 1.0 } else { 0.0 })
                    } else {
                        r.map(|_| a)
                    }
                } else {
                    r
                };
            }
            if !values.iter().any(Option::is_some) {
                continue;
            }
            match out_index.get(&labels) {
                Some(&i) => {
                    for (slot, v) in out[i].values.iter_mut().zip(values) {
                        if v.is_some() {
                            if slot.is_some() {
                                return Err(EvalError::Invalid(
                                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".to_string(),
                                ));
                            }
                            *slot = v;
                        }
                    }
                }
                None => {
                    out_index.insert(labels.clone(), out.len());
                    out.push(StepSeries { labels, values });
                }
            }
        }
    }
    Ok(out)
}

fn result_labels(
    many: &Labels,
    one: &Labels,
    matching: Option<&VectorMatching>,
    include: &[String],
    op: BinaryOp,
    return_bool: bool,
) -> Labels {
    let grouped = matching.is_some_and(|m| m.group.is_some());
    if op.is_comparison() && !return_bool && !grouped {
        return many.clone();
    }
    let mut pairs: Vec<Label> = if grouped {
        many.iter().cloned().collect()
    } else {
        match_key(many, matching).iter().cloned().collect()
    };
    if !grouped {
        if let Some(m) = matching {
            if !m.on {
                // ignoring(...): everything but the ignored labels.
                pairs = many
                    .iter()
                    .filter(|l| !m.labels.contains(&l.name))
                    .cloned()
                    .collect();
            }
        }
    }
    for name in include {
        pairs.retain(|l| l.name != *name);
        if let Some(v) = one.get(name) {
            pairs.push(Label::new(name.as_str(), v));
        }
    }
    Labels::from_unsorted(pairs)
}

fn set_op(
    op: BinaryOp,
    matching: Option<&VectorMatching>,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    n: usize,
) -> Vec<StepSeries> {
    let key_of = |s: &StepSeries| match matching {
        Some(_) => match_key(&s.labels, matching),
        None => s.labels.clone(),
    };
    let mut rhs_present: HashMap<Labels, Vec<bool>> = HashMap::new();
    for s in &rhs {
        let e = rhs_present
            .entry(key_of(s))
            .or_insert_with(|| vec![false; n]);
        for (slot, v) in e.iter_mut().zip(&s.values) {
            *slot |= v.is_some();
        }
    }
    match op {
        BinaryOp::And | BinaryOp::Unless => {
            let keep_when_present = op == BinaryOp::And;
            lhs.into_iter()
                .filter_map(|mut s| {
                    let present = rhs_present.get(&key_of(&s));
                    for (step, slot) in s.values.iter_mut().enumerate() {
                        let p = present.is_some_and(|p| p[step]);
                        if p != keep_when_present {
                            *slot = None;
                        }
                    }
                    s.values.iter().any(Option::is_some).then_some(s)
                })
                .collect()
        }
        _ => {
            let mut lhs_present: HashMap<Labels, Vec<bool>> = HashMap::new();
            for s in &lhs {
                let e = lhs_present
                    .entry(key_of(s))
                    .or_insert_with(|| vec![false; n]);
                for (slot, v) in e.iter_mut().zip(&s.values) {
                    *slot |= v.is_some();
                }
            }
            let mut out = lhs;
            for mut s in rhs {
                let present = lhs_present.get(&key_of(&s));
                for (step, slot) in s.values.iter_mut().enumerate() {
                    if present.is_some_and(|p| p[step]) {
                        *slot = None;
                    }
                }
                if s.values.iter().any(Option::is_some) {
                    out.push(s);
                }
            }
            // A right-hand series with a left-hand twin fills the twin's empty steps.
            merge_same_labels(out)
        }
    }
}
