//! The label set of one log line as it moves through a pipeline: the stream's labels, what
//! parsers extracted and formatters set, and the `__error__`/`__error_details__` pair.

use vigil_model::{Label, Labels};

/// Name of the error label set by failing parsers, formatters and filters.
pub const ERROR_LABEL: &str = "__error__";
/// Name of the label holding the error's details.
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";
/// Suffix a parser adds to an extracted key that collides with a stream label.
pub const EXTRACTED_SUFFIX: &str = "_extracted";

/// Error names as Loki spells them.
pub mod errors {
    pub const JSON_PARSER: &str = "JSONParserErr";
    pub const LOGFMT_PARSER: &str = "LogfmtParserErr";
    pub const SAMPLE_EXTRACTION: &str = "SampleExtractionErr";
    pub const LABEL_FILTER: &str = "LabelFilterErr";
    pub const TEMPLATE_FORMAT: &str = "TemplateFormatErr";
}

/// Labels of one line under construction. Reset per line with [`LabelsBuilder::reset`], so the
/// allocations are reused across lines: label slots past the current ones keep their strings
/// for the next line.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    base: Vec<(String, String)>,
    /// Current labels (stream labels plus changes) are `slots[..len]`, unsorted, in insertion
    /// order; small, so linear search.
    slots: Vec<(String, String)>,
    len: usize,
    error: Option<String>,
    error_details: Option<String>,
    /// Whether anything changed since the last reset (a clean builder needs no reset).
    dirty: bool,
    /// Reused by [`packed`](Self::packed) to sort the labels.
    key_order: Vec<usize>,
}

impl LabelsBuilder {
    pub fn new(stream: &Labels) -> Self {
        let mut b = Self::default();
        b.reset(stream);
        b
    }

    /// Starts over from a stream's labels.
    pub fn reset(&mut self, stream: &Labels) {
        self.dirty = true;
        self.base.clear();
        self.base.extend(
            stream
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string())),
        );
        self.reset_to_base();
    }

    /// Starts over from the same stream's labels (cheaper than [`reset`](Self::reset)).
    pub fn reset_to_base(&mut self) {
        if !self.dirty {
            return;
        }
        self.len = 0;
        for i in 0..self.base.len() {
            let (name, value) = &self.base[i];
            Self::fill(&mut self.slots, &mut self.len, name, value);
        }
        self.error = None;
        self.error_details = None;
        self.dirty = false;
    }

    /// Writes a label into the next free slot, reusing its strings.
    fn fill(slots: &mut Vec<(String, String)>, len: &mut usize, name: &str, value: &str) {
        match slots.get_mut(*len) {
            Some((n, v)) => {
                n.clear();
                n.push_str(name);
                v.clear();
                v.push_str(value);
            }
            None => slots.push((name.to_string(), value.to_string())),
        }
        *len += 1;
    }

    fn current(&self) -> &[(String, String)] {
        &self.slots[..self.len]
    }

    /// Whether the stream itself has this label.
    pub fn base_has(&self, name: &str) -> bool {
        self.base.iter().any(|(n, _)| n == name)
    }

    /// A label's value, including `__error__` and `__error_details__`.
    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            ERROR_LABEL => self.error.as_deref(),
            ERROR_DETAILS_LABEL => self.error_details.as_deref(),
            _ => self
                .current()
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets (adds or overwrites) a label.
    pub fn set(&mut self, name: &str, value: &str) {
        self.dirty = true;
        match name {
            ERROR_LABEL => self.error = Some(value.to_string()),
            ERROR_DETAILS_LABEL => self.error_details = Some(value.to_string()),
            _ => match self.slots[..self.len].iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => {
                    v.clear();
                    v.push_str(value);
                }
                None => Self::fill(&mut self.slots, &mut self.len, name, value),
            },
        }
    }

    /// Removes a label (no-op when absent).
    pub fn del(&mut self, name: &str) {
        self.dirty = true;
        match name {
            ERROR_LABEL => self.error = None,
            ERROR_DETAILS_LABEL => self.error_details = None,
            _ => self.retain(|n, _| n != name),
        }
    }

    /// Keeps only the labels for which `keep` answers true, in their order. The error pair is
    /// not a label here (as in Loki, `keep` leaves it alone; `drop __error__` removes it).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.dirty = true;
        let mut kept = 0;
        for i in 0..self.len {
            let (n, v) = &self.slots[i];
            if keep(n, v) {
                // Moves the dropped slots behind the kept ones, whose order stays.
                self.slots.swap(kept, i);
                kept += 1;
            }
        }
        self.len = kept;
    }

    /// Records an error; the first error of a line wins, as in Loki.
    pub fn set_error(&mut self, error: &str, details: Option<&str>) {
        if self.error.is_some() {
            return;
        }
        self.dirty = true;
        self.error = Some(error.to_string());
        if let Some(d) = details {
            self.error_details = Some(d.to_string());
        }
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    pub fn has_error(&self) -> bool {
        self.error.is_some()
    }

    /// Every current label (without the error pair), in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.current().iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// [`labels`](Self::labels) packed ([`PackedLabels`]).
    pub fn packed(&mut self) -> PackedLabels {
        let len = self.len;
        let extra = [
            self.error.as_deref().map(|e| (ERROR_LABEL, e)),
            self.error_details
                .as_deref()
                .map(|d| (ERROR_DETAILS_LABEL, d)),
        ];
        let pair = |i: usize| -> (&str, &str) {
            match self.slots[..len].get(i) {
                Some((n, v)) => (n.as_str(), v.as_str()),
                None => extra[i - len].unwrap_or_default(),
            }
        };
        let mut order = std::mem::take(&mut self.key_order);
        order.clear();
        order.extend(0..len);
        order.extend((0..2).filter(|&j| extra[j].is_some()).map(|j| len + j));
        order.sort_unstable_by(|&a, &b| pair(a).0.cmp(pair(b).0));
        let key = PackedLabels::from_sorted(order.iter().map(|&i| pair(i)));
        self.key_order = order;
        key
    }

    /// The final, sorted label set, with `__error__`/`__error_details__` when set.
    pub fn labels(&self) -> Labels {
        let mut pairs: Vec<Label> = self
            .current()
            .iter()
            .map(|(n, v)| Label::new(n.as_str(), v.as_str()))
            .collect();
        if let Some(e) = &self.error {
            pairs.push(Label::new(ERROR_LABEL, e.as_str()));
        }
        if let Some(d) = &self.error_details {
            pairs.push(Label::new(ERROR_DETAILS_LABEL, d.as_str()));
        }
        Labels::from_unsorted(pairs)
    }
}

/// A label set packed into one string (sorted pairs, names and values one after the other),
/// with its hash: the labels of a log query's lines and answer streams. Built for every line
/// a query keeps, so two allocations rather than [`Labels`]' two per label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedLabels {
    hash: u64,
    text: Box<str>,
    /// Where each name and value ends in `text`.
    ends: Box<[u32]>,
}

impl PackedLabels {
    /// Packs pairs sorted by name, names unique.
    pub fn from_sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let (size, count) = pairs.clone().fold((0, 0), |(size, count), (n, v)| {
            (size + n.len() + v.len(), count + 2)
        });
        let mut text = String::with_capacity(size);
        let mut ends = Vec::with_capacity(count);
        for (name, value) in pairs.clone() {
            for part in [name, value] {
                text.push_str(part);
                // Labels are far below 4 GiB: the request that carried them was.
                ends.push(text.len() as u32);
            }
        }
        Self {
            hash: vigil_model::labels_hash(pairs),
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    pub fn of(labels: &Labels) -> Self {
        Self::from_sorted(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.ends.chunks_exact(2).map(move |ends| {
            let (name_end, value_end) = (ends[0] as usize, ends[1] as usize);
            let pair = (&self.text[start..name_end], &self.text[name_end..value_end]);
            start = value_end;
            pair
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn to_labels(&self) -> Labels {
        Labels::from_sorted(self.iter().map(|(n, v)| Label::new(n, v)).collect())
    }
}

impl std::hash::Hash for PackedLabels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// In the order of [`Labels`]: pair by pair.
impl Ord for PackedLabels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for PackedLabels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for PackedLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_labels().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_tracks_changes_and_errors() {
        let stream = Labels::from_unsorted(vec![Label::new("app", "a"), Label::new("env", "p")]);
        let mut b = LabelsBuilder::new(&stream);
        assert!(b.base_has("app"));
        b.set("level", "info");
        b.set("app", "b");
        b.del("env");
        b.set_error("JSONParserErr", Some("bad"));
        b.set_error("Other", None);
        let l = b.labels();
        assert_eq!(
            l.to_string(),
            r#"{__error__="JSONParserErr", __error_details__="bad", app="b", level="info"}"#
        );
        b.reset_to_base();
        assert_eq!(b.labels(), stream);
    }

    #[test]
    fn packed_labels_are_the_labels() {
        let stream = Labels::from_unsorted(vec![Label::new("app", "a"), Label::new("env", "")]);
        let mut b = LabelsBuilder::new(&stream);
        assert_eq!(b.packed(), PackedLabels::of(&stream));
        assert_eq!(b.packed().to_labels(), stream);
        b.set("Zeta", "z\u{0}");
        b.set("level", "info");
        b.del("app");
        b.set_error("JSONParserErr", Some("bad"));
        let packed = b.packed();
        assert_eq!(packed.to_labels(), b.labels());
        assert_eq!(packed, PackedLabels::of(&b.labels()));
        assert_eq!(packed.get("level"), Some("info"));
        assert_eq!(packed.get("app"), None);
        b.set("level", "warn");
        assert_ne!(b.packed(), packed);
        // Where names end counts, not only their text.
        let ab = PackedLabels::from_sorted([("a", "bc")].into_iter());
        let abc = PackedLabels::from_sorted([("ab", "c")].into_iter());
        assert_ne!(ab, abc);
    }

    #[test]
    fn removing_labels_keeps_the_order_of_the_rest() {
        let mut b = LabelsBuilder::new(&Labels::default());
        for name in ["c", "a", "d", "b"] {
            b.set(name, name);
        }
        b.del("a");
        b.retain(|n, _| n != "d");
        b.set("e", "e");
        assert_eq!(
            b.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["c", "b", "e"]
        );
        b.reset_to_base();
        assert_eq!(b.iter().count(), 0);
        b.set("f", "f");
        assert_eq!(b.iter().collect::<Vec<_>>(), [("f", "f")]);
    }
}
