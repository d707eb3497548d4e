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
        log_block_cache_bytes: 1 << 20,
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
