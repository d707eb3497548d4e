//! Loki's JSON push bodies.
//!
//! v1 (`/loki/api/v1/push`):
//! `{"streams":[{"stream":{"app":"api"},"values":[["<unix ns>","<line>",{"meta":"v"}]]}]}` —
//! timestamps are strings of integer nanoseconds, the third element (structured metadata, a flat
//! object of strings) is optional, further elements are ignored, `null` entries and `null`
//! `values` are skipped. The `stream` object becomes Loki's label text (names sorted, values
//! Go-quoted; a repeated key keeps its last value) and is then parsed like a protobuf `labels`
//! field, so both formats share one set of label rules and messages.
//!
//! v0 (legacy `/api/prom/push`): `{"streams":[{"labels":"{app=\"api\"}","entries":
//! [{"ts":"<RFC 3339>","line":"<line>","structuredMetadata":[{"name":..,"value":..}]}]}]}`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::labels::format_labels;
use crate::{DecodeError, LogEntry, RawPush, RawStream};

/// Which JSON dialect a body is in (Loki picks it by URL path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonVersion {
    /// `/loki/api/v1/push`: `stream` object and `values` arrays.
    V1,
    /// `/api/prom/push`: `labels` string and `entries` objects with RFC 3339 `ts`.
    Legacy,
}

pub(crate) fn decode(body: &[u8], version: JsonVersion) -> Result<RawPush, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let streams = de
        .deserialize_map(RequestVisitor { version })
        .and_then(|s| de.end().map(|()| s))
        .map_err(|e| DecodeError::Json(e.to_string()))?;
    Ok(RawPush {
        streams,
        invalid_utf8: 0,
    })
}

struct RequestVisitor {
    version: JsonVersion,
}

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = Vec<RawStream>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a push request object with a \"streams\" array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut streams = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "streams" {
                streams = map
                    .next_value_seed(NullableSeq(StreamSeed {
                        version: self.version,
                    }))?
                    .unwrap_or_default();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(streams)
    }
}

/// A JSON array of `T` that may also be `null` (nothing).
struct NullableSeq<S>(S);

impl<'de, S> DeserializeSeed<'de> for NullableSeq<S>
where
    S: DeserializeSeed<'de> + Copy,
{
    type Value = Option<Vec<S::Value>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S> Visitor<'de> for NullableSeq<S>
where
    S: DeserializeSeed<'de> + Copy,
{
    type Value = Option<Vec<S::Value>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(self.0)? {
            out.push(item);
        }
        Ok(Some(out))
    }
}

#[derive(Clone, Copy)]
struct StreamSeed {
    version: JsonVersion,
}

impl<'de> DeserializeSeed<'de> for StreamSeed {
    type Value = RawStream;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for StreamSeed {
    type Value = RawStream;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a stream object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut labels = String::new();
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match (self.version, key.as_str()) {
                (JsonVersion::V1, "stream") => {
                    let set: Option<BTreeMap<String, String>> = map.next_value()?;
                    let set = set.unwrap_or_default();
                    labels = format_labels(set.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                }
                (JsonVersion::V1, "values") => {
                    let values = map.next_value_seed(NullableSeq(EntrySeed))?;
                    entries = values.unwrap_or_default().into_iter().flatten().collect();
                }
                (JsonVersion::Legacy, "labels") => {
                    labels = map.next_value::<Option<String>>()?.unwrap_or_default();
                }
                (JsonVersion::Legacy, "entries") => {
                    let values: Option<Vec<Option<LegacyEntry>>> = map.next_value()?;
                    entries = values
                        .unwrap_or_default()
                        .into_iter()
                        .flatten()
                        .map(LegacyEntry::into_entry)
                        .collect::<Result<_, _>>()
                        .map_err(de::Error::custom)?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(RawStream { labels, entries })
    }
}

/// One v1 `values` element: `null` (skipped) or `["<ns>", "<line>", {metadata}?, ...]`.
#[derive(Clone, Copy)]
struct EntrySeed;

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = Option<LogEntry>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = Option<LogEntry>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an entry array [\"<unix epoch in nanoseconds>\", \"<log line>\"]")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut entry = LogEntry {
            timestamp_ns: 0,
            line: String::new(),
            structured_metadata: Vec::new(),
        };
        if let Some(ts) = seq.next_element::<TimestampString>()? {
            entry.timestamp_ns = ts.0;
        } else {
            return Ok(Some(entry));
        }
        if let Some(line) = seq.next_element::<String>()? {
            entry.line = line;
        } else {
            return Ok(Some(entry));
        }
        if let Some(meta) = seq.next_element::<MetadataObject>()? {
            entry.structured_metadata = meta.0;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some(entry))
    }
}

/// A timestamp given as a string of integer Unix nanoseconds (numbers are rejected, as by Loki).
struct TimestampString(i64);

impl<'de> serde::Deserialize<'de> for TimestampString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TimestampString;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string of Unix epoch nanoseconds")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                s.parse::<i64>().map(TimestampString).map_err(|e| {
                    E::custom(format!("invalid timestamp {s:?}: {e} (expected Unix epoch nanoseconds as a string)"))
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// Structured metadata: a flat object whose values are strings, in the order written.
struct MetadataObject(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for MetadataObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetadataObject;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a structured metadata object of string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    pairs.push((k, v));
                }
                Ok(MetadataObject(pairs))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(serde::Deserialize)]
struct LegacyPair {
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(serde::Deserialize)]
struct LegacyEntry {
    ts: Option<String>,
    #[serde(default)]
    line: String,
    #[serde(default, rename = "structuredMetadata")]
    structured_metadata: Option<Vec<LegacyPair>>,
}

impl LegacyEntry {
    fn into_entry(self) -> Result<LogEntry, String> {
        let timestamp_ns = match self.ts {
            None => 0,
            Some(ts) => crate::time::parse_rfc3339(&ts).ok_or_else(|| {
                format!("invalid timestamp {ts:?}: expected an RFC 3339 time such as 2006-01-02T15:04:05.999999999Z")
            })?,
        };
        Ok(LogEntry {
            timestamp_ns,
            line: self.line,
            structured_metadata: self
                .structured_metadata
                .unwrap_or_default()
                .into_iter()
                .map(|p| (p.name, p.value))
                .collect(),
        })
    }
}
