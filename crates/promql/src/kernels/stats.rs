//! Statistics shared by aggregations and range functions, with Prometheus' numerics: the
//! rank-interpolated quantile, Kahan–Neumaier summation, the overflow-safe mean, and the
//! variance accumulators of `stddev`/`stdvar` and `stddev_over_time`/`stdvar_over_time`.

use std::cmp::Ordering;

/// One step of Kahan–Neumaier summation: adds `inc` to `sum` with compensation `c` and returns
/// the new `(sum, c)`. The compensation is reset to 0 once the sum becomes infinite, so an
/// infinite sum never picks up a NaN from `Inf - Inf` in the compensation term.
pub fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        // Neumaier: the larger of the two operands loses no precision in `t`.
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// A compensated running sum (`sum`, `sum_over_time`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KahanSum {
    sum: f64,
    c: f64,
}

impl KahanSum {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, v: f64) {
        (self.sum, self.c) = kahan_sum_inc(v, self.sum, self.c);
    }

    /// The sum including the compensation term (the bare sum once it is infinite).
    pub fn value(&self) -> f64 {
        if self.sum.is_infinite() {
            self.sum
        } else {
            self.sum + self.c
        }
    }
}

/// The arithmetic mean as Prometheus 3 computes `avg` and `avg_over_time`: a direct
/// Kahan-compensated sum divided by the count for as long as the running sum stays finite, and
/// an incremental (Kahan-compensated) mean from the first value that would overflow the sum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanAccumulator {
    sum: f64,
    c: f64,
    mean: f64,
    count: f64,
    incremental: bool,
}

impl MeanAccumulator {
    /// Starts with the first value.
    pub fn new(first: f64) -> Self {
        Self {
            sum: first,
            c: 0.0,
            mean: first,
            count: 1.0,
            incremental: false,
        }
    }

    pub fn add(&mut self, v: f64) {
        self.count += 1.0;
        let count = self.count;
        if !self.incremental {
            let (sum, c) = kahan_sum_inc(v, self.sum, self.c);
            if !sum.is_infinite() {
                self.sum = sum;
                self.c = c;
                return;
            }
            // The direct sum would overflow: continue with the incremental mean.
            self.incremental = true;
            self.mean = self.sum / (count - 1.0);
            self.c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (self.mean, self.c) = kahan_sum_inc(v / count, q * self.mean, q * self.c);
    }

    pub fn count(&self) -> f64 {
        self.count
    }

    pub fn value(&self) -> f64 {
        if self.incremental {
            self.mean + self.c
        } else {
            self.sum / self.count + self.c / self.count
        }
    }
}

/// The mean of `values` with [`MeanAccumulator`]; NaN for an empty slice.
pub fn mean(values: &[f64]) -> f64 {
    let Some((&first, rest)) = values.split_first() else {
        return f64::NAN;
    };
    let mut acc = MeanAccumulator::new(first);
    for &v in rest {
        acc.add(v);
    }
    acc.value()
}

/// Welford's online variance as the `stddev`/`stdvar` aggregation operators compute it
/// (uncompensated; a group whose first value is NaN or ±Inf has variance NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggrVariance {
    count: f64,
    mean: f64,
    m2: f64,
}

impl AggrVariance {
    /// Starts with the first value.
    pub fn new(first: f64) -> Self {
        Self {
            count: 1.0,
            mean: first,
            m2: if first.is_finite() { 0.0 } else { f64::NAN },
        }
    }

    pub fn add(&mut self, v: f64) {
        self.count += 1.0;
        let delta = v - self.mean;
        self.mean += delta / self.count;
        self.m2 += delta * (v - self.mean);
    }

    /// Population variance (`stdvar`).
    pub fn variance(&self) -> f64 {
        self.m2 / self.count
    }

    /// Population standard deviation (`stddev`).
    pub fn stddev(&self) -> f64 {
        self.variance().sqrt()
    }
}

/// Population variance as `stdvar_over_time` computes it: Welford's algorithm with
/// Kahan-compensated mean and sum of squares. NaN for an empty slice.
pub fn variance_over_time(values: &[f64]) -> f64 {
    let mut count = 0.0;
    let (mut mean, mut c_mean) = (0.0, 0.0);
    let (mut aux, mut c_aux) = (0.0, 0.0);
    for &v in values {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// Orders NaN before every number (Prometheus' "NaN is the smallest value" for quantiles),
/// numbers ascending.
pub fn cmp_nan_first(a: &f64, b: &f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// The φ-quantile of `values` as the `quantile` aggregation and `quantile_over_time` compute
/// it: sort ascending (NaN first), then interpolate linearly between the two values around rank
/// `q * (n - 1)`. NaN for no values or a NaN `q`, -Inf for `q < 0`, +Inf for `q > 1`.
/// `values` is sorted in place.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(cmp_nan_first);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    // Both indexes are in [0, n-1] by construction.
    let lo = values.get(lower as usize).copied().unwrap_or(f64::NAN);
    let hi = values.get(upper as usize).copied().unwrap_or(f64::NAN);
    lo * (1.0 - weight) + hi * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_of(values: &[f64]) -> f64 {
        mean(values)
    }

    #[test]
    fn kahan_sum_keeps_small_terms() {
        // functions.test: sum_over_time of 1 1e100 1 -1e100 is 2.
        let mut s = KahanSum::new();
        for v in [1.0, 1e100, 1.0, -1e100] {
            s.add(v);
        }
        assert_eq!(s.value(), 2.0);
        assert_eq!(mean_of(&[1.0, 1e100, 1.0, -1e100]), 0.5);
    }

    #[test]
    fn kahan_sum_infinities() {
        let mut s = KahanSum::new();
        s.add(f64::INFINITY);
        s.add(1.0);
        assert_eq!(s.value(), f64::INFINITY);
        s.add(f64::NEG_INFINITY);
        assert!(s.value().is_nan());
    }

    #[test]
    fn mean_matches_prometheus_edge_cases() {
        let inf = f64::INFINITY;
        let big = 9.988_465_674_311_58e307;
        assert_eq!(mean_of(&[1.0, 2.0, 3.0, 4.0, 5.0]), 3.0);
        assert_eq!(mean_of(&[1.0, 2.0, 3.0, 4.0, inf]), inf);
        assert_eq!(mean_of(&[1.0, 2.0, 3.0, 4.0, -inf]), -inf);
        assert!(mean_of(&[1.0, 2.0, 3.0, inf, -inf]).is_nan());
        assert_eq!(mean_of(&[inf, 0.0, inf]), inf);
        assert!(mean_of(&[inf, inf, inf, -inf]).is_nan());
        assert_eq!(mean_of(&[1.0, 2.0, 3.0, -inf, -inf]), -inf);
        assert_eq!(mean_of(&[-inf, 0.0, -inf]), -inf);
        assert!(mean_of(&[-inf, -inf, -inf, inf]).is_nan());
        assert!(mean_of(&[1.0, 2.0, -inf, -inf, inf]).is_nan());
        assert_eq!(mean_of(&[big, big]), big);
        assert_eq!(mean_of(&[-big, -big, -big]), -big);
        assert_eq!(mean_of(&[-big, big]), 0.0);
        assert!(mean_of(&[1.0, 2.0, 3.0, f64::NAN, f64::NAN]).is_nan());
        assert!(mean_of(&[]).is_nan());
        // aggregators.test: averaging extreme values.
        assert_eq!(mean_of(&[2.0, 8.0, 1e100, -1e100]), 2.5);
        assert_eq!(mean_of(&[inf, 2.0]), inf);
        assert_eq!(mean_of(&[2.0, inf]), inf);
        assert_eq!(mean_of(&[-inf, 2.0]), -inf);
        assert!(mean_of(&[inf, -inf]).is_nan());
        assert!(mean_of(&[f64::NAN, 2.0]).is_nan());
        assert!(mean_of(&[2.0, f64::NAN]).is_nan());
        assert_eq!(mean_of(&[0.0, inf, inf, 0.0]), inf);
        assert_eq!(mean_of(&[8.0, 10.0, 12.0]), 10.0);
    }

    #[test]
    fn mean_extreme_magnitudes() {
        let close = |a: f64, b: f64| ((a - b) / b).abs() < 1e-6;
        assert!(close(
            mean_of(&[1e10, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6]),
            1.6666666666666675e9
        ));
        assert!(close(
            mean_of(&[
                5.30921651659898,
                0.961118537914768,
                1.62091361305318,
                0.865089463758091,
                0.323055185914577,
                0.951811357687154
            ]),
            1.67186744582113
        ));
        assert!(close(
            mean_of(&[1.78264e50, 0.76342771, 1.9592258, 7.69805412, 458.90154]),
            3.56528e49
        ));
        assert!(close(
            mean_of(&[1.78264e50, 0.76342771, 1.9592258, 2.258e220, 7.69805412, 458.90154]),
            3.76333333333333e219
        ));
        assert!(close(
            mean_of(&[
                -1.78264e215,
                0.76342771,
                1.9592258,
                2.258e220,
                7.69805412,
                1.78264e215,
                -458.90154
            ]),
            3.225714285714286e219
        ));
        assert!(close(
            mean_of(&[
                -1.78264e219,
                0.76342771,
                1.9592258,
                2.3757689e217,
                -2.3757689e217,
                2.258e220,
                7.69805412,
                1.78264e219,
                -458.90154
            ]),
            2.5088888888888888e219
        ));
        // Prometheus (Kahan) comes up with exactly 0 here.
        assert_eq!(
            mean_of(&[
                -2.258e220,
                -1.78264e219,
                0.76342771,
                1.9592258,
                2.3757689e217,
                -2.3757689e217,
                2.258e220,
                7.69805412,
                1.78264e219,
                -458.90154
            ]),
            0.0
        );
        // Direct mean is exact for a constant series.
        for n in 1..=20 {
            assert_eq!(mean_of(&vec![52.0; n]), 52.0);
        }
    }

    #[test]
    fn aggregation_variance() {
        let mut v = AggrVariance::new(1.0);
        v.add(2.0);
        assert_eq!(v.variance(), 0.25);
        assert_eq!(v.stddev(), 0.5);
        let single = AggrVariance::new(7.0);
        assert_eq!(single.variance(), 0.0);
        assert!(AggrVariance::new(f64::INFINITY).variance().is_nan());
        assert!(AggrVariance::new(f64::NAN).variance().is_nan());
        // aggregators.test: stdvar of 0,100,...,700 (two groups of four) is 52500.
        let mut all = AggrVariance::new(100.0);
        for x in [200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0] {
            all.add(x);
        }
        assert_eq!(all.variance(), 52500.0);
        // aggregators.test: a NaN or infinite member makes the group's variance NaN.
        let var = |values: &[f64]| {
            let mut acc = AggrVariance::new(values[0]);
            values[1..].iter().for_each(|&v| acc.add(v));
            acc.variance()
        };
        assert!(var(&[1.0, 2.0, f64::NAN]).is_nan());
        assert!(var(&[f64::NAN, 1.0, 2.0]).is_nan());
        assert!(var(&[1.0, 2.0, f64::INFINITY]).is_nan());
        assert_eq!(var(&[13.3, 13.3, 13.3]), 0.0);
    }

    #[test]
    fn over_time_variance() {
        // functions.test: stdvar_over_time of 0 8 8 2 3 is 10.56.
        let v = variance_over_time(&[0.0, 8.0, 8.0, 2.0, 3.0]);
        assert!((v - 10.56).abs() < 1e-9);
        assert!((v.sqrt() - 3.249615).abs() < 1e-6);
        let c = 1.5990505637277868;
        assert_eq!(variance_over_time(&[c, c, c]), 0.0);
        assert!(variance_over_time(&[]).is_nan());
        assert!(variance_over_time(&[1.0, f64::INFINITY]).is_nan());
    }

    #[test]
    fn quantile_interpolates() {
        let q = |q: f64, v: &[f64]| quantile(q, &mut v.to_vec());
        assert_eq!(q(0.5, &[0.0, 1.0]), 0.5);
        assert_eq!(q(0.75, &[2.0, 0.0, 1.0]), 1.5);
        assert!((q(0.8, &[0.0, 1.0, 4.0]) - 2.8).abs() < 1e-12);
        assert_eq!(q(1.0, &[0.0, 4.0, 1.0]), 4.0);
        assert_eq!(q(0.0, &[3.0, 4.0, 1.0]), 1.0);
        assert_eq!(q(-1.0, &[1.0]), f64::NEG_INFINITY);
        assert_eq!(q(2.0, &[1.0]), f64::INFINITY);
        assert!(q(f64::NAN, &[1.0]).is_nan());
        assert!(q(0.5, &[]).is_nan());
        // aggregators.test: NaN is the smallest value.
        assert!((q(0.8, &[0.0, 1.0, f64::NAN]) - 0.6).abs() < 1e-12);
        assert!(q(0.2, &[0.0, 1.0, f64::NAN]).is_nan());
        assert_eq!(q(0.5, &[f64::NAN, f64::NAN, 1.0, 2.0, 3.0]), 1.0);
    }
}
