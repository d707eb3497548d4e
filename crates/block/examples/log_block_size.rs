//! Size and speed of log blocks on the benchmark corpus.
//!
//! ```text
//! python3 /work/shared/data/make_log_corpus.py /work/shared/data/loghub /tmp/logcorpus 1795000000
//! cargo run --release -p vigil-block --example log_block_size -- /tmp/logcorpus \
//!     [--codecs template,3,9] [--rg-bytes N] [--rg-rows N] [--key-page-rows N] \
//!     [--line-page-rows N] [--out DIR] [--repeat N]
//! ```
//!
//! Reads `corpus.tsv` (`ts_ns \t stream_idx \t line`) and `streams.json`, groups the lines by
//! stream, and encodes (a) the whole corpus as one block and (b) three blocks of 2 hours each
//! (cut at the first timestamp + k·2h), once per line codec given (`template`, the default, or a
//! stock zstd level). Prints bytes per line, bytes
//! per raw line byte, encode speed in MB/s of raw line text (one thread; by wall time and by the
//! thread's on-CPU time, which other work on the machine does not skew; with `--repeat N` the
//! fastest of N encodes), the time
//! `read_log_entries` takes to decode everything, and where the bytes of `entries.parquet` go.
//! With `--out DIR` the block files of the last codec are written to `DIR/a/` and `DIR/b{0,1,2}/`
//! (e.g. to check them with pyarrow).

use std::collections::BTreeMap;
use std::error::Error;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parquet::file::reader::{FileReader, SerializedFileReader};
use roaring::RoaringBitmap;
use vigil_block::logs::{
    encode_log_block_with, read_log_entries, LineCompression, LogBlockOptions, ENTRIES_FILE,
};
use vigil_block::EncodedBlock;
use vigil_model::{Label, Labels, LogEntry};

type Res<T> = Result<T, Box<dyn Error>>;

const TWO_HOURS_NS: i64 = 2 * 3600 * 1_000_000_000;

struct Args {
    dir: String,
    codecs: Vec<LineCompression>,
    options: LogBlockOptions,
    out: Option<String>,
    repeat: usize,
}

fn parse_args() -> Res<Args> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut options = LogBlockOptions::default();
    let mut codecs = vec![options.line_compression];
    let mut out = None;
    let mut repeat = 1;
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--codecs" => {
                codecs = value()?
                    .split(',')
                    .map(|c| match c {
                        "template" => Ok(LineCompression::Template),
                        level => level.parse().map(LineCompression::Zstd),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--rg-bytes" => options.row_group_bytes = value()?.parse()?,
            "--rg-rows" => options.row_group_rows = value()?.parse()?,
            "--key-page-rows" => options.key_page_rows = value()?.parse()?,
            "--line-page-rows" => options.line_page_rows = value()?.parse()?,
            "--out" => out = Some(value()?),
            "--repeat" => repeat = value()?.parse()?,
            _ if dir.is_none() && !a.starts_with("--") => dir = Some(a),
            _ => return Err(format!("unexpected argument {a}").into()),
        }
    }
    Ok(Args {
        dir: dir.ok_or("usage: log_block_size CORPUS_DIR [options]")?,
        codecs,
        options,
        out,
        repeat,
    })
}

/// Streams sorted by labels, each with its entries sorted by time.
fn load(dir: &str) -> Res<Vec<(Labels, Vec<LogEntry>)>> {
    let streams: Vec<BTreeMap<String, String>> =
        serde_json::from_slice(&std::fs::read(format!("{dir}/streams.json"))?)?;
    let mut entries: Vec<Vec<LogEntry>> = vec![Vec::new(); streams.len()];
    let tsv = std::fs::read_to_string(format!("{dir}/corpus.tsv"))?;
    for row in tsv.lines() {
        let mut parts = row.splitn(3, '\t');
        let (Some(ts), Some(idx), Some(line)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("bad corpus row {row:?}").into());
        };
        let idx: usize = idx.parse()?;
        entries
            .get_mut(idx)
            .ok_or("stream index out of range")?
            .push(LogEntry {
                timestamp_ns: ts.parse()?,
                line: line.to_string(),
                structured_metadata: Vec::new(),
            });
    }
    let mut out: Vec<(Labels, Vec<LogEntry>)> = streams
        .into_iter()
        .zip(entries)
        .map(|(labels, mut entries)| {
            entries.sort_by_key(|e| e.timestamp_ns);
            let labels = labels.into_iter().map(|(k, v)| Label::new(k, v)).collect();
            (Labels::from_unsorted(labels), entries)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

struct Measured {
    blocks: Vec<EncodedBlock>,
    encode: Duration,
    /// On-CPU time of the encoding thread (wall time counts the other work on the machine).
    encode_cpu: Duration,
    decode: Duration,
}

/// Time this thread has spent on a CPU (Linux), for speeds that do not depend on the load.
fn thread_cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// Encodes each time window as one block (`repeat` times, keeping the fastest encode of each),
/// then decodes every entry back and checks it.
fn run(
    streams: &[(Labels, Vec<LogEntry>)],
    windows: &[(i64, i64)],
    options: &LogBlockOptions,
    repeat: usize,
) -> Res<Measured> {
    let mut m = Measured {
        blocks: Vec::new(),
        encode: Duration::ZERO,
        encode_cpu: Duration::ZERO,
        decode: Duration::ZERO,
    };
    for &(from, to) in windows {
        let parts: Vec<(&Labels, &[LogEntry])> = streams
            .iter()
            .map(|(labels, entries)| {
                let lo = entries.partition_point(|e| e.timestamp_ns < from);
                let hi = entries.partition_point(|e| e.timestamp_ns < to);
                (labels, &entries[lo..hi])
            })
            .filter(|(_, e)| !e.is_empty())
            .collect();
        let (mut wall, mut on_cpu, mut encoded) = (Duration::MAX, Duration::MAX, None);
        for _ in 0..repeat.max(1) {
            let (start, cpu) = (Instant::now(), thread_cpu_time());
            let block = encode_log_block_with("bench", parts.iter().copied(), options)?;
            wall = wall.min(start.elapsed());
            on_cpu = on_cpu.min(thread_cpu_time().saturating_sub(cpu));
            encoded = Some(block);
        }
        let block = encoded.ok_or("nothing encoded")?;
        m.encode += wall;
        m.encode_cpu += on_cpu;
        let entries = file(&block, ENTRIES_FILE)?;
        let all: RoaringBitmap = (0..parts.len() as u32).collect();
        let start = Instant::now();
        let got = read_log_entries(entries, &all, i64::MIN, i64::MAX)?;
        m.decode += start.elapsed();
        for (id, (_, expected)) in parts.iter().enumerate() {
            if got.get(&(id as u32)).map(Vec::as_slice) != Some(*expected) {
                return Err(format!("stream {id} did not round-trip").into());
            }
        }
        m.blocks.push(block);
    }
    Ok(m)
}

fn file(block: &EncodedBlock, name: &str) -> Res<Bytes> {
    Ok(block
        .files
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| format!("no {name}"))?
        .1
        .clone())
}

fn total_bytes(blocks: &[EncodedBlock]) -> u64 {
    blocks
        .iter()
        .flat_map(|b| b.files.iter())
        .map(|(_, f)| f.len() as u64)
        .sum()
}

/// Compressed bytes per column of `entries.parquet`, and the number of row groups.
fn column_bytes(blocks: &[EncodedBlock]) -> Res<(BTreeMap<String, u64>, usize)> {
    let mut by_column = BTreeMap::new();
    let mut row_groups = 0;
    for block in blocks {
        let reader = SerializedFileReader::new(file(block, ENTRIES_FILE)?)?;
        for rg in reader.metadata().row_groups() {
            row_groups += 1;
            for c in rg.columns() {
                *by_column.entry(c.column_path().string()).or_default() +=
                    c.compressed_size() as u64;
            }
        }
    }
    Ok((by_column, row_groups))
}

fn main() -> Res<()> {
    let args = parse_args()?;
    let start = Instant::now();
    let streams = load(&args.dir)?;
    let lines: u64 = streams.iter().map(|(_, e)| e.len() as u64).sum();
    let raw: u64 = streams
        .iter()
        .flat_map(|(_, e)| e.iter())
        .map(|e| e.line.len() as u64)
        .sum();
    let (min_t, max_t) = streams
        .iter()
        .flat_map(|(_, e)| e.iter())
        .fold((i64::MAX, i64::MIN), |(lo, hi), e| {
            (lo.min(e.timestamp_ns), hi.max(e.timestamp_ns))
        });
    println!(
        "corpus: {lines} lines, {} streams, {raw} raw line bytes ({:.1} B/line), loaded in {:.1?}",
        streams.len(),
        raw as f64 / lines as f64,
        start.elapsed()
    );
    println!("options: {:?}", args.options);
    let whole = [(min_t, max_t + 1)];
    let two_hours: Vec<(i64, i64)> = (0..3)
        .map(|k| (min_t + k * TWO_HOURS_NS, min_t + (k + 1) * TWO_HOURS_NS))
        .map(|(from, to)| (from, if to > max_t { max_t + 1 } else { to }))
        .collect();
    println!(
        "{:>6} {:>4} {:>10} {:>6} {:>7} {:>8} {:>8} {:>8}  entries.parquet by column",
        "codec", "case", "bytes", "B/line", "B/rawB", "enc MB/s", "cpu MB/s", "decode"
    );
    for &codec in &args.codecs {
        let mut options = args.options.clone();
        options.line_compression = codec;
        let name = match codec {
            LineCompression::Template => "tmpl".to_string(),
            LineCompression::Zstd(level) => format!("zstd{level}"),
        };
        for (case, windows) in [("a", &whole[..]), ("b", &two_hours[..])] {
            let m = run(&streams, windows, &options, args.repeat)?;
            let bytes = total_bytes(&m.blocks);
            let (columns, row_groups) = column_bytes(&m.blocks)?;
            let entries_bytes: u64 = m
                .blocks
                .iter()
                .map(|b| file(b, ENTRIES_FILE).map(|f| f.len() as u64))
                .sum::<Res<u64>>()?;
            let columns: Vec<String> = columns
                .iter()
                .map(|(c, b)| format!("{c}={:.2}", *b as f64 / lines as f64))
                .chain([format!(
                    "other_files={:.3}",
                    (bytes - entries_bytes) as f64 / lines as f64
                )])
                .collect();
            println!(
                "{name:>6} {case:>4} {bytes:>10} {:>6.2} {:>7.4} {:>8.1} {:>8.1} {:>8.1?}  {} B/line, {row_groups} row groups",
                bytes as f64 / lines as f64,
                bytes as f64 / raw as f64,
                raw as f64 / 1e6 / m.encode.as_secs_f64(),
                raw as f64 / 1e6 / m.encode_cpu.as_secs_f64(),
                m.decode,
                columns.join(" "),
            );
            if let Some(out) = &args.out {
                write_out(out, case, &m.blocks)?;
            }
        }
    }
    Ok(())
}

fn write_out(out: &str, case: &str, blocks: &[EncodedBlock]) -> Res<()> {
    for (i, block) in blocks.iter().enumerate() {
        let dir = if blocks.len() == 1 {
            format!("{out}/{case}")
        } else {
            format!("{out}/{case}{i}")
        };
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in &block.files {
            std::fs::write(format!("{dir}/{name}"), bytes)?;
        }
    }
    Ok(())
}
