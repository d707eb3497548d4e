//! Per-row-group trigram bitmaps of log lines: which 3-byte sequences occur in the lines of a
//! row group, hashed into 65,536 bits (8 KiB). A substring line filter (`|= "text"`) can only
//! match lines of a row group whose bitmap holds every trigram of the text, so row groups
//! without them are never decoded. Stored zstd-compressed and base64-encoded in the key-value
//! metadata of `entries.parquet` under [`KEY`] (format: `docs/format/log-block.md`).

use base64::Engine as _;

/// The key-value metadata key of the bitmaps in `entries.parquet`.
pub const KEY: &str = "vigil.line_trigrams.v1";
/// Bits per row group.
const BITS: usize = 1 << 16;
const BYTES: usize = BITS / 8;
const ZSTD_LEVEL: i32 = 3;

fn slot(gram: &[u8]) -> usize {
    let v = (u32::from(gram[0]) << 16) | (u32::from(gram[1]) << 8) | u32::from(gram[2]);
    // Fibonacci hashing: the top 16 bits of the product spread neighbouring trigrams.
    (v.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

/// Collects the bitmaps of a file's row groups as they are written.
#[derive(Default)]
pub struct LineGramsWriter {
    bitmaps: Vec<u8>,
}

impl LineGramsWriter {
    /// Adds a row group given its lines' bytes back to back and each line's end offset.
    pub fn add_row_group(&mut self, text: &[u8], line_ends: &[usize]) {
        let start = self.bitmaps.len();
        self.bitmaps.resize(start + BYTES, 0);
        let bitmap = &mut self.bitmaps[start..];
        let mut line_start = 0;
        for &end in line_ends {
            if let Some(line) = text.get(line_start..end) {
                for gram in line.windows(3) {
                    let s = slot(gram);
                    bitmap[s / 8] |= 1 << (s % 8);
                }
            }
            line_start = end;
        }
    }

    /// The metadata value: base64 of the zstd-compressed bitmaps, in row-group order.
    pub fn finish(self) -> std::io::Result<String> {
        let compressed = zstd::bulk::compress(&self.bitmaps, ZSTD_LEVEL)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(compressed))
    }
}

/// The bitmaps of a file, read back.
pub struct LineGrams {
    bitmaps: Vec<u8>,
}

impl LineGrams {
    /// Decodes a metadata value; `None` when it is malformed (then nothing is skipped).
    pub fn decode(value: &str, row_groups: usize) -> Option<LineGrams> {
        let compressed = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()?;
        let bitmaps = zstd::bulk::decompress(&compressed, row_groups * BYTES).ok()?;
        (bitmaps.len() == row_groups * BYTES).then_some(LineGrams { bitmaps })
    }

    /// Memory the bitmaps hold.
    pub fn memory_size(&self) -> usize {
        self.bitmaps.capacity()
    }

    /// Whether a line of the row group may contain `text` (texts shorter than three bytes
    /// always may).
    pub fn may_contain(&self, row_group: usize, text: &[u8]) -> bool {
        let Some(bitmap) = self.bitmaps.get(row_group * BYTES..(row_group + 1) * BYTES) else {
            return true;
        };
        text.windows(3).all(|gram| {
            let s = slot(gram);
            bitmap[s / 8] & (1 << (s % 8)) != 0
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A row group's lines as the writers take them: the bytes back to back and each end.
    pub(crate) fn row_group_text(lines: &[&str]) -> (Vec<u8>, Vec<usize>) {
        let mut text = Vec::new();
        let mut ends = Vec::new();
        for l in lines {
            text.extend_from_slice(l.as_bytes());
            ends.push(text.len());
        }
        (text, ends)
    }

    pub(crate) fn grams(groups: &[&[&str]]) -> LineGrams {
        let mut w = LineGramsWriter::default();
        for lines in groups {
            let (text, ends) = row_group_text(lines);
            w.add_row_group(&text, &ends);
        }
        LineGrams::decode(&w.finish().unwrap(), groups.len()).unwrap()
    }

    #[test]
    fn substrings_are_found_and_absent_ones_mostly_skip() {
        let g = grams(&[&["error: disk full", "ok"], &["all good here"]]);
        assert!(g.may_contain(0, b"disk f"));
        assert!(!g.may_contain(1, b"disk f"));
        assert!(g.may_contain(1, b"good"));
        // Trigrams never span two lines.
        assert!(!g.may_contain(0, b"fullok"));
        // Too short to tell: always may.
        assert!(g.may_contain(1, b"zz"));
        assert!(LineGrams::decode("not base64!", 2).is_none());
    }
}
