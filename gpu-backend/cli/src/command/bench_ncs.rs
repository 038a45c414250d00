//! `h200 bench ncs`: the NCS kernels side by side in one run. For each cluster count and
//! dimension one seeded Gaussian mixture is clustered by exact mode on the CPU (the reference),
//! by batched mode on the CPU and by batched mode on `--device` at each chunk size; every batched
//! run is compared with exact mode by the adjusted Rand index of their labels (1.0 means the same
//! partition). The many-streams round runs `--streams` streams at once, one thread each, sharing
//! the device.

use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use ncs::synthetic::{Mixture, MixtureSpec, gaussian_mixture};
use ncs::{AlgorithmParams, BatchedNcs, NcsStream, adjusted_rand_index};

use crate::cli::BenchNcsArgs;

/// Seed of every mixture, so runs on different machines cluster the same points.
const SEED: u64 = 42;

/// Runs the benchmark and prints one line per measurement.
pub fn run(args: &BenchNcsArgs) -> anyhow::Result<()> {
    let device = crate::device::choose(args.device)?;
    let device_name = kernel::device_name(&device);
    let chunks: Vec<usize> = args.chunks.iter().copied().filter(|&c| c > 0).collect();
    anyhow::ensure!(
        !chunks.is_empty(),
        "--chunks needs at least one size above 0"
    );
    anyhow::ensure!(args.points > 0, "--points must be above 0");
    println!(
        "NCS kernels: exact mode on the CPU against batched mode on the CPU and on {device_name}; \
         {} points per stream, mixture seed {SEED}, {} CPU threads",
        args.points,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut devices = vec![Device::Cpu];
    if !matches!(device, Device::Cpu) {
        devices.push(device.clone());
    }
    for &k in &args.clusters {
        for &dim in &args.dims {
            let mixture = gaussian_mixture(&MixtureSpec::new(k, dim, args.points, SEED));
            let (exact_rate, exact_labels, found) = exact(&mixture)?;
            println!("d={dim} k={k} exact cpu: {exact_rate:.0} points/s ({found} clusters found)");
            for on in &devices {
                for &chunk in &chunks {
                    // The first product on a GPU loads its kernels: warm up off the clock.
                    batched(&mixture, on, chunk, Some(chunk.min(mixture.len())))?;
                    let (rate, labels) = batched(&mixture, on, chunk, None)?;
                    let ari = adjusted_rand_index(&exact_labels, &labels).unwrap_or(f64::NAN);
                    println!(
                        "d={dim} k={k} batched {} chunk {chunk}: {rate:.0} points/s ({:.2}x exact), \
                         ARI vs exact {ari:.4}",
                        kernel::device_name(on),
                        rate / exact_rate
                    );
                }
            }
            if args.streams > 0 {
                many_streams(&mixture, args.streams, &devices, &chunks, dim, k)?;
            }
        }
    }
    Ok(())
}

fn stream() -> anyhow::Result<NcsStream> {
    NcsStream::new(AlgorithmParams::default()).context("the default NCS parameters")
}

/// Exact mode over the mixture: points/s, labels and clusters at the end.
fn exact(mixture: &Mixture) -> anyhow::Result<(f64, Vec<i64>, usize)> {
    let mut s = stream()?;
    let mut labels = Vec::with_capacity(mixture.len());
    let started = Instant::now();
    for point in mixture.iter() {
        labels.push(s.process(point)?.label());
    }
    let rate = mixture.len() as f64 / started.elapsed().as_secs_f64();
    Ok((rate, labels, s.stats().clusters))
}

/// Batched mode over the mixture (or its first `limit` points): points/s and labels.
fn batched(
    mixture: &Mixture,
    device: &Device,
    chunk: usize,
    limit: Option<usize>,
) -> anyhow::Result<(f64, Vec<i64>)> {
    let points: Vec<&[f32]> = mixture.iter().take(limit.unwrap_or(usize::MAX)).collect();
    let mut b = BatchedNcs::new(stream()?, device.clone()).with_chunk_size(chunk);
    let mut out = Vec::with_capacity(points.len());
    let started = Instant::now();
    b.process_batch(&points, &mut out)?;
    let rate = points.len() as f64 / started.elapsed().as_secs_f64();
    Ok((rate, out.iter().map(|r| r.label()).collect()))
}

/// `streams` streams at once, each a slice of the mixture on its own thread: total points/s of
/// exact mode on the CPU, then of batched mode on each device and chunk size, with the lowest
/// ARI of any stream against its exact run.
fn many_streams(
    mixture: &Mixture,
    streams: usize,
    devices: &[Device],
    chunks: &[usize],
    dim: usize,
    k: usize,
) -> anyhow::Result<()> {
    let points: Vec<&[f32]> = mixture.iter().collect();
    let per = (points.len() / streams).max(1);
    let slices: Vec<&[&[f32]]> = points.chunks(per).take(streams).collect();
    let total: usize = slices.iter().map(|s| s.len()).sum();
    let started = Instant::now();
    let exact_labels = std::thread::scope(|scope| {
        let handles: Vec<_> = slices
            .iter()
            .map(|slice| {
                scope.spawn(move || -> anyhow::Result<Vec<i64>> {
                    let mut s = stream()?;
                    slice
                        .iter()
                        .map(|p| Ok(s.process(p)?.label()))
                        .collect::<anyhow::Result<Vec<i64>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an exact-mode thread panicked"))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let exact_rate = total as f64 / started.elapsed().as_secs_f64();
    println!(
        "d={dim} k={k} {} streams at once, exact cpu: {exact_rate:.0} points/s",
        slices.len()
    );
    for device in devices {
        for &chunk in chunks {
            let started = Instant::now();
            let labels = std::thread::scope(|scope| {
                let handles: Vec<_> = slices
                    .iter()
                    .map(|slice| {
                        scope.spawn(move || -> anyhow::Result<Vec<i64>> {
                            let mut b =
                                BatchedNcs::new(stream()?, device.clone()).with_chunk_size(chunk);
                            let mut out = Vec::with_capacity(slice.len());
                            b.process_batch(slice, &mut out)?;
                            Ok(out.iter().map(|r| r.label()).collect())
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a batched-mode thread panicked"))
                    .collect::<anyhow::Result<Vec<_>>>()
            })?;
            let rate = total as f64 / started.elapsed().as_secs_f64();
            let worst = exact_labels
                .iter()
                .zip(&labels)
                .filter_map(|(a, b)| adjusted_rand_index(a, b))
                .fold(f64::INFINITY, f64::min);
            println!(
                "d={dim} k={k} {} streams at once, batched {} chunk {chunk}: {rate:.0} points/s \
                 ({:.2}x exact), lowest ARI vs exact {worst:.4}",
                slices.len(),
                kernel::device_name(device),
                rate / exact_rate
            );
        }
    }
    Ok(())
}
