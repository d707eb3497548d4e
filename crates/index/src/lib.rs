//! The label index shared by the head and the blocks: for every label pair the roaring bitmap of
//! the series (or stream) ids that carry it, the sorted label names and values, and the
//! evaluation of matchers into a bitmap. Its on-disk form (`index.bin`) is in
//! docs/format/index.md.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;
use vigil_model::{Labels, Matcher};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index file is damaged: {0}")]
    Corrupt(String),
}

/// Postings by label name, then value.
#[derive(Debug, Default, Clone)]
pub struct Postings {
    by_name: BTreeMap<String, BTreeMap<String, RoaringBitmap>>,
    all: RoaringBitmap,
}

impl Postings {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, id: u32, labels: &Labels) {
        self.all.insert(id);
        for label in labels.iter() {
            let values = match self.by_name.get_mut(label.name.as_str()) {
                Some(values) => values,
                None => self.by_name.entry(label.name.clone()).or_default(),
            };
            match values.get_mut(label.value.as_str()) {
                Some(bitmap) => {
                    bitmap.insert(id);
                }
                None => {
                    values.insert(label.value.clone(), RoaringBitmap::from_iter([id]));
                }
            }
        }
    }

    pub fn remove(&mut self, id: u32, labels: &Labels) {
        self.all.remove(id);
        for label in labels.iter() {
            let Some(values) = self.by_name.get_mut(label.name.as_str()) else {
                continue;
            };
            if let Some(bitmap) = values.get_mut(label.value.as_str()) {
                bitmap.remove(id);
                if bitmap.is_empty() {
                    values.remove(label.value.as_str());
                }
            }
            if values.is_empty() {
                self.by_name.remove(label.name.as_str());
            }
        }
    }

    pub fn all(&self) -> &RoaringBitmap {
        &self.all
    }

    pub fn len(&self) -> u64 {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Ids of the series that satisfy every matcher. With no matchers: all.
    pub fn select(&self, matchers: &[Matcher]) -> RoaringBitmap {
        let mut result = self.all.clone();
        for matcher in matchers {
            if result.is_empty() {
                break;
            }
            let values = self.by_name.get(matcher.name.as_str());
            if matcher.matches_empty() {
                // Series without the label match; remove those whose value does not.
                if let Some(values) = values {
                    for (value, bitmap) in values {
                        if !matcher.matches(value) {
                            result -= bitmap;
                        }
                    }
                }
            } else {
                let mut matching = RoaringBitmap::new();
                if let Some(values) = values {
                    if let (vigil_model::MatchOp::Equal, Some(bitmap)) =
                        (matcher.op, values.get(matcher.value.as_str()))
                    {
                        matching = bitmap.clone();
                    } else if matcher.op != vigil_model::MatchOp::Equal {
                        for (value, bitmap) in values {
                            if matcher.matches(value) {
                                matching |= bitmap;
                            }
                        }
                    }
                }
                result &= matching;
            }
        }
        result
    }

    /// Sorted label names carried by any series in `ids`.
    pub fn label_names(&self, ids: &RoaringBitmap) -> Vec<String> {
        self.by_name
            .iter()
            .filter(|(_, values)| values.values().any(|b| !b.is_disjoint(ids)))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Sorted values of `name` carried by any series in `ids`.
    pub fn label_values(&self, name: &str, ids: &RoaringBitmap) -> Vec<String> {
        self.by_name
            .get(name)
            .map(|values| {
                values
                    .iter()
                    .filter(|(_, b)| !b.is_disjoint(ids))
                    .map(|(v, _)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Serialises as `index.bin`: magic, version, pairs with their bitmaps, CRC32 trailer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(INDEX_MAGIC);
        out.push(INDEX_VERSION);
        let pairs: usize = self.by_name.values().map(BTreeMap::len).sum();
        out.extend_from_slice(&(pairs as u32).to_le_bytes());
        let mut bitmap_bytes = Vec::new();
        for (name, values) in &self.by_name {
            for (value, bitmap) in values {
                put_str(&mut out, name);
                put_str(&mut out, value);
                bitmap_bytes.clear();
                // Serialising into a Vec cannot fail.
                let _ = bitmap.serialize_into(&mut bitmap_bytes);
                out.extend_from_slice(&(bitmap_bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(&bitmap_bytes);
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        let corrupt = |what: &str| IndexError::Corrupt(what.to_string());
        if bytes.len() < INDEX_MAGIC.len() + 1 + 4 + 4 {
            return Err(corrupt("too short"));
        }
        let (body, trailer) = bytes.split_at(bytes.len() - 4);
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        if crc32fast::hash(body) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        if &body[..4] != INDEX_MAGIC || body[4] != INDEX_VERSION {
            return Err(corrupt("bad magic or version"));
        }
        let mut pos = 5;
        let pairs = read_u32(body, &mut pos).ok_or_else(|| corrupt("pair count"))?;
        let mut postings = Postings::new();
        for _ in 0..pairs {
            let name = read_str(body, &mut pos).ok_or_else(|| corrupt("label name"))?;
            let value = read_str(body, &mut pos).ok_or_else(|| corrupt("label value"))?;
            let len = read_u32(body, &mut pos).ok_or_else(|| corrupt("bitmap length"))? as usize;
            let raw = body.get(pos..pos + len).ok_or_else(|| corrupt("bitmap"))?;
            pos += len;
            let bitmap = RoaringBitmap::deserialize_from(raw)
                .map_err(|e| IndexError::Corrupt(e.to_string()))?;
            postings.all |= &bitmap;
            postings
                .by_name
                .entry(name)
                .or_default()
                .insert(value, bitmap);
        }
        Ok(postings)
    }
}

pub const INDEX_MAGIC: &[u8; 4] = b"VGIX";
const INDEX_VERSION: u8 = 1;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn read_u32(buf: &[u8], pos: &mut usize) -> Option<u32> {
    let b = buf.get(*pos..*pos + 4)?;
    *pos += 4;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_str(buf: &[u8], pos: &mut usize) -> Option<String> {
    let len = read_u32(buf, pos)? as usize;
    let b = buf.get(*pos..*pos + len)?;
    *pos += len;
    String::from_utf8(b.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::{Label, MatchOp};

    fn series(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_unsorted(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect())
    }

    fn sample_postings() -> Postings {
        let mut p = Postings::new();
        p.add(0, &series(&[("__name__", "up"), ("job", "node")]));
        p.add(
            1,
            &series(&[("__name__", "up"), ("job", "api"), ("zone", "a")]),
        );
        p.add(2, &series(&[("__name__", "go_goroutines"), ("job", "api")]));
        p
    }

    #[test]
    fn select_evaluates_all_matcher_kinds() {
        let p = sample_postings();
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        let ids = |b: RoaringBitmap| b.iter().collect::<Vec<_>>();
        assert_eq!(
            ids(p.select(&[m(MatchOp::Equal, "__name__", "up")])),
            vec![0, 1]
        );
        assert_eq!(
            ids(p.select(&[m(MatchOp::NotEqual, "job", "api")])),
            vec![0]
        );
        assert_eq!(
            ids(p.select(&[m(MatchOp::RegexMatch, "job", "a.*")])),
            vec![1, 2]
        );
        assert_eq!(
            ids(p.select(&[m(MatchOp::RegexNoMatch, "zone", "a")])),
            vec![0, 2]
        );
        assert_eq!(ids(p.select(&[m(MatchOp::Equal, "zone", "")])), vec![0, 2]);
        assert_eq!(p.label_values("job", &p.select(&[])), vec!["api", "node"]);
    }

    #[test]
    fn index_file_round_trips_and_detects_damage() {
        let p = sample_postings();
        let bytes = p.encode();
        let back = Postings::decode(&bytes).unwrap();
        assert_eq!(back.label_names(back.all()), p.label_names(p.all()));
        let mut damaged = bytes.clone();
        damaged[10] ^= 1;
        assert!(Postings::decode(&damaged).is_err());
    }
}
