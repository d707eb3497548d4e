//! Loki's push protobuf (`logproto.PushRequest` of `pkg/push/push.proto`) as prost structs, for
//! clients and tests that encode requests, plus the lenient decoding used on the ingest path.
//!
//! Go's gogo-protobuf does not check that `string` fields hold UTF-8, so Loki accepts lines with
//! any bytes. prost does check, and one bad line would fail the whole request; the ingest path
//! therefore decodes the same wire format into byte fields and converts each string itself.

use crate::{DecodeError, LogEntry, RawPush, RawStream};

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// The timestamp of `ns` nanoseconds since the Unix epoch (nanos always in 0..1e9).
    pub fn from_unix_nanos(ns: i64) -> Self {
        Self {
            seconds: ns.div_euclid(1_000_000_000),
            nanos: ns.rem_euclid(1_000_000_000) as i32,
        }
    }

    /// Nanoseconds since the Unix epoch, saturating at the ends of `i64`.
    pub fn to_unix_nanos(self) -> i64 {
        self.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(self.nanos))
    }
}

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`: `labels` is a selector-syntax string such as `{app="api", env="prod"}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Set by Loki internally; ignored on ingest (the hash is recomputed).
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

impl PushRequest {
    /// The request body a Loki client sends: protobuf, snappy block compressed.
    pub fn encode_snappy(&self) -> Vec<u8> {
        let raw = prost::Message::encode_to_vec(self);
        // Compressing an in-memory buffer only fails for inputs over ~4 GiB.
        snap::raw::Encoder::new()
            .compress_vec(&raw)
            .unwrap_or_default()
    }
}

// The same messages with byte fields, so invalid UTF-8 is handled per string, not per request.

#[derive(Clone, PartialEq, prost::Message)]
struct WirePushRequest {
    #[prost(message, repeated, tag = "1")]
    streams: Vec<WireStream>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WireStream {
    #[prost(bytes = "vec", tag = "1")]
    labels: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    entries: Vec<WireEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WireEntry {
    #[prost(message, optional, tag = "1")]
    timestamp: Option<Timestamp>,
    #[prost(bytes = "vec", tag = "2")]
    line: Vec<u8>,
    #[prost(message, repeated, tag = "3")]
    structured_metadata: Vec<WirePair>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WirePair {
    #[prost(bytes = "vec", tag = "1")]
    name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// Converts bytes to a string without copying when they are UTF-8; otherwise replaces each
/// invalid sequence with U+FFFD (what a Loki JSON query answer shows for such bytes) and counts it.
fn to_string_lossy(bytes: Vec<u8>, replaced: &mut usize) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            *replaced += 1;
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    }
}

/// Decodes an uncompressed `logproto.PushRequest`.
pub(crate) fn decode_push_request(raw: &[u8]) -> Result<RawPush, DecodeError> {
    let wire = <WirePushRequest as prost::Message>::decode(raw)
        .map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    let mut push = RawPush {
        streams: Vec::with_capacity(wire.streams.len()),
        invalid_utf8: 0,
    };
    for stream in wire.streams {
        let labels = to_string_lossy(stream.labels, &mut push.invalid_utf8);
        let mut entries = Vec::with_capacity(stream.entries.len());
        for entry in stream.entries {
            // A missing timestamp is Go's zero value in Loki; the Unix epoch is the closest
            // representable instant here.
            let timestamp_ns = entry.timestamp.map_or(0, Timestamp::to_unix_nanos);
            let line = to_string_lossy(entry.line, &mut push.invalid_utf8);
            let structured_metadata = entry
                .structured_metadata
                .into_iter()
                .map(|p| {
                    (
                        to_string_lossy(p.name, &mut push.invalid_utf8),
                        to_string_lossy(p.value, &mut push.invalid_utf8),
                    )
                })
                .collect();
            entries.push(LogEntry {
                timestamp_ns,
                line,
                structured_metadata,
            });
        }
        push.streams.push(RawStream { labels, entries });
    }
    Ok(push)
}
