//! A zero-copy reader of remote-write 1.0 protobuf: label names and values are borrowed from the
//! decompressed body, so a request for series the head already has allocates almost nothing.
//! Field numbers are those of `proto/remote.proto`; unknown fields are skipped as protobuf
//! requires.

use vigil_model::Sample;

use crate::DecodeError;

/// One time series of a request, as ranges into [`WireRequest`]'s flat arrays.
#[derive(Debug, Clone)]
pub struct WireSeries {
    pub labels: std::ops::Range<usize>,
    pub samples: std::ops::Range<usize>,
    pub histograms: usize,
}

/// Metric metadata: (type, family, help, unit).
pub type WireMetadata<'a> = (i32, &'a [u8], &'a [u8], &'a [u8]);

/// A decoded request borrowing from the body.
#[derive(Debug, Default)]
pub struct WireRequest<'a> {
    pub series: Vec<WireSeries>,
    pub labels: Vec<(&'a [u8], &'a [u8])>,
    pub samples: Vec<Sample>,
    pub metadata: Vec<WireMetadata<'a>>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn err(what: &str) -> DecodeError {
    DecodeError::Protobuf(what.to_string())
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| err("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift.min(63);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(err("varint too long"))
    }

    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let b = self
            .buf
            .get(self.pos..self.pos + 8)
            .ok_or_else(|| err("truncated fixed64"))?;
        self.pos += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()? as usize;
        let end = self
            .pos
            .checked_add(len)
            .ok_or_else(|| err("length overflow"))?;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| err("truncated length-delimited field"))?;
        self.pos = end;
        Ok(b)
    }

    /// Reads a tag: (field number, wire type).
    fn tag(&mut self) -> Result<(u64, u8), DecodeError> {
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(err("invalid field number 0"));
        }
        Ok((field, (key & 7) as u8))
    }

    fn skip(&mut self, wire_type: u8) -> Result<(), DecodeError> {
        match wire_type {
            0 => self.varint().map(|_| ()),
            1 => self.fixed64().map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => {
                self.pos = self
                    .pos
                    .checked_add(4)
                    .filter(|p| *p <= self.buf.len())
                    .ok_or_else(|| err("truncated fixed32"))?;
                Ok(())
            }
            other => Err(DecodeError::Protobuf(format!(
                "unsupported wire type {other}"
            ))),
        }
    }
}

fn expect(wire_type: u8, wanted: u8, what: &str) -> Result<(), DecodeError> {
    if wire_type == wanted {
        Ok(())
    } else {
        Err(DecodeError::Protobuf(format!(
            "{what}: wrong wire type {wire_type}"
        )))
    }
}

/// Parses a decompressed `prometheus.WriteRequest`.
pub fn parse_write_request(body: &[u8]) -> Result<WireRequest<'_>, DecodeError> {
    let mut request = WireRequest::default();
    let mut c = Cursor::new(body);
    while !c.done() {
        let (field, wt) = c.tag()?;
        match field {
            1 => {
                expect(wt, 2, "timeseries")?;
                let ts = c.bytes()?;
                parse_series(ts, &mut request)?;
            }
            3 => {
                expect(wt, 2, "metadata")?;
                let m = c.bytes()?;
                let mut mc = Cursor::new(m);
                let (mut kind, mut family, mut help, mut unit) = (0i32, &m[..0], &m[..0], &m[..0]);
                while !mc.done() {
                    let (f, wt) = mc.tag()?;
                    match (f, wt) {
                        (1, 0) => kind = mc.varint()? as i32,
                        (2, 2) => family = mc.bytes()?,
                        (4, 2) => help = mc.bytes()?,
                        (5, 2) => unit = mc.bytes()?,
                        (_, wt) => mc.skip(wt)?,
                    }
                }
                request.metadata.push((kind, family, help, unit));
            }
            _ => c.skip(wt)?,
        }
    }
    Ok(request)
}

fn parse_series<'a>(buf: &'a [u8], request: &mut WireRequest<'a>) -> Result<(), DecodeError> {
    let labels_start = request.labels.len();
    let samples_start = request.samples.len();
    let mut histograms = 0;
    let mut c = Cursor::new(buf);
    while !c.done() {
        let (field, wt) = c.tag()?;
        match field {
            1 => {
                expect(wt, 2, "label")?;
                let mut lc = Cursor::new(c.bytes()?);
                let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
                while !lc.done() {
                    let (f, wt) = lc.tag()?;
                    match (f, wt) {
                        (1, 2) => name = lc.bytes()?,
                        (2, 2) => value = lc.bytes()?,
                        (_, wt) => lc.skip(wt)?,
                    }
                }
                request.labels.push((name, value));
            }
            2 => {
                expect(wt, 2, "sample")?;
                let mut sc = Cursor::new(c.bytes()?);
                let (mut value, mut ts) = (0f64, 0i64);
                while !sc.done() {
                    let (f, wt) = sc.tag()?;
                    match (f, wt) {
                        (1, 1) => value = f64::from_bits(sc.fixed64()?),
                        (2, 0) => ts = sc.varint()? as i64,
                        (_, wt) => sc.skip(wt)?,
                    }
                }
                request.samples.push(Sample::new(ts, value));
            }
            4 => {
                expect(wt, 2, "histogram")?;
                c.bytes()?;
                histograms += 1;
            }
            _ => c.skip(wt)?,
        }
    }
    request.series.push(WireSeries {
        labels: labels_start..request.labels.len(),
        samples: samples_start..request.samples.len(),
        histograms,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use vigil_proto::prometheus as pb;

    #[test]
    fn agrees_with_prost_on_a_full_request() {
        let request = pb::WriteRequest {
            timeseries: vec![
                pb::TimeSeries {
                    labels: vec![
                        pb::Label {
                            name: "__name__".into(),
                            value: "up".into(),
                        },
                        pb::Label {
                            name: "job".into(),
                            value: "n\u{e9}".into(),
                        },
                    ],
                    samples: vec![
                        pb::Sample {
                            value: 1.5,
                            timestamp: -3,
                        },
                        pb::Sample {
                            value: f64::NAN,
                            timestamp: 1_700_000_000_000,
                        },
                    ],
                    exemplars: vec![pb::Exemplar {
                        labels: vec![],
                        value: 2.0,
                        timestamp: 5,
                    }],
                    histograms: vec![pb::Histogram { timestamp: 9 }],
                },
                pb::TimeSeries::default(),
            ],
            metadata: vec![pb::MetricMetadata {
                r#type: 1,
                metric_family_name: "up".into(),
                help: "h".into(),
                unit: "u".into(),
            }],
        };
        let bytes = request.encode_to_vec();
        let wire = parse_write_request(&bytes).unwrap();
        assert_eq!(wire.series.len(), 2);
        assert_eq!(wire.labels[1], (&b"job"[..], "n\u{e9}".as_bytes()));
        assert_eq!(wire.samples[0], Sample::new(-3, 1.5));
        assert_eq!(wire.samples[1].timestamp_ms, 1_700_000_000_000);
        assert_eq!(wire.series[0].histograms, 1);
        assert_eq!(wire.metadata, vec![(1, &b"up"[..], &b"h"[..], &b"u"[..])]);
        for cut in 1..bytes.len() {
            // Every truncation is an error or a shorter valid message, never a panic.
            let _ = parse_write_request(&bytes[..cut]);
        }
    }
}
