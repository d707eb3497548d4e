//! Crash safety of the logs write path: an entry acknowledged with 204 survives a SIGKILL at any
//! moment.
//!
//! Each of 20 trials starts a fresh server and then, twice: lets 2–3 client threads push batches
//! (each thread its own stream, JSON or protobuf, timestamps from a clock shared by the threads),
//! kills the server with SIGKILL at a random moment 50–600 ms in, restarts it on the same data
//! directory and reads everything back through `query_range`: every acknowledged entry must be
//! there, byte for byte, and nothing that was never sent. Half of the trials run with
//! `--block-duration 1m`, `--log-cut-idle 0s` and timestamps stepping 20 ms an entry from 90
//! minutes ago (never past the wall clock), so log blocks are cut, uploaded and the WAL truncated
//! while the kills land.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http::{urlencode, Client};
use common::loki::{
    json_body, protobuf_body, push, read_all, stream_labels, Entry, LogSet, JSON, PROTOBUF,
};
use common::process::VigilOpts;
use common::{now_ms, test_seed, Vigil};

const TRIALS: u64 = 20;

struct Shared {
    url: String,
    next_ts: AtomicI64,
    step_ns: i64,
    killed: AtomicBool,
}

#[derive(Default)]
struct WriterLog {
    attempted: LogSet,
    acked: LogSet,
    unexpected: Vec<String>,
}

fn writer(
    shared: Arc<Shared>,
    trial: u64,
    id: usize,
    round: usize,
    seed: u64,
    log: Arc<Mutex<WriterLog>>,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let labels = stream_labels(&[
        ("app", "crash"),
        ("trial", &trial.to_string()),
        ("writer", &id.to_string()),
    ]);
    let client = Client::with_timeout(Duration::from_secs(20));
    let started = Instant::now();
    for batch in 0..100_000 {
        if shared.killed.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(30) {
            break;
        }
        if shared.next_ts.load(Ordering::SeqCst) > now_ms() * 1_000_000 {
            // The shared clock caught up with the wall clock (a fast machine): idle until the
            // kill rather than push entries the server must reject as too new.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let size = rng.usize(1..200);
        let entries: Vec<Entry> = (0..size)
            .map(|i| {
                let ts = shared.next_ts.fetch_add(shared.step_ns, Ordering::SeqCst);
                let noise: String = (0..rng.usize(0..40))
                    .map(|_| {
                        rng.choice(['a', 'Z', '9', ' ', 'é', '→', '"', '\\', '\t'])
                            .unwrap_or('x')
                    })
                    .collect();
                Entry::new(
                    ts,
                    &format!("round {round} writer {id} batch {batch} entry {i} {noise}"),
                )
            })
            .collect();
        let protobuf = rng.bool();
        let body = if protobuf {
            protobuf_body(&[(&labels, &entries)])
        } else {
            json_body(&[(&labels, &entries)])
        };
        let headers = if protobuf { &PROTOBUF[..] } else { &JSON[..] };
        log.lock()
            .expect("log")
            .attempted
            .entry(labels.clone())
            .or_default()
            .extend(entries.iter().cloned());
        match push(&client, &shared.url, None, headers, body) {
            Ok(r) if r.status == 204 => {
                log.lock()
                    .expect("log")
                    .acked
                    .entry(labels.clone())
                    .or_default()
                    .extend(entries);
            }
            Ok(r) => {
                if !shared.killed.load(Ordering::SeqCst) {
                    log.lock()
                        .expect("log")
                        .unexpected
                        .push(format!("{} {}", r.status, r.text()));
                }
            }
            Err(e) => {
                if !shared.killed.load(Ordering::SeqCst) {
                    log.lock().expect("log").unexpected.push(e);
                }
            }
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_entry() {
    let seed = test_seed("loki_crash_safety");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut total_acked = 0usize;
    for trial in 0..TRIALS {
        let dir = tempfile::tempdir().expect("tempdir");
        let with_blocks = trial % 2 == 1;
        let opts = if with_blocks {
            // Cut ranges as soon as they are due, while the writers still write them.
            VigilOpts::args(&["--block-duration", "1m", "--log-cut-idle", "0s"])
        } else {
            VigilOpts::default()
        };
        let mut vigil = Vigil::start(dir.path(), opts);
        let (start_ns, step_ns) = if with_blocks {
            ((now_ms() - 90 * 60 * 1000) * 1_000_000, 1_000_000_000 / 50)
        } else {
            ((now_ms() - 60 * 1000) * 1_000_000, 1_000)
        };
        let clock = AtomicI64::new(start_ns);
        let mut acked = LogSet::new();
        let mut attempted = LogSet::new();
        for round in 0..2 {
            let shared = Arc::new(Shared {
                url: vigil.base_url(),
                next_ts: AtomicI64::new(clock.load(Ordering::SeqCst)),
                step_ns,
                killed: AtomicBool::new(false),
            });
            let writers = rng.usize(2..=3);
            let logs: Vec<Arc<Mutex<WriterLog>>> = (0..writers).map(|_| Arc::default()).collect();
            let handles: Vec<_> = logs
                .iter()
                .enumerate()
                .map(|(id, log)| {
                    let (shared, log, seed) = (shared.clone(), log.clone(), rng.u64(..));
                    std::thread::spawn(move || writer(shared, trial, id, round, seed, log))
                })
                .collect();
            std::thread::sleep(Duration::from_millis(rng.u64(50..600)));
            shared.killed.store(true, Ordering::SeqCst);
            vigil.kill();
            for h in handles {
                h.join().expect("writer thread");
            }
            clock.store(shared.next_ts.load(Ordering::SeqCst), Ordering::SeqCst);
            for log in &logs {
                let log = log.lock().expect("log");
                assert!(
                    log.unexpected.is_empty(),
                    "trial {trial}: unexpected answers before the kill: {:?}",
                    &log.unexpected[..log.unexpected.len().min(5)]
                );
                for (labels, entries) in &log.acked {
                    acked
                        .entry(labels.clone())
                        .or_default()
                        .extend(entries.iter().cloned());
                }
                for (labels, entries) in &log.attempted {
                    attempted
                        .entry(labels.clone())
                        .or_default()
                        .extend(entries.iter().cloned());
                }
            }
            vigil.restart();
            let stored = read_all(
                &vigil.client,
                &vigil.base_url(),
                None,
                &format!(r#"{{app="crash", trial="{trial}"}}"#),
                start_ns - 1,
                clock.load(Ordering::SeqCst) + 1,
            );
            for (labels, entries) in &acked {
                let got: std::collections::BTreeSet<&Entry> = stored
                    .get(labels)
                    .map(|e| e.iter().collect())
                    .unwrap_or_default();
                let lost: Vec<&Entry> = entries.iter().filter(|e| !got.contains(e)).collect();
                assert!(
                    lost.is_empty(),
                    "trial {trial} (seed {seed}, blocks {with_blocks}) round {round}: {} of {} acknowledged entries lost after SIGKILL, first {:?}",
                    lost.len(),
                    entries.len(),
                    lost.first()
                );
            }
            for (labels, entries) in &stored {
                let sent: std::collections::BTreeSet<&Entry> = attempted
                    .get(labels)
                    .map(|e| e.iter().collect())
                    .unwrap_or_default();
                let invented: Vec<&Entry> = entries.iter().filter(|e| !sent.contains(e)).collect();
                assert!(
                    invented.is_empty(),
                    "trial {trial}: entries never sent: {:?}",
                    &invented[..invented.len().min(3)]
                );
                let mut sorted = entries.clone();
                sorted.dedup();
                assert_eq!(
                    sorted.len(),
                    entries.len(),
                    "trial {trial}: an entry is stored twice"
                );
            }
            // A metric query compares no lines: an entry held twice (say in a block and again in
            // the replayed head) would be counted twice.
            let stored_total: usize = stored.values().map(Vec::len).sum();
            let end_ns = clock.load(Ordering::SeqCst) + 1;
            let range_s = (end_ns - start_ns) / 1_000_000_000 + 2;
            let query =
                format!(r#"sum(count_over_time({{app="crash", trial="{trial}"}}[{range_s}s]))"#);
            let url = format!(
                "{}/loki/api/v1/query?query={}&time={end_ns}",
                vigil.base_url(),
                urlencode(&query)
            );
            let response = vigil.client.get(&url, None).expect("instant query");
            assert_eq!(response.status, 200, "{query}: {}", response.text());
            let body = response.json();
            let counted: usize = body["data"]["result"][0]["value"][1]
                .as_str()
                .map_or(0, |v| v.parse().expect("count"));
            assert_eq!(
                counted, stored_total,
                "trial {trial} (seed {seed}, blocks {with_blocks}) round {round}: {query} counts \
                 {counted} entries, the log query returns {stored_total}"
            );
        }
        total_acked += acked.values().map(Vec::len).sum::<usize>();
        vigil.kill();
    }
    assert!(
        total_acked > 1000,
        "the trials acknowledged only {total_acked} entries"
    );
    println!("{TRIALS} SIGKILL trials, {total_acked} acknowledged entries, none lost");
}
