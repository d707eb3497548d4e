//! Turns a remote-write body into a validated batch: snappy-block decompression with a size
//! limit, protobuf decoding, and the label and timestamp checks that need no stored state. Series
//! that fail a check are set aside with a typed [`DiscardReason`] so the rest of the request is
//! still written. No HTTP here: the api crate maps errors to status codes.

use vigil_model::{Label, Labels, MetricMetadata, Sample, METRIC_NAME_LABEL};
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

/// One series of a validated request.
#[derive(Debug, Clone)]
pub struct SeriesWrite {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// A decoded request: what may be written, and what was set aside.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub series: Vec<SeriesWrite>,
    pub metadata: Vec<(String, MetricMetadata)>,
    pub discards: Vec<Discard>,
}

impl WriteBatch {
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

/// Decompresses and decodes a remote-write 1.0 body.
pub fn decode_remote_write(
    body: &[u8],
    limits: &ValidationLimits,
) -> Result<pb::WriteRequest, DecodeError> {
    let size = snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if size > limits.max_decompressed_bytes {
        return Err(DecodeError::TooLarge {
            size,
            limit: limits.max_decompressed_bytes,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Snappy(e.to_string()))?;
    <pb::WriteRequest as prost::Message>::decode(raw.as_slice())
        .map_err(|e| DecodeError::Protobuf(e.to_string()))
}

/// Validates a decoded request against the stateless rules.
pub fn validate(request: pb::WriteRequest, limits: &ValidationLimits, now_ms: i64) -> WriteBatch {
    let mut batch = WriteBatch::default();
    let newest_allowed = now_ms.saturating_add(limits.max_future_ms);
    for ts in request.timeseries {
        let sample_count = ts.samples.len();
        let labels = match validate_labels(ts.labels, limits) {
            Ok(labels) => labels,
            Err((reason, shown)) => {
                batch.discards.push(Discard {
                    reason,
                    samples: sample_count + ts.histograms.len(),
                    series: shown,
                    timestamp_ms: None,
                });
                continue;
            }
        };
        if !ts.histograms.is_empty() {
            batch.discards.push(Discard {
                reason: DiscardReason::NativeHistogramsUnsupported,
                samples: ts.histograms.len(),
                series: labels.to_string(),
                timestamp_ms: ts.histograms.first().map(|h| h.timestamp),
            });
        }
        let mut samples = Vec::with_capacity(sample_count);
        let mut future = 0;
        let mut first_future = None;
        for s in ts.samples {
            if s.timestamp > newest_allowed {
                future += 1;
                first_future.get_or_insert(s.timestamp);
            } else {
                samples.push(Sample::new(s.timestamp, s.value));
            }
        }
        if future > 0 {
            batch.discards.push(Discard {
                reason: DiscardReason::TooFarInFuture,
                samples: future,
                series: labels.to_string(),
                timestamp_ms: first_future,
            });
        }
        if !samples.is_empty() {
            // Senders must send a series' samples in order; sort defensively so the head sees
            // them oldest first.
            if !samples
                .windows(2)
                .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
            {
                samples.sort_by_key(|s| s.timestamp_ms);
            }
            batch.series.push(SeriesWrite { labels, samples });
        }
    }
    for m in request.metadata {
        if m.metric_family_name.is_empty() {
            continue;
        }
        let meta = MetricMetadata {
            metric_type: m.type_name().to_string(),
            help: m.help,
            unit: m.unit,
        };
        batch.metadata.push((m.metric_family_name, meta));
    }
    batch
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

fn show(labels: &[pb::Label]) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn validate_labels(
    raw: Vec<pb::Label>,
    limits: &ValidationLimits,
) -> Result<Labels, (DiscardReason, String)> {
    let fail = |reason, raw: &[pb::Label]| Err((reason, show(raw)));
    let mut name_seen = false;
    for (i, label) in raw.iter().enumerate() {
        if label.name.len() > limits.max_label_name_bytes {
            return fail(DiscardReason::LabelNameTooLong, &raw);
        }
        if label.value.len() > limits.max_label_value_bytes {
            return fail(DiscardReason::LabelValueTooLong, &raw);
        }
        if label.name == METRIC_NAME_LABEL {
            name_seen = true;
            if !is_metric_name(&label.value) {
                return fail(DiscardReason::InvalidMetricName, &raw);
            }
        } else if !is_label_name(&label.name) {
            return fail(DiscardReason::InvalidLabelName, &raw);
        }
        if i > 0 {
            let previous = &raw[i - 1].name;
            if *previous == label.name {
                return fail(DiscardReason::DuplicateLabelName, &raw);
            }
            if *previous > label.name {
                // Distinguish a duplicate that is merely out of place.
                if raw[..i].iter().any(|l| l.name == label.name) {
                    return fail(DiscardReason::DuplicateLabelName, &raw);
                }
                return fail(DiscardReason::UnsortedLabels, &raw);
            }
        }
    }
    if !name_seen {
        return fail(DiscardReason::MissingMetricName, &raw);
    }
    // An empty value means the label is absent, as in Prometheus.
    let pairs: Vec<Label> = raw
        .into_iter()
        .filter(|l| !l.value.is_empty())
        .map(|l| Label {
            name: l.name,
            value: l.value,
        })
        .collect();
    if pairs.len() > limits.max_label_names_per_series {
        return Err((DiscardReason::TooManyLabels, show_labels(&pairs)));
    }
    Ok(Labels::from_sorted(pairs))
}

fn show_labels(pairs: &[Label]) -> String {
    let pairs: Vec<String> = pairs
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", pairs.join(", "))
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

    fn reasons(batch: &WriteBatch) -> Vec<DiscardReason> {
        batch.discards.iter().map(|d| d.reason).collect()
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
        let batch = validate(request, &limits, 0);
        assert_eq!(
            reasons(&batch),
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
        assert_eq!(batch.series[1].labels.get("empty"), None);
        assert!(
            describe_discards(&batch.discards).contains("out of order")
                || !batch.discards.is_empty()
        );
    }

    #[test]
    fn garbage_bodies_are_decode_errors() {
        let limits = ValidationLimits::default();
        assert!(matches!(
            decode_remote_write(b"not snappy at all", &limits),
            Err(DecodeError::Snappy(_))
        ));
        let snappy_garbage = snap::raw::Encoder::new()
            .compress_vec(&[0xff, 0xff, 0xff])
            .unwrap();
        assert!(matches!(
            decode_remote_write(&snappy_garbage, &limits),
            Err(DecodeError::Protobuf(_))
        ));
    }
}
