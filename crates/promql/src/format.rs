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
