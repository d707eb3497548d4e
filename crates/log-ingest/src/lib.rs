//! Turns a Loki push request body into a validated batch of log streams: content decoding
//! (snappy-block protobuf, JSON, gzip/deflate) with a decompressed-size limit, the stream label
//! string parser, and the checks of Loki's distributor that need no stored state (labels, line
//! size, timestamps against `now`, structured metadata). Entries that fail a check are set aside
//! with a typed [`RejectReason`] and Loki's message so the rest of the request is still written;
//! [`describe_rejections`] renders them as Loki's 400 body. No HTTP and no storage here: the
//! server maps [`DecodeError`] and rejections to status codes, and out-of-order, duplicate and
//! stream-limit checks belong to the head, which has the state they need.

pub mod json;
pub mod labels;
pub mod proto;
pub mod time;

use std::io::Read;
use std::time::Duration;

use vigil_model::{Label, Labels};

pub use json::JsonVersion;
pub use labels::{format_labels, parse_labels, LabelParseError};

/// Limits applied while decoding and validating. Defaults are Loki's (`pkg/validation/limits.go`)
/// except where noted.
#[derive(Debug, Clone)]
pub struct LogLimits {
    /// Largest body after gzip/deflate/snappy decompression (Loki: 5000 MiB; here 256 MiB).
    pub max_decompressed_bytes: usize,
    /// `max_line_size`: 256 KiB; 0 means unlimited.
    pub max_line_bytes: usize,
    /// `max_line_size_truncate`: cut long lines to `max_line_bytes` instead of rejecting them.
    pub truncate_long_lines: bool,
    /// `max_line_size_truncate_identifier`: appended to a truncated line, within the limit.
    pub truncate_suffix: String,
    /// `max_label_names_per_series`: 15 (`service_name` is not counted, as in Loki).
    pub max_label_names_per_series: usize,
    /// `max_label_name_length`: 1024 bytes.
    pub max_label_name_bytes: usize,
    /// `max_label_value_length`: 2048 bytes.
    pub max_label_value_bytes: usize,
    /// `creation_grace_period`: entries newer than now + this are rejected (10 minutes).
    pub creation_grace_period: Duration,
    /// Entries older than now - this are rejected. Loki's default is `reject_old_samples: true`
    /// with 7 days; Vigil's is `None` (any age accepted, so backfills go in).
    pub reject_older_than: Option<Duration>,
    /// `allow_structured_metadata`: true.
    pub allow_structured_metadata: bool,
    /// `max_structured_metadata_size`: 64 KiB of names plus values per entry; 0 means unlimited.
    pub max_structured_metadata_bytes: usize,
    /// `max_structured_metadata_entries_count`: 128 per entry; 0 means unlimited.
    pub max_structured_metadata_entries: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: 256 << 20,
            max_line_bytes: 256 << 10,
            truncate_long_lines: false,
            truncate_suffix: String::new(),
            max_label_names_per_series: 15,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 2048,
            creation_grace_period: Duration::from_secs(10 * 60),
            reject_older_than: None,
            allow_structured_metadata: true,
            max_structured_metadata_bytes: 64 << 10,
            max_structured_metadata_entries: 128,
        }
    }
}

/// Errors that reject the whole request (a 400, or 413 for [`DecodeError::TooLarge`]).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("Content-Encoding {0:?} not supported")]
    UnsupportedEncoding(String),
    #[error("snappy decompression failed: {0}")]
    Snappy(String),
    #[error("gzip decompression failed: {0}")]
    Gzip(String),
    #[error("deflate decompression failed: {0}")]
    Deflate(String),
    #[error("decompressed body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("protobuf decoding failed: {0}")]
    Protobuf(String),
    #[error("JSON decoding failed: {0}")]
    Json(String),
}

/// The request body's `Content-Encoding` (Loki accepts none, `snappy`, `gzip` and `deflate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No header, or `snappy` (a hint only: protobuf bodies are always snappy-compressed).
    Identity,
    Gzip,
    /// Raw DEFLATE as Go's `compress/flate` reads it; zlib-wrapped bodies are accepted too.
    Deflate,
}

impl ContentEncoding {
    /// Parses the header value; anything Loki does not accept is an error.
    pub fn from_header(value: Option<&str>) -> Result<Self, DecodeError> {
        match value.map(str::trim) {
            None | Some("") | Some("snappy") => Ok(Self::Identity),
            Some("gzip") => Ok(Self::Gzip),
            Some("deflate") => Ok(Self::Deflate),
            Some(other) => Err(DecodeError::UnsupportedEncoding(other.to_string())),
        }
    }
}

/// How the (decompressed) body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `logproto.PushRequest`, snappy block compressed.
    Protobuf,
    Json(JsonVersion),
}

impl BodyFormat {
    /// Loki's choice: `application/json` (parameters ignored) is JSON in the dialect of the
    /// endpoint (`legacy_path` for `/api/prom/push`); anything else, or no header, is protobuf.
    pub fn from_content_type(value: Option<&str>, legacy_path: bool) -> Self {
        let media = value
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        match media.as_deref() {
            Some("application/json") if legacy_path => Self::Json(JsonVersion::Legacy),
            Some("application/json") => Self::Json(JsonVersion::V1),
            _ => Self::Protobuf,
        }
    }
}

/// Entries keep the line exactly as sent (see [`RawPush::invalid_utf8`] for the one exception).
pub use vigil_model::LogEntry;

/// One stream of a decoded, not yet validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawStream {
    /// The label text, `{a="b", ...}` (for JSON bodies: built from the `stream` object as Loki does).
    pub labels: String,
    pub entries: Vec<LogEntry>,
}

/// A decoded, not yet validated request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawPush {
    pub streams: Vec<RawStream>,
    /// Protobuf strings (lines, labels, metadata) that were not UTF-8. Loki stores such bytes
    /// as they are and its JSON answers show each invalid sequence as U+FFFD; here they are
    /// replaced by U+FFFD at ingest, which gives the same query results.
    pub invalid_utf8: usize,
}

impl RawPush {
    pub fn entry_count(&self) -> usize {
        self.streams.iter().map(|s| s.entries.len()).sum()
    }
}

/// Why entries were not accepted. [`RejectReason::as_label`] is Loki's `reason` label of
/// `loki_discarded_samples_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The label text does not parse.
    InvalidLabels,
    /// The stream has no labels.
    MissingLabels,
    MaxLabelNamesPerSeries,
    LabelNameTooLong,
    LabelValueTooLong,
    DuplicateLabelNames,
    LineTooLong,
    TooFarInFuture,
    /// Older than [`LogLimits::reject_older_than`].
    GreaterThanMaxSampleAge,
    DisallowedStructuredMetadata,
    StructuredMetadataTooLarge,
    StructuredMetadataTooMany,
    /// Not produced here: for the head (per-stream out-of-order window).
    TooFarBehind,
    /// Not produced here: for the head (max active streams per tenant).
    StreamLimit,
    /// Not produced here: for the server (tenant ingestion rate).
    RateLimited,
    /// Not produced here: for the server (per-stream rate).
    PerStreamRateLimit,
}

impl RejectReason {
    /// The `reason` metric label, as Loki spells it (`pkg/validation/validate.go`).
    pub fn as_label(self) -> &'static str {
        match self {
            Self::InvalidLabels => "invalid_labels",
            Self::MissingLabels => "missing_labels",
            Self::MaxLabelNamesPerSeries => "max_label_names_per_series",
            Self::LabelNameTooLong => "label_name_too_long",
            Self::LabelValueTooLong => "label_value_too_long",
            Self::DuplicateLabelNames => "duplicate_label_names",
            Self::LineTooLong => "line_too_long",
            Self::TooFarInFuture => "too_far_in_future",
            Self::GreaterThanMaxSampleAge => "greater_than_max_sample_age",
            Self::DisallowedStructuredMetadata => "disallowed_structured_metadata",
            Self::StructuredMetadataTooLarge => "structured_metadata_too_large",
            Self::StructuredMetadataTooMany => "structured_metadata_too_many",
            Self::TooFarBehind => "too_far_behind",
            Self::StreamLimit => "stream_limit",
            Self::RateLimited => "rate_limited",
            Self::PerStreamRateLimit => "per_stream_rate_limit",
        }
    }

    /// A short explanation, for documentation and logs (the per-entry text is
    /// [`Rejection::message`]).
    pub fn describe(self) -> &'static str {
        match self {
            Self::InvalidLabels => "the stream's label text does not parse",
            Self::MissingLabels => "the stream has no labels",
            Self::MaxLabelNamesPerSeries => "the stream has more label names than allowed",
            Self::LabelNameTooLong => "a label name is longer than allowed",
            Self::LabelValueTooLong => "a label value is longer than allowed",
            Self::DuplicateLabelNames => "a label name appears twice in the stream",
            Self::LineTooLong => "the line is longer than the maximum line size",
            Self::TooFarInFuture => {
                "the timestamp is later than now plus the creation grace period"
            }
            Self::GreaterThanMaxSampleAge => "the timestamp is older than the oldest accepted age",
            Self::DisallowedStructuredMetadata => "structured metadata is not allowed",
            Self::StructuredMetadataTooLarge => {
                "the entry's structured metadata is larger than allowed"
            }
            Self::StructuredMetadataTooMany => {
                "the entry has more structured metadata pairs than allowed"
            }
            Self::TooFarBehind => "the entry is older than the stream's out-of-order window",
            Self::StreamLimit => "the tenant's active stream limit is reached",
            Self::RateLimited => "the tenant's ingestion rate limit is exceeded",
            Self::PerStreamRateLimit => "the stream's rate limit is exceeded",
        }
    }
}

/// Entries set aside: a whole stream (label problems) or one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    /// How many entries this covers.
    pub entries: usize,
    /// Bytes of lines plus structured metadata of those entries (Loki's `discarded_bytes`).
    pub bytes: usize,
    /// The stream's label text.
    pub stream: String,
    /// The entry's timestamp, for entry-level reasons.
    pub timestamp_ns: Option<i64>,
    /// Loki's error text for this rejection.
    pub message: String,
}

/// One valid stream of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStream {
    /// Sorted by name, names unique, no empty values.
    pub labels: Labels,
    /// [`Labels::fx_hash`] of `labels`.
    pub hash: u64,
    /// In the order sent (Loki accepts unordered entries; ordering is the head's job).
    pub entries: Vec<LogEntry>,
}

/// A validated request: what may be written and what was set aside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogBatch {
    /// Streams with at least one valid entry. Two streams of a request with the same label set
    /// stay separate entries here (same hash), as in Loki.
    pub streams: Vec<LogStream>,
    pub rejections: Vec<Rejection>,
    /// Entries in the request, valid or not.
    pub total_entries: usize,
    /// Lines shortened because of `truncate_long_lines`, and the bytes removed.
    pub truncated_lines: usize,
    pub truncated_bytes: usize,
    /// Structured metadata pairs whose name was normalized or whose value lost invalid UTF-8.
    pub sanitized_metadata: usize,
    /// Strings that were not UTF-8 (see [`RawPush::invalid_utf8`]).
    pub invalid_utf8: usize,
}

impl LogBatch {
    pub fn accepted_entries(&self) -> usize {
        self.streams.iter().map(|s| s.entries.len()).sum()
    }

    pub fn rejected_entries(&self) -> usize {
        self.rejections.iter().map(|r| r.entries).sum()
    }

    /// The 400 body for this batch, or `None` when nothing was rejected.
    pub fn error_body(&self) -> Option<String> {
        (!self.rejections.is_empty())
            .then(|| describe_rejections(&self.rejections, self.total_entries))
    }
}

/// Decompresses `body` by its content encoding and then decodes it. Protobuf bodies are snappy
/// block compressed inside any gzip/deflate layer, as Loki expects.
pub fn decode(
    body: &[u8],
    format: BodyFormat,
    encoding: ContentEncoding,
    limits: &LogLimits,
) -> Result<RawPush, DecodeError> {
    let limit = limits.max_decompressed_bytes;
    let inflated;
    let body = match encoding {
        ContentEncoding::Identity => {
            if matches!(format, BodyFormat::Json(_)) && body.len() > limit {
                return Err(DecodeError::TooLarge { limit });
            }
            body
        }
        ContentEncoding::Gzip => {
            inflated = read_limited(flate2::read::MultiGzDecoder::new(body), limit)?
                .map_err(DecodeError::Gzip)?;
            &inflated[..]
        }
        ContentEncoding::Deflate => {
            // Go's compress/flate reads raw DEFLATE; RFC 9110's "deflate" is zlib-wrapped.
            inflated = match read_limited(flate2::read::DeflateDecoder::new(body), limit)? {
                Ok(v) => v,
                Err(raw_error) => read_limited(flate2::read::ZlibDecoder::new(body), limit)?
                    .map_err(|_| DecodeError::Deflate(raw_error))?,
            };
            &inflated[..]
        }
    };
    match format {
        BodyFormat::Json(version) => json::decode(body, version),
        BodyFormat::Protobuf => {
            let raw = snappy_decompress(body, limit)?;
            proto::decode_push_request(&raw)
        }
    }
}

/// Reads all of `reader` up to `limit` bytes: the outer error is the size limit, the inner one
/// a decompression failure.
fn read_limited(reader: impl Read, limit: usize) -> Result<Result<Vec<u8>, String>, DecodeError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    if let Err(e) = reader.take(cap).read_to_end(&mut out) {
        return Ok(Err(e.to_string()));
    }
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(Ok(out))
}

/// Snappy block decompression within `limit` bytes of output.
pub fn snappy_decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let size = snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if size > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Snappy(e.to_string()))
}

/// Decodes and validates a push request body: [`decode`] then [`validate`].
pub fn parse_push(
    body: &[u8],
    format: BodyFormat,
    encoding: ContentEncoding,
    limits: &LogLimits,
    now_ns: i64,
) -> Result<LogBatch, DecodeError> {
    let raw = decode(body, format, encoding, limits)?;
    Ok(validate(raw, limits, now_ns))
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn entry_bytes(e: &LogEntry) -> usize {
    e.line.len() + metadata_bytes(&e.structured_metadata)
}

fn metadata_bytes(m: &[(String, String)]) -> usize {
    m.iter().map(|(n, v)| n.len() + v.len()).sum()
}

/// Checks a decoded request against the stateless rules, in Loki's order: streams without
/// entries are dropped silently; long lines are truncated first when so configured; then the
/// stream's labels; then each entry's timestamp, line size and structured metadata.
pub fn validate(raw: RawPush, limits: &LogLimits, now_ns: i64) -> LogBatch {
    let mut batch = LogBatch {
        total_entries: raw.entry_count(),
        invalid_utf8: raw.invalid_utf8,
        ..Default::default()
    };
    let newest = now_ns.saturating_add(duration_ns(limits.creation_grace_period));
    let oldest = limits
        .reject_older_than
        .map(|d| now_ns.saturating_sub(duration_ns(d)));
    for mut stream in raw.streams {
        if stream.entries.is_empty() {
            continue;
        }
        if limits.truncate_long_lines && limits.max_line_bytes > 0 {
            for entry in &mut stream.entries {
                if let Some(removed) = truncate_line(
                    &mut entry.line,
                    limits.max_line_bytes,
                    &limits.truncate_suffix,
                ) {
                    batch.truncated_lines += 1;
                    batch.truncated_bytes += removed;
                }
            }
        }
        let labels = match stream_labels(&stream, limits) {
            Ok(labels) => labels,
            Err((reason, shown, message)) => {
                batch.rejections.push(Rejection {
                    reason,
                    entries: stream.entries.len(),
                    bytes: stream.entries.iter().map(entry_bytes).sum(),
                    stream: shown,
                    timestamp_ns: None,
                    message,
                });
                continue;
            }
        };
        let mut shown: Option<String> = None;
        let mut entries = Vec::with_capacity(stream.entries.len());
        for mut entry in stream.entries {
            let Some((reason, detail)) = check_entry(&entry, limits, newest, oldest) else {
                sanitize_metadata(
                    &mut entry.structured_metadata,
                    &mut batch.sanitized_metadata,
                );
                entries.push(entry);
                continue;
            };
            let text = shown.get_or_insert_with(|| labels_text(&labels));
            let message = entry_message(reason, text, &entry, detail, limits);
            batch.rejections.push(Rejection {
                reason,
                entries: 1,
                bytes: entry_bytes(&entry),
                stream: text.clone(),
                timestamp_ns: Some(entry.timestamp_ns),
                message,
            });
        }
        if entries.is_empty() {
            continue;
        }
        let hash = labels.fx_hash();
        batch.streams.push(LogStream {
            labels,
            hash,
            entries,
        });
    }
    batch
}

/// Shortens `line` to at most `max` bytes (ending with `suffix` when it fits), on a character
/// boundary. Returns the bytes removed, or `None` when the line was short enough.
fn truncate_line(line: &mut String, max: usize, suffix: &str) -> Option<usize> {
    if line.len() <= max {
        return None;
    }
    let before = line.len();
    let (keep, suffix) = if suffix.len() < max {
        (max - suffix.len(), suffix)
    } else {
        (max, "")
    };
    let mut cut = keep;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    line.truncate(cut);
    line.push_str(suffix);
    Some(before - line.len())
}

fn labels_text(labels: &Labels) -> String {
    format_labels(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

type LabelError = (RejectReason, String, String);

/// Parses and checks a stream's labels (Loki's `ParseLabels` plus `Validator.ValidateLabels`).
fn stream_labels(stream: &RawStream, limits: &LogLimits) -> Result<Labels, LabelError> {
    let mut pairs = parse_labels(&stream.labels).map_err(|e| {
        (
            RejectReason::InvalidLabels,
            stream.labels.clone(),
            format!("Error parsing labels '{}' with error: {e}", stream.labels),
        )
    })?;
    // An empty value is an absent label, as in Prometheus.
    pairs.retain(|(_, v)| !v.is_empty());
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let text = || format_labels(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    if pairs.is_empty() {
        return Err((
            RejectReason::MissingLabels,
            text(),
            "error at least one label pair is required per stream".to_string(),
        ));
    }
    let counted = pairs.len() - usize::from(pairs.iter().any(|(n, _)| n == "service_name"));
    if counted > limits.max_label_names_per_series {
        let shown = text();
        let message = format!(
            "entry for stream '{shown}' has {counted} label names; limit {}",
            limits.max_label_names_per_series
        );
        return Err((RejectReason::MaxLabelNamesPerSeries, shown, message));
    }
    let mut previous: Option<&str> = None;
    for (name, value) in &pairs {
        let problem = if name.len() > limits.max_label_name_bytes {
            Some((
                RejectReason::LabelNameTooLong,
                "has label name too long",
                name,
            ))
        } else if value.len() > limits.max_label_value_bytes {
            Some((
                RejectReason::LabelValueTooLong,
                "has label value too long",
                value,
            ))
        } else if previous == Some(name.as_str()) {
            Some((
                RejectReason::DuplicateLabelNames,
                "has duplicate label name",
                name,
            ))
        } else {
            None
        };
        if let Some((reason, what, shown_value)) = problem {
            let shown = text();
            let message = format!("stream '{shown}' {what}: '{shown_value}'");
            return Err((reason, shown, message));
        }
        previous = Some(name);
    }
    Ok(Labels::from_sorted(
        pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect(),
    ))
}

/// Loki's `Validator.ValidateEntry` order: too old, too new, line size, structured metadata.
/// Returns the reason and a number for the message (size, count or age bound).
fn check_entry(
    entry: &LogEntry,
    limits: &LogLimits,
    newest: i64,
    oldest: Option<i64>,
) -> Option<(RejectReason, i64)> {
    if let Some(oldest) = oldest {
        if entry.timestamp_ns < oldest {
            return Some((RejectReason::GreaterThanMaxSampleAge, oldest));
        }
    }
    if entry.timestamp_ns > newest {
        return Some((RejectReason::TooFarInFuture, 0));
    }
    if limits.max_line_bytes != 0 && entry.line.len() > limits.max_line_bytes {
        return Some((RejectReason::LineTooLong, entry.line.len() as i64));
    }
    let count = entry.structured_metadata.len();
    if count > 0 {
        if !limits.allow_structured_metadata {
            return Some((RejectReason::DisallowedStructuredMetadata, 0));
        }
        let size = metadata_bytes(&entry.structured_metadata);
        if limits.max_structured_metadata_bytes != 0 && size > limits.max_structured_metadata_bytes
        {
            return Some((RejectReason::StructuredMetadataTooLarge, size as i64));
        }
        if limits.max_structured_metadata_entries != 0
            && count > limits.max_structured_metadata_entries
        {
            return Some((RejectReason::StructuredMetadataTooMany, count as i64));
        }
    }
    None
}

/// Loki's message for an entry-level rejection (`pkg/validation/validate.go`), without the
/// pointers to Loki configuration keys.
fn entry_message(
    reason: RejectReason,
    stream: &str,
    entry: &LogEntry,
    detail: i64,
    limits: &LogLimits,
) -> String {
    let ts = || time::format_rfc3339(entry.timestamp_ns);
    match reason {
        RejectReason::GreaterThanMaxSampleAge => format!(
            "entry for stream '{stream}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
            ts(),
            time::format_rfc3339(detail)
        ),
        RejectReason::TooFarInFuture => {
            format!("entry for stream '{stream}' has timestamp too new: {}", ts())
        }
        RejectReason::LineTooLong => format!(
            "Max entry size '{}' bytes exceeded for stream '{stream}' while adding an entry with length '{detail}' bytes",
            limits.max_line_bytes
        ),
        RejectReason::DisallowedStructuredMetadata => format!(
            "stream '{stream}' includes structured metadata, but this feature is disallowed"
        ),
        RejectReason::StructuredMetadataTooLarge => format!(
            "stream '{stream}' has structured metadata too large: '{detail}' bytes, limit: '{}' bytes",
            limits.max_structured_metadata_bytes
        ),
        RejectReason::StructuredMetadataTooMany => format!(
            "stream '{stream}' has too many structured metadata labels: '{detail}', limit: '{}'",
            limits.max_structured_metadata_entries
        ),
        other => format!("entry for stream '{stream}' rejected: {}", other.describe()),
    }
}

/// What Loki's distributor does to accepted metadata: names become valid label names
/// (Prometheus' OTLP `NormalizeLabel`: invalid characters to `_`, `key_` before a leading digit)
/// and invalid UTF-8 (here: U+FFFD) is removed from values.
fn sanitize_metadata(pairs: &mut [(String, String)], sanitized: &mut usize) {
    for (name, value) in pairs.iter_mut() {
        let mut changed = false;
        if !name.is_empty() && !labels::is_label_name(name) {
            let mut fixed: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if fixed.starts_with(|c: char| c.is_ascii_digit()) {
                fixed.insert_str(0, "key_");
            }
            *name = fixed;
            changed = true;
        }
        if value.contains('\u{FFFD}') {
            value.retain(|c| c != '\u{FFFD}');
            changed = true;
        }
        if changed {
            *sanitized += 1;
        }
    }
}

/// The head's rejection of an entry older than its stream's out-of-order window, in the words of
/// Loki's ingester.
pub fn too_far_behind(stream: &str, entry: &LogEntry, oldest_acceptable_ns: i64) -> Rejection {
    let ts = time::format_rfc3339(entry.timestamp_ns);
    Rejection {
        reason: RejectReason::TooFarBehind,
        entries: 1,
        bytes: entry_bytes(entry),
        stream: stream.to_string(),
        timestamp_ns: Some(entry.timestamp_ns),
        message: format!(
            "entry with timestamp {ts} ignored, reason: 'entry too far behind, entry timestamp is: {ts}, oldest acceptable timestamp is: {}' for stream: {stream}",
            time::format_rfc3339(oldest_acceptable_ns)
        ),
    }
}

/// Most distinct messages listed in a 400 body; the total line still counts every entry.
pub const MAX_LISTED_ERRORS: usize = 10;

/// The client-facing text for rejections, as Loki's distributor writes its 400 body (messages
/// grouped by text, `N errors like: <message>` when a message repeats or several differ,
/// joined by `; `), at most [`MAX_LISTED_ERRORS`] distinct messages, then a line
/// `total ignored: N out of M` (the wording of Loki's ingester) counting entries.
pub fn describe_rejections(rejections: &[Rejection], total_entries: usize) -> String {
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for r in rejections {
        match groups.iter_mut().find(|(m, _)| *m == r.message) {
            Some(group) => group.1 += 1,
            None => groups.push((&r.message, 1)),
        }
    }
    let several = groups.len() > 1;
    let mut text = String::new();
    for (i, (message, n)) in groups.iter().take(MAX_LISTED_ERRORS).enumerate() {
        if i > 0 {
            text.push_str("; ");
        }
        if several || *n > 1 {
            text.push_str(&format!("{n} errors like: "));
        }
        text.push_str(message);
    }
    if groups.len() > MAX_LISTED_ERRORS {
        text.push_str(&format!(
            "; and {} more distinct errors",
            groups.len() - MAX_LISTED_ERRORS
        ));
    }
    let ignored: usize = rejections.iter().map(|r| r.entries).sum();
    text.push_str(&format!(
        "\ntotal ignored: {ignored} out of {total_entries}"
    ));
    text
}

#[cfg(test)]
mod tests;
