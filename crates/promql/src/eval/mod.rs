//! The evaluator. Every node is evaluated once over all steps of the query (as Prometheus'
//! range evaluation does): instant-vector nodes yield series whose points sit at step times,
//! so label work (matching signatures, grouping keys, name dropping) happens once per series,
//! not once per step.

mod aggregate;
mod binary;
mod call;
pub(crate) mod labels;

use std::cell::{Cell, RefCell};
use std::time::Instant;

use vigil_model::{is_stale_marker, Labels};
use vigil_promql_parser::ast::{
    AtModifier, Expr, MatrixSelector, Pos, SubqueryExpr, UnaryOp, VectorSelector,
};

use crate::engine::Annotations;
use crate::{EngineOptions, Point, QueryError, Storage, StorageSeries};

/// The evaluation steps of one (sub)query: `start`, `start + interval`, ..., `end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steps {
    pub start: i64,
    pub end: i64,
    pub interval: i64,
}

impl Steps {
    pub fn len(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            ((self.end - self.start) / self.interval) as usize + 1
        }
    }

    pub fn time(&self, i: usize) -> i64 {
        self.start + i as i64 * self.interval
    }

    /// The step at or before `t` (`t` at or after `start`).
    pub fn index(&self, t: i64) -> usize {
        let offset = t - self.start;
        // A float division, exact for the step times (multiples of the interval) and corrected
        // by one step otherwise: a 64-bit integer division costs several times more, and this
        // runs once per output point.
        let mut k = (offset as f64 / self.interval as f64) as i64;
        if k.wrapping_mul(self.interval) > offset {
            k -= 1;
        } else if (k + 1).wrapping_mul(self.interval) <= offset {
            k += 1;
        }
        k as usize
    }
}

/// An instant-vector series over the steps, or a range-vector series (raw points).
#[derive(Debug, Clone)]
pub(crate) struct StepSeries {
    pub labels: Labels,
    /// `__name__` is removed when the result is returned (Prometheus 3's delayed name removal),
    /// so functions such as label_replace still see it.
    pub drop_name: bool,
    pub points: Vec<Point>,
}

/// A node's value over all steps.
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    String(String),
    Vector(Vec<StepSeries>),
    /// Raw samples of a range selector or subquery (instant queries only).
    Matrix(Vec<StepSeries>),
}

pub(crate) struct Evaluator<'a> {
    pub storage: &'a dyn Storage,
    pub opts: &'a EngineOptions,
    /// The outer query's start and end, for `@ start()` and `@ end()`.
    pub query_start: i64,
    pub query_end: i64,
    /// The outer query's step (0 for instant queries), for `step()`.
    pub query_step: i64,
    pub deadline: Instant,
    pub samples: Cell<usize>,
    pub annotations: RefCell<Annotations>,
}

pub(crate) type EvalResult<T> = Result<T, QueryError>;

impl<'a> Evaluator<'a> {
    pub fn check_deadline(&self) -> EvalResult<()> {
        past_deadline(self.deadline)
    }

    /// Accounts `n` more samples held in memory.
    pub fn add_samples(&self, n: usize) -> EvalResult<()> {
        let total = self.samples.get() + n;
        if total > self.opts.max_samples {
            return Err(QueryError::TooManySamples("query execution"));
        }
        self.samples.set(total);
        Ok(())
    }

    pub fn release_samples(&self, n: usize) {
        self.samples.set(self.samples.get().saturating_sub(n));
    }

    /// A warning about the node at `pos`, written as Prometheus does: `... (1:25)`.
    pub fn warn(&self, msg: String, pos: Option<Pos>) {
        let msg = with_pos(msg, pos);
        let mut a = self.annotations.borrow_mut();
        if !a.warnings.contains(&msg) {
            a.warnings.push(msg);
        }
    }

    /// An info annotation about the node at `pos`.
    pub fn info(&self, msg: String, pos: Option<Pos>) {
        let msg = with_pos(msg, pos);
        let mut a = self.annotations.borrow_mut();
        if !a.infos.contains(&msg) {
            a.infos.push(msg);
        }
    }

    /// Prometheus' warning for a quantile outside [0, 1] (NaN included), once per query.
    pub fn warn_quantile_range(&self, q: &[f64], pos: Option<Pos>) {
        if let Some(q) = q.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            self.warn(
                format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {}",
                    crate::format::go_float(*q)
                ),
                pos,
            );
        }
    }

    fn at_time(&self, at: AtModifier) -> i64 {
        match at {
            AtModifier::Timestamp(t) => t,
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
        }
    }

    /// The reference time (step time, or the `@` time, minus the offset) of each step.
    fn ref_times(&self, steps: Steps, at: Option<AtModifier>, offset_ms: i64) -> Vec<i64> {
        match at {
            Some(at) => vec![self.at_time(at) - offset_ms; steps.len()],
            None => (0..steps.len())
                .map(|i| steps.time(i) - offset_ms)
                .collect(),
        }
    }

    pub fn eval(&self, expr: &Expr, steps: Steps) -> EvalResult<Val> {
        let value = self.eval_node(expr, steps)?;
        if self.opts.delayed_name_removal {
            return Ok(value);
        }
        // Without delayed removal the name goes as soon as an operation drops it, and label
        // sets that then collide at a step are an error, as in Prometheus by default.
        Ok(match value {
            Val::Vector(series) => Val::Vector(finish_names(series)?),
            other => other,
        })
    }

    pub(crate) fn eval_node(&self, expr: &Expr, steps: Steps) -> EvalResult<Val> {
        self.check_deadline()?;
        match expr {
            Expr::NumberLiteral(v) => Ok(Val::Scalar(vec![*v; steps.len()])),
            Expr::StringLiteral(s) => Ok(Val::String(s.clone())),
            Expr::Paren(e) => self.eval(e, steps),
            Expr::Unary(u) => {
                let v = self.eval(&u.expr, steps)?;
                if u.op == UnaryOp::Pos {
                    return Ok(v);
                }
                Ok(match v {
                    Val::Scalar(vals) => Val::Scalar(vals.into_iter().map(|v| -v).collect()),
                    Val::Vector(mut series) => {
                        for s in &mut series {
                            s.drop_name = true;
                            for p in &mut s.points {
                                p.v = -p.v;
                            }
                        }
                        Val::Vector(series)
                    }
                    other => other,
                })
            }
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.select_instant(vs, steps, false)?)),
            Expr::MatrixSelector(ms) => {
                let series = self.select_range(ms, steps)?;
                Ok(Val::Matrix(self.windows_at_single_step(
                    series,
                    ms.range_ms,
                    &ms.selector.at,
                    ms.selector.offset_ms,
                    steps,
                )))
            }
            Expr::Subquery(sq) => {
                let series = self.eval_subquery(sq, steps)?;
                Ok(Val::Matrix(self.windows_at_single_step(
                    series,
                    sq.range_ms,
                    &sq.at,
                    sq.offset_ms,
                    steps,
                )))
            }
            Expr::Binary(b) => self.eval_binary(b, steps),
            Expr::Aggregate(a) => self.eval_aggregate(a, steps),
            Expr::Call(c) => self.eval_call(c, steps),
        }
    }

    /// Evaluates an expression that must yield a scalar (parameters, scalar operands).
    pub fn eval_scalar(&self, expr: &Expr, steps: Steps) -> EvalResult<Vec<f64>> {
        match self.eval(expr, steps)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(QueryError::Execution(format!(
                "expected scalar, got {}",
                expr.value_type().doc_name()
            ))),
        }
    }

    pub fn eval_vector(&self, expr: &Expr, steps: Steps) -> EvalResult<Vec<StepSeries>> {
        match self.eval(expr, steps)? {
            Val::Vector(v) => Ok(v),
            _ => Err(not_a_vector(expr)),
        }
    }

    pub fn eval_string(&self, expr: &Expr, steps: Steps) -> EvalResult<String> {
        match self.eval(expr, steps)? {
            Val::String(s) => Ok(s),
            _ => Err(QueryError::Execution(format!(
                "expected string, got {}",
                expr.value_type().doc_name()
            ))),
        }
    }

    fn fetch(&self, vs: &VectorSelector, mint: i64, maxt: i64) -> EvalResult<Vec<StorageSeries>> {
        let series = self
            .storage
            .select(&vs.matchers, mint, maxt)
            .map_err(QueryError::Execution)?;
        self.add_samples(series.iter().map(|s| s.points.len()).sum())?;
        Ok(series)
    }

    /// An instant selector at every step: the latest sample in `(ref - lookback, ref]`, unless
    /// it is a stale marker. With `timestamps`, the value is the sample's own time in seconds
    /// (what `timestamp()` reports).
    pub fn select_instant(
        &self,
        vs: &VectorSelector,
        steps: Steps,
        timestamps: bool,
    ) -> EvalResult<Vec<StepSeries>> {
        if let Some(series) = self.visit_instant(vs, steps, timestamps)? {
            return Ok(series);
        }
        let Some((fetched, refs)) = self.fetch_instant(vs, steps)? else {
            return Ok(Vec::new());
        };
        let fetched_len: usize = fetched.iter().map(|s| s.points.len()).sum();
        let lookback = self.opts.lookback_delta_ms;
        let mut out = Vec::with_capacity(fetched.len());
        let mut total = 0;
        for s in fetched {
            let mut points = Vec::with_capacity(refs.len());
            instant_points(&s.points, &refs, lookback, steps, timestamps, &mut points);
            if !points.is_empty() {
                if points.len() < points.capacity() / 2 {
                    points.shrink_to_fit();
                }
                total += points.len();
                out.push(StepSeries {
                    labels: s.labels,
                    drop_name: false,
                    points,
                });
            }
        }
        self.release_samples(fetched_len);
        self.add_samples(total)?;
        Ok(out)
    }

    /// [`select_instant`](Self::select_instant) as the storage decodes the series
    /// ([`Storage::visit`](crate::Storage::visit)): each share takes its series' step points
    /// on its own thread, without holding the raw samples. `None` when the visit was
    /// incomplete (the caller then selects).
    fn visit_instant(
        &self,
        vs: &VectorSelector,
        steps: Steps,
        timestamps: bool,
    ) -> EvalResult<Option<Vec<StepSeries>>> {
        #[derive(Default)]
        struct Share {
            series: Vec<StepSeries>,
            raw: usize,
            visited: usize,
            timed_out: bool,
        }
        let refs = self.ref_times(steps, vs.at, vs.offset_ms);
        let (Some(&min_ref), Some(&max_ref)) = (refs.iter().min(), refs.iter().max()) else {
            return Ok(Some(Vec::new()));
        };
        let (lookback, deadline, refs) = (self.opts.lookback_delta_ms, self.deadline, &refs);
        let shares = std::thread::available_parallelism().map_or(1, |n| n.get());
        let states: Vec<std::sync::Mutex<Share>> = (0..shares)
            .map(|_| std::sync::Mutex::new(Share::default()))
            .collect();
        let visit = |share: usize, labels: &Labels, points: &[Point]| {
            let Some(Ok(mut state)) = states.get(share).map(|s| s.lock()) else {
                return;
            };
            if state.timed_out {
                return;
            }
            state.visited += 1;
            if state.visited % 1024 == 0 && past_deadline(deadline).is_err() {
                state.timed_out = true;
                return;
            }
            state.raw += points.len();
            let mut out = Vec::with_capacity(refs.len());
            instant_points(points, refs, lookback, steps, timestamps, &mut out);
            if !out.is_empty() {
                if out.len() < out.capacity() / 2 {
                    out.shrink_to_fit();
                }
                state.series.push(StepSeries {
                    labels: labels.clone(),
                    drop_name: false,
                    points: out,
                });
            }
        };
        let complete = self
            .storage
            .visit(
                &vs.matchers,
                min_ref - lookback + 1,
                max_ref,
                shares,
                &visit,
            )
            .map_err(QueryError::Execution)?;
        let states: Vec<Share> = states
            .into_iter()
            .map(|s| s.into_inner().unwrap_or_default())
            .collect();
        if states.iter().any(|s| s.timed_out) {
            past_deadline(deadline)?;
        }
        if !complete {
            return Ok(None);
        }
        let raw: usize = states.iter().map(|s| s.raw).sum();
        self.add_samples(raw)?;
        self.release_samples(raw);
        let mut out = Vec::with_capacity(states.iter().map(|s| s.series.len()).sum());
        for share in states {
            out.extend(share.series);
        }
        self.add_samples(out.iter().map(|s| s.points.len()).sum())?;
        Ok(Some(out))
    }

    /// The raw series an instant selector needs for all steps, and each step's reference time.
    pub fn fetch_instant(
        &self,
        vs: &VectorSelector,
        steps: Steps,
    ) -> EvalResult<Option<(Vec<StorageSeries>, Vec<i64>)>> {
        let refs = self.ref_times(steps, vs.at, vs.offset_ms);
        let (Some(&min_ref), Some(&max_ref)) = (refs.iter().min(), refs.iter().max()) else {
            return Ok(None);
        };
        let lookback = self.opts.lookback_delta_ms;
        let fetched = self.fetch(vs, min_ref - lookback + 1, max_ref)?;
        Ok(Some((fetched, refs)))
    }

    /// Raw samples of a range selector over the span all steps' windows cover (stale markers
    /// dropped).
    pub fn select_range(&self, ms: &MatrixSelector, steps: Steps) -> EvalResult<Vec<StepSeries>> {
        let vs = &ms.selector;
        let refs = self.ref_times(steps, vs.at, vs.offset_ms);
        let (Some(&min_ref), Some(&max_ref)) = (refs.iter().min(), refs.iter().max()) else {
            return Ok(Vec::new());
        };
        let fetched = self.fetch(vs, min_ref - ms.range_ms + 1, max_ref)?;
        let series = fetched
            .into_iter()
            .map(|s| StepSeries {
                labels: s.labels,
                drop_name: false,
                points: s.points,
            })
            .collect();
        // Range vectors leave out stale markers: a pass over every sample, on all cores.
        on_all_cores(series, |mut part| {
            for s in &mut part {
                if s.points.iter().any(|p| is_stale_marker(p.v)) {
                    s.points.retain(|p| !is_stale_marker(p.v));
                }
            }
            Ok(part)
        })
    }

    /// Evaluates a subquery's inner expression at its own steps, aligned to multiples of its
    /// step, over the span the outer steps' windows cover.
    pub fn eval_subquery(&self, sq: &SubqueryExpr, steps: Steps) -> EvalResult<Vec<StepSeries>> {
        let interval = sq
            .step_ms
            .unwrap_or(self.opts.default_subquery_step_ms)
            .max(1);
        let refs = self.ref_times(steps, sq.at, sq.offset_ms);
        let (Some(&min_ref), Some(&max_ref)) = (refs.iter().min(), refs.iter().max()) else {
            return Ok(Vec::new());
        };
        let from = min_ref - sq.range_ms;
        let mut start = interval * (from / interval);
        if start <= from {
            start += interval;
        }
        let inner = Steps {
            start,
            end: max_ref,
            interval,
        };
        if inner.len() == 0 {
            return Ok(Vec::new());
        }
        match self.eval(&sq.expr, inner)? {
            Val::Vector(v) => Ok(v),
            Val::Scalar(vals) => Ok(vec![StepSeries {
                labels: Labels::default(),
                drop_name: false,
                points: vals
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Point {
                        t: inner.time(i),
                        v,
                    })
                    .collect(),
            }]),
            _ => Err(QueryError::Execution(
                "subquery is only allowed on instant vector".into(),
            )),
        }
    }

    /// The raw points of each series inside the window of the (single) step, for instant
    /// queries whose result is a range vector.
    fn windows_at_single_step(
        &self,
        series: Vec<StepSeries>,
        range_ms: i64,
        at: &Option<AtModifier>,
        offset_ms: i64,
        steps: Steps,
    ) -> Vec<StepSeries> {
        let r = self
            .ref_times(steps, *at, offset_ms)
            .first()
            .copied()
            .unwrap_or(steps.start);
        series
            .into_iter()
            .filter_map(|mut s| {
                s.points.retain(|p| p.t > r - range_ms && p.t <= r);
                (!s.points.is_empty()).then_some(s)
            })
            .collect()
    }
}

/// For each step, the index range of `points` inside `(ref - range, ref]`; calls `f(step,
/// lo..hi, window start, window end)`.
pub(crate) fn for_each_window(
    points: &[Point],
    refs: &[i64],
    range_ms: i64,
    mut f: impl FnMut(usize, std::ops::Range<usize>, i64, i64) -> EvalResult<()>,
) -> EvalResult<()> {
    let (mut lo, mut hi) = (0usize, 0usize);
    let mut last_ref = i64::MIN;
    for (i, &r) in refs.iter().enumerate() {
        if r < last_ref {
            lo = 0;
            hi = 0;
        }
        last_ref = r;
        let from = r - range_ms;
        while lo < points.len() && points[lo].t <= from {
            lo += 1;
        }
        if hi < lo {
            hi = lo;
        }
        while hi < points.len() && points[hi].t <= r {
            hi += 1;
        }
        f(i, lo..hi, from, r)?;
    }
    Ok(())
}

/// Runs `f` over the series split across the machine's cores (for large inputs), keeping the
/// order. `f` must be pure: it runs on scoped threads.
pub(crate) fn on_all_cores<F>(series: Vec<StepSeries>, f: F) -> EvalResult<Vec<StepSeries>>
where
    F: Fn(Vec<StepSeries>) -> EvalResult<Vec<StepSeries>> + Sync,
{
    map_on_all_cores(series, f)
}

/// Runs `f` over `items` split into one share per core (when there are at least 2,000 items;
/// else in one go on this thread), the first on this thread and the others on scoped threads,
/// and concatenates the results in order.
pub fn map_on_all_cores<T, U, E, F>(items: Vec<T>, f: F) -> Result<Vec<U>, E>
where
    T: Send,
    U: Send,
    E: Send,
    F: Fn(Vec<T>) -> Result<Vec<U>, E> + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || items.len() < 2_000 {
        return f(items);
    }
    let chunk = items.len().div_ceil(threads);
    let mut parts = Vec::with_capacity(threads);
    let mut rest = items;
    while rest.len() > chunk {
        let tail = rest.split_off(chunk);
        parts.push(rest);
        rest = tail;
    }
    parts.push(rest);
    // The first part on this thread, the others on threads of their own.
    let first = parts.remove(0);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || f(part)))
            .collect();
        let mut out = f(first)?;
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(out)
    })
}

/// The query's timeout error once `deadline` has passed (also usable on worker threads).
pub(crate) fn past_deadline(deadline: Instant) -> EvalResult<()> {
    if Instant::now() > deadline {
        return Err(QueryError::Timeout("query execution"));
    }
    Ok(())
}

/// The error for an expression that should have been an instant vector.
pub(crate) fn not_a_vector(expr: &Expr) -> QueryError {
    QueryError::Execution(format!(
        "expected instant vector, got {}",
        expr.value_type().doc_name()
    ))
}

fn with_pos(msg: String, pos: Option<Pos>) -> String {
    match pos {
        Some(pos) => format!("{msg} ({pos})"),
        None => msg,
    }
}

/// An instant selector's value of one series at each step (appended to `out`): the latest
/// sample in `(ref - lookback, ref]` unless it is a stale marker; its time in seconds with
/// `timestamps`.
pub(crate) fn instant_points(
    samples: &[Point],
    refs: &[i64],
    lookback: i64,
    steps: Steps,
    timestamps: bool,
    out: &mut Vec<Point>,
) {
    let mut cursor = 0usize;
    for (i, &r) in refs.iter().enumerate() {
        // Refs only decrease with `@` (constant): restart the cursor if needed.
        if cursor > 0 && samples[cursor - 1].t > r {
            cursor = 0;
        }
        while cursor < samples.len() && samples[cursor].t <= r {
            cursor += 1;
        }
        if cursor == 0 {
            continue;
        }
        let p = samples[cursor - 1];
        if p.t <= r - lookback || is_stale_marker(p.v) {
            continue;
        }
        let v = if timestamps { p.t as f64 / 1000.0 } else { p.v };
        out.push(Point {
            t: steps.time(i),
            v,
        });
    }
}

/// Removes `__name__` where delayed removal asked for it, then rejects label sets that now
/// collide at one step.
pub(crate) fn finish_names(mut series: Vec<StepSeries>) -> EvalResult<Vec<StepSeries>> {
    if !series.iter().any(|s| s.drop_name) {
        return Ok(series);
    }
    // All losing one and the same name (the usual `rate(metric[5m])`): label sets that were
    // distinct stay distinct, so there is nothing to merge or check.
    if all_lose_one_name(&series) {
        for s in &mut series {
            s.labels = labels::into_without_name(std::mem::take(&mut s.labels));
            s.drop_name = false;
        }
        return Ok(series);
    }
    let mut out = SeriesSet::with_capacity(series.len());
    for mut s in series {
        if s.drop_name {
            s.labels = labels::into_without_name(s.labels);
            s.drop_name = false;
        }
        out.add(s)?;
    }
    Ok(out.series)
}

/// Whether all series have the same `__name__` (or none).
pub(crate) fn all_share_one_name(series: &[StepSeries]) -> bool {
    let first_name = series.first().and_then(|s| s.labels.metric_name());
    series.iter().all(|s| s.labels.metric_name() == first_name)
}

/// Whether every series is to lose `__name__` and all have the same one: removing it then
/// cannot make two label sets equal.
pub(crate) fn all_lose_one_name(series: &[StepSeries]) -> bool {
    let first_name = series.first().and_then(|s| s.labels.metric_name());
    series
        .iter()
        .all(|s| s.drop_name && s.labels.metric_name() == first_name)
}

/// Series keyed by their label sets: a series whose labels are already present has its points
/// merged into the earlier one (an error if both have a point at one step).
pub(crate) struct SeriesSet {
    by_hash: rustc_hash::FxHashMap<u64, Vec<usize>>,
    pub series: Vec<StepSeries>,
}

impl SeriesSet {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            by_hash: rustc_hash::FxHashMap::with_capacity_and_hasher(n, Default::default()),
            series: Vec::with_capacity(n),
        }
    }

    pub fn add(&mut self, s: StepSeries) -> EvalResult<()> {
        let ids = self.by_hash.entry(s.labels.fx_hash()).or_default();
        match ids.iter().find(|&&i| self.series[i].labels == s.labels) {
            Some(&i) => merge_points(&mut self.series[i], s.points),
            None => {
                ids.push(self.series.len());
                self.series.push(s);
                Ok(())
            }
        }
    }
}

/// Merges the points of a second series with the same labels; both at one step is an error.
pub(crate) fn merge_points(into: &mut StepSeries, points: Vec<Point>) -> EvalResult<()> {
    let mut merged = Vec::with_capacity(into.points.len() + points.len());
    let (mut a, mut b) = (into.points.iter().peekable(), points.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.t == y.t => {
                return Err(QueryError::Execution(
                    "vector cannot contain metrics with the same labelset".into(),
                ))
            }
            (Some(x), Some(y)) => {
                if x.t < y.t {
                    merged.push(**x);
                    a.next();
                } else {
                    merged.push(**y);
                    b.next();
                }
            }
            (Some(x), None) => {
                merged.push(**x);
                a.next();
            }
            (None, Some(y)) => {
                merged.push(**y);
                b.next();
            }
            (None, None) => break,
        }
    }
    into.points = merged;
    Ok(())
}
