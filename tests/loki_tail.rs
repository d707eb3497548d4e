//! `GET /loki/api/v1/tail` against the real binary with a real websocket client: the recent lines
//! matching the query arrive first, then every line pushed after the tail started arrives within
//! a second, filtered by the query's pipeline, in Loki's `{"streams":[...]}` messages.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::loki::{json_body, now_ns, push_ok, stream_labels, Entry};
use common::process::VigilOpts;
use common::Vigil;
use tungstenite::Message;

const ROUNDS: usize = 10;

/// Lines of a tail message: (labels JSON, timestamp, line).
fn message_lines(text: &str) -> Vec<(String, String, String)> {
    let v: serde_json::Value = serde_json::from_str(text).expect("tail message is JSON");
    let mut out = Vec::new();
    for s in v["streams"].as_array().expect("streams array") {
        for value in s["values"].as_array().expect("values") {
            out.push((
                s["stream"].to_string(),
                value[0].as_str().expect("ts string").to_string(),
                value[1].as_str().expect("line").to_string(),
            ));
        }
    }
    out
}

#[test]
fn tail_delivers_new_lines_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let vigil = Vigil::start(dir.path(), VigilOpts::default());
    let labels = stream_labels(&[("app", "tail"), ("env", "test")]);
    let t0 = now_ns() - 10_000_000_000;
    let backlog = [
        Entry::new(t0, "keep backlog 1"),
        Entry::new(t0 + 1, "drop backlog"),
        Entry::new(t0 + 2, "keep backlog 2"),
    ];
    push_ok(
        &vigil.client,
        &vigil.base_url(),
        None,
        &[("Content-Type", "application/json")],
        json_body(&[(&labels, &backlog)]),
    );

    let query = "%7Bapp%3D%22tail%22%7D%20%7C%3D%20%22keep%22"; // {app="tail"} |= "keep"
    let url = format!(
        "ws://127.0.0.1:{}/loki/api/v1/tail?query={query}",
        vigil.port
    );
    let stream = TcpStream::connect(("127.0.0.1", vigil.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (mut socket, response) = tungstenite::client::client(url.as_str(), stream).unwrap();
    assert_eq!(response.status().as_u16(), 101);

    // Reads messages until `want` is among the lines or the deadline passes.
    let mut seen: Vec<(String, String, String)> = Vec::new();
    let mut read_until = |want: &str, deadline: Duration| -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < deadline {
            match socket.read() {
                Ok(Message::Text(text)) => {
                    let lines = message_lines(&text);
                    let found = lines.iter().any(|(_, _, l)| l == want);
                    seen.extend(lines);
                    if found {
                        return Some(started.elapsed());
                    }
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("websocket error: {e}"),
            }
        }
        None
    };
    assert!(
        read_until("keep backlog 2", Duration::from_secs(5)).is_some(),
        "the backlog did not arrive"
    );

    let mut latencies = Vec::new();
    for round in 0..ROUNDS {
        let ts = now_ns();
        let keep = format!("keep live {round}");
        let entries = [
            Entry::new(ts, &keep),
            Entry::new(ts + 1, &format!("drop live {round}")),
        ];
        let pushed = Instant::now();
        push_ok(
            &vigil.client,
            &vigil.base_url(),
            None,
            &[("Content-Type", "application/json")],
            json_body(&[(&labels, &entries)]),
        );
        let push_time = pushed.elapsed();
        let waited = read_until(&keep, Duration::from_secs(3))
            .unwrap_or_else(|| panic!("{keep:?} did not arrive within 3 s"));
        let latency = push_time + waited;
        assert!(
            latency < Duration::from_secs(1),
            "{keep:?} arrived after {latency:?}"
        );
        latencies.push(latency);
    }
    let lines: Vec<&str> = seen.iter().map(|(_, _, l)| l.as_str()).collect();
    assert!(
        lines.iter().all(|l| l.starts_with("keep")),
        "the filter let through {lines:?}"
    );
    let mut unique = lines.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), lines.len(), "a line arrived twice: {lines:?}");
    assert_eq!(lines.len(), 2 + ROUNDS, "{lines:?}");
    assert!(seen
        .iter()
        .all(|(labels, _, _)| labels == r#"{"app":"tail","env":"test"}"#));
    latencies.sort();
    println!(
        "tail latency over {ROUNDS} pushes: median {:?}, max {:?}",
        latencies[ROUNDS / 2],
        latencies[ROUNDS - 1]
    );
}
