//! Durations and byte sizes as LogQL writes them: Go's `time.ParseDuration` and
//! `Duration.String`, Prometheus' `model.ParseDuration` and `model.Duration.String`, and
//! go-humanize's `ParseBytes`/`Bytes`, with the same error texts.

const NS_PER_US: u64 = 1_000;
const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;
const NS_PER_M: u64 = 60 * NS_PER_S;
const NS_PER_H: u64 = 60 * NS_PER_M;
const NS_PER_D: u64 = 24 * NS_PER_H;
const NS_PER_W: u64 = 7 * NS_PER_D;
const NS_PER_Y: u64 = 365 * NS_PER_D;

/// A duration in nanoseconds as Loki accepts it in queries: Prometheus syntax (`5m`, `1h30m`,
/// `2d`, `1w`, `1y`), else Go's `time.ParseDuration` syntax (`1.5s`, `850us`, `µs`, `-5m`,
/// `1m30s`), where the units `d`, `w` and `y` are also accepted. On failure, Go's error text
/// (`time: unknown unit "x" in duration "5x"`).
///
/// For label values compared by a duration label filter, Loki uses Go's syntax alone:
/// see [`parse_go_duration`].
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(ns) = parse_prom_duration(s) {
        return Ok(ns);
    }
    go_duration(s, true)
}

/// Go's `time.ParseDuration`, exactly: units `ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`,
/// fractions, a sign, and Go's error texts (`time: invalid duration "abc"`).
pub fn parse_go_duration(s: &str) -> Result<i64, String> {
    go_duration(s, false)
}

/// Prometheus' `model.ParseDuration` (what Loki uses for `[range]`): integers with the units
/// `y`, `w`, `d`, `h`, `m`, `s`, `ms`, each at most once and from the largest to the smallest.
pub fn parse_prom_duration(s: &str) -> Result<i64, String> {
    match s {
        "0" => return Ok(0),
        "" => return Err("empty duration string".to_string()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {}", go_quote(s));
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut last_pos = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            return Err(invalid());
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let v: u64 = s[start..i].parse().map_err(|_| invalid())?;
        let ustart = i;
        while i < b.len() && !b[i].is_ascii_digit() {
            i += 1;
        }
        if i == ustart {
            return Err(invalid());
        }
        let unit = &s[ustart..i];
        let (pos, mult) = match unit {
            "y" => (1, NS_PER_Y),
            "w" => (2, NS_PER_W),
            "d" => (3, NS_PER_D),
            "h" => (4, NS_PER_H),
            "m" => (5, NS_PER_M),
            "s" => (6, NS_PER_S),
            "ms" => (7, NS_PER_MS),
            _ => {
                return Err(format!(
                    "unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(s)
                ))
            }
        };
        if pos <= last_pos {
            return Err(invalid());
        }
        last_pos = pos;
        if v > (1u64 << 63) / mult {
            return Err("duration out of range".to_string());
        }
        total += v * mult;
        if total > (1u64 << 63) - 1 {
            return Err("duration out of range".to_string());
        }
    }
    Ok(total as i64)
}

fn go_unit(u: &str, extended: bool) -> Option<u64> {
    Some(match u {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => NS_PER_US,
        "ms" => NS_PER_MS,
        "s" => NS_PER_S,
        "m" => NS_PER_M,
        "h" => NS_PER_H,
        "d" if extended => NS_PER_D,
        "w" if extended => NS_PER_W,
        "y" if extended => NS_PER_Y,
        _ => return None,
    })
}

fn go_duration(orig: &str, extended: bool) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", time_quote(orig));
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            s = &s[1..];
        }
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // leading integer
        let mut v: u64 = 0;
        let mut i = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            if v > (1u64 << 63) / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(s[i] - b'0');
            if v > 1u64 << 63 {
                return Err(invalid());
            }
            i += 1;
        }
        let pre = i > 0;
        s = &s[i..];
        // fraction
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let mut i = 0;
            let mut overflow = false;
            while i < s.len() && s[i].is_ascii_digit() {
                if !overflow {
                    if f > ((1u64 << 63) - 1) / 10 {
                        overflow = true;
                    } else {
                        let y = f * 10 + u64::from(s[i] - b'0');
                        if y > 1u64 << 63 {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10.0;
                        }
                    }
                }
                i += 1;
            }
            post = i > 0;
            s = &s[i..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // unit
        let mut i = 0;
        while i < s.len() && !(s[i] == b'.' || s[i].is_ascii_digit()) {
            i += 1;
        }
        if i == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                time_quote(orig)
            ));
        }
        let u = String::from_utf8_lossy(&s[..i]).into_owned();
        s = &s[i..];
        let Some(unit) = go_unit(&u, extended) else {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                time_quote(&u),
                time_quote(orig)
            ));
        };
        if v > (1u64 << 63) / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > 1u64 << 63 {
                return Err(invalid());
            }
        }
        d += v;
        if d > 1u64 << 63 {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((d as i64).wrapping_neg());
    }
    if d > (1u64 << 63) - 1 {
        return Err(invalid());
    }
    Ok(d as i64)
}

/// Go's `time.quote`: non-ASCII and control bytes as `\xNN`.
fn time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if (c as u32) >= 0x80 || c < ' ' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

fn go_quote(s: &str) -> String {
    crate::format::quote(s)
}

/// A duration as Prometheus' `model.Duration` prints it (what Loki prints in `[range]`):
/// `5m`, `1h30m`, `1m30s`, `10ms`, `2w`, `0s`. Below a millisecond is dropped.
pub fn format_duration(ns: i64) -> String {
    let mut ms = ns / NS_PER_MS as i64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let units: [(&str, i64, bool); 7] = [
        ("y", 1000 * 60 * 60 * 24 * 365, true),
        ("w", 1000 * 60 * 60 * 24 * 7, true),
        ("d", 1000 * 60 * 60 * 24, false),
        ("h", 1000 * 60 * 60, false),
        ("m", 1000 * 60, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in units {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    out
}

/// A duration as Go's `time.Duration.String` prints it (what Loki prints after `offset` and
/// in duration label filters): `5m0s`, `1h30m0s`, `1.5s`, `250ms`, `1µs`, `0s`.
pub fn format_go_duration(ns: i64) -> String {
    let neg = ns < 0;
    let mut u = ns.unsigned_abs();
    let mut out: Vec<u8> = Vec::with_capacity(32);
    // Built back to front, as Go does.
    if u < NS_PER_S {
        let prec;
        out.push(b's');
        if u == 0 {
            return "0s".to_string();
        } else if u < NS_PER_US {
            prec = 0;
            out.push(b'n');
        } else if u < NS_PER_MS {
            prec = 3;
            // "µ" (U+00B5) reversed byte-wise: 0xB5 then 0xC2.
            out.push(0xB5);
            out.push(0xC2);
        } else {
            prec = 6;
            out.push(b'm');
        }
        u = fmt_frac(&mut out, u, prec);
        fmt_int(&mut out, u);
    } else {
        out.push(b's');
        u = fmt_frac(&mut out, u, 9);
        fmt_int(&mut out, u % 60);
        u /= 60;
        if u > 0 {
            out.push(b'm');
            fmt_int(&mut out, u % 60);
            u /= 60;
            if u > 0 {
                out.push(b'h');
                fmt_int(&mut out, u);
            }
        }
    }
    if neg {
        out.push(b'-');
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends (reversed) the fraction of `v / 10^prec` without trailing zeros; returns `v / 10^prec`.
fn fmt_frac(out: &mut Vec<u8>, mut v: u64, prec: usize) -> u64 {
    let mut print = false;
    for _ in 0..prec {
        let digit = v % 10;
        print = print || digit != 0;
        if print {
            out.push(digit as u8 + b'0');
        }
        v /= 10;
    }
    if print {
        out.push(b'.');
    }
    v
}

fn fmt_int(out: &mut Vec<u8>, mut v: u64) {
    if v == 0 {
        out.push(b'0');
        return;
    }
    while v > 0 {
        out.push((v % 10) as u8 + b'0');
        v /= 10;
    }
}

fn bytes_multiplier(unit: &str) -> Option<f64> {
    const K: f64 = 1000.0;
    const KI: f64 = 1024.0;
    Some(match unit {
        "" | "b" => 1.0,
        "k" | "kb" => K,
        "ki" | "kib" => KI,
        "m" | "mb" => K * K,
        "mi" | "mib" => KI * KI,
        "g" | "gb" => K * K * K,
        "gi" | "gib" => KI * KI * KI,
        "t" | "tb" => K * K * K * K,
        "ti" | "tib" => KI * KI * KI * KI,
        "p" | "pb" => K * K * K * K * K,
        "pi" | "pib" => KI * KI * KI * KI * KI,
        "e" | "eb" => K * K * K * K * K * K,
        "ei" | "eib" => KI * KI * KI * KI * KI * KI,
        _ => return None,
    })
}

/// go-humanize's `ParseBytes`: a number (commas allowed) and an optional unit, case-insensitive,
/// maybe separated by spaces: `190B`, `2.4KB` (2400), `1.1KiB` (1126.4), `1.7 MB`, `k`/`kb` =
/// 1000, `ki`/`kib` = 1024, up to `E`/`EiB`; a plain number is bytes. Unlike go-humanize (which
/// truncates to an unsigned integer) the fraction is kept.
pub fn parse_bytes(s: &str) -> Result<f64, String> {
    let end = s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.' || c == ','))
        .map_or(s.len(), |(i, _)| i);
    let num: String = s[..end].chars().filter(|&c| c != ',').collect();
    let f = parse_go_float(&num)?;
    let extra = s[end..].trim().to_lowercase();
    match bytes_multiplier(&extra) {
        Some(m) => {
            let v = f * m;
            if v >= u64::MAX as f64 {
                return Err(format!("too large: {s}"));
            }
            Ok(v)
        }
        None => Err(format!("unhandled size name: {extra}")),
    }
}

/// Decimal float parsing with `strconv.ParseFloat`'s error text.
fn parse_go_float(s: &str) -> Result<f64, String> {
    let ok = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1
        && s != ".";
    match (ok, s.parse::<f64>()) {
        (true, Ok(v)) => Ok(v),
        _ => Err(format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(s)
        )),
    }
}

/// The size a byte label filter compares with in Loki. Loki's query frontend hands the query on
/// as printed text, and a size prints in go-humanize's rounded SI form (`humanize_bytes`), so
/// `size <= 1KiB` filters at 1000 bytes (`1.0kB`) and `10KiB` at 10 kB. Loki's lexer truncates
/// the size to whole bytes first. Sizes below 10 bytes print exactly.
pub fn loki_printed_bytes(bytes: f64) -> f64 {
    if !(bytes >= 0.0 && bytes < u64::MAX as f64) {
        return bytes;
    }
    let printed = humanize_bytes(bytes as u64);
    parse_bytes(&printed).map_or(bytes, f64::trunc)
}

/// go-humanize's `Bytes` (SI units, one decimal below 10) without the space: `1.0kB`, `100kB`,
/// `5B`. Loki prints byte label filters this way.
pub fn humanize_bytes(v: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if v < 10 {
        return format!("{v}B");
    }
    let e = ((v as f64).ln() / 1000f64.ln()).floor();
    let idx = (e as usize).min(SIZES.len() - 1);
    let val = ((v as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1}{}", SIZES[idx])
    } else {
        format!("{val:.0}{}", SIZES[idx])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(300 * NS_PER_S as i64));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("850us"), Ok(850_000));
        assert_eq!(parse_duration("850µs"), Ok(850_000));
        assert_eq!(parse_duration("1m30s"), Ok(90 * NS_PER_S as i64));
        assert_eq!(parse_duration("-5m"), Ok(-300 * NS_PER_S as i64));
        assert_eq!(parse_duration("2d"), Ok(2 * NS_PER_D as i64));
        assert_eq!(parse_duration("1w"), Ok(NS_PER_W as i64));
        assert_eq!(parse_duration("1y"), Ok(NS_PER_Y as i64));
        assert_eq!(parse_duration("1d12h"), Ok(36 * NS_PER_H as i64));
        assert_eq!(parse_duration("1.5h"), Ok(90 * NS_PER_M as i64));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(
            parse_duration("5x").unwrap_err(),
            r#"time: unknown unit "x" in duration "5x""#
        );
        assert_eq!(
            parse_duration("n/a").unwrap_err(),
            r#"time: invalid duration "n/a""#
        );
        assert_eq!(
            parse_duration("5").unwrap_err(),
            r#"time: missing unit in duration "5""#
        );
        assert!(parse_go_duration("1d").is_err());
        assert_eq!(parse_go_duration("1h1h"), Ok(2 * NS_PER_H as i64));
        assert_eq!(
            parse_prom_duration("5x").unwrap_err(),
            r#"unknown unit "x" in duration "5x""#
        );
        assert!(parse_prom_duration("1.5m").is_err());
        assert!(parse_prom_duration("1s1m").is_err());
        assert_eq!(parse_prom_duration("1h30m"), Ok(90 * NS_PER_M as i64));
    }

    #[test]
    fn duration_formats() {
        let s = NS_PER_S as i64;
        assert_eq!(format_duration(300 * s), "5m");
        assert_eq!(format_duration(90 * 60 * s), "1h30m");
        assert_eq!(format_duration(90 * s), "1m30s");
        assert_eq!(format_duration(10_000_000), "10ms");
        assert_eq!(format_duration(14 * 86400 * s), "2w");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_go_duration(300 * s), "5m0s");
        assert_eq!(format_go_duration(5400 * s), "1h30m0s");
        assert_eq!(format_go_duration(1_500_000_000), "1.5s");
        assert_eq!(format_go_duration(250_000_000), "250ms");
        assert_eq!(format_go_duration(1_000), "1µs");
        assert_eq!(format_go_duration(5), "5ns");
        assert_eq!(format_go_duration(-300 * s), "-5m0s");
        assert_eq!(format_go_duration(0), "0s");
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("190B"), Ok(190.0));
        assert_eq!(parse_bytes("2.4KB"), Ok(2400.0));
        assert!((parse_bytes("1.1KiB").unwrap() - 1126.4).abs() < 1e-9);
        assert_eq!(parse_bytes("1.7MB"), Ok(1_700_000.0));
        assert_eq!(parse_bytes("100KB"), Ok(100_000.0));
        assert_eq!(parse_bytes("10kb"), Ok(10_000.0));
        assert_eq!(parse_bytes("1k"), Ok(1000.0));
        assert_eq!(parse_bytes("1ki"), Ok(1024.0));
        assert_eq!(parse_bytes("1 MiB"), Ok(1_048_576.0));
        assert_eq!(parse_bytes("1EiB"), Ok(1_152_921_504_606_846_976.0));
        assert_eq!(parse_bytes("42"), Ok(42.0));
        assert_eq!(parse_bytes("1,000"), Ok(1000.0));
        assert_eq!(parse_bytes("5x").unwrap_err(), "unhandled size name: x");
        assert_eq!(
            parse_bytes("abc").unwrap_err(),
            r#"strconv.ParseFloat: parsing "": invalid syntax"#
        );
        assert_eq!(humanize_bytes(1024), "1.0kB");
        assert_eq!(humanize_bytes(100_000), "100kB");
        assert_eq!(humanize_bytes(5), "5B");
        assert_eq!(loki_printed_bytes(1024.0), 1000.0);
        assert_eq!(loki_printed_bytes(1126.4), 1100.0);
        assert_eq!(loki_printed_bytes(10240.0), 10000.0);
        assert_eq!(loki_printed_bytes(100_000.0), 100_000.0);
        assert_eq!(loki_printed_bytes(999_950.0), 1_000_000.0);
        assert_eq!(loki_printed_bytes(7.0), 7.0);
        assert_eq!(loki_printed_bytes(0.0), 0.0);
    }
}
