//! Per-row-group Bloom filters of long tokens of log lines, for needle searches. A token is a
//! maximal run of ASCII letters, digits and `_`; the filter of a row group holds the first
//! [`PREFIX`] bytes of every token of at least that length. Trigram bitmaps cannot skip rows
//! for identifiers made of digits or hex (block ids, request ids, hashes): every digit trigram
//! occurs somewhere in a row group. A substring filter whose text has a token of at least
//! [`PREFIX`] bytes after a separator (`"blk_-1046472716157313227"`: `1046472716157313227`)
//! can only match a line with a token starting with those bytes, so row groups whose filter
//! lacks the prefix are skipped. Stored base64-encoded in the key-value metadata of
//! `entries.parquet` under [`KEY`] (format: `docs/format/log-block.md`).

use base64::Engine as _;

/// The key-value metadata key of the filters in `entries.parquet`.
pub const KEY: &str = "vigil.line_token_prefixes.v1";
/// Tokens shorter than this are not indexed; longer ones by this many leading bytes.
pub const PREFIX: usize = 12;
/// Filter bits per distinct prefix (about 2% false positives with [`PROBES`] probes).
const BITS_PER_PREFIX: usize = 8;
const PROBES: u32 = 6;

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The tokens of `text` with their start offsets.
fn tokens(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < text.len() && !is_token_byte(text[pos]) {
            pos += 1;
        }
        if pos >= text.len() {
            return None;
        }
        let start = pos;
        while pos < text.len() && is_token_byte(text[pos]) {
            pos += 1;
        }
        Some((start, &text[start..pos]))
    })
}

/// A stable 64-bit hash of a prefix (FNV-1a, then the splitmix64 finaliser to spread it).
fn hash(prefix: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in prefix {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The bit positions of a hash in a filter of `bits` bits (double hashing).
fn probes(h: u64, bits: u64) -> impl Iterator<Item = u64> {
    let (h1, h2) = (h & 0xffff_ffff, (h >> 32) | 1);
    (0..PROBES).map(move |i| h1.wrapping_add(u64::from(i).wrapping_mul(h2)) % bits)
}

/// The tokens of a searched text that the filters can rule out: those of at least [`PREFIX`]
/// bytes after a separator (a token at offset 0 may continue a longer token of the line to the
/// left).
fn indexed_tokens(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    tokens(text)
        .filter(|&(start, token)| start > 0 && token.len() >= PREFIX)
        .map(|(_, token)| token)
}

/// Whether the filters can rule out row groups for a searched text.
pub fn has_indexed_token(text: &[u8]) -> bool {
    indexed_tokens(text).next().is_some()
}

/// Collects the filters of a file's row groups as they are written.
#[derive(Default)]
pub struct LineTokensWriter {
    /// Per row group: the number of 64-bit words, then the words (little-endian).
    encoded: Vec<u8>,
    hashes: Vec<u64>,
}

impl LineTokensWriter {
    /// Adds a row group given its lines' bytes back to back and each line's end offset.
    pub fn add_row_group(&mut self, text: &[u8], line_ends: &[usize]) {
        self.hashes.clear();
        let mut line_start = 0;
        for &end in line_ends {
            if let Some(line) = text.get(line_start..end) {
                for (_, token) in tokens(line) {
                    if token.len() >= PREFIX {
                        self.hashes.push(hash(&token[..PREFIX]));
                    }
                }
            }
            line_start = end;
        }
        self.hashes.sort_unstable();
        self.hashes.dedup();
        let words = (self.hashes.len() * BITS_PER_PREFIX).div_ceil(64);
        let mut filter = vec![0u64; words];
        let bits = (words * 64) as u64;
        for &h in &self.hashes {
            for bit in probes(h, bits) {
                filter[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        self.encoded
            .extend_from_slice(&(words as u32).to_le_bytes());
        for word in filter {
            self.encoded.extend_from_slice(&word.to_le_bytes());
        }
    }

    /// The metadata value: base64 of the filters, in row-group order.
    pub fn finish(self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.encoded)
    }
}

/// The filters of a file, read back.
pub struct LineTokens {
    /// Per row group, the filter's words.
    filters: Vec<Vec<u64>>,
}

impl LineTokens {
    /// Memory the filters hold.
    pub fn memory_size(&self) -> usize {
        self.filters.iter().map(|f| f.capacity() * 8).sum::<usize>()
            + self.filters.capacity() * std::mem::size_of::<Vec<u64>>()
    }

    /// Decodes a metadata value; `None` when it is malformed (then nothing is skipped).
    pub fn decode(value: &str, row_groups: usize) -> Option<LineTokens> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()?;
        let mut filters = Vec::with_capacity(row_groups);
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (count, tail) = rest.split_first_chunk::<4>()?;
            let words = u32::from_le_bytes(*count) as usize;
            let body = tail.get(..words.checked_mul(8)?)?;
            filters.push(
                body.chunks_exact(8)
                    .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
                    .collect(),
            );
            rest = &tail[words * 8..];
        }
        (filters.len() == row_groups).then_some(LineTokens { filters })
    }

    /// Whether a line of the row group may contain `text`: false only when `text` has a token
    /// of at least [`PREFIX`] bytes after a separator whose prefix the row group lacks.
    pub fn may_contain(&self, row_group: usize, text: &[u8]) -> bool {
        let Some(filter) = self.filters.get(row_group) else {
            return true;
        };
        let bits = (filter.len() * 64) as u64;
        indexed_tokens(text).all(|token| {
            bits > 0
                && probes(hash(&token[..PREFIX]), bits)
                    .all(|bit| filter[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn index(groups: &[&[&str]]) -> LineTokens {
        let mut w = LineTokensWriter::default();
        for lines in groups {
            let (text, ends) = crate::linegrams::tests::row_group_text(lines);
            w.add_row_group(&text, &ends);
        }
        LineTokens::decode(&w.finish(), groups.len()).expect("decodes")
    }

    #[test]
    fn needles_with_a_long_bounded_token_skip_row_groups_without_it() {
        let idx = index(&[
            &["Receiving block blk_-1046472716157313227 src: /10.250.19.102:54106"],
            &["Receiving block blk_-5009020203888190378 src: /10.250.19.102:54106"],
            &[],
        ]);
        let needle = b"blk_-1046472716157313227";
        assert!(idx.may_contain(0, needle));
        assert!(!idx.may_contain(1, needle));
        assert!(!idx.may_contain(2, needle));
        // A needle ending inside the token still matches: only the prefix is indexed.
        assert!(idx.may_contain(0, b" blk_-104647271615"));
        // Without a long token after a separator nothing is implied.
        assert!(idx.may_contain(1, b"blk_-104"));
        assert!(idx.may_contain(2, b"1046472716157313227"));
        assert!(idx.may_contain(2, b"short needle"));
    }

    #[test]
    fn a_needle_token_may_be_the_tail_of_no_line_token_but_the_head_of_one() {
        // The line token starts where the needle's token does (after its separator), so its
        // prefix is the needle token's prefix even when the line's token is longer.
        let idx = index(&[&["id=abcdefghijklmnopqrstuvwxyz0123 done"]]);
        assert!(idx.may_contain(0, b"=abcdefghijklmnop"));
        assert!(!idx.may_contain(0, b"=bcdefghijklmnop"));
    }

    #[test]
    fn malformed_values_skip_nothing() {
        assert!(LineTokens::decode("!!", 1).is_none());
        let idx = index(&[&["x"]]);
        assert!(idx.may_contain(5, b"-abcdefghijklmnop"));
        let mut w = LineTokensWriter::default();
        w.add_row_group(b"x", &[1]);
        assert!(LineTokens::decode(&w.finish(), 2).is_none());
    }
}
