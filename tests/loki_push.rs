//! Loki push end to end against the real binary: the loghub sample logs pushed line by line by a
//! JSON client and by a snappy-protobuf client (with structured metadata), a real logging library
//! (python-logging-loki), tenants kept apart, every line read back byte for byte through
//! `query_range` from the head, then from the blocks after a restart, and the blocks themselves
//! read by pyarrow from the local store and from a real S3 server (moto).

mod common;

use std::time::Duration;

use common::loki::{
    self, diff, json_body, loghub, protobuf_body, push_ok, read_all, stream_labels, Entry, LogSet,
    JSON, PROTOBUF,
};
use common::process::VigilOpts;
use common::{blocks::MotoS3, now_ms, Vigil};

const LINES_PER_REQUEST: usize = 500;
const PROTO_TENANT: &str = "proto-tenant";

/// The loghub files as streams `{app, source="loghub", client}`, timestamps 1 ms apart from
/// `base_ns` (each file 10 s after the previous), every 10th entry of the protobuf set carrying
/// structured metadata.
fn loghub_set(base_ns: i64, client: &str, with_metadata: bool) -> LogSet {
    let mut set = LogSet::new();
    for (file_index, (app, lines)) in loghub().into_iter().enumerate() {
        let labels = stream_labels(&[("app", &app), ("source", "loghub"), ("client", client)]);
        let start = base_ns + file_index as i64 * 10_000_000_000;
        let entries = lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let mut entry = Entry::new(start + i as i64 * 1_000_000, line);
                if with_metadata && i % 10 == 0 {
                    entry.metadata = vec![
                        ("line_no".to_string(), i.to_string()),
                        ("file".to_string(), format!("{app}_2k.log")),
                    ];
                }
                entry
            })
            .collect();
        set.insert(labels, entries);
    }
    set
}

/// Pushes a set stream by stream in requests of `LINES_PER_REQUEST` entries, two streams per
/// request.
fn push_set(vigil: &Vigil, tenant: Option<&str>, set: &LogSet, protobuf: bool) {
    let streams: Vec<_> = set.iter().collect();
    for pair in streams.chunks(2) {
        let longest = pair.iter().map(|(_, e)| e.len()).max().unwrap_or(0);
        for offset in (0..longest).step_by(LINES_PER_REQUEST) {
            let parts: Vec<_> = pair
                .iter()
                .map(|(labels, entries)| {
                    let end = (offset + LINES_PER_REQUEST).min(entries.len());
                    (*labels, &entries[offset.min(end)..end])
                })
                .filter(|(_, e)| !e.is_empty())
                .collect();
            let (headers, body) = if protobuf {
                (&PROTOBUF[..], protobuf_body(&parts))
            } else {
                (&JSON[..], json_body(&parts))
            };
            push_ok(&vigil.client, &vigil.base_url(), tenant, headers, body);
        }
    }
}

fn assert_same(expected: &LogSet, actual: &LogSet, context: &str) {
    let differences = diff(expected, actual, 20);
    assert!(
        differences.is_empty(),
        "{context}: read back differs from what was pushed:\n{}",
        differences.join("\n")
    );
}

#[test]
fn loghub_lines_from_json_and_protobuf_clients_read_back_byte_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vigil = Vigil::start(dir.path(), VigilOpts::default());
    let base_ns = (now_ms() - 30 * 60 * 1000) * 1_000_000;
    let json_set = loghub_set(base_ns, "json", false);
    let proto_set = loghub_set(base_ns, "protobuf", true);
    let total: usize = json_set.values().map(Vec::len).sum();
    assert_eq!(total, 32_000, "16 loghub files of 2000 lines");

    push_set(&vigil, None, &json_set, false);
    push_set(&vigil, Some(PROTO_TENANT), &proto_set, true);

    // Readable as soon as acknowledged, each tenant seeing only its own streams.
    let (start, end) = (base_ns - 1, base_ns + 3_600_000_000_000);
    let url = vigil.base_url();
    let read = |tenant: Option<&str>| {
        read_all(
            &vigil.client,
            &url,
            tenant,
            r#"{source="loghub"}"#,
            start,
            end,
        )
    };
    assert_same(&json_set, &read(None), "default tenant, from the head");
    assert_same(
        &proto_set,
        &read(Some(PROTO_TENANT)),
        "protobuf tenant, from the head",
    );

    // Labels, values and series in Loki's shapes.
    let range = format!("start={start}&end={end}");
    let labels = vigil
        .client
        .get(&format!("{url}/loki/api/v1/labels?{range}"), None)
        .expect("labels")
        .json();
    assert_eq!(
        labels,
        serde_json::json!({"status": "success", "data": ["app", "client", "source"]})
    );
    let apps = vigil
        .client
        .get(
            &format!("{url}/loki/api/v1/label/app/values?{range}"),
            Some(PROTO_TENANT),
        )
        .expect("values")
        .json();
    assert_eq!(apps["data"].as_array().map(Vec::len), Some(16), "{apps}");
    let series = vigil
        .client
        .get(
            &format!(
                "{url}/loki/api/v1/series?{range}&match[]={}",
                common::http::urlencode(r#"{app=~"open.*"}"#)
            ),
            None,
        )
        .expect("series")
        .json();
    assert_eq!(
        series,
        serde_json::json!({"status": "success", "data": [
            {"app": "openssh", "client": "json", "source": "loghub"},
            {"app": "openstack", "client": "json", "source": "loghub"}
        ]})
    );

    // A graceful stop cuts the head into blocks and uploads them; pyarrow reads them back.
    let status = vigil.terminate(Duration::from_secs(120));
    assert!(status.success(), "vigil exited with {status}");
    let blocks = loki::read_local_blocks(&vigil.data_dir.join("objects"));
    assert_same(
        &json_set,
        blocks.get("default").unwrap_or(&LogSet::new()),
        "default tenant, blocks via pyarrow",
    );
    assert_same(
        &proto_set,
        blocks.get(PROTO_TENANT).unwrap_or(&LogSet::new()),
        "protobuf tenant with metadata, blocks via pyarrow",
    );

    // After a restart everything comes from the blocks.
    vigil.restart();
    let url = vigil.base_url();
    let read = |tenant: Option<&str>| {
        read_all(
            &vigil.client,
            &url,
            tenant,
            r#"{source="loghub"}"#,
            start,
            end,
        )
    };
    assert_same(&json_set, &read(None), "default tenant, from blocks");
    assert_same(
        &proto_set,
        &read(Some(PROTO_TENANT)),
        "protobuf tenant, from blocks",
    );
}

#[test]
fn log_blocks_reach_a_real_s3_server_and_read_back_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = MotoS3::start(dir.path());
    s3.create_bucket("vigil-logs");
    let mut vigil = Vigil::start(dir.path(), s3.vigil_opts("vigil-logs", "cluster-a", &[]));
    let base_ns = (now_ms() - 20 * 60 * 1000) * 1_000_000;
    let mut set = loghub_set(base_ns, "protobuf", true);
    set.retain(|labels, _| {
        ["openssh", "hdfs", "windows", "zookeeper"].contains(&labels["app"].as_str())
    });
    push_set(&vigil, None, &set, true);

    let status = vigil.terminate(Duration::from_secs(120));
    assert!(status.success(), "vigil exited with {status}");
    let blocks = loki::read_s3_blocks(&s3, "vigil-logs", "cluster-a");
    assert_same(
        &set,
        blocks.get("default").unwrap_or(&LogSet::new()),
        "blocks in S3 via pyarrow",
    );

    vigil.restart();
    let read = read_all(
        &vigil.client,
        &vigil.base_url(),
        None,
        r#"{source="loghub"}"#,
        base_ns - 1,
        base_ns + 3_600_000_000_000,
    );
    assert_same(&set, &read, "read back from S3 blocks");
}

#[test]
fn python_logging_loki_library_pushes_and_reads_back() {
    common::require_python_modules(&["logging_loki", "requests"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let vigil = Vigil::start(dir.path(), VigilOpts::default());
    let script = common::tools_dir().join("loki_logging_client.py");
    let out = common::blocks::run_python(
        &[
            script.to_str().expect("utf-8"),
            "--url",
            &vigil.base_url(),
            "--count",
            "150",
            "--tag",
            "app=pyclient",
            "--tag",
            "env=test",
            "--prefix",
            "python-logging-loki record",
            "--level",
            "info,warning,error",
            "--logger",
            "vigil.e2e",
            "--tenant",
            "py-tenant",
        ],
        &[],
        Duration::from_secs(120),
    );
    let sent: serde_json::Value = serde_json::from_str(&out).expect("client output is JSON");
    assert_eq!(sent["ok"], true, "the client saw failures: {sent}");
    let mut expected = LogSet::new();
    for record in sent["records"].as_array().expect("records") {
        let labels: loki::StreamLabels =
            serde_json::from_value(record["labels"].clone()).expect("labels");
        let ts: i64 = record["timestamp_ns"]
            .as_str()
            .expect("ts")
            .parse()
            .expect("ts");
        let line = record["line"].as_str().expect("line");
        expected
            .entry(labels)
            .or_default()
            .push(Entry::new(ts, line));
    }
    for entries in expected.values_mut() {
        entries.sort();
    }
    assert_eq!(expected.values().map(Vec::len).sum::<usize>(), 150);
    assert_eq!(
        expected.len(),
        3,
        "one stream per severity: {:?}",
        expected.keys()
    );
    let now_ns = now_ms() * 1_000_000;
    let read = read_all(
        &vigil.client,
        &vigil.base_url(),
        Some("py-tenant"),
        r#"{app="pyclient"}"#,
        now_ns - 3_600_000_000_000,
        now_ns + 60_000_000_000,
    );
    assert_same(&expected, &read, "python-logging-loki records");
}
