//! Aggregations: one group key per series, then per-step accumulation per group.

use rustc_hash::FxHashMap;
use vigil_model::{is_stale_marker, Labels, METRIC_NAME_LABEL};
use vigil_promql_parser::ast::{
    AggregateExpr, AggregateOp, BinaryOp, Call, Expr, MatrixSelector, VectorSelector,
};

use super::binary::{apply, by_step};
use super::call::{rate_kind, rate_windows, valid_label_name};
use super::labels::{drop_names_and_metric, keep_only, with_label, LabelSetIds};
use super::{
    all_lose_one_name, finish_names, instant_points, past_deadline, EvalResult, Evaluator,
    StepSeries, Steps, Val,
};
use crate::kernels::range::RangeFunction;
use crate::kernels::stats::{kahan_sum_inc, quantile};
use crate::{Point, QueryError};

/// Most group×step accumulators aggregated densely (about 48 MB).
const DENSE_CELLS_MAX: usize = 1 << 20;

/// What one share of a streamed `agg(rate(...))` holds ([`Evaluator::aggregate_rate_streamed`]).
#[derive(Default)]
struct StreamShare {
    groups: LabelSetIds,
    /// Group × step accumulators of this share's series.
    accs: Vec<Acc>,
    /// The metric name of the first series (`Some(None)`: it had none).
    name: Option<Option<String>>,
    series: usize,
    points: usize,
    /// A buffer of the share's, reused across series.
    fresh: Vec<Point>,
    stop: Option<StreamStop>,
}

/// What [`Evaluator::aggregate_streamed`] accumulated.
struct Streamed {
    groups: LabelSetIds,
    /// Group × step accumulators.
    accs: Vec<Acc>,
    /// The series' one metric name, when asked to check for one.
    name: Option<String>,
    /// Samples visited (accounted as held).
    samples: usize,
}

/// Why a share stopped taking series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamStop {
    /// Past the query's deadline.
    Timeout,
    /// The series need the materialising path.
    General,
}

/// Running state of one group at one step.
#[derive(Clone, Default)]
struct Acc {
    seen: bool,
    count: f64,
    value: f64,
    comp: f64,
    mean: f64,
    incremental_mean: bool,
}

impl Evaluator<'_> {
    pub(crate) fn eval_aggregate(&self, a: &AggregateExpr, steps: Steps) -> EvalResult<Val> {
        let inner = unparen(&a.expr);
        if let (Expr::VectorSelector(vs), true) = (inner, dense_op(a.op)) {
            return self.aggregate_selector(a, vs, steps);
        }
        let keeps_name = !a.without && a.grouping.iter().any(|g| g == METRIC_NAME_LABEL);
        let merges = merges_per_core(a.op);
        if let (Some((c, number)), true) = (rate_with_number(inner), !keeps_name && merges) {
            if let Some(value) = self.aggregate_rate(a, c, number, steps)? {
                return Ok(value);
            }
        }
        let groups_ignore_name = !keeps_name
            && (dense_op(a.op) || matches!(a.op, AggregateOp::Quantile | AggregateOp::CountValues));
        let series = if groups_ignore_name && !self.opts.delayed_name_removal {
            // The groups never see `__name__`: removing it first is only needed to detect
            // label sets that would collide, which cannot happen when all lose one name.
            match self.eval_node(&a.expr, steps)? {
                Val::Vector(series) if all_lose_one_name(&series) => series,
                Val::Vector(series) => finish_names(series)?,
                _ => return Err(super::not_a_vector(&a.expr)),
            }
        } else {
            self.eval_vector(&a.expr, steps)?
        };
        self.aggregate_series(a, series, steps)
    }

    /// `sum by (x) (rate(selector[r]))` and the like (also increase and delta, and avg, and a
    /// rate under arithmetic with a number, `avg(1 - rate(...))`): each series' rates go
    /// straight into per-core group accumulators, merged at the end, without materialising
    /// the rate series. `None` when the query does not have that shape.
    fn aggregate_rate(
        &self,
        a: &AggregateExpr,
        c: &Call,
        number: Option<NumberOperand>,
        steps: Steps,
    ) -> EvalResult<Option<Val>> {
        let Some(rf) = RangeFunction::from_name(c.func.name) else {
            return Ok(None);
        };
        let Some((is_counter, is_rate)) = rate_kind(rf) else {
            return Ok(None);
        };
        let Some(Expr::MatrixSelector(ms)) = c.args.first().map(unparen) else {
            return Ok(None);
        };
        if let Some(value) = self.aggregate_rate_streamed(a, c, rf, ms, number, steps)? {
            return Ok(Some(value));
        }
        if number.is_some() || !mergeable_op(a.op) {
            // Left to the general path when the storage cannot stream.
            return Ok(None);
        }
        let series = self.select_range(ms, steps)?;
        let refs = self.ref_times(steps, ms.selector.at, ms.selector.offset_ms);
        self.note_counter_names(rf, c, &series, 0);
        let mut groups = LabelSetIds::default();
        let group_of: Vec<usize> = series
            .iter()
            .map(|s| intern_group(&mut groups, a, &s.labels))
            .collect();
        let cells = groups.len().saturating_mul(steps.len());
        // Removing different names could make label sets collide (an error to report), and
        // many groups would need too many accumulators: the general path handles both.
        if cells > DENSE_CELLS_MAX || !super::all_share_one_name(&series) {
            let rated = self.apply_range_function(rf, series, &refs, ms.range_ms, &[], steps)?;
            let rated = if self.opts.delayed_name_removal {
                rated
            } else {
                finish_names(rated)?
            };
            return self.aggregate_series(a, rated, steps).map(Some);
        }
        let range_ms = ms.range_ms;
        let deadline = self.deadline;
        let refs = &refs;
        let group_of = &group_of;
        let accumulate_part = |part: &[StepSeries], first: usize| -> EvalResult<Vec<Acc>> {
            let mut accs = vec![Acc::default(); cells];
            for (n, s) in part.iter().enumerate() {
                if n % 1024 == 0 {
                    past_deadline(deadline)?;
                }
                let row = &mut accs[group_of[first + n] * steps.len()..][..steps.len()];
                rate_windows(&s.points, refs, range_ms, is_counter, is_rate, |i, v| {
                    accumulate(a.op, &mut row[i], v)
                })?;
            }
            Ok(accs)
        };
        let accs = self.accumulate_on_all_cores(a.op, &series, accumulate_part)?;
        let out = dense_output(a.op, groups.into_labels(), &[], &accs, steps);
        self.add_samples(out.iter().map(|s| s.points.len()).sum())?;
        Ok(Some(Val::Vector(out)))
    }

    /// [`aggregate_rate`](Self::aggregate_rate) as the storage hands over the series one at a
    /// time ([`Storage::visit`](crate::Storage::visit)): each share of them is rated and
    /// accumulated on its own thread as it is decoded, so the selection is never held whole.
    /// `None` (nothing reported yet) when the storage could not finish the visit, or when the
    /// series need the general path (too many groups, or more than one metric name).
    fn aggregate_rate_streamed(
        &self,
        a: &AggregateExpr,
        c: &Call,
        rf: RangeFunction,
        ms: &MatrixSelector,
        number: Option<NumberOperand>,
        steps: Steps,
    ) -> EvalResult<Option<Val>> {
        let Some((is_counter, is_rate)) = rate_kind(rf) else {
            return Ok(None);
        };
        let vs = &ms.selector;
        let refs = self.ref_times(steps, vs.at, vs.offset_ms);
        let (Some(&min_ref), Some(&max_ref)) = (refs.iter().min(), refs.iter().max()) else {
            return Ok(None);
        };
        let (range_ms, refs) = (ms.range_ms, &refs);
        let rate_into = |fresh: &mut Vec<Point>, points: &[Point], row: &mut [Acc]| {
            // Range vectors leave out stale markers.
            let points = if points.iter().any(|p| is_stale_marker(p.v)) {
                fresh.clear();
                fresh.extend(points.iter().filter(|p| !is_stale_marker(p.v)));
                &fresh[..]
            } else {
                points
            };
            // Windows never fail; an error here would be a bug, so it only stops the stream.
            rate_windows(points, refs, range_ms, is_counter, is_rate, |i, v| {
                accumulate(a.op, &mut row[i], number.map_or(v, |n| n.apply(v)))
            })
            .is_ok()
        };
        let streamed = self.aggregate_streamed(
            a,
            &vs.matchers,
            (min_ref - ms.range_ms + 1, max_ref),
            steps,
            true,
            rate_into,
        )?;
        let Some(streamed) = streamed else {
            return Ok(None);
        };
        if streamed.accs.iter().any(|acc| acc.incremental_mean) {
            // An avg whose sums overflowed: only a pass in series order gives its mean.
            return Ok(None);
        }
        if let Some(name) = &streamed.name {
            self.note_counter_name(rf, c, name, 0);
        }
        let out = dense_output(
            a.op,
            streamed.groups.into_labels(),
            &[],
            &streamed.accs,
            steps,
        );
        self.add_samples(out.iter().map(|s| s.points.len()).sum())?;
        Ok(Some(Val::Vector(out)))
    }

    /// Streams the series `matchers` select in `span` (inclusive) through group × step
    /// accumulators, one set per share of the series on a thread of its own, merged in series
    /// order at the end. `into_row(buffer, points, row)` adds one series' values to its group's
    /// row (false: stop, use the general path). With `one_name`, all series must share one
    /// metric name (it is returned). The samples visited are accounted as held. `None` (nothing reported yet) when the visit was
    /// incomplete or the general path is needed (too many groups, or several names).
    fn aggregate_streamed<F>(
        &self,
        a: &AggregateExpr,
        matchers: &[vigil_model::Matcher],
        span: (i64, i64),
        steps: Steps,
        one_name: bool,
        into_row: F,
    ) -> EvalResult<Option<Streamed>>
    where
        F: Fn(&mut Vec<Point>, &[Point], &mut [Acc]) -> bool + Sync,
    {
        let shares = std::thread::available_parallelism().map_or(1, |n| n.get());
        let states: Vec<std::sync::Mutex<StreamShare>> = (0..shares)
            .map(|_| std::sync::Mutex::new(StreamShare::default()))
            .collect();
        let (deadline, cells_per_group) = (self.deadline, steps.len());
        let visit = |share: usize, labels: &Labels, points: &[Point]| {
            let Some(state) = states.get(share) else {
                return;
            };
            let Ok(mut state) = state.lock() else {
                return;
            };
            let state = &mut *state;
            if state.stop.is_some() {
                return;
            }
            state.series += 1;
            if state.series % 1024 == 0 && past_deadline(deadline).is_err() {
                state.stop = Some(StreamStop::Timeout);
                return;
            }
            state.points += points.len();
            if one_name {
                let name = labels.metric_name();
                match &state.name {
                    None => state.name = Some(name.map(str::to_string)),
                    Some(first) if first.as_deref() != name => {
                        state.stop = Some(StreamStop::General);
                        return;
                    }
                    Some(_) => {}
                }
            }
            let group = intern_group(&mut state.groups, a, labels);
            if state.groups.len().saturating_mul(cells_per_group) > DENSE_CELLS_MAX {
                state.stop = Some(StreamStop::General);
                return;
            }
            let needed = state.groups.len() * cells_per_group;
            if state.accs.len() < needed {
                state.accs.resize(needed, Acc::default());
            }
            let row = &mut state.accs[group * cells_per_group..][..cells_per_group];
            if !into_row(&mut state.fresh, points, row) {
                state.stop = Some(StreamStop::General);
            }
        };
        let complete = self
            .storage
            .visit(matchers, span.0, span.1, shares, &visit)
            .map_err(QueryError::Execution)?;
        let states: Vec<StreamShare> = states
            .into_iter()
            .map(|state| state.into_inner().unwrap_or_default())
            .collect();
        if states.iter().any(|s| s.stop == Some(StreamStop::Timeout)) {
            past_deadline(deadline)?;
        }
        let names: Vec<&Option<String>> = states.iter().filter_map(|s| s.name.as_ref()).collect();
        if !complete
            || states.iter().any(|s| s.stop.is_some())
            || names.windows(2).any(|pair| pair[0] != pair[1])
        {
            return Ok(None);
        }
        let name = names.first().and_then(|n| (*n).clone());
        let samples = states.iter().map(|s| s.points).sum();
        self.add_samples(samples)?;
        // Shares in order, so groups are numbered in series order and sums add up in the order
        // of the materialising path.
        let mut groups = LabelSetIds::default();
        let mut accs: Vec<Acc> = Vec::new();
        for share in states {
            if groups.len() == 0 {
                // The first share's groups are numbered as they are: take its accumulators.
                for labels in share.groups.into_labels() {
                    groups.intern(labels);
                }
                accs = share.accs;
                accs.truncate(groups.len() * cells_per_group);
                continue;
            }
            for (local, labels) in share.groups.into_labels().into_iter().enumerate() {
                let (global, _) = groups.intern(labels);
                if accs.len() < (global + 1) * cells_per_group {
                    accs.resize((global + 1) * cells_per_group, Acc::default());
                }
                let from = &share.accs[local * cells_per_group..][..cells_per_group];
                let into = &mut accs[global * cells_per_group..][..cells_per_group];
                for (into, other) in into.iter_mut().zip(from) {
                    merge(a.op, into, other);
                }
            }
        }
        if groups.len().saturating_mul(cells_per_group) > DENSE_CELLS_MAX {
            return Ok(None);
        }
        Ok(Some(Streamed {
            groups,
            accs,
            name,
            samples,
        }))
    }

    /// `sum(selector)` and the like: each series' step values go straight into the group
    /// accumulators, without materialising the selector's result (for many groups it falls
    /// back to the general path).
    fn aggregate_selector(
        &self,
        a: &AggregateExpr,
        vs: &VectorSelector,
        steps: Steps,
    ) -> EvalResult<Val> {
        if mergeable_op(a.op) {
            let refs = self.ref_times(steps, vs.at, vs.offset_ms);
            let (Some(&min_ref), Some(&max_ref)) = (refs.iter().min(), refs.iter().max()) else {
                return Ok(Val::Vector(Vec::new()));
            };
            let (lookback, refs) = (self.opts.lookback_delta_ms, &refs);
            let into_row = |step_points: &mut Vec<Point>, points: &[Point], row: &mut [Acc]| {
                step_points.clear();
                instant_points(points, refs, lookback, steps, false, step_points);
                for p in step_points.iter() {
                    accumulate(a.op, &mut row[steps.index(p.t)], p.v);
                }
                true
            };
            let span = (min_ref - lookback + 1, max_ref);
            if let Some(streamed) =
                self.aggregate_streamed(a, &vs.matchers, span, steps, false, into_row)?
            {
                self.release_samples(streamed.samples);
                let labels = streamed.groups.into_labels();
                let out = dense_output(a.op, labels, &[], &streamed.accs, steps);
                self.add_samples(out.iter().map(|s| s.points.len()).sum())?;
                return Ok(Val::Vector(out));
            }
        }
        let Some((fetched, refs)) = self.fetch_instant(vs, steps)? else {
            return Ok(Val::Vector(Vec::new()));
        };
        let mut groups = LabelSetIds::default();
        let group_of: Vec<usize> = fetched
            .iter()
            .map(|s| intern_group(&mut groups, a, &s.labels))
            .collect();
        let cells = groups.len().saturating_mul(steps.len());
        let lookback = self.opts.lookback_delta_ms;
        if cells > DENSE_CELLS_MAX {
            let fetched_len: usize = fetched.iter().map(|s| s.points.len()).sum();
            let mut series = Vec::with_capacity(fetched.len());
            for s in fetched {
                let mut points = Vec::new();
                instant_points(&s.points, &refs, lookback, steps, false, &mut points);
                if !points.is_empty() {
                    series.push(StepSeries {
                        labels: s.labels,
                        drop_name: false,
                        points,
                    });
                }
            }
            self.release_samples(fetched_len);
            return self.aggregate_series(a, series, steps);
        }
        let mut accs = vec![Acc::default(); cells];
        let mut points = Vec::with_capacity(refs.len());
        for (n, s) in fetched.iter().enumerate() {
            if n % 4096 == 0 {
                self.check_deadline()?;
            }
            points.clear();
            instant_points(&s.points, &refs, lookback, steps, false, &mut points);
            let row = group_of[n] * steps.len();
            for p in &points {
                accumulate(a.op, &mut accs[row + steps.index(p.t)], p.v);
            }
        }
        self.release_samples(fetched.iter().map(|s| s.points.len()).sum());
        let out = dense_output(a.op, groups.into_labels(), &[], &accs, steps);
        self.add_samples(out.iter().map(|s| s.points.len()).sum())?;
        Ok(Val::Vector(out))
    }

    fn aggregate_series(
        &self,
        a: &AggregateExpr,
        series: Vec<StepSeries>,
        steps: Steps,
    ) -> EvalResult<Val> {
        let group_labels_of = |s: &StepSeries| -> Labels { group_key(a, &s.labels) };
        let mut groups = LabelSetIds::default();
        // With `by (__name__)` a group keeps the name, to be dropped at the end if any member
        // was to lose it (Prometheus 3's delayed name removal).
        let keeps_name = !a.without && a.grouping.iter().any(|g| g == METRIC_NAME_LABEL);
        let mut group_drops_name: Vec<bool> = Vec::new();
        let group_of: Vec<usize> = series
            .iter()
            .map(|s| {
                let (g, new) = groups.intern(group_labels_of(s));
                if new {
                    group_drops_name.push(false);
                }
                group_drops_name[g] |= keeps_name && s.drop_name;
                g
            })
            .collect();
        match a.op {
            AggregateOp::TopK | AggregateOp::BottomK | AggregateOp::LimitK => {
                let param = self.eval_param_scalar(a, steps)?;
                let per_step = by_step(&series, steps);
                self.select_k(a.op, series, &group_of, &per_step, &param, steps)
            }
            AggregateOp::LimitRatio => {
                let param = self.eval_param_scalar(a, steps)?;
                if param.iter().any(|r| r.is_nan()) {
                    return Err(QueryError::Execution("Ratio value is NaN".into()));
                }
                limit_ratio(series, &param, steps)
            }
            AggregateOp::CountValues => {
                let label = match &a.param {
                    Some(p) => self.eval_string(p, steps)?,
                    None => String::new(),
                };
                if !valid_label_name(&label) {
                    return Err(QueryError::Execution(format!(
                        "invalid label name {label:?}"
                    )));
                }
                let per_step = by_step(&series, steps);
                count_values(&label, groups, &group_of, &per_step, steps)
            }
            AggregateOp::Quantile => {
                let param = self.eval_param_scalar(a, steps)?;
                self.warn_quantile_range(&param, a.param_pos);
                let per_step = by_step(&series, steps);
                let n = groups.len();
                let labels = groups.into_labels();
                let mut out = empty_group_series(labels, &group_drops_name);
                let mut values: Vec<Vec<f64>> = vec![Vec::new(); n];
                for (step, at_step) in per_step.iter().enumerate() {
                    if at_step.is_empty() {
                        continue;
                    }
                    let q = param[step];
                    for &(i, v) in at_step {
                        values[group_of[i as usize]].push(v);
                    }
                    let t = steps.time(step);
                    for (g, vals) in values.iter_mut().enumerate() {
                        if !vals.is_empty() {
                            out[g].points.push(Point {
                                t,
                                v: quantile(q, vals),
                            });
                            vals.clear();
                        }
                    }
                }
                out.retain(|s| !s.points.is_empty());
                Ok(Val::Vector(out))
            }
            _ => {
                let n = groups.len();
                let labels = groups.into_labels();
                let mut out = empty_group_series(labels, &group_drops_name);
                let cells = n.saturating_mul(steps.len());
                if cells <= DENSE_CELLS_MAX {
                    // Few groups: one accumulator per group and step, filled series by series
                    // (the same order of additions as the per-step walk, without regrouping
                    // the points by step).
                    let accumulate_part =
                        |part: &[StepSeries], first: usize| -> EvalResult<Vec<Acc>> {
                            let mut accs = vec![Acc::default(); cells];
                            for (i, s) in part.iter().enumerate() {
                                let row = group_of[first + i] * steps.len();
                                for p in &s.points {
                                    accumulate(a.op, &mut accs[row + steps.index(p.t)], p.v);
                                }
                            }
                            Ok(accs)
                        };
                    let accs = self.accumulate_on_all_cores(a.op, &series, accumulate_part)?;
                    let labels = out.into_iter().map(|s| s.labels).collect();
                    return Ok(Val::Vector(dense_output(
                        a.op,
                        labels,
                        &group_drops_name,
                        &accs,
                        steps,
                    )));
                }
                let per_step = by_step(&series, steps);
                let mut accs = vec![Acc::default(); n];
                let mut touched: Vec<usize> = Vec::new();
                for (step, at_step) in per_step.iter().enumerate() {
                    for &(i, v) in at_step {
                        let g = group_of[i as usize];
                        let acc = &mut accs[g];
                        if !acc.seen {
                            touched.push(g);
                        }
                        accumulate(a.op, acc, v);
                    }
                    let t = steps.time(step);
                    for &g in &touched {
                        let acc = &mut accs[g];
                        out[g].points.push(Point {
                            t,
                            v: finish(a.op, acc),
                        });
                        *acc = Acc::default();
                    }
                    touched.clear();
                }
                out.retain(|s| !s.points.is_empty());
                Ok(Val::Vector(out))
            }
        }
    }

    /// `accumulate_part(part, index of its first series)` over shares of `series` on all cores,
    /// merged in order, for the ops whose states merge ([`mergeable_op`], and `avg` while its
    /// sums have not overflowed into an incremental mean); in one go otherwise.
    fn accumulate_on_all_cores(
        &self,
        op: AggregateOp,
        series: &[StepSeries],
        accumulate_part: impl Fn(&[StepSeries], usize) -> EvalResult<Vec<Acc>> + Sync,
    ) -> EvalResult<Vec<Acc>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads < 2 || !merges_per_core(op) || series.len() < crate::MIN_SERIES_FOR_SHARES {
            return accumulate_part(series, 0);
        }
        let chunk = series.len().div_ceil(threads);
        let parts = crate::map_runs(series, threads, |i, part| accumulate_part(part, i * chunk))
            .into_iter()
            .collect::<EvalResult<Vec<Vec<Acc>>>>()?;
        if parts.iter().flatten().any(|acc| acc.incremental_mean) {
            return accumulate_part(series, 0);
        }
        let mut parts = parts.into_iter();
        let mut merged = parts.next().unwrap_or_default();
        for part in parts {
            for (into, other) in merged.iter_mut().zip(&part) {
                merge(op, into, other);
            }
        }
        if merged.iter().any(|acc| acc.incremental_mean) {
            return accumulate_part(series, 0);
        }
        Ok(merged)
    }

    fn eval_param_scalar(&self, a: &AggregateExpr, steps: Steps) -> EvalResult<Vec<f64>> {
        match &a.param {
            Some(p) => self.eval_scalar(p, steps),
            None => Err(QueryError::Execution(format!(
                "parameter missing for {}",
                a.op.as_str()
            ))),
        }
    }

    /// topk, bottomk and limitk: per step and group, the chosen input series keep their point.
    fn select_k(
        &self,
        op: AggregateOp,
        series: Vec<StepSeries>,
        group_of: &[usize],
        per_step: &[Vec<(u32, f64)>],
        param: &[f64],
        steps: Steps,
    ) -> EvalResult<Val> {
        let mut out: Vec<StepSeries> = series
            .into_iter()
            .map(|s| StepSeries {
                points: Vec::new(),
                ..s
            })
            .collect();
        // Members of each group at the current step, and the groups in first-seen order.
        let group_count = group_of.iter().max().map_or(0, |g| g + 1);
        let mut by_group: Vec<Vec<(u32, f64)>> = vec![Vec::new(); group_count];
        let mut group_order: Vec<usize> = Vec::new();
        // First-seen order of groups, and within a group the sorted order, for instant results.
        let mut order: Vec<u32> = Vec::new();
        if param.iter().any(|k| k.is_nan()) {
            return Err(QueryError::Execution("Parameter value is NaN".into()));
        }
        for (step, at_step) in per_step.iter().enumerate() {
            if at_step.is_empty() {
                continue;
            }
            let k = param[step];
            if k > i64::MAX as f64 || k < i64::MIN as f64 {
                return Err(QueryError::Execution(format!(
                    "Scalar value {} overflows int64",
                    crate::format::go_float(k)
                )));
            }
            let k = k as i64;
            if k < 1 {
                continue;
            }
            group_order.clear();
            for &(i, v) in at_step {
                let g = group_of[i as usize];
                if by_group[g].is_empty() {
                    group_order.push(g);
                }
                by_group[g].push((i, v));
            }
            let t = steps.time(step);
            order.clear();
            for &g in &group_order {
                let members = &mut by_group[g];
                let take = k.min(members.len() as i64) as usize;
                // Members arrive in series order, so ties broken by series index give what a
                // stable sort would.
                match op {
                    AggregateOp::TopK => select_first(members, take, |a, b| {
                        desc_nan_last(a.1, b.1).then(a.0.cmp(&b.0))
                    }),
                    AggregateOp::BottomK => select_first(members, take, |a, b| {
                        asc_nan_last(a.1, b.1).then(a.0.cmp(&b.0))
                    }),
                    _ => {}
                }
                for &(i, v) in &members[..take] {
                    out[i as usize].points.push(Point { t, v });
                    order.push(i);
                }
                members.clear();
            }
        }
        if steps.len() == 1 {
            // Instant query: the order of the selection is the result's order.
            let mut taken: Vec<Option<StepSeries>> = out.into_iter().map(Some).collect();
            return Ok(Val::Vector(
                order
                    .iter()
                    .filter_map(|&i| taken[i as usize].take())
                    .collect(),
            ));
        }
        out.retain(|s| !s.points.is_empty());
        Ok(Val::Vector(out))
    }
}

/// One output series per group, without points yet.
fn empty_group_series(labels: Vec<Labels>, drops_name: &[bool]) -> Vec<StepSeries> {
    labels
        .into_iter()
        .zip(drops_name)
        .map(|(labels, &drop_name)| StepSeries {
            labels,
            drop_name,
            points: Vec::new(),
        })
        .collect()
}

/// Aggregations whose partial states (one per core) combine exactly enough.
fn mergeable_op(op: AggregateOp) -> bool {
    matches!(
        op,
        AggregateOp::Sum
            | AggregateOp::Count
            | AggregateOp::Min
            | AggregateOp::Max
            | AggregateOp::Group
    )
}

/// Whether per-core states of `op` merge: [`mergeable_op`], and avg while its sums have not
/// overflowed into an incremental mean (which its callers check).
fn merges_per_core(op: AggregateOp) -> bool {
    mergeable_op(op) || op == AggregateOp::Avg
}

/// `e` without the parentheses around it.
fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(inner) = e {
        e = inner;
    }
    e
}

/// An arithmetic operation of a rate with a number: `1 - rate(...)` is `Sub` with the number
/// on the left.
#[derive(Debug, Clone, Copy)]
struct NumberOperand {
    op: BinaryOp,
    number: f64,
    number_on_left: bool,
}

impl NumberOperand {
    fn apply(self, v: f64) -> f64 {
        let (l, r) = if self.number_on_left {
            (self.number, v)
        } else {
            (v, self.number)
        };
        apply(self.op, l, r).0
    }
}

/// `rate(...)` (or another call), alone or under arithmetic with a number literal
/// (`1 - rate(...)`, `rate(...) * 8`), parentheses aside. Comparisons filter series rather than
/// change values, so they are not taken.
fn rate_with_number(expr: &Expr) -> Option<(&Call, Option<NumberOperand>)> {
    let b = match unparen(expr) {
        Expr::Call(c) => return Some((c, None)),
        Expr::Binary(b) => b,
        _ => return None,
    };
    if b.return_bool || b.matching.is_some() || b.op.is_comparison() || b.op.is_set() {
        return None;
    }
    let (c, number, number_on_left) = match (unparen(&b.lhs), unparen(&b.rhs)) {
        (Expr::NumberLiteral(n), Expr::Call(c)) => (c, *n, true),
        (Expr::Call(c), Expr::NumberLiteral(n)) => (c, *n, false),
        _ => return None,
    };
    Some((
        c,
        Some(NumberOperand {
            op: b.op,
            number,
            number_on_left,
        }),
    ))
}

/// Adds the state `other` (later series) into `into` for the ops of [`mergeable_op`], and for
/// avg while neither state is an incremental mean.
fn merge(op: AggregateOp, into: &mut Acc, other: &Acc) {
    if !other.seen {
        return;
    }
    if !into.seen {
        *into = other.clone();
        return;
    }
    into.count += other.count;
    match op {
        // Avg's states merge like sums while neither is an incremental mean. Two finite sums
        // that overflow mark the state as one: a pass in series order would have gone on with
        // a mean there, so the callers redo it so.
        AggregateOp::Avg
            if into.value.is_finite()
                && other.value.is_finite()
                && (into.value + other.value).is_infinite() =>
        {
            into.incremental_mean = true;
        }
        AggregateOp::Sum | AggregateOp::Avg => {
            (into.value, into.comp) = kahan_sum_inc(other.value, into.value, into.comp);
            into.comp += other.comp;
        }
        AggregateOp::Min if into.value > other.value || into.value.is_nan() => {
            into.value = other.value
        }
        AggregateOp::Max if into.value < other.value || into.value.is_nan() => {
            into.value = other.value
        }
        _ => {}
    }
}

/// Aggregations whose state per group and step is one [`Acc`].
fn dense_op(op: AggregateOp) -> bool {
    matches!(
        op,
        AggregateOp::Sum
            | AggregateOp::Avg
            | AggregateOp::Count
            | AggregateOp::Min
            | AggregateOp::Max
            | AggregateOp::Group
            | AggregateOp::Stddev
            | AggregateOp::Stdvar
    )
}

/// The labels a series is grouped by.
/// The id of `labels`' group in `groups` (the label set [`group_key`] makes).
fn intern_group(groups: &mut LabelSetIds, a: &AggregateExpr, labels: &Labels) -> usize {
    if a.without {
        groups.intern_selected(labels, |l| {
            l.name != METRIC_NAME_LABEL && !a.grouping.contains(&l.name)
        })
    } else {
        groups.intern_selected(labels, |l| a.grouping.contains(&l.name))
    }
}

fn group_key(a: &AggregateExpr, labels: &Labels) -> Labels {
    if a.without {
        drop_names_and_metric(labels, &a.grouping)
    } else {
        keep_only(labels, &a.grouping)
    }
}

/// One output series per group from dense group×step accumulators.
fn dense_output(
    op: AggregateOp,
    labels: Vec<Labels>,
    drops_name: &[bool],
    accs: &[Acc],
    steps: Steps,
) -> Vec<StepSeries> {
    let n = steps.len();
    labels
        .into_iter()
        .enumerate()
        .filter_map(|(g, labels)| {
            let row = &accs[g * n..(g + 1) * n];
            let mut points = Vec::with_capacity(row.iter().filter(|acc| acc.seen).count());
            points.extend(
                row.iter()
                    .enumerate()
                    .filter(|(_, acc)| acc.seen)
                    .map(|(step, acc)| Point {
                        t: steps.time(step),
                        v: finish(op, acc),
                    }),
            );
            (!points.is_empty()).then(|| StepSeries {
                labels,
                drop_name: drops_name.get(g).copied().unwrap_or(false),
                points,
            })
        })
        .collect()
}

/// Puts the `take` least items of `items` under the total order `cmp`, sorted, at its front
/// (the rest in no particular order): a partial sort for topk and bottomk.
fn select_first<T>(items: &mut [T], take: usize, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) {
    if take == 0 {
        return;
    }
    if take < items.len() {
        items.select_nth_unstable_by(take - 1, &cmp);
    }
    items[..take].sort_unstable_by(cmp);
}

fn desc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal),
    }
}

fn asc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

fn accumulate(op: AggregateOp, acc: &mut Acc, v: f64) {
    if !acc.seen {
        acc.seen = true;
        acc.count = 1.0;
        match op {
            AggregateOp::Stddev | AggregateOp::Stdvar => {
                acc.mean = v;
                acc.value = if v.is_nan() || v.is_infinite() {
                    f64::NAN
                } else {
                    0.0
                };
            }
            AggregateOp::Group => acc.value = 1.0,
            _ => acc.value = v,
        }
        return;
    }
    acc.count += 1.0;
    match op {
        AggregateOp::Sum => {
            (acc.value, acc.comp) = kahan_sum_inc(v, acc.value, acc.comp);
        }
        AggregateOp::Avg => {
            if !acc.incremental_mean {
                let (sum, comp) = kahan_sum_inc(v, acc.value, acc.comp);
                if !sum.is_infinite() || v.is_infinite() {
                    (acc.value, acc.comp) = (sum, comp);
                    return;
                }
                // The sum would overflow: continue with an incremental mean.
                acc.incremental_mean = true;
                acc.mean = acc.value / (acc.count - 1.0);
                acc.comp /= acc.count - 1.0;
            }
            if acc.mean.is_infinite() {
                if v.is_infinite() && (acc.mean > 0.0) == (v > 0.0) {
                    return;
                }
                if !v.is_infinite() && !v.is_nan() {
                    return;
                }
            }
            let q = (acc.count - 1.0) / acc.count;
            (acc.mean, acc.comp) = kahan_sum_inc(v / acc.count, q * acc.mean, q * acc.comp);
        }
        AggregateOp::Count => {}
        AggregateOp::Group => {}
        AggregateOp::Min if acc.value > v || acc.value.is_nan() => acc.value = v,
        AggregateOp::Max if acc.value < v || acc.value.is_nan() => acc.value = v,
        AggregateOp::Stddev | AggregateOp::Stdvar => {
            let delta = v - (acc.mean + acc.comp);
            (acc.mean, acc.comp) = kahan_sum_inc(delta / acc.count, acc.mean, acc.comp);
            acc.value += delta * (v - (acc.mean + acc.comp));
        }
        _ => {}
    }
}

fn finish(op: AggregateOp, acc: &Acc) -> f64 {
    match op {
        AggregateOp::Sum => acc.value + acc.comp,
        AggregateOp::Avg => {
            if acc.incremental_mean {
                acc.mean + acc.comp
            } else {
                (acc.value + acc.comp) / acc.count
            }
        }
        AggregateOp::Count => acc.count,
        AggregateOp::Stdvar => acc.value / acc.count,
        AggregateOp::Stddev => (acc.value / acc.count).sqrt(),
        _ => acc.value,
    }
}

fn count_values(
    label: &str,
    groups: LabelSetIds,
    group_of: &[usize],
    per_step: &[Vec<(u32, f64)>],
    steps: Steps,
) -> EvalResult<Val> {
    let mut ids = LabelSetIds::default();
    let mut out: Vec<StepSeries> = Vec::new();
    let mut counts: FxHashMap<usize, f64> = FxHashMap::default();
    let mut order: Vec<usize> = Vec::new();
    for (step, at_step) in per_step.iter().enumerate() {
        counts.clear();
        order.clear();
        for &(i, v) in at_step {
            let value = crate::format::go_float_f(v);
            let labels = with_label(groups.labels(group_of[i as usize]), label, &value);
            let (id, new) = ids.intern(labels.clone());
            if new {
                out.push(StepSeries {
                    labels,
                    drop_name: false,
                    points: Vec::new(),
                });
            }
            let c = counts.entry(id).or_insert_with(|| {
                order.push(id);
                0.0
            });
            *c += 1.0;
        }
        let t = steps.time(step);
        for &id in &order {
            out[id].points.push(Point { t, v: counts[&id] });
        }
    }
    Ok(Val::Vector(out))
}

/// limit_ratio: a series is kept at every step when its label hash, mapped to [0, 1), is below
/// the ratio (above 1 + ratio for negative ratios), so the choice is stable over time.
fn limit_ratio(series: Vec<StepSeries>, param: &[f64], steps: Steps) -> EvalResult<Val> {
    let mut out = Vec::new();
    for mut s in series {
        let position = s.labels.fx_hash() as f64 / u64::MAX as f64;
        s.points.retain(|p| {
            let r = param[steps.index(p.t)].clamp(-1.0, 1.0);
            if r >= 0.0 {
                position < r
            } else {
                position >= 1.0 + r
            }
        });
        if !s.points.is_empty() {
            out.push(s);
        }
    }
    Ok(Val::Vector(out))
}
