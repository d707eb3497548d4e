//! A deterministic, node-exporter-like metrics data set and its Prometheus remote-write 1.0
//! encoding.
//!
//! The data set is a list of hosts. Each host runs two scrape targets: node-exporter (job
//! `node`, `:9100`) and an application (job `api`, `:8080`). Every series carries `job`,
//! `instance`, `env` and `namespace`. Values follow simple, realistic models:
//!
//! - counters grow by `rate × interval × (1 ± jitter)` and are rounded the way the exporter
//!   reports them (centiseconds for CPU time, whole bytes or packets, …); about 5% of hosts
//!   restart their application once, resetting its counters;
//! - gauges are mean-reverting random walks, quantised like the real ones (pages of memory,
//!   integer goroutines, two-decimal load averages, full-precision scrape durations);
//! - histogram buckets of one histogram share their per-scrape request count, so buckets stay
//!   cumulative in `le` and monotonic in time, and `_count` equals the `+Inf` bucket;
//! - a few queue-depth gauges disappear periodically; the first missing scrape carries a
//!   Prometheus staleness marker, as Prometheus itself sends.
//!
//! Everything derives from `--seed` through stateless hashes, so the same seed and series
//! count give the same data on every run and on every shard layout.
//!
//! Sample `k` of a series is at `start_ms + k × interval_ms + phase(target)`, with a fixed
//! per-target phase below one interval. Requests are cut as Prometheus' queue manager does:
//! series are spread over `shards` (one per concurrent sender) by series number, each shard
//! walks the scrape rounds in order and cuts its stream into requests of `batch` samples, so
//! every series' samples leave in time order and one shard's requests are sent one at a time.

use std::fmt::Write as _;

/// Bit pattern of Prometheus' staleness marker.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

// ---------------------------------------------------------------------------------------------
// Deterministic noise.

/// splitmix64 finaliser: a good 64-bit mix.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash3(a: u64, b: u64, c: u64) -> u64 {
    mix(mix(mix(a) ^ b) ^ c)
}

/// Uniform in `[0, 1)`.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Standard normal (Box-Muller).
fn gauss(h: u64) -> f64 {
    let u1 = unit(h).max(1e-12);
    let u2 = unit(mix(h));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

// ---------------------------------------------------------------------------------------------
// Series definitions.

/// How a value is rounded before it is sent, like the exporter that reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quant {
    /// Full precision.
    Exact,
    /// Decimal places (the value is the double nearest to the decimal, as parsing it gives).
    Decimals(u8),
    /// Whole multiples of a quantum (bytes, pages, sectors).
    Multiple(f64),
}

impl Quant {
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Quant::Exact => x,
            Quant::Decimals(d) => {
                let scale = 10f64.powi(i32::from(d));
                (x * scale).round() / scale
            }
            Quant::Multiple(q) => (x / q).round() * q,
        }
    }
}

/// The value model of a series.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Monotonic counter starting at `start`, growing `rate` per second with relative `jitter`.
    Counter {
        start: f64,
        rate: f64,
        jitter: f64,
        quant: Quant,
    },
    /// Mean-reverting random walk with stationary deviation `sd`, clamped to `[min, max]`.
    Gauge {
        mean: f64,
        sd: f64,
        theta: f64,
        min: f64,
        max: f64,
        quant: Quant,
    },
    /// A value that never changes.
    Const(f64),
    /// Cumulative histogram bucket: `share` of the requests of histogram `family` (whose
    /// request rate is `rate` per second) are at or below this bucket's `le`.
    Bucket {
        family: u64,
        start: f64,
        rate: f64,
        share: f64,
    },
    /// `_sum` of a histogram: requests × `mean` latency, full precision.
    HistSum {
        family: u64,
        start: f64,
        rate: f64,
        mean: f64,
    },
    /// Seconds since the epoch at scrape time (`node_time_seconds`).
    Clock,
}

impl Kind {
    fn is_cumulative(&self) -> bool {
        matches!(
            self,
            Kind::Counter { .. } | Kind::Bucket { .. } | Kind::HistSum { .. }
        )
    }
}

/// One series of the data set.
#[derive(Debug, Clone)]
pub struct SeriesDef {
    /// Sorted by name; `__name__` first.
    pub labels: Vec<(String, String)>,
    pub kind: Kind,
    /// Scrape target number (sets the timestamp phase).
    pub target: u32,
    /// The round at which a counter restarts from zero (process restart).
    pub reset_round: Option<u32>,
    /// Present only in some rounds: absent when `((k + offset) / 16) % 4 == 3`.
    pub gap_offset: Option<u32>,
}

impl SeriesDef {
    pub fn name(&self) -> &str {
        &self.labels[0].1
    }

    /// The series in Prometheus text form, for logs and tests.
    pub fn to_text(&self) -> String {
        let mut s = self.name().to_string();
        s.push('{');
        for (i, (n, v)) in self.labels.iter().skip(1).enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{n}={v:?}");
        }
        s.push('}');
        s
    }
}

/// All series of a run, in a fixed order.
pub struct Catalog {
    pub series: Vec<SeriesDef>,
    /// Protobuf encoding of each series' labels (repeated field 1 of `TimeSeries`).
    pub label_pb: Vec<Vec<u8>>,
    pub hosts: u32,
    pub targets: u32,
}

/// Builds the first `n` series of the data set for `seed`. `rounds` (samples per series) places
/// the counter resets.
pub fn build_catalog(n: usize, rounds: u32, seed: u64) -> Catalog {
    let mut series = Vec::with_capacity(n);
    let mut host = 0u32;
    while series.len() < n {
        let mut defs = host_series(host, rounds, seed);
        defs.truncate(n - series.len());
        series.extend(defs);
        host += 1;
    }
    let label_pb = series.iter().map(|s| encode_labels(&s.labels)).collect();
    Catalog {
        series,
        label_pb,
        hosts: host,
        targets: host * 2,
    }
}

struct HostBuilder {
    seed: u64,
    host: u32,
    env: &'static str,
    namespace: String,
    out: Vec<SeriesDef>,
}

impl HostBuilder {
    /// Deterministic uniform in `[lo, hi)` keyed by `what`.
    fn pick(&self, what: &str, lo: f64, hi: f64) -> f64 {
        let mut h = hash3(self.seed, u64::from(self.host), 0x5eed);
        for b in what.bytes() {
            h = mix(h ^ u64::from(b));
        }
        lo + (hi - lo) * unit(h)
    }

    fn push(
        &mut self,
        job: &str,
        name: &str,
        extra: &[(&str, &str)],
        kind: Kind,
        reset_round: Option<u32>,
    ) {
        let (port, target) = if job == "node" {
            ("9100", self.host * 2)
        } else {
            ("8080", self.host * 2 + 1)
        };
        let mut labels: Vec<(String, String)> = vec![
            ("__name__".into(), name.into()),
            ("env".into(), self.env.into()),
            (
                "instance".into(),
                format!("host-{:05}.{}.internal:{port}", self.host, self.env),
            ),
            ("job".into(), job.into()),
            ("namespace".into(), self.namespace.clone()),
        ];
        labels.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        self.out.push(SeriesDef {
            labels,
            kind,
            target,
            reset_round,
            gap_offset: None,
        });
    }
}

fn counter(start: f64, rate: f64, jitter: f64, quant: Quant) -> Kind {
    Kind::Counter {
        start,
        rate,
        jitter,
        quant,
    }
}

fn gauge(mean: f64, sd: f64, theta: f64, min: f64, max: f64, quant: Quant) -> Kind {
    Kind::Gauge {
        mean,
        sd,
        theta,
        min,
        max,
        quant,
    }
}

/// Every series of one host: node-exporter first, then the application.
pub fn host_series(host: u32, rounds: u32, seed: u64) -> Vec<SeriesDef> {
    let h = hash3(seed, u64::from(host), 0x4057);
    let env = ["prod", "prod", "prod", "staging", "dev"][(h % 5) as usize];
    let namespace = format!("team-{:02}", (h >> 8) % 24);
    let mut b = HostBuilder {
        seed,
        host,
        env,
        namespace,
        out: Vec::with_capacity(160),
    };

    let uptime = b.pick("uptime", 3600.0, 60.0 * 86400.0);
    let boot = 1.79e9 - uptime;
    let cpus = [2u32, 4, 4, 8][((h >> 16) % 4) as usize];
    let util = b.pick("util", 0.03, 0.7);
    let mem_total = [4.0, 8.0, 16.0, 32.0][((h >> 20) % 4) as usize] * 1024.0 * 1024.0 * 1024.0;
    // ~5% of hosts restart their application once during the run.
    let api_reset = ((h >> 24).is_multiple_of(20) && rounds >= 4)
        .then(|| rounds / 4 + ((h >> 32) as u32 % (rounds / 2)));

    // --- node-exporter ---
    let modes = [
        ("idle", 0.0),
        ("iowait", 0.04),
        ("irq", 0.0),
        ("nice", 0.0),
        ("softirq", 0.02),
        ("steal", 0.01),
        ("system", 0.25),
        ("user", 0.68),
    ];
    for cpu in 0..cpus {
        let cpu_s = cpu.to_string();
        let cpu_util = (util * b.pick(&format!("cpu{cpu}"), 0.6, 1.4)).min(0.97);
        for (mode, share) in modes {
            let rate = if mode == "idle" {
                1.0 - cpu_util
            } else {
                cpu_util * share
            };
            b.push(
                "node",
                "node_cpu_seconds_total",
                &[("cpu", &cpu_s), ("mode", mode)],
                counter(rate * uptime, rate, 0.3, Quant::Decimals(2)),
                None,
            );
        }
    }
    let page = Quant::Multiple(4096.0);
    let avail = mem_total * b.pick("memavail", 0.2, 0.8);
    b.push(
        "node",
        "node_memory_MemTotal_bytes",
        &[],
        Kind::Const(mem_total),
        None,
    );
    b.push(
        "node",
        "node_memory_MemAvailable_bytes",
        &[],
        gauge(avail, mem_total * 0.01, 0.1, 0.0, mem_total, page),
        None,
    );
    b.push(
        "node",
        "node_memory_MemFree_bytes",
        &[],
        gauge(avail * 0.3, mem_total * 0.005, 0.1, 0.0, mem_total, page),
        None,
    );
    b.push(
        "node",
        "node_memory_Buffers_bytes",
        &[],
        gauge(
            mem_total * 0.02,
            mem_total * 0.0005,
            0.05,
            0.0,
            mem_total,
            page,
        ),
        None,
    );
    b.push(
        "node",
        "node_memory_Cached_bytes",
        &[],
        gauge(avail * 0.6, mem_total * 0.003, 0.05, 0.0, mem_total, page),
        None,
    );
    b.push(
        "node",
        "node_memory_Active_bytes",
        &[],
        gauge(
            mem_total - avail,
            mem_total * 0.005,
            0.1,
            0.0,
            mem_total,
            page,
        ),
        None,
    );
    b.push(
        "node",
        "node_memory_Inactive_bytes",
        &[],
        gauge(avail * 0.4, mem_total * 0.003, 0.1, 0.0, mem_total, page),
        None,
    );
    b.push(
        "node",
        "node_memory_SwapTotal_bytes",
        &[],
        Kind::Const(0.0),
        None,
    );
    b.push(
        "node",
        "node_memory_SwapFree_bytes",
        &[],
        Kind::Const(0.0),
        None,
    );

    for (device, scale) in [("eth0", 1.0), ("lo", 0.05)] {
        let rx = b.pick(&format!("rx{device}"), 2e3, 5e6) * scale;
        let tx = b.pick(&format!("tx{device}"), 2e3, 2e6) * scale;
        let d = [("device", device)];
        let one = Quant::Multiple(1.0);
        b.push(
            "node",
            "node_network_receive_bytes_total",
            &d,
            counter(rx * uptime, rx, 0.5, one),
            None,
        );
        b.push(
            "node",
            "node_network_transmit_bytes_total",
            &d,
            counter(tx * uptime, tx, 0.5, one),
            None,
        );
        b.push(
            "node",
            "node_network_receive_packets_total",
            &d,
            counter(rx / 900.0 * uptime, rx / 900.0, 0.5, one),
            None,
        );
        b.push(
            "node",
            "node_network_transmit_packets_total",
            &d,
            counter(tx / 700.0 * uptime, tx / 700.0, 0.5, one),
            None,
        );
        b.push(
            "node",
            "node_network_receive_errs_total",
            &d,
            counter(0.0, 0.0, 0.0, one),
            None,
        );
    }

    for (mountpoint, device, fstype, size_gb) in [
        ("/", "/dev/vda1", "ext4", 50.0),
        ("/var", "/dev/vdb1", "xfs", 200.0),
        ("/boot", "/dev/vda2", "ext4", 1.0),
    ] {
        let size = size_gb * 1024.0 * 1024.0 * 1024.0;
        let free = size * b.pick(&format!("fs{mountpoint}"), 0.1, 0.9);
        let l = [
            ("device", device),
            ("fstype", fstype),
            ("mountpoint", mountpoint),
        ];
        b.push(
            "node",
            "node_filesystem_size_bytes",
            &l,
            Kind::Const(size),
            None,
        );
        b.push(
            "node",
            "node_filesystem_avail_bytes",
            &l,
            gauge(free * 0.95, size * 0.0005, 0.02, 0.0, size, page),
            None,
        );
        b.push(
            "node",
            "node_filesystem_free_bytes",
            &l,
            gauge(free, size * 0.0005, 0.02, 0.0, size, page),
            None,
        );
        b.push(
            "node",
            "node_filesystem_files_free",
            &l,
            gauge(
                size / 16384.0 * 0.9,
                200.0,
                0.02,
                0.0,
                size,
                Quant::Multiple(1.0),
            ),
            None,
        );
    }

    let load = util * f64::from(cpus);
    for (name, sd, theta) in [
        ("node_load1", 0.35, 0.5),
        ("node_load5", 0.2, 0.2),
        ("node_load15", 0.1, 0.07),
    ] {
        b.push(
            "node",
            name,
            &[],
            gauge(load, load * sd + 0.01, theta, 0.0, 1e3, Quant::Decimals(2)),
            None,
        );
    }
    let vda = [("device", "vda")];
    let rd = b.pick("diskr", 1e3, 5e6);
    let wr = b.pick("diskw", 1e4, 1e7);
    b.push(
        "node",
        "node_disk_read_bytes_total",
        &vda,
        counter(rd * uptime, rd, 0.8, Quant::Multiple(512.0)),
        None,
    );
    b.push(
        "node",
        "node_disk_written_bytes_total",
        &vda,
        counter(wr * uptime, wr, 0.8, Quant::Multiple(512.0)),
        None,
    );
    b.push(
        "node",
        "node_disk_io_time_seconds_total",
        &vda,
        counter(util * 0.2 * uptime, util * 0.2, 0.5, Quant::Decimals(3)),
        None,
    );
    let cs = b.pick("ctxt", 1e3, 5e4);
    b.push(
        "node",
        "node_context_switches_total",
        &[],
        counter(cs * uptime, cs, 0.3, Quant::Multiple(1.0)),
        None,
    );
    b.push(
        "node",
        "node_intr_total",
        &[],
        counter(cs * 0.6 * uptime, cs * 0.6, 0.3, Quant::Multiple(1.0)),
        None,
    );
    b.push(
        "node",
        "node_boot_time_seconds",
        &[],
        Kind::Const(boot.round()),
        None,
    );
    b.push("node", "node_time_seconds", &[], Kind::Clock, None);
    b.push(
        "node",
        "node_procs_running",
        &[],
        gauge(
            load.max(1.0),
            load.sqrt() + 0.5,
            0.5,
            1.0,
            1e4,
            Quant::Multiple(1.0),
        ),
        None,
    );
    b.push(
        "node",
        "node_procs_blocked",
        &[],
        gauge(0.2, 0.5, 0.5, 0.0, 1e4, Quant::Multiple(1.0)),
        None,
    );
    b.push("node", "up", &[], Kind::Const(1.0), None);
    b.push(
        "node",
        "scrape_duration_seconds",
        &[],
        gauge(0.03, 0.006, 0.7, 0.001, 10.0, Quant::Exact),
        None,
    );
    b.push(
        "node",
        "scrape_samples_scraped",
        &[],
        Kind::Const(900.0 + f64::from(cpus) * 40.0),
        None,
    );

    // --- application ---
    let rps = b.pick("rps", 2.0, 300.0);
    let app_uptime = b.pick("appuptime", 600.0, uptime);
    let reqs = [
        ("/api/v1/orders", "GET", "200", 0.30),
        ("/api/v1/orders", "GET", "404", 0.004),
        ("/api/v1/orders", "POST", "201", 0.08),
        ("/api/v1/orders", "POST", "500", 0.0005),
        ("/api/v1/users", "GET", "200", 0.35),
        ("/api/v1/users", "GET", "404", 0.01),
        ("/api/v1/users", "PUT", "200", 0.03),
        ("/api/v1/payments", "POST", "200", 0.05),
        ("/api/v1/payments", "POST", "500", 0.0002),
        ("/healthz", "GET", "200", 0.0),
        ("/metrics", "GET", "200", 0.0),
    ];
    for (handler, method, code, share) in reqs {
        // Probes: the kubelet every 10 s, Prometheus every 15 s.
        let rate = match handler {
            "/healthz" => 0.1,
            "/metrics" => 1.0 / 15.0,
            _ => rps * share,
        };
        b.push(
            "api",
            "http_requests_total",
            &[("code", code), ("handler", handler), ("method", method)],
            counter((rate * app_uptime).round(), rate, 0.4, Quant::Multiple(1.0)),
            api_reset,
        );
    }
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ];
    for (handler, share, median) in [
        ("/api/v1/orders", 0.384, 0.04),
        ("/api/v1/users", 0.39, 0.015),
        ("/api/v1/payments", 0.05, 0.2),
    ] {
        let family = hash3(
            seed,
            u64::from(host),
            mix(handler.len() as u64 ^ (median * 1e6) as u64),
        );
        let rate = rps * share;
        let count0 = (rate * app_uptime).round();
        let hl = [("handler", handler)];
        for le in les {
            // Log-normal latency with the given median: share of requests <= le.
            let cdf = match le.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    0.5 * (1.0 + erf((v / median).ln() / (0.9 * std::f64::consts::SQRT_2)))
                }
                _ => 1.0,
            };
            let cdf = (cdf * 1e4).round() / 1e4;
            b.push(
                "api",
                "http_request_duration_seconds_bucket",
                &[("handler", handler), ("le", le)],
                Kind::Bucket {
                    family,
                    start: (count0 * cdf).floor(),
                    rate,
                    share: cdf,
                },
                api_reset,
            );
        }
        let mean = median * (0.9f64 * 0.9 / 2.0).exp();
        b.push(
            "api",
            "http_request_duration_seconds_sum",
            &hl,
            Kind::HistSum {
                family,
                start: count0 * mean,
                rate,
                mean,
            },
            api_reset,
        );
        b.push(
            "api",
            "http_request_duration_seconds_count",
            &hl,
            Kind::Bucket {
                family,
                start: count0,
                rate,
                share: 1.0,
            },
            api_reset,
        );
    }
    let rss = b.pick("rss", 4e7, 8e8);
    b.push(
        "api",
        "process_cpu_seconds_total",
        &[],
        counter(
            rps * 0.002 * app_uptime,
            rps * 0.002 + 0.005,
            0.4,
            Quant::Decimals(2),
        ),
        api_reset,
    );
    b.push(
        "api",
        "process_resident_memory_bytes",
        &[],
        gauge(rss, rss * 0.03, 0.2, 1e6, 1e11, page),
        None,
    );
    b.push(
        "api",
        "process_open_fds",
        &[],
        gauge(20.0 + rps / 5.0, 3.0, 0.3, 5.0, 1e6, Quant::Multiple(1.0)),
        None,
    );
    b.push(
        "api",
        "process_max_fds",
        &[],
        Kind::Const(1_048_576.0),
        None,
    );
    b.push(
        "api",
        "go_goroutines",
        &[],
        gauge(
            40.0 + rps,
            5.0 + rps / 20.0,
            0.5,
            5.0,
            1e6,
            Quant::Multiple(1.0),
        ),
        None,
    );
    b.push(
        "api",
        "go_threads",
        &[],
        gauge(12.0, 0.6, 0.3, 4.0, 1e4, Quant::Multiple(1.0)),
        None,
    );
    b.push(
        "api",
        "go_memstats_alloc_bytes",
        &[],
        gauge(rss * 0.4, rss * 0.08, 0.6, 1e5, 1e11, Quant::Multiple(1.0)),
        None,
    );
    b.push(
        "api",
        "go_memstats_heap_inuse_bytes",
        &[],
        gauge(
            rss * 0.5,
            rss * 0.05,
            0.4,
            1e5,
            1e11,
            Quant::Multiple(8192.0),
        ),
        None,
    );
    b.push(
        "api",
        "go_gc_duration_seconds_count",
        &[],
        counter(
            (0.05 * app_uptime).round(),
            0.02 + rps / 2000.0,
            0.5,
            Quant::Multiple(1.0),
        ),
        api_reset,
    );
    for queue in ["emails", "invoices"] {
        b.push(
            "api",
            "app_queue_depth",
            &[("queue", queue)],
            gauge(5.0, 6.0, 0.3, 0.0, 1e6, Quant::Multiple(1.0)),
            None,
        );
        let offset = (hash3(seed, u64::from(host), queue.len() as u64) % 64) as u32;
        if let Some(last) = b.out.last_mut() {
            last.gap_offset = Some(offset);
        }
    }
    b.push("api", "up", &[], Kind::Const(1.0), None);
    b.push(
        "api",
        "scrape_duration_seconds",
        &[],
        gauge(0.008, 0.002, 0.7, 0.001, 10.0, Quant::Exact),
        None,
    );
    b.push(
        "api",
        "scrape_samples_scraped",
        &[],
        Kind::Const(180.0),
        None,
    );
    b.out
}

/// Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), enough for bucket shares.
fn erf(x: f64) -> f64 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    sign * y
}

// ---------------------------------------------------------------------------------------------
// Values.

/// Run parameters that decide timestamps and values.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub seed: u64,
    pub rounds: u32,
    pub interval_ms: i64,
    pub start_ms: i64,
}

impl GenConfig {
    /// Timestamp of round `k` of `target`.
    pub fn timestamp(&self, target: u32, k: u32) -> i64 {
        let phase =
            (hash3(self.seed, u64::from(target), 0x9a5e) % self.interval_ms.max(1) as u64) as i64;
        self.start_ms + i64::from(k) * self.interval_ms + phase
    }
}

/// The evolving state of one series.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeriesState {
    x: f64,
    /// The previous round had a sample (for staleness markers).
    present: bool,
}

impl SeriesDef {
    pub fn initial_state(&self, seed: u64, sid: u64) -> SeriesState {
        let x = match &self.kind {
            Kind::Counter { start, .. }
            | Kind::Bucket { start, .. }
            | Kind::HistSum { start, .. } => *start,
            Kind::Gauge {
                mean, sd, min, max, ..
            } => (mean + sd * gauss(hash3(seed, sid, 0x1417))).clamp(*min, *max),
            Kind::Const(v) => *v,
            Kind::Clock => 0.0,
        };
        SeriesState { x, present: false }
    }

    /// The sample value of round `k` (advancing `state`), or `None` when the series is absent.
    pub fn next_value(
        &self,
        state: &mut SeriesState,
        cfg: &GenConfig,
        sid: u64,
        k: u32,
        ts_ms: i64,
    ) -> Option<f64> {
        let interval_s = cfg.interval_ms as f64 / 1000.0;
        let seed = cfg.seed;
        if k > 0 {
            let reset = self.reset_round == Some(k) && self.kind.is_cumulative();
            let u = unit(hash3(seed, sid, u64::from(k)));
            match &self.kind {
                Kind::Counter { rate, jitter, .. } => {
                    let inc = (rate * interval_s * (1.0 + jitter * (2.0 * u - 1.0))).max(0.0);
                    // After a restart the counter holds what the new process counted so far.
                    state.x = if reset { inc * u } else { state.x + inc };
                }
                Kind::Gauge {
                    mean,
                    sd,
                    theta,
                    min,
                    max,
                    ..
                } => {
                    let step = theta * (mean - state.x)
                        + sd * (2.0 * theta).sqrt()
                            * gauss(hash3(seed, sid, u64::from(k) ^ 0x6a55));
                    state.x = (state.x + step).clamp(*min, *max);
                }
                Kind::Bucket {
                    family,
                    rate,
                    share,
                    ..
                } => {
                    let (requests, spread) = family_round(seed, *family, k, *rate, interval_s);
                    let inc = (requests * share + spread).floor();
                    state.x = if reset { inc } else { state.x + inc };
                }
                Kind::HistSum {
                    family, rate, mean, ..
                } => {
                    let (requests, spread) = family_round(seed, *family, k, *rate, interval_s);
                    let inc = (requests + spread).floor() * mean * (0.8 + 0.4 * u);
                    state.x = if reset { inc } else { state.x + inc };
                }
                Kind::Const(_) | Kind::Clock => {}
            }
        }
        if let Some(offset) = self.gap_offset {
            if ((k + offset) / 16) % 4 == 3 {
                let was = std::mem::replace(&mut state.present, false);
                return was.then_some(f64::from_bits(STALE_NAN_BITS));
            }
        }
        state.present = true;
        Some(match &self.kind {
            Kind::Counter { quant, .. } | Kind::Gauge { quant, .. } => quant.apply(state.x),
            Kind::Bucket { .. } | Kind::Const(_) | Kind::HistSum { .. } => state.x,
            Kind::Clock => {
                ts_ms as f64 / 1000.0 + 0.000_173 + 0.002 * unit(hash3(seed, sid, u64::from(k)))
            }
        })
    }
}

/// Requests of one histogram in one round, and the rounding offset its buckets share.
fn family_round(seed: u64, family: u64, k: u32, rate: f64, interval_s: f64) -> (f64, f64) {
    let h = hash3(seed, family, u64::from(k));
    let requests = (rate * interval_s * (1.0 + 0.6 * (unit(h) - 0.5))).max(0.0);
    (requests, unit(mix(h ^ 0xb0c4)))
}

// ---------------------------------------------------------------------------------------------
// Protobuf encoding (remote-write 1.0), by hand so labels are encoded once per series.

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_bytes_field(out: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    out.push(key);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `TimeSeries.labels` (field 1, repeated `Label { name = 1; value = 2 }`).
pub fn encode_labels(labels: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut label = Vec::new();
    for (name, value) in labels {
        label.clear();
        put_bytes_field(&mut label, 0x0a, name.as_bytes());
        put_bytes_field(&mut label, 0x12, value.as_bytes());
        put_bytes_field(&mut out, 0x0a, &label);
    }
    out
}

fn sample_len(ts: i64) -> usize {
    1 + 8 + 1 + varint_len(ts as u64)
}

/// Appends one `WriteRequest.timeseries` entry (field 1) with the given samples.
pub fn encode_timeseries(out: &mut Vec<u8>, label_pb: &[u8], samples: &[(i64, f64)]) {
    let len = label_pb.len()
        + samples
            .iter()
            .map(|(ts, _)| 2 + sample_len(*ts))
            .sum::<usize>();
    out.push(0x0a);
    put_varint(out, len as u64);
    out.extend_from_slice(label_pb);
    for (ts, value) in samples {
        out.push(0x12);
        put_varint(out, sample_len(*ts) as u64);
        out.push(0x09);
        out.extend_from_slice(&value.to_bits().to_le_bytes());
        out.push(0x10);
        put_varint(out, *ts as u64);
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// One request body, snappy-compressed and ready to send.
#[derive(Debug, Clone)]
pub struct EncodedRequest {
    pub body: bytes::Bytes,
    pub samples: u32,
    pub raw_bytes: u32,
}

/// Walks one shard's series round by round and cuts the stream into requests of `batch`
/// samples. Stops early when `emit` returns false. Returns the number of samples emitted.
pub fn shard_requests(
    catalog: &Catalog,
    cfg: &GenConfig,
    shard: usize,
    shards: usize,
    batch: usize,
    mut emit: impl FnMut(EncodedRequest) -> bool,
) -> u64 {
    let ids: Vec<usize> = (shard..catalog.series.len())
        .step_by(shards.max(1))
        .collect();
    let mut states: Vec<SeriesState> = ids
        .iter()
        .map(|&i| catalog.series[i].initial_state(cfg.seed, i as u64))
        .collect();
    // Position of each local series in the current request, to group repeats of a series.
    let mut slot: Vec<(u64, u32)> = vec![(u64::MAX, 0); ids.len()];
    let mut entries: Vec<(usize, Vec<(i64, f64)>)> = Vec::new();
    let mut request_no = 0u64;
    let mut pending = 0usize;
    let mut total = 0u64;
    let mut raw = Vec::with_capacity(batch * 200);
    let mut encoder = snap::raw::Encoder::new();
    let batch = batch.max(1);

    let mut flush = |entries: &mut Vec<(usize, Vec<(i64, f64)>)>,
                     pending: &mut usize,
                     request_no: &mut u64|
     -> bool {
        raw.clear();
        for (local, samples) in entries.iter() {
            encode_timeseries(&mut raw, &catalog.label_pb[ids[*local]], samples);
        }
        let body = encoder
            .compress_vec(&raw)
            .expect("snappy compression of an in-memory buffer");
        let request = EncodedRequest {
            body: body.into(),
            samples: *pending as u32,
            raw_bytes: raw.len() as u32,
        };
        entries.clear();
        *pending = 0;
        *request_no += 1;
        emit(request)
    };

    for k in 0..cfg.rounds {
        for (local, &sid) in ids.iter().enumerate() {
            let def = &catalog.series[sid];
            let ts = cfg.timestamp(def.target, k);
            let Some(value) = def.next_value(&mut states[local], cfg, sid as u64, k, ts) else {
                continue;
            };
            if slot[local].0 == request_no {
                entries[slot[local].1 as usize].1.push((ts, value));
            } else {
                slot[local] = (request_no, entries.len() as u32);
                entries.push((local, vec![(ts, value)]));
            }
            pending += 1;
            total += 1;
            if pending >= batch && !flush(&mut entries, &mut pending, &mut request_no) {
                return total - batch as u64;
            }
        }
    }
    if pending > 0 {
        let left = pending as u64;
        if !flush(&mut entries, &mut pending, &mut request_no) {
            return total - left;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use std::collections::HashMap;
    use vigil_proto::prometheus as pb;

    type LabelPairs = Vec<(String, String)>;

    fn cfg(rounds: u32) -> GenConfig {
        GenConfig {
            seed: 7,
            rounds,
            interval_ms: 15_000,
            start_ms: 1_700_000_000_000,
        }
    }

    fn decode_all(
        catalog: &Catalog,
        cfg: &GenConfig,
        shards: usize,
        batch: usize,
    ) -> Vec<pb::WriteRequest> {
        let mut out = Vec::new();
        for shard in 0..shards {
            shard_requests(catalog, cfg, shard, shards, batch, |r| {
                let raw = snap::raw::Decoder::new().decompress_vec(&r.body).unwrap();
                assert_eq!(raw.len(), r.raw_bytes as usize);
                let req = pb::WriteRequest::decode(raw.as_slice()).unwrap();
                let n: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
                assert_eq!(n, r.samples as usize);
                out.push(req);
                true
            });
        }
        out
    }

    #[test]
    fn hand_encoding_matches_prost() {
        let labels = vec![
            ("__name__".to_string(), "up".to_string()),
            ("job".to_string(), "x".to_string()),
        ];
        let mut raw = Vec::new();
        encode_timeseries(
            &mut raw,
            &encode_labels(&labels),
            &[(1_700_000_000_123, 1.5), (-5, 0.25)],
        );
        let got = pb::WriteRequest::decode(raw.as_slice()).unwrap();
        let want = pb::WriteRequest {
            timeseries: vec![pb::TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| pb::Label {
                        name: n.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                samples: vec![
                    pb::Sample {
                        value: 1.5,
                        timestamp: 1_700_000_000_123,
                    },
                    pb::Sample {
                        value: 0.25,
                        timestamp: -5,
                    },
                ],
                ..Default::default()
            }],
            metadata: vec![],
        };
        assert_eq!(got, want);
        for v in [0u64, 1, 127, 128, 16383, 16384, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn catalog_is_deterministic_sorted_and_unique() {
        let a = build_catalog(5000, 120, 1);
        let b = build_catalog(5000, 120, 1);
        assert_eq!(a.series.len(), 5000);
        assert!(a.hosts > 20 && a.hosts < 60, "{} hosts", a.hosts);
        let mut seen = std::collections::HashSet::new();
        for (x, y) in a.series.iter().zip(&b.series) {
            assert_eq!(x.labels, y.labels);
            assert_eq!(x.labels[0].0, "__name__");
            assert!(
                x.labels.windows(2).all(|w| w[0].0 < w[1].0),
                "{}",
                x.to_text()
            );
            assert!(seen.insert(x.labels.clone()), "duplicate {}", x.to_text());
        }
    }

    #[test]
    fn requests_cover_every_sample_in_time_order() {
        let catalog = build_catalog(700, 40, 7);
        let cfg = cfg(40);
        // Batches bigger than a shard exercise grouping of repeated series.
        for (shards, batch) in [(1, 500), (3, 97), (2, 1000)] {
            let reqs = decode_all(&catalog, &cfg, shards, batch);
            let mut per_series: HashMap<LabelPairs, Vec<(i64, u64)>> = HashMap::new();
            for r in &reqs {
                for ts in &r.timeseries {
                    let key: Vec<_> = ts
                        .labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect();
                    per_series
                        .entry(key)
                        .or_default()
                        .extend(ts.samples.iter().map(|s| (s.timestamp, s.value.to_bits())));
                }
            }
            assert_eq!(per_series.len(), 700);
            for (labels, samples) in &per_series {
                assert!(
                    samples.windows(2).all(|w| w[0].0 < w[1].0),
                    "{labels:?} out of order"
                );
                assert!(samples
                    .iter()
                    .all(|(t, _)| *t >= cfg.start_ms && *t < cfg.start_ms + 40 * 15_000));
            }
            // Same data whatever the shard layout.
            let again = decode_all(&catalog, &cfg, 1, 10_000);
            let n_again: usize = again
                .iter()
                .flat_map(|r| &r.timeseries)
                .map(|t| t.samples.len())
                .sum();
            let n: usize = per_series.values().map(Vec::len).sum();
            assert_eq!(n, n_again);
        }
    }

    #[test]
    fn counters_are_monotonic_except_resets_and_buckets_cumulative() {
        let rounds = 120;
        let catalog = build_catalog(20_000, rounds, 1);
        let cfg = GenConfig {
            rounds,
            ..cfg(rounds)
        };
        let mut resets = 0;
        let mut stale = 0;
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); catalog.series.len()];
        for (sid, def) in catalog.series.iter().enumerate() {
            let mut st = def.initial_state(cfg.seed, sid as u64);
            for k in 0..rounds {
                let ts = cfg.timestamp(def.target, k);
                if let Some(v) = def.next_value(&mut st, &cfg, sid as u64, k, ts) {
                    if v.to_bits() == STALE_NAN_BITS {
                        stale += 1;
                    } else {
                        assert!(v.is_finite(), "{}", def.to_text());
                        values[sid].push(v);
                    }
                }
            }
            if def.kind.is_cumulative() {
                for w in values[sid].windows(2) {
                    if w[1] < w[0] {
                        resets += 1;
                        assert!(def.reset_round.is_some(), "{} decreased", def.to_text());
                    }
                }
            }
        }
        assert!(resets > 0 && stale > 0);
        // Buckets of a histogram are cumulative in le, and _count equals +Inf.
        for (sid, def) in catalog.series.iter().enumerate() {
            let first_bucket = def.name() == "http_request_duration_seconds_bucket"
                && def.labels.iter().any(|(n, v)| n == "le" && v == "0.005");
            if first_bucket && sid + 13 < values.len() {
                let group = &values[sid..sid + 12];
                for k in 0..rounds as usize {
                    assert!(
                        group.windows(2).all(|w| w[0][k] <= w[1][k]),
                        "{} not cumulative",
                        def.to_text()
                    );
                }
                assert_eq!(group[11], values[sid + 13], "{}", def.to_text());
            }
        }
    }
}
