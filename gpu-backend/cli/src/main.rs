//! `h200`: the H200 System's one command, and its composition root. Only this crate reads flags
//! and the environment; it builds the kernels and hands the backend library, the workers and the
//! native edge plain configuration.
//!
//! - [`cli`]: the arguments of every command.
//! - [`command`]: one file per command.
//! - [`kernels`]: the kernels a worker runs, chosen by flags.
//! - [`device`]: where the candle kernels compute (`--device`).
//! - [`logging`]: the log format.

mod cli;
mod command;
mod device;
mod kernels;
mod logging;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    match command::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
