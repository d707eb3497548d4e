//! JSON written by hand for the query APIs' answers: strings escaped exactly as serde_json
//! does, label sets as objects.

use vigil_model::Labels;

/// A label set as a JSON object, names in their (sorted) order.
pub(crate) fn push_labels(out: &mut String, labels: &Labels) {
    push_label_pairs(
        out,
        labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
    );
}

/// Label pairs as a JSON object.
pub(crate) fn push_label_pairs<'a>(
    out: &mut String,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) {
    out.push('{');
    for (i, (name, value)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, name);
        out.push(':');
        push_json_str(out, value);
    }
    out.push('}');
}

/// `s` as a JSON string, escaped as serde_json escapes it: `"` and `\`, the short escapes
/// `\b \f \n \r \t`, other control characters as `\u00XX`; the rest as it is.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut clean_from = 0;
    loop {
        let i = next_to_escape(bytes, clean_from);
        // Escaped bytes are ASCII, so the runs between them are whole UTF-8 text.
        out.push_str(&s[clean_from..i]);
        let Some(&b) = bytes.get(i) else {
            break;
        };
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            _ => "",
        };
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        clean_from = i + 1;
    }
    out.push('"');
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The index of the first byte from `from` on that JSON escapes (`bytes.len()` if none),
/// testing eight bytes at a time: log lines are long runs of plain text.
fn next_to_escape(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether a byte of `word` is zero, or below 0x20 (exact as a test of any byte, though
    // not of which one).
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS != 0;
    let has_control = |word: u64| word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word);
        if has_control(word) || has_zero(word ^ (ONES * 0x22)) || has_zero(word ^ (ONES * 0x5c)) {
            break;
        }
        i += 8;
    }
    bytes[i.min(bytes.len())..]
        .iter()
        .position(|&b| needs_escape(b))
        .map_or(bytes.len(), |k| i + k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut cases: Vec<String> = (0u8..=0x7f).map(|b| char::from(b).to_string()).collect();
        cases.extend(
            [
                "",
                "plain",
                "say \"hi\"\n",
                "tab\there\\back",
                "ünïcødé ✓ \u{1F600}\u{7f}",
                "\u{1}\u{1f}<>&'",
            ]
            .map(String::from),
        );
        // Every byte needing an escape at every offset of a longer text, next to bytes on
        // either side of the eight-byte test's limits (0x1f/0x20, 0x21-0x23, 0x5b-0x5d, 0x7f,
        // multi-byte characters).
        let filler = "a é!#[]\u{7f}✓ z0123456789";
        for special in ["\"", "\\", "\n", "\u{0}", "\u{1f}", "\u{8}", "\u{c}"] {
            for at in 0..20 {
                let mut text: String = filler.chars().cycle().take(at).collect();
                text.push_str(special);
                text.extend(filler.chars().cycle().take(17));
                cases.push(text);
            }
        }
        for s in cases {
            let mut out = String::from("x");
            push_json_str(&mut out, &s);
            assert_eq!(
                out,
                format!("x{}", serde_json::to_string(&s).unwrap()),
                "{s:?}"
            );
        }
    }
}
