//! Float formatting as Go prints it: the API's sample values (`strconv.FormatFloat(f, 'f',
//! -1, 64)` with `NaN`, `+Inf`, `-Inf`) and the `%v` form Prometheus' messages use.

/// Shortest round-trip decimal without exponent; `NaN`, `+Inf`, `-Inf` as Prometheus writes
/// them in count_values labels (the parser's number printer: Go's `FormatFloat(v, 'f', -1)`).
pub fn go_float_f(v: f64) -> String {
    vigil_promql_parser::format_number(v)
}

/// A sample value as Prometheus' JSON writes it: like [`go_float_f`], but in exponent form
/// (`1.5e+21`, `1.25e-07`) when the magnitude is below 1e-6 or at least 1e21.
pub fn go_float_json(v: f64) -> String {
    let abs = v.abs();
    if v.is_finite() && abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let sci = format!("{v:e}");
        let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    go_float_f(v)
}

/// Appends [`go_float_json`] of `v` to `out`. Integral values (most samples: counters, byte
/// gauges) take a fast path: below 1e15 their shortest form is their integer digits.
pub fn push_go_float_json(out: &mut String, v: f64) {
    const EXACT: f64 = 1e15;
    let magnitude = v.abs();
    if magnitude < EXACT {
        // In range: the conversion is exact, and integral values come back unchanged.
        let integral = v as i64;
        if integral as f64 == v && !(v == 0.0 && v.is_sign_negative()) {
            out.push_str(itoa::Buffer::new().format(integral));
            return;
        }
        if magnitude >= 1e-4 {
            // zmij prints the shortest round-trip digits as Go does, ties to even included
            // (where `go_float_json`, through Rust's formatter, rounds a tie up), several times
            // faster; between 1e-5 and 1e16 it writes them as a plain decimal, Go's 'f' form.
            out.push_str(zmij::Buffer::new().format_finite(v));
            return;
        }
    }
    out.push_str(&go_float_json(v));
}

/// Go's `%v` for a float64: shortest digits, exponent form when the exponent is below -4 or
/// at least max(precision 6 rule), e.g. `1e+06`, `0.5`, `1.5e-05`.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest digits and decimal exponent from Rust's `{:e}` form, e.g. "1.2345e6".
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut eprec = 6;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    let sign = if v < 0.0 { "-" } else { "" };
    if exp < -4 || exp >= eprec {
        let mut m = digits[..1].to_string();
        if nd > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let es = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{es}{:02}", exp.abs())
    } else {
        format!("{sign}{}", v.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_json_floats_equal_the_formatted_ones() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -7.0,
            8589934592.0,
            999999999999999.0,
            1e15,
            -1e15,
            1e21,
            123456789012345680000.0,
            0.5,
            -2.25,
            1e-7,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let mut out = String::from("x");
            push_go_float_json(&mut out, v);
            assert_eq!(out, format!("x{}", go_float_json(v)), "{v:?}");
        }
        // Random bit patterns and random decimals of every magnitude.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ties = 0;
        for i in 0..200_000 {
            let v = match i % 3 {
                0 => f64::from_bits(next()),
                1 => (next() % 1_000_000) as f64 / 10f64.powi((next() % 12) as i32),
                _ => (next() >> 11) as f64 * 2f64.powi((next() % 120) as i32 - 80),
            };
            let mut out = String::new();
            push_go_float_json(&mut out, v);
            let reference = go_float_json(v);
            if out != reference {
                // Only an exact tie between two shortest forms may differ: Go (and zmij) take
                // the even last digit, Rust's formatter the upper one.
                let last = |s: &str| s.bytes().last().map_or(0, |b| b - b'0');
                assert_eq!(out.len(), reference.len(), "{v:?}: {out} vs {reference}");
                assert_eq!(out.parse::<f64>().ok(), Some(v), "{v:?}: {out}");
                assert_eq!(last(&out) % 2, 0, "{v:?}: {out} vs {reference}");
                assert_eq!(
                    last(&out) + 1,
                    last(&reference),
                    "{v:?}: {out} vs {reference}"
                );
                ties += 1;
            }
        }
        // Exact binary fractions (the third kind above) make ties common.
        assert!(ties > 0);
        // Go's strconv.FormatFloat(916214536673009.25, 'f', -1, 64): the tie goes to even.
        let mut out = String::new();
        // (Written as text: the exact value has more digits than a float literal should show.)
        let tie: f64 = "916214536673009.25".parse().unwrap();
        push_go_float_json(&mut out, tie);
        assert_eq!(out, "916214536673009.2");
    }

    #[test]
    fn go_formats() {
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(-2.5), "-2.5");
        assert_eq!(go_float_f(1e21), "1000000000000000000000");
        assert_eq!(go_float_f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(go_float_f(0.1), "0.1");
        assert_eq!(go_float_json(1.5e21), "1.5e+21");
        assert_eq!(go_float_json(1.25e-7), "1.25e-07");
        assert_eq!(
            go_float_json(-1.7857142857142856e-8),
            "-1.7857142857142856e-08"
        );
        assert_eq!(go_float_json(123.5), "123.5");
        assert_eq!(go_float_json(0.0), "0");
        assert_eq!(go_float_json(f64::NAN), "NaN");
    }
}
