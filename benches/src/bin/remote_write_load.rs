//! `remote-write-load`: a Prometheus remote-write 1.0 load generator for Vigil benchmarks.
//!
//! Sends the deterministic node-exporter-like data set of [`vigil_benches::remote_write`] to a
//! loopback endpoint with `--concurrency` senders, each owning a shard of the series and sending
//! its requests one at a time (so every series' samples arrive in time order, one scrape round
//! after the other, as Prometheus' queue manager does). Requests are encoded ahead of the
//! timed phase when they fit in memory (`--encode auto|ahead|stream`), so the generator is not
//! what is measured. The last line on stdout is a JSON summary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use vigil_benches::remote_write::{build_catalog, shard_requests, EncodedRequest, GenConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EncodeMode {
    /// `ahead` when the encoded requests fit in `--max-preencode-mb`, else `stream`.
    Auto,
    /// Encode every request before the clock starts.
    Ahead,
    /// Encode while sending (one encoder thread per shard, a small queue per sender).
    Stream,
}

#[derive(Debug, Parser)]
#[command(
    name = "remote-write-load",
    about = "Prometheus remote-write 1.0 load generator (loopback targets only)"
)]
struct Args {
    /// Remote-write endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9009/api/v1/push")]
    url: String,
    /// Number of series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Samples per series (scrape rounds).
    #[arg(long, default_value_t = 120)]
    samples_per_series: u32,
    /// Scrape interval in ms.
    #[arg(long, default_value_t = 15_000)]
    interval_ms: i64,
    /// First round in ms since the epoch (each target adds a fixed phase below one interval).
    /// Default: now - samples_per_series * interval_ms.
    #[arg(long)]
    start_ms: Option<i64>,
    /// Concurrent senders (shards), each with one request in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Samples per request.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Seed of the deterministic data set.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Extra request header, "Name: value" (repeatable), e.g. 'X-Scope-OrgID: team-a'.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Upper bound on the whole run, encoding included.
    #[arg(long, default_value_t = 1800.0)]
    max_seconds: f64,
    #[arg(long, value_enum, default_value = "auto")]
    encode: EncodeMode,
    /// Memory budget for `--encode auto` to encode ahead.
    #[arg(long, default_value_t = 2048)]
    max_preencode_mb: u64,
    /// Retries of a request after 429, 5xx or a connection error (with backoff).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Timeout of one HTTP request.
    #[arg(long, default_value_t = 60)]
    timeout_seconds: u64,
    /// Generate and encode, send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print every N-th series with its first samples on stdout (to look at the data), then exit.
    #[arg(long, value_name = "N")]
    print_every: Option<usize>,
}

#[derive(Default)]
struct SenderStats {
    requests: u64,
    requests_ok: u64,
    samples: u64,
    samples_ok: u64,
    wire_bytes: u64,
    raw_bytes: u64,
    status: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
}

impl SenderStats {
    fn merge(&mut self, o: SenderStats) {
        self.requests += o.requests;
        self.requests_ok += o.requests_ok;
        self.samples += o.samples;
        self.samples_ok += o.samples_ok;
        self.wire_bytes += o.wire_bytes;
        self.raw_bytes += o.raw_bytes;
        for (k, v) in o.status {
            *self.status.entry(k).or_default() += v;
        }
        self.latencies_us.extend(o.latencies_us);
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

/// The encoder's end of a shard's queue: unbounded when encoding ahead, small when streaming.
enum Tx {
    Unbounded(mpsc::Sender<EncodedRequest>),
    Bounded(mpsc::SyncSender<EncodedRequest>),
}

impl Tx {
    fn send(&self, r: EncodedRequest) -> bool {
        match self {
            Tx::Unbounded(tx) => tx.send(r).is_ok(),
            Tx::Bounded(tx) => tx.send(r).is_ok(),
        }
    }
}

/// CPU seconds (user + system) this process has used, from /proc (USER_HZ is 100 on Linux).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn check_loopback(url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad --url {url:?}"))?;
    let host = parsed.host_str().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("--url must point at a loopback address (127.0.0.0/8, ::1, localhost), got {host:?}");
    }
    Ok(())
}

fn build_headers(extra: &[String]) -> Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-protobuf"),
    );
    headers.insert("content-encoding", HeaderValue::from_static("snappy"));
    headers.insert(
        "x-prometheus-remote-write-version",
        HeaderValue::from_static("0.1.0"),
    );
    headers.insert(
        "user-agent",
        HeaderValue::from_static("vigil-remote-write-load/0.1"),
    );
    for h in extra {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("--header {h:?} is not 'Name: value'"))?;
        headers.insert(
            HeaderName::from_bytes(name.trim().as_bytes())?,
            HeaderValue::from_str(value.trim())?,
        );
    }
    Ok(headers)
}

struct Sender<'a> {
    client: Client,
    url: &'a str,
    headers: &'a HeaderMap,
    retries: u32,
    deadline: Instant,
    progress: &'a AtomicU64,
    stats: SenderStats,
}

impl Sender<'_> {
    /// Sends one request with retries; false once the deadline has passed.
    fn send(&mut self, request: EncodedRequest) -> bool {
        let s = &mut self.stats;
        s.samples += u64::from(request.samples);
        s.raw_bytes += u64::from(request.raw_bytes);
        for attempt in 0..=self.retries {
            if Instant::now() >= self.deadline {
                return false;
            }
            s.requests += 1;
            s.wire_bytes += request.body.len() as u64;
            let started = Instant::now();
            let result = self
                .client
                .post(self.url)
                .headers(self.headers.clone())
                .body(request.body.clone())
                .send();
            let (key, retry, ok) = match result {
                Ok(resp) => {
                    let status = resp.status();
                    // Read the (small) body so the connection is reused.
                    let body = resp.text().unwrap_or_default();
                    if !status.is_success() && s.first_error.is_none() {
                        s.first_error = Some(format!(
                            "{status}: {}",
                            body.chars().take(300).collect::<String>()
                        ));
                    }
                    let retry = status.as_u16() == 429 || status.is_server_error();
                    (status.as_u16().to_string(), retry, status.is_success())
                }
                Err(e) => {
                    if s.first_error.is_none() {
                        s.first_error = Some(format!("request error: {e}"));
                    }
                    ("error".to_string(), true, false)
                }
            };
            s.latencies_us
                .push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            *s.status.entry(key).or_default() += 1;
            if ok {
                s.requests_ok += 1;
                s.samples_ok += u64::from(request.samples);
                self.progress
                    .fetch_add(u64::from(request.samples), Ordering::Relaxed);
                return true;
            }
            if !retry || attempt == self.retries {
                return true;
            }
            std::thread::sleep(Duration::from_millis((50u64 << attempt).min(2000)));
        }
        true
    }
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn main() -> Result<()> {
    let args = Args::parse();
    let program_start = Instant::now();
    let deadline = program_start + Duration::from_secs_f64(args.max_seconds.max(0.0));
    if !args.dry_run {
        check_loopback(&args.url)?;
    }
    if args.series == 0
        || args.samples_per_series == 0
        || args.concurrency == 0
        || args.batch == 0
        || args.interval_ms <= 0
    {
        bail!("--series, --samples-per-series, --concurrency, --batch and --interval-ms must be positive");
    }
    let headers = build_headers(&args.headers)?;
    let start_ms = args
        .start_ms
        .unwrap_or_else(|| now_ms() - i64::from(args.samples_per_series) * args.interval_ms);
    let cfg = GenConfig {
        seed: args.seed,
        rounds: args.samples_per_series,
        interval_ms: args.interval_ms,
        start_ms,
    };
    let catalog = build_catalog(args.series, args.samples_per_series, args.seed);
    if let Some(every) = args.print_every {
        for (sid, def) in catalog.series.iter().enumerate().step_by(every.max(1)) {
            let mut state = def.initial_state(cfg.seed, sid as u64);
            let values: Vec<String> = (0..cfg.rounds.min(6))
                .map(|k| {
                    let ts = cfg.timestamp(def.target, k);
                    def.next_value(&mut state, &cfg, sid as u64, k, ts)
                        .map_or("-".into(), |v| format!("{v}@{ts}"))
                })
                .collect();
            println!("{} {}", def.to_text(), values.join(" "));
        }
        return Ok(());
    }
    let planned = args.series as u64 * u64::from(args.samples_per_series);
    // About 25 wire bytes per sample for this data (snappy); keep a margin.
    let estimate_mb = planned * 40 / (1 << 20);
    let ahead = match args.encode {
        EncodeMode::Ahead => true,
        EncodeMode::Stream => false,
        EncodeMode::Auto => estimate_mb <= args.max_preencode_mb,
    };
    let shards = args.concurrency;
    eprintln!(
        "remote-write-load: {} series on {} hosts, {} rounds, {} shards, batch {}, encode {}",
        catalog.series.len(),
        catalog.hosts,
        args.samples_per_series,
        shards,
        args.batch,
        if ahead { "ahead" } else { "stream" }
    );

    let stopped = AtomicBool::new(false);
    let progress = AtomicU64::new(0);
    let mut total = SenderStats::default();
    let mut encode_seconds = 0.0;
    let mut send_seconds = 0.0;
    let mut send_cpu_start = 0.0;

    // One channel per shard: the encoder fills it, the shard's sender drains it in order.
    let channels: Vec<(Tx, mpsc::Receiver<EncodedRequest>)> = (0..shards)
        .map(|_| {
            if ahead {
                let (tx, rx) = mpsc::channel();
                (Tx::Unbounded(tx), rx)
            } else {
                let (tx, rx) = mpsc::sync_channel(8);
                (Tx::Bounded(tx), rx)
            }
        })
        .collect();
    let (txs, rxs): (Vec<_>, Vec<_>) = channels.into_iter().unzip();
    std::thread::scope(|scope| -> Result<()> {
        let encoders: Vec<_> = txs
            .into_iter()
            .enumerate()
            .map(|(shard, tx)| {
                let (catalog, cfg, stopped) = (&catalog, &cfg, &stopped);
                let batch = args.batch;
                scope.spawn(move || {
                    shard_requests(catalog, cfg, shard, shards, batch, |r| {
                        if Instant::now() >= deadline || stopped.load(Ordering::Relaxed) {
                            stopped.store(true, Ordering::Relaxed);
                            return false;
                        }
                        tx.send(r)
                    })
                })
            })
            .collect();
        if ahead {
            for e in encoders {
                e.join()
                    .map_err(|_| anyhow::anyhow!("encoder thread panicked"))?;
            }
            encode_seconds = program_start.elapsed().as_secs_f64();
            eprintln!("remote-write-load: encoded ahead in {encode_seconds:.1}s");
        }
        let send_start = Instant::now();
        send_cpu_start = process_cpu_seconds();
        if args.dry_run {
            for rx in rxs {
                for r in rx.iter() {
                    total.samples += u64::from(r.samples);
                    total.samples_ok += u64::from(r.samples);
                    total.requests += 1;
                    total.wire_bytes += r.body.len() as u64;
                    total.raw_bytes += u64::from(r.raw_bytes);
                }
            }
            send_seconds = send_start.elapsed().as_secs_f64();
            return Ok(());
        }
        let senders: Vec<_> = rxs
            .into_iter()
            .map(|rx| {
                let (url, headers, progress, stopped) = (&args.url, &headers, &progress, &stopped);
                let client = Client::builder()
                    .timeout(Duration::from_secs(args.timeout_seconds))
                    .pool_max_idle_per_host(2)
                    .build();
                let retries = args.retries;
                scope.spawn(move || -> Result<SenderStats> {
                    let mut sender = Sender {
                        client: client?,
                        url,
                        headers,
                        retries,
                        deadline,
                        progress,
                        stats: SenderStats::default(),
                    };
                    for request in rx.iter() {
                        if !sender.send(request) {
                            stopped.store(true, Ordering::Relaxed);
                            break;
                        }
                    }
                    Ok(sender.stats)
                })
            })
            .collect();
        // Progress on stderr every 10 s; bounded by the deadline plus one request timeout.
        let hard_stop =
            deadline + Duration::from_secs(args.timeout_seconds * u64::from(args.retries + 1) + 5);
        let mut last_report = Instant::now();
        while !senders.iter().all(|h| h.is_finished()) && Instant::now() < hard_stop {
            std::thread::sleep(Duration::from_millis(100));
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                let ok = progress.load(Ordering::Relaxed);
                eprintln!(
                    "remote-write-load: {ok} samples acked in {:.0}s ({:.0}/s)",
                    send_start.elapsed().as_secs_f64(),
                    ok as f64 / send_start.elapsed().as_secs_f64()
                );
            }
        }
        for s in senders {
            total.merge(
                s.join()
                    .map_err(|_| anyhow::anyhow!("sender thread panicked"))??,
            );
        }
        send_seconds = send_start.elapsed().as_secs_f64();
        Ok(())
    })?;

    total.latencies_us.sort_unstable();
    let lat = &total.latencies_us;
    let seconds = send_seconds.max(1e-9);
    let end_ms = cfg.start_ms + i64::from(args.samples_per_series) * args.interval_ms;
    if let Some(e) = &total.first_error {
        eprintln!("remote-write-load: first error: {e}");
    }
    let summary = json!({
        "tool": "remote-write-load",
        "url": args.url,
        "dry_run": args.dry_run,
        "series": args.series,
        "hosts": catalog.hosts,
        "samples_per_series": args.samples_per_series,
        "interval_ms": args.interval_ms,
        "start_ms": cfg.start_ms,
        "end_ms": end_ms,
        "concurrency": shards,
        "batch": args.batch,
        "seed": args.seed,
        "encode": if ahead { "ahead" } else { "stream" },
        "encode_seconds": round3(encode_seconds),
        "requests": total.requests,
        "requests_ok": total.requests_ok,
        "samples_planned": planned,
        "samples": total.samples,
        "samples_ok": total.samples_ok,
        "seconds": round3(seconds),
        "samples_per_sec": (total.samples_ok as f64 / seconds.max(1e-9)).round(),
        "wire_bytes": total.wire_bytes,
        "raw_bytes": total.raw_bytes,
        "status": total.status,
        "latency_ms": {
            "p50": round3(percentile(lat, 0.50)),
            "p90": round3(percentile(lat, 0.90)),
            "p99": round3(percentile(lat, 0.99)),
            "max": round3(percentile(lat, 1.0)),
        },
        "cpu_seconds": round3(process_cpu_seconds()),
        "send_cpu_seconds": round3(process_cpu_seconds() - send_cpu_start),
        "stopped_by_deadline": stopped.load(Ordering::Relaxed),
        "first_error": total.first_error,
    });
    println!("{summary}");
    Ok(())
}
