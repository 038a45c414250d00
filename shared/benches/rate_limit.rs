//! GCRA cost: the pure decision, and one `check` against a memory store holding 10 000 keys.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use shared::rate_limit::{MemoryGcraStore, Quota, check, gcra};

fn pure_gcra(c: &mut Criterion) {
    let quota = Quota::new(600, 60_000);
    c.bench_function("gcra (pure)", |b| {
        let mut now = 1_700_000_000_000u64;
        b.iter(|| {
            now += 7;
            black_box(gcra(black_box(Some(now * 1000 + 30_000_000)), &quota, now))
        })
    });
}

fn check_memory_store(c: &mut Criterion) {
    let quota = Quota::new(600, 60_000);
    let start = 1_700_000_000_000u64;
    let mut store = MemoryGcraStore::with_capacity(10_000);
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("rl:principal:principal:user-{i}"))
        .collect();
    for key in &keys {
        check(&mut store, key, &quota, start);
    }
    c.bench_function("check (memory store, 10 000 keys)", |b| {
        let mut i = 0usize;
        let mut now = start;
        b.iter(|| {
            i = (i + 1) % keys.len();
            now += 1;
            black_box(check(&mut store, &keys[i], &quota, now))
        })
    });
}

criterion_group!(benches, pure_gcra, check_memory_store);
criterion_main!(benches);
