//! Reading Vigil's blocks back from object storage with an outside reader (pyarrow, through
//! `tests/tools/read_blocks.py`), checking each block's invariants, and the moto S3 server.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::data::{selector, Dataset, LabelSet};
use super::http::Client;
use super::process::Proc;
use super::{free_port, tools_dir, wait_for};

/// Runs `python3 <args>` with extra `env`, bounded by `timeout`; returns stdout, panics with
/// stderr if it fails.
pub fn run_python(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> String {
    let mut command = Command::new("python3");
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|err| panic!("spawn python3 {args:?}: {err} (run scripts/test.sh)"));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait python3") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("python3 {args:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out_reader.join().expect("stdout reader");
    let err = err_reader.join().expect("stderr reader");
    assert!(
        status.success(),
        "python3 {args:?} failed with {status}:\n{}",
        String::from_utf8_lossy(&err)
    );
    String::from_utf8(out).expect("python output is UTF-8")
}

/// One complete block as read by pyarrow.
#[derive(Debug, Clone)]
pub struct Block {
    pub tenant: String,
    pub ulid: String,
    pub files: Vec<String>,
    pub meta: serde_json::Value,
    pub series_schema: BTreeMap<String, String>,
    pub samples_schema: BTreeMap<String, String>,
    /// (series_id, metric_name, labels JSON)
    pub series: Vec<(u64, String, String)>,
    /// (series_id, timestamp_ms, value bits)
    pub samples: Vec<(u64, i64, u64)>,
}

/// Everything found under an object-store root.
#[derive(Debug, Clone, Default)]
pub struct Blocks {
    pub blocks: Vec<Block>,
    /// Block directories without `meta.json` ("tenant/ulid: files").
    pub incomplete: Vec<String>,
    /// Objects outside the block layout.
    pub other: Vec<String>,
}

impl Blocks {
    /// Reads the blocks in a local object-store directory.
    pub fn read_local(root: &Path) -> Blocks {
        let script = tools_dir().join("read_blocks.py");
        let out = run_python(
            &[
                script.to_str().expect("utf-8 path"),
                "local",
                root.to_str().expect("utf-8 path"),
            ],
            &[],
            Duration::from_secs(120),
        );
        Blocks::parse(&out)
    }

    /// Reads the blocks in an S3 bucket under `prefix`.
    pub fn read_s3(s3: &MotoS3, bucket: &str, prefix: &str) -> Blocks {
        let script = tools_dir().join("read_blocks.py");
        let endpoint = s3.endpoint();
        let out = run_python(
            &[
                script.to_str().expect("utf-8 path"),
                "s3",
                "--endpoint",
                &endpoint,
                "--bucket",
                bucket,
                "--prefix",
                prefix,
            ],
            &S3_ENV,
            Duration::from_secs(120),
        );
        Blocks::parse(&out)
    }

    fn parse(out: &str) -> Blocks {
        let json: serde_json::Value = serde_json::from_str(out)
            .unwrap_or_else(|err| panic!("read_blocks.py printed no JSON ({err}): {out}"));
        let strings = |value: &serde_json::Value| -> Vec<String> {
            value
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|item| item.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        let schema = |value: &serde_json::Value| -> BTreeMap<String, String> {
            value
                .as_object()
                .map(|map| {
                    map.iter()
                        .map(|(name, ty)| (name.clone(), ty.as_str().unwrap_or_default().into()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut blocks = Vec::new();
        for block in json["blocks"].as_array().expect("blocks list") {
            let series = block["series"]
                .as_array()
                .expect("series rows")
                .iter()
                .map(|row| {
                    (
                        row[0].as_u64().unwrap_or_else(|| panic!("series_id {row}")),
                        row[1]
                            .as_str()
                            .unwrap_or_else(|| panic!("metric_name {row}"))
                            .into(),
                        row[2]
                            .as_str()
                            .unwrap_or_else(|| panic!("labels {row}"))
                            .into(),
                    )
                })
                .collect();
            let samples = block["samples"]
                .as_array()
                .expect("sample rows")
                .iter()
                .map(|row| {
                    let bits = row[2].as_str().unwrap_or_else(|| panic!("value {row}"));
                    (
                        row[0].as_u64().unwrap_or_else(|| panic!("series_id {row}")),
                        row[1]
                            .as_i64()
                            .unwrap_or_else(|| panic!("timestamp_ms {row}")),
                        u64::from_str_radix(bits, 16).unwrap_or_else(|_| panic!("bits {row}")),
                    )
                })
                .collect();
            blocks.push(Block {
                tenant: block["tenant"].as_str().expect("tenant").into(),
                ulid: block["ulid"].as_str().expect("ulid").into(),
                files: strings(&block["files"]),
                meta: block["meta"].clone(),
                series_schema: schema(&block["series_schema"]),
                samples_schema: schema(&block["samples_schema"]),
                series,
                samples,
            });
        }
        let incomplete = json["incomplete"]
            .as_array()
            .expect("incomplete list")
            .iter()
            .map(|item| format!("{}/{}: {}", item["tenant"], item["ulid"], item["files"]))
            .collect();
        Blocks {
            blocks,
            incomplete,
            other: strings(&json["other"]),
        }
    }

    /// Checks every block's invariants (meta fields and counts, column types, sort order, ids,
    /// time range, `index.bin` present, no sample in two blocks) and returns the union of their
    /// samples.
    pub fn check(&self) -> Dataset {
        let mut union = Dataset::default();
        let mut seen: BTreeMap<(String, LabelSet, i64), String> = BTreeMap::new();
        for block in &self.blocks {
            let name = format!("block {}/{}", block.tenant, block.ulid);
            let meta = &block.meta;
            assert_eq!(meta["version"], 1, "{name}: meta.json version: {meta}");
            assert_eq!(
                meta["ulid"],
                block.ulid.as_str(),
                "{name}: meta.json ulid: {meta}"
            );
            assert_eq!(
                meta["tenant"],
                block.tenant.as_str(),
                "{name}: meta.json tenant: {meta}"
            );
            assert_eq!(meta["kind"], "metrics", "{name}: meta.json kind: {meta}");
            for file in [
                "series.parquet",
                "samples.parquet",
                "index.bin",
                "meta.json",
            ] {
                assert!(
                    block.files.iter().any(|have| have == file),
                    "{name}: no {file} (files: {:?})",
                    block.files
                );
            }
            let expect_schema = |schema: &BTreeMap<String, String>, want: &[(&str, &str)]| {
                for (column, ty) in want {
                    assert_eq!(
                        schema.get(*column).map(String::as_str),
                        Some(*ty),
                        "{name}: column {column} should be {ty}; schema {schema:?}"
                    );
                }
            };
            expect_schema(
                &block.series_schema,
                &[
                    ("series_id", "uint32"),
                    ("metric_name", "string"),
                    ("labels", "string"),
                ],
            );
            expect_schema(
                &block.samples_schema,
                &[
                    ("series_id", "uint32"),
                    ("timestamp_ms", "int64"),
                    ("value", "double"),
                ],
            );
            assert_eq!(
                meta["num_series"].as_u64(),
                Some(block.series.len() as u64),
                "{name}: meta.json num_series vs rows of series.parquet: {meta}"
            );
            assert_eq!(
                meta["num_samples"].as_u64(),
                Some(block.samples.len() as u64),
                "{name}: meta.json num_samples vs rows of samples.parquet: {meta}"
            );
            let min_time = meta["min_time_ms"].as_i64().expect("meta.json min_time_ms");
            let max_time = meta["max_time_ms"].as_i64().expect("meta.json max_time_ms");

            let mut by_id: BTreeMap<u64, LabelSet> = BTreeMap::new();
            for (id, metric_name, labels_json) in &block.series {
                let parsed: serde_json::Value = serde_json::from_str(labels_json)
                    .unwrap_or_else(|err| panic!("{name}: labels of series {id} not JSON: {err}"));
                let object = parsed
                    .as_object()
                    .unwrap_or_else(|| panic!("{name}: labels of series {id} not an object"));
                let mut set: LabelSet = object
                    .iter()
                    .map(|(label, value)| {
                        let value = value.as_str().unwrap_or_else(|| {
                            panic!("{name}: label {label} of series {id} not a string")
                        });
                        (label.clone(), value.to_string())
                    })
                    .collect();
                set.sort();
                let name_label = set.iter().find(|(label, _)| label == "__name__");
                assert_eq!(
                    name_label.map(|(_, value)| value.as_str()),
                    Some(metric_name.as_str()),
                    "{name}: series {id}: metric_name column vs __name__ in labels {labels_json}"
                );
                assert!(
                    by_id.insert(*id, set).is_none(),
                    "{name}: series_id {id} twice in series.parquet"
                );
            }
            let distinct: BTreeSet<&LabelSet> = by_id.values().collect();
            assert_eq!(
                distinct.len(),
                by_id.len(),
                "{name}: one label set under two series ids"
            );

            let mut previous: Option<(u64, i64)> = None;
            for &(id, timestamp, bits) in &block.samples {
                if let Some(previous) = previous {
                    assert!(
                        (id, timestamp) > previous,
                        "{name}: samples not sorted by (series_id, timestamp_ms): {previous:?} then {:?}",
                        (id, timestamp)
                    );
                }
                previous = Some((id, timestamp));
                let set = by_id
                    .get(&id)
                    .unwrap_or_else(|| panic!("{name}: sample of unknown series_id {id}"));
                assert!(
                    (min_time..=max_time).contains(&timestamp),
                    "{name}: sample {} @{timestamp} outside meta.json [{min_time}, {max_time}]",
                    selector(set)
                );
                if let Some(other) =
                    seen.insert((block.tenant.clone(), set.clone(), timestamp), name.clone())
                {
                    panic!(
                        "sample {} @{timestamp} of tenant {} is in two blocks: {other} and {name}",
                        selector(set),
                        block.tenant
                    );
                }
                union.insert(&block.tenant, set, timestamp, bits);
            }
            if let (Some(first), Some(last)) = (
                block.samples.iter().map(|sample| sample.1).min(),
                block.samples.iter().map(|sample| sample.1).max(),
            ) {
                assert_eq!(
                    min_time, first,
                    "{name}: meta.json min_time_ms vs the samples"
                );
                assert!(
                    max_time == last || max_time == last + 1,
                    "{name}: meta.json max_time_ms {max_time} vs last sample {last}"
                );
            }
        }
        union
    }
}

/// With block duration `d_ms`, the aligned ranges in `[min_ts, max_ts]` whose end lies at least
/// `d_ms / 2` before `max_ts` must be cut while running (strictly before, to be safe about `>=`).
pub fn ranges_due(min_ts: i64, max_ts: i64, d_ms: i64) -> usize {
    let first = min_ts.div_euclid(d_ms);
    (first..)
        .map(|k| (k + 1) * d_ms)
        .take_while(|end| end + d_ms / 2 < max_ts)
        .count()
}

/// The credentials and region the tests use with moto (moto accepts any).
pub const S3_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
];

/// A moto S3 server on a loopback port (`python3 -m moto.server`), killed on drop.
pub struct MotoS3 {
    pub proc: Proc,
    pub port: u16,
}

impl MotoS3 {
    /// Starts the server and waits (bounded) until it answers HTTP.
    pub fn start(dir: &Path) -> MotoS3 {
        super::require_python_modules(&["moto", "boto3", "flask", "flask_cors", "pyarrow"]);
        let port = free_port();
        let mut command = Command::new("python3");
        command
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .current_dir(dir);
        for (name, value) in S3_ENV {
            command.env(name, value);
        }
        let mut proc = Proc::spawn("moto S3 server", command, &dir.join("moto.log"));
        let client = Client::with_timeout(Duration::from_secs(5));
        let url = format!("http://127.0.0.1:{port}/");
        wait_for(
            "the moto S3 server to answer",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                if let Some(status) = proc.try_exit() {
                    panic!("moto server exited with {status}");
                }
                client.get(&url, None).map(|_| ())
            },
        );
        MotoS3 { proc, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket with boto3.
    pub fn create_bucket(&self, bucket: &str) {
        let script = tools_dir().join("read_blocks.py");
        run_python(
            &[
                script.to_str().expect("utf-8 path"),
                "create-bucket",
                "--endpoint",
                &self.endpoint(),
                "--bucket",
                bucket,
            ],
            &S3_ENV,
            Duration::from_secs(60),
        );
    }

    /// The `vigil serve` flags and environment for this server, with blocks under
    /// `s3://bucket/prefix`.
    pub fn vigil_opts(
        &self,
        bucket: &str,
        prefix: &str,
        extra: &[&str],
    ) -> super::process::VigilOpts {
        let mut args = vec![
            "--object-store".to_string(),
            format!("s3://{bucket}/{prefix}"),
            "--s3-endpoint".to_string(),
            self.endpoint(),
            "--s3-region".to_string(),
            "us-east-1".to_string(),
            "--s3-allow-http".to_string(),
            "--s3-path-style".to_string(),
        ];
        args.extend(extra.iter().map(|arg| arg.to_string()));
        let mut opts = super::process::VigilOpts {
            args,
            env: Vec::new(),
        };
        for (name, value) in S3_ENV {
            opts = opts.env(name, value);
        }
        opts
    }
}
