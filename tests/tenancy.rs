//! Tenancy: `X-Scope-OrgID` names the tenant, a request without it belongs to tenant "default",
//! and no read API shows one tenant another tenant's series, label names, label values or samples.

mod common;

use std::collections::BTreeMap;

use common::data::{self, labels, LabelSet};
use common::http::{matcher, urlencode};
use common::process::VigilOpts;
use common::{now_ms, Dataset, Vigil};

const A: &str = "team-alpha";
const B: &str = "team-beta";

struct World {
    vigil: Vigil,
    expected: Dataset,
    _dir: tempfile::TempDir,
}

/// Tenant A and B each write their own metric (with a label name and values of their own) and a
/// series with the same labels as the other tenant but other values; a third series is written
/// without a tenant header.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let vigil = Vigil::start(dir.path(), VigilOpts::default());
    let now = now_ms();
    let mut expected = Dataset::default();
    let shared = labels("shared_metric", &[("job", "shared")]);
    let writes: Vec<(Option<&str>, LabelSet, f64)> = vec![
        (
            Some(A),
            labels(
                "alpha_only_metric",
                &[("alpha_secret", "alpha-value"), ("job", "a")],
            ),
            1.0,
        ),
        (Some(A), shared.clone(), 10.0),
        (
            Some(B),
            labels(
                "beta_only_metric",
                &[("beta_secret", "beta-value"), ("job", "b")],
            ),
            2.0,
        ),
        (Some(B), shared.clone(), 20.0),
        (
            None,
            labels("default_tenant_metric", &[("job", "nobody")]),
            3.0,
        ),
    ];
    for (tenant, set, value) in writes {
        let request = data::request(vec![data::series(
            &set,
            &[(now - 2_000, value), (now - 1_000, value + 0.5)],
        )]);
        vigil.write_ok(tenant, &request);
        expected.add_request(tenant.unwrap_or("default"), &request);
    }
    World {
        vigil,
        expected,
        _dir: dir,
    }
}

fn names(series: &[BTreeMap<String, String>]) -> Vec<String> {
    let mut out: Vec<String> = series.iter().map(|set| set["__name__"].clone()).collect();
    out.sort();
    out
}

#[test]
fn series_api_shows_each_tenant_only_its_own_series() {
    let world = world();
    let vigil = &world.vigil;
    let all = r#"{__name__=~".+"}"#;
    assert_eq!(
        names(&vigil.series(all, Some(A))),
        ["alpha_only_metric", "shared_metric"],
        "series of tenant {A}"
    );
    assert_eq!(
        names(&vigil.series(all, Some(B))),
        ["beta_only_metric", "shared_metric"],
        "series of tenant {B}"
    );
    assert_eq!(
        names(&vigil.series(all, None)),
        ["default_tenant_metric"],
        "series without a tenant header (tenant \"default\")"
    );
    assert_eq!(
        names(&vigil.series(all, Some("default"))),
        ["default_tenant_metric"],
        "series of tenant \"default\" named explicitly"
    );
    assert!(
        vigil.series("beta_only_metric", Some(A)).is_empty(),
        "tenant {A} asking for {B}'s metric by name"
    );
    assert!(
        vigil
            .series(r#"{beta_secret="beta-value"}"#, Some(A))
            .is_empty(),
        "tenant {A} asking for {B}'s label"
    );
    assert!(
        vigil.series(all, Some("team-nobody")).is_empty(),
        "a tenant that never wrote"
    );
}

#[test]
fn series_api_accepts_post_form_bodies_per_tenant() {
    let world = world();
    let vigil = &world.vigil;
    let body = format!("match[]={}", urlencode(r#"{__name__=~".+"}"#));
    let response = vigil.post_raw(
        "/api/v1/series",
        Some(B),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.into_bytes(),
    );
    assert_eq!(
        response.status,
        200,
        "POST /api/v1/series: {}",
        response.text()
    );
    let json = response.json();
    assert_eq!(json["status"], "success", "{json}");
    assert_eq!(
        names(&common::http::series_from_json(&json["data"])),
        ["beta_only_metric", "shared_metric"],
        "POST /api/v1/series as tenant {B}"
    );
}

#[test]
fn label_names_and_values_never_leak_across_tenants() {
    let world = world();
    let vigil = &world.vigil;
    let labels_a = vigil.string_list("/api/v1/labels", Some(A));
    assert!(
        labels_a.contains(&"alpha_secret".to_string()),
        "tenant {A} should see its own label name: {labels_a:?}"
    );
    assert!(
        !labels_a.contains(&"beta_secret".to_string()),
        "tenant {A} sees {B}'s label name: {labels_a:?}"
    );
    let labels_b = vigil.string_list("/api/v1/labels", Some(B));
    assert!(
        labels_b.contains(&"beta_secret".to_string())
            && !labels_b.contains(&"alpha_secret".to_string()),
        "labels of tenant {B}: {labels_b:?}"
    );

    let metric_names_a = vigil.string_list("/api/v1/label/__name__/values", Some(A));
    assert_eq!(
        metric_names_a,
        ["alpha_only_metric", "shared_metric"],
        "metric names of tenant {A}"
    );
    let metric_names_default = vigil.string_list("/api/v1/label/__name__/values", None);
    assert_eq!(
        metric_names_default,
        ["default_tenant_metric"],
        "metric names without a tenant header"
    );
    let jobs_b = vigil.string_list("/api/v1/label/job/values", Some(B));
    assert_eq!(jobs_b, ["b", "shared"], "job values of tenant {B}");
    let leaked = vigil.string_list("/api/v1/label/beta_secret/values", Some(A));
    assert!(
        leaked.is_empty(),
        "tenant {A} sees values of {B}'s label beta_secret: {leaked:?}"
    );
}

#[test]
fn remote_read_returns_only_the_tenants_samples() {
    let world = world();
    let vigil = &world.vigil;
    let (start, end) = world.expected.time_range();
    for tenant in [A, B, "default"] {
        world.expected.tenant(tenant).assert_in(
            &vigil.read_all(tenant, start, end),
            true,
            &format!("remote read of everything as tenant {tenant}"),
        );
    }
    // Same labels, different tenants, different values.
    let shared = vigil.read(
        Some(A),
        start,
        end,
        vec![matcher(0, "__name__", "shared_metric")],
    );
    let values: Vec<f64> = shared
        .iter()
        .flat_map(|series| series.samples.iter().map(|sample| sample.value))
        .collect();
    assert_eq!(values, [10.0, 10.5], "tenant {A}'s shared_metric");
    let beta = vigil.read(
        Some(A),
        start,
        end,
        vec![matcher(0, "__name__", "beta_only_metric")],
    );
    assert!(beta.is_empty(), "tenant {A} read {B}'s series: {beta:?}");
    // No header reads tenant "default".
    let default = vigil.read(None, start, end, common::http::match_all());
    let mut got = Dataset::default();
    got.add_read_result("default", &default, start, end);
    world
        .expected
        .tenant("default")
        .assert_in(&got, true, "remote read without a tenant header");
}

#[test]
fn self_metrics_are_per_tenant() {
    let world = world();
    let metrics = world.vigil.metrics();
    for tenant in [A, B, "default"] {
        let expected = world.expected.tenant(tenant);
        assert_eq!(
            metrics.sum("vigil_samples_ingested_total", &[("tenant", tenant)]),
            Some(expected.sample_count() as f64),
            "vigil_samples_ingested_total{{tenant=\"{tenant}\"}}"
        );
        world.vigil.wait_metric(
            "vigil_head_series",
            &[("tenant", tenant)],
            expected.series_count() as f64,
        );
    }
}
