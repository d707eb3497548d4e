//! Decoding XOR chunks, the first step of every PromQL query over the head: 1,000 full chunks
//! (120 samples each) of node-exporter-like series, scraped every 15 s: counters growing by
//! uneven amounts, gauges wandering, and a few constant series.
//!
//! `cargo bench -p vigil-head --bench xor_chunk`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vigil_head::XorChunk;
use vigil_model::Sample;

const CHUNKS: usize = 1000;

fn chunks() -> Vec<XorChunk> {
    let mut rng = fastrand::Rng::with_seed(42);
    (0..CHUNKS)
        .map(|n| {
            let mut chunk = XorChunk::default();
            let mut ts = 1_700_000_000_000 + rng.i64(0..15_000);
            let mut value: f64 = rng.f64() * 1e6;
            for _ in 0..XorChunk::MAX_SAMPLES {
                chunk.append(Sample::new(ts, value));
                ts += 15_000;
                value = match n % 4 {
                    // A counter of seconds with centisecond resolution.
                    0 | 1 => value + (rng.f64() * 15.0 * 100.0).round() / 100.0,
                    // A gauge.
                    2 => (value + rng.f64() * 1000.0 - 500.0).max(0.0),
                    // A constant.
                    _ => value,
                };
            }
            chunk
        })
        .collect()
}

fn decode(c: &mut Criterion) {
    let chunks = chunks();
    let samples: usize = chunks.iter().map(XorChunk::len).sum();
    let mut group = c.benchmark_group("xor_chunk");
    group.throughput(Throughput::Elements(samples as u64));
    let mut out = Vec::with_capacity(samples);
    group.bench_function("decode_into", |b| {
        b.iter(|| {
            out.clear();
            for chunk in &chunks {
                chunk.decode_into(&mut out);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
