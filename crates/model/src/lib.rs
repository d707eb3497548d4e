//! Pure data shared by every stage of Vigil: label sets, samples, log entries, tenant ids and label
//! matchers.
//! No I/O happens here; every other crate builds on these types.

mod labels;
mod matcher;
mod tenant;

pub use labels::{labels_hash, Label, Labels, METRIC_NAME_LABEL};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use tenant::{TenantId, TenantIdError, DEFAULT_TENANT};

/// The bit pattern Prometheus uses for a staleness marker (`StaleNaN`). Compare bits, not `is_nan()`.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `value` is exactly Prometheus' staleness marker.
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// One float sample: milliseconds since the Unix epoch and a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub timestamp_ms: i64,
    pub value: f64,
}

impl Sample {
    pub fn new(timestamp_ms: i64, value: f64) -> Self {
        Self {
            timestamp_ms,
            value,
        }
    }

    /// Equality that treats two values as the same when their bits agree (so NaN == NaN).
    pub fn same_as(&self, other: &Sample) -> bool {
        self.timestamp_ms == other.timestamp_ms && self.value.to_bits() == other.value.to_bits()
    }
}

/// Prometheus metric metadata as remote-write carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetricMetadata {
    /// `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`, `info`, `stateset` or `unknown`.
    #[serde(rename = "type")]
    pub metric_type: String,
    pub help: String,
    pub unit: String,
}

/// One log entry: nanoseconds since the Unix epoch, the line exactly as received, and its
/// structured metadata (name, value) in the order sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogEntry {
    pub timestamp_ns: i64,
    pub line: String,
    pub structured_metadata: Vec<(String, String)>,
}

/// What a sample read turns each kept log entry into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSampleValue {
    /// 1 per entry (`count_over_time`, `rate`).
    One,
    /// The line's length in bytes (`bytes_over_time`, `bytes_rate`).
    LineBytes,
}

/// Samples of the entries of one stream that carry the same structured metadata: what a
/// metric query over a bare selector (and line filters) needs, without the lines themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSamples {
    pub labels: Labels,
    pub structured_metadata: Vec<(String, String)>,
    /// (timestamp ns, value), sorted by time.
    pub samples: Vec<(i64, f64)>,
}

impl LogSampleValue {
    /// The sample value of an entry with this line.
    pub fn of(self, line: &str) -> f64 {
        match self {
            LogSampleValue::One => 1.0,
            LogSampleValue::LineBytes => line.len() as f64,
        }
    }
}

impl LogSamples {
    /// Samples of one stream's entries (sorted by time), one group per set of structured
    /// metadata, in order of first appearance.
    pub fn from_entries(
        labels: &Labels,
        entries: Vec<LogEntry>,
        value: LogSampleValue,
    ) -> Vec<Self> {
        let mut groups: Vec<LogSamples> = Vec::new();
        for entry in entries {
            let sample = (entry.timestamp_ns, value.of(&entry.line));
            match groups
                .iter_mut()
                .find(|g| g.structured_metadata == entry.structured_metadata)
            {
                Some(group) => group.samples.push(sample),
                None => groups.push(LogSamples {
                    labels: labels.clone(),
                    structured_metadata: entry.structured_metadata,
                    samples: vec![sample],
                }),
            }
        }
        groups
    }
}

/// A predicate over log lines that storage applies while decoding.
pub type LineFilterFn = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What a log read needs of each entry, so that storage can skip work: lines that fail the
/// query's leading line filters are never copied out, and lines are left empty when only
/// timestamps (and structured metadata) matter, e.g. for `count_over_time({app="x"}[1m])`.
#[derive(Clone, Default)]
pub struct LogReadFilter {
    /// Entries are returned with an empty line. Exact repeats (same time, line and metadata)
    /// are then only removed within one head buffer, chunk or block, not across them.
    pub skip_lines: bool,
    /// Only entries whose line passes are returned.
    pub line_filter: Option<LineFilterFn>,
    /// Substrings every wanted line holds: each clause lists alternatives of which a wanted
    /// line contains at least one (what `line_filter` implies; lets storage skip row groups
    /// by their trigram index).
    pub required_substrings: Vec<Vec<String>>,
    /// Only the first `limit` entries in time order (`forward`) or the last ones are wanted,
    /// over all selected streams together: storage may stop reading older (newer) data once
    /// it holds that many.
    pub limit: Option<(usize, bool)>,
}

impl LogReadFilter {
    /// Whether an entry with this line is wanted.
    pub fn keeps(&self, line: &str) -> bool {
        self.line_filter.as_ref().is_none_or(|f| f(line))
    }

    /// The line as the reader returns it.
    pub fn line(&self, line: &str) -> String {
        if self.skip_lines {
            String::new()
        } else {
            line.to_string()
        }
    }
}

impl std::fmt::Debug for LogReadFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReadFilter")
            .field("skip_lines", &self.skip_lines)
            .field("line_filter", &self.line_filter.is_some())
            .field("required_substrings", &self.required_substrings)
            .field("limit", &self.limit)
            .finish()
    }
}
