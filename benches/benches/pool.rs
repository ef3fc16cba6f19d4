//! Benchmarks for sarlink-pool (placeholder until the crate lands).

use criterion::{Criterion, criterion_group, criterion_main};

fn placeholder(c: &mut Criterion) {
    c.bench_function("pool/placeholder", |b| b.iter(|| std::hint::black_box(1u64) + 1));
}

criterion_group!(benches, placeholder);
criterion_main!(benches);
