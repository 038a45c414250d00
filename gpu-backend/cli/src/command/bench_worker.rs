//! `h200 bench worker`: a real `h200 worker` process draining queued jobs. The bench queues
//! `analysis` jobs (the given image) and then `ncs` jobs (seeded points spread over many
//! streams) straight into the store, starts this same binary as `h200 worker` on it, times each
//! kind from the moment it is queued until the last job of it is final, and asks the worker to
//! drain when both are done. It prints jobs/s (images/s, points/s) per kind and the device the
//! worker registered with, and fails if a job did not succeed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base64::Engine;
use gpu_backend::store::Store;
use gpu_backend::store::jobs::{JobState, NewJob};
use kernel::analysis::{ANALYSIS_KIND, AnalysisJob};
use kernel::ncs::{NCS_KIND, NcsJob};
use ncs::synthetic::{MixtureSpec, gaussian_mixture};

use crate::cli::{BenchWorkerArgs, DeviceChoice, NcsMode};

/// Jobs per enqueue statement.
const ENQUEUE_BATCH: usize = 256;

/// Runs the benchmark.
pub async fn run(args: &BenchWorkerArgs) -> anyhow::Result<()> {
    let url = args.database_url.0.clone();
    let store = Store::open(&url).await.context("opening the store")?;
    ensure!(
        store.job_counts().await?.iter().all(|(_, n)| *n == 0),
        "the bench database already holds jobs: give it a scratch database"
    );
    let image =
        std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?;
    let name = format!("bench-worker-{}", std::process::id());
    let data_dir = std::env::temp_dir().join(&name);
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .arg("worker")
        .arg("--database-url")
        .arg(&url)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--name", &name, "--poll-ms", "20", "--heartbeat-ms", "500"])
        .args(["--ncs-mode", ncs_mode(args.kernels.ncs_mode)])
        .args(["--device", device(args.kernels.device)])
        .stdout(Stdio::null());
    if let Some(model) = &args.kernels.mug_model {
        command.arg("--mug-model").arg(model);
    }
    let mut worker = command.spawn().context("starting h200 worker")?;
    let outcome = match registered(&store, &name, &mut worker, args).await {
        Ok(()) => measure(&store, args, &image, &name).await,
        Err(e) => Err(e),
    };
    // Ask the worker to stop the way an operator would; kill it only if it does not.
    let stopped = drain(&store, &name).await;
    if stopped.is_err() || !wait_exit(&mut worker, Duration::from_secs(10)).await {
        let _ = worker.kill();
        let _ = worker.wait();
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    outcome
}

/// Queues each kind in turn and waits for it to drain.
async fn measure(
    store: &Store,
    args: &BenchWorkerArgs,
    image: &[u8],
    name: &str,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let mut done = 0;
    if args.analyses > 0 {
        let jobs = analysis_jobs(image, args.analyses)?;
        let (first, all) = run_phase(store, &jobs, done, timeout).await?;
        done += jobs.len();
        println!(
            "analysis: {} jobs in {all:.2} s, {:.1} jobs/s (images/s); first result after \
             {first:.2} s (model load included)",
            jobs.len(),
            jobs.len() as f64 / all
        );
    }
    if args.ncs_jobs > 0 {
        let jobs = ncs_jobs(args)?;
        let (first, all) = run_phase(store, &jobs, done, timeout).await?;
        done += jobs.len();
        let points = jobs.len() * args.points;
        println!(
            "ncs: {} jobs of {} points (d={}, {} streams) in {all:.2} s, {:.1} jobs/s, {:.0} \
             points/s; first result after {first:.2} s",
            jobs.len(),
            args.points,
            args.dim,
            args.streams.max(1),
            jobs.len() as f64 / all,
            points as f64 / all
        );
    }
    // The counters arrive with the worker's heartbeat: give it a few beats to report them all.
    let waited = Instant::now();
    let last = loop {
        let last = store
            .list_workers(0)
            .await?
            .into_iter()
            .find(|w| w.name == name)
            .context("the worker is gone")?;
        if (last.jobs_done + last.jobs_failed) as usize >= done || waited.elapsed().as_secs() >= 3 {
            break last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "worker device at the end: {} (done {}, failed {})",
        last.device, last.jobs_done, last.jobs_failed
    );
    Ok(())
}

/// Waits until the worker has registered and prints where it runs; fails at once if the
/// process exits first (a `--device cuda` without a GPU, say).
async fn registered(
    store: &Store,
    name: &str,
    child: &mut std::process::Child,
    args: &BenchWorkerArgs,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let started = Instant::now();
    loop {
        if let Some(worker) = store
            .list_workers(0)
            .await?
            .into_iter()
            .find(|w| w.name == name)
        {
            println!(
                "worker {} registered after {:.2} s on {} (kinds {})",
                worker.name,
                started.elapsed().as_secs_f64(),
                worker.device,
                worker.kinds.join(",")
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("h200 worker exited before registering ({status})");
        }
        if started.elapsed() > timeout {
            bail!("the worker did not register within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Enqueues `jobs` and waits until the store holds `before + jobs.len()` final jobs: seconds to
/// the first final job of the phase and to the last. Fails if one did not succeed.
async fn run_phase(
    store: &Store,
    jobs: &[NewJob],
    before: usize,
    timeout: Duration,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    for chunk in jobs.chunks(ENQUEUE_BATCH) {
        store.enqueue_batch(chunk).await?;
    }
    let target = (before + jobs.len()) as i64;
    let mut first = None;
    loop {
        let counts = store.job_counts().await?;
        let count = |state: JobState| {
            counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n)
        };
        let finals =
            count(JobState::Succeeded) + count(JobState::Dead) + count(JobState::Cancelled);
        if first.is_none() && finals > before as i64 {
            first = Some(started.elapsed().as_secs_f64());
        }
        if finals >= target {
            let all = started.elapsed().as_secs_f64();
            let failed = count(JobState::Dead) + count(JobState::Cancelled);
            ensure!(failed == 0, "{failed} jobs did not succeed");
            return Ok((first.unwrap_or(all), all));
        }
        if started.elapsed() > timeout {
            bail!("{finals} of {target} jobs final after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn analysis_jobs(image: &[u8], count: usize) -> anyhow::Result<Vec<NewJob>> {
    let payload = serde_json::to_value(AnalysisJob {
        image_base64: base64::engine::general_purpose::STANDARD.encode(image),
        declared_type: None,
        options: Default::default(),
        rules: Vec::new(),
    })?;
    Ok((0..count)
        .map(|_| {
            let mut job = NewJob::new(ANALYSIS_KIND, payload.clone());
            job.owner = Some("bench".into());
            job
        })
        .collect())
}

/// `ncs_jobs` batches of a seeded 8-cluster mixture, dealt to the streams in turn so every
/// stream sees its points in order.
fn ncs_jobs(args: &BenchWorkerArgs) -> anyhow::Result<Vec<NewJob>> {
    let streams = args.streams.max(1);
    let points = args.points.max(1);
    let mixture = gaussian_mixture(&MixtureSpec::new(8, args.dim, args.ncs_jobs * points, 7));
    let all: Vec<&[f32]> = mixture.iter().collect();
    all.chunks(points)
        .enumerate()
        .map(|(i, batch)| {
            let stream = format!("bench-{}", i % streams);
            let payload = serde_json::to_value(NcsJob {
                stream: stream.clone(),
                points: batch.iter().map(|p| p.to_vec()).collect(),
                overrides: Default::default(),
                batch_mode: false,
            })?;
            let mut job = NewJob::new(NCS_KIND, payload);
            job.owner = Some("bench".into());
            job.partition_key = Some(format!("bench:{stream}"));
            Ok(job)
        })
        .collect()
}

/// Asks the named worker to drain.
async fn drain(store: &Store, name: &str) -> anyhow::Result<()> {
    let worker = store
        .list_workers(0)
        .await?
        .into_iter()
        .find(|w| w.name == name)
        .context("the worker is gone")?;
    store.request_worker_state(&worker.id, "drain").await?;
    Ok(())
}

/// Whether the child exits within `limit`.
async fn wait_exit(child: &mut std::process::Child, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn ncs_mode(mode: NcsMode) -> &'static str {
    match mode {
        NcsMode::Exact => "exact",
        NcsMode::Batched => "batched",
    }
}

fn device(choice: DeviceChoice) -> &'static str {
    match choice {
        DeviceChoice::Auto => "auto",
        DeviceChoice::Cpu => "cpu",
        DeviceChoice::Cuda => "cuda",
    }
}
