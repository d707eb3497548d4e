//! Test data: label sets, remote-write request builders, node-exporter-like series, and
//! [`Dataset`], the exact set of samples a test expects, compared bit for bit.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use vigil_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};

/// A series' labels, sorted by name (`__name__` included).
pub type LabelSet = Vec<(String, String)>;

/// The stale marker of Prometheus (`model/value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Builds a sorted label set from `metric` and `pairs`.
pub fn labels(metric: &str, pairs: &[(&str, &str)]) -> LabelSet {
    let mut set: LabelSet = pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    set.push(("__name__".to_string(), metric.to_string()));
    set.sort();
    set
}

/// Renders a label set as a PromQL selector `{a="b",…}` (for messages and `match[]`).
pub fn selector(set: &LabelSet) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in set.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = write!(out, "{name}=\"{escaped}\"");
    }
    out.push('}');
    out
}

/// Proto labels in exactly the given order (tests of bad input build their own orders).
pub fn proto_labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(name, value)| Label {
            name: name.to_string(),
            value: value.to_string(),
        })
        .collect()
}

/// One proto time series from a (sorted) label set and `(timestamp_ms, value)` pairs.
pub fn series(set: &LabelSet, samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: set
            .iter()
            .map(|(name, value)| Label {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        exemplars: Vec::new(),
        histograms: Vec::new(),
    }
}

/// A write request of the given series.
pub fn request(timeseries: Vec<TimeSeries>) -> WriteRequest {
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}

/// The series a node exporter on `instance` exposes (a representative subset: CPU modes per core,
/// memory, load, network and disk counters, file systems), with `job="node"`.
pub fn node_exporter_series(instance: &str, extra: &[(&str, &str)]) -> Vec<LabelSet> {
    let base = |metric: &str, pairs: &[(&str, &str)]| {
        let mut all: Vec<(&str, &str)> = vec![("instance", instance), ("job", "node")];
        all.extend_from_slice(extra);
        all.extend_from_slice(pairs);
        labels(metric, &all)
    };
    let mut out = Vec::new();
    for cpu in ["0", "1"] {
        for mode in ["idle", "iowait", "system", "user"] {
            out.push(base(
                "node_cpu_seconds_total",
                &[("cpu", cpu), ("mode", mode)],
            ));
        }
    }
    out.push(base("node_memory_MemAvailable_bytes", &[]));
    out.push(base("node_memory_MemTotal_bytes", &[]));
    out.push(base("node_load1", &[]));
    out.push(base("node_load5", &[]));
    for device in ["eth0", "lo"] {
        out.push(base(
            "node_network_receive_bytes_total",
            &[("device", device)],
        ));
        out.push(base(
            "node_network_transmit_bytes_total",
            &[("device", device)],
        ));
    }
    out.push(base(
        "node_disk_io_time_seconds_total",
        &[("device", "sda")],
    ));
    out.push(base(
        "node_filesystem_avail_bytes",
        &[
            ("device", "/dev/sda1"),
            ("fstype", "ext4"),
            ("mountpoint", "/"),
        ],
    ));
    out.push(base(
        "node_filesystem_avail_bytes",
        &[
            ("device", "tmpfs"),
            ("fstype", "tmpfs"),
            ("mountpoint", "/run"),
        ],
    ));
    out.push(base("up", &[]));
    out
}

/// A random float value: mostly ordinary magnitudes, sometimes extremes and odd bit patterns
/// (zero, subnormals, infinities). Never a NaN, never -0.0: proto3 does not encode a field equal
/// to its default, and -0.0 == 0.0, so -0.0 cannot cross the remote-write wire (in Prometheus' Go
/// client neither) and arrives as 0.0.
pub fn random_value(rng: &mut fastrand::Rng) -> f64 {
    match rng.u8(0..20) {
        0 => 0.0,
        1 => f64::from_bits(rng.u64(1..0x000f_ffff_ffff_ffff)),
        2 => f64::INFINITY,
        3 => f64::NEG_INFINITY,
        4 => f64::MAX,
        5..=9 => rng.u32(..) as f64,
        _ => loop {
            let value = f64::from_bits(rng.u64(..));
            if !value.is_nan() && value.to_bits() != (-0.0f64).to_bits() {
                break value;
            }
        },
    }
}

/// Samples keyed by tenant, then series, then timestamp; values as their bit patterns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dataset {
    pub tenants: BTreeMap<String, BTreeMap<LabelSet, BTreeMap<i64, u64>>>,
}

impl Dataset {
    /// Adds every sample of a (valid, sorted-label) write request. Two different values for one
    /// timestamp of a series are a bug in the test.
    pub fn add_request(&mut self, tenant: &str, request: &WriteRequest) {
        for series in &request.timeseries {
            let set: LabelSet = series
                .labels
                .iter()
                .filter(|label| !label.value.is_empty())
                .map(|label| (label.name.clone(), label.value.clone()))
                .collect();
            for sample in &series.samples {
                self.insert(tenant, &set, sample.timestamp, sample.value.to_bits());
            }
        }
    }

    pub fn insert(&mut self, tenant: &str, set: &LabelSet, timestamp: i64, bits: u64) {
        let slot = self
            .tenants
            .entry(tenant.to_string())
            .or_default()
            .entry(set.clone())
            .or_default();
        if let Some(old) = slot.insert(timestamp, bits) {
            assert_eq!(
                old,
                bits,
                "test bug: two values for {} at {timestamp}",
                selector(set)
            );
        }
    }

    /// Adds a remote-read result, checking its shape: labels sorted and unique, timestamps
    /// strictly increasing and inside `[start_ms, end_ms]`.
    pub fn add_read_result(
        &mut self,
        tenant: &str,
        result: &[TimeSeries],
        start_ms: i64,
        end_ms: i64,
    ) {
        for series in result {
            let set: LabelSet = series
                .labels
                .iter()
                .map(|label| (label.name.clone(), label.value.clone()))
                .collect();
            assert!(
                set.windows(2).all(|pair| pair[0].0 < pair[1].0),
                "remote read returned labels that are not sorted and unique: {set:?}"
            );
            let tenant_map = self.tenants.entry(tenant.to_string()).or_default();
            assert!(
                !tenant_map.contains_key(&set),
                "remote read returned series {} twice",
                selector(&set)
            );
            let samples = tenant_map.entry(set.clone()).or_default();
            let mut previous = i64::MIN;
            for sample in &series.samples {
                assert!(
                    sample.timestamp > previous,
                    "remote read: timestamps of {} not strictly increasing ({} after {previous})",
                    selector(&set),
                    sample.timestamp
                );
                assert!(
                    (start_ms..=end_ms).contains(&sample.timestamp),
                    "remote read: sample of {} at {} outside the asked range [{start_ms}, {end_ms}]",
                    selector(&set),
                    sample.timestamp
                );
                previous = sample.timestamp;
                samples.insert(sample.timestamp, sample.value.to_bits());
            }
        }
    }

    /// Merges another dataset in (values must agree where both have a sample).
    pub fn merge(&mut self, other: &Dataset) {
        for (tenant, series) in &other.tenants {
            for (set, samples) in series {
                for (&timestamp, &bits) in samples {
                    self.insert(tenant, set, timestamp, bits);
                }
            }
        }
    }

    pub fn sample_count(&self) -> usize {
        self.tenants
            .values()
            .flat_map(|series| series.values())
            .map(|samples| samples.len())
            .sum()
    }

    pub fn series_count(&self) -> usize {
        self.tenants.values().map(|series| series.len()).sum()
    }

    /// The dataset of one tenant only.
    pub fn tenant(&self, tenant: &str) -> Dataset {
        let mut out = Dataset::default();
        if let Some(series) = self.tenants.get(tenant) {
            out.tenants.insert(tenant.to_string(), series.clone());
        }
        out
    }

    /// Smallest and largest timestamp (panics when empty).
    pub fn time_range(&self) -> (i64, i64) {
        let mut range = (i64::MAX, i64::MIN);
        for samples in self.tenants.values().flat_map(|series| series.values()) {
            if let (Some((&first, _)), Some((&last, _))) =
                (samples.first_key_value(), samples.last_key_value())
            {
                range = (range.0.min(first), range.1.max(last));
            }
        }
        assert!(range.0 <= range.1, "empty dataset has no time range");
        range
    }

    /// The differences `self` (expected) → `actual`, as readable lines: samples missing from
    /// `actual`, samples with other values, and (when `exact`) samples `actual` has in excess.
    pub fn diff(&self, actual: &Dataset, exact: bool) -> Vec<String> {
        let mut lines = Vec::new();
        let empty = BTreeMap::new();
        for (tenant, series) in &self.tenants {
            let actual_series = actual.tenants.get(tenant).unwrap_or(&empty);
            for (set, samples) in series {
                let Some(actual_samples) = actual_series.get(set) else {
                    if !samples.is_empty() {
                        lines.push(format!(
                            "tenant {tenant}: series {} missing ({} samples)",
                            selector(set),
                            samples.len()
                        ));
                    }
                    continue;
                };
                for (&timestamp, &bits) in samples {
                    match actual_samples.get(&timestamp) {
                        None => lines.push(format!(
                            "tenant {tenant}: {} @{timestamp} missing (expected {} = {:#018x})",
                            selector(set),
                            f64::from_bits(bits),
                            bits
                        )),
                        Some(&got) if got != bits => lines.push(format!(
                            "tenant {tenant}: {} @{timestamp} is {} ({got:#018x}), expected {} ({bits:#018x})",
                            selector(set),
                            f64::from_bits(got),
                            f64::from_bits(bits)
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
        if exact {
            for (tenant, series) in &actual.tenants {
                let expected_series = self.tenants.get(tenant).unwrap_or(&empty);
                for (set, samples) in series {
                    let expected_samples = expected_series.get(set);
                    for (&timestamp, &bits) in samples {
                        if expected_samples
                            .is_none_or(|expected| !expected.contains_key(&timestamp))
                        {
                            lines.push(format!(
                                "tenant {tenant}: unexpected sample {} @{timestamp} = {} ({bits:#018x})",
                                selector(set),
                                f64::from_bits(bits)
                            ));
                        }
                    }
                }
            }
        }
        lines
    }

    /// Panics with the first differences unless `actual` has every sample of `self` with the same
    /// value bits (and, when `exact`, nothing else).
    pub fn assert_in(&self, actual: &Dataset, exact: bool, context: &str) {
        let diff = self.diff(actual, exact);
        if diff.is_empty() {
            return;
        }
        let shown: Vec<&String> = diff.iter().take(30).collect();
        panic!(
            "{context}: {} differences (expected {} samples in {} series, got {} samples in {} series); first ones:\n  {}",
            diff.len(),
            self.sample_count(),
            self.series_count(),
            actual.sample_count(),
            actual.series_count(),
            shown
                .iter()
                .map(|line| line.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
}

/// Samples for every series of `sets` every `step_ms` from `start_ms` through `end_ms`, as write
/// requests in time order, each covering `batch_ms` of time. Values come from [`random_value`].
pub fn history(
    sets: &[LabelSet],
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    batch_ms: i64,
    rng: &mut fastrand::Rng,
) -> Vec<WriteRequest> {
    assert!(step_ms > 0 && batch_ms > 0 && start_ms <= end_ms);
    let mut requests = Vec::new();
    let mut batch_start = start_ms;
    while batch_start <= end_ms {
        let batch_end = (batch_start + batch_ms - 1).min(end_ms);
        let first = (batch_start - start_ms + step_ms - 1) / step_ms;
        let timestamps: Vec<i64> = (first..)
            .map(|i| start_ms + i * step_ms)
            .take_while(|&ts| ts <= batch_end)
            .collect();
        if !timestamps.is_empty() {
            let timeseries = sets
                .iter()
                .map(|set| {
                    let samples: Vec<(i64, f64)> = timestamps
                        .iter()
                        .map(|&ts| (ts, random_value(rng)))
                        .collect();
                    series(set, &samples)
                })
                .collect();
            requests.push(request(timeseries));
        }
        batch_start += batch_ms;
    }
    requests
}
