//! Record payloads of the WAL. Every payload starts with a type byte and the tenant; series (and
//! log streams) are written once (id → labels) and samples (and log entries) refer to them by id,
//! so a sample costs a few bytes in the log and an entry little more than its line.

use vigil_model::{Label, Labels, LogEntry, MetricMetadata, Sample};

use crate::WalError;

const SERIES: u8 = 1;
const SAMPLES: u8 = 2;
const METADATA: u8 = 3;
const LOG_STREAMS: u8 = 4;
const LOG_ENTRIES: u8 = 5;
const LOG_CUT: u8 = 6;

/// A decoded WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// New series: head-local ids of a tenant with their labels.
    Series {
        tenant: String,
        series: Vec<(u32, Labels)>,
    },
    /// Samples by series id.
    Samples {
        tenant: String,
        samples: Vec<(u32, Sample)>,
    },
    /// Metric metadata by family name.
    Metadata {
        tenant: String,
        entries: Vec<(String, MetricMetadata)>,
    },
    /// New log streams: head-local ids of a tenant with their labels.
    LogStreams {
        tenant: String,
        streams: Vec<(u32, Labels)>,
    },
    /// Log entries by stream id.
    LogEntries {
        tenant: String,
        entries: Vec<(u32, LogEntry)>,
    },
    /// The tenant's log head let go of every entry before `end_ns` it held at this point of
    /// the log, for log block `block`. Replay drops them again when that block exists, so an
    /// entry is not both replayed and in the block.
    LogCut {
        tenant: String,
        end_ns: i64,
        block: String,
    },
}

pub fn encode_series(out: &mut Vec<u8>, tenant: &str, series: &[(u32, &Labels)]) {
    encode_label_sets(out, SERIES, tenant, series);
}

pub fn encode_log_streams(out: &mut Vec<u8>, tenant: &str, streams: &[(u32, &Labels)]) {
    encode_label_sets(out, LOG_STREAMS, tenant, streams);
}

/// Log entries: stream id, timestamp delta-encoded against the previous entry of the record,
/// the line, and the structured metadata pairs.
pub fn encode_log_entries<'a>(
    out: &mut Vec<u8>,
    tenant: &str,
    entries: impl ExactSizeIterator<Item = (u32, &'a LogEntry)>,
) {
    out.push(LOG_ENTRIES);
    put_str(out, tenant);
    put_uvarint(out, entries.len() as u64);
    let mut previous_ts = 0i64;
    for (id, entry) in entries {
        put_uvarint(out, u64::from(id));
        put_ivarint(out, entry.timestamp_ns.wrapping_sub(previous_ts));
        previous_ts = entry.timestamp_ns;
        put_str(out, &entry.line);
        put_uvarint(out, entry.structured_metadata.len() as u64);
        for (name, value) in &entry.structured_metadata {
            put_str(out, name);
            put_str(out, value);
        }
    }
}

fn encode_label_sets(out: &mut Vec<u8>, kind: u8, tenant: &str, series: &[(u32, &Labels)]) {
    out.push(kind);
    put_str(out, tenant);
    put_uvarint(out, series.len() as u64);
    for (id, labels) in series {
        put_uvarint(out, u64::from(*id));
        put_uvarint(out, labels.len() as u64);
        for label in labels.iter() {
            put_str(out, &label.name);
            put_str(out, &label.value);
        }
    }
}

/// Samples: id and timestamp delta-encoded against the previous sample of the record.
pub fn encode_log_cut(out: &mut Vec<u8>, tenant: &str, end_ns: i64, block: &str) {
    out.push(LOG_CUT);
    put_str(out, tenant);
    put_uvarint(out, 1);
    put_ivarint(out, end_ns);
    put_str(out, block);
}

pub fn encode_samples(out: &mut Vec<u8>, tenant: &str, samples: &[(u32, Sample)]) {
    out.push(SAMPLES);
    put_str(out, tenant);
    put_uvarint(out, samples.len() as u64);
    let mut previous_ts = 0i64;
    for (id, sample) in samples {
        put_uvarint(out, u64::from(*id));
        put_ivarint(out, sample.timestamp_ms.wrapping_sub(previous_ts));
        previous_ts = sample.timestamp_ms;
        out.extend_from_slice(&sample.value.to_bits().to_le_bytes());
    }
}

pub fn encode_metadata(out: &mut Vec<u8>, tenant: &str, entries: &[(String, MetricMetadata)]) {
    out.push(METADATA);
    put_str(out, tenant);
    put_uvarint(out, entries.len() as u64);
    for (family, meta) in entries {
        put_str(out, family);
        put_str(out, &meta.metric_type);
        put_str(out, &meta.help);
        put_str(out, &meta.unit);
    }
}

pub fn decode(payload: &[u8]) -> Result<Record, WalError> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    let kind = r.byte()?;
    let tenant = r.string()?;
    let count = r.uvarint()? as usize;
    // Counts come from checksummed records, but cap pre-allocation anyway.
    let capacity = count.min(payload.len());
    match kind {
        SERIES => Ok(Record::Series {
            tenant,
            series: r.label_sets(count)?,
        }),
        LOG_STREAMS => Ok(Record::LogStreams {
            tenant,
            streams: r.label_sets(count)?,
        }),
        LOG_ENTRIES => {
            let mut entries = Vec::with_capacity(capacity);
            let mut ts = 0i64;
            for _ in 0..count {
                let id = r.uvarint()? as u32;
                ts = ts.wrapping_add(r.ivarint()?);
                let line = r.string()?;
                let n = r.uvarint()? as usize;
                let mut structured_metadata = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    structured_metadata.push((r.string()?, r.string()?));
                }
                entries.push((
                    id,
                    LogEntry {
                        timestamp_ns: ts,
                        line,
                        structured_metadata,
                    },
                ));
            }
            Ok(Record::LogEntries { tenant, entries })
        }
        LOG_CUT => Ok(Record::LogCut {
            tenant,
            end_ns: r.ivarint()?,
            block: r.string()?,
        }),
        SAMPLES => {
            let mut samples = Vec::with_capacity(capacity);
            let mut ts = 0i64;
            for _ in 0..count {
                let id = r.uvarint()? as u32;
                ts = ts.wrapping_add(r.ivarint()?);
                let value = f64::from_bits(r.u64_le()?);
                samples.push((id, Sample::new(ts, value)));
            }
            Ok(Record::Samples { tenant, samples })
        }
        METADATA => {
            let mut entries = Vec::with_capacity(capacity);
            for _ in 0..count {
                let family = r.string()?;
                let meta = MetricMetadata {
                    metric_type: r.string()?,
                    help: r.string()?,
                    unit: r.string()?,
                };
                entries.push((family, meta));
            }
            Ok(Record::Metadata { tenant, entries })
        }
        other => Err(WalError::Corrupt(format!("unknown record type {other}"))),
    }
}

pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn short() -> WalError {
        WalError::Corrupt("record ends early".into())
    }

    fn byte(&mut self) -> Result<u8, WalError> {
        let b = *self.buf.get(self.pos).ok_or_else(Self::short)?;
        self.pos += 1;
        Ok(b)
    }

    fn uvarint(&mut self) -> Result<u64, WalError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(WalError::Corrupt("varint too long".into()))
    }

    fn ivarint(&mut self) -> Result<i64, WalError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn u64_le(&mut self) -> Result<u64, WalError> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + 8)
            .ok_or_else(Self::short)?;
        self.pos += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(a))
    }

    fn label_sets(&mut self, count: usize) -> Result<Vec<(u32, Labels)>, WalError> {
        let mut sets = Vec::with_capacity(count.min(self.buf.len()));
        for _ in 0..count {
            let id = self.uvarint()? as u32;
            let n = self.uvarint()? as usize;
            let mut pairs = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                pairs.push(Label {
                    name: self.string()?,
                    value: self.string()?,
                });
            }
            sets.push((id, Labels::from_unsorted(pairs)));
        }
        Ok(sets)
    }

    fn string(&mut self) -> Result<String, WalError> {
        let len = self.uvarint()? as usize;
        let bytes = self
            .buf
            .get(self.pos..self.pos.saturating_add(len))
            .ok_or_else(Self::short)?;
        self.pos += len;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| WalError::Corrupt("string is not utf-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let labels =
            Labels::from_unsorted(vec![Label::new("__name__", "up"), Label::new("job", "n")]);
        let mut buf = Vec::new();
        encode_series(&mut buf, "t1", &[(7, &labels)]);
        assert_eq!(
            decode(&buf).unwrap(),
            Record::Series {
                tenant: "t1".into(),
                series: vec![(7, labels.clone())]
            }
        );

        let mut buf = Vec::new();
        encode_log_streams(&mut buf, "t1", &[(3, &labels)]);
        assert_eq!(
            decode(&buf).unwrap(),
            Record::LogStreams {
                tenant: "t1".into(),
                streams: vec![(3, labels.clone())]
            }
        );
        let entries = vec![
            (
                3,
                LogEntry {
                    timestamp_ns: 1_700_000_000_123_456_789,
                    line: "héllo\nworld".into(),
                    structured_metadata: vec![("trace_id".into(), "abc".into())],
                },
            ),
            (
                4,
                LogEntry {
                    timestamp_ns: -5,
                    line: String::new(),
                    structured_metadata: vec![],
                },
            ),
        ];
        let mut buf = Vec::new();
        encode_log_entries(&mut buf, "t1", entries.iter().map(|(id, e)| (*id, e)));
        assert_eq!(
            decode(&buf).unwrap(),
            Record::LogEntries {
                tenant: "t1".into(),
                entries
            }
        );

        let mut buf = Vec::new();
        encode_log_cut(&mut buf, "t1", -1_700_000_000_000_000_001, "01JABC");
        assert_eq!(
            decode(&buf).unwrap(),
            Record::LogCut {
                tenant: "t1".into(),
                end_ns: -1_700_000_000_000_000_001,
                block: "01JABC".into()
            }
        );

        let stale = f64::from_bits(vigil_model::STALE_NAN_BITS);
        let samples = vec![(7, Sample::new(1000, 1.5)), (8, Sample::new(-5, stale))];
        let mut buf = Vec::new();
        encode_samples(&mut buf, "t1", &samples);
        match decode(&buf).unwrap() {
            Record::Samples { samples: got, .. } => {
                assert_eq!(got.len(), 2);
                assert!(got[1].1.same_as(&samples[1].1));
                assert_eq!(got[0], samples[0]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
