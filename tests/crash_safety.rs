//! Crash safety: a sample acknowledged with 204 survives a SIGKILL at any moment.
//!
//! Each trial starts a fresh server, lets 2–4 client threads write batches (each thread its own
//! series, timestamps increasing on a clock shared by the threads, a quarter of the batches to a
//! second tenant), kills the server with SIGKILL at a random moment 50–600 ms in, restarts it on
//! the same data directory and reads every acknowledged sample back by remote read, comparing the
//! value bits. Half of the trials run with `--block-duration 1m` and timestamps stepping a second
//! per batch, so that blocks are cut (and uploaded, and the WAL truncated) while the crash may come.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::data::{self, node_exporter_series, random_value, LabelSet, STALE_NAN_BITS};
use common::http::{encode_snappy, Client, REMOTE_WRITE_HEADERS};
use common::process::VigilOpts;
use common::{find_files, now_ms, test_seed, Dataset, Vigil};
use vigil_proto::prometheus::WriteRequest;

const TRIALS: u64 = 20;
const SECOND_TENANT: &str = "crash-b";

/// What one writer thread saw.
#[derive(Default)]
struct WriterLog {
    /// Every batch sent (acknowledged or not).
    attempted: Vec<(String, WriteRequest)>,
    /// The batches answered 204.
    acked: Vec<(String, WriteRequest)>,
    /// Answers other than 204, and transport errors before the kill.
    unexpected: Vec<String>,
}

struct Shared {
    url: String,
    /// The next timestamp to hand out (a clock shared by the writers).
    next_ts: AtomicI64,
    step_ms: i64,
    killed: AtomicBool,
}

fn writer(shared: Arc<Shared>, id: usize, seed: u64, log: Arc<Mutex<WriterLog>>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let id_text = id.to_string();
    let sets: Vec<LabelSet> =
        node_exporter_series(&format!("host-{id}:9100"), &[("writer", &id_text)]);
    let client = Client::with_timeout(Duration::from_secs(20));
    let started = Instant::now();
    for _ in 0..1_000_000 {
        if shared.killed.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(30) {
            break;
        }
        if shared.next_ts.load(Ordering::SeqCst) > now_ms() {
            // The shared clock caught up with the wall clock: idle until the kill.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let ts = shared.next_ts.fetch_add(shared.step_ms, Ordering::SeqCst);
        let tenant = if rng.u8(0..4) == 0 {
            SECOND_TENANT
        } else {
            "default"
        };
        let samples_per_series = rng.i64(1..=3);
        let mut chosen: Vec<&LabelSet> = sets.iter().filter(|_| rng.bool()).collect();
        if chosen.is_empty() {
            chosen.push(&sets[rng.usize(..sets.len())]);
        }
        let timeseries = chosen
            .into_iter()
            .map(|set| {
                let samples: Vec<(i64, f64)> = (0..samples_per_series)
                    .map(|i| {
                        let value = if rng.u8(0..50) == 0 {
                            f64::from_bits(STALE_NAN_BITS)
                        } else {
                            random_value(&mut rng)
                        };
                        (ts + i * shared.step_ms / 4, value)
                    })
                    .collect();
                data::series(set, &samples)
            })
            .collect();
        let request = data::request(timeseries);
        log.lock()
            .unwrap()
            .attempted
            .push((tenant.to_string(), request.clone()));
        let result = client.post(
            &shared.url,
            Some(tenant),
            &REMOTE_WRITE_HEADERS,
            encode_snappy(&request),
        );
        match result {
            Ok(response) if response.status == 204 => log
                .lock()
                .unwrap()
                .acked
                .push((tenant.to_string(), request)),
            Ok(response) => log.lock().unwrap().unexpected.push(format!(
                "writer {id}: batch at {ts} (tenant {tenant}) answered {}: {}",
                response.status,
                response.text()
            )),
            Err(err) => {
                if !shared.killed.load(Ordering::SeqCst) {
                    log.lock().unwrap().unexpected.push(format!(
                        "writer {id}: transport error before the kill: {err}"
                    ));
                }
                break;
            }
        }
    }
}

struct TrialOutcome {
    blocks_at_crash: usize,
}

fn run_trial(trial: u64, seed: u64) -> TrialOutcome {
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let cuts = trial & 1 == 0;
    let writers = rng.usize(2..=4);
    let kill_after = Duration::from_millis(rng.u64(50..=600));
    // With 1m blocks a batch steps one second: a few hundred batches cross several cuts. With
    // 2h blocks the timestamps stay within the last minute and no block is cut.
    let (block_duration, start_ms, step_ms) = if cuts {
        ("1m", now_ms() - 20 * 60_000, 1_000)
    } else {
        ("2h", now_ms() - 60_000, 8)
    };
    let mut vigil = Vigil::start(
        dir.path(),
        VigilOpts::args(&["--block-duration", block_duration]),
    );
    let shared = Arc::new(Shared {
        url: vigil.url("/api/v1/push"),
        next_ts: AtomicI64::new(start_ms),
        step_ms,
        killed: AtomicBool::new(false),
    });
    let logs: Vec<Arc<Mutex<WriterLog>>> = (0..writers)
        .map(|_| Arc::new(Mutex::new(WriterLog::default())))
        .collect();
    let handles: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(id, log)| {
            let shared = shared.clone();
            let log = log.clone();
            let seed = rng.u64(..);
            std::thread::spawn(move || writer(shared, id, seed, log))
        })
        .collect();

    std::thread::sleep(kill_after);
    // The flag goes up before the kill, so a writer that sees its connection fail knows why.
    shared.killed.store(true, Ordering::SeqCst);
    vigil.kill();
    for handle in handles {
        handle.join().expect("writer thread panicked");
    }

    let mut acked = Dataset::default();
    let mut attempted = Dataset::default();
    let mut acked_batches = 0;
    let mut unacked_batches = 0;
    let mut unexpected = Vec::new();
    for log in &logs {
        let log = log.lock().unwrap();
        for (tenant, request) in &log.acked {
            acked.add_request(tenant, request);
        }
        for (tenant, request) in &log.attempted {
            attempted.add_request(tenant, request);
        }
        acked_batches += log.acked.len();
        unacked_batches += log.attempted.len() - log.acked.len();
        unexpected.extend(log.unexpected.iter().cloned());
    }
    assert!(
        unexpected.is_empty(),
        "trial {trial} (seed {seed}): valid batches were not acknowledged before the kill:\n{}",
        unexpected.join("\n")
    );
    assert!(
        acked_batches > 0,
        "trial {trial} (seed {seed}): no batch was acknowledged in {kill_after:?}"
    );
    let blocks_at_crash = find_files(&vigil.data_dir, "meta.json").len();

    let restarted = Instant::now();
    vigil.restart();
    let ready_after = restarted.elapsed();
    let read_start = start_ms - 1;
    let read_end = now_ms() + 60_000;
    let mut stored = Dataset::default();
    for tenant in ["default", SECOND_TENANT] {
        stored.merge(&vigil.read_all(tenant, read_start, read_end));
    }
    let context = format!(
        "trial {trial} (seed {seed}, {writers} writers, --block-duration {block_duration}, killed \
         after {kill_after:?}, {blocks_at_crash} blocks on disk at the crash)"
    );
    acked.assert_in(
        &stored,
        false,
        &format!("{context}: acknowledged samples after restart"),
    );
    stored.assert_in(
        &attempted,
        false,
        &format!("{context}: samples after restart that no client sent"),
    );

    // The recovered server takes new writes: a new series, and the next samples of old ones.
    // Past every timestamp handed out, and at most a few steps ahead of the wall clock.
    let probe_ts = shared.next_ts.load(Ordering::SeqCst);
    let mut probe = Dataset::default();
    let probe_request = data::request(vec![
        data::series(
            &data::labels(
                "crash_probe_after_restart",
                &[("trial", &trial.to_string())],
            ),
            &[(now_ms(), 42.0)],
        ),
        data::series(
            &node_exporter_series("host-0:9100", &[("writer", "0")])[0],
            &[(probe_ts, 7.0)],
        ),
    ]);
    probe.add_request("default", &probe_request);
    let response = vigil.write(Some("default"), &probe_request);
    assert_eq!(
        response.status,
        204,
        "{context}: write after the restart answered {}: {}",
        response.status,
        response.text()
    );
    probe.assert_in(
        &vigil.read_all("default", read_start, now_ms() + 60_000),
        false,
        &format!("{context}: the write after the restart"),
    );
    eprintln!(
        "{context}: {acked_batches} batches acked ({} samples), {unacked_batches} unacked; ready \
         {ready_after:?} after restart; all acked samples found",
        acked.sample_count()
    );
    TrialOutcome { blocks_at_crash }
}

#[test]
fn acknowledged_samples_survive_sigkill_at_random_moments() {
    let seed = test_seed("crash_safety");
    let mut rng = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let mut trials_with_blocks = 0;
    for trial in 0..TRIALS {
        let outcome = run_trial(trial, rng.u64(..));
        if outcome.blocks_at_crash > 0 {
            trials_with_blocks += 1;
        }
    }
    eprintln!(
        "{TRIALS} trials in {:?}; {trials_with_blocks} crashed with blocks already cut",
        started.elapsed()
    );
    assert!(
        trials_with_blocks >= 2,
        "only {trials_with_blocks} of {TRIALS} trials had cut a block before the crash: with \
         --block-duration 1m and 20 minutes of timestamps, blocks should be cut within 600 ms of \
         writing (seed {seed})"
    );
}
