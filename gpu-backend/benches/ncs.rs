//! NCS throughput: exact and batched mode on seeded Gaussian mixtures at d = 16, 128 and 1000,
//! single-threaded (candle runs on one thread: this sets `RAYON_NUM_THREADS=1`).

use std::time::Instant;

use gpu_backend::ncs::synthetic::{MixtureSpec, gaussian_mixture};
use gpu_backend::ncs::{AlgorithmParams, NcsStream};

/// Seconds each measurement should take, roughly.
const TARGET_SECONDS: f64 = 1.5;
/// True clusters in every bench stream.
const CLUSTERS: usize = 8;

fn exact_rate(dim: usize, points: usize) -> (f64, usize) {
    let m = gaussian_mixture(&MixtureSpec::new(CLUSTERS, dim, points, 42));
    let mut stream = NcsStream::new(AlgorithmParams::default()).expect("default params are valid");
    let start = Instant::now();
    for p in m.iter() {
        std::hint::black_box(stream.process(p).expect("synthetic points are valid"));
    }
    (points as f64 / start.elapsed().as_secs_f64(), stream.stats().clusters)
}

/// Points that take about [`TARGET_SECONDS`] at the rate a short probe shows.
fn sized(rate_of: impl Fn(usize) -> f64) -> usize {
    let probe = 20_000;
    let rate = rate_of(probe);
    ((rate * TARGET_SECONDS) as usize).max(probe)
}

fn main() {
    for dim in [16, 128, 1000] {
        let n = sized(|n| exact_rate(dim, n).0);
        let (rate, clusters) = exact_rate(dim, n);
        println!("d={dim} exact: {rate:.0} points/s ({n} points, {clusters} clusters)");
    }
}
