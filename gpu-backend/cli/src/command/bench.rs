//! `h200 bench …`: measurements that print their figures (and their peers') in one run.

use anyhow::Context;
use gpu_backend::store::Store;

use super::bench_queue::{self, QueueBench};

/// `h200 bench queue`: our queue end to end against a naive `FOR UPDATE` queue.
pub async fn queue(database_url: &str, bench: QueueBench) -> anyhow::Result<()> {
    let store = Store::open(database_url)
        .await
        .context("opening the bench database")?;
    eprintln!(
        "queue bench: {} jobs, {} workers, batches of {}, on {:?}",
        bench.jobs,
        bench.workers,
        bench.batch,
        store.dialect()
    );
    for figure in bench_queue::run(&store, bench).await? {
        println!("{figure}");
    }
    Ok(())
}

/// `h200 bench stream`: a stream's WebSocket against `process_points` HTTP batches.
pub async fn stream(args: crate::cli::BenchStreamArgs) -> anyhow::Result<()> {
    let bench = edge_native::stream_bench::StreamBench {
        edge_url: args.edge_url.trim_end_matches('/').to_owned(),
        username: args.username,
        password: args.password,
        batches: args.batches.max(1),
        points: args.points.max(1),
        dims: args.dims.max(1),
        rounds: args.rounds.max(1),
    };
    for line in edge_native::stream_bench::run(bench).await? {
        println!("{line}");
    }
    Ok(())
}

/// `h200 bench edge`: the edge pipeline against a plain pass-through proxy.
pub async fn edge(bench: edge_native::bench::EdgeBench) -> anyhow::Result<()> {
    let lines = edge_native::bench::on_own_thread(move || edge_native::bench::run(bench)).await?;
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
