//! The commands of `h200`, one file each; [`run`] dispatches.

pub mod apikey;
pub mod audit;
pub mod backend;
pub mod bench;
pub mod bench_api;
pub mod bench_ncs;
pub mod bench_queue;
pub mod bench_worker;
pub mod detector;
pub mod dev;
pub mod dev_edge;
pub mod edge;
pub mod keys;
pub mod keys_revoke;
pub mod ncs;
pub mod probe;
pub mod user;
pub mod worker;

use std::path::Path;

use anyhow::Context;
use gpu_backend::store::Store;

use crate::cli::{BenchCommand, Cli, Command, StoreArgs};

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Backend(args) => backend::run(args).await,
        Command::User(command) => user::run(command).await,
        Command::Apikey(command) => apikey::run(command).await,
        Command::Keys(command) => keys::run(command).await,
        Command::Audit(command) => audit::run(command).await,
        Command::Worker(args) => worker::run(args).await,
        Command::Ncs {
            mode,
            input,
            device,
        } => ncs::run(mode, input, device),
        Command::Bench(BenchCommand::Queue {
            database_url,
            jobs,
            workers,
            batch,
            naive_jobs,
        }) => {
            let bench = bench_queue::QueueBench {
                jobs,
                workers,
                batch,
                naive_jobs,
            };
            bench::queue(&database_url.0, bench).await
        }
        Command::Bench(BenchCommand::Edge {
            requests,
            concurrency,
            warmup,
        }) => {
            let bench = edge_native::bench::EdgeBench {
                requests,
                concurrency,
                warmup,
            };
            bench::edge(bench).await
        }
        Command::Bench(BenchCommand::Api(args)) => bench_api::run(&args),
        Command::Bench(BenchCommand::Ncs(args)) => bench_ncs::run(&args),
        Command::Bench(BenchCommand::Worker(args)) => bench_worker::run(&args).await,
        Command::Bench(BenchCommand::Stream(args)) => bench::stream(args).await,
        Command::Edge(args) => edge::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Probe(args) => probe::run(args).await,
        Command::Detect(args) => detector::detect(&args),
        Command::TrainDetector(args) => detector::train(&args),
    }
}

/// Opens (and migrates) the store the arguments name, creating the data folder first.
pub async fn open_store(args: &StoreArgs) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    Store::open(&args.url()).await.context("opening the store")
}

/// Reads a TOML file an operator named.
pub fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
