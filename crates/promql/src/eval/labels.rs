//! Label-set edits the evaluator needs, and a map from label sets to dense ids that compares
//! the labels on hash hits (so a 64-bit collision never merges two groups).

use rustc_hash::FxHashMap;
use vigil_model::{labels_hash, Label, Labels, METRIC_NAME_LABEL};

/// The labels without `__name__`, reusing their storage.
pub fn into_without_name(labels: Labels) -> Labels {
    if labels.metric_name().is_none() {
        return labels;
    }
    let mut pairs = labels.into_vec();
    pairs.retain(|l| l.name != METRIC_NAME_LABEL);
    Labels::from_sorted(pairs)
}

/// Only the labels named in `names` (sorted or not).
pub fn keep_only(labels: &Labels, names: &[String]) -> Labels {
    Labels::from_sorted(
        labels
            .iter()
            .filter(|l| names.contains(&l.name))
            .cloned()
            .collect(),
    )
}

/// The labels minus those named in `names` and minus `__name__`.
pub fn drop_names_and_metric(labels: &Labels, names: &[String]) -> Labels {
    Labels::from_sorted(
        labels
            .iter()
            .filter(|l| l.name != METRIC_NAME_LABEL && !names.contains(&l.name))
            .cloned()
            .collect(),
    )
}

/// The labels with `name` set to `value` (removed when `value` is empty, as Prometheus does).
pub fn with_label(labels: &Labels, name: &str, value: &str) -> Labels {
    let mut pairs: Vec<Label> = labels.iter().filter(|l| l.name != name).cloned().collect();
    if !value.is_empty() {
        pairs.push(Label::new(name, value));
    }
    Labels::from_unsorted(pairs)
}

/// Hash of the label pairs `labels` selects for matching or grouping.
pub fn signature(labels: &Labels, names: &[String], on: bool) -> u64 {
    if on {
        labels_hash(
            labels
                .iter()
                .filter(|l| names.contains(&l.name))
                .map(|l| (l.name.as_str(), l.value.as_str())),
        )
    } else {
        labels_hash(
            labels
                .iter()
                .filter(|l| l.name != METRIC_NAME_LABEL && !names.contains(&l.name))
                .map(|l| (l.name.as_str(), l.value.as_str())),
        )
    }
}

/// Assigns dense ids to distinct label sets.
#[derive(Default)]
pub struct LabelSetIds {
    by_hash: FxHashMap<u64, Vec<usize>>,
    sets: Vec<Labels>,
}

impl LabelSetIds {
    /// The id of `labels`, and whether it was new.
    pub fn intern(&mut self, labels: Labels) -> (usize, bool) {
        let ids = self.by_hash.entry(labels.fx_hash()).or_default();
        if let Some(&id) = ids.iter().find(|&&id| self.sets[id] == labels) {
            return (id, false);
        }
        let id = self.sets.len();
        ids.push(id);
        self.sets.push(labels);
        (id, true)
    }

    /// The id of the label set made of the pairs of `labels` that `keep` keeps (in order), built
    /// only when it is new: grouping many series into few groups clones nothing per series.
    pub fn intern_selected(&mut self, labels: &Labels, keep: impl Fn(&Label) -> bool) -> usize {
        let hash = labels_hash(
            labels
                .iter()
                .filter(|l| keep(l))
                .map(|l| (l.name.as_str(), l.value.as_str())),
        );
        let ids = self.by_hash.entry(hash).or_default();
        let sets = &self.sets;
        if let Some(&id) = ids
            .iter()
            .find(|&&id| sets[id].iter().eq(labels.iter().filter(|l| keep(l))))
        {
            return id;
        }
        let id = self.sets.len();
        ids.push(id);
        self.sets.push(Labels::from_sorted(
            labels.iter().filter(|l| keep(l)).cloned().collect(),
        ));
        id
    }

    pub fn labels(&self, id: usize) -> &Labels {
        &self.sets[id]
    }

    pub fn into_labels(self) -> Vec<Labels> {
        self.sets
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }
}
