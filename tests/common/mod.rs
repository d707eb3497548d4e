//! Shared harness of the end-to-end tests: runs the real `vigil` binary (and Prometheus, the moto
//! S3 server and Python tools) as child processes on loopback ports in temporary directories, and
//! speaks remote-write, remote-read and the JSON APIs to it.
//!
//! Every child process is owned by a guard that kills it on drop, and whose stderr goes to a file
//! that is printed when the test fails. Every wait has a deadline.

// Each test binary includes this module and uses a different part of it.
#![allow(dead_code, unused_imports)]

pub mod blocks;
pub mod data;
pub mod http;
pub mod loki;
pub mod process;
pub mod prometheus;

pub use data::{Dataset, LabelSet};
pub use process::{Proc, Vigil};

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A port on 127.0.0.1 that was free a moment ago (the OS picks it; collisions between tests
/// running in parallel are as unlikely as the OS makes them).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// The shared read-only material (`../shared` beside the repository; `VIGIL_SHARED` or
/// `/work/shared` otherwise).
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VIGIL_SHARED") {
        return PathBuf::from(dir);
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if beside.is_dir() {
        beside
    } else {
        PathBuf::from("/work/shared")
    }
}

/// The directory of the Python helpers (`tests/tools`).
pub fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tools")
}

/// Calls `probe` every `interval` until it returns `Ok`, or panics after `timeout` naming `what`
/// and the last `Err` the probe gave (its description of the state it saw).
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match probe() {
            Ok(value) => return value,
            Err(last) => {
                if start.elapsed() >= timeout {
                    panic!(
                        "timed out after {:?} ({attempts} attempts) waiting for {what}; last state: {last}",
                        timeout
                    );
                }
            }
        }
        std::thread::sleep(interval);
    }
}

/// A seed for a randomized test: `VIGIL_TEST_SEED` if set, else a random one. Printed so that a
/// failing run can be repeated.
pub fn test_seed(test: &str) -> u64 {
    let seed = match std::env::var("VIGIL_TEST_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .expect("VIGIL_TEST_SEED must be an unsigned integer"),
        Err(_) => fastrand::u64(..),
    };
    eprintln!("{test}: seed {seed} (repeat with VIGIL_TEST_SEED={seed})");
    seed
}

/// Panics, naming the missing modules and the command that installs them, unless `python3` can
/// import every module of `modules`.
pub fn require_python_modules(modules: &[&str]) {
    let mut missing = Vec::new();
    for module in modules {
        let ok = std::process::Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false);
        if !ok {
            missing.push(*module);
        }
    }
    assert!(
        missing.is_empty(),
        "python3 cannot import {missing:?} (or python3 is missing): run scripts/test.sh, which \
         installs pyarrow, moto[server] and boto3"
    );
}

/// Panics with the install hint unless Debian's Prometheus is installed.
pub fn require_prometheus() -> PathBuf {
    let path = PathBuf::from("/usr/bin/prometheus");
    assert!(
        path.exists(),
        "/usr/bin/prometheus is missing: run scripts/test.sh, which installs Debian's prometheus \
         package (2.42)"
    );
    path
}

/// Panics with the install hint unless Debian's Prometheus 3.x is unpacked where
/// `scripts/install-prometheus3.sh` puts it (`$VIGIL_TEST_TOOLS`, default
/// `~/.cache/vigil/test-tools`, then `prometheus3/prometheus`). It is the PromQL reference: Vigil
/// follows 3.x semantics, which differ from 2.42's in places.
pub fn require_prometheus3() -> PathBuf {
    let tools = match std::env::var_os("VIGIL_TEST_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/vigil/test-tools"),
    };
    let path = tools.join("prometheus3/prometheus");
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh, which unpacks Debian's prometheus 3.x package \
         (scripts/install-prometheus3.sh)",
        path.display()
    );
    path
}

/// Every file under `dir` with its size, sorted by path (empty if `dir` is missing).
pub fn walk_files(dir: &std::path::Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => stack.push(entry.path()),
                Ok(meta) => found.push((entry.path(), meta.len())),
                Err(_) => {}
            }
        }
    }
    found.sort();
    found
}

/// The paths of all files called `name` under `dir` (recursively; empty if `dir` is missing).
pub fn find_files(dir: &std::path::Path, name: &str) -> Vec<PathBuf> {
    walk_files(dir)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| path.file_name().is_some_and(|n| n == name))
        .collect()
}
