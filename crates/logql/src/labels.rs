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
/// allocations are reused across lines.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    base: Vec<(String, String)>,
    /// Current labels (stream labels plus changes), unsorted; small, so linear search.
    current: Vec<(String, String)>,
    error: Option<String>,
    error_details: Option<String>,
    /// Whether anything changed since the last reset (a clean builder needs no reset).
    dirty: bool,
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
        self.current.clear();
        self.current.extend(self.base.iter().cloned());
        self.error = None;
        self.error_details = None;
        self.dirty = false;
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
                .current
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
            _ => match self.current.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => {
                    v.clear();
                    v.push_str(value);
                }
                None => self.current.push((name.to_string(), value.to_string())),
            },
        }
    }

    /// Removes a label (no-op when absent).
    pub fn del(&mut self, name: &str) {
        self.dirty = true;
        match name {
            ERROR_LABEL => self.error = None,
            ERROR_DETAILS_LABEL => self.error_details = None,
            _ => self.current.retain(|(n, _)| n != name),
        }
    }

    /// Keeps only the labels for which `keep` answers true. The error pair is not a label here
    /// (as in Loki, `keep` leaves it alone; `drop __error__` removes it).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.dirty = true;
        self.current.retain(|(n, v)| keep(n, v));
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
        self.current.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The final, sorted label set, with `__error__`/`__error_details__` when set.
    pub fn labels(&self) -> Labels {
        let mut pairs: Vec<Label> = self
            .current
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
}
