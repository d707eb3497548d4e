use std::io::Write;

use super::*;
use crate::proto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};

const NOW: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;

fn entry(ts: i64, line: &str) -> EntryAdapter {
    EntryAdapter {
        timestamp: Some(Timestamp::from_unix_nanos(ts)),
        line: line.to_string(),
        structured_metadata: vec![],
    }
}

fn entry_with_meta(ts: i64, line: &str, meta: &[(&str, &str)]) -> EntryAdapter {
    EntryAdapter {
        structured_metadata: meta
            .iter()
            .map(|(n, v)| LabelPairAdapter {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        ..entry(ts, line)
    }
}

fn stream(labels: &str, entries: Vec<EntryAdapter>) -> StreamAdapter {
    StreamAdapter {
        labels: labels.to_string(),
        entries,
        hash: 0,
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_unsorted(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect())
}

fn parse_proto(request: &PushRequest, limits: &LogLimits) -> LogBatch {
    parse_push(
        &request.encode_snappy(),
        BodyFormat::Protobuf,
        ContentEncoding::Identity,
        limits,
        NOW,
    )
    .unwrap()
}

fn parse_json(body: &str) -> Result<LogBatch, DecodeError> {
    parse_push(
        body.as_bytes(),
        BodyFormat::Json(JsonVersion::V1),
        ContentEncoding::Identity,
        &LogLimits::default(),
        NOW,
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn reasons(batch: &LogBatch) -> Vec<RejectReason> {
    batch.rejections.iter().map(|r| r.reason).collect()
}

#[test]
fn protobuf_round_trip_keeps_every_byte() {
    let long = "x".repeat(100_000);
    let request = PushRequest {
        streams: vec![
            stream(
                r#"{job="api", env="prod", app="shop"}"#,
                vec![
                    entry(NOW - 3 * SEC, "first line"),
                    entry_with_meta(
                        NOW - 2 * SEC,
                        "multi\nline\r\n\ttabbed \u{e9}\u{65e5}\u{1F600}",
                        &[("trace_id", "abc123"), ("user", "z\u{fc}rich")],
                    ),
                    entry(NOW - SEC + 7, &long),
                    entry(NOW - 10 * SEC, ""),
                ],
            ),
            stream(r#"{app="db"}"#, vec![entry(-5 * SEC - 1, "before 1970")]),
        ],
    };
    let batch = parse_proto(&request, &LogLimits::default());
    assert!(batch.rejections.is_empty(), "{:?}", batch.rejections);
    assert_eq!(batch.total_entries, 5);
    assert_eq!(batch.accepted_entries(), 5);
    assert_eq!(batch.streams.len(), 2);
    let s = &batch.streams[0];
    let want = labels(&[("app", "shop"), ("env", "prod"), ("job", "api")]);
    assert_eq!(s.labels, want);
    assert_eq!(s.hash, want.fx_hash());
    assert_eq!(
        s.hash,
        vigil_model::labels_hash([("app", "shop"), ("env", "prod"), ("job", "api")])
    );
    let sent = &request.streams[0].entries;
    for (got, sent) in s.entries.iter().zip(sent) {
        assert_eq!(got.line, sent.line);
        assert_eq!(
            got.timestamp_ns,
            sent.timestamp.map(Timestamp::to_unix_nanos).unwrap()
        );
    }
    assert_eq!(s.entries[2].timestamp_ns, NOW - SEC + 7);
    assert_eq!(
        s.entries[1].structured_metadata,
        vec![
            ("trace_id".to_string(), "abc123".to_string()),
            ("user".to_string(), "z\u{fc}rich".to_string())
        ]
    );
    assert_eq!(batch.streams[1].entries[0].timestamp_ns, -5 * SEC - 1);
    // The prost structs decode what they encode.
    let raw = snappy_decompress(&request.encode_snappy(), 1 << 30).unwrap();
    let back: PushRequest = prost::Message::decode(&raw[..]).unwrap();
    assert_eq!(back, request);
}

#[test]
fn protobuf_in_gzip_and_snappy_hint_are_accepted() {
    let request = PushRequest {
        streams: vec![stream(r#"{a="b"}"#, vec![entry(NOW, "hello")])],
    };
    let body = gzip(&request.encode_snappy());
    let batch = parse_push(
        &body,
        BodyFormat::Protobuf,
        ContentEncoding::Gzip,
        &LogLimits::default(),
        NOW,
    )
    .unwrap();
    assert_eq!(batch.streams[0].entries[0].line, "hello");
    assert_eq!(
        ContentEncoding::from_header(Some("snappy")).unwrap(),
        ContentEncoding::Identity
    );
}

#[test]
fn invalid_utf8_in_protobuf_is_replaced_not_fatal() {
    let request = PushRequest {
        streams: vec![stream(
            r#"{a="b"}"#,
            vec![entry(NOW, "QQQQ-line"), entry(NOW, "fine")],
        )],
    };
    let mut raw = prost::Message::encode_to_vec(&request);
    let at = raw.windows(4).position(|w| w == b"QQQQ").unwrap();
    raw[at..at + 4].copy_from_slice(&[0xff, 0xfe, b'o', b'k']);
    let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
    let batch = parse_push(
        &body,
        BodyFormat::Protobuf,
        ContentEncoding::Identity,
        &LogLimits::default(),
        NOW,
    )
    .unwrap();
    assert_eq!(batch.invalid_utf8, 1);
    assert_eq!(batch.streams[0].entries[0].line, "\u{FFFD}\u{FFFD}ok-line");
    assert_eq!(batch.streams[0].entries[1].line, "fine");
}

#[test]
fn json_with_and_without_structured_metadata() {
    let body = r#"{"streams":[
        {"stream":{"job":"api","app":"shop"},
         "values":[["1700000000000000001","plain line"],
                   ["1700000000000000002","with meta",{"trace_id":"t1","span.id":"s1"}],
                   ["1700000000000000003","extra ignored",{},"x",4],
                   null,
                   ["1700000000000000004","unicode \u00e9 \ud83d\ude00 and \"quotes\"\nnewline"]]},
        {"stream":{"app":"db"},"values":null},
        {"stream":{"app":"web"},"values":[]},
        {"values":[["1","no labels"]]}],
        "unknown":{"nested":[1,2]}}"#;
    let batch = parse_json(body).unwrap();
    assert_eq!(batch.total_entries, 5);
    assert_eq!(reasons(&batch), vec![RejectReason::MissingLabels]);
    assert_eq!(batch.streams.len(), 1);
    let s = &batch.streams[0];
    assert_eq!(s.labels, labels(&[("app", "shop"), ("job", "api")]));
    let lines: Vec<&str> = s.entries.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(
        lines,
        vec![
            "plain line",
            "with meta",
            "extra ignored",
            "unicode \u{e9} \u{1F600} and \"quotes\"\nnewline"
        ]
    );
    assert_eq!(s.entries[0].timestamp_ns, 1_700_000_000_000_000_001);
    assert!(s.entries[0].structured_metadata.is_empty());
    // `span.id` is normalized as Loki's distributor does.
    assert_eq!(
        s.entries[1].structured_metadata,
        vec![
            ("trace_id".to_string(), "t1".to_string()),
            ("span_id".to_string(), "s1".to_string())
        ]
    );
    assert_eq!(batch.sanitized_metadata, 1);
}

#[test]
fn json_rejects_what_loki_rejects_as_a_whole() {
    for bad in [
        r#"{"streams":[{"stream":{"a":"b"},"values":[[1700000000000000000,"numeric ts"]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["17e8","float ts"]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1",42]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","x",{"k":1}]]}]}"#,
        r#"{"streams":[{"stream":{"a":1},"values":[["1","x"]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","x"]]}]"#,
        r#"{"streams":{}}"#,
        r#"[]"#,
        "",
        r#"{"streams":[]} trailing"#,
    ] {
        assert!(
            matches!(parse_json(bad), Err(DecodeError::Json(_))),
            "{bad}"
        );
    }
    let err = parse_json(r#"{"streams":[{"stream":{"a":"b"},"values":[["soon","x"]]}]}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid timestamp \"soon\""), "{err}");
    // No streams at all is not an error here (the server decides what to answer).
    assert_eq!(
        parse_json(r#"{"streams":null}"#).unwrap(),
        LogBatch::default()
    );
    assert_eq!(parse_json("{}").unwrap(), LogBatch::default());
}

#[test]
fn json_label_names_go_through_the_label_parser() {
    let batch = parse_json(
        r#"{"streams":[
        {"stream":{"service.name":"x"},"values":[["1","bad name"]]},
        {"stream":{"a":"1","a":"2","empty":""},"values":[["2","last key wins"]]}]}"#,
    )
    .unwrap();
    assert_eq!(reasons(&batch), vec![RejectReason::InvalidLabels]);
    assert_eq!(
        batch.rejections[0].message,
        "Error parsing labels '{service.name=\"x\"}' with error: 1:9: parse error: unexpected character '.' in label set, expected \"=\""
    );
    assert_eq!(batch.streams[0].labels, labels(&[("a", "2")]));
}

#[test]
fn gzip_and_deflate_json() {
    let body = br#"{"streams":[{"stream":{"a":"b"},"values":[["1","zipped"]]}]}"#;
    let limits = LogLimits::default();
    let json = BodyFormat::Json(JsonVersion::V1);
    let batch = parse_push(&gzip(body), json, ContentEncoding::Gzip, &limits, NOW).unwrap();
    assert_eq!(batch.streams[0].entries[0].line, "zipped");

    let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    raw.write_all(body).unwrap();
    let raw = raw.finish().unwrap();
    let batch = parse_push(&raw, json, ContentEncoding::Deflate, &limits, NOW).unwrap();
    assert_eq!(batch.streams[0].entries[0].line, "zipped");

    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    zlib.write_all(body).unwrap();
    let zlib = zlib.finish().unwrap();
    let batch = parse_push(&zlib, json, ContentEncoding::Deflate, &limits, NOW).unwrap();
    assert_eq!(batch.streams[0].entries[0].line, "zipped");
}

#[test]
fn legacy_json_body() {
    let body = r#"{"streams":[{"labels":"{job=\"old\", host=\"h1\"}","entries":[
        {"ts":"2023-11-14T22:13:20.5Z","line":"legacy line"},
        {"ts":"2023-11-15T00:13:20+02:00","line":"offset","structuredMetadata":[{"name":"k","value":"v"}]},
        null]}]}"#;
    let batch = parse_push(
        body.as_bytes(),
        BodyFormat::Json(JsonVersion::Legacy),
        ContentEncoding::Identity,
        &LogLimits::default(),
        NOW,
    )
    .unwrap();
    let s = &batch.streams[0];
    assert_eq!(s.labels, labels(&[("host", "h1"), ("job", "old")]));
    assert_eq!(s.entries[0].timestamp_ns, NOW + 500_000_000);
    assert_eq!(s.entries[1].timestamp_ns, NOW);
    assert_eq!(
        s.entries[1].structured_metadata,
        vec![("k".to_string(), "v".to_string())]
    );
    let bad = r#"{"streams":[{"labels":"{a=\"b\"}","entries":[{"ts":"yesterday","line":"x"}]}]}"#;
    assert!(matches!(
        parse_push(
            bad.as_bytes(),
            BodyFormat::Json(JsonVersion::Legacy),
            ContentEncoding::Identity,
            &LogLimits::default(),
            NOW
        ),
        Err(DecodeError::Json(_))
    ));
}

#[test]
fn each_validation_rule_rejects_only_its_entries() {
    let limits = LogLimits {
        reject_older_than: Some(Duration::from_secs(3600)),
        max_line_bytes: 10,
        max_structured_metadata_bytes: 20,
        max_structured_metadata_entries: 2,
        ..LogLimits::default()
    };
    let many: String = (0..16)
        .map(|i| format!("l{i:02}=\"v\""))
        .collect::<Vec<_>>()
        .join(",");
    let fifteen_plus_service: String = (0..15)
        .map(|i| format!("l{i:02}=\"v\", "))
        .collect::<String>()
        + "service_name=\"s\"";
    let request = PushRequest {
        streams: vec![
            stream(r#"{app="ok"}"#, vec![entry(NOW, "good")]),
            stream(r#"{app="ok""#, vec![entry(NOW, "a"), entry(NOW, "b")]),
            stream("{}", vec![entry(NOW, "no labels")]),
            stream(r#"{app=""}"#, vec![entry(NOW, "only empty")]),
            stream(&format!("{{{many}}}"), vec![entry(NOW, "16 labels")]),
            stream(
                &format!("{{{fifteen_plus_service}}}"),
                vec![entry(NOW, "ok 15+svc")],
            ),
            stream(
                &format!("{{{}=\"v\"}}", "n".repeat(1025)),
                vec![entry(NOW, "long name")],
            ),
            stream(
                &format!("{{app=\"{}\"}}", "v".repeat(2049)),
                vec![entry(NOW, "long value")],
            ),
            stream(r#"{app="a", app="b"}"#, vec![entry(NOW, "dup")]),
            stream(
                r#"{app="mixed"}"#,
                vec![
                    entry(NOW + 11 * 60 * SEC, "future"),
                    entry(NOW + 9 * 60 * SEC, "near ok"),
                    entry(NOW - 3601 * SEC, "too old"),
                    entry(NOW - 3599 * SEC, "old ok"),
                    entry(NOW, "this line is too long"),
                    entry(NOW, "0123456789"),
                    entry_with_meta(NOW, "big meta", &[("k", "01234567890123456789")]),
                    entry_with_meta(NOW, "3 meta", &[("a", "1"), ("b", "2"), ("c", "3")]),
                    entry_with_meta(NOW, "ok meta", &[("a", "1"), ("b", "2")]),
                ],
            ),
            stream(r#"{app="empty"}"#, vec![]),
        ],
    };
    let batch = parse_proto(&request, &limits);
    use RejectReason::*;
    assert_eq!(
        reasons(&batch),
        vec![
            InvalidLabels,
            MissingLabels,
            MissingLabels,
            MaxLabelNamesPerSeries,
            LabelNameTooLong,
            LabelValueTooLong,
            DuplicateLabelNames,
            TooFarInFuture,
            GreaterThanMaxSampleAge,
            LineTooLong,
            StructuredMetadataTooLarge,
            StructuredMetadataTooMany,
        ]
    );
    assert_eq!(batch.rejections[0].entries, 2);
    assert_eq!(batch.total_entries, 19);
    assert_eq!(batch.rejected_entries(), 13);
    assert_eq!(batch.accepted_entries(), 6);
    let kept: Vec<&str> = batch
        .streams
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.line.as_str()))
        .collect();
    assert_eq!(
        kept,
        vec![
            "good",
            "ok 15+svc",
            "near ok",
            "old ok",
            "0123456789",
            "ok meta"
        ]
    );
    let messages: Vec<&str> = batch
        .rejections
        .iter()
        .map(|r| r.message.as_str())
        .collect();
    assert_eq!(
        messages[0],
        "Error parsing labels '{app=\"ok\"' with error: 1:10: parse error: unexpected end of input inside braces"
    );
    assert_eq!(
        messages[1],
        "error at least one label pair is required per stream"
    );
    assert!(messages[3].starts_with("entry for stream '{l00=\"v\", "));
    assert!(messages[3].ends_with("l15=\"v\"}' has 16 label names; limit 15"));
    assert_eq!(
        messages[6],
        "stream '{app=\"a\", app=\"b\"}' has duplicate label name: 'app'"
    );
    assert_eq!(
        messages[7],
        "entry for stream '{app=\"mixed\"}' has timestamp too new: 2023-11-14T22:24:20Z"
    );
    assert_eq!(
        messages[8],
        "entry for stream '{app=\"mixed\"}' has timestamp too old: 2023-11-14T21:13:19Z, oldest acceptable timestamp is: 2023-11-14T21:13:20Z"
    );
    assert_eq!(
        messages[9],
        "Max entry size '10' bytes exceeded for stream '{app=\"mixed\"}' while adding an entry with length '21' bytes"
    );
    assert_eq!(
        messages[10],
        "stream '{app=\"mixed\"}' has structured metadata too large: '21' bytes, limit: '20' bytes"
    );
    assert_eq!(
        messages[11],
        "stream '{app=\"mixed\"}' has too many structured metadata labels: '3', limit: '2'"
    );
    assert_eq!(batch.rejections[7].timestamp_ns, Some(NOW + 11 * 60 * SEC));
    assert_eq!(batch.rejections[4].reason.as_label(), "label_name_too_long");
}

#[test]
fn timestamps_are_accepted_at_any_age_by_default() {
    let request = PushRequest {
        streams: vec![stream(
            r#"{a="b"}"#,
            vec![
                entry(0, "epoch"),
                entry(NOW - 10 * 365 * 86_400 * SEC, "ten years"),
                entry(NOW + 10 * 60 * SEC, "exactly at the grace limit"),
            ],
        )],
    };
    let batch = parse_proto(&request, &LogLimits::default());
    assert!(batch.rejections.is_empty());
    assert_eq!(batch.accepted_entries(), 3);
    // A missing timestamp is the epoch.
    let request = PushRequest {
        streams: vec![stream(
            r#"{a="b"}"#,
            vec![EntryAdapter {
                timestamp: None,
                line: "x".into(),
                structured_metadata: vec![],
            }],
        )],
    };
    assert_eq!(
        parse_proto(&request, &LogLimits::default()).streams[0].entries[0].timestamp_ns,
        0
    );
}

#[test]
fn long_lines_are_truncated_when_configured() {
    let limits = LogLimits {
        max_line_bytes: 8,
        truncate_long_lines: true,
        ..LogLimits::default()
    };
    let request = PushRequest {
        streams: vec![stream(
            r#"{a="b"}"#,
            vec![
                entry(NOW, "0123456789"),
                entry(NOW, "short"),
                entry(NOW, "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"),
            ],
        )],
    };
    let batch = parse_proto(&request, &limits);
    assert!(batch.rejections.is_empty());
    let lines: Vec<&str> = batch.streams[0]
        .entries
        .iter()
        .map(|e| e.line.as_str())
        .collect();
    assert_eq!(lines, vec!["01234567", "short", "\u{e9}\u{e9}\u{e9}\u{e9}"]);
    assert_eq!(batch.truncated_lines, 2);
    assert_eq!(batch.truncated_bytes, 2 + 2);

    let with_suffix = LogLimits {
        truncate_suffix: "[...]".into(),
        ..limits
    };
    let batch = parse_proto(&request, &with_suffix);
    assert_eq!(batch.streams[0].entries[0].line, "012[...]");
}

#[test]
fn structured_metadata_rules() {
    let request = PushRequest {
        streams: vec![stream(
            r#"{a="b"}"#,
            vec![
                entry_with_meta(NOW, "m", &[("k", "v")]),
                entry_with_meta(NOW, "n", &[("1st.key", "x"), ("ok", "bad\u{FFFD}utf")]),
            ],
        )],
    };
    let no_meta = LogLimits {
        allow_structured_metadata: false,
        ..LogLimits::default()
    };
    let batch = parse_proto(&request, &no_meta);
    assert_eq!(
        reasons(&batch),
        vec![RejectReason::DisallowedStructuredMetadata; 2]
    );
    let batch = parse_proto(&request, &LogLimits::default());
    assert_eq!(
        batch.streams[0].entries[1].structured_metadata,
        vec![
            ("key_1st_key".to_string(), "x".to_string()),
            ("ok".to_string(), "badutf".to_string())
        ]
    );
    assert_eq!(batch.sanitized_metadata, 2);
}

#[test]
fn rejection_summary_reads_like_loki() {
    let request = PushRequest {
        streams: vec![stream(
            r#"{app="x"}"#,
            vec![
                entry(NOW + 3600 * SEC, "a"),
                entry(NOW + 3600 * SEC, "b"),
                entry(NOW, "kept"),
            ],
        )],
    };
    let batch = parse_proto(&request, &LogLimits::default());
    assert_eq!(
        batch.error_body().unwrap(),
        "2 errors like: entry for stream '{app=\"x\"}' has timestamp too new: 2023-11-14T23:13:20Z\ntotal ignored: 2 out of 3"
    );
    let single = &batch.rejections[..1];
    assert_eq!(
        describe_rejections(single, 3),
        "entry for stream '{app=\"x\"}' has timestamp too new: 2023-11-14T23:13:20Z\ntotal ignored: 1 out of 3"
    );
    let many: Vec<Rejection> = (0..15)
        .map(|i| Rejection {
            message: format!("m{i}"),
            ..batch.rejections[0].clone()
        })
        .collect();
    let text = describe_rejections(&many, 20);
    assert!(
        text.starts_with("1 errors like: m0; 1 errors like: m1; "),
        "{text}"
    );
    assert!(text.contains("m9; and 5 more distinct errors\ntotal ignored: 15 out of 20"));
    assert!(LogBatch::default().error_body().is_none());
}

#[test]
fn whole_request_errors() {
    let limits = LogLimits::default();
    let proto = BodyFormat::Protobuf;
    let id = ContentEncoding::Identity;
    assert!(matches!(
        parse_push(b"not snappy at all", proto, id, &limits, NOW),
        Err(DecodeError::Snappy(_))
    ));
    let garbage = snap::raw::Encoder::new()
        .compress_vec(&[0xff, 0xff, 0xff])
        .unwrap();
    assert!(matches!(
        parse_push(&garbage, proto, id, &limits, NOW),
        Err(DecodeError::Protobuf(_))
    ));
    assert!(matches!(
        parse_push(
            b"\x1f\x8b garbage",
            proto,
            ContentEncoding::Gzip,
            &limits,
            NOW
        ),
        Err(DecodeError::Gzip(_))
    ));
    assert!(matches!(
        parse_push(b"\xff\xff", proto, ContentEncoding::Deflate, &limits, NOW),
        Err(DecodeError::Deflate(_))
    ));
    assert!(matches!(
        ContentEncoding::from_header(Some("br")),
        Err(DecodeError::UnsupportedEncoding(e)) if e == "br"
    ));
    assert_eq!(
        ContentEncoding::from_header(Some("br"))
            .unwrap_err()
            .to_string(),
        "Content-Encoding \"br\" not supported"
    );

    let small = LogLimits {
        max_decompressed_bytes: 1000,
        ..LogLimits::default()
    };
    let request = PushRequest {
        streams: vec![stream(r#"{a="b"}"#, vec![entry(NOW, &"z".repeat(5000))])],
    };
    assert!(matches!(
        parse_push(&request.encode_snappy(), proto, id, &small, NOW),
        Err(DecodeError::TooLarge { limit: 1000 })
    ));
    let bomb = gzip(&vec![b' '; 1 << 20]);
    assert!(bomb.len() < 2000);
    assert!(matches!(
        parse_push(
            &bomb,
            BodyFormat::Json(JsonVersion::V1),
            ContentEncoding::Gzip,
            &small,
            NOW
        ),
        Err(DecodeError::TooLarge { limit: 1000 })
    ));
    let big_json = format!("{{\"streams\":[]{}}}", " ".repeat(2000));
    assert!(matches!(
        parse_push(
            big_json.as_bytes(),
            BodyFormat::Json(JsonVersion::V1),
            id,
            &small,
            NOW
        ),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn content_type_selects_the_format() {
    use BodyFormat::*;
    assert_eq!(BodyFormat::from_content_type(None, false), Protobuf);
    assert_eq!(
        BodyFormat::from_content_type(Some("application/x-protobuf"), false),
        Protobuf
    );
    assert_eq!(
        BodyFormat::from_content_type(Some("application/json; charset=utf-8"), false),
        Json(JsonVersion::V1)
    );
    assert_eq!(
        BodyFormat::from_content_type(Some("Application/JSON"), true),
        Json(JsonVersion::Legacy)
    );
}

/// Garbled bodies of every kind end in an error or a batch, never a panic.
#[test]
fn garbled_bodies_never_panic() {
    let request = PushRequest {
        streams: vec![
            stream(
                r#"{app="a", env="b"}"#,
                vec![
                    entry_with_meta(NOW, "line one", &[("k", "v")]),
                    entry(NOW + SEC, "line\ntwo \u{e9}"),
                ],
            ),
            stream(r#"{x='y\n'}"#, vec![entry(NOW, "z")]),
        ],
    };
    let raw_proto = prost::Message::encode_to_vec(&request);
    let json = br#"{"streams":[{"stream":{"a":"b"},"values":[["1","x",{"k":"v"}],["2","y"]]}]}"#;
    let legacy = br#"{"streams":[{"labels":"{a=\"b\"}","entries":[{"ts":"2023-11-14T22:13:20Z","line":"x"}]}]}"#;
    let seeds: Vec<(Vec<u8>, BodyFormat)> = vec![
        (raw_proto.clone(), BodyFormat::Protobuf),
        (json.to_vec(), BodyFormat::Json(JsonVersion::V1)),
        (legacy.to_vec(), BodyFormat::Json(JsonVersion::Legacy)),
    ];
    let limits = LogLimits {
        max_decompressed_bytes: 1 << 20,
        ..LogLimits::default()
    };
    let mut rng = fastrand::Rng::with_seed(7);
    let compress = |data: &[u8], format: BodyFormat| -> Vec<u8> {
        match format {
            BodyFormat::Protobuf => snap::raw::Encoder::new().compress_vec(data).unwrap(),
            BodyFormat::Json(_) => data.to_vec(),
        }
    };
    for round in 0..3000 {
        let (seed, format) = &seeds[round % seeds.len()];
        let mut data = seed.clone();
        match rng.u8(0..4) {
            0 => {
                let n = rng.usize(1..8);
                for _ in 0..n {
                    let i = rng.usize(0..data.len());
                    data[i] = rng.u8(..);
                }
            }
            1 => data.truncate(rng.usize(0..data.len())),
            2 => {
                let i = rng.usize(0..data.len());
                let extra: Vec<u8> = (0..rng.usize(1..16)).map(|_| rng.u8(..)).collect();
                data.splice(i..i, extra);
            }
            _ => data = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect(),
        }
        // Garble the plain body, the compressed body, and gzip-wrapped forms.
        let encoded = compress(&data, *format);
        let _ = parse_push(&encoded, *format, ContentEncoding::Identity, &limits, NOW);
        let _ = parse_push(&data, *format, ContentEncoding::Identity, &limits, NOW);
        let _ = parse_push(
            &gzip(&encoded),
            *format,
            ContentEncoding::Gzip,
            &limits,
            NOW,
        );
        let _ = parse_push(&data, *format, ContentEncoding::Gzip, &limits, NOW);
        let _ = parse_push(&data, *format, ContentEncoding::Deflate, &limits, NOW);
    }
    // Label strings: every prefix and random mutation of tricky inputs parses or errors cleanly.
    let tricky = r#"up{a="x\"y\\z\u00e9\U0001F600\x41\101", b='c', c=`d`, } # c"#;
    for cut in 0..=tricky.len() {
        if tricky.is_char_boundary(cut) {
            let _ = parse_labels(&tricky[..cut]);
        }
    }
    for _ in 0..3000 {
        let mut bytes = tricky.as_bytes().to_vec();
        let i = rng.usize(0..bytes.len());
        bytes[i] = rng.u8(0x20..0x7f);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = parse_labels(s);
        }
    }
}
