//! Per-value math of PromQL's instant-vector functions (`abs`, `ln`, `round`, `clamp`, ...)
//! and the UTC calendar functions (`year`, `day_of_week`, ...).

use std::f64::consts::{LN_2, PI};

/// The one-argument function `name` (`abs`, `ceil`, `floor`, `exp`, `sqrt`, `ln`, `log2`,
/// `log10`, `sgn`, trigonometric and hyperbolic functions and their inverses, `deg`, `rad`).
pub fn simple(name: &str) -> Option<fn(f64) -> f64> {
    let f: fn(f64) -> f64 = match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sgn" => sgn,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => acosh,
        "atanh" => f64::atanh,
        "deg" => deg,
        "rad" => rad,
        _ => return None,
    };
    Some(f)
}

/// -1 for negative, 1 for positive values; 0, -0 and NaN unchanged.
pub fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v
    }
}

/// Radians to degrees (`v * 180 / π`, in that order).
pub fn deg(v: f64) -> f64 {
    v * 180.0 / PI
}

/// Degrees to radians (`v * π / 180`, in that order).
pub fn rad(v: f64) -> f64 {
    v * PI / 180.0
}

/// Inverse hyperbolic cosine, accurate and overflow-free for huge arguments.
pub fn acosh(x: f64) -> f64 {
    const LARGE: f64 = (1u64 << 28) as f64;
    if x.is_nan() || x < 1.0 {
        f64::NAN
    } else if x == 1.0 {
        0.0
    } else if x >= LARGE {
        x.ln() + LN_2
    } else if x > 2.0 {
        (2.0 * x - 1.0 / (x + (x * x - 1.0).sqrt())).ln()
    } else {
        let t = x - 1.0;
        (t + (2.0 * t + t * t).sqrt()).ln_1p()
    }
}

/// `round(v, to_nearest)`: rounds to the nearest multiple of `to_nearest`, ties upward
/// (`floor(v / to_nearest + 0.5) * to_nearest`, computed through the inverse as Prometheus does).
pub fn round(v: f64, to_nearest: f64) -> f64 {
    let inverse = 1.0 / to_nearest;
    (v * inverse + 0.5).floor() / inverse
}

/// `max` with Go's `math.Max` semantics: +Inf wins over everything (even NaN), then NaN wins,
/// and +0 beats -0.
pub fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

/// `min` with Go's `math.Min` semantics: -Inf wins over everything (even NaN), then NaN wins,
/// and -0 beats +0.
pub fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

/// `clamp(v, min, max)`: `None` (no output for any element) when `max < min`, otherwise
/// `max(min, min(max, v))` with Go's NaN/Inf rules (a NaN bound yields NaN).
pub fn clamp(v: f64, min: f64, max: f64) -> Option<f64> {
    if max < min {
        return None;
    }
    Some(go_max(min, go_min(max, v)))
}

/// `clamp_min(v, min)`, i.e. `clamp(v, min, +Inf)`.
pub fn clamp_min(v: f64, min: f64) -> f64 {
    go_max(min, go_min(f64::INFINITY, v))
}

/// `clamp_max(v, max)`, i.e. `clamp(v, -Inf, max)`.
pub fn clamp_max(v: f64, max: f64) -> f64 {
    go_max(f64::NEG_INFINITY, go_min(max, v))
}

/// The calendar function `name` (`minute`, `hour`, `day_of_week`, `day_of_month`,
/// `day_of_year`, `days_in_month`, `month`, `year`) of a Unix time in seconds, in UTC.
///
/// The fractional part is truncated toward zero as Prometheus' `int64(v)` does; NaN, ±Inf and
/// values outside the `i64` range are taken as `i64::MIN` seconds (what that conversion gives on
/// amd64). For the argument-less forms (`year()`), pass the evaluation time in whole seconds
/// (`(t_ms / 1000) as f64`).
pub fn date_part(name: &str) -> Option<fn(f64) -> f64> {
    let f: fn(f64) -> f64 = match name {
        "minute" => |s| f64::from(Civil::from_unix(s).minute),
        "hour" => |s| f64::from(Civil::from_unix(s).hour),
        "day_of_week" => |s| f64::from(Civil::from_unix(s).weekday),
        "day_of_month" => |s| f64::from(Civil::from_unix(s).day),
        "day_of_year" => |s| f64::from(Civil::from_unix(s).day_of_year),
        "days_in_month" => |s| {
            let c = Civil::from_unix(s);
            f64::from(days_in_month(c.year, c.month))
        },
        "month" => |s| f64::from(Civil::from_unix(s).month),
        "year" => |s| Civil::from_unix(s).year as f64,
        _ => return None,
    };
    Some(f)
}

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    day_of_year: u32,
    hour: u32,
    minute: u32,
    /// 0 = Sunday.
    weekday: u32,
}

impl Civil {
    fn from_unix(seconds: f64) -> Self {
        // Go's int64(f) truncates toward zero; amd64 yields i64::MIN for NaN and out-of-range.
        let secs = if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&seconds)
        {
            seconds as i64
        } else {
            i64::MIN
        };
        let days = secs.div_euclid(86_400);
        let second_of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let day_of_year = cumulative_days_before(year, month) + day;
        Civil {
            year,
            month,
            day,
            day_of_year,
            hour: (second_of_day / 3600) as u32,
            minute: (second_of_day % 3600 / 60) as u32,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }
}

/// Proleptic Gregorian (year, month 1-12, day 1-31) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each (March-based) year.
    let z = days as i128 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let mp = (5 * day_of_year + 2) / 153; // [0, 11], March-based
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    (year as i64, month, day)
}

fn is_leap(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn cumulative_days_before(year: i64, month: u32) -> u32 {
    (1..month).map(|m| days_in_month(year, m)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str) -> fn(f64) -> f64 {
        simple(name).unwrap_or_else(|| panic!("missing {name}"))
    }

    fn d(name: &str) -> fn(f64) -> f64 {
        date_part(name).unwrap_or_else(|| panic!("missing {name}"))
    }

    fn close(a: f64, b: f64) -> bool {
        a == b || (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn simple_functions() {
        assert!(simple("nope").is_none());
        assert_eq!(f("abs")(-2.5), 2.5);
        assert_eq!(f("ceil")(1.2), 2.0);
        assert_eq!(f("floor")(-1.2), -2.0);
        assert_eq!(f("log2")(8.0), 3.0);
        assert_eq!(f("log10")(1000.0), 3.0);
        assert_eq!(f("ln")(1.0), 0.0);
        assert!(f("sqrt")(-1.0).is_nan());
        assert_eq!(f("sgn")(f64::NEG_INFINITY), -1.0);
        assert_eq!(f("sgn")(f64::INFINITY), 1.0);
        assert!(f("sgn")(f64::NAN).is_nan());
        assert_eq!(f("sgn")(0.0), 0.0);
        // trig_functions.test
        assert!(close(f("sin")(10.0), -0.5440211108893699));
        assert!(close(f("cos")(20.0), 0.40808206181339196));
        assert!(close(f("tan")(20.0), 2.2371609442247427));
        assert!(close(f("asin")(-0.1), -0.10016742116155944));
        assert!(close(f("acos")(-0.1), 1.670963747956456));
        assert!(close(f("atan")(10.0), 1.4711276743037345));
        assert!(close(f("sinh")(20.0), 2.4258259770489514e8));
        assert!(close(f("cosh")(10.0), 11013.232920103324));
        assert!(close(f("tanh")(10.0), 0.9999999958776927));
        assert!(close(f("asinh")(10.0), 2.99822295029797));
        assert!(close(f("asinh")(20.0), 3.6895038689889055));
        assert!(close(f("acosh")(10.0), 2.993222846126381));
        assert!(close(f("acosh")(20.0), 3.6882538673612966));
        assert!(close(f("acosh")(1e300), 691.4686750787736));
        assert!(close(f("acosh")(1.5), 0.9624236501192069));
        assert!(f("acosh")(0.5).is_nan());
        assert!(close(f("atanh")(-0.1), -0.10033534773107522));
        assert!(f("atanh")(9.9).is_nan());
        assert!(close(f("rad")(10.0), 0.17453292519943295));
        assert!(close(f("deg")(10.0), 572.9577951308232));
        assert!(close(f("deg")(20.0), 1145.9155902616465));
    }

    #[test]
    fn rounding() {
        assert_eq!(round(2.5, 1.0), 3.0);
        assert_eq!(round(-2.5, 1.0), -2.0);
        assert_eq!(round(1.234, 0.1), 1.2);
        assert_eq!(round(17.0, 5.0), 15.0);
        assert_eq!(round(17.5, 5.0), 20.0);
        assert!(round(f64::NAN, 1.0).is_nan());
        assert_eq!(round(f64::INFINITY, 1.0), f64::INFINITY);
    }

    #[test]
    fn clamping() {
        assert_eq!(clamp(-50.0, -25.0, 75.0), Some(-25.0));
        assert_eq!(clamp(100.0, -25.0, 75.0), Some(75.0));
        assert_eq!(clamp(0.0, -25.0, 75.0), Some(0.0));
        assert_eq!(clamp(0.0, 5.0, -5.0), None);
        assert!(clamp(1.0, 0.0, f64::NAN).is_some_and(f64::is_nan));
        assert!(clamp(1.0, f64::NAN, 0.0).is_some_and(f64::is_nan));
        assert!(clamp(f64::NAN, 0.0, 1.0).is_some_and(f64::is_nan));
        assert_eq!(clamp_max(100.0, 75.0), 75.0);
        assert_eq!(clamp_max(-50.0, 75.0), -50.0);
        assert_eq!(clamp_min(-50.0, -25.0), -25.0);
        assert_eq!(clamp_min(100.0, -25.0), 100.0);
        assert!(clamp_min(f64::NAN, 0.0).is_nan());
        assert!(clamp_max(f64::NAN, 0.0).is_nan());
        assert_eq!(go_max(-0.0, 0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(go_min(0.0, -0.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(go_max(f64::NAN, f64::INFINITY), f64::INFINITY);
        assert_eq!(go_min(f64::NAN, f64::NEG_INFINITY), f64::NEG_INFINITY);
    }

    #[test]
    fn dates_from_functions_test() {
        assert_eq!(d("year")(0.0), 1970.0);
        assert_eq!(d("month")(0.0), 1.0);
        assert_eq!(d("day_of_month")(0.0), 1.0);
        assert_eq!(d("day_of_year")(0.0), 1.0);
        assert_eq!(d("day_of_week")(0.0), 4.0);
        assert_eq!(d("hour")(0.0), 0.0);
        assert_eq!(d("minute")(0.0), 0.0);
        let t = 1136239445.0; // 2006-01-02T22:04:05Z, a Monday.
        assert_eq!(d("year")(t), 2006.0);
        assert_eq!(d("month")(t), 1.0);
        assert_eq!(d("day_of_month")(t), 2.0);
        assert_eq!(d("day_of_year")(t), 2.0);
        assert_eq!(d("day_of_week")(t), 1.0);
        assert_eq!(d("hour")(t), 22.0);
        assert_eq!(d("minute")(t), 4.0);
        assert_eq!(d("year")(1230767999.0), 2008.0);
        assert_eq!(d("year")(1230768000.0), 2009.0);
        assert_eq!(d("month")(1456790399.0), 2.0);
        assert_eq!(d("day_of_month")(1456790399.0), 29.0);
        assert_eq!(d("month")(1456790400.0), 3.0);
        assert_eq!(d("day_of_month")(1456790400.0), 1.0);
        assert_eq!(d("day_of_year")(1483191420.0), 366.0);
        assert_eq!(d("day_of_year")(1672493820.0), 365.0);
        assert_eq!(d("days_in_month")(1454284800.0), 29.0);
        assert_eq!(d("days_in_month")(1485907200.0), 28.0);
        assert!(date_part("week").is_none());
    }

    #[test]
    fn dates_edge_cases() {
        // Truncation toward zero: -0.5 s is still 1970-01-01T00:00:00.
        assert_eq!(d("year")(-0.5), 1970.0);
        // -1 s is 1969-12-31T23:59:59, a Wednesday.
        assert_eq!(d("year")(-1.0), 1969.0);
        assert_eq!(d("day_of_year")(-1.0), 365.0);
        assert_eq!(d("hour")(-1.0), 23.0);
        assert_eq!(d("minute")(-1.0), 59.0);
        assert_eq!(d("day_of_week")(-1.0), 3.0);
        // 2000-02-29 (divisible by 400) and 1900 (not a leap year).
        assert_eq!(d("days_in_month")(951782400.0), 29.0);
        assert_eq!(d("days_in_month")(-2206310400.0), 28.0);
        assert_eq!(d("day_of_month")(951782400.0), 29.0);
        // Nothing panics on extreme input.
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, -1e300] {
            for name in [
                "minute",
                "hour",
                "day_of_week",
                "day_of_month",
                "day_of_year",
                "days_in_month",
                "month",
                "year",
            ] {
                assert!(d(name)(v).is_finite());
            }
        }
    }
}
