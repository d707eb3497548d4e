//! The storage lifecycle without HTTP: write, cut, upload, truncate, reopen.

use std::sync::Arc;
use std::time::Duration;

use vigil_db::{Db, DbConfig, Metrics};
use vigil_ingest::WriteBatch;
use vigil_model::{Label, Labels, MatchOp, Matcher, Sample, TenantId};

fn config(dir: &std::path::Path) -> DbConfig {
    DbConfig {
        data_dir: dir.to_path_buf(),
        block_duration: Duration::from_secs(60),
        out_of_order_window: Duration::from_secs(3600),
        max_series_per_tenant: 0,
        wal: vigil_wal::WalOptions::default(),
        upload_backoff: vigil_objstore::Backoff::default(),
        maintenance_interval: Duration::from_millis(50),
        metric_block_cache_bytes: 1 << 20,
        log_block_cache_bytes: 1 << 20,
        log_row_group_cache_bytes: 1 << 20,
        log_cut_idle: Duration::ZERO,
        log_head_max_bytes: 0,
    }
}

fn series(job: &str) -> Labels {
    Labels::from_unsorted(vec![Label::new("__name__", "up"), Label::new("job", job)])
}

async fn open(dir: &std::path::Path) -> Arc<Db> {
    let store = vigil_objstore::open_local(&dir.join("objects")).unwrap();
    Db::open(config(dir), store, Arc::new(Metrics::new()))
        .await
        .unwrap()
}

async fn all_samples(db: &Db, tenant: &TenantId) -> Vec<(Labels, Vec<Sample>)> {
    let m = Matcher::new(MatchOp::Equal, "__name__", "up").unwrap();
    db.select_samples(tenant, &[m], i64::MIN, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.labels, s.samples))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_blocks_upload_truncate_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("team-a").unwrap();
    let now = vigil_db::now_ms();
    let start = now - 10 * 60_000;
    let mut expected = Vec::new();
    {
        let db = open(dir.path()).await;
        let background = {
            let db = db.clone();
            tokio::spawn(async move { db.run_background().await })
        };
        for job in ["a", "b"] {
            let samples: Vec<Sample> = (0..40)
                .map(|i| Sample::new(start + i * 15_000, i as f64))
                .collect();
            expected.push((series(job), samples.clone()));
            let owned = vec![(series(job), samples)];
            let outcome = db
                .write(&tenant, WriteBatch::from_owned(&owned))
                .await
                .unwrap();
            assert!(outcome.discards.is_empty());
        }
        // Wait (bounded) until ranges older than now - 1.5 min are cut and uploaded.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !db
            .metrics
            .encode()
            .contains("vigil_blocks_uploaded_total{tenant=\"team-a\"}")
            || !db
                .metrics
                .encode()
                .contains("vigil_wal_truncations_total 1")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no block uploaded and wal truncated:\n{}",
                db.metrics.encode()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(all_samples(&db, &tenant).await, expected);
        // Another tenant sees nothing.
        assert!(all_samples(&db, &TenantId::default_tenant())
            .await
            .is_empty());
        // Crash: no shutdown, the background task is dropped.
        background.abort();
    }
    let db = open(dir.path()).await;
    assert_eq!(all_samples(&db, &tenant).await, expected, "after reopen");
    db.shutdown(Duration::from_secs(10)).await;
    let db = open(dir.path()).await;
    assert_eq!(
        all_samples(&db, &tenant).await,
        expected,
        "after clean shutdown"
    );
    let blocks = std::fs::read_dir(dir.path().join("objects/team-a/metrics/blocks"))
        .unwrap()
        .count();
    assert!(
        blocks >= 2,
        "expected several 1-minute blocks, found {blocks}"
    );
}

fn log_batch(streams: &[(Labels, Vec<vigil_model::LogEntry>)]) -> vigil_log_ingest::LogBatch {
    vigil_log_ingest::LogBatch {
        streams: streams
            .iter()
            .map(|(labels, entries)| vigil_log_ingest::LogStream {
                labels: labels.clone(),
                hash: labels.fx_hash(),
                entries: entries.clone(),
            })
            .collect(),
        total_entries: streams.iter().map(|(_, e)| e.len()).sum(),
        ..Default::default()
    }
}

/// Window sums (what metric queries over bare selectors read) agree with the entries they
/// stand for, over blocks and the head together, with structured metadata kept apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_window_sums_agree_with_entries_over_head_and_blocks() {
    use vigil_model::{LogEntry, LogReadFilter, LogSampleValue, LogWindowSums, LogWindows};
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::default_tenant();
    let base = (vigil_db::now_ms() - 30 * 60_000) * 1_000_000;
    let stream = |app: &str| Labels::from_unsorted(vec![Label::new("app", app)]);
    let entries = |offset: i64| -> Vec<LogEntry> {
        (0..200)
            .map(|i| LogEntry {
                timestamp_ns: base + offset + i * 1_000_000_000,
                line: format!("request {i} status {}", if i % 7 == 0 { 500 } else { 200 }),
                structured_metadata: if i % 10 == 3 {
                    vec![("trace_id".to_string(), format!("t{}", i % 3))]
                } else {
                    Vec::new()
                },
            })
            .collect()
    };
    let first = [(stream("a"), entries(0)), (stream("b"), entries(500))];
    // The second push lands in the head after a restart; the first is in blocks by then.
    let second = [(stream("a"), entries(300 * 1_000_000_000))];
    {
        // With the uploader running, shutdown uploads the blocks and truncates the WAL.
        let db = open(dir.path()).await;
        let background = {
            let db = db.clone();
            tokio::spawn(async move { db.run_background().await })
        };
        db.write_logs(&tenant, log_batch(&first)).await.unwrap();
        db.shutdown(Duration::from_secs(10)).await;
        background.abort();
    }
    let db = open(dir.path()).await;
    db.write_logs(&tenant, log_batch(&second)).await.unwrap();
    let matcher = Matcher::new(MatchOp::RegexMatch, "app", "a|b").unwrap();
    let filter = LogReadFilter {
        line_filter: Some(Arc::new(|l: &str| l.contains("status 500"))),
        ..Default::default()
    };
    let (start, end) = (base + 10_000_000_000, base + 400_000_000_000);
    // One-minute windows every 20 s over the whole range.
    let windows = LogWindows {
        first_end_ns: start + 20_000_000_000,
        step_ns: 20_000_000_000,
        steps: 20,
        range_ns: 60_000_000_000,
    };
    for value in [LogSampleValue::One, LogSampleValue::LineBytes] {
        let got = db
            .select_log_window_sums(
                &tenant,
                std::slice::from_ref(&matcher),
                (start, end),
                filter.clone(),
                value,
                windows,
            )
            .await
            .unwrap();
        let mut want: Vec<LogWindowSums> = db
            .select_log_entries_where(
                &tenant,
                std::slice::from_ref(&matcher),
                start,
                end,
                filter.clone(),
            )
            .await
            .unwrap()
            .into_iter()
            .flat_map(|s| LogWindowSums::from_entries(&s.labels, s.entries, value, windows))
            .collect();
        want.sort_by(|a, b| {
            (&a.labels, &a.structured_metadata).cmp(&(&b.labels, &b.structured_metadata))
        });
        assert_eq!(got, want, "{value:?}");
        assert!(got.len() > 2, "metadata groups expected: {got:?}");
        let total: u64 = got.iter().flat_map(|g| &g.sums.counts).sum();
        assert!(total > 40, "{total}");
    }
}

/// Counts the default tenant's log entries of `app=~".+"` as window sums (which, unlike log
/// reads, would count an entry held twice twice) and as distinct entries.
async fn log_counts(db: &Db, start: i64, end: i64) -> (u64, usize) {
    use vigil_model::{LogReadFilter, LogSampleValue, LogWindows};
    let tenant = TenantId::default_tenant();
    let matcher = Matcher::new(MatchOp::RegexMatch, "app", ".+").unwrap();
    let windows = LogWindows {
        first_end_ns: end,
        step_ns: 1,
        steps: 1,
        range_ns: end - start + 1,
    };
    let sums = db
        .select_log_window_sums(
            &tenant,
            std::slice::from_ref(&matcher),
            (start, end),
            LogReadFilter::default(),
            LogSampleValue::One,
            windows,
        )
        .await
        .unwrap();
    let entries = db
        .select_log_entries_where(&tenant, &[matcher], start, end, LogReadFilter::default())
        .await
        .unwrap();
    (
        sums.iter().map(|s| s.sums.counts[0]).sum(),
        entries.iter().map(|s| s.entries.len()).sum(),
    )
}

/// A cut whose block is not uploaded yet leaves its entries in the WAL too (it is truncated
/// only after the upload). After a crash, replay must not put them back in the head when the
/// block is there (they would be counted twice, and cut into a second block), and must when
/// it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_skips_log_entries_already_cut_into_blocks() {
    use vigil_model::LogEntry;
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::default_tenant();
    let base = (vigil_db::now_ms() - 30 * 60_000) * 1_000_000;
    let batch = |app: &str, from: i64| {
        let entries: Vec<LogEntry> = (0..100)
            .map(|i| LogEntry {
                timestamp_ns: base + (from + i) * 1_000_000_000,
                line: format!("{app} line {i}"),
                structured_metadata: Vec::new(),
            })
            .collect();
        log_batch(&[(Labels::from_unsorted(vec![Label::new("app", app)]), entries)])
    };
    let (start, end) = (base, base + 3_600_000_000_000);
    // No uploader runs: every shutdown cuts a pending block and keeps the WAL.
    {
        let db = open(dir.path()).await;
        db.write_logs(&tenant, batch("a", 0)).await.unwrap();
        db.shutdown(Duration::from_millis(200)).await;
    }
    {
        let db = open(dir.path()).await;
        assert_eq!(
            log_counts(&db, start, end).await,
            (100, 100),
            "first reopen"
        );
        db.write_logs(&tenant, batch("b", 200)).await.unwrap();
        db.shutdown(Duration::from_millis(200)).await;
    }
    {
        let db = open(dir.path()).await;
        assert_eq!(
            log_counts(&db, start, end).await,
            (200, 200),
            "second reopen"
        );
        db.shutdown(Duration::from_millis(200)).await;
    }
    // Blocks lost before upload: the WAL still has every entry.
    std::fs::remove_dir_all(dir.path().join("pending")).unwrap();
    let db = open(dir.path()).await;
    assert_eq!(log_counts(&db, start, end).await, (200, 200), "blocks lost");
}

/// Log block directories (pending or uploaded) of the default tenant.
fn log_block_dirs(dir: &std::path::Path) -> usize {
    ["pending", "objects"]
        .iter()
        .map(|root| dir.join(root).join("default").join("logs").join("blocks"))
        .filter_map(|blocks| std::fs::read_dir(blocks).ok())
        .map(|listing| listing.count())
        .sum()
}

/// A due log range that is still being written (a backfill) is cut once writes to it pause for
/// `log_cut_idle`, not while they go on; over the head memory limit it is cut at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_log_ranges_wait_for_writes_to_pause_unless_memory_is_short() {
    use vigil_model::LogEntry;
    let tenant = TenantId::default_tenant();
    // Ten minutes ago with one-minute blocks: every range written is due at once.
    let base = (vigil_db::now_ms() - 10 * 60_000) * 1_000_000;
    let batch = |round: i64| {
        let entries: Vec<LogEntry> = (0..20)
            .map(|i| LogEntry {
                timestamp_ns: base + round * 1_000_000_000 + i * 1_000_000,
                line: format!("backfill round {round} line {i}"),
                structured_metadata: Vec::new(),
            })
            .collect();
        log_batch(&[(Labels::from_unsorted(vec![Label::new("app", "a")]), entries)])
    };
    for (head_limit, cut_while_writing) in [(0, false), (1, true)] {
        let dir = tempfile::tempdir().unwrap();
        let store = vigil_objstore::open_local(&dir.path().join("objects")).unwrap();
        let db_config = DbConfig {
            log_cut_idle: Duration::from_millis(1500),
            log_head_max_bytes: head_limit,
            ..config(dir.path())
        };
        let db = Db::open(db_config, store, Arc::new(Metrics::new()))
            .await
            .unwrap();
        let background = {
            let db = db.clone();
            tokio::spawn(async move { db.run_background().await })
        };
        // Writes every 100 ms for a second, all into the same one-minute range.
        for round in 0..10 {
            db.write_logs(&tenant, batch(round)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let while_writing = log_block_dirs(dir.path());
        assert_eq!(
            while_writing > 0,
            cut_while_writing,
            "head limit {head_limit}: {while_writing} blocks while the range was written"
        );
        // Writes stopped: the range is cut after the idle period (bounded wait).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while log_block_dirs(dir.path()) == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            log_block_dirs(dir.path()) > 0,
            "head limit {head_limit}: no block after the writes stopped"
        );
        let m = Matcher::new(MatchOp::Equal, "app", "a").unwrap();
        let read = db
            .select_log_entries(&tenant, &[m], base, base + 60_000_000_000)
            .await
            .unwrap();
        assert_eq!(read.iter().map(|s| s.entries.len()).sum::<usize>(), 200);
        db.shutdown(Duration::from_secs(10)).await;
        background.abort();
    }
}

static RELEASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_release() {
    RELEASES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freed_memory_is_released_at_shutdown_and_after_each_log_cut() {
    use std::sync::atomic::Ordering::SeqCst;
    use vigil_model::LogEntry;
    vigil_db::set_release_freed_memory(count_release);
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::default_tenant();
    // Two 60 s block ranges of entries: the shutdown cuts two log blocks.
    let base = (vigil_db::now_ms() - 30 * 60_000) / 60_000 * 60_000 * 1_000_000;
    let entries: Vec<LogEntry> = (0..120)
        .map(|i| LogEntry {
            timestamp_ns: base + i * 1_000_000_000,
            line: format!("line {i}"),
            structured_metadata: Vec::new(),
        })
        .collect();
    let db = open(dir.path()).await;
    db.write_logs(
        &tenant,
        log_batch(&[(Labels::from_unsorted(vec![Label::new("app", "a")]), entries)]),
    )
    .await
    .unwrap();
    let before = RELEASES.load(SeqCst);
    db.shutdown(Duration::from_millis(200)).await;
    assert_eq!(log_block_dirs(dir.path()), 2);
    // Once when the shutdown starts, once per log block (other tests of this binary may add).
    assert!(RELEASES.load(SeqCst) >= before + 3);
}
