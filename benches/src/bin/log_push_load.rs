//! `log-push-load`: a Loki push load generator over the log benchmark corpus (see
//! [`vigil_benches::logs`]).
//!
//! Every request body is encoded before the clock starts, so the generator's encoding is not
//! what is measured; then `--concurrency` threads, each with its own blocking HTTP client and
//! one request in flight, take the requests in corpus order and POST them to
//! `<url>/loki/api/v1/push`. Every request must be answered 204: any other answer (or a
//! transport error) is printed on stderr with its body, counted in `errors`, and makes the
//! process exit with status 1 after the summary. Nothing is retried (a retry of a partly
//! accepted request would write duplicates). The last line on stdout is a JSON summary.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;
use vigil_benches::logs::{encode, plan_batches, Corpus, PushFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Loki v1 JSON, uncompressed (`Content-Type: application/json`).
    Json,
    /// Snappy-compressed `logproto.PushRequest` (`Content-Type: application/x-protobuf`).
    Protobuf,
}

#[derive(Debug, Parser)]
#[command(
    name = "log-push-load",
    about = "Loki push load generator over the log benchmark corpus (loopback targets only)"
)]
struct Args {
    /// Base URL of the server; `/loki/api/v1/push` is appended unless the URL already has a
    /// path ending in `/push`.
    #[arg(long, default_value = "http://127.0.0.1:9009")]
    url: String,
    /// Corpus directory (corpus.tsv and streams.json of make_log_corpus.py).
    #[arg(long, default_value = "/tmp/logcorpus")]
    corpus: PathBuf,
    #[arg(long, value_enum, default_value = "protobuf")]
    format: Format,
    /// Line bytes per request (Promtail's `batchsize`; Promtail/Alloy default 1 MiB).
    #[arg(long, default_value_t = 2 << 20)]
    batch_bytes: usize,
    /// Requests in flight (one thread with its own client each).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Tenant: sent as `X-Scope-OrgID` (no header when absent).
    #[arg(long)]
    tenant: Option<String>,
    /// Only the first N lines of the corpus.
    #[arg(long)]
    limit_lines: Option<usize>,
    /// Timeout of one HTTP request, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout_seconds: u64,
    /// Encode, send nothing, report sizes.
    #[arg(long)]
    dry_run: bool,
}

fn push_url(base: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(base).with_context(|| format!("bad --url {base:?}"))?;
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
    if parsed.path().trim_end_matches('/').ends_with("/push") {
        Ok(base.to_string())
    } else {
        Ok(format!("{}/loki/api/v1/push", base.trim_end_matches('/')))
    }
}

struct Request {
    body: Bytes,
    lines: u64,
    raw_bytes: u64,
}

#[derive(Default)]
struct Stats {
    requests: u64,
    ok: u64,
    errors: u64,
    lines_ok: u64,
    raw_bytes_ok: u64,
    latencies_us: Vec<u64>,
}

fn percentile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    round3(sorted[i] as f64 / 1000.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn main() -> Result<()> {
    let args = Args::parse();
    let url = push_url(&args.url)?;
    if args.concurrency == 0 || args.batch_bytes == 0 {
        bail!("--concurrency and --batch-bytes must be positive");
    }
    let format = match args.format {
        Format::Json => PushFormat::Json,
        Format::Protobuf => PushFormat::Protobuf,
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(
        "user-agent",
        HeaderValue::from_static("vigil-log-push-load/0.1"),
    );
    if let Some(tenant) = &args.tenant {
        headers.insert(
            "x-scope-orgid",
            HeaderValue::from_str(tenant).context("bad --tenant")?,
        );
    }

    let t0 = Instant::now();
    let corpus = Corpus::load(&args.corpus, args.limit_lines)?;
    if corpus.is_empty() {
        bail!("the corpus in {} has no lines", args.corpus.display());
    }
    let load_seconds = t0.elapsed().as_secs_f64();
    let batches = plan_batches(&corpus, args.batch_bytes);
    let lines = corpus.len() as u64;
    let raw_bytes = corpus.raw_bytes();
    // Encode on every core, batches in order.
    let t1 = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = batches.len().div_ceil(threads).max(1);
    let requests: Vec<Request> = std::thread::scope(|scope| {
        let handles: Vec<_> = batches
            .chunks(chunk)
            .map(|part| {
                let corpus = &corpus;
                scope.spawn(move || {
                    part.iter()
                        .map(|b| Request {
                            body: Bytes::from(encode(corpus, b, format)),
                            lines: b.lines as u64,
                            raw_bytes: b.raw_bytes as u64,
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("encoder thread panicked"))
            .collect()
    });
    let encode_seconds = t1.elapsed().as_secs_f64();
    let streams = corpus.streams.len();
    drop(batches);
    drop(corpus);
    let body_bytes: u64 = requests.iter().map(|r| r.body.len() as u64).sum();
    let n_requests = requests.len();
    eprintln!(
        "log-push-load: {lines} lines of {streams} streams, {raw_bytes} line bytes in {n_requests} {} requests ({body_bytes} body bytes); loaded in {load_seconds:.1}s, encoded in {encode_seconds:.1}s",
        format.name()
    );

    let mut stats = Stats::default();
    let send_start = Instant::now();
    if args.dry_run {
        stats.requests = n_requests as u64;
        stats.ok = n_requests as u64;
        stats.lines_ok = lines;
        stats.raw_bytes_ok = raw_bytes;
    } else {
        let queue = Mutex::new(requests.into_iter());
        let progress = AtomicU64::new(0);
        let results: Vec<Stats> = std::thread::scope(|scope| -> Result<Vec<Stats>> {
            let handles: Vec<_> = (0..args.concurrency)
                .map(|_| {
                    let client = Client::builder()
                        .timeout(Duration::from_secs(args.timeout_seconds))
                        .pool_max_idle_per_host(1)
                        .build();
                    let (queue, url, headers, progress) = (&queue, &url, &headers, &progress);
                    scope.spawn(move || -> Result<Stats> {
                        let client = client?;
                        let mut s = Stats::default();
                        loop {
                            let next = queue.lock().expect("queue lock").next();
                            let Some(request) = next else { break };
                            s.requests += 1;
                            let started = Instant::now();
                            let result = client
                                .post(url.as_str())
                                .headers(headers.clone())
                                .body(request.body)
                                .send();
                            let outcome = match result {
                                Ok(resp) => {
                                    let status = resp.status();
                                    let body = resp.text().unwrap_or_default();
                                    if status.as_u16() == 204 {
                                        Ok(())
                                    } else {
                                        Err(format!(
                                            "{status}: {}",
                                            body.chars().take(4000).collect::<String>()
                                        ))
                                    }
                                }
                                Err(e) => Err(format!("request error: {e}")),
                            };
                            s.latencies_us.push(started.elapsed().as_micros() as u64);
                            match outcome {
                                Ok(()) => {
                                    s.ok += 1;
                                    s.lines_ok += request.lines;
                                    s.raw_bytes_ok += request.raw_bytes;
                                    progress.fetch_add(request.lines, Ordering::Relaxed);
                                }
                                Err(e) => {
                                    s.errors += 1;
                                    eprintln!(
                                        "log-push-load: request of {} lines failed: {e}",
                                        request.lines
                                    );
                                }
                            }
                        }
                        Ok(s)
                    })
                })
                .collect();
            let mut last = Instant::now();
            while !handles.iter().all(|h| h.is_finished()) {
                std::thread::sleep(Duration::from_millis(50));
                if last.elapsed() >= Duration::from_secs(10) {
                    last = Instant::now();
                    let done = progress.load(Ordering::Relaxed);
                    let secs = send_start.elapsed().as_secs_f64();
                    eprintln!(
                        "log-push-load: {done}/{lines} lines acked in {secs:.0}s ({:.0}/s)",
                        done as f64 / secs
                    );
                }
            }
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("sender thread panicked"))?
                })
                .collect()
        })?;
        for r in results {
            stats.requests += r.requests;
            stats.ok += r.ok;
            stats.errors += r.errors;
            stats.lines_ok += r.lines_ok;
            stats.raw_bytes_ok += r.raw_bytes_ok;
            stats.latencies_us.extend(r.latencies_us);
        }
    }
    let seconds = send_start.elapsed().as_secs_f64().max(1e-9);
    stats.latencies_us.sort_unstable();
    let lat = &stats.latencies_us;
    let summary = json!({
        "tool": "log-push-load",
        "url": url,
        "format": format.name(),
        "dry_run": args.dry_run,
        "tenant": args.tenant,
        "concurrency": args.concurrency,
        "batch_bytes": args.batch_bytes,
        "streams": streams,
        "lines": lines,
        "lines_ok": stats.lines_ok,
        "raw_bytes": raw_bytes,
        "body_bytes": body_bytes,
        "seconds": round3(seconds),
        "lines_per_s": (!args.dry_run).then(|| (stats.lines_ok as f64 / seconds).round()),
        // Raw line bytes acknowledged, in MB (10^6 bytes) per second.
        "mb_per_s": (!args.dry_run).then(|| round3(stats.raw_bytes_ok as f64 / 1e6 / seconds)),
        "requests": stats.requests,
        "requests_ok": stats.ok,
        "errors": stats.errors,
        "encode_seconds": round3(encode_seconds),
        "latency_ms": {
            "p50": percentile_ms(lat, 0.5),
            "p99": percentile_ms(lat, 0.99),
            "max": percentile_ms(lat, 1.0),
        },
    });
    println!("{summary}");
    if stats.errors > 0 || stats.lines_ok != lines {
        eprintln!(
            "log-push-load: {} of {} requests failed",
            stats.errors, stats.requests
        );
        std::process::exit(1);
    }
    Ok(())
}
