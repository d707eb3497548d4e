//! An S3 outage: the S3 server (moto) is frozen with SIGSTOP while writes go on and blocks are
//! cut; writes keep answering 204 quickly, the blocks wait in the pending area, the S3 stays frozen
//! until an upload attempt has timed out and failed, and after SIGCONT every block arrives in S3
//! and the samples read back from S3 equal what was written.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::blocks::{Blocks, MotoS3};
use common::data::{self, history, labels, node_exporter_series};
use common::http::{encode_snappy, Client, REMOTE_WRITE_HEADERS};
use common::{find_files, now_ms, wait_for, Dataset, Vigil};

const BUCKET: &str = "vigil-outage";
const PREFIX: &str = "outage";

/// Writes one sample of a heartbeat series every 100 ms with the wall clock's timestamp until
/// `stop`; returns what was acknowledged and every failure (status, body, latency).
fn heartbeat(url: String, stop: Arc<AtomicBool>) -> (Dataset, Vec<String>, Duration) {
    let client = Client::with_timeout(Duration::from_secs(10));
    let set = labels("outage_heartbeat", &[("job", "heartbeat")]);
    let mut acked = Dataset::default();
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    let mut last_ts = 0;
    while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(300) {
        let ts = now_ms().max(last_ts + 1);
        last_ts = ts;
        let request = data::request(vec![data::series(&set, &[(ts, ts as f64)])]);
        let sent = Instant::now();
        let result = client.post(&url, None, &REMOTE_WRITE_HEADERS, encode_snappy(&request));
        let latency = sent.elapsed();
        slowest = slowest.max(latency);
        match result {
            Ok(response) if response.status == 204 => acked.add_request("default", &request),
            Ok(response) => failures.push(format!(
                "heartbeat @{ts}: {} after {latency:?}: {}",
                response.status,
                response.text()
            )),
            Err(err) => failures.push(format!("heartbeat @{ts}: {err} after {latency:?}")),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (acked, failures, slowest)
}

#[test]
fn blocks_cut_during_an_s3_outage_arrive_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = MotoS3::start(dir.path());
    s3.create_bucket(BUCKET);
    let mut vigil = Vigil::start(
        dir.path(),
        s3.vigil_opts(BUCKET, PREFIX, &["--block-duration", "1m"]),
    );
    let mut rng = fastrand::Rng::with_seed(11);
    let sets = node_exporter_series("outage-node:9100", &[]);
    let end = now_ms() / 1_000 * 1_000;
    let start = end - 12 * 60_000;
    let mut batches = history(&sets, start, end, 10_000, 30_000, &mut rng);
    let mut expected = Dataset::default();

    // Phase 1: S3 up. The first four minutes; a block is uploaded.
    let second_half = batches.split_off(8);
    for request in &batches {
        vigil.write_ok(None, request);
        expected.add_request("default", request);
    }
    wait_for(
        "a first block uploaded to S3",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let uploaded = vigil
                .metrics()
                .sum_or_zero("vigil_blocks_uploaded_total", &[("tenant", "default")]);
            if uploaded >= 1.0 {
                Ok(())
            } else {
                Err(format!("uploaded {uploaded}"))
            }
        },
    );

    let stop = Arc::new(AtomicBool::new(false));
    let beat = {
        let url = vigil.url("/api/v1/push");
        let stop = stop.clone();
        std::thread::spawn(move || heartbeat(url, stop))
    };

    // Phase 2: S3 frozen. The rest of the history is written and cut into blocks.
    s3.proc.signal("STOP");
    let frozen = Instant::now();
    let cut_before = vigil
        .metrics()
        .sum_or_zero("vigil_blocks_cut_total", &[("tenant", "default")]);
    let write_client = Client::with_timeout(Duration::from_secs(10));
    let mut slow_writes = Vec::new();
    for request in &second_half {
        let sent = Instant::now();
        let response = write_client
            .post(
                &vigil.url("/api/v1/push"),
                None,
                &REMOTE_WRITE_HEADERS,
                encode_snappy(request),
            )
            .unwrap_or_else(|err| panic!("write during the S3 outage failed: {err}"));
        assert_eq!(
            response.status,
            204,
            "write during the S3 outage answered {}: {}",
            response.status,
            response.text()
        );
        if sent.elapsed() > Duration::from_secs(5) {
            slow_writes.push(sent.elapsed());
        }
        expected.add_request("default", request);
    }
    let outage_metrics = wait_for(
        "a block cut while S3 is frozen, waiting for upload (vigil_blocks_pending_upload >= 1)",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let metrics = vigil.metrics();
            let cut = metrics.sum_or_zero("vigil_blocks_cut_total", &[("tenant", "default")]);
            let pending = metrics.sum_or_zero("vigil_blocks_pending_upload", &[]);
            if cut > cut_before && pending >= 1.0 {
                Ok(metrics)
            } else {
                Err(format!(
                    "cut {cut} (before the outage {cut_before}), pending {pending}"
                ))
            }
        },
    );
    vigil.assert_healthy();
    let ready = vigil.get("/ready", None);
    assert_eq!(
        ready.status,
        200,
        "/ready during an S3 outage: {}",
        ready.text()
    );
    // Stay frozen until an upload attempt has timed out and failed (the object-store requests are
    // bounded), so the retry path runs too, not only a request that hangs until S3 is back.
    let failures_before = outage_metrics.sum_or_zero("vigil_block_upload_failures_total", &[]);
    wait_for(
        "an upload attempt to fail while S3 is frozen (vigil_block_upload_failures_total rising): \
         uploads to a hung store must time out",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let failures = vigil
                .metrics()
                .sum_or_zero("vigil_block_upload_failures_total", &[]);
            if failures > failures_before {
                Ok(())
            } else {
                Err(format!(
                    "{failures} failures after {:?} frozen",
                    frozen.elapsed()
                ))
            }
        },
    );
    assert!(
        slow_writes.is_empty(),
        "writes took over 5 s during the S3 outage (they must not wait for S3): {slow_writes:?}"
    );
    eprintln!(
        "outage: {} blocks cut, {} pending after {:?}",
        outage_metrics.sum_or_zero("vigil_blocks_cut_total", &[]),
        outage_metrics.sum_or_zero("vigil_blocks_pending_upload", &[]),
        frozen.elapsed()
    );

    // Phase 3: S3 back. Every block arrives.
    s3.proc.signal("CONT");
    let frozen_for = frozen.elapsed();
    wait_for(
        "every cut block uploaded after the outage (pending 0, uploaded == cut)",
        Duration::from_secs(180),
        Duration::from_millis(500),
        || {
            let metrics = vigil.metrics();
            let cut = metrics.sum_or_zero("vigil_blocks_cut_total", &[("tenant", "default")]);
            let uploaded =
                metrics.sum_or_zero("vigil_blocks_uploaded_total", &[("tenant", "default")]);
            let pending = metrics.sum_or_zero("vigil_blocks_pending_upload", &[]);
            if pending == 0.0 && uploaded == cut {
                Ok(())
            } else {
                Err(format!("cut {cut}, uploaded {uploaded}, pending {pending}"))
            }
        },
    );
    eprintln!(
        "S3 frozen for {frozen_for:?}; vigil_block_upload_failures_total {}",
        vigil
            .metrics()
            .sum_or_zero("vigil_block_upload_failures_total", &[])
    );

    stop.store(true, Ordering::SeqCst);
    let (beats, beat_failures, slowest_beat) = beat.join().expect("heartbeat thread");
    assert!(
        beat_failures.is_empty(),
        "heartbeat writes failed during the outage (slowest {slowest_beat:?}):\n{}",
        beat_failures.join("\n")
    );
    assert!(
        beats.sample_count() >= 20,
        "only {} heartbeats",
        beats.sample_count()
    );
    expected.merge(&beats);

    let running = Blocks::read_s3(&s3, BUCKET, PREFIX);
    running
        .check()
        .assert_in(&expected, false, "S3 blocks after the outage (vs written)");

    // Shutdown puts the rest in S3 too; then S3 holds exactly what was written.
    let status = vigil.terminate(Duration::from_secs(90));
    assert!(status.success(), "vigil exited with {status} after SIGTERM");
    let after = Blocks::read_s3(&s3, BUCKET, PREFIX);
    assert!(
        after.incomplete.is_empty(),
        "block directories without meta.json in S3 (left over from failed uploads?): {:?}",
        after.incomplete
    );
    expected.assert_in(
        &after.check(),
        true,
        "union of all S3 blocks after the outage and a graceful shutdown vs everything written",
    );
    let pending = find_files(&vigil.data_dir.join("pending"), "meta.json");
    assert!(pending.is_empty(), "blocks left pending: {pending:?}");
}
