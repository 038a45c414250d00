//! `h200 worker`: pulls jobs from the queue and runs them on this machine's kernels.

use anyhow::Context;
use gpu_backend::queue::{Worker, WorkerOptions};
use gpu_backend::server::shutdown_signal;

use super::open_store;
use crate::cli::WorkerArgs;

/// Registers, works until Ctrl-C, SIGTERM or a drain request, then deregisters.
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let store = open_store(&args.store).await?;
    let available = crate::kernels::all(&args.kernels)?;
    let kernels: Vec<_> = if args.kinds.is_empty() {
        available
    } else {
        let mut chosen = Vec::new();
        for kind in &args.kinds {
            let kernel = available
                .iter()
                .find(|k| k.kind() == kind)
                .with_context(|| format!("no kernel for job kind {kind}"))?;
            chosen.push(kernel.clone());
        }
        chosen
    };
    let url = args.store.url();
    let options = WorkerOptions {
        name: args
            .name
            .unwrap_or_else(|| format!("worker-{}", std::process::id())),
        host: args.host.clone().unwrap_or_else(hostname),
        batch_size: args.batch.max(1),
        lease: std::time::Duration::from_secs(args.lease_secs.max(1)),
        heartbeat: std::time::Duration::from_millis(args.heartbeat_ms.max(50)),
        poll: std::time::Duration::from_millis(args.poll_ms.max(5)),
        listen_url: url.starts_with("postgres").then_some(url),
    };
    let worker = Worker::register(store, kernels, options).await?;
    println!("{}", worker.id());
    let exit = worker.run(shutdown_signal()).await?;
    eprintln!("worker stopped: {exit:?}");
    Ok(())
}

/// This machine's name from `/etc/hostname`, else `localhost`.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
