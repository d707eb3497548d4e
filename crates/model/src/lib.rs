//! Pure data shared by every stage of Vigil: label sets, samples, log entries, tenant ids and label
//! matchers.
//! No I/O happens here; every other crate builds on these types.

mod labels;
mod matcher;
mod tenant;

pub use labels::{labels_hash, Label, Labels, PrehashedKey, METRIC_NAME_LABEL};
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

/// What a window-sum read adds up per kept log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSampleValue {
    /// 1 per entry (`count_over_time`, `rate`).
    One,
    /// The line's length in bytes (`bytes_over_time`, `bytes_rate`).
    LineBytes,
}

impl LogSampleValue {
    /// The value of an entry with this line.
    pub fn of(self, line: &str) -> u64 {
        self.of_length(line.len())
    }

    /// The value of an entry whose line is `line_bytes` long.
    pub fn of_length(self, line_bytes: usize) -> u64 {
        match self {
            LogSampleValue::One => 1,
            LogSampleValue::LineBytes => line_bytes as u64,
        }
    }
}

/// The windows of a range aggregation: for step `i < steps`, `(end_i - range_ns, end_i]` with
/// `end_i = first_end_ns + i * step_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogWindows {
    pub first_end_ns: i64,
    pub step_ns: i64,
    pub steps: usize,
    pub range_ns: i64,
}

impl LogWindows {
    /// The steps whose window holds time `ts`, as an inclusive range; `None` when none does.
    pub fn steps_of(&self, ts: i64) -> Option<(usize, usize)> {
        // end_i >= ts and end_i - range < ts, i.e. ts <= end_i <= ts + range - 1.
        let step = self.step_ns.max(1);
        let lo = ts.checked_sub(self.first_end_ns);
        let (first, last) = match (lo, lo.and_then(|l| l.checked_add(self.range_ns - 1))) {
            // 64-bit division where nothing overflows: this runs once per entry.
            (Some(lo), Some(hi)) => (
                i128::from(lo.div_euclid(step) + i64::from(lo.rem_euclid(step) != 0)),
                i128::from(hi.div_euclid(step)),
            ),
            _ => {
                let step = i128::from(step);
                let lo = i128::from(ts) - i128::from(self.first_end_ns);
                let hi = lo + i128::from(self.range_ns) - 1;
                (
                    lo.div_euclid(step) + i128::from(lo.rem_euclid(step) != 0),
                    hi.div_euclid(step),
                )
            }
        };
        let (first, last) = (first.max(0), last.min(self.steps as i128 - 1));
        (first <= last).then_some((first as usize, last as usize))
    }
}

/// Per window: how many entries fell in it and the sum of their values (integers both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSums {
    pub counts: Vec<u64>,
    pub sums: Vec<u64>,
}

impl WindowSums {
    pub fn add(&mut self, other: &WindowSums) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            *a += b;
        }
    }
}

/// Adds entries to the windows that hold them in O(1) each (difference arrays), however much
/// the windows overlap.
#[derive(Debug, Clone)]
pub struct WindowSumsBuilder {
    windows: LogWindows,
    counts: Vec<i64>,
    sums: Vec<i64>,
}

impl WindowSumsBuilder {
    pub fn new(windows: LogWindows) -> Self {
        Self {
            windows,
            counts: vec![0; windows.steps + 1],
            sums: vec![0; windows.steps + 1],
        }
    }

    pub fn add(&mut self, timestamp_ns: i64, value: u64) {
        if let Some((first, last)) = self.windows.steps_of(timestamp_ns) {
            self.counts[first] += 1;
            self.counts[last + 1] -= 1;
            self.sums[first] += value as i64;
            self.sums[last + 1] -= value as i64;
        }
    }

    pub fn finish(self) -> WindowSums {
        let steps = self.windows.steps;
        let running = |diffs: Vec<i64>| -> Vec<u64> {
            let mut total = 0i64;
            diffs[..steps]
                .iter()
                .map(|d| {
                    total += d;
                    total as u64
                })
                .collect()
        };
        WindowSums {
            counts: running(self.counts),
            sums: running(self.sums),
        }
    }
}

/// Window sums of the entries of one stream that carry the same structured metadata: what a
/// metric query summing over a bare selector (and line filters) needs, without the lines.
#[derive(Debug, Clone, PartialEq)]
pub struct LogWindowSums {
    pub labels: Labels,
    pub structured_metadata: Vec<(String, String)>,
    pub sums: WindowSums,
}

impl LogWindowSums {
    /// Window sums of one stream's entries, one group per set of structured metadata, in order
    /// of first appearance.
    pub fn from_entries(
        labels: &Labels,
        entries: Vec<LogEntry>,
        value: LogSampleValue,
        windows: LogWindows,
    ) -> Vec<Self> {
        let mut groups: Vec<(Vec<(String, String)>, WindowSumsBuilder)> = Vec::new();
        for entry in entries {
            let v = value.of(&entry.line);
            match groups
                .iter_mut()
                .find(|(meta, _)| *meta == entry.structured_metadata)
            {
                Some((_, sums)) => sums.add(entry.timestamp_ns, v),
                None => {
                    let mut sums = WindowSumsBuilder::new(windows);
                    sums.add(entry.timestamp_ns, v);
                    groups.push((entry.structured_metadata, sums));
                }
            }
        }
        groups
            .into_iter()
            .map(|(structured_metadata, sums)| LogWindowSums {
                labels: labels.clone(),
                structured_metadata,
                sums: sums.finish(),
            })
            .collect()
    }
}

/// A predicate over log lines that storage applies while decoding.
pub type LineFilterFn = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Searches many lines laid end to end at once: the start of the leftmost place in the text
/// where a line that passes the filter can match, or `None` when no line in it passes. A match
/// it reports may run across two lines (the caller tests the line it starts in), but it never
/// misses a passing line, and it never matches empty text.
pub type LineSeekFn = std::sync::Arc<dyn Fn(&[u8]) -> Option<usize> + Send + Sync>;

/// What a log read needs of each entry, so that storage can skip work: lines that fail the
/// query's leading line filters are never copied out, and lines are left empty when only
/// timestamps (and structured metadata) matter, e.g. for `count_over_time({app="x"}[1m])`.
#[derive(Clone, Default)]
pub struct LogReadFilter {
    /// Entries are returned with an empty line. Exact repeats (same time, line and metadata)
    /// are then only removed within the head and within one block, not across them.
    pub skip_lines: bool,
    /// Only entries whose line passes are returned.
    pub line_filter: Option<LineFilterFn>,
    /// What `line_filter` implies, as a search over many lines at once: storage that holds
    /// lines end to end tests only those the search lands in.
    pub line_seek: Option<LineSeekFn>,
    /// Substrings every wanted line holds: each clause lists alternatives of which a wanted
    /// line contains at least one (what `line_filter` implies; lets storage skip row groups
    /// by their trigram index).
    pub required_substrings: Vec<Vec<String>>,
    /// Only the first `limit` entries in time order (`forward`) or the last ones are wanted,
    /// over all selected streams together: storage may stop reading older (newer) data once
    /// it holds that many.
    pub limit: Option<(usize, bool)>,
    /// Where storage counts the entries it reads (before the line filter), for a query's stats.
    pub stats: Option<std::sync::Arc<ReadStats>>,
    /// What later stages of the query (a parser, then label filters) imply a wanted line
    /// contains; storage may apply it as it applies `line_filter`, within its limits.
    pub implied: Option<ImpliedSubstrings>,
}

/// Substrings a wanted line contains because a label filter after a parser tests a label for
/// a literal value (`| json | logger="org.apache.Client"`): the value was parsed out of the
/// line, so the line holds it, unescaped or with a `\u` escape. That holds only where the
/// label was parsed from the line: not for a stream with a label of one of these names, nor for
/// an entry with structured metadata (the parser then keeps the existing label and names its
/// own `<name>_extracted`).
#[derive(Clone)]
pub struct ImpliedSubstrings {
    /// The label names the substrings come from.
    pub labels: Vec<String>,
    /// As [`LogReadFilter::required_substrings`] (including the escape alternatives), for
    /// skipping row groups.
    pub clauses: Vec<Vec<String>>,
    /// Whether a line may be wanted: the exact test of what `clauses` approximate.
    pub line_check: LineFilterFn,
}

/// Entries a read went through (in the wanted streams and time range, before line filters)
/// and the bytes of the lines among them that were decoded.
#[derive(Debug, Default)]
pub struct ReadStats {
    pub lines: std::sync::atomic::AtomicU64,
    pub bytes: std::sync::atomic::AtomicU64,
}

impl ReadStats {
    pub fn add(&self, lines: u64, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.lines.fetch_add(lines, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }

    /// (lines, bytes) so far.
    pub fn get(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.lines.load(Relaxed), self.bytes.load(Relaxed))
    }
}

impl LogReadFilter {
    /// Counts entries read into [`LogReadFilter::stats`], if set.
    pub fn count_read(&self, lines: u64, bytes: u64) {
        if let Some(stats) = &self.stats {
            stats.add(lines, bytes);
        }
    }
}

impl LogReadFilter {
    /// Whether an entry with this line is wanted.
    pub fn keeps(&self, line: &str) -> bool {
        self.line_filter.as_ref().is_none_or(|f| f(line))
    }

    /// Whether deciding which entries are wanted takes their lines.
    pub fn tests_lines(&self) -> bool {
        self.line_filter.is_some() || self.implied.is_some()
    }

    /// [`LogReadFilter::keeps`], also applying the implied substrings to an entry without
    /// structured metadata.
    pub fn keeps_entry(&self, line: &str, has_metadata: bool) -> bool {
        self.keeps(line)
            && (has_metadata || self.implied.as_ref().is_none_or(|i| (i.line_check)(line)))
    }

    /// This filter for reading the streams with `labels`: without the implied substrings when
    /// one of the streams has a label they come from.
    pub fn for_streams<'a>(&self, mut labels: impl Iterator<Item = &'a Labels>) -> Self {
        let mut filter = self.clone();
        if let Some(implied) = &self.implied {
            if labels.any(|l| implied.labels.iter().any(|name| l.get(name).is_some())) {
                filter.implied = None;
            }
        }
        filter
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
            .field("line_seek", &self.line_seek.is_some())
            .field("required_substrings", &self.required_substrings)
            .field("limit", &self.limit)
            .field("stats", &self.stats.is_some())
            .field(
                "implied",
                &self.implied.as_ref().map(|i| (&i.labels, &i.clauses)),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_substrings_apply_only_where_the_label_is_parsed_from_the_line() {
        let filter = LogReadFilter {
            implied: Some(ImpliedSubstrings {
                labels: vec!["logger".into()],
                clauses: vec![vec!["Client".into()]],
                line_check: std::sync::Arc::new(|l: &str| l.contains("Client")),
            }),
            ..Default::default()
        };
        assert!(filter.tests_lines());
        assert!(filter.keeps_entry("a Client", false));
        assert!(!filter.keeps_entry("a Server", false));
        // Structured metadata may hold the label: the parser keeps it, the line need not.
        assert!(filter.keeps_entry("a Server", true));
        let plain = Labels::from_unsorted(vec![Label::new("app", "x")]);
        let labelled = Labels::from_unsorted(vec![Label::new("logger", "Client")]);
        assert!(filter.for_streams([&plain].into_iter()).implied.is_some());
        let other = filter.for_streams([&plain, &labelled].into_iter());
        assert!(other.implied.is_none());
        assert!(other.keeps_entry("a Server", false));
    }

    #[test]
    fn steps_of_far_times_do_not_overflow() {
        let windows = LogWindows {
            first_end_ns: i64::MAX - 10,
            step_ns: 10,
            steps: 3,
            range_ns: 20,
        };
        assert_eq!(windows.steps_of(i64::MIN), None);
        assert_eq!(windows.steps_of(i64::MAX - 15), Some((0, 1)));
        assert_eq!(windows.steps_of(i64::MAX - 25), Some((0, 0)));
        assert_eq!(windows.steps_of(i64::MAX - 30), None);
        let windows = LogWindows {
            first_end_ns: i64::MIN + 10,
            ..windows
        };
        assert_eq!(windows.steps_of(i64::MAX), None);
        assert_eq!(windows.steps_of(i64::MIN + 9), Some((0, 1)));
    }

    #[test]
    fn window_sums_match_a_direct_count() {
        for (first_end_ns, step_ns, steps, range_ns) in [
            (100, 10, 20, 30),
            (100, 30, 7, 10),
            (-55, 7, 40, 7),
            (0, 1, 1, 1_000),
        ] {
            let windows = LogWindows {
                first_end_ns,
                step_ns,
                steps,
                range_ns,
            };
            let times: Vec<i64> = (-200..600).step_by(3).collect();
            let mut builder = WindowSumsBuilder::new(windows);
            for &t in &times {
                builder.add(t, (t.rem_euclid(5) + 1) as u64);
            }
            let got = builder.finish();
            for i in 0..steps {
                let end = first_end_ns + i as i64 * step_ns;
                let inside: Vec<i64> = times
                    .iter()
                    .copied()
                    .filter(|&t| t > end - range_ns && t <= end)
                    .collect();
                assert_eq!(got.counts[i], inside.len() as u64, "{windows:?} step {i}");
                let sum: i64 = inside.iter().map(|t| t.rem_euclid(5) + 1).sum();
                assert_eq!(got.sums[i], sum as u64, "{windows:?} step {i}");
            }
        }
    }
}
