//! Crash safety: a sample acknowledged with 204 survives a SIGKILL at any moment.
//!
//! Each trial starts a fresh server and then, twice: lets 2–4 client threads write batches (each
//! thread its own series, timestamps increasing on a clock shared by the threads, a quarter of the
//! batches to a second tenant), kills the server with SIGKILL at a random moment 50–600 ms in,
//! restarts it on the same data directory and reads every sample acknowledged so far back by
//! remote read, comparing the value bits. Half of the trials run with `--block-duration 1m` and
//! timestamps stepping a second per batch, so blocks are due: the restart cuts and uploads them
//! and truncates the WAL, which is when the second kill often comes.

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
    /// Crashes that left at least one block on disk (pending or uploaded).
    crashes_with_blocks: usize,
    /// Reads that missed acknowledged samples which a later read found.
    read_misses: Vec<String>,
    /// Samples acknowledged (and verified) over the trial.
    acked_samples: usize,
}

/// Reads everything back and checks it: every acknowledged sample is there with its bits, and
/// nothing is there that no client sent. When samples are missing, reads once more after the
/// blocks have settled (no cut or upload for 2 s): if they are back, the first read missed data in flight
/// between head and blocks (returned as `Err`, a query bug); if not, acknowledged data is lost
/// (panics).
fn verify(
    vigil: &Vigil,
    acked: &Dataset,
    attempted: &Dataset,
    range: (i64, i64),
    context: &str,
) -> Result<(), String> {
    let read = || {
        let mut stored = Dataset::default();
        for tenant in ["default", SECOND_TENANT] {
            stored.merge(&vigil.read_all(tenant, range.0, range.1));
        }
        stored
    };
    let stored = read();
    stored.assert_in(
        attempted,
        false,
        &format!("{context}: samples after restart that no client sent"),
    );
    let missing = acked.diff(&stored, false);
    if missing.is_empty() {
        return Ok(());
    }
    vigil.wait_blocks_settled(Duration::from_secs(30));
    acked.assert_in(
        &read(),
        false,
        &format!("{context}: acknowledged samples LOST (still missing on a second read after blocks settled)"),
    );
    Err(format!(
        "{context}: a remote read right after /ready missed {} acknowledged samples that a second \
         read found (data in flight between head and blocks is invisible to queries); first: {}",
        missing.len(),
        missing[0]
    ))
}

/// One trial: a fresh server, then `CYCLES` times: writers for a random 50–600 ms, SIGKILL,
/// restart on the same data directory, verify everything acknowledged so far. The restarts replay
/// the WAL and (with 1m blocks) cut and upload blocks right away, so the later kills often land in
/// the middle of a cut, an upload or a WAL truncation.
fn run_trial(trial: u64, seed: u64) -> TrialOutcome {
    const CYCLES: usize = 2;
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let cuts = trial & 1 == 0;
    let writers = rng.usize(2..=4);
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
    let mut next_ts = start_ms;
    let mut acked = Dataset::default();
    let mut attempted = Dataset::default();
    let mut crashes_with_blocks = 0;
    let mut read_misses = Vec::new();
    let mut history = Vec::new();

    for cycle in 0..CYCLES {
        let kill_after = Duration::from_millis(rng.u64(50..=600));
        let shared = Arc::new(Shared {
            url: vigil.url("/api/v1/push"),
            next_ts: AtomicI64::new(next_ts),
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
        next_ts = shared.next_ts.load(Ordering::SeqCst);

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
        let blocks_at_crash = find_files(&vigil.data_dir, "meta.json").len();
        if blocks_at_crash > 0 {
            crashes_with_blocks += 1;
        }
        history.push(format!(
            "cycle {cycle}: killed after {kill_after:?}, {acked_batches} batches acked, \
             {unacked_batches} not, {blocks_at_crash} blocks on disk"
        ));
        let context = format!(
            "trial {trial} (seed {seed}, {writers} writers, --block-duration {block_duration}; {})",
            history.join("; ")
        );
        assert!(
            unexpected.is_empty(),
            "{context}: valid batches were not acknowledged before the kill:\n{}",
            unexpected.join("\n")
        );

        eprintln!("{context}: restarting");
        let restarted = Instant::now();
        vigil.restart();
        let ready_after = restarted.elapsed();
        if let Err(miss) = verify(
            &vigil,
            &acked,
            &attempted,
            (start_ms - 1, now_ms() + 60_000),
            &context,
        ) {
            read_misses.push(miss);
        }
        eprintln!(
            "{context}: ready {ready_after:?} after restart; all {} acked samples found",
            acked.sample_count()
        );
    }

    // The recovered server takes new writes: a new series, and the next samples of old ones
    // (past every timestamp handed out, at most a few steps ahead of the wall clock).
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
            &[(next_ts, 7.0)],
        ),
    ]);
    probe.add_request("default", &probe_request);
    let response = vigil.write(Some("default"), &probe_request);
    assert_eq!(
        response.status,
        204,
        "trial {trial} (seed {seed}): write after the restarts answered {}: {}",
        response.status,
        response.text()
    );
    probe.assert_in(
        &vigil.read_all("default", start_ms - 1, now_ms() + 60_000),
        false,
        &format!("trial {trial} (seed {seed}): the write after the restarts"),
    );
    TrialOutcome {
        crashes_with_blocks,
        read_misses,
        acked_samples: acked.sample_count(),
    }
}

#[test]
fn acknowledged_samples_survive_sigkill_at_random_moments() {
    let seed = test_seed("crash_safety");
    let mut rng = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let mut trials_with_blocks = 0;
    let mut read_misses = Vec::new();
    let mut acked_samples = 0;
    for trial in 0..TRIALS {
        let outcome = run_trial(trial, rng.u64(..));
        if outcome.crashes_with_blocks > 0 {
            trials_with_blocks += 1;
        }
        read_misses.extend(outcome.read_misses);
        acked_samples += outcome.acked_samples;
    }
    eprintln!(
        "{TRIALS} trials in {:?}; {acked_samples} samples acknowledged and verified; \
         {trials_with_blocks} trials killed with blocks on disk",
        started.elapsed()
    );
    assert!(
        acked_samples >= 10_000,
        "only {acked_samples} samples were acknowledged over {TRIALS} trials: the test checked \
         too little (seed {seed})"
    );
    assert!(
        trials_with_blocks >= 2,
        "only {trials_with_blocks} of {TRIALS} trials were killed with a block on disk: with \
         --block-duration 1m, blocks are due after the first cycle's writes and a restart should \
         cut them (seed {seed})"
    );
    // No acknowledged sample was lost (that panics at once); but every one must also be visible
    // to the first query after /ready.
    assert!(
        read_misses.is_empty(),
        "{} reads after a restart missed acknowledged samples that were found later (seed {seed}):\n{}",
        read_misses.len(),
        read_misses.join("\n")
    );
}
