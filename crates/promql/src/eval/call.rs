//! Function calls: range-vector functions over windows, per-value math, label functions,
//! classic-histogram functions, and the vector/scalar conversions.

use rustc_hash::FxHashMap;
use vigil_model::{Label, Labels, MatchOp, METRIC_NAME_LABEL};
use vigil_promql_parser::ast::{Call, Expr, Pos, ValueType};

use super::labels::{with_label, LabelSetIds};
use super::{
    for_each_window, past_deadline, EvalResult, Evaluator, SeriesSet, StepSeries, Steps, Val,
};
use crate::kernels::histogram::{bucket_fraction, bucket_quantile, Bucket};
use crate::kernels::math;
use crate::kernels::range::{range_seconds, ExtrapolationTiming, RangeFunction, Window};
use crate::{Point, QueryError};

fn unwrap_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(inner) => unwrap_parens(inner),
        other => other,
    }
}

impl Evaluator<'_> {
    pub(crate) fn eval_call(&self, c: &Call, steps: Steps) -> EvalResult<Val> {
        let name = c.func.name;
        if let Some(rf) = RangeFunction::from_name(name) {
            return self.eval_range_function(rf, c, steps);
        }
        match name {
            "absent_over_time" => return self.absent_over_time(c, steps),
            "time" => {
                return Ok(Val::Scalar(
                    (0..steps.len())
                        .map(|i| steps.time(i) as f64 / 1000.0)
                        .collect(),
                ))
            }
            "pi" => return Ok(Val::Scalar(vec![std::f64::consts::PI; steps.len()])),
            // Experimental in Prometheus 3: the query's step, range, start and end in seconds.
            "step" => {
                let step = if self.query_end > self.query_start {
                    self.query_step as f64 / 1000.0
                } else {
                    0.0
                };
                return Ok(Val::Scalar(vec![step; steps.len()]));
            }
            "range" => {
                let range = (self.query_end - self.query_start) as f64 / 1000.0;
                return Ok(Val::Scalar(vec![range; steps.len()]));
            }
            "start" => {
                return Ok(Val::Scalar(vec![
                    self.query_start as f64 / 1000.0;
                    steps.len()
                ]))
            }
            "end" => {
                return Ok(Val::Scalar(vec![
                    self.query_end as f64 / 1000.0;
                    steps.len()
                ]))
            }
            "min_of" | "max_of" => {
                let a = self.eval_scalar(&c.args[0], steps)?;
                let b = self.eval_scalar(&c.args[1], steps)?;
                let f = if name == "min_of" {
                    math::go_min
                } else {
                    math::go_max
                };
                return Ok(Val::Scalar(
                    a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect(),
                ));
            }
            "vector" => {
                let vals = self.eval_scalar(&c.args[0], steps)?;
                return Ok(Val::Vector(vec![StepSeries {
                    labels: Labels::default(),
                    drop_name: false,
                    points: vals
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| Point {
                            t: steps.time(i),
                            v,
                        })
                        .collect(),
                }]));
            }
            "scalar" => {
                let series = self.eval_vector(&c.args[0], steps)?;
                let mut vals = vec![f64::NAN; steps.len()];
                let mut counts = vec![0u32; steps.len()];
                for s in &series {
                    for p in &s.points {
                        let i = steps.index(p.t);
                        counts[i] += 1;
                        vals[i] = p.v;
                    }
                }
                for (v, n) in vals.iter_mut().zip(counts) {
                    if n != 1 {
                        *v = f64::NAN;
                    }
                }
                return Ok(Val::Scalar(vals));
            }
            "timestamp" => {
                let mut series = match unwrap_parens(&c.args[0]) {
                    Expr::VectorSelector(vs) => self.select_instant(vs, steps, true)?,
                    other => {
                        let mut series = self.eval_vector(other, steps)?;
                        for s in &mut series {
                            for p in &mut s.points {
                                p.v = p.t as f64 / 1000.0;
                            }
                        }
                        series
                    }
                };
                for s in &mut series {
                    s.drop_name = true;
                }
                return Ok(Val::Vector(series));
            }
            "absent" => return self.absent(c, steps),
            _ => {}
        }
        if let Some(f) = math::simple(name) {
            let mut series = self.eval_vector(&c.args[0], steps)?;
            map_values(&mut series, steps, |_, v| Some(f(v)));
            return Ok(Val::Vector(series));
        }
        if let Some(f) = math::date_part(name) {
            let mut series = match c.args.first() {
                Some(arg) => self.eval_vector(arg, steps)?,
                None => vec![StepSeries {
                    labels: Labels::default(),
                    drop_name: false,
                    points: (0..steps.len())
                        .map(|i| Point {
                            t: steps.time(i),
                            v: steps.time(i) as f64 / 1000.0,
                        })
                        .collect(),
                }],
            };
            map_values(&mut series, steps, |_, v| Some(f(v)));
            return Ok(Val::Vector(series));
        }
        match name {
            "round" => {
                let mut series = self.eval_vector(&c.args[0], steps)?;
                let to = match c.args.get(1) {
                    Some(a) => self.eval_scalar(a, steps)?,
                    None => vec![1.0; steps.len()],
                };
                map_values(&mut series, steps, |i, v| Some(math::round(v, to[i])));
                Ok(Val::Vector(series))
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let mut series = self.eval_vector(&c.args[0], steps)?;
                let a = self.eval_scalar(&c.args[1], steps)?;
                let b = match c.args.get(2) {
                    Some(e) => self.eval_scalar(e, steps)?,
                    None => Vec::new(),
                };
                map_values(&mut series, steps, |i, v| match name {
                    "clamp" => math::clamp(v, a[i], b[i]),
                    "clamp_min" => Some(math::clamp_min(v, a[i])),
                    _ => Some(math::clamp_max(v, a[i])),
                });
                Ok(Val::Vector(series))
            }
            "label_replace" => self.label_replace(c, steps),
            "label_join" => self.label_join(c, steps),
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"
                if self.query_step != 0 =>
            {
                self.warn(
                    "PromQL warning: sort is ineffective for range queries since results are always ordered by labels".into(),
                    Some(c.pos),
                );
                self.eval(&c.args[0], steps)
            }
            "sort" | "sort_desc" => {
                let mut series = self.eval_vector(&c.args[0], steps)?;
                if steps.len() == 1 {
                    let desc = name == "sort_desc";
                    series.sort_by(|a, b| {
                        let (x, y) = (a.points[0].v, b.points[0].v);
                        match (x.is_nan(), y.is_nan()) {
                            (true, true) => std::cmp::Ordering::Equal,
                            (true, false) => std::cmp::Ordering::Greater,
                            (false, true) => std::cmp::Ordering::Less,
                            _ if desc => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                            _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                        }
                    });
                }
                Ok(Val::Vector(series))
            }
            "sort_by_label" | "sort_by_label_desc" => {
                let mut series = self.eval_vector(&c.args[0], steps)?;
                let mut names = Vec::new();
                for a in &c.args[1..] {
                    names.push(self.eval_string(a, steps)?);
                }
                let desc = name == "sort_by_label_desc";
                series.sort_by(|a, b| {
                    for n in &names {
                        let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                        let ord = natural_cmp(x, y);
                        if ord != std::cmp::Ordering::Equal {
                            return if desc { ord.reverse() } else { ord };
                        }
                    }
                    let ord = a.labels.cmp(&b.labels);
                    if desc {
                        ord.reverse()
                    } else {
                        ord
                    }
                });
                Ok(Val::Vector(series))
            }
            "histogram_quantile" => self.histogram_quantile(c, steps),
            "histogram_fraction" => self.histogram_fraction(c, steps),
            "histogram_quantiles" => self.histogram_quantiles(c, steps),
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => {
                // Native histograms only: float series yield nothing.
                let _ = self.eval_vector(&c.args[0], steps)?;
                Ok(Val::Vector(Vec::new()))
            }
            "info" => self.eval(&c.args[0], steps),
            _ => Err(QueryError::Execution(format!(
                "function {name:?} is not supported"
            ))),
        }
    }

    fn eval_range_function(&self, rf: RangeFunction, c: &Call, steps: Steps) -> EvalResult<Val> {
        let matrix_index = c
            .func
            .arg_types
            .iter()
            .position(|t| *t == ValueType::Matrix)
            .unwrap_or(0);
        let mut params: Vec<Vec<f64>> = Vec::new();
        for (i, arg) in c.args.iter().enumerate() {
            if i != matrix_index {
                params.push(self.eval_scalar(arg, steps)?);
            }
        }
        let (series, range_ms, refs) = match c.args.get(matrix_index).map(unwrap_parens) {
            Some(Expr::MatrixSelector(ms)) => (
                self.select_range(ms, steps)?,
                ms.range_ms,
                self.ref_times(steps, ms.selector.at, ms.selector.offset_ms),
            ),
            Some(Expr::Subquery(sq)) => (
                self.eval_subquery(sq, steps)?,
                sq.range_ms,
                self.ref_times(steps, sq.at, sq.offset_ms),
            ),
            _ => {
                return Err(QueryError::Execution(format!(
                    "expected range vector in call to function {:?}",
                    c.func.name
                )))
            }
        };
        if rf == RangeFunction::QuantileOverTime {
            if let Some(q) = params.first() {
                self.warn_quantile_range(q, c.arg_pos.first().copied());
            }
        }
        self.note_counter_names(rf, c, &series, matrix_index);
        let out = self.apply_range_function(rf, series, &refs, range_ms, &params, steps)?;
        self.add_samples(out.iter().map(|s| s.points.len()).sum())?;
        Ok(Val::Vector(out))
    }

    /// Prometheus' info annotation for rate/increase/irate over names that do not look like
    /// counters.
    pub(crate) fn note_counter_names(
        &self,
        rf: RangeFunction,
        c: &Call,
        series: &[StepSeries],
        matrix_index: usize,
    ) {
        for s in series {
            if let Some(metric) = s.labels.metric_name() {
                self.note_counter_name(rf, c, metric, matrix_index);
            }
        }
    }

    /// Prometheus' info when `rf` (rate, increase, irate) reads a metric whose name does not
    /// look like a counter's.
    pub(crate) fn note_counter_name(
        &self,
        rf: RangeFunction,
        c: &Call,
        metric: &str,
        matrix_index: usize,
    ) {
        if matches!(
            rf,
            RangeFunction::Rate | RangeFunction::Increase | RangeFunction::Irate
        ) && !is_counter_name(metric)
        {
            self.info(
                format!(
                    "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"
                ),
                c.arg_pos.get(matrix_index).copied(),
            );
        }
    }

    /// A range function at every step of every series (on all cores).
    pub(crate) fn apply_range_function(
        &self,
        rf: RangeFunction,
        series: Vec<StepSeries>,
        refs: &[i64],
        range_ms: i64,
        params: &[Vec<f64>],
        steps: Steps,
    ) -> EvalResult<Vec<StepSeries>> {
        let deadline = self.deadline;
        let rate_kind = rate_kind(rf);
        let apply = |part: Vec<StepSeries>| -> EvalResult<Vec<StepSeries>> {
            let mut out = Vec::with_capacity(part.len());
            let mut step_params = vec![0.0; params.len()];
            for (n, s) in part.into_iter().enumerate() {
                if n % 1024 == 0 {
                    past_deadline(deadline)?;
                }
                let mut points = Vec::new();
                if let Some((is_counter, is_rate)) = rate_kind {
                    rate_windows(&s.points, refs, range_ms, is_counter, is_rate, |i, v| {
                        points.push(Point {
                            t: steps.time(i),
                            v,
                        })
                    })?;
                    if !points.is_empty() {
                        out.push(StepSeries {
                            labels: s.labels,
                            drop_name: true,
                            points,
                        });
                    }
                    continue;
                }
                for_each_window(&s.points, refs, range_ms, |i, idx, from, to| {
                    let window = &s.points[idx];
                    if window.is_empty() {
                        return Ok(());
                    }
                    for (slot, p) in step_params.iter_mut().zip(params) {
                        *slot = p[i];
                    }
                    let w = Window {
                        points: window,
                        range_start_ms: from,
                        range_end_ms: to,
                        params: &step_params,
                    };
                    match rf.eval_at(&w, steps.time(i)) {
                        Ok(Some(v)) => points.push(Point {
                            t: steps.time(i),
                            v,
                        }),
                        Ok(None) => {}
                        Err(e) => return Err(QueryError::Execution(e.to_string())),
                    }
                    Ok(())
                })?;
                if !points.is_empty() {
                    out.push(StepSeries {
                        labels: s.labels,
                        drop_name: s.drop_name || rf.drops_metric_name(),
                        points,
                    });
                }
            }
            Ok(out)
        };
        super::on_all_cores(series, apply)
    }

    fn absent(&self, c: &Call, steps: Steps) -> EvalResult<Val> {
        let series = self.eval_vector(&c.args[0], steps)?;
        let mut present = vec![false; steps.len()];
        for s in &series {
            for p in &s.points {
                present[steps.index(p.t)] = true;
            }
        }
        Ok(Val::Vector(absent_series(&c.args[0], &present, steps)))
    }

    fn absent_over_time(&self, c: &Call, steps: Steps) -> EvalResult<Val> {
        let (series, range_ms, refs) = match unwrap_parens(&c.args[0]) {
            Expr::MatrixSelector(ms) => (
                self.select_range(ms, steps)?,
                ms.range_ms,
                self.ref_times(steps, ms.selector.at, ms.selector.offset_ms),
            ),
            Expr::Subquery(sq) => (
                self.eval_subquery(sq, steps)?,
                sq.range_ms,
                self.ref_times(steps, sq.at, sq.offset_ms),
            ),
            _ => {
                return Err(QueryError::Execution(
                    "expected range vector in call to function \"absent_over_time\"".into(),
                ))
            }
        };
        let mut present = vec![false; steps.len()];
        for s in &series {
            for_each_window(&s.points, &refs, range_ms, |i, w, _, _| {
                if !w.is_empty() {
                    present[i] = true;
                }
                Ok(())
            })?;
        }
        Ok(Val::Vector(absent_series(&c.args[0], &present, steps)))
    }

    fn label_replace(&self, c: &Call, steps: Steps) -> EvalResult<Val> {
        let series = self.eval_vector(&c.args[0], steps)?;
        let dst = self.eval_string(&c.args[1], steps)?;
        let replacement = self.eval_string(&c.args[2], steps)?;
        let src = self.eval_string(&c.args[3], steps)?;
        let pattern = self.eval_string(&c.args[4], steps)?;
        let regex = regex::Regex::new(&format!("^(?s:{pattern})$")).map_err(|_| {
            QueryError::Execution(format!(
                "invalid regular expression in label_replace(): {pattern}"
            ))
        })?;
        if !valid_label_name(&dst) {
            return Err(QueryError::Execution(format!(
                "invalid destination label name in label_replace(): {dst}"
            )));
        }
        relabel(series, |s| {
            let value = s.labels.get(&src).unwrap_or("");
            if let Some(caps) = regex.captures(value) {
                let mut res = String::new();
                // The regex crate's `$1` / `${name}` expansion is Go's syntax.
                caps.expand(&replacement, &mut res);
                s.labels = with_label(&s.labels, &dst, &res);
                if dst == METRIC_NAME_LABEL {
                    s.drop_name = false;
                }
            }
        })
    }

    fn label_join(&self, c: &Call, steps: Steps) -> EvalResult<Val> {
        let series = self.eval_vector(&c.args[0], steps)?;
        let dst = self.eval_string(&c.args[1], steps)?;
        let sep = self.eval_string(&c.args[2], steps)?;
        let mut srcs = Vec::new();
        for a in &c.args[3..] {
            let name = self.eval_string(a, steps)?;
            if !valid_label_name(&name) {
                return Err(QueryError::Execution(format!(
                    "invalid source label name in label_join(): {name}"
                )));
            }
            srcs.push(name);
        }
        if !valid_label_name(&dst) {
            return Err(QueryError::Execution(format!(
                "invalid destination label name in label_join(): {dst}"
            )));
        }
        relabel(series, |s| {
            let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
            s.labels = with_label(&s.labels, &dst, &joined.join(&sep));
            if dst == METRIC_NAME_LABEL {
                s.drop_name = false;
            }
        })
    }

    /// Series grouped by their labels without `le`; per step, the buckets of each group.
    fn bucket_groups(
        &self,
        series: &[StepSeries],
        steps: Steps,
        pos: Option<Pos>,
    ) -> (Vec<StepSeries>, Vec<Vec<Vec<Bucket>>>) {
        let mut ids = LabelSetIds::default();
        let mut out: Vec<StepSeries> = Vec::new();
        let mut buckets: Vec<Vec<Vec<Bucket>>> = Vec::new();
        for s in series {
            let upper = s.labels.get("le").and_then(parse_go_float);
            let Some(upper_bound) = upper else {
                self.warn(
                    format!(
                        "PromQL warning: bucket label \"le\" is missing or has a malformed value of {:?} for metric name {:?}",
                        s.labels.get("le").unwrap_or(""),
                        s.labels.metric_name().unwrap_or("")
                    ),
                    pos,
                );
                continue;
            };
            let labels = Labels::from_sorted(
                s.labels
                    .iter()
                    .filter(|l| l.name != "le")
                    .cloned()
                    .collect::<Vec<Label>>(),
            );
            let (id, new) = ids.intern(labels.clone());
            if new {
                out.push(StepSeries {
                    labels,
                    drop_name: true,
                    points: Vec::new(),
                });
                buckets.push(vec![Vec::new(); steps.len()]);
            }
            for p in &s.points {
                buckets[id][steps.index(p.t)].push(Bucket {
                    upper_bound,
                    count: p.v,
                });
            }
        }
        (out, buckets)
    }

    fn histogram_quantile(&self, c: &Call, steps: Steps) -> EvalResult<Val> {
        let q = self.eval_scalar(&c.args[0], steps)?;
        self.warn_quantile_range(&q, c.arg_pos.first().copied());
        let series = self.eval_vector(&c.args[1], steps)?;
        let (mut out, mut buckets) = self.bucket_groups(&series, steps, c.arg_pos.get(1).copied());
        for (g, per_step) in buckets.iter_mut().enumerate() {
            for (i, b) in per_step.iter_mut().enumerate() {
                if b.is_empty() {
                    continue;
                }
                let (v, flags) = bucket_quantile(q[i], b);
                if flags.forced_monotonic {
                    self.info(
                        format!(
                            "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?}",
                            out[g].labels.metric_name().unwrap_or("")
                        ),
                        c.arg_pos.get(1).copied(),
                    );
                }
                out[g].points.push(Point {
                    t: steps.time(i),
                    v,
                });
            }
        }
        out.retain(|s| !s.points.is_empty());
        Ok(Val::Vector(out))
    }

    /// Experimental: several quantiles at once, each labelled `<label>="<q>"`.
    fn histogram_quantiles(&self, c: &Call, steps: Steps) -> EvalResult<Val> {
        let series = self.eval_vector(&c.args[0], steps)?;
        let label = self.eval_string(&c.args[1], steps)?;
        let mut qs = Vec::new();
        for (i, arg) in c.args.iter().enumerate().skip(2) {
            let q = self.eval_scalar(arg, steps)?;
            self.warn_quantile_range(&q, c.arg_pos.get(i).copied());
            qs.push(q);
        }
        let (groups, buckets) = self.bucket_groups(&series, steps, c.arg_pos.first().copied());
        let mut out: Vec<StepSeries> = Vec::new();
        for (g, per_step) in buckets.iter().enumerate() {
            for q in &qs {
                let mut parts: Vec<StepSeries> = Vec::new();
                for (i, b) in per_step.iter().enumerate() {
                    if b.is_empty() {
                        continue;
                    }
                    let value = quantile_label(q[i]);
                    let labels = with_label(&groups[g].labels, &label, &value);
                    let (v, flags) = bucket_quantile(q[i], &mut b.clone());
                    if flags.forced_monotonic {
                        self.info(
                            format!(
                                "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?}",
                                groups[g].labels.metric_name().unwrap_or("")
                            ),
                            c.arg_pos.first().copied(),
                        );
                    }
                    let point = Point {
                        t: steps.time(i),
                        v,
                    };
                    match parts.iter_mut().find(|p| p.labels == labels) {
                        Some(p) => p.points.push(point),
                        None => parts.push(StepSeries {
                            labels,
                            drop_name: true,
                            points: vec![point],
                        }),
                    }
                }
                out.extend(parts);
            }
        }
        relabel(out, |_| {})
    }

    fn histogram_fraction(&self, c: &Call, steps: Steps) -> EvalResult<Val> {
        let lower = self.eval_scalar(&c.args[0], steps)?;
        let upper = self.eval_scalar(&c.args[1], steps)?;
        let series = self.eval_vector(&c.args[2], steps)?;
        let (mut out, mut buckets) = self.bucket_groups(&series, steps, c.arg_pos.get(2).copied());
        for (g, per_step) in buckets.iter_mut().enumerate() {
            for (i, b) in per_step.iter_mut().enumerate() {
                if b.is_empty() {
                    continue;
                }
                let v = bucket_fraction(lower[i], upper[i], b);
                out[g].points.push(Point {
                    t: steps.time(i),
                    v,
                });
            }
        }
        out.retain(|s| !s.points.is_empty());
        Ok(Val::Vector(out))
    }
}

/// (counter?, per second?) for rate, increase and delta: the functions [`rate_windows`] computes.
pub(crate) fn rate_kind(rf: RangeFunction) -> Option<(bool, bool)> {
    match rf {
        RangeFunction::Rate => Some((true, true)),
        RangeFunction::Increase => Some((true, false)),
        RangeFunction::Delta => Some((false, false)),
        _ => None,
    }
}

/// rate, increase and delta at every step of one series. The counter-reset corrections are
/// prefix-summed once, so a window costs O(1) instead of a pass over its samples; the
/// extrapolation is the kernel's. (Where a window holds no reset, the sum is exactly the
/// kernel's; with resets it may differ in the last bits.)
pub(crate) fn rate_windows(
    points: &[Point],
    refs: &[i64],
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
    mut emit: impl FnMut(usize, f64),
) -> EvalResult<()> {
    let mut corrections = Vec::new();
    if is_counter {
        corrections.reserve(points.len());
        let mut total = 0.0;
        corrections.push(0.0);
        for pair in points.windows(2) {
            if pair[1].v < pair[0].v {
                total += pair[0].v;
            }
            corrections.push(total);
        }
    }
    // Infinite values would turn differences of the sums into NaN: sum per window then.
    let prefix_sums_exact = corrections.last().is_none_or(|c| c.is_finite());
    let rate_range_seconds = is_rate.then(|| range_seconds(range_ms));
    // Windows of a regularly scraped series repeat the same timing: computed once per run.
    let mut last_timing: Option<((i64, i64, i64, usize), ExtrapolationTiming)> = None;
    for_each_window(points, refs, range_ms, |i, idx, from, to| {
        if idx.len() < 2 {
            return Ok(());
        }
        let (first, last) = (points[idx.start], points[idx.end - 1]);
        let mut result = last.v - first.v;
        if is_counter && prefix_sums_exact {
            let resets = corrections[idx.end - 1] - corrections[idx.start];
            if resets != 0.0 {
                result += resets;
            }
        } else if is_counter {
            for pair in points[idx.clone()].windows(2) {
                if pair[1].v < pair[0].v {
                    result += pair[0].v;
                }
            }
        }
        let key = (
            first.t.wrapping_sub(from),
            to.wrapping_sub(last.t),
            last.t.wrapping_sub(first.t),
            idx.len(),
        );
        let timing = match last_timing {
            Some((cached, timing)) if cached == key => timing,
            _ => {
                let timing =
                    ExtrapolationTiming::new(key.0, key.1, key.2, key.3, rate_range_seconds);
                last_timing = Some((key, timing));
                timing
            }
        };
        emit(i, timing.apply(first.v, result, is_counter));
        Ok(())
    })
}

/// Applies `f` to every point (its step index and value); `None` drops the point. Drops the
/// metric name, as every math function does.
fn map_values(series: &mut Vec<StepSeries>, steps: Steps, f: impl Fn(usize, f64) -> Option<f64>) {
    for s in series.iter_mut() {
        s.drop_name = true;
        s.points.retain_mut(|p| match f(steps.index(p.t), p.v) {
            Some(v) => {
                p.v = v;
                true
            }
            None => false,
        });
    }
    series.retain(|s| !s.points.is_empty());
}

/// Rewrites each series' labels; series that end up with equal labels merge, and an error is
/// raised if two of them have a point at one step.
fn relabel(series: Vec<StepSeries>, mut f: impl FnMut(&mut StepSeries)) -> EvalResult<Val> {
    let mut out = SeriesSet::with_capacity(series.len());
    for mut s in series {
        f(&mut s);
        out.add(s)?;
    }
    Ok(Val::Vector(out.series))
}

/// absent()'s output: 1 at each step with nothing present, labelled with the selector's
/// equality matchers (a label matched twice is left out).
fn absent_series(arg: &Expr, present: &[bool], steps: Steps) -> Vec<StepSeries> {
    let points: Vec<Point> = present
        .iter()
        .enumerate()
        .filter(|(_, p)| !**p)
        .map(|(i, _)| Point {
            t: steps.time(i),
            v: 1.0,
        })
        .collect();
    if points.is_empty() {
        return Vec::new();
    }
    let matchers = match unwrap_parens(arg) {
        Expr::VectorSelector(vs) => Some(&vs.matchers),
        Expr::MatrixSelector(ms) => Some(&ms.selector.matchers),
        _ => None,
    };
    let mut pairs: Vec<Label> = Vec::new();
    if let Some(matchers) = matchers {
        let mut counts: FxHashMap<&str, usize> = FxHashMap::default();
        for m in matchers.iter() {
            *counts.entry(m.name.as_str()).or_default() += 1;
        }
        for m in matchers.iter() {
            if m.op == MatchOp::Equal && m.name != METRIC_NAME_LABEL && counts[m.name.as_str()] == 1
            {
                pairs.push(Label::new(m.name.clone(), m.value.clone()));
            }
        }
    }
    vec![StepSeries {
        labels: Labels::from_unsorted(pairs),
        drop_name: false,
        points,
    }]
}

/// A quantile as histogram_quantiles labels it: at least one decimal (`0.0`, `0.25`, `NaN`).
fn quantile_label(q: f64) -> String {
    let s = crate::format::go_float_f(q);
    if s.contains(['.', 'N', 'I']) {
        s
    } else {
        format!("{s}.0")
    }
}

fn is_counter_name(name: &str) -> bool {
    ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Label names are any non-empty UTF-8 (Prometheus 3); invalid bytes in a string literal
/// arrive as U+FFFD.
pub(crate) fn valid_label_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('\u{fffd}')
}

/// Parses a bucket bound as Go's ParseFloat does (`+Inf`, `Inf`, `1e3`, hex).
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "+inf" | "inf" | "+infinity" | "infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if t != s {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Natural order: runs of digits compare by number, the rest byte-wise.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            if ab[i] != bb[j] {
                return ab[i].cmp(&bb[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}
