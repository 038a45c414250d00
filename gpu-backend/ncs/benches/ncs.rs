//! NCS throughput: exact and batched mode on seeded Gaussian mixtures at d = 16, 128 and 1000,
//! single-threaded: this sets `RAYON_NUM_THREADS=1` so candle's matrix products use one thread.
//! Each stream mixes `NCS_BENCH_CLUSTERS` (default 8 and 30) true clusters; `NCS_BENCH_DIMS=128`
//! measures only the dimensions listed; `NCS_BENCH_CHUNKS=64,1024` also measures batched mode at
//! other chunk sizes. Both modes run on the same stream, sized to take about 1.5 s in exact mode.

use std::time::Instant;

use candle_core::Device;
use ncs::batched::DEFAULT_CHUNK;
use ncs::synthetic::{Mixture, MixtureSpec, gaussian_mixture};
use ncs::{AlgorithmParams, BatchedNcs, NcsStream, adjusted_rand_index};

/// Seconds each measurement should take, roughly.
const TARGET_SECONDS: f64 = 1.5;

/// CPU seconds this thread has run (user + system), from `/proc/thread-self/stat`; 0 where that
/// is not readable. On a shared machine wall-clock rates also count time spent waiting for a core.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesized command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// Points per second of wall-clock and of CPU time over a run of `points` that began at
/// `start` / `cpu_start`.
fn rates(points: usize, start: Instant, cpu_start: f64) -> (f64, f64) {
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let n = points as f64;
    (n / wall, if cpu > 0.0 { n / cpu } else { f64::NAN })
}

fn stream() -> NcsStream {
    NcsStream::new(AlgorithmParams::default()).expect("default params are valid")
}

fn exact(m: &Mixture) -> ((f64, f64), Vec<i64>, usize) {
    let mut s = stream();
    let mut labels = Vec::with_capacity(m.len());
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    for p in m.iter() {
        labels.push(s.process(p).expect("synthetic points are valid").label());
    }
    let rates = rates(m.len(), start, cpu_start);
    (rates, labels, s.stats().clusters)
}

fn batched(m: &Mixture, chunk: usize) -> ((f64, f64), Vec<i64>, f64) {
    let points: Vec<&[f32]> = m.iter().collect();
    let mut b = BatchedNcs::new(stream(), Device::Cpu).with_chunk_size(chunk);
    let mut out = Vec::with_capacity(m.len());
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    b.process_batch(&points, &mut out)
        .expect("synthetic points are valid");
    let rates = rates(m.len(), start, cpu_start);
    let labels = out.iter().map(|r| r.label()).collect();
    (rates, labels, b.recompute_ratio())
}

fn list(var: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(var) {
        Ok(list) => list
            .split(',')
            .filter_map(|v| v.trim().parse().ok())
            .collect(),
        Err(_) => default.to_vec(),
    }
}

fn main() {
    // SAFETY: set before any other thread exists; candle reads it for its thread count.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    let mut chunks = vec![DEFAULT_CHUNK];
    chunks.extend(list("NCS_BENCH_CHUNKS", &[]));
    let clusters = list("NCS_BENCH_CLUSTERS", &[8, 30]);
    for &k in &clusters {
        for dim in list("NCS_BENCH_DIMS", &[16, 128, 1000]) {
            let probe = gaussian_mixture(&MixtureSpec::new(k, dim, 20_000, 42));
            let points = ((exact(&probe).0.0 * TARGET_SECONDS) as usize).max(20_000);
            let m = gaussian_mixture(&MixtureSpec::new(k, dim, points, 42));
            let ((rate, cpu_rate), exact_labels, found) = exact(&m);
            println!(
                "d={dim} exact: {rate:.0} points/s (k={k}: {found} clusters found, {points} \
                 points; per CPU second: {cpu_rate:.0})"
            );
            for &chunk in &chunks {
                let ((rate, cpu_rate), labels, ratio) = batched(&m, chunk);
                let ari = adjusted_rand_index(&exact_labels, &labels).unwrap_or(f64::NAN);
                println!(
                    "d={dim} batched: {rate:.0} points/s (k={k}: chunk {chunk}, {:.1}% of pairs \
                     recomputed, ARI vs exact {ari:.4}; per CPU second: {cpu_rate:.0})",
                    ratio * 100.0
                );
            }
        }
    }
}
