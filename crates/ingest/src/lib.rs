//! Turns a remote-write body into a validated batch: snappy-block decompression with a size
//! limit, protobuf decoding, and the label and timestamp checks that need no stored state. Series
//! that fail a check are set aside with a typed [`DiscardReason`] so the rest of the request is
//! still written. No HTTP here: the api crate maps errors to status codes.

pub mod wire;

use vigil_model::{Labels, MetricMetadata, Sample, METRIC_NAME_LABEL};
use vigil_proto::prometheus as pb;

/// Limits applied while decoding and validating.
#[derive(Debug, Clone)]
pub struct ValidationLimits {
    pub max_decompressed_bytes: usize,
    pub max_label_names_per_series: usize,
    pub max_label_name_bytes: usize,
    pub max_label_value_bytes: usize,
    /// Samples later than now + this are rejected (Mimir's creation grace period).
    pub max_future_ms: i64,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: 256 << 20,
            max_label_names_per_series: 30,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 2048,
            max_future_ms: 10 * 60 * 1000,
        }
    }
}

/// Errors that reject the whole request.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("snappy decompression failed: {0}")]
    Snappy(String),
    #[error("decompressed body is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("protobuf decoding failed: {0}")]
    Protobuf(String),
}

/// Why a series or sample was not accepted. Each maps to the `reason` label of
/// `vigil_samples_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiscardReason {
    MissingMetricName,
    InvalidMetricName,
    InvalidLabelName,
    InvalidLabelValue,
    DuplicateLabelName,
    UnsortedLabels,
    TooManyLabels,
    LabelNameTooLong,
    LabelValueTooLong,
    NativeHistogramsUnsupported,
    TooFarInFuture,
    OutOfOrder,
    DuplicateTimestamp,
    SeriesLimit,
}

impl DiscardReason {
    pub fn as_label(self) -> &'static str {
        match self {
            Self::MissingMetricName => "missing_metric_name",
            Self::InvalidMetricName => "invalid_metric_name",
            Self::InvalidLabelName => "invalid_label_name",
            Self::InvalidLabelValue => "invalid_label_value",
            Self::DuplicateLabelName => "duplicate_label_name",
            Self::UnsortedLabels => "unsorted_labels",
            Self::TooManyLabels => "too_many_labels",
            Self::LabelNameTooLong => "label_name_too_long",
            Self::LabelValueTooLong => "label_value_too_long",
            Self::NativeHistogramsUnsupported => "native_histograms_unsupported",
            Self::TooFarInFuture => "too_far_in_future",
            Self::OutOfOrder => "out_of_order",
            Self::DuplicateTimestamp => "duplicate_timestamp",
            Self::SeriesLimit => "series_limit",
        }
    }

    /// The readable explanation sent back to the client.
    pub fn describe(self) -> &'static str {
        match self {
            Self::MissingMetricName => "series has no metric name (__name__ label)",
            Self::InvalidMetricName => "invalid metric name: must match [a-zA-Z_:][a-zA-Z0-9_:]*",
            Self::InvalidLabelName => "invalid label name: must match [a-zA-Z_][a-zA-Z0-9_]*",
            Self::InvalidLabelValue => "label value is not valid UTF-8",
            Self::DuplicateLabelName => "duplicate label name in series",
            Self::UnsortedLabels => "labels are not sorted by name",
            Self::TooManyLabels => "series has more labels than allowed",
            Self::LabelNameTooLong => "label name longer than allowed",
            Self::LabelValueTooLong => "label value longer than allowed",
            Self::NativeHistogramsUnsupported => "native histogram samples are not supported yet",
            Self::TooFarInFuture => "sample timestamp too far in the future",
            Self::OutOfOrder => "out of order sample: older than the series' newest sample by more than the out-of-order window",
            Self::DuplicateTimestamp => "duplicate sample for timestamp: a different value is already stored",
            Self::SeriesLimit => "per-tenant series limit reached",
        }
    }
}

/// A rejection with enough context for the error message.
#[derive(Debug, Clone)]
pub struct Discard {
    pub reason: DiscardReason,
    pub samples: usize,
    pub series: String,
    pub timestamp_ms: Option<i64>,
}

/// One valid series of a request: ranges into the batch's flat arrays and its label hash.
#[derive(Debug, Clone)]
pub struct ValidSeries {
    pub labels: std::ops::Range<usize>,
    pub samples: std::ops::Range<usize>,
    /// [`vigil_model::labels_hash`] of the labels.
    pub hash: u64,
}

/// A validated request: what may be written (borrowing label strings from the body), and what
/// was set aside.
#[derive(Debug, Default)]
pub struct WriteBatch<'a> {
    pub series: Vec<ValidSeries>,
    pub labels: Vec<(&'a str, &'a str)>,
    pub samples: Vec<Sample>,
    pub metadata: Vec<(String, MetricMetadata)>,
    pub discards: Vec<Discard>,
}

impl<'a> WriteBatch<'a> {
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    pub fn labels_of(&self, series: &ValidSeries) -> &[(&'a str, &'a str)] {
        &self.labels[series.labels.clone()]
    }

    pub fn samples_of(&self, series: &ValidSeries) -> &[Sample] {
        &self.samples[series.samples.clone()]
    }

    /// A batch over already-valid owned series (tests, internal writers).
    pub fn from_owned(series: &'a [(Labels, Vec<Sample>)]) -> Self {
        let mut batch = WriteBatch::default();
        for (labels, samples) in series {
            let start = batch.labels.len();
            batch
                .labels
                .extend(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
            let s_start = batch.samples.len();
            batch.samples.extend_from_slice(samples);
            batch.series.push(ValidSeries {
                labels: start..batch.labels.len(),
                samples: s_start..batch.samples.len(),
                hash: labels.fx_hash(),
            });
        }
        batch
    }
}

/// Decompresses a snappy-block body within the size limit.
pub fn decompress(body: &[u8], limits: &ValidationLimits) -> Result<Vec<u8>, DecodeError> {
    let size = snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if size > limits.max_decompressed_bytes {
        return Err(DecodeError::TooLarge {
            size,
            limit: limits.max_decompressed_bytes,
        });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Snappy(e.to_string()))
}

/// Parses and validates a decompressed remote-write 1.0 body against the stateless rules.
pub fn parse_and_validate<'a>(
    raw: &'a [u8],
    limits: &ValidationLimits,
    now_ms: i64,
) -> Result<WriteBatch<'a>, DecodeError> {
    let wire = wire::parse_write_request(raw)?;
    let mut batch = WriteBatch {
        labels: Vec::with_capacity(wire.labels.len()),
        samples: Vec::with_capacity(wire.samples.len()),
        ..Default::default()
    };
    let newest_allowed = now_ms.saturating_add(limits.max_future_ms);
    for ws in &wire.series {
        let raw_labels = &wire.labels[ws.labels.clone()];
        let raw_samples = &wire.samples[ws.samples.clone()];
        let labels_start = batch.labels.len();
        if let Err(reason) = validate_labels(raw_labels, limits, &mut batch.labels) {
            batch.labels.truncate(labels_start);
            batch.discards.push(Discard {
                reason,
                samples: raw_samples.len() + ws.histograms,
                series: show(raw_labels),
                timestamp_ms: None,
            });
            continue;
        }
        let labels = labels_start..batch.labels.len();
        let shown = || show_pairs(&batch.labels[labels.clone()]);
        if ws.histograms > 0 {
            batch.discards.push(Discard {
                reason: DiscardReason::NativeHistogramsUnsupported,
                samples: ws.histograms,
                series: shown(),
                timestamp_ms: None,
            });
        }
        let future = raw_samples
            .iter()
            .filter(|s| s.timestamp_ms > newest_allowed)
            .count();
        if future > 0 {
            let first = raw_samples
                .iter()
                .find(|s| s.timestamp_ms > newest_allowed)
                .map(|s| s.timestamp_ms);
            batch.discards.push(Discard {
                reason: DiscardReason::TooFarInFuture,
                samples: future,
                series: shown(),
                timestamp_ms: first,
            });
        }
        if future == raw_samples.len() {
            batch.labels.truncate(labels_start);
            continue;
        }
        let samples_start = batch.samples.len();
        batch.samples.extend(
            raw_samples
                .iter()
                .filter(|s| s.timestamp_ms <= newest_allowed),
        );
        let samples = samples_start..batch.samples.len();
        // Senders must send a series' samples in order; sort defensively so the head sees
        // them oldest first.
        let slice = &mut batch.samples[samples.clone()];
        if !slice
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
        {
            slice.sort_by_key(|s| s.timestamp_ms);
        }
        let hash = vigil_model::labels_hash(batch.labels[labels.clone()].iter().copied());
        batch.series.push(ValidSeries {
            labels,
            samples,
            hash,
        });
    }
    for (kind, family, help, unit) in wire.metadata {
        let (Ok(family), Ok(help), Ok(unit)) = (
            std::str::from_utf8(family),
            std::str::from_utf8(help),
            std::str::from_utf8(unit),
        ) else {
            continue;
        };
        if family.is_empty() {
            continue;
        }
        let metric_type = pb::MetricMetadata {
            r#type: kind,
            ..Default::default()
        }
        .type_name()
        .to_string();
        batch.metadata.push((
            family.to_string(),
            MetricMetadata {
                metric_type,
                help: help.to_string(),
                unit: unit.to_string(),
            },
        ));
    }
    Ok(batch)
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn show(raw: &[(&[u8], &[u8])]) -> String {
    let pairs: Vec<String> = raw
        .iter()
        .map(|(n, v)| {
            format!(
                "{}={:?}",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(v)
            )
        })
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Prometheus-like text of a borrowed label set, for error messages.
pub fn show_pairs(pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Checks one series' labels and appends the valid, non-empty pairs to `out`.
fn validate_labels<'a>(
    raw: &[(&'a [u8], &'a [u8])],
    limits: &ValidationLimits,
    out: &mut Vec<(&'a str, &'a str)>,
) -> Result<(), DiscardReason> {
    let mut name_seen = false;
    let mut kept = 0;
    for (i, (name, value)) in raw.iter().enumerate() {
        if name.len() > limits.max_label_name_bytes {
            return Err(DiscardReason::LabelNameTooLong);
        }
        if value.len() > limits.max_label_value_bytes {
            return Err(DiscardReason::LabelValueTooLong);
        }
        // Names are checked to be ASCII below, so this only fails for names we reject anyway.
        let name_str = std::str::from_utf8(name).unwrap_or("");
        let value = std::str::from_utf8(value).map_err(|_| DiscardReason::InvalidLabelValue)?;
        if name_str == METRIC_NAME_LABEL {
            name_seen = true;
            if !is_metric_name(value) {
                return Err(DiscardReason::InvalidMetricName);
            }
        } else if !is_label_name(name_str) {
            return Err(DiscardReason::InvalidLabelName);
        }
        if i > 0 {
            let previous = raw[i - 1].0;
            if previous == *name {
                return Err(DiscardReason::DuplicateLabelName);
            }
            if previous > *name {
                // Distinguish a duplicate that is merely out of place.
                if raw[..i].iter().any(|(n, _)| n == name) {
                    return Err(DiscardReason::DuplicateLabelName);
                }
                return Err(DiscardReason::UnsortedLabels);
            }
        }
        // An empty value means the label is absent, as in Prometheus.
        if !value.is_empty() {
            out.push((name_str, value));
            kept += 1;
        }
    }
    if !name_seen {
        return Err(DiscardReason::MissingMetricName);
    }
    if kept > limits.max_label_names_per_series {
        return Err(DiscardReason::TooManyLabels);
    }
    Ok(())
}

/// The client-facing text for a set of discards: counts per reason and one example each.
pub fn describe_discards(discards: &[Discard]) -> String {
    let mut by_reason: std::collections::BTreeMap<DiscardReason, (usize, &Discard)> =
        Default::default();
    for d in discards {
        by_reason.entry(d.reason).or_insert((0, d)).0 += d.samples;
    }
    let total: usize = by_reason.values().map(|(n, _)| n).sum();
    let mut text = format!("{total} samples rejected; the rest of the request was written.");
    for (reason, (count, example)) in by_reason {
        text.push_str(&format!(
            "\n{}: {count} samples ({}); e.g. series {}",
            reason.as_label(),
            reason.describe(),
            example.series
        ));
        if let Some(ts) = example.timestamp_ms {
            text.push_str(&format!(" at timestamp {ts}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn series(labels: &[(&str, &str)], ts: i64) -> pb::TimeSeries {
        pb::TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| pb::Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: vec![pb::Sample {
                value: 1.0,
                timestamp: ts,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn label_rules_reject_only_the_bad_series() {
        let limits = ValidationLimits::default();
        let request = pb::WriteRequest {
            timeseries: vec![
                series(&[("__name__", "up"), ("job", "ok")], 1),
                series(&[("job", "no-name")], 1),
                series(&[("__name__", "1bad")], 1),
                series(&[("__name__", "up"), ("bad-name", "x")], 1),
                series(&[("__name__", "up"), ("job", "a"), ("job", "b")], 1),
                series(&[("job", "a"), ("__name__", "up")], 1),
                series(&[("__name__", "up"), ("job", "future")], 10_000_000),
                series(&[("__name__", "up"), ("empty", ""), ("job", "e")], 1),
            ],
            metadata: vec![],
        };
        let bytes = request.encode_to_vec();
        let batch = parse_and_validate(&bytes, &limits, 0).unwrap();
        let reasons: Vec<DiscardReason> = batch.discards.iter().map(|d| d.reason).collect();
        assert_eq!(
            reasons,
            vec![
                DiscardReason::MissingMetricName,
                DiscardReason::InvalidMetricName,
                DiscardReason::InvalidLabelName,
                DiscardReason::DuplicateLabelName,
                DiscardReason::UnsortedLabels,
                DiscardReason::TooFarInFuture,
            ]
        );
        assert_eq!(batch.series.len(), 2);
        assert_eq!(
            batch.labels_of(&batch.series[1]),
            &[("__name__", "up"), ("job", "e")]
        );
        let owned = Labels::from_sorted(vec![
            vigil_model::Label::new("__name__", "up"),
            vigil_model::Label::new("job", "e"),
        ]);
        assert_eq!(batch.series[1].hash, owned.fx_hash());
        assert!(describe_discards(&batch.discards).contains("unsorted_labels"));
    }

    #[test]
    fn garbage_bodies_are_decode_errors() {
        let limits = ValidationLimits::default();
        assert!(matches!(
            decompress(b"not snappy at all", &limits),
            Err(DecodeError::Snappy(_))
        ));
        assert!(matches!(
            parse_and_validate(&[0xff, 0xff, 0xff], &limits, 0),
            Err(DecodeError::Protobuf(_))
        ));
    }
}
