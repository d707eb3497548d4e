//! `ip("...")` matching as Loki's `ipFilter`: the pattern is one address, a CIDR prefix or
//! a range `a-b`; a text matches when some IP-looking run in it (found with Loki's IPv4 and
//! IPv6 prefix hints) parses as an address the pattern contains.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy)]
enum Matcher {
    Addr(IpAddr),
    Prefix(IpAddr, u8),
    Range(IpAddr, IpAddr),
}

/// The `ip("...")` matcher for line filters (`|= ip(...)`) and label filters
/// (`name = ip(...)`).
#[derive(Debug, Clone)]
pub struct IpFilter {
    matcher: Matcher,
}

const fn charset(chars: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < chars.len() {
        t[chars[i] as usize] = true;
        i += 1;
    }
    t
}

static IPV4_CHARSET: [bool; 256] = charset(b"0123456789.");
static IPV6_CHARSET: [bool; 256] = charset(b"0123456789abcdefABCDEF:.");

fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = s.rsplit_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    if bits.is_empty()
        || !bits.bytes().all(|c| c.is_ascii_digit())
        || (bits.len() > 1 && bits.starts_with('0'))
        || bits.len() > 3
    {
        return None;
    }
    let bits: u8 = bits.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((addr, bits))
}

fn parse_range(s: &str) -> Option<(IpAddr, IpAddr)> {
    let (from, to) = s.split_once('-')?;
    let from: IpAddr = from.parse().ok()?;
    let to: IpAddr = to.parse().ok()?;
    (from.is_ipv4() == to.is_ipv4() && from <= to).then_some((from, to))
}

fn masked(ip: IpAddr, bits: u8) -> u128 {
    match ip {
        IpAddr::V4(v4) => {
            let v = u32::from(v4);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u128::from(v & mask)
        }
        IpAddr::V6(v6) => {
            let v = u128::from(v6);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            v & mask
        }
    }
}

impl IpFilter {
    pub fn new(pattern: &str) -> Result<Self, String> {
        let matcher = if let Ok(a) = pattern.parse::<IpAddr>() {
            Matcher::Addr(a)
        } else if let Some((a, bits)) = parse_prefix(pattern) {
            Matcher::Prefix(a, bits)
        } else if let Some((from, to)) = parse_range(pattern) {
            Matcher::Range(from, to)
        } else {
            return Err(format!("ip: invalid pattern: {pattern:?}"));
        };
        Ok(Self { matcher })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match self.matcher {
            Matcher::Addr(a) => a == ip,
            Matcher::Prefix(p, bits) => {
                p.is_ipv4() == ip.is_ipv4() && masked(p, bits) == masked(ip, bits)
            }
            Matcher::Range(from, to) => from.is_ipv4() == ip.is_ipv4() && from <= ip && ip <= to,
        }
    }

    /// Label filter `name = ip("...")`: Loki runs the same scan over the label's value.
    pub fn matches_value(&self, value: &str) -> bool {
        self.scan(value)
    }

    /// Line filter `|= ip("...")`: some IP in the line is inside the pattern.
    pub fn matches_line(&self, line: &str) -> bool {
        self.scan(line)
    }

    fn candidate(&self, b: &[u8], start: usize, charset: &[bool; 256]) -> (bool, usize) {
        let len = b[start..]
            .iter()
            .position(|&c| !charset[c as usize])
            .unwrap_or(b.len() - start);
        let span = &b[start..start + len];
        // Cheap shape checks first: spans that cannot parse are skipped as Loki's
        // failed parse would skip them.
        let dots = span.iter().filter(|&&c| c == b'.').count();
        let colons = span.len() - span.iter().filter(|&&c| c != b':').count();
        let plausible = if colons == 0 {
            dots == 3 && (7..=15).contains(&len)
        } else {
            colons >= 2 && (dots == 0 || dots == 3)
        };
        if !plausible {
            return (false, len);
        }
        let hit = std::str::from_utf8(span)
            .ok()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .is_some_and(|ip| self.contains(ip));
        if hit {
            (true, 0)
        } else {
            (false, len)
        }
    }

    fn scan(&self, text: &str) -> bool {
        let b = text.as_bytes();
        let n = b.len();
        let mut i = 0;
        while i < n {
            if i + 3 < n && ipv4_hint(&b[i..i + 4]) {
                let (ok, len) = self.candidate(b, i, &IPV4_CHARSET);
                if ok {
                    return true;
                }
                i += len + 1;
                continue;
            }
            if i + 4 < n && ipv6_hint(&b[i..i + 5]) {
                let (ok, len) = self.candidate(b, i, &IPV6_CHARSET);
                if ok {
                    return true;
                }
                i += len + 1;
                continue;
            }
            i += 1;
        }
        false
    }
}

fn ipv4_hint(p: &[u8]) -> bool {
    p[0].is_ascii_digit() && (p[1] == b'.' || p[2] == b'.' || p[3] == b'.')
}

fn ipv6_hint(p: &[u8]) -> bool {
    let h = |c: u8| c.is_ascii_hexdigit();
    (p[0] == b':' && p[1] == b':' && h(p[2]))
        || (h(p[0]) && p[1] == b':')
        || (h(p[0]) && h(p[1]) && p[2] == b':')
        || (h(p[0]) && h(p[1]) && h(p[2]) && p[3] == b':')
        || (h(p[0]) && h(p[1]) && h(p[2]) && h(p[3]) && p[4] == b':')
}
