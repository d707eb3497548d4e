//! Bad Loki pushes against the real binary: each validation case gets the status Loki gives and a
//! reason a person can act on, the valid part of the same request is stored, and the server stays
//! up throughout.

mod common;

use common::loki::{
    json_body, push, read_all, stream_labels, Entry, LogSet, StreamLabels, JSON, PROTOBUF,
};
use common::process::VigilOpts;
use common::{now_ms, Vigil};

struct Case {
    name: &'static str,
    /// Label text of the bad stream (protobuf carries label strings as text).
    bad_labels: String,
    bad_entries: Vec<Entry>,
    status: u16,
    /// Words the answer must contain.
    reason: &'static str,
}

fn good_stream(name: &str) -> StreamLabels {
    stream_labels(&[("app", "good"), ("case", name)])
}

#[test]
fn each_bad_push_gets_its_status_and_reason_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vigil = Vigil::start(dir.path(), VigilOpts::args(&["--reject-older-than", "24h"]));
    let url = vigil.base_url();
    let now_ns = now_ms() * 1_000_000;
    let many_labels: Vec<String> = (0..16).map(|i| format!("l{i:02}=\"v\"")).collect();
    let cases = [
        Case {
            name: "malformed-labels",
            bad_labels: r#"{app="x", oops}"#.into(),
            bad_entries: vec![Entry::new(now_ns, "x")],
            status: 400,
            reason: "parse error",
        },
        Case {
            name: "too-many-labels",
            bad_labels: format!("{{{}}}", many_labels.join(", ")),
            bad_entries: vec![Entry::new(now_ns, "x")],
            status: 400,
            reason: "label names; limit 15",
        },
        Case {
            name: "label-name-too-long",
            bad_labels: format!("{{{}=\"v\"}}", "n".repeat(1025)),
            bad_entries: vec![Entry::new(now_ns, "x")],
            status: 400,
            reason: "label name too long",
        },
        Case {
            name: "label-value-too-long",
            bad_labels: format!("{{app=\"{}\"}}", "v".repeat(2049)),
            bad_entries: vec![Entry::new(now_ns, "x")],
            status: 400,
            reason: "label value too long",
        },
        Case {
            name: "line-too-long",
            bad_labels: r#"{app="long"}"#.into(),
            bad_entries: vec![Entry::new(now_ns, &"x".repeat(256 * 1024 + 1))],
            status: 400,
            reason: "Max entry size '262144' bytes exceeded",
        },
        Case {
            name: "future",
            bad_labels: r#"{app="future"}"#.into(),
            bad_entries: vec![Entry::new(now_ns + 3_600_000_000_000, "from the future")],
            status: 400,
            reason: "timestamp too new",
        },
        Case {
            name: "too-old",
            bad_labels: r#"{app="old"}"#.into(),
            bad_entries: vec![Entry::new(now_ns - 48 * 3_600_000_000_000, "ancient")],
            status: 400,
            reason: "timestamp too old",
        },
    ];

    let mut expected = LogSet::new();
    for (i, case) in cases.iter().enumerate() {
        let good = good_stream(case.name);
        let good_entries = vec![Entry::new(
            now_ns - 1000 + i as i64,
            &format!("good line of {}", case.name),
        )];
        // The bad stream as protobuf (its label text goes through as written), the good one too.
        let body = {
            let mut request = vigil_log_ingest::proto::PushRequest::default();
            let good_text = common::loki::label_text(&good);
            for (labels, entries) in [
                (&good_text, &good_entries),
                (&case.bad_labels, &case.bad_entries),
            ] {
                request
                    .streams
                    .push(vigil_log_ingest::proto::StreamAdapter {
                        labels: labels.clone(),
                        entries: entries
                            .iter()
                            .map(|e| vigil_log_ingest::proto::EntryAdapter {
                                timestamp: Some(
                                    vigil_log_ingest::proto::Timestamp::from_unix_nanos(e.ts_ns),
                                ),
                                line: e.line.clone(),
                                ..Default::default()
                            })
                            .collect(),
                        hash: 0,
                    });
            }
            request.encode_snappy()
        };
        let response = push(&vigil.client, &url, None, &PROTOBUF, body).expect("push");
        let text = response.text();
        assert_eq!(
            response.status, case.status,
            "{}: answered {} {text}",
            case.name, response.status
        );
        assert!(
            text.contains(case.reason),
            "{}: the answer {text:?} does not name {:?}",
            case.name,
            case.reason
        );
        assert!(
            text.contains("total ignored: 1 out of 2"),
            "{}: {text:?}",
            case.name
        );
        expected.insert(good, good_entries);
        vigil.assert_running();
    }

    // Out of order: within the window accepted, further behind rejected naming the window.
    let ooo = stream_labels(&[("app", "good"), ("case", "out-of-order")]);
    let newest = Entry::new(now_ns, "newest");
    let within = Entry::new(now_ns - 30 * 60_000_000_000, "30 minutes behind, accepted");
    let behind = Entry::new(now_ns - 2 * 3_600_000_000_000, "2 hours behind, rejected");
    let response = push(
        &vigil.client,
        &url,
        None,
        &JSON,
        json_body(&[(&ooo, std::slice::from_ref(&newest))]),
    )
    .expect("push");
    assert_eq!(response.status, 204, "{}", response.text());
    let response = push(
        &vigil.client,
        &url,
        None,
        &JSON,
        json_body(&[(&ooo, &[within.clone(), behind])]),
    )
    .expect("push");
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(
        response.text().contains("entry too far behind"),
        "{}",
        response.text()
    );
    expected.insert(ooo, vec![within, newest]);

    // Empty streams are dropped silently, as Loki does.
    let empty = stream_labels(&[("app", "empty")]);
    let response = push(
        &vigil.client,
        &url,
        None,
        &JSON,
        json_body(&[(&empty, &[])]),
    )
    .expect("push");
    assert_eq!(response.status, 204, "{}", response.text());

    // Whole-request problems: the body cannot be read at all.
    // (what, headers, body, status, words the answer must contain)
    type BadRequest<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let requests: Vec<BadRequest> = vec![
        (
            "broken JSON",
            JSON.to_vec(),
            b"{\"streams\": [".to_vec(),
            400,
            "JSON",
        ),
        (
            "numeric JSON timestamp",
            JSON.to_vec(),
            br#"{"streams":[{"stream":{"a":"b"},"values":[[1,"x"]]}]}"#.to_vec(),
            400,
            "JSON",
        ),
        (
            "not snappy",
            PROTOBUF.to_vec(),
            b"definitely not snappy".to_vec(),
            400,
            "snappy",
        ),
        (
            "unknown encoding",
            vec![
                ("Content-Type", "application/json"),
                ("Content-Encoding", "br"),
            ],
            b"{}".to_vec(),
            400,
            "not supported",
        ),
        (
            "gzip that is not gzip",
            vec![
                ("Content-Type", "application/json"),
                ("Content-Encoding", "gzip"),
            ],
            b"plain".to_vec(),
            400,
            "gzip",
        ),
    ];
    for (name, headers, body, status, reason) in requests {
        let response = push(&vigil.client, &url, None, &headers, body).expect("push");
        assert_eq!(response.status, status, "{name}: {}", response.text());
        assert!(
            response.text().contains(reason),
            "{name}: {:?} does not name {reason:?}",
            response.text()
        );
        vigil.assert_running();
    }

    // A gzip-compressed JSON body is fine.
    let gz_stream = stream_labels(&[("app", "good"), ("case", "gzip")]);
    let gz_entries = vec![Entry::new(now_ns - 5, "compressed line")];
    let body = json_body(&[(&gz_stream, &gz_entries)]);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, &body).expect("gzip");
    let gz = encoder.finish().expect("gzip");
    let response = push(
        &vigil.client,
        &url,
        None,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        gz,
    )
    .expect("push");
    assert_eq!(response.status, 204, "{}", response.text());
    expected.insert(gz_stream, gz_entries);

    // Only the good parts are stored, and nothing else.
    let read = read_all(
        &vigil.client,
        &url,
        None,
        r#"{app=~".+"}"#,
        now_ns - 3 * 3_600_000_000_000,
        now_ns + 3_600_000_000_000,
    );
    let differences = common::loki::diff(&expected, &read, 20);
    assert!(
        differences.is_empty(),
        "stored data differs:\n{}",
        differences.join("\n")
    );
    let metrics = vigil
        .client
        .get(&vigil.url("/metrics"), None)
        .expect("metrics")
        .text();
    for reason in [
        "line_too_long",
        "too_far_behind",
        "too_far_in_future",
        "greater_than_max_sample_age",
        "max_label_names_per_series",
    ] {
        assert!(
            metrics.contains(&format!(
                "vigil_log_entries_rejected_total{{tenant=\"default\",reason=\"{reason}\"}} 1"
            )),
            "no rejection counted for {reason}:\n{metrics}"
        );
    }
    vigil.assert_running();

    // Over the request size limit: 413 naming it (a small limit, so the whole body is sent
    // before the answer and the client sees the status rather than a reset).
    let small_dir = tempfile::tempdir().expect("tempdir");
    let small = Vigil::start(
        small_dir.path(),
        VigilOpts::args(&["--max-request-bytes", "16384"]),
    );
    let response = push(
        &small.client,
        &small.base_url(),
        None,
        &JSON,
        vec![b' '; 20_000],
    )
    .expect("push");
    assert_eq!(response.status, 413, "{}", response.text());
    assert!(
        response.text().contains("limit of 16384 bytes"),
        "{}",
        response.text()
    );
}
