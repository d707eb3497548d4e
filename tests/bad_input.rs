//! Bad input on the remote-write endpoint: every validation rule answers its status code with a
//! readable reason, the valid rest of a mixed batch is stored, other series are unharmed, and the
//! server stays healthy. Also 413, 415, undecodable bodies, the series limit (429), stale markers
//! and exact duplicates.

mod common;

use common::data::{self, labels, proto_labels, LabelSet, STALE_NAN_BITS};
use common::http::{encode_snappy, snappy, Response, REMOTE_WRITE_HEADERS};
use common::process::VigilOpts;
use common::{now_ms, Dataset, Vigil};
use vigil_proto::prometheus::{Histogram, Sample, TimeSeries, WriteRequest};

const TENANT: &str = "default";

fn start(dir: &tempfile::TempDir, args: &[&str]) -> Vigil {
    Vigil::start(dir.path(), VigilOpts::args(args))
}

/// Asserts `status` and a body that names the reason with one of `any_of` (case-insensitive).
fn assert_rejected(response: &Response, status: u16, any_of: &[&str], case: &str) {
    let body = response.text();
    assert_eq!(
        response.status, status,
        "{case}: expected {status}, got {} with body {body:?}",
        response.status
    );
    let lower = body.to_lowercase();
    assert!(
        any_of
            .iter()
            .any(|word| lower.contains(&word.to_lowercase())),
        "{case}: the {status} body should give the reason (one of {any_of:?}); body: {body:?}"
    );
}

fn raw_series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: proto_labels(pairs),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        exemplars: Vec::new(),
        histograms: Vec::new(),
    }
}

/// Writes one series of an unrelated "bystander" first; sends `[good_a, bad, good_b]`; expects
/// `status` with a reason from `any_of`; then checks the store holds exactly the bystander and
/// both good series, the counters account for the batch, and the server is healthy.
fn mixed_batch_case(args: &[&str], bad: TimeSeries, any_of: &[&str], case: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut vigil = start(&dir, args);
    let now = now_ms();
    let mut expected = Dataset::default();

    let bystander = data::request(vec![data::series(
        &labels("bystander_metric", &[("job", "bystander")]),
        &[(now - 20_000, 1.0), (now - 10_000, 2.0)],
    )]);
    vigil.write_ok(Some(TENANT), &bystander);
    expected.add_request(TENANT, &bystander);

    let good_a = data::series(
        &labels("good_metric_a", &[("instance", "a:9100"), ("job", "node")]),
        &[(now - 5_000, 3.5), (now - 4_000, 4.5)],
    );
    let good_b = data::series(
        &labels("good_metric_b", &[("instance", "b:9100"), ("job", "node")]),
        &[(now - 3_000, -1.25)],
    );
    let bad_samples = bad.samples.len() + bad.histograms.len();
    let batch = data::request(vec![good_a.clone(), bad, good_b.clone()]);
    let response = vigil.write(Some(TENANT), &batch);
    assert_rejected(&response, 400, any_of, case);
    expected.add_request(TENANT, &data::request(vec![good_a, good_b]));

    let stored = vigil.read_all(TENANT, now - 3_600_000, now + 3_600_000);
    expected.assert_in(
        &stored,
        true,
        &format!("{case}: store after the mixed batch (valid series kept, bad one dropped)"),
    );
    vigil.assert_healthy();
    vigil.assert_running();

    let metrics = vigil.metrics();
    assert_eq!(
        metrics.sum_or_zero("vigil_samples_ingested_total", &[("tenant", TENANT)]),
        expected.sample_count() as f64,
        "{case}: vigil_samples_ingested_total{{tenant=\"default\"}} should count the 5 accepted samples"
    );
    assert_eq!(
        metrics.sum_or_zero("vigil_samples_rejected_total", &[("tenant", TENANT)]),
        bad_samples as f64,
        "{case}: vigil_samples_rejected_total{{tenant=\"default\"}} (all reasons) should count the \
         rejected samples"
    );
}

#[test]
fn invalid_metric_name_is_rejected_with_400_and_the_valid_rest_is_stored() {
    let now = now_ms();
    mixed_batch_case(
        &[],
        raw_series(&[("__name__", "1-bad.metric"), ("job", "x")], &[(now, 1.0)]),
        &["metric name"],
        "invalid metric name",
    );
}

#[test]
fn invalid_label_name_is_rejected_with_400_and_the_valid_rest_is_stored() {
    let now = now_ms();
    mixed_batch_case(
        &[],
        raw_series(
            &[("__name__", "ok_metric"), ("bad-label", "x"), ("job", "x")],
            &[(now, 1.0)],
        ),
        &["label name"],
        "invalid label name",
    );
}

#[test]
fn duplicate_label_names_are_rejected_with_400() {
    let now = now_ms();
    mixed_batch_case(
        &[],
        raw_series(
            &[("__name__", "dup_label_metric"), ("job", "x"), ("job", "y")],
            &[(now, 1.0)],
        ),
        &["duplicate label"],
        "duplicate label names",
    );
}

#[test]
fn unsorted_labels_are_rejected_with_400() {
    let now = now_ms();
    mixed_batch_case(
        &[],
        raw_series(
            &[
                ("__name__", "unsorted_metric"),
                ("job", "x"),
                ("instance", "y"),
            ],
            &[(now, 1.0)],
        ),
        &["sorted"],
        "unsorted labels",
    );
}

#[test]
fn missing_metric_name_is_rejected_with_400() {
    let now = now_ms();
    mixed_batch_case(
        &[],
        raw_series(&[("instance", "y"), ("job", "x")], &[(now, 1.0)]),
        &["__name__", "metric name"],
        "missing __name__",
    );
}

#[test]
fn sample_too_far_in_the_future_is_rejected_with_400() {
    let now = now_ms();
    mixed_batch_case(
        &["--max-future", "10m"],
        raw_series(
            &[("__name__", "future_metric"), ("job", "x")],
            &[(now + 3_600_000, 1.0)],
        ),
        &["future"],
        "sample 1h ahead with --max-future 10m",
    );
}

#[test]
fn native_histogram_series_is_rejected_with_400() {
    let now = now_ms();
    let mut bad = raw_series(&[("__name__", "histogram_metric"), ("job", "x")], &[]);
    bad.histograms.push(Histogram { timestamp: now });
    mixed_batch_case(&[], bad, &["histogram"], "native histogram");
}

#[test]
fn sample_within_max_future_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let vigil = start(&dir, &["--max-future", "10m"]);
    let now = now_ms();
    let request = data::request(vec![data::series(
        &labels("near_future_metric", &[]),
        &[(now + 5 * 60_000, 1.0)],
    )]);
    vigil.write_ok(Some(TENANT), &request);
    let mut expected = Dataset::default();
    expected.add_request(TENANT, &request);
    expected.assert_in(
        &vigil.read_all(TENANT, now - 60_000, now + 3_600_000),
        true,
        "sample 5m ahead with --max-future 10m",
    );
}

#[test]
fn empty_label_value_means_absent_and_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let vigil = start(&dir, &[]);
    let now = now_ms();
    let request = WriteRequest {
        timeseries: vec![raw_series(
            &[("__name__", "empty_value_metric"), ("a", ""), ("job", "x")],
            &[(now, 1.0)],
        )],
        metadata: Vec::new(),
    };
    let response = vigil.write(Some(TENANT), &request);
    assert_eq!(
        response.status,
        204,
        "an empty label value is legal (it means the label is absent); got {}: {}",
        response.status,
        response.text()
    );
    let mut expected = Dataset::default();
    expected.insert(
        TENANT,
        &labels("empty_value_metric", &[("job", "x")]),
        now,
        1.0f64.to_bits(),
    );
    expected.assert_in(
        &vigil.read_all(TENANT, now - 60_000, now + 60_000),
        true,
        "the series is stored without the empty label",
    );
    let series = vigil.series("empty_value_metric", Some(TENANT));
    assert_eq!(series.len(), 1, "/api/v1/series: {series:?}");
    assert!(
        !series[0].contains_key("a"),
        "/api/v1/series shows the empty label: {series:?}"
    );
}

/// Sends `first`, then a batch of a good series plus `second` for the same series; returns the
/// server for further checks.
fn conflicting_samples(
    dir: &tempfile::TempDir,
    args: &[&str],
    set: &LabelSet,
    first: &[(i64, f64)],
    second: &[(i64, f64)],
) -> (Vigil, Response, TimeSeries) {
    let vigil = start(dir, args);
    vigil.write_ok(Some(TENANT), &data::request(vec![data::series(set, first)]));
    let good = data::series(
        &labels("good_neighbour", &[("job", "x")]),
        &[(now_ms() - 1_000, 9.0)],
    );
    let response = vigil.write(
        Some(TENANT),
        &data::request(vec![good.clone(), data::series(set, second)]),
    );
    (vigil, response, good)
}

#[test]
fn sample_older_than_out_of_order_window_is_rejected_with_400() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let set = labels("ooo_metric", &[("job", "x")]);
    let (vigil, response, good) = conflicting_samples(
        &dir,
        &["--out-of-order-window", "1h"],
        &set,
        &[(now, 1.0)],
        &[(now - 2 * 3_600_000, 2.0)],
    );
    assert_rejected(
        &response,
        400,
        &["out of order", "out-of-order"],
        "sample 2h older than the series' newest with --out-of-order-window 1h",
    );
    let mut expected = Dataset::default();
    expected.insert(TENANT, &set, now, 1.0f64.to_bits());
    expected.add_request(TENANT, &data::request(vec![good]));
    expected.assert_in(
        &vigil.read_all(TENANT, now - 3 * 3_600_000, now + 60_000),
        true,
        "after an out-of-order rejection",
    );

    // Inside the window an older sample is fine.
    let inside = data::request(vec![data::series(&set, &[(now - 30 * 60_000, 3.0)])]);
    let response = vigil.write(Some(TENANT), &inside);
    assert_eq!(
        response.status,
        204,
        "a sample 30m older than the newest, inside --out-of-order-window 1h, answered {}: {}",
        response.status,
        response.text()
    );
    expected.add_request(TENANT, &inside);
    expected.assert_in(
        &vigil.read_all(TENANT, now - 3 * 3_600_000, now + 60_000),
        true,
        "after an in-window out-of-order sample",
    );
    vigil.assert_healthy();
}

#[test]
fn same_timestamp_with_other_value_is_rejected_and_the_first_value_kept() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let set = labels("dup_metric", &[("job", "x")]);
    let (vigil, response, good) =
        conflicting_samples(&dir, &[], &set, &[(now, 1.0)], &[(now, 2.0)]);
    assert_rejected(
        &response,
        400,
        &["duplicate sample"],
        "same timestamp, different value",
    );
    let mut expected = Dataset::default();
    expected.insert(TENANT, &set, now, 1.0f64.to_bits());
    expected.add_request(TENANT, &data::request(vec![good]));
    expected.assert_in(
        &vigil.read_all(TENANT, now - 60_000, now + 60_000),
        true,
        "after a conflicting duplicate",
    );
    vigil.assert_healthy();
}

#[test]
fn exact_duplicate_is_accepted_silently_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let vigil = start(&dir, &[]);
    let now = now_ms();
    let set = labels("exact_dup_metric", &[("job", "x")]);
    let request = data::request(vec![data::series(&set, &[(now - 1_000, 5.0), (now, 6.0)])]);
    vigil.write_ok(Some(TENANT), &request);
    let response = vigil.write(Some(TENANT), &request);
    assert_eq!(
        response.status,
        204,
        "resending a batch unchanged (a sender's retry) must answer 204, got {}: {}",
        response.status,
        response.text()
    );
    let mut expected = Dataset::default();
    expected.add_request(TENANT, &request);
    expected.assert_in(
        &vigil.read_all(TENANT, now - 60_000, now + 60_000),
        true,
        "after an exact duplicate",
    );
    let metrics = vigil.metrics();
    assert_eq!(
        metrics.sum_or_zero("vigil_samples_ingested_total", &[("tenant", TENANT)]),
        4.0,
        "vigil_samples_ingested_total counts every acknowledged sample, no-op duplicates included \
         (2 batches × 2 samples)"
    );
    assert_eq!(
        metrics.sum_or_zero("vigil_samples_rejected_total", &[("tenant", TENANT)]),
        0.0,
        "an exact duplicate is not a rejection"
    );
}

#[test]
fn stale_markers_and_nan_round_trip_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let vigil = start(&dir, &[]);
    let now = now_ms();
    let stale = f64::from_bits(STALE_NAN_BITS);
    let plain_nan = f64::from_bits(0x7ff8_0000_0000_0001);
    let request = data::request(vec![
        data::series(
            &labels("stale_metric", &[("job", "x")]),
            &[(now - 3_000, 1.0), (now - 2_000, stale), (now - 1_000, 2.0)],
        ),
        data::series(
            &labels("nan_metric", &[("job", "x")]),
            &[
                (now - 3_000, plain_nan),
                (now - 2_000, f64::NEG_INFINITY),
                (now - 1_000, f64::MIN_POSITIVE / 4.0),
            ],
        ),
    ]);
    vigil.write_ok(Some(TENANT), &request);
    let mut expected = Dataset::default();
    expected.add_request(TENANT, &request);
    expected.assert_in(
        &vigil.read_all(TENANT, now - 60_000, now + 60_000),
        true,
        "stale marker (0x7ff0000000000002), NaN, -Inf and a subnormal read back",
    );
}

#[test]
fn both_write_paths_accept_remote_write() {
    let dir = tempfile::tempdir().unwrap();
    let vigil = start(&dir, &[]);
    let now = now_ms();
    let mut expected = Dataset::default();
    for (i, path) in ["/api/v1/push", "/api/v1/write"].into_iter().enumerate() {
        let request = data::request(vec![data::series(
            &labels("write_path_metric", &[("path", path)]),
            &[(now - i as i64, i as f64)],
        )]);
        let response = vigil.write_to(path, Some(TENANT), &request);
        assert_eq!(
            response.status,
            204,
            "POST {path} answered {}: {}",
            response.status,
            response.text()
        );
        expected.add_request(TENANT, &request);
    }
    expected.assert_in(
        &vigil.read_all(TENANT, now - 60_000, now + 60_000),
        true,
        "samples written through both paths",
    );
}

/// A request whose compressed size is over `limit`: random label values do not compress.
fn incompressible_request(limit: usize) -> WriteRequest {
    let mut rng = fastrand::Rng::with_seed(7);
    let now = now_ms();
    let mut timeseries = Vec::new();
    while encode_snappy(&data::request(timeseries.clone())).len() <= limit {
        let value: String = (0..64).map(|_| rng.alphanumeric()).collect();
        timeseries.push(data::series(
            &labels("big_request_metric", &[("random", &value)]),
            &[(now, 1.0)],
        ));
    }
    data::request(timeseries)
}

#[test]
fn body_over_max_request_bytes_is_rejected_with_413() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 16 * 1024;
    let vigil = start(&dir, &["--max-request-bytes", &limit.to_string()]);
    let big = incompressible_request(limit);
    let response = vigil.write(Some(TENANT), &big);
    assert_eq!(
        response.status,
        413,
        "a {}-byte body over --max-request-bytes {limit} answered {}: {}",
        encode_snappy(&big).len(),
        response.status,
        response.text()
    );
    // The limit is on the compressed body: a request that is large only once decompressed passes.
    let now = now_ms();
    let compressible = data::request(
        (0..2_000)
            .map(|i| {
                data::series(
                    &labels("compressible_metric", &[("idx", &format!("{i:05}"))]),
                    &[(now, 1.0)],
                )
            })
            .collect(),
    );
    let compressed = encode_snappy(&compressible).len();
    let raw = prost::Message::encoded_len(&compressible);
    assert!(
        compressed < limit && raw > limit,
        "test precondition: compressed {compressed} < {limit} < raw {raw}"
    );
    let response = vigil.write(Some(TENANT), &compressible);
    assert_eq!(
        response.status,
        204,
        "a {compressed}-byte body ({raw} bytes decompressed) under --max-request-bytes {limit} \
         answered {}: {}",
        response.status,
        response.text()
    );
    vigil.assert_healthy();
}

fn valid_body() -> Vec<u8> {
    encode_snappy(&data::request(vec![data::series(
        &labels("header_test_metric", &[]),
        &[(now_ms(), 1.0)],
    )]))
}

#[test]
fn gzip_content_encoding_is_rejected_with_415() {
    let dir = tempfile::tempdir().unwrap();
    let vigil = start(&dir, &[]);
    let response = vigil.post_raw(
        "/api/v1/push",
        Some(TENANT),
        &[
            ("Content-Encoding", "gzip"),
            ("Content-Type", "application/x-protobuf"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        valid_body(),
    );
    assert_eq!(
        response.status,
        415,
        "Content-Encoding: gzip answered {}: {}",
        response.status,
        response.text()
    );
    vigil.assert_healthy();
}

#[test]
fn json_content_type_is_rejected_with_415() {
    let dir = tempfile::tempdir().unwrap();
    let vigil = start(&dir, &[]);
    let response = vigil.post_raw(
        "/api/v1/push",
        Some(TENANT),
        &[
            ("Content-Encoding", "snappy"),
            ("Content-Type", "application/json"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        valid_body(),
    );
    assert_eq!(
        response.status,
        415,
        "Content-Type: application/json answered {}: {}",
        response.status,
        response.text()
    );
    vigil.assert_healthy();
}

#[test]
fn undecodable_bodies_are_rejected_with_400_and_the_server_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let vigil = start(&dir, &[]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // A length varint that overflows, then text: not snappy.
        (
            "garbage instead of snappy",
            [
                &[0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff][..],
                b"not snappy at all",
            ]
            .concat(),
        ),
        // Snappy framed format (the spec forbids it; only the block format is valid).
        ("snappy framed format", {
            let mut framed = Vec::new();
            {
                use std::io::Write;
                let mut writer = snap::write::FrameEncoder::new(&mut framed);
                writer.write_all(b"\x0a\x00").unwrap();
            }
            framed
        }),
        // Valid snappy around bytes that are no WriteRequest: field 1 announces 100 bytes, has 1.
        ("garbage protobuf", snappy(&[0x0a, 0x64, 0x01])),
        ("empty body", Vec::new()),
    ];
    for (case, body) in cases {
        let response = vigil.post_raw("/api/v1/push", Some(TENANT), &REMOTE_WRITE_HEADERS, body);
        assert_eq!(
            response.status,
            400,
            "{case}: answered {}: {}",
            response.status,
            response.text()
        );
        assert!(
            !response.body.is_empty(),
            "{case}: the 400 should say what was wrong"
        );
        vigil.assert_healthy();
    }
    let now = now_ms();
    let request = data::request(vec![data::series(
        &labels("after_garbage", &[]),
        &[(now, 1.0)],
    )]);
    vigil.write_ok(Some(TENANT), &request);
    let mut expected = Dataset::default();
    expected.add_request(TENANT, &request);
    expected.assert_in(
        &vigil.read_all(TENANT, now - 60_000, now + 60_000),
        true,
        "only the valid write is stored",
    );
}

#[test]
fn series_limit_answers_429_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let vigil = start(&dir, &["--max-series-per-tenant", "5"]);
    let now = now_ms();
    let set = |i: usize| labels("limited_metric", &[("idx", &i.to_string())]);
    let first = data::request(
        (0..5)
            .map(|i| data::series(&set(i), &[(now - 10_000, 1.0)]))
            .collect(),
    );
    vigil.write_ok(Some(TENANT), &first);

    let over = data::request(
        (3..8)
            .map(|i| data::series(&set(i), &[(now - 5_000, 2.0)]))
            .collect(),
    );
    let response = vigil.write(Some(TENANT), &over);
    assert_rejected(
        &response,
        429,
        &["limit"],
        "3 new series over --max-series-per-tenant 5",
    );

    let series = vigil.series("limited_metric", Some(TENANT));
    assert_eq!(
        series.len(),
        5,
        "no series beyond the limit may be created: {series:?}"
    );
    vigil.wait_metric("vigil_head_series", &[("tenant", TENANT)], 5.0);

    // Existing series still take samples, and the limit is per tenant.
    vigil.write_ok(
        Some(TENANT),
        &data::request(vec![data::series(&set(0), &[(now, 3.0)])]),
    );
    vigil.write_ok(Some("other-tenant"), &first);
    vigil.assert_healthy();
}
