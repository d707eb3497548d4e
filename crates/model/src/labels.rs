use std::fmt;
use std::sync::Arc;

/// The label that carries a series' metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// One label pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A series' identity: label pairs sorted by name, names unique. Immutable and shared:
/// cloning is a reference-count increment (a query clones the label sets of every series it
/// reads).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Labels(Arc<[Label]>);

impl Labels {
    /// Wraps pairs already sorted by name with unique names (checked in debug builds).
    pub fn from_sorted(pairs: Vec<Label>) -> Self {
        debug_assert!(pairs.windows(2).all(|w| w[0].name < w[1].name));
        Self(pairs.into())
    }

    /// Sorts the pairs by name; the caller has rejected duplicate names.
    pub fn from_unsorted(mut pairs: Vec<Label>) -> Self {
        pairs.sort();
        Self(pairs.into())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    pub fn metric_name(&self) -> Option<&str> {
        // `__name__` sorts before every lower-case name, so it is nearly always first.
        match self.0.first() {
            Some(first) if first.name == METRIC_NAME_LABEL => Some(first.value.as_str()),
            _ => self.get(METRIC_NAME_LABEL),
        }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// The pairs as an owned vector (a copy: the set itself may be shared).
    pub fn into_vec(self) -> Vec<Label> {
        self.0.to_vec()
    }

    /// Bytes held by the strings, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.0
            .iter()
            .map(|l| l.name.len() + l.value.len())
            .sum::<usize>()
            + self.0.len() * std::mem::size_of::<Label>()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Labels {
    /// Prometheus' notation: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name().unwrap_or("");
        write!(f, "{name}{{")?;
        let mut first = true;
        for label in self.0.iter().filter(|l| l.name != METRIC_NAME_LABEL) {
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{}={:?}", label.name, label.value)?;
        }
        write!(f, "}}")
    }
}

/// The hash that identifies a label set in the head, computed the same way over owned
/// [`Labels`] and over borrowed pairs (FxHash of names and values with separators).
pub fn labels_hash<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    for (name, value) in pairs {
        h.write(name.as_bytes());
        h.write_u8(0xff);
        h.write(value.as_bytes());
        h.write_u8(0xfe);
    }
    h.finish()
}

/// Hasher for keys that already are hashes, such as [`labels_hash`] values: a map keyed by
/// them need not hash again.
#[derive(Default)]
pub struct PrehashedKey(u64);

impl std::hash::Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Labels {
    /// [`labels_hash`] of this set.
    pub fn fx_hash(&self) -> u64 {
        labels_hash(self.0.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }

    /// Whether the borrowed pairs are exactly this label set.
    pub fn equals_pairs(&self, pairs: &[(&str, &str)]) -> bool {
        self.0.len() == pairs.len()
            && self
                .0
                .iter()
                .zip(pairs)
                .all(|(l, (n, v))| l.name == *n && l.value == *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sort_and_lookup_by_name() {
        let labels = Labels::from_unsorted(vec![
            Label::new("job", "node"),
            Label::new("__name__", "up"),
            Label::new("instance", "a:1"),
        ]);
        assert_eq!(labels.metric_name(), Some("up"));
        assert_eq!(labels.get("job"), Some("node"));
        assert_eq!(labels.get("zone"), None);
        assert_eq!(labels.to_string(), r#"up{instance="a:1", job="node"}"#);
    }
}
