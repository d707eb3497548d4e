//! Byte-level JSON scanning with the tolerance and the error texts of the `jsonparser`
//! library Loki parses lines with: a permissive scanner that validates only what it walks
//! over, so truncated or odd input fails (or passes) exactly where Loki's does.
//!
//! Every position handed out lies next to an ASCII delimiter of a `&str`, so slicing the
//! line at it is always on a character boundary; slicing still goes through `str::get`.

use std::borrow::Cow;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueType {
    String,
    Number,
    Object,
    Array,
    Boolean,
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JsonError {
    UnknownValueType,
    MalformedJson,
    MalformedString,
    MalformedArray,
    MalformedObject,
    MalformedStringEscape,
}

impl JsonError {
    /// The error text exactly as Loki reports it in `__error_details__`.
    pub(crate) fn message(self) -> &'static str {
        match self {
            JsonError::UnknownValueType => "Unknown value type",
            JsonError::MalformedJson => "Malformed JSON error",
            JsonError::MalformedString => "Value is string, but can't find closing '\"' symbol",
            JsonError::MalformedArray => "Value is array, but can't find closing ']' symbol",
            JsonError::MalformedObject => {
                "Value looks like object, but can't find closing '}' symbol"
            }
            JsonError::MalformedStringEscape => {
                "Encountered an invalid escape sequence in a string"
            }
        }
    }
}

#[inline]
pub(crate) fn sub(s: &str, start: usize, end: usize) -> &str {
    s.get(start..end).unwrap_or("")
}

/// Position of the next non-whitespace byte.
#[inline]
fn next_token(d: &[u8]) -> Option<usize> {
    d.iter()
        .position(|&c| !matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
}

/// End of a bare token (number, literal).
#[inline]
fn token_end(d: &[u8]) -> usize {
    d.iter()
        .position(|&c| matches!(c, b' ' | b'\n' | b'\r' | b'\t' | b',' | b'}' | b']'))
        .unwrap_or(d.len())
}

/// `d` starts just after an opening quote: the index just past the closing quote, and
/// whether a backslash was seen.
#[inline]
fn string_end(d: &[u8]) -> Option<(usize, bool)> {
    let mut escaped = false;
    let mut from = 0;
    while let Some(p) = memchr::memchr2(b'"', b'\\', &d[from..]) {
        let i = from + p;
        if d[i] == b'\\' {
            escaped = true;
        } else {
            if !escaped {
                return Some((i + 1, false));
            }
            let backslashes = d[..i].iter().rev().take_while(|&&c| c == b'\\').count();
            if backslashes % 2 == 0 {
                return Some((i + 1, true));
            }
        }
        from = i + 1;
    }
    None
}

/// End (exclusive) of the block opening at `d[0]`.
fn block_end(d: &[u8], open: u8, close: u8) -> Option<usize> {
    let mut level = 0i64;
    let mut i = 0;
    while i < d.len() {
        let c = d[i];
        if c == b'"' {
            let (se, _) = string_end(&d[i + 1..])?;
            i += se;
        } else if c == open {
            level += 1;
        } else if c == close {
            level -= 1;
            if level == 0 {
                return Some(i + 1);
            }
        }
        i += 1;
    }
    None
}

/// The value starting at `offset`: (start, end, type); `end` is exclusive.
fn get_type(d: &[u8], offset: usize) -> Result<(usize, usize, ValueType), JsonError> {
    match d[offset] {
        b'"' => match string_end(&d[offset + 1..]) {
            Some((idx, _)) => Ok((offset, offset + idx + 1, ValueType::String)),
            None => Err(JsonError::MalformedString),
        },
        b'[' => match block_end(&d[offset..], b'[', b']') {
            Some(e) => Ok((offset, offset + e, ValueType::Array)),
            None => Err(JsonError::MalformedArray),
        },
        b'{' => match block_end(&d[offset..], b'{', b'}') {
            Some(e) => Ok((offset, offset + e, ValueType::Object)),
            None => Err(JsonError::MalformedObject),
        },
        c => {
            let end = offset + token_end(&d[offset..]);
            let v = &d[offset..end];
            let t = match c {
                b't' | b'f' if v == b"true" || v == b"false" => ValueType::Boolean,
                b'u' | b'n' if v == b"null" => ValueType::Null,
                b'0'..=b'9' | b'-' => ValueType::Number,
                _ => return Err(JsonError::UnknownValueType),
            };
            Ok((offset, end, t))
        }
    }
}

/// The closest value in `d`: (value start, value end, type, end offset); strings come
/// without their quotes.
#[inline]
fn get(d: &[u8]) -> Result<(usize, usize, ValueType, usize), JsonError> {
    let off = next_token(d).ok_or(JsonError::MalformedJson)?;
    let (s, e, t) = get_type(d, off)?;
    if t == ValueType::String {
        Ok((s + 1, e - 1, t, e))
    } else {
        Ok((s, e, t, e))
    }
}

/// Calls `cb(key, value, type)` for each member of the object `data` (keys unescaped,
/// string values raw and unquoted); stops at the first error, the callback's included.
pub(crate) fn object_each<'a, F>(data: &'a str, mut cb: F) -> Result<(), JsonError>
where
    F: FnMut(&str, &'a str, ValueType) -> Result<(), JsonError>,
{
    let b = data.as_bytes();
    let mut offset = next_token(b).ok_or(JsonError::MalformedObject)?;
    if b[offset] != b'{' {
        return Err(JsonError::MalformedObject);
    }
    offset += 1;
    offset += next_token(&b[offset..]).ok_or(JsonError::MalformedJson)?;
    if b[offset] == b'}' {
        return Ok(());
    }
    let mut last_comma: Option<usize> = None;
    while offset < b.len() {
        match b[offset] {
            b'"' => offset += 1,
            b'}' => {
                if last_comma.is_some_and(|c| c + 1 == offset) {
                    return Err(JsonError::MalformedObject);
                }
                return Ok(());
            }
            _ => return Err(JsonError::MalformedObject),
        }
        let (off, escaped) = string_end(&b[offset..]).ok_or(JsonError::MalformedJson)?;
        let raw_key = sub(data, offset, offset + off - 1);
        offset += off;
        let key = if escaped {
            unescape(raw_key).ok_or(JsonError::MalformedStringEscape)?
        } else {
            Cow::Borrowed(raw_key)
        };
        offset += next_token(&b[offset..]).ok_or(JsonError::MalformedJson)?;
        if b[offset] != b':' {
            return Err(JsonError::MalformedJson);
        }
        offset += 1;
        let (vs, ve, vt, vend) = get(&b[offset..])?;
        cb(&key, sub(data, offset + vs, offset + ve), vt)?;
        offset += vend;
        offset += next_token(&b[offset..]).ok_or(JsonError::MalformedArray)?;
        match b[offset] {
            b'}' => return Ok(()),
            b',' => {
                last_comma = Some(offset);
                offset += 1;
            }
            _ => return Err(JsonError::MalformedObject),
        }
        let off = next_token(&b[offset..]).ok_or(JsonError::MalformedArray)?;
        if off > 0 {
            last_comma = last_comma.map(|c| c + off - 1);
        }
        offset += off;
    }
    Err(JsonError::MalformedObject)
}

/// One element seen by [`array_each`]: absolute value range (strings unquoted), type, and
/// the offset `jsonparser` reports (`end - len(value)`).
struct ArrayItem {
    start: usize,
    end: usize,
    ty: ValueType,
    reported_offset: usize,
}

/// Walks the array opening at `d`'s first token; answers the offset where it stopped.
fn array_each(d: &[u8], mut cb: impl FnMut(ArrayItem)) -> isize {
    if d.is_empty() {
        return -1;
    }
    let Some(nt) = next_token(d) else {
        return -1;
    };
    let mut offset = nt + 1;
    let Some(no) = next_token(&d[offset.min(d.len())..]) else {
        return offset as isize;
    };
    offset += no;
    if d[offset] == b']' {
        return offset as isize;
    }
    loop {
        let (vs, ve, t, o) = match get(&d[offset..]) {
            Ok(v) => v,
            Err(_) => return offset as isize,
        };
        if o == 0 {
            break;
        }
        cb(ArrayItem {
            start: offset + vs,
            end: offset + ve,
            ty: t,
            reported_offset: offset + o - (ve - vs),
        });
        offset += o;
        let Some(skip) = next_token(&d[offset..]) else {
            return offset as isize;
        };
        offset += skip;
        if d[offset] == b']' {
            break;
        }
        if d[offset] != b',' {
            return offset as isize;
        }
        offset += 1;
    }
    offset as isize
}

fn parse_index(key: &str) -> Option<usize> {
    let inner = key.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse().ok()
}

/// Offset just past the `:` of the value at `keys` inside `data`, or -1.
fn search_keys(data: &str, keys: &[String]) -> isize {
    let b = data.as_bytes();
    let lk = keys.len();
    if lk == 0 {
        return 0;
    }
    let (mut key_level, mut level, mut i) = (0usize, 0usize, 0usize);
    let mut last_matched = true;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                let key_begin = i;
                let Some((str_end, escaped)) = string_end(&b[i..]) else {
                    return -1;
                };
                i += str_end;
                let key_end = i - 1;
                let Some(vo) = next_token(&b[i..]) else {
                    return -1;
                };
                i += vo;
                if b[i] == b':' {
                    if level < 1 {
                        return -1;
                    }
                    let raw = sub(data, key_begin, key_end);
                    let key = if escaped {
                        match unescape(raw) {
                            Some(k) => k,
                            None => return -1,
                        }
                    } else {
                        Cow::Borrowed(raw)
                    };
                    if level <= lk {
                        if key == keys[level - 1].as_str() {
                            last_matched = true;
                            if key_level == level - 1 {
                                key_level += 1;
                                if key_level == lk {
                                    return (i + 1) as isize;
                                }
                            }
                        } else {
                            last_matched = false;
                        }
                    } else {
                        return -1;
                    }
                } else {
                    i -= 1;
                }
            }
            b'{' => {
                if !last_matched {
                    let Some(end) = block_end(&b[i..], b'{', b'}') else {
                        return -1;
                    };
                    i += end - 1;
                } else {
                    level += 1;
                }
            }
            b'}' => {
                level = level.wrapping_sub(1);
                if level == key_level {
                    key_level = key_level.wrapping_sub(1);
                }
            }
            b'[' => {
                let want_index =
                    key_level == level && keys.get(level).is_some_and(|k| k.starts_with('['));
                if want_index {
                    let k = &keys[level];
                    if k.len() < 3 || !k.ends_with(']') {
                        return -1;
                    }
                    let Some(a_idx) = parse_index(k) else {
                        return -1;
                    };
                    let mut cur = 0usize;
                    let mut found: Option<(usize, usize, usize)> = None;
                    let base = i;
                    array_each(&b[i..], |item| {
                        if cur == a_idx {
                            if item.ty == ValueType::String {
                                let off = item.reported_offset - 2;
                                let len = item.end - item.start + 2;
                                found = Some((base + off, base + off + len, off));
                            } else {
                                found = Some((
                                    base + item.start,
                                    base + item.end,
                                    item.reported_offset,
                                ));
                            }
                        }
                        cur += 1;
                    });
                    let Some((fs, fe, voff)) = found else {
                        return -1;
                    };
                    let sub_index = search_keys(sub(data, fs, fe), &keys[level + 1..]);
                    if sub_index < 0 {
                        return -1;
                    }
                    return (i + voff) as isize + sub_index;
                }
                let Some(skip) = block_end(&b[i..], b'[', b']') else {
                    return -1;
                };
                i += skip - 1;
            }
            b':' => return -1,
            _ => {}
        }
        i += 1;
    }
    -1
}

fn same_tree(p1: &[String], p2: &[Cow<'_, str>]) -> bool {
    p1.iter().zip(p2).all(|(a, b)| a.as_str() == b.as_ref())
}

/// What [`each_key`] hands its callback for one path.
pub(crate) enum KeyHit<'a> {
    Value(usize, &'a str, ValueType),
    Error(JsonError),
}

/// Finds the values at `paths` (each a list of keys and `[n]` indexes) in one pass, as
/// `jsonparser.EachKey` does: the first occurrence of each path wins; keys inside arrays
/// are only looked at through an index step; malformed input mostly just ends the scan.
pub(crate) fn each_key<'a>(data: &'a str, paths: &[Vec<String>], mut cb: impl FnMut(KeyHit<'a>)) {
    let b = data.as_bytes();
    let ln = b.len() as isize;
    let mut level: isize = 0;
    let mut paths_matched = 0usize;
    let mut i: isize = 0;
    let mut flags = vec![false; paths.len()];
    let max_path = paths.iter().map(Vec::len).max().unwrap_or(0);
    let mut buf: Vec<Cow<'a, str>> = vec![Cow::Borrowed(""); max_path];

    while i < ln {
        let c = b[i as usize];
        match c {
            b'"' => {
                i += 1;
                let key_begin = i as usize;
                let Some((str_end, escaped)) = string_end(&b[i as usize..]) else {
                    return;
                };
                i += str_end as isize;
                let key_end = (i - 1) as usize;
                let Some(vo) = next_token(&b[i as usize..]) else {
                    return;
                };
                i += vo as isize;
                if b[i as usize] == b':' {
                    let mut matched = false;
                    let raw = sub(data, key_begin, key_end);
                    let key = if escaped {
                        match unescape(raw) {
                            Some(k) => k,
                            None => return,
                        }
                    } else {
                        Cow::Borrowed(raw)
                    };
                    if max_path as isize >= level {
                        if level < 1 {
                            cb(KeyHit::Error(JsonError::MalformedJson));
                            return;
                        }
                        let lv = level as usize;
                        buf[lv - 1] = key;
                        for (pi, p) in paths.iter().enumerate() {
                            if p.len() != lv
                                || flags[pi]
                                || p[lv - 1] != buf[lv - 1]
                                || !same_tree(p, &buf[..lv])
                            {
                                continue;
                            }
                            matched = true;
                            paths_matched += 1;
                            flags[pi] = true;
                            let rest = &b[(i + 1) as usize..];
                            match get(rest) {
                                Ok((vs, ve, t, _)) => {
                                    let base = (i + 1) as usize;
                                    cb(KeyHit::Value(pi, sub(data, base + vs, base + ve), t));
                                }
                                Err(e) => cb(KeyHit::Error(e)),
                            }
                            if paths_matched == paths.len() {
                                break;
                            }
                        }
                        if paths_matched == paths.len() {
                            return;
                        }
                    }
                    if !matched {
                        let to = next_token(&b[(i + 1) as usize..]).map_or(-1, |v| v as isize);
                        i += to;
                        if b[i as usize] == b'{' {
                            let skip =
                                block_end(&b[i as usize..], b'{', b'}').map_or(-1, |v| v as isize);
                            i += skip + 1;
                        }
                    }
                    if i < ln && matches!(b[i as usize], b'{' | b'}' | b'[' | b'"') {
                        i -= 1;
                    }
                } else {
                    i -= 1;
                }
            }
            b'{' => level += 1,
            b'}' | b']' => level -= 1,
            b'[' => {
                if level < 0 {
                    cb(KeyHit::Error(JsonError::MalformedJson));
                    return;
                }
                let lv = level as usize;
                // (path index, array index) of the paths indexing into this array.
                let mut wanted: Vec<(usize, usize)> = Vec::new();
                for (pi, p) in paths.iter().enumerate() {
                    if p.len() < lv + 1
                        || flags[pi]
                        || !p[lv].starts_with('[')
                        || !same_tree(p, &buf[..lv])
                    {
                        continue;
                    }
                    if p[lv].len() >= 2 {
                        let idx = p[lv]
                            .get(1..p[lv].len() - 1)
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                        wanted.push((pi, idx));
                    }
                }
                if wanted.is_empty() {
                    let Some(skip) = block_end(&b[i as usize..], b'[', b']') else {
                        return;
                    };
                    i += skip as isize - 1;
                } else {
                    level += 1;
                    let lv = level as usize;
                    let base = i as usize;
                    let mut cur = 0usize;
                    let arr_off = array_each(&b[base..], |item| {
                        for &(pi, idx) in &wanted {
                            if idx != cur {
                                continue;
                            }
                            let value = sub(data, base + item.start, base + item.end);
                            let of = search_keys(value, &paths[pi][lv..]);
                            paths_matched += 1;
                            flags[pi] = true;
                            if of < 0 {
                                continue;
                            }
                            let rest = sub(value, of as usize, value.len());
                            if item.ty == ValueType::String {
                                cb(KeyHit::Value(pi, rest, item.ty));
                            } else {
                                match get(rest.as_bytes()) {
                                    Ok((vs, ve, t, _)) => {
                                        cb(KeyHit::Value(pi, sub(rest, vs, ve), t))
                                    }
                                    Err(e) => cb(KeyHit::Error(e)),
                                }
                            }
                        }
                        cur += 1;
                    });
                    if paths_matched == paths.len() {
                        return;
                    }
                    i += arr_off - 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// JSON string unescaping as `jsonparser.Unescape` does it; `None` on a bad escape.
pub(crate) fn unescape(s: &str) -> Option<Cow<'_, str>> {
    let b = s.as_bytes();
    let Some(first) = memchr::memchr(b'\\', b) else {
        return Some(Cow::Borrowed(s));
    };
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut pos = first;
    loop {
        out.push_str(sub(s, last, pos));
        let (ch, len) = unescape_one(&b[pos..])?;
        out.push(ch);
        pos += len;
        last = pos;
        match memchr::memchr(b'\\', &b[pos..]) {
            Some(p) => pos += p,
            None => break,
        }
    }
    out.push_str(sub(s, last, s.len()));
    Some(Cow::Owned(out))
}

fn unescape_one(d: &[u8]) -> Option<(char, usize)> {
    let c = match *d.get(1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => return decode_unicode_escape(d),
        _ => return None,
    };
    Some((c, 2))
}

fn hex4(d: &[u8]) -> Option<u32> {
    if d.len() < 6 || d[0] != b'\\' || d[1] != b'u' {
        return None;
    }
    let mut v = 0u32;
    for &c in &d[2..6] {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

fn decode_unicode_escape(d: &[u8]) -> Option<(char, usize)> {
    let r = hex4(d)?;
    if !(0xD800..=0xDFFF).contains(&r) {
        return Some((char::from_u32(r).unwrap_or('\u{FFFD}'), 6));
    }
    let r2 = hex4(&d[6..])?;
    if r2 < 0xDC00 {
        return None;
    }
    let combined = ((r.wrapping_sub(0xD800)) << 10)
        .wrapping_add(r2.wrapping_sub(0xDC00))
        .wrapping_add(0x10000);
    Some((char::from_u32(combined).unwrap_or('\u{FFFD}'), 12))
}

/// Loki's `unescapeJSONString`: unescaped text, or empty when it cannot be unescaped or
/// holds U+FFFD.
pub(crate) fn unescape_json_string(s: &str) -> Cow<'_, str> {
    match unescape(s) {
        Some(v) if !v.contains('\u{FFFD}') => v,
        _ => Cow::Borrowed(""),
    }
}
