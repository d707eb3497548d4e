//! Gorilla-style compression of one series' samples in memory: timestamps as delta-of-delta in
//! variable bit widths, values XORed with the previous value. Regular scrapes of slowly changing
//! values cost one to two bytes per sample.

use vigil_model::Sample;

#[derive(Default, Clone)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits still free in the last byte.
    free: u8,
}

impl BitWriter {
    fn push_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << (self.free - 1);
        }
        self.free -= 1;
    }

    fn push_bits(&mut self, value: u64, mut count: u8) {
        while count > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = count.min(self.free);
            let shift = count - take;
            let chunk = ((value >> shift) & ((1u64 << take) - 1)) as u8;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= chunk << (self.free - take);
            self.free -= take;
            count -= take;
        }
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    bit: usize,
}

impl BitReader<'_> {
    fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.bit / 8)?;
        let bit = byte & (0x80 >> (self.bit % 8)) != 0;
        self.bit += 1;
        Some(bit)
    }

    /// The next `count` (at most 64) bits, most significant first, taken from one 64-bit
    /// big-endian load (decoding is on every query's path).
    fn read_bits(&mut self, count: u8) -> Option<u64> {
        let count = usize::from(count);
        if count == 0 {
            return Some(0);
        }
        let end = self.bit + count;
        if count > 64 || end > self.bytes.len() * 8 {
            return None;
        }
        let bits = self.peek64();
        self.bit = end;
        Some(bits >> (64 - count))
    }

    /// The 64 bits from the current position, most significant first; zeros past the end.
    fn peek64(&self) -> u64 {
        let byte = self.bit / 8;
        let shift = self.bit % 8;
        let word = match self.bytes.get(byte..byte + 8) {
            Some(eight) => {
                let mut word = [0u8; 8];
                word.copy_from_slice(eight);
                u64::from_be_bytes(word)
            }
            None => {
                let mut word = [0u8; 8];
                let rest = self.bytes.get(byte..).unwrap_or(&[]);
                word[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(word)
            }
        };
        if shift == 0 {
            return word;
        }
        let next = self.bytes.get(byte + 8).copied().unwrap_or(0);
        (word << shift) | (u64::from(next) >> (8 - shift))
    }
}

/// An append-only compressed run of samples with strictly increasing timestamps.
#[derive(Clone, Default)]
pub struct XorChunk {
    bits: BitWriter,
    count: u16,
    first_ts: i64,
    last_ts: i64,
    last_delta: i64,
    last_value_bits: u64,
    leading: u8,
    trailing: u8,
}

impl XorChunk {
    pub const MAX_SAMPLES: u16 = 120;

    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count >= Self::MAX_SAMPLES
    }

    pub fn min_ts(&self) -> i64 {
        self.first_ts
    }

    pub fn max_ts(&self) -> i64 {
        self.last_ts
    }

    pub fn bytes(&self) -> usize {
        self.bits.bytes.capacity() + std::mem::size_of::<Self>()
    }

    pub fn shrink(&mut self) {
        self.bits.bytes.shrink_to_fit();
    }

    /// Appends a sample newer than every sample already in the chunk.
    pub fn append(&mut self, sample: Sample) {
        debug_assert!(self.count == 0 || sample.timestamp_ms > self.last_ts);
        let value_bits = sample.value.to_bits();
        match self.count {
            0 => {
                self.bits.push_bits(sample.timestamp_ms as u64, 64);
                self.bits.push_bits(value_bits, 64);
                self.first_ts = sample.timestamp_ms;
                self.leading = 0xff;
            }
            1 => {
                let delta = sample.timestamp_ms - self.last_ts;
                self.bits.push_bits(zigzag(delta), 64);
                self.push_value(value_bits);
                self.last_delta = delta;
            }
            _ => {
                let delta = sample.timestamp_ms - self.last_ts;
                let dod = delta - self.last_delta;
                self.push_dod(dod);
                self.push_value(value_bits);
                self.last_delta = delta;
            }
        }
        self.last_ts = sample.timestamp_ms;
        self.last_value_bits = value_bits;
        self.count += 1;
    }

    fn push_dod(&mut self, dod: i64) {
        let z = zigzag(dod);
        if dod == 0 {
            self.bits.push_bit(false);
        } else if z < (1 << 7) {
            self.bits.push_bits(0b10, 2);
            self.bits.push_bits(z, 7);
        } else if z < (1 << 12) {
            self.bits.push_bits(0b110, 3);
            self.bits.push_bits(z, 12);
        } else if z < (1 << 20) {
            self.bits.push_bits(0b1110, 4);
            self.bits.push_bits(z, 20);
        } else {
            self.bits.push_bits(0b1111, 4);
            self.bits.push_bits(z, 64);
        }
    }

    fn push_value(&mut self, value_bits: u64) {
        let xor = value_bits ^ self.last_value_bits;
        if xor == 0 {
            self.bits.push_bit(false);
            return;
        }
        self.bits.push_bit(true);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.bits.push_bit(false);
            let significant = 64 - self.leading - self.trailing;
            self.bits.push_bits(xor >> self.trailing, significant);
        } else {
            self.bits.push_bit(true);
            let significant = 64 - leading - trailing;
            self.bits.push_bits(u64::from(leading), 5);
            // 64 significant bits are written as 0.
            self.bits.push_bits(u64::from(significant & 63), 6);
            self.bits.push_bits(xor >> trailing, significant);
            self.leading = leading;
            self.trailing = trailing;
        }
    }

    /// Decodes every sample, appending to `out`.
    pub fn decode_into(&self, out: &mut Vec<Sample>) {
        let mut r = BitReader {
            bytes: &self.bits.bytes,
            bit: 0,
        };
        let mut decode = || -> Option<()> {
            let mut ts = r.read_bits(64)? as i64;
            let mut value = r.read_bits(64)?;
            out.push(Sample::new(ts, f64::from_bits(value)));
            let mut delta = 0i64;
            let (mut leading, mut trailing) = (0u8, 0u8);
            for i in 1..self.count {
                if i == 1 {
                    delta = unzigzag(r.read_bits(64)?);
                } else {
                    let dod = if !r.read_bit()? {
                        0
                    } else if !r.read_bit()? {
                        unzigzag(r.read_bits(7)?)
                    } else if !r.read_bit()? {
                        unzigzag(r.read_bits(12)?)
                    } else if !r.read_bit()? {
                        unzigzag(r.read_bits(20)?)
                    } else {
                        unzigzag(r.read_bits(64)?)
                    };
                    delta += dod;
                }
                ts += delta;
                if r.read_bit()? {
                    if r.read_bit()? {
                        leading = r.read_bits(5)? as u8;
                        let mut significant = r.read_bits(6)? as u8;
                        if significant == 0 {
                            significant = 64;
                        }
                        trailing = 64 - leading - significant;
                    }
                    let significant = 64 - leading - trailing;
                    value ^= r.read_bits(significant)? << trailing;
                }
                out.push(Sample::new(ts, f64::from_bits(value)));
            }
            Some(())
        };
        // The chunk was written by this module; a short read would be a bug.
        let complete = decode().is_some();
        debug_assert!(complete, "xor chunk ended early");
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_read_back_as_written_at_every_offset_and_width() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..200 {
            let mut w = BitWriter::default();
            let mut written = Vec::new();
            for _ in 0..rng.usize(1..40) {
                let count = rng.u8(0..=64);
                let value = if count == 64 {
                    rng.u64(..)
                } else {
                    rng.u64(..) & ((1u64 << count) - 1)
                };
                w.push_bits(value, count);
                written.push((value, count));
            }
            let mut r = BitReader {
                bytes: &w.bytes,
                bit: 0,
            };
            for (value, count) in written {
                assert_eq!(r.read_bits(count), Some(value), "{count} bits");
            }
            // Past the end: nothing more than the padding of the last byte.
            assert_eq!(r.read_bits(9), None);
        }
    }

    #[test]
    fn chunk_round_trips_arbitrary_values_bit_exact() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let mut chunk = XorChunk::default();
            let mut expected = Vec::new();
            let mut ts = rng.i64(-1_000_000..1_000_000_000);
            for _ in 0..rng.usize(1..=120) {
                // Every delta-of-delta width: 0, 7, 12, 20 and 64 bits.
                ts += match rng.u8(0..6) {
                    0 => 15_000,
                    1 => rng.i64(1..100),
                    2 => rng.i64(1..4_000),
                    3 => rng.i64(1..500_000),
                    4 => rng.i64(1..10_000_000),
                    _ => rng.i64(1..i64::from(u32::MAX)),
                };
                let value = match rng.u8(0..5) {
                    0 => expected.last().map_or(1.0, |s: &Sample| s.value),
                    1 => f64::from_bits(vigil_model::STALE_NAN_BITS),
                    2 => rng.f64() * 1e9,
                    3 => f64::from_bits(rng.u64(..)),
                    _ => rng.i64(-5..5) as f64,
                };
                let s = Sample::new(ts, value);
                chunk.append(s);
                expected.push(s);
            }
            let mut got = Vec::new();
            chunk.decode_into(&mut got);
            assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(&expected) {
                assert!(g.same_as(e), "{g:?} != {e:?}");
            }
        }
    }

    #[test]
    fn regular_counter_compresses_below_two_bytes_per_sample() {
        let mut chunk = XorChunk::default();
        for i in 0..120 {
            chunk.append(Sample::new(1_700_000_000_000 + i * 15_000, (i * 3) as f64));
        }
        assert!(
            chunk.bits.bytes.len() < 240,
            "{} bytes",
            chunk.bits.bytes.len()
        );
    }
}
