//! Range-vector functions (`rate`, `deriv`, `*_over_time`, ...) over the float samples of one
//! series inside one window, as Prometheus 3 computes them.

use thiserror::Error;

use super::stats::{self, kahan_sum_inc, KahanSum, MeanAccumulator};
use crate::value::Point;

/// A runtime error of a range function; the evaluator turns it into a query error
/// (`execution`), with this exact message.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum KernelError {
    #[error("invalid smoothing factor. Expected: 0 < sf < 1, got: {}", go_fmt_f(.0))]
    InvalidSmoothingFactor(f64),
    #[error("invalid trend factor. Expected: 0 < tf < 1, got: {}", go_fmt_f(.0))]
    InvalidTrendFactor(f64),
    /// The evaluator passed fewer scalar parameters than the function takes.
    #[error("{function}: expected {expected} scalar parameter(s), got {got}")]
    MissingParameters {
        function: &'static str,
        expected: usize,
        got: usize,
    },
}

/// Go's `%f`: six decimals, `+Inf`/`-Inf`/`NaN` for the special values.
fn go_fmt_f(v: &f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if *v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v:.6}")
    }
}

/// The samples of one series for one evaluation step of a range function.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// The series' float samples, sorted by time without duplicates and without stale markers.
    /// Samples outside `(range_start_ms, range_end_ms]` are ignored, so passing a wider slice
    /// is fine.
    pub points: &'a [Point],
    /// Exclusive start of the window: evaluation time - offset - range.
    pub range_start_ms: i64,
    /// Inclusive end of the window: evaluation time - offset (the `@` time - offset under `@`).
    pub range_end_ms: i64,
    /// The scalar arguments besides the range vector, in call order: `quantile_over_time`'s q,
    /// `predict_linear`'s t, `double_exponential_smoothing`'s sf and tf.
    pub params: &'a [f64],
}

impl<'a> Window<'a> {
    /// The points inside `(range_start_ms, range_end_ms]`.
    pub fn in_range(&self) -> &'a [Point] {
        let lo = self.points.partition_point(|p| p.t <= self.range_start_ms);
        let hi = self.points.partition_point(|p| p.t <= self.range_end_ms);
        self.points.get(lo..hi).unwrap_or(&[])
    }

    /// The selector's range in seconds, as Go's `Duration.Seconds()` computes it.
    fn range_seconds(&self) -> f64 {
        range_seconds(self.range_end_ms.wrapping_sub(self.range_start_ms))
    }
}

/// A PromQL function taking a range vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeFunction {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    Changes,
    Resets,
    AvgOverTime,
    SumOverTime,
    CountOverTime,
    MinOverTime,
    MaxOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    MadOverTime,
    LastOverTime,
    FirstOverTime,
    PresentOverTime,
    TsOfFirstOverTime,
    TsOfLastOverTime,
    TsOfMinOverTime,
    TsOfMaxOverTime,
    DoubleExponentialSmoothing,
}

impl RangeFunction {
    /// Every function, for tables and tests.
    pub const ALL: [RangeFunction; 26] = [
        Self::Rate,
        Self::Increase,
        Self::Delta,
        Self::Irate,
        Self::Idelta,
        Self::Deriv,
        Self::PredictLinear,
        Self::Changes,
        Self::Resets,
        Self::AvgOverTime,
        Self::SumOverTime,
        Self::CountOverTime,
        Self::MinOverTime,
        Self::MaxOverTime,
        Self::StddevOverTime,
        Self::StdvarOverTime,
        Self::QuantileOverTime,
        Self::MadOverTime,
        Self::LastOverTime,
        Self::FirstOverTime,
        Self::PresentOverTime,
        Self::TsOfFirstOverTime,
        Self::TsOfLastOverTime,
        Self::TsOfMinOverTime,
        Self::TsOfMaxOverTime,
        Self::DoubleExponentialSmoothing,
    ];

    /// The function called `name` (`holt_winters` is the pre-3.0 name of
    /// `double_exponential_smoothing`).
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "holt_winters" {
            return Some(Self::DoubleExponentialSmoothing);
        }
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::Increase => "increase",
            Self::Delta => "delta",
            Self::Irate => "irate",
            Self::Idelta => "idelta",
            Self::Deriv => "deriv",
            Self::PredictLinear => "predict_linear",
            Self::Changes => "changes",
            Self::Resets => "resets",
            Self::AvgOverTime => "avg_over_time",
            Self::SumOverTime => "sum_over_time",
            Self::CountOverTime => "count_over_time",
            Self::MinOverTime => "min_over_time",
            Self::MaxOverTime => "max_over_time",
            Self::StddevOverTime => "stddev_over_time",
            Self::StdvarOverTime => "stdvar_over_time",
            Self::QuantileOverTime => "quantile_over_time",
            Self::MadOverTime => "mad_over_time",
            Self::LastOverTime => "last_over_time",
            Self::FirstOverTime => "first_over_time",
            Self::PresentOverTime => "present_over_time",
            Self::TsOfFirstOverTime => "ts_of_first_over_time",
            Self::TsOfLastOverTime => "ts_of_last_over_time",
            Self::TsOfMinOverTime => "ts_of_min_over_time",
            Self::TsOfMaxOverTime => "ts_of_max_over_time",
            Self::DoubleExponentialSmoothing => "double_exponential_smoothing",
        }
    }

    /// How many scalar parameters [`Window::params`] must hold.
    pub fn param_count(self) -> usize {
        match self {
            Self::QuantileOverTime | Self::PredictLinear => 1,
            Self::DoubleExponentialSmoothing => 2,
            _ => 0,
        }
    }

    /// Whether the output drops `__name__`: every function except `last_over_time` and
    /// `first_over_time`, which return a sample of the input series unchanged.
    pub fn drops_metric_name(self) -> bool {
        !matches!(self, Self::LastOverTime | Self::FirstOverTime)
    }

    /// The function's value for one series at one step evaluated at `w.range_end_ms` (no
    /// offset, no `@`): `Ok(None)` when it has no output (no sample in the window, or too few
    /// for the function), `Err` for a query error. See [`RangeFunction::eval_at`].
    pub fn eval(self, w: &Window) -> Result<Option<f64>, KernelError> {
        self.eval_at(w, w.range_end_ms)
    }

    /// As [`RangeFunction::eval`], for the evaluation (step) timestamp `eval_ts_ms` before
    /// offset and `@` are applied. Only `predict_linear` depends on it: it extrapolates from
    /// the evaluation time, not from the window's end (so `predict_linear(x[5m] offset 1h, t)`
    /// and `... @ T` need the real step time).
    pub fn eval_at(self, w: &Window, eval_ts_ms: i64) -> Result<Option<f64>, KernelError> {
        let needed = self.param_count();
        if w.params.len() < needed {
            return Err(KernelError::MissingParameters {
                function: self.name(),
                expected: needed,
                got: w.params.len(),
            });
        }
        let pts = w.in_range();
        let (Some(first), Some(last)) = (pts.first(), pts.last()) else {
            return Ok(None);
        };
        let values = || pts.iter().map(|p| p.v);
        let out = match self {
            Self::Rate => extrapolated_rate(pts, w, true, true),
            Self::Increase => extrapolated_rate(pts, w, true, false),
            Self::Delta => extrapolated_rate(pts, w, false, false),
            Self::Irate => instant_value(pts, true),
            Self::Idelta => instant_value(pts, false),
            Self::Deriv => (pts.len() >= 2).then(|| linear_regression(pts, first.t).0),
            Self::PredictLinear => (pts.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(pts, eval_ts_ms);
                slope * w.params[0] + intercept
            }),
            Self::Changes => Some(
                pts.windows(2)
                    .filter(|p| p[1].v != p[0].v && !(p[1].v.is_nan() && p[0].v.is_nan()))
                    .count() as f64,
            ),
            Self::Resets => Some(pts.windows(2).filter(|p| p[1].v < p[0].v).count() as f64),
            Self::AvgOverTime => {
                let mut acc = MeanAccumulator::new(first.v);
                values().skip(1).for_each(|v| acc.add(v));
                Some(acc.value())
            }
            Self::SumOverTime => {
                let mut sum = KahanSum::new();
                values().for_each(|v| sum.add(v));
                Some(sum.value())
            }
            Self::CountOverTime => Some(pts.len() as f64),
            Self::MinOverTime => Some(extreme(pts, |cur, best| cur < best).v),
            Self::MaxOverTime => Some(extreme(pts, |cur, best| cur > best).v),
            Self::TsOfMinOverTime => Some(seconds(extreme(pts, |cur, best| cur <= best).t)),
            Self::TsOfMaxOverTime => Some(seconds(extreme(pts, |cur, best| cur >= best).t)),
            Self::StdvarOverTime => Some(stats::variance_over_time(&values().collect::<Vec<_>>())),
            Self::StddevOverTime => {
                Some(stats::variance_over_time(&values().collect::<Vec<_>>()).sqrt())
            }
            Self::QuantileOverTime => Some(stats::quantile(
                w.params[0],
                &mut values().collect::<Vec<_>>(),
            )),
            Self::MadOverTime => Some(median_absolute_deviation(values().collect())),
            Self::LastOverTime => Some(last.v),
            Self::FirstOverTime => Some(first.v),
            Self::PresentOverTime => Some(1.0),
            Self::TsOfFirstOverTime => Some(seconds(first.t)),
            Self::TsOfLastOverTime => Some(seconds(last.t)),
            Self::DoubleExponentialSmoothing => {
                return double_exponential_smoothing(pts, w.params[0], w.params[1]);
            }
        };
        Ok(out)
    }
}

fn seconds(t_ms: i64) -> f64 {
    t_ms as f64 / 1000.0
}

/// The point `better(candidate, best)` prefers; a NaN best is replaced by anything. Ties keep
/// the earlier point unless `better` accepts equality. `pts` must not be empty.
fn extreme(pts: &[Point], better: impl Fn(f64, f64) -> bool) -> Point {
    let mut best = pts.first().copied().unwrap_or(Point { t: 0, v: f64::NAN });
    for p in pts {
        if better(p.v, best.v) || best.v.is_nan() {
            best = *p;
        }
    }
    best
}

/// `rate`, `increase` and `delta`: the difference between the last and first sample (counter
/// resets corrected for counters), extrapolated toward the window edges. A gap to an edge is
/// bridged completely when it is shorter than 1.1 average sample intervals and by half an
/// interval otherwise; counters are never extrapolated below zero. `rate` divides by the range.
fn extrapolated_rate(pts: &[Point], w: &Window, is_counter: bool, is_rate: bool) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let (first, last) = (pts.first()?, pts.last()?);
    let mut result = last.v - first.v;
    if is_counter {
        for pair in pts.windows(2) {
            if pair[1].v < pair[0].v {
                result += pair[0].v;
            }
        }
    }
    Some(extrapolate(
        *first,
        *last,
        pts.len(),
        result,
        w,
        is_counter,
        is_rate,
    ))
}

/// A range of `ms` milliseconds in seconds, as Go's `Duration.Seconds()` computes it.
pub fn range_seconds(ms: i64) -> f64 {
    (ms / 1000) as f64 + ((ms % 1000) * 1_000_000) as f64 / 1e9
}

/// The extrapolation step of rate/increase/delta: `result` is the (reset-corrected) difference
/// between the window's `count` samples from `first` to `last`. Split out so the evaluator can
/// compute `result` for all windows of a series from prefix sums.
pub fn extrapolate(
    first: Point,
    last: Point,
    count: usize,
    result: f64,
    w: &Window,
    is_counter: bool,
    is_rate: bool,
) -> f64 {
    let timing = ExtrapolationTiming::new(
        first.t.wrapping_sub(w.range_start_ms),
        w.range_end_ms.wrapping_sub(last.t),
        last.t.wrapping_sub(first.t),
        count,
        if is_rate {
            Some(w.range_seconds())
        } else {
            None
        },
    );
    timing.apply(first.v, result, is_counter)
}

/// What [`extrapolate`] computes from a window's timing alone: the same for every window whose
/// first and last samples sit at the same offsets from its ends with the same count (every
/// step of a regularly scraped series), so the evaluator computes it once per such run. The
/// operations and their order are Prometheus' (`extrapolatedRate`), so results stay
/// bit-identical.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExtrapolationTiming {
    duration_to_start: f64,
    duration_to_end: f64,
    sampled_interval: f64,
    /// `Some(range in seconds)` for rate.
    rate_range_seconds: Option<f64>,
    /// The factor when no counter adjustment moves `duration_to_start`.
    factor: f64,
}

impl ExtrapolationTiming {
    /// `to_start_ms`: first sample − window start; `to_end_ms`: window end − last sample;
    /// `sampled_ms`: last − first sample; `count` samples (at least 2).
    pub fn new(
        to_start_ms: i64,
        to_end_ms: i64,
        sampled_ms: i64,
        count: usize,
        rate_range_seconds: Option<f64>,
    ) -> Self {
        let mut duration_to_start = to_start_ms as f64 / 1000.0;
        let mut duration_to_end = to_end_ms as f64 / 1000.0;
        let sampled_interval = sampled_ms as f64 / 1000.0;
        let average_interval = sampled_interval / (count - 1) as f64;
        let threshold = average_interval * 1.1;
        if duration_to_start >= threshold {
            duration_to_start = average_interval / 2.0;
        }
        if duration_to_end >= threshold {
            duration_to_end = average_interval / 2.0;
        }
        let mut timing = Self {
            duration_to_start,
            duration_to_end,
            sampled_interval,
            rate_range_seconds,
            factor: 0.0,
        };
        timing.factor = timing.factor_from(duration_to_start);
        timing
    }

    fn factor_from(&self, duration_to_start: f64) -> f64 {
        let mut factor = (self.sampled_interval + duration_to_start + self.duration_to_end)
            / self.sampled_interval;
        if let Some(range_seconds) = self.rate_range_seconds {
            factor /= range_seconds;
        }
        factor
    }

    /// The extrapolated `result` of a window starting with value `first_value`.
    pub fn apply(&self, first_value: f64, result: f64, is_counter: bool) -> f64 {
        if is_counter && result > 0.0 && first_value >= 0.0 {
            // Where a counter extrapolated backwards would reach zero.
            let duration_to_zero = self.sampled_interval * (first_value / result);
            if duration_to_zero < self.duration_to_start {
                return result * self.factor_from(duration_to_zero);
            }
        }
        result * self.factor
    }
}

/// `irate` and `idelta` from the last two samples. `irate` after a counter reset takes the last
/// value as the increase.
fn instant_value(pts: &[Point], is_rate: bool) -> Option<f64> {
    let [prev, last] = pts.get(pts.len().checked_sub(2)?..)? else {
        return None;
    };
    let interval_ms = last.t.wrapping_sub(prev.t);
    if interval_ms == 0 {
        return None;
    }
    let mut result = if is_rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    if is_rate {
        result /= interval_ms as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares fit of the points, time in seconds relative to `intercept_time_ms`, with
/// Kahan-compensated sums. Returns (slope per second, value at `intercept_time_ms`). A constant
/// series has slope 0 (NaN if the constant is infinite).
fn linear_regression(pts: &[Point], intercept_time_ms: i64) -> (f64, f64) {
    let init_y = pts.first().map_or(f64::NAN, |p| p.v);
    let mut const_y = true;
    let mut n = 0.0;
    let (mut sum_x, mut c_x) = (0.0, 0.0);
    let (mut sum_y, mut c_y) = (0.0, 0.0);
    let (mut sum_xy, mut c_xy) = (0.0, 0.0);
    let (mut sum_x2, mut c_x2) = (0.0, 0.0);
    for (i, p) in pts.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = p.t.wrapping_sub(intercept_time_ms) as f64 / 1e3;
        (sum_x, c_x) = kahan_sum_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_sum_inc(p.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_sum_inc(x * p.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_sum_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let sum_x = sum_x + c_x;
    let sum_y = sum_y + c_y;
    let sum_xy = sum_xy + c_xy;
    let sum_x2 = sum_x2 + c_x2;

    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// Median of the absolute deviations from the median; NaN if any value is NaN.
fn median_absolute_deviation(mut values: Vec<f64>) -> f64 {
    if values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let median = stats::quantile(0.5, &mut values);
    for v in &mut values {
        *v = (*v - median).abs();
    }
    stats::quantile(0.5, &mut values)
}

/// Holt's linear (double exponential) smoothing with smoothing factor `sf` and trend factor
/// `tf`, both required in (0, 1). Needs at least two samples.
fn double_exponential_smoothing(
    pts: &[Point],
    sf: f64,
    tf: f64,
) -> Result<Option<f64>, KernelError> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(KernelError::InvalidSmoothingFactor(sf));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(KernelError::InvalidTrendFactor(tf));
    }
    let (Some(p0), Some(p1)) = (pts.first(), pts.get(1)) else {
        return Ok(None);
    };
    let mut s0 = 0.0;
    let mut s1 = p0.v;
    let mut trend = p1.v - p0.v;
    for (i, p) in pts.iter().enumerate().skip(1) {
        let x = sf * p.v;
        if i > 1 {
            trend = tf * (s1 - s0) + (1.0 - tf) * trend;
        }
        let y = (1.0 - sf) * (s1 + trend);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn win<'a>(points: &'a [Point], start: i64, end: i64, params: &'a [f64]) -> Window<'a> {
        Window {
            points,
            range_start_ms: start,
            range_end_ms: end,
            params,
        }
    }

    /// Points every `step_ms` from 0 with the given values (NaN-free helper for loads).
    fn series(step_ms: i64, values: &[f64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| Point {
                t: i as i64 * step_ms,
                v,
            })
            .collect()
    }

    /// `start+incx(count)` as in promqltest loads.
    fn ramp(start: f64, inc: f64, count: usize) -> Vec<f64> {
        (0..=count).map(|i| start + inc * i as f64).collect()
    }

    fn eval_at(
        f: RangeFunction,
        pts: &[Point],
        at_ms: i64,
        range_ms: i64,
        params: &[f64],
    ) -> Option<f64> {
        f.eval(&win(pts, at_ms - range_ms, at_ms, params))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn close(a: f64, b: f64) -> bool {
        a == b || (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    fn assert_close(got: Option<f64>, want: f64) {
        let got = got.unwrap_or_else(|| panic!("no output, want {want}"));
        if want.is_nan() {
            assert!(got.is_nan(), "got {got}, want NaN");
        } else {
            assert!(close(got, want), "got {got}, want {want}");
        }
    }

    #[test]
    fn names_round_trip() {
        for f in RangeFunction::ALL {
            assert_eq!(RangeFunction::from_name(f.name()), Some(f));
        }
        assert_eq!(
            RangeFunction::from_name("holt_winters"),
            Some(RangeFunction::DoubleExponentialSmoothing)
        );
        assert_eq!(RangeFunction::from_name("rate_over_time"), None);
        assert!(!RangeFunction::LastOverTime.drops_metric_name());
        assert!(!RangeFunction::FirstOverTime.drops_metric_name());
        assert!(RangeFunction::Rate.drops_metric_name());
        assert!(RangeFunction::TsOfLastOverTime.drops_metric_name());
    }

    #[test]
    fn window_is_left_open() {
        let pts = series(5 * MIN, &[1.0, 2.0, 3.0]);
        // (0, 10m] excludes t=0.
        assert_close(
            eval_at(RangeFunction::CountOverTime, &pts, 10 * MIN, 10 * MIN, &[]),
            2.0,
        );
        assert_eq!(
            eval_at(RangeFunction::CountOverTime, &pts, 4 * MIN, 3 * MIN, &[]),
            None
        );
        let w = win(&pts, 0, 10 * MIN, &[]);
        assert_eq!(w.in_range().len(), 2);
        assert_eq!(w.range_seconds(), 600.0);
    }

    #[test]
    fn rate_and_increase() {
        use RangeFunction::{Increase, Rate};
        let window = series(5 * MIN, &ramp(0.0, 80.0, 10));
        assert_close(
            eval_at(Rate, &window, 50 * MIN, 50 * MIN, &[]),
            0.26666666666666666,
        );

        // increase() with extrapolation and the zero-point limit.
        let foo = series(5 * MIN, &ramp(0.0, 10.0, 10));
        let mut bar_values = ramp(0.0, 18.0, 5);
        bar_values.extend(ramp(0.0, 18.0, 5));
        let bar = series(5 * MIN, &bar_values);
        let dings = series(5 * MIN, &ramp(10.0, 10.0, 10));
        let bumms = series(5 * MIN, &ramp(1.0, 10.0, 10));
        for (pts, want50, want100) in [
            (&foo, 100.0, 100.0),
            (&bar, 160.0, 162.0),
            (&dings, 100.0, 105.0),
            (&bumms, 100.0, 101.0),
        ] {
            assert_close(eval_at(Increase, pts, 50 * MIN, 50 * MIN, &[]), want50);
            assert_close(eval_at(Increase, pts, 50 * MIN, 100 * MIN, &[]), want100);
        }

        // A decrease is a counter reset: 0 1 2 3 2 3 4 increases by 7.
        let reset = series(5 * MIN, &[0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0]);
        assert_close(eval_at(Increase, &reset, 30 * MIN, 30 * MIN, &[]), 7.0);

        let mut middle = ramp(0.0, 27.0, 4);
        middle.extend(ramp(0.0, 27.0, 5));
        let middle = series(5 * MIN, &middle);
        assert_close(eval_at(Rate, &middle, 50 * MIN, 50 * MIN, &[]), 0.08);

        let mut end = ramp(0.0, 10.0, 9);
        end.extend([0.0, 10.0]);
        let end = series(5 * MIN, &end);
        assert_eq!(eval_at(Rate, &end, 50 * MIN, 5 * MIN, &[]), None);
        assert_close(eval_at(Rate, &end, 50 * MIN, 6 * MIN, &[]), 0.0);

        // rate(x[10m] offset 5m) at 50m.
        let a = series(5 * MIN, &ramp(0.0, 10.0, 10));
        let w = win(&a, 35 * MIN, 45 * MIN, &[]);
        assert_close(
            Rate.eval_at(&w, 50 * MIN).ok().flatten(),
            0.03333333333333333,
        );

        // Zero cutoff for left-side extrapolation.
        for (start, want10, want50) in [
            (0.0, 0.5, 0.6),
            (60.0, 0.55, 0.6),
            (120.0, 0.6, 0.6),
            (180.0, 0.6, 0.6),
            (300.0, 0.6, 0.6),
        ] {
            let pts = series(4 * MIN, &ramp(start, 240.0, 10));
            assert_close(eval_at(Rate, &pts, 10 * MIN, 20 * MIN, &[]), want10);
            assert_close(eval_at(Rate, &pts, 50 * MIN, 20 * MIN, &[]), want50);
        }

        // Fewer than two samples: no output.
        assert_eq!(eval_at(Rate, &a, 50 * MIN, 5 * MIN, &[]), None);
    }

    #[test]
    fn delta_is_not_a_counter() {
        let foo = series(5 * MIN, &[0.0, 50.0, 100.0, 150.0, 200.0]);
        let bar = series(5 * MIN, &[200.0, 150.0, 100.0, 50.0, 0.0]);
        assert_close(
            eval_at(RangeFunction::Delta, &foo, 20 * MIN, 20 * MIN, &[]),
            200.0,
        );
        assert_close(
            eval_at(RangeFunction::Delta, &bar, 20 * MIN, 20 * MIN, &[]),
            -200.0,
        );
    }

    #[test]
    fn irate_and_idelta() {
        use RangeFunction::{Idelta, Irate};
        let foo = series(5 * MIN, &ramp(0.0, 10.0, 10));
        let mut bar = ramp(0.0, 10.0, 5);
        bar.extend(ramp(0.0, 10.0, 5));
        let bar = series(5 * MIN, &bar);
        assert_close(eval_at(Irate, &foo, 50 * MIN, 50 * MIN, &[]), 1.0 / 30.0);
        assert_close(eval_at(Irate, &bar, 50 * MIN, 50 * MIN, &[]), 1.0 / 30.0);
        assert_close(eval_at(Irate, &bar, 30 * MIN, 50 * MIN, &[]), 0.0);

        let nan = series(5 * MIN, &[1.0, f64::NAN, f64::NAN, 5.0, 11.0]);
        let range = 15 * MIN + 1000;
        assert_eq!(eval_at(Irate, &nan, 0, range, &[]), None);
        for at in [5, 10, 15] {
            assert_close(eval_at(Irate, &nan, at * MIN, range, &[]), f64::NAN);
            assert_close(eval_at(Idelta, &nan, at * MIN, range, &[]), f64::NAN);
        }
        assert_close(eval_at(Irate, &nan, 20 * MIN, range, &[]), 0.02);
        assert_close(eval_at(Idelta, &nan, 20 * MIN, range, &[]), 6.0);

        let g = series(5 * MIN, &[0.0, 50.0, 100.0, 50.0]);
        assert_close(eval_at(Idelta, &g, 20 * MIN, 20 * MIN, &[]), -50.0);
    }

    #[test]
    fn deriv_and_predict_linear() {
        use RangeFunction::{Deriv, PredictLinear};
        let total = series(5 * MIN, &ramp(0.0, 80.0, 10));
        assert_close(
            eval_at(Deriv, &total, 50 * MIN, 50 * MIN, &[]),
            0.26666666666666666,
        );

        let mut v = ramp(0.0, 10.0, 4);
        v.extend(ramp(0.0, 10.0, 5));
        let reset = series(5 * MIN, &v);
        assert_close(
            eval_at(Deriv, &reset, 50 * MIN, 100 * MIN, &[]),
            0.010606060606060607,
        );
        assert_close(
            eval_at(PredictLinear, &reset, 50 * MIN, 50 * MIN, &[3600.0]),
            70.0,
        );

        // predict_linear(x[55m] @ 3000, 3600) extrapolates from the evaluation time.
        for (eval_min, want) in [
            (50, 76.81818181818181),
            (10, 51.36363636363637),
            (70, 89.54545454545455),
        ] {
            let w = win(&reset, 3_000_000 - 55 * MIN, 3_000_000, &[3600.0]);
            assert_close(
                PredictLinear.eval_at(&w, eval_min * MIN).ok().flatten(),
                want,
            );
        }

        let mut inf = vec![f64::NEG_INFINITY];
        inf.extend(ramp(0.0, 80.0, 10));
        inf.push(f64::INFINITY);
        let inf = series(5 * MIN, &inf);
        assert_close(eval_at(Deriv, &inf, 100 * MIN, 100 * MIN, &[]), f64::NAN);
        assert_close(
            eval_at(PredictLinear, &inf, 100 * MIN, 100 * MIN, &[6000.0]),
            f64::NAN,
        );

        // Constant series: slope 0; constant infinite series: NaN.
        let flat = series(MIN, &[3.0, 3.0, 3.0]);
        assert_close(eval_at(Deriv, &flat, 2 * MIN, 5 * MIN, &[]), 0.0);
        assert_close(
            eval_at(PredictLinear, &flat, 2 * MIN, 5 * MIN, &[100.0]),
            3.0,
        );
        let flat_inf = series(MIN, &[f64::INFINITY; 3]);
        assert_close(eval_at(Deriv, &flat_inf, 2 * MIN, 5 * MIN, &[]), f64::NAN);

        assert_eq!(eval_at(Deriv, &flat, 0, 5 * MIN, &[]), None);
        assert!(matches!(
            PredictLinear.eval(&win(&flat, 0, MIN, &[])),
            Err(KernelError::MissingParameters {
                expected: 1,
                got: 0,
                ..
            })
        ));
    }

    #[test]
    fn changes_and_resets() {
        use RangeFunction::{Changes, Resets};
        let pts = series(MIN, &[1.0, 1.0, 2.0, f64::NAN, f64::NAN, 2.0, 1.0, 3.0]);
        // 1→2, 2→NaN, NaN→2, 2→1, 1→3 (NaN→NaN is no change).
        assert_close(eval_at(Changes, &pts, 7 * MIN, 10 * MIN, &[]), 5.0);
        // 2→1 only (comparisons with NaN are false).
        assert_close(eval_at(Resets, &pts, 7 * MIN, 10 * MIN, &[]), 1.0);
        let single = series(MIN, &[4.0]);
        assert_close(eval_at(Changes, &single, 0, MIN, &[]), 0.0);
        assert_close(eval_at(Resets, &single, 0, MIN, &[]), 0.0);
    }

    #[test]
    fn over_time_aggregations() {
        use RangeFunction::*;
        let s = 10_000;
        let data = series(s, &[2.0, 0.0, 3.0]);
        let some_nan = series(s, &[2.0, 0.0, f64::NAN]);
        let some_nan2 = series(s, &[2.0, f64::NAN, 1.0]);
        let some_nan3 = series(s, &[f64::NAN, 0.0, 1.0]);
        let only_nan = series(s, &[f64::NAN; 3]);
        for (pts, min, max) in [
            (&data, 0.0, 3.0),
            (&some_nan, 0.0, 2.0),
            (&some_nan2, 1.0, 2.0),
            (&some_nan3, 0.0, 1.0),
            (&only_nan, f64::NAN, f64::NAN),
        ] {
            assert_close(eval_at(MinOverTime, pts, MIN, 2 * MIN, &[]), min);
            assert_close(eval_at(MaxOverTime, pts, MIN, 2 * MIN, &[]), max);
        }
        assert_close(eval_at(SumOverTime, &data, MIN, 2 * MIN, &[]), 5.0);
        assert_close(eval_at(CountOverTime, &data, MIN, 2 * MIN, &[]), 3.0);
        assert_close(eval_at(AvgOverTime, &data, MIN, 2 * MIN, &[]), 5.0 / 3.0);
        assert_close(eval_at(LastOverTime, &data, MIN, 2 * MIN, &[]), 3.0);
        assert_close(eval_at(FirstOverTime, &data, MIN, 2 * MIN, &[]), 2.0);
        assert_close(eval_at(PresentOverTime, &data, MIN, 2 * MIN, &[]), 1.0);

        let m = series(s, &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(eval_at(AvgOverTime, &m, 55_000, 10_000, &[]), None);
        assert_close(eval_at(AvgOverTime, &m, 55_000, 20_000, &[]), 5.0);
        assert_close(eval_at(AvgOverTime, &m, 55_000, MIN, &[]), 3.0);
        let big = series(s, &[9.988_465_674_311_58e307; 2]);
        assert_close(
            eval_at(AvgOverTime, &big, 55_000, MIN, &[]),
            9.988_465_674_311_58e307,
        );
        assert_close(eval_at(SumOverTime, &big, 55_000, MIN, &[]), f64::INFINITY);
        let nan11 = series(s, &[1.0, 2.0, 3.0, f64::NAN, f64::NAN]);
        assert_close(eval_at(AvgOverTime, &nan11, 20_000, MIN, &[]), 2.0);
        assert_close(eval_at(AvgOverTime, &nan11, 30_000, MIN, &[]), f64::NAN);
        let cancel = series(s, &[1.0, 1e100, 1.0, -1e100]);
        assert_close(eval_at(SumOverTime, &cancel, MIN, 2 * MIN, &[]), 2.0);
        assert_close(eval_at(AvgOverTime, &cancel, MIN, 2 * MIN, &[]), 0.5);

        // Dense samples: sum_over_time(metric[1001ms]) of 1+0x4000 at 1ms.
        let dense = series(1, &vec![1.0; 4001]);
        for (range, want) in [(1000, 1000.0), (1001, 1001.0), (3003, 3003.0)] {
            assert_close(eval_at(SumOverTime, &dense, 4000, range, &[]), want);
        }
    }

    #[test]
    fn variance_and_deviation() {
        use RangeFunction::*;
        let pts = series(10_000, &[0.0, 8.0, 8.0, 2.0, 3.0]);
        assert_close(eval_at(StdvarOverTime, &pts, MIN, 2 * MIN, &[]), 10.56);
        let sd = eval_at(StddevOverTime, &pts, MIN, 2 * MIN, &[]).unwrap_or(f64::NAN);
        assert!((sd - 3.249615).abs() < 1e-6);
        let c = series(10_000, &[1.5990505637277868; 3]);
        assert_close(eval_at(StdvarOverTime, &c, 55_000, MIN, &[]), 0.0);
        assert_close(eval_at(StddevOverTime, &c, 55_000, MIN, &[]), 0.0);

        let s = 10_000;
        let m = series(s, &[4.0, 6.0, 2.0, 1.0, 999.0, 1.0, 2.0]);
        assert_close(eval_at(MadOverTime, &m, 70_000, 70_000, &[]), 1.0);
        let odd = series(s, &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_close(eval_at(MadOverTime, &odd, 40_000, 50_000, &[]), 1.0);
        let equal = series(s, &[7.0; 5]);
        assert_close(eval_at(MadOverTime, &equal, 40_000, 50_000, &[]), 0.0);
        let single = series(s, &[5.0]);
        assert_close(eval_at(MadOverTime, &single, 0, 10_000, &[]), 0.0);
        let nan = series(s, &[1.0, 2.0, f64::NAN, 4.0]);
        assert_close(eval_at(MadOverTime, &nan, 30_000, 40_000, &[]), f64::NAN);
    }

    #[test]
    fn quantile_over_time() {
        let s = 10_000;
        let two = series(s, &[0.0, 1.0]);
        let three = series(s, &[0.0, 1.0, 2.0]);
        let uneven = series(s, &[0.0, 1.0, 4.0]);
        for (q, w2, w3, wu) in [
            (0.0, 0.0, 0.0, 0.0),
            (0.5, 0.5, 1.0, 1.0),
            (0.75, 0.75, 1.5, 2.5),
            (0.8, 0.8, 1.6, 2.8),
            (1.0, 1.0, 2.0, 4.0),
            (
                -1.0,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ),
            (2.0, f64::INFINITY, f64::INFINITY, f64::INFINITY),
            (f64::NAN, f64::NAN, f64::NAN, f64::NAN),
        ] {
            let f = RangeFunction::QuantileOverTime;
            assert_close(eval_at(f, &two, MIN, 2 * MIN, &[q]), w2);
            assert_close(eval_at(f, &three, MIN, 2 * MIN, &[q]), w3);
            assert_close(eval_at(f, &uneven, MIN, 2 * MIN, &[q]), wu);
        }
    }

    #[test]
    fn timestamps_of_extremes() {
        use RangeFunction::*;
        let step = 10_053;
        let pts = series(step, &[1.0, 2.0, 3.0, 0.0, 5.0, 6.0, 2.0, 1.0, 4.0]);
        assert_close(eval_at(TsOfMinOverTime, &pts, 90_000, 90_000, &[]), 30.159);
        assert_close(eval_at(TsOfMaxOverTime, &pts, 90_000, 90_000, &[]), 50.265);
        let last = series(step, &[1.0, 2.0, 3.0]);
        assert_close(
            eval_at(TsOfLastOverTime, &last, 90_000, 90_000, &[]),
            20.106,
        );
        assert_close(
            eval_at(TsOfFirstOverTime, &last, 90_000, 90_000, &[]),
            10.053,
        );
        // Ties: ts_of_max takes the last maximum, max_over_time's value is the same.
        let ties = series(1000, &[5.0, 1.0, 5.0]);
        assert_close(eval_at(TsOfMaxOverTime, &ties, 2000, 5000, &[]), 2.0);
        assert_close(eval_at(TsOfMinOverTime, &ties, 2000, 5000, &[]), 1.0);
    }

    #[test]
    fn double_exponential_smoothing_values() {
        use RangeFunction::DoubleExponentialSmoothing as Des;
        let s = 10_000;
        let at = 8_000_000;
        let cases: [(Vec<f64>, f64); 8] = [
            (ramp(0.0, 10.0, 1000), 8000.0),
            (ramp(0.0, 20.0, 1000), 16000.0),
            (ramp(0.0, 30.0, 1000), 24000.0),
            (ramp(0.0, 40.0, 2000), 32000.0),
            (ramp(8000.0, -10.0, 1000), 0.0),
            (ramp(0.0, -20.0, 1000), -16000.0),
            (ramp(0.0, 30.0, 1000), 24000.0),
            (ramp(0.0, -40.0, 1000), -32000.0),
        ];
        for (values, want) in cases {
            let pts = series(s, &values);
            assert_close(eval_at(Des, &pts, at, MIN, &[0.01, 0.1]), want);
        }
        let pts = series(s, &ramp(0.0, 10.0, 10));
        assert_eq!(eval_at(Des, &pts, 0, MIN, &[0.5, 0.5]), None);
        // NaN factors are not rejected (they only poison the result).
        assert_close(eval_at(Des, &pts, 50_000, MIN, &[f64::NAN, 0.5]), f64::NAN);
    }

    #[test]
    fn double_exponential_smoothing_errors() {
        use RangeFunction::DoubleExponentialSmoothing as Des;
        let pts = series(10_000, &[1.0, 2.0, 3.0]);
        let run = |sf: f64, tf: f64| Des.eval(&win(&pts, -1, 30_000, &[sf, tf]));
        let err = run(1.0, 0.5).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000")
        );
        let err = run(0.5, 0.0).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid trend factor. Expected: 0 < tf < 1, got: 0.000000")
        );
        let err = run(f64::NEG_INFINITY, 0.5).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid smoothing factor. Expected: 0 < sf < 1, got: -Inf")
        );
        let err = run(0.5, 1.25).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid trend factor. Expected: 0 < tf < 1, got: 1.250000")
        );
        // No samples in the window: no output and no error.
        assert_eq!(Des.eval(&win(&pts, 40_000, 50_000, &[2.0, 2.0])), Ok(None));
        assert!(matches!(
            Des.eval(&win(&pts, -1, 30_000, &[0.5])),
            Err(KernelError::MissingParameters {
                expected: 2,
                got: 1,
                ..
            })
        ));
    }

    #[test]
    fn nothing_panics_on_odd_input() {
        let odd = [
            Point {
                t: i64::MIN,
                v: f64::NAN,
            },
            Point {
                t: -5,
                v: f64::INFINITY,
            },
            Point {
                t: -5,
                v: f64::NEG_INFINITY,
            },
            Point { t: 0, v: 0.0 },
            Point { t: 3, v: -0.0 },
            Point {
                t: i64::MAX,
                v: 1e308,
            },
        ];
        let unsorted = [
            Point { t: 10, v: 1.0 },
            Point { t: 0, v: 2.0 },
            Point { t: 5, v: 3.0 },
        ];
        let params = [0.5, 0.5];
        for f in RangeFunction::ALL {
            for pts in [&odd[..], &unsorted[..], &[]] {
                for (start, end) in [(i64::MIN, i64::MAX), (-10, 10), (0, 0), (5, -5)] {
                    let _ = f.eval(&win(pts, start, end, &params));
                }
            }
        }
    }
}
