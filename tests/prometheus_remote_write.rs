//! A real Prometheus (Debian's 2.42) as the remote-write client: it scrapes itself and Vigil's
//! `/metrics` every second and remote-writes everything to Vigil. The scraped series must show up
//! in Vigil, Prometheus must be able to parse Vigil's `/metrics` (`up{job="vigil"}` is 1), and once
//! the scrape jobs are removed and the queue is drained, every sample Prometheus sent and had
//! acknowledged must be counted by Vigil, with none failed.

mod common;

use std::time::{Duration, Instant};

use common::data::STALE_NAN_BITS;
use common::http::{matcher, Metrics};
use common::process::VigilOpts;
use common::prometheus::Prometheus;
use common::{free_port, now_ms, require_prometheus, wait_for, Vigil};

/// Prometheus' configuration: both scrape jobs with their target while `scrape`, else the same
/// jobs without targets. (Removing a job outright cancels its scrape loops without staleness
/// markers; a target that disappears from a job gets them, which is what a real sender does.)
fn config(prometheus_port: u16, vigil_port: u16, scrape: bool) -> String {
    let targets = |port: u16| {
        if scrape {
            format!("['127.0.0.1:{port}']")
        } else {
            "[]".to_string()
        }
    };
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  \
         - job_name: prometheus\n    static_configs:\n      - targets: {}\n  \
         - job_name: vigil\n    static_configs:\n      - targets: {}\n\
         remote_write:\n  \
         - url: http://127.0.0.1:{vigil_port}/api/v1/write\n    \
         queue_config:\n      batch_send_deadline: 1s\n      max_samples_per_send: 500\n      \
         min_backoff: 100ms\n      max_backoff: 1s\n    \
         metadata_config:\n      send: true\n      send_interval: 2s\n",
        targets(prometheus_port),
        targets(vigil_port)
    )
}

/// Queries this test makes of the Prometheus it starts.
impl Prometheus {
    fn metrics(&self) -> Metrics {
        let response = self
            .client
            .get(&format!("http://127.0.0.1:{}/metrics", self.port), None)
            .unwrap_or_else(|err| panic!("GET prometheus /metrics: {err}"));
        assert_eq!(response.status, 200, "prometheus /metrics");
        Metrics::parse(&response.text())
    }

    fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self
            .client
            .get(&format!("http://127.0.0.1:{}{path}", self.port), None)
            .unwrap_or_else(|err| panic!("GET prometheus {path}: {err}"));
        assert_eq!(
            response.status,
            200,
            "prometheus {path}: {}",
            response.text()
        );
        response.json()
    }

    fn reload(&self) {
        let response = self
            .client
            .post(
                &format!("http://127.0.0.1:{}/-/reload", self.port),
                None,
                &[],
                Vec::new(),
            )
            .unwrap_or_else(|err| panic!("POST prometheus /-/reload: {err}"));
        assert_eq!(
            response.status,
            200,
            "prometheus /-/reload answered {}: {}",
            response.status,
            response.text()
        );
    }
}

#[test]
fn prometheus_remote_write_is_fully_ingested_and_counted() {
    let binary = require_prometheus();
    let dir = tempfile::tempdir().unwrap();
    let vigil = Vigil::start(dir.path(), VigilOpts::default());
    let prometheus_port = free_port();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config(prometheus_port, vigil.port, true)).unwrap();
    let started_ms = now_ms();
    let prometheus = Prometheus::start(
        &binary,
        dir.path(),
        &config_path,
        prometheus_port,
        &["--web.enable-lifecycle"],
    );

    // The scraped series arrive in Vigil.
    wait_for(
        "up, prometheus_build_info and a vigil_ metric (scraped by Prometheus) in Vigil's /api/v1/series",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let up = vigil.series("up", None);
            let jobs: Vec<&str> = up.iter().filter_map(|set| set.get("job").map(String::as_str)).collect();
            let build_info = vigil.series("prometheus_build_info", None);
            let own = vigil.series(r#"{__name__=~"vigil_.+",job="vigil"}"#, None);
            if jobs.contains(&"prometheus") && jobs.contains(&"vigil") && !build_info.is_empty() && !own.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "up jobs {jobs:?}, prometheus_build_info series {}, vigil_* series from job vigil {}",
                    build_info.len(),
                    own.len()
                ))
            }
        },
    );
    let build_info = vigil.series("prometheus_build_info", None);
    assert!(
        build_info[0]
            .get("version")
            .is_some_and(|version| version.starts_with("2.")),
        "prometheus_build_info labels: {build_info:?}"
    );

    // Metadata sent by Prometheus is served back.
    wait_for(
        "/api/v1/metadata to describe prometheus_build_info as a gauge",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let data = vigil.api_data("/api/v1/metadata", None);
            let entry = &data["prometheus_build_info"][0];
            if entry["type"] == "gauge"
                && entry["help"].as_str().is_some_and(|help| !help.is_empty())
            {
                Ok(())
            } else {
                Err(format!(
                    "prometheus_build_info metadata: {}",
                    data["prometheus_build_info"]
                ))
            }
        },
    );

    // Let a few scrapes of each job go through first.
    wait_for(
        "5 samples of up{job=\"vigil\"} in Vigil",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let up = vigil.read(
                None,
                started_ms,
                now_ms() + 1_000,
                vec![matcher(0, "__name__", "up"), matcher(0, "job", "vigil")],
            );
            let count: usize = up.iter().map(|series| series.samples.len()).sum();
            if count >= 5 {
                Ok(())
            } else {
                Err(format!("{count} samples"))
            }
        },
    );

    // Prometheus' own verdict on Vigil's /metrics: the target is up, with no scrape error.
    let targets = prometheus.get_json("/api/v1/targets");
    let active = targets["data"]["activeTargets"]
        .as_array()
        .unwrap_or_else(|| panic!("prometheus /api/v1/targets: {targets}"));
    let vigil_target = active
        .iter()
        .find(|target| target["labels"]["job"] == "vigil")
        .unwrap_or_else(|| panic!("no vigil target in {targets}"));
    assert!(
        vigil_target["health"] == "up" && vigil_target["lastError"] == "",
        "Prometheus cannot scrape Vigil's /metrics: {vigil_target}"
    );

    // Stop scraping (the targets disappear); staleness markers follow; then the queue drains.
    std::fs::write(&config_path, config(prometheus_port, vigil.port, false)).unwrap();
    prometheus.reload();
    let sum = |metrics: &Metrics, name: &str| metrics.sum_or_zero(name, &[]);
    let mut stable_since: Option<(Instant, f64, f64)> = None;
    let drained = wait_for(
        "Prometheus' remote-write queue to drain (samples_pending 0, samples_in_total and samples_total unchanged for 5 s)",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let metrics = prometheus.metrics();
            let pending = sum(&metrics, "prometheus_remote_storage_samples_pending");
            let total = sum(&metrics, "prometheus_remote_storage_samples_total");
            let appended = sum(&metrics, "prometheus_remote_storage_samples_in_total");
            let state = format!("pending {pending}, samples_total {total}, samples_in_total {appended}");
            match stable_since {
                Some((since, old_total, old_in))
                    if pending == 0.0 && old_total == total && old_in == appended =>
                {
                    if since.elapsed() >= Duration::from_secs(5) {
                        return Ok(metrics);
                    }
                }
                _ => stable_since = Some((Instant::now(), total, appended)),
            }
            Err(state)
        },
    );
    let sent = sum(&drained, "prometheus_remote_storage_samples_total");
    let retried = sum(&drained, "prometheus_remote_storage_samples_retried_total");
    let failed = sum(&drained, "prometheus_remote_storage_samples_failed_total");
    let dropped = sum(&drained, "prometheus_remote_storage_samples_dropped_total");
    let ingested = vigil
        .metrics()
        .sum_or_zero("vigil_samples_ingested_total", &[("tenant", "default")]);
    eprintln!(
        "prometheus: samples_total {sent}, retried {retried}, failed {failed}, dropped {dropped}; \
         vigil_samples_ingested_total{{tenant=\"default\"}} {ingested}"
    );
    assert!(sent > 100.0, "Prometheus sent only {sent} samples");
    assert_eq!(
        failed, 0.0,
        "Prometheus counted {failed} samples as failed (non-retryable answers from Vigil); see the \
         prometheus log for the responses"
    );
    // samples_total counts every attempt, retries included.
    assert_eq!(
        ingested,
        sent - retried,
        "vigil_samples_ingested_total{{tenant=\"default\"}} vs Prometheus' acknowledged samples \
         (samples_total {sent} - retried {retried})"
    );

    // Prometheus parsed Vigil's /metrics on every scrape: up{job="vigil"} is 1 (or the final
    // staleness marker).
    let up = vigil.read(
        None,
        started_ms,
        now_ms() + 1_000,
        vec![matcher(0, "__name__", "up"), matcher(0, "job", "vigil")],
    );
    assert_eq!(up.len(), 1, "one up{{job=\"vigil\"}} series: {up:?}");
    let samples = &up[0].samples;
    assert!(
        samples.len() >= 3,
        "up{{job=\"vigil\"}} samples: {samples:?}"
    );
    for sample in samples {
        assert!(
            sample.value == 1.0 || sample.value.to_bits() == STALE_NAN_BITS,
            "up{{job=\"vigil\"}} was {} at {}: Prometheus could not scrape Vigil's /metrics",
            sample.value,
            sample.timestamp
        );
    }
    assert_eq!(
        samples.last().map(|sample| sample.value.to_bits()),
        Some(STALE_NAN_BITS),
        "the last up{{job=\"vigil\"}} sample should be the staleness marker Prometheus writes when \
         the job is removed"
    );
    let mut prometheus = prometheus;
    assert!(
        prometheus.proc.try_exit().is_none(),
        "prometheus exited during the test"
    );
}
