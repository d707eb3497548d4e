//! Blocks in a real S3-compatible server (moto): with `--object-store s3://bucket/prefix`, blocks of
//! two tenants land under `<prefix>/<tenant>/metrics/blocks/`, pyarrow reads them back (listed and
//! fetched with boto3) equal to what was written, and a restarted server finds them again.

mod common;

use std::time::Duration;

use common::blocks::{ranges_due, Blocks, MotoS3};
use common::data::{history, node_exporter_series};
use common::{find_files, now_ms, wait_for, Dataset, Vigil};

const BUCKET: &str = "vigil-blocks";
const PREFIX: &str = "e2e/metrics-store";
const TENANTS: [&str; 2] = ["default", "team-s3"];

#[test]
fn blocks_land_in_s3_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = MotoS3::start(dir.path());
    s3.create_bucket(BUCKET);
    let mut vigil = Vigil::start(
        dir.path(),
        s3.vigil_opts(BUCKET, PREFIX, &["--block-duration", "1m"]),
    );
    let mut rng = fastrand::Rng::with_seed(3);

    let end = now_ms() / 1_000 * 1_000;
    let start = end - 10 * 60_000;
    let mut expected = Dataset::default();
    for tenant in TENANTS {
        let sets = node_exporter_series(&format!("{tenant}-node:9100"), &[]);
        for request in history(&sets, start, end, 15_000, 60_000, &mut rng) {
            vigil.write_ok(Some(tenant), &request);
            expected.add_request(tenant, &request);
        }
    }
    let (min_ts, max_ts) = expected.time_range();
    let due = ranges_due(min_ts, max_ts, 60_000);
    assert!(due >= 8, "test precondition: {due} blocks due per tenant");

    wait_for(
        &format!("{due} blocks per tenant uploaded (vigil_blocks_uploaded_total)"),
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let metrics = vigil.metrics();
            let counts: Vec<f64> = TENANTS
                .iter()
                .map(|tenant| {
                    metrics.sum_or_zero("vigil_blocks_uploaded_total", &[("tenant", tenant)])
                })
                .collect();
            if counts.iter().all(|&count| count >= due as f64) {
                Ok(())
            } else {
                Err(format!("uploaded per tenant {TENANTS:?}: {counts:?}"))
            }
        },
    );
    let running = Blocks::read_s3(&s3, BUCKET, PREFIX);
    for tenant in TENANTS {
        let count = running
            .blocks
            .iter()
            .filter(|block| block.tenant == tenant)
            .count();
        assert!(
            count >= due,
            "S3 has {count} complete blocks of tenant {tenant} under {PREFIX}/, expected at least \
             {due}; other objects: {:?}",
            running.other
        );
    }
    running.check().assert_in(
        &expected,
        false,
        "samples in S3 blocks while running (vs written)",
    );
    assert!(
        find_files(&vigil.data_dir.join("objects"), "meta.json").is_empty(),
        "with an S3 object store no block may land in the local objects/ directory"
    );

    let status = vigil.terminate(Duration::from_secs(90));
    assert!(status.success(), "vigil exited with {status} after SIGTERM");
    let after = Blocks::read_s3(&s3, BUCKET, PREFIX);
    assert!(
        after.incomplete.is_empty(),
        "block directories without meta.json in S3 after shutdown: {:?}",
        after.incomplete
    );
    expected.assert_in(
        &after.check(),
        true,
        "union of all S3 blocks after a graceful shutdown vs everything written",
    );
    let pending = find_files(&vigil.data_dir.join("pending"), "meta.json");
    assert!(
        pending.is_empty(),
        "blocks left pending after shutdown: {pending:?}"
    );

    vigil.restart();
    for tenant in TENANTS {
        let series = vigil.series(r#"{__name__=~".+"}"#, Some(tenant));
        assert_eq!(
            series.len(),
            expected.tenants[tenant].len(),
            "/api/v1/series of tenant {tenant} after a restart (blocks read from S3)"
        );
        expected.tenant(tenant).assert_in(
            &vigil.read_all(tenant, min_ts, max_ts),
            true,
            &format!("remote read of tenant {tenant} after a restart"),
        );
    }
}
