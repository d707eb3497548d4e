//! Blocks on the local object store: with `--block-duration 1m`, ten minutes of samples ending now
//! are cut into one-minute blocks while the server runs, the rest at a graceful shutdown; pyarrow
//! reads every block back and the union over the blocks is exactly what was written. After a
//! restart the blocks are found again. And while blocks are cut and uploaded, queries keep seeing
//! every acknowledged sample.

mod common;

use std::time::Duration;

use common::blocks::{ranges_due, Blocks};
use common::data::{self, history, node_exporter_series, STALE_NAN_BITS};
use common::process::VigilOpts;
use common::{find_files, now_ms, require_python_modules, wait_for, Dataset, Vigil};

#[test]
fn blocks_in_local_store_hold_exactly_what_was_written() {
    require_python_modules(&["pyarrow"]);
    let dir = tempfile::tempdir().unwrap();
    let mut vigil = Vigil::start(dir.path(), VigilOpts::args(&["--block-duration", "1m"]));
    let objects = vigil.data_dir.join("objects");
    let mut rng = fastrand::Rng::with_seed(20);

    let end = now_ms() / 1_000 * 1_000;
    let start = end - 10 * 60_000;
    let mut sets = node_exporter_series("node-1:9100", &[]);
    sets.extend(node_exporter_series("node-2:9100", &[]));
    let mut expected = Dataset::default();
    for request in history(&sets, start, end, 10_000, 30_000, &mut rng) {
        vigil.write_ok(None, &request);
        expected.add_request("default", &request);
    }
    // A staleness marker must survive Parquet bit for bit.
    let stale = data::request(vec![data::series(
        &sets[0],
        &[(end + 1, f64::from_bits(STALE_NAN_BITS))],
    )]);
    vigil.write_ok(None, &stale);
    expected.add_request("default", &stale);
    let (min_ts, max_ts) = expected.time_range();
    let due = ranges_due(min_ts, max_ts, 60_000);
    assert!(due >= 8, "test precondition: {due} blocks due");

    let blocks_dir = objects.join("default/metrics/blocks");
    wait_for(
        &format!(
            "{due} complete blocks (meta.json) under {}",
            blocks_dir.display()
        ),
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let found = find_files(&blocks_dir, "meta.json").len();
            if found >= due {
                Ok(())
            } else {
                Err(format!("{found} blocks"))
            }
        },
    );

    // While running: every block is well-formed, holds one aligned minute, and holds only
    // samples that were written; everything stays readable through the API.
    let running = Blocks::read_local(&objects);
    assert!(
        running.blocks.len() >= due,
        "{} blocks",
        running.blocks.len()
    );
    for block in &running.blocks {
        let min = block.meta["min_time_ms"].as_i64().unwrap();
        let max = block.meta["max_time_ms"].as_i64().unwrap();
        assert_eq!(
            min.div_euclid(60_000),
            (max - 1).max(min).div_euclid(60_000),
            "block {} spans more than one aligned minute: {}",
            block.ulid,
            block.meta
        );
    }
    let in_blocks = running.check();
    in_blocks.assert_in(
        &expected,
        false,
        "samples in blocks while running (vs written)",
    );
    expected.assert_in(
        &vigil.read_all("default", min_ts, max_ts),
        true,
        "remote read (head and blocks) while running",
    );
    let metrics = vigil.metrics();
    assert!(
        metrics.sum_or_zero("vigil_blocks_cut_total", &[("tenant", "default")]) >= due as f64,
        "vigil_blocks_cut_total{{tenant=\"default\"}} after {due} blocks were cut"
    );

    // Graceful shutdown cuts and uploads the rest.
    let status = vigil.terminate(Duration::from_secs(60));
    assert!(status.success(), "vigil exited with {status} after SIGTERM");
    let after = Blocks::read_local(&objects);
    assert!(
        after.incomplete.is_empty(),
        "block directories without meta.json after shutdown: {:?}",
        after.incomplete
    );
    let union = after.check();
    expected.assert_in(
        &union,
        true,
        "union of all blocks after a graceful shutdown vs everything written",
    );
    let pending = find_files(&vigil.data_dir.join("pending"), "meta.json");
    assert!(
        pending.is_empty(),
        "blocks still pending upload after a graceful shutdown: {pending:?}"
    );

    // A restarted server finds the blocks again.
    vigil.restart();
    let series = vigil.series(r#"{__name__=~".+"}"#, None);
    let want: Vec<_> = expected.tenants["default"]
        .keys()
        .map(|set| {
            set.iter()
                .cloned()
                .collect::<std::collections::BTreeMap<_, _>>()
        })
        .collect();
    assert_eq!(series, want, "/api/v1/series after a restart");
    expected.assert_in(
        &vigil.read_all("default", min_ts, max_ts),
        true,
        "remote read after a restart",
    );

    // PromQL reads the same samples across every block boundary: the range vector over the
    // whole span is exactly what was written (the staleness marker aside, which range vectors
    // leave out).
    let mut without_stale = expected.clone();
    for series in without_stale
        .tenants
        .values_mut()
        .flat_map(|t| t.values_mut())
    {
        series.retain(|_, bits| *bits != STALE_NAN_BITS);
    }
    let matrix = vigil.query_matrix("default", r#"{__name__=~".+"}[15m]"#, max_ts);
    assert_eq!(
        without_stale.diff(&matrix, true),
        Vec::<String>::new(),
        "PromQL range vector over all blocks vs written"
    );
}

/// Data moving from the head into a block (and from the pending area into the object store) must
/// stay visible: a reader that queries in a tight loop while blocks are cut and uploaded sees every
/// sample acknowledged before its query began.
#[test]
fn queries_see_every_acknowledged_sample_while_blocks_are_cut_and_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    let vigil = Vigil::start(dir.path(), VigilOpts::args(&["--block-duration", "1m"]));
    let mut rng = fastrand::Rng::with_seed(21);
    let end = now_ms() / 1_000 * 1_000;
    let start = end - 10 * 60_000;
    let sets = node_exporter_series("node-q:9100", &[]);
    let mut expected = Dataset::default();
    let mut misses = Vec::new();
    let mut reads = 0;
    let mut check = |expected: &Dataset, vigil: &Vigil| {
        reads += 1;
        let stored = vigil.read_all("default", start, end);
        let diff = expected.diff(&stored, false);
        if let Some(first) = diff.first() {
            misses.push(format!(
                "read {reads}: {} samples missing, first: {first}",
                diff.len()
            ));
        }
    };
    for request in history(&sets, start, end, 10_000, 10_000, &mut rng) {
        vigil.write_ok(None, &request);
        expected.add_request("default", &request);
        check(&expected, &vigil);
    }
    let (min_ts, max_ts) = expected.time_range();
    let due = ranges_due(min_ts, max_ts, 60_000) as f64;
    // Keep reading while the cuts and uploads happen (bounded in time and count).
    let started = std::time::Instant::now();
    for _ in 0..5_000 {
        check(&expected, &vigil);
        let metrics = vigil.metrics();
        let uploaded = metrics.sum_or_zero("vigil_blocks_uploaded_total", &[("tenant", "default")]);
        if uploaded >= due || started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let uploaded = vigil
        .metrics()
        .sum_or_zero("vigil_blocks_uploaded_total", &[("tenant", "default")]);
    assert!(
        uploaded >= due,
        "only {uploaded} of {due} due blocks were uploaded within 60 s"
    );
    // Once nothing moves any more, everything must be there (else it is lost, not just missed).
    vigil.wait_blocks_settled(Duration::from_secs(30));
    expected.assert_in(
        &vigil.read_all("default", start, end),
        true,
        "remote read after every due block was cut and uploaded",
    );
    assert!(
        misses.is_empty(),
        "{} of {reads} remote reads during block cuts missed acknowledged samples:\n{}",
        misses.len(),
        misses.join("\n")
    );
}
