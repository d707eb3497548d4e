//! Classic (`le`-bucketed) histograms: `histogram_quantile` and `histogram_fraction` over one
//! group of cumulative buckets, as Prometheus 3 computes them.

/// One cumulative bucket of a classic histogram: the number of observations `<= upper_bound`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub upper_bound: f64,
    pub count: f64,
}

/// Relative difference between neighbouring bucket counts below which the difference is taken
/// for a floating-point artefact and silently ignored.
pub const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// What [`bucket_quantile`] had to repair in its input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketQuantileFlags {
    /// A bucket count was lower than a previous one and was raised: the evaluator reports the
    /// info annotation "input to histogram_quantile needed to be fixed for monotonicity".
    pub forced_monotonic: bool,
    /// Numerically insignificant differences between buckets were ignored (no annotation).
    pub fixed_precision: bool,
    /// Lowest upper bound whose count had to be raised (+Inf when none was; 0 when the check
    /// did not run because `q` or the bucket set was rejected first).
    pub min_bucket: f64,
    /// Highest upper bound whose count had to be raised (-Inf when none was; 0 when the check
    /// did not run).
    pub max_bucket: f64,
    /// Largest count decrease that had to be removed.
    pub max_diff: f64,
}

impl Default for BucketQuantileFlags {
    fn default() -> Self {
        Self {
            forced_monotonic: false,
            fixed_precision: false,
            min_bucket: 0.0,
            max_bucket: 0.0,
            max_diff: 0.0,
        }
    }
}

/// `histogram_quantile(q, ...)` over one classic histogram.
///
/// Buckets are sorted by upper bound, buckets with equal bounds are merged, tiny relative
/// differences are ignored and decreases are removed (reported in the flags). Then the bucket
/// holding rank `q * total` is found and the result interpolated linearly inside it; the lowest
/// bucket starts at 0 if its upper bound is positive (otherwise its upper bound is the answer),
/// and a rank in the +Inf bucket answers the second-highest upper bound.
///
/// NaN when `q` is NaN, there is no +Inf bucket, fewer than two buckets remain after merging, or
/// the total count is 0; -Inf for `q < 0`; +Inf for `q > 1`. `buckets` is sorted and may be
/// shortened in place.
pub fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, BucketQuantileFlags) {
    let mut flags = BucketQuantileFlags::default();
    if q.is_nan() {
        return (f64::NAN, flags);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, flags);
    }
    if q > 1.0 {
        return (f64::INFINITY, flags);
    }
    if !sort_and_check_inf(buckets) {
        return (f64::NAN, flags);
    }
    coalesce(buckets);
    flags = ensure_monotonic(buckets, SMALL_DELTA_TOLERANCE);

    let n = buckets.len();
    if n < 2 {
        return (f64::NAN, flags);
    }
    let observations = buckets[n - 1].count;
    if observations == 0.0 {
        return (f64::NAN, flags);
    }
    let rank = q * observations;
    // First bucket (the +Inf one excluded) whose cumulative count reaches the rank.
    let b = go_search(n - 1, |i| buckets[i].count >= rank);
    if b == n - 1 {
        return (buckets[n - 2].upper_bound, flags);
    }
    if b == 0 && buckets[0].upper_bound <= 0.0 {
        return (buckets[0].upper_bound, flags);
    }
    let bucket_end = buckets[b].upper_bound;
    let mut bucket_start = 0.0;
    let mut count = buckets[b].count;
    let mut rank = rank;
    if b > 0 {
        bucket_start = buckets[b - 1].upper_bound;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (
        bucket_start + (bucket_end - bucket_start) * (rank / count),
        flags,
    )
}

/// `histogram_fraction(lower, upper, ...)` over one classic histogram: the estimated fraction of
/// observations in `(lower, upper]`, interpolating linearly inside buckets. The lowest bucket
/// starts at 0 if its upper bound is positive, else at -Inf; a bucket with an infinite bound
/// contributes nothing to a partially covered range.
///
/// NaN when there are no buckets, no +Inf bucket, the total count is 0, or a bound is NaN; 0 when
/// `lower >= upper`. `buckets` is sorted and may be shortened in place.
pub fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    if !sort_and_check_inf(buckets) {
        return f64::NAN;
    }
    coalesce(buckets);
    let total = match buckets.last() {
        Some(b) => b.count,
        None => return f64::NAN,
    };
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }

    let mut rank = 0.0;
    let mut lower_rank: Option<f64> = None;
    let mut upper_rank: Option<f64> = None;
    let first_upper = buckets.first().map_or(0.0, |b| b.upper_bound);
    let mut lower_bound = if first_upper <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };

    for (i, b) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].upper_bound;
        }
        let upper_bound = b.upper_bound;
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                b.count
            } else {
                rank + (b.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };

        if lower_rank.is_none() && lower_bound >= lower {
            lower_rank = Some(rank);
        }
        if upper_rank.is_none() && lower_bound >= upper {
            upper_rank = Some(rank);
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        if lower_rank.is_none() && lower_bound < lower && upper_bound > lower {
            lower_rank = Some(interpolate(lower));
        }
        if upper_rank.is_none() && lower_bound < upper && upper_bound > upper {
            upper_rank = Some(interpolate(upper));
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        // Counts are cumulative: the rank at the next lower bound is this bucket's count.
        rank = b.count;
    }
    let clamp = |r: Option<f64>| match r {
        Some(r) if r <= total => r,
        _ => total,
    };
    (clamp(upper_rank) - clamp(lower_rank)) / total
}

/// The smallest `i` in `0..n` for which `f(i)` holds, by the same bisection as Go's
/// `sort.Search` (so a non-monotonic predicate, e.g. from NaN counts, lands where Go's does);
/// `n` if there is none.
fn go_search(n: usize, f: impl Fn(usize) -> bool) -> usize {
    let (mut i, mut j) = (0, n);
    while i < j {
        let h = i + (j - i) / 2;
        if f(h) {
            j = h;
        } else {
            i = h + 1;
        }
    }
    i
}

/// Sorts by upper bound; false when there is no bucket or the highest bound is not +Inf.
fn sort_and_check_inf(buckets: &mut [Bucket]) -> bool {
    buckets.sort_by(|a, b| a.upper_bound.total_cmp(&b.upper_bound));
    buckets
        .last()
        .is_some_and(|b| b.upper_bound == f64::INFINITY)
}

/// Merges neighbouring buckets with equal upper bounds (input sorted), summing their counts.
fn coalesce(buckets: &mut Vec<Bucket>) {
    buckets.dedup_by(|next, kept| {
        if next.upper_bound == kept.upper_bound {
            kept.count += next.count;
            true
        } else {
            false
        }
    });
}

/// Makes counts non-decreasing: differences within the relative `tolerance` are ignored in
/// either direction, and a count below the last accepted one is raised to it.
fn ensure_monotonic(buckets: &mut [Bucket], tolerance: f64) -> BucketQuantileFlags {
    let mut flags = BucketQuantileFlags {
        min_bucket: f64::INFINITY,
        max_bucket: f64::NEG_INFINITY,
        ..BucketQuantileFlags::default()
    };
    let Some(first) = buckets.first() else {
        return flags;
    };
    let mut prev = first.count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, tolerance) {
            b.count = prev;
            flags.fixed_precision = true;
            continue;
        }
        if curr < prev {
            b.count = prev;
            flags.forced_monotonic = true;
            if b.upper_bound < flags.min_bucket {
                flags.min_bucket = b.upper_bound;
            }
            if b.upper_bound > flags.max_bucket {
                flags.max_bucket = b.upper_bound;
            }
            let diff = prev - curr;
            if diff > flags.max_diff {
                flags.max_diff = diff;
            }
            continue;
        }
        prev = curr;
    }
    flags
}

/// Whether `a` and `b` differ by less than `epsilon` relative to their magnitude (absolute
/// comparison against the smallest normal number near zero); two NaNs count as equal.
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bk(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs
            .iter()
            .map(|&(upper_bound, count)| Bucket { upper_bound, count })
            .collect()
    }

    const INF: f64 = f64::INFINITY;

    fn close(a: f64, b: f64) -> bool {
        a == b || (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn quantile_testhistogram2() {
        // histograms.test: q(1/6), q(1/2), q(5/6) are 1, 3, 5 (counts scaled by 10 at 50m).
        let base = [
            (0.0, 0.0),
            (2.0, 10.0),
            (4.0, 20.0),
            (6.0, 30.0),
            (INF, 30.0),
        ];
        for (q, want) in [(1.0 / 6.0, 1.0), (0.5, 3.0), (5.0 / 6.0, 5.0), (0.0, 0.0)] {
            let (v, flags) = bucket_quantile(q, &mut bk(&base));
            assert!(close(v, want), "q={q}: {v} != {want}");
            assert!(!flags.forced_monotonic);
        }
        // Rank in the +Inf bucket: second-highest bound.
        let (v, _) = bucket_quantile(1.0, &mut bk(&[(1.0, 1.0), (INF, 2.0)]));
        assert_eq!(v, 1.0);
    }

    #[test]
    fn quantile_lowest_bucket() {
        // testhistogram (start="positive") at 50m: counts 50 70 110 120.
        let pos = [(0.1, 50.0), (0.2, 70.0), (1.0, 110.0), (INF, 120.0)];
        let (v, _) = bucket_quantile(0.25, &mut bk(&pos));
        assert!(close(v, 0.06), "{v}");
        // Lowest bucket with a non-positive bound answers that bound.
        let neg = [(-0.2, 10.0), (-0.1, 20.0), (0.3, 20.0), (INF, 30.0)];
        let (v, _) = bucket_quantile(0.1, &mut bk(&neg));
        assert_eq!(v, -0.2);
        let (v, _) = bucket_quantile(0.5, &mut bk(&neg));
        assert!(close(v, -0.15), "{v}");
        let (v, _) = bucket_quantile(0.9, &mut bk(&neg));
        assert_eq!(v, 0.3);
        // testhistogram3 at 50m.
        let pos3 = [
            (0.0, 0.0),
            (0.1, 50.0),
            (0.2, 70.0),
            (1.0, 110.0),
            (INF, 110.0),
        ];
        let neg3 = [
            (-0.25, 0.0),
            (-0.2, 10.0),
            (-0.1, 20.0),
            (0.3, 20.0),
            (INF, 20.0),
        ];
        for (q, want_pos, want_neg) in [
            (0.0, 0.0, -0.25),
            (0.25, 0.055, -0.225),
            (0.5, 0.125, -0.2),
            (0.75, 0.45, -0.15),
            (1.0, 1.0, -0.1),
        ] {
            let (v, _) = bucket_quantile(q, &mut bk(&pos3));
            assert!(close(v, want_pos), "q={q}: {v} != {want_pos}");
            let (v, _) = bucket_quantile(q, &mut bk(&neg3));
            assert!(close(v, want_neg), "q={q}: {v} != {want_neg}");
        }
    }

    #[test]
    fn quantile_special_cases() {
        let good = [(1.0, 1.0), (INF, 2.0)];
        assert!(bucket_quantile(f64::NAN, &mut bk(&good)).0.is_nan());
        assert_eq!(bucket_quantile(-0.1, &mut bk(&good)).0, f64::NEG_INFINITY);
        assert_eq!(bucket_quantile(1.1, &mut bk(&good)).0, INF);
        // No +Inf bucket.
        assert!(bucket_quantile(0.5, &mut bk(&[(1.0, 1.0), (2.0, 2.0)]))
            .0
            .is_nan());
        // Only the +Inf bucket.
        assert!(bucket_quantile(0.5, &mut bk(&[(INF, 2.0)])).0.is_nan());
        // Zero observations.
        assert!(bucket_quantile(0.5, &mut bk(&[(1.0, 0.0), (INF, 0.0)]))
            .0
            .is_nan());
        // Empty input.
        assert!(bucket_quantile(0.5, &mut Vec::new()).0.is_nan());
        // Unsorted input and duplicate bounds are handled.
        let (v, _) = bucket_quantile(
            0.5,
            &mut bk(&[(INF, 4.0), (2.0, 2.0), (1.0, 1.0), (2.0, 1.0)]),
        );
        assert!(close(v, 1.5), "{v}");
        // NaN bounds never panic.
        let _ = bucket_quantile(
            0.5,
            &mut bk(&[(f64::NAN, 1.0), (INF, 2.0), (1.0, f64::NAN)]),
        );
    }

    #[test]
    fn quantile_forced_monotonic() {
        // histograms.test nonmonotonic_bucket at 50m (0+Nx10 at step 10).
        let base = [
            (0.1, 20.0),
            (1.0, 10.0),
            (10.0, 50.0),
            (100.0, 40.0),
            (1000.0, 90.0),
            (INF, 80.0),
        ];
        let (v, flags) = bucket_quantile(0.01, &mut bk(&base));
        assert!(close(v, 0.0045), "{v}");
        assert!(flags.forced_monotonic);
        assert_eq!(flags.min_bucket, 1.0);
        assert_eq!(flags.max_bucket, INF);
        assert_eq!(flags.max_diff, 10.0);
        let (v, _) = bucket_quantile(0.5, &mut bk(&base));
        assert!(close(v, 8.5), "{v}");
        let (v, _) = bucket_quantile(0.99, &mut bk(&base));
        assert!(close(v, 979.75), "{v}");
    }

    #[test]
    fn quantile_ignores_tiny_deltas() {
        let (v, flags) = bucket_quantile(
            0.5,
            &mut bk(&[(1.0, 10.0), (2.0, 10.0 - 1e-14), (INF, 20.0)]),
        );
        assert!(!flags.forced_monotonic);
        assert!(flags.fixed_precision);
        assert!(close(v, 1.0), "{v}");
    }

    #[test]
    fn fraction_cases_from_histograms_test() {
        let h2 = [
            (0.0, 0.0),
            (2.0, 10.0),
            (4.0, 20.0),
            (6.0, 30.0),
            (INF, 30.0),
        ];
        assert!(close(bucket_fraction(0.0, 4.0, &mut bk(&h2)), 2.0 / 3.0));
        assert!(close(bucket_fraction(0.0, 6.0, &mut bk(&h2)), 1.0));
        assert!(close(
            bucket_fraction(0.0, 3.5, &mut bk(&h2)),
            0.5833333333333334
        ));

        let pos = [(1.0, 1.0), (2.0, 3.0), (3.0, 6.0), (INF, 100.0)];
        assert!(close(bucket_fraction(0.0, 1.5, &mut bk(&pos)), 0.02));
        assert!(close(
            bucket_fraction(f64::NEG_INFINITY, INF, &mut bk(&pos)),
            1.0
        ));
        assert!(close(bucket_fraction(4.0, 5.0, &mut bk(&pos)), 0.0));
        assert!(close(bucket_fraction(2.0, 5.0, &mut bk(&pos)), 0.03));
        assert!(close(bucket_fraction(400.0, INF, &mut bk(&pos)), 0.94));
        assert_eq!(bucket_fraction(2.0, 2.0, &mut bk(&pos)), 0.0);
        assert_eq!(bucket_fraction(3.0, 2.0, &mut bk(&pos)), 0.0);
        assert!(bucket_fraction(f64::NAN, 1.0, &mut bk(&pos)).is_nan());
        assert!(bucket_fraction(0.0, f64::NAN, &mut bk(&pos)).is_nan());

        let neg = [(-3.0, 10.0), (-2.0, 12.0), (-1.0, 15.0), (INF, 100.0)];
        assert!(close(bucket_fraction(-4.0, -2.0, &mut bk(&neg)), 0.02));
        assert!(close(
            bucket_fraction(f64::NEG_INFINITY, -1.5, &mut bk(&neg)),
            0.135
        ));
        assert!(close(
            bucket_fraction(f64::NEG_INFINITY, INF, &mut bk(&neg)),
            1.0
        ));
        assert!(close(bucket_fraction(0.0, 1.0, &mut bk(&neg)), 0.0));

        assert!(close(
            bucket_fraction(0.0, 1.0, &mut bk(&[(INF, 100.0)])),
            0.0
        ));
        assert!(bucket_fraction(0.0, 5.0, &mut bk(&[(1.0, 0.0), (INF, 0.0)])).is_nan());
        assert!(bucket_fraction(0.0, 5.0, &mut Vec::new()).is_nan());
        assert!(bucket_fraction(0.0, 5.0, &mut bk(&[(1.0, 1.0)])).is_nan());
    }

    #[test]
    fn almost_equal_semantics() {
        assert!(almost_equal(f64::NAN, f64::NAN, 1e-12));
        assert!(almost_equal(1.0, 1.0 + 1e-15, 1e-12));
        assert!(!almost_equal(1.0, 1.0 + 1e-9, 1e-12));
        assert!(!almost_equal(0.0, 1e-300, 1e-12));
    }
}
